"""A subset of Go's text/template with the Sprig and Helm functions the
agentscaler chart uses.  Standard library only.

Supported (with Go's semantics): text and actions `{{ }}`, whitespace trim
markers `{{- ` and ` -}}`, comments `{{/* */}}`; pipelines `a | b c` (the
previous result is the last argument); fields `.A.b`, `$`, `$var.field`,
parenthesised pipelines; literals: "strings" (Go escapes), `raw`, integers,
floats, true, false, nil; `$x := pipeline`, `$x = pipeline`; if / else if /
else, range (lists, maps in key order, nil; `$v :=`, `$i, $v :=`; else),
with (else, else with), define, template, end.  Methods on the objects the
renderer provides (`.Capabilities.APIVersions.Has "v"`).

Functions: Go's and, or (lazy), not, eq, ne, lt, le, gt, ge, len, index,
print, printf (verbs %s %d %v %q %% only); Sprig's default, empty, quote,
toString, toYaml, toJson, indent, nindent, trunc, trimSuffix, replace,
contains, join, splitList, list, dict, hasKey, has, int, sha256sum; Helm's
include, required, fail.

Anything else (another function, break/continue, block, char literals,
printf flags and widths, printing a map or list) is an error naming the file
and line, never a silently different output.
"""

import hashlib
import re

from yamlsub import dump as yaml_dump, go_escape, go_float_v, go_json


class TemplateError(Exception):
    pass


class FailError(TemplateError):
    """`fail` / `required`: the chart refused the values."""


# ---------------------------------------------------------------- lexing

class Tok:
    __slots__ = ("kind", "val", "line")

    def __init__(self, kind, val, line):
        self.kind, self.val, self.line = kind, val, line

    def __repr__(self):
        return "Tok(%s,%r)" % (self.kind, self.val)


_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block",
             "break", "continue", "nil", "true", "false"}


def _split(src, name):
    """[('text', s, line)] and [('action', tokens, line, body)] with trims applied."""
    out = []
    i, line, n = 0, 1, len(src)
    while i < n:
        j = src.find("{{", i)
        if j < 0:
            out.append(["text", src[i:], line])
            break
        out.append(["text", src[i:j], line])
        line += src.count("\n", i, j)
        k = j + 2
        ltrim = False
        if src.startswith("- ", k) or src.startswith("-\t", k) or src.startswith("-\n", k):
            ltrim = True
            k += 1
        # scan to the closing delimiter, skipping string literals and comments
        m = k
        while m < n and src[m] in " \t\r\n":
            m += 1
        if src.startswith("/*", m):
            e = src.find("*/", m + 2)
            if e < 0:
                raise TemplateError("%s:%d: unclosed comment" % (name, line))
            after = e + 2
            rtrim = False
            rest = src[after:]
            mm = re.match(r"(\s+-)?}}", rest)
            if not mm:
                raise TemplateError("%s:%d: comment ends before closing delimiter"
                                    % (name, line))
            rtrim = mm.group(1) is not None
            end = after + mm.end()
            out.append(["comment", None, line, ltrim, rtrim])
            line += src.count("\n", j, end)
            i = end
            continue
        p = k
        while True:
            if p >= n:
                raise TemplateError("%s:%d: unclosed action" % (name, line))
            c = src[p]
            if c == '"':
                p += 1
                while p < n and src[p] != '"':
                    if src[p] == "\\":
                        p += 1
                    if src[p] == "\n":
                        raise TemplateError("%s:%d: unterminated quoted string" % (name, line))
                    p += 1
                p += 1
                continue
            if c == "`":
                e = src.find("`", p + 1)
                if e < 0:
                    raise TemplateError("%s:%d: unterminated raw string" % (name, line))
                p = e + 1
                continue
            if src.startswith("}}", p):
                break
            p += 1
        body = src[k:p]
        rtrim = False
        if re.search(r"[ \t\r\n]-$", body):
            rtrim = True
            body = body[:-1]
        out.append(["action", body, line, ltrim, rtrim])
        line += src.count("\n", j, p + 2)
        i = p + 2
    # apply trims
    for idx, item in enumerate(out):
        if item[0] in ("action", "comment"):
            if item[3] and idx > 0 and out[idx - 1][0] == "text":
                out[idx - 1][1] = out[idx - 1][1].rstrip(" \t\r\n")
            if item[4] and idx + 1 < len(out) and out[idx + 1][0] == "text":
                t = out[idx + 1][1]
                stripped = t.lstrip(" \t\r\n")
                out[idx + 1][1] = stripped
    return out


