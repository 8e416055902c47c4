"""Built-in types a Helm chart installs: ServiceAccount, Service, RBAC
(Role, ClusterRole and their bindings) and policy/v1 PodDisruptionBudget."""

import json
import unittest

from .ksim import KubectlTestCase, SimTestCase, have_kubectl

SA = "/api/v1/namespaces/%s/serviceaccounts"
SVC = "/api/v1/namespaces/%s/services"
RBAC = "/apis/rbac.authorization.k8s.io/v1/"
PDB = "/apis/policy/v1/namespaces/%s/poddisruptionbudgets"


def svc(name, ports, typ=None, **spec):
    s = {"selector": {"app": name}, "ports": ports}
    if typ:
        s["type"] = typ
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": s}


def role(name, rules, kind="Role"):
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": {"name": name}, "rules": rules}


def binding(name, role_kind, role_name, subjects, kind="RoleBinding"):
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                        "name": role_name},
            "subjects": subjects}


def pdb(name, **spec):
    spec.setdefault("selector", {"matchLabels": {"app": name}})
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name}, "spec": spec}


class DiscoveryTest(SimTestCase):
    def resources(self, path):
        code, body = self.sim.get(path)
        self.assertEqual(code, 200, body)
        return {r["name"]: r for r in body["resources"]}

    def test_core_entries(self):
        r = self.resources("/api/v1")
        self.assertEqual(r["serviceaccounts"]["kind"], "ServiceAccount")
        self.assertEqual(r["serviceaccounts"]["shortNames"], ["sa"])
        self.assertTrue(r["serviceaccounts"]["namespaced"])
        self.assertEqual(r["services"]["shortNames"], ["svc"])
        self.assertEqual(r["services"]["categories"], ["all"])
        self.assertIn("services/status", r)
        # services have no deletecollection verb (kubernetes#98994, #63861)
        self.assertNotIn("deletecollection", r["services"]["verbs"])

    def test_rbac_and_policy_groups(self):
        code, groups = self.sim.get("/apis")
        names = {g["name"]: g for g in groups["groups"]}
        self.assertEqual(names["rbac.authorization.k8s.io"]["preferredVersion"]["version"], "v1")
        self.assertEqual(names["policy"]["preferredVersion"]["groupVersion"], "policy/v1")
        r = self.resources("/apis/rbac.authorization.k8s.io/v1")
        self.assertEqual({k: v["namespaced"] for k, v in r.items()},
                         {"roles": True, "rolebindings": True, "clusterroles": False,
                          "clusterrolebindings": False})
        p = self.resources("/apis/policy/v1")
        self.assertEqual(p["poddisruptionbudgets"]["shortNames"], ["pdb"])
        self.assertIn("poddisruptionbudgets/status", p)
        n = self.resources("/apis/networking.k8s.io/v1")
        self.assertEqual(n["networkpolicies"]["kind"], "NetworkPolicy")
        self.assertEqual(n["networkpolicies"]["shortNames"], ["netpol"])


class ServiceTest(SimTestCase):
    def test_defaults_and_immutable_cluster_ip(self):
        code, o = self.sim.post(SVC % "default", svc("m", [{"name": "metrics", "port": 9090}]))
        self.assertEqual(code, 201, o)
        sp = dict(o["spec"])
        self.assertEqual(sp["type"], "ClusterIP")
        self.assertRegex(sp["clusterIP"], r"^10\.96\.\d+\.\d+$")
        self.assertEqual(sp["clusterIPs"], [sp["clusterIP"]])
        self.assertEqual(sp["ports"], [{"name": "metrics", "port": 9090, "protocol": "TCP",
                                        "targetPort": 9090}])
        self.assertEqual(sp["sessionAffinity"], "None")
        # a PUT without clusterIP keeps it; changing it is refused
        o["spec"].pop("clusterIP")
        o["spec"].pop("clusterIPs")
        code, o2 = self.sim.put(SVC % "default" + "/m", o)
        self.assertEqual(code, 200, o2)
        self.assertEqual(o2["spec"]["clusterIP"], sp["clusterIP"])
        o2["spec"]["clusterIP"] = "10.96.200.200"
        o2["spec"].pop("clusterIPs")
        b = self.assertStatus(self.sim.put(SVC % "default" + "/m", o2), 422, "Invalid")
        self.assertIn("spec.clusterIPs[0]", b["message"])
        self.assertIn("may not change once set", b["message"])

    def test_node_port_allocated(self):
        code, o = self.sim.post(SVC % "default", svc("np", [{"port": 80,
                                                             "targetPort": "http"}],
                                                     "NodePort"))
        self.assertEqual(code, 201, o)
        p = o["spec"]["ports"][0]
        self.assertTrue(30000 <= p["nodePort"] <= 32767, p)
        self.assertEqual(p["targetPort"], "http")
        self.assertEqual(o["spec"]["externalTrafficPolicy"], "Cluster")

    def test_invalid(self):
        self.assertStatus(
            self.sim.post(SVC % "default", svc("noports", [])), 422, "Invalid",
            'Service "noports" is invalid: spec.ports: Required value')
        self.assertStatus(
            self.sim.post(SVC % "default", svc("badtype", [{"port": 1}], "Magic")), 422,
            "Invalid", 'Service "badtype" is invalid: spec.type: Unsupported value: "Magic": '
            'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"')
        b = self.assertStatus(
            self.sim.post(SVC % "default", svc("two", [{"port": 1}, {"port": 70000}])),
            422, "Invalid")
        # targetPort defaults to port, so it is out of range too (as upstream)
        self.assertEqual(sorted(c["field"] for c in b["details"]["causes"]),
                         ["spec.ports[0].name", "spec.ports[1].name", "spec.ports[1].port",
                          "spec.ports[1].targetPort"])
        # headless services need no ports
        code, o = self.sim.post(SVC % "default", svc("headless", [], clusterIP="None"))
        self.assertEqual(code, 201, o)


