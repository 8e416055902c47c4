/*
 * events.c: the events.k8s.io/v1 Event recorder (events.h).
 *
 * One entry per key (controller, regarding, action, reason), as client-go's
 * eventBroadcasterImpl.eventCache (k8s.io/client-go/tools/events/
 * event_broadcaster.go, recordToSink, finishSeries, recordEvent): the first
 * occurrence POSTs the Event, a repeat counts into the entry and the
 * entry's series is merge-PATCHed ({"series": {count, lastObservedTime}}),
 * the first repeat at once and later ones at most every series_interval;
 * a PATCH answered 404 (the Event expired) creates it again, series
 * included.  Our own code, after that design.
 *
 * Entries sit in a chained hash table and on an LRU list (most recent
 * first); the list's tail is both what events_tick() ends first (a series
 * not seen for finish_after) and what a full cache forgets first.  An entry
 * with a write in flight that is forgotten is only unlinked (dead) and
 * freed by that write's completion.  At most one write per entry is in
 * flight; what arrives meanwhile is counted and written next.
 */
#include <sys/queue.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/hash.h"
#include "agentscaler/k8s/events.h"
#include "agentscaler/rt/log.h"

#define EVENTS_API	"/apis/events.k8s.io/v1/namespaces/"
#define EVENTS_NOTE_MAX	1024
#define EVENTS_NAME_MAX	253

struct ev_entry {
	struct as_hash_entry	 link;		/* as_hash_str(key) */
	struct events		*r;
	char			*key;
	char			 ns[64];
	char			 name[EVENTS_NAME_MAX + 1];
	cJSON			*event;		/* as first created */
	long			 count;		/* occurrences */
	long			 written;	/* count the server has */
	long			 sending;	/* count of the write in flight */
	double			 last;		/* wall: last occurrence */
	double			 last_write;	/* wall */
	void			*req;
	int			 created;
	int			 failed;	/* no more writes */
	int			 dead;		/* unlinked; free when req ends */
	TAILQ_ENTRY(ev_entry)	 lru;
};

TAILQ_HEAD(ev_lru, ev_entry);

struct events {
	struct k8s_sink		 sink;
	char			*controller;
	char			*instance;
	size_t			 cache_size;
	double			 series_interval;
	double			 finish_after;
	int			 (*may_write)(void *);
	void			*may_write_arg;
	double			 (*clock)(void);
	struct as_bucket	 bucket;
	struct as_hash		 tab;
	struct ev_lru		 lru;
	uint64_t		 last_nanos;	/* keeps Event names unique */
	int			 logged;	/* a failure was logged */
	struct events_stats	 st;
	struct ev_loop		*loop;
	ev_timer		 timer;
};

static struct ev_entry *events_find(const struct events *, const char *);
static void	 events_unlink(struct events *, struct ev_entry *);
static void	 events_drop(struct events *, struct ev_entry *);
static int	 events_may_write(const struct events *);
static void	 events_fail(struct events *, struct ev_entry *, const char *,
		    const char *);
static void	 events_create(struct events *, struct ev_entry *);
static void	 events_patch(struct events *, struct ev_entry *);
static void	 events_series(struct ev_entry *, cJSON *);
static int	 events_done_begin(struct ev_entry *,
		    const struct k8s_response *);
static void	 events_create_done(const struct k8s_response *, void *);
static void	 events_patch_done(const struct k8s_response *, void *);
static void	 events_timer_cb(struct ev_loop *, ev_timer *, int);

static struct ev_entry *
events_find(const struct events *r, const char *key)
{
	return (AS_HASH_ITEM(as_hash_find_str(&r->tab, key), struct ev_entry,
	    link));
}

/* Takes e out of the table and the LRU list; it is then dead. */
static void
events_unlink(struct events *r, struct ev_entry *e)
{
	if (e->dead)
		return;
	as_hash_remove(&r->tab, &e->link);
	TAILQ_REMOVE(&r->lru, e, lru);
	e->dead = 1;
}

