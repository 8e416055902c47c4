/*
 * warmpool.c: the warm-pool sizing maths of warmpool.h.  Pure.
 */
#include <math.h>

#include "warmpool.h"

void
warmpool_params_defaults(struct warmpool_params *p)
{
	if (p->safety < 1)
		p->safety = 1.5;
	if (p->rate_tau <= 0)
		p->rate_tau = 10;
	if (p->cold_alpha <= 0 || p->cold_alpha > 1)
		p->cold_alpha = 0.3;
	if (p->cold_default <= 0)
		p->cold_default = 2;
	if (p->learn_tau <= 0)
		p->learn_tau = 300;
	if (p->root_tau <= 0)
		p->root_tau = 3;
	if (p->spare_min < 0)
		p->spare_min = 0;
	if (p->spare_max < p->spare_min)
		p->spare_max = p->spare_min;
}

double
warmpool_rate(const struct warmpool_state *s, const struct warmpool_params *p,
    double now)
{
	double	 dt = now - s->rate_t;

	if (s->rate <= 0)
		return (0);
	if (dt <= 0)
		return (s->rate);
	return (s->rate * exp(-dt / p->rate_tau));
}

void
warmpool_arrival(struct warmpool_state *s, const struct warmpool_params *p,
    double now, unsigned n)
{
	if (n == 0)
		return;
	s->rate = warmpool_rate(s, p, now) + (double)n / p->rate_tau;
	if (now > s->rate_t)
		s->rate_t = now;
	s->last_arrival = now;
	s->arrived = 1;
}

void
warmpool_cold_sample(struct warmpool_state *s, const struct warmpool_params *p,
    double seconds)
{
	if (!(seconds >= 0) || !isfinite(seconds))
		return;
	if (s->cold_samples == 0) {
		s->cold = seconds;
		s->cold_dev = 0;
	} else {
		s->cold_dev += p->cold_alpha * (fabs(seconds - s->cold) -
		    s->cold_dev);
		s->cold += p->cold_alpha * (seconds - s->cold);
	}
	s->cold_samples++;
}

long
warmpool_target(struct warmpool_state *s, const struct warmpool_params *p,
    double now, long waiting)
{
	double	 cold, need;
	long	 t;

	if (!s->arrived || (waiting <= 0 &&
	    now - s->last_arrival >= p->cooldown)) {
		s->target = 0;
		return (0);
	}
	cold = s->cold_samples > 0 ? s->cold : p->cold_default;
	need = ceil(warmpool_rate(s, p, now) * cold * p->safety - 1e-9);
	if (!isfinite(need) || need > (double)p->spare_max)
		t = p->spare_max;
	else
		t = (long)need;
	if (t < p->spare_min)
		t = p->spare_min;
	/* Active: never below one, unless the bounds say at most zero. */
	if (t < 1 && p->spare_max >= 1)
		t = 1;
	s->target = t;
	return (t);
}

/* Predictive policy. */

static double
decayed(double v, double dt, double tau)
{
	return (dt > 0 ? v * exp(-dt / tau) : v);
}

/* Brings the learning sums to now under the load of learn_t. */
static void
learn_to(struct warmpool_state *s, const struct warmpool_params *p,
    double now)
{
	double	 dt = now - s->learn_t, k;

	if (dt <= 0)
		return;
	/*
	 * Decayed integrals: each second of running time counts with
	 * weight exp(-(now - t)/tau), so the sums over [learn_t, now] add
	 * tau x (1 - exp(-dt/tau)) per running task.
	 */
	k = p->learn_tau * (1 - exp(-dt / p->learn_tau));
	s->spawn_s = decayed(s->spawn_s, dt, p->learn_tau);
	s->spawn_n = decayed(s->spawn_n, dt, p->learn_tau);
	s->secs_s = decayed(s->secs_s, dt, p->learn_tau) +
	    k * (double)s->load.spawners;
	s->secs_n = decayed(s->secs_n, dt, p->learn_tau) +
	    k * (double)(s->load.running - s->load.spawners);
	s->learn_t = now;
}

void
warmpool_spawn(struct warmpool_state *s, const struct warmpool_params *p,
    double now, int parent_spawned)
{
	learn_to(s, p, now);
	if (parent_spawned)
		s->spawn_s += 1;
	else
		s->spawn_n += 1;
}

void
warmpool_root(struct warmpool_state *s, const struct warmpool_params *p,
    double now)
{
	s->roots = decayed(s->roots, now - s->roots_t, p->root_tau) +
	    1.0 / p->root_tau;
	if (now > s->roots_t)
		s->roots_t = now;
}

void
warmpool_load(struct warmpool_state *s, const struct warmpool_params *p,
    double now, const struct warmpool_load *l)
{
	learn_to(s, p, now);
	if (now > s->learn_t)
		s->learn_t = now;
	s->load = *l;
	if (s->load.spawners > s->load.running)
		s->load.spawners = s->load.running;
}

/* Children per running task-second; the first 10 s are a floor. */
static double
per_second(double n, double secs)
{
	return (n / (secs > 10 ? secs : 10));
}

long
warmpool_target_predictive(struct warmpool_state *s,
    const struct warmpool_params *p, double now, const struct warmpool_load *l)
{
	double	 h, rate, roots, expect, need, floor_;
	long	 t, over;

	warmpool_load(s, p, now, l);
	h = s->cold_samples > 0 ? s->cold + 2 * s->cold_dev : p->cold_default;
	rate = warmpool_rate(s, p, now);
	roots = decayed(s->roots, now - s->roots_t, p->root_tau);
	s->peak = decayed(s->peak, now - s->peak_t, p->learn_tau);
	if (now > s->peak_t)
		s->peak_t = now;
	if (rate > s->peak)
		s->peak = rate;
	floor_ = (1 + p->safety) * h * s->peak;
	expect = h * (per_second(s->spawn_s, s->secs_s) *
	    (double)s->load.spawners + per_second(s->spawn_n, s->secs_n) *
	    (double)(s->load.running - s->load.spawners));
	if (!s->arrived || (l->waiting <= 0 && (1 + p->safety) * expect < 0.5 &&
	    now - s->last_arrival >= p->cooldown)) {
		s->target = 0;
		return (0);
	}
	need = ceil((1 + p->safety) * (h * roots + expect) - 1e-9);
	if (need < ceil(floor_ - 1e-9))
		need = ceil(floor_ - 1e-9);
	over = l->waiting > 1 ? l->waiting - 1 : 0;
	if (!isfinite(need) || need + (double)over > (double)p->spare_max)
		t = p->spare_max;
	else
		t = (long)need + over;
	if (t < p->spare_min)
		t = p->spare_min;
	if (t < 1 && p->spare_max >= 1)
		t = 1;
	if (l->headroom >= 0 && t > l->headroom)
		t = l->headroom;
	s->target = t;
	return (t);
}

long
warmpool_target_policy(struct warmpool_state *s,
    const struct warmpool_params *p, double now, const struct warmpool_load *l)
{
	if (p->policy == WARMPOOL_RATE) {
		warmpool_load(s, p, now, l);	/* keeps learning */
		return (warmpool_target(s, p, now, l->waiting));
	}
	return (warmpool_target_predictive(s, p, now, l));
}

const char *
warmpool_policy_name(enum warmpool_policy policy)
{
	return (policy == WARMPOOL_RATE ? "rate" : "predictive");
}
