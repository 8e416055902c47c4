"""Scale mode end to end: real redis-server + kube-sim + the daemon.

Each test builds its own world on free loopback ports and tears it down by
PID.  Waits are bounded polls; nothing asserts on speed.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

FAST = dict(pollIntervalMs=100, cooldownSeconds=1, scaleDownStabilizationSeconds=0.5)


def m(daemon, name, **labels):
    """The sum of name's series with these labels (others summed over)."""
    return daemon.metric_sum(name, **labels)


class World(unittest.TestCase):
    kube_args = ()

    def setUp(self):
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.kube = world.KubeSim("--replica-delay-ms", "50", *self.kube_args)
        self.addCleanup(self.kube.stop)
        self.daemon = None

    def tearDown(self):
        if self.daemon is not None:
            rc = self.daemon.stop()
            if rc != 0 or os.environ.get("AGENTSCALER_TEST_LOGS"):
                print(self.daemon_logs[-20000:], file=sys.stderr)
            self.daemon.cleanup()
            self.assertEqual(rc, 0, "daemon exit code (valgrind or ASan reports fail it)")

    @property
    def daemon_logs(self):
        return self.daemon.logs() if self.daemon else ""

    def start(self, pools, extra=()):
        self.daemon = world.Daemon({"pools": pools}, self.kube, extra=extra)
        wait_for(lambda: self.daemon.get("/healthz")[0] == 200 if self._alive() else self.fail(self.daemon.logs()),
                 30, 0.05, "the daemon's /healthz")

    def _alive(self):
        return self.daemon.proc.poll() is None

    def push(self, queue, n):
        self.redis.pipeline([("LPUSH", queue, json.dumps({"id": "t-%d" % i})) for i in range(n)])

    def replicas_become(self, name, want, timeout=20):
        wait_for(lambda: self.kube.replicas(name) == want, timeout, 0.02,
                 "deployment %s to have %d replicas (logs: %s)" % (name, want, self.daemon_logs[-2000:]))


