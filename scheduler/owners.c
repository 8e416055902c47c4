/*
 * owners.c: HPAs and ScaledObjects by the target they scale (owners.h).
 *
 * Design.  Three tables, all rt/hash.h:
 *
 *	groups	one per informer, keyed "r/ns" (r: 0 HPAs, 1 ScaledObjects;
 *		"r/" cluster-wide), counted by the subscriptions using it
 *	refs	one per HPA or ScaledObject seen, keyed "r/ns/name", with
 *		the target key it names
 *	owned	one per target key ("Kind/ns/name") that an object names
 *		or a pool follows: how many of each resource name it, one
 *		name of each, and the subscriptions
 *
 * An informer event costs a lookup or two: the object's ref, its old and
 * new target.  A target whose owners changed calls its subscribers; one
 * nobody follows is only counted.  Nothing walks every pool.
 *
 * Which informers: targets.c's rule (one per namespace of the pools, or
 * one per resource cluster-wide in CRD mode over every namespace).  The
 * cache keeps, through owners_slim(), the name, namespace, resource
 * version and spec.scaleTargetRef of each object.  ScaledObjects are a
 * CRD that may not be installed: their LIST then answers 404, the
 * informer retries (backoff up to a minute, logged once as a warning) and
 * meanwhile there are none.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/k8s/informer.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/hash.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/rt/log.h"
#include "owners.h"
#include "targets.h"

#define OWNERS_NRES	2

/* The two resources, in the order a conflict is reported by. */
static const struct {
	const char	*kind;
	const char	*prefix;
	const char	*resource;
} owners_res[OWNERS_NRES] = {
	/* A ScaledObject first: KEDA makes an HPA for each of them. */
	{ "ScaledObject", "/apis/keda.sh/v1alpha1", "scaledobjects" },
	{ "HorizontalPodAutoscaler", "/apis/autoscaling/v2",
	    "horizontalpodautoscalers" },
};

struct ogroup {
	struct as_hash_entry	 link;	/* o->groups */
	char			*key;
	struct owners		*o;
	int			 res;
	struct informer		*inf;
	size_t			 users;
};

struct oref {
	struct as_hash_entry	 link;	/* o->refs */
	char			*key;	/* r/ns/name */
	char			*target;	/* Kind/ns/name */
	int			 res;
};

struct owner_sub {
	struct owned		*t;
	struct ogroup		*g[OWNERS_NRES];
	struct owner_sub	*prev, *next;
	owners_fn		*fn;
	void			*arg;
};

struct owned {
	struct as_hash_entry	 link;	/* o->owned */
	char			*key;	/* Kind/ns/name */
	size_t			 n[OWNERS_NRES];
	char			 name[OWNERS_NRES][254];	/* one of each */
	struct owner_sub	*subs;
};

struct owners {
	struct k8s_client	*kc;
	struct targets_ops	 ops;
	int			 cluster_wide;
	struct as_hash		 groups;
	struct as_hash		 refs;
	struct as_hash		 owned;
};

static void	 ogroup_event(struct informer *, enum informer_event,
		    const cJSON *, void *);

struct owners *
owners_new(struct k8s_client *kc, const struct owners_options *opts)
{
	struct owners	*o;

	o = xcalloc(1, sizeof *o);
	o->kc = kc;
	if (opts != NULL && opts->ops != NULL)
		o->ops = *opts->ops;
	else {
		o->ops.informer_new = informer_new;
		o->ops.informer_free = informer_free;
		o->ops.informer_synced = informer_synced;
		o->ops.informer_stats = informer_get_stats;
	}
	o->cluster_wide = opts != NULL && opts->cluster_wide;
	as_hash_init_str(&o->groups, 0, 0,
	    AS_HASH_KEYOFF(struct ogroup, link, key));
	as_hash_init_str(&o->refs, 0, AS_HASH_SHRINK,
	    AS_HASH_KEYOFF(struct oref, link, key));
	as_hash_init_str(&o->owned, 0, AS_HASH_SHRINK,
	    AS_HASH_KEYOFF(struct owned, link, key));
	return (o);
}

static void
ogroup_free(struct ogroup *g)
{
	if (g->inf != NULL)
		g->o->ops.informer_free(g->inf);
	free(g->key);
	free(g);
}

static void
owned_free(struct owned *t)
{
	struct owner_sub *s, *next;

	for (s = t->subs; s != NULL; s = next) {
		next = s->next;
		free(s);
	}
	free(t->key);
	free(t);
}

