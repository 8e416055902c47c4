"""The real control plane for the e2e suites (issue 13).

One cluster (tools/cluster/cluster.py: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok, the agent-sandbox controller
and its router, built from pinned Go modules) serves every e2e module of a
test process: started on first use, stopped at exit.  Each test works in
namespaces of its own.

The daemon under test runs as the chart's ServiceAccount: the RBAC objects
are rendered by the real Helm from charts/agentscaler (default values,
release "agentscaler" in namespace CHART_NAMESPACE) and applied once, and
each Daemon gets a TokenRequest token of that account.  So every request
the daemon makes meets the real RBAC authorizer; a 403 to it fails the test
(RealKube.forbidden() reads the API server's audit log).

Without build/cluster/bin the suites fail (`make cluster` builds it), unless
AGENTSCALER_E2E_OPTIONAL=1, when they skip and say so.
"""
import atexit
import json
import os
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
import chart  # noqa: E402
import world  # noqa: E402

CHART = chart.CHART
CHART_NAMESPACE = "agentscaler"
RELEASE = "agentscaler"

_lock = threading.Lock()
_cluster = None
_chart_sa = None


def cluster():
    """The process's cluster, started on first use."""
    global _cluster
    with _lock:
        if _cluster is None:
            import cluster as cluster_mod
            missing = cluster_mod.missing_binaries()
            if missing:
                msg = "build/cluster/bin lacks %s: run `make cluster`" % ", ".join(missing)
                if os.environ.get("AGENTSCALER_E2E_OPTIONAL") == "1":
                    raise unittest.SkipTest(msg + " (AGENTSCALER_E2E_OPTIONAL=1)")
                raise AssertionError(msg)
            c = cluster_mod.Cluster()
            c.start()
            atexit.register(c.stop)
            _cluster = c
        return _cluster


def helm(*args, check=True):
    """helm (tools/lib/chart.py) against the cluster, as its administrator."""
    c = cluster()
    return chart.helm(*args, kubeconfig=c.kubeconfig, home=c.dir, check=check)


def chart_service_account():
    """(namespace, name) of the chart's ServiceAccount, its RBAC applied."""
    global _chart_sa
    with _lock:
        if _chart_sa is not None:
            return _chart_sa
    c = cluster()
    c.create_namespace(CHART_NAMESPACE)
    out = helm("template", RELEASE, CHART, "--namespace", CHART_NAMESPACE,
               "-f", chart.IMAGE_VALUES).stdout
    keep = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    docs = [d for d in yaml_docs(out) if d.get("kind") in keep]
    path = os.path.join(c.dir, "chart-rbac.json")
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": docs}, f)
    c.kubectl("apply", "-f", path)
    sa = [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"]
    if len(sa) != 1:
        raise AssertionError("the chart renders %d ServiceAccounts" % len(sa))
    with _lock:
        _chart_sa = (CHART_NAMESPACE, sa[0])
    return _chart_sa


def yaml_docs(text):
    """The documents of helm's YAML output, as JSON objects."""
    return chart.parse(text)


class RealKube:
    """Stands where world.KubeSim stands for world.Daemon and the tests:
    url, ca, api(), create_deployment(), replicas(), plus daemon_args()
    (the chart ServiceAccount's token and the cluster's CA)."""

    def __init__(self, sa=None):
        """sa: (namespace, name) of the ServiceAccount the daemon runs as;
        by default the chart's, its RBAC applied (chart_service_account)."""
        self.c = cluster()
        self.url, self.ca = self.c.url, self.c.ca
        self.admin = None               # no kube-sim admin port here
        self.token = self.c.admin_token  # the tests' own (and the agents')
        self.sa = sa or chart_service_account()
        self.sa_user = "system:serviceaccount:%s:%s" % self.sa
        self.token_dir = tempfile.mkdtemp(prefix="e2e-token-")

    def api(self, method, path, body=None, ctype="application/json"):
        return self.c.api(method, path, body, ctype)

    def create_namespace(self, ns):
        self.c.create_namespace(ns)

    def create_deployment(self, name, replicas=0, ns="default"):
        return self.c.create_deployment(name, replicas, ns)

    def replicas(self, name, ns="default"):
        return self.c.replicas(name, ns)

    def pods(self, ns, selector=None):
        return self.c.pods(ns, selector)

    def forbidden(self):
        """The daemon's requests the API server answered 403 (audit log)."""
        return self.c.forbidden(self.sa_user)

    def daemon_args(self, directory):
        path = os.path.join(directory, "sa-token")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.c.token_for(*self.sa))
        return ["--ca-file", self.ca, "--token-file", path]

    def stop(self):
        import shutil
        shutil.rmtree(self.token_dir, ignore_errors=True)


class E2ETestCase(world.DaemonTestCase):
    """A daemon test on the real cluster, in a namespace of its own
    (self.ns, "<prefix>-<6 hex>"): any request of the daemon's
    ServiceAccount answered 403 during the test fails it."""
    prefix = "e2e"
    kube_class = RealKube

    def setUp(self):
        super().setUp()
        self.kube = self.kube_class()
        self.addCleanup(self.kube.stop)
        self.ns = "%s-%s" % (self.prefix, os.urandom(3).hex())
        self.kube.create_namespace(self.ns)
        self.denied_before = len(self.kube.forbidden())

    def tearDown(self):
        super().tearDown()
        denied = self.kube.forbidden()[self.denied_before:]
        self.assertEqual(denied, [], "the chart's RBAC denied the daemon")
