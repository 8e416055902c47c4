/*
 * redis_consume.c: the dispatch-mode consumers of Redis (consumer.h),
 * "redis-list" and "redis-stream", each a client of the endpoint of its
 * server (scalers/redis_endpoint.c): its commands pipeline on the
 * endpoint's one main connection with every other pool's, and its
 * wake-ups come from the endpoint's one keyspace subscriber.
 *
 * No blocking commands.  BLMOVE and XREADGROUP BLOCK would park the shared
 * main connection inside the server until something arrives, and every
 * reply queued behind them (the polls and acks of every other pool on the
 * server) would wait as long.  So fetching is non-blocking (LMOVE, and
 * XREADGROUP without BLOCK), pushed by keyspace notifications on the key
 * (list: classes l and g; stream: t and g), with a poll_interval timer as
 * the fallback when the server refuses CONFIG or an event was missed.
 * Confirmation of the subscription itself also fetches once, since
 * anything pushed before it raised no event we heard.
 *
 * redis-list.  Messages move with LMOVE <queue> <processing> RIGHT LEFT
 * (FIFO with LPUSH producers) into the processing list, by default
 * "<queue>:processing:<instance>"; ack is LREM <processing> 1 <body>.
 * LMOVEs are pipelined within the window, one at first, twice as many after
 * each one that brought a message, up to REDIS_CONSUME_BURST, and fetching
 * stops at the first nil reply until woken again: a trickle costs a few
 * commands per message (our own LMOVEs raise events on the queue too), a
 * backlog drains at full pipeline depth.  Crash recovery: at
 * the first successful connect of this consumer (never after a reconnect,
 * when we still hold those messages), whatever the processing list holds
 * is read with LRANGE and delivered first, oldest (rightmost) first, marked
 * redelivered; the whole list at once, since it holds what a previous run
 * had outstanding.  A dead letter is MULTI; LPUSH "<queue>.rejected"
 * <record>; LREM <processing> 1 <body>; EXEC.
 *
 * Adoption (redis-list with adopt; the daemon always sets it).  A
 * processing list is recovered by its own instance only, and the instance
 * name is the pod's: after a fail-over, or any restart under a Deployment
 * (new pod, new name), the old list would stay orphaned.  So an adopting
 * consumer registers its processing list in the sorted set
 * "agentscaler:processing-lists:<queue>" (score: when last seen in use)
 * and, in one script, moves every entry of the other lists registered
 * there that no live instance holds into its own, oldest first, and
 * delivers them redelivered (the dispatcher then checks the hand-off
 * marker, so a task the old instance handed off is acked, not run twice).
 * It does so right after its own recovery, before its first LMOVE, on
 * every reconnect, and every ten poll intervals (at least every second),
 * which catches an LMOVE of a dead instance that reached the server late.
 * A list found empty that was last seen in use more than
 * REDIS_CONSUME_ADOPT_KEEP ago is forgotten, so pod names of old
 * deployments do not pile up.
 *
 * Liveness.  Without leader election two instances consume at once (two
 * replicas, or a rolling update's old and new pod), and taking a live
 * instance's list would hand its messages to a second dispatcher while
 * the first still works on them.  So the same script sets the heartbeat
 * "agentscaler:processing-alive:<list>" with a TTL of three adoption
 * periods (REDIS_CONSUME_ALIVE_PERIODS), and takes only lists whose
 * heartbeat is gone: an instance dead, or cut off from Redis, for that
 * long.  The TTL runs on the server's clock, so clocks of the instances
 * need not agree, and a destroyed consumer leaves its heartbeat to expire
 * (a pool rebuilt in the same process keeps its list).  Taking a list an
 * instance still holds can only follow a Redis outage of that instance
 * longer than the TTL; its tasks are then guarded as after a fail-over:
 * one claim per task (409 adopts), and the hand-off marker.  The price is
 * that the messages of a dead instance wait up to the TTL (3 s at a poll
 * interval of 100 ms or less, 30 s at 1 s).
 *
 * redis-stream.  XREADGROUP GROUP <group> <instance>.  At every connect the
 * group is made with XGROUP CREATE <stream> <group> $ MKSTREAM (BUSYGROUP,
 * "it exists", is fine): a group created here starts at "$" and never sees
 * entries added before it, so producers that must not lose earlier entries
 * create it themselves first, at 0 (XGROUP CREATE <stream> <group> 0
 * MKSTREAM).  At start our own pending entries are read first (id 0, then
 * from the last id seen, until none is left), marked redelivered; then new
 * ones (">"), COUNT the room in the window.  Every claim_idle/2 seconds,
 * XAUTOCLAIM takes entries idle longer than claim_idle from consumers that
 * died (marked redelivered), from a cursor kept between rounds; it can also
 * take our own idle entries, and those we still hold (queued, delivered or
 * being acked) are skipped rather than delivered twice.  claim_idle 0
 * turns claiming off.  A dead letter is MULTI; XADD "<stream>.rejected" *
 * record <record>; XACK; EXEC.
 *
 * The body of a stream entry is the value of its field source.streamField
 * ("task" by default), else "body", else "data", else the value of its
 * only field.  An entry with
 * none of these and several fields is still delivered, as the JSON object
 * {"streamEntry": "<id>", "fields": {"<name>": "<value>", ...}}: it has no
 * top-level "id", so the dispatcher's parser (task_parse()) refuses it with
 * a reason and it is dead-lettered with its content, rather than dropped
 * here or left pending forever.
 *
 * Redis transactions do not roll back: should "<queue>.rejected" exist
 * with another type, the LPUSH (XADD) of a dead letter fails while the
 * LREM (XACK) still runs.  The completion then reports the error and the
 * log names the key, so the operator learns that the original is gone.
 *
 * Oversized messages (consumer.h).  hiredis has read the reply whole by the
 * time we see it (its read buffer held the message, the reply object holds
 * a copy); redis_consume_msg_new() keeps CONSUMER_PREFIX_BYTES of an entry
 * above max_bytes, digests it, and the reply goes right after.  A list
 * entry cut so cannot be removed with LREM <processing> 1 <body>: its ack
 * and its dead letter are one EVAL that looks the entry up in the
 * processing list by size and SHA-1 (redis.sha1hex(); Redis scripts have
 * no SHA-256) and LREMs it there, the record's LPUSH first in the same
 * script.  The look-up reads the processing list, at most `window` entries
 * plus what recovery left, inside the server.
 *
 * Hand-off (both types) is one EVAL: SET the marker NX EX, and only when
 * that succeeds LPUSH the inbox, so a second hand-off of a task while the
 * marker lives pushes nothing (CONSUMER_HANDOFF_DUPLICATE).
 *
 * Flow control.  outstanding counts messages delivered and not yet acked
 * or dead-lettered.  Fetches ask for no more than the room the window
 * leaves (window - outstanding - queued - in flight); what comes back
 * beyond it anyway (after set_window() lowered the window, or from
 * recovery) waits in a local queue and is delivered as room opens.  A
 * message passed to ack() or dead_letter() stops counting when that
 * operation completes, successfully or not: on failure it is freed anyway
 * and the error reported, but the broker still holds it (in the
 * processing list, or the group's pending entries), so it comes back:
 * at the next start for a list, and for a stream also through XAUTOCLAIM
 * after claim_idle.  Counting it on would shrink the window for good after
 * an outage.  Messages fetched but not yet delivered when the connection
 * drops or the consumer is destroyed are in the same place and come back
 * the same way; a fetch whose reply was lost with the connection too.
 *
 * Lifetimes.  Caller code (deliver, state and completions) runs only from
 * the endpoint's callbacks and our own timers, and from destroy() (the
 * cancellations).  Each such entry point holds a reference on the consumer
 * while it runs, so that a callback may destroy it: destroy() tears
 * everything down at once, and the struct is freed when the last holder
 * lets go.
 */
#include <sys/queue.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <hiredis/hiredis.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/consumer.h"
#include "agentscaler/rt/log.h"
#include "redis_endpoint.h"
#include "agentscaler/scalers/scaler.h"

