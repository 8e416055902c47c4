"""tools/bench/keda_bench.py's parsing and reporting, without a cluster:
which audit events count as a /scale write, the audit log followed across
a line cut in two, the percentiles, and failed trials kept in the table."""
import json
import os
import tempfile
import unittest

import keda_bench  # noqa: E402


def event(verb="update", sub="scale", code=200, stage="ResponseComplete",
          name="k30-redis-0", t="2026-12-06T19:50:01.250000Z", user="u"):
    return {"kind": "Event", "stage": stage, "verb": verb, "user": {"username": user},
            "objectRef": {"resource": "deployments", "subresource": sub,
                          "namespace": "default", "name": name},
            "responseStatus": {"code": code}, "stageTimestamp": t}


class KedaBenchParsing(unittest.TestCase):
    def test_only_answered_scale_writes_count(self):
        w = keda_bench.scale_write(event())
        self.assertEqual(w[:2], ("default", "k30-redis-0"))
        self.assertAlmostEqual(w[2] - keda_bench.audit_time("2026-12-06T19:50:01.000000Z"),
                               0.25, places=6)
        self.assertIsNotNone(keda_bench.scale_write(event(verb="patch")))
        for e in (event(verb="get"), event(sub=""), event(code=409),
                  event(stage="ResponseStarted")):
            self.assertIsNone(keda_bench.scale_write(e))

    def test_audit_tail_joins_a_line_written_in_two_parts(self):
        d = tempfile.mkdtemp()
        path = os.path.join(d, "audit.log")
        line = json.dumps(event(user="keda")) + "\n"
        with open(path, "w") as f:
            f.write(json.dumps(event(verb="get")) + "\n" + line[:40])
        tail = keda_bench.AuditTail(path)
        tail.poll()
        self.assertIsNone(tail.first_after("default", "k30-redis-0", 0))
        with open(path, "a") as f:
            f.write(line[40:])
        tail.poll()
        t, user = tail.first_after("default", "k30-redis-0", 0)
        self.assertEqual(user, "keda")
        self.assertIsNone(tail.first_after("default", "k30-redis-0", t + 0.001))
        os.remove(path)
        os.rmdir(d)

    def test_percentiles_interpolate(self):
        self.assertEqual(keda_bench.pct([5], 99), 5)
        self.assertEqual(keda_bench.pct([1, 2, 3, 4, 5], 50), 3)
        self.assertAlmostEqual(keda_bench.pct([0, 100], 99), 99.0)

    def test_failed_trials_are_counted_not_dropped(self):
        results = {("keda", "default", "redis"): [1000.0, "k30-redis-1: no /scale write"],
                   ("agentscaler", "defaults", "redis"): [2.0]}
        lines, failures = keda_bench.table(results, ["redis"])
        row = [ln for ln in lines if ln.startswith("keda") and " default " in ln][0]
        self.assertEqual(row.split()[3:5], ["2", "1"])
        self.assertEqual(failures, ["k30-redis-1: no /scale write"])
        row = [ln for ln in lines if " poll-1s " in ln][0]
        self.assertEqual(row.split()[3:], ["0", "0", "-", "-", "-"])


if __name__ == "__main__":
    unittest.main()
