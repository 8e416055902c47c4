/*
 * rabbitmq_consumer.c: the dispatch-mode consumer of a RabbitMQ queue
 * (consumer.h, DESIGN.md section 7 steps 1, 3 and 6), amqp:// and amqps://
 * only.  Each instance owns one AMQP connection with one channel
 * (scalers/rabbitmq_conn.c: connect, TLS, login, heartbeats, the frame
 * pump, reconnects with jittered backoff), never shared with the scale-mode
 * source's polling connection, so that a slow consumer and its unacked
 * messages never sit behind, or take down, the polls.
 *
 * Setting up a channel.  Once the channel is open we pipeline
 * confirm.select (publisher confirms), then, once start() has been called
 * and the window is not zero, basic.qos prefetch_count = window and
 * basic.consume with manual acknowledgement and the consumer tag
 * "agentscaler.<instance>".  up = 1 goes to the state callback when
 * consume-ok arrives (or, with a window of 0, when confirm.select-ok does:
 * connected and paused).  Synchronous replies are matched against c->rpcs,
 * oldest of their kind first (consume-ok may overtake later replies).
 * Hand-offs asked for before the channel is set up wait on c->waiting,
 * bounded by the connection attempt (connect timeout, then login and
 * channel.open within the command timeout); once the connection has
 * failed they fail at once until it is back, as polls do.
 *
 * Deliveries.  The frame pump hands us every frame whole, without waiting
 * (rabbitmq_conn.c); a delivery is basic.deliver, a content header with the
 * body size, then body frames, which we put together here, so a body that
 * spans several frames (anything over 128 KiB) never blocks the loop.  Each
 * becomes a struct consumer_msg whose priv holds the delivery tag and the
 * generation of the connection that delivered it: tags are only valid on
 * that connection, and the generation (one process-wide counter, bumped by
 * every new connection of every consumer) tells an ack for a connection
 * that is gone from one that can still be sent.
 *
 * Flow control.  AMQP prefetch 0 means "unlimited", so pausing
 * (set_window(0)) cannot be a basic.qos: it is a basic.cancel, and raising
 * the window again sends basic.qos n and basic.consume once the cancel-ok
 * is in, under a fresh consumer tag "agentscaler.<instance>.<n>": RabbitMQ
 * credits an ack to the tag its message was delivered under, so a new
 * consumer reusing the old tag would take the acks of the old one's
 * messages as extra prefetch and overrun the window.  Deliveries already
 * on the wire when the cancel goes out still reach the caller.  Lowering
 * the window below what is outstanding stops further deliveries until
 * enough acks go out.
 *
 * Memory: a delivery's body is held whole up to max_bytes (consumer.h),
 * at most `window` of them at a time.  Above it (the content header says
 * so before any body frame) only its first CONSUMER_PREFIX_BYTES are kept:
 * each body frame (at most frame_max, 128 KiB, in rabbitmq-c's buffers,
 * released before the next frame is read) goes into the SHA-256 of the
 * whole and is dropped, so an oversized message costs a prefix, not its
 * size.  Returned messages (our own publishes) are always small.
 *
 * Dead letters and hand-offs publish with publisher confirms, mandatory,
 * persistent (delivery_mode 2), content_type application/json, to the
 * default exchange with the queue's name as routing key, after declaring
 * the durable queue once per connection (the declare is pipelined in front
 * of the publish; the channel keeps the order).  A dead letter acks its
 * original only after the broker's basic.ack for the record; a basic.nack,
 * a return (the queue was deleted since we declared it; the name is then
 * declared again next time) or the command timeout fails it and leaves the
 * original unacked: it stays outstanding on this connection and the broker
 * redelivers it once the connection ends.  A hand-off sets message_id to
 * the task id and completes with CONSUMER_HANDOFF_DONE after the confirm.
 * RabbitMQ cannot dedupe, so the outcome is never
 * CONSUMER_HANDOFF_DUPLICATE: a hand-off repeated after a crash or a
 * failure lands twice and the inbox's reader dedupes by message_id.
 *
 * Acks.  basic.ack has no reply, and bytes written to a socket are not
 * bytes the broker read: an ack written just before the connection goes
 * (a broker that closes it, agentscaler killed with deliveries unread, so
 * that its kernel resets the connection) may never be processed, and the
 * message comes back.  An ack therefore completes only once the broker is
 * known to have processed it: behind acks goes a fence, basic.qos with
 * the prefetch already in force (global = 0 changes only consumers made
 * after it, so it changes nothing), and the channel handles its frames in
 * order, so its qos-ok means every ack sent before it was processed (the
 * channel has passed it to the queue before its own end could requeue
 * anything).  One fence is on the wire at a time; acks sent meanwhile
 * wait for the next, so a burst of acks costs about two round trips.  The
 * ack of a dead letter's original goes the same way: the dead letter
 * completes once both its record is confirmed and the original's ack is.
 * A connection lost before the fence's reply fails the operations it
 * covered with the cause's error: their acks may have landed or not
 * (dispatch keeps the claim of such a task for its redelivery:
 * scheduler/dispatch_mark.c; a dead letter's original that comes back is
 * dead-lettered again: a second record, nothing lost).
 *
 * Timeouts.  Every reply we wait for (a synchronous method's, a publish
 * confirm) must come within the command timeout of the request; when one
 * does not, the connection is declared lost ("no reply within ..."), which
 * fails everything pending on it and returns every unacked message to the
 * queue.  A channel answers in order, so little behind a missing reply
 * could complete anyway, and a dead letter stuck unacked goes back to the
 * queue instead of holding a place in the window.
 *
 * A lost connection (or a channel closed by the broker: a missing queue,
 * an inequivalent declare) fails every operation pending on it, drops the
 * deliveries the caller has not been given yet, reports up = 0 once, and
 * reconnects with backoff, which only starts again from its base once a
 * connection consumes: a queue that does not exist costs a connection
 * attempt every few seconds, not a busy loop.  Acks and dead letters of messages from that
 * connection then complete with -AS_ECONN: their tags are void and the
 * broker redelivers them (redelivered = 1).  Nothing of an old generation
 * is ever sent on a new channel (rmqc_live_tag), and msg_live() tells the
 * caller which messages it holds are void, so that it lets them go and
 * takes their redeliveries as the same tasks (dispatch_ns.c).
 *
 * Callbacks.  Deliveries, state changes and completions are queued on
 * c->events and run from the instance's own zero-delay timer, never inside
 * the call that caused them nor inside rabbitmq-c, so every callback may
 * call anything here, destroy() included.
 */
