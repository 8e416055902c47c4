/*
 * dispatch.c: dispatch mode, DESIGN.md section 7.
 *
 * A task goes through these states (struct dtask):
 *
 *   CLAIMING   POST of its SandboxClaim in flight (or waiting to retry);
 *   WAITING    the claim exists; waiting for status.sandbox.name and
 *              Ready=True, reported by the namespace's claim informer;
 *   HANDOFF    the task is being pushed to the sandbox's inbox;
 *   ACKING     the source message is being acked;
 *   RUNNING    handed off and acked; lives until its claim is deleted, its
 *              sandbox reports Finished, or its TTL passes;
 *   RELEASING  DELETE of the claim sent; the record goes with the claim's
 *              DELETED event.
 *
 * Nothing is lost and nothing is done twice across a crash: the source
 * message is acked only after the hand-off, the claim name is a function of
 * (pool, namespace, task id), a 409 adopts the claim an earlier attempt
 * made, the Redis hand-off is guarded by a per-task marker, and at start the
 * table of live tasks is rebuilt from the claims' labels and annotations
 * before any pool of the namespace consumes a message.  A message seen again
 * for a live task joins that task instead of making a second claim.
 *
 * Failures that are the task's (bad message, unknown parent, terminal claim
 * reason, claim not ready within readyTimeoutSeconds, claim deleted before
 * the hand-off) dead-letter it with a reason and delete its claim.
 * Failures that are ours or the cluster's (API errors, broker down, a
 * ResourceQuota refusing the create) keep the message unacked and retry
 * with backoff: the task waits, bounded by the consumer's window.
 *
 * A pending consumer operation or Kubernetes request holds its task: a task
 * is freed only once none is pending (dtask_maybe_free).  A task has at
 * most one consumer operation in flight (t->op): a failure that comes
 * meanwhile (its claim deleted or terminal during the hand-off) is kept and
 * decided when the operation ends (dtask_settle), never started beside it.
 */
#include <sys/queue.h>

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/charge.h"
#include "agentscaler/common.h"
#include "agentscaler/config.h"
#include "agentscaler/consumer.h"
#include "agentscaler/crd.h"
#include "agentscaler/dispatch.h"
#include "agentscaler/informer.h"
#include "agentscaler/k8s.h"
#include "agentscaler/log.h"
#include "agentscaler/quota.h"
#include "agentscaler/task.h"
#include "agentscaler/warmpool.h"

#define CLAIMS_API	"/apis/extensions.agents.x-k8s.io/v1beta1"
#define TTL_GRACE	30.0	/* s past shutdownTime before we delete */
#define MAX_REASONS	32
#define MAX_DEFERRED	10000	/* per namespace; then backpressure */
#define PUMP_MAX	1000	/* deferred tasks re-checked per pump */
#define RECENT		1024	/* rejections kept for explain */
#define TPL_REFRESH	30.0	/* s between reads of a pool's template */

enum tstate {
	T_CLAIMING, T_WAITING, T_HANDOFF, T_ACKING, T_RUNNING, T_RELEASING,
	T_DEFERRED
};
static const char *const tstate_names[] = {
	"claiming", "waiting", "handoff", "acking", "running", "releasing",
	"deferred"
};

enum launch { L_UNKNOWN, L_WARM, L_COLD };

/* Fixed-bucket histogram for /metrics. */
#define HIST_MAX	18
struct hist {
	const double	*bounds;
	size_t		 n;
	uint64_t	 counts[HIST_MAX];	/* per bucket, not cumulative */
	uint64_t	 total;
	double		 sum;
};

static const double ready_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1, 2.5, 5, 10, 30, 60, 180 };
static const double handoff_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180 };

struct reason_count {
	char		 reason[48];
	uint64_t	 n;
};

struct dns;
struct dpool;

struct dtask {
	struct dns		*ns;
	struct dpool		*pool;		/* NULL: pool gone or unknown */
	char			*id;
	char			*parent;	/* NULL for a root */
	char			*root;
	int			 depth;
	char			 claim[CLAIM_NAME_MAX + 1];
	char			 sandbox[254];
	char			 traceparent[56];
	enum tstate		 st;
	struct consumer_msg	*msg;		/* held, not yet acked */
	struct k8s_req		*req;		/* Kubernetes request */
	int			 op;		/* consumer operation pending */
	int			 claim_exists;
	int			 rebuilt;	/* known from a claim at start */
	int			 handed_off;
	int			 doomed;	/* free once nothing pending */
	int			 admitted;	/* counted by the quota */
	struct task_resource	*res;		/* requests, or NULL */
	size_t			 nres;
	char			 why[48];	/* last deferral reason */
	char			*why_detail;
	/*
	 * A failure that came while a consumer operation was in flight,
	 * decided once it ends (dtask_settle); "" when none.
	 */
	char			 fail_reason[48];
	char			*fail_detail;
	int			 counted_waiting;
	enum launch		 launch;
	double			 t_claim;	/* mono: POST sent */
	double			 ready_by;	/* mono: readyTimeout */
	double			 shutdown_time;	/* wall, from the claim */
	double			 retry_at;	/* mono; 0: none */
	unsigned		 attempts;
	struct dtask		*hnext;
	TAILQ_ENTRY(dtask)	 all;
	TAILQ_ENTRY(dtask)	 dq;		/* deferred queue */
};

struct dns {
	struct dispatcher	*d;
	char			 name[64];
	struct informer		*claims;
	int			 synced;
	struct dtask		**buckets;
	size_t			 nbuckets;
	size_t			 ntasks;
	TAILQ_HEAD(, dtask)	 tasks;
	int			 refs;		/* pools using it */
	struct quota_ns		*quota;
	TAILQ_HEAD(, dtask)	 defer_desc;	/* descendants first */
	TAILQ_HEAD(, dtask)	 defer_roots;
	size_t			 ndeferred;
	int			 pump;		/* re-check deferred soon */
	long			 scale_replicas;	/* scale-mode pools' */
	LIST_ENTRY(dns)		 entry;
};

/* A rejected or dead-lettered task, for explain. */
struct recent {
	char		 ns[64];
	char		 id[TASK_ID_MAX + 1];
	char		 reason[48];
	char		 detail[240];
	double		 wall;
};

struct dpool {
	struct dispatcher	*d;
	struct dns		*ns;
	const struct pool_config *cfg;
	char			 id[320];
	const struct consumer_type *ct;
	struct consumer		*cons;
	int			 started;
	int			 up;
	char			 src_err[192];

	struct warmpool_params	 wp;
	struct warmpool_state	 ws;
	struct k8s_req		*scale_req;
	long			 spare_patched;	/* -1: not yet */
	long			 spare_actual;	/* status.replicas; -1 */
	double			 scale_read;	/* mono */
	char			 k8s_err[256];

	/* The charge floor (charge.h) when no defaultResources is set. */
	struct k8s_req		*tpl_req;	/* GET pool, then template */
	int			 tpl_known;	/* read once at least */
	char			 tpl_name[254];
	struct task_resource	 tpl_res[TASK_MAX_RESOURCES];
	size_t			 tpl_nres;
	double			 tpl_at;	/* mono: next read */
	unsigned		 tpl_attempts;
	char			 tpl_err[320];	/* last read's; "" */

	long			 live;		/* tasks of this pool */
	long			 deferred;	/* of them, deferred */
	uint64_t		 rejected;
	long			 waiting;	/* CLAIMING + WAITING */
	uint64_t		 received;
	uint64_t		 handed_off;
	uint64_t		 completed;
	uint64_t		 claims_warm, claims_cold, claims_failed;
	uint64_t		 redelivered;
	uint64_t		 dead_letter_errors;
	struct reason_count	 dead[MAX_REASONS];
	size_t			 ndead;
	struct hist		 ready_warm, ready_cold, handoff;
	LIST_ENTRY(dpool)	 entry;
};

struct dispatcher {
	struct ev_loop		*loop;
	struct k8s_client	*k8s;
	const struct dispatch_ops *ops;
	char			 instance[128];
	int			 adopt;
	double			 sweep_interval;
	double			 sizing_interval;
	ev_timer		 sweep;
	ev_timer		 kick;		/* pump deferred now */
	double			 last_sizing;
	const struct config	*config;
	struct recent		*recent;	/* ring of RECENT */
	size_t			 nrecent;
	LIST_HEAD(, dns)	 nss;
	LIST_HEAD(, dpool)	 pools;
	dispatch_event_fn	*event;
	void			*event_arg;
};

/* Production: the real client, informer and consumer registry. */
static const struct dispatch_ops dispatch_ops_real = {
	.request = k8s_client_request,
	.cancel = k8s_req_cancel,
	.scale_get = k8s_scale_get,
	.scale_patch = k8s_scale_patch,
	.informer_new = informer_new,
	.informer_free = informer_free,
	.informer_get = informer_get,
	.consumer_type = consumer_type_find,
};

static void	 dtask_claim(struct dtask *);
static void	 dtask_handoff(struct dtask *);
static void	 dtask_release(struct dtask *);
static void	 dtask_maybe_free(struct dtask *);
static void	 dtask_fail(struct dtask *, const char *, const char *);
static void	 dtask_check(struct dtask *);
static void	 dpool_size(struct dpool *, double now);
static void	 dpool_window(struct dpool *);
static void	 dns_kick(struct dns *);
static void	 dns_replicas(struct dns *);
static void	 dpool_template(struct dpool *, double now);
static void	 recent_add(struct dispatcher *, const char *ns, const char *id,
		    const char *reason, const char *detail);
static void	 dpool_event(struct dpool *, int, const char *, const char *,
		    const char *, ...) __attribute__((format(printf, 5, 6)));
static void	 dtask_quota_event(struct dtask *, const char *, const char *,
		    int);

/* Histograms. */

static void
hist_init(struct hist *h, const double *bounds, size_t n)
{
	memset(h, 0, sizeof *h);
	h->bounds = bounds;
	h->n = n;
}

static void
hist_add(struct hist *h, double v)
{
	size_t	 i;

	if (!(v >= 0))
		v = 0;
	for (i = 0; i < h->n && v > h->bounds[i]; i++)
		;
	h->counts[i]++;
	h->total++;
	h->sum += v;
}

/* The task table of a namespace: chained hashing on the task id. */

static size_t
dns_bucket(const struct dns *ns, const char *id)
{
	return ((size_t)task_hash("", id) & (ns->nbuckets - 1));
}

static struct dtask *
dns_find(const struct dns *ns, const char *id)
{
	struct dtask	*t;

	for (t = ns->buckets[dns_bucket(ns, id)]; t != NULL; t = t->hnext)
		if (strcmp(t->id, id) == 0)
			return (t);
	return (NULL);
}

static void
dns_grow(struct dns *ns)
{
	struct dtask	**old = ns->buckets, *t, *next;
	size_t		 i, n = ns->nbuckets;

	ns->nbuckets = n * 2;
	ns->buckets = xcalloc(ns->nbuckets, sizeof *ns->buckets);
	for (i = 0; i < n; i++)
		for (t = old[i]; t != NULL; t = next) {
			next = t->hnext;
			t->hnext = ns->buckets[dns_bucket(ns, t->id)];
			ns->buckets[dns_bucket(ns, t->id)] = t;
		}
	free(old);
}

static void
dns_insert(struct dns *ns, struct dtask *t)
{
	size_t	 b;

	if (ns->ntasks + 1 > ns->nbuckets)
		dns_grow(ns);
	b = dns_bucket(ns, t->id);
	t->hnext = ns->buckets[b];
	ns->buckets[b] = t;
	TAILQ_INSERT_TAIL(&ns->tasks, t, all);
	ns->ntasks++;
}

static void
dns_remove(struct dns *ns, struct dtask *t)
{
	struct dtask	**pp;

	for (pp = &ns->buckets[dns_bucket(ns, t->id)]; *pp != NULL;
	    pp = &(*pp)->hnext)
		if (*pp == t) {
			*pp = t->hnext;
			break;
		}
	TAILQ_REMOVE(&ns->tasks, t, all);
	ns->ntasks--;
}

/* Pool counters. */

static void
dpool_dead(struct dpool *p, const char *reason)
{
	size_t	 i;

	if (p == NULL)
		return;
	for (i = 0; i < p->ndead; i++)
		if (strcmp(p->dead[i].reason, reason) == 0) {
			p->dead[i].n++;
			return;
		}
	if (p->ndead == MAX_REASONS)
		i = MAX_REASONS - 1;	/* the last row absorbs the rest */
	else {
		i = p->ndead++;
		as_strlcpy(p->dead[i].reason, reason, sizeof p->dead[i].reason);
	}
	p->dead[i].n++;
}

static void
dtask_set_waiting(struct dtask *t, int on)
{
	if (t->counted_waiting == on)
		return;
	t->counted_waiting = on;
	if (t->pool != NULL)
		t->pool->waiting += on ? 1 : -1;
}

