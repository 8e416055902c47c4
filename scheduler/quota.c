/*
 * quota.c: AgentQuota admission (quota.h), pure: no I/O, no clock, no
 * logging.  The dispatcher asks quota_check() for every task and reports
 * quota_admit() / quota_release(), so the hot path is built for 100,000
 * live tasks: two hash tables (rt/hash.h; live tasks by id, live trees by
 * root id), one allocation per admitted task (its id and its held
 * resources ride in the same block), one per new tree, and none in
 * quota_check() or when a check fails.
 *
 * Lineage: a task points at its tree and at its parent's record.  When a
 * parent ends before its children, its record leaves the table but stays
 * allocated as a "ghost" holding the count of children that still point at
 * it; the last of them frees it.  So a release never searches for a parent
 * and an id reused later never inherits someone else's children.
 *
 * Time: a tree is charged sandbox-seconds and its spawn bucket refilled
 * piecewise, live tasks x elapsed, each time it is touched (quota_charge);
 * time that goes backwards is ignored.
 *
 * Resources: every requested name is tracked (for quota_used() and
 * /status), the config's names always, other names up to QUOTA_TRACKED at
 * a time.  Amounts are fixed point, whole units plus nanounits (the finest
 * step of a Kubernetes quantity), so sums and comparisons are exact: three
 * requests of 100m fill a limit of 300m, which summing doubles would
 * overshoot, and one byte past 8Gi does not fit.  A request is rounded to
 * the nearest nanounit (Kubernetes rounds up below 1n) and capped at
 * QAMT_CAP units; sums saturate, which only absurd unlimited requests
 * reach.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/hash.h"
#include "config.h"
#include "quota.h"
#include "task.h"

#define QAMT_NANO	1000000000
#define QAMT_CAP	((int64_t)1 << 53)	/* units in one request */
#define QAMT_SUM_MAX	((int64_t)1 << 62)	/* a sum saturates here */
#define QUOTA_TOKEN_EPS	1e-9	/* a refill a rounding error short is whole */
#define QUOTA_TRACKED	64	/* unlimited resource names tracked at once */
#define QUOTA_MIN_BUCKETS 16
#define ID_SHOW		64	/* bytes of an id quoted in a detail */

/* A live tree: the root task and its live descendants. */
struct qtree {
	struct as_hash_entry link;	/* quota_hash(root) */
	long		 live;		/* live tasks */
	long		 total;		/* tasks ever admitted */
	double		 seconds;	/* sandbox-seconds charged up to at */
	double		 tokens;	/* spawn bucket at at */
	double		 at;
	double		 saved_at;	/* quota_tree_save_due: last save */
	int		 mark;		/* quota_top_trees scratch; -1 */
	char		 root[];
};

/* An amount of a resource: units + nanos / 1e9, 0 <= nanos < 1e9. */
struct qamt {
	int64_t		 units;
	int32_t		 nanos;
};

/* Resources a live task holds, stored after its id. */
struct qheld {
	int64_t		 units;
	int32_t		 nanos;
	uint32_t	 res;		/* index into quota_ns.res */
};

struct qtask {
	struct as_hash_entry link;	/* quota_hash(id) */
	struct qtree	*tree;
	struct qtask	*parent;	/* live or ghost; NULL: none known */
	long		 children;	/* live children */
	int		 depth;
	uint16_t	 nheld;
	uint8_t		 ghost;		/* released, children still live */
	char		 id[];
};

/* A tracked resource name. */
struct qres {
	char		*name;		/* NULL: a free slot */
	struct qamt	 used;
	long		 refs;		/* live tasks holding some */
	int		 pinned;	/* the config limits it */
};

struct qlimit {
	size_t		 res;
	struct qamt	 limit;
	char		*quantity;	/* as the config wrote it */
};

struct quota_ns {
	int		 limited;	/* a config is set */
	long		 max_sandboxes;
	long		 root_cap;	/* sandboxes new roots may fill; -1 */
	long		 max_depth;
	long		 max_children;
	long		 max_descendants;
	long		 max_roots;
	double		 spawn_rate;	/* 0: no bucket */
	double		 spawn_cap;
	double		 budget;	/* 0: none */
	double		 reserve;
	int		 reject;	/* onExceeded: reject */
	struct qlimit	*limits;
	size_t		 nlimits;
	struct qres	*res;
	size_t		 nres;		/* slots, free ones included */
	size_t		 ntracked;	/* unpinned names tracked */
	struct as_hash	 tasks;		/* struct qtask, shrinking */
	struct as_hash	 trees;		/* struct qtree, shrinking */
	long		 replicas;
	uint64_t	 admitted, deferred, rejected;
	uint64_t	 decisions[3][QUOTA_R_COUNT];	/* [verdict][reason] */
};

