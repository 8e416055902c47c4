"""The agentscaler daemon under test (Daemon) and the test case that runs it
(DaemonTestCase)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

from httpjson import http
from procs import ROOT, free_port, stop_pid, wait_for


def parse_series(key):
    """('name', {label: value}) of a /metrics series key
    name{a="1",b="2"} (values unescaped)."""
    name, _, rest = key.partition("{")
    labels = {}
    for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', rest):
        labels[k] = v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
    return name, labels

class Daemon:
    """The agentscaler daemon under test; AGENTSCALER_WRAPPER (valgrind).
    kubesim None: no --apiserver (the caller passes --kubeconfig or sets
    KUBECONFIG in env, the daemon's environment when given)."""

    def __init__(self, config, kubesim, extra=(), binary=None, log_path=None, env=None):
        """config None: CRD mode (no --config; the daemon watches AgentPools)."""
        self.dir = tempfile.mkdtemp(prefix="agentscaler-")
        self.config_path = os.path.join(self.dir, "pools.json")
        if config is not None:
            self.write_config(config)
        # /metrics /healthz /readyz on one port; /status /explain on the
        # admin port (--admin-addr), as in the chart.  Both on port 0: the
        # daemon binds what the kernel picks and logs it (scheduler/
        # daemon_http.c), so no other process can take a port between our
        # pick and its bind (see procs.free_port).
        self._ports = {}
        self.binary = binary or os.environ.get("AGENTSCALER_BIN",
                                               os.path.join(ROOT, "build/release/agentscaler"))
        wrapper = os.environ.get("AGENTSCALER_WRAPPER", "").split()
        self.log_path = log_path or os.path.join(self.dir, "daemon.log")
        self.log = open(self.log_path, "wb")
        extra = list(extra)
        if getattr(kubesim, "chart_rbac", False) and "--token-file" not in extra:
            extra += ["--token-file", kubesim.sa_token_file(self.dir)]
        ports = (0, 0)
        if "--log-level" in extra and \
                extra[extra.index("--log-level") + 1:][:1] in (["warn"], ["error"]):
            # Quieter than info, the daemon does not log the ports it bound:
            # picked here then (the pick-then-bind race is back for these
            # callers: tools/bench/scale_bench.py).
            ports = (free_port(), free_port())
            self._ports = {"metrics": ports[0], "admin": ports[1]}
        args = wrapper + [self.binary] + \
            (["--config", self.config_path] if config is not None else []) + \
            ["--metrics-addr", "127.0.0.1:%d" % ports[0],
             "--admin-addr", "127.0.0.1:%d" % ports[1]]
        if kubesim is not None:
            args += ["--apiserver", kubesim.url]
            # The real cluster (tests/e2e/kube.py): its CA and a token.
            if hasattr(kubesim, "daemon_args"):
                args += kubesim.daemon_args(self.dir)
        args += extra
        self.proc = subprocess.Popen(args, stderr=self.log, stdout=self.log, env=env)
        self.slow = bool(wrapper)

    # The lines daemon_http_start() logs once each endpoint listens.
    PORT_LINES = {"metrics": re.compile(r"serving /metrics [^\n]*? on \S+ \(port (\d+)\)"),
                  "admin": re.compile(r"serving /status [^\n]*? on \S+ \(port (\d+)\)|"
                                      r"(/status and /explain are off)")}

    def port(self, which, wait=True):
        """The port the daemon bound for which ("metrics" or "admin"), read
        from its log; None while it has not logged it (wait=False) or when
        the admin address is off.  wait: until it does; a daemon that exits
        first fails with the end of its log."""
        if which not in self._ports:
            def logged():
                m = self.PORT_LINES[which].search(self.logs())
                if m:
                    self._ports[which] = int(m.group(1)) if m.group(1) else None
                    return True
                if wait and self.proc.poll() is not None:
                    raise AssertionError("the daemon exited before it listened: " +
                                         self.logs()[-3000:])
                return False
            if not (logged() or wait):
                return None
            if which not in self._ports:
                wait_for(logged, 120 if self.slow else 30, 0.02,
                         "the daemon's %s port in its log" % which)
        return self._ports[which]

    @property
    def metrics_port(self):
        return self.port("metrics")

    @property
    def admin_port(self):
        return self.port("admin")

    def _url(self, which, path):
        """http://127.0.0.1:PORT/path, or None before the daemon listens."""
        port = self.port(which, wait=False)
        return None if port is None else "http://127.0.0.1:%d%s" % (port, path)

    def write_config(self, config):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(config if isinstance(config, str) else json.dumps(config))
        os.replace(tmp, self.config_path)

    def reload(self, config):
        self.write_config(config)
        self.proc.send_signal(signal.SIGHUP)

    def metrics(self):
        url = self._url("metrics", "/metrics")
        code, text = http("GET", url) if url else (0, "")
        out = {}
        if code != 200:
            return out
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def get(self, path):
        """GET on the metrics address: /metrics /healthz /readyz; (0, why)
        while the daemon does not listen yet."""
        url = self._url("metrics", path)
        return http("GET", url) if url else (0, "not listening yet")

    def admin(self, path):
        """GET on the admin address: /status /explain; (0, why) while the
        daemon does not listen there (yet)."""
        url = self._url("admin", path)
        return http("GET", url) if url else (0, "not listening yet")

    def pools_started(self):
        """Every pool has read its source and its target, and every
        dispatch pool consumes (/status).  /readyz no longer says so: it is
        about the process, and a pool's trouble is the pool's."""
        code, st = self.admin("/status")
        return (code == 200 and all(p.get("started") for p in st.get("pools", [])) and
                all(p.get("consuming") for p in st.get("dispatch", [])))

    def started(self):
        """Ready (/readyz 200) and every pool started: what tests and tools
        wait for before they put work in."""
        return self.get("/readyz")[0] == 200 and self.pools_started()

    def metric(self, name, **labels):
        """One sample of /metrics (labels in the daemon's order), or None."""
        lab = ",".join('%s="%s"' % kv for kv in labels.items())
        return self.metrics().get("%s{%s}" % (name, lab) if labels else name)

    def metric_sum(self, name, **labels):
        """The sum of the samples of family name whose labels include
        labels (any order; others summed over), or None when none has."""
        got = None
        for key, v in self.metrics().items():
            n, lab = parse_series(key)
            if n == name and all(lab.get(k) == str(want) for k, want in labels.items()):
                got = (got or 0) + v
        return got

    def pool_status(self, pool, ns="default"):
        """The pool's entry of /status (desiredReplicas, lastReason...), or None."""
        code, st = self.admin("/status")
        if code != 200:
            return None
        for p in st.get("pools", []):
            if p.get("namespace") == ns and p.get("name") == pool:
                return p
        return None

    def polls(self, pool, ns="default"):
        return self.metric("agentscaler_source_reads_total", namespace=ns, pool=pool) or 0

    def evaluated(self, pool, n, ns="default", timeout=60):
        """Waits until the pool has read its source n more times from now
        (agentscaler_source_reads_total): each read, failed or not, is
        followed by an evaluation of the pool.  What "holds steady" checks
        wait for instead of a sleep: n polls of a pollIntervalMs of 100
        (jittered by 10% at most) span at least (n - 1) * 90 ms of the
        daemon's time, so with n past the cooldown and stabilization window
        a daemon that would act has acted.  Returns the pool's /status."""
        start = self.polls(pool, ns)

        def done():
            if self.proc.poll() is not None:
                raise AssertionError("the daemon exited: " + self.logs()[-3000:])
            return self.polls(pool, ns) >= start + n
        wait_for(done, timeout, 0.05, "%d more evaluations of %s/%s" % (n, ns, pool))
        return self.pool_status(pool, ns)

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        rc = stop_pid(self.proc, timeout=60 if self.slow else 15)
        self.log.close()
        return rc

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class DaemonTestCase(unittest.TestCase):
    """A test that runs the daemon (self.daemon, None until started) against
    self.kube, which the subclass's setUp makes, and maybe the example agent
    runtime (self.runtime).  tearDown stops both; the daemon's log goes to
    stderr when it exits non-zero or AGENTSCALER_TEST_LOGS is set, and a
    non-zero exit fails the test (valgrind and ASan reports make it so).
    """

    def setUp(self):
        self.daemon = None
        self.runtime = None

    def tearDown(self):
        if self.runtime is not None:
            self.runtime.cleanup()
        if self.daemon is not None:
            rc = self.daemon.stop()
            if rc != 0 or os.environ.get("AGENTSCALER_TEST_LOGS"):
                print(self.daemon.logs()[-20000:], file=sys.stderr)
            self.daemon.cleanup()
            self.assertEqual(rc, 0, "daemon exit code (valgrind or ASan reports fail it)")

    def start_daemon(self, config, probe="/readyz", extra=()):
        """Starts the daemon and waits until probe answers 200 (with
        /readyz, also until its pools started); a daemon that exits first
        fails the test with the end of its log."""
        self.daemon = Daemon(config, self.kube, extra=extra)
        wait_for(lambda: (self.daemon.started() if probe == "/readyz"
                          else self.daemon.get(probe)[0] == 200)
                 if self.daemon.proc.poll() is None
                 else self.fail(self.daemon.logs()[-5000:]),
                 30, 0.05, "the daemon's " + probe)
        return self.daemon
