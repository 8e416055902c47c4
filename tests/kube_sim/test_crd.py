"""CustomResourceDefinitions: serving, subresources, defaults, CR rules."""

from .ksim import SimTestCase, wait_for

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"


def widget_crd():
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"kind": "Widget", "plural": "widgets", "singular": "widget",
                               "shortNames": ["wd"]},
                     "versions": [{
                         "name": "v1", "served": True, "storage": True,
                         "subresources": {"status": {}, "scale": {
                             "specReplicasPath": ".spec.replicas",
                             "statusReplicasPath": ".status.replicas",
                             "labelSelectorPath": ".status.selector"}},
                         "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                             "spec": {"type": "object", "required": ["size"], "properties": {
                                 "replicas": {"type": "integer", "default": 1, "minimum": 0},
                                 "size": {"type": "string", "enum": ["S", "M", "L"]},
                                 "color": {"type": "string", "default": "blue"},
                                 "opts": {"type": "object", "properties": {
                                     "fast": {"type": "boolean", "default": False}}}}},
                             "status": {"type": "object", "properties": {
                                 "replicas": {"type": "integer"},
                                 "selector": {"type": "string"}}}}}}}]}}


def widget(name, **spec):
    s = {"size": "M"}
    s.update(spec)
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name},
            "spec": s}


