"""agent-sandbox controllers with many objects: the indexed, event-driven controller must
keep the semantics the full-scan one had (oldest Ready member first, exact refill,
scale-down order, waiting claims, per-claim watches)."""

import threading
import time
import unittest

from .ksim import EXT, ROOT, SBX, SimTestCase, claim, cond, pool, template, wait_for

COLD_MS = 400
L_POOL = "agents.x-k8s.io/warm-pool-sandbox"


class SandboxScaleTest(SimTestCase):
    SIM_ARGS = ("--cold-start-ms", str(COLD_MS), "--warm-bind-ms", "20",
                "--history", "100000")
    N = 0

    def setUp(self):
        SandboxScaleTest.N += 1
        self.ns = "sc%d" % SandboxScaleTest.N
        self.sim.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": self.ns}})
        self.ext = EXT % self.ns
        self.sbx = SBX % self.ns

    def mk(self, kind, obj, sim=None):
        c, o = (sim or self.sim).post(self.ext + kind, obj)
        self.assertEqual(c, 201, o)
        return o

    def pool_status(self, name="pool"):
        return self.sim.get(self.ext + "sandboxwarmpools/" + name)[1].get("status") or {}

    def sandboxes(self):
        return self.sim.get(self.sbx)[1]["items"]

    def creation_order(self, n, name="pool"):
        """Creates template + pool of n and returns member names in creation order, read
        from the ADDED events of a watch opened before the pool existed."""
        rv = self.sim.get(self.sbx)[1]["metadata"]["resourceVersion"]
        w = self.sim.watch(self.sbx + "?watch=1&resourceVersion=" + rv, timeout=30)
        self.mk("sandboxtemplates", template())
        self.mk("sandboxwarmpools", pool(name, n))
        order = []
        while len(order) < n:
            e = w.next(timeout=30)
            self.assertIsNotNone(e, "watch ended after %d members" % len(order))
            if e["type"] == "ADDED":
                order.append(e["object"]["metadata"]["name"])
        w.close()
        wait_for(lambda: self.pool_status(name).get("readyReplicas") == n, timeout=30,
                 msg="%d members ready" % n)
        return order

    def bound(self, name):
        def ok():
            c = self.sim.get(self.ext + "sandboxclaims/" + name)[1]
            r = cond(c, "Ready")
            sb = ((c.get("status") or {}).get("sandbox") or {}).get("name")
            return r and r["status"] == "True" and sb
        return wait_for(ok, timeout=30, msg="claim %s bound and Ready" % name)

    def create_claims(self, names, threads=4):
        """Creates the claims from several keep-alive clients at once."""
        errs = []
        todo = list(names)
        lock = threading.Lock()

        def worker():
            sim = self.sim.client()
            try:
                while True:
                    with lock:
                        if not todo:
                            return
                        nm = todo.pop(0)
                    c, o = sim.post(self.ext + "sandboxclaims", claim(nm))
                    if c != 201:
                        errs.append((nm, c, o))
            finally:
                sim.close()

        ts = [threading.Thread(target=worker) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errs, [])

    def test_oldest_ready_member_first_with_many_members(self):
        order = self.creation_order(40)
        # one at a time: each claim gets the oldest member still in the pool
        for i in range(10):
            self.mk("sandboxclaims", claim("seq%d" % i))
            self.assertEqual(self.bound("seq%d" % i), order[i], "claim %d" % i)
        # 15 at once: together they take exactly the 15 oldest remaining members
        # (the refills made meanwhile are newer, Ready or not)
        names = ["par%d" % i for i in range(15)]
        self.create_claims(names)
        got = {self.bound(nm) for nm in names}
        self.assertEqual(got, set(order[10:25]))

    def test_refill_is_exact_after_many_adoptions(self):
        n, m = 20, 30
        order = self.creation_order(n)
        names = ["r%d" % i for i in range(m)]
        self.create_claims(names, threads=6)
        got = [self.bound(nm) for nm in names]
        self.assertEqual(len(set(got)), m)
        # the 10 claims beyond the pool waited for refilled members (IP-less for
        # COLD_MS, under the 2 s grace): every claim was bound warm
        self.assertEqual([g for g in got if g in names], [])
        self.assertTrue(set(order) <= set(got))
        wait_for(lambda: (lambda s: s.get("replicas") == n and s.get("readyReplicas") == n)(
            self.pool_status()), timeout=30, msg="pool refilled to %d" % n)
        # settle past a cold start: no over-creation, no late extra member
        time.sleep(COLD_MS / 1000.0 * 2)
        sbs = self.sandboxes()
        members = [s for s in sbs if L_POOL in s["metadata"].get("labels", {})]
        self.assertEqual(len(members), n)
        self.assertEqual(len(sbs), n + m)
        st = self.pool_status()
        self.assertEqual((st["replicas"], st["readyReplicas"]), (n, n))
        # releasing every claim collects exactly their sandboxes
        for nm in names:
            self.assertEqual(self.sim.delete(self.ext + "sandboxclaims/" + nm)[0], 200)
        wait_for(lambda: len(self.sandboxes()) == n, timeout=30, msg="claimed sandboxes GC")
        self.assertEqual({s["metadata"]["name"] for s in self.sandboxes()},
                         {s["metadata"]["name"] for s in members})

    def test_scale_down_removes_newest_first(self):
        order = self.creation_order(6)
        c, _ = self.sim.patch(self.ext + "sandboxwarmpools/pool/scale",
                              {"spec": {"replicas": 2}})
        self.assertEqual(c, 200)
        wait_for(lambda: len(self.sandboxes()) == 2, msg="scaled down to 2")
        self.assertEqual(sorted(s["metadata"]["name"] for s in self.sandboxes()),
                         sorted(order[:2]))
        st = wait_for(lambda: (lambda s: s.get("replicas") == 2 and s)(self.pool_status()))
        self.assertEqual(st["readyReplicas"], 2)

    def test_claim_before_pool_and_template_then_binds(self):
        # a claim that found no pool is woken by the pool's creation, then by the template
        self.mk("sandboxclaims", claim("early"))
        r = wait_for(lambda: cond(self.sim.get(self.ext + "sandboxclaims/early")[1], "Ready"))
        self.assertEqual(r["reason"], "WarmPoolNotFound")
        self.mk("sandboxwarmpools", pool("pool", 2))
        r = wait_for(lambda: (lambda r: r and r["reason"] == "TemplateNotFound" and r)(
            cond(self.sim.get(self.ext + "sandboxclaims/early")[1], "Ready")))
        self.mk("sandboxtemplates", template())
        name = self.bound("early")
        self.assertTrue(name.startswith("pool-") or name == "early")

    def test_deleted_sandbox_under_live_claim_is_replaced(self):
        self.creation_order(3)
        self.mk("sandboxclaims", claim("heal"))
        first = self.bound("heal")
        self.assertEqual(self.sim.delete(self.sbx + "/" + first)[0], 200)
        second = wait_for(lambda: (lambda n: n != first and n)(self.bound("heal")),
                          msg="claim re-bound")
        self.assertNotEqual(first, second)
        self.assertEqual(self.sim.get(self.sbx + "/" + second)[1]["metadata"]
                         ["ownerReferences"][0]["name"], "heal")

    def test_per_claim_watches_each_see_their_claim(self):
        self.creation_order(12)
        names = ["w%d" % i for i in range(12)]
        rv = self.sim.get(self.ext + "sandboxclaims")[1]["metadata"]["resourceVersion"]
        watches = {nm: self.sim.watch(self.ext + "sandboxclaims?watch=1&fieldSelector="
                                      "metadata.name%%3D%s&resourceVersion=%s" % (nm, rv),
                                      timeout=30) for nm in names}
        self.create_claims(names)
        for nm, w in watches.items():
            while True:
                e = w.next(timeout=30)
                self.assertIsNotNone(e, nm)
                self.assertEqual(e["object"]["metadata"]["name"], nm)
                r = cond(e["object"], "Ready")
                if r and r["status"] == "True" and \
                        (e["object"].get("status") or {}).get("sandbox"):
                    break
            w.close()


class TimerHeapTest(unittest.TestCase):
    """In-process: timers of deleted objects do not pile up (a claim's shutdownTime may be
    hours away, and a benchmark deletes thousands of claims a minute)."""

    def test_stale_timers_are_dropped(self):
        import paths
        paths.use("tools/kube-sim", first=False)
        from kubesim.agentsandbox_ctrl import SandboxControllers
        from kubesim.api import Api
        sc = SandboxControllers(Api(history=10), 2.0, 0.05)
        far = time.monotonic() + 3600
        for i in range(20000):
            key = ("claim", "ns", "c%d" % i)
            sc._timer(key, far + i)
            sc._timer(key, far + i - 0.5)  # an earlier due time replaces the first
            if i % 10:
                sc._untime(key)  # the claim was deleted
        self.assertEqual(len(sc.due), 2000)
        self.assertLessEqual(len(sc.timers), 2 * len(sc.due) + 1024)
        # the live ones still fire, in order
        self.assertEqual(sc.timers and min(sc.timers)[2], ("claim", "ns", "c0"))
        self.assertEqual(sorted(k for _d, _s, k in sc.timers if sc.due.get(k) == _d),
                         sorted(sc.due))
