/*
 * check_redis_consume.c: the redis-list and redis-stream consumers
 * (scalers/redis_consume.c) against real redis-server processes
 * (tests/util/testutil.c), each test with its own server and its own ev
 * loop (a checked fixture), driven with EVRUN_ONCE under bounded
 * deadlines.  What Redis holds is checked through separate blocking
 * hiredis connections.
 */
#include <sys/stat.h>

#include <check.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>
#include <ev.h>
#include <hiredis/hiredis.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/consumer.h"
#include "scalers/redis_endpoint.h"
#include "agentscaler/scalers/scaler.h"
#include "util/consumer.h"
#include "util/loop.h"
#include "util/testutil.h"

#define DEADLINE	10.0	/* seconds; generous for valgrind */
#define MAXMSG		64

/* What a consumer reported. */
struct rec {
	struct consumer		*c;
	struct consumer_msg	*msgs[MAXMSG];	/* delivered, in order */
	int			 n;
	int			 nup;
	int			 ndown;
	int			 up;		/* last state */
	char			 why[256];
	int			 destroy_at;	/* destroy at delivery n */
};

/* The test's loop and server (the checked fixture's). */
static struct ev_loop *loop;
static struct tu_redis srv;

static void
rec_deliver(struct consumer *c, struct consumer_msg *m, void *arg)
{
	struct rec	*r = arg;

	ck_assert_ptr_eq(c, r->c);
	ck_assert_int_lt(r->n, MAXMSG);
	ck_assert(m->body != NULL && m->body[m->len] == '\0');
	ck_assert(m->ref[0] != '\0');
	r->msgs[r->n++] = m;
	if (r->n == r->destroy_at) {
		c->type->destroy(c);
		r->c = NULL;
	}
}

static void
rec_state(struct consumer *c, int up, const char *errmsg, void *arg)
{
	struct rec	*r = arg;

	ck_assert_ptr_eq(c, r->c);
	ck_assert_int_ne(up, r->up);
	r->up = up;
	if (up) {
		r->nup++;
		ck_assert(errmsg == NULL);
	} else {
		r->ndown++;
		ck_assert(errmsg != NULL && *errmsg != '\0');
		as_strlcpy(r->why, errmsg, sizeof r->why);
	}
}

static int
pred_up(void *arg)
{
	return (((struct rec *)arg)->up == 1);
}

static int
pred_down(void *arg)
{
	return (((struct rec *)arg)->ndown > 0 && ((struct rec *)arg)->up == 0);
}

/* A reply from a fresh blocking connection; the caller frees it. */
static redisReply *
cmd(const struct tu_redis *r, const char *fmt, ...)
{
	redisContext	*c;
	redisReply	*rep;
	va_list		 ap;

	c = redisConnect("127.0.0.1", r->port);
	ck_assert(c != NULL && c->err == 0);
	va_start(ap, fmt);
	rep = redisvCommand(c, fmt, ap);
	va_end(ap);
	ck_assert(rep != NULL);
	redisFree(c);
	return (rep);
}

/* The element i of a list, or NULL; the caller frees it. */
static char *
lindex(const struct tu_redis *r, const char *key, int i)
{
	return (tu_redis_str(r, "LINDEX %s %d", key, i));
}

/* 1 when value is an element of the list key. */
static int
in_list(const struct tu_redis *r, const char *key, const char *value)
{
	redisReply	*rep;
	int		 found;

	rep = cmd(r, "LPOS %s %s", key, value);
	ck_assert(rep->type == REDIS_REPLY_INTEGER ||
	    rep->type == REDIS_REPLY_NIL);
	found = rep->type == REDIS_REPLY_INTEGER;
	freeReplyObject(rep);
	return (found);
}

/* XPENDING <stream> <group>: the number of pending entries. */
static long long
xpending(const struct tu_redis *r, const char *stream, const char *group)
{
	redisReply	*rep;
	long long	 n;

	rep = cmd(r, "XPENDING %s %s", stream, group);
	ck_assert(rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1);
	n = rep->element[0]->integer;
	freeReplyObject(rep);
	return (n);
}

/* XADD <stream> * <f> <v> [<f2> <v2>]; returns the new id (caller frees). */
static char *
xadd(const struct tu_redis *r, const char *stream, const char *f,
    const char *v, const char *f2, const char *v2)
{
	if (f2 != NULL)
		return (tu_redis_str(r, "XADD %s * %s %s %s %s", stream, f, v,
		    f2, v2));
	return (tu_redis_str(r, "XADD %s * %s %s", stream, f, v));
}

static struct scaler_source
source(const struct tu_redis *r, const char *type, const char *queue,
    const char *group)
{
	struct scaler_source src;

	memset(&src, 0, sizeof src);
	src.type = type;
	src.address = r->url;
	src.queue = queue;
	src.consumer_group = group;
	return (src);
}

/* Creates and starts a consumer recording into rec; waits until it is up. */
static struct consumer *
start(const struct consumer_type *t, const struct scaler_source *src,
    const struct consumer_options *o, struct rec *rec)
{
	struct consumer	*c;
	char		 err[256] = "";

	memset(rec, 0, sizeof *rec);
	rec->up = -1;
	c = t->create(loop, src, o, err, sizeof err);
	ck_assert_msg(c != NULL, "create: %s", err);
	rec->c = c;
	ck_assert_int_eq(t->start(c, rec_deliver, rec_state, rec), 0);
	ck_assert_int_eq(t->start(c, rec_deliver, rec_state, rec),
	    -AS_EAGAIN);
	/* Nothing runs inside start(). */
	ck_assert_int_eq(rec->nup + rec->ndown + rec->n, 0);
	ck_assert_msg(tu_run_until(loop, pred_up, rec, DEADLINE),
	    "never up: %s", rec->why);
	return (c);
}

/* A redis-list consumer started that reports itself down first. */
static struct consumer *
start_down(const struct scaler_source *src, const struct consumer_options *o,
    struct rec *rec)
{
	struct consumer	*c;
	char		 err[256];

