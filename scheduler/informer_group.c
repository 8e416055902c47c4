/*
 * informer_group.c: informers in groups, keys with subscriptions
 * (informer_group.h).
 *
 * Design.  Two tables, both rt/hash.h, each record a base the caller's
 * struct embeds first: groups keyed "tag/ns" ("tag/" cluster-wide) with
 * a count of users, and keys with a doubly linked list of subscriptions
 * (O(1) in and out).  Nothing here walks a table but the _fini()s; what
 * an informer event means is the caller's (targets.c, owners.c).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/k8s/informer.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/hash.h"
#include "informer_group.h"

static const struct informer_ops informer_ops_real = {
	.informer_new = informer_new,
	.informer_free = informer_free,
	.informer_get = informer_get,
	.informer_synced = informer_synced,
	.informer_stats = informer_get_stats,
};

/* ---- groups ---- */

void
informer_groups_init(struct informer_groups *ig, struct k8s_client *kc,
    const struct informer_ops *ops, int cluster_wide)
{
	memset(ig, 0, sizeof *ig);
	ig->kc = kc;
	ig->ops = ops != NULL ? *ops : informer_ops_real;
	ig->cluster_wide = cluster_wide;
	as_hash_init_str(&ig->groups, 0, 0,
	    AS_HASH_KEYOFF(struct informer_group, link, key));
}

void
informer_groups_free(struct informer_groups *ig, struct informer_group *g)
{
	if (g == NULL)
		return;
	if (g->inf != NULL)
		ig->ops.informer_free(g->inf);
	free(g->key);
	free(g->ns);
	free(g->path);
	free(g);
}

void
informer_groups_fini(struct informer_groups *ig)
{
	struct as_hash_entry *l, *next;

	for (l = as_hash_first(&ig->groups); l != NULL; l = next) {
		next = as_hash_next(&ig->groups, l);
		informer_groups_free(ig,
		    AS_HASH_ITEM(l, struct informer_group, link));
	}
	as_hash_fini(&ig->groups);
}

struct informer_group *
informer_groups_use(struct informer_groups *ig, const char *tag,
    const char *ns)
{
	struct informer_group *g;
	char		*key;

	key = xasprintf("%s/%s", tag, ig->cluster_wide ? "" : ns);
	g = AS_HASH_ITEM(as_hash_find_str(&ig->groups, key),
	    struct informer_group, link);
	free(key);
	if (g != NULL)
		g->users++;
	return (g);
}

struct informer_group *
informer_groups_add(struct informer_groups *ig, size_t size,
    const char *tag, const char *ns, const char *prefix,
    const char *resource, struct informer_options *io, informer_fn *fn,
    char *err, size_t errlen)
{
	struct informer_group *g;

	g = xcalloc(1, size < sizeof *g ? sizeof *g : size);
	g->key = xasprintf("%s/%s", tag, ig->cluster_wide ? "" : ns);
	g->users = 1;
	if (!ig->cluster_wide) {
		g->ns = xstrdup(ns);
		g->path = xasprintf("%s/namespaces/%s/%s", prefix, ns,
		    resource);
	} else
		g->path = xasprintf("%s/%s", prefix, resource);
	as_hash_insert_str(&ig->groups, &g->link);
	io->path = g->path;
	g->inf = ig->ops.informer_new(ig->kc, io, fn, g, err, errlen);
	return (g);
}

int
informer_groups_put(struct informer_groups *ig, struct informer_group *g)
{
	if (g == NULL || --g->users > 0)
		return (0);
	as_hash_remove(&ig->groups, &g->link);
	return (1);
}

int
informer_group_synced(const struct informer_groups *ig,
    const struct informer_group *g)
{
	return (g->inf != NULL && ig->ops.informer_synced(g->inf));
}

/* ---- keys ---- */

void
informer_index_init(struct informer_index *ix,
    void (*clear)(struct informer_key *))
{
	memset(ix, 0, sizeof *ix);
	ix->clear = clear;
	as_hash_init_str(&ix->keys, 0, AS_HASH_SHRINK,
	    AS_HASH_KEYOFF(struct informer_key, link, key));
}

static void
informer_key_free(struct informer_index *ix, struct informer_key *k)
{
	struct informer_sub *s, *next;

	for (s = k->subs; s != NULL; s = next) {
		next = s->next;
		free(s);
	}
	if (ix->clear != NULL)
		ix->clear(k);
	free(k->key);
	free(k);
}

void
informer_index_fini(struct informer_index *ix)
{
	struct as_hash_entry *l, *next;

	/* The records go; the table is not changed while walked. */
	for (l = as_hash_first(&ix->keys); l != NULL; l = next) {
		next = as_hash_next(&ix->keys, l);
		informer_key_free(ix,
		    AS_HASH_ITEM(l, struct informer_key, link));
	}
	as_hash_fini(&ix->keys);
}

struct informer_key *
informer_index_get(struct informer_index *ix, const char *key, size_t size,
    int *made)
{
	struct informer_key *k;

	if (made != NULL)
		*made = 0;
	k = AS_HASH_ITEM(as_hash_find_str(&ix->keys, key),
	    struct informer_key, link);
	if (k != NULL || size == 0)
		return (k);
	k = xcalloc(1, size < sizeof *k ? sizeof *k : size);
	k->key = xstrdup(key);
	as_hash_insert_str(&ix->keys, &k->link);
	if (made != NULL)
		*made = 1;
	return (k);
}

void
informer_index_drop(struct informer_index *ix, struct informer_key *k)
{
	as_hash_remove(&ix->keys, &k->link);
	informer_key_free(ix, k);
}

size_t
informer_index_count(const struct informer_index *ix)
{
	return (as_hash_count(&ix->keys));
}

struct informer_sub *
informer_key_subscribe(struct informer_key *k, size_t size)
{
	struct informer_sub *s;

	s = xcalloc(1, size < sizeof *s ? sizeof *s : size);
	s->next = k->subs;
	if (s->next != NULL)
		s->next->prev = s;
	k->subs = s;
	return (s);
}

int
informer_key_unsubscribe(struct informer_key *k, struct informer_sub *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		k->subs = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s);
	return (k->subs == NULL);
}
