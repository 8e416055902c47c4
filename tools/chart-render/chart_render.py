#!/usr/bin/env python3
"""chart-render: `helm template` for the agentscaler chart, without helm.

    chart_render.py CHART [-f VALUES]... [--name RELEASE] [--namespace NS]
        [--api-versions GROUP/VERSION]... [--include-crds] [--notes]
        [--values-only] [--check-values]

Prints the rendered manifests as `helm template` does (`---` and a
`# Source:` line before each document), in Helm's install order.  Exit 0 on
success, 1 when the chart refuses the values (schema, `fail`, `required`),
2 on a template or YAML error, or anything outside the supported subset.

What it implements, and what it refuses, is in README.md beside this file:
values.yaml merged with each -f file (maps merge, lists replace, null
deletes), validation against values.schema.json (a draft-07 subset), the Go
template + Sprig subset of gotemplate.py, .Values, .Release, .Chart,
.Capabilities (APIVersions.Has, KubeVersion), .Template.
Standard library only.
"""

import argparse
import copy
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gotemplate  # noqa: E402
import yamlsub  # noqa: E402

# The kinds in Helm's install order (helm.sh/helm/v3 pkg/releaseutil/kind_sorter.go).
INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService",
]

# API versions a cluster of Kubernetes 1.32 serves (the part that matters
# here); --api-versions adds more, as with helm template.
DEFAULT_API_VERSIONS = [
    "v1", "apps/v1", "batch/v1", "policy/v1", "rbac.authorization.k8s.io/v1",
    "coordination.k8s.io/v1", "events.k8s.io/v1", "apiextensions.k8s.io/v1",
    "autoscaling/v1", "autoscaling/v2", "networking.k8s.io/v1", "storage.k8s.io/v1",
    "admissionregistration.k8s.io/v1", "scheduling.k8s.io/v1", "discovery.k8s.io/v1",
]


class ValuesError(Exception):
    """The values do not meet the chart's schema."""


# ---------------------------------------------------------------- objects seen by templates

class Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.tmpl_fields = set(kw)


class APIVersions:
    tmpl_fields = {"Has"}

    def __init__(self, versions):
        self.versions = set(versions)

    def Has(self, v):  # noqa: N802 (Helm's name)
        return v in self.versions


# ---------------------------------------------------------------- values

