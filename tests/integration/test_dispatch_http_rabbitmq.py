"""handoff.mode http with RabbitMQ on both ends (issue 16, docs/protocol.md
section 8, "Results destination"): tasks from a RabbitMQ queue handed off
through agent-sandbox's real sandbox-router to tools/agent-runtime
--handoff http (one per sandbox, on its loopback pod IP from kube-sim
--pod-ip-range), Results published to RabbitMQ with publisher confirms:
to a queue by the default exchange, or to a direct exchange with routing
key = the task id.  A real rabbitmq-server, one per module.

Checked against what the broker holds (the Results, with their AMQP
properties, each validated against docs/protocol/result.schema.json) and
what the runtimes saw (each task received exactly once).  Waits are
bounded polls; nothing asserts on speed.
"""
import base64
import json
import os
import shutil
import tempfile
import unittest
from urllib.parse import quote

import paths  # noqa: E402
import world  # noqa: E402
from world import wait_for  # noqa: E402

paths.use("clients/python")
from tests.clients import schemas  # noqa: E402

RABBIT = world.SharedRabbitMQ()
setUpModule, tearDownModule = RABBIT.start, RABBIT.stop
NS = "default"


def task(tid, **payload):
    return json.dumps({"id": tid, "payload": payload or {"n": tid}})


def take(rabbit, queue):
    """Takes (acks) the messages of queue: [(properties, Result)], each
    Result checked against the schema (also tests/e2e/test_e2e_http.py)."""
    code, msgs = rabbit.api("POST", "/api/queues/%%2F/%s/get" % quote(queue, safe=""),
                            {"count": 1000, "ackmode": "ack_requeue_false",
                             "encoding": "base64"})
    if code != 200:
        return []
    out = []
    for m in msgs:
        r = json.loads(base64.b64decode(m["payload"]))
        schemas.check("result", r)
        out.append((m["properties"], r))
    return out


def collect(rabbit, queue, n, got):
    """got, once it holds the Results of n distinct ids; else None."""
    got.extend(take(rabbit, queue))
    return got if len({r["id"] for _, r in got}) >= n else None


