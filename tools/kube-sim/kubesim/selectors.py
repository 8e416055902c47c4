"""Label and field selectors (the string forms used in query parameters)."""

import re

from .util import bad_request

_KEY_RE = re.compile(r"^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?"
                     r"[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$")


def _split_top(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


class LabelSelector:
    """Parsed labelSelector: list of (key, op, values)."""

    def __init__(self, text):
        self.text = text or ""
        self.reqs = []
        if not self.text.strip():
            return
        for raw in _split_top(self.text):
            r = raw.strip()
            if not r:
                raise bad_request("unable to parse requirement: found '', expected: "
                                  "identifier")
            self.reqs.append(self._parse_req(r))

    @staticmethod
    def _check_key(k):
        if not _KEY_RE.match(k) or len(k.split("/")[-1]) > 63:
            raise bad_request('unable to parse requirement: values[0][%s]: Invalid value: '
                              '"%s": name part must consist of alphanumeric characters, '
                              "'-', '_' or '.', and must start and end with an "
                              "alphanumeric character" % (k, k))
        return k

    def _parse_req(self, r):
        m = re.match(r"^(\S+)\s+(in|notin)\s*\((.*)\)$", r)
        if m:
            vals = [v.strip() for v in m.group(3).split(",")]
            return (self._check_key(m.group(1)), m.group(2), set(vals))
        if r.startswith("!"):
            return (self._check_key(r[1:].strip()), "!", None)
        for op in ("==", "!=", "=", ">", "<"):
            if op in r:
                k, v = r.split(op, 1)
                k, v = k.strip(), v.strip()
                if op in (">", "<"):
                    try:
                        int(v)
                    except ValueError:
                        raise bad_request("unable to parse requirement: for 'Gt', 'Lt' "
                                          "operators, the value must be an integer")
                return (self._check_key(k), "=" if op == "==" else op, v)
        return (self._check_key(r), "exists", None)

    def empty(self):
        return not self.reqs

    def matches(self, labels):
        labels = labels or {}
        for k, op, v in self.reqs:
            has = k in labels
            val = labels.get(k)
            if op == "=":
                if not has or val != v:
                    return False
            elif op == "!=":
                if has and val == v:
                    return False
            elif op == "in":
                if not has or val not in v:
                    return False
            elif op == "notin":
                if has and val in v:
                    return False
            elif op == "exists":
                if not has:
                    return False
            elif op == "!":
                if has:
                    return False
            elif op in (">", "<"):
                try:
                    n = int(val)
                except (TypeError, ValueError):
                    return False
                if op == ">" and not n > int(v):
                    return False
                if op == "<" and not n < int(v):
                    return False
        return True


def selector_from_match_labels(sel):
    """metav1.LabelSelector -> string form."""
    if not isinstance(sel, dict):
        return ""
    parts = []
    for k in sorted((sel.get("matchLabels") or {})):
        parts.append("%s=%s" % (k, sel["matchLabels"][k]))
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        vals = sorted(e.get("values") or [])
        if op == "In":
            parts.append("%s in (%s)" % (e.get("key"), ",".join(vals)))
        elif op == "NotIn":
            parts.append("%s notin (%s)" % (e.get("key"), ",".join(vals)))
        elif op == "Exists":
            parts.append(e.get("key"))
        elif op == "DoesNotExist":
            parts.append("!" + e.get("key"))
    return ",".join(parts)


class FieldSelector:
    """Parsed fieldSelector: list of (field, op, value); op in '=', '!='."""

    def __init__(self, text, rt, label_text=""):
        self.text = text or ""
        self.reqs = []
        if not self.text.strip():
            return
        allowed = rt.field_selectors()
        for raw in self.text.split(","):
            r = raw.strip()
            if not r:
                continue
            if "!=" in r:
                f, v = r.split("!=", 1)
                op = "!="
            elif "==" in r:
                f, v = r.split("==", 1)
                op = "="
            elif "=" in r:
                f, v = r.split("=", 1)
                op = "="
            else:
                raise bad_request("invalid selector: '%s'; can't understand '%s'"
                                  % (self.text, r))
            f = f.strip()
            if f not in allowed:
                if rt.crd is not None:
                    why = '"%s" is not a known field selector: only "metadata.name", ' \
                          '"metadata.namespace"' % f
                    what = '"%s/%s, Resource=%s"' % (rt.group, rt.version, rt.plural)
                else:
                    why = "field label not supported: %s" % f
                    what = '{"%s" "%s" "%s"}' % (rt.group, rt.version, rt.plural)
                raise bad_request('Unable to find %s that match label selector "%s", '
                                  'field selector "%s": %s'
                                  % (what, label_text or "", self.text, why))
            self.reqs.append((f, op, v.strip()))

    def empty(self):
        return not self.reqs

    def matches(self, obj):
        for f, op, v in self.reqs:
            cur = obj
            for p in f.split("."):
                cur = cur.get(p) if isinstance(cur, dict) else None
            if cur is None:
                cur = ""
            if isinstance(cur, bool):
                cur = "true" if cur else "false"
            cur = str(cur)
            if op == "=" and cur != v:
                return False
            if op == "!=" and cur == v:
                return False
        return True

    def single_name(self):
        for f, op, v in self.reqs:
            if f == "metadata.name" and op == "=":
                return v
        return None