static void	 quota_charge(const struct quota_ns *, struct qtree *,
		    double);

/*
 * The one table of reasons: the name each has on the wire, the Event
 * reason it is reported under, and whether a task deferred for it waits
 * for the whole namespace's capacity.
 */
static const struct {
	const char	*name;
	const char	*event;		/* NULL: no Event */
	int		 namespace_wide;
} quota_reasons[QUOTA_R_COUNT] = {
	[QUOTA_R_NONE] = { "", NULL, 0 },
	[QUOTA_R_MAX_DEPTH] = { "cascade.maxDepth", "CascadeRejected", 0 },
	[QUOTA_R_UNKNOWN_PARENT] = { "cascade.unknownParent",
	    "CascadeRejected", 0 },
	[QUOTA_R_BUDGET] = { "budget.sandboxSeconds", "QuotaExceeded", 0 },
	[QUOTA_R_NEVER_FIT] = { "quota.resourcesNeverFit", "QuotaExceeded",
	    1 },
	[QUOTA_R_MAX_SANDBOXES] = { "quota.maxSandboxes", "QuotaExceeded",
	    1 },
	[QUOTA_R_RESERVED] = { "quota.reserved", "QuotaExceeded", 1 },
	[QUOTA_R_RESOURCES] = { "quota.resources", "QuotaExceeded", 1 },
	[QUOTA_R_MAX_ROOTS] = { "cascade.maxRoots", "CascadeRejected", 0 },
	[QUOTA_R_MAX_CHILDREN] = { "cascade.maxChildrenPerTask",
	    "CascadeRejected", 0 },
	[QUOTA_R_MAX_DESCENDANTS] = { "cascade.maxDescendantsPerRoot",
	    "CascadeRejected", 0 },
	[QUOTA_R_SPAWN_RATE] = { "cascade.spawnRate", "CascadeRejected", 0 },
	[QUOTA_R_TEMPLATE_UNKNOWN] = { "sandbox.templateUnknown", NULL, 0 },
};

/* Fixed-point amounts. */

static struct qamt
qamt_of(double v)
{
	struct qamt	 a = { 0, 0 };
	long long	 n;

	if (!(v > 0))
		return (a);
	if (v >= (double)QAMT_CAP) {
		a.units = QAMT_CAP;
		return (a);
	}
	a.units = (int64_t)v;
	n = llround((v - (double)a.units) * QAMT_NANO);
	if (n >= QAMT_NANO) {
		a.units++;
		n -= QAMT_NANO;
	}
	a.nanos = (int32_t)n;
	return (a);
}

static double
qamt_double(struct qamt a)
{
	return ((double)a.units + (double)a.nanos / QAMT_NANO);
}

static int
qamt_zero(struct qamt a)
{
	return (a.units == 0 && a.nanos == 0);
}

static struct qamt
qamt_add(struct qamt a, struct qamt b)
{
	if (a.units >= QAMT_SUM_MAX - b.units) {
		a.units = QAMT_SUM_MAX;
		a.nanos = 0;
		return (a);
	}
	a.units += b.units;
	a.nanos += b.nanos;
	if (a.nanos >= QAMT_NANO) {
		a.nanos -= QAMT_NANO;
		a.units++;
	}
	return (a);
}

static struct qamt
qamt_sub(struct qamt a, struct qamt b)
{
	a.units -= b.units;
	a.nanos -= b.nanos;
	if (a.nanos < 0) {
		a.nanos += QAMT_NANO;
		a.units--;
	}
	if (a.units < 0)		/* only after saturating */
		a.units = a.nanos = 0;
	return (a);
}

/* 1 when a > b. */
static int
qamt_gt(struct qamt a, struct qamt b)
{
	return (a.units != b.units ? a.units > b.units : a.nanos > b.nanos);
}

static uint64_t
quota_hash(const char *s)
{
	return (task_hash("", s));
}

static struct qtask *
quota_task_find(const struct quota_ns *ns, const char *id)
{
	return (AS_HASH_ITEM(as_hash_find(&ns->tasks, quota_hash(id), id),
	    struct qtask, link));
}

static struct qtree *
quota_tree_find(const struct quota_ns *ns, const char *root)
{
	return (AS_HASH_ITEM(as_hash_find(&ns->trees, quota_hash(root), root),
	    struct qtree, link));
}

static struct qheld *
qtask_held(struct qtask *t)
{
	size_t	 off = offsetof(struct qtask, id) + strlen(t->id) + 1;
	size_t	 a = _Alignof(struct qheld);

	return ((struct qheld *)((char *)t + (off + a - 1) / a * a));
}

