"""Authentication/authorization, ResourceQuota admission, garbage collection."""

import json
import os
import tempfile
import time

from .ksim import DEPLOYS, KubeSim, SimTestCase, configmap, deployment, wait_for

CM = "/api/v1/namespaces/default/configmaps"


class AuthTest(SimTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ksim-auth-")
        cls.tokens = os.path.join(cls.dir, "tokens.csv")
        with open(cls.tokens, "w") as f:
            f.write('tok-alice,alice,1001,"dev,ops"\ntok-admin,admin,1,"system:masters"\n'
                    'tok-bob,bob,1002,\n')
        rules = os.path.join(cls.dir, "rules.json")
        with open(rules, "w") as f:
            json.dump([{"users": ["alice"], "verbs": ["get", "list", "watch"],
                        "apiGroups": ["apps"], "resources": ["deployments"],
                        "namespaces": ["default"]},
                       {"groups": ["ops"], "verbs": ["get", "update"],
                        "apiGroups": ["apps"], "resources": ["deployments/scale"],
                        "namespaces": ["default"]}], f)
        cls.sim = KubeSim("--port", "0", "--tokens", cls.tokens, "--rules", rules)

    def test_401_for_unknown_token(self):
        self.assertStatus(self.sim.get(DEPLOYS % "default", token="nope"), 401,
                          "Unauthorized", "Unauthorized")

    def test_403_message_shape(self):
        self.assertEqual(self.sim.post(DEPLOYS % "default", deployment("web"),
                                       token="tok-admin")[0], 201)
        self.assertEqual(self.sim.get(DEPLOYS % "default" + "/web", token="tok-alice")[0], 200)
        self.assertEqual(self.sim.get(DEPLOYS % "default" + "/web/scale",
                                      token="tok-alice")[0], 200)
        body = self.assertStatus(
            self.sim.patch(DEPLOYS % "default" + "/web/scale", {"spec": {"replicas": 2}},
                           token="tok-alice"), 403, "Forbidden",
            'deployments.apps "web" is forbidden: User "alice" cannot patch resource '
            '"deployments/scale" in API group "apps" in the namespace "default"')
        self.assertEqual(body["details"], {"name": "web", "group": "apps",
                                           "kind": "deployments"})
        self.assertStatus(self.sim.get(DEPLOYS % "kube-system", token="tok-alice"), 403,
                          "Forbidden",
                          'deployments.apps is forbidden: User "alice" cannot list resource '
                          '"deployments" in API group "apps" in the namespace "kube-system"')
        self.assertStatus(self.sim.get("/api/v1/namespaces", token="tok-bob"), 403,
                          "Forbidden",
                          'namespaces is forbidden: User "bob" cannot list resource '
                          '"namespaces" in API group "" at the cluster scope')
        self.assertStatus(self.sim.get(CM, token="tok-bob"), 403, "Forbidden",
                          'configmaps is forbidden: User "bob" cannot list resource '
                          '"configmaps" in API group "" in the namespace "default"')
        # anonymous requests are denied, discovery is open to authenticated users
        self.assertStatus(self.sim.get(DEPLOYS % "default"), 403, "Forbidden",
                          'deployments.apps is forbidden: User "system:anonymous" cannot list '
                          'resource "deployments" in API group "apps" in the namespace '
                          '"default"')
        self.assertEqual(self.sim.get("/apis", token="tok-bob")[0], 200)
        self.assertEqual(self.sim.get("/version")[0], 200)

    def test_request_log_records_user(self):
        self.sim.get("/apis", token="tok-bob")
        c, r = self.sim.adm("GET", "/requests?since=0")
        self.assertEqual(r["requests"][-1]["user"], "bob")

    def test_token_rotation(self):
        self.assertEqual(self.sim.get("/apis", token="tok-carol")[0], 401)
        with open(self.tokens, "a") as f:
            f.write("tok-carol,carol,1003,\n")
        os.utime(self.tokens, (time.time() + 5, time.time() + 5))
        self.assertEqual(self.sim.get("/apis", token="tok-carol")[0], 200)


class AnonymousTest(SimTestCase):
    def test_full_access_without_token_file(self):
        self.assertEqual(self.sim.post(CM, configmap("anon"))[0], 201)
        self.assertEqual(self.sim.get(CM + "/anon", token="whatever")[0], 200)


class QuotaTest(SimTestCase):
    def test_count_quota(self):
        base = "/api/v1/namespaces"
        self.sim.post(base, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "q"}})
        q = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "caps"},
             "spec": {"hard": {"count/configmaps": "2",
                               "count/sandboxclaims.extensions.agents.x-k8s.io": "1"}}}
        c, o = self.sim.post("/api/v1/namespaces/q/resourcequotas", q)
        self.assertEqual(c, 201)
        wait_for(lambda: (self.sim.get("/api/v1/namespaces/q/resourcequotas/caps")[1]
                          .get("status") or {}).get("hard"), msg="quota status")
        cm = "/api/v1/namespaces/q/configmaps"
        self.assertEqual(self.sim.post(cm, configmap("c1"))[0], 201)
        self.assertEqual(self.sim.post(cm, configmap("c2"))[0], 201)
        body = self.assertStatus(
            self.sim.post(cm, configmap("c3")), 403, "Forbidden",
            'configmaps "c3" is forbidden: exceeded quota: caps, requested: '
            'count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2')
        self.assertEqual(body["details"], {"name": "c3", "kind": "configmaps"})
        c, qq = self.sim.get("/api/v1/namespaces/q/resourcequotas/caps")
        self.assertEqual(qq["status"]["used"]["count/configmaps"], "2")
        claims = "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/q/sandboxclaims"
        cl = {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxClaim",
              "metadata": {"name": "k1"}, "spec": {"warmPoolRef": {"name": "p"}}}
        self.assertEqual(self.sim.post(claims, cl)[0], 201)
        cl["metadata"]["name"] = "k2"
        self.assertStatus(
            self.sim.post(claims, cl), 403, "Forbidden",
            'sandboxclaims.extensions.agents.x-k8s.io "k2" is forbidden: exceeded quota: caps, '
            'requested: count/sandboxclaims.extensions.agents.x-k8s.io=1, used: '
            'count/sandboxclaims.extensions.agents.x-k8s.io=1, limited: '
            'count/sandboxclaims.extensions.agents.x-k8s.io=1')
        # a delete is replenished by the quota controller
        self.sim.delete(cm + "/c1")
        wait_for(lambda: self.sim.get("/api/v1/namespaces/q/resourcequotas/caps")[1]
                 ["status"]["used"]["count/configmaps"] == "1", msg="replenish")
        self.assertEqual(self.sim.post(cm, configmap("c3"))[0], 201)


