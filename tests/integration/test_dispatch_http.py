"""handoff.mode http end to end (issue 16, docs/protocol.md section 8): a
real redis-server, kube-sim with its agent-sandbox controller putting pod
IPs on loopback (--pod-ip-range), the daemon, and tools/agent-runtime
--handoff http (the Python runtime of clients/python, one per sandbox,
listening on the sandbox's pod IP; the task's payload says how it goes:
{"sleep": s}, {"fail": reason, "retryable", "failAttempts"}), reached with
via: podIP, or through agent-sandbox's real sandbox-router
(world.SandboxRouter) with via: router.

Checked against what the real parts saw: the agents' own event log (each
task received exactly once per attempt), the Redis lists (the source, its
processing list, the dead letters, the results list), and every Result
validated against docs/protocol/result.schema.json.  Waits are bounded
polls; nothing asserts on speed.
"""
import json
import os
import re
import shutil
import tempfile
import threading
import unittest
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paths  # noqa: E402
import world  # noqa: E402
from world import wait_for  # noqa: E402

paths.use("clients/python")     # tests.clients.schemas reads agentscaler.peer
from tests.clients import schemas  # noqa: E402  (jsonschema, as tests/clients)
from tests.integration.test_tenant_secrets import Listener  # noqa: E402

NS = "default"
CLAIMS = world.EXT_API % NS + "sandboxclaims"
INSTANCE = "as-http"
PROCESSING = "tasks:processing:" + INSTANCE
AGENTPOOLS = "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentpools"


def task(tid, **payload):
    return json.dumps({"id": tid, "payload": payload or {"n": tid}})


