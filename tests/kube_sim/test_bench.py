"""The agent-sandbox capacity benchmark runs end to end on a small pool (it starts and
stops its own kube-sim), so the figures in the README stay reproducible."""

import os
import re
import subprocess
import sys
import unittest

from .ksim import ROOT

BENCH = os.path.join(ROOT, "tools", "kube-sim", "bench_sandbox.py")


class BenchSandboxTest(unittest.TestCase):
    def test_small_run_binds_and_releases_every_claim(self):
        r = subprocess.run([sys.executable, BENCH, "--members", "12", "--clients", "3",
                            "--cold-start-ms", "200", "--warm-bind-ms", "10",
                            "--phase-timeout", "30"],
                           capture_output=True, text=True, timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"N=\s+12 M=\s+12 K= 3 \| fill")
        m = re.search(r"bound\s+(\d+) \((\d+) warm\)", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertEqual((m.group(1), m.group(2)), ("12", "12"))
        self.assertIn("refill", r.stdout)
        self.assertNotIn("refill not in time", r.stdout)
        m = re.search(r"release: (\d+) finish\+delete .* (\d+)/(\d+) sandboxes gone",
                      r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertEqual(m.groups(), ("12", "12", "12"))
