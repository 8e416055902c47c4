/*
 * informer.c: list + watch of one Kubernetes collection with a local cache,
 * client-go's reflector and store (k8s.io/client-go/tools/cache/
 * reflector.go, store.go) made asynchronous for one libev loop.
 *
 * Design.  At most one request is in flight, and the informer is in one of
 * three states:
 *
 *	LISTING		a page of the LIST is in flight; the pages gather in
 *			i->fresh (the cache is left alone until the last page)
 *	WATCHING	the watch stream is open (k8s_client_watch)
 *	WAITING		i->timer runs: a backoff, or a zero-delay hop to the
 *			next LIST or WATCH (i->next)
 *
 * The LIST is a consistent read (no resourceVersion) paged by limit and
 * continue; an expired continue token (410) restarts it.  At its end the
 * new set replaces the cache and the difference is reported: objects gone
 * as DELETED with their last state, a changed resourceVersion as MODIFIED,
 * new ones as ADDED, then SYNCED.  The watch starts from the list's
 * resourceVersion with bookmarks; every event moves the resourceVersion.
 * A watch the server ends cleanly, or one that breaks or falls idle after
 * it started, is reopened at once from the last resourceVersion: nothing
 * was missed, so no re-list (client-go treats an unexpected EOF the same
 * way, k8s.io/apimachinery/pkg/watch/streamwatcher.go).  410 Gone, as a
 * status or as an ERROR event, re-lists at once; an event we cannot decode
 * (or one longer than INF_LINE_MAX) re-lists after a backoff, since the
 * cache may have missed it; every other failure retries the same step
 * after a jittered backoff (as_backoff, base..cap), reset by any success.
 * A watch that ends within INF_SHORT_WATCH seconds without a single event
 * counts as a failure, so a server that closes every watch at once is not
 * hammered (client-go's "very short watch" check).
 *
 * The watch's idle limit is min(INF_IDLE_MAX, timeoutSeconds + slack):
 * servers send a bookmark about once a minute, so a healthy stream is never
 * idle that long, and a quiet one on a server without bookmarks is simply
 * reopened.  A dead TCP connection thus costs at most INF_IDLE_MAX.
 *
 * An optional transform (informer_options.transform, client-go's
 * SetTransform) trims every object, listed or watched, before the cache
 * takes it and before it is reported: a cache of thousands of workloads
 * then holds what its user reads, not whole objects.
 *
 * Lifetimes.  The cache owns its cJSON objects.  An object replaced or
 * deleted goes to i->trash, freed when control returns to the loop (the
 * outermost of our entry points: the two completions, the line callback and
 * the timer; i->depth counts them), so what a callback was given stays
 * valid until then.  informer_free() inside a callback marks the informer
 * dead and cancels its request; the outermost entry point frees it.  A
 * request we cancel ourselves is forgotten first (i->req = NULL), so its
 * completion, which runs inside the cancel, recognises it and does nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/hash.h"
#include "agentscaler/k8s/informer.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/log.h"

#define INF_PAGE_SIZE		500
#define INF_WATCH_TIMEOUT	300
#define INF_BACKOFF_BASE	0.2
#define INF_BACKOFF_CAP		10.0
#define INF_LINE_MAX		(16 * 1024 * 1024)	/* one watch event */
#define INF_IDLE_MAX		150.0	/* > two bookmark periods */
#define INF_IDLE_SLACK		30.0
#define INF_SHORT_WATCH		1.0
#define INF_KEY_MAX		512	/* namespace (63) + name (253) */
#define INF_TABLE_MIN		64

enum inf_state {
	INF_LISTING,
	INF_WATCHING,
	INF_WAITING
};

enum inf_step {
	INF_STEP_LIST,
	INF_STEP_WATCH
};

/* One cached object under "namespace/name" ("/name": cluster scope). */
/*
 * A cached object: its tree, or with informer_options.compact its printed
 * text and resourceVersion (obj NULL), parsed again when read (ent_obj).
 */
struct inf_entry {
	struct as_hash_entry	 link;		/* as_hash_str(key) */
	char			*key;
	cJSON			*obj;
	char			*text;
	char			*rv;
};

struct informer {
	struct k8s_client	*kc;
	struct ev_loop		*loop;
	char			*path;
	char			*label_selector;
	char			*field_selector;
	char			*log_name;
	long			 page_size;
	long			 watch_timeout;
	double			 backoff_base;
	double			 backoff_cap;
	double			 idle_timeout;
	informer_fn		*fn;
	void			*arg;
	informer_transform_fn	*transform;
	void			*transform_arg;
	int			 compact;
	ev_prepare		 lent;		/* frees trash lent by reads */

	enum inf_state		 state;
	enum inf_step		 next;		/* WAITING: what comes next */
	struct k8s_req		*req;		/* LISTING, WATCHING */
	struct ev_timer		 timer;		/* WAITING */
	unsigned		 failures;	/* in a row: the backoff */

	struct as_hash		 cache;
	char			*rv;		/* last resourceVersion seen */
	int			 synced;

