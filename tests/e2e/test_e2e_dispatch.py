"""Dispatch mode on the real agent-sandbox controller (issue 13).

SandboxClaims are bound by the real controller (v1.0.1, extensions on) to
members of a real SandboxWarmPool or to Sandboxes it starts cold; kwok runs
their pods.  The example agent runtime reads each sandbox's Redis inbox and,
when its task is done, ends the pod as the kubelet would (phase Succeeded or
Failed); the controller then reports Finished and agentscaler releases the
claim.  The daemon runs as the chart's ServiceAccount under the real RBAC.

What is checked comes from the real parts: the runtime's event log, the
dead-letter list, the claims, Sandboxes and pods the API server holds.
"""
import json
import threading
import unittest

from tests.e2e import kube  # noqa: E402
import podstatus  # noqa: E402
import world  # noqa: E402
from world import wait_for  # noqa: E402


def task(tid, parent=None):
    t = {"id": tid, "payload": {"n": tid}}
    if parent:
        t["parent"] = parent
    return json.dumps(t)


class DispatchE2E(kube.E2ETestCase):
    prefix = "e2e-dispatch"

    def setUp(self):
        super().setUp()
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)

    def pool(self, quota=None, **kw):
        args = dict(claim_ttl_seconds=600, spare_min=0, spare_max=4, pollIntervalMs=200,
                    cooldownSeconds=60, namespace=self.ns)
        args.update(kw)
        cfg = {"pools": [world.pool_dispatch("p", self.redis.url, "tasks", "wp", **args)]}
        if quota:
            cfg["quotas"] = [{"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentQuota",
                              "metadata": {"name": "q", "namespace": self.ns},
                              "spec": quota}]
        return cfg

    def start_runtime(self, **kw):
        self.runtime = world.AgentRuntime(self.kube, self.redis.url, namespace=self.ns,
                                          **kw)
        return self.runtime

    def metric(self, name, **labels):
        labels = dict({"namespace": self.ns, "pool": "p"}, **labels)
        return self.daemon.metric_sum(name, **labels) or 0

    def items(self, what):
        path = {"claims": world.EXT_API % self.ns + "sandboxclaims",
                "sandboxes": world.SANDBOX_API % self.ns,
                "pods": "/api/v1/namespaces/%s/pods" % self.ns}[what]
        code, obj = self.kube.api("GET", path)
        self.assertEqual(code, 200, obj)
        return obj.get("items") or []

    def rejected(self):
        return [json.loads(r) for r in self.redis.cmd("LRANGE", "tasks.rejected", 0, -1)]

    def push(self, *bodies):
        self.redis.pipeline([("LPUSH", "tasks", b) for b in bodies])

    def events(self, reason):
        code, obj = self.kube.api("GET", "/api/v1/namespaces/%s/events" % self.ns)
        return [e for e in obj.get("items") or [] if e.get("reason") == reason]

    def test_warm_and_cold_hand_off_and_release_on_completion(self):
        world.sandbox_pool(self.kube, "wp", replicas=2, ns=self.ns, timeout=90)
        rt = self.start_runtime(work_ms=200)
        self.start_daemon(self.pool(spare_min=2))
        self.push(*[task("t-%d" % i) for i in range(5)])
        rt.wait_finished(5, timeout=180)
        self.assertEqual(sorted(rt.received_ids()), ["t-%d" % i for i in range(5)],
                         "each task reached an agent exactly once")
        self.assertEqual(rt.ids("duplicate"), [])
        self.assertEqual(self.rejected(), [])
        # The controller reports Finished (PodSucceeded); agentscaler deletes
        # the claims (foreground: their Sandboxes and pods go first).
        wait_for(lambda: self.metric("agentscaler_dispatch_tasks_completed_total") == 5, 120,
                 0.2, "5 completions (log: %s)" % self.daemon.logs()[-3000:])
        owned = lambda: [c for c in self.items("claims")  # noqa: E731
                         if c["metadata"].get("labels", {}).get(
                             "app.kubernetes.io/managed-by") == "agentscaler"]
        wait_for(lambda: not owned(), 120, 0.2, "agentscaler's claims deleted")
        warm = self.metric("agentscaler_dispatch_claims_total", launch="warm", outcome="ready")
        cold = self.metric("agentscaler_dispatch_claims_total", launch="cold", outcome="ready")
        self.assertEqual(warm + cold, 5)
        self.assertGreaterEqual(warm, 2, "the two warm members were claimed warm")
        self.assertEqual(self.redis.cmd("LLEN", "tasks"), 0)
        print("\nreal agent-sandbox: %d warm, %d cold claims" % (warm, cold))

    def test_pod_failed_after_hand_off_is_a_failure_not_a_completion(self):
        """CRD mode (the AgentPool an object of the namespace, so the
        failure is an Event on it): a pod that ends Failed after the hand-off
        is the task's failure, never a completion, and never a re-run."""
        world.sandbox_pool(self.kube, "wp", replicas=1, ns=self.ns, timeout=90)
        rt = self.start_runtime(work_ms=100, extra=("--finish-phase", "Failed"))
        self.kube.c.kubectl("apply", "-f", world.CRDS)
        for crd in ("agentpools.agentscaler.io", "agentquotas.agentscaler.io"):
            wait_for(lambda: self.kube.c._crd_established(crd), 60, 0.1,
                     "CRD %s Established" % crd)
        code, obj = self.kube.api("POST", "/apis/agentscaler.io/v1alpha1/namespaces/%s/"
                                  "agentpools" % self.ns, self.pool()["pools"][0])
        self.assertEqual(code, 201, obj)
        self.start_daemon(None, extra=("--watch-namespace", self.ns))
        self.push(task("fails"))
        rt.wait_finished(1, timeout=120)
        wait_for(lambda: self.metric("agentscaler_dispatch_tasks_failed_total") == 1, 120,
                 0.2, "the task counted failed (log: %s)" % self.daemon.logs()[-3000:])
        self.assertEqual(self.metric("agentscaler_dispatch_tasks_completed_total"), 0)
        wait_for(lambda: self.events("TaskFailed"), 60, 0.2, "a TaskFailed Event")
        self.assertEqual(rt.received_ids(), ["fails"], "handed off once, never again")

    def test_pod_evicted_after_hand_off(self):
        """The sandbox's pod is evicted while its task works: the real
        controller shows Finished=True/PodFailed for a moment, then makes a
        new pod.  The task is a failure (its work was lost), the claim is
        released, and the task is never handed off a second time."""
        world.sandbox_pool(self.kube, "wp", replicas=1, ns=self.ns, timeout=90)
        rt = self.start_runtime(work_ms=60000)
        self.start_daemon(self.pool(spare_max=0))
        self.push(task("evicted"))
        wait_for(lambda: rt.received_ids(), 120, 0.1, "the task to reach its agent")
        sandbox = rt.events("received")[0]["sandbox"]
        code, sb = self.kube.api("GET", world.SANDBOX_API % self.ns + "/" + sandbox)
        self.assertEqual(code, 200, sb)
        pod = podstatus.sandbox_pod_name(sb)
        code, obj = self.kube.api("POST", "/api/v1/namespaces/%s/pods/%s/eviction" % (
            self.ns, pod), {"apiVersion": "policy/v1", "kind": "Eviction",
                            "metadata": {"name": pod, "namespace": self.ns}})
        self.assertEqual(code, 201, obj)
        wait_for(lambda: self.metric("agentscaler_dispatch_tasks_failed_total") == 1, 120,
                 0.2, "the evicted task counted failed (log: %s)"
                 % self.daemon.logs()[-3000:])
        wait_for(lambda: not any(c["metadata"]["name"] for c in self.items("claims")
                                 if c.get("metadata", {}).get("labels", {}).get(
                                     "app.kubernetes.io/managed-by") == "agentscaler"),
                 120, 0.2, "its claim released")
        self.assertEqual(self.metric("agentscaler_dispatch_tasks_completed_total"), 0)
        self.assertEqual(rt.received_ids(), ["evicted"], "never handed off again")

    def test_resource_quota_refusing_pods_makes_tasks_wait(self):
        """A ResourceQuota lets one pod run: the second task's sandbox pod is
        refused (the controller says ReconcilerError) until the first pod
        ends; the task waits and is handed off then, never dead-lettered."""
        code, obj = self.kube.api("POST", "/api/v1/namespaces/%s/resourcequotas" % self.ns, {
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "pods"},
            "spec": {"hard": {"pods": "1"}}})
        self.assertEqual(code, 201, obj)
        wait_for(lambda: (self.kube.api("GET", "/api/v1/namespaces/%s/resourcequotas/pods"
                                        % self.ns)[1].get("status") or {}).get("hard"),
                 60, 0.1, "the quota controller to fill status.hard")
        world.sandbox_pool(self.kube, "wp", replicas=0, ns=self.ns, wait_ready=False)
        rt = self.start_runtime(work_ms=3000)
        self.start_daemon(self.pool(spare_max=0))
        self.push(task("first"), task("second"))
        rt.wait_finished(2, timeout=240)
        self.assertEqual(sorted(rt.received_ids()), ["first", "second"])
        self.assertEqual(self.rejected(), [], "waiting on the cluster is not the task's fault")

    def test_quota_bounds_live_pods_of_a_runaway_tree(self):
        """Agents spawn 3 children each with no depth limit of their own;
        AgentQuota maxSandboxes 3 and maxDepth 2.  Pods of the namespace are
        sampled from the API server all along and never exceed 3."""
        world.sandbox_pool(self.kube, "wp", replicas=1, ns=self.ns, timeout=90)
        rt = self.start_runtime(work_ms=300, children=3, publish_to="redis-list:tasks")
        self.start_daemon(self.pool(spare_max=1, quota={
            "maxSandboxes": 3, "cascade": {"maxDepth": 2}}))
        peaks, stop = [], threading.Event()

        def sample():
            while not stop.is_set():
                pods = [p for p in self.items("pods")
                        if not p["metadata"].get("deletionTimestamp") and
                        p.get("status", {}).get("phase") in ("Pending", "Running")]
                peaks.append(len(pods))
                stop.wait(0.05)
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        try:
            self.push(task("root"))
            # 1 root + 3 children + 9 grandchildren; depth 3 is refused.
            rt.wait_finished(13, timeout=300)
        finally:
            stop.set()
            th.join(10)
        self.assertLessEqual(max(peaks), 3 + 1, "live pods: maxSandboxes 3 plus the "
                             "one warm spare")
        refused = [r for r in self.rejected() if r.get("reason") == "cascade.maxDepth"]
        self.assertEqual(len(refused), 27, "each great-grandchild refused with its reason")
        print("\nrunaway on the real cluster: peak %d live pods, %d samples"
              % (max(peaks), len(peaks)))


if __name__ == "__main__":
    unittest.main()