_TOKEN_RX = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<decl>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F_]+|(?:[0-9][0-9_]*)?\.?[0-9]+(?:[eE][-+]?[0-9]+)?))
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.X)


def _tokens(body, name, line):
    toks, i = [], 0
    while i < len(body):
        m = _TOKEN_RX.match(body, i)
        if not m:
            raise TemplateError("%s:%d: unexpected %r in action" % (name, line, body[i:i + 20]))
        kind = m.lastgroup
        val = m.group(0)
        i = m.end()
        if kind == "ws":
            continue
        if kind == "char":
            raise TemplateError("%s:%d: character literals are not supported" % (name, line))
        # a field chain right after ')' or a variable: `(x).Y`, `$v.Y`
        if kind == "field" and val != "." and toks and toks[-1].kind in ("rparen",) \
                and body[m.start() - 1] == ")":
            toks.append(Tok("chain", val, line))
            continue
        if kind == "var":
            fm = re.match(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+", body[i:])
            if fm:
                toks.append(Tok("var", (val, fm.group(0)[1:].split(".")), line))
                i += fm.end()
                continue
            toks.append(Tok("var", (val, []), line))
            continue
        toks.append(Tok(kind, val, line))
    return toks


# ---------------------------------------------------------------- parsing

class Node:
    pass


class Text(Node):
    def __init__(self, s):
        self.s = s


class Action(Node):
    def __init__(self, pipe, line):
        self.pipe, self.line = pipe, line


class If(Node):
    def __init__(self, kind, pipe, body, other, line):
        self.kind, self.pipe, self.body, self.other, self.line = kind, pipe, body, other, line


class Range(Node):
    def __init__(self, pipe, body, other, line):
        self.pipe, self.body, self.other, self.line = pipe, body, other, line


class TemplateCall(Node):
    def __init__(self, tname, pipe, line):
        self.tname, self.pipe, self.line = tname, pipe, line


class Pipe:
    def __init__(self, decl, assign, cmds):
        self.decl, self.assign, self.cmds = decl, assign, cmds


class Arg:
    """kind: field (chain), var (name, chain), ident, str, int, float, bool,
    nil, dot, pipe (Pipe, chain)."""

    def __init__(self, kind, val, chain=()):
        self.kind, self.val, self.chain = kind, val, list(chain)


def _unquote(tok, name, line):
    if tok.kind == "raw":
        return tok.val[1:-1]
    s = tok.val[1:-1]
    out, i = [], 0
    esc = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
           "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
    while i < len(s):
        c = s[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = s[i + 1]
        if e in ("x", "u", "U"):
            n = {"x": 2, "u": 4, "U": 8}[e]
            out.append(chr(int(s[i + 2:i + 2 + n], 16)))
            i += 2 + n
        elif e in esc:
            out.append(esc[e])
            i += 2
        else:
            raise TemplateError("%s:%d: unknown escape \\%s" % (name, line, e))
    return "".join(out)


class _PipeParser:
    def __init__(self, toks, name, line):
        self.toks, self.i, self.name, self.line = toks, 0, name, line

    def err(self, msg):
        return TemplateError("%s:%d: %s" % (self.name, self.line, msg))

    def peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def pipeline(self, allow_decl=True, range_decl=False, stop=None):
        decl, assign = [], False
        if allow_decl:
            # $x :=  |  $x =  |  $i, $v :=
            j = self.i
            names = []
            while j < len(self.toks) and self.toks[j].kind == "var" and \
                    not self.toks[j].val[1]:
                names.append(self.toks[j].val[0])
                j += 1
                if j < len(self.toks) and self.toks[j].kind == "comma" and range_decl:
                    j += 1
                    continue
                break
            if names and j < len(self.toks) and self.toks[j].kind in ("decl", "assign"):
                if len(names) > 1 and not range_decl:
                    raise self.err("too many declarations")
                assign = self.toks[j].kind == "assign"
                decl = names
                self.i = j + 1
        cmds = []
        while True:
            cmds.append(self.command(stop))
            t = self.peek()
            if t is None or (stop and t.kind == stop):
                break
            if t.kind == "pipe":
                self.i += 1
                continue
            raise self.err("unexpected %r in pipeline" % (t.val,))
        if not cmds or not cmds[0]:
            raise self.err("missing value for command")
        return Pipe(decl, assign, cmds)

    def command(self, stop):
        args = []
        while True:
            t = self.peek()
            if t is None or t.kind == "pipe" or (stop and t.kind == stop):
                break
            args.append(self.operand())
        if not args:
            raise self.err("empty command")
        return args

    def operand(self):
        t = self.peek()
        self.i += 1
        k = t.kind
        if k == "field":
            if t.val == ".":
                return Arg("dot", None)
            return Arg("field", None, t.val[1:].split("."))
        if k == "var":
            return Arg("var", t.val[0], t.val[1])
        if k in ("string", "raw"):
            return Arg("str", _unquote(t, self.name, self.line))
        if k == "number":
            v = t.val.replace("_", "")
            if re.match(r"[-+]?0[xX]", v):
                return Arg("int", int(v, 16))
            if re.match(r"[-+]?[0-9]+$", v):
                return Arg("int", int(v))
            return Arg("float", float(v))
        if k == "ident":
            if t.val in ("true", "false"):
                return Arg("bool", t.val == "true")
            if t.val == "nil":
                return Arg("nil", None)
            if t.val in _KEYWORDS:
                raise self.err("unexpected keyword %r" % t.val)
            return Arg("ident", t.val)
        if k == "lparen":
            p = self.pipeline(allow_decl=False, stop="rparen")
            if self.peek() is None or self.peek().kind != "rparen":
                raise self.err("unclosed left paren")
            self.i += 1
            chain = []
            if self.peek() is not None and self.peek().kind == "chain":
                chain = self.peek().val[1:].split(".")
                self.i += 1
            return Arg("pipe", p, chain)
        raise self.err("unexpected %r" % (t.val,))


def parse(src, name):
    """Returns (body nodes, {define name: nodes})."""
    items = _split(src, name)
    defines = {}
    pos = [0]

    def parse_list(end_words):
        nodes = []
        while pos[0] < len(items):
            it = items[pos[0]]
            pos[0] += 1
            if it[0] == "text":
                if it[1]:
                    nodes.append(Text(it[1]))
                continue
            if it[0] == "comment":
                continue
            body, line = it[1], it[2]
            toks = _tokens(body, name, line)
            if not toks:
                raise TemplateError("%s:%d: missing value for command" % (name, line))
            w = toks[0].val if toks[0].kind == "ident" else None
            if w in ("end", "else"):
                if w not in end_words:
                    raise TemplateError("%s:%d: unexpected {{%s}}" % (name, line, w))
                return nodes, w, toks, line
            if w in ("if", "with"):
                nodes.append(parse_if(w, toks, line))
            elif w == "range":
                p = _PipeParser(toks[1:], name, line).pipeline(range_decl=True)
                body_nodes, stop, stoks, sl = parse_list(("end", "else"))
                other = []
                if stop == "else":
                    if len(stoks) > 1:
                        raise TemplateError("%s:%d: else if/with after range is not supported"
                                            % (name, sl))
                    other, stop, _, _ = parse_list(("end",))
                nodes.append(Range(p, body_nodes, other, line))
            elif w == "define":
                if len(toks) != 2 or toks[1].kind != "string":
                    raise TemplateError("%s:%d: define needs a quoted name" % (name, line))
                dname = _unquote(toks[1], name, line)
                body_nodes, _, _, _ = parse_list(("end",))
                defines[dname] = body_nodes
            elif w == "template":
                if len(toks) < 2 or toks[1].kind not in ("string", "raw"):
                    raise TemplateError("%s:%d: template needs a quoted name" % (name, line))
                tname = _unquote(toks[1], name, line)
                p = _PipeParser(toks[2:], name, line).pipeline(allow_decl=False) \
                    if len(toks) > 2 else None
                nodes.append(TemplateCall(tname, p, line))
            elif w in ("block", "break", "continue"):
                raise TemplateError("%s:%d: {{%s}} is not supported by chart-render"
                                    % (name, line, w))
            else:
                p = _PipeParser(toks, name, line).pipeline()
                nodes.append(Action(p, line))
        if end_words:
            raise TemplateError("%s: unexpected EOF (missing {{end}})" % name)
        return nodes, None, None, None

    def parse_if(kind, toks, line):
        p = _PipeParser(toks[1:], name, line).pipeline()
        body_nodes, stop, stoks, sl = parse_list(("end", "else"))
        other = []
        if stop == "else":
            if len(stoks) > 1:
                k2 = stoks[1].val if stoks[1].kind == "ident" else None
                if k2 not in ("if", "with") or (k2 == "with") != (kind == "with"):
                    raise TemplateError("%s:%d: unsupported else form" % (name, sl))
                other = [parse_if(k2, stoks[1:], sl)]
                return If(kind, p, body_nodes, other, line)
            other, stop, _, _ = parse_list(("end",))
        return If(kind, p, body_nodes, other, line)

    nodes, stop, _, _ = parse_list(())
    return nodes, defines


# ---------------------------------------------------------------- values

def truth(v):
    if v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, dict, tuple)):
        return len(v) > 0
    return True


