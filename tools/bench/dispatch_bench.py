#!/usr/bin/env python3
"""make bench: dispatch mode, task on the queue to task in a sandbox's inbox.

Method.  One redis-server, one kube-sim (with its agent-sandbox controller)
and one agentscaler (release build) on loopback, a fresh set for each phase.
One AgentPool in dispatch mode reads the Redis list `tasks` and claims from
the SandboxWarmPool `wp`; spare.min = spare.max = the pool size, so its
sizing keeps the warm pool at that size.  agentscaler runs with --kube-qps
5000 --kube-burst 5000: at the default 20 requests/s its own client-side
limiter would be the figure (one claim POST per task).  Before the trials a
warm-up task is handed off and the bench waits until every member of the
pool is Ready again.

The hand-off is observed from outside: a dedicated RESP connection in a
thread PSUBSCRIBEs __keyspace@0__:agentscaler:inbox:* (after CONFIG SET
notify-keyspace-events to the union of the server's current flags and K, l;
agentscaler adds its own flags the same way) and stamps each notification
with time.monotonic() as it is read.  The inbox key is mapped back to its
task by LRANGE (one task per sandbox; the body carries agentscaler.id).

1. Warm hand-off latency: n sequential trials, 10-30 ms apart; each LPUSHes
   one task, taking time.monotonic() just before the write, and waits for
   its inbox notification.  With kube-sim --warm-bind-ms 0 the figure is the
   mechanics of agentscaler + kube-sim + redis (LMOVE, claim POST, the
   controller's bind and Ready in one status write, the watch event, the
   hand-off EVAL); with kube-sim's default 50 ms bind delay it adds the
   controller reaction that agent-sandbox's own target is about.  Each trial
   is split at two outside marks: kube-sim's arrival time of the claim POST
   (its request log stamps time.monotonic(), the same clock) and a claim
   watch of the bench's own seeing the claim bound and Ready.
2. Throughput: a fresh world whose warm pool has at least M members; one
   LPUSH carries M tasks; tasks/s = M / (last inbox notification - the push).
   CPU per task = utime+stime from /proc/<pid>/stat (clock ticks) of each
   process, after minus before, over M.  The pool's refills (each adopted
   member is replaced, Ready after --cold-start-ms) happen inside the window,
   as they would in a cluster.
3. agentscaler's own view from /metrics: agentscaler_dispatch_handoff_seconds
   (message taken off the list to the hand-off EVAL answered) with p50/p99
   interpolated inside its buckets, and claims by launch type.

All processes share the machine's cores with the bench client.  kube-sim
is a Python simulator, not an API server plus controller on their own
machines: its CPU per task is printed beside agentscaler's so that the
bottleneck shows, and its cost per claim may grow with the objects it holds
(compare --members).
"""
import argparse
import http.client
import json
import os
import random
import re
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import world  # noqa: E402

