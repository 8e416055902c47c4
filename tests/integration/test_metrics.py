"""/metrics against the conventions, on live daemons: `promtool check
metrics` (Debian's prometheus package, extracted by tools/deps.sh into
build/tools/promtool) on a scale-mode and a dispatch-mode daemon, every
series on a family of the registry (`agentscaler --print-metrics`) with the
registry's label keys, and the README's metrics tables equal to that
output, so the documentation cannot drift from the code.

Real redis-server + kube-sim (with its agent-sandbox controller for the
dispatch world).  Waits are bounded polls; nothing asserts on speed.
"""
import json
import os
import re
import subprocess
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

PROMTOOL = os.path.join(world.ROOT, "build", "tools", "promtool")
BINARY = os.environ.get("AGENTSCALER_BIN",
                        os.path.join(world.ROOT, "build/release/agentscaler"))
BEGIN = "<!-- metrics: agentscaler --print-metrics -->"
END = "<!-- /metrics -->"
SUFFIXES = ("_bucket", "_sum", "_count")


def print_metrics():
    return subprocess.run([BINARY, "--print-metrics"], capture_output=True, check=True,
                          text=True, timeout=60).stdout


def registry():
    """{family: (type, [label keys])} from --print-metrics."""
    out = {}
    for line in print_metrics().splitlines():
        m = re.match(r"^\| `([a-z_:]+)` \| (counter|gauge|histogram) \| ([^|]*) \|", line)
        if m:
            keys = [k.strip() for k in m.group(3).split(",") if k.strip()]
            out[m.group(1)] = (m.group(2), keys)
    return out


