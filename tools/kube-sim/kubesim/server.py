"""HTTP front end: the API port (routing, auth, faults, watch streaming) and
the admin port (fault injection, request log, test hooks)."""

import collections
import email.utils
import json
import queue
import random
import re
import select
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import store as S
from .auth import forbidden_message
from .selectors import FieldSelector, LabelSelector
from .util import ApiError, bad_request, dumps, method_not_allowed, new_uid, status_obj

FS_UID = str(uuid.uuid4())
PL_UID = str(uuid.uuid4())
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415:
           "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
           500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
MESSAGES = {429: "Too many requests, please try again later.",
            500: "Internal error occurred: injected fault",
            503: "the server is currently unable to handle the request",
            504: "the server was unable to return a response in the time allotted, but "
                 "may still be processing the request"}


_date = [0, ""]


def http_date():
    """The Date header value, formatted once per second."""
    now = int(time.time())
    if _date[0] != now:
        _date[1] = email.utils.formatdate(now, usegmt=True)
        _date[0] = now
    return _date[1]


class State:
    """Fault, latency and request-log state shared by API and admin ports."""

    def __init__(self, log_max=200000):
        self.lock = threading.Lock()
        self.faults = []
        self.latency = []
        self.log = collections.deque(maxlen=log_max)
        self.seq = 0

    def arrive(self, method, path, query, mono, wall):
        with self.lock:
            self.seq += 1
            e = {"seq": self.seq, "method": method, "path": path, "query": query,
                 "mono": mono, "wall": wall, "code": None, "user": None}
            self.log.append(e)
            return e

    def take_fault(self, method, target):
        with self.lock:
            for f in self.faults:
                if f["remaining"] <= 0:
                    continue
                if f.get("method") not in (None, "", "*") and \
                        f["method"].upper() != method:
                    continue
                pat = f.get("path") or ""
                if pat and pat not in target:
                    try:
                        if not re.search(pat, target):
                            continue
                    except re.error:
                        continue
                f["remaining"] -= 1
                f["fired"] = f.get("fired", 0) + 1
                return dict(f)
        return None

    def delay(self, method, target):
        total = 0.0
        with self.lock:
            for l in self.latency:
                if l.get("method") not in (None, "", "*") and l["method"].upper() != method:
                    continue
                pat = l.get("path") or ""
                if pat and pat not in target:
                    try:
                        if not re.search(pat, target):
                            continue
                    except re.error:
                        continue
                total += l["ms"] / 1000.0
        return total


