"""The Python producer (clients/python, agentscaler.producer) on a real
redis-server: the task message lands on the list or stream in the
envelope the daemon parses (checked by the daemon itself: dispatch mode on
kube-sim hands each one to its sandbox's inbox untouched, and dead-letters
what the schema also refuses), and results are waited for on a stream or
a list.  Waits are bounded polls; nothing asserts on speed."""
import json
import unittest

import world
from world import wait_for

from agentscaler import protocol as P
from agentscaler.peer import result_message
from agentscaler.producer import RedisProducer

from tests.clients import schemas
from tests.integration.test_dispatch_redis import DispatchWorld

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def agentscaler_publishes(redis, results, tid, stream=True, state="completed"):
    """What agentscaler does at a task's end (docs/protocol.md section 8):
    the Result, on the results stream (fields id, result) or list."""
    res = result_message(tid, state, value={"answer": tid} if state == "completed" else None,
                         error=None if state == "completed" else
                         {"reason": "runtime.lost", "message": "404", "retryable": True},
                         sandbox={"namespace": "default", "pool": "p", "claim": "p-x",
                                  "name": "wp-1"},
                         started_at=P.now_rfc3339(), traceparent=TP)
    schemas.check("result", res)
    if stream:
        redis.cmd("XADD", results, "*", "id", tid, "result", json.dumps(res))
    else:
        redis.cmd("LPUSH", results, json.dumps(res))
    return res


class RedisProducerTest(unittest.TestCase):
    def setUp(self):
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)

    def test_list_source_and_stream_results(self):
        p = RedisProducer(self.redis.url, "tasks", results="tasks.results")
        tid = p.submit({"repo": "x", "text": "héllo"})
        raw = self.redis.cmd("LRANGE", "tasks", 0, -1)
        self.assertEqual(len(raw), 1)
        msg = json.loads(raw[0])
        schemas.check("task-message", msg)
        self.assertEqual((msg["id"], msg["payload"]), (tid, {"repo": "x", "text": "héllo"}))
        self.assertTrue(P.valid_traceparent(msg["traceparent"]), "a new trace by default")
        # A result published before the wait started, for this task and another.
        agentscaler_publishes(self.redis, "tasks.results", "someone-else")
        pending = p.submit({"repo": "y"}, want_result=True)
        want = agentscaler_publishes(self.redis, "tasks.results", pending.id)
        self.assertEqual(pending.result(timeout=30), want)
        self.assertEqual(pending.result(timeout=0), want, "kept once read")
        # Waiting from the start of the stream finds an older one too.
        self.assertEqual(p.wait_result("someone-else", timeout=30, since="0-0")["id"],
                         "someone-else")

    def test_stream_source(self):
        p = RedisProducer(self.redis.url, "tstream", source="stream")
        tid = p.submit(id="job-1", payload=[1, 2], traceparent=TP, deadline=4102444800,
                       resources={"cpu": "250m"})
        entries = self.redis.cmd("XRANGE", "tstream", "-", "+")
        self.assertEqual(len(entries), 1)
        fields = entries[0][1]
        self.assertEqual(fields[0], b"task" if isinstance(fields[0], bytes) else "task")
        msg = json.loads(fields[1])
        schemas.check("task-message", msg)
        self.assertEqual(msg, {"id": tid, "payload": [1, 2], "traceparent": TP,
                               "deadline": "2100-01-01T00:00:00.000Z",
                               "resources": {"cpu": "250m"}})

    def test_list_results_single_reader(self):
        p = RedisProducer(self.redis.url, "tasks", results="res", results_type="list")
        a = p.submit(1, want_result=True)
        b = p.submit(2, want_result=True)
        rb = agentscaler_publishes(self.redis, "res", b.id, stream=False, state="failed")
        ra = agentscaler_publishes(self.redis, "res", a.id, stream=False)
        self.assertEqual(a.result(timeout=30), ra, "b's result, read first, is kept for b")
        self.assertEqual(b.result(timeout=30), rb)
        self.assertEqual(b.result(timeout=30)["error"]["reason"], "runtime.lost")

    def test_wait_times_out(self):
        p = RedisProducer(self.redis.url, "tasks", results="res")
        pending = p.submit(1, want_result=True)
        with self.assertRaises(TimeoutError):
            pending.result(timeout=0.2)

    def test_refuses_what_the_daemon_would_dead_letter(self):
        p = RedisProducer(self.redis.url, "tasks")
        for bad in ({"id": "has space"}, {"id": ""}, {"id": "x" * 254},
                    {"id": "a", "parent": "a"}, {"id": "a", "traceparent": TP.upper()}):
            with self.assertRaises(ValueError, msg=bad):
                p.submit(bad)
        self.assertEqual(self.redis.cmd("LLEN", "tasks"), 0)
        whole = {"id": "w-1", "payload": {"k": 1}, "custom": True}
        p.submit(whole)
        self.assertEqual(json.loads(self.redis.cmd("LRANGE", "tasks", 0, -1)[0]), whole,
                         "a whole message goes as it is")