def labels_of(series):
    return re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"', series.partition("{")[2])


class Table(unittest.TestCase):
    def test_readme_table_is_the_registry(self):
        with open(os.path.join(world.ROOT, "README.md")) as f:
            readme = f.read()
        self.assertIn(BEGIN, readme)
        got = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")
        self.assertEqual(got, print_metrics().strip("\n"),
                         "README.md's metrics tables differ from `agentscaler --print-metrics`: "
                         "paste its output between the markers")

    def test_every_label_documented_and_names_conventional(self):
        out = print_metrics()
        labels = set(re.findall(r"^\| `([a-z_]+)` \| [^|]*\|$", out.split("| label |")[1], re.M))
        for name, (typ, keys) in registry().items():
            self.assertTrue(set(keys) <= labels, (name, set(keys) - labels))
            self.assertRegex(name, r"^(agentscaler|process)_[a-z0-9_]+$")
            self.assertEqual(name.endswith("_total"), typ == "counter", name)
            if typ == "histogram":
                self.assertTrue(name.endswith("_seconds"), name)


class Live(world.DaemonTestCase):
    """Each world's /metrics through promtool and against the registry."""

    @classmethod
    def setUpClass(cls):
        if not os.access(PROMTOOL, os.X_OK):
            raise AssertionError("no build/tools/promtool: run `make promtool`")
        cls.reg = registry()

    def check(self, text, want):
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, "promtool check metrics:\n%s%s" % (r.stdout, r.stderr))
        seen = set()
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            series = line.rpartition(" ")[0]
            name = series.partition("{")[0]
            fam = name
            if fam not in self.reg:
                for suf in SUFFIXES:
                    if name.endswith(suf) and name[:-len(suf)] in self.reg:
                        fam = name[:-len(suf)]
            self.assertIn(fam, self.reg, "a series of no registered family: " + line)
            typ, keys = self.reg[fam]
            got = labels_of(series)
            if typ == "histogram" and name.endswith("_bucket"):
                self.assertEqual(got[-1], "le", line)
                got = got[:-1]
            self.assertEqual(got, keys, line)
            seen.add(fam)
        self.assertTrue(want <= seen, want - seen)
        self.assertNotIn("off their family", self.daemon.logs())

    def test_scale_mode(self):
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.kube = world.KubeSim("--replica-delay-ms", "50")
        self.addCleanup(self.kube.stop)
        self.kube.create_deployment("agents")
        self.start_daemon({"pools": [world.pool("p", self.redis.url, "tasks", "agents",
                                                tasksPerReplica=1, maxReplicas=3,
                                                pollIntervalMs=100)]})
        self.redis.pipeline([("LPUSH", "tasks", json.dumps({"id": "t-%d" % i}))
                             for i in range(2)])
        wait_for(lambda: self.kube.replicas("agents") == 2, 30, what="scaled to 2")
        wait_for(lambda: (self.daemon.metric_sum(
            "agentscaler_pool_scale_up_reaction_seconds_count") or 0) >= 1, 30,
            what="the scale-up's reaction observed")
        text = self.daemon.get("/metrics")[1]
        self.check(text, {"process_start_time_seconds", "process_cpu_seconds_total",
                          "process_open_fds", "agentscaler_pool_info",
                          "agentscaler_pool_source_tasks", "agentscaler_source_errors_total",
                          "agentscaler_source_read_duration_seconds",
                          "agentscaler_kube_request_duration_seconds",
                          "agentscaler_kube_rate_limiter_wait_seconds",
                          "agentscaler_event_loop_lag_seconds", "agentscaler_leader"})
        # Pre-initialised: every reason of source errors is there at 0.
        for r in ("auth", "connection", "not_found", "other", "protocol", "timeout"):
            self.assertIn('agentscaler_source_errors_total{namespace="default",pool="p",'
                          'reason="%s"} 0' % r, text)
        self.assertIn('agentscaler_pool_info{namespace="default",pool="p",mode="scale",'
                      'source_type="redis-list",target_kind="Deployment",target_name="agents"} 1',
                      text)
        self.assertGreaterEqual(self.daemon.metric_sum(
            "agentscaler_kube_request_duration_seconds_count", client="main", verb="PATCH"), 1)

    def test_dispatch_mode(self):
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.kube = world.KubeSim("--cold-start-ms", "300", "--warm-bind-ms", "10")
        self.addCleanup(self.kube.stop)
        world.sandbox_pool(self.kube, "wp", replicas=2)
        self.runtime = world.AgentRuntime(self.kube, self.redis.url, work_ms=50)
        pool = world.pool_dispatch("p", self.redis.url, "tasks", "wp", claim_ttl_seconds=600,
                                   spare_min=0, spare_max=4, pollIntervalMs=200,
                                   cooldownSeconds=60)
        quota = {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentQuota",
                 "metadata": {"name": "limits", "namespace": "default"},
                 "spec": {"maxSandboxes": 10}}
        self.start_daemon({"pools": [pool], "quotas": [quota]}, extra=("--instance", "as-m"))
        self.redis.pipeline([("LPUSH", "tasks", json.dumps({"id": "t-%d" % i}))
                             for i in range(3)] +
                            [("LPUSH", "tasks", "not json")])
        self.runtime.wait_finished(3, timeout=60)
        wait_for(lambda: self.daemon.metric_sum("agentscaler_dispatch_dead_letters_total",
                                                reason="task.notJson") == 1, 30,
                 what="the bad message dead-lettered")
        text = self.daemon.get("/metrics")[1]
        self.check(text, {"agentscaler_dispatch_tasks", "agentscaler_dispatch_claims_total",
                          "agentscaler_dispatch_handoff_seconds", "agentscaler_quota",
                          "agentscaler_quota_sandboxes", "agentscaler_quota_decisions_total",
                          "agentscaler_dispatch_dead_letters_total", "agentscaler_pool_info"})
        self.assertIn('agentscaler_quota{namespace="default",quota="limits",'
                      'resource="sandboxes",type="hard"} 10', text)
        self.assertEqual(self.daemon.metric_sum("agentscaler_quota_decisions_total",
                                                verdict="admit", reason="none"), 3)
        # One series per claim outcome, each pair there from the start.
        for launch, outcome in (("warm", "ready"), ("cold", "ready"), ("warm", "failed"),
                                ("cold", "failed"), ("unknown", "failed")):
            self.assertIsNotNone(self.daemon.metric_sum("agentscaler_dispatch_claims_total",
                                                        launch=launch, outcome=outcome))
        self.assertEqual(self.daemon.metric_sum("agentscaler_dispatch_claims_total",
                                                outcome="ready"), 3)


if __name__ == "__main__":
    unittest.main()
