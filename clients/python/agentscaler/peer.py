"""agentscaler's side of agentscaler.io/v1 (docs/protocol.md sections 2,
3 and 8): the requests the dispatcher makes of a runtime, through the
sandbox-router (X-Sandbox-* headers) or straight to a pod IP.  Standard
library only.  The daemon's own implementation is in C; this one serves
the tests, the benchmark and whoever wants to drive a runtime by hand.

Every call returns (status, body): body is the decoded JSON (None when
empty).  A transport failure (connection refused or reset, timeout, an
answer cut short) raises OSError; an answer without the protocol's
apiVersion is not the runtime's (is_protocol_answer(): the router's
{"detail"} errors, a proxy's page), a transport failure too.
"""
import http.client
import json
from urllib.parse import quote, urlsplit

from . import protocol as P


def is_protocol_answer(body):
    return isinstance(body, dict) and body.get("apiVersion") == P.API_VERSION and "kind" in body


class Peer:
    """base: the router's URL (http://host:8080) with sandbox and
    namespace, or a runtime's URL (http://podip:8888) with sandbox None."""

    def __init__(self, base, sandbox=None, namespace="default", port=P.DEFAULT_PORT,
                 pod_ip=None, token=None, traceparent=None, timeout=10.0):
        u = urlsplit(base)
        self.scheme, self.host, self.port_ = u.scheme, u.hostname, u.port
        self.prefix = u.path.rstrip("/")
        self.headers = {}
        if sandbox is not None:
            self.headers.update({"X-Sandbox-ID": sandbox, "X-Sandbox-Namespace": namespace,
                                 "X-Sandbox-Port": str(port)})
            if pod_ip:
                self.headers["X-Sandbox-Pod-IP"] = pod_ip
        if token:
            self.headers[P.TOKEN_HEADER] = token
        if traceparent:
            self.headers["traceparent"] = traceparent
        self.timeout = timeout

    def request(self, method, path, body=None, timeout=None):
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port_, timeout=timeout or self.timeout)
        try:
            hdrs = dict(self.headers)
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            try:
                conn.request(method, self.prefix + path, body=data, headers=hdrs)
                r = conn.getresponse()
                raw = r.read()
            except http.client.HTTPException as e:    # IncompleteRead, a bad status line
                raise ConnectionError("%s %s: %s: %s" % (method, path, type(e).__name__, e)) \
                    from e
            try:
                obj = json.loads(raw) if raw else None
            except ValueError:
                obj = {"raw": raw[:200].decode("utf-8", "replace")}
            return r.status, obj
        finally:
            conn.close()

    @staticmethod
    def _t(tid):
        return P.BASE_PATH + "/tasks/" + quote(tid, safe="")

    def put(self, task_body):
        return self.request("PUT", self._t(task_body["agentscaler"]["id"]), task_body)

    def events(self, tid, after=0, wait=0, ack=None):
        q = "after=%d&wait=%g" % (after, wait)
        if ack is not None:
            q += "&ack=%d" % ack
        return self.request("GET", "%s/events?%s" % (self._t(tid), q), timeout=wait + 15)

    def reply(self, tid, reply):
        return self.request("POST", self._t(tid) + "/replies", reply)

    def delete(self, tid):
        return self.request("DELETE", self._t(tid))

    def health(self):
        return self.request("GET", P.BASE_PATH + "/health")


def task_body(message, namespace="default", pool="pool", claim="claim-1", sandbox="sb-1",
              parent=None, root=None, depth=0, attempt=1, traceparent=None, token=None):
    """The Task agentscaler PUTs (task.schema.json) for a producer's message."""
    meta = {"namespace": namespace, "pool": pool, "claim": claim, "sandbox": sandbox,
            "id": message["id"], "parent": parent, "root": root or message["id"],
            "depth": depth, "attempt": attempt,
            "traceparent": traceparent or message.get("traceparent")}
    if token:
        meta["token"] = token
    return {"apiVersion": P.API_VERSION, "kind": "Task", "agentscaler": meta, "task": message}


def reply(key, typ, child, reason=None, detail=None, result=None):
    """A Reply (reply.schema.json)."""
    r = {"apiVersion": P.API_VERSION, "kind": "Reply", "key": key, "type": typ, "child": child}
    if reason is not None:
        r["reason"] = reason
    if detail is not None:
        r["detail"] = detail
    if result is not None:
        r["result"] = result
    return r


def result_message(tid, state, value=None, error=None, sandbox=None, parent=None, root=None,
                   attempt=1, started_at=None, finished_at=None, traceparent=None):
    """A Result (result.schema.json)."""
    r = {"apiVersion": P.API_VERSION, "kind": "Result", "id": tid, "state": state,
         "sandbox": sandbox, "parent": parent, "root": root or tid, "attempt": attempt,
         "startedAt": started_at, "finishedAt": finished_at or P.now_rfc3339(),
         "traceparent": traceparent}
    if state == "completed":
        r["result"] = value
    else:
        r["error"] = error
    return r