/* Resource names. */

static long
quota_res_find(const struct quota_ns *ns, const char *name)
{
	size_t	 i;

	for (i = 0; i < ns->nres; i++)
		if (ns->res[i].name != NULL && strcmp(ns->res[i].name,
		    name) == 0)
			return ((long)i);
	return (-1);
}

/*
 * The slot of name, made if need be; -1 when it is not tracked (an
 * unlimited name past QUOTA_TRACKED).
 */
static long
quota_res_intern(struct quota_ns *ns, const char *name, int pin)
{
	long	 i = quota_res_find(ns, name);
	size_t	 j;

	if (i >= 0) {
		if (pin && !ns->res[i].pinned) {
			ns->res[i].pinned = 1;
			ns->ntracked--;
		}
		return (i);
	}
	if (!pin && ns->ntracked >= QUOTA_TRACKED)
		return (-1);
	for (j = 0; j < ns->nres && ns->res[j].name != NULL; j++)
		;
	if (j == ns->nres) {
		ns->res = xrealloc(ns->res, (ns->nres + 1) * sizeof *ns->res);
		ns->nres++;
	}
	ns->res[j].name = xstrdup(name);
	ns->res[j].used.units = 0;
	ns->res[j].used.nanos = 0;
	ns->res[j].refs = 0;
	ns->res[j].pinned = pin;
	if (!pin)
		ns->ntracked++;
	return ((long)j);
}

/* Frees a slot nobody holds and the config does not name. */
static void
quota_res_maybe_free(struct quota_ns *ns, size_t i)
{
	struct qres	*r = &ns->res[i];

	if (r->name == NULL || r->refs > 0 || r->pinned)
		return;
	free(r->name);
	r->name = NULL;
	ns->ntracked--;
}

/* What the task asks of a resource; names in a task are unique. */
static struct qamt
quota_task_req(const struct quota_task *t, const char *name)
{
	size_t	 i;

	for (i = 0; t->res != NULL && i < t->nres; i++)
		if (t->res[i].name != NULL && strcmp(t->res[i].name,
		    name) == 0)
			return (qamt_of(t->res[i].value));
	return (qamt_of(0));
}

/* Life cycle and config. */

static void
quota_limits_free(struct quota_ns *ns)
{
	size_t	 i;

	for (i = 0; i < ns->nlimits; i++)
		free(ns->limits[i].quantity);
	free(ns->limits);
	ns->limits = NULL;
	ns->nlimits = 0;
}

struct quota_ns *
quota_ns_new(const struct quota_config *c)
{
	struct quota_ns	*ns = xcalloc(1, sizeof *ns);

	/* A drained burst gives its buckets back. */
	as_hash_init_str(&ns->tasks, QUOTA_MIN_BUCKETS, AS_HASH_SHRINK |
	    AS_HASH_KEY_ARRAY, AS_HASH_KEYOFF(struct qtask, link, id));
	as_hash_init_str(&ns->trees, QUOTA_MIN_BUCKETS, AS_HASH_SHRINK |
	    AS_HASH_KEY_ARRAY, AS_HASH_KEYOFF(struct qtree, link, root));
	quota_ns_set_config(ns, c);
	return (ns);
}

