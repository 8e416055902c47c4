"""A real redis-server on a free loopback port (Redis), and a RESP client
for any redis:// address (RespConn).  Standard library only."""
import socket
import subprocess
import tempfile

from procs import check_port_in_use, free_port, listening, start_retrying, stop_pid, wait_for


class Redis:
    """A real redis-server on a free loopback port, talked to in RESP.  A
    port taken before it binds: another port (procs.start_retrying) on the
    first start; restart() keeps the port and fails if it is gone."""

    def __init__(self, extra=()):
        self.extra = list(extra)
        self.proc = self.out = None
        self.port = None

        def first_start():
            self.port = free_port()
            self.start()
        start_retrying(first_start)

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self):
        if self.out is not None:
            self.out.close()
        self.out = tempfile.TemporaryFile()        # its warnings: a bind failure
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--loglevel", "warning"] + self.extra,
            stdout=self.out, stderr=subprocess.STDOUT)
        try:
            wait_for(self._up, 10, what="redis-server to answer on port %d" % self.port)
        except BaseException:
            stop_pid(self.proc)
            raise

    def _up(self):
        """Answers, and it is ours that listens (not another server that
        took the port while ours failed to bind it)."""
        if self.proc.poll() is not None:
            self.out.seek(0)
            text = self.out.read().decode(errors="replace")
            check_port_in_use(text, "redis-server")
            raise AssertionError("redis-server exited %s: %s" % (self.proc.returncode,
                                                                  text[-2000:]))
        return self._ping() and listening(self.proc.pid, self.port)

    def _ping(self):
        try:
            return self.cmd("PING") == "PONG"
        except RuntimeError as e:
            return str(e).startswith("NOAUTH")   # up, with requirepass
        except OSError:
            return False

    def stop(self):
        stop_pid(self.proc)
        if self.out is not None:
            self.out.close()
            self.out = None

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
