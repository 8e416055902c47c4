#!/usr/bin/env python3
"""make bench: one agentscaler instance, thousands of pools (issue 15).

Method.  Per case, a fresh world on loopback: one redis-server (push
wake-ups on: CONFIG SET is allowed, so the daemon subscribes to keyspace
notifications as it does by default), one kube-sim seeded with N
Deployments (admin POST /objects, in batches), and the release daemon with N
scale-mode pools, each on its own empty Redis list on that one endpoint
(pollIntervalMs 1000, maxReplicas 10, cooldown 0, no stabilization), each
scaling its own Deployment.  Pools come from a --config file where it fits
the daemon's 4 MiB config limit (CONFIG_MAX_BYTES in scheduler/config.c);
a case that does not fit runs in CRD mode instead (AgentPool objects seeded
into kube-sim, the daemon without --config), and its line says so.

  ready     seconds from the daemon's exec to the first /readyz 200 (polled
            every 50 ms), and to every pool started (/status: each pool
            read its source and its target; polled every 2 s, as /status is
            a large answer at these counts).  Bounded by --ready-timeout;
            the measurements go on after it either way.
  CPU       after a 5 s settle, utime+stime of the daemon process (all its
            threads, /proc/<pid>/stat) over --window seconds (default 30,
            one --resync-seconds period), as % of one core.  kube-sim's and
            redis-server's CPU over the same window, and the whole machine's
            busy share (/proc/stat), are printed beside it to show what else
            ran.
  RSS       VmRSS and VmHWM (peak) of the daemon (/proc/<pid>/status) at the
            end of the window.
  reaction  from zero of one pool while all the others are polled: --trials
            pools spread over the N.  A trial takes
            time.monotonic() just before LPUSH of one task to the pool's
            list; the reaction is kube-sim's time.monotonic() (the same
            CLOCK_MONOTONIC) stamped when the request line of the first
            PATCH of that Deployment's /scale arrives, read from kube-sim's
            request log (GET /requests filtered by method and path) once it
            has been answered.  It includes the push notification, the
            pool's evaluation, the daemon's client rate limiter and the
            HTTP request up to its arrival; not kube-sim applying it.  Each
            trial waits --trial-timeout seconds; one that gets no PATCH by
            then is FAILED and counted (never dropped).  The next trial
            starts when this one reacted, or --trial-spacing (5) seconds
            after it started, whichever is first: slow reactions overlap,
            each adding one PATCH to the daemon's queue, so that the trials
            fit in time; trials not started within --reaction-budget
            seconds are counted as not run.  After each trial the list is
            deleted (the pool goes back to zero in the background).

The daemon runs with --kube-qps 200 (the default 20 cannot resync 10,000
targets every 30 s: see issue 15) and --log-level warn.  KEDA's published
behaviour is printed beside each case for comparison: keda#3810 reports
its operator very slow at about 1,100 ScaledObjects (client-side
throttling of tens of seconds per request) and keda#6063 degraded scale-out
(hours) between 700 and 1,250; its default pollingInterval is 30 s, so its
reaction from zero is up to 30 s plus the HPA's own loop.

Bounded: each case takes at most about seed + --ready-timeout + 5 +
--window + --reaction-budget + --trial-timeout + teardown seconds; the
default set (1k, 10k, 10k over 1,000 namespaces with AgentQuotas, 50k)
finishes within about 25 minutes on a 2-core machine, then stops by
itself; --quick runs the 1k case.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import world  # noqa: E402
from bench import pct  # noqa: E402  (tools/bench/bench.py)

CONFIG_MAX_BYTES = 4 * 1024 * 1024      # scheduler/config.c
SEED_BATCH = 5000
CLK_TCK = os.sysconf("SC_CLK_TCK")

KEDA = {
    "small": "KEDA: ~10^3 ScaledObjects is where it is reported to degrade (keda#3810 at "
             "~1,100: operator very slow, API throttling; keda#6063: 700-1,250 slow "
             "scale-out); reaction from zero up to its 30 s default pollingInterval + HPA",
    "large": "KEDA: 10x-50x beyond the ~10^3 ScaledObjects where it is reported to degrade "
             "(keda#3810, keda#6063); no published figures at this count; reaction from "
             "zero up to its 30 s default pollingInterval + HPA",
}


def proc_cpu(pid):
    """utime+stime of the process, in seconds (every thread)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(CLK_TCK)


