"""Conformance of the Python runtime (clients/python, agentscaler.runtime)
to agentscaler.io/v1 (docs/protocol.md): hand-off idempotency and 409,
the long-poll (wakes on an event, times out empty, replays after a dropped
answer), spawn + replies + child results, acknowledgement, tokens, and a
runtime restart seen as 404 (behind the real sandbox-router, with the
router's own errors: test_router.py).  Every message is checked against
its schema (schemas.CheckedPeer).  Waits are bounded; nothing asserts on speed."""
import socket
import threading
import unittest

from agentscaler import protocol as P
from agentscaler.peer import Peer, reply, result_message, task_body
from agentscaler.runtime import ChildFailed, ChildRejected, Runtime, TaskFailed

from tests.clients import schemas
from tests.clients.schemas import CheckedPeer

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def message(tid, **kw):
    return P.task_message(id=tid, payload={"n": tid}, traceparent=TP, **kw)


class Gate:
    """A handler that waits for the test to release it, counting runs."""

    def __init__(self, result=None, exc=None):
        self.go = threading.Event()
        self.runs = []
        self.result, self.exc = result, exc

    def __call__(self, task, ctx):
        self.runs.append(task["id"])
        if not self.go.wait(60):
            raise TaskFailed("test.gateTimeout", "never released")
        if self.exc:
            raise self.exc
        return self.result if self.result is not None else {"echo": task["payload"]}


class RuntimeCase(unittest.TestCase):
    def runtime(self, handler, **kw):
        rt = Runtime(handler, port=0, host="127.0.0.1", **kw).start()
        self.addCleanup(rt.stop)
        return rt

    def peer(self, rt, **kw):
        return CheckedPeer("http://127.0.0.1:%d" % rt.port, **kw)

    def poll_until(self, peer, tid, pred, after=0, what="events"):
        """Long-polls (wait 5 s) until pred(events so far) holds; at most 12
        polls.  Returns (events, last EventList)."""
        got = []
        for _ in range(12):
            code, el = peer.events(tid, after, wait=5)
            self.assertEqual(code, 200, el)
            got += el["events"]
            after = el["next"]
            if pred(got):
                return got, el
        self.fail("no %s: %s" % (what, got))

    def end(self, peer, tid):
        evs, el = self.poll_until(peer, tid, lambda ev: ev and ev[-1]["type"] in P.TERMINAL,
                                  what="terminal event")
        return evs[-1], el


