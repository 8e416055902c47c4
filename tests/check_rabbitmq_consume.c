/*
 * check_rabbitmq_consume.c: the dispatch-mode RabbitMQ consumer
 * (scalers/rabbitmq_consumer.c, consumer.h) against one real
 * rabbitmq-server with the management plugin, started once for the whole
 * suite (tests/util/testutil.c: own HOME, node name, epmd, loopback ports,
 * stopped by PID).  Each test has its own queues, and its own ev loop and
 * blocking connection (a checked fixture); the loop is driven under
 * bounded deadlines.  What the broker holds is read with that blocking
 * rabbitmq-c client (tests/util/amqp.c) and the management API,
 * whose statistics refresh every 500 ms here, so those checks wait for the
 * numbers to settle.  The broker's side of a lost connection is made with
 * the management API (DELETE /api/connections/<name>) and SIGSTOP.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "scalers/compat_amqp.h"
#include "agentscaler/scalers/consumer.h"
#include "util/amqp.h"
#include "util/consumer.h"
#include "util/loop.h"
#include "util/testutil.h"

#define DEADLINE	20.0	/* seconds; a bound, never a speed check */
#define SETTLE		0.5	/* seconds to see that nothing more comes */
#define MAXMSG		64

static struct tu_rabbit rb;
static struct ev_loop *loop;		/* the test's */
static amqp_connection_state_t b;	/* the test's, to vhost "/" */

/* ---- what a consumer reports ---- */

struct crec {
	struct consumer_msg *msgs[MAXMSG];	/* until given back */
	char		 body[MAXMSG][16];	/* their bodies' starts */
	int		 nmsg;
	int		 nup;
	int		 ndown;
	int		 up;		/* last state, -1 before any */
	char		 state_msg[256];
	struct consumer	*destroy_in_deliver;
	int		 autoack;	/* ack each delivery at once */
	int		 nacked;	/* acks completed without error */
};

static void
crec_acked(int err, const char *errmsg, void *arg)
{
	struct crec	*r = arg;

	ck_assert_msg(err == 0, "ack: %s", errmsg);
	r->nacked++;
}

static void
crec_deliver(struct consumer *c, struct consumer_msg *m, void *arg)
{
	struct crec	*r = arg;

	ck_assert_int_lt(r->nmsg, MAXMSG);
	as_strlcpy(r->body[r->nmsg], m->body, sizeof r->body[0]);
	r->msgs[r->nmsg++] = m;
	if (r->autoack) {
		r->msgs[r->nmsg - 1] = NULL;	/* the consumer's again */
		ck_assert_int_eq(c->type->ack(c, m, crec_acked, r), 0);
	}
	if (r->destroy_in_deliver == c) {
		r->destroy_in_deliver = NULL;
		c->type->destroy(c);
	}
}

static void
crec_state(struct consumer *c, int up, const char *msg, void *arg)
{
	struct crec	*r = arg;

	(void)c;
	r->up = up;
	if (up)
		r->nup++;
	else
		r->ndown++;
	as_strlcpy(r->state_msg, msg != NULL ? msg : "",
	    sizeof r->state_msg);
}

static int
pred_up(void *arg)
{
	const struct crec *r = arg;

	return (r->up == 1);
}

static int
pred_down(void *arg)
{
	const struct crec *r = arg;

	return (r->up == 0);
}

/* ---- consumers ---- */

/* Creates and starts a consumer on src; r records what it reports. */
static struct consumer *
make_src(const struct scaler_source *src, const char *instance, int window,
    struct crec *r)
{
	struct consumer_options o = tu_consumer_options(instance, window);
	struct consumer	*c;
	char		 err[256] = "";

	memset(r, 0, sizeof *r);
	r->up = -1;
	c = consumer_type_rabbitmq.create(loop, src, &o, err, sizeof err);
	ck_assert_msg(c != NULL, "create: %s", err);
	ck_assert_int_eq(c->type->start(c, crec_deliver, crec_state, r), 0);
	return (c);
}

static struct consumer *
make(const char *queue, int window, struct crec *r)
{
	struct scaler_source src = tu_amqp_source(rb.amqp_url, queue);

	return (make_src(&src, "t", window, r));
}

static void
wait_msgs(struct crec *r, int n)
{
	ck_assert_msg(tu_run_count(loop, &r->nmsg, n, DEADLINE),
	    "%d deliveries, wanted %d", r->nmsg, n);
}

/* Acks m and waits for the completion; returns its error. */
static int
ack_wait(struct consumer *c, struct consumer_msg *m, struct tu_op *d)
{
	return (tu_ack_wait(loop, c, m, d, DEADLINE));
}

static int
handoff_wait(struct consumer *c, const char *ns, const char *sandbox,
    const char *task_id, const char *body, struct tu_op *d)
{
	return (tu_handoff_wait(loop, c, ns, sandbox, task_id, body, d,
	    DEADLINE));
}

static void
publish_bodies(const char *q, const char *prefix, int n)
{
	char	 body[64];
	int	 i;

	for (i = 0; i < n; i++) {
		snprintf(body, sizeof body, "%s%d", prefix, i);
		tu_amqp_publish_body(b, q, body, strlen(body));
	}
}

/* ---- what the broker holds ---- */

/* A number field of GET /api/queues/%2F/<q>, or -1 (missing, no stats). */
static long
qstat(const char *q, const char *field)
{
	char		 path[320], *body = NULL;
	cJSON		*j, *v;
	long		 n = -1;

	snprintf(path, sizeof path, "/api/queues/%%2F/%s", q);
	if (tu_rabbit_api(&rb, "GET", path, NULL, &body) == 200 &&
	    (j = cJSON_Parse(body)) != NULL) {
		v = cJSON_GetObjectItemCaseSensitive(j, field);
		if (cJSON_IsNumber(v))
			n = (long)v->valuedouble;
		else if (cJSON_IsBool(v))
			n = cJSON_IsTrue(v);
		cJSON_Delete(j);
	}
	free(body);
	return (n);
}