void
owners_free(struct owners *o)
{
	struct as_hash_entry *l, *next;
	struct oref	*r;

	if (o == NULL)
		return;
	for (l = as_hash_first(&o->groups); l != NULL; l = next) {
		next = as_hash_next(&o->groups, l);
		ogroup_free(AS_HASH_ITEM(l, struct ogroup, link));
	}
	as_hash_fini(&o->groups);
	for (l = as_hash_first(&o->refs); l != NULL; l = next) {
		next = as_hash_next(&o->refs, l);
		r = AS_HASH_ITEM(l, struct oref, link);
		free(r->key);
		free(r->target);
		free(r);
	}
	as_hash_fini(&o->refs);
	for (l = as_hash_first(&o->owned); l != NULL; l = next) {
		next = as_hash_next(&o->owned, l);
		owned_free(AS_HASH_ITEM(l, struct owned, link));
	}
	as_hash_fini(&o->owned);
	free(o);
}

/* ---- objects ---- */

/* The informers' transform: what owners_target_key() reads, and no more. */
static void
owners_slim(cJSON *obj, void *arg)
{
	static const char *const top[] = { "metadata", "spec", NULL };
	static const char *const md[] = { "name", "namespace",
	    "resourceVersion", NULL };
	static const char *const spec[] = { "scaleTargetRef", NULL };

	(void)arg;
	as_json_keep(obj, top);
	as_json_keep(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), md);
	as_json_keep(cJSON_GetObjectItemCaseSensitive(obj, "spec"), spec);
}

int
owners_target_key(const cJSON *obj, char *key, size_t len)
{
	const cJSON	*md, *ref;
	const char	*ns, *kind, *name;
	int		 n;

	md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	ref = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(obj, "spec"), "scaleTargetRef");
	ns = as_json_str(md, "namespace");
	name = as_json_str(ref, "name");
	/*
	 * KEDA's scaleTargetRef.kind is optional, Deployment by default
	 * (keda.sh docs, reference/scaledobject-spec); an HPA's is required.
	 */
	if ((kind = as_json_str(ref, "kind")) == NULL)
		kind = "Deployment";
	if (ns == NULL || name == NULL || *name == '\0' || *kind == '\0')
		return (-1);
	n = snprintf(key, len, "%s/%s/%s", kind, ns, name);
	return (n < 0 || (size_t)n >= len ? -1 : 0);
}

/* The owned record of key, made when make is set; NULL otherwise. */
static struct owned *
owned_get(struct owners *o, const char *key, int make)
{
	struct owned	*t;

	t = AS_HASH_ITEM(as_hash_find_str(&o->owned, key), struct owned,
	    link);
	if (t != NULL || !make)
		return (t);
	t = xcalloc(1, sizeof *t);
	t->key = xstrdup(key);
	as_hash_insert_str(&o->owned, &t->link);
	return (t);
}

/* Drops t once nothing names it and nobody follows it. */
static void
owned_release(struct owners *o, struct owned *t)
{
	size_t	 i;

	for (i = 0; i < OWNERS_NRES; i++)
		if (t->n[i] > 0)
			return;
	if (t->subs != NULL)
		return;
	as_hash_remove(&o->owned, &t->link);
	owned_free(t);
}

/*
 * Its subscribers are told.  A callback must not unsubscribe (owners.h
 * callers evaluate their pool); the next is read first all the same.
 */
static void
owned_notify(struct owned *t)
{
	struct owner_sub *s, *next;

	for (s = t->subs; s != NULL; s = next) {
		next = s->next;
		s->fn(s->arg);
	}
}

/* r names target key (NULL: nothing now); counts and names move. */
static void
oref_point(struct owners *o, struct oref *r, const char *key,
    const char *name)
{
	struct owned	*t;

	if (r->target != NULL && key != NULL && strcmp(r->target, key) == 0)
		return;
	if (r->target != NULL &&
	    (t = owned_get(o, r->target, 0)) != NULL) {
		t->n[r->res]--;
		owned_notify(t);
		owned_release(o, t);
	}
	free(r->target);
	r->target = key != NULL ? xstrdup(key) : NULL;
	if (key == NULL)
		return;
	t = owned_get(o, key, 1);
	if (t->n[r->res]++ == 0)
		as_strlcpy(t->name[r->res], name, sizeof t->name[r->res]);
	owned_notify(t);
}

static void
ogroup_event(struct informer *inf, enum informer_event ev, const cJSON *obj,
    void *arg)
{
	struct ogroup	*g = arg;
	struct owners	*o = g->o;
	struct oref	*r;
	const cJSON	*md;
	const char	*ns, *name;
	char		 rkey[600], tkey[600];
	int		 has;

	(void)inf;
	if (ev == INFORMER_SYNCED || obj == NULL)
		return;
	md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	ns = as_json_str(md, "namespace");
	name = as_json_str(md, "name");
	if (ns == NULL || name == NULL)
		return;
	snprintf(rkey, sizeof rkey, "%d/%s/%s", g->res, ns, name);
	r = AS_HASH_ITEM(as_hash_find_str(&o->refs, rkey), struct oref,
	    link);
	has = ev != INFORMER_DELETED &&
	    owners_target_key(obj, tkey, sizeof tkey) == 0;
	if (r == NULL && !has)
		return;
	if (r == NULL) {
		r = xcalloc(1, sizeof *r);
		r->key = xstrdup(rkey);
		r->res = g->res;
		as_hash_insert_str(&o->refs, &r->link);
	}
	oref_point(o, r, has ? tkey : NULL, name);
	if (!has) {
		as_hash_remove(&o->refs, &r->link);
		free(r->key);
		free(r);
	}
}

