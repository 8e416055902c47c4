/*
 * daemon.c: the main loop and the pools of scale mode.
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
 * Leader election (--leader-elect, k8s/leader.c): d->leading is 1 while
 * this process may write, always 1 without election.  A standby polls its
 * sources, reads its targets and runs the maths (so its stabilization
 * windows are warm), but every write site asks daemon_may_write() first,
 * which also reads the elector's clock (status and Event writes too: the
 * CRD mode's writers ask it at each write through crd_options), and the
 * dispatcher (consumers, claims, warm-pool sizing) exists only while
 * leading.  Stopping to lead cancels the writes in flight and frees the
 * dispatcher: held messages go back to their sources.
 *
 * A target that cannot be read is read again after pool_read_backoff(),
 * not at every poll; the replicas are held meanwhile.
 */
#include <math.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "autoscale.h"
#include "agentscaler/rt/common.h"
#include "config.h"
#include "crd.h"
#include "daemon.h"
#include "dispatch.h"
#include "agentscaler/rt/http.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/k8s/leader.h"
#include "agentscaler/rt/log.h"
#include "quota.h"
#include "agentscaler/scalers/scaler.h"
#include "agentscaler/k8s/secret_store.h"

struct daemon;

struct pool {
	struct daemon		*d;
	const struct pool_config *cfg;	/* points into d->config */
	char			 id[320];	/* ns/name, for logs */
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

	/* The target, as Kubernetes last told us. */
	struct k8s_req		*req;
	int			 dirty;
	int			 spec_known;
	long			 spec_replicas;
	long			 status_replicas;
	double			 spec_time;	/* monotonic */
	char			 k8s_err[256];
	unsigned		 read_failures;	/* target reads failed in a row */
	double			 read_at;	/* monotonic: next read no sooner */

	struct autoscale_state	 as;
	struct autoscale_decision last;
	double			 last_scale_wall;

	uint64_t		 scale_up;
	uint64_t		 scale_down;
	uint64_t		 source_errors;
	uint64_t		 kube_errors;
	uint64_t		 polls;
	uint64_t		 wakeups;
};

struct daemon {
	struct ev_loop		*loop;
	const struct daemon_options *opts;
	struct config		*config;
	struct pool		**pools;
	size_t			 npools;
	struct k8s_client	*k8s;
	struct dispatcher	*dispatch;
	struct http_server	*http;		/* --metrics-addr */
	struct http_server	*admin;		/* --admin-addr, or NULL */
	ev_signal		 sigterm, sigint, sighup;
	uint64_t		 reloads_ok, reloads_failed;
	double			 started;
	struct crd		*crd;		/* CRD mode, else NULL */
	struct secret_store	*secrets;	/* CRD mode, else NULL */

	/* Leader election; elector NULL when off. */
	struct leader		*elector;
	struct k8s_client	*lease_k8s;	/* the elector's own client */
	int			 leading;	/* 1 without election */
	int			 releasing;	/* SIGTERM: Lease going */
	struct dispatch_options	 dopts;
};

static void	 pool_poll(struct pool *);
static double	 pool_read_backoff(unsigned);
static void	 pool_evaluate(struct pool *);
static void	 pool_free(struct pool *);
static void	 daemon_apply(struct daemon *, struct config *);

/*
 * 1 when this process may write to Kubernetes now: always without leader
 * election; with it, while it holds the Lease within its renew deadline,
 * read from the clock at this call (leader_is_leader()), so a write is
 * refused even before the elector's timers have run.
 */
static int
daemon_may_write(const struct daemon *d)
{
	return (d->leading && (d->elector == NULL ||
	    leader_is_leader(d->elector)));
}

/* daemon_may_write() for crd.h: status and Event writes ask it too. */
static int
daemon_may_write_cb(void *arg)
{
	return (daemon_may_write(arg));
}

static double
pool_interval(const struct pool *p)
{
	double	 base = (double)p->cfg->poll_interval_ms / 1000.0;

	/* +-10% jitter so pools sharing a broker spread their polls. */
	return (base * (0.9 + 0.2 * as_random()));
}

static void
pool_poll_done(struct scaler *s, const struct scaler_result *r, void *arg)
{
	struct pool	*p = arg;

	(void)s;
	if (r->error == -AS_ECANCELED)
		return;		/* the pool is being destroyed */
	p->polling = 0;
	p->polls++;
	if (r->error != 0) {
		p->source_errors++;
		if (p->source_ok || strcmp(p->source_err, r->errmsg) != 0)
			log_warn("pool", "%s: cannot read the source, holding "
			    "replicas: %s", p->id, r->errmsg);
		if (p->source_ok || p->source_err[0] == '\0')
			crd_event(p->d->crd, "AgentPool", p->cfg->ns,
			    p->cfg->name, EVENT_WARNING, "SourceError", "Poll",
			    "cannot read %s %s, holding replicas: %s",
			    p->cfg->source.type, p->cfg->source.queue,
			    r->errmsg);
		p->source_ok = 0;
		as_strlcpy(p->source_err, r->errmsg, sizeof p->source_err);
	} else {
		if (!p->source_ok && p->source_err[0] != '\0')
			log_info("pool", "%s: source readable again", p->id);
		p->source_ok = 1;
		p->source_read = 1;
		p->source_err[0] = '\0';
		p->ready = r->ready;
		p->in_flight = r->in_flight;
	}
	pool_evaluate(p);
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
		log_warn("pool", "%s: poll refused: %s", p->id,
		    as_strerror(rc));
		return;
	}
	p->polling = 1;
}

static void
pool_wake(struct scaler *s, void *arg)
{
	struct pool	*p = arg;

	(void)s;
	p->wakeups++;
	pool_poll(p);
}

