"""tools/bench/scale_bench.py and tools/bench/dispatch_scale.c (issue 15),
on small counts: how a reaction is read from kube-sim's request log, a
whole scale case end to end, and the dispatcher benchmark over its fakes
(built and run under ASan+UBSan, which fails it on a leak).  Bounded waits
on conditions; no figure is asserted, only that each is there.
"""
import os
import re
import subprocess
import sys
import threading
import time
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402
import scale_bench  # noqa: E402

SCALE_BENCH = os.path.join(world.ROOT, "tools", "bench", "scale_bench.py")
DAEMON = os.environ.get("AGENTSCALER_BIN", os.path.join(world.ROOT, "build/release/agentscaler"))


class ReactionRead(unittest.TestCase):
    def setUp(self):
        self.kube = world.KubeSim()
        self.addCleanup(self.kube.stop)
        for i in (0, 1):
            self.kube.create_deployment("d-%d" % i)

    def patch(self, i):
        return self.kube.api("PATCH", "/apis/apps/v1/namespaces/default/deployments/d-%d/scale"
                             % i, {"spec": {"replicas": 1}}, "application/merge-patch+json")

    def test_only_the_pools_answered_patch_counts(self):
        since = scale_bench.next_seq(self.kube)
        self.kube.api("GET", "/apis/apps/v1/namespaces/default/deployments/d-0/scale")
        self.assertEqual(self.patch(1)[0], 200)           # another Deployment's
        self.assertIsNone(scale_bench.scale_patch(self.kube, since, 0, 0))
        # Held 10 s in kube-sim: logged on arrival, not answered yet.
        self.kube.adm("POST", "/latency", {"ms": 10000, "method": "PATCH", "path": "d-0/scale"})
        done = []
        th = threading.Thread(target=lambda: done.append(self.patch(0)))
        t0 = time.monotonic()
        th.start()
        self.addCleanup(th.join)
        wait_for(lambda: self.kube.requests(since)[-1]["path"].endswith("d-0/scale"), 10,
                 what="the PATCH in kube-sim's log")
        self.assertFalse(done)
        self.assertIsNone(scale_bench.scale_patch(self.kube, since, 0, 0))
        th.join(30)
        self.assertTrue(done, "the PATCH was answered")
        r = scale_bench.scale_patch(self.kube, since, 0, 0)
        self.assertIsNotNone(r)
        self.assertEqual((r["method"], r["code"]), ("PATCH", 200))
        self.assertGreaterEqual(r["mono"], t0)            # the arrival, same clock


class ScaleBenchRun(unittest.TestCase):
    def test_small_cases_run_and_report(self):
        r = subprocess.run([sys.executable, SCALE_BENCH, "--bin", DAEMON, "--pools", "20,20x4",
                            "--trials", "3", "--window", "1", "--ready-timeout", "60",
                            "--trial-timeout", "20"],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = r.stdout
        self.assertIn("== 20 pools, one namespace", out)
        self.assertIn("== 20 pools over 4 namespaces", out)
        self.assertEqual(len(re.findall(r"ready: /readyz 200 after [\d.]+ s; every pool "
                                        r"started after [\d.]+ s", out)), 2, out)
        self.assertEqual(len(re.findall(r"daemon CPU [\d.]+ % of one core; RSS [\d.]+ MiB",
                                        out)), 2, out)
        self.assertEqual(len(re.findall(r": 3 ok, 0 FAILED, 0 not run; p50 [\d.]+ ms, p99",
                                        out)), 2, out)
        self.assertEqual(out.count("keda#3810"), 3, out)   # the method's and each case's
        self.assertNotIn("daemon exit status", out)


class DispatchScaleRun(unittest.TestCase):
    def test_small_run_under_asan(self):
        binary = os.path.join(world.ROOT, "build/asan/tools/bench/dispatch_scale")
        mk = subprocess.run(["make", "-s", "build/asan/tools/bench/dispatch_scale"],
                            cwd=world.ROOT, capture_output=True, text=True, timeout=600)
        self.assertEqual(mk.returncode, 0, mk.stdout + mk.stderr)
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        r = subprocess.run([binary, "200", "20", "2000", "3", "50"], capture_output=True,
                           text=True, timeout=300, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = r.stdout
        self.assertIn("200 dispatch pools over 20 namespaces", out)
        for live in (0, 200, 1000, 2000):
            self.assertRegex(out, r"live\s+%d: intake .* sweep .* hand-off path .* VmRSS" % live)
        self.assertIn("sweep growth 1000 -> 2000 live tasks", out)
        self.assertNotIn("dead letters", out)
        self.assertNotIn("ERROR", r.stderr)


if __name__ == "__main__":
    unittest.main()
