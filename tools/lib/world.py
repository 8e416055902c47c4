"""The embedded world for integration tests, the demo and the benchmarks:
real redis-server and rabbitmq-server, tools/kube-sim and the agentscaler
daemon on free 127.0.0.1 ports, each stopped by its PID.  Standard library
only.

One module per concern; this one gathers their names, so that a test or a
tool says `import world` and `world.Redis`, `world.KubeSim`, `world.pool`:

  procs            ROOT, free_port, wait_for, stop_pid
  httpjson         http (one JSON request)
  redis_server     Redis (a redis-server), RespConn, parse_redis_url
  rabbitmq_server  RabbitMQ, SharedRabbitMQ, AmqpConsumer, AmqpPublisher
  kubesim_proc     start_kube_sim, stop_kube_sim: the one way kube-sim starts;
                   pod_ip_args (pod IPs on loopback)
  kube_world       KubeSim, Deployments, Kubectl, kube_tokens, the chart's RBAC
  daemon_proc      Daemon, DaemonTestCase
  scale_world      RedisKubeTestCase (redis-server + kube-sim + the daemon)
  pools            AgentPool objects: pool, pool_stream, pool_rabbit, pool_dispatch
  sandboxes        warm pools, claims, sandboxes, inboxes, the hand-off message
  agent_proc       AgentRuntime (tools/agent-runtime as a child process)
  router_proc      SandboxRouter (agent-sandbox's real sandbox-router), router_missing
"""
from agent_proc import AgentRuntime  # noqa: F401
from daemon_proc import Daemon, DaemonTestCase  # noqa: F401
from httpjson import http  # noqa: F401
from kube_world import (CHART_NAMESPACE, CHART_RBAC, CRDS, Deployments, Kubectl,  # noqa: F401
                        KubeSim, chart_rbac, kube_tokens)
from kubesim_proc import KUBE_SIM, pod_ip_args, start_kube_sim, stop_kube_sim  # noqa: F401
from pools import pool, pool_dispatch, pool_rabbit, pool_stream  # noqa: F401
from procs import ROOT, free_port, stop_pid, wait_for  # noqa: F401
from rabbitmq_server import (AmqpClient, AmqpConsumer, AmqpPublisher, RabbitMQ,  # noqa: F401
                             SharedRabbitMQ)
from redis_server import Redis, RespConn, parse_redis_url  # noqa: F401
from router_proc import SandboxRouter, router_missing  # noqa: F401
from scale_world import RedisKubeTestCase  # noqa: F401
from sandboxes import (EXT_API, MANAGED_BY, SANDBOX_API, condition, create_claim,  # noqa: F401
                       create_namespace, get_claim, get_sandbox, handoff, inbox_key,
                       inbox_queue, is_true, sandbox_pool, wait_claim_ready)
