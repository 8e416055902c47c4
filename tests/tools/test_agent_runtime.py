"""tools/agent-runtime against real servers: redis-server (and rabbitmq-server
for one class) plus kube-sim with its simulated agent-sandbox controller.

The test plays agentscaler's dispatcher by hand (DESIGN.md section 7): it
creates a claim labelled managed-by=agentscaler, waits until it is bound and
Ready, pushes the hand-off message to the sandbox's inbox, and then checks
what the runtime did: its event log, the sub-tasks on the publish queue, and
the Finished condition kube-sim reports.  Each test has its own namespace and
runtime; the servers are shared per class.  Waits are bounded polls.
"""
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

KUBE_ARGS = ("--cold-start-ms", "200", "--warm-bind-ms", "20")


class RuntimeCase(unittest.TestCase):
    N = 0
    WARM = 2

    @classmethod
    def setUpClass(cls):
        cls.redis = world.Redis()
        try:
            cls.kube = world.KubeSim(*KUBE_ARGS)
        except BaseException:
            cls.redis.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.kube.stop()
        cls.redis.stop()

    def setUp(self):
        RuntimeCase.N += 1
        self.ns = "rt%d" % RuntimeCase.N
        world.create_namespace(self.kube, self.ns)
        world.sandbox_pool(self.kube, "pool", self.WARM, ns=self.ns)
        self.runtimes = []

    def tearDown(self):
        for rt in self.runtimes:
            rc = rt.stop()
            if rc != 0 or os.environ.get("AGENTSCALER_TEST_LOGS"):
                print(rt.stderr()[-5000:], file=sys.stderr)
            rt.cleanup()
            self.assertEqual(rc, 0, "agent-runtime exit status")

    def runtime(self, **kw):
        kw.setdefault("namespace", self.ns)
        rt = world.AgentRuntime(self.kube, self.redis.url, **kw)
        self.runtimes.append(rt)
        return rt

    def claim(self, name, ns=None, managed=True):
        """Creates a claim and waits until it is bound and Ready; returns the sandbox."""
        ns = ns or self.ns
        world.create_claim(self.kube, name, ns=ns, managed=managed)
        return world.wait_claim_ready(self.kube, name, ns)

    def hand_off(self, tid, claim, sandbox, ns=None, parent=None, root=None, depth=0):
        ns = ns or self.ns
        task = {"id": tid, "payload": {"prompt": "do %s" % tid}}
        if parent:
            task["parent"] = parent
        msg = world.handoff(task, ns, sandbox, claim, parent=parent, root=root, depth=depth)
        self.redis.cmd("LPUSH", world.inbox_key(ns, sandbox), json.dumps(msg))
        return msg

    def dispatch(self, tid, claim, **kw):
        sb = self.claim(claim, kw.get("ns"))
        self.hand_off(tid, claim, sb, **kw)
        return sb

    def finished_in_kube(self, claim, sandbox, ns=None):
        ns = ns or self.ns

        def done():
            c = world.get_claim(self.kube, claim, ns)
            s = world.get_sandbox(self.kube, sandbox, ns)
            return world.is_true(c, "Finished") and world.is_true(s, "Finished") and (c, s)
        return wait_for(done, 15, what="claim %s and sandbox %s Finished=True" % (claim, sandbox))

    @staticmethod
    def order(rt, tid):
        """The events of task tid in log order."""
        return [e["event"] for e in rt.events() if e.get("id") == tid or
                (e["event"] == "spawned" and e.get("parent") == tid)]