static void
dtask_set_state(struct dtask *t, enum tstate st)
{
	t->st = st;
	dtask_set_waiting(t, st == T_CLAIMING || st == T_WAITING);
}

static struct dtask *
dtask_new(struct dns *ns, struct dpool *p, const char *id, const char *parent,
    const char *root, int depth)
{
	struct dtask	*t;

	t = xcalloc(1, sizeof *t);
	t->ns = ns;
	t->pool = p;
	t->id = xstrdup(id);
	t->parent = parent != NULL && parent[0] != '\0' ? xstrdup(parent) :
	    NULL;
	t->root = xstrdup(root);
	t->depth = depth;
	if (p != NULL) {
		p->live++;
		task_claim_name(p->cfg->name, ns->name, id, t->claim);
	}
	dns_insert(ns, t);
	return (t);
}

/* Takes a deferred task out of its queue. */
static void
dtask_undefer(struct dtask *t)
{
	struct dns	*ns = t->ns;

	if (t->parent != NULL)
		TAILQ_REMOVE(&ns->defer_desc, t, dq);
	else
		TAILQ_REMOVE(&ns->defer_roots, t, dq);
	ns->ndeferred--;
	if (t->pool != NULL) {
		t->pool->deferred--;
		dpool_window(t->pool);
	}
}

