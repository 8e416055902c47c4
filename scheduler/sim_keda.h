/*
 * sim_keda.h: KEDA + the HorizontalPodAutoscaler as the simulator's
 * "keda" policy (simulate.h) models them: two pure step functions, one
 * for KEDA's polling loop and one for the HPA's sync, over a plain state.
 *
 * Defaults are the documented ones:
 *  - KEDA ScaledObject (keda.sh/docs/2.16/reference/scaledobject-spec):
 *    pollingInterval 30 s, cooldownPeriod 300 s, activationThreshold 0
 *    (active while the metric is above it), minReplicaCount 0.  KEDA
 *    itself moves 0 -> 1 on activation and N -> 0 after cooldownPeriod
 *    without activity; between 1 and max the HPA decides.
 *  - HPA (kubernetes.io/docs/tasks/run-application/
 *    horizontal-pod-autoscale, "Default Behavior"): sync every 15 s;
 *    desired = ceil(metric / target) for an AverageValue target, unless
 *    the ratio is within the 0.1 tolerance; scale-up at most
 *    max(+100 %, +4 pods) per 15 s period; scale-down to the highest
 *    recommendation of the last 300 s (stabilization window).
 *
 * The up limit is taken per sync against the current count: with a 15 s
 * sync and a 15 s period the HPA's own period bookkeeping gives the same.
 */
#ifndef AGENTSCALER_SIM_KEDA_H
#define AGENTSCALER_SIM_KEDA_H

#include <stddef.h>

#define KEDA_RECS	128

struct keda_params {
	double	 polling;	/* s */
	double	 activation;	/* active while metric > activation */
	double	 cooldown;	/* s */
	double	 hpa_sync;	/* s */
	double	 target;	/* metric per replica (AverageValue) */
	double	 tolerance;
	double	 up_percent;
	long	 up_pods;
	double	 down_window;	/* s */
	long	 max_replicas;
};

struct keda_state {
	long	 replicas;
	int	 active_seen;
	double	 last_active;
	size_t	 nrec;
	struct keda_rec {
		double	 t;
		long	 r;
	}	 rec[KEDA_RECS];	/* HPA recommendations, oldest first */
};

/* The documented defaults above (max_replicas 100). */
void	 keda_params_defaults(struct keda_params *);
/*
 * KEDA's poll at now with the scaler's metric: activation 0 -> 1, and
 * N -> 0 once cooldown has passed since the metric was last above the
 * activation threshold.  Returns the replicas now.
 */
long	 keda_poll(struct keda_state *, const struct keda_params *, double now,
	    double metric);
/*
 * The HPA's sync at now (only while replicas >= 1; at 0 it holds).
 * Returns the replicas now.
 */
long	 keda_hpa_sync(struct keda_state *, const struct keda_params *,
	    double now, double metric);

#endif
