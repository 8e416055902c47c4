"""The Python runtime behind the real sandbox-router of agent-sandbox
(tools/lib/router_proc.py: build/cluster/bin/sandbox-router, v1.0.1, on
127.0.0.1 with --allow-loopback-pod-ip; each runtime on its own loopback
port, named by X-Sandbox-Pod-IP and X-Sandbox-Port as agentscaler names a
pod).  docs/protocol.md section 2: the router's own errors (400 bad
headers, 502 unreachable or no response headers in time) carry no
apiVersion and are told apart from the runtime's answers by
agentscaler.peer.is_protocol_answer; the task token passes the router in
X-Agentscaler-Token, where Authorization would not; a long-poll that the
router cut (a restart) is replayed with the same after=.  Waits are
bounded polls; nothing asserts on speed."""
import threading
import unittest

import world
from world import SandboxRouter, router_missing

from agentscaler import protocol as P
from agentscaler.peer import Peer, is_protocol_answer, task_body
from agentscaler.runtime import Runtime

from tests.clients.schemas import CheckedPeer
from tests.clients.test_runtime import Gate, message

# An address on loopback where nothing listens (the router dials it and
# gets connection refused, then 502 after its dial retries).
NOWHERE = "127.79.255.254"


@unittest.skipIf(router_missing(), router_missing())
class RouterCase(unittest.TestCase):
    def router(self, *extra):
        r = SandboxRouter(extra=extra)
        self.addCleanup(r.cleanup)
        return r

    def runtime(self, handler, **kw):
        rt = Runtime(handler, port=0, host="127.0.0.1", **kw).start()
        self.addCleanup(rt.stop)
        return rt

    def via(self, router, rt, sandbox="sb-1", namespace="team", **kw):
        return CheckedPeer(router.url, sandbox=sandbox, namespace=namespace, port=rt.port,
                           pod_ip="127.0.0.1", **kw)

    def assertRouters(self, answer, code):
        """answer is the router's own (code), not the runtime's."""
        got, body = answer
        self.assertEqual(got, code, body)
        self.assertFalse(is_protocol_answer(body), body)
        self.assertIn("detail", body)

    def assertRuntimes(self, answer, code, reason=None):
        got, body = answer
        self.assertEqual(got, code, body)
        self.assertTrue(is_protocol_answer(body), body)
        if reason is not None:
            self.assertEqual(body["reason"], reason)


class RouterErrorsTest(RouterCase):
    def test_router_errors_are_told_from_the_runtimes(self):
        gate = Gate()
        rt = self.runtime(gate)
        router = self.router()
        peer = self.via(router, rt)
        # The runtime's answers through the router, errors included.
        self.assertRuntimes(peer.health(), 200)
        self.assertRuntimes(peer.events("none", 0, 0), 404, "task.unknown")
        self.assertRuntimes(peer.put(task_body(message("a"))), 201)
        self.assertRuntimes(peer.events("a", 5, 0), 400, "request.invalid")
        self.assertRuntimes(peer.put(task_body(message("b"))), 409, "task.conflict")
        # The router's: 400 for bad routing headers, before any dial.
        self.assertRouters(Peer(router.url).health(), 400)                     # no X-Sandbox-ID
        self.assertRouters(Peer(router.url, sandbox="Not_A_Label", pod_ip="127.0.0.1",
                                port=rt.port).events("a", 0, 0), 400)
        self.assertRouters(Peer(router.url, sandbox="sb-1", namespace="team",
                                pod_ip="169.254.169.254", port=rt.port).health(), 400)
        # 502: a pod IP where nothing listens (after the router's dial retries).
        gone = CheckedPeer(router.url, sandbox="sb-2", namespace="team", pod_ip=NOWHERE,
                           port=rt.port)
        self.assertRouters(gone.events("a", 0, 0), 502)
        self.assertRouters(gone.put(task_body(message("c"))), 502)
        gate.go.set()
        self.assertEqual(gate.runs, ["a"], "only the runtime's 201 started anything")

    def test_many_answers_through_the_router_arrive_whole(self):
        """200 PUTs answered 409 through one router (its pooled connection to
        the runtime reused): every answer arrives whole and is the
        runtime's.  With the answer's head and body in two writes, the
        router cut a few of them (runtime.py, H.wbufsize)."""
        gate = Gate()
        rt = self.runtime(gate)
        peer = self.via(self.router(), rt)
        self.assertRuntimes(peer.put(task_body(message("a"))), 201)
        other = task_body(message("b"))
        for _ in range(200):
            self.assertRuntimes(peer.put(other), 409, "task.conflict")
        gate.go.set()

    def test_a_runtime_gone_is_the_routers_502_and_a_restarted_one_answers_404(self):
        """A runtime that restarted lost its task: 404 with the protocol's
        Error (agentscaler's retry or dead-letter policy), unlike the
        router's 502 while nothing listens."""
        gate = Gate()
        rt = self.runtime(gate)
        port = rt.port
        router = self.router()
        peer = self.via(router, rt, sandbox="sb", namespace="default")
        self.assertRuntimes(peer.put(task_body(message("lost"))), 201)
        rt.stop()
        self.assertRouters(peer.events("lost", 1, 0), 502)
        rt2 = Runtime(gate, port=port, host="127.0.0.1").start()
        self.addCleanup(rt2.stop)
        self.assertRuntimes(peer.events("lost", 1, 0), 404, "task.unknown")
        gate.go.set()


