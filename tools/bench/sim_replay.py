#!/usr/bin/env python3
"""Ground truth for `agentscaler simulate` (issue 17): one arrival trace
replayed against the live daemon, then simulated with the same parameters.

The live side: redis-server, kube-sim (--cold-start-ms, --warm-bind-ms), an
empty SandboxWarmPool `wp`, the daemon in dispatch mode on the trace's
AgentPool (tools/bench/traces/pool.json: spare bounds, cooldown divided by
the speed-up) with the HTTP hand-off straight to each sandbox's pod IP, and
tools/agent-runtime --handoff http in every sandbox.  A producer thread
LPUSHes each task {"id", "payload": {"sleep": work}} at its (scaled) trace
time; the runtime holds the task for `sleep` seconds (its payload steering),
then its sandbox goes.  Measured: each task's wait, from just before its
LPUSH to the runtime's `received` event (both time.time() on this machine);
the warm-hit ratio from agentscaler_dispatch_claims_total{launch, outcome
"ready"}; the peak of live Sandboxes (polled every 50 ms).

The simulated side: the same scaled trace through `agentscaler simulate
--policies predictive` (or --policy) with --cold-median = kube-sim's cold
start, --cold-sigma 0 (kube-sim's start is fixed), --warm-bind = kube-sim's
bind, --grace 0.

Scaling: times and work are divided by --speed, cold start and bind are
given already scaled (defaults: the simulator's 3 s and 0.2 s over 10).
The daemon's 1 s sizing tick is not scaled, so both sides run the same
scaled world (the simulator's tick is 1 s too); what it shows about the
unscaled one is the simulator's to say.

Only traces without children (parent null): the runtime does not replay a
cascade's spawns at their offsets (the simulator's assumption), so a trace
with children is refused rather than compared wrongly.

    python3 tools/bench/sim_replay.py tools/bench/traces/onoff-1.jsonl --speed 10
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import world  # noqa: E402
from world import wait_for  # noqa: E402

NS = "default"
TRACES = os.path.join(world.ROOT, "tools", "bench", "traces")


def load_trace(path, speed):
    """The trace's rows, times and work divided by speed.  Refuses children."""
    rows = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("parent") is not None:
                raise ValueError("%s: task %s has a parent; the replay has no cascade mode"
                                 % (path, r["id"]))
            rows.append({"t": round(r["t"] / speed, 4), "id": r["id"], "parent": None,
                         "work": round(r["work"] / speed, 4)})
    rows.sort(key=lambda r: r["t"])
    return rows


def pool_config(redis_url, port, speed, policy, ns=NS, router=None,
                base=os.path.join(TRACES, "pool.json")):
    """The trace's AgentPool (spare bounds, cooldown / speed, the warm-pool
    sizing policy: predictive or rate) on this world; the hand-off straight
    to the pod IP, or through router (a sandbox-router's URL)."""
    with open(base) as f:
        spec = json.load(f)["pools"][0]["spec"]
    scaling = dict(spec.get("scaling", {}))
    if "cooldownSeconds" in scaling:
        scaling["cooldownSeconds"] = max(1, int(round(scaling["cooldownSeconds"] / speed)))
    spare = spec["sandbox"].get("spare", {})
    p = world.pool_dispatch("agents", redis_url, "tasks", "wp", claim_ttl_seconds=600,
                            spare_min=spare.get("min", 0), spare_max=spare.get("max", 50),
                            namespace=ns, handoff={"mode": "http", "port": port,
                                                   "deadlineSeconds": 120, "maxAttempts": 1},
                            **scaling)
    p["spec"]["handoff"].update({"via": "router", "router": router} if router else
                                {"via": "podIP"})
    p["spec"]["sandbox"]["spare"]["policy"] = policy
    p["spec"]["results"] = {"type": "redis-list", "address": redis_url, "queue": "results"}
    return {"pools": [p]}


def unix_time(v):
    """A claim's requested-at annotation (RFC 3339) as unix seconds, or None."""
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return None