class CrdTest(SimTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        c, o = cls.sim.post(CRDS, widget_crd())
        assert c == 201, o

    def test_crd_status_and_discovery(self):
        c, crd = self.sim.get(CRDS + "/widgets.example.com")
        conds = {x["type"]: x["status"] for x in crd["status"]["conditions"]}
        self.assertEqual(conds, {"NamesAccepted": "True", "Established": "True"})
        self.assertEqual(crd["status"]["storedVersions"], ["v1"])
        c, g = self.sim.get("/apis/example.com/v1")
        res = {r["name"]: r for r in g["resources"]}
        self.assertEqual(res["widgets"]["shortNames"], ["wd"])
        self.assertEqual(res["widgets/scale"]["group"], "autoscaling")
        self.assertIn("widgets/status", res)
        c, g = self.sim.get("/apis/example.com")
        self.assertEqual(g["preferredVersion"]["groupVersion"], "example.com/v1")

    def test_defaults_pruning_and_validation(self):
        w = widget("d1", opts={}, unknown="x")
        c, o = self.sim.post(WIDGETS, w)
        self.assertEqual(c, 201, o)
        self.assertEqual(o["spec"], {"size": "M", "replicas": 1, "color": "blue",
                                     "opts": {"fast": False}})
        self.assertEqual(o["metadata"]["generation"], 1)
        body = self.assertStatus(self.sim.post(WIDGETS, {
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "bad"},
            "spec": {"size": "XL", "replicas": -1}}), 422, "Invalid")
        self.assertTrue(body["message"].startswith('Widget.example.com "bad" is invalid: '))
        fields = sorted(x["field"] for x in body["details"]["causes"])
        self.assertEqual(fields, ["spec.replicas", "spec.size"])
        self.assertStatus(self.sim.post(WIDGETS, {"apiVersion": "example.com/v1",
                                                  "kind": "Widget",
                                                  "metadata": {"name": "bad2"}, "spec": {}}),
                          422, "Invalid",
                          'Widget.example.com "bad2" is invalid: spec.size: Required value')

    def test_put_requires_rv_and_never_creates(self):
        c, o = self.sim.post(WIDGETS, widget("p1"))
        o2 = dict(o)
        o2["metadata"] = {k: v for k, v in o["metadata"].items() if k != "resourceVersion"}
        self.assertStatus(self.sim.put(WIDGETS + "/p1", o2), 422, "Invalid",
                          'Widget.example.com "p1" is invalid: metadata.resourceVersion: '
                          'Invalid value: 0x0: must be specified for an update')
        self.assertStatus(self.sim.put(WIDGETS + "/nope", widget("nope")), 404, "NotFound",
                          'widgets.example.com "nope" not found')
        o["spec"]["color"] = "red"
        c, o3 = self.sim.put(WIDGETS + "/p1", o)
        self.assertEqual((c, o3["metadata"]["generation"]), (200, 2))
        self.assertStatus(self.sim.put(WIDGETS + "/p1", o), 409, "Conflict",
                          'Operation cannot be fulfilled on widgets.example.com "p1": the '
                          'object has been modified; please apply your changes to the latest '
                          'version and try again')

    def test_strategic_merge_is_415(self):
        self.sim.post(WIDGETS, widget("s1"))
        self.assertStatus(self.sim.patch(WIDGETS + "/s1", {"spec": {"color": "x"}},
                                         "application/strategic-merge-patch+json"), 415,
                          "UnsupportedMediaType",
                          "the body of the request was in an unknown format - accepted media "
                          "types include: application/json-patch+json, "
                          "application/merge-patch+json, application/apply-patch+yaml")
        c, o = self.sim.patch(WIDGETS + "/s1", {"spec": {"color": "x"}})
        self.assertEqual((c, o["spec"]["color"]), (200, "x"))

    def test_status_and_scale_subresources(self):
        c, o = self.sim.post(WIDGETS, widget("sc", replicas=2))
        # status is dropped on create and ignored by main-resource writes
        self.assertNotIn("status", o)
        c, o = self.sim.patch(WIDGETS + "/sc", {"status": {"replicas": 5}})
        self.assertNotIn("status", o)
        c, o = self.sim.patch(WIDGETS + "/sc/status", {"status": {"replicas": 2,
                                                                   "selector": "app=sc"},
                                                        "spec": {"color": "ignored"}})
        self.assertEqual(o["status"], {"replicas": 2, "selector": "app=sc"})
        self.assertEqual(o["spec"]["color"], "blue")
        self.assertEqual(o["metadata"]["generation"], 1)
        c, s = self.sim.get(WIDGETS + "/sc/scale")
        self.assertEqual((s["spec"]["replicas"], s["status"]["replicas"],
                          s["status"]["selector"]), (2, 2, "app=sc"))
        c, s2 = self.sim.patch(WIDGETS + "/sc/scale", {"spec": {"replicas": 4}})
        self.assertEqual(s2["spec"]["replicas"], 4)
        c, o = self.sim.get(WIDGETS + "/sc")
        self.assertEqual((o["spec"]["replicas"], o["metadata"]["generation"]), (4, 2))
        self.assertEqual(o["metadata"]["resourceVersion"], s2["metadata"]["resourceVersion"])

    def test_cr_list_items_carry_kind_and_field_selector(self):
        self.sim.post(WIDGETS, widget("f1"))
        c, l = self.sim.get(WIDGETS + "?fieldSelector=metadata.name%3Df1")
        self.assertEqual(l["kind"], "WidgetList")
        self.assertEqual([(i["kind"], i["metadata"]["name"]) for i in l["items"]],
                         [("Widget", "f1")])
        body = self.assertStatus(self.sim.get(WIDGETS + "?fieldSelector=spec.size%3DM"), 400,
                                 "BadRequest")
        self.assertTrue(body["message"].endswith(
            '"spec.size" is not a known field selector: only "metadata.name", '
            '"metadata.namespace"'), body["message"])

    def test_crd_delete_removes_kind(self):
        crd = widget_crd()
        crd["metadata"]["name"] = "gadgets.example.org"
        crd["spec"]["group"] = "example.org"
        crd["spec"]["names"] = {"kind": "Gadget", "plural": "gadgets"}
        self.assertEqual(self.sim.post(CRDS, crd)[0], 201)
        base = "/apis/example.org/v1/namespaces/default/gadgets"
        g = widget("g1")
        g["apiVersion"], g["kind"] = "example.org/v1", "Gadget"
        self.assertEqual(self.sim.post(base, g)[0], 201)
        c, st = self.sim.delete(CRDS + "/gadgets.example.org")
        self.assertEqual(c, 200)
        wait_for(lambda: self.sim.get(base)[0] == 404, msg="kind no longer served")
        names = [x["name"] for x in self.sim.get("/apis")[1]["groups"]]
        self.assertNotIn("example.org", names)

    def test_cel_rules_not_run_but_skipping_told(self):
        """x-kubernetes-validations are not evaluated (README: CEL); an
        object with a blocking schema error gets the real server's notice
        that the rules were not checked, and a CRD without rules does not."""
        crd = widget_crd()
        crd["metadata"]["name"] = "sprockets.example.com"
        crd["spec"]["names"] = {"kind": "Sprocket", "plural": "sprockets"}
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        spec["x-kubernetes-validations"] = [{"rule": "self.replicas <= 5",
                                             "message": "at most 5"}]
        self.assertEqual(self.sim.post(CRDS, crd)[0], 201)
        base = "/apis/example.com/v1/namespaces/default/sprockets"

        def sprocket(name, **spec):
            o = widget(name, **spec)
            o["kind"] = "Sprocket"
            return o
        c, o = self.sim.post(base, sprocket("s1", replicas=9))      # the rule is not run
        self.assertEqual(c, 201, o)
        body = self.assertStatus(self.sim.post(base, sprocket("s2", replicas="x")), 422,
                                 "Invalid")
        causes = [[x["field"], x["reason"]] for x in body["details"]["causes"]]
        self.assertEqual(causes, [["spec.replicas", "FieldValueTypeInvalid"],
                                  ["<nil>", "FieldValueInvalid"]])
        self.assertIn("some validation rules were not checked", body["message"])
        body = self.assertStatus(self.sim.post(WIDGETS, widget("w2", replicas="x")), 422,
                                 "Invalid")
        self.assertEqual(len(body["details"]["causes"]), 1)
        # a minimum is not blocking: the rules would run, no notice
        body = self.assertStatus(self.sim.post(base, sprocket("s3", replicas=-1)), 422,
                                 "Invalid")
        self.assertEqual(len(body["details"]["causes"]), 1)

    def test_crd_name_must_match(self):
        crd = widget_crd()
        crd["metadata"]["name"] = "wrong.example.com"
        self.assertStatus(self.sim.post(CRDS, crd), 422, "Invalid")