#define REDIS_CONSUME_LOG	"redis"
#define REDIS_CONSUME_BURST	16	/* LMOVEs in flight at most */
#define REDIS_CONSUME_POLL	1.0	/* s, when poll_interval is 0 */
#define REDIS_CONSUME_MAX_S	31536000.0	/* a year: longest period */
#define REDIS_CONSUME_ADOPT_KEEP 86400	/* s an idle registration lives */
#define REDIS_CONSUME_ALIVE_PERIODS 3	/* heartbeat TTL, adoption periods */
#define REDIS_CONSUME_ALIVE_PREFIX "agentscaler:processing-alive:"

/*
 * KEYS[1] inbox, KEYS[2] marker; ARGV[1] body, ARGV[2] marker TTL in s,
 * ARGV[3] sandbox.  The marker holds the sandbox the task went to: 1 pushed
 * now, 0 pushed before to this sandbox, 2 pushed before to another one.
 */
static const char redis_consume_handoff_lua[] =
    "local prev = redis.call('GET', KEYS[2]) "
    "if prev then if prev == ARGV[3] then return 0 end return 2 end "
    "redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2]) "
    "redis.call('LPUSH', KEYS[1], ARGV[1]) return 1";

/*
 * KEYS[1] the processing list, KEYS[2] (dead letter only) the rejected
 * list; ARGV[1] the entry's size, ARGV[2] its SHA-1 in hex, ARGV[3] (dead
 * letter only) the record.  Pushes the record, then removes the first
 * entry of that size and digest; returns how many it removed (0 or 1).
 */
static const char redis_consume_unlist_lua[] =
    "local size, sha = tonumber(ARGV[1]), ARGV[2] "
    "if ARGV[3] then redis.call('LPUSH', KEYS[2], ARGV[3]) end "
    "for i = 0, redis.call('LLEN', KEYS[1]) - 1 do "
    "local v = redis.call('LINDEX', KEYS[1], i) "
    "if v and #v == size and redis.sha1hex(v) == sha then "
    "return redis.call('LREM', KEYS[1], 1, v) end "
    "end "
    "return 0";

/*
 * KEYS[1] the registry (sorted set), KEYS[2] our processing list; ARGV[1]
 * now (unix s), ARGV[2] how long an unused registration is kept, ARGV[3]
 * the heartbeat's TTL (ms), ARGV[4] the heartbeat keys' prefix.  Renews
 * our heartbeat, then returns the entries moved from the other lists
 * whose heartbeat is gone into ours, oldest first.  pcall: a key of
 * another type is skipped rather than failing the whole script, which
 * would leave what it moved so far undelivered.
 */
static const char redis_consume_adopt_lua[] =
    "local own, now, keep = KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]) "
    "redis.call('ZADD', KEYS[1], now, own) "
    "redis.call('SET', ARGV[4] .. own, now, 'PX', ARGV[3]) "
    "local out = {} "
    "for _, l in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do "
    "if l ~= own and redis.call('EXISTS', ARGV[4] .. l) == 0 then "
    "local n = 0 "
    "while true do "
    "local v = redis.pcall('LMOVE', l, own, 'RIGHT', 'LEFT') "
    "if type(v) ~= 'string' then break end "
    "out[#out + 1] = v n = n + 1 "
    "end "
    "if n > 0 then redis.call('ZADD', KEYS[1], now, l) "
    "elseif tonumber(redis.call('ZSCORE', KEYS[1], l)) < now - keep then "
    "redis.call('ZREM', KEYS[1], l) end "
    "end "
    "end "
    "return out";

enum redis_consume_kind {
	REDIS_CONSUME_LIST,
	REDIS_CONSUME_STREAM
};

enum redis_consume_op {
	REDIS_CONSUME_SETUP,	/* list: LRANGE; stream: XGROUP CREATE */
	REDIS_CONSUME_FETCH,	/* LMOVE; XREADGROUP */
	REDIS_CONSUME_CLAIM,	/* XAUTOCLAIM */
	REDIS_CONSUME_ACK,	/* LREM; XACK */
	REDIS_CONSUME_DEAD,	/* MULTI ... EXEC */
	REDIS_CONSUME_HANDOFF,	/* EVAL */
	REDIS_CONSUME_CHECK,	/* EXISTS of a hand-off marker */
	REDIS_CONSUME_DROP,	/* XACK of an entry deleted from the stream */
	REDIS_CONSUME_ADOPT	/* EVAL: other instances' processing lists */
};

/* Taken from Redis, not delivered yet. */
struct redis_consume_queued {
	TAILQ_ENTRY(redis_consume_queued) entry;
	struct consumer_msg	*m;
};

/* msg->priv of a truncated list message: how to find its entry. */
struct redis_consume_priv {
	char			 sha1[41];
};

/* A stream entry in our hands: queued, delivered, or being acked. */
struct redis_consume_held {
	TAILQ_ENTRY(redis_consume_held) entry;
	char			 id[64];
};

/* One request to the endpoint: the argument of its completion. */
struct redis_consume_req {
	struct redis_consume	*c;
	enum redis_consume_op	 op;
	unsigned		 gen;		/* fetch: wake_gen when sent */
	int			 pending;	/* fetch: own pending entries */
	int			 count;		/* stream fetch: COUNT */
	struct consumer_msg	*m;		/* ack, dead letter */
	consumer_done_fn	*done_fn;
	consumer_handoff_fn	*handoff_fn;
	consumer_check_fn	*check_fn;
	void			*arg;
};

struct redis_consume {
	struct consumer		 base;
	struct redis_endpoint_client cl;
	struct ev_loop		*loop;
	enum redis_consume_kind	 kind;
	char			*key;		/* the list or stream */
	char			*processing;	/* list */
	char			*group;		/* stream */
	char			*field;		/* stream: the body's field */
	char			*instance;
	char			*rejected;	/* "<key>.rejected" */
	char			*registry;	/* adopt: processing lists */
	int			 adopting;	/* adoption in flight */
	int			 adopt_failed;	/* the last one failed */
	int			 window;
	double			 poll_interval;
	double			 claim_idle;
	long			 marker_ttl;	/* s, at least 1 */
	size_t			 max_bytes;	/* larger entries are cut */

	consumer_deliver_fn	*deliver_fn;
	consumer_state_fn	*state_fn;
	void			*arg;
	int			 started;
	int			 linked;	/* main connection up */
	int			 ready;		/* set up on this connection */
	int			 setting_up;	/* setup request in flight */
	int			 recovered;	/* crash recovery done */
	char			 pending_id[64];	/* stream recovery */
	size_t			 nrecovered;	/* stream: entries so far */
	int			 empty;		/* the last fetch found none */
	int			 burst;		/* most LMOVEs in flight */
	unsigned		 wake_gen;	/* wake-ups so far */
	int			 fetching;	/* LMOVEs, XREADGROUP COUNT */
	int			 claiming;	/* XAUTOCLAIM COUNT in flight */
	char			 cursor[64];	/* XAUTOCLAIM's */
	int			 outstanding;
	int			 nqueued;
	TAILQ_HEAD(, redis_consume_queued) queued;
	TAILQ_HEAD(, redis_consume_held) held;
	unsigned long long	 seq;		/* refs of list messages */

	int			 told;		/* state told: -1 none */
	int			 want;		/* state to tell */
	char			 why[224];	/* when want is 0 */

	ev_timer		 poll_timer;
	ev_timer		 claim_timer;
	ev_timer		 kick_timer;
	ev_timer		 adopt_timer;
	unsigned		 refs;
	int			 destroyed;
};

static int	 redis_consume_list_validate(const struct scaler_source *,
		    const struct consumer_options *, char *, size_t);
static int	 redis_consume_stream_validate(const struct scaler_source *,
		    const struct consumer_options *, char *, size_t);
static struct consumer *redis_consume_list_create(struct ev_loop *,
		    const struct scaler_source *,
		    const struct consumer_options *, char *, size_t);
static struct consumer *redis_consume_stream_create(struct ev_loop *,
		    const struct scaler_source *,
		    const struct consumer_options *, char *, size_t);
