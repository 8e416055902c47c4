"""Resource types served by kube-sim (built-in and CRD-defined)."""

import copy
import re

from .util import invalid

COLLECTION_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch",
                    "update", "watch"]
SUB_VERBS = ["get", "patch", "update"]


class RType:
    def __init__(self, group, version, plural, kind, namespaced=True, singular=None,
                 short=None, categories=None, status=False, scale=None, builtin=True,
                 generation=False, create_on_update=False, crd=None, schema=None,
                 printer=None, extra_fields=None, verbs=None, storage=True,
                 storage_key=None):
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
        self.singular = singular or kind.lower()
        self.short = short or []
        self.categories = categories or []
        self.status = status
        self.scale = scale  # dict specReplicasPath/statusReplicasPath/labelSelectorPath
        self.builtin = builtin
        self.generation = generation
        self.create_on_update = create_on_update
        self.crd = crd  # CRD name when defined by a CRD
        self.schema = schema
        self.printer = printer or []
        self.extra_fields = extra_fields or []
        self.verbs = verbs or COLLECTION_VERBS
        self.storage = storage
        self.storage_key = storage_key

    @property
    def gv(self):
        return self.group + "/" + self.version if self.group else self.version

    @property
    def key(self):
        """Storage key: objects are shared by every version of a group/resource."""
        return self.storage_key or (self.group, self.plural)

    @property
    def qualified(self):
        return self.plural + "." + self.group if self.group else self.plural

    @property
    def list_kind(self):
        return self.kind + "List"

    def field_selectors(self):
        return ["metadata.name", "metadata.namespace"] + self.extra_fields

    def discovery(self):
        out = [{"name": self.plural, "singularName": self.singular,
                "namespaced": self.namespaced, "kind": self.kind, "verbs": self.verbs}]
        if self.short:
            out[0]["shortNames"] = self.short
        if self.categories:
            out[0]["categories"] = self.categories
        if self.status:
            out.append({"name": self.plural + "/status", "singularName": "",
                        "namespaced": self.namespaced, "kind": self.kind,
                        "verbs": SUB_VERBS})
        if self.scale:
            out.append({"name": self.plural + "/scale", "singularName": "",
                        "namespaced": self.namespaced, "group": "autoscaling",
                        "version": "v1", "kind": "Scale", "verbs": SUB_VERBS})
        return out


EVENT_FIELDS = ["involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                "involvedObject.uid", "involvedObject.apiVersion",
                "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                "reportingComponent", "source", "type"]
NEW_EVENT_FIELDS = ["regarding.kind", "regarding.namespace", "regarding.name",
                    "regarding.uid", "regarding.apiVersion", "regarding.resourceVersion",
                    "regarding.fieldPath", "reason", "reportingController", "type"]


def builtin_types():
    return [
        RType("", "v1", "namespaces", "Namespace", namespaced=False, short=["ns"],
              status=True, verbs=["create", "delete", "get", "list", "patch", "update",
                                  "watch"], extra_fields=["status.phase"]),
        RType("", "v1", "configmaps", "ConfigMap", short=["cm"]),
        RType("", "v1", "secrets", "Secret", extra_fields=["type"]),
        RType("", "v1", "events", "Event", short=["ev"], create_on_update=True,
              extra_fields=EVENT_FIELDS),
        RType("", "v1", "resourcequotas", "ResourceQuota", short=["quota"], status=True),
        RType("apps", "v1", "deployments", "Deployment", short=["deploy"], status=True,
              categories=["all"], generation=True,
              scale={"specReplicasPath": ".spec.replicas",
                     "statusReplicasPath": ".status.replicas"}),
        RType("apps", "v1", "statefulsets", "StatefulSet", short=["sts"], status=True,
              categories=["all"], generation=True,
              scale={"specReplicasPath": ".spec.replicas",
                     "statusReplicasPath": ".status.replicas"}),
        RType("", "v1", "serviceaccounts", "ServiceAccount", short=["sa"]),
        RType("", "v1", "services", "Service", short=["svc"], status=True,
              categories=["all"], verbs=["create", "delete", "get", "list", "patch",
                                         "update", "watch"]),
        RType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=["pdb"],
              status=True, generation=True),
        RType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy",
              short=["netpol"], generation=True),
        RType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
              namespaced=False),
        RType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole",
              namespaced=False),
        RType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        RType("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        RType("coordination.k8s.io", "v1", "leases", "Lease"),
        # Served (stored, listed, watched) so that agentscaler's ownership
        # check (scheduler/owners.c) can be tested; no controller acts on it.
        RType("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
              short=["hpa"], status=True, categories=["all"]),
        RType("events.k8s.io", "v1", "events", "Event", short=["ev"],
              create_on_update=True, extra_fields=NEW_EVENT_FIELDS, storage=False,
              storage_key=("", "events")),
        RType("apiextensions.k8s.io", "v1", "customresourcedefinitions",
              "CustomResourceDefinition", namespaced=False, short=["crd", "crds"],
              categories=["api-extensions"], status=True, generation=True),
    ]


