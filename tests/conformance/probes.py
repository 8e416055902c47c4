"""Probes of the Kubernetes API behaviours agentscaler relies on.

Each probe drives one backend (kube-sim or the real control plane of
tools/cluster) through the same requests and returns what it saw as a
small dict of facts: status codes, Status reasons, the fields agentscaler
reads.  test_conformance.py runs every probe on both backends and compares
the dicts key by key; a difference is a divergence of kube-sim from
Kubernetes, unless KNOWN (test_conformance.py) lists it with the reason it
cannot matter to agentscaler.

A backend has:
  api(method, path, body=None, ctype="application/json") -> (code, obj)
      as the cluster administrator; obj is the parsed JSON body (or text);
  api_as(token, method, path, body=None, ctype=...) -> (code, obj);
  namespace(prefix) -> a new namespace's name (created, empty);
  no_rights_token(ns) -> a bearer token of an identity with no rights;
  watch(path, timeout) -> iterator of decoded watch events (dicts) until
      the server ends the stream or timeout seconds pass.

Facts are about behaviour, never about values that differ between any two
servers (uids, resourceVersions, timestamps).
"""
import json
import time
import urllib.parse

MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def reason(obj):
    return obj.get("reason") if isinstance(obj, dict) else None


def status_facts(code, obj):
    """What a client reads of an error: code, reason, the Status shape."""
    f = {"code": code, "reason": reason(obj)}
    if isinstance(obj, dict) and code >= 400:
        f["kind"] = obj.get("kind")
        f["status"] = obj.get("status")
        f["status_code"] = obj.get("code")
    return f


def configmap(name, data=None):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name}, "data": data or {"a": "1"}}


def deployment(name, replicas):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"replicas": replicas,
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "agent",
                                                           "image": "agent:1"}]}}}}


def statefulset(name, replicas):
    d = deployment(name, replicas)
    d["kind"] = "StatefulSet"
    d["spec"]["serviceName"] = name
    return d


def cm_path(ns, name=""):
    return "/api/v1/namespaces/%s/configmaps%s" % (ns, "/" + name if name else "")


# ---- writes ------------------------------------------------------------

def probe_create_twice(b):
    ns = b.namespace("cf-create")
    c1, _ = b.api("POST", cm_path(ns), configmap("x"))
    c2, o2 = b.api("POST", cm_path(ns), configmap("x"))
    c3, o3 = b.api("POST", cm_path(ns), {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"generateName": "gen-"}})
    name = o3.get("metadata", {}).get("name", "") if isinstance(o3, dict) else ""
    c4, o4 = b.api("POST", cm_path("no-such-namespace-cf"), configmap("y"))
    return {"first": c1, "second": status_facts(c2, o2),
            "message": o2.get("message") if isinstance(o2, dict) else None,
            "generated": c3, "generated_prefix": name.startswith("gen-"),
            "generated_len": len(name), "missing_ns": status_facts(c4, o4)}


def probe_put_conflict(b):
    ns = b.namespace("cf-put")
    _, o = b.api("POST", cm_path(ns), configmap("x"))
    stale = dict(o)
    o["data"] = {"a": "2"}
    c1, o1 = b.api("PUT", cm_path(ns, "x"), o)
    stale["data"] = {"a": "3"}
    c2, o2 = b.api("PUT", cm_path(ns, "x"), stale)
    return {"fresh": c1, "rv_changed": o1["metadata"]["resourceVersion"] !=
            o["metadata"]["resourceVersion"],
            "stale": status_facts(c2, o2),
            "message": o2.get("message") if isinstance(o2, dict) else None}


def probe_patches(b):
    ns = b.namespace("cf-patch")
    b.api("POST", cm_path(ns), configmap("x", {"a": "1", "b": "2"}))
    c1, o1 = b.api("PATCH", cm_path(ns, "x"), {"data": {"a": None, "c": "3"}}, MERGE)
    c2, o2 = b.api("PATCH", cm_path(ns, "x"),
                   [{"op": "test", "path": "/data/b", "value": "nope"}], JSONPATCH)
    c3, o3 = b.api("PATCH", cm_path(ns, "x"),
                   [{"op": "replace", "path": "/data/b", "value": "5"}], JSONPATCH)
    c4, o4 = b.api("PATCH", cm_path(ns, "x"), {"data": {"d": "4"}},
                   "application/x-unknown")
    c5, o5 = b.api("PATCH", cm_path(ns, "missing"), {"data": {"d": "4"}}, MERGE)
    b.api("POST", "/apis/apps/v1/namespaces/%s/deployments" % ns, deployment("w", 1))
    c6, o6 = b.api("PATCH", "/apis/apps/v1/namespaces/%s/deployments/w" % ns,
                   {"spec": {"template": {"spec": {"containers": [
                       {"name": "agent", "image": "agent:2"}]}}}}, STRATEGIC)
    ctr = o6.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []) \
        if isinstance(o6, dict) else []
    return {"merge": c1, "merge_data": o1.get("data"),
            "test_failed": status_facts(c2, o2),
            "replace": c3, "replace_data": o3.get("data") if isinstance(o3, dict) else None,
            "bad_type": status_facts(c4, o4), "missing": status_facts(c5, o5),
            "strategic": c6, "strategic_images": [c.get("image") for c in ctr]}


