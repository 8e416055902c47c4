/*
 * cache.c: the reference-counted endpoint cache (scaler_cache.h).  A plain
 * list: a process has a handful of endpoints per type, found once per
 * source or consumer created, so a search is never on a hot path.  New
 * entries go first, as the three hand-written lists this replaces did.
 */
#include <sys/queue.h>

#include "scaler_cache.h"

struct scaler_cache_entry *
scaler_cache_get(struct scaler_cache *cache, scaler_cache_match_fn *match,
    const struct scaler_cache_key *key)
{
	struct scaler_cache_entry *e;

	LIST_FOREACH(e, cache, entry) {
		if (match(e, key)) {
			e->refs++;
			return (e);
		}
	}
	return (NULL);
}

void
scaler_cache_add(struct scaler_cache *cache, struct scaler_cache_entry *e)
{
	e->refs = 1;
	LIST_INSERT_HEAD(cache, e, entry);
}

int
scaler_cache_put(struct scaler_cache_entry *e)
{
	if (--e->refs > 0)
		return (0);
	LIST_REMOVE(e, entry);
	return (1);
}

unsigned
scaler_cache_refs(const struct scaler_cache_entry *e)
{
	return (e->refs);
}
