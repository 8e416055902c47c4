"""The copy-paste producers of examples/ (Node.js with ioredis and
amqplib, Go with go-redis and amqp091-go, versions pinned in
examples/node/package-lock.json and examples/go/go.mod), each run against
a real redis-server or rabbitmq-server: the task arrives in the envelope
of task-message.schema.json, and the Result that agentscaler would
publish reaches the waiting producer.  Builds them first (npm ci, go
build: cached after the first run).  Waits are bounded."""
import json
import os
import subprocess
import unittest

import pika
import world

from agentscaler.peer import result_message

from tests.clients import schemas

ROOT = world.ROOT
NODE = os.path.join(ROOT, "examples", "node")
GO = os.path.join(ROOT, "examples", "go")
BIN = os.path.join(ROOT, "build", "examples")
RABBIT = world.SharedRabbitMQ()


def setUpModule():
    if not os.path.isdir(os.path.join(NODE, "node_modules")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE, check=True,
                       stdout=subprocess.DEVNULL, timeout=300)
    os.makedirs(BIN, exist_ok=True)
    subprocess.run(["go", "build", "-o", BIN + "/", "./producer-redis", "./producer-rabbitmq"],
                   cwd=GO, check=True, timeout=600)
    RABBIT.start()


def tearDownModule():
    RABBIT.stop()


PROGRAMS = {"node-redis": ["node", os.path.join(NODE, "producer-redis.js")],
            "node-rabbitmq": ["node", os.path.join(NODE, "producer-rabbitmq.js")],
            "go-redis": [os.path.join(BIN, "producer-redis")],
            "go-rabbitmq": [os.path.join(BIN, "producer-rabbitmq")]}


class ExampleCase(unittest.TestCase):
    def run_producer(self, name, env, payload):
        p = subprocess.Popen(PROGRAMS[name] + [json.dumps(payload)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, WAIT_SECONDS="60", **env))
        self.addCleanup(lambda: p.poll() is None and p.kill())
        return p

    def finish(self, p, msg, res):
        out, err = p.communicate(timeout=90)
        self.assertEqual(p.returncode, 0, err)
        lines = [json.loads(x) for x in out.splitlines()]
        self.assertEqual(lines[0], {"submitted": msg})
        got = lines[1]["result"]
        for k in ("id", "state", "result", "sandbox", "finishedAt"):
            self.assertEqual(got.get(k), res.get(k), k)

    @staticmethod
    def result(tid):
        res = result_message(tid, "completed", value={"lines": [1, 2]},
                             sandbox={"namespace": "default", "pool": "p", "claim": "p-1",
                                      "name": "wp-1"})
        schemas.check("result", res)
        return res


class RedisExamplesTest(ExampleCase):
    def setUp(self):
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)

    def take(self, queue, stream):
        if stream:
            got = world.wait_for(lambda: self.redis.cmd("XRANGE", queue, "-", "+") or None,
                                 60, 0.05, "the task on the stream")
            fields = got[0][1]
            self.assertEqual(fields[0], "task")
            return json.loads(fields[1])
        return json.loads(self.redis.cmd("BRPOP", queue, 60)[1])

    def check(self, name, stream=False):
        env = {"REDIS_URL": self.redis.url, "QUEUE": "q-" + name, "RESULTS": "r-" + name}
        if stream:
            env["QUEUE_TYPE"] = "stream"
        p = self.run_producer(name, env, {"from": name, "ü": 1})
        msg = self.take("q-" + name, stream)
        schemas.check("task-message", msg)
        self.assertEqual(msg["payload"], {"from": name, "ü": 1})
        # Another task's result first: the producer waits for its own.
        other = self.result("someone-else")
        self.redis.cmd("XADD", "r-" + name, "*", "id", other["id"], "result", json.dumps(other))
        res = self.result(msg["id"])
        self.redis.cmd("XADD", "r-" + name, "*", "id", msg["id"], "result", json.dumps(res))
        self.finish(p, msg, res)

    def test_node_redis_list(self):
        self.check("node-redis")

    def test_node_redis_stream(self):
        self.check("node-redis", stream=True)

    def test_go_redis_list(self):
        self.check("go-redis")

    def test_go_redis_stream(self):
        self.check("go-redis", stream=True)


class RabbitExamplesTest(ExampleCase):
    def check(self, name):
        rabbit = RABBIT.broker
        q, ex = "q-" + name, "r-" + name
        rabbit.declare(q, durable=True)
        url = "amqp://guest:guest@127.0.0.1:%d/%%2F" % rabbit.amqp_port
        p = self.run_producer(name, {"AMQP_URL": url, "QUEUE": q, "RESULTS_EXCHANGE": ex},
                              {"from": name})
        raw = world.wait_for(lambda: rabbit.take_all(q) or None, 60, 0.05, "the task")
        msg = json.loads(raw[0])
        schemas.check("task-message", msg)
        res = self.result(msg["id"])
        conn = pika.BlockingConnection(pika.URLParameters(url))
        self.addCleanup(conn.close)
        ch = conn.channel()
        ch.confirm_delivery()
        for r in (self.result("someone-else"), res):
            ch.basic_publish(ex, r["id"], json.dumps(r).encode(),
                             properties=pika.BasicProperties(delivery_mode=2,
                                                             message_id=r["id"]))
        self.finish(p, msg, res)

    def test_node_rabbitmq(self):
        self.check("node-rabbitmq")

    def test_go_rabbitmq(self):
        self.check("go-rabbitmq")


if __name__ == "__main__":
    unittest.main()
