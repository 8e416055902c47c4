"""Producers cannot choose their own cost (issue 11).  A task's resources
are a claim; it is charged, per resource, the larger of what it asks and
its pool's SandboxTemplate requests (or spec.sandbox.defaultResources), and
a resource name that is not Kubernetes' ("CPU") is dead-lettered instead
of counting 0.

Against kube-sim: an AgentQuota of cpu 2 and a template whose pod requests
cpu 1.  Before the change a task without requests counted 0 and
{"CPU": "0.1"} counted 0 cpu, so every task fitted.
"""
import json
import subprocess
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

NS = "default"
CLAIMS = world.EXT_API % NS + "sandboxclaims"


def quota(**spec):
    return {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentQuota",
            "metadata": {"name": "limits", "namespace": NS}, "spec": spec}


def template(name, cpu):
    return {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxTemplate",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"podTemplate": {"spec": {"containers": [
                {"name": "agent", "image": "agent:1",
                 "resources": {"requests": {"cpu": cpu}}}]}}}}


class ChargeTest(world.RedisKubeTestCase):
    KUBE_ARGS = ("--warm-bind-ms", "10")

    def setUp(self):
        super().setUp()

    def make_template(self, name="tpl", cpu="1"):
        code, obj = self.kube.api("POST", world.EXT_API % NS + "sandboxtemplates",
                                  template(name, cpu))
        self.assertEqual(code, 201, obj)

    def start(self, **sandbox):
        pool = world.pool_dispatch("p", self.redis.url, "tasks", "wp", spare_max=0,
                                   pollIntervalMs=200)
        pool["spec"]["sandbox"].update(sandbox)
        self.start_daemon({"pools": [pool], "quotas": [quota(resources={"cpu": "2"})]},
                          extra=("--instance", "charge"))

    def push(self, *tasks):
        self.redis.pipeline([("LPUSH", "tasks", json.dumps(t)) for t in tasks])

    def ns_status(self):
        return self.daemon.admin("/status")[1]["namespaces"][0]

    def pool_status(self):
        return [p for p in self.daemon.admin("/status")[1]["dispatch"] if p["name"] == "p"][0]

    def explain(self, tid):
        out = subprocess.run([self.daemon.binary, "explain", tid, "--admin-addr",
                              "127.0.0.1:%d" % self.daemon.admin_port],
                             capture_output=True, text=True, timeout=30)
        return out.stdout if out.returncode == 0 else ""

    def claims_by_task(self):
        return {c["metadata"]["annotations"]["agentscaler.io/task-id"]: c
                for c in self.kube.api("GET", CLAIMS)[1].get("items") or []}

    def test_no_requests_and_less_are_charged_the_template(self):
        self.make_template()
        world.sandbox_pool(self.kube, "wp", replicas=1, template="tpl")
        self.start()
        # none: no requests; less: 100m < the template's 1; CPU: not a
        # Kubernetes name.  none and less take the 2 cpu between them.
        self.push({"id": "none"}, {"id": "less", "resources": {"cpu": "100m"}},
                  {"id": "upper", "resources": {"CPU": "0.1"}})
        wait_for(lambda: set(self.claims_by_task()) == {"none", "less"}, 30, 0.1,
                 "claims of none and less")
        wait_for(lambda: self.ns_status()["used"].get("cpu") == 2.0, 20, 0.1,
                 "2 cpu charged")
        recs = wait_for(lambda: self.redis.cmd("LRANGE", "tasks.rejected", 0, -1) or None, 20,
                        what="upper dead-lettered")
        rec = json.loads(recs[0])
        self.assertEqual((rec["taskId"], rec["reason"]), ("upper", "task.badResources"))
        self.assertIn('"CPU"', rec["detail"])
        self.assertIn('write \\"cpu\\"', json.dumps(rec["detail"]))
        self.assertIn("task.badResources", self.explain("upper"))
        # The claims carry the charge, for a restart to rebuild.
        for tid, c in self.claims_by_task().items():
            self.assertEqual(json.loads(c["metadata"]["annotations"]["agentscaler.io/resources"]),
                             {"cpu": 1}, tid)
        # A third task finds no cpu left: deferred, not admitted at 0.
        self.push({"id": "third"})
        wait_for(lambda: "quota.resources" in self.explain("third"), 20, 0.2, "third deferred")
        self.assertEqual(set(self.claims_by_task()), {"none", "less"})
        charge = self.pool_status()["charge"]
        self.assertEqual((charge["source"], charge["template"], charge["resources"]),
                         ("template", "tpl", {"cpu": 1}))

    def test_default_resources_replace_the_template(self):
        # The template asks cpu 1; the pool says 2: one task takes the quota.
        self.make_template()
        world.sandbox_pool(self.kube, "wp", replicas=1, template="tpl")
        self.start(defaultResources={"cpu": "2"})
        self.push({"id": "one"}, {"id": "two", "resources": {"cpu": "100m"}})
        wait_for(lambda: "quota.resources" in self.explain("two"), 20, 0.2, "two deferred")
        self.assertEqual(set(self.claims_by_task()), {"one"})
        self.assertEqual(self.ns_status()["used"]["cpu"], 2.0)
        self.assertEqual(self.pool_status()["charge"]["source"], "defaultResources")

    def test_unreadable_template_defers_until_it_is_read(self):
        # The warm pool names a template that does not exist yet: the task
        # waits rather than being charged 0, and goes once it appears.
        world.sandbox_pool(self.kube, "wp", replicas=0, template="later", wait_ready=False)
        self.kube.api("DELETE", world.EXT_API % NS + "sandboxtemplates/later")
        self.start()
        self.push({"id": "early"})
        wait_for(lambda: "sandbox.templateUnknown" in self.explain("early"), 20, 0.2,
                 "early deferred for the template")
        self.assertEqual(self.claims_by_task(), {})
        self.assertIn("later", self.pool_status()["charge"]["error"])
        self.make_template("later", "1500m")
        wait_for(lambda: "early" in self.claims_by_task(), 30, 0.2, "early admitted")
        self.assertEqual(self.ns_status()["used"]["cpu"], 1.5)


if __name__ == "__main__":
    unittest.main()
