#!/usr/bin/env python3
"""make demo: scale mode on the embedded world.

Starts redis-server and kube-sim on free loopback ports, creates the
Deployment `agents` at 0 replicas, runs agentscaler on it, and plays a
producer that pushes bursts of tasks.  The "agents" are simulated here: each
ready replica takes tasks off the list (RPOPLPUSH into the processing list,
then finishes them), so the backlog drains as the pool grows.  One line per
second, then a summary; everything it started is stopped by PID.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(world.ROOT, "build/release/agentscaler"))
    args = ap.parse_args()

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
        world.wait_for(lambda: daemon.get("/readyz")[0] == 200, 20, what="agentscaler ready")
        print("world: redis %s, kube-sim %s, agentscaler metrics http://127.0.0.1:%d/metrics"
              % (redis.url, kube.url, daemon.metrics_port))
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
                lab = '{namespace="default",pool="research-agents"}'
                print("%5.0f %8d %9d %8d %9d %6d" % (
                    t, mt.get("agentscaler_pool_backlog" + lab, 0),
                    mt.get("agentscaler_pool_in_flight" + lab, 0),
                    mt.get("agentscaler_pool_desired_replicas" + lab, 0), spec, ready), flush=True)
                next_print += 1.0
            time.sleep(0.05)

        mt = daemon.metrics()
        lab = '{namespace="default",pool="research-agents",direction="%s"}'
        ups = mt.get("agentscaler_pool_scale_events_total" + lab % "up", 0)
        downs = mt.get("agentscaler_pool_scale_events_total" + lab % "down", 0)
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


if __name__ == "__main__":
    sys.exit(main())