class RbacObjectsTest(SimTestCase):
    RULES = [{"apiGroups": ["apps"], "resources": ["deployments/scale"],
              "verbs": ["get", "patch"]}]
    SA_SUB = [{"kind": "ServiceAccount", "name": "as", "namespace": "default"}]

    def test_round_trip(self):
        code, o = self.sim.post(RBAC + "namespaces/default/roles", role("r", self.RULES))
        self.assertEqual(code, 201, o)
        self.assertEqual(o["rules"], self.RULES)
        code, o = self.sim.post(RBAC + "clusterroles", role("cr", self.RULES, "ClusterRole"))
        self.assertEqual(code, 201, o)
        self.assertNotIn("namespace", o["metadata"])
        code, o = self.sim.post(RBAC + "clusterrolebindings",
                                binding("crb", "ClusterRole", "cr", self.SA_SUB,
                                        "ClusterRoleBinding"))
        self.assertEqual(code, 201, o)
        code, o = self.sim.post(RBAC + "namespaces/default/rolebindings",
                                binding("rb", "Role", "r", [{"kind": "ServiceAccount",
                                                             "name": "as"}]))
        self.assertEqual(code, 201, o)
        # roleRef is immutable
        o["roleRef"]["name"] = "other"
        b = self.assertStatus(self.sim.put(RBAC + "namespaces/default/rolebindings/rb", o),
                              422, "Invalid")
        self.assertIn("cannot change roleRef", b["message"])
        # subjects may change
        code, o = self.sim.patch(RBAC + "namespaces/default/rolebindings/rb",
                                 {"subjects": self.SA_SUB})
        self.assertEqual(code, 200, o)
        self.assertEqual(o["subjects"], self.SA_SUB)

    def test_invalid_rules(self):
        b = self.assertStatus(self.sim.post(RBAC + "namespaces/default/roles", role(
            "bad", [{"apiGroups": [""], "resources": ["pods"]},
                    {"verbs": ["get"], "nonResourceURLs": ["/metrics"]}])), 422, "Invalid")
        self.assertEqual([(c["field"], c["message"]) for c in b["details"]["causes"]], [
            ("rules[0].verbs", "Required value: verbs must contain at least one value"),
            ("rules[1].nonResourceURLs", 'Invalid value: []string{"/metrics"}: namespaced '
             'rules cannot apply to non-resource URLs')])
        b = self.assertStatus(self.sim.post(RBAC + "clusterroles", role(
            "bad", [{"verbs": ["get"]}], "ClusterRole")), 422, "Invalid")
        self.assertEqual(sorted(c["field"] for c in b["details"]["causes"]),
                         ["rules[0].apiGroups", "rules[0].resources"])
        # non-resource URLs are fine in a ClusterRole
        code, o = self.sim.post(RBAC + "clusterroles", role(
            "metrics", [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}], "ClusterRole"))
        self.assertEqual(code, 201, o)

    def test_invalid_bindings(self):
        b = self.assertStatus(self.sim.post(RBAC + "clusterrolebindings", binding(
            "bad", "Role", "r", [{"kind": "ServiceAccount", "name": "as"}],
            "ClusterRoleBinding")), 422, "Invalid")
        self.assertEqual([c["field"] for c in b["details"]["causes"]],
                         ["roleRef.kind", "subjects[0].namespace"])
        self.assertIn('Unsupported value: "Role": supported values: "ClusterRole"',
                      b["message"])
        b = self.assertStatus(self.sim.post(RBAC + "namespaces/default/rolebindings", binding(
            "bad", "Role", "", [{"kind": "Robot", "name": "x"},
                                {"kind": "User", "name": "alice"}])), 422, "Invalid")
        self.assertEqual([c["field"] for c in b["details"]["causes"]],
                         ["roleRef.name", "subjects[0].kind", "subjects[1].apiGroup"])


