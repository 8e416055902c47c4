/*
 * results.c: the results publisher (agentscaler/scalers/results.h), on a
 * Redis endpoint client (scalers/redis_endpoint.h) or on an AMQP
 * connection of its own (scalers/rabbitmq_conn.h).
 *
 * Redis: one command per Result; the endpoint pipelines it with every other
 * user of the server, and tells a connection that is down by failing the
 * command, which the caller sends again.
 *
 * RabbitMQ (docs/protocol.md section 8, "Results destination"): once the
 * channel is open we pipeline confirm.select (publisher confirms), the
 * declare of the durable queue (default exchange, routing key = the queue,
 * mandatory) or of the durable direct exchange (routing key = the task id,
 * not mandatory: a Result nobody waits for is dropped by the broker, which
 * is what an exchange without a matching binding means), then every send
 * that waited.  Each publish is persistent, content_type application/json,
 * message_id and correlation_id = the task id.  A send completes 0 only on
 * the broker's basic.ack for it; a basic.nack, a basic.return (the queue
 * was deleted since we declared it: declared again by the next publish),
 * no confirm within the command timeout (the connection is then dropped),
 * or a lost connection completes it with the error, and the caller sends
 * again: at least once.  Sends asked for while connecting wait for the
 * channel; once a connection attempt has failed they fail at once until a
 * connection is back.  Completions always run from a zero timer, never
 * inside results_send() nor inside a hook of rabbitmq_conn.
 */
#include <sys/queue.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <hiredis/hiredis.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/scalers/results.h"
#include "compat_amqp.h"
#include "rabbitmq.h"
#include "rabbitmq_conn.h"
#include "redis_endpoint.h"

#define RESULTS_JSON	"application/json"

enum results_kind {
	RESULTS_LIST,
	RESULTS_STREAM,
	RESULTS_AMQP
};

/* A RabbitMQ send: waiting, awaiting its confirm, or done. */
struct results_pub {
	TAILQ_ENTRY(results_pub) entry;
	char		*id;
	char		*body;
	size_t		 len;
	uint64_t	 seq;		/* publish sequence number */
	double		 sent;		/* mono */
	int		 err;
	char		 errmsg[240];
	results_done_fn	*fn;
	void		*arg;
};
TAILQ_HEAD(results_pubs, results_pub);

struct results {
	enum results_kind	 kind;
	struct ev_loop		*loop;
	struct redis_endpoint_client cl;
	char			*key;		/* list, stream or queue */

	/* RabbitMQ. */
	struct rabbitmq_conn	 conn;
	char			*exchange;	/* NULL: to the queue key */
	int			 up;		/* channel open, confirms on */
	int			 selected;	/* confirm.select-ok seen */
	int			 declared;	/* on this connection */
	int			 returned;	/* a basic.return awaits its ack */
	char			 return_text[128];
	uint64_t		 next_seq;
	struct results_pubs	 waiting;	/* for the channel */
	struct results_pubs	 confirms;	/* published, oldest first */
	struct results_pubs	 done;		/* to complete from kick */
	ev_timer		 kick;
};

struct results_op {
	results_done_fn	*fn;
	void		*arg;
};

static void	 results_amqp_ready(struct rabbitmq_conn *);
static void	 results_amqp_frame(struct rabbitmq_conn *,
		    const amqp_frame_t *);
static void	 results_amqp_down(struct rabbitmq_conn *, int,
		    const char *);

static const struct rabbitmq_conn_hooks results_amqp_hooks = {
	.ready = results_amqp_ready,
	.frame = results_amqp_frame,
	.down = results_amqp_down,
};

/* RabbitMQ: completions, from a zero timer. */

static void
results_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct results	*r = w->data;
	struct results_pub *p;

	(void)loop;
	(void)revents;
	while ((p = TAILQ_FIRST(&r->done)) != NULL) {
		TAILQ_REMOVE(&r->done, p, entry);
		p->fn(p->err, p->errmsg, p->arg);
		free(p->id);
		free(p->body);
		free(p);
	}
}

/* Takes p off list (NULL: none), gives it its outcome, queues it. */
static void
results_finish(struct results *r, struct results_pubs *list,
    struct results_pub *p, int err, const char *errmsg)
{
	if (list != NULL)
		TAILQ_REMOVE(list, p, entry);
	p->err = err;
	if (err != 0)
		snprintf(p->errmsg, sizeof p->errmsg, "rabbitmq %.64s: %.150s",
		    r->conn.name, errmsg);
	TAILQ_INSERT_TAIL(&r->done, p, entry);
	if (!ev_is_active(&r->kick)) {
		ev_timer_set(&r->kick, 0., 0.);
		ev_timer_start(r->loop, &r->kick);
	}
}