static void
pool_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pool	*p = w->data;

	(void)revents;
	pool_poll(p);
	w->repeat = pool_interval(p);
	ev_timer_again(loop, w);
}

/* 1 while the source's push wake-ups are live; read live, never cached. */
static int
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
		log_warn("pool", "%s: %s %s %s failed: %s", p->id, what,
		    p->cfg->target_kind, p->cfg->target_name, msg);
	as_strlcpy(p->k8s_err, msg, sizeof p->k8s_err);
}

static void
pool_k8s_ok(struct pool *p, const struct k8s_scale *sc)
{
	if (p->k8s_err[0] != '\0')
		log_info("pool", "%s: %s %s reachable again", p->id,
		    p->cfg->target_kind, p->cfg->target_name);
	p->k8s_err[0] = '\0';
	p->spec_known = 1;
	p->spec_replicas = sc->spec_replicas;
	p->status_replicas = sc->status_replicas;
	p->spec_time = as_mono_now();
}

/*
 * The wait before the next read of a target after `failures` reads failed
 * in a row: exponential from 1 s to 30 s, jittered within its upper half
 * (so that pools missing their targets together spread, and the wait
 * never falls back to the start).  A missing Deployment is then read a
 * few times a minute at most instead of at every poll.
 */
static double
pool_read_backoff(unsigned failures)
{
	double	 hi = 1.0;
	unsigned i;

	for (i = 1; i < failures && hi < 30.0; i++)
		hi *= 2;
	if (hi > 30.0)
		hi = 30.0;
	return (hi * (0.5 + 0.5 * as_random()));
}

static void
pool_get_done(int err, const struct k8s_scale *sc, const char *msg, void *arg)
{
	struct pool	*p = arg;

	if (err == -AS_ECANCELED)
		return;
	p->req = NULL;
	if (err != 0) {
		pool_set_k8s_error(p, "reading", msg);
		p->read_failures++;
		p->read_at = as_mono_now() +
		    pool_read_backoff(p->read_failures);
	} else {
		pool_k8s_ok(p, sc);
		p->read_failures = 0;
		p->read_at = 0;
		p->dirty = 1;
	}
	if (p->dirty && p->spec_known) {
		p->dirty = 0;
		pool_evaluate(p);
	}
}

