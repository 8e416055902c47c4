#!/usr/bin/env python3
"""make demo: both modes on the embedded world.

Scale mode: starts redis-server and kube-sim on free loopback ports, creates
the Deployment `agents` at 0 replicas, runs agentscaler on it, and plays a
producer that pushes bursts of tasks.  The "agents" are simulated here: each
ready replica takes tasks off the list (RPOPLPUSH into the processing list,
then finishes them), so the backlog drains as the pool grows.

Dispatch mode: a SandboxWarmPool in kube-sim, agentscaler claiming one
sandbox per task and handing the task to its inbox, and the example agent
runtime (tools/agent-runtime) working in every sandbox and spawning
sub-tasks.  Shows warm claims against cold starts and the warm pool
following the load, down to zero when idle and back up with the next task.

One line per second, then a summary; everything it started is stopped by
PID.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import world  # noqa: E402

PER_REPLICA_PER_SEC = 2.0      # tasks one simulated agent finishes per second
BURSTS = [(1.0, 40), (9.0, 25), (13.0, 60)]   # (second, tasks)
RUN_SECONDS = 34


def scale_demo(args):
    print("== scale mode: a Deployment from zero and back\n")
    redis = world.Redis()
    kube = world.KubeSim("--replica-delay-ms", "800")
    daemon = None
    try:
        kube.create_deployment("agents", replicas=0)
        pool = world.pool("research-agents", redis.url, "tasks", "agents",
                          tasksPerReplica=5, maxReplicas=12, pollIntervalMs=1000,
                          cooldownSeconds=6, scaleDownStabilizationSeconds=4)
        pool["spec"]["source"]["countInFlight"] = True
        daemon = world.Daemon({"pools": [pool]}, kube, binary=args.bin,
                              extra=["--log-format", "text"])
        world.wait_for(lambda: daemon.started(), 20, what="agentscaler ready")
        print("world: redis %s, kube-sim %s, agentscaler metrics http://127.0.0.1:%d/metrics, "
              "status http://127.0.0.1:%d/status"
              % (redis.url, kube.url, daemon.metrics_port, daemon.admin_port))
        print("pool research-agents: tasksPerReplica 5, max 12, cooldown 6 s; "
              "each agent finishes %.0f tasks/s\n" % PER_REPLICA_PER_SEC)
        print("%5s %8s %9s %8s %9s %6s" % ("t(s)", "backlog", "in-flight", "desired", "replicas", "ready"))

        t0 = time.monotonic()
        pushed = done = 0
        bursts = list(BURSTS)
        peak = 0
        first_scale = None
        zero_at = None
        next_print = 0.0
        credit = 0.0
        last = t0
        while True:
            now = time.monotonic()
            t = now - t0
            if t > RUN_SECONDS:
                break
            while bursts and t >= bursts[0][0]:
                _, n = bursts.pop(0)
                redis.pipeline([("LPUSH", "tasks", json.dumps({"id": "t-%d" % (pushed + i)}))
                                for i in range(n)])
                pushed += n
            code, dep = kube.api("GET", "/apis/apps/v1/namespaces/default/deployments/agents")
            ready = dep.get("status", {}).get("readyReplicas", 0) or 0
            spec = dep["spec"]["replicas"]
            peak = max(peak, spec)
            if spec > 0 and first_scale is None:
                first_scale = t - BURSTS[0][0]
            if spec == 0 and pushed and done == pushed and zero_at is None and t > BURSTS[-1][0]:
                zero_at = t
            # Simulated agents: finish the tasks they hold, then take more.
            credit += (now - last) * ready * PER_REPLICA_PER_SEC
            last = now
            ops = []
            while credit >= 1:
                ops.append(("RPOP", "tasks.processing"))
                credit -= 1
            if ops:
                done += sum(1 for r in redis.pipeline(ops) if r is not None)
            inflight = redis.cmd("LLEN", "tasks.processing")
            for _ in range(max(0, ready * 1 - inflight)):
                if redis.cmd("RPOPLPUSH", "tasks", "tasks.processing") is None:
                    break
            if t >= next_print:
                mt = daemon.metrics()
                lab = '{namespace="default",pool="research-agents"%s}'
                print("%5.0f %8d %9d %8d %9d %6d" % (
                    t, mt.get("agentscaler_pool_source_tasks" + lab % ',state="ready"', 0),
                    mt.get("agentscaler_pool_source_tasks" + lab % ',state="in_flight"', 0),
                    mt.get("agentscaler_pool_desired_replicas" + lab % "", 0), spec, ready),
                      flush=True)
                next_print += 1.0
            time.sleep(0.05)

        mt = daemon.metrics()
        lab = '{namespace="default",pool="research-agents",direction="%s"}'
        ups = mt.get("agentscaler_pool_scale_writes_total" + lab % "up", 0)
        downs = mt.get("agentscaler_pool_scale_writes_total" + lab % "down", 0)
        patches = [r for r in kube.requests() if r["method"] == "PATCH"]
        print("\nsummary:")
        print("  tasks pushed %d, finished %d" % (pushed, done))
        print("  first scale from zero %.2f s after the first burst (poll %d ms; push wake-ups %s)"
              % (first_scale if first_scale is not None else -1, 1000,
                 "live" if mt.get('agentscaler_source_push{namespace="default",pool="research-agents"}') else "off"))
        print("  peak replicas %d (max 12); scale events: %d up, %d down; %d PATCHes to kube-sim"
              % (peak, ups, downs, len(patches)))
        print("  back at zero: %s" % ("yes, at t=%.0f s" % zero_at if zero_at else "not yet (cooldown still running)"))
        ok = first_scale is not None and peak > 0
        return 0 if ok else 1
    finally:
        if daemon is not None:
            rc = daemon.stop()
            daemon.cleanup()
            if rc != 0:
                print("agentscaler exited %s" % rc)
        kube.stop()
        redis.stop()


DISPATCH_BURSTS = [(1.0, 8), (10.0, 4), (30.0, 1)]   # (second, root tasks)
DISPATCH_SECONDS = 40


def hist_quantile(mt, name, labels, q):
    """Approximate quantile from a Prometheus histogram's buckets."""
    buckets = []
    for k, v in mt.items():
        if k.startswith(name + "_bucket{") and all(('%s="%s"' % kv) in k for kv in labels.items()):
            le = k.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), v))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return None
    want = q * buckets[-1][1]
    for le, c in buckets:
        if c >= want:
            return le
    return None


