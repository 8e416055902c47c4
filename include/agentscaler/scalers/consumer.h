/*
 * consumer.h: taking task messages off a source with manual acknowledgement
 * (dispatch mode, DESIGN.md section 7 steps 1, 3 and 6).  One interface, one
 * implementation per source type:
 *
 *  - redis-list:   LMOVE <queue> -> <queue>:processing:<instance> (RIGHT
 *                  LEFT, FIFO with LPUSH producers); ack = LREM of that
 *                  entry; what the processing list holds at start is
 *                  delivered first, marked redelivered (crash recovery).
 *                  With adopt, the processing lists that other instances
 *                  registered for the queue and no longer keep alive (a
 *                  heartbeat key with a TTL) are emptied into ours,
 *                  atomically, and their entries delivered redelivered
 *                  too: at start and every ten poll intervals (late moves
 *                  of a dead instance).  A live instance's list is never
 *                  taken.
 *  - redis-stream: XREADGROUP GROUP <group> <instance> ... ">"; own pending
 *                  entries (id 0) first at start; XAUTOCLAIM takes entries
 *                  idle longer than claim_idle from dead consumers; ack =
 *                  XACK.  The group is created (MKSTREAM) when missing.
 *  - rabbitmq (amqp:// and amqps:// only): basic.consume with manual ack
 *                  and basic.qos prefetch = window; ack = basic.ack; an
 *                  unacked message returns to the queue when the
 *                  connection goes.
 *
 * Flow control: at most `window` messages are outstanding (delivered and
 * neither acked nor dead-lettered).  A consumer never fetches beyond it;
 * consumer_set_window() changes it (0 pauses fetching: backpressure).
 * Sources that can push (Redis keyspace notifications, AMQP deliveries)
 * fetch as soon as something arrives; otherwise every poll_interval.
 *
 * Dead letters go to "<queue>.rejected" (a list for redis-list, a stream
 * with one field "record" for redis-stream, a durable queue for rabbitmq)
 * and the original is acked in the same step (MULTI/EXEC on Redis; publish
 * confirmed before basic.ack on RabbitMQ).
 *
 * Hand-off pushes a task to a sandbox's inbox on the same broker, at most
 * once per (namespace, task id):
 *  - Redis: list "agentscaler:inbox:<ns>:<sandbox>", guarded by the key
 *    "agentscaler:handoff:<ns>:<task id>" (holding the sandbox name, EX
 *    marker_ttl) in one script, so a second hand-off of the same task
 *    pushes nothing and reports CONSUMER_HANDOFF_DUPLICATE (same sandbox)
 *    or CONSUMER_HANDOFF_ELSEWHERE (the task went to another sandbox
 *    before: an earlier claim, since gone).
 *  - RabbitMQ: durable queue "agentscaler.inbox.<ns>.<sandbox>" (declared),
 *    persistent message with message_id = task id, confirmed by the broker;
 *    the receiver dedupes by message_id (RabbitMQ has no server-side dedupe).
 *    No marker here (handed_off is NULL): a queue cannot be asked whether
 *    it holds a message, so the dispatcher keeps its own (dispatch_mark.c).
 *
 * A lost connection.  Redis entries stay in the processing list or the
 * pending entries list and can be acked on the next connection.  RabbitMQ
 * takes every unacked message back when the connection goes and
 * redelivers it (redelivered = 1) under a new delivery tag: the messages
 * of the old connection are void (msg_live() says so) and the state
 * callback reports up = 0 before any redelivery is delivered.
 *
 * Oversized messages.  A message larger than max_bytes (consumer_options)
 * is not kept whole: the struct consumer_msg holds only its first
 * CONSUMER_PREFIX_BYTES (body, len), with truncated = 1, its whole size and
 * the SHA-256 of all its bytes, so that the dispatcher dead-letters it
 * (task.tooLarge) with a bounded record.  How much passes through memory on
 * the way differs by source:
 *  - RabbitMQ: the content header gives the size before the body, and body
 *    frames (at most frame_max, 128 KiB) are digested one by one and
 *    dropped: the message is never whole in our memory.
 *  - Redis: hiredis reads a reply whole (its read buffer grows to hold it,
 *    then the reply object copies it), so the message is in memory twice
 *    while the reply is handled; only the prefix outlives it.  A list
 *    entry is acked by a script that finds it in the processing list by
 *    size and SHA-1 (redis.sha1hex()), since LREM would need all of it.
 *
 * Ownership: consumer_new() copies what it needs.  A struct consumer_msg
 * is created by the consumer and belongs to the caller from delivery until
 * it is passed to consumer_ack() or consumer_dead_letter(), which take it
 * back (the consumer frees it once that operation ends).  Completions run
 * exactly once per call that returned 0, never before that call returns,
 * with -AS_ECANCELED when the consumer is destroyed first.  Messages still
 * held by the caller when the consumer is destroyed must be released with
 * consumer_msg_free() (they are redelivered by the broker later), which
 * frees body, priv (one plain allocation or NULL) and the struct.
 */
#ifndef AGENTSCALER_CONSUMER_H
#define AGENTSCALER_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