class _Headers(dict):
    """Request headers by lower-case name; get() is case-insensitive and the first of
    repeated headers wins, as with email.message.Message."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


def _parse_request(self):
    """BaseHTTPRequestHandler.parse_request (same checks, errors and keep-alive rules)
    with a plain header reader instead of the email package, which costs a fifth of a
    small request."""
    self.command = None
    self.request_version = version = self.default_request_version
    self.close_connection = True
    requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
    self.requestline = requestline
    words = requestline.split()
    if not words:
        return False
    if len(words) >= 3:
        version = words[-1]
        try:
            if not version.startswith("HTTP/"):
                raise ValueError
            nums = version.split("/", 1)[1].split(".")
            if len(nums) != 2 or not all(x.isdigit() and len(x) <= 10 for x in nums):
                raise ValueError
            vn = int(nums[0]), int(nums[1])
        except (ValueError, IndexError):
            self.send_error(400, "Bad request version (%r)" % version)
            return False
        if vn >= (1, 1) and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        if vn >= (2, 0):
            self.send_error(505, "Invalid HTTP version (%s)" % version.split("/", 1)[1])
            return False
        self.request_version = version
    if not 2 <= len(words) <= 3:
        self.send_error(400, "Bad request syntax (%r)" % requestline)
        return False
    command, path = words[:2]
    if len(words) == 2:
        self.close_connection = True
        if command != "GET":
            self.send_error(400, "Bad HTTP/0.9 request type (%r)" % command)
            return False
    self.command, self.path = command, path
    if self.path.startswith("//"):
        self.path = "/" + self.path.lstrip("/")
    headers = _Headers()
    last = None
    count = 0
    while True:
        line = self.rfile.readline(65537)
        if len(line) > 65536:
            self.send_error(431, "Line too long", "header line")
            return False
        if line in (b"\r\n", b"\n", b""):
            break
        count += 1
        if count > 100:
            self.send_error(431, "Too many headers", "got more than 100 headers")
            return False
        text = line.decode("iso-8859-1")
        if text[0] in " \t" and last is not None:  # obsolete line folding
            headers[last] = (headers[last] + " " + text.strip()).strip()
            continue
        name, sep, value = text.partition(":")
        if not sep:
            continue
        name = name.strip().lower()
        if name not in headers:
            headers[name] = value.strip()
            last = name
        else:
            last = None
    self.headers = headers
    conntype = headers.get("connection", "").lower()
    if conntype == "close":
        self.close_connection = True
    elif conntype == "keep-alive" and self.protocol_version >= "HTTP/1.1":
        self.close_connection = False
    expect = headers.get("expect", "")
    if expect.lower() == "100-continue" and self.protocol_version >= "HTTP/1.1" and \
            self.request_version >= "HTTP/1.1":
        if not self.handle_expect_100():
            return False
    return True


def _gv_of(group, version):
    return group + "/" + version if group else version


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-sim"
    sys_version = ""
    parse_request = _parse_request

    # ------------------------------------------------------------ plumbing
    def setup(self):
        BaseHTTPRequestHandler.setup(self)
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.track(self.connection, True)

    def finish(self):
        try:
            BaseHTTPRequestHandler.finish(self)
        except OSError:
            pass
        self.server.track(self.connection, False)

    def log_message(self, fmt, *args):
        pass

    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
            mono = time.monotonic()
            wall = time.time()
            if len(self.raw_requestline) > 65536:
                self.requestline = ""
                self.request_version = ""
                self.command = ""
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self.arrival = (mono, wall)
            self.dispatch()
        except (TimeoutError, ConnectionError, ssl.SSLError, OSError):
            self.close_connection = True

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if te == "chunked":
            out = b""
            while True:
                line = self.rfile.readline(65537)
                n = int(line.strip().split(b";")[0] or b"0", 16)
                if n == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline(65537)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send_raw(self, code, body, ctype="application/json", extra=None):
        reason = self.responses.get(code, ("",))[0]
        h = ["HTTP/1.1 %d %s" % (code, reason),
             "Audit-Id: %s" % new_uid(),
             "Cache-Control: no-cache, private",
             "Content-Type: %s" % ctype,
             "X-Kubernetes-Pf-Flowschema-Uid: %s" % FS_UID,
             "X-Kubernetes-Pf-Prioritylevel-Uid: %s" % PL_UID,
             "Date: %s" % http_date(),
             "Content-Length: %d" % len(body)]
        for k, v in (extra or {}).items():
            h.append("%s: %s" % (k, v))
        if self.close_connection:
            h.append("Connection: close")
        # Record the code before the bytes leave: a client that reads the
        # response and at once asks /requests must see it.
        if self.entry is not None:
            self.entry["code"] = code
        self.wfile.write(("\r\n".join(h) + "\r\n\r\n").encode() + body)

    def send_obj(self, code, obj, extra=None):
        self.send_raw(code, dumps(obj).encode(), extra=extra)

    def send_err(self, e):
        if e.plain is not None:
            self.send_raw(e.code, e.plain.encode(), "text/plain; charset=utf-8", e.headers)
        else:
            self.send_obj(e.code, e.status(), e.headers)

    # ------------------------------------------------------------ dispatch
    def dispatch(self):
        srv = self.server
        self.entry = None
        url = urllib.parse.urlsplit(self.path)
        path = url.path or "/"
        qs = url.query
        method = self.command
        self.entry = srv.state.arrive(method, path, qs, *self.arrival)
        try:
            body = self.read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
        except (ValueError, OSError):
            self.close_connection = True
            return
        target = path + ("?" + qs if qs else "")
        d = srv.state.delay(method, target)
        if d > 0:
            time.sleep(d)
        f = srv.state.take_fault(method, target)
        if f is not None:
            return self.send_fault(f)
        q = {}
        for k, v in urllib.parse.parse_qsl(qs, keep_blank_values=True):
            q[k] = v
        try:
            cert = self.connection.getpeercert() \
                if isinstance(self.connection, ssl.SSLSocket) else None
            user = srv.auth.authenticate(self.headers.get("Authorization"), cert)
            if user is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self.entry["user"] = user["name"]
            self.user = user
            self.route(method, path, q, body)
        except ApiError as e:
            self.send_err(e)
        except (ConnectionError, ssl.SSLError, BrokenPipeError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - report as a 500 Status
            import traceback
            traceback.print_exc()
            self.send_err(ApiError(500, "InternalError", "Internal error occurred: %s" % e,
                                   {"causes": [{"message": str(e)}]}))

    def send_fault(self, f):
        code = int(f.get("code", 500))
        extra = {}
        ra = f.get("retryAfter")
        if code == 429 and ra is None:
            ra = 1
        if ra is not None:
            extra["Retry-After"] = str(int(ra))
        if f.get("body") == "text" or (code == 429 and f.get("apf")):
            msg = f.get("message") or MESSAGES.get(code, "injected fault")
            self.send_raw(code, (msg + "\n").encode(), "text/plain; charset=utf-8", extra)
            return
        msg = f.get("message") or MESSAGES.get(code, "injected fault %d" % code)
        det = {}
        if ra is not None:
            det["retryAfterSeconds"] = int(ra)
        if code == 500 and not f.get("message"):
            det["causes"] = [{"message": "injected fault"}]
        if isinstance(f.get("details"), dict):
            det.update(f["details"])
        self.send_obj(code, status_obj(code, f.get("reason") or REASONS.get(code, ""),
                                       msg, det or None), extra)

    def deny(self, verb, rt, sub, ns, name):
        raise ApiError(403, "Forbidden",
                       forbidden_message(self.user["name"], verb, rt.group, rt.plural, sub,
                                         ns, name),
                       _det(name, rt.group, rt.plural))

    def route(self, method, path, q, body):
        srv = self.server
        api = srv.api
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] not in ("api", "apis"):
            return self.non_resource(method, path)
        if parts[0] == "api":
            if len(parts) == 1:
                self.authz_path(path)
                return self.send_obj(200, {"kind": "APIVersions", "versions": ["v1"],
                                           "serverAddressByClientCIDRs": [
                                               {"clientCIDR": "0.0.0.0/0",
                                                "serverAddress": srv.address_str}]})
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                self.authz_path(path)
                return self.send_obj(200, self.group_list())
            if len(parts) == 2:
                self.authz_path(path)
                for g in self.group_list()["groups"]:
                    if g["name"] == parts[1]:
                        g = dict(g)
                        g["kind"] = "APIGroup"
                        g["apiVersion"] = "v1"
                        return self.send_obj(200, g)
                raise _nf_path()
            group, version, rest = parts[1], parts[2], parts[3:]
        gv = _gv_of(group, version)
        if gv not in api.types:
            raise _nf_path()
        if not rest:
            self.authz_path(path)
            res = []
            for rt in sorted(api.types[gv].values(), key=lambda r: r.plural):
                res.extend(rt.discovery())
            return self.send_obj(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                       "groupVersion": gv, "resources": res})
        watch_prefix = False
        if rest[0] == "watch":
            watch_prefix = True
            rest = rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and not (
                gv == "v1" and rest[2] in ("status", "finalize")):
            ns = rest[1]
            rest = rest[2:]
        if not rest or len(rest) > 3:
            raise _nf_path()
        rt = api.types[gv].get(rest[0])
        if rt is None:
            raise _nf_path()
        if rt.namespaced is False and ns is not None:
            raise _nf_path()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and not ((sub == "status" and rt.status) or
                                    (sub == "scale" and rt.scale)):
            raise _nf_path()
        if rt.namespaced and ns is None and method != "GET":
            if name is not None or method != "POST":
                raise _nf_path()
        # verb
        watch = watch_prefix or q.get("watch") in ("1", "true", "True")
        if method == "GET":
            verb = "watch" if watch else ("get" if name else "list")
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            raise method_not_allowed()
        if not srv.auth.allowed(self.user, verb, rt.group, rt.plural + ("/" + sub if sub
                                                                        else ""), ns, name):
            self.deny(verb, rt, sub, ns, name)
        if verb not in (rt.verbs if not sub else ("get", "patch", "update")):
            raise method_not_allowed()
        if method == "GET":
            if watch:
                if name and not watch_prefix:
                    raise method_not_allowed()
                if name:
                    q["fieldSelector"] = "metadata.name=" + name
                return self.serve_watch(rt, ns, q)
            if name is None:
                lst = api.list(rt, ns, q)
                if self.wants_table():
                    lst = srv.tables.list_table(rt, lst, q)
                return self.send_obj(200, lst)
            if sub == "scale":
                return self.send_obj(200, api.get_scale(rt, ns, name))
            obj = api.get(rt, ns, name)
            if self.wants_table():
                obj = srv.tables.obj_table(rt, obj, q)
            return self.send_obj(200, obj)
        if method == "POST":
            if name is not None:
                raise method_not_allowed()
            obj = api.create(rt, ns, _json_body(body, self.headers.get("Content-Type")), q,
                             owned=True)
            return self.send_obj(201, obj)
        if method == "PUT":
            if name is None:
                raise method_not_allowed()
            doc = _json_body(body, self.headers.get("Content-Type"))
            obj, created = api.update(rt, ns, name, doc, sub, q) \
                if sub != "scale" else (api.update(rt, ns, name, doc, sub, q), False)
            return self.send_obj(201 if created else 200, obj)
        if method == "PATCH":
            if name is None:
                raise method_not_allowed()
            obj, created = api.patch(rt, ns, name, body, self.headers.get("Content-Type"),
                                     sub, q)
            return self.send_obj(201 if created else 200, obj)
        if method == "DELETE":
            if name is None:
                return self.send_obj(200, api.delete_collection(rt, ns, body, q))
            obj, st = api.delete(rt, ns, name, body, q)
            return self.send_obj(200, obj if obj is not None else st)
        raise method_not_allowed()

    def wants_table(self):
        acc = self.headers.get("Accept") or ""
        return "as=Table" in acc

    def authz_path(self, path):
        if not self.server.auth.allowed(self.user, "get", None, None, None, None, path=path):
            raise ApiError(403, "Forbidden", 'forbidden: User "%s" cannot get path "%s"'
                           % (self.user["name"], path), {})

    def non_resource(self, method, path):
        srv = self.server
        if path in ("/healthz", "/livez", "/readyz"):
            self.authz_path(path)
            return self.send_raw(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            self.authz_path(path)
            return self.send_obj(200, {
                "major": "1", "minor": "32", "gitVersion": "v1.32.0-kube-sim",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64"})
        del srv
        self.authz_path(path)
        self.send_raw(404, b"404 page not found\n", "text/plain; charset=utf-8")

    def group_list(self):
        groups = []
        for g, versions in self.server.api.groups():
            vs = [{"groupVersion": g + "/" + v, "version": v} for v in versions]
            groups.append({"name": g, "versions": vs, "preferredVersion": vs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    # ------------------------------------------------------------ watch
    def serve_watch(self, rt, ns, q):
        srv = self.server
        api = srv.api
        st = api.store
        ls = LabelSelector(q.get("labelSelector"))
        fs = FieldSelector(q.get("fieldSelector"), rt, q.get("labelSelector"))
        rvq = q.get("resourceVersion")
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true", "True")
        initial_end = q.get("sendInitialEvents") in ("1", "true", "True")
        try:
            tmo = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else \
                1800.0 * (1.0 + random.random())
        except ValueError:
            raise bad_request("invalid timeoutSeconds: %s" % q.get("timeoutSeconds"))
        start = None
        if rvq not in (None, "", "0"):
            try:
                start = int(rvq)
            except ValueError:
                raise bad_request("invalid resource version: %s" % rvq)
        filt = not (ls.empty() and fs.empty())

        def ok(o):
            if rt.kind == "Event":
                o = api._out(rt, o)
            return ls.matches(o["metadata"].get("labels")) and fs.matches(o)

        # A name pinned by the field selector lets the store skip every other object's
        # events (the per-claim watch of the client flow); the filter below still runs.
        w = S.Watcher(rt.key, ns if rt.namespaced else None, fs.single_name())
        too_old = None
        initial = []
        with st.lock:
            cur = st.rv
            if start is None or initial_end:
                for o in st.items(rt.key, w.ns):
                    if not filt or ok(o):
                        initial.append(o)
            elif start < st.oldest():
                too_old = (start, st.oldest())
            else:
                for e in st.events_since(rt.key, start):
                    if w.ns is None or e.ns == w.ns:
                        w.q.put(e)
            if too_old is None:
                st.add_watcher(w)
        w.sock = self.connection
        srv.add_watch(w)
        self.entry["code"] = 200
        try:
            self.wfile.write(("HTTP/1.1 200 OK\r\nAudit-Id: %s\r\nCache-Control: no-cache, "
                              "private\r\nContent-Type: application/json\r\n"
                              "X-Kubernetes-Pf-Flowschema-Uid: %s\r\n"
                              "X-Kubernetes-Pf-Prioritylevel-Uid: %s\r\n"
                              "Date: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                              % (new_uid(), FS_UID, PL_UID, http_date())).encode())
            out = self.wfile
            gv = rt.gv

            buf = []

            def send(data):
                buf.append(b"%x\r\n%s\r\n" % (len(data), data))
                if len(buf) >= 64:
                    flush()

            def flush():
                # events that are already queued go out in one write (one syscall
                # instead of one per event when the watch is busy)
                if buf:
                    out.write(b"".join(buf))
                    buf.clear()

            table = self.wants_table()

            def fix(o):
                if o.get("apiVersion") != gv:
                    o = api._out(rt, o)
                if table:
                    o = srv.tables.obj_table(rt, o, q)
                return o

            if too_old is not None:
                send((dumps({"type": "ERROR", "object": status_obj(
                    410, "Expired", "too old resource version: %d (%d)" % too_old)})
                      + "\n").encode())
                flush()
                out.write(b"0\r\n\r\n")
                return
            for o in initial:
                send((dumps({"type": "ADDED", "object": fix(o)}) + "\n").encode())
            if initial_end and bookmarks:
                send((dumps({"type": "BOOKMARK", "object": {
                    "kind": rt.kind, "apiVersion": gv, "metadata": {
                        "resourceVersion": str(cur),
                        "annotations": {"k8s.io/initial-events-end": "true"}}}})
                      + "\n").encode())
            flush()
            deadline = time.monotonic() + tmo
            bm_every = srv.bookmark_interval
            next_bm = time.monotonic() + bm_every
            next_check = time.monotonic() + 1.0
            sock = self.connection
            plain = not isinstance(sock, ssl.SSLSocket)
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                wait = min(deadline - now, next_check - now)
                if bookmarks:
                    wait = min(wait, next_bm - now)
                try:
                    ev = w.q.get_nowait()
                except queue.Empty:
                    flush()
                    try:
                        ev = w.q.get(timeout=max(0.0, wait))
                    except queue.Empty:
                        ev = None
                if ev is S.DROP:
                    flush()
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                if ev is None:
                    now = time.monotonic()
                    if bookmarks and now >= next_bm:
                        with st.lock:
                            empty = w.q.empty()
                            brv = st.rv
                        if empty:
                            send((dumps({"type": "BOOKMARK", "object": {
                                "kind": rt.kind, "apiVersion": gv,
                                "metadata": {"resourceVersion": str(brv)}}}) + "\n").encode())
                            flush()
                        next_bm = now + bm_every
                    if now >= next_check:
                        next_check = now + 1.0
                        r, _, _ = select.select([sock], [], [], 0)
                        if r:
                            try:
                                if not plain or sock.recv(1, socket.MSG_PEEK) == b"":
                                    self.close_connection = True
                                    return
                            except OSError:
                                self.close_connection = True
                                return
                    continue
                if not filt:
                    if ev.obj.get("apiVersion") == gv and not table:
                        send(ev.line())
                    else:
                        send((dumps({"type": ev.type, "object": fix(ev.obj)})
                              + "\n").encode())
                    continue
                cur_ok = ev.type != "DELETED" and ok(ev.obj)
                old_ok = ev.prev is not None and ok(ev.prev)
                if ev.type == "DELETED":
                    if old_ok or ok(ev.obj):
                        send((dumps({"type": "DELETED", "object": fix(ev.obj)})
                              + "\n").encode())
                elif cur_ok and old_ok:
                    send((dumps({"type": "MODIFIED", "object": fix(ev.obj)}) + "\n").encode())
                elif cur_ok:
                    send((dumps({"type": "ADDED", "object": fix(ev.obj)}) + "\n").encode())
                elif old_ok:
                    o = dict(ev.prev)
                    o["metadata"] = dict(o["metadata"])
                    o["metadata"]["resourceVersion"] = str(ev.rv)
                    send((dumps({"type": "DELETED", "object": fix(o)}) + "\n").encode())
            flush()
            out.write(b"0\r\n\r\n")
        except (OSError, ssl.SSLError):
            self.close_connection = True
        finally:
            st.remove_watcher(w)
            srv.remove_watch(w)


def _det(name, group, kind):
    d = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = kind
    return d


def _nf_path():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


# Bodies kube-sim cannot read.  kube-apiserver accepts protobuf for built-in
# kinds (kubectl create/scale send it); kube-sim answers what kube-apiserver
# answers for a custom resource sent as protobuf: 415.  client-go (v0.36)
# falls back to JSON on a 415 only for CBOR, so kubectl commands that write
# built-in kinds as protobuf fail here, clearly (tools/kube-sim/README.md).
UNREADABLE = ("application/vnd.kubernetes.protobuf", "application/cbor",
              "application/vnd.kubernetes.protobuf;stream=watch")


def _json_body(raw, ctype=None):
    mt = (ctype or "").split(";")[0].strip().lower()
    if mt in UNREADABLE:
        raise ApiError(415, "UnsupportedMediaType",
                       "the body of the request was in an unknown format - accepted media "
                       "types include: application/json, application/yaml")
    if not raw:
        raise bad_request("the body of the request was empty")
    try:
        return json.loads(raw)
    except ValueError as e:
        raise bad_request("couldn't get version/kind; json parse error: %s" % e)


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048
    allow_reuse_address = True

    def __init__(self, addr, api, auth, state, tables, ssl_ctx=None, bookmark_interval=60.0):
        self.api = api
        self.auth = auth
        self.state = state
        self.tables = tables
        self.ssl_ctx = ssl_ctx
        self.bookmark_interval = bookmark_interval
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.watches = set()
        self.paused = False
        self.serve_thread = None
        ThreadingHTTPServer.__init__(self, addr, ApiHandler)
        self.address_str = "%s:%d" % self.server_address[:2]

    def finish_request(self, request, client_address):
        if self.ssl_ctx is not None:
            try:
                request.settimeout(30)
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (OSError, ssl.SSLError):
                try:
                    request.close()
                except OSError:
                    pass
                return
        ApiHandler(request, client_address, self)

    def track(self, sock, add):
        with self.conns_lock:
            if add:
                self.conns.add(sock)
            else:
                self.conns.discard(sock)

    def add_watch(self, w):
        with self.conns_lock:
            self.watches.add(w)

    def remove_watch(self, w):
        with self.conns_lock:
            self.watches.discard(w)

    def drop_watches(self):
        with self.conns_lock:
            ws = list(self.watches)
        for w in ws:
            w.q.put(S.DROP)
        return len(ws)

    def open_watches(self):
        with self.conns_lock:
            return len(self.watches)

    def start(self):
        self.serve_thread = threading.Thread(target=self.serve_forever,
                                             kwargs={"poll_interval": 0.2}, daemon=True)
        self.serve_thread.start()

    def pause(self):
        """Outage: close the listening socket (new connections are refused) and
        reset every open connection, watches included."""
        if self.paused:
            return
        self.paused = True
        self.shutdown()
        self.socket.close()
        self.drop_watches()
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def resume(self):
        if not self.paused:
            return
        s = socket.socket(self.address_family, self.socket_type)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                s.bind(self.server_address)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        s.listen(self.request_queue_size)
        self.socket = s
        self.paused = False
        self.start()


class AdminHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    parse_request = _parse_request

    def setup(self):
        BaseHTTPRequestHandler.setup(self)
        try:  # without it a keep-alive client waits out the delayed ACK (~40 ms) per call
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj):
        body = dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw.strip():
            return {}
        return json.loads(raw)

    def do_GET(self):
        self.handle_admin("GET")

    def do_POST(self):
        self.handle_admin("POST")

    def do_DELETE(self):
        self.handle_admin("DELETE")

    def handle_admin(self, method):
        try:
            url = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(url.query))
            body = self.body() if method == "POST" else {}
            code, obj = self.server.admin.handle(method, url.path, q, body)
        except ApiError as e:
            code, obj = e.code, e.status()
        except (ValueError, KeyError, TypeError) as e:
            code, obj = 400, {"error": str(e)}
        self.reply(code, obj)


class AdminServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, admin):
        self.admin = admin
        ThreadingHTTPServer.__init__(self, addr, AdminHandler)