static int	 redis_consume_start(struct consumer *, consumer_deliver_fn *,
		    consumer_state_fn *, void *);
static void	 redis_consume_set_window(struct consumer *, int);
static int	 redis_consume_ack(struct consumer *, struct consumer_msg *,
		    consumer_done_fn *, void *);
static int	 redis_consume_dead_letter(struct consumer *,
		    struct consumer_msg *, const char *, size_t,
		    consumer_done_fn *, void *);
static int	 redis_consume_handed_off(struct consumer *, const char *,
		    const char *, consumer_check_fn *, void *);
static int	 redis_consume_handoff(struct consumer *, const char *,
		    const char *, const char *, const char *, size_t,
		    consumer_handoff_fn *, void *);
static int	 redis_consume_outstanding(const struct consumer *);
static void	 redis_consume_destroy(struct consumer *);

static void	 redis_consume_reply(int, const redisReply *, const char *,
		    void *);
static void	 redis_consume_fetch(struct redis_consume *);
static void	 redis_consume_adopt(struct redis_consume *);

const struct consumer_type consumer_type_redis_list = {
	.name = "redis-list",
	.validate = redis_consume_list_validate,
	.create = redis_consume_list_create,
	.start = redis_consume_start,
	.set_window = redis_consume_set_window,
	.ack = redis_consume_ack,
	.dead_letter = redis_consume_dead_letter,
	.handoff = redis_consume_handoff,
	.handed_off = redis_consume_handed_off,
	.outstanding = redis_consume_outstanding,
	.destroy = redis_consume_destroy,
};

const struct consumer_type consumer_type_redis_stream = {
	.name = "redis-stream",
	.validate = redis_consume_stream_validate,
	.create = redis_consume_stream_create,
	.start = redis_consume_start,
	.set_window = redis_consume_set_window,
	.ack = redis_consume_ack,
	.dead_letter = redis_consume_dead_letter,
	.handoff = redis_consume_handoff,
	.handed_off = redis_consume_handed_off,
	.outstanding = redis_consume_outstanding,
	.destroy = redis_consume_destroy,
};

/* Validation. */

static int
redis_consume_period_ok(double v)
{
	return (isfinite(v) && v >= 0 && v <= REDIS_CONSUME_MAX_S);
}

static int
redis_consume_validate(enum redis_consume_kind kind,
    const struct scaler_source *src, const struct consumer_options *opt,
    char *err, size_t errlen)
{
	const char	*what = kind == REDIS_CONSUME_LIST ? "redis-list" :
	    "redis-stream";
	const char	*p;
	int		 rc;

	if ((rc = redis_endpoint_validate(what, src, err, errlen)) != 0)
		return (rc);
	if (src->queue == NULL || *src->queue == '\0') {
		snprintf(err, errlen, "%s needs a queue (the %s key)", what,
		    kind == REDIS_CONSUME_LIST ? "list" : "stream");
		return (-AS_EINVAL);
	}
	if (kind == REDIS_CONSUME_LIST && src->processing != NULL &&
	    *src->processing == '\0') {
		snprintf(err, errlen, "the processing list name is empty");
		return (-AS_EINVAL);
	}
	if (kind == REDIS_CONSUME_STREAM) {
		if (src->consumer_group == NULL ||
		    *src->consumer_group == '\0') {
			snprintf(err, errlen, "redis-stream needs a "
			    "consumerGroup");
			return (-AS_EINVAL);
		}
		if (src->processing != NULL) {
			snprintf(err, errlen, "processingList is for "
			    "redis-list; a stream's in-flight work is its "
			    "group's pending entries");
			return (-AS_EINVAL);
		}
	}
	if (opt == NULL) {
		snprintf(err, errlen, "%s consumer: no options", what);
		return (-AS_EINVAL);
	}
	if (opt->window <= 0) {
		snprintf(err, errlen, "%s consumer: window must be at least 1, "
		    "not %d", what, opt->window);
		return (-AS_EINVAL);
	}
	if (opt->instance == NULL || *opt->instance == '\0') {
		snprintf(err, errlen, "%s consumer: the instance name is "
		    "empty", what);
		return (-AS_EINVAL);
	}
	for (p = opt->instance; *p != '\0'; p++) {
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
		    *p == ':' || *p == '-')) {
			snprintf(err, errlen, "%s consumer: the instance name "
			    "may hold only A-Z a-z 0-9 . _ : - (found byte "
			    "0x%02x)", what, (unsigned char)*p);
			return (-AS_EINVAL);
		}
	}
	if (!redis_consume_period_ok(opt->poll_interval) ||
	    !redis_consume_period_ok(opt->claim_idle) ||
	    !redis_consume_period_ok(opt->marker_ttl)) {
		snprintf(err, errlen, "%s consumer: poll interval, claim idle "
		    "time and marker TTL must be from 0 to %.0f s", what,
		    REDIS_CONSUME_MAX_S);
		return (-AS_EINVAL);
	}
	return (0);
}

static int
redis_consume_list_validate(const struct scaler_source *src,
    const struct consumer_options *opt, char *err, size_t errlen)
{
	return (redis_consume_validate(REDIS_CONSUME_LIST, src, opt, err,
	    errlen));
}

static int
redis_consume_stream_validate(const struct scaler_source *src,
    const struct consumer_options *opt, char *err, size_t errlen)
{
	return (redis_consume_validate(REDIS_CONSUME_STREAM, src, opt, err,
	    errlen));
}

/* References (see "Lifetimes" at the top). */

static void
redis_consume_hold(struct redis_consume *c)
{
	c->refs++;
}

static void
redis_consume_release(struct redis_consume *c)
{
	if (--c->refs > 0)
		return;
	free(c->key);
	free(c->processing);
	free(c->group);
	free(c->field);
	free(c->instance);
	free(c->rejected);
	free(c->registry);
	free(c);
}

/* Held stream entries. */

static struct redis_consume_held *
redis_consume_held_find(struct redis_consume *c, const char *id)
{
	struct redis_consume_held *h;

	TAILQ_FOREACH(h, &c->held, entry) {
		if (strcmp(h->id, id) == 0)
			return (h);
	}
	return (NULL);
}

static void
redis_consume_held_drop(struct redis_consume *c, const char *id)
{
	struct redis_consume_held *h;

	if ((h = redis_consume_held_find(c, id)) != NULL) {
		TAILQ_REMOVE(&c->held, h, entry);
		free(h);
	}
}

/* Messages. */

/*
 * A message from p[0..len) (in a reply, freed after): whole, or cut when
 * above max_bytes (see the top of the file).
 */
static struct consumer_msg *
redis_consume_msg_new(const struct redis_consume *c, const char *p,
    size_t len, int redelivered, const char *ref)
{
	struct consumer_msg *m;
	struct redis_consume_priv *pv;

	m = consumer_msg_new(p, len, c->max_bytes);
	m->redelivered = redelivered;
	as_strlcpy(m->ref, ref, sizeof m->ref);
	if (m->truncated && c->kind == REDIS_CONSUME_LIST) {
		pv = xmalloc(sizeof *pv);
		as_sha1_hex(p, len, pv->sha1);
		m->priv = pv;
	}
	return (m);
}

static void
redis_consume_enqueue(struct redis_consume *c, struct consumer_msg *m)
{
	struct redis_consume_queued *q;
	struct redis_consume_held *h;

	q = xcalloc(1, sizeof *q);
	q->m = m;
	TAILQ_INSERT_TAIL(&c->queued, q, entry);
	c->nqueued++;
	if (c->kind == REDIS_CONSUME_STREAM) {
		h = xcalloc(1, sizeof *h);
		as_strlcpy(h->id, m->ref, sizeof h->id);
		TAILQ_INSERT_TAIL(&c->held, h, entry);
	}
}