# ---- scale and status --------------------------------------------------

def scale_facts(b, base, name):
    c1, s = b.api("GET", "%s/%s/scale" % (base, name))
    f = {"get": c1, "kind": s.get("kind"), "apiVersion": s.get("apiVersion"),
         "spec_replicas": s.get("spec", {}).get("replicas"),
         "status_has_replicas": "replicas" in s.get("status", {}),
         "selector_is_string": isinstance(s.get("status", {}).get("selector"), str)}
    for n in (3, 0):
        c, o = b.api("PATCH", "%s/%s/scale" % (base, name), {"spec": {"replicas": n}}, MERGE)
        _, parent = b.api("GET", "%s/%s" % (base, name))
        f["patch_%d" % n] = c
        f["patch_%d_scale_replicas" % n] = o.get("spec", {}).get("replicas")
        f["patch_%d_parent_replicas" % n] = parent.get("spec", {}).get("replicas")
    c, o = b.api("PATCH", "%s/missing/scale" % base, {"spec": {"replicas": 1}}, MERGE)
    f["missing"] = status_facts(c, o)
    return f


def probe_scale_deployment(b):
    ns = b.namespace("cf-scale-d")
    base = "/apis/apps/v1/namespaces/%s/deployments" % ns
    b.api("POST", base, deployment("w", 1))
    return scale_facts(b, base, "w")


def probe_scale_statefulset(b):
    ns = b.namespace("cf-scale-s")
    base = "/apis/apps/v1/namespaces/%s/statefulsets" % ns
    b.api("POST", base, statefulset("w", 1))
    return scale_facts(b, base, "w")


def probe_scale_warmpool(b):
    ns = b.namespace("cf-scale-wp")
    tpl = "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/%s/sandboxtemplates" % ns
    base = "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/%s/sandboxwarmpools" % ns
    b.api("POST", tpl, sandbox_template("t"))
    c, o = b.api("POST", base, warm_pool("wp", "t", 0))
    # The pool's controller publishes status.selector (the Scale's
    # selector) at its first reconcile: wait for it, as an HPA would.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not b.api(
            "GET", base + "/wp")[1].get("status", {}).get("selector"):
        time.sleep(0.1)
    f = {"create": c}
    f.update(scale_facts(b, base, "wp"))
    return f


def sandbox_template(name):
    return {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxTemplate",
            "metadata": {"name": name},
            "spec": {"podTemplate": {"spec": {"containers": [
                {"name": "agent", "image": "agent:1"}]}}}}


