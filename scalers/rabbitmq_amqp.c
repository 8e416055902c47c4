/*
 * rabbitmq_amqp.c: the AMQP transport of the "rabbitmq" source
 * (amqp://host:5672/vhost, amqps://): a passive queue.declare per queue and
 * poll, whose declare-ok carries message_count (ready messages) and
 * consumer_count.  The connection itself (connect, TLS, login, heartbeats,
 * the frame pump, reconnects) is scalers/rabbitmq_conn.c, shared with the
 * dispatch-mode consumer.
 *
 * What AMQP cannot see.  message_count counts ready messages only: messages
 * delivered to a consumer and not yet acknowledged are not in it, so work
 * in flight looks like an empty queue (kedacore/keda#356, #638).
 * countInFlight is therefore refused for amqp:// addresses (validate() in
 * rabbitmq_source.c); the management API transport counts them.
 *
 * Endpoints.  Every instance belongs to one endpoint, shared by all the
 * instances on the same loop with the same host, port, vhost, user,
 * password source and TLS settings, and refcounted by them.  An endpoint
 * owns one connection and one channel.  Polls are not sent at once: they
 * wait on ep->waiting until a zero-delay timer flushes them, so all the
 * polls of one loop iteration leave together, one declare per distinct
 * queue, pipelined on the channel.  Replies come back in order and are
 * matched to ep->inflight, oldest first.  A reply deadline (re-armed on
 * progress) bounds them.
 *
 * A missing queue.  A passive declare of a queue that does not exist makes
 * the broker close the channel with 404 NOT_FOUND, and discard whatever we
 * pipelined after it.  We answer channel.close-ok, fail that one poll with
 * -AS_ENOTFOUND, put the discarded declares back at the head of the waiting
 * list, open the channel again and resend them: the connection stays, so a
 * queue that is not declared yet (the normal state when scaling from zero
 * and consumers declare it) costs one channel round trip per tick, not a
 * reconnect (KEDA rebuilds its scaler, a new dial, on every such poll).
 *
 * We never consume here, so no content frames arrive on this connection.
 *
 * Completions.  Results are stored in the instance and delivered from its
 * own zero-delay timer, so callers' code never runs inside the endpoint's
 * functions and may destroy anything, the last instance included.
 */
#include <sys/queue.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "agentscaler/rt/common.h"
#include "compat_amqp.h"
#include "agentscaler/rt/log.h"
#include "rabbitmq.h"
#include "rabbitmq_conn.h"
#include "agentscaler/scalers/scaler.h"
#include "scaler_later.h"

#define RMQ_LOG			"rabbitmq"

enum rmq_poll {
	RMQ_POLL_IDLE,		/* on no list: none, or the result waits */
	RMQ_POLL_WAITING,	/* on ep->waiting, not sent yet */
	RMQ_POLL_SENT		/* a waiter of a declare on the wire */
};

struct rmq_scaler;

/* One passive queue.declare on the wire, for one or more polls. */
struct rmq_decl {
	TAILQ_ENTRY(rmq_decl)	 entry;
	char			*queue;
	LIST_HEAD(, rmq_scaler)	 waiters;
};

struct rmq_endpoint {
	LIST_ENTRY(rmq_endpoint) entry;
	struct rabbitmq_conn	 conn;
	unsigned		 refs;
	LIST_HEAD(, rmq_scaler)	 scalers;
	TAILQ_HEAD(rmq_scaler_q, rmq_scaler) waiting;
	TAILQ_HEAD(rmq_decl_q, rmq_decl) inflight;
	ev_timer		 flush_timer;

	uint64_t		 reopens;
	uint64_t		 requests;
	uint64_t		 batches;
};

