/*
 * scaler_cache.h: the reference-counted cache of shared endpoints that the
 * Redis endpoints (scalers/redis_endpoint.c) and the RabbitMQ AMQP and HTTP
 * endpoints (scalers/rabbitmq_amqp.c, scalers/rabbitmq_http.c) keep, in
 * scalers/cache.c.  Every source or consumer that names the same server
 * the same way shares one endpoint: the first one opens it, each later one
 * takes a reference, and the last to let go closes it.
 *
 * An endpoint embeds a struct scaler_cache_entry; what "the same" means is
 * the caller's match function.  The cache is one list per endpoint type, a
 * file-scope struct scaler_cache (SCALER_CACHE_INITIALIZER); it is used
 * from the loop's thread only.
 *
 * Ownership: entries are the caller's memory; the cache only links them
 * while they hold a reference, and tells the caller (scaler_cache_put()
 * returning 1) when to free.
 */
#ifndef AGENTSCALER_SCALER_CACHE_H
#define AGENTSCALER_SCALER_CACHE_H

#include <sys/queue.h>

#include <stddef.h>

struct ev_loop;
struct scaler_source;

struct scaler_cache_entry {
	LIST_ENTRY(scaler_cache_entry) entry;
	unsigned		 refs;
};

LIST_HEAD(scaler_cache, scaler_cache_entry);

#define SCALER_CACHE_INITIALIZER(c)	LIST_HEAD_INITIALIZER(c)

/* The struct that embeds entry e as field, as in the kernel's container_of. */
#define SCALER_CACHE_OWNER(e, type, field)				\
	((type *)(void *)((char *)(e) - offsetof(type, field)))

/*
 * What a user asks for: an endpoint on its loop, for a parsed address
 * (the endpoint type's own struct) and the source's other fields (the
 * password's source, TLS settings...).  All borrowed.
 */
struct scaler_cache_key {
	struct ev_loop		*loop;
	const void		*addr;
	const struct scaler_source *src;
};

/* 1 when the endpoint of e is the one key describes, else 0. */
typedef int	 scaler_cache_match_fn(const struct scaler_cache_entry *e,
		    const struct scaler_cache_key *key);

/*
 * Finds the entry match accepts for key and takes a reference on it.
 * Returns it, or NULL when none matches (nothing changes then).
 */
struct scaler_cache_entry *scaler_cache_get(struct scaler_cache *,
	    scaler_cache_match_fn *match, const struct scaler_cache_key *key);

/* Links a new entry, holding one reference: the caller's. */
void	 scaler_cache_add(struct scaler_cache *, struct scaler_cache_entry *);

/*
 * Drops a reference.  Returns 1 when it was the last one: the entry is off
 * the cache and the caller closes and frees its endpoint; 0 otherwise.
 */
int	 scaler_cache_put(struct scaler_cache_entry *);

/* The references held on e: how many users share its endpoint. */
unsigned scaler_cache_refs(const struct scaler_cache_entry *e);

#endif