class ScaleTest(World):
    def test_scale_from_zero_to_need_and_back(self):
        self.kube.create_deployment("agents-a")
        self.kube.create_deployment("agents-b")
        self.start([world.pool("a", self.redis.url, "tasks-a", "agents-a",
                               tasksPerReplica=4, maxReplicas=10, **FAST),
                    world.pool("b", self.redis.url, "tasks-b", "agents-b",
                               tasksPerReplica=1, maxReplicas=5, **FAST)])
        wait_for(lambda: self.daemon.started(), 20, what="pools started")
        self.assertEqual(self.kube.replicas("agents-a"), 0)
        self.push("tasks-a", 25)
        self.push("tasks-b", 25)
        self.replicas_become("agents-a", 7)        # ceil(25 / 4)
        self.replicas_become("agents-b", 5)        # 25 clamped to max 5
        wait_for(lambda: m(self.daemon, "agentscaler_pool_source_tasks", namespace="default", pool="a",
                           state="ready") == 25,
                 10, what="backlog metric")
        self.assertEqual(m(self.daemon, "agentscaler_pool_desired_replicas", namespace="default", pool="a"), 7)
        self.assertGreaterEqual(m(self.daemon, "agentscaler_pool_scale_writes_total",
                                  namespace="default", pool="a", direction="up"), 1)

        drained = time.monotonic()
        self.redis.cmd("DEL", "tasks-a", "tasks-b")
        self.replicas_become("agents-a", 0)
        self.replicas_become("agents-b", 0)
        # The PATCH to zero arrived no earlier than the cooldown (1 s) after
        # the drain (kube-sim logs CLOCK_MONOTONIC, as time.monotonic()).
        patches = [r for r in self.kube.requests()
                   if r["method"] == "PATCH" and "agents-a/scale" in r["path"]]
        self.assertEqual(patches[-1]["code"], 200)
        self.assertGreaterEqual(patches[-1]["mono"] - drained, 0.9)
        self.assertEqual(m(self.daemon, "agentscaler_pool_spec_replicas", namespace="default", pool="a"), 0)
        text = self.daemon.get("/metrics")[1]
        self.assertIn('agentscaler_kube_requests_total{client="main",verb="PATCH",code="200"}', text)
        self.assertIn("agentscaler_build_info{version=", text)
        # The JSON log's scale lines carry the pool and its namespace as
        # keys (issue 19, scheduler/pool.c on log_kv).
        lines = [json.loads(ln) for ln in self.daemon.logs().splitlines()
                 if ln.startswith("{")]
        scaled = [ln for ln in lines if ln.get("component") == "pool" and
                  ln["msg"].startswith("default/a: scaled")]
        self.assertTrue(scaled, lines[-20:])
        self.assertEqual((scaled[0].get("pool"), scaled[0].get("namespace")), ("a", "default"))

    def test_in_flight_counts_and_holds(self):
        self.kube.create_deployment("agents")
        p = world.pool("p", self.redis.url, "q", "agents", maxReplicas=20, **FAST)
        p["spec"]["source"]["countInFlight"] = True
        self.start([p])
        self.push("q", 2)
        self.push("q.processing", 3)
        self.replicas_become("agents", 5)
        self.redis.cmd("DEL", "q")
        # Three still in flight: never below them, even after the cooldown
        # and the stabilization window (1.5 s; 25 evaluations span 2.1 s at
        # least).
        self.replicas_become("agents", 3)
        st = self.daemon.evaluated("p", 25)
        self.assertEqual(st["desiredReplicas"], 3, st)
        self.assertEqual(self.kube.replicas("agents"), 3)
        self.redis.cmd("DEL", "q.processing")
        self.replicas_become("agents", 0)

    def test_redis_restart_holds_then_recovers(self):
        self.kube.create_deployment("agents")
        self.start([world.pool("p", self.redis.url, "q", "agents", **FAST)])
        self.push("q", 3)
        self.replicas_become("agents", 3)
        self.redis.stop()
        wait_for(lambda: m(self.daemon, "agentscaler_source_up", namespace="default", pool="p") == 0,
                 15, what="source_up to drop")
        # Evaluated for longer than cooldown + stabilization (25 polls: 2.1 s
        # at least): a source error never scales to zero.
        st = self.daemon.evaluated("p", 25)
        self.assertEqual((st["lastReason"], st["desiredReplicas"]), ("source-error", 3), st)
        self.assertEqual(self.kube.replicas("agents"), 3)
        self.assertGreater(m(self.daemon, "agentscaler_source_errors_total", namespace="default", pool="p"), 0)
        self.redis.start()
        self.push("q", 6)
        self.replicas_become("agents", 6)
        self.assertEqual(m(self.daemon, "agentscaler_source_up", namespace="default", pool="p"), 1)
        self.assertIn("cannot read the source", self.daemon_logs)
        self.assertIn("source readable again", self.daemon_logs)

    def test_push_wakeups_are_used(self):
        self.kube.create_deployment("agents")
        self.start([world.pool("p", self.redis.url, "q", "agents", pollIntervalMs=60000,
                               cooldownSeconds=60, scaleDownStabilizationSeconds=60)])
        wait_for(lambda: m(self.daemon, "agentscaler_source_push", namespace="default", pool="p") == 1,
                 15, what="push to be live")
        # With a 60 s poll, only a push wake-up can make this happen in time.
        self.push("q", 4)
        self.replicas_become("agents", 4, timeout=10)
        self.assertGreaterEqual(m(self.daemon, "agentscaler_source_wakeups_total", namespace="default", pool="p"), 1)

    def test_missing_deployment_then_created(self):
        self.start([world.pool("p", self.redis.url, "q", "ghost", **FAST)])
        self.push("q", 2)
        wait_for(lambda: "not found" in self.daemon_logs, 15, what="a not-found log line")
        self.assertIn('deployments.apps \\"ghost\\" not found', self.daemon_logs)
        wait_for(lambda: (m(self.daemon, "agentscaler_pool_kube_errors_total", namespace="default", pool="p") or 0) > 0,
                 10, what="kube error metric")
        # The pool's trouble, not the process's: ready, and the body says it.
        code, body = self.daemon.get("/readyz")
        self.assertEqual(code, 200, body)
        self.assertIn("default/p: target not read yet", body)
        self.kube.create_deployment("ghost")
        self.replicas_become("ghost", 2, timeout=45)   # next resync or poll
        self.assertTrue(self._alive())

    def test_missing_deployment_watched_not_read(self):
        # A target that does not exist is not read at all (issue 15): its
        # namespace's Deployments are watched, and its absence from the
        # list is the "not found".  40 polls of 100 ms: before, a GET of
        # /scale with a backoff (up to 11), before that one per poll.
        self.start([world.pool("p", self.redis.url, "q", "ghost", **FAST)])
        self.push("q", 2)
        polls = lambda: m(self.daemon, "agentscaler_source_reads_total", namespace="default", pool="p") or 0
        wait_for(lambda: polls() >= 40, 60, 0.05, "40 polls")
        reqs = self.kube.requests()
        gets = [r for r in reqs if r["method"] == "GET" and r["path"].endswith("/scale")]
        self.assertEqual(gets, [])
        self.assertEqual([r for r in reqs if r["method"] == "PATCH"], [], "nothing written")
        # Found once it exists: the watch says so.
        self.kube.create_deployment("ghost")
        self.replicas_become("ghost", 2, timeout=60)

    def test_sighup_reload_good_and_bad(self):
        self.kube.create_deployment("agents")
        cfg = world.pool("p", self.redis.url, "q", "agents", maxReplicas=2, **FAST)
        self.start([cfg])
        self.push("q", 8)
        self.replicas_become("agents", 2)
        self.daemon.reload("{\"pools\": [ {\"metadata\": 7} ]}")
        wait_for(lambda: "reload refused" in self.daemon_logs, 10, what="reload refused")
        self.assertIn("pools[0].metadata: expected an object", self.daemon_logs)
        self.assertTrue(self._alive())
        cfg["spec"]["scaling"]["maxReplicas"] = 6
        self.daemon.reload({"pools": [cfg]})
        self.replicas_become("agents", 6)
        text = self.daemon.get("/metrics")[1]
        self.assertIn('agentscaler_config_reloads_total{result="refused"} 1', text)
        self.assertIn('agentscaler_config_reloads_total{result="ok"} 1', text)


