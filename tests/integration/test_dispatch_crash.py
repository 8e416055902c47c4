"""Crash safety of dispatch mode (issues 5 and 12): agentscaler is killed
with SIGKILL at random moments under load, 20 times, and restarted, on each
source type that dispatches: a Redis list, a Redis stream (consumer group)
and RabbitMQ (AMQP), where the broker also closes agentscaler's connection
at random moments between the kills, as a restart, a blip or a memory alarm
would.  Checked against what the real parts saw, not against our own
counters:

  - every valid task reached an agent exactly once (the agent runtime's
    log), or was dead-lettered with a true reason (read back from the
    source's dead-letter destination); every bad message is dead-lettered
    with the reason its content calls for, and nothing else is: no
    task.duplicate from a reconnect or a restart;
  - no task got two claims (kube-sim's request log: one 201 per task; the
    claims sampled throughout: one uid per task);
  - no claim outlived its TTL (claims sampled from kube-sim throughout);
  - each restarted process listed the claims before it created any.

Bounded: 20 kills (and 6 connection closes on RabbitMQ), 155 messages per
source, every wait has a timeout; loopback only.  The random moments come
from a seeded generator (printed) so a failure can be replayed with
AGENTSCALER_CRASH_SEED; AGENTSCALER_CRASH_LOGS=<dir> keeps every process's
log and the agents' events there.
"""
import calendar
import collections
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

NS = "default"
CLAIMS = world.EXT_API % NS + "sandboxclaims"
KILLS = 20
CLOSES = 6          # RabbitMQ: connections closed by the broker
TTL = 120
QUEUE = "tasks"
INSTANCE = "crash"
VALID = ["c-%03d" % i for i in range(150)]
# The bad messages and the one true reason each calls for.
BAD = [(b"{broken", "task.notJson"),
       (json.dumps({"no": "id"}).encode(), "task.missingId"),
       (json.dumps({"id": "orphan", "parent": "none"}).encode(), "cascade.unknownParent"),
       (json.dumps({"id": ""}).encode(), "task.badId"),
       (b"\xc3\x28", "task.invalidUtf8")]


def record_original(rec):
    """The original message of a dead-letter record, as bytes."""
    import base64
    if "originalBase64" in rec:
        return base64.b64decode(rec["originalBase64"])
    return rec.get("original", "").encode()


class RedisListSource:
    """The crash test's view of a dispatching source: how to put messages
    in, what its dead-letter destination holds, and what is left in it."""

    name = "redis-list"
    # The hand-off marker beside the queue keeps a hand-off repeated after a
    # crash from pushing twice.
    repeats_into_same_sandbox = False
    # A dead letter and the original's removal are one MULTI/EXEC.
    dead_letter_repeats_after_fault = False

    def __init__(self, test):
        self.redis = world.Redis()
        test.addCleanup(self.redis.stop)

    @property
    def inbox(self):
        return self.redis.url

    def pool(self, **kw):
        return world.pool_dispatch("p", self.redis.url, QUEUE, "wp", **kw)

    def push(self, msgs):
        self.redis.pipeline([("LPUSH", QUEUE, m) for m in msgs])

    def dead_count(self):
        return self.redis.cmd("LLEN", QUEUE + ".rejected")

    def dead_letters(self):
        return [json.loads(r) for r in self.redis.cmd("LRANGE", QUEUE + ".rejected", 0, -1)]

    def left(self):
        """What the source still holds, by name: all 0 once every message
        was acked."""
        return {"queued": self.redis.cmd("LLEN", QUEUE),
                "processing": self.redis.cmd("LLEN", "%s:processing:%s" % (QUEUE, INSTANCE))}


