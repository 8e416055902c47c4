#!/usr/bin/env python3
"""agent-runtime: the example agent that stands in for the agent process of
every sandbox agentscaler hands a task to (dispatch mode, DESIGN.md 7).

It watches the SandboxClaims labelled app.kubernetes.io/managed-by=agentscaler,
and for each claim bound to a sandbox runs one agent: wait for the task in the
sandbox's inbox, log it, "work", optionally publish sub-tasks, then finish the
sandbox through kube-sim's admin hook (the pod Succeeds, so the Sandbox and the
claim report Finished=True and agentscaler releases the claim).

Concurrency: a fixed handful of threads however many sandboxes are live, so a
thousand sandboxes do not mean a thousand threads:
  - one watcher (list + watch of the claims, re-list on 410);
  - inbox: for Redis one thread and one connection blocking in a single BRPOP
    over every live inbox key plus a private wake-up key (pushed to when the
    set of keys changes, so a new sandbox is listened to at once); for
    RabbitMQ --rabbit-pollers threads sharing a schedule of management-API
    "get" calls with a per-queue backoff (the management API has no blocking
    or multi-queue get, and AMQP is not in the standard library);
  - one timer thread holding the working agents in a heap (work is a wait);
  - --workers threads for the network side of finishing (publish children,
    POST finish), each call bounded by a timeout.
Every agent is a small state record in one table behind one lock.

Standard library only; the RESP client is tools/lib/world.py's RespConn.

--handoff http (issue 16, docs/protocol.md): no inbox; agentscaler hands
each sandbox its task over the agent protocol.  Every live sandbox has its
own protocol runtime from clients/python (agentscaler.runtime),
whose handler is this agent's work, listening on an address of its own
(--listen-net, --port) as a pod listens on its pod IP, for the real
sandbox-router to reach by X-Sandbox-Pod-IP and X-Sandbox-Port;
children are spawned through agentscaler (ctx.spawn), and the sandbox is
finished once agentscaler acknowledges the task's end (DELETE), as a pod
would exit then.
"""
import argparse
import base64
import errno
import heapq
import http.client
import ipaddress
import itertools
import json
import os
import random
import selectors
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer

_TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_TOOLS, "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(_TOOLS), "clients", "python"))
from redis_server import RespConn, parse_redis_url  # noqa: E402
import podstatus  # noqa: E402
from agentscaler import protocol as AP  # noqa: E402
from agentscaler.runtime import (ChildFailed, ChildRejected, Runtime as ProtoRuntime,  # noqa: E402
                                 Server as ProtoServer, TaskFailed, make_handler)

CLAIMS = "/apis/extensions.agents.x-k8s.io/v1beta1"
MANAGED = "app.kubernetes.io/managed-by=agentscaler"
A_REQUESTED = "agents.x-k8s.io/client-first-requested-at"
HTTP_TIMEOUT = 10.0          # every plain request to kube-sim, its admin port or RabbitMQ
WATCH_SECONDS = 60           # server-side watch timeout; the socket waits a little longer
PUBLISH_TYPES = ("redis-list", "redis-stream", "rabbitmq")

# Agent states.
WAITING, WORKING, FINISHING, DONE = "waiting", "working", "finishing", "done"


def diag(msg, **kw):
    """A diagnostic line on stderr (never a credential)."""
    kw.update(t=round(time.time(), 6), msg=msg)
    sys.stderr.write(json.dumps(kw, sort_keys=True) + "\n")
    sys.stderr.flush()


def read_secret(path, env):
    if path:
        with open(path) as f:
            return f.read().strip()
    if env:
        v = os.environ.get(env)
        if v is None:
            raise SystemExit("agent-runtime: environment variable %s is not set" % env)
        return v
    return None


class EventLog:
    """JSON lines, one write per event, flushed at once (tests tail it)."""

    def __init__(self, path):
        self.f = open(path, "a", buffering=1) if path != "-" else sys.stdout
        self.lock = threading.Lock()

    def write(self, event, **fields):
        rec = {"event": event}
        rec.update(fields)
        rec["t"] = time.time()
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        with self.lock:
            self.f.write(line)
            self.f.flush()

    def close(self):
        if self.f is not sys.stdout:
            self.f.close()


class HttpError(Exception):
    pass


class HttpClient:
    """Small JSON-over-HTTP(S) client: a new connection per request (each one
    bounded by a timeout), an optional bearer token re-read from its file at
    every request so that a rotated token is picked up, optional Basic auth."""

    def __init__(self, base, ca_file=None, token_file=None, basic=None, insecure=False):
        u = urllib.parse.urlsplit(base)
        if "@" in u.netloc:
            raise ValueError("credentials are not allowed in a URL; use the password/token "
                             "file options")
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("expected an http:// or https:// URL, got %r" % base)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or (443 if self.https else 80)
        self.prefix = u.path.rstrip("/")
        self.token_file = token_file
        self.basic = basic
        self.ctx = None
        if self.https:
            self.ctx = ssl.create_default_context(cafile=ca_file)
            if insecure:
                self.ctx.check_hostname = False
                self.ctx.verify_mode = ssl.CERT_NONE

    def connect(self, timeout):
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def headers(self, body):
        h = {"Accept": "application/json"}
        if body is not None:
            h["Content-Type"] = "application/json"
        if self.token_file:
            with open(self.token_file) as f:
                h["Authorization"] = "Bearer " + f.read().strip()
        elif self.basic:
            h["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % self.basic).encode()).decode()
        return h

    def request(self, method, path, body=None, timeout=HTTP_TIMEOUT):
        """(status, parsed JSON or None).  OSError / HTTPException on I/O."""
        data = json.dumps(body).encode() if body is not None else None
        c = self.connect(timeout)
        try:
            c.request(method, self.prefix + path, body=data, headers=self.headers(data))
            r = c.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw) if raw else None
            except ValueError:
                return r.status, None
        finally:
            c.close()


def rabbit_address(url):
    """http[s]://host:port[/vhost] -> (base URL, vhost), as agentscaler reads
    a management-API address (scalers/rabbitmq_source.c): the vhost is one
    percent-decoded path segment, "/" when absent."""
    u = urllib.parse.urlsplit(url)
    if u.query or u.fragment:
        raise ValueError("query strings and fragments are not supported; the vhost goes "
                         "in the path: /vhost")
    seg = u.path[1:]
    if "/" in seg:
        raise ValueError("the vhost is one path segment; write a '/' inside a vhost name "
                         "as %2F")
    return "%s://%s" % (u.scheme, u.netloc), urllib.parse.unquote(seg) if seg else "/"


# ---------------------------------------------------------------- inboxes


