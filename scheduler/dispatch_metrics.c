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
#include "config.h"
#include "crd.h"
#include "quota.h"
#include "warmpool.h"

#include "dispatch_int.h"

#define RECENT		1024	/* rejections kept for explain */

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

void
dispatch_recent_add(struct dispatcher *d, const char *ns, const char *id,
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
	{ "agentscaler_dispatch_tasks_failed_total", "counter", NULL,
	    DP_U(failed), "Tasks whose sandbox failed after the hand-off "
	    "(PodFailed, eviction included): never counted completed." },
	{ "agentscaler_dispatch_claim_waits_total", "counter", NULL,
	    DP_U(cluster_waits), "readyTimeoutSeconds extended because the "
	    "claim showed a cluster fault (ReconcilerError, ...)." },
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
		cJSON_AddNumberToObject(o, "failed", (double)p->failed);
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