struct qwait {
	const char	*q;
	const char	*field;
	long		 want;
	long		 last;
	double		 next;
};

/* Asks the management API at most every 100 ms. */
static int
pred_qstat(void *arg)
{
	struct qwait	*w = arg;

	if (as_mono_now() < w->next)
		return (0);
	w->next = as_mono_now() + 0.1;
	w->last = qstat(w->q, w->field);
	return (w->last == w->want);
}

/* Turns the loop until the queue's field reads want. */
static void
wait_qstat(const char *q, const char *field, long want)
{
	struct qwait	 w = { q, field, want, -2, 0 };

	ck_assert_msg(tu_run_until(loop, pred_qstat, &w, DEADLINE),
	    "%s %s: %ld, wanted %ld", q, field, w.last, want);
}

struct cwait {
	const char	*q;
	long		 want;
	long		 last;
};

static int
pred_consumers(void *arg)
{
	struct cwait	*w = arg;

	tu_amqp_count(b, w->q, NULL, &w->last);
	return (w->last == w->want);
}

/* Turns the loop until the broker counts want consumers on q. */
static void
wait_consumers(const char *q, long want)
{
	struct cwait	 w = { q, want, -1 };

	ck_assert_msg(tu_run_until(loop, pred_consumers, &w, DEADLINE),
	    "%s: %ld consumers, wanted %ld", q, w.last, want);
}

/* The end of a test: q drained (every message acked), c gone, q deleted. */
static void
end_drained(struct consumer *c, const char *q)
{
	wait_qstat(q, "messages", 0);
	c->type->destroy(c);
	tu_amqp_delete(b, q);
}

/* Percent-encodes s for a path segment. */
static void
pct(char *out, size_t outlen, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		 n = 0;

	for (; *s != '\0' && n + 4 < outlen; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch) != NULL)
			out[n++] = (char)ch;
		else {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	out[n] = '\0';
}

/*
 * Closes, through the management API, every connection whose
 * connection_name contains label; returns how many.
 */
static int
kill_connections(const char *label)
{
	char		*body = NULL, path[512], enc[400];
	cJSON		*j, *conn, *props, *name, *cname;
	int		 n = 0;

	if (tu_rabbit_api(&rb, "GET", "/api/connections", NULL, &body) !=
	    200 || (j = cJSON_Parse(body)) == NULL) {
		free(body);
		return (0);
	}
	cJSON_ArrayForEach(conn, j) {
		props = cJSON_GetObjectItemCaseSensitive(conn,
		    "client_properties");
		cname = cJSON_GetObjectItemCaseSensitive(props,
		    "connection_name");
		name = cJSON_GetObjectItemCaseSensitive(conn, "name");
		if (!cJSON_IsString(cname) || !cJSON_IsString(name) ||
		    strstr(cname->valuestring, label) == NULL)
			continue;
		pct(enc, sizeof enc, name->valuestring);
		snprintf(path, sizeof path, "/api/connections/%s", enc);
		if (tu_rabbit_api(&rb, "DELETE", path, NULL, NULL) == 204)
			n++;
	}
	cJSON_Delete(j);
	free(body);
	return (n);
}

struct kwait {
	const char	*label;
	double		 next;
};

static int
pred_killed(void *arg)
{
	struct kwait	*k = arg;

	if (as_mono_now() < k->next)
		return (0);
	k->next = as_mono_now() + 0.2;
	return (kill_connections(k->label) > 0);
}

/* ---- pure: validate() ---- */

struct valid_row {
	const char	*address;
	const char	*queue;
	int		 window;
	const char	*instance;
	const char	*ca_file;
	int		 rc;
	const char	*err;	/* expected in the message */
};

static const struct valid_row valid_rows[] = {
	{ "amqp://h/", "q", 3, "i", NULL, 0, NULL },
	{ "amqps://h:5671/agents", "q", 65535, "i", "/ca.pem", 0, NULL },
	{ "http://h:15672/", "q", 3, "i", NULL, -AS_EINVAL,
	    "management API (http://) can read queue depths but cannot "
	    "consume" },
	{ "https://h/", "q", 3, "i", NULL, -AS_EINVAL,
	    "use an amqp:// or amqps:// address" },
	{ "redis://h:6379/0", "q", 3, "i", NULL, -AS_EINVAL, "scheme" },
	{ "amqp://u:hunter2@h/", "q", 3, "i", NULL, -AS_EINVAL,
	    "credentials" },
	{ NULL, "q", 3, "i", NULL, -AS_EINVAL, "needs an address" },
	{ "amqp://h/", "", 3, "i", NULL, -AS_EINVAL, "queue name" },
	{ "amqp://h/", "q", 0, "i", NULL, -AS_EINVAL, "window must be 1 to "
	    "65535" },
	{ "amqp://h/", "q", 65536, "i", NULL, -AS_EINVAL, "16 bits" },
	{ "amqp://h/", "q", 3, "", NULL, -AS_EINVAL, "instance name" },
	{ "amqp://h/", "q", 3, NULL, NULL, -AS_EINVAL,
	    "agentscaler.<instance>" },
	{ "amqp://h/", "q", 3, "i", "/ca.pem", -AS_EINVAL, "use amqps://" },
};

