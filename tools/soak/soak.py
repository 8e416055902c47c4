#!/usr/bin/env python3
"""Soak: agentscaler under an hour (--minutes) of mixed load and faults.

The world (tools/lib/world.py), all on loopback: redis-server (AOF on, so a
restart keeps the queues), rabbitmq-server, kube-sim with its sandbox
controller, the example agent runtime in every sandbox, and one agentscaler
(release build unless --bin) with four pools, each in its own namespace:

  soak-list    dispatch, redis-list   list-tasks     (agents spawn one child each, at the start of their work)
  soak-stream  dispatch, redis-stream stream-tasks   (group agentscaler)
  soak-rabbit  dispatch, rabbitmq     rabbit-tasks   (AMQP; inboxes read via management API)
  soak-scale   scale,    redis-stream scale-tasks -> Deployment workers (this script
               plays the workers: ready replicas x 2 tasks/s, XACK after the work)

A producer per source sends --rate tasks/s; one in --bad-every is invalid (five
kinds in turn: not JSON, no id, unknown parent, not UTF-8, not an object), each
carrying a unique token so that its dead letter can be matched.  Every
--fault-every seconds one fault, in rotation: redis-server restarted (down 3 s),
kube-sim 5xx burst, RabbitMQ stop_app/start_app (down 3 s), kube-sim paused
longer than the pools' readyTimeoutSeconds, every RabbitMQ connection closed.

Every minute one line: elapsed, tasks sent (roots + children spawned)/handed
off/dead-lettered/pending, the scale pool's sent/worked, the daemon's VmRSS,
open fds and live dispatch records (/status), and the faults of that minute.

At the end the producers stop, it waits (bounded by --drain) until nothing is
pending, and accounts for every task against what the real parts saw: handed
off exactly once (the agent runtimes' "received" events) or dead-lettered with
a reason (the <queue>.rejected list, stream and queue); lost, run twice,
delivered twice (deduped by the runtime), handed off and also dead-lettered.
Exit status 1 on any loss, double run or anomaly, 2 if the daemon died.

A send whose outcome is unknown (the broker went away mid-command) is not
counted as sent; if it turns up anyway it is accounted like any other.
Bounded in count and time, stops by itself, stops every process it started by
PID (also on Ctrl-C or SIGTERM).  Standard library only.
"""
import argparse
import base64
import collections
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "lib"))
import world  # noqa: E402
from jsonlines import Tail  # noqa: E402
from world import wait_for  # noqa: E402

READY_TIMEOUT = 20          # pools' readyTimeoutSeconds; the kube-sim pause lasts longer
PAUSE_EXTRA = 5
OUTAGE = 3                  # seconds a broker stays down on a restart
INSTANCE = "soak"
SOURCES = ("list", "stream", "rabbit")
NS = {"list": "soak-list", "stream": "soak-stream", "rabbit": "soak-rabbit"}
QUEUE = {"list": "list-tasks", "stream": "stream-tasks", "rabbit": "rabbit-tasks"}
PREFIX = {"list": "L", "stream": "S", "rabbit": "R"}
SCALE_NS, SCALE_Q, SCALE_GROUP, SCALE_TARGET = "soak-scale", "scale-tasks", "workers", "workers"
FAULTS = ("redis-restart", "kube-5xx", "rabbit-restart", "kube-pause", "rabbit-close")
TOKEN = re.compile(r"soak-[LSR]-bad-\d+")


