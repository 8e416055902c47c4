#!/usr/bin/env python3
"""The RBAC a rendered chart grants its ServiceAccount, as kube-sim --rules.

    rbac_rules.py CHART [-f VALUES]... [--name RELEASE] [--namespace NS]

prints {"user": "system:serviceaccount:NS:SA", "rules": [...]} where rules
is the kube-sim rules file (tools/kube-sim/README.md, Auth) equivalent to
the chart's Roles, ClusterRoles and bindings for that user:

  * a ClusterRoleBinding grants its ClusterRole's rules in every namespace
    and at the cluster scope (kube-sim "namespaces": ["*"]);
  * a RoleBinding in namespace N grants its Role's (or ClusterRole's) rules
    in N only;
  * a subject matches when it is the ServiceAccount (a RoleBinding's subject
    without a namespace means the binding's namespace), the user
    system:serviceaccount:NS:SA, or one of the groups system:serviceaccounts,
    system:serviceaccounts:NS, system:authenticated;
  * resourceNames and nonResourceURLs carry over; a rule naming
    "deployments" does not grant "deployments/scale" (as in RBAC).

A binding whose role the chart does not render is an error (the chart would
depend on something outside itself).  The rendered YAML is parsed by the
real kubectl (`kubectl annotate --local -o json`, offline), not by our own
YAML code.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import chart_render  # noqa: E402

RBAC = "rbac.authorization.k8s.io"


def parse_manifests(text):
    """The documents of a multi-document YAML text as JSON objects, parsed by
    kubectl offline.  RuntimeError with kubectl's message when it refuses."""
    if shutil.which("kubectl") is None:
        raise RuntimeError("kubectl is not installed")
    home = tempfile.mkdtemp(prefix="chart-render-home-")
    try:
        with open(os.path.join(home, "in.yaml"), "w") as f:
            f.write(text)
        env = dict(os.environ, HOME=home, KUBECONFIG=os.path.join(home, "none"))
        r = subprocess.run(["kubectl", "annotate", "--local", "-f",
                            os.path.join(home, "in.yaml"), "-o", "json",
                            "chart-render.agentscaler.io/parsed=true"],
                           capture_output=True, text=True, env=env, timeout=60)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if r.returncode != 0:
        raise RuntimeError("kubectl could not parse the manifests: %s" % r.stderr.strip())
    objs, dec, i, s = [], json.JSONDecoder(), 0, r.stdout
    while True:
        while i < len(s) and s[i].isspace():
            i += 1
        if i >= len(s):
            break
        o, i = dec.raw_decode(s, i)
        if o.get("kind") == "List":
            objs.extend(o.get("items") or [])
        else:
            objs.append(o)
    for o in objs:   # drop the marker annotation kubectl added
        ann = o.get("metadata", {}).get("annotations") or {}
        ann.pop("chart-render.agentscaler.io/parsed", None)
        if not ann:
            o["metadata"].pop("annotations", None)
    return objs


def _subject_matches(sub, binding_ns, sa_ns, sa_name):
    kind = sub.get("kind")
    if kind == "ServiceAccount":
        return sub.get("name") == sa_name and (sub.get("namespace") or binding_ns) == sa_ns
    if kind == "User":
        return sub.get("name") == "system:serviceaccount:%s:%s" % (sa_ns, sa_name)
    if kind == "Group":
        return sub.get("name") in ("system:serviceaccounts", "system:serviceaccounts:" + sa_ns,
                                   "system:authenticated")
    return False


def rules_for(objs, sa_ns, sa_name):
    """kube-sim rules granting sa_ns/sa_name what the chart's RBAC grants."""
    user = "system:serviceaccount:%s:%s" % (sa_ns, sa_name)
    roles = {}
    for o in objs:
        if o.get("apiVersion") == RBAC + "/v1" and o.get("kind") in ("Role", "ClusterRole"):
            md = o.get("metadata") or {}
            ns = md.get("namespace", "") if o["kind"] == "Role" else ""
            roles[(o["kind"], ns, md.get("name"))] = o.get("rules") or []
    out = []
    for o in objs:
        if o.get("apiVersion") != RBAC + "/v1" or \
                o.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        md = o.get("metadata") or {}
        bns = md.get("namespace", "") if o["kind"] == "RoleBinding" else ""
        if not any(_subject_matches(s, bns, sa_ns, sa_name) for s in o.get("subjects") or []):
            continue
        ref = o.get("roleRef") or {}
        key = (ref.get("kind"), bns if ref.get("kind") == "Role" else "", ref.get("name"))
        if key not in roles:
            raise RuntimeError("%s %s/%s refers to %s %r, which the chart does not render"
                               % (o["kind"], bns, md.get("name"), ref.get("kind"),
                                  ref.get("name")))
        for r in roles[key]:
            if r.get("nonResourceURLs"):
                if o["kind"] == "ClusterRoleBinding":
                    out.append({"users": [user], "verbs": list(r.get("verbs") or []),
                                "nonResourceURLs": list(r["nonResourceURLs"])})
                continue
            rule = {"users": [user], "verbs": list(r.get("verbs") or []),
                    "apiGroups": list(r.get("apiGroups") or []),
                    "resources": list(r.get("resources") or []),
                    "namespaces": ["*"] if o["kind"] == "ClusterRoleBinding" else [bns]}
            if r.get("resourceNames"):
                rule["resourceNames"] = list(r["resourceNames"])
            out.append(rule)
    return user, out


def chart_rbac(chart_dir, value_files=(), release="agentscaler", namespace="agentscaler",
               api_versions=()):
    """Renders the chart and returns (user, rules, objects)."""
    r = chart_render.render_chart(chart_dir, value_files, release, namespace, api_versions)
    objs = parse_manifests(chart_render.format_manifests(r["manifests"]))
    sa = None
    for o in objs:
        if o.get("kind") == "Deployment":
            sa = o["spec"]["template"]["spec"].get("serviceAccountName")
    if not sa:
        raise RuntimeError("the chart renders no Deployment with a serviceAccountName")
    user, rules = rules_for(objs, namespace, sa)
    return user, rules, objs


def main(argv=None):
    p = argparse.ArgumentParser(prog="rbac_rules")
    p.add_argument("chart")
    p.add_argument("-f", "--values", action="append", default=[])
    p.add_argument("--name", default="agentscaler")
    p.add_argument("--namespace", "-n", default="agentscaler")
    p.add_argument("--api-versions", action="append", default=[])
    a = p.parse_args(argv)
    user, rules, _ = chart_rbac(a.chart, a.values, a.name, a.namespace, a.api_versions)
    print(json.dumps({"user": user, "rules": rules}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
