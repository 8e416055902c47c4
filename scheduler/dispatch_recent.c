/*
 * dispatch_recent.c: the ring of recent rejections and dead letters
 * (d->recent, RECENT entries, for explain), the ConfigMap that keeps its
 * newest KEPT entries across restarts and changes of leader, and what the
 * status page (/ui) shows of dispatch beyond dispatcher_status(): the
 * deferred tasks with their reasons and the newest dead letters.  The
 * page's lists are bounded per request (STATUS_DEFERRED per namespace,
 * STATUS_DEAD in all), so a namespace with thousands deferred costs it a
 * few dozen rows.
 *
 * The ConfigMap (data.rejections: a JSON array, oldest first) is written
 * by the dispatcher, so by the leader only: read once when the dispatcher
 * starts (a new leader, a restart), then a merge patch SAVE_DELAY after a
 * change (a POST when it does not exist yet).  Until the read answered
 * nothing is written, so a slow read never overwrites what the last
 * leader kept; a failed read or write is retried every RETRY seconds.
 * KEPT x about 700 bytes stays far below the 1 MiB of an object.  Losing a
 * second of rejections in a crash is the price of not writing per task.
 * A clean stop loses nothing: the store's stop sends the last change on
 * its own, after the write in flight, and tells the daemon when that
 * chain ended (dispatcher_free_save()), which waits for it, bounded,
 * before the Lease is released.  Leadership lost sends nothing: a
 * standby never writes.  A stop without save cancels the write in
 * flight, and dispatcher_save_abandon() ends a stop's chain the same way
 * (the Lease lost during the stop, or the stop's deadline passed before
 * the Lease is released): the write in flight is cancelled and the one
 * behind it freed unsent.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/rt/log.h"
#include "config.h"
#include "quota.h"

#include "dispatch_int.h"

#define KEPT		256	/* rejections kept in the ConfigMap */
#define SAVE_DELAY	1.0	/* s from a change to its write */
#define RETRY		5.0	/* s after a failed read or write */

/* The ConfigMap's keeper, while the dispatcher lives. */
struct drstore {
	struct dispatcher	*d;
	ev_timer		 timer;
	int			 loaded;	/* its read answered */
	int			 dirty;		/* changed since the last write */
	int			 warned;	/* a failure was logged */
	struct k8s_req		*load;
	struct drsave		*inflight;
	char			 ns[64];
	char			 name[254];
};

/* One write; outlives the store when detached (st NULL). */
struct drsave {
	struct drstore		*st;
	struct k8s_client	*k8s;
	char			 coll[400];	/* .../configmaps */
	char			 obj[700];	/* .../configmaps/NAME */
	char			*patch;		/* merge patch */
	char			*create;	/* the whole object */
	int			 posted;
	struct k8s_req		*req;		/* while sent */
	struct drsave		*then;		/* detached: sent after this */
	struct dispatcher_save	*chain;		/* detached: its stop's */
};

/* A stop's writes: the one in flight, then the last change, if any. */
struct dispatcher_save {
	struct drsave		*cur;		/* sent */
	dispatcher_saved_fn	*done;		/* told when it ends, or NULL */
	void			*done_arg;
};

static int	 drsave_send(struct drsave *);

void
dispatch_recent_put(struct dispatcher *d, const char *ns, const char *id,
    const char *reason, const char *detail, double wall)
{
	struct recent	*r;

	if (id == NULL || *id == '\0')
		return;
	if (d->recent == NULL)
		d->recent = xcalloc(RECENT, sizeof *d->recent);
	r = &d->recent[d->nrecent++ % RECENT];
	as_strlcpy(r->ns, ns, sizeof r->ns);
	as_strlcpy_utf8(r->id, id, sizeof r->id);
	as_strlcpy_utf8(r->reason, reason, sizeof r->reason);
	as_strlcpy_utf8(r->detail, detail != NULL ? detail : "",
	    sizeof r->detail);
	r->wall = wall;
}

void
dispatch_recent_add(struct dispatcher *d, const char *ns, const char *id,
    const char *reason, const char *detail)
{
	struct drstore	*st = d->rstore;

	if (id == NULL || *id == '\0')
		return;
	dispatch_recent_put(d, ns, id, reason, detail, as_wall_now());
	if (st == NULL)
		return;
	st->dirty = 1;
	if (st->loaded && st->inflight == NULL && !ev_is_active(&st->timer)) {
		ev_timer_set(&st->timer, SAVE_DELAY, 0);
		ev_timer_start(d->loop, &st->timer);
	}
}

