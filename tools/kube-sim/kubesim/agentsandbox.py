"""agent-sandbox v1beta1 CRDs and simulated controllers (pool, claim, sandbox)."""

OBJ = {"type": "object"}
PRESERVE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
STR = {"type": "string"}
META = {"type": "object", "properties": {
    "labels": {"type": "object", "additionalProperties": STR},
    "annotations": {"type": "object", "additionalProperties": STR}}}
POD_TEMPLATE = {"type": "object", "required": ["spec"], "properties": {
    "metadata": META, "spec": PRESERVE}}
VCT = {"type": "array", "x-kubernetes-list-type": "atomic", "items": {
    "type": "object", "required": ["spec"], "properties": {
        "metadata": {"type": "object", "properties": {
            "name": STR, "labels": META["properties"]["labels"],
            "annotations": META["properties"]["annotations"]}},
        "spec": PRESERVE}}}
CONDITIONS = {"type": "array", "items": {"type": "object", "required": [
    "lastTransitionTime", "message", "reason", "status", "type"], "properties": {
    "lastTransitionTime": {"type": "string", "format": "date-time"},
    "message": {"type": "string", "maxLength": 32768},
    "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
    "reason": {"type": "string", "maxLength": 1024},
    "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
    "type": {"type": "string", "maxLength": 316}}},
    "x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map"}


def _root(spec, status=None, required_spec=True):
    props = {"apiVersion": STR, "kind": STR, "metadata": OBJ, "spec": spec}
    if status is not None:
        props["status"] = status
    s = {"type": "object", "properties": props}
    if required_spec:
        s["required"] = ["spec"]
    return s


SANDBOX_SPEC = {"type": "object", "required": ["podTemplate"], "properties": {
    "podTemplate": POD_TEMPLATE, "volumeClaimTemplates": VCT,
    "service": {"type": "boolean"},
    "shutdownTime": {"type": "string", "format": "date-time"},
    "shutdownPolicy": {"type": "string", "enum": ["Delete", "Retain"], "default": "Retain"},
    "operatingMode": {"type": "string", "enum": ["Running", "Suspended"],
                      "default": "Running"}}}
SANDBOX_STATUS = {"type": "object", "properties": {
    "conditions": CONDITIONS, "podIPs": {"type": "array", "items": STR},
    "nodeName": STR, "selector": STR, "service": STR, "serviceFQDN": STR}}
TEMPLATE_SPEC = {"type": "object", "required": ["podTemplate"], "properties": {
    "podTemplate": POD_TEMPLATE, "volumeClaimTemplates": VCT,
    "service": {"type": "boolean"},
    "networkPolicy": {"type": "object", "properties": {
        "ingress": {"type": "array", "items": PRESERVE},
        "egress": {"type": "array", "items": PRESERVE}}},
    "networkPolicyManagement": {"type": "string", "enum": ["Managed", "Unmanaged"],
                                "default": "Managed"},
    "envVarsInjectionPolicy": {"type": "string", "enum": ["Allowed", "Overrides",
                                                          "Disallowed"],
                               "default": "Disallowed"},
    "volumeClaimTemplatesPolicy": {"type": "string", "enum": ["Disallowed", "Allowed",
                                                              "Overrides"],
                                   "default": "Disallowed"}}}
CLAIM_SPEC = {"type": "object", "required": ["warmPoolRef"], "properties": {
    "warmPoolRef": {"type": "object", "required": ["name"], "properties": {"name": STR}},
    "lifecycle": {"type": "object", "properties": {
        "shutdownTime": {"type": "string", "format": "date-time"},
        "ttlSecondsAfterFinished": {"type": "integer", "format": "int32", "minimum": 0},
        "shutdownPolicy": {"type": "string", "enum": ["Delete", "DeleteForeground", "Retain"],
                           "default": "Retain"}}},
    "additionalPodMetadata": META,
    "env": {"type": "array", "x-kubernetes-list-type": "atomic", "items": {
        "type": "object", "required": ["name"], "properties": {
            "name": STR, "value": STR, "containerName": STR}}},
    "volumeClaimTemplates": VCT}}
CLAIM_STATUS = {"type": "object", "properties": {
    "conditions": CONDITIONS,
    "sandbox": {"type": "object", "properties": {
        "name": STR, "podIPs": {"type": "array", "items": STR}}}}}
POOL_SPEC = {"type": "object", "required": ["sandboxTemplateRef"], "properties": {
    "replicas": {"type": "integer", "format": "int32", "minimum": 0, "default": 1},
    "sandboxTemplateRef": {"type": "object", "required": ["name"],
                           "properties": {"name": STR}},
    "updateStrategy": {"type": "object", "properties": {
        "type": {"type": "string", "enum": ["Recreate", "OnReplenish"],
                 "default": "OnReplenish"}}}}}
POOL_STATUS = {"type": "object", "properties": {
    "replicas": {"type": "integer", "format": "int32"},
    "readyReplicas": {"type": "integer", "format": "int32"},
    "selector": STR,
    "observedGeneration": {"type": "integer", "format": "int64"},
    "conditions": CONDITIONS}}

READY_COLS = [
    {"name": "Ready", "type": "string",
     "jsonPath": ".status.conditions[?(@.type=='Ready')].status"},
    {"name": "Reason", "type": "string",
     "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}]
AGE_COL = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _crd(group, kind, plural, short, schema, subresources, columns):
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": plural + "." + group,
                         "annotations": {"controller-gen.kubebuilder.io/version": "v0.18.0"}},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "listKind": kind + "List", "plural": plural,
                               "singular": kind.lower(), "shortNames": short},
                     "versions": [{"name": "v1beta1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema},
                                   "subresources": subresources,
                                   "additionalPrinterColumns": columns}]}}


def crds():
    ext = "extensions.agents.x-k8s.io"
    return [
        _crd("agents.x-k8s.io", "Sandbox", "sandboxes", ["sandbox"],
             _root(SANDBOX_SPEC, SANDBOX_STATUS), {"status": {}}, READY_COLS + [AGE_COL]),
        _crd(ext, "SandboxTemplate", "sandboxtemplates", ["sandboxtemplate"],
             _root(TEMPLATE_SPEC), {}, [AGE_COL]),
        _crd(ext, "SandboxClaim", "sandboxclaims", ["sandboxclaim"],
             _root(CLAIM_SPEC, CLAIM_STATUS), {"status": {}},
             [READY_COLS[0], {"name": "Sandbox", "type": "string",
                              "jsonPath": ".status.sandbox.name"}, READY_COLS[1], AGE_COL]),
        _crd(ext, "SandboxWarmPool", "sandboxwarmpools", ["swp"],
             _root(POOL_SPEC, POOL_STATUS),
             {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                      "statusReplicasPath": ".status.replicas",
                                      "labelSelectorPath": ".status.selector"}},
             [{"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
              {"name": "Desired", "type": "integer", "jsonPath": ".spec.replicas"},
              AGE_COL]),
    ]


def install_crds(api):
    rt = api.rt("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    for c in crds():
        api.create(rt, None, c, {})


from .agentsandbox_ctrl import SandboxControllers  # noqa: E402,F401

__all__ = ["crds", "install_crds", "SandboxControllers"]