def log(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


class Stop(Exception):
    pass


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


class Ledger:
    """What was sent, and what the agents saw (thread safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}                    # id or bad token -> (source, kind): "valid" or the bad kind
        self.uncertain = {}               # same, for sends whose outcome is unknown
        self.spawned = {}                 # child id -> source
        self.received = collections.Counter()
        self.duplicate = collections.Counter()
        self.dup_src = {}
        self.scale_sent, self.scale_uncertain = set(), set()
        self.scale_worked = collections.Counter()

    def add(self, what, key, source, kind):
        with self.lock:
            getattr(self, what)[key] = (source, kind)


BAD_KINDS = ("notJson", "missingId", "unknownParent", "invalidUtf8", "notObject")


def message(source, n, bad_every):
    """(key, kind, body bytes) of the n-th message of source."""
    p = PREFIX[source]
    if bad_every and n % bad_every == bad_every - 1:
        tok = "soak-%s-bad-%d" % (p, n)
        kind = BAD_KINDS[(n // bad_every) % len(BAD_KINDS)]
        body = {"notJson": b"{broken " + tok.encode(),
                "missingId": json.dumps({"no": tok}).encode(),
                "unknownParent": json.dumps({"id": tok, "parent": tok + "-none"}).encode(),
                "invalidUtf8": b"\xc3\x28 " + tok.encode(),
                "notObject": json.dumps([1, tok]).encode()}[kind]
        return tok, kind, body
    tid = "%s-%06d" % (p, n)
    return tid, "valid", json.dumps({"id": tid, "payload": {"n": n, "source": source}}).encode()


class Soak:
    def __init__(self, args):
        self.a = args
        self.stop = threading.Event()
        self.producing = threading.Event()
        self.ledger = Ledger()
        self.dir = tempfile.mkdtemp(prefix="soak-")
        self.redis = self.rabbit = self.kube = self.daemon = None
        self.runtimes = {}
        self.tails = {}
        self.threads = []
        self.fault_thread = None
        self.fault_log = []               # (start t, kind, outcome, duration), when over
        self.faults_shown = 0
        self.fault_lock = threading.Lock()
        self.samples = []                 # per-minute dicts
        self.dead_cache = {"list": 0, "stream": 0, "rabbit": 0}
        self.replicas = 0
        self.t0 = None

    # ------------------------------------------------------------ world

    def start_world(self):
        a = self.a
        rdir = os.path.join(self.dir, "redis")
        os.mkdir(rdir)
        self.redis = world.Redis(extra=["--dir", rdir, "--appendonly", "yes",
                                        "--appendfsync", "always"])
        log("redis-server   pid %d port %d (AOF on)" % (self.redis.proc.pid, self.redis.port))
        self.rabbit = world.RabbitMQ()
        log("rabbitmq       pid %d amqp %d mgmt %d" % (self.rabbit.proc.pid, self.rabbit.amqp_port,
                                                       self.rabbit.mgmt_port))
        self.kube = world.KubeSim("--cold-start-ms", "500", "--warm-bind-ms", "20")
        log("kube-sim       pid %d %s" % (self.kube.proc.pid, self.kube.url))
        for ns in list(NS.values()) + [SCALE_NS]:
            world.create_namespace(self.kube, ns)
        for s in SOURCES:
            world.sandbox_pool(self.kube, "wp", replicas=2, ns=NS[s])
        self.kube.create_deployment(SCALE_TARGET, 0, SCALE_NS)
        self.redis.cmd("XGROUP", "CREATE", QUEUE["stream"], "agentscaler", "0", "MKSTREAM")
        self.redis.cmd("XGROUP", "CREATE", SCALE_Q, SCALE_GROUP, "0", "MKSTREAM")
        self.rabbit.declare(QUEUE["rabbit"], durable=True)
        work = ("--work-jitter", str(a.work_ms))
        self.runtimes["list"] = world.AgentRuntime(
            self.kube, self.redis.url, namespace=NS["list"], work_ms=a.work_ms,
            publish_to="redis-list:" + QUEUE["list"], children=1, max_depth=1,
            extra=work + ("--spawn-at", "start"))
        self.runtimes["stream"] = world.AgentRuntime(
            self.kube, self.redis.url, namespace=NS["stream"], work_ms=a.work_ms, extra=work)
        self.runtimes["rabbit"] = world.AgentRuntime(
            self.kube, self.rabbit.http_url(), namespace=NS["rabbit"], work_ms=a.work_ms,
            extra=work)
        for s, rt in self.runtimes.items():
            self.tails[s] = Tail(rt.log_path)
            log("agent-runtime  pid %d namespace %s" % (rt.proc.pid, NS[s]))
        sandbox = {"readyTimeoutSeconds": READY_TIMEOUT}
        pools = []
        for s in SOURCES:
            addr = self.rabbit.amqp_url() if s == "rabbit" else self.redis.url
            p = world.pool_dispatch("d-" + s, addr, QUEUE[s], "wp", namespace=NS[s],
                                    consumer_group="agentscaler" if s == "stream" else None,
                                    claim_ttl_seconds=600, spare_min=2, spare_max=20,
                                    pollIntervalMs=200, cooldownSeconds=120)
            p["spec"]["sandbox"].update(sandbox)
            pools.append(p)
        sp = world.pool_stream("scale", self.redis.url, SCALE_Q, SCALE_GROUP, SCALE_TARGET,
                               count_in_flight=True, minReplicas=0, maxReplicas=8,
                               tasksPerReplica=4, cooldownSeconds=60,
                               scaleDownStabilizationSeconds=30, pollIntervalMs=500)
        sp["metadata"]["namespace"] = SCALE_NS
        pools.append(sp)
        self.daemon = world.Daemon({"pools": pools}, self.kube, binary=a.bin,
                                   extra=("--instance", INSTANCE, "--log-format", "text"))
        wait_for(lambda: self.daemon.started() if self.daemon.proc.poll() is None
                 else self.fail_daemon(), 60, 0.1, "the daemon's pools started")
        log("agentscaler    pid %d %s (log %s)" % (self.daemon.proc.pid, self.daemon.binary,
                                                   self.daemon.log_path))

    def fail_daemon(self):
        raise Stop("the daemon exited %s:\n%s" % (self.daemon.proc.returncode,
                                                  self.daemon.logs()[-3000:]))

    def stop_world(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)
        if self.fault_thread is not None:
            self.fault_thread.join(150)
        rc = None
        if self.daemon is not None:
            rc = self.daemon.stop()
            if rc != 0:
                log("agentscaler exited %s; end of its log:\n%s" % (rc, self.daemon.logs()[-4000:]))
        for rt in self.runtimes.values():
            rt.stop()
        if self.kube is not None:
            self.kube.stop()
        if self.rabbit is not None:
            self.rabbit.stop()
        if self.redis is not None:
            self.redis.stop()
        if not self.a.keep:
            for rt in self.runtimes.values():
                rt.cleanup()
            if self.daemon is not None:
                self.daemon.cleanup()
            shutil.rmtree(self.dir, ignore_errors=True)
        return rc

    # ------------------------------------------------------------ load

    def spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def send_rabbit(self, queue, body):
        """True when routed, False when refused, raises when unknown."""
        try:
            text = body.decode()
            payload = {"payload": text, "payload_encoding": "string"}
        except UnicodeDecodeError:
            payload = {"payload": base64.b64encode(body).decode(), "payload_encoding": "base64"}
        payload.update(properties={"delivery_mode": 2}, routing_key=queue)
        code, obj = self.rabbit.api("POST", "/api/exchanges/%2F/amq.default/publish", payload)
        if code == 200 and (obj or {}).get("routed"):
            return True
        if code in (400, 404):
            return False
        raise OSError("publish: %s %s" % (code, obj))

    def produce(self, source):
        """Sends --rate messages a second until producing stops."""
        conn = None if source == "rabbit" else world.RespConn(self.redis.url, timeout=3)
        n, step = 0, 1.0 / self.a.rate
        nxt = time.monotonic()
        while self.producing.is_set() and not self.stop.is_set():
            key, kind, body = message(source, n, self.a.bad_every)
            n += 1
            try:
                if source == "rabbit":
                    ok = self.send_rabbit(QUEUE[source], body)
                elif source == "list":
                    conn.cmd("LPUSH", QUEUE[source], body)
                    ok = True
                else:
                    conn.cmd("XADD", QUEUE[source], "*", "task", body)
                    ok = True
                if ok:
                    self.ledger.add("sent", key, source, kind)
            except (OSError, RuntimeError, ValueError) as e:
                # Perhaps applied before the connection went: not counted
                # as sent unless it turns up.
                self.ledger.add("uncertain", key, source, kind)
                del e
                self.stop.wait(0.5)
            nxt += step
            self.stop.wait(max(0.0, nxt - time.monotonic()))
            if time.monotonic() - nxt > 5:      # a long outage: do not burst afterwards
                nxt = time.monotonic()
        if conn is not None:
            conn.close()

    def produce_scale(self):
        conn = world.RespConn(self.redis.url, timeout=3)
        n, step = 0, 1.0 / self.a.rate
        nxt = time.monotonic()
        while self.producing.is_set() and not self.stop.is_set():
            tid = "W-%06d" % n
            n += 1
            try:
                conn.cmd("XADD", SCALE_Q, "*", "task", json.dumps({"id": tid}))
                with self.ledger.lock:
                    self.ledger.scale_sent.add(tid)
            except (OSError, RuntimeError):
                with self.ledger.lock:
                    self.ledger.scale_uncertain.add(tid)
                self.stop.wait(0.5)
            nxt += step
            self.stop.wait(max(0.0, nxt - time.monotonic()))
            if time.monotonic() - nxt > 5:
                nxt = time.monotonic()
        conn.close()

    def scale_workers(self):
        """The Deployment's agents: each ready replica works 2 tasks a second
        off the consumer group (pending entries first), XACK after the work."""
        conn = world.RespConn(self.redis.url, timeout=3)
        last_look = 0.0
        while not self.stop.is_set():
            if time.monotonic() - last_look > 1.0:
                last_look = time.monotonic()
                code, obj = self.kube.api("GET", "/apis/apps/v1/namespaces/%s/deployments/%s"
                                          % (SCALE_NS, SCALE_TARGET))
                if code == 200:
                    self.replicas = (obj.get("status") or {}).get("readyReplicas", 0)
            n = self.replicas
            if n:
                try:
                    for start in ("0", ">"):
                        r = conn.cmd("XREADGROUP", "GROUP", SCALE_GROUP, "w", "COUNT", n,
                                     "STREAMS", SCALE_Q, start)
                        entries = r[0][1] if r else []
                        if not entries:
                            continue
                        for eid, fields in entries:
                            body = dict(zip(fields[::2], fields[1::2])).get("task")
                            with self.ledger.lock:
                                self.ledger.scale_worked[json.loads(body)["id"]] += 1
                        conn.cmd("XACK", SCALE_Q, SCALE_GROUP, *[e[0] for e in entries])
                        break
                except (OSError, RuntimeError, ValueError, TypeError, IndexError):
                    self.stop.wait(0.5)
            self.stop.wait(0.5)
        conn.close()

    # ------------------------------------------------------------ faults

    def fault(self, kind):
        t = time.monotonic() - self.t0
        out = "ok"
        try:
            if kind == "redis-restart":
                self.redis.stop()
                self.stop.wait(OUTAGE)
                self.redis.start()
            elif kind == "rabbit-restart":
                self.rabbit.stop_app()
                self.stop.wait(OUTAGE)
                self.rabbit.start_app()
            elif kind == "rabbit-close":
                code, conns = self.rabbit.api("GET", "/api/connections")
                names = [c["name"] for c in (conns or [])] if code == 200 else []
                for name in names:
                    self.rabbit.api("DELETE", "/api/connections/" + urllib.parse.quote(name, safe=""))
                out = "%d connection(s) closed" % len(names)
            elif kind == "kube-5xx":
                self.kube.adm("POST", "/faults", [{"code": 503, "count": 40},
                                                  {"code": 500, "count": 40}])
                out = "80 requests failed"
            elif kind == "kube-pause":
                self.kube.adm("POST", "/pause")
                self.stop.wait(READY_TIMEOUT + PAUSE_EXTRA)
                self.kube.adm("POST", "/resume")
                out = "paused %d s" % (READY_TIMEOUT + PAUSE_EXTRA)
        except Exception as e:      # reported, and the run goes on
            out = "FAILED: %r" % e
        with self.fault_lock:
            self.fault_log.append((t, kind, out, time.monotonic() - self.t0 - t))

    # ------------------------------------------------------------ reading

    def read_events(self):
        led = self.ledger
        for s, tail in self.tails.items():
            for ev in tail.read():
                e = ev.get("event")
                with led.lock:
                    if e == "received":
                        led.received[ev["id"]] += 1
                    elif e == "duplicate":
                        led.duplicate[ev["id"]] += 1
                        led.dup_src[ev["id"]] = s
                    elif e == "spawned":
                        led.spawned[ev["id"]] = s

    def dead_counts(self):
        """Dead letters per source now (the last known count when a broker is down)."""
        try:
            self.dead_cache["list"] = self.redis.cmd("LLEN", QUEUE["list"] + ".rejected")
            self.dead_cache["stream"] = self.redis.cmd("XLEN", QUEUE["stream"] + ".rejected")
        except (OSError, RuntimeError):
            pass
        try:
            code, q = self.rabbit.api("GET", "/api/queues/%2F/" + QUEUE["rabbit"] + ".rejected")
            if code == 200:
                self.dead_cache["rabbit"] = q.get("messages", self.dead_cache["rabbit"])
        except OSError:
            pass
        return sum(self.dead_cache.values())

    def dead_records(self):
        """Every dead letter: [(source, record)]; raises when a broker does not answer."""
        out = []
        for r in self.redis.cmd("LRANGE", QUEUE["list"] + ".rejected", 0, -1):
            out.append(("list", json.loads(r)))
        for _eid, fields in self.redis.cmd("XRANGE", QUEUE["stream"] + ".rejected", "-", "+"):
            out.append(("stream", json.loads(dict(zip(fields[::2], fields[1::2]))["record"])))
        q = QUEUE["rabbit"] + ".rejected"
        code, info = self.rabbit.api("GET", "/api/queues/%2F/" + q)
        if code == 404:
            return out
        if code != 200:
            raise OSError("rabbit: %s" % code)
        # Read (and requeue) every message: the records stay on the queue.
        code, msgs = self.rabbit.api("POST", "/api/queues/%%2F/%s/get" % q,
                                     {"count": info.get("messages", 0) + 1000,
                                      "ackmode": "ack_requeue_true", "encoding": "auto"})
        if code != 200:
            raise OSError("rabbit get: %s" % code)
        for m in msgs:
            out.append(("rabbit", json.loads(m["payload"])))
        return out

    @staticmethod
    def dead_key(rec):
        """The task id or bad token a dead letter is about."""
        text = rec.get("original")
        if text is None and rec.get("originalBase64"):
            text = base64.b64decode(rec["originalBase64"]).decode(errors="replace")
        m = TOKEN.search(text or "")
        if m:
            return m.group(0)
        return rec.get("taskId")

    def daemon_stats(self):
        pid = self.daemon.proc.pid
        rss = fds = None
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
            fds = len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            pass
        live = deferred = None
        code, st = self.daemon.admin("/status")
        if code == 200:
            live = sum(sum(p.get("tasks", {}).values()) for p in st.get("dispatch", []))
            deferred = sum(n.get("deferred", 0) for n in st.get("namespaces", []))
        return rss, fds, live, deferred

    def tally(self):
        """(sent incl. children, handed off, dead, pending) from the cheap counts."""
        self.read_events()
        led = self.ledger
        dead = self.dead_counts()
        with led.lock:
            sent = len(led.sent) + len(led.spawned)
            handed = len(led.received)
            pending = sent - handed - dead
            scale = (len(led.scale_sent), len(led.scale_worked))
        return sent, handed, dead, pending, scale

    def minute_line(self, minute):
        sent, handed, dead, pending, scale = self.tally()
        rss, fds, live, deferred = self.daemon_stats()
        with self.fault_lock:                 # the faults that ended since the last line
            faults = self.fault_log[self.faults_shown:]
            self.faults_shown = len(self.fault_log)
        with self.ledger.lock:
            children = len(self.ledger.spawned)
        self.samples.append({"minute": minute, "rss": rss, "fds": fds, "live": live})
        log("[%3d min] sent %6d (%d children) handed-off %6d dead %5d pending %4d | "
            "scale sent %5d worked %5d replicas %d | rss %s KiB fds %s live %s deferred %s%s"
            % (minute, sent, children, handed, dead, pending, scale[0], scale[1], self.replicas,
               rss, fds, live, deferred,
               (" | faults: " + ", ".join("%s@%ds (%s)" % (k, t, o) for t, k, o, _d in faults))
               if faults else ""))

    # ------------------------------------------------------------ run

    def run(self):
        a = self.a
        self.start_world()
        self.t0 = time.monotonic()
        self.producing.set()
        for s in SOURCES:
            self.spawn(self.produce, s)
        self.spawn(self.produce_scale)
        self.spawn(self.scale_workers)
        log("load: %.1f tasks/s per source, 1 in %d invalid; a fault every %d s in rotation "
            "(%s); %d minute(s)" % (a.rate, a.bad_every, a.fault_every, ", ".join(FAULTS),
                                    a.minutes))
        duration = a.minutes * 60
        next_fault, k, minute = a.fault_every, 0, 1
        while True:
            now = time.monotonic() - self.t0
            if self.daemon.proc.poll() is not None:
                self.fail_daemon()
            if now >= minute * 60:
                self.minute_line(minute)
                minute += 1
            if now >= duration:
                break
            if now >= next_fault and (self.fault_thread is None or
                                      not self.fault_thread.is_alive()):
                kind = FAULTS[k % len(FAULTS)]
                k += 1
                next_fault += a.fault_every
                self.fault_thread = threading.Thread(target=self.fault, args=(kind,), daemon=True)
                self.fault_thread.start()
            time.sleep(0.2)
        self.producing.clear()
        log("producers stopped at %d s; draining (at most %d s)" % (now, a.drain))
        if self.fault_thread is not None:
            self.fault_thread.join(150)
        return self.drain()

    def drain(self):
        a = self.a
        deadline = time.monotonic() + a.drain
        done = False
        while time.monotonic() < deadline:
            if self.daemon.proc.poll() is not None:
                self.fail_daemon()
            sent, handed, dead, pending, scale = self.tally()
            _rss, _fds, live, _d = self.daemon_stats()
            if pending <= 0 and scale[0] <= scale[1] and live == 0:
                done = True
                break
            time.sleep(2)
        waited = a.drain - max(0, deadline - time.monotonic())
        time.sleep(1)      # a child spawned at the very end is logged before its parent finishes
        self.read_events()
        rss, fds, live, deferred = self.daemon_stats()
        self.samples.append({"minute": "end", "rss": rss, "fds": fds, "live": live})
        log("drained in %.0f s%s: rss %s KiB fds %s live %s deferred %s"
            % (waited, "" if done else " (TIMED OUT)", rss, fds, live, deferred))
        if live:
            code, st = self.daemon.admin("/status")
            for p in (st or {}).get("dispatch", []) if code == 200 else []:
                code, obj = self.kube.api("GET", world.EXT_API % p["namespace"] +
                                          "sandboxclaims")
                log("  still live in %s/%s: %s; claims left in the namespace: %s"
                    % (p["namespace"], p["name"], {k: v for k, v in p["tasks"].items() if v},
                       len(obj.get("items") or []) if code == 200 else "?"))
        return self.account(done)

    def account(self, drained):
        led = self.ledger
        for attempt in range(10):
            try:
                dead = self.dead_records()
                break
            except (OSError, RuntimeError) as e:
                err = e
                time.sleep(2)
        else:
            log("cannot read the dead letters: %r" % err)
            return 1
        by_key = collections.defaultdict(list)
        unmatched = []
        for src, rec in dead:
            key = self.dead_key(rec)
            if key is None:
                unmatched.append(rec)
            else:
                by_key[key].append(rec["reason"])
        with led.lock:
            expected = dict(led.sent)
            for cid, s in led.spawned.items():
                expected[cid] = (s, "valid")
            surfaced = 0
            for key, v in led.uncertain.items():
                if key in led.received or key in by_key:
                    expected[key] = v
                    surfaced += 1
            received, duplicate = dict(led.received), dict(led.duplicate)
        # A child whose publish reported failure may have arrived all the same.
        unknown = [i for i in set(received) | set(by_key) if i not in expected]
        late_children = [i for i in unknown if i.rpartition(".")[0] in expected]
        for i in late_children:
            expected[i] = (expected[i.rpartition(".")[0]][0], "valid")
        unknown = [i for i in unknown if i not in expected]
        ok_handed = ok_dead = 0
        lost, twice, both, dead_twice, bad_handed = [], [], [], [], []
        valid_dead = collections.Counter()
        reasons = collections.Counter()
        for key, (src, kind) in expected.items():
            nr, nd = received.get(key, 0), len(by_key.get(key, ()))
            for r in by_key.get(key, ()):
                reasons[r] += 1
            if nr > 1:
                twice.append(key)
            elif nr == 1 and nd == 0:
                if kind != "valid":
                    bad_handed.append(key)
                else:
                    ok_handed += 1
            elif nr == 0 and nd == 1:
                ok_dead += 1
                if kind == "valid":
                    valid_dead[by_key[key][0]] += 1
            elif nr == 0 and nd == 0:
                lost.append(key)
            elif nr == 1:
                both.append(key)
            else:
                dead_twice.append(key)
        redis_dups = [i for i in duplicate if led.dup_src.get(i) != "rabbit"]
        rabbit_dups = [i for i in duplicate if led.dup_src.get(i) == "rabbit"]
        with led.lock:
            s_sent = set(led.scale_sent) | (led.scale_uncertain & set(led.scale_worked))
            s_lost = sorted(s_sent - set(led.scale_worked))
            s_again = sum(1 for n in led.scale_worked.values() if n > 1)
            n_uncertain = len(led.uncertain) + len(led.scale_uncertain)

        log("")
        log("=== soak summary (%d min, faults every %d s) ===" % (self.a.minutes,
                                                                   self.a.fault_every))
        with self.fault_lock:
            fl = list(self.fault_log)
        log("faults: %d: %s" % (len(fl), "; ".join("%s@%ds %s (%.0fs)" % (k, t, o, d)
                                                  for t, k, o, d in fl)))
        mins = [x for x in self.samples if x["minute"] != "end" and x["rss"] is not None]
        if mins:
            first, last = mins[0], mins[-1]
            log("daemon RSS KiB: first minute %d, last minute %d, max %d, after drain %s"
                % (first["rss"], last["rss"], max(x["rss"] for x in mins), self.samples[-1]["rss"]))
            log("daemon open fds: first minute %d, last minute %d, max %d, after drain %s"
                % (first["fds"], last["fds"], max(x["fds"] for x in mins),
                   self.samples[-1]["fds"]))
            lv = [x["live"] for x in mins if x["live"] is not None]
            log("live dispatch records: first minute %s, last minute %s, max %s, after drain %s"
                % (lv[0] if lv else None, lv[-1] if lv else None, max(lv) if lv else None,
                   self.samples[-1]["live"]))
        n_valid = sum(1 for v in expected.values() if v[1] == "valid")
        log("dispatch tasks: %d (%d valid incl. %d children, %d invalid); sends of unknown "
            "outcome %d, of which %d turned up"
            % (len(expected), n_valid, len(led.spawned) + len(late_children),
               len(expected) - n_valid, n_uncertain, surfaced + len(late_children)))
        log("  handed off exactly once: %d; dead-lettered once: %d (valid ones among them: %s)"
            % (ok_handed, ok_dead, dict(valid_dead) or 0))
        log("  dead-letter reasons: %s" % dict(sorted(reasons.items())))
        log("  lost: %d %s" % (len(lost), sorted(lost)[:20]))
        log("  run twice: %d %s" % (len(twice), sorted(twice)[:20]))
        log("  delivered twice to an inbox, deduped by the runtime: redis %d %s, rabbitmq %d"
            % (len(redis_dups), sorted(redis_dups)[:20], len(rabbit_dups)))
        log("  handed off and dead-lettered: %d %s; dead-lettered twice: %d %s; invalid handed "
            "off: %d %s" % (len(both), both[:10], len(dead_twice), dead_twice[:10],
                            len(bad_handed), bad_handed[:10]))
        log("  dead letters matching no task: %d; tasks seen that were never sent: %d %s"
            % (len(unmatched), len(unknown), unknown[:10]))
        log("scale pool: %d sent, %d worked, lost %d %s, worked again after a lost ack %d"
            % (len(s_sent), len(set(led.scale_worked) & s_sent), len(s_lost), s_lost[:10],
               s_again))
        why = [w for w, c in (("lost", lost or s_lost), ("run twice", twice),
                              ("delivered twice on Redis", redis_dups),
                              ("handed off and dead-lettered", both),
                              ("dead-lettered twice", dead_twice),
                              ("invalid handed off", bad_handed),
                              ("unmatched dead letters", unmatched),
                              ("unknown tasks", unknown),
                              ("not drained (pending or live records left)", not drained)) if c]
        log("RESULT: %s" % ("FAIL: " + ", ".join(why) if why else
                            "PASS (every task accounted for)"))
        return 1 if why else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(world.ROOT, "build/release/agentscaler"))
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--fault-every", type=int, default=180, metavar="S",
                    help="seconds between faults (default 180)")
    ap.add_argument("--rate", type=float, default=2.0, help="tasks/s per source (default 2)")
    ap.add_argument("--bad-every", type=int, default=10, help="1 message in N is invalid")
    ap.add_argument("--work-ms", type=int, default=300, help="agents' work time (+ jitter)")
    ap.add_argument("--drain", type=int, default=240, help="most seconds to wait at the end")
    ap.add_argument("--keep", action="store_true", help="keep the logs and temporary files")
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit("soak: %s is not built (make build/release/agentscaler)" % a.bin)
    if not 0 < a.minutes <= 24 * 60 or a.rate <= 0 or a.rate > 50 or a.fault_every < 10:
        sys.exit("soak: --minutes in (0, 1440], --rate in (0, 50], --fault-every >= 10")
    signal.signal(signal.SIGTERM, on_sigterm)
    soak = Soak(a)
    rc = 1
    try:
        rc = soak.run()
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        rc = 130
    except Stop as e:
        log(str(e))
        rc = 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # let the clean-up finish
        drc = soak.stop_world()
        if drc not in (None, 0) and rc == 0:
            rc = 2
    return rc


if __name__ == "__main__":
    sys.exit(main())