static void
pool_patch_done(int err, const struct k8s_scale *sc, const char *msg,
    void *arg)
{
	struct pool	*p = arg;
	long		 before = p->spec_replicas;

	if (err == -AS_ECANCELED)
		return;
	p->req = NULL;
	if (err != 0) {
		pool_set_k8s_error(p, "scaling", msg);
		/* Read it again before the next decision. */
		if (err == -AS_ENOTFOUND || err == -AS_ECONFLICT)
			p->spec_known = 0;
	} else {
		pool_k8s_ok(p, sc);
		if (sc->spec_replicas > before)
			p->scale_up++;
		else if (sc->spec_replicas < before)
			p->scale_down++;
		p->last_scale_wall = as_wall_now();
		log_info("pool", "%s: scaled %s %s from %ld to %ld (%s, "
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
}

/* What a pool would ask for from its latest reading, within min/max. */
static long
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
 * The most replicas this pool may run under its namespace's AgentQuota,
 * or -1 without a limit.  The namespace's budget for scale pools (what
 * maxSandboxes leaves after dispatch tasks and warm spares) is shared by
 * quota_share(): equal shares, water-filled over what each pool needs, so
 * pools that compete converge to fair shares.  The cap also never exceeds
 * what is free right now (replicas written or being written count), so a
 * pool grows into its share only as another shrinks out of it: the sum
 * never overshoots.
 */
static long
pool_quota_cap(struct pool *p, double backlog)
{
	struct daemon	*d = p->d;
	long		*need, *fair, used = 0, head, budget, cap, c;
	size_t		 i, n = 0, self = 0;

	for (i = 0; i < d->npools; i++) {
		const struct pool *q = d->pools[i];

		if (strcmp(q->cfg->ns, p->cfg->ns) == 0)
			used += q->as.desired > q->spec_replicas ?
			    q->as.desired : q->spec_replicas;
	}
	head = dispatcher_headroom(d->dispatch, d->config, p->cfg->ns, used);
	if (head < 0)
		return (-1);
	budget = head + used;
	need = xcalloc(d->npools, sizeof *need);
	fair = xcalloc(d->npools, sizeof *fair);
	for (i = 0; i < d->npools; i++) {
		const struct pool *q = d->pools[i];

		if (strcmp(q->cfg->ns, p->cfg->ns) != 0)
			continue;
		if (q == p)
			self = n;
		/*
		 * A pool that has not polled yet may need anything: its fair
		 * share is kept for it, so the first pool to read does not
		 * take the whole budget only to give it back (pods started
		 * and then killed).  After a failed read it needs nothing
		 * new; the replicas it holds are in "used" all the same.
		 */
		if (q == p)
			need[n++] = pool_need(q, backlog);
		else if (q->polls == 0)
			need[n++] = q->cfg->scaling.max_replicas;
		else
			need[n++] = q->source_read ? pool_need(q, q->ready +
			    (q->cfg->source.count_in_flight ? q->in_flight :
			    0)) : 0;
	}
	quota_share(budget, need, fair, n);
	c = p->as.desired > p->spec_replicas ? p->as.desired :
	    p->spec_replicas;
	cap = fair[self];
	if (cap > c + head)
		cap = c + head;
	free(need);
	free(fair);
	return (cap > 0 ? cap : 0);
}

static void
pool_evaluate(struct pool *p)
{
	const struct pool_config *c = p->cfg;
	struct autoscale_input	 in;
	struct autoscale_decision d;
	double			 now = as_mono_now();

	if (p->req != NULL) {
		p->dirty = 1;
		return;
	}
	if (!p->spec_known || now - p->spec_time >
	    p->d->opts->resync_seconds) {
		/* After failed reads, not before the backoff: hold. */
		if (now >= p->read_at)
			p->req = k8s_scale_get(p->d->k8s, c->target_kind,
			    c->ns, c->target_name, pool_get_done, p);
		return;
	}
	memset(&in, 0, sizeof in);
	in.source_ok = p->source_ok;
	in.backlog = p->ready + (c->source.count_in_flight ? p->in_flight : 0);
	in.in_flight = c->source.count_in_flight ? p->in_flight : 0;
	in.current = p->spec_replicas;
	in.quota_cap = pool_quota_cap(p, in.backlog);
	in.now = now;
	autoscale_decide(&p->as, &c->scaling, &in, &d);
	p->last = d;
	/* A standby decides (its windows stay warm) but never writes. */
	if (d.desired == p->spec_replicas || !daemon_may_write(p->d))
		return;
	p->req = k8s_scale_patch(p->d->k8s, c->target_kind, c->ns,
	    c->target_name, d.desired, pool_patch_done, p);
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
	/* Unknown until the first read: nothing is decided before it. */
	p->source_ok = 0;
	snprintf(p->id, sizeof p->id, "%s/%s", c->ns, c->name);
	st = scaler_type_find(c->source.type);	/* checked by config */
	config_pool_source(c, &src);
	p->scaler = st != NULL ? st->create(d->loop, &src, err, sizeof err) :
	    NULL;
	if (p->scaler == NULL) {
		/* Config validated the source; this is a resource failure. */
		log_error("pool", "%s: cannot create the %s source: %s", p->id,
		    c->source.type, st != NULL ? err : "unknown type");
		p->source_ok = 0;
		as_strlcpy(p->source_err, err, sizeof p->source_err);
	} else if (st->subscribe != NULL &&
	    st->subscribe(p->scaler, pool_wake, p) == 0)
		log_info("pool", "%s: push wake-ups requested on %s %s", p->id,
		    c->source.type, c->source.queue);
	else
		log_info("pool", "%s: polling %s %s every %ld ms", p->id,
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
	if (p->req != NULL)
		k8s_req_cancel(p->req);
	p->req = NULL;
	scaler_destroy(p->scaler);
	free(p);
}

/*
 * Swaps in a new config: a pool whose identity and source are unchanged
 * keeps its connection, its readings and its autoscale state; the others are
 * rebuilt.  Takes ownership of nc.
 */
static void
daemon_apply(struct daemon *d, struct config *nc)
{
	struct pool	**np, *p;
	size_t		 i, j, n;

	np = xcalloc(nc->npools, sizeof *np);
	for (i = 0, n = 0; i < nc->npools; i++) {
		const struct pool_config *c = &nc->pools[i];

		if (c->mode != POOL_MODE_SCALE)
			continue;	/* the dispatcher's */

		for (j = 0; j < d->npools; j++) {
			p = d->pools[j];
			if (p == NULL || strcmp(p->cfg->ns, c->ns) != 0 ||
			    strcmp(p->cfg->name, c->name) != 0)
				continue;
			if (config_same_source(p->cfg, c)) {
				np[n] = p;
				d->pools[j] = NULL;
				if (strcmp(p->cfg->target_kind,
				    c->target_kind) != 0 ||
				    strcmp(p->cfg->target_name,
				    c->target_name) != 0) {
					if (p->req != NULL)
						k8s_req_cancel(p->req);
					p->req = NULL;
					p->spec_known = 0;
					memset(&p->as, 0, sizeof p->as);
				}
				p->cfg = c;
			}
			break;
		}
		if (np[n] == NULL)
			np[n] = pool_new(d, c);
		n++;
	}
	for (j = 0; j < d->npools; j++)
		pool_free(d->pools[j]);
	free(d->pools);
	d->pools = np;
	d->npools = n;
	if (d->dispatch != NULL)
		dispatcher_apply(d->dispatch, nc);
	config_free(d->config);
	d->config = nc;
	log_info("daemon", "config loaded: %zu pools, %zu quotas", nc->npools,
	    nc->nquotas);
}

static void
daemon_reload(struct daemon *d)
{
	struct config	*nc;
	char		 err[512];

	if (d->crd != NULL) {
		log_info("daemon", "CRD mode: nothing to reload, AgentPool and "
		    "AgentQuota changes apply as they happen");
		return;
	}
	if (config_load(d->opts->config_path, d->opts->secrets_dir, &nc, err,
	    sizeof err) != 0) {
		d->reloads_failed++;
		log_error("daemon", "reload refused, keeping the running "
		    "config: %s", err);
		return;
	}
	d->reloads_ok++;
	daemon_apply(d, nc);
}

/* Leader election. */

/*
 * Leadership changed hands: each pool's request in flight is cancelled
 * and its target read again before the next decision (the other process
 * may have written it meanwhile).
 */
static void
daemon_pools_forget_targets(struct daemon *d)
{
	size_t	 i;

	for (i = 0; i < d->npools; i++) {
		struct pool *p = d->pools[i];

		if (p->req != NULL)
			k8s_req_cancel(p->req);
		p->req = NULL;
		p->dirty = 0;
		p->spec_known = 0;
	}
}

/*
 * The elector's started callback: the writes begin.  Each scale pool reads
 * its target again before its first write (the old leader may have changed
 * it after our last read), and the dispatcher starts: it lists the claims,
 * rebuilds the live tasks, then consumes (adopting the Redis processing
 * lists of other instances, now orphans).
 */
static void
daemon_start_leading(struct leader *l, void *arg)
{
	struct daemon	*d = arg;
	size_t		 i;

	(void)l;
	if (d->leading)
		return;
	d->leading = 1;
	log_info("daemon", "leader: writing to Kubernetes and consuming tasks");
	daemon_pools_forget_targets(d);
	for (i = 0; i < d->npools; i++)
		pool_evaluate(d->pools[i]);
	if (d->dispatch == NULL) {
		d->dispatch = dispatcher_new(d->loop, d->k8s, &d->dopts);
		dispatcher_apply(d->dispatch, d->config);
	}
}

/*
 * The elector's stopped callback (renew deadline passed, Lease lost or
 * being released): no write may go out from here on.  Requests in flight
 * are cancelled; the dispatcher goes, its consumers with it, so the
 * messages it held return to their sources for the next leader.
 */
static void
daemon_stop_leading(struct leader *l, void *arg)
{
	struct daemon	*d = arg;

	(void)l;
	if (!d->leading)
		return;
	d->leading = 0;
	daemon_pools_forget_targets(d);
	crd_hold(d->crd);	/* status, Events in flight */
	dispatcher_free(d->dispatch);
	d->dispatch = NULL;
	log_warn("daemon", "standby: no more writes to Kubernetes, no tasks "
	    "consumed");
}

/*
 * Starts campaigning.  The elector gets a Kubernetes client of its own:
 * no retries (its retry period is the retry) and a timeout of half the
 * renew deadline, so a renewal never waits behind other requests in the
 * shared rate limiter nor outlives the term it is meant to extend.
 */
static int
daemon_elect(struct daemon *d)
{
	struct k8s_options ko = d->opts->k8s;
	struct leader_options lo = d->opts->leader;
	char		 err[512];

	lo.identity = d->opts->instance;
	ko.max_retries = -1;
	if (ko.timeout <= 0 || ko.timeout > lo.renew_deadline / 2)
		ko.timeout = lo.renew_deadline / 2;
	if ((d->lease_k8s = k8s_client_new(d->loop, &ko, err,
	    sizeof err)) == NULL) {
		log_error("daemon", "kubernetes client (leader election): %s",
		    err);
		return (-AS_EINVAL);
	}
	d->elector = leader_new(d->lease_k8s, &lo, daemon_start_leading,
	    daemon_stop_leading, d, err, sizeof err);
	if (d->elector == NULL) {
		log_error("daemon", "leader election: %s", err);
		return (-AS_EINVAL);
	}
	return (0);
}

static void
daemon_released(struct leader *l, int err, void *arg)
{
	struct daemon	*d = arg;

	(void)l;
	if (err != 0)
		log_warn("daemon", "the Lease was not released (%s); the "
		    "standby takes over when it expires", as_strerror(err));
	ev_break(d->loop, EVBREAK_ALL);
}

static void
daemon_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon	*d = w->data;

	(void)revents;
	if (w->signum == SIGHUP) {
		log_info("daemon", "SIGHUP: reloading %s",
		    d->opts->config_path != NULL ? d->opts->config_path :
		    "(CRD mode)");
		daemon_reload(d);
		return;
	}
	log_info("daemon", "%s: stopping", w->signum == SIGTERM ? "SIGTERM" :
	    "SIGINT");
	/*
	 * Stop writing, then hand the Lease over (bounded), so the standby
	 * need not wait for it to expire.  A second signal does not wait.
	 */
	if (d->elector != NULL && !d->releasing) {
		d->releasing = 1;
		if (leader_release(d->elector, DAEMON_RELEASE_WAIT,
		    daemon_released, d) == 0)
			return;
	}
	ev_break(loop, EVBREAK_ALL);
}

/* /metrics: Prometheus text exposition format 0.0.4. */

/* One (verb, code) counter of a client, into the family named. */
struct metrics_stat {
	struct as_buf	*b;
	const char	*family;
};

static void
metrics_kube_stat(const char *verb, long code, uint64_t count, void *arg)
{
	struct metrics_stat *ms = arg;

	as_buf_printf(ms->b, "%s{verb=\"", ms->family);
	as_buf_label(ms->b, verb);
	as_buf_printf(ms->b, "\",code=\"%ld\"} %llu\n", code,
	    (unsigned long long)count);
}

/* One series of a pool: name{namespace,pool[,extra]} value. */
static void
metrics_series(struct as_buf *b, const char *name, const struct pool *p,
    const char *extra, double v)
{
	as_buf_printf(b, "%s{namespace=\"", name);
	as_buf_label(b, p->cfg->ns);
	as_buf_printf(b, "\",pool=\"");
	as_buf_label(b, p->cfg->name);
	as_buf_printf(b, "\"%s%s} %.17g\n", extra != NULL ? "," : "",
	    extra != NULL ? extra : "", v);
}

/* The per-pool families, read straight from struct pool. */
#define POOL_D(m) offsetof(struct pool, m), 'd'
#define POOL_L(m) offsetof(struct pool, m), 'l'
#define POOL_U(m) offsetof(struct pool, m), 'u'
#define POOL_I(m) offsetof(struct pool, m), 'i'
static const struct {
	const char	*name;
	const char	*type;
	const char	*extra;		/* a fixed extra label, or NULL */
	size_t		 off;
	char		 kind;		/* d double, l long, u uint64, i int,
					   p push state (computed) */
	const char	*help;
} metrics_pool_rows[] = {
	{ "agentscaler_pool_backlog", "gauge", NULL, POOL_D(ready),
	    "Tasks waiting in the source at the last read." },
	{ "agentscaler_pool_in_flight", "gauge", NULL, POOL_D(in_flight),
	    "Tasks taken but not finished at the last read." },
	{ "agentscaler_pool_desired_replicas", "gauge", NULL,
	    POOL_L(as.desired), "Replicas the last decision asked for." },
	{ "agentscaler_pool_replicas", "gauge", NULL, POOL_L(spec_replicas),
	    "spec.replicas of the target as last read or written." },
	{ "agentscaler_pool_status_replicas", "gauge", NULL,
	    POOL_L(status_replicas),
	    "status.replicas of the target as last read." },
	{ "agentscaler_pool_scale_events_total", "counter",
	    "direction=\"up\"", POOL_U(scale_up),
	    "Successful scale writes by direction." },
	{ "agentscaler_pool_scale_events_total", NULL, "direction=\"down\"",
	    POOL_U(scale_down), NULL },
	{ "agentscaler_source_errors_total", "counter", NULL,
	    POOL_U(source_errors), "Failed reads of the pool's source." },
	{ "agentscaler_source_up", "gauge", NULL, POOL_I(source_ok),
	    "1 when the last read of the source succeeded." },
	{ "agentscaler_source_push", "gauge", NULL, 0, 'p',
	    "1 while push wake-ups are live, 0 when polling only." },
	{ "agentscaler_source_polls_total", "counter", NULL, POOL_U(polls),
	    "Completed reads of the source." },
	{ "agentscaler_source_wakeups_total", "counter", NULL,
	    POOL_U(wakeups), "Push wake-ups received." },
	{ "agentscaler_pool_kube_errors_total", "counter", NULL,
	    POOL_U(kube_errors), "Failed reads or writes of the pool's target." },
};

static double
metrics_pool_value(const struct pool *p, size_t off, char kind)
{
	const char	*f = (const char *)p + off;

	switch (kind) {
	case 'd':
		return (*(const double *)f);
	case 'l':
		return ((double)*(const long *)f);
	case 'u':
		return ((double)*(const uint64_t *)f);
	case 'p':
		return (pool_pushing(p));
	default:
		return ((double)*(const int *)f);
	}
}

/* The connection bounds of both listeners (http.h). */
static void
metrics_http(const struct daemon *d, struct as_buf *b)
{
	const struct http_server *srv[2] = { d->http, d->admin };
	const char	*name[2] = { "metrics", "admin" };
	struct http_stats st[2];
	size_t		 i;

	for (i = 0; i < 2; i++)
		if (srv[i] != NULL)
			http_server_get_stats(srv[i], &st[i]);
	as_buf_printf(b, "# HELP agentscaler_http_connections Open "
	    "connections of each listener (at most %d each).\n"
	    "# TYPE agentscaler_http_connections gauge\n", HTTP_MAX_CONNS);
	for (i = 0; i < 2; i++)
		if (srv[i] != NULL)
			as_buf_printf(b, "agentscaler_http_connections"
			    "{listener=\"%s\"} %llu\n", name[i],
			    (unsigned long long)st[i].open);
	as_buf_printf(b, "# HELP agentscaler_http_connections_closed_total "
	    "Connections the server closed: evicted (the oldest, for a new "
	    "one at the limit), expired (no complete request within %d s).\n"
	    "# TYPE agentscaler_http_connections_closed_total counter\n",
	    HTTP_REQUEST_SECONDS);
	for (i = 0; i < 2; i++)
		if (srv[i] != NULL)
			as_buf_printf(b, "agentscaler_http_connections_closed_"
			    "total{listener=\"%s\",reason=\"evicted\"} %llu\n"
			    "agentscaler_http_connections_closed_total"
			    "{listener=\"%s\",reason=\"expired\"} %llu\n",
			    name[i], (unsigned long long)st[i].evicted, name[i],
			    (unsigned long long)st[i].expired);
}

static void
daemon_metrics(void *arg, struct http_reply *r)
{
	struct daemon	*d = arg;
	struct as_buf	 b = { NULL, 0, 0 };
	struct metrics_stat ms = { &b, "agentscaler_kube_requests_total" };
	size_t		 i, j;

	as_buf_printf(&b, "# HELP agentscaler_build_info Build of the running "
	    "daemon.\n# TYPE agentscaler_build_info gauge\n"
	    "agentscaler_build_info{version=\"");
	as_buf_label(&b, as_version);
	as_buf_printf(&b, "\"} 1\n");
	as_buf_printf(&b, "# HELP agentscaler_uptime_seconds Seconds since "
	    "start.\n# TYPE agentscaler_uptime_seconds gauge\n"
	    "agentscaler_uptime_seconds %.3f\n", as_mono_now() - d->started);
	as_buf_printf(&b, "# HELP agentscaler_config_reloads_total SIGHUP "
	    "reloads by result.\n# TYPE agentscaler_config_reloads_total "
	    "counter\nagentscaler_config_reloads_total{result=\"ok\"} %llu\n"
	    "agentscaler_config_reloads_total{result=\"refused\"} %llu\n",
	    (unsigned long long)d->reloads_ok,
	    (unsigned long long)d->reloads_failed);
	for (i = 0; i < AS_ARRAY_SIZE(metrics_pool_rows); i++) {
		const char *name = metrics_pool_rows[i].name;

		/* Rows of one family are adjacent; only the first has help. */
		if (metrics_pool_rows[i].help != NULL)
			as_buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", name,
			    metrics_pool_rows[i].help, name,
			    metrics_pool_rows[i].type);
		for (j = 0; j < d->npools; j++)
			metrics_series(&b, name, d->pools[j],
			    metrics_pool_rows[i].extra,
			    metrics_pool_value(d->pools[j],
			    metrics_pool_rows[i].off,
			    metrics_pool_rows[i].kind));
	}
	as_buf_printf(&b, "# HELP agentscaler_kube_requests_total Kubernetes "
	    "API requests by verb and HTTP code (0: no response).\n"
	    "# TYPE agentscaler_kube_requests_total counter\n");
	k8s_client_foreach_stat(d->k8s, metrics_kube_stat, &ms);
	if (d->lease_k8s != NULL) {
		as_buf_printf(&b, "# HELP agentscaler_lease_requests_total "
		    "Requests of the leader elector (a client of its own) by "
		    "verb and HTTP code (0: no response).\n"
		    "# TYPE agentscaler_lease_requests_total counter\n");
		ms.family = "agentscaler_lease_requests_total";
		k8s_client_foreach_stat(d->lease_k8s, metrics_kube_stat, &ms);
	}
	as_buf_printf(&b, "# HELP agentscaler_leader 1 while this process "
	    "may write to Kubernetes (holds the Lease; always 1 without "
	    "--leader-elect).\n# TYPE agentscaler_leader gauge\n"
	    "agentscaler_leader %d\n", daemon_may_write(d));
	if (d->elector != NULL)
		leader_metrics(d->elector, &b);
	if (d->dispatch != NULL)
		dispatcher_metrics(d->dispatch, &b);
	if (d->crd != NULL)
		crd_metrics(d->crd, &b);
	if (d->secrets != NULL)
		secret_store_metrics(d->secrets, &b);
	metrics_http(d, &b);
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	r->body = b.p;
	r->len = b.len;
}