/* Forgets e: freed now, or by the completion of its write. */
static void
events_drop(struct events *r, struct ev_entry *e)
{
	events_unlink(r, e);
	if (e->req != NULL)
		return;
	cJSON_Delete(e->event);
	free(e->key);
	free(e);
}

static int
events_may_write(const struct events *r)
{
	return (r->may_write == NULL || r->may_write(r->may_write_arg));
}

static void
events_fail(struct events *r, struct ev_entry *e, const char *what,
    const char *msg)
{
	r->st.failed++;
	if (!r->logged)
		log_warn("events", "cannot %s Event %s/%s (further failures "
		    "are not logged until a write succeeds): %s", what, e->ns,
		    e->name, msg);
	r->logged = 1;
}

/* {"series": {"count": N, "lastObservedTime": micro}} into o. */
static void
events_series(struct ev_entry *e, cJSON *o)
{
	cJSON	*s;
	char	 t[48];

	as_rfc3339_micro(e->last, t, sizeof t);
	cJSON_DeleteItemFromObjectCaseSensitive(o, "series");
	s = cJSON_AddObjectToObject(o, "series");
	cJSON_AddNumberToObject(s, "count", (double)e->count);
	cJSON_AddStringToObject(s, "lastObservedTime", t);
}

static void
events_create(struct events *r, struct ev_entry *e)
{
	char	 path[160];
	char	*body;

	if (e->count > 1)
		events_series(e, e->event);
	body = cJSON_PrintUnformatted(e->event);
	snprintf(path, sizeof path, EVENTS_API "%s/events", e->ns);
	e->sending = e->count;
	e->req = body != NULL ? r->sink.send(r->sink.arg, "POST", path,
	    "application/json", body, events_create_done, e) : NULL;
	cJSON_free(body);
	if (e->req == NULL) {
		events_fail(r, e, "create", "request refused");
		events_drop(r, e);
	}
}

static void
events_patch(struct events *r, struct ev_entry *e)
{
	cJSON	*o;
	char	 path[512];
	char	*body;

	o = cJSON_CreateObject();
	events_series(e, o);
	body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	snprintf(path, sizeof path, EVENTS_API "%s/events/%s", e->ns, e->name);
	e->sending = e->count;
	e->last_write = r->clock();
	e->req = body != NULL ? r->sink.send(r->sink.arg, "PATCH", path,
	    "application/merge-patch+json", body, events_patch_done, e) : NULL;
	cJSON_free(body);
	if (e->req == NULL) {
		events_fail(r, e, "update", "request refused");
		e->failed = 1;
	}
}

/*
 * The start of both completions: the write is over; returns 0 when the
 * entry is gone (freed here if it was forgotten meanwhile) or the write was
 * cancelled, so that there is nothing more to do.
 */
static int
events_done_begin(struct ev_entry *e, const struct k8s_response *resp)
{
	e->req = NULL;
	if (e->dead) {
		events_drop(e->r, e);
		return (0);
	}
	return (resp->err != -AS_ECANCELED);
}

static void
events_create_done(const struct k8s_response *resp, void *arg)
{
	struct ev_entry	*e = arg;
	struct events	*r = e->r;

	if (!events_done_begin(e, resp))
		return;
	if (resp->err != 0) {
		events_fail(r, e, "create", resp->message);
		events_drop(r, e);
		return;
	}
	r->st.created++;
	r->logged = 0;
	e->created = 1;
	e->written = e->sending;
	e->last_write = r->clock();
	/* A repeat while it was being created starts the series now. */
	if (e->written == 1 && e->count > 1 && events_may_write(r))
		events_patch(r, e);
}

