/*
 * pool.c: the pools of scale mode (pool.h).
 *
 * Who runs what: every pool owns one jittered poll timer and, when its
 * source can push, a wake-up callback.  A poll completion records the
 * source's reading and evaluates the pool: the pure autoscale_decide() turns
 * (state, reading, current replicas, now) into a desired count, and a PATCH
 * of the target's /scale carries it out.  A pool has at most one Kubernetes
 * request in flight; an evaluation that arrives meanwhile marks the pool
 * dirty and runs again when the request completes, so each target sees at
 * most one write at a time and always the newest decision.
 *
 * Time: decisions use the monotonic clock, sampled when the reading
 * arrives, never ev_now() (wall clock; ref/c-event-loop-patterns.md 5).
 *
 * Failures: a source error holds the replicas where they are (the maths
 * never acts on a value it could not read); Kubernetes errors are retried by
 * the client, then again at the next poll.  Both are logged on change, not
 * on every tick, and counted in /metrics.
 *
 * A standby (daemon.c) polls its sources, reads its targets and runs the
 * maths (so its stabilization windows are warm), but writes only when
 * daemon_may_write() says so.
 *
 * Targets are watched, never read one by one (targets.c: one list + watch
 * per kind and namespace, or per kind): a pool is told when its target's
 * replicas change, appear or go, and evaluates then.  Until the watch has
 * listed, and while the target is absent from it ("not found", as a 404
 * said before), the pool holds its replicas and writes nothing.  Writes
 * stay merge patches of /scale, whose answer updates the pool at once.
 *
 * PATCH answer against watch event.  Our PATCH's answer carries the
 * object's resourceVersion R after the write; the watch delivers the same
 * write later as an event at R, and may deliver older events first (a
 * status update made just before our write, already on its way).  Taking
 * one of those would set the pool back to the replicas before its own
 * write, and its next evaluation would write, log and count the scale a
 * second time.  So the pool keeps the resourceVersion of what it holds
 * (spec_rv) and ignores what is older, from either side: an event older
 * than its answer, and an answer older than an event that won the race
 * (someone wrote after us; theirs is the current value).  Equal or newer
 * is taken, so kubectl scale by someone else becomes the pool's current
 * replicas.  Versions that are not decimal integers are not compared
 * (targets_rv_older()): every value is taken, the last one winning.
 *
 * Scale: nothing done for one pool walks every pool (issue 15).  The pools
 * are indexed by (namespace, name) (d->pool_index, for the CRD status
 * sweep and config reloads) and grouped by namespace (struct pool_ns, in
 * d->pool_nss), and a group keeps what the quota cap needs of its pools:
 * the replicas they hold (used) and what each would ask for (need), both
 * updated when a pool's reading or replicas change.  A namespace without
 * an AgentQuota costs its pools one lookup each; with one, its fair shares
 * (quota_share(), a pure function of the budget and the needs) are kept
 * until a need or the budget changes, so idle pools share them for free.
 * The sum of the needs is kept too: while it is within the budget every
 * share is its need, and no share is computed.  A contended namespace
 * whose needs change (its first sweep, every pool going from "not read
 * yet" to its reading; or churn) computes its shares at most once per loop
 * iteration: the pools whose readings arrived meanwhile are evaluated
 * together before the loop next blocks (pool_evaluate_soon()).
 * d->pool_visits counts the pools the loops here visit.
 *
 * Adoption (README "Adopting it beside KEDA").  A pool in shadow mode
 * (spec.shadow, or --shadow) polls, reads its target and decides as any
 * other, then stops short of the write: the decision is logged when it
 * changes, kept in p->would (status condition Shadow, metric
 * agentscaler_pool_shadow_desired_replicas) and never written.  A shadow
 * or paused dispatch pool is run here, not by the dispatcher: it reads
 * the backlog (the source's scaler, as a scale pool does) and would
 * claim one sandbox per task waiting; nothing is consumed.  A paused
 * pool (annotation agentscaler.io/paused) writes nothing, or holds its
 * target at agentscaler.io/paused-replicas.  Neither counts a need
 * against its namespace's quota: the replicas it holds are what it uses.
 *
 * Ownership: a scale pool does not fight another autoscaler.  Before it
 * writes, it asks owners.h whether an HPA or a ScaledObject scales its
 * target (one lookup in an index kept by list + watch), and the config
 * whether another AgentPool does: of the pools on one target that write
 * (not in shadow mode), the oldest (creationTimestamp, then name) owns
 * it.  A pool that finds an owner yields: it writes nothing, reports the
 * condition Conflict naming the owner, and a Warning Event TargetConflict
 * when it starts (Normal ConflictResolved when it ends).  Until the
 * owners' informers of its namespace have listed (or failed: not installed,
 * not granted), a pool does not write either.
 *
 * Status: after each event of a pool (a reading, a decision, a target
 * read or written, a poll tick) what its AgentPool status would report is
 * hashed, and only when that changed is the CRD told (crd_status_touch()):
 * the status tick makes the statuses of the pools that changed, not of
 * every pool (d->status_touches counts them).  A namespace's replicas for
 * its AgentQuota's status are kept summed in its group.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/scalers/scaler.h"
#include "autoscale.h"
#include "config.h"
#include "crd.h"
#include "daemon_state.h"
#include "decisions.h"
#include "dispatch.h"
#include "owners.h"
#include "pool.h"
#include "quota.h"
#include "targets.h"

/* The log fields of pool p: JSON keys in the JSON log format (rt/log.h). */
#define POOL_LOG(p) (&(struct log_fields){ .pool = (p)->cfg->name,	\
	.ns = (p)->cfg->ns })

/*
 * The scale pools of one namespace, in d->pools order (the order
 * quota_share() gives its last units in), with what the quota cap needs.
 */