static void
daemon_healthz(void *arg, struct http_reply *r)
{
	(void)arg;
	r->body = xstrdup("ok\n");
}

static void
daemon_k8s_answered(const char *verb, long code, uint64_t count, void *arg)
{
	int	*answered = arg;

	(void)verb;
	/* 0 is no answer; 401 refused our credentials, a process problem. */
	if (count > 0 && code > 0 && code != 401)
		*answered = 1;
}

/*
 * /readyz is about this process, not its tenants: 200 once it can do its
 * work: in CRD mode the informers listed and the config applied, else the
 * API server answered (any status but 401: a missing Deployment is a 404
 * answer); with election the Lease read; the claims of every dispatch
 * namespace listed, since its tasks are rebuilt from them before anything
 * is admitted.  Answering at all means the loop runs.  A pool's own trouble
 * (its source unreachable, its target missing) is that pool's: its status
 * conditions, agentscaler_source_up and /status carry it, and the body
 * lists it after the verdict, but it never makes the process unready: a
 * rollout must not stall, nor a replica leave its Service, because one
 * tenant's Redis is down.
 */
static void
daemon_readyz(void *arg, struct http_reply *r)
{
	struct daemon	*d = arg;
	struct as_buf	 b = { NULL, 0, 0 }, pools = { NULL, 0, 0 };
	size_t		 i;
	int		 answered = 0;

	for (i = 0; i < d->npools; i++) {
		const struct pool *p = d->pools[i];

		if (!p->source_read)
			as_buf_printf(&pools, "%s: source not read yet%s%s\n",
			    p->id, p->source_err[0] ? ": " : "",
			    p->source_err);
		else if (!p->spec_known)
			as_buf_printf(&pools, "%s: target not read yet%s%s\n",
			    p->id, p->k8s_err[0] ? ": " : "", p->k8s_err);
	}
	if (d->crd == NULL && d->config != NULL && d->config->npools > 0) {
		k8s_client_foreach_stat(d->k8s, daemon_k8s_answered,
		    &answered);
		if (!answered)
			as_buf_printf(&b, "Kubernetes API not reached yet\n");
	}
	if (d->dispatch != NULL)
		dispatcher_readyz(d->dispatch, &b, &pools);
	if (d->elector != NULL && !leader_observed(d->elector))
		as_buf_printf(&b, "Lease %s/%s not read yet%s%s\n",
		    d->opts->leader.ns, d->opts->leader.name,
		    leader_error(d->elector)[0] ? ": " : "",
		    leader_error(d->elector));
	if (d->crd != NULL)
		crd_readyz(d->crd, &b);
	if (b.len > 0)
		r->status = 503;
	else if (d->elector != NULL) {
		/* Both are ready: the standby is the warm spare. */
		if (daemon_may_write(d))
			as_buf_printf(&b, "ok: leader\n");
		else
			as_buf_printf(&b, "ok: standby (Lease held by %s)\n",
			    leader_holder(d->elector)[0] != '\0' ?
			    leader_holder(d->elector) : "nobody");
	} else
		as_buf_printf(&b, "ok\n");
	if (pools.len > 0)
		as_buf_printf(&b, "pools with problems of their own (not "
		    "this process's; see their status and /status):\n%s",
		    pools.p);
	free(pools.p);
	r->body = b.p;
	r->len = b.len;
}

