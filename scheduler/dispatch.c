/*
 * dispatch.c: dispatch mode, DESIGN.md section 7.  This file is its public
 * API (dispatch.h): the dispatcher, and its pools as each config makes,
 * keeps or drops them.  The rest is split by concern, one file each, over
 * the structs of dispatch_int.h, which lists the files; this note is the
 * design they share.
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
 * made, the hand-off is guarded by a per-task marker (Redis: beside the
 * queue; RabbitMQ: in memory, dispatch_mark.c), and at start the
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
 *
 * A pool whose config changed is replaced, never edited in place: the new
 * pool is made first, so its namespace (with the task table) stays; then
 * the old pool's held messages go back to the broker, its consumer
 * operations end cancelled, and its tasks go over to the new pool of the
 * same name (dtask_hand_over), where a message coming back joins its task.
 * A removed pool's tasks that never reached a sandbox have their claims
 * deleted.
 *
 * Ownership here: a pool's config is borrowed from the config last applied;
 * dispatcher_free() frees the pools, then the namespaces with their tasks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "agentscaler/rt/common.h"
#include "config.h"
#include "agentscaler/scalers/consumer.h"
#include "dispatch.h"
#include "agentscaler/k8s/informer.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/log.h"
#include "quota.h"
#include "warmpool.h"

#include "dispatch_int.h"

static const double ready_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1, 2.5, 5, 10, 30, 60, 180 };
static const double handoff_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180 };

/* Production: the real client, informer and consumer registry. */
static const struct dispatch_ops dispatch_ops_real = {
	.request = k8s_client_request,
	.cancel = k8s_req_cancel,
	.scale_get = k8s_scale_get,
	.scale_patch = k8s_scale_patch,
	.informer_new = informer_new,
	.informer_free = informer_free,
	.informer_get = informer_get,
	.informer_stats = informer_get_stats,
	.consumer_type = consumer_type_find,
};

/* Pools. */

static uint64_t
dpool_key_hash(const char *ns, const char *name)
{
	return (as_hash_str(ns) * 31 + as_hash_str(name));
}

struct dpool_key {
	const char	*ns;
	const char	*name;
};

static int
dpool_key_eq(const struct as_hash_entry *e, const void *arg)
{
	const struct dpool	*p = AS_HASH_ITEM(e, struct dpool, keylink);
	const struct dpool_key	*k = arg;

	return (strcmp(p->cfg->ns, k->ns) == 0 &&
	    strcmp(p->cfg->name, k->name) == 0);
}

struct dpool *
dpool_find(const struct dispatcher *d, const char *ns, const char *name)
{
	struct dpool_key k = { ns, name };

	return (AS_HASH_ITEM(as_hash_find(&d->pools_byname,
	    dpool_key_hash(ns, name), &k), struct dpool, keylink));
}

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
	prom_hist_init(&p->ready_warm, ready_bounds,
	    AS_ARRAY_SIZE(ready_bounds));
	prom_hist_init(&p->ready_cold, ready_bounds,
	    AS_ARRAY_SIZE(ready_bounds));
	prom_hist_init(&p->handoff, handoff_bounds,
	    AS_ARRAY_SIZE(handoff_bounds));
	p->wp.spare_min = c->spare_min;
	p->wp.spare_max = c->spare_max;
	p->wp.cooldown = c->scaling.cooldown_seconds;
	p->wp.policy = c->spare_policy;
	warmpool_params_defaults(&p->wp);
	/* Start as just active: the cooldown runs from now. */
	p->ws.arrived = 1;
	p->ws.last_arrival = as_mono_now();
	p->ns = dns_get(d, c->ns);
	p->ns->refs++;
	TAILQ_INIT(&p->tasks);
	LIST_INSERT_HEAD(&d->pools, p, entry);
	LIST_INSERT_HEAD(&p->ns->pools, p, nsentry);
	as_hash_insert(&d->pools_byname, &p->keylink, dpool_key_hash(c->ns,
	    c->name));

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
		log_kv(LOG_ERROR, "dispatch", DPOOL_LOG(p, NULL, NULL),
		    "%s: cannot consume: %s", p->id, err);
		as_strlcpy_utf8(p->src_err, err, sizeof p->src_err);
	}
	dpool_http_init(p);
	dpool_template(p, 0);
	if (p->ns->synced)
		dpool_start(p);
	log_kv(LOG_INFO, "dispatch", DPOOL_LOG(p, NULL, NULL),
	    "%s: dispatch pool on %s %s, warm pool %s, "
	    "spare %ld..%ld, prefetch %ld", p->id, c->source.type,
	    c->source.queue, c->warm_pool, c->spare_min, c->spare_max,
	    c->source.prefetch);
	return (p);
}

