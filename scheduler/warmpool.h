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
 *
 * Two policies (spec.sandbox.spare.policy):
 *
 *   rate        the formula above;
 *   predictive  expected arrivals over the time a new spare takes to be
 *               ready, from what the dispatcher knows that a queue-length
 *               scaler does not:
 *
 *     spare = ceil((1 + safety) x D), D = H x (roots + l_s x S + l_n x N),
 *
 *     D being the arrivals expected while a new spare boots.  The pool's
 *     size counts its booting members too, and in a burst about D of them
 *     are booting (the replacements of the last H seconds' adoptions), so
 *     the Ready part, what the next arrivals find, is safety x D.  Where
 *
 *       H      a high quantile of the measured cold start: the mean plus
 *              two mean absolute deviations (both EWMAs, weight
 *              cold_alpha), cold_default until the first sample;
 *       roots  the rate of arrivals without a parent, an EWMA as above
 *              with the shorter root_tau: a burst of roots must raise
 *              the pool within a cold start, and the 10 s average lags a
 *              rising rate by about 10 s x its slope (children come from
 *              running tasks, counted by l_s and l_n);
 *       S, N   running tasks that have spawned at least once, and those
 *              that have not (warmpool_load);
 *       l_s    children per second of running task-time of tasks that had
 *              spawned before, l_n the same for first children: counts
 *              and task-seconds decayed with learn_tau, so the tree shape
 *              of the last minutes is what counts (a parent that has
 *              spawned will likely spawn again: l_s > l_n);
 *     plus waiting - 1 when more than one task waits for its sandbox (a
 *     burst the spares did not cover goes on); never below the burst
 *     floor ceil((1 + safety) x H x P), P the highest arrival rate, decayed
 *     with learn_tau (the head of the next burst finds spares: bursts
 *     repeat, and a new spare is H away); clamped to [spare.min,
 *     spare.max] and to the quota head-room; 0 once nothing arrived for
 *     cooldown seconds, nothing waits and the running tasks' spawns ask
 *     less than half a sandbox (the floor lives within the cooldown:
 *     with the defaults, a peak of one task a second keeps 5 spares at a
 *     2 s cold start, 3 a minute later; a cooldown as long as the gaps
 *     between bursts carries it to the next one).
 *
 * The state of both is kept by the same calls, so the policy can change
 * at a reload.
 */
#ifndef AGENTSCALER_WARMPOOL_H
#define AGENTSCALER_WARMPOOL_H

enum warmpool_policy {
	WARMPOOL_PREDICTIVE,
	WARMPOOL_RATE
};

struct warmpool_params {
	long	 spare_min;
	long	 spare_max;
	double	 cooldown;	/* s without arrivals before going to 0 */
	double	 safety;	/* multiplier, >= 1; default 1.5 */
	double	 rate_tau;	/* s; default 10 */
	double	 cold_alpha;	/* (0, 1]; default 0.3 */
	double	 cold_default;	/* s; default 2 */
	double	 learn_tau;	/* s; default 300 */
	double	 root_tau;	/* s; default 3 */
	enum warmpool_policy policy;
};

/* What the dispatcher runs now (predictive policy). */
struct warmpool_load {
	long	 waiting;	/* arrived, no sandbox ready yet */
	long	 running;	/* have their sandbox */
	long	 spawners;	/* of the running, those that spawned */
	long	 headroom;	/* sandboxes the quota still allows; -1: any */
};

struct warmpool_state {
	double	 rate;		/* arrivals/s, as of rate_t */
	double	 rate_t;
	double	 cold;		/* s, EWMA of cold claim-to-ready */
	int	 cold_samples;
	double	 last_arrival;	/* monotonic */
	int	 arrived;	/* at least one arrival */
	long	 target;	/* last warmpool_target() */
	/* predictive */
	double	 roots;		/* EWMA of roots (root_tau), as rate */
	double	 roots_t;	/* roots as of */
	double	 cold_dev;	/* EWMA of |sample - cold| */
	double	 learn_t;	/* the decayed sums below are as of this */
	double	 spawn_s, spawn_n;	/* children of spawners, first ones */
	double	 secs_s, secs_n;	/* running task-seconds by class */
	struct warmpool_load load;	/* as of learn_t */
	double	 peak;		/* arrival rate at its peak, decayed */
	double	 peak_t;
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

/*
 * A child arrived (besides warmpool_arrival()); parent_spawned: its parent
 * had spawned before.
 */
void	 warmpool_spawn(struct warmpool_state *, const struct warmpool_params *,
	    double now, int parent_spawned);
/* A root arrived (besides warmpool_arrival()). */
void	 warmpool_root(struct warmpool_state *, const struct warmpool_params *,
	    double now);
/* The running tasks as of now (counts the task-seconds since the last). */
void	 warmpool_load(struct warmpool_state *, const struct warmpool_params *,
	    double now, const struct warmpool_load *);
/* The predictive policy's spare target at now (calls warmpool_load). */
long	 warmpool_target_predictive(struct warmpool_state *,
	    const struct warmpool_params *, double now,
	    const struct warmpool_load *);
/* The target by p->policy; waiting is load->waiting for rate. */
long	 warmpool_target_policy(struct warmpool_state *,
	    const struct warmpool_params *, double now,
	    const struct warmpool_load *);
/* "predictive" or "rate". */
const char *warmpool_policy_name(enum warmpool_policy);

#endif
