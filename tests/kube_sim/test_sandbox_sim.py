"""agent-sandbox behaviours of a real cluster that kube-sim hides by default (issue
12), driven through the admin API: a pod evicted after the claim is Ready (transient
Finished/PodFailed, then a new pod under the same name), pod-level faults that show
on the claim only as non-terminal reasons, and the pod's graceful termination that a
foreground delete waits for."""

from .ksim import EXT, SBX, SimTestCase, claim, cond, pool, template, wait_for


class SandboxSimTest(SimTestCase):
    SIM_ARGS = ("--cold-start-ms", "200", "--warm-bind-ms", "20")
    N = 0

    def setUp(self):
        SandboxSimTest.N += 1
        self.ns = "ss%d" % SandboxSimTest.N
        self.sim.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": self.ns}})
        self.ext = EXT % self.ns
        self.sbx = SBX % self.ns

    def tearDown(self):
        code, _ = self.sim.adm("POST", "/sandbox-sim", {
            "reconcilerError": None, "unschedulable": False, "podTerminationMs": 0})
        self.assertEqual(code, 200)

    def mk(self, kind, obj):
        c, o = self.sim.post(self.ext + kind, obj)
        self.assertEqual(c, 201, o)
        return o

    def get_claim(self, name):
        return self.sim.get(self.ext + "sandboxclaims/" + name)[1]

    def reason(self, name):
        r = cond(self.get_claim(name), "Ready")
        return r and r["reason"]

    def bound_ready(self, name):
        def ok():
            c = self.get_claim(name)
            r = cond(c, "Ready")
            return r and r["status"] == "True" and \
                (c.get("status") or {}).get("sandbox", {}).get("name") and c
        return wait_for(ok, msg="claim %s bound and Ready" % name)

    def test_defaults_off(self):
        code, st = self.sim.adm("GET", "/sandbox-sim")
        self.assertEqual((code, st), (200, {"reconcilerError": None, "unschedulable": False,
                                            "podTerminationMs": 0.0}))

    def test_eviction_is_transient_podfailed(self):
        self.mk("sandboxtemplates", template())
        self.mk("sandboxwarmpools", pool("pool", 1))
        self.mk("sandboxclaims", claim("ev"))
        c = self.bound_ready("ev")
        sbname = c["status"]["sandbox"]["name"]
        ip = c["status"]["sandbox"]["podIPs"]
        code, sb = self.sim.adm("POST", "/sandboxes/%s/%s/evict" % (self.ns, sbname),
                                {"recreateMs": 300})
        self.assertEqual(code, 200)
        self.assertEqual((cond(sb, "Finished")["reason"], cond(sb, "Ready")["reason"]),
                         ("PodFailed", "PodFailed"))
        w = self.sim.watch(self.ext + "sandboxclaims?watch=1&fieldSelector=metadata.name%3Dev"
                           "&resourceVersion=" + c["metadata"]["resourceVersion"], timeout=20)
        seen = []
        while True:
            e = w.next(timeout=20)
            self.assertIsNotNone(e, seen)
            o = e["object"]
            f, r = cond(o, "Finished"), cond(o, "Ready")
            seen.append((f and f["reason"], r and r["reason"]))
            if r and r["status"] == "True":
                break
        w.close()
        self.assertIn(("PodFailed", "PodFailed"), seen)
        self.assertIsNone(cond(o, "Finished"))   # the new pod is not terminal
        self.assertEqual(o["status"]["sandbox"]["name"], sbname)   # same Sandbox
        self.assertNotEqual(o["status"]["sandbox"]["podIPs"], ip)   # a new pod

    def test_reconciler_error_then_recovers(self):
        code, st = self.sim.adm("POST", "/sandbox-sim", {
            "reconcilerError": 'pods "c" is forbidden: exceeded quota: compute'})
        self.assertEqual(code, 200)
        self.mk("sandboxtemplates", template())
        self.mk("sandboxwarmpools", pool("pool", 0))
        self.mk("sandboxclaims", claim("q"))
        wait_for(lambda: self.reason("q") == "ReconcilerError", msg="ReconcilerError")
        r = cond(self.get_claim("q"), "Ready")
        self.assertEqual(r["status"], "False")
        self.assertIn("exceeded quota", r["message"])
        self.assertTrue(r["message"].startswith("Error seen: "))
        self.sim.adm("POST", "/sandbox-sim", {"reconcilerError": None})
        self.bound_ready("q")

    def test_unschedulable_then_recovers(self):
        self.sim.adm("POST", "/sandbox-sim", {"unschedulable": True})
        self.mk("sandboxtemplates", template())
        self.mk("sandboxwarmpools", pool("pool", 0))
        self.mk("sandboxclaims", claim("u"))
        wait_for(lambda: self.reason("u") == "DependenciesNotReady" and
                 self.sim.get(self.sbx + "/u")[0] == 200, msg="DependenciesNotReady")
        sc = cond(self.sim.get(self.sbx + "/u")[1], "PodScheduled")
        self.assertEqual((sc["status"], sc["reason"]), ("False", "Unschedulable"))
        self.sim.adm("POST", "/sandbox-sim", {"unschedulable": False})
        self.bound_ready("u")

    def test_pod_termination_foreground_and_background(self):
        self.sim.adm("POST", "/sandbox-sim", {"podTerminationMs": 1500})
        self.mk("sandboxtemplates", template())
        self.mk("sandboxwarmpools", pool("pool", 0))
        for name in ("fg", "bg"):
            self.mk("sandboxclaims", claim(name))
            self.bound_ready(name)
        # foreground: the claim lingers until its Sandbox (and pod) are gone
        code, _ = self.sim.delete(self.ext + "sandboxclaims/fg",
                                  {"propagationPolicy": "Foreground"})
        self.assertEqual(code, 200)
        sb = wait_for(lambda: (lambda c, o: c == 200 and
                               o["metadata"].get("deletionTimestamp") and o)(
            *self.sim.get(self.sbx + "/fg")), msg="sandbox terminating")
        self.assertIn("kube-sim.x-k8s.io/pod-termination", sb["metadata"]["finalizers"])
        self.assertEqual(self.sim.get(self.ext + "sandboxclaims/fg")[0], 200)
        wait_for(lambda: self.sim.get(self.ext + "sandboxclaims/fg")[0] == 404,
                 msg="claim gone")
        self.assertEqual(self.sim.get(self.sbx + "/fg")[0], 404)
        # background: the claim goes at once, its Sandbox is still terminating
        code, _ = self.sim.delete(self.ext + "sandboxclaims/bg",
                                  {"propagationPolicy": "Background"})
        self.assertEqual(code, 200)
        self.assertEqual(self.sim.get(self.ext + "sandboxclaims/bg")[0], 404)
        self.assertEqual(self.sim.get(self.sbx + "/bg")[0], 200)
        wait_for(lambda: self.sim.get(self.sbx + "/bg")[0] == 404, msg="sandbox gone")


class PodIpRangeTest(SimTestCase):
    """--pod-ip-range (issue 16): pod IPs from the given network, on
    loopback in the tests that serve each pod at its IP (the agent
    protocol's handoff via podIP); without it, 10.244.0.0 up as before."""

    SIM_ARGS = ("--cold-start-ms", "50", "--warm-bind-ms", "10",
                "--pod-ip-range", "127.77.9.0/29")

    def test_ips_from_the_range(self):
        ext = EXT % "default"
        self.assertEqual(self.sim.post(ext + "sandboxtemplates", template())[0], 201)
        self.assertEqual(self.sim.post(ext + "sandboxwarmpools", pool("pool", 3))[0], 201)

        def ips():
            items = self.sim.get(SBX % "default")[1].get("items") or []
            got = [((s.get("status") or {}).get("podIPs") or [None])[0] for s in items]
            return sorted(got) if len(got) == 3 and all(got) else None
        # From the first address after the network's up.
        self.assertEqual(wait_for(ips, msg="3 pod IPs"),
                         ["127.77.9.1", "127.77.9.2", "127.77.9.3"])
