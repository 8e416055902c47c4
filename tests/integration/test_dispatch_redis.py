"""Dispatch mode end to end on Redis: real redis-server + kube-sim (with its
agent-sandbox controller) + the daemon + the example agent runtime.

Each test builds its own world on free loopback ports and tears it down by
PID.  Waits are bounded polls; nothing asserts on speed.
"""
import calendar
import json
import time
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

NS = "default"
CLAIMS = world.EXT_API % NS + "sandboxclaims"


def task(tid, parent=None, **extra):
    t = {"id": tid, "payload": {"n": tid}}
    if parent:
        t["parent"] = parent
    t.update(extra)
    return json.dumps(t)


class DispatchWorld(world.DaemonTestCase):
    kube_args = ("--cold-start-ms", "300", "--warm-bind-ms", "10")

    def setUp(self):
        super().setUp()
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.kube = world.KubeSim(*self.kube_args)
        self.addCleanup(self.kube.stop)

    def start(self, pools, extra=("--instance", "as-test")):
        self.start_daemon({"pools": pools}, extra=extra)

    def metric(self, name, **labels):
        labels = dict({"namespace": NS, "pool": "p"}, **labels)
        return self.daemon.metric_sum(name, **labels) or 0

    def claims(self):
        code, obj = self.kube.api("GET", CLAIMS)
        self.assertEqual(code, 200)
        return obj.get("items") or []

    def rejected(self, queue="tasks"):
        return [json.loads(r) for r in self.redis.cmd("LRANGE", queue + ".rejected", 0, -1)]

    def pool(self, sandbox=None, **kw):
        args = dict(claim_ttl_seconds=600, spare_min=0, spare_max=10, pollIntervalMs=200,
                    cooldownSeconds=60)
        args.update(kw)
        p = world.pool_dispatch("p", self.redis.url, "tasks", "wp", **args)
        p["spec"]["sandbox"].update(sandbox or {})
        return p


