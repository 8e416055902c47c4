/*
 * owners.h: who else scales a scale pool's target (issue 18).  An
 * autoscaling/v2 HorizontalPodAutoscaler or a KEDA ScaledObject
 * (keda.sh/v1alpha1) whose spec.scaleTargetRef names the target owns it,
 * and the pool yields to it (pool.c; README "Adopting it beside KEDA").
 *
 * Both come from list + watch informers made as targets.c makes the
 * targets' (one per namespace of the pools, or one per resource for the
 * whole cluster) and shared by every pool there, so a pool costs no GET.
 * The objects are indexed by the target they name ("Kind/ns/name"), so a
 * pool's question is one lookup.  An informer whose LIST fails (403 under
 * an older RBAC; 404 on ScaledObjects where KEDA is not installed) is
 * retried with backoff and meanwhile counts as "no owner": a cluster
 * without KEDA has no ScaledObject.
 *
 * Ownership: the daemon owns the struct owners; a subscription is its
 * subscriber's until owners_unsubscribe(); strings given are copied.
 */
#ifndef AGENTSCALER_OWNERS_H
#define AGENTSCALER_OWNERS_H

#include <stddef.h>

struct cJSON;
struct k8s_client;
struct owners;
struct owner_sub;
struct informer_ops;

typedef void	 owners_fn(void *arg);

struct owners_options {
	int			 cluster_wide;	/* as targets_options */
	const struct informer_ops *ops;		/* NULL: the real informers */
};

struct owners	*owners_new(struct k8s_client *,
		    const struct owners_options *);
/* Frees the informers and every subscription still in. */
void		 owners_free(struct owners *);

/*
 * Follows the owners of the target kind ns/name: fn(arg) is called from
 * the loop when they change.  NULL (nothing followed) for a NULL o.
 */
struct owner_sub *owners_subscribe(struct owners *, const char *kind,
		    const char *ns, const char *name, owners_fn *, void *arg);
void		 owners_unsubscribe(struct owners *, struct owner_sub *);

/*
 * The first owner of s's target into who ("HorizontalPodAutoscaler web"),
 * and 1; 0 and "" when none is known.  *known: 0 while an informer of its
 * namespace is still on its first LIST (neither listed nor failed), else
 * 1.  A NULL s: none, known.
 */
int		 owners_get(const struct owner_sub *, char *who, size_t len,
		    int *known);

/*
 * Pure: the target an HPA or ScaledObject obj names, as "Kind/ns/name"
 * into key (a ScaledObject's kind defaults to Deployment, as KEDA's);
 * -1 when it names none.
 */
int		 owners_target_key(const struct cJSON *obj, char *key,
		    size_t len);

#endif
