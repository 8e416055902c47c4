"""`agentscaler simulate` from the command line (issue 17): the table, the
JSON, the picture, the reference traces, and the errors (a bad trace line
named with its number, an unknown policy or generator, exit status 2).
The maths are tests/check_simulate.c's; this is the binary's surface.
"""
import json
import os
import subprocess
import tempfile
import unittest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("AGENTSCALER_BIN", os.path.join(ROOT, "build/asan/agentscaler"))
TRACES = os.path.join(ROOT, "tools/bench/traces")


def simulate(*args):
    return subprocess.run([BIN, "simulate"] + list(args), capture_output=True,
                          text=True, timeout=300)


class SimulateCase(unittest.TestCase):
    def test_table_and_aim(self):
        r = simulate("--generate", "cascade", "--seed", "3", "--duration", "200",
                     "--static", "5")
        self.assertEqual(r.returncode, 0, r.stderr)
        names = [line.split()[0] for line in r.stdout.splitlines()[2:]
                 if line and not line.startswith(("predictive vs", "rate vs"))]
        self.assertEqual(names, ["predictive", "rate", "keda", "keda-pool", "scale",
                                 "static-5"])
        self.assertIn("predictive vs keda: p95 wait", r.stdout)

    def test_json_and_png(self):
        with tempfile.TemporaryDirectory() as d:
            png = os.path.join(d, "sim.png")
            r = simulate("--trace", os.path.join(TRACES, "onoff-1.jsonl"), "--config",
                         os.path.join(TRACES, "pool.json"), "--policies", "predictive,keda",
                         "--static", "2", "--json", "--png", png)
            self.assertEqual(r.returncode, 0, r.stderr)
            doc = json.loads(r.stdout)
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        pols = {p["policy"]: p for p in doc["policies"]}
        self.assertEqual(sorted(pols), ["keda", "predictive", "static-2"])
        for p in pols.values():
            self.assertEqual(p["started"], p["tasks"])
            self.assertLessEqual(p["waitP50"], p["waitP95"])
            self.assertLessEqual(p["waitP95"], p["waitP99"])
            self.assertTrue(0 <= p["warmHitRatio"] <= 1)
            self.assertGreater(p["sandboxSecondsBusy"], 0)
        self.assertEqual(doc["cluster"]["coldMedian"], 3)

    def test_write_trace_is_the_reference(self):
        # The checked-in traces are what the generator writes: regenerate one.
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "c.jsonl")
            r = simulate("--generate", "cascade", "--seed", "1", "--write-trace", out)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as a, open(os.path.join(TRACES, "cascade-1.jsonl")) as b:
                self.assertEqual(a.read(), b.read())

    def test_errors(self):
        with tempfile.TemporaryDirectory() as d:
            bad = os.path.join(d, "bad.jsonl")
            with open(bad, "w") as f:
                f.write('{"t": 1, "id": "a", "work": 1}\n{"t": 2, "id": "b", '
                        '"parent": "zz", "work": 1}\n')
            r = simulate("--trace", bad)
            self.assertEqual(r.returncode, 2)
            self.assertIn('bad.jsonl: line 2: parent "zz": no earlier task has this id',
                          r.stderr)
        r = simulate("--generate", "bursty")
        self.assertEqual(r.returncode, 2)
        self.assertIn('unknown generator "bursty"', r.stderr)
        r = simulate("--generate", "poisson", "--policies", "hpa")
        self.assertEqual(r.returncode, 2)
        self.assertIn('unknown policy "hpa"', r.stderr)
        r = simulate("--generate", "poisson", "--cold-median", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--cold-median: expected a number", r.stderr)
        self.assertEqual(simulate().returncode, 2)


if __name__ == "__main__":
    unittest.main()
