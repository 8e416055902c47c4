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
#include "agentscaler/rt/prom.h"
#include "autoscale.h"
#include "crd.h"
#include "daemon_http.h"
#include "daemon_state.h"
#include "decisions.h"
#include "dispatch.h"
#include "pool.h"
#include "status_page.h"
#include "targets.h"

/* /metrics: Prometheus text exposition format 0.0.4. */

/* One (verb, code) counter of a client, into the family named. */
struct metrics_stat {
	struct prom	*w;
	const char	*family;
};

static void
metrics_kube_stat(const char *verb, long code, uint64_t count, void *arg)
{
	struct metrics_stat *ms = arg;
	char		 c[24];
	const char	*labels[] = { "verb", verb, "code", c, NULL };

	snprintf(c, sizeof c, "%ld", code);
	prom_sample_u64(ms->w, ms->family, labels, count);
}

/* The per-pool families, read straight from struct pool. */
#define POOL_D(m) offsetof(struct pool, m), PROM_F_DOUBLE
#define POOL_L(m) offsetof(struct pool, m), PROM_F_LONG
#define POOL_U(m) offsetof(struct pool, m), PROM_F_U64
#define POOL_I(m) offsetof(struct pool, m), PROM_F_INT
#define POOL_PUSH 0, PROM_F_CALL	/* pool_pushing() */
static const struct prom_row metrics_pool_rows[] = {
	{ "agentscaler_pool_backlog", PROM_GAUGE, NULL, NULL, POOL_D(ready),
	    "Tasks waiting in the source at the last read." },
	{ "agentscaler_pool_in_flight", PROM_GAUGE, NULL, NULL,
	    POOL_D(in_flight),
	    "Tasks taken but not finished at the last read." },
	{ "agentscaler_pool_desired_replicas", PROM_GAUGE, NULL, NULL,
	    POOL_L(as.desired), "Replicas the last decision asked for." },
	{ "agentscaler_pool_replicas", PROM_GAUGE, NULL, NULL,
	    POOL_L(spec_replicas),
	    "spec.replicas of the target as last read or written." },
	{ "agentscaler_pool_status_replicas", PROM_GAUGE, NULL, NULL,
	    POOL_L(status_replicas),
	    "status.replicas of the target as last read." },
	{ "agentscaler_pool_scale_events_total", PROM_COUNTER, "direction",
	    "up", POOL_U(scale_up), "Successful scale writes by direction." },
	{ "agentscaler_pool_scale_events_total", PROM_COUNTER, "direction",
	    "down", POOL_U(scale_down), NULL },
	{ "agentscaler_source_errors_total", PROM_COUNTER, NULL, NULL,
	    POOL_U(source_errors), "Failed reads of the pool's source." },
	{ "agentscaler_source_up", PROM_GAUGE, NULL, NULL, POOL_I(source_ok),
	    "1 when the last read of the source succeeded." },
	{ "agentscaler_source_push", PROM_GAUGE, NULL, NULL, POOL_PUSH,
	    "1 while push wake-ups are live, 0 when polling only." },
	{ "agentscaler_source_polls_total", PROM_COUNTER, NULL, NULL,
	    POOL_U(polls), "Completed reads of the source." },
	{ "agentscaler_source_wakeups_total", PROM_COUNTER, NULL, NULL,
	    POOL_U(wakeups), "Push wake-ups received." },
	{ "agentscaler_pool_kube_errors_total", PROM_COUNTER, NULL, NULL,
	    POOL_U(kube_errors),
	    "Failed reads or writes of the pool's target." },
};

static void
metrics_pools(const struct daemon *d, struct prom *w)
{
	const struct prom_row *row;
	const struct pool *p;
	size_t		 i, j;

	for (i = 0; i < AS_ARRAY_SIZE(metrics_pool_rows); i++) {
		row = &metrics_pool_rows[i];
		if (row->help != NULL)
			prom_family(w, row->name, row->type, "%s", row->help);
		for (j = 0; j < d->npools; j++) {
			const char *labels[] = { "namespace", NULL, "pool",
			    NULL, row->label, row->value, NULL };

			p = d->pools[j];
			labels[1] = p->cfg->ns;
			labels[3] = p->cfg->name;
			prom_sample(w, row->name, labels,
			    row->kind == PROM_F_CALL ? pool_pushing(p) :
			    prom_row_value(row, p));
		}
	}
}

