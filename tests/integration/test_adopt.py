"""Adoption beside another autoscaler (issue 18; README "Adopting it beside
KEDA"): shadow mode per pool (spec.shadow) and for the whole daemon
(--shadow), the pause annotations, on kube-sim with a real redis-server.

Each test builds its own world on free loopback ports and tears it down by
PID.  Waits are bounded polls; "nothing was written" is checked after a
number of the pool's own evaluations (Daemon.evaluated), never a sleep.
"""
import json
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

NS = "default"
POOLS = "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentpools" % NS
CLAIMS = world.EXT_API % NS + "sandboxclaims"
FAST = dict(pollIntervalMs=100, cooldownSeconds=1, scaleDownStabilizationSeconds=0.5)


def cond(obj, ctype):
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


class AdoptWorld(world.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.kube = world.KubeSim("--replica-delay-ms", "50")
        self.addCleanup(self.kube.stop)

    def push(self, queue, n):
        self.redis.pipeline([("LPUSH", queue, json.dumps({"id": "t-%d" % i}))
                             for i in range(n)])

    def scale_writes(self, since, name):
        return [r for r in self.kube.requests(since)
                if r["method"] in ("PATCH", "PUT") and
                r["path"].endswith("/deployments/%s/scale" % name)]

    def next_seq(self):
        return self.kube.adm("GET", "/requests?since=0")[1]["next"]


@unittest.skipUnless(world.Kubectl.available(), "kubectl not installed")
class CrdAdoptTest(AdoptWorld):
    def setUp(self):
        super().setUp()
        self.kubectl = world.Kubectl(self.kube)
        self.addCleanup(self.kubectl.cleanup)
        self.kubectl.install_crds()

    def apply(self, obj):
        self.kubectl.run("apply", "--validate=false", "-f", "-", stdin=json.dumps(obj))

    def pool_obj(self, name):
        code, obj = self.kube.api("GET", POOLS + "/" + name)
        return obj if code == 200 else None

    def test_shadow_pool_decides_and_writes_nothing(self):
        """spec.shadow: the decision is in the status (condition Shadow,
        "would scale ... to 4") and in /metrics, the target is never
        written; shadow unset: the same pool scales."""
        self.kube.create_deployment("web", 1)
        d = self.start_daemon(None)
        p = world.pool("p1", self.redis.url, "q1", "web", maxReplicas=10, **FAST)
        p["spec"]["shadow"] = True
        seq = self.next_seq()
        self.apply(p)
        self.push("q1", 4)
        c = wait_for(lambda: (lambda c: c if c and "to 4" in c["message"] else None)(
            cond(self.pool_obj("p1"), "Shadow")), 30, what="Shadow: would scale to 4")
        self.assertEqual(c["status"], "True")
        self.assertEqual(c["message"], "would scale Deployment/web to 4 (now 1); "
                         "nothing is written")
        self.assertEqual(d.metric("agentscaler_pool_shadow_desired_replicas",
                                  namespace=NS, pool="p1", mode="scale"), 4)
        d.evaluated("p1", 10)
        self.assertEqual(self.kube.replicas("web"), 1)
        self.assertEqual(self.scale_writes(seq, "web"), [])
        self.assertIn("default/p1: shadow: would scale Deployment web from 1 to 4", d.logs())
        # Switch over: shadow off, the pool writes.
        self.kubectl.run("patch", "agentpool", "p1", "--type=merge",
                         "-p", json.dumps({"spec": {"shadow": False}}))
        wait_for(lambda: self.kube.replicas("web") == 4, 30, what="scaled to 4")
        wait_for(lambda: cond(self.pool_obj("p1"), "Shadow") is None, 30,
                 what="Shadow condition gone")
        self.assertIsNone(d.metric("agentscaler_pool_shadow_desired_replicas",
                                   namespace=NS, pool="p1", mode="scale"))

    def test_pause_annotations(self):
        """agentscaler.io/paused: nothing written, condition Paused;
        agentscaler.io/paused-replicas: held at N; removed: scales again."""
        self.kube.create_deployment("web", 0)
        d = self.start_daemon(None)
        self.apply(world.pool("p1", self.redis.url, "q1", "web", maxReplicas=10, **FAST))
        self.push("q1", 3)
        wait_for(lambda: self.kube.replicas("web") == 3, 30, what="3 replicas")
        self.kubectl.run("annotate", "agentpool", "p1", "agentscaler.io/paused=true")
        c = wait_for(lambda: cond(self.pool_obj("p1"), "Paused"), 30, what="Paused")
        self.assertEqual(c["message"], "agentscaler.io/paused: nothing is written")
        seq = self.next_seq()
        self.push("q1", 3)
        d.evaluated("p1", 10)
        self.assertEqual(self.kube.replicas("web"), 3)
        self.assertEqual(self.scale_writes(seq, "web"), [])
        # KEDA's paused-replicas: held at N.
        self.kubectl.run("annotate", "agentpool", "p1", "agentscaler.io/paused-replicas=2")
        wait_for(lambda: self.kube.replicas("web") == 2, 30, what="held at 2")
        d.evaluated("p1", 10)
        self.assertEqual(self.kube.replicas("web"), 2)
        # Unpaused: the backlog of 6 again.
        self.kubectl.run("annotate", "agentpool", "p1", "agentscaler.io/paused-",
                         "agentscaler.io/paused-replicas-")
        wait_for(lambda: self.kube.replicas("web") == 6, 30, what="6 replicas")
        wait_for(lambda: cond(self.pool_obj("p1"), "Paused") is None, 30,
                 what="Paused gone")


class GlobalShadowTest(AdoptWorld):
    def test_dispatch_pool_consumes_nothing(self):
        """--shadow on a dispatch pool: no message taken, no claim made;
        /status and /metrics say how many it would claim."""
        self.push("tasks", 5)
        p = world.pool_dispatch("p", self.redis.url, "tasks", "wp", spare_max=0,
                                pollIntervalMs=100)
        d = self.start_daemon({"pools": [p]}, extra=("--shadow", "--instance", "as-test"))
        wait_for(lambda: d.metric("agentscaler_pool_shadow_desired_replicas",
                                  namespace=NS, pool="p", mode="dispatch") == 5,
                 30, what="would claim 5")
        st = d.evaluated("p", 10)
        self.assertTrue(st["shadow"])
        self.assertEqual(st["wouldScaleTo"], 5)
        self.assertEqual(self.redis.cmd("LLEN", "tasks"), 5)
        self.assertEqual(self.redis.cmd("KEYS", "tasks:processing:*"), [])
        code, obj = self.kube.api("GET", CLAIMS)
        self.assertEqual(obj.get("items") or [], [])
        self.assertEqual(d.admin("/status")[1].get("dispatch") or [], [])
        self.assertIn("default/p: shadow: would claim 5 sandboxes (backlog 5); "
                      "nothing consumed", d.logs())


if __name__ == "__main__":
    unittest.main()