def warm_pool(name, template, replicas):
    return {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxWarmPool",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "sandboxTemplateRef": {"name": template}}}


def probe_status_subresource(b):
    """AgentPool (ours) has a status subresource: the main endpoint keeps
    status, /status keeps everything else; the generation moves with spec
    only."""
    ns = b.namespace("cf-status")
    base = "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentpools" % ns
    pool = {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentPool",
            "metadata": {"name": "p"},
            "spec": {"source": {"type": "redis-list", "address": "redis://r:6379/0",
                                "queue": "q"},
                     "target": {"kind": "Deployment", "name": "w"}},
            "status": {"desiredReplicas": 5}}
    c1, o1 = b.api("POST", base, pool)
    c2, o2 = b.api("PATCH", base + "/p/status", {"status": {"desiredReplicas": 2},
                                                 "spec": {"scaling": {"maxReplicas": 9}}},
                   MERGE)
    c3, o3 = b.api("PATCH", base + "/p", {"status": {"desiredReplicas": 7},
                                          "spec": {"scaling": {"maxReplicas": 4}}}, MERGE)
    o2s, o3s = o2.get("status", {}) if isinstance(o2, dict) else {}, \
        o3.get("status", {}) if isinstance(o3, dict) else {}
    return {"create": c1, "create_status": (o1.get("status") if isinstance(o1, dict)
                                            else None),
            "status_patch": c2, "status_after": o2s.get("desiredReplicas"),
            "spec_after_status_patch": o2.get("spec", {}).get("scaling", {}).get("maxReplicas")
            if isinstance(o2, dict) else None,
            "gen_after_status": o2.get("metadata", {}).get("generation")
            if isinstance(o2, dict) else None,
            "main_patch": c3, "status_after_main": o3s.get("desiredReplicas"),
            "spec_after_main": o3.get("spec", {}).get("scaling", {}).get("maxReplicas")
            if isinstance(o3, dict) else None,
            "gen_after_main": o3.get("metadata", {}).get("generation")
            if isinstance(o3, dict) else None}


def probe_crd_validation(b):
    """The CRD schema is enforced by the server (422 Invalid)."""
    ns = b.namespace("cf-valid")
    base = "/apis/agentscaler.io/v1alpha1/namespaces/%s/agentpools" % ns
    bad = {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentPool",
           "metadata": {"name": "p"},
           "spec": {"source": {"type": "redis-list", "address": "redis://r:6379/0",
                               "queue": "q", "authSecretRef": {"name": "Bad_Name",
                                                               "key": "k"}},
                    "target": {"kind": "Deployment", "name": "w"}}}
    c1, o1 = b.api("POST", base, bad)
    typ = json.loads(json.dumps(bad))
    typ["spec"]["source"]["authSecretRef"]["name"] = "ok"
    typ["spec"]["scaling"] = {"maxReplicas": "many"}
    c2, o2 = b.api("POST", base, typ)

    def variant(name, change):
        v = json.loads(json.dumps(bad))
        v["metadata"]["name"] = name
        v["spec"]["source"]["authSecretRef"]["name"] = "ok"
        change(v["spec"])
        c, o = b.api("POST", base, v)
        f = status_facts(c, o)
        if isinstance(o, dict) and c >= 400:
            f["message"] = o.get("message")
            f["causes"] = [[x.get("field"), x.get("reason"), x.get("message")]
                           for x in (o.get("details") or {}).get("causes") or []]
        return f

    def dres(value):
        return lambda sp: sp.setdefault("sandbox", {}).__setitem__(
            "defaultResources", {"cpu": value})
    extra = {
        "min_length": variant("ml", lambda sp: sp["source"].__setitem__("address", "")),
        "type_message": variant("tm", lambda sp: sp.__setitem__(
            "scaling", {"maxReplicas": "many"})),
        "ios_int": variant("ios-int", dres(2)),
        "ios_string": variant("ios-str", dres("500m")),
        "ios_bad_pattern": variant("ios-pat", dres("lots")),
        "ios_bool": variant("ios-bool", dres(True)),
        "ios_object": variant("ios-obj", dres({"n": 1})),
        "ios_float": variant("ios-float", dres(1.5)),
    }
    return {"extra": extra, "pattern": status_facts(c1, o1), "type": status_facts(c2, o2),
            "pattern_cause_field": [c.get("field") for c in
                                    (o1.get("details", {}) or {}).get("causes", [])]
            if isinstance(o1, dict) else None}


# ---- reads -------------------------------------------------------------

def probe_selectors(b):
    ns = b.namespace("cf-sel")
    for name, labels in (("a", {"tier": "x", "k": "1"}), ("b", {"tier": "y"}),
                         ("c", {"k": "2"})):
        cm = configmap(name)
        cm["metadata"]["labels"] = labels
        b.api("POST", cm_path(ns), cm)

    def names(q):
        c, o = b.api("GET", cm_path(ns) + "?" + q)
        if c != 200:
            return status_facts(c, o)
        return sorted(i["metadata"]["name"] for i in o.get("items", [])
                      if i["metadata"]["name"] in "abc")
    enc = urllib.parse.quote
    return {"eq": names("labelSelector=" + enc("tier=x")),
            "in": names("labelSelector=" + enc("tier in (x,y)")),
            "notin": names("labelSelector=" + enc("tier notin (x)")),
            "exists": names("labelSelector=k"),
            "not_exists": names("labelSelector=" + enc("!k")),
            "and": names("labelSelector=" + enc("k,tier=x")),
            "field_name": names("fieldSelector=" + enc("metadata.name=b")),
            "field_bad": names("fieldSelector=" + enc("spec.nope=1"))["code"]}


def probe_list_paging(b):
    ns = b.namespace("cf-page")
    for i in range(5):
        b.api("POST", cm_path(ns), configmap("p%d" % i))
    c1, o1 = b.api("GET", cm_path(ns) + "?limit=2")
    tok = o1.get("metadata", {}).get("continue")
    seen = [i["metadata"]["name"] for i in o1.get("items", [])]
    pages = 1
    while tok:
        c, o = b.api("GET", cm_path(ns) + "?limit=2&continue=" + urllib.parse.quote(tok))
        seen += [i["metadata"]["name"] for i in o.get("items", [])]
        tok = o.get("metadata", {}).get("continue")
        pages += 1
    c3, o3 = b.api("GET", cm_path(ns) + "?continue=garbage")
    return {"first": c1, "first_len": len(o1.get("items", [])), "pages": pages,
            "names": sorted(n for n in seen if n.startswith("p")),
            "bad_continue": c3}


def probe_watch(b):
    ns = b.namespace("cf-watch")
    _, lst = b.api("GET", cm_path(ns))
    rv = lst["metadata"]["resourceVersion"]
    b.api("POST", cm_path(ns), configmap("w1"))
    b.api("PATCH", cm_path(ns, "w1"), {"data": {"a": "9"}}, MERGE)
    b.api("DELETE", cm_path(ns, "w1"))
    events = []
    for ev in b.watch(cm_path(ns) + "?watch=1&allowWatchBookmarks=true&resourceVersion=" +
                      rv, timeout=10):
        if ev.get("type") == "BOOKMARK" or not ev.get("object", {}).get(
                "metadata", {}).get("name", "").startswith("w"):
            continue    # a real namespace's kube-root-ca.crt may come now
        events.append((ev.get("type"), ev.get("object", {}).get("metadata", {}).get("name"),
                       ev.get("object", {}).get("data", {}).get("a")))
        if len(events) == 3:
            break
    # A resourceVersion from before the server's history: 410 in the stream.
    gone = None
    for ev in b.watch(cm_path(ns) + "?watch=1&resourceVersion=1", timeout=10):
        gone = (ev.get("type"), ev.get("object", {}).get("code"),
                ev.get("object", {}).get("reason"))
        break
    # No resourceVersion: synthetic ADDED for what exists.
    # No resourceVersion: synthetic ADDED for what exists (a real namespace
    # also holds kube-root-ca.crt: only ours are compared).
    b.api("POST", cm_path(ns), configmap("w2"))
    first = None
    for ev in b.watch(cm_path(ns) + "?watch=1", timeout=10):
        name = ev.get("object", {}).get("metadata", {}).get("name")
        if name == "w2":
            first = (ev.get("type"), name)
            break
    return {"events": events, "too_old": gone, "initial": first}


def watch_scale_facts(b, base, make):
    """A /scale write as a scale pool's watch of the workloads sees it
    (issue 15, scheduler/targets.c): LIST, then a PATCH of /scale, then a
    watch from the list's resourceVersion: the write comes as a MODIFIED
    event of the workload with the new spec.replicas, at the resourceVersion
    the Scale answer carried (the pool compares the two)."""
    b.api("POST", base, make("w", 0))
    _, lst = b.api("GET", base + "?limit=500")
    rv = lst["metadata"]["resourceVersion"]
    c, sc = b.api("PATCH", base + "/w/scale", {"spec": {"replicas": 2}}, MERGE)
    seen = None
    for ev in b.watch(base + "?watch=1&allowWatchBookmarks=true&resourceVersion=" + rv,
                      timeout=10):
        o = ev.get("object", {})
        if o.get("metadata", {}).get("name") == "w" and o.get("spec", {}).get("replicas") == 2:
            seen = {"type": ev.get("type"),
                    "rv_is_scale_rv": o["metadata"].get("resourceVersion") ==
                    sc.get("metadata", {}).get("resourceVersion"),
                    "listed_in": [i["metadata"]["name"] for i in lst.get("items", [])]}
            break
    return {"patch": c, "scale_has_rv": bool(sc.get("metadata", {}).get("resourceVersion")),
            "event": seen}


def probe_watch_scale_deployment(b):
    ns = b.namespace("cf-wscale-d")
    return watch_scale_facts(b, "/apis/apps/v1/namespaces/%s/deployments" % ns, deployment)


def probe_watch_scale_statefulset(b):
    ns = b.namespace("cf-wscale-s")
    return watch_scale_facts(b, "/apis/apps/v1/namespaces/%s/statefulsets" % ns, statefulset)


# ---- auth --------------------------------------------------------------

def probe_auth(b):
    ns = b.namespace("cf-auth")
    c1, o1 = b.api_as("not-a-token", "GET", cm_path(ns))
    tok = b.no_rights_token(ns)
    c2, o2 = b.api_as(tok, "GET", cm_path(ns))
    c3, o3 = b.api_as(tok, "PATCH", "/apis/apps/v1/namespaces/%s/deployments/w/scale" % ns,
                      {"spec": {"replicas": 1}}, MERGE)
    msg2 = o2.get("message", "") if isinstance(o2, dict) else ""
    msg3 = o3.get("message", "") if isinstance(o3, dict) else ""
    msg2, msg3 = msg2.replace(ns, "<ns>"), msg3.replace(ns, "<ns>")
    return {"bad_token": status_facts(c1, o1), "no_rights_list": status_facts(c2, o2),
            "list_message_shape": msg2.split(": User")[0],
            "list_message_tail": msg2.split('" cannot ')[-1] if " cannot " in msg2 else msg2,
            "no_rights_scale": status_facts(c3, o3),
            "scale_message_tail": msg3.split('" cannot ')[-1] if " cannot " in msg3 else msg3}


# ---- quota -------------------------------------------------------------

def probe_quota(b):
    """count/<resource> quota: the write past it is a 403 whose message
    agentscaler reads as 'exceeded quota' (a wait, never the task's fault)."""
    ns = b.namespace("cf-quota")
    # Secrets: a real namespace starts with a ConfigMap (kube-root-ca.crt)
    # but no Secret, so both servers start the count at zero.
    q = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
         "spec": {"hard": {"count/secrets": "2"}}}
    cq, _ = b.api("POST", "/api/v1/namespaces/%s/resourcequotas" % ns, q)

    # The quota controller fills status.hard before enforcing.
    def ready():
        _, o = b.api("GET", "/api/v1/namespaces/%s/resourcequotas/q" % ns)
        return "count/secrets" in (o.get("status", {}).get("hard") or {})
    deadline = time.monotonic() + 30
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.1)
    codes = []
    last = None
    for i in range(4):
        c, o = b.api("POST", "/api/v1/namespaces/%s/secrets" % ns,
                     {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "q%d" % i},
                      "stringData": {"k": "v"}})
        codes.append(c)
        if c >= 400:
            last = o
            break
    msg = last.get("message", "") if isinstance(last, dict) else ""
    return {"quota": cq, "codes_until_refused": codes,
            "refused": status_facts(codes[-1], last),
            "exceeded": "exceeded quota: q" in msg,
            "names_resource": "count/secrets" in msg}


