/*
 * crd.c: CRD mode (crd.h).
 *
 * Who runs what.  Three informers feed one table of objects (AgentPools and
 * AgentQuotas; SandboxWarmPools are only read from their informer's cache).
 * An event that changes an object's spec (or adds or deletes one) marks the
 * table dirty and arms a zero-delay timer, so that a whole LIST, or a burst
 * of edits, becomes one rebuild: crd_build_config() parses every object on
 * its own and the config of the valid ones goes to the daemon's apply
 * callback, the path a SIGHUP reload takes.  Nothing is applied before both
 * informers have listed once, so a pool never starts without its quota.
 * Status-only changes (our own writes among them) never rebuild.
 *
 * Statuses are made again when what they report changed, not for every
 * object every time (issue 15): the daemon says which pool's status
 * changed (crd_status_touch()), and each status_interval the timer makes
 * the statuses of the pools touched since (an invalid object gets
 * Ready=False/InvalidSpec, a valid one the status computed from the
 * daemon's snapshot of its pool) and of every AgentQuota (one per
 * namespace, each an O(1) snapshot); the status writer drops what did not
 * change.  A new or edited object, a rebuild (validity), a warm pool's
 * change (for the pools using it) touch statuses too, and every
 * CRD_STATUS_RESYNC seconds all of them are made again, in case a change
 * went unsaid.  Invalid objects also get one Warning Event per
 * (generation, message).
 */
#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/rt/hash.h"
#include "config.h"
#include "crd.h"
#include "agentscaler/k8s/events.h"
#include "agentscaler/k8s/informer.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/rt/prom.h"
#include "agentscaler/k8s/status_writer.h"

#define CRD_API		"/apis/agentscaler.io/v1alpha1"
#define WARM_API	K8S_SANDBOX_EXT_API
#define CRD_BUCKETS	1024	/* at first; the table grows */
#define CRD_STATUS_RESYNC 60.0	/* s: every status made again */

static const char *const crd_kinds[] = { "AgentPool", "AgentQuota" };
static const char *const crd_plurals[] = { "agentpools", "agentquotas" };

struct crd_obj {
	struct as_hash_entry link;	/* crd_key_hash() */
	int		 quota;
	char		 ns[64];
	char		 name[254];
	char		 uid[64];
	char		*path;		/* the object's API path */
	char		*spec;		/* printed, to see spec changes */
	char		*warm_pool;	/* spec.sandbox.warmPool; "" */
	long		 generation;
	double		 created;
	int		 valid;
	char		*err;		/* why invalid; NULL: none known */
	long		 reported_gen;	/* InvalidSpec Event sent for */
	char		*reported;	/* its message; NULL: none */
	int		 stale;		/* in c->stale */
	TAILQ_ENTRY(crd_obj) stale_link;
	struct crd_warm	*warm;		/* its warm pool's users */
	TAILQ_ENTRY(crd_obj) warm_link;
	TAILQ_ENTRY(crd_obj) quota_link;	/* c->quotas, for quotas */
};

/* The pools using one SandboxWarmPool, "ns/name" (c->warms). */
struct crd_warm {
	struct as_hash_entry link;	/* as_hash_str(key) */
	char		 key[320];
	TAILQ_HEAD(, crd_obj) objs;
};

/* What crd_eq() compares an object with. */
struct crd_key {
	int		 quota;
	const char	*ns;
	const char	*name;
};

struct crd {
	struct ev_loop		*loop;
	struct k8s_client	*k8s;
	const struct crd_options *o;
	struct informer		*inf[2];	/* pools, quotas */
	struct crd_cache_arg {
		struct crd	*c;
		int		 quota;
	}			 cache_arg[2];	/* crd_cache_slim()'s */
	struct informer		*warm;
	struct as_hash		 objs;
	int			 dirty;
	uint64_t		 applies;
	uint64_t		 invalid;
	ev_timer		 rebuild;
	ev_timer		 status;
	TAILQ_HEAD(, crd_obj)	 stale;		/* pools: status to make */
	TAILQ_HEAD(, crd_obj)	 quotas;	/* made at every tick */
	struct as_hash		 warms;		/* struct crd_warm by key */
	double			 resync_at;	/* mono: all stale then */
	uint64_t		 status_made;	/* statuses made, all told */
	uint64_t		 status_ticks;	/* status timer runs */
	struct k8s_sink		 sink;
	struct status_writer	*sw;
	struct events		*ev;
};

static uint64_t	 crd_key_hash(int, const char *, const char *);
static int	 crd_eq(const struct as_hash_entry *, const void *);
static struct crd_obj *crd_find(const struct crd *, int, const char *,
		    const char *);
static void	 crd_obj_free(struct crd_obj *);
static void	 crd_upsert(struct crd *, int, const cJSON *);
static void	 crd_remove(struct crd *, int, const cJSON *);
static void	 crd_dirty(struct crd *);
static void	 crd_informer_cb(struct informer *, enum informer_event,
		    const cJSON *, void *);
static void	 crd_warm_cb(struct informer *, enum informer_event,
		    const cJSON *, void *);
static void	 crd_rebuild(struct crd *);
static void	 crd_rebuild_cb(struct ev_loop *, ev_timer *, int);
static void	 crd_status_cb(struct ev_loop *, ev_timer *, int);
static void	 crd_status_rejected(void *, const char *, long,
		    const char *);
static int	 crd_object_cmp(const void *, const void *);
static void	 crd_condition(cJSON *, const cJSON *, const char *, int,
		    const char *, const char *, long, double);

