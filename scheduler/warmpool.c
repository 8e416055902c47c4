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
	if (s->cold_samples == 0)
		s->cold = seconds;
	else
		s->cold += p->cold_alpha * (seconds - s->cold);
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