class HandoffTest(RuntimeCase):
    def test_put_is_idempotent_by_task_id(self):
        gate = Gate()
        rt = self.runtime(gate)
        peer = self.peer(rt)
        body = task_body(message("t-1"))
        code, st = peer.put(body)
        self.assertEqual((code, st["state"], st["next"]), (201, "running", 1))
        for attempt in (1, 2):      # a retried or replayed PUT, whatever its attempt
            body2 = task_body(message("t-1"), attempt=attempt)
            code, st2 = peer.put(body2)
            self.assertEqual(code, 200)
            self.assertEqual((st2["id"], st2["attempt"], st2["instance"]),
                             ("t-1", 1, st["instance"]))
        gate.go.set()
        ev, _ = self.end(peer, "t-1")
        self.assertEqual(ev["type"], "completed")
        self.assertEqual(ev["result"], {"echo": {"n": "t-1"}})
        code, _ = peer.put(body)
        self.assertEqual(code, 200, "an ended task not yet acknowledged is still the same task")
        self.assertEqual(gate.runs, ["t-1"], "the handler ran once")

    def test_a_different_task_is_refused_with_409(self):
        gate = Gate()
        rt = self.runtime(gate)
        peer = self.peer(rt)
        self.assertEqual(peer.put(task_body(message("a")))[0], 201)
        code, err = peer.put(task_body(message("b")))
        self.assertEqual(code, 409)
        self.assertEqual((err["reason"], err["taskId"]), ("task.conflict", "a"))
        gate.go.set()
        self.end(peer, "a")
        code, err = peer.put(task_body(message("b")))
        self.assertEqual((code, err["reason"]), (409, "task.conflict"),
                         "ended but not acknowledged: still held")
        self.assertEqual(peer.delete("a")[0], 204)
        self.assertEqual(peer.put(task_body(message("b")))[0], 201)
        self.assertEqual(gate.runs, ["a", "b"])

    def test_bad_hand_offs_are_400(self):
        rt = self.runtime(Gate())
        peer = self.peer(rt)
        body = task_body(message("x"))
        code, err = peer.request("PUT", P.BASE_PATH + "/tasks/y", body)
        self.assertEqual((code, err["reason"]), (400, "request.invalid"))
        code, err = Peer(peer_url(rt)).request("PUT", P.BASE_PATH + "/tasks/x", {"kind": "Task"})
        self.assertEqual(code, 400)
        self.assertEqual(peer.request("GET", P.BASE_PATH + "/nope")[0], 404)
        self.assertEqual(peer.request("POST", P.BASE_PATH + "/tasks/x")[0], 405)
        self.assertEqual(peer.health()[1]["task"], None, "nothing was accepted")

    def test_an_id_whose_slash_a_proxy_decoded(self):
        """A child's id holds '/', sent as %2F; agent-sandbox's
        sandbox-router forwards it decoded: the method says where the id
        ends, both spellings reach the same task."""
        gate = Gate()
        rt = self.runtime(gate)
        peer = self.peer(rt)
        body = task_body(message("par/1"))
        code, st = peer.request("PUT", P.BASE_PATH + "/tasks/par/1", body)
        self.assertEqual((code, st.get("id")), (201, "par/1"), st)
        code, el = peer.request("GET", P.BASE_PATH + "/tasks/par/1/events?after=0&wait=0")
        self.assertEqual((code, el["taskId"]), (200, "par/1"))
        code, el = peer.request("GET", P.BASE_PATH + "/tasks/par%2F1/events?after=0&wait=0")
        self.assertEqual((code, el["taskId"]), (200, "par/1"))
        self.assertEqual(peer.request("PUT", P.BASE_PATH + "/tasks/par%2F1", body)[0], 200)
        gate.go.set()
        self.end(peer, "par/1")
        self.assertEqual(peer.request("DELETE", P.BASE_PATH + "/tasks/par/1")[0], 204)
        self.assertEqual(gate.runs, ["par/1"])

    def test_health(self):
        gate = Gate()
        rt = self.runtime(gate)
        peer = self.peer(rt)
        code, h = peer.health()
        self.assertEqual((code, h["task"]), (200, None))
        self.assertIn(P.API_VERSION, h["protocols"])
        peer.put(task_body(message("h")))
        self.assertEqual(peer.health()[1]["task"], {"id": "h", "state": "running"})
        gate.go.set()


class LongPollTest(RuntimeCase):
    def test_wakes_on_an_event(self):
        gate = Gate()
        rt = self.runtime(gate)
        peer = self.peer(rt)
        peer.put(task_body(message("w")))
        code, el = peer.events("w", 0, 0)
        self.assertEqual([e["type"] for e in el["events"]], ["started"])
        self.assertEqual(el["events"][0]["attempt"], 1)
        out = {}

        def poll():
            out["r"] = peer.events("w", 1, wait=60)
        th = threading.Thread(target=poll)
        th.start()
        gate.go.set()
        th.join(90)
        code, el = out["r"]
        # Only the completion could have answered a 60 s wait with an event.
        self.assertEqual(code, 200)
        self.assertEqual([e["type"] for e in el["events"]], ["completed"])
        self.assertEqual((el["state"], el["next"]), ("completed", 2))

    def test_times_out_empty_and_progress_does_not_wake(self):
        seen = threading.Event()

        def handler(task, ctx):
            ctx.progress("one", fraction=0.25)
            ctx.progress("two", fraction=0.5, data={"step": 2})
            seen.set()
            more.wait(60)
            ctx.progress("three")
            seen2.set()
            gate.go.wait(60)
            return 1
        gate = Gate()
        more, seen2 = threading.Event(), threading.Event()
        rt = self.runtime(handler)
        peer = self.peer(rt)
        peer.put(task_body(message("p")))
        self.assertTrue(seen.wait(30))
        code, el = peer.events("p", 1, wait=0.3)
        self.assertEqual(code, 200)
        # Two progress reports before any answer: one event, the latest level.
        self.assertEqual([(e["type"], e["seq"], e["message"]) for e in el["events"]],
                         [("progress", 2, "two")])
        code, el = peer.events("p", el["next"], wait=0.3)
        self.assertEqual((code, el["events"], el["next"], el["state"]), (200, [], 2, "running"))
        # Once an answer carried it, a newer level is a new event.
        more.set()
        self.assertTrue(seen2.wait(30))
        code, el = peer.events("p", 2, wait=0.3)
        self.assertEqual([(e["seq"], e["message"]) for e in el["events"]], [(3, "three")])
        gate.go.set()

    def test_bad_polls_are_400(self):
        gate = Gate()
        rt = self.runtime(gate)
        peer = self.peer(rt)
        peer.put(task_body(message("b")))
        for q in ("after=-1", "after=x", "wait=-2", "after=9"):
            code, err = peer.request("GET", P.BASE_PATH + "/tasks/b/events?" + q)
            self.assertEqual((code, err["reason"]), (400, "request.invalid"), q)
        gate.go.set()


