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
#include <math.h>
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

/* Dead-letter reasons: the bounded label of /metrics. */

const char *const dispatch_dead_reasons[DEAD_REASONS] = {
	"budget.sandboxSeconds", "cascade.maxChildrenPerTask",
	"cascade.maxDepth", "cascade.maxDescendantsPerRoot",
	"cascade.maxRoots", "cascade.spawnRate", "cascade.unknownParent",
	"claim.createFailed", "claim.deleted", "claim.finishedBeforeHandoff",
	"claim.nameConflict", "claim.other", "claim.readyTimeout",
	"claim.rejected", "handoff.conflict", "handoff.other",
	"handoff.refused", "handoff.unauthorized", "handoff.unreachable",
	"other", "quota.maxSandboxes", "quota.reserved", "quota.resources",
	"quota.resourcesNeverFit", "runtime.lost", "runtime.other",
	"sandbox.templateUnknown", "task.badDeadline", "task.badId",
	"task.badParent", "task.badResources", "task.badTraceparent",
	"task.deadlineExceeded", "task.duplicate", "task.invalidUtf8",
	"task.missingId", "task.notJson", "task.notObject", "task.other",
	"task.tooLarge",
};

static int
dead_reason_cmp(const void *key, const void *elem)
{
	return (strcmp(key, *(const char *const *)elem));
}

