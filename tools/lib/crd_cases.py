"""The CEL rules of the AgentPool and AgentQuota CRDs, each with an object
that breaks it: one table for the two tests that keep the rules honest.

tests/integration/test_crd_schema.py checks that every rule of the CRDs
has a case here and runs each case's object through the daemon's parser
(`--check-config`), which must refuse it with `parser` in its message: the
rules say no more than the parser does.  tests/e2e/test_e2e_crd_validation.py
creates each object on the real API server, which must answer 422 with the
rule's `message` (kube-sim does not evaluate CEL: tools/kube-sim/README.md).
"""
import copy

SCALE = {"source": {"type": "redis-list", "address": "redis://redis:6379/0", "queue": "q"},
         "target": {"kind": "Deployment", "name": "agents"},
         "scaling": {"maxReplicas": 5}}
DISPATCH = {"mode": "dispatch",
            "source": {"type": "redis-list", "address": "redis://redis:6379/0", "queue": "q"},
            "sandbox": {"warmPool": "wp"}}
RABBIT = {"type": "rabbitmq", "address": "amqp://rabbit:5672/%2f", "queue": "q"}


def _with(base, **changes):
    """base deep-copied, each change a dotted path set to a value (None
    deletes it)."""
    out = copy.deepcopy(base)
    for path, value in changes.items():
        keys = path.split("__")
        cur = out
        for k in keys[:-1]:
            cur = cur.setdefault(k, {})
        if value is None:
            cur.pop(keys[-1], None)
        else:
            cur[keys[-1]] = value
    return out


# (name, kind, spec, the CRD rule's message, what the parser's error says)
CASES = [
    ("min above max", "AgentPool",
     _with(SCALE, scaling={"minReplicas": 6, "maxReplicas": 5}),
     "minReplicas must not be above maxReplicas", "6 is above maxReplicas 5"),
    ("spare min above max", "AgentPool",
     _with(DISPATCH, sandbox={"warmPool": "wp", "spare": {"min": 5, "max": 2}}),
     "spare.min must not be above spare.max", "5 is above spare.max 2"),
    ("scale without target", "AgentPool", _with(SCALE, target=None),
     "target is required in scale mode", "spec.target: required in scale mode"),
    ("dispatch without sandbox", "AgentPool", _with(DISPATCH, sandbox=None),
     "sandbox is required in dispatch mode", "spec.sandbox: required in dispatch mode"),
    ("two password sources", "AgentPool",
     _with(SCALE, source__authSecretRef={"name": "s", "key": "password"},
           source__passwordEnv="REDIS_PW"),
     "give at most one of authSecretRef, passwordFile, passwordEnv",
     "give at most one of authSecretRef, passwordFile, passwordEnv"),
    ("username twice", "AgentPool",
     _with(SCALE, source__username="agents",
           source__authSecretRef={"name": "s", "key": "password", "usernameKey": "user"}),
     "give username or authSecretRef.usernameKey, not both",
     "give username or authSecretRef.usernameKey, not both"),
    ("stream without group", "AgentPool", _with(SCALE, source__type="redis-stream"),
     "consumerGroup is required for redis-stream", "required for redis-stream"),
    ("redis address of another scheme", "AgentPool",
     _with(SCALE, source__address="amqp://redis:6379"),
     "a Redis address is redis://host[:port][/db]", "unsupported scheme"),
    ("redis address with credentials", "AgentPool",
     _with(SCALE, source__address="redis://user:pw@redis:6379/0"),
     "a Redis address is redis://host[:port][/db]", "credentials in the address"),
    ("redis address with a query", "AgentPool",
     _with(SCALE, source__address="redis://redis:6379?db=1"),
     "a Redis address is redis://host[:port][/db]", "query strings"),
    ("rabbitmq address of another scheme", "AgentPool",
     _with(SCALE, source=dict(RABBIT, address="redis://rabbit:5672")),
     "a RabbitMQ address is amqp(s)://host[:port]/vhost", "unsupported scheme"),
    ("rabbitmq address with credentials", "AgentPool",
     _with(SCALE, source=dict(RABBIT, address="amqp://guest:guest@rabbit:5672/")),
     "a RabbitMQ address is amqp(s)://host[:port]/vhost", "credentials in the address"),
    ("dispatch from the management API", "AgentPool",
     _with(DISPATCH, source=dict(RABBIT, address="http://rabbit:15672")),
     "dispatch mode consumes the queue, which needs an amqp:// or amqps:// address",
     "dispatch mode consumes the queue, which needs amqp:// or amqps://"),
    ("handoff in scale mode", "AgentPool", _with(SCALE, handoff={"mode": "http"}),
     "handoff and results are for dispatch mode only", "spec.handoff: dispatch mode only"),
    ("results with the inbox hand-off", "AgentPool",
     _with(DISPATCH, handoff={"mode": "inbox"},
           results={"type": "redis-list", "address": "redis://redis:6379/0",
                    "queue": "results"}),
     "results needs handoff.mode http", "only with handoff.mode http"),
    ("router not a URL", "AgentPool",
     _with(DISPATCH, handoff={"mode": "http", "router": "sandbox-router:8080"}),
     "handoff.router must be an http:// or https:// URL",
     "expected an http:// or https:// URL"),
    ("results with two password sources", "AgentPool",
     _with(DISPATCH, handoff={"mode": "http"},
           results={"type": "redis-list", "address": "redis://redis:6379/0", "queue": "r",
                    "passwordEnv": "A", "passwordFile": "/f"}),
     "give at most one of authSecretRef, passwordFile, passwordEnv",
     "give at most one of authSecretRef, passwordFile, passwordEnv"),
    ("rabbitmq results with queue and exchange", "AgentPool",
     _with(DISPATCH, handoff={"mode": "http"},
           results=dict(RABBIT, exchange="results")),
     "give one of queue, exchange", "give one of queue, exchange"),
    ("redis results without a queue", "AgentPool",
     _with(DISPATCH, handoff={"mode": "http"},
           results={"type": "redis-stream", "address": "redis://redis:6379/0"}),
     "give one of queue, exchange", "give queue (exchange is rabbitmq's)"),
    ("resource name in capitals", "AgentQuota", {"resources": {"Memory": "1Gi"}},
     "resource names are case-sensitive", "names are case-sensitive: write"),
    ("resource name without a domain", "AgentQuota", {"resources": {"gpu": 1}},
     "resource names are case-sensitive", "not a Kubernetes resource name"),
]

