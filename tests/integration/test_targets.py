"""Scale targets from watches, not GETs (issue 15): real redis-server,
kube-sim and the daemon.  The pools learn their Deployments' replicas from
list + watch (scheduler/targets.c); kube-sim's request log shows that no
/scale is ever read, while writes stay PATCHes of /scale.

Each test builds its own world on free loopback ports and tears it down by
PID.  Waits are bounded polls; nothing asserts on speed.
"""
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

FAST = dict(pollIntervalMs=100, cooldownSeconds=1, scaleDownStabilizationSeconds=0.5)
DEPLOYS = "/apis/apps/v1/namespaces/%s/deployments"


def scale_gets(reqs):
    return [r for r in reqs if r["method"] == "GET" and r["path"].endswith("/scale")]


def lists(reqs, path):
    """LISTs (not watches) of the collection path."""
    return [r for r in reqs if r["method"] == "GET" and r["path"] == path and
            "watch=" not in (r.get("query") or "")]


class TargetsTest(world.RedisKubeTestCase):
    def m(self, name, **labels):
        return self.daemon.metric(name, **labels)

    def scale_by_hand(self, name, n, ns="default"):
        """What `kubectl scale` sends: a merge patch of /scale."""
        code, obj = self.kube.api("PATCH", DEPLOYS % ns + "/%s/scale" % name,
                                  {"spec": {"replicas": n}}, "application/merge-patch+json")
        self.assertEqual(code, 200, obj)

    def test_scaled_by_someone_else(self):
        # (a) The pool holds 2 (backlog 2); someone scales to 6.  The pool
        # sees 6 through its watch and acts on it: back to its need, 2
        # ("scaled ... from 6 to 2": the replicas it wrote over were the 6
        # it was told of).  Had it not seen the 6 it would believe 2 still
        # and never write again.
        self.kube.create_deployment("agents")
        self.start_daemon({"pools": [world.pool("p", self.redis.url, "q", "agents", **FAST)]})
        self.push("q", 2)
        self.replicas_become("agents", 2)
        self.scale_by_hand("agents", 6)
        wait_for(lambda: "from 6 to 2" in self.daemon.logs(), 30, 0.05,
                 "the pool to scale 6 back to 2 (logs: %s)" % self.daemon.logs()[-2000:])
        self.replicas_become("agents", 2)
        reqs = self.kube.requests()
        self.assertEqual(scale_gets(reqs), [])
        patches = [r for r in reqs if r["method"] == "PATCH" and r["path"].endswith("/agents/scale")]
        self.assertGreaterEqual(len(patches), 3)     # 0->2, ours; 2->6, theirs; 6->2, ours
        self.assertEqual(len(lists(reqs, DEPLOYS % "default")), 1)

    def test_deleted_and_recreated(self):
        # (b) The target goes: the pool says "not found" (log, kube error
        # metric, /readyz body), holds and writes nothing; made again at
        # 0 replicas, the pool scales it back to its need.
        self.kube.create_deployment("agents")
        self.start_daemon({"pools": [world.pool("p", self.redis.url, "q", "agents", **FAST)]})
        self.push("q", 3)
        self.replicas_become("agents", 3)
        code, obj = self.kube.api("DELETE", DEPLOYS % "default" + "/agents")
        self.assertEqual(code, 200, obj)
        wait_for(lambda: 'deployments.apps \\"agents\\" not found' in self.daemon.logs(), 15,
                 what="a not-found log line")
        wait_for(lambda: (self.m("agentscaler_pool_kube_errors_total", namespace="default",
                                 pool="p") or 0) > 0, 10, what="the kube error metric")
        code, body = self.daemon.get("/readyz")
        self.assertEqual(code, 200, body)              # the pool's trouble, not the process's
        self.assertIn("default/p: target not read yet", body)
        self.kube.create_deployment("agents")          # 0 replicas
        self.replicas_become("agents", 3, timeout=30)
        wait_for(lambda: "reachable again" in self.daemon.logs(), 10, what="reachable again")
        reqs = self.kube.requests()
        self.assertEqual(scale_gets(reqs), [])
        self.assertEqual([r for r in reqs if r["method"] == "PATCH" and r.get("code") == 404], [],
                         "nothing written while the target was gone")

    def test_ready_without_a_get_per_pool(self):
        # (c) 40 pools over 4 namespaces: ready with 4 LISTs (one watch per
        # namespace) and no GET of any /scale; every pool knows its target.
        pools = []
        for k in range(4):
            ns = "team-%d" % k
            code, obj = self.kube.api("POST", "/api/v1/namespaces",
                                      {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": ns}})
            self.assertEqual(code, 201, obj)
            for j in range(10):
                name = "agents-%d" % j
                self.kube.create_deployment(name, replicas=j % 3, ns=ns)
                p = world.pool(name, self.redis.url, "q-%d-%d" % (k, j), name, **FAST)
                p["metadata"]["namespace"] = ns
                pools.append(p)
        self.start_daemon({"pools": pools})
        reqs = self.kube.requests()
        self.assertEqual(scale_gets(reqs), [])
        for k in range(4):
            self.assertEqual(len(lists(reqs, DEPLOYS % ("team-%d" % k))), 1)
        # (start_daemon waited for /readyz and every pool started: its
        # source read and its target known.)
        # And they act: one pool's backlog scales its Deployment.
        self.push("q-3-4", 4)
        self.replicas_become("agents-4", 4, ns="team-3")


if __name__ == "__main__":
    unittest.main()
