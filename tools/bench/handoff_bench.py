"""make bench: the HTTP hand-off through agent-sandbox's real sandbox-router
(issue 16; docs/protocol.md sections 7 and 8).

Method.  One redis-server, one kube-sim (its agent-sandbox controller, pod
IPs on loopback: --pod-ip-range 127.80.0.0/20, --warm-bind-ms 0), the real
sandbox-router (tools/lib/router_proc.py, --allow-loopback-pod-ip), one
tools/agent-runtime --handoff http --listen-warm serving every sandbox at its
pod IP from the sandbox's start, before any claim binds it (as a warm pod's
runtime listens), and
agentscaler (release build, --kube-qps/--kube-burst 5000) with one AgentPool:
source the Redis list `tasks`, handoff via router, results to a Redis list.
A fresh world per phase, everything on 127.0.0.1, stopped by PID.

1. Hand-off latency: n sequential trials (--trials), 20-40 ms apart, on a
   warm pool of --members sandboxes (spare.min = spare.max).  Each LPUSHes
   one task ({"sleep": 0}), stamping time.time() just before the write; the
   trial ends when the runtime's handler started on it (its `received`
   event's arrival.accepted_t, taken before the test runtime waits to see
   the claim bound; its own time.time(), the same host clock), once the
   protocol runtime accepted the PUT: "task published to runtime
   accepted".  Split:
     - router+runtime: the router's access-log duration_ms of that task's PUT
       (request in to response out, through the runtime; 1 ms resolution);
     - agentscaler's share, end to end minus that (BRPOP/LMOVE wake-up, the
       claim POST, kube-sim binding a warm member and the watch event,
       building and sending the PUT), kube-sim included;
     - agentscaler's own histogram agentscaler_dispatch_handoff_seconds
       (message taken off the list to PUT answered 2xx) and
       agentscaler_dispatch_claim_ready_seconds{launch="warm"} (claim POST to
       bound and Ready), p50/p99 interpolated inside their buckets.
2. Polling cost: --running tasks ({"sleep": 3600}) held by their runtimes
   at once, on a warm pool of that many members; once every one is
   received, the bench waits one long-poll period (25 s) so that the polls
   are spread, then counts, over --window seconds, the router's answered
   requests (its access log; a held long-poll is logged when it answers)
   and the CPU time of agentscaler, the router and the runtime process.
   Bounded: --running at most 2000, every wait has a deadline.

All processes share the machine's cores with the bench client; kube-sim is
a Python simulator and the runtime one Python process for every sandbox.
"""
import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import world  # noqa: E402
from dispatch_bench import cpu_ticks, hist_from_metrics, hist_quantile, pct  # noqa: E402

NS = "default"
POOL = "bench"              # dispatch_bench's histogram helpers read this pool
INSTANCE = "bench-http"
TICKS = os.sysconf("SC_CLK_TCK")
LONG_POLL = 25.0            # the daemon's wait=25 (docs/protocol.md section 6)