def coalesce(base, over):
    """Helm's merge of a values file over the defaults: maps merge
    recursively, anything else replaces, null deletes the key."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = coalesce(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_values_file(path):
    with open(path, encoding="utf-8") as f:
        v = yamlsub.load(f.read(), path)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise yamlsub.YAMLError("%s: a values file must be a mapping" % path)
    return v


# ---------------------------------------------------------------- draft-07 subset

_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "default", "examples"}
_KEYWORDS = {"type", "properties", "required", "additionalProperties", "enum", "minimum",
             "maximum", "items", "pattern", "minLength", "maxLength", "minItems",
             "maxItems", "$ref", "definitions"}


def _jtype(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "integer" if float(v).is_integer() else "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _type_ok(want, v):
    t = _jtype(v)
    return want == t or (want == "number" and t == "integer")


def validate(schema, v, path="", root=None, errs=None):
    """Draft-07 subset: type, properties, required, additionalProperties,
    enum, minimum, maximum, items, pattern, min/maxLength, min/maxItems,
    local $ref.  Unknown keywords raise (never silently ignored)."""
    root = root if root is not None else schema
    errs = errs if errs is not None else []
    if schema is True or schema == {}:
        return errs
    if schema is False:
        errs.append("%s: not allowed" % (path or "(root)"))
        return errs
    unknown = set(schema) - _ANNOTATIONS - _KEYWORDS
    if unknown:
        raise ValueError("values.schema.json: keyword(s) %s at %s are outside "
                         "chart-render's draft-07 subset" % (sorted(unknown), path or "(root)"))
    where = path or "(root)"
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError("values.schema.json: only local $ref is supported: %s" % ref)
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        return validate(target, v, path, root, errs)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(t, v) for t in types):
            errs.append("%s: Invalid type. Expected: %s, given: %s"
                        % (where, " or ".join(types), _jtype(v)))
            return errs
    if "enum" in schema and v not in schema["enum"]:
        errs.append("%s: %s must be one of the following: %s"
                    % (where, where, ", ".join(json.dumps(e) for e in schema["enum"])))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in schema and v < schema["minimum"]:
            errs.append("%s: Must be greater than or equal to %s" % (where, schema["minimum"]))
        if "maximum" in schema and v > schema["maximum"]:
            errs.append("%s: Must be less than or equal to %s" % (where, schema["maximum"]))
    if isinstance(v, str):
        if "pattern" in schema and not re.search(schema["pattern"], v):
            errs.append("%s: Does not match pattern '%s'" % (where, schema["pattern"]))
        if "minLength" in schema and len(v) < schema["minLength"]:
            errs.append("%s: String length must be greater than or equal to %d"
                        % (where, schema["minLength"]))
        if "maxLength" in schema and len(v) > schema["maxLength"]:
            errs.append("%s: String length must be less than or equal to %d"
                        % (where, schema["maxLength"]))
    if isinstance(v, list):
        if "minItems" in schema and len(v) < schema["minItems"]:
            errs.append("%s: Array must have at least %d items" % (where, schema["minItems"]))
        if "maxItems" in schema and len(v) > schema["maxItems"]:
            errs.append("%s: Array must have at most %d items" % (where, schema["maxItems"]))
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(v):
                validate(schema["items"], item, "%s.%d" % (path, i) if path else str(i),
                         root, errs)
    if isinstance(v, dict):
        props = schema.get("properties") or {}
        for r in schema.get("required") or []:
            if r not in v:
                errs.append("%s: %s is required" % (where, r))
        addl = schema.get("additionalProperties", True)
        for k in v:
            sub = "%s.%s" % (path, k) if path else k
            if k in props:
                validate(props[k], v[k], sub, root, errs)
            elif addl is False:
                errs.append("%s: Additional property %s is not allowed" % (where, k))
            elif isinstance(addl, dict):
                validate(addl, v[k], sub, root, errs)
    return errs


# ---------------------------------------------------------------- the chart

def _chart_obj(meta):
    names = {"apiVersion": "APIVersion", "name": "Name", "version": "Version",
             "appVersion": "AppVersion", "description": "Description", "type": "Type",
             "kubeVersion": "KubeVersion", "home": "Home", "icon": "Icon",
             "keywords": "Keywords", "sources": "Sources", "maintainers": "Maintainers",
             "annotations": "Annotations", "deprecated": "Deprecated"}
    kw = {}
    for k, v in meta.items():
        if k not in names:
            raise yamlsub.YAMLError("Chart.yaml: unknown field %r" % k)
        kw[names[k]] = v
    for k in names.values():
        kw.setdefault(k, None)
    return Obj(**kw)


def split_docs(text):
    """Helm's SplitManifests: documents between `---` lines, blank ones dropped."""
    docs = re.split(r"(?m)^---[ \t]*(?:#.*)?$\n?", text)
    return [d for d in docs if d.strip()]


def doc_kind(doc):
    m = re.search(r"(?m)^kind:\s*(\S+)", doc)
    return m.group(1) if m else ""