	/* The LIST in progress. */
	struct as_hash		 fresh;
	struct inf_entry	**order;	/* fresh's entries, list order */
	size_t			 norder;
	size_t			 order_cap;
	char			*cont;		/* continue token */
	char			*list_rv;
	unsigned		 pages;

	/* The watch in progress. */
	double			 watch_started;	/* mono */
	uint64_t		 watch_lines;

	cJSON			**trash;	/* freed on return to the loop */
	size_t			 ntrash;
	size_t			 trash_cap;

	unsigned		 depth;		/* our callbacks running */
	int			 dead;		/* informer_free() was called */
	struct informer_stats	 st;
};

static void	 tab_init(struct as_hash *);
static struct inf_entry *tab_find(const struct as_hash *, const char *);
static struct inf_entry *tab_insert(struct informer *, struct as_hash *,
		    const char *, cJSON *);
static cJSON	*tab_remove(struct as_hash *, const char *);
static void	 ent_put(struct informer *, struct inf_entry *, cJSON *);
static const cJSON *ent_obj(const struct informer *, struct inf_entry *);
static const char *ent_rv(const struct inf_entry *);
static void	 inf_lent_cb(struct ev_loop *, ev_prepare *, int);
static void	 tab_clear(struct as_hash *, struct informer *);
static int	 obj_key(const cJSON *, char *, size_t);
static const char *obj_rv(const cJSON *);
static int	 obj_is_string(const cJSON *, const char *);
static void	 url_put(struct as_buf *, const char *, const char *);
static void	 url_put_selectors(struct as_buf *, const struct informer *);
static void	 inf_trash(struct informer *, cJSON *);
static void	 inf_leave(struct informer *);
static void	 inf_destroy(struct informer *);
static void	 inf_report(struct informer *, enum informer_event,
		    const cJSON *);
static void	 inf_set_rv(struct informer *, const char *);
static void	 inf_stop_req(struct informer *);
static void	 inf_schedule(struct informer *, enum inf_step, double);
static void	 inf_fail(struct informer *, const char *, const char *,
		    enum inf_step);
static void	 inf_recovered(struct informer *);
static void	 inf_timer_cb(struct ev_loop *, struct ev_timer *, int);
static void	 inf_list_reset(struct informer *);
static void	 inf_list_start(struct informer *);
static int	 inf_list_page(struct informer *);
static void	 inf_list_next(struct informer *);
static int	 inf_response(struct informer *, const struct k8s_response *);
static int	 inf_list_parse(struct informer *, const char *, size_t,
		    char *, size_t);
static void	 inf_list_finish(struct informer *);
static void	 inf_list_done(const struct k8s_response *, void *);
static void	 inf_watch_start(struct informer *);
static void	 inf_watch_line(const char *, size_t, void *);
static void	 inf_watch_event(struct informer *, const char *, cJSON *);
static void	 inf_watch_done(const struct k8s_response *, void *);

/* ---- the table ---- */

static void
tab_init(struct as_hash *t)
{
	as_hash_init_str(t, INF_TABLE_MIN, 0,
	    AS_HASH_KEYOFF(struct inf_entry, link, key));
}

static struct inf_entry *
tab_find(const struct as_hash *t, const char *key)
{
	return (AS_HASH_ITEM(as_hash_find_str(t, key), struct inf_entry,
	    link));
}

/* key must not be in t yet.  Entries keep their address when t grows. */
static struct inf_entry *
tab_insert(struct informer *i, struct as_hash *t, const char *key,
    cJSON *obj)
{
	struct inf_entry *e;

	e = xcalloc(1, sizeof *e);
	e->key = xstrdup(key);
	ent_put(i, e, obj);
	as_hash_insert_str(t, &e->link);
	return (e);
}

/*
 * obj (taken over) becomes e's content.  Compact: printed, and the tree
 * goes to the trash, so that what is reported this turn stays valid.  An
 * old tree of e is the caller's to dispose of.
 */
static void
ent_put(struct informer *i, struct inf_entry *e, cJSON *obj)
{
	if (!i->compact) {
		e->obj = obj;
		return;
	}
	free(e->text);
	free(e->rv);
	e->obj = NULL;
	e->text = cJSON_PrintUnformatted(obj);
	e->rv = xstrdup(obj_rv(obj));
	inf_trash(i, obj);
}

/*
 * e's object: compact, parsed again and lent until the next return to the
 * loop (the trash; inf_lent_cb empties it when no callback of ours runs).
 */
static const cJSON *
ent_obj(const struct informer *ci, struct inf_entry *e)
{
	/* Reads lend objects: the trash is the informer's, not the cache. */
	struct informer	*i = (struct informer *)(uintptr_t)ci;
	cJSON		*obj;

	if (e->obj != NULL || e->text == NULL)
		return (e->obj);
	if ((obj = cJSON_Parse(e->text)) == NULL)
		return (NULL);	/* cannot be: we printed it */
	inf_trash(i, obj);
	if (i->depth == 0 && !ev_is_active(&i->lent))
		ev_prepare_start(i->loop, &i->lent);
	return (obj);
}