	memset(rec, 0, sizeof *rec);
	rec->up = -1;
	c = consumer_type_redis_list.create(loop, src, o, err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	rec->c = c;
	ck_assert_int_eq(c->type->start(c, rec_deliver, rec_state, rec), 0);
	ck_assert(tu_run_until(loop, pred_down, rec, DEADLINE));
	return (c);
}

/* Acks m and waits for the completion; returns its error. */
static int
ack_wait(struct consumer *c, struct consumer_msg *m)
{
	struct tu_op	 op;

	return (tu_ack_wait(loop, c, m, &op, DEADLINE));
}

/* Hands body off and waits; asserts success and returns the outcome. */
static int
handoff_ok(struct consumer *c, const char *ns, const char *sandbox,
    const char *task_id, const char *body)
{
	struct tu_op	 op;

	ck_assert_msg(tu_handoff_wait(loop, c, ns, sandbox, task_id, body,
	    &op, DEADLINE) == 0, "hand-off of %s: %s", task_id, op.msg);
	return (op.outcome);
}

/* Releases what a test still holds. */
static void
rec_free(struct rec *r, int from)
{
	int	 i;

	for (i = from; i < r->n; i++) {
		consumer_msg_free(r->msgs[i]);
		r->msgs[i] = NULL;
	}
}

/* The endpoint's client API, which the consumers are built on. */

struct ep_reply {
	int		 n;
	int		 err;
	int		 type;
	long long	 integer;
	char		 str[64];
	size_t		 elements;
	char		 msg[256];
};

static void
ep_reply_cb(int err, const redisReply *r, const char *errmsg, void *arg)
{
	struct ep_reply	*e = arg;

	e->n++;
	e->err = err;
	as_strlcpy(e->msg, errmsg, sizeof e->msg);
	if (r == NULL) {
		ck_assert_int_ne(err, 0);
		return;
	}
	e->type = r->type;
	e->integer = r->integer;
	e->elements = r->elements;
	if (r->str != NULL)
		as_strlcpy(e->str, r->str, sizeof e->str);
}

static int
pred_ep(void *arg)
{
	return (((struct ep_reply *)arg)->n > 0);
}

struct ep_link {
	int	 ev[8];
	int	 n;
};

static void
ep_link_cb(struct redis_endpoint_client *cl, int event, const char *errmsg,
    void *arg)
{
	struct ep_link	*l = arg;

	(void)cl;
	(void)errmsg;
	if (l->n < 8)
		l->ev[l->n++] = event;
}

START_TEST(test_endpoint_client)
{
	struct scaler_source src;
	struct redis_endpoint_client a, b;
	struct redis_endpoint_tx *tx;
	struct ep_reply	 e, e2;
	struct ep_link	 l;
	char		 err[256];

	memset(&src, 0, sizeof src);
	src.address = srv.url;
	ck_assert_int_eq(redis_endpoint_client_init(&a, loop, &src, err,
	    sizeof err), 0);
	ck_assert_int_eq(redis_endpoint_client_init(&b, loop, &src, err,
	    sizeof err), 0);
	memset(&l, 0, sizeof l);
	redis_endpoint_client_link(&a, ep_link_cb, &l);
	ck_assert_int_eq(l.n, 0);
	ck_assert(tu_run_count(loop, &l.n, 1, DEADLINE));
	ck_assert_int_eq(l.ev[0], REDIS_ENDPOINT_LINK_UP);

	memset(&e, 0, sizeof e);
	ck_assert_int_eq(redis_endpoint_command(&a, ep_reply_cb, &e,
	    "SET %s %b", "k", "v\0w", (size_t)3), 0);
	ck_assert_int_eq(e.n, 0);
	ck_assert(tu_run_until(loop, pred_ep, &e, DEADLINE));
	ck_assert(e.err == 0 && e.type == REDIS_REPLY_STATUS);
	ck_assert_int_eq(tu_redis_cmd(&srv, "STRLEN k"), 3);
	ck_assert_int_eq(redis_endpoint_command(&a, NULL, NULL, "PING"),
	    -AS_EINVAL);

	/* A command that does not format fails later, and sends nothing. */
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(redis_endpoint_command(&a, ep_reply_cb, &e,
	    "GET %q"), 0);
	ck_assert_int_eq(e.n, 0);
	ck_assert(tu_run_until(loop, pred_ep, &e, DEADLINE));
	ck_assert_int_eq(e.err, -AS_EINVAL);

	/* A transaction: EXEC's reply. */
	tx = redis_endpoint_tx_new();
	ck_assert_int_eq(redis_endpoint_tx_add(tx, "SET %s 1", "n"), 0);
	ck_assert_int_eq(redis_endpoint_tx_add(tx, "INCR %s", "n"), 0);
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(redis_endpoint_tx_send(&a, tx, ep_reply_cb, &e), 0);
	ck_assert(tu_run_until(loop, pred_ep, &e, DEADLINE));
	ck_assert(e.err == 0 && e.type == REDIS_REPLY_ARRAY &&
	    e.elements == 2);
	ck_assert_int_eq(tu_redis_cmd(&srv, "GET n"), 0);

	/* One that does not format sends nothing: no MULTI left open. */
	tx = redis_endpoint_tx_new();
	ck_assert_int_eq(redis_endpoint_tx_add(tx, "SET %s 5", "n"), 0);
	ck_assert_int_eq(redis_endpoint_tx_add(tx, "INCR %q"), -AS_EINVAL);
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(redis_endpoint_tx_send(&a, tx, ep_reply_cb, &e), 0);
	ck_assert(tu_run_until(loop, pred_ep, &e, DEADLINE));
	ck_assert_int_eq(e.err, -AS_EINVAL);
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(redis_endpoint_command(&b, ep_reply_cb, &e,
	    "GET n"), 0);
	ck_assert(tu_run_until(loop, pred_ep, &e, DEADLINE));
	ck_assert(e.type == REDIS_REPLY_STRING);
	ck_assert_str_eq(e.str, "2");

	/*
	 * Finalized with a command in flight: canceled inside fini(); the
	 * reply that comes later for it is dropped, and b goes on.
	 */
	memset(&e, 0, sizeof e);
	memset(&e2, 0, sizeof e2);
	ck_assert_int_eq(redis_endpoint_command(&a, ep_reply_cb, &e,
	    "INCR n"), 0);
	ck_assert_int_eq(redis_endpoint_command(&b, ep_reply_cb, &e2,
	    "INCR n"), 0);
	redis_endpoint_client_fini(&a);
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(e.err, -AS_ECANCELED);
	redis_endpoint_client_fini(&a);
	ck_assert_int_eq(redis_endpoint_command(&a, ep_reply_cb, &e,
	    "PING"), -AS_EINVAL);
	ck_assert(tu_run_until(loop, pred_ep, &e2, DEADLINE));
	ck_assert(e2.err == 0 && e2.integer == 4);
	tu_run_for(loop, 0.1);
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(l.n, 1);
	redis_endpoint_client_fini(&b);
}
END_TEST

/* Validation. */

struct validate_row {
	const struct consumer_type *type;
	const char	*queue;
	const char	*group;
	const char	*processing;
	const char	*instance;
	int		 window;
	double		 poll;
	const char	*err;		/* NULL: valid */
};

static const struct validate_row validate_rows[] = {
	{ &consumer_type_redis_list, "q", NULL, NULL, "as-0", 1, 1, NULL },
	{ &consumer_type_redis_list, "q", NULL, "q:mine", "a.b_c:d-E9", 5, 0,
	    NULL },
	{ &consumer_type_redis_stream, "s", "g", NULL, "as-0", 1, 1, NULL },
	{ &consumer_type_redis_list, NULL, NULL, NULL, "a", 1, 1, "queue" },
	{ &consumer_type_redis_list, "", NULL, NULL, "a", 1, 1, "queue" },
	{ &consumer_type_redis_list, "q", NULL, "", "a", 1, 1,
	    "processing list name is empty" },
	{ &consumer_type_redis_stream, "s", NULL, NULL, "a", 1, 1,
	    "consumerGroup" },
	{ &consumer_type_redis_stream, "s", "", NULL, "a", 1, 1,
	    "consumerGroup" },
	{ &consumer_type_redis_stream, "s", "g", "p", "a", 1, 1,
	    "processingList is for redis-list" },
	{ &consumer_type_redis_list, "q", NULL, NULL, "a", 0, 1,
	    "window must be at least 1" },
	{ &consumer_type_redis_stream, "s", "g", NULL, "a", -3, 1,
	    "window must be at least 1" },
	{ &consumer_type_redis_list, "q", NULL, NULL, "", 1, 1,
	    "instance name is empty" },
	{ &consumer_type_redis_list, "q", NULL, NULL, NULL, 1, 1,
	    "instance name is empty" },
	{ &consumer_type_redis_list, "q", NULL, NULL, "a b", 1, 1,
	    "found byte 0x20" },
	{ &consumer_type_redis_stream, "s", "g", NULL, "a/b", 1, 1,
	    "found byte 0x2f" },
	{ &consumer_type_redis_list, "q", NULL, NULL, "a", 1, -1,
	    "must be from 0" },
	{ &consumer_type_redis_list, "q", NULL, NULL, "a", 1, NAN,
	    "must be from 0" },
	{ &consumer_type_redis_list, "q", NULL, NULL, "a", 1, INFINITY,
	    "must be from 0" },
};

START_TEST(test_validate)
{
	const struct validate_row *row = &validate_rows[_i];
	struct consumer_options o;
	struct scaler_source src;
	char		 err[256] = "";
	int		 rc;

	memset(&src, 0, sizeof src);
	src.address = "redis://127.0.0.1:1/0";
	src.queue = row->queue;
	src.consumer_group = row->group;
	src.processing = row->processing;
	o = tu_consumer_options(row->instance, row->window);
	o.poll_interval = row->poll;
	rc = row->type->validate(&src, &o, err, sizeof err);
	if (row->err == NULL) {
		ck_assert_msg(rc == 0, "row %d: %s", _i, err);
		return;
	}
	ck_assert_int_eq(rc, -AS_EINVAL);
	ck_assert_msg(strstr(err, row->err) != NULL, "row %d: \"%s\"", _i,
	    err);
	/* create() refuses the same, with the same message. */
	err[0] = '\0';
	ck_assert(row->type->create(NULL, &src, &o, err, sizeof err) == NULL);
	ck_assert(strstr(err, row->err) != NULL);
}
END_TEST

START_TEST(test_validate_other)
{
	struct consumer_options o = tu_consumer_options("a", 1);
	struct scaler_source src;
	char		 err[256];

	memset(&src, 0, sizeof src);
	src.queue = "q";
	ck_assert_int_eq(consumer_type_redis_list.validate(&src, &o, err,
	    sizeof err), -AS_EINVAL);
	ck_assert(strstr(err, "address") != NULL);
	src.address = "redis://u:hunter2@h";
	ck_assert(consumer_type_redis_list.create(NULL, &src, &o, err,
	    sizeof err) == NULL);
	ck_assert(strstr(err, "hunter2") == NULL);
	src.address = "redis://h";
	ck_assert_int_eq(consumer_type_redis_list.validate(&src, NULL, err,
	    sizeof err), -AS_EINVAL);
	o.claim_idle = -1;
	ck_assert_int_eq(consumer_type_redis_list.validate(&src, &o, err,
	    sizeof err), -AS_EINVAL);
	o.claim_idle = 0;
	o.marker_ttl = 1e12;
	ck_assert_int_eq(consumer_type_redis_list.validate(&src, &o, err,
	    sizeof err), -AS_EINVAL);
	ck_assert_str_eq(consumer_type_redis_list.name, "redis-list");
	ck_assert_str_eq(consumer_type_redis_stream.name, "redis-stream");
}
END_TEST

/* redis-list. */

START_TEST(test_list_fifo_ack)
{
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("as-1", 10);
	struct consumer	*c;
	struct rec	 rec;
	char		 body[16], *s;
	int		 i;

	for (i = 1; i <= 5; i++)
		ck_assert_int_eq(tu_redis_cmd(&srv, "LPUSH q m%d", i), i);
	src = source(&srv, "redis-list", "q", NULL);
	c = start(&consumer_type_redis_list, &src, &o, &rec);
	ck_assert(tu_run_count(loop, &rec.n, 5, DEADLINE));
	for (i = 0; i < 5; i++) {
		snprintf(body, sizeof body, "m%d", i + 1);
		ck_assert_str_eq(rec.msgs[i]->body, body);
		ck_assert_uint_eq(rec.msgs[i]->len, strlen(body));
		ck_assert_int_eq(rec.msgs[i]->redelivered, 0);
		ck_assert(rec.msgs[i]->received > 0);
	}
	ck_assert_int_eq(c->type->outstanding(c), 5);
	/* Moved to the default processing list, oldest on the right. */
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q"), 0);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:processing:as-1"), 5);
	s = lindex(&srv, "q:processing:as-1", -1);
	ck_assert_str_eq(s, "m1");
	free(s);

	/* Ack removes exactly that entry. */
	ck_assert(in_list(&srv, "q:processing:as-1", "m3"));
	ck_assert_int_eq(ack_wait(c, rec.msgs[2]), 0);
	rec.msgs[2] = NULL;
	ck_assert_int_eq(c->type->outstanding(c), 4);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:processing:as-1"), 4);
	ck_assert(!in_list(&srv, "q:processing:as-1", "m3"));
	for (i = 0; i < 5; i++) {
		if (i == 2)
			continue;
		ck_assert_int_eq(ack_wait(c, rec.msgs[i]), 0);
		rec.msgs[i] = NULL;
	}
	ck_assert_int_eq(c->type->outstanding(c), 0);
	ck_assert_int_eq(tu_redis_cmd(&srv, "EXISTS q:processing:as-1"), 0);

	/* Nothing more was delivered. */
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(rec.n, 5);
	c->type->destroy(c);
}
END_TEST

