"""CRUD semantics of built-in resources: RVs, conflicts, patches, errors,
selectors, paging, subresources."""

import base64
import json
import socket

from .ksim import DEPLOYS, SimTestCase, configmap, deployment, wait_for

CM = "/api/v1/namespaces/default/configmaps"


class CoreTest(SimTestCase):
    SIM_ARGS = ("--replica-delay-ms", "100")

    def test_create_get_and_global_rv(self):
        c, a = self.sim.post(CM, configmap("rv-a"))
        self.assertEqual(c, 201)
        c, b = self.sim.post(DEPLOYS % "default", deployment("rv-b"))
        self.assertEqual(c, 201)
        ra, rb = int(a["metadata"]["resourceVersion"]), int(b["metadata"]["resourceVersion"])
        self.assertGreater(rb, ra)
        self.assertEqual(b["metadata"]["generation"], 1)
        self.assertNotIn("generation", a["metadata"])
        self.assertRegex(a["metadata"]["creationTimestamp"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(len(a["metadata"]["uid"]), 36)
        c, got = self.sim.get(CM + "/rv-a")
        self.assertEqual(c, 200)
        self.assertEqual(got["data"], {"k": "v"})
        # a list's RV is the current global counter
        c, lst = self.sim.get(CM)
        self.assertEqual(lst["kind"], "ConfigMapList")
        self.assertGreaterEqual(int(lst["metadata"]["resourceVersion"]), rb)
        self.assertNotIn("kind", lst["items"][0])  # built-in list items omit kind

    def test_not_found_and_namespace_missing(self):
        self.assertStatus(self.sim.get(DEPLOYS % "default" + "/web"), 404, "NotFound",
                          'deployments.apps "web" not found')
        body = self.assertStatus(self.sim.post(DEPLOYS % "nosuch", deployment("x")), 404,
                                 "NotFound", 'namespaces "nosuch" not found')
        self.assertEqual(body["details"], {"name": "nosuch", "kind": "namespaces"})

    def test_already_exists_and_generate_name(self):
        self.sim.post(CM, configmap("dup"))
        body = self.assertStatus(self.sim.post(CM, configmap("dup")), 409, "AlreadyExists",
                                 'configmaps "dup" already exists')
        self.assertEqual(body["details"], {"name": "dup", "kind": "configmaps"})
        c, o = self.sim.post(CM, {"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"generateName": "gen-"}})
        self.assertEqual(c, 201)
        self.assertRegex(o["metadata"]["name"], r"^gen-[bcdfghjklmnpqrstvwxz2456789]{5}$")
        long = "x" * 70
        c, o = self.sim.post(CM, {"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"generateName": long}})
        self.assertEqual(len(o["metadata"]["name"]), 63)
        self.assertStatus(self.sim.post(CM, {"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {}}), 422, "Invalid",
                          'ConfigMap "" is invalid: metadata.name: Required value: name or '
                          'generateName is required')

    def test_put_conflict_message(self):
        c, d = self.sim.post(DEPLOYS % "default", deployment("conf"))
        stale = d["metadata"]["resourceVersion"]
        d["spec"]["replicas"] = 2
        c, d2 = self.sim.put(DEPLOYS % "default" + "/conf", d)
        self.assertEqual(c, 200)
        self.assertEqual(d2["metadata"]["generation"], 2)
        d["metadata"]["resourceVersion"] = stale
        d["spec"]["replicas"] = 3
        body = self.assertStatus(
            self.sim.put(DEPLOYS % "default" + "/conf", d), 409, "Conflict",
            'Operation cannot be fulfilled on deployments.apps "conf": the object has been '
            'modified; please apply your changes to the latest version and try again')
        self.assertEqual(body["details"], {"name": "conf", "group": "apps",
                                           "kind": "deployments"})
        # merge patch with a stale RV is a precondition too
        self.assertStatus(self.sim.patch(DEPLOYS % "default" + "/conf",
                                         {"metadata": {"resourceVersion": stale},
                                          "spec": {"replicas": 5}}), 409, "Conflict")
        # unconditional PUT is allowed on built-ins
        del d["metadata"]["resourceVersion"]
        c, d3 = self.sim.put(DEPLOYS % "default" + "/conf", d)
        self.assertEqual(c, 200)
        self.assertEqual(d3["spec"]["replicas"], 3)

    def test_generation_only_on_spec(self):
        c, d = self.sim.post(DEPLOYS % "default", deployment("gen"))
        c, d = self.sim.patch(DEPLOYS % "default" + "/gen", {"metadata": {"labels": {"a": "b"}}})
        self.assertEqual(d["metadata"]["generation"], 1)
        c, d = self.sim.patch(DEPLOYS % "default" + "/gen/status",
                              {"status": {"replicas": 9}})
        self.assertEqual(d["metadata"]["generation"], 1)
        self.assertEqual(d["status"]["replicas"], 9)
        rv = d["metadata"]["resourceVersion"]
        # a no-op patch does not write
        c, d = self.sim.patch(DEPLOYS % "default" + "/gen", {"metadata": {"labels": {"a": "b"}}})
        self.assertEqual(d["metadata"]["resourceVersion"], rv)
        c, d = self.sim.patch(DEPLOYS % "default" + "/gen", {"spec": {"replicas": 4}})
        self.assertEqual(d["metadata"]["generation"], 2)
        # status in a main-resource write is ignored
        c, d = self.sim.patch(DEPLOYS % "default" + "/gen", {"status": {"replicas": 77}})
        self.assertNotEqual(d["status"].get("replicas"), 77)

    def test_patch_types(self):
        self.sim.post(DEPLOYS % "default", deployment("pt"))
        p = DEPLOYS % "default" + "/pt"
        c, d = self.sim.patch(p, [{"op": "replace", "path": "/spec/replicas", "value": 2},
                                  {"op": "add", "path": "/metadata/labels/x", "value": "1"}],
                              "application/json-patch+json")
        self.assertEqual((c, d["spec"]["replicas"], d["metadata"]["labels"]["x"]), (200, 2, "1"))
        body = self.assertStatus(self.sim.patch(p, [{"op": "test", "path": "/spec/replicas",
                                                     "value": 5}],
                                                "application/json-patch+json"), 422, "Invalid")
        self.assertIn("test failed", body["details"]["causes"][0]["message"])
        # strategic merge: containers merge by name
        c, d = self.sim.patch(p, {"spec": {"template": {"spec": {"containers": [
            {"name": "side", "image": "busybox"}]}}}},
            "application/strategic-merge-patch+json; charset=utf-8")
        self.assertEqual(c, 200)
        names = [x["name"] for x in d["spec"]["template"]["spec"]["containers"]]
        self.assertEqual(names, ["c", "side"])
        # merge patch replaces lists
        c, d = self.sim.patch(p, {"spec": {"template": {"spec": {"containers": [
            {"name": "only", "image": "busybox"}]}}}})
        self.assertEqual([x["name"] for x in d["spec"]["template"]["spec"]["containers"]],
                         ["only"])
        # null deletes a key
        c, d = self.sim.patch(p, {"metadata": {"labels": {"x": None}}})
        self.assertNotIn("x", d["metadata"]["labels"])
        body = self.assertStatus(self.sim.patch(p, {"a": 1}, "text/plain"), 415,
                                 "UnsupportedMediaType")
        self.assertTrue(body["message"].startswith(
            "the body of the request was in an unknown format - accepted media types "
            "include: application/json-patch+json, application/merge-patch+json, "
            "application/strategic-merge-patch+json"), body["message"])
        self.assertStatus(self.sim.patch(DEPLOYS % "default" + "/nope", {"a": 1}), 404,
                          "NotFound", 'deployments.apps "nope" not found')

    def test_validation_invalid(self):
        bad = deployment("inv")
        bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
        body = self.assertStatus(self.sim.post(DEPLOYS % "default", bad), 422, "Invalid")
        self.assertTrue(body["message"].startswith('Deployment.apps "inv" is invalid: '
                                                   'spec.template.metadata.labels'))
        self.assertEqual(body["details"]["causes"][0]["field"],
                         "spec.template.metadata.labels")
        self.assertStatus(self.sim.post(CM, configmap("Bad_Name")), 422, "Invalid")

    def test_scale_subresource(self):
        self.sim.post(DEPLOYS % "default", deployment("sc", replicas=1))
        p = DEPLOYS % "default" + "/sc/scale"
        c, s = self.sim.get(p)
        self.assertEqual(c, 200)
        self.assertEqual((s["kind"], s["apiVersion"]), ("Scale", "autoscaling/v1"))
        self.assertEqual(s["spec"], {"replicas": 1})
        self.assertEqual(s["status"]["selector"], "app=sc")
        for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp"):
            self.assertIn(k, s["metadata"])
        c, s2 = self.sim.patch(p, {"spec": {"replicas": 3}})
        self.assertEqual((c, s2["spec"]["replicas"]), (200, 3))
        self.assertGreater(int(s2["metadata"]["resourceVersion"]),
                           int(s["metadata"]["resourceVersion"]))
        c, d = self.sim.get(DEPLOYS % "default" + "/sc")
        self.assertEqual((d["spec"]["replicas"], d["metadata"]["generation"]), (3, 2))
        # JSON patch and strategic merge patch on /scale
        c, s3 = self.sim.patch(p, [{"op": "replace", "path": "/spec/replicas", "value": 4}],
                               "application/json-patch+json")
        self.assertEqual(s3["spec"]["replicas"], 4)
        c, s3 = self.sim.patch(p, {"spec": {"replicas": 5}},
                               "application/strategic-merge-patch+json")
        self.assertEqual(s3["spec"]["replicas"], 5)
        # PUT with a stale RV conflicts on the parent
        s["spec"]["replicas"] = 7
        self.assertStatus(self.sim.put(p, s), 409, "Conflict",
                          'Operation cannot be fulfilled on deployments.apps "sc": the object '
                          'has been modified; please apply your changes to the latest version '
                          'and try again')
        s3["spec"]["replicas"] = 0
        c, s4 = self.sim.put(p, s3)
        self.assertEqual(c, 200)
        self.assertEqual(s4["spec"], {})  # replicas 0 is omitted (omitempty), as upstream
        # the deployment controller follows spec.replicas
        def synced():
            _c, dd = self.sim.get(DEPLOYS % "default" + "/sc")
            st = dd.get("status") or {}
            return st.get("observedGeneration") == dd["metadata"]["generation"] and dd
        dd = wait_for(synced, msg="deployment status")
        self.assertNotIn("replicas", dd["status"])
        self.sim.patch(p, {"spec": {"replicas": 2}})
        dd = wait_for(lambda: (lambda d: d.get("status", {}).get("readyReplicas") == 2 and d)(
            self.sim.get(DEPLOYS % "default" + "/sc")[1]), msg="readyReplicas 2")
        st = dd["status"]
        self.assertEqual((st["replicas"], st["updatedReplicas"], st["availableReplicas"],
                          st["observedGeneration"]), (2, 2, 2, dd["metadata"]["generation"]))
        self.assertStatus(self.sim.patch(p, {"spec": {"replicas": -1}}), 422, "Invalid")

    def test_statefulset_scale(self):
        sts = deployment("db")
        sts["kind"] = "StatefulSet"
        sts["spec"]["serviceName"] = "db"
        c, o = self.sim.post("/apis/apps/v1/namespaces/default/statefulsets", sts)
        self.assertEqual(c, 201)
        c, s = self.sim.patch("/apis/apps/v1/namespaces/default/statefulsets/db/scale",
                              {"spec": {"replicas": 2}})
        self.assertEqual(s["spec"]["replicas"], 2)
        o = wait_for(lambda: (lambda d: d.get("status", {}).get("readyReplicas") == 2 and d)(
            self.sim.get("/apis/apps/v1/namespaces/default/statefulsets/db")[1]))
        self.assertEqual(o["status"]["replicas"], 2)
        self.assertStatus(self.sim.get("/apis/apps/v1/namespaces/default/statefulsets/zz"),
                          404, "NotFound", 'statefulsets.apps "zz" not found')

    def test_label_and_field_selectors(self):
        ns = "/api/v1/namespaces"
        self.sim.post(ns, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sel"}})
        base = "/api/v1/namespaces/sel/configmaps"
        self.sim.post(base, configmap("a", {"tier": "web", "env": "prod"}))
        self.sim.post(base, configmap("b", {"tier": "db", "env": "prod"}))
        self.sim.post(base, configmap("c", {"tier": "web"}))

        def names(q):
            c, l = self.sim.get(base + "?" + q)
            self.assertEqual(c, 200, l)
            return [i["metadata"]["name"] for i in l["items"]]
        self.assertEqual(names("labelSelector=tier%3Dweb"), ["a", "c"])
        self.assertEqual(names("labelSelector=tier%3D%3Dweb"), ["a", "c"])
        self.assertEqual(names("labelSelector=tier!%3Dweb"), ["b"])
        self.assertEqual(names("labelSelector=tier%20in%20(db,x)"), ["b"])
        self.assertEqual(names("labelSelector=tier%20notin%20(db)"), ["a", "c"])
        self.assertEqual(names("labelSelector=env"), ["a", "b"])
        self.assertEqual(names("labelSelector=!env"), ["c"])
        self.assertEqual(names("labelSelector=tier%3Dweb,env%3Dprod"), ["a"])
        self.assertEqual(names("fieldSelector=metadata.name%3Db"), ["b"])
        self.assertEqual(names("fieldSelector=metadata.name!%3Db"), ["a", "c"])
        self.assertEqual(names("fieldSelector=metadata.namespace%3Dsel"), ["a", "b", "c"])
        body = self.assertStatus(self.sim.get(base + "?fieldSelector=spec.x%3D1"), 400,
                                 "BadRequest")
        self.assertIn('field label not supported: spec.x', body["message"])
        # all-namespaces list
        c, l = self.sim.get("/api/v1/configmaps?labelSelector=tier")
        self.assertEqual(sorted(i["metadata"]["name"] for i in l["items"]), ["a", "b", "c"])

    def test_paging_and_continue(self):
        self.sim.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": "page"}})
        base = "/api/v1/namespaces/page/configmaps"
        for i in range(5):
            self.sim.post(base, configmap("p%d" % i))
        c, l1 = self.sim.get(base + "?limit=2")
        self.assertEqual([i["metadata"]["name"] for i in l1["items"]], ["p0", "p1"])
        self.assertEqual(l1["metadata"]["remainingItemCount"], 3)
        tok = l1["metadata"]["continue"]
        self.sim.post(base, configmap("p9"))  # not visible: pages share the list RV
        c, l2 = self.sim.get(base + "?limit=2&continue=" + tok)
        self.assertEqual([i["metadata"]["name"] for i in l2["items"]], ["p2", "p3"])
        self.assertEqual(l2["metadata"]["resourceVersion"], l1["metadata"]["resourceVersion"])
        c, l3 = self.sim.get(base + "?limit=2&continue=" + l2["metadata"]["continue"])
        self.assertEqual([i["metadata"]["name"] for i in l3["items"]], ["p4"])
        self.assertNotIn("continue", l3["metadata"])
        self.assertStatus(self.sim.get(base + "?limit=2&continue=%s&resourceVersion=5" % tok),
                          400, "BadRequest",
                          "specifying resource version is not allowed when using continue")
        # compaction expires the token: plain 410
        self.sim.adm("POST", "/compact")
        self.sim.post(base, configmap("after-compact"))
        body = self.assertStatus(self.sim.get(base + "?limit=2&continue=" + tok), 410,
                                 "Expired", metadata=["continue"])
        self.assertTrue(body["message"].startswith("The provided continue parameter is too "
                                                   "old"))
        # the fresh token continues inconsistently from the same key
        c, l4 = self.sim.get(base + "?limit=2&continue=" + body["metadata"]["continue"])
        self.assertEqual([i["metadata"]["name"] for i in l4["items"]], ["p2", "p3"])

    def test_delete_status_and_preconditions(self):
        c, o = self.sim.post(CM, configmap("del"))
        st = self.assertStatus(self.sim.delete(CM + "/del", {
            "kind": "DeleteOptions", "apiVersion": "v1",
            "preconditions": {"resourceVersion": "1"}}), 409, "Conflict")
        self.assertIn("Precondition failed", st["message"])
        c, st = self.sim.delete(CM + "/del")
        self.assertEqual(c, 200)
        self.assertEqual(st, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success",
                              "details": {"name": "del", "kind": "configmaps",
                                          "uid": o["metadata"]["uid"]}})
        self.assertStatus(self.sim.delete(CM + "/del"), 404, "NotFound",
                          'configmaps "del" not found')

    def test_finalizers_defer_deletion(self):
        c, o = self.sim.post(CM, configmap("fin", finalizers=["example.com/hold"]))
        c, d = self.sim.delete(CM + "/fin")
        self.assertEqual(c, 200)
        self.assertEqual(d["kind"], "ConfigMap")
        self.assertIn("deletionTimestamp", d["metadata"])
        c, _ = self.sim.get(CM + "/fin")
        self.assertEqual(c, 200)
        c, d = self.sim.patch(CM + "/fin", {"metadata": {"finalizers": None}})
        self.assertEqual(c, 200)
        self.assertStatus(self.sim.get(CM + "/fin"), 404, "NotFound")

    def test_list_exact_resource_version(self):
        c, a = self.sim.post(CM, configmap("snap-a"))
        rv = a["metadata"]["resourceVersion"]
        self.sim.post(CM, configmap("snap-b"))
        self.sim.patch(CM + "/snap-a", {"data": {"k": "changed"}})
        c, l = self.sim.get(CM + "?resourceVersion=%s&resourceVersionMatch=Exact" % rv)
        self.assertEqual(l["metadata"]["resourceVersion"], rv)
        got = {i["metadata"]["name"]: i for i in l["items"]}
        self.assertNotIn("snap-b", got)
        self.assertEqual(got["snap-a"]["data"], {"k": "v"})
        c, l = self.sim.get(CM + "?resourceVersion=999999999")
        self.assertEqual(c, 504)

    def test_discovery(self):
        c, v = self.sim.get("/api")
        self.assertEqual((v["kind"], v["versions"]), ("APIVersions", ["v1"]))
        c, g = self.sim.get("/apis")
        names = [x["name"] for x in g["groups"]]
        for n in ("apps", "coordination.k8s.io", "events.k8s.io", "apiextensions.k8s.io",
                  "agents.x-k8s.io", "extensions.agents.x-k8s.io"):
            self.assertIn(n, names)
        c, rl = self.sim.get("/apis/apps/v1")
        res = {r["name"]: r for r in rl["resources"]}
        self.assertEqual(res["deployments"]["kind"], "Deployment")
        self.assertEqual(res["deployments"]["shortNames"], ["deploy"])
        self.assertTrue(res["deployments"]["namespaced"])
        self.assertIn("watch", res["deployments"]["verbs"])
        sc = res["deployments/scale"]
        self.assertEqual((sc["group"], sc["version"], sc["kind"]), ("autoscaling", "v1", "Scale"))
        self.assertEqual(res["deployments/status"]["verbs"], ["get", "patch", "update"])
        c, ver = self.sim.get("/version")
        self.assertEqual(ver["major"], "1")
        c, _h, body = self.sim.raw("GET", "/openapi/v2")
        self.assertEqual(c, 404)

    def test_lease_microtime_roundtrip(self):
        base = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "leader"},
                 "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                          "acquireTime": "2026-01-02T03:04:05.123456Z",
                          "renewTime": "2026-01-02T03:04:05.123456Z", "leaseTransitions": 0}}
        c, l = self.sim.post(base, lease)
        self.assertEqual(c, 201)
        self.assertEqual(l["spec"]["renewTime"], "2026-01-02T03:04:05.123456Z")
        self.assertStatus(self.sim.post(base, lease), 409, "AlreadyExists",
                          'leases.coordination.k8s.io "leader" already exists')
        l["spec"]["holderIdentity"] = "b"
        c, l2 = self.sim.put(base + "/leader", l)
        self.assertEqual(c, 200)
        self.assertStatus(self.sim.put(base + "/leader", l), 409, "Conflict",
                          'Operation cannot be fulfilled on leases.coordination.k8s.io '
                          '"leader": the object has been modified; please apply your changes '
                          'to the latest version and try again')

    def test_events_both_apis(self):
        ev = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
              "metadata": {"name": "e1"}, "eventTime": "2026-01-02T03:04:05.000001Z",
              "reportingController": "agentscaler", "reportingInstance": "as-1",
              "action": "Scale", "reason": "SuccessfulRescale", "type": "Normal",
              "note": "New size: 3; reason: queue depth",
              "regarding": {"kind": "Deployment", "name": "web", "namespace": "default"}}
        c, o = self.sim.post("/apis/events.k8s.io/v1/namespaces/default/events", ev)
        self.assertEqual(c, 201, o)
        self.assertEqual(o["note"], ev["note"])
        c, core = self.sim.get("/api/v1/namespaces/default/events/e1")
        self.assertEqual(core["message"], ev["note"])
        self.assertEqual(core["involvedObject"]["name"], "web")
        self.assertEqual(core["reportingComponent"], "agentscaler")
        c, l = self.sim.get("/api/v1/namespaces/default/events?fieldSelector="
                            "involvedObject.name%3Dweb,reason%3DSuccessfulRescale")
        self.assertEqual([i["metadata"]["name"] for i in l["items"]], ["e1"])

    def test_continue_token_is_opaque_base64(self):
        base = CM
        for i in range(3):
            self.sim.post(base, configmap("tok%d" % i))
        c, l = self.sim.get(base + "?limit=1")
        tok = l["metadata"]["continue"]
        raw = json.loads(base64.b64decode(tok + "=" * (-len(tok) % 4)))
        self.assertEqual(str(raw["rv"]), l["metadata"]["resourceVersion"])
        self.assertStatus(self.sim.get(base + "?limit=1&continue=garbage"), 400, "BadRequest")


class RawHttpTest(SimTestCase):
    """The request line and header parsing kube-sim does itself (instead of the
    email package): keep-alive rules, case-insensitive names, the stdlib's errors."""

    def exchange(self, data, port=None):
        s = socket.create_connection(("127.0.0.1", port or self.sim.port), timeout=10)
        try:
            s.sendall(data)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out, True  # the server closed the connection
                out += chunk
                head, _, body = out.partition(b"\r\n\r\n")
                if _ and b"content-length:" in head.lower():
                    n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    if len(body) >= n:
                        s.settimeout(0.5)
                        try:
                            more = s.recv(1)
                        except socket.timeout:
                            return out, False  # kept alive
                        return out + more, more == b""
        finally:
            s.close()

    def test_keep_alive_and_close(self):
        out, closed = self.exchange(b"GET /version HTTP/1.1\r\nhOsT: x\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out)
        self.assertFalse(closed)
        out, closed = self.exchange(b"GET /version HTTP/1.1\r\nHost: x\r\n"
                                    b"CONNECTION: Close\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out)
        self.assertTrue(closed)
        out, closed = self.exchange(b"GET /version HTTP/1.0\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out)
        self.assertTrue(closed)

    def test_case_insensitive_headers_and_body(self):
        body = json.dumps(configmap("rawcm")).encode()
        out, _ = self.exchange(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\n"
                               b"content-TYPE: application/json\r\nContent-length: %d\r\n"
                               b"\r\n%s" % (len(body), body))
        self.assertTrue(out.startswith(b"HTTP/1.1 201"), out)
        self.assertEqual(self.sim.get("/api/v1/namespaces/default/configmaps/rawcm")[0], 200)

    def test_bad_requests(self):
        # (each request stops where the server stops reading: bytes left unread when it
        # closes would turn its FIN into a reset that can swallow the answer)
        # an unparsable version is answered as HTTP/0.9 (no status line), as the stdlib does
        out, closed = self.exchange(b"GET /version HTTP/x.y\r\n")
        self.assertIn(b"Error code: 400", out)
        self.assertIn(b"Bad request version", out)
        self.assertTrue(closed)
        out, _ = self.exchange(b"GET /version HTTP/1.1\r\n" +
                               b"".join(b"X-H%d: v\r\n" % i for i in range(101)))
        self.assertTrue(out.startswith(b"HTTP/1.1 431"), out)
        # the admin port parses the same way
        port = int(self.sim.admin.rsplit(":", 1)[1])
        out, _ = self.exchange(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n", port)
        self.assertTrue(out.startswith(b"HTTP/1.0 200") or out.startswith(b"HTTP/1.1 200"),
                        out)


class FlagsTest(SimTestCase):
    SIM_ARGS = ("--no-agent-sandbox-crds", "--no-deployment-controller")

    def test_switches(self):
        names = [g["name"] for g in self.sim.get("/apis")[1]["groups"]]
        self.assertNotIn("agents.x-k8s.io", names)
        self.assertNotIn("extensions.agents.x-k8s.io", names)
        self.assertEqual(self.sim.get("/apis/agents.x-k8s.io/v1beta1")[0], 404)
        self.sim.post(DEPLOYS % "default", deployment("still"))
        import time
        time.sleep(0.6)  # 3x the default replica delay: the controller is off
        c, d = self.sim.get(DEPLOYS % "default" + "/still")
        self.assertNotIn("status", d)
