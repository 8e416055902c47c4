"""Adoption beside another autoscaler (issue 18; README "Adopting it beside
KEDA"): shadow mode per pool (spec.shadow) and for the whole daemon
(--shadow), the pause annotations, on kube-sim with a real redis-server.

Each test builds its own world on free loopback ports and tears it down by
PID.  Waits are bounded polls; "nothing was written" is checked after a
number of the pool's own evaluations (Daemon.evaluated), never a sleep.
"""
import json
import os
import subprocess
import tempfile
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

NS = "default"
POOLS = "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentpools" % NS
CLAIMS = world.EXT_API % NS + "sandboxclaims"
FAST = dict(pollIntervalMs=100, cooldownSeconds=1, scaleDownStabilizationSeconds=0.5)
HPAS = "/apis/autoscaling/v2/namespaces/%s/horizontalpodautoscalers" % NS
SOS = "/apis/keda.sh/v1alpha1/namespaces/%s/scaledobjects" % NS
EVENTS = "/apis/events.k8s.io/v1/namespaces/%s/events" % NS

# KEDA's ScaledObject CRD, reduced to what kube-sim needs to serve it (no
# KEDA runs here: the objects are only stored, as agentscaler reads them).
SO_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {"group": "keda.sh", "scope": "Namespaced",
             "names": {"plural": "scaledobjects", "singular": "scaledobject",
                       "kind": "ScaledObject", "listKind": "ScaledObjectList"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {
                               "type": "object",
                               "x-kubernetes-preserve-unknown-fields": True}}}]}}


def hpa(name, target):
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": target},
                     "minReplicas": 1, "maxReplicas": 10}}


def scaled_object(name, target):
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"scaleTargetRef": {"name": target}}}


def cond(obj, ctype):
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


class AdoptWorld(world.RedisKubeTestCase):
    def scale_writes(self, since, name):
        return [r for r in self.kube.requests(since)
                if r["method"] in ("PATCH", "PUT") and
                r["path"].endswith("/deployments/%s/scale" % name)]

    def next_seq(self):
        return self.kube.adm("GET", "/requests?since=0")[1]["next"]

    def create(self, path, obj):
        code, out = self.kube.api("POST", path, obj)
        self.assertEqual(code, 201, out)

    def install_keda_crd(self):
        self.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", SO_CRD)
        wait_for(lambda: self.kube.api("GET", SOS)[0] == 200, 30, what="ScaledObjects served")

    def events(self, name, reason):
        items = (self.kube.api("GET", EVENTS)[1] or {}).get("items") or []
        return [e for e in items if (e.get("regarding") or {}).get("name") == name and
                e.get("reason") == reason]


class CrdWorld(AdoptWorld):
    """CRD mode: kube-sim with the chart's CRDs, objects through kubectl."""

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


@unittest.skipUnless(world.Kubectl.available(), "kubectl not installed")
class CrdAdoptTest(CrdWorld):
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

    def test_paused_replicas_never_past_the_quota(self):
        """The annotation is the tenant's: agentscaler.io/paused-replicas
        above the namespace's AgentQuota (maxSandboxes 4) holds the target
        at the quota, not at the annotation (the write bypassed the quota
        before)."""
        self.kube.create_deployment("web", 0)
        d = self.start_daemon(None)
        self.apply({"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentQuota",
                    "metadata": {"name": "q", "namespace": NS},
                    "spec": {"maxSandboxes": 4}})
        self.apply(world.pool("p1", self.redis.url, "q1", "web", maxReplicas=100, **FAST))
        self.push("q1", 2)
        wait_for(lambda: self.kube.replicas("web") == 2, 30, what="2 replicas")
        self.kubectl.run("annotate", "agentpool", "p1", "agentscaler.io/paused=true",
                         "agentscaler.io/paused-replicas=50")
        wait_for(lambda: self.kube.replicas("web") == 4, 30, what="held at the quota's 4")
        d.evaluated("p1", 10)
        self.assertEqual(self.kube.replicas("web"), 4)


