"""Tenant isolation of broker credentials in CRD mode (issue 11), against
kube-sim and a real redis-server.

An AgentPool is written by a tenant who may only create objects in their own
namespace.  None may make the daemon send its service-account token, a
variable of its environment or another team's Secret to a server of the
tenant's choice: such pools are Ready=False/InvalidSpec with the reason, and
a listener standing in for the attacker's broker receives no connection and
no byte.  A pool naming a Secret of its own namespace connects with it,
through the API, and a rotated Secret is the one the next connect uses.

Each test builds its own world on free loopback ports and tears it down by
PID; waits are bounded polls on conditions.
"""
import base64
import json
import socket
import threading
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

FAST = dict(pollIntervalMs=100, cooldownSeconds=1, scaleDownStabilizationSeconds=0.5)
SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class Listener:
    """A TCP server on loopback standing in for the attacker's broker: counts
    the connections it accepts and the bytes they send."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            c.settimeout(0.5)
            try:
                while True:
                    b = c.recv(4096)
                    if not b:
                        break
                    self.received += b
            except OSError:
                pass
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def secret(name, ns, **data):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def ns_pool(name, ns, address, queue, **source):
    p = world.pool(name, address, queue, "web", **FAST)
    p["metadata"]["namespace"] = ns
    p["spec"]["source"].update(source)
    return p


@unittest.skipUnless(world.Kubectl.available(), "kubectl not installed")
class TenantSecretsTest(world.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.kube = world.KubeSim("--replica-delay-ms", "50")
        self.addCleanup(self.kube.stop)
        self.kubectl = world.Kubectl(self.kube)
        self.addCleanup(self.kubectl.cleanup)
        self.kubectl.install_crds()
        for ns in ("team-a", "team-b"):
            world.create_namespace(self.kube, ns)
            self.kube.create_deployment("web", 0, ns=ns)

    def create(self, obj):
        ns = obj["metadata"]["namespace"]
        if obj["kind"] == "Secret":
            path = "/api/v1/namespaces/%s/secrets" % ns
        else:
            path = "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentpools" % ns
        code, out = self.kube.api("POST", path, obj)
        return code, out

    def pool_obj(self, name, ns):
        code, obj = self.kube.api(
            "GET", "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentpools/%s" % (ns, name))
        return obj if code == 200 else None

    def invalid(self, name, ns):
        c = world.condition(self.pool_obj(name, ns), "Ready")
        if c and c["status"] == "False" and c["reason"] == "InvalidSpec":
            return c
        return None

    def test_hostile_pools_are_refused_and_reach_nothing(self):
        attacker = Listener()
        self.addCleanup(attacker.stop)
        evil = "redis://127.0.0.1:%d/0" % attacker.port
        self.create(secret("broker", "team-b", password="team-b-broker-password"))
        self.start_daemon(None)
        hostile = {
            "sa-token": dict(passwordFile=SA_TOKEN),
            "env": dict(passwordEnv="HOME"),
            "other-ns": dict(authSecretRef={"name": "broker", "key": "password",
                                            "namespace": "team-b"}),
            "ca-file": dict(tls={"caFile": "/etc/shadow"}),
        }
        for name, src in hostile.items():
            code, out = self.create(ns_pool(name, "team-a", evil, "q", **src))
            self.assertEqual(code, 201, out)
        # The traversal the schema refuses (kube-apiserver checks the
        # pattern), and so does the parser (check_config's crd rows).
        code, out = self.create(ns_pool("traversal", "team-a", evil, "q", authSecretRef={
            "name": "..", "key": "../../" + SA_TOKEN.lstrip("/")}))
        self.assertEqual(code, 422, out)
        self.assertIn("spec.source.authSecretRef.name", out["message"])
        self.assertIn("should match", out["message"])

        want = {"sa-token": "spec.source.passwordFile: refused in CRD mode",
                "env": "spec.source.passwordEnv: refused in CRD mode",
                "other-ns": "Secret team-b/broker is in another namespace",
                "ca-file": "spec.source.tls.caFile: refused in CRD mode"}
        for name, text in want.items():
            c = wait_for(lambda n=name: self.invalid(n, "team-a"), 30,
                         what="%s: InvalidSpec" % name)
            self.assertIn(text, c["message"])

        # Another team's Secret named without a namespace is looked up in
        # the pool's own namespace: not found, and nothing is connected.
        code, out = self.create(ns_pool("guess", "team-a", evil, "q", authSecretRef={
            "name": "broker", "key": "password"}))
        self.assertEqual(code, 201, out)

        def source_error():
            c = world.condition(self.pool_obj("guess", "team-a"), "SourceError")
            return c if c and c["status"] == "True" else None
        c = wait_for(source_error, 30, what="guess: SourceError")
        self.assertIn("Secret team-a/broker not found", c["message"])
        # The daemon retried the lookup (backoff) and never connected.
        wait_for(lambda: self.daemon.metrics().get(
            'agentscaler_secret_reads_total{result="not_found"}', 0) >= 2, 30,
            what="a second read of the missing Secret")
        self.assertEqual(attacker.connections, 0)
        self.assertEqual(attacker.received, b"")
        # And the logs carry no secret.
        self.assertNotIn("team-b-broker-password", self.daemon.logs())

    def test_own_namespace_secret_connects_and_rotation_is_used(self):
        redis = world.Redis()
        self.addCleanup(redis.stop)
        admin = world.RespConn(redis.url)
        self.addCleanup(admin.close)
        admin.cmd("CONFIG", "SET", "requirepass", "pw-one")
        admin = world.RespConn(redis.url, password="pw-one")
        self.addCleanup(admin.close)
        self.create(secret("redis-auth", "team-a", password="pw-one"))
        d = self.start_daemon(None)
        code, out = self.create(ns_pool("p1", "team-a", redis.url, "q1", authSecretRef={
            "name": "redis-auth", "key": "password"}))
        self.assertEqual(code, 201, out)
        admin.pipeline([("LPUSH", "q1", json.dumps({"id": "a-%d" % i})) for i in range(2)])
        wait_for(lambda: self.kube.replicas("web", ns="team-a") == 2, 30,
                 what="scaled with the Secret's password")
        self.assertNotIn("authentication failed", d.logs())

        # Rotate: the Secret first, then the server; then cut the daemon's
        # connections so that it must connect again.
        code, out = self.kube.api(
            "PATCH", "/api/v1/namespaces/team-a/secrets/redis-auth",
            {"data": {"password": base64.b64encode(b"pw-two").decode()}},
            "application/merge-patch+json")
        self.assertEqual(code, 200, out)
        admin.cmd("CONFIG", "SET", "requirepass", "pw-two")
        admin = world.RespConn(redis.url, password="pw-two")
        self.addCleanup(admin.close)
        reads = d.metrics().get('agentscaler_secret_reads_total{result="ok"}', 0)
        mark = len(d.logs())
        admin.cmd("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        admin.cmd("CLIENT", "KILL", "TYPE", "pubsub")
        admin.pipeline([("LPUSH", "q1", json.dumps({"id": "b-%d" % i})) for i in range(2)])
        wait_for(lambda: self.kube.replicas("web", ns="team-a") == 4, 30,
                 what="scaled again after the rotation")
        self.assertGreater(d.metrics().get('agentscaler_secret_reads_total{result="ok"}', 0),
                           reads, "the Secret was read again for the new connect")
        after = d.logs()[mark:]
        self.assertIn("connection lost", after)
        self.assertNotIn("authentication failed", after,
                         "the next connect used the rotated password")
        self.assertNotIn("pw-one", d.logs())
        self.assertNotIn("pw-two", d.logs())

    def test_user_name_from_the_secret(self):
        """authSecretRef.usernameKey: a Redis 6 ACL user and its password,
        both from the pool's Secret; the default user is switched off, so
        only that user can read the queue."""
        redis = world.Redis()
        self.addCleanup(redis.stop)
        admin = world.RespConn(redis.url)
        self.addCleanup(admin.close)
        admin.cmd("ACL", "SETUSER", "agents", "on", ">agents-pw", "~*", "&*", "+@all")
        admin.cmd("ACL", "SETUSER", "default", "off")
        self.create(secret("redis-acl", "team-a", user="agents", password="agents-pw"))
        d = self.start_daemon(None)
        code, out = self.create(ns_pool("p1", "team-a", redis.url, "q1", authSecretRef={
            "name": "redis-acl", "key": "password", "usernameKey": "user"}))
        self.assertEqual(code, 201, out)
        user = world.RespConn(redis.url, password="agents-pw", username="agents")
        self.addCleanup(user.close)
        user.pipeline([("LPUSH", "q1", json.dumps({"id": "u-%d" % i})) for i in range(3)])
        wait_for(lambda: self.kube.replicas("web", ns="team-a") == 3, 30,
                 what="scaled as the Secret's ACL user")
        self.assertNotIn("authentication failed", d.logs())
        self.assertNotIn("agents-pw", d.logs())


if __name__ == "__main__":
    unittest.main()
