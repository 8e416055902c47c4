/*
 * daemon_http.c: the daemon's HTTP endpoints: /metrics, /healthz and
 * /readyz on the metrics address, /status and /explain on the admin
 * address (http.h).  Handlers run on the loop and read the daemon's state
 * (daemon_state.h) and its pools (pool.h) directly; they change nothing.
 *
 * The daemon's own families, and those of the elector (whose state
 * k8s/leader.c hands out as struct leader_stats), are written here; the
 * dispatcher, the CRD mode and the secret store write their own through
 * the same writer (rt/prom.h).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/k8s/k8s.h"
#include "agentscaler/k8s/leader.h"
#include "agentscaler/k8s/secret_store.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/http.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/rt/otlp.h"
#include "agentscaler/rt/prom.h"
#include "autoscale.h"
#include "crd.h"
#include "daemon_http.h"
#include "daemon_state.h"
#include "decisions.h"
#include "dispatch.h"
#include "pool.h"
#include "config.h"
#include "status_page.h"
#include "targets.h"

/* /metrics: Prometheus text exposition format 0.0.4. */

/*
 * The families written here.  Names follow the Prometheus conventions
 * (prom.h); the shape of the quota families follows kube-state-metrics'
 * kube_resourcequota (docs/metrics/policy/resourcequota-metrics.md).
 */
static const struct prom_def m_build_info = { "agentscaler_build_info",
    PROM_GAUGE, "version", "Build of the running daemon (always 1)." };
static const struct prom_def m_reloads = {
    "agentscaler_config_reloads_total", PROM_COUNTER, "result",
    "SIGHUP reloads by result: ok, refused." };
static const struct prom_def m_loop_lag = {
    "agentscaler_event_loop_lag_seconds", PROM_HISTOGRAM, "",
    "How late a timer due every 0.5 s ran: the time the loop was busy "
    "elsewhere." };
static const struct prom_def m_pool_info = { "agentscaler_pool_info",
    PROM_GAUGE, "namespace pool mode source_type target_kind target_name",
    "One series per configured pool (always 1), for joins: its mode, "
    "source type and target (dispatch: the SandboxWarmPool)." };
static const struct prom_def m_source_tasks = {
    "agentscaler_pool_source_tasks", PROM_GAUGE, "namespace pool state",
    "Scale mode: tasks in the source at its last good read: ready "
    "(waiting to be taken) and in_flight (taken, not finished; 0 when the "
    "source has no processing list)." };
static const struct prom_def m_desired = {
    "agentscaler_pool_desired_replicas", PROM_GAUGE, "namespace pool",
    "Scale mode: replicas the last decision asked for." };
static const struct prom_def m_min = { "agentscaler_pool_min_replicas",
    PROM_GAUGE, "namespace pool", "Scale mode: the pool's minReplicas." };
static const struct prom_def m_max = { "agentscaler_pool_max_replicas",
    PROM_GAUGE, "namespace pool", "Scale mode: the pool's maxReplicas "
    "(a pool whose desired replicas stay at it is pinned)." };
static const struct prom_def m_spec = { "agentscaler_pool_spec_replicas",
    PROM_GAUGE, "namespace pool", "Scale mode: spec.replicas of the "
    "target as last read or written (absent until known)." };
static const struct prom_def m_status = {
    "agentscaler_pool_status_replicas", PROM_GAUGE, "namespace pool",
    "Scale mode: status.replicas of the target as last read (absent until "
    "known)." };
static const struct prom_def m_scale_writes = {
    "agentscaler_pool_scale_writes_total", PROM_COUNTER,
    "namespace pool direction",
    "Scale mode: successful writes of the target's replicas, by "
    "direction: up, down." };
static const struct prom_def m_reaction = {
    "agentscaler_pool_scale_up_reaction_seconds", PROM_HISTOGRAM,
    "namespace pool", "Scale mode: from the source event behind a "
    "scale-up (the push wake-up, else the start of the read that showed "
    "the backlog) to the scale write's answer." };
static const struct prom_def m_shadow = {
    "agentscaler_pool_shadow_desired_replicas", PROM_GAUGE,
    "namespace pool mode",
    "Shadow mode: replicas the pool would scale its target to, or "
    "sandboxes a dispatch pool would claim for its backlog; nothing is "
    "written." };
