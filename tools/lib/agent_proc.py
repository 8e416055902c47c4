"""tools/agent-runtime/agent_runtime.py as a child process (AgentRuntime)."""
import os
import shutil
import subprocess
import sys
import tempfile

from procs import ROOT, jsonl_records, stop_pid, wait_for


class AgentRuntime:
    """tools/agent-runtime/agent_runtime.py, the example agent of every
    sandbox; started and stopped by PID.  Its JSON-lines event log is read
    back parsed.  inbox: redis://... or the RabbitMQ management URL, or None
    with extra=("--handoff", "http", "--port", "0"): each sandbox's runtime
    then listens on an address of its own (address())."""

    BIN = os.path.join(ROOT, "tools/agent-runtime/agent_runtime.py")

    def __init__(self, kubesim, inbox, namespace="default", all_namespaces=False,
                 publish_to=None, publish_address=None, children=0, max_depth=None,
                 work_ms=50, exit_after_idle=None, password=None, username=None, extra=(),
                 wait_ready=True):
        self.dir = tempfile.mkdtemp(prefix="agent-runtime-")
        self.log_path = os.path.join(self.dir, "events.jsonl")
        self.err_path = os.path.join(self.dir, "stderr.log")
        args = [sys.executable, self.BIN, "--apiserver", kubesim.url,
                "--log", self.log_path, "--work-ms", str(work_ms)]
        # inbox None: --handoff http (in extra), no broker.
        args += ["--inbox", inbox] if inbox is not None else []
        # A real cluster (tests/e2e/kube.py) has no admin port: the pod ends
        # as the kubelet would say.
        args += ["--admin", kubesim.admin] if kubesim.admin else \
            ["--finish-via", "pod-status"]
        if all_namespaces:
            args.append("--all-namespaces")
        else:
            args += ["--namespace", namespace]
        if kubesim.ca:
            args += ["--ca-file", kubesim.ca]
        if kubesim.token:
            args += ["--token-file", self._secret("token", kubesim.token)]
        if password is not None:
            args += ["--password-file", self._secret("password", password)]
        if username:
            args += ["--username", username]
        if publish_to:
            args += ["--publish-to", publish_to]
        if publish_address:
            args += ["--publish-address", publish_address]
        if children:
            args += ["--children", str(children)]
        if max_depth is not None:
            args += ["--max-depth", str(max_depth)]
        if exit_after_idle is not None:
            args += ["--exit-after-idle", str(exit_after_idle)]
        args += list(extra)
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.err)
        if wait_ready:
            try:
                self.wait_ready()
            except BaseException:
                self.cleanup()     # the caller never gets the object to stop it
                raise

    def _secret(self, name, value):
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return path

    def events(self, event=None):
        """Every complete line of the log, parsed; only `event` ones if given."""
        return [rec for rec in jsonl_records(self.log_path)
                if event is None or rec.get("event") == event]

    def ids(self, event):
        return [e.get("id") for e in self.events(event)]

    def received_ids(self):
        return self.ids("received")

    def finished_ids(self):
        return self.ids("finished")

    def stderr(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_event(self, event, n=1, pred=None, timeout=30):
        """Waits until at least n `event` records (matching pred) are logged; returns them."""
        def got():
            if self.proc.poll() is not None and not self.events("stopped"):
                raise AssertionError("agent-runtime exited %s: %s"
                                     % (self.proc.returncode, self.stderr()[-2000:]))
            evs = [e for e in self.events(event) if pred is None or pred(e)]
            return evs if len(evs) >= n else None
        return wait_for(got, timeout, what="%d %r event(s) from agent-runtime" % (n, event))

    def address(self, sandbox, namespace="default", timeout=30):
        """--handoff http: (ip, port) where sandbox's runtime listens, for
        the sandbox-router's X-Sandbox-Pod-IP and X-Sandbox-Port."""
        ev = self.wait_event("listening", 1, lambda e: (e["namespace"], e["sandbox"]) ==
                             (namespace, sandbox), timeout)[-1]
        return ev["ip"], ev["port"]

    def wait_ready(self, timeout=20):
        return self.wait_event("ready", 1, timeout=timeout)

    def wait_received(self, n, timeout=30):
        return self.wait_event("received", n, timeout=timeout)

    def wait_finished(self, n, timeout=30):
        return self.wait_event("finished", n, timeout=timeout)

    def stop(self):
        """SIGTERM, then waits; returns the exit status."""
        rc = stop_pid(self.proc)
        if not self.err.closed:
            self.err.close()
        return rc

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