static uint64_t
crd_key_hash(int quota, const char *ns, const char *name)
{
	return ((as_hash_str(ns) * 31 + as_hash_str(name)) * 2 +
	    (uint64_t)quota);
}

static int
crd_eq(const struct as_hash_entry *l, const void *arg)
{
	const struct crd_obj	*o = AS_HASH_ITEM(l, struct crd_obj, link);
	const struct crd_key	*k = arg;

	return (o->quota == k->quota && strcmp(o->ns, k->ns) == 0 &&
	    strcmp(o->name, k->name) == 0);
}

static struct crd_obj *
crd_find(const struct crd *c, int quota, const char *ns, const char *name)
{
	struct crd_key	 k = { quota, ns, name };

	return (AS_HASH_ITEM(as_hash_find(&c->objs, crd_key_hash(quota, ns,
	    name), &k), struct crd_obj, link));
}

/* o's status is made at the next status tick. */
static void
crd_stale(struct crd *c, struct crd_obj *o)
{
	if (o->stale || o->quota)
		return;		/* quotas: made every time */
	o->stale = 1;
	TAILQ_INSERT_TAIL(&c->stale, o, stale_link);
}

/* o uses warm pool o->warm_pool now ("": none). */
static void
crd_warm_link(struct crd *c, struct crd_obj *o)
{
	struct crd_warm	*w = o->warm;
	char		 key[sizeof w->key];

	snprintf(key, sizeof key, "%s/%s", o->ns, o->warm_pool);
	if (w != NULL && strcmp(w->key, key) == 0 && o->warm_pool[0] != '\0')
		return;
	if (w != NULL) {
		TAILQ_REMOVE(&w->objs, o, warm_link);
		o->warm = NULL;
		if (TAILQ_EMPTY(&w->objs)) {
			as_hash_remove(&c->warms, &w->link);
			free(w);
		}
	}
	if (o->quota || o->warm_pool[0] == '\0')
		return;
	if ((w = AS_HASH_ITEM(as_hash_find_str(&c->warms, key),
	    struct crd_warm, link)) == NULL) {
		w = xcalloc(1, sizeof *w);
		as_strlcpy(w->key, key, sizeof w->key);
		TAILQ_INIT(&w->objs);
		as_hash_insert_str(&c->warms, &w->link);
	}
	TAILQ_INSERT_TAIL(&w->objs, o, warm_link);
	o->warm = w;
}

static void
crd_stale_all(struct crd *c)
{
	struct as_hash_entry *l;

	for (l = as_hash_first(&c->objs); l != NULL;
	    l = as_hash_next(&c->objs, l))
		crd_stale(c, AS_HASH_ITEM(l, struct crd_obj, link));
}

_Static_assert(sizeof(double) == sizeof(uint64_t), "last_scale in a word");

uint64_t
crd_pool_status_hash(const struct crd_pool_status *st)
{
	const long	 v[] = { st->dispatch, st->replicas, st->desired,
	    st->backlog, st->in_flight, st->claims_warm, st->claims_cold,
	    st->claims_pending, st->warm_replicas, st->warm_ready,
	    st->started, st->source_ok, st->quota_limited, st->shadow,
	    st->paused };
	uint64_t	 h = 14695981039346656037ULL, w;
	size_t		 i;

	/*
	 * FNV-1a's step a word at a time, not a byte (it runs after every
	 * poll of every pool, issue 15): xor then multiply by an odd number
	 * is one-to-one, so a change of any one field changes the hash.
	 */
	for (i = 0; i < AS_ARRAY_SIZE(v); i++)
		h = (h ^ (uint64_t)v[i]) * 1099511628211ULL;
	memcpy(&w, &st->last_scale, sizeof w);
	h = (h ^ w) * 1099511628211ULL;
	h = h * 31 + as_hash_str(st->source_err);
	h = h * 31 + as_hash_str(st->target_err);
	h = h * 31 + as_hash_str(st->hold_msg);
	h = h * 31 + as_hash_str(st->conflict);
	return (h * 31 + as_hash_str(st->quota_msg));
}

void
crd_status_touch(struct crd *c, const char *ns, const char *name)
{
	struct crd_obj	*o;

	if (c != NULL && (o = crd_find(c, 0, ns, name)) != NULL)
		crd_stale(c, o);
}

static void
crd_obj_free(struct crd_obj *o)
{
	if (o == NULL)
		return;
	free(o->spec);
	free(o->path);
	free(o->warm_pool);
	free(o->err);
	free(o->reported);
	free(o);
}

void
crd_slim(cJSON *obj, void *arg)
{
	static const char *const top[] = { "metadata", "spec", "status",
	    NULL };
	static const char *const md[] = { "name", "namespace", "uid",
	    "resourceVersion", "generation", "creationTimestamp",
	    "annotations", NULL };
	cJSON		*ann, *it, *next;

	(void)arg;
	as_json_keep(obj, top);
	as_json_keep(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), md);
	/* Of the annotations, ours only (the pause: config.h). */
	ann = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "annotations");
	for (it = ann != NULL ? ann->child : NULL; it != NULL; it = next) {
		next = it->next;
		if (it->string == NULL ||
		    strncmp(it->string, "agentscaler.io/", 15) != 0)
			cJSON_Delete(cJSON_DetachItemViaPointer(ann, it));
	}
}

