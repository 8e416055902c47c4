"""explain across restarts, namespaces and replicas (issue 18).

- The newest rejections are kept in the ConfigMap <lease>-rejections beside
  the Lease (scheduler/dispatch_recent.c) and read again when a dispatcher
  starts: a task rejected before a restart is still explained after it
  (before: "not known").
- /explain?namespace= (agentscaler explain -n) looks in that namespace only.
- tools/kubectl-agentscaler finds the leader from the Lease and asks it,
  whichever replica leads.  kube-sim serves no port-forward, so the test
  gives the plugin each pod's admin address (--address POD=HOST:PORT); the
  Lease lookup and the choice of pod are the real ones, through the real
  kubectl against kube-sim.
"""
import json
import os
import subprocess
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

NS = "default"
CM = "/api/v1/namespaces/%s/configmaps/agentscaler-rejections" % NS
PLUGIN = os.path.join(world.ROOT, "tools", "kubectl-agentscaler")


def quota():
    return {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentQuota",
            "metadata": {"name": "limits", "namespace": NS},
            "spec": {"maxSandboxes": 4, "onExceeded": "defer", "cascade": {"maxDepth": 2}}}


class ExplainTest(world.RedisKubeTestCase):
    KUBE_ARGS = ("--warm-bind-ms", "10")

    def setUp(self):
        super().setUp()
        self.cfg = {"pools": self.one_warm_dispatch_pool(), "quotas": [quota()]}

    def explain(self, daemon, tid, *flags):
        r = subprocess.run([daemon.binary, "explain", tid, "--admin-addr",
                            "127.0.0.1:%d" % daemon.admin_port] + list(flags),
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout

    def reject(self, tid):
        """A task whose parent is not live: rejected (cascade.unknownParent)."""
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": tid, "parent": "gone"}))

    def kept(self):
        code, cm = self.kube.api("GET", CM)
        if code != 200:
            return []
        return [r["task"] for r in json.loads(cm["data"]["rejections"])]

    def test_rejections_survive_a_restart(self):
        d = self.start_daemon(self.cfg, extra=("--instance", "one", "--leader-elect"))
        self.reject("orphan-1")
        wait_for(lambda: "rejected" in self.explain(d, "orphan-1")[1], 20, 0.1,
                 "orphan-1 rejected")
        wait_for(lambda: "orphan-1" in self.kept(), 20, 0.1, "orphan-1 kept in the ConfigMap")
        d.stop()
        d.cleanup()
        self.daemon = None
        d = self.start_daemon(self.cfg, extra=("--instance", "two", "--leader-elect"))
        wait_for(lambda: self.explain(d, "orphan-1")[0] == 0, 20, 0.1,
                 "orphan-1 explained after the restart")
        rc, out = self.explain(d, "orphan-1", "--json")
        o = json.loads(out)
        self.assertEqual((o["state"], o["reason"], o["namespace"]),
                         ("rejected", "cascade.unknownParent", NS))
        # New rejections go after the kept ones, and both are kept again.
        self.reject("orphan-2")
        wait_for(lambda: self.kept() == ["orphan-1", "orphan-2"], 20, 0.1,
                 "both kept, oldest first")

    def test_rejection_just_before_sigterm_is_kept(self):
        """A rejection less than a second old (SAVE_DELAY) when SIGTERM
        comes is written before the daemon exits, and before the Lease is
        released (scheduler/daemon.c daemon_drain), even when the write
        takes longer than the release (kube-sim's latency on ConfigMap
        patches).  Before: its write was sent beside the release and
        cancelled when the release answered first."""
        d = self.start_daemon(self.cfg, extra=("--instance", "one", "--leader-elect"))
        self.reject("orphan-a")
        wait_for(lambda: "orphan-a" in self.kept(), 20, 0.1, "orphan-a kept in the ConfigMap")
        code, _ = self.kube.adm("POST", "/latency", {"ms": 500, "method": "PATCH",
                                                     "path": "/configmaps/"})
        self.assertEqual(code, 200)
        self.reject("orphan-b")
        wait_for(lambda: "rejected" in self.explain(d, "orphan-b")[1], 20, 0.02,
                 "orphan-b rejected")
        rc = d.stop()
        logs = d.logs()
        d.cleanup()
        self.daemon = None
        self.assertEqual(rc, 0, logs[-3000:])
        self.assertEqual(self.kept(), ["orphan-a", "orphan-b"], logs[-3000:])

    def test_explain_namespace(self):
        d = self.start_daemon(self.cfg)
        self.reject("orphan-ns")
        wait_for(lambda: self.explain(d, "orphan-ns")[0] == 0, 20, 0.1, "orphan-ns rejected")
        self.assertEqual(self.explain(d, "orphan-ns", "-n", NS)[0], 0)
        rc, out = self.explain(d, "orphan-ns", "--namespace", "elsewhere")
        self.assertEqual(rc, 1, out)
        self.assertIn("not known in namespace elsewhere", out)


@unittest.skipUnless(world.Kubectl.available(), "kubectl is not installed")
class PluginTest(ExplainTest):
    """Two replicas elect on the Lease default/agentscaler; the plugin asks
    the holder, and follows the Lease when it changes hands."""

    def setUp(self):
        super().setUp()
        self.kc = world.Kubectl(self.kube)
        self.addCleanup(self.kc.cleanup)
        self.daemons = {}

    def tearDown(self):
        for d in self.daemons.values():
            rc = d.stop()
            d.cleanup()
            self.assertEqual(rc, 0, "daemon exit code (ASan reports fail it)")
        super().tearDown()

    def start(self, name):
        d = world.Daemon(self.cfg, self.kube, extra=(
            "--leader-elect", "--instance", name, "--lease-duration", "2",
            "--renew-deadline", "1.5", "--retry-period", "0.2"))
        self.daemons[name] = d
        wait_for(lambda: d.get("/healthz")[0] == 200 if d.proc.poll() is None
                 else self.fail(d.logs()[-3000:]), 30, 0.05, "/healthz of " + name)
        return d

    def leads(self, name):
        code, st = self.daemons[name].admin("/status")
        return code == 200 and st["leaderElection"].get("leader")

    def plugin(self, *args):
        addrs = []
        for name, d in self.daemons.items():
            addrs += ["--address", "%s=127.0.0.1:%d" % (name, d.admin_port)]
        r = subprocess.run([PLUGIN, "--server", self.kube.url, "--daemon-namespace", NS]
                           + addrs + list(args), capture_output=True, text=True,
                           env=self.kc.env, timeout=60)
        return r.returncode, r.stdout + r.stderr

    def test_plugin_asks_the_leader(self):
        self.start("a")
        wait_for(lambda: self.leads("a"), 30, 0.05, "a to lead")
        self.start("b")
        self.reject("orphan-p")
        wait_for(lambda: "orphan-p" in self.kept(), 20, 0.1, "orphan-p kept")
        rc, out = self.plugin("explain", "orphan-p", "-n", NS)
        self.assertEqual(rc, 0, out)
        self.assertIn("was rejected", out)
        rc, out = self.plugin("explain", "orphan-p", "-n", "elsewhere")
        self.assertEqual(rc, 1, out)
        rc, out = self.plugin("status")
        self.assertEqual(rc, 0, out)
        self.assertIn("pod a (leader)", out)
        self.assertIn("agents", out)
        self.assertIn("cascade.unknownParent", out)
        rc, out = self.plugin("top", "-n", NS)
        self.assertEqual(rc, 0, out)
        self.assertIn("dispatch", out)
        # a goes (SIGTERM releases the Lease); b leads, reads what a kept.
        self.daemons.pop("a").stop()
        wait_for(lambda: self.leads("b"), 30, 0.05, "b to lead")
        rc, out = self.plugin("status", "--json")
        self.assertEqual(rc, 0, out)
        self.assertTrue(json.loads(out)["leaderElection"]["leader"])
        wait_for(lambda: self.plugin("explain", "orphan-p")[0] == 0, 20, 0.2,
                 "b, the new leader, explains orphan-p")

    # The single-daemon tests run in ExplainTest only.
    test_rejections_survive_a_restart = None
    test_rejection_just_before_sigterm_is_kept = None
    test_explain_namespace = None


if __name__ == "__main__":
    unittest.main()
