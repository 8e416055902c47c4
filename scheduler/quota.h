/*
 * quota.h: AgentQuota admission (DESIGN.md sections 5 and 6), the pure core.
 *
 * One struct quota_ns per namespace holds what is live there: sandboxes,
 * resource sums, live trees (one per root task) with their live task count,
 * spawn token bucket and sandbox-seconds budget, and live children per task.
 * The dispatcher (scheduler/dispatch_ns.c) derives lineage (root, depth,
 * parent) from its own records, asks quota_check() before making a claim,
 * then reports the outcome with quota_admit() / quota_release().  Time is
 * always passed in (monotonic seconds); nothing here does I/O or reads a
 * clock, so every decision replays in a table-driven test.
 *
 * Limits (a quota_config field < 0, or 0 for spawn_per_second and
 * sandbox_seconds_per_root, means unlimited):
 *
 *   structural, always rejected whatever onExceeded says:
 *     cascade.maxDepth          depth > max_depth
 *     cascade.unknownParent     (decided by the caller, named here only)
 *     budget.sandboxSeconds     the tree's charged sandbox-seconds reached
 *                               sandbox_seconds_per_root
 *     quota.resourcesNeverFit   one task asks more than the whole quota
 *   live, deferred or rejected by onExceeded (they can clear later):
 *     quota.maxSandboxes        live sandboxes (claims + replicas) at max
 *     quota.reserved            a new root would eat into the share
 *                               reserve_for_descendants keeps for
 *                               descendants: roots may use at most
 *                               floor(max_sandboxes x (1 - reserve))
 *     quota.resources           the sum of requests would exceed a limit
 *                               (cpu, memory, extended resources by name)
 *     cascade.maxRoots          live trees at max (new roots only)
 *     cascade.maxChildrenPerTask  the parent's live children at max
 *     cascade.maxDescendantsPerRoot  live tasks of the tree at max
 *                               (the root counts)
 *     cascade.spawnRate         the tree's token bucket (per_second, burst)
 *                               is empty (descendants only; a root starts a
 *                               full bucket)
 *
 * Checks run in the order above; the first that fails decides.  Charging:
 * a tree is charged, for every second, the number of its live sandboxes
 * (quota_charge brings the charge up to now; check and admit call it).
 *
 * Ownership: a quota_ns copies what it needs from the config (the config
 * may go away after quota_ns_new()/quota_ns_set_config()); strings passed
 * in are copied when kept.  A NULL config means no AgentQuota: everything
 * is admitted, but usage and trees are still tracked for /status.
 */
#ifndef AGENTSCALER_QUOTA_H
#define AGENTSCALER_QUOTA_H

#include <stddef.h>
#include <stdint.h>

struct quota_config;
struct quota_ns;

enum quota_verdict {
	QUOTA_ADMIT,
	QUOTA_DEFER,
	QUOTA_REJECT
};

/*
 * Why admission did not admit.  The names on the wire (Events, /explain,
 * dead-letter records and their metrics labels) come from one table in
 * quota.c through quota_reason_name(); code compares the enum, never the
 * name.  The order is the order of the checks above.
 */
enum quota_reason {
	QUOTA_R_NONE,			/* "": admitted */
	QUOTA_R_MAX_DEPTH,		/* cascade.maxDepth */
	QUOTA_R_UNKNOWN_PARENT,		/* cascade.unknownParent */
	QUOTA_R_BUDGET,			/* budget.sandboxSeconds */
	QUOTA_R_NEVER_FIT,		/* quota.resourcesNeverFit */
	QUOTA_R_MAX_SANDBOXES,		/* quota.maxSandboxes */
	QUOTA_R_RESERVED,		/* quota.reserved */
	QUOTA_R_RESOURCES,		/* quota.resources */
	QUOTA_R_MAX_ROOTS,		/* cascade.maxRoots */
	QUOTA_R_MAX_CHILDREN,		/* cascade.maxChildrenPerTask */
	QUOTA_R_MAX_DESCENDANTS,	/* cascade.maxDescendantsPerRoot */
	QUOTA_R_SPAWN_RATE,		/* cascade.spawnRate */
	/*
	 * sandbox.templateUnknown: not a quota limit but the dispatcher's
	 * wait for its charge floor (dispatch_ns.c), which shares the
	 * deferred queues and /explain with the limits.
	 */
	QUOTA_R_TEMPLATE_UNKNOWN,
	QUOTA_R_COUNT
};

struct quota_decision {
	enum quota_verdict verdict;
	enum quota_reason reason;	/* QUOTA_R_NONE when admitted */
	char		 detail[240];	/* numbers: "20 of 20 sandboxes live" */
};

struct quota_res {
	const char	*name;		/* cpu, memory, nvidia.com/gpu */
	double		 value;		/* base units (cores, bytes, devices) */
};

/* A task as admission sees it; strings borrowed for the call. */
struct quota_task {
	const char		*id;
	const char		*parent;	/* NULL: a new root */
	const char		*root;		/* = id for a root */
	int			 depth;		/* 0 for a root */
	const struct quota_res	*res;		/* requests, may be NULL */
	size_t			 nres;
};

struct quota_usage {
	long		 sandboxes;	/* live tasks + replicas */
	long		 replicas;	/* of them, set by quota_set_replicas */
	long		 roots;		/* live trees */
	long		 tasks;		/* live tasks */
	uint64_t	 admitted, deferred, rejected;	/* decisions counted */
};

struct quota_tree_info {
	const char	*root;
	long		 live;		/* live tasks in the tree */
	long		 total;		/* tasks ever admitted in it */
	int		 max_depth;	/* deepest live task */
	double		 seconds;	/* sandbox-seconds charged */
	double		 tokens;	/* spawn bucket */
};