#include "agentscaler/scalers/scaler.h"

struct ev_loop;
struct consumer;

struct consumer_options {
	const char	*instance;	/* stable name of this agentscaler */
	int		 adopt;		/* redis-list: take other instances'
					   processing lists (see above) */
	int		 window;	/* most outstanding messages; > 0 */
	double		 poll_interval;	/* s, fallback fetch period */
	double		 claim_idle;	/* s, redis-stream XAUTOCLAIM idle */
	double		 marker_ttl;	/* s, life of a hand-off marker */
	size_t		 max_bytes;	/* larger messages are cut (above);
					   0: every message whole */
};

#define CONSUMER_PREFIX_BYTES	4096	/* kept of an oversized message */

struct consumer_msg {
	char		*body;		/* NUL-terminated copy (a prefix when
					   truncated) */
	size_t		 len;		/* bytes, without the NUL */
	uint64_t	 size;		/* of the whole message: len unless
					   truncated */
	int		 truncated;	/* larger than max_bytes: body is at
					   most its first
					   CONSUMER_PREFIX_BYTES */
	unsigned char	 sha256[32];	/* of the whole, when truncated */
	int		 redelivered;	/* recovered or redelivered */
	double		 received;	/* as_mono_now() at dequeue */
	char		 ref[64];	/* entry id or delivery tag, for logs */
	void		*priv;		/* the consumer's */
};

typedef void	 consumer_deliver_fn(struct consumer *, struct consumer_msg *,
		    void *arg);
/* State changes of the connection: up = 1 when consuming, 0 when down. */
typedef void	 consumer_state_fn(struct consumer *, int up,
		    const char *errmsg, void *arg);
typedef void	 consumer_done_fn(int err, const char *errmsg, void *arg);

#define CONSUMER_HANDOFF_DONE		0	/* pushed now */
#define CONSUMER_HANDOFF_DUPLICATE	1	/* pushed before to this sandbox */
#define CONSUMER_HANDOFF_ELSEWHERE	2	/* pushed before to another */
typedef void	 consumer_handoff_fn(int err, int outcome, const char *errmsg,
		    void *arg);
/* yes: 1 when the task's hand-off marker exists. */
typedef void	 consumer_check_fn(int err, int yes, const char *errmsg,
		    void *arg);

struct consumer_type {
	const char	*name;		/* source type it serves */
	/* Checks source + options; optional. */
	int		 (*validate)(const struct scaler_source *,
			    const struct consumer_options *, char *err,
			    size_t errlen);
	struct consumer	*(*create)(struct ev_loop *,
			    const struct scaler_source *,
			    const struct consumer_options *, char *err,
			    size_t errlen);
	/* Starts fetching; deliver runs for each message. */
	int		 (*start)(struct consumer *, consumer_deliver_fn *,
			    consumer_state_fn *, void *arg);
	void		 (*set_window)(struct consumer *, int window);
	int		 (*ack)(struct consumer *, struct consumer_msg *,
			    consumer_done_fn *, void *arg);
	/* record: the JSON dead-letter record (task.h) */
	int		 (*dead_letter)(struct consumer *,
			    struct consumer_msg *, const char *record,
			    size_t len, consumer_done_fn *, void *arg);
	int		 (*handoff)(struct consumer *, const char *ns,
			    const char *sandbox, const char *task_id,
			    const char *body, size_t len,
			    consumer_handoff_fn *, void *arg);
	/*
	 * Optional: whether a task was handed off before (its marker lives);
	 * types that keep no marker leave it NULL.
	 */
	int		 (*handed_off)(struct consumer *, const char *ns,
			    const char *task_id, consumer_check_fn *,
			    void *arg);
	/*
	 * Optional: 0 when msg, delivered by this consumer and still held by
	 * the caller, is void: the connection that delivered it is gone, so
	 * the broker has it back and redelivers it, and no ack or dead letter
	 * of it can be sent (RabbitMQ: delivery tags are per channel).  1
	 * while it is good.  Types whose messages outlive a connection (the
	 * Redis ones: a processing list, a pending entries list) leave it
	 * NULL.
	 */
	int		 (*msg_live)(const struct consumer *,
			    const struct consumer_msg *);
	/* Messages outstanding now (delivered, not yet acked). */
	int		 (*outstanding)(const struct consumer *);
	void		 (*destroy)(struct consumer *);
};

struct consumer {
	const struct consumer_type *type;
};

const struct consumer_type *consumer_type_find(const char *source_type,
	    const char *address);
void	 consumer_msg_free(struct consumer_msg *);
/*
 * A message with a copy of p[0..len): whole when len <= max_bytes or
 * max_bytes is 0, else cut as above (prefix, size, digest).  Never copies
 * more than max(max_bytes, CONSUMER_PREFIX_BYTES) bytes.
 */
struct consumer_msg *consumer_msg_new(const char *p, size_t len,
	    size_t max_bytes);

extern const struct consumer_type consumer_type_redis_list;
extern const struct consumer_type consumer_type_redis_stream;
extern const struct consumer_type consumer_type_rabbitmq;

#endif
