"""Smoke suite of tools/cluster: the real control plane and the real
agent-sandbox controller on loopback (issue 13).

One cluster for the module (starting it costs seconds, not milliseconds);
each test works in a namespace of its own.  Every wait is a bounded poll on
an observed state.  The conditions the controller sets are printed and kept
in build/cluster/observed.json, for the kube-sim conformance work.

A missing build (build/cluster/bin, `make cluster`) fails the suite, unless
AGENTSCALER_E2E_OPTIONAL=1, which skips it.
"""
import ipaddress
import json
import os
import sys
import unittest
import urllib.request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
import cluster  # noqa: E402
from world import wait_for  # noqa: E402

SBX = "/apis/agents.x-k8s.io/v1beta1/namespaces/%s/sandboxes"
EXT = "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/%s/"
OBSERVED = os.path.join(ROOT, "build", "cluster", "observed.json")

C = None
observed = {}


def setUpModule():
    global C
    missing = cluster.missing_binaries()
    if missing:
        msg = "%s lacks %s: run `make cluster`" % (cluster.BIN, ", ".join(missing))
        if os.environ.get("AGENTSCALER_E2E_OPTIONAL") == "1":
            raise unittest.SkipTest(msg)
        raise AssertionError(msg)
    C = cluster.Cluster(nodes=2)
    C.start()
    sys.stderr.write("cluster up in %.1f s (%s)\n" % (
        C.timings["ready"], ", ".join("%s %.1f" % kv for kv in C.timings.items())))


def tearDownModule():
    if C is not None:
        C.stop()
    if observed:
        os.makedirs(os.path.dirname(OBSERVED), exist_ok=True)
        with open(OBSERVED, "w") as f:
            json.dump(observed, f, indent=1, sort_keys=True)


def conds(obj):
    return {c["type"]: (c["status"], c.get("reason", "")) for c in
            (obj.get("status") or {}).get("conditions") or []}


def get(path):
    code, obj = C.api("GET", path)
    return obj if code == 200 else None


def record(key, ns, claim=None, sandbox=None):
    """Keeps the conditions of a claim and its sandbox under key."""
    out = {}
    if claim:
        c = get(EXT % ns + "sandboxclaims/" + claim)
        out["claim"] = conds(c) if c else None
    if sandbox:
        s = get(SBX % ns + "/" + sandbox)
        out["sandbox"] = conds(s) if s else None
    observed[key] = out
    sys.stderr.write("%s: %s\n" % (key, json.dumps(out, sort_keys=True)))
    return out


def sequence(ns, claim_name, until, timeout=60):
    """Polls the claim (and its sandbox, once named) until until(claim) is
    true; returns (claim, the distinct conditions seen in order, as
    "claim|sandbox Type=Status/Reason")."""
    seen = []

    def note(who, obj):
        for t, (st, reason) in sorted(conds(obj).items()):
            k = "%s %s=%s/%s" % (who, t, st, reason)
            if k not in seen:
                seen.append(k)

    def poll():
        c = get(EXT % ns + "sandboxclaims/" + claim_name)
        if not c:
            return None
        note("claim", c)
        name = c.get("status", {}).get("sandbox", {}).get("name")
        if name:
            s = get(SBX % ns + "/" + name)
            if s:
                note("sandbox", s)
        return c if until(c) else None
    c = wait_for(poll, timeout=timeout, interval=0.01, what="claim %s" % claim_name)
    return c, seen


def is_ready(c):
    return conds(c).get("Ready", ("",))[0] == "True"


def template(name, restart="Never"):
    return {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxTemplate",
            "metadata": {"name": name},
            "spec": {"podTemplate": {"spec": {
                "restartPolicy": restart,
                "containers": [{"name": "agent", "image": "agent:1"}]}}}}