/* Events (dispatch_options.event): about the pool's AgentPool. */
static void
dpool_event(struct dpool *p, int warning, const char *reason,
    const char *action, const char *fmt, ...)
{
	va_list	 ap;
	char	 note[1024];

	if (p == NULL || p->d->event == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(note, sizeof note, fmt, ap);
	va_end(ap);
	p->d->event(p->d->event_arg, "AgentPool", p->cfg->ns, p->cfg->name,
	    warning, reason, action, note);
}

/*
 * A task the quota deferred or rejected: CascadeRejected for cascade.*
 * limits, QuotaExceeded for the others, on the pool and on the namespace's
 * AgentQuota.
 */
static void
dtask_quota_event(struct dtask *t, const char *why, const char *detail,
    int rejected)
{
	struct dispatcher *d = t->ns->d;
	const struct quota_config *qc;
	const char	*reason;
	char		 note[512];

	if (d->event == NULL)
		return;
	reason = strncmp(why, "cascade.", 8) == 0 ? "CascadeRejected" :
	    "QuotaExceeded";
	snprintf(note, sizeof note, "task %s %s: %s: %s", t->id, rejected ?
	    "rejected" : "deferred", why, detail);
	if (t->pool != NULL)
		d->event(d->event_arg, "AgentPool", t->ns->name,
		    t->pool->cfg->name, 1, reason, "Admit", note);
	if ((qc = config_quota_for(d->config, t->ns->name)) != NULL)
		d->event(d->event_arg, "AgentQuota", t->ns->name, qc->name, 1,
		    reason, "Admit", note);
}

static void
dtask_quota_task(const struct dtask *t, const struct task_resource *res,
    size_t nres, struct quota_task *qt, struct quota_res *qr)
{
	size_t	 i;

	for (i = 0; i < nres && i < TASK_MAX_RESOURCES; i++) {
		qr[i].name = res[i].name;
		qr[i].value = res[i].value;
	}
	memset(qt, 0, sizeof *qt);
	qt->id = t->id;
	qt->parent = t->parent;
	qt->root = t->root;
	qt->depth = t->depth;
	qt->res = qr;
	qt->nres = i;
}

/* The warm spares a pool holds or is about to (the larger of the two). */
static long
dpool_spares(const struct dpool *q)
{
	long	 patched = q->spare_patched > 0 ? q->spare_patched : 0;

	return (patched > q->ws.target ? patched : q->ws.target);
}

static long
dns_spares(const struct dns *ns)
{
	const struct dpool *q;
	long		 n = 0;

	LIST_FOREACH(q, &ns->d->pools, entry)
		if (q->ns == ns)
			n += dpool_spares(q);
	return (n);
}

/*
 * Deferred tasks of ns that wait for a sandbox slot (quota.maxSandboxes),
 * counted up to max: the warm spares give up that many slots to them.
 */
static long
dns_waiting_for_slots(const struct dns *ns, long max)
{
	const struct dtask *t;
	long		 n = 0;

	/* Up to 10000 deferred: stop as soon as max are found. */
	for (t = TAILQ_FIRST(&ns->defer_desc); t != NULL && n < max;
	    t = TAILQ_NEXT(t, dq))
		if (strcmp(t->why, "quota.maxSandboxes") == 0)
			n++;
	for (t = TAILQ_FIRST(&ns->defer_roots); t != NULL && n < max;
	    t = TAILQ_NEXT(t, dq))
		if (strcmp(t->why, "quota.maxSandboxes") == 0)
			n++;
	return (n);
}

/*
 * What the task is charged (charge.h): its requests against the pool's
 * floor, which is spec.sandbox.defaultResources when set, else the
 * requests of the warm pool's SandboxTemplate as last read.  Until the
 * template has been read once, a namespace whose AgentQuota limits
 * resources cannot know the charge: the task waits (deferred,
 * sandbox.templateUnknown, whatever onExceeded says: it is the cluster's
 * wait, not the task's fault) rather than being charged less than its pod
 * will request.  Without resource limits nothing is at stake and the task
 * goes on with what is known.  Returns QUOTA_ADMIT with out filled, or
 * the verdict with qd filled.
 */
static enum quota_verdict
dtask_charge(struct dtask *t, struct task_resource *out, size_t *nout,
    struct quota_decision *qd)
{
	struct dpool	*p = t->pool;
	const struct quota_config *qc;
	struct task_resource def[TASK_MAX_RESOURCES];
	const struct task_resource *floor = NULL;
	size_t		 i, nfloor = 0;
	int		 n;

	memset(qd, 0, sizeof *qd);
	if (p != NULL && p->cfg->ndefault_resources > 0) {
		for (i = 0; i < p->cfg->ndefault_resources &&
		    i < TASK_MAX_RESOURCES; i++) {
			as_strlcpy(def[i].name,
			    p->cfg->default_resources[i].name,
			    sizeof def[i].name);
			def[i].value = p->cfg->default_resources[i].value;
		}
		floor = def;
		nfloor = i;
	} else if (p != NULL && p->tpl_known) {
		floor = p->tpl_res;
		nfloor = p->tpl_nres;
	} else if (p != NULL && (qc = config_quota_for(t->ns->d->config,
	    t->ns->name)) != NULL && qc->nresources > 0) {
		qd->verdict = QUOTA_DEFER;
		as_strlcpy(qd->reason, "sandbox.templateUnknown",
		    sizeof qd->reason);
		snprintf(qd->detail, sizeof qd->detail, "the requests of warm "
		    "pool %.48s's SandboxTemplate are not known yet: %.100s",
		    p->cfg->warm_pool, p->tpl_err[0] != '\0' ? p->tpl_err :
		    "not read yet");
		return (QUOTA_DEFER);
	}
	if ((n = charge_task(t->res, t->nres, floor, nfloor, out)) < 0) {
		qd->verdict = QUOTA_REJECT;
		as_strlcpy(qd->reason, "task.badResources", sizeof qd->reason);
		snprintf(qd->detail, sizeof qd->detail, "\"resources\" and "
		    "the pool's requests name more than %d resources together",
		    TASK_MAX_RESOURCES);
		return (QUOTA_REJECT);
	}
	*nout = (size_t)n;
	return (QUOTA_ADMIT);
}

/*
 * Runs admission (quota.h) for a task holding its message, on what it is
 * charged (dtask_charge).  Returns 1 when admitted (the caller goes on to
 * claim; t->res is now the charge, which the claim's annotation carries),
 * 0 when it was deferred (queued, message kept unacked) or rejected
 * (dead-lettered).
 */
static int
dtask_admit(struct dtask *t)
{
	struct dns	*ns = t->ns;
	struct quota_task qt;
	struct quota_res qr[TASK_MAX_RESOURCES];
	struct quota_decision qd;
	struct task_resource charged[TASK_MAX_RESOURCES];
	size_t		 ncharged = 0;
	double		 now = as_mono_now();

	switch (dtask_charge(t, charged, &ncharged, &qd)) {
	case QUOTA_ADMIT:
		dtask_quota_task(t, charged, ncharged, &qt, qr);
		quota_check(ns->quota, &qt, now, &qd);
		break;
	case QUOTA_REJECT:
		/* The task's own fault, not a quota decision. */
		if (t->st == T_DEFERRED)
			dtask_undefer(t);
		dtask_fail(t, qd.reason, qd.detail);
		return (0);
	case QUOTA_DEFER:
		break;
	}
	if (qd.verdict == QUOTA_ADMIT) {
		quota_count(ns->quota, QUOTA_ADMIT);
		quota_admit(ns->quota, &qt, now);
		t->admitted = 1;
		t->why[0] = '\0';
		free(t->res);
		t->res = NULL;
		t->nres = ncharged;
		if (ncharged > 0) {
			t->res = xcalloc(ncharged, sizeof *t->res);
			memcpy(t->res, charged, ncharged * sizeof *t->res);
		}
		return (1);
	}
	if (qd.verdict == QUOTA_REJECT &&
	    strcmp(qd.reason, "quota.maxSandboxes") == 0 && dns_spares(ns) > 0) {
		/*
		 * Idle warm spares hold the slots: a task comes before them.
		 * It waits while dpool_size() shrinks the spares, and is
		 * rejected only if no slot is left once they are gone.
		 */
		qd.verdict = QUOTA_DEFER;
		snprintf(qd.detail + strlen(qd.detail), sizeof qd.detail -
		    strlen(qd.detail), "; waiting for warm spares to give way");
	}
	if (qd.verdict == QUOTA_REJECT) {
		quota_count(ns->quota, QUOTA_REJECT);
		if (t->pool != NULL)
			t->pool->rejected++;
		if (t->st == T_DEFERRED)
			dtask_undefer(t);
		dtask_quota_event(t, qd.reason, qd.detail, 1);
		dtask_fail(t, qd.reason, qd.detail);
		return (0);
	}
	/* Defer: keep the message, wait in the namespace's FIFO. */
	if (t->st != T_DEFERRED) {
		quota_count(ns->quota, QUOTA_DEFER);
		dtask_set_state(t, T_DEFERRED);
		if (t->parent != NULL)
			TAILQ_INSERT_TAIL(&ns->defer_desc, t, dq);
		else
			TAILQ_INSERT_TAIL(&ns->defer_roots, t, dq);
		ns->ndeferred++;
		if (t->pool != NULL) {
			t->pool->deferred++;
			dpool_window(t->pool);
		}
		if (strcmp(t->why, qd.reason) != 0 && t->pool != NULL)
			log_info("dispatch", "%s: task %s deferred: %s: %s",
			    t->pool->id, t->id, qd.reason, qd.detail);
		if (strncmp(qd.reason, "sandbox.", 8) != 0)
			dtask_quota_event(t, qd.reason, qd.detail, 0);
	}
	as_strlcpy(t->why, qd.reason, sizeof t->why);
	free(t->why_detail);
	t->why_detail = xstrdup(qd.detail);
	return (0);
}

/* Frees now if nothing is pending, else once the last completion runs. */
static void
dtask_maybe_free(struct dtask *t)
{
	t->doomed = 1;
	if (t->admitted) {
		/* The sandbox is gone (or never came): capacity frees now. */
		t->admitted = 0;
		quota_release(t->ns->quota, t->id, as_mono_now());
		dns_kick(t->ns);
	}
	if (t->st == T_DEFERRED) {
		dtask_undefer(t);
		t->st = T_RELEASING;
	}
	if (t->op || t->req != NULL)
		return;
	dtask_set_waiting(t, 0);
	if (t->pool != NULL)
		t->pool->live--;
	dns_remove(t->ns, t);
	if (t->msg != NULL)
		consumer_msg_free(t->msg);	/* the broker redelivers it */
	free(t->id);
	free(t->parent);
	free(t->root);
	free(t->res);
	free(t->why_detail);
	free(t->fail_detail);
	free(t);
}

static struct dpool *
dns_pool_by_name(struct dns *ns, const char *name)
{
	struct dpool	*p;
	char		 label[64];

	/* name is the claim's pool label: compare reduced forms. */
	LIST_FOREACH(p, &ns->d->pools, entry) {
		if (p->ns != ns)
			continue;
		task_pool_label(p->cfg->name, label);
		if (strcmp(label, name) == 0)
			return (p);
	}
	return (NULL);
}

/* Dead letters. */

struct dl_op {
	struct dpool	*pool;		/* NULL once the pool is gone */
	char		 reason[48];
	struct dtask	*t;		/* task waiting on it, or NULL */
};

static void
dl_done(int err, const char *errmsg, void *arg)
{
	struct dl_op	*op = arg;
	struct dtask	*t = op->t;

	if (err != -AS_ECANCELED && op->pool != NULL) {
		if (err == 0)
			dpool_dead(op->pool, op->reason);
		else {
			op->pool->dead_letter_errors++;
			log_warn("dispatch", "%s: cannot dead-letter (%s); the "
			    "message stays with the broker and comes back: %s",
			    op->pool->id, op->reason, errmsg);
		}
	}
	free(op);
	if (t != NULL) {
		t->op = 0;
		if (t->doomed)
			dtask_maybe_free(t);
	}
}

/*
 * The record of msg: task.tooLarge never copies the message whole (a cut
 * message has only its prefix anyway), every other reason does.
 */
static char *
dead_letter_record(struct dpool *p, struct consumer_msg *msg,
    const char *reason, const char *detail, const char *task_id,
    size_t *lenp)
{
	unsigned char	 sha[AS_SHA256_LEN];

	if (msg->truncated)
		return (task_dead_letter_record_cut(reason, detail, p->cfg->ns,
		    p->cfg->name, task_id, msg->body, msg->len, msg->size,
		    msg->sha256, as_wall_now(), lenp));
	if (strcmp(reason, "task.tooLarge") == 0) {
		as_sha256(msg->body, msg->len, sha);
		return (task_dead_letter_record_cut(reason, detail, p->cfg->ns,
		    p->cfg->name, task_id, msg->body, msg->len, msg->len, sha,
		    as_wall_now(), lenp));
	}
	return (task_dead_letter_record(reason, detail, p->cfg->ns,
	    p->cfg->name, task_id, msg->body, msg->len, as_wall_now(), lenp));
}

/*
 * Dead-letters msg (taken over) of pool p with a reason.  t, when given, is
 * held until the operation ends.
 */
static void
dead_letter(struct dpool *p, struct dtask *t, struct consumer_msg *msg,
    const char *reason, const char *detail, const char *task_id)
{
	struct dl_op	*op;
	char		*rec;
	size_t		 len;

	log_info("dispatch", "%s: task %s dead-lettered to %s.rejected: %s: %s",
	    p->id, task_id != NULL ? task_id : "(unparsed)",
	    p->cfg->source.queue, reason, detail);
	recent_add(p->d, p->cfg->ns, task_id, reason, detail);
	rec = dead_letter_record(p, msg, reason, detail, task_id, &len);
	op = xcalloc(1, sizeof *op);
	op->pool = p;
	op->t = t;
	as_strlcpy(op->reason, reason, sizeof op->reason);
	if (t != NULL)
		t->op = 1;
	if (p->cons == NULL || p->ct->dead_letter(p->cons, msg, rec, len,
	    dl_done, op) != 0) {
		/* Not taken: the broker keeps it; it comes back. */
		consumer_msg_free(msg);
		p->dead_letter_errors++;
		if (t != NULL)
			t->op = 0;
		free(op);
	}
	free(rec);
}

/* Fails a task: dead-letter its message (if held), then drop its claim. */
static void
dtask_fail(struct dtask *t, const char *reason, const char *detail)
{
	struct consumer_msg *msg = t->msg;

	if (t->op && msg != NULL) {
		/* A hand-off or marker check is in flight: it decides. */
		if (t->fail_reason[0] == '\0') {
			as_strlcpy(t->fail_reason, reason,
			    sizeof t->fail_reason);
			free(t->fail_detail);
			t->fail_detail = xstrdup(detail != NULL ? detail : "");
		}
		return;
	}
	t->msg = NULL;
	if (strncmp(reason, "claim.", 6) == 0)
		dpool_event(t->pool, 1, "ClaimFailed", "Claim", "task %s: claim "
		    "%s failed: %s: %s", t->id, t->claim, reason, detail);
	if (msg != NULL && t->pool != NULL)
		dead_letter(t->pool, t, msg, reason, detail, t->id);
	else if (msg != NULL)
		consumer_msg_free(msg);
	else
		log_info("dispatch", "%s/%s: task %s failed after hand-off: "
		    "%s: %s", t->ns->name, t->claim, t->id, reason, detail);
	dtask_release(t);
}

/*
 * The consumer operation in flight has ended on a task that failed
 * meanwhile (dtask_fail): one that did not reach its sandbox is failed now
 * (its message dead-lettered); one that did (handed) has its message acked
 * and its claim released, as a task that failed after its hand-off.
 */
static void
dtask_settle(struct dtask *t, int handed)
{
	char	 reason[48];
	char	*detail = t->fail_detail;

	as_strlcpy(reason, t->fail_reason, sizeof reason);
	t->fail_reason[0] = '\0';
	t->fail_detail = NULL;
	if (!handed)
		dtask_fail(t, reason, detail);
	else {
		log_info("dispatch", "%s/%s: task %s failed after hand-off: "
		    "%s: %s", t->ns->name, t->claim, t->id, reason, detail);
		dtask_release(t);
	}
	free(detail);
}

/* Acks and releases. */

static void
ack_done(int err, const char *errmsg, void *arg)
{
	struct dtask	*t = arg;

	t->op = 0;
	if (err == -AS_ECANCELED || t->doomed) {
		if (t->doomed)
			dtask_maybe_free(t);
		return;
	}
	if (err != 0 && t->pool != NULL)
		log_warn("dispatch", "%s: ack of task %s failed, the broker "
		    "will redeliver it (handed off already; it will not be "
		    "handed off twice): %s", t->pool->id, t->id, errmsg);
	if (t->st == T_ACKING)
		dtask_set_state(t, T_RUNNING);
}

static void
dtask_ack(struct dtask *t)
{
	struct consumer_msg *msg = t->msg;

	t->msg = NULL;
	if (msg == NULL)
		return;
	if (t->pool == NULL || t->pool->cons == NULL) {
		consumer_msg_free(msg);
		return;
	}
	t->op = 1;
	if (t->pool->ct->ack(t->pool->cons, msg, ack_done, t) != 0) {
		t->op = 0;
		consumer_msg_free(msg);
	}
}

static void
delete_done(const struct k8s_response *r, void *arg)
{
	struct dtask	*t = arg;

	t->req = NULL;
	if (r->err == -AS_ECANCELED || t->doomed) {
		if (t->doomed)
			dtask_maybe_free(t);
		return;
	}
	if (r->err == 0 || r->err == -AS_ENOTFOUND) {
		/* The DELETED event frees the record; 404: it is gone. */
		if (r->err == -AS_ENOTFOUND)
			dtask_maybe_free(t);
		return;
	}
	log_warn("dispatch", "%s/%s: cannot delete claim, retrying: %s",
	    t->ns->name, t->claim, r->message);
	t->retry_at = as_mono_now() + as_backoff(0.5, 30, t->attempts++);
}

/* Deletes the claim (if any) and lets the record go with it. */
static void
dtask_release(struct dtask *t)
{
	char	 path[512];

	dtask_set_state(t, T_RELEASING);
	t->retry_at = 0;
	if (!t->claim_exists) {
		dtask_maybe_free(t);
		return;
	}
	if (t->req != NULL)
		return;		/* a retry or the DELETED event follows */
	snprintf(path, sizeof path, CLAIMS_API "/namespaces/%s/sandboxclaims/%s",
	    t->ns->name, t->claim);
	/*
	 * Foreground: the claim goes (and its DELETED event comes) only once
	 * its Sandbox is gone, so the quota never frees a sandbox that still
	 * exists (ref/agent-sandbox-api.md section 9, step 5).
	 */
	t->req = t->ns->d->ops->request(t->ns->d->k8s, "DELETE", path,
	    "application/json", "{\"propagationPolicy\":\"Foreground\"}",
	    delete_done, t);
	if (t->req == NULL)
		t->retry_at = as_mono_now() + 1;
}

/* The claim as the informer or a response shows it. */

static void
dtask_ready(struct dtask *t, const struct claim_view *v)
{
	struct dpool	*p = t->pool;
	double		 lat = -1;

	as_strlcpy(t->sandbox, v->sandbox, sizeof t->sandbox);
	t->launch = strcmp(v->sandbox, v->name) == 0 ? L_COLD : L_WARM;
	if (t->t_claim > 0)
		lat = as_mono_now() - t->t_claim;
	else if (v->requested_at > 0)
		lat = as_wall_now() - v->requested_at;
	if (p != NULL) {
		if (t->launch == L_COLD) {
			p->claims_cold++;
			if (lat >= 0) {
				hist_add(&p->ready_cold, lat);
				warmpool_cold_sample(&p->ws, &p->wp, lat);
			}
		} else {
			p->claims_warm++;
			if (lat >= 0)
				hist_add(&p->ready_warm, lat);
		}
	}
	if (t->msg != NULL)
		dtask_handoff(t);
	else
		/*
		 * Known from the claim only: its message was acked before a
		 * restart (handed off), or comes back and joins then.
		 */
		dtask_set_state(t, T_RUNNING);
}

static void
dtask_apply(struct dtask *t, const struct claim_view *v)
{
	char	 reason[96];

	t->claim_exists = 1;
	if (v->shutdown_time > 0)
		t->shutdown_time = v->shutdown_time;
	if (v->sandbox[0] != '\0')
		as_strlcpy(t->sandbox, v->sandbox, sizeof t->sandbox);
	if (t->st == T_RELEASING || t->doomed)
		return;
	if (v->finished) {
		if (t->msg != NULL && !t->handed_off)
			dtask_fail(t, "claim.finishedBeforeHandoff",
			    "the sandbox finished before the task reached it");
		else
			dtask_release(t);
		return;
	}
	if (task_claim_terminal(v) || v->deleting) {
		if (t->pool != NULL && !t->handed_off)
			t->pool->claims_failed++;
		snprintf(reason, sizeof reason, "claim.%s", v->deleting ?
		    "deleted" : v->ready_reason);
		dtask_fail(t, reason, v->deleting ? "the claim is being "
		    "deleted" : v->ready_message);
		return;
	}
	if (t->st == T_WAITING && v->sandbox[0] != '\0' && v->ready == 1)
		dtask_ready(t, v);
}

/*
 * The informer may have seen the claim change while our request was in
 * flight (its events are not applied then): catch up from its cache.
 */
static void
dtask_apply_cached(struct dtask *t)
{
	const cJSON	*obj;
	struct claim_view v;
	char		 err[128];

	if (t->doomed || t->st == T_RELEASING || t->ns->claims == NULL)
		return;
	obj = t->ns->d->ops->informer_get(t->ns->claims, t->ns->name, t->claim);
	if (obj != NULL && task_claim_parse(obj, &v, err, sizeof err) == 0 &&
	    strcmp(v.task_id, t->id) == 0)
		dtask_apply(t, &v);
}

/* Claim creation. */

static void
get_done(const struct k8s_response *r, void *arg)
{
	struct dtask	*t = arg;
	struct claim_view v;
	cJSON		*obj;
	char		 err[128];

	t->req = NULL;
	if (r->err == -AS_ECANCELED || t->doomed) {
		if (t->doomed)
			dtask_maybe_free(t);
		return;
	}
	if (r->err == -AS_ENOTFOUND) {
		dtask_claim(t);		/* gone in between: make it again */
		return;
	}
	obj = r->err == 0 ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
	if (obj == NULL || task_claim_parse(obj, &v, err, sizeof err) != 0) {
		cJSON_Delete(obj);
		t->retry_at = as_mono_now() + as_backoff(0.2, 10,
		    t->attempts++);
		return;
	}
	cJSON_Delete(obj);
	if (strcmp(v.task_id, t->id) != 0) {
		/* Not ours (post_done assumed it was): never delete it. */
		t->claim_exists = 0;
		dtask_fail(t, "claim.nameConflict", "a claim of this name "
		    "exists for another task");
		return;
	}
	dtask_set_state(t, T_WAITING);
	dtask_apply(t, &v);
	dtask_apply_cached(t);
}

static void
post_done(const struct k8s_response *r, void *arg)
{
	struct dtask	*t = arg;
	struct claim_view v;
	cJSON		*obj;
	char		 err[128], path[512];

	t->req = NULL;
	if (r->err == -AS_ECANCELED || t->doomed) {
		if (t->doomed)
			dtask_maybe_free(t);
		return;
	}
	if (r->err == 0) {
		t->claim_exists = 1;
		t->attempts = 0;
		dtask_set_state(t, T_WAITING);
		obj = cJSON_ParseWithLength(r->body, r->body_len);
		if (obj != NULL && task_claim_parse(obj, &v, err,
		    sizeof err) == 0)
			dtask_apply(t, &v);
		cJSON_Delete(obj);
		dtask_apply_cached(t);
		return;
	}
	if (r->err == -AS_ECONFLICT) {
		/* An earlier attempt made it: adopt (DESIGN.md 7 step 4). */
		t->claim_exists = 1;
		snprintf(path, sizeof path, CLAIMS_API
		    "/namespaces/%s/sandboxclaims/%s", t->ns->name, t->claim);
		t->req = t->ns->d->ops->request(t->ns->d->k8s, "GET", path,
		    NULL, NULL, get_done, t);
		if (t->req == NULL)
			t->retry_at = as_mono_now() + 1;
		return;
	}
	if ((r->code == 400 || r->code == 422 || r->code == 404) &&
	    t->pool != NULL) {
		dtask_fail(t, "claim.rejected", r->message);
		return;
	}
	/*
	 * 403 (RBAC, or a ResourceQuota counting claims), 5xx after the
	 * client's retries, timeouts: ours to fix, not the task's; keep the
	 * message and try again, until readyTimeoutSeconds.
	 */
	if (t->attempts == 0 && t->pool != NULL)
		log_warn("dispatch", "%s: cannot create claim %s for task %s, "
		    "will retry: %s", t->pool->id, t->claim, t->id, r->message);
	t->retry_at = as_mono_now() + as_backoff(0.5, 10, t->attempts++);
}

static void
dtask_claim(struct dtask *t)
{
	struct dpool	*p = t->pool;
	struct claim_spec cs;
	char		 path[512];
	char		*body;
	size_t		 len;

	dtask_set_state(t, T_CLAIMING);
	t->retry_at = 0;
	if (p == NULL) {
		dtask_release(t);
		return;
	}
	memset(&cs, 0, sizeof cs);
	cs.ns = t->ns->name;
	cs.name = t->claim;
	cs.pool = p->cfg->name;
	cs.warm_pool = p->cfg->warm_pool;
	cs.task_id = t->id;
	cs.parent_id = t->parent;
	cs.root_id = t->root;
	cs.depth = t->depth;
	cs.traceparent = NULL;
	cs.instance = p->d->instance;
	cs.wall_now = as_wall_now();
	cs.ttl_seconds = p->cfg->claim_ttl_seconds;
	if (t->traceparent[0] != '\0')
		cs.traceparent = t->traceparent;
	cs.resources = t->res;		/* rebuilt from the claim at restart */
	cs.nresources = t->nres;
	body = task_claim_body(&cs, &len);
	snprintf(path, sizeof path, CLAIMS_API "/namespaces/%s/sandboxclaims",
	    t->ns->name);
	if (t->t_claim == 0)
		t->t_claim = as_mono_now();
	t->req = p->d->ops->request(p->d->k8s, "POST", path,
	    "application/json", body, post_done, t);
	free(body);
	if (t->req == NULL)
		t->retry_at = as_mono_now() + 1;
}

/* Hand-off. */

static void
handoff_done(int err, int outcome, const char *errmsg, void *arg)
{
	struct dtask	*t = arg;
	struct dpool	*p = t->pool;

	t->op = 0;
	if (err == -AS_ECANCELED || t->doomed) {
		if (t->doomed)
			dtask_maybe_free(t);
		return;
	}
	if (err != 0 && t->fail_reason[0] != '\0') {
		dtask_settle(t, 0);
		return;
	}
	if (err != 0) {
		if (p != NULL)
			log_warn("dispatch", "%s: hand-off of task %s to %s "
			    "failed, retrying: %s", p->id, t->id, t->sandbox,
			    errmsg);
		dtask_set_state(t, T_WAITING);
		t->retry_at = as_mono_now() + as_backoff(0.2, 5,
		    t->attempts++);
		return;
	}
	t->handed_off = 1;
	t->attempts = 0;
	if (p != NULL && t->msg != NULL) {
		hist_add(&p->handoff, as_mono_now() - t->msg->received);
		if (outcome == CONSUMER_HANDOFF_DONE)
			p->handed_off++;
	}
	dtask_set_state(t, T_ACKING);
	dtask_ack(t);
	if (t->fail_reason[0] != '\0')
		dtask_settle(t, 1);
	else if (outcome == CONSUMER_HANDOFF_ELSEWHERE) {
		/*
		 * The marker says this task went to another sandbox before:
		 * an earlier claim of the same name, since gone, so the task
		 * ran and this message is a late redelivery (its ack was
		 * lost).  The claim made for it now is not needed.
		 */
		if (p != NULL)
			log_info("dispatch", "%s: task %s ran before in another "
			    "sandbox; redelivered message acked, claim %s "
			    "released", p->id, t->id, t->claim);
		dtask_release(t);
	}
}

static void
dtask_handoff(struct dtask *t)
{
	struct dpool	*p = t->pool;
	struct handoff_spec hs;
	char		*body;
	size_t		 len;

	if (p == NULL || p->cons == NULL || t->msg == NULL) {
		dtask_set_state(t, T_WAITING);
		t->retry_at = as_mono_now() + 1;
		return;
	}
	memset(&hs, 0, sizeof hs);
	hs.ns = t->ns->name;
	hs.pool = p->cfg->name;
	hs.claim = t->claim;
	hs.sandbox = t->sandbox;
	hs.task_id = t->id;
	hs.parent_id = t->parent;
	hs.root_id = t->root;
	hs.depth = t->depth;
	body = task_handoff_body(&hs, t->msg->body, t->msg->len, &len);
	dtask_set_state(t, T_HANDOFF);
	t->retry_at = 0;
	t->op = 1;
	if (p->ct->handoff(p->cons, t->ns->name, t->sandbox, t->id, body, len,
	    handoff_done, t) != 0) {
		t->op = 0;
		dtask_set_state(t, T_WAITING);
		t->retry_at = as_mono_now() + 1;
	}
	free(body);
}

/*
 * A redelivered message with no live task behind it: either the task never
 * got far, or it ran and ended and only the ack was lost.  The hand-off
 * marker tells which, before a claim is made for nothing.
 */
static void
check_done(int err, int yes, const char *errmsg, void *arg)
{
	struct dtask	*t = arg;

	t->op = 0;
	if (err == -AS_ECANCELED || t->doomed) {
		if (t->doomed)
			dtask_maybe_free(t);
		return;
	}
	if (err == 0 && yes) {
		if (t->pool != NULL)
			log_info("dispatch", "%s: task %s was handed off "
			    "before and has ended; acking its redelivered "
			    "message", t->pool->id, t->id);
		dtask_set_state(t, T_ACKING);
		dtask_ack(t);
		t->fail_reason[0] = '\0';
		dtask_release(t);
		return;
	}
	if (t->fail_reason[0] != '\0') {
		dtask_settle(t, 0);
		return;
	}
	if (err != 0 && t->pool != NULL)
		log_warn("dispatch", "%s: cannot check whether task %s ran "
		    "before (%s); claiming", t->pool->id, t->id, errmsg);
	dtask_claim(t);
}

static void
dtask_check(struct dtask *t)
{
	struct dpool	*p = t->pool;

	dtask_set_state(t, T_CLAIMING);
	t->op = 1;
	if (p->ct->handed_off(p->cons, t->ns->name, t->id, check_done,
	    t) != 0) {
		t->op = 0;
		dtask_claim(t);
	}
}

/* An admitted task with its message: check the marker, or claim. */
static void
dtask_go(struct dtask *t)
{
	t->ready_by = as_mono_now() + (t->pool != NULL ?
	    (double)t->pool->cfg->ready_timeout_seconds : 180.0);
	if (t->msg != NULL && t->msg->redelivered && t->pool != NULL &&
	    t->pool->ct->handed_off != NULL)
		dtask_check(t);
	else
		dtask_claim(t);
}

/*
 * Re-checks deferred tasks, descendants first (they finish trees and free
 * what their parents wait for), in arrival order.  New roots are looked at
 * only when no descendant waits for namespace-wide capacity, so a stream of
 * roots cannot starve the trees already running.
 */
/*
 * One deferred queue: admits what fits, in order; returns 1 when a task
 * still waits for namespace-wide capacity ("quota.*" reasons), which later
 * tasks would not fit either.  *n counts checks against PUMP_MAX.
 */
static int
dns_pump_queue(struct dns *ns, struct dtask *t, int *n, int stop)
{
	struct dtask	*next;
	int		 blocked = 0;

	(void)ns;
	for (; t != NULL && *n < PUMP_MAX; t = next, (*n)++) {
		next = TAILQ_NEXT(t, dq);
		if (t->op || t->doomed)
			continue;
		if (dtask_admit(t)) {
			dtask_undefer(t);
			dtask_go(t);
		} else if (t->st == T_DEFERRED &&
		    strncmp(t->why, "quota.", 6) == 0) {
			blocked = 1;
			if (stop)
				break;
		}
	}
	return (blocked);
}

static void
dns_pump(struct dns *ns)
{
	int	 n = 0;

	ns->pump = 0;
	dns_replicas(ns);	/* spares may have shrunk since */
	if (!dns_pump_queue(ns, TAILQ_FIRST(&ns->defer_desc), &n, 0))
		(void)dns_pump_queue(ns, TAILQ_FIRST(&ns->defer_roots), &n, 1);
}

static void
dispatcher_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dispatcher *d = w->data;
	struct dns	*ns;

	(void)loop;
	(void)revents;
	LIST_FOREACH(ns, &d->nss, entry)
		if (ns->pump)
			dns_pump(ns);
}

