/*
 * fake.c: the scripted "fake" scaler type for the scheduler's unit tests
 * (KEDA swaps I/O out through function fields; our seam is the vtable).
 *
 * A poll takes the next scripted result and arms the one-shot ev_timer of
 * its struct scaler_later (zero delay unless scripted otherwise); the timer
 * delivers it, so a completion never runs before poll() has returned.
 * destroy() delivers -AS_ECANCELED to a pending poll before returning.
 * Wake-ups go through a second timer, for the same reason.  See
 * scaler_fake.h for the script's rules.
 */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/scaler.h"
#include "scaler_fake.h"
#include "scalers/scaler_later.h"

struct fake_step {
	int	 err;
	double	 ready;
	double	 in_flight;
};

struct fake_scaler {
	struct scaler		 base;
	LIST_ENTRY(fake_scaler)	 entry;
	struct ev_loop		*loop;
	char			*queue;
	struct fake_step	*steps;		/* the script, in order */
	size_t			 nsteps, next, cap;
	struct fake_step	 last;
	int			 have_last;
	double			 delay;
	int			 fail_next;	/* poll() itself fails with it */
	int			 can_push;
	unsigned		 polls;
	struct scaler_later	 later;		/* the pending poll */
	scaler_wake_fn		*wake_fn;
	void			*wake_arg;
	ev_timer		 wake_timer;
};

static struct scaler *fake_create(struct ev_loop *,
		    const struct scaler_source *, char *, size_t);
static int	 fake_poll(struct scaler *, scaler_done_fn *, void *);
static int	 fake_subscribe(struct scaler *, scaler_wake_fn *, void *);
static int	 fake_pushing(const struct scaler *);
static void	 fake_destroy(struct scaler *);

static LIST_HEAD(, fake_scaler) fake_scalers =
    LIST_HEAD_INITIALIZER(fake_scalers);
static unsigned	 fake_ninstances;

static struct fake_scaler *
fake_of(const struct scaler *s)
{
	if (s == NULL || s->type != &scaler_type_fake)
		abort();
	return ((struct fake_scaler *)(uintptr_t)s);
}

static void
fake_wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fake_scaler *f = w->data;

	(void)loop;
	(void)revents;
	if (f->wake_fn != NULL)
		f->wake_fn(&f->base, f->wake_arg);	/* may destroy f */
}

static struct scaler *
fake_create(struct ev_loop *loop, const struct scaler_source *src, char *err,
    size_t errlen)
{
	struct fake_scaler *f;

	if (src->address != NULL && strncmp(src->address, "fail:", 5) == 0) {
		snprintf(err, errlen, "fake: %s", src->address + 5);
		return (NULL);
	}
	f = xcalloc(1, sizeof *f);
	f->base.type = &scaler_type_fake;
	f->loop = loop;
	f->queue = xstrdup(src->queue != NULL ? src->queue : "");
	f->can_push = 1;
	scaler_later_init(&f->later, loop, &f->base);
	ev_timer_init(&f->wake_timer, fake_wake_cb, 0., 0.);
	f->wake_timer.data = f;
	LIST_INSERT_HEAD(&fake_scalers, f, entry);
	fake_ninstances++;
	return (&f->base);
}

static int
fake_poll(struct scaler *s, scaler_done_fn *fn, void *arg)
{
	struct fake_scaler *f = fake_of(s);
	struct scaler_result *res = &f->later.res;
	struct fake_step step;
	int		 rc;

	if (fn == NULL)
		return (-AS_EINVAL);
	if (scaler_later_pending(&f->later))
		return (-AS_EAGAIN);
	if (f->fail_next != 0) {
		rc = f->fail_next;
		f->fail_next = 0;
		return (rc);
	}
	(void)scaler_later_start(&f->later, fn, arg);	/* checked above */
	if (f->next < f->nsteps) {
		f->last = f->steps[f->next++];
		f->have_last = 1;
	}
	if (f->have_last) {
		step = f->last;
		res->error = step.err;
		if (step.err == 0) {
			res->ready = step.ready;
			res->in_flight = step.in_flight;
		} else
			snprintf(res->errmsg, sizeof res->errmsg,
			    "fake %s: scripted error: %s", f->queue,
			    as_strerror(step.err));
	} else {
		res->error = -AS_EAGAIN;
		snprintf(res->errmsg, sizeof res->errmsg,
		    "fake %s: no scripted result", f->queue);
	}
	f->polls++;
	scaler_later_arm(&f->later, f->delay);
	return (0);
}