class RedisInbox:
    """Every live inbox list behind one BRPOP on one connection."""

    transport = "redis"

    def __init__(self, rt, url, password, username):
        self.rt = rt
        self.url, self.password, self.username = url, password, username
        self.conn = RespConn(url, password, username)
        self.wake_conn = RespConn(url, password, username)
        self.wake_lock = threading.Lock()
        self.wake_pending = False
        self.wake_key = "agentscaler-runtime:wake:%s:%d:%08x" % (
            socket.gethostname(), os.getpid(), random.getrandbits(32))
        self.block = 1.0         # BRPOP timeout, seconds; the wake key ends it earlier

    @staticmethod
    def name(ns, sandbox):
        return "agentscaler:inbox:%s:%s" % (ns, sandbox)

    def check(self):
        self.conn.cmd("PING")

    def wake(self):
        """The key set changed (or we stop): end the current BRPOP now."""
        with self.wake_lock:
            if self.wake_pending:
                return
            try:
                self.wake_conn.cmd("LPUSH", self.wake_key, "1", timeout=2.0)
                self.wake_pending = True
            except (OSError, RuntimeError) as e:
                diag("redis wake-up push failed", error=str(e))

    def run(self):
        backoff = 0.1
        while not self.rt.stopping.is_set():
            # Clear the flag before the snapshot: a key added after it pushes
            # a new wake-up, which ends the BRPOP below at once.
            with self.wake_lock:
                self.wake_pending = False
            keys = self.rt.table.inbox_names()
            random.shuffle(keys)         # BRPOP serves the first non-empty key: be fair
            try:
                r = self.conn.cmd("BRPOP", self.wake_key, *keys, self.block,
                                  timeout=self.block + 5.0)
                backoff = 0.1
            except (OSError, RuntimeError) as e:
                if self.rt.stopping.is_set():
                    break
                diag("redis inbox read failed; retrying", error=str(e), retry_in=backoff)
                self.rt.stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if r is None:
                continue
            key, val = r
            if key == self.wake_key:
                continue
            agent = self.rt.table.by_inbox(key)
            if agent is None:
                # Its claim went away between the key snapshot and the pop: put
                # the message back where it was (the tail BRPOP takes from).
                try:
                    self.conn.cmd("RPUSH", key, val)
                except (OSError, RuntimeError) as e:
                    diag("could not put back a message for a gone sandbox", inbox=key,
                         error=str(e))
                continue
            self.rt.deliver(agent, val, {"transport": "redis", "inbox": key})

    def close(self):
        try:
            self.wake_conn.cmd("DEL", self.wake_key, timeout=2.0)
        except (OSError, RuntimeError):
            pass
        self.conn.close()
        self.wake_conn.close()


class RabbitInbox:
    """Management-API gets (ackmode ack_requeue_false) on every live inbox
    queue, scheduled in one heap: a queue that yielded a message is asked
    again at once, an empty one after a growing pause (poll_min .. poll_max)."""

    transport = "rabbitmq"

    def __init__(self, rt, url, user, password, pollers, poll_min, poll_max):
        base, self.vhost = rabbit_address(url)
        self.http = HttpClient(base, basic=(user, password))
        self.rt = rt
        self.pollers = pollers
        self.poll_min, self.poll_max = poll_min, poll_max
        self.heap = []
        self.cv = threading.Condition()
        self.seq = itertools.count()
        self.known = set()

    @staticmethod
    def name(ns, sandbox):
        return "agentscaler.inbox.%s.%s" % (ns, sandbox)

    def qpath(self, queue):
        return "/api/queues/%s/%s" % (urllib.parse.quote(self.vhost, safe=""),
                                      urllib.parse.quote(queue, safe=""))

    def check(self):
        code, obj = self.http.request("GET", "/api/vhosts/" +
                                      urllib.parse.quote(self.vhost, safe=""))
        if code != 200:
            raise OSError("RabbitMQ management API: GET vhost %r answered %s %s"
                          % (self.vhost, code, (obj or {}).get("reason", "")))

    def wake(self):
        with self.cv:
            for key in self.rt.table.inbox_names():
                if key not in self.known:
                    self.known.add(key)
                    heapq.heappush(self.heap, (time.monotonic(), next(self.seq), key,
                                               self.poll_min))
            self.cv.notify_all()

    def run(self):
        while not self.rt.stopping.is_set():
            with self.cv:
                while not self.rt.stopping.is_set():
                    now = time.monotonic()
                    if self.heap and self.heap[0][0] <= now:
                        _, _, key, pause = heapq.heappop(self.heap)
                        break
                    self.cv.wait(min(self.heap[0][0] - now, 1.0) if self.heap else 1.0)
                else:
                    return
            agent = self.rt.table.by_inbox(key)
            if agent is None:
                with self.cv:
                    # Re-checked under cv: wake() may have just re-added it.
                    if self.rt.table.by_inbox(key) is None:
                        self.known.discard(key)
                    else:
                        heapq.heappush(self.heap, (time.monotonic(), next(self.seq), key,
                                                   self.poll_min))
                continue
            got = 0
            try:
                code, msgs = self.http.request("POST", self.qpath(key) + "/get",
                                               {"count": 10, "ackmode": "ack_requeue_false",
                                                "encoding": "auto"})
                if code == 200 and isinstance(msgs, list):
                    for m in msgs:
                        got += 1
                        body = m.get("payload", "")
                        if m.get("payload_encoding") == "base64":
                            body = base64.b64decode(body).decode("utf-8", "replace")
                        props = m.get("properties") or {}
                        arrival = {"transport": "rabbitmq", "inbox": key,
                                   "redelivered": m.get("redelivered"),
                                   "remaining": m.get("message_count")}
                        for p in ("message_id", "timestamp"):
                            if p in props:
                                arrival[p] = props[p]
                        self.rt.deliver(agent, body, arrival)
                elif code != 404:    # 404: agentscaler has not declared it yet
                    diag("rabbitmq get failed", queue=key, code=code,
                         reason=(msgs or {}).get("reason") if isinstance(msgs, dict) else None)
            except (OSError, http.client.HTTPException) as e:
                diag("rabbitmq get failed", queue=key, error=str(e))
            pause = self.poll_min if got else min(pause * 2, self.poll_max)
            with self.cv:
                heapq.heappush(self.heap, (time.monotonic() + (0 if got else pause),
                                           next(self.seq), key, pause))
                self.cv.notify()

    def close(self):
        with self.cv:
            self.cv.notify_all()


# ---------------------------------------------------------------- publishers