/* /explain?task=ID: why a task waits, runs or was rejected. */
static void
daemon_explain(void *arg, struct http_reply *r)
{
	struct daemon	*d = arg;
	const char	*id = http_query(r, "task");
	cJSON		*o;

	r->content_type = "application/json";
	if (id == NULL || *id == '\0') {
		r->status = 400;
		r->body = xstrdup("{\"error\":\"give ?task=<task id>\"}\n");
		return;
	}
	o = cJSON_CreateObject();
	if (d->dispatch == NULL) {
		/* A standby holds no tasks: the leader knows. */
		r->status = 503;
		cJSON_AddStringToObject(o, "task", id);
		cJSON_AddStringToObject(o, "explanation", "this agentscaler is "
		    "a standby and holds no tasks; ask the leader (the Lease's "
		    "holder, see /status)");
	} else if (!dispatcher_explain(d->dispatch, id, o))
		r->status = 404;
	r->body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (r->body == NULL)
		r->body = xstrdup("{}");
}

/* /status: the pools as JSON, for the CLI and people. */
static void
daemon_status(void *arg, struct http_reply *r)
{
	struct daemon	*d = arg;
	cJSON		*root, *arr, *o;
	size_t		 i;

	root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "version", as_version);
	arr = cJSON_AddArrayToObject(root, "pools");
	for (i = 0; i < d->npools; i++) {
		const struct pool *p = d->pools[i];

		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "namespace", p->cfg->ns);
		cJSON_AddStringToObject(o, "name", p->cfg->name);
		cJSON_AddStringToObject(o, "target", p->cfg->target_name);
		cJSON_AddNumberToObject(o, "backlog", p->ready);
		cJSON_AddNumberToObject(o, "inFlight", p->in_flight);
		cJSON_AddNumberToObject(o, "desiredReplicas", p->as.desired);
		cJSON_AddNumberToObject(o, "replicas", p->spec_replicas);
		cJSON_AddStringToObject(o, "lastReason",
		    autoscale_reason_name(p->last.reason));
		cJSON_AddBoolToObject(o, "started", p->source_read &&
		    p->spec_known);
		cJSON_AddBoolToObject(o, "sourceOk", p->source_ok);
		cJSON_AddBoolToObject(o, "push", pool_pushing(p));
		cJSON_AddStringToObject(o, "sourceError", p->source_err);
		cJSON_AddStringToObject(o, "kubeError", p->k8s_err);
		cJSON_AddItemToArray(arr, o);
	}
	if (d->dispatch != NULL)
		dispatcher_status(d->dispatch, root);
	if (d->elector != NULL)
		leader_status(d->elector, root);
	else {
		o = cJSON_AddObjectToObject(root, "leaderElection");
		cJSON_AddBoolToObject(o, "enabled", 0);
		cJSON_AddBoolToObject(o, "leader", 1);
	}
	r->content_type = "application/json";
	r->body = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (r->body == NULL)
		r->body = xstrdup("{}");
}

