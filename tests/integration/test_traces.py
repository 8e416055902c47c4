"""Spans on a clean stop (--otlp-endpoint; scheduler/daemon.c daemon_drain):
SIGTERM makes the spans of the tasks still live (their task span ends when
the dispatcher frees them) and sends every span the exporter holds before
the process exits, without waiting for the export interval (2 s).  Before:
the ring was freed unsent, so a task live at SIGTERM left no span at all.

The collector is tools/lib/otlp_sink.py (a small OTLP/HTTP JSON receiver in
this process); one that never answers shows the flush bounded
(DAEMON_DRAIN_WAIT), one that is away that a failure is logged and the
daemon exits anyway.  Waits are bounded polls; nothing asserts on speed.
"""
import json
import signal

import world  # noqa: E402
from otlp_sink import OtlpSink  # noqa: E402
from world import wait_for  # noqa: E402

NS = "default"


class TracesDrainTest(world.RedisKubeTestCase):
    KUBE_ARGS = ("--warm-bind-ms", "10")

    def setUp(self):
        super().setUp()
        self.cfg = {"pools": self.one_warm_dispatch_pool()}

    def sink(self, **kw):
        s = OtlpSink(**kw)
        self.addCleanup(s.stop)
        return s

    def state(self, d, tid):
        code, o = d.admin("/explain?task=" + tid)
        return o.get("state") if code == 200 and isinstance(o, dict) else None

    def start_with_live_task(self, endpoint, tid="t-live"):
        """The daemon exporting to endpoint, with task tid handed off and
        running (no runtime finishes it): live when SIGTERM comes."""
        d = self.start_daemon(self.cfg, extra=("--instance", "tr", "--otlp-endpoint", endpoint))
        self.redis.cmd("LPUSH", "tasks", json.dumps({"id": tid, "payload": {"n": 1}}))
        wait_for(lambda: self.state(d, tid) == "running", 30, 0.05, tid + " running")
        return d

    def stop(self, d):
        rc = d.stop()
        self.daemon = None
        logs = d.logs()
        d.cleanup()
        self.assertEqual(rc, 0, logs[-3000:])
        return logs

    def test_live_task_spans_sent_on_sigterm(self):
        sink = self.sink()
        d = self.start_with_live_task(sink.url)
        self.stop(d)
        names = sink.task_spans("t-live")
        # The task span ends only when the dispatcher frees the task.
        self.assertIn("invoke_agent agents", names)
        for phase in ("agentscaler.admit", "agentscaler.claim", "agentscaler.wait_ready",
                      "agentscaler.handoff", "agentscaler.run"):
            self.assertIn(phase, names)
        self.assertEqual(len(names), len(set(names)), "each span once")

    def test_collector_never_answers(self):
        sink = self.sink(mute=True)
        d = self.start_with_live_task(sink.url)
        logs = self.stop(d)
        # Only the daemon's JSON lines (a wrapper such as valgrind adds its own).
        lines = [ln for ln in logs.splitlines() if ln.startswith("{")]
        warns = [r for r in map(json.loads, lines)
                 if r.get("level") == "warn" and r.get("component") == "daemon" and
                 "still sending" in r.get("msg", "")]
        self.assertEqual(len(warns), 1, logs[-3000:])
        self.assertIn("the spans", warns[0]["msg"])

    def test_collector_away(self):
        d = self.start_with_live_task("http://127.0.0.1:%d" % world.free_port())
        logs = self.stop(d)
        # The failure is said once (by a routine export before the SIGTERM
        # or by the stop's flush: the exporter warns once per outage); what
        # this proves is the exit 0 with nobody listening.
        # test_live_task_spans_sent_on_sigterm proves the flush itself.
        self.assertIn("cannot export", logs)

    def test_second_sigterm_exits_at_once(self):
        sink = self.sink(mute=True)
        d = self.start_with_live_task(sink.url)
        d.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM: stopping" in d.logs(), 30, 0.02, "the first SIGTERM logged")
        if d.proc.poll() is not None:
            self.skipTest("the flush's deadline passed before the second SIGTERM")
        d.proc.send_signal(signal.SIGTERM)
        logs = self.stop(d)
        self.assertIn("SIGTERM again: exiting now", logs)