START_TEST(test_list_window)
{
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("as-1", 3);
	struct consumer	*c;
	struct rec	 rec;
	char		 body[16];
	int		 i;

	for (i = 1; i <= 10; i++)
		tu_redis_cmd(&srv, "LPUSH q m%d", i);
	src = source(&srv, "redis-list", "q", NULL);
	src.processing = "q:mine";
	c = start(&consumer_type_redis_list, &src, &o, &rec);
	ck_assert(tu_run_count(loop, &rec.n, 3, DEADLINE));
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(rec.n, 3);
	ck_assert_int_eq(c->type->outstanding(c), 3);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q"), 7);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:mine"), 3);

	/* One ack makes room for exactly one. */
	ck_assert_int_eq(ack_wait(c, rec.msgs[0]), 0);
	ck_assert(tu_run_count(loop, &rec.n, 4, DEADLINE));
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(rec.n, 4);
	ck_assert_str_eq(rec.msgs[3]->body, "m4");

	/* Window 0 pauses: acks free room, nothing comes. */
	c->type->set_window(c, 0);
	for (i = 1; i < 4; i++)
		ck_assert_int_eq(ack_wait(c, rec.msgs[i]), 0);
	ck_assert_int_eq(c->type->outstanding(c), 0);
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(rec.n, 4);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q"), 6);

	/* Raising it fetches at once, up to the new window. */
	c->type->set_window(c, 5);
	ck_assert(tu_run_count(loop, &rec.n, 9, DEADLINE));
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(rec.n, 9);
	ck_assert_int_eq(c->type->outstanding(c), 5);
	for (i = 4; i < 9; i++) {
		snprintf(body, sizeof body, "m%d", i + 1);
		ck_assert_str_eq(rec.msgs[i]->body, body);
	}
	/* Lowering it below outstanding delivers nothing more until acks. */
	c->type->set_window(c, 1);
	for (i = 4; i < 8; i++)
		ck_assert_int_eq(ack_wait(c, rec.msgs[i]), 0);
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(rec.n, 9);
	ck_assert_int_eq(ack_wait(c, rec.msgs[8]), 0);
	ck_assert(tu_run_count(loop, &rec.n, 10, DEADLINE));
	ck_assert_str_eq(rec.msgs[9]->body, "m10");
	c->type->destroy(c);
	rec_free(&rec, 9);
	/* Destroyed while holding m10: it stays in the processing list. */
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:mine"), 1);
}
END_TEST

START_TEST(test_list_dead_letter)
{
	static const char record[] = "{\"reason\":\"task.notJson\","
	    "\"original\":\"m1\"}";
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("as-1", 10);
	struct consumer	*c;
	struct rec	 rec;
	struct tu_op	 d;
	struct tu_capture cap;
	char		*s, *log;

	tu_redis_cmd(&srv, "LPUSH q m1");
	tu_redis_cmd(&srv, "LPUSH q m2");
	tu_redis_cmd(&srv, "LPUSH q m3");
	src = source(&srv, "redis-list", "q", NULL);
	c = start(&consumer_type_redis_list, &src, &o, &rec);
	ck_assert(tu_run_count(loop, &rec.n, 3, DEADLINE));

	ck_assert_msg(tu_dead_letter_wait(loop, c, rec.msgs[0], record, &d,
	    DEADLINE) == 0, "%s", d.msg);
	ck_assert_int_eq(c->type->outstanding(c), 2);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q.rejected"), 1);
	s = lindex(&srv, "q.rejected", 0);
	ck_assert_str_eq(s, record);
	free(s);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:processing:as-1"), 2);
	ck_assert(!in_list(&srv, "q:processing:as-1", "m1"));
	/* In one transaction. */
	s = tu_redis_str(&srv, "INFO commandstats");
	ck_assert(s != NULL && strstr(s, "cmdstat_multi:calls=1,") != NULL);
	ck_assert(strstr(s, "cmdstat_exec:calls=1,") != NULL);
	free(s);

	/*
	 * A rejected key of another type: Redis runs the rest of the
	 * transaction, and the completion says what failed.
	 */
	tu_redis_cmd(&srv, "DEL q.rejected");
	tu_redis_cmd(&srv, "SET q.rejected x");
	tu_capture_start(&cap);
	tu_dead_letter_wait(loop, c, rec.msgs[1], record, &d, DEADLINE);
	log = tu_capture_end(&cap);
	ck_assert_int_eq(d.err, -AS_EPROTO);
	ck_assert_msg(strstr(d.msg, "WRONGTYPE") != NULL, "%s", d.msg);
	ck_assert(strstr(d.msg, "command 1 of the transaction") != NULL);
	ck_assert(strstr(log, "q.rejected exists and is not a list") != NULL);
	free(log);
	ck_assert_int_eq(c->type->outstanding(c), 1);

	/* Argument checks keep the message with the caller. */
	ck_assert_int_eq(c->type->dead_letter(c, rec.msgs[2], NULL, 0,
	    tu_op_done, &d), -AS_EINVAL);
	ck_assert_int_eq(c->type->ack(c, rec.msgs[2], NULL, NULL),
	    -AS_EINVAL);
	ck_assert_int_eq(c->type->ack(c, NULL, tu_op_done, &d), -AS_EINVAL);
	ck_assert_int_eq(ack_wait(c, rec.msgs[2]), 0);
	c->type->destroy(c);
}
END_TEST

/* Delivery i of r has this body and redelivered flag. */
static void
assert_msg(const struct rec *r, int i, const char *body, int redelivered)
{
	ck_assert_int_lt(i, r->n);
	ck_assert_str_eq(r->msgs[i]->body, body);
	ck_assert_int_eq(r->msgs[i]->redelivered, redelivered);
}

/*
 * Pushes m1..m3 to q; a consumer of instance o takes them, acks m1 and
 * dies (destroyed) holding m2 and m3 in q:processing:<instance>.
 */
