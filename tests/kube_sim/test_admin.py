"""Admin port: fault injection, latency, outage, request log."""

import socket
import time

from .ksim import DEPLOYS, SimTestCase, deployment


class AdminTest(SimTestCase):
    def setUp(self):
        self.sim.adm("DELETE", "/faults")
        self.sim.adm("POST", "/latency", {"ms": 0})

    def test_fail_next_n_matching(self):
        self.sim.post(DEPLOYS % "default", deployment("f1"))
        c, r = self.sim.adm("POST", "/faults", {"method": "PATCH", "path": "deployments/f1",
                                                "code": 500, "count": 2})
        self.assertEqual(c, 200)
        p = DEPLOYS % "default" + "/f1/scale"
        # other methods and paths are not affected
        self.assertEqual(self.sim.get(p)[0], 200)
        for _ in range(2):
            self.assertStatus(self.sim.patch(p, {"spec": {"replicas": 2}}), 500,
                              "InternalError")
        self.assertEqual(self.sim.patch(p, {"spec": {"replicas": 2}})[0], 200)
        c, f = self.sim.adm("GET", "/faults")
        self.assertEqual((f["faults"][0]["remaining"], f["faults"][0]["fired"]), (0, 2))

    def test_429_retry_after_and_503(self):
        self.sim.adm("POST", "/faults", {"path": "^/api/v1/namespaces/default/configmaps$",
                                         "code": 429, "count": 1, "retryAfter": 3})
        c, h, body = self.sim.raw("GET", "/api/v1/namespaces/default/configmaps")
        self.assertEqual(c, 429)
        self.assertEqual(h["retry-after"], "3")
        import json
        st = json.loads(body)
        self.assertEqual((st["reason"], st["details"]["retryAfterSeconds"]),
                         ("TooManyRequests", 3))
        # APF style: plain text body
        self.sim.adm("POST", "/faults", {"code": 429, "count": 1, "body": "text"})
        c, h, body = self.sim.raw("GET", "/api/v1/namespaces/default/configmaps")
        self.assertEqual((c, h["retry-after"]), (429, "1"))
        self.assertEqual(body, b"Too many requests, please try again later.\n")
        self.assertTrue(h["content-type"].startswith("text/plain"))
        self.sim.adm("POST", "/faults", {"code": 503, "count": 1})
        c, h, body = self.sim.raw("GET", "/api/v1/namespaces/default/configmaps")
        self.assertEqual(c, 503)
        self.assertNotIn("retry-after", h)
        self.assertEqual(json.loads(body)["reason"], "ServiceUnavailable")
        self.assertEqual(self.sim.get("/api/v1/namespaces/default/configmaps")[0], 200)

    def test_latency(self):
        self.sim.adm("POST", "/latency", {"ms": 300, "method": "GET", "path": "/version"})
        t = time.monotonic()
        self.sim.get("/version")
        self.assertGreaterEqual(time.monotonic() - t, 0.29)
        t = time.monotonic()
        self.sim.get("/api")
        fast = time.monotonic() - t
        self.sim.adm("POST", "/latency", {"ms": 0})
        t = time.monotonic()
        self.sim.get("/version")
        self.assertLess(fast, 0.29)

    def test_pause_and_resume_same_port(self):
        self.sim.adm("POST", "/pause")
        try:
            with self.assertRaises(OSError):
                s = socket.create_connection((self.sim.host, self.sim.port), timeout=2)
                s.close()
        finally:
            self.sim.adm("POST", "/resume")
        self.assertEqual(self.sim.get("/api")[0], 200)

    def test_pause_resets_open_watches(self):
        w = self.sim.watch("/api/v1/namespaces/default/configmaps?watch=1")
        self.sim.adm("POST", "/pause")
        try:
            self.assertIsNone(w.next(timeout=5))
        finally:
            self.sim.adm("POST", "/resume")
            w.close()

    def test_request_log(self):
        c, r = self.sim.adm("GET", "/requests?since=0")
        since = r["next"]
        t0m, t0w = time.monotonic(), time.time()
        self.sim.get("/api/v1/namespaces/default/configmaps?limit=3")
        self.sim.get(DEPLOYS % "default" + "/missing")
        c, r = self.sim.adm("GET", "/requests?since=%d" % since)
        reqs = r["requests"]
        self.assertEqual([(x["method"], x["path"], x["code"]) for x in reqs],
                         [("GET", "/api/v1/namespaces/default/configmaps", 200),
                          ("GET", DEPLOYS % "default" + "/missing", 404)])
        self.assertEqual(reqs[0]["query"], "limit=3")
        self.assertEqual(reqs[0]["user"], "system:anonymous")
        self.assertEqual(reqs[1]["seq"], reqs[0]["seq"] + 1)
        self.assertGreaterEqual(reqs[0]["mono"], t0m)
        self.assertLessEqual(reqs[0]["mono"], reqs[1]["mono"])
        self.assertLess(abs(reqs[0]["wall"] - t0w), 5)
        self.assertEqual(r["next"], reqs[1]["seq"] + 1)
        self.sim.adm("DELETE", "/requests")
        c, r = self.sim.adm("GET", "/requests?since=0")
        self.assertEqual(r["requests"], [])

    def test_request_log_filtered(self):
        c, r = self.sim.adm("GET", "/requests?since=0")
        since = r["next"]
        self.sim.post(DEPLOYS % "default", deployment("rlf"))
        p = DEPLOYS % "default" + "/rlf/scale"
        self.sim.get(p)
        self.assertEqual(self.sim.patch(p, {"spec": {"replicas": 2}})[0], 200)
        self.sim.get(DEPLOYS % "default" + "/missing")
        c, r = self.sim.adm("GET", "/requests?since=%d&method=patch&path=/rlf/scale" % since)
        self.assertEqual([(x["method"], x["path"], x["code"]) for x in r["requests"]],
                         [("PATCH", p, 200)])
        # next counts every request, matching or not
        c, all_ = self.sim.adm("GET", "/requests?since=%d" % since)
        self.assertEqual(r["next"], all_["requests"][-1]["seq"] + 1)
        self.assertEqual(len(all_["requests"]), 4)
        c, r = self.sim.adm("GET", "/requests?since=%d&path=/rlf/scale" % since)
        self.assertEqual([x["method"] for x in r["requests"]], ["GET", "PATCH"])

    def test_create_objects(self):
        objs = [deployment("bulk-%d" % i) for i in range(50)]
        objs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bulk-ns"}})
        objs.append(dict(deployment("bulk-in-ns"), metadata={"name": "bulk-in-ns",
                                                               "namespace": "bulk-ns"}))
        objs.append(deployment("bulk-0"))                     # already exists
        objs.append({"apiVersion": "apps/v1", "kind": "Nope", "metadata": {"name": "x"}})
        c, r = self.sim.adm("POST", "/objects", {"items": objs})
        self.assertEqual(c, 200)
        self.assertEqual((r["created"], r["failed"]), (52, 2))
        self.assertIn("already exists", r["errors"][0])
        self.assertIn("no kind Nope", r["errors"][1])
        c, lst = self.sim.get(DEPLOYS % "default")
        names = {o["metadata"]["name"] for o in lst["items"]}
        self.assertTrue({"bulk-%d" % i for i in range(50)} <= names)
        c, o = self.sim.get(DEPLOYS % "bulk-ns" + "/bulk-in-ns/scale")
        self.assertEqual((c, o["spec"]["replicas"]), (200, 1))
        c, r = self.sim.adm("POST", "/objects", [deployment("bulk-list")])
        self.assertEqual((r["created"], r["failed"]), (1, 0))
        c, r = self.sim.adm("POST", "/objects", {"items": 3})
        self.assertEqual(r["created"], 0)

    def test_request_log_code_is_there_when_the_client_has_the_response(self):
        # The code used to be set after the response bytes were written, so
        # a client that asked /requests right away could see code None.
        for _ in range(200):
            c, r = self.sim.adm("GET", "/requests?since=0")
            since = r["next"]
            self.assertEqual(self.sim.get(DEPLOYS % "default" + "/missing")[0], 404)
            c, r = self.sim.adm("GET", "/requests?since=%d" % since)
            self.assertEqual([x["code"] for x in r["requests"]], [404])

    def test_admin_unreachable_from_api_port(self):
        for p in ("/faults", "/pause", "/requests", "/drop-watches", "/compact"):
            c, body = self.sim.req("POST" if p == "/pause" else "GET", p,
                                   {} if p == "/pause" else None)
            self.assertEqual(c, 404)
        # the API port's /healthz is the apiserver's plain "ok", not the admin JSON
        c, h, body = self.sim.raw("GET", "/healthz")
        self.assertEqual((c, body), (200, b"ok"))
        self.assertEqual(self.sim.get("/api")[0], 200)
        c, h = self.sim.adm("GET", "/healthz")
        self.assertEqual((c, h["ok"]), (200, True))

    def test_every_response_has_apf_headers(self):
        for path in ("/api", DEPLOYS % "default" + "/missing"):
            c, h, _b = self.sim.raw("GET", path)
            self.assertIn("x-kubernetes-pf-flowschema-uid", h)
            self.assertIn("x-kubernetes-pf-prioritylevel-uid", h)


class QuotaConflictFaultTest(SimTestCase):
    def test_injected_resourcequota_conflict(self):
        msg = ('Operation cannot be fulfilled on resourcequotas "q": the object has been '
               'modified; please apply your changes to the latest version and try again')
        self.sim.adm("POST", "/faults", {"method": "POST", "path": "/configmaps$", "code": 409,
                                         "reason": "Conflict", "message": msg,
                                         "details": {"name": "q", "kind": "resourcequotas"}})
        body = self.assertStatus(self.sim.post("/api/v1/namespaces/default/configmaps",
                                               {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": "x"}}),
                                 409, "Conflict", msg)
        self.assertEqual(body["details"], {"name": "q", "kind": "resourcequotas"})
