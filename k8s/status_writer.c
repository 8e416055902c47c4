/*
 * status_writer.c: status subresource writes (status_writer.h).
 *
 * One entry per object path in a chained hash table: `base` is what the
 * server has as far as we know (the last status written, or the one the
 * object was seen with), `want` the status to write next (NULL: nothing to
 * do), `req` the write in flight and `sent` its body's status.  A want equal
 * to base (cJSON_Compare: key order does not matter) is dropped at once, so
 * a quiet object costs no request.  The patch sets every key of want and
 * nulls the keys of base that want lost (merge patch, RFC 7386: arrays such
 * as conditions are replaced whole).
 *
 * The entries with a want are also queued (`pending`), and the timer
 * walks that queue only: an object whose status does not change costs the
 * timer nothing, however many there are.
 *
 * A write refused for good (sw_permanent()) parks what was sent in
 * `rejected`: setting that same status again is dropped, as unchanged is,
 * and only a different one is sent.  Retrying it would be refused the same
 * way every few seconds for ever.
 */
#include <sys/queue.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/hash.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/k8s/status_writer.h"

#define SW_BUCKETS	256	/* at first; the table grows */

struct sw_entry {
	struct as_hash_entry	 link;		/* as_hash_str(path) */
	struct status_writer	*w;
	char			*path;
	cJSON			*base;
	cJSON			*want;
	cJSON			*sent;
	cJSON			*rejected;	/* refused for good */
	void			*req;
	double			 next_at;	/* mono: earliest next write */
	unsigned		 failures;
	int			 rejected_logged;	/* until a write works */
	int			 dead;		/* forgotten while in flight */
	int			 pending;	/* in w->pending */
	TAILQ_ENTRY(sw_entry)	 plink;
};

struct status_writer {
	struct k8s_sink		 sink;
	double			 min_interval;
	int			 (*may_write)(void *);
	void			*may_write_arg;
	double			 (*clock)(void);
	void			 (*rejected)(void *, const char *, long,
				    const char *);
	void			*rejected_arg;
	struct as_bucket	 bucket;
	struct as_hash		 tab;
	TAILQ_HEAD(, sw_entry)	 pending;	/* perhaps with a want */
	int			 logged;
	struct status_writer_stats st;
	struct ev_loop		*loop;
	ev_timer		 timer;
};

static struct sw_entry *sw_find(const struct status_writer *, const char *);
static struct sw_entry *sw_get(struct status_writer *, const char *);
static void	 sw_free_entry(struct sw_entry *);
static int	 sw_permanent(long);
static void	 sw_flush(struct status_writer *, struct sw_entry *, double);
static void	 sw_done(const struct k8s_response *, void *);
static void	 sw_timer_cb(struct ev_loop *, ev_timer *, int);

/* After e got a want: the timer looks at it. */
static void
sw_pend(struct sw_entry *e)
{
	if (e->pending)
		return;
	e->pending = 1;
	TAILQ_INSERT_TAIL(&e->w->pending, e, plink);
}

static void
sw_unpend(struct sw_entry *e)
{
	if (!e->pending)
		return;
	e->pending = 0;
	TAILQ_REMOVE(&e->w->pending, e, plink);
}

static struct sw_entry *
sw_find(const struct status_writer *w, const char *path)
{
	return (AS_HASH_ITEM(as_hash_find_str(&w->tab, path), struct sw_entry,
	    link));
}

static struct sw_entry *
sw_get(struct status_writer *w, const char *path)
{
	struct sw_entry	*e;

	if ((e = sw_find(w, path)) != NULL)
		return (e);
	e = xcalloc(1, sizeof *e);
	e->w = w;
	e->path = xstrdup(path);
	as_hash_insert_str(&w->tab, &e->link);
	return (e);
}

static void
sw_free_entry(struct sw_entry *e)
{
	cJSON_Delete(e->base);
	cJSON_Delete(e->want);
	cJSON_Delete(e->sent);
	cJSON_Delete(e->rejected);
	free(e->path);
	free(e);
}

/*
 * 1 when an answer with this HTTP code will be the same for the same body:
 * a 4xx but 401 (credentials being renewed), 408, 409 and 429.  404 is
 * handled before (the object went).
 */
static int
sw_permanent(long code)
{
	return (code >= 400 && code < 500 && code != 401 && code != 408 &&
	    code != 409 && code != 429);
}

