"""The Python producer (agentscaler.producer.RabbitProducer, pika) on a
real rabbitmq-server: persistent messages with message_id = the task id,
publisher confirms, results through an exchange keyed by task id (a
waiter binds only its own ids) or a single reader's queue; and the
daemon's own parser on what it sends (dispatch mode over AMQP on kube-sim
hands each message to its sandbox's inbox queue untouched).  One broker
for the module.  Waits are bounded polls; nothing asserts on speed."""
import json
import unittest
from urllib.parse import quote

import pika
import world
from world import wait_for

from agentscaler import protocol as P
from agentscaler.peer import result_message
from agentscaler.producer import RabbitProducer

from tests.clients import schemas

RABBIT = world.SharedRabbitMQ()
setUpModule, tearDownModule = RABBIT.start, RABBIT.stop


def url(rabbit):
    return "amqp://guest:guest@127.0.0.1:%d/%%2F" % rabbit.amqp_port


class Agentscaler:
    """What agentscaler does at a task's end (docs/protocol.md section 8):
    the Result, persistent, message_id and correlation_id the task id, to
    the results exchange with routing key = the task id (or a queue)."""

    def __init__(self, rabbit):
        self.conn = pika.BlockingConnection(pika.URLParameters(url(rabbit)))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()

    def publish(self, tid, exchange="", routing_key=None, state="completed"):
        res = result_message(tid, state, value={"ok": tid} if state == "completed" else None,
                             error=None if state == "completed" else
                             {"reason": "cascade.maxDepth", "message": "depth 4 > 3",
                              "retryable": False})
        schemas.check("result", res)
        self.ch.basic_publish(exchange, routing_key or tid, json.dumps(res).encode(),
                              properties=pika.BasicProperties(
                                  delivery_mode=2, content_type="application/json",
                                  message_id=tid, correlation_id=tid))
        return res

    def close(self):
        self.conn.close()


class RabbitProducerTest(unittest.TestCase):
    def setUp(self):
        self.rabbit = RABBIT.broker
        self.agentscaler = Agentscaler(self.rabbit)
        self.addCleanup(self.agentscaler.close)

    def producer(self, queue, **kw):
        p = RabbitProducer(url(self.rabbit), queue, **kw)
        self.addCleanup(p.close)
        return p

    def get(self, queue):
        code, msgs = self.rabbit.api("POST", "/api/queues/%s/%s/get" % (quote("/", safe=""),
                                                                        queue),
                                     {"count": 100, "ackmode": "ack_requeue_false",
                                      "encoding": "auto"})
        self.assertEqual(code, 200)
        return msgs

    def test_submit_persistent_with_message_id(self):
        self.rabbit.declare("ptasks", durable=True)
        p = self.producer("ptasks")
        tid = p.submit({"q": "é"}, resources={"memory": "1Gi"})
        msgs = self.get("ptasks")
        self.assertEqual(len(msgs), 1)
        props = msgs[0]["properties"]
        self.assertEqual((props["message_id"], props["delivery_mode"], props["content_type"]),
                         (tid, 2, "application/json"))
        msg = json.loads(msgs[0]["payload"])
        schemas.check("task-message", msg)
        self.assertEqual((msg["id"], msg["payload"], msg["resources"]),
                         (tid, {"q": "é"}, {"memory": "1Gi"}))

    def test_unroutable_publish_raises(self):
        p = self.producer("no-such-queue")
        with self.assertRaises(pika.exceptions.UnroutableError):
            p.submit(1)

    def test_results_through_an_exchange_keyed_by_task_id(self):
        self.rabbit.declare("xtasks", durable=True)
        p = self.producer("xtasks", results_exchange="xtasks.results", declare_exchange=True)
        a = p.submit({"n": 1}, want_result=True)
        b = p.submit({"n": 2}, want_result=True)
        self.agentscaler.publish("not-mine", "xtasks.results")     # routed nowhere
        rb = self.agentscaler.publish(b.id, "xtasks.results", state="failed")
        ra = self.agentscaler.publish(a.id, "xtasks.results")
        self.assertEqual(a.result(timeout=30), ra)
        self.assertEqual(b.result(timeout=30), rb)
        # The waiter's queues are gone once read.
        code, qs = self.rabbit.api("GET", "/api/queues")
        self.assertEqual([q["name"] for q in qs if q["name"].startswith("amq.gen")], [])

    def test_results_queue_single_reader(self):
        self.rabbit.declare("qtasks", durable=True)
        self.rabbit.declare("qtasks.results", durable=True)
        p = self.producer("qtasks", results_queue="qtasks.results")
        a = p.submit(1, want_result=True)
        b = p.submit(2, want_result=True)
        rb = self.agentscaler.publish(b.id, routing_key="qtasks.results")
        ra = self.agentscaler.publish(a.id, routing_key="qtasks.results")
        self.assertEqual(a.result(timeout=30), ra)
        self.assertEqual(b.result(timeout=30), rb)

    def test_wait_times_out(self):
        self.rabbit.declare("ttasks", durable=True)
        p = self.producer("ttasks", results_exchange="ttasks.results", declare_exchange=True)
        pending = p.submit(1, want_result=True)
        with self.assertRaises(TimeoutError):
            pending.result(timeout=0.3)


class DaemonParsesTest(world.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.rabbit = RABBIT.broker
        self.kube = world.KubeSim("--cold-start-ms", "300", "--warm-bind-ms", "10")
        self.addCleanup(self.kube.stop)

    def inboxes(self):
        code, qs = self.rabbit.api("GET", "/api/queues")
        out = {}
        for q in qs if code == 200 else []:
            if q["name"].startswith("agentscaler.inbox.default."):
                for raw in self.rabbit.take_all(q["name"]):
                    m = json.loads(raw)
                    self.got[m["agentscaler"]["id"]] = m
        out.update(self.got)
        return out

    def test_the_daemon_accepts_the_producers_envelope(self):
        self.got = {}
        q = "dtasks"
        self.rabbit.declare(q, durable=True)
        world.sandbox_pool(self.kube, "wp", replicas=3)
        pool = world.pool_dispatch("p", self.rabbit.amqp_url(), q, "wp", claim_ttl_seconds=600,
                                   spare_max=10, pollIntervalMs=200)
        self.start_daemon({"pools": [pool]}, extra=("--instance", "as-clients-amqp"))
        p = RabbitProducer(url(self.rabbit), q)
        self.addCleanup(p.close)
        sent = {}
        for kw in ({}, {"resources": {"cpu": "1"}}, {"deadline": 4102444800}):
            msg = P.task_message(payload={"k": list(kw)}, **kw)
            sent[p.submit(msg)] = msg
        got = wait_for(lambda: (lambda ib: ib if len(ib) == len(sent) else None)(self.inboxes()),
                       60, 0.2, "every task handed to its sandbox's inbox queue")
        for tid, msg in sent.items():
            self.assertEqual(got[tid]["task"], msg, "handed off untouched")
        self.assertEqual(self.rabbit.take_all(q + ".rejected"), [])


if __name__ == "__main__":
    unittest.main()