static int
fake_subscribe(struct scaler *s, scaler_wake_fn *fn, void *arg)
{
	struct fake_scaler *f = fake_of(s);

	if (fn == NULL || !f->can_push)
		return (-AS_EINVAL);
	f->wake_fn = fn;
	f->wake_arg = arg;
	return (0);
}

static int
fake_pushing(const struct scaler *s)
{
	const struct fake_scaler *f = fake_of(s);

	return (f->can_push && f->wake_fn != NULL);
}

static void
fake_destroy(struct scaler *s)
{
	struct fake_scaler *f = fake_of(s);
	struct scaler_result res;
	scaler_done_fn	*fn;
	void		*arg;

	fn = scaler_later_cancel(&f->later, &arg);
	ev_timer_stop(f->loop, &f->wake_timer);
	LIST_REMOVE(f, entry);
	fake_ninstances--;
	if (fn != NULL) {
		memset(&res, 0, sizeof res);
		res.error = -AS_ECANCELED;
		snprintf(res.errmsg, sizeof res.errmsg, "fake %s: poll "
		    "canceled: source destroyed", f->queue);
		fn(&f->base, &res, arg);
	}
	free(f->steps);
	free(f->queue);
	free(f);
}

void
scaler_fake_push_result(struct scaler *s, int err, double ready,
    double in_flight)
{
	struct fake_scaler *f = fake_of(s);

	if (f->nsteps == f->cap) {
		f->cap = f->cap == 0 ? 8 : f->cap * 2;
		f->steps = xrealloc(f->steps, f->cap * sizeof *f->steps);
	}
	f->steps[f->nsteps].err = err;
	f->steps[f->nsteps].ready = ready;
	f->steps[f->nsteps].in_flight = in_flight;
	f->nsteps++;
}

void
scaler_fake_clear(struct scaler *s)
{
	struct fake_scaler *f = fake_of(s);

	f->nsteps = f->next = 0;
}

void
scaler_fake_set_delay(struct scaler *s, double seconds)
{
	fake_of(s)->delay = seconds > 0 ? seconds : 0;
}

void
scaler_fake_fail_next_poll(struct scaler *s, int err)
{
	fake_of(s)->fail_next = err;
}

void
scaler_fake_set_push(struct scaler *s, int can_push)
{
	fake_of(s)->can_push = can_push != 0;
}

void
scaler_fake_wake(struct scaler *s)
{
	struct fake_scaler *f = fake_of(s);

	if (f->wake_fn == NULL || ev_is_active(&f->wake_timer))
		return;
	ev_timer_set(&f->wake_timer, 0., 0.);
	ev_timer_start(f->loop, &f->wake_timer);
}

unsigned
scaler_fake_polls(const struct scaler *s)
{
	return (fake_of(s)->polls);
}

int
scaler_fake_pending(const struct scaler *s)
{
	return (scaler_later_pending(&fake_of(s)->later));
}

unsigned
scaler_fake_instances(void)
{
	return (fake_ninstances);
}

struct scaler *
scaler_fake_find(const char *queue)
{
	struct fake_scaler *f;

	/* LIST_INSERT_HEAD keeps the newest first. */
	LIST_FOREACH(f, &fake_scalers, entry) {
		if (queue != NULL && strcmp(f->queue, queue) == 0)
			return (&f->base);
	}
	return (NULL);
}

const struct scaler_type scaler_type_fake = {
	.name = "fake",
	.create = fake_create,
	.poll = fake_poll,
	.subscribe = fake_subscribe,
	.pushing = fake_pushing,
	.destroy = fake_destroy,
};