static const char *
ent_rv(const struct inf_entry *e)
{
	return (e->obj != NULL ? obj_rv(e->obj) : e->rv != NULL ? e->rv : "");
}

/* Back to the loop after a read outside our callbacks: the lent go. */
static void
inf_lent_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct informer	*i = w->data;
	size_t		 k;

	(void)revents;
	ev_prepare_stop(loop, w);
	if (i->depth > 0)
		return;		/* inf_leave() will */
	for (k = 0; k < i->ntrash; k++)
		cJSON_Delete(i->trash[k]);
	i->ntrash = 0;
}

/* Takes the entry out and returns its object (the caller's now), or NULL. */
static cJSON *
tab_remove(struct as_hash *t, const char *key)
{
	struct inf_entry *e;
	cJSON		*obj;

	if ((e = tab_find(t, key)) == NULL)
		return (NULL);
	as_hash_remove(t, &e->link);
	obj = e->obj;
	free(e->text);
	free(e->rv);
	free(e->key);
	free(e);
	return (obj);
}

/*
 * Empties t, keeping its buckets; the objects go to i's trash (they may
 * have been reported this turn) or, with i NULL, are freed.
 */
static void
tab_clear(struct as_hash *t, struct informer *i)
{
	struct as_hash_entry *l, *next;
	struct inf_entry *e;

	for (l = as_hash_first(t); l != NULL; l = next) {
		next = as_hash_next(t, l);
		e = AS_HASH_ITEM(l, struct inf_entry, link);
		if (i != NULL)
			inf_trash(i, e->obj);
		else
			cJSON_Delete(e->obj);
		free(e->text);
		free(e->rv);
		free(e->key);
		free(e);
	}
	as_hash_clear(t);
}

/* ---- objects ---- */

static int
obj_is_string(const cJSON *o, const char *name)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, name);

	return (cJSON_IsString(v) && v->valuestring[0] != '\0');
}

/* "namespace/name" of an object; -AS_EINVAL without a name. */
static int
obj_key(const cJSON *obj, char *key, size_t len)
{
	const cJSON	*md, *name, *ns;
	int		 n;

	md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	name = cJSON_GetObjectItemCaseSensitive(md, "name");
	ns = cJSON_GetObjectItemCaseSensitive(md, "namespace");
	if (!cJSON_IsString(name) || name->valuestring[0] == '\0')
		return (-AS_EINVAL);
	n = snprintf(key, len, "%s/%s", cJSON_IsString(ns) ?
	    ns->valuestring : "", name->valuestring);
	if (n < 0 || (size_t)n >= len)
		return (-AS_EINVAL);
	return (0);
}

/* metadata.resourceVersion, or "" (borrowed). */
static const char *
obj_rv(const cJSON *obj)
{
	const cJSON	*md, *rv;

	md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	rv = cJSON_GetObjectItemCaseSensitive(md, "resourceVersion");
	return (cJSON_IsString(rv) ? rv->valuestring : "");
}

/* Appends "&name=value" (or "?name=value" first), value percent-encoded. */
static void
url_put(struct as_buf *b, const char *name, const char *value)
{
	const unsigned char *p;

	as_buf_printf(b, "%c%s=", strchr(b->p, '?') != NULL ? '&' : '?',
	    name);
	/* RFC 3986 unreserved characters stay; everything else is escaped. */
	for (p = (const unsigned char *)value; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_' || *p == '~')
			as_buf_printf(b, "%c", *p);
		else
			as_buf_printf(b, "%%%02X", *p);
	}
}

/* Appends the informer's label and field selectors, those it has. */
static void
url_put_selectors(struct as_buf *b, const struct informer *i)
{
	if (i->label_selector != NULL)
		url_put(b, "labelSelector", i->label_selector);
	if (i->field_selector != NULL)
		url_put(b, "fieldSelector", i->field_selector);
}

/* ---- life ---- */

