"""Leader election on the real API server (issue 13): two daemons, each on
its own TokenRequest token of the chart's ServiceAccount, elect on a real
coordination.k8s.io/v1 Lease; a scale pool on a Redis list says who acts.

  - kill -9 the leader: the standby takes the Lease once it expires and
    scales the Deployment;
  - SIGSTOP the leader past the Lease: the standby takes over and writes;
    after SIGCONT the old leader writes nothing more.  Who wrote what, and
    when, comes from the API server's audit log: each token's `jti` shows
    as the credential id of the requests made with it.

Short terms (lease 3 s, renew deadline 2 s, retry 0.5 s).  Every wait is
bounded; nothing asserts on speed.
"""
import base64
import calendar
import json
import os
import signal
import time
import unittest

from tests.e2e import kube  # noqa: E402
import world  # noqa: E402
from world import wait_for  # noqa: E402

TERMS = ("--lease-duration", "3", "--renew-deadline", "2", "--retry-period", "0.5")
CRED_ID = "authentication.kubernetes.io/credential-id"


def jti(token):
    """The jti claim of a ServiceAccount token (a JWT)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]


def when(ts):
    """An audit timestamp (RFC 3339, microseconds) in seconds."""
    base, _, frac = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


class TokenKube(kube.RealKube):
    """RealKube whose daemon_args remember each token's jti by daemon."""

    def __init__(self):
        super().__init__()
        self.jtis = {}

    def daemon_args(self, directory):
        args = super().daemon_args(directory)
        with open(args[-1]) as f:
            self.jtis[directory] = jti(f.read())
        return args


@unittest.skipIf(os.environ.get("AGENTSCALER_WRAPPER"), "a 2 s renew deadline is too "
                 "short under valgrind")
class LeaderE2E(kube.E2ETestCase):
    prefix = "e2e-leader"
    kube_class = TokenKube

    def setUp(self):
        super().setUp()
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.kube.create_deployment("web", 0, self.ns)
        self.cfg = {"pools": [{
            "apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentPool",
            "metadata": {"name": "p", "namespace": self.ns},
            "spec": {"source": {"type": "redis-list", "address": self.redis.url,
                                "queue": "work"},
                     "target": {"kind": "Deployment", "name": "web"},
                     "scaling": {"pollIntervalMs": 100, "maxReplicas": 50,
                                 "cooldownSeconds": 600,
                                 "scaleDownStabilizationSeconds": 0}}}]}
        self.daemons = {}
        # A Lease left by an earlier daemon of the process would delay ours.
        self.kube.api("DELETE", "/apis/coordination.k8s.io/v1/namespaces/%s/leases/"
                      "agentscaler" % kube.CHART_NAMESPACE)

    def tearDown(self):
        for d in self.daemons.values():
            if d.proc.poll() is None:
                os.kill(d.proc.pid, signal.SIGCONT)
                d.stop()
            d.cleanup()
        super().tearDown()

    def start(self, name):
        # The chart grants its Lease (by name) in its own namespace only.
        d = world.Daemon(self.cfg, self.kube, extra=(
            "--leader-elect", "--instance", name,
            "--lease-namespace", kube.CHART_NAMESPACE) + TERMS)
        self.daemons[name] = d
        wait_for(lambda: d.get("/healthz")[0] == 200 if d.proc.poll() is None
                 else self.fail(d.logs()[-3000:]), 30, 0.05, "/healthz of " + name)
        return d

    def election(self, name):
        code, st = self.daemons[name].admin("/status")
        return st.get("leaderElection", {}) if code == 200 else {}

    def start_pair(self):
        self.start("a")
        wait_for(lambda: self.election("a").get("leader"), 30, 0.05, "a to lead")
        self.start("b")
        wait_for(lambda: self.election("b").get("holder") == "a", 30, 0.05,
                 "b to see a hold the Lease")

    def writes(self, name, lease):
        """(time, verb, uri) of the non-read requests daemon name made,
        Lease writes or the others, from the audit log."""
        cred = "JTI=" + self.kube.jtis[self.daemons[name].dir]
        out = []
        for e in self.kube.c.audit(self.kube.sa_user):
            if cred not in (e.get("user", {}).get("extra", {}).get(CRED_ID) or []):
                continue
            if e.get("verb") not in ("create", "update", "patch", "delete"):
                continue
            is_lease = (e.get("objectRef") or {}).get("resource") == "leases"
            if is_lease == lease and e.get("responseStatus", {}).get("code", 0) < 300:
                out.append((when(e["requestReceivedTimestamp"]), e["verb"],
                            e["requestURI"]))
        return out

    def test_kill_9_leader_standby_takes_over(self):
        self.start_pair()
        self.redis.cmd("RPUSH", "work", *["x"] * 3)
        wait_for(lambda: self.kube.replicas("web", self.ns) == 3, 30, 0.05,
                 "a scales to 3")
        self.assertEqual(self.writes("b", lease=False), [], "the standby wrote")
        self.daemons["a"].proc.kill()
        t0 = time.monotonic()
        self.redis.cmd("RPUSH", "work", *["x"] * 2)
        wait_for(lambda: self.kube.replicas("web", self.ns) == 5, 60, 0.05,
                 "b, now leading, scales to 5")
        print("\nreal Lease, kill -9: b scaled %.1f s after the kill"
              % (time.monotonic() - t0))
        self.assertTrue(self.writes("b", lease=False), "b's scale write in the audit log")

    def test_sigstop_never_two_writers(self):
        self.start_pair()
        a = self.daemons["a"]
        self.redis.cmd("RPUSH", "work", "x")
        wait_for(lambda: self.kube.replicas("web", self.ns) == 1, 30, 0.05, "a scales to 1")
        os.kill(a.proc.pid, signal.SIGSTOP)
        wait_for(lambda: self.election("b").get("leader"), 60, 0.05, "b to lead")
        self.redis.cmd("RPUSH", "work", "x", "x")
        wait_for(lambda: self.kube.replicas("web", self.ns) == 3, 60, 0.05, "b scales to 3")
        os.kill(a.proc.pid, signal.SIGCONT)
        # a wakes, finds it lost the Lease: b stays the holder.
        wait_for(lambda: self.election("a").get("holder") == "b" and
                 not self.election("a").get("leader"), 30, 0.05, "a to see b lead")
        self.redis.cmd("RPUSH", "work", "x")
        wait_for(lambda: self.kube.replicas("web", self.ns) == 4, 60, 0.05, "b scales to 4")
        b_took = min(t for t, verb, uri in self.writes("b", lease=True))
        a_writes = self.writes("a", lease=False)
        self.assertTrue(a_writes, "a's scale write to 1 is in the audit log")
        late = [w for w in a_writes if w[0] >= b_took]
        self.assertEqual(late, [], "a wrote after b took the Lease")
        self.assertEqual(self.kube.replicas("web", self.ns), 4)


if __name__ == "__main__":
    unittest.main()
