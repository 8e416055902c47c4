"""tools/bench/bench.py's trial protocol against kube-sim.

kube-sim logs a request when it arrives, before it is applied.  The reaction
phase once took a PATCH it saw in the log for the scale-up, purged the queue,
read the Deployment still at 0 (the PATCH not applied yet), pushed the next
task and waited for a PATCH that was never due: the Deployment went to 1
under the push, the queue was not empty, the pool rightly held 1 replica
(issue 12, item 11: "rabbitmq-http never reacted").  Here a PATCH is held in
kube-sim by injected latency and the protocol must neither take it as the
reaction nor call the Deployment at rest until it has been answered.
Bounded waits on conditions; no timing is asserted.
"""
import threading
import time
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402
import bench  # noqa: E402


class TrialProtocol(unittest.TestCase):
    def setUp(self):
        self.kube = world.KubeSim()
        self.addCleanup(self.kube.stop)
        self.kube.create_deployment("agents-0")

    def test_a_patch_not_yet_applied_is_neither_reaction_nor_rest(self):
        name = "agents-0"
        self.assertTrue(bench.at_rest(self.kube, name))
        t_push = time.monotonic()
        # The daemon's scale-up, held 10 s inside kube-sim before it
        # applies (far longer than the checks below take).
        self.kube.adm("POST", "/latency", {"ms": 10000, "method": "PATCH", "path": "/scale"})
        done = []
        th = threading.Thread(target=lambda: done.append(self.kube.api(
            "PATCH", "/apis/apps/v1/namespaces/default/deployments/%s/scale" % name,
            {"spec": {"replicas": 1}}, "application/merge-patch+json")))
        th.start()
        self.addCleanup(th.join)
        wait_for(lambda: any(r["method"] == "PATCH" for r in self.kube.requests()), 10,
                 what="the PATCH in kube-sim's log")
        # Logged, not applied: the Deployment still reads 0.
        self.assertEqual(self.kube.replicas(name), 0)
        self.assertFalse(done)
        self.assertIsNone(bench.reaction(self.kube, 0, name, t_push), "taken as the reaction")
        self.assertFalse(bench.at_rest(self.kube, name), "a trial would start now")
        th.join(30)
        self.assertTrue(done, "the PATCH was answered")
        r = bench.reaction(self.kube, 0, name, t_push)
        self.assertIsNotNone(r)
        self.assertEqual(r["code"], 200)
        self.assertFalse(bench.at_rest(self.kube, name, r["seq"]))   # at 1 now


if __name__ == "__main__":
    unittest.main()
