"""Processes and ports of the embedded world: a free loopback port, waiting
for a condition, stopping a child by its PID.  Standard library only."""
import collections
import json
import os
import random
import re
import signal
import subprocess
import socket
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# Where free_port() looks: above the well-known and registered ports most
# daemons use, and outside the kernel's ephemeral range (below).
PICK_LOW = 10000
_issued = collections.deque(maxlen=512)   # this process's recent picks
_rng = random.SystemRandom()              # a test's random.seed() must not
                                          # make two runs pick alike


def _ephemeral_range():
    """(low, high) of the kernel's ports for connect() and bind(0)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999                     # Linux's default


def _pick_span():
    """The widest span of ports outside the ephemeral range, or None when
    what is left is too small to pick from at random."""
    low, high = _ephemeral_range()
    spans = [(PICK_LOW, low - 1), (high + 1, 65535)]
    lo, hi = max(spans, key=lambda s: s[1] - s[0])
    return (lo, hi) if hi - lo >= 2000 else None


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    """A loopback port nothing is bound to now, for a child to bind.

    The socket is closed before the child binds the port, so another
    process may take it in between.  Picked at random outside the kernel's
    ephemeral range (ip_local_port_range) when that leaves room, because the
    kernel hands ports of that range to every outgoing connection and every
    bind to port 0 on the machine: one chosen there can go to a connection
    before the child starts, or while a restarted server is down, and port 0
    would pick exactly there.  Outside it, only another test's free_port()
    can collide; start_retrying() covers that for a first start.  Never the
    same port twice in a row of 512 picks of this process."""
    span = _pick_span()
    for _ in range(200 if span else 0):
        port = _rng.randint(*span)
        if port not in _issued and _bindable(port):
            _issued.append(port)
            return port
    while True:                                  # no room: the kernel's pick
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _issued:
            _issued.append(port)
            return port


# What the children print when their port is taken: agentscaler ("cannot
# listen on ADDR (address in use ...)", scheduler/rt/http.c), redis-server
# ("bind: Address already in use"), Go programs (sandbox-router, jaeger,
# the control plane: "bind: address already in use"), RabbitMQ and epmd
# (Erlang's eaddrinuse), Python (kube-sim, agent-runtime: "[Errno 98]
# Address already in use").
ADDR_IN_USE = re.compile(r"address already in use|eaddrinuse|cannot listen on", re.I)


class PortInUse(Exception):
    """A child exited because a port it was given was taken meanwhile."""


def check_port_in_use(log_text, what):
    """Raises PortInUse when a child's log (it has exited) says a port was
    taken; the start that calls it then picks new ports and tries again."""
    if ADDR_IN_USE.search(log_text or ""):
        raise PortInUse("%s: a port was taken before it bound it: %s"
                        % (what, log_text.strip()[-400:]))


def start_retrying(start, attempts=5):
    """Calls start() until it returns without PortInUse, at most attempts
    times; start picks fresh ports with free_port() on each call and stops
    what it began before it raises.  Returns what start() returned."""
    for i in range(attempts):
        try:
            return start()
        except PortInUse:
            if i == attempts - 1:
                raise


def wait_for(pred, timeout=20.0, interval=0.02, what="condition"):
    """Polls pred() until it returns a truthy value; raises after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


def jsonl_records(path):
    """Every complete line of a JSON-lines log, parsed (the last piece may
    be half written and is left out); [] when there is no file yet."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data.split(b"\n")[:-1] if line.strip()]


def stop_pid(proc, timeout=10.0):
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def listening(pid, port):
    """Whether process pid holds a TCP socket listening on port (on any
    local address), from /proc: what tells our child from another process
    that answers on a port ours could not bind."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:   # LISTEN
                inodes.add("socket:[%s]" % cols[9])
    fd_dir = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(os.path.join(fd_dir, fd)) in inodes:
                return True
        except OSError:
            continue
    return False
