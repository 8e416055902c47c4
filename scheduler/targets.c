/*
 * targets.c: the scale pools' targets, watched (targets.h).
 *
 * Design.  Two tables, kept by informer_group.h (shared with owners.c):
 *
 *	groups	 one per informer, keyed "Kind/namespace" ("Kind/" for a
 *		 cluster-wide one), with the list of its targets (its users)
 *	targets	 one per (kind, namespace, name) somebody subscribed to,
 *		 keyed "Kind/namespace/name", with its last state and the
 *		 list of its subscriptions (two pools on one target: two)
 *
 * An informer event costs one lookup of its object's key in targets: an
 * object nobody subscribed to (another Deployment of the namespace, or of
 * the cluster) is dropped there.  A change of the replicas, of existence
 * or of the listed flag calls the target's subscribers; nothing else (an
 * annotation, a label) calls anyone.  The end of a (re-)list (SYNCED)
 * walks that group's targets once, so a target absent from the list turns
 * "not found"; no event walks the pools or all targets.
 *
 * Which informers.  The rule: one cluster-wide informer per kind when the
 * daemon watches AgentPools in all namespaces (CRD mode without
 * --watch-namespace: pools may come from any namespace, and the chart then
 * runs with a ClusterRole, rbac.namespaced false, which grants list and
 * watch on the targets everywhere anyway); otherwise one per (kind,
 * namespace) of the pools (a config file, or --watch-namespace, whose
 * namespaced Roles grant list and watch in those namespaces only).  One
 * watch per kind is what makes 10,000 pools over 1,000 namespaces cheap;
 * its price is caching every object of that kind in the cluster, a few
 * hundred bytes each after targets_slim().
 *
 * Memory.  The informers cache objects through targets_slim() (the
 * informer's transform hook): a Deployment of several kilobytes becomes its
 * name, namespace, resourceVersion, uid, deletionTimestamp and three
 * replica counts.
 */
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/k8s/informer.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/hash.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/rt/log.h"
#include "informer_group.h"
#include "targets.h"

/* readyz: at most this many informers named, then a count. */
#define TARGETS_READYZ_LINES	5

struct tgroup;
struct target;

struct target_sub {
	struct informer_sub	 base;	/* first: t's list */
	struct target		*t;
	target_fn		*fn;
	void			*arg;
};

struct target {
	struct informer_key	 k;	/* first: Kind/ns/name, subs */
	char			*ns;
	char			*name;
	struct tgroup		*g;
	struct target		*prev, *next;	/* g's targets */
	struct target_state	 st;
};

struct tgroup {
	struct informer_group	 ig;	/* first: users are its targets */
	const char		*kind;	/* static: k8s_kind_list() */
	struct targets		*ts;
	struct target		*targets;
	int			 synced;
};

struct targets {
	struct informer_groups	 groups;
	struct informer_index	 targets;
	size_t			 unsynced;	/* groups not listed yet */
	size_t			 nsubs;
	uint64_t		 events;
	uint64_t		 notified;
};

static void	 tgroup_event(struct informer *, enum informer_event,
		    const cJSON *, void *);
static void	 target_set(struct targets *, struct target *,
		    const struct target_state *);
static void	 target_refresh(struct target *);
static void	 target_clear(struct informer_key *);

struct targets *
targets_new(struct k8s_client *kc, const struct targets_options *o)
{
	struct targets	*ts;

	ts = xcalloc(1, sizeof *ts);
	informer_groups_init(&ts->groups, kc, o != NULL ? o->ops : NULL,
	    o != NULL && o->cluster_wide);
	informer_index_init(&ts->targets, target_clear);
	return (ts);
}

/* What a target hangs on its record (informer_index clear). */
static void
target_clear(struct informer_key *k)
{
	struct target	*t = (struct target *)k;

	free(t->ns);
	free(t->name);
}

void
targets_free(struct targets *ts)
{
	if (ts == NULL)
		return;
	informer_groups_fini(&ts->groups);
	informer_index_fini(&ts->targets);
	free(ts);
}

/* ---- objects ---- */

