/*
 * hash.c: the one hash table (hash.h).
 *
 * Separate chaining with the hash kept in each entry, as the tables it
 * replaced did by hand (k8s/informer.c, scheduler/quota.c and six more
 * files): a chain is short (load at most 1), a stored hash settles nearly
 * every mismatch without comparing keys, and records are linked, not
 * copied, so they keep their address and need no allocation of the
 * table's.  Open addressing would save the next pointer but move entries,
 * which the callers (records on LRU and FIFO lists, pointers held across
 * calls) cannot have.
 */
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/hash.h"

#define AS_HASH_MIN	16

static const char *as_hash_key(const struct as_hash *,
		    const struct as_hash_entry *);
static void	 as_hash_resize(struct as_hash *, size_t);
static struct as_hash_entry *as_hash_scan(const struct as_hash *, size_t);

void
as_hash_init(struct as_hash *t, size_t min, unsigned flags, as_hash_eq_fn *eq)
{
	size_t	 nb;

	if (min == 0)
		min = AS_HASH_MIN;
	for (nb = 1; nb < min; nb *= 2)
		;
	t->nb = nb;
	t->min = nb;
	t->b = xcalloc(nb, sizeof *t->b);
	t->n = 0;
	t->flags = flags;
	t->eq = eq;
	t->keyoff = 0;
}

void
as_hash_init_str(struct as_hash *t, size_t min, unsigned flags,
    ptrdiff_t keyoff)
{
	as_hash_init(t, min, flags, NULL);
	t->keyoff = keyoff;
}

/* The string key of e's record (a table made by as_hash_init_str). */
static const char *
as_hash_key(const struct as_hash *t, const struct as_hash_entry *e)
{
	const char	*p = (const char *)e + t->keyoff;

	if (t->flags & AS_HASH_KEY_ARRAY)
		return (p);
	return (*(const char *const *)(const void *)p);
}

void
as_hash_fini(struct as_hash *t)
{
	free(t->b);
	t->b = NULL;
	t->nb = t->n = 0;
}

/* Relinks every entry into nb buckets, walking the old ones in order. */
static void
as_hash_resize(struct as_hash *t, size_t nb)
{
	struct as_hash_entry	**old = t->b, *e, *next;
	size_t			 i, onb = t->nb;

	t->b = xcalloc(nb, sizeof *t->b);
	t->nb = nb;
	for (i = 0; i < onb; i++)
		for (e = old[i]; e != NULL; e = next) {
			next = e->next;
			e->next = t->b[e->hash & (nb - 1)];
			t->b[e->hash & (nb - 1)] = e;
		}
	free(old);
}

struct as_hash_entry *
as_hash_find(const struct as_hash *t, uint64_t hash, const void *key)
{
	struct as_hash_entry	*e;

	for (e = t->b[hash & (t->nb - 1)]; e != NULL; e = e->next)
		if (e->hash == hash && (t->eq != NULL ? t->eq(e, key) :
		    strcmp(as_hash_key(t, e), key) == 0))
			return (e);
	return (NULL);
}

struct as_hash_entry *
as_hash_find_str(const struct as_hash *t, const char *key)
{
	return (as_hash_find(t, as_hash_str(key), key));
}

void
as_hash_insert(struct as_hash *t, struct as_hash_entry *e, uint64_t hash)
{
	struct as_hash_entry	**bp;

	if (t->n + 1 > t->nb)
		as_hash_resize(t, t->nb * 2);
	e->hash = hash;
	bp = &t->b[hash & (t->nb - 1)];
	e->next = *bp;
	*bp = e;
	t->n++;
}

void
as_hash_insert_str(struct as_hash *t, struct as_hash_entry *e)
{
	as_hash_insert(t, e, as_hash_str(as_hash_key(t, e)));
}

void
as_hash_remove(struct as_hash *t, struct as_hash_entry *e)
{
	struct as_hash_entry	**pp;

	for (pp = &t->b[e->hash & (t->nb - 1)]; *pp != NULL;
	    pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			e->next = NULL;
			t->n--;
			break;
		}
	/* Shrink with hysteresis: a drained burst gives its buckets back. */
	if ((t->flags & AS_HASH_SHRINK) && t->nb > t->min && t->n < t->nb / 8)
		as_hash_resize(t, t->nb / 2);
}

void
as_hash_clear(struct as_hash *t)
{
	size_t	 i;

	for (i = 0; i < t->nb; i++)
		t->b[i] = NULL;
	t->n = 0;
}

size_t
as_hash_count(const struct as_hash *t)
{
	return (t->n);
}

/* The first entry in bucket i or after it, or NULL. */
static struct as_hash_entry *
as_hash_scan(const struct as_hash *t, size_t i)
{
	for (; i < t->nb; i++)
		if (t->b[i] != NULL)
			return (t->b[i]);
	return (NULL);
}

struct as_hash_entry *
as_hash_first(const struct as_hash *t)
{
	return (as_hash_scan(t, 0));
}

struct as_hash_entry *
as_hash_next(const struct as_hash *t, const struct as_hash_entry *e)
{
	if (e->next != NULL)
		return (e->next);
	return (as_hash_scan(t, (size_t)(e->hash & (t->nb - 1)) + 1));
}
