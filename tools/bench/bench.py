#!/usr/bin/env python3
"""make bench: reaction latency from zero.

Method.  One redis-server, one kube-sim and one agentscaler on loopback.  A
pool scales Deployment `agents` (tasksPerReplica 1, cooldown 0, no
stabilization, so an emptied list takes it back to zero at once).  Each trial
waits until the Deployment is at 0 and the list is empty, then LPUSHes one
task, taking time.monotonic() just before the write; the latency is the
arrival time (kube-sim's monotonic clock, same CLOCK_MONOTONIC) of the first
PATCH .../agents/scale that follows.  The list is then deleted and the pool
returns to zero before the next trial.

Two modes: push (keyspace notifications, the default when the server
allows CONFIG SET) and polling (the server started with CONFIG renamed away,
so agentscaler falls back to its default 1000 ms poll).  Polling trials are
spread over several pools at once to bound the run time; each trial still
measures one pool from an empty list to its PATCH.  Trials are spaced
100-250 ms apart so that the two scale writes of each stay under the default
--kube-qps 20; the bench client, kube-sim (Python), redis-server and the
daemon share the machine's cores.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import world  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run_mode(binary, mode, trials, npools):
    redis = world.Redis([] if mode == "push" else ["--rename-command", "CONFIG", ""])
    kube = world.KubeSim("--replica-delay-ms", "10")
    daemon = None
    try:
        pools = []
        for i in range(npools):
            kube.create_deployment("agents-%d" % i)
            pools.append(world.pool("bench-%d" % i, redis.url, "q-%d" % i, "agents-%d" % i,
                                    maxReplicas=10, cooldownSeconds=0,
                                    scaleDownStabilizationSeconds=0,
                                    pollIntervalMs=1000))
        daemon = world.Daemon({"pools": pools}, kube, binary=binary, extra=["--log-level", "warn"])
        world.wait_for(lambda: daemon.get("/readyz")[0] == 200, 30, what="ready")
        want_push = 1.0 if mode == "push" else 0.0
        world.wait_for(lambda: daemon.metrics().get(
            'agentscaler_source_push{namespace="default",pool="bench-0"}') == want_push, 15,
            what="push state %s" % want_push)
        lat = []
        lock = threading.Lock()

        def worker(i, n):
            name = "agents-%d" % i
            path = "/deployments/%s/scale" % name
            for _ in range(n):
                world.wait_for(lambda: kube.replicas(name) == 0, 30, 0.01, "%s at zero" % name)
                # Trials 100-250 ms apart: two scale writes per trial stay
                # under the daemon's default --kube-qps 20, so the figure is
                # the reaction, not our own rate limiter's queue.
                time.sleep(random.uniform(0.1, 0.25))
                seq = kube.requests()[-1]["seq"] if kube.requests() else 0
                t_push = time.monotonic()
                redis.cmd("LPUSH", "q-%d" % i, json.dumps({"id": "b"}))

                def patched():
                    for r in kube.requests(seq):
                        if r["method"] == "PATCH" and r["path"].endswith(path) and r["mono"] >= t_push:
                            return r
                    return None
                r = world.wait_for(patched, 30, 0.002, "the PATCH")
                with lock:
                    lat.append((r["mono"] - t_push) * 1000.0)
                redis.cmd("DEL", "q-%d" % i)

        per = [trials // npools + (1 if i < trials % npools else 0) for i in range(npools)]
        ts = [threading.Thread(target=worker, args=(i, per[i])) for i in range(npools)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return lat
    finally:
        if daemon is not None:
            daemon.stop()
            daemon.cleanup()
        kube.stop()
        redis.stop()


def redis_reads(redis):
    for line in redis.cmd("INFO", "stats").splitlines():
        if line.startswith("total_reads_processed:"):
            return int(line.split(":")[1])
    return 0


def poll_cost(tool, kind, n, sweeps):
    """CPU per sweep of N sources on one endpoint, and broker reads per sweep."""
    redis = world.Redis()
    try:
        group = None
        if kind == "redis-stream":
            group = "workers"
            for base in range(0, n, 1000):
                redis.pipeline([("XGROUP", "CREATE", "q-%d" % i, group, "$", "MKSTREAM")
                                for i in range(base, min(n, base + 1000))])
        before = redis_reads(redis)
        args = [tool, kind, redis.url, "q", str(n), str(sweeps)] + ([group] if group else [])
        out = subprocess.run(args, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError("poll_cost: %s %s" % (out.stdout, out.stderr))
        r = json.loads(out.stdout)
        reads = (redis_reads(redis) - before - 1) / float(sweeps + 1)
        return r, reads
    finally:
        redis.stop()


def _has_type(tool, kind):
    r = subprocess.run([tool, kind, "redis://127.0.0.1:1/0", "x", "0", "0"],
                       capture_output=True, text=True, timeout=30)
    return "unknown type" not in r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(world.ROOT, "build/release/agentscaler"))
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--modes", default="push,polling,cost")
    args = ap.parse_args()
    print(__doc__.strip())
    print()
    print("machine: %d CPUs, %s" % (os.cpu_count(), os.uname().release))
    for mode, npools in (("push", 1), ("polling", 8)):
        if mode not in args.modes.split(","):
            continue
        lat = run_mode(args.bin, mode, args.trials, npools)
        print("reaction from zero, %-8s n=%d  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms  mean %.2f ms"
              % (mode, len(lat), pct(lat, 50), pct(lat, 90), pct(lat, 99), max(lat), statistics.mean(lat)),
              flush=True)
    tool = os.path.join(os.path.dirname(args.bin), "tools/bench/poll_cost")
    if "cost" in args.modes.split(",") and os.path.exists(tool):
        print()
        print("poll cost: N sources of one type on one redis-server endpoint; every source polls")
        print("once per sweep; CPU = this process's user+system time (getrusage) over the sweeps")
        print("after one warm-up sweep; reads = the server's total_reads_processed per sweep")
        print("(one read covers a whole pipelined batch).  Broker CPU is not included.")
        for kind in ("redis-list", "redis-stream"):
            if kind == "redis-stream" and not _has_type(tool, kind):
                continue
            for n, sweeps in ((1000, 50), (10000, 20)):
                r, reads = poll_cost(tool, kind, n, sweeps)
                print("  %-13s pools %6d  CPU %7.3f ms/sweep (%.2f%% of a core at 1 sweep/s)  "
                      "wall %7.3f ms/sweep  server reads %.1f/sweep"
                      % (kind, n, r["cpu_ms_per_sweep"], r["cpu_ms_per_sweep"] / 10.0,
                         r["wall_ms_per_sweep"], reads), flush=True)
    print("reference: KEDA polls every 30 s by default (pollingInterval), so its mean reaction from "
          "zero is about 15 s plus the HPA/scale write.")


if __name__ == "__main__":
    sys.exit(main())
