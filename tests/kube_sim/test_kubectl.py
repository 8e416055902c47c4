"""The real kubectl against kube-sim (fresh HOME per class)."""

import json
import os
import select
import signal
import time
import unittest

from .ksim import (DEPLOYS, EXT, KubeSim, Kubectl, KubectlTestCase, deployment,
                   have_kubectl, pool, template, wait_for)


def read_lines_until(proc, pred, timeout=20):
    """Read kubectl stdout lines until pred(lines) is true."""
    lines, buf = [], ""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            ch = os.read(fd, 65536).decode()
            if not ch:
                break
            buf += ch
            while "\n" in buf:
                line, buf = buf.split("\n", 1)
                lines.append(line)
            if pred(lines):
                return lines
    raise AssertionError("kubectl output did not match in time: %r" % lines)


def stop(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)
    proc.stdout.close()
    proc.stderr.close()


@unittest.skipUnless(have_kubectl(), "kubectl not installed")
class KubectlDeploymentTest(KubectlTestCase):
    SIM_ARGS = ("--replica-delay-ms", "100")

    def test_apply_get_scale_patch_delete(self):
        k = self.k
        manifest = json.dumps(deployment("web", 1))
        r = k.run("apply", "--validate=false", "-f", "-", stdin=manifest)
        self.assertEqual(r.stdout.strip(), "deployment.apps/web created")
        self.assertEqual(r.stderr, "")
        wait_for(lambda: k.run("get", "deploy", "web", "-o",
                               "jsonpath={.status.readyReplicas}").stdout == "1")
        r = k.run("get", "deployments")
        hdr, row = r.stdout.splitlines()[:2]
        self.assertEqual(hdr.split(), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"])
        self.assertEqual(row.split()[:4], ["web", "1/1", "1", "1"])
        r = k.run("scale", "deployment", "web", "--replicas=3")
        self.assertEqual(r.stdout.strip(), "deployment.apps/web scaled")
        self.assertEqual(r.stderr, "")
        wait_for(lambda: k.run("get", "deploy", "web", "-o",
                               "jsonpath={.status.readyReplicas}").stdout == "3")
        # re-apply (strategic merge patch of the last-applied diff)
        r = k.run("apply", "--validate=false", "-f", "-",
                  stdin=manifest.replace('"image": "nginx:1.25"', '"image": "nginx:1.26"'))
        self.assertEqual(r.stdout.strip(), "deployment.apps/web configured")
        self.assertEqual(r.stderr, "")
        obj = json.loads(k.run("get", "deploy", "web", "-o", "json").stdout)
        self.assertEqual(obj["spec"]["template"]["spec"]["containers"][0]["image"],
                         "nginx:1.26")
        self.assertEqual(obj["spec"]["replicas"], 1)  # apply owns replicas: back to 1
        self.assertIn("kubectl.kubernetes.io/last-applied-configuration",
                      obj["metadata"]["annotations"])
        r = k.run("patch", "deploy", "web", "-p", '{"metadata":{"labels":{"tier":"fe"}}}')
        self.assertEqual(r.stdout.strip(), "deployment.apps/web patched")
        r = k.run("patch", "deploy", "web", "--type=json",
                  "-p", '[{"op":"replace","path":"/spec/replicas","value":2}]')
        self.assertEqual(r.stdout.strip(), "deployment.apps/web patched")
        r = k.run("get", "deploy", "-l", "tier=fe", "-o", "name")
        self.assertEqual(r.stdout.strip(), "deployment.apps/web")
        r = k.run("delete", "deployment", "web")
        self.assertEqual(r.stdout.strip(), 'deployment.apps "web" deleted')
        r = k.run("get", "deploy", "web", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stderr.strip(),
                         'Error from server (NotFound): deployments.apps "web" not found')

    def test_get_watch(self):
        k = self.k
        self.sim.post(DEPLOYS % "default", deployment("watched", 1))
        p = k.popen("get", "deploy", "watched", "-w", "-o", "custom-columns="
                    "NAME:.metadata.name,SPEC:.spec.replicas")
        try:
            read_lines_until(p, lambda ls: any(l.split() == ["watched", "1"] for l in ls))
            self.sim.patch(DEPLOYS % "default" + "/watched/scale", {"spec": {"replicas": 4}})
            read_lines_until(p, lambda ls: any(l.split() == ["watched", "4"] for l in ls))
        finally:
            stop(p)

    def test_conflict_via_replace(self):
        k = self.k
        c, d = self.sim.post(DEPLOYS % "default", deployment("conf", 1))
        self.sim.patch(DEPLOYS % "default" + "/conf", {"spec": {"replicas": 2}})
        r = k.run("replace", "--validate=false", "-f", "-", stdin=json.dumps(d), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('Operation cannot be fulfilled on deployments.apps "conf": the object '
                      'has been modified; please apply your changes to the latest version '
                      'and try again', r.stderr)

    def test_server_side_apply_creates(self):
        r = self.k.run("apply", "--server-side", "--validate=false", "-f", "-",
                       stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                         "metadata": {"name": "ssa"}, "data": {"a": "1"}}))
        self.assertEqual(r.stdout.strip(), "configmap/ssa serverside-applied")
        c, cm = self.sim.get("/api/v1/namespaces/default/configmaps/ssa")
        self.assertEqual(cm["data"], {"a": "1"})


