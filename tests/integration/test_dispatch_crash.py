"""Crash safety of dispatch mode (issue 5): agentscaler is killed with
SIGKILL at random moments under load, 20 times, and restarted.  Checked
against what the real parts saw, not against our own counters:

  - every valid task reached an agent exactly once (the agent runtime's
    log), every bad one is on the dead-letter list with its reason;
  - no task got two claims (kube-sim's request log: one 201 per task);
  - no claim outlived its TTL (claims sampled from kube-sim throughout);
  - each restarted process listed the claims before it created any.

Bounded: 20 kills, ~160 tasks, every wait has a timeout; loopback only.
The random moments come from a seeded generator (printed) so a failure can
be replayed with AGENTSCALER_CRASH_SEED.
"""
import calendar
import collections
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "lib"))
import world  # noqa: E402
from world import wait_for  # noqa: E402

NS = "default"
CLAIMS = world.EXT_API % NS + "sandboxclaims"
KILLS = 20
TTL = 120


@unittest.skipIf(os.environ.get("AGENTSCALER_WRAPPER"),
                 "20 restarts under valgrind take minutes; memory is checked by the ASan run")
class CrashTest(unittest.TestCase):
    def setUp(self):
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        # One token per daemon process, so kube-sim's request log says which
        # process sent each request.
        self.dir = tempfile.mkdtemp(prefix="crash-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        tokens = world.kube_tokens(self.dir, range(KILLS + 1))
        self.kube = world.KubeSim("--cold-start-ms", "200", "--warm-bind-ms", "5",
                                  "--tokens", tokens)
        self.kube.token = "test-token"
        self.addCleanup(self.kube.stop)
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            if d.proc.poll() is None:
                rc = d.stop()
                if rc != 0:
                    print(d.logs()[-20000:], file=sys.stderr)
                self.assertEqual(rc, 0)
            d.cleanup()

    def start_daemon(self, cfg):
        k = len(self.daemons)
        d = world.Daemon(cfg, self.kube, extra=("--instance", "crash", "--log-format", "text",
                                                "--token-file",
                                                os.path.join(self.dir, "token-%d" % k)))
        self.daemons.append(d)
        wait_for(lambda: d.get("/healthz")[0] == 200 if d.proc.poll() is None
                 else self.fail(d.logs()[-3000:]), 30, 0.02, "/healthz")
        return d

    def sample_claims(self, stop, seen_late):
        """Records any claim found alive past its shutdownTime (+ 5 s for
        kube-sim's controller to act)."""
        while not stop.is_set():
            code, obj = self.kube.api("GET", CLAIMS)
            now = time.time()
            for c in (obj.get("items") or []) if code == 200 else []:
                st = ((c.get("spec") or {}).get("lifecycle") or {}).get("shutdownTime")
                if st and now > calendar.timegm(time.strptime(st, "%Y-%m-%dT%H:%M:%SZ")) + 5:
                    seen_late.append(c["metadata"]["name"])
            stop.wait(0.25)

    def test_kill_9_twenty_times_under_load(self):
        seed = int(os.environ.get("AGENTSCALER_CRASH_SEED", random.randrange(1 << 30)))
        print("crash test seed %d" % seed, file=sys.stderr)
        rnd = random.Random(seed)
        world.sandbox_pool(self.kube, "wp", replicas=8)
        runtime = world.AgentRuntime(self.kube, self.redis.url, work_ms=150,
                                     extra=("--work-jitter", "150"))
        self.addCleanup(runtime.cleanup)
        cfg = {"pools": [world.pool_dispatch("p", self.redis.url, "tasks", "wp",
                                             claim_ttl_seconds=TTL, spare_min=4, spare_max=30,
                                             pollIntervalMs=100, cooldownSeconds=600)]}
        valid = ["c-%03d" % i for i in range(150)]
        bad = [b"{broken", json.dumps({"no": "id"}), json.dumps({"id": "orphan", "parent": "none"}),
               json.dumps({"id": ""}), b"\xc3\x28"]
        msgs = [json.dumps({"id": t, "payload": {"i": i}}) for i, t in enumerate(valid)]
        for i, b in enumerate(bad):
            msgs.insert(rnd.randrange(len(msgs)), b)

        stop = threading.Event()
        late = []
        sampler = threading.Thread(target=self.sample_claims, args=(stop, late), daemon=True)
        sampler.start()
        self.addCleanup(stop.set)

        def produce():
            for i in range(0, len(msgs), 8):
                self.redis.pipeline([("LPUSH", "tasks", m) for m in msgs[i:i + 8]])
                time.sleep(0.12)
        producer = threading.Thread(target=produce, daemon=True)
        d = self.start_daemon(cfg)
        producer.start()
        for k in range(KILLS):
            time.sleep(rnd.uniform(0.05, 0.6))
            d.proc.kill()
            d.proc.wait()
            d.log.close()
            d = self.start_daemon(cfg)
        producer.join(60)
        self.assertFalse(producer.is_alive())

        def settled():
            got = set(runtime.received_ids())
            dead = self.redis.cmd("LLEN", "tasks.rejected")
            return len(got) == len(valid) and dead == len(bad)
        try:
            wait_for(settled, 120, 0.2, "every task handed off or dead-lettered")
        except AssertionError:
            recs = self.redis.cmd("LRANGE", "tasks.rejected", 0, -1)
            self.fail("received %d/%d; dead letters %r; tasks %d, processing %d; daemon log:\n%s"
                      % (len(set(runtime.received_ids())), len(valid),
                         [json.loads(r)["reason"] + ":" + str(json.loads(r).get("taskId"))
                          for r in recs], self.redis.cmd("LLEN", "tasks"),
                         self.redis.cmd("LLEN", "tasks:processing:crash"), d.logs()[-4000:]))
        runtime.wait_finished(len(valid), timeout=60)
        try:
            wait_for(lambda: not self.kube.api("GET", CLAIMS)[1].get("items"), 60, 0.2,
                     "every claim released")
        except AssertionError:
            left = self.kube.api("GET", CLAIMS)[1].get("items")
            ids = [c["metadata"]["annotations"].get("agentscaler.io/task-id") for c in left]
            lines = [ln for dd in self.daemons for ln in dd.logs().splitlines()
                     if any(i and i in ln for i in ids)]
            self.fail("claims left: %s\nlog lines about them:\n%s" % (
                json.dumps([{"name": c["metadata"]["name"], "status": c.get("status"),
                             "meta": c["metadata"]} for c in left], indent=1)[:6000],
                "\n".join(lines)[-6000:]))
        stop.set()
        sampler.join(5)

        # Exactly once at the agents, and nothing invented.
        counts = collections.Counter(runtime.received_ids())
        self.assertEqual(sorted(counts), sorted(valid))
        self.assertEqual([t for t, n in counts.items() if n > 1], [])
        self.assertEqual(runtime.ids("duplicate"), [], "an inbox got the same task twice")
        # Dead letters: the bad ones, each with a reason, none of the valid.
        recs = [json.loads(r) for r in self.redis.cmd("LRANGE", "tasks.rejected", 0, -1)]
        self.assertEqual(len(recs), len(bad))
        self.assertTrue(all(r["reason"] and r["detail"] for r in recs))
        self.assertFalse({r.get("taskId") for r in recs} & set(valid))
        self.assertEqual(self.redis.cmd("LLEN", "tasks"), 0)
        self.assertEqual(self.redis.cmd("LLEN", "tasks:processing:crash"), 0)
        # One claim per task: one 201 per valid task, whatever the 409s.
        reqs = self.kube.requests()
        created = [r for r in reqs if r["method"] == "POST" and r["path"].endswith("/sandboxclaims")
                   and r["code"] == 201]
        self.assertEqual(len(created), len(valid), "claims created (409s adopt)")
        self.assertEqual(late, [], "claims alive past their TTL")
        # Each process listed claims before its first create (requests told
        # apart by each process's own token).
        for k in range(KILLS + 1):
            mine = [r for r in reqs if r.get("user") == "daemon-%d" % k
                    and "sandboxclaims" in r["path"]]
            lists = [r["seq"] for r in mine if r["method"] == "GET"
                     and "watch" not in str(r["query"])]
            posts = [r["seq"] for r in mine if r["method"] == "POST"]
            self.assertTrue(lists, "process %d never listed claims" % k)
            if posts:
                self.assertLess(min(lists), min(posts),
                                "process %d created a claim before listing" % k)
        # The logs say what was rebuilt.
        rebuilt = sum("rebuilt from claims" in d.logs() for d in self.daemons)
        self.assertEqual(rebuilt, KILLS + 1)


if __name__ == "__main__":
    unittest.main()
