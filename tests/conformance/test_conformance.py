"""Conformance of kube-sim to Kubernetes (issue 13).

Every probe of probes.py runs against kube-sim and against the real control
plane of tools/cluster (kube-apiserver, kube-controller-manager, etcd,
built from their published Go modules), and their facts are compared one
by one.  The suite prints the score (facts equal / total, probes equal /
total) and fails on any divergence that KNOWN does not explain.

The real cluster is needed: without build/cluster/bin the suite fails,
unless AGENTSCALER_E2E_OPTIONAL=1 (then it skips, saying so): see
tests/e2e/kube.py.
"""
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
import world  # noqa: E402
import podstatus  # noqa: E402
from tests.conformance import probes  # noqa: E402
from tests.e2e import kube  # noqa: E402

# Divergences that cannot matter to agentscaler, fact by fact, with why.
# A fact listed here that no longer diverges fails too (the list stays true).
KNOWN = {
}


class Backend:
    """What probes.py needs of a server; subclasses set url, ca, token."""
    url = ca = token = None

    def api(self, method, path, body=None, ctype="application/json"):
        return self.api_as(self.token, method, path, body, ctype)

    def api_as(self, token, method, path, body=None, ctype="application/json"):
        headers = {"Authorization": "Bearer " + token} if token else None
        return world.http(method, self.url + path, body, ctype, headers=headers,
                          cafile=self.ca)

    def namespace(self, prefix):
        name = "%s-%s" % (prefix, secrets.token_hex(3))
        code, obj = self.api("POST", "/api/v1/namespaces",
                             {"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": name}})
        if code != 201:
            raise AssertionError("namespace %s: %s %s" % (name, code, obj))
        # The real server's ServiceAccount controller makes "default"
        # shortly after; nothing here depends on it.
        return name

    def watch(self, path, timeout):
        req = urllib.request.Request(self.url + path)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        ctx = ssl.create_default_context(cafile=self.ca) if self.ca else None
        deadline = time.monotonic() + timeout
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
                while time.monotonic() < deadline:
                    line = r.readline()
                    if not line:
                        return
                    if line.strip():
                        yield json.loads(line)
        except (socket.timeout, TimeoutError, OSError):
            return

    def kubectl(self, *args):
        cmd = ["kubectl", "--server", self.url, "--token", self.token or "x"]
        cmd += ["--certificate-authority", self.ca] if self.ca else []
        r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("kubectl %s: %s" % (" ".join(args), r.stderr))

    def install_crds(self, validate):
        self.kubectl("apply", "--validate=%s" % ("true" if validate else "false"),
                     "-f", world.CRDS)
        for name in ("agentpools.agentscaler.io", "agentquotas.agentscaler.io"):
            world.wait_for(lambda: any(
                c.get("type") == "Established" and c.get("status") == "True"
                for c in self.api("GET", "/apis/apiextensions.k8s.io/v1/"
                                  "customresourcedefinitions/" + name)[1]
                .get("status", {}).get("conditions") or []),
                timeout=30, what="CRD %s Established" % name)