struct informer *
informer_new(struct k8s_client *kc, const struct informer_options *o,
    informer_fn *fn, void *arg, char *err, size_t errlen)
{
	struct informer	*i;
	const char	*p;

	if (kc == NULL || o == NULL || fn == NULL) {
		snprintf(err, errlen, "informer: no client, options or "
		    "callback");
		return (NULL);
	}
	if (o->path == NULL || o->path[0] != '/') {
		snprintf(err, errlen, "informer: the collection path must "
		    "start with \"/\"");
		return (NULL);
	}
	for (p = o->path; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' ||
		    *p == '#') {
			snprintf(err, errlen, "informer: the collection path "
			    "%s holds a query, a space or a control "
			    "character; give selectors as options", o->path);
			return (NULL);
		}
	}
	if (o->page_size < 0 || o->watch_timeout < 0 ||
	    o->backoff_base < 0 || o->backoff_cap < 0) {
		snprintf(err, errlen, "informer %s: page_size, watch_timeout "
		    "and the backoff must not be negative", o->path);
		return (NULL);
	}

	i = xcalloc(1, sizeof *i);
	i->kc = kc;
	i->loop = k8s_client_loop(kc);
	i->path = xstrdup(o->path);
	if (o->label_selector != NULL && o->label_selector[0] != '\0')
		i->label_selector = xstrdup(o->label_selector);
	if (o->field_selector != NULL && o->field_selector[0] != '\0')
		i->field_selector = xstrdup(o->field_selector);
	i->log_name = xstrdup(o->log_name != NULL ? o->log_name : o->path);
	i->page_size = o->page_size > 0 ? o->page_size : INF_PAGE_SIZE;
	i->watch_timeout = o->watch_timeout > 0 ? o->watch_timeout :
	    INF_WATCH_TIMEOUT;
	i->backoff_base = o->backoff_base > 0 ? o->backoff_base :
	    INF_BACKOFF_BASE;
	i->backoff_cap = o->backoff_cap > 0 ? o->backoff_cap :
	    INF_BACKOFF_CAP;
	if (i->backoff_cap < i->backoff_base)
		i->backoff_cap = i->backoff_base;
	i->idle_timeout = (double)i->watch_timeout + INF_IDLE_SLACK;
	if (i->idle_timeout > INF_IDLE_MAX)
		i->idle_timeout = INF_IDLE_MAX;
	i->fn = fn;
	i->arg = arg;
	i->transform = o->transform;
	i->transform_arg = o->transform_arg;
	i->compact = o->compact;
	ev_prepare_init(&i->lent, inf_lent_cb);
	i->lent.data = i;
	ev_timer_init(&i->timer, inf_timer_cb, 0., 0.);
	i->timer.data = i;
	tab_init(&i->cache);
	tab_init(&i->fresh);

	/* No completion can run before this returns. */
	if (inf_list_page(i) != 0) {
		snprintf(err, errlen, "informer %s: the Kubernetes client "
		    "refused the LIST (is it closing?)", i->log_name);
		inf_destroy(i);
		return (NULL);
	}
	return (i);
}

void
informer_free(struct informer *i)
{
	if (i == NULL || i->dead)
		return;
	i->dead = 1;
	/* The cancel below runs our completion: keep i alive through it. */
	i->depth++;
	ev_timer_stop(i->loop, &i->timer);
	inf_stop_req(i);
	inf_leave(i);
}

/* The end of each of our entry points. */
static void
inf_leave(struct informer *i)
{
	size_t	 k;

	if (--i->depth > 0)
		return;
	/* Back to the loop: what callbacks were lent may go now. */
	for (k = 0; k < i->ntrash; k++)
		cJSON_Delete(i->trash[k]);
	i->ntrash = 0;
	if (i->dead)
		inf_destroy(i);
}

static void
inf_destroy(struct informer *i)
{
	size_t	 k;

	ev_prepare_stop(i->loop, &i->lent);
	for (k = 0; k < i->ntrash; k++)
		cJSON_Delete(i->trash[k]);
	free(i->trash);
	tab_clear(&i->cache, NULL);
	as_hash_fini(&i->cache);
	tab_clear(&i->fresh, NULL);
	as_hash_fini(&i->fresh);
	free(i->order);
	free(i->cont);
	free(i->list_rv);
	free(i->rv);
	free(i->path);
	free(i->label_selector);
	free(i->field_selector);
	free(i->log_name);
	free(i);
}

static void
inf_trash(struct informer *i, cJSON *obj)
{
	if (obj == NULL)
		return;
	if (i->ntrash == i->trash_cap) {
		i->trash_cap = i->trash_cap > 0 ? i->trash_cap * 2 : 16;
		i->trash = xrealloc(i->trash, i->trash_cap * sizeof *i->trash);
	}
	i->trash[i->ntrash++] = obj;
}

/* ---- accessors ---- */

int
informer_synced(const struct informer *i)
{
	return (i != NULL && i->synced);
}

const cJSON *
informer_get(const struct informer *i, const char *ns, const char *name)
{
	struct inf_entry *e;
	char		 key[INF_KEY_MAX];
	int		 n;

	if (i == NULL || name == NULL)
		return (NULL);
	n = snprintf(key, sizeof key, "%s/%s", ns != NULL ? ns : "", name);
	if (n < 0 || (size_t)n >= sizeof key)
		return (NULL);
	e = tab_find(&i->cache, key);
	return (e != NULL ? ent_obj(i, e) : NULL);
}

void
informer_foreach(const struct informer *i,
    void (*fn)(const cJSON *, void *), void *arg)
{
	struct as_hash_entry *l;

	if (i == NULL)
		return;
	for (l = as_hash_first(&i->cache); l != NULL;
	    l = as_hash_next(&i->cache, l))
		fn(ent_obj(i, AS_HASH_ITEM(l, struct inf_entry, link)), arg);
}

size_t
informer_size(const struct informer *i)
{
	return (i != NULL ? as_hash_count(&i->cache) : 0);
}