class HttpHandoff:
    """--handoff http: the "inbox" of every sandbox is its protocol runtime,
    listening on an address of its own as a pod listens on its pod IP, so
    that agent-sandbox's sandbox-router reaches it by X-Sandbox-Pod-IP and
    X-Sandbox-Port (tools/lib/router_proc.py runs the real one; kube-sim
    without --pod-ip-range has no pod IPs): the claim's pod IP
    (status.sandbox.podIPs[0]) when it is a loopback address, else the next
    free address of --listen-net; port --port (0: a free one per sandbox).
    A "listening" event names each (namespace, sandbox, ip, port).  One
    thread accepts on every sandbox's socket (a selector); each connection
    gets a thread, a long-poll holding one."""

    transport = "http"

    def __init__(self, rt, net, port):
        self.rt = rt
        self.net = ipaddress.ip_network(net)
        if not self.net.is_loopback:
            raise ValueError("--listen-net must be a loopback network (127.0.0.0/8)")
        self.port = port
        self.lock = threading.Lock()
        self.servers = {}         # name() -> (agentscaler.runtime.Server, Runtime)
        self.closing = []         # servers of gone sandboxes, closed by run()
        self.used = set()         # addresses (ip, port) held
        self.hosts = None         # iterator over the network's addresses
        self.warm = {}            # --listen-warm: name() -> pod IP of sandboxes not claimed
        self.wake_r, self.wake_w = socket.socketpair()

    @staticmethod
    def name(ns, sandbox):
        return "%s/%s" % (ns, sandbox)

    def check(self):
        pass

    def _listen(self, handler, pod_ip):
        """A server on pod_ip, or on the next free address of the network:
        (server, ip)."""
        if pod_ip:
            try:
                srv = ProtoServer((pod_ip, self.port), handler)
                srv.timeout = 0
                return srv, pod_ip
            except OSError as e:
                diag("cannot listen on the pod IP; taking one of --listen-net", ip=pod_ip,
                     error=str(e))
        for _ in range(self.net.num_addresses):
            if self.hosts is None:
                self.hosts = iter(self.net.hosts())
            ip = str(next(self.hosts, None) or "")
            if not ip:
                self.hosts = None
                continue
            if (ip, self.port) in self.used:
                continue
            try:
                srv = ProtoServer((ip, self.port), handler)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    continue          # another process holds it: the next one
                raise
            srv.timeout = 0           # handle_request() takes what select() saw
            return srv, ip
        raise OSError(errno.EADDRINUSE, "no free address in %s" % self.net)

    def set_warm(self, warm):
        """--listen-warm: the sandboxes (name() -> loopback pod IP) to serve
        before any claim binds them, as a warm pod's runtime listens from
        its start."""
        with self.lock:
            if warm == self.warm:
                return
            self.warm = warm
        self.wake()

    def _agent(self, name, timeout):
        """The agent of sandbox name once its claim is seen (a warm
        runtime may be handed its task before this process saw the bind),
        or None after timeout."""
        end = time.monotonic() + timeout
        while True:
            with self.rt.table.lock:
                agent = self.rt.table.inboxes.get(name)
            if agent is not None or time.monotonic() >= end or self.rt.stopping.is_set():
                return agent
            time.sleep(0.005)

    def _warm_work(self, name, task, ctx):
        accepted_t = time.time()      # before waiting for this process to see the bind
        agent = self._agent(name, 30.0)
        if agent is None:
            raise TaskFailed("runtime.unbound", "no claim of this sandbox was seen",
                             retryable=True)
        return self.rt.work_http(agent, task, ctx, accepted_t)

    def _warm_log(self, name, rec):
        agent = self._agent(name, 5.0 if rec.get("event") == "acknowledged" else 0)
        if agent is not None:
            self.rt.on_protocol(agent, rec)

    def _serve_warm(self, live):
        """Caller holds self.lock: a runtime for every warm sandbox not
        served yet, its handler finding its agent when the task comes."""
        for name, ip in self.warm.items():
            if name in self.servers or name in live:
                continue
            r = ProtoRuntime(lambda task, ctx, n=name: self._warm_work(n, task, ctx),
                             port=None, log=lambda rec, n=name: self._warm_log(n, rec))
            try:
                srv, got = self._listen(make_handler(lambda _req, r=r: r), ip)
            except OSError as e:
                diag("cannot listen for a warm sandbox", sandbox=name, error=str(e))
                continue
            self.used.add((got, srv.server_address[1]))
            self.servers[name] = (srv, r)
            ns, _, sandbox = name.partition("/")
            self.rt.log.write("listening", namespace=ns, sandbox=sandbox, claim=None, ip=got,
                              port=srv.server_address[1], warm=True)

    def wake(self):
        """Makes the runtimes follow the table: one per live agent (and,
        with --listen-warm, one per warm sandbox)."""
        with self.rt.table.lock:
            live = dict(self.rt.table.inboxes)
        gone = []
        with self.lock:
            self._serve_warm(live)
            for name, agent in live.items():
                if name in self.servers:
                    srv, r = self.servers[name]
                    if not agent.pod_ip or srv.server_address[0] == agent.pod_ip or \
                            r.health()[1]["task"] is not None:
                        continue
                    # Its pod IP came after it listened elsewhere, before any task.
                    del self.servers[name]
                    self.used.discard(srv.server_address[:2])
                    self.closing.append(srv)
                    gone.append(r)
                r = ProtoRuntime(lambda task, ctx, a=agent: self.rt.work_http(a, task, ctx),
                                 port=None, log=lambda rec, a=agent: self.rt.on_protocol(a, rec))
                try:
                    srv, ip = self._listen(make_handler(lambda _req, r=r: r), agent.pod_ip)
                except OSError as e:
                    diag("cannot listen for a sandbox", sandbox=name, error=str(e))
                    continue
                self.used.add((ip, srv.server_address[1]))
                self.servers[name] = (srv, r)
                self.rt.log.write("listening", namespace=agent.ns, sandbox=agent.sandbox,
                                  claim=agent.claim, ip=ip, port=srv.server_address[1])
            for name in list(self.servers):
                if name not in live and name not in self.warm:
                    srv, r = self.servers.pop(name)
                    self.used.discard(srv.server_address[:2])
                    self.closing.append(srv)
                    gone.append(r)
        for r in gone:
            r.stop()              # its long-polls answer at once
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass

    def run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.wake_r, selectors.EVENT_READ, None)
        registered = set()
        try:
            while not self.rt.stopping.is_set():
                with self.lock:
                    want = {srv for srv, _ in self.servers.values()}
                    closing, self.closing = self.closing, []
                for srv in registered - want:
                    sel.unregister(srv)
                registered &= want
                for srv in closing:
                    srv.close_all()
                for srv in want - registered:
                    sel.register(srv, selectors.EVENT_READ, srv)
                    registered.add(srv)
                for key, _ in sel.select(0.5):
                    if key.data is None:
                        self.wake_r.recv(4096)
                    else:
                        key.data.handle_request()
        finally:
            sel.close()

    def close(self):
        with self.lock:
            servers, self.servers = list(self.servers.values()), {}
            servers += [(srv, None) for srv in self.closing]
            self.closing = []
        for srv, r in servers:
            if r is not None:
                r.stop()
            srv.close_all()
        self.wake_r.close()
        self.wake_w.close()


