"""The RBAC a chart grants its ServiceAccount, as kube-sim --rules.

rules_for(objects, namespace, serviceaccount) turns the Roles, ClusterRoles
and bindings among the objects `helm template` renders (tools/lib/chart.py
parses them) into the kube-sim rules file (tools/kube-sim/README.md, Auth)
that grants the user system:serviceaccount:NS:SA the same:

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

A binding whose role is not among the objects is an error (the chart would
depend on something outside itself).  Pure: objects in, rules out.
"""

RBAC = "rbac.authorization.k8s.io"


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
