"""The runtime side of agentscaler.io/v1 (docs/protocol.md): the HTTP
server a sandbox runs, so that agentscaler can hand it a task through the
sandbox-router, follow it by long-poll, answer its spawns, and acknowledge
its end.  Standard library only; the server never opens a connection.

    from agentscaler.runtime import serve

    def handler(task, ctx):
        ctx.progress("reading", fraction=0.1)
        child = ctx.spawn({"payload": {"file": "a.c"}})
        return {"summary": child.result(timeout=600)}

    serve(handler)          # port 8888, blocks

handler(task, ctx) gets the producer's message (a dict: id, payload, ...)
and a Context; what it returns (JSON-serialisable) is the task's result;
an exception fails it (TaskFailed sets the reason and whether a retry may
help; anything else is reason handler.error, not retryable).
"""
import hmac
import json
import os
import signal
import socket
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import protocol as P
from .protocol import API_VERSION, TaskFailed


class ChildRejected(Exception):
    """The child was refused (AgentQuota, a bad spec): reason, detail."""

    def __init__(self, key, reason, detail=""):
        super().__init__("child %s rejected: %s %s" % (key, reason, detail))
        self.key, self.reason, self.detail = key, reason, detail


class ChildFailed(Exception):
    """The child ran and failed: result is its Result message."""

    def __init__(self, key, result):
        err = result.get("error") or {}
        super().__init__("child %s failed: %s %s" % (key, err.get("reason"), err.get("message")))
        self.key, self.result = key, result
        self.reason = err.get("reason")
        self.retryable = err.get("retryable", False)


class ChildHandle:
    """One spawn: its verdict and, later, its result, as agentscaler's
    replies deliver them.  All waits take a timeout in seconds (None:
    forever) and raise TimeoutError when it passes."""

    def __init__(self, cv, key, spec):
        self._cv = cv
        self.key = key
        self.spec = spec
        self.child_id = None
        self.verdict = None          # None, deferred, admitted, rejected
        self.reason = None
        self.detail = None
        self.result_message = None   # the child's Result
        self.seen = set()            # reply types delivered

    def _wait(self, pred, timeout, what):
        end = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not pred():
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("child %s: no %s in %ss" % (self.key, what, timeout))
                self._cv.wait(left)

    def wait_verdict(self, timeout=None):
        """admitted or rejected (deferred is not a verdict yet); a result
        implies admitted."""
        self._wait(lambda: self.verdict in ("admitted", "rejected")
                   or self.result_message is not None, timeout, "verdict")
        return "rejected" if self.verdict == "rejected" else "admitted"

    def result(self, timeout=None):
        """The child's result value; raises ChildRejected or ChildFailed."""
        self._wait(lambda: self.verdict == "rejected" or self.result_message is not None,
                   timeout, "result")
        if self.result_message is None:
            raise ChildRejected(self.key, self.reason, self.detail or "")
        if self.result_message.get("state") != "completed":
            raise ChildFailed(self.key, self.result_message)
        return self.result_message.get("result")


class Context:
    """What a handler can do besides returning: report progress and spawn
    children.  Attributes: id, attempt, traceparent, agentscaler (the
    hand-off's agentscaler block: namespace, pool, claim, sandbox, parent,
    root, depth)."""

    def __init__(self, runtime, state):
        self._rt = runtime
        self._st = state
        self.id = state.id
        self.attempt = state.attempt
        self.agentscaler = {k: v for k, v in state.meta.items() if k != "token"}
        self.traceparent = state.meta.get("traceparent") or state.task.get("traceparent")

    def progress(self, message=None, fraction=None, data=None):
        ev = {}
        if message is not None:
            ev["message"] = str(message)[:1024]
        if fraction is not None:
            ev["fraction"] = min(1.0, max(0.0, float(fraction)))
        if data is not None:
            ev["data"] = data
        self._rt._append(self._st, "progress", ev)

    def spawn(self, spec, key=None):
        """spec: {"payload": ..., "resources"?, "deadline"?, "traceparent"?}
        (the child's message less id and parent, which agentscaler sets);
        key: unique within this task ([A-Za-z0-9_-]{1,64}), "1", "2", ...
        by default.  Returns a ChildHandle at once."""
        if not isinstance(spec, dict) or "payload" not in spec:
            raise ValueError("a child spec is a dict with a payload")
        bad = set(spec) - {"payload", "resources", "deadline", "traceparent"}
        if bad:
            raise ValueError("a child spec may not set %s" % ", ".join(sorted(bad)))
        spec = dict(spec)
        spec.setdefault("traceparent", P.child_traceparent(self.traceparent))
        json.dumps(spec)    # refuses what cannot go on the wire, here
        with self._rt._cv:
            if key is None:
                key = str(len(self._st.children) + 1)
                while key in self._st.children:
                    key += "_"
            if not P.valid_key(key):
                raise ValueError("spawn key must match [A-Za-z0-9_-]{1,64}: %r" % (key,))
            if key in self._st.children:
                raise ValueError("spawn key %r used twice in this task" % key)
            h = ChildHandle(self._rt._cv, key, spec)
            self._st.children[key] = h
        self._rt._append(self._st, "spawn", {"key": key, "task": spec})
        return h