START_TEST(test_validate)
{
	const struct valid_row *row = &valid_rows[_i];
	struct scaler_source src = tu_amqp_source(row->address, row->queue);
	struct consumer_options o = tu_consumer_options(row->instance,
	    row->window);
	struct ev_loop	*vloop;
	struct consumer	*c;
	char		 err[256] = "";
	int		 rc;

	src.ca_file = row->ca_file;
	rc = consumer_type_rabbitmq.validate(&src, &o, err, sizeof err);
	ck_assert_msg(rc == row->rc, "row %d: rc %d (%s)", _i, rc, err);
	if (rc != 0) {
		ck_assert_msg(strstr(err, row->err) != NULL,
		    "row %d: \"%s\" lacks \"%s\"", _i, err, row->err);
		ck_assert(strstr(err, "hunter2") == NULL);
		/* create() refuses the same, with the same reason. */
		err[0] = '\0';
		vloop = ev_loop_new(EVFLAG_AUTO);
		c = consumer_type_rabbitmq.create(vloop, &src, &o, err,
		    sizeof err);
		ev_loop_destroy(vloop);
		ck_assert_ptr_null(c);
		ck_assert(strstr(err, row->err) != NULL);
	}
}
END_TEST

/* "<queue>.rejected" is a queue name too: 255 bytes at most. */
START_TEST(test_validate_rejected_name)
{
	struct consumer_options o = tu_consumer_options("i", 1);
	struct scaler_source src;
	char		 q[256], err[256];

	memset(q, 'q', sizeof q);
	q[246] = '\0';
	src = tu_amqp_source("amqp://h/", q);
	ck_assert_int_eq(consumer_type_rabbitmq.validate(&src, &o, err,
	    sizeof err), 0);
	q[246] = 'q';
	q[247] = '\0';
	ck_assert_int_eq(consumer_type_rabbitmq.validate(&src, &o, err,
	    sizeof err), -AS_EINVAL);
	ck_assert_msg(strstr(err, "<queue>.rejected: at most 246 bytes") !=
	    NULL, "%s", err);
}
END_TEST

/* ---- against the broker ---- */

/*
 * Deliveries come in order, with their tags as refs; the broker keeps them
 * (unacknowledged) until the acks, and only then is the queue empty.
 */
START_TEST(test_deliver_ack)
{
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d;
	char		 want[16];
	long		 ready = -1;
	int		 i;

	tu_amqp_declare(b, "cq-order", 1);
	publish_bodies("cq-order", "m", 5);
	c = make("cq-order", 10, &r);
	wait_msgs(&r, 5);
	ck_assert(tu_run_until(loop, pred_up, &r, DEADLINE));
	ck_assert_int_eq(r.nup, 1);
	for (i = 0; i < 5; i++) {
		snprintf(want, sizeof want, "m%d", i);
		ck_assert_str_eq(r.msgs[i]->body, want);
		ck_assert_uint_eq(r.msgs[i]->len, strlen(want));
		ck_assert_int_eq(r.msgs[i]->redelivered, 0);
		snprintf(want, sizeof want, "%d", i + 1);
		ck_assert_str_eq(r.msgs[i]->ref, want);
		ck_assert_ptr_nonnull(r.msgs[i]->priv);
		ck_assert(r.msgs[i]->received > 0);
	}
	ck_assert_int_eq(c->type->outstanding(c), 5);
	/* Delivered, not acked: nothing ready, all five still held. */
	wait_qstat("cq-order", "messages_unacknowledged", 5);
	ck_assert_int_eq(qstat("cq-order", "messages"), 5);
	tu_amqp_count(b, "cq-order", &ready, NULL);
	ck_assert_int_eq(ready, 0);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(ack_wait(c, r.msgs[i], &d), 0);
		ck_assert_int_eq(c->type->outstanding(c), 4 - i);
	}
	wait_qstat("cq-order", "messages", 0);
	tu_run_for(loop, SETTLE);
	ck_assert_int_eq(r.nmsg, 5);
	ck_assert_int_eq(r.ndown, 0);
	c->type->destroy(c);
	tu_amqp_delete(b, "cq-order");
}
END_TEST

/* Window 3: three outstanding at most; each ack lets one more in. */
START_TEST(test_window)
{
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d;
	char		 want[16];
	int		 i, acked = 0;

	tu_amqp_declare(b, "cq-window", 1);
	publish_bodies("cq-window", "w", 10);
	c = make("cq-window", 3, &r);
	wait_msgs(&r, 3);
	tu_run_for(loop, SETTLE);
	ck_assert_int_eq(r.nmsg, 3);
	ck_assert_int_eq(c->type->outstanding(c), 3);

	ck_assert_int_eq(ack_wait(c, r.msgs[acked++], &d), 0);
	wait_msgs(&r, 4);
	tu_run_for(loop, SETTLE);
	ck_assert_int_eq(r.nmsg, 4);
	ck_assert_int_eq(c->type->outstanding(c), 3);

	while (acked < 10) {
		while (acked < r.nmsg)
			ck_assert_int_eq(ack_wait(c, r.msgs[acked++], &d), 0);
		if (acked < 10)
			wait_msgs(&r, acked + 1);
		ck_assert_int_le(r.nmsg, acked + 3);
	}
	for (i = 0; i < 10; i++) {
		snprintf(want, sizeof want, "w%d", i);
		ck_assert_str_eq(r.body[i], want);
	}
	ck_assert_int_eq(c->type->outstanding(c), 0);
	end_drained(c, "cq-window");
}
END_TEST

/*
 * set_window(0) cancels the consumer (prefetch 0 would mean unlimited):
 * acks free the window but nothing comes; raising it consumes again.
 */