class DispatchTest(DispatchWorld):
    def test_warm_claims_hand_off_and_complete(self):
        world.sandbox_pool(self.kube, "wp", replicas=4)
        self.runtime = world.AgentRuntime(self.kube, self.redis.url, work_ms=100)
        self.start([self.pool(spare_min=2)])
        self.redis.pipeline([("LPUSH", "tasks", task("t-%d" % i)) for i in range(8)])
        self.runtime.wait_finished(8, timeout=60)
        got = self.runtime.received_ids()
        self.assertEqual(sorted(got), sorted("t-%d" % i for i in range(8)), "each task exactly once")
        self.assertEqual(self.runtime.ids("duplicate"), [])
        # Finished claims are deleted; nothing is left waiting.
        wait_for(lambda: not self.claims(), 30, what="claims deleted after Finished")
        wait_for(lambda: self.metric("agentscaler_dispatch_tasks_completed_total") == 8, 20,
                 what="8 completed")
        self.assertEqual(self.metric("agentscaler_dispatch_tasks_handed_off_total"), 8)
        warm = self.metric("agentscaler_dispatch_claims_total", launch="warm", outcome="ready")
        cold = self.metric("agentscaler_dispatch_claims_total", launch="cold", outcome="ready")
        self.assertEqual(warm + cold, 8)
        self.assertGreaterEqual(warm, 4, "the 4 warm members are claimed warm")
        self.assertEqual(self.redis.cmd("LLEN", "tasks"), 0)
        self.assertEqual(self.redis.cmd("LLEN", "tasks:processing:as-test"), 0, "all acked")
        self.assertEqual(self.rejected(), [])
        # Hand-off latency and claim latency are recorded.
        self.assertEqual(self.metric("agentscaler_dispatch_handoff_seconds_count"), 8)
        self.assertEqual(self.metric("agentscaler_dispatch_claim_ready_seconds_count", launch="warm")
                         + self.metric("agentscaler_dispatch_claim_ready_seconds_count",
                                       launch="cold"), 8)

    def test_claim_carries_labels_annotations_and_ttl(self):
        world.sandbox_pool(self.kube, "wp", replicas=1)
        self.start([self.pool(claim_ttl_seconds=900)])
        tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        self.redis.cmd("LPUSH", "tasks", task("root-1", traceparent=tp))
        c = wait_for(lambda: self.claims() or None, 20, what="a claim")[0]
        md = c["metadata"]
        self.assertLessEqual(len(md["name"]), 63)
        self.assertTrue(md["name"].startswith("p-"))
        self.assertEqual(md["labels"]["app.kubernetes.io/managed-by"], "agentscaler")
        self.assertEqual(md["labels"]["agentscaler.io/pool"], "p")
        self.assertEqual(md["labels"]["agentscaler.io/depth"], "0")
        self.assertEqual(md["annotations"]["agentscaler.io/task-id"], "root-1")
        self.assertEqual(md["annotations"]["agentscaler.io/root-id"], "root-1")
        self.assertEqual(md["annotations"]["agentscaler.io/traceparent"], tp)
        self.assertIn("agents.x-k8s.io/client-first-requested-at", md["annotations"])
        self.assertEqual(c["spec"]["warmPoolRef"]["name"], "wp")
        self.assertEqual(c["spec"]["lifecycle"]["shutdownPolicy"], "DeleteForeground")
        st = calendar.timegm(time.strptime(c["spec"]["lifecycle"]["shutdownTime"],
                                           "%Y-%m-%dT%H:%M:%SZ"))
        self.assertAlmostEqual(st - time.time(), 900, delta=60)
        # Child of a live task: depth 1, same root.
        self.redis.cmd("LPUSH", "tasks", task("child-1", parent="root-1"))
        c2 = wait_for(lambda: [x for x in self.claims()
                               if x["metadata"]["annotations"]["agentscaler.io/task-id"] == "child-1"]
                      or None, 20, what="child claim")[0]
        self.assertEqual(c2["metadata"]["labels"]["agentscaler.io/depth"], "1")
        self.assertEqual(c2["metadata"]["annotations"]["agentscaler.io/root-id"], "root-1")
        self.assertEqual(c2["metadata"]["annotations"]["agentscaler.io/parent-id"], "root-1")
        self.assertEqual(c2["metadata"]["labels"]["agentscaler.io/root"],
                         c["metadata"]["labels"]["agentscaler.io/root"])

    def test_bad_messages_are_dead_lettered_with_reasons(self):
        world.sandbox_pool(self.kube, "wp", replicas=1)
        self.start([self.pool()])
        bad = [b"not json", json.dumps({"payload": 1}), json.dumps({"id": "c", "parent": "nobody"}),
               json.dumps({"id": "x" * 300}), json.dumps({"id": "d", "deadline": "2001-01-01T00:00:00Z"}),
               b"\xff\xfe"]
        self.redis.pipeline([("LPUSH", "tasks", b) for b in bad])
        recs = wait_for(lambda: (lambda r: r if len(r) == len(bad) else None)(self.rejected()), 20,
                        what="6 dead letters")
        reasons = sorted(r["reason"] for r in recs)
        self.assertEqual(reasons, sorted(["task.notJson", "task.missingId", "cascade.unknownParent",
                                          "task.badId", "task.deadlineExceeded",
                                          "task.invalidUtf8"]))
        originals = [r.get("original") for r in recs]
        self.assertIn("not json", originals)
        self.assertTrue(any("originalBase64" in r for r in recs), "non-UTF-8 kept as base64")
        for r in recs:
            self.assertEqual(r["pool"], "default/p")
            self.assertTrue(r["detail"])
        self.assertEqual(self.redis.cmd("LLEN", "tasks:processing:as-test"), 0)
        self.assertEqual(self.claims(), [])
        self.assertEqual(self.metric("agentscaler_dispatch_dead_letters_total",
                                     reason="cascade.unknownParent"), 1)

    def test_missing_warm_pool_is_waited_for(self):
        # No warm pool named "wp": the claim turns WarmPoolNotFound, which
        # upstream recovers from once the pool appears (#1315): the task
        # waits past readyTimeoutSeconds instead of being dead-lettered.
        self.start([self.pool(sandbox={"readyTimeoutSeconds": 1}, spare_max=0)])
        self.redis.cmd("LPUSH", "tasks", task("lost-1"))
        wait_for(lambda: self.rejected() or
                 self.metric("agentscaler_dispatch_claim_waits_total") >= 1, 30,
                 what="the ready timeout passed (or a dead letter)")
        self.assertEqual(self.rejected(), [])
        self.assertEqual(world.condition(self.claims()[0], "Ready")["reason"], "WarmPoolNotFound")
        world.sandbox_pool(self.kube, "wp", replicas=0, wait_ready=False)
        wait_for(lambda: self.metric("agentscaler_dispatch_tasks_handed_off_total") == 1, 30,
                 what="handed off once the pool exists")
        self.assertEqual(self.rejected(), [])
        self.assertEqual(self.metric("agentscaler_dispatch_claims_total", outcome="failed"), 0)

    def test_ready_timeout_dead_letters_and_deletes_claim(self):
        # No claim controller: the claim never gets a status.  (A slow cold
        # start shows DependenciesNotReady, the cluster's fault: it waits,
        # see SandboxSemanticsTest.)
        self.kube.stop()
        self.kube = world.KubeSim("--no-sandbox-controller")
        self.addCleanup(self.kube.stop)
        world.sandbox_pool(self.kube, "wp", replicas=0, wait_ready=False)
        self.start([self.pool(sandbox={"readyTimeoutSeconds": 1}, spare_max=0)])
        self.redis.cmd("LPUSH", "tasks", task("slow-1"))
        recs = wait_for(lambda: self.rejected() or None, 30, what="dead letter")
        self.assertEqual(recs[0]["reason"], "claim.readyTimeout")
        wait_for(lambda: not self.claims(), 20, what="claim deleted")

    def test_api_outage_does_not_count_towards_ready_timeout(self):
        # Issue 12, defect 5.  Cold sandboxes are Ready 4 s after their
        # claim; readyTimeoutSeconds is 2; the API server goes away right
        # after the claims are made and stays away 5 s.  Time without it is
        # not the tasks': none is dead-lettered, all are handed off after.
        self.kube.stop()
        self.kube = world.KubeSim("--cold-start-ms", "4000", "--warm-bind-ms", "10")
        self.addCleanup(self.kube.stop)
        world.sandbox_pool(self.kube, "wp", replicas=0, wait_ready=False)
        self.start([self.pool(sandbox={"readyTimeoutSeconds": 2}, spare_max=0)])
        self.redis.pipeline([("LPUSH", "tasks", task("o-%d" % i)) for i in range(3)])
        wait_for(lambda: len(self.claims()) == 3 or None, 20, what="3 claims")
        code, _ = self.kube.adm("POST", "/pause")
        self.assertEqual(code, 200)
        try:
            wait_for(lambda: "claims: WATCH failed" in self.daemon.logs() or None, 20,
                     what="the claim informer sees the outage")
            # The fault's length is the test's input, not a wait for a
            # condition: 2.5 times readyTimeoutSeconds.
            time.sleep(5)
            self.assertEqual(self.rejected(), [], "dead letters during the outage")
        finally:
            self.kube.adm("POST", "/resume")
        wait_for(lambda: self.metric("agentscaler_dispatch_tasks_handed_off_total") == 3, 30,
                 what="3 hand-offs after the outage")
        wait_for(lambda: self.redis.cmd("LLEN", "tasks:processing:as-test") == 0, 10, what="acks")
        self.assertEqual(self.rejected(), [])
        logs = wait_for(lambda: "reachable again" in self.daemon.logs() and self.daemon.logs(),
                        10, what="the daemon sees the outage end")
        self.assertIn("cannot be reached", logs)

    def test_restart_rebuilds_live_tasks_before_consuming(self):
        world.sandbox_pool(self.kube, "wp", replicas=3)
        self.start([self.pool()])
        self.redis.pipeline([("LPUSH", "tasks", task("r-%d" % i)) for i in range(3)])
        # Handed off (no runtime: the sandboxes never finish).
        wait_for(lambda: self.metric("agentscaler_dispatch_tasks_handed_off_total") == 3, 30,
                 what="3 hand-offs")
        wait_for(lambda: self.redis.cmd("LLEN", "tasks:processing:as-test") == 0, 10, what="acks")
        self.daemon.proc.kill()
        self.daemon.proc.wait()
        self.daemon.log.close()
        self.daemon.cleanup()
        before = self.kube.requests()[-1]["seq"] + 1
        self.start([self.pool()])
        st = self.daemon.admin("/status")[1]
        self.assertEqual(st["namespaces"][0]["liveTasks"], 3, st)
        # A child of a rebuilt task is admitted with the right lineage.
        self.redis.cmd("LPUSH", "tasks", task("r-0.1", parent="r-0"))
        c = wait_for(lambda: [x for x in self.claims()
                              if x["metadata"]["annotations"]["agentscaler.io/task-id"] == "r-0.1"]
                     or None, 20, what="child claim")[0]
        self.assertEqual(c["metadata"]["labels"]["agentscaler.io/depth"], "1")
        wait_for(lambda: self.metric("agentscaler_dispatch_tasks_handed_off_total") == 1, 30,
                 what="the child handed off")
        # The new process listed claims before it created any.
        reqs = [r for r in self.kube.requests(before) if "sandboxclaims" in r["path"]]
        first_list = next(i for i, r in enumerate(reqs) if r["method"] == "GET"
                          and r["path"].endswith("/sandboxclaims") and "watch" not in r["query"])
        first_post = next(i for i, r in enumerate(reqs) if r["method"] == "POST")
        self.assertLess(first_list, first_post)
        # Nothing was handed off twice.
        inboxes = self.redis.cmd("KEYS", "agentscaler:inbox:*")
        total = sum(self.redis.cmd("LLEN", k) for k in inboxes)
        self.assertEqual(total, 4)

    def handed_ids(self):
        """Task ids in every sandbox inbox (nothing consumes them here)."""
        ids = []
        for k in self.redis.cmd("KEYS", "agentscaler:inbox:*"):
            ids += [json.loads(m)["agentscaler"]["id"] for m in self.redis.cmd("LRANGE", k, 0, -1)]
        return ids

    def test_restart_under_new_name_adopts_dead_list_not_live_one(self):
        """Issue 12, defect 7: without --leader-elect, a restart under the
        chart's Deployment comes back under a new pod name.  What the dead
        pod held in its processing list is taken over once its heartbeat
        expires and handed off exactly once; the list of another pod that
        is alive (its heartbeat renewed) is never touched."""
        world.sandbox_pool(self.kube, "wp", replicas=0)
        ids = ["n-%02d" % i for i in range(8)]
        self.start([self.pool()], extra=("--instance", "pod-old"))
        self.redis.pipeline([("LPUSH", "tasks", task(t)) for t in ids])
        # Killed while it holds messages (cold starts take 300 ms).
        wait_for(lambda: self.redis.cmd("LLEN", "tasks:processing:pod-old") >= 1, 20, 0.005,
                 "pod-old holding messages")
        self.daemon.proc.kill()
        self.daemon.proc.wait()
        self.daemon.log.close()
        self.daemon.cleanup()
        held = self.redis.cmd("LLEN", "tasks:processing:pod-old")
        # A live replica's list: registered, heartbeat renewed (long TTL here).
        live = task("live-1")
        self.redis.pipeline([
            ("LPUSH", "tasks:processing:pod-live", live),
            ("ZADD", "agentscaler:processing-lists:tasks", int(time.time()),
             "tasks:processing:pod-live"),
            ("SET", "agentscaler:processing-alive:tasks:processing:pod-live", "1", "PX",
             "600000")])

        self.start([self.pool()], extra=("--instance", "pod-new"))
        try:
            wait_for(lambda: sorted(set(self.handed_ids())) == ids, 60, 0.1,
                     "every task handed off")
        except AssertionError:
            self.fail("handed off %r; old list %r; log:\n%s" % (
                sorted(self.handed_ids()), self.redis.cmd("LRANGE", "tasks:processing:pod-old", 0, -1),
                self.daemon.logs()[-4000:]))
        wait_for(lambda: self.redis.cmd("LLEN", "tasks:processing:pod-new") == 0, 20, 0.1,
                 "every message acked")
        self.assertEqual(sorted(self.handed_ids()), ids, "a task handed off twice")
        self.assertEqual(self.redis.cmd("EXISTS", "tasks:processing:pod-old"), 0)
        if held:
            self.assertIn("took over %d message" % held, self.daemon.logs())
        self.assertEqual(self.rejected(), [])
        # The live replica's message stays where it is, through more rounds
        # (pod-new renews its heartbeat every 2 s: wait for a later one).
        hb = "agentscaler:processing-alive:tasks:processing:pod-new"
        first = int(self.redis.cmd("GET", hb))
        wait_for(lambda: int(self.redis.cmd("GET", hb) or 0) >= first + 3, 20, 0.1,
                 "later adoption rounds of pod-new")
        self.assertEqual(self.redis.cmd("LRANGE", "tasks:processing:pod-live", 0, -1), [live])
        self.assertNotIn("live-1", self.handed_ids())

    def test_warm_pool_follows_load_and_goes_to_zero(self):
        world.sandbox_pool(self.kube, "wp", replicas=1)
        self.runtime = world.AgentRuntime(self.kube, self.redis.url, work_ms=300)
        self.start([self.pool(spare_min=1, spare_max=20, cooldownSeconds=3)])
        self.redis.pipeline([("LPUSH", "tasks", task("w-%d" % i)) for i in range(30)])
        # A burst of 30 raises the spare target above the floor.
        wait_for(lambda: self.metric("agentscaler_warm_spare_target") > 1, 20, what="target up")
        self.runtime.wait_finished(30, timeout=90)
        # Then idle: after the cooldown the pool is scaled to zero.
        wait_for(lambda: self.kube.api("GET", world.EXT_API % NS + "sandboxwarmpools/wp/scale")[1]
                 ["spec"].get("replicas", 0) == 0, 30, what="warm pool at 0")
        self.assertEqual(self.metric("agentscaler_warm_spare_target"), 0)
        # The first task after idle cold-starts and scales the pool up at once.
        n = len(self.kube.requests())
        self.redis.cmd("LPUSH", "tasks", task("after-idle"))
        self.runtime.wait_finished(31, timeout=30)
        reqs = self.kube.requests()[n:]
        post = next(i for i, r in enumerate(reqs) if r["method"] == "POST" and "sandboxclaims" in r["path"])
        patch = next(i for i, r in enumerate(reqs) if r["method"] == "PATCH" and r["path"].endswith("/scale"))
        # Same tick: the PATCH is sent with the claim, not at the next
        # sizing tick (1 s later).
        self.assertLess(abs(reqs[patch]["mono"] - reqs[post]["mono"]), 0.9,
                        "scale-up PATCH in the same tick as the claim")
        # With no warm member, kube-sim (as agent-sandbox) waits up to 2 s
        # for one of the members this scale-up creates, else cold-starts;
        # either way the task got its sandbox.
        self.assertEqual(self.metric("agentscaler_dispatch_claims_total", launch="warm", outcome="ready")
                         + self.metric("agentscaler_dispatch_claims_total", launch="cold", outcome="ready"), 31)


