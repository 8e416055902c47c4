/*
 * dispatch_metrics.c: what the dispatcher shows: histograms and the
 * /metrics text, /status JSON, /readyz, explain with its ring of recent
 * rejections, Events through dispatch_options.event, and the AgentPool and
 * AgentQuota status of CRD mode.
 *
 * Ownership: nothing here changes dispatch state but histograms, the
 * explain ring (d->recent, made on first use, freed by dispatcher_free)
 * and what it writes into the caller's buffer or JSON; strings passed in
 * are borrowed for the call.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/prom.h"
#include "config.h"
#include "crd.h"
#include "quota.h"
#include "warmpool.h"

#include "dispatch_int.h"

static void	 dpool_status_fill(const struct dpool *,
		    struct crd_pool_status *);

static const char *const tstate_names[] = {
	"claiming", "waiting", "handoff", "acking", "running", "releasing",
	"deferred"
};

/* Histograms. */

void
dispatch_hist_init(struct hist *h, const double *bounds, size_t n)
{
	memset(h, 0, sizeof *h);
	h->bounds = bounds;
	h->n = n;
}

void
dispatch_hist_add(struct hist *h, double v)
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

/* Events (dispatch_options.event): about the pool's AgentPool. */
void
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

/* The per-pool counters and gauges, read from struct dpool. */
#define DP_U(m) offsetof(struct dpool, m), PROM_F_U64
#define DP_L(m) offsetof(struct dpool, m), PROM_F_LONG
#define DP_I(m) offsetof(struct dpool, m), PROM_F_INT
#define DP_RATE	0, PROM_F_CALL	/* computed: dp_computed() */
#define DP_COLD	1, PROM_F_CALL
static const struct prom_row dp_rows[] = {
	{ "agentscaler_dispatch_tasks_received_total", PROM_COUNTER, NULL,
	    NULL, DP_U(received),
	    "Task messages taken off the source (redeliveries included)." },
	{ "agentscaler_dispatch_tasks_redelivered_total", PROM_COUNTER, NULL,
	    NULL, DP_U(redelivered),
	    "Messages the broker marked redelivered or recovered at start." },
	{ "agentscaler_dispatch_tasks_handed_off_total", PROM_COUNTER, NULL,
	    NULL, DP_U(handed_off), "Tasks pushed to a sandbox's inbox." },
	{ "agentscaler_dispatch_tasks_completed_total", PROM_COUNTER, NULL,
	    NULL, DP_U(completed),
	    "Tasks whose claim went away after the hand-off." },
	{ "agentscaler_dispatch_tasks_failed_total", PROM_COUNTER, NULL, NULL,
	    DP_U(failed), "Tasks whose sandbox failed after the hand-off "
	    "(PodFailed, eviction included): never counted completed." },
	{ "agentscaler_dispatch_claim_waits_total", PROM_COUNTER, NULL, NULL,
	    DP_U(cluster_waits), "readyTimeoutSeconds extended because the "
	    "claim showed a cluster fault (ReconcilerError, ...)." },
	{ "agentscaler_dispatch_tasks_in_flight", PROM_GAUGE, NULL, NULL,
	    DP_L(live),
	    "Live tasks: taken and not finished (claims included)." },
	{ "agentscaler_dispatch_tasks_waiting", PROM_GAUGE, NULL, NULL,
	    DP_L(waiting), "Live tasks waiting for their sandbox." },
	{ "agentscaler_dispatch_tasks_deferred", PROM_GAUGE, NULL, NULL,
	    DP_L(deferred),
	    "Tasks held by the AgentQuota (message kept, not yet claimed)." },
	{ "agentscaler_dispatch_tasks_rejected_total", PROM_COUNTER, NULL,
	    NULL, DP_U(rejected),
	    "Tasks the AgentQuota rejected (dead-lettered)." },
	{ "agentscaler_dispatch_claims_total", PROM_COUNTER, "launch", "warm",
	    DP_U(claims_warm), "Claims by launch type: warm (adopted a pool "
	    "member), cold, failed (terminal reason or timeout)." },
	{ "agentscaler_dispatch_claims_total", PROM_COUNTER, "launch", "cold",
	    DP_U(claims_cold), NULL },
	{ "agentscaler_dispatch_claims_total", PROM_COUNTER, "launch",
	    "failed", DP_U(claims_failed), NULL },
	{ "agentscaler_dispatch_dead_letter_errors_total", PROM_COUNTER, NULL,
	    NULL, DP_U(dead_letter_errors),
	    "Dead letters the broker did not take (the message comes back)." },
	{ "agentscaler_warm_spare_target", PROM_GAUGE, NULL, NULL,
	    DP_L(ws.target), "Warm sandboxes the pool should keep (sizing)." },
	{ "agentscaler_warm_spare_replicas", PROM_GAUGE, NULL, NULL,
	    DP_L(spare_actual),
	    "status.replicas of the SandboxWarmPool as last read "
	    "(-1 unknown)." },
	{ "agentscaler_dispatch_arrival_rate", PROM_GAUGE, NULL, NULL, DP_RATE,
	    "Arrival rate EWMA, tasks per second." },
	{ "agentscaler_dispatch_cold_start_seconds", PROM_GAUGE, NULL, NULL,
	    DP_COLD, "Cold claim-to-ready EWMA used for sizing." },
	{ "agentscaler_dispatch_source_up", PROM_GAUGE, NULL, NULL, DP_I(up),
	    "1 while the pool's consumer is connected and consuming." },
};