struct pool_ns {
	struct as_hash_entry	 link;	/* d->pool_nss, by name */
	char			*name;
	struct pool		**pools;
	size_t			 n;
	long			 used;	/* the pools' counted, summed */
	long			 replicas;	/* their spec_counted, summed */
	long			*need;	/* each pool's pool_need_seen() */
	long			 need_sum;	/* their positive needs, summed */
	int			 contended;	/* need_sum > budget last seen */
	long			 level;	/* quota_share()'s, for fair */
	int			 level_valid;	/* no need has risen since */
	long			*fair;	/* quota_share(budget, need) */
	long			*scratch; /* a share with another need */
	long			 budget;	/* fair's, if fair_valid */
	int			 fair_valid;
};

/* What the index of (namespace, name) is asked for. */
struct pool_key {
	const char	*ns;
	const char	*name;
};

static void	 pool_poll(struct pool *);
static enum pool_src_err pool_src_err_of(int);
static void	 pool_evaluate(struct pool *);
static void	 pool_evaluate_soon(struct pool *);
static void	 pool_defer_unlink(struct pool *);
static void	 pool_free(struct pool *);
static void	 pool_recount(struct pool *);
static void	 pool_renote(struct pool *);
static void	 pool_groups_free(struct daemon *);
static void	 pool_status_note(struct pool *);
TESTABLE long	 pool_need(const struct pool *, double);
TESTABLE enum pool_write pool_write_choice(const struct pool_write_input *,
		    long *);

static double
pool_interval(const struct pool *p)
{
	double	 base = (double)p->cfg->poll_interval_ms / 1000.0;

	/* +-10% jitter so pools sharing a broker spread their polls. */
	return (base * (0.9 + 0.2 * as_random()));
}

const char *const pool_src_err_names[POOL_SRC_ERR_COUNT] = {
	[POOL_SRC_ERR_AUTH] = "auth",
	[POOL_SRC_ERR_CONNECTION] = "connection",
	[POOL_SRC_ERR_NOT_FOUND] = "not_found",
	[POOL_SRC_ERR_OTHER] = "other",
	[POOL_SRC_ERR_PROTOCOL] = "protocol",
	[POOL_SRC_ERR_TIMEOUT] = "timeout",
};

/* Buckets of the source reads and of the reaction, in seconds. */
static const double pool_read_bounds[] = { 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
static const double pool_reaction_bounds[] = { 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };

static enum pool_src_err
pool_src_err_of(int err)
{
	switch (err < 0 ? -err : err) {
	case AS_EAUTH:
	case AS_EFORBIDDEN:
		return (POOL_SRC_ERR_AUTH);
	case AS_ECONN:
	case AS_EIO:
		return (POOL_SRC_ERR_CONNECTION);
	case AS_ENOTFOUND:
		return (POOL_SRC_ERR_NOT_FOUND);
	case AS_EPROTO:
	case AS_EINVAL:
		return (POOL_SRC_ERR_PROTOCOL);
	case AS_ETIMEDOUT:
		return (POOL_SRC_ERR_TIMEOUT);
	default:
		return (POOL_SRC_ERR_OTHER);
	}
}

TESTABLE void
pool_poll_done(struct scaler *s, const struct scaler_result *r, void *arg)
{
	struct pool	*p = arg;

	(void)s;
	if (r->error == -AS_ECANCELED)
		return;		/* the pool is being destroyed */
	p->polling = 0;
	p->polls++;
	prom_hist_add(&p->read_took, as_mono_now() - p->poll_at);
	if (r->error != 0) {
		p->source_errors[pool_src_err_of(r->error)]++;
		if (p->source_ok || strcmp(p->source_err, r->errmsg) != 0)
			log_kv(LOG_WARN, "pool", POOL_LOG(p),
			    "%s: cannot read the source, holding "
			    "replicas: %s", p->id, r->errmsg);
		if (p->source_ok || p->source_err[0] == '\0')
			crd_event(p->d->crd, "AgentPool", p->cfg->ns,
			    p->cfg->name, EVENT_WARNING, "SourceError", "Poll",
			    "cannot read %s %s, holding replicas: %s",
			    p->cfg->source.type, p->cfg->source.queue,
			    r->errmsg);
		p->source_ok = 0;
		as_strlcpy_utf8(p->source_err, r->errmsg, sizeof p->source_err);
	} else {
		if (!p->source_ok && p->source_err[0] != '\0')
			log_kv(LOG_INFO, "pool", POOL_LOG(p),
			    "%s: source readable again", p->id);
		p->source_ok = 1;
		p->source_read = 1;
		p->source_err[0] = '\0';
		p->ready = r->ready;
		p->in_flight = r->in_flight;
		p->seen_at = p->poll_from;
	}
	pool_renote(p);
	pool_evaluate_soon(p);
	pool_status_note(p);
	if (p->wake_pending) {
		p->wake_pending = 0;
		pool_poll(p);
	}
}

static void
pool_poll(struct pool *p)
{
	int	 rc;

	if (p->scaler == NULL)
		return;
	if (p->polling) {
		p->wake_pending = 1;
		return;
	}
	if ((rc = scaler_poll(p->scaler, pool_poll_done, p)) != 0) {
		log_kv(LOG_WARN, "pool", POOL_LOG(p),
		    "%s: poll refused: %s", p->id,
		    as_strerror(rc));
		return;
	}
	p->polling = 1;
	p->poll_at = as_mono_now();
	p->poll_from = p->wake_at > 0 ? p->wake_at : p->poll_at;
	p->wake_at = 0;
}

static void
pool_wake(struct scaler *s, void *arg)
{
	struct pool	*p = arg;

	(void)s;
	p->wakeups++;
	if (p->wake_at == 0)
		p->wake_at = as_mono_now();
	pool_poll(p);
}

static void
pool_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pool	*p = w->data;

	(void)revents;
	pool_status_note(p);	/* a change no completion noted */
	pool_poll(p);
	w->repeat = pool_interval(p);
	ev_timer_again(loop, w);
}

int
pool_pushing(const struct pool *p)
{
	if (p->scaler == NULL || p->scaler->type->pushing == NULL)
		return (0);
	return (p->scaler->type->pushing(p->scaler));
}