struct rmq_scaler {
	struct scaler		 base;
	LIST_ENTRY(rmq_scaler)	 entry;		/* ep->scalers */
	TAILQ_ENTRY(rmq_scaler)	 wentry;	/* ep->waiting */
	LIST_ENTRY(rmq_scaler)	 dentry;	/* decl->waiters */
	struct rmq_endpoint	*ep;
	struct ev_loop		*loop;
	char			*queue;
	enum rmq_poll		 pstate;
	struct rmq_decl		*decl;
	struct scaler_later	 later;		/* the pending poll */
};

static struct scaler *rmq_create(struct ev_loop *,
		    const struct scaler_source *, char *, size_t);
static int	 rmq_poll(struct scaler *, scaler_done_fn *, void *);
static void	 rmq_destroy(struct scaler *);

static void	 rmq_ready(struct rabbitmq_conn *);
static void	 rmq_frame(struct rabbitmq_conn *, const amqp_frame_t *);
static void	 rmq_down(struct rabbitmq_conn *, int, const char *);
static void	 rmq_flush(struct rmq_endpoint *);

static const struct rabbitmq_conn_hooks rmq_hooks = {
	.ready = rmq_ready,
	.frame = rmq_frame,
	.down = rmq_down,
};

static LIST_HEAD(, rmq_endpoint) rmq_endpoints =
    LIST_HEAD_INITIALIZER(rmq_endpoints);

/* Polls: results are delivered from the instance's own timer. */

static void
rmq_later(struct rmq_scaler *s)
{
	s->pstate = RMQ_POLL_IDLE;
	s->decl = NULL;
	scaler_later_arm(&s->later, 0.);
}

static void
rmq_fail_poll(struct rmq_scaler *s, int err, const char *cause)
{
	rabbitmq_result_error(&s->later.res, err, s->ep->conn.name, "%s",
	    cause);
	rmq_later(s);
}

/* Fails every poll on the endpoint, waiting or on the wire. */
static void
rmq_fail_all(struct rmq_endpoint *ep, int err, const char *cause)
{
	struct rmq_scaler *s;
	struct rmq_decl	*d;

	while ((d = TAILQ_FIRST(&ep->inflight)) != NULL) {
		TAILQ_REMOVE(&ep->inflight, d, entry);
		while ((s = LIST_FIRST(&d->waiters)) != NULL) {
			LIST_REMOVE(s, dentry);
			rmq_fail_poll(s, err, cause);
		}
		free(d->queue);
		free(d);
	}
	while ((s = TAILQ_FIRST(&ep->waiting)) != NULL) {
		TAILQ_REMOVE(&ep->waiting, s, wentry);
		rmq_fail_poll(s, err, cause);
	}
}

/* Declares on the wire must answer within the command timeout. */
static void
rmq_command_progress(struct rmq_endpoint *ep)
{
	rabbitmq_conn_deadline(&ep->conn, TAILQ_EMPTY(&ep->inflight) ? 0 :
	    as_mono_now() + ep->conn.command_timeout);
}

/* The connection's hooks. */

/* The channel is open: send what waits. */
static void
rmq_ready(struct rabbitmq_conn *c)
{
	struct rmq_endpoint *ep = c->arg;

	rabbitmq_conn_healthy(c);
	rmq_command_progress(ep);
	rmq_flush(ep);
}

/* The connection is gone: every pending poll fails with the cause. */
static void
rmq_down(struct rabbitmq_conn *c, int err, const char *cause)
{
	struct rmq_endpoint *ep = c->arg;

	ev_timer_stop(c->loop, &ep->flush_timer);
	rmq_fail_all(ep, err, cause);
}

/* A declare-ok: the oldest declare on the wire answered. */
static void
rmq_declared(struct rmq_endpoint *ep, const amqp_queue_declare_ok_t *ok)
{
	struct rmq_decl	*d;
	struct rmq_scaler *s;

	if ((d = TAILQ_FIRST(&ep->inflight)) == NULL) {
		rabbitmq_conn_lost(&ep->conn, -AS_EPROTO,
		    "unexpected queue.declare-ok");
		return;
	}
	TAILQ_REMOVE(&ep->inflight, d, entry);
	while ((s = LIST_FIRST(&d->waiters)) != NULL) {
		LIST_REMOVE(s, dentry);
		s->later.res.ready = (double)ok->message_count;
		s->later.res.consumers = (double)ok->consumer_count;
		rmq_later(s);
	}
	free(d->queue);
	free(d);
	rmq_command_progress(ep);
}

