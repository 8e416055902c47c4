/*
 * consumer.c: completions of a consumer's operations, and each operation
 * run to its completion (consumer.h).
 */
#include <string.h>

#include <check.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/consumer.h"
#include "consumer.h"
#include "loop.h"

void
tu_op_done(int err, const char *errmsg, void *arg)
{
	struct tu_op	*op = arg;
	struct consumer	*c;

	op->n++;
	op->err = err;
	as_strlcpy(op->msg, errmsg != NULL ? errmsg : "", sizeof op->msg);
	ck_assert_msg(err == 0 || op->msg[0] != '\0', "error %d without a "
	    "message", err);
	if ((c = op->destroy) != NULL) {
		op->destroy = NULL;
		c->type->destroy(c);
	}
}

void
tu_op_handoff(int err, int outcome, const char *errmsg, void *arg)
{
	struct tu_op	*op = arg;

	op->outcome = outcome;
	tu_op_done(err, errmsg, arg);
}

void
tu_op_check(int err, int yes, const char *errmsg, void *arg)
{
	struct tu_op	*op = arg;

	op->outcome = yes;
	tu_op_done(err, errmsg, arg);
}

int
tu_pred_op(void *arg)
{
	return (((const struct tu_op *)arg)->n > 0);
}

static void
tu_op_init(struct tu_op *op)
{
	memset(op, 0, sizeof *op);
	op->outcome = -1;
}

/* The common end: rc is what the call returned. */
static int
tu_op_wait(struct ev_loop *loop, int rc, struct tu_op *op, double timeout)
{
	ck_assert_msg(rc == 0, "the consumer refused the operation: %d", rc);
	ck_assert_msg(op->n == 0, "completion inside the call");
	ck_assert_msg(tu_run_until(loop, tu_pred_op, op, timeout),
	    "no completion within %.1f s", timeout);
	ck_assert_int_eq(op->n, 1);
	return (op->err);
}

int
tu_ack_wait(struct ev_loop *loop, struct consumer *c, struct consumer_msg *m,
    struct tu_op *op, double timeout)
{
	tu_op_init(op);
	return (tu_op_wait(loop, c->type->ack(c, m, tu_op_done, op), op,
	    timeout));
}

int
tu_dead_letter_wait(struct ev_loop *loop, struct consumer *c,
    struct consumer_msg *m, const char *record, struct tu_op *op,
    double timeout)
{
	tu_op_init(op);
	return (tu_op_wait(loop, c->type->dead_letter(c, m, record,
	    strlen(record), tu_op_done, op), op, timeout));
}

int
tu_handoff_wait(struct ev_loop *loop, struct consumer *c, const char *ns,
    const char *sandbox, const char *task_id, const char *body,
    struct tu_op *op, double timeout)
{
	tu_op_init(op);
	return (tu_op_wait(loop, c->type->handoff(c, ns, sandbox, task_id,
	    body, strlen(body), tu_op_handoff, op), op, timeout));
}

int
tu_handed_off_wait(struct ev_loop *loop, struct consumer *c, const char *ns,
    const char *task_id, struct tu_op *op, double timeout)
{
	tu_op_init(op);
	return (tu_op_wait(loop, c->type->handed_off(c, ns, task_id,
	    tu_op_check, op), op, timeout));
}

struct consumer_options
tu_consumer_options(const char *instance, int window)
{
	struct consumer_options o;

	memset(&o, 0, sizeof o);
	o.instance = instance;
	o.window = window;
	o.poll_interval = 1.0;
	o.marker_ttl = 60;
	return (o);
}
