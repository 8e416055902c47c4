/*
 * owners.c: HPAs and ScaledObjects by the target they scale (owners.h).
 *
 * Design.  Three tables, all rt/hash.h (groups and owned kept by
 * informer_group.h, shared with targets.c):
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
#include "informer_group.h"
#include "owners.h"

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
	struct informer_group	 ig;	/* first: users are subscriptions */
	struct owners		*o;
	int			 res;
};

struct oref {
	struct as_hash_entry	 link;	/* o->refs */
	char			*key;	/* r/ns/name */
	char			*target;	/* Kind/ns/name */
	const char		*name;	/* in key */
	struct oref		*prev, *next;	/* its target's refs[res] */
	int			 res;
};

struct owner_sub {
	struct informer_sub	 base;	/* first: t's list */
	struct owned		*t;
	struct ogroup		*g[OWNERS_NRES];
	owners_fn		*fn;
	void			*arg;
};

struct owned {
	struct informer_key	 k;	/* first: Kind/ns/name, subs */
	size_t			 n[OWNERS_NRES];
	/*
	 * The objects naming it, of each resource: the first is the one
	 * reported, so a deleted one is never named while another stays.
	 */
	struct oref		*refs[OWNERS_NRES];
};

struct owners {
	struct informer_groups	 groups;
	struct as_hash		 refs;
	struct informer_index	 owned;
};

static void	 ogroup_event(struct informer *, enum informer_event,
		    const cJSON *, void *);

struct owners *
owners_new(struct k8s_client *kc, const struct owners_options *opts)
{
	struct owners	*o;

	o = xcalloc(1, sizeof *o);
	informer_groups_init(&o->groups, kc, opts != NULL ? opts->ops : NULL,
	    opts != NULL && opts->cluster_wide);
	as_hash_init_str(&o->refs, 0, AS_HASH_SHRINK,
	    AS_HASH_KEYOFF(struct oref, link, key));
	informer_index_init(&o->owned, NULL);
	return (o);
}

/* r, out of o->refs (its target NULL unless o goes too). */
static void
oref_free(struct oref *r)
{
	free(r->key);
	free(r->target);
	free(r);
}

void
owners_free(struct owners *o)
{
	struct as_hash_entry *l, *next;

	if (o == NULL)
		return;
	informer_groups_fini(&o->groups);
	for (l = as_hash_first(&o->refs); l != NULL; l = next) {
		next = as_hash_next(&o->refs, l);
		oref_free(AS_HASH_ITEM(l, struct oref, link));
	}
	as_hash_fini(&o->refs);
	informer_index_fini(&o->owned);
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
	return ((struct owned *)informer_index_get(&o->owned, key,
	    make ? sizeof(struct owned) : 0, NULL));
}

/* Drops t once nothing names it and nobody follows it. */
static void
owned_release(struct owners *o, struct owned *t)
{
	size_t	 i;

	for (i = 0; i < OWNERS_NRES; i++)
		if (t->n[i] > 0)
			return;
	if (t->k.subs != NULL)
		return;
	informer_index_drop(&o->owned, &t->k);
}

/*
 * Its subscribers are told.  A callback must not unsubscribe (owners.h
 * callers evaluate their pool); the next is read first all the same.
 */
static void
owned_notify(struct owned *t)
{
	struct informer_sub *s, *next;

	for (s = t->k.subs; s != NULL; s = next) {
		next = s->next;
		((struct owner_sub *)s)->fn(((struct owner_sub *)s)->arg);
	}
}

/* r names target key (NULL: nothing now); counts and lists move. */
static void
oref_point(struct owners *o, struct oref *r, const char *key)
{
	struct owned	*t;
	struct oref	*h;

	if (r->target != NULL && key != NULL && strcmp(r->target, key) == 0)
		return;
	if (r->target != NULL &&
	    (t = owned_get(o, r->target, 0)) != NULL) {
		t->n[r->res]--;
		if (r->prev != NULL)
			r->prev->next = r->next;
		else
			t->refs[r->res] = r->next;
		if (r->next != NULL)
			r->next->prev = r->prev;
		r->prev = r->next = NULL;
		owned_notify(t);
		owned_release(o, t);
	}
	free(r->target);
	r->target = key != NULL ? xstrdup(key) : NULL;
	if (key == NULL)
		return;
	t = owned_get(o, key, 1);
	t->n[r->res]++;
	/* After the first: the one named stays named while it is there. */
	if ((h = t->refs[r->res]) == NULL)
		t->refs[r->res] = r;
	else {
		r->prev = h;
		r->next = h->next;
		if (h->next != NULL)
			h->next->prev = r;
		h->next = r;
	}
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
		r->name = r->key + (strlen(rkey) - strlen(name));
		r->res = g->res;
		as_hash_insert_str(&o->refs, &r->link);
	}
	oref_point(o, r, has ? tkey : NULL);
	if (!has) {
		as_hash_remove(&o->refs, &r->link);
		oref_free(r);
	}
}

