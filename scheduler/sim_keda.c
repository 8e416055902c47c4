/*
 * sim_keda.c: the KEDA and HPA step rules of sim_keda.h.  Pure.
 */
#include <math.h>
#include <string.h>

#include "sim_keda.h"

void
keda_params_defaults(struct keda_params *p)
{
	p->polling = 30;
	p->activation = 0;
	p->cooldown = 300;
	p->hpa_sync = 15;
	p->target = 1;
	p->tolerance = 0.1;
	p->up_percent = 100;
	p->up_pods = 4;
	p->down_window = 300;
	p->max_replicas = 100;
}

long
keda_poll(struct keda_state *s, const struct keda_params *p, double now,
    double metric)
{
	if (metric > p->activation) {
		s->active_seen = 1;
		s->last_active = now;
		if (s->replicas == 0)
			s->replicas = p->max_replicas > 0 ? 1 : 0;
	} else if (s->replicas > 0 && (!s->active_seen ||
	    now - s->last_active >= p->cooldown)) {
		s->replicas = 0;
		s->nrec = 0;	/* the HPA starts over after zero */
	}
	return (s->replicas);
}

long
keda_hpa_sync(struct keda_state *s, const struct keda_params *p, double now,
    double metric)
{
	double	 want;
	long	 rec, limit, best;
	size_t	 i, j;

	if (s->replicas <= 0)
		return (s->replicas);
	want = metric / p->target;
	if (fabs(want / (double)s->replicas - 1.0) <= p->tolerance)
		rec = s->replicas;
	else
		rec = (long)ceil(want - 1e-9);
	if (rec < 1)
		rec = 1;
	if (rec > p->max_replicas)
		rec = p->max_replicas;
	/* The down window: drop what is older, then append. */
	for (i = 0; i < s->nrec && s->rec[i].t < now - p->down_window; i++)
		;
	for (j = 0; i < s->nrec; i++, j++)
		s->rec[j] = s->rec[i];
	s->nrec = j;
	if (s->nrec == KEDA_RECS) {
		memmove(s->rec, s->rec + 1, (KEDA_RECS - 1) * sizeof *s->rec);
		s->nrec--;
	}
	s->rec[s->nrec].t = now;
	s->rec[s->nrec++].r = rec;
	if (rec > s->replicas) {
		limit = (long)ceil((double)s->replicas *
		    (1 + p->up_percent / 100));
		if (s->replicas + p->up_pods > limit)
			limit = s->replicas + p->up_pods;
		s->replicas = rec < limit ? rec : limit;
	} else if (rec < s->replicas) {
		best = rec;
		for (i = 0; i < s->nrec; i++)
			if (s->rec[i].r > best)
				best = s->rec[i].r;
		if (best < s->replicas)
			s->replicas = best;
	}
	return (s->replicas);
}