class RedisRuntimeTest(RuntimeCase):
    def test_task_received_spawns_children_and_finishes(self):
        """received -> spawned (children on the list, exact shape) -> finished,
        and kube-sim shows the claim and the sandbox Finished=True."""
        q = "tasks-%s" % self.ns
        rt = self.runtime(publish_to="redis-list:" + q, children=2, work_ms=100)
        sb = self.dispatch("job-1", "c-job-1")
        fin = rt.wait_finished(1)[0]
        rec = rt.wait_received(1)[0]
        for k, v in {"id": "job-1", "parent": None, "root": "job-1", "depth": 0,
                     "sandbox": sb, "claim": "c-job-1", "namespace": self.ns,
                     "pool": "pool"}.items():
            self.assertEqual(rec[k], v, k)
        self.assertIsInstance(rec["t"], float)
        self.assertEqual(rec["arrival"]["transport"], "redis")
        self.assertEqual(rec["arrival"]["inbox"], world.inbox_key(self.ns, sb))
        self.assertLessEqual(rec["arrival"]["bound_t"], rec["t"])
        self.assertEqual(self.order(rt, "job-1"), ["received", "spawned", "spawned", "finished"])
        spawned = rt.events("spawned")
        self.assertEqual(sorted(e["id"] for e in spawned), ["job-1.1", "job-1.2"])
        for e in spawned:
            self.assertEqual((e["parent"], e["root"], e["depth"], e["sandbox"]),
                             ("job-1", "job-1", 1, sb))
        self.assertEqual((fin["worked"], fin["children"], fin["phase"]), (True, 2, "Succeeded"))
        self.assertGreaterEqual(fin["t"] - rec["t"], 0.1)   # it did work for --work-ms
        # The children wait on the publish list, oldest at the tail (LPUSH).
        got = [json.loads(x) for x in reversed(self.redis.cmd("LRANGE", q, 0, -1))]
        self.assertEqual(got, [{"id": "job-1.%d" % k, "parent": "job-1",
                                "payload": {"spawnedBy": "job-1"}} for k in (1, 2)])
        c, s = self.finished_in_kube("c-job-1", sb)
        self.assertEqual(world.condition(c, "Finished")["reason"], "PodSucceeded")
        self.assertEqual(world.condition(s, "Ready")["status"], "False")
        self.assertEqual(self.redis.cmd("LLEN", world.inbox_key(self.ns, sb)), 0)

    def test_duplicate_delivery_is_not_worked_twice(self):
        """The same task id twice in one inbox, then once more in another
        sandbox's inbox: one received, two duplicates, children published
        once; the second sandbox is released without working."""
        q = "tasks-%s" % self.ns
        rt = self.runtime(publish_to="redis-list:" + q, children=1, work_ms=300)
        sb = self.claim("c-a")
        msg = self.hand_off("dup-1", "c-a", sb)
        self.redis.cmd("LPUSH", world.inbox_key(self.ns, sb), json.dumps(msg))
        dups = rt.wait_event("duplicate", 1)
        self.assertEqual((dups[0]["id"], dups[0]["sandbox"], dups[0]["first_sandbox"]),
                         ("dup-1", sb, sb))
        rt.wait_finished(1)
        # A second claim carrying the same task (e.g. agentscaler crashed
        # before acking and re-created the claim) gets it again.
        sb2 = self.dispatch("dup-1", "c-b")
        self.assertNotEqual(sb, sb2)
        dups = rt.wait_event("duplicate", 2)
        self.assertEqual((dups[1]["sandbox"], dups[1]["first_sandbox"]), (sb2, sb))
        fins = rt.wait_finished(2)
        self.assertEqual([(f["sandbox"], f["worked"], f["children"]) for f in fins],
                         [(sb, True, 1), (sb2, False, 0)])
        self.assertEqual(rt.received_ids(), ["dup-1"])
        self.assertEqual(rt.ids("spawned"), ["dup-1.1"])
        self.assertEqual(self.redis.cmd("LLEN", q), 1)
        self.finished_in_kube("c-b", sb2)

    def test_max_depth_stops_spawning_and_stream_publish(self):
        """--max-depth 1: a root spawns, a depth-1 task does not.  Sub-tasks
        go to a Redis stream as XADD ... task <json>."""
        stream = "stream-%s" % self.ns
        rt = self.runtime(publish_to="redis-stream:" + stream, children=3, max_depth=1)
        self.dispatch("root", "c-root")
        self.dispatch("root.1", "c-child", parent="root", root="root", depth=1)
        fins = {f["id"]: f for f in rt.wait_finished(2)}
        self.assertEqual((fins["root"]["children"], fins["root.1"]["children"]), (3, 0))
        self.assertEqual(sorted(rt.ids("spawned")), ["root.1", "root.2", "root.3"])
        rec = {e["id"]: e for e in rt.events("received")}
        self.assertEqual((rec["root.1"]["parent"], rec["root.1"]["root"], rec["root.1"]["depth"]),
                         ("root", "root", 1))
        entries = self.redis.cmd("XRANGE", stream, "-", "+")
        self.assertEqual(len(entries), 3)
        for k, (_, fields) in enumerate(entries, 1):
            self.assertEqual(fields[0], "task")
            self.assertEqual(json.loads(fields[1]), {"id": "root.%d" % k, "parent": "root",
                                                     "payload": {"spawnedBy": "root"}})

    def test_unlimited_depth_spawns_at_every_depth(self):
        """No --max-depth: the runaway agent issue 6's cascade limits must stop."""
        q = "tasks-%s" % self.ns
        rt = self.runtime(publish_to="redis-list:" + q, children=1)
        self.dispatch("deep", "c-deep", parent="p", root="r", depth=40)
        self.assertEqual(rt.wait_finished(1)[0]["children"], 1)
        self.assertEqual(rt.events("spawned")[0]["depth"], 41)

    def test_spawn_at_start(self):
        """--spawn-at start: the children go out before the work, while the
        parent's claim is still unfinished."""
        q = "tasks-%s" % self.ns
        rt = self.runtime(publish_to="redis-list:" + q, children=2, work_ms=300,
                          extra=["--spawn-at", "start"])
        sb = self.dispatch("early-kids", "c-ek")
        rt.wait_event("spawned", 2)
        self.assertEqual(self.redis.cmd("LLEN", q), 2)
        self.assertFalse(world.is_true(world.get_claim(self.kube, "c-ek", self.ns), "Finished"))
        fin = rt.wait_finished(1)[0]
        self.assertEqual(self.order(rt, "early-kids"),
                         ["received", "spawned", "spawned", "finished"])
        self.assertEqual(fin["children"], 2)
        self.assertGreaterEqual(fin["t"] - rt.events("spawned")[-1]["t"], 0.3)
        self.finished_in_kube("c-ek", sb)

    def test_publish_failure_is_logged_and_the_sandbox_still_finishes(self):
        q = "tasks-%s" % self.ns
        self.redis.cmd("SET", q, "not a list")           # LPUSH answers WRONGTYPE
        rt = self.runtime(publish_to="redis-list:" + q, children=2)
        sb = self.dispatch("pub-fail", "c-pf")
        fin = rt.wait_finished(1)[0]
        err = rt.events("error")
        self.assertEqual(len(err), 1)
        self.assertEqual(err[0]["id"], "pub-fail")
        self.assertIn("WRONGTYPE", err[0]["reason"])
        self.assertEqual((fin["children"], rt.events("spawned")), (0, []))
        self.finished_in_kube("c-pf", sb)

    def test_exit_after_idle(self):
        """With --exit-after-idle the runtime finishes its task, then exits 0
        by itself and says why."""
        # Bound before the start: the runtime has a live agent from its first
        # list on, so it cannot go idle before the task arrives.
        sb = self.claim("c-idle")
        rt = self.runtime(exit_after_idle=1)
        self.hand_off("idle-1", "c-idle", sb)
        rt.wait_finished(1)
        self.finished_in_kube("c-idle", sb)
        wait_for(lambda: rt.proc.poll() is not None, 20, what="agent-runtime to exit by itself")
        self.assertEqual(rt.proc.returncode, 0)
        last = rt.events()[-1]
        self.assertEqual((last["event"], last["reason"], last["abandoned"]),
                         ("stopped", "idle", []))

    def test_waiting_agent_keeps_it_alive_until_claim_deleted(self):
        """A bound claim with no task yet is live work: no idle exit; deleting
        the claim ends the agent, and only then does the runtime go idle."""
        self.claim("c-wait")
        rt = self.runtime(exit_after_idle=0.5)
        # Three idle periods with a live (waiting) agent: still running.
        time.sleep(1.5)
        self.assertIsNone(rt.proc.poll(), rt.stderr())
        code, _ = self.kube.api("DELETE", world.EXT_API % self.ns + "sandboxclaims/c-wait")
        self.assertEqual(code, 200)
        wait_for(lambda: rt.proc.poll() is not None, 20, what="idle exit after the delete")
        self.assertEqual(rt.proc.returncode, 0)

    def test_sigterm_stops_cleanly_and_reports_abandoned_work(self):
        rt = self.runtime(work_ms=60000)
        self.dispatch("long", "c-long")
        rt.wait_received(1)
        self.assertEqual(rt.stop(), 0)
        last = rt.events()[-1]
        self.assertEqual((last["event"], last["reason"], last["abandoned"]),
                         ("stopped", "signal", ["long"]))
        self.assertEqual(rt.finished_ids(), [])

    def test_claim_bound_before_start_and_unmanaged_claims(self):
        """A task already waiting when the runtime starts is picked up from
        the initial list; a claim without managed-by=agentscaler is ignored."""
        sb_other = self.claim("c-other", managed=False)
        self.hand_off("other", "c-other", sb_other)
        sb = self.dispatch("early", "c-early")
        rt = self.runtime()
        rt.wait_finished(1)
        late = self.dispatch("late", "c-late")
        rt.wait_finished(2)
        self.assertEqual(rt.received_ids(), ["early", "late"])
        self.assertNotIn(sb_other, [e.get("sandbox") for e in rt.events()])
        self.assertEqual(self.redis.cmd("LLEN", world.inbox_key(self.ns, sb_other)), 1)
        self.finished_in_kube("c-early", sb)
        self.finished_in_kube("c-late", late)

    def test_watch_survives_drops_and_compaction(self):
        """A dropped watch resumes; a compacted history (410) makes it re-list."""
        rt = self.runtime()
        self.dispatch("w-1", "c-w1")
        rt.wait_finished(1)
        code, obj = self.kube.adm("POST", "/drop-watches")
        self.assertEqual(code, 200)
        self.assertGreaterEqual(obj["dropped"], 1)
        self.kube.adm("POST", "/compact")
        self.kube.adm("POST", "/drop-watches")
        self.dispatch("w-2", "c-w2")
        self.assertEqual([f["id"] for f in rt.wait_finished(2)], ["w-1", "w-2"])
        mine = [r for r in self.kube.requests() if r["method"] == "GET" and
                r["path"].endswith("/namespaces/%s/sandboxclaims" % self.ns)]
        watches = [r for r in mine if "watch=" in (r["query"] or "")]
        lists = [r for r in mine if "watch=" not in (r["query"] or "")]
        self.assertGreaterEqual(len(watches), 3)     # first, after the drop, after the 410
        self.assertGreaterEqual(len(lists), 2, mine)  # first, and the re-list after the 410

    def test_all_namespaces(self):
        other = self.ns + "-b"
        world.create_namespace(self.kube, other)
        world.sandbox_pool(self.kube, "pool", 1, ns=other)
        rt = self.runtime(all_namespaces=True)
        self.dispatch("a-1", "c-a1")
        self.dispatch("b-1", "c-b1", ns=other)
        fins = rt.wait_finished(2)
        self.assertEqual(sorted((f["namespace"], f["id"]) for f in fins),
                         [(self.ns, "a-1"), (other, "b-1")])

    def test_invalid_message_is_logged_and_the_agent_keeps_waiting(self):
        rt = self.runtime()
        sb = self.claim("c-bad")
        self.redis.cmd("LPUSH", world.inbox_key(self.ns, sb), "not json{")
        bad = rt.wait_event("invalid", 1)[0]
        self.assertEqual((bad["sandbox"], bad["body"]), (sb, "not json{"))
        self.hand_off("after-bad", "c-bad", sb)
        self.assertEqual(rt.wait_finished(1)[0]["id"], "after-bad")


