"""charts/agentscaler through the real Helm, offline.

Helm is the one tools/cluster/build.sh builds from its pinned module
(build/cluster/bin/helm; `make helm`).  template() renders the chart with
`helm template` (values.schema.json and the chart's own `fail`s are Helm's
to enforce), release() with `helm install --dry-run=client -o json` when a
test needs what only a release holds: the NOTES and the chart's default
values.  Neither talks to a cluster.

Helm prints YAML and the standard library reads none: parse() has the
kubectl of the same build turn it into JSON objects (`kubectl annotate
--local`, which reads files only, with the typed decoders of the built-in
kinds).  world.chart_rbac() and tests/chart use this module; the e2e suites
pass their cluster's kubeconfig to helm() for install and upgrade.
"""
import atexit
import json
import os
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "charts", "agentscaler")
BIN = os.environ.get("AGENTSCALER_CLUSTER_BIN", os.path.join(ROOT, "build", "cluster", "bin"))
HELM = os.path.join(BIN, "helm")
KUBECTL = os.path.join(BIN, "kubectl")

# image.repository is required (the chart names no default image): the
# values file every rendering and install of the tests starts from.
IMAGE_VALUES = os.path.join(ROOT, "tests", "chart", "values-image.yaml")

_home = None


def missing():
    """The binaries of build/cluster/bin this module needs and lacks."""
    return [os.path.basename(b) for b in (HELM, KUBECTL) if not os.access(b, os.X_OK)]


def _private_home():
    """A HOME of this process for Helm and kubectl: no user configuration,
    repository list or cache leaks in, and the tests leave nothing behind."""
    global _home
    if _home is None:
        _home = tempfile.mkdtemp(prefix="agentscaler-helm-")
        atexit.register(shutil.rmtree, _home, True)
    return _home


def env(home=None):
    """The environment for helm and kubectl with every Helm directory and
    the kubeconfig under home (a private one by default)."""
    home = home or _private_home()
    return dict(os.environ, HOME=home, KUBECONFIG=os.path.join(home, "kubeconfig"),
                HELM_CACHE_HOME=os.path.join(home, "helm-cache"),
                HELM_CONFIG_HOME=os.path.join(home, "helm-config"),
                HELM_DATA_HOME=os.path.join(home, "helm-data"))


def helm(*args, kubeconfig=None, home=None, check=True, timeout=300):
    """Runs helm; CompletedProcess (text).  kubeconfig: the cluster to talk
    to (install, upgrade); without one Helm works offline.  check: an
    AssertionError with Helm's output when it fails."""
    argv = [HELM] + (["--kubeconfig", kubeconfig] if kubeconfig else []) + list(args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env(home))
    if check and r.returncode != 0:
        raise AssertionError("helm %s: exit %d: %s%s" % (" ".join(args), r.returncode,
                                                         r.stdout, r.stderr))
    return r


def parse(text):
    """The documents of a multi-document YAML text as JSON objects, in their
    order, parsed by kubectl offline.  RuntimeError with kubectl's message
    when it refuses."""
    home = _private_home()
    fd, path = tempfile.mkstemp(suffix=".yaml", dir=home)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        r = subprocess.run([KUBECTL, "annotate", "--local", "-f", path, "-o", "json",
                            "agentscaler.io/parsed=true"],
                           capture_output=True, text=True, env=env(home), timeout=60)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise RuntimeError("kubectl could not parse the manifests: %s" % r.stderr.strip())
    objs, dec, i, s = [], json.JSONDecoder(), 0, r.stdout
    while True:
        while i < len(s) and s[i].isspace():
            i += 1
        if i >= len(s):
            break
        o, i = dec.raw_decode(s, i)
        objs.extend(o.get("items") or [] if o.get("kind") == "List" else [o])
    for o in objs:      # drop the annotation that made kubectl print them
        ann = o.get("metadata", {}).get("annotations") or {}
        ann.pop("agentscaler.io/parsed", None)
        if not ann:
            o["metadata"].pop("annotations", None)
    return objs


def _values_args(values, api_versions, sets, image=True):
    """-f, --api-versions and --set arguments; image: IMAGE_VALUES first,
    so that the test's own values may still name another image."""
    args = ["-f", IMAGE_VALUES] if image else []
    for v in values:
        args += ["-f", v]
    for a in api_versions:
        args += ["--api-versions", a]
    for s in sets:
        args += ["--set", s]
    return args


def template(values=(), release="agentscaler", namespace="agentscaler", api_versions=(),
             sets=(), chart=CHART, image=True):
    """(text, objects) of `helm template`: the chart's objects in Helm's
    install order.  AssertionError with Helm's message when it refuses the
    values."""
    text = helm("template", release, chart, "--namespace", namespace,
                *_values_args(values, api_versions, sets, image)).stdout
    return text, parse(text)


def release(values=(), release="agentscaler", namespace="agentscaler", sets=(),
            chart=CHART, image=True):
    """The release `helm install --dry-run=client -o json` makes, as JSON:
    manifest, info.notes, chart.values (the chart's defaults).  Helm's
    install takes no --api-versions: a value that needs an API the default
    capabilities lack is refused here."""
    out = helm("install", release, chart, "--namespace", namespace, "--dry-run=client",
               "-o", "json", *_values_args(values, (), sets, image)).stdout
    return json.loads(out)


def load_yaml(path):
    """A YAML file (a values file) as JSON, parsed by kubectl: the file
    indented under a key of an object kubectl decodes without knowing its
    kind."""
    with open(path) as f:
        text = f.read()
    doc = "apiVersion: agentscaler.io/v1\nkind: Values\nmetadata:\n  name: v\nvalues:\n" + \
        "".join("  " + ln + "\n" for ln in text.split("\n"))
    objs = parse(doc)
    if len(objs) != 1:
        raise RuntimeError("%s: %d documents" % (path, len(objs)))
    return objs[0].get("values") or {}


def service_account(objs):
    """The ServiceAccount name the chart's Deployment runs as."""
    for o in objs:
        if o.get("kind") == "Deployment":
            sa = o["spec"]["template"]["spec"].get("serviceAccountName")
            if sa:
                return sa
    raise RuntimeError("the chart renders no Deployment with a serviceAccountName")