class RedisStreamSource(RedisListSource):
    """A stream read through the consumer group "agents", made at 0 before
    the producer writes (a group agentscaler makes starts at "$");
    dead letters go to the stream <queue>.rejected, field "record"."""

    name = "redis-stream"

    def __init__(self, test):
        super().__init__(test)
        self.redis.cmd("XGROUP", "CREATE", QUEUE, "agents", "0", "MKSTREAM")

    def pool(self, **kw):
        return world.pool_dispatch("p", self.redis.url, QUEUE, "wp", consumer_group="agents",
                                   **kw)

    def push(self, msgs):
        self.redis.pipeline([("XADD", QUEUE, "*", "task", m) for m in msgs])

    def dead_entries(self):
        return self.redis.cmd("XRANGE", QUEUE + ".rejected", "-", "+")

    def dead_count(self):
        return len(self.dead_entries())

    def dead_letters(self):
        out = []
        for _id, fields in self.dead_entries():
            f = dict(zip(fields[::2], fields[1::2]))
            out.append(json.loads(f["record"]))
        return out

    def left(self):
        info = self.redis.cmd("XINFO", "GROUPS", QUEUE)
        group = dict(zip(info[0][::2], info[0][1::2]))
        stream = self.redis.cmd("XINFO", "STREAM", QUEUE)
        last = dict(zip(stream[::2], stream[1::2]))["last-generated-id"]
        return {"pending": group["pending"],
                "undelivered": int(group["last-delivered-id"] != last)}


class RabbitSource:
    """A durable RabbitMQ queue, consumed over AMQP; dead letters go to the
    durable queue <queue>.rejected."""

    name = "rabbitmq"
    # The marker lives in agentscaler's memory: a crash between a hand-off
    # and its ack hands the task again to the same sandbox, whose reader
    # dedupes by message_id (README, "Where the hand-off marker lives").
    repeats_into_same_sandbox = True
    # A dead letter is a confirmed publish, then the original's ack: a
    # crash or a closed connection between the two (the ack not yet
    # confirmed by its fence, scalers/rabbitmq_consumer.c) brings the
    # original back, and it is dead-lettered again (README, "Where the
    # hand-off marker lives for RabbitMQ").  Only across such a fault.
    dead_letter_repeats_after_fault = True

    def __init__(self, test, broker):
        self.rabbit = broker
        for q in (QUEUE, QUEUE + ".rejected"):
            self.rabbit.delete(q)
        self.rabbit.declare(QUEUE, durable=True)
        self.closed = set()     # connection names closed so far
        self.closes = 0         # closes the broker carried out

    @property
    def inbox(self):
        return self.rabbit.http_url()

    def pool(self, **kw):
        return world.pool_dispatch("p", self.rabbit.amqp_url(), QUEUE, "wp", **kw)

    def push(self, msgs):
        for m in msgs:
            self.rabbit.publish_body(QUEUE, m)

    def dead_count(self):
        return self.rabbit.queue_info(QUEUE + ".rejected").get("messages", 0)

    def dead_letters(self):
        return [json.loads(b) for b in self.rabbit.take_all(QUEUE + ".rejected")]

    def left(self):
        info = self.rabbit.queue_info(QUEUE)
        return {"ready": info.get("messages_ready", -1),
                "unacked": info.get("messages_unacknowledged", -1)}

    def close_connections(self):
        """The broker closes every connection of agentscaler's it lists."""
        conns = self.rabbit.listed_connections(self.closed)
        self.closes += self.rabbit.close_connections(conns, self.closed)


@unittest.skipIf(os.environ.get("AGENTSCALER_WRAPPER"),
                 "20 restarts under valgrind take minutes; memory is checked by the ASan run")