/*
 * The informers' transform: crd_slim(), and the status too once the
 * object is known here.  Its status is read at first sight only (the
 * status writer's base, crd_upsert()); after that the writer keeps its
 * own, and every write of ours coming back as MODIFIED would otherwise
 * cache it again beside the writer's copy (issue 15).
 */
static void
crd_cache_slim(cJSON *obj, void *arg)
{
	const struct crd_cache_arg *a = arg;
	const cJSON	*md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const char	*ns = as_json_str(md, "namespace");
	const char	*name = as_json_str(md, "name");

	crd_slim(obj, NULL);
	if (ns != NULL && name != NULL &&
	    crd_find(a->c, a->quota, ns, name) != NULL)
		cJSON_DeleteItemFromObjectCaseSensitive(obj, "status");
}

static void
crd_dirty(struct crd *c)
{
	c->dirty = 1;
	if (!ev_is_active(&c->rebuild)) {
		ev_timer_set(&c->rebuild, 0., 0.);
		ev_timer_start(c->loop, &c->rebuild);
	}
}

/*
 * What a change of obj's config is seen in: its spec and its
 * agentscaler.io annotations (crd_slim() kept only those), printed.
 */
static char *
crd_spec_print(const cJSON *obj)
{
	const cJSON	*ann;
	char		*spec, *a, *s;

	spec = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(obj,
	    "spec"));
	ann = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "annotations");
	if (spec == NULL || ann == NULL || ann->child == NULL)
		return (spec);
	if ((a = cJSON_PrintUnformatted(ann)) == NULL)
		return (spec);
	s = xasprintf("%s\n%s", spec, a);
	free(spec);
	free(a);
	return (s);
}

/* An ADDED or MODIFIED object. */
static void
crd_upsert(struct crd *c, int quota, const cJSON *obj)
{
	const cJSON	*md, *gen, *sb;
	struct crd_obj	*o;
	const char	*ns, *name, *uid, *ts;
	char		*spec;
	int		 changed;

	md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	ns = as_json_str(md, "namespace");
	name = as_json_str(md, "name");
	if (ns == NULL || name == NULL || strlen(ns) >= sizeof o->ns ||
	    strlen(name) >= sizeof o->name)
		return;
	uid = as_json_str(md, "uid");
	/* The spec and our annotations (the pause) count as changes. */
	spec = crd_spec_print(obj);
	if ((o = crd_find(c, quota, ns, name)) == NULL) {
		o = xcalloc(1, sizeof *o);
		o->quota = quota;
		as_strlcpy(o->ns, ns, sizeof o->ns);
		as_strlcpy(o->name, name, sizeof o->name);
		o->path = xasprintf(CRD_API "/namespaces/%s/%s/%s", ns,
		    crd_plurals[quota], name);
		o->reported_gen = -1;
		as_hash_insert(&c->objs, &o->link, crd_key_hash(quota, ns,
		    name));
		if (quota)
			TAILQ_INSERT_TAIL(&c->quotas, o, quota_link);
		status_writer_seen(c->sw, o->path,
		    cJSON_GetObjectItemCaseSensitive(obj, "status"));
		changed = 1;
	} else
		changed = strcmp(o->uid, uid != NULL ? uid : "") != 0 ||
		    o->spec == NULL || spec == NULL ||
		    strcmp(o->spec, spec) != 0;
	as_strlcpy(o->uid, uid != NULL ? uid : "", sizeof o->uid);
	gen = cJSON_GetObjectItemCaseSensitive(md, "generation");
	o->generation = cJSON_IsNumber(gen) ? (long)gen->valuedouble : 0;
	ts = as_json_str(md, "creationTimestamp");
	if (ts == NULL || as_parse_rfc3339(ts, &o->created) != 0)
		o->created = 0;
	sb = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
	    obj, "spec"), "sandbox");
	free(o->warm_pool);
	o->warm_pool = xstrdup(as_json_str(sb, "warmPool") != NULL ?
	    as_json_str(sb, "warmPool") : "");
	crd_warm_link(c, o);
	free(o->spec);
	o->spec = spec;
	if (changed) {
		crd_stale(c, o);
		crd_dirty(c);
	}
}

static void
crd_remove(struct crd *c, int quota, const cJSON *obj)
{
	const cJSON	*md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const char	*ns = as_json_str(md, "namespace");
	const char	*name = as_json_str(md, "name");
	struct crd_obj	*o;

	if (ns == NULL || name == NULL ||
	    (o = crd_find(c, quota, ns, name)) == NULL)
		return;
	as_hash_remove(&c->objs, &o->link);
	if (o->stale)
		TAILQ_REMOVE(&c->stale, o, stale_link);
	if (o->quota)
		TAILQ_REMOVE(&c->quotas, o, quota_link);
	free(o->warm_pool);
	o->warm_pool = xstrdup("");
	crd_warm_link(c, o);
	status_writer_forget(c->sw, o->path);
	crd_obj_free(o);
	crd_dirty(c);
}

static void
crd_informer_cb(struct informer *inf, enum informer_event ev,
    const cJSON *obj, void *arg)
{
	struct crd	*c = arg;
	int		 quota = inf == c->inf[1];

	switch (ev) {
	case INFORMER_ADDED:
	case INFORMER_MODIFIED:
		crd_upsert(c, quota, obj);
		break;
	case INFORMER_DELETED:
		crd_remove(c, quota, obj);
		break;
	case INFORMER_SYNCED:
		crd_dirty(c);
		break;
	}
}