static void
pool_set_k8s_error(struct pool *p, const char *what, const char *msg)
{
	p->kube_errors++;
	if (strcmp(p->k8s_err, msg) != 0)
		log_kv(LOG_WARN, "pool", POOL_LOG(p),
		    "%s: %s %s %s failed: %s", p->id, what,
		    p->cfg->target_kind, p->cfg->target_name, msg);
	as_strlcpy_utf8(p->k8s_err, msg, sizeof p->k8s_err);
}

/* The target's replicas are spec/status at resourceVersion rv. */
static void
pool_k8s_ok(struct pool *p, long spec, long status, const char *rv)
{
	if (p->k8s_err[0] != '\0')
		log_kv(LOG_INFO, "pool", POOL_LOG(p),
		    "%s: %s %s reachable again", p->id,
		    p->cfg->target_kind, p->cfg->target_name);
	p->k8s_err[0] = '\0';
	p->spec_known = 1;
	p->spec_replicas = spec;
	p->status_replicas = status;
	as_strlcpy(p->spec_rv, rv, sizeof p->spec_rv);
	p->spec_time = as_mono_now();
	pool_recount(p);
	pool_status_note(p);
}

/*
 * What the watch says of p's target: taken unless older than what p holds
 * (see "PATCH answer against watch event" above), or always with force.
 * Not listed yet: nothing known.  Absent or unusable: the pool's
 * Kubernetes error, and its replicas held (nothing is written while the
 * target is unknown).
 */
static void
pool_target_take(struct pool *p, const struct target_state *st, int force)
{
	if (!st->listed)
		return;
	if (st->err[0] != '\0') {
		pool_set_k8s_error(p, "reading", st->err);
		p->spec_known = 0;
		p->spec_rv[0] = '\0';
		return;
	}
	if (!force && p->spec_known && targets_rv_older(st->rv, p->spec_rv))
		return;
	pool_k8s_ok(p, st->spec_replicas, st->status_replicas, st->rv);
}

/* targets.h: p's target changed; the pool acts on it at once. */
static void
pool_target_cb(const struct target_state *st, void *arg)
{
	struct pool	*p = arg;

	pool_target_take(p, st, 0);
	if (p->spec_known)
		pool_evaluate(p);
}

/* Forgets what p held of its target and takes its watch's view. */
static void
pool_target_reset(struct pool *p)
{
	struct target_state st;

	p->spec_known = 0;
	p->spec_rv[0] = '\0';
	if (p->target == NULL)
		return;		/* a dispatch pool: no target */
	targets_get(p->target, &st);
	pool_target_take(p, &st, 1);
}

TESTABLE void
pool_patch_done(int err, const struct k8s_scale *sc, const char *msg,
    void *arg)
{
	struct pool	*p = arg;
	/* Not spec_replicas: the watch may have told us of our write first. */
	long		 before = p->patch_from;

	if (err == -AS_ECANCELED)
		return;
	p->req = NULL;
	if (err != 0) {
		pool_set_k8s_error(p, "scaling", msg);
		/* Not what we held: the watch's view is the best we have. */
		if (err == -AS_ENOTFOUND || err == -AS_ECONFLICT)
			pool_target_reset(p);
	} else {
		/* An event newer than this answer won the race: keep it. */
		if (!targets_rv_older(sc->resource_version, p->spec_rv))
			pool_k8s_ok(p, sc->spec_replicas, sc->status_replicas,
			    sc->resource_version);
		if (sc->spec_replicas > before) {
			p->scale_up++;
			if (p->patch_seen > 0)
				prom_hist_add(&p->reaction, as_mono_now() -
				    p->patch_seen);
		} else if (sc->spec_replicas < before)
			p->scale_down++;
		p->last_scale_wall = as_wall_now();
		log_kv(LOG_INFO, "pool", POOL_LOG(p),
		    "%s: scaled %s %s from %ld to %ld (%s, "
		    "backlog %.0f, in flight %.0f)", p->id,
		    p->cfg->target_kind, p->cfg->target_name, before,
		    sc->spec_replicas, autoscale_reason_name(p->last.reason),
		    p->ready, p->in_flight);
		if (sc->spec_replicas != before)
			crd_event(p->d->crd, "AgentPool", p->cfg->ns,
			    p->cfg->name, EVENT_NORMAL, sc->spec_replicas >
			    before ? "ScaledUp" : sc->spec_replicas == 0 ?
			    "ScaledToZero" : "ScaledDown", "Scale",
			    "%s %s scaled from %ld to %ld (%s, backlog %.0f, "
			    "in flight %.0f)", p->cfg->target_kind,
			    p->cfg->target_name, before, sc->spec_replicas,
			    autoscale_reason_name(p->last.reason), p->ready,
			    p->in_flight);
	}
	if (p->dirty) {
		p->dirty = 0;
		pool_evaluate(p);
	}
	pool_status_note(p);
}

/* What a pool would ask for from its latest reading, within min/max. */
TESTABLE long
pool_need(const struct pool *q, double backlog)
{
	double	 need;

	/* Clamped as a double: a long cannot hold every backlog. */
	need = ceil(backlog / (double)q->cfg->scaling.tasks_per_replica);
	if (need > (double)q->cfg->scaling.max_replicas)
		need = (double)q->cfg->scaling.max_replicas;
	if (!(need >= (double)q->cfg->scaling.min_replicas))
		need = (double)q->cfg->scaling.min_replicas;
	return ((long)need);
}

/*
 * What the other pools of its namespace take a pool to need, from what it
 * last read.  A pool that has not polled yet may need anything: its fair
 * share is kept for it, so the first pool to read does not take the whole
 * budget only to give it back (pods started and then killed).  After a
 * failed read it needs nothing new; the replicas it holds are in "used"
 * all the same.
 */
static long
pool_need_seen(const struct pool *q)
{
	if (q->cfg->mode != POOL_MODE_SCALE || q->cfg->shadow ||
	    q->cfg->paused)
		return (0);	/* asks for nothing it would write */
	if (q->polls == 0)
		return (q->cfg->scaling.max_replicas);
	return (q->source_read ? pool_need(q, q->ready +
	    (q->cfg->source.count_in_flight ? q->in_flight : 0)) : 0);
}