/* The oldest unconfirmed publish (or the confirm.select) bounds the wait. */
static void
results_deadline(struct results *r)
{
	struct results_pub *p = TAILQ_FIRST(&r->confirms);

	if (!r->selected)
		return;
	rabbitmq_conn_deadline(&r->conn, p != NULL ? p->sent +
	    r->conn.command_timeout : 0);
}

static void
results_publish(struct results *r, struct results_pub *p)
{
	amqp_queue_declare_t	 qd;
	amqp_exchange_declare_t	 ed;
	amqp_basic_properties_t	 props;
	amqp_bytes_t		 body;
	int			 rc, first;

	if (!r->declared) {
		if (r->exchange != NULL) {
			memset(&ed, 0, sizeof ed);
			ed.exchange = amqp_cstring_bytes(r->exchange);
			ed.type = amqp_cstring_bytes("direct");
			ed.durable = 1;
			ed.arguments = amqp_empty_table;
			rc = rabbitmq_conn_send(&r->conn, RABBITMQ_CHANNEL,
			    AMQP_EXCHANGE_DECLARE_METHOD, &ed,
			    "exchange.declare");
		} else {
			memset(&qd, 0, sizeof qd);
			qd.queue = amqp_cstring_bytes(r->key);
			qd.durable = 1;
			qd.arguments = amqp_empty_table;
			rc = rabbitmq_conn_send(&r->conn, RABBITMQ_CHANNEL,
			    AMQP_QUEUE_DECLARE_METHOD, &qd, "queue.declare");
		}
		if (rc != 0) {
			/* down() has failed everything pending. */
			results_finish(r, NULL, p, r->conn.err, r->conn.cause);
			return;
		}
		r->declared = 1;
	}
	memset(&props, 0, sizeof props);
	props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
	    AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
	    AMQP_BASIC_CORRELATION_ID_FLAG;
	props.content_type = amqp_cstring_bytes(RESULTS_JSON);
	props.delivery_mode = 2;		/* persistent */
	props.message_id = amqp_cstring_bytes(p->id);
	props.correlation_id = amqp_cstring_bytes(p->id);
	body.bytes = p->body;
	body.len = p->len;
	p->seq = r->next_seq++;
	p->sent = as_mono_now();
	first = TAILQ_EMPTY(&r->confirms);
	TAILQ_INSERT_TAIL(&r->confirms, p, entry);
	if (first)
		results_deadline(r);
	if (r->exchange != NULL)
		rc = amqp_basic_publish(r->conn.amqp, RABBITMQ_CHANNEL,
		    amqp_cstring_bytes(r->exchange), amqp_cstring_bytes(p->id),
		    0, 0, &props, body);
	else
		rc = amqp_basic_publish(r->conn.amqp, RABBITMQ_CHANNEL,
		    amqp_empty_bytes, amqp_cstring_bytes(r->key), 1, 0,
		    &props, body);
	if (rc != AMQP_STATUS_OK)
		rabbitmq_conn_lost(&r->conn, rabbitmq_status_err(rc),
		    "publishing a result: %s", amqp_error_string2(rc));
}

static void
results_amqp_ready(struct rabbitmq_conn *conn)
{
	struct results	*r = conn->arg;
	amqp_confirm_select_t cs;
	struct results_pub *p;

	r->next_seq = 1;
	r->declared = 0;
	r->returned = 0;
	r->selected = 0;
	memset(&cs, 0, sizeof cs);
	if (rabbitmq_conn_send(conn, RABBITMQ_CHANNEL,
	    AMQP_CONFIRM_SELECT_METHOD, &cs, "confirm.select") != 0)
		return;
	rabbitmq_conn_deadline(conn, as_mono_now() + conn->command_timeout);
	r->up = 1;
	/* The channel keeps the order: the publishes follow the select. */
	while (r->up && (p = TAILQ_FIRST(&r->waiting)) != NULL) {
		TAILQ_REMOVE(&r->waiting, p, entry);
		results_publish(r, p);
	}
}