static const struct prom_def m_kube_errors = {
    "agentscaler_pool_kube_errors_total", PROM_COUNTER, "namespace pool",
    "Scale mode: failed reads or writes of the pool's target." };
static const struct prom_def m_source_up = { "agentscaler_source_up",
    PROM_GAUGE, "namespace pool", "Scale mode: 1 when the last read of "
    "the source succeeded." };
static const struct prom_def m_source_push = { "agentscaler_source_push",
    PROM_GAUGE, "namespace pool", "Scale mode: 1 while push wake-ups are "
    "live, 0 when polling only." };
static const struct prom_def m_source_reads = {
    "agentscaler_source_reads_total", PROM_COUNTER, "namespace pool",
    "Scale mode: completed reads of the source, failed ones included." };
static const struct prom_def m_source_errors = {
    "agentscaler_source_errors_total", PROM_COUNTER,
    "namespace pool reason", "Scale mode: failed reads of the source, by "
    "reason: auth, connection, not_found, other, protocol, timeout." };
static const struct prom_def m_source_read_took = {
    "agentscaler_source_read_duration_seconds", PROM_HISTOGRAM,
    "namespace pool", "Scale mode: duration of each read of the source "
    "(the broker's round trips)." };
static const struct prom_def m_wakeups = {
    "agentscaler_source_wakeups_total", PROM_COUNTER, "namespace pool",
    "Scale mode: push wake-ups received." };
static const struct prom_def m_kube_requests = {
    "agentscaler_kube_requests_total", PROM_COUNTER, "client verb code",
    "Kubernetes API attempts (retries included) by client (main; lease: "
    "the elector's own), verb and HTTP code (0: no response)." };
static const struct prom_def m_kube_took = {
    "agentscaler_kube_request_duration_seconds", PROM_HISTOGRAM,
    "client verb", "Kubernetes API attempts from queued to answered, the "
    "client rate limiter's wait included (watches excluded)." };
static const struct prom_def m_kube_wait = {
    "agentscaler_kube_rate_limiter_wait_seconds", PROM_HISTOGRAM, "client",
    "Time Kubernetes API attempts waited for the client's token bucket "
    "(--kube-qps, --kube-burst): client-side throttling." };
static const struct prom_def m_leader = { "agentscaler_leader", PROM_GAUGE,
    "", "1 while this replica may write to Kubernetes (holds the Lease; "
    "always 1 without --leader-elect), else 0: sum() over replicas is the "
    "number of leaders." };
static const struct prom_def m_lease_transitions = {
    "agentscaler_lease_transitions", PROM_GAUGE, "lease",
    "leaseTransitions of the Lease as last observed." };
static const struct prom_def m_holder_changes = {
    "agentscaler_lease_holder_changes_total", PROM_COUNTER, "",
    "Holder changes of the Lease this replica observed." };
static const struct prom_def m_leadership = {
    "agentscaler_leadership_changes_total", PROM_COUNTER, "to",
    "Times this replica started (to=leader) and stopped (to=standby) "
    "leading." };
static const struct prom_def m_lease_errors = {
    "agentscaler_lease_errors_total", PROM_COUNTER, "",
    "Lease requests that failed." };
static const struct prom_def m_http_conns = {
    "agentscaler_http_connections", PROM_GAUGE, "listener",
    "Open connections of each listener: metrics, admin (at most 64 "
    "each)." };
static const struct prom_def m_http_closed = {
    "agentscaler_http_connections_closed_total", PROM_COUNTER,
    "listener reason", "Connections the server closed: evicted (the "
    "oldest, for a new one at the limit), expired (no complete request "
    "within 10 s)." };

static const struct prom_def m_trace_dropped = {
    "agentscaler_trace_spans_dropped_total", PROM_COUNTER, "reason",
    "Spans not exported (--otlp-endpoint): queue_full (the exporter's "
    "queue was full: the collector is away or slow), export_failed (the "
    "collector refused or never answered their request)." };

static const struct prom_def *const daemon_metric_defs[] = {
	&m_build_info, &m_reloads, &m_loop_lag, &m_leader,
	&m_lease_transitions, &m_holder_changes, &m_leadership,
	&m_lease_errors, &m_kube_requests, &m_kube_took, &m_kube_wait,
	&m_http_conns, &m_http_closed, &m_pool_info, &m_source_tasks,
	&m_desired, &m_min, &m_max, &m_spec, &m_status, &m_scale_writes, &m_reaction,
	&m_kube_errors, &m_source_up, &m_source_push, &m_source_reads,
	&m_source_errors, &m_source_read_took, &m_wakeups, &m_shadow,
	&m_trace_dropped, NULL
};