/* A row's value for pool p. */
static double
dp_value(const struct dpool *p, const struct prom_row *row)
{
	if (row->kind != PROM_F_CALL)
		return (prom_row_value(row, p));
	if (row->off == 0)
		return (warmpool_rate(&p->ws, &p->wp, as_mono_now()));
	return (p->ws.cold_samples > 0 ? p->ws.cold : p->wp.cold_default);
}

/* One histogram of pool p, with an extra label when key is not NULL. */
static void
dp_hist(struct prom *w, const char *name, const struct dpool *p,
    const char *key, const char *value, const struct hist *h)
{
	const char	*labels[] = { "namespace", p->cfg->ns, "pool",
	    p->cfg->name, key, value, NULL };

	prom_histogram(w, name, labels, h->bounds, h->counts, h->n, h->sum,
	    h->total);
}

/* Per namespace: what the AgentQuota sees. */
static void
dispatcher_quota_metrics(const struct dispatcher *d, struct prom *w)
{
	static const char *const names[] = { "sandboxes", "replicas", "tasks",
	    "roots" };
	static const char *const verdicts[] = { "admit", "defer", "reject" };
	const struct dns *ns;
	struct quota_usage u;
	const char	*labels[] = { "namespace", NULL, NULL };
	double		 v[4];

	prom_family(w, "agentscaler_quota_used", PROM_GAUGE, "What the "
	    "namespace uses against its AgentQuota: sandboxes (tasks + "
	    "replicas), replicas, live tasks, live trees (roots).");
	LIST_FOREACH(ns, &d->nss, entry) {
		quota_usage(ns->quota, &u);
		v[0] = (double)u.sandboxes;
		v[1] = (double)u.replicas;
		v[2] = (double)u.tasks;
		v[3] = (double)u.roots;
		labels[1] = ns->name;
		prom_sample_each(w, "agentscaler_quota_used", labels, "what",
		    names, v, 4);
	}
	prom_family(w, "agentscaler_quota_decisions_total", PROM_COUNTER,
	    "Admission decisions by verdict.");
	LIST_FOREACH(ns, &d->nss, entry) {
		quota_usage(ns->quota, &u);
		v[0] = (double)u.admitted;
		v[1] = (double)u.deferred;
		v[2] = (double)u.rejected;
		labels[1] = ns->name;
		prom_sample_each(w, "agentscaler_quota_decisions_total",
		    labels, "verdict", verdicts, v, 3);
	}
}

