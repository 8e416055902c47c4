"""AgentPool objects (DESIGN.md sections 5 to 8) for the daemon's config
or for kubectl apply: scale pools on a Redis list or stream or a RabbitMQ
queue, dispatch pools on a warm pool."""


def pool(name, redis_url, queue, target, **scaling):
    spec = {"source": {"type": "redis-list", "address": redis_url, "queue": queue},
            "target": {"kind": "Deployment", "name": target},
            "scaling": scaling}
    return {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentPool",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def pool_stream(name, redis_url, stream, group, target, count_in_flight=False, **scaling):
    """An AgentPool reading a Redis stream through one consumer group."""
    p = pool(name, redis_url, stream, target, **scaling)
    p["spec"]["source"]["type"] = "redis-stream"
    p["spec"]["source"]["consumerGroup"] = group
    if count_in_flight:
        p["spec"]["source"]["countInFlight"] = True
    return p


def pool_rabbit(name, address, queue, target, count_in_flight=False, **scaling):
    """An AgentPool reading a RabbitMQ queue, over AMQP or the management API by scheme."""
    p = pool(name, address, queue, target, **scaling)
    p["spec"]["source"]["type"] = "rabbitmq"
    if count_in_flight:
        p["spec"]["source"]["countInFlight"] = True
    return p


def pool_dispatch(name, address, queue, warm_pool, source_type=None, consumer_group=None,
                  claim_ttl_seconds=3600, spare_min=0, spare_max=50, namespace="default",
                  handoff="inbox", **scaling):
    """An AgentPool in dispatch mode (DESIGN.md sections 5 and 7): one
    SandboxClaim per task from warm_pool.  The source type follows the
    address (redis:// -> redis-list, or redis-stream when consumer_group is
    given; amqp:// or http:// -> rabbitmq) unless source_type says.

    handoff: spec.handoff.  The daemon's default is http (issue 16); the
    worlds built on this helper run inbox agents (tools/agent-runtime's
    default, kube-sim), so it asks for {"mode": "inbox"} explicitly; a
    mode name or a dict sets another, None leaves spec.handoff out (the
    daemon's default)."""
    if source_type is None:
        if address.startswith("redis"):
            source_type = "redis-stream" if consumer_group else "redis-list"
        else:
            source_type = "rabbitmq"
    src = {"type": source_type, "address": address, "queue": queue}
    if consumer_group:
        src["consumerGroup"] = consumer_group
    spec = {"mode": "dispatch", "source": src,
            "sandbox": {"warmPool": warm_pool, "claimTTLSeconds": claim_ttl_seconds,
                        "spare": {"min": spare_min, "max": spare_max}},
            "scaling": scaling}
    if handoff is not None:
        spec["handoff"] = {"mode": handoff} if isinstance(handoff, str) else dict(handoff)
    return {"apiVersion": "agentscaler.io/v1alpha1", "kind": "AgentPool",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}