/* basic.ack (ok) or basic.nack for tag, or every tag up to it. */
static void
results_confirmed(struct results *r, uint64_t tag, int multiple, int ok)
{
	struct results_pub *p;

	while ((p = TAILQ_FIRST(&r->confirms)) != NULL && (p->seq == tag ||
	    (multiple && p->seq < tag))) {
		if (!ok)
			results_finish(r, &r->confirms, p, -AS_EAGAIN,
			    "the broker refused the result (basic.nack)");
		else if (r->returned && p->seq == tag) {
			results_finish(r, &r->confirms, p, -AS_ENOTFOUND,
			    r->return_text);
			r->returned = 0;
			r->declared = 0;
		} else
			results_finish(r, &r->confirms, p, 0, NULL);
	}
	results_deadline(r);
}

static void
results_amqp_frame(struct rabbitmq_conn *conn, const amqp_frame_t *f)
{
	struct results	*r = conn->arg;
	amqp_basic_ack_t *a;
	amqp_basic_nack_t *n;
	amqp_basic_return_t *rt;
	amqp_channel_close_t *cc;
	char		 text[128];

	/* Content frames: the body of a returned publish; nothing to do. */
	if (f->frame_type != AMQP_FRAME_METHOD)
		return;
	switch (f->payload.method.id) {
	case AMQP_CONFIRM_SELECT_OK_METHOD:
		r->selected = 1;
		rabbitmq_conn_healthy(conn);
		rabbitmq_conn_deadline(conn, 0);
		results_deadline(r);
		break;
	case AMQP_BASIC_ACK_METHOD:
		a = f->payload.method.decoded;
		results_confirmed(r, a->delivery_tag, a->multiple, 1);
		break;
	case AMQP_BASIC_NACK_METHOD:
		n = f->payload.method.decoded;
		results_confirmed(r, n->delivery_tag, n->multiple, 0);
		break;
	case AMQP_BASIC_RETURN_METHOD:
		/* Comes just before the ack of the publish it returns. */
		rt = f->payload.method.decoded;
		rabbitmq_bytes(text, sizeof text, rt->reply_text);
		snprintf(r->return_text, sizeof r->return_text, "returned: %u "
		    "%.100s", (unsigned)rt->reply_code, text);
		r->returned = 1;
		break;
	case AMQP_CHANNEL_CLOSE_METHOD:
		cc = f->payload.method.decoded;
		rabbitmq_bytes(text, sizeof text, cc->reply_text);
		rabbitmq_conn_lost(conn, rabbitmq_code_err(cc->reply_code),
		    "channel closed by the broker: %s", text);
		break;
	default:
		break;			/* declare-ok and the like */
	}
}

static void
results_amqp_down(struct rabbitmq_conn *conn, int err, const char *cause)
{
	struct results	*r = conn->arg;
	struct results_pub *p;

	r->up = 0;
	r->selected = 0;
	while ((p = TAILQ_FIRST(&r->confirms)) != NULL)
		results_finish(r, &r->confirms, p, err, cause);
	while ((p = TAILQ_FIRST(&r->waiting)) != NULL)
		results_finish(r, &r->waiting, p, err, cause);
}

static struct results *
results_amqp_new(struct ev_loop *loop, const struct scaler_source *src,
    char *err, size_t errlen)
{
	struct results	*r;
	struct rabbitmq_addr addr;
	int		 has_q, has_x;
	const char	*name;

	if (rabbitmq_parse_transport(src->address, RABBITMQ_AMQP, &addr, err,
	    errlen) != 0)
		return (NULL);
	has_q = src->queue != NULL && src->queue[0] != '\0';
	has_x = src->exchange != NULL && src->exchange[0] != '\0';
	if (has_q == has_x) {
		snprintf(err, errlen, "results: give one of queue, exchange");
		return (NULL);
	}
	name = has_q ? src->queue : src->exchange;
	if (strlen(name) > RABBITMQ_NAME_MAX) {
		snprintf(err, errlen, "results: the %s name is longer than "
		    "%d bytes", has_q ? "queue" : "exchange", RABBITMQ_NAME_MAX);
		return (NULL);
	}
	r = xcalloc(1, sizeof *r);
	r->kind = RESULTS_AMQP;
	r->loop = loop;
	if (has_q)
		r->key = xstrdup(src->queue);
	else
		r->exchange = xstrdup(src->exchange);
	TAILQ_INIT(&r->waiting);
	TAILQ_INIT(&r->confirms);
	TAILQ_INIT(&r->done);
	ev_timer_init(&r->kick, results_kick_cb, 0., 0.);
	r->kick.data = r;
	rabbitmq_conn_init(&r->conn, loop, &addr, src, "agentscaler.results",
	    &results_amqp_hooks, r);
	return (r);
}