/*
 * channel.close from the broker: the oldest declare on the wire failed (404
 * for a missing queue).  Everything after it was discarded by the broker:
 * back to the head of the waiting list, in order, for the reopened channel.
 */
static void
rmq_channel_closed(struct rmq_endpoint *ep, const amqp_channel_close_t *cc)
{
	amqp_channel_close_ok_t	 ok;
	struct rmq_decl	*d;
	struct rmq_scaler *s;
	const char	*name = ep->conn.name;
	char		 text[128];
	int		 code = cc->reply_code, err;

	rabbitmq_bytes(text, sizeof text, cc->reply_text);
	memset(&ok, 0, sizeof ok);
	if (rabbitmq_conn_send(&ep->conn, RABBITMQ_CHANNEL,
	    AMQP_CHANNEL_CLOSE_OK_METHOD, &ok, "channel.close-ok") != 0)
		return;
	if ((d = TAILQ_FIRST(&ep->inflight)) != NULL) {
		TAILQ_REMOVE(&ep->inflight, d, entry);
		err = rabbitmq_code_err(code);
		while ((s = LIST_FIRST(&d->waiters)) != NULL) {
			LIST_REMOVE(s, dentry);
			if (code == AMQP_NOT_FOUND)
				rabbitmq_result_error(&s->later.res, err, name,
				    "queue %.64s not found in vhost %.64s",
				    d->queue, ep->conn.addr.vhost);
			else
				rabbitmq_result_error(&s->later.res, err, name,
				    "queue %.64s: %s", d->queue, text);
			rmq_later(s);
		}
		log_debug(RMQ_LOG, "%s: channel closed on queue %s: %s", name,
		    d->queue, text);
		free(d->queue);
		free(d);
	}
	while ((d = TAILQ_LAST(&ep->inflight, rmq_decl_q)) != NULL) {
		TAILQ_REMOVE(&ep->inflight, d, entry);
		while ((s = LIST_FIRST(&d->waiters)) != NULL) {
			LIST_REMOVE(s, dentry);
			s->decl = NULL;
			s->pstate = RMQ_POLL_WAITING;
			TAILQ_INSERT_HEAD(&ep->waiting, s, wentry);
		}
		free(d->queue);
		free(d);
	}
	ep->reopens++;
	rabbitmq_conn_reopen(&ep->conn);
}

static void
rmq_frame(struct rabbitmq_conn *c, const amqp_frame_t *f)
{
	struct rmq_endpoint *ep = c->arg;

	if (f->frame_type != AMQP_FRAME_METHOD)
		return;		/* we never consume: no content frames */
	switch (f->payload.method.id) {
	case AMQP_QUEUE_DECLARE_OK_METHOD:
		rmq_declared(ep, f->payload.method.decoded);
		break;
	case AMQP_CHANNEL_CLOSE_METHOD:
		rmq_channel_closed(ep, f->payload.method.decoded);
		break;
	default:
		log_debug(RMQ_LOG, "%s: ignoring method 0x%08x", c->name,
		    (unsigned)f->payload.method.id);
		break;
	}
}

/*
 * Sends one passive declare per distinct queue among the waiting polls, in
 * order, pipelined on the channel.  A failed send loses the connection,
 * which fails every poll on the endpoint, these included.
 */