class World:
    def __init__(self, args, members):
        self.args = args
        self.redis = self.kube = self.router = self.ar = self.daemon = None
        self.dir = tempfile.mkdtemp(prefix="handoff-bench-")
        try:
            self._start(members)
        except BaseException:
            self.stop()
            raise

    def _start(self, members):
        a = self.args
        self.redis = world.Redis()
        self.kube = world.KubeSim("--warm-bind-ms", "0", "--cold-start-ms", "300",
                                  "--pod-ip-range", "127.80.0.0/20")
        world.sandbox_pool(self.kube, "wp", replicas=members,
                           timeout=max(60, members * 0.2))
        self.router = world.SandboxRouter()
        port = world.free_port()
        self.ar = world.AgentRuntime(self.kube, None, namespace=NS, work_ms=0, extra=(
            "--handoff", "http", "--port", str(port), "--listen-warm"))
        key = os.path.join(self.dir, "handoff-key")
        with open(key, "w") as f:
            f.write("bench key\n")
        p = world.pool_dispatch(POOL, self.redis.url, "tasks", "wp", claim_ttl_seconds=7200,
                                spare_min=members, spare_max=members,
                                cooldownSeconds=3600, pollIntervalMs=1000)
        p["spec"]["source"]["prefetch"] = min(max(members, 32), 10000)
        p["spec"]["handoff"] = {"mode": "http", "via": "router", "router": self.router.url,
                                "port": port, "deadlineSeconds": 120}
        p["spec"]["results"] = {"type": "redis-list", "address": self.redis.url,
                                "queue": "results"}
        self.daemon = world.Daemon({"pools": [p]}, self.kube, binary=a.bin, extra=[
            "--instance", INSTANCE, "--handoff-key-file", key, "--kube-qps", "5000",
            "--kube-burst", "5000", "--log-level", "warn"])
        world.wait_for(lambda: self.daemon.started(), 60, 0.05, "agentscaler's /readyz")
        self.conn = world.RespConn(self.redis.url)
        # Warm-up: first connections and the first claim out of the figures.
        self.push("warmup-0", 0)
        self.wait_received(["warmup-0"], 60)

    def push(self, tid, sleep):
        t = time.time()
        self.conn.cmd("LPUSH", "tasks", json.dumps({"id": tid, "payload": {"sleep": sleep}}))
        return t

    def received(self):
        return {e["id"]: e for e in self.ar.events("received")}

    def wait_received(self, ids, timeout):
        return world.wait_for(lambda: (lambda r: r if all(i in r for i in ids) else None)(
            self.received()), timeout, 0.01, "%d tasks received" % len(ids))

    def stop(self):
        for part in (self.daemon, self.ar, self.router):
            if part is not None:
                part.cleanup()
        for part in (self.kube, self.redis):
            if part is not None:
                part.stop()


def ms(x):
    return "%.1f ms" % (x * 1000.0)


def line(name, xs):
    print("  %-46s p50 %9s  p99 %9s  (n=%d)" % (name, ms(pct(xs, 50)), ms(pct(xs, 99)), len(xs)))


def latency_phase(a):
    w = World(a, a.members)
    try:
        pushed = {}
        for i in range(a.trials):
            tid = "lat-%03d" % i
            pushed[tid] = w.push(tid, 0)
            w.wait_received([tid], 30)
            time.sleep(0.02 + 0.02 * (i % 2))
        got = w.received()
        for e in got.values():
            e["t"] = (e.get("arrival") or {}).get("accepted_t", e["t"])
        e2e = {t: got[t]["t"] - pushed[t] for t in pushed}
        # When the runtime of the sandbox began to serve (--listen-warm:
        # from the sandbox's start, so before the task's publication).
        listen = {}
        for e in w.ar.events("listening"):
            listen.setdefault(e["sandbox"], []).append(e["t"])
        up = {}
        for t in pushed:
            ts = [x for x in listen.get(got[t]["sandbox"], []) if x <= got[t]["t"]]
            if ts:
                up[t] = max(ts)
        puts, refused = {}, 0
        for r in w.router.requests():
            path = r.get("path", "")
            if r.get("method") != "PUT" or not path.startswith("/agentscaler/v1/tasks/lat-"):
                continue
            if r.get("status") in (200, 201):
                puts[path.rsplit("/", 1)[-1]] = r.get("duration_ms", 0) / 1000.0
            else:
                refused += 1
        m = w.daemon.metrics()
        hand = hist_from_metrics(m, "agentscaler_dispatch_handoff_seconds")
        warm = [(le, c) for le, c in hist_from_metrics(
            {k: v for k, v in m.items() if 'launch="warm"' in k},
            "agentscaler_dispatch_claim_ready_seconds")]
        print("\nhand-off over the sandbox-router, %d sequential trials, warm pool of %d "
              "(kube-sim --warm-bind-ms 0; runtimes listening before their claim binds):"
              % (a.trials, a.members))
        print("  method: LPUSH stamped just before the write -> the runtime handler's start "
              "(same clock);\n  router + runtime = the router's access-log duration_ms of "
              "the task's PUT; agentscaler's share = the difference")
        line("task published -> runtime accepted the PUT", list(e2e.values()))
        both = [t for t in e2e if t in puts]
        line("router + runtime (router's PUT duration_ms)", [puts[t] for t in both])
        line("agentscaler's share (end to end - router PUT)", [e2e[t] - puts[t] for t in both])
        late = [t for t in up if up[t] > pushed[t]] + [t for t in e2e if t not in up]
        print("  tasks whose runtime was not listening before publication: %d" % len(late))
        print("  PUTs answered 502 by the router (runtime not listening yet, retried): %d "
              "for %d tasks" % (refused, len(e2e)))
        print("  agentscaler_dispatch_handoff_seconds (taken -> PUT 2xx): p50 %s  p99 %s"
              % (ms(hist_quantile(hand, 0.5)), ms(hist_quantile(hand, 0.99))))
        print("  agentscaler_dispatch_claim_ready_seconds{warm} (POST -> Ready): p50 %s  "
              "p99 %s" % (ms(hist_quantile(warm, 0.5)), ms(hist_quantile(warm, 0.99))))
    finally:
        w.stop()