/*
 * Warm pools are read from the cache when statuses are made: the pools
 * using this one (c->warms) have theirs made again.
 */
static void
crd_warm_cb(struct informer *inf, enum informer_event ev, const cJSON *obj,
    void *arg)
{
	struct crd	*c = arg;
	struct crd_warm	*w;
	struct crd_obj	*o;
	const cJSON	*md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const char	*ns = as_json_str(md, "namespace");
	const char	*name = as_json_str(md, "name");
	char		 key[sizeof w->key];

	(void)inf;
	if (ev == INFORMER_SYNCED || ns == NULL || name == NULL)
		return;
	snprintf(key, sizeof key, "%s/%s", ns, name);
	if ((w = AS_HASH_ITEM(as_hash_find_str(&c->warms, key),
	    struct crd_warm, link)) == NULL)
		return;
	TAILQ_FOREACH(o, &w->objs, warm_link)
		crd_stale(c, o);
}

/* Orders quotas by namespace, then age, then name (the oldest wins). */
static const char *
crd_or_empty(const char *s)
{
	return (s != NULL ? s : "");
}

static int
crd_object_cmp(const void *a, const void *b)
{
	const struct crd_object *x = *(const struct crd_object *const *)a;
	const struct crd_object *y = *(const struct crd_object *const *)b;
	const cJSON	*mx, *my;
	int		 r;

	if (x->quota != y->quota)
		return (x->quota - y->quota);
	mx = cJSON_GetObjectItemCaseSensitive(x->obj, "metadata");
	my = cJSON_GetObjectItemCaseSensitive(y->obj, "metadata");
	if ((r = strcmp(crd_or_empty(as_json_str(mx, "namespace")),
	    crd_or_empty(as_json_str(my, "namespace")))) != 0)
		return (r);
	if (x->quota && x->created != y->created)
		return (x->created < y->created ? -1 : 1);
	return (strcmp(crd_or_empty(as_json_str(mx, "name")),
	    crd_or_empty(as_json_str(my, "name"))));
}

struct config *
crd_build_config(struct crd_object *objs, size_t n,
    const struct config_tenancy *tenancy)
{
	static const struct config_tenancy none;
	struct crd_object	**ord;
	const struct quota_config *qc;
	struct config		*c = config_new();
	const cJSON		*md;
	cJSON			*min, *m;
	size_t			 i;

	ord = xcalloc(n > 0 ? n : 1, sizeof *ord);
	for (i = 0; i < n; i++)
		ord[i] = &objs[i];
	qsort(ord, n, sizeof *ord, crd_object_cmp);
	for (i = 0; i < n; i++) {
		struct crd_object *x = ord[i];

		x->valid = 0;
		x->err[0] = '\0';
		md = cJSON_GetObjectItemCaseSensitive(x->obj, "metadata");
		/* Only what a config file would hold: name, namespace, spec. */
		min = cJSON_CreateObject();
		cJSON_AddStringToObject(min, "apiVersion", CRD_GROUP_VERSION);
		cJSON_AddStringToObject(min, "kind", crd_kinds[x->quota]);
		m = cJSON_AddObjectToObject(min, "metadata");
		if (as_json_str(md, "name") != NULL)
			cJSON_AddStringToObject(m, "name",
			    as_json_str(md, "name"));
		if (as_json_str(md, "namespace") != NULL)
			cJSON_AddStringToObject(m, "namespace",
			    as_json_str(md, "namespace"));
		if (cJSON_GetObjectItemCaseSensitive(md, "annotations") !=
		    NULL)
			cJSON_AddItemReferenceToObject(m, "annotations",
			    cJSON_GetObjectItemCaseSensitive(md,
			    "annotations"));
		if (cJSON_GetObjectItemCaseSensitive(x->obj, "spec") != NULL)
			cJSON_AddItemReferenceToObject(min, "spec",
			    cJSON_GetObjectItemCaseSensitive(x->obj, "spec"));
		if (x->quota && as_json_str(md, "namespace") != NULL &&
		    (qc = config_quota_for(c, as_json_str(md, "namespace"))) !=
		    NULL)
			snprintf(x->err, sizeof x->err, "metadata.namespace: "
			    "namespace %s already has AgentQuota %s, the "
			    "oldest, which is the one in force; at most one "
			    "per namespace", qc->ns, qc->name);
		else if (x->quota)
			x->valid = config_add_quota(c, min, "", x->err,
			    sizeof x->err) == 0;
		else if ((x->valid = config_add_pool(c, min, NULL,
		    tenancy != NULL ? tenancy : &none, "", x->err,
		    sizeof x->err) == 0))
			c->pools[c->npools - 1].created = x->created;
		cJSON_Delete(min);
	}
	free(ord);
	return (c);
}