def pool(name, tmpl, replicas):
    return {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxWarmPool",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "sandboxTemplateRef": {"name": tmpl}}}


def claim(name, pool_name):
    return {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxClaim",
            "metadata": {"name": name}, "spec": {"warmPoolRef": {"name": pool_name}}}


class ClusterTest(unittest.TestCase):
    ns = None

    def setUp(self):
        self.ns = "e2e-" + self._testMethodName.replace("_", "-")[5:][:40]
        C.create_namespace(self.ns)

    def create(self, path, body):
        code, obj = C.api("POST", path % self.ns if "%s" in path else path, body)
        self.assertEqual(code, 201, obj)
        return obj

    def running_ready(self, selector):
        pods = C.pods(self.ns, selector)
        ok = [p for p in pods if p["status"].get("phase") == "Running" and
              conds(p).get("Ready", ("",))[0] == "True" and p["status"].get("podIP")]
        return ok if len(ok) == len(pods) else []

    def pool_ready(self, name):
        p = get(EXT % self.ns + "sandboxwarmpools/" + name)
        return p and p.get("status", {}).get("readyReplicas", 0)

    def claim_ready(self, name):
        c = get(EXT % self.ns + "sandboxclaims/" + name)
        return c if c and conds(c).get("Ready", ("",))[0] == "True" else None

    def make_pool(self, name, replicas, restart="Never"):
        self.create(EXT + "sandboxtemplates", template(name + "-tmpl", restart))
        self.create(EXT + "sandboxwarmpools", pool(name, name + "-tmpl", replicas))

    # ---- the tests ----

    def test_deployment_scale(self):
        """A Deployment scaled through /scale to 2 gets 2 Running and Ready
        pods (scheduled by kube-scheduler, run by kwok) with loopback IPs,
        and none after a scale to 0."""
        C.create_deployment("web", 0, self.ns)
        path = "/apis/apps/v1/namespaces/%s/deployments/web/scale" % self.ns

        def put_scale():
            # The deployment controller writes status meanwhile: a PUT
            # with the resourceVersion read may meet 409, as on any cluster.
            code, scale = C.api("GET", path)
            self.assertEqual(code, 200, scale)
            scale["spec"]["replicas"] = 2
            code, obj = C.api("PUT", path, scale)
            self.assertIn(code, (200, 409), obj)
            return code == 200
        wait_for(put_scale, timeout=30, what="PUT /scale accepted")
        self.assertEqual(C.replicas("web", self.ns), 2)
        pods = wait_for(lambda: len(self.running_ready("app=web")) == 2 and
                        self.running_ready("app=web"), timeout=60, what="2 Running+Ready pods")
        net = ipaddress.ip_network(C.pod_cidr)
        for p in pods:
            self.assertIn(ipaddress.ip_address(p["status"]["podIP"]), net)
            self.assertTrue(p["spec"]["nodeName"].startswith("kwok-node-"))
        observed["deployment_pod_ips"] = sorted(p["status"]["podIP"] for p in pods)
        code, obj = C.api("PATCH", path, {"spec": {"replicas": 0}},
                          "application/merge-patch+json")
        self.assertEqual(code, 200, obj)
        wait_for(lambda: not C.pods(self.ns, "app=web"), timeout=60, what="no pods")
        d = get("/apis/apps/v1/namespaces/%s/deployments/web" % self.ns)
        wait_for(lambda: get("/apis/apps/v1/namespaces/%s/deployments/web" % self.ns)
                 ["status"].get("replicas", 0) == 0, timeout=30, what="status.replicas 0")
        self.assertEqual(d["spec"]["replicas"], 0)

    def test_warm_pool_claim_refill_finish(self):
        """A pool of 2 gets 2 Ready sandboxes; a claim binds one of them warm
        and the pool refills; the claim's pod moved to Succeeded shows
        Finished on the sandbox and the claim."""
        self.make_pool("wp", 2)
        wait_for(lambda: self.pool_ready("wp") == 2, timeout=60, what="pool wp 2 ready")
        sbxs = get(SBX % self.ns)["items"]
        self.assertEqual(len(sbxs), 2)
        for s in sbxs:
            self.assertEqual(conds(s)["Ready"], ("True", "DependenciesReady"))
        members = {s["metadata"]["name"] for s in sbxs}

        self.create(EXT + "sandboxclaims", claim("c1", "wp"))
        c, seen = sequence(self.ns, "c1", is_ready)
        observed["warm_bind_conditions_seen"] = seen
        bound = c["status"]["sandbox"]["name"]
        self.assertIn(bound, members, "a warm member was adopted")
        rec = record("warm_bind", self.ns, "c1", bound)
        self.assertEqual(rec["claim"]["Ready"], ("True", "DependenciesReady"))
        s = get(SBX % self.ns + "/" + bound)
        self.assertEqual(s["metadata"]["labels"].get("agents.x-k8s.io/launch-type"), "warm")
        # The pool refills: 2 Ready members again, none of them the bound one.
        wait_for(lambda: self.pool_ready("wp") == 2 and len(get(SBX % self.ns)["items"]) == 3,
                 timeout=60, what="pool wp refilled")

        # The pod terminal, as a kubelet reports a container that exited 0.
        self.assertEqual(C.set_pod_phase(self.ns, bound, "Succeeded"), 200)
        _, seen = sequence(self.ns, "c1", lambda c: conds(c).get("Finished"))
        observed["pod_succeeded_conditions_seen"] = seen
        rec = record("pod_succeeded", self.ns, "c1", bound)
        self.assertEqual(rec["sandbox"]["Finished"], ("True", "PodSucceeded"))
        self.assertEqual(rec["claim"]["Finished"], ("True", "PodSucceeded"))
        self.assertEqual(rec["claim"]["Ready"], ("False", "PodSucceeded"))

    def test_cold_start_and_pod_failed(self):
        """A pool at 0 serves a claim by a cold start (the sandbox is named
        after the claim); the pod Failed shows Finished/PodFailed."""
        self.make_pool("cold", 0)
        self.create(EXT + "sandboxclaims", claim("c2", "cold"))
        c, seen = sequence(self.ns, "c2", is_ready)
        observed["cold_start_conditions_seen"] = seen
        self.assertEqual(c["status"]["sandbox"]["name"], "c2")
        rec = record("cold_start", self.ns, "c2", "c2")
        self.assertEqual(rec["claim"]["Ready"], ("True", "DependenciesReady"))
        s = get(SBX % self.ns + "/c2")
        self.assertEqual(s["metadata"]["labels"].get("agents.x-k8s.io/launch-type"), "cold")
        self.assertEqual(C.set_pod_phase(self.ns, "c2", "Failed", exit_code=3), 200)
        _, seen = sequence(self.ns, "c2", lambda c: conds(c).get("Finished"))
        observed["pod_failed_conditions_seen"] = seen
        rec = record("pod_failed", self.ns, "c2", "c2")
        self.assertEqual(rec["sandbox"]["Finished"], ("True", "PodFailed"))
        self.assertEqual(rec["claim"]["Ready"], ("False", "PodFailed"))

    def test_pod_runner_serves_pod_ip(self):
        """The pod runner starts a host process bound to the pod's loopback
        IP; the real sandbox-router reaches it; its exit 0 moves the pod to
        Succeeded and the claim to Finished."""
        port = 18888
        server = ("import http.server,os,sys\n"
                  "class H(http.server.BaseHTTPRequestHandler):\n"
                  "    def do_GET(self):\n"
                  "        b=os.environ['POD_NAME'].encode()\n"
                  "        self.send_response(200); self.send_header('Content-Length',len(b))\n"
                  "        self.end_headers(); self.wfile.write(b)\n"
                  "        self.server.done=True\n"
                  "    def log_message(self,*a): pass\n"
                  "s=http.server.HTTPServer((os.environ['POD_IP'],%d),H)\n"
                  "s.done=False; s.timeout=30\n"
                  "while not s.done: s.handle_request()\n" % port)
        runner = C.run_pods(lambda pod: [sys.executable, "-c", server]
                            if pod["metadata"]["namespace"] == self.ns else None)
        self.make_pool("run", 1)
        self.create(EXT + "sandboxclaims", claim("c3", "run"))
        c = wait_for(lambda: self.claim_ready("c3"), timeout=60, what="claim c3 Ready")
        name = c["status"]["sandbox"]["name"]
        ip = c["status"]["sandbox"]["podIPs"][0]

        def via_router():
            req = urllib.request.Request(C.router_url + "/", headers={
                "X-Sandbox-ID": name, "X-Sandbox-Namespace": self.ns,
                "X-Sandbox-Port": str(port), "X-Sandbox-Pod-IP": ip})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status, r.read().decode()
            except OSError as e:
                return None, str(e)
        # The command answers one request, then exits.
        code, text = wait_for(lambda: (lambda r: r[0] == 200 and r)(via_router()),
                              timeout=30, what="the router reaching %s:%d" % (ip, port))
        self.assertEqual(text, name)
        wait_for(lambda: conds(get(EXT % self.ns + "sandboxclaims/c3")).get("Finished"),
                 timeout=60, what="claim c3 Finished")
        self.assertEqual(runner.results.get("%s/%s" % (self.ns, name)), (0, 200))
        record("runner_exit0", self.ns, "c3", name)
        self.assertEqual(runner.errors, [])

    def test_quota_refuses_pod(self):
        """A ResourceQuota of 1 pod (admission on, counted by the real
        resourcequota controller): a pool of 2 gets one Ready sandbox, the
        other's pod is refused and the sandbox says why."""
        self.create("/api/v1/namespaces/%s/resourcequotas", {
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "pods"},
            "spec": {"hard": {"pods": "1"}}})
        wait_for(lambda: get("/api/v1/namespaces/%s/resourcequotas/pods" % self.ns)
                 .get("status", {}).get("hard"), timeout=30, what="quota status")
        self.make_pool("q", 2)

        def refused():
            items = get(SBX % self.ns)["items"]
            bad = [s for s in items if conds(s).get("Ready", ("", ""))[1] == "ReconcilerError"]
            return len(items) == 2 and self.pool_ready("q") == 1 and bad and bad[0]
        s = wait_for(refused, timeout=60, what="one sandbox refused by the quota")
        msg = [c["message"] for c in s["status"]["conditions"] if c["type"] == "Ready"][0]
        self.assertIn("exceeded quota", msg)
        self.assertEqual(len(C.pods(self.ns)), 1)
        observed["quota_refused_sandbox"] = {"Ready": conds(s)["Ready"], "message": msg}

    def test_helm_reaches_the_cluster(self):
        """The Helm built with the cluster runs and talks to it."""
        import subprocess
        env = dict(os.environ, KUBECONFIG=C.kubeconfig, HOME=C.dir,
                   HELM_CACHE_HOME=os.path.join(C.dir, "helm-cache"),
                   HELM_CONFIG_HOME=os.path.join(C.dir, "helm-config"),
                   HELM_DATA_HOME=os.path.join(C.dir, "helm-data"))
        helm = os.path.join(cluster.BIN, "helm")
        r = subprocess.run([helm, "version", "--short"], capture_output=True, text=True,
                           env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("v4."), r.stdout)
        r = subprocess.run([helm, "list", "-n", self.ns, "-o", "json"], capture_output=True,
                           text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), [])
        observed["helm_version"] = r.stdout and subprocess.run(
            [helm, "version", "--short"], capture_output=True, text=True, env=env,
            timeout=60).stdout.strip()

    def test_pod_deleted_under_claim(self):
        """A claimed sandbox's pod deleted (as an eviction ends) is recreated
        under the same name; the conditions seen on the way are recorded."""
        self.make_pool("ev", 1, restart="Always")
        self.create(EXT + "sandboxclaims", claim("c4", "ev"))
        c = wait_for(lambda: self.claim_ready("c4"), timeout=60, what="claim c4 Ready")
        name = c["status"]["sandbox"]["name"]
        uid = get("/api/v1/namespaces/%s/pods/%s" % (self.ns, name))["metadata"]["uid"]
        code, obj = C.api("POST", "/api/v1/namespaces/%s/pods/%s/eviction" % (self.ns, name),
                          {"apiVersion": "policy/v1", "kind": "Eviction",
                           "metadata": {"name": name, "namespace": self.ns}})
        self.assertIn(code, (200, 201), obj)
        seen = set()

        def recreated():
            for k, v in conds(get(EXT % self.ns + "sandboxclaims/c4")).items():
                seen.add("claim %s=%s/%s" % (k, v[0], v[1]))
            for k, v in conds(get(SBX % self.ns + "/" + name)).items():
                seen.add("sandbox %s=%s/%s" % (k, v[0], v[1]))
            p = get("/api/v1/namespaces/%s/pods/%s" % (self.ns, name))
            return p and p["metadata"]["uid"] != uid and self.claim_ready("c4")
        wait_for(recreated, timeout=60, interval=0.01,
                 what="pod %s recreated and claim Ready" % name)
        observed["evicted_claim_conditions_seen"] = sorted(seen)
        record("evicted_recreated", self.ns, "c4", name)


if __name__ == "__main__":
    unittest.main()