/*
 * What becomes of task t of a pool being replaced by succ (a new pool of
 * the same namespace and name, so the same claim names) or removed (succ
 * NULL), once the old consumer is gone: its message went back to the
 * broker and every consumer operation of it ended (-AS_ECANCELED), so t
 * holds neither.  A task that never got further than the quota's FIFO, or
 * that has no claim and no claim request, is freed: its message comes
 * back as a new one.  The others go to succ as a task rebuilt from its
 * claim does, and their message joins them when it comes back; a hand-off
 * whose outcome is unknown is made again then (the marker keeps it once).
 * Without a successor, a task that never reached its sandbox has its claim
 * deleted; one that may have is left to its claim, as after a restart.
 */
static void
dtask_hand_over(struct dtask *t, struct dpool *succ)
{
	if (t->st == T_DEFERRED && !t->doomed) {
		dtask_maybe_free(t);	/* off p's FIFO count, not succ's */
		return;
	}
	dtask_set_pool(t, succ);
	if (t->doomed)
		return;			/* its completion frees it */
	switch (t->st) {
	case T_CLAIMING:
		if (t->req == NULL && (!t->claim_exists || succ == NULL))
			dtask_release(t);
		/* a POST or GET in flight: its completion goes on */
		break;
	case T_WAITING:
		if (succ == NULL)
			dtask_release(t);
		else if (t->sandbox[0] != '\0' && t->launch != L_UNKNOWN)
			/* Ready before: the hand-off waits for the message. */
			dtask_set_state(t, T_RUNNING);
		break;
	case T_HANDOFF:			/* cancelled: landed or not */
		t->rebuilt = 1;		/* as after a restart: the marker
					   tells, should its claim go */
		dtask_set_state(t, T_RUNNING);
		break;
	case T_ACKING:			/* handed off, the ack cancelled */
		dtask_set_state(t, T_RUNNING);
		break;
	default:
		break;
	}
}

/*
 * Frees p.  succ: the pool that replaces it (dispatcher_apply), which
 * takes its tasks over (dtask_hand_over); NULL when p is removed, or when
 * the dispatcher goes (hand_over 0: its tasks are only let go).
 */
