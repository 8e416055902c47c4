/*
 * informer_fake.h: a fake informer behind struct informer_ops
 * (scheduler/informer_group.h) for check_targets, check_pool_targets
 * and check_owners: the test fills its cache and sends its events by
 * hand, as k8s/informer.c would (transform first, then cache, then
 * report).
 *
 * Ownership: the fakes are made and freed through the ops by
 * informer_group.c;
 * objects given to fake_inf_event() are taken.
 */
#ifndef TESTS_INFORMER_FAKE_H
#define TESTS_INFORMER_FAKE_H

#include <cjson/cJSON.h>

#include "agentscaler/k8s/informer.h"
#include "scheduler/informer_group.h"

struct informer {
	char			 path[256];
	informer_fn		*fn;
	void			*arg;
	informer_transform_fn	*transform;
	int			 synced;
	unsigned		 errors;	/* failed LISTs, as the stats say */
	cJSON			*objs;	/* array */
};

/* The ops, and the fakes made so far (freed ones NULL), and those live. */
extern const struct informer_ops fake_inf_ops;
extern struct informer	*fake_inf_made[32];
extern int		 fake_inf_nmade, fake_inf_nlive;

void	 fake_inf_reset(void);
/* The index of ns/name in i's cache, or -1. */
int	 fake_inf_index(const struct informer *, const char *ns,
	    const char *name);
/* Takes obj: transformed, cached (or dropped for DELETED), reported. */
void	 fake_inf_event(struct informer *, enum informer_event, cJSON *obj);
/* The end of a (re-)list: SYNCED. */
void	 fake_inf_sync(struct informer *);
/* A Deployment as the API server sends it, with what a slim drops. */
cJSON	*fake_deploy(const char *ns, const char *name, int rv, long spec,
	    long status);

#endif
