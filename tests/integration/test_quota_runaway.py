"""AgentQuota against a runaway tree of sub-agents (issue 6): the example
agent spawns 4 children per task with no depth limit of its own, against
maxDepth 3, maxDescendantsPerRoot 16 and maxSandboxes 20.  Live sandboxes
are sampled from kube-sim's own state (not agentscaler's counters) all the
way through and never exceed 20; every over-limit task is deferred or
dead-lettered with its reason; the trees end.

Bounded: two roots, at most 2 x 85 admitted tasks, every wait has a limit.
"""
import json
import time
import subprocess
import threading
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

NS = "default"
SANDBOXES = "/apis/agents.x-k8s.io/v1beta1/namespaces/%s/sandboxes" % NS
CLAIMS = world.EXT_API % NS + "sandboxclaims"


def quota(**spec):
    return {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentQuota",
            "metadata": {"name": "limits", "namespace": NS}, "spec": spec}


class QuotaWorld(world.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.kube = world.KubeSim("--cold-start-ms", "300", "--warm-bind-ms", "10")
        self.addCleanup(self.kube.stop)

    def sample(self, stop, peaks):
        while not stop.is_set():
            code, obj = self.kube.api("GET", SANDBOXES)
            if code == 200:
                peaks.append(len(obj.get("items") or []))
            stop.wait(0.03)

    def start(self, cfg, instance="q"):
        self.start_daemon(cfg, extra=("--instance", instance))

    def explain(self, tid):
        return subprocess.run([self.daemon.binary, "explain", tid, "--admin-addr",
                               "127.0.0.1:%d" % self.daemon.admin_port],
                              capture_output=True, text=True, timeout=30)


class RunawayTest(QuotaWorld):
    def test_runaway_tree_is_bounded_and_ends(self):
        world.sandbox_pool(self.kube, "wp", replicas=2)
        self.runtime = world.AgentRuntime(self.kube, self.redis.url, work_ms=300, children=4,
                                          publish_to="redis-list:tasks",
                                          extra=("--spawn-at", "start"))
        pool = world.pool_dispatch("p", self.redis.url, "tasks", "wp", claim_ttl_seconds=600,
                                   spare_min=0, spare_max=4, pollIntervalMs=200,
                                   cooldownSeconds=600)
        cfg = {"pools": [pool], "quotas": [quota(
            maxSandboxes=20, onExceeded="defer",
            cascade={"maxDepth": 3, "maxDescendantsPerRoot": 16})]}
        self.start(cfg, "runaway")
        stop = threading.Event()
        peaks = []
        sampler = threading.Thread(target=self.sample, args=(stop, peaks), daemon=True)
        sampler.start()
        self.addCleanup(stop.set)
        self.redis.pipeline([("LPUSH", "tasks", json.dumps({"id": r, "payload": {}}))
                             for r in ("alpha", "beta")])
        # Each tree admits depths 0..3: 1 + 4 + 16 + 64 = 85 tasks.
        want = 2 * 85

        def ended():
            st = self.daemon.admin("/status")[1]
            ns = st["namespaces"][0]
            return (len(set(self.runtime.finished_ids())) >= want and ns["liveTasks"] == 0
                    and ns["deferred"] == 0 and self.redis.cmd("LLEN", "tasks") == 0)
        try:
            wait_for(ended, 240, 0.5, "the trees to end")
        finally:
            stop.set()
            sampler.join(5)
        got = self.runtime.received_ids()
        self.assertEqual(len(got), want, "tasks at depth <= 3, each once")
        self.assertEqual(len(set(got)), want)
        self.assertTrue(all(t.count(".") <= 3 for t in got))
        # kube-sim's own count of Sandboxes never went over the quota.
        self.assertTrue(peaks)
        self.assertLessEqual(max(peaks), 20, "live sandboxes (kube-sim) over maxSandboxes")
        # Depth 4 was rejected with its reason: 2 x 256 children of depth-3 tasks.
        recs = [json.loads(r) for r in self.redis.cmd("LRANGE", "tasks.rejected", 0, -1)]
        self.assertEqual(len(recs), 2 * 256)
        self.assertEqual({r["reason"] for r in recs}, {"cascade.maxDepth"})
        self.assertTrue(all(r["taskId"].count(".") == 4 for r in recs))
        # The live limits deferred rather than dropped.
        deferred = self.daemon.metric_sum("agentscaler_quota_decisions_total",
                                          namespace="default", verdict="defer") or 0
        self.assertGreater(deferred, 0)
        # explain says why a depth-4 task was rejected (the newest is first).
        out = self.explain(recs[0]["taskId"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("cascade.maxDepth", out.stdout)
        wait_for(lambda: not self.kube.api("GET", CLAIMS)[1].get("items"), 30, 0.2,
                 "claims released")


if __name__ == "__main__":
    unittest.main()


class QuotaLimitsTest(QuotaWorld):
    def test_defer_then_explain_then_admit(self):
        world.sandbox_pool(self.kube, "wp", replicas=1)
        pool = world.pool_dispatch("p", self.redis.url, "tasks", "wp", spare_max=0,
                                   pollIntervalMs=200)
        self.start({"pools": [pool], "quotas": [quota(maxSandboxes=1, onExceeded="defer")]})
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "first"}))
        wait_for(lambda: self.kube.api("GET", CLAIMS)[1].get("items"), 20, what="first claim")
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "second"}))
        out = wait_for(lambda: (lambda o: o if o.returncode == 0 and "waits" in o.stdout else None)(
            self.explain("second")), 20, 0.2, "second deferred")
        self.assertIn("quota.maxSandboxes", out.stdout)
        self.assertEqual(self.explain("never-seen").returncode, 1)
        st = self.daemon.admin("/status")[1]
        self.assertEqual(st["namespaces"][0]["deferred"], 1)
        # The test's warm pool starts with a spare, which counts until the
        # PATCH to spare_max=0 lands: 2 for a moment, then the one task.
        wait_for(lambda: self.daemon.admin("/status")[1]["namespaces"][0]["used"]["sandboxes"]
                 == 1, 20, 0.1, "only the task's sandbox counted")
        # The first one's claim goes: the second is admitted.
        name = self.kube.api("GET", CLAIMS)[1]["items"][0]["metadata"]["name"]
        self.kube.api("DELETE", CLAIMS + "/" + name)
        wait_for(lambda: [c for c in self.kube.api("GET", CLAIMS)[1].get("items") or []
                          if c["metadata"]["annotations"]["agentscaler.io/task-id"] == "second"],
                 20, 0.1, "second admitted")

    def test_reject_mode_dead_letters_live_limits(self):
        world.sandbox_pool(self.kube, "wp", replicas=1)
        pool = world.pool_dispatch("p", self.redis.url, "tasks", "wp", spare_max=0,
                                   pollIntervalMs=200)
        self.start({"pools": [pool], "quotas": [quota(maxSandboxes=1, onExceeded="reject")]})
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "first"}))
        wait_for(lambda: self.kube.api("GET", CLAIMS)[1].get("items"), 20, what="first claim")
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "second"}))
        recs = wait_for(lambda: self.redis.cmd("LRANGE", "tasks.rejected", 0, -1) or None, 20,
                        what="dead letter")
        rec = json.loads(recs[0])
        self.assertEqual((rec["taskId"], rec["reason"]), ("second", "quota.maxSandboxes"))
        self.assertIn("quota.maxSandboxes", self.explain("second").stdout)

    def spare_world(self, mode):
        # The pool wants one warm spare at all times (min = max = 1) and the
        # namespace allows one sandbox: the spare holds the only slot.
        world.sandbox_pool(self.kube, "wp", replicas=1)
        pool = world.pool_dispatch("p", self.redis.url, "tasks", "wp", spare_min=1,
                                   spare_max=1, pollIntervalMs=200)
        self.start({"pools": [pool], "quotas": [quota(maxSandboxes=1, onExceeded=mode)]})
        wait_for(lambda: self.daemon.metric_sum(
            "agentscaler_quota", namespace="default", resource="sandboxes", type="used") == 1,
            20, 0.1, "the spare counted")

    def test_warm_spares_give_way_to_a_task_in_reject_mode(self):
        # Before: the idle spare filled maxSandboxes and the task was
        # dead-lettered with quota.maxSandboxes.
        self.spare_world("reject")
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "t1"}))
        wait_for(lambda: self.daemon.metrics().get(
            'agentscaler_dispatch_tasks_handed_off_total{namespace="default",pool="p"}') == 1,
            30, 0.1, "t1 handed off")
        self.assertEqual(self.redis.cmd("LRANGE", "tasks.rejected", 0, -1), [])
        wp = self.kube.api("GET", world.EXT_API % "default" + "sandboxwarmpools/wp")[1]
        self.assertEqual(wp["spec"].get("replicas", 0), 0)
        # The slot is the task's now: a second task is rejected.
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "t2"}))
        recs = wait_for(lambda: self.redis.cmd("LRANGE", "tasks.rejected", 0, -1) or None, 20,
                        what="t2 dead-lettered")
        self.assertEqual(json.loads(recs[0])["taskId"], "t2")

    def test_warm_spares_give_way_to_a_task_in_defer_mode(self):
        # Before: the task waited as long as the spare sat idle.
        self.spare_world("defer")
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "t1"}))
        wait_for(lambda: self.daemon.metrics().get(
            'agentscaler_dispatch_tasks_handed_off_total{namespace="default",pool="p"}') == 1,
            30, 0.1, "t1 handed off")

    def scale_world(self):
        self.kube.create_deployment("a")
        self.kube.create_deployment("b")
        pools = [world.pool(n, self.redis.url, "q-" + n, n, pollIntervalMs=100, maxReplicas=50)
                 for n in ("a", "b")]
        return {"pools": pools, "quotas": [quota(maxSandboxes=6)]}

    def sample_until(self, seen, cond, what, settle=15):
        """Samples both pools' replicas until cond holds, then on until each
        pool has evaluated settle more times (polls of 100 ms: past the
        stabilization window), so that a later overshoot is seen too."""
        def probe():
            seen.append((self.kube.replicas("a"), self.kube.replicas("b")))
            return cond(seen[-1])
        wait_for(probe, 20, 0.05, what)
        start = {n: self.daemon.polls(n) for n in ("a", "b")}
        wait_for(lambda: probe() is not None and
                 all(self.daemon.polls(n) >= start[n] + settle for n in start),
                 30, 0.05, "%d more evaluations of each pool after %s" % (settle, what))

    def test_scale_pools_with_backlog_at_start_get_fair_shares_at_once(self):
        # Both queues are full before the daemon starts.  The pool that
        # reads first keeps the other's share while the other has not read:
        # no pool is ever above 3, so no pod is started only to be killed.
        self.redis.pipeline([("LPUSH", "q-a", "x")] * 10 + [("LPUSH", "q-b", "x")] * 10)
        self.start(self.scale_world())
        seen = []
        self.sample_until(seen, lambda s: s == (3, 3), "3 + 3")
        self.assertEqual([s for s in seen if s[0] > 3 or s[1] > 3], [])

    def test_scale_pools_share_the_namespace_cap(self):
        # a takes the idle budget, then b's demand pulls a back to its fair
        # share; the sum is never above 6 in any sample.
        self.start(self.scale_world())
        seen = []
        self.redis.pipeline([("LPUSH", "q-a", "x")] * 10)
        self.sample_until(seen, lambda s: s == (6, 0), "a at the cap")
        self.redis.pipeline([("LPUSH", "q-b", "x")] * 10)
        self.sample_until(seen, lambda s: s == (3, 3), "fair shares")
        self.assertEqual(seen[-1], (3, 3))
        self.assertEqual([s for s in seen if sum(s) > 6], [])


