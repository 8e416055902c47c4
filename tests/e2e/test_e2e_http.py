"""handoff.mode http on the real cluster (issue 16, "What it must show").

The real agent-sandbox controller binds SandboxClaims to members of a real
SandboxWarmPool; kwok runs their pods, with pod IPs on loopback: kwok
v0.8.0's pod-ready stage sets status.podIPs from PodIPsWith
(pkg/kwok/controllers/pod_controller.go), which allocates from the node's
spec.podCIDRs, else its spec.podCIDR, else kwok's --cidr; our nodes have
no podCIDR and tools/cluster/cluster.py passes --cidr 127.2.0.0/16.  tools/agent-runtime --handoff http serves each sandbox's
protocol at its pod IP (the claim's status.sandbox.podIPs[0], loopback),
so the real sandbox-router (--allow-loopback-pod-ip) reaches it as it
would reach a pod.  The daemon runs as the chart's ServiceAccount under
the real RBAC, hands tasks from Redis (or RabbitMQ) over HTTP through the
router and publishes the Results to a Redis list (or a RabbitMQ queue);
parents spawn children through the protocol under a real AgentQuota.

Checked against the real parts: the runtimes' own records (each task
received exactly once, in the sandbox whose pod IP it listened on), the
router's access log, the Results (schema-checked), the source and
processing lists.  Waits are bounded polls; nothing asserts on speed.
"""
import ipaddress
import json
import os
import re
import unittest

from tests.e2e import kube  # noqa: E402
import paths  # noqa: E402
import world  # noqa: E402
from world import wait_for  # noqa: E402

paths.use("clients/python")
from tests.clients import schemas  # noqa: E402

INSTANCE = "as-e2e-http"
PROCESSING = "tasks:processing:" + INSTANCE


def task(tid, **payload):
    return json.dumps({"id": tid, "payload": payload or {"n": tid}})