#include <sys/queue.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "agentscaler/rt/common.h"
#include "compat_amqp.h"
#include "agentscaler/scalers/consumer.h"
#include "agentscaler/rt/log.h"
#include "rabbitmq.h"
#include "rabbitmq_conn.h"
#include "agentscaler/scalers/scaler.h"

#define RMQC_LOG		"rabbitmq"
#define RMQC_TAG_PREFIX		"agentscaler."
#define RMQC_TAG_SUFFIX		11	/* ".<n>" after a pause */
#define RMQC_REJECTED		".rejected"
#define RMQC_INBOX		"agentscaler.inbox."
#define RMQC_WINDOW_MAX		65535	/* basic.qos prefetch_count */
#define RMQC_JSON		"application/json"

enum rmqc_kind {
	RMQC_DELIVER,		/* a message for the caller */
	RMQC_STATE,		/* up or down, for the caller */
	RMQC_ACK,
	RMQC_DEAD,
	RMQC_HANDOFF
};

enum rmqc_stage {
	RMQC_WAITING,		/* on c->waiting until the channel is set up */
	RMQC_CONFIRMING,	/* published; on c->confirms */
	RMQC_FENCING,		/* basic.ack sent; on c->acks */
	RMQC_DONE		/* on c->events, result known */
};

/* An event for the caller, or an operation on its way to one. */
struct rmqc_item {
	TAILQ_ENTRY(rmqc_item)	 entry;
	enum rmqc_kind		 kind;
	enum rmqc_stage		 stage;
	struct consumer_msg	*msg;	/* deliver: given; ack, dead: taken */
	char			*queue;	/* dead, handoff: routing key */
	char			*body;	/* dead, handoff: what to publish */
	size_t			 len;
	char			*message_id;	/* handoff: the task id */
	uint64_t		 seq;	/* publish sequence number */
	int			 fenced;	/* the fence on the wire
						   covers its ack */
	double			 sent;	/* as_mono_now() of the publish */
	consumer_done_fn	*done;
	consumer_handoff_fn	*hdone;
	void			*arg;
	int			 up;	/* state */
	int			 err;
	char			 errmsg[192];
};

TAILQ_HEAD(rmqc_items, rmqc_item);

/* What a synchronous reply we wait for belongs to. */
enum rmqc_rpc_kind {
	RMQC_RPC_SELECT,	/* confirm.select */
	RMQC_RPC_QOS,
	RMQC_RPC_CONSUME,
	RMQC_RPC_CANCEL,
	RMQC_RPC_DECLARE,
	RMQC_RPC_FENCE		/* basic.qos behind acks: see rmqc_fence */
};

struct rmqc_rpc {
	TAILQ_ENTRY(rmqc_rpc)	 entry;
	enum rmqc_rpc_kind	 kind;
	amqp_method_number_t	 reply;
	double			 sent;
};

/* A queue declared (or its declare sent) on this connection. */
struct rmqc_name {
	LIST_ENTRY(rmqc_name)	 entry;
	char			*name;
};

enum rmqc_consume {
	RMQC_OFF,		/* no consumer on the channel */
	RMQC_STARTING,		/* basic.consume sent */
	RMQC_ON,		/* consume-ok in */
	RMQC_STOPPING		/* basic.cancel sent */
};

/* The content that follows a basic.deliver or a basic.return. */
enum rmqc_content {
	RMQC_NONE,
	RMQC_DELIVERY,
	RMQC_RETURN
};

/* msg->priv: one plain allocation, freed by consumer_msg_free(). */
struct rmqc_priv {
	uint64_t	 gen;		/* connection that delivered it */
	uint64_t	 tag;		/* its delivery tag there */
};

struct rmqc {
	struct consumer		 base;
	struct ev_loop		*loop;
	struct rabbitmq_conn	 conn;
	char			*queue;
	char			*rejected;	/* <queue>.rejected */
	char			*ctag;		/* agentscaler.<instance> */
	int			 window;	/* wanted */
	size_t			 max_bytes;	/* larger bodies are cut */
	char			 ctag_now[RABBITMQ_NAME_MAX + 1]; /* in use */
	unsigned		 consumes;	/* on this connection */

	/* Per connection; reset when it goes. */
	uint64_t		 gen;		/* 0 while not set up */
	int			 selected;	/* confirm.select-ok in */
	int			 qos;		/* last prefetch sent, 0 none */
	enum rmqc_consume	 consume;
	uint64_t		 next_seq;	/* of the next publish */
	int			 outstanding;
	TAILQ_HEAD(, rmqc_rpc)	 rpcs;
	struct rmqc_items	 confirms;	/* in sequence order */
	struct rmqc_items	 acks;		/* sent, landing not known */
	int			 unfenced;	/* on acks, behind no fence */
	int			 fence_out;	/* a fence is on the wire */
	LIST_HEAD(, rmqc_name)	 declared;
	enum rmqc_content	 content;
	uint64_t		 ctag_no;	/* delivery tag */
	int			 credelivered;
	uint64_t		 csize;		/* body size from the header */
	uint64_t		 cgot;
	int			 cheader;	/* the header has come */
	char			*cbuf;
	int			 ccut;		/* above max_bytes: prefix kept */
	struct as_sha256	 csha;		/* of the whole, when ccut */
	int			 returned;	/* a return waits for its ack */
	char			 return_text[128];

	/* The caller's side. */
	int			 started;
	consumer_deliver_fn	*deliver_fn;
	consumer_state_fn	*state_fn;
	void			*arg;
	int			 reported;	/* last up given, -1 none */
	struct rmqc_items	 waiting;	/* hand-offs before setup */
	struct rmqc_items	 events;
	ev_timer		 kick;
	int			 dispatching;
	int			 destroyed;
};

static int	 rmqc_validate(const struct scaler_source *,
		    const struct consumer_options *, char *, size_t);
static struct consumer *rmqc_create(struct ev_loop *,
		    const struct scaler_source *,
		    const struct consumer_options *, char *, size_t);
static int	 rmqc_start(struct consumer *, consumer_deliver_fn *,
		    consumer_state_fn *, void *);
static void	 rmqc_set_window(struct consumer *, int);
static int	 rmqc_ack(struct consumer *, struct consumer_msg *,
		    consumer_done_fn *, void *);
static int	 rmqc_dead_letter(struct consumer *, struct consumer_msg *,
		    const char *, size_t, consumer_done_fn *, void *);
static int	 rmqc_handoff(struct consumer *, const char *, const char *,
		    const char *, const char *, size_t, consumer_handoff_fn *,
		    void *);
static int	 rmqc_msg_live(const struct consumer *,
		    const struct consumer_msg *);
static int	 rmqc_outstanding(const struct consumer *);
static void	 rmqc_destroy(struct consumer *);

