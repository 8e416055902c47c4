/*
 * informer_group.h: the bookkeeping targets.c and owners.c share (issue
 * 18): list + watch informers kept in groups, one per (tag, namespace),
 * or one per tag for the whole cluster, made with their first user and
 * freed with the last; and an index of keys, each with the list of its
 * subscriptions.  The tag names what is watched ("Deployment", or "0" for
 * owners.c's HPAs); the caller says what a user is (a target for
 * targets.c, a subscription for owners.c).
 *
 * Both the group and the key record are bases: the caller's struct
 * embeds struct informer_group or struct informer_key as its first member
 * and names its size when one is made, so one allocation holds both and
 * these functions free it.  A subscription likewise embeds struct
 * informer_sub first; the caller keeps its callback, whose type is its
 * own.
 *
 * Ownership: the tables own their groups, records and the subscriptions
 * still listed; strings given are copied.
 */
#ifndef AGENTSCALER_INFORMER_GROUP_H
#define AGENTSCALER_INFORMER_GROUP_H

#include <stddef.h>

#include "agentscaler/k8s/informer.h"
#include "agentscaler/rt/hash.h"

struct cJSON;
struct k8s_client;

/* The informer functions, replaceable by tests (NULL: the real ones). */
struct informer_ops {
	struct informer	*(*informer_new)(struct k8s_client *,
			    const struct informer_options *, informer_fn *,
			    void *, char *, size_t);
	void		 (*informer_free)(struct informer *);
	const struct cJSON *(*informer_get)(const struct informer *,
			    const char *, const char *);
	int		 (*informer_synced)(const struct informer *);
	void		 (*informer_stats)(const struct informer *,
			    struct informer_stats *);
};

/* ---- groups ---- */

struct informer_group {
	struct as_hash_entry	 link;	/* the table's */
	char			*key;	/* "tag/ns", "tag/" cluster-wide */
	char			*ns;	/* NULL: cluster-wide */
	char			*path;	/* what its informer lists */
	struct informer		*inf;	/* NULL: could not be made */
	size_t			 users;
};

struct informer_groups {
	struct k8s_client	*kc;
	struct informer_ops	 ops;
	int			 cluster_wide;
	struct as_hash		 groups;
};

/* ops NULL: the real informers (k8s/informer.h). */
void	 informer_groups_init(struct informer_groups *, struct k8s_client *,
	    const struct informer_ops *, int cluster_wide);
/* Frees every group left and its informer. */
void	 informer_groups_fini(struct informer_groups *);

/*
 * The group of (tag, ns) (ns ignored cluster-wide) with one user more, or
 * NULL when there is none yet.
 */
struct informer_group *informer_groups_use(struct informer_groups *,
	    const char *tag, const char *ns);

/*
 * Makes the group of (tag, ns), size bytes (the caller's struct whose
 * first member is the struct informer_group, zeroed), with one user, and
 * its informer on prefix/resource, or prefix/namespaces/ns/resource: *io
 * as given, path set here, events to fn with the caller's struct as arg.
 * When the informer cannot be made, g->inf is NULL and err says why.
 * Never NULL.
 */
struct informer_group *informer_groups_add(struct informer_groups *,
	    size_t size, const char *tag, const char *ns, const char *prefix,
	    const char *resource, struct informer_options *io, informer_fn *,
	    char *err, size_t errlen);

/*
 * One user fewer.  0 while some are left; 1 after the last, with g out of
 * the table (the caller then cleans what it hangs on g, and frees it with
 * informer_groups_free()).
 */
int	 informer_groups_put(struct informer_groups *,
	    struct informer_group *);
/* Frees g, out of the table, and its informer. */
void	 informer_groups_free(struct informer_groups *,
	    struct informer_group *);
/* 1 when g's informer exists and has listed. */
int	 informer_group_synced(const struct informer_groups *,
	    const struct informer_group *);

/* ---- keys and their subscriptions ---- */

struct informer_sub {
	struct informer_sub	*prev, *next;
};

struct informer_key {
	struct as_hash_entry	 link;	/* the index's */
	char			*key;
	struct informer_sub	*subs;
};

/*
 * clear(k), when not NULL, frees what the caller hangs on k (not k),
 * before k goes.
 */
struct informer_index {
	struct as_hash		 keys;
	void			 (*clear)(struct informer_key *);
};

void	 informer_index_init(struct informer_index *,
	    void (*clear)(struct informer_key *));
/* Frees every record and every subscription still listed. */
void	 informer_index_fini(struct informer_index *);
/*
 * The record of key; when absent and size is not 0, one made (size
 * bytes, the caller's struct with struct informer_key first, zeroed), and
 * *made set; NULL otherwise.
 */
struct informer_key *informer_index_get(struct informer_index *,
	    const char *key, size_t size, int *made);
/* Frees k (and what clear frees), out of the index. */
void	 informer_index_drop(struct informer_index *, struct informer_key *);
size_t	 informer_index_count(const struct informer_index *);

/* Lists s (size bytes, struct informer_sub first, zeroed) on k. */
struct informer_sub *informer_key_subscribe(struct informer_key *,
	    size_t size);
/* Unlists s from k and frees it; 1 when k has no subscription left. */
int	 informer_key_unsubscribe(struct informer_key *,
	    struct informer_sub *);

#endif