/* Capacity freed in ns: re-check its deferred tasks on the next turn. */
static void
dns_kick(struct dns *ns)
{
	if (ns->ndeferred == 0 || ns->pump)
		return;
	ns->pump = 1;
	if (!ev_is_active(&ns->d->kick)) {
		ev_timer_set(&ns->d->kick, 0., 0.);
		ev_timer_start(ns->d->loop, &ns->d->kick);
	}
}

/*
 * The consumer's window: prefetch messages in progress, plus those
 * deferred (they wait in our FIFO, not in the broker); no more once the
 * namespace holds MAX_DEFERRED (backpressure to the source).
 */
static void
dpool_window(struct dpool *p)
{
	long	 w;

	if (p->cons == NULL)
		return;
	if (p->ns->ndeferred >= MAX_DEFERRED)
		w = p->deferred;
	else
		w = p->cfg->source.prefetch + p->deferred;
	if (w > 65535)
		w = 65535;
	p->ct->set_window(p->cons, (int)w);
}

static void
recent_add(struct dispatcher *d, const char *ns, const char *id,
    const char *reason, const char *detail)
{
	struct recent	*r;

	if (id == NULL || *id == '\0')
		return;
	if (d->recent == NULL)
		d->recent = xcalloc(RECENT, sizeof *d->recent);
	r = &d->recent[d->nrecent++ % RECENT];
	as_strlcpy(r->ns, ns, sizeof r->ns);
	as_strlcpy(r->id, id, sizeof r->id);
	as_strlcpy(r->reason, reason, sizeof r->reason);
	as_strlcpy(r->detail, detail != NULL ? detail : "", sizeof r->detail);
	r->wall = as_wall_now();
}

/* Messages from a pool's consumer. */

static void
late_ack_done(int err, const char *errmsg, void *arg)
{
	struct dpool	*p = arg;

	if (err != 0 && err != -AS_ECANCELED)
		log_warn("dispatch", "%s: ack of a late redelivery failed, it "
		    "comes back: %s", p->id, errmsg);
}