static void	 rmqc_ready(struct rabbitmq_conn *);
static void	 rmqc_frame(struct rabbitmq_conn *, const amqp_frame_t *);
static void	 rmqc_down(struct rabbitmq_conn *, int, const char *);
static void	 rmqc_apply_window(struct rmqc *);
static void	 rmqc_publish(struct rmqc *, struct rmqc_item *);

static const struct rabbitmq_conn_hooks rmqc_hooks = {
	.ready = rmqc_ready,
	.frame = rmqc_frame,
	.down = rmqc_down,
};

/* Generations of every consumer's connections; 0 is never used. */
static uint64_t	 rmqc_generation;

/* Events: everything the caller sees runs from c->kick. */

static void
rmqc_kick(struct rmqc *c)
{
	if (!c->destroyed && !ev_is_active(&c->kick)) {
		ev_timer_set(&c->kick, 0., 0.);
		ev_timer_start(c->loop, &c->kick);
	}
}

static struct rmqc_item *
rmqc_item_new(enum rmqc_kind kind)
{
	struct rmqc_item *it = xcalloc(1, sizeof *it);

	it->kind = kind;
	return (it);
}

static void
rmqc_item_free(struct rmqc_item *it)
{
	consumer_msg_free(it->msg);
	free(it->queue);
	free(it->body);
	free(it->message_id);
	free(it);
}

/* Gives it its result and queues its completion. */
static void
rmqc_finish(struct rmqc *c, struct rmqc_item *it, int err, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static void
rmqc_finish(struct rmqc *c, struct rmqc_item *it, int err, const char *fmt,
    ...)
{
	va_list	 ap;
	int	 n;

	it->stage = RMQC_DONE;
	it->err = err;
	it->errmsg[0] = '\0';
	if (fmt != NULL) {
		n = snprintf(it->errmsg, sizeof it->errmsg, "rabbitmq %s: ",
		    c->conn.name);
		if (n > 0 && (size_t)n < sizeof it->errmsg) {
			va_start(ap, fmt);
			vsnprintf(it->errmsg + n, sizeof it->errmsg - (size_t)n,
			    fmt, ap);
			va_end(ap);
		}
	}
	TAILQ_INSERT_TAIL(&c->events, it, entry);
	rmqc_kick(c);
}

static void
rmqc_report(struct rmqc *c, int up, const char *errmsg)
{
	struct rmqc_item *it;

	if (!c->started || c->reported == up)
		return;
	c->reported = up;
	it = rmqc_item_new(RMQC_STATE);
	it->up = up;
	if (errmsg != NULL)
		snprintf(it->errmsg, sizeof it->errmsg,
		    "rabbitmq %.64s: %.110s", c->conn.name, errmsg);
	TAILQ_INSERT_TAIL(&c->events, it, entry);
	rmqc_kick(c);
}

/* Runs one event's callback; it is off every list and freed here. */
static void
rmqc_run(struct rmqc *c, struct rmqc_item *it)
{
	struct consumer_msg *m;
	const char	*msg = it->errmsg[0] != '\0' ? it->errmsg : NULL;

	switch (it->kind) {
	case RMQC_DELIVER:
		m = it->msg;
		it->msg = NULL;
		rmqc_item_free(it);
		c->deliver_fn(&c->base, m, c->arg);
		return;
	case RMQC_STATE:
		if (c->state_fn != NULL)
			c->state_fn(&c->base, it->up, msg, c->arg);
		break;
	case RMQC_ACK:
	case RMQC_DEAD:
		it->done(it->err, msg, it->arg);
		break;
	case RMQC_HANDOFF:
		it->hdone(it->err, CONSUMER_HANDOFF_DONE, msg, it->arg);
		break;
	}
	rmqc_item_free(it);
}

static void
rmqc_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rmqc	*c = w->data;
	struct rmqc_item *it;

	(void)loop;
	(void)revents;
	c->dispatching = 1;
	while (!c->destroyed && (it = TAILQ_FIRST(&c->events)) != NULL) {
		TAILQ_REMOVE(&c->events, it, entry);
		rmqc_run(c, it);
	}
	c->dispatching = 0;
	if (c->destroyed)
		free(c);	/* destroy() ran inside a callback */
}

/* Waiting for replies. */

/* The oldest reply we wait for must come within the command timeout. */
static void
rmqc_deadline(struct rmqc *c)
{
	struct rmqc_rpc	*r = TAILQ_FIRST(&c->rpcs);
	struct rmqc_item *it = TAILQ_FIRST(&c->confirms);
	double		 oldest = 0;

	if (r != NULL)
		oldest = r->sent;
	if (it != NULL && (oldest == 0 || it->sent < oldest))
		oldest = it->sent;
	rabbitmq_conn_deadline(&c->conn, oldest > 0 ?
	    oldest + c->conn.command_timeout : 0);
}

/*
 * Sends a synchronous method and records the reply it expects.  Returns
 * 0, or -1 when the connection was lost (everything pending has failed).
 */
static int
rmqc_rpc(struct rmqc *c, enum rmqc_rpc_kind kind, amqp_method_number_t id,
    void *m, amqp_method_number_t reply, const char *what)
{
	struct rmqc_rpc	*r;

	if (rabbitmq_conn_send(&c->conn, RABBITMQ_CHANNEL, id, m, what) != 0)
		return (-1);
	r = xcalloc(1, sizeof *r);
	r->kind = kind;
	r->reply = reply;
	r->sent = as_mono_now();
	TAILQ_INSERT_TAIL(&c->rpcs, r, entry);
	if (TAILQ_FIRST(&c->rpcs) == r)
		rmqc_deadline(c);
	return (0);
}

static int
rmqc_is_declared(struct rmqc *c, const char *name)
{
	struct rmqc_name *n;

	LIST_FOREACH(n, &c->declared, entry)
		if (strcmp(n->name, name) == 0)
			return (1);
	return (0);
}

static void
rmqc_forget_declared(struct rmqc *c, const char *name)
{
	struct rmqc_name *n, *next;

	for (n = LIST_FIRST(&c->declared); n != NULL; n = next) {
		next = LIST_NEXT(n, entry);
		if (name == NULL || strcmp(n->name, name) == 0) {
			LIST_REMOVE(n, entry);
			free(n->name);
			free(n);
		}
	}
}

/* The connection's hooks. */

/* Up once consuming, or once connected while paused by the caller. */
static void
rmqc_check_up(struct rmqc *c)
{
	if (c->gen != 0 && c->selected && (c->consume == RMQC_ON ||
	    (c->window == 0 && c->consume == RMQC_OFF))) {
		rabbitmq_conn_healthy(&c->conn);
		rmqc_report(c, 1, NULL);
	}
}