size_t
dispatch_dead_reason(const char *reason)
{
	const char *const *hit;
	const char	*dot;
	char		 other[64];

	hit = bsearch(reason, dispatch_dead_reasons, DEAD_REASONS,
	    sizeof *dispatch_dead_reasons, dead_reason_cmp);
	if (hit == NULL && (dot = strchr(reason, '.')) != NULL &&
	    (size_t)(dot - reason) < sizeof other - 7) {
		snprintf(other, sizeof other, "%.*s.other", (int)(dot - reason),
		    reason);
		hit = bsearch(other, dispatch_dead_reasons, DEAD_REASONS,
		    sizeof *dispatch_dead_reasons, dead_reason_cmp);
	}
	if (hit == NULL)
		hit = bsearch("other", dispatch_dead_reasons, DEAD_REASONS,
		    sizeof *dispatch_dead_reasons, dead_reason_cmp);
	return ((size_t)(hit - dispatch_dead_reasons));
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
	as_utf8_trim(note);
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

/* The families of dispatch mode. */
static const struct prom_def m_received = {
    "agentscaler_dispatch_tasks_received_total", PROM_COUNTER,
    "namespace pool", "Dispatch mode: task messages taken off the source "
    "(redeliveries included)." };
static const struct prom_def m_redelivered = {
    "agentscaler_dispatch_tasks_redelivered_total", PROM_COUNTER,
    "namespace pool", "Dispatch mode: messages the broker marked "
    "redelivered or recovered at start." };
static const struct prom_def m_handed_off = {
    "agentscaler_dispatch_tasks_handed_off_total", PROM_COUNTER,
    "namespace pool", "Dispatch mode: tasks handed to a sandbox." };
static const struct prom_def m_completed = {
    "agentscaler_dispatch_tasks_completed_total", PROM_COUNTER,
    "namespace pool", "Dispatch mode: tasks whose claim went away after "
    "the hand-off." };
static const struct prom_def m_failed = {
    "agentscaler_dispatch_tasks_failed_total", PROM_COUNTER,
    "namespace pool", "Dispatch mode: tasks whose sandbox failed after "
    "the hand-off (PodFailed, eviction included); never counted "
    "completed." };
static const struct prom_def m_claim_waits = {
    "agentscaler_dispatch_claim_waits_total", PROM_COUNTER,
    "namespace pool", "Dispatch mode: readyTimeoutSeconds extended because "
    "the claim showed a cluster fault (ReconcilerError, ...)." };
static const struct prom_def m_tasks = { "agentscaler_dispatch_tasks",
    PROM_GAUGE, "namespace pool state", "Dispatch mode: live tasks by "
    "state: claiming, waiting (for the sandbox), handoff, acking, running, "
    "releasing, deferred (held by the AgentQuota); they sum to the live "
    "tasks." };
static const struct prom_def m_claims = {
    "agentscaler_dispatch_claims_total", PROM_COUNTER,
    "namespace pool launch outcome", "Dispatch mode: claims ended waiting, "
    "by launch type and outcome (ready; failed: terminal reason, deleted "
    "or readyTimeoutSeconds)." };
static const struct prom_def m_dl_errors = {
    "agentscaler_dispatch_dead_letter_errors_total", PROM_COUNTER,
    "namespace pool", "Dispatch mode: dead letters the broker did not take "
    "(the message comes back)." };
static const struct prom_def m_spare_target = {
    "agentscaler_warm_spare_target", PROM_GAUGE, "namespace pool",
    "Dispatch mode: warm sandboxes the pool should keep (sizing)." };
static const struct prom_def m_spare_replicas = {
    "agentscaler_warm_spare_replicas", PROM_GAUGE, "namespace pool",
    "Dispatch mode: status.replicas of the SandboxWarmPool as last read "
    "(absent until read)." };
static const struct prom_def m_rate = {
    "agentscaler_dispatch_arrival_rate", PROM_GAUGE, "namespace pool",
    "Dispatch mode: arrival rate EWMA used for sizing, tasks per "
    "second." };
static const struct prom_def m_cold = {
    "agentscaler_dispatch_cold_start_seconds", PROM_GAUGE, "namespace pool",
    "Dispatch mode: cold claim-to-ready EWMA used for sizing." };
static const struct prom_def m_up = { "agentscaler_dispatch_source_up",
    PROM_GAUGE, "namespace pool", "Dispatch mode: 1 while the pool's "
    "consumer is connected and consuming." };
static const struct prom_def m_claim_ready = {
    "agentscaler_dispatch_claim_ready_seconds", PROM_HISTOGRAM,
    "namespace pool launch", "Dispatch mode: claim POST to bound and "
    "Ready, by launch type (warm, cold)." };
static const struct prom_def m_handoff = {
    "agentscaler_dispatch_handoff_seconds", PROM_HISTOGRAM,
    "namespace pool", "Dispatch mode: arrival to hand-off: message taken "
    "off the source to task handed to its sandbox." };
static const struct prom_def m_dead = {
    "agentscaler_dispatch_dead_letters_total", PROM_COUNTER,
    "namespace pool reason", "Dispatch mode: task messages dead-lettered, "
    "by reason (the closed list of README \"Dispatch mode\"; an unlisted "
    "one counts as its prefix's .other, else other)." };
static const struct prom_def m_quota = { "agentscaler_quota", PROM_GAUGE,
    "namespace quota resource type", "AgentQuota of the namespace, in the "
    "shape of kube-state-metrics' kube_resourcequota: hard (limit; absent "
    "when unlimited) and used, for sandboxes (tasks + warm spares) and "
    "each resource it limits (cpu in cores, memory in bytes)." };
static const struct prom_def m_quota_sandboxes = {
    "agentscaler_quota_sandboxes", PROM_GAUGE, "namespace kind",
    "Live sandboxes counted against the namespace's AgentQuota, by what "
    "holds them: task, replica (warm spares); they sum to used "
    "sandboxes." };
static const struct prom_def m_quota_trees = {
    "agentscaler_quota_task_trees", PROM_GAUGE, "namespace",
    "Live task trees (roots) of the namespace." };
static const struct prom_def m_quota_decisions = {
    "agentscaler_quota_decisions_total", PROM_COUNTER,
    "namespace verdict reason", "Admission decisions by verdict (admit, "
    "defer, reject) and reason (none when admitted)." };

const struct prom_def *const dispatch_metric_defs[] = {
	&m_received, &m_redelivered, &m_handed_off, &m_completed, &m_failed,
	&m_claim_waits, &m_tasks, &m_claims, &m_dl_errors, &m_spare_target,
	&m_spare_replicas, &m_rate, &m_cold, &m_up, &m_claim_ready,
	&m_handoff, &m_dead, &m_quota, &m_quota_sandboxes, &m_quota_trees,
	&m_quota_decisions, NULL
};

/* The per-pool counters and gauges, read from struct dpool. */
#define DP_U(m) offsetof(struct dpool, m), PROM_F_U64
#define DP_I(m) offsetof(struct dpool, m), PROM_F_INT
#define DP_L(m) offsetof(struct dpool, m), PROM_F_LONG
#define DP_RATE	0, PROM_F_CALL	/* computed: dp_value() */
#define DP_COLD	1, PROM_F_CALL
#define DP_SPARE 2, PROM_F_CALL
static const struct prom_row dp_rows[] = {
	{ &m_received, NULL, NULL, DP_U(received) },
	{ &m_redelivered, NULL, NULL, DP_U(redelivered) },
	{ &m_handed_off, NULL, NULL, DP_U(handed_off) },
	{ &m_completed, NULL, NULL, DP_U(completed) },
	{ &m_failed, NULL, NULL, DP_U(failed) },
	{ &m_claim_waits, NULL, NULL, DP_U(cluster_waits) },
	{ &m_dl_errors, NULL, NULL, DP_U(dead_letter_errors) },
	{ &m_spare_target, NULL, NULL, DP_L(ws.target) },
	{ &m_spare_replicas, NULL, NULL, DP_SPARE },
	{ &m_rate, NULL, NULL, DP_RATE },
	{ &m_cold, NULL, NULL, DP_COLD },
	{ &m_up, NULL, NULL, DP_I(up) },
};

/* A row's value for pool p; NAN: no series (unknown). */
static double
dp_value(const struct dpool *p, const struct prom_row *row)
{
	if (row->kind != PROM_F_CALL)
		return (prom_row_value(row, p));
	if (row->off == 0)
		return (warmpool_rate(&p->ws, &p->wp, as_mono_now()));
	if (row->off == 2)
		return (p->spare_actual >= 0 ? (double)p->spare_actual : NAN);
	return (p->ws.cold_samples > 0 ? p->ws.cold : p->wp.cold_default);
}

/* One histogram of pool p, with an extra label when key is not NULL. */
static void
dp_hist(struct prom *w, const struct dpool *p, const char *key,
    const char *value, const struct prom_hist *h)
{
	const char	*labels[] = { "namespace", p->cfg->ns, "pool",
	    p->cfg->name, key, value, NULL };

	prom_histogram(w, labels, h);
}

/* The live tasks of each pool by state. */
static void
dp_tasks(const struct dispatcher *d, struct prom *w)
{
	const struct dpool *p;
	const struct dtask *t;
	double		 counts[AS_ARRAY_SIZE(tstate_names)];

	prom_family(w, &m_tasks);
	LIST_FOREACH(p, &d->pools, entry) {
		const char *labels[] = { "namespace", p->cfg->ns, "pool",
		    p->cfg->name, NULL };

		memset(counts, 0, sizeof counts);
		TAILQ_FOREACH(t, &p->tasks, plink)
			counts[t->st]++;
		prom_sample_each(w, labels, "state", tstate_names, counts,
		    AS_ARRAY_SIZE(tstate_names));
	}
}

/* Claims by launch type and outcome, every pair that can happen. */
static void
dp_claims(const struct dispatcher *d, struct prom *w)
{
	static const struct {
		const char	*launch, *outcome;
		enum launch	 l;
		int		 failed;
	} pairs[] = {
		{ "warm", "ready", L_WARM, 0 }, { "cold", "ready", L_COLD, 0 },
		{ "warm", "failed", L_WARM, 1 }, { "cold", "failed", L_COLD, 1 },
		{ "unknown", "failed", L_UNKNOWN, 1 },
	};
	const struct dpool *p;
	size_t		 i;

	prom_family(w, &m_claims);
	LIST_FOREACH(p, &d->pools, entry)
		for (i = 0; i < AS_ARRAY_SIZE(pairs); i++) {
			const char *labels[] = { "namespace", p->cfg->ns,
			    "pool", p->cfg->name, "launch", pairs[i].launch,
			    "outcome", pairs[i].outcome, NULL };

			prom_sample_u64(w, labels, pairs[i].failed ?
			    p->claims_failed[pairs[i].l] :
			    p->claims_ready[pairs[i].l]);
		}
}

/* Per namespace: what the AgentQuota sees. */
static void
dispatcher_quota_metrics(const struct dispatcher *d, struct prom *w)
{
	static const char *const verdicts[] = { "admit", "defer", "reject" };
	static const char *const kinds[] = { "task", "replica" };
	const struct quota_config *qc;
	const struct dns *ns;
	struct quota_usage u;
	const char	*labels[] = { "namespace", NULL, NULL };
	double		 v[2];
	size_t		 k;
	int		 verdict, r;

	prom_family(w, &m_quota);
	LIST_FOREACH(ns, &d->nss, entry) {
		const char *ql[] = { "namespace", ns->name, "quota", NULL,
		    "resource", "sandboxes", "type", NULL, NULL };

		qc = d->config != NULL ? config_quota_for(d->config,
		    ns->name) : NULL;
		if (qc == NULL)
			continue;
		quota_usage(ns->quota, &u);
		ql[3] = qc->name;
		if (qc->max_sandboxes >= 0) {
			ql[7] = "hard";
			prom_sample(w, ql, (double)qc->max_sandboxes);
		}
		ql[7] = "used";
		prom_sample(w, ql, (double)u.sandboxes);
		for (k = 0; k < qc->nresources; k++) {
			ql[5] = qc->resources[k].name;
			ql[7] = "hard";
			prom_sample(w, ql, qc->resources[k].value);
			ql[7] = "used";
			prom_sample(w, ql, quota_used(ns->quota,
			    qc->resources[k].name));
		}
	}
	prom_family(w, &m_quota_sandboxes);
	LIST_FOREACH(ns, &d->nss, entry) {
		quota_usage(ns->quota, &u);
		labels[1] = ns->name;
		v[0] = (double)u.tasks;
		v[1] = (double)u.replicas;
		prom_sample_each(w, labels, "kind", kinds, v, 2);
	}
	prom_family(w, &m_quota_trees);
	LIST_FOREACH(ns, &d->nss, entry) {
		quota_usage(ns->quota, &u);
		labels[1] = ns->name;
		prom_sample(w, labels, (double)u.roots);
	}
	prom_family(w, &m_quota_decisions);
	LIST_FOREACH(ns, &d->nss, entry)
		for (verdict = QUOTA_ADMIT; verdict <= QUOTA_REJECT; verdict++)
			for (r = 0; r < QUOTA_R_COUNT; r++) {
				const char *dl[] = { "namespace", ns->name,
				    "verdict", verdicts[verdict], "reason",
				    r == QUOTA_R_NONE ? "none" :
				    quota_reason_name(r), NULL };

				/* Admitted: no reason; held back: one. */
				if ((verdict == QUOTA_ADMIT) !=
				    (r == QUOTA_R_NONE))
					continue;
				prom_sample_u64(w, dl, quota_decisions(
				    ns->quota, verdict, r));
			}
}

void
dispatcher_metrics(const struct dispatcher *d, struct prom *w)
{
	const struct prom_row *row;
	const struct dpool *p;
	double		 v;
	size_t		 i, j;

	if (LIST_EMPTY(&d->pools))
		return;
	for (i = 0; i < AS_ARRAY_SIZE(dp_rows); i++) {
		row = &dp_rows[i];
		prom_family(w, row->def);
		LIST_FOREACH(p, &d->pools, entry) {
			const char *labels[] = { "namespace", p->cfg->ns,
			    "pool", p->cfg->name, row->label, row->value,
			    NULL };

			if (!isnan(v = dp_value(p, row)))
				prom_sample(w, labels, v);
		}
	}
	dp_tasks(d, w);
	dp_claims(d, w);
	prom_family(w, &m_claim_ready);
	LIST_FOREACH(p, &d->pools, entry) {
		dp_hist(w, p, "launch", "warm", &p->ready_warm);
		dp_hist(w, p, "launch", "cold", &p->ready_cold);
	}
	prom_family(w, &m_handoff);
	LIST_FOREACH(p, &d->pools, entry)
		dp_hist(w, p, NULL, NULL, &p->handoff);
	prom_family(w, &m_dead);
	LIST_FOREACH(p, &d->pools, entry)
		for (j = 0; j < DEAD_REASONS; j++) {
			const char *labels[] = { "namespace", p->cfg->ns,
			    "pool", p->cfg->name, "reason",
			    dispatch_dead_reasons[j], NULL };

			prom_sample_u64(w, labels, p->dead[j]);
		}
	dispatcher_quota_metrics(d, w);
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
		for (i = 0; i < DEAD_REASONS; i++)
			if (p->dead[i] > 0)
				cJSON_AddNumberToObject(dl,
				    dispatch_dead_reasons[i],
				    (double)p->dead[i]);
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
		as_utf8_trim(text);	/* details are the runtime's text */
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
		as_utf8_trim(text);	/* details are the runtime's text */
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
	as_strlcpy_utf8(st->source_err, p->src_err, sizeof st->source_err);
	as_strlcpy_utf8(st->target_err, p->k8s_err, sizeof st->target_err);
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
