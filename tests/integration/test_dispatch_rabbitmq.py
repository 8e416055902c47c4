"""Dispatch mode end to end on RabbitMQ (AMQP): real rabbitmq-server + kube-sim
+ the daemon + the example agent runtime (reading inbox queues through the
management API).  One broker per module; each test its own queues.
Waits are bounded polls; nothing asserts on speed.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "lib"))
import world  # noqa: E402
from world import wait_for  # noqa: E402

RABBIT = world.SharedRabbitMQ()
setUpModule, tearDownModule = RABBIT.start, RABBIT.stop


class DispatchRabbitTest(world.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.rabbit = RABBIT.broker
        self.kube = world.KubeSim("--cold-start-ms", "300", "--warm-bind-ms", "10")
        self.addCleanup(self.kube.stop)

    def publish(self, queue, body):
        code, _ = self.rabbit.api("POST", "/api/exchanges/%2F/amq.default/publish",
                                  {"properties": {"delivery_mode": 2}, "routing_key": queue,
                                   "payload": body, "payload_encoding": "string"})
        self.assertEqual(code, 200)

    def get_all(self, queue):
        code, msgs = self.rabbit.api("POST", "/api/queues/%%2F/%s/get" % queue,
                                     {"count": 100, "ackmode": "ack_requeue_false",
                                      "encoding": "auto"})
        return msgs if code == 200 else []

    def test_amqp_dispatch_hand_off_and_dead_letter(self):
        q = "dtasks"
        self.rabbit.declare(q, durable=True)
        world.sandbox_pool(self.kube, "wp", replicas=3)
        self.runtime = world.AgentRuntime(self.kube, self.rabbit.http_url(), work_ms=50)
        pool = world.pool_dispatch("p", self.rabbit.amqp_url(), q, "wp",
                                   claim_ttl_seconds=600, spare_max=10, pollIntervalMs=200)
        self.start_daemon({"pools": [pool]}, extra=("--instance", "as-amqp"))
        for i in range(4):
            self.publish(q, json.dumps({"id": "a-%d" % i, "payload": {}}))
        self.publish(q, "garbage")
        self.runtime.wait_finished(4, timeout=60)
        self.assertEqual(sorted(self.runtime.received_ids()), ["a-%d" % i for i in range(4)])
        recs = wait_for(lambda: self.get_all(q + ".rejected") or None, 20, what="dead letter")
        rec = json.loads(recs[0]["payload"])
        self.assertEqual(rec["reason"], "task.notJson")
        self.assertEqual(rec["original"], "garbage")
        # The source queue is empty and nothing is unacked.
        def drained():
            code, info = self.rabbit.api("GET", "/api/queues/%2F/" + q)
            return code == 200 and info.get("messages", 1) == 0
        wait_for(drained, 30, 0.5, "source queue drained and acked")

    def test_http_address_refused_for_dispatch(self):
        pool = world.pool_dispatch("p", self.rabbit.http_url(), "q", "wp")
        d = world.Daemon({"pools": [pool]}, self.kube)
        rc = d.proc.wait(30)
        logs = d.logs()
        d.log.close()
        d.cleanup()
        self.assertEqual(rc, 2)
        self.assertIn("amqp://", logs)


if __name__ == "__main__":
    unittest.main()
