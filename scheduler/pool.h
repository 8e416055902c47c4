/*
 * pool.h: the pools of scale mode (scheduler/pool.c): each reads its
 * source, runs autoscale_decide() and writes its target's /scale.  The
 * daemon (daemon.c) creates them from its config and drives leadership;
 * its HTTP endpoints (daemon_http.c) read them.
 *
 * Besides the scale pools it runs the dispatch pools the dispatcher does
 * not (config_pool_consumes()): in shadow mode or paused, such a pool
 * reads its backlog and reports the claims it would make, consuming
 * nothing.
 *
 * Ownership: the daemon owns its pools (d->pools); a pool's cfg points
 * into d->config and is swapped by pool_apply_config() with it.
 */
#ifndef AGENTSCALER_POOL_H
#define AGENTSCALER_POOL_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "agentscaler/rt/hash.h"
#include "agentscaler/rt/prom.h"
#include "autoscale.h"
#include "config.h"
#include "crd.h"
#include "decisions.h"

struct daemon;
struct k8s_req;
struct owner_sub;
struct pool_ns;
struct scaler;
struct scaler_result;
struct target_sub;

/*
 * Why a read of the source failed, a bounded label (the source error
 * message itself goes to the log, the Event and /status).
 */
enum pool_src_err {
	POOL_SRC_ERR_AUTH,		/* -AS_EAUTH, -AS_EFORBIDDEN */
	POOL_SRC_ERR_CONNECTION,	/* -AS_ECONN, -AS_EIO */
	POOL_SRC_ERR_NOT_FOUND,		/* -AS_ENOTFOUND */
	POOL_SRC_ERR_OTHER,
	POOL_SRC_ERR_PROTOCOL,		/* -AS_EPROTO, -AS_EINVAL */
	POOL_SRC_ERR_TIMEOUT,		/* -AS_ETIMEDOUT */
	POOL_SRC_ERR_COUNT
};
extern const char *const pool_src_err_names[POOL_SRC_ERR_COUNT];

struct pool {
	struct daemon		*d;
	const struct pool_config *cfg;	/* points into d->config */
	char			 id[320];	/* ns/name, for logs */
	struct as_hash_entry	 index_link;	/* d->pool_index */
	struct pool_ns		*ns;		/* its namespace */
	size_t			 ns_idx;	/* its place there */
	long			 counted;	/* in ns->used */
	long			 spec_counted;	/* in ns->replicas */
	uint64_t		 status_hash;	/* pool_status_note() */
	int			 kept;		/* in pool_apply_config */
	int			 deferred;	/* in d->pool_defer */
	struct pool		*defer_prev, *defer_next;
	struct scaler		*scaler;
	ev_timer		 poll_timer;
	int			 polling;	/* a poll is in flight */
	int			 wake_pending;	/* woken while polling */

	/* Latest reading of the source. */
	int			 source_ok;
	int			 source_read;	/* at least one good read */
	double			 ready;
	double			 in_flight;
	char			 source_err[192];

	/*
	 * The target, as Kubernetes last told us: its watch (targets.h), or
	 * the answer to our last PATCH, whichever is newer (spec_rv).
	 */
	struct target_sub	*target;
	struct k8s_req		*req;
	int			 dirty;
	int			 spec_known;
	long			 spec_replicas;
	long			 status_replicas;
	double			 spec_time;	/* monotonic */
	char			 spec_rv[32];	/* resourceVersion, or "" */
	long			 patch_from;	/* spec_replicas at our PATCH */
	char			 k8s_err[256];

	struct autoscale_state	 as;
	struct autoscale_decision last;
	struct decisions	 recent;	/* for /status and /ui */
	/*
	 * Shadow mode (cfg->shadow): what the pool would do and does not,
	 * the replicas it would write (scale) or the claims it would make
	 * for the backlog (dispatch); -1 before the first decision.
	 */
	long			 would;
	/*
	 * Who else scales the target (owners.h), or an older AgentPool on
	 * it (rival, set by pool_apply_config()): the pool yields and writes
	 * nothing while conflict is set ("" none).
	 */
	struct owner_sub	*owner;
	char			 rival[300];
	char			 conflict[640];
	double			 last_scale_wall;

