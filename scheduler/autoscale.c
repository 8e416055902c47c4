/*
 * autoscale.c: DESIGN.md section 8.  Each evaluation computes the need
 * (ceil(backlog / tasksPerReplica)), clamps it, then applies the asymmetric
 * policy: up at once (optionally by at most maxScaleUpStep), down only to
 * the highest need seen in the stabilization window (as the HPA's
 * scaleDown.stabilizationWindowSeconds, kubernetes
 * pkg/controller/podautoscaler/horizontal.go stabilizeRecommendation), and to
 * zero only after cooldownSeconds without activity (KEDA's cooldownPeriod,
 * kedacore/keda pkg/scaling/executor/scale_scaledobjects.go).
 *
 * The window keeps at most AUTOSCALE_WINDOW samples: a sample closer than
 * window/AUTOSCALE_WINDOW/2 to the newest one is merged into it by max, so a
 * burst of push wake-ups cannot overflow it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "autoscale.h"

static long	 autoscale_clamp(long, long, long);
static long	 autoscale_need(double, long);
static void	 autoscale_window_add(struct autoscale_state *, double, long,
		    double);
static long	 autoscale_window_max(const struct autoscale_state *, double,
		    double);

static const char *const autoscale_reason_names[] = {
	[AUTOSCALE_HOLD] = "hold",
	[AUTOSCALE_ACTIVATE] = "activate",
	[AUTOSCALE_UP] = "up",
	[AUTOSCALE_UP_CAPPED] = "up-capped",
	[AUTOSCALE_DOWN] = "down",
	[AUTOSCALE_STABILIZING] = "stabilizing",
	[AUTOSCALE_COOLDOWN] = "cooldown",
	[AUTOSCALE_TO_ZERO] = "to-zero",
	[AUTOSCALE_SOURCE_ERROR] = "source-error",
	[AUTOSCALE_QUOTA] = "quota",
	[AUTOSCALE_CLAMP] = "clamp",
};

const char *
autoscale_reason_name(enum autoscale_reason r)
{
	if ((size_t)r >= sizeof autoscale_reason_names /
	    sizeof autoscale_reason_names[0])
		return ("unknown");
	return (autoscale_reason_names[r]);
}

static long
autoscale_clamp(long v, long lo, long hi)
{
	if (v < lo)
		v = lo;
	if (v > hi)
		v = hi;
	return (v);
}

static void
autoscale_window_add(struct autoscale_state *st, double now, long need,
    double span)
{
	double	 merge = span / AUTOSCALE_WINDOW / 2;
	size_t	 i, keep;

	/* Drop samples older than the window (keep order). */
	for (i = 0; i < st->nwindow && st->window[i].t < now - span; i++)
		;
	if (i > 0) {
		keep = st->nwindow - i;
		memmove(st->window, st->window + i, keep * sizeof st->window[0]);
		st->nwindow = keep;
	}
	if (st->nwindow > 0 && now - st->window[st->nwindow - 1].t < merge) {
		if (need > st->window[st->nwindow - 1].need)
			st->window[st->nwindow - 1].need = need;
		return;
	}
	if (st->nwindow == AUTOSCALE_WINDOW) {
		/* Merge the two oldest, keeping the larger need. */
		if (st->window[1].need < st->window[0].need)
			st->window[1].need = st->window[0].need;
		memmove(st->window, st->window + 1,
		    (st->nwindow - 1) * sizeof st->window[0]);
		st->nwindow--;
	}
	if (st->nwindow == st->capwindow) {
		st->capwindow = st->capwindow > 0 ? st->capwindow * 2 : 2;
		if (st->capwindow > AUTOSCALE_WINDOW)
			st->capwindow = AUTOSCALE_WINDOW;
		st->window = xrealloc(st->window, st->capwindow *
		    sizeof st->window[0]);
	}
	st->window[st->nwindow].t = now;
	st->window[st->nwindow].need = need;
	st->nwindow++;
}

void
autoscale_state_reset(struct autoscale_state *st)
{
	free(st->window);
	memset(st, 0, sizeof *st);
}

