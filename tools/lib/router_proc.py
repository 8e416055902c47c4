"""The real sandbox-router of agent-sandbox (sigs.k8s.io/agent-sandbox
v1.0.1, built by `make cluster` into build/cluster/bin; AGENTSCALER_CLUSTER_BIN
names another folder) as a child process on 127.0.0.1 (SandboxRouter).

What the tests rely on, read in its source (sandbox-router/ in the module):
  - proxy/headers.go: X-Sandbox-ID (a DNS label, else 400), X-Sandbox-Namespace
    (default "default"), X-Sandbox-Port (default 8888), X-Sandbox-Pod-IP
    (dialled instead of <id>.<ns>.svc.<domain>; a loopback address only with
    --allow-loopback-pod-ip, which this launcher always passes); its own
    errors are {"detail": ...} (proxy/errors.go);
  - proxy/proxy.go: Authorization is deleted from every forwarded request,
    whatever --authz-mode; a dial failure answers 502 after
    --upstream-max-retries (default 3) retries of dial-class errors only
    (proxy/retry.go, 200 ms doubling to 800 ms); --proxy-timeout (180 s)
    bounds a whole request and --response-header-timeout (30 s) the wait
    for the upstream's response headers (a 502 past it);
  - server/probes.go: /healthz and /readyz on --health-probe-bind-address,
    ready once the proxy listens.

Started and stopped by its PID; stop() sends SIGTERM (the router drains for
--shutdown-timeout, which this launcher sets to 0 s by default so that a
stop cuts the requests in flight, as a restarted router pod does) or
SIGKILL with kill=True.  start() again serves on the same port.  Standard
library only."""
import json
import os
import signal
import subprocess
import tempfile
import urllib.request

from procs import (ROOT, check_port_in_use, free_port, listening, start_retrying, stop_pid,
                   wait_for)

BIN_DIR = os.environ.get("AGENTSCALER_CLUSTER_BIN", os.path.join(ROOT, "build/cluster/bin"))
ROUTER_BIN = os.path.join(BIN_DIR, "sandbox-router")


def router_missing():
    """Why the router cannot run here (None when it can)."""
    if not os.access(ROUTER_BIN, os.X_OK):
        return "%s is not built (make cluster)" % ROUTER_BIN
    return None


class SandboxRouter:
    """extra: more router flags (e.g. "--response-header-timeout", "2s")."""

    def __init__(self, extra=(), start=True):
        self.pick_ports()
        self.started = False       # once it has: start() keeps its ports
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="sandbox-router-")
        self.log_path = os.path.join(self.dir, "router.log")
        self.proc = None
        if start:
            self.start()

    def pick_ports(self):
        self.port, self.probe_port, self.metrics_port = free_port(), free_port(), free_port()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def argv(self):
        return [ROUTER_BIN,
                "--http-bind-address", "127.0.0.1:%d" % self.port,
                "--https-bind-address", "",
                "--health-probe-bind-address", "127.0.0.1:%d" % self.probe_port,
                "--metrics-bind-address", "127.0.0.1:%d" % self.metrics_port,
                "--allow-loopback-pod-ip", "--cache-enabled=false",
                "--enable-tracing=false", "--enable-otel-metrics=false",
                "--shutdown-timeout", "0s"] + self.extra

    def start(self, timeout=30):
        """Starts it and waits until it is ready.  A port taken before the
        first start binds it: other ports (procs.start_retrying); a restart
        keeps them, as clients were told them."""
        why = router_missing()
        if why:
            raise RuntimeError(why)
        if self.started:
            return self._start(timeout)

        def first_start():
            if self.proc is not None:
                self.pick_ports()
            return self._start(timeout)
        start_retrying(first_start)
        self.started = True
        return self

    def _start(self, timeout):
        self.log_start = len(self.log())        # this start's lines follow
        with open(self.log_path, "ab") as log:
            env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, env=env)
        try:
            wait_for(self._ready, timeout, 0.02, "sandbox-router /readyz on 127.0.0.1:%d"
                     % self.probe_port)
        except AssertionError as e:
            self.stop(kill=True)
            check_port_in_use(self.log()[self.log_start:], "sandbox-router")
            raise AssertionError("%s; its log:\n%s" % (e, self.log()[-3000:]))
        return self

    def _ready(self):
        """Ready, and listening on all three of its ports itself (not
        another process that took one while it failed to bind it)."""
        if self.proc.poll() is not None:
            raise AssertionError("sandbox-router exited %s" % self.proc.returncode)
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % self.probe_port,
                                        timeout=2) as r:
                if r.status != 200:
                    return False
        except OSError:
            return False
        return all(listening(self.proc.pid, p)
                   for p in (self.port, self.probe_port, self.metrics_port))

    def stop(self, kill=False):
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        else:
            stop_pid(self.proc)

    def restart(self, kill=False):
        self.stop(kill=kill)
        self.start()

    def log(self):
        """The router's log so far (its access log: one JSON line a request)."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def requests(self):
        """The requests it proxied, from its access log: dicts with method,
        path, status, sandbox_id, sandbox_namespace (one per answer; a
        request cut by a stop is not logged)."""
        out = []
        for line in self.log().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue            # a stack trace's line
            if isinstance(rec, dict) and rec.get("msg") == "request":
                out.append(rec)
        return out

    def cleanup(self):
        self.stop()
        try:
            os.unlink(self.log_path)
            os.rmdir(self.dir)
        except OSError:
            pass
