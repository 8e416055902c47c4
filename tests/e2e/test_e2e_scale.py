"""Scale mode on the real control plane (issue 13): a Deployment scaled
0 -> N -> 0 from a Redis list and from a RabbitMQ queue, its pods made
Running and Ready by kwok; the daemon authenticates as the chart's
ServiceAccount under the real RBAC authorizer.

Facts come from the cluster (the Deployment's spec.replicas, the pods the
ReplicaSet controller made and kwok readied), not from our own metrics.
"""
import json
import unittest

from tests.e2e import kube  # noqa: E402
import world  # noqa: E402
from world import wait_for  # noqa: E402

FAST = dict(pollIntervalMs=200, cooldownSeconds=1, scaleDownStabilizationSeconds=1)


def ready_pods(k, ns, app):
    return sum(1 for p in k.pods(ns, "app=" + app)
               if p.get("status", {}).get("phase") == "Running" and
               not p["metadata"].get("deletionTimestamp") and
               any(c["type"] == "Ready" and c["status"] == "True"
                   for c in p.get("status", {}).get("conditions", [])))


def all_pods(k, ns, app):
    return len(k.pods(ns, "app=" + app))


class ScaleE2E(kube.E2ETestCase):
    prefix = "e2e-scale"

    def pool(self, name, source, target, **scaling):
        return {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentPool",
                "metadata": {"name": name, "namespace": self.ns},
                "spec": {"source": source,
                         "target": {"kind": "Deployment", "name": target},
                         "scaling": scaling}}

    def up_and_down(self, target, fill, drain, want):
        """The daemon scales target to want pods once fill() ran, and to
        none once drain() ran; the pods are real (ReplicaSet controller) and
        Ready (kwok)."""
        self.assertEqual(self.kube.replicas(target, self.ns), 0)
        fill()
        wait_for(lambda: self.kube.replicas(target, self.ns) == want, 60, 0.1,
                 "%s scaled to %d (log: %s)" % (target, want, self.daemon.logs()[-3000:]))
        wait_for(lambda: ready_pods(self.kube, self.ns, target) == want, 60, 0.2,
                 "%d pods of %s Running and Ready" % (want, target))
        drain()
        wait_for(lambda: self.kube.replicas(target, self.ns) == 0, 60, 0.1,
                 "%s scaled to zero" % target)
        wait_for(lambda: all_pods(self.kube, self.ns, target) == 0, 60, 0.2,
                 "the pods of %s gone" % target)

    def test_redis_list_zero_to_n_to_zero(self):
        redis = world.Redis()
        self.addCleanup(redis.stop)
        self.kube.create_deployment("agents", 0, self.ns)
        self.start_daemon({"pools": [self.pool(
            "p", {"type": "redis-list", "address": redis.url, "queue": "tasks"},
            "agents", tasksPerReplica=2, maxReplicas=5, **FAST)]})
        self.up_and_down(
            "agents",
            lambda: redis.pipeline([("LPUSH", "tasks", json.dumps({"id": "t%d" % i}))
                                    for i in range(7)]),
            lambda: redis.cmd("DEL", "tasks"), 4)       # ceil(7 / 2)

    def test_rabbitmq_zero_to_n_to_zero(self):
        rabbit = world.RabbitMQ()
        self.addCleanup(rabbit.stop)
        rabbit.declare("tasks")
        self.kube.create_deployment("agents", 0, self.ns)
        self.start_daemon({"pools": [self.pool(
            "p", {"type": "rabbitmq", "address": rabbit.amqp_url(), "queue": "tasks"},
            "agents", tasksPerReplica=1, maxReplicas=3, **FAST)]})
        self.up_and_down("agents", lambda: rabbit.publish("tasks", 5),
                         lambda: rabbit.purge("tasks"), 3)      # 5 clamped to 3


if __name__ == "__main__":
    unittest.main()