/* Appends s as a JSON string: quotes, backslashes and controls escaped. */
static void
redis_consume_json_str(struct as_buf *b, const char *s, size_t len)
{
	size_t		 i, run = 0;
	unsigned char	 ch;

	as_buf_printf(b, "\"");
	for (i = 0; i < len; i++) {
		ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		if (i > run)
			as_buf_printf(b, "%.*s", (int)(i - run), s + run);
		if (ch == '"' || ch == '\\')
			as_buf_printf(b, "\\%c", ch);
		else
			as_buf_printf(b, "\\u%04x", ch);
		run = i + 1;
	}
	if (len > run)
		as_buf_printf(b, "%.*s", (int)(len - run), s + run);
	as_buf_printf(b, "\"");
}

/*
 * The body of a stream entry (see the top of the file): fields is the
 * entry's [name, value, ...] array.  Returns a field's value inside the
 * reply, or the JSON object built in b (the caller frees b->p), and its
 * length.  That object is built whole before it is cut, so its fields
 * pass through memory once more.
 */
static const char *
redis_consume_stream_body(const char *field, const char *id,
    const redisReply *fields, struct as_buf *b, size_t *lenp)
{
	const char	*names[] = { field, "body", "data" };
	const redisReply *k, *v;
	size_t		 i, j;

	for (i = 0; i < AS_ARRAY_SIZE(names); i++) {
		for (j = 0; j + 1 < fields->elements; j += 2) {
			k = fields->element[j];
			v = fields->element[j + 1];
			if (k->type == REDIS_REPLY_STRING &&
			    v->type == REDIS_REPLY_STRING &&
			    k->len == strlen(names[i]) &&
			    memcmp(k->str, names[i], k->len) == 0) {
				*lenp = v->len;
				return (v->str);
			}
		}
	}
	if (fields->elements == 2 &&
	    fields->element[1]->type == REDIS_REPLY_STRING) {
		v = fields->element[1];
		*lenp = v->len;
		return (v->str);
	}
	as_buf_printf(b, "{\"streamEntry\":");
	redis_consume_json_str(b, id, strlen(id));
	as_buf_printf(b, ",\"fields\":{");
	for (j = 0; j + 1 < fields->elements; j += 2) {
		k = fields->element[j];
		v = fields->element[j + 1];
		if (j > 0)
			as_buf_printf(b, ",");
		if (k->type == REDIS_REPLY_STRING)
			redis_consume_json_str(b, k->str, k->len);
		else
			as_buf_printf(b, "\"\"");
		as_buf_printf(b, ":");
		if (v->type == REDIS_REPLY_STRING)
			redis_consume_json_str(b, v->str, v->len);
		else
			as_buf_printf(b, "null");
	}
	as_buf_printf(b, "}}");
	*lenp = b->len;
	return (b->p);
}

/* State, delivery and fetching. */

