"""Producers: put a task on an AgentPool's source in the envelope
agentscaler parses (DESIGN.md section 6, scheduler/task.c task_parse) and,
optionally, wait for its Result on the pool's results destination
(docs/protocol.md sections 8 and 9).

    from agentscaler.producer import RedisProducer
    p = RedisProducer("redis://redis:6379/0", "tasks", results="tasks.results")
    pending = p.submit({"repo": "..."}, want_result=True)
    print(pending.result(timeout=600))      # the Result message

    from agentscaler.producer import RabbitProducer
    p = RabbitProducer("amqp://user:pw@rabbit:5672/%2F", "tasks",
                       results_exchange="tasks.results")

Redis needs `pip install agentscaler[redis]`, RabbitMQ
`agentscaler[rabbitmq]`.  A producer object is for one thread.
"""
import json
import time

from .protocol import task_message


def _message(payload_or_message, fields):
    """A whole message (a dict with "id" and no other arguments) is taken
    as it is, once checked; anything else is the payload."""
    if isinstance(payload_or_message, dict) and "id" in payload_or_message and not fields:
        m = dict(payload_or_message)
        task_message(**dict({"traceparent": False}, **m))   # checks, raises ValueError
        return m
    return task_message(payload=payload_or_message, **fields)


def _encode(msg):
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()


class Pending:
    """A submitted task whose Result can be waited for."""

    def __init__(self, tid, waiter):
        self.id = tid
        self._waiter = waiter
        self._result = None

    def result(self, timeout=None):
        """The Result message (a dict with state, result | error, ...);
        TimeoutError when none came in time."""
        if self._result is None:
            self._result = self._waiter(timeout)
        return self._result


class RedisProducer:
    """source: "list" (LPUSH, a redis-list pool) or "stream" (XADD with the
    field "task", a redis-stream pool).  results: the results list or
    stream, results_type "stream" (any number of waiters, nothing is
    consumed) or "list" (BRPOP: this producer must be its only reader;
    results for other ids are kept for later waits)."""

    def __init__(self, url, queue, source="list", results=None, results_type="stream",
                 client=None):
        if source not in ("list", "stream") or results_type not in ("list", "stream"):
            raise ValueError("source and results_type are list or stream")
        if client is None:
            import redis
            client = redis.Redis.from_url(url)
        self.r = client
        self.queue, self.source = queue, source
        self.results, self.results_type = results, results_type
        self._stash = {}

    def publish(self, msg):
        body = _encode(msg)
        if self.source == "list":
            self.r.lpush(self.queue, body)
        else:
            self.r.xadd(self.queue, {"task": body})

    def submit(self, payload=None, want_result=False, **fields):
        """Publishes one task: payload (or a whole message dict with an id)
        and the message's other fields (id, parent, resources,
        traceparent, deadline).  Returns its id, or a Pending with
        want_result."""
        msg = _message(payload, fields)
        since = None
        if want_result:
            if not self.results:
                raise ValueError("no results destination configured")
            since = self._stream_tail() if self.results_type == "stream" else None
        self.publish(msg)
        if not want_result:
            return msg["id"]
        return Pending(msg["id"], lambda timeout: self.wait_result(msg["id"], timeout, since))

    def _stream_tail(self):
        last = self.r.xrevrange(self.results, count=1)
        return last[0][0] if last else b"0-0"

    def wait_result(self, tid, timeout=None, since=None):
        """The Result for task tid.  On a stream, entries after since (an
        entry id; "0-0" reads from the start) are searched."""
        end = None if timeout is None else time.monotonic() + timeout
        if self.results_type == "stream":
            pos = since or b"0-0"
            while True:
                block = _block_ms(end)
                got = self.r.xread({self.results: pos}, count=100, block=block)
                for _stream, entries in got or []:
                    for eid, fields in entries:
                        pos = eid
                        res = _decode_fields(fields)
                        if res is not None and res.get("id") == tid:
                            return res
                if end is not None and time.monotonic() >= end:
                    raise TimeoutError("no result for %s" % tid)
        while tid not in self._stash:
            block = _block_ms(end)
            got = self.r.brpop([self.results], timeout=max(1, (block or 0) // 1000) if end
                               else 0)
            if got is not None:
                res = json.loads(got[1])
                self._stash[res.get("id")] = res
            elif end is not None and time.monotonic() >= end:
                raise TimeoutError("no result for %s" % tid)
        return self._stash.pop(tid)


def _block_ms(end):
    if end is None:
        return 5000
    return max(1, min(5000, int((end - time.monotonic()) * 1000)))


def _decode_fields(fields):
    f = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
    raw = f.get("result")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


class RabbitProducer:
    """Publishes to queue through the default exchange (persistent,
    message_id = the task id, publisher confirms).  Results: from
    results_exchange (agentscaler publishes each Result with routing key =
    its task id; a waiter binds an exclusive queue for exactly its ids
    before submitting) or, for a single reader, from results_queue."""

    def __init__(self, url, queue, results_exchange=None, results_queue=None,
                 declare_exchange=False):
        import pika
        self._pika = pika
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.queue = queue
        self.results_exchange, self.results_queue = results_exchange, results_queue
        if results_exchange and declare_exchange:
            self.ch.exchange_declare(results_exchange, exchange_type="direct", durable=True)
        self._stash = {}

    def close(self):
        if self.conn.is_open:
            self.conn.close()

    def publish(self, msg):
        props = self._pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                           message_id=msg["id"])
        # With confirms, a nack or an unroutable mandatory message raises.
        self.ch.basic_publish("", self.queue, _encode(msg), properties=props, mandatory=True)

    def submit(self, payload=None, want_result=False, **fields):
        """As RedisProducer.submit."""
        msg = _message(payload, fields)
        if not want_result:
            self.publish(msg)
            return msg["id"]
        if self.results_exchange:
            q = self.ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
            self.ch.queue_bind(q, self.results_exchange, routing_key=msg["id"])
        elif self.results_queue:
            q = self.results_queue
        else:
            raise ValueError("no results destination configured")
        self.publish(msg)
        return Pending(msg["id"], lambda timeout: self._wait(q, msg["id"], timeout))

    def _wait(self, q, tid, timeout):
        end = None if timeout is None else time.monotonic() + timeout
        while tid not in self._stash:
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("no result for %s" % tid)
            for method, _props, body in self.ch.consume(q, inactivity_timeout=min(left or 5, 5)):
                if method is None:
                    break
                self.ch.basic_ack(method.delivery_tag)
                try:
                    res = json.loads(body)
                except ValueError:
                    continue
                self._stash[res.get("id")] = res
                if res.get("id") == tid:
                    break
            self.ch.cancel()
        if self.results_exchange and q != self.results_queue:
            self.ch.queue_delete(q)
        return self._stash.pop(tid)
