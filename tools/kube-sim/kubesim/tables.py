"""Server-side printing (meta.k8s.io/v1 Table) for kubectl get."""

import re
import time

from .util import parse_ts

NAME_COL = {"name": "Name", "type": "string", "format": "name",
            "description": "Name must be unique within a namespace. More info: "
                           "https://kubernetes.io/docs/concepts/overview/working-with-"
                           "objects/names#names", "priority": 0}


def human_duration(sec):
    s = int(sec)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = s // 3600
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    if h < 24 * 8:
        return "%dd%dh" % (h // 24, h % 24) if h % 24 else "%dd" % (h // 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    return "%dy" % (h // (24 * 365))


def _age(o):
    t = parse_ts((o.get("metadata") or {}).get("creationTimestamp"))
    return "<unknown>" if t is None else human_duration(time.time() - t)


def _since(ts):
    t = parse_ts(ts)
    return "<unknown>" if t is None else human_duration(time.time() - t)


def _col(name, typ="string", prio=0, fmt="", desc=""):
    return {"name": name, "type": typ, "format": fmt, "description": desc or name,
            "priority": prio}


def _containers(o):
    return ((((o.get("spec") or {}).get("template") or {}).get("spec") or {})
            .get("containers") or [])


def _svc_ports(o):
    out = []
    for p in (o.get("spec") or {}).get("ports") or []:
        s = str(p.get("port", ""))
        if p.get("nodePort"):
            s += ":%s" % p["nodePort"]
        out.append(s + "/" + p.get("protocol", "TCP"))
    return ",".join(out) or "<none>"


def _binding_row(o):
    rr = o.get("roleRef") or {}
    subs = o.get("subjects") or []

    def names(kind):
        return ", ".join((s.get("namespace") + "/" if kind == "ServiceAccount" and
                          s.get("namespace") else "") + s.get("name", "")
                         for s in subs if s.get("kind") == kind)
    return ["%s/%s" % (rr.get("kind", ""), rr.get("name", "")), _age(o), names("User"),
            names("Group"), names("ServiceAccount")]


BUILTIN = {
    "Namespace": ([_col("Status"), _col("Age")],
                  lambda o: [(o.get("status") or {}).get("phase", ""), _age(o)]),
    "ConfigMap": ([_col("Data", "integer"), _col("Age")],
                  lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                             _age(o)]),
    "Secret": ([_col("Type"), _col("Data", "integer"), _col("Age")],
               lambda o: [o.get("type", ""), len(o.get("data") or {}), _age(o)]),
    "Deployment": ([_col("Ready"), _col("Up-to-date", "integer"),
                    _col("Available", "integer"), _col("Age"), _col("Containers", prio=1),
                    _col("Images", prio=1), _col("Selector", prio=1)],
                   lambda o: ["%d/%d" % ((o.get("status") or {}).get("readyReplicas", 0),
                                         (o.get("spec") or {}).get("replicas", 0)),
                              (o.get("status") or {}).get("updatedReplicas", 0),
                              (o.get("status") or {}).get("availableReplicas", 0), _age(o),
                              ",".join(c.get("name", "") for c in _containers(o)),
                              ",".join(c.get("image", "") for c in _containers(o)),
                              ",".join("%s=%s" % kv for kv in sorted(
                                  (((o.get("spec") or {}).get("selector") or {})
                                   .get("matchLabels") or {}).items()))]),
    "StatefulSet": ([_col("Ready"), _col("Age"), _col("Containers", prio=1),
                     _col("Images", prio=1)],
                    lambda o: ["%d/%d" % ((o.get("status") or {}).get("readyReplicas", 0),
                                          (o.get("spec") or {}).get("replicas", 0)), _age(o),
                               ",".join(c.get("name", "") for c in _containers(o)),
                               ",".join(c.get("image", "") for c in _containers(o))]),
    "Lease": ([_col("Holder"), _col("Age")],
              lambda o: [(o.get("spec") or {}).get("holderIdentity", ""), _age(o)]),
    "ResourceQuota": ([_col("Age"), _col("Request"), _col("Limit")],
                      lambda o: [_age(o), ", ".join(
                          "%s: %s/%s" % (k, ((o.get("status") or {}).get("used") or {})
                                         .get(k, "0"), v)
                          for k, v in sorted(((o.get("status") or {}).get("hard") or {})
                                             .items())), ""]),
    "Event": ([_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"),
               _col("Message")],
              lambda o: [_since(o.get("lastTimestamp") or o.get("eventTime")
                                or o["metadata"].get("creationTimestamp")),
                         o.get("type", ""), o.get("reason", ""),
                         "%s/%s" % ((o.get("involvedObject") or {}).get("kind", "").lower(),
                                    (o.get("involvedObject") or {}).get("name", "")),
                         o.get("message", "")]),
    "ServiceAccount": ([_col("Secrets", "integer"), _col("Age")],
                       lambda o: [len(o.get("secrets") or []), _age(o)]),
    "Service": ([_col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"),
                 _col("Age"), _col("Selector", prio=1)],
                lambda o: [(o.get("spec") or {}).get("type", ""),
                           (o.get("spec") or {}).get("clusterIP", "") or "<none>",
                           ",".join((o.get("spec") or {}).get("externalIPs") or []) or "<none>",
                           _svc_ports(o), _age(o),
                           ",".join("%s=%s" % kv for kv in sorted(
                               ((o.get("spec") or {}).get("selector") or {}).items()))
                           or "<none>"]),
    "PodDisruptionBudget": ([_col("Min Available"), _col("Max Unavailable"),
                             _col("Allowed Disruptions", "integer"), _col("Age")],
                            lambda o: [str((o.get("spec") or {}).get("minAvailable", "N/A")),
                                       str((o.get("spec") or {}).get("maxUnavailable", "N/A")),
                                       (o.get("status") or {}).get("disruptionsAllowed", 0),
                                       _age(o)]),
    "Role": ([_col("Created At", "date")], lambda o: [o["metadata"].get("creationTimestamp")]),
    "ClusterRole": ([_col("Created At", "date")],
                    lambda o: [o["metadata"].get("creationTimestamp")]),
    "RoleBinding": ([_col("Role"), _col("Age"), _col("Users", prio=1),
                     _col("Groups", prio=1), _col("ServiceAccounts", prio=1)],
                    lambda o: _binding_row(o)),
    "ClusterRoleBinding": ([_col("Role"), _col("Age"), _col("Users", prio=1),
                            _col("Groups", prio=1), _col("ServiceAccounts", prio=1)],
                           lambda o: _binding_row(o)),
    "CustomResourceDefinition": ([_col("Created At", "date")],
                                 lambda o: [o["metadata"].get("creationTimestamp")]),

}