const char *
informer_resource_version(const struct informer *i)
{
	return (i != NULL && i->rv != NULL ? i->rv : "");
}

void
informer_get_stats(const struct informer *i, struct informer_stats *st)
{
	if (i == NULL)
		memset(st, 0, sizeof *st);
	else {
		*st = i->st;
		st->failing = i->failures;
	}
}

/* ---- steps ---- */

static void
inf_report(struct informer *i, enum informer_event ev, const cJSON *obj)
{
	if (i->dead)
		return;
	if (ev != INFORMER_SYNCED)
		i->st.events++;
	i->fn(i, ev, obj, i->arg);
}

static void
inf_set_rv(struct informer *i, const char *rv)
{
	if (rv == NULL || rv[0] == '\0' ||
	    (i->rv != NULL && strcmp(i->rv, rv) == 0))
		return;
	free(i->rv);
	i->rv = xstrdup(rv);
}

/* Forgets the request in flight, then cancels it (see Lifetimes). */
static void
inf_stop_req(struct informer *i)
{
	struct k8s_req	*r = i->req;

	i->req = NULL;
	k8s_req_cancel(r);
}

static void
inf_schedule(struct informer *i, enum inf_step next, double delay)
{
	i->state = INF_WAITING;
	i->next = next;
	ev_timer_stop(i->loop, &i->timer);
	ev_timer_set(&i->timer, delay, 0.);
	ev_timer_start(i->loop, &i->timer);
}

/*
 * A failed LIST or WATCH: counted, logged (a warning for the first of a
 * run, then quieter), and the step is tried again after a backoff.
 */
static void
inf_fail(struct informer *i, const char *what, const char *msg,
    enum inf_step next)
{
	double	 delay;

	i->st.errors++;
	delay = as_backoff(i->backoff_base, i->backoff_cap, i->failures);
	i->failures++;
	log_msg(i->failures == 1 ? LOG_WARN : LOG_DEBUG, "informer",
	    "%s: %s failed: %s; %s in %.2fs (failure %u in a row)",
	    i->log_name, what, msg, next == INF_STEP_LIST ? "listing again" :
	    "watching again", delay, i->failures);
	inf_schedule(i, next, delay);
}

static void
inf_recovered(struct informer *i)
{
	if (i->failures > 0)
		log_info("informer", "%s: recovered after %u failures",
		    i->log_name, i->failures);
	i->failures = 0;
}

static void
inf_timer_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	struct informer	*i = w->data;

	(void)loop;
	(void)revents;
	i->depth++;
	if (!i->dead) {
		if (i->next == INF_STEP_LIST)
			inf_list_start(i);
		else
			inf_watch_start(i);
	}
	inf_leave(i);
}

/* ---- LIST ---- */

static void
inf_list_reset(struct informer *i)
{
	tab_clear(&i->fresh, NULL);
	i->norder = 0;
	free(i->cont);
	i->cont = NULL;
	free(i->list_rv);
	i->list_rv = NULL;
	i->pages = 0;
}

static void
inf_list_start(struct informer *i)
{
	inf_list_reset(i);
	inf_list_next(i);
}

/*
 * GET one page: no resourceVersion (a consistent read), limit, continue.
 * Returns 0, or -AS_EINVAL when the client refuses the request.
 */
static int
inf_list_page(struct informer *i)
{
	struct as_buf	 b = { NULL, 0, 0 };
	char		 num[32];

	i->state = INF_LISTING;
	as_buf_printf(&b, "%s", i->path);
	snprintf(num, sizeof num, "%ld", i->page_size);
	url_put(&b, "limit", num);
	if (i->cont != NULL)
		url_put(&b, "continue", i->cont);
	url_put_selectors(&b, i);
	i->req = k8s_client_request(i->kc, "GET", b.p, NULL, NULL,
	    inf_list_done, i);
	free(b.p);
	return (i->req != NULL ? 0 : -AS_EINVAL);
}

/* The next page, or a failure (and a backoff) when it cannot be asked. */
static void
inf_list_next(struct informer *i)
{
	if (inf_list_page(i) != 0)
		inf_fail(i, "LIST", "the Kubernetes client refused the request",
		    INF_STEP_LIST);
}

/*
 * The start of both completions: 1 when resp answers the request in
 * flight, which is then forgotten, and is to be handled.  0 for one we
 * cancelled ourselves (see Lifetimes), and for one cancelled by someone
 * else: only k8s_client_free() does that, and the client is then going
 * away, so the informer stops for good (it must be freed before its
 * client; this keeps a wrong order harmless).
 */
static int
inf_response(struct informer *i, const struct k8s_response *resp)
{
	if (i->dead || i->req == NULL)
		return (0);
	i->req = NULL;
	if (resp->err != -AS_ECANCELED)
		return (1);
	i->state = INF_WAITING;
	i->kc = NULL;
	log_error("informer", "%s: the Kubernetes client cancelled our "
	    "request (was it freed?); the informer stops", i->log_name);
	return (0);
}