/*
 * The channel is open: a new generation; confirms on, then consuming (when
 * started), then the hand-offs that waited for it.
 */
static void
rmqc_ready(struct rabbitmq_conn *conn)
{
	struct rmqc	*c = conn->arg;
	amqp_confirm_select_t cs;
	struct rmqc_item *it;
	uint64_t	 gen = ++rmqc_generation;

	c->gen = gen;
	c->next_seq = 1;
	memset(&cs, 0, sizeof cs);
	if (rmqc_rpc(c, RMQC_RPC_SELECT, AMQP_CONFIRM_SELECT_METHOD, &cs,
	    AMQP_CONFIRM_SELECT_OK_METHOD, "confirm.select") != 0)
		return;
	rmqc_apply_window(c);
	while (c->gen == gen && (it = TAILQ_FIRST(&c->waiting)) != NULL) {
		TAILQ_REMOVE(&c->waiting, it, entry);
		rmqc_publish(c, it);
	}
}

/*
 * Brings the channel in line with the window: basic.qos when it changed,
 * basic.consume to resume, basic.cancel to pause.  A consume or cancel on
 * the wire is let finish first; its reply calls this again.
 */
static void
rmqc_apply_window(struct rmqc *c)
{
	amqp_basic_qos_t q;
	amqp_basic_consume_t bc;
	amqp_basic_cancel_t bk;

	if (c->gen == 0 || !c->started)
		return;
	if (c->window > 0 && c->qos != c->window) {
		memset(&q, 0, sizeof q);
		q.prefetch_count = (uint16_t)c->window;
		if (rmqc_rpc(c, RMQC_RPC_QOS, AMQP_BASIC_QOS_METHOD, &q,
		    AMQP_BASIC_QOS_OK_METHOD, "basic.qos") != 0)
			return;
		c->qos = c->window;
	}
	if (c->window > 0 && c->consume == RMQC_OFF) {
		memset(&bc, 0, sizeof bc);
		/* A fresh tag after a pause: see "Flow control" above. */
		if (c->consumes++ == 0)
			as_strlcpy(c->ctag_now, c->ctag, sizeof c->ctag_now);
		else
			snprintf(c->ctag_now, sizeof c->ctag_now, "%s.%u",
			    c->ctag, c->consumes);
		bc.queue = amqp_cstring_bytes(c->queue);
		bc.consumer_tag = amqp_cstring_bytes(c->ctag_now);
		bc.no_ack = 0;
		bc.arguments = amqp_empty_table;
		if (rmqc_rpc(c, RMQC_RPC_CONSUME, AMQP_BASIC_CONSUME_METHOD,
		    &bc, AMQP_BASIC_CONSUME_OK_METHOD, "basic.consume") != 0)
			return;
		c->consume = RMQC_STARTING;
	} else if (c->window == 0 && c->consume == RMQC_ON) {
		memset(&bk, 0, sizeof bk);
		bk.consumer_tag = amqp_cstring_bytes(c->ctag_now);
		if (rmqc_rpc(c, RMQC_RPC_CANCEL, AMQP_BASIC_CANCEL_METHOD, &bk,
		    AMQP_BASIC_CANCEL_OK_METHOD, "basic.cancel") != 0)
			return;
		c->consume = RMQC_STOPPING;
	}
	rmqc_check_up(c);
}

/*
 * Sends a fence behind the acks not yet covered by one, unless one is on
 * the wire already (its reply sends the next).  See "Acks" above.
 */
static void
rmqc_fence(struct rmqc *c)
{
	struct rmqc_item *it;
	amqp_basic_qos_t q;

	if (c->fence_out || c->gen == 0 || c->unfenced == 0)
		return;
	/*
	 * An ack needs a delivery, which needs a consume after a basic.qos;
	 * 0 would make later consumers unlimited: never sent.
	 */
	if (c->qos <= 0) {
		rabbitmq_conn_lost(&c->conn, -AS_EPROTO, "an ack to confirm "
		    "and no prefetch set");
		return;
	}
	memset(&q, 0, sizeof q);
	q.prefetch_count = (uint16_t)c->qos;
	if (rmqc_rpc(c, RMQC_RPC_FENCE, AMQP_BASIC_QOS_METHOD, &q,
	    AMQP_BASIC_QOS_OK_METHOD, "basic.qos (ack fence)") != 0)
		return;		/* lost: the down hook failed the acks */
	c->fence_out = 1;
	c->unfenced = 0;
	TAILQ_FOREACH_REVERSE(it, &c->acks, rmqc_items, entry) {
		if (it->fenced)
			break;
		it->fenced = 1;
	}
}

/* An ack is on the wire for it: done once a fence says it landed. */
static void
rmqc_ack_sent(struct rmqc *c, struct rmqc_item *it)
{
	c->outstanding--;
	it->stage = RMQC_FENCING;
	TAILQ_INSERT_TAIL(&c->acks, it, entry);
	c->unfenced++;
}

/* The fence's reply: every ack it covered was processed. */
static void
rmqc_fence_reply(struct rmqc *c)
{
	struct rmqc_item *it;

	c->fence_out = 0;
	while ((it = TAILQ_FIRST(&c->acks)) != NULL && it->fenced) {
		TAILQ_REMOVE(&c->acks, it, entry);
		rmqc_finish(c, it, 0, NULL);
	}
	rmqc_fence(c);
}

/*
 * The reply to the oldest synchronous method of its kind on the wire.  Not
 * always the oldest of all: RabbitMQ has the queue send consume-ok, so the
 * replies to methods sent after a basic.consume may come before it.
 */
static void
rmqc_rpc_reply(struct rmqc *c, amqp_method_number_t id)
{
	struct rmqc_rpc	*r;
	enum rmqc_rpc_kind kind;

	TAILQ_FOREACH(r, &c->rpcs, entry)
		if (r->reply == id)
			break;
	if (r == NULL) {
		rabbitmq_conn_lost(&c->conn, -AS_EPROTO, "unexpected reply "
		    "0x%08x", (unsigned)id);
		return;
	}
	kind = r->kind;
	TAILQ_REMOVE(&c->rpcs, r, entry);
	free(r);
	rmqc_deadline(c);
	switch (kind) {
	case RMQC_RPC_SELECT:
		c->selected = 1;
		rmqc_check_up(c);
		break;
	case RMQC_RPC_CONSUME:
		c->consume = RMQC_ON;
		log_debug(RMQC_LOG, "%s: consuming %s", c->conn.name, c->queue);
		rmqc_apply_window(c);
		break;
	case RMQC_RPC_CANCEL:
		c->consume = RMQC_OFF;
		log_debug(RMQC_LOG, "%s: paused on %s", c->conn.name, c->queue);
		rmqc_apply_window(c);
		break;
	case RMQC_RPC_FENCE:
		rmqc_fence_reply(c);
		break;
	case RMQC_RPC_QOS:
	case RMQC_RPC_DECLARE:
		break;
	}
}