class HttpWorld(world.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.kube = world.KubeSim("--cold-start-ms", "300", "--warm-bind-ms", "10",
                                  *world.pod_ip_args())
        self.addCleanup(self.kube.stop)
        self.dir = tempfile.mkdtemp(prefix="dispatch-http-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.key_file = os.path.join(self.dir, "handoff-key")
        with open(self.key_file, "w") as f:
            f.write("a key the replicas share\n")
        self.port = world.free_port()   # every sandbox's runtime, on its own pod IP
        self.agent_logs = []            # of every agent-runtime started, in order

    def agents(self):
        """tools/agent-runtime --handoff http: a runtime per sandbox, on
        the claim's pod IP and self.port."""
        ar = world.AgentRuntime(self.kube, None, namespace=NS, extra=(
            "--handoff", "http", "--port", str(self.port)))
        self.addCleanup(ar.cleanup)
        self.agent_logs.append(ar)
        return ar

    def received(self, tid):
        """Every agent-runtime's received events of tid, in order."""
        return [e for ar in self.agent_logs for e in ar.events("received") if e["id"] == tid]

    def wait_received(self, tid):
        return wait_for(lambda: self.received(tid), 30, what="%s received" % tid)[0]

    def pool(self, max_attempts=1, **kw):
        args = dict(claim_ttl_seconds=600, spare_min=0, spare_max=10, pollIntervalMs=200,
                    cooldownSeconds=60)
        args.update(kw)
        p = world.pool_dispatch("p", self.redis.url, "tasks", "wp", **args)
        p["spec"]["handoff"] = {"mode": "http", "via": "podIP", "port": self.port,
                                "deadlineSeconds": 120, "maxAttempts": max_attempts}
        p["spec"]["results"] = {"type": "redis-list", "address": self.redis.url,
                                "queue": "results"}
        return p

    def start(self, pools):
        return self.start_daemon({"pools": pools}, extra=(
            "--instance", INSTANCE, "--handoff-key-file", self.key_file))

    def results(self):
        out = [json.loads(r) for r in self.redis.cmd("LRANGE", "results", 0, -1)]
        for r in out:
            schemas.check("result", r)
        return out

    def results_by_id(self):
        return {r["id"]: r for r in self.results()}

    def claims(self):
        code, obj = self.kube.api("GET", CLAIMS)
        self.assertEqual(code, 200)
        return obj.get("items") or []

    def rejected(self):
        return [json.loads(r) for r in self.redis.cmd("LRANGE", "tasks.rejected", 0, -1)]


@unittest.skipUnless(world.Kubectl.available(), "kubectl not installed")
class DispatchHttpCrdTest(HttpWorld):
    """CRD mode: a tenant writes spec.handoff, and the daemon sends each
    task's PUT/GET/DELETE where it points.  Only a router of
    --handoff-routers is taken (a pool naming none gets the first); via
    podIP needs --pod-cidrs.  Two loopback listeners stand in for the
    routers and record what reaches them."""

    def crd_pool(self, name, queue, handoff=None):
        p = world.pool_dispatch(name, self.redis.url, queue, "wp", claim_ttl_seconds=600,
                                spare_min=0, spare_max=4, pollIntervalMs=200,
                                cooldownSeconds=60, handoff=handoff)
        code, out = self.kube.api("POST", AGENTPOOLS % NS, p)
        self.assertEqual(code, 201, out)

    def invalid(self, name):
        code, obj = self.kube.api("GET", AGENTPOOLS % NS + "/" + name)
        c = world.condition(obj if code == 200 else None, "Ready")
        return c if c and c["status"] == "False" and c["reason"] == "InvalidSpec" else None

    def test_router_outside_the_allowlist_is_refused_and_never_contacted(self):
        kubectl = world.Kubectl(self.kube)
        self.addCleanup(kubectl.cleanup)
        kubectl.install_crds()
        world.sandbox_pool(self.kube, "wp", replicas=2)
        allowed, hostile = Listener(), Listener()
        self.addCleanup(allowed.stop)
        self.addCleanup(hostile.stop)
        allowed_url = "http://127.0.0.1:%d" % allowed.port
        hostile_url = "http://127.0.0.1:%d" % hostile.port
        self.start_daemon(None, extra=("--instance", INSTANCE, "--handoff-key-file",
                                       self.key_file, "--handoff-routers",
                                       allowed_url + ",https://router.example:8443"))
        self.crd_pool("evil", "evil-q", {"mode": "http", "router": hostile_url})
        self.crd_pool("pod", "pod-q", {"mode": "http", "via": "podIP"})
        self.crd_pool("ok", "ok-q")                 # no handoff: http, the first router
        c = wait_for(lambda: self.invalid("evil"), 30, what="evil: InvalidSpec")
        self.assertIn('spec.handoff.router: "%s" refused in CRD mode: not one of the '
                      'routers agentscaler allows' % hostile_url, c["message"])
        c = wait_for(lambda: self.invalid("pod"), 30, what="pod: InvalidSpec")
        self.assertIn("spec.handoff.via: podIP refused in CRD mode", c["message"])
        self.redis.cmd("LPUSH", "evil-q", task("evil-1"))
        self.redis.cmd("LPUSH", "pod-q", task("pod-1"))
        self.redis.cmd("LPUSH", "ok-q", task("ok-1"))
        # The pool naming no router hands off to the first allowed one...
        wait_for(lambda: b"PUT /agentscaler/v1/tasks/ok-1" in allowed.received, 60, 0.1,
                 "ok-1's PUT at the allowed router")
        # ...and the hostile one heard nothing; the refused pools' tasks
        # stayed where their producers put them.
        self.assertEqual(hostile.connections, 0)
        self.assertEqual(hostile.received, b"")
        self.assertEqual(self.redis.cmd("LLEN", "evil-q"), 1)
        self.assertEqual(self.redis.cmd("LLEN", "pod-q"), 1)
        self.assertNotIn(b"evil-1", allowed.received)

    def test_pod_ip_outside_pod_cidrs_is_never_used(self):
        """--pod-cidrs (any mode): the pod IP comes from the claim's
        status, in the tenant's namespace; one outside the ranges is neither
        connected to nor named to the router: the hand-off fails
        handoff.unreachable with that reason (never accepted, so the
        message is dead-lettered), and the runtime listening on it never
        hears of the task."""
        world.sandbox_pool(self.kube, "wp", replicas=1)
        self.agents()
        p = self.pool()
        p["spec"]["handoff"]["deadlineSeconds"] = 2
        self.start_daemon({"pools": [p]}, extra=(
            "--instance", INSTANCE, "--handoff-key-file", self.key_file,
            "--pod-cidrs", "10.0.0.0/8,fd00::/8"))
        self.redis.cmd("LPUSH", "tasks", task("far-1"))
        r = wait_for(self.rejected, 60, 0.1, "far-1 dead-lettered")[0]
        self.assertEqual(r["reason"], "handoff.unreachable", r)
        self.assertIn("far-1", json.dumps(r))
        self.assertIn("outside --pod-cidrs", json.dumps(r))
        self.assertEqual(self.received("far-1"), [])
        self.assertIn("is outside --pod-cidrs: not used", self.daemon.logs())


class BigAnswerRouter:
    """A stand-in router whose "runtime" accepts every PUT with a
    TaskStatus padded past the hand-off client's 4 MiB answer cap
    (DH_ANSWER_MAX, docs/protocol.md section 2): counts the PUTs."""

    PAD = 5 << 20

    def __init__(self):
        self.puts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_PUT(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                outer.puts += 1
                tid = self.path.rsplit("/", 1)[-1]
                body = json.dumps({"apiVersion": "agentscaler.io/v1", "kind": "TaskStatus",
                                   "id": tid, "attempt": 1, "state": "running", "next": 0,
                                   "instance": "big", "pad": "x" * outer.PAD}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass                # the daemon hung up past its cap

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class DispatchHttpOversizeTest(HttpWorld):
    def test_oversized_answer_is_a_transport_failure(self):
        """A runtime is tenant code: an answer past 4 MiB is not read
        whole, it is a transport failure, retried until deadlineSeconds,
        then handoff.unreachable (the message dead-lettered, never acked as
        accepted); the daemon lives on.  Without the cap the padded
        TaskStatus is read and the hand-off accepted."""
        world.sandbox_pool(self.kube, "wp", replicas=1)
        big = BigAnswerRouter()
        self.addCleanup(big.stop)
        p = self.pool()
        p["spec"]["handoff"].update(via="router", router=big.url, deadlineSeconds=3)
        self.start([p])
        self.redis.cmd("LPUSH", "tasks", task("big-1"))
        r = wait_for(self.rejected, 60, 0.1, "big-1 dead-lettered")[0]
        self.assertEqual(r["reason"], "handoff.unreachable", r)
        self.assertIn("big-1", json.dumps(r))
        self.assertIn("response larger than %d bytes" % (4 << 20), json.dumps(r))
        self.assertGreaterEqual(big.puts, 2, "retried as a transport failure")
        self.assertEqual(self.redis.cmd("LLEN", PROCESSING), 0)
        self.assertEqual(self.results(), [])
        self.assertEqual(self.daemon.get("/healthz")[0], 200)


class DispatchHttpTest(HttpWorld):
    def test_tasks_handed_off_over_http_results_published(self):
        world.sandbox_pool(self.kube, "wp", replicas=3)
        ar = self.agents()
        self.start([self.pool(spare_min=2)])
        ids = ["h-%d" % i for i in range(6)]
        msgs = [task(t) for t in ids[:5]] + [task(ids[5], fail="tool.broken")]
        self.redis.pipeline([("LPUSH", "tasks", m) for m in msgs])
        got = wait_for(lambda: (lambda r: r if len(r) >= 6 else None)(self.results_by_id()),
                       60, 0.1, "6 results")
        self.assertEqual(sorted(got), sorted(ids))
        for t in ids[:5]:
            r = got[t]
            self.assertEqual(r["state"], "completed")
            self.assertEqual(r["result"], {"worked": True, "children": 0})
            self.assertEqual(r["sandbox"]["namespace"], NS)
            self.assertEqual(r["sandbox"]["pool"], "p")
            self.assertTrue(r["startedAt"] and r["finishedAt"] and r["traceparent"])
        self.assertEqual(got[ids[5]]["state"], "failed")
        self.assertEqual(got[ids[5]]["error"]["reason"], "tool.broken")
        # Each ran exactly once, in the sandbox the Result names, under its
        # traceparent.
        for t in ids:
            runs = self.received(t)
            self.assertEqual(len(runs), 1, "%s ran %d times" % (t, len(runs)))
            self.assertEqual(runs[0]["sandbox"], got[t]["sandbox"]["name"])
            self.assertEqual(runs[0]["arrival"]["traceparent"], got[t]["traceparent"])
        self.assertEqual(ar.events("duplicate"), [])
        # Acked, released: nothing in flight, no claim left, no dead letter.
        self.assertEqual(self.redis.cmd("LLEN", PROCESSING), 0)
        self.assertEqual(self.redis.cmd("LLEN", "tasks"), 0)
        wait_for(lambda: not self.claims(), 30, what="claims deleted")
        self.assertEqual(self.rejected(), [])
        self.assertEqual(self.daemon.metric("agentscaler_dispatch_tasks_handed_off_total",
                                            namespace=NS, pool="p"), 6)

    def test_message_acked_only_after_the_runtime_accepted(self):
        world.sandbox_pool(self.kube, "wp", replicas=1)
        self.start([self.pool()])              # no runtime listens yet
        self.redis.cmd("LPUSH", "tasks", task("wait-1"))
        wait_for(lambda: any(((c.get("status") or {}).get("sandbox") or {}).get("name")
                             for c in self.claims()), 20, what="the claim bound")
        # The hand-off is refused at the socket, over and over: the message
        # stays taken and unacked, nothing is dead-lettered.
        wait_for(lambda: "hand-off of task wait-1 to sandbox" in self.daemon.logs(), 30,
                 what="a hand-off refused")
        self.assertEqual(self.redis.cmd("LLEN", PROCESSING), 1)
        self.assertEqual(self.results(), [])
        self.assertEqual(self.rejected(), [])
        self.agents()
        r = wait_for(lambda: self.results_by_id().get("wait-1"), 60, 0.1, "the result")
        self.assertEqual(r["state"], "completed")
        self.assertEqual(self.redis.cmd("LLEN", PROCESSING), 0, "acked once accepted")
        self.assertEqual(len(self.received("wait-1")), 1)

    def test_runtime_restart_mid_task_is_runtime_lost(self):
        world.sandbox_pool(self.kube, "wp", replicas=1)
        ar = self.agents()
        self.start([self.pool()])
        self.redis.cmd("LPUSH", "tasks", task("lost-1", sleep=60))
        self.wait_received("lost-1")
        wait_for(lambda: self.redis.cmd("LLEN", PROCESSING) == 0, 20, what="acked")
        ar.proc.kill()                          # the container restarts: a new runtime
        ar.proc.wait()
        self.agents()
        r = wait_for(lambda: self.results_by_id().get("lost-1"), 60, 0.1, "the result")
        self.assertEqual(r["state"], "failed")
        self.assertEqual(r["error"]["reason"], "runtime.lost")
        self.assertIn("task.unknown", r["error"]["message"])
        self.assertEqual(len(self.received("lost-1")), 1, "never run again")
        wait_for(lambda: not self.claims(), 30, what="claim deleted")
        code, body = self.daemon.admin("/explain?task=lost-1")
        self.assertIn("runtime.lost", json.dumps(body))

    def test_retryable_failure_runs_again_under_max_attempts(self):
        world.sandbox_pool(self.kube, "wp", replicas=2)
        ar = self.agents()
        self.start([self.pool(max_attempts=2)])
        self.redis.pipeline([
            ("LPUSH", "tasks", task("again-1", fail="tool.flaky", retryable=True,
                                    failAttempts=1)),
            ("LPUSH", "tasks", task("again-2", fail="tool.flaky", retryable=True))])
        got = wait_for(lambda: (lambda r: r if len(r) >= 2 else None)(self.results_by_id()),
                       60, 0.1, "2 results")
        # Failed once, retryable: attempt 2 in the same sandbox completes.
        self.assertEqual(got["again-1"]["state"], "completed")
        self.assertEqual(got["again-1"]["attempt"], 2)
        runs = self.received("again-1")
        self.assertEqual([e["arrival"]["attempt"] for e in runs], [1, 2])
        self.assertEqual(runs[0]["sandbox"], runs[1]["sandbox"])
        # Fails every time: maxAttempts 2 runs, then the failure is the Result.
        self.assertEqual(got["again-2"]["state"], "failed")
        self.assertEqual(got["again-2"]["error"]["reason"], "tool.flaky")
        self.assertEqual(got["again-2"]["attempt"], 2)
        self.assertEqual(len(self.received("again-2")), 2)
        self.assertEqual(ar.events("duplicate"), [])
        self.assertEqual(len(self.results()), 2, "one Result per task, none per attempt")

    def test_runtime_message_cut_at_characters(self):
        """A runtime's failure message is free text (error.schema.json:
        4096 characters).  Cut into the rejections ring (240 bytes) and
        /explain's sentence, it loses whole characters: /status and
        /explain stay UTF-8 (they read as JSON with a strict decode)."""
        world.sandbox_pool(self.kube, "wp", replicas=1)
        self.agents()
        self.start([self.pool(max_attempts=2)])
        # "x" first: the byte limits, less "attempt 1: ", fall inside a
        # 3-byte character.
        message = "x" + "\u20ac" * 400
        self.redis.cmd("LPUSH", "tasks", task("utf8-1", fail="tool.flaky", retryable=True,
                                              failAttempts=1, failMessage=message))
        got = wait_for(lambda: self.results_by_id().get("utf8-1"), 60, 0.1, "utf8-1's result")
        self.assertEqual(got["state"], "completed")
        self.assertEqual(got["attempt"], 2)

        def strict(path):
            url = "http://127.0.0.1:%d%s" % (self.daemon.admin_port, path)
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read().decode("utf-8"))     # strict
        rows = [d for d in strict("/status").get("recentDeadLetters", [])
                if d.get("task") == "utf8-1"]
        self.assertEqual(len(rows), 1, "the failed attempt is in the ring")
        detail = rows[0]["detail"]
        self.assertTrue(detail.startswith("attempt 1: x\u20ac"), detail)
        self.assertTrue(("attempt 1: " + message).startswith(detail), "a prefix, cut whole")
        self.assertGreater(len(detail.encode()), 240 - 4)
        explain = strict("/explain?task=utf8-1")
        self.assertIn(detail, explain["explanation"])


@unittest.skipIf(world.router_missing(), world.router_missing())
class DispatchHttpRouterTest(HttpWorld):
    """via: router, through agent-sandbox's real sandbox-router: it routes
    by X-Sandbox-ID/-Namespace/-Port/-Pod-IP (a loopback pod IP, which
    it dials instead of the Sandbox's DNS name) and deletes Authorization
    (the task token goes in X-Agentscaler-Token); restarted mid-task."""

    def test_through_the_router_restarted_mid_task(self):
        world.sandbox_pool(self.kube, "wp", replicas=1)
        ar = self.agents()
        router = world.SandboxRouter()
        self.addCleanup(router.cleanup)
        p = self.pool()
        p["spec"]["handoff"].update(via="router", router=router.url)
        self.start([p])
        self.redis.cmd("LPUSH", "tasks", task("r-1", sleep=3))
        run = self.wait_received("r-1")
        # The first long-poll (answered by "started") went through; the next
        # one is held until the task ends: the restart cuts it.
        wait_for(lambda: "/events" in router.log(), 20, what="a long-poll answered")
        router.restart(kill=True)               # the same port
        r = wait_for(lambda: self.results_by_id().get("r-1"), 60, 0.1, "the result")
        self.assertEqual(r["state"], "completed")
        self.assertEqual(r["sandbox"]["name"], run["sandbox"])
        self.assertEqual(run["arrival"]["traceparent"], r["traceparent"])
        self.assertEqual(len(self.received("r-1")), 1)
        reqs = router.requests()
        self.assertTrue({"PUT", "GET", "DELETE"} <= {q["method"] for q in reqs}, reqs)
        for q in reqs:
            self.assertTrue(q["path"].startswith("/agentscaler/v1/tasks/r-1"), q)
            self.assertEqual((q["sandbox_id"], q["sandbox_namespace"]), (run["sandbox"], NS))
            # The token passed the router (it deletes Authorization): no 401.
            self.assertNotEqual(q["status"], 401, q)
        self.assertEqual(router.log().count("starting sandbox-router"), 2)
        self.assertEqual(self.redis.cmd("LLEN", PROCESSING), 0)


class DispatchHttpCrashTest(HttpWorld):
    def test_exactly_once_across_sigkill(self):
        world.sandbox_pool(self.kube, "wp", replicas=4)
        self.agents()
        pool = self.pool(spare_min=4)
        d = self.start([pool])
        ids = ["k-%02d" % i for i in range(10)]
        self.redis.pipeline([("LPUSH", "tasks", task(t, sleep=1.5)) for t in ids])
        wait_for(lambda: sum(len(self.received(t)) for t in ids) >= 2, 30,
                 what="two tasks running")
        d.proc.kill()
        d.proc.wait()
        d.log.close()
        self.daemon = None
        d2 = self.start([pool])
        rebuilt = re.search(r"namespace default: (\d+) live tasks rebuilt", d2.logs())
        self.assertTrue(rebuilt and int(rebuilt.group(1)) > 0, "tasks were in flight at the kill")
        got = wait_for(lambda: (lambda r: r if len(r) >= len(ids) else None)(
            self.results_by_id()), 120, 0.2, "every result")
        self.assertEqual(sorted(got), ids)
        self.assertTrue(all(r["state"] == "completed" for r in got.values()),
                        [r for r in got.values() if r["state"] != "completed"])
        for t in ids:
            self.assertEqual(len(self.received(t)), 1, "%s ran twice: %s\n%s" % (
                t, self.received(t), d2.logs()[-4000:]))
        self.assertEqual(self.redis.cmd("LLEN", PROCESSING), 0)
        self.assertEqual(self.rejected(), [])
        wait_for(lambda: not self.claims(), 30, what="claims deleted")
        d.cleanup()


if __name__ == "__main__":
    unittest.main()