# ---- deletes -----------------------------------------------------------

def owned(owner, name):
    cm = configmap(name)
    cm["metadata"]["ownerReferences"] = [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "blockOwnerDeletion": True}]
    return cm


def wait_gone(b, path, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c, _ = b.api("GET", path)
        if c == 404:
            return True
        time.sleep(0.1)
    return False


def probe_deletes(b):
    ns = b.namespace("cf-del")
    f = {}
    for policy in ("Foreground", "Background"):
        _, owner = b.api("POST", cm_path(ns), configmap("o-" + policy.lower()))
        b.api("POST", cm_path(ns), owned(owner, "d-" + policy.lower()))
        c, o = b.api("DELETE", cm_path(ns, owner["metadata"]["name"]),
                     {"propagationPolicy": policy})
        md = o.get("metadata", {}) if isinstance(o, dict) else {}
        f[policy] = {"code": c, "kind": o.get("kind") if isinstance(o, dict) else None,
                     "finalizers": md.get("finalizers"),
                     "terminating": "deletionTimestamp" in md,
                     "dependent_gone": wait_gone(b, cm_path(ns, "d-" + policy.lower())),
                     "owner_gone": wait_gone(b, cm_path(ns, owner["metadata"]["name"]))}
    c, o = b.api("DELETE", cm_path(ns, "never-was"))
    f["missing"] = status_facts(c, o)
    return f


# ---- leases ------------------------------------------------------------

def probe_lease(b):
    ns = b.namespace("cf-lease")
    base = "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % ns
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "l"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                      "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}
    c1, o1 = b.api("POST", base, lease)
    stale = json.loads(json.dumps(o1))
    o1["spec"]["holderIdentity"] = "b"
    o1["spec"]["leaseTransitions"] = 1
    c2, o2 = b.api("PUT", base + "/l", o1)
    stale["spec"]["holderIdentity"] = "c"
    c3, o3 = b.api("PUT", base + "/l", stale)
    return {"create": c1, "micro_time_kept": o1["spec"]["renewTime"] == now,
            "takeover": c2, "holder": o2.get("spec", {}).get("holderIdentity"),
            "stale": status_facts(c3, o3)}


PROBES = [
    ("create_twice", probe_create_twice),
    ("put_conflict", probe_put_conflict),
    ("patches", probe_patches),
    ("scale_deployment", probe_scale_deployment),
    ("scale_statefulset", probe_scale_statefulset),
    ("scale_warmpool", probe_scale_warmpool),
    ("status_subresource", probe_status_subresource),
    ("crd_validation", probe_crd_validation),
    ("selectors", probe_selectors),
    ("list_paging", probe_list_paging),
    ("watch", probe_watch),
    ("watch_scale_deployment", probe_watch_scale_deployment),
    ("watch_scale_statefulset", probe_watch_scale_statefulset),
    ("auth", probe_auth),
    ("quota", probe_quota),
    ("deletes", probe_deletes),
    ("lease", probe_lease),
]


def flatten(prefix, value, out):
    """{"a": {"b": 1}} -> {"a.b": 1}: divergences are reported per fact."""
    if isinstance(value, dict):
        for k in sorted(value):
            flatten("%s.%s" % (prefix, k) if prefix else k, value[k], out)
    else:
        out[prefix] = value
    return out


# ---- agent-sandbox scenarios --------------------------------------------
#
# The same scenarios against kube-sim's agent-sandbox model and the real
# agent-sandbox controller (v1.0.1, extensions on).  A backend also has
#   finish_pod(ns, sandbox, phase): the Sandbox's pod ends (Succeeded or
#       Failed) as the kubelet would report it.
# Facts are about what agentscaler reads of claims (Ready and Finished
# conditions, status.sandbox.name) and what the controller does to the
# objects (owners, counts, deletions): never names made of random
# characters, times or uids.

SBX = "/apis/agents.x-k8s.io/v1beta1/namespaces/%s/sandboxes"
EXT = "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/%s/"
L_POOL = "agents.x-k8s.io/warm-pool-sandbox"
L_LAUNCH = "agents.x-k8s.io/launch-type"


def until(fn, timeout=60, interval=0.1):
    """fn() until it returns something true; that value, or None at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v or None
        time.sleep(interval)


def claim(name, pool, lifecycle=None):
    c = {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxClaim",
         "metadata": {"name": name}, "spec": {"warmPoolRef": {"name": pool}}}
    if lifecycle:
        c["spec"]["lifecycle"] = lifecycle
    return c


def cond(obj, typ):
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == typ:
            return c
    return None


def cond_facts(obj, typ):
    c = cond(obj, typ)
    return [c.get("status"), c.get("reason")] if c else None


def get(b, path):
    c, o = b.api("GET", path)
    return o if c == 200 else None


def sandboxes(b, ns):
    return (get(b, SBX % ns) or {}).get("items", [])


def owner(o):
    """(kind, name) of o's controller owner, or None."""
    for r in (o.get("metadata") or {}).get("ownerReferences") or []:
        if r.get("controller"):
            return [r.get("kind"), r.get("name")]
    return None


def pool_members(b, ns, pool):
    return sorted(s["metadata"]["name"] for s in sandboxes(b, ns)
                  if owner(s) == ["SandboxWarmPool", pool]
                  and not s["metadata"].get("deletionTimestamp"))


def sb_setup(b, prefix, replicas, template=True):
    ns = b.namespace(prefix)
    if template:
        b.api("POST", EXT % ns + "sandboxtemplates", sandbox_template("t"))
    b.api("POST", EXT % ns + "sandboxwarmpools", warm_pool("wp", "t", replicas))
    return ns


def pool_ready(b, ns, n, pool="wp"):
    """The pool reports n members, n Ready (as of its own status)."""
    def ok():
        st = (get(b, EXT % ns + "sandboxwarmpools/" + pool) or {}).get("status") or {}
        # (0 is absent from the status: int32 with omitempty upstream)
        return st.get("replicas", 0) == n and st.get("readyReplicas", 0) == n and \
            len(pool_members(b, ns, pool)) == n
    return bool(until(ok, timeout=90))


def claim_ready(b, ns, name, timeout=60):
    return until(lambda: (lambda o: o if (cond(o, "Ready") or {}).get("status") == "True"
                          else None)(get(b, EXT % ns + "sandboxclaims/" + name)),
                 timeout=timeout)


def probe_sb_warm_bind(b):
    ns = sb_setup(b, "cf-sb-warm", 2)
    filled = pool_ready(b, ns, 2)
    before = pool_members(b, ns, "wp")
    c, _ = b.api("POST", EXT % ns + "sandboxclaims", claim("c", "wp"))
    o = claim_ready(b, ns, "c")
    name = ((o or {}).get("status") or {}).get("sandbox", {}).get("name")
    sb = get(b, SBX % ns + "/" + name) if name else None
    labels = (sb or {}).get("metadata", {}).get("labels") or {}
    refilled = pool_ready(b, ns, 2)
    after = pool_members(b, ns, "wp")
    return {"filled": filled, "create": c, "ready": cond_facts(o, "Ready"),
            "bound_former_member": name in before,
            "name_has_pool_prefix": bool(name) and name.startswith("wp-"),
            "owner": owner(sb or {}), "launch_type": labels.get(L_LAUNCH),
            "pool_label": L_POOL in labels, "refilled": refilled,
            "members_after": len(after), "bound_still_member": name in after}


def probe_sb_cold_start(b):
    ns = sb_setup(b, "cf-sb-cold", 0)
    _, lst = b.api("GET", EXT % ns + "sandboxclaims")
    rv = lst["metadata"]["resourceVersion"]
    c, _ = b.api("POST", EXT % ns + "sandboxclaims", claim("c", "wp"))
    reasons = []
    for ev in b.watch(EXT % ns + "sandboxclaims?watch=1&resourceVersion=" + rv, timeout=60):
        rc = cond(ev.get("object"), "Ready")
        r = [rc.get("status"), rc.get("reason")] if rc else None
        if not reasons or reasons[-1] != r:
            reasons.append(r)
        if rc and rc.get("status") == "True":
            break
    o = get(b, EXT % ns + "sandboxclaims/c")
    name = ((o or {}).get("status") or {}).get("sandbox", {}).get("name")
    sb = get(b, SBX % ns + "/" + name) if name else None
    # What the claim passes through: SandboxNotReady (the cold Sandbox
    # created, no Ready yet), then the Sandbox's own Ready copied.  Whether
    # a pass lands while the pod is Pending (DependenciesNotReady) is timing
    # on the real controller (kwok makes pods Ready in about a second):
    # seen or not, it must come in this order.
    order = [None, ["False", "SandboxNotReady"], ["False", "DependenciesNotReady"],
             ["True", "DependenciesReady"]]
    idx = [order.index(r) if r in order else -1 for r in reasons]
    return {"create": c, "reasons_known": -1 not in idx, "reasons_ordered": idx == sorted(idx),
            "first_reason": next((r for r in reasons if r), None),
            "last_reason": reasons[-1] if reasons else None,
            "sandbox_is_claim_name": name == "c",
            "owner": owner(sb or {}),
            "launch_type": ((sb or {}).get("metadata", {}).get("labels") or {}).get(L_LAUNCH),
            "pool_members": len(pool_members(b, ns, "wp"))}


def probe_sb_refill(b):
    ns = sb_setup(b, "cf-sb-refill", 3)
    full = pool_ready(b, ns, 3)
    st = (get(b, EXT % ns + "sandboxwarmpools/wp") or {}).get("status") or {}
    members = [s for s in sandboxes(b, ns) if owner(s) == ["SandboxWarmPool", "wp"]]
    ready = [s for s in members if (cond(s, "Ready") or {}).get("status") == "True"]
    # 3 -> 1: the pool shrinks to one member
    b.api("PATCH", EXT % ns + "sandboxwarmpools/wp", {"spec": {"replicas": 1}}, MERGE)
    shrunk = pool_ready(b, ns, 1)
    return {"full": full, "status_replicas": st.get("replicas"),
            "status_ready": st.get("readyReplicas"), "members": len(members),
            "ready_members": len(ready),
            "all_prefixed": all(s["metadata"]["name"].startswith("wp-") for s in members),
            "labelled": all(L_POOL in (s["metadata"].get("labels") or {}) for s in members),
            "shrunk_to_1": shrunk, "members_after_shrink": len(pool_members(b, ns, "wp"))}


def probe_sb_replicas_zero(b):
    ns = sb_setup(b, "cf-sb-zero", 2)
    filled = pool_ready(b, ns, 2)
    b.api("POST", EXT % ns + "sandboxclaims", claim("c", "wp"))
    o = claim_ready(b, ns, "c")
    bound = ((o or {}).get("status") or {}).get("sandbox", {}).get("name")
    pool_ready(b, ns, 2)
    c, _ = b.api("PATCH", EXT % ns + "sandboxwarmpools/wp/scale",
                 {"spec": {"replicas": 0}}, MERGE)
    emptied = pool_ready(b, ns, 0)
    gone = until(lambda: [s["metadata"]["name"] for s in sandboxes(b, ns)] == [bound],
                 timeout=30)
    after = get(b, EXT % ns + "sandboxclaims/c")
    st = (get(b, EXT % ns + "sandboxwarmpools/wp") or {}).get("status") or {}
    return {"filled": filled, "scale": c, "emptied": emptied,
            "only_claimed_left": bool(gone),
            "claimed_kept": get(b, SBX % ns + "/" + bound) is not None if bound else None,
            "claim_ready": cond_facts(after, "Ready"),
            "status_replicas": st.get("replicas"), "status_ready": st.get("readyReplicas")}


def probe_sb_ttl(b):
    """lifecycle.shutdownTime with each shutdownPolicy (v1.0.1 has Delete,
    DeleteForeground, Retain): what becomes of the claim and its Sandbox."""
    ns = sb_setup(b, "cf-sb-ttl", 0)
    exp = int(time.time()) + 12
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))
    policies = ("Delete", "DeleteForeground", "Retain")
    creates = {}
    for p in policies:
        creates[p] = b.api("POST", EXT % ns + "sandboxclaims",
                           claim(p.lower(), "wp", {"shutdownTime": when,
                                                   "shutdownPolicy": p}))[0]
    ready = {p: bool(claim_ready(b, ns, p.lower(), timeout=12)) for p in policies}
    c, o = b.api("POST", EXT % ns + "sandboxclaims",
                 claim("nopolicy", "wp", {"shutdownTime": when}))
    defaulted = ((o.get("spec") or {}).get("lifecycle") or {}).get("shutdownPolicy") \
        if isinstance(o, dict) else None
    time.sleep(max(0.0, exp + 1 - time.time()))

    def settled():
        names = {s["metadata"]["name"] for s in sandboxes(b, ns)}
        out = {}
        for p in policies + ("nopolicy",):
            n = p.lower()
            o = get(b, EXT % ns + "sandboxclaims/" + n)
            out[p] = {"claim_exists": o is not None,
                      "claim_ready": cond_facts(o, "Ready"),
                      "claim_sandbox_fields": sorted(((o.get("status") or {})
                                                      .get("sandbox") or {}))
                      if o else None,
                      "sandbox_exists": n in names}
        done = all(not v["sandbox_exists"] for v in out.values()) and \
            all(v["claim_ready"] == ["False", "ClaimExpired"] for p, v in out.items()
                if v["claim_exists"])
        return out if done else None
    out = until(settled, timeout=30)
    if out is None:
        out = {"unsettled": True}
    out["creates"] = creates
    out["ready_before"] = ready
    out["default_policy"] = defaulted
    return out


