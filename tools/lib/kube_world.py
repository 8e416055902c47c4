"""The API server side of the embedded world: kube-sim as the tests drive it
(KubeSim: started by kubesim_proc.start_kube_sim, optionally authorizing
with the chart's RBAC), Deployments over any API server, bearer tokens for
kube-sim, and the real kubectl against it (Kubectl)."""
import json
import os
import shutil
import subprocess
import tempfile

from httpjson import http
from kubesim_proc import start_kube_sim, stop_kube_sim
from procs import ROOT


def kube_tokens(directory, names):
    """Bearer tokens for kube-sim --tokens, one user per process so that its
    request log says who sent what: "tester" (system:masters, token
    "test-token", for the test itself) and, for each name, the user
    "daemon-<name>" whose token is in the file <directory>/token-<name>.
    Returns the path of the CSV."""
    rows = ["test-token,tester,u-test,system:masters"]
    for name in names:
        rows.append("%s-token,daemon-%s,u-%s," % (name, name, name))
        with open(os.path.join(directory, "token-%s" % name), "w") as f:
            f.write("%s-token" % name)
    path = os.path.join(directory, "tokens.csv")
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return path


# AGENTSCALER_CHART_RBAC=1: every KubeSim started without its own --tokens
# authorizes with the RBAC that charts/agentscaler (default values, release
# "agentscaler" in namespace CHART_NAMESPACE) grants its ServiceAccount, and
# every Daemon on such a KubeSim (without its own --token-file) uses that
# ServiceAccount's token.  The tests' own setup (Deployments, warm pools,
# claims, the agent runtime) keeps full rights through an admin token in
# system:masters.  A 403 answered to the ServiceAccount fails the test when
# its KubeSim stops.  `make chart-rbac` runs a list of modules this way.
# AGENTSCALER_CHART_RBAC_USAGE=FILE appends, per KubeSim, a JSON line counting
# the ServiceAccount's requests by method, resource and answer code (to see
# which of the granted verbs the scenarios exercise).
CHART_RBAC = os.environ.get("AGENTSCALER_CHART_RBAC") == "1"
CHART_NAMESPACE = "agentscaler"
_chart_rbac = None


def chart_rbac(values=(), namespace=CHART_NAMESPACE):
    """(user, kube-sim rules) of the chart's ServiceAccount: the chart
    rendered by the real Helm (tools/lib/chart.py), its RBAC converted by
    tools/lib/rbac_rules.py.  With the default values and namespace, once."""
    global _chart_rbac
    if values or namespace != CHART_NAMESPACE or _chart_rbac is None:
        import chart
        import rbac_rules
        _text, objs = chart.template(values, namespace=namespace)
        got = rbac_rules.rules_for(objs, namespace, chart.service_account(objs))
        if values or namespace != CHART_NAMESPACE:
            return got
        _chart_rbac = got
    return _chart_rbac


class Deployments:
    """create_deployment() and replicas() over self.api(), for every API
    server the tests drive (KubeSim here, tools/cluster's Cluster)."""

    def create_deployment(self, name, replicas=0, ns="default"):
        body = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"replicas": replicas,
                         "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "agent",
                                                               "image": "agent:1"}]}}}}
        code, obj = self.api("POST", "/apis/apps/v1/namespaces/%s/deployments" % ns, body)
        if code != 201:
            raise RuntimeError("create deployment: %s %s" % (code, obj))
        return obj

    def replicas(self, name, ns="default"):
        code, obj = self.api("GET", "/apis/apps/v1/namespaces/%s/deployments/%s" % (ns, name))
        if code != 200:
            raise RuntimeError("get deployment: %s %s" % (code, obj))
        return obj["spec"].get("replicas", 1)


