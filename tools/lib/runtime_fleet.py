"""The agents of handoff.mode http on kube-sim (RuntimeFleet): one
tools/lib/http_agent.py process per Ready Sandbox, bound to the Sandbox's
pod IP, which kube-sim puts on loopback when started with
--pod-ip-range (see pod_ip_args()).  A thread watches the Sandboxes and
starts an agent for each new pod IP (unless paused), and stops the agents
of IPs no Sandbox has any more.  Processes are stopped by PID; the shared
event log is read back parsed."""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading

from procs import ROOT, free_port, jsonl_records, stop_pid, wait_for
from sandboxes import SANDBOX_API

AGENT = os.path.join(ROOT, "tools", "lib", "http_agent.py")


def pod_ip_args():
    """kube-sim arguments: pod IPs from a random 127.77.x.0/24 (a /24 of its
    own, so that two worlds on one machine do not share addresses)."""
    return ("--pod-ip-range", "127.77.%d.0/24" % random.randrange(1, 255))


class RuntimeFleet:
    def __init__(self, kube, ns="default", port=None, serving=True):
        self.kube = kube
        self.ns = ns
        self.port = port or free_port()
        self.serving = serving
        self.dir = tempfile.mkdtemp(prefix="http-agents-")
        self.log_path = os.path.join(self.dir, "events.jsonl")
        self.procs = {}                 # ip -> Popen
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _ips(self):
        code, obj = self.kube.api("GET", SANDBOX_API % self.ns)
        if code != 200:
            return None
        ips = set()
        for sb in obj.get("items") or []:
            st = sb.get("status") or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in st.get("conditions") or [])
            if ready and st.get("podIPs"):
                ips.add(st["podIPs"][0])
        return ips

    def _watch(self):
        while not self.stopping.wait(0.05):
            ips = self._ips()
            if ips is None:
                continue
            with self.lock:
                for ip in ips:
                    if self.serving and ip not in self.procs:
                        self._start(ip)
                for ip in [i for i in self.procs if i not in ips]:
                    stop_pid(self.procs.pop(ip))

    def _start(self, ip):
        err = open(os.path.join(self.dir, "agent-%s.err" % ip), "ab")
        self.procs[ip] = subprocess.Popen(
            [sys.executable, AGENT, "--host", ip, "--port", str(self.port),
             "--log", self.log_path], stdout=subprocess.DEVNULL, stderr=err)
        err.close()

    def serve(self, on=True):
        """Starts (or stops starting) agents for the pods that have none."""
        self.serving = on

    def kill(self, ip):
        """SIGKILL the agent of ip (it is started again unless paused)."""
        with self.lock:
            p = self.procs.pop(ip, None)
        if p is not None:
            p.kill()
            p.wait()

    def events(self, event=None, tid=None):
        return [e for e in jsonl_records(self.log_path)
                if (event is None or e["event"] == event) and (tid is None or e["id"] == tid)]

    def wait_started(self, tid, timeout=30):
        return wait_for(lambda: self.events("started", tid), timeout, what="%s started" % tid)[0]

    def stop(self):
        self.stopping.set()
        self.thread.join(10)
        with self.lock:
            for p in self.procs.values():
                stop_pid(p)
            self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