/* Every label of every family, for the README (--print-metrics). */
static const struct {
	const char	*name;
	const char	*meaning;
} daemon_metric_labels[] = {
	{ "client", "the Kubernetes client: `main`, or `lease` (the "
	    "elector's own)" },
	{ "code", "HTTP status of the answer; `0`: none (transport error, "
	    "timeout)" },
	{ "direction", "`up`, `down`" },
	{ "kind", "what holds a sandbox: `task` (a live task), `replica` (a "
	    "warm spare)" },
	{ "launch", "`warm` (a pool member adopted), `cold` (created for the "
	    "claim), `unknown` (failed before it was bound)" },
	{ "lease", "the Lease, `namespace/name`" },
	{ "listener", "`metrics` (--metrics-addr), `admin` (--admin-addr)" },
	{ "mode", "`scale`, `dispatch`" },
	{ "namespace", "the pool's, or the AgentQuota's, namespace" },
	{ "outcome", "`ready` (bound and Ready), `failed` (terminal reason, "
	    "deleted, or readyTimeoutSeconds)" },
	{ "pool", "the pool's name (AgentPool, or `pools[].name`)" },
	{ "quota", "the AgentQuota's name" },
	{ "reason", "a closed list per family (its help text, or \"Dispatch "
	    "mode\" for dead letters; for quota decisions the AgentQuota "
	    "reasons, `none` when admitted); never free text" },
	{ "resource", "`sandboxes`, or a resource of the AgentQuota's "
	    "`resources` (`cpu` in cores, `memory` in bytes, ...)" },
	{ "result", "a closed list per family (its help text)" },
	{ "source_type", "the source type (`--print-vocabulary`)" },
	{ "state", "a closed list per family (its help text)" },
	{ "target_kind", "the scaled workload's kind; `SandboxWarmPool` in "
	    "dispatch mode" },
	{ "target_name", "the scaled workload's (or the SandboxWarmPool's) "
	    "name" },
	{ "to", "`leader`, `standby`" },
	{ "type", "`hard` (the AgentQuota's limit), `used`" },
	{ "verb", "HTTP method of the request" },
	{ "verdict", "`admit`, `defer`, `reject`" },
	{ "version", "the daemon's version" },
};

/* Buckets of the loop's lateness, in seconds. */
static const double daemon_lag_bounds[] = { 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 };
#define DAEMON_LAG_PERIOD	0.5

void
daemon_http_print_metrics(FILE *f)
{
	const struct prom_def *const *const tables[] = { prom_process_defs,
	    daemon_metric_defs, dispatch_metric_defs, crd_metric_defs,
	    secret_store_metric_defs };
	size_t		 i;

	fprintf(f, "| metric | type | labels | meaning |\n|---|---|---|---|\n");
	for (i = 0; i < AS_ARRAY_SIZE(tables); i++)
		prom_defs_print(f, tables[i]);
	fprintf(f, "\n| label | values |\n|---|---|\n");
	for (i = 0; i < AS_ARRAY_SIZE(daemon_metric_labels); i++)
		fprintf(f, "| `%s` | %s |\n", daemon_metric_labels[i].name,
		    daemon_metric_labels[i].meaning);
}

/* One client's series into the family written last. */
struct metrics_kube {
	struct prom	*w;
	const char	*client;
};

static void
metrics_kube_stat(const char *verb, long code, uint64_t count, void *arg)
{
	struct metrics_kube *mk = arg;
	char		 c[24];
	const char	*labels[] = { "client", mk->client, "verb", verb,
	    "code", c, NULL };

	snprintf(c, sizeof c, "%ld", code);
	prom_sample_u64(mk->w, labels, count);
}

static void
metrics_kube_took(const char *verb, const struct prom_hist *h, void *arg)
{
	struct metrics_kube *mk = arg;
	const char	*labels[] = { "client", mk->client, "verb", verb, NULL };

	prom_histogram(mk->w, labels, h);
}