	uint64_t		 scale_up;
	uint64_t		 scale_down;
	uint64_t		 source_errors[POOL_SRC_ERR_COUNT];
	uint64_t		 kube_errors;
	uint64_t		 polls;
	uint64_t		 wakeups;

	/*
	 * Latencies: of each read of the source (poll_at: its start), and
	 * from the source event behind a scale-up (the push wake-up, else
	 * the start of the read that showed the backlog: seen_at, copied
	 * to patch_seen at the PATCH) to the PATCH's answer.
	 */
	double			 wake_at;	/* mono; 0: no wake-up pending */
	double			 poll_at, poll_from, seen_at, patch_seen;
	struct prom_hist	 read_took;
	struct prom_hist	 reaction;
};

/*
 * Builds the scale pools of nc (POOL_MODE_SCALE) into d->pools: a pool
 * whose identity and source are unchanged keeps its connection, its
 * readings and its autoscale state (its target read again when the target
 * changed); the others are made anew, and those nc no longer has are
 * freed.  d->config still holds the old config; nc stays the caller's.
 */
void	 pool_apply_config(struct daemon *, const struct config *nc);
/* Frees every pool of d (at exit). */
void	 pool_free_all(struct daemon *);

/*
 * Leadership changed hands: each pool's request in flight is cancelled
 * and its target taken again from its watch before the next decision (the
 * other process may have written it meanwhile; the watch has seen that).
 */
void	 pool_forget_targets(struct daemon *);
/* Evaluates every pool now (a new leader's first decisions). */
void	 pool_evaluate_all(struct daemon *);

/* 1 while the source's push wake-ups are live; read live, never cached. */
int	 pool_pushing(const struct pool *);

/*
 * crd_options.pool_status and .quota_status (arg: the daemon): the status
 * of the AgentPool ns/name and of the AgentQuota of ns, from the scale
 * pools, else from the dispatcher.  Return 0, or -1 when unknown here.
 */
int	 pool_crd_status(void *arg, const char *ns, const char *name,
	    struct crd_pool_status *);
int	 pool_crd_quota_status(void *arg, const char *ns,
	    struct crd_quota_status *);

/* What a scale pool does with its decision (pool_write_choice()). */
enum pool_write {
	POOL_WRITE,		/* patch the target to *want */
	POOL_HOLD_SHADOW,	/* shadow mode: logged, never written */
	POOL_HOLD_CONFLICT,	/* an HPA, ScaledObject or older pool owns it */
	POOL_HOLD_UNKNOWN,	/* its owners are not listed yet */
	POOL_HOLD_PAUSED,	/* paused without paused-replicas */
	POOL_HOLD_SAME,		/* the target has *want already */
	POOL_HOLD_STANDBY,	/* not the leader: decides, never writes */
};

struct pool_write_input {
	int		 shadow;
	int		 conflict;	/* the pool yields to an owner */
	int		 owners_known;
	int		 paused;
	long		 paused_replicas;	/* -1: none */
	long		 desired;	/* autoscale_decide() */
	long		 current;	/* the target's spec.replicas */
	int		 may_write;	/* daemon_may_write() */
	/*
	 * The most replicas the namespace's AgentQuota lets this pool hold
	 * (what it holds + the head-room), or -1 without a quota: the
	 * paused-replicas annotation never raises the target past it.
	 */
	long		 quota_limit;
};

#ifdef AS_TESTING
/*
 * Pure: whether a scale pool writes its target, and the replicas into
 * *want (the decision, or paused-replicas when paused, never above
 * max(quota_limit, current) under a quota); the first reason
 * to hold, in this order: shadow, conflict, owners unknown, paused,
 * already there, standby.
 */
enum pool_write pool_write_choice(const struct pool_write_input *,
	    long *want);
struct k8s_scale;
/* For tests/check_pool_targets.c: the answer to a PATCH of /scale. */
void	 pool_patch_done(int, const struct k8s_scale *, const char *,
	    void *);
/* For tests/check_pool.c: what the timers and the quota cap do. */
void	 pool_poll_done(struct scaler *, const struct scaler_result *,
	    void *);
long	 pool_quota_cap(struct pool *, double backlog);
long	 pool_need(const struct pool *, double backlog);
void	 pool_defer_flush(struct daemon *);
#endif

#endif