# Objects the rules must accept (what the parser accepts, near the edges).
VALID = [
    ("AgentPool", SCALE),
    ("AgentPool", _with(SCALE, scaling={"minReplicas": 5, "maxReplicas": 5})),
    ("AgentPool", _with(SCALE, source__address="REDIS://[::1]:6379/15")),
    ("AgentPool", _with(SCALE, source__address="redis://redis/")),
    ("AgentPool", _with(SCALE, source=dict(RABBIT, address="https://rabbit:15671/vhost",
                                           username="agents"))),
    ("AgentPool", _with(SCALE, source__type="redis-stream", source__consumerGroup="g")),
    ("AgentPool", _with(DISPATCH, sandbox={"warmPool": "wp", "spare": {"min": 3, "max": 3}},
                        handoff={"mode": "http", "router": "https://router:8443"},
                        results={"type": "rabbitmq", "address": "amqp://rabbit:5672/",
                                 "exchange": "results"})),
    ("AgentPool", _with(DISPATCH, source=dict(RABBIT, address="amqps://rabbit:5671/v"))),
    # http is the default hand-off, so results need no handoff object.
    ("AgentPool", _with(DISPATCH, results={"type": "redis-list",
                                           "address": "redis://redis:6379/0",
                                           "queue": "results"})),
    ("AgentQuota", {"resources": {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "1Gi",
                                  "hugepages-2Mi": "1Gi", "nvidia.com/gpu": 2}}),
]


def obj(kind, spec, name="cel-case", namespace="default"):
    """An AgentPool or AgentQuota object of that spec."""
    return {"apiVersion": "agentscaler.io/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}
