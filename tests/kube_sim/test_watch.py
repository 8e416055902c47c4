"""Watch semantics: starting points, selectors, bookmarks, timeouts, 410."""

import time

from .ksim import SimTestCase, configmap

NS = "/api/v1/namespaces"


class WatchTest(SimTestCase):
    SIM_ARGS = ("--history", "50", "--bookmark-interval-ms", "300")

    def ns(self, name):
        self.sim.post(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return "/api/v1/namespaces/%s/configmaps" % name

    def test_synthetic_added_then_changes(self):
        base = self.ns("w1")
        self.sim.post(base, configmap("a"))
        self.sim.post(base, configmap("b"))
        for n, rv in enumerate(("", "&resourceVersion=0")):
            w = self.sim.watch(base + "?watch=1" + rv)
            self.assertEqual(w.status, 200)
            e1, e2 = w.next(), w.next()
            self.assertEqual([(e1["type"], e1["object"]["metadata"]["name"]),
                              (e2["type"], e2["object"]["metadata"]["name"])],
                             [("ADDED", "a"), ("ADDED", "b")])
            self.assertEqual(e1["object"]["kind"], "ConfigMap")
            c, o = self.sim.patch(base + "/a", {"data": {"k": str(n)}})
            e = w.next()
            self.assertEqual((e["type"], e["object"]["data"]["k"]), ("MODIFIED", str(n)))
            self.assertEqual(e["object"]["metadata"]["resourceVersion"],
                             o["metadata"]["resourceVersion"])
            w.close()
        self.sim.delete(base + "/b")

    def test_exact_start_and_deleted_last_state(self):
        base = self.ns("w2")
        c, a = self.sim.post(base, configmap("a"))
        rv = a["metadata"]["resourceVersion"]
        c, b = self.sim.post(base, configmap("b"))
        self.sim.patch(base + "/a", {"data": {"k": "x"}})
        c, st = self.sim.delete(base + "/b")
        w = self.sim.watch(base + "?watch=true&resourceVersion=" + rv)
        evs = [w.next() for _ in range(3)]
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
                         [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")])
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
        self.assertEqual(rvs, sorted(rvs))
        self.assertGreater(rvs[2], int(b["metadata"]["resourceVersion"]))
        self.assertEqual(evs[2]["object"]["data"], {"k": "v"})
        w.close()

    def test_selector_enter_and_leave(self):
        base = self.ns("w3")
        c, a = self.sim.post(base, configmap("a", {"role": "x"}))
        w = self.sim.watch(base + "?watch=1&labelSelector=role%3Dy&resourceVersion="
                           + a["metadata"]["resourceVersion"])
        c, o = self.sim.patch(base + "/a", {"metadata": {"labels": {"role": "y"}}})
        e = w.next()
        self.assertEqual(e["type"], "ADDED")
        c, o2 = self.sim.patch(base + "/a", {"metadata": {"labels": {"role": "z"}}})
        e = w.next()
        self.assertEqual(e["type"], "DELETED")
        self.assertEqual(e["object"]["metadata"]["labels"], {"role": "y"})
        self.assertEqual(e["object"]["metadata"]["resourceVersion"],
                         o2["metadata"]["resourceVersion"])
        w.close()
        # single object by name (the agent-sandbox SDK pattern)
        w = self.sim.watch(base + "?watch=1&fieldSelector=metadata.name%3Db")
        self.sim.post(base, configmap("c"))
        self.sim.post(base, configmap("b"))
        e = w.next()
        self.assertEqual((e["type"], e["object"]["metadata"]["name"]), ("ADDED", "b"))
        w.close()

    def test_name_pinned_watch_sees_only_its_object(self):
        # the store hands a metadata.name watch only that name's events (an index, not
        # a filter over every event): changes, the DELETED, other namespaces excluded
        base = self.ns("w5")
        other = self.ns("w5b")
        c, a = self.sim.post(base, configmap("pin"))
        rv = a["metadata"]["resourceVersion"]
        w = self.sim.watch(base + "?watch=1&fieldSelector=metadata.name%3Dpin&resourceVersion="
                           + rv)
        allns = self.sim.watch("/api/v1/configmaps?watch=1&fieldSelector=metadata.name%3Dpin"
                               "&resourceVersion=" + rv)
        for i in range(20):
            self.sim.post(base, configmap("noise%d" % i))
        self.sim.post(other, configmap("pin"))
        self.sim.patch(base + "/pin", {"data": {"k": "1"}})
        self.sim.delete(base + "/pin")
        evs = [w.next() for _ in range(2)]
        self.assertEqual([(e["type"], e["object"]["metadata"]["namespace"]) for e in evs],
                         [("MODIFIED", "w5"), ("DELETED", "w5")])
        self.assertEqual(evs[0]["object"]["data"], {"k": "1"})
        evs = [allns.next() for _ in range(3)]
        self.assertEqual([(e["type"], e["object"]["metadata"]["namespace"]) for e in evs],
                         [("ADDED", "w5b"), ("MODIFIED", "w5"), ("DELETED", "w5")])
        w.close()
        allns.close()

    def test_bookmarks_and_timeout(self):
        base = self.ns("w4")
        c, l = self.sim.get(base)
        t0 = time.monotonic()
        w = self.sim.watch(base + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=2"
                           "&resourceVersion=" + l["metadata"]["resourceVersion"])
        c, o = self.sim.post(base, configmap("a"))
        e = w.next()
        self.assertEqual(e["type"], "ADDED")
        e = w.next()
        self.assertEqual(e["type"], "BOOKMARK")
        self.assertEqual(e["object"]["kind"], "ConfigMap")
        self.assertEqual(e["object"]["apiVersion"], "v1")
        self.assertEqual(list(e["object"]["metadata"]), ["resourceVersion"])
        self.assertGreaterEqual(int(e["object"]["metadata"]["resourceVersion"]),
                                int(o["metadata"]["resourceVersion"]))
        while True:
            e = w.next(timeout=10)
            if e is None:
                break
            self.assertEqual(e["type"], "BOOKMARK")
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)
        w.close()

    def test_too_old_gives_410_error_event(self):
        base = self.ns("w5")
        c, a = self.sim.post(base, configmap("a"))
        old = a["metadata"]["resourceVersion"]
        for i in range(60):  # history is 50 events
            self.sim.patch(base + "/a", {"data": {"k": str(i)}})
        w = self.sim.watch(base + "?watch=1&resourceVersion=" + old)
        self.assertEqual(w.status, 200)
        e = w.next()
        self.assertEqual(e["type"], "ERROR")
        st = e["object"]
        self.assertEqual((st["kind"], st["code"], st["reason"], st["status"]),
                         ("Status", 410, "Expired", "Failure"))
        self.assertRegex(st["message"], r"^too old resource version: %s \(\d+\)$" % old)
        self.assertIsNone(w.next())
        w.close()
        # an exact list at that RV is a plain 410
        self.assertStatus(self.sim.get(base + "?resourceVersion=%s&resourceVersionMatch=Exact"
                                       % old), 410, "Expired")

    def test_compact_forces_410_on_resume(self):
        base = self.ns("w6")
        c, a = self.sim.post(base, configmap("a"))
        w = self.sim.watch(base + "?watch=1&resourceVersion=" + a["metadata"]["resourceVersion"])
        self.sim.patch(base + "/a", {"data": {"k": "1"}})
        last = w.next()["object"]["metadata"]["resourceVersion"]
        c, r = self.sim.adm("POST", "/drop-watches")
        self.assertGreaterEqual(r["dropped"], 1)
        self.assertIsNone(w.next())
        w.close()
        self.sim.adm("POST", "/compact")
        self.sim.patch(base + "/a", {"data": {"k": "2"}})
        w = self.sim.watch(base + "?watch=1&resourceVersion=" + last)
        e = w.next()
        self.assertEqual((e["type"], e["object"]["code"]), ("ERROR", 410))
        w.close()

    def test_initial_events_end_bookmark(self):
        base = self.ns("w7")
        self.sim.post(base, configmap("a"))
        w = self.sim.watch(base + "?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                           "&resourceVersionMatch=NotOlderThan")
        e = w.next()
        self.assertEqual(e["type"], "ADDED")
        e = w.next()
        self.assertEqual(e["type"], "BOOKMARK")
        self.assertEqual(e["object"]["metadata"]["annotations"],
                         {"k8s.io/initial-events-end": "true"})
        w.close()

    def test_watch_bad_selector_is_400(self):
        self.assertStatus(self.sim.get("/api/v1/namespaces/default/configmaps?watch=1"
                                       "&fieldSelector=data.k%3Dv"), 400, "BadRequest")
