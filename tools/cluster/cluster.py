#!/usr/bin/env python3
"""A real Kubernetes control plane on loopback, for the e2e tests.

Runs the binaries that tools/cluster/build.sh builds from pinned Go modules
(build/cluster/bin): etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok (fake nodes: pods become Running and Ready with pod IPs
from a loopback range), the agent-sandbox controller (extensions on, under
the RBAC its module ships) and its sandbox-router.  Every process listens on
127.0.0.1 only, on free ports, and is started and stopped by its PID
(SIGTERM, then SIGKILL); logs and state live in one temporary directory.

The CRDs, the controller's RBAC and kwok's stages are read at run time from
the Go module cache (go list -m in tools/cluster), never copied here.

    python3 tools/cluster/cluster.py up     # prints the kubeconfig, exits
    python3 tools/cluster/cluster.py down   # stops what `up` started

As a module: Cluster().start(); .api(), .token_for(), .create_namespace(),
.create_deployment(), .replicas() (the meaning of KubeSim's in
tools/lib/world.py); .run_pods(hook) starts the pod runner.  Standard
library only.
"""
import json
import os
import signal
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools/lib"))
import certs  # noqa: E402
from httpjson import http  # noqa: E402
from kube_world import Deployments  # noqa: E402
from procs import check_port_in_use, free_port, start_retrying, wait_for  # noqa: E402

BIN = os.environ.get("AGENTSCALER_CLUSTER_BIN", os.path.join(ROOT, "build/cluster/bin"))
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl",
            "kwok", "agent-sandbox-controller", "sandbox-router", "helm")
STATE = os.path.join(ROOT, "build/cluster/state.json")

# The controllers of kube-controller-manager that the tests rely on.
CONTROLLERS = ("garbage-collector-controller", "namespace-controller", "deployment-controller",
               "replicaset-controller", "statefulset-controller", "resourcequota-controller",
               "serviceaccount-controller", "serviceaccount-token-controller",
               "root-ca-certificate-publisher-controller", "clusterrole-aggregation-controller",
               "disruption-controller",
               # removes the node.kubernetes.io/not-ready taint that
               # admission puts on every new Node once kwok makes it Ready;
               # without it no pod is ever scheduled
               "node-lifecycle-controller")
SANDBOX_NS = "agent-sandbox-system"
SANDBOX_SA = "agent-sandbox-controller"


def missing_binaries(bin_dir=BIN):
    return [b for b in BINARIES if not os.access(os.path.join(bin_dir, b), os.X_OK)]


_module_dirs = {}


def _go():
    """The go command (the polyglot machines keep it in /usr/local/go)."""
    return shutil.which("go") or shutil.which("go", path="/usr/local/go/bin") or "go"


def module_dir(module):
    """The module cache directory of a module pinned in tools/cluster/go.mod."""
    if module not in _module_dirs:
        r = subprocess.run([_go(), "list", "-m", "-f", "{{.Dir}}", module], cwd=HERE,
                           capture_output=True, text=True, timeout=300)
        d = r.stdout.strip()
        if r.returncode != 0 or not d or not os.path.isdir(d):
            # go list -m names the directory even before a download.
            subprocess.run([_go(), "mod", "download", module], cwd=HERE, check=True,
                           capture_output=True, timeout=600)
            r = subprocess.run([_go(), "list", "-m", "-f", "{{.Dir}}", module], cwd=HERE,
                               capture_output=True, text=True, timeout=300)
            d = r.stdout.strip()
        if not d or not os.path.isdir(d):
            raise RuntimeError("go list -m %s: %s" % (module, r.stderr.strip()))
        _module_dirs[module] = d
    return _module_dirs[module]


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def _server_cert(d, ca, name, sans):
    """A serving certificate for sans (a list of "IP:x" / "DNS:y") signed by ca."""
    crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    csr, ext = os.path.join(d, name + ".csr"), os.path.join(d, name + ".ext")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n" % ",".join(sans))
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
             "-out", crt, "-days", "2", "-extfile", ext)
    return crt, key