static void
redis_consume_down(struct redis_consume *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The consumer cannot consume: say why (once, from pump()). */
static void
redis_consume_down(struct redis_consume *c, const char *fmt, ...)
{
	va_list	 ap;
	char	 text[192];

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	redis_endpoint_errmsg(c->why, sizeof c->why, c->cl.ep, "%s", text);
	if (c->want != 0)
		log_warn(REDIS_CONSUME_LOG, "%s", c->why);
	c->want = 0;
}

/*
 * Runs what is due, in order: a state change, deliveries while the window
 * has room, then more fetching.  Every entry point ends with it; it stops
 * as soon as a callback destroyed the consumer.
 */
static void
redis_consume_pump(struct redis_consume *c)
{
	struct redis_consume_queued *q;
	struct consumer_msg *m;

	if (c->destroyed || !c->started)
		return;
	if (c->want != c->told && c->want >= 0) {
		c->told = c->want;
		if (c->state_fn != NULL) {
			c->state_fn(&c->base, c->told, c->told ? NULL : c->why,
			    c->arg);
			if (c->destroyed)
				return;
		}
	}
	while (c->outstanding < c->window &&
	    (q = TAILQ_FIRST(&c->queued)) != NULL) {
		TAILQ_REMOVE(&c->queued, q, entry);
		c->nqueued--;
		m = q->m;
		free(q);
		c->outstanding++;
		c->deliver_fn(&c->base, m, c->arg);
		if (c->destroyed)
			return;
	}
	redis_consume_fetch(c);
}

static struct redis_consume_req *
redis_consume_req_new(struct redis_consume *c, enum redis_consume_op op)
{
	struct redis_consume_req *req;

	req = xcalloc(1, sizeof *req);
	req->c = c;
	req->op = op;
	return (req);
}

/*
 * Sets the consumer up on a fresh connection: a list reads its processing
 * list the first time (recovery), a stream makes its group.
 */
static void
redis_consume_setup(struct redis_consume *c)
{
	struct redis_consume_req *req;
	int		 rc;

	if (c->destroyed || !c->started || !c->linked || c->ready ||
	    c->setting_up)
		return;
	if (c->kind == REDIS_CONSUME_LIST && c->recovered) {
		redis_consume_adopt(c);	/* before the first LMOVE */
		c->ready = 1;
		c->want = 1;
		return;
	}
	req = redis_consume_req_new(c, REDIS_CONSUME_SETUP);
	if (c->kind == REDIS_CONSUME_LIST)
		rc = redis_endpoint_command(&c->cl, redis_consume_reply, req,
		    "LRANGE %b 0 -1", c->processing, strlen(c->processing));
	else
		rc = redis_endpoint_command(&c->cl, redis_consume_reply, req,
		    "XGROUP CREATE %b %b $ MKSTREAM", c->key, strlen(c->key),
		    c->group, strlen(c->group));
	if (rc != 0)
		free(req);
	else
		c->setting_up = 1;
}

/* The room the window leaves for more fetching. */
static int
redis_consume_room(const struct redis_consume *c)
{
	return (c->window - c->outstanding - c->nqueued - c->fetching -
	    c->claiming);
}

/* Queues fetches for the room in the window; no caller code runs here. */
static void
redis_consume_fetch(struct redis_consume *c)
{
	struct redis_consume_req *req;
	char		 cause[160];
	int		 room, rc;

	if (c->destroyed || !c->started || !c->ready || c->empty)
		return;
	/* As a scaler's polls (redis_source.c): nothing taken, the reason. */
	if (c->cl.keyspace == SCALER_KEYSPACE_REQUIRE &&
	    redis_endpoint_client_push_refused(&c->cl, cause, sizeof cause)) {
		redis_consume_down(c, "keyspaceNotifications is require, and "
		    "the server's notify-keyspace-events lacks what this "
		    "source needs: %s", cause);
		return;
	}
	room = redis_consume_room(c);
	if (c->kind == REDIS_CONSUME_LIST) {
		while (room > 0 && c->fetching < c->burst) {
			req = redis_consume_req_new(c, REDIS_CONSUME_FETCH);
			req->gen = c->wake_gen;
			if (redis_endpoint_command(&c->cl, redis_consume_reply,
			    req, "LMOVE %b %b RIGHT LEFT", c->key,
			    strlen(c->key), c->processing,
			    strlen(c->processing)) != 0) {
				free(req);
				return;
			}
			c->fetching++;
			room--;
		}
		return;
	}
	if (c->fetching > 0 || room <= 0)
		return;
	req = redis_consume_req_new(c, REDIS_CONSUME_FETCH);
	req->gen = c->wake_gen;
	req->pending = !c->recovered;
	req->count = room;
	rc = redis_endpoint_command(&c->cl, redis_consume_reply, req,
	    "XREADGROUP GROUP %b %b COUNT %d STREAMS %b %s", c->group,
	    strlen(c->group), c->instance, strlen(c->instance), room, c->key,
	    strlen(c->key), req->pending ? c->pending_id : ">");
	if (rc != 0) {
		free(req);
		return;
	}
	c->fetching = room;
}

/* XAUTOCLAIM round, for the room in the window. */
static void
redis_consume_claim(struct redis_consume *c)
{
	struct redis_consume_req *req;
	long long	 idle_ms;
	int		 room;

	if (c->destroyed || !c->ready || !c->recovered || c->claiming > 0)
		return;
	if ((room = redis_consume_room(c)) <= 0)
		return;
	idle_ms = (long long)(c->claim_idle * 1000.0);
	req = redis_consume_req_new(c, REDIS_CONSUME_CLAIM);
	if (redis_endpoint_command(&c->cl, redis_consume_reply, req,
	    "XAUTOCLAIM %b %b %b %lld %s COUNT %d", c->key, strlen(c->key),
	    c->group, strlen(c->group), c->instance, strlen(c->instance),
	    idle_ms, c->cursor, room) != 0) {
		free(req);
		return;
	}
	c->claiming = room;
}

/* Replies: setup and fetching. */

/*
 * Queues the string elements of an array reply as redelivered messages
 * with refs "<what>-<n>", last element first when reverse; returns how
 * many.
 */
static size_t
redis_consume_take_all(struct redis_consume *c, const redisReply *r,
    int reverse, const char *what)
{
	const redisReply *e;
	char		 ref[64];
	size_t		 i, n = 0;

	for (i = 0; i < r->elements; i++) {
		e = r->element[reverse ? r->elements - 1 - i : i];
		if (e->type != REDIS_REPLY_STRING)
			continue;
		snprintf(ref, sizeof ref, "%s-%llu", what, ++c->seq);
		redis_consume_enqueue(c, redis_consume_msg_new(c, e->str,
		    e->len, 1, ref));
		n++;
	}
	return (n);
}

static void
redis_consume_took_range(struct redis_consume *c, const redisReply *r)
{
	size_t		 n;

	if (r->type != REDIS_REPLY_ARRAY) {
		redis_consume_down(c, "LRANGE %.60s: %.100s", c->processing,
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		return;
	}
	/* LMOVE ... LEFT pushed on the left: the oldest is on the right. */
	n = redis_consume_take_all(c, r, 1, "recovered");
	if (n > 0)
		log_info(REDIS_CONSUME_LOG, "%s: recovering %zu message%s "
		    "left in %s by an earlier run", redis_endpoint_name(
		    c->cl.ep), n, n == 1 ? "" : "s", c->processing);
	c->recovered = 1;
	redis_consume_adopt(c);		/* queued behind our own, older */
	c->ready = 1;
	c->want = 1;
}

/*
 * Runs the adoption script (see the top of the file) unless one is in
 * flight; its entries are queued as they come back.
 */
static void
redis_consume_adopt(struct redis_consume *c)
{
	struct redis_consume_req *req;

	if (c->registry == NULL || c->destroyed || !c->started || !c->linked ||
	    c->adopting || !c->recovered)
		return;
	req = redis_consume_req_new(c, REDIS_CONSUME_ADOPT);
	if (redis_endpoint_command(&c->cl, redis_consume_reply, req,
	    "EVAL %s 2 %b %b %lld %d %lld %s", redis_consume_adopt_lua,
	    c->registry, strlen(c->registry), c->processing,
	    strlen(c->processing), (long long)as_wall_now(),
	    REDIS_CONSUME_ADOPT_KEEP, (long long)(c->adopt_timer.repeat *
	    REDIS_CONSUME_ALIVE_PERIODS * 1000), REDIS_CONSUME_ALIVE_PREFIX) !=
	    0) {
		free(req);
		return;
	}
	c->adopting = 1;
}

static void
redis_consume_adopted(struct redis_consume *c, const redisReply *r)
{
	size_t		 n;

	if (r->type != REDIS_REPLY_ARRAY) {
		if (!c->adopt_failed)
			log_warn(REDIS_CONSUME_LOG, "%s: cannot take over the "
			    "processing lists registered in %s: %.100s",
			    redis_endpoint_name(c->cl.ep), c->registry,
			    r->type == REDIS_REPLY_ERROR ? r->str :
			    "unexpected reply");
		c->adopt_failed = 1;
		return;
	}
	c->adopt_failed = 0;
	n = redis_consume_take_all(c, r, 0, "adopted");	/* oldest first */
	if (n > 0)
		log_info(REDIS_CONSUME_LOG, "%s: took over %zu message%s left "
		    "in flight by other instances of %s (now in %s)",
		    redis_endpoint_name(c->cl.ep), n, n == 1 ? "" : "s",
		    c->key, c->processing);
}

static void
redis_consume_made_group(struct redis_consume *c, const redisReply *r)
{
	if (r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "BUSYGROUP", 9) != 0) {
		redis_consume_down(c, "XGROUP CREATE %.60s %.60s: %.100s",
		    c->key, c->group, r->str);
		return;
	}
	if (r->type == REDIS_REPLY_STATUS)
		log_info(REDIS_CONSUME_LOG, "%s: created consumer group %s on "
		    "%s at $ (new entries only)", redis_endpoint_name(c->cl.ep),
		    c->group, c->key);
	c->ready = 1;
	c->want = 1;
}

static void
redis_consume_took_lmove(struct redis_consume *c,
    const struct redis_consume_req *req, const redisReply *r)
{
	char	 ref[64];

	if (r->type == REDIS_REPLY_STRING) {
		snprintf(ref, sizeof ref, "lmove-%llu", ++c->seq);
		redis_consume_enqueue(c, redis_consume_msg_new(c, r->str,
		    r->len, 0, ref));
		c->want = 1;
		if (c->burst < REDIS_CONSUME_BURST)
			c->burst *= 2;
	} else if (r->type == REDIS_REPLY_NIL) {
		/* Empty, unless a wake-up came after this LMOVE went out. */
		if (req->gen == c->wake_gen)
			c->empty = 1;
		c->burst = 1;
		c->want = 1;
	} else {
		redis_consume_down(c, "LMOVE %.60s %.60s: %.100s", c->key,
		    c->processing, r->type == REDIS_REPLY_ERROR ? r->str :
		    "unexpected reply");
		c->ready = 0;	/* the poll timer or a wake-up tries again */
	}
}

/* An entry whose fields are gone (XDEL, trimming): ack it, log it. */
static void
redis_consume_drop(struct redis_consume *c, const char *id)
{
	struct redis_consume_req *req;

	log_warn(REDIS_CONSUME_LOG, "%s: stream %s entry %s was deleted while "
	    "pending; acknowledging it", redis_endpoint_name(c->cl.ep), c->key,
	    id);
	req = redis_consume_req_new(c, REDIS_CONSUME_DROP);
	if (redis_endpoint_command(&c->cl, redis_consume_reply, req,
	    "XACK %b %b %s", c->key, strlen(c->key), c->group,
	    strlen(c->group), id) != 0)
		free(req);
}

/*
 * Entries [[id, [field, value, ...]], ...] from XREADGROUP or XAUTOCLAIM;
 * returns how many there were (delivered or not).
 */
static size_t
redis_consume_took_entries(struct redis_consume *c, const redisReply *r,
    int redelivered, int skip_held, char *last, size_t lastlen)
{
	const redisReply *e, *id;
	const char	*body;
	struct as_buf	 b;
	char		 idbuf[64];
	size_t		 i, len;

	if (r->type != REDIS_REPLY_ARRAY)
		return (0);
	for (i = 0; i < r->elements; i++) {
		e = r->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING ||
		    e->element[0]->len >= sizeof idbuf)
			continue;
		id = e->element[0];
		memcpy(idbuf, id->str, id->len);
		idbuf[id->len] = '\0';
		if (last != NULL)
			as_strlcpy(last, idbuf, lastlen);
		if (e->element[1]->type != REDIS_REPLY_ARRAY) {
			redis_consume_drop(c, idbuf);
			continue;
		}
		if (skip_held && redis_consume_held_find(c, idbuf) != NULL)
			continue;
		memset(&b, 0, sizeof b);
		body = redis_consume_stream_body(c->field, idbuf,
		    e->element[1], &b, &len);
		redis_consume_enqueue(c, redis_consume_msg_new(c, body, len,
		    redelivered, idbuf));
		free(b.p);
	}
	return (r->elements);
}

/* NOGROUP: the stream or its group went away; make it again. */
static int
redis_consume_nogroup(struct redis_consume *c, const redisReply *r)
{
	if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "NOGROUP", 7) != 0)
		return (0);
	log_warn(REDIS_CONSUME_LOG, "%s: consumer group %s of %s is gone; "
	    "creating it again at $", redis_endpoint_name(c->cl.ep), c->group,
	    c->key);
	c->ready = 0;
	redis_consume_setup(c);
	return (1);
}