static void
crd_rebuild(struct crd *c)
{
	struct crd_object *objs;
	struct crd_obj	**byidx, *o;
	struct as_hash_entry *l;
	struct config	*cfg;
	size_t		 i, n = 0, nobjs = as_hash_count(&c->objs);
	uint64_t	 bad = 0;

	c->dirty = 0;
	if (!informer_synced(c->inf[0]) || !informer_synced(c->inf[1]))
		return;
	objs = xcalloc(nobjs > 0 ? nobjs : 1, sizeof *objs);
	byidx = xcalloc(nobjs > 0 ? nobjs : 1, sizeof *byidx);
	for (l = as_hash_first(&c->objs); l != NULL;
	    l = as_hash_next(&c->objs, l)) {
		o = AS_HASH_ITEM(l, struct crd_obj, link);
		/* The informer's cache, which crd_slim() made small. */
		objs[n].obj = informer_get(c->inf[o->quota], o->ns, o->name);
		if (objs[n].obj == NULL)
			continue;	/* cannot be: its event made o */
		objs[n].quota = o->quota;
		objs[n].created = o->created;
		byidx[n++] = o;
	}
	cfg = crd_build_config(objs, n, c->o->tenancy);
	for (i = 0; i < n; i++) {
		o = byidx[i];
		if (objs[i].valid) {
			if (!o->valid && o->err != NULL)
				log_info("crd", "%s %s/%s: valid now",
				    crd_kinds[o->quota], o->ns, o->name);
			o->valid = 1;
			free(o->err);
			o->err = NULL;
			continue;
		}
		bad++;
		o->valid = 0;
		free(o->err);
		o->err = objs[i].err[0] != '\0' ? xstrdup(objs[i].err) : NULL;
		if (o->reported_gen == o->generation &&
		    strcmp(crd_or_empty(o->reported), crd_or_empty(o->err)) == 0)
			continue;
		log_warn("crd", "%s %s/%s (generation %ld) is invalid and not "
		    "applied: %s", crd_kinds[o->quota], o->ns, o->name,
		    o->generation, crd_or_empty(o->err));
		crd_event(c, crd_kinds[o->quota], o->ns, o->name,
		    EVENT_WARNING, "InvalidSpec", "Validate", "%s",
		    crd_or_empty(o->err));
		o->reported_gen = o->generation;
		free(o->reported);
		o->reported = xstrdup(crd_or_empty(o->err));
	}
	free(objs);
	free(byidx);
	c->invalid = bad;
	c->applies++;
	log_info("crd", "applying %zu AgentPools and %zu AgentQuotas (%llu "
	    "invalid left out)", cfg->npools, cfg->nquotas,
	    (unsigned long long)bad);
	c->o->apply(c->o->arg, cfg);
	/* Statuses (InvalidSpec at once) without waiting for the timer. */
	crd_stale_all(c);
	ev_feed_event(c->loop, &c->status, EV_TIMER);
}

static void
crd_rebuild_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct crd	*c = w->data;

	(void)loop;
	(void)revents;
	if (c->dirty)
		crd_rebuild(c);
}

/*
 * Adds condition type to arr; lastTransitionTime comes from the same
 * condition in prev when its status is unchanged.
 */
static void
crd_condition(cJSON *arr, const cJSON *prev, const char *type, int status,
    const char *reason, const char *message, long generation, double now)
{
	const cJSON	*pc, *it;
	const char	*st = status ? "True" : "False", *t = NULL;
	cJSON		*o;
	char		 ts[48];

	pc = cJSON_GetObjectItemCaseSensitive(prev, "conditions");
	cJSON_ArrayForEach(it, pc) {
		const char *ty = as_json_str(it, "type");
		const char *s = as_json_str(it, "status");

		if (ty != NULL && strcmp(ty, type) == 0 && s != NULL &&
		    strcmp(s, st) == 0)
			t = as_json_str(it, "lastTransitionTime");
	}
	if (t == NULL) {
		as_rfc3339(now, 0, ts, sizeof ts);
		t = ts;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", type);
	cJSON_AddStringToObject(o, "status", st);
	cJSON_AddNumberToObject(o, "observedGeneration", (double)generation);
	cJSON_AddStringToObject(o, "lastTransitionTime", t);
	cJSON_AddStringToObject(o, "reason", reason);
	cJSON_AddStringToObject(o, "message", message);
	cJSON_AddItemToArray(arr, o);
}

cJSON *
crd_pool_status_json(const struct crd_pool_status *s, long generation,
    const cJSON *prev, double now)
{
	cJSON		*o, *c, *cl, *wp;
	const char	*ready_reason, *ready_msg;
	char		 t[48];
	int		 ready, source_err;

	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "observedGeneration", (double)generation);
	if (s->replicas >= 0)
		cJSON_AddNumberToObject(o, "replicas", (double)s->replicas);
	cJSON_AddNumberToObject(o, "desiredReplicas", (double)s->desired);
	cJSON_AddNumberToObject(o, "backlog", (double)s->backlog);
	cJSON_AddNumberToObject(o, "inFlight", (double)s->in_flight);
	if (s->last_scale > 0) {
		as_rfc3339(s->last_scale, 0, t, sizeof t);
		cJSON_AddStringToObject(o, "lastScaleTime", t);
	}
	if (s->dispatch) {
		cl = cJSON_AddObjectToObject(o, "claims");
		cJSON_AddNumberToObject(cl, "warm", (double)s->claims_warm);
		cJSON_AddNumberToObject(cl, "cold", (double)s->claims_cold);
		cJSON_AddNumberToObject(cl, "pending",
		    (double)s->claims_pending);
		if (s->warm_replicas >= 0) {
			wp = cJSON_AddObjectToObject(o, "warmPool");
			cJSON_AddNumberToObject(wp, "replicas",
			    (double)s->warm_replicas);
			cJSON_AddNumberToObject(wp, "readyReplicas",
			    (double)(s->warm_ready >= 0 ? s->warm_ready : 0));
		}
	}
	source_err = s->source_err[0] != '\0' && !s->source_ok;
	ready = s->started && s->source_ok && s->target_err[0] == '\0';
	if (ready) {
		ready_reason = "Running";
		ready_msg = s->dispatch ? "consuming the source" :
		    "reading the source and the target";
	} else if (source_err) {
		ready_reason = "SourceError";
		ready_msg = s->source_err;
	} else if (s->target_err[0] != '\0') {
		ready_reason = s->dispatch ? "WarmPoolError" : "TargetError";
		ready_msg = s->target_err;
	} else {
		ready_reason = "Starting";
		ready_msg = "the source has not been read yet";
	}
	c = cJSON_AddArrayToObject(o, "conditions");
	crd_condition(c, prev, "Ready", ready, ready_reason, ready_msg,
	    generation, now);
	crd_condition(c, prev, "Active", s->dispatch ? s->in_flight > 0 ||
	    s->desired > 0 : s->replicas > 0, s->dispatch ?
	    (s->in_flight > 0 || s->desired > 0 ? "Working" : "Idle") :
	    (s->replicas > 0 ? "ScaledUp" : "ScaledToZero"), "", generation,
	    now);
	crd_condition(c, prev, "QuotaLimited", s->quota_limited,
	    s->quota_limited ? "QuotaExceeded" : "WithinQuota",
	    s->quota_limited ? s->quota_msg : "", generation, now);
	crd_condition(c, prev, "SourceError", source_err, source_err ?
	    "SourceUnreadable" : "SourceReadable", source_err ?
	    s->source_err : "", generation, now);
	/* Present only while true: most pools never have them. */
	if (s->shadow)
		crd_condition(c, prev, "Shadow", 1, "ShadowMode", s->hold_msg,
		    generation, now);
	if (s->paused)
		crd_condition(c, prev, "Paused", 1, "PausedByAnnotation",
		    s->hold_msg, generation, now);
	if (s->conflict[0] != '\0')
		crd_condition(c, prev, "Conflict", 1, "TargetOwned",
		    s->conflict, generation, now);
	return (o);
}

