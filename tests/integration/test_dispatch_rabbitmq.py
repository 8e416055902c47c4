"""Dispatch mode end to end on RabbitMQ (AMQP): real rabbitmq-server + kube-sim
+ the daemon + the example agent runtime (reading inbox queues through the
management API).  One broker per module; each test its own queues.
Waits are bounded polls; nothing asserts on speed.
"""
import json
import unittest

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
        self.rabbit.publish_body(queue, body)

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
        recs = wait_for(lambda: self.rabbit.take_all(q + ".rejected") or None, 20,
                        what="dead letter")
        rec = json.loads(recs[0])
        self.assertEqual(rec["reason"], "task.notJson")
        self.assertEqual(rec["original"], "garbage")
        # The source queue is empty and nothing is unacked.
        wait_for(lambda: self.rabbit.queue_info(q).get("messages", 1) == 0, 30, 0.5,
                 "source queue drained and acked")

    def holding(self):
        """Tasks of the daemon's pool holding their message unacked
        (/status: claiming or waiting for their sandbox)."""
        code, body = self.daemon.admin("/status")
        if code != 200:
            return 0
        pools = (body or {}).get("dispatch") or []
        return sum(p["tasks"]["claiming"] + p["tasks"]["waiting"] for p in pools)

    def test_connection_closed_by_broker_mid_load(self):
        """Issue 12, defects 2 and 6: the broker closes the consumer's
        connection twice while tasks hold unacked messages (cold starts of
        3 s).  Every task reaches an agent exactly once, nothing is
        dead-lettered (before: one task.duplicate per task in flight, which
        acked the only live copy), and the queue ends empty."""
        q = "dlost"
        n = 24
        self.rabbit.declare(q, durable=True)
        self.kube = world.KubeSim("--cold-start-ms", "3000", "--warm-bind-ms", "10")
        self.addCleanup(self.kube.stop)
        world.sandbox_pool(self.kube, "wp", replicas=0)
        self.runtime = world.AgentRuntime(self.kube, self.rabbit.http_url(), work_ms=50)
        pool = world.pool_dispatch("p", self.rabbit.amqp_url(), q, "wp",
                                   claim_ttl_seconds=600, spare_max=0, pollIntervalMs=200)
        self.start_daemon({"pools": [pool]}, extra=("--instance", "as-lost"))
        ids = ["l-%d" % i for i in range(n)]
        closed = set()
        for k in range(2):
            conns = self.rabbit.listed_connections(closed)
            for i in ids[k * n // 2:(k + 1) * n // 2]:
                self.publish(q, json.dumps({"id": i, "payload": {}}))
            # Tasks hold their messages unacked while their sandboxes start.
            wait_for(lambda: self.holding() >= 4, 30, 0.05,
                     "tasks holding unacked messages (round %d)" % k)
            self.assertGreater(self.rabbit.close_connections(conns, closed), 0)
        self.runtime.wait_finished(n, timeout=120)
        received = self.runtime.received_ids()
        self.assertEqual(sorted(received), sorted(ids), "each task reached an agent once")
        self.assertEqual(self.runtime.ids("duplicate"), [], "no task reached a sandbox twice")
        wait_for(lambda: self.rabbit.queue_info(q).get("messages", 1) == 0, 30, 0.5,
                 "source queue drained and acked")
        rejected = self.rabbit.take_all(q + ".rejected")
        self.assertEqual([json.loads(m)["reason"] for m in rejected], [],
                         "no dead letter (task.duplicate) caused by the reconnects")
        # Nor one attempted (a record whose publish did not land is logged).
        self.assertEqual(self.daemon.stop(), 0)
        self.assertNotIn("task.duplicate", self.daemon.logs())

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
