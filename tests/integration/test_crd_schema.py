"""The CRDs in charts/agentscaler/crds against the config parser's field
table (`agentscaler --help-config-json`): every field the parser accepts is
in the schema with the same type, enum, minimum, maximum, default and
required flag, and the schema has no field the parser would refuse.

The YAML is turned into JSON by the real kubectl: applied to a kube-sim,
then read back from the API.  No PyYAML.
"""
import json
import os
import subprocess
import tempfile
import unittest

import crd_cases  # noqa: E402
import world  # noqa: E402

TYPES = {"string": "string", "enum": "string", "integer": "integer", "number": "number",
         "boolean": "boolean", "object": "object", "quantities": "object"}

# Where the CRD's default differs from the parser's, and why.
CRD_DEFAULT = {
    # --config mode takes the stock router; CRD mode the first of the
    # daemon's --handoff-routers (a default here would be stored in every
    # object and pin the pool to it when the operator changes the list).
    "spec.handoff.router": None,
}


@unittest.skipUnless(world.Kubectl.available(), "kubectl not installed")
class CrdSchemaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        binary = os.environ.get("AGENTSCALER_BIN",
                                os.path.join(world.ROOT, "build/release/agentscaler"))
        out = subprocess.run([binary, "--help-config-json"], capture_output=True, check=True,
                             text=True, timeout=60).stdout
        cls.table = json.loads(out)
        cls.binary = binary
        cls.kube = world.KubeSim("--no-sandbox-controller")
        cls.kubectl = world.Kubectl(cls.kube)
        try:
            r = cls.kubectl.install_crds()
            cls.applied = r.stdout
            cls.crds = {}
            for plural in ("agentpools", "agentquotas"):
                code, obj = cls.kube.api(
                    "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                    "%s.agentscaler.io" % plural)
                assert code == 200, (code, obj)
                cls.crds[plural] = obj
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.kubectl.cleanup()
        cls.kube.stop()

    def version(self, plural):
        vs = self.crds[plural]["spec"]["versions"]
        self.assertEqual([v["name"] for v in vs], ["v1alpha1"])
        return vs[0]

    def node(self, schema, path):
        """The schema node of a dotted spec path, and its parent."""
        parent, cur = None, schema
        for part in path.split("."):
            props = cur.get("properties") or {}
            self.assertIn(part, props, "%s: not in the CRD schema" % path)
            parent, cur = cur, props[part]
        return parent, cur

    def check_kind(self, plural, kind):
        schema = self.version(plural)["schema"]["openAPIV3Schema"]
        fields = [f for f in self.table[kind] if f["path"].startswith("spec")]
        self.assertTrue(fields)
        seen = set()
        for f in fields:
            path = f["path"]
            seen.add(path)
            parent, n = self.node(schema, path)
            with self.subTest(kind=kind, path=path):
                if f["type"] == "quantities":
                    self.assertTrue(n["additionalProperties"].get("x-kubernetes-int-or-string"))
                else:
                    self.assertEqual(n.get("type"), TYPES[f["type"]])
                self.assertEqual(n.get("enum"), f.get("enum"))
                self.assertEqual(n.get("minimum"), f.get("min"))
                self.assertEqual(n.get("maximum"), f.get("max"))
                self.assertEqual(n.get("default"), CRD_DEFAULT.get(path, f.get("default")))
                name = path.rsplit(".", 1)[-1]
                self.assertEqual(name in (parent.get("required") or []), f["required"],
                                 "required flag of %s" % path)
                if f["type"] == "string" and "enum" not in f:
                    self.assertEqual(n.get("minLength"), 1, "the parser refuses \"\"")
        # Nothing in the spec schema that the parser would refuse.
        def walk(node, path):
            for k, sub in (node.get("properties") or {}).items():
                p = path + "." + k
                self.assertIn(p, seen, "%s is in the CRD but not in the parser" % p)
                walk(sub, p)
        walk(schema["properties"]["spec"], "spec")
        self.assertEqual(schema.get("required"), ["spec"])

    def test_agentpool_spec_matches_parser(self):
        self.check_kind("agentpools", "AgentPool")

    def test_agentquota_spec_matches_parser(self):
        self.check_kind("agentquotas", "AgentQuota")

    def test_names_status_and_columns(self):
        for plural, kind, short, cols in (
                ("agentpools", "AgentPool", "apool",
                 ["Mode", "Target", "Min", "Max", "Backlog", "Replicas", "Desired", "Active",
                  "Ready", "Age"]),
                ("agentquotas", "AgentQuota", "aquota", ["Max", "Used", "Age"])):
            crd = self.crds[plural]
            names = crd["spec"]["names"]
            self.assertEqual(names["kind"], kind)
            self.assertEqual(names["shortNames"], [short])
            self.assertEqual(names["categories"], ["agentscaler"])
            v = self.version(plural)
            self.assertEqual(v["subresources"], {"status": {}})
            have = [c["name"] for c in v["additionalPrinterColumns"]]
            for c in cols:
                self.assertIn(c, have)
            status = v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
            self.assertIn("conditions", status)
            self.assertIn("observedGeneration", status)
        pst = self.version("agentpools")["schema"]["openAPIV3Schema"]["properties"]["status"]
        for k in ("replicas", "desiredReplicas", "backlog", "inFlight", "lastScaleTime",
                  "claims"):
            self.assertIn(k, pst["properties"])
        qst = self.version("agentquotas")["schema"]["openAPIV3Schema"]["properties"]["status"]
        for k in ("used", "roots", "deferred", "rejected"):
            self.assertIn(k, qst["properties"])

    def rules(self, plural):
        """(schema path, rule, message) of every x-kubernetes-validations."""
        out = []

        def walk(node, path):
            for r in node.get("x-kubernetes-validations") or []:
                out.append((path, r["rule"], r.get("message", "")))
            for k, sub in (node.get("properties") or {}).items():
                walk(sub, path + "." + k if path else k)
            if isinstance(node.get("items"), dict):
                walk(node["items"], path + "[]")
            if isinstance(node.get("additionalProperties"), dict):
                walk(node["additionalProperties"], path + "{}")
        walk(self.version(plural)["schema"]["openAPIV3Schema"], "")
        return out

    def check_config(self, kind, spec):
        """(exit code, stderr) of --check-config on the one object."""
        key = "pools" if kind == "AgentPool" else "quotas"
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({key: [crd_cases.obj(kind, spec)]}, f)
        try:
            r = subprocess.run([self.binary, "--config", path, "--check-config"],
                               capture_output=True, text=True, timeout=60)
        finally:
            os.unlink(path)
        return r.returncode, r.stdout + r.stderr

    def test_cel_rules_in_step_with_the_parser(self):
        """Every CEL rule of the CRDs has a case in tools/lib/crd_cases.py
        and every case a rule; the parser refuses each case with its own
        error (the rule refuses nothing the parser takes) and accepts the
        valid objects.  The real API server runs the same cases:
        tests/e2e/test_e2e_crd_validation.py."""
        for plural, kind in (("agentpools", "AgentPool"), ("agentquotas", "AgentQuota")):
            rules = self.rules(plural)
            self.assertTrue(rules, plural)
            cases = [c for c in crd_cases.CASES if c[1] == kind]
            for path, rule, msg in rules:
                with self.subTest(kind=kind, rule=rule):
                    self.assertTrue(msg, "a rule without a message")
                    self.assertTrue([c for c in cases if c[3] in msg],
                                    "no case in crd_cases.py breaks %s" % rule)
            for name, _k, _s, msg, _p in cases:
                with self.subTest(case=name):
                    self.assertTrue([r for r in rules if msg in r[2]],
                                    "case %r names no rule of the CRD" % name)
        for name, kind, spec, _msg, parser in crd_cases.CASES:
            with self.subTest(case=name):
                code, out = self.check_config(kind, spec)
                self.assertEqual(code, 2, out)
                self.assertIn(parser, out)
        for kind, spec in crd_cases.VALID:
            with self.subTest(valid=spec):
                code, out = self.check_config(kind, spec)
                self.assertEqual(code, 0, out)

    def test_every_field_described(self):
        """Every property of both schemas, spec and status, says what it
        is (kubectl explain shows it); not metadata, where the API server
        allows nothing but name and generateName."""
        def walk(node, path):
            for k, sub in (node.get("properties") or {}).items():
                p = path + "." + k
                if p.count(".") == 1 and k == "metadata":
                    continue    # the API server refuses anything there but name
                with self.subTest(field=p):
                    self.assertTrue(sub.get("description"), "%s has no description" % p)
                walk(sub, p)
            if isinstance(node.get("items"), dict):
                walk(node["items"], path + "[]")
        for plural in ("agentpools", "agentquotas"):
            schema = self.version(plural)["schema"]["openAPIV3Schema"]
            self.assertTrue(schema.get("description"))
            walk(schema, plural)

    def test_conditions_are_a_map_by_type(self):
        """status.conditions is keyed by type (listType map), so a
        server-side apply or a merge of one condition replaces that one."""
        for plural in ("agentpools", "agentquotas"):
            cond = self.version(plural)["schema"]["openAPIV3Schema"]["properties"]["status"][
                "properties"]["conditions"]
            with self.subTest(crd=plural):
                self.assertEqual(cond.get("x-kubernetes-list-type"), "map")
                self.assertEqual(cond.get("x-kubernetes-list-map-keys"), ["type"])
                self.assertIn("type", cond["items"]["required"])

    def test_short_names_do_not_clash(self):
        """apool and aquota are unknown to kube-sim's built-ins and to the
        agent-sandbox CRDs (and to upstream Kubernetes' short names)."""
        r = self.kubectl.run("api-resources", "--no-headers")
        taken = {}
        for line in r.stdout.splitlines():
            cols = line.split()
            # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND
            if len(cols) == 5:
                for s in cols[1].split(","):
                    taken.setdefault(s, []).append(cols[0])
        self.assertEqual(taken.get("apool"), ["agentpools"])
        self.assertEqual(taken.get("aquota"), ["agentquotas"])
        r = self.kubectl.run("get", "agentscaler")
        self.assertIn("No resources found", r.stderr + r.stdout)


if __name__ == "__main__":
    unittest.main()