/* Sends e's want if it may go now. */
static void
sw_flush(struct status_writer *w, struct sw_entry *e, double now)
{
	cJSON	*patch, *st, *it;
	char	*body, path[600];

	if (e->want == NULL || e->req != NULL || now < e->next_at ||
	    (w->may_write != NULL && !w->may_write(w->may_write_arg)))
		return;
	if (e->base != NULL && cJSON_Compare(e->base, e->want, 1)) {
		cJSON_Delete(e->want);
		e->want = NULL;
		w->st.unchanged++;
		return;
	}
	if (!as_bucket_take(&w->bucket, now))
		return;
	patch = cJSON_CreateObject();
	st = cJSON_Duplicate(e->want, 1);
	cJSON_ArrayForEach(it, e->base)
		if (it->string != NULL &&
		    cJSON_GetObjectItemCaseSensitive(st, it->string) == NULL)
			cJSON_AddNullToObject(st, it->string);
	cJSON_AddItemToObject(patch, "status", st);
	body = cJSON_PrintUnformatted(patch);
	cJSON_Delete(patch);
	snprintf(path, sizeof path, "%s/status", e->path);
	e->sent = e->want;
	e->want = NULL;
	e->next_at = now + w->min_interval;
	e->req = body != NULL ? w->sink.send(w->sink.arg, "PATCH", path,
	    "application/merge-patch+json", body, sw_done, e) : NULL;
	cJSON_free(body);
	if (e->req == NULL) {
		/* Refused (a bad path): keep it for the next try. */
		e->want = e->sent;
		e->sent = NULL;
		sw_pend(e);
		e->next_at = now + as_backoff(1, 60, e->failures++);
	}
}

static void
sw_done(const struct k8s_response *r, void *arg)
{
	struct sw_entry		*e = arg;
	struct status_writer	*w = e->w;
	double			 now;

	e->req = NULL;
	if (e->dead) {
		sw_free_entry(e);
		return;
	}
	if (r->err == -AS_ECANCELED) {
		/* status_writer_hold(): not written; send it again later. */
		if (e->want == NULL)
			e->want = e->sent;
		else
			cJSON_Delete(e->sent);
		e->sent = NULL;
		if (e->want != NULL)
			sw_pend(e);
		return;
	}
	now = w->clock();
	if (r->err == 0) {
		w->st.writes++;
		w->logged = 0;
		e->failures = 0;
		e->rejected_logged = 0;
		cJSON_Delete(e->rejected);
		e->rejected = NULL;
		cJSON_Delete(e->base);
		e->base = e->sent;
		e->sent = NULL;
		return;
	}
	if (sw_permanent(r->code) && r->code != 404) {
		/* The same status would be refused again: park it. */
		w->st.rejected++;
		if (!e->rejected_logged)
			log_warn("status", "%s/status refused (HTTP %ld), not "
			    "retried until the status changes (further "
			    "refusals are not logged until a write "
			    "succeeds): %s", e->path, r->code, r->message);
		e->rejected_logged = 1;
		cJSON_Delete(e->rejected);
		e->rejected = e->sent;
		e->sent = NULL;
		if (e->want != NULL && cJSON_Compare(e->want, e->rejected, 1)) {
			cJSON_Delete(e->want);
			e->want = NULL;
		}
		if (w->rejected != NULL)
			w->rejected(w->rejected_arg, e->path, r->code,
			    r->message);
		return;
	}
	w->st.failed++;
	if (r->err == -AS_ENOTFOUND) {
		/* The object went; its informer says so soon. */
		cJSON_Delete(e->sent);
		e->sent = NULL;
		return;
	}
	if (!w->logged)
		log_warn("status", "cannot write %s/status, will retry (further "
		    "failures are not logged until a write succeeds): %s",
		    e->path, r->message);
	w->logged = 1;
	if (e->want == NULL)
		e->want = e->sent;	/* nothing newer: try it again */
	else
		cJSON_Delete(e->sent);
	e->sent = NULL;
	if (e->want != NULL)
		sw_pend(e);
	e->next_at = now + as_backoff(1, 60, e->failures++);
}