class ConflictTest(AdoptWorld):
    def test_yields_to_an_hpa(self):
        """An HPA on the target (file mode, kube-sim serving HPAs): the
        pool writes nothing while it exists and scales once it is gone."""
        self.kube.create_deployment("web", 1)
        self.create(HPAS, hpa("web-hpa", "web"))
        seq = self.next_seq()
        d = self.start_daemon({"pools": [world.pool("p1", self.redis.url, "q1", "web",
                                                    maxReplicas=10, **FAST)]})
        self.push("q1", 4)
        wait_for(lambda: "default/p1: HorizontalPodAutoscaler web-hpa scales "
                 "Deployment/web; this pool yields and writes nothing" in d.logs(),
                 30, what="the conflict logged")
        d.evaluated("p1", 10)
        self.assertEqual(self.kube.replicas("web"), 1)
        self.assertEqual(self.scale_writes(seq, "web"), [])
        # One list and watches per resource, never a GET of an HPA.
        self.assertFalse([r for r in self.kube.requests(seq)
                          if r["method"] == "GET" and r["path"].startswith(HPAS + "/")])
        self.assertEqual(self.kube.api("DELETE", HPAS + "/web-hpa")[0], 200)
        wait_for(lambda: self.kube.replicas("web") == 4, 30, what="scaled once the HPA went")
        self.assertIn("Deployment web has no other owner now", d.logs())


@unittest.skipUnless(world.Kubectl.available(), "kubectl not installed")
class CrdConflictTest(CrdWorld):
    def test_yields_to_a_scaled_object(self):
        """A KEDA ScaledObject on the target (CRD installed, no KEDA):
        condition Conflict and a Warning Event; removed: the pool scales."""
        self.install_keda_crd()
        self.kube.create_deployment("web", 1)
        self.create(SOS, scaled_object("web-so", "web"))
        self.start_daemon(None)
        self.apply(world.pool("p1", self.redis.url, "q1", "web", maxReplicas=10, **FAST))
        self.push("q1", 3)
        c = wait_for(lambda: cond(self.pool_obj("p1"), "Conflict"), 30, what="Conflict")
        self.assertEqual(c["message"], "ScaledObject web-so scales Deployment/web; this pool "
                         "yields and writes nothing")
        ev = wait_for(lambda: self.events("p1", "TargetConflict"), 30, what="the Event")
        self.assertEqual(ev[0]["type"], "Warning")
        self.assertEqual(self.kube.replicas("web"), 1)
        self.assertEqual(self.kube.api("DELETE", SOS + "/web-so")[0], 200)
        wait_for(lambda: self.kube.replicas("web") == 3, 30, what="scaled once the SO went")
        wait_for(lambda: cond(self.pool_obj("p1"), "Conflict") is None, 30,
                 what="Conflict gone")
        wait_for(lambda: self.events("p1", "ConflictResolved"), 30, what="resolved Event")

    def test_older_agentpool_owns_the_target(self):
        """Two AgentPools on one target: the first by age then name owns
        it, the other yields with Conflict; once the owner goes, it
        scales."""
        self.kube.create_deployment("web", 0)
        self.start_daemon(None)
        self.apply(world.pool("a", self.redis.url, "qa", "web", maxReplicas=10, **FAST))
        self.apply(world.pool("b", self.redis.url, "qb", "web", maxReplicas=10, **FAST))
        c = wait_for(lambda: cond(self.pool_obj("b"), "Conflict"), 30, what="b: Conflict")
        self.assertEqual(c["message"], "AgentPool a (first by age, then name) scales "
                         "Deployment/web; this pool yields and writes nothing")
        self.push("qb", 2)           # only b's queue has work: a keeps web at 0
        wait_for(lambda: world.is_true(self.pool_obj("a"), "Ready"), 30, what="a Ready")
        self.assertIsNone(cond(self.pool_obj("a"), "Conflict"))
        self.assertEqual(self.kube.replicas("web"), 0)
        self.kubectl.run("delete", "agentpool", "a")
        wait_for(lambda: self.kube.replicas("web") == 2, 30, what="b scales")
        wait_for(lambda: cond(self.pool_obj("b"), "Conflict") is None, 30,
                 what="b: Conflict gone")


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


