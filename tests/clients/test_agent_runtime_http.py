"""tools/agent-runtime --handoff http: the example agent on the Python
runtime library, serving every sandbox of kube-sim on one port routed by
the sandbox-router's headers.  The test plays agentscaler (CheckedPeer:
every message checked against its schema): hand-off, long-poll, a child
admitted and one rejected by the cascade, their verdicts and result
delivered, the acknowledgement finishing the sandbox (claim Finished).
Waits are bounded polls; nothing asserts on speed."""
import unittest

import world
from world import wait_for

from agentscaler import protocol as P
from agentscaler.peer import Peer, reply, result_message, task_body

from tests.clients.schemas import CheckedPeer

HTTP = ("--handoff", "http", "--listen", "127.0.0.1:0")


class AgentRuntimeHttpTest(unittest.TestCase):
    def setUp(self):
        self.kube = world.KubeSim("--cold-start-ms", "300", "--warm-bind-ms", "10")
        self.addCleanup(self.kube.stop)
        world.sandbox_pool(self.kube, "wp", replicas=2)

    def agents(self, *extra, **kw):
        ar = world.AgentRuntime(self.kube, None, extra=HTTP + extra, **kw)
        self.addCleanup(ar.cleanup)
        return ar, "http://127.0.0.1:%d" % ar.wait_ready()[0]["port"]

    def sandbox(self, url, claim):
        world.create_claim(self.kube, claim, warm_pool="wp")
        sb = world.wait_claim_ready(self.kube, claim)
        peer = CheckedPeer(url, sandbox=sb, namespace="default")
        wait_for(lambda: peer.health()[0] == 200, 30, 0.05, "the agent of sandbox %s" % sb)
        return sb, peer

    def test_parent_spawns_children_through_agentscaler(self):
        ar, url = self.agents("--children", "2", "--wait-children", work_ms=20)
        sb, peer = self.sandbox(url, "c-parent")
        msg = P.task_message(id="root-1", payload={"q": 1})
        self.assertEqual(peer.put(task_body(msg, claim="c-parent", sandbox=sb))[0], 201)
        got, after = [], 0
        while sum(e["type"] == "spawn" for e in got) < 2:
            code, el = peer.events("root-1", after, wait=10)
            self.assertEqual(code, 200)
            got += el["events"]
            after = el["next"]
        keys = sorted(e["key"] for e in got if e["type"] == "spawn")
        self.assertEqual(keys, ["1", "2"])
        c1, c2 = P.child_id("root-1", "1"), P.child_id("root-1", "2")
        peer.reply("root-1", reply("1", "admitted", c1))
        peer.reply("root-1", reply("2", "rejected", c2, reason="cascade.maxDepth",
                                   detail="depth 2 > 1"))
        peer.reply("root-1", reply("1", "result", c1,
                                   result=result_message(c1, "completed", value={"n": 1},
                                                         parent="root-1", root="root-1")))
        while not got or got[-1]["type"] not in P.TERMINAL:
            code, el = peer.events("root-1", after, wait=10)
            got += el["events"]
            after = el["next"]
        self.assertEqual(got[-1]["type"], "completed", got[-1])
        self.assertEqual(got[-1]["result"], {"worked": True, "children": [
            {"key": "1", "id": c1, "result": {"n": 1}},
            {"key": "2", "id": c2, "rejected": "cascade.maxDepth"}]})
        # Not finished before the acknowledgement; finished after it.
        self.assertEqual(ar.finished_ids(), [])
        self.assertEqual(peer.delete("root-1"), (204, None))
        ar.wait_finished(1)
        wait_for(lambda: world.is_true(world.get_claim(self.kube, "c-parent"), "Finished"), 30,
                 0.05, "the claim Finished after the acknowledgement")
        self.assertEqual([e["id"] for e in ar.events("spawned")], [c1, c2])
        self.assertEqual(sorted((e["key"], e["type"]) for e in ar.events("reply")),
                         [("1", "admitted"), ("1", "result"), ("2", "rejected")])

    def test_routing_and_duplicates(self):
        ar, url = self.agents(work_ms=0)
        code, body = Peer(url).health()
        self.assertEqual((code, body), (400, {"detail": "X-Sandbox-ID header is required"}))
        code, body = Peer(url, sandbox="nope").health()
        self.assertEqual(code, 502, "no agent for that sandbox: as the router says")
        sb1, p1 = self.sandbox(url, "c-1")
        sb2, p2 = self.sandbox(url, "c-2")
        msg = P.task_message(id="t-dup", payload=None)
        self.assertEqual(p1.put(task_body(msg, claim="c-1", sandbox=sb1))[0], 201)
        self.assertEqual(p1.put(task_body(msg, claim="c-1", sandbox=sb1))[0], 200)
        # The same task in a second sandbox: refused by the agent, not run twice.
        self.assertEqual(p2.put(task_body(msg, claim="c-2", sandbox=sb2))[0], 201)
        for p in (p1, p2):
            code, el = p.events("t-dup", 0, wait=10)
            while el["state"] == "running":
                code, el = p.events("t-dup", el["next"], wait=10)
        code, el = p2.events("t-dup", 0, 0)
        self.assertEqual(el["events"][-1]["error"]["reason"], "task.duplicate")
        self.assertEqual(ar.received_ids(), ["t-dup"])
        self.assertEqual([e["first_sandbox"] for e in ar.events("duplicate")], [sb1])


if __name__ == "__main__":
    unittest.main()