static void
events_patch_done(const struct k8s_response *resp, void *arg)
{
	struct ev_entry	*e = arg;
	struct events	*r = e->r;

	if (!events_done_begin(e, resp))
		return;
	if (resp->err == -AS_ENOTFOUND) {
		/* Expired on the server: create it again, as upstream. */
		e->created = 0;
		if (events_may_write(r))
			events_create(r, e);
		return;
	}
	if (resp->err != 0) {
		events_fail(r, e, "update", resp->message);
		e->failed = 1;
		return;
	}
	r->st.patched++;
	r->logged = 0;
	e->written = e->sending;
}

struct events *
events_new(const struct k8s_sink *sink, const struct events_options *o)
{
	struct events	*r;

	r = xcalloc(1, sizeof *r);
	r->sink = *sink;
	r->controller = xstrdup(o->controller != NULL ? o->controller :
	    "agentscaler.io/agentscaler");
	r->instance = xstrndup(o->instance != NULL ? o->instance :
	    "agentscaler", 128);
	r->cache_size = o->cache_size > 0 ? o->cache_size : 4096;
	r->series_interval = o->series_interval > 0 ? o->series_interval : 10;
	r->finish_after = o->finish_after > 0 ? o->finish_after : 360;
	r->may_write = o->may_write;
	r->may_write_arg = o->may_write_arg;
	r->clock = o->clock != NULL ? o->clock : as_wall_now;
	as_bucket_init(&r->bucket, o->qps > 0 ? o->qps : 5,
	    o->burst >= 1 ? o->burst : 25, r->clock());
	as_hash_init_str(&r->tab, r->cache_size < 64 ? 64 : r->cache_size, 0,
	    AS_HASH_KEYOFF(struct ev_entry, link, key));
	TAILQ_INIT(&r->lru);
	if ((r->loop = o->loop) != NULL) {
		ev_timer_init(&r->timer, events_timer_cb, 1., 1.);
		r->timer.data = r;
		ev_timer_start(r->loop, &r->timer);
		ev_unref(r->loop);	/* housekeeping keeps no loop alive */
	}
	return (r);
}

void
events_free(struct events *r)
{
	struct ev_entry	*e;

	if (r == NULL)
		return;
	if (r->loop != NULL) {
		ev_ref(r->loop);
		ev_timer_stop(r->loop, &r->timer);
	}
	while ((e = TAILQ_FIRST(&r->lru)) != NULL) {
		events_unlink(r, e);
		if (e->req != NULL)
			r->sink.cancel(r->sink.arg, e->req);	/* frees e */
		else
			events_drop(r, e);
	}
	as_hash_fini(&r->tab);
	free(r->controller);
	free(r->instance);
	free(r);
}

void
events_hold(struct events *r)
{
	struct ev_entry	*e, *next;

	for (e = TAILQ_FIRST(&r->lru); e != NULL; e = next) {
		next = TAILQ_NEXT(e, lru);
		if (e->req == NULL)
			continue;
		events_unlink(r, e);			/* dead: ... */
		r->sink.cancel(r->sink.arg, e->req);	/* ... freed here */
	}
}