class Publisher:
    """Where sub-tasks go: a Redis list (LPUSH, as producers do), a Redis
    stream (XADD <stream> * task <json>) or a RabbitMQ queue (management API
    publish on the default exchange, persistent, message_id = task id)."""

    def __init__(self, spec, address, password, username):
        kind, _, name = spec.partition(":")
        if kind not in PUBLISH_TYPES or not name:
            raise ValueError("--publish-to must be TYPE:NAME with TYPE one of %s"
                             % ", ".join(PUBLISH_TYPES))
        self.kind, self.target = kind, name
        self.lock = threading.Lock()
        if kind.startswith("redis"):
            parse_redis_url(address)
            self.conn = RespConn(address, password, username)
        else:
            if not address.startswith(("http://", "https://")):
                raise ValueError("publishing to RabbitMQ goes through the management API: "
                                 "give an http://host:15672/vhost address")
            base, self.vhost = rabbit_address(address)
            self.http = HttpClient(base,
                                   basic=(username or "guest",
                                          password if password is not None else "guest"))

    def publish(self, msgs):
        """Publishes every message (dicts with "id"); raises on failure."""
        if self.kind == "rabbitmq":
            path = "/api/exchanges/%s/amq.default/publish" % urllib.parse.quote(self.vhost,
                                                                                safe="")
            for m in msgs:
                code, obj = self.http.request("POST", path, {
                    "properties": {"message_id": m["id"], "delivery_mode": 2,
                                   "content_type": "application/json"},
                    "routing_key": self.target, "payload": json.dumps(m),
                    "payload_encoding": "string"})
                if code != 200 or not (obj or {}).get("routed"):
                    raise OSError("RabbitMQ publish to queue %r: %s %s" % (
                        self.target, code, obj if code != 200 else "not routed (no such queue)"))
            return
        if self.kind == "redis-list":
            cmds = [("LPUSH", self.target, json.dumps(m)) for m in msgs]
        else:
            cmds = [("XADD", self.target, "*", "task", json.dumps(m)) for m in msgs]
        with self.lock:
            for r in self.conn.pipeline(cmds):
                if isinstance(r, RuntimeError):
                    raise r

    def close(self):
        if self.kind.startswith("redis"):
            self.conn.close()


# ---------------------------------------------------------------- agents


def _loopback_ip(ip):
    """ip when it is a loopback address (a pod IP this process can listen
    on: kube-sim --pod-ip-range 127.x, kwok's pods on a real cluster here),
    else None."""
    try:
        return ip if ip and ipaddress.ip_address(ip).is_loopback else None
    except ValueError:
        return None


class Agent:
    __slots__ = ("ns", "claim", "uid", "sandbox", "inbox", "state", "bound_t", "requested_at",
                 "task", "gone", "children", "pod_ip", "again")

    def __init__(self, ns, claim, uid, sandbox, inbox, requested_at):
        self.ns, self.claim, self.uid, self.sandbox = ns, claim, uid, sandbox
        self.inbox = inbox
        self.state = WAITING
        self.bound_t = time.time()
        self.requested_at = requested_at
        self.task = None          # dict: id, parent, root, depth, pool
        self.gone = False         # the claim was deleted
        self.children = 0         # sub-tasks published
        self.pod_ip = None        # the claim's status.sandbox.podIPs[0], when on loopback
        self.again = False        # --handoff http: the task failed retryable (attempt + 1 may come)