/* The Kubernetes clients: the main one and the elector's. */
static void
metrics_kube(const struct daemon *d, struct prom *w)
{
	const struct k8s_client *c[2] = { d->k8s, d->lease_k8s };
	const char	*name[2] = { "main", "lease" };
	struct metrics_kube mk = { w, NULL };
	size_t		 i;

	prom_family(w, &m_kube_requests);
	for (i = 0; i < 2; i++) {
		mk.client = name[i];
		k8s_client_foreach_stat(c[i], metrics_kube_stat, &mk);
	}
	prom_family(w, &m_kube_took);
	for (i = 0; i < 2; i++) {
		mk.client = name[i];
		k8s_client_foreach_latency(c[i], metrics_kube_took, &mk);
	}
	prom_family(w, &m_kube_wait);
	for (i = 0; i < 2; i++) {
		const char *labels[] = { "client", name[i], NULL };
		const struct prom_hist *h = k8s_client_limiter_wait(c[i]);

		if (h != NULL)
			prom_histogram(w, labels, h);
	}
}

/* The per-pool families of scale mode, read straight from struct pool. */
#define POOL_D(m) offsetof(struct pool, m), PROM_F_DOUBLE
#define POOL_L(m) offsetof(struct pool, m), PROM_F_LONG
#define POOL_U(m) offsetof(struct pool, m), PROM_F_U64
#define POOL_I(m) offsetof(struct pool, m), PROM_F_INT
#define POOL_PUSH 0, PROM_F_CALL	/* pool_pushing() */
#define POOL_KNOWN 1, PROM_F_CALL	/* spec_known: the field below */
#define POOL_CFG 2, PROM_F_CALL		/* p->cfg->scaling */
static const struct prom_row metrics_pool_rows[] = {
	{ &m_source_tasks, "state", "ready", POOL_D(ready) },
	{ &m_source_tasks, "state", "in_flight", POOL_D(in_flight) },
	{ &m_desired, NULL, NULL, POOL_L(as.desired) },
	{ &m_min, NULL, NULL, POOL_CFG },
	{ &m_max, NULL, NULL, POOL_CFG },
	{ &m_spec, NULL, NULL, POOL_KNOWN },
	{ &m_status, NULL, NULL, POOL_KNOWN },
	{ &m_scale_writes, "direction", "up", POOL_U(scale_up) },
	{ &m_scale_writes, "direction", "down", POOL_U(scale_down) },
	{ &m_source_up, NULL, NULL, POOL_I(source_ok) },
	{ &m_source_push, NULL, NULL, POOL_PUSH },
	{ &m_source_reads, NULL, NULL, POOL_U(polls) },
	{ &m_wakeups, NULL, NULL, POOL_U(wakeups) },
	{ &m_kube_errors, NULL, NULL, POOL_U(kube_errors) },
};

/*
 * Shadow mode (pool.h): what each shadow pool would do, to set beside
 * another autoscaler's decisions on the same queue (KEDA's HPA desired
 * replicas).  Only the pools in shadow mode that have decided.
 */
static void
metrics_shadow(const struct daemon *d, struct prom *w)
{
	const struct pool *p;
	size_t		 j;

	prom_family(w, &m_shadow);
	for (j = 0; j < d->npools; j++) {
		const char *labels[] = { "namespace", NULL, "pool", NULL,
		    "mode", NULL, NULL };

		p = d->pools[j];
		if (!p->cfg->shadow || p->would < 0)
			continue;
		labels[1] = p->cfg->ns;
		labels[3] = p->cfg->name;
		labels[5] = p->cfg->mode == POOL_MODE_SCALE ? "scale" :
		    "dispatch";
		prom_sample(w, labels, (double)p->would);
	}
}

/* A row's value for p; 0 when it has none (NAN: leave the series out). */
static double
metrics_pool_value(const struct prom_row *row, const struct pool *p)
{
	if (row->kind != PROM_F_CALL)
		return (prom_row_value(row, p));
	if (row->off == 0)
		return (pool_pushing(p));
	if (row->off == 2)
		return ((double)(row->def == &m_min ?
		    p->cfg->scaling.min_replicas :
		    p->cfg->scaling.max_replicas));
	if (!p->spec_known)
		return (NAN);
	return ((double)(row->def == &m_spec ? p->spec_replicas :
	    p->status_replicas));
}