class GcTest(SimTestCase):
    def owner_and_deps(self, name, n=2, block=True):
        c, owner = self.sim.post(CM, configmap(name))
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": name,
               "uid": owner["metadata"]["uid"], "controller": True,
               "blockOwnerDeletion": block}
        deps = []
        for i in range(n):
            c, d = self.sim.post(CM, configmap("%s-d%d" % (name, i), ownerReferences=[ref]))
            self.assertEqual(c, 201)
            deps.append(d["metadata"]["name"])
        return owner, deps

    def gone(self, name):
        return self.sim.get(CM + "/" + name)[0] == 404

    def test_background(self):
        owner, deps = self.owner_and_deps("bg")
        c, st = self.sim.delete(CM + "/bg")
        self.assertEqual(st["status"], "Success")
        for d in deps:
            wait_for(lambda d=d: self.gone(d), msg="dependent %s collected" % d)

    def test_foreground(self):
        owner, deps = self.owner_and_deps("fg")
        w = self.sim.watch(CM + "?watch=1&fieldSelector=metadata.name%3Dfg&resourceVersion="
                           + owner["metadata"]["resourceVersion"])
        c, o = self.sim.delete(CM + "/fg", {"kind": "DeleteOptions", "apiVersion": "v1",
                                            "propagationPolicy": "Foreground"})
        self.assertEqual(c, 200)
        self.assertEqual(o["metadata"]["finalizers"], ["foregroundDeletion"])
        self.assertIn("deletionTimestamp", o["metadata"])
        e = w.next()
        self.assertEqual(e["type"], "MODIFIED")
        e = w.next()
        self.assertEqual(e["type"], "DELETED")
        for d in deps:
            self.assertTrue(self.gone(d))
        w.close()

    def test_orphan(self):
        owner, deps = self.owner_and_deps("or")
        c, o = self.sim.delete(CM + "/or?propagationPolicy=Orphan")
        self.assertEqual(o["metadata"]["finalizers"], ["orphan"])
        wait_for(lambda: self.gone("or"), msg="owner gone")
        for d in deps:
            c, dep = self.sim.get(CM + "/" + d)
            self.assertEqual(c, 200)
            self.assertNotIn("ownerReferences", dep["metadata"])

    def test_dangling_owner_collected(self):
        c, d = self.sim.post(CM, configmap("dangle", ownerReferences=[{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "ghost",
            "uid": "00000000-0000-0000-0000-000000000000"}]))
        self.assertEqual(c, 201)
        wait_for(lambda: self.gone("dangle"), msg="dangling dependent collected")

    def test_namespace_deletion(self):
        self.sim.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": "gone"}})
        self.sim.post("/api/v1/namespaces/gone/configmaps", configmap("x"))
        c, ns = self.sim.delete("/api/v1/namespaces/gone")
        self.assertEqual(c, 200)
        self.assertEqual(ns["status"]["phase"], "Terminating")
        wait_for(lambda: self.sim.get("/api/v1/namespaces/gone")[0] == 404, msg="ns gone")
        self.assertEqual(self.sim.get("/api/v1/namespaces/gone/configmaps/x")[0], 404)
        self.assertStatus(self.sim.delete("/api/v1/namespaces/default"), 403, "Forbidden",
                          'namespaces "default" is forbidden: this namespace may not be '
                          'deleted')

    # The GC is incremental (it visits only what an event concerns): these pin the
    # paths where the work arrives late, through another object's event.
    def test_foreground_waits_for_a_finalizer_held_dependent(self):
        c, owner = self.sim.post(CM, configmap("fgw"))
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "fgw",
               "uid": owner["metadata"]["uid"], "controller": True,
               "blockOwnerDeletion": True}
        c, d = self.sim.post(CM, configmap("fgw-held", ownerReferences=[ref],
                                           finalizers=["example.com/hold"]))
        self.assertEqual(c, 201)
        c, o = self.sim.delete(CM + "/fgw?propagationPolicy=Foreground")
        self.assertEqual(o["metadata"]["finalizers"], ["foregroundDeletion"])
        wait_for(lambda: self.sim.get(CM + "/fgw-held")[1]["metadata"]
                 .get("deletionTimestamp"), msg="dependent being deleted")
        time.sleep(0.3)
        self.assertEqual(self.sim.get(CM + "/fgw")[0], 200)  # blocked by the dependent
        self.sim.patch(CM + "/fgw-held", {"metadata": {"finalizers": None}})
        wait_for(lambda: self.gone("fgw-held"), msg="dependent released")
        wait_for(lambda: self.gone("fgw"), msg="owner deleted once its dependent is gone")

    def test_foreground_unblocked_when_dependent_drops_the_reference(self):
        c, owner = self.sim.post(CM, configmap("fgr"))
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "fgr",
               "uid": owner["metadata"]["uid"], "blockOwnerDeletion": True}
        c, d = self.sim.post(CM, configmap("fgr-dep", ownerReferences=[ref],
                                           finalizers=["example.com/hold"]))
        self.sim.delete(CM + "/fgr?propagationPolicy=Foreground")
        wait_for(lambda: self.sim.get(CM + "/fgr-dep")[1]["metadata"]
                 .get("deletionTimestamp"), msg="dependent being deleted")
        self.assertEqual(self.sim.get(CM + "/fgr")[0], 200)
        c, _ = self.sim.patch(CM + "/fgr-dep", {"metadata": {"ownerReferences": None}})
        self.assertEqual(c, 200)
        wait_for(lambda: self.gone("fgr"), msg="owner deleted once not referenced")
        self.assertEqual(self.sim.get(CM + "/fgr-dep")[0], 200)  # its own finalizer holds
        self.sim.patch(CM + "/fgr-dep", {"metadata": {"finalizers": None}})
        wait_for(lambda: self.gone("fgr-dep"), msg="dependent released")

    def test_namespace_waits_for_finalizers_then_goes(self):
        base = "/api/v1/namespaces"
        self.sim.post(base, {"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": "held"}})
        cms = base + "/held/configmaps"
        for i in range(30):
            self.assertEqual(self.sim.post(cms, configmap("x%d" % i))[0], 201)
        self.sim.post(cms, configmap("keep", finalizers=["example.com/hold"]))
        self.assertEqual(self.sim.delete(base + "/held")[0], 200)
        wait_for(lambda: len(self.sim.get(cms)[1]["items"]) == 1, msg="content deleted")
        time.sleep(0.3)
        c, ns = self.sim.get(base + "/held")
        self.assertEqual((c, ns["status"]["phase"]), (200, "Terminating"))
        self.sim.patch(cms + "/keep", {"metadata": {"finalizers": None}})
        wait_for(lambda: self.sim.get(base + "/held")[0] == 404, msg="namespace gone")

    def test_many_dependents_of_one_owner(self):
        c, owner = self.sim.post(CM, configmap("big"))
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "big",
               "uid": owner["metadata"]["uid"]}
        for i in range(50):
            self.sim.post(CM, configmap("big-d%d" % i, ownerReferences=[ref]))
        self.sim.delete(CM + "/big")
        wait_for(lambda: not [o for o in self.sim.get(CM)[1]["items"]
                              if o["metadata"]["name"].startswith("big-d")],
                 msg="all 50 dependents collected")

    def test_full_scan_on_admin_gc(self):
        code, body = self.sim.adm("POST", "/gc")
        self.assertEqual((code, body), (200, {"ok": True}))
        self.assertEqual(self.sim.post(CM, configmap("after-gc"))[0], 201)
        time.sleep(0.2)
        self.assertEqual(self.sim.get(CM + "/after-gc")[0], 200)  # nothing collected wrongly


