/*
 * dispatch_claim.c: a task's SandboxClaim: the POST (a 409 adopts the claim
 * an earlier attempt made), the GET of an adopted one, the foreground
 * DELETE; the claim as the namespace's informer shows it, which at start
 * rebuilds the task table from our claims; and the sweep: retries,
 * readyTimeoutSeconds, the TTL backstop, sizing and template reads.
 *
 * Ownership: a request in flight is t->req and holds its task; its
 * completion clears t->req first.  An informer event that comes while the
 * claim's POST is in flight is not applied; the completion catches up from
 * the informer's cache (dtask_apply_cached).  A claim whose task id is not
 * the task's is never deleted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "config.h"
#include "agentscaler/k8s/informer.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/log.h"
#include "quota.h"
#include "task.h"
#include "warmpool.h"

#include "dispatch_int.h"

#define TTL_GRACE	30.0	/* s past shutdownTime before we delete */
#define API_GRACE	30.0	/* s a request's failure means an outage */

static void	 dtask_save_budget(struct dtask *, double);

static struct dpool *
dns_pool_by_name(struct dns *ns, const char *name)
{
	struct dpool	*p;
	char		 label[64];

	/* A name short enough is its own label: found by a lookup. */
	if ((p = dpool_find(ns->d, ns->name, name)) != NULL) {
		task_pool_label(p->cfg->name, label);
		if (strcmp(label, name) == 0)
			return (p);
	}
	/* name is the claim's pool label: compare reduced forms. */
	LIST_FOREACH(p, &ns->pools, nsentry) {
		ns->d->visits++;
		task_pool_label(p->cfg->name, label);
		if (strcmp(label, name) == 0)
			return (p);
	}
	return (NULL);
}

/* No API server answered: no HTTP status, a 5xx or a 429. */
static int
k8s_unreachable(const struct k8s_response *r)
{
	return (r->err != 0 && r->err != -AS_ECANCELED && (r->code == 0 ||
	    r->code >= 500 || r->code == 429));
}

void
dns_api_note(struct dns *ns, const struct k8s_response *r)
{
	if (k8s_unreachable(r))
		ns->api_failed_at = as_mono_now();
	else if (r->err != -AS_ECANCELED)
		ns->api_failed_at = 0;
}

/*
 * Whether ns's API server is out of reach now: its claim informer fails
 * to list or watch, or a request of ours found no server lately (within
 * API_GRACE; a request answered since says otherwise).
 */
static int
dns_api_down(const struct dns *ns, double now)
{
	struct informer_stats st;

	if (ns->api_failed_at > 0 && now - ns->api_failed_at < API_GRACE)
		return (1);
	if (ns->claims == NULL || ns->d->ops->informer_stats == NULL)
		return (0);
	ns->d->ops->informer_stats(ns->claims, &st);
	return (st.failing > 0);
}

static void
delete_done(const struct k8s_response *r, void *arg)
{
	struct dtask	*t = arg;

	t->req = NULL;
	dns_api_note(t->ns, r);
	if (dtask_completion_moot(t, r->err))
		return;
	if (r->err == 0 || r->err == -AS_ENOTFOUND) {
		/* The DELETED event frees the record; 404: it is gone. */
		if (r->err == -AS_ENOTFOUND)
			dtask_maybe_free(t);
		return;
	}
	log_kv(LOG_WARN, "dispatch", DTASK_LOG(t, NULL),
	    "%s/%s: cannot delete claim, retrying: %s",
	    t->ns->name, t->claim, r->message);
	t->retry_at = as_mono_now() + as_backoff(0.5, 30, t->attempts++);
}

/* 1 when the Sandbox object obj is controlled by the claim of uid. */
static int
sandbox_owned_by(const cJSON *obj, const char *uid)
{
	const cJSON	*refs, *r;
	const char	*ruid;

	refs = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(obj, "metadata"),
	    "ownerReferences");
	cJSON_ArrayForEach(r, refs) {
		ruid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r,
		    "uid"));
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r,
		    "controller")) && ruid != NULL && strcmp(ruid, uid) == 0)
			return (1);
	}
	return (0);
}

