"""Leader election (issue 7): two agentscaler processes on one kube-sim, each
with its own bearer token so that kube-sim's request log (method, path,
code, user, monotonic arrival time) says which process sent what.  Both run
the same config: a scale-mode pool on a Redis list and a dispatch pool
(SandboxClaims from a warm pool, tasks handed to tools/agent-runtime).

  (a) exactly one leader; the standby writes nothing but the Lease and
      consumes no task;
  (b) kill -9 the leader: the standby takes over once the Lease expires
      (the time is printed), then scales and dispatches; no task lost or
      run twice;
  (c) SIGTERM the leader: the Lease is released (seen through a watch on
      it), the standby takes over without waiting for expiry (printed);
  (d) SIGSTOP the leader longer than the Lease, let the standby take over
      and write, SIGCONT: from the request log, every non-Lease write of
      the old leader came before the new leader took the Lease, and none
      after it woke.

Short terms via the flags (lease 3 s, renew deadline 2 s, retry 0.5 s).
kube-sim's `mono` and this process's time.monotonic() are the same
CLOCK_MONOTONIC.  Every wait is bounded; no assertion on speed.
"""
import collections
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

import world  # noqa: E402
from world import wait_for  # noqa: E402

NS = "default"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % NS
LEASE = LEASES + "/agentscaler"
CLAIMS = world.EXT_API % NS + "sandboxclaims"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
TERMS = ("--lease-duration", "3", "--renew-deadline", "2", "--retry-period", "0.5")


def is_lease(r):
    return r["path"].startswith("/apis/coordination.k8s.io/")


@unittest.skipIf(os.environ.get("AGENTSCALER_WRAPPER"),
                 "a 2 s renew deadline is too short under valgrind; memory is checked by the "
                 "ASan run and by check_leader under valgrind")