/* The replicas a pool holds against its quota: written or being written. */
static long
pool_holds(const struct pool *q)
{
	if (q->cfg->shadow || q->cfg->paused)
		return (q->spec_replicas);	/* it writes no decision */
	return (q->as.desired > q->spec_replicas ? q->as.desired :
	    q->spec_replicas);
}

/* After p's desired or spec replicas changed: its namespace's used. */
static void
pool_recount(struct pool *p)
{
	long	 c = pool_holds(p);

	if (p->ns == NULL)
		return;
	p->ns->used += c - p->counted;
	p->counted = c;
	p->ns->replicas += p->spec_replicas - p->spec_counted;
	p->spec_counted = p->spec_replicas;
}

/* What a need counts in need_sum: quota_share() ignores wants <= 0. */
static long
pool_need_pos(long need)
{
	return (need > 0 ? need : 0);
}

/* After p's reading changed: what its namespace takes it to need. */
static void
pool_renote(struct pool *p)
{
	long	 need = pool_need_seen(p);

	if (p->ns == NULL || p->ns->need[p->ns_idx] == need)
		return;
	p->ns->need_sum += pool_need_pos(need) -
	    pool_need_pos(p->ns->need[p->ns_idx]);
	if (need > p->ns->need[p->ns_idx])
		p->ns->level_valid = 0;	/* the level may fall */
	p->ns->need[p->ns_idx] = need;
	p->ns->fair_valid = 0;
}

/*
 * The headroom dispatcher_headroom() leaves p's namespace, -1 without a
 * quota; the dispatcher hears of the replicas the scale pools hold.
 */
static long
pool_quota_head(struct pool *p)
{
	return (dispatcher_headroom(p->d->dispatch, p->d->config, p->cfg->ns,
	    p->ns->used));
}

/*
 * The most replicas this pool may run under its namespace's AgentQuota,
 * or -1 without a limit.  The namespace's budget for scale pools (what
 * maxSandboxes leaves after dispatch tasks and warm spares) is shared by
 * quota_share(): equal shares, water-filled over what each pool needs, so
 * pools that compete converge to fair shares.  The cap also never exceeds
 * what is free right now (replicas written or being written count), so a
 * pool grows into its share only as another shrinks out of it: the sum
 * never overshoots.
 *
 * The pool's own need is backlog's; the others' are pool_need_seen().
 * Without computing a share: when the needs fit in the budget, every
 * share is its need; a pool that needs nothing gets nothing; and while no
 * need has risen and the budget has not fallen since the shares were last
 * computed, their level (quota_share()'s) can only have risen, so a pool
 * that needs no more than it (and no more than the others take it to
 * need) gets its need.  Otherwise, when the pool's two needs agree (it
 * has read its source), the shares are the namespace's, kept while the
 * needs and the budget stand.
 */
TESTABLE long
pool_quota_cap(struct pool *p, double backlog)
{
	struct daemon	*d = p->d;
	struct pool_ns	*ns = p->ns;
	long		 head, budget, cap, c, self, seen;

	if ((head = pool_quota_head(p)) < 0) {
		ns->contended = 0;
		return (-1);
	}
	budget = head + ns->used;
	self = pool_need(p, backlog);
	seen = ns->need[p->ns_idx];
	if (ns->need_sum - pool_need_pos(seen) + pool_need_pos(self) <=
	    budget) {
		cap = pool_need_pos(self);
		if (self == seen)
			ns->contended = 0;
	} else if (self <= 0)
		cap = 0;
	else if (ns->level_valid && budget >= ns->budget && self <= seen &&
	    self <= ns->level)
		cap = self;
	else if (self == seen) {
		ns->contended = 1;
		if (!ns->fair_valid || ns->budget != budget) {
			ns->level = quota_share(budget, ns->need, ns->fair,
			    ns->n);
			d->pool_visits += ns->n;
			ns->budget = budget;
			ns->fair_valid = 1;
			ns->level_valid = 1;
		}
		cap = ns->fair[p->ns_idx];
	} else {
		ns->need[p->ns_idx] = self;
		quota_share(budget, ns->need, ns->scratch, ns->n);
		d->pool_visits += ns->n;
		ns->need[p->ns_idx] = seen;
		cap = ns->scratch[p->ns_idx];
	}
	c = pool_holds(p);
	if (cap > c + head)
		cap = c + head;
	return (cap > 0 ? cap : 0);
}

/*
 * What p yields to now into p->conflict (logged and an Event when it
 * changes); *known 0 while its namespace's owners are not listed yet.
 */
static void
pool_conflict_note(struct pool *p, int *known)
{
	const struct pool_config *c = p->cfg;
	char		 who[300], msg[sizeof p->conflict];

	if (!owners_get(p->owner, who, sizeof who, known) && p->rival[0])
		as_strlcpy(who, p->rival, sizeof who);
	if (who[0] != '\0')
		snprintf(msg, sizeof msg, "%s scales %s/%s; this pool yields "
		    "and writes nothing", who, c->target_kind, c->target_name);
	else
		msg[0] = '\0';
	if (strcmp(msg, p->conflict) == 0)
		return;
	if (msg[0] != '\0') {
		log_kv(LOG_WARN, "pool", POOL_LOG(p),
		    "%s: %s", p->id, msg);
		crd_event(p->d->crd, "AgentPool", c->ns, c->name,
		    EVENT_WARNING, "TargetConflict", "Scale", "%s", msg);
	} else {
		log_kv(LOG_INFO, "pool", POOL_LOG(p),
		    "%s: %s %s has no other owner now; the pool "
		    "writes it", p->id, c->target_kind, c->target_name);
		crd_event(p->d->crd, "AgentPool", c->ns, c->name,
		    EVENT_NORMAL, "ConflictResolved", "Scale", "%s/%s has no "
		    "other owner now", c->target_kind, c->target_name);
	}
	as_strlcpy_utf8(p->conflict, msg, sizeof p->conflict);
}

