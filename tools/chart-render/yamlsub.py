"""A YAML subset: the loader for Helm values files and the emitter behind toYaml.

Standard library only.  `helm` reads values with sigs.k8s.io/yaml (YAML 1.1
through go-yaml v2, then JSON); this loader reads the subset below the same
way and refuses everything else with the file and line, so a values file is
never read differently from helm without an error.

Accepted:
  * one document (an optional leading `---`), `#` comments;
  * block mappings `key: value` (plain or quoted keys) and block sequences
    `- item`, including compact `- key: value` items and a sequence under a
    key at the key's own indentation;
  * plain scalars on one line; 'single' and "double" quoted scalars on one
    line; flow collections `[a, "b"]` and `{k: v}` on one line; literal block
    scalars `|`, `|-`, `|+`.
  * plain scalars resolve as in YAML 1.1 / go-yaml v2: null (`null`, `~`,
    empty), booleans `true`/`false` (any case), decimal numbers (as float, as
    helm has every number as float64 after its JSON round trip), anything
    else is a string.
Refused (error): tabs in indentation, anchors `&`, aliases `*`, tags `!`,
complex keys `?`, folded `>` scalars, multi-line plain or quoted scalars,
several documents, duplicate keys, and plain scalars go-yaml v2 would read
as something other than the obvious string or number: `y`/`n`/`yes`/`no`/
`on`/`off` (booleans there), octal, hex, binary, sexagesimal, `.inf`/`.nan`
and dates.  Quote them.

The emitter writes what go-yaml v2 writes for the JSON data model (sorted
keys, two-space indentation, sequences at their key's indentation), quoting
any string that YAML 1.1 would read as something else.  Known difference: it
never folds long strings and writes strings with line breaks double-quoted
(go-yaml uses `|-` blocks); both read back to the same value.
"""

import math
import re


class YAMLError(ValueError):
    pass


# --------------------------------------------------------------- resolving

_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_V11_BOOLS = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
              "on", "On", "ON", "off", "Off", "OFF"}