class PdbTest(SimTestCase):
    def test_valid_and_invalid(self):
        code, o = self.sim.post(PDB % "default", pdb("a", minAvailable=1))
        self.assertEqual(code, 201, o)
        self.assertEqual(o["metadata"]["generation"], 1)
        code, o = self.sim.post(PDB % "default", pdb("b", maxUnavailable="50%"))
        self.assertEqual(code, 201, o)
        b = self.assertStatus(self.sim.post(PDB % "default", pdb(
            "c", minAvailable=1, maxUnavailable="150%")), 422, "Invalid")
        self.assertEqual([c["field"] for c in b["details"]["causes"]],
                         ["spec", "spec.maxUnavailable"])
        self.assertIn("minAvailable and maxUnavailable cannot be both set", b["message"])
        b = self.assertStatus(self.sim.post(PDB % "default", pdb("d", minAvailable="x")),
                              422, "Invalid")
        self.assertIn("a valid percent string must be a numeric string", b["message"])
        self.assertStatus(self.sim.post(PDB % "default", pdb("e", minAvailable=-1)), 422,
                          "Invalid", 'PodDisruptionBudget.policy "e" is invalid: '
                          'spec.minAvailable: Invalid value: -1: must be greater than or '
                          'equal to 0')


@unittest.skipUnless(have_kubectl(), "kubectl not installed")
class KubectlChartTypesTest(KubectlTestCase):
    def test_apply_get_reapply(self):
        k = self.k
        objs = [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "as"}},
            svc("as-metrics", [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]),
            role("as", RbacObjectsTest.RULES),
            binding("as", "Role", "as", RbacObjectsTest.SA_SUB),
            role("as", RbacObjectsTest.RULES, "ClusterRole"),
            binding("as", "ClusterRole", "as", RbacObjectsTest.SA_SUB, "ClusterRoleBinding"),
            pdb("as", minAvailable=1),
        ]
        doc = {"apiVersion": "v1", "kind": "List", "items": objs}
        r = k.run("apply", "--validate=false", "-f", "-", stdin=json.dumps(doc))
        self.assertEqual(sorted(r.stdout.split("\n")[:-1]), sorted([
            "serviceaccount/as created", "service/as-metrics created",
            "role.rbac.authorization.k8s.io/as created",
            "rolebinding.rbac.authorization.k8s.io/as created",
            "clusterrole.rbac.authorization.k8s.io/as created",
            "clusterrolebinding.rbac.authorization.k8s.io/as created",
            "poddisruptionbudget.policy/as created"]))
        r = k.run("get", "sa,svc,pdb,role,rolebinding", "-o", "name")
        self.assertEqual(sorted(r.stdout.split()), sorted([
            "serviceaccount/as", "service/as-metrics", "poddisruptionbudget.policy/as",
            "role.rbac.authorization.k8s.io/as", "rolebinding.rbac.authorization.k8s.io/as"]))
        hdr, row = k.run("get", "svc", "as-metrics").stdout.splitlines()[:2]
        self.assertEqual(hdr.split(), ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP",
                                       "PORT(S)", "AGE"])
        self.assertEqual(row.split()[:5][::4], ["as-metrics", "9090/TCP"])
        hdr, row = k.run("get", "rolebinding", "as").stdout.splitlines()[:2]
        self.assertEqual(row.split()[:2], ["as", "Role/as"])
        # second apply: strategic merge patch of a Service's ports (merge key port)
        objs[1]["spec"]["ports"][0]["port"] = 9091
        r = k.run("apply", "--validate=false", "-f", "-", stdin=json.dumps(objs[1]))
        self.assertEqual(r.stdout.strip(), "service/as-metrics configured")
        o = json.loads(k.run("get", "svc", "as-metrics", "-o", "json").stdout)
        self.assertEqual([p["port"] for p in o["spec"]["ports"]], [9091])
        # a changed roleRef is refused by the server, as by a real one
        objs[3]["roleRef"]["name"] = "other"
        r = k.run("apply", "--validate=false", "-f", "-", stdin=json.dumps(objs[3]),
                  check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot change roleRef", r.stderr)


if __name__ == "__main__":
    unittest.main()