static void
crash_holding_two(const struct scaler_source *src,
    const struct consumer_options *o)
{
	struct consumer	*c;
	struct rec	 r;

	tu_redis_cmd(&srv, "LPUSH q m1");
	tu_redis_cmd(&srv, "LPUSH q m2");
	tu_redis_cmd(&srv, "LPUSH q m3");
	c = start(&consumer_type_redis_list, src, o, &r);
	ck_assert(tu_run_count(loop, &r.n, 3, DEADLINE));
	ck_assert_int_eq(ack_wait(c, r.msgs[0]), 0);
	c->type->destroy(c);
	rec_free(&r, 1);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:processing:%s",
	    o->instance), 2);
}

/*
 * Adoption (leader election): a new leader takes over what the old one
 * left in its processing list, once at start and again when more arrives
 * there late; without adopt, nothing of another instance is touched.
 */
START_TEST(test_list_adopt)
{
	struct scaler_source src;
	struct consumer_options oa = tu_consumer_options("as-a", 10);
	struct consumer_options ob = tu_consumer_options("as-b", 10);
	struct consumer	*b;
	struct rec	 rb;
	char		*score;
	int		 i;

	oa.adopt = ob.adopt = 1;
	ob.poll_interval = 0.1;		/* sweeps every second */
	src = source(&srv, "redis-list", "q", NULL);
	/* The leader dies holding m2 and m3, its list registered. */
	crash_holding_two(&src, &oa);
	ck_assert_int_eq(tu_redis_cmd(&srv, "ZCARD "
	    "agentscaler:processing-lists:q"), 1);
	/* Its heartbeat outlives it by its TTL: let it expire now. */
	ck_assert_int_eq(tu_redis_cmd(&srv, "DEL "
	    "agentscaler:processing-alive:q:processing:as-a"), 1);

	/* The next leader: m2, m3 first (redelivered, oldest first), then new. */
	tu_redis_cmd(&srv, "LPUSH q m4");
	b = start(&consumer_type_redis_list, &src, &ob, &rb);
	ck_assert(tu_run_count(loop, &rb.n, 3, DEADLINE));
	assert_msg(&rb, 0, "m2", 1);
	assert_msg(&rb, 1, "m3", 1);
	assert_msg(&rb, 2, "m4", 0);
	/* Moved, not copied: all three in b's list, none left in a's. */
	ck_assert_int_eq(tu_redis_cmd(&srv, "EXISTS q:processing:as-a"), 0);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:processing:as-b"), 3);
	ck_assert_int_eq(ack_wait(b, rb.msgs[0]), 0);
	ck_assert(!in_list(&srv, "q:processing:as-b", "m2"));

	/* A late move of the old leader (its LMOVE reached Redis late). */
	tu_redis_cmd(&srv, "LPUSH q:processing:as-a m5");
	ck_assert(tu_run_count(loop, &rb.n, 4, DEADLINE));
	assert_msg(&rb, 3, "m5", 1);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:processing:as-a"), 0);
	/* A key of another type is skipped, not fatal. */
	tu_redis_cmd(&srv, "SET q:processing:odd x");
	tu_redis_cmd(&srv, "ZADD agentscaler:processing-lists:q 1 "
	    "q:processing:odd");
	tu_redis_cmd(&srv, "LPUSH q:processing:as-a m6");
	ck_assert(tu_run_count(loop, &rb.n, 5, DEADLINE));
	ck_assert_str_eq(rb.msgs[4]->body, "m6");
	/* An old, empty registration is forgotten; ours stays. */
	tu_redis_cmd(&srv, "DEL q:processing:odd");
	tu_redis_cmd(&srv, "ZADD agentscaler:processing-lists:q 1 "
	    "q:processing:as-a");
	tu_run_for(loop, 1.3);
	ck_assert_int_eq(tu_redis_cmd(&srv, "ZCARD "
	    "agentscaler:processing-lists:q"), 1);
	score = tu_redis_str(&srv, "ZSCORE agentscaler:processing-lists:q "
	    "q:processing:as-b");
	ck_assert(score != NULL && atof(score) > 1e9);	/* seen now */
	free(score);
	for (i = 1; i < 5; i++)
		ck_assert_int_eq(ack_wait(b, rb.msgs[i]), 0);
	ck_assert_int_eq(tu_redis_cmd(&srv, "EXISTS q:processing:as-b"), 0);
	b->type->destroy(b);
	rec_free(&rb, 5);
}
END_TEST

/* tu_run_until(): the key arg exists. */
static int
pred_key(void *arg)
{
	return (tu_redis_cmd(&srv, "EXISTS %s", (const char *)arg) == 1);
}

/* tu_run_until(): the processing list arg is registered for q. */
static int
pred_registered(void *arg)
{
	char	*v = tu_redis_str(&srv, "ZSCORE agentscaler:processing-lists:q "
	    "%s", (const char *)arg);

	free(v);
	return (v != NULL);
}

/*
 * b's heartbeat holds the time (unix s) of its last adoption round; waits
 * until it is two seconds past its value now: two more rounds ran.
 */
static long long hb_until;

static long long
hb_b(void)
{
	char		*v = tu_redis_str(&srv, "GET "
	    "agentscaler:processing-alive:q:processing:as-b");
	long long	 n = v != NULL ? strtoll(v, NULL, 10) : -1;

	free(v);
	return (n);
}

static int
pred_hb_b(void *arg)
{
	(void)arg;
	return (hb_b() >= hb_until);
}

static void
wait_rounds_b(void)
{
	hb_until = hb_b() + 2;
	ck_assert(tu_run_until(loop, pred_hb_b, NULL, DEADLINE));
}

/*
 * Issue 12, defect 7: adoption without leader election.  Two live
 * instances consume q at once (two replicas, or a rolling update's old
 * and new pod); neither takes the other's processing list, whose
 * messages the other is working on: a live instance keeps a heartbeat.
 * Once a dies (its heartbeat expires: three adoption periods, 3 s here),
 * b takes what a left, each message once, redelivered.
 */
START_TEST(test_list_adopt_live)
{
	struct scaler_source src;
	/* a's window of 2 is full with m1, m2: m3 is b's to take. */
	struct consumer_options oa = tu_consumer_options("as-a", 2);
	struct consumer_options ob = tu_consumer_options("as-b", 10);
	struct consumer	*a, *b;
	struct rec	 ra, rb;
	static char	 hb_b[] = "agentscaler:processing-alive:q:processing:as-b";
	int		 i;

	oa.adopt = ob.adopt = 1;
	oa.poll_interval = ob.poll_interval = 0.1;	/* rounds every 1 s */
	src = source(&srv, "redis-list", "q", NULL);
	tu_redis_cmd(&srv, "LPUSH q m1");
	tu_redis_cmd(&srv, "LPUSH q m2");
	a = start(&consumer_type_redis_list, &src, &oa, &ra);
	ck_assert(tu_run_count(loop, &ra.n, 2, DEADLINE));
	/* a's first adoption round has run: a is registered. */
	ck_assert(tu_run_until(loop, pred_registered, "q:processing:as-a",
	    DEADLINE));

	/* b starts while a lives and holds m1, m2: it gets new work only. */
	tu_redis_cmd(&srv, "LPUSH q m3");
	b = start(&consumer_type_redis_list, &src, &ob, &rb);
	ck_assert(tu_run_count(loop, &rb.n, 1, DEADLINE));
	assert_msg(&rb, 0, "m3", 0);
	/* More rounds of b (each renews its heartbeat) take nothing. */
	ck_assert(tu_run_until(loop, pred_key, hb_b, DEADLINE));
	wait_rounds_b();
	ck_assert_msg(rb.n == 1, "b took %d messages of the live a", rb.n - 1);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:processing:as-a"), 2);
	ck_assert_int_eq(ack_wait(a, ra.msgs[0]), 0);

	/* a dies holding m2: b takes it once its heartbeat has expired. */
	a->type->destroy(a);
	rec_free(&ra, 1);
	ck_assert(tu_run_count(loop, &rb.n, 2, DEADLINE));
	assert_msg(&rb, 1, "m2", 1);
	ck_assert_int_eq(tu_redis_cmd(&srv, "EXISTS q:processing:as-a"), 0);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(ack_wait(b, rb.msgs[i]), 0);
	/* More rounds: nothing more, nothing twice. */
	wait_rounds_b();
	ck_assert_int_eq(rb.n, 2);
	ck_assert_int_eq(tu_redis_cmd(&srv, "EXISTS q:processing:as-b"), 0);
	b->type->destroy(b);
	rec_free(&rb, 2);
}
END_TEST