class _Task:
    def __init__(self, body, token):
        self.meta = body["agentscaler"]
        self.task = body["task"]
        self.id = self.meta["id"]
        self.attempt = self.meta["attempt"]
        self.token = token
        self.events = []        # dicts, seq ascending; acknowledged ones dropped
        self.last_seq = 0
        self.acked = 0
        self.returned = 0       # the highest seq an answer carried
        self.state = "running"
        self.children = {}


class Runtime:
    """The server.  start() binds and serves in a thread (port 0 picks a
    free one: see .port); stop() ends it.  exit_after_ack: stop once the
    task is acknowledged (DELETE), so that the pod can reach Succeeded.
    port=None: no server of its own; a front that serves many runtimes on
    one port (make_handler) calls it instead."""

    def __init__(self, handler, port=P.DEFAULT_PORT, host="0.0.0.0", exit_after_ack=False,
                 name="agentscaler-python/0.1", log=None):
        self.handler = handler
        self.exit_after_ack = exit_after_ack
        self.name = name
        self.instance = os.urandom(8).hex()
        self.log = log          # callable(dict) or None
        self._cv = threading.Condition()
        self._task = None
        self._tombstones = {}   # id -> acknowledged attempt
        self._stopping = False
        self._closed = False    # stopped: a request read now gets no answer
        self.done = threading.Event()   # set by stop()
        self._server = self.port = self._thread = None
        if port is not None:
            self._server = Server((host, port), make_handler(lambda _req: self))
            self.port = self._server.server_address[1]

    # -- life

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2}, daemon=True,
                                        name="agentscaler-runtime")
        self._thread.start()
        return self

    def stop(self):
        with self._cv:
            if self._stopping:
                return
            self._stopping = True
            self._cv.notify_all()
        if self._server is not None:
            self._server.shutdown()
        self._closed = True
        if self._server is not None:
            self._server.close_all()
        self.done.set()

    def _emit(self, **rec):
        if self.log is not None:
            rec.setdefault("t", time.time())
            self.log(rec)

    # -- the log

    def _append(self, st, typ, fields):
        with self._cv:
            if st.state != "running" and typ not in P.TERMINAL:
                raise RuntimeError("task %s has ended" % st.id)
            last = st.events[-1] if st.events else None
            if (typ == "progress" and last is not None and last["type"] == "progress"
                    and last["seq"] > st.returned):
                ev = dict(fields, seq=last["seq"], type=typ, time=P.now_rfc3339())
                st.events[-1] = ev
            else:
                st.last_seq += 1
                ev = dict(fields, seq=st.last_seq, type=typ, time=P.now_rfc3339())
                st.events.append(ev)
            if typ in P.TERMINAL:
                st.state = typ
            if typ in P.WAKING:
                self._cv.notify_all()
        self._emit(event=typ, id=st.id, seq=ev["seq"])
        return ev

    def _run(self, st):
        ctx = Context(self, st)
        try:
            result = self.handler(st.task, ctx)
        except TaskFailed as e:
            return self._fail(st, e.reason, e.message, e.retryable)
        except Exception as e:  # noqa: BLE001 -- any handler error fails the task
            self._emit(event="handler-error", id=st.id, trace=traceback.format_exc()[-2000:])
            return self._fail(st, "handler.error", "%s: %s" % (type(e).__name__, e), False)
        try:
            json.dumps(result)
        except (TypeError, ValueError) as e:
            return self._fail(st, "runtime.badResult", "the result is not JSON: %s" % e, False)
        self._append(st, "completed", {"result": result})

    def _fail(self, st, reason, message, retryable):
        self._append(st, "failed", {"error": {"reason": reason, "message": message[:4096],
                                              "retryable": retryable}})

    # -- requests (each returns (code, body or None))

    def _status(self, st):
        return {"apiVersion": API_VERSION, "kind": "TaskStatus", "id": st.id,
                "attempt": st.attempt, "state": st.state, "next": st.last_seq,
                "instance": self.instance}

    def _auth(self, st, token):
        if st.token is None:
            return None
        if not token:
            return 401, P.error_body("auth.missing", "this task needs %s" % P.TOKEN_HEADER,
                                     st.id)
        if not hmac.compare_digest(token.encode(), st.token.encode()):
            return 401, P.error_body("auth.mismatch", "not this task's token", st.id)
        return None

    def _held(self, tid, token):
        """The task tid if held, else an error answer."""
        st = self._task
        if st is None or st.id != tid:
            if tid in self._tombstones:
                return None, (410, P.error_body("task.acknowledged",
                                                "task %s ended and was acknowledged" % tid, tid))
            return None, (404, P.error_body("task.unknown", "no task %s here" % tid, tid))
        bad = self._auth(st, token)
        return (None, bad) if bad else (st, None)

    def put(self, tid, body, token):
        why = _check_task(tid, body)
        if why:
            return 400, P.error_body("request.invalid", why, tid)
        attempt = body["agentscaler"]["attempt"]
        with self._cv:
            st = self._task
            if st is not None and st.id == tid:
                bad = self._auth(st, token)
                return bad or (200, self._status(st))
            if st is not None:
                return 409, P.error_body("task.conflict", "this runtime holds task %s" % st.id,
                                         st.id)
            if tid in self._tombstones and attempt <= self._tombstones[tid]:
                return 410, P.error_body("task.acknowledged", "task %s attempt %d was "
                                         "acknowledged" % (tid, self._tombstones[tid]), tid)
            if self._stopping:
                return 503, P.error_body("runtime.stopping", "the runtime is stopping", tid)
            st = _Task(body, body["agentscaler"].get("token"))
            self._task = st
            self._append(st, "started", {"attempt": attempt})
            threading.Thread(target=self._run, args=(st,), daemon=True,
                             name="task-" + tid[:32]).start()
            return 201, self._status(st)

    def events(self, tid, query, token):
        try:
            after = int(query.get("after", ["0"])[0])
            ack = int(query.get("ack", [str(after)])[0])
            wait = float(query.get("wait", ["0"])[0])
            if after < 0 or ack < 0 or ack > after or wait < 0 or wait != wait:
                raise ValueError
        except ValueError:
            return 400, P.error_body("request.invalid", "after and ack are integers >= 0, "
                                     "ack <= after, wait a number >= 0", tid)
        wait = min(wait, P.MAX_WAIT)
        end = time.monotonic() + wait
        self._emit(event="poll", id=tid, after=after, ack=ack)
        with self._cv:
            st, err = self._held(tid, token)
            if err:
                return err
            if after > st.last_seq:
                return 400, P.error_body("request.invalid", "after=%d is beyond the last event "
                                         "(%d)" % (after, st.last_seq), tid)
            # Acknowledge: the terminal event stays until DELETE.
            if ack > st.acked:
                st.acked = ack
                st.events = [e for e in st.events
                             if e["seq"] > ack or e["type"] in P.TERMINAL]
            while True:
                if any(e["seq"] > after and e["type"] in P.WAKING for e in st.events):
                    break
                left = end - time.monotonic()
                if left <= 0 or self._stopping or self._task is not st:
                    break
                self._cv.wait(left)
            if self._task is not st:
                return self._held(tid, token)[1]
            out = [e for e in st.events if e["seq"] > after]
            more = len(out) > P.MAX_EVENTS
            out = [self._view(st, e) for e in out[:P.MAX_EVENTS]]
            if out:
                st.returned = max(st.returned, out[-1]["seq"])
            first = st.events[0]["seq"] if st.events else st.last_seq + 1
            return 200, {"apiVersion": API_VERSION, "kind": "EventList", "taskId": st.id,
                         "attempt": st.attempt, "instance": self.instance, "state": st.state,
                         "first": first, "next": out[-1]["seq"] if out else after,
                         "more": more, "events": out}

    @staticmethod
    def _view(st, ev):
        """An event as it is sent: a spawn with the replies taken so far."""
        if ev["type"] != "spawn":
            return ev
        h = st.children.get(ev["key"])
        return dict(ev, replies=sorted(h.seen) if h is not None else [])

    def reply(self, tid, body, token):
        why = _check_reply(body)
        if why:
            return 400, P.error_body("request.invalid", why, tid)
        key, typ = body["key"], body["type"]
        with self._cv:
            st, err = self._held(tid, token)
            if err:
                return err
            h = st.children.get(key)
            if h is None:
                return 404, P.error_body("spawn.unknownKey", "task %s spawned nothing under "
                                         "key %s" % (tid, key), tid)
            cur = max([P.REPLY_RANK[t] for t in h.seen], default=-1)
            dup = typ in h.seen or P.REPLY_RANK[typ] < cur or (
                typ in ("admitted", "rejected") and h.verdict in ("admitted", "rejected"))
            if not dup:
                h.seen.add(typ)
                h.child_id = body["child"]
                if typ == "result":
                    h.result_message = body["result"]
                    if h.verdict != "rejected":
                        h.verdict = "admitted"
                else:
                    h.verdict = typ
                    h.reason = body.get("reason")
                    h.detail = body.get("detail")
                self._cv.notify_all()
        self._emit(event="reply", id=tid, key=key, type=typ, duplicate=dup)
        return 200, {"apiVersion": API_VERSION, "kind": "ReplyAck", "key": key, "type": typ,
                     "duplicate": dup}

    def delete(self, tid, token):
        with self._cv:
            st = self._task
            if st is None or st.id != tid:
                if tid in self._tombstones:
                    return 204, None
                return 404, P.error_body("task.unknown", "no task %s here" % tid, tid)
            bad = self._auth(st, token)
            if bad:
                return bad
            if st.state == "running":
                return 409, P.error_body("task.running", "task %s is running; DELETE "
                                         "acknowledges an end" % tid, tid)
            self._tombstones[tid] = st.attempt
            self._task = None
            self._cv.notify_all()
        self._emit(event="acknowledged", id=tid)
        if self.exit_after_ack:
            threading.Thread(target=self.stop, daemon=True).start()
        return 204, None

    def health(self):
        with self._cv:
            st = self._task
            task = None if st is None else {"id": st.id, "state": st.state}
        return 200, {"apiVersion": API_VERSION, "kind": "Health", "protocols": [API_VERSION],
                     "instance": self.instance, "runtime": self.name, "task": task}


