"""The shipped examples against the real control plane (issue 16):
docs/examples/dispatch-http.yaml (SandboxTemplate + SandboxWarmPool +
AgentPool for dispatch mode on upstream's default network policy) is
accepted by the real API server with agent-sandbox's and agentscaler's CRDs
(server-side dry run, strict field validation: an unknown or misplaced
field fails), and its template leaves the NetworkPolicy to the controller's
default."""
import os
import unittest

from tests.e2e import kube  # noqa: E402
import world  # noqa: E402
from world import wait_for  # noqa: E402

EXAMPLE = os.path.join(world.ROOT, "docs", "examples", "dispatch-http.yaml")


class ExamplesE2E(unittest.TestCase):
    def test_dispatch_http_example_is_accepted(self):
        c = kube.cluster()
        with open(EXAMPLE) as f:
            text = f.read()
        c.kubectl("apply", "-f", world.CRDS)
        for crd in ("agentpools.agentscaler.io", "agentquotas.agentscaler.io"):
            wait_for(lambda: c._crd_established(crd), 60, 0.1, "CRD %s Established" % crd)
        ns = "e2e-examples-%s" % os.urandom(3).hex()
        c.create_namespace(ns)
        r = c.kubectl("apply", "-n", ns, "--dry-run=server", "--validate=strict",
                      "-f", EXAMPLE, "-o", "name")
        self.assertEqual(sorted(r.stdout.split()), [
            "agentpool.agentscaler.io/coder",
            "sandboxtemplate.extensions.agents.x-k8s.io/coder",
            "sandboxwarmpool.extensions.agents.x-k8s.io/coder"], r.stderr)
        docs = {d["kind"]: d for d in kube.yaml_docs(text)}
        tmpl = docs["SandboxTemplate"]["spec"]
        self.assertNotIn("networkPolicy", tmpl, "upstream's default policy applies")
        self.assertNotEqual(tmpl.get("networkPolicyManagement"), "Unmanaged")
        pod = tmpl["podTemplate"]["spec"]
        self.assertEqual([p["containerPort"] for c_ in pod["containers"]
                          for p in c_.get("ports", [])], [8888])
        self.assertNotIn("volumes", pod, "no credentials mounted in the sandbox")
        self.assertEqual(docs["AgentPool"]["spec"]["sandbox"]["warmPool"],
                         docs["SandboxWarmPool"]["metadata"]["name"])
        # A field the CRD does not know is refused (the check is strict).
        bad = text.replace("    warmPool: coder", "    warmPool: coder\n    noSuchField: 1")
        r = c.kubectl("apply", "-n", ns, "--dry-run=server", "--validate=strict", "-f", "-",
                      stdin=bad, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("noSuchField", r.stderr)


if __name__ == "__main__":
    unittest.main()