def probe_sb_finished(b):
    ns = sb_setup(b, "cf-sb-fin", 0)
    out = {}
    for phase in ("Succeeded", "Failed"):
        n = phase.lower()
        b.api("POST", EXT % ns + "sandboxclaims", claim(n, "wp"))
    for phase in ("Succeeded", "Failed"):
        n = phase.lower()
        o = claim_ready(b, ns, n)
        name = ((o or {}).get("status") or {}).get("sandbox", {}).get("name")
        f = {"ready_before": bool(o)}
        if name:
            b.finish_pod(ns, name, phase)
        o = until(lambda: (lambda c: c if cond(c, "Finished") else None)(
            get(b, EXT % ns + "sandboxclaims/" + n)), timeout=30)
        time.sleep(1.0)       # a pod that ends is not recreated: still so later
        o = get(b, EXT % ns + "sandboxclaims/" + n)
        sb = get(b, SBX % ns + "/" + name) if name else None
        f.update({"claim_ready": cond_facts(o, "Ready"),
                  "claim_finished": cond_facts(o, "Finished"),
                  "claim_bound": ((o or {}).get("status") or {}).get("sandbox", {})
                  .get("name") == name,
                  "claim_has_ips": bool(((o or {}).get("status") or {}).get("sandbox", {})
                                        .get("podIPs")),
                  "sandbox_ready": cond_facts(sb, "Ready"),
                  "sandbox_finished": cond_facts(sb, "Finished"),
                  "sandbox_has_ips": bool(((sb or {}).get("status") or {}).get("podIPs"))})
        out[phase] = f
    return out