def proc_mem(pid):
    """(VmRSS, VmHWM) in MiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024.0
    return out.get("VmRSS", 0.0), out.get("VmHWM", 0.0)


def machine_busy():
    """(busy, total) jiffies of every CPU since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def ns_of(i, nns):
    return "default" if nns == 0 else "bench-ns-%d" % (i % nns)


def deployment(i, nns):
    name = "d-%d" % i
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns_of(i, nns)},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "a", "image": "a:1"}]}}}}


def pool(i, nns, redis_url, crd):
    p = world.pool("p-%d" % i, redis_url, "q-%d" % i, "d-%d" % i, maxReplicas=10,
                   cooldownSeconds=0, scaleDownStabilizationSeconds=0, pollIntervalMs=1000)
    p["metadata"]["namespace"] = ns_of(i, nns)
    if not crd:      # the config file needs neither; it keeps the file small
        del p["apiVersion"], p["kind"]
    return p


def quota(ns, crd):
    q = {"metadata": {"name": "quota", "namespace": ns}, "spec": {"maxSandboxes": 100}}
    if crd:
        q.update(apiVersion="agentscaler.io/v1alpha1", kind="AgentQuota")
    return q


def seed(kube, objs):
    """Creates objs through kube-sim's admin POST /objects, in batches."""
    for b in range(0, len(objs), SEED_BATCH):
        code, r = world.http("POST", kube.admin + "/objects", objs[b:b + SEED_BATCH],
                             timeout=600)
        if code != 200 or r.get("failed"):
            raise RuntimeError("seeding kube-sim: %s %s" % (code, r))


def next_seq(kube):
    _c, r = world.http("GET", kube.admin + "/requests?since=%d" % (1 << 62))
    return r["next"]


def scale_path(i, nns):
    return "/namespaces/%s/deployments/d-%d/scale" % (ns_of(i, nns), i)


def scale_patch(kube, since, i, nns):
    """The first PATCH of d-i's /scale from request since on once it has
    been answered; None before."""
    return first_patch(scale_patches(kube, since), since, i, nns)


def scale_patches(kube, since):
    """Every PATCH of a /scale from request since on (kube-sim's request
    log, filtered there): one look serves every trial in flight."""
    code, r = world.http("GET", kube.admin + "/requests?since=%d&method=PATCH&path=/scale"
                         % since)
    return r["requests"] if code == 200 else []


def first_patch(reqs, since, i, nns):
    """Of reqs, the first PATCH of d-i's /scale at or after since, if it
    has been answered; None otherwise (also while it is in flight)."""
    path = scale_path(i, nns)
    for e in reqs:
        if e["seq"] >= since and e["path"].endswith(path):
            return e if e["code"] is not None else None
    return None


