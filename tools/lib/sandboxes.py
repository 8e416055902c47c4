"""agent-sandbox objects on any API server the tests drive (kube-sim or the
real cluster): namespaces, SandboxTemplate and SandboxWarmPool, claims and
their sandboxes, conditions; the inboxes and the hand-off message agentscaler
sends a sandbox."""
from procs import wait_for


# agent-sandbox objects in kube-sim (ref/agent-sandbox-api.md sections 1 and 9).
EXT_API = "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/%s/"
SANDBOX_API = "/apis/agents.x-k8s.io/v1beta1/namespaces/%s/sandboxes"
MANAGED_BY = ("app.kubernetes.io/managed-by", "agentscaler")


def condition(obj, typ):
    """The condition typ of obj's status, or None."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == typ:
            return c
    return None


def is_true(obj, typ):
    c = condition(obj, typ)
    return c is not None and c.get("status") == "True"


def create_namespace(kube, ns):
    code, obj = kube.api("POST", "/api/v1/namespaces",
                         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    if code not in (201, 409):
        raise RuntimeError("create namespace %s: %s %s" % (ns, code, obj))


def sandbox_pool(kube, pool="pool", replicas=1, ns="default", template="tpl", wait_ready=True,
                 timeout=30):
    """Creates the minimal SandboxTemplate `template` (one container) and the
    SandboxWarmPool `pool` on it with `replicas` members; by default waits
    until they are all Ready.  Returns the pool object."""
    tpl = {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxTemplate",
           "metadata": {"name": template, "namespace": ns},
           "spec": {"podTemplate": {"spec": {"containers": [{"name": "agent",
                                                             "image": "agent:1"}]}}}}
    code, obj = kube.api("POST", EXT_API % ns + "sandboxtemplates", tpl)
    if code not in (201, 409):
        raise RuntimeError("create SandboxTemplate %s/%s: %s %s" % (ns, template, code, obj))
    wp = {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxWarmPool",
          "metadata": {"name": pool, "namespace": ns},
          "spec": {"replicas": replicas, "sandboxTemplateRef": {"name": template}}}
    code, obj = kube.api("POST", EXT_API % ns + "sandboxwarmpools", wp)
    if code != 201:
        raise RuntimeError("create SandboxWarmPool %s/%s: %s %s" % (ns, pool, code, obj))
    if wait_ready and replicas:
        wait_for(lambda: ((kube.api("GET", EXT_API % ns + "sandboxwarmpools/" + pool)[1]
                           .get("status") or {}).get("readyReplicas") == replicas),
                 timeout, what="warm pool %s/%s to have %d ready" % (ns, pool, replicas))
    return obj


def create_claim(kube, name, warm_pool="pool", ns="default", managed=True, labels=None,
                 annotations=None):
    """A SandboxClaim on warm_pool, labelled managed-by=agentscaler unless
    managed is False.  Returns the created object."""
    lab = dict(labels or {})
    if managed:
        lab[MANAGED_BY[0]] = MANAGED_BY[1]
    body = {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxClaim",
            "metadata": {"name": name, "namespace": ns, "labels": lab,
                         "annotations": dict(annotations or {})},
            "spec": {"warmPoolRef": {"name": warm_pool}}}
    code, obj = kube.api("POST", EXT_API % ns + "sandboxclaims", body)
    if code != 201:
        raise RuntimeError("create SandboxClaim %s/%s: %s %s" % (ns, name, code, obj))
    return obj


def get_claim(kube, name, ns="default"):
    code, obj = kube.api("GET", EXT_API % ns + "sandboxclaims/" + name)
    return obj if code == 200 else None


def get_sandbox(kube, name, ns="default"):
    code, obj = kube.api("GET", SANDBOX_API % ns + "/" + name)
    return obj if code == 200 else None


def wait_claim_ready(kube, name, ns="default", timeout=30):
    """Waits until the claim is bound (status.sandbox.name) and Ready=True,
    as agentscaler does before the hand-off; returns the sandbox name."""
    def bound():
        c = get_claim(kube, name, ns)
        sb = ((c or {}).get("status") or {}).get("sandbox", {}).get("name")
        return sb if sb and is_true(c, "Ready") else None
    return wait_for(bound, timeout, what="claim %s/%s bound and Ready" % (ns, name))


def inbox_key(ns, sandbox):
    """The Redis list agentscaler LPUSHes a sandbox's task to."""
    return "agentscaler:inbox:%s:%s" % (ns, sandbox)


def inbox_queue(ns, sandbox):
    """The durable RabbitMQ queue agentscaler publishes a sandbox's task to."""
    return "agentscaler.inbox.%s.%s" % (ns, sandbox)


def handoff(task, ns, sandbox, claim, pool="pool", parent=None, root=None, depth=0):
    """The inbox message (scheduler/task.h task_handoff_body)."""
    return {"agentscaler": {"namespace": ns, "pool": pool, "claim": claim, "sandbox": sandbox,
                            "id": task["id"], "parent": parent,
                            "root": root or task["id"], "depth": depth},
            "task": task}