# ---------------------------------------------------------------- built-in defaults

def _default_pod_template(tpl):
    spec = tpl.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        img = c.get("image") or ""
        tag_latest = (":" not in img.rsplit("/", 1)[-1]) or img.endswith(":latest")
        c.setdefault("imagePullPolicy", "Always" if tag_latest and "@" not in img
                     else "IfNotPresent")
        for p in c.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
    tpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)


_ALLOC = {"ip": 10, "node_port": 30000}
_ALLOC_LOCK = __import__("threading").Lock()


def _alloc(what):
    """A fake ClusterIP (10.96.x.y) or NodePort (30000-32767), never reused."""
    with _ALLOC_LOCK:
        n = _ALLOC[what]
        _ALLOC[what] += 1
    if what == "ip":
        return "10.96.%d.%d" % (n // 250, n % 250 + 1)
    return 30000 + (n - 30000) % 2768


def _default_service(obj):
    spec = obj.setdefault("spec", {})
    typ = spec.setdefault("type", "ClusterIP")
    obj.setdefault("status", {}).setdefault("loadBalancer", {})
    if typ == "ExternalName":
        return
    spec.setdefault("sessionAffinity", "None")
    if not spec.get("clusterIP"):
        spec["clusterIP"] = _alloc("ip")
    if spec["clusterIP"] != "None":
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if typ in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        if not isinstance(p, dict):
            continue
        p.setdefault("protocol", "TCP")
        if "port" in p:
            p.setdefault("targetPort", p["port"])
        if typ in ("NodePort", "LoadBalancer") and not p.get("nodePort"):
            p["nodePort"] = _alloc("node_port")


def default_builtin(rt, obj):
    spec = obj.get("spec")
    if rt.kind == "Deployment" and rt.group == "apps":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        st = spec.setdefault("strategy", {})
        st.setdefault("type", "RollingUpdate")
        if st["type"] == "RollingUpdate":
            ru = st.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        if isinstance(spec.get("template"), dict):
            _default_pod_template(spec["template"])
    elif rt.kind == "StatefulSet":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if us.get("type") == "RollingUpdate":
            us.setdefault("rollingUpdate", {"partition": 0})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("persistentVolumeClaimRetentionPolicy",
                        {"whenDeleted": "Retain", "whenScaled": "Retain"})
        if isinstance(spec.get("template"), dict):
            _default_pod_template(spec["template"])
    elif rt.kind == "Secret":
        obj.setdefault("type", "Opaque")
    elif rt.kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = \
            obj["metadata"]["name"]
    elif rt.kind == "Event" and rt.group == "":
        obj.setdefault("reportingComponent", "")
        obj.setdefault("reportingInstance", "")
    elif rt.kind == "Service":
        _default_service(obj)
    del spec


def validate_builtin(rt, obj):
    name = obj["metadata"].get("name") or ""
    errs = []
    if rt.kind in ("Deployment", "StatefulSet"):
        spec = obj.get("spec") or {}
        sel = spec.get("selector")
        r = spec.get("replicas")
        if not isinstance(r, int) or isinstance(r, bool):
            errs.append(("spec.replicas", "FieldValueInvalid",
                         "Invalid value: %s: must be an integer" % r))
        elif r < 0:
            errs.append(("spec.replicas", "FieldValueInvalid",
                         "Invalid value: %d: must be greater than or equal to 0" % r))
        if not isinstance(sel, dict) or not (sel.get("matchLabels") or
                                             sel.get("matchExpressions")):
            errs.append(("spec.selector", "FieldValueRequired", "Required value"))
        tpl = spec.get("template") or {}
        labels = (tpl.get("metadata") or {}).get("labels") or {}
        if isinstance(sel, dict) and sel.get("matchLabels"):
            ml = sel["matchLabels"]
            if any(labels.get(k) != v for k, v in ml.items()):
                errs.append(("spec.template.metadata.labels", "FieldValueInvalid",
                             "Invalid value: map[string]string{%s}: `selector` does not "
                             "match template `labels`" % ", ".join(
                                 '"%s":"%s"' % (k, labels[k]) for k in sorted(labels))))
        conts = (tpl.get("spec") or {}).get("containers")
        if not conts:
            errs.append(("spec.template.spec.containers", "FieldValueRequired",
                         "Required value"))
        else:
            for i, c in enumerate(conts):
                if not isinstance(c, dict) or not c.get("name"):
                    errs.append(("spec.template.spec.containers[%d].name" % i,
                                 "FieldValueRequired", "Required value"))
                if not isinstance(c, dict) or not c.get("image"):
                    errs.append(("spec.template.spec.containers[%d].image" % i,
                                 "FieldValueRequired", "Required value"))
    elif rt.kind == "Lease":
        spec = obj.get("spec") or {}
        lds = spec.get("leaseDurationSeconds")
        if lds is not None and (not isinstance(lds, int) or lds <= 0):
            errs.append(("spec.leaseDurationSeconds", "FieldValueInvalid",
                         "Invalid value: %s: must be greater than 0" % lds))
    elif rt.kind == "Service":
        errs += _validate_service(obj.get("spec") or {})
    elif rt.group == "rbac.authorization.k8s.io" and rt.kind in ("Role", "ClusterRole"):
        for i, r in enumerate(obj.get("rules") or []):
            errs += _validate_policy_rule(r if isinstance(r, dict) else {},
                                          rt.kind == "Role", "rules[%d]" % i)
    elif rt.group == "rbac.authorization.k8s.io":
        errs += _validate_binding(obj, rt.kind == "RoleBinding")
    elif rt.kind == "PodDisruptionBudget":
        errs += _validate_pdb(obj.get("spec") or {})
    elif rt.kind == "ConfigMap":
        for k in list((obj.get("data") or {}).keys()):
            if k in (obj.get("binaryData") or {}):
                errs.append(("data[%s]" % k, "FieldValueDuplicate",
                             'Duplicate value: "%s"' % k))
    if errs:
        raise invalid(rt.kind, rt.group, name, errs)


def validate_builtin_update(rt, cur, new):
    """Update-only rules (immutable fields), checked before defaulting: a
    Service keeps its allocated clusterIP and node ports when the update
    leaves them out, and refuses to change them; a binding's roleRef never
    changes."""
    name = cur["metadata"].get("name") or ""
    errs = []
    if rt.kind == "Service":
        cs, ns = cur.get("spec") or {}, new.setdefault("spec", {})
        if not ns.get("clusterIP") and cs.get("clusterIP"):
            ns["clusterIP"] = cs["clusterIP"]
            if cs.get("clusterIPs") and not ns.get("clusterIPs"):
                ns["clusterIPs"] = list(cs["clusterIPs"])
        elif cs.get("clusterIP") and ns.get("clusterIP") != cs.get("clusterIP") and \
                ns.get("type") != "ExternalName":
            errs.append(("spec.clusterIPs[0]", "FieldValueInvalid",
                         'Invalid value: []string{"%s"}: may not change once set'
                         % ns.get("clusterIP")))
        old_np = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                  for p in cs.get("ports") or [] if isinstance(p, dict)}
        for p in ns.get("ports") or []:
            if isinstance(p, dict) and not p.get("nodePort"):
                np = old_np.get((p.get("port"), p.get("protocol", "TCP")))
                if np and ns.get("type", "ClusterIP") in ("NodePort", "LoadBalancer"):
                    p["nodePort"] = np
    elif rt.group == "rbac.authorization.k8s.io" and rt.kind.endswith("Binding"):
        if (new.get("roleRef") or {}) != (cur.get("roleRef") or {}):
            rr = new.get("roleRef") or {}
            errs.append(("roleRef", "FieldValueInvalid",
                         "Invalid value: rbac.RoleRef{APIGroup:\"%s\", Kind:\"%s\", "
                         "Name:\"%s\"}: cannot change roleRef"
                         % (rr.get("apiGroup", ""), rr.get("kind", ""), rr.get("name", ""))))
    if errs:
        raise invalid(rt.kind, rt.group, name, errs)


