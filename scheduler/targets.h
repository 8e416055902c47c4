/*
 * targets.h: the replicas of the scale pools' targets (Deployments,
 * StatefulSets, SandboxWarmPools) from list + watch informers, instead of
 * a GET of each target's /scale (issue 15: 10,000 targets re-read every
 * 30 s are 333 GET/s, beyond any sane rate limit).
 *
 * A pool subscribes to its (kind, namespace, name) and is called when the
 * target's spec or status replicas change, when it appears or disappears,
 * and when its informer has listed (from then on, absent means "not
 * found").  Two pools on one target are legal: both are called.  The
 * informers are made when the first subscriber needs one and freed with
 * the last; see targets.c for which informers (per namespace, or one per
 * kind for the whole cluster).  Writes are not here: they stay merge
 * patches of /scale (k8s_scale_patch).
 *
 * Ownership: the daemon owns the struct targets; a subscription is its
 * subscriber's until targets_unsubscribe(); strings given are copied;
 * states handed to callbacks are borrowed for the call.
 */
#ifndef AGENTSCALER_TARGETS_H
#define AGENTSCALER_TARGETS_H

#include <stddef.h>
#include <stdint.h>

#include "agentscaler/k8s/informer.h"
#include "informer_group.h"

struct as_buf;
struct cJSON;
struct k8s_client;
struct targets;
struct target_sub;

/* What is known of one target. */
struct target_state {
	int		 listed;	/* 0: its informer has not listed yet,
					   nothing below is known */
	int		 found;		/* listed: the object exists */
	long		 spec_replicas;
	long		 status_replicas;
	long		 ready_replicas;
	char		 rv[32];	/* metadata.resourceVersion, or "" */
	char		 err[192];	/* not usable (absent, bad replicas):
					   why, in the words of a 404 */
};

typedef void	 target_fn(const struct target_state *, void *arg);

struct targets_options {
	/*
	 * 1: one informer per kind for all namespaces (the daemon watches
	 * AgentPools everywhere, so its ClusterRole grants list and watch
	 * everywhere); 0: one per (kind, namespace) in use.
	 */
	int			 cluster_wide;
	const struct informer_ops *ops;	/* NULL: the real informers */
};

struct targets	*targets_new(struct k8s_client *,
		    const struct targets_options *);
/* Frees the informers and every subscription still in. */
void		 targets_free(struct targets *);

/*
 * Subscribes fn(state, arg) to the target kind ns/name (kind one of
 * k8s_kind_list()).  fn is called from the loop, never from inside this
 * call, and must not unsubscribe anything.  Returns NULL (and subscribes
 * nothing) for a NULL t or an unknown kind.
 */
struct target_sub *targets_subscribe(struct targets *, const char *kind,
		    const char *ns, const char *name, target_fn *, void *arg);
/* Ends s (NULL: nothing); its informer goes with its last subscriber. */
void		 targets_unsubscribe(struct targets *, struct target_sub *);
/* The state of s's target now (all zero for a NULL s). */
void		 targets_get(const struct target_sub *, struct target_state *);

/*
 * 1 once every informer in use has listed (none in use: 1).  Otherwise
 * appends to b one line per informer still listing (at most a few, then
 * a count) when b is not NULL.
 */
int		 targets_synced(const struct targets *, struct as_buf *b);

struct targets_stats {
	size_t		 informers;
	size_t		 targets;	/* distinct (kind, ns, name) */
	size_t		 subscriptions;
	uint64_t	 events;	/* informer events applied */
	uint64_t	 notified;	/* subscriber calls */
};
void		 targets_get_stats(const struct targets *,
		    struct targets_stats *);

/*
 * Pure: -1 when resourceVersion a is older than b, else 0 (newer, equal,
 * or not comparable).  Resource versions are opaque to clients in
 * principle; every server we speak (etcd-backed, kube-sim) issues
 * increasing decimal integers, and only two such are compared.
 */
int		 targets_rv_older(const char *a, const char *b);

/*
 * Pure: the informer transform (informer_transform_fn) the targets use:
 * keeps metadata name, namespace, resourceVersion, uid and
 * deletionTimestamp, spec.replicas, status.replicas and
 * status.readyReplicas, and drops the rest of obj.
 */
void		 targets_slim(struct cJSON *obj, void *arg);

/*
 * Pure: the state an object says (obj NULL: absent), for kind and name
 * (for the message when absent).
 */
void		 targets_parse(const struct cJSON *obj, const char *kind,
		    const char *name, struct target_state *);

#endif