def _check_task(tid, body):
    """The hand-off's shape, enough to run it (the schema says the rest)."""
    if not isinstance(body, dict) or body.get("apiVersion") != API_VERSION or \
            body.get("kind") != "Task":
        return "not an %s Task" % API_VERSION
    meta, task = body.get("agentscaler"), body.get("task")
    if not isinstance(meta, dict) or not isinstance(task, dict):
        return "a Task has objects agentscaler and task"
    if meta.get("id") != tid or task.get("id") != tid:
        return "the path's id, agentscaler.id and task.id differ"
    a = meta.get("attempt")
    if not isinstance(a, int) or isinstance(a, bool) or a < 1:
        return "agentscaler.attempt is an integer >= 1"
    tok = meta.get("token")
    if tok is not None and (not isinstance(tok, str) or len(tok) < 16):
        return "agentscaler.token is a string of 16 characters or more"
    return None


def _check_reply(body):
    if not isinstance(body, dict) or body.get("apiVersion") != API_VERSION or \
            body.get("kind") != "Reply":
        return "not an %s Reply" % API_VERSION
    if not P.valid_key(body.get("key")):
        return "bad key"
    if body.get("type") not in P.REPLY_RANK:
        return "type is deferred, admitted, rejected or result"
    if not P.valid_id(body.get("child")):
        return "bad child id"
    if body["type"] == "result" and not isinstance(body.get("result"), dict):
        return "a result reply carries the child's Result"
    if body["type"] in ("deferred", "rejected") and not P.valid_reason(body.get("reason")):
        return "a %s reply carries a reason" % body["type"]
    return None


