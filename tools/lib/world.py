"""The embedded world for integration tests, the demo and the benchmarks.

Starts real redis-server, tools/kube-sim and the agentscaler daemon on free
127.0.0.1 ports, and stops each by its PID.  Standard library only.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=20.0, interval=0.02, what="condition"):
    """Polls pred() until it returns a truthy value; raises after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


def stop_pid(proc, timeout=10.0):
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class Redis:
    """A real redis-server on a free loopback port, talked to in RESP."""

    def __init__(self, extra=()):
        self.port = free_port()
        self.extra = list(extra)
        self.proc = None
        self.start()

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--loglevel", "warning"] + self.extra,
            stdout=subprocess.DEVNULL)
        wait_for(self._ping, 10, what="redis-server to answer")

    def _ping(self):
        try:
            return self.cmd("PING") == "PONG"
        except RuntimeError as e:
            return str(e).startswith("NOAUTH")   # up, with requirepass
        except OSError:
            return False

    def stop(self):
        stop_pid(self.proc)

    def restart(self):
        self.stop()
        self.start()

    def cmd(self, *args):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(self._encode(args))
            return self._read(s.makefile("rb"))

    def pipeline(self, cmds):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"".join(self._encode(c) for c in cmds))
            f = s.makefile("rb")
            return [self._read(f) for _ in cmds]

    @staticmethod
    def _encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    @staticmethod
    def _read(f):
        """One RESP reply from the binary file f; error replies raise RuntimeError."""
        line = f.readline()
        if not line:
            raise OSError("redis closed the connection")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [Redis._read(f) for _ in range(n)]
        raise OSError("bad RESP reply %r" % line)


def parse_redis_url(url):
    """redis://host[:port][/db] -> (host, port, db).  Credentials are refused
    in the address (as agentscaler does): pass the password separately."""
    from urllib.parse import urlsplit
    u = urlsplit(url)
    if u.scheme != "redis":
        raise ValueError("redis address must start with redis:// (got scheme %r)" % u.scheme)
    if "@" in u.netloc:
        raise ValueError("credentials are not allowed in the redis address; "
                         "use a password file or variable")
    if not u.hostname:
        raise ValueError("redis address has no host")
    path = u.path.strip("/")
    if path and not path.isdigit():
        raise ValueError("redis database must be a number, as in redis://host:6379/0")
    return u.hostname, u.port or 6379, int(path or 0)


class RespConn:
    """One persistent RESP connection to a redis server, reconnected on the
    next call after any failure.  Every call is bounded by a socket timeout.
    Not thread safe: one per thread, or a lock around it."""

    def __init__(self, url, password=None, username=None, timeout=5.0):
        self.host, self.port, self.db = parse_redis_url(url)
        self.password, self.username = password, username
        self.timeout = timeout
        self.sock = self.f = None

    def _connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")
        try:
            if self.password is not None:
                auth = ("AUTH", self.username, self.password) if self.username else \
                    ("AUTH", self.password)
                self._roundtrip([auth])
            if self.db:
                self._roundtrip([("SELECT", self.db)])
        except BaseException:
            self.close()
            raise

    def _roundtrip(self, cmds, timeout=None):
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        self.sock.sendall(b"".join(Redis._encode(c) for c in cmds))
        out = []
        for _ in cmds:
            try:
                out.append(Redis._read(self.f))
            except RuntimeError as e:      # an error reply: the stream is still in step
                out.append(e)
        return out

    def pipeline(self, cmds, timeout=None):
        """Sends every command, reads every reply; error replies come back as
        RuntimeError instances in the list.  OSError (after closing) on I/O
        failure or timeout."""
        if self.sock is None:
            self._connect()
        try:
            return self._roundtrip(cmds, timeout)
        except BaseException:
            self.close()                   # a reply may be half read: never reuse
            raise

    def cmd(self, *args, timeout=None):
        """One command; an error reply raises RuntimeError."""
        r = self.pipeline([args], timeout)[0]
        if isinstance(r, RuntimeError):
            raise r
        return r

    def close(self):
        for x in (self.f, self.sock):
            if x is not None:
                try:
                    x.close()
                except OSError:
                    pass
        self.sock = self.f = None


