/*
 * simulate.h: `agentscaler simulate`, a discrete-event simulator in
 * virtual time.  It replays an arrival trace (sim_trace.h) against a model
 * of the cluster, once per policy, and drives the same pure decision code
 * the daemon runs: warmpool.c for the warm pool's size, autoscale.c for
 * scale mode, quota.c for AgentQuota admission; sim_keda.h models KEDA and
 * the HPA.  Nothing reads a clock: a run is a function of the trace, the
 * cluster model, the pool and quota config and the seed.
 *
 * Two ways a task gets an agent:
 *  - claim: the dispatcher (dispatch mode) makes one SandboxClaim per task,
 *    through the API write rate limit; the claim adopts a Ready warm-pool
 *    member (a warm hit, ready after the warm bind), else the member
 *    closest to Ready (agent-sandbox's claim controller prefers Ready, then
 *    falls back to an unready member: upstream
 *    extensions/controllers/sandboxclaim_controller.go), else a new
 *    sandbox (a cold start).  The warm pool's controller refills toward
 *    spec.replicas in slow-start batches 1, 2, 4, ... one write round-trip
 *    each, after the replenish delay (upstream
 *    extensions/controllers/sandboxwarmpool_controller.go, slowStartBatch
 *    with initial batch 1, ReplenishDelay default 0), and deletes surplus
 *    unready members first, then the newest.  Policies: predictive and
 *    rate (warmpool.c), keda-pool (KEDA on the SandboxWarmPool's /scale,
 *    metric: tasks waiting for a sandbox), static-N.
 *  - deployment: long-lived agent pods pull tasks from the queue, one at a
 *    time; new pods start cold.  Policies: keda (metric: queued plus
 *    running tasks, as a RabbitMQ queue counts unacked messages: the
 *    generous reading; a Redis list does not see in-flight tasks), scale
 *    (agentscaler scale mode, autoscale.c, backlog counting in-flight).
 *    Pods are removed unready first, then idle ones; a busy pod is never
 *    killed (also generous to KEDA: a ReplicaSet may pick a busy pod).
 *
 * Sandbox-seconds: every sandbox from its creation to the end of its
 * termination grace; busy while a task runs on it, idle otherwise.  The
 * wait of a task: arrival to the moment its agent has it (sandbox Ready
 * and bound).  Deferred tasks wait; rejected ones (and the subtrees they
 * would have spawned) are counted apart.  A run ends when the last task
 * ends, plus the grace.
 *
 * Ownership: sim_run() fills a result the caller frees with
 * sim_result_free(); the trace and config are borrowed.
 */
#ifndef AGENTSCALER_SIMULATE_H
#define AGENTSCALER_SIMULATE_H

#include <stddef.h>
#include <stdint.h>

#include "autoscale.h"
#include "sim_trace.h"
#include "warmpool.h"

struct pool_config;
struct quota_config;

/* The cluster model; sim_cluster_defaults() says where each comes from. */
struct sim_cluster {
	double	 cold_median;	/* s, sandbox create to Ready */
	double	 cold_sigma;	/* of the log */
	double	 warm_bind;	/* s, claim to bound and Ready, warm */
	double	 grace;		/* s, termination */
	double	 write_rtt;	/* s, one API write round-trip */
	double	 qps;		/* the daemon's API writes (claims) */
	double	 burst;
	double	 replenish_delay;	/* s, warm pool refill hold */
	double	 tick;		/* s, the daemon's sizing period */
	uint64_t seed;		/* cold-start draws */
};

void	 sim_cluster_defaults(struct sim_cluster *);

enum sim_policy_kind {
	SIM_P_WARMPOOL,		/* predictive or rate (warmpool.c) */
	SIM_P_KEDA_POOL,
	SIM_P_STATIC,
	SIM_P_KEDA,		/* deployment */
	SIM_P_SCALE		/* deployment, autoscale.c */
};

struct sim_policy {
	char			 name[32];
	enum sim_policy_kind	 kind;
	enum warmpool_policy	 wp;	/* SIM_P_WARMPOOL */
	long			 n;	/* SIM_P_STATIC */
};

/* Parses "predictive", "rate", "keda", "keda-pool", "scale", "static-N". */
int	 sim_policy_parse(const char *, struct sim_policy *);

/* One sample a second for the picture. */
struct sim_point {
	float	 t;
	float	 live;		/* sandboxes */
	float	 waiting;	/* tasks without an agent */
	float	 wait;		/* worst wait of tasks started this second */
};

struct sim_result {
	struct sim_policy policy;
	size_t	 tasks;		/* arrived */
	size_t	 started;
	size_t	 rejected;
	size_t	 dropped;	/* never arrived: an ancestor was rejected */
	size_t	 warm;		/* started on a Ready sandbox */
	size_t	 adopted;	/* claims that took a warm-pool member,
				   Ready or not: the daemon's launch="warm" */
	double	 p50, p95, p99, mean, max;
	double	 busy, idle;	/* sandbox-seconds */
	long	 peak;
	double	 end;		/* s */
	uint64_t admitted, deferred, qrejected;	/* quota verdicts */
	struct sim_point *pts;
	size_t	 npts;
};

/*
 * Runs the trace under one policy.  pool (may be NULL: defaults) gives
 * spare bounds, cooldown and scaling parameters; quota (may be NULL) the
 * AgentQuota of the claim-based policies.
 */
void	 sim_run(const struct sim_trace *, const struct sim_cluster *,
	    const struct sim_policy *, const struct pool_config *pool,
	    const struct quota_config *quota, struct sim_result *out);
void	 sim_result_free(struct sim_result *);

/* The nearest-rank q-quantile (0..1) of v (n values, sorted in place). */
double	 sim_quantile(double *v, size_t n, double q);

/* agentscaler simulate ...: the subcommand (simulate_cli.c). */
int	 simulate_main(int argc, char **argv);

#endif