static void
rmq_flush(struct rmq_endpoint *ep)
{
	struct rmq_decl_q fresh;
	amqp_queue_declare_t qd;
	struct rmq_scaler *s;
	struct rmq_decl	*d, *first;
	int		 idle;

	ev_timer_stop(ep->conn.loop, &ep->flush_timer);
	if (ep->conn.state != RABBITMQ_CONN_READY ||
	    TAILQ_EMPTY(&ep->waiting))
		return;
	ep->batches++;
	TAILQ_INIT(&fresh);
	while ((s = TAILQ_FIRST(&ep->waiting)) != NULL) {
		TAILQ_REMOVE(&ep->waiting, s, wentry);
		TAILQ_FOREACH(d, &fresh, entry)
			if (strcmp(d->queue, s->queue) == 0)
				break;
		if (d == NULL) {
			d = xcalloc(1, sizeof *d);
			d->queue = xstrdup(s->queue);
			LIST_INIT(&d->waiters);
			TAILQ_INSERT_TAIL(&fresh, d, entry);
		}
		LIST_INSERT_HEAD(&d->waiters, s, dentry);
		s->decl = d;
		s->pstate = RMQ_POLL_SENT;
	}
	/* inflight owns them all before the first send can fail. */
	idle = TAILQ_EMPTY(&ep->inflight);
	first = TAILQ_FIRST(&fresh);
	TAILQ_CONCAT(&ep->inflight, &fresh, entry);
	if (idle)
		rmq_command_progress(ep);
	for (d = first; d != NULL; d = TAILQ_NEXT(d, entry)) {
		memset(&qd, 0, sizeof qd);
		qd.queue = amqp_cstring_bytes(d->queue);
		qd.passive = 1;
		qd.arguments = amqp_empty_table;
		ep->requests++;
		if (rabbitmq_conn_send(&ep->conn, RABBITMQ_CHANNEL,
		    AMQP_QUEUE_DECLARE_METHOD, &qd, "queue.declare") != 0)
			return;		/* d is gone with the connection */
	}
}

static void
rmq_flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	rmq_flush(w->data);
}

/* Endpoints. */

static struct rmq_endpoint *
rmq_endpoint_get(struct ev_loop *loop, const struct rabbitmq_addr *addr,
    const struct scaler_source *src)
{
	struct rmq_endpoint *ep;
	char		 label[300];

	LIST_FOREACH(ep, &rmq_endpoints, entry) {
		if (rabbitmq_conn_matches(&ep->conn, loop, addr, src))
			break;
	}
	if (ep != NULL) {
		/* A shared connection gets the strictest deadlines. */
		rabbitmq_conn_tighten(&ep->conn, src);
		ep->refs++;
		return (ep);
	}

	ep = xcalloc(1, sizeof *ep);
	snprintf(label, sizeof label, "agentscaler %s", addr->vhost);
	rabbitmq_conn_init(&ep->conn, loop, addr, src, label, &rmq_hooks, ep);
	ep->refs = 1;
	LIST_INIT(&ep->scalers);
	TAILQ_INIT(&ep->waiting);
	TAILQ_INIT(&ep->inflight);
	ev_timer_init(&ep->flush_timer, rmq_flush_cb, 0., 0.);
	ep->flush_timer.data = ep;
	LIST_INSERT_HEAD(&rmq_endpoints, ep, entry);
	return (ep);
}

/* Drops a ref; the last one closes the connection and frees. */
static void
rmq_endpoint_put(struct rmq_endpoint *ep)
{
	if (--ep->refs > 0)
		return;
	LIST_REMOVE(ep, entry);
	ev_timer_stop(ep->conn.loop, &ep->flush_timer);
	rabbitmq_conn_fini(&ep->conn);
	/* No instance is left, so no declare has a waiter. */
	rmq_fail_all(ep, -AS_ECANCELED, "source destroyed");
	free(ep);
}

void
rabbitmq_amqp_stats(const struct scaler *base, struct rabbitmq_stats *st)
{
	const struct rmq_scaler *s = (const struct rmq_scaler *)base;
	const struct rmq_endpoint *ep = s->ep;

	st->transport = RABBITMQ_AMQP;
	st->sharing = ep->refs;
	st->connected = ep->conn.amqp != NULL;
	st->connects = ep->conn.connects;
	st->reopens = ep->reopens;
	st->requests = ep->requests;
	st->batches = ep->batches;
}

