"""charts/agentscaler, checked by the real Helm (build/cluster/bin/helm,
`make helm`), offline: no cluster runs here.

`helm lint --strict` with the default values and with values-all.yaml;
`helm template` with those and with variants, every document parsed by the
kubectl of the same build (tools/lib/chart.py) and checked structurally;
values that values.schema.json or the chart's own `fail`s refuse, refused by
Helm; the NOTES and the merged values from `helm install --dry-run=client`;
and the RBAC the chart grants, converted to kube-sim rules
(tools/lib/rbac_rules.py) and probed with the ServiceAccount's token.  (The
integration scenarios under that RBAC run from `make chart-rbac`; the chart
installed and upgraded by Helm on the real control plane, its daemon under
the real RBAC authorizer, in tests/e2e/test_e2e_chart.py.)
"""

import json
import os
import re
import shutil
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "charts", "agentscaler")
HERE = os.path.dirname(os.path.abspath(__file__))
VALUES_ALL = os.path.join(HERE, "values-all.yaml")

import chart  # noqa: E402

if chart.missing():
    raise AssertionError("build/cluster/bin lacks %s: run `make helm`" %
                         ", ".join(chart.missing()))

STANDARD_LABELS = ("helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
                   "app.kubernetes.io/version", "app.kubernetes.io/component",
                   "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by")

# The Kubernetes API use of agentscaler (issue 7): (apiGroup, resource,
# verbs).  The chart must grant exactly this in the namespaces it works in.
EXPECTED_RULES = {
    ("agentscaler.io", "agentpools"): {"get", "list", "watch"},
    ("agentscaler.io", "agentquotas"): {"get", "list", "watch"},
    ("agentscaler.io", "agentpools/status"): {"patch"},
    ("agentscaler.io", "agentquotas/status"): {"patch"},
    # scale mode (issue 15): targets watched, written through /scale
    ("apps", "deployments"): {"list", "watch"},
    ("apps", "statefulsets"): {"list", "watch"},
    ("apps", "deployments/scale"): {"patch"},
    ("apps", "statefulsets/scale"): {"patch"},
    # ownership (issue 18): HPAs and KEDA ScaledObjects on the targets
    ("autoscaling", "horizontalpodautoscalers"): {"list", "watch"},
    ("keda.sh", "scaledobjects"): {"list", "watch"},
    ("extensions.agents.x-k8s.io", "sandboxwarmpools"): {"get", "list", "watch"},
    ("extensions.agents.x-k8s.io", "sandboxwarmpools/scale"): {"get", "patch"},
    ("extensions.agents.x-k8s.io", "sandboxtemplates"): {"get"},
    ("extensions.agents.x-k8s.io", "sandboxclaims"): {"get", "list", "watch", "create",
                                                      "delete"},
    ("agents.x-k8s.io", "sandboxes"): {"get"},
    ("events.k8s.io", "events"): {"create", "patch"},
    # secretAccess.mode cluster (the default): an AgentPool's authSecretRef,
    # one named Secret of its namespace (issue 11)
    ("", "secrets"): {"get"},
}
# The pool rules without Secrets (secretAccess.mode namespaces or none).
POOL_RULES = {k: v for k, v in EXPECTED_RULES.items() if k != ("", "secrets")}
SECRET_GET = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]



def flatten_rules(rules):
    out = {}
    for r in rules:
        for g in r.get("apiGroups") or []:
            for res in r.get("resources") or []:
                out.setdefault((g, res), set()).update(r.get("verbs") or [])
    return out


def render(values=(), name="agentscaler", namespace="agentscaler"):
    """(text of `helm template`, objects parsed by kubectl, NOTES)."""
    text, objs = chart.template(values, name, namespace)
    notes = chart.release(values, name, namespace)["info"]["notes"]
    return text, objs, notes


def by_kind(objs):
    out = {}
    for o in objs:
        out.setdefault(o["kind"], []).append(o)
    return out


def one(objs, kind):
    found = [o for o in objs if o["kind"] == kind]
    if len(found) != 1:
        raise AssertionError("expected one %s, got %d" % (kind, len(found)))
    return found[0]


def values_file(directory, text):
    fd, path = tempfile.mkstemp(suffix=".yaml", dir=directory)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def template_cli(*args):
    """`helm template` of the chart; CompletedProcess, whatever the exit."""
    return chart.helm("template", "agentscaler", CHART, "-f", chart.IMAGE_VALUES, *args,
                      check=False, timeout=60)


class DefaultValuesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text, cls.objs, cls.notes = render(namespace="platform")

    def test_objects(self):
        self.assertEqual(sorted((o["kind"], o["metadata"]["name"],
                                 o["metadata"].get("namespace")) for o in self.objs), sorted([
            ("ClusterRole", "agentscaler", None),
            ("ClusterRoleBinding", "agentscaler", None),
            ("Deployment", "agentscaler", "platform"),
            ("NetworkPolicy", "agentscaler", "platform"),
            ("Role", "agentscaler-leader-election", "platform"),
            ("RoleBinding", "agentscaler-leader-election", "platform"),
            ("Service", "agentscaler-metrics", "platform"),
            ("ServiceAccount", "agentscaler", "platform")]))
        # Helm's install order: NetworkPolicy, ServiceAccount, RBAC,
        # Service, Deployment
        self.assertEqual([o["kind"] for o in self.objs],
                         ["NetworkPolicy", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                          "RoleBinding", "Service", "Deployment"])

    def test_labels(self):
        for o in self.objs:
            lab = o["metadata"]["labels"]
            with self.subTest(kind=o["kind"]):
                for k in STANDARD_LABELS:
                    self.assertIn(k, lab)
                self.assertEqual(lab["helm.sh/chart"], "agentscaler-0.1.0")
                self.assertEqual(lab["app.kubernetes.io/managed-by"], "Helm")
                self.assertEqual(lab["app.kubernetes.io/version"], "0.1.0")
                self.assertEqual(lab["app.kubernetes.io/part-of"], "agentscaler")

    def test_deployment(self):
        d = one(self.objs, "Deployment")
        spec, pod = d["spec"], d["spec"]["template"]["spec"]
        self.assertEqual(spec["replicas"], 2)
        sel = spec["selector"]["matchLabels"]
        self.assertEqual(sel, {"app.kubernetes.io/name": "agentscaler",
                               "app.kubernetes.io/instance": "agentscaler"})
        for k, v in sel.items():
            self.assertEqual(spec["template"]["metadata"]["labels"][k], v)
        self.assertEqual(pod["serviceAccountName"], "agentscaler")
        c = pod["containers"][0]
        self.assertEqual(c["image"], "agentscaler/agentscaler:0.1.0")
        args = c["args"]
        for a in ("--leader-elect", "--lease-name=agentscaler", "--lease-namespace=platform",
                  "--lease-duration=15", "--renew-deadline=10", "--retry-period=2",
                  "--metrics-addr=0.0.0.0:9090", "--admin-addr=127.0.0.1:9091",
                  "--secrets-dir=/etc/agentscaler/secrets", "--log-format=json",
                  "--handoff-routers=http://sandbox-router-svc.default.svc:8080"):
            self.assertIn(a, args)
        # the CLI in the pod (kubectl exec ... agentscaler explain) finds it
        self.assertIn({"name": "AGENTSCALER_ADMIN_ADDR", "value": "127.0.0.1:9091"}, c["env"])
        self.assertFalse([a for a in args if a.startswith(("--config", "--watch-namespace",
                                                           "--secret-namespaces",
                                                           "--shared-secrets",
                                                           "--pod-cidrs"))])
        self.assertEqual(c["env"][0], {"name": "AGENTSCALER_INSTANCE", "valueFrom": {
            "fieldRef": {"fieldPath": "metadata.name"}}})
        # the admin port is no container port: loopback only
        self.assertEqual(c["ports"], [{"name": "metrics", "containerPort": 9090,
                                       "protocol": "TCP"}])
        self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "metrics"})
        self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "metrics"})
        self.assertEqual(c["resources"], {"requests": {"cpu": "100m", "memory": "128Mi"},
                                          "limits": {"memory": "256Mi"}})
        sc = c["securityContext"]
        self.assertIs(sc["runAsNonRoot"], True)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})
        self.assertEqual(sc["seccompProfile"], {"type": "RuntimeDefault"})
        psc = pod["securityContext"]
        self.assertIs(psc["runAsNonRoot"], True)
        self.assertEqual(psc["runAsUser"], 10001)
        self.assertEqual(psc["seccompProfile"], {"type": "RuntimeDefault"})
        # the read-only root filesystem: /tmp is an emptyDir
        self.assertIn({"name": "tmp", "mountPath": "/tmp"}, c["volumeMounts"])
        self.assertIn({"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, pod["volumes"])
        aff = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        self.assertEqual(aff[0]["podAffinityTerm"]["labelSelector"]["matchLabels"], sel)
        self.assertEqual(aff[0]["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname")

    def test_service_selects_pods(self):
        s, d = one(self.objs, "Service"), one(self.objs, "Deployment")
        self.assertEqual(s["spec"]["selector"], d["spec"]["selector"]["matchLabels"])
        self.assertEqual(s["spec"]["ports"], [{"name": "metrics", "port": 9090,
                                               "targetPort": "metrics", "protocol": "TCP"}])
        self.assertEqual(s["spec"]["type"], "ClusterIP")

    def test_network_policy(self):
        """Ingress to the daemon's pods: the metrics port from pods of the
        release namespace, nothing else (probes come from the node, which a
        NetworkPolicy cannot block)."""
        np, d = one(self.objs, "NetworkPolicy"), one(self.objs, "Deployment")
        self.assertEqual(np["spec"]["podSelector"], d["spec"]["selector"])
        self.assertEqual(np["spec"]["policyTypes"], ["Ingress"])
        self.assertEqual(np["spec"]["ingress"], [{
            "ports": [{"port": "metrics", "protocol": "TCP"}],
            "from": [{"podSelector": {}}]}])

    def test_rbac_is_exactly_what_agentscaler_uses(self):
        cr = one(self.objs, "ClusterRole")
        self.assertEqual(flatten_rules(cr["rules"]), EXPECTED_RULES)
        self.assertFalse(any(r.get("resourceNames") or r.get("nonResourceURLs")
                             for r in cr["rules"]))
        crb = one(self.objs, "ClusterRoleBinding")
        self.assertEqual(crb["roleRef"], {"apiGroup": "rbac.authorization.k8s.io",
                                          "kind": "ClusterRole", "name": "agentscaler"})
        self.assertEqual(crb["subjects"], [{"kind": "ServiceAccount", "name": "agentscaler",
                                            "namespace": "platform"}])
        lease = [o for o in self.objs if o["kind"] == "Role"][0]
        self.assertEqual(lease["rules"], [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["agentscaler"], "verbs": ["get", "update"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["configmaps"],
             "resourceNames": ["agentscaler-rejections"], "verbs": ["get", "patch"]}])

    def test_every_rule_is_commented(self):
        """Each rule of the shared rules template, and of the Secret Roles,
        has a comment above it."""
        for name, indent, count in (("_rules.tpl", "", 13), ("secret-roles.yaml", "  ", 2)):
            with open(os.path.join(CHART, "templates", name)) as f:
                lines = f.read().split("\n")
            rules = [i for i, ln in enumerate(lines) if ln.startswith(indent + "- apiGroups:")]
            with self.subTest(template=name):
                self.assertEqual(len(rules), count)
                for i in rules:
                    self.assertTrue(lines[i - 1].startswith(indent + "# "), lines[i])

    def test_values_fully_commented(self):
        """Every option line of values.yaml has a comment right above it
        (inside the free-form Kubernetes blocks, the block's own line)."""
        freeform = ("resources:", "podSecurityContext:", "securityContext:")
        with open(os.path.join(CHART, "values.yaml")) as f:
            lines = f.read().split("\n")
        inside = None
        for i, ln in enumerate(lines):
            m = re.match(r"( *)([A-Za-z][\w]*):( .*)?$", ln)
            if not m:
                continue
            ind = len(m.group(1))
            if inside is not None and ind > inside:
                continue
            inside = ind if ln.strip() in freeform else None
            parent = not m.group(3) and i + 1 < len(lines) and \
                re.match(r" {%d,}\S" % (ind + 1), lines[i + 1] or "") and \
                ln.strip() not in freeform
            if parent:
                continue
            with self.subTest(line=ln):
                self.assertTrue(lines[i - 1].lstrip().startswith("#"), "no comment above")

    def test_notes(self):
        self.assertIn("installed as agentscaler in namespace platform", self.notes)
        self.assertIn("get lease agentscaler", self.notes)
        self.assertIn("kubectl get agentpools,agentquotas -A", self.notes)
        self.assertIn("exec deploy/agentscaler -- agentscaler explain TASK-ID", self.notes)
        self.assertIn("port-forward deploy/agentscaler 9091", self.notes)
        self.assertIn("from namespace platform", self.notes)
        self.assertIn("a pool may name a Secret of its own namespace", self.notes)

    def test_flags_known(self):
        """Every flag the chart passes is one of the daemon's (options.c's
        options_table), or still pending from the parallel work."""
        with open(os.path.join(ROOT, "scheduler", "options.c")) as f:
            known = set(re.findall(r'\[O_[A-Z_]+\] = \{ "([a-z-]+)"', f.read()))
        self.assertIn("metrics-addr", known)
        _t, objs = chart.template([VALUES_ALL], api_versions=["monitoring.coreos.com/v1"])
        for o in (self.objs, objs):
            args = one(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
            for a in args:
                flag = a[2:].split("=")[0]
                self.assertIn(flag, known, a)
        # and the environment variable the chart sets is a flag too
        self.assertIn("instance", known)


class AllValuesTest(unittest.TestCase):
    """tests/chart/values-all.yaml sets every option."""

    @classmethod
    def setUpClass(cls):
        cls.text, cls.objs = chart.template([VALUES_ALL], "prod", "agents-system",
                                            ["monitoring.coreos.com/v1"])
        # helm install takes no --api-versions: the NOTES without the
        # ServiceMonitor (they do not mention it); the defaults as Helm read
        # them
        rel = chart.release([VALUES_ALL], "prod", "agents-system",
                            ["metrics.serviceMonitor.enabled=false",
                             "metrics.prometheusRule.enabled=false"])
        cls.notes, cls.defaults = rel["info"]["notes"], rel["chart"]["values"]
        cls.values = chart.load_yaml(VALUES_ALL)

    # Options whose value in values-all.yaml equals the default on purpose;
    # each is exercised with another value in VariantsTest.
    SAME_AS_DEFAULT = {"fullnameOverride", "affinity", "podDisruptionBudget.minAvailable",
                       "serviceAccount.create", "rbac.create", "leaderElection.enabled",
                       "metrics.service.enabled", "networkPolicy.enabled",
                       "podSecurityContext.runAsNonRoot",
                       "podSecurityContext.seccompProfile.type", "securityContext"}

    def test_sets_every_option(self):
        defaults = self.defaults

        def leaves(d, prefix=""):
            """The options: leaves of the defaults' own structure (a map the
            user fills, like podLabels, is one option)."""
            for k, v in d.items():
                p = prefix + k
                if isinstance(v, dict) and v and p != "securityContext":
                    yield from leaves(v, p + ".")
                else:
                    yield p, v

        def lookup(path):
            cur = self.values
            for part in path.split("."):
                if not isinstance(cur, dict) or part not in cur:
                    return KeyError
                cur = cur[part]
            return cur

        for path, default in leaves(defaults):
            with self.subTest(option=path):
                got = lookup(path)
                self.assertIsNot(got, KeyError, "values-all.yaml does not set %s" % path)
                if path not in self.SAME_AS_DEFAULT:
                    self.assertNotEqual(got, default, "%s keeps its default" % path)

    def test_objects(self):
        self.assertEqual(sorted((o["kind"], o["metadata"]["name"],
                                 o["metadata"].get("namespace")) for o in self.objs), sorted([
            ("ConfigMap", "prod-scaler", "agents-system"),
            ("ConfigMap", "prod-scaler-dashboard", "agents-system"),
            ("Deployment", "prod-scaler", "agents-system"),
            ("NetworkPolicy", "prod-scaler", "agents-system"),
            ("PodDisruptionBudget", "prod-scaler", "agents-system"),
            ("PrometheusRule", "prod-scaler", "agents-system"),
            ("Role", "prod-scaler", "agents"),
            ("Role", "prod-scaler", "agents-batch"),
            ("Role", "prod-scaler-leader-election", "agents-system"),
            ("Role", "prod-scaler-secrets", "agents"),
            ("Role", "prod-scaler-shared-secrets", "agents-batch"),
            ("Role", "prod-scaler-shared-secrets", "platform"),
            ("RoleBinding", "prod-scaler", "agents"),
            ("RoleBinding", "prod-scaler", "agents-batch"),
            ("RoleBinding", "prod-scaler-leader-election", "agents-system"),
            ("RoleBinding", "prod-scaler-secrets", "agents"),
            ("RoleBinding", "prod-scaler-shared-secrets", "agents-batch"),
            ("RoleBinding", "prod-scaler-shared-secrets", "platform"),
            ("Service", "prod-scaler-metrics", "agents-system"),
            ("ServiceAccount", "scaler-sa", "agents-system"),
            ("ServiceMonitor", "prod-scaler", "agents-system")]))
        for o in self.objs:
            self.assertEqual(o["metadata"]["labels"]["cost-center"], "ai-platform")
            self.assertEqual(o["metadata"]["labels"]["app.kubernetes.io/name"], "scaler")
            self.assertNotIn("team", o["metadata"]["labels"])    # podLabels: pods only

    def test_deployment(self):
        d = one(self.objs, "Deployment")
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        self.assertEqual(d["spec"]["replicas"], 3)
        self.assertEqual(c["image"], "registry.example.com/platform/agentscaler:0.1.0-rc1@"
                         "sha256:" + "0123456789abcdef" * 4)
        self.assertEqual(c["imagePullPolicy"], "Always")
        self.assertEqual(pod["imagePullSecrets"], [{"name": "regcred"}])
        self.assertEqual(pod["priorityClassName"], "system-cluster-critical")
        self.assertEqual(pod["terminationGracePeriodSeconds"], 45)
        for a in ("--watch-namespace=agents", "--config=/etc/agentscaler/config/pools.json",
                  "--lease-name=scaler-leader", "--lease-namespace=agents-system",
                  "--lease-duration=30", "--renew-deadline=20", "--retry-period=4",
                  "--metrics-addr=0.0.0.0:9191", "--admin-addr=127.0.0.1:9292",
                  "--log-format=text", "--log-level=debug",
                  "--otlp-endpoint=http://otel-collector.observability:4318",
                  "--kube-qps=50", "--kube-burst=100", "--kube-timeout=5.5",
                  "--kube-retries=3",
                  "--secrets-dir=/var/run/agentscaler/secrets",
                  "--secret-namespaces=agents",
                  "--handoff-routers=https://sandbox-router.platform.svc:8443,"
                  "http://sandbox-router-svc.default.svc:8080",
                  "--pod-cidrs=10.244.0.0/16,fd00:10:244::/56",
                  "--shared-secrets=platform/redis-shared,agents-batch/batch-redis,"
                  "platform/rabbitmq-shared"):
            self.assertIn(a, c["args"])
        self.assertEqual(c["args"][-1], "--resync-seconds=90")          # extraArgs last
        self.assertIn({"name": "TZ", "value": "UTC"}, c["env"])
        # the traces' resource: the pod's namespace and name (downward API)
        self.assertIn({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.namespace"}}}, c["env"])
        self.assertIn({"name": "POD_NAME", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.name"}}}, c["env"])
        self.assertEqual(d["spec"]["template"]["metadata"]["labels"]["team"], "platform")
        ann = d["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(ann["example.com/team"], "platform")
        self.assertRegex(ann["checksum/config"], "^[0-9a-f]{64}$")
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in pod["volumes"]}
        for i, (sec, optional) in enumerate([("redis-auth", None), ("rabbitmq-auth", True)]):
            m = mounts["broker-secret-%d" % i]
            self.assertEqual(m, {"name": "broker-secret-%d" % i, "readOnly": True,
                                 "mountPath": "/var/run/agentscaler/secrets/" + sec})
            v = vols["broker-secret-%d" % i]["secret"]
            self.assertEqual(v["secretName"], sec)
            self.assertEqual(v["defaultMode"], 0o440)
            self.assertEqual(v.get("optional"), optional)
        self.assertEqual(mounts["config"]["mountPath"], "/etc/agentscaler/config")
        self.assertEqual(vols["config"]["configMap"]["name"], "prod-scaler")
        # extraVolumes / extraVolumeMounts, after the chart's own
        self.assertEqual(pod["volumes"][-1], {"name": "broker-ca",
                                              "configMap": {"name": "broker-ca"}})
        self.assertEqual(c["volumeMounts"][-1], {"name": "broker-ca", "readOnly": True,
                                                 "mountPath": "/etc/agentscaler/ca"})
        req = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        self.assertEqual(req[0]["topologyKey"], "topology.kubernetes.io/zone")
        self.assertEqual(pod["nodeSelector"], {"kubernetes.io/os": "linux"})
        self.assertEqual(pod["tolerations"][0]["key"], "dedicated")
        self.assertEqual(pod["topologySpreadConstraints"][0]["maxSkew"], 1)
        self.assertEqual(c["resources"]["limits"], {"cpu": "1", "memory": "512Mi"})
        self.assertEqual(pod["securityContext"]["runAsUser"], 20000)
        self.assertEqual(c["livenessProbe"]["failureThreshold"], 5)
        self.assertEqual(c["readinessProbe"]["periodSeconds"], 3)

    def test_config_map_holds_the_inline_config(self):
        cm = [o for o in self.objs if o["kind"] == "ConfigMap" and
              o["metadata"]["name"] == "prod-scaler"][0]
        cfg = json.loads(cm["data"]["pools.json"])
        # the same data; numbers (float64 in helm) come out as JSON integers
        self.assertEqual(json.loads(cm["data"]["pools.json"], parse_int=float),
                         {"pools": self.values["config"]["pools"],
                          "quotas": self.values["config"]["quotas"]})
        self.assertEqual(cfg["pools"][0]["spec"]["scaling"]["maxReplicas"], 20)
        self.assertIsInstance(cfg["pools"][0]["spec"]["scaling"]["maxReplicas"], int)
        self.assertEqual(cfg["pools"][0]["metadata"], {"name": "coder", "namespace": "agents"})
        self.assertEqual(cfg["quotas"][0]["spec"]["cascade"], {"maxDepth": 3,
                                                              "maxChildrenPerTask": 4})

    def test_namespaced_rbac(self):
        roles = [o for o in self.objs if o["kind"] == "Role" and
                 o["metadata"]["name"] == "prod-scaler"]
        self.assertEqual(len(roles), 2)
        for r in roles:
            # secretAccess.mode namespaces: no Secret in the pool rules
            self.assertEqual(flatten_rules(r["rules"]), POOL_RULES)
        lease = [o for o in self.objs if o["kind"] == "Role" and
                 o["metadata"]["name"].endswith("leader-election")][0]
        self.assertEqual(lease["rules"][1]["resourceNames"], ["scaler-leader"])
        for b in (o for o in self.objs if o["kind"] == "RoleBinding"):
            self.assertEqual(b["subjects"], [{"kind": "ServiceAccount", "name": "scaler-sa",
                                              "namespace": "agents-system"}])

    def test_secret_roles(self):
        """secretAccess.mode namespaces: get on secrets in agents only;
        secretAccess.shared: one Role per namespace, for the shared names
        only; each bound to the ServiceAccount.  No other Secret rule."""
        roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["rules"]
                 for o in self.objs if o["kind"] == "Role"}
        self.assertEqual(roles[("agents", "prod-scaler-secrets")], SECRET_GET)
        self.assertEqual(roles[("platform", "prod-scaler-shared-secrets")], [
            {"apiGroups": [""], "resources": ["secrets"],
             "resourceNames": ["redis-shared", "rabbitmq-shared"], "verbs": ["get"]}])
        self.assertEqual(roles[("agents-batch", "prod-scaler-shared-secrets")], [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["batch-redis"],
             "verbs": ["get"]}])
        secret_roles = {k for k, rules in roles.items()
                        if any("secrets" in r["resources"] for r in rules)}
        self.assertEqual(secret_roles, {("agents", "prod-scaler-secrets"),
                                        ("platform", "prod-scaler-shared-secrets"),
                                        ("agents-batch", "prod-scaler-shared-secrets")})
        for b in self.objs:
            if b["kind"] != "RoleBinding" or "secrets" not in b["metadata"]["name"]:
                continue
            with self.subTest(binding=(b["metadata"]["namespace"], b["metadata"]["name"])):
                self.assertIn((b["metadata"]["namespace"], b["metadata"]["name"]), roles)
                self.assertEqual(b["roleRef"], {"apiGroup": "rbac.authorization.k8s.io",
                                                "kind": "Role",
                                                "name": b["metadata"]["name"]})
                self.assertEqual(b["subjects"], [{"kind": "ServiceAccount",
                                                  "name": "scaler-sa",
                                                  "namespace": "agents-system"}])

    def test_service_monitor_pdb_service(self):
        sm = one(self.objs, "ServiceMonitor")
        self.assertEqual(sm["spec"]["endpoints"], [{"port": "metrics", "path": "/metrics",
                                                    "interval": "15s",
                                                    "scrapeTimeout": "10s"}])
        self.assertEqual(sm["metadata"]["labels"]["release"], "prometheus")
        self.assertEqual(sm["spec"]["namespaceSelector"], {"matchNames": ["agents-system"]})
        d = one(self.objs, "Deployment")
        sel = d["spec"]["selector"]["matchLabels"]
        self.assertEqual(sm["spec"]["selector"]["matchLabels"], sel)
        pdb = one(self.objs, "PodDisruptionBudget")
        self.assertEqual(pdb["spec"], {"maxUnavailable": "50%", "selector": {"matchLabels": sel}})
        s = one(self.objs, "Service")
        self.assertEqual(s["spec"]["type"], "NodePort")
        self.assertEqual(s["spec"]["ports"][0]["port"], 8080)
        self.assertEqual(s["metadata"]["annotations"], {"prometheus.io/scrape": "true"})
        sa = one(self.objs, "ServiceAccount")
        self.assertEqual(sa["metadata"]["annotations"], {"iam.example.com/role": "agentscaler"})

    def test_network_policy(self):
        np = one(self.objs, "NetworkPolicy")
        self.assertEqual(np["spec"]["ingress"], [{
            "ports": [{"port": "metrics", "protocol": "TCP"}],
            "from": [{"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": "monitoring"}},
                      "podSelector": {"matchLabels": {
                          "app.kubernetes.io/name": "prometheus"}}}]}])

    def test_notes(self):
        self.assertIn("ConfigMap prod-scaler", self.notes)
        self.assertIn("/var/run/agentscaler/secrets/rabbitmq-auth/<key>", self.notes)
        self.assertNotIn("Broker Secrets", self.notes)       # config.enabled: files


class VariantsTest(unittest.TestCase):
    """The options values-all.yaml leaves at their defaults, set otherwise."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="chart-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_minimal(self):
        f = values_file(self.dir, """
fullnameOverride: as
replicaCount: 1
leaderElection:
  enabled: false
serviceAccount:
  create: false
  name: existing-sa
rbac:
  create: false
metrics:
  service:
    enabled: false
networkPolicy:
  enabled: false
podAntiAffinity: none
podDisruptionBudget:
  enabled: true
""")
        _t, objs, notes = render([f])
        self.assertEqual(sorted(o["kind"] for o in objs), ["Deployment", "PodDisruptionBudget"])
        d = one(objs, "Deployment")
        self.assertEqual(d["metadata"]["name"], "as")
        pod = d["spec"]["template"]["spec"]
        self.assertEqual(pod["serviceAccountName"], "existing-sa")
        self.assertNotIn("affinity", pod)
        self.assertFalse([a for a in pod["containers"][0]["args"] if "lease" in a or
                          "leader" in a])
        self.assertEqual(one(objs, "PodDisruptionBudget")["spec"]["minAvailable"], 1)
        self.assertNotIn("Lease", notes)

    def test_secret_access(self):
        """secretAccess with the pool rules in a ClusterRole: none drops the
        Secret rule and tells the daemon (--secret-namespaces=), namespaces
        moves it to Roles; shared adds its Roles in every mode; without
        rbac.create the daemon still gets the flags."""
        for text, cluster_secrets, arg, secret_roles, note in [
            ("secretAccess:\n  mode: none\n", False, "--secret-namespaces=", [],
             "no pool may name a Secret of its own namespace"),
            ("secretAccess:\n  mode: namespaces\n  namespaces: [team-a, team-b]\n", False,
             "--secret-namespaces=team-a,team-b",
             [("team-a", "agentscaler-secrets", SECRET_GET),
              ("team-b", "agentscaler-secrets", SECRET_GET)],
             "a pool of team-a, team-b may name a Secret of its own namespace"),
            ("secretAccess:\n  shared: [infra/redis]\n", True, None,
             [("infra", "agentscaler-shared-secrets", [{
                 "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["redis"],
                 "verbs": ["get"]}])],
             "Shared with every namespace (authSecretRef.namespace): infra/redis"),
            ("secretAccess:\n  mode: none\n  shared: [infra/redis]\n", False,
             "--secret-namespaces=",
             [("infra", "agentscaler-shared-secrets", [{
                 "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["redis"],
                 "verbs": ["get"]}])], "Shared with every namespace"),
        ]:
            with self.subTest(values=text):
                _t, objs, notes = render([values_file(self.dir, text)])
                self.assertIn(note, notes)
                want = EXPECTED_RULES if cluster_secrets else POOL_RULES
                self.assertEqual(flatten_rules(one(objs, "ClusterRole")["rules"]), want)
                args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0][
                    "args"]
                self.assertEqual([a for a in args if a.startswith("--secret-namespaces")],
                                 [arg] if arg else [])
                self.assertEqual([a for a in args if a.startswith("--shared-secrets")],
                                 ["--shared-secrets=infra/redis"] if "shared" in text else [])
                got = [(o["metadata"]["namespace"], o["metadata"]["name"], o["rules"])
                       for o in objs if o["kind"] == "Role" and "secrets" in
                       o["metadata"]["name"]]
                self.assertEqual(got, secret_roles)
                self.assertEqual(sorted((o["metadata"]["namespace"], o["metadata"]["name"])
                                        for o in objs if o["kind"] == "RoleBinding" and
                                        "secrets" in o["metadata"]["name"]),
                                 sorted((ns, n) for ns, n, _r in secret_roles))
        # namespaced pool rules carry the Secret rule in mode cluster
        _t, objs, _n = render([values_file(self.dir, "watchNamespace: team-a\nrbac:\n"
                                           "  namespaced: true\n")])
        role = [o for o in objs if o["kind"] == "Role" and
                o["metadata"]["name"] == "agentscaler"]
        self.assertEqual(flatten_rules(role[0]["rules"]), EXPECTED_RULES)
        # rbac.create false: no Role, the flags all the same
        _t, objs, _n = render([values_file(self.dir, "rbac:\n  create: false\nsecretAccess:\n"
                                           "  mode: namespaces\n  namespaces: [a]\n"
                                           "  shared: [b/c]\n")])
        self.assertFalse([o for o in objs if o["kind"].endswith(("Role", "RoleBinding"))])
        args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        self.assertIn("--secret-namespaces=a", args)
        self.assertIn("--shared-secrets=b/c", args)

    def test_subchart_global(self):
        """A parent chart's global values pass the strict schema (the chart
        can be a dependency) and change nothing."""
        f = values_file(self.dir, "global:\n  imageRegistry: registry.example.com\n"
                        "  storageClass: fast\n")
        _t, objs, _n = render([f])
        _t, plain, _n = render()
        self.assertEqual(objs, plain)

    def test_image_required(self):
        """No default image: helm template without image.repository stops
        with a message saying what to set."""
        r = chart.helm("template", "agentscaler", CHART, check=False, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("image.repository is required", r.stderr)
        self.assertIn("--set image.repository=", r.stderr)
        self.assertEqual(r.stdout, "")
        f = values_file(self.dir, "image:\n  repository: registry.example.com/a/agentscaler\n"
                        "  tag: v2\n")
        _t, objs = chart.template([f], image=False)
        self.assertEqual(one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0][
            "image"], "registry.example.com/a/agentscaler:v2")

    def test_crds_carry_the_chart_version(self):
        """The annotation the upgrade check compares (_helpers.tpl
        crdsCurrent) is this chart's version: a chart release with changed
        CRDs bumps both."""
        with open(os.path.join(CHART, "Chart.yaml")) as f:
            version = re.search(r"^version: (\S+)$", f.read(), re.M).group(1)
        for name in ("agentpools", "agentquotas"):
            with self.subTest(crd=name):
                with open(os.path.join(CHART, "crds", name + ".yaml")) as f:
                    crd = chart.parse(f.read())[0]
                self.assertEqual(crd["metadata"]["annotations"]["agentscaler.io/chart-version"],
                                 version)

    def test_custom_affinity_wins(self):
        f = values_file(self.dir, """
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: pool, operator: In, values: [agents]}
""")
        _t, objs, _n = render([f])
        aff = one(objs, "Deployment")["spec"]["template"]["spec"]["affinity"]
        self.assertEqual(list(aff), ["nodeAffinity"])

    def test_name_contains_release(self):
        _t, objs, _n = render(name="agentscaler-prod")
        self.assertEqual(one(objs, "Deployment")["metadata"]["name"], "agentscaler-prod")
        # Helm takes release names of 53 characters at the most; with
        # "-agentscaler" that is 65, cut to 63
        _t, objs, _n = render(name="x" * 53)
        self.assertEqual(one(objs, "Deployment")["metadata"]["name"], "x" * 53 + "-agentscal")


class RefusedValuesTest(unittest.TestCase):
    """Values Helm refuses (values.schema.json) or the chart refuses (fail)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="chart-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    SCHEMA = "values don't meet the specifications of the schema(s)"
    CASES = [
        # (values, Helm's message)
        ("replicaCount: two\n", "at '/replicaCount': got string, want integer"),
        ("replicaCount: 0\n", "at '/replicaCount': minimum: got 0, want 1"),
        ("replicas: 2\n", "at '': additional properties 'replicas' not allowed"),
        ("logFormat: xml\n", "at '/logFormat': value must be one of 'json', 'text'"),
        ("brokerSecrets:\n  - optional: true\n", "at '/brokerSecrets/0': missing property "
         "'name'"),
        ("brokerSecrets:\n  - name: Bad_Name\n", "at '/brokerSecrets/0/name': 'Bad_Name' "
         "does not match pattern"),
        ("kube:\n  qps: 0\n", "at '/kube/qps': minimum: got 0, want 0.1"),
        ("image:\n  digest: latest\n", "at '/image/digest': 'latest' does not match pattern"),
        ("metrics:\n  service:\n    type: LoadBalancer\n",
         "at '/metrics/service/type': value must be one of 'ClusterIP', 'NodePort'"),
        ("admin:\n  port: 0\n", "at '/admin/port': minimum: got 0, want 1"),
        ("networkPolicy:\n  metrics:\n    podSelector:\n      app: prometheus\n",
         "at '/networkPolicy/metrics/podSelector': additional properties 'app' not allowed"),
        ("extraArgs: [leader-elect]\n", "at '/extraArgs/0': 'leader-elect' does not match "
         "pattern '^--'"),
        ("podDisruptionBudget:\n  minAvailable: lots\n",
         "at '/podDisruptionBudget/minAvailable': 'lots' does not match pattern"),
        ("secretAccess:\n  mode: all\n",
         "at '/secretAccess/mode': value must be one of 'cluster', 'namespaces', 'none'"),
        ("secretAccess:\n  namespaces: [Team_A]\n",
         "at '/secretAccess/namespaces/0': 'Team_A' does not match pattern"),
        ("secretAccess:\n  shared: [redis-auth]\n",
         "at '/secretAccess/shared/0': 'redis-auth' does not match pattern"),
        ("secretAccess:\n  shared: [a/b/c]\n",
         "at '/secretAccess/shared/0': 'a/b/c' does not match pattern"),
        ("secretAccess:\n  shared: [/b]\n",
         "at '/secretAccess/shared/0': '/b' does not match pattern"),
        ("secretAccess:\n  scope: all\n",
         "at '/secretAccess': additional properties 'scope' not allowed"),
        # the chart's own fails
        ("leaderElection:\n  enabled: false\n",
         "replicaCount > 1 needs leaderElection.enabled"),
        ("leaderElection:\n  renewDeadline: 15\n",
         "renewDeadline must be below leaderElection.leaseDuration"),
        ("rbac:\n  namespaced: true\n", "rbac.namespaced needs watchNamespace"),
        ("watchNamespace: a\nrbac:\n  namespaced: true\n  namespaces: [b]\n",
         "rbac.namespaces must include watchNamespace"),
        ("serviceAccount:\n  create: false\n",
         "serviceAccount.name is required when serviceAccount.create is false"),
        ("metrics:\n  serviceMonitor:\n    enabled: true\n",
         "needs the monitoring.coreos.com/v1 API"),
        ("metrics:\n  prometheusRule:\n    enabled: true\n",
         "metrics.prometheusRule.enabled needs the monitoring.coreos.com/v1 API"),
        ("metrics:\n  service:\n    enabled: false\n  serviceMonitor:\n    enabled: true\n",
         "metrics.serviceMonitor.enabled needs metrics.service.enabled"),
        ("secretAccess:\n  mode: namespaces\n",
         "secretAccess.mode namespaces needs secretAccess.namespaces"),
        ("secretAccess:\n  shared: [a/b, c/d, a/b]\n", "secretAccess.shared lists a/b twice"),
        # not YAML
        ("logLevel: [\n", "did not find expected node content"),
    ]

    def test_refused(self):
        for text, msg in self.CASES:
            with self.subTest(values=text):
                r = template_cli("-f", values_file(self.dir, text))
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(msg, r.stderr)
                if msg.startswith("at '"):
                    self.assertIn(self.SCHEMA, r.stderr)
                self.assertEqual(r.stdout, "")

    def test_null_deletes_a_default(self):
        r = template_cli("-f", values_file(self.dir, "resources:\n  limits: null\n"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("requests:", r.stdout)
        self.assertNotIn("limits:", r.stdout)


class LintTest(unittest.TestCase):
    """helm lint --strict: warnings fail too.  Lint enforces the values
    schema but renders in Helm's lint mode, where a template's `fail` is
    logged, not an error (values-all.yaml's ServiceMonitor passes without
    the monitoring API): the chart's own refusals are RefusedValuesTest's,
    through helm template."""

    def lint(self, *args):
        return chart.helm("lint", "--strict", CHART, "-f", chart.IMAGE_VALUES, *args,
                          check=False, timeout=60)

    def test_lint_strict(self):
        for args in ([], ["-f", VALUES_ALL]):
            with self.subTest(args=args):
                r = self.lint(*args)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn("1 chart(s) linted, 0 chart(s) failed", r.stdout)
                self.assertNotIn("[WARNING]", r.stdout)

    def test_lint_enforces_the_schema(self):
        d = tempfile.mkdtemp(prefix="chart-lint-")
        self.addCleanup(shutil.rmtree, d, True)
        r = self.lint("-f", values_file(d, "replicaCount: 0\n"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("[ERROR] values.yaml: - at '/replicaCount': minimum: got 0, want 1",
                      r.stdout)


class ChartRbacTest(unittest.TestCase):
    """The chart's RBAC as kube-sim rules, probed with the ServiceAccount's
    token: what agentscaler needs is allowed, the rest is a 403, and a 403
    fails the run (the check `make chart-rbac` relies on)."""

    @classmethod
    def setUpClass(cls):
        import world
        cls.world = world
        cls.kube = world.KubeSim("--no-sandbox-controller", rbac=True)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.kube.stop()
        except AssertionError:
            pass

    def sa(self, method, path, body=None, ctype="application/json"):
        return self.world.http(method, self.kube.url + path, body, ctype,
                               headers={"Authorization": "Bearer " + self.kube.sa_token})

    def test_rules(self):
        user, rules = self.world.chart_rbac()
        self.assertEqual(user, "system:serviceaccount:agentscaler:agentscaler")
        cluster = [r for r in rules if r["namespaces"] == ["*"]]
        self.assertEqual(flatten_rules(cluster), EXPECTED_RULES)
        lease = [r for r in rules if r["namespaces"] != ["*"]]
        self.assertEqual(lease, [
            {"users": [user], "verbs": ["create"], "apiGroups": ["coordination.k8s.io"],
             "resources": ["leases"], "namespaces": ["agentscaler"]},
            {"users": [user], "verbs": ["get", "update"], "apiGroups": ["coordination.k8s.io"],
             "resources": ["leases"], "namespaces": ["agentscaler"],
             "resourceNames": ["agentscaler"]},
            {"users": [user], "verbs": ["create"], "apiGroups": [""],
             "resources": ["configmaps"], "namespaces": ["agentscaler"]},
            {"users": [user], "verbs": ["get", "patch"], "apiGroups": [""],
             "resources": ["configmaps"], "namespaces": ["agentscaler"],
             "resourceNames": ["agentscaler-rejections"]}])

    def test_allowed_and_denied(self):
        k = self.kube
        self.world.create_namespace(k, "agentscaler")
        self.world.create_namespace(k, "team-a")
        k.create_deployment("web", ns="team-a")
        code, obj = k.api("POST", "/api/v1/namespaces/team-a/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-auth"},
            "data": {"password": "czNjcjN0"}})
        self.assertEqual(code, 201, obj)
        ext = "/apis/extensions.agents.x-k8s.io/v1beta1"
        allowed = [
            # scale targets are listed and watched (issue 15), one namespace
            # or the whole cluster
            ("GET", "/apis/apps/v1/namespaces/team-a/deployments?limit=500", None),
            ("GET", "/apis/apps/v1/statefulsets?limit=500", None),
            ("PATCH", "/apis/apps/v1/namespaces/team-a/deployments/web/scale",
             {"spec": {"replicas": 2}}),
            ("GET", ext + "/sandboxclaims?labelSelector=app.kubernetes.io%2Fmanaged-by%3D"
             "agentscaler", None),
            ("GET", ext + "/namespaces/team-a/sandboxwarmpools", None),
            ("POST", ext + "/namespaces/team-a/sandboxclaims", {
                "apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxClaim",
                "metadata": {"name": "c1"}, "spec": {"warmPoolRef": {"name": "p"}}}),
            ("DELETE", ext + "/namespaces/team-a/sandboxclaims/c1", None),
            ("POST", "/apis/events.k8s.io/v1/namespaces/team-a/events", {
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "e1"}, "eventTime": "2026-01-01T00:00:00.000000Z",
                "reason": "Scaled", "action": "Scale", "type": "Normal",
                "reportingController": "agentscaler.io/agentscaler",
                "reportingInstance": "a-0",
                "regarding": {"kind": "Deployment", "namespace": "team-a", "name": "web"}}),
            ("POST", "/apis/coordination.k8s.io/v1/namespaces/agentscaler/leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "agentscaler"}, "spec": {"holderIdentity": "a-0"}}),
            ("GET", "/apis/coordination.k8s.io/v1/namespaces/agentscaler/leases/agentscaler",
             None),
            # an AgentPool's authSecretRef: one named Secret, read with get
            ("GET", "/api/v1/namespaces/team-a/secrets/redis-auth", None),
        ]
        for method, path, body in allowed:
            with self.subTest(allowed=method + " " + path):
                code, obj = self.sa(method, path, body, "application/merge-patch+json"
                                    if method == "PATCH" else "application/json")
                self.assertIn(code, (200, 201), obj)
        self.assertEqual(self.kube.forbidden(), [])
        denied = [
            ("GET", "/apis/apps/v1/namespaces/team-a/deployments/web"),
            ("GET", "/apis/apps/v1/namespaces/team-a/deployments/web/scale"),
            ("PATCH", "/apis/apps/v1/namespaces/team-a/deployments/web"),
            ("GET", "/api/v1/namespaces/team-a/secrets"),
            ("GET", "/api/v1/namespaces/team-a/secrets?watch=true"),
            ("GET", "/api/v1/secrets"),
            ("PUT", "/api/v1/namespaces/team-a/secrets/redis-auth"),
            ("PATCH", ext + "/namespaces/team-a/sandboxclaims/c1"),
            ("DELETE", ext + "/namespaces/team-a/sandboxwarmpools/p"),
            ("GET", ext + "/namespaces/team-a/sandboxtemplates"),
            ("POST", "/apis/coordination.k8s.io/v1/namespaces/team-a/leases"),
            ("GET", "/apis/coordination.k8s.io/v1/namespaces/agentscaler/leases/other"),
            ("DELETE", "/apis/coordination.k8s.io/v1/namespaces/agentscaler/leases/agentscaler"),
            ("PUT", "/apis/coordination.k8s.io/v1/namespaces/team-a/leases/agentscaler"),
        ]
        for method, path in denied:
            with self.subTest(denied=method + " " + path):
                code, obj = self.sa(method, path, {} if method in ("PATCH", "POST", "PUT")
                                    else None, "application/merge-patch+json"
                                    if method == "PATCH" else "application/json")
                self.assertEqual(code, 403, obj)
                self.assertIn('User "system:serviceaccount:agentscaler:agentscaler" cannot',
                              obj["message"])
        self.assertEqual(len(self.kube.forbidden()), len(denied))

    def test_secret_access_namespaces_and_shared(self):
        """rbac_rules on secretAccess.mode namespaces with shared Secrets
        in two namespaces: kube-sim, authorizing with the converted rules,
        lets the ServiceAccount get a Secret of a listed namespace and the
        shared names only."""
        d = tempfile.mkdtemp(prefix="chart-rbac-")
        self.addCleanup(shutil.rmtree, d, True)
        values = values_file(d, "secretAccess:\n  mode: namespaces\n"
                                "  namespaces: [team-a]\n"
                                "  shared: [platform/redis, infra/rabbit, platform/amqp]\n")
        user, rules = self.world.chart_rbac([values])
        secret_rules = [r for r in rules if "secrets" in r["resources"]]
        self.assertEqual(secret_rules, [
            {"users": [user], "verbs": ["get"], "apiGroups": [""], "resources": ["secrets"],
             "namespaces": ns, **({"resourceNames": names} if names else {})}
            for ns, names in ((["team-a"], None), (["platform"], ["redis", "amqp"]),
                              (["infra"], ["rabbit"]))])
        self.assertEqual(flatten_rules([r for r in rules if r["namespaces"] == ["*"]]),
                         POOL_RULES)
        kube = self.world.KubeSim("--no-sandbox-controller", rbac=(user, rules))
        try:
            for ns, names in (("team-a", ["a", "b"]), ("team-b", ["a"]),
                              ("platform", ["redis", "amqp", "other"]),
                              ("infra", ["rabbit", "redis"])):
                self.world.create_namespace(kube, ns)
                for n in names:
                    code, obj = kube.api("POST", "/api/v1/namespaces/%s/secrets" % ns, {
                        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": n},
                        "data": {"k": "dg=="}})
                    self.assertEqual(code, 201, obj)
            for path, want in (("team-a/secrets/a", 200), ("team-a/secrets/b", 200),
                               ("team-b/secrets/a", 403), ("platform/secrets/redis", 200),
                               ("platform/secrets/amqp", 200),
                               ("platform/secrets/other", 403), ("infra/secrets/rabbit", 200),
                               ("infra/secrets/redis", 403), ("team-a/secrets", 403),
                               ("platform/secrets", 403)):
                with self.subTest(path=path):
                    code, _obj = self.world.http(
                        "GET", kube.url + "/api/v1/namespaces/" + path,
                        headers={"Authorization": "Bearer " + kube.sa_token})
                    self.assertEqual(code, want)
            self.assertEqual(len(kube.forbidden()), 5)
        finally:
            kube.chart_rbac = False     # the 403s above are expected
            kube.stop()

    def test_zz_a_403_fails_the_run(self):
        # the world's check, on a kube-sim whose log holds 403s for the SA
        code, _ = self.sa("GET", "/api/v1/namespaces/default/secrets")
        self.assertEqual(code, 403)
        denied = self.kube.forbidden()
        self.assertTrue(denied)
        self.assertEqual(denied[-1]["path"], "/api/v1/namespaces/default/secrets")
        with self.assertRaises(AssertionError) as cm:
            type(self).kube.stop()
        self.assertIn("the chart's RBAC denied", str(cm.exception))
        self.assertIn("GET /api/v1/namespaces/default/secrets", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