class AcknowledgementTest(RuntimeCase):
    def test_after_acknowledges_delete_forgets(self):
        def handler(task, ctx):
            ctx.spawn({"payload": 1})
            ctx.spawn({"payload": 2})
            gate.go.wait(60)
            return "done"
        gate = Gate()
        rt = self.runtime(handler, exit_after_ack=True)
        peer = self.peer(rt)
        peer.put(task_body(message("k")))
        evs, el = self.poll_until(peer, "k", lambda ev: len(ev) >= 3, what="two spawns")
        self.assertEqual([e["type"] for e in evs], ["started", "spawn", "spawn"])
        self.assertEqual(el["first"], 1)
        code, el = peer.events("k", 2, 0)       # acknowledges 1 and 2
        self.assertEqual((el["first"], [e["seq"] for e in el["events"]]), (3, [3]))
        # A restarted agentscaler, which persists no cursor, polls from 0 and
        # gets what is not acknowledged yet.
        code, el = peer.events("k", 0, 0)
        self.assertEqual((el["first"], [e["seq"] for e in el["events"]]), (3, [3]))
        code, err = peer.delete("k")
        self.assertEqual((code, err["reason"]), (409, "task.running"), "DELETE does not cancel")
        gate.go.set()
        ev, el = self.end(peer, "k")
        # The terminal event stays whatever after= says, until DELETE.
        code, el = peer.events("k", ev["seq"], 0)
        self.assertEqual((el["first"], el["events"], el["state"]), (ev["seq"], [], "completed"))
        code, el = peer.events("k", ev["seq"] - 1, 0)
        self.assertEqual([e["type"] for e in el["events"]], ["completed"])
        self.assertEqual(peer.delete("k"), (204, None))
        self.assertTrue(rt.done.wait(30), "exit_after_ack stops the runtime")

    def test_a_deferred_spawn_holds_ack_not_reading(self):
        """ack= below after=: the deferred child's spawn stays in the log (a
        restarted agentscaler finds it, with the replies the runtime took),
        while reading goes on past it without answering at once."""
        def handler(task, ctx):
            a = ctx.spawn({"payload": "a"})
            ctx.progress("waiting for a")
            return a.result(60)
        rt = self.runtime(handler)
        peer = self.peer(rt)
        peer.put(task_body(message("d")))
        evs, el = self.poll_until(peer, "d", lambda ev: {"spawn", "progress"} <= {
            e["type"] for e in ev})
        spawn = [e for e in evs if e["type"] == "spawn"][0]
        self.assertEqual(spawn["replies"], [])
        cid = P.child_id("d", spawn["key"])
        peer.reply("d", reply(spawn["key"], "deferred", cid, reason="quota.maxSandboxes"))
        # Everything read, only what came before the spawn acknowledged.
        code, el = peer.events("d", el["next"], wait=0.3, ack=spawn["seq"] - 1)
        self.assertEqual((code, el["events"]), (200, []), "no answer at once: nothing new")
        self.assertEqual(el["first"], spawn["seq"])
        # As a restarted agentscaler sees it.
        code, el = peer.events("d", 0, 0, ack=0)
        again = [e for e in el["events"] if e["type"] == "spawn"][0]
        self.assertEqual((again["seq"], again["replies"]), (spawn["seq"], ["deferred"]))
        code, err = peer.events("d", 1, 0, ack=2)
        self.assertEqual((code, err["reason"]), (400, "request.invalid"), "ack beyond after")
        peer.reply("d", reply(spawn["key"], "admitted", cid))
        peer.reply("d", reply(spawn["key"], "result", cid,
                              result=result_message(cid, "completed", value=7)))
        ev, _ = self.end(peer, "d")
        self.assertEqual(ev["result"], 7)

    def test_tombstone_refuses_the_same_attempt(self):
        gate = Gate()
        gate.go.set()
        rt = self.runtime(gate)
        peer = self.peer(rt)
        peer.put(task_body(message("z")))
        self.end(peer, "z")
        self.assertEqual(peer.delete("z")[0], 204)
        self.assertEqual(peer.delete("z"), (204, None), "DELETE is idempotent")
        code, err = peer.events("z", 0, 0)
        self.assertEqual((code, err["reason"]), (410, "task.acknowledged"))
        code, err = peer.put(task_body(message("z")))
        self.assertEqual((code, err["reason"]), (410, "task.acknowledged"))
        code, err = peer.reply("z", reply("1", "admitted", "z/1"))
        self.assertEqual(code, 410)
        # A retry the policy asked for is a new attempt.
        code, st = peer.put(task_body(message("z"), attempt=2))
        self.assertEqual((code, st["attempt"]), (201, 2))
        ev, el = self.end(peer, "z")
        self.assertEqual(el["attempt"], 2)
        self.assertEqual(gate.runs, ["z", "z"])