/* CRD mode (crd.h): the objects' config, status snapshots, Events. */

static void
daemon_crd_apply(void *arg, struct config *c)
{
	struct daemon	*d = arg;
	const struct pool_config *p;
	size_t		 i;

	/*
	 * Read the pools' Secrets now, so their first connect finds them;
	 * forget those no pool names any more.
	 */
	secret_store_begin(d->secrets);
	for (i = 0; i < c->npools; i++) {
		p = &c->pools[i];
		if (p->source.password_secret != NULL)
			secret_store_want(d->secrets, p->source.secret_ns !=
			    NULL ? p->source.secret_ns : p->ns,
			    p->source.secret_name);
	}
	secret_store_end(d->secrets);
	daemon_apply(d, c);
}

static int
daemon_pool_status(void *arg, const char *ns, const char *name,
    struct crd_pool_status *st)
{
	struct daemon	*d = arg;
	const struct pool *p;
	size_t		 i;

	for (i = 0; i < d->npools; i++) {
		p = d->pools[i];
		if (strcmp(p->cfg->ns, ns) != 0 ||
		    strcmp(p->cfg->name, name) != 0)
			continue;
		st->replicas = p->spec_known ? p->spec_replicas : -1;
		st->desired = p->as.desired;
		st->backlog = lround(p->ready);
		st->in_flight = lround(p->in_flight);
		st->last_scale = p->last_scale_wall;
		st->started = p->source_read && p->spec_known;
		st->source_ok = p->source_ok;
		as_strlcpy(st->source_err, p->source_err,
		    sizeof st->source_err);
		as_strlcpy(st->target_err, p->k8s_err, sizeof st->target_err);
		st->quota_limited = p->last.reason == AUTOSCALE_QUOTA;
		if (st->quota_limited)
			snprintf(st->quota_msg, sizeof st->quota_msg, "needs "
			    "%ld replicas, the namespace's AgentQuota allows "
			    "%ld", p->last.need, p->last.desired);
		return (0);
	}
	if (d->dispatch == NULL)
		return (-1);	/* a standby: the leader writes status */
	return (dispatcher_pool_status(d->dispatch, ns, name, st));
}