/*
 * r as {"namespace", "task", "reason", "detail", "at"} into arr: at in
 * microseconds for the ConfigMap (read back), in seconds for people.
 */
static void
dispatch_recent_row(const struct recent *r, int micro, cJSON *arr)
{
	cJSON	*o = cJSON_CreateObject();
	char	 at[48];

	if (micro)
		as_rfc3339_micro(r->wall, at, sizeof at);
	else
		as_rfc3339(r->wall, 0, at, sizeof at);
	cJSON_AddStringToObject(o, "namespace", r->ns);
	cJSON_AddStringToObject(o, "task", r->id);
	cJSON_AddStringToObject(o, "reason", r->reason);
	cJSON_AddStringToObject(o, "detail", r->detail);
	cJSON_AddStringToObject(o, "at", at);
	cJSON_AddItemToArray(arr, o);
}

/* The newest KEPT entries, oldest first, as the ConfigMap's data. */
static char *
drstore_data(const struct dispatcher *d)
{
	cJSON	*arr;
	char	*s;
	size_t	 n, i;

	n = d->nrecent < KEPT ? d->nrecent : KEPT;
	arr = cJSON_CreateArray();
	for (i = 0; i < n; i++)
		dispatch_recent_row(&d->recent[(d->nrecent - n + i) % RECENT],
		    1, arr);
	s = as_json_print_free(arr, NULL);
	return (s);
}

/* A write of what d holds now; NULL when there is nothing to write. */
static struct drsave *
drsave_new(struct drstore *st)
{
	struct dispatcher *d = st->d;
	struct drsave	*sv;
	cJSON		*o, *md, *lab, *data;
	char		*rej;

	if (d->recent == NULL)
		return (NULL);
	sv = xcalloc(1, sizeof *sv);
	sv->st = st;
	sv->k8s = d->k8s;
	snprintf(sv->coll, sizeof sv->coll, "/api/v1/namespaces/%s/configmaps",
	    st->ns);
	snprintf(sv->obj, sizeof sv->obj, "%s/%s", sv->coll, st->name);
	rej = drstore_data(d);
	o = cJSON_CreateObject();
	data = cJSON_AddObjectToObject(o, "data");
	cJSON_AddStringToObject(data, "rejections", rej);
	sv->patch = as_json_print_free(o, NULL);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "apiVersion", "v1");
	cJSON_AddStringToObject(o, "kind", "ConfigMap");
	md = cJSON_AddObjectToObject(o, "metadata");
	cJSON_AddStringToObject(md, "name", st->name);
	cJSON_AddStringToObject(md, "namespace", st->ns);
	lab = cJSON_AddObjectToObject(md, "labels");
	cJSON_AddStringToObject(lab, "app.kubernetes.io/managed-by",
	    "agentscaler");
	data = cJSON_AddObjectToObject(o, "data");
	cJSON_AddStringToObject(data, "rejections", rej);
	sv->create = as_json_print_free(o, NULL);
	free(rej);
	return (sv);
}

/* Frees sv and what follows it; freeing a stop's last write ends it. */
static void
drsave_free(struct drsave *sv)
{
	struct dispatcher_save *sa;

	if (sv == NULL)
		return;
	sa = sv->then == NULL ? sv->chain : NULL;
	drsave_free(sv->then);
	free(sv->patch);
	free(sv->create);
	free(sv);
	if (sa == NULL)
		return;
	if (sa->done != NULL)
		sa->done(sa->done_arg);
	free(sa);
}

static void
drstore_failed(struct drstore *st, const char *what,
    const struct k8s_response *res)
{
	if (!st->warned)
		log_warn("dispatch", "rejections ConfigMap %s/%s: %s: %ld %s; "
		    "kept in memory, retried every %.0f s", st->ns, st->name,
		    what, res->code, res->message, RETRY);
	st->warned = 1;
	ev_timer_stop(st->d->loop, &st->timer);
	ev_timer_set(&st->timer, RETRY, 0);
	ev_timer_start(st->d->loop, &st->timer);
}