struct quota_ns	*quota_ns_new(const struct quota_config *);
/* Takes a new config (or NULL); usage and trees are kept. */
void		 quota_ns_set_config(struct quota_ns *,
		    const struct quota_config *);
void		 quota_ns_free(struct quota_ns *);

/*
 * Decides without changing anything but the tree charge.  Reasons and
 * verdicts as above; deferral only when onExceeded is defer.
 */
void		 quota_check(struct quota_ns *, const struct quota_task *,
		    double now, struct quota_decision *);
/* The wire name of a reason ("quota.maxSandboxes"); "" for none. */
const char	*quota_reason_name(enum quota_reason);
/*
 * The Kubernetes Event reason a deferral or rejection for r is reported
 * under: "CascadeRejected" for the cascade.* limits, "QuotaExceeded" for
 * the others; NULL when r is reported by no Event (none, and
 * sandbox.templateUnknown, the cluster's wait rather than a limit).
 */
const char	*quota_reason_event(enum quota_reason r);
/*
 * 1 when a task deferred for r waits for capacity of the whole namespace
 * (the quota.* reasons): tasks queued behind it would not fit either.
 */
int		 quota_reason_namespace_wide(enum quota_reason r);
/*
 * Warm spares give way to tasks, the admission half.  A task refused
 * only because live sandboxes are at maxSandboxes (onExceeded: reject)
 * while the namespace holds spares idle warm spares is deferred instead:
 * the spares shrink (quota_spare_target) and it is checked again, and
 * rejected only if no slot is left once they are gone.  Changes d (the
 * verdict, and a note appended to the detail) and returns 1 when the rule
 * applies, else leaves d alone and returns 0.
 */
int		 quota_spares_give_way(struct quota_decision *d, long spares);
/*
 * Warm spares give way to tasks, the sizing half.  want is the spare
 * count the warm pool's policy asks for (warmpool_target), cur the spares
 * the pool runs now, headroom quota_headroom() counted with them (-1:
 * unlimited) and waiting the deferred tasks that wait for a slot
 * (QUOTA_R_MAX_SANDBOXES), counted up to cur; waiting is read only when
 * headroom is 0 and cur > 0, so the caller may pass 0 otherwise.  Returns
 * the spare target: want, no higher than what headroom allows, and when
 * the namespace is full, cur less one spare per waiting task.
 */
long		 quota_spare_target(long want, long cur, long headroom,
		    long waiting);
/* Records the decision in the counters (check + count, for metrics). */
void		 quota_count(struct quota_ns *, enum quota_verdict,
		    enum quota_reason);
/* Decisions counted with verdict v for reason r (QUOTA_R_NONE: admit). */
uint64_t	 quota_decisions(const struct quota_ns *, enum quota_verdict v,
		    enum quota_reason r);
/*
 * The task is live: takes one sandbox and its resources, joins (or
 * starts) its tree, counts as a live child of its parent, takes a spawn
 * token when it is a descendant.  Admitting the same id twice is a no-op.
 */
void		 quota_admit(struct quota_ns *, const struct quota_task *,
		    double now);
/*
 * The task ended: gives its sandbox and resources back, leaves its tree
 * (the tree goes with its last live task) and its parent's children.
 * Unknown ids are ignored.
 */
void		 quota_release(struct quota_ns *, const char *id, double now);
/*
 * Budget persistence across restarts (README, AgentQuota admission): 1
 * when the live tree of root has a sandbox-seconds budget and was last
 * saved interval or more ago (or was made that long ago); *seconds is
 * then its charge up to now, and the tree counts as saved at now (a
 * failed save is tried again an interval later).
 */
int		 quota_tree_save_due(struct quota_ns *, const char *root,
		    double now, double interval, double *seconds);
/*
 * After a restart: the live tree of root has used at least seconds (its
 * charge is raised to it, never lowered).  No live tree: nothing.
 */
void		 quota_tree_restore(struct quota_ns *, const char *root,
		    double seconds, double now);
/* 1 while id is a live task. */
int		 quota_live(const struct quota_ns *, const char *id);
/*
 * Replicas the namespace runs outside dispatch (scale-mode pools, warm
 * spares): they count against max_sandboxes.
 */
void		 quota_set_replicas(struct quota_ns *, long replicas);
/*
 * Scale mode: how many more sandboxes may start now (max_sandboxes -
 * live), or -1 when unlimited.
 */
long		 quota_headroom(const struct quota_ns *);

void		 quota_usage(const struct quota_ns *, struct quota_usage *);
/* Sum of live requests of one resource. */
double		 quota_used(const struct quota_ns *, const char *resource);
/*
 * The largest live trees (by live tasks, then total), at most n, into out;
 * returns how many.  Strings borrowed until the next change.
 */
size_t		 quota_top_trees(struct quota_ns *, double now,
		    struct quota_tree_info *out, size_t n);

/*
 * Scale mode: shares a namespace's headroom among pools that want more
 * replicas.  want[i] is pool i's desired increase, cap[i] receives the
 * increase it may take.  Rule (documented in the README): water-filling
 * in equal shares, smallest wants first, so that no pool gets more than it
 * asked and leftover goes to the others; ties by index.  headroom < 0:
 * unlimited (cap = want).  Returns the level: each pool got min(want,
 * level), and of those that want more the first (headroom left) got one
 * more; LONG_MAX when unlimited.
 */
long		 quota_share(long headroom, const long *want, long *cap,
		    size_t n);

#ifdef AS_TESTING
/* For tests/check_quota.c: quota_share()'s steps, comparisons included. */
extern uint64_t	 quota_share_steps;
#endif

#endif