/* A whole delivery: to the caller, from the events queue. */
static void
rmqc_delivered(struct rmqc *c)
{
	struct consumer_msg *m = xcalloc(1, sizeof *m);
	struct rmqc_priv *p = xmalloc(sizeof *p);
	struct rmqc_item *it;

	m->body = c->cbuf;
	m->size = c->cgot;
	m->len = (size_t)c->cgot;
	if (c->ccut) {
		m->truncated = 1;
		if (m->len > CONSUMER_PREFIX_BYTES)
			m->len = CONSUMER_PREFIX_BYTES;
		as_sha256_final(&c->csha, m->sha256);
	}
	m->body[m->len] = '\0';
	m->redelivered = c->credelivered;
	m->received = as_mono_now();
	snprintf(m->ref, sizeof m->ref, "%" PRIu64, c->ctag_no);
	p->gen = c->gen;
	p->tag = c->ctag_no;
	m->priv = p;
	c->cbuf = NULL;
	c->outstanding++;
	it = rmqc_item_new(RMQC_DELIVER);
	it->msg = m;
	TAILQ_INSERT_TAIL(&c->events, it, entry);
	rmqc_kick(c);
}

/* The content of a delivery or a return is complete. */
static void
rmqc_content_done(struct rmqc *c)
{
	if (c->content == RMQC_DELIVERY)
		rmqc_delivered(c);
	else
		c->returned = 1;	/* its basic.ack comes next */
	free(c->cbuf);
	c->cbuf = NULL;
	c->content = RMQC_NONE;
	c->cheader = 0;
	c->ccut = 0;
	as_sha256_discard(&c->csha);
}

/* A content header or body frame. */
static void
rmqc_content_frame(struct rmqc *c, const amqp_frame_t *f)
{
	amqp_bytes_t	 b;
	size_t		 n;

	if (c->content == RMQC_NONE || (f->frame_type == AMQP_FRAME_HEADER) ==
	    c->cheader) {
		rabbitmq_conn_lost(&c->conn, -AS_EPROTO, "content frame out of "
		    "order");
		return;
	}
	if (f->frame_type == AMQP_FRAME_HEADER) {
		c->cheader = 1;
		c->csize = f->payload.properties.body_size;
		if (c->csize >= SIZE_MAX) {
			rabbitmq_conn_lost(&c->conn, -AS_EPROTO, "message "
			    "too large");
			return;
		}
		c->cgot = 0;
		c->ccut = c->content == RMQC_DELIVERY && c->max_bytes > 0 &&
		    c->csize > c->max_bytes;
		if (c->ccut) {
			as_sha256_init(&c->csha);
			c->cbuf = xmalloc(CONSUMER_PREFIX_BYTES + 1);
		} else
			c->cbuf = xmalloc((size_t)c->csize + 1);
	} else {
		b = f->payload.body_fragment;
		if (b.len > c->csize - c->cgot) {
			rabbitmq_conn_lost(&c->conn, -AS_EPROTO, "message body "
			    "longer than its header says");
			return;
		}
		if (!c->ccut)
			memcpy(c->cbuf + c->cgot, b.bytes, b.len);
		else {
			as_sha256_update(&c->csha, b.bytes, b.len);
			n = c->cgot < CONSUMER_PREFIX_BYTES ?
			    CONSUMER_PREFIX_BYTES - (size_t)c->cgot : 0;
			if (n > b.len)
				n = b.len;
			if (n > 0)
				memcpy(c->cbuf + c->cgot, b.bytes, n);
		}
		c->cgot += b.len;
	}
	if (c->cgot == c->csize)
		rmqc_content_done(c);
}

/*
 * A publisher confirm: basic.ack (ok) or basic.nack for every publish up to
 * tag (multiple) or for tag alone.  A return that came just before names
 * the publish this ack is for (RabbitMQ sends basic.return, then the
 * confirm): it failed, unroutable.
 */
static void
rmqc_confirmed(struct rmqc *c, uint64_t tag, int multiple, int ok)
{
	struct rmqc_item *it, *next;
	amqp_basic_ack_t a;
	uint64_t	 gen = c->gen;
	int		 returned = c->returned;

	c->returned = 0;
	for (it = TAILQ_FIRST(&c->confirms); it != NULL; it = next) {
		next = TAILQ_NEXT(it, entry);
		if (c->gen != gen)
			break;	/* lost: the down hook failed the rest */
		if (it->seq > tag)
			break;
		if (!multiple && it->seq != tag)
			continue;
		TAILQ_REMOVE(&c->confirms, it, entry);
		if (returned && it->seq == tag) {
			rmqc_forget_declared(c, it->queue);
			rmqc_finish(c, it, -AS_ENOTFOUND, "queue %.64s does "
			    "not exist: the broker returned the message (%s)%s",
			    it->queue, c->return_text, it->kind == RMQC_DEAD ?
			    "; the original stays unacked" : "");
		} else if (!ok)
			rmqc_finish(c, it, -AS_EIO, "the broker refused the "
			    "message for queue %.64s (basic.nack)%s", it->queue,
			    it->kind == RMQC_DEAD ? "; the original stays "
			    "unacked" : "");
		else if (it->kind == RMQC_HANDOFF)
			rmqc_finish(c, it, 0, NULL);
		else {
			memset(&a, 0, sizeof a);
			a.delivery_tag =
			    ((struct rmqc_priv *)it->msg->priv)->tag;
			if (rabbitmq_conn_send(&c->conn, RABBITMQ_CHANNEL,
			    AMQP_BASIC_ACK_METHOD, &a, "basic.ack") != 0) {
				rmqc_finish(c, it, -AS_ECONN, "the dead letter "
				    "is in %.64s but the connection was lost "
				    "before the original was acked (%s); the "
				    "broker will redeliver it", it->queue,
				    c->conn.cause);
				break;
			}
			rmqc_ack_sent(c, it);
		}
	}
	if (c->gen == gen)
		rmqc_fence(c);
	if (c->gen == gen)
		rmqc_deadline(c);
}