def strval(v):
    """Sprig's strval / fmt.Sprint of one value."""
    if v is None:
        return "<nil>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float_v(v)
    if isinstance(v, str):
        return v
    raise TemplateError("refusing to print a %s as text (use toYaml or toJson)"
                        % ("map" if isinstance(v, dict) else "list"))


def _kind(v):
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "other"


def go_eq(a, *bs):
    if not bs:
        raise TemplateError("missing argument for comparison")
    ka = _kind(a)
    for b in bs:
        kb = _kind(b)
        if ka != kb:
            if ka != "nil" and kb != "nil":
                raise TemplateError("incompatible types for comparison (%s and %s)" % (ka, kb))
            t = False
        elif ka == "other":
            raise TemplateError("non-comparable types for eq")
        else:
            t = a == b
        if t:
            return True
    return False


def go_less(a, b):
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        raise TemplateError("incompatible types for comparison (%s and %s)" % (ka, kb))
    if ka not in ("int", "float", "string"):
        raise TemplateError("invalid type for comparison")
    return a < b


def go_printf(fmt, *args):
    out, ai, i = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        v = fmt[i + 1:i + 2]
        i += 2
        if v == "%":
            out.append("%")
            continue
        if v not in ("s", "d", "v", "q"):
            raise TemplateError("printf: verb %%%s (or flags/width) is not supported" % v)
        if ai >= len(args):
            raise TemplateError("printf: missing argument for %%%s" % v)
        a = args[ai]
        ai += 1
        if v == "d":
            if _kind(a) != "int":
                raise TemplateError("printf: %%d of a %s (values numbers are float64 "
                                    "in helm; use int)" % _kind(a))
            out.append(str(a))
        elif v == "s":
            if _kind(a) not in ("string",):
                raise TemplateError("printf: %%s of a %s" % _kind(a))
            out.append(a)
        elif v == "q":
            if _kind(a) != "string":
                raise TemplateError("printf: %%q of a %s" % _kind(a))
            out.append(go_quote(a))
        else:
            out.append(strval(a))
    if ai != len(args):
        raise TemplateError("printf: %d extra argument(s)" % (len(args) - ai))
    return "".join(out)