# Messages the schema accepts and the daemon must hand off untouched, and
# messages both refuse (sent raw, past the producer's own checks), with
# the daemon's reason (scheduler/task.c task_parse).
GOOD = [dict(id="plain"),
        dict(id="job:42/a.b~c", payload={"nested": [1, {"ü": "ß"}]}),
        dict(id="res", resources={"cpu": "250m", "memory": "64Mi", "nvidia.com/gpu": 1}),
        dict(id="dl", deadline=4102444800.25, traceparent=TP)]
BAD = [({"id": "sp ace", "payload": 1}, "task.badId"),
       ({"id": "tp", "traceparent": TP.upper()}, "task.badTraceparent"),
       ({"id": "tp0", "traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"},
        "task.badTraceparent"),
       ({"id": "rs", "resources": {"cpu": "lots"}}, "task.badResources"),
       ({"id": "dd", "deadline": "tomorrow"}, "task.badDeadline"),
       ({"id": "pp", "parent": 7}, "task.badParent"),
       ({"payload": 1}, "task.missingId")]


class DaemonParsesTest(DispatchWorld):
    """The daemon's own parser on what the producer sends: dispatch mode
    on kube-sim hands each message to its sandbox's inbox with the
    original under "task" (scheduler/task.c task_handoff_body)."""

    def inboxes(self):
        out = {}
        for key in self.redis.cmd("KEYS", "agentscaler:inbox:default:*"):
            for raw in self.redis.cmd("LRANGE", key, 0, -1):
                m = json.loads(raw)
                out[m["agentscaler"]["id"]] = m
        return out

    def test_the_daemon_accepts_the_producers_envelope(self):
        world.sandbox_pool(self.kube, "wp", replicas=len(GOOD))
        pool = world.pool_dispatch("p", self.redis.url, "tasks", "wp", claim_ttl_seconds=600,
                                   spare_max=10, pollIntervalMs=200)
        self.start_daemon({"pools": [pool]}, extra=("--instance", "as-clients"))
        p = RedisProducer(self.redis.url, "tasks")
        sent = {}
        for kw in GOOD:
            kw = dict(kw)
            msg = P.task_message(payload=kw.pop("payload", {"n": 1}), **kw)
            schemas.check("task-message", msg)
            sent[p.submit(msg)] = msg
        for msg, _reason in BAD:
            self.assertTrue(schemas.errors("task-message", msg), "the schema refuses %s" % msg)
            self.redis.cmd("LPUSH", "tasks", json.dumps(msg))
        got = wait_for(lambda: (lambda ib: ib if len(ib) == len(GOOD) else None)(self.inboxes()),
                       60, 0.1, "every good task handed to its sandbox")
        for tid, msg in sent.items():
            self.assertEqual(got[tid]["task"], msg, "handed off untouched")
            self.assertEqual(got[tid]["agentscaler"]["depth"], 0)
        rejected = wait_for(lambda: (lambda r: r if len(r) == len(BAD) else None)(
            self.rejected()), 60, 0.1, "every bad task dead-lettered")
        self.assertEqual(sorted(r["reason"] for r in rejected), sorted(r for _m, r in BAD))
        # The trace context went onto the claim as given.
        ann = {c["metadata"]["annotations"]["agentscaler.io/task-id"]:
               c["metadata"]["annotations"].get("agentscaler.io/traceparent")
               for c in self.claims()}
        for tid, msg in sent.items():
            self.assertEqual(ann[tid], msg["traceparent"])


if __name__ == "__main__":
    unittest.main()