def polling_phase(a):
    n = a.running
    t0 = time.monotonic()
    w = World(a, n)
    try:
        setup = time.monotonic() - t0
        ids = ["run-%04d" % i for i in range(n)]
        for i in range(0, n, 100):
            w.conn.pipeline([("LPUSH", "tasks", json.dumps({"id": t, "payload": {"sleep": 3600}}))
                             for t in ids[i:i + 100]])
        t1 = time.monotonic()
        w.wait_received(ids, a.deadline)
        running_after = time.monotonic() - t1
        time.sleep(LONG_POLL)           # one long-poll period: polls spread out
        procs = {"agentscaler": w.daemon.proc.pid, "sandbox-router": w.router.proc.pid,
                 "agent-runtime": w.ar.proc.pid}
        c0 = {k: cpu_ticks(p) for k, p in procs.items()}
        r0 = len(w.router.requests())
        s0 = time.monotonic()
        time.sleep(a.window)
        reqs = w.router.requests()[r0:]
        span = time.monotonic() - s0
        c1 = {k: cpu_ticks(p) for k, p in procs.items()}
        polls = [r for r in reqs if "/events" in r.get("path", "")]
        print("\npolling cost, %d running tasks held idle by their runtimes "
              "(set up in %.0f s, all received %.1f s after the push):" % (n, setup, running_after))
        print("  router requests answered: %.1f/s (%d in %.1f s; long-polls %d), "
              "%.1f/s per 1,000 running tasks"
              % (len(reqs) / span, len(reqs), span, len(polls), len(reqs) / span * 1000.0 / n))
        for k in procs:
            print("  CPU %-14s %5.1f%% of one core" % (k, 100.0 * (c1[k] - c0[k]) / TICKS / span))
    finally:
        w.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(world.ROOT, "build/release/agentscaler"))
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--running", type=int, default=1000)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--deadline", type=float, default=600.0,
                    help="seconds for all --running tasks to be received")
    ap.add_argument("--phase", choices=("all", "latency", "polling"), default="all")
    a = ap.parse_args()
    if not 1 <= a.running <= 2000:
        ap.error("--running: 1 to 2000")
    if world.router_missing():
        print("handoff_bench: skipped: %s" % world.router_missing())
        return
    if a.phase in ("all", "latency"):
        latency_phase(a)
    if a.phase in ("all", "polling"):
        polling_phase(a)


if __name__ == "__main__":
    main()
