#!/usr/bin/env python3
"""make bench: reaction from zero, agentscaler beside the real KEDA operator
(issue 17), in one run on one real control plane.

Method.  tools/cluster's control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok; built from pinned Go modules)
on loopback, one redis-server and one rabbitmq-server, the KEDA operator
built by tools/cluster/keda/build.sh (`make keda`) and the agentscaler
daemon.  Each trial has a list (Redis) or a queue (RabbitMQ) of its own and
three Deployments at 0 replicas reading it:

  keda/default   a ScaledObject with KEDA's default pollingInterval (30 s)
  keda/poll-1s   a ScaledObject with pollingInterval: 1
  agentscaler    an AgentPool with the daemon's defaults (Redis: keyspace
                 notifications wake the pool; RabbitMQ: pollIntervalMs 1000)

All with minReplicaCount 0 / one task per replica.  Once every ScaledObject
is Ready and every pool started, each trial waits a random 0-30 s (so the
message lands at a random phase of KEDA's timers; trials run at the same
time, each on its own objects), takes time.time(), then writes one message
(LPUSH; AMQP publish).  The reaction of each system is the first write to
that Deployment's /scale subresource (KEDA: update, agentscaler: patch) in
the API server's audit log (stageTimestamp: the write answered) after the
message, and the Deployment's spec.replicas must then be above 0.  The
audit log is the API server's own record of the write, so the figure
includes each system's client and the API server, and no polling of ours.
A trial without such a write within --trial-timeout (60 s) fails: counted,
described and not dropped.

KEDA runs as the ServiceAccount keda/keda-operator under the RBAC its module
ships (config/rbac), with leader election, cert rotation (and so the
webhook and APIService patching) off; its metrics apiserver (the HPA's
external metrics source) and admission webhooks are not run: activation
0 -> 1 is the operator's own /scale write, and the HPA controller, which
would scale 1 -> N, is not started in this control plane.  The gRPC metrics
service the operator always starts is given a serving certificate on
loopback.  agentscaler runs as a ServiceAccount bound to cluster-admin.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import paths  # noqa: E402
paths.use("tools/cluster")
import world  # noqa: E402
from bench import pct  # noqa: E402  (tools/bench/bench.py)
from jsonlines import Tail  # noqa: E402

NS = "default"
KEDA_NS, KEDA_SA = "keda", "keda-operator"
BENCH_NS, BENCH_SA = "agentscaler-bench", "agentscaler"
SYSTEMS = (("keda", "default"), ("keda", "poll-1s"), ("agentscaler", "defaults"))


def audit_time(stamp):
    """Seconds since the epoch of an audit timestamp ("...T19:50:01.123456Z")."""
    return datetime.strptime(stamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def scale_write(event):
    """(namespace, deployment, seconds) when event is an answered write to
    a Deployment's /scale, else None."""
    ref = event.get("objectRef") or {}
    if (event.get("stage") != "ResponseComplete" or event.get("verb") not in ("update", "patch")
            or ref.get("resource") != "deployments" or ref.get("subresource") != "scale"):
        return None
    if (event.get("responseStatus") or {}).get("code") != 200:
        return None
    return ref.get("namespace"), ref.get("name"), audit_time(event["stageTimestamp"])


class AuditTail:
    """Follows the API server's audit log (JSON lines, written before each
    answer is sent) and keeps every /scale write per Deployment."""

    def __init__(self, path):
        self.tail = Tail(path)
        self.writes = {}        # (ns, name) -> [(seconds, user)]
        self.lock = threading.Lock()

    def poll(self):
        for e in self.tail.read():
            w = scale_write(e)
            if w:
                with self.lock:
                    self.writes.setdefault(w[:2], []).append(
                        (w[2], e.get("user", {}).get("username")))

    def first_after(self, ns, name, t):
        """(seconds, user) of the first /scale write of ns/name at or after t."""
        with self.lock:
            later = [w for w in self.writes.get((ns, name), []) if w[0] >= t]
        return min(later) if later else None


def objname(system, setting, source, i):
    tag = {"default": "k30", "poll-1s": "k1"}.get(setting, "as")
    return "%s-%s-%d" % (tag, source, i)