class SpawnTest(RuntimeCase):
    def test_spawn_verdicts_and_child_results(self):
        got = {}

        def handler(task, ctx):
            a = ctx.spawn({"payload": {"part": "a"}})
            b = ctx.spawn({"payload": {"part": "b"}, "resources": {"cpu": "500m"}}, key="b")
            c = ctx.spawn({"payload": {"part": "c"}})
            got["verdict_a"] = a.wait_verdict(60)
            try:
                b.result(60)
            except ChildRejected as e:
                got["b"] = (e.reason, e.detail)
            try:
                c.result(60)
            except ChildFailed as e:
                got["c"] = e.reason
            return {"a": a.result(60), "a_id": a.child_id}
        rt = self.runtime(handler)
        peer = self.peer(rt, token="s3cret-token-0123456789")
        tid = "parent-1"
        body = task_body(message(tid), token="s3cret-token-0123456789")
        self.assertEqual(peer.put(body)[0], 201)
        evs, _ = self.poll_until(peer, tid, lambda ev: sum(e["type"] == "spawn" for e in ev) == 3,
                                 what="three spawns")
        spawns = {e["key"]: e for e in evs if e["type"] == "spawn"}
        self.assertEqual(sorted(spawns), ["1", "3", "b"], "keys by default: 1, 2, ... unused")
        self.assertNotIn("parent", spawns["b"]["task"], "a spawn cannot name its parent")
        self.assertEqual(spawns["b"]["task"]["resources"], {"cpu": "500m"})
        # The child's trace context is the parent's trace.
        self.assertEqual(spawns["1"]["task"]["traceparent"][3:35], TP[3:35])
        ka, kc = [k for k in spawns if k != "b"]
        ida, idb, idc = (P.child_id(tid, k) for k in (ka, "b", kc))
        self.assertEqual(idb, "parent-1/b")
        # a: deferred, then admitted (twice: a replay), a late deferred, then its result.
        r = peer.reply(tid, reply(ka, "deferred", ida, reason="quota.maxSandboxes"))
        self.assertEqual(r[1]["duplicate"], False)
        self.assertEqual(peer.reply(tid, reply(ka, "admitted", ida))[1]["duplicate"], False)
        self.assertEqual(peer.reply(tid, reply(ka, "admitted", ida))[1]["duplicate"], True)
        self.assertEqual(peer.reply(tid, reply(ka, "deferred", ida, reason="quota.maxSandboxes"))
                         [1]["duplicate"], True, "a verdict never moves backwards")
        # b: rejected by the cascade limits.
        self.assertEqual(peer.reply(tid, reply("b", "rejected", idb, reason="cascade.maxDepth",
                                               detail="depth 3 > 2"))[0], 200)
        # c: admitted, then failed (its result implies admission).
        res_c = result_message(idc, "failed", error={"reason": "tool.crash", "message": "boom",
                                                     "retryable": True}, parent=tid, root=tid,
                               started_at=P.now_rfc3339(), traceparent=TP)
        self.assertEqual(peer.reply(tid, reply(kc, "result", idc, result=res_c))[0], 200)
        res_a = result_message(ida, "completed", value={"lines": 3},
                               sandbox={"namespace": "default", "pool": "pool", "claim": "c-a",
                                        "name": "sb-a"}, parent=tid, root=tid,
                               started_at=P.now_rfc3339(), traceparent=TP)
        schemas.check("result", res_a)
        schemas.check("result", res_c)
        self.assertEqual(peer.reply(tid, reply(ka, "result", ida, result=res_a))[0], 200)
        self.assertEqual(peer.reply(tid, reply(ka, "result", ida, result=res_a))[1]["duplicate"],
                         True)
        code, err = peer.reply(tid, reply("nope", "admitted", "x"))
        self.assertEqual((code, err["reason"]), (404, "spawn.unknownKey"))
        ev, _ = self.end(peer, tid)
        self.assertEqual(ev["type"], "completed", ev)
        self.assertEqual(ev["result"], {"a": {"lines": 3}, "a_id": ida})
        self.assertEqual(got, {"verdict_a": "admitted", "b": ("cascade.maxDepth", "depth 3 > 2"),
                               "c": "tool.crash"})

    def test_token_is_required_once_given(self):
        gate = Gate()
        rt = self.runtime(gate)
        tok = "tok-abcdefghijklmnop"
        self.assertEqual(self.peer(rt).put(task_body(message("s"), token=tok))[0], 201)
        for p in (self.peer(rt), self.peer(rt, token="wrong-token-abcdefgh")):
            code, err = p.events("s", 0, 0)
            self.assertEqual(code, 401)
            self.assertIn(err["reason"], ("auth.missing", "auth.mismatch"))
            self.assertEqual(p.reply("s", reply("1", "admitted", "s/1"))[0], 401)
            self.assertEqual(p.delete("s")[0], 401)
            self.assertEqual(p.put(task_body(message("s"), token=tok))[0], 401)
        self.assertEqual(self.peer(rt, token=tok).events("s", 0, 0)[0], 200)
        gate.go.set()

    def test_spawn_key_rules(self):
        def handler(task, ctx):
            ctx.spawn({"payload": 1}, key="k")
            for bad in ({"payload": 1, "parent": "x"}, {"no": 1}):
                try:
                    ctx.spawn(bad)
                except ValueError:
                    pass
                else:
                    raise AssertionError("spawn took %r" % bad)
            for key in ("k", "bad key", "x" * 65):
                try:
                    ctx.spawn({"payload": 1}, key=key)
                except ValueError:
                    pass
                else:
                    raise AssertionError("spawn took key %r" % key)
            return ctx.spawn({"payload": 2}).key
        rt = self.runtime(handler)
        peer = self.peer(rt)
        peer.put(task_body(message("keys")))
        ev, _ = self.end(peer, "keys")
        self.assertEqual((ev["type"], ev["result"]), ("completed", "2"))


