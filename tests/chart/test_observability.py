"""The chart's observability parts (metrics.grafanaDashboard,
metrics.prometheusRule), offline: the alert rules through `promtool check
rules` and `promtool test rules` (tests/chart/alerts_test.yaml: each alert
fires on its series and not on a healthy neighbour); every metric the
rules and the dashboard's queries name is one the daemon writes (its
registry: `agentscaler --print-metrics`); each alert has its runbook in the
README; the rendered ConfigMap and PrometheusRule carry the files as they
are.  promtool comes from tools/deps.sh (build/tools/promtool).
"""
import json
import os
import re
import subprocess
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "charts", "agentscaler")
HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(CHART, "files", "prometheus-rules.yaml")
DASHBOARD = os.path.join(CHART, "files", "grafana-dashboard.json")
PROMTOOL = os.path.join(ROOT, "build", "tools", "promtool")
BINARY = os.environ.get("AGENTSCALER_BIN", os.path.join(ROOT, "build/release/agentscaler"))

import chart  # noqa: E402


def registry():
    out = subprocess.run([BINARY, "--print-metrics"], capture_output=True, check=True,
                         text=True, timeout=60).stdout
    return dict(re.findall(r"^\| `([a-z_:]+)` \| (counter|gauge|histogram) \|", out, re.M))


def metric_names(expr):
    """The metric names a PromQL expression reads (the daemon's families,
    with a histogram's _bucket/_sum/_count)."""
    return set(re.findall(r"\b((?:agentscaler|process)_[a-z0-9_]+)", expr))


def promtool(*args, cwd=ROOT):
    return subprocess.run([PROMTOOL] + list(args), capture_output=True, text=True,
                          timeout=120, cwd=cwd)


class Rules(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(PROMTOOL, os.X_OK):
            raise AssertionError("no build/tools/promtool: run `make promtool`")
        cls.reg = registry()
        cls.rules = chart.load_yaml(RULES)

    def known(self, name):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        return name in self.reg or (base in self.reg and self.reg[base] == "histogram")

    def test_promtool_check_rules(self):
        r = promtool("check", "rules", RULES)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_promtool_test_rules(self):
        r = promtool("test", "rules", "alerts_test.yaml", cwd=HERE)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)

    def test_rules_read_only_registered_metrics(self):
        for g in self.rules["groups"]:
            for rule in g["rules"]:
                for name in metric_names(rule["expr"]):
                    self.assertTrue(self.known(name), (rule["alert"], name))

    def test_every_alert_tested_and_has_a_runbook(self):
        with open(os.path.join(HERE, "alerts_test.yaml")) as f:
            tests = f.read()
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        for g in self.rules["groups"]:
            for rule in g["rules"]:
                name = rule["alert"]
                self.assertIn("alertname: %s\n" % name, tests)
                self.assertIn("#### %s\n" % name, readme, "README runbook of " + name)
                self.assertEqual(rule["annotations"]["runbook"],
                                 "README.md#" + name.lower())

    def test_dashboard_reads_only_registered_metrics(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
        self.assertGreaterEqual(len(dash["panels"]), 8)
        seen = set()
        for e in exprs:
            for name in metric_names(e):
                self.assertTrue(self.known(name), (e, name))
                seen.add(re.sub(r"_(bucket|sum|count)$", "", name))
        # The panels the issue asks for read these.
        for want in ("agentscaler_pool_scale_up_reaction_seconds",
                     "agentscaler_dispatch_handoff_seconds",
                     "agentscaler_pool_source_tasks", "agentscaler_pool_status_replicas",
                     "agentscaler_dispatch_claims_total",
                     "agentscaler_dispatch_claim_ready_seconds", "agentscaler_quota",
                     "agentscaler_quota_decisions_total",
                     "agentscaler_dispatch_dead_letters_total",
                     "agentscaler_kube_rate_limiter_wait_seconds", "agentscaler_leader"):
            self.assertIn(want, seen)


class Rendered(unittest.TestCase):
    """The ConfigMap and the PrometheusRule carry the files unchanged."""

    def test_rendered(self):
        vals = os.path.join(HERE, "values-all.yaml")
        _t, objs = chart.template([vals], "prod", "agents-system", ["monitoring.coreos.com/v1"])
        cm = [o for o in objs if o["kind"] == "ConfigMap" and
              o["metadata"]["name"] == "prod-scaler-dashboard"][0]
        self.assertEqual(cm["metadata"]["labels"]["dashboards"], "agentscaler")
        self.assertEqual(cm["metadata"]["annotations"], {"grafana_folder": "Agents"})
        with open(DASHBOARD) as f:
            self.assertEqual(json.loads(cm["data"]["agentscaler.json"]), json.load(f))
        pr = [o for o in objs if o["kind"] == "PrometheusRule"][0]
        self.assertEqual(pr["spec"], chart.load_yaml(RULES))
        self.assertEqual(pr["metadata"]["labels"]["release"], "prometheus")

    def test_defaults_have_neither(self):
        _t, objs = chart.template([], "prod", "agents-system", ["monitoring.coreos.com/v1"])
        kinds = [(o["kind"], o["metadata"]["name"]) for o in objs]
        self.assertNotIn("PrometheusRule", [k for k, _ in kinds])
        self.assertFalse([n for k, n in kinds if n.endswith("-dashboard")])

    def test_sidecar_default_label(self):
        """The grafana chart's sidecar default: grafana_dashboard "1"."""
        _t, objs = chart.template([], "prod", "agents-system",
                                  sets=["metrics.grafanaDashboard.enabled=true"])
        cm = [o for o in objs if o["kind"] == "ConfigMap" and
              o["metadata"]["name"].endswith("-dashboard")][0]
        self.assertEqual(cm["metadata"]["labels"]["grafana_dashboard"], "1")


if __name__ == "__main__":
    unittest.main()
