"""tools/agent-runtime --handoff http: the example agent on the Python
runtime library, each sandbox of kube-sim served on an address of its own
and reached through the real sandbox-router (tools/lib/router_proc.py) by
X-Sandbox-Pod-IP and X-Sandbox-Port.  The test plays agentscaler (CheckedPeer:
every message checked against its schema): hand-off, long-poll, a child
admitted and one rejected by the cascade, their verdicts and result
delivered, the acknowledgement finishing the sandbox (claim Finished).
Waits are bounded polls; nothing asserts on speed."""
import json
import os
import tempfile
import unittest

import world
from world import SandboxRouter, router_missing, wait_for

from agentscaler import protocol as P
from agentscaler.peer import is_protocol_answer, reply, result_message, task_body

from tests.clients.schemas import CheckedPeer

HTTP = ("--handoff", "http", "--port", "0")


@unittest.skipIf(router_missing(), router_missing())
class AgentRuntimeHttpTest(unittest.TestCase):
    def setUp(self):
        self.kube = world.KubeSim("--cold-start-ms", "300", "--warm-bind-ms", "10")
        self.addCleanup(self.kube.stop)
        world.sandbox_pool(self.kube, "wp", replicas=2)
        self.router = SandboxRouter()
        self.addCleanup(self.router.cleanup)

    def agents(self, *extra, **kw):
        ar = world.AgentRuntime(self.kube, None, extra=HTTP + extra, **kw)
        self.addCleanup(ar.cleanup)
        return ar

    def sandbox(self, ar, claim):
        world.create_claim(self.kube, claim, warm_pool="wp")
        sb = world.wait_claim_ready(self.kube, claim)
        ip, port = ar.address(sb)
        peer = CheckedPeer(self.router.url, sandbox=sb, namespace="default", pod_ip=ip,
                           port=port)
        wait_for(lambda: peer.health()[0] == 200, 30, 0.05, "the agent of sandbox %s" % sb)
        return sb, peer

    def test_parent_spawns_children_through_agentscaler(self):
        ar = self.agents("--children", "2", "--wait-children", work_ms=20)
        sb, peer = self.sandbox(ar, "c-parent")
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

    def test_addresses_and_duplicates(self):
        ar = self.agents(work_ms=0)
        sb1, p1 = self.sandbox(ar, "c-1")
        sb2, p2 = self.sandbox(ar, "c-2")
        # Each sandbox on its own address: one's address is not the other's.
        self.assertNotEqual(ar.address(sb1)[0], ar.address(sb2)[0])
        code, h1 = p1.health()
        self.assertNotEqual(h1["instance"], p2.health()[1]["instance"])
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
        # The claim of sb1 goes: its runtime stops listening (the router's 502).
        code, _ = self.kube.api("DELETE", world.EXT_API % "default" + "sandboxclaims/c-1")
        self.assertEqual(code, 200)
        wait_for(lambda: p1.health()[0] == 502, 30, 0.05, "sandbox %s's runtime gone" % sb1)
        self.assertFalse(is_protocol_answer(p1.health()[1]))
        self.assertEqual(p2.health()[0], 200)


if __name__ == "__main__":
    unittest.main()


class PodIpTest(unittest.TestCase):
    """The agent listens on its claim's pod IP when that is on loopback
    (kube-sim --pod-ip-range, kwok's pods on the real cluster), else on
    --listen-net; a pod IP that comes before any task moves it there.
    In process: the claim events are fed to Runtime.on_claim."""

    def setUp(self):
        import importlib.util
        path = world.ROOT + "/tools/agent-runtime/agent_runtime.py"
        spec = importlib.util.spec_from_file_location("agent_runtime_under_test", path)
        self.mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.mod)
        fd, self.log = tempfile.mkstemp(prefix="agent-runtime-podip-", suffix=".jsonl")
        os.close(fd)
        self.addCleanup(os.unlink, self.log)
        args = self.mod.parse_args(["--apiserver", "http://127.0.0.1:9", "--admin",
                                    "http://127.0.0.1:9", "--handoff", "http", "--port", "0",
                                    "--listen-net", "127.79.0.0/24", "--log", self.log])
        self.rt = self.mod.Runtime(args)
        self.addCleanup(self.rt.log.close)
        self.addCleanup(self.rt.inbox.close)

    def claim(self, pod_ips):
        return {"metadata": {"namespace": "default", "name": "c", "uid": "u"},
                "status": {"sandbox": {"name": "sb", "podIPs": pod_ips}}}

    def address(self):
        srv, _ = self.rt.inbox.servers["default/sb"]
        return srv.server_address[0]

    def test_pod_ip_on_loopback_is_used(self):
        self.rt.on_claim("ADDED", self.claim(["10.244.0.1"]))       # not ours: the network's
        self.assertEqual(self.address(), "127.79.0.1")
        self.rt.on_claim("MODIFIED", self.claim(["127.79.0.200"]))  # it came: moved there
        self.assertEqual(self.address(), "127.79.0.200")
        with open(self.log) as f:
            ips = [json.loads(line)["ip"] for line in f if '"listening"' in line]
        self.assertEqual(ips, ["127.79.0.1", "127.79.0.200"])