class SandboxSemanticsTest(DispatchWorld):
    """agent-sandbox behaviours a real cluster shows and kube-sim hides unless asked
    (its admin POST /sandbox-sim and /sandboxes/<ns>/<name>/evict; issue 12)."""

    def sim(self, **settings):
        code, obj = self.kube.adm("POST", "/sandbox-sim", settings)
        self.assertEqual(code, 200, obj)

    def test_eviction_after_handoff_is_a_failure(self):
        world.sandbox_pool(self.kube, "wp", replicas=1)
        self.start([self.pool(spare_max=0)])
        self.redis.cmd("LPUSH", "tasks", task("ev-1"))
        wait_for(lambda: self.metric("agentscaler_dispatch_tasks_handed_off_total") == 1, 30,
                 what="handed off")
        wait_for(lambda: self.redis.cmd("LLEN", "tasks:processing:as-test") == 0, 10, what="ack")
        sb = self.claims()[0]["status"]["sandbox"]["name"]
        # The pod is evicted: Finished/PodFailed for a moment, then a new pod.
        code, _ = self.kube.adm("POST", "/sandboxes/%s/%s/evict" % (NS, sb), {"recreateMs": 2000})
        self.assertEqual(code, 200)
        wait_for(lambda: self.metric("agentscaler_dispatch_tasks_failed_total") +
                 self.metric("agentscaler_dispatch_tasks_completed_total") >= 1, 30,
                 what="the task ended")
        self.assertEqual(self.metric("agentscaler_dispatch_tasks_failed_total"), 1)
        wait_for(lambda: not self.claims(), 30, what="claim released")
        self.assertEqual(self.metric("agentscaler_dispatch_tasks_completed_total"), 0)
        self.assertEqual(self.rejected(), [])

    def test_reconciler_error_waits_past_ready_timeout(self):
        self.sim(reconcilerError='pods "x" is forbidden: exceeded quota: compute, '
                 'requested: cpu=1, used: cpu=4, limited: cpu=4')
        world.sandbox_pool(self.kube, "wp", replicas=0, wait_ready=False)
        self.start([self.pool(sandbox={"readyTimeoutSeconds": 1}, spare_max=0)])
        self.redis.cmd("LPUSH", "tasks", task("rq-1"))
        wait_for(lambda: self.rejected() or
                 self.metric("agentscaler_dispatch_claim_waits_total") >= 1, 30,
                 what="the ready timeout passed (or a dead letter)")
        self.assertEqual(self.rejected(), [])
        self.assertEqual(world.condition(self.claims()[0], "Ready")["reason"], "ReconcilerError")
        self.sim(reconcilerError=None)
        wait_for(lambda: self.metric("agentscaler_dispatch_tasks_handed_off_total") == 1, 30,
                 what="handed off once the cluster recovered")
        self.assertEqual(self.rejected(), [])
        self.assertEqual(self.metric("agentscaler_dispatch_claims_total", outcome="failed"), 0)

    def _quota_freed_after_sandbox(self, end):
        """maxSandboxes 1: the second task's claim is made only once the
        first task's Sandbox is gone (its pod terminates for 3 s)."""
        self.sim(podTerminationMs=3000)
        world.sandbox_pool(self.kube, "wp", replicas=0, wait_ready=False)
        ttl = 2 if end == "ttl" else 600
        quota = {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentQuota",
                 "metadata": {"name": "limits", "namespace": NS},
                 "spec": {"maxSandboxes": 1, "onExceeded": "defer"}}
        self.start_daemon({"pools": [self.pool(spare_max=0, claim_ttl_seconds=ttl)],
                           "quotas": [quota]}, extra=("--instance", "as-test"))
        self.redis.cmd("LPUSH", "tasks", task("q-1"))
        wait_for(lambda: self.metric("agentscaler_dispatch_tasks_handed_off_total") == 1, 30,
                 what="first handed off")
        first = self.claims()[0]
        sb = first["status"]["sandbox"]["name"]
        self.redis.cmd("LPUSH", "tasks", task("q-2"))
        wait_for(lambda: self.daemon.admin("/status")[1]["namespaces"][0]["deferred"] == 1, 20,
                 what="second deferred")
        if end == "background":
            code, _ = self.kube.api("DELETE", CLAIMS + "/" + first["metadata"]["name"],
                                    {"propagationPolicy": "Background"})
            self.assertEqual(code, 200)
        second = wait_for(lambda: [c for c in self.claims() if c["metadata"]["annotations"]
                                   ["agentscaler.io/task-id"] == "q-2"] or None, 60,
                          what="second claim")[0]
        # When the second claim exists, the first Sandbox is gone.
        code, obj = self.kube.api("GET", world.SANDBOX_API % NS + "/" + sb)
        self.assertEqual(code, 404, "claim %s made while Sandbox %s still exists: %s" %
                         (second["metadata"]["name"], sb, obj.get("metadata")))

    def test_ttl_delete_foreground_frees_quota_after_sandbox(self):
        self._quota_freed_after_sandbox("ttl")

    def test_background_delete_by_someone_frees_quota_after_sandbox(self):
        self._quota_freed_after_sandbox("background")