cJSON *
crd_quota_status_json(const struct crd_quota_status *s, long generation,
    const cJSON *prev, double now)
{
	cJSON	*o, *u, *c;
	size_t	 i;

	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "observedGeneration", (double)generation);
	u = cJSON_AddObjectToObject(o, "used");
	cJSON_AddNumberToObject(u, "sandboxes", (double)s->sandboxes);
	cJSON_AddNumberToObject(u, "replicas", (double)s->replicas);
	cJSON_AddNumberToObject(u, "tasks", (double)s->tasks);
	for (i = 0; i < s->nres && i < CRD_MAX_RESOURCES; i++)
		if (cJSON_GetObjectItemCaseSensitive(u, s->res[i].name) ==
		    NULL)
			cJSON_AddNumberToObject(u, s->res[i].name,
			    s->res[i].used);
	cJSON_AddNumberToObject(o, "roots", (double)s->roots);
	cJSON_AddNumberToObject(o, "deferred", (double)s->deferred);
	cJSON_AddNumberToObject(o, "rejected", (double)s->rejected);
	c = cJSON_AddArrayToObject(o, "conditions");
	crd_condition(c, prev, "Ready", 1, "InForce",
	    "the quota of the namespace", generation, now);
	crd_condition(c, prev, "QuotaLimited", s->limited, s->limited ?
	    "QuotaExceeded" : "WithinQuota", s->limited ? s->limited_msg : "",
	    generation, now);
	return (o);
}

cJSON *
crd_invalid_status_json(const char *msg, long generation, const cJSON *prev,
    double now)
{
	cJSON	*o, *c;

	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "observedGeneration", (double)generation);
	c = cJSON_AddArrayToObject(o, "conditions");
	crd_condition(c, prev, "Ready", 0, "InvalidSpec", msg, generation,
	    now);
	return (o);
}

/* Makes o's status and gives it to the writer. */
static void
crd_status_make(struct crd *c, struct crd_obj *o, double now)
{
	struct crd_pool_status	 ps;
	struct crd_quota_status	 qs;
	const cJSON		*prev, *wp, *st, *v;
	cJSON			*doc = NULL;

	c->status_made++;
	prev = status_writer_current(c->sw, o->path);
	if (!o->valid && o->err != NULL)
		doc = crd_invalid_status_json(o->err, o->generation, prev, now);
	else if (!o->valid)
		return;		/* not judged yet */
	else if (o->quota) {
		memset(&qs, 0, sizeof qs);
		if (c->o->quota_status(c->o->arg, o->ns, &qs) == 0)
			doc = crd_quota_status_json(&qs, o->generation, prev,
			    now);
	} else {
		memset(&ps, 0, sizeof ps);
		ps.warm_replicas = ps.warm_ready = -1;
		if (c->o->pool_status(c->o->arg, o->ns, o->name, &ps) != 0)
			return;
		wp = ps.dispatch && o->warm_pool[0] != '\0' &&
		    c->warm != NULL ? informer_get(c->warm, o->ns,
		    o->warm_pool) : NULL;
		st = cJSON_GetObjectItemCaseSensitive(wp, "status");
		if (wp != NULL) {
			v = cJSON_GetObjectItemCaseSensitive(st, "replicas");
			ps.warm_replicas = cJSON_IsNumber(v) ?
			    (long)v->valuedouble : 0;
			v = cJSON_GetObjectItemCaseSensitive(st,
			    "readyReplicas");
			ps.warm_ready = cJSON_IsNumber(v) ?
			    (long)v->valuedouble : 0;
			if (ps.dispatch)
				ps.replicas = ps.warm_replicas;
		}
		doc = crd_pool_status_json(&ps, o->generation, prev, now);
	}
	if (doc != NULL)
		status_writer_set(c->sw, o->path, doc);
}