def percentile(xs, q):
    """Nearest-rank percentile of xs (sorted here)."""
    xs = sorted(xs)
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, int(round(q / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def live(rows, cold_ms, bind_ms, speed, binary=None, policy="predictive", timeout=None,
         kube=None, ns=NS, router=None, daemon_extra=()):
    """Replays rows against the daemon; returns the measures.  kube None:
    a kube-sim of its own (cold_ms, bind_ms), else that API server (the
    real cluster's tests/e2e/kube.RealKube: cold_ms and bind_ms unused, the
    cold start is what its pods take), with namespace ns, router (the
    hand-off through a sandbox-router rather than to the pod IP) and
    daemon_extra (its credentials)."""
    tmp = tempfile.mkdtemp(prefix="sim-replay-")
    stack = []
    try:
        redis = world.Redis()
        stack.append(redis.stop)
        if kube is None:
            kube = world.KubeSim("--cold-start-ms", str(cold_ms), "--warm-bind-ms",
                                 str(bind_ms), *world.pod_ip_args())
            stack.append(kube.stop)
        world.sandbox_pool(kube, "wp", replicas=0, ns=ns, timeout=90)
        port = world.free_port()
        ar = world.AgentRuntime(kube, None, namespace=ns,
                                extra=("--handoff", "http", "--port", str(port)))
        stack.append(ar.cleanup)
        key = os.path.join(tmp, "handoff-key")
        with open(key, "w") as f:
            f.write("sim replay\n")
        d = world.Daemon(pool_config(redis.url, port, speed, policy, ns, router), kube,
                         binary=binary, extra=["--instance", "sim-replay",
                                               "--handoff-key-file", key] + list(daemon_extra))
        stack.append(d.cleanup)
        stack.append(d.stop)
        def ready():
            if d.proc.poll() is not None:
                raise RuntimeError("the daemon exited:\n" + d.logs()[-3000:])
            return d.started()
        wait_for(ready, 60, 0.1, "daemon ready")

        peak = [0]
        seen = {}          # sandbox -> [first, last] time seen live (not deleting)
        done = threading.Event()

        def watch_peak():
            while not done.wait(0.05):
                code, obj = kube.api("GET", world.SANDBOX_API % ns)
                if code != 200:
                    continue
                now = time.time()
                items = [o for o in obj.get("items") or []
                         if not o["metadata"].get("deletionTimestamp")]
                peak[0] = max(peak[0], len(items))
                for o in items:
                    seen.setdefault(o["metadata"]["name"], [now, now])[1] = now
        pt = threading.Thread(target=watch_peak, daemon=True)
        pt.start()

        pushed = {}
        conn = world.RespConn(redis.url)
        t0 = time.time() + 0.5
        for r in rows:
            delay = t0 + r["t"] - time.time()
            if delay > 0:
                time.sleep(delay)      # the trace's schedule, not a wait for a condition
            pushed[r["id"]] = time.time()
            conn.cmd("LPUSH", "tasks", json.dumps({"id": r["id"],
                                                   "payload": {"sleep": r["work"]}}))
        conn.close()
        conn2 = world.RespConn(redis.url)
        want = set(pushed)
        limit = timeout if timeout is not None else 60 + max(r["work"] for r in rows)
        got = wait_for(lambda: (lambda e: e if want <= set(e) else None)(
            {e["id"]: e for e in ar.events("received")}), limit, 0.2, "every task received")
        # The run ends when the last task has ended (its Result is out), as
        # the simulator's ends with the last task (grace 0).
        wait_for(lambda: conn2.cmd("LLEN", "results") >= len(want), limit, 0.1,
                 "every task's Result")
        end = time.time()
        done.set()
        pt.join()
        conn2.close()
        sbs = sum(max(0.0, min(last, end) - max(first, t0)) for first, last in seen.values())
        waits = [got[i]["t"] - pushed[i] for i in want]
        # Where the wait went: LPUSH -> claim requested (the daemon's read
        # and POST), -> claim bound as the runtime saw it (kube-sim), ->
        # received (the hand-off).
        parts = {"toClaim": [], "toBound": [], "toHandoff": [], "coldBound": [],
                 "warmBound": []}
        for i in want:
            a = got[i].get("arrival") or {}
            req, bound = unix_time(a.get("requested_at")), a.get("bound_t")
            if isinstance(req, (int, float)) and isinstance(bound, (int, float)):
                parts["toClaim"].append(req - pushed[i])
                parts["toBound"].append(bound - req)
                parts["toHandoff"].append(got[i]["t"] - bound)
                # A cold claim's sandbox is named after the claim.
                parts["coldBound" if got[i].get("sandbox") == got[i].get("claim")
                      else "warmBound"].append(bound - req)
        warm = d.metric_sum("agentscaler_dispatch_claims_total", launch="warm",
                            outcome="ready") or 0
        cold = d.metric_sum("agentscaler_dispatch_claims_total", launch="cold",
                            outcome="ready") or 0
        dup = ar.events("duplicate")
        return {"tasks": len(rows), "received": len(got), "duplicates": len(dup),
                "waitP50": percentile(waits, 50), "waitP95": percentile(waits, 95),
                "waitMax": max(waits), "warmClaims": warm, "coldClaims": cold,
                "warmHitRatio": warm / (warm + cold) if warm + cold else None,
                "peakSandboxes": peak[0], "sandboxSeconds": sbs,
                "parts": {k: [percentile(v, 50), percentile(v, 95)] for k, v in parts.items()}}
    finally:
        for f in reversed(stack):
            try:
                f()
            except Exception as e:     # cleanup goes on; say what failed
                print("sim_replay: cleanup: %s" % e, file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


def simulated(rows, cold_ms, bind_ms, speed, binary=None, policy="predictive", handoff=0.0):
    """The same scaled trace and pool through `agentscaler simulate --json`.
    handoff (s): added to the cold start and to the warm bind (the model has
    no hand-off step: its wait ends when the sandbox is Ready and bound)."""
    binary = binary or os.environ.get("AGENTSCALER_BIN",
                                      os.path.join(world.ROOT, "build", "release", "agentscaler"))
    tmp = tempfile.mkdtemp(prefix="sim-replay-")
    try:
        trace = os.path.join(tmp, "trace.jsonl")
        with open(trace, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        cfg = os.path.join(tmp, "pool.json")
        with open(cfg, "w") as f:
            json.dump(pool_config("redis://127.0.0.1:6379", 8888, speed, policy), f)
        out = subprocess.run([binary, "simulate", "--trace", trace, "--config", cfg,
                              "--policies", policy, "--static", "", "--cold-median",
                              "%.4f" % (cold_ms / 1000.0 + handoff), "--cold-sigma", "0",
                              "--warm-bind", "%.4f" % (bind_ms / 1000.0 + handoff),
                              "--grace", "0", "--json"],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out)["policies"][0]
        return {"tasks": r["tasks"], "waitP50": r["waitP50"], "waitP95": r["waitP95"],
                "waitMax": r["waitMax"], "warmHitRatio": r["adoptedRatio"],
                "readyHitRatio": r["warmHitRatio"],
                "peakSandboxes": r["peakSandboxes"],
                "sandboxSeconds": r["sandboxSecondsBusy"] + r["sandboxSecondsIdle"]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare(trace, speed=10.0, cold_ms=300, bind_ms=20, binary=None, policy="predictive",
            **where):
    """Live first, then the simulator twice: with the cluster's parameters
    (kube-sim's as set; on another API server, live(where), the medians the
    replay measured: claim -> bound of cold and of warm claims), and
    calibrated (the live hand-off's median, bound -> received, added to
    both latencies)."""
    rows = load_trace(trace, speed)
    got = live(rows, cold_ms, bind_ms, speed, binary, policy, **where)
    if where.get("kube") is not None:
        cold, warm = got["parts"]["coldBound"][0], got["parts"]["warmBound"][0]
        cold_ms = int(round(1000 * cold)) if cold is not None else cold_ms
        bind_ms = int(round(1000 * warm)) if warm is not None else bind_ms
    got["model"] = {"coldStartMs": cold_ms, "warmBindMs": bind_ms}
    h = got["parts"]["toHandoff"][0] or 0.0
    return {"live": got, "handoff": h,
            "simulated": simulated(rows, cold_ms, bind_ms, speed, binary, policy),
            "calibrated": simulated(rows, cold_ms, bind_ms, speed, binary, policy, h)}


def table(out):
    lines = ["%-11s %6s %8s %8s %8s %6s %7s %5s %8s" % (
        "side", "tasks", "p50_s", "p95_s", "max_s", "warm%", "ready%", "peak", "sbx_s")]
    for name in ("simulated", "calibrated", "live"):
        r = out[name]
        ready = r.get("readyHitRatio")
        lines.append("%-11s %6d %8.3f %8.3f %8.3f %6.1f %7s %5d %8.1f" % (
            name, r["tasks"], r["waitP50"], r["waitP95"], r["waitMax"],
            100.0 * (r["warmHitRatio"] or 0),
            "-" if ready is None else "%.1f" % (100.0 * ready), r["peakSandboxes"],
            r["sandboxSeconds"]))
    p = out["live"]["parts"]
    lines.append("live wait parts p50/p95 (s): LPUSH->claim %.3f/%.3f, claim->bound %.3f/%.3f, "
                 "bound->received %.3f/%.3f; calibrated adds %.3f s to cold start and bind" % (
                     tuple(p["toClaim"] + p["toBound"] + p["toHandoff"]) + (out["handoff"],)))
    lines.append("model: cold start %d ms, warm bind %d ms" % (
        out["live"]["model"]["coldStartMs"], out["live"]["model"]["warmBindMs"]))
    return "\n".join(lines)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--speed", type=float, default=10.0)
    ap.add_argument("--cold-start-ms", type=int, default=300)
    ap.add_argument("--warm-bind-ms", type=int, default=20)
    ap.add_argument("--policy", default="predictive")
    ap.add_argument("--bin", help="agentscaler (default $AGENTSCALER_BIN or build/release)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    out = compare(a.trace, a.speed, a.cold_start_ms, a.warm_bind_ms, a.bin, a.policy)
    print(json.dumps(out) if a.json else table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