_DEC_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_AMBIG = [
    (re.compile(r"[-+]?0[0-7_]+$"), "an octal number"),
    (re.compile(r"[-+]?0x[0-9a-fA-F_]+$"), "a hexadecimal number"),
    (re.compile(r"[-+]?0b[01_]+$"), "a binary number"),
    (re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$"), "a sexagesimal number"),
    (re.compile(r"[-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?$"), "a number with '_'"),
    (re.compile(r"[-+]?\.(inf|Inf|INF)$|\.(nan|NaN|NAN)$"), "an infinity or NaN"),
    (re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?$"), "a timestamp"),
]


def resolve_plain(s, where):
    """The value of a plain scalar, or YAMLError where go-yaml v2 would not
    simply agree."""
    if s in _NULLS:
        return None
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    if s in _V11_BOOLS:
        raise YAMLError("%s: %r is a boolean in YAML 1.1 (helm reads it so); "
                        "write true/false, or quote it for a string" % (where, s))
    if _DEC_INT.match(s) or (_FLOAT.match(s) and not _AMBIG[0][0].match(s)):
        return float(s)
    for rx, what in _AMBIG:
        if rx.match(s):
            raise YAMLError("%s: %r would be read as %s by helm's YAML 1.1 "
                            "parser; quote it (or write a plain decimal)" % (where, s, what))
    if s[0] in "&*!?|>%@`" or s.startswith("- ") or s == "-":
        raise YAMLError("%s: unsupported YAML (anchor, alias, tag or indicator): %r"
                        % (where, s))
    return s


# --------------------------------------------------------------- loading

def _plain_key(k, where):
    """A plain mapping key: go-yaml v2 resolves keys like values and helm then
    turns them into strings, so `y:` would become "true"; refuse those."""
    if k in _V11_BOOLS or k in _NULLS:
        raise YAMLError("%s: the key %r reads as a boolean or null in YAML 1.1 (helm "
                        "would turn it into \"true\"/\"false\"/\"null\"); quote it"
                        % (where, k))
    return k


def _quote_end(s, j):
    """The index of the quote that closes the quoted scalar opening at s[j]
    ('' inside single quotes and a backslash escape inside double quotes do
    not close it); len(s) or more when the line does not close it."""
    q = s[j]
    k = j + 1
    while k < len(s):
        if q == "'" and s[k] == "'" and s[k + 1:k + 2] == "'":
            k += 2
            continue
        if q == '"' and s[k] == "\\":
            k += 2
            continue
        if s[k] == q:
            break
        k += 1
    return k


def _strip_comment(text):
    """text without a trailing comment; quotes that open a scalar protect '#'."""
    i, n = 0, len(text)
    prev = ""
    while i < n:
        c = text[i]
        if c in "'\"" and prev in ("", ":", "-", "[", "{", ","):
            i = _quote_end(text, i) + 1
            prev = c
            continue
        if c == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
        if not c.isspace():
            prev = c
        i += 1
    return text.rstrip()


_DQ_ESC = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r",
           "0": "\0", "b": "\b", "f": "\f", " ": " ", "e": "\x1b", "a": "\a", "v": "\v"}


class _Loader:
    def __init__(self, text, name):
        self.name = name
        self.raw = text.split("\n")
        self.lines = []         # [lineno, indent, content] of significant lines
        for no, line in enumerate(self.raw, 1):
            body = line.lstrip(" ")
            if body.startswith("\t") or (body.strip() and "\t" in line[:len(line) - len(body)]):
                raise YAMLError("%s:%d: tab in indentation" % (name, no))
            content = _strip_comment(body)
            if not content.strip():
                continue
            self.lines.append([no, len(line) - len(body), content.rstrip()])
        if self.lines and self.lines[0][2] == "---":
            self.lines.pop(0)
        for ln in self.lines:
            if ln[2] in ("---", "...") or ln[2].startswith("--- "):
                raise YAMLError("%s:%d: only one YAML document is supported" % (name, ln[0]))

    def where(self, i):
        return "%s:%d" % (self.name, self.lines[i][0] if i < len(self.lines) else
                          len(self.raw))

    def load(self):
        if not self.lines:
            return None
        v, i = self.node(0, 0)
        if i < len(self.lines):
            raise YAMLError("%s: unexpected content (bad indentation?)" % self.where(i))
        return v

    @staticmethod
    def is_item(content):
        return content == "-" or content.startswith("- ")

    def key_split(self, content, i):
        """(key, rest) when content is `key:` / `key: rest`, else None."""
        if content[0] in "\"'":
            j = _quote_end(content, 0)
            if j >= len(content):
                return None
            after = content[j + 1:]
            if not (after == ":" or after.startswith(": ")):
                return None
            return self.quoted(content[:j + 1], i), after[1:].strip()
        m = re.match(r"([^\s\[\]{},#&*!|>'\"%@`?][^#]*?)\s*:(\s+(.*))?$", content)
        if not m or "{" in m.group(1) or "[" in m.group(1):
            return None
        key = m.group(1)
        if ": " in key:
            return None
        return _plain_key(key, self.where(i)), (m.group(3) or "").strip()

    def node(self, i, min_indent):
        no, ind, content = self.lines[i]
        if ind < min_indent:
            return None, i
        if self.is_item(content):
            return self.seq(i, ind)
        if self.key_split(content, i) is not None:
            return self.mapping(i, ind)
        if i + 1 < len(self.lines) and self.lines[i + 1][1] > min_indent - 1 and \
                self.lines[i + 1][1] >= ind and not self.is_item(self.lines[i + 1][2]):
            raise YAMLError("%s: multi-line plain scalars are not supported" % self.where(i))
        return self.scalar(content, i), i + 1

    def mapping(self, i, ind):
        out = {}
        while i < len(self.lines):
            no, lind, content = self.lines[i]
            if lind < ind:
                break
            if lind > ind:
                raise YAMLError("%s: bad indentation" % self.where(i))
            if self.is_item(content):
                break
            kv = self.key_split(content, i)
            if kv is None:
                raise YAMLError("%s: expected `key: value`, got %r" % (self.where(i), content))
            key, rest = kv
            if key in out:
                raise YAMLError("%s: duplicate key %r" % (self.where(i), key))
            if rest == "":
                nxt = self.lines[i + 1] if i + 1 < len(self.lines) else None
                if nxt is not None and nxt[1] > ind:
                    val, i = self.node(i + 1, ind + 1)
                elif nxt is not None and nxt[1] == ind and self.is_item(nxt[2]):
                    val, i = self.seq(i + 1, ind)
                else:
                    val, i = None, i + 1
            elif rest[0] in "|>":
                val, i = self.block(i, ind, rest)
            else:
                val, i = self.scalar(rest, i), i + 1
            out[key] = val
        return out, i

    def seq(self, i, ind):
        out = []
        while i < len(self.lines):
            no, lind, content = self.lines[i]
            if lind < ind:
                break
            if lind > ind:
                raise YAMLError("%s: bad indentation" % self.where(i))
            if not self.is_item(content):
                break
            rest = content[1:].lstrip(" ")
            if rest == "":
                nxt = self.lines[i + 1] if i + 1 < len(self.lines) else None
                if nxt is not None and nxt[1] > ind:
                    val, i = self.node(i + 1, ind + 1)
                else:
                    val, i = None, i + 1
            elif self.is_item(rest) or self.key_split(rest, i) is not None:
                # A compact nested node: re-read the rest of the line as if it
                # started a line at its own column.
                col = ind + len(content) - len(rest)
                self.lines[i] = [no, col, rest]
                val, i = self.node(i, col)
            elif rest[0] in "|>":
                val, i = self.block(i, ind, rest)
            else:
                val, i = self.scalar(rest, i), i + 1
            out.append(val)
        return out, i

    def block(self, i, ind, header):
        if not re.match(r"\|[-+]?$", header):
            raise YAMLError("%s: only literal block scalars (|, |-, |+) are supported, "
                            "without an indentation indicator" % self.where(i))
        no = self.lines[i][0]
        raw = self.raw
        j = no           # raw index of the line after the header
        body = []
        bind = None
        while j < len(raw):
            line = raw[j]
            if line.strip() == "":
                body.append("")
                j += 1
                continue
            lind = len(line) - len(line.lstrip(" "))
            if bind is None:
                if lind <= ind:
                    break
                bind = lind
            if lind < bind:
                break
            body.append(line[bind:])
            j += 1
        # drop the significant lines the block consumed
        k = i + 1
        while k < len(self.lines) and self.lines[k][0] <= j:
            k += 1
        while body and body[-1] == "" and header != "|+":
            body.pop()
        text = "\n".join(body)
        if header == "|":
            text += "\n" if body else ""
        elif header == "|+":
            text += "\n"
        return text, k

    def quoted(self, s, i):
        if s[0] == "'":
            if len(s) < 2 or s[-1] != "'":
                raise YAMLError("%s: unterminated or multi-line quoted scalar" % self.where(i))
            inner = s[1:-1]
            if re.search(r"(?<!')'(?!')", inner.replace("''", "")):
                raise YAMLError("%s: stray quote in %s" % (self.where(i), s))
            return inner.replace("''", "'")
        if len(s) < 2 or s[-1] != '"':
            raise YAMLError("%s: unterminated or multi-line quoted scalar" % self.where(i))
        out, j, inner = [], 0, s[1:-1]
        while j < len(inner):
            c = inner[j]
            if c == "\\":
                e = inner[j + 1:j + 2]
                if e in _DQ_ESC:
                    out.append(_DQ_ESC[e])
                    j += 2
                elif e in ("x", "u", "U"):
                    n = {"x": 2, "u": 4, "U": 8}[e]
                    h = inner[j + 2:j + 2 + n]
                    if len(h) != n or not re.match(r"[0-9a-fA-F]+$", h):
                        raise YAMLError("%s: bad escape in %s" % (self.where(i), s))
                    out.append(chr(int(h, 16)))
                    j += 2 + n
                else:
                    raise YAMLError("%s: unknown escape \\%s" % (self.where(i), e))
            elif c == '"':
                raise YAMLError("%s: stray quote in %s" % (self.where(i), s))
            else:
                out.append(c)
                j += 1
        return "".join(out)

    def scalar(self, s, i):
        s = s.strip()
        if s[:1] in ("'", '"'):
            return self.quoted(s, i)
        if s[:1] in ("[", "{"):
            v, j = self.flow(s, 0, i)
            if s[j:].strip():
                raise YAMLError("%s: trailing text after a flow collection" % self.where(i))
            return v
        return resolve_plain(s, self.where(i))

    def flow(self, s, j, i):
        """A flow collection or scalar at s[j]; returns (value, next index)."""
        def ws(k):
            while k < len(s) and s[k] == " ":
                k += 1
            return k
        j = ws(j)
        if j >= len(s):
            raise YAMLError("%s: unterminated flow collection" % self.where(i))
        c = s[j]
        if c in "[{":
            close = "]" if c == "[" else "}"
            out = [] if c == "[" else {}
            j = ws(j + 1)
            if s[j:j + 1] == close:
                return out, j + 1
            while True:
                if c == "[":
                    v, j = self.flow(s, j, i)
                    out.append(v)
                else:
                    k, j = self.flow(s, j, i)
                    if not isinstance(k, str):
                        raise YAMLError("%s: flow mapping keys must be strings (quote "
                                        "numbers, booleans and null)" % self.where(i))
                    j = ws(j)
                    if s[j:j + 1] != ":":
                        raise YAMLError("%s: expected ':' in flow mapping" % self.where(i))
                    v, j = self.flow(s, j + 1, i)
                    if k in out:
                        raise YAMLError("%s: duplicate key %r" % (self.where(i), k))
                    out[k] = v
                j = ws(j)
                if s[j:j + 1] == ",":
                    j = ws(j + 1)
                    if s[j:j + 1] == close:
                        return out, j + 1
                    continue
                if s[j:j + 1] == close:
                    return out, j + 1
                raise YAMLError("%s: expected ',' or %r in flow collection" % (self.where(i),
                                                                                  close))
        if c in "'\"":
            k = _quote_end(s, j)
            return self.quoted(s[j:k + 1], i), k + 1
        m = re.match(r"[^,\[\]{}:]*(:[^ ,\[\]{}][^,\[\]{}:]*)*", s[j:])
        tok = m.group(0).strip()
        if not tok:
            raise YAMLError("%s: empty item in flow collection" % self.where(i))
        return resolve_plain(tok, self.where(i)), j + m.end()


def load(text, name="<values>"):
    """Parses the subset; raises YAMLError with file:line on anything else."""
    return _Loader(text, name).load()


# --------------------------------------------------------------- numbers as Go prints them

def _digits(f):
    """(digits, decimal point position) of the shortest repr of finite f > 0."""
    r = repr(f)
    if "e" in r or "E" in r:
        mant, exp = r.lower().split("e")
        exp = int(exp)
    else:
        mant, exp = r, 0
    if "." in mant:
        ip, fp = mant.split(".")
    else:
        ip, fp = mant, ""
    if fp == "0":
        fp = ""
    ds = (ip + fp).lstrip("0")
    lead = len(ip + fp) - len((ip + fp).lstrip("0"))
    dp = len(ip) + exp - lead
    ds = ds.rstrip("0") or "0"
    return ds, dp


def _fmt_e(neg, ds, dp, min_exp_digits=2):
    exp = dp - 1
    m = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    sign = "-" if exp < 0 else "+"
    e = str(abs(exp)).rjust(min_exp_digits, "0")
    return ("-" if neg else "") + m + "e" + sign + e


def _fmt_f(neg, ds, dp):
    if dp <= 0:
        s = "0." + "0" * (-dp) + ds
    elif dp >= len(ds):
        s = ds + "0" * (dp - len(ds))
    else:
        s = ds[:dp] + "." + ds[dp:]
    return ("-" if neg else "") + s


def go_float_v(f):
    """fmt's %v of a float64: strconv 'g' with the shortest digits, in
    exponent form when the exponent is < -4 or >= 6 (helm prints a values
    number 1000000 as 1e+06): 2 -> "2", 0.5 -> "0.5"."""
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if math.isnan(f):
        return "NaN"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    neg = f < 0
    ds, dp = _digits(abs(f))
    exp = dp - 1
    if exp < -4 or exp >= 6:
        return _fmt_e(neg, ds, dp)
    return _fmt_f(neg, ds, dp)


def go_json_float(f):
    """encoding/json's float64: 'f' format within [1e-6, 1e21), else 'e' with
    a short exponent."""
    if math.isinf(f) or math.isnan(f):
        raise ValueError("json: unsupported value: %r" % f)
    if f == 0:
        return "0" if math.copysign(1, f) > 0 else "-0"
    neg = f < 0
    ds, dp = _digits(abs(f))
    if abs(f) < 1e-6 or abs(f) >= 1e21:
        s = _fmt_e(neg, ds, dp, 2)
        # Go cleans e-07 to e-7 and e+07 to e+07? It trims a 0 after e-.
        s = re.sub(r"e-0([0-9])$", r"e-\1", s)
        return s
    return _fmt_f(neg, ds, dp)


# --------------------------------------------------------------- JSON as Go writes it

def go_escape(s, code_fmt, coded=()):
    """s in double quotes with Go's escapes for '"', '\\', newline, tab and
    carriage return; the other C0 controls and the characters in coded are
    written as code_fmt % ord(ch), the rest as they are."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o in coded:
            out.append(code_fmt % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# json.Marshal escapes <, > and & (HTML) and U+2028/U+2029 as \uXXXX too
_JSON_CODED = frozenset((0x3c, 0x3e, 0x26, 0x2028, 0x2029))


def _json_str(s):
    return go_escape(s, "\\u%04x", _JSON_CODED)


def go_json(v):
    """json.Marshal of the JSON data model: sorted keys, no spaces."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_json_float(v)
    if isinstance(v, str):
        return _json_str(v)
    if isinstance(v, list):
        return "[" + ",".join(go_json(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(_json_str(str(k)) + ":" + go_json(v[k])
                              for k in sorted(v, key=str)) + "}"
    raise TypeError("json: unsupported type %s" % type(v).__name__)


# --------------------------------------------------------------- emitting

_SAFE_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@%+=-]*$|[A-Za-z_/][A-Za-z0-9 _./:@%+=()-]*[A-Za-z0-9_./)-]$")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E|ms|s|h)$")


