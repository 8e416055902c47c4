"""Scale mode from a Redis stream end to end: real redis-server + kube-sim +
the daemon, with a real consumer group.

Reuses the World base of test_scale_redis (one redis, one kube-sim, the
daemon, torn down by PID).  Waits are bounded polls; nothing asserts on
speed.
"""
import time
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402
from tests.integration.test_scale_redis import FAST, World, m  # noqa: E402


def info_field(redis, section, field):
    for line in redis.cmd("INFO", section).splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":", 1)[1])
    return None


class StreamTest(World):
    def xadd(self, stream, n):
        self.redis.pipeline([("XADD", stream, "*", "task", str(i)) for i in range(n)])

    def read_group(self, stream, group, consumer, n):
        """Delivers n entries to consumer without acknowledging them; their ids."""
        reply = self.redis.cmd("XREADGROUP", "GROUP", group, consumer, "COUNT", n,
                               "STREAMS", stream, ">")
        return [entry[0] for entry in reply[0][1]] if reply else []

    def metric(self, name, pool="p", **labels):
        return m(self.daemon, name, namespace="default", pool=pool, **labels)

    def test_scale_from_zero_with_pending_counted_and_back(self):
        self.redis.cmd("XGROUP", "CREATE", "tasks", "workers", "$", "MKSTREAM")
        self.kube.create_deployment("agents")
        self.start([world.pool_stream("p", self.redis.url, "tasks", "workers", "agents",
                                      count_in_flight=True, tasksPerReplica=2,
                                      maxReplicas=10, **FAST)])
        wait_for(lambda: self.daemon.started(), 20, what="pools started")
        self.assertEqual(self.kube.replicas("agents"), 0)

        self.xadd("tasks", 12)
        self.replicas_become("agents", 6)                       # ceil(12 / 2)
        wait_for(lambda: self.metric("agentscaler_pool_source_tasks", state="ready") == 12, 10, what="lag 12")

        # Delivered but not acknowledged: no longer lag, still work in flight.
        ids = self.read_group("tasks", "workers", "agent-1", 12)
        self.assertEqual(len(ids), 12)
        wait_for(lambda: self.metric("agentscaler_pool_source_tasks", state="in_flight") == 12, 10, what="pending 12")
        self.assertEqual(self.metric("agentscaler_pool_source_tasks", state="ready"), 0)
        time.sleep(1.5)                                         # past cooldown + window
        self.assertEqual(self.kube.replicas("agents"), 6)

        self.redis.cmd("XACK", "tasks", "workers", *ids[:8])
        self.replicas_become("agents", 2)                       # 4 pending / 2
        self.redis.cmd("XACK", "tasks", "workers", *ids[8:])
        self.replicas_become("agents", 0)
        self.assertEqual(self.metric("agentscaler_source_up"), 1)
        self.assertGreaterEqual(m(self.daemon, "agentscaler_pool_scale_writes_total",
                                  namespace="default", pool="p", direction="down"), 1)

    def test_missing_stream_reported_then_created(self):
        self.kube.create_deployment("agents")
        self.start([world.pool_stream("p", self.redis.url, "tasks", "workers", "agents", **FAST)])
        wait_for(lambda: "stream tasks does not exist" in self.daemon_logs, 15,
                 what="a missing-stream log line")
        wait_for(lambda: self.metric("agentscaler_source_up") == 0, 10, what="source_up 0")
        self.assertIn("cannot read the source", self.daemon_logs)
        # The pool's trouble, not the process's: ready (once the API is
        # reached, which under load may come after the source's first
        # error), and the body says it.
        code, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
            self.daemon.get("/readyz")), 15, what="/readyz 200")
        self.assertIn("default/p: source not read yet", body)

        # The stream without the group is still an error, naming the group.
        self.xadd("tasks", 3)
        wait_for(lambda: "stream tasks has no consumer group workers" in self.daemon_logs, 15,
                 what="a missing-group log line")
        self.assertEqual(self.kube.replicas("agents"), 0)
        # One connection throughout: reply errors never drop it.
        self.assertEqual(info_field(self.redis, "clients", "connected_clients"), 3)

        self.redis.cmd("XGROUP", "CREATE", "tasks", "workers", "0")
        self.replicas_become("agents", 3)
        wait_for(lambda: self.metric("agentscaler_source_up") == 1, 10, what="source_up 1")
        self.assertIn("source readable again", self.daemon_logs)

    def test_push_wakeups_on_xadd(self):
        self.redis.cmd("XGROUP", "CREATE", "tasks", "workers", "$", "MKSTREAM")
        self.kube.create_deployment("agents")
        self.start([world.pool_stream("p", self.redis.url, "tasks", "workers", "agents",
                                      pollIntervalMs=60000, cooldownSeconds=60,
                                      scaleDownStabilizationSeconds=60)])
        wait_for(lambda: self.metric("agentscaler_source_push") == 1, 15, what="push to be live")
        flags = self.redis.cmd("CONFIG", "GET", "notify-keyspace-events")[1]
        self.assertIn("t", flags)
        # With a 60 s poll, only a push wake-up can make this happen in time.
        self.xadd("tasks", 4)
        self.replicas_become("agents", 4, timeout=10)
        self.assertGreaterEqual(self.metric("agentscaler_source_wakeups_total"), 1)

    def test_list_and_stream_pools_share_one_connection(self):
        self.redis.cmd("XGROUP", "CREATE", "tasks-s", "workers", "$", "MKSTREAM")
        self.kube.create_deployment("agents-l")
        self.kube.create_deployment("agents-s")
        self.start([world.pool("l", self.redis.url, "tasks-l", "agents-l", **FAST),
                    world.pool_stream("s", self.redis.url, "tasks-s", "workers", "agents-s",
                                      **FAST)])
        wait_for(lambda: self.metric("agentscaler_source_push", "l") == 1 and
                 self.metric("agentscaler_source_push", "s") == 1, 15, what="both pushing")
        self.push("tasks-l", 2)
        self.xadd("tasks-s", 5)
        self.replicas_become("agents-l", 2)
        self.replicas_become("agents-s", 5)
        # The daemon's main connection and its one subscriber, plus this INFO.
        self.assertEqual(info_field(self.redis, "clients", "connected_clients"), 3)
        flags = self.redis.cmd("CONFIG", "GET", "notify-keyspace-events")[1]
        for c in "Kglt":
            self.assertIn(c, flags)


if __name__ == "__main__":
    unittest.main()