class FailureTest(RuntimeCase):
    def test_handler_failures(self):
        for exc, reason, retry in ((TaskFailed("tool.timeout", "hung", retryable=True),
                                    "tool.timeout", True),
                                   (KeyError("x"), "handler.error", False),
                                   (TypeError("a bug"), "handler.error", False)):
            gate = Gate(exc=exc)
            gate.go.set()
            rt = self.runtime(gate)
            peer = self.peer(rt)
            peer.put(task_body(message("f")))
            ev, el = self.end(peer, "f")
            self.assertEqual((ev["type"], ev["error"]["reason"], ev["error"]["retryable"],
                              el["state"]), ("failed", reason, retry, "failed"))

    def test_unserialisable_result_fails(self):
        gate = Gate(result=object())
        gate.go.set()
        rt = self.runtime(gate)
        peer = self.peer(rt)
        peer.put(task_body(message("o")))
        ev, _ = self.end(peer, "o")
        self.assertEqual(ev["error"]["reason"], "runtime.badResult")

class PeerTransportTest(unittest.TestCase):
    def test_an_answer_cut_short_is_a_transport_failure(self):
        """A peer that sends less than its Content-Length and hangs up:
        OSError (retried like a reset), not an answer."""
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        self.addCleanup(srv.close)

        def serve():
            c, _ = srv.accept()
            with c:
                c.recv(65536)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}")
        th = threading.Thread(target=serve, daemon=True)
        th.start()
        with self.assertRaises(OSError):
            Peer("http://127.0.0.1:%d" % srv.getsockname()[1]).health()
        th.join(10)


class ZSchemaCoverageTest(unittest.TestCase):
    """Runs last by name: every message kind and event type went through
    its schema in the tests above (when run as one module)."""

    def test_zz_every_message_kind_was_validated(self):
        if len(schemas.CHECKED) < 3:
            self.skipTest("run with the rest of the module")
        want = {"task", "task-status", "event-list", "reply", "reply-ack", "error", "health",
                "result", "event:started", "event:progress", "event:spawn", "event:completed",
                "event:failed"}
        self.assertEqual(want - set(schemas.CHECKED), set())


def peer_url(rt):
    return "http://127.0.0.1:%d" % rt.port


if __name__ == "__main__":
    unittest.main()
