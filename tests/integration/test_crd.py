"""CRD mode end to end (issue 7): the real kubectl installs
charts/agentscaler/crds into kube-sim and manages AgentPools and
AgentQuotas; the daemon runs without --config and applies them live; its
status and Events are read back with kubectl and from kube-sim's API and
request log.

Each test builds its own world on free loopback ports and tears it down by
PID.  Waits are bounded polls; nothing asserts on speed.  The one sleep is
the quiet period in which no status write may happen.
"""
import json
import time
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

NS = "default"
POOLS = "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentpools" % NS
QUOTAS = "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentquotas" % NS
EVENTS = "/apis/events.k8s.io/v1/namespaces/%s/events" % NS
FAST = dict(pollIntervalMs=100, cooldownSeconds=1, scaleDownStabilizationSeconds=0.5)


def quota(name, **spec):
    return {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentQuota",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


@unittest.skipUnless(world.Kubectl.available(), "kubectl not installed")
class CrdWorld(world.DaemonTestCase):
    kube_args = ("--replica-delay-ms", "50")

    def setUp(self):
        super().setUp()
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.kube = world.KubeSim(*self.kube_args)
        self.addCleanup(self.kube.stop)
        self.kubectl = world.Kubectl(self.kube)
        self.addCleanup(self.kubectl.cleanup)
        self.kubectl.install_crds()

    def start(self, extra=()):
        """The daemon in CRD mode; /readyz once the informers listed."""
        return self.start_daemon(None, extra=extra)

    def apply(self, obj):
        return self.kubectl.run("apply", "--validate=false", "-f", "-",
                                stdin=json.dumps(obj)).stdout

    def get(self, path):
        code, obj = self.kube.api("GET", path)
        return obj if code == 200 else None

    def pool_obj(self, name):
        return self.get(POOLS + "/" + name)

    def events(self, name=None, reason=None):
        items = (self.get(EVENTS) or {}).get("items") or []
        return [e for e in items
                if (name is None or (e.get("regarding") or {}).get("name") == name) and
                (reason is None or e.get("reason") == reason)]

    def status_patches(self, since):
        return [r for r in self.kube.requests(since)
                if r["method"] == "PATCH" and r["path"].endswith("/status") and
                "/agentscaler.io/" in r["path"]]

    def next_seq(self):
        code, obj = self.kube.adm("GET", "/requests?since=0")
        return obj["next"]

    def push(self, queue, n, prefix="t"):
        self.redis.pipeline([("LPUSH", queue, json.dumps({"id": "%s-%d" % (prefix, i)}))
                             for i in range(n)])


class CrdScaleTest(CrdWorld):
    def test_pool_lifecycle_live(self):
        """create -> scales; edit maxReplicas -> applies live in the same
        process with the pool's state kept; drain -> ScaledToZero; delete
        -> the pool stops.  Status is visible through kubectl's printer
        columns."""
        self.kube.create_deployment("web", 0)
        d = self.start()
        pid = d.proc.pid
        self.apply(world.pool("p1", self.redis.url, "q1", "web", maxReplicas=10, **FAST))
        self.push("q1", 4)
        wait_for(lambda: self.kube.replicas("web") == 4, 30, what="4 replicas")
        wait_for(lambda: ((self.pool_obj("p1") or {}).get("status") or {}).get("replicas") == 4,
                 30, what="status.replicas 4")
        out = self.kubectl.run("get", "agentpools").stdout.splitlines()
        self.assertEqual(out[0].split(), ["NAME", "MODE", "TARGET", "MIN", "MAX", "BACKLOG",
                                          "REPLICAS", "DESIRED", "ACTIVE", "READY", "AGE"])
        self.assertEqual(out[1].split()[:10], ["p1", "scale", "web", "0", "10", "4", "4", "4",
                                               "True", "True"])
        self.assertIn("p1", self.kubectl.run("get", "apool").stdout)
        polls_before = d.metrics().get(
            'agentscaler_source_reads_total{namespace="default",pool="p1"}')
        self.assertGreater(polls_before, 0)

        # Edit with kubectl: applies live, same process, pool kept.
        self.kubectl.run("patch", "agentpool", "p1", "--type=merge",
                         "-p", json.dumps({"spec": {"scaling": {"maxReplicas": 2}}}))
        wait_for(lambda: self.kube.replicas("web") == 2, 30, what="capped at 2")
        self.assertEqual(d.proc.pid, pid)
        self.assertIsNone(d.proc.poll())
        polls_after = d.metrics().get(
            'agentscaler_source_reads_total{namespace="default",pool="p1"}')
        self.assertGreaterEqual(polls_after, polls_before, "the pool was not rebuilt")
        self.assertEqual(d.logs().count("default/p1: push wake-ups requested"), 1)
        wait_for(lambda: ((self.pool_obj("p1") or {}).get("status") or {})
                 .get("observedGeneration") == 2, 30, what="observedGeneration 2")

        # Drain: to zero after the cooldown, with an Event.
        self.redis.cmd("DEL", "q1")
        wait_for(lambda: self.kube.replicas("web") == 0, 30, what="zero replicas")
        wait_for(lambda: self.events("p1", "ScaledToZero"), 30, what="ScaledToZero Event")
        up = self.events("p1", "ScaledUp")
        self.assertTrue(up)
        self.assertEqual(up[0]["type"], "Normal")
        self.assertEqual(up[0]["reportingController"], "agentscaler.io/agentscaler")
        self.assertEqual(up[0]["regarding"]["uid"], self.pool_obj("p1")["metadata"]["uid"])
        self.assertEqual(up[0]["regarding"]["kind"], "AgentPool")

        # Delete: the pool stops (no series, nothing in /status).
        self.kubectl.run("delete", "agentpool", "p1")
        wait_for(lambda: not d.admin("/status")[1]["pools"], 30, what="pool gone")
        self.assertNotIn('pool="p1"', d.get("/metrics")[1])
        # A witness on the same queue: once it has scaled to the backlog and
        # gone on evaluating, a pool still reading q1 would have scaled too.
        self.kube.create_deployment("witness", 0)
        self.apply(world.pool("w1", self.redis.url, "q1", "witness", **FAST))
        self.push("q1", 3)
        wait_for(lambda: self.kube.replicas("witness") == 3, 30, what="the witness scales")
        d.evaluated("w1", 10)
        self.assertEqual(self.kube.replicas("web"), 0, "a deleted pool does not scale")

    def test_invalid_objects_are_reported_on_their_own(self):
        """An AgentPool the schema takes but the parser refuses, and a second
        AgentQuota in a namespace: each gets Ready=False/InvalidSpec and a
        Warning Event; the valid pool runs on."""
        self.kube.create_deployment("web", 0)
        self.start()
        self.apply(quota("first", maxSandboxes=50))
        self.apply(world.pool("good", self.redis.url, "q1", "web", **FAST))
        bad = world.pool("bad", self.redis.url, "q2", "web", **FAST)
        bad["spec"]["source"]["address"] = "redis://"          # no host
        self.apply(bad)
        time.sleep(1.1)       # creationTimestamp has seconds: "second" is younger
        self.apply(quota("second", maxSandboxes=10))

        def invalid(obj):
            for c in ((obj or {}).get("status") or {}).get("conditions") or []:
                if c["type"] == "Ready" and c["status"] == "False" and \
                        c["reason"] == "InvalidSpec":
                    return c
            return None
        c = wait_for(lambda: invalid(self.pool_obj("bad")), 30, what="bad: InvalidSpec")
        self.assertEqual(c["message"], "spec.source: the address has no host")
        self.assertEqual(self.pool_obj("bad")["status"]["observedGeneration"], 1)
        c = wait_for(lambda: invalid(self.get(QUOTAS + "/second")), 30,
                     what="second quota: InvalidSpec")
        self.assertIn("already has AgentQuota first", c["message"])
        ev = wait_for(lambda: self.events("bad", "InvalidSpec"), 30, what="InvalidSpec Event")
        self.assertEqual(ev[0]["type"], "Warning")
        self.assertEqual(ev[0]["note"], "spec.source: the address has no host")
        wait_for(lambda: self.events("second", "InvalidSpec"), 30, what="quota Event")
        self.assertIsNone(invalid(self.get(QUOTAS + "/first")))

        # The valid pool is unaffected.
        self.push("q1", 2)
        wait_for(lambda: self.kube.replicas("web") == 2, 30, what="good pool scales")
        wait_for(lambda: world.is_true(self.pool_obj("good"), "Ready"), 30, what="good Ready")

        # Another invalid generation: the same Event becomes a series.
        self.kubectl.run("patch", "agentpool", "bad", "--type=merge", "-p",
                         json.dumps({"spec": {"source": {"address": "redis://:0"}}}))
        ev = wait_for(lambda: [e for e in self.events("bad", "InvalidSpec")
                               if (e.get("series") or {}).get("count", 0) > 1],
                      30, what="InvalidSpec series")
        self.assertEqual(len(self.events("bad", "InvalidSpec")), 1, "one Event, counted")
        self.assertEqual(ev[0]["series"]["count"], 2)

        # Fixed: applied, Ready.
        self.kubectl.run("patch", "agentpool", "bad", "--type=merge", "-p",
                         json.dumps({"spec": {"source": {"address": self.redis.url}}}))
        wait_for(lambda: world.is_true(self.pool_obj("bad"), "Ready"), 30, what="bad fixed")

    def test_status_written_only_on_change(self):
        self.kube.create_deployment("web", 0)
        d = self.start()
        self.apply(world.pool("p1", self.redis.url, "q1", "web", **FAST))
        self.push("q1", 2)
        wait_for(lambda: ((self.pool_obj("p1") or {}).get("status") or {}).get("replicas") == 2
                 and world.is_true(self.pool_obj("p1"), "Ready"), 30, what="status settled")
        # The status tick (every second) makes the statuses of the pools
        # whose report changed (issue 15: not every pool's every time) and
        # the writer drops any equal to the one written.  Once settled, a
        # quiet period of five ticks: nothing written, and at most one
        # status made (the once-a-minute resync may fall in it).
        ticks = lambda: d.metric("agentscaler_crd_status_ticks_total") or 0
        made = lambda: d.metric("agentscaler_crd_statuses_made_total") or 0
        t = ticks()
        wait_for(lambda: ticks() >= t + 2, 30, what="two status ticks")
        seq = self.next_seq()
        t, m = ticks(), made()
        wait_for(lambda: ticks() >= t + 5, 30, what="five more quiet status ticks")
        self.assertEqual(self.status_patches(seq), [], "no status write while nothing changes")
        self.assertLessEqual(made() - m, 1, "no status made while nothing changes")
        # A change is written.
        self.push("q1", 1, prefix="more")
        wait_for(lambda: self.status_patches(seq), 30, what="a status write")
        wait_for(lambda: self.pool_obj("p1")["status"].get("replicas") == 3, 30,
                 what="status.replicas 3")
        m = d.metrics()
        self.assertGreater(m.get('agentscaler_status_writes_total{result="ok"}', 0), 0)

    def test_restart_rewrites_no_invalid_status(self):
        """The informers drop a known object's status from their cache
        (crd_cache_slim, issue 15) but keep it at first sight: a new process
        takes it as the status writer's base, so an invalid AgentPool's
        InvalidSpec status, the same after a restart, is not written again.
        (A valid pool's is: a new process reports Starting first.)"""
        bad = world.pool("bad", self.redis.url, "q2", "web", **FAST)
        bad["spec"]["source"]["address"] = "redis://"          # no host
        d = self.start()
        self.apply(bad)
        wait_for(lambda: any(c["reason"] == "InvalidSpec" for c in
                             ((self.pool_obj("bad") or {}).get("status") or {})
                             .get("conditions") or []), 30, what="bad: InvalidSpec")
        rv = self.pool_obj("bad")["metadata"]["resourceVersion"]
        rc = d.stop()
        d.cleanup()
        self.daemon = None
        self.assertEqual(rc, 0)
        seq = self.next_seq()
        d = self.start()
        ticks = lambda: d.metric("agentscaler_crd_status_ticks_total") or 0
        made = lambda: d.metric("agentscaler_crd_statuses_made_total") or 0
        wait_for(lambda: made() >= 1, 30, what="the status made after the restart")
        t = ticks()
        wait_for(lambda: ticks() >= t + 3, 30, what="three more status ticks")
        self.assertEqual(self.status_patches(seq), [], "an unchanged status rewritten")
        self.assertEqual(self.pool_obj("bad")["metadata"]["resourceVersion"], rv)

    def test_standby_until_listed_and_watch_namespace(self):
        """--watch-namespace: objects of other namespaces are not seen."""
        world.create_namespace(self.kube, "team-b")
        self.kube.create_deployment("web", 0)
        self.kube.create_deployment("web", 0, ns="team-b")
        other = world.pool("other", self.redis.url, "q2", "web", **FAST)
        other["metadata"]["namespace"] = "team-b"
        self.apply(other)
        d = self.start(extra=("--watch-namespace", NS))
        self.apply(world.pool("mine", self.redis.url, "q1", "web", **FAST))
        self.push("q1", 1)
        self.push("q2", 1)
        wait_for(lambda: self.kube.replicas("web") == 1, 30, what="own namespace scales")
        # Pools poll alike: once "mine" has gone on evaluating, "other"
        # would have scaled had it been seen.
        d.evaluated("mine", 10, ns=NS)
        self.assertEqual(self.kube.replicas("web", ns="team-b"), 0)
        names = [p["name"] for p in d.admin("/status")[1]["pools"]]
        self.assertEqual(names, ["mine"])


class CrdLeaderTest(CrdWorld):
    def test_crd_mode_with_leader_election_as_the_chart_runs_it(self):
        """The chart's way: CRD mode, --leader-elect, the Lease in the
        release's namespace.  The leader takes the Lease, writes status and
        scales; under `make chart-rbac` this covers the chart's Lease Role."""
        ns = world.CHART_NAMESPACE
        self.kubectl.run("apply", "--validate=false", "-f", "-", stdin=json.dumps(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        self.kube.create_deployment("web", 0)
        d = self.start(extra=("--leader-elect", "--lease-namespace", ns,
                              "--instance", "as-crd-0", "--lease-duration", "3",
                              "--renew-deadline", "2", "--retry-period", "0.5"))
        lease = "/apis/coordination.k8s.io/v1/namespaces/%s/leases/agentscaler" % ns
        got = wait_for(lambda: (self.get(lease) or {}).get("spec", {}).get("holderIdentity")
                       == "as-crd-0" and self.get(lease), 30, what="Lease held")
        self.assertEqual(got["spec"]["leaseDurationSeconds"], 3)
        self.apply(world.pool("p1", self.redis.url, "q1", "web", maxReplicas=10, **FAST))
        self.push("q1", 3)
        wait_for(lambda: self.kube.replicas("web") == 3, 30, what="3 replicas")
        wait_for(lambda: ((self.pool_obj("p1") or {}).get("status") or {}).get("replicas") == 3,
                 30, what="status written by the leader")
        self.assertEqual(d.metrics().get("agentscaler_leader"), 1)
        # Renewals keep going (PUTs by the daemon's identity).
        renew = wait_for(lambda: [r for r in self.kube.requests()
                                  if r["method"] == "PUT" and r["path"].endswith(
                                      "/leases/agentscaler") and r["code"] == 200][1:] or None,
                         30, what="renewals")
        self.assertTrue(renew)


class CrdDispatchTest(CrdWorld):
    kube_args = ("--cold-start-ms", "300", "--warm-bind-ms", "10")

    def test_quota_and_cascade_events(self):
        """A dispatch pool under an AgentQuota (maxSandboxes 1, defer;
        maxDepth 0): the second root waits (QuotaExceeded on the pool and on
        the quota), a child is rejected (CascadeRejected), a task with an
        unknown parent too; the quota's status shows the use."""
        world.sandbox_pool(self.kube, "wp", replicas=1)
        self.start(extra=("--instance", "crd-dispatch"))
        self.apply(quota("limits", maxSandboxes=1, onExceeded="defer",
                         cascade={"maxDepth": 0}))
        self.apply(world.pool_dispatch("dp", self.redis.url, "tasks", "wp", spare_min=0,
                                       spare_max=0, pollIntervalMs=100, cooldownSeconds=600))
        wait_for(lambda: self.daemon.admin("/status")[1].get("dispatch"), 30,
                 what="dispatch pool running")
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "root-1", "payload": {}}))
        wait_for(lambda: any(((c.get("status") or {}).get("sandbox") or {}).get("name")
                             for c in (self.get(world.EXT_API % NS + "sandboxclaims") or {})
                             .get("items") or []), 30, what="root-1 claimed")
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "root-2", "payload": {}}))
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "kid", "parent": "root-1"}))
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "orphan", "parent": "nobody"}))
        qe = wait_for(lambda: self.events("dp", "QuotaExceeded"), 30, what="QuotaExceeded")
        self.assertEqual(qe[0]["type"], "Warning")
        self.assertIn("root-2", qe[0]["note"])
        wait_for(lambda: self.events("limits", "QuotaExceeded"), 30,
                 what="QuotaExceeded on the AgentQuota")
        cr = wait_for(lambda: self.events("dp", "CascadeRejected"), 30, what="CascadeRejected")
        wait_for(lambda: self.events("limits", "CascadeRejected"), 30,
                 what="CascadeRejected on the AgentQuota")
        self.assertTrue(any("cascade." in e["note"] for e in cr))
        # Both rejections (maxDepth, unknownParent) are one Event, counted.
        wait_for(lambda: [e for e in self.events("dp", "CascadeRejected")
                          if (e.get("series") or {}).get("count", 0) >= 2], 30,
                 what="CascadeRejected series")
        self.assertEqual(len(self.events("dp", "CascadeRejected")), 1)

        def qstatus():
            st = (self.get(QUOTAS + "/limits") or {}).get("status") or {}
            return st if st.get("deferred") == 1 and (st.get("used") or {}).get("sandboxes") == 1 \
                else None
        st = wait_for(qstatus, 30, what="quota status")
        self.assertGreaterEqual(st["rejected"], 1)     # maxDepth (unknownParent is no quota's)
        self.assertTrue(world.is_true({"status": st}, "QuotaLimited"))
        # The status is written at most every 2 s and may still show the
        # claims before root-1's launch was counted: wait for the count.
        def claims():
            c = ((self.pool_obj("dp") or {}).get("status") or {}).get("claims") or {}
            return c if c.get("warm", 0) + c.get("cold", 0) >= 1 else None
        pst = wait_for(claims, 30, what="pool claims status")
        self.assertEqual(pst.get("warm", 0) + pst.get("cold", 0), 1)
        out = self.kubectl.run("get", "agentquotas").stdout.splitlines()
        self.assertEqual(out[0].split()[:6], ["NAME", "MAX", "USED", "ROOTS", "DEFERRED",
                                              "REJECTED"])
        self.assertEqual(out[1].split()[:5], ["limits", "1", "1", "1", "1"])


if __name__ == "__main__":
    unittest.main()