def http(method, url, body=None, ctype="application/json", timeout=10, headers=None,
         cafile=None):
    """Returns (code, parsed JSON or text).  cafile: trust it for https."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    ctx = None
    if cafile is not None:
        import ssl
        ctx = ssl.create_default_context(cafile=cafile)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            code, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        code, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)
    try:
        return code, json.loads(raw)
    except ValueError:
        return code, raw.decode(errors="replace")


def kube_tokens(directory, names):
    """Bearer tokens for kube-sim --tokens, one user per process so that its
    request log says who sent what: "tester" (system:masters, token
    "test-token", for the test itself) and, for each name, the user
    "daemon-<name>" whose token is in the file <directory>/token-<name>.
    Returns the path of the CSV."""
    rows = ["test-token,tester,u-test,system:masters"]
    for name in names:
        rows.append("%s-token,daemon-%s,u-%s," % (name, name, name))
        with open(os.path.join(directory, "token-%s" % name), "w") as f:
            f.write("%s-token" % name)
    path = os.path.join(directory, "tokens.csv")
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return path


# AGENTSCALER_CHART_RBAC=1: every KubeSim started without its own --tokens
# authorizes with the RBAC that charts/agentscaler (default values, release
# "agentscaler" in namespace CHART_NAMESPACE) grants its ServiceAccount, and
# every Daemon on such a KubeSim (without its own --token-file) uses that
# ServiceAccount's token.  The tests' own setup (Deployments, warm pools,
# claims, the agent runtime) keeps full rights through an admin token in
# system:masters.  A 403 answered to the ServiceAccount fails the test when
# its KubeSim stops.  `make chart-rbac` runs a list of modules this way.
# AGENTSCALER_CHART_RBAC_USAGE=FILE appends, per KubeSim, a JSON line counting
# the ServiceAccount's requests by method, resource and answer code (to see
# which of the granted verbs the scenarios exercise).
CHART_RBAC = os.environ.get("AGENTSCALER_CHART_RBAC") == "1"
CHART_NAMESPACE = "agentscaler"
_chart_rbac = None


def chart_rbac(values=(), namespace=CHART_NAMESPACE):
    """(user, kube-sim rules) of the chart's ServiceAccount: the chart
    rendered by the real Helm (tools/lib/chart.py), its RBAC converted by
    tools/lib/rbac_rules.py.  With the default values and namespace, once."""
    global _chart_rbac
    if values or namespace != CHART_NAMESPACE or _chart_rbac is None:
        import chart
        import rbac_rules
        _text, objs = chart.template(values, namespace=namespace)
        got = rbac_rules.rules_for(objs, namespace, chart.service_account(objs))
        if values or namespace != CHART_NAMESPACE:
            return got
        _chart_rbac = got
    return _chart_rbac


class Deployments:
    """create_deployment() and replicas() over self.api(), for every API
    server the tests drive (KubeSim here, tools/cluster's Cluster)."""

    def create_deployment(self, name, replicas=0, ns="default"):
        body = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"replicas": replicas,
                         "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "agent",
                                                               "image": "agent:1"}]}}}}
        code, obj = self.api("POST", "/apis/apps/v1/namespaces/%s/deployments" % ns, body)
        if code != 201:
            raise RuntimeError("create deployment: %s %s" % (code, obj))
        return obj

    def replicas(self, name, ns="default"):
        code, obj = self.api("GET", "/apis/apps/v1/namespaces/%s/deployments/%s" % (ns, name))
        if code != 200:
            raise RuntimeError("get deployment: %s %s" % (code, obj))
        return obj["spec"].get("replicas", 1)


