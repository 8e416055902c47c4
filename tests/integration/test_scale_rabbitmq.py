"""Scale mode end to end with the rabbitmq source: real rabbitmq-server (one
per module, management plugin on) + kube-sim + the daemon, on loopback ports.

Each test uses its own queue names and its own kube-sim and daemon; the
broker is shared (it takes seconds to start).  Queues are declared, filled
and purged through the management API.  Waits are bounded polls; nothing
asserts on speed.  The management API counts a new queue only once its
first statistics are in (a few seconds), so the http tests allow for that.
"""
import os
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

FAST = dict(pollIntervalMs=100, cooldownSeconds=1, scaleDownStabilizationSeconds=0.5)


def m(daemon, name, **labels):
    """The sum of name's series with these labels (others summed over)."""
    return daemon.metric_sum(name, **labels)


# One broker for the whole module: starting one takes seconds.
RABBIT = world.SharedRabbitMQ()
setUpModule, tearDownModule = RABBIT.start, RABBIT.stop


class RabbitWorld(world.DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.rabbit = RABBIT.broker

    def setUp(self):
        super().setUp()
        self.kube = world.KubeSim("--replica-delay-ms", "50")
        self.addCleanup(self.kube.stop)

    @property
    def daemon_logs(self):
        return self.daemon.logs() if self.daemon else ""

    def start(self, pools):
        self.start_daemon({"pools": pools}, probe="/healthz")

    def _alive(self):
        return self.daemon.proc.poll() is None

    def replicas_become(self, name, want, timeout=30):
        wait_for(lambda: self.kube.replicas(name) == want, timeout, 0.02,
                 "deployment %s to have %d replicas (logs: %s)" % (name, want, self.daemon_logs[-2000:]))

    def metric(self, name, pool):
        return m(self.daemon, name, namespace="default", pool=pool)

    def tasks(self, state, pool="p"):
        """agentscaler_pool_source_tasks of the state (ready, in_flight)."""
        return m(self.daemon, "agentscaler_pool_source_tasks", namespace="default", pool=pool,
                 state=state)

    def queue(self, name):
        self.rabbit.declare(name)
        self.addCleanup(self.rabbit.delete, name)


class ScaleTest(RabbitWorld):
    def scale_0_n_0(self, address, queue):
        self.queue(queue)
        self.kube.create_deployment("agents")
        self.start([world.pool_rabbit("p", address, queue, "agents",
                                      tasksPerReplica=2, maxReplicas=10, **FAST)])
        wait_for(lambda: self.metric("agentscaler_source_up", "p") == 1, 30,
                 what="the source to be read (logs: %s)" % self.daemon_logs[-2000:])
        self.assertEqual(self.kube.replicas("agents"), 0)
        self.rabbit.publish(queue, 7)
        self.replicas_become("agents", 4)          # ceil(7 / 2)
        wait_for(lambda: self.tasks("ready") == 7, 15, what="backlog metric")
        self.rabbit.purge(queue)
        self.replicas_become("agents", 0)
        self.assertEqual(self.metric("agentscaler_source_up", "p"), 1)

    def one_connection(self):
        # The management API lists a connection once its first statistics are in.
        wait_for(lambda: len(self.rabbit.connections("agentscaler /")) == 1, 20,
                 what="one broker connection named after the vhost (have %r)" %
                 [c["name"] for c in self.rabbit.connections()])

    def test_amqp_scales_from_zero_and_back(self):
        self.scale_0_n_0(self.rabbit.amqp_url(), "e2e-amqp")
        # AMQP reads a declared queue at once: never an unreadable source.
        self.assertNotIn("cannot read the source", self.daemon_logs)
        self.one_connection()

    def test_http_scales_from_zero_and_back(self):
        self.scale_0_n_0(self.rabbit.http_url(), "e2e-http")
        self.assertEqual(self.rabbit.connections("agentscaler"), [])

    def test_http_in_flight_holds_replicas(self):
        """countInFlight over the management API: messages delivered and not yet
        acknowledged count, so agents still working are never scaled away
        (the AMQP transport cannot see them: KEDA #356, #638)."""
        self.queue("e2e-inflight")
        self.kube.create_deployment("agents")
        self.start([world.pool_rabbit("p", self.rabbit.http_url(), "e2e-inflight", "agents",
                                      count_in_flight=True, maxReplicas=10, **FAST)])
        self.rabbit.publish("e2e-inflight", 5)
        self.replicas_become("agents", 5)
        worker = world.AmqpConsumer(self.rabbit.amqp_port, "e2e-inflight", 3)
        self.addCleanup(worker.close)
        wait_for(lambda: self.tasks("in_flight") == 3, 20, what="in flight 3")
        self.assertEqual(self.tasks("ready"), 2)
        self.assertEqual(self.kube.replicas("agents"), 5)      # ready 2 + in flight 3
        self.rabbit.purge("e2e-inflight")                      # only ready messages go
        wait_for(lambda: self.tasks("ready") == 0, 20, what="backlog 0")
        self.replicas_become("agents", 3)
        # Evaluated past cooldown + stabilization (25 polls: 2.1 s at least).
        st = self.daemon.evaluated("p", 25)
        self.assertEqual(st["desiredReplicas"], 3, st)
        self.assertEqual(self.kube.replicas("agents"), 3)      # never below in flight
        worker.close()                                         # unacked: back to ready
        wait_for(lambda: self.tasks("ready") == 3, 20, what="requeued 3")
        self.assertEqual(self.kube.replicas("agents"), 3)
        self.rabbit.purge("e2e-inflight")
        self.replicas_become("agents", 0)

    def test_amqp_pools_share_one_connection(self):
        for q in ("share-a", "share-b", "share-c"):
            self.queue(q)
        for d in ("agents-a", "agents-b", "agents-c"):
            self.kube.create_deployment(d)
        self.start([world.pool_rabbit(q[-1], self.rabbit.amqp_url(), q, "agents-" + q[-1], **FAST)
                    for q in ("share-a", "share-b", "share-c")])
        self.rabbit.publish("share-a", 1)
        self.rabbit.publish("share-b", 2)
        self.rabbit.publish("share-c", 3)
        self.replicas_become("agents-a", 1)
        self.replicas_become("agents-b", 2)
        self.replicas_become("agents-c", 3)
        self.one_connection()


class MissingQueueTest(RabbitWorld):
    def missing_then_declared(self, address, queue):
        self.addCleanup(self.rabbit.delete, queue)
        self.kube.create_deployment("agents")
        self.start([world.pool_rabbit("p", address, queue, "agents", **FAST)])
        wait_for(lambda: self.metric("agentscaler_source_up", "p") == 0 and
                 (self.metric("agentscaler_source_errors_total", "p") or 0) > 0, 20,
                 what="source_up 0 for a missing queue")
        wait_for(lambda: "queue %s not found in vhost /" % queue in self.daemon_logs, 10,
                 what="a not-found log line")
        self.assertEqual(self.kube.replicas("agents"), 0)
        self.assertTrue(self._alive())
        self.rabbit.declare(queue)
        self.rabbit.publish(queue, 2)
        self.replicas_become("agents", 2)
        wait_for(lambda: self.metric("agentscaler_source_up", "p") == 1, 15, what="source_up back to 1")
        self.assertIn("source readable again", self.daemon_logs)

    def test_amqp_missing_queue_then_declared(self):
        self.missing_then_declared(self.rabbit.amqp_url(), "late-amqp")
        # The missing queue cost channel reopens, never a reconnect.
        wait_for(lambda: len(self.rabbit.connections("agentscaler /")) == 1, 20,
                 what="one broker connection")
        self.assertNotIn("connection lost", self.daemon_logs)
        self.assertEqual(self.daemon_logs.count("connected (vhost /"), 1)

    def test_http_missing_queue_then_declared(self):
        self.missing_then_declared(self.rabbit.http_url(), "late-http")


class OutageTest(RabbitWorld):
    def test_broker_restart_holds_then_recovers(self):
        self.queue("outage-q")
        self.kube.create_deployment("agents-a")
        self.kube.create_deployment("agents-h")
        self.start([world.pool_rabbit("a", self.rabbit.amqp_url(), "outage-q", "agents-a", **FAST),
                    world.pool_rabbit("h", self.rabbit.http_url(), "outage-q", "agents-h", **FAST)])
        self.rabbit.publish("outage-q", 3)
        self.replicas_become("agents-a", 3)
        self.replicas_become("agents-h", 3)
        self.rabbit.stop_app()
        try:
            wait_for(lambda: self.metric("agentscaler_source_up", "a") == 0 and
                     self.metric("agentscaler_source_up", "h") == 0, 20, what="source_up to drop")
            # Evaluated for longer than cooldown + stabilization (25 polls:
            # 2.1 s at least): an unreadable source holds.
            for pool in ("a", "h"):
                st = self.daemon.evaluated(pool, 25)
                self.assertEqual((st["lastReason"], st["desiredReplicas"]),
                                 ("source-error", 3), st)
            self.assertEqual(self.kube.replicas("agents-a"), 3)
            self.assertEqual(self.kube.replicas("agents-h"), 3)
        finally:
            self.rabbit.start_app()
        self.rabbit.declare("outage-q")     # not durable: gone with the restart
        self.rabbit.publish("outage-q", 5)
        self.replicas_become("agents-a", 5, timeout=60)
        self.replicas_become("agents-h", 5, timeout=60)
        self.assertIn("connection lost", self.daemon_logs)
        self.assertIn("source readable again", self.daemon_logs)


class ConfigTest(unittest.TestCase):
    def test_count_in_flight_over_amqp_is_refused(self):
        import json
        import subprocess
        import tempfile
        binary = os.environ.get("AGENTSCALER_BIN", os.path.join(world.ROOT, "build/release/agentscaler"))
        wrapper = os.environ.get("AGENTSCALER_WRAPPER", "").split()
        p = world.pool_rabbit("p", "amqp://127.0.0.1:5672/", "q", "x", count_in_flight=True)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "c.json")
            with open(path, "w") as f:
                json.dump({"pools": [p]}, f)
            r = subprocess.run(wrapper + [binary, "--check-config", "--config", path],
                               capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("countInFlight", r.stderr)
        self.assertIn("http://host:15672", r.stderr)


if __name__ == "__main__":
    unittest.main()