static void
dpool_deliver(struct consumer *c, struct consumer_msg *msg, void *arg)
{
	struct dpool	*p = arg;
	struct dns	*ns = p->ns;
	struct task	*tk;
	struct task_error te;
	struct dtask	*t, *par;
	char		 detail[640];
	double		 now = as_mono_now();
	long		 before = p->ws.target;

	(void)c;
	p->received++;
	if (msg->redelivered)
		p->redelivered++;
	warmpool_arrival(&p->ws, &p->wp, now, 1);
	if (before == 0)
		dpool_size(p, now);	/* wake the pool in this tick */
	tk = xmalloc(sizeof *tk);
	if (msg->truncated) {
		snprintf(detail, sizeof detail, "the message is %" PRIu64 " "
		    "bytes, more than the limit of %ld; the record keeps its "
		    "first bytes, its size and its SHA-256", msg->size,
		    p->cfg->max_task_bytes);
		dead_letter(p, NULL, msg, "task.tooLarge", detail, NULL);
		goto out;
	}
	if (task_parse(msg->body, msg->len, (size_t)p->cfg->max_task_bytes,
	    tk, &te) != 0) {
		/* task_parse keeps a valid id: the record names the task. */
		dead_letter(p, NULL, msg, te.reason, te.detail,
		    tk->id[0] != '\0' ? tk->id : NULL);
		goto out;
	}
	if (tk->deadline > 0 && tk->deadline < as_wall_now()) {
		dead_letter(p, NULL, msg, "task.deadlineExceeded",
		    "the task's deadline passed before it was dispatched",
		    tk->id);
		goto out;
	}
	if ((t = dns_find(ns, tk->id)) != NULL) {
		if (t->pool != NULL && t->pool != p) {
			/*
			 * Task ids are unique in a namespace (DESIGN.md 6):
			 * another pool's live task is not this message's,
			 * and nothing of it goes through the other pool's
			 * consumer.
			 */
			snprintf(detail, sizeof detail, "task %s is live in "
			    "pool %s; task ids are unique in a namespace",
			    tk->id, t->pool->id);
			dead_letter(p, NULL, msg, "task.duplicate", detail,
			    tk->id);
		} else if (t->msg != NULL || t->op) {
			snprintf(detail, sizeof detail, "task %s is already "
			    "being dispatched from another message", tk->id);
			dead_letter(p, NULL, msg, "task.duplicate", detail,
			    tk->id);
		} else if ((t->st == T_RELEASING || t->doomed) &&
		    !t->handed_off && !t->rebuilt) {
			/*
			 * It failed here and never ran: its own message was
			 * dead-lettered; an ack would drop this one unseen.
			 */
			snprintf(detail, sizeof detail, "task %s failed and "
			    "its claim is being released", tk->id);
			dead_letter(p, NULL, msg, "task.duplicate", detail,
			    tk->id);
		} else if (t->st == T_RELEASING || t->doomed) {
			/* It ran; this is a late redelivery. */
			log_info("dispatch", "%s: task %s already finished; "
			    "acking the redelivered message", p->id, tk->id);
			if (p->ct->ack(p->cons, msg, late_ack_done, p) != 0)
				consumer_msg_free(msg);
		} else {
			/* Rebuilt from its claim: the message joins it. */
			t->msg = msg;
			if (t->pool == NULL) {
				t->pool = p;
				p->live++;
			}
			if (t->st == T_RUNNING && t->sandbox[0] != '\0')
				dtask_handoff(t);
			else if (t->st == T_WAITING &&
			    t->ready_by == 0)
				t->ready_by = now +
				    (double)p->cfg->ready_timeout_seconds;
		}
		goto out;
	}
	if (tk->parent[0] != '\0') {
		par = dns_find(ns, tk->parent);
		if (par == NULL || par->st == T_RELEASING ||
		    par->st == T_DEFERRED || par->doomed) {
			snprintf(detail, sizeof detail, "parent %s is not a "
			    "live task of namespace %s", tk->parent, ns->name);
			dpool_event(p, 1, "CascadeRejected", "Admit", "task %s "
			    "rejected: cascade.unknownParent: %s", tk->id,
			    detail);
			dead_letter(p, NULL, msg, "cascade.unknownParent",
			    detail, tk->id);
			goto out;
		}
		t = dtask_new(ns, p, tk->id, tk->parent, par->root,
		    par->depth + 1);
	} else
		t = dtask_new(ns, p, tk->id, NULL, tk->id, 0);
	t->msg = msg;
	as_strlcpy(t->traceparent, tk->traceparent, sizeof t->traceparent);
	if (tk->nresources > 0) {
		t->res = xcalloc(tk->nresources, sizeof *t->res);
		memcpy(t->res, tk->resources, tk->nresources * sizeof *t->res);
		t->nres = tk->nresources;
	}
	t->ready_by = now + (double)p->cfg->ready_timeout_seconds;
	if (dtask_admit(t))
		dtask_go(t);
out:
	free(tk);
}

static void
dpool_state(struct consumer *c, int up, const char *errmsg, void *arg)
{
	struct dpool	*p = arg;

	(void)c;
	if (up && !p->up)
		log_info("dispatch", "%s: consuming %s %s", p->id,
		    p->cfg->source.type, p->cfg->source.queue);
	else if (!up && (p->up || strcmp(p->src_err, errmsg) != 0))
		log_warn("dispatch", "%s: source down: %s", p->id, errmsg);
	if (!up && (p->up || p->src_err[0] == '\0'))
		dpool_event(p, 1, "SourceError", "Consume", "cannot consume "
		    "%s %s: %s", p->cfg->source.type, p->cfg->source.queue,
		    errmsg);
	p->up = up;
	as_strlcpy(p->src_err, up ? "" : errmsg, sizeof p->src_err);
}

static void
dpool_start(struct dpool *p)
{
	if (p->started || p->cons == NULL)
		return;
	dpool_window(p);
	if (p->ct->start(p->cons, dpool_deliver, dpool_state, p) != 0) {
		log_error("dispatch", "%s: cannot start consuming", p->id);
		return;
	}
	p->started = 1;
}

/* Warm-pool sizing. */

static void
scale_done(int err, const struct k8s_scale *sc, const char *msg, void *arg)
{
	struct dpool	*p = arg;

	p->scale_req = NULL;
	if (err == -AS_ECANCELED)
		return;
	p->scale_read = as_mono_now();
	if (err != 0) {
		if (strcmp(p->k8s_err, msg) != 0)
			log_warn("dispatch", "%s: warm pool %s: %s", p->id,
			    p->cfg->warm_pool, msg);
		as_strlcpy(p->k8s_err, msg, sizeof p->k8s_err);
		return;
	}
	if (p->k8s_err[0] != '\0')
		log_info("dispatch", "%s: warm pool %s reachable again", p->id,
		    p->cfg->warm_pool);
	p->k8s_err[0] = '\0';
	p->spare_actual = sc->status_replicas;
	if (sc->spec_replicas != p->spare_patched && p->spare_patched >= 0 &&
	    sc->spec_replicas == p->ws.target)
		p->spare_patched = sc->spec_replicas;
	else if (p->spare_patched < 0)
		p->spare_patched = sc->spec_replicas;
}

static void
patch_done(int err, const struct k8s_scale *sc, const char *msg, void *arg)
{
	struct dpool	*p = arg;

	if (err == 0 && sc != NULL) {
		if (sc->spec_replicas != p->spare_patched)
			log_info("dispatch", "%s: warm pool %s spare %ld -> "
			    "%ld", p->id, p->cfg->warm_pool, p->spare_patched,
			    sc->spec_replicas);
		if (sc->spec_replicas < p->spare_patched)
			dns_kick(p->ns);	/* slots freed for waiting tasks */
		p->spare_patched = sc->spec_replicas;
	}
	scale_done(err, sc, msg, arg);
}

/*
 * What the namespace runs besides its live tasks: scale-mode replicas and
 * the warm spares of its dispatch pools; all count against maxSandboxes.
 */
static void
dns_replicas(struct dns *ns)
{
	/*
	 * The larger of the size written and the one about to be: a PATCH
	 * in flight must not leave room that admissions take meanwhile.
	 */
	quota_set_replicas(ns->quota, ns->scale_replicas + dns_spares(ns));
}

static void
dpool_size(struct dpool *p, double now)
{
	long	 target, head, cur, give;

	target = warmpool_target(&p->ws, &p->wp, now, p->waiting);
	/* Spares are sandboxes too: never past the namespace's quota. */
	dns_replicas(p->ns);
	cur = p->spare_patched > 0 ? p->spare_patched : 0;
	if ((head = quota_headroom(p->ns->quota)) >= 0 && target > cur + head)
		target = cur + head;
	/* Tasks waiting for a slot come first: spares give theirs up. */
	if (head == 0 && cur > 0 && p->ns->ndeferred > 0 &&
	    (give = dns_waiting_for_slots(p->ns, cur)) > 0 &&
	    target > cur - give)
		target = cur - give;
	p->ws.target = target;
	if (p->scale_req != NULL)
		return;
	if (p->spare_patched < 0 || now - p->scale_read > 5) {
		/* Learn the current size (and refresh "actual") first. */
		if (p->spare_patched >= 0 && target != p->spare_patched)
			goto patch;
		p->scale_req = p->d->ops->scale_get(p->d->k8s,
		    "SandboxWarmPool", p->cfg->ns, p->cfg->warm_pool,
		    scale_done, p);
		return;
	}
	if (target == p->spare_patched)
		return;
patch:
	p->scale_req = p->d->ops->scale_patch(p->d->k8s, "SandboxWarmPool",
	    p->cfg->ns, p->cfg->warm_pool, target, patch_done, p);
}

/*
 * The charge floor: the effective requests of the pod the warm pool's
 * SandboxTemplate makes (charge_template_requests), read with two GETs
 * (the pool for spec.sandboxTemplateRef.name, then the template) at
 * start and every TPL_REFRESH seconds, so that an edited template counts
 * for the tasks admitted after it.  A failed read is retried with backoff;
 * until one has succeeded, dtask_charge() defers the tasks of a namespace
 * whose quota limits resources.  A later failure keeps the last requests
 * read: a template does not go away often, and every task waiting on an
 * API blip would be worse than a charge some seconds stale.  Retries wait
 * 0.5 to 10 s, jittered.  With spec.sandbox.defaultResources set the
 * template is not read at all.
 */
static void
tpl_fail(struct dpool *p, const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[sizeof p->tpl_err];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (strcmp(msg, p->tpl_err) != 0) {
		log_warn("dispatch", "%s: cannot read the requests of warm "
		    "pool %s's template%s: %s", p->id, p->cfg->warm_pool,
		    p->tpl_known ? " (the last ones read still count)" :
		    " (tasks wait where the quota limits resources)", msg);
		dpool_event(p, 1, "TemplateUnreadable", "Charge", "cannot read "
		    "the requests of SandboxWarmPool %s's template: %s",
		    p->cfg->warm_pool, msg);
	}
	as_strlcpy(p->tpl_err, msg, sizeof p->tpl_err);
	p->tpl_at = as_mono_now() + as_backoff(1, 10,
	    p->tpl_attempts++);
	if (!p->tpl_known)
		dns_kick(p->ns);	/* the deferred tasks' detail */
}

static void
tpl_done(const struct k8s_response *r, void *arg)
{
	struct dpool	*p = arg;
	struct task_resource res[TASK_MAX_RESOURCES];
	cJSON		*obj;
	struct as_buf	 line = { NULL, 0, 0 };
	size_t		 i, n;
	char		 err[256];
	int		 rc, changed;

	p->tpl_req = NULL;
	if (r->err == -AS_ECANCELED)
		return;
	if (r->err != 0) {
		tpl_fail(p, "SandboxTemplate %s: %s", p->tpl_name, r->message);
		return;
	}
	if ((obj = cJSON_ParseWithLength(r->body, r->body_len)) == NULL) {
		tpl_fail(p, "SandboxTemplate %s: not JSON", p->tpl_name);
		return;
	}
	rc = charge_template_requests(obj, res, &n, err, sizeof err);
	cJSON_Delete(obj);
	if (rc != 0) {
		tpl_fail(p, "SandboxTemplate %s: %s", p->tpl_name, err);
		return;
	}
	changed = !p->tpl_known || n != p->tpl_nres ||
	    memcmp(res, p->tpl_res, n * sizeof *res) != 0;
	if (p->tpl_err[0] != '\0' || changed) {
		for (i = 0; i < n; i++)
			as_buf_printf(&line, " %s=%.15g", res[i].name,
			    res[i].value);
		log_info("dispatch", "%s: tasks are charged at least the "
		    "requests of SandboxTemplate %s:%s", p->id, p->tpl_name,
		    n > 0 ? line.p : " none");
		free(line.p);
	}
	memset(p->tpl_res, 0, sizeof p->tpl_res);
	memcpy(p->tpl_res, res, n * sizeof *res);
	p->tpl_nres = n;
	p->tpl_known = 1;
	p->tpl_err[0] = '\0';
	p->tpl_attempts = 0;
	p->tpl_at = as_mono_now() + TPL_REFRESH;
	if (changed)
		dns_kick(p->ns);
}

static void
tpl_pool_done(const struct k8s_response *r, void *arg)
{
	struct dpool	*p = arg;
	const cJSON	*ref;
	cJSON		*obj;
	char		 path[640];

	p->tpl_req = NULL;
	if (r->err == -AS_ECANCELED)
		return;
	if (r->err != 0) {
		tpl_fail(p, "SandboxWarmPool %s: %s", p->cfg->warm_pool,
		    r->message);
		return;
	}
	obj = cJSON_ParseWithLength(r->body, r->body_len);
	ref = cJSON_GetObjectItemCaseSensitive(obj, "spec");
	ref = cJSON_GetObjectItemCaseSensitive(ref, "sandboxTemplateRef");
	ref = cJSON_GetObjectItemCaseSensitive(ref, "name");
	if (!cJSON_IsString(ref) || ref->valuestring[0] == '\0' ||
	    strlen(ref->valuestring) >= sizeof p->tpl_name) {
		cJSON_Delete(obj);
		tpl_fail(p, "SandboxWarmPool %s has no "
		    "spec.sandboxTemplateRef.name", p->cfg->warm_pool);
		return;
	}
	as_strlcpy(p->tpl_name, ref->valuestring, sizeof p->tpl_name);
	cJSON_Delete(obj);
	snprintf(path, sizeof path, CLAIMS_API "/namespaces/%s/"
	    "sandboxtemplates/%s", p->cfg->ns, p->tpl_name);
	p->tpl_req = p->d->ops->request(p->d->k8s, "GET", path, NULL, NULL,
	    tpl_done, p);
	if (p->tpl_req == NULL)
		tpl_fail(p, "SandboxTemplate %s: bad request", p->tpl_name);
}