@unittest.skipUnless(have_kubectl(), "kubectl not installed")
class KubectlCustomResourceTest(KubectlTestCase):
    SIM_ARGS = ("--cold-start-ms", "200")

    def test_warm_pool_scale_and_columns(self):
        k = self.k
        k.run("apply", "--validate=false", "-f", "-", stdin=json.dumps(template()))
        r = k.run("apply", "--validate=false", "-f", "-", stdin=json.dumps(pool("pool", 1)))
        self.assertEqual(r.stdout.strip(),
                         "sandboxwarmpool.extensions.agents.x-k8s.io/pool created")
        r = k.run("scale", "swp", "pool", "--replicas=3")
        self.assertEqual(r.stdout.strip(),
                         "sandboxwarmpool.extensions.agents.x-k8s.io/pool scaled")
        self.assertEqual(r.stderr, "")
        c, p = self.sim.get(EXT % "default" + "sandboxwarmpools/pool")
        self.assertEqual(p["spec"]["replicas"], 3)
        wait_for(lambda: k.run("get", "swp", "pool").stdout.splitlines()[1].split()[:3]
                 == ["pool", "3", "3"], msg="printer columns READY/DESIRED")
        hdr = k.run("get", "swp").stdout.splitlines()[0].split()
        self.assertEqual(hdr, ["NAME", "READY", "DESIRED", "AGE"])
        rows = k.run("get", "sandboxes").stdout.splitlines()
        self.assertEqual(rows[0].split(), ["NAME", "READY", "REASON", "AGE"])
        mine = [r for r in rows[1:] if r.startswith("pool-")]
        self.assertEqual(len(mine), 3)
        self.assertTrue(all(r.split()[1:3] == ["True", "DependenciesReady"] for r in mine))
        # merge patch works, strategic merge (kubectl's default) is refused with 415
        r = k.run("patch", "swp", "pool", "--type=merge", "-p", '{"spec":{"replicas":2}}')
        self.assertEqual(r.stdout.strip(),
                         "sandboxwarmpool.extensions.agents.x-k8s.io/pool patched")
        r = k.run("patch", "swp", "pool", "-p", '{"spec":{"replicas":5}}', check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("the body of the request was in an unknown format", r.stderr)
        # second apply uses a JSON merge patch for custom resources
        r = k.run("apply", "--validate=false", "-f", "-", stdin=json.dumps(pool("pool", 1)))
        self.assertEqual(r.stdout.strip(),
                         "sandboxwarmpool.extensions.agents.x-k8s.io/pool configured")
        c, p = self.sim.get(EXT % "default" + "sandboxwarmpools/pool")
        self.assertEqual(p["spec"]["replicas"], 1)

    def test_claim_watch_and_delete(self):
        k = self.k
        k.run("apply", "--validate=false", "-f", "-", stdin=json.dumps(template("t2")))
        k.run("apply", "--validate=false", "-f", "-", stdin=json.dumps(pool("p2", 1, "t2")))
        p = k.popen("get", "sandboxclaims", "-w", "-o",
                    "custom-columns=NAME:.metadata.name,SANDBOX:.status.sandbox.name")
        try:
            claim = {"apiVersion": "extensions.agents.x-k8s.io/v1beta1",
                     "kind": "SandboxClaim", "metadata": {"name": "kc"},
                     "spec": {"warmPoolRef": {"name": "p2"}}}
            k.run("apply", "--validate=false", "-f", "-", stdin=json.dumps(claim))
            lines = read_lines_until(p, lambda ls: any(
                l.split()[:1] == ["kc"] and not l.split()[1].startswith("<") for l in ls
                if len(l.split()) > 1))
            self.assertTrue(any(l.split()[1].startswith("p2-") for l in lines
                                if l.split()[:1] == ["kc"]), lines)
        finally:
            stop(p)
        r = k.run("delete", "sandboxclaim", "kc")
        self.assertEqual(r.stdout.strip(),
                         'sandboxclaim.extensions.agents.x-k8s.io "kc" deleted')


@unittest.skipUnless(have_kubectl(), "kubectl not installed")
class KubectlTlsAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.dir = tempfile.mkdtemp(prefix="ksim-tls-")
        tokens = os.path.join(cls.dir, "tokens.csv")
        with open(tokens, "w") as f:
            f.write('adm,admin,1,"system:masters"\nro,viewer,2,"viewers"\n')
        rules = os.path.join(cls.dir, "rules.json")
        with open(rules, "w") as f:
            json.dump([{"groups": ["viewers"], "verbs": ["get", "list", "watch"],
                        "apiGroups": ["apps"], "resources": ["deployments"]}], f)
        cls.sim = KubeSim("--port", "0", "--tls", "--state-dir", cls.dir, "--tokens", tokens,
                          "--rules", rules)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def test_tls_with_generated_ca(self):
        self.assertTrue(self.sim.url.startswith("https://127.0.0.1:"))
        self.assertTrue(os.path.isfile(self.sim.ca))
        adm = Kubectl(self.sim, ["--certificate-authority", self.sim.ca, "--token", "adm"])
        ro = Kubectl(self.sim, ["--certificate-authority", self.sim.ca, "--token", "ro"])
        bad = Kubectl(self.sim, ["--certificate-authority", self.sim.ca, "--token", "zzz"])
        try:
            r = adm.run("apply", "--validate=false", "-f", "-",
                        stdin=json.dumps(deployment("tls")))
            self.assertEqual(r.stdout.strip(), "deployment.apps/tls created")
            self.assertEqual(r.stderr, "")
            r = ro.run("get", "deploy", "tls", "-o", "name")
            self.assertEqual(r.stdout.strip(), "deployment.apps/tls")
            r = ro.run("scale", "deploy", "tls", "--replicas=2", check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn('Error from server (Forbidden): deployments.apps "tls" is forbidden: '
                          'User "viewer" cannot patch resource "deployments/scale" in API '
                          'group "apps" in the namespace "default"', r.stderr)
            r = bad.run("get", "deploy", check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("error: You must be logged in to the server (the server has asked "
                          "for the client to provide credentials)", r.stderr)
            # without the CA, verification fails
            nocA = Kubectl(self.sim, ["--token", "adm"])
            r = nocA.run("get", "deploy", check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("certificate", r.stderr)
            nocA.cleanup()
            r = Kubectl(self.sim, ["--insecure-skip-tls-verify", "--token", "adm"]).run(
                "get", "deploy", "tls", "-o", "jsonpath={.metadata.name}")
            self.assertEqual(r.stdout, "tls")
        finally:
            for k in (adm, ro, bad):
                k.cleanup()