struct status_writer *
status_writer_new(const struct k8s_sink *sink,
    const struct status_writer_options *o)
{
	struct status_writer *w;

	w = xcalloc(1, sizeof *w);
	w->sink = *sink;
	w->min_interval = o->min_interval > 0 ? o->min_interval : 2;
	w->may_write = o->may_write;
	w->may_write_arg = o->may_write_arg;
	w->clock = o->clock != NULL ? o->clock : as_mono_now;
	w->rejected = o->rejected;
	w->rejected_arg = o->rejected_arg;
	as_bucket_init(&w->bucket, o->qps > 0 ? o->qps : 10,
	    o->burst >= 1 ? o->burst : 20, w->clock());
	as_hash_init_str(&w->tab, SW_BUCKETS, 0,
	    AS_HASH_KEYOFF(struct sw_entry, link, path));
	TAILQ_INIT(&w->pending);
	if ((w->loop = o->loop) != NULL) {
		ev_timer_init(&w->timer, sw_timer_cb, 0.25, 0.25);
		w->timer.data = w;
		ev_timer_start(w->loop, &w->timer);
		ev_unref(w->loop);
	}
	return (w);
}

void
status_writer_free(struct status_writer *w)
{
	struct as_hash_entry *l, *next;
	struct sw_entry	*e;

	if (w == NULL)
		return;
	if (w->loop != NULL) {
		ev_ref(w->loop);
		ev_timer_stop(w->loop, &w->timer);
	}
	for (l = as_hash_first(&w->tab); l != NULL; l = next) {
		next = as_hash_next(&w->tab, l);
		as_hash_remove(&w->tab, l);
		e = AS_HASH_ITEM(l, struct sw_entry, link);
		if (e->req != NULL) {
			e->dead = 1;
			w->sink.cancel(w->sink.arg, e->req);
		} else
			sw_free_entry(e);
	}
	as_hash_fini(&w->tab);
	free(w);
}

void
status_writer_set(struct status_writer *w, const char *path, cJSON *status)
{
	struct sw_entry	*e = sw_get(w, path);
	const cJSON	*last;

	/*
	 * Equal to what is on its way or there already, or to what was
	 * refused for good: nothing to do.
	 */
	last = e->sent != NULL ? e->sent : e->base;
	if ((last != NULL && cJSON_Compare(last, status, 1)) ||
	    (e->rejected != NULL && cJSON_Compare(e->rejected, status, 1))) {
		cJSON_Delete(status);
		if (e->want != NULL) {
			cJSON_Delete(e->want);
			e->want = NULL;
		}
		w->st.unchanged++;
		return;
	}
	cJSON_Delete(e->want);
	e->want = status;
	sw_pend(e);
	sw_flush(w, e, w->clock());
}

void
status_writer_seen(struct status_writer *w, const char *path,
    const cJSON *status)
{
	struct sw_entry	*e = sw_get(w, path);

	if (e->base != NULL || e->sent != NULL)
		return;		/* we wrote since: ours is newer */
	e->base = status != NULL ? cJSON_Duplicate(status, 1) : NULL;
}

void
status_writer_forget(struct status_writer *w, const char *path)
{
	struct sw_entry	*e;

	if ((e = sw_find(w, path)) == NULL)
		return;
	as_hash_remove(&w->tab, &e->link);
	sw_unpend(e);
	if (e->req != NULL) {
		e->dead = 1;
		w->sink.cancel(w->sink.arg, e->req);
	} else
		sw_free_entry(e);
}

const cJSON *
status_writer_current(const struct status_writer *w, const char *path)
{
	const struct sw_entry *e = sw_find(w, path);

	if (e == NULL)
		return (NULL);
	return (e->want != NULL ? e->want : e->sent != NULL ? e->sent :
	    e->base);
}

void
status_writer_hold(struct status_writer *w)
{
	struct as_hash_entry *l;
	struct sw_entry	*e;

	for (l = as_hash_first(&w->tab); l != NULL;
	    l = as_hash_next(&w->tab, l)) {
		e = AS_HASH_ITEM(l, struct sw_entry, link);
		if (e->req != NULL)
			w->sink.cancel(w->sink.arg, e->req);
	}
}

void
status_writer_tick(struct status_writer *w)
{
	struct sw_entry	*e, *next;
	double		 now = w->clock();

	for (e = TAILQ_FIRST(&w->pending); e != NULL; e = next) {
		next = TAILQ_NEXT(e, plink);
		w->st.visits++;
		if (e->want != NULL)
			sw_flush(w, e, now);
		if (e->want == NULL)
			sw_unpend(e);
	}
}

static void
sw_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	status_writer_tick(t->data);
}

void
status_writer_get_stats(const struct status_writer *w,
    struct status_writer_stats *st)
{
	*st = w->st;
}