class TokenHeaderTest(RouterCase):
    def test_token_passes_the_router_in_its_own_header(self):
        """The router deletes Authorization from what it forwards (in every
        --authz-mode); X-Agentscaler-Token reaches the runtime."""
        gate = Gate()
        rt = self.runtime(gate)
        router = self.router()
        tok = "f" * 64
        self.assertRuntimes(self.via(router, rt).put(task_body(message("t"), token=tok)), 201)
        self.assertRuntimes(self.via(router, rt, token=tok).events("t", 0, 0), 200)
        self.assertRuntimes(self.via(router, rt).events("t", 0, 0), 401, "auth.missing")
        self.assertRuntimes(self.via(router, rt, token="0" * 64).events("t", 0, 0), 401,
                            "auth.mismatch")
        # The token as a Bearer credential never reaches the runtime.
        bearer = self.via(router, rt)
        bearer.headers["Authorization"] = "Bearer " + tok
        self.assertRuntimes(bearer.events("t", 0, 0), 401, "auth.missing")
        ok = self.via(router, rt, token=tok)
        self.assertRuntimes(ok.delete("t"), 409, "task.running")
        gate.go.set()
        world.wait_for(lambda: ok.events("t", 0, 0)[1]["state"] != "running", 30,
                       what="the task ended")
        self.assertEqual(ok.delete("t"), (204, None))


class LongPollTest(RouterCase):
    def test_a_long_poll_must_answer_within_the_routers_header_timeout(self):
        """The router answers 502 once the runtime has not begun its answer
        within --response-header-timeout (30 s by default; 3 s here), which
        is why agentscaler's wait (P.POLL_WAIT) stays below it."""
        self.assertLess(P.POLL_WAIT + 5, 31)
        gate = Gate()
        rt = self.runtime(gate)
        router = self.router("--response-header-timeout", "3s")
        peer = self.via(router, rt)
        self.assertRuntimes(peer.put(task_body(message("w"))), 201)
        code, el = peer.events("w", 1, wait=0.5)
        self.assertRuntimes((code, el), 200)
        self.assertEqual(el["events"], [])
        self.assertRouters(peer.events("w", 1, wait=10), 502)
        gate.go.set()

    def test_replay_after_a_long_poll_cut_by_a_router_restart(self):
        """The router is killed while a long-poll is held in the runtime and
        the task ends meanwhile: that answer is lost; the same after= gets
        it again through the restarted router (on the same port)."""
        gate = Gate()
        rt = self.runtime(gate)
        router = self.router()
        peer = self.via(router, rt)
        self.assertRuntimes(peer.put(task_body(message("r"))), 201)
        out = {}

        def poll():
            try:
                out["r"] = peer.events("r", 1, wait=20)
            except OSError as e:
                out["e"] = e
        th = threading.Thread(target=poll)
        th.start()
        # Held: the runtime's long-poll waits on its condition (CPython's
        # Condition keeps its waiters in _waiters).
        world.wait_for(lambda: len(rt._cv._waiters) > 0, 30,
                       what="the long-poll held in the runtime")
        router.stop(kill=True)
        th.join(30)
        self.assertIn("e", out, "the cut long-poll is a transport failure: %r" % out)
        gate.go.set()
        with self.assertRaises(OSError):
            peer.events("r", 1, 0)                   # the router is down: refused
        router.start()
        code, el = peer.events("r", 1, wait=20)
        self.assertRuntimes((code, el), 200)
        self.assertEqual([e["type"] for e in el["events"]], ["completed"])
        # And again: nothing is dropped until acknowledged.
        self.assertEqual(peer.events("r", 1, wait=0)[1]["events"], el["events"])
        self.assertEqual(gate.runs, ["r"])


if __name__ == "__main__":
    unittest.main()
