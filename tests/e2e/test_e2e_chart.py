"""The chart on the real control plane (issue 13): `helm install` of
charts/agentscaler, `helm upgrade` with other values, and the daemon run
with what the installed chart gives it, under the real RBAC authorizer.

The daemon runs as a host process, not in the chart's pods (kwok's pods run
nothing): with the container arguments of the Deployment Helm installed,
the token of the ServiceAccount it installed (TokenRequest) and the
cluster's CA, in CRD mode.  An AgentPool on a Redis list whose password is a
Secret of the pool's namespace scales a Deployment 0 -> N -> 0.  After the
upgrade (secretAccess.mode namespaces: the Secret rule moves from the
ClusterRole to a Role of the team's namespace; three replicas) the daemon is
started again with the new arguments and does the same.  Any request of the
ServiceAccount answered 403 (the API server's audit log) fails the test.

Another release installs values-all.yaml: every object every option makes,
accepted by the real API server's validation.

Every wait is a bounded wait on a condition of the cluster.
"""
import base64
import json
import os
import secrets
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
from tests.e2e import kube  # noqa: E402
import chart  # noqa: E402
import world  # noqa: E402
from world import wait_for  # noqa: E402

VALUES_ALL = os.path.join(HERE, "..", "chart", "values-all.yaml")
CRDS = ("agentpools.agentscaler.io", "agentquotas.agentscaler.io")
FAST = dict(pollIntervalMs=200, cooldownSeconds=1, scaleDownStabilizationSeconds=1)
PASSWORD = "e2e-" + secrets.token_hex(8)
# A minimal ServiceMonitor CRD, as the Prometheus Operator would install it.
def operator_crd(kind, plural):
    """A stand-in CRD of the Prometheus Operator's kind (its schema open):
    what lets the API server hold the chart's monitoring objects."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": plural + ".monitoring.coreos.com"},
        "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
                 "names": {"plural": plural, "singular": kind.lower(),
                           "kind": kind, "listKind": kind + "List"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                         "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}


# The monitoring kinds values-all.yaml turns on (ServiceMonitor and, since
# issue 19, PrometheusRule).
OPERATOR_CRDS = [("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules")]


def live(c, objs):
    """The objects as the API server holds them, in the order given
    (kubectl get -f of the rendered objects)."""
    path = os.path.join(c.dir, "rendered-%s.json" % secrets.token_hex(4))
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": objs}, f)
    out = json.loads(c.kubectl("get", "-f", path, "-o", "json").stdout)
    return out["items"] if out.get("kind") == "List" else [out]


def key(o):
    return (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])


class ChartE2E(world.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.c = kube.cluster()
        suffix = secrets.token_hex(3)
        self.release = "e2e-" + suffix          # cluster-wide names differ per test
        self.ns = "chart-" + suffix
        self.team = "team-" + suffix
        self.c.create_namespace(self.team)
        self.addCleanup(self.uninstall)

    def uninstall(self):
        kube.helm("uninstall", self.release, "--namespace", self.ns, "--wait",
                  "--timeout", "60s", check=False)

    def helm_install(self, verb, values):
        """helm install or upgrade; the objects `helm template` renders for
        the same values (what the release must hold)."""
        vf = os.path.join(self.c.dir, "values-%s-%s.json" % (self.release, verb))
        with open(vf, "w") as f:
            json.dump(values, f)
        extra = ["--create-namespace"] if verb == "install" else []
        kube.helm(verb, self.release, chart.CHART, "--namespace", self.ns,
                  "-f", chart.IMAGE_VALUES, "-f", vf, *extra)
        _text, objs = chart.template([vf], self.release, self.ns)
        return objs

    def check_installed(self, objs, revision):
        """Every rendered object exists as rendered; the release is deployed."""
        st = json.loads(kube.helm("status", self.release, "--namespace", self.ns,
                                  "-o", "json").stdout)
        self.assertEqual(st["info"]["status"], "deployed")
        self.assertEqual(st["version"], revision)
        got = {key(o): o for o in live(self.c, objs)}
        for want in objs:
            o = got[key(want)]
            with self.subTest(object=key(want), revision=revision):
                for k, v in want["metadata"].get("labels", {}).items():
                    self.assertEqual(o["metadata"]["labels"].get(k), v)
                for field in ("rules", "roleRef", "subjects"):
                    if field in want:
                        self.assertEqual(o[field], want[field])
                if want["kind"] == "Deployment":
                    self.assertEqual(o["spec"]["replicas"], want["spec"]["replicas"])
                    self.assertEqual(o["spec"]["template"]["spec"]["containers"][0]["args"],
                                     want["spec"]["template"]["spec"]["containers"][0]["args"])
                if want["kind"] == "NetworkPolicy":
                    self.assertEqual(o["spec"], want["spec"])
        return got

    def one(self, objs, kind, name=None):
        found = [o for o in objs if o["kind"] == kind and
                 (name is None or o["metadata"]["name"] == name)]
        self.assertEqual(len(found), 1, [key(o) for o in found])
        return found[0]

    def deployment_ready(self, name, want):
        code, d = self.c.api("GET", "/apis/apps/v1/namespaces/%s/deployments/%s" % (
            self.ns, name))
        return code == 200 and d.get("status", {}).get("readyReplicas", 0) == want

    def start_chart_daemon(self, objs, rk):
        """The daemon with the installed Deployment's container arguments
        (addresses and the Secrets directory moved to this host), its
        instance name from a pod of the Deployment, as the chart's
        AGENTSCALER_INSTANCE fieldRef gives it."""
        dep = self.one(objs, "Deployment")
        c = dep["spec"]["template"]["spec"]["containers"][0]
        secrets_dir = tempfile.mkdtemp(prefix="e2e-secrets-")
        self.addCleanup(os.rmdir, secrets_dir)
        args = []
        for a in c["args"]:
            if a.startswith(("--metrics-addr=", "--admin-addr=")):
                continue        # world.Daemon binds free loopback ports
            if a.startswith("--secrets-dir="):
                a = "--secrets-dir=" + secrets_dir
            args.append(a)
        env = dict(os.environ, AGENTSCALER_INSTANCE=self.release + "-pod-0")
        self.daemon = world.Daemon(None, rk, extra=args, env=env)
        wait_for(lambda: self.daemon.get("/readyz")[0] == 200
                 if self.daemon.proc.poll() is None else self.fail(self.daemon.logs()[-5000:]),
                 60, 0.1, "the daemon's /readyz")
        return args

    def stop_daemon(self):
        rc = self.daemon.stop()
        logs = self.daemon.logs()
        self.daemon.cleanup()
        self.daemon = None
        self.assertEqual(rc, 0, logs[-5000:])

    def scale_once(self, redis, pool, target, want):
        """Tasks in, the target scaled to want; tasks out, to zero."""
        conn = world.RespConn(redis.url, password=PASSWORD)
        self.addCleanup(conn.close)
        queue = pool["spec"]["source"]["queue"]
        n = pool["spec"]["scaling"]["tasksPerReplica"] * want
        conn.pipeline([("LPUSH", queue, json.dumps({"id": "t%d" % i})) for i in range(n)])
        wait_for(lambda: self.c.replicas(target, self.team) == want, 60, 0.1,
                 "%s scaled to %d (log: %s)" % (target, want, self.daemon.logs()[-3000:]))
        conn.cmd("DEL", queue)
        wait_for(lambda: self.c.replicas(target, self.team) == 0, 60, 0.1,
                 "%s scaled to zero" % target)

    def pool_ready(self, name):
        code, p = self.c.api("GET", "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentpools/%s"
                             % (self.team, name))
        return code == 200 and any(c["type"] == "Ready" and c["status"] == "True"
                                   for c in p.get("status", {}).get("conditions", []))

    def test_1_install_upgrade_and_run(self):
        crds_before = {n: self.c._crd_established(n) for n in CRDS}

        # ---- helm install, default values ----
        objs = self.helm_install("install", {})
        for n in CRDS:
            with self.subTest(crd=n):
                if crds_before[n]:
                    self.skipTest("%s was in the cluster before the install" % n)
                # crds/ is installed by helm install, before the templates
                wait_for(lambda: self.c._crd_established(n), 60, 0.1, "CRD %s" % n)
        full = self.release + "-agentscaler"
        self.assertEqual(sorted(key(o) for o in objs), sorted([
            ("ClusterRole", None, full), ("ClusterRoleBinding", None, full),
            ("Deployment", self.ns, full), ("NetworkPolicy", self.ns, full),
            ("Role", self.ns, full + "-leader-election"),
            ("RoleBinding", self.ns, full + "-leader-election"),
            ("Service", self.ns, full + "-metrics"), ("ServiceAccount", self.ns, full)]))
        self.check_installed(objs, 1)
        cr = self.one(objs, "ClusterRole")
        self.assertIn({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
                      cr["rules"])
        # kwok readies the chart's pods (they run nothing)
        wait_for(lambda: self.deployment_ready(full, 2), 60, 0.2, "2 pods of %s Ready" % full)

        # ---- the daemon as the installed chart runs it ----
        sa = (self.ns, self.one(objs, "ServiceAccount")["metadata"]["name"])
        rk = kube.RealKube(sa=sa)
        self.addCleanup(rk.stop)
        redis = world.Redis(extra=["--requirepass", PASSWORD])
        self.addCleanup(redis.stop)
        self.c._must("POST", "/api/v1/namespaces/%s/secrets" % self.team, {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-auth"},
            "data": {"password": base64.b64encode(PASSWORD.encode()).decode()}})
        self.c.create_deployment("agents", 0, self.team)
        pool = {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentPool",
                "metadata": {"name": "coder", "namespace": self.team},
                "spec": {"mode": "scale",
                         "source": {"type": "redis-list", "address": redis.url,
                                    "queue": "tasks",
                                    "authSecretRef": {"name": "redis-auth",
                                                      "key": "password"}},
                         "target": {"kind": "Deployment", "name": "agents"},
                         "scaling": dict(tasksPerReplica=2, maxReplicas=5, **FAST)}}
        self.c._must("POST", "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentpools"
                     % self.team, pool)
        args = self.start_chart_daemon(objs, rk)
        self.assertIn("--leader-elect", args)
        self.assertFalse([a for a in args if a.startswith("--config")])   # CRD mode
        wait_for(lambda: self.pool_ready("coder"), 60, 0.1,
                 "AgentPool coder Ready (log: %s)" % self.daemon.logs()[-3000:])
        self.scale_once(redis, pool, "agents", 3)
        # the Lease the chart's Role allows, held by this instance
        code, lease = self.c.api("GET", "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s"
                                 % (self.ns, full))
        self.assertEqual(code, 200, lease)
        self.assertEqual(lease["spec"]["holderIdentity"], self.release + "-pod-0")
        self.stop_daemon()
        self.assertEqual(rk.forbidden(), [])

        # ---- helm upgrade: Secrets through a Role of the team, 3 replicas ----
        objs = self.helm_install("upgrade", {
            "replicaCount": 3,
            "secretAccess": {"mode": "namespaces", "namespaces": [self.team]}})
        self.assertIn(("Role", self.team, full + "-secrets"), [key(o) for o in objs])
        got = self.check_installed(objs, 2)
        self.assertEqual(got[("Role", self.team, full + "-secrets")]["rules"], [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
        self.assertNotIn({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
                         got[("ClusterRole", None, full)]["rules"])
        self.assertIn("--secret-namespaces=" + self.team,
                      self.one(objs, "Deployment")["spec"]["template"]["spec"][
                          "containers"][0]["args"])
        wait_for(lambda: self.deployment_ready(full, 3), 60, 0.2, "3 pods of %s Ready" % full)

        # the daemon again, with the upgraded arguments and RBAC
        self.start_chart_daemon(objs, rk)
        wait_for(lambda: self.pool_ready("coder"), 60, 0.1, "AgentPool coder Ready again")
        self.scale_once(redis, pool, "agents", 4)
        self.stop_daemon()
        self.assertEqual(rk.forbidden(), [])
        # the daemon really was the ServiceAccount, and was heard
        events = self.c.audit(rk.sa_user)
        self.assertTrue([e for e in events if e["verb"] == "patch" and
                         e["objectRef"].get("subresource") == "scale"])
        self.assertTrue([e for e in events if e["objectRef"].get("resource") == "secrets" and
                         e["responseStatus"]["code"] == 200])
        # and a 403 would have been seen: one the chart's RBAC refuses
        token = rk.c.token_for(*sa)
        code, _ = world.http("GET", self.c.url + "/api/v1/namespaces/%s/secrets" % self.team,
                             headers={"Authorization": "Bearer " + token}, cafile=self.c.ca)
        self.assertEqual(code, 403)
        self.assertEqual(rk.forbidden(), [("list", "/api/v1/namespaces/%s/secrets" % self.team)])

    def dry_run_pool(self, scaling):
        """The AgentPool as the API server would store it (create with
        dryRun=All: defaults applied, unknown fields pruned), its scaling."""
        pool = {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentPool",
                "metadata": {"name": "probe", "namespace": self.team},
                "spec": {"source": {"type": "redis-list", "address": "redis://r:6379",
                                    "queue": "q"},
                         "target": {"kind": "Deployment", "name": "agents"},
                         "scaling": dict(maxReplicas=5, **scaling)}}
        code, obj = self.c.api("POST", "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentpools"
                               "?dryRun=All" % self.team, pool)
        self.assertEqual(code, 201, obj)
        return obj["spec"]["scaling"]

    def test_3_crd_upgrade(self):
        """The CRD upgrade path of the README: the cluster holds an older
        AgentPool CRD (another chart version, a field missing: the API
        server prunes it); `helm upgrade` refuses with the command to run;
        `kubectl apply --server-side --force-conflicts -f crds/` upgrades
        the CRD (the field is kept now) and the upgrade then succeeds."""
        crd_dir = os.path.join(chart.CHART, "crds")
        self.addCleanup(self.c.kubectl, "apply", "--server-side", "--force-conflicts",
                        "-f", crd_dir)
        self.helm_install("install", {})
        for n in CRDS:
            wait_for(lambda: self.c._crd_established(n), 60, 0.1, "CRD %s" % n)
        with open(os.path.join(crd_dir, "agentpools.yaml")) as f:
            old = chart.parse(f.read())[0]
        old["metadata"]["annotations"]["agentscaler.io/chart-version"] = "0.0.1"
        spec = old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        del spec["properties"]["scaling"]["properties"]["activationBacklog"]
        path = os.path.join(self.c.dir, "old-agentpools-%s.json" % self.release)
        with open(path, "w") as f:
            json.dump(old, f)
        self.c.kubectl("apply", "--server-side", "--force-conflicts", "-f", path)
        wait_for(lambda: "activationBacklog" not in self.dry_run_pool({"activationBacklog": 3}),
                 60, 0.2, "the old CRD pruning scaling.activationBacklog")

        vf = os.path.join(self.c.dir, "values-%s-stale.json" % self.release)
        with open(vf, "w") as f:
            json.dump({"replicaCount": 3}, f)
        r = kube.helm("upgrade", self.release, chart.CHART, "--namespace", self.ns,
                      "-f", chart.IMAGE_VALUES, "-f", vf, check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("the CRD agentpools.agentscaler.io in the cluster is from chart 0.0.1, "
                      "older than this chart (0.1.0)", r.stderr)
        self.assertIn("kubectl apply --server-side --force-conflicts -f charts/agentscaler/crds/",
                      r.stderr)
        st = json.loads(kube.helm("status", self.release, "--namespace", self.ns,
                                  "-o", "json").stdout)
        self.assertEqual(st["version"], 1)      # nothing changed

        # the README's step, then the same upgrade
        self.c.kubectl("apply", "--server-side", "--force-conflicts", "-f", crd_dir)
        wait_for(lambda: self.dry_run_pool({"activationBacklog": 3}).get(
            "activationBacklog") == 3, 60, 0.2, "the upgraded CRD keeping activationBacklog")
        code, crd = self.c.api("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                               "agentpools.agentscaler.io")
        self.assertEqual(crd["metadata"]["annotations"]["agentscaler.io/chart-version"], "0.1.0")
        objs = self.helm_install("upgrade", {"replicaCount": 3})
        self.check_installed(objs, 2)

    def test_2_all_values_install(self):
        """values-all.yaml (every option) installed: the API server accepts
        every object it renders."""
        for ns in ("agents", "agents-batch", "platform"):
            self.c.create_namespace(ns)
        for kind, plural in OPERATOR_CRDS:
            code, obj = self.c.api("POST",
                                   "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                   operator_crd(kind, plural))
            self.assertIn(code, (201, 409), obj)
            wait_for(lambda: self.c._crd_established(plural + ".monitoring.coreos.com"),
                     60, 0.1, "the %s CRD" % kind)
        # The release's own name; values-all.yaml's pools run nowhere (no
        # daemon), its objects are the point.
        self.release, self.ns = "prod", "agents-system"
        kube.helm("install", self.release, chart.CHART, "--namespace", self.ns,
                  "--create-namespace", "-f", chart.IMAGE_VALUES, "-f", VALUES_ALL)
        _text, objs = chart.template([VALUES_ALL], self.release, self.ns,
                                     ["monitoring.coreos.com/v1"])
        self.assertIn("ServiceMonitor", {o["kind"] for o in objs})
        self.assertIn("PrometheusRule", {o["kind"] for o in objs})
        self.assertIn("PodDisruptionBudget", {o["kind"] for o in objs})
        self.check_installed(objs, 1)


if __name__ == "__main__":
    unittest.main()