static void
sandbox_get_done(const struct k8s_response *r, void *arg)
{
	struct dtask	*t = arg;
	cJSON		*obj;
	int		 owned;

	t->req = NULL;
	if (dtask_completion_moot(t, r->err))
		return;
	if (r->err == 0) {
		obj = cJSON_ParseWithLength(r->body, r->body_len);
		owned = obj == NULL || sandbox_owned_by(obj, t->claim_uid);
		cJSON_Delete(obj);
		if (owned) {
			/* Still there (terminating): the quota keeps it. */
			t->retry_at = as_mono_now() + as_backoff(0.5, 10,
			    t->attempts++);
			return;
		}
	} else if (r->err != -AS_ENOTFOUND && r->code != 403) {
		t->retry_at = as_mono_now() + as_backoff(0.5, 10,
		    t->attempts++);
		return;
	}
	if (r->code == 403)
		log_kv(LOG_WARN, "dispatch", DTASK_LOG(t, NULL),
		    "%s/%s: cannot read Sandbox %s (%s); its "
		    "quota is freed with the claim", t->ns->name, t->claim,
		    t->sandbox, r->message);
	t->await_sandbox = 0;
	dtask_maybe_free(t);
}

/*
 * The claim is gone but not through our foreground delete: a delete in
 * the background (by someone else, or by a TTL with shutdownPolicy
 * Delete) frees the claim while its Sandbox and pod still run.  The
 * quota keeps the task until a GET of the Sandbox says it is gone (404,
 * or no longer the claim's).
 */
static void
dtask_await_sandbox(struct dtask *t)
{
	char	 path[512];

	snprintf(path, sizeof path, K8S_SANDBOX_API "/namespaces/%s/"
	    "sandboxes/%s", t->ns->name, t->sandbox);
	t->req = t->ns->d->ops->request(t->ns->d->k8s, "GET", path, NULL,
	    NULL, sandbox_get_done, t);
	if (t->req == NULL)
		t->retry_at = as_mono_now() + 1;
}

/* Deletes the claim (if any) and lets the record go with it. */
void
dtask_release(struct dtask *t)
{
	char	 path[512];

	dtask_set_state(t, T_RELEASING);
	t->retry_at = 0;
	t->held = 0;	/* released, whatever held it: the sweep retries it */
	if (!t->claim_exists && t->await_sandbox) {
		if (t->req == NULL)
			dtask_await_sandbox(t);
		return;
	}
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
	dtask_unshow(t);
	t->launch = strcmp(v->sandbox, v->name) == 0 ? L_COLD : L_WARM;
	dtask_show(t);
	if (t->t_claim > 0)
		lat = as_mono_now() - t->t_claim;
	else if (v->requested_at > 0)
		lat = as_wall_now() - v->requested_at;
	if (p != NULL) {
		if (t->launch == L_COLD) {
			p->claims_ready[L_COLD]++;
			if (lat >= 0) {
				prom_hist_add(&p->ready_cold, lat);
				warmpool_cold_sample(&p->ws, &p->wp, lat);
			}
		} else {
			p->claims_ready[L_WARM]++;
			if (lat >= 0)
				prom_hist_add(&p->ready_warm, lat);
		}
	}
	as_strlcpy(t->claim_uid, v->uid, sizeof t->claim_uid);
	if (t->msg != NULL)
		dtask_handoff(t);
	else if (dpool_http(p))
		dhttp_resume(t);	/* follow it from the runtime's log */
	else
		/*
		 * Known from the claim only: its message was acked before a
		 * restart (handed off), or comes back and joins then.
		 */
		dtask_set_state(t, T_RUNNING);
}

/*
 * The sandbox of a task handed off ended in failure: counted, an Event,
 * the claim released; never a completion.  Its message was acked at the
 * hand-off, so there is nothing left to dead-letter or hand off again.
 */
void
dtask_sandbox_failed(struct dtask *t, const char *reason, const char *detail)
{
	t->failed = 1;
	if (t->pool != NULL)
		t->pool->failed++;
	log_kv(LOG_WARN, "dispatch", DTASK_LOG(t, reason),
	    "%s/%s: task %s failed after its hand-off: "
	    "sandbox %s: %s: %s", t->ns->name, t->claim, t->id, t->sandbox,
	    reason, detail);
	dpool_event(t->pool, 1, "TaskFailed", "Sandbox", "task %s: sandbox %s "
	    "failed after the hand-off: %s: %s", t->id, t->sandbox, reason,
	    detail);
	dispatch_recent_add(t->ns->d, t->ns->name, t->id, reason, detail);
	/* It ran: as with a success, the claim waits for the ack to land. */
	if (!dtask_hold(t))
		dtask_release(t);
}