def _needs_quotes(s):
    if s == "" or s in _NULLS or s in _TRUE or s in _FALSE or s in _V11_BOOLS:
        return True
    if s.lower() in ("null", "true", "false", "yes", "no", "on", "off", "y", "n"):
        return True
    if _QUANTITY.match(s) and not re.match(r"[0-9]+(\.[0-9]+)?[eE]", s):
        return False
    if not _SAFE_PLAIN.match(s):
        return True
    if ": " in s or " #" in s or s.endswith(":"):
        return True
    return False


def _scalar(v):
    if v is None or isinstance(v, (bool, int, float)):
        # null, booleans and numbers through JSON, as sigs.k8s.io/yaml does: 2.0 -> 2
        return go_json(v)
    if isinstance(v, str):
        return _json_str(v).replace("\\u003c", "<").replace("\\u003e", ">") \
            .replace("\\u0026", "&") if _needs_quotes(v) else v
    raise TypeError("toYaml: unsupported type %s" % type(v).__name__)


def _emit(v, ind, out):
    pad = " " * ind
    if isinstance(v, dict):
        for k in sorted(v, key=str):
            val = v[k]
            key = _scalar(str(k))
            if isinstance(val, dict) and val:
                out.append("%s%s:" % (pad, key))
                _emit(val, ind + 2, out)
            elif isinstance(val, list) and val:
                out.append("%s%s:" % (pad, key))
                _emit(val, ind, out)
            else:
                out.append("%s%s: %s" % (pad, key, _inline(val)))
    elif isinstance(v, list):
        for item in v:
            if isinstance(item, (dict, list)) and item:
                sub = []
                _emit(item, ind + 2, sub)
                first = sub[0][ind + 2:]
                out.append("%s- %s" % (pad, first))
                out.extend(sub[1:])
            else:
                out.append("%s- %s" % (pad, _inline(item)))
    else:
        out.append(pad + _scalar(v))


def _inline(v):
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _scalar(v)


def dump(v):
    """YAML text of v ending in a newline (toYaml trims it)."""
    if isinstance(v, (dict, list)) and not v:
        return _inline(v) + "\n"
    out = []
    _emit(v, 0, out)
    return "\n".join(out) + "\n"