/* The vtable. */

static struct scaler *
rmq_create(struct ev_loop *loop, const struct scaler_source *src, char *err,
    size_t errlen)
{
	struct rmq_scaler *s;
	struct rabbitmq_addr addr;

	if (rabbitmq_parse_address(src->address, &addr, err, errlen) != 0)
		return (NULL);
	if (addr.transport != RABBITMQ_AMQP) {
		snprintf(err, errlen, "not an amqp:// address");
		return (NULL);
	}
	s = xcalloc(1, sizeof *s);
	s->base.type = &rabbitmq_amqp_type;
	s->loop = loop;
	s->queue = xstrdup(src->queue);
	scaler_later_init(&s->later, loop, &s->base);
	s->ep = rmq_endpoint_get(loop, &addr, src);
	LIST_INSERT_HEAD(&s->ep->scalers, s, entry);
	return (&s->base);
}

/*
 * Queues a passive declare for the next flush.  While the endpoint is down
 * after a failure the poll completes on the next loop turn with that cause;
 * before the first attempt, or while the channel opens, it waits for it.
 * Returns -AS_EAGAIN while a poll is pending.
 */
static int
rmq_poll(struct scaler *base, scaler_done_fn *fn, void *arg)
{
	struct rmq_scaler *s = (struct rmq_scaler *)base;
	struct rmq_endpoint *ep = s->ep;
	int		 rc;

	if ((rc = scaler_later_start(&s->later, fn, arg)) != 0)
		return (rc);
	if (ep->conn.state == RABBITMQ_CONN_DOWN && ep->conn.err != 0) {
		rabbitmq_result_error(&s->later.res, ep->conn.err,
		    ep->conn.name, "not connected: %s", ep->conn.cause);
		rmq_later(s);
		return (0);
	}
	s->pstate = RMQ_POLL_WAITING;
	TAILQ_INSERT_TAIL(&ep->waiting, s, wentry);
	if (ep->conn.state == RABBITMQ_CONN_READY &&
	    !ev_is_active(&ep->flush_timer)) {
		ev_timer_set(&ep->flush_timer, 0., 0.);
		ev_timer_start(ep->conn.loop, &ep->flush_timer);
	}
	return (0);
}

/*
 * Completes a pending poll with -AS_ECANCELED before returning.  A declare
 * already on the wire stays in inflight, without this waiter, so that the
 * replies still match.
 */
static void
rmq_destroy(struct scaler *base)
{
	struct rmq_scaler *s = (struct rmq_scaler *)base;
	struct rmq_endpoint *ep = s->ep;
	struct scaler_result res;
	scaler_done_fn	*fn;
	void		*arg;
	char		 name[sizeof ep->conn.name];

	fn = scaler_later_cancel(&s->later, &arg);
	if (s->pstate == RMQ_POLL_WAITING)
		TAILQ_REMOVE(&ep->waiting, s, wentry);
	else if (s->pstate == RMQ_POLL_SENT)
		LIST_REMOVE(s, dentry);
	s->pstate = RMQ_POLL_IDLE;
	as_strlcpy(name, ep->conn.name, sizeof name);
	LIST_REMOVE(s, entry);
	rmq_endpoint_put(ep);
	s->ep = NULL;
	if (fn != NULL) {
		memset(&res, 0, sizeof res);
		rabbitmq_result_error(&res, -AS_ECANCELED, name, "poll "
		    "canceled: source destroyed");
		fn(&s->base, &res, arg);
	}
	free(s->queue);
	free(s);
}

const struct scaler_type rabbitmq_amqp_type = {
	.name = "rabbitmq",
	.create = rmq_create,
	.poll = rmq_poll,
	.destroy = rmq_destroy,
};
