"""The names and small pure functions of agentscaler.io/v1
(docs/protocol.md, schemas in docs/protocol/*.schema.json)."""
import datetime
import hashlib
import os
import re
import uuid

API_VERSION = "agentscaler.io/v1"
BASE_PATH = "/agentscaler/v1"
DEFAULT_PORT = 8888
MAX_WAIT = 60.0          # the runtime caps a long-poll's wait (seconds)
POLL_WAIT = 25           # what agentscaler asks for: under the router's 30 s
                         # --response-header-timeout (section 7)
# The task token's header (section 2): not Authorization, which the
# sandbox-router consumes and never forwards.
TOKEN_HEADER = "X-Agentscaler-Token"
MAX_EVENTS = 256         # per EventList
MAX_BODY = 2 * 1024 * 1024
TASK_ID_MAX = 253

WAKING = ("started", "spawn", "completed", "failed")
TERMINAL = ("completed", "failed")
# Reply types by rank: a reply never moves a key backwards (section 4).
REPLY_RANK = {"deferred": 0, "admitted": 1, "rejected": 1, "result": 2}

_ID = re.compile(r"^[!-~]{1,253}$")
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
_REASON = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


class TaskFailed(Exception):
    """Raise from a handler to fail the task with a reason of your own:
    TaskFailed("tool.timeout", "the compiler hung", retryable=True)."""

    def __init__(self, reason, message="", retryable=False):
        super().__init__(message or reason)
        self.reason = reason if valid_reason(reason) else "handler.error"
        self.message = message or reason
        self.retryable = bool(retryable)


def valid_id(s):
    return isinstance(s, str) and bool(_ID.match(s))


def valid_key(s):
    return isinstance(s, str) and bool(_KEY.match(s))


def valid_traceparent(s):
    return isinstance(s, str) and bool(_TRACEPARENT.match(s))


def valid_reason(s):
    return isinstance(s, str) and len(s) <= 64 and bool(_REASON.match(s))


def now_rfc3339(t=None):
    """UTC, milliseconds, Z."""
    d = datetime.datetime.fromtimestamp(
        t if t is not None else datetime.datetime.now().timestamp(), datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


def new_traceparent(trace_id=None, sampled=True):
    """A W3C traceparent (version 00) with a new span id; a new trace
    unless trace_id (32 hex digits) is given."""
    tid = trace_id or os.urandom(16).hex()
    sid = os.urandom(8).hex()
    while sid == "0" * 16:
        sid = os.urandom(8).hex()
    return "00-%s-%s-%s" % (tid, sid, "01" if sampled else "00")


def child_traceparent(parent):
    """The same trace as parent, a new span id; a new trace when parent
    is absent or invalid."""
    if valid_traceparent(parent):
        return new_traceparent(parent[3:35], parent.endswith("01"))
    return new_traceparent()


def child_id(parent_id, key):
    """The id agentscaler gives the child spawned under key by parent_id
    (docs/protocol.md section 8, step 3)."""
    s = parent_id + "/" + key
    if len(s.encode()) <= TASK_ID_MAX:
        return s
    h = hashlib.sha256(parent_id.encode() + b"\0" + key.encode()).hexdigest()[:31]
    return parent_id.encode()[:220].decode("ascii") + "/#" + h


def task_message(id=None, payload=None, parent=None, resources=None, traceparent=None,
                 deadline=None, **extra):
    """The producer's task message (DESIGN.md section 6,
    task-message.schema.json).  id defaults to a new UUID and traceparent
    to a new trace; deadline may be an RFC 3339 string or unix seconds.
    Raises ValueError on what scheduler/task.c would dead-letter."""
    if id is None:
        id = "t-" + uuid.uuid4().hex
    if not valid_id(id):
        raise ValueError("task id must be 1..253 printable ASCII bytes, no spaces: %r" % (id,))
    msg = {"id": id}
    if parent is not None:
        if not valid_id(parent) or parent == id:
            raise ValueError("bad parent %r" % (parent,))
        msg["parent"] = parent
    msg["payload"] = payload
    if resources is not None:
        if not isinstance(resources, dict):
            raise ValueError("resources must be a dict of Kubernetes quantities")
        msg["resources"] = resources
    if traceparent is None:
        traceparent = new_traceparent()
    if traceparent is not False:
        if not valid_traceparent(traceparent):
            raise ValueError("traceparent must be 00-<32 hex>-<16 hex>-<2 hex>: %r"
                             % (traceparent,))
        msg["traceparent"] = traceparent
    if deadline is not None:
        msg["deadline"] = (now_rfc3339(deadline) if isinstance(deadline, (int, float))
                           else deadline)
    msg.update(extra)
    return msg


def error_body(reason, detail, task_id=None):
    e = {"apiVersion": API_VERSION, "kind": "Error", "reason": reason, "detail": detail[:4096]}
    if task_id is not None:
        e["taskId"] = task_id
    return e
