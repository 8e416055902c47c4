"""tools/chart-render: the Go template subset, the YAML subset and the schema
validator, each against what Go, Sprig, Helm and go-yaml v2 do."""

import os
import sys
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "chart-render"))

import chart_render  # noqa: E402
import gotemplate  # noqa: E402
import yamlsub  # noqa: E402


def render(src, values=None, defines=""):
    eng = gotemplate.Engine()
    eng.add("t/_h.tpl", defines)
    eng.add("t/x.yaml", src)
    rel = chart_render.Obj(Name="rel", Namespace="ns", Service="Helm")
    caps = chart_render.Obj(APIVersions=chart_render.APIVersions(["v1", "x.io/v1"]))
    return eng.render("t/x.yaml", {"Values": values or {}, "Release": rel,
                                   "Capabilities": caps})


class TemplateTest(unittest.TestCase):
    # (template, values, expected output): the output text/template + Sprig give
    CASES = [
        ("a {{ .Values.x }} b", {"x": "y"}, "a y b"),
        ("a  {{- .Values.x -}}  \n b", {"x": "y"}, "ayb"),
        ("{{ .Values.n }}", {"n": 2.0}, "2"),
        ("{{ .Values.n }}", {"n": 1000000.0}, "1e+06"),      # helm's float64 gotcha
        ("{{ .Values.n }}", {"n": 5.5}, "5.5"),
        ("{{ .Values.missing }}", {}, ""),                   # <no value> becomes ""
        ("{{ if .Values.b }}T{{ else }}F{{ end }}", {"b": False}, "F"),
        ("{{ if .Values.l }}T{{ else }}F{{ end }}", {"l": []}, "F"),
        ("{{ if .Values.s }}T{{ else if .Values.t }}U{{ else }}F{{ end }}",
         {"s": "", "t": 1.0}, "U"),
        ("{{ with .Values.m }}{{ .k }}{{ else }}none{{ end }}", {"m": {"k": "v"}}, "v"),
        ("{{ with .Values.m }}{{ .k }}{{ else }}none{{ end }}", {"m": {}}, "none"),
        ("{{ range .Values.l }}[{{ . }}]{{ end }}", {"l": ["a", "b"]}, "[a][b]"),
        ("{{ range $i, $v := .Values.l }}{{ $i }}={{ $v }};{{ end }}", {"l": ["a", "b"]},
         "0=a;1=b;"),
        ("{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}",
         {"m": {"b": "2", "a": "1"}}, "a=1;b=2;"),               # maps in key order
        ("{{ range .Values.none }}x{{ else }}empty{{ end }}", {}, "empty"),
        ("{{ range .Values.l }}{{ $.Release.Name }}{{ end }}", {"l": [1.0]}, "rel"),
        ("{{ $x := \"a\" }}{{ if true }}{{ $x = \"b\" }}{{ end }}{{ $x }}", {}, "b"),
        ("{{ default \"d\" .Values.x }}", {"x": ""}, "d"),
        ("{{ default true .Values.x }}", {"x": False}, "true"),  # Sprig's gotcha
        ("{{ .Values.x | default \"d\" | quote }}", {"x": "v"}, '"v"'),
        ("{{ quote .Values.n }}", {"n": 2.0}, '"2"'),
        ("{{ printf \"%s-%s\" \"a\" .Values.x | trunc 3 | trimSuffix \"-\" }}",
         {"x": "b"}, "a-b"),
        ("{{ printf \"%s-%s\" \"ab\" \"\" | trunc 3 | trimSuffix \"-\" }}", {}, "ab"),
        ("{{ trunc -2 \"abcd\" }}", {}, "cd"),
        ("{{ \"a+b+c\" | replace \"+\" \"_\" }}", {}, "a_b_c"),
        ("{{ printf \"%d/%v/%q\" 3 .Values.f \"x\" }}", {"f": 0.25}, '3/0.25/"x"'),
        ("{{ contains \"cha\" \"chart\" }}", {}, "true"),
        ("{{ join \",\" .Values.l }}|{{ join \",\" .Values.e }}|{{ join \",\" .Values.n }}",
         {"l": ["a", 2.0, None, "b"], "e": [], "n": None}, "a,2,b||"),
        ("{{ join \"-\" \"x\" }}", {}, "x"),
        ("{{ splitList \"/\" \"ns/name\" | toJson }}|{{ index (splitList \"/\" \"a\") 0 }}",
         {}, '["ns","name"]|a'),
        ("{{ splitList \"/\" \"\" | len }}", {}, "1"),        # Go's strings.Split
        ("{{ and 1 \"\" 2 }}|{{ or 0 \"\" \"z\" }}|{{ not 0 }}", {}, "|z|true"),
        ("{{ eq .Values.s \"a\" \"b\" }}", {"s": "b"}, "true"),
        ("{{ ne .Values.s \"a\" }}", {"s": "a"}, "false"),
        ("{{ gt (int .Values.n) 1 }}|{{ ge .Values.a .Values.b }}", {"n": 2.0, "a": 3.0,
                                                                       "b": 3.0}, "true|true"),
        ("{{ toYaml .Values.m | nindent 2 }}", {"m": {"b": [1.0, "x"], "a": "true"}},
         '\n  a: "true"\n  b:\n  - 1\n  - x'),
        ("{{ toYaml .Values.e }}", {"e": {}}, "{}"),
        ("{{ toJson .Values.m }}", {"m": {"b": [1.0, 2.5], "a": "<&>"}},
         '{"a":"\\u003c\\u0026\\u003e","b":[1,2.5]}'),
        ("{{ indent 2 \"a\\nb\" }}", {}, "  a\n  b"),
        ("{{ dict \"a\" 1 \"b\" \"x\" | toJson }}", {}, '{"a":1,"b":"x"}'),
        ("{{ list \"a\" \"b\" | toJson }}", {}, '["a","b"]'),
        ("{{ hasKey .Values.m \"k\" }}{{ has \"b\" .Values.l }}", {"m": {"k": None},
                                                                    "l": ["a", "b"]},
         "truetrue"),
        ("{{ toString .Values.n }}", {"n": 3.0}, "3"),
        ("{{ sha256sum \"abc\" }}", {},
         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("{{ include \"h\" . | upper_is_not_used_here_so_skip }}", None, None),
        ("{{ include \"h\" .Values }}", {"v": "z"}, "<z>"),
        ("{{ template \"h\" .Values }}", {"v": "z"}, "<z>"),
        ("{{ (include \"h\" .Values) | quote }}", {"v": "z"}, '"<z>"'),
        ("{{ .Capabilities.APIVersions.Has \"x.io/v1\" }}", {}, "true"),
        ("{{ .Capabilities.APIVersions.Has \"y.io/v1\" }}", {}, "false"),
        ("{{/* a comment */}}x{{- /* trimmed */ -}} y", {}, "xy"),
        ("{{ len .Values.l }}{{ index .Values.m \"k\" }}", {"l": [1.0], "m": {"k": "v"}},
         "1v"),
        ("{{ `raw \\n` }}", {}, "raw \\n"),
        ("{{ print \"a\" 1 2 \"b\" }}", {}, "a1 2b"),
    ]

    def test_cases(self):
        for src, values, want in self.CASES:
            if want is None:
                continue
            with self.subTest(src=src):
                self.assertEqual(render(src, values, '{{ define "h" }}<{{ .v }}>{{ end }}'),
                                 want)

    # Templates Go or Helm refuse; chart-render must refuse them too (or
    # refuse what it does not implement), never print something else.
    ERRORS = [
        ("{{ .Values.a.b }}", {}, "nil pointer evaluating interface {}.b"),
        ("{{ eq .Values.n 2 }}", {"n": 2.0}, "incompatible types for comparison"),
        ("{{ printf \"%d\" .Values.n }}", {"n": 2.0}, "%d of a float"),
        ("{{ printf \"%5s\" \"a\" }}", {}, "not supported"),
        ("{{ upper \"a\" }}", {}, 'function "upper" not defined'),
        ("{{ .Values.m }}", {"m": {"a": 1.0}}, "refusing to print a map"),
        ("{{ range .Values.l }}{{ break }}{{ end }}", {"l": [1.0]}, "not supported"),
        ("{{ if true }}x", {}, "missing {{end}}"),
        ("{{ end }}", {}, "unexpected {{end}}"),
        ("{{ include \"nope\" . }}", {}, 'no template "nope"'),
        ("{{ trunc 63.0 \"x\" }}", {}, "expected int"),
        ("{{ $y }}", {}, "undefined variable: $y"),
        ("{{ 'a' }}", {}, "character literals"),
        ("{{ .Values.x", {}, "unclosed action"),
    ]

    def test_errors(self):
        for src, values, want in self.ERRORS:
            with self.subTest(src=src):
                with self.assertRaises(gotemplate.TemplateError) as cm:
                    render(src, values, '{{ define "h" }}<{{ .v }}>{{ end }}')
                self.assertIn(want, str(cm.exception))

    def test_fail_and_required(self):
        with self.assertRaises(gotemplate.FailError) as cm:
            render('{{ fail "no way" }}')
        self.assertEqual(str(cm.exception), "no way")
        with self.assertRaises(gotemplate.FailError):
            render('{{ required "need x" .Values.x }}', {"x": ""})
        self.assertEqual(render('{{ required "need x" .Values.x }}', {"x": False}), "false")

    def test_error_names_file_and_line(self):
        with self.assertRaises(gotemplate.TemplateError) as cm:
            render("a\nb\n{{ nosuch }}")
        self.assertTrue(str(cm.exception).startswith("t/x.yaml:3:"), str(cm.exception))


class YamlLoadTest(unittest.TestCase):
    def test_subset(self):
        text = """# comment
a: 1
b: "two # not a comment"   # comment
c: 'it''s'
d:
  - x
  - k: v
    k2: [1, "two", {z: null}]
  -
    deep: true
e:
- at key indent
f: {}
g: []
h: ~
i: 100m
j: |
  line1
  line2
k: 1.5e3
url: redis://h:6379/0
"""
        self.assertEqual(yamlsub.load(text), {
            "a": 1.0, "b": "two # not a comment", "c": "it's",
            "d": ["x", {"k": "v", "k2": [1.0, "two", {"z": None}]}, {"deep": True}],
            "e": ["at key indent"], "f": {}, "g": [], "h": None, "i": "100m",
            "j": "line1\nline2\n", "k": 1500.0, "url": "redis://h:6379/0"})

    REFUSED = [
        ("a: yes\n", "is a boolean in YAML 1.1"),
        ("a: off\n", "is a boolean in YAML 1.1"),
        ("a: 0755\n", "octal"),
        ("a: 0x1F\n", "hexadecimal"),
        ("a: 1_000\n", "'_'"),
        ("y: 1\n", "the key 'y' reads as a boolean"),
        ("a: {on: 1}\n", "is a boolean in YAML 1.1"),
        ("a: {1: x}\n", "flow mapping keys must be strings"),
        ("a: 2024-01-02\n", "timestamp"),
        ("a: &x 1\n", "anchor"),
        ("a: *x\n", "anchor"),
        ("a: !!str 1\n", "tag"),
        ("a: >\n  folded\n", "only literal block scalars"),
        ("a: 1\na: 2\n", "duplicate key"),
        ("a:\n\tb: 1\n", "tab"),
        ("a: 1\n---\nb: 2\n", "only one YAML document"),
        ("a: \"open\n", "unterminated"),
        ("a: b\n  c: d\n", "bad indentation"),
    ]

    def test_refused(self):
        for text, want in self.REFUSED:
            with self.subTest(text=text):
                with self.assertRaises(yamlsub.YAMLError) as cm:
                    yamlsub.load(text, "v.yaml")
                self.assertIn(want, str(cm.exception))
                self.assertIn("v.yaml", str(cm.exception))

    def test_dump_round_trip(self):
        """What toYaml writes reads back to the same data (strings that look
        like other YAML 1.1 types are quoted)."""
        data = {"s": ["y", "no", "true", "1", "1.5", "0755", "", "a: b", "#x", "- x", "100m",
                      "hello world", "~", "null", "1e3", "2024-01-02", "x #y"],
                "n": [1.0, 2.5, 0.0], "b": [True, False], "nil": None,
                "nested": {"l": [{"a": "b", "c": ["d"]}, []], "m": {}}}
        text = yamlsub.dump(data)
        self.assertEqual(yamlsub.load(text), data)


class SchemaTest(unittest.TestCase):
    SCHEMA = {"type": "object", "additionalProperties": False, "required": ["n"],
              "properties": {
                  "n": {"type": "integer", "minimum": 1, "maximum": 5},
                  "s": {"type": "string", "pattern": "^[a-z]+$", "minLength": 2},
                  "e": {"enum": ["a", "b"]},
                  "l": {"type": "array", "items": {"$ref": "#/definitions/item"}},
                  "u": {"type": ["integer", "string"]}},
              "definitions": {"item": {"type": "object", "required": ["name"]}}}

    def test_errors(self):
        v = chart_render.validate
        self.assertEqual(v(self.SCHEMA, {"n": 3.0, "s": "ab", "e": "a", "l": [{"name": "x"}],
                                         "u": "x"}), [])
        self.assertEqual(v(self.SCHEMA, {"n": 2.5}),
                         ["n: Invalid type. Expected: integer, given: number"])
        self.assertEqual(sorted(v(self.SCHEMA, {"n": 9.0, "s": "A", "e": "c", "l": [{}],
                                                "x": 1.0, "u": True})), sorted([
            "n: Must be less than or equal to 5",
            "s: Does not match pattern '^[a-z]+$'",
            "s: String length must be greater than or equal to 2",
            'e: e must be one of the following: "a", "b"',
            "l.0: name is required",
            "(root): Additional property x is not allowed",
            "u: Invalid type. Expected: integer or string, given: boolean"]))
        self.assertEqual(v(self.SCHEMA, {}), ["(root): n is required"])

    def test_unknown_keyword_refused(self):
        with self.assertRaises(ValueError) as cm:
            chart_render.validate({"oneOf": [{}]}, 1.0)
        self.assertIn("oneOf", str(cm.exception))


class GoNumbersTest(unittest.TestCase):
    def test_formats(self):
        for f, v, j in [(2.0, "2", "2"), (1e6, "1e+06", "1000000"), (123456.0, "123456",
                                                                     "123456"),
                        (0.5, "0.5", "0.5"), (1e-5, "1e-05", "0.00001"),
                        (1e-7, "1e-07", "1e-7"), (1e21, "1e+21", "1e+21"),
                        (-2.25, "-2.25", "-2.25")]:
            self.assertEqual(yamlsub.go_float_v(f), v)
            self.assertEqual(yamlsub.go_json_float(f), j)


if __name__ == "__main__":
    unittest.main()
