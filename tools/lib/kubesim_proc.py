"""The one way to start tools/kube-sim as a child process.

start_kube_sim() runs it (free ports unless the arguments name them), reads
the JSON line it prints once it listens ({"url", "admin", "ca", "pid"}) and
returns (process, that object); stop_kube_sim() ends it by its PID.  The
tests' KubeSim classes (tools/lib/kube_world.py, tests/kube_sim/ksim.py),
the demo, the soak and the benchmarks all start it here.  Standard library
only.
"""
import json
import os
import random
import select
import signal
import subprocess
import sys
import time

from procs import ROOT

KUBE_SIM = os.path.join(ROOT, "tools", "kube-sim", "kube-sim")


def kube_sim_command():
    """argv that runs kube-sim (before its own arguments)."""
    return [sys.executable, KUBE_SIM]


def pod_ip_args():
    """kube-sim arguments putting pod IPs on loopback, where a test's agents
    can listen on them: a random 127.77.x.0/24 (a /24 of its own, so that
    two worlds on one machine do not share addresses)."""
    return ("--pod-ip-range", "127.77.%d.0/24" % random.randrange(1, 255))


def _read_line(proc, timeout):
    """The first line of proc's stdout, or None at EOF, exit or timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            buf += chunk
            if b"\n" in buf:
                return buf.split(b"\n", 1)[0].decode()
        elif proc.poll() is not None:
            return None
    return None


def start_kube_sim(args=(), stderr=None, env=None, command=None, timeout=30.0):
    """Starts kube-sim with args; returns (Popen, start info).

    stderr: as for Popen (None: inherited; subprocess.PIPE: kept, and read
    into the error when it does not start).  command: argv to run instead of
    kube_sim_command() (tools/kube-sim/bench_sandbox.py's profiled server).
    Raises RuntimeError, with the process stopped, when no start line comes
    within timeout seconds."""
    cmd = list(command) if command else kube_sim_command()
    proc = subprocess.Popen(cmd + list(args), stdout=subprocess.PIPE, stderr=stderr, env=env)
    line = _read_line(proc, timeout)
    if not line:
        err = ""
        if proc.poll() is not None and stderr == subprocess.PIPE:
            err = proc.stderr.read().decode(errors="replace")
        stop_kube_sim(proc)
        raise RuntimeError("kube-sim did not start (exit %s): %s" % (proc.returncode, err))
    return proc, json.loads(line)


def stop_kube_sim(proc, timeout=10.0):
    """SIGTERM, then SIGKILL after timeout; closes its pipes.  Returns the
    exit status."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
    return proc.returncode