/*
 * Takes one page into i->fresh.  Items of built-in lists lack kind and
 * apiVersion; they get the list's, as the dynamic client does
 * (k8s.io/apimachinery/pkg/apis/meta/v1/unstructured/helpers.go,
 * decodeToList).  Returns 0 or -AS_EPROTO with the reason.
 */
static int
inf_list_parse(struct informer *i, const char *body, size_t len, char *err,
    size_t errlen)
{
	cJSON		*root, *md, *items, *it, *v;
	struct inf_entry *e;
	char		 key[INF_KEY_MAX], kind[256] = "", api[256] = "";
	size_t		 n;
	int		 rc = -AS_EPROTO;

	if ((root = cJSON_ParseWithLength(body, len)) == NULL ||
	    !cJSON_IsObject(root)) {
		snprintf(err, errlen, "the LIST answer is not a JSON object");
		goto out;
	}
	md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
	if (!obj_is_string(md, "resourceVersion")) {
		snprintf(err, errlen, "the LIST answer has no "
		    "metadata.resourceVersion");
		goto out;
	}
	items = cJSON_GetObjectItemCaseSensitive(root, "items");
	if (items != NULL && !cJSON_IsNull(items) && !cJSON_IsArray(items)) {
		snprintf(err, errlen, "the LIST answer's items is not an "
		    "array");
		goto out;
	}
	/* The first page's resourceVersion is the list's. */
	if (i->list_rv == NULL)
		i->list_rv = xstrdup(cJSON_GetObjectItemCaseSensitive(md,
		    "resourceVersion")->valuestring);
	free(i->cont);
	i->cont = NULL;
	if (obj_is_string(md, "continue"))
		i->cont = xstrdup(cJSON_GetObjectItemCaseSensitive(md,
		    "continue")->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(root, "kind");
	if (cJSON_IsString(v)) {
		n = strlen(v->valuestring);
		if (n > 4 && n < sizeof kind &&
		    strcmp(v->valuestring + n - 4, "List") == 0)
			snprintf(kind, sizeof kind, "%.*s", (int)(n - 4),
			    v->valuestring);
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "apiVersion");
	if (cJSON_IsString(v))
		as_strlcpy(api, v->valuestring, sizeof api);

	while (cJSON_IsArray(items) && (it = items->child) != NULL) {
		cJSON_DetachItemViaPointer(items, it);
		if (!cJSON_IsObject(it) ||
		    obj_key(it, key, sizeof key) != 0) {
			log_warn("informer", "%s: a listed item without a "
			    "name is ignored", i->log_name);
			cJSON_Delete(it);
			continue;
		}
		if (kind[0] != '\0' && !obj_is_string(it, "kind"))
			cJSON_AddStringToObject(it, "kind", kind);
		if (api[0] != '\0' && !obj_is_string(it, "apiVersion"))
			cJSON_AddStringToObject(it, "apiVersion", api);
		if (i->transform != NULL)
			i->transform(it, i->transform_arg);
		if ((e = tab_find(&i->fresh, key)) != NULL) {
			/* Listed twice: the later copy wins. */
			cJSON_Delete(e->obj);
			ent_put(i, e, it);
			continue;
		}
		if (i->norder == i->order_cap) {
			i->order_cap = i->order_cap > 0 ? i->order_cap * 2 : 64;
			i->order = xrealloc(i->order, i->order_cap *
			    sizeof *i->order);
		}
		i->order[i->norder++] = tab_insert(i, &i->fresh, key, it);
	}
	i->pages++;
	rc = 0;
out:
	cJSON_Delete(root);
	return (rc);
}

/*
 * The last page is in: the new set becomes the cache, the difference is
 * reported, then SYNCED, then the watch starts from the list's version.
 */
static void
inf_list_finish(struct informer *i)
{
	struct as_hash	 old = i->cache;
	struct as_hash_entry *l;
	struct inf_entry *e, *o;
	size_t		 k;

	i->cache = i->fresh;
	tab_init(&i->fresh);
	free(i->rv);
	i->rv = i->list_rv;
	i->list_rv = NULL;
	i->st.lists++;
	inf_recovered(i);
	log_info("informer", "%s: %s %zu objects (%u pages) at "
	    "resourceVersion %s", i->log_name, i->synced ? "re-listed" :
	    "listed", as_hash_count(&i->cache), i->pages, i->rv);

	for (l = as_hash_first(&old); l != NULL; l = as_hash_next(&old, l)) {
		e = AS_HASH_ITEM(l, struct inf_entry, link);
		if (tab_find(&i->cache, e->key) == NULL)
			inf_report(i, INFORMER_DELETED, ent_obj(i, e));
	}
	for (k = 0; k < i->norder; k++) {
		e = i->order[k];
		if ((o = tab_find(&old, e->key)) == NULL)
			inf_report(i, INFORMER_ADDED, ent_obj(i, e));
		else if (strcmp(ent_rv(o), ent_rv(e)) != 0)
			inf_report(i, INFORMER_MODIFIED, ent_obj(i, e));
	}
	i->norder = 0;
	/* Callbacks may still hold the old objects until we return. */
	tab_clear(&old, i);
	as_hash_fini(&old);
	i->synced = 1;
	inf_report(i, INFORMER_SYNCED, NULL);
	if (!i->dead)
		inf_watch_start(i);
}

static void
inf_list_done(const struct k8s_response *resp, void *arg)
{
	struct informer	*i = arg;
	char		 err[256];

	i->depth++;
	if (!inf_response(i, resp))
		goto out;
	if (resp->err != 0) {
		if (resp->code == 410 && i->cont != NULL) {
			/* The continue token expired: from the start. */
			log_info("informer", "%s: LIST continue token "
			    "expired (%s); listing from the start",
			    i->log_name, resp->message);
			inf_list_start(i);
		} else
			inf_fail(i, "LIST", resp->message, INF_STEP_LIST);
		goto out;
	}
	if (inf_list_parse(i, resp->body, resp->body_len, err,
	    sizeof err) != 0) {
		inf_fail(i, "LIST", err, INF_STEP_LIST);
		goto out;
	}
	if (i->cont == NULL)
		inf_list_finish(i);
	else
		inf_list_next(i);
out:
	inf_leave(i);
}

/* ---- WATCH ---- */

static void
inf_watch_start(struct informer *i)
{
	struct as_buf	 b = { NULL, 0, 0 };
	char		 num[32];

	i->state = INF_WATCHING;
	as_buf_printf(&b, "%s", i->path);
	url_put(&b, "watch", "true");
	url_put(&b, "allowWatchBookmarks", "true");
	snprintf(num, sizeof num, "%ld", i->watch_timeout);
	url_put(&b, "timeoutSeconds", num);
	url_put(&b, "resourceVersion", i->rv != NULL ? i->rv : "");
	url_put_selectors(&b, i);
	i->watch_started = as_mono_now();
	i->watch_lines = 0;
	i->st.watches++;
	i->req = k8s_client_watch(i->kc, b.p, i->idle_timeout, INF_LINE_MAX,
	    inf_watch_line, inf_watch_done, i);
	free(b.p);
	if (i->req == NULL)
		inf_fail(i, "WATCH", "the Kubernetes client refused the "
		    "request", INF_STEP_WATCH);
}

enum watch_line
watch_line_parse(const char *line, size_t len, struct watch_line_info *w)
{
	cJSON		*ev, *type, *obj, *code;
	const char	*t, *reason;
	enum watch_line	 kind;

	memset(w, 0, sizeof *w);
	if ((ev = cJSON_ParseWithLength(line, len)) == NULL) {
		as_strlcpy(w->msg, "a watch event that is not JSON",
		    sizeof w->msg);
		return (WATCH_LINE_BAD);
	}
	type = cJSON_GetObjectItemCaseSensitive(ev, "type");
	obj = cJSON_GetObjectItemCaseSensitive(ev, "object");
	if (!cJSON_IsString(type) || !cJSON_IsObject(obj)) {
		cJSON_Delete(ev);
		as_strlcpy(w->msg, "a watch event without type or object",
		    sizeof w->msg);
		return (WATCH_LINE_BAD);
	}
	t = type->valuestring;
	if (strcmp(t, "ADDED") == 0)
		kind = WATCH_LINE_ADDED;
	else if (strcmp(t, "MODIFIED") == 0)
		kind = WATCH_LINE_MODIFIED;
	else if (strcmp(t, "DELETED") == 0)
		kind = WATCH_LINE_DELETED;
	else if (strcmp(t, "BOOKMARK") == 0)
		kind = WATCH_LINE_BOOKMARK;
	else if (strcmp(t, "ERROR") == 0)
		kind = WATCH_LINE_ERROR;
	else {
		cJSON_Delete(ev);
		as_strlcpy(w->msg, "a watch event of an unknown type",
		    sizeof w->msg);
		return (WATCH_LINE_BAD);
	}
	cJSON_DetachItemViaPointer(ev, obj);
	cJSON_Delete(ev);
	w->obj = obj;
	if (kind == WATCH_LINE_BOOKMARK)
		w->rv = obj_rv(obj);
	if (kind == WATCH_LINE_ERROR) {
		code = cJSON_GetObjectItemCaseSensitive(obj, "code");
		reason = obj_is_string(obj, "reason") ?
		    cJSON_GetObjectItemCaseSensitive(obj,
		    "reason")->valuestring : "";
		w->code = cJSON_IsNumber(code) ? code->valuedouble : 0;
		/* Older servers say Gone, newer Expired; both are 410. */
		w->gone = w->code == 410 || strcmp(reason, "Expired") == 0 ||
		    strcmp(reason, "Gone") == 0;
		as_strlcpy(w->msg, obj_is_string(obj, "message") ?
		    cJSON_GetObjectItemCaseSensitive(obj,
		    "message")->valuestring : "no message", sizeof w->msg);
	}
	return (kind);
}

static void
inf_watch_line(const char *line, size_t len, void *arg)
{
	struct informer	*i = arg;
	struct watch_line_info w;
	enum watch_line	 kind;
	char		 text[600];

	i->depth++;
	if (i->dead || i->req == NULL)
		goto out;
	i->watch_lines++;
	kind = watch_line_parse(line, len, &w);
	switch (kind) {
	case WATCH_LINE_BAD:
		/* We may have missed a change: the cache is re-listed. */
		inf_stop_req(i);
		inf_fail(i, "WATCH", w.msg, INF_STEP_LIST);
		break;
	case WATCH_LINE_ERROR:
		inf_stop_req(i);
		if (w.gone) {
			i->st.relists_gone++;
			log_info("informer", "%s: watch from resourceVersion "
			    "%s: 410 Gone (%s); re-listing", i->log_name,
			    informer_resource_version(i), w.msg);
			inf_schedule(i, INF_STEP_LIST, 0.);
		} else {
			snprintf(text, sizeof text, "ERROR event %g: %s",
			    w.code, w.msg);
			inf_fail(i, "WATCH", text, INF_STEP_WATCH);
		}
		break;
	case WATCH_LINE_BOOKMARK:
		/* The stream works: whatever failed before is over. */
		inf_recovered(i);
		i->st.bookmarks++;
		inf_set_rv(i, w.rv);
		break;
	default:
		inf_recovered(i);
		inf_watch_event(i, kind == WATCH_LINE_ADDED ? "ADDED" :
		    kind == WATCH_LINE_MODIFIED ? "MODIFIED" : "DELETED",
		    w.obj);
		w.obj = NULL;	/* the cache's now */
		break;
	}
	cJSON_Delete(w.obj);
out:
	inf_leave(i);
}

/* Applies one ADDED/MODIFIED/DELETED to the cache and reports it. */
static void
inf_watch_event(struct informer *i, const char *type, cJSON *obj)
{
	struct inf_entry *e;
	char		 key[INF_KEY_MAX];

	if (i->transform != NULL)
		i->transform(obj, i->transform_arg);
	if (obj_key(obj, key, sizeof key) != 0) {
		log_warn("informer", "%s: a %s event without a name is "
		    "ignored", i->log_name, type);
		cJSON_Delete(obj);
		return;
	}
	inf_set_rv(i, obj_rv(obj));
	e = tab_find(&i->cache, key);
	if (strcmp(type, "DELETED") == 0) {
		if (e == NULL) {
			cJSON_Delete(obj);	/* never had it */
			return;
		}
		inf_trash(i, tab_remove(&i->cache, key));
		inf_trash(i, obj);
		inf_report(i, INFORMER_DELETED, obj);
		return;
	}
	if (e != NULL && strcmp(ent_rv(e), obj_rv(obj)) == 0) {
		cJSON_Delete(obj);	/* seen already */
		return;
	}
	if (e != NULL) {
		inf_trash(i, e->obj);
		ent_put(i, e, obj);
		inf_report(i, INFORMER_MODIFIED, obj);
	} else {
		tab_insert(i, &i->cache, key, obj);
		inf_report(i, INFORMER_ADDED, obj);
	}
}

static void
inf_watch_done(const struct k8s_response *resp, void *arg)
{
	struct informer	*i = arg;
	int		 started, brief;

	i->depth++;
	if (!inf_response(i, resp))
		goto out;
	started = resp->code >= 200 && resp->code < 300;
	brief = i->watch_lines == 0 &&
	    as_mono_now() - i->watch_started < INF_SHORT_WATCH;
	if (resp->code == 410) {
		i->st.relists_gone++;
		log_info("informer", "%s: watch from resourceVersion %s: %s; "
		    "re-listing", i->log_name, informer_resource_version(i),
		    resp->message);
		inf_schedule(i, INF_STEP_LIST, 0.);
	} else if (started && resp->err == -AS_EPROTO)
		inf_fail(i, "WATCH", resp->message, INF_STEP_LIST);
	else if (started && brief)
		inf_fail(i, "WATCH", resp->err == 0 ? "the server ended the "
		    "watch at once, without an event" : resp->message,
		    INF_STEP_WATCH);
	else if (started && resp->err == 0) {
		inf_recovered(i);
		log_debug("informer", "%s: watch ended; reopening from "
		    "resourceVersion %s", i->log_name,
		    informer_resource_version(i));
		inf_schedule(i, INF_STEP_WATCH, 0.);
	} else if (started && (resp->err == -AS_ECONN ||
	    resp->err == -AS_ETIMEDOUT)) {
		log_info("informer", "%s: watch broke (%s); reopening from "
		    "resourceVersion %s", i->log_name, resp->message,
		    informer_resource_version(i));
		inf_schedule(i, INF_STEP_WATCH, 0.);
	} else
		inf_fail(i, "WATCH", resp->message, INF_STEP_WATCH);
out:
	inf_leave(i);
}
