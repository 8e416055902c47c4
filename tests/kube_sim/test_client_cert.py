"""x509 client-certificate authentication (--tls --client-ca), as
kube-apiserver's --client-ca-file: requested, not required; CN is the user,
each O a group; a certificate is tried before a bearer token."""

import http.client
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import unittest

from .ksim import DEPLOYS, KubeSim, SimTestCase

import certs
from kubesim_proc import kube_sim_command


class ClientCertTest(SimTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ksim-x509-")
        cls.ca = certs.make_ca(cls.dir, "client-ca")
        cls.other_ca = certs.make_ca(cls.dir, "other-ca")
        cls.ops = certs.make_client_cert(cls.dir, cls.ca, "carol", ["dev", "ops"])
        cls.plain = certs.make_client_cert(cls.dir, cls.ca, "dave")
        cls.stranger = certs.make_client_cert(cls.dir, cls.other_ca, "eve", ["system:masters"])
        cls.tokens = os.path.join(cls.dir, "tokens.csv")
        with open(cls.tokens, "w") as f:
            f.write('tok-admin,admin,1,"system:masters"\n')
        rules = os.path.join(cls.dir, "rules.json")
        with open(rules, "w") as f:
            json.dump([{"groups": ["ops"], "verbs": ["get", "list"], "apiGroups": ["apps"],
                        "resources": ["deployments"], "namespaces": ["default"]}], f)
        cls.sim = KubeSim("--port", "0", "--admin-port", "0", "--tls", "--tokens", cls.tokens,
                          "--rules", rules, "--client-ca", cls.ca[0])

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def call(self, path, cert=None, token=None):
        """One request on a new connection -> (code, body, user kube-sim logged)."""
        ctx = ssl.create_default_context(cafile=self.sim.ca)
        if cert is not None:
            ctx.load_cert_chain(*cert)
        c = http.client.HTTPSConnection(self.sim.host, self.sim.port, timeout=10, context=ctx)
        try:
            h = {"Authorization": "Bearer " + token} if token else {}
            c.request("GET", path, headers=h)
            r = c.getresponse()
            code, body = r.status, json.loads(r.read() or b"null")
        finally:
            c.close()
        _c, log = self.sim.adm("GET", "/requests?since=0")
        return code, body, log["requests"][-1]["user"]

    def test_certificate_user_and_groups(self):
        # O=ops grants the list through the group rule.
        code, _body, user = self.call(DEPLOYS % "default", cert=self.ops)
        self.assertEqual((code, user), (200, "carol"))

    def test_certificate_without_groups_is_that_user(self):
        code, body, user = self.call(DEPLOYS % "default", cert=self.plain)
        self.assertEqual((code, user), (403, "dave"), body)
        self.assertIn('User "dave" cannot list', body["message"])
        # Discovery is open to authenticated users.
        self.assertEqual(self.call("/apis", cert=self.plain)[0], 200)

    def test_token_still_works_and_anonymous_is_denied(self):
        code, _body, user = self.call(DEPLOYS % "default", token="tok-admin")
        self.assertEqual((code, user), (200, "admin"))
        code, body, user = self.call(DEPLOYS % "default")
        self.assertEqual((code, user), (403, "system:anonymous"), body)
        code, body, _user = self.call(DEPLOYS % "default", token="nope")
        self.assertEqual(code, 401, body)

    def test_certificate_before_token(self):
        code, _body, user = self.call(DEPLOYS % "default", cert=self.ops, token="nope")
        self.assertEqual((code, user), (200, "carol"))
        code, _body, user = self.call(DEPLOYS % "default", cert=self.plain, token="tok-admin")
        self.assertEqual((code, user), (403, "dave"))

    def test_certificate_of_another_ca_is_refused(self):
        # kube-sim fails the handshake (kube-apiserver would answer 401).
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            self.call(DEPLOYS % "default", cert=self.stranger)


class ClientCaNeedsTlsTest(unittest.TestCase):
    def test_refused_without_tls(self):
        r = subprocess.run(kube_sim_command() + ["--port", "0", "--client-ca", "/x.crt"],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--client-ca needs --tls", r.stderr)


if __name__ == "__main__":
    unittest.main()