def dispatch_demo(args):
    print("\n== dispatch mode: one warm sandbox per task, warm pool sized to the load\n")
    redis = world.Redis()
    kube = world.KubeSim("--cold-start-ms", "2500", "--warm-bind-ms", "30")
    daemon = runtime = None
    try:
        world.sandbox_pool(kube, "sandboxes", replicas=4)
        runtime = world.AgentRuntime(kube, redis.url, work_ms=2500, children=2, max_depth=1,
                                     publish_to="redis-list:tasks", extra=("--spawn-at", "start"))
        # handoff inbox, asked for: the daemon's default is http (issue 16),
        # but these agents read a Redis inbox and publish their sub-tasks to
        # the broker themselves (--publish-to), which is what the demo's load
        # is made of; on a real cluster that needs broker egress and
        # credentials in every sandbox (README, "Dispatch mode").
        pool = world.pool_dispatch("coding-agents", redis.url, "tasks", "sandboxes",
                                   claim_ttl_seconds=600, spare_min=2, spare_max=20,
                                   cooldownSeconds=8, pollIntervalMs=1000, handoff="inbox")
        daemon = world.Daemon({"pools": [pool]}, kube, binary=args.bin,
                              extra=["--log-format", "text", "--instance", "demo"])
        world.wait_for(lambda: daemon.started(), 20, what="agentscaler ready")
        print("pool coding-agents: warm pool `sandboxes` (4 members to start), spare 2..20, "
              "cooldown 8 s;\nkube-sim cold start 2.5 s; each agent works 2.5 s and spawns 2 "
              "sub-tasks (depth 0 only)\n")
        print("%5s %6s %8s %7s %6s %6s %7s %7s %6s" % (
            "t(s)", "queue", "waiting", "live", "warm", "cold", "target", "pool", "ready"))
        lab = '{namespace="default",pool="coding-agents"}'
        t0 = time.monotonic()
        bursts = list(DISPATCH_BURSTS)
        pushed = 0
        zero_at = None
        next_print = 0.0
        while True:
            t = time.monotonic() - t0
            if t > DISPATCH_SECONDS:
                break
            while bursts and t >= bursts[0][0]:
                _, n = bursts.pop(0)
                redis.pipeline([("LPUSH", "tasks", json.dumps(
                    {"id": "job-%d" % (pushed + i), "payload": {"repo": "demo"}}))
                    for i in range(n)])
                pushed += n
            if t >= next_print:
                mt = daemon.metrics()
                code, wp = kube.api("GET", world.EXT_API % "default" + "sandboxwarmpools/sandboxes")
                spec = wp["spec"].get("replicas", 0)
                ready = (wp.get("status") or {}).get("readyReplicas", 0) or 0
                if spec == 0 and zero_at is None and t > 12:
                    zero_at = t
                print("%5.0f %6d %8d %7d %6d %6d %7d %7d %6d" % (
                    t, redis.cmd("LLEN", "tasks"),
                    daemon.metric_sum("agentscaler_dispatch_tasks", pool="coding-agents",
                                      state="claiming") +
                    daemon.metric_sum("agentscaler_dispatch_tasks", pool="coding-agents",
                                      state="waiting"),
                    daemon.metric_sum("agentscaler_dispatch_tasks", pool="coding-agents"),
                    mt.get('agentscaler_dispatch_claims_total{namespace="default",'
                           'pool="coding-agents",launch="warm",outcome="ready"}', 0),
                    mt.get('agentscaler_dispatch_claims_total{namespace="default",'
                           'pool="coding-agents",launch="cold",outcome="ready"}', 0),
                    mt.get("agentscaler_warm_spare_target" + lab, 0), spec, ready), flush=True)
                next_print += 1.0
            time.sleep(0.05)
        runtime.wait_finished(pushed * 3, timeout=30)   # every root spawns 2
        mt = daemon.metrics()
        lw = {"namespace": "default", "pool": "coding-agents", "launch": "warm"}
        lc = dict(lw, launch="cold")
        warm = mt.get('agentscaler_dispatch_claims_total{namespace="default",pool="coding-agents",'
                      'launch="warm",outcome="ready"}', 0)
        cold = mt.get('agentscaler_dispatch_claims_total{namespace="default",pool="coding-agents",'
                      'launch="cold",outcome="ready"}', 0)
        print("\nsummary:")
        print("  root tasks pushed %d; tasks received by agents %d (sub-tasks included), "
              "each exactly once: %s" % (pushed, len(runtime.received_ids()),
                                         len(runtime.received_ids()) == len(set(runtime.received_ids()))))
        print("  claims: %d warm, %d cold; claim-to-ready p50 warm <= %s s, cold <= %s s "
              "(histogram buckets)" % (warm, cold,
                                       hist_quantile(mt, "agentscaler_dispatch_claim_ready_seconds", lw, 0.5),
                                       hist_quantile(mt, "agentscaler_dispatch_claim_ready_seconds", lc, 0.5)))
        print("  hand-off (message taken to task in the inbox) p50 <= %s s" % hist_quantile(
            mt, "agentscaler_dispatch_handoff_seconds", {"pool": "coding-agents"}, 0.5))
        print("  warm pool went to zero when idle: %s; the task at t=30 s scaled it up again"
              % ("yes, at t=%.0f s" % zero_at if zero_at else "no"))
        print("  dead letters: %d" % len(redis.cmd("LRANGE", "tasks.rejected", 0, -1)))
        return 0 if warm > 0 and len(runtime.received_ids()) >= pushed else 1
    finally:
        if runtime is not None:
            runtime.cleanup()
        if daemon is not None:
            rc = daemon.stop()
            daemon.cleanup()
            if rc != 0:
                print("agentscaler exited %s" % rc)
        kube.stop()
        redis.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(world.ROOT, "build/release/agentscaler"))
    ap.add_argument("--only", choices=("scale", "dispatch"))
    args = ap.parse_args()
    rc = 0
    if args.only in (None, "scale"):
        rc |= scale_demo(args)
    if args.only in (None, "dispatch"):
        rc |= dispatch_demo(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