NS = "default"
POOL = "bench"
QUEUE = "tasks"
INSTANCE = "bench"
INBOX_PATTERN = "__keyspace@0__:agentscaler:inbox:*"
CHANNEL_PREFIX = "__keyspace@0__:"
TICKS = os.sysconf("SC_CLK_TCK")


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def cpu_ticks(pid):
    """utime + stime of pid in clock ticks (fields 14 and 15 of /proc/<pid>/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        # The command name may hold spaces: count fields after its ')'.
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


class InboxWatch:
    """Keyspace notifications of every inbox list, stamped on arrival.

    A blocking RESP connection read by a daemon thread; close() shuts the
    socket down, which ends the thread's read."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")
        self.sock.sendall(world.Redis._encode(("PSUBSCRIBE", INBOX_PATTERN)))
        ack = world.Redis._read(self.f)
        if not ack or ack[0] != "psubscribe":
            raise RuntimeError("PSUBSCRIBE %s: unexpected reply %r" % (INBOX_PATTERN, ack))
        self.sock.settimeout(None)
        self.events = []           # (monotonic, inbox key, event), in arrival order
        self.cond = threading.Condition()
        self.error = None
        self.thread = threading.Thread(target=self._run, name="inbox-watch", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                m = world.Redis._read(self.f)
                t = time.monotonic()
                if isinstance(m, list) and len(m) == 4 and m[0] == "pmessage":
                    with self.cond:
                        self.events.append((t, m[2][len(CHANNEL_PREFIX):], m[3]))
                        self.cond.notify_all()
        except (OSError, ValueError) as e:
            with self.cond:
                self.error = str(e)
                self.cond.notify_all()

    def wait(self, pred, timeout):
        """Waits until pred(events) is truthy; returns it, or None at the timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                r = pred(self.events)
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0 or self.error is not None:
                    return None
                self.cond.wait(left)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(5)
        self.f.close()
        self.sock.close()


class ClaimWatch:
    """A watch of the namespace's SandboxClaims, as agentscaler's informer
    has one: stamps, per task id, when its claim was first seen bound to a
    sandbox with Ready=True.  The bench's own connection, read by a daemon
    thread; close() shuts it down."""

    def __init__(self, kube_url):
        u = urllib.parse.urlsplit(kube_url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        self.conn.request("GET", world.EXT_API % NS + "sandboxclaims?watch=1")
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise RuntimeError("watch of sandboxclaims: HTTP %d" % self.resp.status)
        self.conn.sock.settimeout(None)
        self.ready = {}            # task id -> monotonic time of the first Ready event
        self.thread = threading.Thread(target=self._run, name="claim-watch", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                line = self.resp.readline()
                t = time.monotonic()
                if not line:
                    return
                obj = (json.loads(line).get("object") or {})
                tid = ((obj.get("metadata") or {}).get("annotations") or {}).get(
                    "agentscaler.io/task-id")
                st = obj.get("status") or {}
                if tid and tid not in self.ready and (st.get("sandbox") or {}).get("name") \
                        and world.is_true(obj, "Ready"):
                    self.ready[tid] = t
        except (OSError, ValueError, http.client.HTTPException):
            return

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.thread.join(5)
        self.conn.close()


def enable_list_keyspace_events(redis):
    """CONFIG SET notify-keyspace-events to the union of what is on and K, l."""
    cur = redis.cmd("CONFIG", "GET", "notify-keyspace-events")[1]
    want = cur + "".join(c for c in "Kl" if c not in cur and not (c == "l" and "A" in cur))
    if want != cur:
        redis.cmd("CONFIG", "SET", "notify-keyspace-events", want)
    return redis.cmd("CONFIG", "GET", "notify-keyspace-events")[1]


def task_body(tid, i):
    return json.dumps({"id": tid, "payload": {"n": i}})


def inbox_ids(conn, key):
    """Task ids in one inbox list (the hand-off body is {"agentscaler": {...}, "task": ...})."""
    out = []
    for raw in conn.cmd("LRANGE", key, 0, -1) or []:
        try:
            out.append(json.loads(raw)["agentscaler"]["id"])
        except (ValueError, KeyError, TypeError):
            out.append("<unparsable: %.60s>" % raw)
    return out


def hist_from_metrics(m, name, pool=POOL):
    """[(le, cumulative count)] of a histogram of one pool, +Inf last."""
    out = []
    for k, v in m.items():
        if not k.startswith(name + "_bucket{") or 'pool="%s"' % pool not in k:
            continue
        le = re.search(r'le="([^"]+)"', k).group(1)
        out.append((float("inf") if le == "+Inf" else float(le), v))
    return sorted(out)


def hist_quantile(buckets, q):
    """Prometheus histogram_quantile: linear inside the bucket that holds rank q."""
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    rank = q * buckets[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def metric_by_label(m, name, label, pool=POOL):
    out = {}
    for k, v in m.items():
        if k.startswith(name + "{") and 'pool="%s"' % pool in k:
            g = re.search(r'%s="([^"]+)"' % label, k)
            if g:
                out[g.group(1)] = out.get(g.group(1), 0) + v
    return out


def metric_sum(m, name, pool=POOL):
    return sum(v for k, v in m.items()
               if (k == name or k.startswith(name + "{")) and 'pool="%s"' % pool in k)


class World:
    """redis-server + kube-sim + agentscaler for one phase, stopped by PID."""

    def __init__(self, args, members, warm_bind_ms):
        self.args = args
        self.members = members
        self.redis = self.kube = self.daemon = self.watch = self.conn = None
        try:
            self._start(warm_bind_ms)
        except BaseException:
            self.stop()
            raise

    def _start(self, warm_bind_ms):
        a = self.args
        self.redis = world.Redis()
        self.kube = world.KubeSim("--warm-bind-ms", str(warm_bind_ms),
                                  "--cold-start-ms", str(a.cold_start_ms))
        world.sandbox_pool(self.kube, "wp", replicas=self.members, timeout=60)
        self.seq0 = self._seq()
        pool = world.pool_dispatch(POOL, self.redis.url, QUEUE, "wp", claim_ttl_seconds=3600,
                                   spare_min=self.members, spare_max=self.members,
                                   cooldownSeconds=3600, pollIntervalMs=1000)
        if a.prefetch:
            pool["spec"]["source"]["prefetch"] = a.prefetch
        self.daemon = world.Daemon({"pools": [pool]}, self.kube, binary=a.bin,
                                   extra=["--instance", INSTANCE, "--kube-qps", "5000",
                                          "--kube-burst", "5000", "--log-level", "info"])
        world.wait_for(lambda: self._alive() and self.daemon.started(), 30, 0.05,
                       "agentscaler's /readyz")
        # Dispatch pools have no agentscaler_source_push gauge: the endpoint
        # logs when its keyspace-notification subscriber is live.
        world.wait_for(lambda: self._alive() and "push wake-ups via keyspace notifications"
                       in self.daemon.logs(), 15, 0.05, "push wake-ups on the source")
        self.flags = enable_list_keyspace_events(self.redis)
        self.watch = InboxWatch(self.redis.port)
        self.conn = world.RespConn(self.redis.url)
        self.conn.cmd("PING")
        # Warm-up: one task takes the first-claim costs (connections, the
        # sizing's first arrival) out of the figures; the member it adopted
        # is refilled and Ready again before anything is measured.
        self.conn.cmd("LPUSH", QUEUE, task_body("warmup-0", 0))
        if not self.watch.wait(lambda ev: ev, 30):
            raise AssertionError("the warm-up task was not handed off in 30 s\n" + self.log_tail())
        self.warmup_patches = self._pool_scale_writes()
        world.wait_for(lambda: self._pool_ready() == self.members, 60, 0.05,
                       "%d Ready members in the warm pool" % self.members)

    def _alive(self):
        if self.daemon.proc.poll() is not None:
            raise AssertionError("agentscaler exited %s:\n%s"
                                 % (self.daemon.proc.returncode, self.log_tail()))
        return True

    def _seq(self):
        reqs = self.kube.requests()
        return reqs[-1]["seq"] + 1 if reqs else 0

    def _pool_ready(self):
        """Ready members of the warm pool, or -1 while its spec is not at full size."""
        code, obj = self.kube.api("GET", world.EXT_API % NS + "sandboxwarmpools/wp")
        if code != 200 or (obj.get("spec") or {}).get("replicas") != self.members:
            return -1
        return (obj.get("status") or {}).get("readyReplicas", 0)

    def _pool_scale_writes(self):
        """kube-sim's records of agentscaler's writes of the pool's scale so far."""
        return [r for r in self.kube.requests(self.seq0)
                if r["method"] == "PATCH" and r["path"].endswith("sandboxwarmpools/wp/scale")]

    def report_setup_scaling(self, indent="  "):
        """Says whether agentscaler resized the pre-warmed pool before the trials."""
        if not self.warmup_patches:
            return
        moves = [json.loads(line).get("msg", "") for line in self.daemon.logs().splitlines()
                 if "spare" in line and "->" in line]
        print("%snote: agentscaler PATCHed the warm pool's scale %d time(s) during setup%s"
              % (indent, len(self.warmup_patches),
                 (": " + "; ".join(moves)) if moves else ""))

    def log_tail(self, n=20):
        lines = self.daemon.logs().splitlines() if self.daemon else []
        return "\n".join(lines[-n:])

    def complaints(self):
        """warn and error lines of agentscaler's log."""
        out = []
        for line in self.daemon.logs().splitlines():
            try:
                lv = json.loads(line).get("level")
            except ValueError:
                lv = "?"
            if lv in ("warn", "warning", "error", "fatal", "?"):
                out.append(line)
        return out

    def kube_requests(self, since):
        """kube-sim's request log since seq, counted by method and resource
        (namespaced paths: /.../namespaces/<ns>/<resource>[/<name>[/<sub>]])."""
        by = {}
        for r in self.kube.requests(since):
            parts = r["path"].strip("/").split("/")
            res = r["path"]
            if "namespaces" in parts:
                i = parts.index("namespaces")
                res = "/".join(parts[i + 2:i + 3] + parts[i + 4:i + 5]) or "namespaces"
            if "watch" in (r.get("query") or ""):
                res += " (watch)"
            key = "%s %s" % (r["method"], res)
            by[key] = by.get(key, 0) + 1
        return by

    def report_agentscaler_view(self, indent="  "):
        m = self.daemon.metrics()
        b = hist_from_metrics(m, "agentscaler_dispatch_handoff_seconds")
        n = b[-1][1] if b else 0
        counts = []
        prev = 0
        for le, c in b:
            if c != prev:
                counts.append("%s:%d" % ("+Inf" if le == float("inf") else "%g" % (le * 1000), c - prev))
            prev = c
        print("%sagentscaler /metrics: handoff_seconds (dequeue -> inbox) n=%d  p50 ~%.2f ms  "
              "p99 ~%.2f ms (interpolated in buckets; per bucket, upper bound in ms: %s)"
              % (indent, n, hist_quantile(b, 0.5) * 1000, hist_quantile(b, 0.99) * 1000,
                 " ".join(counts)))
        launch = metric_by_label(m, "agentscaler_dispatch_claims_total", "launch")
        launch["failed"] = metric_by_label(m, "agentscaler_dispatch_claims_total",
                                           "outcome").get("failed", 0)
        print("%sclaims by launch (failed: any launch): %s;  handed off %d, dead letters %d, in flight %d"
              % (indent, ", ".join("%s %d" % kv for kv in sorted(launch.items())),
                 metric_sum(m, "agentscaler_dispatch_tasks_handed_off_total"),
                 metric_sum(m, "agentscaler_dispatch_dead_letters_total"),
                 metric_sum(m, "agentscaler_dispatch_tasks")))
        return launch

    def report_leftovers(self, indent="  "):
        rej = self.conn.cmd("LLEN", QUEUE + ".rejected")
        proc = self.conn.cmd("LLEN", "%s:processing:%s" % (QUEUE, INSTANCE))
        left = self.conn.cmd("LLEN", QUEUE)
        print("%squeue left %d, processing list %d, dead letters (%s.rejected) %d"
              % (indent, left, proc, QUEUE, rej))
        if rej:
            for r in self.conn.cmd("LRANGE", QUEUE + ".rejected", 0, 4):
                print("%s  dead letter: %.300s" % (indent, r))
        bad = self.complaints()
        print("%sagentscaler log: %d warn/error lines" % (indent, len(bad)))
        for line in bad[:10]:
            print("%s  %.400s" % (indent, line))

    def stop(self):
        if self.watch is not None:
            self.watch.close()
        if self.conn is not None:
            self.conn.close()
        if self.daemon is not None:
            rc = self.daemon.stop()
            if rc != 0:
                print("  agentscaler exit status %s; log tail:\n%s" % (rc, self.log_tail()))
            self.daemon.cleanup()
        if self.kube is not None:
            self.kube.stop()
        if self.redis is not None:
            self.redis.stop()


def report_split(w, seq, pushed, ready):
    """Splits each trial at two outside marks: kube-sim's arrival time of the
    claim POST (its request log, time.monotonic() of the same clock) and the
    bench's own claim watch seeing the claim bound and Ready."""
    posts = [r["mono"] for r in w.kube.requests(seq)
             if r["method"] == "POST" and r["path"].endswith("/sandboxclaims")]
    a, b, c = [], [], []
    j = 0
    for i, (tid, t0, t_inbox) in enumerate(pushed):
        while j < len(posts) and posts[j] < t0:
            j += 1
        if j >= len(posts) or tid not in ready or posts[j] > t_inbox:
            continue
        a.append((posts[j] - t0) * 1000.0)
        b.append((ready[tid] - posts[j]) * 1000.0)
        c.append((t_inbox - ready[tid]) * 1000.0)
    if not a:
        print("  (no trial could be split)")
        return
    print("  split of n=%d trials (ms)            p50      p99      max" % len(a))
    for label, xs in (("a. LPUSH -> claim POST at kube-sim", a),
                      ("b. POST -> claim Ready on a watch ", b),
                      ("c. Ready on a watch -> inbox      ", c)):
        print("    %s %8.2f %8.2f %8.2f" % (label, pct(xs, 50), pct(xs, 99), max(xs)))
    print("    a = redis notification, agentscaler's wake-up, LMOVE, parse, POST sent and read by")
    print("    kube-sim; c = the watch event to agentscaler, parse, hand-off EVAL, redis")
    print("    notification to the bench.  a and c are agentscaler's share plus redis-server,")
    print("    kube-sim's HTTP threads and the bench's Python threads (c is measured against")
    print("    the bench's own watch, which kube-sim may serve before or after agentscaler's):")
    print("    upper bounds of its overhead on a shared 2-core box, not its own time.")


def latency_phase(args, warm_bind_ms):
    w = World(args, args.members, warm_bind_ms)
    try:
        print("  setup: %d Ready warm members; notify-keyspace-events %r; warm-up handed off"
              % (w.members, w.flags))
        w.report_setup_scaling()
        pids = (w.daemon.proc.pid, w.kube.proc.pid, w.redis.proc.pid)
        c0 = [cpu_ticks(p) for p in pids]
        seq = w._seq()
        cw = ClaimWatch(w.kube.url) if not args.no_split else None
        lat, lost, pushed = [], [], []
        seen = len(w.watch.events)
        t_start = time.monotonic()
        for i in range(args.trials):
            time.sleep(random.uniform(0.01, 0.03))
            tid = "lat-%d" % i
            body = task_body(tid, i)
            t0 = time.monotonic()
            w.conn.cmd("LPUSH", QUEUE, body)
            found = None
            while found is None:
                ev = w.watch.wait(lambda evs: len(evs) > seen, args.trial_timeout)
                if not ev:
                    break
                t, key, _ = w.watch.events[seen]
                seen += 1
                if tid in inbox_ids(w.conn, key):
                    found = t
            if found is None:
                lost.append(tid)
                if len(lost) >= 3:
                    print("  three tasks not handed off within %.0f s each; stopping this phase"
                          % args.trial_timeout)
                    break
                continue
            lat.append((found - t0) * 1000.0)
            pushed.append((tid, t0, found))
        wall = time.monotonic() - t_start
        c1 = [cpu_ticks(p) for p in pids]
        if lat:
            print("  task LPUSH -> inbox notification  n=%d  p50 %7.2f ms  p90 %7.2f ms  "
                  "p99 %7.2f ms  max %7.2f ms  (min %.2f ms)"
                  % (len(lat), pct(lat, 50), pct(lat, 90), pct(lat, 99), max(lat), min(lat)))
        if lost:
            print("  NOT handed off within %.0f s: %s" % (args.trial_timeout, ", ".join(lost)))
        if cw is not None:
            time.sleep(0.2)
            cw.close()
            report_split(w, seq, pushed, cw.ready)
        n = max(1, len(lat))
        cpu = [(b - a) * 1000.0 / TICKS / n for a, b in zip(c0, c1)]
        print("  CPU per trial (whole %.1f s run, idle gaps included): agentscaler %.2f ms, "
              "kube-sim %.2f ms, redis-server %.2f ms" % (wall, cpu[0], cpu[1], cpu[2]))
        reqs = w.kube_requests(seq)
        print("  kube-sim requests during the trials: %s"
              % ", ".join("%s %d" % kv for kv in sorted(reqs.items())))
        launch = w.report_agentscaler_view()
        w.report_leftovers()
        return lat, launch
    finally:
        w.stop()


def throughput_phase(args):
    members = max(args.members, args.tasks)
    w = World(args, members, 0)
    try:
        m = args.tasks
        print("  setup: %d Ready warm members (>= M = %d, so every claim can be warm); "
              "kube-sim --warm-bind-ms 0" % (members, m))
        w.report_setup_scaling()
        ids = ["tp-%d" % i for i in range(m)]
        bodies = [task_body(t, i) for i, t in enumerate(ids)]
        pids = (w.daemon.proc.pid, w.kube.proc.pid, w.redis.proc.pid)
        seq = w._seq()
        seen = len(w.watch.events)
        c0 = [cpu_ticks(p) for p in pids]
        t0 = time.monotonic()
        w.conn.cmd("LPUSH", QUEUE, *bodies, timeout=30)

        def done(evs):
            keys = {k for _, k, _ in evs[seen:]}
            return len(keys) >= m
        ok = w.watch.wait(done, args.throughput_timeout)
        c1 = [cpu_ticks(p) for p in pids]
        t_end = time.monotonic()
        evs = w.watch.events[seen:]
        first = {}
        for t, k, _ in evs:
            first.setdefault(k, t)
        if not first:
            print("  no hand-off at all within %.0f s" % args.throughput_timeout)
            w.report_leftovers()
            return None
        t_last = max(first.values())
        got = {}
        keys = list(first)
        for k in keys:
            for tid in inbox_ids(w.conn, k):
                got.setdefault(tid, []).append(k)
        handed = [t for t in ids if t in got]
        dup = [t for t in handed if len(got[t]) > 1]
        span = t_last - t0
        rate = len(handed) / span if span > 0 else float("nan")
        lat = sorted((first[got[t][0]] - t0) * 1000.0 for t in handed)
        if not ok:
            print("  only %d of %d tasks handed off within %.0f s" % (len(handed), m,
                                                                    args.throughput_timeout))
        print("  %d tasks in one LPUSH -> last inbox notification in %.3f s: %.0f tasks/s"
              % (len(handed), span, rate))
        if lat:
            print("  per task, push -> its inbox (queueing included): first %.1f ms, p50 %.1f ms, "
                  "p99 %.1f ms, last %.1f ms" % (lat[0], pct(lat, 50), pct(lat, 99), lat[-1]))
        if dup:
            print("  DUPLICATES: %d tasks in more than one inbox, e.g. %s" % (len(dup), dup[:5]))
        n = max(1, len(handed))
        cpu = [(b - a) * 1000.0 / TICKS for a, b in zip(c0, c1)]
        win = t_end - t0
        print("  CPU over the %.3f s window (utime+stime, %d ticks/s):" % (win, TICKS))
        for name, c in zip(("agentscaler", "kube-sim", "redis-server"), cpu):
            print("    %-12s %8.0f ms total  %6.3f ms/task  %5.1f%% of one core"
                  % (name, c, c / n, 100.0 * c / 1000.0 / win))
        tot = sum(cpu)
        if tot > 0:
            print("    share of the three processes' CPU: agentscaler %.0f%%, kube-sim %.0f%%, "
                  "redis-server %.0f%%" % (100 * cpu[0] / tot, 100 * cpu[1] / tot, 100 * cpu[2] / tot))
        if cpu[0] > 0 and cpu[1] > 0:
            print("    => at full use of one core each: agentscaler alone ~%.0f tasks/s, "
                  "kube-sim alone ~%.0f tasks/s (CPU-bound ceilings; measured %.0f tasks/s)"
                  % (n / (cpu[0] / 1000.0), n / (cpu[1] / 1000.0), rate))
        reqs = w.kube_requests(seq)
        print("  kube-sim requests in the window: %s"
              % ", ".join("%s %d" % kv for kv in sorted(reqs.items())))
        w.report_agentscaler_view()
        w.report_leftovers()
        return rate, cpu, n
    finally:
        w.stop()


def main():
    ap = argparse.ArgumentParser(description="dispatch-mode hand-off benchmark")
    ap.add_argument("--bin", default=os.path.join(world.ROOT, "build/release/agentscaler"))
    ap.add_argument("--trials", type=int, default=200, help="sequential latency trials per phase")
    ap.add_argument("--tasks", type=int, default=1000, help="M, tasks in the throughput burst")
    ap.add_argument("--members", type=int, default=500, help="warm pool size of the latency phases")
    ap.add_argument("--cold-start-ms", type=int, default=2000,
                    help="kube-sim's member start time (refills); 2000 is its default")
    ap.add_argument("--no-bind-delay-run", action="store_true",
                    help="skip the latency phase with kube-sim's default 50 ms bind delay")
    ap.add_argument("--no-latency", action="store_true", help="skip phases 1 and 1b")
    ap.add_argument("--no-throughput", action="store_true", help="skip phase 2")
    ap.add_argument("--no-split", action="store_true",
                    help="latency phases: no claim watch of the bench's own (no a/b/c split)")
    ap.add_argument("--prefetch", type=int, default=0,
                    help="source.prefetch of the pool (0: agentscaler's default, 32)")
    ap.add_argument("--trial-timeout", type=float, default=20.0)
    ap.add_argument("--throughput-timeout", type=float, default=90.0)
    args = ap.parse_args()
    if args.trials > args.members:
        ap.error("--trials must not exceed --members (every trial claims one warm member)")
    print(__doc__.strip())
    print()
    print("machine: %d CPUs, %s, load average %s" % (os.cpu_count(), os.uname().release,
                                                   " ".join("%.2f" % x for x in os.getloadavg())))
    print("anchors: agent-sandbox aims at ~50 ms claim latency and ~1,000 claims/s; agentscaler's")
    print("own overhead should be at most 1 ms p99 and never the bottleneck.")
    print()
    t_all = time.monotonic()
    lat0 = None
    if not args.no_latency:
        print("1. warm hand-off latency, kube-sim --warm-bind-ms 0 (agentscaler + kube-sim + redis "
              "mechanics only), %d members" % args.members, flush=True)
        lat0, _ = latency_phase(args, 0)
    if not args.no_latency and not args.no_bind_delay_run:
        print()
        print("1b. warm hand-off latency, kube-sim's default --warm-bind-ms 50 (a controller "
              "reaction delay on every claim), %d members" % args.members, flush=True)
        latency_phase(args, 50)
    res = None
    if not args.no_throughput:
        print()
        print("2. throughput, M = %d tasks pushed at once, prefetch %s" %
              (args.tasks, args.prefetch or "32 (default)"), flush=True)
        res = throughput_phase(args)
    print()
    print("reading the figures:")
    if lat0:
        print("- the end-to-end figures include kube-sim's controller; agentscaler's part is in "
              "rows a and c of the split (upper bounds: they include redis, kube-sim's HTTP "
              "threads and the bench's threads).")
    if res:
        rate, cpu, n = res
        print("- agentscaler's overhead is its CPU per task: %.3f ms mean (throughput phase, "
              "10 ms clock ticks over the window). Its p99 is not measured per task: it is bounded "
              "by the work of one event (an LMOVE reply, the claim POST, each of the claim's few "
              "watch events = parse one object + a hash lookup by task id, the hand-off EVAL, the "
              "LREM ack), none of which grows with the live tasks; only the 250 ms sweep walks "
              "them all." % (cpu[0] / n))
        print("- measured %.0f tasks/s against agent-sandbox's 1,000 claims/s aim; kube-sim used "
              "%.1f ms CPU per task vs agentscaler's %.3f ms (%.0fx)."
              % (rate, cpu[1] / n, cpu[0] / n, cpu[1] / cpu[0] if cpu[0] > 0 else float("inf")))
    print("(bench wall time %.0f s)" % (time.monotonic() - t_all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