class HttpE2E(kube.E2ETestCase):
    prefix = "e2e-http"

    def setUp(self):
        super().setUp()
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.router = world.SandboxRouter()
        self.addCleanup(self.router.cleanup)
        self.key_file = os.path.join(self.router.dir, "handoff-key")
        with open(self.key_file, "w") as f:
            f.write("a key the replicas share\n")
        self.port = world.free_port()
        self.ar = world.AgentRuntime(self.kube, None, namespace=self.ns, extra=(
            "--handoff", "http", "--port", str(self.port)))
        self.addCleanup(self.ar.cleanup)

    def config(self, spare, quota=None):
        p = world.pool_dispatch("p", self.redis.url, "tasks", "wp", claim_ttl_seconds=600,
                                spare_min=spare, spare_max=spare + 8, pollIntervalMs=200,
                                cooldownSeconds=60, namespace=self.ns)
        p["spec"]["handoff"] = {"mode": "http", "via": "router", "router": self.router.url,
                                "port": self.port, "deadlineSeconds": 120}
        p["spec"]["results"] = {"type": "redis-list", "address": self.redis.url,
                                "queue": "results"}
        cfg = {"pools": [p]}
        if quota:
            cfg["quotas"] = [{"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentQuota",
                              "metadata": {"name": "q", "namespace": self.ns},
                              "spec": quota}]
        return cfg

    def start(self, spare, quota=None):
        return self.start_daemon(self.config(spare, quota), extra=(
            "--instance", INSTANCE, "--handoff-key-file", self.key_file))

    def received(self, tid):
        return [e for e in self.ar.events("received") if e["id"] == tid]

    def results(self):
        out = {}
        for raw in self.redis.cmd("LRANGE", "results", 0, -1):
            r = json.loads(raw)
            schemas.check("result", r)
            out[r["id"]] = r
        return out

    def pods(self):
        code, obj = self.kube.api("GET", "/api/v1/namespaces/%s/pods" % self.ns)
        self.assertEqual(code, 200, obj)
        return obj.get("items") or []

    def test_router_restart_and_sigkill_every_task_once(self):
        n = 10
        world.sandbox_pool(self.kube, "wp", replicas=4, ns=self.ns, timeout=120)
        # kwok's pods are on loopback: the runtime serves each at its pod IP.
        ips = wait_for(lambda: (lambda p: p if len(p) >= 4 else None)(
            [q["status"].get("podIP") for q in self.pods() if q["status"].get("podIP")]),
            120, 0.2, "4 pods with IPs")
        for ip in ips:
            self.assertTrue(ipaddress.ip_address(ip).is_loopback, ips)
        d = self.start(spare=4)
        ids = ["e-%02d" % i for i in range(n)]
        self.redis.pipeline([("LPUSH", "tasks", task(t, sleep=2)) for t in ids])
        # Tasks run; a long-poll is held by the router: kill it mid-run.
        wait_for(lambda: sum(len(self.received(t)) for t in ids) >= 2, 120, 0.1,
                 "two tasks running")
        wait_for(lambda: "/events" in self.router.log(), 60, 0.1, "a long-poll through the router")
        self.router.restart(kill=True)
        # Then agentscaler, SIGKILL, while tasks hold their sandboxes.
        wait_for(lambda: sum(len(self.received(t)) for t in ids) >= 4, 120, 0.1,
                 "four tasks received")
        d.proc.kill()
        d.proc.wait()
        d.log.close()
        self.daemon = None
        d2 = self.start(spare=4)
        rebuilt = re.search(r"namespace %s: (\d+) live tasks rebuilt" % self.ns, d2.logs())
        got = wait_for(lambda: (lambda r: r if len(r) >= n else None)(self.results()),
                       240, 0.2, "every result (log: %s)" % d2.logs()[-2000:])
        self.assertEqual(sorted(got), ids)
        for t in ids:
            r = got[t]
            self.assertEqual(r["state"], "completed", r)
            runs = self.received(t)
            self.assertEqual(len(runs), 1, "%s ran %d times: %s" % (t, len(runs), runs))
            self.assertEqual(runs[0]["sandbox"], r["sandbox"]["name"])
            self.assertEqual(r["sandbox"]["namespace"], self.ns)
        self.assertEqual(self.ar.events("duplicate"), [])
        # Each runtime listened on its pod's loopback IP, and the router saw
        # the hand-offs (the log of its second life included).
        listening = self.ar.events("listening")
        self.assertTrue(listening)
        for e in listening:
            self.assertTrue(ipaddress.ip_address(e["ip"]).is_loopback, e)
        self.assertEqual(self.router.log().count("starting sandbox-router"), 2)
        puts = [q for q in self.router.requests() if q["method"] == "PUT"]
        self.assertTrue(puts)
        self.assertEqual(self.redis.cmd("LLEN", "tasks"), 0)
        wait_for(lambda: self.redis.cmd("LLEN", PROCESSING) == 0, 60, 0.2, "all acked")
        print("\nreal cluster, http hand-off: %d tasks, %s rebuilt after SIGKILL, "
              "%d PUTs through the router" % (n, rebuilt.group(1) if rebuilt else "0",
                                              len(puts)))

    def test_parent_spawns_children_cascade_stopped_by_quota(self):
        """A parent's runtime spawns two children through the protocol
        (through the real router), one of which spawns a grandchild over
        the AgentQuota's maxDepth 1: the children run once each in their
        own sandboxes, the grandchild is rejected with cascade.maxDepth,
        that verdict reaches its parent's runtime, and the whole tree is
        read back from the parent's Result (and the rejected grandchild's
        failed Result on the results list)."""
        world.sandbox_pool(self.kube, "wp", replicas=3, ns=self.ns, timeout=120)
        self.start(spare=3, quota={"maxSandboxes": 10, "onExceeded": "reject",
                                   "cascade": {"maxDepth": 1, "maxChildrenPerTask": 4}})
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": "fam", "payload": {"spawn": [
            {"payload": {"spawn": [{"payload": {"n": 0}}]}}, {"payload": {"n": 2}}]}}))
        ids = ["fam", "fam/1", "fam/2", "fam/1/1"]
        try:
            got = wait_for(lambda: (lambda r: r if set(ids) <= set(r) else None)(
                self.results()), 240, 0.2, "the results of %s" % ids)
        except AssertionError:
            self.fail("results %s; runtime %s; daemon log: %s" % (
                sorted(self.results()), self.ar.events()[-30:], self.daemon.logs()[-6000:]))
        for t in ("fam", "fam/1", "fam/2"):
            self.assertEqual(got[t]["state"], "completed", got[t])
            runs = self.received(t)
            self.assertEqual(len(runs), 1, "%s ran %d times" % (t, len(runs)))
            self.assertEqual(runs[0]["sandbox"], got[t]["sandbox"]["name"])
        self.assertEqual(len({got[t]["sandbox"]["name"] for t in ("fam", "fam/1", "fam/2")}), 3)
        for k in ("fam/1", "fam/2"):
            self.assertEqual(got[k]["parent"], "fam")
            self.assertEqual(self.received(k)[0]["depth"], 1)
        # The tree, from the parent's Result.
        kids = {c["key"]: c for c in got["fam"]["result"]["children"]}
        self.assertEqual(sorted(kids), ["1", "2"])
        for k in ("1", "2"):
            self.assertEqual(kids[k]["verdict"], "admitted")
            self.assertEqual(kids[k]["parent"], "fam")
            self.assertIn("result", kids[k]["replies"])
        self.assertEqual(kids["2"]["result"], {"worked": True, "children": 0})
        grand = kids["1"]["result"]["children"]
        self.assertEqual(len(grand), 1)
        self.assertEqual(grand[0]["id"], "fam/1/1")
        self.assertEqual(grand[0]["verdict"], "rejected")
        self.assertEqual(grand[0]["reason"], "cascade.maxDepth")
        self.assertEqual(grand[0]["replies"], ["rejected"])
        # It never ran; its failed Result is on the results list.
        self.assertEqual(self.received("fam/1/1"), [])
        r = got["fam/1/1"]
        self.assertEqual((r["state"], r["error"]["reason"], r["sandbox"], r["parent"]),
                         ("failed", "cascade.maxDepth", None, "fam/1"))
        self.assertEqual(self.ar.events("duplicate"), [])
        # The replies went through the router too.
        posts = [q for q in self.router.requests() if q["method"] == "POST"]
        self.assertTrue(posts)
        wait_for(lambda: self.redis.cmd("LLEN", PROCESSING) == 0, 60, 0.2, "acked")

    def test_rabbitmq_tasks_handed_off_results_to_a_queue(self):
        """Tasks from a RabbitMQ queue handed off over HTTP through the
        real router, their Results published to a RabbitMQ queue (with
        publisher confirms); the source acked only after the hand-off."""
        from tests.integration import test_dispatch_http_rabbitmq as hr
        rabbit = world.RabbitMQ()
        self.addCleanup(rabbit.stop)
        rabbit.declare("htasks", durable=True)
        world.sandbox_pool(self.kube, "wp", replicas=3, ns=self.ns, timeout=120)
        cfg = self.config(3)
        p = cfg["pools"][0]
        p["spec"]["source"] = dict(p["spec"]["source"], type="rabbitmq",
                                   address=rabbit.amqp_url(), queue="htasks")
        p["spec"]["results"] = {"type": "rabbitmq", "address": rabbit.amqp_url(),
                                "queue": "hresults"}
        self.start_daemon(cfg, extra=("--instance", INSTANCE, "--handoff-key-file",
                                      self.key_file))
        ids = ["r-%d" % i for i in range(4)]
        for t in ids[:3]:
            rabbit.publish_body("htasks", task(t))
        rabbit.publish_body("htasks", task(ids[3], fail="tool.broken"))
        got = wait_for(lambda g=[]: hr.collect(rabbit, "hresults", 4, g), 120, 0.2,
                       "4 results")
        by_id = {r["id"]: (props, r) for props, r in got}
        self.assertEqual(sorted(by_id), ids)
        for t in ids:
            props, r = by_id[t]
            self.assertEqual((props.get("message_id"), props.get("delivery_mode")), (t, 2))
            self.assertEqual(r["state"], "failed" if t == ids[3] else "completed", r)
            runs = self.received(t)
            self.assertEqual(len(runs), 1, "%s ran %d times" % (t, len(runs)))
            self.assertEqual(runs[0]["sandbox"], r["sandbox"]["name"])
            self.assertEqual(r["sandbox"]["namespace"], self.ns)
        self.assertEqual(by_id[ids[3]][1]["error"]["reason"], "tool.broken")
        self.assertTrue(any(q["method"] == "PUT" and q["path"].startswith(
            "/agentscaler/v1/tasks/r-") for q in self.router.requests()))
        wait_for(lambda: rabbit.queue_info("htasks").get("messages", 1) == 0, 60, 0.5,
                 "source queue drained and acked")


if __name__ == "__main__":
    unittest.main()