/* The elector's families (leader.h). */
static void
metrics_leader(const struct leader *l, struct prom *w)
{
	struct leader_stats st;
	char		 lease[512];
	const char	*lease_l[] = { "lease", lease, NULL };
	const char	*holder_l[] = { "holder", NULL, NULL };
	static const char *const to[] = { "leader", "standby" };
	double		 changes[2];

	leader_get_stats(l, &st);
	snprintf(lease, sizeof lease, "%s/%s", st.ns, st.name);
	holder_l[1] = st.holder;
	prom_family(w, "agentscaler_lease_transitions", PROM_GAUGE,
	    "leaseTransitions of the Lease as last observed.");
	prom_sample(w, "agentscaler_lease_transitions", lease_l,
	    (double)st.transitions);
	prom_family(w, "agentscaler_lease_holder", PROM_GAUGE, "The Lease's "
	    "holder as last observed (\"\" when released or not read yet).");
	prom_sample(w, "agentscaler_lease_holder", holder_l, 1);
	prom_family(w, "agentscaler_lease_holder_changes_total", PROM_COUNTER,
	    "Holder changes this process observed.");
	prom_sample_u64(w, "agentscaler_lease_holder_changes_total", NULL,
	    st.holder_changes);
	prom_family(w, "agentscaler_leadership_changes_total", PROM_COUNTER,
	    "Times this process started and stopped leading.");
	changes[0] = (double)st.started;
	changes[1] = (double)st.stopped;
	prom_sample_each(w, "agentscaler_leadership_changes_total", NULL, "to",
	    to, changes, 2);
	prom_family(w, "agentscaler_lease_errors_total", PROM_COUNTER,
	    "Lease requests that failed.");
	prom_sample_u64(w, "agentscaler_lease_errors_total", NULL, st.errors);
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
	prom_family(w, "agentscaler_http_connections", PROM_GAUGE, "Open "
	    "connections of each listener (at most %d each).", HTTP_MAX_CONNS);
	for (i = 0; i < 2; i++) {
		const char *labels[] = { "listener", name[i], NULL };

		if (srv[i] != NULL)
			prom_sample_u64(w, "agentscaler_http_connections",
			    labels, st[i].open);
	}
	prom_family(w, "agentscaler_http_connections_closed_total",
	    PROM_COUNTER, "Connections the server closed: evicted (the oldest, "
	    "for a new one at the limit), expired (no complete request within "
	    "%d s).", HTTP_REQUEST_SECONDS);
	for (i = 0; i < 2; i++) {
		const char *labels[] = { "listener", name[i], NULL };
		double	 closed[2];

		if (srv[i] == NULL)
			continue;
		closed[0] = (double)st[i].evicted;
		closed[1] = (double)st[i].expired;
		prom_sample_each(w, "agentscaler_http_connections_closed_total",
		    labels, "reason", reasons, closed, 2);
	}
}

static void
daemon_metrics(void *arg, struct http_reply *r)
{
	struct daemon	*d = arg;
	struct prom	 w;
	struct metrics_stat ms = { &w, "agentscaler_kube_requests_total" };
	const char	*version[] = { "version", as_version, NULL };
	static const char *const results[] = { "ok", "refused" };
	double		 reloads[2];

	memset(&w, 0, sizeof w);
	prom_family(&w, "agentscaler_build_info", PROM_GAUGE, "Build of the "
	    "running daemon.");
	prom_sample(&w, "agentscaler_build_info", version, 1);
	prom_family(&w, "agentscaler_uptime_seconds", PROM_GAUGE, "Seconds "
	    "since start.");
	prom_samplef(&w, "agentscaler_uptime_seconds", NULL, "%.3f",
	    as_mono_now() - d->started);
	prom_family(&w, "agentscaler_config_reloads_total", PROM_COUNTER,
	    "SIGHUP reloads by result.");
	reloads[0] = (double)d->reloads_ok;
	reloads[1] = (double)d->reloads_failed;
	prom_sample_each(&w, "agentscaler_config_reloads_total", NULL,
	    "result", results, reloads, 2);
	metrics_pools(d, &w);
	prom_family(&w, "agentscaler_kube_requests_total", PROM_COUNTER,
	    "Kubernetes API requests by verb and HTTP code (0: no response).");
	k8s_client_foreach_stat(d->k8s, metrics_kube_stat, &ms);
	if (d->lease_k8s != NULL) {
		prom_family(&w, "agentscaler_lease_requests_total",
		    PROM_COUNTER, "Requests of the leader elector (a client of "
		    "its own) by verb and HTTP code (0: no response).");
		ms.family = "agentscaler_lease_requests_total";
		k8s_client_foreach_stat(d->lease_k8s, metrics_kube_stat, &ms);
	}
	prom_family(&w, "agentscaler_leader", PROM_GAUGE, "1 while this "
	    "process may write to Kubernetes (holds the Lease; always 1 "
	    "without --leader-elect).");
	prom_sample(&w, "agentscaler_leader", NULL, daemon_may_write(d));
	if (d->elector != NULL)
		metrics_leader(d->elector, &w);
	if (d->dispatch != NULL)
		dispatcher_metrics(d->dispatch, &w);
	if (d->crd != NULL)
		crd_metrics(d->crd, &w);
	if (d->secrets != NULL)
		secret_store_metrics(d->secrets, &w);
	metrics_http(d, &w);
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	r->body = w.b.p;
	r->len = w.b.len;
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
	http_server_free(d->admin);
	http_server_free(d->http);
	d->admin = d->http = NULL;
}