class FaultTest(World):
    def test_500s_then_success(self):
        self.kube.create_deployment("agents")
        self.start([world.pool("p", self.redis.url, "q", "agents", **FAST)])
        wait_for(lambda: self.daemon.started(), 20, what="pools started")
        self.kube.fault("PATCH", "/deployments/agents/scale", 500, 3)
        self.push("q", 4)
        self.replicas_become("agents", 4)
        patches = [r["code"] for r in self.kube.requests() if r["method"] == "PATCH"]
        self.assertEqual(patches[:4], [500, 500, 500, 200])
        self.assertIn('agentscaler_kube_requests_total{client="main",verb="PATCH",code="500"} 3',
                      self.daemon.get("/metrics")[1])

    def test_429_retry_after_is_honoured(self):
        self.kube.create_deployment("agents")
        self.start([world.pool("p", self.redis.url, "q", "agents", **FAST)])
        wait_for(lambda: self.daemon.started(), 20, what="pools started")
        self.kube.fault("PATCH", "/deployments/agents/scale", 429, 1, retry_after=1)
        self.push("q", 2)
        self.replicas_become("agents", 2)
        patches = [r for r in self.kube.requests() if r["method"] == "PATCH"]
        self.assertEqual([r["code"] for r in patches[:2]], [429, 200])
        self.assertGreaterEqual(patches[1]["mono"] - patches[0]["mono"], 0.95)

    def test_apiserver_outage_then_converges(self):
        self.kube.create_deployment("agents")
        self.start([world.pool("p", self.redis.url, "q", "agents", **FAST)])
        wait_for(lambda: self.daemon.started(), 20, what="pools started")
        self.kube.adm("POST", "/pause")
        self.push("q", 5)
        wait_for(lambda: (m(self.daemon, "agentscaler_pool_kube_errors_total", namespace="default", pool="p") or 0) > 0,
                 60, 0.1, "a failed scale during the outage")
        self.assertTrue(self._alive())
        self.kube.adm("POST", "/resume")
        self.replicas_become("agents", 5, timeout=60)
        self.assertIn("reachable again", self.daemon_logs)


class AuthTest(World):
    def setUp(self):
        self.redis = world.Redis(["--requirepass", "s3cret-pw"])
        self.addCleanup(self.redis.stop)
        self.kube = world.KubeSim("--replica-delay-ms", "50")
        self.addCleanup(self.kube.stop)
        self.daemon = None
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.pwfile = os.path.join(self.tmp, "pw")
        with open(self.pwfile, "w") as f:
            f.write("wrong-pw-value\n")

    def test_wrong_password_then_fixed(self):
        self.redis.cmd("AUTH", "s3cret-pw")
        self.kube.create_deployment("agents")
        p = world.pool("p", self.redis.url, "q", "agents", **FAST)
        p["spec"]["source"]["passwordFile"] = self.pwfile
        self.start([p])
        wait_for(lambda: "auth" in self.daemon_logs.lower(), 15, what="an authentication error")
        self.assertNotIn("wrong-pw-value", self.daemon_logs)
        with open(self.pwfile, "w") as f:
            f.write("s3cret-pw\n")
        self.redis.pipeline([("AUTH", "s3cret-pw")] + [("LPUSH", "q", "x")] * 3)
        self.replicas_become("agents", 3, timeout=30)
        self.assertNotIn("s3cret-pw", self.daemon_logs)


