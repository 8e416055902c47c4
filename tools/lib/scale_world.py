"""The world of the scale-pool integration tests (test_targets, test_adopt):
a real redis-server, kube-sim whose Deployments reach their replicas 50 ms
after a write, and the daemon (DaemonTestCase)."""
import json

from daemon_proc import DaemonTestCase
from kube_world import KubeSim
from procs import wait_for
from pools import pool_dispatch
from redis_server import Redis
from sandboxes import sandbox_pool


class RedisKubeTestCase(DaemonTestCase):
    """self.redis and self.kube (kube-sim run with KUBE_ARGS), made in setUp
    and stopped by cleanups; the subclass starts the daemon."""

    KUBE_ARGS = ("--replica-delay-ms", "50")

    def setUp(self):
        super().setUp()
        self.redis = Redis()
        self.addCleanup(self.redis.stop)
        self.kube = KubeSim(*self.KUBE_ARGS)
        self.addCleanup(self.kube.stop)

    def one_warm_dispatch_pool(self):
        """A SandboxWarmPool "wp" of one and a dispatch pool "agents" on the
        Redis list "tasks" claiming from it (no spares, TTL 600 s, 100 ms
        polls): the pools list of a config."""
        sandbox_pool(self.kube, "wp", replicas=1)
        return [pool_dispatch("agents", self.redis.url, "tasks", "wp", claim_ttl_seconds=600,
                              spare_max=0, pollIntervalMs=100)]

    def push(self, queue, n):
        """n tasks ({"id": "t-<i>"}) onto the Redis list queue."""
        self.redis.pipeline([("LPUSH", queue, json.dumps({"id": "t-%d" % i}))
                             for i in range(n)])

    def replicas_become(self, name, want, ns="default", timeout=20):
        """Waits (bounded) until Deployment ns/name has want replicas."""
        wait_for(lambda: self.kube.replicas(name, ns) == want, timeout, 0.02,
                 "deployment %s/%s to have %d replicas (logs: %s)" % (
                     ns, name, want, self.daemon.logs()[-2000:]))
