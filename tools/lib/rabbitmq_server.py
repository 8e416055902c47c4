"""A private rabbitmq-server (RabbitMQ, one per module: SharedRabbitMQ), and
minimal AMQP 0-9-1 clients (AmqpConsumer, AmqpPublisher).  Standard library
only."""
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

from procs import (PortInUse, check_port_in_use, free_port, listening, start_retrying,
                   stop_pid, wait_for)


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
        self.proc = self.epmd = None

        def first_start():
            """A port taken before it bound it: the attempt's processes
            stopped, its files gone, four other ports."""
            if self.epmd is not None:
                self._halt()
                for sub in ("mnesia", "log"):
                    shutil.rmtree(os.path.join(self.dir, sub), ignore_errors=True)
                # The outputs are appended to: the last attempt's bind
                # error must not be read as the next one's.
                for name in ("epmd.log", "server.out"):
                    try:
                        os.unlink(os.path.join(self.dir, name))
                    except FileNotFoundError:
                        pass
            self._configure()
            self.start()
        try:
            start_retrying(first_start)
        except BaseException:
            self.stop()
            raise

    def _configure(self):
        """Picks the four ports; writes the configuration and environment."""
        self.amqp_port, self.mgmt_port = free_port(), free_port()
        self.dist_port, self.epmd_port = free_port(), free_port()
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

    def _epmd_up(self):
        """Our epmd listens (not another process on a port it lost)."""
        if self.epmd.poll() is not None:
            if self.epmd.returncode == 0:
                # What epmd does when its port is taken: it takes the
                # listener for another epmd and exits 0 without a word
                # (its -d says "there is already a epmd running").
                raise PortInUse("epmd: port %d taken (epmd exited 0)" % self.epmd_port)
            raise RuntimeError("epmd exited %s (see %s)" % (self.epmd.returncode, self.dir))
        return listening(self.epmd.pid, self.epmd_port)

    def _logs(self):
        """What epmd and the broker wrote (their bind errors among it)."""
        out = []
        for top, _, files in os.walk(self.dir):
            for name in files:
                if name.endswith((".log", ".out")):
                    try:
                        with open(os.path.join(top, name), errors="replace") as f:
                            out.append(f.read()[-20000:])
                    except OSError:
                        pass
        return "\n".join(out)

    def start(self):
        self.epmd = self._spawn(["/usr/bin/epmd", "-address", "127.0.0.1", "-port",
                                 str(self.epmd_port)], "epmd.log")
        wait_for(self._epmd_up, 10, what="epmd")
        self.proc = self._spawn([self.BIN + "rabbitmq-server"], "server.out")
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                check_port_in_use(self._logs(), "rabbitmq-server")
                raise RuntimeError("rabbitmq-server exited %s (see %s)" % (self.proc.returncode, self.dir))
            # An early await_startup exits 69 before the node has registered.
            if self.ctl("await_startup", "--timeout", "60")[0] == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError("rabbitmq-server did not start in 120 s (see %s)" % self.dir)
            time.sleep(0.2)

    def stop_app(self):
        """A broker restart as clients see it: every connection and listener closes."""
        if self.ctl("stop_app")[0] != 0:
            raise RuntimeError("rabbitmqctl stop_app failed")

    def start_app(self):
        if self.ctl("start_app")[0] != 0 or self.ctl("await_startup", "--timeout", "60")[0] != 0:
            raise RuntimeError("rabbitmqctl start_app failed")

    def _halt(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.ctl("stop", timeout=60)
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        stop_pid(self.epmd)
        self.proc = self.epmd = None

    def stop(self):
        self._halt()
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