def probe_sb_terminal(b):
    ns = sb_setup(b, "cf-sb-term", 0, template=False)   # wp names template t: absent
    b.api("POST", EXT % ns + "sandboxclaims", claim("nopool", "missing"))
    b.api("POST", EXT % ns + "sandboxclaims", claim("notpl", "wp"))

    def reason_of(n):
        return until(lambda: cond_facts(get(b, EXT % ns + "sandboxclaims/" + n), "Ready"),
                     timeout=30)
    out = {}
    for n in ("nopool", "notpl"):
        r = reason_of(n)
        time.sleep(0.5)
        o = get(b, EXT % ns + "sandboxclaims/" + n)
        out[n] = {"ready": r, "later": cond_facts(o, "Ready"),
                  "bound": bool(((o or {}).get("status") or {}).get("sandbox", {})
                                .get("name")),
                  "sandboxes": len(sandboxes(b, ns))}
    # the template appears: the claim recovers (the reason was not final)
    b.api("POST", EXT % ns + "sandboxtemplates", sandbox_template("t"))
    out["notpl_recovers"] = bool(claim_ready(b, ns, "notpl"))
    return out


PROBES += [
    ("sb_warm_bind", probe_sb_warm_bind),
    ("sb_cold_start", probe_sb_cold_start),
    ("sb_refill", probe_sb_refill),
    ("sb_replicas_zero", probe_sb_replicas_zero),
    ("sb_ttl", probe_sb_ttl),
    ("sb_finished", probe_sb_finished),
    ("sb_terminal", probe_sb_terminal),
]