class CrashWorld(unittest.TestCase):
    """kube-sim, the agent runtime and the daemons of one crash test; the
    subclass names its source (make_source)."""

    def setUp(self):
        # One token per daemon process, so kube-sim's request log says which
        # process sent each request.
        self.dir = tempfile.mkdtemp(prefix="crash-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        tokens = world.kube_tokens(self.dir, range(KILLS + 1))
        self.kube = world.KubeSim("--cold-start-ms", "200", "--warm-bind-ms", "5",
                                  "--tokens", tokens)
        self.kube.token = "test-token"
        self.addCleanup(self.kube.stop)
        self.daemons = []
        self.faults = []        # wall times of kills and broker closes
        self.source = self.make_source()

    def tearDown(self):
        keep = os.environ.get("AGENTSCALER_CRASH_LOGS")
        if keep:
            # Every process's log and the agents' events, for reading an
            # interleaving afterwards (pass or fail).
            os.makedirs(keep, exist_ok=True)
            for k, d in enumerate(self.daemons):
                with open(os.path.join(keep, "daemon-%02d.log" % k), "w") as f:
                    f.write(d.logs())
            if getattr(self, "runtime", None) is not None:
                with open(os.path.join(keep, "agents.json"), "w") as f:
                    json.dump(self.runtime.events(), f, indent=0)
        for d in self.daemons:
            if d.proc.poll() is None:
                rc = d.stop()
                if rc != 0:
                    print(d.logs()[-20000:], file=sys.stderr)
                self.assertEqual(rc, 0)
            d.cleanup()

    def start_daemon(self, cfg):
        k = len(self.daemons)
        d = world.Daemon(cfg, self.kube, extra=("--instance", INSTANCE, "--log-format", "text",
                                                "--token-file",
                                                os.path.join(self.dir, "token-%d" % k)))
        self.daemons.append(d)
        wait_for(lambda: d.get("/healthz")[0] == 200 if d.proc.poll() is None
                 else self.fail(d.logs()[-3000:]), 30, 0.02, "/healthz")
        return d

    def sample_claims(self, stop, seen_late, uids):
        """Records any claim found alive past its shutdownTime (+ 5 s for
        kube-sim's controller to act), and the uids of each task's claims."""
        while not stop.is_set():
            code, obj = self.kube.api("GET", CLAIMS)
            now = time.time()
            for c in (obj.get("items") or []) if code == 200 else []:
                md = c["metadata"]
                uids[(md.get("annotations") or {}).get("agentscaler.io/task-id")].add(md["uid"])
                st = ((c.get("spec") or {}).get("lifecycle") or {}).get("shutdownTime")
                if st and now > calendar.timegm(time.strptime(st, "%Y-%m-%dT%H:%M:%SZ")) + 5:
                    seen_late.append(md["name"])
            stop.wait(0.25)

    def between_kills(self, rnd):
        """What else happens while the daemon runs (the RabbitMQ test
        closes connections); seeded by rnd."""

    def log_lines(self, ids):
        """The daemons' log lines that name any of ids, in process order."""
        return "\n".join("%d: %s" % (k, ln) for k, dd in enumerate(self.daemons)
                         for ln in dd.logs().splitlines() if any(i and i in ln for i in ids))

    def dead_summary(self):
        return ["%s:%s" % (r["reason"], r.get("taskId")) for r in self.source.dead_letters()]

    def run_crash_test(self):
        seed = int(os.environ.get("AGENTSCALER_CRASH_SEED", random.randrange(1 << 30)))
        print("%s crash test seed %d" % (self.source.name, seed), file=sys.stderr)
        rnd = random.Random(seed)
        src = self.source
        world.sandbox_pool(self.kube, "wp", replicas=8)
        runtime = world.AgentRuntime(self.kube, src.inbox, work_ms=150,
                                     extra=("--work-jitter", "150"))
        self.addCleanup(runtime.cleanup)
        self.runtime = runtime
        cfg = {"pools": [src.pool(claim_ttl_seconds=TTL, spare_min=4, spare_max=30,
                                  pollIntervalMs=100, cooldownSeconds=600)]}
        msgs = [json.dumps({"id": t, "payload": {"i": i}}).encode() for i, t in enumerate(VALID)]
        for body, _reason in BAD:
            msgs.insert(rnd.randrange(len(msgs)), body)

        stop = threading.Event()
        late = []
        uids = collections.defaultdict(set)
        sampler = threading.Thread(target=self.sample_claims, args=(stop, late, uids),
                                   daemon=True)
        sampler.start()
        self.addCleanup(stop.set)

        def produce():
            for i in range(0, len(msgs), 8):
                src.push(msgs[i:i + 8])
                time.sleep(0.12)
        producer = threading.Thread(target=produce, daemon=True)
        d = self.start_daemon(cfg)
        producer.start()
        started = time.monotonic()
        for k in range(KILLS):
            self.between_kills(rnd)
            time.sleep(rnd.uniform(0.05, 0.6))
            self.faults.append(time.time())
            d.proc.kill()
            d.proc.wait()
            d.log.close()
            d = self.start_daemon(cfg)
        producer.join(60)
        self.assertFalse(producer.is_alive())

        def settled():
            got = set(runtime.received_ids())
            dead = src.dead_count()
            return len(got) + dead >= len(VALID) + len(BAD) and dead >= len(BAD)
        try:
            wait_for(settled, 120, 0.2, "every task handed off or dead-lettered")
        except AssertionError:
            self.fail("received %d/%d; dead letters %r; left in the source %r; daemon log:\n%s"
                      % (len(set(runtime.received_ids())), len(VALID), self.dead_summary(),
                         src.left(), d.logs()[-4000:]))
        received = set(runtime.received_ids())
        runtime.wait_finished(len(received), timeout=60)
        try:
            wait_for(lambda: not self.kube.api("GET", CLAIMS)[1].get("items"), 60, 0.2,
                     "every claim released")
        except AssertionError:
            left = self.kube.api("GET", CLAIMS)[1].get("items")
            ids = [c["metadata"]["annotations"].get("agentscaler.io/task-id") for c in left]
            self.fail("claims left: %s\nlog lines about them:\n%s" % (
                json.dumps([{"name": c["metadata"]["name"], "status": c.get("status"),
                             "meta": c["metadata"]} for c in left], indent=1)[:6000],
                self.log_lines(ids)[-6000:]))
        # Nothing left unacked in the source (read once every claim went:
        # a redelivery still on its way would be acked by then).
        wait_for(lambda: not any(src.left().values()), 30, 0.2,
                 "the source drained and acked (left: %r)" % (src.left(),))
        stop.set()
        sampler.join(5)

        # What the agents saw: each task at most once, nothing invented.
        counts = collections.Counter(runtime.received_ids())
        self.assertLessEqual(set(counts), set(VALID))
        self.assertEqual([t for t, n in counts.items() if n > 1], [])
        # A second hand-off of the same task is a second run only in another
        # sandbox; into the same one (a RabbitMQ hand-off repeated after a
        # crash before its ack) the reader dedupes it by message_id.
        dups = runtime.events("duplicate")
        two = [e["id"] for e in dups if e.get("first_sandbox") != e.get("sandbox")]
        self.assertEqual(two, [], "a task ran in two sandboxes: %r\nagents: %r\n"
                         "log lines about them:\n%s"
                         % (dups, [e for e in runtime.events() if e.get("id") in two],
                            self.log_lines(two)[-12000:]))
        if not src.repeats_into_same_sandbox:
            self.assertEqual([e["id"] for e in dups], [], "an inbox got the same task twice")
        # The dead-letter destination: each bad message once, with the reason
        # its content calls for; a valid task only if it never reached an
        # agent, and never for a reconnect or a restart (task.duplicate).
        recs = src.dead_letters()
        bad = collections.Counter(record_original(r) for r in recs
                                  if r.get("taskId") not in VALID)
        self.assertEqual(sorted(bad), sorted(b for b, _ in BAD), [r["reason"] for r in recs])
        twice = self.unexplained_repeats(recs)
        self.assertEqual(twice, [], "a bad message twice (kills and closes at %r)"
                         % (self.faults,))
        want = dict(BAD)
        for r in recs:
            self.assertTrue(r["reason"] and r["detail"], r)
            if r.get("taskId") not in VALID:
                self.assertEqual(r["reason"], want[record_original(r)], r)
        valid_dead = [r for r in recs if r.get("taskId") in VALID]
        ran_dead = [r["taskId"] for r in valid_dead if r["taskId"] in counts]
        self.assertEqual(ran_dead, [], "dead-lettered although it reached an agent: %r\n"
                         "agents: %r\nlog lines about them:\n%s"
                         % (valid_dead, [e for e in runtime.events() if e.get("id") in ran_dead],
                            self.log_lines(ran_dead)[-8000:]))
        self.assertEqual([r for r in valid_dead if r["reason"] == "task.duplicate"], [],
                         "task.duplicate caused by a restart or a reconnect")
        self.assertEqual(sorted(set(counts) | {r["taskId"] for r in valid_dead}), VALID,
                         "every valid task handed off or dead-lettered")
        # One claim per task: one 201 per task that got one, whatever the 409s.
        reqs = self.kube.requests()
        created = [r for r in reqs if r["method"] == "POST" and r["path"].endswith("/sandboxclaims")
                   and r["code"] == 201]
        self.assertEqual({t: u for t, u in uids.items() if len(u) > 1}, {},
                         "a task with two claims")
        self.assertGreaterEqual(len(created), len(counts))
        self.assertLessEqual(len(created), len(VALID), "claims created (409s adopt)")
        self.assertEqual(late, [], "claims alive past their TTL")
        # Each process listed claims before its first create (requests told
        # apart by each process's own token).
        for k in range(KILLS + 1):
            mine = [r for r in reqs if r.get("user") == "daemon-%d" % k
                    and "sandboxclaims" in r["path"]]
            lists = [r["seq"] for r in mine if r["method"] == "GET"
                     and "watch" not in str(r["query"])]
            posts = [r["seq"] for r in mine if r["method"] == "POST"]
            self.assertTrue(lists, "process %d never listed claims" % k)
            if posts:
                self.assertLess(min(lists), min(posts),
                                "process %d created a claim before listing" % k)
        # The logs say what was rebuilt: every process that made a claim, and
        # the last one (a process killed while starting, before its list
        # answered, made nothing and says nothing).
        for k, dd in enumerate(self.daemons):
            made = any(r.get("user") == "daemon-%d" % k and r["method"] == "POST"
                       and "sandboxclaims" in r["path"] for r in reqs)
            if made or k == KILLS:
                self.assertIn("rebuilt from claims", dd.logs(), "process %d" % k)
        print("%s crash test seed %d: %d tasks handed off once (%d repeated into the same "
              "sandbox), %d valid dead-lettered %r, %d bad dead-lettered, %d claims, %d kills%s, "
              "%.0f s" % (src.name, seed, len(counts), len(dups), len(valid_dead),
                          [r["reason"] for r in valid_dead], len(recs) - len(valid_dead),
                          len(created), KILLS, self.extra_summary(), time.monotonic() - started),
              file=sys.stderr)

    def extra_summary(self):
        return ""

    def unexplained_repeats(self, recs):
        """The bad messages dead-lettered more than once, but for the repeats
        the source allows: on RabbitMQ, a repeat made after a kill or a broker
        close that came after the record before it."""
        def wall(at):
            return calendar.timegm(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")) + \
                float("0" + at[19:].rstrip("Z"))
        times = collections.defaultdict(list)
        for r in recs:
            if r.get("taskId") not in VALID:
                times[record_original(r)].append(wall(r["at"]))
        out = []
        for body, ts in times.items():
            ts.sort()
            for a, b in zip(ts, ts[1:]):
                if not (self.source.dead_letter_repeats_after_fault and
                        any(a - 0.01 <= f <= b + 0.01 for f in self.faults)):
                    out.append(body)
        return out


class CrashTest(CrashWorld):
    def make_source(self):
        return RedisListSource(self)

    def test_kill_9_twenty_times_under_load(self):
        self.run_crash_test()


class StreamCrashTest(CrashWorld):
    def make_source(self):
        return RedisStreamSource(self)

    def test_stream_kill_9_twenty_times_under_load(self):
        self.run_crash_test()


class RabbitCrashTest(CrashWorld):
    """One broker for the class; the broker also closes the daemon's
    connection CLOSES times, at seeded moments between the kills."""

    rabbit = world.SharedRabbitMQ()

    @classmethod
    def setUpClass(cls):
        cls.rabbit.start()      # not called when the class is skipped

    @classmethod
    def tearDownClass(cls):
        cls.rabbit.stop()

    def make_source(self):
        self.close_at = None
        return RabbitSource(self, self.rabbit.broker)

    def between_kills(self, rnd):
        if self.close_at is None:
            self.close_at = set(rnd.sample(range(KILLS), CLOSES))
            self.round = 0
        if self.round in self.close_at:
            time.sleep(rnd.uniform(0.05, 0.4))
            self.faults.append(time.time())
            self.source.close_connections()
        self.round += 1

    def extra_summary(self):
        return ", %d connections closed by the broker" % self.source.closes

    def test_rabbitmq_kill_9_and_broker_closes_under_load(self):
        self.run_crash_test()


if __name__ == "__main__":
    unittest.main()
