"""Traces of dispatched tasks, end to end against a real collector (issue
19): the real Jaeger all-in-one (tools/lib/jaeger_proc.py; built by `make
jaeger` from its Go module) takes the daemon's OTLP/HTTP JSON export
(--otlp-endpoint) on 127.0.0.1, and its query API gives the trace back.
The rest of the world is the embedded one (kube-sim, redis-server); the
test is part of `make e2e` rather than of the integration suites for the
cost of building Jaeger on a fresh machine (the Makefile's jaeger target
says how long that took).

A parent task carrying a W3C traceparent spawns two sub-tasks through the
agent protocol (handoff http on kube-sim, tools/agent-runtime, as
test_dispatch_spawn); once all three ran and their records ended, the
trace is read from Jaeger: the task's trace id, each task's
"invoke_agent <pool>" span (the parent's a child of the traceparent's
span), its phase spans from arrival to hand-off (admit, claim,
wait_ready, handoff, then run and complete) under it in that order, and
each sub-task's link to the parent task's span (a FOLLOWS_FROM reference in
Jaeger's model).  Waits are bounded polls; nothing asserts on speed.
"""
import json
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402
from jaeger_proc import Jaeger, jaeger_missing  # noqa: E402

from tests.integration.test_dispatch_http import HttpWorld  # noqa: E402

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"
PHASES = ["agentscaler.admit", "agentscaler.claim", "agentscaler.wait_ready",
          "agentscaler.handoff"]


def tag(span, key):
    for t in span.get("tags", []):
        if t["key"] == key:
            return t["value"]
    return None


def refs(span, kind):
    return [(r["traceID"], r["spanID"]) for r in span.get("references", [])
            if r["refType"] == kind]


class TracesJaegerTest(HttpWorld):
    def setUp(self):
        why = jaeger_missing()
        if why:
            self.fail(why)
        super().setUp()
        self.jaeger = Jaeger().start()
        self.addCleanup(self.jaeger.stop)

    def test_parent_and_two_subtasks_traced_with_links(self):
        world.sandbox_pool(self.kube, "wp", replicas=3)
        self.agents()
        self.start_daemon({"pools": [self.pool(spare_min=3)]}, extra=(
            "--instance", "as-trace", "--handoff-key-file", self.key_file,
            "--otlp-endpoint", self.jaeger.otlp_url + "/v1/traces"))
        tp = "00-%s-%s-01" % (TRACE, CALLER)
        self.redis.cmd("LPUSH", "tasks", json.dumps({
            "id": "par", "traceparent": tp,
            "payload": {"spawn": [{"payload": {"n": 1}}, {"payload": {"n": 2}}]}}))
        ids = ["par", "par/1", "par/2"]
        wait_for(lambda: set(ids) <= set(self.results_by_id()), 90, 0.2, "results")
        wait_for(lambda: not self.claims(), 60, 0.2, "claims deleted")

        def whole():
            spans = self.jaeger.trace(TRACE)
            tasks = [s for s in spans if s["operationName"].startswith("invoke_agent")]
            return spans if len(tasks) == 3 else None
        spans = wait_for(whole, 60, 0.3, "the three task spans in jaeger")
        self.assertTrue(all(s["traceID"] == TRACE for s in spans))
        by_task = {}
        for s in spans:
            by_task.setdefault(tag(s, "agentscaler.task.id"), []).append(s)
        self.assertEqual(set(by_task), set(ids))

        def task_span(tid):
            got = [s for s in by_task[tid] if s["operationName"] == "invoke_agent p"]
            self.assertEqual(len(got), 1, [s["operationName"] for s in by_task[tid]])
            return got[0]

        par = task_span("par")
        # The parent's span is a child of the caller's (the traceparent).
        self.assertEqual(refs(par, "CHILD_OF"), [(TRACE, CALLER)])
        # The trace follows the task into its sandbox: the runtime was
        # given the task span as its parent (the Result carries what the
        # runtime was given: protocol section 3).
        self.assertEqual(self.results_by_id()["par"]["traceparent"],
                         "00-%s-%s-01" % (TRACE, par["spanID"]))
        self.assertEqual(refs(par, "FOLLOWS_FROM"), [])
        self.assertEqual(tag(par, "gen_ai.operation.name"), "invoke_agent")
        self.assertEqual(tag(par, "k8s.namespace.name"), "default")
        self.assertEqual(tag(par, "agentscaler.pool"), "p")
        self.assertTrue(tag(par, "agentscaler.claim"))
        for tid in ids:
            top = task_span(tid)
            phases = sorted((s for s in by_task[tid] if s is not top),
                            key=lambda s: s["startTime"])
            names = [s["operationName"] for s in phases]
            # Arrival to hand-off, in order, then the run and the release.
            self.assertEqual(names[:4], PHASES, names)
            self.assertIn("agentscaler.run", names)
            self.assertEqual(names[-1], "agentscaler.complete", names)
            for s in phases:
                self.assertEqual(refs(s, "CHILD_OF"), [(TRACE, top["spanID"])])
                self.assertGreaterEqual(s["startTime"], top["startTime"])
            for a, b in zip(phases, phases[1:]):
                self.assertLessEqual(a["startTime"] + a["duration"], b["startTime"] + 1)
            if tid == "par":
                continue
            # A sub-task: its own traceparent (the runtime's child of the
            # parent's, clients/python runtime.spawn) is its span's parent,
            # in the same trace; the parent task's span is its link.
            parent_ref = refs(top, "CHILD_OF")
            self.assertEqual(len(parent_ref), 1, parent_ref)
            self.assertEqual(parent_ref[0][0], TRACE)
            self.assertEqual(refs(top, "FOLLOWS_FROM"), [(TRACE, par["spanID"])])
            self.assertEqual(tag(top, "agentscaler.task.parent"), "par")
            self.assertEqual(tag(top, "agentscaler.task.depth"), 1)
        # The service's traces list it too (the query the Jaeger UI runs).
        doc = self.jaeger.get("/api/traces?service=agentscaler&lookback=1h&limit=20")
        self.assertIn(TRACE, [t["traceID"] for t in doc["data"]])
        # The daemon's JSON log lines carry the facts as keys (issue 19):
        # the pool's start, with its pool and namespace.
        lines = [json.loads(ln) for ln in self.daemon.logs().splitlines()
                 if ln.startswith("{")]
        started = [ln for ln in lines if ln.get("component") == "dispatch" and
                   "dispatch pool on" in ln["msg"]]
        self.assertTrue(started, lines[-20:])
        self.assertEqual((started[0]["pool"], started[0]["namespace"]), ("p", "default"))
        # Nothing was dropped on the way.
        m = self.daemon.metrics()
        for reason in ("queue_full", "export_failed"):
            self.assertEqual(m['agentscaler_trace_spans_dropped_total{reason="%s"}' % reason],
                             0, reason)


if __name__ == "__main__":
    unittest.main()