START_TEST(test_pause_resume)
{
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d;
	int		 i;

	tu_amqp_declare(b, "cq-pause", 1);
	publish_bodies("cq-pause", "p", 8);
	c = make("cq-pause", 2, &r);
	wait_msgs(&r, 2);
	wait_consumers("cq-pause", 1);

	c->type->set_window(c, 0);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(ack_wait(c, r.msgs[i], &d), 0);
	wait_consumers("cq-pause", 0);
	tu_run_for(loop, SETTLE);
	ck_assert_int_eq(r.nmsg, 2);
	ck_assert_int_eq(c->type->outstanding(c), 0);

	c->type->set_window(c, 3);
	wait_msgs(&r, 5);
	tu_run_for(loop, SETTLE);
	ck_assert_int_eq(r.nmsg, 5);
	wait_consumers("cq-pause", 1);

	/* Pause and resume in one turn: still consuming, window 1. */
	c->type->set_window(c, 0);
	c->type->set_window(c, 1);
	for (i = 2; i < 5; i++)
		ck_assert_int_eq(ack_wait(c, r.msgs[i], &d), 0);
	wait_msgs(&r, 6);
	tu_run_for(loop, SETTLE);
	ck_assert_int_eq(r.nmsg, 6);
	for (i = 5; i < 8; i++) {
		wait_msgs(&r, i + 1);
		ck_assert_int_eq(ack_wait(c, r.msgs[i], &d), 0);
	}
	ck_assert_str_eq(r.body[7], "p7");
	ck_assert_int_eq(r.ndown, 0);
	ck_assert_int_eq(r.up, 1);
	end_drained(c, "cq-pause");
}
END_TEST

/*
 * A dead letter lands on "<queue>.rejected" (durable, persistent, JSON)
 * and the original is gone; two at once go out pipelined, in order.
 */
START_TEST(test_dead_letter)
{
	static const char *records[] = {
		"{\"reason\":\"task.notJson\",\"original\":\"not json\"}",
		"{\"reason\":\"cascade.maxDepth\",\"n\":1}",
		"{\"reason\":\"cascade.maxDepth\",\"n\":2}",
	};
	struct tu_amqp_msg props;
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d[3];
	char		*body;
	long		 ready = -1;
	int		 i;

	tu_amqp_declare(b, "cq-dl", 1);
	tu_amqp_delete(b, "cq-dl.rejected");
	tu_amqp_publish_body(b, "cq-dl", "not json", 8);
	c = make("cq-dl", 5, &r);
	wait_msgs(&r, 1);
	ck_assert_msg(tu_dead_letter_wait(loop, c, r.msgs[0], records[0],
	    &d[0], DEADLINE) == 0, "%d %s", d[0].err, d[0].msg);
	ck_assert_int_eq(c->type->outstanding(c), 0);

	body = tu_amqp_get(b, "cq-dl.rejected", NULL, &props);
	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(body, records[0]);
	ck_assert_str_eq(props.content_type, "application/json");
	ck_assert_int_eq(props.delivery_mode, 2);
	free(body);
	wait_qstat("cq-dl.rejected", "durable", 1);

	/* Two more on the same connection: the declare is cached. */
	tu_amqp_publish(b, "cq-dl", 2);
	wait_msgs(&r, 3);
	memset(d, 0, sizeof d);
	for (i = 1; i < 3; i++)
		ck_assert_int_eq(c->type->dead_letter(c, r.msgs[i], records[i],
		    strlen(records[i]), tu_op_done, &d[i]), 0);
	for (i = 1; i < 3; i++) {
		ck_assert(tu_run_until(loop, tu_pred_op, &d[i], DEADLINE));
		ck_assert_msg(d[i].err == 0, "%d %s", d[i].err, d[i].msg);
	}
	for (i = 1; i < 3; i++) {
		body = tu_amqp_get(b, "cq-dl.rejected", NULL, NULL);
		ck_assert_ptr_nonnull(body);
		ck_assert_str_eq(body, records[i]);
		free(body);
	}
	ck_assert_ptr_null(tu_amqp_get(b, "cq-dl.rejected", NULL, NULL));

	/* The originals were acked: nothing comes back once we are gone. */
	c->type->destroy(c);
	wait_consumers("cq-dl", 0);
	tu_amqp_count(b, "cq-dl", &ready, NULL);
	ck_assert_int_eq(ready, 0);
	tu_amqp_delete(b, "cq-dl");
	tu_amqp_delete(b, "cq-dl.rejected");
}
END_TEST

/*
 * A hand-off lands on the durable inbox with message_id = task id,
 * persistent; one asked for before the connection is up waits for it; a
 * repeat lands again (RabbitMQ cannot dedupe: never DUPLICATE); an inbox
 * deleted behind our back fails the publish (returned), then is declared
 * again.
 */
START_TEST(test_handoff)
{
	static const char inbox[] = "agentscaler.inbox.team-a.sb-1";
	static const char task[] = "{\"id\":\"t-42\",\"payload\":{}}";
	struct tu_amqp_msg props;
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d;
	char		*body;
	int		 i;

	tu_amqp_declare(b, "cq-ho", 1);
	tu_amqp_delete(b, inbox);
	c = make("cq-ho", 1, &r);
	/* Not connected yet: the hand-off waits for the channel. */
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(handoff_wait(c, "team-a", "sb-1",
		    "t-42", task, &d), 0);
		ck_assert_int_eq(d.outcome, CONSUMER_HANDOFF_DONE);
	}
	for (i = 0; i < 2; i++) {
		body = tu_amqp_get(b, inbox, NULL, &props);
		ck_assert_ptr_nonnull(body);
		ck_assert_str_eq(body, task);
		ck_assert_str_eq(props.message_id, "t-42");
		ck_assert_str_eq(props.content_type, "application/json");
		ck_assert_int_eq(props.delivery_mode, 2);
		free(body);
	}
	ck_assert_ptr_null(tu_amqp_get(b, inbox, NULL, NULL));
	wait_qstat(inbox, "durable", 1);

	tu_amqp_delete(b, inbox);
	ck_assert_int_eq(handoff_wait(c, "team-a", "sb-1", "t-43", task,
	    &d), -AS_ENOTFOUND);
	ck_assert_msg(strstr(d.msg, "does not exist") != NULL, "%s", d.msg);
	ck_assert_int_eq(handoff_wait(c, "team-a", "sb-1", "t-43", task,
	    &d), 0);
	body = tu_amqp_get(b, inbox, NULL, &props);
	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(props.message_id, "t-43");
	free(body);

	/* Refused at once, no completion. */
	memset(&d, 0, sizeof d);
	ck_assert_int_eq(c->type->handoff(c, "", "sb", "t", "{}", 2,
	    tu_op_handoff, &d), -AS_EINVAL);
	ck_assert_int_eq(c->type->handoff(c, "ns", "sb", "", "{}", 2,
	    tu_op_handoff, &d), -AS_EINVAL);
	tu_run_for(loop, 0.1);
	ck_assert_int_eq(d.n, 0);
	ck_assert_int_eq(r.ndown, 0);
	c->type->destroy(c);
	tu_amqp_delete(b, inbox);
	tu_amqp_delete(b, "cq-ho");
}
END_TEST