void
quota_ns_set_config(struct quota_ns *ns, const struct quota_config *c)
{
	double		 rate = 0, cap = 1;
	size_t		 i;
	struct as_hash_entry *l;

	quota_limits_free(ns);
	for (i = 0; i < ns->nres; i++)
		if (ns->res[i].name != NULL && ns->res[i].pinned) {
			ns->res[i].pinned = 0;
			ns->ntracked++;
		}
	ns->limited = c != NULL;
	ns->max_sandboxes = ns->root_cap = ns->max_depth = -1;
	ns->max_children = ns->max_descendants = ns->max_roots = -1;
	ns->budget = ns->reserve = 0;
	ns->reject = 0;
	if (c != NULL) {
		ns->max_sandboxes = c->max_sandboxes < 0 ? -1 :
		    c->max_sandboxes;
		ns->max_depth = c->max_depth < 0 ? -1 : c->max_depth;
		ns->max_children = c->max_children_per_task < 0 ? -1 :
		    c->max_children_per_task;
		ns->max_descendants = c->max_descendants_per_root < 0 ? -1 :
		    c->max_descendants_per_root;
		ns->max_roots = c->max_roots < 0 ? -1 : c->max_roots;
		if (c->spawn_per_second > 0) {
			rate = c->spawn_per_second;
			cap = c->spawn_burst < 1 ? 1 : (double)c->spawn_burst;
		}
		if (c->sandbox_seconds_per_root > 0)
			ns->budget = c->sandbox_seconds_per_root;
		ns->reserve = c->reserve_for_descendants > 1 ? 1 :
		    c->reserve_for_descendants > 0 ?
		    c->reserve_for_descendants : 0;
		/*
		 * floor(max x (1 - reserve)), nudged so that a product a
		 * rounding error below an integer floors to that integer.
		 */
		if (ns->max_sandboxes >= 0 && ns->reserve > 0)
			ns->root_cap = (long)floor((double)ns->max_sandboxes *
			    (1 - ns->reserve) + 1e-9);
		ns->reject = c->on_exceeded == QUOTA_ON_REJECT;
		ns->limits = xcalloc(c->nresources + 1, sizeof *ns->limits);
		for (i = 0; i < c->nresources; i++) {
			struct qlimit	*q = &ns->limits[ns->nlimits++];

			q->res = (size_t)quota_res_intern(ns,
			    c->resources[i].name, 1);
			q->limit = qamt_of(c->resources[i].value);
			q->quantity = xstrdup(c->resources[i].quantity != NULL ?
			    c->resources[i].quantity : "");
		}
	}
	for (i = 0; i < ns->nres; i++)
		quota_res_maybe_free(ns, i);
	/* A new bucket shape starts every tree full under it. */
	if (rate != ns->spawn_rate || cap != ns->spawn_cap)
		for (l = as_hash_first(&ns->trees); l != NULL;
		    l = as_hash_next(&ns->trees, l))
			AS_HASH_ITEM(l, struct qtree, link)->tokens = cap;
	ns->spawn_rate = rate;
	ns->spawn_cap = cap;
}

void
quota_ns_free(struct quota_ns *ns)
{
	struct as_hash_entry *l, *next;
	struct qtask	*t, *p;
	size_t		 i;

	if (ns == NULL)
		return;
	/* Ghosts first: only their live children reach them. */
	for (l = as_hash_first(&ns->tasks); l != NULL;
	    l = as_hash_next(&ns->tasks, l)) {
		t = AS_HASH_ITEM(l, struct qtask, link);
		if ((p = t->parent) != NULL && p->ghost && --p->children == 0)
			free(p);
	}
	for (l = as_hash_first(&ns->tasks); l != NULL; l = next) {
		next = as_hash_next(&ns->tasks, l);
		free(AS_HASH_ITEM(l, struct qtask, link));
	}
	for (l = as_hash_first(&ns->trees); l != NULL; l = next) {
		next = as_hash_next(&ns->trees, l);
		free(AS_HASH_ITEM(l, struct qtree, link));
	}
	as_hash_fini(&ns->tasks);
	as_hash_fini(&ns->trees);
	for (i = 0; i < ns->nres; i++)
		free(ns->res[i].name);
	free(ns->res);
	quota_limits_free(ns);
	free(ns);
}

/* Charging. */

/*
 * Brings a tree up to now: for the time since it was last touched, its
 * live sandboxes are charged and its bucket refilled up to its capacity.
 * Charging piecewise, at every change of the live count, makes the sum
 * exact.
 */
static void
quota_charge(const struct quota_ns *ns, struct qtree *tr, double now)
{
	double	 dt = now - tr->at;

	if (!(dt > 0))
		return;
	tr->seconds += (double)tr->live * dt;
	if (ns->spawn_rate > 0) {
		tr->tokens += ns->spawn_rate * dt;
		if (tr->tokens > ns->spawn_cap)
			tr->tokens = ns->spawn_cap;
	}
	tr->at = now;
}

/* Decisions. */