def go_quote(s):
    """strconv.Quote for printable text (DEL as \\x7f)."""
    return go_escape(s, "\\x%02x", (0x7f,))


def empty(v):
    return not truth(v)


def _int(v):
    if v is None:
        return 0
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return int(v)
    if isinstance(v, str):
        try:
            return int(v, 0)
        except ValueError:
            try:
                return int(float(v))
            except ValueError:
                return 0
    return 0


def _trunc(n, s):
    if _kind(n) != "int":
        raise TemplateError("trunc: wrong type for value; expected int; got %s" % _kind(n))
    s = strval(s)
    if n < 0 and len(s) + n > 0:
        return s[len(s) + n:]
    if n >= 0 and len(s) > n:
        return s[:n]
    return s


def _indent(n, s):
    if _kind(n) != "int":
        raise TemplateError("indent: wrong type for value; expected int; got %s" % _kind(n))
    pad = " " * n
    return pad + strval(s).replace("\n", "\n" + pad)


def _dict(*kv):
    out = {}
    for i in range(0, len(kv), 2):
        out[strval(kv[i])] = kv[i + 1] if i + 1 < len(kv) else ""
    return out


def _has(needle, hay):
    if hay is None:
        return False
    if not isinstance(hay, list):
        raise TemplateError("has: cannot find in a %s" % _kind(hay))
    return any(_kind(x) == _kind(needle) and x == needle for x in hay)