def _die_with_parent():
    """SIGKILL when the test process dies (PR_SET_PDEATHSIG): a
    kube-apiserver sent SIGTERM after etcd has gone waits in its graceful
    shutdown for ever, and nothing of a throwaway cluster needs saving."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def _stop_pid(pid, timeout=10.0, proc=None):
    """SIGTERM, then SIGKILL after timeout, to one process of ours.  proc:
    its Popen when it is our child (a child that has exited stays a zombie,
    which kill(pid, 0) still finds, until it is waited for)."""
    def gone():
        if proc is not None:
            return proc.poll() is not None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone():
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc is not None:
        proc.wait()


def _kubeconfig(path, url, ca, token, user="admin"):
    cfg = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "e2e", "cluster": {"server": url, "certificate-authority": ca}}],
           "users": [{"name": user, "user": {"token": token}}],
           "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
           "current-context": "e2e"}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


class Cluster(Deployments):
    """A control plane on 127.0.0.1.  nodes: kwok Nodes to make.  pod_cidr:
    where kwok takes pod IPs from (loopback by default, so host processes
    can serve a pod's IP).  detach: children survive this process (cluster.py
    up) instead of dying with it."""

    def __init__(self, bin_dir=BIN, nodes=1, pod_cidr="127.2.0.0/16",
                 service_cidr="127.3.0.0/16", detach=False, keep=None):
        self.bin = bin_dir
        self.nodes = nodes
        self.pod_cidr = pod_cidr
        self.service_cidr = service_cidr
        self.detach = detach
        self.keep = os.environ.get("AGENTSCALER_CLUSTER_KEEP") == "1" if keep is None else keep
        self.dir = None
        self.procs = {}          # name -> Popen
        self.url = self.ca = self.admin_token = self.kubeconfig = None
        self.router_url = None
        self._runner = None
        self._ssl = None

    # ---- processes ----

    def _spawn(self, name, argv, env=None):
        log = open(os.path.join(self.dir, "logs", name + ".log"), "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 cwd=self.dir, env=env or os.environ.copy(),
                                 start_new_session=True,
                                 preexec_fn=None if self.detach else _die_with_parent)
        finally:
            log.close()
        self.procs[name] = p
        return p

    def _alive(self, name):
        p = self.procs[name]
        if p.poll() is not None:
            # A port taken between free_port() and its bind: start()
            # begins again on other ports.
            check_port_in_use(self.log_tail(name), name)
            raise RuntimeError("%s exited with %s; its log: %s" % (
                name, p.returncode, self.log_tail(name)))
        return True

    def log_tail(self, name, n=4000):
        try:
            with open(os.path.join(self.dir, "logs", name + ".log"), "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - n))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _wait(self, name, pred, timeout, what):
        def check():
            self._alive(name)
            return pred()
        return wait_for(check, timeout=timeout, interval=0.1, what=what)

    def _probe(self, url, token=None, verify=True):
        req = urllib.request.Request(url)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        ctx = None
        if url.startswith("https"):
            ctx = self._ssl if verify else ssl._create_unverified_context()
        try:
            with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    # ---- start / stop ----

    def start(self):
        missing = missing_binaries(self.bin)
        if missing:
            raise RuntimeError("missing %s in %s: run `make cluster`" % (
                ", ".join(missing), self.bin))

        def attempt():
            """Everything stopped (and its files gone) when it fails; a
            component whose port was taken fails it with PortInUse, and the
            whole control plane starts again on other ports (a minute, on
            what is a rare race: see procs.free_port)."""
            self.dir = tempfile.mkdtemp(prefix="agentscaler-cluster-")
            os.makedirs(os.path.join(self.dir, "logs"))
            try:
                self._start()
            except BaseException:
                self.stop()
                raise
        start_retrying(attempt, attempts=3)
        return self

    def _start(self):
        t0 = time.monotonic()
        self.timings = {}
        d = self.dir
        pki = os.path.join(d, "pki")
        os.makedirs(pki)
        ca = certs.make_ca(pki, "cluster-ca")
        self.ca = ca[0]
        self._ssl = ssl.create_default_context(cafile=self.ca)
        svc_ip = _first_ip(self.service_cidr)
        tls = _server_cert(pki, ca, "kube-apiserver",
                           ["IP:127.0.0.1", "IP:" + svc_ip, "DNS:localhost", "DNS:kubernetes",
                            "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                            "DNS:kubernetes.default.svc.cluster.local"])
        sa_key, sa_pub = os.path.join(pki, "sa.key"), os.path.join(pki, "sa.pub")
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                 "-out", sa_key)
        _openssl("pkey", "-in", sa_key, "-pubout", "-out", sa_pub)
        tok = lambda: os.urandom(16).hex()  # noqa: E731
        self.admin_token = tok()
        kcm_token, sched_token, kwok_token = tok(), tok(), tok()
        tokens = os.path.join(pki, "tokens.csv")
        with open(tokens, "w") as f:
            f.write('%s,admin,uid-admin,"system:masters"\n' % self.admin_token)
            f.write("%s,system:kube-controller-manager,uid-kcm\n" % kcm_token)
            f.write("%s,system:kube-scheduler,uid-scheduler\n" % sched_token)
            f.write('%s,kwok,uid-kwok,"system:masters"\n' % kwok_token)
        os.chmod(tokens, 0o600)

        # etcd
        ec, ep = free_port(), free_port()
        etcd_url = "http://127.0.0.1:%d" % ec
        self._spawn("etcd", [
            self._b("etcd"), "--name", "e2e", "--data-dir", os.path.join(d, "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", "http://127.0.0.1:%d" % ep,
            "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % ep,
            "--initial-cluster", "e2e=http://127.0.0.1:%d" % ep,
            "--unsafe-no-fsync", "--log-level", "warn"])
        self._wait("etcd", lambda: self._probe(etcd_url + "/health"), 30, "etcd /health")
        self.timings["etcd"] = time.monotonic() - t0

        # kube-apiserver, with an audit log of each request's outcome (who,
        # what, the answer code): how the tests see a 403 (audit()).  The
        # control plane's own requests, most of the volume, are left out.
        self.audit_log = os.path.join(d, "logs", "audit.log")
        audit_policy = os.path.join(d, "audit-policy.json")
        with open(audit_policy, "w") as f:
            json.dump({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                       "omitStages": ["RequestReceived"], "rules": [
                           {"level": "None", "users": [
                               "system:apiserver", "system:kube-controller-manager",
                               "system:kube-scheduler", "kwok"]},
                           {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},
                           {"level": "Metadata"}]}, f)
        port = free_port()
        self.url = "https://127.0.0.1:%d" % port
        self._spawn("kube-apiserver", [
            self._b("kube-apiserver"),
            "--etcd-servers", etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(port),
            "--tls-cert-file", tls[0], "--tls-private-key-file", tls[1],
            "--client-ca-file", self.ca,
            "--token-auth-file", tokens,
            "--service-account-key-file", sa_pub,
            "--service-account-signing-key-file", sa_key,
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--authorization-mode", "Node,RBAC",
            "--enable-admission-plugins", "NamespaceLifecycle,LimitRanger,ServiceAccount,"
            "DefaultStorageClass,ResourceQuota",
            # It taints each new Node not-ready until node-lifecycle-controller
            # clears it; that controller is not run (kwok's nodes are always
            # Ready), so the taint would stay and nothing would schedule.
            "--disable-admission-plugins", "TaintNodesByCondition",
            "--service-cluster-ip-range", self.service_cidr,
            # The master lease/endpoints reconciler would publish 127.0.0.1
            # as the kubernetes Service's endpoint, which validation refuses.
            "--endpoint-reconciler-type", "none",
            "--audit-policy-file", audit_policy, "--audit-log-path", self.audit_log,
            "--audit-log-format", "json", "--audit-log-mode", "blocking",
            "--allow-privileged=true", "--profiling=false", "--v=1"])
        self._wait("kube-apiserver",
                   lambda: self._probe(self.url + "/readyz", self.admin_token), 90,
                   "kube-apiserver /readyz")
        self.timings["kube-apiserver"] = time.monotonic() - t0
        self.kubeconfig = _kubeconfig(os.path.join(d, "admin.kubeconfig"), self.url, self.ca,
                                      self.admin_token)

        # kube-controller-manager, kube-scheduler
        kcm_port, sched_port = free_port(), free_port()
        kcm_kc = _kubeconfig(os.path.join(d, "kcm.kubeconfig"), self.url, self.ca, kcm_token,
                             "system:kube-controller-manager")
        self._spawn("kube-controller-manager", [
            self._b("kube-controller-manager"), "--kubeconfig", kcm_kc,
            "--authentication-kubeconfig", kcm_kc, "--authorization-kubeconfig", kcm_kc,
            "--bind-address", "127.0.0.1", "--secure-port", str(kcm_port),
            "--cert-dir", os.path.join(d, "kcm-certs"),
            "--controllers", ",".join(CONTROLLERS),
            "--use-service-account-credentials=true",
            "--service-account-private-key-file", sa_key, "--root-ca-file", self.ca,
            "--service-cluster-ip-range", self.service_cidr,
            "--leader-elect=false", "--concurrent-deployment-syncs", "5",
            "--v=1"])
        sched_kc = _kubeconfig(os.path.join(d, "scheduler.kubeconfig"), self.url, self.ca,
                               sched_token, "system:kube-scheduler")
        self._spawn("kube-scheduler", [
            self._b("kube-scheduler"), "--kubeconfig", sched_kc,
            "--authentication-kubeconfig", sched_kc, "--authorization-kubeconfig", sched_kc,
            "--bind-address", "127.0.0.1", "--secure-port", str(sched_port),
            "--cert-dir", os.path.join(d, "scheduler-certs"),
            "--leader-elect=false", "--v=1"])

        # kwok: stages from its module; nodes labelled for it.
        kwok_dir = module_dir("sigs.k8s.io/kwok")
        # kwok's own node and pod stages, but deletion: stages.yaml (ours)
        # stops a deleted pod's containers first, as a kubelet does.
        stages = [os.path.join(kwok_dir, "kustomize/stage", s) for s in (
            "node/fast/node-initialize.yaml", "pod/fast/pod-ready.yaml",
            "pod/fast/pod-complete.yaml")] + [os.path.join(HERE, "stages.yaml")]
        kwok_kc = _kubeconfig(os.path.join(d, "kwok.kubeconfig"), self.url, self.ca, kwok_token,
                              "kwok")
        argv = [self._b("kwok"), "--kubeconfig", kwok_kc,
                "--manage-nodes-with-label-selector", "agentscaler.dev/kwok=true",
                "--cidr", self.pod_cidr, "--node-ip", "127.0.0.1",
                # node heartbeats (Leases), which the node lifecycle
                # controller needs to keep the nodes Ready
                "--node-lease-duration-seconds", "40"]
        for s in stages:
            argv += ["--config", s]
        self._spawn("kwok", argv)
        self.timings["spawned"] = time.monotonic() - t0

        self._wait("kube-controller-manager",
                   lambda: self._probe("https://127.0.0.1:%d/healthz" % kcm_port, verify=False),
                   60, "kube-controller-manager /healthz")
        self._wait("kube-scheduler",
                   lambda: self._probe("https://127.0.0.1:%d/healthz" % sched_port,
                                       verify=False),
                   60, "kube-scheduler /healthz")
        for i in range(self.nodes):
            self._create_node("kwok-node-%d" % i)
        for i in range(self.nodes):
            name = "kwok-node-%d" % i
            self._wait("kwok", lambda: self._node_ready(name), 60, "node %s Ready" % name)
        self.timings["nodes"] = time.monotonic() - t0
        self._wait("kube-controller-manager", lambda: self._has_sa("default", "default"), 60,
                   "ServiceAccount default/default")

        self._install_agent_sandbox()
        self.timings["crds"] = time.monotonic() - t0
        sa_kc = _kubeconfig(os.path.join(d, "agent-sandbox.kubeconfig"), self.url, self.ca,
                            self.token_for(SANDBOX_NS, SANDBOX_SA),
                            "system:serviceaccount:%s:%s" % (SANDBOX_NS, SANDBOX_SA))
        probe, metrics = free_port(), free_port()
        self._spawn("agent-sandbox-controller", [
            self._b("agent-sandbox-controller"), "--kubeconfig", sa_kc, "--extensions",
            "--leader-elect=false",
            "--metrics-bind-address", "127.0.0.1:%d" % metrics,
            "--health-probe-bind-address", "127.0.0.1:%d" % probe])
        self.sandbox_metrics_url = "http://127.0.0.1:%d/metrics" % metrics
        self._wait("agent-sandbox-controller",
                   lambda: self._probe("http://127.0.0.1:%d/readyz" % probe), 60,
                   "agent-sandbox-controller /readyz")

        rport, rprobe, rmetrics = free_port(), free_port(), free_port()
        self.router_url = "http://127.0.0.1:%d" % rport
        self._spawn("sandbox-router", [
            self._b("sandbox-router"), "--http-bind-address", "127.0.0.1:%d" % rport,
            "--https-bind-address", "", "--metrics-bind-address", "127.0.0.1:%d" % rmetrics,
            "--health-probe-bind-address", "127.0.0.1:%d" % rprobe,
            "--allow-loopback-pod-ip", "--cache-enabled=false"])
        self._wait("sandbox-router", lambda: self._probe("http://127.0.0.1:%d/readyz" % rprobe),
                   60, "sandbox-router /readyz")
        self.timings["ready"] = time.monotonic() - t0

    def _b(self, name):
        return os.path.join(self.bin, name)

    def stop(self):
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
        for name in reversed(list(self.procs)):
            p = self.procs[name]
            if p.poll() is None:
                _stop_pid(p.pid, proc=p)
        self.procs = {}
        if self.dir and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- API ----

    def api(self, method, path, body=None, ctype="application/json", timeout=30):
        """(code, parsed JSON or text), as KubeSim.api."""
        return http(method, self.url + path, body, ctype, timeout=timeout,
                    headers={"Authorization": "Bearer " + self.admin_token,
                             "Accept": "application/json"}, cafile=self.ca)

    def audit(self, user=None):
        """The audit events (audit.k8s.io/v1 Event, level Metadata: user,
        verb, requestURI, objectRef, responseStatus.code) the API server has
        logged so far, of user (a username) or of everyone.  The log is
        written before each response is sent (blocking mode), so a request
        answered is a request logged."""
        out = []
        try:
            with open(self.audit_log, "rb") as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:      # the line being written
                        continue
                    if user is None or e.get("user", {}).get("username") == user:
                        out.append(e)
        except FileNotFoundError:
            pass
        return out

    def forbidden(self, user):
        """user's requests answered 403, as (verb, requestURI) pairs."""
        return [(e.get("verb"), e.get("requestURI")) for e in self.audit(user)
                if e.get("responseStatus", {}).get("code") == 403]

    def _must(self, method, path, body=None, ok=(200, 201), ctype="application/json"):
        code, obj = self.api(method, path, body, ctype)
        if code not in ok:
            raise RuntimeError("%s %s: %s %s" % (method, path, code, obj))
        return obj

    def kubectl(self, *args, stdin=None, check=True, timeout=120):
        """Runs the kubectl built with the cluster against it (admin)."""
        r = subprocess.run([self._b("kubectl"), "--kubeconfig", self.kubeconfig] + list(args),
                           input=stdin, capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, HOME=self.dir))
        if check and r.returncode != 0:
            raise RuntimeError("kubectl %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r

    def _has_sa(self, ns, name):
        code, _ = self.api("GET", "/api/v1/namespaces/%s/serviceaccounts/%s" % (ns, name))
        return code == 200

    def _node_ready(self, name):
        code, obj = self.api("GET", "/api/v1/nodes/" + name)
        if code != 200:
            return False
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in (obj.get("status") or {}).get("conditions") or [])

    def _create_node(self, name):
        self._must("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "agentscaler.dev/kwok": "true", "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"},
                "annotations": {"kwok.x-k8s.io/node": "fake",
                                "node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {}})

    def _install_agent_sandbox(self):
        """The controller's namespace, ServiceAccount, RBAC and CRDs from
        sigs.k8s.io/agent-sandbox's k8s/ folder (not its Deployment and
        Service: the controller runs here as a host process)."""
        k8s = os.path.join(module_dir("sigs.k8s.io/agent-sandbox"), "k8s")
        objs = []
        for f in ("controller.yaml", "rbac.generated.yaml", "extensions.yaml",
                  "extensions-rbac.generated.yaml"):
            r = self.kubectl("create", "--dry-run=client", "-o", "json", "-f",
                             os.path.join(k8s, f))
            objs += _json_stream(r.stdout)
        objs = [o for o in objs if o["kind"] not in ("Deployment", "Service")]
        path = os.path.join(self.dir, "agent-sandbox-install.json")
        with open(path, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": objs}, f)
        self.kubectl("apply", "--server-side", "-f", path)
        self.kubectl("apply", "--server-side", "-f", os.path.join(k8s, "crds"))
        for crd in ("sandboxes.agents.x-k8s.io", "sandboxclaims.extensions.agents.x-k8s.io",
                    "sandboxtemplates.extensions.agents.x-k8s.io",
                    "sandboxwarmpools.extensions.agents.x-k8s.io"):
            wait_for(lambda: self._crd_established(crd), timeout=60, interval=0.1,
                     what="CRD %s Established" % crd)
        wait_for(lambda: self._has_sa(SANDBOX_NS, SANDBOX_SA), timeout=30, interval=0.1,
                 what="ServiceAccount %s/%s" % (SANDBOX_NS, SANDBOX_SA))

    def _crd_established(self, name):
        code, obj = self.api("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                             + name)
        return code == 200 and any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (obj.get("status") or {}).get("conditions") or [])

    def token_for(self, namespace, serviceaccount, seconds=86400, audiences=None):
        """A bound token of the ServiceAccount (TokenRequest); the account is
        made when missing."""
        if not self._has_sa(namespace, serviceaccount):
            code, obj = self.api("POST", "/api/v1/namespaces/%s/serviceaccounts" % namespace,
                                 {"apiVersion": "v1", "kind": "ServiceAccount",
                                  "metadata": {"name": serviceaccount}})
            if code not in (201, 409):
                raise RuntimeError("create serviceaccount: %s %s" % (code, obj))
        spec = {"expirationSeconds": seconds}
        if audiences:
            spec["audiences"] = list(audiences)
        obj = self._must("POST", "/api/v1/namespaces/%s/serviceaccounts/%s/token" % (
            namespace, serviceaccount),
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        return obj["status"]["token"]

    def create_namespace(self, ns):
        code, obj = self.api("POST", "/api/v1/namespaces",
                             {"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": ns}})
        if code not in (201, 409):
            raise RuntimeError("create namespace: %s %s" % (code, obj))
        # Pods are refused until the namespace's default ServiceAccount exists.
        wait_for(lambda: self._has_sa(ns, "default"), timeout=30, interval=0.05,
                 what="ServiceAccount %s/default" % ns)

    def pods(self, ns="default", selector=None):
        path = "/api/v1/namespaces/%s/pods" % ns
        if selector:
            path += "?labelSelector=" + urllib.request.quote(selector)
        return self._must("GET", path)["items"]

    # ---- pod runner ----

    def run_pods(self, hook, namespaces=None, interval=0.1):
        """Starts the pod runner: hook(pod) is called once for each Running
        pod owned by a Sandbox and returns argv to run for it (or None to
        leave the pod alone), with POD_IP, POD_NAME and POD_NAMESPACE in its
        environment.  When the command exits, the pod is moved to Succeeded
        (exit 0) or Failed, as the kubelet would.  Returns the runner."""
        if self._runner is not None:
            self._runner.stop()
        self._runner = PodRunner(self, hook, namespaces, interval)
        self._runner.start()
        return self._runner

    def set_pod_phase(self, ns, name, phase, exit_code=None, reason=None):
        """Moves a pod to a terminal phase as the kubelet would: containers
        terminated, Ready and ContainersReady False."""
        code, pod = self.api("GET", "/api/v1/namespaces/%s/pods/%s" % (ns, name))
        if code != 200:
            return code
        if exit_code is None:
            exit_code = 0 if phase == "Succeeded" else 1
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        term = {"exitCode": exit_code, "reason": reason or (
            "Completed" if exit_code == 0 else "Error"), "startedAt": now, "finishedAt": now}
        statuses = []
        for c in pod["spec"]["containers"]:
            statuses.append({"name": c["name"], "image": c.get("image", ""),
                             "imageID": "", "ready": False, "restartCount": 0,
                             "started": False, "state": {"terminated": term}})
        conds = []
        for c in pod.get("status", {}).get("conditions", []):
            if c["type"] in ("Ready", "ContainersReady"):
                c = dict(c, status="False", reason="PodCompleted" if phase == "Succeeded"
                         else "PodFailed", lastTransitionTime=now)
            conds.append(c)
        status = dict(pod.get("status", {}), phase=phase, conditions=conds,
                      containerStatuses=statuses)
        code, _ = self.api("PUT", "/api/v1/namespaces/%s/pods/%s/status" % (ns, name),
                           dict(pod, status=status))
        return code


def _json_stream(text):
    """The objects of kubectl -o json output: one object, a List, or several
    objects one after another (kubectl prints one per input document)."""
    dec, i, out = json.JSONDecoder(), 0, []
    text = text.strip()
    while i < len(text):
        obj, i = dec.raw_decode(text, i)
        while i < len(text) and text[i].isspace():
            i += 1
        out += obj["items"] if obj.get("kind") == "List" else [obj]
    return out


def _first_ip(cidr):
    import ipaddress
    return str(next(ipaddress.ip_network(cidr).hosts()))


class PodRunner:
    """See Cluster.run_pods."""

    def __init__(self, cluster, hook, namespaces, interval):
        self.cluster, self.hook, self.interval = cluster, hook, interval
        self.namespaces = namespaces
        self.seen = {}             # uid -> Popen or None
        self.results = {}          # "ns/name" -> (exit code, phase code)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors = []

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        for p in list(self.seen.values()):
            if p is not None and p.poll() is None:
                _stop_pid(p.pid, 5, proc=p)

    def _list(self):
        if self.namespaces:
            out = []
            for ns in self.namespaces:
                code, obj = self.cluster.api("GET", "/api/v1/namespaces/%s/pods" % ns)
                if code == 200:
                    out += obj["items"]
            return out
        code, obj = self.cluster.api("GET", "/api/v1/pods")
        return obj["items"] if code == 200 else []

    def _loop(self):
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as e:  # keep running; the test reads errors
                self.errors.append(repr(e))
            self._stop.wait(self.interval)

    def _tick(self):
        for pod in self._list():
            md, st = pod["metadata"], pod.get("status", {})
            uid = md["uid"]
            if uid in self.seen:
                continue
            if st.get("phase") != "Running" or not st.get("podIP") or md.get(
                    "deletionTimestamp"):
                continue
            if not any(o.get("kind") == "Sandbox" and o.get("controller")
                       for o in md.get("ownerReferences", [])):
                continue
            argv = self.hook(pod)
            if not argv:
                self.seen[uid] = None
                continue
            env = dict(os.environ, POD_IP=st["podIP"], POD_NAME=md["name"],
                       POD_NAMESPACE=md["namespace"])
            log = open(os.path.join(self.cluster.dir, "logs",
                                    "pod-%s-%s.log" % (md["namespace"], md["name"])), "ab")
            try:
                p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log, start_new_session=True,
                                     preexec_fn=_die_with_parent)
            finally:
                log.close()
            self.seen[uid] = p
            threading.Thread(target=self._reap, args=(p, md["namespace"], md["name"]),
                             daemon=True).start()

    def _reap(self, p, ns, name):
        rc = p.wait()
        if self._stop.is_set():
            return
        phase = "Succeeded" if rc == 0 else "Failed"
        code = self.cluster.set_pod_phase(ns, name, phase, exit_code=rc if rc >= 0 else 137)
        self.results["%s/%s" % (ns, name)] = (rc, code)


def _up():
    c = Cluster(detach=True, keep=True)
    c.start()
    state = {"dir": c.dir, "url": c.url, "ca": c.ca, "kubeconfig": c.kubeconfig,
             "admin_token": c.admin_token, "router": c.router_url,
             "pids": {n: p.pid for n, p in c.procs.items()}, "timings": c.timings}
    os.makedirs(os.path.dirname(STATE), exist_ok=True)
    with open(STATE, "w") as f:
        json.dump(state, f, indent=1)
    print("cluster up in %.1f s: %s" % (c.timings["ready"], c.url))
    print("export KUBECONFIG=%s" % c.kubeconfig)
    print("state: %s" % STATE)


def _down():
    try:
        with open(STATE) as f:
            state = json.load(f)
    except FileNotFoundError:
        print("no cluster is up (%s missing)" % STATE)
        return
    for name, pid in reversed(list(state["pids"].items())):
        # Only a PID that still runs our binary: it may have been reused.
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                exe = f.read().split(b"\0")[0].decode()
        except OSError:
            continue
        if exe == os.path.join(BIN, name):
            _stop_pid(pid)
    shutil.rmtree(state["dir"], ignore_errors=True)
    os.unlink(STATE)
    print("cluster down")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "up":
        _up()
    elif cmd == "down":
        _down()
    else:
        sys.stderr.write("usage: cluster.py up|down\n")
        sys.exit(2)