class QuotaRestartTest(QuotaWorld):
    def test_restart_rebuilds_usage_before_admitting(self):
        world.sandbox_pool(self.kube, "wp", replicas=2)
        pool = world.pool_dispatch("p", self.redis.url, "tasks", "wp", spare_max=0,
                                   pollIntervalMs=200)
        cfg = {"pools": [pool], "quotas": [quota(maxSandboxes=2, onExceeded="defer",
                                                 resources={"cpu": "1"})]}
        self.start(cfg)
        self.redis.pipeline([("LPUSH", "tasks", json.dumps({"id": t, "resources": {"cpu": "500m"}}))
                             for t in ("one", "two")])
        wait_for(lambda: len(self.kube.api("GET", CLAIMS)[1].get("items") or []) == 2, 20,
                 what="two claims")
        wait_for(lambda: self.daemon.metrics().get(
            'agentscaler_dispatch_tasks_handed_off_total{namespace="default",pool="p"}') == 2,
            20, what="two hand-offs")
        self.daemon.proc.kill()
        self.daemon.proc.wait()
        self.daemon.log.close()
        self.daemon.cleanup()
        self.start(cfg)
        # Usage comes back from the claims (count and cpu) before anything is admitted.
        st = self.daemon.admin("/status")[1]["namespaces"][0]
        self.assertEqual(st["used"]["sandboxes"], 2)
        self.assertEqual(st["used"]["cpu"], 1.0)
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "three"}))
        out = wait_for(lambda: (lambda o: o if "waits" in o.stdout else None)(
            self.explain("three")), 20, 0.2, "third deferred")
        self.assertIn("quota.maxSandboxes", out.stdout)
        self.assertEqual(len(self.kube.api("GET", CLAIMS)[1].get("items")), 2)