static void
rmqc_method(struct rmqc *c, const amqp_frame_t *f)
{
	amqp_method_number_t id = f->payload.method.id;
	const amqp_basic_deliver_t *d;
	const amqp_basic_return_t *rt;
	const amqp_basic_ack_t *a;
	const amqp_basic_nack_t *n;
	const amqp_channel_close_t *cc;
	char		 text[128];

	if (c->content != RMQC_NONE) {
		rabbitmq_conn_lost(&c->conn, -AS_EPROTO, "method 0x%08x inside "
		    "a message's content", (unsigned)id);
		return;
	}
	switch (id) {
	case AMQP_BASIC_DELIVER_METHOD:
		d = f->payload.method.decoded;
		c->content = RMQC_DELIVERY;
		c->ctag_no = d->delivery_tag;
		c->credelivered = d->redelivered != 0;
		break;
	case AMQP_BASIC_RETURN_METHOD:
		rt = f->payload.method.decoded;
		c->content = RMQC_RETURN;
		rabbitmq_bytes(text, sizeof text, rt->reply_text);
		snprintf(c->return_text, sizeof c->return_text, "%u %.100s",
		    (unsigned)rt->reply_code, text);
		break;
	case AMQP_BASIC_ACK_METHOD:
		a = f->payload.method.decoded;
		rmqc_confirmed(c, a->delivery_tag, a->multiple, 1);
		break;
	case AMQP_BASIC_NACK_METHOD:
		n = f->payload.method.decoded;
		rmqc_confirmed(c, n->delivery_tag, n->multiple, 0);
		break;
	case AMQP_CONFIRM_SELECT_OK_METHOD:
	case AMQP_BASIC_QOS_OK_METHOD:
	case AMQP_BASIC_CONSUME_OK_METHOD:
	case AMQP_BASIC_CANCEL_OK_METHOD:
	case AMQP_QUEUE_DECLARE_OK_METHOD:
		rmqc_rpc_reply(c, id);
		break;
	case AMQP_BASIC_CANCEL_METHOD:
		/* consumer_cancel_notify: the queue went away. */
		rabbitmq_conn_lost(&c->conn, -AS_ENOTFOUND, "the broker "
		    "cancelled the consumer of queue %.64s (deleted?)",
		    c->queue);
		break;
	case AMQP_CHANNEL_CLOSE_METHOD:
		/* A missing queue, an inequivalent declare: start over. */
		cc = f->payload.method.decoded;
		rabbitmq_bytes(text, sizeof text, cc->reply_text);
		rabbitmq_conn_lost(&c->conn, rabbitmq_code_err(cc->reply_code),
		    "channel closed by the broker: %s", text);
		break;
	default:
		log_debug(RMQC_LOG, "%s: ignoring method 0x%08x", c->conn.name,
		    (unsigned)id);
		break;
	}
}

static void
rmqc_frame(struct rabbitmq_conn *conn, const amqp_frame_t *f)
{
	struct rmqc	*c = conn->arg;

	if (f->frame_type == AMQP_FRAME_METHOD)
		rmqc_method(c, f);
	else if (f->frame_type == AMQP_FRAME_HEADER ||
	    f->frame_type == AMQP_FRAME_BODY)
		rmqc_content_frame(c, f);
}

/*
 * The connection is gone: its tags are void, its unacked messages go back
 * to the queue.  Everything pending fails with the cause, deliveries the
 * caller has not had are dropped (they are redelivered), and up = 0 is
 * reported once.
 */
static void
rmqc_down(struct rabbitmq_conn *conn, int err, const char *cause)
{
	struct rmqc	*c = conn->arg;
	struct rmqc_item *it, *next;
	struct rmqc_rpc	*r;

	c->gen = 0;
	c->selected = 0;
	c->qos = 0;
	c->consumes = 0;
	c->consume = RMQC_OFF;
	c->outstanding = 0;
	c->content = RMQC_NONE;
	c->cheader = 0;
	c->returned = 0;
	free(c->cbuf);
	c->cbuf = NULL;
	c->ccut = 0;
	as_sha256_discard(&c->csha);
	rmqc_forget_declared(c, NULL);
	while ((r = TAILQ_FIRST(&c->rpcs)) != NULL) {
		TAILQ_REMOVE(&c->rpcs, r, entry);
		free(r);
	}
	for (it = TAILQ_FIRST(&c->events); it != NULL; it = next) {
		next = TAILQ_NEXT(it, entry);
		if (it->kind == RMQC_DELIVER) {
			TAILQ_REMOVE(&c->events, it, entry);
			rmqc_item_free(it);
		}
	}
	while ((it = TAILQ_FIRST(&c->confirms)) != NULL) {
		TAILQ_REMOVE(&c->confirms, it, entry);
		if (it->kind == RMQC_DEAD)
			rmqc_finish(c, it, err, "dead letter not confirmed: "
			    "%s; the original stays on the queue and will be "
			    "redelivered", cause);
		else
			rmqc_finish(c, it, err, "hand-off not confirmed (it "
			    "may have reached the inbox): %s", cause);
	}
	c->fence_out = 0;
	c->unfenced = 0;
	while ((it = TAILQ_FIRST(&c->acks)) != NULL) {
		TAILQ_REMOVE(&c->acks, it, entry);
		if (it->kind == RMQC_DEAD)
			rmqc_finish(c, it, err, "the dead letter is in %.64s, "
			    "but the connection was lost before the broker "
			    "confirmed the ack of the original %s (it may have "
			    "landed; if not, the broker redelivers it): %s",
			    it->queue, it->msg->ref, cause);
		else
			rmqc_finish(c, it, err, "connection lost before the "
			    "broker confirmed the ack of message %s (it may "
			    "have landed; if not, the broker redelivers it): %s",
			    it->msg->ref, cause);
	}
	while ((it = TAILQ_FIRST(&c->waiting)) != NULL) {
		TAILQ_REMOVE(&c->waiting, it, entry);
		rmqc_finish(c, it, err, "not connected: %s", cause);
	}
	rmqc_report(c, 0, cause);
}

/* Publishing. */

/*
 * Declares the item's queue if this connection has not, then publishes
 * it, persistent and mandatory, under the next sequence number; the
 * confirm finishes it.  A failure to send loses the connection, which
 * fails it with the rest.
 */
