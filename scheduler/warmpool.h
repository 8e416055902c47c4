/*
 * warmpool.h: sizing a SandboxWarmPool for dispatch mode (DESIGN.md
 * section 7 step 8).  Pure: the state is a plain value, time is passed in.
 *
 *   spare = ceil(arrival_rate x cold_start x safety), clamped to
 *           [spare.min, spare.max] while the pool is active;
 *   0 once nothing has arrived for cooldown seconds and nothing waits.
 *
 * The arrival rate is an exponentially weighted moving average in
 * continuous time (time constant rate_tau): each arrival adds 1/tau, and
 * the sum decays by exp(-dt/tau), so a steady rate r reads r.  The
 * cold-start time is an EWMA (weight cold_alpha) of measured claim-to-ready
 * latencies of cold claims, starting from cold_default until the first
 * measurement.  The first arrival after idle makes the target at least
 * max(spare.min, 1) at once, so the pool starts refilling in the same tick
 * as the cold start that serves that arrival.
 */
#ifndef AGENTSCALER_WARMPOOL_H
#define AGENTSCALER_WARMPOOL_H

struct warmpool_params {
	long	 spare_min;
	long	 spare_max;
	double	 cooldown;	/* s without arrivals before going to 0 */
	double	 safety;	/* multiplier, >= 1; default 1.5 */
	double	 rate_tau;	/* s; default 10 */
	double	 cold_alpha;	/* (0, 1]; default 0.3 */
	double	 cold_default;	/* s; default 2 */
};

struct warmpool_state {
	double	 rate;		/* arrivals/s, as of rate_t */
	double	 rate_t;
	double	 cold;		/* s, EWMA of cold claim-to-ready */
	int	 cold_samples;
	double	 last_arrival;	/* monotonic */
	int	 arrived;	/* at least one arrival */
	long	 target;	/* last warmpool_target() */
};

/* Fills unset (zero) fields with the defaults above. */
void	 warmpool_params_defaults(struct warmpool_params *);
/* Records n arrivals at now. */
void	 warmpool_arrival(struct warmpool_state *, const struct warmpool_params *,
	    double now, unsigned n);
/* Records one measured cold claim-to-ready latency, in seconds. */
void	 warmpool_cold_sample(struct warmpool_state *,
	    const struct warmpool_params *, double seconds);
/* The arrival rate decayed to now. */
double	 warmpool_rate(const struct warmpool_state *,
	    const struct warmpool_params *, double now);
/*
 * The spare target at now; waiting is the number of tasks still waiting
 * for a sandbox (they keep the pool from going to zero).
 */
long	 warmpool_target(struct warmpool_state *,
	    const struct warmpool_params *, double now, long waiting);

#endif