/*
 * The status tick: the pools touched since the last one, every quota;
 * every object each CRD_STATUS_RESYNC seconds.  A pool whose status could
 * not be made (no pool runs it yet) is made again when touched.
 */
static void
crd_status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct crd	*c = w->data;
	struct crd_obj	*o;
	double		 now = as_wall_now(), mono = as_mono_now();

	(void)loop;
	(void)revents;
	if (c->applies == 0)
		return;
	c->status_ticks++;
	if (mono >= c->resync_at) {
		c->resync_at = mono + CRD_STATUS_RESYNC;
		crd_stale_all(c);
	}
	while ((o = TAILQ_FIRST(&c->stale)) != NULL) {
		TAILQ_REMOVE(&c->stale, o, stale_link);
		o->stale = 0;
		crd_status_make(c, o, now);
	}
	TAILQ_FOREACH(o, &c->quotas, quota_link)
		crd_status_make(c, o, now);
}

struct crd *
crd_new(struct ev_loop *loop, struct k8s_client *k8s,
    const struct crd_options *o, char *err, size_t errlen)
{
	struct informer_options	 io;
	struct status_writer_options so;
	struct events_options	 eo;
	struct crd		*c;
	char			 path[256];
	int			 k;

	c = xcalloc(1, sizeof *c);
	as_hash_init(&c->objs, CRD_BUCKETS, 0, crd_eq);
	TAILQ_INIT(&c->stale);
	TAILQ_INIT(&c->quotas);
	as_hash_init_str(&c->warms, 0, AS_HASH_KEY_ARRAY,
	    AS_HASH_KEYOFF(struct crd_warm, link, key));
	c->resync_at = as_mono_now() + CRD_STATUS_RESYNC;
	c->loop = loop;
	c->k8s = k8s;
	c->o = o;
	k8s_client_sink(k8s, &c->sink);
	memset(&so, 0, sizeof so);
	so.min_interval = o->status_min_interval;
	so.may_write = o->may_write;
	so.may_write_arg = o->arg;
	so.rejected = crd_status_rejected;
	so.rejected_arg = c;
	so.loop = loop;
	c->sw = status_writer_new(&c->sink, &so);
	memset(&eo, 0, sizeof eo);
	eo.controller = "agentscaler.io/agentscaler";
	eo.instance = o->instance;
	eo.may_write = o->may_write;
	eo.may_write_arg = o->arg;
	eo.loop = loop;
	c->ev = events_new(&c->sink, &eo);
	ev_init(&c->rebuild, crd_rebuild_cb);
	c->rebuild.data = c;
	ev_init(&c->status, crd_status_cb);
	c->status.data = c;
	c->status.repeat = o->status_interval > 0 ? o->status_interval : 1;
	ev_timer_again(loop, &c->status);
	for (k = 0; k < 3; k++) {
		memset(&io, 0, sizeof io);
		if (o->watch_namespace != NULL)
			snprintf(path, sizeof path, "%s/namespaces/%s/%s",
			    k < 2 ? CRD_API : WARM_API, o->watch_namespace,
			    k < 2 ? crd_plurals[k] : "sandboxwarmpools");
		else
			snprintf(path, sizeof path, "%s/%s", k < 2 ? CRD_API :
			    WARM_API, k < 2 ? crd_plurals[k] :
			    "sandboxwarmpools");
		io.path = path;
		io.log_name = k < 2 ? crd_plurals[k] : "sandboxwarmpools";
		if (k < 2) {
			c->cache_arg[k].c = c;
			c->cache_arg[k].quota = k;
			io.transform = crd_cache_slim;
			io.transform_arg = &c->cache_arg[k];
		}
		if (k < 2)
			c->inf[k] = informer_new(k8s, &io, crd_informer_cb, c,
			    err, errlen);
		else
			c->warm = informer_new(k8s, &io, crd_warm_cb, c, err,
			    errlen);
		if ((k < 2 ? c->inf[k] : c->warm) == NULL) {
			crd_free(c);
			return (NULL);
		}
	}
	log_info("crd", "CRD mode: watching AgentPools and AgentQuotas in %s",
	    o->watch_namespace != NULL ? o->watch_namespace :
	    "all namespaces");
	return (c);
}

void
crd_hold(struct crd *c)
{
	if (c == NULL)
		return;
	status_writer_hold(c->sw);
	events_hold(c->ev);
}

void
crd_free(struct crd *c)
{
	struct as_hash_entry *l, *next;

	if (c == NULL)
		return;
	informer_free(c->inf[0]);
	informer_free(c->inf[1]);
	informer_free(c->warm);
	ev_timer_stop(c->loop, &c->rebuild);
	ev_timer_stop(c->loop, &c->status);
	for (l = as_hash_first(&c->objs); l != NULL; l = next) {
		next = as_hash_next(&c->objs, l);
		crd_obj_free(AS_HASH_ITEM(l, struct crd_obj, link));
	}
	as_hash_fini(&c->objs);
	for (l = as_hash_first(&c->warms); l != NULL; l = next) {
		next = as_hash_next(&c->warms, l);
		free(AS_HASH_ITEM(l, struct crd_warm, link));
	}
	as_hash_fini(&c->warms);
	status_writer_free(c->sw);
	events_free(c->ev);
	free(c);
}