static void
rmqc_publish(struct rmqc *c, struct rmqc_item *it)
{
	amqp_queue_declare_t qd;
	amqp_basic_properties_t props;
	amqp_bytes_t	 body;
	struct rmqc_name *n;
	int		 rc;

	if (!rmqc_is_declared(c, it->queue)) {
		memset(&qd, 0, sizeof qd);
		qd.queue = amqp_cstring_bytes(it->queue);
		qd.durable = 1;
		qd.arguments = amqp_empty_table;
		if (rmqc_rpc(c, RMQC_RPC_DECLARE, AMQP_QUEUE_DECLARE_METHOD,
		    &qd, AMQP_QUEUE_DECLARE_OK_METHOD, "queue.declare") != 0) {
			rmqc_finish(c, it, c->conn.err, "not connected: %s",
			    c->conn.cause);
			return;
		}
		n = xcalloc(1, sizeof *n);
		n->name = xstrdup(it->queue);
		LIST_INSERT_HEAD(&c->declared, n, entry);
	}
	memset(&props, 0, sizeof props);
	props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
	    AMQP_BASIC_DELIVERY_MODE_FLAG;
	props.content_type = amqp_cstring_bytes(RMQC_JSON);
	props.delivery_mode = 2;		/* persistent */
	if (it->message_id != NULL) {
		props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
		props.message_id = amqp_cstring_bytes(it->message_id);
	}
	body.bytes = it->body;
	body.len = it->len;
	it->stage = RMQC_CONFIRMING;
	it->seq = c->next_seq++;
	it->sent = as_mono_now();
	TAILQ_INSERT_TAIL(&c->confirms, it, entry);
	if (TAILQ_FIRST(&c->confirms) == it)
		rmqc_deadline(c);
	rc = amqp_basic_publish(c->conn.amqp, RABBITMQ_CHANNEL,
	    amqp_empty_bytes, amqp_cstring_bytes(it->queue), 1, 0, &props,
	    body);
	if (rc != AMQP_STATUS_OK)
		rabbitmq_conn_lost(&c->conn, rabbitmq_status_err(rc),
		    "publishing to %.64s: %s", it->queue,
		    amqp_error_string2(rc));
}

/* The vtable. */

static int
rmqc_validate(const struct scaler_source *src,
    const struct consumer_options *opts, char *err, size_t errlen)
{
	struct rabbitmq_addr addr;
	int		 rc;

	if ((rc = rabbitmq_check_source(src, 1, &addr, err, errlen)) != 0)
		return (rc);
	if (strlen(src->queue) + strlen(RMQC_REJECTED) > RABBITMQ_NAME_MAX) {
		snprintf(err, errlen, "the queue name leaves no room for its "
		    "dead-letter queue <queue>%s: at most %zu bytes",
		    RMQC_REJECTED, RABBITMQ_NAME_MAX - strlen(RMQC_REJECTED));
		return (-AS_EINVAL);
	}
	if (opts == NULL || opts->instance == NULL ||
	    *opts->instance == '\0') {
		snprintf(err, errlen, "the consumer needs an instance name "
		    "(its consumer tag is %s<instance>)", RMQC_TAG_PREFIX);
		return (-AS_EINVAL);
	}
	if (strlen(opts->instance) + strlen(RMQC_TAG_PREFIX) +
	    RMQC_TAG_SUFFIX > RABBITMQ_NAME_MAX) {
		snprintf(err, errlen, "the instance name is longer than %zu "
		    "bytes (consumer tag %s<instance>)", RABBITMQ_NAME_MAX -
		    strlen(RMQC_TAG_PREFIX) - RMQC_TAG_SUFFIX,
		    RMQC_TAG_PREFIX);
		return (-AS_EINVAL);
	}
	if (opts->window < 1 || opts->window > RMQC_WINDOW_MAX) {
		snprintf(err, errlen, "window must be 1 to %d (the AMQP "
		    "prefetch count is 16 bits)", RMQC_WINDOW_MAX);
		return (-AS_EINVAL);
	}
	return (0);
}

static struct consumer *
rmqc_create(struct ev_loop *loop, const struct scaler_source *src,
    const struct consumer_options *opts, char *err, size_t errlen)
{
	struct rabbitmq_addr addr;
	struct rmqc	*c;
	char		*label;

	if (rmqc_validate(src, opts, err, errlen) != 0)
		return (NULL);
	if (rabbitmq_parse_address(src->address, &addr, err, errlen) != 0)
		return (NULL);
	c = xcalloc(1, sizeof *c);
	c->base.type = &consumer_type_rabbitmq;
	c->loop = loop;
	c->queue = xstrdup(src->queue);
	c->rejected = xasprintf("%s%s", src->queue, RMQC_REJECTED);
	c->ctag = xasprintf("%s%s", RMQC_TAG_PREFIX, opts->instance);
	c->window = opts->window;
	c->max_bytes = opts->max_bytes;
	c->reported = -1;
	TAILQ_INIT(&c->rpcs);
	TAILQ_INIT(&c->confirms);
	TAILQ_INIT(&c->acks);
	LIST_INIT(&c->declared);
	TAILQ_INIT(&c->waiting);
	TAILQ_INIT(&c->events);
	ev_timer_init(&c->kick, rmqc_kick_cb, 0., 0.);
	c->kick.data = c;
	label = xasprintf("%s consumer of %s", c->ctag, c->queue);
	rabbitmq_conn_init(&c->conn, loop, &addr, src, label, &rmqc_hooks, c);
	free(label);
	return (&c->base);
}

/*
 * Starts consuming as soon as the channel is set up (at once when it is).
 * A connection that already failed is reported down on the next turn.
 */
static int
rmqc_start(struct consumer *base, consumer_deliver_fn *deliver,
    consumer_state_fn *state, void *arg)
{
	struct rmqc	*c = (struct rmqc *)base;

	if (deliver == NULL)
		return (-AS_EINVAL);
	if (c->destroyed)
		return (-AS_ECANCELED);
	if (c->started)
		return (-AS_EAGAIN);
	c->started = 1;
	c->deliver_fn = deliver;
	c->state_fn = state;
	c->arg = arg;
	if (c->gen != 0)
		rmqc_apply_window(c);
	else if (c->conn.err != 0)
		rmqc_report(c, 0, c->conn.cause);
	return (0);
}

static void
rmqc_set_window(struct consumer *base, int window)
{
	struct rmqc	*c = (struct rmqc *)base;

	if (c->destroyed)
		return;
	if (window < 0)
		window = 0;
	if (window > RMQC_WINDOW_MAX)
		window = RMQC_WINDOW_MAX;
	c->window = window;
	rmqc_apply_window(c);
}

/* The delivery tag of m when it came on the live connection, else 0. */
static uint64_t
rmqc_live_tag(const struct rmqc *c, const struct consumer_msg *m)
{
	const struct rmqc_priv *p = m->priv;

	if (p == NULL || c->gen == 0 || p->gen != c->gen)
		return (0);
	return (p->tag);
}

static void
rmqc_finish_stale(struct rmqc *c, struct rmqc_item *it)
{
	rmqc_finish(c, it, -AS_ECONN, "the connection that delivered message "
	    "%s is gone, so its delivery tag is void; the broker will "
	    "redeliver it", it->msg->ref);
}