class KubeSim(Deployments):
    def __init__(self, *args):
        args = list(args)
        self.chart_rbac = CHART_RBAC and "--tokens" not in args
        self.auth_dir = None
        self.sa_user = self.sa_token = None
        self.token = None      # bearer token for api(), when --tokens is on
        if self.chart_rbac:
            self.sa_user, rules = chart_rbac()
            self.auth_dir = tempfile.mkdtemp(prefix="kube-sim-chart-rbac-")
            tokens = os.path.join(self.auth_dir, "tokens.csv")
            with open(tokens, "w") as f:
                f.write('chart-admin-token,chart-test-admin,u-admin,"system:masters"\n'
                        "chart-sa-token,%s,u-sa,\n" % self.sa_user)
            rules_path = os.path.join(self.auth_dir, "rules.json")
            # The real kubectl sends no bearer token over plain HTTP, so
            # the tests' own kubectl (setup, as an administrator) comes as
            # system:anonymous: that user may do everything here.  The
            # daemon always authenticates as the ServiceAccount.
            rules = list(rules) + [
                {"users": ["system:anonymous"], "verbs": ["*"], "apiGroups": ["*"],
                 "resources": ["*"], "namespaces": ["*", ""]},
                {"users": ["system:anonymous"], "verbs": ["*"], "nonResourceURLs": ["*"]}]
            with open(rules_path, "w") as f:
                json.dump(rules, f, indent=1)
            args += ["--tokens", tokens, "--rules", rules_path]
            self.token = "chart-admin-token"
            self.sa_token = "chart-sa-token"
        self.proc = subprocess.Popen(
            [os.path.join(ROOT, "tools/kube-sim/kube-sim"), "--port", "0",
             "--admin-port", "0"] + args,
            stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("kube-sim did not start")
        info = json.loads(line)
        self.url, self.admin, self.ca = info["url"], info["admin"], info.get("ca")

    def sa_token_file(self, directory):
        """Writes the chart ServiceAccount's token into directory; its path."""
        path = os.path.join(directory, "chart-sa-token")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.sa_token)
        return path

    def forbidden(self):
        """Requests kube-sim answered 403 to the chart's ServiceAccount."""
        return [r for r in self.requests() if r.get("code") == 403 and
                r.get("user") == self.sa_user]

    def _sa_usage(self):
        """{"METHOD group/resource[/sub] (item|collection|watch)": count} of the
        ServiceAccount's requests, for AGENTSCALER_CHART_RBAC_USAGE."""
        out = {}
        for r in self.requests():
            if r.get("user") != self.sa_user:
                continue
            parts = r["path"].strip("/").split("/")
            if parts[0] == "api":
                parts = ["api", ""] + parts[1:]
            grp, rest = parts[1].split("/")[0] if parts[0] == "apis" else "", parts[3:]
            if rest[:1] == ["namespaces"] and len(rest) > 2:
                rest = rest[2:]
            res = rest[0] if rest else "?"
            if len(rest) > 2:
                res += "/" + rest[2]
            kind = "watch" if "watch=" in (r.get("query") or "") else \
                "item" if len(rest) > 1 else "collection"
            key = "%s %s/%s (%s) %s" % (r["method"], grp, res, kind, r.get("code"))
            out[key] = out.get(key, 0) + 1
        return out

    def stop(self):
        denied = None
        if self.chart_rbac and self.proc.poll() is None:
            denied = self.forbidden()
            usage_file = os.environ.get("AGENTSCALER_CHART_RBAC_USAGE")
            if usage_file:
                with open(usage_file, "a") as f:
                    f.write(json.dumps(self._sa_usage()) + "\n")
        stop_pid(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()
        if self.auth_dir:
            shutil.rmtree(self.auth_dir, ignore_errors=True)
        if denied:
            what = sorted({"%s %s" % (r["method"], r["path"]) for r in denied})
            raise AssertionError(
                "the chart's RBAC denied %d request(s) of %s: %s%s" % (
                    len(denied), self.sa_user, ", ".join(what[:5]),
                    " and %d more" % (len(what) - 5) if len(what) > 5 else ""))

    def api(self, method, path, body=None, ctype="application/json"):
        auth = {"Authorization": "Bearer " + self.token} if self.token else None
        return http(method, self.url + path, body, ctype, headers=auth, cafile=self.ca)

    def adm(self, method, path, body=None):
        return http(method, self.admin + path, body)

    def requests(self, since=0):
        code, obj = self.adm("GET", "/requests?since=%d" % since)
        return obj["requests"]

    def fault(self, method, path, code, count, retry_after=None):
        body = {"method": method, "path": path, "code": code, "count": count}
        if retry_after is not None:
            body["retryAfter"] = retry_after
        c, obj = self.adm("POST", "/faults", body)
        if c >= 300:
            raise RuntimeError("fault: %s %s" % (c, obj))


CRDS = os.path.join(ROOT, "charts/agentscaler/crds")


class Kubectl:
    """The real kubectl against a kube-sim (anything with .url), with a
    fresh HOME (so no stale discovery cache) and no kubeconfig; extra:
    more global flags.  cleanup() removes the HOME."""

    def __init__(self, kubesim, extra=None):
        self.home = tempfile.mkdtemp(prefix="kubectl-home-")
        self.env = dict(os.environ, HOME=self.home,
                        KUBECONFIG=os.path.join(self.home, "kubeconfig-none"))
        self.base = ["kubectl", "--server", kubesim.url] + list(extra or [])

    @staticmethod
    def available():
        return shutil.which("kubectl") is not None

    def run(self, *args, stdin=None, timeout=60, check=True):
        r = subprocess.run(self.base + list(args), capture_output=True, text=True,
                           env=self.env, input=stdin, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("kubectl %s failed (%d): %s %s"
                                 % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def popen(self, *args):
        return subprocess.Popen(self.base + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env)

    def install_crds(self):
        """kubectl apply of charts/agentscaler/crds (kube-sim serves no
        OpenAPI, hence --validate=false)."""
        return self.run("apply", "--validate=false", "-f", CRDS)

    def cleanup(self):
        shutil.rmtree(self.home, ignore_errors=True)


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
        # admin port (--admin-addr), as in the chart.
        self.metrics_port = free_port()
        self.admin_port = free_port()
        self.binary = binary or os.environ.get("AGENTSCALER_BIN",
                                               os.path.join(ROOT, "build/release/agentscaler"))
        wrapper = os.environ.get("AGENTSCALER_WRAPPER", "").split()
        self.log_path = log_path or os.path.join(self.dir, "daemon.log")
        self.log = open(self.log_path, "wb")
        extra = list(extra)
        if getattr(kubesim, "chart_rbac", False) and "--token-file" not in extra:
            extra += ["--token-file", kubesim.sa_token_file(self.dir)]
        args = wrapper + [self.binary] + \
            (["--config", self.config_path] if config is not None else []) + \
            ["--metrics-addr", "127.0.0.1:%d" % self.metrics_port,
             "--admin-addr", "127.0.0.1:%d" % self.admin_port]
        if kubesim is not None:
            args += ["--apiserver", kubesim.url]
            # The real cluster (tests/e2e/kube.py): its CA and a token.
            if hasattr(kubesim, "daemon_args"):
                args += kubesim.daemon_args(self.dir)
        args += extra
        self.proc = subprocess.Popen(args, stderr=self.log, stdout=self.log, env=env)
        self.slow = bool(wrapper)

    def write_config(self, config):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(config if isinstance(config, str) else json.dumps(config))
        os.replace(tmp, self.config_path)

    def reload(self, config):
        self.write_config(config)
        self.proc.send_signal(signal.SIGHUP)

    def metrics(self):
        code, text = http("GET", "http://127.0.0.1:%d/metrics" % self.metrics_port)
        out = {}
        if code != 200:
            return out
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def get(self, path):
        """GET on the metrics address: /metrics /healthz /readyz."""
        return http("GET", "http://127.0.0.1:%d%s" % (self.metrics_port, path))

    def admin(self, path):
        """GET on the admin address: /status /explain."""
        return http("GET", "http://127.0.0.1:%d%s" % (self.admin_port, path))

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
        return self.metric("agentscaler_source_polls_total", namespace=ns, pool=pool) or 0

    def evaluated(self, pool, n, ns="default", timeout=60):
        """Waits until the pool has read its source n more times from now
        (agentscaler_source_polls_total): each read, failed or not, is
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


def pool(name, redis_url, queue, target, **scaling):
    spec = {"source": {"type": "redis-list", "address": redis_url, "queue": queue},
            "target": {"kind": "Deployment", "name": target},
            "scaling": scaling}
    return {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentPool",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def pool_stream(name, redis_url, stream, group, target, count_in_flight=False, **scaling):
    """An AgentPool reading a Redis stream through one consumer group."""
    p = pool(name, redis_url, stream, target, **scaling)
    p["spec"]["source"]["type"] = "redis-stream"
    p["spec"]["source"]["consumerGroup"] = group
    if count_in_flight:
        p["spec"]["source"]["countInFlight"] = True
    return p


class RabbitMQ:
    """A private rabbitmq-server with the management plugin, all on 127.0.0.1.

    Own HOME (Erlang cookie), node name, data and log directories, and an
    epmd of its own started first, so that stop() ends exactly what start()
    began, by PID.  Management statistics every 500 ms.  Starting takes
    seconds: one broker per test module (SharedRabbitMQ).  The tests talk to it
    through the management API (declare, publish, purge), standard library
    only.
    """

    BIN = "/usr/lib/rabbitmq/bin/"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rabbit-")
        self.node = "w%d@localhost" % os.getpid()
        self.amqp_port, self.mgmt_port = free_port(), free_port()
        self.dist_port, self.epmd_port = free_port(), free_port()
        self.proc = self.epmd = None
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write("listeners.tcp.default = 127.0.0.1:%d\n"
                    "management.tcp.ip = 127.0.0.1\n"
                    "management.tcp.port = %d\n"
                    "collect_statistics_interval = 500\n"
                    "management.rates_mode = basic\n"
                    "log.console = false\n"
                    "log.file.level = warning\n" % (self.amqp_port, self.mgmt_port))
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_management].\n")
        self.env = dict(os.environ, HOME=self.dir, RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                        RABBITMQ_NODE_PORT=str(self.amqp_port),
                        RABBITMQ_DIST_PORT=str(self.dist_port),
                        ERL_EPMD_ADDRESS="127.0.0.1", ERL_EPMD_PORT=str(self.epmd_port),
                        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
                        RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
                        RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir, "enabled_plugins"),
                        RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq"),
                        RABBITMQ_CONF_ENV_FILE=os.path.join(self.dir, "no-env.conf"))
        try:
            self.start()
        except BaseException:
            self.stop()
            raise

    def amqp_url(self, vhost=""):
        return "amqp://127.0.0.1:%d/%s" % (self.amqp_port, vhost)

    def http_url(self, vhost=""):
        return "http://127.0.0.1:%d/%s" % (self.mgmt_port, vhost)

    @staticmethod
    def _die_with_parent():
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    def _spawn(self, argv, log):
        out = open(os.path.join(self.dir, log), "ab")
        try:
            return subprocess.Popen(argv, env=self.env, cwd=self.dir, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=out, start_new_session=True,
                                    preexec_fn=self._die_with_parent)
        finally:
            out.close()

    def ctl(self, *args, timeout=90):
        """Runs rabbitmqctl against this node; returns (exit code, stdout)."""
        r = subprocess.run([self.BIN + "rabbitmqctl", "-n", self.node] + list(args),
                           env=self.env, cwd=self.dir, capture_output=True, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout

    def start(self):
        self.epmd = self._spawn(["/usr/bin/epmd", "-address", "127.0.0.1", "-port",
                                 str(self.epmd_port)], "epmd.log")
        wait_for(lambda: self._port_open(self.epmd_port), 10, what="epmd")
        self.proc = self._spawn([self.BIN + "rabbitmq-server"], "server.out")
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("rabbitmq-server exited %s (see %s)" % (self.proc.returncode, self.dir))
            # An early await_startup exits 69 before the node has registered.
            if self.ctl("await_startup", "--timeout", "60")[0] == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError("rabbitmq-server did not start in 120 s (see %s)" % self.dir)
            time.sleep(0.2)

    @staticmethod
    def _port_open(port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    def stop_app(self):
        """A broker restart as clients see it: every connection and listener closes."""
        if self.ctl("stop_app")[0] != 0:
            raise RuntimeError("rabbitmqctl stop_app failed")

    def start_app(self):
        if self.ctl("start_app")[0] != 0 or self.ctl("await_startup", "--timeout", "60")[0] != 0:
            raise RuntimeError("rabbitmqctl start_app failed")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.ctl("stop", timeout=60)
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        stop_pid(self.epmd)
        self.proc = self.epmd = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def api(self, method, path, body=None):
        """The management API as guest; returns (code, JSON or text)."""
        import base64
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.mgmt_port, path),
                                     data=data, method=method)
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                code, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            code, raw = e.code, e.read()
        try:
            return code, json.loads(raw) if raw else None
        except ValueError:
            return code, raw.decode(errors="replace")

    @staticmethod
    def _q(vhost, queue):
        from urllib.parse import quote
        return "%s/%s" % (quote(vhost, safe=""), quote(queue, safe=""))

    def declare(self, queue, vhost="/", durable=False):
        code, obj = self.api("PUT", "/api/queues/" + self._q(vhost, queue),
                             {"durable": durable, "auto_delete": False})
        if code not in (201, 204):
            raise RuntimeError("declare %s: %s %s" % (queue, code, obj))

    def delete(self, queue, vhost="/"):
        self.api("DELETE", "/api/queues/" + self._q(vhost, queue))

    def purge(self, queue, vhost="/"):
        code, obj = self.api("DELETE", "/api/queues/%s/contents" % self._q(vhost, queue))
        if code not in (200, 204):
            raise RuntimeError("purge %s: %s %s" % (queue, code, obj))

    def publish(self, queue, n, vhost="/"):
        from urllib.parse import quote
        for i in range(n):
            code, obj = self.api("POST", "/api/exchanges/%s/amq.default/publish" % quote(vhost, safe=""),
                                 {"properties": {}, "routing_key": queue,
                                  "payload": json.dumps({"id": i}), "payload_encoding": "string"})
            if code != 200 or not obj.get("routed"):
                raise RuntimeError("publish to %s: %s %s" % (queue, code, obj))

    def connections(self, name_prefix="agentscaler"):
        """The client connections whose connection_name starts with name_prefix."""
        code, conns = self.api("GET", "/api/connections")
        return [c for c in (conns or []) if
                (c.get("client_properties") or {}).get("connection_name", "").startswith(name_prefix)]

    def publish_body(self, queue, body, vhost="/"):
        """One persistent message (str or bytes, sent as base64 so that any
        bytes pass) to the default exchange; fails unless it was routed."""
        import base64
        from urllib.parse import quote
        raw = body if isinstance(body, bytes) else body.encode()
        code, obj = self.api("POST", "/api/exchanges/%s/amq.default/publish" % quote(vhost, safe=""),
                             {"properties": {"delivery_mode": 2}, "routing_key": queue,
                              "payload": base64.b64encode(raw).decode(),
                              "payload_encoding": "base64"})
        if code != 200 or not obj.get("routed"):
            raise RuntimeError("publish to %s: %s %s" % (queue, code, obj))

    def queue_info(self, queue, vhost="/"):
        """The management API's view of queue ({} when it is not there)."""
        code, info = self.api("GET", "/api/queues/" + self._q(vhost, queue))
        return info if code == 200 else {}

    def take_all(self, queue, vhost="/", count=1000):
        """Takes (acks) up to count messages of queue; their bodies as str."""
        import base64
        code, msgs = self.api("POST", "/api/queues/%s/get" % self._q(vhost, queue),
                              {"count": count, "ackmode": "ack_requeue_false",
                               "encoding": "auto"})
        if code != 200:
            return []
        return [base64.b64decode(m["payload"]).decode(errors="replace")
                if m.get("payload_encoding") == "base64" else m["payload"] for m in msgs]

    def listed_connections(self, closed, name_prefix="agentscaler", timeout=30):
        """The connections named name_prefix... not in closed, once the
        management API lists them (after their first statistics, which can
        take seconds)."""
        return wait_for(lambda: [c for c in self.connections(name_prefix)
                                 if c["name"] not in closed] or None, timeout, 0.1,
                        "a %s connection listed" % name_prefix)

    def close_connections(self, conns, closed):
        """Closes conns from the broker's side (management API), as a broker
        restart, a blip or a memory alarm would; adds their names to closed
        and returns how many the broker closed (one already gone is not)."""
        from urllib.parse import quote
        n = 0
        for c in conns:
            code, _ = self.api("DELETE", "/api/connections/" + quote(c["name"], safe=""))
            closed.add(c["name"])
            n += code in (200, 204)
        return n


class SharedRabbitMQ:
    """One broker for a whole test module, since starting one takes seconds:

        RABBIT = world.SharedRabbitMQ()
        setUpModule, tearDownModule = RABBIT.start, RABBIT.stop

    and the tests use RABBIT.broker (None outside the module's run)."""

    def __init__(self):
        self.broker = None

    def start(self):
        self.broker = RabbitMQ()

    def stop(self):
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


def pool_rabbit(name, address, queue, target, count_in_flight=False, **scaling):
    """An AgentPool reading a RabbitMQ queue, over AMQP or the management API by scheme."""
    p = pool(name, address, queue, target, **scaling)
    p["spec"]["source"]["type"] = "rabbitmq"
    if count_in_flight:
        p["spec"]["source"]["countInFlight"] = True
    return p


class AmqpClient:
    """A minimal AMQP 0-9-1 client (standard library only): connects as
    guest, opens channel 1, heartbeats off.  AmqpConsumer and AmqpPublisher
    build on it."""

    def __init__(self, port, vhost="/", timeout=20):
        import struct
        self._st = struct
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self._expect(0, 10, 10)                                  # connection.start
        self._method(0, 10, 11, b"\x00\x00\x00\x00" + self._ss("PLAIN") +
                     self._ls(b"\x00guest\x00guest") + self._ss("en_US"))
        args = self._expect(0, 10, 30)                           # connection.tune
        chmax, self.frame_max = struct.unpack(">HI", args[:6])
        self._method(0, 10, 31, struct.pack(">HIH", chmax, self.frame_max, 0))
        self._method(0, 10, 40, self._ss(vhost) + self._ss("") + b"\x00")
        self._expect(0, 10, 41)
        self._method(1, 20, 10, self._ss(""))
        self._expect(1, 20, 11)

    def _ss(self, s):
        b = s.encode() if isinstance(s, str) else s
        return bytes([len(b)]) + b

    def _ls(self, b):
        return self._st.pack(">I", len(b)) + b

    def _frame_out(self, ftype, ch, payload):
        self.sock.sendall(self._st.pack(">BHI", ftype, ch, len(payload)) + payload + b"\xce")

    def _method(self, ch, cls, meth, args):
        self._frame_out(1, ch, self._st.pack(">HH", cls, meth) + args)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("the broker closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _frame(self):
        ftype, ch, size = self._st.unpack(">BHI", self._read(7))
        payload = self._read(size)
        if self._read(1) != b"\xce":
            raise OSError("bad AMQP frame end")
        return ftype, ch, payload

    def _expect(self, ch, cls, meth):
        while True:
            ftype, fch, payload = self._frame()
            if ftype != 1:
                continue
            c, m = self._st.unpack(">HH", payload[:4])
            if (c, m) == (cls, meth) and fch == ch:
                return payload[4:]
            if (c, m) in ((10, 50), (20, 40), (60, 120)):       # closes, basic.nack
                raise OSError("refused by the broker: %r" % payload[4:80])

    def close(self):
        """Drops the connection: the broker requeues what was not acknowledged."""
        self.sock.close()


class AmqpConsumer(AmqpClient):
    """A minimal AMQP 0-9-1 consumer that takes n messages with basic.qos
    prefetch n and acknowledges none, so that they stay unacknowledged (in
    flight) until close()."""

    def __init__(self, port, queue, n, vhost="/", timeout=20):
        super().__init__(port, vhost, timeout)
        struct = self._st
        self._method(1, 60, 10, struct.pack(">IHB", 0, n, 0))   # basic.qos
        self._expect(1, 60, 11)
        self._method(1, 60, 20, struct.pack(">H", 0) + self._ss(queue) + self._ss("") +
                     b"\x00" + b"\x00\x00\x00\x00")             # basic.consume, manual ack
        self._expect(1, 60, 21)
        got = 0
        while got < n:                                           # deliveries, never acked
            ftype, ch, payload = self._frame()
            if ftype == 1 and payload[:4] == struct.pack(">HH", 60, 60):
                got += 1


class AmqpPublisher(AmqpClient):
    """Publishes with publisher confirms, in body frames of frame_max, for
    messages the management API refuses (bodies over 20 MB as JSON)."""

    def __init__(self, port, vhost="/", timeout=30):
        super().__init__(port, vhost, timeout)
        self._method(1, 85, 10, b"\x00")                         # confirm.select
        self._expect(1, 85, 11)

    def publish(self, queue, body):
        """Persistent, to the default exchange; returns once confirmed."""
        st = self._st
        self._method(1, 60, 40, st.pack(">H", 0) + self._ss("") + self._ss(queue) + b"\x00")
        self._frame_out(2, 1, st.pack(">HHQH", 60, 0, len(body), 0x1000) + b"\x02")
        step = self.frame_max - 8
        for i in range(0, len(body), step):
            self._frame_out(3, 1, body[i:i + step])
        self._expect(1, 60, 80)                                  # basic.ack


def pool_dispatch(name, address, queue, warm_pool, source_type=None, consumer_group=None,
                  claim_ttl_seconds=3600, spare_min=0, spare_max=50, namespace="default",
                  **scaling):
    """An AgentPool in dispatch mode (DESIGN.md sections 5 and 7): one
    SandboxClaim per task from warm_pool.  The source type follows the
    address (redis:// -> redis-list, or redis-stream when consumer_group is
    given; amqp:// or http:// -> rabbitmq) unless source_type says."""
    if source_type is None:
        if address.startswith("redis"):
            source_type = "redis-stream" if consumer_group else "redis-list"
        else:
            source_type = "rabbitmq"
    src = {"type": source_type, "address": address, "queue": queue}
    if consumer_group:
        src["consumerGroup"] = consumer_group
    spec = {"mode": "dispatch", "source": src,
            "sandbox": {"warmPool": warm_pool, "claimTTLSeconds": claim_ttl_seconds,
                        "spare": {"min": spare_min, "max": spare_max}},
            "scaling": scaling}
    return {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentPool",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


# agent-sandbox objects in kube-sim (ref/agent-sandbox-api.md sections 1 and 9).
EXT_API = "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/%s/"
SANDBOX_API = "/apis/agents.x-k8s.io/v1beta1/namespaces/%s/sandboxes"
MANAGED_BY = ("app.kubernetes.io/managed-by", "agentscaler")


def condition(obj, typ):
    """The condition typ of obj's status, or None."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == typ:
            return c
    return None


def is_true(obj, typ):
    c = condition(obj, typ)
    return c is not None and c.get("status") == "True"


def create_namespace(kube, ns):
    code, obj = kube.api("POST", "/api/v1/namespaces",
                         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    if code not in (201, 409):
        raise RuntimeError("create namespace %s: %s %s" % (ns, code, obj))


def sandbox_pool(kube, pool="pool", replicas=1, ns="default", template="tpl", wait_ready=True,
                 timeout=30):
    """Creates the minimal SandboxTemplate `template` (one container) and the
    SandboxWarmPool `pool` on it with `replicas` members; by default waits
    until they are all Ready.  Returns the pool object."""
    tpl = {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxTemplate",
           "metadata": {"name": template, "namespace": ns},
           "spec": {"podTemplate": {"spec": {"containers": [{"name": "agent",
                                                             "image": "agent:1"}]}}}}
    code, obj = kube.api("POST", EXT_API % ns + "sandboxtemplates", tpl)
    if code not in (201, 409):
        raise RuntimeError("create SandboxTemplate %s/%s: %s %s" % (ns, template, code, obj))
    wp = {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxWarmPool",
          "metadata": {"name": pool, "namespace": ns},
          "spec": {"replicas": replicas, "sandboxTemplateRef": {"name": template}}}
    code, obj = kube.api("POST", EXT_API % ns + "sandboxwarmpools", wp)
    if code != 201:
        raise RuntimeError("create SandboxWarmPool %s/%s: %s %s" % (ns, pool, code, obj))
    if wait_ready and replicas:
        wait_for(lambda: ((kube.api("GET", EXT_API % ns + "sandboxwarmpools/" + pool)[1]
                           .get("status") or {}).get("readyReplicas") == replicas),
                 timeout, what="warm pool %s/%s to have %d ready" % (ns, pool, replicas))
    return obj


def create_claim(kube, name, warm_pool="pool", ns="default", managed=True, labels=None,
                 annotations=None):
    """A SandboxClaim on warm_pool, labelled managed-by=agentscaler unless
    managed is False.  Returns the created object."""
    lab = dict(labels or {})
    if managed:
        lab[MANAGED_BY[0]] = MANAGED_BY[1]
    body = {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxClaim",
            "metadata": {"name": name, "namespace": ns, "labels": lab,
                         "annotations": dict(annotations or {})},
            "spec": {"warmPoolRef": {"name": warm_pool}}}
    code, obj = kube.api("POST", EXT_API % ns + "sandboxclaims", body)
    if code != 201:
        raise RuntimeError("create SandboxClaim %s/%s: %s %s" % (ns, name, code, obj))
    return obj


def get_claim(kube, name, ns="default"):
    code, obj = kube.api("GET", EXT_API % ns + "sandboxclaims/" + name)
    return obj if code == 200 else None


def get_sandbox(kube, name, ns="default"):
    code, obj = kube.api("GET", SANDBOX_API % ns + "/" + name)
    return obj if code == 200 else None


def wait_claim_ready(kube, name, ns="default", timeout=30):
    """Waits until the claim is bound (status.sandbox.name) and Ready=True,
    as agentscaler does before the hand-off; returns the sandbox name."""
    def bound():
        c = get_claim(kube, name, ns)
        sb = ((c or {}).get("status") or {}).get("sandbox", {}).get("name")
        return sb if sb and is_true(c, "Ready") else None
    return wait_for(bound, timeout, what="claim %s/%s bound and Ready" % (ns, name))


def inbox_key(ns, sandbox):
    """The Redis list agentscaler LPUSHes a sandbox's task to."""
    return "agentscaler:inbox:%s:%s" % (ns, sandbox)


def inbox_queue(ns, sandbox):
    """The durable RabbitMQ queue agentscaler publishes a sandbox's task to."""
    return "agentscaler.inbox.%s.%s" % (ns, sandbox)


def handoff(task, ns, sandbox, claim, pool="pool", parent=None, root=None, depth=0):
    """The inbox message (include/agentscaler/task.h task_handoff_body)."""
    return {"agentscaler": {"namespace": ns, "pool": pool, "claim": claim, "sandbox": sandbox,
                            "id": task["id"], "parent": parent,
                            "root": root or task["id"], "depth": depth},
            "task": task}


class AgentRuntime:
    """tools/agent-runtime/agent_runtime.py, the example agent of every
    sandbox; started and stopped by PID.  Its JSON-lines event log is read
    back parsed.  inbox: redis://... or the RabbitMQ management URL."""

    BIN = os.path.join(ROOT, "tools/agent-runtime/agent_runtime.py")

    def __init__(self, kubesim, inbox, namespace="default", all_namespaces=False,
                 publish_to=None, publish_address=None, children=0, max_depth=None,
                 work_ms=50, exit_after_idle=None, password=None, username=None, extra=(),
                 wait_ready=True):
        self.dir = tempfile.mkdtemp(prefix="agent-runtime-")
        self.log_path = os.path.join(self.dir, "events.jsonl")
        self.err_path = os.path.join(self.dir, "stderr.log")
        args = [sys.executable, self.BIN, "--apiserver", kubesim.url,
                "--inbox", inbox, "--log", self.log_path, "--work-ms", str(work_ms)]
        # A real cluster (tests/e2e/kube.py) has no admin port: the pod ends
        # as the kubelet would say.
        args += ["--admin", kubesim.admin] if kubesim.admin else \
            ["--finish-via", "pod-status"]
        if all_namespaces:
            args.append("--all-namespaces")
        else:
            args += ["--namespace", namespace]
        if kubesim.ca:
            args += ["--ca-file", kubesim.ca]
        if kubesim.token:
            args += ["--token-file", self._secret("token", kubesim.token)]
        if password is not None:
            args += ["--password-file", self._secret("password", password)]
        if username:
            args += ["--username", username]
        if publish_to:
            args += ["--publish-to", publish_to]
        if publish_address:
            args += ["--publish-address", publish_address]
        if children:
            args += ["--children", str(children)]
        if max_depth is not None:
            args += ["--max-depth", str(max_depth)]
        if exit_after_idle is not None:
            args += ["--exit-after-idle", str(exit_after_idle)]
        args += list(extra)
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.err)
        if wait_ready:
            try:
                self.wait_ready()
            except BaseException:
                self.cleanup()     # the caller never gets the object to stop it
                raise

    def _secret(self, name, value):
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return path

    def events(self, event=None):
        """Every complete line of the log, parsed; only `event` ones if given."""
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n")[:-1]:     # the last piece may be half written
            if line.strip():
                rec = json.loads(line)
                if event is None or rec.get("event") == event:
                    out.append(rec)
        return out

    def ids(self, event):
        return [e.get("id") for e in self.events(event)]

    def received_ids(self):
        return self.ids("received")

    def finished_ids(self):
        return self.ids("finished")

    def stderr(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_event(self, event, n=1, pred=None, timeout=30):
        """Waits until at least n `event` records (matching pred) are logged; returns them."""
        def got():
            if self.proc.poll() is not None and not self.events("stopped"):
                raise AssertionError("agent-runtime exited %s: %s"
                                     % (self.proc.returncode, self.stderr()[-2000:]))
            evs = [e for e in self.events(event) if pred is None or pred(e)]
            return evs if len(evs) >= n else None
        return wait_for(got, timeout, what="%d %r event(s) from agent-runtime" % (n, event))

    def wait_ready(self, timeout=20):
        return self.wait_event("ready", 1, timeout=timeout)

    def wait_received(self, n, timeout=30):
        return self.wait_event("received", n, timeout=timeout)

    def wait_finished(self, n, timeout=30):
        return self.wait_event("finished", n, timeout=timeout)

    def stop(self):
        """SIGTERM, then waits; returns the exit status."""
        rc = stop_pid(self.proc)
        if not self.err.closed:
            self.err.close()
        return rc

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