class LeaderTest(unittest.TestCase):
    def setUp(self):
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.dir = tempfile.mkdtemp(prefix="leader-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        tokens = world.kube_tokens(self.dir, ("a", "b"))
        # Cold starts of 1.5 s keep tasks in flight (taken, not yet acked).
        self.kube = world.KubeSim("--cold-start-ms", "1500", "--warm-bind-ms", "5",
                                  "--replica-delay-ms", "50", "--tokens", tokens)
        self.kube.token = "test-token"
        self.addCleanup(self.kube.stop)
        self.kube.create_deployment("web", 0)
        world.sandbox_pool(self.kube, "wp", replicas=4)
        self.runtime = world.AgentRuntime(self.kube, self.redis.url, work_ms=100)
        self.addCleanup(self.runtime.cleanup)
        self.cfg = {"pools": [
            world.pool("scale", self.redis.url, "work", "web", pollIntervalMs=100,
                       maxReplicas=50, cooldownSeconds=600, scaleDownStabilizationSeconds=0),
            world.pool_dispatch("disp", self.redis.url, "tasks", "wp", claim_ttl_seconds=300,
                                spare_min=2, spare_max=10, pollIntervalMs=100,
                                cooldownSeconds=600)]}
        self.daemons = {}
        self.killed = set()     # daemons the test killed on purpose

    def tearDown(self):
        for name, d in self.daemons.items():
            killed = name in self.killed
            if d.proc.poll() is None:
                os.kill(d.proc.pid, signal.SIGCONT)
                rc = d.stop()
            else:
                rc = 0 if killed else d.proc.returncode
            if rc != 0 or os.environ.get("AGENTSCALER_TEST_LOGS"):
                print("== daemon %s\n%s" % (name, d.logs()[-20000:]), file=sys.stderr)
            d.cleanup()
            self.assertEqual(rc, 0, "daemon %s exit code (ASan reports fail it)" % name)

    # --- the world ---

    def start(self, name):
        d = world.Daemon(self.cfg, self.kube, extra=(
            "--leader-elect", "--instance", name, "--log-format", "text",
            "--token-file", os.path.join(self.dir, "token-" + name)) + TERMS)
        self.daemons[name] = d
        wait_for(lambda: d.get("/healthz")[0] == 200 if d.proc.poll() is None
                 else self.fail(d.logs()[-3000:]), 30, 0.02, "/healthz of " + name)
        return d

    def election(self, name):
        code, st = self.daemons[name].admin("/status")
        return st.get("leaderElection", {}) if code == 200 else {}

    def leaders(self):
        return sorted(n for n, d in self.daemons.items()
                      if d.proc.poll() is None and self.election(n).get("leader"))

    def wait_leader(self, name, timeout=30):
        wait_for(lambda: self.election(name).get("leader"), timeout, 0.02,
                 "%s to lead" % name)

    def wait_standby(self, name, holder):
        wait_for(lambda: self.election(name).get("holder") == holder, 20, 0.02,
                 "%s to see %s holding the Lease" % (name, holder))

    def start_pair(self):
        """a, then b once a leads; returns a once b sees it hold the Lease."""
        a = self.start("a")
        self.wait_leader("a")
        self.start("b")
        self.wait_standby("b", "a")
        return a

    def lease(self):
        code, obj = self.kube.api("GET", LEASE)
        self.assertEqual(code, 200, obj)
        return obj["spec"]

    def requests(self, user):
        return [r for r in self.kube.requests() if r.get("user") == "daemon-" + user]

    def writes(self, user, lease=False):
        """Kubernetes writes of user, without the Lease's unless lease."""
        return [r for r in self.requests(user)
                if r["method"] in WRITES and is_lease(r) == lease]

    def acquired(self, user, after=0.0):
        """kube-sim arrival time of user's first successful Lease write after `after`."""
        got = [r["mono"] for r in self.writes(user, lease=True)
               if r["mono"] > after and r["code"] in (200, 201)]
        return min(got) if got else None

    def push_tasks(self, ids):
        self.redis.pipeline([("LPUSH", "tasks", json.dumps({"id": t, "payload": {}}))
                             for t in ids])

    def set_work(self, n):
        """The scale pool's backlog becomes n items, in one transaction."""
        cmds = [("MULTI",), ("DEL", "work")]
        if n:
            cmds.append(("LPUSH", "work") + tuple("w%d" % i for i in range(n)))
        self.redis.pipeline(cmds + [("EXEC",)])

    def producer(self, ids, per_batch=4, pause=0.15):
        """Pushes ids in batches from a thread (steady work across a failover)."""
        def run():
            for i in range(0, len(ids), per_batch):
                self.push_tasks(ids[i:i + per_batch])
                time.sleep(pause)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def assert_all_once(self, ids, timeout=90):
        """Every task reached an agent exactly once; queues and in-flight lists empty."""
        try:
            wait_for(lambda: set(self.runtime.received_ids()) >= set(ids), timeout, 0.1,
                     "every task handed off")
        except AssertionError:
            self.fail("received %d/%d; tasks %r; processing %r; dead letters %r\n%s" % (
                len(set(self.runtime.received_ids())), len(ids),
                self.redis.cmd("LLEN", "tasks"),
                {k: self.redis.cmd("LLEN", k) for k in self.redis.cmd("KEYS", "tasks:processing:*")},
                self.redis.cmd("LRANGE", "tasks.rejected", 0, -1),
                "\n".join(d.logs()[-3000:] for d in self.daemons.values())))
        counts = collections.Counter(self.runtime.received_ids())
        self.assertEqual(sorted(counts), sorted(ids), "nothing invented")
        self.assertEqual([t for t, n in counts.items() if n > 1], [], "a task ran twice")
        self.assertEqual(self.runtime.ids("duplicate"), [], "an inbox got a task twice")
        self.assertEqual(self.redis.cmd("LLEN", "tasks.rejected"), 0)
        wait_for(lambda: all(self.redis.cmd("LLEN", k) == 0
                             for k in self.redis.cmd("KEYS", "tasks:processing:*")),
                 20, 0.1, "every message acked")
        self.assertEqual(self.redis.cmd("LLEN", "tasks"), 0)
        created = [r for r in self.kube.requests() if r["method"] == "POST"
                   and r["path"].endswith("/sandboxclaims") and r["code"] == 201]
        self.assertEqual(len(created), len(ids), "one claim per task (409s adopt)")

    # --- (a) ---

    def test_one_leader_standby_writes_nothing(self):
        a, b = self.start("a"), self.start("b")
        wait_for(lambda: len(self.leaders()) == 1, 30, 0.05, "one leader")
        lead = self.leaders()[0]
        standby = "b" if lead == "a" else "a"
        self.wait_standby(standby, lead)
        self.assertEqual(self.lease()["holderIdentity"], lead)

        ids = ["a-%02d" % i for i in range(12)]
        self.push_tasks(ids)
        self.set_work(5)
        wait_for(lambda: self.kube.replicas("web") == 5, 20, 0.05, "web scaled to 5")
        # Watch both for a while: never two leaders, the holder never moves.
        end = time.monotonic() + 4
        while time.monotonic() < end:
            self.assertEqual(self.leaders(), [lead])
            time.sleep(0.1)
        self.assert_all_once(ids)
        self.assertEqual(self.lease()["holderIdentity"], lead)
        self.assertEqual(self.lease()["leaseTransitions"], 0)

        # The standby: reads (its targets, the Lease) but no other write.
        self.assertEqual(self.writes(standby), [], "standby wrote to Kubernetes")
        self.assertTrue([r for r in self.requests(standby) if r["method"] == "GET"
                         and r["path"].endswith("/namespaces/default/deployments")
                         and "watch=" in (r.get("query") or "")],
                        "the standby keeps its target watched")
        self.assertTrue(self.writes(lead), "the leader wrote")
        # ... and consumed nothing.
        self.assertEqual(self.redis.cmd("EXISTS", "tasks:processing:" + standby), 0)
        self.assertEqual(self.redis.cmd("ZRANGE", "agentscaler:processing-lists:tasks", 0, -1),
                         ["tasks:processing:" + lead])
        sm = self.daemons[standby].metrics()
        self.assertEqual(sm.get("agentscaler_leader"), 0)
        self.assertEqual(self.daemons[lead].metrics().get("agentscaler_leader"), 1)
        self.assertFalse([k for k in sm if k.startswith("agentscaler_dispatch_tasks_received")])
        # The standby writes no per-pool series (its pools would repeat
        # the leader's and double every sum), only its own: process,
        # clients, election.  One series names no holder (no churn).
        lm = self.daemons[lead].metrics()
        for prefix in ("agentscaler_pool_", "agentscaler_source_"):
            self.assertFalse([k for k in sm if k.startswith(prefix)], prefix)
            self.assertTrue([k for k in lm if k.startswith(prefix)], prefix)
        self.assertFalse([k for k in sm if "holder=" in k])
        self.assertIn("process_start_time_seconds", sm)
        self.assertIn("agentscaler_lease_holder_changes_total", sm)
        code, body = self.daemons[standby].get("/readyz")
        self.assertEqual((code, body), (200, "ok: standby (Lease held by %s)\n" % lead))
        self.assertEqual(self.daemons[lead].get("/readyz"), (200, "ok: leader\n"))
        # The standby's scale pool is warm: it read the source and decided.
        # (Its copy of the target's replicas comes from its watch, taken
        # again before its first write as leader.)
        pools = self.daemons[standby].admin("/status")[1]["pools"]
        self.assertEqual(pools[0]["backlog"], 5)
        self.assertEqual(pools[0]["desiredReplicas"], 5)
        code, body = self.daemons[standby].admin("/explain?task=a-00")
        self.assertEqual(code, 503)

    # --- (b) ---

    def test_kill_9_leader_standby_takes_over(self):
        a = self.start_pair()
        ids = ["b-%03d" % i for i in range(60)]
        prod = self.producer(ids)
        self.set_work(3)
        wait_for(lambda: self.kube.replicas("web") == 3, 20, 0.05, "web scaled to 3")
        wait_for(lambda: len(self.runtime.received_ids()) >= 8, 30, 0.05, "work under way")
        wait_for(lambda: self.redis.cmd("LLEN", "tasks:processing:a") >= 3, 30, 0.01,
                 "a holding messages")

        self.killed.add("a")
        a.proc.kill()
        killed = time.monotonic()
        a.proc.wait()
        held = self.redis.cmd("LLEN", "tasks:processing:a")
        self.wait_leader("b", 30)
        took = self.acquired("b", after=killed)
        self.assertIsNotNone(took)
        print("\nkill -9: standby took the Lease %.3f s after the kill (lease 3 s, "
              "retry 0.5 s)" % (took - killed), file=sys.stderr)
        self.assertEqual(self.lease()["holderIdentity"], "b")
        self.assertEqual(self.lease()["leaseTransitions"], 1)

        # Work goes on under the new leader: scaling ...
        self.set_work(7)
        wait_for(lambda: self.kube.replicas("web") == 7, 20, 0.05, "web scaled to 7 by b")
        self.assertTrue([r for r in self.writes("b") if r["method"] == "PATCH"
                         and r["path"].endswith("/deployments/web/scale")])
        # ... and dispatch: every task once, those a held included.
        prod.join(30)
        self.assertFalse(prod.is_alive())
        self.assert_all_once(ids)
        # What a held went to b through its processing list, not lost.
        self.assertGreater(held, 0)
        self.assertIn("took over %d message" % held, self.daemons["b"].logs())
        self.assertEqual(self.redis.cmd("EXISTS", "tasks:processing:a"), 0)
        print("kill -9: a held %d messages; b adopted them" % held, file=sys.stderr)
        wait_for(lambda: not self.kube.api("GET", CLAIMS)[1].get("items"), 60, 0.2,
                 "every claim released")

    # --- (c) ---

    def watch_lease(self, events):
        """Records every version of the Lease (a watch through kube-sim)."""
        u = urllib.parse.urlsplit(self.kube.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.request("GET", LEASES + "?watch=true&timeoutSeconds=40&fieldSelector=" +
                     urllib.parse.quote("metadata.name=agentscaler"),
                     headers={"Authorization": "Bearer " + self.kube.token})
        resp = conn.getresponse()
        ready = threading.Event()

        def run():
            ready.set()
            try:
                for line in resp:
                    if line.strip():
                        events.append((time.monotonic(), json.loads(line)))
            except (OSError, ValueError, http.client.HTTPException):
                pass
            conn.close()
        threading.Thread(target=run, daemon=True).start()
        ready.wait(5)
        wait_for(lambda: events, 10, 0.02, "the watch's first event")

    def test_sigterm_releases_the_lease(self):
        a = self.start_pair()
        ids = ["c-%02d" % i for i in range(10)]
        self.push_tasks(ids)
        wait_for(lambda: len(self.runtime.received_ids()) >= 4, 30, 0.05, "work under way")
        events = []
        self.watch_lease(events)
        before = self.lease()

        a.proc.send_signal(signal.SIGTERM)
        termed = time.monotonic()
        self.assertEqual(a.proc.wait(15), 0)
        self.wait_leader("b", 30)
        took = self.acquired("b", after=termed)
        print("\nSIGTERM: standby took the Lease %.3f s after the signal (lease 3 s: "
              "released, not expired)" % (took - termed), file=sys.stderr)

        # The watch saw it released (client-go's ReleaseOnCancel form), then b's.
        wait_for(lambda: any(e["object"]["spec"].get("holderIdentity") == "b"
                             for _, e in events), 10, 0.02, "the watch to see b")
        specs = [e["object"]["spec"] for t, e in events if t > termed]
        rel = [i for i, s in enumerate(specs) if s.get("holderIdentity") == ""]
        self.assertTrue(rel, "no released version of the Lease: %r" % specs)
        s = specs[rel[0]]
        self.assertEqual(s["leaseDurationSeconds"], 1)
        self.assertEqual(s["leaseTransitions"], before["leaseTransitions"])
        self.assertEqual(s["renewTime"], s["acquireTime"])
        nxt = specs[rel[0] + 1]
        self.assertEqual(nxt["holderIdentity"], "b")
        self.assertEqual(nxt["leaseTransitions"], before["leaseTransitions"] + 1)
        # a's last request was that release, and all its writes came first.
        last = self.requests("a")[-1]
        self.assertEqual((last["method"], last["path"], last["code"]), ("PUT", LEASE, 200))
        self.assertLess(max(r["mono"] for r in self.writes("a")), took)
        self.assertIn("released Lease default/agentscaler", a.logs())
        self.assert_all_once(ids)

    # --- (d) ---

    def test_sigstop_never_two_writers(self):
        a = self.start_pair()
        ids = ["d-%03d" % i for i in range(80)]
        prod = self.producer(ids, per_batch=2, pause=0.1)
        wait_for(lambda: len(self.runtime.received_ids()) >= 6, 30, 0.05, "work under way")
        self.set_work(4)
        wait_for(lambda: self.kube.replicas("web") == 4, 20, 0.05, "web scaled to 4")

        os.kill(a.proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        self.wait_leader("b", 30)
        took = self.acquired("b", after=stopped)
        print("\nSIGSTOP: standby took the Lease %.3f s after the stop" % (took - stopped),
              file=sys.stderr)
        # The new leader writes while the old one sleeps on.
        self.set_work(9)
        wait_for(lambda: self.kube.replicas("web") == 9, 20, 0.05, "web scaled to 9 by b")
        wait_for(lambda: [r for r in self.writes("b") if "sandboxclaims" in r["path"]],
                 20, 0.05, "b to write claims")
        self.assertGreater(time.monotonic() - stopped, 3.0)
        os.kill(a.proc.pid, signal.SIGCONT)
        woke = time.monotonic()
        # a learns it lost, and stays a standby while work goes on.
        try:
            wait_for(lambda: self.election("a").get("holder") == "b", 10, 0.02, "a to see b")
        except AssertionError:
            self.fail("a: exit %r, status %r\n%s" % (a.proc.poll(), a.admin("/status"),
                                                    a.logs()[-6000:]))
        self.assertFalse(self.election("a").get("leader"))
        self.set_work(2)
        time.sleep(2.0)
        prod.join(30)
        self.assertFalse(prod.is_alive())
        self.assert_all_once(ids)

        aw, bw = self.writes("a"), self.writes("b")
        self.assertTrue(aw and bw)
        first_b = min(r["mono"] for r in bw)
        last_a = max(r["mono"] for r in aw)
        print("SIGSTOP: last write of a %.3f s before b took the Lease; b's first write "
              "%.3f s after" % (took - last_a, first_b - took), file=sys.stderr)
        self.assertLess(last_a, first_b, "a wrote after b's first write")
        self.assertLess(last_a, took, "a wrote after b took the Lease")
        self.assertEqual([r for r in aw if r["mono"] > woke], [],
                         "a wrote after SIGCONT")
        # After waking, a touched the Lease only to read it.
        self.assertEqual([r for r in self.writes("a", lease=True)
                          if r["mono"] > woke and r["code"] == 200], [])
        self.assertIn("stopped leading", a.logs())


if __name__ == "__main__":
    unittest.main()
