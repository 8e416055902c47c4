"""agent-sandbox flows: warm bind, cold start, refill, lifecycle, Finished."""

import datetime
import time

from .ksim import EXT, SBX, SimTestCase, claim, cond, pool, template, wait_for

COLD_MS = 400


def iso(dt_s):
    return datetime.datetime.fromtimestamp(dt_s, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


class SandboxTest(SimTestCase):
    SIM_ARGS = ("--cold-start-ms", str(COLD_MS), "--warm-bind-ms", "50")
    N = 0

    def setUp(self):
        SandboxTest.N += 1
        self.ns = "sb%d" % SandboxTest.N
        self.sim.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": self.ns}})
        self.ext = EXT % self.ns
        self.sbx = SBX % self.ns

    def mk(self, kind, obj):
        c, o = self.sim.post(self.ext + kind, obj)
        self.assertEqual(c, 201, o)
        return o

    def get_claim(self, name):
        return self.sim.get(self.ext + "sandboxclaims/" + name)[1]

    def sandboxes(self):
        return self.sim.get(self.sbx)[1]["items"]

    def ready_pool(self, replicas=2, name="pool"):
        self.mk("sandboxtemplates", template())
        p = self.mk("sandboxwarmpools", pool(name, replicas))
        wait_for(lambda: (self.sim.get(self.ext + "sandboxwarmpools/" + name)[1]
                          .get("status") or {}).get("readyReplicas") == replicas,
                 msg="pool ready")
        return p

    def bound_ready(self, name):
        def ok():
            c = self.get_claim(name)
            r = cond(c, "Ready")
            return r and r["status"] == "True" and \
                (c.get("status") or {}).get("sandbox", {}).get("name") and c
        return wait_for(ok, msg="claim %s bound and Ready" % name)

    def test_pool_members_and_defaults(self):
        p = self.ready_pool(2)
        self.assertEqual(p["spec"]["replicas"], 2)
        st = self.sim.get(self.ext + "sandboxwarmpools/pool")[1]["status"]
        sbs = self.sandboxes()
        self.assertEqual(len(sbs), 2)
        for sb in sbs:
            md = sb["metadata"]
            self.assertRegex(md["name"], r"^pool-[bcdfghjklmnpqrstvwxz2456789]{5}$")
            self.assertEqual(md["ownerReferences"][0]["kind"], "SandboxWarmPool")
            self.assertTrue(md["ownerReferences"][0]["controller"])
            self.assertEqual(md["labels"]["agents.x-k8s.io/warm-pool-sandbox"],
                             st["selector"].split("=")[1])
            self.assertEqual(sb["spec"]["operatingMode"], "Running")
            self.assertEqual(sb["spec"]["shutdownPolicy"], "Retain")
            self.assertEqual(cond(sb, "Ready")["reason"], "DependenciesReady")
            self.assertTrue(sb["status"]["podIPs"])
        self.assertEqual((st["replicas"], st["readyReplicas"], st["observedGeneration"]),
                         (2, 2, 1))
        # NameHash is FNV-1a 32
        from importlib import import_module
        import paths
        paths.use("tools/kube-sim", first=False)
        self.assertEqual(import_module("kubesim.util").name_hash("pool"),
                         st["selector"].split("=")[1])
        # pool default replicas is 1
        p2 = self.mk("sandboxwarmpools", pool("p2", replicas=None))
        self.assertEqual(p2["spec"]["replicas"], 1)

    def test_warm_bind_and_refill(self):
        self.ready_pool(2)
        before = {s["metadata"]["name"] for s in self.sandboxes()}
        t0 = time.monotonic()
        self.mk("sandboxclaims", claim("c1"))
        c = self.bound_ready("c1")
        took = time.monotonic() - t0
        sbname = c["status"]["sandbox"]["name"]
        self.assertIn(sbname, before)  # a warm member, not a new one
        self.assertLess(took, COLD_MS / 1000.0 * 5)
        self.assertEqual(c["metadata"]["annotations"]["agents.x-k8s.io/sandbox-name"], sbname)
        self.assertTrue(c["status"]["sandbox"]["podIPs"])
        self.assertEqual(cond(c, "Ready")["reason"], "DependenciesReady")
        sb = self.sim.get(self.sbx + "/" + sbname)[1]
        md = sb["metadata"]
        self.assertEqual([(r["kind"], r["name"]) for r in md["ownerReferences"]],
                         [("SandboxClaim", "c1")])
        self.assertNotIn("agents.x-k8s.io/warm-pool-sandbox", md["labels"])
        self.assertEqual(md["labels"]["agents.x-k8s.io/launch-type"], "warm")
        self.assertEqual(md["labels"]["agents.x-k8s.io/claim-uid"], c["metadata"]["uid"])
        # the pool refills to 2 members
        def refilled():
            st = self.sim.get(self.ext + "sandboxwarmpools/pool")[1]["status"]
            return st["replicas"] == 2 and st["readyReplicas"] == 2
        wait_for(refilled, msg="refill")
        self.assertEqual(len(self.sandboxes()), 3)
        # releasing the claim garbage-collects its sandbox
        self.sim.delete(self.ext + "sandboxclaims/c1")
        wait_for(lambda: self.sim.get(self.sbx + "/" + sbname)[0] == 404, msg="sandbox GC")

    def test_cold_start_when_pool_empty(self):
        self.mk("sandboxtemplates", template())
        self.mk("sandboxwarmpools", pool("pool", 0))
        t0 = time.monotonic()
        self.mk("sandboxclaims", claim("cold1"))
        c = wait_for(lambda: (self.get_claim("cold1").get("status") or {}).get("sandbox"),
                     msg="sandbox assigned")
        self.assertEqual(c["name"], "cold1")  # cold start: named after the claim
        c = self.get_claim("cold1")
        self.assertEqual(cond(c, "Ready")["status"], "False")
        self.bound_ready("cold1")
        self.assertGreaterEqual(time.monotonic() - t0, COLD_MS / 1000.0 * 0.9)
        sb = self.sim.get(self.sbx + "/cold1")[1]
        self.assertEqual(sb["metadata"]["labels"]["agents.x-k8s.io/launch-type"], "cold")
        self.assertEqual(sb["metadata"]["ownerReferences"][0]["name"], "cold1")

    def test_env_forces_cold_start_and_policy(self):
        t = template()
        t["spec"]["envVarsInjectionPolicy"] = "Allowed"
        self.mk("sandboxtemplates", t)
        self.mk("sandboxwarmpools", pool("pool", 1))
        wait_for(lambda: (self.sim.get(self.ext + "sandboxwarmpools/pool")[1].get("status")
                          or {}).get("readyReplicas") == 1)
        self.mk("sandboxclaims", claim("envc", env=[{"name": "A", "value": "1"}]))
        c = self.bound_ready("envc")
        self.assertEqual(c["status"]["sandbox"]["name"], "envc")
        sb = self.sim.get(self.sbx + "/envc")[1]
        self.assertEqual(sb["spec"]["podTemplate"]["spec"]["containers"][0]["env"],
                         [{"name": "A", "value": "1"}])

    def test_env_rejected_by_default_template(self):
        self.ready_pool(1)
        self.mk("sandboxclaims", claim("rej", env=[{"name": "A", "value": "1"}]))
        r = wait_for(lambda: cond(self.get_claim("rej"), "Ready"))
        self.assertEqual((r["status"], r["reason"]), ("False", "EnvVarsInjectionRejected"))

    def test_terminal_reasons(self):
        self.mk("sandboxclaims", claim("np", pool_name="missing"))
        r = wait_for(lambda: cond(self.get_claim("np"), "Ready"))
        self.assertEqual((r["status"], r["reason"], r["message"]),
                         ("False", "WarmPoolNotFound", 'SandboxWarmPool "missing" not found'))
        self.mk("sandboxwarmpools", pool("notpl", 1, tpl="absent"))
        self.mk("sandboxclaims", claim("nt", pool_name="notpl"))
        r = wait_for(lambda: cond(self.get_claim("nt"), "Ready"))
        self.assertEqual((r["reason"], r["message"]),
                         ("TemplateNotFound", 'SandboxTemplate "absent" not found'))
        # creating the template heals both the pool and the claim
        self.mk("sandboxtemplates", template("absent"))
        self.bound_ready("nt")

    def test_finished_and_ttl(self):
        self.ready_pool(1)
        self.mk("sandboxclaims", claim("ttl", lifecycle={"ttlSecondsAfterFinished": 1,
                                                         "shutdownPolicy": "Delete"}))
        c = self.bound_ready("ttl")
        self.assertEqual(c["spec"]["lifecycle"]["shutdownPolicy"], "Delete")
        sbname = c["status"]["sandbox"]["name"]
        code, sb = self.sim.adm("POST", "/sandboxes/%s/%s/finish" % (self.ns, sbname),
                                {"phase": "Succeeded"})
        self.assertEqual(code, 200)
        self.assertEqual(cond(sb, "Finished")["status"], "True")
        self.assertEqual(cond(sb, "Ready")["reason"], "PodSucceeded")
        f = wait_for(lambda: cond(self.get_claim("ttl"), "Finished"), msg="Finished copied")
        self.assertEqual((f["status"], f["reason"]), ("True", "PodSucceeded"))
        self.assertEqual(cond(self.get_claim("ttl"), "Ready")["reason"], "PodSucceeded")
        wait_for(lambda: self.sim.get(self.ext + "sandboxclaims/ttl")[0] == 404, timeout=20,
                 msg="claim deleted after TTL")
        wait_for(lambda: self.sim.get(self.sbx + "/" + sbname)[0] == 404, msg="sandbox GC")

    def test_shutdown_time_retain(self):
        self.ready_pool(1)
        self.mk("sandboxclaims", claim("ret", lifecycle={"shutdownTime": iso(time.time() + 2)}))
        c = self.bound_ready("ret")
        self.assertEqual(c["spec"]["lifecycle"]["shutdownPolicy"], "Retain")
        sbname = c["status"]["sandbox"]["name"]
        r = wait_for(lambda: (lambda r: r and r["reason"] == "ClaimExpired" and r)(
            cond(self.get_claim("ret"), "Ready")), timeout=20, msg="ClaimExpired")
        self.assertEqual((r["status"], r["message"]),
                         ("False", "Claim expired. Sandbox cleanup initiated."))
        wait_for(lambda: self.sim.get(self.sbx + "/" + sbname)[0] == 404, msg="sandbox deleted")
        time.sleep(0.3)
        self.assertEqual(self.sim.get(self.ext + "sandboxclaims/ret")[0], 200)
        self.assertEqual(cond(self.get_claim("ret"), "Ready")["reason"], "ClaimExpired")

    def test_shutdown_time_delete_foreground(self):
        self.ready_pool(1)
        self.mk("sandboxclaims", claim("fgc", lifecycle={"shutdownTime": iso(time.time() + 2),
                                                         "shutdownPolicy": "DeleteForeground"}))
        c = self.bound_ready("fgc")
        sbname = c["status"]["sandbox"]["name"]
        w = self.sim.watch(self.ext + "sandboxclaims?watch=1&fieldSelector=metadata.name%3Dfgc"
                           "&resourceVersion=" + c["metadata"]["resourceVersion"], timeout=20)
        types = []
        while True:
            e = w.next(timeout=20)
            self.assertIsNotNone(e, types)
            types.append((e["type"], bool(e["object"]["metadata"].get("deletionTimestamp"))))
            if e["type"] == "DELETED":
                break
        w.close()
        self.assertIn(("MODIFIED", True), types)  # lingered with a deletionTimestamp
        self.assertEqual(self.sim.get(self.sbx + "/" + sbname)[0], 404)

    def test_scale_pool_via_scale_subresource(self):
        self.ready_pool(1)
        c, s = self.sim.patch(self.ext + "sandboxwarmpools/pool/scale", {"spec": {"replicas": 3}})
        self.assertEqual((c, s["spec"]["replicas"]), (200, 3))
        self.assertEqual(s["status"]["selector"].split("=")[0],
                         "agents.x-k8s.io/warm-pool-sandbox")
        wait_for(lambda: (self.sim.get(self.ext + "sandboxwarmpools/pool")[1]["status"]
                          ["readyReplicas"]) == 3, msg="3 ready")
        c, s = self.sim.patch(self.ext + "sandboxwarmpools/pool/scale", {"spec": {"replicas": 0}})
        self.assertEqual(s["spec"], {})
        wait_for(lambda: not self.sandboxes(), msg="scaled to zero")
        p = self.sim.get(self.ext + "sandboxwarmpools/pool")[1]
        # 0 is absent, as upstream writes it (int32 with omitempty)
        self.assertEqual((p["status"].get("replicas"), p["status"].get("readyReplicas"),
                          p["status"]["observedGeneration"]),
                         (None, None, p["metadata"]["generation"]))

    def test_suspend_and_expire_sandbox(self):
        self.mk("sandboxtemplates", template())
        sb = {"apiVersion": "agents.x-k8s.io/v1beta1", "kind": "Sandbox",
              "metadata": {"name": "solo"},
              "spec": {"podTemplate": {"spec": {"containers": [{"name": "a", "image": "i"}]}}}}
        c, o = self.sim.post(self.sbx, sb)
        self.assertEqual(c, 201)
        wait_for(lambda: (cond(self.sim.get(self.sbx + "/solo")[1], "Ready") or {})
                 .get("status") == "True")
        self.sim.patch(self.sbx + "/solo", {"spec": {"operatingMode": "Suspended"}})
        r = wait_for(lambda: (lambda r: r and r["reason"] == "SandboxSuspended" and r)(
            cond(self.sim.get(self.sbx + "/solo")[1], "Ready")))
        self.assertEqual(r["status"], "False")
        self.assertNotIn("podIPs", self.sim.get(self.sbx + "/solo")[1]["status"])
        self.sim.patch(self.sbx + "/solo", {"spec": {"operatingMode": "Running",
                                                     "shutdownTime": iso(time.time() + 1),
                                                     "shutdownPolicy": "Delete"}})
        wait_for(lambda: self.sim.get(self.sbx + "/solo")[0] == 404, timeout=20,
                 msg="expired sandbox deleted")