class SimBackend(Backend):
    name = "kube-sim"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="conformance-sim-")
        self.token = secrets.token_hex(16)
        self.nobody = secrets.token_hex(16)
        tokens = os.path.join(self.dir, "tokens.csv")
        with open(tokens, "w") as f:
            f.write('%s,admin,u-admin,"system:masters"\n' % self.token)
            f.write("%s,nobody,u-nobody,\n" % self.nobody)
        rules = os.path.join(self.dir, "rules.json")
        with open(rules, "w") as f:
            json.dump([], f)
        self.sim = world.KubeSim("--tls", "--tokens", tokens, "--rules", rules)
        self.url, self.ca = self.sim.url, self.sim.ca
        self.install_crds(validate=False)

    def no_rights_token(self, ns):
        return self.nobody

    def finish_pod(self, ns, sandbox, phase):
        """kube-sim serves no Pods: its admin API ends a Sandbox's pod."""
        code, obj = self.sim.adm("POST", "/sandboxes/%s/%s/finish" % (ns, sandbox),
                                 {"phase": phase})
        if code != 200:
            raise AssertionError("finish %s/%s: %s %s" % (ns, sandbox, code, obj))

    def stop(self):
        self.sim.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RealBackend(Backend):
    """The e2e suites' cluster (tests/e2e/kube.py), shared in one process."""
    name = "kubernetes"

    def __init__(self):
        self.cluster = kube.cluster()
        self.url, self.ca, self.token = (self.cluster.url, self.cluster.ca,
                                         self.cluster.admin_token)
        self.install_crds(validate=True)

    def no_rights_token(self, ns):
        return self.cluster.token_for(ns, "nobody")

    def finish_pod(self, ns, sandbox, phase):
        """The pod's status as the kubelet writes it (kwok runs no containers)."""
        _, sb = self.api("GET", "/apis/agents.x-k8s.io/v1beta1/namespaces/%s/sandboxes/%s"
                         % (ns, sandbox))
        path = "/api/v1/namespaces/%s/pods/%s" % (ns, podstatus.sandbox_pod_name(sb))
        code, pod = self.api("GET", path)
        if code != 200:
            raise AssertionError("pod of %s/%s: %s %s" % (ns, sandbox, code, pod))
        code, obj = self.api("PUT", path + "/status", podstatus.terminal(pod, phase))
        if code != 200:
            raise AssertionError("pod status %s: %s %s" % (path, code, obj))

    def stop(self):
        pass            # the cluster stops when the process ends


class ConformanceTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.real = RealBackend()     # fails (or skips) without the cluster
        cls.sim = SimBackend()

    @classmethod
    def tearDownClass(cls):
        cls.real.stop()
        cls.sim.stop()

    def test_probes(self):
        equal = total = probes_equal = 0
        unexplained, stale = [], []
        lines = []
        # CONFORMANCE_ONLY=prefix,prefix: rerun a few probes (the score is theirs)
        only = tuple(p for p in os.environ.get("CONFORMANCE_ONLY", "").split(",") if p)
        chosen = [(n, p) for n, p in probes.PROBES if not only or n.startswith(only)]
        for name, probe in chosen:
            facts = {}

            def run(b):
                try:
                    facts[b.name] = probes.flatten("", probe(b), {})
                except Exception as e:  # a probe that breaks is a divergence
                    facts[b.name] = {"error": "%s: %s" % (type(e).__name__, e)}
            # both servers at once: the scenarios wait on controllers
            t = threading.Thread(target=run, args=(self.sim,))
            t.start()
            run(self.real)
            t.join()
            s, r = facts["kube-sim"], facts["kubernetes"]
            if os.environ.get("CONFORMANCE_VERBOSE"):
                for k in sorted(r):
                    lines.append("  fact %s.%s: kubernetes %s" % (name, k, json.dumps(r[k])))
            diffs = [k for k in sorted(set(s) | set(r)) if s.get(k) != r.get(k)]
            n = len(set(s) | set(r))
            total += n
            equal += n - len(diffs)
            probes_equal += not diffs
            for k in diffs:
                key = "%s.%s" % (name, k)
                why = KNOWN.get(key)
                lines.append("  %s %s: kube-sim %s, kubernetes %s%s" % (
                    "KNOWN" if why else "DIVERGES", key, json.dumps(s.get(k)),
                    json.dumps(r.get(k)), " (%s)" % why if why else ""))
                if not why:
                    unexplained.append(key)
            for key in KNOWN:
                if key.startswith(name + ".") and key[len(name) + 1:] not in diffs:
                    stale.append(key)
        print("\nconformance: %d/%d facts equal, %d/%d probes equal" % (
            equal, total, probes_equal, len(chosen)))
        print("\n".join(lines))
        self.assertEqual(unexplained, [], "kube-sim diverges from Kubernetes")
        self.assertEqual(stale, [], "KNOWN lists divergences that are gone")


if __name__ == "__main__":
    unittest.main()