static int
results_amqp_send(struct results *r, const char *id, const char *body,
    size_t len, results_done_fn *fn, void *arg)
{
	struct results_pub *p;

	p = xcalloc(1, sizeof *p);
	p->id = xstrdup(id);
	p->body = xmalloc(len > 0 ? len : 1);
	memcpy(p->body, body, len);
	p->len = len;
	p->fn = fn;
	p->arg = arg;
	if (r->up)
		results_publish(r, p);
	else if (r->conn.down_at != 0)
		results_finish(r, NULL, p, r->conn.err != 0 ? r->conn.err :
		    -AS_ECONN, r->conn.cause[0] != '\0' ? r->conn.cause :
		    "not connected");
	else
		TAILQ_INSERT_TAIL(&r->waiting, p, entry);
	return (0);
}

/* Redis. */

struct results *
results_new(struct ev_loop *loop, const struct scaler_source *src, char *err,
    size_t errlen)
{
	struct results	*r;
	int		 stream;

	if (src->type != NULL && strcmp(src->type, "rabbitmq") == 0)
		return (results_amqp_new(loop, src, err, errlen));
	if (src->type == NULL || (strcmp(src->type, "redis-list") != 0 &&
	    strcmp(src->type, "redis-stream") != 0)) {
		snprintf(err, errlen, "results: type %s is not supported "
		    "(rabbitmq, redis-list, redis-stream)", src->type != NULL ?
		    src->type : "(none)");
		return (NULL);
	}
	stream = strcmp(src->type, "redis-stream") == 0;
	if (redis_endpoint_validate(src->type, src, err, errlen) != 0)
		return (NULL);
	if (src->queue == NULL || src->queue[0] == '\0') {
		snprintf(err, errlen, "results: no queue (the %s key)",
		    stream ? "stream" : "list");
		return (NULL);
	}
	r = xcalloc(1, sizeof *r);
	if (redis_endpoint_client_init(&r->cl, loop, src, err, errlen) != 0) {
		free(r);
		return (NULL);
	}
	r->key = xstrdup(src->queue);
	r->kind = stream ? RESULTS_STREAM : RESULTS_LIST;
	r->loop = loop;
	return (r);
}

void
results_free(struct results *r)
{
	struct results_pub *p;

	if (r == NULL)
		return;
	if (r->kind != RESULTS_AMQP) {
		redis_endpoint_client_fini(&r->cl);
		free(r->key);
		free(r);
		return;
	}
	/* No hook runs from the fini: cancel what is pending, then run it. */
	rabbitmq_conn_fini(&r->conn);
	ev_timer_stop(r->loop, &r->kick);
	while ((p = TAILQ_FIRST(&r->confirms)) != NULL)
		results_finish(r, &r->confirms, p, -AS_ECANCELED, "cancelled");
	while ((p = TAILQ_FIRST(&r->waiting)) != NULL)
		results_finish(r, &r->waiting, p, -AS_ECANCELED, "cancelled");
	ev_timer_stop(r->loop, &r->kick);
	results_kick_cb(r->loop, &r->kick, 0);
	free(r->key);
	free(r->exchange);
	free(r);
}

static void
results_reply(int err, const struct redisReply *reply, const char *errmsg,
    void *arg)
{
	struct results_op *op = arg;
	char		 msg[256];

	if (err == 0 && reply->type == REDIS_REPLY_ERROR) {
		snprintf(msg, sizeof msg, "redis: %s", reply->str);
		op->fn(-AS_EPROTO, msg, op->arg);
	} else
		op->fn(err, err != 0 ? errmsg : "", op->arg);
	free(op);
}

int
results_send(struct results *r, const char *id, const char *body, size_t len,
    results_done_fn *fn, void *arg)
{
	struct results_op *op;
	int		 rc;

	if (r == NULL || id == NULL || body == NULL || fn == NULL)
		return (-AS_EINVAL);
	if (r->kind == RESULTS_AMQP)
		return (results_amqp_send(r, id, body, len, fn, arg));
	op = xcalloc(1, sizeof *op);
	op->fn = fn;
	op->arg = arg;
	if (r->kind == RESULTS_STREAM)
		rc = redis_endpoint_command(&r->cl, results_reply, op,
		    "XADD %s * id %s result %b", r->key, id, body, len);
	else
		rc = redis_endpoint_command(&r->cl, results_reply, op,
		    "LPUSH %s %b", r->key, body, len);
	if (rc != 0)
		free(op);
	return (rc);
}