/* owners.h: the owners of p's target changed. */
static void
pool_owner_cb(void *arg)
{
	struct pool	*p = arg;

	pool_evaluate(p);
	pool_status_note(p);
}

/* Shadow mode: what p would do is now would; logged when it changes. */
static void
pool_shadow_note(struct pool *p, long would)
{
	const struct pool_config *c = p->cfg;

	if (would == p->would)
		return;
	p->would = would;
	if (c->mode == POOL_MODE_DISPATCH)
		log_info("pool", "%s: shadow: would claim %ld sandboxes "
		    "(backlog %.0f); nothing consumed", p->id, would,
		    p->ready);
	else
		log_info("pool", "%s: shadow: would scale %s %s from %ld to "
		    "%ld (%s, backlog %.0f, in flight %.0f); nothing written",
		    p->id, c->target_kind, c->target_name, p->spec_replicas,
		    would, autoscale_reason_name(p->last.reason), p->ready,
		    p->in_flight);
}

TESTABLE enum pool_write
pool_write_choice(const struct pool_write_input *in, long *want)
{
	*want = in->desired;
	if (in->shadow)
		return (POOL_HOLD_SHADOW);
	if (in->conflict)
		return (POOL_HOLD_CONFLICT);	/* yields to the owner */
	if (!in->owners_known)
		return (POOL_HOLD_UNKNOWN);	/* owners not listed yet */
	if (in->paused) {
		if (in->paused_replicas < 0)
			return (POOL_HOLD_PAUSED);
		*want = in->paused_replicas;	/* KEDA's paused-replicas */
		/*
		 * The annotation is the tenant's, like the decision's inputs:
		 * it holds the target, but never past the AgentQuota (what
		 * the target already has is left alone, as the cap does).
		 */
		if (in->quota_limit >= 0 && *want > in->quota_limit)
			*want = in->current > in->quota_limit ?
			    (in->current < *want ? in->current : *want) :
			    in->quota_limit;
	}
	if (*want == in->current)
		return (POOL_HOLD_SAME);
	/* A standby decides (its windows stay warm) but never writes. */
	if (!in->may_write)
		return (POOL_HOLD_STANDBY);
	return (POOL_WRITE);
}

static void
pool_evaluate(struct pool *p)
{
	const struct pool_config *c = p->cfg;
	struct autoscale_input	 in;
	struct autoscale_decision d;
	double			 now = as_mono_now();
	struct pool_write_input	 wi;
	long			 want;
	int			 known = 1;

	if (c->mode == POOL_MODE_DISPATCH) {
		/* Shadow or paused (config_pool_consumes()): a claim a task. */
		if (p->source_ok && c->shadow)
			pool_shadow_note(p, lround(p->ready));
		return;
	}
	pool_conflict_note(p, &known);
	if (p->req != NULL) {
		p->dirty = 1;
		return;
	}
	if (!p->spec_known)
		return;		/* not listed yet, or not found: hold */
	memset(&in, 0, sizeof in);
	in.source_ok = p->source_ok;
	in.backlog = p->ready + (c->source.count_in_flight ? p->in_flight : 0);
	in.in_flight = c->source.count_in_flight ? p->in_flight : 0;
	in.current = p->spec_replicas;
	if (p->source_ok)
		in.quota_cap = pool_quota_cap(p, in.backlog);
	else {
		/*
		 * Without a reading the decision holds whatever the cap
		 * (autoscale_decide()): no share of another need to compute.
		 */
		(void)pool_quota_head(p);
		in.quota_cap = -1;
	}
	in.now = now;
	autoscale_decide(&p->as, &c->scaling, &in, &d);
	p->last = d;
	(void)decisions_note(&p->recent, as_wall_now(), in.backlog,
	    in.current, d.desired, autoscale_reason_name(d.reason), 10);
	pool_recount(p);
	memset(&wi, 0, sizeof wi);
	wi.shadow = c->shadow;
	wi.conflict = p->conflict[0] != '\0';
	wi.owners_known = known;
	wi.paused = c->paused;
	wi.paused_replicas = c->paused_replicas;
	wi.quota_limit = -1;
	if (c->paused && c->paused_replicas >= 0) {
		long head = pool_quota_head(p);

		if (head >= 0)
			wi.quota_limit = pool_holds(p) + head;
	}
	wi.desired = d.desired;
	wi.current = p->spec_replicas;
	wi.may_write = daemon_may_write(p->d);
	if (c->shadow)
		pool_shadow_note(p, d.desired);
	if (pool_write_choice(&wi, &want) != POOL_WRITE)
		return;
	p->patch_from = p->spec_replicas;
	p->patch_seen = p->seen_at;
	p->req = k8s_scale_patch(p->d->k8s, c->target_kind, c->ns,
	    c->target_name, want, pool_patch_done, p);
}

/*
 * Whether p's quota cap, in its contended namespace whose shares are not
 * known, takes a share computed (pool_quota_cap()'s cheap cases).
 */
static int
pool_quota_costly(const struct pool *p)
{
	const struct pool_ns *ns = p->ns;
	long		 need = ns->need[p->ns_idx];

	return (need > 0 && (!ns->level_valid || need > ns->level));
}

/* Runs the evaluations pool_evaluate_soon() put off, in their order. */
TESTABLE void
pool_defer_flush(struct daemon *d)
{
	struct pool	*p;

	while ((p = d->pool_defer_head) != NULL) {
		d->pool_visits++;
		pool_defer_unlink(p);
		pool_evaluate(p);
		pool_status_note(p);
	}
	ev_prepare_stop(d->loop, &d->pool_defer_w);
}

static void
pool_defer_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop;
	(void)revents;
	pool_defer_flush(w->data);
}

static void
pool_defer_unlink(struct pool *p)
{
	struct daemon	*d = p->d;

	if (!p->deferred)
		return;
	if (p->defer_prev != NULL)
		p->defer_prev->defer_next = p->defer_next;
	else
		d->pool_defer_head = p->defer_next;
	if (p->defer_next != NULL)
		p->defer_next->defer_prev = p->defer_prev;
	else
		d->pool_defer_tail = p->defer_prev;
	p->defer_prev = p->defer_next = NULL;
	p->deferred = 0;
}

