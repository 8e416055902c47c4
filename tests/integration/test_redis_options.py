"""Redis habits of issue 18: a Redis 6 ACL user given inline
(source.username) and source.keyspaceNotifications (auto | off | require),
on a real redis-server whose application user may not run CONFIG (ACL
`-config`, as managed Redis services do).

The ACL LOG of the server shows whether the daemon tried CONFIG: auto does
(refused, then polls), off never does.  Waits are bounded polls.
"""
import os
import shutil
import tempfile
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402
from tests.integration.test_scale_redis import FAST, World, m  # noqa: E402

USER, PASSWORD = "agents", "agents-pw-7f3"


class RedisOptionsTest(World):
    def setUp(self):
        super().setUp()
        # the application user: everything but CONFIG
        self.redis.cmd("ACL", "SETUSER", USER, "on", ">" + PASSWORD, "~*", "&*", "+@all",
                       "-config")
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.pwfile = os.path.join(self.tmp, "pw")
        with open(self.pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        self.kube.create_deployment("agents")

    def pool(self, keyspace=None, **scaling):
        p = world.pool("p", self.redis.url, "q", "agents", **dict(FAST, **scaling))
        src = p["spec"]["source"]
        src.update(username=USER, passwordFile=self.pwfile)
        if keyspace is not None:
            src["keyspaceNotifications"] = keyspace
        return p

    def metric(self, name):
        return m(self.daemon, name, namespace="default", pool="p")

    def config_denials(self):
        """ACL LOG entries of CONFIG refused to the application user."""
        out = []
        for e in self.redis.cmd("ACL", "LOG"):
            d = dict(zip(e[0::2], e[1::2]))
            if d.get("username") == USER and "config" in str(d.get("object")).lower():
                out.append(d)
        return out

    def scales_by_polling(self):
        self.push("q", 3)
        self.replicas_become("agents", 3)
        self.assertEqual(self.metric("agentscaler_source_push"), 0)

    def test_inline_acl_user(self):
        """source.username with a password file: AUTH user password (it
        used to send AUTH password alone, as the default user)."""
        self.redis.cmd("ACL", "SETUSER", "default", "on", ">admin-pw")
        admin = world.RespConn(self.redis.url, password="admin-pw", username="default")
        self.addCleanup(admin.close)
        self.start([self.pool(keyspace="off")])
        admin.pipeline([("LPUSH", "q", "x")] * 4)
        wait_for(lambda: self.kube.replicas("agents") == 4, 20,
                 what="scaled as the ACL user (logs: %s)" % self.daemon_logs[-2000:])
        self.assertNotIn(PASSWORD, self.daemon_logs)

    def test_auto_tries_config_then_polls(self):
        self.start([self.pool()])
        wait_for(lambda: self.config_denials(), 20, what="CONFIG refused to the user")
        wait_for(lambda: "polling only" in self.daemon_logs, 20, what="the polling-only log")
        self.scales_by_polling()

    def test_off_never_sends_config(self):
        self.start([self.pool(keyspace="off")])
        self.scales_by_polling()
        self.assertIn("polling redis-list q every 100 ms", self.daemon_logs)
        self.assertEqual(self.config_denials(), [])
        self.assertEqual(self.redis.cmd("CONFIG", "GET", "notify-keyspace-events")[1], "")

    def test_off_leaves_a_permitted_server_alone(self):
        """Even where CONFIG would be allowed (the default user), off sets
        nothing: no CONFIG in the server's command statistics."""
        p = world.pool("p", self.redis.url, "q", "agents", **FAST)
        p["spec"]["source"]["keyspaceNotifications"] = "off"
        self.start([p])
        self.scales_by_polling()
        self.assertNotIn("cmdstat_config", self.redis.cmd("INFO", "commandstats"))
        self.assertEqual(self.redis.cmd("CONFIG", "GET", "notify-keyspace-events")[1], "")

    def test_require_fails_the_source_when_refused(self):
        self.start([self.pool(keyspace="require")])
        wait_for(lambda: "keyspaceNotifications is require" in self.daemon_logs, 20,
                 what="the source's error in the log")
        self.assertEqual(self.metric("agentscaler_source_up"), 0)
        self.assertIn("CONFIG GET refused", self.daemon_logs)
        self.push("q", 3)
        code, body = self.daemon.admin("/status")
        self.assertEqual(code, 200)
        self.assertIn("keyspaceNotifications is require", body["pools"][0]["sourceError"])
        self.assertEqual(self.kube.replicas("agents"), 0)      # a failed source holds

    def test_require_with_notifications_on(self):
        p = world.pool("p", self.redis.url, "q", "agents", pollIntervalMs=60000,
                       cooldownSeconds=60, scaleDownStabilizationSeconds=60)
        p["spec"]["source"]["keyspaceNotifications"] = "require"
        self.start([p])
        wait_for(lambda: self.metric("agentscaler_source_push") == 1, 20, what="push live")
        self.push("q", 2)
        self.replicas_become("agents", 2, timeout=10)           # a push, not the 60 s poll
        self.assertEqual(self.metric("agentscaler_source_up"), 1)


if __name__ == "__main__":
    unittest.main()