static void
redis_consume_took_xread(struct redis_consume *c,
    const struct redis_consume_req *req, const redisReply *r)
{
	const redisReply *s = NULL;
	size_t		 n = 0;

	if (redis_consume_nogroup(c, r))
		return;
	if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
	    r->element[0]->type == REDIS_REPLY_ARRAY &&
	    r->element[0]->elements == 2)
		s = r->element[0]->element[1];
	else if (r->type != REDIS_REPLY_NIL) {
		redis_consume_down(c, "XREADGROUP %.60s %.60s: %.100s", c->key,
		    c->group, r->type == REDIS_REPLY_ERROR ? r->str :
		    "unexpected reply");
		c->ready = 0;
		return;
	}
	c->want = 1;
	if (s != NULL)
		n = redis_consume_took_entries(c, s, req->pending, 0,
		    req->pending ? c->pending_id : NULL, sizeof c->pending_id);
	if (req->pending) {
		c->nrecovered += n;
		if (n == 0 && !c->recovered) {
			c->recovered = 1;	/* now ">" */
			if (c->nrecovered > 0)
				log_info(REDIS_CONSUME_LOG, "%s: recovered "
				    "%zu pending entr%s of consumer %s in %s",
				    redis_endpoint_name(c->cl.ep),
				    c->nrecovered, c->nrecovered == 1 ? "y" :
				    "ies", c->instance, c->key);
		}
	} else if ((int)n < req->count && req->gen == c->wake_gen)
		c->empty = 1;	/* it gave all it had */
}

static void
redis_consume_took_claim(struct redis_consume *c, const redisReply *r)
{
	if (redis_consume_nogroup(c, r))
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[0]->len >= sizeof c->cursor) {
		redis_consume_down(c, "XAUTOCLAIM %.60s %.60s: %.100s", c->key,
		    c->group, r->type == REDIS_REPLY_ERROR ? r->str :
		    "unexpected reply");
		c->ready = 0;
		return;
	}
	memcpy(c->cursor, r->element[0]->str, r->element[0]->len);
	c->cursor[r->element[0]->len] = '\0';
	(void)redis_consume_took_entries(c, r->element[1], 1, 1, NULL, 0);
}

/* Replies: the caller's operations. */

/* The outcome of an ack, dead letter or hand-off as (err, errmsg). */
static int
redis_consume_outcome(struct redis_consume *c, int err, const redisReply *r,
    const char *errmsg, const char *what, char *msg, size_t msglen)
{
	const redisReply *e;
	size_t		 i;

	if (err != 0) {
		as_strlcpy(msg, errmsg, msglen);
		return (err);
	}
	if (r->type == REDIS_REPLY_ERROR) {
		redis_endpoint_errmsg(msg, msglen, c->cl.ep, "%s: %.100s",
		    what, r->str);
		return (redis_endpoint_reply_err(r->str));
	}
	if (r->type == REDIS_REPLY_ARRAY) {
		/* EXEC: a command that failed inside the transaction. */
		for (i = 0; i < r->elements; i++) {
			e = r->element[i];
			if (e->type == REDIS_REPLY_ERROR) {
				redis_endpoint_errmsg(msg, msglen, c->cl.ep,
				    "%s: command %zu of the transaction failed "
				    "(the others ran): %.100s", what, i + 1,
				    e->str);
				return (-AS_EPROTO);
			}
		}
		return (0);
	}
	if (r->type == REDIS_REPLY_INTEGER)
		return (0);
	redis_endpoint_errmsg(msg, msglen, c->cl.ep, "%s: unexpected reply "
	    "type %d", what, r->type);
	return (-AS_EPROTO);
}

static void
redis_consume_finished(struct redis_consume *c, struct redis_consume_req *req,
    int err, const redisReply *r, const char *errmsg)
{
	struct consumer_msg *m = req->m;
	const char	*what;
	char		 msg[224] = "";
	int		 e;

	if (req->op == REDIS_CONSUME_ACK)
		what = c->kind == REDIS_CONSUME_LIST ? "ack (LREM)" :
		    "ack (XACK)";
	else
		what = "dead letter";
	e = redis_consume_outcome(c, err, r, errmsg, what, msg, sizeof msg);
	if (e == 0 && req->op == REDIS_CONSUME_ACK &&
	    r->type == REDIS_REPLY_INTEGER && r->integer == 0)
		log_warn(REDIS_CONSUME_LOG, "%s: ack of %s found nothing to "
		    "remove in %s (acked before, or the server lost it)",
		    redis_endpoint_name(c->cl.ep), m->ref,
		    c->kind == REDIS_CONSUME_LIST ? c->processing : c->key);
	if (e != 0 && req->op == REDIS_CONSUME_DEAD && r != NULL &&
	    r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_ERROR &&
	    r->element[1]->type != REDIS_REPLY_ERROR)
		log_error(REDIS_CONSUME_LOG, "%s: dead letter of %s: %s "
		    "exists and is not a %s; the original was removed without "
		    "its record", redis_endpoint_name(c->cl.ep), m->ref,
		    c->rejected, c->kind == REDIS_CONSUME_LIST ? "list" :
		    "stream");
	if (c->outstanding > 0 && !c->destroyed)
		c->outstanding--;
	if (c->kind == REDIS_CONSUME_STREAM)
		redis_consume_held_drop(c, m->ref);
	consumer_msg_free(m);
	req->done_fn(e, e != 0 ? msg : NULL, req->arg);
}

static void
redis_consume_handed(struct redis_consume *c, struct redis_consume_req *req,
    int err, const redisReply *r, const char *errmsg)
{
	char	 msg[224] = "";
	int	 e, outcome = CONSUMER_HANDOFF_DONE;

	e = redis_consume_outcome(c, err, r, errmsg, "hand-off (EVAL)", msg,
	    sizeof msg);
	if (e == 0 && r->type != REDIS_REPLY_INTEGER) {
		redis_endpoint_errmsg(msg, sizeof msg, c->cl.ep, "hand-off "
		    "(EVAL): unexpected reply type %d", r->type);
		e = -AS_EPROTO;
	}
	if (e == 0 && r->integer == 0)
		outcome = CONSUMER_HANDOFF_DUPLICATE;
	else if (e == 0 && r->integer == 2)
		outcome = CONSUMER_HANDOFF_ELSEWHERE;
	req->handoff_fn(e, outcome, e != 0 ? msg : NULL, req->arg);
}

static void
redis_consume_checked(struct redis_consume *c, struct redis_consume_req *req,
    int err, const redisReply *r, const char *errmsg)
{
	char	 msg[224] = "";
	int	 e;

	e = redis_consume_outcome(c, err, r, errmsg, "hand-off check (EXISTS)",
	    msg, sizeof msg);
	if (e == 0 && r->type != REDIS_REPLY_INTEGER) {
		redis_endpoint_errmsg(msg, sizeof msg, c->cl.ep, "hand-off "
		    "check (EXISTS): unexpected reply type %d", r->type);
		e = -AS_EPROTO;
	}
	req->check_fn(e, e == 0 && r->integer > 0, e != 0 ? msg : NULL,
	    req->arg);
}