static int
rmqc_ack(struct consumer *base, struct consumer_msg *m,
    consumer_done_fn *done, void *arg)
{
	struct rmqc	*c = (struct rmqc *)base;
	struct rmqc_item *it;
	amqp_basic_ack_t a;

	if (m == NULL || done == NULL)
		return (-AS_EINVAL);
	if (c->destroyed)
		return (-AS_ECANCELED);
	it = rmqc_item_new(RMQC_ACK);
	it->msg = m;
	it->done = done;
	it->arg = arg;
	memset(&a, 0, sizeof a);
	if ((a.delivery_tag = rmqc_live_tag(c, m)) == 0)
		rmqc_finish_stale(c, it);
	else if (rabbitmq_conn_send(&c->conn, RABBITMQ_CHANNEL,
	    AMQP_BASIC_ACK_METHOD, &a, "basic.ack") != 0)
		rmqc_finish(c, it, -AS_ECONN, "connection lost while acking "
		    "message %s (%s); the broker will redeliver it", m->ref,
		    c->conn.cause);
	else {
		rmqc_ack_sent(c, it);
		rmqc_fence(c);
	}
	return (0);
}

static int
rmqc_dead_letter(struct consumer *base, struct consumer_msg *m,
    const char *record, size_t len, consumer_done_fn *done, void *arg)
{
	struct rmqc	*c = (struct rmqc *)base;
	struct rmqc_item *it;

	if (m == NULL || record == NULL || done == NULL)
		return (-AS_EINVAL);
	if (c->destroyed)
		return (-AS_ECANCELED);
	it = rmqc_item_new(RMQC_DEAD);
	it->msg = m;
	it->done = done;
	it->arg = arg;
	if (rmqc_live_tag(c, m) == 0) {
		rmqc_finish_stale(c, it);
		return (0);
	}
	it->queue = xstrdup(c->rejected);
	it->body = xmalloc(len + 1);
	memcpy(it->body, record, len);
	it->body[len] = '\0';
	it->len = len;
	rmqc_publish(c, it);
	return (0);
}

static int
rmqc_handoff(struct consumer *base, const char *ns, const char *sandbox,
    const char *task_id, const char *body, size_t len,
    consumer_handoff_fn *done, void *arg)
{
	struct rmqc	*c = (struct rmqc *)base;
	struct rmqc_item *it;
	char		*queue;

	if (ns == NULL || *ns == '\0' || sandbox == NULL ||
	    *sandbox == '\0' || task_id == NULL || *task_id == '\0' ||
	    strlen(task_id) > RABBITMQ_NAME_MAX || body == NULL ||
	    done == NULL)
		return (-AS_EINVAL);
	if (c->destroyed)
		return (-AS_ECANCELED);
	queue = xasprintf("%s%s.%s", RMQC_INBOX, ns, sandbox);
	if (strlen(queue) > RABBITMQ_NAME_MAX) {
		free(queue);
		return (-AS_EINVAL);
	}
	it = rmqc_item_new(RMQC_HANDOFF);
	it->queue = queue;
	it->message_id = xstrdup(task_id);
	it->body = xmalloc(len + 1);
	memcpy(it->body, body, len);
	it->body[len] = '\0';
	it->len = len;
	it->hdone = done;
	it->arg = arg;
	if (c->gen != 0)
		rmqc_publish(c, it);
	else if (c->conn.state == RABBITMQ_CONN_DOWN && c->conn.err != 0)
		rmqc_finish(c, it, c->conn.err, "not connected: %s",
		    c->conn.cause);
	else {
		it->stage = RMQC_WAITING;
		TAILQ_INSERT_TAIL(&c->waiting, it, entry);
	}
	return (0);
}

/*
 * Whether m came on the live connection: once it is gone the broker has m
 * back, and its tag means nothing (or another message) on the next one.
 */
static int
rmqc_msg_live(const struct consumer *base, const struct consumer_msg *m)
{
	return (rmqc_live_tag((const struct rmqc *)base, m) != 0);
}

static int
rmqc_outstanding(const struct consumer *base)
{
	const struct rmqc *c = (const struct rmqc *)base;

	return (c->outstanding);
}

/* Completes an operation still waiting for the broker: canceled. */
static void
rmqc_cancel(struct rmqc *c, struct rmqc_item *it)
{
	snprintf(it->errmsg, sizeof it->errmsg, "rabbitmq %.64s: consumer "
	    "destroyed", c->conn.name);
	it->err = -AS_ECANCELED;
	rmqc_run(c, it);
}

/*
 * Closes the connection (unacked messages return to the queue), then runs
 * every completion still owed: results already known as they are, the
 * rest -AS_ECANCELED.  Deliveries the caller has not had are dropped.
 * When called from one of our callbacks, the struct is freed once that
 * callback returns.
 */
static void
rmqc_destroy(struct consumer *base)
{
	struct rmqc	*c = (struct rmqc *)base;
	struct rmqc_item *it;
	struct rmqc_rpc	*r;

	if (c == NULL || c->destroyed)
		return;
	c->destroyed = 1;
	ev_timer_stop(c->loop, &c->kick);
	rabbitmq_conn_fini(&c->conn);
	while ((r = TAILQ_FIRST(&c->rpcs)) != NULL) {
		TAILQ_REMOVE(&c->rpcs, r, entry);
		free(r);
	}
	while ((it = TAILQ_FIRST(&c->events)) != NULL) {
		TAILQ_REMOVE(&c->events, it, entry);
		if (it->kind == RMQC_DELIVER || it->kind == RMQC_STATE)
			rmqc_item_free(it);
		else
			rmqc_run(c, it);
	}
	while ((it = TAILQ_FIRST(&c->confirms)) != NULL) {
		TAILQ_REMOVE(&c->confirms, it, entry);
		rmqc_cancel(c, it);
	}
	while ((it = TAILQ_FIRST(&c->acks)) != NULL) {
		TAILQ_REMOVE(&c->acks, it, entry);
		rmqc_cancel(c, it);
	}
	while ((it = TAILQ_FIRST(&c->waiting)) != NULL) {
		TAILQ_REMOVE(&c->waiting, it, entry);
		rmqc_cancel(c, it);
	}
	rmqc_forget_declared(c, NULL);
	free(c->cbuf);
	as_sha256_discard(&c->csha);
	free(c->queue);
	free(c->rejected);
	free(c->ctag);
	if (!c->dispatching)
		free(c);
}

const struct consumer_type consumer_type_rabbitmq = {
	.name = "rabbitmq",
	.validate = rmqc_validate,
	.create = rmqc_create,
	.start = rmqc_start,
	.set_window = rmqc_set_window,
	.ack = rmqc_ack,
	.dead_letter = rmqc_dead_letter,
	.handoff = rmqc_handoff,
	.msg_live = rmqc_msg_live,
	.outstanding = rmqc_outstanding,
	.destroy = rmqc_destroy,
};
