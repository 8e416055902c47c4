"""agentscaler configured by kubeconfig against kube-sim --tls: CA data and a
token, client certificates (data and relative files), an exec credential
plugin (re-run before expiry and after a 401), a KUBECONFIG list of two
files, a wrong CA, an unsupported auth-provider.

kube-sim's request log names the user of every request, which proves whose
credentials the daemon used.  Every test also checks that no token or key
reached the daemon's stderr (run with --log-level debug).  Waits are bounded
polls; nothing asserts on speed.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import certs  # noqa: E402
import world  # noqa: E402
from world import wait_for  # noqa: E402

PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exec_plugin.py")
# The target's Deployments, listed and watched (issue 15: never a GET of
# its /scale); see nudge() below.
TARGET = "/apis/apps/v1/namespaces/default/deployments"


def b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def q(s):
    return json.dumps(s)        # a JSON string is a YAML double-quoted scalar


def kubeconfig(path, clusters=(), users=(), contexts=(), current=None):
    """Writes a kubeconfig as YAML (not JSON, so libyaml's block syntax is
    exercised).  clusters/users/contexts: (name, {field: value}) pairs."""
    lines = ["apiVersion: v1", "kind: Config", "preferences: {}"]
    if current:
        lines.append("current-context: " + q(current))
    for key, inner, entries in (("clusters", "cluster", clusters), ("users", "user", users),
                                ("contexts", "context", contexts)):
        lines.append(key + ":")
        for name, fields in entries:
            lines.append("- name: " + q(name))
            lines.append("  %s:" % inner)
            for k, v in fields.items():
                if k == "exec":
                    lines.append("    exec:")
                    for ek, ev in v.items():
                        if ek == "args":
                            lines.append("      args:")
                            lines.extend("      - " + q(a) for a in ev)
                        elif ek == "env":
                            lines.append("      env:")
                            for n, val in ev:
                                lines.append("      - name: " + q(n))
                                lines.append("        value: " + q(val))
                        elif isinstance(ev, bool):
                            lines.append("      %s: %s" % (ek, "true" if ev else "false"))
                        else:
                            lines.append("      %s: %s" % (ek, q(ev)))
                elif isinstance(v, bool):
                    lines.append("    %s: %s" % (k, "true" if v else "false"))
                else:
                    lines.append("    %s: %s" % (k, q(v)))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class KubeconfigTest(world.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="kubeconfig-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.redis = world.Redis()
        self.addCleanup(self.redis.stop)
        self.tokens = os.path.join(self.dir, "tokens.csv")
        self.secrets = []           # strings that must never be logged
        self.write_tokens([("tok-setup-0d1f", "setup", "system:masters")])

    def tearDown(self):
        logs = self.daemon.logs() if self.daemon is not None else ""
        super().tearDown()
        for s in self.secrets:
            self.assertNotIn(s, logs, "a secret reached the daemon's stderr")

    def write_tokens(self, rows):
        tmp = self.tokens + ".tmp"
        with open(tmp, "w") as f:
            for tok, user, groups in rows:
                f.write('%s,%s,1,"%s"\n' % (tok, user, groups))
        os.replace(tmp, self.tokens)
        # kube-sim reloads on a new mtime; make sure it differs.
        t = time.time() + len(rows)
        os.utime(self.tokens, (t, t))

    def start_kube(self, *args):
        self.kube = world.KubeSim("--tls", "--tokens", self.tokens, "--replica-delay-ms", "50",
                                  *args)
        self.addCleanup(self.kube.stop)
        self.kube.token = "tok-setup-0d1f"
        self.kube.create_deployment("agents")

    def start(self, extra=(), env=None, ready=True):
        pools = [world.pool("p", self.redis.url, "tasks", "agents", pollIntervalMs=100)]
        self.daemon = world.Daemon({"pools": pools}, None, env=env,
                                   extra=["--log-level", "debug"] + list(extra))
        if ready:
            wait_for(lambda: self.daemon.started()
                     if self.daemon.proc.poll() is None else self.fail(self.daemon.logs()[-5000:]),
                     30, 0.05, "the daemon's /readyz")

    def nudge(self):
        """Makes the daemon send a new request: its watch of the target's
        Deployments lasts minutes, so the test drops it (kube-sim
        /drop-watches) and the daemon reopens it, with the credentials it
        holds then.  At most every 1.5 s: a watch dropped within 1 s of its
        start counts as a failure and backs off.  Returns None."""
        now = time.monotonic()
        if now - getattr(self, "_nudged", 0) >= 1.5:
            self._nudged = now
            self.kube.adm("POST", "/drop-watches")

    def target_users(self, since=0):
        """(user, code) of every request kube-sim saw for the target's
        Deployments (LIST and WATCH)."""
        return [(r["user"], r["code"]) for r in self.kube.requests(since)
                if r["path"] == TARGET and r["method"] == "GET"]

    def wait_user(self, user, since=0, timeout=30):
        wait_for(lambda: self.nudge() or (user, 200) in self.target_users(since), timeout, 0.05,
                 "a request from %s (seen: %s; logs: %s)" % (
                     user, self.target_users(since)[-5:], self.daemon.logs()[-3000:]))

    def cluster(self, **extra):
        f = {"server": self.kube.url, "certificate-authority-data": b64(self.kube.ca)}
        f.update(extra)
        return f

    # (a) certificate-authority-data + token
    def test_ca_data_and_token(self):
        self.write_tokens([("tok-setup-0d1f", "setup", "system:masters"),
                           ("tok-alice-7c1e55", "alice", "system:masters")])
        self.secrets.append("tok-alice-7c1e55")
        self.start_kube()
        kc = kubeconfig(os.path.join(self.dir, "config"),
                        clusters=[("sim", self.cluster())],
                        users=[("alice", {"token": "tok-alice-7c1e55"})],
                        contexts=[("main", {"cluster": "sim", "user": "alice"})],
                        current="main")
        self.start(["--kubeconfig", kc])
        self.wait_user("alice")
        users = {u for u, _ in self.target_users()}
        self.assertEqual(users, {"alice"})
        self.assertIn('configuration: kubeconfig (--kubeconfig %s), context \\"main\\"' % kc,
                      self.daemon.logs())

    # (b) client-certificate-data / client-key-data
    def test_client_certificate_data(self):
        ca = certs.make_ca(self.dir, "client-ca")
        crt, key = certs.make_client_cert(self.dir, ca, "cert-bot", ["system:masters"])
        with open(key) as f:
            self.secrets.append(f.read().splitlines()[1])     # a line of the key
        self.start_kube("--client-ca", ca[0])
        kc = kubeconfig(os.path.join(self.dir, "config"),
                        clusters=[("sim", self.cluster())],
                        users=[("bot", {"client-certificate-data": b64(crt),
                                        "client-key-data": b64(key)})],
                        contexts=[("main", {"cluster": "sim", "user": "bot"})],
                        current="main")
        self.start(["--kubeconfig", kc])
        self.wait_user("cert-bot")
        self.assertEqual({u for u, _ in self.target_users()}, {"cert-bot"})

    # (b') the same with files named relative to the kubeconfig's directory
    def test_client_certificate_relative_files(self):
        sub = os.path.join(self.dir, "kube")
        os.makedirs(os.path.join(sub, "pki"))
        ca = certs.make_ca(os.path.join(sub, "pki"), "client-ca")
        certs.make_client_cert(os.path.join(sub, "pki"), ca, "file-bot", ["system:masters"],
                               name="bot")
        self.start_kube("--client-ca", ca[0])
        shutil.copy(self.kube.ca, os.path.join(sub, "pki", "server-ca.crt"))
        kc = kubeconfig(os.path.join(sub, "config"),
                        clusters=[("sim", {"server": self.kube.url,
                                           "certificate-authority": "pki/server-ca.crt"})],
                        users=[("bot", {"client-certificate": "pki/bot.crt",
                                        "client-key": "pki/bot.key"})],
                        contexts=[("main", {"cluster": "sim", "user": "bot"})],
                        current="main")
        self.start(["--kubeconfig", kc])      # the daemon's cwd is not sub
        self.wait_user("file-bot")

    # (c) an exec credential plugin, re-run before expiry and after a 401
    def test_exec_plugin_expiry_and_401(self):
        state = os.path.join(self.dir, "plugin")
        os.makedirs(state)
        runs = os.path.join(state, "runs")

        def put(name, text):
            with open(os.path.join(state, name + ".tmp"), "w") as f:
                f.write(text)
            os.replace(os.path.join(state, name + ".tmp"), os.path.join(state, name))

        def nruns():
            try:
                with open(runs) as f:
                    return [json.loads(line) for line in f]
            except FileNotFoundError:
                return []

        self.write_tokens([("tok-setup-0d1f", "setup", "system:masters"),
                           ("tok-exec-one-91ab", "exec-one", "system:masters")])
        self.secrets += ["tok-exec-one-91ab", "tok-exec-two-3f0c"]
        put("token", "tok-exec-one-91ab")
        put("ttl", "3")
        self.start_kube()
        kc = kubeconfig(os.path.join(self.dir, "config"),
                        clusters=[("sim", self.cluster())],
                        users=[("plug", {"exec": {
                            "apiVersion": "client.authentication.k8s.io/v1",
                            "command": sys.executable, "args": [PLUGIN, "--flag"],
                            "env": [("EXEC_PLUGIN_STATE", state)],
                            "interactiveMode": "Never", "provideClusterInfo": True}})],
                        contexts=[("main", {"cluster": "sim", "user": "plug"})],
                        current="main")
        self.start(["--kubeconfig", kc])
        self.wait_user("exec-one")
        first = nruns()[0]
        self.assertEqual(first["argv"], ["--flag"])
        self.assertFalse(first["tty"])
        self.assertEqual(first["info"]["apiVersion"], "client.authentication.k8s.io/v1")
        self.assertEqual(first["info"]["kind"], "ExecCredential")
        self.assertIs(first["info"]["spec"]["interactive"], False)
        self.assertEqual(first["info"]["spec"]["cluster"]["server"], self.kube.url)
        self.assertEqual(first["info"]["spec"]["cluster"]["certificate-authority-data"],
                         b64(self.kube.ca))
        # Expiry: the daemon runs the plugin again before the token runs out.
        wait_for(lambda: self.nudge() or len(nruns()) >= 3, 30, 0.1, "two runs after expiry")
        # No expiry from now on: the next run's token is kept until a 401.
        os.remove(os.path.join(state, "ttl"))
        wait_for(lambda: self.nudge() or "without expiry" in self.daemon.logs(), 30, 0.1,
                 "a token without expiry")
        before = len(nruns())
        since = self.kube.requests()[-1]["seq"] + 1 if self.kube.requests() else 0
        # Rotate: kube-sim forgets the old token, the plugin hands out a new one.
        put("token", "tok-exec-two-3f0c")
        self.write_tokens([("tok-setup-0d1f", "setup", "system:masters"),
                           ("tok-exec-two-3f0c", "exec-two", "system:masters")])
        self.wait_user("exec-two", since)
        # The old token was refused once (401s carry no user) before the new one.
        self.assertIn(401, [r["code"] for r in self.kube.requests(since)])
        self.assertGreaterEqual(len(nruns()), before + 1)
        self.assertIn("401, running the exec plugin", self.daemon.logs())

    # (c'') an exec plugin that hands out a client certificate
    def test_exec_plugin_client_certificate(self):
        state = os.path.join(self.dir, "plugin")
        os.makedirs(state)
        ca = certs.make_ca(self.dir, "client-ca")
        crt, key = certs.make_client_cert(self.dir, ca, "exec-cert-bot", ["system:masters"])
        shutil.copy(crt, os.path.join(state, "cert"))
        shutil.copy(key, os.path.join(state, "key"))
        with open(key) as f:
            self.secrets.append(f.read().splitlines()[1])
        self.start_kube("--client-ca", ca[0])
        kc = kubeconfig(os.path.join(self.dir, "config"),
                        clusters=[("sim", self.cluster())],
                        users=[("plug", {"exec": {
                            "apiVersion": "client.authentication.k8s.io/v1",
                            "command": sys.executable, "args": [PLUGIN],
                            "env": [("EXEC_PLUGIN_STATE", state)],
                            "interactiveMode": "IfAvailable"}})],
                        contexts=[("main", {"cluster": "sim", "user": "plug"})],
                        current="main")
        self.start(["--kubeconfig", kc])
        self.wait_user("exec-cert-bot")
        self.assertIn("client certificate without expiry", self.daemon.logs())

    # (c') a failing plugin at start: the daemon refuses to start, and says why
    def test_exec_plugin_failure_at_start(self):
        state = os.path.join(self.dir, "plugin")
        os.makedirs(state)
        with open(os.path.join(state, "fail"), "w") as f:
            f.write("login required: run 'cloud auth login'")
        self.start_kube()
        kc = kubeconfig(os.path.join(self.dir, "config"),
                        clusters=[("sim", self.cluster())],
                        users=[("plug", {"exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": sys.executable, "args": [PLUGIN],
                            "env": [("EXEC_PLUGIN_STATE", state)]}})],
                        contexts=[("main", {"cluster": "sim", "user": "plug"})],
                        current="main")
        rc, err = self.run_once(["--kubeconfig", kc])
        self.assertEqual(rc, 2, err)
        self.assertIn("exit status 3: login required: run 'cloud auth login'", err)
        self.assertNotIn("second line", err)

    # (d) KUBECONFIG with two files (and a missing one) merged
    def test_kubeconfig_list_merged(self):
        self.write_tokens([("tok-setup-0d1f", "setup", "system:masters"),
                           ("tok-first-5e2d", "first", "system:masters"),
                           ("tok-second-77aa", "second", "system:masters")])
        self.secrets += ["tok-first-5e2d", "tok-second-77aa"]
        self.start_kube()
        one = kubeconfig(os.path.join(self.dir, "one"),
                         users=[("u", {"token": "tok-first-5e2d"})],
                         contexts=[("main", {"cluster": "sim", "user": "u"})],
                         current="main")
        two = kubeconfig(os.path.join(self.dir, "two"),
                         clusters=[("sim", self.cluster())],
                         users=[("u", {"token": "tok-second-77aa"})],
                         contexts=[("other", {"cluster": "sim", "user": "u"})],
                         current="other")
        env = dict(os.environ, KUBECONFIG="%s:%s:%s" % (
            one, os.path.join(self.dir, "missing"), two))
        self.start(env=env)
        self.wait_user("first")
        self.assertEqual({u for u, _ in self.target_users()}, {"first"})
        self.assertIn("KUBECONFIG=", self.daemon.logs())

    # (e) a CA that did not sign the server's certificate: nothing gets through
    def test_wrong_ca_fails_closed(self):
        self.write_tokens([("tok-setup-0d1f", "setup", "system:masters"),
                           ("tok-alice-7c1e55", "alice", "system:masters")])
        self.secrets.append("tok-alice-7c1e55")
        self.start_kube()
        other = certs.make_ca(self.dir, "not-the-server-ca")
        kc = kubeconfig(os.path.join(self.dir, "config"),
                        clusters=[("sim", {"server": self.kube.url,
                                           "certificate-authority-data": b64(other[0])})],
                        users=[("alice", {"token": "tok-alice-7c1e55"})],
                        contexts=[("main", {"cluster": "sim", "user": "alice"})],
                        current="main")
        self.start(["--kubeconfig", kc], ready=False)
        wait_for(lambda: "SSL certificate problem" in self.daemon.logs(), 30, 0.1,
                 "a certificate error in the logs (%s)" % self.daemon.logs()[-2000:])
        self.assertNotEqual(self.daemon.get("/readyz")[0], 200)
        self.assertEqual(self.target_users(), [])

    # an auth-provider is refused with a clear message
    def test_auth_provider_refused(self):
        self.start_kube()
        path = os.path.join(self.dir, "config")
        with open(path, "w") as f:
            f.write("apiVersion: v1\nkind: Config\ncurrent-context: gke\n"
                    "clusters:\n- name: c\n  cluster:\n    server: %s\n"
                    "users:\n- name: u\n  user:\n    auth-provider:\n      name: gcp\n"
                    "      config: {access-token: secret-gcp-token}\n"
                    "contexts:\n- name: gke\n  context: {cluster: c, user: u}\n" % self.kube.url)
        rc, err = self.run_once(["--kubeconfig", path])
        self.assertEqual(rc, 2, err)
        self.assertIn('user \\"u\\": auth-provider \\"gcp\\" is not supported', err)
        self.assertNotIn("secret-gcp-token", err)

    def run_once(self, extra):
        """The daemon expected to exit by itself -> (exit code, stderr)."""
        cfg = os.path.join(self.dir, "pools.json")
        with open(cfg, "w") as f:
            json.dump({"pools": [world.pool("p", self.redis.url, "tasks", "agents")]}, f)
        binary = os.environ.get("AGENTSCALER_BIN",
                                os.path.join(world.ROOT, "build/release/agentscaler"))
        wrapper = os.environ.get("AGENTSCALER_WRAPPER", "").split()
        r = subprocess.run(wrapper + [binary, "--config", cfg, "--metrics-addr",
                                      "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"] + extra,
                           capture_output=True, timeout=120)
        return r.returncode, r.stderr.decode(errors="replace")


if __name__ == "__main__":
    import unittest
    unittest.main()