/* A body larger than one frame (128 KiB) arrives whole; and leaves whole. */
START_TEST(test_large_message)
{
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d;
	size_t		 n = 600 * 1024 + 7, len = 0;
	char		*big, *body;

	big = malloc(n + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', n);
	big[0] = '"';
	big[n - 1] = '"';
	big[n] = '\0';
	tu_amqp_declare(b, "cq-big", 1);
	tu_amqp_delete(b, "agentscaler.inbox.big.sb");
	tu_amqp_publish_body(b, "cq-big", big, n);
	tu_amqp_publish_body(b, "cq-big", "small", 5);
	c = make("cq-big", 2, &r);
	wait_msgs(&r, 2);
	ck_assert_uint_eq(r.msgs[0]->len, n);
	ck_assert(memcmp(r.msgs[0]->body, big, n) == 0);
	ck_assert_int_eq(r.msgs[0]->body[n], '\0');
	ck_assert_str_eq(r.msgs[1]->body, "small");
	ck_assert_int_eq(handoff_wait(c, "big", "sb", "t-big", big, &d),
	    0);
	body = tu_amqp_get(b, "agentscaler.inbox.big.sb", &len, NULL);
	ck_assert_ptr_nonnull(body);
	ck_assert_uint_eq(len, n);
	ck_assert(memcmp(body, big, n) == 0);
	free(body);
	ck_assert_int_eq(ack_wait(c, r.msgs[0], &d), 0);
	ck_assert_int_eq(ack_wait(c, r.msgs[1], &d), 0);
	c->type->destroy(c);
	free(big);
	tu_amqp_delete(b, "agentscaler.inbox.big.sb");
	tu_amqp_delete(b, "cq-big");
}
END_TEST

/* Unacked messages of a destroyed consumer go to the next, redelivered. */
START_TEST(test_destroy_redelivers)
{
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d;
	char		 want[16];
	int		 i;

	tu_amqp_declare(b, "cq-redeliver", 1);
	publish_bodies("cq-redeliver", "r", 3);
	c = make("cq-redeliver", 5, &r);
	wait_msgs(&r, 3);
	c->type->destroy(c);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(r.msgs[i]->redelivered, 0);
		consumer_msg_free(r.msgs[i]);
	}

	c = make("cq-redeliver", 5, &r);
	wait_msgs(&r, 3);
	for (i = 0; i < 3; i++) {
		snprintf(want, sizeof want, "r%d", i);
		ck_assert_str_eq(r.msgs[i]->body, want);
		ck_assert_int_eq(r.msgs[i]->redelivered, 1);
		ck_assert_int_eq(ack_wait(c, r.msgs[i], &d), 0);
	}
	end_drained(c, "cq-redeliver");
}
END_TEST

/*
 * The broker closes our connection: down with a reason, then up again on
 * its own; acks and dead letters of the old connection's messages fail
 * with -AS_ECONN (their tags are void) and the messages come again,
 * redelivered.
 */
START_TEST(test_connection_killed)
{
	struct scaler_source src;
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d;
	struct kwait	 k = { "agentscaler.t-kill consumer of cq-kill", 0 };
	int		 i;

	tu_amqp_declare(b, "cq-kill", 1);
	publish_bodies("cq-kill", "k", 2);
	src = tu_amqp_source(rb.amqp_url, "cq-kill");
	c = make_src(&src, "t-kill", 5, &r);
	wait_msgs(&r, 2);
	ck_assert(tu_run_until(loop, pred_up, &r, DEADLINE));
	ck_assert_int_eq(c->type->outstanding(c), 2);

	ck_assert(tu_run_until(loop, pred_killed, &k, DEADLINE));
	ck_assert(tu_run_until(loop, pred_down, &r, DEADLINE));
	ck_assert_int_eq(r.ndown, 1);
	ck_assert_msg(strstr(r.state_msg, "closed by the broker") != NULL,
	    "%s", r.state_msg);
	ck_assert_int_eq(c->type->outstanding(c), 0);
	ck_assert(tu_run_until(loop, pred_up, &r, DEADLINE));
	ck_assert_int_eq(r.nup, 2);

	ck_assert_int_eq(ack_wait(c, r.msgs[0], &d), -AS_ECONN);
	ck_assert_msg(strstr(d.msg, "redeliver") != NULL, "%s", d.msg);
	ck_assert_int_eq(tu_dead_letter_wait(loop, c, r.msgs[1], "{}", &d,
	    DEADLINE), -AS_ECONN);

	wait_msgs(&r, 4);
	for (i = 2; i < 4; i++) {
		ck_assert_int_eq(r.msgs[i]->redelivered, 1);
		ck_assert_int_eq(ack_wait(c, r.msgs[i], &d), 0);
	}
	ck_assert_str_eq(r.body[2], "k0");
	ck_assert_str_eq(r.body[3], "k1");
	ck_assert_int_eq(c->type->outstanding(c), 0);
	end_drained(c, "cq-kill");
}
END_TEST