/* ---- groups ---- */

static struct ogroup *
ogroup_get(struct owners *o, int res, const char *ns)
{
	struct informer_options io;
	struct ogroup	*g;
	char		*key, *path, err[256];

	key = xasprintf("%d/%s", res, o->cluster_wide ? "" : ns);
	g = AS_HASH_ITEM(as_hash_find_str(&o->groups, key), struct ogroup,
	    link);
	if (g != NULL) {
		free(key);
		g->users++;
		return (g);
	}
	g = xcalloc(1, sizeof *g);
	g->key = key;
	g->o = o;
	g->res = res;
	g->users = 1;
	as_hash_insert_str(&o->groups, &g->link);
	if (o->cluster_wide)
		path = xasprintf("%s/%s", owners_res[res].prefix,
		    owners_res[res].resource);
	else
		path = xasprintf("%s/namespaces/%s/%s", owners_res[res].prefix,
		    ns, owners_res[res].resource);
	memset(&io, 0, sizeof io);
	io.path = path;
	io.transform = owners_slim;
	io.compact = 1;
	/* Not installed (KEDA) or not granted: none, asked again later. */
	io.backoff_cap = 60;
	g->inf = o->ops.informer_new(o->kc, &io, ogroup_event, g, err,
	    sizeof err);
	if (g->inf == NULL)
		log_warn("owners", "cannot watch %s: %s", path, err);
	free(path);
	return (g);
}

/* One user fewer; the informer goes with the last (its objects too). */
static void
ogroup_put(struct owners *o, struct ogroup *g)
{
	struct as_hash_entry *l, *next;
	struct oref	*r;
	char		 prefix[300];
	size_t		 n;

	if (g == NULL || --g->users > 0)
		return;
	/* Its refs: "res/" then its namespace, or every one cluster-wide. */
	n = (size_t)snprintf(prefix, sizeof prefix, "%s", g->key);
	for (l = as_hash_first(&o->refs); l != NULL; l = next) {
		next = as_hash_next(&o->refs, l);
		r = AS_HASH_ITEM(l, struct oref, link);
		if (strncmp(r->key, prefix, n) != 0 ||
		    (!o->cluster_wide && r->key[n] != '/'))
			continue;
		oref_point(o, r, NULL, "");
		as_hash_remove(&o->refs, &r->link);
		free(r->key);
		free(r);
	}
	as_hash_remove(&o->groups, &g->link);
	ogroup_free(g);
}

/* ---- subscriptions ---- */

struct owner_sub *
owners_subscribe(struct owners *o, const char *kind, const char *ns,
    const char *name, owners_fn *fn, void *arg)
{
	struct owner_sub *s;
	char		 key[600];
	int		 i;

	if (o == NULL)
		return (NULL);
	snprintf(key, sizeof key, "%s/%s/%s", kind, ns, name);
	s = xcalloc(1, sizeof *s);
	s->fn = fn;
	s->arg = arg;
	for (i = 0; i < OWNERS_NRES; i++)
		s->g[i] = ogroup_get(o, i, ns);
	s->t = owned_get(o, key, 1);
	s->next = s->t->subs;
	if (s->next != NULL)
		s->next->prev = s;
	s->t->subs = s;
	return (s);
}

void
owners_unsubscribe(struct owners *o, struct owner_sub *s)
{
	struct owned	*t;
	int		 i;

	if (o == NULL || s == NULL)
		return;
	t = s->t;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		t->subs = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	owned_release(o, t);
	for (i = 0; i < OWNERS_NRES; i++)
		ogroup_put(o, s->g[i]);
	free(s);
}

int
owners_get(const struct owner_sub *s, char *who, size_t len, int *known)
{
	struct informer_stats st;
	const struct ogroup *g;
	int		 i;

	*known = 1;
	if (len > 0)
		*who = '\0';
	if (s == NULL)
		return (0);
	for (i = 0; i < OWNERS_NRES; i++) {
		g = s->g[i];
		if (g == NULL || g->inf == NULL ||
		    g->o->ops.informer_synced(g->inf))
			continue;
		g->o->ops.informer_stats(g->inf, &st);
		if (st.errors == 0)
			*known = 0;	/* its first LIST is under way */
	}
	for (i = 0; i < OWNERS_NRES; i++)
		if (s->t->n[i] > 0) {
			snprintf(who, len, "%s %s", owners_res[i].kind,
			    s->t->name[i]);
			return (1);
		}
	return (0);
}
