#!/usr/bin/env python3
"""make bench: reaction latency from zero.

Method.  One redis-server, one kube-sim and one agentscaler on loopback.  A
pool scales Deployment `agents` (tasksPerReplica 1, cooldown 0, no
stabilization, so an emptied list takes it back to zero at once).  Each trial
waits until the Deployment is at 0 with no scale request of it still being
handled (kube-sim logs a request on arrival, before applying it), then LPUSHes one
task, taking time.monotonic() just before the write; the latency is the
arrival time (kube-sim's monotonic clock, same CLOCK_MONOTONIC) of the first
PATCH .../agents/scale that follows, taken once it has been answered.  The list is then deleted and the pool
returns to zero before the next trial.

Sources: redis-list (LPUSH; reset by DEL), redis-stream (XADD to a stream
with a consumer group; reset by XREADGROUP then XTRIM), rabbitmq over AMQP
and over the management API (publish; reset by purge), one private broker
each.  Two modes: push (keyspace notifications, the default when the server
allows CONFIG SET; Redis only) and polling (the server started with CONFIG renamed away,
so agentscaler falls back to its default 1000 ms poll).  Polling trials are
spread over several pools at once to bound the run time; each trial still
measures one pool from an empty list to its PATCH.  Push trials are spaced
100-250 ms apart (polling trials 100-1100 ms, a random phase against the
poll timer) so that the two scale writes of each stay under the default
--kube-qps 20; the bench client, kube-sim (Python), redis-server and the
daemon share the machine's cores.

A trial whose PATCH does not come within --trial-timeout seconds (60) failed:
it is counted and described (the pool's /status entry, the broker's view of
the queue), never dropped; each line says "n=OK ok, FAILED failed" and the
percentiles are over the trials that succeeded.  Any failed trial makes the
bench exit 1.  --kinds picks the runs (for instance --kinds rabbitmq-http
--trials 40 reruns only the management API's reaction phase).
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


class Source:
    """How a trial writes one task and empties the queue, per source type."""

    def __init__(self, kind, push, rabbit=None):
        self.kind, self.rabbit = kind, rabbit
        self.redis = None
        if kind.startswith("redis"):
            self.redis = world.Redis([] if push else ["--rename-command", "CONFIG", ""])

    def stop(self):
        if self.redis:
            self.redis.stop()

    def setup(self, q):
        if self.kind == "redis-stream":
            self.redis.cmd("XGROUP", "CREATE", q, "workers", "$", "MKSTREAM")
        elif self.rabbit:
            self.rabbit.declare(q)

    def pool(self, name, q, target, **scaling):
        if self.kind == "redis-list":
            return world.pool(name, self.redis.url, q, target, **scaling)
        if self.kind == "redis-stream":
            return world.pool_stream(name, self.redis.url, q, "workers", target, **scaling)
        url = self.rabbit.amqp_url() if self.kind == "rabbitmq-amqp" else self.rabbit.http_url()
        return world.pool_rabbit(name, url, q, target, **scaling)

    def push(self, q):
        if self.kind == "redis-list":
            self.redis.cmd("LPUSH", q, json.dumps({"id": "b"}))
        elif self.kind == "redis-stream":
            self.redis.cmd("XADD", q, "*", "task", json.dumps({"id": "b"}))
        else:
            self.rabbit.publish(q, 1)

    def reset(self, q):
        if self.kind == "redis-list":
            self.redis.cmd("DEL", q)
        elif self.kind == "redis-stream":
            # Deliver it to the group (lag 0), then trim: the trim wakes the pool.
            self.redis.cmd("XREADGROUP", "GROUP", "workers", "bench", "COUNT", "100", "STREAMS", q, ">")
            self.redis.cmd("XTRIM", q, "MAXLEN", "0")
        else:
            self.rabbit.purge(q)


def scale_path(name):
    return "/deployments/%s/scale" % name


def at_rest(kube, name, since=0):
    """1 when a trial may start on Deployment name: at 0 replicas, and no
    request on its /scale still being handled.  kube-sim logs a request when
    it arrives, before it is applied: a trial that saw its PATCH in the log
    and then read 0 replicas had read them before that PATCH took effect,
    pushed while the Deployment went to 1, and waited for a PATCH that was
    never due (the queue was not empty and the pool was at 1).  Requests
    before seq since are known answered."""
    if kube.replicas(name) != 0:
        return False
    return not any(r["code"] is None and r["path"].endswith(scale_path(name))
                   for r in kube.requests(since))


def reaction(kube, seq, name, t_push):
    """The first PATCH of name's /scale that arrived at or after t_push and
    has been answered (so applied), from request seq on; None until then."""
    for r in kube.requests(seq):
        if (r["method"] == "PATCH" and r["path"].endswith(scale_path(name)) and
                r["mono"] >= t_push):
            return r if r["code"] is not None else None
    return None


def describe_failure(daemon, kube, src, kind, i, q, t_push, what):
    """What a failed trial leaves to look at: the pool's /status entry, the
    Deployment, the requests on its /scale around the trial, the daemon's
    log lines about the pool and, for RabbitMQ, the broker's own view of
    the queue."""
    out = ["%s trial on pool bench-%d: %s" % (kind, i, what)]
    name = "agents-%d" % i
    out.append("  deployment %s: spec.replicas %s" % (name, kube.replicas(name)))
    reqs = [r for r in kube.requests() if r["path"].endswith(scale_path(name))]
    for r in reqs[-12:]:
        out.append("  kube-sim: %+8.3f s from the push: %s %s" % (r["mono"] - t_push, r["method"],
                                                                r["code"]))
    lines = [ln for ln in daemon.logs().splitlines() if "default/bench-%d:" % i in ln]
    out.extend("  daemon log: " + ln[:400] for ln in lines[-12:])
    try:
        code, st = daemon.admin("/status")
        for p in (st or {}).get("pools", []) if code == 200 else []:
            if p.get("name") == "bench-%d" % i:
                out.append("  daemon /status: %s" % json.dumps(p, sort_keys=True))
    except Exception as e:  # noqa: BLE001 - a report, not a check
        out.append("  daemon /status: %s" % e)
    if src.rabbit is not None:
        code, obj = src.rabbit.api("GET", "/api/queues/%%2F/%s" % q)
        keep = ("messages", "messages_ready", "messages_unacknowledged", "consumers", "state",
                "idle_since")
        out.append("  broker: %s %s" % (code, json.dumps({k: obj.get(k) for k in keep}
                                                          if isinstance(obj, dict) else obj)))
    return "\n".join(out)


def run_mode(binary, kind, mode, trials, npools, rabbit=None, trial_timeout=60.0, log_level="warn"):
    """Returns (latencies in ms of the trials that reacted, failed trials
    described)."""
    src = Source(kind, mode == "push", rabbit)
    kube = world.KubeSim("--replica-delay-ms", "10")
    daemon = None
    try:
        pools = []
        for i in range(npools):
            kube.create_deployment("agents-%d" % i)
            src.setup("q-%d" % i)
            pools.append(src.pool("bench-%d" % i, "q-%d" % i, "agents-%d" % i,
                                  maxReplicas=10, cooldownSeconds=0,
                                  scaleDownStabilizationSeconds=0, pollIntervalMs=1000))
        daemon = world.Daemon({"pools": pools}, kube, binary=binary, extra=["--log-level", log_level])
        world.wait_for(lambda: daemon.started(), 60, what="ready")
        want_push = 1.0 if mode == "push" else 0.0
        world.wait_for(lambda: daemon.metrics().get(
            'agentscaler_source_push{namespace="default",pool="bench-0"}') == want_push, 15,
            what="push state %s" % want_push)
        lat, failed = [], []
        lock = threading.Lock()

        def worker(i, n):
            name, q = "agents-%d" % i, "q-%d" % i
            since = 0
            for _ in range(n):
                world.wait_for(lambda: at_rest(kube, name, since), 60, 0.01, "%s at zero" % name)
                # Trials 100-250 ms apart: two scale writes per trial stay
                # under the daemon's default --kube-qps 20, so the figure is
                # the reaction, not our own rate limiter's queue.
                # Polling: a random phase against the poll timer, since the
                # pool reached zero on one of its own ticks.
                time.sleep(random.uniform(0.1, 0.25) if mode == "push" else random.uniform(0.1, 1.1))
                reqs = kube.requests()
                seq = reqs[-1]["seq"] + 1 if reqs else 0
                t_push = time.monotonic()
                src.push(q)
                try:
                    r = world.wait_for(lambda: reaction(kube, seq, name, t_push), trial_timeout,
                                       0.002, "the PATCH")
                except AssertionError as e:
                    # Counted and described, never dropped.
                    with lock:
                        failed.append(describe_failure(daemon, kube, src, kind, i, q, t_push,
                                                       str(e)))
                    src.reset(q)
                    continue
                with lock:
                    lat.append((r["mono"] - t_push) * 1000.0)
                since = r["seq"]
                src.reset(q)

        per = [trials // npools + (1 if i < trials % npools else 0) for i in range(npools)]
        ts = [threading.Thread(target=worker, args=(i, per[i])) for i in range(npools)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if sum(per) != len(lat) + len(failed):
            failed.append("%d trials neither reacted nor failed (a worker died)"
                          % (sum(per) - len(lat) - len(failed)))
        return lat, failed
    finally:
        if daemon is not None:
            daemon.stop()
            daemon.cleanup()
        kube.stop()
        src.stop()


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(world.ROOT, "build/release/agentscaler"))
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--modes", default="push,polling,cost")
    ap.add_argument("--sources", default="redis,rabbitmq")
    ap.add_argument("--kinds", default="redis-list,redis-stream,rabbitmq-amqp,rabbitmq-http",
                    help="reaction runs to make, by source kind")
    ap.add_argument("--trial-timeout", type=float, default=60.0,
                    help="seconds a trial waits for its PATCH before it counts as failed")
    ap.add_argument("--daemon-log-level", default="warn",
                    help="the daemon's --log-level (a failed trial shows its lines about the pool)")
    args = ap.parse_args()
    print(__doc__.strip())
    print()
    print("machine: %d CPUs, %s" % (os.cpu_count(), os.uname().release))
    runs = [("redis-list", "push", 1), ("redis-list", "polling", 8),
            ("redis-stream", "push", 1), ("redis-stream", "polling", 8),
            ("rabbitmq-amqp", "polling", 8), ("rabbitmq-http", "polling", 8)]
    rabbit = None
    nfailed = 0
    try:
        for kind, mode, npools in runs:
            if (mode not in args.modes.split(",") or kind.split("-")[0] not in args.sources.split(",")
                    or kind not in args.kinds.split(",")):
                continue
            if kind.startswith("rabbitmq") and rabbit is None:
                rabbit = world.RabbitMQ()
            lat, failed = run_mode(args.bin, kind, mode, args.trials, npools, rabbit,
                                   args.trial_timeout, args.daemon_log_level)
            nfailed += len(failed)
            head = "reaction from zero, %-13s %-8s n=%d ok, %d failed" % (kind, mode, len(lat),
                                                                         len(failed))
            if lat:
                print("%s  p50 %8.2f ms  p90 %8.2f ms  p99 %8.2f ms  max %8.2f ms%s"
                      % (head, pct(lat, 50), pct(lat, 90), pct(lat, 99), max(lat),
                         "  (of the trials that reacted)" if failed else ""), flush=True)
            else:
                print("%s  (no trial reacted)" % head, flush=True)
            for f in failed:
                print("  FAILED: " + f.replace("\n", "\n  "), flush=True)
    finally:
        if rabbit is not None:
            rabbit.stop()
    print("(rabbitmq-http reads the management plugin's queue statistics: its figure is their age,")
    print(" observed here at about 5 s even with collect_statistics_interval = 500 ms; choose AMQP")
    print(" when reaction time matters and in-flight counts do not)")
    tool = os.path.join(os.path.dirname(args.bin), "tools/bench/poll_cost")
    if "cost" in args.modes.split(",") and os.path.exists(tool):
        print()
        print("poll cost: N sources of one type on one redis-server endpoint; every source polls")
        print("once per sweep; CPU = this process's user+system time (getrusage) over the sweeps")
        print("after one warm-up sweep; reads = the server's total_reads_processed per sweep")
        print("(one read covers a whole pipelined batch).  Broker CPU is not included.")
        for kind in ("redis-list", "redis-stream"):
            for n, sweeps in ((1000, 50), (10000, 20)):
                r, reads = poll_cost(tool, kind, n, sweeps)
                print("  %-13s pools %6d  CPU %7.3f ms/sweep (%.2f%% of a core at 1 sweep/s)  "
                      "wall %7.3f ms/sweep  server reads %.1f/sweep"
                      % (kind, n, r["cpu_ms_per_sweep"], r["cpu_ms_per_sweep"] / 10.0,
                         r["wall_ms_per_sweep"], reads), flush=True)
        if "rabbitmq" in args.sources.split(","):
            rabbit = world.RabbitMQ()
            try:
                n = 1000
                for i in range(n):
                    rabbit.declare("q-%d" % i)
                print("  (rabbitmq: batches = the source's own count of AMQP declare batches or")
                print("   management listings per sweep; sweeps 600 ms apart for HTTP, past its")
                print("   0.5 s listing reuse)")
                for kind, url, gap in (("amqp", rabbit.amqp_url(), "0"), ("http", rabbit.http_url(), "600")):
                    out = subprocess.run([tool, "rabbitmq", url, "q", str(n), "20"], capture_output=True,
                                         text=True, timeout=600, env=dict(os.environ, POLL_COST_GAP_MS=gap))
                    if out.returncode != 0:
                        raise RuntimeError("poll_cost: %s %s" % (out.stdout, out.stderr))
                    r = json.loads(out.stdout)
                    print("  %-13s pools %6d  CPU %7.3f ms/sweep (%.2f%% of a core at 1 sweep/s)  "
                          "wall %7.3f ms/sweep  batches %.1f/sweep"
                          % ("rabbitmq-" + kind, n, r["cpu_ms_per_sweep"], r["cpu_ms_per_sweep"] / 10.0,
                             r["wall_ms_per_sweep"], r["batches_per_sweep"]), flush=True)
            finally:
                rabbit.stop()
    print("reference: KEDA polls every 30 s by default (pollingInterval), so its mean reaction from "
          "zero is about 15 s plus the HPA/scale write.")
    if nfailed:
        print("%d reaction trials FAILED (see above)" % nfailed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