def scaled_object(name, setting, trigger):
    spec = {"scaleTargetRef": {"name": name}, "minReplicaCount": 0, "maxReplicaCount": 10,
            "triggers": [trigger]}
    if setting == "poll-1s":
        spec["pollingInterval"] = 1
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def keda_trigger(source, q, redis, rabbit):
    if source == "redis":
        return {"type": "redis", "metadata": {"address": "127.0.0.1:%d" % redis.port,
                                              "listName": q, "listLength": "1"}}
    return {"type": "rabbitmq",
            "metadata": {"host": "amqp://guest:guest@127.0.0.1:%d/%%2F" % rabbit.amqp_port,
                         "protocol": "amqp", "queueName": q, "mode": "QueueLength",
                         "value": "1"}}


def condition(obj, kind):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return {}


class Keda:
    """The KEDA operator on the cluster: its CRDs and RBAC (from build/keda,
    copied from the module cache by build.sh), a ServiceAccount token, a
    serving certificate for its gRPC metrics service."""

    def __init__(self, c, keda_dir):
        import cluster as cluster_mod
        self.c, self.dir = c, tempfile.mkdtemp(prefix="keda-bench-")
        c.create_namespace(KEDA_NS)
        for sub in ("crds", "rbac"):
            d = os.path.join(keda_dir, sub)
            for f in sorted(os.listdir(d)):
                c.kubectl("apply", "--server-side", "-f", os.path.join(d, f))
        world.wait_for(lambda: condition(c.api(
            "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
            "scaledobjects.keda.sh")[1], "Established").get("status") == "True",
            60, 0.1, "ScaledObject CRD established")
        kc = cluster_mod._kubeconfig(os.path.join(self.dir, "keda.kubeconfig"), c.url, c.ca,
                                     c.token_for(KEDA_NS, KEDA_SA),
                                     "system:serviceaccount:%s:%s" % (KEDA_NS, KEDA_SA))
        certs = os.path.join(self.dir, "certs")
        os.makedirs(certs)
        import certs as certs_mod
        ca = certs_mod.make_ca(certs, "keda-ca")
        crt, key = cluster_mod._server_cert(certs, ca, "keda-operator",
                                            ["IP:127.0.0.1", "DNS:localhost"])
        for src, dst in ((ca[0], "ca.crt"), (crt, "tls.crt"), (key, "tls.key")):
            os.replace(src, os.path.join(certs, dst))
        # Its scalers' extra CA certificates: none (an empty directory; the
        # default /custom/ca is a container path).
        cas = os.path.join(self.dir, "ca")
        os.makedirs(cas)
        probe = world.free_port()
        self.probe = "http://127.0.0.1:%d/readyz" % probe
        env = dict(os.environ, KUBECONFIG=kc, KEDA_CLUSTER_OBJECT_NAMESPACE=KEDA_NS,
                   POD_NAMESPACE=KEDA_NS, WATCH_NAMESPACE="")
        self.log_path = os.path.join(self.dir, "keda-operator.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([
            os.path.join(keda_dir, "bin", "keda-operator"),
            "--leader-elect=false", "--enable-cert-rotation=false",
            "--enable-webhook-patching=false", "--enable-apiservice-patching=false",
            "--metrics-bind-address", "127.0.0.1:%d" % world.free_port(),
            "--health-probe-bind-address", "127.0.0.1:%d" % probe,
            "--metrics-service-bind-address", "127.0.0.1:%d" % world.free_port(),
            "--cert-dir", certs, "--ca-dir", cas, "--zap-log-level", "info"],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True)
        world.wait_for(self.ready, 90, 0.2, "keda-operator /readyz")

    def ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("keda-operator exited %s: %s" % (self.proc.returncode,
                                                                self.tail()))
        return world.http("GET", self.probe)[0] == 200

    def tail(self, n=3000):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-n:]

    def errors(self):
        """The operator's log lines at level error (it logs JSON lines)."""
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return [ln.decode(errors="replace") for ln in f if b'"level":"error"' in ln]

    def stop(self):
        world.stop_pid(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def run(args, keda_dir):
    import cluster as cluster_mod
    sources = args.sources.split(",")
    t_start = time.monotonic()
    c = cluster_mod.Cluster(nodes=1).start()
    redis = rabbit = keda = daemon = None
    tokdir = tempfile.mkdtemp(prefix="keda-bench-token-")
    try:
        print("cluster up in %.1f s" % (time.monotonic() - t_start), flush=True)
        redis = world.Redis() if "redis" in sources else None
        rabbit = world.RabbitMQ() if "rabbitmq" in sources else None
        keda = Keda(c, keda_dir)
        print("keda-operator ready at %.1f s" % (time.monotonic() - t_start), flush=True)
        trials = [(s, i) for s in sources for i in range(args.trials)]
        pools = []
        for s, i in trials:
            q = "q-%s-%d" % (s, i)
            if s == "rabbitmq":
                rabbit.declare(q)
            for system, setting in SYSTEMS:
                name = objname(system, setting, s, i)
                c.create_deployment(name, 0, NS)
                if system == "keda":
                    code, obj = c.api("POST", "/apis/keda.sh/v1alpha1/namespaces/%s/scaledobjects"
                                      % NS, scaled_object(name, setting,
                                                          keda_trigger(s, q, redis, rabbit)))
                    if code != 201:
                        raise RuntimeError("create ScaledObject %s: %s %s" % (name, code, obj))
                elif s == "redis":
                    pools.append(world.pool(name, redis.url, q, name, maxReplicas=10))
                else:
                    pools.append(world.pool_rabbit(name, rabbit.amqp_url(), q, name,
                                                   maxReplicas=10))
        # The daemon as a ServiceAccount of its own (cluster-admin).
        c.create_namespace(BENCH_NS)
        code, obj = c.api("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "agentscaler-bench"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": BENCH_SA,
                          "namespace": BENCH_NS}]})
        if code not in (201, 409):
            raise RuntimeError("create ClusterRoleBinding: %s %s" % (code, obj))
        tok = os.path.join(tokdir, "token")
        with open(tok, "w") as f:
            f.write(c.token_for(BENCH_NS, BENCH_SA))
        daemon = world.Daemon({"pools": pools}, None, binary=args.bin, extra=[
            "--apiserver", c.url, "--ca-file", c.ca, "--token-file", tok,
            "--log-level", "warn"])
        world.wait_for(daemon.started, 60, 0.1, "the daemon's pools started")

        def keda_ready():
            code, obj = c.api("GET", "/apis/keda.sh/v1alpha1/namespaces/%s/scaledobjects" % NS)
            items = obj.get("items", []) if code == 200 else []
            return (len(items) == 2 * len(trials) and
                    all(condition(o, "Ready").get("status") == "True" for o in items))
        try:
            world.wait_for(keda_ready, 120, 0.5, "every ScaledObject Ready")
        except AssertionError:
            raise RuntimeError("ScaledObjects not Ready; keda-operator log: " + keda.tail())
        print("ready to measure at %.1f s: %d trials per (system, source), %d lists/queues"
              % (time.monotonic() - t_start, args.trials, len(trials)), flush=True)

        audit = AuditTail(c.audit_log)
        audit.poll()
        results = {}            # (system, setting, source) -> [ms or failure text]
        lock = threading.Lock()

        def trial(s, i):
            q = "q-%s-%d" % (s, i)
            time.sleep(random.uniform(0, args.spread))
            t_push = time.time()
            if s == "redis":
                redis.cmd("LPUSH", q, json.dumps({"id": "t"}))
            else:
                rabbit.publish(q, 1)
            names = [(sy, se, objname(sy, se, s, i)) for sy, se in SYSTEMS]
            deadline = time.monotonic() + args.trial_timeout
            got = {}
            while time.monotonic() < deadline and len(got) < len(names):
                for sy, se, name in names:
                    if name not in got:
                        w = audit.first_after(NS, name, t_push)
                        if w:
                            got[name] = w
                time.sleep(0.01)
            for sy, se, name in names:
                if name in got:
                    reps = c.replicas(name, NS)
                    out = ((got[name][0] - t_push) * 1000.0 if reps > 0 else
                           "%s: /scale written by %s but spec.replicas %d" % (
                               name, got[name][1], reps))
                else:
                    out = "%s: no /scale write within %.0f s of the message" % (
                        name, args.trial_timeout)
                with lock:
                    results.setdefault((sy, se, s), []).append(out)

        def tail_loop(stop):
            while not stop.is_set():
                audit.poll()
                time.sleep(0.005)
        stop = threading.Event()
        tailer = threading.Thread(target=tail_loop, args=(stop,), daemon=True)
        tailer.start()
        ts = [threading.Thread(target=trial, args=t) for t in trials]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        stop.set()
        tailer.join()
        return results, keda.errors(), time.monotonic() - t_start
    finally:
        if daemon is not None:
            daemon.stop()
            daemon.cleanup()
        if keda is not None:
            keda.stop()
        for x in (rabbit, redis):
            if x is not None:
                x.stop()
        c.stop()
        shutil.rmtree(tokdir, ignore_errors=True)


