/*
 * secret_store.h: Kubernetes Secrets read through the API for the broker
 * credentials of CRD-mode pools (KEDA's TriggerAuthentication model: a
 * pool's credentials come from its own namespace, never from the daemon's
 * files or environment).
 *
 * The store is the provider behind as_secret_lookup() ("ns/name/key"); it
 * is asked at every broker connect, which is when a password is used.  A
 * connect after a failure asks for a copy read since that failure: the
 * Secret is read again first (the lookup answers -AS_EAGAIN for the moment
 * that takes, and the source retries at once), so a rotated Secret is what
 * the next connect uses, and one read serves every connection that went
 * down before it started.  When the API cannot be reached, the last copy
 * goes on serving (an API outage must not take brokers down); a Secret that
 * is gone (404) or may not be read (403) serves nothing.  A Secret is a GET
 * of that one object: RBAC `get` on secrets, nothing listed or watched.
 *
 * Values live in this process only, are wiped when replaced or forgotten,
 * and are never logged.  A Secret is held while a pool of the config
 * names it: each config is announced with secret_store_begin(),
 * secret_store_want() for each Secret it names, secret_store_end(), which
 * forgets the others.
 *
 * Ownership: the store borrows the client, which must outlive it.
 */
#ifndef AGENTSCALER_SECRET_STORE_H
#define AGENTSCALER_SECRET_STORE_H

#include <stddef.h>
#include <stdint.h>

struct k8s_client;
struct secret_store;
struct prom;
struct prom_def;

struct secret_store *secret_store_new(struct k8s_client *);
/* Cancels reads in flight, wipes every value, frees; NULL is fine. */
void	 secret_store_free(struct secret_store *);
/*
 * A new config: begin, then want each Secret it names (read at once unless
 * a copy or a read is there), then end, which forgets and wipes the rest.
 */
void	 secret_store_begin(struct secret_store *);
void	 secret_store_want(struct secret_store *, const char *ns,
	    const char *name);
void	 secret_store_end(struct secret_store *);
/* An as_secret_lookup_fn; arg is the store. */
int	 secret_store_lookup(void *arg, const char *ref, double since,
	    char **out, char *err, size_t errlen);
/* Prometheus text: agentscaler_secret_reads_total{result}, and how many. */
void	 secret_store_metrics(const struct secret_store *, struct prom *);
/* Their definitions (prom.h), NULL-ended, for --print-metrics. */
extern const struct prom_def *const secret_store_metric_defs[];

#endif