/*
 * After a reading: evaluates p now, unless the reading changed the needs
 * of a contended namespace, whose shares then cost a quota_share() of all
 * its pools.  Then p waits for the loop's next ev_prepare (before it
 * blocks, so no later than the other callbacks of this iteration) with
 * the others whose readings arrived meanwhile, and their namespace
 * computes its shares once for all of them, not once for each.
 */
static void
pool_evaluate_soon(struct pool *p)
{
	struct daemon	*d = p->d;

	if (p->deferred)
		return;		/* it will read the newest reading */
	if (!p->source_ok || p->ns == NULL || !p->ns->contended ||
	    p->ns->fair_valid || !pool_quota_costly(p)) {
		pool_evaluate(p);
		return;
	}
	p->deferred = 1;
	p->defer_prev = d->pool_defer_tail;
	if (d->pool_defer_tail != NULL)
		d->pool_defer_tail->defer_next = p;
	else
		d->pool_defer_head = p;
	d->pool_defer_tail = p;
	if (!ev_is_active(&d->pool_defer_w)) {
		ev_prepare_init(&d->pool_defer_w, pool_defer_cb);
		d->pool_defer_w.data = d;
		ev_prepare_start(d->loop, &d->pool_defer_w);
	}
}

static struct pool *
pool_new(struct daemon *d, const struct pool_config *c)
{
	const struct scaler_type *st;
	struct scaler_source	 src;
	struct pool		*p;
	char			 err[256];

	p = xcalloc(1, sizeof *p);
	p->d = d;
	p->cfg = c;
	prom_hist_init(&p->read_took, pool_read_bounds,
	    AS_ARRAY_SIZE(pool_read_bounds));
	prom_hist_init(&p->reaction, pool_reaction_bounds,
	    AS_ARRAY_SIZE(pool_reaction_bounds));
	/* Unknown until the first read: nothing is decided before it. */
	p->source_ok = 0;
	p->would = -1;
	snprintf(p->id, sizeof p->id, "%s/%s", c->ns, c->name);
	if (c->mode == POOL_MODE_SCALE) {
		p->target = targets_subscribe(d->targets, c->target_kind,
		    c->ns, c->target_name, pool_target_cb, p);
		p->owner = owners_subscribe(d->owners, c->target_kind, c->ns,
		    c->target_name, pool_owner_cb, p);
		pool_target_reset(p);
	}
	st = scaler_type_find(c->source.type);	/* checked by config */
	config_pool_source(c, &src);
	p->scaler = st != NULL ? st->create(d->loop, &src, err, sizeof err) :
	    NULL;
	if (p->scaler == NULL) {
		/* Config validated the source; this is a resource failure. */
		log_kv(LOG_ERROR, "pool", POOL_LOG(p),
		    "%s: cannot create the %s source: %s", p->id,
		    c->source.type, st != NULL ? err : "unknown type");
		p->source_ok = 0;
		as_strlcpy_utf8(p->source_err, err, sizeof p->source_err);
	} else if (st->subscribe != NULL &&
	    st->subscribe(p->scaler, pool_wake, p) == 0)
		log_kv(LOG_INFO, "pool", POOL_LOG(p),
		    "%s: push wake-ups requested on %s %s", p->id,
		    c->source.type, c->source.queue);
	else
		log_kv(LOG_INFO, "pool", POOL_LOG(p),
		    "%s: polling %s %s every %ld ms", p->id,
		    c->source.type, c->source.queue, c->poll_interval_ms);
	ev_init(&p->poll_timer, pool_timer_cb);
	p->poll_timer.data = p;
	/* First poll soon, spread across pools. */
	p->poll_timer.repeat = 0.01 + 0.05 * as_random();
	ev_timer_again(d->loop, &p->poll_timer);
	return (p);
}

static void
pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	ev_timer_stop(p->d->loop, &p->poll_timer);
	pool_defer_unlink(p);
	if (p->req != NULL)
		k8s_req_cancel(p->req);
	p->req = NULL;
	targets_unsubscribe(p->d->targets, p->target);
	owners_unsubscribe(p->d->owners, p->owner);
	scaler_destroy(p->scaler);
	autoscale_state_reset(&p->as);
	free(p);
}

static uint64_t
pool_key_hash(const char *ns, const char *name)
{
	return (as_hash_str(ns) * 31 + as_hash_str(name));
}

static int
pool_key_eq(const struct as_hash_entry *e, const void *arg)
{
	const struct pool	*p = AS_HASH_ITEM(e, struct pool, index_link);
	const struct pool_key	*k = arg;

	return (strcmp(p->cfg->ns, k->ns) == 0 &&
	    strcmp(p->cfg->name, k->name) == 0);
}

/* The scale pool ns/name, or NULL. */
static struct pool *
pool_find(const struct daemon *d, const char *ns, const char *name)
{
	struct pool_key	 k = { ns, name };

	if (as_hash_count(&d->pool_index) == 0)
		return (NULL);	/* perhaps never made: no pools yet */
	return (AS_HASH_ITEM(as_hash_find(&d->pool_index, pool_key_hash(ns,
	    name), &k), struct pool, index_link));
}

/* The pools of namespace ns, or NULL. */
static struct pool_ns *
pool_ns_find(const struct daemon *d, const char *ns)
{
	if (as_hash_count(&d->pool_nss) == 0)
		return (NULL);
	return (AS_HASH_ITEM(as_hash_find_str(&d->pool_nss, ns),
	    struct pool_ns, link));
}

static void
pool_groups_free(struct daemon *d)
{
	struct as_hash_entry *l, *next;
	struct pool_ns	*g;

	for (l = as_hash_first(&d->pool_nss); l != NULL; l = next) {
		next = as_hash_next(&d->pool_nss, l);
		g = AS_HASH_ITEM(l, struct pool_ns, link);
		free(g->name);
		free(g->pools);
		free(g->need);
		free(g->fair);
		free(g->scratch);
		free(g);
	}
	as_hash_fini(&d->pool_nss);
	as_hash_fini(&d->pool_index);
}