class EventTtlTest(SimTestCase):
    SIM_ARGS = ("--event-ttl-s", "2")

    def test_events_expire_after_their_last_write(self):
        # e2 is created first, so that without its later writes it would go
        # no later than e1 (the collector expires in order of expiry).  It
        # is written again until e1 has expired: each write must restart its
        # TTL, so e2 is still there once e1 is gone.  No clock is read here:
        # only each write's distance from the next (one GET and one PATCH)
        # must stay under the TTL.
        base = "/api/v1/namespaces/default/events"
        ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e2"},
              "involvedObject": {"kind": "ConfigMap", "name": "x", "namespace": "default"},
              "reason": "Test", "message": "m", "type": "Normal"}
        self.assertEqual(self.sim.post(base, ev)[0], 201)
        self.assertEqual(self.sim.post(base, dict(ev, metadata={"name": "e1"}))[0], 201)
        writes = [0]

        def e1_gone_while_e2_written():
            c, _ = self.sim.patch(base + "/e2", {"message": "again %d" % writes[0]})
            self.assertEqual(c, 200, "e2 expired before e1 though written since")
            writes[0] += 1
            return self.sim.get(base + "/e1")[0] == 404
        wait_for(e1_gone_while_e2_written, timeout=20, msg="e1 expired")
        self.assertEqual(self.sim.get(base + "/e2")[0], 200, "e2 outlives e1")
        self.assertGreater(writes[0], 1)
        wait_for(lambda: self.sim.get(base + "/e2")[0] == 404, timeout=20, msg="e2 expired")
        # the events.k8s.io/v1 view shares the storage
        self.assertEqual(self.sim.get("/apis/events.k8s.io/v1/namespaces/default/events/e1")[0],
                         404)