class Table:
    """Every agent, keyed by claim (namespace, name, uid) and by inbox name.
    An agent lives as long as its claim: a finished agent keeps listening
    to its inbox so that a late second delivery is seen (and drained) too."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_claim = {}
        self.inboxes = {}
        self.seen = {}            # (ns, task id) -> sandbox that got it first
        self.last_activity = time.monotonic()

    def inbox_names(self):
        with self.lock:
            return list(self.inboxes)

    def by_inbox(self, name):
        with self.lock:
            return self.inboxes.get(name)


class Runtime:
    def __init__(self, args):
        self.args = args
        self.stopping = threading.Event()
        self.table = Table()
        self.log = EventLog(args.log)
        password = read_secret(args.password_file, args.password_env)
        self.http = args.handoff == "http"
        if self.http:
            self.inbox = HttpHandoff(self, args.listen_net, args.port)
        elif args.inbox.startswith("redis://"):
            parse_redis_url(args.inbox)
            self.inbox = RedisInbox(self, args.inbox, password, args.username)
        elif args.inbox.startswith(("http://", "https://")):
            self.inbox = RabbitInbox(self, args.inbox, args.username or "guest",
                                     password if password is not None else "guest",
                                     args.rabbit_pollers, args.poll_min_ms / 1000.0,
                                     args.poll_max_ms / 1000.0)
        elif args.inbox.startswith(("amqp://", "amqps://")):
            raise ValueError("--inbox: AMQP needs a client library this runtime does not "
                             "have; give the RabbitMQ management API instead "
                             "(http://host:15672/vhost)")
        else:
            raise ValueError("--inbox must be redis://host:port/db or "
                             "http://host:15672/vhost (RabbitMQ management API)")
        self.publisher = None
        if args.publish_to:
            self.publisher = Publisher(args.publish_to, args.publish_address or args.inbox,
                                       password, args.username)
        self.kube = HttpClient(args.apiserver, args.ca_file, args.token_file,
                               insecure=args.insecure_skip_tls_verify)
        self.admin = HttpClient(args.admin) if args.admin else None
        self.timers = []
        self.timer_cv = threading.Condition()
        self.timer_seq = itertools.count()
        self.pool = ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="finish")
        self.pending = 0           # finish jobs submitted and not done
        self.watch_conn = None
        self.rv = None             # claims seen up to here
        self.ready = False

    # ------------------------------------------------------------ claims
    def claims_path(self):
        if self.args.all_namespaces:
            return CLAIMS + "/sandboxclaims"
        return CLAIMS + "/namespaces/%s/sandboxclaims" % urllib.parse.quote(
            self.args.namespace, safe="")

    def on_claim(self, typ, obj):
        md = obj.get("metadata") or {}
        ns, name, uid = md.get("namespace"), md.get("name"), md.get("uid")
        key = (ns, name, uid)
        st = obj.get("status") or {}
        sandbox = (st.get("sandbox") or {}).get("name")
        pod_ip = _loopback_ip(((st.get("sandbox") or {}).get("podIPs") or [None])[0])
        finished = any(c.get("type") == "Finished" and c.get("status") == "True"
                       for c in st.get("conditions") or [])
        changed = False
        with self.table.lock:
            agent = self.table.by_claim.get(key)
            if typ == "DELETED" or md.get("deletionTimestamp"):
                if agent is not None:
                    self._drop(agent)
                    changed = True
            elif agent is None and sandbox and not finished:
                inbox = self.inbox.name(ns, sandbox)
                agent = Agent(ns, name, uid, sandbox, inbox,
                              (md.get("annotations") or {}).get(A_REQUESTED))
                agent.pod_ip = pod_ip
                self.table.by_claim[key] = agent
                self.table.inboxes[inbox] = agent
                self.table.last_activity = time.monotonic()
                changed = True
            elif agent is not None and pod_ip != agent.pod_ip and agent.state == WAITING and \
                    sandbox == agent.sandbox and not finished:
                agent.pod_ip = pod_ip       # the pod IP came (or changed) before any task
                changed = True
            elif agent is not None and sandbox and sandbox != agent.sandbox and \
                    agent.state == WAITING:
                # The claim healed onto another Sandbox before any task came.
                self.table.inboxes.pop(agent.inbox, None)
                agent.sandbox, agent.inbox = sandbox, self.inbox.name(ns, sandbox)
                self.table.inboxes[agent.inbox] = agent
                changed = True
            elif agent is not None and finished and agent.state == WAITING:
                agent.state = DONE         # its pod ended with no task from us
                self.table.last_activity = time.monotonic()
        if changed:
            self.inbox.wake()

    def _drop(self, agent):
        """Caller holds the table lock."""
        agent.gone = True
        self.table.by_claim.pop((agent.ns, agent.claim, agent.uid), None)
        if self.table.inboxes.get(agent.inbox) is agent:
            del self.table.inboxes[agent.inbox]
        if agent.state == WAITING:
            agent.state = DONE
        self.table.last_activity = time.monotonic()

    def resync(self, present):
        """After a (re-)list: drop agents whose claim is no longer there."""
        with self.table.lock:
            for key, agent in list(self.table.by_claim.items()):
                if key not in present:
                    self._drop(agent)
        self.inbox.wake()

    def list_claims(self):
        items, cont, rv = [], None, None
        while True:
            q = {"labelSelector": MANAGED, "limit": "500"}
            if cont:
                q["continue"] = cont
            code, obj = self.kube.request("GET", self.claims_path() + "?" +
                                          urllib.parse.urlencode(q))
            if code != 200 or not isinstance(obj, dict):
                raise HttpError("list sandboxclaims: HTTP %s: %s" % (
                    code, (obj or {}).get("message") if isinstance(obj, dict) else obj))
            items.extend(obj.get("items") or [])
            meta = obj.get("metadata") or {}
            rv = rv or meta.get("resourceVersion")
            cont = meta.get("continue")
            if not cont:
                return items, rv

    def watch_loop(self):
        backoff = 0.1
        while not self.stopping.is_set():
            try:
                if self.rv is None:
                    items, self.rv = self.list_claims()
                    present = set()
                    for it in items:
                        md = it.get("metadata") or {}
                        present.add((md.get("namespace"), md.get("name"), md.get("uid")))
                        self.on_claim("ADDED", it)
                    self.resync(present)
                    if not self.ready:
                        self.ready = True
                        self.log.write("ready", namespace=None if self.args.all_namespaces
                                       else self.args.namespace, transport=self.inbox.transport,
                                       pid=os.getpid(),
                                       **({"listen_net": str(self.inbox.net),
                                           "port": self.inbox.port} if self.http else {}))
                self.watch()
                backoff = 0.1
            except (OSError, HttpError, ValueError, http.client.HTTPException) as e:
                if self.stopping.is_set():
                    break
                diag("claim watch failed; retrying", error=str(e), retry_in=backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def watch(self):
        """One watch from self.rv, which follows the events (None: re-list)."""
        q = urllib.parse.urlencode({"watch": "1", "labelSelector": MANAGED,
                                    "resourceVersion": self.rv, "allowWatchBookmarks": "true",
                                    "timeoutSeconds": str(WATCH_SECONDS)})
        c = self.kube.connect(WATCH_SECONDS + 30)
        self.watch_conn = c
        try:
            if self.stopping.is_set():
                return
            c.request("GET", self.kube.prefix + self.claims_path() + "?" + q,
                      headers=self.kube.headers(None))
            r = c.getresponse()
            if r.status == 410:
                self.rv = None
                return
            if r.status != 200:
                raw = r.read(65536)
                raise HttpError("watch sandboxclaims: HTTP %d: %s" % (
                    r.status, raw[:300].decode(errors="replace")))
            while not self.stopping.is_set():
                line = r.readline()
                if not line:
                    return                          # the server ended it: resume
                line = line.strip()
                if not line:
                    continue
                ev = json.loads(line)
                typ, obj = ev.get("type"), ev.get("object") or {}
                if typ == "ERROR":
                    if obj.get("code") == 410:
                        self.rv = None
                        return
                    raise HttpError("watch sandboxclaims: ERROR event %s" % obj.get("message"))
                if typ in ("ADDED", "MODIFIED", "DELETED"):
                    self.on_claim(typ, obj)
                self.rv = (obj.get("metadata") or {}).get("resourceVersion") or self.rv
        finally:
            self.watch_conn = None
            c.close()

    # ------------------------------------------------------------ tasks
    def deliver(self, agent, body, arrival):
        """One inbox message for agent (any thread)."""
        arrival["bound_t"] = agent.bound_t
        if agent.requested_at:
            arrival["requested_at"] = agent.requested_at
        where = {"sandbox": agent.sandbox, "claim": agent.claim, "namespace": agent.ns}
        try:
            msg = json.loads(body)
            if not isinstance(msg, dict):
                raise ValueError("not a JSON object")
            meta = msg.get("agentscaler")
            task = msg.get("task") if meta is not None else msg
            if not isinstance(task, dict):
                raise ValueError("no task object")
            meta = meta if isinstance(meta, dict) else {}
            tid = meta.get("id") or task.get("id")
            if not isinstance(tid, str) or not tid:
                raise ValueError("no task id")
        except ValueError as e:
            self.log.write("invalid", reason=str(e), arrival=arrival,
                           body=body[:200] if isinstance(body, str) else None, **where)
            return
        depth = meta.get("depth", 0)
        info = {"id": tid, "parent": meta.get("parent", task.get("parent")),
                "root": meta.get("root") or tid,
                "depth": depth if isinstance(depth, int) else 0,
                "pool": meta.get("pool")}
        with self.table.lock:
            self.table.last_activity = time.monotonic()
            first = self.table.seen.get((agent.ns, tid))
            if first is not None:
                verdict = "duplicate"
                idle_sandbox = agent.state == WAITING and not agent.gone
                if idle_sandbox:
                    agent.state = FINISHING
                    agent.task = info
            elif agent.state != WAITING:
                verdict = "ignored"       # one claim carries one task
                why = "sandbox already has task %s" % agent.task["id"] if agent.task else \
                    "claim deleted or finished before any task came"
            else:
                verdict = "received"
                self.table.seen[(agent.ns, tid)] = agent.sandbox
                agent.task = info
                agent.state = WORKING
        if verdict == "duplicate":
            self.log.write("duplicate", first_sandbox=first, arrival=arrival, **info, **where)
            if idle_sandbox:
                # A sandbox whose only task is already handled elsewhere has
                # nothing to do: release it without working.
                self.submit(agent, worked=False)
            return
        if verdict == "ignored":
            self.log.write("ignored", reason=why, arrival=arrival, **info, **where)
            return
        self.log.write("received", arrival=arrival, **info, **where)
        if self.args.spawn_at == "start":
            self.submit(agent, job=self._spawn_then_work)
        else:
            self.start_work(agent)

    def work_http(self, agent, task, ctx, accepted_t=None):
        """--handoff http: the handler of agent's protocol runtime (its own
        thread): the same work as an inbox delivery, children spawned
        through agentscaler and, with --wait-children, waited for; the
        result says what happened.  The sandbox finishes on DELETE."""
        meta = ctx.agentscaler
        tid = ctx.id
        depth = meta.get("depth", 0)
        info = {"id": tid, "parent": meta.get("parent"), "root": meta.get("root") or tid,
                "depth": depth if isinstance(depth, int) else 0, "pool": meta.get("pool")}
        where = {"sandbox": agent.sandbox, "claim": agent.claim, "namespace": agent.ns}
        arrival = {"transport": "http", "bound_t": agent.bound_t, "attempt": ctx.attempt,
                   "traceparent": ctx.traceparent}
        if agent.requested_at:
            arrival["requested_at"] = agent.requested_at
        if accepted_t is not None:
            arrival["accepted_t"] = accepted_t      # --listen-warm: the handler's start
        with self.table.lock:
            self.table.last_activity = time.monotonic()
            first = self.table.seen.get((agent.ns, tid))
            if first == agent.sandbox and ctx.attempt > 1:
                first = None          # attempt + 1 in its sandbox (handoff.maxAttempts)
            if first is None:
                self.table.seen[(agent.ns, tid)] = agent.sandbox
                agent.task = info
                agent.state = WORKING
                agent.again = False
        if first is not None:
            self.log.write("duplicate", first_sandbox=first, arrival=arrival, **info, **where)
            raise TaskFailed("task.duplicate", "task %s went to sandbox %s first" % (tid, first))
        self.log.write("received", arrival=arrival, **info, **where)
        a = self.args
        handles = self.spawn_http(agent, ctx, info) if a.spawn_at == "start" else []
        work = a.work_ms + (random.uniform(0, a.work_jitter) if a.work_jitter else 0)
        asked = task.get("payload") if isinstance(task, dict) else None
        asked = asked if isinstance(asked, dict) else {}
        if isinstance(asked.get("sleep"), (int, float)):
            work = asked["sleep"] * 1000.0
        if self.stopping.wait(work / 1000.0):
            raise TaskFailed("runtime.stopping", "stopped while working", retryable=True)
        if isinstance(asked.get("fail"), str) and \
                ctx.attempt <= int(asked.get("failAttempts", 1 << 30)):
            agent.again = bool(asked.get("retryable"))
            self.log.write("failing", reason=asked["fail"], attempt=ctx.attempt, **info, **where)
            msg = asked.get("failMessage")
            raise TaskFailed(asked["fail"], msg if isinstance(msg, str) and msg else
                             "the payload asked to fail", retryable=agent.again)
        if a.spawn_at == "end":
            handles = self.spawn_http(agent, ctx, info)
        if isinstance(asked.get("spawn"), list):
            return {"worked": True, "children": self.spawn_asked(agent, ctx, info,
                                                                asked["spawn"])}
        children = []
        for h in handles if a.wait_children else ():
            c = {"key": h.key, "id": AP.child_id(tid, h.key)}
            try:
                c["result"] = h.result(a.child_timeout)
            except ChildRejected as e:
                c["rejected"] = e.reason
            except ChildFailed as e:
                c["failed"] = e.reason
            except TimeoutError:
                c["timeout"] = True
            children.append(c)
            self.log.write("child", parent=tid, **c, **where)
        with self.table.lock:
            agent.state = FINISHING
        return {"worked": True, "children": children if a.wait_children else len(handles)}

    def spawn_asked(self, agent, ctx, info, specs):
        """The payload's {"spawn": [spec, ...]}: each spec (a child spec
        {"payload", "resources"?, "deadline"?}, or a bare payload) spawned
        through agentscaler under keys 1..N, then each waited for (at most
        --child-timeout s): its result, or its verdict and reason."""
        where = {"sandbox": agent.sandbox, "claim": agent.claim, "namespace": agent.ns}
        handles = []
        for spec in specs:
            if not (isinstance(spec, dict) and "payload" in spec):
                spec = {"payload": spec}
            h = ctx.spawn(spec)
            handles.append(h)
            self.log.write("spawned", id=AP.child_id(info["id"], h.key), parent=info["id"],
                           root=info["root"], depth=info["depth"] + 1, to="agentscaler",
                           **where)
        agent.children = len(handles)
        out = []
        for h in handles:
            c = {"key": h.key, "id": AP.child_id(info["id"], h.key)}
            try:
                c["result"] = h.result(self.args.child_timeout)
                c["verdict"] = "admitted"
            except ChildRejected as e:
                c["verdict"] = "rejected"
                c["reason"], c["detail"] = e.reason, h.detail
            except ChildFailed as e:
                c["verdict"] = "admitted"
                c["failed"] = e.reason
            except TimeoutError:
                c["timeout"] = True
            if h.result_message is not None:
                c["parent"] = h.result_message.get("parent")
            c["replies"] = sorted(h.seen)
            out.append(c)
            self.log.write("child", **dict(c, parent=info["id"]), **where)
        return out

    def spawn_http(self, agent, ctx, info):
        a = self.args
        where = {"sandbox": agent.sandbox, "claim": agent.claim, "namespace": agent.ns}
        handles = []
        if a.children > 0 and (a.max_depth is None or info["depth"] < a.max_depth):
            for k in range(1, a.children + 1):
                h = ctx.spawn({"payload": {"spawnedBy": info["id"]}}, key=str(k))
                handles.append(h)
                self.log.write("spawned", id=AP.child_id(info["id"], h.key), parent=info["id"],
                               root=info["root"], depth=info["depth"] + 1, to="agentscaler",
                               **where)
        agent.children = len(handles)
        return handles

    def on_protocol(self, agent, rec):
        """What agent's protocol runtime reports: replies are logged; the
        task's acknowledgement (DELETE) finishes the sandbox, as a pod
        exits once its task is acknowledged."""
        if rec.get("event") == "reply":
            self.log.write("reply", id=rec.get("id"), key=rec.get("key"), type=rec.get("type"),
                           duplicate=rec.get("duplicate"), sandbox=agent.sandbox)
        elif rec.get("event") == "poll":
            self.log.write("poll", id=rec.get("id"), after=rec.get("after"), ack=rec.get("ack"),
                           sandbox=agent.sandbox)
        elif rec.get("event") == "acknowledged":
            with self.table.lock:
                again = agent.again
                if again:
                    agent.state = WAITING     # its next attempt comes here, or its claim goes
            if not again:
                self.submit(agent, worked=agent.task is not None)

    def start_work(self, agent):
        work = self.args.work_ms + (random.uniform(0, self.args.work_jitter)
                                    if self.args.work_jitter else 0)
        with self.timer_cv:
            heapq.heappush(self.timers, (time.monotonic() + work / 1000.0,
                                         next(self.timer_seq), agent))
            self.timer_cv.notify()

    def timer_loop(self):
        while not self.stopping.is_set():
            with self.timer_cv:
                now = time.monotonic()
                if not self.timers or self.timers[0][0] > now:
                    self.timer_cv.wait(min(self.timers[0][0] - now, 1.0) if self.timers
                                       else 1.0)
                    continue
                _, _, agent = heapq.heappop(self.timers)
            with self.table.lock:
                agent.state = FINISHING
            self.submit(agent, worked=True)

    def submit(self, agent, worked=True, job=None):
        with self.table.lock:
            self.pending += 1
        try:
            if job is not None:
                self.pool.submit(job, agent)
            else:
                self.pool.submit(self._complete, agent, worked)
        except RuntimeError:          # shutting down
            with self.table.lock:
                self.pending -= 1

    def _spawn_then_work(self, agent):
        """--spawn-at start: sub-tasks first, then the work, then finish, so
        the task is still live (its claim unfinished) while agentscaler
        admits its children."""
        try:
            self.spawn(agent)
        except Exception as e:        # a bug must not silently eat a task
            diag("spawning sub-tasks failed", sandbox=agent.sandbox, error=repr(e),
                 trace=traceback.format_exc())
        finally:
            self.start_work(agent)
            with self.table.lock:
                self.pending -= 1

    def _complete(self, agent, worked):
        try:
            self.complete(agent, worked)
        except Exception as e:        # a bug must not silently eat a task
            diag("finishing a task failed", sandbox=agent.sandbox, error=repr(e),
                 trace=traceback.format_exc())
        finally:
            with self.table.lock:
                self.pending -= 1
                agent.state = DONE
                self.table.last_activity = time.monotonic()

    def spawn(self, agent):
        """Publishes the sub-tasks of agent's task, if it has any to spawn,
        and logs each; agent.children = how many went out."""
        info = agent.task
        where = {"sandbox": agent.sandbox, "claim": agent.claim, "namespace": agent.ns}
        children = []
        a = self.args
        if a.children > 0 and (a.max_depth is None or info["depth"] < a.max_depth):
            tid = info["id"]
            children = [{"id": "%s.%d" % (tid, k), "parent": tid,
                         "payload": {"spawnedBy": tid}} for k in range(1, a.children + 1)]
            try:
                self.publisher.publish(children)       # --children requires --publish-to
            except (OSError, RuntimeError, http.client.HTTPException) as e:
                self.log.write("error", reason="publishing sub-tasks failed: %s" % e,
                               **info, **where)
                children = []
            for ch in children:
                self.log.write("spawned", id=ch["id"], parent=ch["parent"],
                               root=info["root"], depth=info["depth"] + 1,
                               to=a.publish_to, **where)
        agent.children = len(children)

    def complete(self, agent, worked):
        info = dict(agent.task or {})
        where = {"sandbox": agent.sandbox, "claim": agent.claim, "namespace": agent.ns}
        a = self.args
        if worked and a.spawn_at == "end" and not self.http:
            self.spawn(agent)
        if agent.gone:
            self.log.write("abandoned", reason="claim deleted before the task finished",
                           **info, **where)
            return
        code, err = self.finish_sandbox(agent)
        if code == 200:
            self.log.write("finished", phase=a.finish_phase, worked=worked,
                           children=agent.children, **info, **where)
        else:
            self.log.write("error", reason="finish sandbox: %s" % err, code=code,
                           **info, **where)

    def finish_pod(self, agent):
        """--finish-via pod-status: the sandbox's pod ends as the kubelet
        would say (a real cluster whose pods kwok runs); (code, obj)."""
        q = urllib.parse.quote
        code, sb = self.kube.request("GET", "/apis/agents.x-k8s.io/v1beta1/namespaces/%s/"
                                     "sandboxes/%s" % (q(agent.ns, safe=""),
                                                       q(agent.sandbox, safe="")))
        if code != 200:
            return code, sb
        path = "/api/v1/namespaces/%s/pods/%s" % (q(agent.ns, safe=""),
                                                  q(podstatus.sandbox_pod_name(sb), safe=""))
        code, pod = self.kube.request("GET", path)
        if code != 200:
            return code, pod
        return self.kube.request("PUT", path + "/status",
                                 podstatus.terminal(pod, self.args.finish_phase))

    def finish_sandbox(self, agent):
        path = "/sandboxes/%s/%s/finish" % (urllib.parse.quote(agent.ns, safe=""),
                                           urllib.parse.quote(agent.sandbox, safe=""))
        err = None
        for attempt in range(4):
            try:
                if self.args.finish_via == "pod-status":
                    code, obj = self.finish_pod(agent)
                else:
                    code, obj = self.admin.request("POST", path,
                                                   {"phase": self.args.finish_phase})
                if code == 409:             # the pod changed meanwhile: again
                    err = "HTTP 409"
                elif code < 500:
                    return code, None if code == 200 else (obj or {}).get(
                        "message", (obj or {}).get("error")) if isinstance(obj, dict) else obj
                err = "HTTP %d" % code
            except (OSError, http.client.HTTPException) as e:
                err = str(e)
            if self.stopping.wait(0.2 * (2 ** attempt)):
                break
        return 0, err

    # ------------------------------------------------------------ run
    def stop(self, *_):
        self.stopping.set()
        c = self.watch_conn
        if c is not None and c.sock is not None:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.timer_cv:
            self.timer_cv.notify_all()

    def warm_loop(self):
        """--listen-warm: lists the namespace's Sandboxes every 0.1 s and
        serves each one's loopback pod IP before any claim binds it."""
        path = "/apis/agents.x-k8s.io/v1beta1/namespaces/%s/sandboxes" % urllib.parse.quote(
            self.args.namespace, safe="")
        while not self.stopping.wait(0.1):
            try:
                code, obj = self.kube.request("GET", path)
            except (OSError, http.client.HTTPException):
                continue
            if code != 200:
                continue
            warm = {}
            for sb in (obj or {}).get("items") or []:
                md, st = sb.get("metadata") or {}, sb.get("status") or {}
                ip = _loopback_ip((st.get("podIPs") or [None])[0])
                if ip and not md.get("deletionTimestamp"):
                    warm[self.inbox.name(md.get("namespace"), md.get("name"))] = ip
            self.inbox.set_warm(warm)

    def run(self):
        self.inbox.check()
        threads = [threading.Thread(target=self.watch_loop, name="watch", daemon=True),
                   threading.Thread(target=self.timer_loop, name="timers", daemon=True)]
        if self.args.listen_warm:
            threads.append(threading.Thread(target=self.warm_loop, name="warm", daemon=True))
        n = self.args.rabbit_pollers if isinstance(self.inbox, RabbitInbox) else 1
        for i in range(n):
            threads.append(threading.Thread(target=self.inbox.run, name="inbox%d" % i,
                                            daemon=True))
        for t in threads:
            t.start()
        idle = self.args.exit_after_idle
        reason = "signal"
        while not self.stopping.wait(0.1):
            if idle is None:
                continue
            with self.table.lock:
                quiet = all(a.state == DONE for a in self.table.by_claim.values()) and \
                    self.pending == 0 and \
                    time.monotonic() - self.table.last_activity >= idle
            if quiet and self.ready:
                reason = "idle"
                break
        self.stop()
        self.inbox.wake()
        for t in threads:
            t.join(timeout=HTTP_TIMEOUT + 5)
        self.pool.shutdown(wait=True, cancel_futures=True)
        with self.timer_cv:
            abandoned = [a.task["id"] for _, _, a in self.timers if a.task]
        self.inbox.close()
        if self.publisher is not None:
            self.publisher.close()
        self.log.write("stopped", reason=reason, abandoned=abandoned)
        self.log.close()
        return 0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="agent-runtime", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--apiserver", required=True, help="kube-sim API URL (http[s]://host:port)")
    p.add_argument("--admin", help="kube-sim admin URL, for POST "
                   "/sandboxes/<ns>/<name>/finish (--finish-via kube-sim)")
    p.add_argument("--finish-via", choices=("kube-sim", "pod-status"), default="kube-sim",
                   help="how a finished task ends its sandbox: kube-sim's admin call, or "
                        "(a real cluster, pods run by kwok) the pod's status set terminal "
                        "as the kubelet would")
    p.add_argument("--token-file", help="bearer token for the API (re-read at every request)")
    p.add_argument("--ca-file", help="CA bundle for an https:// apiserver")
    p.add_argument("--insecure-skip-tls-verify", action="store_true")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--namespace", "-n", default="default", help="claims of this namespace")
    g.add_argument("--all-namespaces", "-A", action="store_true", help="claims of every namespace")
    p.add_argument("--handoff", choices=("inbox", "http"), default="inbox",
                   help="how tasks arrive: a broker inbox (--inbox) or the agent protocol "
                        "over HTTP (docs/protocol.md) served on --listen-net and --port")
    p.add_argument("--listen-net", default="127.78.0.0/16",
                   help="--handoff http: each sandbox's runtime listens on its claim's pod IP "
                        "when that is a loopback address, else on the next free address of "
                        "this loopback network (logged in a listening event)")
    p.add_argument("--port", type=int, default=8888,
                   help="--handoff http: the port of every sandbox's runtime (0: a free "
                        "one each)")
    p.add_argument("--listen-warm", action="store_true",
                   help="--handoff http, one --namespace: serve every Sandbox at its loopback "
                        "pod IP from its start, before a claim binds it, as a warm pod's "
                        "runtime listens (Sandboxes listed every 0.1 s)")
    p.add_argument("--wait-children", action="store_true",
                   help="--handoff http: wait for each child's result before ending")
    p.add_argument("--child-timeout", type=float, default=600.0,
                   help="--wait-children: seconds to wait for one child")
    p.add_argument("--inbox",
                   help="redis://host:6379/0 (lists agentscaler:inbox:<ns>:<sandbox>) or "
                        "http://host:15672/vhost (RabbitMQ management API; queues "
                        "agentscaler.inbox.<ns>.<sandbox>)")
    p.add_argument("--username", help="RabbitMQ user (default guest) or Redis ACL user")
    p.add_argument("--password-file", help="file holding the broker password")
    p.add_argument("--password-env", help="environment variable holding the broker password")
    p.add_argument("--log", default="-", help="JSON-lines event log (default stdout)")
    p.add_argument("--work-ms", type=float, default=200.0, help="how long one task works")
    p.add_argument("--work-jitter", type=float, default=0.0,
                   help="extra work, uniform in [0, this] ms")
    p.add_argument("--children", type=int, default=0, help="sub-tasks each task spawns")
    p.add_argument("--max-depth", type=int, default=None,
                   help="spawn only while the task's depth is below this (default: always)")
    p.add_argument("--publish-to", help="where sub-tasks go: redis-list:<list>, "
                                        "redis-stream:<stream> or rabbitmq:<queue>")
    p.add_argument("--spawn-at", choices=("end", "start"), default="end",
                   help="publish sub-tasks after the work (default) or before it, so that "
                        "the parent is still live while its children are admitted")
    p.add_argument("--publish-address", help="broker of --publish-to (default: --inbox)")
    p.add_argument("--finish-phase", choices=("Succeeded", "Failed"), default="Succeeded")
    p.add_argument("--exit-after-idle", type=float, default=None, metavar="S",
                   help="exit 0 after S seconds with no live agent and no activity")
    p.add_argument("--workers", type=int, default=4, help="threads publishing and finishing")
    p.add_argument("--rabbit-pollers", type=int, default=4,
                   help="threads polling RabbitMQ inbox queues")
    p.add_argument("--poll-min-ms", type=float, default=20.0,
                   help="RabbitMQ: first pause after an empty get")
    p.add_argument("--poll-max-ms", type=float, default=1000.0,
                   help="RabbitMQ: longest pause between gets of one queue")
    a = p.parse_args(argv)
    if a.children < 0 or a.workers < 1 or a.rabbit_pollers < 1 or a.work_ms < 0 or \
            a.work_jitter < 0:
        p.error("--children, --work-ms, --work-jitter must be >= 0; --workers and "
                "--rabbit-pollers >= 1")
    if a.handoff == "inbox" and not a.inbox:
        p.error("--inbox is needed with --handoff inbox")
    if a.children and not a.publish_to and a.handoff == "inbox":
        p.error("--children needs --publish-to (or --handoff http)")
    if a.finish_via == "kube-sim" and not a.admin:
        p.error("--admin is needed with --finish-via kube-sim")
    return a


def main(argv):
    args = parse_args(argv)
    try:
        rt = Runtime(args)
    except (ValueError, OSError) as e:
        sys.stderr.write("agent-runtime: %s\n" % e)
        return 2
    signal.signal(signal.SIGTERM, rt.stop)
    signal.signal(signal.SIGINT, rt.stop)
    try:
        return rt.run()
    except (OSError, RuntimeError) as e:
        # The address carries no credentials (refused above): safe to print.
        sys.stderr.write("agent-runtime: cannot reach the inbox broker at %s: %s\n"
                         % (args.inbox, e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
