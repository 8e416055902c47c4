"""agentscaler's agent protocol, agentscaler.io/v1 (docs/protocol.md).

  agentscaler.runtime   serve(handler): the HTTP server a sandbox runs
                        (standard library only)
  agentscaler.producer  submit tasks to Redis or RabbitMQ and wait for
                        their results (extras: redis, rabbitmq)
  agentscaler.peer      agentscaler's side of the protocol, for tests and
                        tools (standard library only)
  agentscaler.protocol  names, message builders, child ids, trace context
"""
from .protocol import API_VERSION, TaskFailed, new_traceparent, task_message  # noqa: F401

__version__ = "0.1.0"