static void
metrics_pools(const struct daemon *d, struct prom *w)
{
	const struct prom_row *row;
	const struct pool *p;
	double		 v;
	size_t		 i, j, k;

	for (i = 0; i < AS_ARRAY_SIZE(metrics_pool_rows); i++) {
		row = &metrics_pool_rows[i];
		prom_family(w, row->def);
		for (j = 0; j < d->npools; j++) {
			const char *labels[] = { "namespace", NULL, "pool",
			    NULL, row->label, row->value, NULL };

			p = d->pools[j];
			labels[1] = p->cfg->ns;
			labels[3] = p->cfg->name;
			if (!isnan(v = metrics_pool_value(row, p)))
				prom_sample(w, labels, v);
		}
	}
	metrics_shadow(d, w);
	prom_family(w, &m_source_errors);
	for (j = 0; j < d->npools; j++) {
		p = d->pools[j];
		for (k = 0; k < POOL_SRC_ERR_COUNT; k++) {
			const char *labels[] = { "namespace", p->cfg->ns,
			    "pool", p->cfg->name, "reason",
			    pool_src_err_names[k], NULL };

			prom_sample_u64(w, labels, p->source_errors[k]);
		}
	}
	prom_family(w, &m_source_read_took);
	for (j = 0; j < d->npools; j++) {
		const char *labels[] = { "namespace", d->pools[j]->cfg->ns,
		    "pool", d->pools[j]->cfg->name, NULL };

		prom_histogram(w, labels, &d->pools[j]->read_took);
	}
	prom_family(w, &m_reaction);
	for (j = 0; j < d->npools; j++) {
		const char *labels[] = { "namespace", d->pools[j]->cfg->ns,
		    "pool", d->pools[j]->cfg->name, NULL };

		prom_histogram(w, labels, &d->pools[j]->reaction);
	}
}

/* agentscaler_pool_info: every pool of the config, both modes. */
static void
metrics_pool_info(const struct daemon *d, struct prom *w)
{
	const struct pool_config *c;
	size_t		 i;

	prom_family(w, &m_pool_info);
	for (i = 0; d->config != NULL && i < d->config->npools; i++) {
		const char *labels[] = { "namespace", NULL, "pool", NULL,
		    "mode", NULL, "source_type", NULL, "target_kind", NULL,
		    "target_name", NULL, NULL };

		c = &d->config->pools[i];
		labels[1] = c->ns;
		labels[3] = c->name;
		labels[7] = c->source.type;
		if (c->mode == POOL_MODE_DISPATCH) {
			labels[5] = "dispatch";
			labels[9] = "SandboxWarmPool";
			labels[11] = c->warm_pool;
		} else {
			labels[5] = "scale";
			labels[9] = c->target_kind;
			labels[11] = c->target_name;
		}
		prom_sample(w, labels, 1);
	}
}

/* The elector's families (leader.h). */
static void
metrics_leader(const struct leader *l, struct prom *w)
{
	struct leader_stats st;
	char		 lease[512];
	const char	*lease_l[] = { "lease", lease, NULL };
	static const char *const to[] = { "leader", "standby" };
	double		 changes[2];

	leader_get_stats(l, &st);
	snprintf(lease, sizeof lease, "%s/%s", st.ns, st.name);
	prom_family(w, &m_lease_transitions);
	prom_sample(w, lease_l, (double)st.transitions);
	prom_family(w, &m_holder_changes);
	prom_sample_u64(w, NULL, st.holder_changes);
	prom_family(w, &m_leadership);
	changes[0] = (double)st.started;
	changes[1] = (double)st.stopped;
	prom_sample_each(w, NULL, "to", to, changes, 2);
	prom_family(w, &m_lease_errors);
	prom_sample_u64(w, NULL, st.errors);
}

/* Spans the trace exporter dropped (otlp.h); none without one. */
static void
metrics_traces(const struct otlp *o, struct prom *w)
{
	static const char *const reasons[] = { "queue_full",
	    "export_failed" };
	struct otlp_stats st;
	double		 dropped[2];

	if (o == NULL)
		return;
	otlp_stats(o, &st);
	prom_family(w, &m_trace_dropped);
	dropped[0] = (double)st.dropped_full;
	dropped[1] = (double)st.dropped_failed;
	prom_sample_each(w, NULL, "reason", reasons, dropped, 2);
}