class HttpRabbitTest(world.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.rabbit = RABBIT.broker
        self.kube = world.KubeSim("--cold-start-ms", "300", "--warm-bind-ms", "10",
                                  *world.pod_ip_args())
        self.addCleanup(self.kube.stop)
        self.dir = tempfile.mkdtemp(prefix="dispatch-http-amqp-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.key_file = os.path.join(self.dir, "handoff-key")
        with open(self.key_file, "w") as f:
            f.write("a key the replicas share\n")
        self.port = world.free_port()
        self.ar = world.AgentRuntime(self.kube, None, namespace=NS, extra=(
            "--handoff", "http", "--port", str(self.port)))
        self.addCleanup(self.ar.cleanup)
        self.router = world.SandboxRouter()
        self.addCleanup(self.router.cleanup)

    def start(self, q, results):
        self.rabbit.declare(q, durable=True)
        world.sandbox_pool(self.kube, "wp", replicas=3)
        p = world.pool_dispatch("p", self.rabbit.amqp_url(), q, "wp", claim_ttl_seconds=600,
                                spare_min=2, spare_max=10, pollIntervalMs=200,
                                cooldownSeconds=60)
        p["spec"]["handoff"] = {"mode": "http", "via": "router", "router": self.router.url,
                                "port": self.port, "deadlineSeconds": 120}
        p["spec"]["results"] = dict(results, type="rabbitmq", address=self.rabbit.amqp_url())
        self.start_daemon({"pools": [p]}, extra=("--instance", "as-http-amqp",
                                                  "--handoff-key-file", self.key_file))

    def take(self, queue):
        return take(self.rabbit, queue)

    def collect(self, queue, n, got):
        return collect(self.rabbit, queue, n, got)

    def check_results(self, got, ids, failed):
        by_id = {r["id"]: (props, r) for props, r in got}
        self.assertEqual(sorted(by_id), sorted(ids))
        for t in ids:
            props, r = by_id[t]
            self.assertEqual(props.get("message_id"), t)
            self.assertEqual(props.get("correlation_id"), t)
            self.assertEqual(props.get("content_type"), "application/json")
            self.assertEqual(props.get("delivery_mode"), 2)
            self.assertEqual(r["state"], "failed" if t == failed else "completed")
            self.assertEqual(r["sandbox"]["pool"], "p")
            runs = [e for e in self.ar.events("received") if e["id"] == t]
            self.assertEqual(len(runs), 1, "%s ran %d times" % (t, len(runs)))
            self.assertEqual(runs[0]["sandbox"], r["sandbox"]["name"])
        self.assertEqual(by_id[failed][1]["error"]["reason"], "tool.broken")

    def test_results_to_a_queue_through_the_router(self):
        q = "htasks"
        self.start(q, {"queue": "hresults"})
        ids = ["q-%d" % i for i in range(5)]
        for t in ids[:4]:
            self.rabbit.publish_body(q, task(t))
        self.rabbit.publish_body(q, task(ids[4], fail="tool.broken"))
        got = wait_for(lambda g=[]: self.collect("hresults", 5, g), 60, 0.2, "5 results")
        self.check_results(got, ids, ids[4])
        # Every request went through the router; the source is drained.
        self.assertTrue(any(r["path"].startswith("/agentscaler/v1/tasks/q-")
                            for r in self.router.requests()))
        wait_for(lambda: self.rabbit.queue_info(q).get("messages", 1) == 0, 30, 0.5,
                 "source queue drained and acked")

    def test_results_to_an_exchange_by_task_id(self):
        """A producer binds a queue for exactly the ids it waits for; the
        exchange is declared by both sides alike (direct, durable)."""
        q = "xtasks"
        code, _ = self.rabbit.api("PUT", "/api/exchanges/%2F/xresults",
                                  {"type": "direct", "durable": True})
        self.assertIn(code, (201, 204))
        self.rabbit.declare("mine", durable=True)
        ids = ["x-0", "x-1", "x-2"]
        for t in ids:
            code, _ = self.rabbit.api("POST", "/api/bindings/%2F/e/xresults/q/mine",
                                      {"routing_key": t})
            self.assertIn(code, (201, 204))
        self.start(q, {"exchange": "xresults"})
        for t in ids[:2]:
            self.rabbit.publish_body(q, task(t))
        self.rabbit.publish_body(q, task(ids[2], fail="tool.broken"))
        self.rabbit.publish_body(q, task("x-unbound"))     # nobody waits for it
        got = wait_for(lambda g=[]: self.collect("mine", 3, g), 60, 0.2, "3 results")
        self.check_results(got, ids, ids[2])
        # x-unbound ran and ended; its Result went nowhere (no binding).
        wait_for(lambda: self.rabbit.queue_info(q).get("messages", 1) == 0, 30, 0.5,
                 "source queue drained and acked")
        self.assertEqual(len([e for e in self.ar.events("received")
                              if e["id"] == "x-unbound"]), 1)
        self.assertEqual(self.take("mine"), [])

    def test_results_connection_closed_by_the_broker(self):
        """The results connection closed from the broker's side while a
        task runs: its Result is published on the next connection, at
        least once (confirmed), and the task is not released before."""
        q = "ctasks"
        self.start(q, {"queue": "cresults"})
        self.rabbit.publish_body(q, task("c-0"))
        got = wait_for(lambda g=[]: self.collect("cresults", 1, g), 60, 0.2, "first result")
        closed = set()
        conns = self.rabbit.listed_connections(closed, "agentscaler.results")
        self.assertEqual(self.rabbit.close_connections(conns, closed), 1)
        self.rabbit.publish_body(q, task("c-1"))
        got = wait_for(lambda g=got: self.collect("cresults", 2, g), 60, 0.2, "second result")
        self.assertEqual(sorted({r["id"] for _, r in got}), ["c-0", "c-1"])
        self.assertEqual(len([e for e in self.ar.events("received") if e["id"] == "c-1"]), 1)


if __name__ == "__main__":
    unittest.main()
