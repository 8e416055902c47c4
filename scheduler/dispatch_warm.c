/*
 * dispatch_warm.c: the glue between a dispatch pool and its SandboxWarmPool:
 * the spare target warmpool.h computes, bounded by the namespace's
 * AgentQuota and given up to tasks that wait for a slot, read and written
 * through /scale; and the reads of the warm pool's SandboxTemplate, whose
 * requests are the charge floor (charge.h).
 *
 * Ownership: a pool has at most one /scale request (p->scale_req) and one
 * template read (p->tpl_req) in flight; dpool_free() cancels them, and
 * their completions do nothing on -AS_ECANCELED.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "charge.h"
#include "agentscaler/rt/common.h"
#include "config.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/log.h"
#include "quota.h"
#include "task.h"
#include "warmpool.h"

#include "dispatch_int.h"

#define TPL_REFRESH	30.0	/* s between reads of a pool's template */

/* The warm spares a pool holds or is about to (the larger of the two). */
static long
dpool_spares(const struct dpool *q)
{
	long	 patched = q->spare_patched > 0 ? q->spare_patched : 0;

	return (patched > q->ws.target ? patched : q->ws.target);
}

/* Kept up to date by dpool_respare(): no walk of the pools. */
long
dns_spares(const struct dns *ns)
{
	return (ns->spares);
}

void
dpool_respare(struct dpool *p)
{
	long	 n = dpool_spares(p);

	p->ns->spares += n - p->spares_counted;
	p->spares_counted = n;
}

/*
 * Deferred tasks of ns that wait for a sandbox slot (QUOTA_R_MAX_SANDBOXES),
 * counted up to max: the warm spares give up that many slots to them
 * (quota_spare_target).
 */
static long
dns_waiting_for_slots(const struct dns *ns, long max)
{
	const struct dtask *t;
	long		 n = 0;

	/* Up to 10000 deferred: stop as soon as max are found. */
	for (t = TAILQ_FIRST(&ns->defer_desc); t != NULL && n < max;
	    t = TAILQ_NEXT(t, dq))
		if (t->why == QUOTA_R_MAX_SANDBOXES)
			n++;
	for (t = TAILQ_FIRST(&ns->defer_roots); t != NULL && n < max;
	    t = TAILQ_NEXT(t, dq))
		if (t->why == QUOTA_R_MAX_SANDBOXES)
			n++;
	return (n);
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
		as_strlcpy_utf8(p->k8s_err, msg, sizeof p->k8s_err);
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
	dpool_respare(p);
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
		dpool_respare(p);
	}
	scale_done(err, sc, msg, arg);
}

/*
 * What the namespace runs besides its live tasks: scale-mode replicas and
 * the warm spares of its dispatch pools; all count against maxSandboxes.
 */
void
dns_replicas(struct dns *ns)
{
	/*
	 * The larger of the size written and the one about to be: a PATCH
	 * in flight must not leave room that admissions take meanwhile.
	 */
	quota_set_replicas(ns->quota, ns->scale_replicas + dns_spares(ns));
}

/* Claims of p made and not yet bound to a Sandbox (at most max counted). */
static long
dpool_unbound(const struct dpool *p, long max)
{
	const struct dtask *t;
	long		 n = 0;

	TAILQ_FOREACH(t, &p->tasks, plink) {
		p->d->visits++;
		if (t->claim_exists && t->sandbox[0] == '\0' &&
		    (t->st == T_CLAIMING || t->st == T_WAITING) && ++n >= max)
			break;
	}
	return (n);
}

void
dpool_size(struct dpool *p, double now)
{
	struct warmpool_load l;
	long	 target, head, cur, waiting = 0;

	/* What the predictive policy reads (warmpool.h). */
	l.waiting = p->waiting;
	l.running = p->live - p->deferred - p->waiting;
	if (l.running < 0)
		l.running = 0;
	l.spawners = p->spawners;
	head = quota_headroom(p->ns->quota);
	cur = p->spare_patched > 0 ? p->spare_patched : 0;
	l.headroom = head >= 0 ? head + cur : -1;
	/* Sets p->ws.target, which dns_replicas() counts: first. */
	target = warmpool_target_policy(&p->ws, &p->wp, now, &l);
	dpool_respare(p);
	/*
	 * Spares are sandboxes too: never past the namespace's quota, and
	 * tasks waiting for a slot come first (quota_spare_target).  The
	 * deferred queues are walked only when the namespace is full.
	 */
	dns_replicas(p->ns);
	cur = p->spare_patched > 0 ? p->spare_patched : 0;
	head = quota_headroom(p->ns->quota);
	if (head == 0 && cur > 0 && p->ns->ndeferred > 0)
		waiting = dns_waiting_for_slots(p->ns, cur);
	target = quota_spare_target(target, cur, head, waiting);
	/*
	 * Lowering spec.replicas makes the warm pool's controller delete
	 * surplus members without a precondition (upstream
	 * extensions/controllers/sandboxwarmpool_controller.go, scale-down:
	 * unready, then newest first), so a member a claim is adopting at that
	 * moment can be deleted under it.  Lower the pool only once every
	 * claim that may take a spare is bound.
	 */
	if (target < cur && dpool_unbound(p, 1) > 0)
		target = cur;
	p->ws.target = target;
	dpool_respare(p);
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
	as_strlcpy_utf8(p->tpl_err, msg, sizeof p->tpl_err);
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
void
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