def render_chart(chart_dir, value_files=(), release="agentscaler", namespace="default",
                 api_versions=(), include_crds=False):
    """Returns {"manifests": [(source, doc)], "notes": str, "values": dict}.
    Raises ValuesError (schema / fail / required) or TemplateError / YAMLError."""
    with open(os.path.join(chart_dir, "Chart.yaml"), encoding="utf-8") as f:
        meta = yamlsub.load(f.read(), "Chart.yaml")
    chart = _chart_obj(meta)
    cname = meta["name"]
    defaults = load_values_file(os.path.join(chart_dir, "values.yaml"))
    values = defaults
    for vf in value_files:
        values = coalesce(values, load_values_file(vf))
    sp = os.path.join(chart_dir, "values.schema.json")
    if os.path.exists(sp):
        with open(sp, encoding="utf-8") as f:
            schema = json.load(f)
        errs = validate(schema, values)
        if errs:
            raise ValuesError("values don't meet the specifications of the schema(s) in the "
                              "following chart(s):\n%s:\n%s"
                              % (cname, "\n".join("- " + e for e in errs)))
    tdir = os.path.join(chart_dir, "templates")
    eng = gotemplate.Engine()
    files = []
    for root, _dirs, names in os.walk(tdir):
        for n in sorted(names):
            rel = os.path.relpath(os.path.join(root, n), chart_dir)
            tname = cname + "/" + rel.replace(os.sep, "/")
            with open(os.path.join(root, n), encoding="utf-8") as f:
                eng.add(tname, f.read())
            files.append((tname, n))
    files.sort()
    caps = Obj(APIVersions=APIVersions(list(DEFAULT_API_VERSIONS) + list(api_versions)),
               KubeVersion=Obj(Version="v1.32.0", Major="1", Minor="32",
                               GitVersion="v1.32.0"))
    rel = Obj(Name=release, Namespace=namespace, Service="Helm", IsInstall=True,
              IsUpgrade=False, Revision=1)
    manifests, notes = [], ""
    for tname, base in files:
        data = {"Values": values, "Release": rel, "Chart": chart, "Capabilities": caps,
                "Template": Obj(Name=tname, BasePath=cname + "/templates"), "Files": None}
        if base.startswith("_"):
            continue
        try:
            out = eng.render(tname, data).replace("<no value>", "")
        except gotemplate.FailError as e:
            raise ValuesError("execution error at (%s): %s" % (tname, e)) from None
        if base == "NOTES.txt":
            notes = out
            continue
        if not (base.endswith(".yaml") or base.endswith(".yml")):
            continue
        for d in split_docs(out):
            manifests.append((tname, d.strip("\n") + "\n"))
    order = {k: i for i, k in enumerate(INSTALL_ORDER)}
    manifests = sorted(manifests, key=lambda m: order.get(doc_kind(m[1]), len(order)))
    if include_crds:
        cdir = os.path.join(chart_dir, "crds")
        crds = []
        if os.path.isdir(cdir):
            for n in sorted(os.listdir(cdir)):
                if n.endswith((".yaml", ".yml", ".json")):
                    with open(os.path.join(cdir, n), encoding="utf-8") as f:
                        for d in split_docs(f.read()):
                            crds.append((cname + "/crds/" + n, d.strip("\n") + "\n"))
        manifests = crds + manifests
    return {"manifests": manifests, "notes": notes, "values": values}


def format_manifests(manifests):
    return "".join("---\n# Source: %s\n%s" % (src, doc) for src, doc in manifests)


def main(argv=None):
    p = argparse.ArgumentParser(prog="chart-render", description=__doc__.split("\n")[0])
    p.add_argument("chart")
    p.add_argument("-f", "--values", action="append", default=[])
    p.add_argument("--name", default="agentscaler", help="release name")
    p.add_argument("--namespace", "-n", default="default")
    p.add_argument("--api-versions", action="append", default=[])
    p.add_argument("--include-crds", action="store_true")
    p.add_argument("--notes", action="store_true", help="print NOTES.txt after the manifests")
    p.add_argument("--values-only", action="store_true",
                   help="print the merged, validated values as JSON")
    a = p.parse_args(argv)
    try:
        r = render_chart(a.chart, a.values, a.name, a.namespace, a.api_versions,
                         a.include_crds)
    except ValuesError as e:
        print("Error: %s" % e, file=sys.stderr)
        return 1
    except (gotemplate.TemplateError, yamlsub.YAMLError, ValueError, OSError) as e:
        print("Error: %s" % e, file=sys.stderr)
        return 2
    if a.values_only:
        print(json.dumps(r["values"], indent=2, sort_keys=True))
        return 0
    sys.stdout.write(format_manifests(r["manifests"]))
    if a.notes:
        sys.stdout.write("\nNOTES:\n" + r["notes"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