/* Starts a read of the pool's template when one is due. */
static void
dpool_template(struct dpool *p, double now)
{
	char	 path[640];

	if (p->cfg->ndefault_resources > 0 || p->tpl_req != NULL ||
	    now < p->tpl_at)
		return;
	snprintf(path, sizeof path, CLAIMS_API "/namespaces/%s/"
	    "sandboxwarmpools/%s", p->cfg->ns, p->cfg->warm_pool);
	p->tpl_req = p->d->ops->request(p->d->k8s, "GET", path, NULL, NULL,
	    tpl_pool_done, p);
	if (p->tpl_req == NULL)
		tpl_fail(p, "SandboxWarmPool %s: bad request",
		    p->cfg->warm_pool);
}

/* The sweep: retries, timeouts, TTL backstop, sizing. */

static void
dispatcher_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dispatcher *d = w->data;
	struct dns	*ns;
	struct dtask	*t, *next;
	struct dpool	*p;
	double		 now = as_mono_now(), wall = as_wall_now();
	char		 detail[128];

	(void)loop;
	(void)revents;
	LIST_FOREACH(ns, &d->nss, entry) {
		if (ns->ndeferred > 0)
			dns_pump(ns);	/* spawn tokens refill with time */
		for (t = TAILQ_FIRST(&ns->tasks); t != NULL; t = next) {
			next = TAILQ_NEXT(t, all);
			if (t->doomed || t->op || t->req != NULL)
				continue;
			if (t->msg != NULL && t->ready_by > 0 &&
			    now > t->ready_by && (t->st == T_CLAIMING ||
			    t->st == T_WAITING)) {
				if (t->pool != NULL)
					t->pool->claims_failed++;
				snprintf(detail, sizeof detail, "claim %s not "
				    "bound and Ready within %lds", t->claim,
				    t->pool != NULL ?
				    t->pool->cfg->ready_timeout_seconds : 0L);
				dtask_fail(t, t->st == T_CLAIMING ?
				    "claim.createFailed" : "claim.readyTimeout",
				    detail);
				continue;
			}
			if (t->st == T_RUNNING && t->shutdown_time > 0 &&
			    wall > t->shutdown_time + TTL_GRACE) {
				log_info("dispatch", "%s/%s: task %s outlived "
				    "its claim's shutdownTime; deleting",
				    ns->name, t->claim, t->id);
				dtask_release(t);
				continue;
			}
			if (t->retry_at == 0 || now < t->retry_at)
				continue;
			t->retry_at = 0;
			switch (t->st) {
			case T_CLAIMING:
				dtask_claim(t);
				break;
			case T_WAITING:
				if (t->sandbox[0] != '\0' && t->msg != NULL &&
				    t->launch != L_UNKNOWN)
					dtask_handoff(t);
				else if (!t->claim_exists)
					dtask_claim(t);
				break;
			case T_RELEASING:
				t->st = T_RUNNING;	/* re-enter */
				dtask_release(t);
				break;
			default:
				break;
			}
		}
	}
	if (now - d->last_sizing >= d->sizing_interval) {
		d->last_sizing = now;
		LIST_FOREACH(p, &d->pools, entry)
			dpool_size(p, now);
	}
	LIST_FOREACH(p, &d->pools, entry)
		dpool_template(p, now);
}

/* Claim informer of a namespace. */

static void
dns_claim_event(struct informer *inf, enum informer_event ev,
    const cJSON *obj, void *arg)
{
	struct dns	*ns = arg;
	struct dpool	*p;
	struct claim_view v;
	struct dtask	*t;
	char		 err[128];
	size_t		 nrebuilt = 0;

	(void)inf;
	if (ev == INFORMER_SYNCED) {
		if (!ns->synced) {
			TAILQ_FOREACH(t, &ns->tasks, all)
				nrebuilt += t->rebuilt;
			log_info("dispatch", "namespace %s: %zu live tasks "
			    "rebuilt from claims; consuming", ns->name,
			    nrebuilt);
		}
		ns->synced = 1;
		LIST_FOREACH(p, &ns->d->pools, entry)
			if (p->ns == ns)
				dpool_start(p);
		return;
	}
	if (task_claim_parse(obj, &v, err, sizeof err) != 0 || !v.managed ||
	    v.task_id[0] == '\0')
		return;
	t = dns_find(ns, v.task_id);
	if (ev == INFORMER_DELETED) {
		if (t == NULL || strcmp(t->claim, v.name) != 0)
			return;
		t->claim_exists = 0;
		if (t->msg != NULL && !t->handed_off && !t->doomed &&
		    t->st != T_RELEASING) {
			dtask_fail(t, "claim.deleted", "the claim was deleted "
			    "before the task was handed off");
			return;
		}
		if (t->pool != NULL && t->handed_off)
			t->pool->completed++;
		else if (t->pool != NULL && t->rebuilt)
			t->pool->completed++;
		dtask_maybe_free(t);
		return;
	}
	if (t == NULL) {
		/*
		 * A claim of ours we hold no record of: made before a restart
		 * (or by another instance).  Its labels give lineage and pool.
		 */
		p = dns_pool_by_name(ns, v.pool);
		t = dtask_new(ns, NULL, v.task_id, v.parent_id,
		    v.root_id[0] != '\0' ? v.root_id : v.task_id, v.depth);
		if (p != NULL) {
			t->pool = p;
			p->live++;
		}
		as_strlcpy(t->claim, v.name, sizeof t->claim);
		t->rebuilt = 1;
		t->claim_exists = 1;
		if (v.nresources > 0) {
			t->res = xcalloc(v.nresources, sizeof *t->res);
			memcpy(t->res, v.resources,
			    v.nresources * sizeof *t->res);
			t->nres = v.nresources;
		}
		/* Its sandbox exists: it counts, whatever the limits say. */
		{
			struct quota_task qt;
			struct quota_res qr[TASK_MAX_RESOURCES];

			/* The annotation holds what it was charged. */
			dtask_quota_task(t, t->res, t->nres, &qt, qr);
			quota_admit(ns->quota, &qt, as_mono_now());
			t->admitted = 1;
		}
		dtask_set_state(t, T_WAITING);
		dtask_apply(t, &v);
		return;
	}
	if (strcmp(t->claim, v.name) != 0)
		return;		/* same id, another pool's claim */
	if (t->st == T_CLAIMING && t->req != NULL) {
		/* The watch beat our POST's response; it will follow. */
		t->claim_exists = 1;
		return;
	}
	dtask_apply(t, &v);
}

static struct dns *
dns_get(struct dispatcher *d, const char *name)
{
	struct informer_options io;
	struct dns	*ns;
	char		 path[256], err[256];

	LIST_FOREACH(ns, &d->nss, entry)
		if (strcmp(ns->name, name) == 0)
			return (ns);
	ns = xcalloc(1, sizeof *ns);
	ns->d = d;
	as_strlcpy(ns->name, name, sizeof ns->name);
	ns->nbuckets = 64;
	ns->buckets = xcalloc(ns->nbuckets, sizeof *ns->buckets);
	TAILQ_INIT(&ns->tasks);
	TAILQ_INIT(&ns->defer_desc);
	TAILQ_INIT(&ns->defer_roots);
	ns->quota = quota_ns_new(d->config != NULL ?
	    config_quota_for(d->config, name) : NULL);
	LIST_INSERT_HEAD(&d->nss, ns, entry);
	snprintf(path, sizeof path, CLAIMS_API "/namespaces/%s/sandboxclaims",
	    name);
	memset(&io, 0, sizeof io);
	io.path = path;
	io.label_selector = TASK_LABEL_MANAGED "=" TASK_LABEL_MANAGED_VALUE;
	io.log_name = "claims";
	ns->claims = d->ops->informer_new(d->k8s, &io, dns_claim_event, ns, err,
	    sizeof err);
	if (ns->claims == NULL)
		log_error("dispatch", "namespace %s: cannot watch claims: %s",
		    name, err);
	return (ns);
}

static void
dns_free(struct dns *ns)
{
	struct dtask	*t;

	ns->d->ops->informer_free(ns->claims);
	ns->claims = NULL;
	while ((t = TAILQ_FIRST(&ns->tasks)) != NULL) {
		if (t->req != NULL)
			/* Runs its completion. */
			ns->d->ops->cancel(t->req);
		t->req = NULL;
		t->op = 0;	/* consumers are gone: nothing will call */
		dtask_maybe_free(t);
	}
	LIST_REMOVE(ns, entry);
	quota_ns_free(ns->quota);
	free(ns->buckets);
	free(ns);
}

/* Pools. */

static struct dpool *
dpool_new(struct dispatcher *d, const struct pool_config *c)
{
	struct consumer_options co;
	struct scaler_source src;
	struct dpool	*p;
	char		 err[256];

	p = xcalloc(1, sizeof *p);
	p->d = d;
	p->cfg = c;
	snprintf(p->id, sizeof p->id, "%s/%s", c->ns, c->name);
	p->spare_patched = -1;
	p->spare_actual = -1;
	hist_init(&p->ready_warm, ready_bounds, AS_ARRAY_SIZE(ready_bounds));
	hist_init(&p->ready_cold, ready_bounds, AS_ARRAY_SIZE(ready_bounds));
	hist_init(&p->handoff, handoff_bounds, AS_ARRAY_SIZE(handoff_bounds));
	p->wp.spare_min = c->spare_min;
	p->wp.spare_max = c->spare_max;
	p->wp.cooldown = c->scaling.cooldown_seconds;
	warmpool_params_defaults(&p->wp);
	/* Start as just active: the cooldown runs from now. */
	p->ws.arrived = 1;
	p->ws.last_arrival = as_mono_now();
	p->ns = dns_get(d, c->ns);
	p->ns->refs++;
	LIST_INSERT_HEAD(&d->pools, p, entry);

	config_pool_source(c, &src);
	memset(&co, 0, sizeof co);
	co.instance = d->instance;
	co.adopt = d->adopt;
	co.window = (int)c->source.prefetch;
	co.poll_interval = (double)c->poll_interval_ms / 1000.0;
	co.claim_idle = (double)c->source.claim_idle_seconds;
	co.marker_ttl = (double)c->claim_ttl_seconds + 86400;
	co.max_bytes = (size_t)c->max_task_bytes;
	p->ct = d->ops->consumer_type(c->source.type, c->source.address);
	if (p->ct == NULL)
		snprintf(err, sizeof err, "no consumer for %s %s",
		    c->source.type, c->source.address);
	else if ((p->ct->validate == NULL ||
	    p->ct->validate(&src, &co, err, sizeof err) == 0))
		p->cons = p->ct->create(d->loop, &src, &co, err, sizeof err);
	if (p->cons == NULL) {
		log_error("dispatch", "%s: cannot consume: %s", p->id, err);
		as_strlcpy(p->src_err, err, sizeof p->src_err);
	}
	dpool_template(p, 0);
	if (p->ns->synced)
		dpool_start(p);
	log_info("dispatch", "%s: dispatch pool on %s %s, warm pool %s, "
	    "spare %ld..%ld, prefetch %ld", p->id, c->source.type,
	    c->source.queue, c->warm_pool, c->spare_min, c->spare_max,
	    c->source.prefetch);
	return (p);
}

static void
dpool_free(struct dpool *p)
{
	struct dtask	*t, *next;

	/* Messages we hold go back to the broker with the consumer. */
	for (t = TAILQ_FIRST(&p->ns->tasks); t != NULL; t = next) {
		next = TAILQ_NEXT(t, all);
		if (t->pool == p && t->msg != NULL) {
			consumer_msg_free(t->msg);
			t->msg = NULL;
		}
	}
	if (p->cons != NULL)
		p->ct->destroy(p->cons);	/* pending ops: -AS_ECANCELED */
	p->cons = NULL;
	if (p->scale_req != NULL)
		p->d->ops->cancel(p->scale_req);
	if (p->tpl_req != NULL)
		p->d->ops->cancel(p->tpl_req);
	for (t = TAILQ_FIRST(&p->ns->tasks); t != NULL; t = next) {
		next = TAILQ_NEXT(t, all);
		if (t->pool == p) {
			dtask_set_waiting(t, 0);
			p->live--;
			t->pool = NULL;
		}
	}
	LIST_REMOVE(p, entry);
	if (--p->ns->refs == 0)
		dns_free(p->ns);
	free(p);
}

static int
dpool_same(const struct pool_config *a, const struct pool_config *b)
{
	return (strcmp(a->ns, b->ns) == 0 && strcmp(a->name, b->name) == 0 &&
	    config_same_source(a, b) && strcmp(a->warm_pool, b->warm_pool) == 0 &&
	    a->claim_ttl_seconds == b->claim_ttl_seconds &&
	    a->poll_interval_ms == b->poll_interval_ms &&
	    a->max_task_bytes == b->max_task_bytes);	/* the consumer cuts */
}