/*
 * Indexes d->pools anew: by (namespace, name), and into their namespaces'
 * groups (in d->pools order), with each group's used and needs.
 */
static void
pool_index_build(struct daemon *d)
{
	struct pool_ns	*g;
	struct pool	*p;
	size_t		 i;

	pool_groups_free(d);
	as_hash_init(&d->pool_index, d->npools, 0, pool_key_eq);
	as_hash_init_str(&d->pool_nss, 0, 0,
	    AS_HASH_KEYOFF(struct pool_ns, link, name));
	/* First the size of each group, then its arrays, then its pools. */
	for (i = 0; i < d->npools; i++) {
		p = d->pools[i];
		d->pool_visits++;
		as_hash_insert(&d->pool_index, &p->index_link,
		    pool_key_hash(p->cfg->ns, p->cfg->name));
		if ((g = pool_ns_find(d, p->cfg->ns)) == NULL) {
			g = xcalloc(1, sizeof *g);
			g->name = xstrdup(p->cfg->ns);
			as_hash_insert_str(&d->pool_nss, &g->link);
		}
		p->ns = g;
		p->ns_idx = g->n++;
	}
	for (i = 0; i < d->npools; i++) {
		p = d->pools[i];
		d->pool_visits++;
		g = p->ns;
		if (g->pools == NULL) {
			g->pools = xcalloc(g->n, sizeof *g->pools);
			g->need = xcalloc(g->n, sizeof *g->need);
			g->fair = xcalloc(g->n, sizeof *g->fair);
			g->scratch = xcalloc(g->n, sizeof *g->scratch);
		}
		g->pools[p->ns_idx] = p;
		p->counted = pool_holds(p);
		g->used += p->counted;
		p->spec_counted = p->spec_replicas;
		g->replicas += p->spec_counted;
		g->need[p->ns_idx] = pool_need_seen(p);
		g->need_sum += pool_need_pos(g->need[p->ns_idx]);
	}
}

/* Orders scale pools by target, then age, then name (pool_rivals()). */
static int
pool_rival_cmp(const void *a, const void *b)
{
	const struct pool_config *x = (*(struct pool *const *)a)->cfg;
	const struct pool_config *y = (*(struct pool *const *)b)->cfg;
	int		 r;

	if ((r = strcmp(x->ns, y->ns)) != 0 ||
	    (r = strcmp(x->target_kind, y->target_kind)) != 0 ||
	    (r = strcmp(x->target_name, y->target_name)) != 0)
		return (r);
	if (x->created != y->created)
		return (x->created < y->created ? -1 : 1);
	return (strcmp(x->name, y->name));
}

/*
 * AgentPools on one target: of those that write (scale mode, not in
 * shadow mode) the oldest owns it, by creationTimestamp then name (a
 * file's pools have none: by name); the others' rival names it.
 */
static void
pool_rivals(struct daemon *d)
{
	struct pool	**v, *p;
	size_t		 i, n = 0;

	v = xcalloc(d->npools > 0 ? d->npools : 1, sizeof *v);
	for (i = 0; i < d->npools; i++) {
		p = d->pools[i];
		p->rival[0] = '\0';
		if (p->cfg->mode == POOL_MODE_SCALE && !p->cfg->shadow)
			v[n++] = p;
	}
	d->pool_visits += d->npools;
	qsort(v, n, sizeof *v, pool_rival_cmp);
	for (i = 1; i < n; i++) {
		if (pool_rival_cmp(&v[i - 1], &v[i]) == 0 ||
		    strcmp(v[i - 1]->cfg->ns, v[i]->cfg->ns) != 0 ||
		    strcmp(v[i - 1]->cfg->target_kind,
		    v[i]->cfg->target_kind) != 0 ||
		    strcmp(v[i - 1]->cfg->target_name,
		    v[i]->cfg->target_name) != 0)
			continue;
		/* v[i - 1] is the owner, or yields to the same one. */
		if (v[i - 1]->rival[0] != '\0')
			as_strlcpy(v[i]->rival, v[i - 1]->rival,
			    sizeof v[i]->rival);
		else
			snprintf(v[i]->rival, sizeof v[i]->rival,
			    "AgentPool %s (first by age, then name)", v[i - 1]->cfg->name);
	}
	free(v);
}

void
pool_apply_config(struct daemon *d, const struct config *nc)
{
	struct pool	**np, *p;
	size_t		 i, n;
	int		 retarget;

	np = xcalloc(nc->npools, sizeof *np);
	for (i = 0, n = 0; i < nc->npools; i++) {
		const struct pool_config *c = &nc->pools[i];

		if (config_pool_consumes(c))
			continue;	/* the dispatcher's */
		d->pool_visits++;
		p = pool_find(d, c->ns, c->name);
		if (p != NULL && p->cfg->mode == c->mode &&
		    config_same_source(p->cfg, c)) {
			np[n] = p;
			p->kept = 1;
			if (!c->shadow)
				p->would = -1;
			retarget = c->mode == POOL_MODE_SCALE &&
			    (strcmp(p->cfg->target_kind,
			    c->target_kind) != 0 ||
			    strcmp(p->cfg->target_name, c->target_name) != 0);
			p->cfg = c;
			if (retarget) {
				if (p->req != NULL)
					k8s_req_cancel(p->req);
				p->req = NULL;
				p->dirty = 0;
				autoscale_state_reset(&p->as);
				targets_unsubscribe(d->targets, p->target);
				p->target = targets_subscribe(d->targets,
				    c->target_kind, c->ns, c->target_name,
				    pool_target_cb, p);
				owners_unsubscribe(d->owners, p->owner);
				p->owner = owners_subscribe(d->owners,
				    c->target_kind, c->ns, c->target_name,
				    pool_owner_cb, p);
				pool_target_reset(p);
			}
		} else
			np[n] = pool_new(d, c);
		n++;
	}
	/* Those no longer in the config, or whose source changed. */
	for (i = 0; i < d->npools; i++) {
		p = d->pools[i];
		d->pool_visits++;
		if (p->kept)
			p->kept = 0;
		else
			pool_free(p);
	}
	free(d->pools);
	d->pools = np;
	d->npools = n;
	pool_index_build(d);
	pool_rivals(d);
}