def jsonpath(obj, expr):
    """Evaluate the JSONPath subset used by printer columns."""
    cur = [obj]
    for tok in re.findall(r"\[\?\(@\.[^)]*\)\]|\[[^\]]*\]|\.[^.\[]+", expr):
        nxt = []
        if tok.startswith("[?("):
            m = re.match(r"\[\?\(@\.([\w.]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]", tok)
            if not m:
                return None
            for c in cur:
                if isinstance(c, list):
                    for it in c:
                        v = it
                        for p in m.group(1).split("."):
                            v = v.get(p) if isinstance(v, dict) else None
                        if v == m.group(2):
                            nxt.append(it)
        elif tok.startswith("["):
            idx = tok[1:-1]
            for c in cur:
                if isinstance(c, list):
                    if idx == "*":
                        nxt.extend(c)
                    else:
                        try:
                            nxt.append(c[int(idx)])
                        except (ValueError, IndexError):
                            pass
        else:
            k = tok[1:]
            for c in cur:
                if isinstance(c, dict) and k in c:
                    nxt.append(c[k])
                elif isinstance(c, list):
                    for it in c:
                        if isinstance(it, dict) and k in it:
                            nxt.append(it[k])
        cur = nxt
    if not cur:
        return None
    return cur[0] if len(cur) == 1 else cur


class Tables:
    def columns(self, rt):
        if rt.builtin:
            cols, fn = BUILTIN.get(rt.kind, ([_col("Age")], lambda o: [_age(o)]))
            return [NAME_COL] + cols, fn
        pcs = rt.printer
        if not pcs:
            return [NAME_COL, _col("Age", "date")], lambda o: [_age(o)]
        cols = [_col(p["name"], p.get("type", "string"), p.get("priority", 0),
                     p.get("format", ""), p.get("description", "")) for p in pcs]

        def fn(o):
            out = []
            for p in pcs:
                v = jsonpath(o, p.get("jsonPath", ""))
                if isinstance(v, list):
                    v = ",".join(str(x) for x in v)
                if p.get("type") == "date" and isinstance(v, str):
                    t = parse_ts(v)
                    v = "<invalid>" if t is None else human_duration(time.time() - t)
                out.append(v)
            return out
        return [NAME_COL] + cols, fn

    def _row(self, rt, o, fn, q):
        md = dict(o["metadata"])
        md.pop("managedFields", None)
        inc = q.get("includeObject", "Metadata")
        row = {"cells": [md["name"]] + fn(o)}
        if inc == "Object":
            row["object"] = o
        elif inc != "None":
            row["object"] = {"kind": "PartialObjectMetadata",
                             "apiVersion": "meta.k8s.io/v1", "metadata": md}
        return row

    def list_table(self, rt, lst, q):
        cols, fn = self.columns(rt)
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": lst["metadata"], "columnDefinitions": cols,
                "rows": [self._row(rt, o, fn, q) for o in lst["items"]]}

    def obj_table(self, rt, o, q):
        cols, fn = self.columns(rt)
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": o["metadata"].get("resourceVersion", "")},
                "columnDefinitions": cols, "rows": [self._row(rt, o, fn, q)]}