struct dispatcher *
dispatcher_new(struct ev_loop *loop, struct k8s_client *k8s,
    const struct dispatch_options *o)
{
	struct dispatcher *d;

	d = xcalloc(1, sizeof *d);
	d->loop = loop;
	d->k8s = k8s;
	d->ops = o->ops != NULL ? o->ops : &dispatch_ops_real;
	as_strlcpy(d->instance, o->instance != NULL && o->instance[0] ?
	    o->instance : "agentscaler", sizeof d->instance);
	d->adopt = o->adopt;
	d->sweep_interval = o->sweep_interval > 0 ? o->sweep_interval : 0.25;
	d->event = o->event;
	d->event_arg = o->event_arg;
	d->sizing_interval = o->sizing_interval > 0 ? o->sizing_interval : 1;
	LIST_INIT(&d->nss);
	LIST_INIT(&d->pools);
	ev_init(&d->sweep, dispatcher_sweep);
	d->sweep.data = d;
	ev_init(&d->kick, dispatcher_kick_cb);
	d->kick.data = d;
	d->sweep.repeat = d->sweep_interval;
	return (d);
}

void
dispatcher_apply(struct dispatcher *d, const struct config *c)
{
	struct dpool	*p, *next;
	struct dns	*ns;
	size_t		 i;
	int		 found, any = 0;

	d->config = c;
	LIST_FOREACH(ns, &d->nss, entry)
		quota_ns_set_config(ns->quota, config_quota_for(c, ns->name));

	/* Keep what is unchanged, drop what went or changed. */
	for (p = LIST_FIRST(&d->pools); p != NULL; p = next) {
		next = LIST_NEXT(p, entry);
		found = 0;
		for (i = 0; i < c->npools; i++)
			if (c->pools[i].mode == POOL_MODE_DISPATCH &&
			    dpool_same(p->cfg, &c->pools[i])) {
				p->cfg = &c->pools[i];
				p->wp.spare_min = p->cfg->spare_min;
				p->wp.spare_max = p->cfg->spare_max;
				p->wp.cooldown =
				    p->cfg->scaling.cooldown_seconds;
				warmpool_params_defaults(&p->wp);
				found = 1;
				break;
			}
		if (!found)
			dpool_free(p);
	}
	for (i = 0; i < c->npools; i++) {
		if (c->pools[i].mode != POOL_MODE_DISPATCH)
			continue;
		any = 1;
		found = 0;
		LIST_FOREACH(p, &d->pools, entry)
			if (p->cfg == &c->pools[i])
				found = 1;
		if (!found)
			dpool_new(d, &c->pools[i]);
	}
	if (any)
		ev_timer_again(d->loop, &d->sweep);
	else
		ev_timer_stop(d->loop, &d->sweep);
}

void
dispatcher_free(struct dispatcher *d)
{
	struct dpool	*p;

	if (d == NULL)
		return;
	ev_timer_stop(d->loop, &d->sweep);
	while ((p = LIST_FIRST(&d->pools)) != NULL)
		dpool_free(p);
	while (!LIST_EMPTY(&d->nss))
		dns_free(LIST_FIRST(&d->nss));
	/* Last: freeing tasks releases quota, which may kick the pump. */
	ev_timer_stop(d->loop, &d->kick);
	free(d->recent);
	free(d);
}

/* Observability. */

/*
 * /status "charge": {"source": "defaultResources" | "template" | "unknown",
 * "template": <name>, "resources": {...}, "error": <last read's>}.
 */
static void
dpool_status_charge(const struct dpool *p, cJSON *o)
{
	cJSON	*c, *r;
	size_t	 i;

	c = cJSON_AddObjectToObject(o, "charge");
	if (p->cfg->ndefault_resources > 0) {
		cJSON_AddStringToObject(c, "source", "defaultResources");
		r = cJSON_AddObjectToObject(c, "resources");
		for (i = 0; i < p->cfg->ndefault_resources; i++)
			cJSON_AddNumberToObject(r,
			    p->cfg->default_resources[i].name,
			    p->cfg->default_resources[i].value);
	} else {
		cJSON_AddStringToObject(c, "source", p->tpl_known ?
		    "template" : "unknown");
		cJSON_AddStringToObject(c, "template", p->tpl_name);
		cJSON_AddStringToObject(c, "error", p->tpl_err);
		r = cJSON_AddObjectToObject(c, "resources");
		for (i = 0; i < p->tpl_nres; i++)
			cJSON_AddNumberToObject(r, p->tpl_res[i].name,
			    p->tpl_res[i].value);
	}
}

static void
m_head(struct as_buf *b, const char *name, const char *type, const char *help)
{
	as_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

static void
m_labels(struct as_buf *b, const struct dpool *p)
{
	as_buf_printf(b, "namespace=\"");
	as_buf_label(b, p->cfg->ns);
	as_buf_printf(b, "\",pool=\"");
	as_buf_label(b, p->cfg->name);
	as_buf_printf(b, "\"");
}

static void
m_value(struct as_buf *b, const char *name, const struct dpool *p,
    const char *extra, double v)
{
	as_buf_printf(b, "%s{", name);
	m_labels(b, p);
	as_buf_printf(b, "%s%s} %.17g\n", extra != NULL ? "," : "",
	    extra != NULL ? extra : "", v);
}

static void
m_hist(struct as_buf *b, const char *name, const struct dpool *p,
    const char *extra, const struct hist *h)
{
	uint64_t	 cum = 0;
	size_t		 i;

	for (i = 0; i <= h->n; i++) {
		cum += h->counts[i];
		as_buf_printf(b, "%s_bucket{", name);
		m_labels(b, p);
		if (extra != NULL)
			as_buf_printf(b, ",%s", extra);
		if (i < h->n)
			as_buf_printf(b, ",le=\"%g\"} %llu\n", h->bounds[i],
			    (unsigned long long)cum);
		else
			as_buf_printf(b, ",le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
	}
	as_buf_printf(b, "%s_sum{", name);
	m_labels(b, p);
	as_buf_printf(b, "%s%s} %.9g\n", extra != NULL ? "," : "",
	    extra != NULL ? extra : "", h->sum);
	as_buf_printf(b, "%s_count{", name);
	m_labels(b, p);
	as_buf_printf(b, "%s%s} %llu\n", extra != NULL ? "," : "",
	    extra != NULL ? extra : "", (unsigned long long)h->total);
}

/* The per-pool counters and gauges, read from struct dpool. */
#define DP_U(m) offsetof(struct dpool, m), 'u'
#define DP_L(m) offsetof(struct dpool, m), 'l'
static const struct {
	const char	*name;
	const char	*type;		/* NULL: same family as the row above */
	const char	*extra;
	size_t		 off;
	char		 kind;		/* u uint64, l long, i int, r rate,
					   c cold start */
	const char	*help;
} dp_rows[] = {
	{ "agentscaler_dispatch_tasks_received_total", "counter", NULL,
	    DP_U(received),
	    "Task messages taken off the source (redeliveries included)." },
	{ "agentscaler_dispatch_tasks_redelivered_total", "counter", NULL,
	    DP_U(redelivered),
	    "Messages the broker marked redelivered or recovered at start." },
	{ "agentscaler_dispatch_tasks_handed_off_total", "counter", NULL,
	    DP_U(handed_off), "Tasks pushed to a sandbox's inbox." },
	{ "agentscaler_dispatch_tasks_completed_total", "counter", NULL,
	    DP_U(completed), "Tasks whose claim went away after the hand-off." },
	{ "agentscaler_dispatch_tasks_in_flight", "gauge", NULL, DP_L(live),
	    "Live tasks: taken and not finished (claims included)." },
	{ "agentscaler_dispatch_tasks_waiting", "gauge", NULL, DP_L(waiting),
	    "Live tasks waiting for their sandbox." },
	{ "agentscaler_dispatch_tasks_deferred", "gauge", NULL, DP_L(deferred),
	    "Tasks held by the AgentQuota (message kept, not yet claimed)." },
	{ "agentscaler_dispatch_tasks_rejected_total", "counter", NULL,
	    DP_U(rejected), "Tasks the AgentQuota rejected (dead-lettered)." },
	{ "agentscaler_dispatch_claims_total", "counter", "launch=\"warm\"",
	    DP_U(claims_warm), "Claims by launch type: warm (adopted a pool "
	    "member), cold, failed (terminal reason or timeout)." },
	{ "agentscaler_dispatch_claims_total", NULL, "launch=\"cold\"",
	    DP_U(claims_cold), NULL },
	{ "agentscaler_dispatch_claims_total", NULL, "launch=\"failed\"",
	    DP_U(claims_failed), NULL },
	{ "agentscaler_dispatch_dead_letter_errors_total", "counter", NULL,
	    DP_U(dead_letter_errors),
	    "Dead letters the broker did not take (the message comes back)." },
	{ "agentscaler_warm_spare_target", "gauge", NULL, DP_L(ws.target),
	    "Warm sandboxes the pool should keep (sizing)." },
	{ "agentscaler_warm_spare_replicas", "gauge", NULL, DP_L(spare_actual),
	    "status.replicas of the SandboxWarmPool as last read (-1 unknown)." },
	{ "agentscaler_dispatch_arrival_rate", "gauge", NULL, 0, 'r',
	    "Arrival rate EWMA, tasks per second." },
	{ "agentscaler_dispatch_cold_start_seconds", "gauge", NULL, 0, 'c',
	    "Cold claim-to-ready EWMA used for sizing." },
	{ "agentscaler_dispatch_source_up", "gauge", NULL,
	    offsetof(struct dpool, up), 'i',
	    "1 while the pool's consumer is connected and consuming." },
};

static double
dp_value(const struct dpool *p, size_t off, char kind)
{
	const char	*f = (const char *)p + off;

	switch (kind) {
	case 'u':
		return ((double)*(const uint64_t *)f);
	case 'l':
		return ((double)*(const long *)f);
	case 'r':
		return (warmpool_rate(&p->ws, &p->wp, as_mono_now()));
	case 'c':
		return (p->ws.cold_samples > 0 ? p->ws.cold :
		    p->wp.cold_default);
	default:
		return ((double)*(const int *)f);
	}
}

/* Per namespace: what the AgentQuota sees. */
static void
dispatcher_quota_metrics(const struct dispatcher *d, struct as_buf *b)
{
	static const char *const names[] = { "sandboxes", "replicas", "tasks",
	    "roots" };
	const struct dns *ns;
	struct quota_usage u;
	long		 v[4];
	size_t		 i;

	m_head(b, "agentscaler_quota_used", "gauge", "What the namespace "
	    "uses against its AgentQuota: sandboxes (tasks + replicas), "
	    "replicas, live tasks, live trees (roots).");
	LIST_FOREACH(ns, &d->nss, entry) {
		quota_usage(ns->quota, &u);
		v[0] = u.sandboxes;
		v[1] = u.replicas;
		v[2] = u.tasks;
		v[3] = u.roots;
		for (i = 0; i < 4; i++) {
			as_buf_printf(b, "agentscaler_quota_used{namespace=\"");
			as_buf_label(b, ns->name);
			as_buf_printf(b, "\",what=\"%s\"} %ld\n", names[i],
			    v[i]);
		}
	}
	m_head(b, "agentscaler_quota_decisions_total", "counter",
	    "Admission decisions by verdict.");
	LIST_FOREACH(ns, &d->nss, entry) {
		quota_usage(ns->quota, &u);
		as_buf_printf(b, "agentscaler_quota_decisions_total{namespace="
		    "\"");
		as_buf_label(b, ns->name);
		as_buf_printf(b, "\",verdict=\"admit\"} %llu\n",
		    (unsigned long long)u.admitted);
		as_buf_printf(b, "agentscaler_quota_decisions_total{namespace="
		    "\"");
		as_buf_label(b, ns->name);
		as_buf_printf(b, "\",verdict=\"defer\"} %llu\n",
		    (unsigned long long)u.deferred);
		as_buf_printf(b, "agentscaler_quota_decisions_total{namespace="
		    "\"");
		as_buf_label(b, ns->name);
		as_buf_printf(b, "\",verdict=\"reject\"} %llu\n",
		    (unsigned long long)u.rejected);
	}
}

void
dispatcher_metrics(const struct dispatcher *d, struct as_buf *b)
{
	const struct dpool *p;
	size_t		 i;

	if (LIST_EMPTY(&d->pools))
		return;
	for (i = 0; i < AS_ARRAY_SIZE(dp_rows); i++) {
		if (dp_rows[i].type != NULL)
			m_head(b, dp_rows[i].name, dp_rows[i].type,
			    dp_rows[i].help);
		LIST_FOREACH(p, &d->pools, entry)
			m_value(b, dp_rows[i].name, p, dp_rows[i].extra,
			    dp_value(p, dp_rows[i].off, dp_rows[i].kind));
	}
	m_head(b, "agentscaler_dispatch_claim_ready_seconds", "histogram",
	    "Claim POST to bound and Ready, by launch type.");
	LIST_FOREACH(p, &d->pools, entry) {
		m_hist(b, "agentscaler_dispatch_claim_ready_seconds", p,
		    "launch=\"warm\"", &p->ready_warm);
		m_hist(b, "agentscaler_dispatch_claim_ready_seconds", p,
		    "launch=\"cold\"", &p->ready_cold);
	}
	m_head(b, "agentscaler_dispatch_handoff_seconds", "histogram",
	    "Message taken off the source to task in the sandbox's inbox.");
	LIST_FOREACH(p, &d->pools, entry)
		m_hist(b, "agentscaler_dispatch_handoff_seconds", p, NULL,
		    &p->handoff);
	dispatcher_quota_metrics(d, b);
	m_head(b, "agentscaler_dispatch_dead_letters_total", "counter",
	    "Task messages dead-lettered, by reason.");
	LIST_FOREACH(p, &d->pools, entry)
		for (i = 0; i < p->ndead; i++) {
			as_buf_printf(b,
			    "agentscaler_dispatch_dead_letters_total{");
			m_labels(b, p);
			as_buf_printf(b, ",reason=\"");
			as_buf_label(b, p->dead[i].reason);
			as_buf_printf(b, "\"} %llu\n",
			    (unsigned long long)p->dead[i].n);
		}
}

void
dispatcher_status(const struct dispatcher *d, cJSON *root)
{
	const struct dpool *p;
	const struct dns *ns;
	const struct dtask *t;
	cJSON		*arr, *o, *st, *dl;
	long		 counts[AS_ARRAY_SIZE(tstate_names)];
	size_t		 i;

	arr = cJSON_AddArrayToObject(root, "dispatch");
	LIST_FOREACH(p, &d->pools, entry) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "namespace", p->cfg->ns);
		cJSON_AddStringToObject(o, "name", p->cfg->name);
		cJSON_AddStringToObject(o, "warmPool", p->cfg->warm_pool);
		cJSON_AddBoolToObject(o, "consuming", p->up);
		cJSON_AddStringToObject(o, "sourceError", p->src_err);
		cJSON_AddStringToObject(o, "kubeError", p->k8s_err);
		dpool_status_charge(p, o);
		cJSON_AddNumberToObject(o, "spareTarget", (double)p->ws.target);
		cJSON_AddNumberToObject(o, "spareReplicas",
		    (double)p->spare_actual);
		cJSON_AddNumberToObject(o, "received", (double)p->received);
		cJSON_AddNumberToObject(o, "handedOff", (double)p->handed_off);
		cJSON_AddNumberToObject(o, "completed", (double)p->completed);
		memset(counts, 0, sizeof counts);
		TAILQ_FOREACH(t, &p->ns->tasks, all)
			if (t->pool == p)
				counts[t->st]++;
		st = cJSON_AddObjectToObject(o, "tasks");
		for (i = 0; i < AS_ARRAY_SIZE(tstate_names); i++)
			cJSON_AddNumberToObject(st, tstate_names[i],
			    (double)counts[i]);
		dl = cJSON_AddObjectToObject(o, "deadLetters");
		for (i = 0; i < p->ndead; i++)
			cJSON_AddNumberToObject(dl, p->dead[i].reason,
			    (double)p->dead[i].n);
		cJSON_AddItemToArray(arr, o);
	}
	arr = cJSON_AddArrayToObject(root, "namespaces");
	LIST_FOREACH(ns, &d->nss, entry) {
		struct quota_usage u;
		struct quota_tree_info ti[5];
		const struct quota_config *qc;
		cJSON	*us, *tr, *to;
		size_t	 k, nt;

		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", ns->name);
		cJSON_AddBoolToObject(o, "synced", ns->synced);
		cJSON_AddNumberToObject(o, "liveTasks", (double)ns->ntasks);
		cJSON_AddNumberToObject(o, "deferred", (double)ns->ndeferred);
		quota_usage(ns->quota, &u);
		us = cJSON_AddObjectToObject(o, "used");
		cJSON_AddNumberToObject(us, "sandboxes", (double)u.sandboxes);
		cJSON_AddNumberToObject(us, "replicas", (double)u.replicas);
		cJSON_AddNumberToObject(us, "tasks", (double)u.tasks);
		cJSON_AddNumberToObject(us, "roots", (double)u.roots);
		qc = d->config != NULL ? config_quota_for(d->config,
		    ns->name) : NULL;
		for (k = 0; qc != NULL && k < qc->nresources; k++)
			cJSON_AddNumberToObject(us, qc->resources[k].name,
			    quota_used(ns->quota, qc->resources[k].name));
		if (qc != NULL)
			cJSON_AddNumberToObject(o, "maxSandboxes",
			    (double)qc->max_sandboxes);
		cJSON_AddNumberToObject(o, "admitted", (double)u.admitted);
		cJSON_AddNumberToObject(o, "deferredDecisions",
		    (double)u.deferred);
		cJSON_AddNumberToObject(o, "rejected", (double)u.rejected);
		nt = quota_top_trees(ns->quota, as_mono_now(), ti, 5);
		tr = cJSON_AddArrayToObject(o, "largestTrees");
		for (k = 0; k < nt; k++) {
			to = cJSON_CreateObject();
			cJSON_AddStringToObject(to, "root", ti[k].root);
			cJSON_AddNumberToObject(to, "live", (double)ti[k].live);
			cJSON_AddNumberToObject(to, "total",
			    (double)ti[k].total);
			cJSON_AddNumberToObject(to, "maxDepth",
			    (double)ti[k].max_depth);
			cJSON_AddNumberToObject(to, "sandboxSeconds",
			    ti[k].seconds);
			cJSON_AddItemToArray(tr, to);
		}
		cJSON_AddItemToArray(arr, o);
	}
}