START_TEST(test_list_recovery)
{
	struct scaler_source src;
	struct consumer_options oa = tu_consumer_options("as-a", 10);
	struct consumer_options ob = tu_consumer_options("as-b", 10);
	struct consumer	*a, *b;
	struct rec	 ra, rb;

	src = source(&srv, "redis-list", "q", NULL);
	/* A crash, as the broker sees it: m2 and m3 never acked. */
	crash_holding_two(&src, &oa);

	/* Another instance does not take them; it gets new work only. */
	tu_redis_cmd(&srv, "LPUSH q m4");
	b = start(&consumer_type_redis_list, &src, &ob, &rb);
	ck_assert(tu_run_count(loop, &rb.n, 1, DEADLINE));
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(rb.n, 1);
	assert_msg(&rb, 0, "m4", 0);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:processing:as-a"), 2);
	b->type->destroy(b);
	rec_free(&rb, 0);

	/* The same instance again: m2, m3 first, redelivered, then new. */
	tu_redis_cmd(&srv, "LPUSH q m5");
	a = start(&consumer_type_redis_list, &src, &oa, &ra);
	ck_assert(tu_run_count(loop, &ra.n, 3, DEADLINE));
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(ra.n, 3);
	assert_msg(&ra, 0, "m2", 1);
	assert_msg(&ra, 1, "m3", 1);
	assert_msg(&ra, 2, "m5", 0);
	/* Acking a recovered message removes it from the processing list. */
	ck_assert_int_eq(ack_wait(a, ra.msgs[0]), 0);
	ck_assert(!in_list(&srv, "q:processing:as-a", "m2"));
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:processing:as-a"), 2);
	a->type->destroy(a);
	rec_free(&ra, 1);

	/* Recovery respects the window: one at a time. */
	oa.window = 1;
	a = start(&consumer_type_redis_list, &src, &oa, &ra);
	ck_assert(tu_run_count(loop, &ra.n, 1, DEADLINE));
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(ra.n, 1);
	ck_assert_str_eq(ra.msgs[0]->body, "m3");
	ck_assert_int_eq(ack_wait(a, ra.msgs[0]), 0);
	ck_assert(tu_run_count(loop, &ra.n, 2, DEADLINE));
	assert_msg(&ra, 1, "m5", 1);
	a->type->destroy(a);
	rec_free(&ra, 1);
}
END_TEST

static int
pred_numsub(void *arg)
{
	const struct tu_redis *r = arg;
	char		*n;
	int		 ok;

	n = tu_redis_str(r, "PUBSUB NUMSUB %s", "__keyspace@0__:q");
	ok = n != NULL && strcmp(n, "1") == 0;
	free(n);
	return (ok);
}

START_TEST(test_list_push)
{
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("as-1", 10);
	struct consumer	*c;
	struct rec	 rec;
	struct scaler	*sc;
	struct scaler_result res;
	struct tu_rec	 w;
	char		*flags, err[256];

	o.poll_interval = 60;	/* the fallback cannot be what delivers */
	src = source(&srv, "redis-list", "q", NULL);
	c = start(&consumer_type_redis_list, &src, &o, &rec);
	ck_assert(tu_run_until(loop, pred_numsub, &srv, DEADLINE));
	flags = tu_redis_str(&srv, "CONFIG GET %s", "notify-keyspace-events");
	ck_assert(flags != NULL && strchr(flags, 'l') != NULL &&
	    strchr(flags, 'g') != NULL);
	free(flags);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(rec.n, 0);

	/*
	 * A scale-mode source on the same server shares both connections:
	 * ours are two, plus the one that counts them.
	 */
	sc = scaler_type_redis_list.create(loop, &src, err, sizeof err);
	ck_assert_msg(sc != NULL, "%s", err);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(sc->type->subscribe(sc, tu_rec_wake, &w), 0);
	ck_assert(tu_run_until(loop, tu_pred_pushing, sc, DEADLINE));
	res = tu_poll_wait(loop, sc, DEADLINE);
	ck_assert(res.error == 0 && res.ready == 0);
	ck_assert_int_eq(tu_redis_clients(&srv), 3);

	tu_redis_cmd(&srv, "LPUSH q pushed-1");
	ck_assert(tu_run_count(loop, &rec.n, 1, DEADLINE));
	ck_assert_str_eq(rec.msgs[0]->body, "pushed-1");
	ck_assert(tu_run_until(loop, tu_pred_woken, &w, DEADLINE));
	res = tu_poll_wait(loop, sc, DEADLINE);
	ck_assert(res.error == 0 && res.ready == 0);
	scaler_destroy(sc);
	tu_redis_cmd(&srv, "RPUSH q pushed-2");
	ck_assert(tu_run_count(loop, &rec.n, 2, DEADLINE));
	ck_assert_str_eq(rec.msgs[1]->body, "pushed-2");
	/* A push into a full window waits for the ack, not for the poll. */
	c->type->set_window(c, 2);
	tu_redis_cmd(&srv, "LPUSH q pushed-3");
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(rec.n, 2);
	ck_assert_int_eq(ack_wait(c, rec.msgs[0]), 0);
	ck_assert(tu_run_count(loop, &rec.n, 3, DEADLINE));
	ck_assert_str_eq(rec.msgs[2]->body, "pushed-3");
	c->type->destroy(c);
	rec_free(&rec, 1);
}
END_TEST

/* Hand-off, the same on both types. */

START_TEST(test_handoff)
{
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("as-1", 1);
	const struct consumer_type *t = _i == 0 ? &consumer_type_redis_list :
	    &consumer_type_redis_stream;
	struct consumer	*c;
	struct rec	 rec;
	struct tu_op	 d;
	char		*s;
	long long	 ttl;

	o.marker_ttl = 30.2;
	src = source(&srv, t->name, "q", _i == 0 ? NULL : "g");
	c = start(t, &src, &o, &rec);

	ck_assert_int_eq(handoff_ok(c, "ns1", "sb-1", "t-1", "{\"task\":1}"),
	    CONSUMER_HANDOFF_DONE);

	/* The same task again: nothing pushed. */
	ck_assert_int_eq(handoff_ok(c, "ns1", "sb-1", "t-1", "{\"task\":1}"),
	    CONSUMER_HANDOFF_DUPLICATE);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN agentscaler:inbox:ns1:sb-1"),
	    1);
	s = lindex(&srv, "agentscaler:inbox:ns1:sb-1", 0);
	ck_assert_str_eq(s, "{\"task\":1}");
	free(s);
	/* The marker lives ceil(30.2) = 31 s at most. */
	ttl = tu_redis_cmd(&srv, "TTL agentscaler:handoff:ns1:t-1");
	ck_assert_msg(ttl > 0 && ttl <= 31, "ttl %lld", ttl);
	/* It names the sandbox; the same task to another one: ELSEWHERE. */
	s = tu_redis_str(&srv, "GET agentscaler:handoff:ns1:t-1");
	ck_assert_str_eq(s, "sb-1");
	free(s);
	ck_assert_int_eq(handoff_ok(c, "ns1", "sb-2", "t-1", "{\"task\":1}"),
	    CONSUMER_HANDOFF_ELSEWHERE);
	ck_assert_int_eq(tu_redis_cmd(&srv,
	    "EXISTS agentscaler:inbox:ns1:sb-2"), 0);
	/* handed_off(): the marker exists for t-1, not for t-9. */
	ck_assert_int_eq(tu_handed_off_wait(loop, c, "ns1", "t-1", &d,
	    DEADLINE), 0);
	ck_assert_int_eq(d.outcome, 1);
	ck_assert_int_eq(tu_handed_off_wait(loop, c, "ns1", "t-9", &d,
	    DEADLINE), 0);
	ck_assert_int_eq(d.outcome, 0);
	ck_assert_int_eq(c->type->handed_off(c, "", "t-9", tu_op_check, &d),
	    -AS_EINVAL);

	/* Another task, or the same id in another namespace: pushed. */
	ck_assert_int_eq(handoff_ok(c, "ns1", "sb-1", "t-2", "b2"),
	    CONSUMER_HANDOFF_DONE);
	ck_assert_int_eq(handoff_ok(c, "ns2", "sb-9", "t-1", "b3"),
	    CONSUMER_HANDOFF_DONE);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN agentscaler:inbox:ns1:sb-1"),
	    2);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN agentscaler:inbox:ns2:sb-9"),
	    1);

	/* The marker gone (expired): a new hand-off pushes again. */
	tu_redis_cmd(&srv, "DEL agentscaler:handoff:ns1:t-1");
	ck_assert_int_eq(handoff_ok(c, "ns1", "sb-1", "t-1", "b4"),
	    CONSUMER_HANDOFF_DONE);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN agentscaler:inbox:ns1:sb-1"),
	    3);

	ck_assert_int_eq(c->type->handoff(c, "", "sb", "t", "b", 1,
	    tu_op_handoff, &d), -AS_EINVAL);
	ck_assert_int_eq(c->type->handoff(c, "ns", "sb", NULL, "b", 1,
	    tu_op_handoff, &d), -AS_EINVAL);
	c->type->destroy(c);
}
END_TEST

