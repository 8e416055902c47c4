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
import tempfile
import time
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

    def _read(self, f):
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
            return None if n < 0 else [self._read(f) for _ in range(n)]
        raise OSError("bad RESP reply %r" % line)


def http(method, url, body=None, ctype="application/json", timeout=10, headers=None):
    """Returns (code, parsed JSON or text)."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            code, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        code, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)
    try:
        return code, json.loads(raw)
    except ValueError:
        return code, raw.decode(errors="replace")


class KubeSim:
    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [os.path.join(ROOT, "tools/kube-sim/kube-sim"), "--port", "0",
             "--admin-port", "0"] + list(args),
            stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("kube-sim did not start")
        info = json.loads(line)
        self.url, self.admin, self.ca = info["url"], info["admin"], info.get("ca")
        self.token = None      # bearer token for api(), when --tokens is on

    def stop(self):
        stop_pid(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()

    def api(self, method, path, body=None, ctype="application/json"):
        auth = {"Authorization": "Bearer " + self.token} if self.token else None
        return http(method, self.url + path, body, ctype, headers=auth)

    def adm(self, method, path, body=None):
        return http(method, self.admin + path, body)

    def create_deployment(self, name, replicas=0, ns="default"):
        body = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"replicas": replicas,
                         "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "agent", "image": "agent:1"}]}}}}
        code, obj = self.api("POST", "/apis/apps/v1/namespaces/%s/deployments" % ns, body)
        if code != 201:
            raise RuntimeError("create deployment: %s %s" % (code, obj))
        return obj

    def replicas(self, name, ns="default"):
        code, obj = self.api("GET", "/apis/apps/v1/namespaces/%s/deployments/%s" % (ns, name))
        if code != 200:
            raise RuntimeError("get deployment: %s %s" % (code, obj))
        return obj["spec"].get("replicas", 1)

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


class Daemon:
    """The agentscaler daemon under test; AGENTSCALER_WRAPPER (valgrind)."""

    def __init__(self, config, kubesim, extra=(), binary=None, log_path=None):
        self.dir = tempfile.mkdtemp(prefix="agentscaler-")
        self.config_path = os.path.join(self.dir, "pools.json")
        self.write_config(config)
        self.metrics_port = free_port()
        self.binary = binary or os.environ.get("AGENTSCALER_BIN",
                                               os.path.join(ROOT, "build/release/agentscaler"))
        wrapper = os.environ.get("AGENTSCALER_WRAPPER", "").split()
        self.log_path = log_path or os.path.join(self.dir, "daemon.log")
        self.log = open(self.log_path, "wb")
        args = wrapper + [self.binary, "--config", self.config_path,
                          "--metrics-addr", "127.0.0.1:%d" % self.metrics_port,
                          "--apiserver", kubesim.url] + list(extra)
        self.proc = subprocess.Popen(args, stderr=self.log, stdout=self.log)
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
        return http("GET", "http://127.0.0.1:%d%s" % (self.metrics_port, path))

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


def pool(name, redis_url, queue, target, **scaling):
    spec = {"source": {"type": "redis-list", "address": redis_url, "queue": queue},
            "target": {"kind": "Deployment", "name": target},
            "scaling": scaling}
    return {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentPool",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}