static int
daemon_quota_status(void *arg, const char *ns, struct crd_quota_status *st)
{
	struct daemon	*d = arg;
	const struct quota_config *qc;
	size_t		 i;
	long		 n = 0;

	if (d->dispatch != NULL &&
	    dispatcher_quota_status(d->dispatch, ns, st) == 0)
		return (0);
	/* Scale pools only: their replicas are all the namespace uses. */
	for (i = 0; i < d->npools; i++)
		if (strcmp(d->pools[i]->cfg->ns, ns) == 0)
			n += d->pools[i]->spec_replicas;
	st->sandboxes = st->replicas = n;
	qc = config_quota_for(d->config, ns);
	st->limited = qc != NULL && qc->max_sandboxes >= 0 &&
	    n >= qc->max_sandboxes;
	if (st->limited)
		snprintf(st->limited_msg, sizeof st->limited_msg, "%ld of %ld "
		    "sandboxes in use", n, qc->max_sandboxes);
	return (0);
}

static void
daemon_dispatch_event(void *arg, const char *kind, const char *ns,
    const char *name, int warning, const char *reason, const char *action,
    const char *note)
{
	struct daemon	*d = arg;

	crd_event(d->crd, kind, ns, name, warning ? EVENT_WARNING :
	    EVENT_NORMAL, reason, action, "%s", note);
}

