"""The status page (/ui, issue 18): one self-contained HTML page on the
admin address that reads /status every 2 s.  Opened in headless Chromium
(Debian's chromium, over the DevTools protocol on a pipe: no port, no
network beyond the daemon's loopback address) against a running world on
kube-sim: a scale pool in namespace web, a dispatch pool and an AgentQuota
(maxSandboxes 2) in default.  The page must show the live numbers, follow
a change of the world without a reload (a mark set on the page's window
survives, which a reload would wipe), and show tenant strings as text: a
task id that is markup (<img ... onerror=...>) appears literally in the
deferred and dead-letter tables and creates no element.

A screenshot is kept in build/artifacts/status_page.png (not committed).
"""
import json
import os
import unittest

import world  # noqa: E402
from browser import Browser, chromium_path  # noqa: E402
from world import wait_for  # noqa: E402

FAST = dict(pollIntervalMs=100, cooldownSeconds=1, scaleDownStabilizationSeconds=0.5)
HOSTILE = "<img/src=x/onerror=document.title='owned'>"
ARTIFACT = os.path.join(world.ROOT, "build", "artifacts", "status_page.png")

# The text of a cell: row key (data-key) and column header (data-col).
CELL = ("(() => { const r = document.querySelector('#%s tr[data-key=\"%s\"]');"
        " if (!r) return null; const c = [...r.cells].find(c => c.dataset.col === '%s');"
        " return c ? c.textContent : null; })()")


@unittest.skipUnless(chromium_path(), "chromium is not installed (make deps)")
class StatusPageTest(world.RedisKubeTestCase):
    KUBE_ARGS = ("--warm-bind-ms", "10")

    def setUp(self):
        super().setUp()

    def cell(self, page, table, key, col):
        return page.eval(CELL % (table, key, col))

    def test_page_shows_the_live_world_and_follows_it(self):
        world.create_namespace(self.kube, "web")
        self.kube.create_deployment("api", ns="web")
        world.sandbox_pool(self.kube, "wp", replicas=2)
        scale = world.pool("frontend", self.redis.url, "jobs", "api",
                           tasksPerReplica=2, maxReplicas=10, **FAST)
        scale["metadata"]["namespace"] = "web"
        agents = world.pool_dispatch("agents", self.redis.url, "tasks", "wp",
                                     claim_ttl_seconds=600, spare_max=0, pollIntervalMs=100)
        quota = {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentQuota",
                 "metadata": {"name": "limits", "namespace": "default"},
                 "spec": {"maxSandboxes": 2, "onExceeded": "defer", "cascade": {"maxDepth": 1}}}
        self.start_daemon({"pools": [scale, agents], "quotas": [quota]},
                          extra=("--instance", "page-test"))
        self.redis.pipeline([("LPUSH", "jobs", json.dumps({"id": "j-%d" % i}))
                             for i in range(6)])
        self.redis.pipeline([("LPUSH", "tasks", json.dumps({"id": t}))
                             for t in ("a-1", "a-2")])
        wait_for(lambda: self.kube.replicas("api", ns="web") == 3, 30, 0.05,
                 "web/api scaled to ceil(6 / 2)")
        url = "http://127.0.0.1:%d/ui" % self.daemon.admin_port
        with Browser() as b:
            page = b.open(url)
            page.wait("+document.body.dataset.refreshes > 0", "the first refresh")
            page.eval("window.__asMark = 'no reload'; 1")
            # The live numbers of the scale pool, the quota and the dispatch pool.
            page.wait(CELL % ("pools", "web/frontend", "backlog") + " === '6'",
                      "backlog 6 of web/frontend")
            page.wait(CELL % ("pools", "web/frontend", "replicas") + " === '3'",
                      "3 replicas of web/frontend")
            self.assertIn("\u2192 3", self.cell(page, "pools", "web/frontend",
                                                "recent decisions"))
            page.wait(CELL % ("quotas", "default", "sandboxes") + " === '2 / 2'",
                      "2 of 2 sandboxes used in default")
            self.assertEqual(self.cell(page, "dispatch", "default/agents", "warm pool"), "wp")
            refreshes = page.eval("+document.body.dataset.refreshes")

            # The world changes: more jobs; a task the quota defers and one
            # rejected (an unknown parent past maxDepth), both with hostile ids.
            self.redis.pipeline([("LPUSH", "jobs", json.dumps({"id": "k-%d" % i}))
                                 for i in range(8)])
            self.redis.pipeline([("LPUSH", "tasks", json.dumps(t)) for t in (
                {"id": HOSTILE},
                {"id": HOSTILE + "-child", "parent": "p", "depth": 5})])
            page.wait(CELL % ("pools", "web/frontend", "backlog") + " === '14'",
                      "backlog 14 after the push")
            page.wait(CELL % ("pools", "web/frontend", "desired") + " === '7'",
                      "desired 7 after the push")
            page.wait("[...document.querySelectorAll('#deferred td')]"
                      ".some(c => c.textContent === %s)" % json.dumps(HOSTILE),
                      "the hostile id, as text, among the deferred tasks")
            deferred = page.eval("[...document.querySelectorAll('#deferred tr')]"
                                 ".map(r => r.textContent).join('\\n')")
            self.assertIn("quota.maxSandboxes", deferred)
            page.wait("[...document.querySelectorAll('#dead td')]"
                      ".some(c => c.textContent === %s)" % json.dumps(HOSTILE + "-child"),
                      "the rejected hostile id, as text, among the dead letters")
            # Not markup: no img element anywhere, the title untouched.
            self.assertEqual(page.eval("document.querySelectorAll('img').length"), 0)
            self.assertEqual(page.eval("document.title"), "agentscaler")
            # Updated in place: the mark survives and more refreshes ran.
            self.assertEqual(page.eval("window.__asMark"), "no reload")
            self.assertGreater(page.eval("+document.body.dataset.refreshes"), refreshes)
            page.screenshot(ARTIFACT)
        self.assertTrue(os.path.getsize(ARTIFACT) > 1000)

    def test_page_is_self_contained(self):
        """No external asset: no src or href to anything but the page's own
        /status, which it fetches by a relative URL."""
        self.start_daemon({"pools": []}, probe="/healthz")
        code, body = world.http("GET", "http://127.0.0.1:%d/ui" % self.daemon.admin_port)[:2]
        self.assertEqual(code, 200)
        text = body if isinstance(body, str) else body.decode()
        self.assertNotIn("src=", text)
        self.assertNotIn("href=", text)
        self.assertNotIn("http://", text.replace("http://www.w3.org/2000/svg", ""))
        self.assertIn('fetch("status"', text)
        # Only on the admin address.
        self.assertEqual(self.daemon.get("/ui")[0], 404)


if __name__ == "__main__":
    unittest.main()