def _join(sep, v):
    """Sprig's join: the items of a list as text (nil items skipped), a
    scalar as itself, nil as nothing; joined by sep."""
    if v is None:
        return ""
    items = v if isinstance(v, list) else [v]
    return strval(sep).join(strval(x) for x in items if x is not None)


def _required(msg, v):
    if v is None or (isinstance(v, str) and v == ""):
        raise FailError(msg)
    return v


def _fail(msg):
    raise FailError(msg)


def _to_yaml(v):
    return yaml_dump(v)[:-1] if v is not None else "null"


def _index(v, *keys):
    for k in keys:
        if isinstance(v, dict):
            v = v.get(k)
        elif isinstance(v, list):
            if _kind(k) != "int":
                raise TemplateError("index of a list needs an int")
            if not 0 <= k < len(v):
                raise TemplateError("index out of range: %d" % k)
            v = v[k]
        elif v is None:
            raise TemplateError("index of untyped nil")
        else:
            raise TemplateError("can't index item of type %s" % _kind(v))
    return v


def _len(v):
    if isinstance(v, (str, list, dict)):
        return len(v)
    raise TemplateError("len of %s" % _kind(v))


def _print(*args):
    out = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(strval(a))
    return "".join(out)


FUNCS = {
    "not": lambda v: not truth(v),
    "eq": go_eq,
    "ne": lambda a, b: not go_eq(a, b),
    "lt": go_less,
    "le": lambda a, b: go_less(a, b) or go_eq(a, b),
    "gt": lambda a, b: go_less(b, a),
    "ge": lambda a, b: go_less(b, a) or go_eq(a, b),
    "len": _len,
    "index": _index,
    "print": _print,
    "printf": go_printf,
    "default": lambda d, *given: d if not given or empty(given[0]) else given[0],
    "empty": empty,
    "quote": lambda *a: " ".join(go_quote(strval(x)) for x in a if x is not None),
    "toString": strval,
    "toYaml": _to_yaml,
    "toJson": go_json,
    "indent": _indent,
    "nindent": lambda n, s: "\n" + _indent(n, s),
    "trunc": _trunc,
    "trimSuffix": lambda suf, s: s[:-len(suf)] if suf and s.endswith(suf) else s,
    "replace": lambda old, new, s: strval(s).replace(old, new),
    "contains": lambda sub, s: strval(sub) in strval(s),
    "join": _join,
    "splitList": lambda sep, s: strval(s).split(strval(sep)) if sep != "" else list(s),
    "list": lambda *a: list(a),
    "dict": _dict,
    "hasKey": lambda d, k: isinstance(d, dict) and k in d,
    "has": _has,
    "int": _int,
    "sha256sum": lambda s: hashlib.sha256(strval(s).encode()).hexdigest(),
    "required": _required,
    "fail": _fail,
}
LAZY = {"and", "or"}