static void
dpool_free(struct dpool *p, struct dpool *succ, int hand_over)
{
	struct dtask	*t, *next;

	/* Messages we hold go back to the broker with the consumer. */
	TAILQ_FOREACH(t, &p->tasks, plink) {
		p->d->visits++;
		if (t->msg != NULL) {
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
	for (t = TAILQ_FIRST(&p->tasks); t != NULL; t = next) {
		next = TAILQ_NEXT(t, plink);
		p->d->visits++;
		if (hand_over)
			dtask_hand_over(t, succ);	/* may free t */
		else {
			dtask_set_waiting(t, 0);
			dtask_set_pool(t, NULL);
		}
	}
	/* A task freed later (a completion pending) points at no pool. */
	while ((t = TAILQ_FIRST(&p->tasks)) != NULL)
		dtask_set_pool(t, NULL);
	dpool_http_fini(p);	/* its tasks' requests: -AS_ECANCELED */
	as_hash_remove(&p->d->pools_byname, &p->keylink);
	p->ns->spares -= p->spares_counted;
	LIST_REMOVE(p, entry);
	LIST_REMOVE(p, nsentry);
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
	    a->max_task_bytes == b->max_task_bytes &&	/* the consumer cuts */
	    config_same_handoff(a, b));
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
	d->otlp = o->otlp;
	d->sweep_interval = o->sweep_interval > 0 ? o->sweep_interval : 0.25;
	d->event = o->event;
	d->event_arg = o->event_arg;
	d->status = o->status;
	d->status_arg = o->status_arg;
	d->sizing_interval = o->sizing_interval > 0 ? o->sizing_interval : 1;
	LIST_INIT(&d->nss);
	as_hash_init_str(&d->nss_byname, 0, AS_HASH_SHRINK | AS_HASH_KEY_ARRAY,
	    AS_HASH_KEYOFF(struct dns, nslink, name));
	LIST_INIT(&d->pools);
	as_hash_init(&d->pools_byname, 0, AS_HASH_SHRINK, dpool_key_eq);
	ev_init(&d->sweep, dispatcher_sweep);
	d->sweep.data = d;
	ev_init(&d->kick, dispatcher_kick_cb);
	d->kick.data = d;
	d->marks = dmarks_new();
	dispatcher_http_key(d, o->handoff_key_file);
	d->pod_cidrs = o->pod_cidrs;
	d->npod_cidrs = o->npod_cidrs;
	d->sweep.repeat = d->sweep_interval;
	if (o->rejections_ns != NULL && o->rejections_name != NULL)
		dispatch_recent_store_start(d, o->rejections_ns,
		    o->rejections_name);
	return (d);
}

/*
 * In work linear in the pools (d->pools_byname, no pool compared with
 * every other): the pools of the config whose identity and what
 * dpool_same() compares are unchanged are kept; the others are made anew,
 * before the old ones go.
 */
void
dispatcher_apply(struct dispatcher *d, const struct config *c)
{
	const struct pool_config *pc;
	struct dpool	*p, *q, **gone;
	struct dns	*ns;
	size_t		 i, ngone = 0, npools = 0;
	int		 any = 0;

	d->config = c;
	LIST_FOREACH(ns, &d->nss, entry)
		quota_ns_set_config(ns->quota, config_quota_for(c, ns->name));

	/*
	 * Keep what is unchanged; what went or changed goes only once the
	 * new pools exist, so that a pool replaced by one of the same name
	 * hands its tasks over (its namespace, with the task table, stays).
	 */
	for (i = 0; i < c->npools; i++) {
		pc = &c->pools[i];
		if (!config_pool_consumes(pc))
			continue;	/* scale, shadow or paused: pool.c */
		d->visits++;
		any = 1;
		if ((p = dpool_find(d, pc->ns, pc->name)) == NULL ||
		    !dpool_same(p->cfg, pc))
			continue;
		p->cfg = pc;
		p->wp.spare_min = p->cfg->spare_min;
		p->wp.spare_max = p->cfg->spare_max;
		p->wp.cooldown = p->cfg->scaling.cooldown_seconds;
		p->wp.policy = p->cfg->spare_policy;
		warmpool_params_defaults(&p->wp);
		p->kept = 1;
	}
	for (i = 0; i < c->npools; i++) {
		pc = &c->pools[i];
		if (!config_pool_consumes(pc))
			continue;	/* scale, shadow or paused: pool.c */
		d->visits++;
		if ((p = dpool_find(d, pc->ns, pc->name)) != NULL && p->kept)
			continue;
		q = dpool_new(d, pc);
		q->kept = 1;
		if (p != NULL)
			p->succ = q;	/* the new pool of its name */
	}
	LIST_FOREACH(p, &d->pools, entry)
		npools++;
	gone = xcalloc(npools + 1, sizeof *gone);
	LIST_FOREACH(p, &d->pools, entry) {
		d->visits++;
		if (p->kept)
			p->kept = 0;
		else
			gone[ngone++] = p;
	}
	for (i = 0; i < ngone; i++) {
		q = gone[i]->succ;
		if (q != NULL)
			log_kv(LOG_INFO, "dispatch", DPOOL_LOG(gone[i], NULL,
			    NULL), "%s: changed; its tasks go to the "
			    "new pool, the messages held back to the broker",
			    gone[i]->id);
		dpool_free(gone[i], q, 1);
	}
	free(gone);
	if (any)
		ev_timer_again(d->loop, &d->sweep);
	else
		ev_timer_stop(d->loop, &d->sweep);
}

void
dispatcher_free(struct dispatcher *d)
{
	(void)dispatcher_free_save(d, 1, NULL, NULL);
}

struct dispatcher_save *
dispatcher_free_save(struct dispatcher *d, int save, dispatcher_saved_fn *done,
    void *arg)
{
	struct dpool	*p;
	struct dispatcher_save *waits;

	if (d == NULL)
		return (NULL);
	ev_timer_stop(d->loop, &d->sweep);
	while ((p = LIST_FIRST(&d->pools)) != NULL)
		dpool_free(p, NULL, 0);
	while (!LIST_EMPTY(&d->nss))
		dns_free(LIST_FIRST(&d->nss));
	as_hash_fini(&d->nss_byname);
	as_hash_fini(&d->pools_byname);
	/* Last: freeing tasks releases quota, which may kick the pump. */
	ev_timer_stop(d->loop, &d->kick);
	dmarks_free(d->marks);
	as_secret_free(d->hkey, d->hkeylen);
	waits = dispatch_recent_store_stop(d, save, done, arg);
	free(d->recent);
	free(d);
	return (waits);
}

void
dispatcher_sweep_now(struct dispatcher *d)
{
	dispatcher_sweep(d->loop, &d->sweep, EV_TIMER);
}

long
dispatcher_headroom(struct dispatcher *d, const struct config *c,
    const char *ns, long scale_replicas)
{
	const struct quota_config *qc;
	struct dns	*n;

	if (d != NULL && (n = dns_lookup(d, ns)) != NULL) {
		n->scale_replicas = scale_replicas;
		dns_replicas(n);
		return (quota_headroom(n->quota));
	}
	if ((qc = config_quota_for(c, ns)) == NULL || qc->max_sandboxes < 0)
		return (-1);
	return (qc->max_sandboxes > scale_replicas ?
	    qc->max_sandboxes - scale_replicas : 0);
}