/* A queue that does not exist yet: down with the reason, up once it does. */
START_TEST(test_missing_queue)
{
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d;

	tu_amqp_delete(b, "cq-missing");
	c = make("cq-missing", 1, &r);
	ck_assert(tu_run_until(loop, pred_down, &r, DEADLINE));
	ck_assert_msg(strstr(r.state_msg, "cq-missing") != NULL &&
	    strstr(r.state_msg, "NOT_FOUND") != NULL, "%s", r.state_msg);
	tu_amqp_declare(b, "cq-missing", 1);
	tu_amqp_publish(b, "cq-missing", 1);
	wait_msgs(&r, 1);
	ck_assert_int_eq(r.up, 1);
	ck_assert_int_eq(r.ndown, 1);
	ck_assert_int_eq(ack_wait(c, r.msgs[0], &d), 0);
	c->type->destroy(c);
	tu_amqp_delete(b, "cq-missing");
}
END_TEST

/*
 * A consumer of a new durable queue holding one message, body, whose
 * replies must come within command_timeout: up, with the message
 * delivered (r->msgs[0]).
 */
static struct consumer *
consume_one(const char *queue, const char *body, double command_timeout,
    int window, struct crec *r)
{
	struct scaler_source src;
	struct consumer	*c;

	tu_amqp_declare(b, queue, 1);
	tu_amqp_publish_body(b, queue, body, 2);
	src = tu_amqp_source(rb.amqp_url, queue);
	src.command_timeout = command_timeout;
	c = make_src(&src, "t", window, r);
	wait_msgs(r, 1);
	ck_assert(tu_run_until(loop, pred_up, r, DEADLINE));
	return (c);
}

/*
 * A broker that stops answering (SIGSTOP): a dead letter and a hand-off
 * waiting for their confirms fail within the command timeout, the
 * consumer goes down, comes back once the broker does, and the original
 * of the dead letter, never acked, comes again.
 */
START_TEST(test_command_timeout)
{
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 dd, dh;

	c = consume_one("cq-timeout", "t0", 0.5, 1, &r);
	ck_assert_int_eq(kill(-rb.pid, SIGSTOP), 0);
	memset(&dd, 0, sizeof dd);
	memset(&dh, 0, sizeof dh);
	ck_assert_int_eq(c->type->dead_letter(c, r.msgs[0], "{}", 2,
	    tu_op_done, &dd), 0);
	ck_assert_int_eq(c->type->handoff(c, "to", "sb", "t-1", "{}", 2,
	    tu_op_handoff, &dh), 0);
	ck_assert(tu_run_until(loop, tu_pred_op, &dd, DEADLINE));
	ck_assert(tu_run_until(loop, tu_pred_op, &dh, DEADLINE));
	ck_assert(tu_run_until(loop, pred_down, &r, DEADLINE));
	kill(-rb.pid, SIGCONT);
	ck_assert_msg(dd.err == -AS_ETIMEDOUT, "%d %s", dd.err, dd.msg);
	ck_assert_msg(strstr(dd.msg, "no reply within 0.5 s") != NULL &&
	    strstr(dd.msg, "will be redelivered") != NULL, "%s", dd.msg);
	ck_assert_msg(dh.err == -AS_ETIMEDOUT, "%d %s", dh.err, dh.msg);
	ck_assert_msg(strstr(r.state_msg, "no reply within 0.5 s") != NULL,
	    "%s", r.state_msg);
	ck_assert(tu_run_until(loop, pred_up, &r, DEADLINE));
	ck_assert_int_eq(r.nup, 2);
	wait_msgs(&r, 2);
	ck_assert_str_eq(r.body[1], "t0");
	ck_assert_int_eq(r.msgs[1]->redelivered, 1);
	ck_assert_int_eq(ack_wait(c, r.msgs[1], &dd), 0);
	ck_assert_int_eq(handoff_wait(c, "to", "sb", "t-2", "{}", &dh), 0);
	c->type->destroy(c);
	tu_amqp_delete(b, "agentscaler.inbox.to.sb");
	tu_amqp_delete(b, "cq-timeout.rejected");
	tu_amqp_delete(b, "cq-timeout");
}
END_TEST

/*
 * An ack completes once the broker has processed it, not once it is
 * written: with the broker stopped (SIGSTOP) the ack's bytes sit in a
 * socket buffer, and a connection lost now could lose them, so the ack
 * must not report success yet (it did, at once, before the fence: the
 * crash test's task that ran in two sandboxes).  Once the broker runs
 * again it completes, and the queue is empty.
 */
START_TEST(test_ack_waits_for_broker)
{
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d;
	int		 early;

	c = consume_one("cq-fence", "f0", 10, 2, &r);
	ck_assert_int_eq(kill(-rb.pid, SIGSTOP), 0);
	memset(&d, 0, sizeof d);
	ck_assert_int_eq(c->type->ack(c, r.msgs[0], tu_op_done, &d), 0);
	r.msgs[0] = NULL;
	tu_run_for(loop, SETTLE);
	early = d.n;
	kill(-rb.pid, SIGCONT);		/* before any assertion */
	ck_assert_msg(early == 0, "the ack completed (%d) while the broker "
	    "was stopped", d.err);
	ck_assert_int_eq(c->type->outstanding(c), 0);
	ck_assert(tu_run_until(loop, tu_pred_op, &d, DEADLINE));
	ck_assert_msg(d.err == 0, "%d %s", d.err, d.msg);
	ck_assert_int_eq(r.ndown, 0);
	wait_qstat("cq-fence", "messages", 0);
	c->type->destroy(c);
	tu_amqp_delete(b, "cq-fence");
}
END_TEST

