"""One list per vocabulary: the source types (scalers/registry.c), the
workload kinds (k8s/scale.c) and the agent-sandbox API groups
(include/agentscaler/k8s/k8s.h) live in C; `agentscaler --print-vocabulary`
prints them, and every copy outside C is held to that output here, so a copy
that drifts fails: the AgentPool CRD's enums, the README's field rows, the
chart's RBAC rules and tests/chart's expected rules.  (The config parser
takes its enums from the same C tables; test_crd_schema.py checks the whole
CRD schema against `--help-config-json` with a real kubectl.)

Only the binary and files are read: no server runs.
"""
import json
import os
import re
import subprocess
import unittest

import world

CHART = os.path.join(world.ROOT, "charts", "agentscaler")


def read(*path):
    with open(os.path.join(world.ROOT, *path)) as f:
        return f.read()


def rbac_rules(text):
    """(apiGroup, resource) pairs of the `- apiGroups: [...]` /
    `resources: [...]` rules of a chart template."""
    pairs = set()
    for groups, resources in re.findall(
            r'^\s*- apiGroups: \[([^\]]*)\]\n\s*resources: \[([^\]]*)\]', text, re.M):
        for g in re.findall(r'"([^"]*)"', groups):
            for r in re.findall(r'"([^"]*)"', resources):
                pairs.add((g, r))
    return pairs


class VocabularyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        binary = os.environ.get("AGENTSCALER_BIN",
                                os.path.join(world.ROOT, "build/release/agentscaler"))
        out = subprocess.run([binary, "--print-vocabulary"], capture_output=True,
                             check=True, text=True, timeout=60).stdout
        cls.v = json.loads(out)
        cls.kinds = [k["kind"] for k in cls.v["targetKinds"]]
        cls.sandbox_groups = {cls.v["sandbox"]["apiGroup"],
                              cls.v["sandbox"]["extensionsApiGroup"]}

    def test_registries_are_sorted_and_known(self):
        self.assertEqual(self.v["sourceTypes"], sorted(self.v["sourceTypes"]))
        self.assertIn("redis-list", self.v["sourceTypes"])
        self.assertEqual(self.kinds, sorted(self.kinds))
        self.assertIn("Deployment", self.kinds)
        self.assertEqual(self.v["sandbox"]["extensionsApiGroup"],
                         "extensions." + self.v["sandbox"]["apiGroup"])

    def test_crd_enums(self):
        crd = read("charts", "agentscaler", "crds", "agentpools.yaml")
        enums = re.findall(r"^\s*enum: \[([^\]]*)\]", crd, re.M)
        lists = [[x.strip() for x in e.split(",")] for e in enums]
        self.assertIn(self.v["sourceTypes"], lists)
        self.assertIn(self.kinds, lists)

    def test_readme_rows(self):
        readme = read("README.md")
        for field, want in (("spec.source.type", self.v["sourceTypes"]),
                            ("spec.target.kind", self.kinds)):
            row = [ln for ln in readme.splitlines() if ln.startswith("| `%s`" % field)]
            self.assertEqual(len(row), 1, field)
            desc = row[0].split("|")[3]
            named = set(re.findall(r"`([A-Za-z-]+)`", desc.split("(")[0]))
            self.assertEqual(named, set(want), row[0])

    def test_chart_rbac(self):
        """The chart grants /scale on every target kind, and names no
        agent-sandbox group other than the binary's."""
        rules = rbac_rules(read("charts", "agentscaler", "templates", "_rules.tpl"))
        for k in self.v["targetKinds"]:
            self.assertIn((k["apiGroup"], k["resource"] + "/scale"), rules, k)
        groups = {g for g, _r in rules}
        sandboxish = {g for g in groups if g.endswith(".x-k8s.io")}
        self.assertEqual(sandboxish, self.sandbox_groups)

    def test_chart_test_expectations(self):
        """tests/chart's EXPECTED_RULES: the same kinds and groups."""
        text = read("tests", "chart", "test_chart.py")
        block = text[text.index("EXPECTED_RULES = {"):text.index("POOL_RULES")]
        pairs = set(re.findall(r'\("([^"]*)", "([^"]*)"\)', block))
        for k in self.v["targetKinds"]:
            self.assertIn((k["apiGroup"], k["resource"] + "/scale"), pairs, k)
        self.assertEqual({g for g, _r in pairs if g.endswith(".x-k8s.io")}, self.sandbox_groups)


if __name__ == "__main__":
    unittest.main()