/* redis-stream. */

START_TEST(test_stream_basic)
{
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("as-1", 10);
	struct consumer	*c, *c2;
	struct rec	 rec, rec2;
	redisReply	*rep;
	char		*id1, *id2;

	src = source(&srv, "redis-stream", "s", "g");
	c = start(&consumer_type_redis_stream, &src, &o, &rec);
	/* MKSTREAM made the stream and the group. */
	ck_assert_int_eq(tu_redis_cmd(&srv, "EXISTS s"), 1);
	rep = cmd(&srv, "XINFO GROUPS s");
	ck_assert(rep->type == REDIS_REPLY_ARRAY && rep->elements == 1);
	freeReplyObject(rep);

	/* A group made here starts at "$": earlier entries are skipped. */
	free(xadd(&srv, "old", "task", "before", NULL, NULL));
	src = source(&srv, "redis-stream", "old", "g");
	c2 = start(&consumer_type_redis_stream, &src, &o, &rec2);
	free(xadd(&srv, "old", "task", "after", NULL, NULL));
	ck_assert(tu_run_count(loop, &rec2.n, 1, DEADLINE));
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(rec2.n, 1);
	ck_assert_str_eq(rec2.msgs[0]->body, "after");
	c2->type->destroy(c2);
	rec_free(&rec2, 0);

	id1 = xadd(&srv, "s", "task", "{\"id\":\"t-1\"}", NULL, NULL);
	id2 = xadd(&srv, "s", "task", "{\"id\":\"t-2\"}", NULL, NULL);
	ck_assert(tu_run_count(loop, &rec.n, 2, DEADLINE));
	ck_assert_str_eq(rec.msgs[0]->body, "{\"id\":\"t-1\"}");
	ck_assert_str_eq(rec.msgs[0]->ref, id1);
	ck_assert_int_eq(rec.msgs[0]->redelivered, 0);
	ck_assert_str_eq(rec.msgs[1]->ref, id2);
	ck_assert_int_eq(xpending(&srv, "s", "g"), 2);
	ck_assert_int_eq(c->type->outstanding(c), 2);
	ck_assert_int_eq(ack_wait(c, rec.msgs[0]), 0);
	ck_assert_int_eq(xpending(&srv, "s", "g"), 1);
	ck_assert_int_eq(ack_wait(c, rec.msgs[1]), 0);
	ck_assert_int_eq(xpending(&srv, "s", "g"), 0);
	ck_assert_int_eq(c->type->outstanding(c), 0);
	free(id1);
	free(id2);

	/* Window respected: 3 of 5. */
	c->type->set_window(c, 3);
	tu_redis_cmd(&srv, "XADD s * task a");
	tu_redis_cmd(&srv, "XADD s * task b");
	tu_redis_cmd(&srv, "XADD s * task c");
	tu_redis_cmd(&srv, "XADD s * task d");
	tu_redis_cmd(&srv, "XADD s * task e");
	ck_assert(tu_run_count(loop, &rec.n, 5, DEADLINE));
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(rec.n, 5);
	ck_assert_int_eq(xpending(&srv, "s", "g"), 3);
	ck_assert_int_eq(ack_wait(c, rec.msgs[2]), 0);
	ck_assert(tu_run_count(loop, &rec.n, 6, DEADLINE));
	ck_assert_str_eq(rec.msgs[5]->body, "d");
	c->type->destroy(c);
	rec_free(&rec, 3);
}
END_TEST

START_TEST(test_stream_body_rules)
{
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("as-1", 10);
	struct consumer	*c;
	struct rec	 rec;
	cJSON		*j;
	char		*id, want[256];

	src = source(&srv, "redis-stream", "s", "g");
	c = start(&consumer_type_redis_stream, &src, &o, &rec);
	free(xadd(&srv, "s", "body", "B1", "task", "T1"));
	free(xadd(&srv, "s", "data", "D2", "body", "B2"));
	free(xadd(&srv, "s", "x", "1", "data", "D3"));
	free(xadd(&srv, "s", "only", "V4", NULL, NULL));
	id = xadd(&srv, "s", "a", "1", "b", "q\"\\\n");
	ck_assert(tu_run_count(loop, &rec.n, 5, DEADLINE));
	ck_assert_str_eq(rec.msgs[0]->body, "T1");
	ck_assert_str_eq(rec.msgs[1]->body, "B2");
	ck_assert_str_eq(rec.msgs[2]->body, "D3");
	ck_assert_str_eq(rec.msgs[3]->body, "V4");
	/* None of them: the fields as JSON, which has no top-level id. */
	snprintf(want, sizeof want, "{\"streamEntry\":\"%s\",\"fields\":"
	    "{\"a\":\"1\",\"b\":\"q\\\"\\\\\\u000a\"}}", id);
	ck_assert_str_eq(rec.msgs[4]->body, want);
	j = cJSON_Parse(rec.msgs[4]->body);
	ck_assert(j != NULL && cJSON_IsObject(j));
	ck_assert(cJSON_GetObjectItemCaseSensitive(j, "id") == NULL);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(
	    j, "fields"), "b")->valuestring, "q\"\\\n");
	cJSON_Delete(j);
	free(id);
	c->type->destroy(c);
	rec_free(&rec, 0);
}
END_TEST

/* source.streamField: that field first, the usual rules after it. */
START_TEST(test_stream_field)
{
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("as-1", 10);
	struct consumer	*c;
	struct rec	 rec;

	src = source(&srv, "redis-stream", "s", "g");
	src.stream_field = "job";
	c = start(&consumer_type_redis_stream, &src, &o, &rec);
	free(xadd(&srv, "s", "task", "T1", "job", "J1"));
	free(xadd(&srv, "s", "meta", "M2", "job", "J2"));
	free(xadd(&srv, "s", "meta", "M3", "body", "B3"));
	ck_assert(tu_run_count(loop, &rec.n, 3, DEADLINE));
	ck_assert_str_eq(rec.msgs[0]->body, "J1");
	ck_assert_str_eq(rec.msgs[1]->body, "J2");
	ck_assert_str_eq(rec.msgs[2]->body, "B3");
	c->type->destroy(c);
	rec_free(&rec, 0);
}
END_TEST

START_TEST(test_stream_recovery)
{
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("as-a", 10);
	struct consumer_options ob = tu_consumer_options("as-b", 10);
	static const char *const bodies[] = { "e2", "e3", "e5" };
	struct consumer	*a, *b;
	struct rec	 ra, rb;
	char		*ids[5];
	int		 i;

	ck_assert_int_eq(tu_redis_cmd(&srv, "XGROUP CREATE s g 0 MKSTREAM"), 0);
	for (i = 0; i < 3; i++)
		ids[i] = xadd(&srv, "s", "task", (const char *[]){ "e1", "e2",
		    "e3" }[i], NULL, NULL);
	src = source(&srv, "redis-stream", "s", "g");
	a = start(&consumer_type_redis_stream, &src, &o, &ra);
	/* A group made at 0 by the producer keeps the earlier entries. */
	ck_assert(tu_run_count(loop, &ra.n, 3, DEADLINE));
	ck_assert_int_eq(ack_wait(a, ra.msgs[0]), 0);
	a->type->destroy(a);
	rec_free(&ra, 1);
	ck_assert_int_eq(xpending(&srv, "s", "g"), 2);

	/* Another instance: new entries only. */
	ids[3] = xadd(&srv, "s", "task", "e4", NULL, NULL);
	b = start(&consumer_type_redis_stream, &src, &ob, &rb);
	ck_assert(tu_run_count(loop, &rb.n, 1, DEADLINE));
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(rb.n, 1);
	ck_assert_str_eq(rb.msgs[0]->ref, ids[3]);
	ck_assert_int_eq(rb.msgs[0]->redelivered, 0);
	ck_assert_int_eq(ack_wait(b, rb.msgs[0]), 0);
	b->type->destroy(b);

	/*
	 * The same instance with window 1: its pending entries one by one
	 * (each read goes on from the last id), then the new one.
	 */
	ids[4] = xadd(&srv, "s", "task", "e5", NULL, NULL);
	o.window = 1;
	a = start(&consumer_type_redis_stream, &src, &o, &ra);
	for (i = 0; i < 3; i++) {
		ck_assert(tu_run_count(loop, &ra.n, i + 1, DEADLINE));
		tu_run_for(loop, 0.1);
		ck_assert_int_eq(ra.n, i + 1);
		ck_assert_str_eq(ra.msgs[i]->ref, ids[i == 2 ? 4 : i + 1]);
		ck_assert_str_eq(ra.msgs[i]->body, bodies[i]);
		ck_assert_int_eq(ra.msgs[i]->redelivered, i < 2);
		ck_assert_int_eq(ack_wait(a, ra.msgs[i]), 0);
	}
	ck_assert_int_eq(xpending(&srv, "s", "g"), 0);
	a->type->destroy(a);
	for (i = 0; i < 5; i++)
		free(ids[i]);
}
END_TEST