void
dispatcher_readyz(const struct dispatcher *d, struct as_buf *notready,
    struct as_buf *pools)
{
	const struct dpool *p;

	LIST_FOREACH(p, &d->pools, entry) {
		if (!p->ns->synced)
			as_buf_printf(notready, "%s: claims of namespace %s "
			    "not listed yet\n", p->id, p->cfg->ns);
		else if (!p->up)
			as_buf_printf(pools, "%s: not consuming%s%s\n", p->id,
			    p->src_err[0] ? ": " : "", p->src_err);
	}
}

long
dispatcher_headroom(struct dispatcher *d, const struct config *c,
    const char *ns, long scale_replicas)
{
	const struct quota_config *qc;
	struct dns	*n;

	for (n = d != NULL ? LIST_FIRST(&d->nss) : NULL; n != NULL;
	    n = LIST_NEXT(n, entry))
		if (strcmp(n->name, ns) == 0) {
			n->scale_replicas = scale_replicas;
			dns_replicas(n);
			return (quota_headroom(n->quota));
		}
	if ((qc = config_quota_for(c, ns)) == NULL || qc->max_sandboxes < 0)
		return (-1);
	return (qc->max_sandboxes > scale_replicas ?
	    qc->max_sandboxes - scale_replicas : 0);
}

int
dispatcher_explain(const struct dispatcher *d, const char *id, cJSON *out)
{
	const struct dns *ns;
	const struct dtask *t, *q;
	const struct recent *r;
	char		 text[600], t3[40];
	size_t		 i, pos;

	cJSON_AddStringToObject(out, "task", id);
	LIST_FOREACH(ns, &d->nss, entry) {
		if ((t = dns_find(ns, id)) == NULL)
			continue;
		cJSON_AddStringToObject(out, "namespace", ns->name);
		if (t->pool != NULL)
			cJSON_AddStringToObject(out, "pool", t->pool->cfg->name);
		cJSON_AddStringToObject(out, "state", tstate_names[t->st]);
		cJSON_AddStringToObject(out, "root", t->root);
		if (t->parent != NULL)
			cJSON_AddStringToObject(out, "parent", t->parent);
		cJSON_AddNumberToObject(out, "depth", t->depth);
		if (t->st == T_DEFERRED) {
			pos = 0;
			for (q = t->parent != NULL ?
			    TAILQ_FIRST(&ns->defer_desc) :
			    TAILQ_FIRST(&ns->defer_roots); q != NULL && q != t;
			    q = TAILQ_NEXT(q, dq))
				pos++;
			cJSON_AddStringToObject(out, "reason", t->why);
			cJSON_AddStringToObject(out, "detail",
			    t->why_detail != NULL ? t->why_detail : "");
			cJSON_AddNumberToObject(out, "queuePosition",
			    (double)pos);
			snprintf(text, sizeof text, "task %s waits (deferred) "
			    "in namespace %s: %s: %s; %zu %s ahead of it",
			    id, ns->name, t->why, t->why_detail != NULL ?
			    t->why_detail : "", pos, t->parent != NULL ?
			    "descendants" : "new roots");
		} else {
			cJSON_AddStringToObject(out, "claim", t->claim);
			cJSON_AddStringToObject(out, "sandbox", t->sandbox);
			snprintf(text, sizeof text, "task %s is admitted in "
			    "namespace %s (%s), claim %s%s%s", id, ns->name,
			    tstate_names[t->st], t->claim, t->sandbox[0] ?
			    ", sandbox " : "", t->sandbox);
		}
		cJSON_AddStringToObject(out, "explanation", text);
		return (1);
	}
	for (i = 0; i < d->nrecent && i < RECENT; i++) {
		r = &d->recent[(d->nrecent - 1 - i) % RECENT];
		if (strcmp(r->id, id) != 0)
			continue;
		as_rfc3339(r->wall, 0, t3, sizeof t3);
		cJSON_AddStringToObject(out, "namespace", r->ns);
		cJSON_AddStringToObject(out, "state", "rejected");
		cJSON_AddStringToObject(out, "reason", r->reason);
		cJSON_AddStringToObject(out, "detail", r->detail);
		cJSON_AddStringToObject(out, "at", t3);
		snprintf(text, sizeof text, "task %s was rejected at %s and "
		    "dead-lettered: %s: %s", id, t3, r->reason, r->detail);
		cJSON_AddStringToObject(out, "explanation", text);
		return (1);
	}
	snprintf(text, sizeof text, "task %s is not known: never seen, or "
	    "finished, or rejected more than %d rejections ago", id, RECENT);
	cJSON_AddStringToObject(out, "explanation", text);
	return (0);
}

int
dispatcher_pool_status(const struct dispatcher *d, const char *ns,
    const char *name, struct crd_pool_status *st)
{
	const struct dpool *p;
	const struct dtask *t;

	LIST_FOREACH(p, &d->pools, entry) {
		if (strcmp(p->cfg->ns, ns) != 0 ||
		    strcmp(p->cfg->name, name) != 0)
			continue;
		st->dispatch = 1;
		st->replicas = p->spare_actual;
		st->desired = p->ws.target;
		st->backlog = p->deferred + p->waiting;
		st->in_flight = p->live;
		TAILQ_FOREACH(t, &p->ns->tasks, all) {
			if (t->pool != p || t->doomed)
				continue;
			if (t->counted_waiting)
				st->claims_pending++;
			else if (t->launch == L_WARM)
				st->claims_warm++;
			else if (t->launch == L_COLD)
				st->claims_cold++;
		}
		st->started = p->ns->synced && p->started;
		st->source_ok = p->up;
		as_strlcpy(st->source_err, p->src_err, sizeof st->source_err);
		as_strlcpy(st->target_err, p->k8s_err, sizeof st->target_err);
		st->quota_limited = p->deferred > 0;
		if (st->quota_limited)
			snprintf(st->quota_msg, sizeof st->quota_msg, "%ld tasks "
			    "deferred by the namespace's AgentQuota",
			    p->deferred);
		return (0);
	}
	return (-1);
}

int
dispatcher_quota_status(const struct dispatcher *d, const char *ns,
    struct crd_quota_status *st)
{
	const struct quota_config *qc;
	const struct dns *n;
	struct quota_usage u;
	size_t		 k;
	long		 head;

	LIST_FOREACH(n, &d->nss, entry) {
		if (strcmp(n->name, ns) != 0)
			continue;
		quota_usage(n->quota, &u);
		st->sandboxes = u.sandboxes;
		st->replicas = u.replicas;
		st->tasks = u.tasks;
		st->roots = u.roots;
		st->deferred = (long)n->ndeferred;
		st->rejected = u.rejected;
		qc = d->config != NULL ? config_quota_for(d->config, ns) : NULL;
		for (k = 0; qc != NULL && k < qc->nresources &&
		    st->nres < CRD_MAX_RESOURCES; k++) {
			as_strlcpy(st->res[st->nres].name,
			    qc->resources[k].name, sizeof st->res[0].name);
			st->res[st->nres++].used = quota_used(n->quota,
			    qc->resources[k].name);
		}
		head = quota_headroom(n->quota);
		st->limited = n->ndeferred > 0 || head == 0;
		if (n->ndeferred > 0)
			snprintf(st->limited_msg, sizeof st->limited_msg,
			    "%zu tasks wait for capacity", n->ndeferred);
		else if (head == 0)
			snprintf(st->limited_msg, sizeof st->limited_msg,
			    "no sandbox may start now (%ld live)", u.sandboxes);
		return (0);
	}
	return (-1);
}