void
pool_forget_targets(struct daemon *d)
{
	size_t	 i;

	for (i = 0; i < d->npools; i++) {
		struct pool *p = d->pools[i];

		d->pool_visits++;
		if (p->req != NULL)
			k8s_req_cancel(p->req);
		p->req = NULL;
		p->dirty = 0;
		pool_target_reset(p);
	}
}

void
pool_evaluate_all(struct daemon *d)
{
	size_t	 i;

	for (i = 0; i < d->npools; i++) {
		d->pool_visits++;
		pool_evaluate(d->pools[i]);
	}
}

void
pool_free_all(struct daemon *d)
{
	size_t	 i;

	for (i = 0; i < d->npools; i++)
		pool_free(d->pools[i]);
	free(d->pools);
	d->pools = NULL;
	d->npools = 0;
	ev_prepare_stop(d->loop, &d->pool_defer_w);
	pool_groups_free(d);
}

/* CRD mode (crd.h): the status of the objects. */

/* The Shadow and Paused conditions of p, and a dispatch pool's view. */
static void
pool_status_hold(const struct pool *p, struct crd_pool_status *st)
{
	const struct pool_config *c = p->cfg;
	int	 disp = c->mode == POOL_MODE_DISPATCH;

	if (disp) {
		st->dispatch = 1;
		st->replicas = -1;
		st->desired = p->would > 0 ? p->would : 0;
		st->in_flight = 0;
		st->started = p->source_read;
		st->warm_replicas = -1;
	}
	st->shadow = c->shadow;
	st->paused = c->paused && !c->shadow;
	if (c->shadow && p->would < 0)
		snprintf(st->hold_msg, sizeof st->hold_msg, "no decision yet; "
		    "nothing is %s", disp ? "consumed" : "written");
	else if (c->shadow && disp)
		snprintf(st->hold_msg, sizeof st->hold_msg, "would claim %ld "
		    "sandboxes for the backlog; nothing is consumed", p->would);
	else if (c->shadow)
		snprintf(st->hold_msg, sizeof st->hold_msg, "would scale %s/%s "
		    "to %ld (now %ld); nothing is written", c->target_kind,
		    c->target_name, p->would, p->spec_replicas);
	else if (c->paused && c->paused_replicas >= 0)
		snprintf(st->hold_msg, sizeof st->hold_msg, "%s: %s/%s held at "
		    "%ld replicas", CONFIG_ANN_PAUSED_REPLICAS, c->target_kind,
		    c->target_name, c->paused_replicas);
	else if (c->paused)
		snprintf(st->hold_msg, sizeof st->hold_msg, "%s: nothing is %s",
		    CONFIG_ANN_PAUSED, disp ? "consumed" : "written");
}

/* What p's AgentPool status reports (pool_crd_status()). */
static void
pool_status_fill(const struct pool *p, struct crd_pool_status *st)
{
	st->replicas = p->spec_known ? p->spec_replicas : -1;
	st->desired = p->as.desired;
	st->backlog = lround(p->ready);
	st->in_flight = lround(p->in_flight);
	st->last_scale = p->last_scale_wall;
	st->started = p->source_read && p->spec_known;
	st->source_ok = p->source_ok;
	as_strlcpy_utf8(st->source_err, p->source_err, sizeof st->source_err);
	as_strlcpy_utf8(st->target_err, p->k8s_err, sizeof st->target_err);
	st->quota_limited = p->last.reason == AUTOSCALE_QUOTA &&
	    !p->cfg->shadow;
	as_strlcpy_utf8(st->conflict, p->conflict, sizeof st->conflict);
	pool_status_hold(p, st);
	if (st->quota_limited)
		snprintf(st->quota_msg, sizeof st->quota_msg, "needs %ld "
		    "replicas, the namespace's AgentQuota allows %ld",
		    p->last.need, p->last.desired);
}

/*
 * After an event of p: when what its status reports changed since it was
 * last noted (a hash of the whole report), the CRD makes it again.
 */
static void
pool_status_note(struct pool *p)
{
	struct crd_pool_status st;
	uint64_t	 h;

	memset(&st, 0, sizeof st);
	pool_status_fill(p, &st);
	if ((h = crd_pool_status_hash(&st)) == p->status_hash)
		return;
	p->status_hash = h;
	p->d->status_touches++;
	crd_status_touch(p->d->crd, p->cfg->ns, p->cfg->name);
}

int
pool_crd_status(void *arg, const char *ns, const char *name,
    struct crd_pool_status *st)
{
	struct daemon	*d = arg;
	const struct pool *p;

	d->pool_visits++;
	if ((p = pool_find(d, ns, name)) != NULL) {
		pool_status_fill(p, st);
		return (0);
	}
	if (d->dispatch == NULL)
		return (-1);	/* a standby: the leader writes status */
	return (dispatcher_pool_status(d->dispatch, ns, name, st));
}

int
pool_crd_quota_status(void *arg, const char *ns, struct crd_quota_status *st)
{
	struct daemon	*d = arg;
	const struct quota_config *qc;
	const struct pool_ns *g;
	long		 n;

	if (d->dispatch != NULL &&
	    dispatcher_quota_status(d->dispatch, ns, st) == 0)
		return (0);
	/* Scale pools only: their replicas are all the namespace uses. */
	n = (g = pool_ns_find(d, ns)) != NULL ? g->replicas : 0;
	st->sandboxes = st->replicas = n;
	qc = config_quota_for(d->config, ns);
	st->limited = qc != NULL && qc->max_sandboxes >= 0 &&
	    n >= qc->max_sandboxes;
	if (st->limited)
		snprintf(st->limited_msg, sizeof st->limited_msg, "%ld of %ld "
		    "sandboxes in use", n, qc->max_sandboxes);
	return (0);
}