START_TEST(test_stream_autoclaim)
{
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("live", 10);
	struct consumer	*c;
	struct rec	 rec;
	redisReply	*rep;
	char		*ids[3];
	int		 i;

	ck_assert_int_eq(tu_redis_cmd(&srv, "XGROUP CREATE s g $ MKSTREAM"), 0);
	for (i = 0; i < 2; i++)
		ids[i] = xadd(&srv, "s", "task", "x", NULL, NULL);
	/* A consumer that took them and died. */
	rep = cmd(&srv, "XREADGROUP GROUP g dead COUNT 10 STREAMS s >");
	ck_assert(rep->type == REDIS_REPLY_ARRAY);
	freeReplyObject(rep);
	ck_assert_int_eq(xpending(&srv, "s", "g"), 2);

	o.poll_interval = 60;
	o.claim_idle = 0.4;
	src = source(&srv, "redis-stream", "s", "g");
	c = start(&consumer_type_redis_stream, &src, &o, &rec);
	ck_assert(tu_run_count(loop, &rec.n, 2, DEADLINE));
	for (i = 0; i < 2; i++) {
		ck_assert_str_eq(rec.msgs[i]->ref, ids[i]);
		ck_assert_int_eq(rec.msgs[i]->redelivered, 1);
	}
	/* Now ours. */
	rep = cmd(&srv, "XPENDING s g - + 10 live");
	ck_assert(rep->type == REDIS_REPLY_ARRAY && rep->elements == 2);
	freeReplyObject(rep);

	/*
	 * Held by us far past claim_idle: XAUTOCLAIM finds them idle again
	 * but they are not delivered twice.
	 */
	ids[2] = xadd(&srv, "s", "task", "y", NULL, NULL);
	ck_assert(tu_run_count(loop, &rec.n, 3, DEADLINE));
	ck_assert_int_eq(rec.msgs[2]->redelivered, 0);
	tu_run_for(loop, 1.5);
	ck_assert_int_eq(rec.n, 3);
	ck_assert_int_eq(c->type->outstanding(c), 3);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(ack_wait(c, rec.msgs[i]), 0);
	ck_assert_int_eq(xpending(&srv, "s", "g"), 0);
	c->type->destroy(c);
	for (i = 0; i < 3; i++)
		free(ids[i]);
}
END_TEST

START_TEST(test_stream_dead_letter)
{
	static const char record[] = "{\"reason\":\"cascade.maxDepth\"}";
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("as-1", 10);
	struct consumer	*c;
	struct rec	 rec;
	struct tu_op	 d;
	redisReply	*rep;

	src = source(&srv, "redis-stream", "s", "g");
	c = start(&consumer_type_redis_stream, &src, &o, &rec);
	tu_redis_cmd(&srv, "XADD s * task t1");
	ck_assert(tu_run_count(loop, &rec.n, 1, DEADLINE));
	ck_assert_int_eq(xpending(&srv, "s", "g"), 1);
	ck_assert_msg(tu_dead_letter_wait(loop, c, rec.msgs[0], record, &d,
	    DEADLINE) == 0, "%s", d.msg);
	ck_assert_int_eq(xpending(&srv, "s", "g"), 0);
	ck_assert_int_eq(c->type->outstanding(c), 0);
	rep = cmd(&srv, "XRANGE s.rejected - +");
	ck_assert(rep->type == REDIS_REPLY_ARRAY && rep->elements == 1);
	ck_assert(rep->element[0]->elements == 2);
	ck_assert_uint_eq(rep->element[0]->element[1]->elements, 2);
	ck_assert_str_eq(rep->element[0]->element[1]->element[0]->str,
	    "record");
	ck_assert_str_eq(rep->element[0]->element[1]->element[1]->str, record);
	freeReplyObject(rep);
	c->type->destroy(c);
}
END_TEST

/* Connections. */

static int
rmtree_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return (remove(path));
}