static void
drsave_done(const struct k8s_response *res, void *arg)
{
	struct drsave	*sv = arg, *then;
	struct drstore	*st = sv->st;

	sv->req = NULL;
	if (res->err == -AS_ECANCELED) {
		/* What follows it is freed unsent. */
		if (st != NULL)
			st->inflight = NULL;
		drsave_free(sv);
		return;
	}
	if (res->code == 404 && !sv->posted) {
		/* Not made yet: the first write makes it. */
		sv->posted = 1;
		drsave_send(sv);
		return;
	}
	if (st == NULL) {
		/* Detached: send what was noted after this one, if any. */
		if (res->err != 0)
			log_warn("dispatch", "rejections ConfigMap %s: the last "
			    "write before stopping failed: %ld %s; the newest "
			    "rejections are not kept", sv->obj, res->code,
			    res->message);
		if ((then = sv->then) != NULL) {
			/* The chain goes on with it. */
			sv->then = NULL;
			sv->chain = NULL;
			then->chain->cur = then;
		}
		drsave_free(sv);
		if (then != NULL)
			(void)drsave_send(then);
		return;
	}
	st->inflight = NULL;
	if (res->err != 0) {
		st->dirty = 1;
		drstore_failed(st, sv->posted ? "create" : "patch", res);
	} else {
		st->warned = 0;
		if (st->dirty && !ev_is_active(&st->timer)) {
			ev_timer_set(&st->timer, SAVE_DELAY, 0);
			ev_timer_start(st->d->loop, &st->timer);
		}
	}
	drsave_free(sv);
}

/* Sends sv; returns 0, or -1 when it could not be sent (sv is freed). */
static int
drsave_send(struct drsave *sv)
{
	struct k8s_req	*req;

	if (sv->posted)
		req = k8s_client_request(sv->k8s, "POST", sv->coll,
		    "application/json", sv->create, drsave_done, sv);
	else
		req = k8s_client_request(sv->k8s, "PATCH", sv->obj,
		    "application/merge-patch+json", sv->patch, drsave_done, sv);
	if (req == NULL) {
		if (sv->st != NULL)
			sv->st->inflight = NULL;
		drsave_free(sv);
		return (-1);
	}
	sv->req = req;
	return (0);
}

/*
 * The entries the ConfigMap holds go in before those noted since the
 * dispatcher started (they are older): the ring is rebuilt in that order.
 */
static void
drstore_merge(struct dispatcher *d, const cJSON *arr)
{
	struct recent	*now = NULL;
	const cJSON	*o;
	double		 wall;
	size_t		 n, i;

	n = d->nrecent < RECENT ? d->nrecent : RECENT;
	if (n > 0) {
		now = xcalloc(n, sizeof *now);
		for (i = 0; i < n; i++)
			now[i] = d->recent[(d->nrecent - n + i) % RECENT];
	}
	d->nrecent = 0;
	cJSON_ArrayForEach(o, arr) {
		const char *at = as_json_str(o, "at");

		if (!cJSON_IsObject(o) || at == NULL ||
		    as_parse_rfc3339(at, &wall) != 0)
			continue;
		dispatch_recent_put(d, as_json_str(o, "namespace") != NULL ?
		    as_json_str(o, "namespace") : "", as_json_str(o, "task"),
		    as_json_str(o, "reason") != NULL ?
		    as_json_str(o, "reason") : "", as_json_str(o, "detail"),
		    wall);
	}
	for (i = 0; i < n; i++)
		dispatch_recent_put(d, now[i].ns, now[i].id, now[i].reason,
		    now[i].detail, now[i].wall);
	free(now);
}

static void
drstore_load_done(const struct k8s_response *res, void *arg)
{
	struct drstore	*st = arg;
	cJSON		*o = NULL, *arr = NULL;
	const char	*rej;

	st->load = NULL;
	if (res->err == -AS_ECANCELED)
		return;
	if (res->code != 200 && res->code != 404) {
		drstore_failed(st, "read", res);
		return;
	}
	if (res->code == 200 && (o = cJSON_Parse(res->body)) != NULL &&
	    (rej = as_json_str(cJSON_GetObjectItem(o, "data"),
	    "rejections")) != NULL && (arr = cJSON_Parse(rej)) != NULL &&
	    cJSON_IsArray(arr)) {
		drstore_merge(st->d, arr);
		log_info("dispatch", "rejections ConfigMap %s/%s: %d "
		    "rejections read", st->ns, st->name,
		    cJSON_GetArraySize(arr));
	}
	cJSON_Delete(arr);
	cJSON_Delete(o);
	st->loaded = 1;
	st->warned = 0;
	if (st->dirty) {
		ev_timer_set(&st->timer, SAVE_DELAY, 0);
		ev_timer_start(st->d->loop, &st->timer);
	}
}

static void
drstore_load(struct drstore *st)
{
	char	 path[700];

	snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps/%s",
	    st->ns, st->name);
	st->load = k8s_client_request(st->d->k8s, "GET", path, NULL, NULL,
	    drstore_load_done, st);
}