/* Every completion of the endpoint lands here. */
static void
redis_consume_reply(int err, const redisReply *r, const char *errmsg,
    void *arg)
{
	struct redis_consume_req *req = arg;
	struct redis_consume *c = req->c;

	redis_consume_hold(c);
	switch (req->op) {
	case REDIS_CONSUME_SETUP:
		c->setting_up = 0;
		if (err != 0 || c->destroyed)
			break;
		if (c->kind == REDIS_CONSUME_LIST)
			redis_consume_took_range(c, r);
		else
			redis_consume_made_group(c, r);
		break;
	case REDIS_CONSUME_FETCH:
		if (c->kind == REDIS_CONSUME_LIST)
			c->fetching--;
		else
			c->fetching = 0;
		/* A lost connection is told by the link event. */
		if (err != 0 || c->destroyed)
			break;
		if (c->kind == REDIS_CONSUME_LIST)
			redis_consume_took_lmove(c, req, r);
		else
			redis_consume_took_xread(c, req, r);
		break;
	case REDIS_CONSUME_CLAIM:
		c->claiming = 0;
		if (err == 0 && !c->destroyed)
			redis_consume_took_claim(c, r);
		break;
	case REDIS_CONSUME_ACK:
	case REDIS_CONSUME_DEAD:
		redis_consume_finished(c, req, err, r, errmsg);
		break;
	case REDIS_CONSUME_HANDOFF:
		redis_consume_handed(c, req, err, r, errmsg);
		break;
	case REDIS_CONSUME_CHECK:
		redis_consume_checked(c, req, err, r, errmsg);
		break;
	case REDIS_CONSUME_DROP:
		break;
	case REDIS_CONSUME_ADOPT:
		c->adopting = 0;
		if (err == 0 && !c->destroyed)
			redis_consume_adopted(c, r);
		break;
	}
	free(req);
	redis_consume_pump(c);
	redis_consume_release(c);
}

/* Events and timers. */

static void
redis_consume_link(struct redis_endpoint_client *cl, int event,
    const char *errmsg, void *arg)
{
	struct redis_consume *c = arg;

	(void)cl;
	redis_consume_hold(c);
	switch (event) {
	case REDIS_ENDPOINT_LINK_UP:
		c->linked = 1;
		c->ready = 0;
		c->empty = 0;
		redis_consume_setup(c);
		break;
	case REDIS_ENDPOINT_LINK_DOWN:
		c->linked = 0;
		c->ready = 0;
		as_strlcpy(c->why, errmsg, sizeof c->why);
		c->want = 0;
		break;
	case REDIS_ENDPOINT_LINK_PUSH:
		c->empty = 0;
		c->wake_gen++;
		break;
	}
	redis_consume_pump(c);
	redis_consume_release(c);
}

/* Something happened to the key (or the poll timer fired): look again. */
static void
redis_consume_woken(struct redis_consume *c)
{
	redis_consume_hold(c);
	c->empty = 0;
	c->wake_gen++;
	redis_consume_setup(c);
	redis_consume_pump(c);
	redis_consume_release(c);
}

static void
redis_consume_wake(struct redis_endpoint_client *cl, void *arg)
{
	(void)cl;
	redis_consume_woken(arg);
}

static void
redis_consume_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	redis_consume_woken(w->data);
}

static void
redis_consume_claim_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	redis_consume_claim(w->data);
}

static void
redis_consume_adopt_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	redis_consume_adopt(w->data);
}

static void
redis_consume_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_consume *c = w->data;

	(void)loop;
	(void)revents;
	redis_consume_hold(c);
	redis_consume_pump(c);
	redis_consume_release(c);
}

/* The interface. */

static struct consumer *
redis_consume_create(enum redis_consume_kind kind, struct ev_loop *loop,
    const struct scaler_source *src, const struct consumer_options *opt,
    char *err, size_t errlen)
{
	struct redis_consume *c;
	double		 ttl, every;

	if (redis_consume_validate(kind, src, opt, err, errlen) != 0)
		return (NULL);
	c = xcalloc(1, sizeof *c);
	if (redis_endpoint_client_init(&c->cl, loop, src, err, errlen) != 0) {
		free(c);
		return (NULL);
	}
	c->base.type = kind == REDIS_CONSUME_LIST ? &consumer_type_redis_list :
	    &consumer_type_redis_stream;
	c->loop = loop;
	c->kind = kind;
	c->key = xstrdup(src->queue);
	c->instance = xstrdup(opt->instance);
	c->rejected = xasprintf("%s.rejected", src->queue);
	if (kind == REDIS_CONSUME_LIST)
		c->processing = src->processing != NULL ?
		    xstrdup(src->processing) :
		    xasprintf("%s:processing:%s", src->queue, opt->instance);
	else {
		c->group = xstrdup(src->consumer_group);
		c->field = xstrdup(src->stream_field != NULL &&
		    *src->stream_field != '\0' ? src->stream_field : "task");
	}
	c->window = opt->window;
	c->poll_interval = opt->poll_interval > 0 ? opt->poll_interval :
	    REDIS_CONSUME_POLL;
	c->claim_idle = opt->claim_idle;
	ttl = ceil(opt->marker_ttl);
	c->marker_ttl = ttl >= 1 ? (long)ttl : 1;
	c->max_bytes = opt->max_bytes;
	as_strlcpy(c->pending_id, "0", sizeof c->pending_id);
	c->burst = 1;
	as_strlcpy(c->cursor, "0-0", sizeof c->cursor);
	TAILQ_INIT(&c->queued);
	TAILQ_INIT(&c->held);
	c->told = c->want = -1;
	c->refs = 1;
	ev_timer_init(&c->poll_timer, redis_consume_poll_cb, c->poll_interval,
	    c->poll_interval);
	ev_timer_init(&c->claim_timer, redis_consume_claim_cb,
	    c->claim_idle / 2, c->claim_idle / 2);
	ev_timer_init(&c->kick_timer, redis_consume_kick_cb, 0., 0.);
	c->poll_timer.data = c->claim_timer.data = c->kick_timer.data = c;
	if (kind == REDIS_CONSUME_LIST && opt->adopt) {
		c->registry = xasprintf("agentscaler:processing-lists:%s",
		    src->queue);
		every = c->poll_interval * 10 > 1 ? c->poll_interval * 10 : 1;
		ev_timer_init(&c->adopt_timer, redis_consume_adopt_cb, every,
		    every);
	} else
		ev_init(&c->adopt_timer, redis_consume_adopt_cb);
	c->adopt_timer.data = c;
	return (&c->base);
}

static struct consumer *
redis_consume_list_create(struct ev_loop *loop,
    const struct scaler_source *src, const struct consumer_options *opt,
    char *err, size_t errlen)
{
	return (redis_consume_create(REDIS_CONSUME_LIST, loop, src, opt, err,
	    errlen));
}

static struct consumer *
redis_consume_stream_create(struct ev_loop *loop,
    const struct scaler_source *src, const struct consumer_options *opt,
    char *err, size_t errlen)
{
	return (redis_consume_create(REDIS_CONSUME_STREAM, loop, src, opt,
	    err, errlen));
}

/*
 * Subscribes to the key's keyspace events and asks for link events; the
 * first one (up, or down with the cause) comes on a later loop turn, and
 * with up the setup, recovery and fetching.  Returns 0, -AS_EINVAL without
 * deliver, -AS_EAGAIN when already started.
 */
static int
redis_consume_start(struct consumer *base, consumer_deliver_fn *deliver,
    consumer_state_fn *state, void *arg)
{
	struct redis_consume *c = (struct redis_consume *)base;
	unsigned	 classes;

	if (deliver == NULL)
		return (-AS_EINVAL);
	if (c->started)
		return (-AS_EAGAIN);
	c->started = 1;
	c->deliver_fn = deliver;
	c->state_fn = state;
	c->arg = arg;
	classes = c->kind == REDIS_CONSUME_LIST ? REDIS_ENDPOINT_EV_LIST :
	    REDIS_ENDPOINT_EV_STREAM;
	(void)redis_endpoint_client_subscribe(&c->cl, c->key,
	    classes | REDIS_ENDPOINT_EV_GENERIC, redis_consume_wake, c);
	redis_endpoint_client_link(&c->cl, redis_consume_link, c);
	ev_timer_start(c->loop, &c->poll_timer);
	if (c->kind == REDIS_CONSUME_STREAM && c->claim_idle > 0)
		ev_timer_start(c->loop, &c->claim_timer);
	if (c->registry != NULL)
		ev_timer_start(c->loop, &c->adopt_timer);
	return (0);
}

/*
 * 0 pauses fetching and delivery; raising it fetches at once (the commands
 * go out with this loop turn) and delivers what waits on the next turn.
 */