void
dispatcher_metrics(const struct dispatcher *d, struct prom *w)
{
	static const char *const claim = "agentscaler_dispatch_claim_"
	    "ready_seconds";
	static const char *const handoff = "agentscaler_dispatch_handoff_"
	    "seconds";
	static const char *const dead = "agentscaler_dispatch_dead_letters_"
	    "total";
	const struct prom_row *row;
	const struct dpool *p;
	size_t		 i, j;

	if (LIST_EMPTY(&d->pools))
		return;
	for (i = 0; i < AS_ARRAY_SIZE(dp_rows); i++) {
		row = &dp_rows[i];
		if (row->help != NULL)
			prom_family(w, row->name, row->type, "%s", row->help);
		LIST_FOREACH(p, &d->pools, entry) {
			const char *labels[] = { "namespace", p->cfg->ns,
			    "pool", p->cfg->name, row->label, row->value,
			    NULL };

			prom_sample(w, row->name, labels, dp_value(p, row));
		}
	}
	prom_family(w, claim, PROM_HISTOGRAM,
	    "Claim POST to bound and Ready, by launch type.");
	LIST_FOREACH(p, &d->pools, entry) {
		dp_hist(w, claim, p, "launch", "warm", &p->ready_warm);
		dp_hist(w, claim, p, "launch", "cold", &p->ready_cold);
	}
	prom_family(w, handoff, PROM_HISTOGRAM,
	    "Message taken off the source to task in the sandbox's inbox.");
	LIST_FOREACH(p, &d->pools, entry)
		dp_hist(w, handoff, p, NULL, NULL, &p->handoff);
	dispatcher_quota_metrics(d, w);
	prom_family(w, dead, PROM_COUNTER,
	    "Task messages dead-lettered, by reason.");
	LIST_FOREACH(p, &d->pools, entry)
		for (j = 0; j < p->ndead; j++) {
			const char *labels[] = { "namespace", p->cfg->ns,
			    "pool", p->cfg->name, "reason", p->dead[j].reason,
			    NULL };

			prom_sample_u64(w, dead, labels, p->dead[j].n);
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
		cJSON_AddNumberToObject(o, "failed", (double)p->failed);
		memset(counts, 0, sizeof counts);
		TAILQ_FOREACH(t, &p->tasks, plink)
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

int
dispatcher_explain(const struct dispatcher *d, const char *id, cJSON *out)
{
	return (dispatcher_explain_ns(d, id, NULL, out));
}

int
dispatcher_explain_ns(const struct dispatcher *d, const char *id,
    const char *in_ns, cJSON *out)
{
	const struct dns *ns;
	const struct dtask *t, *q;
	const struct recent *r;
	char		 text[600], t3[40];
	size_t		 i, pos;

	cJSON_AddStringToObject(out, "task", id);
	LIST_FOREACH(ns, &d->nss, entry) {
		if (in_ns != NULL && strcmp(ns->name, in_ns) != 0)
			continue;
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
			cJSON_AddStringToObject(out, "reason",
			    quota_reason_name(t->why));
			cJSON_AddStringToObject(out, "detail",
			    t->why_detail != NULL ? t->why_detail : "");
			cJSON_AddNumberToObject(out, "queuePosition",
			    (double)pos);
			snprintf(text, sizeof text, "task %s waits (deferred) "
			    "in namespace %s: %s: %s; %zu %s ahead of it",
			    id, ns->name, quota_reason_name(t->why),
			    t->why_detail != NULL ?
			    t->why_detail : "", pos, t->parent != NULL ?
			    "descendants" : "new roots");
		} else {
			cJSON_AddStringToObject(out, "claim", t->claim);
			cJSON_AddStringToObject(out, "sandbox", t->sandbox);
			if (t->wait_reason[0] != '\0')
				cJSON_AddStringToObject(out, "waitingOn",
				    t->wait_reason);
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
		if (strcmp(r->id, id) != 0 ||
		    (in_ns != NULL && strcmp(r->ns, in_ns) != 0))
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
	snprintf(text, sizeof text, "task %s is not known%s%s: never seen, "
	    "or finished, or rejected more than %d rejections ago", id,
	    in_ns != NULL ? " in namespace " : "", in_ns != NULL ? in_ns : "",
	    RECENT);
	cJSON_AddStringToObject(out, "explanation", text);
	return (0);
}

int
dispatcher_pool_status(const struct dispatcher *d, const char *ns,
    const char *name, struct crd_pool_status *st)
{
	const struct dpool *p;

	if ((p = dpool_find(d, ns, name)) == NULL)
		return (-1);
	dpool_status_fill(p, st);
	return (0);
}

void
dpool_status_note(struct dpool *p)
{
	struct crd_pool_status st;
	uint64_t	 h;

	memset(&st, 0, sizeof st);
	dpool_status_fill(p, &st);
	if ((h = crd_pool_status_hash(&st)) == p->status_hash)
		return;
	p->status_hash = h;
	if (p->d->status != NULL)
		p->d->status(p->d->status_arg, p->cfg->ns, p->cfg->name);
}

/* What p's CRD status reports, without the warm pool's (crd.c's). */
static void
dpool_status_fill(const struct dpool *p, struct crd_pool_status *st)
{
	st->dispatch = 1;
	st->replicas = p->spare_actual;
	st->desired = p->ws.target;
	st->backlog = p->deferred + p->waiting;
	st->in_flight = p->live;
	st->claims_pending = p->shown[DS_PENDING];
	st->claims_warm = p->shown[DS_WARM];
	st->claims_cold = p->shown[DS_COLD];
	st->started = p->ns->synced && p->started;
	st->source_ok = p->up;
	as_strlcpy(st->source_err, p->src_err, sizeof st->source_err);
	as_strlcpy(st->target_err, p->k8s_err, sizeof st->target_err);
	st->quota_limited = p->deferred > 0;
	if (st->quota_limited)
		snprintf(st->quota_msg, sizeof st->quota_msg, "%ld tasks "
		    "deferred by the namespace's AgentQuota", p->deferred);
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

	if ((n = dns_lookup(d, ns)) != NULL) {
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