void
events_record(struct events *r, const struct event_ref *ref,
    enum event_type type, const char *reason, const char *action,
    const char *fmt, ...)
{
	struct ev_entry	*e;
	cJSON		*o, *reg, *md;
	va_list		 ap;
	char		*key, note[EVENTS_NOTE_MAX], t[48];
	double		 now;
	uint64_t	 nanos;

	if (r == NULL || ref->ns == NULL || ref->name == NULL ||
	    !events_may_write(r))
		return;
	r->st.recorded++;
	now = r->clock();
	key = xasprintf("%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s", r->controller,
	    ref->api_version != NULL ? ref->api_version : "", ref->kind,
	    ref->ns, ref->name, ref->uid != NULL ? ref->uid : "", action,
	    reason);
	if ((e = events_find(r, key)) != NULL &&
	    now - e->last > r->finish_after) {
		events_drop(r, e);	/* that series is over */
		e = NULL;
	}
	if (e != NULL) {
		free(key);
		e->count++;
		e->last = now;
		TAILQ_REMOVE(&r->lru, e, lru);
		TAILQ_INSERT_HEAD(&r->lru, e, lru);
		/* The first repeat makes it a series at once (upstream). */
		if (e->created && !e->failed && e->req == NULL &&
		    e->written == 1)
			events_patch(r, e);
		return;
	}
	if (!as_bucket_take(&r->bucket, now)) {
		free(key);
		r->st.dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(note, sizeof note, fmt, ap);
	va_end(ap);
	as_utf8_trim(note);	/* a cut note holds no half character */

	e = xcalloc(1, sizeof *e);
	e->r = r;
	e->key = key;
	e->count = 1;
	e->last = now;
	as_strlcpy(e->ns, ref->ns, sizeof e->ns);
	/* <regarding name>.<hex nanoseconds>, as client-go's recorder. */
	nanos = (uint64_t)(now * 1e9);
	if (nanos <= r->last_nanos)
		nanos = r->last_nanos + 1;
	r->last_nanos = nanos;
	snprintf(e->name, sizeof e->name, "%.*s.%llx", EVENTS_NAME_MAX - 17,
	    ref->name, (unsigned long long)nanos);
	as_rfc3339_micro(now, t, sizeof t);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "apiVersion", "events.k8s.io/v1");
	cJSON_AddStringToObject(o, "kind", "Event");
	md = cJSON_AddObjectToObject(o, "metadata");
	cJSON_AddStringToObject(md, "name", e->name);
	cJSON_AddStringToObject(md, "namespace", ref->ns);
	cJSON_AddStringToObject(o, "eventTime", t);
	cJSON_AddStringToObject(o, "reportingController", r->controller);
	cJSON_AddStringToObject(o, "reportingInstance", r->instance);
	cJSON_AddStringToObject(o, "action", action);
	cJSON_AddStringToObject(o, "reason", reason);
	cJSON_AddStringToObject(o, "note", note);
	cJSON_AddStringToObject(o, "type", type == EVENT_WARNING ? "Warning" :
	    "Normal");
	reg = cJSON_AddObjectToObject(o, "regarding");
	if (ref->api_version != NULL)
		cJSON_AddStringToObject(reg, "apiVersion", ref->api_version);
	cJSON_AddStringToObject(reg, "kind", ref->kind);
	cJSON_AddStringToObject(reg, "namespace", ref->ns);
	cJSON_AddStringToObject(reg, "name", ref->name);
	if (ref->uid != NULL && ref->uid[0] != '\0')
		cJSON_AddStringToObject(reg, "uid", ref->uid);
	e->event = o;
	as_hash_insert_str(&r->tab, &e->link);
	TAILQ_INSERT_HEAD(&r->lru, e, lru);
	while (as_hash_count(&r->tab) > r->cache_size)
		events_drop(r, TAILQ_LAST(&r->lru, ev_lru));
	events_create(r, e);
}

void
events_tick(struct events *r)
{
	struct ev_entry	*e, *prev;
	double		 now = r->clock();

	for (e = TAILQ_LAST(&r->lru, ev_lru); e != NULL; e = prev) {
		prev = TAILQ_PREV(e, ev_lru, lru);
		if (now - e->last > r->finish_after) {
			/* The series ended: write its last count, forget it. */
			if (e->created && !e->failed && e->req == NULL &&
			    e->count > e->written && events_may_write(r))
				events_patch(r, e);
			events_drop(r, e);
			continue;
		}
		if (e->created && !e->failed && e->req == NULL &&
		    e->count > e->written &&
		    now - e->last_write >= r->series_interval &&
		    events_may_write(r) && as_bucket_take(&r->bucket, now))
			events_patch(r, e);
	}
}

static void
events_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	events_tick(w->data);
}

void
events_get_stats(const struct events *r, struct events_stats *st)
{
	*st = r->st;
	st->cached = as_hash_count(&r->tab);
}