/* Removes every child of o whose name is not in keep (NULL-ended). */
void
targets_slim(cJSON *obj, void *arg)
{
	static const char *const top[] = { "metadata", "spec", "status",
	    NULL };
	static const char *const md[] = { "name", "namespace",
	    "resourceVersion", "uid", "deletionTimestamp", NULL };
	static const char *const spec[] = { "replicas", NULL };
	static const char *const status[] = { "replicas", "readyReplicas",
	    NULL };

	(void)arg;
	as_json_keep(obj, top);
	as_json_keep(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), md);
	as_json_keep(cJSON_GetObjectItemCaseSensitive(obj, "spec"), spec);
	as_json_keep(cJSON_GetObjectItemCaseSensitive(obj, "status"), status);
}

/*
 * o.key as a replica count into *out: absent is 0 (status.replicas and
 * readyReplicas are omitted at zero; a /scale without spec.replicas means
 * 0 too, k8s/scale.c); -1 with err when not an int32 count.
 */
static int
replicas_at(const cJSON *o, const char *what, const char *key, long *out,
    char *err, size_t errlen)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, key);
	double		 d;

	*out = 0;
	if (v == NULL || cJSON_IsNull(v))
		return (0);
	d = cJSON_IsNumber(v) ? v->valuedouble : -1;
	if (!isfinite(d) || d < 0 || d > INT32_MAX || d != floor(d)) {
		snprintf(err, errlen, "%s.%s is not a replica count", what,
		    key);
		return (-1);
	}
	*out = (long)d;
	return (0);
}

/* "deployments.apps" for Deployment: what a 404 of the API server names. */
static void
kind_resource_name(const char *kind, char *out, size_t len)
{
	const char	*prefix = "", *resource = "?", *g, *e;

	(void)k8s_kind_resource(kind, &prefix, &resource);
	g = strncmp(prefix, "/apis/", 6) == 0 ? prefix + 6 : "";
	e = strchr(g, '/');
	snprintf(out, len, "%s%s%.*s", resource, *g != '\0' ? "." : "",
	    (int)(e != NULL ? (size_t)(e - g) : strlen(g)), g);
}

void
targets_parse(const cJSON *obj, const char *kind, const char *name,
    struct target_state *st)
{
	const cJSON	*md, *spec, *status, *rv;
	char		 res[128];

	memset(st, 0, sizeof *st);
	st->listed = 1;
	if (obj == NULL) {
		kind_resource_name(kind, res, sizeof res);
		snprintf(st->err, sizeof st->err, "%s \"%s\" not found", res,
		    name);
		return;
	}
	st->found = 1;
	md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	rv = cJSON_GetObjectItemCaseSensitive(md, "resourceVersion");
	if (cJSON_IsString(rv) && strlen(rv->valuestring) < sizeof st->rv)
		as_strlcpy(st->rv, rv->valuestring, sizeof st->rv);
	spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
	status = cJSON_GetObjectItemCaseSensitive(obj, "status");
	if (replicas_at(spec, "spec", "replicas", &st->spec_replicas, st->err,
	    sizeof st->err) != 0 ||
	    replicas_at(status, "status", "replicas", &st->status_replicas,
	    st->err, sizeof st->err) != 0 ||
	    replicas_at(status, "status", "readyReplicas",
	    &st->ready_replicas, st->err, sizeof st->err) != 0)
		return;
}

int
targets_rv_older(const char *a, const char *b)
{
	size_t	 la, lb, k;

	if (a == NULL || b == NULL || *a == '\0' || *b == '\0')
		return (0);
	la = strlen(a);
	lb = strlen(b);
	for (k = 0; k < la; k++)
		if (!isdigit((unsigned char)a[k]))
			return (0);
	for (k = 0; k < lb; k++)
		if (!isdigit((unsigned char)b[k]))
			return (0);
	/* Decimal, no leading zeros from a server: longer is larger. */
	while (la > 1 && *a == '0')
		a++, la--;
	while (lb > 1 && *b == '0')
		b++, lb--;
	if (la != lb)
		return (la < lb ? -1 : 0);
	return (strcmp(a, b) < 0 ? -1 : 0);
}

/* ---- groups ---- */