/*
 * Acks whose fence is on the wire when the connection goes fail with the
 * cause, saying they may have landed (the broker was stopped past the
 * command timeout); a burst of acks behind one fence all complete.
 */
START_TEST(test_ack_fence_lost)
{
	struct scaler_source src;
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d[4];
	int		 i, done, down;

	tu_amqp_declare(b, "cq-fence2", 1);
	publish_bodies("cq-fence2", "g", 4);
	src = tu_amqp_source(rb.amqp_url, "cq-fence2");
	src.command_timeout = 0.5;
	c = make_src(&src, "t", 4, &r);
	wait_msgs(&r, 4);
	ck_assert(tu_run_until(loop, pred_up, &r, DEADLINE));
	memset(d, 0, sizeof d);
	/* Two acks in one go: both covered by fences, both complete. */
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(c->type->ack(c, r.msgs[i], tu_op_done, &d[i]),
		    0);
		r.msgs[i] = NULL;
	}
	ck_assert(tu_run_until(loop, tu_pred_op, &d[1], DEADLINE));
	ck_assert(tu_run_until(loop, tu_pred_op, &d[0], DEADLINE));
	ck_assert_msg(d[0].err == 0 && d[1].err == 0, "%s / %s", d[0].msg,
	    d[1].msg);
	ck_assert_int_eq(kill(-rb.pid, SIGSTOP), 0);
	for (i = 2; i < 4; i++) {
		ck_assert_int_eq(c->type->ack(c, r.msgs[i], tu_op_done, &d[i]),
		    0);
		r.msgs[i] = NULL;
	}
	done = tu_run_until(loop, tu_pred_op, &d[3], DEADLINE);
	down = tu_run_until(loop, pred_down, &r, DEADLINE);
	kill(-rb.pid, SIGCONT);		/* before any assertion */
	ck_assert(done && down);
	for (i = 2; i < 4; i++) {
		ck_assert_msg(d[i].n == 1 && d[i].err == -AS_ETIMEDOUT,
		    "%d %d %s", d[i].n, d[i].err, d[i].msg);
		ck_assert_msg(strstr(d[i].msg, "may have landed") != NULL,
		    "%s", d[i].msg);
	}
	ck_assert(tu_run_until(loop, pred_up, &r, DEADLINE));
	c->type->destroy(c);
	tu_amqp_delete(b, "cq-fence2");
}
END_TEST

/* cq-nack.rejected is under the policy named arg. */
static int
pred_policy(void *arg)
{
	char		*body = NULL;
	cJSON		*j, *v;
	int		 ok = 0;

	if (tu_rabbit_api(&rb, "GET", "/api/queues/%2F/cq-nack.rejected",
	    NULL, &body) == 200 && (j = cJSON_Parse(body)) != NULL) {
		v = cJSON_GetObjectItemCaseSensitive(j, "policy");
		ok = cJSON_IsString(v) && strcmp(v->valuestring, arg) == 0;
		cJSON_Delete(j);
	}
	free(body);
	if (!ok)
		usleep(100 * 1000);
	return (ok);
}

/*
 * The broker refuses the dead letter (basic.nack: "<queue>.rejected" is
 * full and rejects publishes, by policy): the operation fails, the
 * connection stays, and the original stays unacked, outstanding, until
 * the connection ends, when it comes again.
 */
START_TEST(test_dead_letter_nack)
{
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d;
	long		 code;

	code = tu_rabbit_api(&rb, "PUT", "/api/policies/%2F/cq-nack-full",
	    "{\"pattern\":\"^cq-nack\\\\.rejected$\",\"apply-to\":"
	    "\"queues\",\"definition\":{\"max-length\":0,"
	    "\"overflow\":\"reject-publish\"}}", NULL);
	ck_assert_msg(code == 201 || code == 204, "PUT policy: %ld", code);
	tu_amqp_declare(b, "cq-nack", 1);
	tu_amqp_declare(b, "cq-nack.rejected", 1);
	ck_assert(tu_run_until(loop, pred_policy, "cq-nack-full", DEADLINE));
	tu_amqp_publish_body(b, "cq-nack", "n0", 2);
	c = make("cq-nack", 2, &r);
	wait_msgs(&r, 1);
	ck_assert_msg(tu_dead_letter_wait(loop, c, r.msgs[0], "{}", &d,
	    DEADLINE) == -AS_EIO, "%d %s", d.err, d.msg);
	ck_assert_msg(strstr(d.msg, "basic.nack") != NULL &&
	    strstr(d.msg, "stays unacked") != NULL, "%s", d.msg);
	ck_assert_int_eq(c->type->outstanding(c), 1);
	ck_assert_int_eq(r.ndown, 0);
	wait_qstat("cq-nack", "messages_unacknowledged", 1);
	c->type->destroy(c);

	c = make("cq-nack", 2, &r);
	wait_msgs(&r, 1);
	ck_assert_str_eq(r.msgs[0]->body, "n0");
	ck_assert_int_eq(r.msgs[0]->redelivered, 1);
	ck_assert_int_eq(ack_wait(c, r.msgs[0], &d), 0);
	c->type->destroy(c);
	ck_assert_int_eq(tu_rabbit_api(&rb, "DELETE",
	    "/api/policies/%2F/cq-nack-full", NULL, NULL), 204);
	tu_amqp_delete(b, "cq-nack.rejected");
	tu_amqp_delete(b, "cq-nack");
}
END_TEST