/* The connection bounds of both listeners (http.h). */
static void
metrics_http(const struct daemon *d, struct prom *w)
{
	const struct http_server *srv[2] = { d->http, d->admin };
	const char	*name[2] = { "metrics", "admin" };
	static const char *const reasons[] = { "evicted", "expired" };
	struct http_stats st[2];
	size_t		 i;

	for (i = 0; i < 2; i++)
		if (srv[i] != NULL)
			http_server_get_stats(srv[i], &st[i]);
	prom_family(w, &m_http_conns);
	for (i = 0; i < 2; i++) {
		const char *labels[] = { "listener", name[i], NULL };

		if (srv[i] != NULL)
			prom_sample_u64(w, labels, st[i].open);
	}
	prom_family(w, &m_http_closed);
	for (i = 0; i < 2; i++) {
		const char *labels[] = { "listener", name[i], NULL };
		double	 closed[2];

		if (srv[i] == NULL)
			continue;
		closed[0] = (double)st[i].evicted;
		closed[1] = (double)st[i].expired;
		prom_sample_each(w, labels, "reason", reasons, closed, 2);
	}
}

/*
 * The standby (election on, Lease not held) writes no per-pool series:
 * its pools read their sources and decide (to stay warm) but write
 * nothing, so their series would repeat the leader's and double every
 * sum() over replicas.  What it shows is its own: process, Kubernetes
 * clients, election, listeners (README "Metrics").
 */
static void
daemon_metrics(void *arg, struct http_reply *r)
{
	struct daemon	*d = arg;
	struct prom	 w;
	const char	*version[] = { "version", as_version, NULL };
	static const char *const results[] = { "ok", "refused" };
	double		 reloads[2];
	int		 leading = daemon_may_write(d);

	memset(&w, 0, sizeof w);
	prom_process(&w);
	prom_family(&w, &m_build_info);
	prom_sample(&w, version, 1);
	prom_family(&w, &m_reloads);
	reloads[0] = (double)d->reloads_ok;
	reloads[1] = (double)d->reloads_failed;
	prom_sample_each(&w, NULL, "result", results, reloads, 2);
	prom_family(&w, &m_loop_lag);
	prom_histogram(&w, NULL, &d->lag);
	prom_family(&w, &m_leader);
	prom_sample(&w, NULL, leading);
	if (d->elector != NULL)
		metrics_leader(d->elector, &w);
	metrics_kube(d, &w);
	metrics_http(d, &w);
	if (leading) {
		metrics_pool_info(d, &w);
		metrics_pools(d, &w);
		if (d->dispatch != NULL)
			dispatcher_metrics(d->dispatch, &w);
	}
	if (d->crd != NULL)
		crd_metrics(d->crd, &w);
	if (d->secrets != NULL)
		secret_store_metrics(d->secrets, &w);
	metrics_traces(d->otlp, &w);
	if (w.strays > 0)
		log_warn("daemon", "/metrics: %u samples off their family's "
		    "labels (a bug)", w.strays);
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	r->body = w.b.p;
	r->len = w.b.len;
}

/* The loop's lateness: a one-shot timer, its lateness measured anew. */
static void
daemon_lag_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct daemon	*d = t->data;

	(void)revents;
	prom_hist_add(&d->lag, ev_time() - d->lag_due);
	ev_now_update(loop);
	d->lag_due = ev_now(loop) + DAEMON_LAG_PERIOD;
	ev_timer_set(t, DAEMON_LAG_PERIOD, 0.);
	ev_timer_start(loop, t);
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
 * answer); the watches of the scale pools' targets listed (targets.h: then
 * a missing target is known missing); with election the Lease read; the
 * claims of every dispatch
 * namespace listed, since its tasks are rebuilt from them before anything
 * is admitted.  Answering at all means the loop runs.  A pool's own trouble
 * (its source unreachable, its target missing) is that pool's: its status
 * conditions, agentscaler_source_up and /status carry it, and the body
 * lists it after the verdict, but it never makes the process unready: a
 * rollout must not stall, nor a replica leave its Service, because one
 * tenant's Redis is down.
 */
/*
 * Whether a pool of the config talks to Kubernetes: a shadow or paused
 * dispatch pool (config_pool_consumes()) reads its broker only.
 */