class RbacTest(World):
    """Least privilege: a token that may watch Deployments but not write
    their /scale."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.tokens = os.path.join(self.tmp, "tokens.csv")
        self.rules = os.path.join(self.tmp, "rules.json")
        self.token = os.path.join(self.tmp, "token")
        with open(self.tokens, "w") as f:
            f.write('tok-as-1,agentscaler,u1,""\ntok-admin,admin,u2,"system:masters"\n')
        with open(self.token, "w") as f:
            f.write("tok-as-1\n")
        self.set_verbs([])
        self.kube_args = ("--tokens", self.tokens, "--rules", self.rules)
        super().setUp()

    def set_verbs(self, verbs):
        rules = [{"users": ["agentscaler"], "verbs": ["list", "watch"], "apiGroups": ["apps"],
                  "resources": ["deployments"], "namespaces": ["default"]}]
        if verbs:
            rules.append({"users": ["agentscaler"], "verbs": verbs, "apiGroups": ["apps"],
                          "resources": ["deployments/scale"], "namespaces": ["default"]})
        tmp = self.rules + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rules, f)
        os.replace(tmp, self.rules)

    def test_forbidden_then_granted(self):
        self.kube.token = "tok-admin"
        self.kube.create_deployment("agents")
        self.start([world.pool("p", self.redis.url, "q", "agents", **FAST)],
                   extra=["--token-file", self.token])
        self.push("q", 3)
        # (HPAs and ScaledObjects are forbidden too: the ownership check
        # takes that as none, and the pool goes on to its write.)
        wait_for(lambda: 'User \\"agentscaler\\" cannot patch resource \\"deployments/scale\\"'
                 in self.daemon_logs, 20, what="the PATCH's 403 logged")
        self.assertNotIn("tok-as-1", self.daemon_logs)
        self.assertIn('agentscaler_kube_requests_total{client="main",verb="PATCH",code="403"}',
                      self.daemon.get("/metrics")[1])
        self.assertTrue(self._alive())
        self.set_verbs(["patch"])
        self.replicas_become("agents", 3)


class CliTest(unittest.TestCase):
    def run_bin(self, *args, config=None):
        binary = os.environ.get("AGENTSCALER_BIN", os.path.join(world.ROOT, "build/release/agentscaler"))
        wrapper = os.environ.get("AGENTSCALER_WRAPPER", "").split()
        with tempfile.TemporaryDirectory() as d:
            argv = wrapper + [binary] + list(args)
            if config is not None:
                path = os.path.join(d, "c.json")
                with open(path, "w") as f:
                    f.write(config)
                argv += ["--config", path]
            return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    def test_bad_config_exits_2_naming_the_field(self):
        cfg = json.dumps({"pools": [world.pool("p", "redis://127.0.0.1:1/0", "q", "x", maxReplicas="ten")]})
        r = self.run_bin("--apiserver", "http://127.0.0.1:1", "--metrics-addr", "127.0.0.1:0", config=cfg)
        self.assertEqual(r.returncode, 2)
        self.assertIn("pools[0].spec.scaling.maxReplicas: expected an integer", r.stderr)
        line = json.loads(r.stderr.strip().splitlines()[-1])
        self.assertEqual(line["level"], "error")

    def test_check_config(self):
        good = json.dumps({"pools": [world.pool("p", "redis://127.0.0.1:1/0", "q", "x")]})
        r = self.run_bin("--check-config", config=good)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 pools", r.stdout)
        r = self.run_bin("--check-config", config="{\"pools\": [], \"extra\": 1}")
        self.assertEqual(r.returncode, 2)
        self.assertIn("extra: unknown field", r.stderr)

    def test_help_version_and_bad_flags(self):
        r = self.run_bin("--help")
        self.assertEqual(r.returncode, 0)
        for flag in ("--config", "--metrics-addr", "--admin-addr", "--kube-qps", "--kube-burst", "--apiserver",
                     "--token-file", "--ca-file", "--insecure-skip-tls-verify", "--log-format"):
            self.assertIn(flag, r.stdout)
        r = self.run_bin("--version")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith("agentscaler "))
        r = self.run_bin("--kube-qps", "fast", "--config", "/nonexistent")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--kube-qps: expected a number", r.stderr)
        r = self.run_bin("--log-format", "xml", "--config", "/x")
        self.assertEqual(r.returncode, 2)
        r = self.run_bin("--config", "/nonexistent/pools.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent/pools.json", r.stderr)

    def test_text_logs(self):
        r = self.run_bin("--log-format", "text", "--config", "/nonexistent/x.json")
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"^\d{4}-\d\d-\d\dT\S+Z error daemon: bad config")


if __name__ == "__main__":
    unittest.main()