class AuthRuntimeTest(unittest.TestCase):
    """kube-sim with --tokens: the runtime sends its bearer token."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rt-auth-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        tokens = os.path.join(self.dir, "tokens.csv")
        with open(tokens, "w") as f:
            f.write('s3cret-token,agent,u1,"system:masters"\n')
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.kube = world.KubeSim("--tokens", tokens, *KUBE_ARGS)
        self.addCleanup(self.kube.stop)
        self.kube.token = "s3cret-token"
        world.sandbox_pool(self.kube, "pool", 1)

    def test_token_is_used_and_never_logged(self):
        rt = world.AgentRuntime(self.kube, self.redis.url)
        self.addCleanup(rt.cleanup)
        world.create_claim(self.kube, "c1")
        sb = world.wait_claim_ready(self.kube, "c1")
        msg = world.handoff({"id": "auth-1"}, "default", sb, "c1")
        self.redis.cmd("LPUSH", world.inbox_key("default", sb), json.dumps(msg))
        rt.wait_finished(1)
        users = {r["user"] for r in self.kube.requests() if "sandboxclaims" in r["path"]
                 and "watch" in r["query"]}
        self.assertEqual(users, {"agent"})
        self.assertEqual(rt.stop(), 0)
        with open(rt.log_path) as f:
            self.assertNotIn("s3cret", f.read() + rt.stderr())

    def test_redis_password_from_file(self):
        locked = world.Redis(extra=["--requirepass", "redis-pw-0xbeef"])
        self.addCleanup(locked.stop)
        conn = world.RespConn(locked.url, password="redis-pw-0xbeef")
        self.addCleanup(conn.close)
        rt = world.AgentRuntime(self.kube, locked.url, password="redis-pw-0xbeef",
                                publish_to="redis-list:tasks", children=1)
        self.addCleanup(rt.cleanup)
        world.create_claim(self.kube, "c-pw")
        sb = world.wait_claim_ready(self.kube, "c-pw")
        msg = world.handoff({"id": "pw-1"}, "default", sb, "c-pw")
        conn.cmd("LPUSH", world.inbox_key("default", sb), json.dumps(msg))
        rt.wait_finished(1)
        self.assertEqual(conn.cmd("LLEN", "tasks"), 1)
        self.assertEqual(rt.stop(), 0)
        with open(rt.log_path) as f:
            self.assertNotIn("0xbeef", f.read() + rt.stderr())

    def test_wrong_token_is_reported_and_retried(self):
        self.kube.token = "bad-token-0xf00"
        rt = world.AgentRuntime(self.kube, self.redis.url, wait_ready=False)
        self.addCleanup(rt.cleanup)
        wait_for(lambda: rt.stderr().count("HTTP 401") >= 2, 15, what="two 401s (a retry)")
        self.assertEqual(rt.events("ready"), [])
        self.assertNotIn("0xf00", rt.stderr())
        self.assertEqual(rt.stop(), 0)


class RabbitRuntimeTest(unittest.TestCase):
    """Inbox and sub-tasks on a real rabbitmq-server via its management API."""

    @classmethod
    def setUpClass(cls):
        cls.rabbit = world.RabbitMQ()
        try:
            cls.kube = world.KubeSim(*KUBE_ARGS)
        except BaseException:
            cls.rabbit.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.kube.stop()
        cls.rabbit.stop()

    def publish(self, queue, msg, message_id):
        from urllib.parse import quote
        code, obj = self.rabbit.api("POST", "/api/exchanges/%s/amq.default/publish" %
                                    quote("/", safe=""),
                                    {"properties": {"message_id": message_id,
                                                    "delivery_mode": 2},
                                     "routing_key": queue, "payload": json.dumps(msg),
                                     "payload_encoding": "string"})
        self.assertEqual((code, obj.get("routed")), (200, True), obj)

    def get_all(self, queue):
        from urllib.parse import quote
        code, msgs = self.rabbit.api("POST", "/api/queues/%s/%s/get" % (
            quote("/", safe=""), quote(queue, safe="")),
            {"count": 100, "ackmode": "ack_requeue_false", "encoding": "auto"})
        self.assertEqual(code, 200, msgs)
        return msgs

    def test_rabbitmq_inbox_duplicates_and_children(self):
        world.sandbox_pool(self.kube, "pool", 1)
        self.rabbit.declare("tasks", durable=True)
        rt = world.AgentRuntime(self.kube, self.rabbit.http_url(), publish_to="rabbitmq:tasks",
                                children=2, work_ms=300)
        self.addCleanup(rt.cleanup)
        world.create_claim(self.kube, "c1")
        sb = world.wait_claim_ready(self.kube, "c1")
        inbox = world.inbox_queue("default", sb)
        self.rabbit.declare(inbox, durable=True)
        msg = world.handoff({"id": "rq-1", "payload": {}}, "default", sb, "c1")
        self.publish(inbox, msg, "rq-1")
        self.publish(inbox, msg, "rq-1")       # no server-side dedupe in RabbitMQ
        fin = rt.wait_finished(1)[0]
        self.assertEqual((fin["id"], fin["children"]), ("rq-1", 2))
        dup = rt.wait_event("duplicate", 1)[0]
        self.assertEqual(dup["id"], "rq-1")
        rec = rt.events("received")
        self.assertEqual(len(rec), 1)
        self.assertEqual((rec[0]["arrival"]["transport"], rec[0]["arrival"]["inbox"],
                          rec[0]["arrival"]["message_id"]), ("rabbitmq", inbox, "rq-1"))
        kids = self.get_all("tasks")
        self.assertEqual(sorted(m["properties"]["message_id"] for m in kids),
                         ["rq-1.1", "rq-1.2"])
        self.assertEqual(sorted(json.loads(m["payload"])["id"] for m in kids),
                         ["rq-1.1", "rq-1.2"])
        self.assertTrue(all(m["properties"]["delivery_mode"] == 2 for m in kids))
        wait_for(lambda: world.is_true(world.get_claim(self.kube, "c1"), "Finished"), 15,
                 what="claim Finished=True")
        self.assertEqual(self.get_all(inbox), [])
        self.assertEqual(rt.stop(), 0)


if __name__ == "__main__":
    unittest.main()