def reaction_trials(daemon, kube, redis, n, nns, args):
    """Latencies (ms) of the trials that reacted, failure lines, count not
    run.  A trial starts when the one before it reacted, or --trial-spacing
    seconds after that one started, whichever comes first: slow reactions
    overlap (each adds one PATCH to the daemon's queue) so that the trials
    fit the budget."""
    lat, failed = [], []
    picks = [(k * n) // args.trials + (n // (2 * args.trials)) for k in range(args.trials)]
    budget_end = time.monotonic() + args.reaction_budget
    live = {}           # pool index -> (request seq before the push, t_push)
    last_start = None
    k = 0
    not_run = 0
    while k < len(picks) or live:
        now = time.monotonic()
        if k < len(picks) and now >= budget_end:
            not_run = len(picks) - k
            k = len(picks)
        if k < len(picks) and (not live or now - last_start >= args.trial_spacing):
            i = picks[k]
            k += 1
            since = next_seq(kube)
            t_push = time.monotonic()
            redis.cmd("LPUSH", "q-%d" % i, json.dumps({"id": "bench"}))
            live[i] = (since, t_push)
            last_start = t_push
            continue
        if not live:
            break
        reqs = scale_patches(kube, min(s for s, _ in live.values()))
        for i in list(live):
            since, t_push = live[i]
            e = first_patch(reqs, since, i, nns)
            if e is not None:
                lat.append((e["mono"] - t_push) * 1000.0)
            elif time.monotonic() > t_push + args.trial_timeout or daemon.proc.poll() is not None:
                failed.append("pool p-%d: no PATCH of d-%d/scale within %.0f s of the LPUSH%s"
                              % (i, i, args.trial_timeout, " (the daemon exited)"
                                 if daemon.proc.poll() is not None else ""))
            else:
                continue
            del live[i]
            redis.cmd("DEL", "q-%d" % i)
        time.sleep(0.002 if len(live) <= 1 else 0.02)
    return lat, failed, not_run


def pools_started(daemon):
    """(started, total) from /status, or None when it does not answer."""
    code, st = world.http("GET", "http://127.0.0.1:%d/status" % daemon.admin_port, timeout=30)
    if code != 200 or not isinstance(st, dict):
        return None
    ps = st.get("pools", [])
    return sum(1 for p in ps if p.get("started")), len(ps)


def run_case(args, n, nns, label):
    print("\n== %s" % label, flush=True)
    redis = world.Redis()
    kube = world.KubeSim("--replica-delay-ms", "10", "--no-sandbox-controller")
    kubectl = daemon = None
    try:
        pools_cfg = [pool(i, nns, redis.url, False) for i in range(n)]
        quotas_cfg = [quota(ns_of(j, nns), False) for j in range(nns)]
        text = json.dumps({"pools": pools_cfg, "quotas": quotas_cfg} if nns else
                          {"pools": pools_cfg}, separators=(",", ":"))
        crd = args.mode == "crd" or (args.mode == "auto" and len(text) > CONFIG_MAX_BYTES)
        t0 = time.monotonic()
        objs = [{"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": ns_of(j, nns)}} for j in range(nns)]
        objs += [deployment(i, nns) for i in range(n)]
        seed(kube, objs)
        if crd:
            kubectl = world.Kubectl(kube)
            kubectl.install_crds()
            seed(kube, [pool(i, nns, redis.url, True) for i in range(n)] +
                 [quota(ns_of(j, nns), True) for j in range(nns)])
        print("setup: %d Deployments%s seeded into kube-sim in %.1f s; pools from %s"
              % (n, " and AgentPools" if crd else "", time.monotonic() - t0,
                 "AgentPool objects (CRD mode): the config file would be %.1f MiB%s"
                 % (len(text) / 1048576.0, ", over the daemon's 4 MiB limit"
                    if len(text) > CONFIG_MAX_BYTES else "") if crd else
                 "a %.1f MiB --config file" % (len(text) / 1048576.0)), flush=True)
        extra = ["--kube-qps", str(args.kube_qps), "--log-level", "warn"]
        t_start = time.monotonic()
        daemon = world.Daemon(None if crd else text, kube, binary=args.bin, extra=extra)
        pid = daemon.proc.pid
        ready_at = started_at = None
        started = None
        deadline = t_start + args.ready_timeout
        next_status = t_start
        while time.monotonic() < deadline and daemon.proc.poll() is None:
            now = time.monotonic()
            if ready_at is None and daemon.get("/readyz")[0] == 200:
                ready_at = time.monotonic() - t_start
            if ready_at is not None and now >= next_status:
                started = pools_started(daemon) or started
                next_status = time.monotonic() + 2.0
                if started and started[0] == started[1] == n:
                    started_at = time.monotonic() - t_start
                    break
            time.sleep(0.05)
        if daemon.proc.poll() is not None:
            raise RuntimeError("the daemon exited: " + daemon.logs()[-3000:])
        print("ready: /readyz 200 after %s; every pool started after %s"
              % ("%.1f s" % ready_at if ready_at is not None else
                 "NOT within %.0f s" % args.ready_timeout,
                 "%.1f s" % started_at if started_at is not None else
                 "NOT within %.0f s (%s)" % (args.ready_timeout,
                                              "%d of %d at the last look" % started
                                              if started else "/status not read")),
              flush=True)
        code, m = daemon.get("/metrics")
        push = None
        if code == 200:
            key = 'agentscaler_source_push{namespace="%s",pool="p-0"}' % ns_of(0, nns)
            for line in m.splitlines():
                if line.startswith(key + " "):
                    push = line.rsplit(" ", 1)[1]
        time.sleep(5)
        kpid, rpid = kube.proc.pid, redis.proc.pid
        c0 = (proc_cpu(pid), proc_cpu(kpid), proc_cpu(rpid), machine_busy(),
              time.monotonic())
        time.sleep(args.window)
        c1 = (proc_cpu(pid), proc_cpu(kpid), proc_cpu(rpid), machine_busy(),
              time.monotonic())
        wall = c1[4] - c0[4]
        rss, hwm = proc_mem(pid)
        busy = (c1[3][0] - c0[3][0]) / float(max(1, c1[3][1] - c0[3][1]))
        print("steady state over %.0f s: daemon CPU %.1f %% of one core; RSS %.1f MiB "
              "(peak VmHWM %.1f MiB); push wake-ups on p-0: %s"
              % (wall, 100.0 * (c1[0] - c0[0]) / wall, rss, hwm,
                 {"1": "yes", "0": "no"}.get(push, "unknown")), flush=True)
        print("  same window: kube-sim %.1f %%, redis-server %.1f %% of one core; machine "
              "busy %.0f %% of its %d cores; load average %.2f"
              % (100.0 * (c1[1] - c0[1]) / wall, 100.0 * (c1[2] - c0[2]) / wall,
                 100.0 * busy, os.cpu_count(), os.getloadavg()[0]), flush=True)
        lat, failed, not_run = reaction_trials(daemon, kube, redis, n, nns, args)
        head = "reaction from zero (LPUSH -> PATCH /scale arrives): %d ok, %d FAILED, %d " \
               "not run" % (len(lat), len(failed), not_run)
        if lat:
            print("%s; p50 %.1f ms, p99 %.1f ms, max %.1f ms%s"
                  % (head, pct(lat, 50), pct(lat, 99), max(lat),
                     " (of the trials that reacted)" if failed else ""), flush=True)
        else:
            print(head, flush=True)
        for f in failed:
            print("  FAILED: " + f, flush=True)
        print(KEDA["small" if n <= 2000 else "large"], flush=True)
    finally:
        if daemon is not None:
            rc = daemon.stop()
            if rc not in (0, None):
                print("daemon exit status %s; end of its log:\n%s" % (rc, daemon.logs()[-2000:]))
            daemon.cleanup()
        if kubectl is not None:
            kubectl.cleanup()
        kube.stop()
        redis.stop()