void
crd_readyz(const struct crd *c, struct as_buf *b)
{
	if (!informer_synced(c->inf[0]))
		as_buf_printf(b, "AgentPools not listed yet\n");
	if (!informer_synced(c->inf[1]))
		as_buf_printf(b, "AgentQuotas not listed yet\n");
	if (!informer_synced(c->warm))
		as_buf_printf(b, "SandboxWarmPools not listed yet\n");
	if (c->applies == 0 && informer_synced(c->inf[0]) &&
	    informer_synced(c->inf[1]))
		as_buf_printf(b, "config not applied yet\n");
}

/* The families of the CRD mode. */
static const struct prom_def m_objects = { "agentscaler_crd_objects",
    PROM_GAUGE, "state", "CRD mode: AgentPools and AgentQuotas known, by "
    "state: valid (applied), invalid (not applied)." };
static const struct prom_def m_applies = { "agentscaler_crd_applies_total",
    PROM_COUNTER, "", "CRD mode: configs built from the objects and "
    "applied." };
static const struct prom_def m_made = {
    "agentscaler_crd_statuses_made_total", PROM_COUNTER, "",
    "CRD mode: status documents made (for pools whose status changed, "
    "every quota, and all of them once a minute), before the writer drops "
    "the unchanged." };
static const struct prom_def m_ticks = {
    "agentscaler_crd_status_ticks_total", PROM_COUNTER, "",
    "CRD mode: runs of the status timer (every status interval, once a "
    "config is applied)." };
static const struct prom_def m_writes = {
    "agentscaler_status_writes_total", PROM_COUNTER, "result",
    "CRD mode: status subresource writes by result: ok, failed (retried), "
    "rejected (refused for good, not retried until the status changes), "
    "unchanged (not sent)." };
static const struct prom_def m_events = { "agentscaler_events_total",
    PROM_COUNTER, "result", "CRD mode: Events by result: created, series "
    "(updates), dropped (by the rate limit), failed." };

const struct prom_def *const crd_metric_defs[] = {
	&m_objects, &m_applies, &m_made, &m_ticks, &m_writes, &m_events, NULL
};

void
crd_metrics(const struct crd *c, struct prom *w)
{
	static const char *const states[] = { "valid", "invalid" };
	static const char *const sw_results[] = { "ok", "failed", "rejected",
	    "unchanged" };
	static const char *const ev_results[] = { "created", "series",
	    "dropped", "failed" };
	struct status_writer_stats sws;
	struct events_stats	 es;
	double			 objs[2], swv[4], evv[4];

	status_writer_get_stats(c->sw, &sws);
	events_get_stats(c->ev, &es);
	prom_family(w, &m_objects);
	objs[1] = (double)c->invalid;
	objs[0] = (double)as_hash_count(&c->objs) - objs[1];
	prom_sample_each(w, NULL, "state", states, objs, 2);
	prom_family(w, &m_applies);
	prom_sample_u64(w, NULL, c->applies);
	prom_family(w, &m_made);
	prom_sample_u64(w, NULL, c->status_made);
	prom_family(w, &m_ticks);
	prom_sample_u64(w, NULL, c->status_ticks);
	prom_family(w, &m_writes);
	swv[0] = (double)sws.writes;
	swv[1] = (double)sws.failed;
	swv[2] = (double)sws.rejected;
	swv[3] = (double)sws.unchanged;
	prom_sample_each(w, NULL, "result", sw_results, swv, 4);
	prom_family(w, &m_events);
	evv[0] = (double)es.created;
	evv[1] = (double)es.patched;
	evv[2] = (double)es.dropped;
	evv[3] = (double)es.failed;
	prom_sample_each(w, NULL, "result", ev_results, evv, 4);
}

/*
 * The status writer's rejected callback: the object's status was refused
 * for good (a 422 from the schema, say), so the operator learns it from a
 * Warning Event on the object, since its status cannot say it.
 */
static void
crd_status_rejected(void *arg, const char *path, long code, const char *msg)
{
	struct crd	*c = arg;
	struct as_hash_entry *l;
	struct crd_obj	*o;

	for (l = as_hash_first(&c->objs); l != NULL;
	    l = as_hash_next(&c->objs, l)) {
		o = AS_HASH_ITEM(l, struct crd_obj, link);
		if (strcmp(o->path, path) == 0) {
			crd_event(c, crd_kinds[o->quota], o->ns, o->name,
			    EVENT_WARNING, "StatusRejected", "WriteStatus",
			    "the API server refused the status (HTTP %ld); "
			    "not retried until it changes: %s", code, msg);
			return;
		}
	}
}

void
crd_event(struct crd *c, const char *kind, const char *ns, const char *name,
    enum event_type type, const char *reason, const char *action,
    const char *fmt, ...)
{
	struct event_ref ref;
	struct crd_obj	*o;
	va_list		 ap;
	char		 note[1024];

	if (c == NULL || ns == NULL || name == NULL)
		return;
	if ((o = crd_find(c, strcmp(kind, "AgentQuota") == 0, ns, name)) ==
	    NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(note, sizeof note, fmt, ap);
	va_end(ap);
	as_utf8_trim(note);
	memset(&ref, 0, sizeof ref);
	ref.api_version = CRD_GROUP_VERSION;
	ref.kind = crd_kinds[o->quota];
	ref.ns = o->ns;
	ref.name = o->name;
	ref.uid = o->uid;
	events_record(c->ev, &ref, type, reason, action, "%s", note);
}