static void
drstore_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct drstore	*st = w->data;

	(void)loop;
	(void)revents;
	if (!st->loaded) {
		if (st->load == NULL)
			drstore_load(st);
		return;
	}
	if (!st->dirty || st->inflight != NULL)
		return;
	if ((st->inflight = drsave_new(st)) == NULL)
		return;
	st->dirty = 0;
	(void)drsave_send(st->inflight);
}

void
dispatch_recent_store_start(struct dispatcher *d, const char *ns,
    const char *name)
{
	struct drstore	*st;

	if (d->k8s == NULL || d->rstore != NULL)
		return;
	st = xcalloc(1, sizeof *st);
	st->d = d;
	as_strlcpy(st->ns, ns, sizeof st->ns);
	as_strlcpy(st->name, name, sizeof st->name);
	ev_init(&st->timer, drstore_timer_cb);
	st->timer.data = st;
	d->rstore = st;
	drstore_load(st);
}

struct dispatcher_save *
dispatch_recent_store_stop(struct dispatcher *d, int save,
    dispatcher_saved_fn *done, void *arg)
{
	struct drstore	*st = d->rstore;
	struct drsave	*last = NULL, *head = NULL;
	struct dispatcher_save *sa;

	if (st == NULL)
		return (NULL);
	ev_timer_stop(d->loop, &st->timer);
	if (st->load != NULL)
		k8s_req_cancel(st->load);
	/* Without save nothing more goes out, the write in flight neither. */
	if (!save && st->inflight != NULL)
		k8s_req_cancel(st->inflight->req);	/* clears st->inflight */
	if (save && st->loaded && st->dirty)
		last = drsave_new(st);
	if (last != NULL)
		last->st = NULL;
	if (st->inflight != NULL) {
		/* Its answer finds no store; the last write follows it. */
		head = st->inflight;
		head->st = NULL;
		head->then = last;
	} else if (last != NULL && drsave_send(last) == 0)
		head = last;
	d->rstore = NULL;
	free(st);
	if (head == NULL)
		return (NULL);
	sa = xcalloc(1, sizeof *sa);
	sa->cur = head;
	sa->done = done;
	sa->done_arg = arg;
	head->chain = sa;
	if (head->then != NULL)
		head->then->chain = sa;
	return (done != NULL ? sa : NULL);
}

void
dispatcher_save_abandon(struct dispatcher_save *sa)
{
	/* Its completion frees it, what follows it, then sa (done runs). */
	if (sa != NULL)
		k8s_req_cancel(sa->cur->req);
}

#define STATUS_DEFERRED	25	/* deferred tasks listed per namespace */
#define STATUS_DEAD	25	/* newest dead letters listed */

/* One deferred task as a /status row; pos: its place in its queue. */
static void
dispatch_recent_deferred_row(const struct dns *ns, const struct dtask *t,
    size_t pos, cJSON *arr)
{
	cJSON	*o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "namespace", ns->name);
	cJSON_AddStringToObject(o, "task", t->id);
	cJSON_AddStringToObject(o, "pool", t->pool != NULL ?
	    t->pool->cfg->name : t->pool_name != NULL ? t->pool_name : "");
	cJSON_AddStringToObject(o, "root", t->root);
	cJSON_AddNumberToObject(o, "depth", t->depth);
	cJSON_AddStringToObject(o, "reason", quota_reason_name(t->why));
	cJSON_AddStringToObject(o, "detail",
	    t->why_detail != NULL ? t->why_detail : "");
	cJSON_AddNumberToObject(o, "queuePosition", (double)pos);
	cJSON_AddItemToArray(arr, o);
}

void
dispatcher_status_recent(const struct dispatcher *d, cJSON *root)
{
	const struct dns *ns;
	const struct dtask *t;
	cJSON	*arr;
	size_t	 i, n, pos;

	arr = cJSON_AddArrayToObject(root, "deferredTasks");
	LIST_FOREACH(ns, &d->nss, entry) {
		/* Descendants are admitted first: list them first. */
		n = pos = 0;
		TAILQ_FOREACH(t, &ns->defer_desc, dq) {
			if (n++ >= STATUS_DEFERRED)
				break;
			dispatch_recent_deferred_row(ns, t, pos++, arr);
		}
		pos = 0;
		TAILQ_FOREACH(t, &ns->defer_roots, dq) {
			if (n++ >= STATUS_DEFERRED)
				break;
			dispatch_recent_deferred_row(ns, t, pos++, arr);
		}
	}
	arr = cJSON_AddArrayToObject(root, "recentDeadLetters");
	for (i = 0; i < d->nrecent && i < RECENT && i < STATUS_DEAD; i++)
		dispatch_recent_row(&d->recent[(d->nrecent - 1 - i) % RECENT],
		    0, arr);
}