START_TEST(test_restart)
{
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("as-1", 10);
	struct consumer	*l, *s;
	struct rec	 rl, rs;
	struct tu_capture cap;
	char		 dir[] = "/tmp/check_redis_consume.XXXXXX", *log;
	const char	*extra[] = { "--appendonly", "yes", "--dir", dir,
	    NULL };
	int		 i;

	/* The fixture's server, again with an append-only file. */
	ck_assert(mkdtemp(dir) != NULL);
	ck_assert_int_eq(tu_redis_restart(&srv, extra), 0);
	tu_capture_start(&cap);
	tu_redis_cmd(&srv, "LPUSH q m1");
	tu_redis_cmd(&srv, "LPUSH q m2");
	tu_redis_cmd(&srv, "XGROUP CREATE s g $ MKSTREAM");
	tu_redis_cmd(&srv, "XADD s * task e1");
	src = source(&srv, "redis-list", "q", NULL);
	l = start(&consumer_type_redis_list, &src, &o, &rl);
	o.claim_idle = 0.2;	/* claims run, and must not take ours */
	src = source(&srv, "redis-stream", "s", "g");
	s = start(&consumer_type_redis_stream, &src, &o, &rs);
	ck_assert(tu_run_count(loop, &rl.n, 2, DEADLINE));
	ck_assert(tu_run_count(loop, &rs.n, 1, DEADLINE));

	/* The data survives (AOF); the connections do not. */
	ck_assert_int_eq(tu_redis_restart(&srv, extra), 0);
	ck_assert(tu_run_until(loop, pred_down, &rl, DEADLINE));
	ck_assert(tu_run_until(loop, pred_down, &rs, DEADLINE));
	ck_assert(strstr(rl.why, "127.0.0.1:") != NULL);
	ck_assert(tu_run_until(loop, pred_up, &rl, DEADLINE));
	ck_assert(tu_run_until(loop, pred_up, &rs, DEADLINE));
	ck_assert_int_eq(rl.nup, 2);
	ck_assert_int_eq(rs.nup, 2);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:processing:as-1"), 2);

	/* No duplicates of what we hold, from recovery or from claims. */
	tu_run_for(loop, 1.0);
	ck_assert_int_eq(rl.n, 2);
	ck_assert_int_eq(rs.n, 1);

	/* What we held is acked on the new connection. */
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(ack_wait(l, rl.msgs[i]), 0);
	ck_assert_int_eq(tu_redis_cmd(&srv, "EXISTS q:processing:as-1"), 0);
	ck_assert_int_eq(ack_wait(s, rs.msgs[0]), 0);
	ck_assert_int_eq(xpending(&srv, "s", "g"), 0);

	/* And new work comes again, pushed. */
	tu_redis_cmd(&srv, "LPUSH q m3");
	tu_redis_cmd(&srv, "XADD s * task e2");
	ck_assert(tu_run_count(loop, &rl.n, 3, DEADLINE));
	ck_assert(tu_run_count(loop, &rs.n, 2, DEADLINE));
	ck_assert_str_eq(rl.msgs[2]->body, "m3");
	ck_assert_str_eq(rs.msgs[1]->body, "e2");
	l->type->destroy(l);
	s->type->destroy(s);
	rec_free(&rl, 2);
	rec_free(&rs, 1);
	log = tu_capture_end(&cap);
	ck_assert_int_eq(tu_count(log, "recovering"), 0);
	free(log);
	tu_redis_down(&srv);
	nftw(dir, rmtree_one, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

/*
 * source.keyspaceNotifications require, the user without CONFIG: once the
 * refusal is known the consumer reports itself down with the reason and
 * takes nothing; off subscribes to nothing and still consumes.
 */
START_TEST(test_keyspace_require)
{
	struct consumer_options o = tu_consumer_options("as-1", 4);
	struct scaler_source src;
	struct consumer	*c;
	struct rec	 rec;

	ck_assert_int_eq(tu_redis_cmd(&srv, "ACL SETUSER default %s",
	    "-config"), 0);
	src = source(&srv, "redis-list", "q", NULL);
	src.keyspace_notifications = SCALER_KEYSPACE_REQUIRE;
	c = start_down(&src, &o, &rec);
	ck_assert_msg(strstr(rec.why, "keyspaceNotifications is require") !=
	    NULL && strstr(rec.why, "CONFIG GET refused") != NULL, "%s",
	    rec.why);
	tu_redis_cmd(&srv, "LPUSH q m1");
	tu_run_for(loop, 0.5);
	ck_assert_int_eq(rec.n, 0);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN %s", "q"), 1);
	c->type->destroy(c);
	rec_free(&rec, 0);

	src.keyspace_notifications = SCALER_KEYSPACE_OFF;
	c = start(&consumer_type_redis_list, &src, &o, &rec);
	ck_assert(tu_run_count(loop, &rec.n, 1, DEADLINE));
	ck_assert_str_eq(rec.msgs[0]->body, "m1");
	c->type->destroy(c);
	rec_free(&rec, 0);
}
END_TEST

START_TEST(test_refused)
{
	struct consumer_options o = tu_consumer_options("as-1", 1);
	struct scaler_source src;
	struct consumer	*c;
	struct rec	 rec;
	struct tu_op	 d;
	char		 addr[64], name[64];
	int		 port = tu_free_port();

	snprintf(addr, sizeof addr, "redis://127.0.0.1:%d/0", port);
	snprintf(name, sizeof name, "redis 127.0.0.1:%d: ", port);
	memset(&src, 0, sizeof src);
	src.address = addr;
	src.queue = "q";
	c = start_down(&src, &o, &rec);
	ck_assert_int_eq(rec.ndown, 1);
	ck_assert_msg(strstr(rec.why, "refused") != NULL, "%s", rec.why);
	ck_assert(strncmp(rec.why, name, strlen(name)) == 0);
	/* Still down after retries: told once. */
	tu_run_for(loop, 0.5);
	ck_assert_int_eq(rec.ndown, 1);

	/* A hand-off while down fails on a later turn. */
	ck_assert_int_eq(tu_handoff_wait(loop, c, "ns", "sb", "t", "b", &d,
	    DEADLINE), -AS_ECONN);
	ck_assert_msg(strstr(d.msg, "refused") != NULL, "%s", d.msg);
	c->type->destroy(c);
}
END_TEST

START_TEST(test_destroy_inflight)
{
	struct scaler_source src;
	struct consumer_options o = tu_consumer_options("as-1", 10);
	struct consumer	*c, *c2;
	struct rec	 rec, rec2;
	struct tu_op	 d[4];
	int		 i;

	for (i = 1; i <= 4; i++)
		tu_redis_cmd(&srv, "LPUSH q m%d", i);
	src = source(&srv, "redis-list", "q", NULL);
	c = start(&consumer_type_redis_list, &src, &o, &rec);
	ck_assert(tu_run_count(loop, &rec.n, 4, DEADLINE));

	/* Sent, then destroyed before any reply: all canceled, in destroy. */
	memset(d, 0, sizeof d);
	ck_assert_int_eq(c->type->ack(c, rec.msgs[0], tu_op_done, &d[0]), 0);
	ck_assert_int_eq(c->type->dead_letter(c, rec.msgs[1], "r", 1,
	    tu_op_done, &d[1]), 0);
	ck_assert_int_eq(c->type->handoff(c, "ns", "sb", "t", "b", 1,
	    tu_op_handoff, &d[2]), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(d[i].n, 0);
	c->type->destroy(c);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(d[i].n, 1);
		ck_assert_int_eq(d[i].err, -AS_ECANCELED);
		ck_assert(strstr(d[i].msg, "canceled") != NULL);
	}
	tu_run_for(loop, 0.3);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(d[i].n, 1);
	rec_free(&rec, 2);	/* m3 and m4, still held */

	/*
	 * The last client closed the endpoint with those commands unsent:
	 * the broker still holds all four, for the next start.
	 */
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q:processing:as-1"), 4);
	ck_assert_int_eq(tu_redis_cmd(&srv, "EXISTS q.rejected"), 0);

	/*
	 * Destroyed from its own delivery of n2: the second LMOVE of the
	 * pair that brought n2 is still in flight, and its n3 stays in the
	 * processing list, never delivered.
	 */
	tu_redis_cmd(&srv, "LPUSH q2 n1");
	tu_redis_cmd(&srv, "LPUSH q2 n2");
	tu_redis_cmd(&srv, "LPUSH q2 n3");
	src.queue = "q2";
	o.instance = "as-2";
	c = start(&consumer_type_redis_list, &src, &o, &rec);
	rec.destroy_at = 2;
	ck_assert(tu_run_count(loop, &rec.n, 2, DEADLINE));
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(rec.n, 2);
	ck_assert(rec.c == NULL);
	ck_assert_str_eq(rec.msgs[1]->body, "n2");
	rec_free(&rec, 0);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q2"), 0);
	ck_assert_int_eq(tu_redis_cmd(&srv, "LLEN q2:processing:as-2"), 3);

	/* Destroyed from a completion, with another completion pending. */
	o.instance = "as-3";
	src.queue = "q3";
	tu_redis_cmd(&srv, "LPUSH q3 k1");
	tu_redis_cmd(&srv, "LPUSH q3 k2");
	c = start(&consumer_type_redis_list, &src, &o, &rec);
	ck_assert(tu_run_count(loop, &rec.n, 2, DEADLINE));
	memset(d, 0, sizeof d);
	d[0].destroy = c;
	ck_assert_int_eq(c->type->ack(c, rec.msgs[0], tu_op_done, &d[0]), 0);
	ck_assert_int_eq(c->type->ack(c, rec.msgs[1], tu_op_done, &d[1]), 0);
	ck_assert(tu_run_until(loop, tu_pred_op, &d[0], DEADLINE));
	ck_assert_int_eq(d[0].err, 0);
	ck_assert_int_eq(d[1].n, 1);
	/* Its reply was in the same batch, but the consumer went first. */
	ck_assert_int_eq(d[1].err, -AS_ECANCELED);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(d[0].n + d[1].n, 2);

	/* While the server is gone: an ack fails later, not inside ack(). */
	o.instance = "as-4";
	src.queue = "q4";
	tu_redis_cmd(&srv, "LPUSH q4 z1");
	c2 = start(&consumer_type_redis_list, &src, &o, &rec2);
	ck_assert(tu_run_count(loop, &rec2.n, 1, DEADLINE));
	tu_redis_down(&srv);
	ck_assert(tu_run_until(loop, pred_down, &rec2, DEADLINE));
	ck_assert_int_eq(tu_ack_wait(loop, c2, rec2.msgs[0], &d[0], DEADLINE),
	    -AS_ECONN);
	ck_assert_int_eq(c2->type->outstanding(c2), 0);
	/* ... and one still waiting for its later turn is canceled. */
	memset(d, 0, sizeof d);
	ck_assert_int_eq(c2->type->handoff(c2, "ns", "sb", "t", "b", 1,
	    tu_op_handoff, &d[0]), 0);
	c2->type->destroy(c2);
	ck_assert_int_eq(d[0].n, 1);
	ck_assert_int_eq(d[0].err, -AS_ECANCELED);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(d[0].n, 1);
}
END_TEST

/* Each server test: a loop and a redis-server of its own. */
static void
server_setup(void)
{
	ck_assert_ptr_nonnull(loop = ev_loop_new(EVFLAG_AUTO));
	tu_redis_up(&srv, NULL);
}

static void
server_teardown(void)
{
	tu_redis_down(&srv);
	ev_loop_destroy(loop);
	loop = NULL;
}

static Suite *
redis_consume_suite(void)
{
	Suite	*s = suite_create("redis_consume");
	TCase	*tc;

	tc = tcase_create("validate");
	tcase_add_loop_test(tc, test_validate, 0,
	    (int)AS_ARRAY_SIZE(validate_rows));
	tcase_add_test(tc, test_validate_other);
	suite_add_tcase(s, tc);

	tc = tu_tcase(s, "server", 90, NULL, NULL, server_setup,
	    server_teardown);
	tcase_add_test(tc, test_endpoint_client);
	tcase_add_test(tc, test_list_fifo_ack);
	tcase_add_test(tc, test_list_window);
	tcase_add_test(tc, test_list_dead_letter);
	tcase_add_test(tc, test_list_recovery);
	tcase_add_test(tc, test_list_adopt);
	tcase_add_test(tc, test_list_adopt_live);
	tcase_add_test(tc, test_list_push);
	tcase_add_test(tc, test_keyspace_require);
	tcase_add_loop_test(tc, test_handoff, 0, 2);
	tcase_add_test(tc, test_stream_basic);
	tcase_add_test(tc, test_stream_body_rules);
	tcase_add_test(tc, test_stream_field);
	tcase_add_test(tc, test_stream_recovery);
	tcase_add_test(tc, test_stream_autoclaim);
	tcase_add_test(tc, test_stream_dead_letter);
	tcase_add_test(tc, test_restart);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_destroy_inflight);
	return (s);
}

int
main(void)
{
	return (tu_redis_run_suite(redis_consume_suite()));
}