static long
autoscale_window_max(const struct autoscale_state *st, double now,
    double span)
{
	long	 m = 0;
	size_t	 i;

	if (span <= 0)
		return (0);
	for (i = 0; i < st->nwindow; i++) {
		if (st->window[i].t >= now - span && st->window[i].need > m)
			m = st->window[i].need;
	}
	return (m);
}

/*
 * ceil(v / tpr) as a long.  Clamped in floating point first: converting a
 * double beyond what a long holds (a huge or infinite backlog) is
 * undefined, and x86 gives LONG_MIN, which scaled to minReplicas.  1e15 is
 * exact in a double and far above any replica count.
 */
static long
autoscale_need(double v, long tpr)
{
	double	 n = ceil(v / (double)tpr);

	if (!(n >= 0))
		return (0);
	if (n > 1e15)
		n = 1e15;
	return ((long)n);
}

void
autoscale_decide(struct autoscale_state *st, const struct autoscale_params *p,
    const struct autoscale_input *in, struct autoscale_decision *d)
{
	long	 tpr = p->tasks_per_replica > 0 ? p->tasks_per_replica : 1;
	long	 prev, need, raw, target, floor_ = 0, stable;
	double	 backlog = in->backlog > 0 ? in->backlog : 0;

	if (!st->started) {
		/*
		 * A restart must not look like idleness: the cooldown counts
		 * from now and the window remembers what is running.
		 */
		st->started = 1;
		st->desired = in->current;
		st->last_active = in->now;
		st->nwindow = 0;
		autoscale_window_add(st, in->now, in->current,
		    p->stabilization_seconds);
	}
	/* Decide from what the target really has, not from our last wish. */
	prev = in->current;
	memset(d, 0, sizeof *d);

	if (!in->source_ok) {
		/* Never act on a value we could not read. */
		d->desired = prev;
		d->need = -1;
		d->reason = AUTOSCALE_SOURCE_ERROR;
		return;
	}

	need = autoscale_need(backlog, tpr);
	if (in->in_flight > 0)
		floor_ = autoscale_need(in->in_flight, tpr);
	d->need = need;
	if (backlog > (double)p->activation_backlog || in->in_flight > 0)
		st->last_active = in->now;

	raw = need > floor_ ? need : floor_;
	target = autoscale_clamp(raw, p->min_replicas, p->max_replicas);
	autoscale_window_add(st, in->now, target, p->stabilization_seconds);
	d->reason = target != raw ? AUTOSCALE_CLAMP : AUTOSCALE_HOLD;

	if (prev == 0 && backlog <= (double)p->activation_backlog &&
	    floor_ == 0 && p->min_replicas == 0) {
		/* Asleep and nothing to wake for. */
		target = 0;
		d->reason = AUTOSCALE_HOLD;
	} else if (target > prev) {
		d->reason = prev == 0 ? AUTOSCALE_ACTIVATE : AUTOSCALE_UP;
		if (p->max_scale_up_step > 0 &&
		    target > prev + p->max_scale_up_step) {
			target = prev + p->max_scale_up_step;
			d->reason = AUTOSCALE_UP_CAPPED;
		}
	} else if (target < prev) {
		stable = autoscale_window_max(st, in->now,
		    p->stabilization_seconds);
		if (stable > prev)
			stable = prev;
		if (stable > target) {
			target = stable;
			d->reason = AUTOSCALE_STABILIZING;
		} else
			d->reason = AUTOSCALE_DOWN;
		if (target == 0 &&
		    in->now - st->last_active < p->cooldown_seconds) {
			target = 1;
			d->reason = AUTOSCALE_COOLDOWN;
		} else if (target == 0)
			d->reason = AUTOSCALE_TO_ZERO;
		if (target == prev && d->reason == AUTOSCALE_DOWN)
			d->reason = AUTOSCALE_HOLD;
	}

	if (in->quota_cap >= 0 && target > in->quota_cap) {
		target = in->quota_cap;
		d->reason = AUTOSCALE_QUOTA;
	}
	st->desired = target;
	d->desired = target;
}
