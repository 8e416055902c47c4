/*
 * loop.c: runs a test's private ev loop under a deadline and records
 * scaler completions and wake-ups (loop.h).
 */
#include <string.h>

#include <check.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/scaler.h"
#include "loop.h"

static void
tu_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

int
tu_run_until(struct ev_loop *loop, tu_pred_fn *pred, void *arg,
    double timeout)
{
	ev_timer	 tick;
	double		 end = as_mono_now() + timeout;
	int		 ok;

	ev_timer_init(&tick, tu_tick_cb, 0.02, 0.02);
	ev_timer_start(loop, &tick);
	while (!(ok = pred(arg)) && as_mono_now() < end)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &tick);
	return (ok);
}

static int
tu_pred_never(void *arg)
{
	(void)arg;
	return (0);
}

void
tu_run_for(struct ev_loop *loop, double seconds)
{
	tu_run_until(loop, tu_pred_never, NULL, seconds);
}

struct tu_count_arg {
	const int	*count;
	int		 want;
};

static int
tu_pred_count(void *arg)
{
	const struct tu_count_arg *a = arg;

	return (*a->count >= a->want);
}

int
tu_run_count(struct ev_loop *loop, const int *count, int want,
    double timeout)
{
	struct tu_count_arg a = { count, want };

	return (tu_run_until(loop, tu_pred_count, &a, timeout));
}

void
tu_rec_done(struct scaler *s, const struct scaler_result *r, void *arg)
{
	struct tu_rec	*w = arg;
	struct scaler	*d;

	w->ndone++;
	w->res = *r;
	if (w->poll_again) {
		w->poll_again = 0;
		ck_assert_int_eq(scaler_poll(s, tu_rec_done, w), 0);
	}
	if ((d = w->destroy_in_done) != NULL) {
		w->destroy_in_done = NULL;
		scaler_destroy(d);
		d = w->destroy_too;
		w->destroy_too = NULL;
		scaler_destroy(d);
	}
}

void
tu_rec_wake(struct scaler *s, void *arg)
{
	struct tu_rec	*w = arg;

	(void)s;
	w->nwake++;
}

int
tu_pred_done(void *arg)
{
	return (((struct tu_rec *)arg)->ndone > 0);
}

int
tu_pred_woken(void *arg)
{
	return (((struct tu_rec *)arg)->nwake > 0);
}

int
tu_pred_pushing(void *arg)
{
	struct scaler	*s = arg;

	return (s->type->pushing(s));
}

struct scaler_result
tu_poll_wait(struct ev_loop *loop, struct scaler *s, double timeout)
{
	struct tu_rec	 w;

	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), 0);
	ck_assert_int_eq(w.ndone, 0);	/* never before poll() returns */
	ck_assert(tu_run_until(loop, tu_pred_done, &w, timeout));
	ck_assert_int_eq(w.ndone, 1);
	return (w.res);
}