# ---------------------------------------------------------------- executing

class Engine:
    """Named templates from every parsed file; render() executes one."""

    def __init__(self):
        self.defines = {}        # name -> (nodes, file)
        self.files = {}          # file -> nodes

    def add(self, fname, src):
        nodes, defines = parse(src, fname)
        self.files[fname] = nodes
        for k, v in defines.items():
            self.defines[k] = (v, fname)

    def render(self, fname, data):
        out = []
        self._exec(self.files[fname], data, [("$", data)], out, fname, 0)
        return "".join(out)

    def include(self, tname, data, fname, depth):
        if tname not in self.defines:
            raise TemplateError('%s: no template "%s" associated with template' % (fname, tname))
        if depth > 100:
            raise TemplateError("%s: include nested too deeply" % fname)
        nodes, dfile = self.defines[tname]
        out = []
        self._exec(nodes, data, [("$", data)], out, dfile, depth + 1)
        return "".join(out)

    # -- nodes

    def _exec(self, nodes, dot, scope, out, fname, depth):
        for n in nodes:
            try:
                self._node(n, dot, scope, out, fname, depth)
            except FailError:
                raise
            except TemplateError as e:
                if getattr(e, "located", False):
                    raise
                line = getattr(n, "line", None)
                err = TemplateError("%s:%s: %s" % (fname, line, e) if line else str(e))
                err.located = True
                raise err from None

    def _node(self, n, dot, scope, out, fname, depth):
        if isinstance(n, Text):
            out.append(n.s)
        elif isinstance(n, Action):
            v = self._pipe(n.pipe, dot, scope, fname, depth)
            if not n.pipe.decl:
                out.append("" if v is None else strval(v))
        elif isinstance(n, If):
            mark = len(scope)
            v = self._pipe(n.pipe, dot, scope, fname, depth)
            if truth(v):
                self._exec(n.body, v if n.kind == "with" else dot, scope, out, fname, depth)
            else:
                del scope[mark:]
                self._exec(n.other, dot, scope, out, fname, depth)
            del scope[mark:]
        elif isinstance(n, Range):
            mark = len(scope)
            p = n.pipe
            decl = p.decl
            p2 = Pipe([], False, p.cmds)
            v = self._pipe(p2, dot, scope, fname, depth)
            if v is None:
                items = []
            elif isinstance(v, list):
                items = list(enumerate(v))
            elif isinstance(v, dict):
                items = [(k, v[k]) for k in sorted(v)]
            else:
                raise TemplateError("range can't iterate over %s" % strval(v))
            if not items:
                self._exec(n.other, dot, scope, out, fname, depth)
            for k, item in items:
                if len(decl) == 1:
                    scope.append((decl[0], item))
                elif len(decl) == 2:
                    scope.append((decl[0], k))
                    scope.append((decl[1], item))
                self._exec(n.body, item, scope, out, fname, depth)
                del scope[mark:]
        elif isinstance(n, TemplateCall):
            data = self._pipe(n.pipe, dot, scope, fname, depth) if n.pipe else None
            out.append(self.include(n.tname, data, fname, depth))
        else:
            raise TemplateError("unknown node")

    # -- pipelines

    def _pipe(self, p, dot, scope, fname, depth):
        v = None
        for i, cmd in enumerate(p.cmds):
            v = self._cmd(cmd, dot, scope, fname, depth, v if i > 0 else _NOARG)
        if p.decl:
            if p.assign:
                for j in range(len(scope) - 1, -1, -1):
                    if scope[j][0] == p.decl[0]:
                        scope[j] = (p.decl[0], v)
                        break
                else:
                    raise TemplateError("undefined variable: %s" % p.decl[0])
            else:
                scope.append((p.decl[0], v))
        return v

    def _cmd(self, cmd, dot, scope, fname, depth, piped):
        head = cmd[0]
        if head.kind == "ident":
            name = head.val
            if name in LAZY:
                thunks = [lambda a=a: self._arg(a, dot, scope, fname, depth) for a in cmd[1:]]
                if piped is not _NOARG:
                    thunks.append(lambda: piped)
                if not thunks:
                    raise TemplateError("wrong number of args for %s" % name)
                v = None
                for t in thunks:
                    v = t()
                    if (name == "and") != truth(v):
                        return v
                return v
            args = [self._arg(a, dot, scope, fname, depth) for a in cmd[1:]]
            if piped is not _NOARG:
                args.append(piped)
            if name == "include":
                if len(args) != 2:
                    raise TemplateError("include needs a name and a value")
                return self.include(args[0], args[1], fname, depth)
            if name not in FUNCS:
                raise TemplateError('function "%s" not defined (not in chart-render\'s '
                                    'subset)' % name)
            try:
                return FUNCS[name](*args)
            except TypeError as e:
                raise TemplateError("wrong number or type of args for %s: %s" % (name, e))
        if len(cmd) > 1 or piped is not _NOARG:
            # a method call: .Capabilities.APIVersions.Has "x"
            if head.kind in ("field", "var"):
                fn = self._arg(head, dot, scope, fname, depth)
                if callable(fn):
                    args = [self._arg(a, dot, scope, fname, depth) for a in cmd[1:]]
                    if piped is not _NOARG:
                        args.append(piped)
                    return fn(*args)
            raise TemplateError("can't give argument to non-function %s" % _desc(head))
        v = self._arg(head, dot, scope, fname, depth)
        if callable(v):
            return v()
        return v

    def _arg(self, a, dot, scope, fname, depth):
        k = a.kind
        if k == "dot":
            return dot
        if k == "field":
            return _walk(dot, a.chain, ".")
        if k == "var":
            for j in range(len(scope) - 1, -1, -1):
                if scope[j][0] == a.val:
                    return _walk(scope[j][1], a.chain, a.val)
            raise TemplateError("undefined variable: %s" % a.val)
        if k in ("str", "int", "float", "bool"):
            return a.val
        if k == "nil":
            raise TemplateError("nil is not a command")
        if k == "pipe":
            return _walk(self._pipe(a.val, dot, list(scope), fname, depth), a.chain, "(...)")
        if k == "ident":
            if a.val in LAZY or a.val in FUNCS or a.val == "include":
                return self._cmd([a], dot, scope, fname, depth, _NOARG)
            raise TemplateError('function "%s" not defined' % a.val)
        raise TemplateError("bad operand")


_NOARG = object()


def _desc(a):
    if a.kind == "field":
        return "." + ".".join(a.chain)
    return str(a.val)


def _walk(v, chain, what):
    for i, f in enumerate(chain):
        if isinstance(v, dict):
            v = v.get(f)
        elif v is None:
            raise TemplateError("nil pointer evaluating interface {}.%s (%s%s)"
                                % (f, what, "." + ".".join(chain[:i + 1])))
        elif hasattr(v, "tmpl_fields") and f in v.tmpl_fields:
            v = getattr(v, f)
        else:
            raise TemplateError("can't evaluate field %s in type %s" % (f, _kind(v)))
    return v