_IANA_SVC = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")


def _validate_service(spec):
    """pkg/apis/core/validation ValidateService, the part a chart can get
    wrong: type, ports (required, range, names, protocol, targetPort)."""
    errs = []
    typ = spec.get("type", "ClusterIP")
    types = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
    if typ not in types:
        errs.append(("spec.type", "FieldValueNotSupported",
                     'Unsupported value: "%s": supported values: %s'
                     % (typ, ", ".join('"%s"' % t for t in types))))
        return errs
    ports = spec.get("ports") or []
    if not ports and typ != "ExternalName" and spec.get("clusterIP") != "None":
        errs.append(("spec.ports", "FieldValueRequired", "Required value"))
    names = set()
    for i, p in enumerate(ports):
        f = "spec.ports[%d]" % i
        if not isinstance(p, dict):
            errs.append((f, "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        nm = p.get("name")
        if len(ports) > 1 and not nm:
            errs.append((f + ".name", "FieldValueRequired", "Required value"))
        elif nm:
            if nm in names:
                errs.append((f + ".name", "FieldValueDuplicate", 'Duplicate value: "%s"' % nm))
            names.add(nm)
        port = p.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            errs.append((f + ".port", "FieldValueInvalid",
                         "Invalid value: %s: must be between 1 and 65535, inclusive" % port))
        proto = p.get("protocol", "TCP")
        if proto not in ("SCTP", "TCP", "UDP"):
            errs.append((f + ".protocol", "FieldValueNotSupported",
                         'Unsupported value: "%s": supported values: "SCTP", "TCP", "UDP"'
                         % proto))
        tp = p.get("targetPort")
        if isinstance(tp, str) and not _IANA_SVC.match(tp):
            errs.append((f + ".targetPort", "FieldValueInvalid",
                         'Invalid value: "%s": must contain only alpha-numeric characters '
                         '(a-z, 0-9), and hyphens (-), at most 15 characters' % tp))
        elif isinstance(tp, int) and not isinstance(tp, bool) and not 1 <= tp <= 65535:
            errs.append((f + ".targetPort", "FieldValueInvalid",
                         "Invalid value: %d: must be between 1 and 65535, inclusive" % tp))
        np = p.get("nodePort")
        if np and typ not in ("NodePort", "LoadBalancer"):
            errs.append((f + ".nodePort", "FieldValueForbidden",
                         "Forbidden: may not be used when `type` is '%s'" % typ))
    return errs


def _validate_policy_rule(r, namespaced, f):
    """pkg/apis/rbac/validation ValidatePolicyRule."""
    errs = []
    if not r.get("verbs"):
        errs.append((f + ".verbs", "FieldValueRequired",
                     "Required value: verbs must contain at least one value"))
    if r.get("nonResourceURLs"):
        if namespaced:
            errs.append((f + ".nonResourceURLs", "FieldValueInvalid",
                         "Invalid value: %s: namespaced rules cannot apply to non-resource URLs"
                         % _go_list(r["nonResourceURLs"])))
        if r.get("apiGroups") or r.get("resources") or r.get("resourceNames"):
            errs.append((f + ".nonResourceURLs", "FieldValueInvalid",
                         "Invalid value: %s: rules cannot apply to both regular resources "
                         "and non-resource URLs" % _go_list(r["nonResourceURLs"])))
        return errs
    if not r.get("apiGroups"):
        errs.append((f + ".apiGroups", "FieldValueRequired",
                     "Required value: resource rules must supply at least one api group"))
    if not r.get("resources"):
        errs.append((f + ".resources", "FieldValueRequired",
                     "Required value: resource rules must supply at least one resource"))
    return errs


def _go_list(v):
    return "[]string{%s}" % ", ".join('"%s"' % x for x in v)


def _validate_binding(obj, namespaced):
    """pkg/apis/rbac/validation ValidateRoleBinding / ValidateClusterRoleBinding."""
    errs = []
    rr = obj.get("roleRef") or {}
    grp = "rbac.authorization.k8s.io"
    if rr.get("apiGroup") != grp:
        errs.append(("roleRef.apiGroup", "FieldValueNotSupported",
                     'Unsupported value: "%s": supported values: "%s"'
                     % (rr.get("apiGroup", ""), grp)))
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if rr.get("kind") not in kinds:
        errs.append(("roleRef.kind", "FieldValueNotSupported",
                     'Unsupported value: "%s": supported values: %s'
                     % (rr.get("kind", ""), ", ".join('"%s"' % k for k in kinds))))
    if not rr.get("name"):
        errs.append(("roleRef.name", "FieldValueRequired", "Required value"))
    for i, sub in enumerate(obj.get("subjects") or []):
        f = "subjects[%d]" % i
        sub = sub if isinstance(sub, dict) else {}
        if not sub.get("name"):
            errs.append((f + ".name", "FieldValueRequired", "Required value"))
        k = sub.get("kind")
        if k == "ServiceAccount":
            if sub.get("apiGroup"):
                errs.append((f + ".apiGroup", "FieldValueNotSupported",
                             'Unsupported value: "%s": supported values: ""'
                             % sub["apiGroup"]))
            if not namespaced and not sub.get("namespace"):
                errs.append((f + ".namespace", "FieldValueRequired", "Required value"))
        elif k in ("User", "Group"):
            if sub.get("apiGroup") != grp:
                errs.append((f + ".apiGroup", "FieldValueNotSupported",
                             'Unsupported value: "%s": supported values: "%s"'
                             % (sub.get("apiGroup", ""), grp)))
        else:
            errs.append((f + ".kind", "FieldValueNotSupported",
                         'Unsupported value: "%s": supported values: "ServiceAccount", '
                         '"User", "Group"' % (k or "")))
    return errs


_PERCENT = re.compile(r"^[0-9]+%$")


def _validate_pdb(spec):
    """pkg/apis/policy/validation ValidatePodDisruptionBudgetSpec."""
    errs = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        errs.append(("spec", "FieldValueInvalid",
                     "Invalid value: policy.PodDisruptionBudgetSpec{...}: minAvailable and "
                     "maxUnavailable cannot be both set"))
    for k in ("minAvailable", "maxUnavailable"):
        v = spec.get(k)
        if v is None:
            continue
        f = "spec." + k
        if isinstance(v, bool):
            errs.append((f, "FieldValueInvalid", "Invalid value: must be an int or a string"))
        elif isinstance(v, int):
            if v < 0:
                errs.append((f, "FieldValueInvalid",
                             "Invalid value: %d: must be greater than or equal to 0" % v))
        elif isinstance(v, str):
            if not _PERCENT.match(v):
                errs.append((f, "FieldValueInvalid",
                             "Invalid value: \"%s\": a valid percent string must be a numeric "
                             "string followed by an ending '%%' (e.g. '1%%',  or '93%%', regex "
                             "used for validation is '[0-9]+%%')" % v))
            elif int(v[:-1]) > 100:
                errs.append((f, "FieldValueInvalid",
                             'Invalid value: "%s": must not be greater than 100%%' % v))
        else:
            errs.append((f, "FieldValueInvalid", "Invalid value: must be an int or a string"))
    pol = spec.get("unhealthyPodEvictionPolicy")
    if pol is not None and pol not in ("AlwaysAllow", "IfHealthyBudget"):
        errs.append(("spec.unhealthyPodEvictionPolicy", "FieldValueNotSupported",
                     'Unsupported value: "%s": supported values: "AlwaysAllow", '
                     '"IfHealthyBudget"' % pol))
    return errs


# ---------------------------------------------------------------- CRD schemas

def _type_ok(t, v):
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "boolean":
        return isinstance(v, bool)
    return True


def _go_type(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _fmt_val(v):
    if isinstance(v, str):
        return '"%s"' % v
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (dict, list)):
        return '"%s"' % _go_type(v)
    return str(v)


class _Node:
    """A schema node with its keywords looked up once (apply_schema visits the same
    nodes for every object of a kind)."""

    __slots__ = ("schema", "typ", "props", "addl", "preserve", "required", "minp",
                 "items", "maxi", "enum", "mn", "mx", "ml", "minl", "pat", "datetime",
                 "defaults", "plain", "ios", "anyof")

    def __init__(self, schema):
        g = schema.get
        self.schema = schema  # keeps id(schema) from being reused while cached
        t = g("type")
        self.ios = bool(g("x-kubernetes-int-or-string"))
        self.typ = None if self.ios else t
        self.anyof = g("anyOf")
        self.minl = g("minLength")
        self.props = g("properties")
        addl = g("additionalProperties")
        self.addl = addl
        self.preserve = g("x-kubernetes-preserve-unknown-fields")
        self.required = g("required") or ()
        self.minp = g("minProperties")
        self.items = g("items")
        self.maxi = g("maxItems")
        self.enum = g("enum")
        self.mn = g("minimum")
        self.mx = g("maximum")
        self.ml = g("maxLength")
        # go-openapi matches a pattern with Go's regexp MatchString: unanchored
        pat = g("pattern")
        self.pat = (pat, re.compile(pat)) if pat is not None else None
        self.datetime = g("format") == "date-time"
        self.defaults = [(k, ps["default"]) for k, ps in (self.props or {}).items()
                         if isinstance(ps, dict) and "default" in ps]
        # a string with no constraint: nothing to do once the type matches
        self.plain = (t == "string" and self.enum is None and self.ml is None and
                      self.minl is None and self.pat is None and not self.datetime)


_NODES = {}


def _node(schema):
    n = _NODES.get(id(schema))
    if n is None or n.schema is not schema:
        n = _NODES[id(schema)] = _Node(schema)
    return n


# Schema errors after which kube-apiserver does not run a CRD's CEL rules
# (apiextensions-apiserver pkg/registry/customresource/strategy.go,
# hasBlockingErr): a wrong type, a required field missing, an enum value
# not supported, too long, too many.
_CEL_BLOCKING = {"FieldValueTypeInvalid", "FieldValueRequired", "FieldValueNotSupported",
                 "FieldValueTooLong", "TooLong", "FieldValueTooMany", "TooMany"}
_HAS_CEL = {}


def _has_cel(schema):
    if isinstance(schema, dict):
        return "x-kubernetes-validations" in schema or any(
            _has_cel(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_cel(v) for v in schema)
    return False


def cel_not_checked(schema, errs):
    """kube-sim evaluates no CEL (x-kubernetes-validations); but where the
    real server would have skipped the rules for a blocking schema error it
    says so with one more cause, and so does this."""
    key = id(schema)
    if key not in _HAS_CEL or _HAS_CEL[key][0] is not schema:
        _HAS_CEL[key] = (schema, _has_cel(schema))
    if _HAS_CEL[key][1] and any(t in _CEL_BLOCKING for _f, t, _m in errs):
        errs.append(("<nil>", "FieldValueInvalid", "Invalid value: null: some validation "
                     "rules were not checked because the object was invalid; correct the "
                     "existing errors to complete validation"))


def apply_schema(schema, val, path, errs, top=False):
    """Default, prune and validate val in place against a structural schema.
    Returns the (possibly replaced) value."""
    if not isinstance(schema, dict):
        return val
    if val is None:
        return val
    n = _node(schema)
    if n.plain and val.__class__ is str:
        return val
    t = n.typ
    if t and not _type_ok(t, val):
        # the apiserver (go-openapi) shows the value's type, not the value
        gt = _go_type(val)
        errs.append((path, "FieldValueTypeInvalid",
                     'Invalid value: "%s": %s in body must be of type %s: "%s"'
                     % (gt, path, t, gt)))
        return val
    if n.ios and not (val.__class__ is str or (val.__class__ is int)):
        # int-or-string: the structural type, then (as kube-apiserver words it)
        # the anyOf the schema spells it with
        gt = _go_type(val)
        errs.append((path, "FieldValueTypeInvalid",
                     'Invalid value: "%s": %s in body must be of type integer,string: "%s"'
                     % (gt, path, gt)))
        if n.anyof:
            errs.append(("<nil>", "FieldValueInvalid",
                         'Invalid value: "": "%s" must validate at least one schema (anyOf)'
                         % path))
            errs.append((path, "FieldValueTypeInvalid",
                         'Invalid value: "%s": %s in body must be of type integer: "%s"'
                         % (gt, path, gt)))
            if gt == "number":
                errs.append(("<nil>", "FieldValueInvalid",
                             'Invalid value: "": Checked value must be of type integer '
                             '(default format) in %s' % path))
        return val
    if isinstance(val, dict):
        props = n.props
        addl = n.addl
        if props is not None:
            for k, d in n.defaults:
                if k not in val:
                    val[k] = copy.deepcopy(d) if isinstance(d, (dict, list)) else d
            sub_addl = isinstance(addl, dict)
            drop = not n.preserve and addl is not True
            for k in list(val):
                if k in props:
                    val[k] = apply_schema(props[k], val[k], path + "." + k if path else k,
                                          errs)
                elif top and k in ("apiVersion", "kind", "metadata"):
                    continue
                elif sub_addl:
                    val[k] = apply_schema(addl, val[k], path + "." + k if path else k,
                                          errs)
                elif drop:
                    del val[k]
        elif isinstance(addl, dict):
            for k in list(val):
                val[k] = apply_schema(addl, val[k], path + "." + k if path else k, errs)
        for req in n.required:
            if req not in val:
                errs.append(((path + "." + req) if path else req, "FieldValueRequired",
                             "Required value"))
        mp = n.minp
        if mp is not None and len(val) < mp:
            errs.append((path, "FieldValueInvalid",
                         "Invalid value: %d: %s in body should have at least %d "
                         "properties" % (len(val), path, mp)))
    elif isinstance(val, list):
        items = n.items
        if isinstance(items, dict):
            for i in range(len(val)):
                val[i] = apply_schema(items, val[i], "%s[%d]" % (path, i), errs)
        mi = n.maxi
        if mi is not None and len(val) > mi:
            errs.append((path, "TooMany", "Too many: %d: must have at most %d items"
                         % (len(val), mi)))
    else:
        enum = n.enum
        if enum is not None and val not in enum:
            errs.append((path, "FieldValueNotSupported",
                         "Unsupported value: %s: supported values: %s"
                         % (_fmt_val(val), ", ".join(_fmt_val(e) for e in enum))))
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            mn = n.mn
            if mn is not None and val < mn:
                errs.append((path, "FieldValueInvalid",
                             "Invalid value: %s: %s in body should be greater than or "
                             "equal to %s" % (val, path, mn)))
            mx = n.mx
            if mx is not None and val > mx:
                errs.append((path, "FieldValueInvalid",
                             "Invalid value: %s: %s in body should be less than or "
                             "equal to %s" % (val, path, mx)))
        if isinstance(val, str):
            ml = n.ml
            if ml is not None and len(val) > ml:
                errs.append((path, "TooLong", "Too long: may not be more than %d bytes"
                             % ml))
            minl = n.minl
            if minl is not None and len(val) < minl:
                errs.append((path, "FieldValueInvalid",
                             "Invalid value: %s: %s in body should be at least %d chars long"
                             % (_fmt_val(val), path, minl)))
            if n.pat is not None and not n.pat[1].search(val):
                errs.append((path, "FieldValueInvalid",
                             "Invalid value: %s: %s in body should match '%s'"
                             % (_fmt_val(val), path, n.pat[0])))
            if n.datetime:
                from .util import parse_ts
                if parse_ts(val) is None:
                    errs.append((path, "FieldValueInvalid",
                                 'Invalid value: "%s": %s in body must be of type '
                                 'date-time: "%s"' % (val, path, val)))
    return val


def crd_types(crd):
    """RTypes served by a CRD object (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for v in spec.get("versions") or []:
        if not v.get("served", True):
            continue
        sub = v.get("subresources") or {}
        sc = sub.get("scale")
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        out.append(RType(spec.get("group", ""), v.get("name"), names.get("plural"),
                         names.get("kind"), namespaced=spec.get("scope") != "Cluster",
                         singular=names.get("singular") or names.get("kind", "").lower(),
                         short=names.get("shortNames") or [],
                         categories=names.get("categories") or [],
                         status="status" in sub, scale=sc, builtin=False,
                         generation=True, crd=crd["metadata"]["name"], schema=schema,
                         printer=v.get("additionalPrinterColumns") or [],
                         extra_fields=[f.get("jsonPath", "").lstrip(".")
                                       for f in v.get("selectableFields") or []],
                         storage=v.get("storage", False)))
    return out


# ---------------------------------------------------------------- Event conversion
# core/v1 Event <-> events.k8s.io/v1 Event share one storage (core form).
_EV_MAP = [("involvedObject", "regarding"), ("message", "note"),
           ("reportingComponent", "reportingController"),
           ("reportingInstance", "reportingInstance"), ("source", "deprecatedSource"),
           ("firstTimestamp", "deprecatedFirstTimestamp"),
           ("lastTimestamp", "deprecatedLastTimestamp"), ("count", "deprecatedCount"),
           ("eventTime", "eventTime"), ("action", "action"), ("reason", "reason"),
           ("related", "related"), ("type", "type"), ("series", "series")]


def event_core_to_new(o):
    out = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": o["metadata"]}
    for c, n in _EV_MAP:
        if o.get(c) not in (None, "", 0, {}):
            out[n] = o[c]
    out.setdefault("eventTime", None)
    return out


def event_new_to_core(o):
    out = {"apiVersion": "v1", "kind": "Event", "metadata": o.get("metadata") or {}}
    for c, n in _EV_MAP:
        if o.get(n) is not None:
            out[c] = o[n]
    if "involvedObject" not in out:
        out["involvedObject"] = {}
    return out