/* ---- groups ---- */

static struct ogroup *
ogroup_get(struct owners *o, int res, const char *ns)
{
	struct informer_options io;
	struct ogroup	*g;
	char		 tag[16], err[256];

	snprintf(tag, sizeof tag, "%d", res);
	g = (struct ogroup *)informer_groups_use(&o->groups, tag, ns);
	if (g != NULL)
		return (g);
	memset(&io, 0, sizeof io);
	io.transform = owners_slim;
	io.compact = 1;
	/* Not installed (KEDA) or not granted: none, asked again later. */
	io.backoff_cap = 60;
	g = (struct ogroup *)informer_groups_add(&o->groups, sizeof *g, tag,
	    ns, owners_res[res].prefix, owners_res[res].resource, &io,
	    ogroup_event, err, sizeof err);
	g->o = o;
	g->res = res;
	if (g->ig.inf == NULL)
		log_warn("owners", "cannot watch %s: %s", g->ig.path, err);
	return (g);
}

/* One user fewer; the informer goes with the last (its objects too). */
static void
ogroup_put(struct owners *o, struct ogroup *g)
{
	struct as_hash_entry *l, *next;
	struct oref	*r;
	size_t		 n;

	if (g == NULL || !informer_groups_put(&o->groups, &g->ig))
		return;
	/* Its refs: "res/" then its namespace, or every one cluster-wide. */
	n = strlen(g->ig.key);
	for (l = as_hash_first(&o->refs); l != NULL; l = next) {
		next = as_hash_next(&o->refs, l);
		r = AS_HASH_ITEM(l, struct oref, link);
		if (strncmp(r->key, g->ig.key, n) != 0 ||
		    (!o->groups.cluster_wide && r->key[n] != '/'))
			continue;
		oref_point(o, r, NULL);
		as_hash_remove(&o->refs, &r->link);
		oref_free(r);
	}
	informer_groups_free(&o->groups, &g->ig);
}

/* ---- subscriptions ---- */

struct owner_sub *
owners_subscribe(struct owners *o, const char *kind, const char *ns,
    const char *name, owners_fn *fn, void *arg)
{
	struct owner_sub *s;
	struct owned	*t;
	char		 key[600];
	int		 i;

	if (o == NULL)
		return (NULL);
	snprintf(key, sizeof key, "%s/%s/%s", kind, ns, name);
	t = owned_get(o, key, 1);
	s = (struct owner_sub *)informer_key_subscribe(&t->k, sizeof *s);
	s->t = t;
	s->fn = fn;
	s->arg = arg;
	for (i = 0; i < OWNERS_NRES; i++)
		s->g[i] = ogroup_get(o, i, ns);
	return (s);
}

void
owners_unsubscribe(struct owners *o, struct owner_sub *s)
{
	struct ogroup	*g[OWNERS_NRES];
	struct owned	*t;
	int		 i;

	if (o == NULL || s == NULL)
		return;
	t = s->t;
	memcpy(g, s->g, sizeof g);
	(void)informer_key_unsubscribe(&t->k, &s->base);
	owned_release(o, t);
	for (i = 0; i < OWNERS_NRES; i++)
		ogroup_put(o, g[i]);
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
		if (g == NULL || g->ig.inf == NULL ||
		    informer_group_synced(&g->o->groups, &g->ig))
			continue;
		g->o->groups.ops.informer_stats(g->ig.inf, &st);
		if (st.errors == 0)
			*known = 0;	/* its first LIST is under way */
	}
	for (i = 0; i < OWNERS_NRES; i++)
		if (s->t->refs[i] != NULL) {
			snprintf(who, len, "%s %s", owners_res[i].kind,
			    s->t->refs[i]->name);
			return (1);
		}
	return (0);
}
