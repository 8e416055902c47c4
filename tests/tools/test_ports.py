"""The launchers of tools/lib start their child even when a port picked for
it is taken before the child binds it (a race on a loaded machine: another
process, or an outgoing connection, gets the port between free_port() and
the child's bind).  Each test hands the launcher a port a socket of ours
holds as its first pick (free_port() patched) and checks that the start
still succeeds, on other ports, with the child itself listening there.
"""
import socket
import unittest
from unittest import mock

import daemon_proc
import jaeger_proc
import procs
import rabbitmq_server
import redis_server
import router_proc
import world


class Occupied:
    """A loopback port held by a listening socket of this test."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class PortsCase(unittest.TestCase):
    def occupied(self):
        o = Occupied()
        self.addCleanup(o.close)
        return o.port

    def first_pick_taken(self, module, nth=1):
        """Patches module.free_port: its nth pick is a port already taken,
        the others come from procs.free_port.  Returns (taken port, every
        port handed out)."""
        taken, handed = self.occupied(), []

        def pick():
            handed.append(taken if len(handed) == nth - 1 else procs.free_port())
            return handed[-1]
        patcher = mock.patch.object(module, "free_port", pick)
        patcher.start()
        self.addCleanup(patcher.stop)
        return taken, handed

    def test_free_port_is_free_and_outside_the_ephemeral_range(self):
        low, high = procs._ephemeral_range()
        seen = [procs.free_port() for _ in range(50)]
        self.assertEqual(len(set(seen)), 50, "a port handed out twice in a row")
        for port in seen:
            if procs._pick_span():
                self.assertFalse(low <= port <= high, "%d in %d-%d" % (port, low, high))
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))   # free (no SO_REUSEADDR)

    def test_port_in_use_messages(self):
        """What each child prints when its port is taken (read in their
        logs: see procs.ADDR_IN_USE)."""
        for line in ("cannot listen on 127.0.0.1:4000 (address in use or not local?)",
                     "Could not create server TCP listening socket 127.0.0.1:4000: "
                     "bind: Address already in use",
                     "listen tcp 127.0.0.1:4000: bind: address already in use",
                     "{listen_error, ..., eaddrinuse}",
                     "OSError: [Errno 98] Address already in use"):
            with self.assertRaises(procs.PortInUse, msg=line):
                procs.check_port_in_use("noise\n" + line + "\n", "x")
        procs.check_port_in_use("connection refused", "x")     # not this

    def test_start_retrying_is_bounded(self):
        calls = []

        def start():
            calls.append(1)
            raise procs.PortInUse("taken")
        with self.assertRaises(procs.PortInUse):
            procs.start_retrying(start, attempts=3)
        self.assertEqual(len(calls), 3)

    def test_redis_on_a_taken_port(self):
        taken, handed = self.first_pick_taken(redis_server)
        r = world.Redis()
        self.addCleanup(r.stop)
        self.assertNotEqual(r.port, taken)
        self.assertEqual(handed, [taken, r.port])
        self.assertTrue(procs.listening(r.proc.pid, r.port))
        self.assertEqual(r.cmd("PING"), "PONG")
        r.restart()                                     # keeps its port
        self.assertEqual(r.cmd("PING"), "PONG")

    def test_redis_restart_on_a_port_taken_meanwhile_fails_clearly(self):
        r = world.Redis()
        self.addCleanup(r.stop)
        r.stop()
        hold = socket.socket()
        self.addCleanup(hold.close)
        hold.bind(("127.0.0.1", r.port))
        hold.listen()
        with self.assertRaises(procs.PortInUse):
            r.start()

    @unittest.skipIf(router_proc.router_missing(), router_proc.router_missing())
    def test_router_on_a_taken_port(self):
        for nth in (1, 2, 3):                           # proxy, probes, metrics
            taken, handed = self.first_pick_taken(router_proc, nth)
            r = world.SandboxRouter()
            self.addCleanup(r.cleanup)
            ports = (r.port, r.probe_port, r.metrics_port)
            self.assertNotIn(taken, ports)
            self.assertEqual(len(handed), 6, handed)    # one retry
            for p in ports:
                self.assertTrue(procs.listening(r.proc.pid, p), p)
            r.restart()                                 # keeps its ports
            self.assertEqual((r.port, r.probe_port, r.metrics_port), ports)

    def test_rabbitmq_on_a_taken_port(self):
        for nth in (1, 4):                              # the AMQP port; epmd's
            taken, handed = self.first_pick_taken(rabbitmq_server, nth)
            b = world.RabbitMQ()
            self.addCleanup(b.stop)
            self.assertNotIn(taken, (b.amqp_port, b.mgmt_port, b.dist_port, b.epmd_port))
            self.assertEqual(len(handed), 8, handed)    # one retry
            self.assertTrue(procs.listening(b.epmd.pid, b.epmd_port))
            b.declare("q")
            b.publish("q", 1)
            b.stop()

    @unittest.skipIf(jaeger_proc.jaeger_missing(), jaeger_proc.jaeger_missing())
    def test_jaeger_on_a_taken_port(self):
        taken, handed = self.first_pick_taken(jaeger_proc)
        j = jaeger_proc.Jaeger()
        self.addCleanup(j.stop)
        j.start()
        self.assertNotIn(taken, (j.otlp_port, j.query_port, j.query_grpc_port))
        self.assertEqual(len(handed), 6, handed)        # one retry
        self.assertTrue(procs.listening(j.proc.pid, j.otlp_port))

    def test_daemon_binds_port_0_and_reports_it(self):
        """The daemon is given port 0 and tells its ports in its log: no
        pick to lose.  A taken port is never handed to it."""
        self.occupied()
        d = daemon_proc.Daemon({"pools": []}, None, extra=("--apiserver", "http://127.0.0.1:1"))
        self.addCleanup(d.cleanup)
        self.addCleanup(d.stop)
        world.wait_for(lambda: d.get("/healthz")[0] == 200, 60, 0.05, "/healthz")
        self.assertNotEqual(d.metrics_port, d.admin_port)
        for p in (d.metrics_port, d.admin_port):
            self.assertTrue(procs.listening(d.proc.pid, p), p)
        self.assertEqual(d.admin("/status")[0], 200)
        self.assertEqual(d.stop(), 0, d.logs()[-3000:])


if __name__ == "__main__":
    unittest.main()