class CheckConfigYamlTest(unittest.TestCase):
    """--check-config on a multi-document YAML file as kubectl would apply
    it: every object judged, each error named by kind/namespace/name and
    line, other kinds listed as not checked, exit 2 when any is invalid."""

    DOC = """apiVersion: agentscaler.io/v1alpha1
kind: AgentPool
metadata: {name: good, namespace: team-a}
spec:
  source: {type: redis-list, address: "redis://127.0.0.1:1/0", queue: q}
  target: {kind: Deployment, name: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team-a}
---
apiVersion: agentscaler.io/v1alpha1
kind: AgentPool
metadata: {name: bad, namespace: team-a}
spec:
  source: {type: redis-list, address: "redis://127.0.0.1:1/0", queue: q}
  target: {kind: Deployment, name: web}
  scaling: {pollIntervalMs: 30}
---
kind: AgentQuota
metadata: {name: q, namespace: team-a}
spec: {maxSandboxes: 5}
"""

    def run_check(self, text):
        binary = os.environ.get("AGENTSCALER_BIN", os.path.join(world.ROOT,
                                                                "build/release/agentscaler"))
        wrapper = os.environ.get("AGENTSCALER_WRAPPER", "").split()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "pools.yaml")
            with open(path, "w") as f:
                f.write(text)
            return subprocess.run(wrapper + [binary, "--check-config", "--config", path],
                                  capture_output=True, text=True, timeout=120)

    def test_each_object_judged(self):
        r = self.run_check(self.DOC)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("AgentPool team-a/good (line 1): ok", r.stdout)
        self.assertIn("Deployment team-a/web (line 8): not an AgentPool or AgentQuota, "
                      "not checked", r.stdout)
        self.assertIn("AgentQuota team-a/q (line 20): ok", r.stdout)
        self.assertIn("AgentPool team-a/bad (line 12): spec.scaling.pollIntervalMs: 30 is in "
                      "milliseconds", r.stderr)
        self.assertIn("1 of 3 objects invalid", r.stderr)
        r = self.run_check(self.DOC.replace("pollIntervalMs: 30", "pollIntervalMs: 30000"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 pools, 1 quotas: ok", r.stdout)


@unittest.skipUnless(world.Kubectl.available(), "kubectl not installed")
class WalkthroughTest(CrdWorld):
    """README "From KEDA to agentscaler", step by step, on kube-sim (the
    ScaledObject stored, no KEDA running): convert, apply in shadow mode
    beside the ScaledObject, compare, then switch over."""

    def test_from_keda_to_agentscaler(self):
        self.install_keda_crd()
        self.kube.create_deployment("web", 1)
        host = self.redis.url.split("://", 1)[1].rsplit("/", 1)[0]
        so_yaml = """apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {name: web}
  pollingInterval: 1
  cooldownPeriod: 1
  maxReplicaCount: 10
  triggers:
  - type: redis
    metadata: {address: "%s", listName: jobs, listLength: "2"}
""" % host
        self.kubectl.run("apply", "--validate=false", "-f", "-", stdin=so_yaml)
        # 1. convert
        binary = os.environ.get("AGENTSCALER_BIN", os.path.join(world.ROOT,
                                                                "build/release/agentscaler"))
        wrapper = os.environ.get("AGENTSCALER_WRAPPER", "").split()
        r = subprocess.run(wrapper + [binary, "convert", "-"], input=so_yaml,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("shadow: true", r.stdout)
        self.assertIn("pollIntervalMs: 1000", r.stdout)
        # 2. apply in shadow mode beside the ScaledObject
        self.start_daemon(None)
        self.kubectl.run("apply", "--validate=false", "-f", "-", stdin=r.stdout)
        self.push("jobs", 8)
        c = wait_for(lambda: (lambda c: c if c and "to 4" in c["message"] else None)(
            cond(self.pool_obj("web"), "Shadow")), 30, what="would scale to 4")
        self.assertEqual(c["message"], "would scale Deployment/web to 4 (now 1); "
                         "nothing is written")
        c = wait_for(lambda: cond(self.pool_obj("web"), "Conflict"), 30, what="Conflict")
        self.assertIn("ScaledObject web scales Deployment/web", c["message"])
        self.assertEqual(self.kube.replicas("web"), 1)
        # 3. switch over: the ScaledObject goes, shadow is unset
        self.kubectl.run("delete", "scaledobject", "web")
        self.kubectl.run("patch", "agentpool", "web", "--type=merge",
                         "-p", json.dumps({"spec": {"shadow": False}}))
        wait_for(lambda: self.kube.replicas("web") == 4, 30, what="agentscaler scales")
        wait_for(lambda: cond(self.pool_obj("web"), "Conflict") is None and
                 cond(self.pool_obj("web"), "Shadow") is None, 30, what="conditions clear")
