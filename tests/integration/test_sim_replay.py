"""Ground truth for `agentscaler simulate` (issue 17): the reference trace
onoff-1 (bursts of 3 tasks/s for 10 s every 120 s, no children), ten times
faster, replayed by a real producer against the daemon in dispatch mode on
kube-sim (cold start 300 ms, warm bind 20 ms: the simulator's 3 s and 0.2 s
over ten), every task held by tools/agent-runtime for its work; then the
same scaled trace through the simulator with those parameters
(tools/bench/sim_replay.py does both; it prints the table below too).

What must agree, and why within these bounds:
- Every task reached an agent once, on both sides.
- The warm-claim ratio (claims that got a warm-pool member: the daemon's
  agentscaler_dispatch_claims_total{launch="warm"}, the simulator's
  adoptedRatio): at most 10 points above the simulator's, at most 18 below.
  Both run the same sizing code (warmpool.c, predictive) on the same 1 s
  tick; what differs is the tick's phase against the bursts (a burst lasts
  1 s here), kube-sim's refill (all missing members in one reconcile,
  where the model paces slow-start batches one 50 ms round-trip each) and
  the live side's slower readiness under a 30-claims-a-second burst, which
  is the daemon's build and the machine more than the model: with the
  release daemon the live ratio was 89.0 %, the simulator's exactly; with
  the ASan one (the test suite's) 79.9-84.4 % on this 2-core machine under
  load, and 79.9 % again with two CPU-bound processes added (a machine
  half as fast).  Every difference measured is the live side short: load
  and a slower build take warm hits away (members not there, or not
  refilled, in time), so the bound is wider below (18 points, room for a CI
  machine slower than this one) than above (10, the tick's phase, as
  before the ASan daemon widened it to 12 both ways).  What it still
  catches: the `rate` policy's sizing on the same trace simulates 40.3 %,
  49 points away.
- Sandbox-seconds (every sandbox from creation to deletion, the live ones
  seen every 50 ms, up to the last Result; the simulator with grace 0, to
  its last task's end): within 15 %.  The live side adds the hand-off to
  every sandbox's life and rounds to its 50 ms polls; observed 638 live
  beside 661 simulated (3.5 %).
- The median wait (LPUSH to the runtime's `received`): at least a third of
  the simulator's, at most 3 times the calibrated simulator's (the one told
  the hand-off's median this run measured, bound -> received, ~0.15 s here,
  a step the model does not have; 0.57-0.60 s).  Not a speed check:
  kube-sim's timers, the hand-off and a loaded machine are of the order of
  the scaled 0.3 s cold start itself; observed 0.37-0.48 s live beside
  0.32 s simulated.  On a slower machine the hand-off grows, and the
  calibrated bound with it; the daemon's own part (LPUSH -> claim) is not
  fed to the model, so a daemon that claims late still fails.  The p95 is
  printed, not asserted: it is the live side's tail under load (claim ->
  bound p95 ~1.1 s with the ASan daemon, where kube-sim's cold start is
  fixed at 0.3 s).

The peak of sandboxes is printed (53 simulated, 54-62 live).
"""
import os
import unittest

import world  # noqa: E402
import sim_replay  # noqa: E402

TRACE = os.path.join(world.ROOT, "tools", "bench", "traces", "onoff-1.jsonl")


class SimReplayTest(unittest.TestCase):
    def test_simulator_agrees_with_the_live_daemon(self):
        out = sim_replay.compare(TRACE, speed=10.0, cold_ms=300, bind_ms=20)
        print("\n" + sim_replay.table(out))
        sim, got = out["simulated"], out["live"]
        self.assertEqual(got["received"], got["tasks"])
        self.assertEqual(got["duplicates"], 0)
        self.assertEqual(sim["tasks"], got["tasks"])
        self.assertEqual(got["warmClaims"] + got["coldClaims"], got["tasks"])
        why = "warm-claim ratio: live %.3f, simulated %.3f" % (got["warmHitRatio"],
                                                               sim["warmHitRatio"])
        self.assertLessEqual(got["warmHitRatio"], sim["warmHitRatio"] + 0.10, why)
        self.assertGreaterEqual(got["warmHitRatio"], sim["warmHitRatio"] - 0.18, why)
        self.assertLessEqual(abs(got["sandboxSeconds"] - sim["sandboxSeconds"]),
                             0.15 * sim["sandboxSeconds"], "sandbox-seconds: live %.1f, "
                             "simulated %.1f" % (got["sandboxSeconds"], sim["sandboxSeconds"]))
        cal = out["calibrated"]
        self.assertLessEqual(got["waitP50"], 3 * cal["waitP50"],
                             "p50 wait: live %.3f, calibrated %.3f" % (got["waitP50"],
                                                                      cal["waitP50"]))
        self.assertGreaterEqual(got["waitP50"], sim["waitP50"] / 3)


if __name__ == "__main__":
    unittest.main()