static struct tgroup *
tgroup_get(struct targets *ts, const char *kind, const char *ns)
{
	struct informer_options io;
	struct tgroup	*g;
	const char	*prefix, *resource, *const *kinds;
	char		 err[256];

	g = (struct tgroup *)informer_groups_use(&ts->groups, kind, ns);
	if (g != NULL)
		return (g);
	if (k8s_kind_resource(kind, &prefix, &resource) != 0)
		return (NULL);
	memset(&io, 0, sizeof io);
	io.transform = targets_slim;
	io.compact = 1;		/* printed: a few hundred bytes each */
	g = (struct tgroup *)informer_groups_add(&ts->groups, sizeof *g, kind,
	    ns, prefix, resource, &io, tgroup_event, err, sizeof err);
	g->ts = ts;
	for (kinds = k8s_kind_list(); *kinds != NULL; kinds++)
		if (strcmp(*kinds, kind) == 0)
			g->kind = *kinds;
	ts->unsynced++;
	if (g->ig.inf == NULL)
		log_error("targets", "cannot watch %s: %s", g->ig.path, err);
	else
		log_info("targets", "watching %s for the replicas of %s "
		    "targets", g->ig.path, kind);
	return (g);
}

/* One target fewer; the watch ends with the last. */
static void
tgroup_put(struct targets *ts, struct tgroup *g)
{
	if (!informer_groups_put(&ts->groups, &g->ig))
		return;
	if (!g->synced)
		ts->unsynced--;
	log_info("targets", "no target left in %s %s: its watch ends",
	    g->kind, g->ig.ns != NULL ? g->ig.ns : "(all namespaces)");
	informer_groups_free(&ts->groups, &g->ig);
}

/* The target the object of a group's informer is, if anyone wants it. */
static struct target *
tgroup_target(struct tgroup *g, const cJSON *obj)
{
	const cJSON	*md, *ns, *name;
	char		*key;
	struct target	*t;

	md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	ns = cJSON_GetObjectItemCaseSensitive(md, "namespace");
	name = cJSON_GetObjectItemCaseSensitive(md, "name");
	if (!cJSON_IsString(ns) || !cJSON_IsString(name))
		return (NULL);
	key = xasprintf("%s/%s/%s", g->kind, ns->valuestring,
	    name->valuestring);
	t = (struct target *)informer_index_get(&g->ts->targets, key, 0,
	    NULL);
	free(key);
	return (t);
}

static void
tgroup_event(struct informer *inf, enum informer_event ev, const cJSON *obj,
    void *arg)
{
	struct tgroup	*g = arg;
	struct targets	*ts = g->ts;
	struct target_state st;
	struct target	*t, *next;

	(void)inf;
	if (ev == INFORMER_SYNCED) {
		/* After a (re-)list: the absent ones are not found. */
		if (!g->synced) {
			g->synced = 1;
			ts->unsynced--;
		}
		for (t = g->targets; t != NULL; t = next) {
			next = t->next;
			target_refresh(t);
		}
		return;
	}
	ts->events++;
	if ((t = tgroup_target(g, obj)) == NULL)
		return;
	targets_parse(ev == INFORMER_DELETED ? NULL : obj, g->kind, t->name,
	    &st);
	target_set(ts, t, &st);
}

/* ---- targets ---- */

/* The state from the group's cache, if it has listed. */
static void
target_refresh(struct target *t)
{
	struct tgroup	*g = t->g;
	struct target_state st;

	if (!informer_group_synced(&g->ts->groups, &g->ig))
		return;
	targets_parse(g->ts->groups.ops.informer_get(g->ig.inf, t->ns,
	    t->name), g->kind, t->name, &st);
	target_set(g->ts, t, &st);
}

/* Takes st; its subscribers hear of what they read changing. */
static void
target_set(struct targets *ts, struct target *t, const struct target_state *st)
{
	const struct target_state *o = &t->st;
	struct informer_sub *s, *next;
	struct target_sub *ts_s;
	int		 changed;

	changed = o->listed != st->listed || o->found != st->found ||
	    o->spec_replicas != st->spec_replicas ||
	    o->status_replicas != st->status_replicas ||
	    o->ready_replicas != st->ready_replicas ||
	    strcmp(o->err, st->err) != 0;
	t->st = *st;
	if (!changed)
		return;
	for (s = t->k.subs; s != NULL; s = next) {
		next = s->next;
		ts->notified++;
		ts_s = (struct target_sub *)s;
		ts_s->fn(&t->st, ts_s->arg);
	}
}

