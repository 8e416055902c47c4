"""The CRDs' validation on the real API server (issue 18): every CEL rule
(x-kubernetes-validations) refuses its case of tools/lib/crd_cases.py with
422 and the rule's message, the valid objects pass, the printer columns
show target, min, max and Active, and status.conditions merge by type.
kube-sim does not evaluate CEL (tools/kube-sim/README.md), so this runs
here only; tests/integration/test_crd_schema.py holds the same cases to
the daemon's parser.  Creates are server-side dry runs: nothing persists.
"""
import os
import unittest

from tests.e2e import kube  # noqa: E402
import crd_cases  # noqa: E402
import world  # noqa: E402
from world import wait_for  # noqa: E402

PLURAL = {"AgentPool": "agentpools", "AgentQuota": "agentquotas"}


class CrdValidationE2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = kube.cluster()
        cls.c.kubectl("apply", "--server-side", "--force-conflicts", "-f", world.CRDS)
        for crd in ("agentpools.agentscaler.io", "agentquotas.agentscaler.io"):
            wait_for(lambda: cls.c._crd_established(crd), 60, 0.1, "CRD %s Established" % crd)
        cls.ns = "e2e-cel-%s" % os.urandom(3).hex()
        cls.c.create_namespace(cls.ns)

    def create(self, kind, spec, dry_run=True, name="cel-case"):
        path = "/apis/agentscaler.io/v1alpha1/namespaces/%s/%s%s" % (
            self.ns, PLURAL[kind], "?dryRun=All" if dry_run else "")
        return self.c.api("POST", path, crd_cases.obj(kind, spec, name, self.ns))

    def test_each_rule_refuses_its_case(self):
        for name, kind, spec, msg, _parser in crd_cases.CASES:
            with self.subTest(case=name):
                code, out = self.create(kind, spec)
                self.assertEqual(code, 422, out)
                causes = [c.get("message", "") for c in
                          (out.get("details") or {}).get("causes") or []]
                self.assertTrue([m for m in causes if msg in m] or msg in out.get("message", ""),
                                "422 without %r: %s" % (msg, out))

    def test_valid_objects_pass(self):
        for kind, spec in crd_cases.VALID:
            with self.subTest(spec=spec):
                code, out = self.create(kind, spec)
                self.assertEqual(code, 201, out)

    def test_printer_columns_and_conditions_map(self):
        """kubectl get shows Target, Min, Max and Active; two field
        managers applying one condition type each keep both (listType map:
        with an atomic list the second apply would replace the first)."""
        spec = dict(crd_cases.SCALE, scaling={"minReplicas": 1, "maxReplicas": 7})
        code, out = self.create("AgentPool", spec, dry_run=False, name="columns")
        self.assertEqual(code, 201, out)
        for t in ("Active", "Ready"):
            body = {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentPool",
                    "metadata": {"name": "columns", "namespace": self.ns},
                    "status": {"conditions": [{
                        "type": t, "status": "True", "reason": "Test", "message": "m",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
            code, out = self.c.api(
                "PATCH", "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentpools/columns/status"
                "?fieldManager=e2e-%s&force=true" % (self.ns, t.lower()), body,
                "application/apply-patch+yaml")
            self.assertEqual(code, 200, out)
        self.assertEqual(sorted(c["type"] for c in out["status"]["conditions"]),
                         ["Active", "Ready"])
        r = self.c.kubectl("get", "agentpool", "columns", "-n", self.ns)
        head, row = r.stdout.splitlines()[:2]
        # cells by the header's column offsets: empty ones (no backlog yet)
        # leave no word of their own
        starts = [i for i, ch in enumerate(head) if ch != " " and (i == 0 or head[i - 1] == " ")]
        cells = {head[a:b].strip(): row[a:b].strip()
                 for a, b in zip(starts, starts[1:] + [len(row) + 1])}
        for want, value in (("TARGET", "agents"), ("MIN", "1"), ("MAX", "7"),
                            ("ACTIVE", "True"), ("READY", "True")):
            self.assertEqual(cells.get(want), value, r.stdout)

if __name__ == "__main__":
    unittest.main()