def main():
    ap = argparse.ArgumentParser(description="scale benchmark (issue 15)")
    ap.add_argument("--bin", default=os.path.join(world.ROOT, "build/release/agentscaler"))
    ap.add_argument("--pools", default="1000,10000,10000x1000,50000",
                    help="cases: N pools in default, or NxM for N pools over M namespaces "
                         "each with an AgentQuota")
    ap.add_argument("--quick", action="store_true", help="only the 1,000-pool case")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--trial-timeout", type=float, default=40.0)
    ap.add_argument("--reaction-budget", type=float, default=120.0,
                    help="seconds in which trials may start, per case")
    ap.add_argument("--trial-spacing", type=float, default=5.0,
                    help="seconds after which the next trial starts even if this one has "
                         "not reacted yet")
    ap.add_argument("--ready-timeout", type=float, default=120.0)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--kube-qps", type=float, default=200)
    ap.add_argument("--mode", choices=("auto", "config", "crd"), default="auto",
                    help="pools from a --config file or AgentPool objects; auto: the file "
                         "when it fits the daemon's 4 MiB limit")
    args = ap.parse_args()
    if args.quick:
        args.pools = "1000"
    print(__doc__.strip())
    print()
    busy0 = machine_busy()
    time.sleep(1)
    busy1 = machine_busy()
    print("machine: %d cores, %s, %.1f GiB; before the run: load average %.2f, busy %.0f %% "
          "over 1 s (other jobs share this machine: figures taken while they run are noisy)"
          % (os.cpu_count(), os.uname().release,
             os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2.0 ** 30,
             os.getloadavg()[0], 100.0 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])),
          flush=True)
    print("daemon: %s" % args.bin)
    t0 = time.monotonic()
    for case in args.pools.split(","):
        n, _, m = case.partition("x")
        n, nns = int(n), int(m or 0)
        label = ("%d pools over %d namespaces, an AgentQuota (maxSandboxes 100) in each"
                 % (n, nns) if nns else "%d pools, one namespace" % n)
        run_case(args, n, nns, label)
    print("\nscale bench: %.0f s in all" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