static void
redis_consume_set_window(struct consumer *base, int window)
{
	struct redis_consume *c = (struct redis_consume *)base;

	if (window < 0)
		window = 0;
	if (window > c->window)
		c->empty = 0;
	c->window = window;
	if (!c->started || c->destroyed)
		return;
	redis_consume_fetch(c);
	if (c->nqueued > 0 && c->outstanding < c->window &&
	    !ev_is_active(&c->kick_timer)) {
		ev_timer_set(&c->kick_timer, 0., 0.);
		ev_timer_start(c->loop, &c->kick_timer);
	}
}

/*
 * LREM <processing> 1 <body> (the look-up script for a cut message), or
 * XACK <stream> <group> <id>.  Takes m (freed when the operation ends,
 * whatever the outcome).  Returns 0, or -AS_EINVAL without m or fn (m
 * stays the caller's).
 */
static int
redis_consume_ack(struct consumer *base, struct consumer_msg *m,
    consumer_done_fn *fn, void *arg)
{
	struct redis_consume *c = (struct redis_consume *)base;
	struct redis_consume_req *req;
	int		 rc;

	if (m == NULL || fn == NULL || c->destroyed)
		return (-AS_EINVAL);
	req = redis_consume_req_new(c, REDIS_CONSUME_ACK);
	req->m = m;
	req->done_fn = fn;
	req->arg = arg;
	if (c->kind == REDIS_CONSUME_LIST && m->truncated)
		rc = redis_endpoint_command(&c->cl, redis_consume_reply, req,
		    "EVAL %s 1 %b %llu %s", redis_consume_unlist_lua,
		    c->processing, strlen(c->processing),
		    (unsigned long long)m->size,
		    ((struct redis_consume_priv *)m->priv)->sha1);
	else if (c->kind == REDIS_CONSUME_LIST)
		rc = redis_endpoint_command(&c->cl, redis_consume_reply, req,
		    "LREM %b 1 %b", c->processing, strlen(c->processing),
		    m->body, m->len);
	else
		rc = redis_endpoint_command(&c->cl, redis_consume_reply, req,
		    "XACK %b %b %s", c->key, strlen(c->key), c->group,
		    strlen(c->group), m->ref);
	if (rc != 0)
		free(req);
	return (rc);
}

/*
 * The record goes to "<queue>.rejected" and the original is acked, in one
 * MULTI/EXEC (one EVAL for a cut list message).  Takes m as ack() does.
 */
static int
redis_consume_dead_letter(struct consumer *base, struct consumer_msg *m,
    const char *record, size_t len, consumer_done_fn *fn, void *arg)
{
	struct redis_consume *c = (struct redis_consume *)base;
	struct redis_consume_req *req;
	struct redis_endpoint_tx *tx;
	int		 rc;

	if (m == NULL || fn == NULL || record == NULL || c->destroyed)
		return (-AS_EINVAL);
	req = redis_consume_req_new(c, REDIS_CONSUME_DEAD);
	req->m = m;
	req->done_fn = fn;
	req->arg = arg;
	if (c->kind == REDIS_CONSUME_LIST && m->truncated) {
		if ((rc = redis_endpoint_command(&c->cl, redis_consume_reply,
		    req, "EVAL %s 2 %b %b %llu %s %b",
		    redis_consume_unlist_lua, c->processing,
		    strlen(c->processing), c->rejected, strlen(c->rejected),
		    (unsigned long long)m->size,
		    ((struct redis_consume_priv *)m->priv)->sha1, record,
		    len)) != 0)
			free(req);
		return (rc);
	}
	tx = redis_endpoint_tx_new();
	if (c->kind == REDIS_CONSUME_LIST) {
		redis_endpoint_tx_add(tx, "LPUSH %b %b", c->rejected,
		    strlen(c->rejected), record, len);
		redis_endpoint_tx_add(tx, "LREM %b 1 %b", c->processing,
		    strlen(c->processing), m->body, m->len);
	} else {
		redis_endpoint_tx_add(tx, "XADD %b * record %b", c->rejected,
		    strlen(c->rejected), record, len);
		redis_endpoint_tx_add(tx, "XACK %b %b %s", c->key,
		    strlen(c->key), c->group, strlen(c->group), m->ref);
	}
	if ((rc = redis_endpoint_tx_send(&c->cl, tx, redis_consume_reply,
	    req)) != 0)
		free(req);
	return (rc);
}

/*
 * One EVAL: SET agentscaler:handoff:<ns>:<task id> NX EX marker_ttl, then
 * LPUSH agentscaler:inbox:<ns>:<sandbox> only when the marker was set.
 * Returns 0, or -AS_EINVAL for a missing argument.
 */
static int
redis_consume_handoff(struct consumer *base, const char *ns,
    const char *sandbox, const char *task_id, const char *body, size_t len,
    consumer_handoff_fn *fn, void *arg)
{
	struct redis_consume *c = (struct redis_consume *)base;
	struct redis_consume_req *req;
	char		*inbox, *marker;
	int		 rc;

	if (ns == NULL || *ns == '\0' || sandbox == NULL ||
	    *sandbox == '\0' || task_id == NULL || *task_id == '\0' ||
	    body == NULL || fn == NULL || c->destroyed)
		return (-AS_EINVAL);
	inbox = xasprintf("agentscaler:inbox:%s:%s", ns, sandbox);
	marker = xasprintf("agentscaler:handoff:%s:%s", ns, task_id);
	req = redis_consume_req_new(c, REDIS_CONSUME_HANDOFF);
	req->handoff_fn = fn;
	req->arg = arg;
	rc = redis_endpoint_command(&c->cl, redis_consume_reply, req,
	    "EVAL %s 2 %s %s %b %ld %s", redis_consume_handoff_lua, inbox,
	    marker, body, len, c->marker_ttl, sandbox);
	if (rc != 0)
		free(req);
	free(inbox);
	free(marker);
	return (rc);
}

/* EXISTS agentscaler:handoff:<ns>:<task id>. */
static int
redis_consume_handed_off(struct consumer *base, const char *ns,
    const char *task_id, consumer_check_fn *fn, void *arg)
{
	struct redis_consume *c = (struct redis_consume *)base;
	struct redis_consume_req *req;
	char		*marker;
	int		 rc;

	if (ns == NULL || *ns == '\0' || task_id == NULL ||
	    *task_id == '\0' || fn == NULL || c->destroyed)
		return (-AS_EINVAL);
	marker = xasprintf("agentscaler:handoff:%s:%s", ns, task_id);
	req = redis_consume_req_new(c, REDIS_CONSUME_CHECK);
	req->check_fn = fn;
	req->arg = arg;
	rc = redis_endpoint_command(&c->cl, redis_consume_reply, req,
	    "EXISTS %s", marker);
	if (rc != 0)
		free(req);
	free(marker);
	return (rc);
}

static int
redis_consume_outstanding(const struct consumer *base)
{
	const struct redis_consume *c = (const struct redis_consume *)base;

	return (c->outstanding);
}

/*
 * Every pending completion runs with -AS_ECANCELED before this returns;
 * messages fetched but not delivered are freed (the broker still holds
 * them).  Safe from inside any of the consumer's callbacks.
 */
static void
redis_consume_destroy(struct consumer *base)
{
	struct redis_consume *c = (struct redis_consume *)base;
	struct redis_consume_queued *q;
	struct redis_consume_held *h;

	if (c == NULL || c->destroyed)
		return;
	c->destroyed = 1;
	ev_timer_stop(c->loop, &c->poll_timer);
	ev_timer_stop(c->loop, &c->claim_timer);
	ev_timer_stop(c->loop, &c->kick_timer);
	ev_timer_stop(c->loop, &c->adopt_timer);
	while ((q = TAILQ_FIRST(&c->queued)) != NULL) {
		TAILQ_REMOVE(&c->queued, q, entry);
		consumer_msg_free(q->m);
		free(q);
	}
	c->nqueued = 0;
	while ((h = TAILQ_FIRST(&c->held)) != NULL) {
		TAILQ_REMOVE(&c->held, h, entry);
		free(h);
	}
	redis_endpoint_client_fini(&c->cl);
	redis_consume_release(c);
}