class DispatchStreamTest(DispatchWorld):
    """The same flow with a Redis stream and a consumer group."""

    def stream_pool(self, **kw):
        return world.pool_dispatch("p", self.redis.url, "tasks", "wp", consumer_group="agents",
                                   claim_ttl_seconds=600, spare_max=10, pollIntervalMs=200, **kw)

    def xadd(self, body):
        self.redis.cmd("XADD", "tasks", "*", "task", body)

    def test_stream_tasks_hand_off_ack_and_dead_letter(self):
        world.sandbox_pool(self.kube, "wp", replicas=3)
        # The group exists before the producer writes (a group made by
        # agentscaler starts at "$").
        self.redis.cmd("XGROUP", "CREATE", "tasks", "agents", "0", "MKSTREAM")
        self.runtime = world.AgentRuntime(self.kube, self.redis.url, work_ms=50)
        self.start([self.stream_pool()])
        for i in range(5):
            self.xadd(task("s-%d" % i))
        self.xadd("{not json")
        self.runtime.wait_finished(5, timeout=60)
        self.assertEqual(sorted(self.runtime.received_ids()), ["s-%d" % i for i in range(5)])
        dead = wait_for(lambda: self.redis.cmd("XRANGE", "tasks.rejected", "-", "+") or None, 20,
                        what="the stream dead letter")
        rec = json.loads(dead[0][1][1])
        self.assertEqual(rec["reason"], "task.notJson")
        self.assertEqual(rec["original"], "{not json")
        # Everything acked: nothing pending in the group.
        wait_for(lambda: self.redis.cmd("XPENDING", "tasks", "agents")[0] == 0, 20,
                 what="XPENDING 0")
        wait_for(lambda: not self.claims(), 30, what="claims released")

    def test_stream_field_names_the_body(self):
        """source.streamField: the producer's own field layout (here the
        body in "job", beside a "meta" field); with the default ("task")
        these entries would be dead-lettered as having no task id."""
        world.sandbox_pool(self.kube, "wp", replicas=2)
        self.redis.cmd("XGROUP", "CREATE", "tasks", "agents", "0", "MKSTREAM")
        self.runtime = world.AgentRuntime(self.kube, self.redis.url, work_ms=50)
        p = self.stream_pool()
        p["spec"]["source"]["streamField"] = "job"
        self.start([p])
        for i in range(3):
            self.redis.cmd("XADD", "tasks", "*", "meta", "m-%d" % i, "job", task("f-%d" % i))
        self.runtime.wait_finished(3, timeout=60)
        self.assertEqual(sorted(self.runtime.received_ids()), ["f-0", "f-1", "f-2"])
        self.assertEqual(self.redis.cmd("XLEN", "tasks.rejected"), 0)


if __name__ == "__main__":
    unittest.main()