struct target_sub *
targets_subscribe(struct targets *ts, const char *kind, const char *ns,
    const char *name, target_fn *fn, void *arg)
{
	struct target_sub *s;
	struct target	*t;
	struct tgroup	*g;
	char		*key;

	if (ts == NULL || fn == NULL || ns == NULL || name == NULL ||
	    k8s_kind_resource(kind, NULL, NULL) != 0)
		return (NULL);
	key = xasprintf("%s/%s/%s", kind, ns, name);
	t = (struct target *)informer_index_get(&ts->targets, key, 0, NULL);
	if (t == NULL) {
		if ((g = tgroup_get(ts, kind, ns)) == NULL) {
			free(key);
			return (NULL);
		}
		t = (struct target *)informer_index_get(&ts->targets, key,
		    sizeof *t, NULL);
		t->ns = xstrdup(ns);
		t->name = xstrdup(name);
		t->g = g;
		t->next = g->targets;
		if (g->targets != NULL)
			g->targets->prev = t;
		g->targets = t;
		/* Known at once if the informer has listed already. */
		if (informer_group_synced(&ts->groups, &g->ig))
			targets_parse(ts->groups.ops.informer_get(g->ig.inf,
			    ns, name), g->kind, name, &t->st);
	}
	free(key);
	s = (struct target_sub *)informer_key_subscribe(&t->k, sizeof *s);
	s->t = t;
	s->fn = fn;
	s->arg = arg;
	ts->nsubs++;
	return (s);
}

void
targets_unsubscribe(struct targets *ts, struct target_sub *s)
{
	struct target	*t;
	struct tgroup	*g;

	if (ts == NULL || s == NULL)
		return;
	t = s->t;
	ts->nsubs--;
	if (!informer_key_unsubscribe(&t->k, &s->base))
		return;
	g = t->g;
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		g->targets = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	informer_index_drop(&ts->targets, &t->k);
	tgroup_put(ts, g);
}

void
targets_get(const struct target_sub *s, struct target_state *st)
{
	if (s == NULL)
		memset(st, 0, sizeof *st);
	else
		*st = s->t->st;
}

int
targets_synced(const struct targets *ts, struct as_buf *b)
{
	const struct as_hash_entry *l;
	const struct tgroup *g;
	struct informer_stats is;
	size_t		 n = 0;

	if (ts == NULL || ts->unsynced == 0)
		return (1);
	if (b == NULL)
		return (0);
	for (l = as_hash_first(&ts->groups.groups); l != NULL;
	    l = as_hash_next(&ts->groups.groups, l)) {
		g = (struct tgroup *)AS_HASH_ITEM(l, struct informer_group,
		    link);
		if (g->synced || n++ >= TARGETS_READYZ_LINES)
			continue;
		memset(&is, 0, sizeof is);
		if (g->ig.inf != NULL)
			ts->groups.ops.informer_stats(g->ig.inf, &is);
		as_buf_printf(b, "%ss of %s not listed yet%s\n", g->kind,
		    g->ig.ns != NULL ? g->ig.ns : "all namespaces",
		    g->ig.inf == NULL ?
		    ": cannot watch them" : is.failing > 0 ?
		    ": listing fails (see the logs)" : "");
	}
	if (n > TARGETS_READYZ_LINES)
		as_buf_printf(b, "and %zu more target informers not listed "
		    "yet\n", n - TARGETS_READYZ_LINES);
	return (0);
}

void
targets_get_stats(const struct targets *ts, struct targets_stats *st)
{
	memset(st, 0, sizeof *st);
	if (ts == NULL)
		return;
	st->informers = as_hash_count(&ts->groups.groups);
	st->targets = informer_index_count(&ts->targets);
	st->subscriptions = ts->nsubs;
	st->events = ts->events;
	st->notified = ts->notified;
}