static void
quota_decide(struct quota_decision *d, enum quota_verdict v,
    enum quota_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
quota_decide(struct quota_decision *d, enum quota_verdict v,
    enum quota_reason reason, const char *fmt, ...)
{
	va_list	 ap;

	d->verdict = v;
	d->reason = reason;
	va_start(ap, fmt);
	vsnprintf(d->detail, sizeof d->detail, fmt, ap);
	va_end(ap);
}

/*
 * A task already live keeps its sandbox: checking it again admits (the
 * dispatcher joins it rather than claiming twice).  Otherwise the checks
 * of quota.h run in its order; the first that fails decides.
 */
void
quota_check(struct quota_ns *ns, const struct quota_task *t, double now,
    struct quota_decision *d)
{
	const char		*root = t->root != NULL ? t->root : t->id;
	int			 descendant = t->parent != NULL;
	struct qtree		*tr;
	struct qtask		*p;
	enum quota_verdict	 live;
	long			 sandboxes, n;
	struct qamt		 req;
	double			 tokens;
	size_t			 i;

	d->verdict = QUOTA_ADMIT;
	d->reason = QUOTA_R_NONE;
	d->detail[0] = '\0';
	if (quota_task_find(ns, t->id) != NULL)
		return;
	if ((tr = quota_tree_find(ns, root)) != NULL)
		quota_charge(ns, tr, now);
	if (!ns->limited)
		return;

	/* Structural: no amount of waiting makes these fit. */
	if (ns->max_depth >= 0 && t->depth > ns->max_depth) {
		quota_decide(d, QUOTA_REJECT, QUOTA_R_MAX_DEPTH, "depth %d "
		    "> maxDepth %ld (the root has depth 0)", t->depth,
		    ns->max_depth);
		return;
	}
	if (tr != NULL && ns->budget > 0 && tr->seconds >= ns->budget) {
		quota_decide(d, QUOTA_REJECT, QUOTA_R_BUDGET, "tree "
		    "%.*s has used %.15g of %.15g sandbox-seconds "
		    "(sandboxSecondsPerRoot %.15g)", ID_SHOW, root,
		    tr->seconds, ns->budget, ns->budget);
		return;
	}
	for (i = 0; i < ns->nlimits; i++) {
		const struct qlimit	*q = &ns->limits[i];

		req = quota_task_req(t, ns->res[q->res].name);
		if (qamt_gt(req, q->limit)) {
			quota_decide(d, QUOTA_REJECT,
			    QUOTA_R_NEVER_FIT, "asks %.15g %s, more "
			    "than the whole quota of %.15g (%s)",
			    qamt_double(req), ns->res[q->res].name,
			    qamt_double(q->limit), q->quantity);
			return;
		}
	}

	/* Live: these clear as tasks end. */
	live = ns->reject ? QUOTA_REJECT : QUOTA_DEFER;
	sandboxes = (long)as_hash_count(&ns->tasks) + ns->replicas;
	if (ns->max_sandboxes >= 0 && sandboxes >= ns->max_sandboxes) {
		quota_decide(d, live, QUOTA_R_MAX_SANDBOXES, "%ld of %ld "
		    "sandboxes live (maxSandboxes %ld)", sandboxes,
		    ns->max_sandboxes, ns->max_sandboxes);
		return;
	}
	if (!descendant && ns->root_cap >= 0 && sandboxes >= ns->root_cap) {
		quota_decide(d, live, QUOTA_R_RESERVED, "%ld of %ld "
		    "sandboxes live; new roots stop at %ld "
		    "(reserveForDescendants %.15g keeps %ld for descendants)",
		    sandboxes, ns->max_sandboxes, ns->root_cap, ns->reserve,
		    ns->max_sandboxes - ns->root_cap);
		return;
	}
	for (i = 0; i < ns->nlimits; i++) {
		const struct qlimit	*q = &ns->limits[i];
		const struct qres	*r = &ns->res[q->res];

		req = quota_task_req(t, r->name);
		if (!qamt_zero(req) && qamt_gt(qamt_add(r->used, req),
		    q->limit)) {
			quota_decide(d, live, QUOTA_R_RESOURCES, "%s: %.15g in "
			    "use + %.15g asked > %.15g (quota %s)", r->name,
			    qamt_double(r->used), qamt_double(req),
			    qamt_double(q->limit), q->quantity);
			return;
		}
	}
	if (!descendant && tr == NULL && ns->max_roots >= 0 &&
	    (long)as_hash_count(&ns->trees) >= ns->max_roots) {
		quota_decide(d, live, QUOTA_R_MAX_ROOTS, "%zu of %ld trees "
		    "live (maxRoots %ld)", as_hash_count(&ns->trees),
		    ns->max_roots, ns->max_roots);
		return;
	}
	if (descendant && ns->max_children >= 0) {
		p = quota_task_find(ns, t->parent);
		n = p != NULL ? p->children : 0;
		if (n >= ns->max_children) {
			quota_decide(d, live, QUOTA_R_MAX_CHILDREN,
			    "parent %.*s has %ld of %ld live children "
			    "(maxChildrenPerTask %ld)", ID_SHOW, t->parent, n,
			    ns->max_children, ns->max_children);
			return;
		}
	}
	n = tr != NULL ? tr->live : 0;
	if (ns->max_descendants >= 0 && n >= ns->max_descendants) {
		quota_decide(d, live, QUOTA_R_MAX_DESCENDANTS, "tree "
		    "%.*s has %ld of %ld live tasks (maxDescendantsPerRoot "
		    "%ld; the root counts)", ID_SHOW, root, n,
		    ns->max_descendants, ns->max_descendants);
		return;
	}
	if (descendant && ns->spawn_rate > 0) {
		tokens = tr != NULL ? tr->tokens : ns->spawn_cap;
		if (tokens < 1 - QUOTA_TOKEN_EPS) {
			quota_decide(d, live, QUOTA_R_SPAWN_RATE, "tree %.*s "
			    "spawn bucket empty (%.3g tokens; perSecond "
			    "%.15g, burst %.15g): next token in %.3f s",
			    ID_SHOW, root, tokens, ns->spawn_rate,
			    ns->spawn_cap, (1 - tokens) / ns->spawn_rate);
			return;
		}
	}
}

/* Reasons: out-of-range values read as none rather than past the table. */

const char *
quota_reason_name(enum quota_reason r)
{
	return ((unsigned)r < QUOTA_R_COUNT ? quota_reasons[r].name : "");
}

const char *
quota_reason_event(enum quota_reason r)
{
	return ((unsigned)r < QUOTA_R_COUNT ? quota_reasons[r].event : NULL);
}

int
quota_reason_namespace_wide(enum quota_reason r)
{
	return ((unsigned)r < QUOTA_R_COUNT &&
	    quota_reasons[r].namespace_wide);
}

/*
 * Warm spares give way.  Idle spares hold sandbox slots that a task needs
 * more; both halves of the rule live here so that the dispatcher only
 * counts and acts.  A deferral needs no help (it waits anyway, and the
 * sizing half makes room), and no other reason clears when spares go.
 */
int
quota_spares_give_way(struct quota_decision *d, long spares)
{
	size_t	 len;

	if (d->verdict != QUOTA_REJECT || d->reason != QUOTA_R_MAX_SANDBOXES ||
	    spares <= 0)
		return (0);
	d->verdict = QUOTA_DEFER;
	len = strlen(d->detail);
	snprintf(d->detail + len, sizeof d->detail - len,
	    "; waiting for warm spares to give way");
	return (1);
}

long
quota_spare_target(long want, long cur, long headroom, long waiting)
{
	long	 target = want;

	if (headroom >= 0 && target > cur + headroom)
		target = cur + headroom;
	if (waiting > cur)
		waiting = cur;
	if (headroom == 0 && cur > 0 && waiting > 0 && target > cur - waiting)
		target = cur - waiting;
	return (target);
}

void
quota_count(struct quota_ns *ns, enum quota_verdict v, enum quota_reason r)
{
	if ((unsigned)v < 3 && (unsigned)r < QUOTA_R_COUNT)
		ns->decisions[v][r]++;
	switch (v) {
	case QUOTA_ADMIT:
		ns->admitted++;
		break;
	case QUOTA_DEFER:
		ns->deferred++;
		break;
	case QUOTA_REJECT:
		ns->rejected++;
		break;
	}
}

void
quota_admit(struct quota_ns *ns, const struct quota_task *t, double now)
{
	const char	*root = t->root != NULL ? t->root : t->id;
	struct qtree	*tr;
	struct qtask	*rec;
	struct qheld	*held;
	struct qamt	 v;
	size_t		 i, n = 0, idlen, rootlen, size, a;
	long		 r;

	if (quota_task_find(ns, t->id) != NULL)
		return;
	if ((tr = quota_tree_find(ns, root)) != NULL)
		quota_charge(ns, tr, now);
	else {
		rootlen = strlen(root);
		tr = xmalloc(sizeof *tr + rootlen + 1);
		memset(tr, 0, sizeof *tr);
		memcpy(tr->root, root, rootlen + 1);
		tr->tokens = ns->spawn_cap;
		tr->at = now;
		tr->saved_at = now;
		tr->mark = -1;
		as_hash_insert(&ns->trees, &tr->link, quota_hash(root));
	}

	for (i = 0; t->res != NULL && i < t->nres; i++)
		if (t->res[i].name != NULL && t->res[i].value > 0)
			n++;
	if (n > UINT16_MAX)
		n = UINT16_MAX;
	idlen = strlen(t->id);
	a = _Alignof(struct qheld);
	size = (offsetof(struct qtask, id) + idlen + 1 + a - 1) / a * a +
	    n * sizeof(struct qheld);
	rec = xmalloc(size);
	memset(rec, 0, offsetof(struct qtask, id));
	memcpy(rec->id, t->id, idlen + 1);
	rec->tree = tr;
	rec->depth = t->depth;
	held = qtask_held(rec);
	for (i = 0; t->res != NULL && i < t->nres; i++) {
		if (t->res[i].name == NULL || rec->nheld == n ||
		    qamt_zero(v = qamt_of(t->res[i].value)) ||
		    (r = quota_res_intern(ns, t->res[i].name, 0)) < 0)
			continue;
		held[rec->nheld].res = (uint32_t)r;
		held[rec->nheld].units = v.units;
		held[rec->nheld].nanos = v.nanos;
		rec->nheld++;
		ns->res[r].used = qamt_add(ns->res[r].used, v);
		ns->res[r].refs++;
	}
	if (t->parent != NULL) {
		if ((rec->parent = quota_task_find(ns, t->parent)) != NULL)
			rec->parent->children++;
		/*
		 * Admission past the check (a rebuild from existing claims)
		 * empties the bucket but leaves no debt.
		 */
		if (ns->spawn_rate > 0)
			tr->tokens = tr->tokens >= 1 ? tr->tokens - 1 : 0;
	}
	as_hash_insert(&ns->tasks, &rec->link, quota_hash(t->id));
	tr->live++;
	tr->total++;
}

void
quota_release(struct quota_ns *ns, const char *id, double now)
{
	struct qtask	*t, *p;
	struct qtree	*tr;
	struct qheld	*held;
	struct qres	*r;
	size_t		 i;

	if (id == NULL || (t = quota_task_find(ns, id)) == NULL)
		return;
	tr = t->tree;
	quota_charge(ns, tr, now);
	held = qtask_held(t);
	for (i = 0; i < t->nheld; i++) {
		struct qamt	 v = { held[i].units, held[i].nanos };

		r = &ns->res[held[i].res];
		r->used = qamt_sub(r->used, v);
		/* The last holder leaves zero even after a saturated sum. */
		if (--r->refs == 0)
			r->used = qamt_of(0);
		quota_res_maybe_free(ns, held[i].res);
	}
	t->nheld = 0;
	if ((p = t->parent) != NULL && --p->children == 0 && p->ghost)
		free(p);
	t->parent = NULL;
	as_hash_remove(&ns->tasks, &t->link);
	if (t->children > 0)
		t->ghost = 1;
	else
		free(t);
	if (--tr->live == 0) {
		as_hash_remove(&ns->trees, &tr->link);
		free(tr);
	}
}

/*
 * Budget persistence.  Only sandbox-seconds cannot be rebuilt from the
 * claims after a restart (lineage, resources and live counts can): the
 * dispatcher saves them on a claim of the tree at most once per interval
 * and puts them back with quota_tree_restore().
 */
int
quota_tree_save_due(struct quota_ns *ns, const char *root, double now,
    double interval, double *seconds)
{
	struct qtree	*tr;

	if (ns->budget <= 0 || root == NULL ||
	    (tr = quota_tree_find(ns, root)) == NULL ||
	    now - tr->saved_at < interval)
		return (0);
	quota_charge(ns, tr, now);
	tr->saved_at = now;
	*seconds = tr->seconds;
	return (1);
}

void
quota_tree_restore(struct quota_ns *ns, const char *root, double seconds,
    double now)
{
	struct qtree	*tr;

	if (root == NULL || (tr = quota_tree_find(ns, root)) == NULL)
		return;
	quota_charge(ns, tr, now);
	if (seconds > tr->seconds)
		tr->seconds = seconds;
}

int
quota_live(const struct quota_ns *ns, const char *id)
{
	return (id != NULL && quota_task_find(ns, id) != NULL);
}

void
quota_set_replicas(struct quota_ns *ns, long replicas)
{
	ns->replicas = replicas > 0 ? replicas : 0;
}

long
quota_headroom(const struct quota_ns *ns)
{
	long	 live = (long)as_hash_count(&ns->tasks) + ns->replicas;

	if (ns->max_sandboxes < 0)
		return (-1);
	return (live >= ns->max_sandboxes ? 0 : ns->max_sandboxes - live);
}

uint64_t
quota_decisions(const struct quota_ns *ns, enum quota_verdict v,
    enum quota_reason r)
{
	return ((unsigned)v < 3 && (unsigned)r < QUOTA_R_COUNT ?
	    ns->decisions[v][r] : 0);
}

void
quota_usage(const struct quota_ns *ns, struct quota_usage *u)
{
	u->tasks = (long)as_hash_count(&ns->tasks);
	u->replicas = ns->replicas;
	u->sandboxes = u->tasks + u->replicas;
	u->roots = (long)as_hash_count(&ns->trees);
	u->admitted = ns->admitted;
	u->deferred = ns->deferred;
	u->rejected = ns->rejected;
}

double
quota_used(const struct quota_ns *ns, const char *resource)
{
	long	 i;

	if (resource == NULL || (i = quota_res_find(ns, resource)) < 0)
		return (0);
	return (qamt_double(ns->res[i].used));
}

/* 1 when a ranks above b: more live tasks, then more in all, then name. */
static int
quota_tree_above(const struct qtree *a, const struct qtree *b)
{
	if (a->live != b->live)
		return (a->live > b->live);
	if (a->total != b->total)
		return (a->total > b->total);
	return (strcmp(a->root, b->root) < 0);
}

/*
 * One pass over the trees keeps the best n in order (n is small: a
 * /status page); one pass over the tasks finds their deepest live task.
 * tokens is -1 when there is no spawn limit.
 */
size_t
quota_top_trees(struct quota_ns *ns, double now, struct quota_tree_info *out,
    size_t n)
{
	struct qtree	**best, *tr;
	struct as_hash_entry *l;
	struct qtask	*t;
	size_t		 i, j, k = 0, ntrees = as_hash_count(&ns->trees);

	if (n == 0 || ntrees == 0)
		return (0);
	if (n > ntrees)
		n = ntrees;
	best = xcalloc(n, sizeof *best);
	for (l = as_hash_first(&ns->trees); l != NULL;
	    l = as_hash_next(&ns->trees, l)) {
		tr = AS_HASH_ITEM(l, struct qtree, link);
		if (k == n && !quota_tree_above(tr, best[k - 1]))
			continue;
		j = k < n ? k++ : n - 1;
		for (; j > 0 && quota_tree_above(tr, best[j - 1]); j--)
			best[j] = best[j - 1];
		best[j] = tr;
	}
	for (i = 0; i < k; i++) {
		tr = best[i];
		quota_charge(ns, tr, now);
		tr->mark = (int)i;
		out[i].root = tr->root;
		out[i].live = tr->live;
		out[i].total = tr->total;
		out[i].max_depth = 0;
		out[i].seconds = tr->seconds;
		out[i].tokens = ns->spawn_rate > 0 ? tr->tokens : -1;
	}
	for (l = as_hash_first(&ns->tasks); l != NULL;
	    l = as_hash_next(&ns->tasks, l)) {
		t = AS_HASH_ITEM(l, struct qtask, link);
		if (t->tree->mark >= 0 &&
		    t->depth > out[t->tree->mark].max_depth)
			out[t->tree->mark].max_depth = t->depth;
	}
	for (i = 0; i < k; i++)
		best[i]->mark = -1;
	free(best);
	return (k);
}

#ifdef AS_TESTING
uint64_t	 quota_share_steps;
#define QUOTA_SHARE_STEP()	(quota_share_steps++)
#else
#define QUOTA_SHARE_STEP()	((void)0)
#endif

static int
quota_long_cmp(const void *a, const void *b)
{
	long	 x = *(const long *)a, y = *(const long *)b;

	QUOTA_SHARE_STEP();
	return ((x > y) - (x < y));
}

/*
 * Water-filling: every pool that wants more gets an equal share of what is
 * left, a pool is never given more than it wants, and what a satisfied
 * pool leaves goes round again to the others; the last units, fewer than
 * the pools still wanting, go one each in index order.
 *
 * Done by level rather than in rounds: every pool ends at min(want, L)
 * plus at most one of the last units, where L is the highest level whose
 * sum of min(want, L) the headroom pays.  The positive wants, sorted (in
 * cap, which is overwritten after), give L in one pass: from one want to
 * the next the level rises by what is left over the pools above it.  So
 * O(n log n) whatever the wants, and no allocation.
 */
long
quota_share(long headroom, const long *want, long *cap, size_t n)
{
	long	 left = headroom, level = 0, step;
	size_t	 i, m = 0;

	if (headroom < 0) {
		for (i = 0; i < n; i++)
			cap[i] = want[i] > 0 ? want[i] : 0;
		return (LONG_MAX);
	}
	for (i = 0; i < n; i++) {
		QUOTA_SHARE_STEP();
		if (want[i] > 0)
			cap[m++] = want[i];
	}
	qsort(cap, m, sizeof *cap, quota_long_cmp);
	for (i = 0; i < m; i++) {
		QUOTA_SHARE_STEP();
		/* m - i pools want more than level; all of them pay a step. */
		step = left / (long)(m - i);
		if (cap[i] - level > step) {
			level += step;
			left -= step * (long)(m - i);
			break;
		}
		left -= (cap[i] - level) * (long)(m - i);
		level = cap[i];
	}
	if (i == m)
		left = 0;	/* every want met */
	for (i = 0; i < n; i++) {
		QUOTA_SHARE_STEP();
		cap[i] = want[i] <= 0 ? 0 : want[i] < level ? want[i] : level;
		if (want[i] > level && left > 0) {
			cap[i]++;
			left--;
		}
	}
	return (level);
}
