"""The daemon's HTTP endpoints: which address serves what, the connection
bounds that keep /healthz answering, and /readyz being about the process.

Real redis-server + kube-sim + the daemon, all on loopback.  Waits are
bounded polls on conditions; nothing asserts on speed.
"""
import os
import re
import select
import socket
import subprocess
import unittest

import world  # noqa: E402
from world import wait_for  # noqa: E402

# include/agentscaler/rt/http.h
HTTP_MAX_CONNS = 64

FAST = dict(pollIntervalMs=100)


def server_sockets(pid, port):
    """Connected TCP sockets the process holds whose local port is port
    (what it accepted there; the listener and the kernel's backlog are not
    counted)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if (int(local.rsplit(":", 1)[1], 16) == port and state != "0A"
                        and inode in inodes):
                    n += 1
    return n


class Endpoints(world.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.kube = world.KubeSim()
        self.addCleanup(self.kube.stop)
        self.kube.create_deployment("agents")

    def connect(self, port, source="127.0.0.1"):
        s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                     source_address=(source, 0))
        self.addCleanup(s.close)
        return s

    def test_status_and_explain_only_on_the_admin_address(self):
        d = self.start_daemon({"pools": [world.pool("p", self.redis.url, "q", "agents", **FAST)]})
        for path in ("/status", "/explain?task=t-1"):
            self.assertEqual(d.get(path)[0], 404, path + " on the metrics address")
        for path in ("/metrics", "/healthz", "/readyz"):
            self.assertEqual(d.admin(path)[0], 404, path + " on the admin address")
        code, st = d.admin("/status")
        self.assertEqual(code, 200)
        self.assertEqual([p["name"] for p in st["pools"]], ["p"])
        self.assertEqual(d.admin("/explain?task=t-1")[0], 404)   # unknown task

        # The CLI asks the admin address: the flag, or the daemon's variable.
        r = subprocess.run([d.binary, "explain", "t-1", "--admin-addr",
                            "127.0.0.1:%d" % d.admin_port], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)              # reached; task not known
        env = dict(os.environ, AGENTSCALER_ADMIN_ADDR="127.0.0.1:%d" % d.admin_port)
        r = subprocess.run([d.binary, "explain", "t-1"], capture_output=True, text=True,
                           timeout=60, env=env)
        self.assertEqual(r.returncode, 1, r.stderr)
        r = subprocess.run([d.binary, "explain", "t-1", "--metrics-addr",
                            "127.0.0.1:%d" % d.metrics_port], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--admin-addr", r.stderr)

    def test_admin_address_off(self):
        d = self.start_daemon({"pools": [world.pool("p", self.redis.url, "q", "agents", **FAST)]},
                              probe="/healthz", extra=("--admin-addr", "off"))
        self.assertEqual(d.get("/status")[0], 404)
        self.assertIn("/status and /explain are off", d.logs())
        # Started on /healthz: ready once the API server has answered.
        wait_for(lambda: d.get("/readyz")[0] == 200, 30, what="/readyz 200")

    def test_idle_and_slow_clients_do_not_starve_healthz(self):
        d = self.start_daemon({"pools": [world.pool("p", self.redis.url, "q", "agents", **FAST)]})
        idle = [self.connect(d.metrics_port) for _ in range(200)]
        # Slowloris: requests whose headers never end.
        slow = [self.connect(d.metrics_port) for _ in range(20)]
        for s in slow:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")

        # The probe gets through (socket timeout 5 s; a failure is a hang).
        code, body = world.http("GET", "http://127.0.0.1:%d/healthz" % d.metrics_port,
                                timeout=5)
        self.assertEqual((code, body), (200, "ok\n"))
        metrics = d.metrics()
        self.assertLessEqual(metrics['agentscaler_http_connections{listener="metrics"}'],
                             HTTP_MAX_CONNS)
        self.assertGreater(metrics['agentscaler_http_connections_closed_total'
                                   '{listener="metrics",reason="evicted"}'], 0)
        # What the process holds settles at the bound once the evicted
        # connections are reaped.
        wait_for(lambda: server_sockets(d.proc.pid, d.metrics_port) <= HTTP_MAX_CONNS, 20, 0.1,
                 "at most %d connections held" % HTTP_MAX_CONNS)

        # A request trickled a byte at a time is closed at its deadline.
        s = slow[-1]
        closed = False

        def trickle():
            nonlocal closed
            try:
                s.sendall(b"a")
                r, _, _ = select.select([s], [], [], 1.0)
                closed = bool(r) and s.recv(1024) == b""
            except OSError:
                closed = True
            return closed
        wait_for(trickle, 60, 0, "the trickling request to be closed")
        self.assertGreater(d.metrics()['agentscaler_http_connections_closed_total'
                                       '{listener="metrics",reason="expired"}'], 0)
        self.assertEqual(world.http("GET", "http://127.0.0.1:%d/healthz" % d.metrics_port,
                                    timeout=5)[0], 200)
        del idle

    def test_ready_while_pools_have_trouble_of_their_own(self):
        """/readyz is about the process: a pool whose Redis is down and one
        whose Deployment does not exist leave it 200; the body, /status and
        the metrics tell the pools' problems."""
        dead = "redis://127.0.0.1:%d/0" % world.free_port()   # nothing listens
        d = self.start_daemon({"pools": [
            world.pool("down", dead, "q", "agents", **FAST),
            world.pool("ghost", self.redis.url, "q", "missing", **FAST),
            world.pool("fine", self.redis.url, "q", "agents", **FAST)]}, probe="/healthz")

        # "fine" is listed too until it has read its source and target
        # (a loaded machine may take a while): wait for it to drop out.
        def ready_naming_both():
            code, body = d.get("/readyz")
            return (code == 200 and "default/down: source not read yet: " in body
                    and "default/ghost: target not read yet: " in body
                    and "default/fine" not in body and body)
        body = wait_for(ready_naming_both, 30, 0.05,
                        "/readyz 200 naming both pools and not the fine one")
        self.assertTrue(body.startswith("ok\n"), body)

        pools = {p["name"]: p for p in d.admin("/status")[1]["pools"]}
        self.assertFalse(pools["down"]["sourceOk"])
        self.assertNotEqual(pools["down"]["sourceError"], "")
        self.assertIn("not found", pools["ghost"]["kubeError"])
        self.assertTrue(pools["fine"]["started"])
        self.assertEqual(d.metrics()['agentscaler_source_up{namespace="default",pool="down"}'], 0)


class FlagsDocumented(unittest.TestCase):
    def test_readme_flag_table_matches_help(self):
        """README's flag table and `agentscaler --help` (both from options.c's
        options_table) name the same flags."""
        binary = os.environ.get("AGENTSCALER_BIN",
                                os.path.join(world.ROOT, "build/release/agentscaler"))
        r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        helped = set(re.findall(r"^  --([a-z-]+)", r.stdout, re.M)) - {"help", "version"}
        with open(os.path.join(world.ROOT, "README.md")) as f:
            readme = f.read()
        table = readme[readme.index("### Flags"):readme.index("### Configuration")]
        rows = [ln.split("|")[1] for ln in table.splitlines() if ln.startswith("| `--")]
        documented = set(re.findall(r"`--([a-z-]+)", "".join(rows)))
        self.assertEqual(documented, helped)


if __name__ == "__main__":
    unittest.main()
