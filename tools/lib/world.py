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
    seconds: one broker per test module (setUpClass).  The tests talk to it
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


def pool_rabbit(name, address, queue, target, count_in_flight=False, **scaling):
    """An AgentPool reading a RabbitMQ queue, over AMQP or the management API by scheme."""
    p = pool(name, address, queue, target, **scaling)
    p["spec"]["source"]["type"] = "rabbitmq"
    if count_in_flight:
        p["spec"]["source"]["countInFlight"] = True
    return p


class AmqpConsumer:
    """A minimal AMQP 0-9-1 consumer (standard library only) that takes n
    messages with basic.qos prefetch n and acknowledges none, so that they
    stay unacknowledged (in flight) until close().  Heartbeats off."""

    def __init__(self, port, queue, n, vhost="/", timeout=20):
        import struct
        self._st = struct
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self._expect(0, 10, 10)                                  # connection.start
        self._method(0, 10, 11, b"\x00\x00\x00\x00" + self._ss("PLAIN") +
                     self._ls(b"\x00guest\x00guest") + self._ss("en_US"))
        args = self._expect(0, 10, 30)                           # connection.tune
        chmax, fmax = struct.unpack(">HI", args[:6])
        self._method(0, 10, 31, struct.pack(">HIH", chmax, fmax, 0))
        self._method(0, 10, 40, self._ss(vhost) + self._ss("") + b"\x00")
        self._expect(0, 10, 41)
        self._method(1, 20, 10, self._ss(""))
        self._expect(1, 20, 11)
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

    def _ss(self, s):
        b = s.encode() if isinstance(s, str) else s
        return bytes([len(b)]) + b

    def _ls(self, b):
        return self._st.pack(">I", len(b)) + b

    def _method(self, ch, cls, meth, args):
        payload = self._st.pack(">HH", cls, meth) + args
        self.sock.sendall(self._st.pack(">BHI", 1, ch, len(payload)) + payload + b"\xce")

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
            if (c, m) in ((10, 50), (20, 40)):
                raise OSError("closed by the broker: %r" % payload[4:80])

    def close(self):
        """Drops the connection: the broker requeues what was not acknowledged."""
        self.sock.close()