static int
daemon_uses_k8s(const struct daemon *d)
{
	size_t	 i;

	for (i = 0; d->config != NULL && i < d->config->npools; i++)
		if (d->config->pools[i].mode == POOL_MODE_SCALE ||
		    config_pool_consumes(&d->config->pools[i]))
			return (1);
	return (0);
}

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
		else if (!p->spec_known && p->cfg->mode == POOL_MODE_SCALE)
			as_buf_printf(&pools, "%s: target not read yet%s%s\n",
			    p->id, p->k8s_err[0] ? ": " : "", p->k8s_err);
	}
	if (d->crd == NULL && daemon_uses_k8s(d)) {
		k8s_client_foreach_stat(d->k8s, daemon_k8s_answered,
		    &answered);
		if (!answered)
			as_buf_printf(&b, "Kubernetes API not reached yet\n");
	}
	/* The targets' replicas: their watches have listed. */
	(void)targets_synced(d->targets, &b);
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

/*
 * /explain?task=ID[&namespace=NS]: why a task waits, runs or was rejected
 * (in namespace NS only, when given).
 */
static void
daemon_explain(void *arg, struct http_reply *r)
{
	struct daemon	*d = arg;
	const char	*id = http_query(r, "task");
	const char	*ns = http_query(r, "namespace");
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
	} else if (!dispatcher_explain_ns(d->dispatch, id,
	    ns != NULL && *ns != '\0' ? ns : NULL, o))
		r->status = 404;
	r->body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (r->body == NULL)
		r->body = xstrdup("{}");
}

/* /status "leaderElection": the elector's state (leader.h), or none. */
static void
daemon_http_leader_status(const struct daemon *d, cJSON *root)
{
	struct leader_stats st;
	cJSON		*o;
	char		 lease[512];

	o = cJSON_AddObjectToObject(root, "leaderElection");
	if (d->elector == NULL) {
		cJSON_AddBoolToObject(o, "enabled", 0);
		cJSON_AddBoolToObject(o, "leader", 1);
		return;
	}
	leader_get_stats(d->elector, &st);
	snprintf(lease, sizeof lease, "%s/%s", st.ns, st.name);
	cJSON_AddBoolToObject(o, "enabled", 1);
	cJSON_AddBoolToObject(o, "leader", st.leader);
	cJSON_AddStringToObject(o, "identity", st.identity);
	cJSON_AddStringToObject(o, "lease", lease);
	cJSON_AddBoolToObject(o, "observed", st.observed);
	cJSON_AddStringToObject(o, "holder", st.holder);
	cJSON_AddNumberToObject(o, "leaseTransitions", (double)st.transitions);
	if (st.observed)
		cJSON_AddNumberToObject(o, "unchangedForSeconds",
		    st.unchanged_for);
	if (st.leader)
		cJSON_AddNumberToObject(o, "renewedSecondsAgo", st.renewed_ago);
	cJSON_AddNumberToObject(o, "leaseDurationSeconds", st.duration);
	cJSON_AddNumberToObject(o, "renewDeadlineSeconds", st.deadline);
	cJSON_AddNumberToObject(o, "retryPeriodSeconds", st.retry);
	cJSON_AddNumberToObject(o, "holderChanges", (double)st.holder_changes);
	cJSON_AddStringToObject(o, "error", st.error);
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
		cJSON_AddStringToObject(o, "mode", p->cfg->mode ==
		    POOL_MODE_SCALE ? "scale" : "dispatch");
		if (p->cfg->target_name != NULL)
			cJSON_AddStringToObject(o, "target",
			    p->cfg->target_name);
		cJSON_AddNumberToObject(o, "backlog", p->ready);
		cJSON_AddNumberToObject(o, "inFlight", p->in_flight);
		cJSON_AddNumberToObject(o, "desiredReplicas", p->as.desired);
		cJSON_AddNumberToObject(o, "replicas", p->spec_replicas);
		cJSON_AddStringToObject(o, "lastReason",
		    autoscale_reason_name(p->last.reason));
		cJSON_AddBoolToObject(o, "started", p->source_read &&
		    (p->spec_known || p->cfg->mode != POOL_MODE_SCALE));
		cJSON_AddBoolToObject(o, "sourceOk", p->source_ok);
		cJSON_AddBoolToObject(o, "push", pool_pushing(p));
		cJSON_AddStringToObject(o, "sourceError", p->source_err);
		cJSON_AddStringToObject(o, "kubeError", p->k8s_err);
		cJSON_AddBoolToObject(o, "shadow", p->cfg->shadow);
		cJSON_AddBoolToObject(o, "paused", p->cfg->paused);
		if (p->cfg->shadow && p->would >= 0)
			cJSON_AddNumberToObject(o, "wouldScaleTo", p->would);
		decisions_json(&p->recent,
		    cJSON_AddArrayToObject(o, "decisions"));
		cJSON_AddItemToArray(arr, o);
	}
	if (d->dispatch != NULL) {
		dispatcher_status(d->dispatch, root);
		dispatcher_status_recent(d->dispatch, root);
	}
	daemon_http_leader_status(d, root);
	r->content_type = "application/json";
	r->body = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (r->body == NULL)
		r->body = xstrdup("{}");
}

