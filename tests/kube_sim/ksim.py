"""Test helpers: start kube-sim on free ports, talk to it, run kubectl."""

import copy
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import unittest
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXT = "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/%s/"
SBX = "/apis/agents.x-k8s.io/v1beta1/namespaces/%s/sandboxes"
DEPLOYS = "/apis/apps/v1/namespaces/%s/deployments"


class KubeSim:
    """One kube-sim process.  Stopped by PID."""

    def __init__(self, *args, env=None):
        self.args = list(args)
        # tools/lib/kubesim_proc.py: the one way kube-sim starts
        self.proc, self.info = start_kube_sim(self.args, stderr=subprocess.PIPE, env=env)
        self.url = self.info["url"]
        self.admin = self.info["admin"]
        self.ca = self.info["ca"]
        self.pid = self.info["pid"]
        u = urllib.parse.urlsplit(self.url)
        self.host, self.port, self.tls = u.hostname, u.port, u.scheme == "https"
        self._conn = None

    def stop(self):
        stop_kube_sim(self.proc)
        if self._conn is not None:
            self._conn.close()

    def client(self):
        """Another handle on this kube-sim with its own keep-alive connection (for
        concurrent requests from threads); release it with close(), never stop()."""
        c = copy.copy(self)
        c._conn = None
        return c

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -------------------------------------------------------------- HTTP
    def connect(self, timeout=10):
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.ca)
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def raw(self, method, path, body=None, ctype="application/json", headers=None,
            token=None):
        """-> (status, headers dict, body bytes); keep-alive connection reused."""
        h = dict(headers or {})
        if body is not None:
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            h["Content-Type"] = ctype
        if token:
            h["Authorization"] = "Bearer " + token
        for attempt in range(2):
            if self._conn is None:
                self._conn = self.connect()
            try:
                self._conn.request(method, path, body=body, headers=h)
                r = self._conn.getresponse()
                data = r.read()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (http.client.HTTPException, OSError):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def req(self, method, path, body=None, ctype="application/json", **kw):
        code, _h, data = self.raw(method, path, body, ctype, **kw)
        try:
            return code, json.loads(data) if data else None
        except ValueError:
            return code, data.decode(errors="replace")

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.req("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.req("PUT", path, body, **kw)

    def patch(self, path, body, ctype="application/merge-patch+json", **kw):
        return self.req("PATCH", path, body, ctype, **kw)

    def delete(self, path, body=None, **kw):
        return self.req("DELETE", path, body, **kw)

    def adm(self, method, path, body=None):
        u = urllib.parse.urlsplit(self.admin)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"null")
        finally:
            c.close()

    # -------------------------------------------------------------- watch
    def watch(self, path, timeout=10):
        """Open a watch; returns a Watch reading newline-delimited events."""
        return Watch(self, path, timeout)


class Watch:
    def __init__(self, sim, path, timeout):
        self.conn = sim.connect(timeout=timeout)
        self.conn.request("GET", path)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.buf = b""

    def next(self, timeout=10):
        """Next event dict, or None on end of stream."""
        self.conn.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            try:
                chunk = self.resp.read1(65536)
            except (http.client.IncompleteRead, ConnectionError, OSError):
                return None
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.conn.close()


def wait_for(fn, timeout=15.0, interval=0.02, msg="condition"):
    """Poll fn() until it returns a truthy value (returned) or fail."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (msg, last))


def deployment(name, replicas=1, labels=None):
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)},
                                  "spec": {"containers": [{"name": "c",
                                                           "image": "nginx:1.25"}]}}}}


def configmap(name, labels=None, data=None, **md):
    m = {"name": name}
    if labels:
        m["labels"] = labels
    m.update(md)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": data or {"k": "v"}}


def template(name="tpl"):
    return {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxTemplate",
            "metadata": {"name": name},
            "spec": {"podTemplate": {"spec": {"containers": [{"name": "agent",
                                                              "image": "agent:1"}]}}}}


def pool(name="pool", replicas=1, tpl="tpl"):
    spec = {"sandboxTemplateRef": {"name": tpl}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxWarmPool",
            "metadata": {"name": name}, "spec": spec}


def claim(name, pool_name="pool", **spec):
    s = {"warmPoolRef": {"name": pool_name}}
    s.update(spec)
    return {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxClaim",
            "metadata": {"name": name}, "spec": s}


def cond(obj, typ):
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == typ:
            return c
    return None


# The same kubectl wrapper the integration suites use (fresh HOME per
# instance, no kubeconfig).
from world import Kubectl  # noqa: E402,F401
from kubesim_proc import start_kube_sim, stop_kube_sim  # noqa: E402


def have_kubectl():
    return shutil.which("kubectl") is not None


class SimTestCase(unittest.TestCase):
    """Starts one kube-sim per test class."""

    SIM_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.sim = KubeSim("--port", "0", "--admin-port", "0", *cls.SIM_ARGS)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def assertStatus(self, resp, code, reason=None, message=None, metadata=None):
        c, body = resp
        self.assertEqual(c, code, body)
        self.assertIsInstance(body, dict, body)
        self.assertEqual(body.get("kind"), "Status", body)
        self.assertEqual(body.get("apiVersion"), "v1")
        if metadata is None:
            self.assertEqual(body.get("metadata"), {})
        else:
            self.assertEqual(sorted(body.get("metadata")), sorted(metadata))
        self.assertEqual(body.get("code"), code)
        self.assertEqual(body.get("status"), "Failure")
        if reason is not None:
            self.assertEqual(body.get("reason"), reason, body)
        if message is not None:
            self.assertEqual(body.get("message"), message, body)
        return body


class KubectlTestCase(SimTestCase):
    """SimTestCase with a Kubectl (fresh HOME and kubeconfig) for the class in
    self.k; decorate the subclass with skipUnless(have_kubectl())."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.k = Kubectl(cls.sim)

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()
        super().tearDownClass()
