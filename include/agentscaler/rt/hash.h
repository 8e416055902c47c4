/*
 * hash.h: the one hash table, intrusive and chained.
 *
 * A record that lives in a table embeds a struct as_hash_entry (anywhere;
 * AS_HASH_ITEM gets the record back) and is inserted with its 64-bit hash,
 * which the entry keeps: lookups compare stored hashes before comparing
 * keys, and growth rehashes without recomputing anything.  The caller picks
 * the hash (as_hash_str() in common.h for a string key, task_hash() for
 * task ids, a mix for a composite key) and keeps the key in the record.
 * Keys are compared in one of two ways, chosen when the table is made:
 *  - a string in the record (as_hash_init_str): a char *, or the chars
 *    themselves, at a fixed offset from the entry; strcmp compares;
 *  - anything else (as_hash_init): the table's eq function compares.
 *
 * Buckets are a power of two, at least the min given to as_hash_init.  The
 * table doubles before an insert would put more entries than buckets (load
 * at most 1, so lookups are O(1) on average) and, with AS_HASH_SHRINK,
 * halves when a remove leaves it under 1/8 full, never below min.  Entries
 * never move: a pointer to a record stays valid while the record is in.
 *
 * Iteration order (as_hash_first/as_hash_next) is deterministic but not
 * sorted: by bucket (hash & (buckets - 1)) ascending, and within a bucket
 * the most recently placed entry first; a rehash walks the old buckets in
 * that order and places each entry again.  This is the order of the
 * hand-written tables it replaced, so a table created with the same hash,
 * min and growth sees the same order.  Callers that need a stable order
 * (sorted output) sort what they collect.
 *
 * Removing the entry just returned by the iteration (after taking its
 * successor with as_hash_next) is safe, as long as the table was not made
 * with AS_HASH_SHRINK (a shrink rehashes).  Inserting while iterating is
 * not (a growth rehashes).
 *
 * Ownership: the table owns its bucket array only (as_hash_fini frees it);
 * the records are the caller's, before, during and after their time in a
 * table.  Not thread-safe; one loop owns a table, as everything else.
 */
#ifndef AGENTSCALER_HASH_H
#define AGENTSCALER_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Embedded in each record; its fields belong to the table. */
struct as_hash_entry {
	struct as_hash_entry	*next;
	uint64_t		 hash;
};

/* 1 when the record of e has key (whatever the caller's key type is). */
typedef int	 as_hash_eq_fn(const struct as_hash_entry *e, const void *key);

#define AS_HASH_SHRINK	0x1	/* halve when under 1/8 full */
#define AS_HASH_KEY_ARRAY 0x2	/* as_hash_init_str: chars, not a char * */

/* A table, embedded by its owner; its fields are private. */
struct as_hash {
	struct as_hash_entry	**b;
	size_t			 nb;	/* a power of two */
	size_t			 n;
	size_t			 min;
	unsigned		 flags;
	as_hash_eq_fn		*eq;	/* NULL: a string at keyoff */
	ptrdiff_t		 keyoff;
};

/*
 * The record of type that embeds entry e as member; NULL for NULL, so that
 * AS_HASH_ITEM(as_hash_find(...), struct x, link) is a lookup.
 */
#define AS_HASH_ITEM(e, type, member)					\
	((type *)as_hash_item((e), offsetof(type, member)))

static inline void *
as_hash_item(const struct as_hash_entry *e, size_t off)
{
	return (e != NULL ? (void *)((char *)(uintptr_t)e - off) : NULL);
}

/* What as_hash_init_str wants: where key is from member, in type. */
#define AS_HASH_KEYOFF(type, member, key)				\
	((ptrdiff_t)offsetof(type, key) - (ptrdiff_t)offsetof(type, member))

/*
 * Makes an empty table of at least min buckets (rounded up to a power of
 * two; 0 means 16), flags AS_HASH_SHRINK or 0, comparing keys with eq.
 */
void		 as_hash_init(struct as_hash *, size_t min, unsigned flags,
		    as_hash_eq_fn *eq);
/*
 * The same for records keyed by a string: a char * keyoff bytes from the
 * entry (AS_HASH_KEYOFF), or with AS_HASH_KEY_ARRAY in flags the chars
 * themselves; as_hash_find's key is then a const char *.
 */
void		 as_hash_init_str(struct as_hash *, size_t min, unsigned flags,
		    ptrdiff_t keyoff);
/*
 * Frees the buckets; the records stay the caller's.  Finding and inserting
 * need a table made by as_hash_init*; fini, clear, count and iteration also
 * take a zeroed or finished one (empty).
 */
void		 as_hash_fini(struct as_hash *);

/* The entry with this hash whose record has key, or NULL. */
struct as_hash_entry *as_hash_find(const struct as_hash *, uint64_t hash,
		    const void *key);
/*
 * For a string-keyed table whose records go in under as_hash_str of their
 * key (as_hash_insert_str): as_hash_find(t, as_hash_str(key), key).
 */
struct as_hash_entry *as_hash_find_str(const struct as_hash *,
		    const char *key);
/*
 * Puts e in under hash (which as_hash_find will be given for its key).  The
 * key must not be in the table already.
 */
void		 as_hash_insert(struct as_hash *, struct as_hash_entry *e,
		    uint64_t hash);
/* as_hash_insert under as_hash_str of e's key (a string-keyed table). */
void		 as_hash_insert_str(struct as_hash *, struct as_hash_entry *e);
/* Takes e, which must be in the table, out of it. */
void		 as_hash_remove(struct as_hash *, struct as_hash_entry *e);
/* Takes every entry out at once, keeping the buckets (records untouched). */
void		 as_hash_clear(struct as_hash *);

size_t		 as_hash_count(const struct as_hash *);
/* The first entry in iteration order, or NULL when empty. */
struct as_hash_entry *as_hash_first(const struct as_hash *);
/* The entry after e (which is in the table), or NULL after the last. */
struct as_hash_entry *as_hash_next(const struct as_hash *,
		    const struct as_hash_entry *e);

#endif
