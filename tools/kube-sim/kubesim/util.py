"""Small helpers shared by every kube-sim module: errors, Status objects,
time formats, cloning and name generation."""

import datetime
import json
import marshal
import os
import random
import time
import uuid

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
# Names and uids need to be unique, not secret: a PRNG seeded from the OS is enough and
# much cheaper than one urandom call per character.
_rand = random.Random(int.from_bytes(os.urandom(16), "big"))


class ApiError(Exception):
    """An error that is answered with a Kubernetes Status object."""

    def __init__(self, code, reason, message, details=None, headers=None,
                 metadata=None, plain=None):
        Exception.__init__(self, message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.metadata = metadata
        self.plain = plain  # plain text body instead of a Status

    def status(self):
        return status_obj(self.code, self.reason, self.message, self.details,
                          self.metadata)


def status_obj(code, reason, message, details=None, metadata=None):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": metadata or {},
          "status": "Failure", "message": message}
    if reason:
        st["reason"] = reason
    if details:
        st["details"] = details
    st["code"] = code
    return st


def details(name=None, group=None, kind=None, causes=None, retry=None, uid=None):
    d = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    if uid:
        d["uid"] = uid
    if causes:
        d["causes"] = causes
    if retry is not None:
        d["retryAfterSeconds"] = retry
    return d


def qualified(plural, group):
    return plural + "." + group if group else plural


def not_found(plural, group, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (qualified(plural, group), name),
                    details(name, group, plural))


def already_exists(plural, group, name, generated=False):
    msg = '%s "%s" already exists' % (qualified(plural, group), name)
    if generated:
        msg += ", the server was not able to generate a unique name for the object"
        return ApiError(409, "AlreadyExists", msg, details(name, group, plural, retry=1))
    return ApiError(409, "AlreadyExists", msg, details(name, group, plural))


def conflict(plural, group, name):
    return ApiError(409, "Conflict",
                    'Operation cannot be fulfilled on %s "%s": the object has been '
                    'modified; please apply your changes to the latest version and '
                    'try again' % (qualified(plural, group), name),
                    details(name, group, plural))


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def invalid(kind, group, name, errs):
    """errs: list of (field, type, message-after-field). type is a cause reason
    such as FieldValueRequired / FieldValueInvalid."""
    gk = kind + "." + group if group else kind
    parts = ["%s: %s" % (f, m) for f, _t, m in errs]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    msg = '%s "%s" is invalid: %s' % (gk, name, joined)
    causes = [{"reason": t, "message": m, "field": f} for f, t, m in errs]
    return ApiError(422, "Invalid", msg, details(name, group, kind, causes))


def method_not_allowed():
    return ApiError(405, "MethodNotAllowed",
                    "the server does not allow this method on the requested resource")


def now_ts(t=None):
    t = time.time() if t is None else t
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def now_micro(t=None):
    t = time.time() if t is None else t
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(s):
    """RFC 3339 (seconds or fractional, Z or offset) -> epoch seconds, or None."""
    if not isinstance(s, str) or not s:
        return None
    try:
        x = s.replace("Z", "+00:00").replace("z", "+00:00")
        if "." in x:
            # Python 3.11 fromisoformat accepts up to 6 fractional digits
            head, rest = x.split(".", 1)
            frac = ""
            i = 0
            while i < len(rest) and rest[i].isdigit():
                frac += rest[i]
                i += 1
            x = head + "." + (frac[:6].ljust(6, "0")) + rest[i:]
        return datetime.datetime.fromisoformat(x).timestamp()
    except ValueError:
        return None


def new_uid():
    return str(uuid.UUID(int=_rand.getrandbits(128), version=4))


def gen_suffix(n=5):
    return "".join(_rand.choices(_NAME_CHARS, k=n))


def clone(obj):
    """Deep copy of a JSON value.  marshal format 2 (no back-references, so values
    shared inside obj come out as separate copies, as a JSON round trip gives) is about
    three times faster than json.loads(json.dumps()); anything marshal refuses goes
    through JSON."""
    try:
        return marshal.loads(marshal.dumps(obj, 2))
    except ValueError:
        return json.loads(json.dumps(obj))


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def name_hash(s):
    """FNV-1a 32 bit as 8 lowercase hex digits (agent-sandbox NameHash)."""
    h = 0x811c9dc5
    for b in s.encode():
        h ^= b
        h = (h * 0x01000193) & 0xffffffff
    return "%08x" % h


def get_path(obj, path):
    """Dotted path lookup ('.spec.replicas' or 'spec.replicas')."""
    cur = obj
    for p in path.strip(".").split("."):
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def set_path(obj, path, value):
    parts = path.strip(".").split(".")
    cur = obj
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value


def rv_int(s):
    try:
        return int(s)
    except (TypeError, ValueError):
        return None
