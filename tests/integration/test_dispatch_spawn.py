"""Sub-agents through agentscaler (issue 16, docs/protocol.md section 8
step 3): a parent task's runtime (tools/agent-runtime --handoff http, the
Python runtime of clients/python) spawns children with ctx.spawn; the
daemon reads each spawn from the parent's long-poll, admits the child with
the namespace's AgentQuota as it admits a producer's child, and answers the
parent's runtime with the child's verdicts and, at its end, its Result.
The payload {"spawn": [spec, ...]} makes the handler spawn and wait, and
return per child its verdict, result or reason, parent and the replies it
took: what the parent's own Result shows here.

Checked against what the real parts saw: the agents' event log (each task
received exactly once), the results list (every Result validated against
result.schema.json), the dead letters (none: a child has no broker
message).  Waits are bounded polls; nothing asserts on speed.
"""
import json
import unittest

import paths  # noqa: E402,F401
import world  # noqa: E402
from world import wait_for  # noqa: E402

from tests.integration.test_dispatch_http import NS, HttpWorld  # noqa: E402


def quota(**spec):
    return {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentQuota",
            "metadata": {"name": "limits", "namespace": NS}, "spec": spec}


class SpawnTest(HttpWorld):
    def start_cfg(self, pools, quotas=()):
        return self.start_daemon({"pools": pools, "quotas": list(quotas)}, extra=(
            "--instance", "as-spawn", "--handoff-key-file", self.key_file))

    def submit(self, tid, payload):
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": tid, "payload": payload}))

    def wait_results(self, ids, timeout=90):
        return wait_for(lambda: (lambda r: r if set(ids) <= set(r) else None)(
            self.results_by_id()), timeout, 0.2, "results of %s" % ", ".join(ids))

    def assert_ran_once(self, ids):
        for t in ids:
            runs = self.received(t)
            self.assertEqual(len(runs), 1, "%s ran %d times" % (t, len(runs)))

    def test_parent_spawns_two_children_and_gets_their_results(self):
        world.sandbox_pool(self.kube, "wp", replicas=3)
        ar = self.agents()
        self.start_cfg([self.pool(spare_min=3)])
        self.submit("par", {"spawn": [{"payload": {"n": 1}}, {"payload": {"n": 2}}]})
        kids = ["par/1", "par/2"]
        got = self.wait_results(["par"] + kids)
        self.assert_ran_once(["par"] + kids)
        for k in kids:
            # Lineage is where the spawn was read: the parent, in the
            # hand-off the child's runtime got and in its Result.
            self.assertEqual(self.received(k)[0]["parent"], "par")
            self.assertEqual(self.received(k)[0]["root"], "par")
            self.assertEqual(self.received(k)[0]["depth"], 1)
            self.assertEqual(got[k]["parent"], "par")
            self.assertEqual(got[k]["root"], "par")
            self.assertEqual(got[k]["state"], "completed")
        p = got["par"]
        self.assertEqual(p["state"], "completed", p)
        self.assertIsNone(p["parent"])
        children = p["result"]["children"]
        self.assertEqual([c["id"] for c in children], kids)
        for c in children:
            self.assertEqual(c["verdict"], "admitted")
            self.assertEqual(c["result"], {"worked": True, "children": 0})
            self.assertEqual(c["parent"], "par")
            self.assertIn("admitted", c["replies"])
            self.assertIn("result", c["replies"])
            self.assertNotIn("rejected", c["replies"])
        self.assertEqual(self.rejected(), [])
        self.assertEqual(ar.events("duplicate"), [])
        wait_for(lambda: not self.claims(), 30, what="claims deleted")

    def test_cascade_stopped_by_quota_verdicts_reach_the_parent(self):
        world.sandbox_pool(self.kube, "wp", replicas=3)
        self.agents()
        # Depth: cas 0, cas/1 1, cas/1/1 2 (over maxDepth 1); fan-out: cas's
        # third child is over maxChildrenPerTask 2 (a live limit, which
        # onExceeded: reject makes a rejection rather than a wait).
        self.start_cfg([self.pool(spare_min=3)], [quota(
            maxSandboxes=10, onExceeded="reject",
            cascade={"maxDepth": 1, "maxChildrenPerTask": 2})])
        self.submit("cas", {"spawn": [{"payload": {"spawn": [{"payload": {"n": 0}}]}},
                                      {"payload": {"n": 2}}, {"payload": {"n": 3}}]})
        got = self.wait_results(["cas", "cas/1", "cas/2", "cas/3", "cas/1/1"])
        self.assert_ran_once(["cas", "cas/1", "cas/2"])
        kids = {c["key"]: c for c in got["cas"]["result"]["children"]}
        self.assertEqual(kids["1"]["verdict"], "admitted")
        self.assertEqual(kids["2"]["verdict"], "admitted")
        self.assertEqual(kids["3"]["verdict"], "rejected")
        self.assertEqual(kids["3"]["reason"], "cascade.maxChildrenPerTask")
        self.assertTrue(kids["3"]["detail"])
        self.assertEqual(kids["3"]["replies"], ["rejected"])
        # The grandchild's verdict went to its own parent, par/1.
        grand = kids["1"]["result"]["children"]
        self.assertEqual(len(grand), 1)
        self.assertEqual(grand[0]["id"], "cas/1/1")
        self.assertEqual(grand[0]["verdict"], "rejected")
        self.assertEqual(grand[0]["reason"], "cascade.maxDepth")
        # Rejected children never ran, and have no broker message to
        # dead-letter; each has a failed Result on the pool's results
        # destination (schema-checked by results()), as a producer waiting
        # on its id would read it.
        self.assertEqual(self.received("cas/3"), [])
        self.assertEqual(self.received("cas/1/1"), [])
        self.assertEqual(self.rejected(), [])
        for cid, parent, reason in (("cas/3", "cas", "cascade.maxChildrenPerTask"),
                                    ("cas/1/1", "cas/1", "cascade.maxDepth")):
            r = got[cid]
            self.assertEqual(r["state"], "failed", r)
            self.assertEqual(r["error"]["reason"], reason)
            self.assertTrue(r["error"]["message"])
            self.assertIsNone(r["sandbox"])
            self.assertIsNone(r["startedAt"])
            self.assertEqual(r["parent"], parent)
            self.assertEqual(r["root"], "cas")
            self.assertTrue(r["finishedAt"] and r["traceparent"])
        # Once each: published before the parent's runtime got the verdict.
        ids = [r["id"] for r in self.results()]
        self.assertEqual(ids.count("cas/3"), 1)
        self.assertEqual(ids.count("cas/1/1"), 1)

    def test_deferred_child_is_admitted_later(self):
        world.sandbox_pool(self.kube, "wp", replicas=3)
        self.agents()
        # The parent holds one sandbox, its first child the other: the
        # second waits (deferred) until the first has ended.
        self.start_cfg([self.pool(spare_min=2)], [quota(maxSandboxes=2,
                                                        onExceeded="defer")])
        self.submit("def", {"spawn": [{"payload": {"sleep": 1.0}}, {"payload": {"n": 2}}]})
        got = self.wait_results(["def", "def/1", "def/2"], timeout=120)
        self.assert_ran_once(["def", "def/1", "def/2"])
        kids = {c["key"]: c for c in got["def"]["result"]["children"]}
        self.assertEqual(kids["1"]["verdict"], "admitted")
        self.assertEqual(kids["2"]["verdict"], "admitted")
        self.assertEqual(kids["2"]["replies"], ["admitted", "deferred", "result"])
        self.assertEqual(kids["2"]["result"], {"worked": True, "children": 0})
        # It ran after its sibling ended.
        self.assertGreaterEqual(got["def/2"]["startedAt"], got["def/1"]["finishedAt"])
        self.assertEqual(self.rejected(), [])

    def test_deferred_spawn_survives_a_restart(self):
        """ack= holds a deferred child's spawn in the parent's log: the
        daemon killed (SIGKILL) while the child waits, the next one reads
        the spawn again from the parent's runtime (the child existed only
        in the dead process's memory) and admits it once there is room;
        a replayed spawn whose child's claim exists makes no second one."""
        world.sandbox_pool(self.kube, "wp", replicas=3)
        ar = self.agents()
        cfg = ([self.pool(spare_min=2)], [quota(maxSandboxes=2, onExceeded="defer")])
        self.start_cfg(*cfg)
        self.submit("rst", {"spawn": [{"payload": {"sleep": 4.0}}, {"payload": {"n": 2}}]})
        wait_for(lambda: [e for e in ar.events("reply")
                          if e["id"] == "rst" and e["key"] == "2" and e["type"] == "deferred"],
                 60, 0.05, "rst/2 deferred")
        self.assertEqual(self.received("rst/2"), [])
        self.daemon.proc.kill()
        self.daemon.proc.wait()
        self.start_cfg(*cfg)
        got = self.wait_results(["rst", "rst/1", "rst/2"], timeout=120)
        self.assert_ran_once(["rst", "rst/1", "rst/2"])
        kids = {c["key"]: c for c in got["rst"]["result"]["children"]}
        for k in ("1", "2"):
            self.assertEqual(kids[k]["verdict"], "admitted")
            self.assertEqual(kids[k]["result"], {"worked": True, "children": 0})
            self.assertEqual(kids[k]["parent"], "rst")
        self.assertEqual(kids["2"]["replies"], ["admitted", "deferred", "result"])
        self.assertEqual(ar.events("duplicate"), [])
        wait_for(lambda: not self.claims(), 30, what="claims deleted")

    def test_admitted_child_not_handed_off_survives_a_restart(self):
        """The parent's ack= stays below a spawn until its admitted child
        was handed off: the daemon killed (SIGKILL) after the child's claim
        was made and its admitted delivered, before any runtime took it
        (its sandbox is not Ready: the warm pool's one sandbox runs the
        parent, new ones are unschedulable), the next one rebuilds the
        child from its claim and its message from the replayed spawn, and
        hands it off; before, the child ended runtime.lost (its claim
        holds no payload, and the spawn was acknowledged)."""
        world.sandbox_pool(self.kube, "wp", replicas=1)
        ar = self.agents()
        code, _ = self.kube.adm("POST", "/sandbox-sim", {"unschedulable": True})
        self.assertEqual(code, 200)
        cfg = ([self.pool(spare_min=1)], [])
        self.start_cfg(*cfg)
        self.submit("lst", {"spawn": [{"payload": {"n": 1}}]})

        def polled_after_admitted():
            evs = ar.events()
            at = [i for i, e in enumerate(evs) if e["event"] == "reply" and
                  e["id"] == "lst" and e["key"] == "1" and e["type"] == "admitted"]
            # A long-poll of the parent sent after the runtime had the
            # verdict: the one that, before, acknowledged the spawn.
            return at and [e for e in evs[at[0]:] if e["event"] == "poll" and e["id"] == "lst"]
        wait_for(polled_after_admitted, 90, 0.1, "a long-poll of lst after lst/1's admitted")
        self.assertEqual(len(self.claims()), 2, "lst/1's claim made")
        self.assertEqual(self.received("lst/1"), [])
        self.daemon.proc.kill()
        self.daemon.proc.wait()
        self.start_cfg(*cfg)
        code, _ = self.kube.adm("POST", "/sandbox-sim", {"unschedulable": False})
        self.assertEqual(code, 200)
        got = self.wait_results(["lst", "lst/1"], timeout=120)
        self.assert_ran_once(["lst", "lst/1"])
        self.assertEqual(got["lst/1"]["state"], "completed", got["lst/1"])
        self.assertEqual(got["lst/1"]["parent"], "lst")
        kid = got["lst"]["result"]["children"][0]
        self.assertEqual(kid["verdict"], "admitted")
        self.assertEqual(kid["result"], {"worked": True, "children": 0})
        self.assertEqual(ar.events("duplicate"), [])
        wait_for(lambda: not self.claims(), 30, what="claims deleted")


if __name__ == "__main__":
    unittest.main()