int
daemon_run(const struct daemon_options *opts)
{
	struct daemon	 d;
	struct crd_options copts;
	struct config	*c = NULL;
	char		 err[512];
	size_t		 i;
	int		 rc = DAEMON_EXIT_FAIL;

	memset(&d, 0, sizeof d);
	memset(&copts, 0, sizeof copts);
	d.opts = opts;
	d.started = as_mono_now();
	if (opts->config_path == NULL)
		c = config_new();	/* CRD mode: filled by the informers */
	else if (config_load(opts->config_path, opts->secrets_dir, &c, err,
	    sizeof err) != 0) {
		log_error("daemon", "bad config: %s", err);
		return (DAEMON_EXIT_CONFIG);
	}
	d.loop = ev_default_loop(EVFLAG_AUTO);
	if ((d.k8s = k8s_client_new(d.loop, &opts->k8s, err,
	    sizeof err)) == NULL) {
		log_error("daemon", "kubernetes client: %s", err);
		rc = DAEMON_EXIT_CONFIG;
		goto out;
	}
	d.dopts.instance = opts->instance;
	d.dopts.event = daemon_dispatch_event;
	d.dopts.event_arg = &d;
	/*
	 * With or without election: a restarted pod has a new name, and the
	 * lists of dead instances are orphans.  A live instance's list is
	 * never taken (its heartbeat, scalers/redis_consume.c).
	 */
	d.dopts.adopt = 1;
	if (!opts->leader_elect) {
		d.leading = 1;
		d.dispatch = dispatcher_new(d.loop, d.k8s, &d.dopts);
	}
	if ((d.http = http_server_new(d.loop, opts->metrics_addr, err,
	    sizeof err)) == NULL) {
		log_error("daemon", "metrics endpoint: %s", err);
		goto out;
	}
	http_server_route(d.http, "/metrics", daemon_metrics, &d);
	http_server_route(d.http, "/healthz", daemon_healthz, &d);
	http_server_route(d.http, "/readyz", daemon_readyz, &d);
	log_info("daemon", "agentscaler %s serving /metrics /healthz /readyz "
	    "on %s (port %d)", as_version, opts->metrics_addr,
	    http_server_port(d.http));
	/*
	 * /status and /explain name tasks, namespaces and trees of every
	 * tenant: on an address of their own, loopback by default, never on
	 * the one Prometheus and the probes reach.
	 */
	if (opts->admin_addr != NULL) {
		if ((d.admin = http_server_new(d.loop, opts->admin_addr, err,
		    sizeof err)) == NULL) {
			log_error("daemon", "admin endpoint: %s", err);
			goto out;
		}
		http_server_route(d.admin, "/status", daemon_status, &d);
		http_server_route(d.admin, "/explain", daemon_explain, &d);
		log_info("daemon", "serving /status /explain on %s (port %d)",
		    opts->admin_addr, http_server_port(d.admin));
	} else
		log_info("daemon", "/status and /explain are off "
		    "(--admin-addr)");

	ev_signal_init(&d.sigterm, daemon_signal_cb, SIGTERM);
	ev_signal_init(&d.sigint, daemon_signal_cb, SIGINT);
	ev_signal_init(&d.sighup, daemon_signal_cb, SIGHUP);
	d.sigterm.data = d.sigint.data = d.sighup.data = &d;
	ev_signal_start(d.loop, &d.sigterm);
	ev_signal_start(d.loop, &d.sigint);
	ev_signal_start(d.loop, &d.sighup);

	daemon_apply(&d, c);
	c = NULL;
	if (opts->config_path == NULL) {
		copts.watch_namespace = opts->watch_namespace;
		copts.tenancy = &opts->tenancy;
		/*
		 * Broker credentials come from Secrets of the pools' own
		 * namespaces, through the API (secret_store.h).
		 */
		d.secrets = secret_store_new(d.k8s);
		as_secret_provider(secret_store_lookup, d.secrets);
		copts.instance = opts->instance;
		copts.may_write = daemon_may_write_cb;
		copts.apply = daemon_crd_apply;
		copts.pool_status = daemon_pool_status;
		copts.quota_status = daemon_quota_status;
		copts.arg = &d;
		if ((d.crd = crd_new(d.loop, d.k8s, &copts, err,
		    sizeof err)) == NULL) {
			log_error("daemon", "CRD mode: %s", err);
			goto out;
		}
	}
	if (opts->leader_elect && daemon_elect(&d) != 0) {
		rc = DAEMON_EXIT_CONFIG;
		goto out;
	}
	ev_run(d.loop, 0);
	rc = DAEMON_EXIT_OK;
	log_info("daemon", "stopped");
out:
	crd_free(d.crd);
	for (i = 0; i < d.npools; i++)
		pool_free(d.pools[i]);
	free(d.pools);
	as_secret_provider(NULL, NULL);
	secret_store_free(d.secrets);
	dispatcher_free(d.dispatch);
	leader_free(d.elector);
	k8s_client_free(d.lease_k8s);
	config_free(d.config);
	config_free(c);
	http_server_free(d.admin);
	http_server_free(d.http);
	k8s_client_free(d.k8s);
	if (d.loop != NULL) {
		ev_signal_stop(d.loop, &d.sigterm);
		ev_signal_stop(d.loop, &d.sigint);
		ev_signal_stop(d.loop, &d.sighup);
		/* Let cancelled transfers and freed contexts settle. */
		ev_run(d.loop, EVRUN_NOWAIT);
		ev_loop_destroy(d.loop);
	}
	return (rc);
}