/* amqps:// with our CA: consumes, acks and hands off over TLS. */
START_TEST(test_amqps)
{
	struct scaler_source src;
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 d;

	ck_assert_msg(rb.amqps_url[0] != '\0', "no TLS listener (openssl?)");
	tu_amqp_declare(b, "cq-tls", 1);
	tu_amqp_publish(b, "cq-tls", 1);
	src = tu_amqp_source(rb.amqps_url, "cq-tls");
	src.ca_file = rb.ca;
	c = make_src(&src, "t", 1, &r);
	wait_msgs(&r, 1);
	ck_assert_str_eq(r.msgs[0]->body, "{\"task\":1}");
	ck_assert_int_eq(ack_wait(c, r.msgs[0], &d), 0);
	ck_assert_int_eq(handoff_wait(c, "tls", "sb", "t-1", "{}", &d),
	    0);
	wait_qstat("cq-tls", "messages", 0);
	c->type->destroy(c);
	tu_amqp_delete(b, "agentscaler.inbox.tls.sb");
	tu_amqp_delete(b, "cq-tls");
}
END_TEST

/*
 * destroy() with operations in flight: each completes exactly once, inside
 * destroy() and after its own call returned; what was still waiting for
 * the broker gets -AS_ECANCELED, an ack written but not yet known to have
 * landed (its fence unanswered) too.  The dead-lettered original was never
 * acked: it comes back.
 */
START_TEST(test_destroy_in_flight)
{
	struct consumer	*c;
	struct crec	 r;
	struct tu_op	 da, dd, dh, dw;

	tu_amqp_declare(b, "cq-inflight", 1);
	publish_bodies("cq-inflight", "f", 2);
	c = make("cq-inflight", 5, &r);
	wait_msgs(&r, 2);
	memset(&da, 0, sizeof da);
	memset(&dd, 0, sizeof dd);
	memset(&dh, 0, sizeof dh);
	ck_assert_int_eq(c->type->ack(c, r.msgs[0], tu_op_done, &da), 0);
	ck_assert_int_eq(c->type->dead_letter(c, r.msgs[1], "{}", 2,
	    tu_op_done, &dd), 0);
	ck_assert_int_eq(c->type->handoff(c, "fl", "sb", "t-1", "{}", 2,
	    tu_op_handoff, &dh), 0);
	ck_assert_int_eq(da.n + dd.n + dh.n, 0);
	c->type->destroy(c);
	ck_assert_int_eq(da.n, 1);
	ck_assert_int_eq(da.err, -AS_ECANCELED);
	ck_assert_int_eq(dd.n, 1);
	ck_assert_int_eq(dd.err, -AS_ECANCELED);
	ck_assert_int_eq(dh.n, 1);
	ck_assert_int_eq(dh.err, -AS_ECANCELED);
	tu_run_for(loop, 0.1);
	ck_assert_int_eq(da.n + dd.n + dh.n, 3);

	/* Destroyed while connecting, a hand-off waiting for the channel. */
	c = make("cq-inflight", 5, &r);
	memset(&dw, 0, sizeof dw);
	ck_assert_int_eq(c->type->handoff(c, "fl", "sb", "t-2", "{}", 2,
	    tu_op_handoff, &dw), 0);
	c->type->destroy(c);
	ck_assert_int_eq(dw.n, 1);
	ck_assert_int_eq(dw.err, -AS_ECANCELED);

	/*
	 * Destroyed from inside its own delivery callback.  The dead-lettered
	 * original comes back (and f0 too, should the close have overtaken
	 * its ack: destroy() does not wait for the fence).
	 */
	c = make("cq-inflight", 5, &r);
	r.destroy_in_deliver = c;
	wait_msgs(&r, 1);
	ck_assert_int_eq(r.msgs[0]->redelivered, 1);
	tu_run_for(loop, 0.1);
	ck_assert_int_eq(r.nmsg, 1);
	consumer_msg_free(r.msgs[0]);

	c = make("cq-inflight", 5, &r);
	r.autoack = 1;
	wait_msgs(&r, 1);
	wait_qstat("cq-inflight", "messages", 0);
	ck_assert_int_eq(r.nacked, r.nmsg);
	c->type->destroy(c);
	tu_amqp_delete(b, "agentscaler.inbox.fl.sb");
	tu_amqp_delete(b, "cq-inflight.rejected");
	tu_amqp_delete(b, "cq-inflight");
}
END_TEST

/*
 * Each broker test starts with a running broker, whatever came before,
 * and has a loop and a blocking connection of its own.
 */
static void
broker_setup(void)
{
	tu_amqp_fixture(&rb, &loop, &b);
}

static void
broker_teardown(void)
{
	tu_amqp_fixture_end(&loop, b);
}

static Suite *
consume_suite(void)
{
	Suite	*s = suite_create("rabbitmq_consume");
	TCase	*tc;

	tc = tcase_create("validate");
	tcase_add_loop_test(tc, test_validate, 0,
	    (int)AS_ARRAY_SIZE(valid_rows));
	tcase_add_test(tc, test_validate_rejected_name);
	suite_add_tcase(s, tc);

	tc = tu_tcase(s, "broker", 180, NULL, NULL, broker_setup,
	    broker_teardown);
	tcase_add_test(tc, test_deliver_ack);
	tcase_add_test(tc, test_window);
	tcase_add_test(tc, test_pause_resume);
	tcase_add_test(tc, test_dead_letter);
	tcase_add_test(tc, test_dead_letter_nack);
	tcase_add_test(tc, test_handoff);
	tcase_add_test(tc, test_large_message);
	tcase_add_test(tc, test_destroy_redelivers);
	tcase_add_test(tc, test_connection_killed);
	tcase_add_test(tc, test_missing_queue);
	tcase_add_test(tc, test_amqps);
	tcase_add_test(tc, test_destroy_in_flight);
	tcase_add_test(tc, test_command_timeout);
	tcase_add_test(tc, test_ack_waits_for_broker);
	tcase_add_test(tc, test_ack_fence_lost);
	return (s);
}

int
main(void)
{
	return (tu_rabbit_run_suite(&rb, consume_suite()));
}