class KubeSim(Deployments):
    """kube-sim for the tests, the demo and the tools: its url, admin url
    and CA; api() and adm() talk to it.  rbac: None follows
    AGENTSCALER_CHART_RBAC (above); True authorizes with the chart's
    default RBAC, a (user, rules) pair with those, False not at all (only
    without --tokens in args)."""

    def __init__(self, *args, rbac=None):
        args = list(args)
        if rbac is None:
            rbac = CHART_RBAC
        self.chart_rbac = bool(rbac) and "--tokens" not in args
        self.auth_dir = None
        self.sa_user = self.sa_token = None
        self.token = None      # bearer token for api(), when --tokens is on
        if self.chart_rbac:
            self.sa_user, rules = chart_rbac() if rbac is True else rbac
            self.auth_dir = tempfile.mkdtemp(prefix="kube-sim-chart-rbac-")
            tokens = os.path.join(self.auth_dir, "tokens.csv")
            with open(tokens, "w") as f:
                f.write('chart-admin-token,chart-test-admin,u-admin,"system:masters"\n'
                        "chart-sa-token,%s,u-sa,\n" % self.sa_user)
            rules_path = os.path.join(self.auth_dir, "rules.json")
            # The real kubectl sends no bearer token over plain HTTP, so
            # the tests' own kubectl (setup, as an administrator) comes as
            # system:anonymous: that user may do everything here.  The
            # daemon always authenticates as the ServiceAccount.
            rules = list(rules) + [
                {"users": ["system:anonymous"], "verbs": ["*"], "apiGroups": ["*"],
                 "resources": ["*"], "namespaces": ["*", ""]},
                {"users": ["system:anonymous"], "verbs": ["*"], "nonResourceURLs": ["*"]}]
            with open(rules_path, "w") as f:
                json.dump(rules, f, indent=1)
            args += ["--tokens", tokens, "--rules", rules_path]
            self.token = "chart-admin-token"
            self.sa_token = "chart-sa-token"
        try:
            self.proc, info = start_kube_sim(["--port", "0", "--admin-port", "0"] + args)
        except BaseException:
            if self.auth_dir:
                shutil.rmtree(self.auth_dir, ignore_errors=True)
            raise
        self.url, self.admin, self.ca = info["url"], info["admin"], info.get("ca")

    def sa_token_file(self, directory):
        """Writes the chart ServiceAccount's token into directory; its path."""
        path = os.path.join(directory, "chart-sa-token")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.sa_token)
        return path

    def forbidden(self):
        """Requests kube-sim answered 403 to the chart's ServiceAccount."""
        return [r for r in self.requests() if r.get("code") == 403 and
                r.get("user") == self.sa_user]

    def _sa_usage(self):
        """{"METHOD group/resource[/sub] (item|collection|watch)": count} of the
        ServiceAccount's requests, for AGENTSCALER_CHART_RBAC_USAGE."""
        out = {}
        for r in self.requests():
            if r.get("user") != self.sa_user:
                continue
            parts = r["path"].strip("/").split("/")
            if parts[0] == "api":
                parts = ["api", ""] + parts[1:]
            grp, rest = parts[1].split("/")[0] if parts[0] == "apis" else "", parts[3:]
            if rest[:1] == ["namespaces"] and len(rest) > 2:
                rest = rest[2:]
            res = rest[0] if rest else "?"
            if len(rest) > 2:
                res += "/" + rest[2]
            kind = "watch" if "watch=" in (r.get("query") or "") else \
                "item" if len(rest) > 1 else "collection"
            key = "%s %s/%s (%s) %s" % (r["method"], grp, res, kind, r.get("code"))
            out[key] = out.get(key, 0) + 1
        return out

    def stop(self):
        denied = None
        if self.chart_rbac and self.proc.poll() is None:
            denied = self.forbidden()
            usage_file = os.environ.get("AGENTSCALER_CHART_RBAC_USAGE")
            if usage_file:
                with open(usage_file, "a") as f:
                    f.write(json.dumps(self._sa_usage()) + "\n")
        stop_kube_sim(self.proc)
        if self.auth_dir:
            shutil.rmtree(self.auth_dir, ignore_errors=True)
        if denied:
            what = sorted({"%s %s" % (r["method"], r["path"]) for r in denied})
            raise AssertionError(
                "the chart's RBAC denied %d request(s) of %s: %s%s" % (
                    len(denied), self.sa_user, ", ".join(what[:5]),
                    " and %d more" % (len(what) - 5) if len(what) > 5 else ""))

    def api(self, method, path, body=None, ctype="application/json"):
        auth = {"Authorization": "Bearer " + self.token} if self.token else None
        return http(method, self.url + path, body, ctype, headers=auth, cafile=self.ca)

    def adm(self, method, path, body=None):
        return http(method, self.admin + path, body)

    def requests(self, since=0):
        code, obj = self.adm("GET", "/requests?since=%d" % since)
        return obj["requests"]

    def fault(self, method, path, code, count, retry_after=None):
        body = {"method": method, "path": path, "code": code, "count": count}
        if retry_after is not None:
            body["retryAfter"] = retry_after
        c, obj = self.adm("POST", "/faults", body)
        if c >= 300:
            raise RuntimeError("fault: %s %s" % (c, obj))


CRDS = os.path.join(ROOT, "charts/agentscaler/crds")


class Kubectl:
    """The real kubectl against a kube-sim (anything with .url), with a
    fresh HOME (so no stale discovery cache) and no kubeconfig; extra:
    more global flags.  cleanup() removes the HOME."""

    def __init__(self, kubesim, extra=None):
        self.home = tempfile.mkdtemp(prefix="kubectl-home-")
        self.env = dict(os.environ, HOME=self.home,
                        KUBECONFIG=os.path.join(self.home, "kubeconfig-none"))
        self.base = ["kubectl", "--server", kubesim.url] + list(extra or [])

    @staticmethod
    def available():
        return shutil.which("kubectl") is not None

    def run(self, *args, stdin=None, timeout=60, check=True):
        r = subprocess.run(self.base + list(args), capture_output=True, text=True,
                           env=self.env, input=stdin, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("kubectl %s failed (%d): %s %s"
                                 % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def popen(self, *args):
        return subprocess.Popen(self.base + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env)

    def install_crds(self):
        """kubectl apply of charts/agentscaler/crds (kube-sim serves no
        OpenAPI, hence --validate=false)."""
        return self.run("apply", "--validate=false", "-f", CRDS)

    def cleanup(self):
        shutil.rmtree(self.home, ignore_errors=True)