def table(results, sources):
    """The report: one line per (system, setting, source); percentiles over
    the trials that reacted, failures counted beside them."""
    lines = ["%-12s %-9s %-9s %6s %6s %10s %10s %10s" % (
        "system", "setting", "source", "trials", "failed", "p50 ms", "p99 ms", "max ms")]
    failures = []
    for system, setting in SYSTEMS:
        for s in sources:
            rs = results.get((system, setting, s), [])
            ok = [r for r in rs if not isinstance(r, str)]
            bad = [r for r in rs if isinstance(r, str)]
            failures += bad
            if ok:
                lines.append("%-12s %-9s %-9s %6d %6d %10.1f %10.1f %10.1f" % (
                    system, setting, s, len(rs), len(bad), pct(ok, 50), pct(ok, 99), max(ok)))
            else:
                lines.append("%-12s %-9s %-9s %6d %6d %10s %10s %10s" % (
                    system, setting, s, len(rs), len(bad), "-", "-", "-"))
    return lines, failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(world.ROOT, "build/release/agentscaler"))
    ap.add_argument("--keda-dir", default=os.path.join(world.ROOT, "build/keda"),
                    help="where tools/cluster/keda/build.sh put bin/, crds/ and rbac/")
    ap.add_argument("--trials", type=int, default=5, help="per source (each measures all three)")
    ap.add_argument("--sources", default="redis,rabbitmq")
    ap.add_argument("--spread", type=float, default=30.0,
                    help="each trial's message comes a random 0..SPREAD s after all are ready")
    ap.add_argument("--trial-timeout", type=float, default=60.0)
    args = ap.parse_args()
    print(__doc__.strip())
    print()
    keda_bin = os.path.join(args.keda_dir, "bin", "keda-operator")
    if not os.access(keda_bin, os.X_OK):
        print("SKIPPED: %s is not built (`make keda`; tools/cluster/keda/README.md)" % keda_bin)
        return 0
    import cluster as cluster_mod
    missing = cluster_mod.missing_binaries()
    if missing:
        print("SKIPPED: build/cluster/bin lacks %s (`make cluster`)" % ", ".join(missing))
        return 0
    print("machine: %d CPUs, %s; load average %.2f" % (os.cpu_count(), os.uname().release,
                                                       os.getloadavg()[0]))
    results, keda_errors, took = run(args, args.keda_dir)
    sources = args.sources.split(",")
    lines, failures = table(results, sources)
    print()
    print("reaction from zero: first message -> first /scale write (API server audit log)")
    for ln in lines:
        print(ln)
    print("each trial (ms, in the order the trials ended):")
    for system, setting in SYSTEMS:
        for s in sources:
            rs = results.get((system, setting, s), [])
            print("  %-12s %-9s %-9s %s" % (system, setting, s, " ".join(
                "FAILED" if isinstance(r, str) else "%.1f" % r for r in rs)))
    for f in failures:
        print("  FAILED: " + f)
    print("keda-operator log: %d lines at level error" % len(keda_errors))
    for ln in keda_errors[:10]:
        print("  " + ln.rstrip()[:300])
    print("(one run, %.0f s in all)" % took)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
