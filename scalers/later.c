/*
 * later.c: the pending poll of a source and its deferred completion (see
 * scaler_later.h).  The completion is taken off the struct before it runs,
 * so that it can start the next poll, or destroy the instance and the
 * struct with it; nothing here touches the struct after calling it.
 */
#include <stddef.h>
#include <string.h>

#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/scaler.h"
#include "scaler_later.h"

static void	 scaler_later_cb(struct ev_loop *, ev_timer *, int);

static void
scaler_later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct scaler_later *l = w->data;

	(void)loop;
	(void)revents;
	scaler_later_complete(l, &l->res);
}

void
scaler_later_init(struct scaler_later *l, struct ev_loop *loop,
    struct scaler *owner)
{
	memset(l, 0, sizeof *l);
	l->owner = owner;
	l->loop = loop;
	ev_timer_init(&l->timer, scaler_later_cb, 0., 0.);
	l->timer.data = l;
}

int
scaler_later_start(struct scaler_later *l, scaler_done_fn *fn, void *arg)
{
	if (fn == NULL)
		return (-AS_EINVAL);
	if (l->done_fn != NULL)
		return (-AS_EAGAIN);
	l->done_fn = fn;
	l->done_arg = arg;
	memset(&l->res, 0, sizeof l->res);
	return (0);
}

int
scaler_later_pending(const struct scaler_later *l)
{
	return (l->done_fn != NULL);
}

void
scaler_later_arm(struct scaler_later *l, double delay)
{
	ev_timer_set(&l->timer, delay, 0.);
	ev_timer_start(l->loop, &l->timer);
}

void
scaler_later_complete(struct scaler_later *l,
    const struct scaler_result *res)
{
	struct scaler_result copy = *res;
	scaler_done_fn	*fn = l->done_fn;

	l->done_fn = NULL;
	fn(l->owner, &copy, l->done_arg);	/* may free l */
}

scaler_done_fn *
scaler_later_cancel(struct scaler_later *l, void **argp)
{
	scaler_done_fn	*fn = l->done_fn;

	ev_timer_stop(l->loop, &l->timer);
	l->done_fn = NULL;
	*argp = l->done_arg;
	return (fn);
}