class Server(ThreadingHTTPServer):
    """A thread per connection; close_all() closes the listening socket and
    ends the connections that stay open (a client's or the router's
    keep-alive), as the runtime's exit would: their reading side is shut,
    so an answer being written still goes out and an idle connection sees
    its end at once."""

    daemon_threads = True

    def __init__(self, address, handler_class):
        self._live = set()
        self._live_lock = threading.Lock()
        super().__init__(address, handler_class)

    def process_request(self, request, client_address):
        with self._live_lock:
            self._live.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._live_lock:
            self._live.discard(request)
        super().shutdown_request(request)

    def close_all(self):
        self.server_close()
        with self._live_lock:
            live = list(self._live)
        for c in live:
            try:
                c.shutdown(socket.SHUT_RD)
            except OSError:
                pass


def make_handler(resolve):
    """A BaseHTTPRequestHandler class serving the protocol; resolve(request)
    gives the Runtime a request is for, or an answer (code, body) of its
    own (a front routing by X-Sandbox-* headers, as agent-runtime's)."""
    prefix = P.BASE_PATH + "/tasks/"

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "agentscaler-runtime"
        # Buffered: an answer's head and body leave in one write (flushed
        # after each request).  Unbuffered, the body waited ~40 ms for the
        # ACK of the head (Nagle against delayed ACK), and the real
        # sandbox-router (v1.0.1) cut about 3 in 100 answers to a PUT or
        # POST in that gap ("ReverseProxy read error during body copy: use
        # of closed network connection"; tests/clients/test_router.py).
        wbufsize = 1 << 16

        def log_message(self, fmt, *args):
            pass

        def _send(self, code, body):
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(code)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)

        def _body(self):
            self.body_read = True
            n = int(self.headers.get("Content-Length") or 0)
            if n > P.MAX_BODY:
                self.close_connection = True
                return None, (413, P.error_body("request.tooLarge", "more than %d bytes"
                                                % P.MAX_BODY))
            try:
                return json.loads(self.rfile.read(n) or b"null"), None
            except ValueError as e:
                return None, (400, P.error_body("request.invalid", "not JSON: %s" % e))

        def _route(self, method):
            rt = resolve(self)
            if not isinstance(rt, Runtime):
                return rt
            if rt._closed:
                return None       # as a process that exited: the connection ends
            u = urlsplit(self.path)
            path = u.path
            token = self.headers.get(P.TOKEN_HEADER)
            if path == P.BASE_PATH + "/health":
                return rt.health() if method == "GET" else _405()
            if not path.startswith(prefix):
                return 404, P.error_body("request.unknownPath", "no such path: %s" % path[:200])
            # The id is percent-encoded, but a proxy may decode its %2F
            # (agent-sandbox's sandbox-router does): a child's id holds
            # '/'.  The method says where the id ends (docs/protocol.md
            # section 3): GET .../events, POST .../replies, PUT and DELETE
            # the whole rest.
            rest = path[len(prefix):]
            sub = {"GET": "/events", "POST": "/replies"}.get(method)
            if sub is not None:
                if not rest.endswith(sub):
                    return (404, P.error_body("request.unknownPath", "no such path: %s"
                                              % path[:200])) if "/" in rest else _405()
                rest = rest[:-len(sub)]
            elif method not in ("PUT", "DELETE"):
                return _405()
            tid = _unquote(rest)
            if not P.valid_id(tid):
                return 400, P.error_body("request.invalid", "bad task id in the path")
            if method == "PUT":
                body, err = self._body()
                return err or rt.put(tid, body, token)
            if method == "DELETE":
                return rt.delete(tid, token)
            if method == "GET":
                return rt.events(tid, parse_qs(u.query), token)
            body, err = self._body()
            return err or rt.reply(tid, body, token)

        def _do(self, method):
            self.body_read = False
            try:
                answer = self._route(method)
            except Exception as e:  # noqa: BLE001 -- a bug answers 500, not a dead socket
                answer = 500, P.error_body("runtime.internal", "%s: %s" % (type(e).__name__, e))
            if answer is None:
                self.close_connection = True
                return
            code, body = answer
            if not self.body_read and self.headers.get("Content-Length", "0") != "0":
                self.close_connection = True    # its unread body would be the next request
            try:
                self._send(code, body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def do_GET(self):
            self._do("GET")

        def do_PUT(self):
            self._do("PUT")

        def do_POST(self):
            self._do("POST")

        def do_DELETE(self):
            self._do("DELETE")

    return H


def _405():
    return 405, P.error_body("request.method", "method not allowed here")


def _unquote(s):
    from urllib.parse import unquote
    return unquote(s)


def serve(handler, port=P.DEFAULT_PORT, host="0.0.0.0", exit_after_ack=False, log=None):
    """Serves until SIGTERM/SIGINT (or, with exit_after_ack, until the
    task is acknowledged).  Blocks; returns the Runtime once stopped."""
    rt = Runtime(handler, port=port, host=host, exit_after_ack=exit_after_ack, log=log).start()

    def stop(_sig, _frm):
        threading.Thread(target=rt.stop, daemon=True).start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    rt.done.wait()
    return rt