/* /ui: the status page (status_page.h), which reads /status. */
static void
daemon_ui(void *arg, struct http_reply *r)
{
	(void)arg;
	r->content_type = "text/html; charset=utf-8";
	r->body = xstrdup(status_page_html);
	r->len = strlen(r->body);
}

/* Starting and stopping the listeners. */

struct daemon_route {
	const char	*path;
	http_handler_fn	*fn;
};

static const struct daemon_route daemon_metrics_routes[] = {
	{ "/metrics", daemon_metrics },
	{ "/healthz", daemon_healthz },
	{ "/readyz", daemon_readyz },
};

static const struct daemon_route daemon_admin_routes[] = {
	{ "/status", daemon_status },
	{ "/explain", daemon_explain },
	{ "/ui", daemon_ui },
};

/* Listens on addr and routes the n routes; NULL after logging why. */
static struct http_server *
daemon_http_listen(struct daemon *d, const char *what, const char *addr,
    const struct daemon_route *routes, size_t n)
{
	struct http_server *srv;
	char		 err[512];
	size_t		 i;

	if ((srv = http_server_new(d->loop, addr, err, sizeof err)) == NULL) {
		log_error("daemon", "%s endpoint: %s", what, err);
		return (NULL);
	}
	for (i = 0; i < n; i++)
		http_server_route(srv, routes[i].path, routes[i].fn, d);
	return (srv);
}

int
daemon_http_start(struct daemon *d)
{
	const struct daemon_options *opts = d->opts;

	prom_hist_init(&d->lag, daemon_lag_bounds,
	    AS_ARRAY_SIZE(daemon_lag_bounds));
	ev_init(&d->lag_timer, daemon_lag_cb);
	d->lag_timer.data = d;
	ev_now_update(d->loop);
	d->lag_due = ev_now(d->loop) + DAEMON_LAG_PERIOD;
	ev_timer_set(&d->lag_timer, DAEMON_LAG_PERIOD, 0.);
	ev_timer_start(d->loop, &d->lag_timer);
	d->http = daemon_http_listen(d, "metrics", opts->metrics_addr,
	    daemon_metrics_routes, AS_ARRAY_SIZE(daemon_metrics_routes));
	if (d->http == NULL)
		return (-AS_EINVAL);
	log_info("daemon", "agentscaler %s serving /metrics /healthz /readyz "
	    "on %s (port %d)", as_version, opts->metrics_addr,
	    http_server_port(d->http));
	/*
	 * /status, /explain and /ui name tasks, namespaces and trees of every
	 * tenant: on an address of their own, loopback by default, never on
	 * the one Prometheus and the probes reach.
	 */
	if (opts->admin_addr == NULL) {
		log_info("daemon", "/status and /explain are off "
		    "(--admin-addr)");
		return (0);
	}
	d->admin = daemon_http_listen(d, "admin", opts->admin_addr,
	    daemon_admin_routes, AS_ARRAY_SIZE(daemon_admin_routes));
	if (d->admin == NULL)
		return (-AS_EINVAL);
	log_info("daemon", "serving /status /explain /ui on %s (port %d)",
	    opts->admin_addr, http_server_port(d->admin));
	return (0);
}

void
daemon_http_stop(struct daemon *d)
{
	ev_timer_stop(d->loop, &d->lag_timer);
	http_server_free(d->admin);
	http_server_free(d->http);
	d->admin = d->http = NULL;
}