static void
dtask_apply(struct dtask *t, const struct claim_view *v)
{
	char		 reason[96];
	const char	*ended;

	t->claim_exists = 1;
	if (v->shutdown_time > 0)
		t->shutdown_time = v->shutdown_time;
	if (v->sandbox[0] != '\0')
		as_strlcpy(t->sandbox, v->sandbox, sizeof t->sandbox);
	as_strlcpy(t->pod_ip, v->pod_ip, sizeof t->pod_ip);
	if (t->st == T_RELEASING || t->doomed)
		return;
	/*
	 * Finished=True only says the pod reached a terminal phase; an evicted
	 * or deleted pod passes through Failed too, and the controller then
	 * makes a new one under the same name (upstream
	 * controllers/sandbox_controller.go; ref/agent-sandbox-api.md section
	 * 15).  Only PodSucceeded is a completion; after the hand-off, a
	 * PodFailed (on Finished or forwarded on Ready) is the task's failure.
	 */
	ended = v->finished ? v->finished_reason : v->ready_reason;
	if ((v->finished || v->ready != 1) &&
	    strcmp(ended, "PodSucceeded") == 0 && dtask_succeeded_unseen(t))
		return;
	if ((v->finished || v->ready != 1) &&
	    strcmp(ended, "PodSucceeded") == 0 && t->op && t->http == NULL &&
	    t->st == T_HANDOFF && (t->rebuilt || t->handoff_sent)) {
		/*
		 * A hand-off is in flight (a repeat after a crash or a lost
		 * confirm, or the first, whose publish the runtime may have
		 * run before its confirm came) and the sandbox has already
		 * succeeded: the task ran, unless the broker refuses the only
		 * hand-off there was.  The hand-off's completion settles it
		 * (handoff_done), not "finished before the hand-off".
		 */
		t->succeeded_seen = 1;
		return;
	}
	if (v->finished || (t->handed_off && v->ready != 1 &&
	    (strcmp(ended, "PodFailed") == 0 ||
	    strcmp(ended, "PodSucceeded") == 0))) {
		snprintf(reason, sizeof reason, "sandbox.%s",
		    ended[0] != '\0' ? ended : "Finished");
		if (t->http != NULL && dhttp_ended(t,
		    strcmp(ended, "PodSucceeded") == 0, reason, v->finished ?
		    "the sandbox's pod ended without a terminal event" :
		    v->ready_message))
			return;		/* dispatch_http.c publishes */
		if (t->msg != NULL && !t->handed_off)
			dtask_fail(t, "claim.finishedBeforeHandoff",
			    "the sandbox finished before the task reached it");
		else if (strcmp(ended, "PodSucceeded") != 0) {
			snprintf(reason, sizeof reason, "sandbox.%s",
			    ended[0] != '\0' ? ended : "Finished");
			dtask_sandbox_failed(t, reason, v->finished ?
			    "the sandbox's pod ended without succeeding" :
			    v->ready_message);
		} else
			dtask_succeeded(t);
		return;
	}
	if (task_claim_cluster_wait(v))
		as_strlcpy_utf8(t->wait_reason, v->ready_reason,
		    sizeof t->wait_reason);
	else
		t->wait_reason[0] = '\0';
	if (task_claim_terminal(v) || v->deleting) {
		if (t->pool != NULL && !t->handed_off)
			t->pool->claims_failed[t->launch]++;
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
	dns_api_note(t->ns, r);
	if (dtask_completion_moot(t, r->err))
		return;
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
	if (t->pool == NULL && t->msg == NULL) {
		/* Its pool was removed meanwhile (dispatch.c). */
		dtask_release(t);
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
	dns_api_note(t->ns, r);
	if (dtask_completion_moot(t, r->err))
		return;
	if (r->err == 0) {
		t->claim_exists = 1;
		t->attempts = 0;
		dhttp_child_admitted(t);	/* a spawned child's verdict */
		if (t->pool == NULL && t->msg == NULL) {
			/* Its pool was removed meanwhile (dispatch.c). */
			dtask_release(t);
			return;
		}
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
		dhttp_child_admitted(t);
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
		log_kv(LOG_WARN, "dispatch", DTASK_LOG(t, NULL),
		    "%s: cannot create claim %s for task %s, "
		    "will retry: %s", t->pool->id, t->claim, t->id, r->message);
	if (k8s_unreachable(r) && r->err != -AS_ETHROTTLED)
		/*
		 * The POST may have landed before its answer was lost: the
		 * claim may exist.  A retry adopts it (409); a release
		 * deletes it (404: it did not), never leaving it to its TTL.
		 */
		t->claim_exists = 1;
	t->retry_at = as_mono_now() + as_backoff(0.5, 10, t->attempts++);
}

void
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

/* The sweep: retries, timeouts, TTL backstop, sizing. */

/*
 * readyTimeoutSeconds passed while the claim shows a cluster fault
 * (task_claim_cluster_wait): not the task's fault, so it is not
 * dead-lettered.  The claim stays (it is the task's place in line; the
 * controller retries with backoff), the message stays unacked, and the
 * next look is backed off.  The first time says so in an Event.
 */
static void
dtask_cluster_wait(struct dtask *t, double now)
{
	double	 base = t->pool != NULL ?
	    (double)t->pool->cfg->ready_timeout_seconds : 180.0;

	if (t->cluster_waits == 0) {
		log_kv(LOG_WARN, "dispatch", DTASK_LOG(t, t->wait_reason),
		    "%s/%s: task %s not Ready within its "
		    "readyTimeoutSeconds, waiting on the cluster: %s",
		    t->ns->name, t->claim, t->id, t->wait_reason);
		dpool_event(t->pool, 1, "ClaimWaiting", "Claim", "task %s: "
		    "claim %s not Ready within readyTimeoutSeconds: %s (the "
		    "cluster's, not the task's: still waiting)", t->id,
		    t->claim, t->wait_reason);
	}
	if (t->pool != NULL)
		t->pool->cluster_waits++;
	t->ready_by = now + as_backoff(base, 600, t->cluster_waits++);
}

void
dispatcher_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dispatcher *d = w->data;
	struct dns	*ns;
	struct dtask	*t, *next;
	struct dpool	*p;
	double		 now = as_mono_now(), wall = as_wall_now();
	char		 detail[128];
	int		 down;

	(void)loop;
	(void)revents;
	LIST_FOREACH(ns, &d->nss, entry) {
		if (ns->ndeferred > 0)
			dns_pump(ns);	/* spawn tokens refill with time */
		/*
		 * Time without the API server is not the tasks': their
		 * readyTimeoutSeconds deadlines move on by it (from the first
		 * sweep that saw the outage to the first that sees its end).
		 */
		down = dns_api_down(ns, now);
		if (ns->down_since > 0)
			TAILQ_FOREACH(t, &ns->tasks, all)
				if (t->ready_by > 0)
					t->ready_by += now - ns->down_since;
		if (down && ns->down_since == 0)
			log_kv(LOG_WARN, "dispatch", &(struct log_fields){
			    .ns = ns->name }, "namespace %s: the API server "
			    "cannot be reached; readyTimeoutSeconds waits for "
			    "it", ns->name);
		else if (!down && ns->down_since > 0)
			log_kv(LOG_INFO, "dispatch", &(struct log_fields){
			    .ns = ns->name }, "namespace %s: the API server is "
			    "reachable again", ns->name);
		ns->down_since = down ? now : 0;
		for (t = TAILQ_FIRST(&ns->tasks); t != NULL; t = next) {
			next = TAILQ_NEXT(t, all);
			dtask_save_budget(t, now);
			if (t->doomed || t->op || t->req != NULL)
				continue;
			if (t->held && t->st == T_RUNNING) {
				/* Still held: the TTL backstop below. */
				dtask_hold_sweep(t, now);
				if (t->st != T_RUNNING)
					continue;
			}
			if (!down && t->msg != NULL && t->ready_by > 0 &&
			    now > t->ready_by && t->st == T_WAITING &&
			    t->wait_reason[0] != '\0') {
				dtask_cluster_wait(t, now);
				continue;
			}
			if (!down && t->msg != NULL && t->ready_by > 0 &&
			    now > t->ready_by && (t->st == T_CLAIMING ||
			    t->st == T_WAITING)) {
				if (t->pool != NULL)
					t->pool->claims_failed[t->launch]++;
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
				log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, NULL),
				    "%s/%s: task %s outlived "
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
	LIST_FOREACH(p, &d->pools, entry) {
		dpool_template(p, now);
		dpool_status_note(p);
	}
}

/*
 * Rebuilding the quota from claims at start.  A task rebuilt from its
 * claim holds a sandbox: it counts whatever the limits say.  The claims of
 * the initial list come in the API server's order, a child's before its
 * parent's as often as not, and a child admitted before its parent is
 * counted as nobody's child (maxChildrenPerTask would be bypassed).  So
 * until the list is complete, rebuilt tasks are only recorded, and at the
 * first sync, before any pool consumes, dns_rebuild() admits them tree by
 * tree, parents first (a parent's depth is its child's minus one), then
 * puts back what each tree had used of its sandbox-seconds budget.
 *
 * The budget is the one thing claims do not show by themselves: the
 * sweep saves each tree's charge on a claim of the tree (the root's while
 * it lives, since the root is usually first in the table) at most every
 * BUDGET_SAVE_INTERVAL seconds, annotation TASK_ANN_TREE_BUDGET
 * {"seconds", "at"}.  At rebuild a tree's charge is the latest save found
 * on its claims, plus, for each live task, the time it has run since then
 * (since its claim was made, if later): a live sandbox was charged up to
 * the save and runs on meanwhile, whoever watches it.  Without any save
 * (a tree younger than the interval) the live tasks' age alone is the
 * charge.  What is lost: the seconds of tasks that ended after the last
 * save, at most BUDGET_SAVE_INTERVAL x the tree's live tasks, and all of
 * it when the claim holding the save goes with no other live one saved
 * since; the budget is a backstop, not an invoice.
 */

#define BUDGET_SAVE_INTERVAL	30.0	/* s between saves of one tree */

static void
dtask_rebuild_admit(struct dtask *t)
{
	struct quota_task qt;
	struct quota_res qr[TASK_MAX_RESOURCES];

	if (t->admitted)
		return;
	/* The annotation holds what it was charged. */
	dtask_quota_task(t, t->res, t->nres, &qt, qr);
	quota_admit(t->ns->quota, &qt, as_mono_now());
	t->admitted = 1;
}

/* By tree, then parents first. */
static int
dtask_rebuild_cmp(const void *a, const void *b)
{
	const struct dtask *x = *(struct dtask *const *)a;
	const struct dtask *y = *(struct dtask *const *)b;
	int		 c = strcmp(x->root, y->root);

	if (c != 0)
		return (c);
	return (x->depth < y->depth ? -1 : x->depth > y->depth);
}

/* What the tree of v[0..n) had used, as its claims say (see above). */
static double
dns_rebuild_budget(struct dns *ns, struct dtask **v, size_t n, double wall)
{
	struct claim_view *cv;
	const cJSON	*obj;
	double		 saved = 0, at = 0, sum = 0, from;
	size_t		 i;
	char		 err[128];

	cv = xcalloc(n, sizeof *cv);
	for (i = 0; i < n; i++) {
		cv[i].tree_seconds = -1;
		obj = ns->claims != NULL ? ns->d->ops->informer_get(ns->claims,
		    ns->name, v[i]->claim) : NULL;
		if (obj == NULL || task_claim_parse(obj, &cv[i], err,
		    sizeof err) != 0)
			continue;
		if (cv[i].tree_seconds >= 0 && cv[i].tree_saved_at > at) {
			saved = cv[i].tree_seconds;
			at = cv[i].tree_saved_at;
		}
	}
	for (i = 0; i < n; i++) {
		from = cv[i].created > 0 ? cv[i].created :
		    cv[i].requested_at > 0 ? cv[i].requested_at : wall;
		if (from < at)
			from = at;
		if (wall > from)
			sum += wall - from;
	}
	free(cv);
	return (saved + sum);
}

static void
dns_rebuild(struct dns *ns)
{
	struct dtask	*t, **v;
	size_t		 n = 0, i, j;
	double		 wall = as_wall_now(), seconds;

	TAILQ_FOREACH(t, &ns->tasks, all)
		if (t->rebuilt && !t->admitted && !t->doomed)
			n++;
	if (n == 0)
		return;
	v = xcalloc(n, sizeof *v);
	n = 0;
	TAILQ_FOREACH(t, &ns->tasks, all)
		if (t->rebuilt && !t->admitted && !t->doomed)
			v[n++] = t;
	qsort(v, n, sizeof *v, dtask_rebuild_cmp);
	for (i = 0; i < n; i++)
		dtask_rebuild_admit(v[i]);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && strcmp(v[j]->root, v[i]->root) == 0;
		    j++)
			;
		seconds = dns_rebuild_budget(ns, v + i, j - i, wall);
		if (seconds > 0)
			quota_tree_restore(ns->quota, v[i]->root, seconds,
			    as_mono_now());
	}
	free(v);
}

static void
save_done(const struct k8s_response *r, void *arg)
{
	struct dtask	*t = arg;

	t->save_req = NULL;
	if (r->err == -AS_ECANCELED)
		return;		/* dns_free, which frees t */
	if (r->err != 0 && r->err != -AS_ENOTFOUND)
		log_warn("dispatch", "%s/%s: cannot save the sandbox-seconds "
		    "of tree %s, trying again later: %s", t->ns->name,
		    t->claim, t->root, r->message);
	if (t->doomed)
		dtask_maybe_free(t);
}

/* Saves t's tree's sandbox-seconds on t's claim when due. */
static void
dtask_save_budget(struct dtask *t, double now)
{
	char		 path[512], *body;
	double		 seconds;

	if (t->doomed || !t->claim_exists || !t->admitted ||
	    t->save_req != NULL || t->st == T_RELEASING ||
	    t->st == T_CLAIMING || !quota_tree_save_due(t->ns->quota, t->root,
	    now, BUDGET_SAVE_INTERVAL, &seconds))
		return;
	snprintf(path, sizeof path, CLAIMS_API
	    "/namespaces/%s/sandboxclaims/%s", t->ns->name, t->claim);
	body = xasprintf("{\"metadata\":{\"annotations\":{\""
	    TASK_ANN_TREE_BUDGET "\":\"{\\\"seconds\\\":%.3f,"
	    "\\\"at\\\":%.3f}\"}}}", seconds, as_wall_now());
	t->save_req = t->ns->d->ops->request(t->ns->d->k8s, "PATCH", path,
	    "application/merge-patch+json", body, save_done, t);
	free(body);
}

/* Claim informer of a namespace. */

void
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
			dns_rebuild(ns);
			TAILQ_FOREACH(t, &ns->tasks, all)
				nrebuilt += t->rebuilt;
			log_kv(LOG_INFO, "dispatch", &(struct log_fields){
			    .ns = ns->name }, "namespace %s: %zu live tasks "
			    "rebuilt from claims; consuming", ns->name,
			    nrebuilt);
		}
		ns->synced = 1;
		LIST_FOREACH(p, &ns->pools, nsentry)
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
		/*
		 * Our own delete is foreground: its DELETED comes once the
		 * Sandbox is gone.  Any other may have been in the background.
		 */
		if (t->st != T_RELEASING && t->sandbox[0] != '\0' &&
		    !t->doomed) {
			t->await_sandbox = 1;
			as_strlcpy(t->claim_uid, v.uid, sizeof t->claim_uid);
		}
		if (t->msg != NULL && !t->handed_off && !t->doomed &&
		    t->st != T_RELEASING) {
			dtask_fail(t, "claim.deleted", "the claim was deleted "
			    "before the task was handed off");
			return;
		}
		if (t->pool != NULL && (t->handed_off || t->rebuilt) &&
		    !t->failed)
			t->pool->completed++;
		if (t->await_sandbox && !t->doomed)
			dtask_release(t);
		else
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
		dtask_set_pool(t, p);
		if (v.pool[0] != '\0')
			t->pool_name = xstrdup(v.pool);
		as_strlcpy(t->claim, v.name, sizeof t->claim);
		t->rebuilt = 1;
		t->claim_exists = 1;
		if (v.nresources > 0) {
			t->res = xcalloc(v.nresources, sizeof *t->res);
			memcpy(t->res, v.resources,
			    v.nresources * sizeof *t->res);
			t->nres = v.nresources;
		}
		/*
		 * Before the first sync the quota waits for the whole list
		 * (dns_rebuild), whose order is the API server's.
		 */
		if (ns->synced)
			dtask_rebuild_admit(t);
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
