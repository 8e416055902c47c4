/*
 * check_hash.c: the one hash table (rt/hash.h): an empty table, insert and
 * find, collisions (records whose hashes are equal, or share a bucket),
 * remove, remove while iterating, growth, shrinking, clear, many keys, the
 * documented iteration order, and string keys compared by the table (a
 * char * after the entry, the chars before it).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/hash.h"
#include "util/testutil.h"

/* A record whose entry is not its first member. */
struct rec {
	char			 key[32];
	int			 value;
	int			 seen;
	struct as_hash_entry	 link;
};

static int
rec_eq(const struct as_hash_entry *e, const void *key)
{
	return (strcmp(AS_HASH_ITEM(e, struct rec, link)->key, key) == 0);
}

static struct rec *
rec_find(const struct as_hash *t, uint64_t h, const char *key)
{
	return (AS_HASH_ITEM(as_hash_find(t, h, key), struct rec, link));
}

static struct rec *
recs_make(size_t n)
{
	struct rec	*r = xcalloc(n, sizeof *r);
	size_t		 i;

	for (i = 0; i < n; i++) {
		snprintf(r[i].key, sizeof r[i].key, "ns-%zu/pool-%zu", i % 7,
		    i);
		r[i].value = (int)i;
	}
	return (r);
}

/* How many entries the iteration visits; asserts each is seen once. */
static size_t
visit_all(const struct as_hash *t)
{
	struct as_hash_entry	*e;
	struct rec		*r;
	size_t			 n = 0;

	for (e = as_hash_first(t); e != NULL; e = as_hash_next(t, e)) {
		r = AS_HASH_ITEM(e, struct rec, link);
		ck_assert_int_eq(r->seen, 0);
		r->seen = 1;
		n++;
	}
	return (n);
}

START_TEST(test_empty)
{
	struct as_hash	 t, zero;

	as_hash_init(&t, 0, 0, rec_eq);
	ck_assert_uint_eq(as_hash_count(&t), 0);
	ck_assert_ptr_null(as_hash_find(&t, as_hash_str("a"), "a"));
	ck_assert_ptr_null(as_hash_first(&t));
	as_hash_clear(&t);
	as_hash_fini(&t);
	/* A zeroed or finished table iterates, and can be finished again. */
	ck_assert_ptr_null(as_hash_first(&t));
	ck_assert_uint_eq(as_hash_count(&t), 0);
	as_hash_fini(&t);
	memset(&zero, 0, sizeof zero);
	ck_assert_ptr_null(as_hash_first(&zero));
	as_hash_clear(&zero);
	as_hash_fini(&zero);
}
END_TEST

static const struct {
	size_t	 min;
	size_t	 nb;
} min_rows[] = {
	{ 0, 16 }, { 1, 1 }, { 2, 2 }, { 3, 4 }, { 64, 64 }, { 65, 128 },
	{ 1024, 1024 },
};

START_TEST(test_min_buckets)
{
	struct as_hash	 t;

	as_hash_init(&t, min_rows[_i].min, 0, rec_eq);
	ck_assert_uint_eq(t.nb, min_rows[_i].nb);
	as_hash_fini(&t);
}
END_TEST

START_TEST(test_insert_find_remove)
{
	struct as_hash	 t;
	struct rec	*r = recs_make(3);

	as_hash_init(&t, 4, 0, rec_eq);
	as_hash_insert(&t, &r[0].link, as_hash_str(r[0].key));
	as_hash_insert(&t, &r[1].link, as_hash_str(r[1].key));
	ck_assert_uint_eq(as_hash_count(&t), 2);
	ck_assert_ptr_eq(rec_find(&t, as_hash_str(r[0].key), r[0].key),
	    &r[0]);
	ck_assert_ptr_eq(rec_find(&t, as_hash_str(r[1].key), r[1].key),
	    &r[1]);
	ck_assert_ptr_null(rec_find(&t, as_hash_str(r[2].key), r[2].key));
	/* The right key under a wrong hash is not found. */
	ck_assert_ptr_null(rec_find(&t, as_hash_str(r[0].key) + 1,
	    r[0].key));
	as_hash_remove(&t, &r[0].link);
	ck_assert_uint_eq(as_hash_count(&t), 1);
	ck_assert_ptr_null(rec_find(&t, as_hash_str(r[0].key), r[0].key));
	ck_assert_ptr_eq(rec_find(&t, as_hash_str(r[1].key), r[1].key),
	    &r[1]);
	/* Back in, under the same key. */
	as_hash_insert(&t, &r[0].link, as_hash_str(r[0].key));
	ck_assert_ptr_eq(rec_find(&t, as_hash_str(r[0].key), r[0].key),
	    &r[0]);
	ck_assert_uint_eq(visit_all(&t), 2);
	as_hash_fini(&t);
	free(r);
}
END_TEST

/*
 * Collisions: every record under one hash (eq tells them apart), then
 * under hashes that differ but share a bucket.
 */
START_TEST(test_collisions)
{
	struct as_hash	 t;
	struct rec	*r = recs_make(100);
	size_t		 i;

	as_hash_init(&t, 16, 0, rec_eq);
	for (i = 0; i < 100; i++)
		as_hash_insert(&t, &r[i].link, 42);
	for (i = 0; i < 100; i++)
		ck_assert_ptr_eq(rec_find(&t, 42, r[i].key), &r[i]);
	ck_assert_ptr_null(rec_find(&t, 42, "absent"));
	ck_assert_uint_eq(visit_all(&t), 100);
	for (i = 0; i < 100; i += 2)
		as_hash_remove(&t, &r[i].link);
	for (i = 0; i < 100; i++)
		ck_assert_ptr_eq(rec_find(&t, 42, r[i].key),
		    i % 2 == 0 ? NULL : &r[i]);
	as_hash_fini(&t);

	/* Hashes i << 32: all in bucket 0 until the table is huge. */
	as_hash_init(&t, 16, 0, rec_eq);
	for (i = 0; i < 100; i++)
		as_hash_insert(&t, &r[i].link, (uint64_t)(i + 1) << 32);
	for (i = 0; i < 100; i++) {
		ck_assert_ptr_eq(rec_find(&t, (uint64_t)(i + 1) << 32,
		    r[i].key), &r[i]);
		/* The key under another record's hash: not a match. */
		ck_assert_ptr_null(rec_find(&t, (uint64_t)(i + 2) << 32,
		    r[i].key));
	}
	as_hash_fini(&t);
	free(r);
}
END_TEST

/* Removing the entry just visited, after taking its successor. */
START_TEST(test_remove_while_iterating)
{
	struct as_hash		 t;
	struct as_hash_entry	*e, *next;
	struct rec		*r = recs_make(1000), *x;
	size_t			 i, left = 0;

	as_hash_init(&t, 64, 0, rec_eq);
	for (i = 0; i < 1000; i++)
		as_hash_insert(&t, &r[i].link, i % 3 == 0 ? 7 :
		    as_hash_str(r[i].key));
	for (e = as_hash_first(&t); e != NULL; e = next) {
		next = as_hash_next(&t, e);
		x = AS_HASH_ITEM(e, struct rec, link);
		ck_assert_int_eq(x->seen, 0);
		x->seen = 1;
		if (x->value % 2 == 0)
			as_hash_remove(&t, e);
		else
			left++;
	}
	ck_assert_uint_eq(left, 500);
	ck_assert_uint_eq(as_hash_count(&t), 500);
	for (i = 0; i < 1000; i++) {
		ck_assert_int_eq(r[i].seen, 1);
		r[i].seen = 0;
	}
	ck_assert_uint_eq(visit_all(&t), 500);
	/* Then all of them. */
	for (e = as_hash_first(&t); e != NULL; e = next) {
		next = as_hash_next(&t, e);
		as_hash_remove(&t, e);
	}
	ck_assert_uint_eq(as_hash_count(&t), 0);
	ck_assert_ptr_null(as_hash_first(&t));
	as_hash_fini(&t);
	free(r);
}
END_TEST

/* Many keys: growth keeps every record findable, at load at most 1. */
START_TEST(test_growth_many_keys)
{
	struct as_hash	 t;
	struct rec	*r = recs_make(20000);
	size_t		 i;

	as_hash_init(&t, 16, 0, rec_eq);
	for (i = 0; i < 20000; i++) {
		as_hash_insert(&t, &r[i].link, as_hash_str(r[i].key));
		ck_assert_uint_le(as_hash_count(&t), t.nb);
	}
	ck_assert_uint_eq(t.nb, 32768);
	for (i = 0; i < 20000; i++)
		ck_assert_ptr_eq(rec_find(&t, as_hash_str(r[i].key),
		    r[i].key), &r[i]);
	ck_assert_ptr_null(rec_find(&t, as_hash_str("ns-0/pool-20000"),
	    "ns-0/pool-20000"));
	ck_assert_uint_eq(visit_all(&t), 20000);
	/* Without AS_HASH_SHRINK the buckets stay when it empties. */
	for (i = 0; i < 20000; i++)
		as_hash_remove(&t, &r[i].link);
	ck_assert_uint_eq(t.nb, 32768);
	ck_assert_uint_eq(as_hash_count(&t), 0);
	as_hash_fini(&t);
	free(r);
}
END_TEST

START_TEST(test_shrink)
{
	struct as_hash	 t;
	struct rec	*r = recs_make(4096);
	size_t		 i;

	as_hash_init(&t, 16, AS_HASH_SHRINK, rec_eq);
	for (i = 0; i < 4096; i++)
		as_hash_insert(&t, &r[i].link, as_hash_str(r[i].key));
	ck_assert_uint_eq(t.nb, 4096);
	/* Under 1/8 full it halves (hysteresis: not at 1/2). */
	for (i = 0; i < 4096 - 512; i++)
		as_hash_remove(&t, &r[i].link);
	ck_assert_uint_eq(t.nb, 4096);
	as_hash_remove(&t, &r[i++].link);
	ck_assert_uint_eq(t.nb, 2048);
	for (; i < 4096; i++)
		ck_assert_ptr_eq(rec_find(&t, as_hash_str(r[i].key),
		    r[i].key), &r[i]);
	for (i = 4096 - 511; i < 4096; i++)
		as_hash_remove(&t, &r[i].link);
	ck_assert_uint_eq(t.nb, 16);	/* never below min */
	ck_assert_uint_eq(as_hash_count(&t), 0);
	as_hash_fini(&t);
	free(r);
}
END_TEST

START_TEST(test_clear)
{
	struct as_hash	 t;
	struct rec	*r = recs_make(100);
	size_t		 i, nb;

	as_hash_init(&t, 16, 0, rec_eq);
	for (i = 0; i < 100; i++)
		as_hash_insert(&t, &r[i].link, as_hash_str(r[i].key));
	nb = t.nb;
	as_hash_clear(&t);
	ck_assert_uint_eq(t.nb, nb);
	ck_assert_uint_eq(as_hash_count(&t), 0);
	ck_assert_ptr_null(as_hash_first(&t));
	ck_assert_ptr_null(rec_find(&t, as_hash_str(r[5].key), r[5].key));
	/* The records can go in again. */
	for (i = 0; i < 100; i++)
		as_hash_insert(&t, &r[i].link, as_hash_str(r[i].key));
	ck_assert_uint_eq(visit_all(&t), 100);
	as_hash_fini(&t);
	free(r);
}
END_TEST

/*
 * The documented order: buckets ascending, the latest placed first in a
 * bucket; growth walks the old buckets in order, placing each again.
 */
START_TEST(test_order)
{
	struct as_hash		 t;
	struct as_hash_entry	*e;
	struct rec		*r = recs_make(5);
	const uint64_t		 h[5] = { 1, 5, 0, 2, 9 };
	char			 got[16];
	size_t			 i, n;

	as_hash_init(&t, 4, 0, rec_eq);
	for (i = 0; i < 4; i++)
		as_hash_insert(&t, &r[i].link, h[i]);
	n = 0;
	for (e = as_hash_first(&t); e != NULL; e = as_hash_next(&t, e))
		got[n++] = (char)('0' + AS_HASH_ITEM(e, struct rec,
		    link)->value);
	got[n] = '\0';
	/* Buckets of 4: 0 {2}, 1 {1, 0}, 2 {3}. */
	ck_assert_str_eq(got, "2103");
	/*
	 * The fifth grows it to 8, relinking 2, 1, 0, 3 in that order, then
	 * goes in (9 & 7 = 1): 0 {2}, 1 {4, 0}, 2 {3}, 5 {1}.
	 */
	as_hash_insert(&t, &r[4].link, h[4]);
	ck_assert_uint_eq(t.nb, 8);
	n = 0;
	for (e = as_hash_first(&t); e != NULL; e = as_hash_next(&t, e))
		got[n++] = (char)('0' + AS_HASH_ITEM(e, struct rec,
		    link)->value);
	got[n] = '\0';
	ck_assert_str_eq(got, "24031");
	as_hash_fini(&t);
	free(r);
}
END_TEST

/* A record whose key is a char * after its entry. */
struct prec {
	struct as_hash_entry	 link;
	int			 value;
	char			*name;
};

/* String keys: the table compares, with no eq function of the caller's. */
START_TEST(test_string_keys)
{
	struct as_hash	 t, u;
	struct rec	*r = recs_make(3000);
	struct prec	*p = xcalloc(3000, sizeof *p);
	char		 other[32];
	size_t		 i;

	/* The chars, before the entry (a negative offset). */
	as_hash_init_str(&t, 0, AS_HASH_KEY_ARRAY,
	    AS_HASH_KEYOFF(struct rec, link, key));
	/* A char *, after it. */
	as_hash_init_str(&u, 64, AS_HASH_SHRINK,
	    AS_HASH_KEYOFF(struct prec, link, name));
	for (i = 0; i < 3000; i++) {
		as_hash_insert_str(&t, &r[i].link);
		p[i].name = r[i].key;
		p[i].value = (int)i;
		as_hash_insert_str(&u, &p[i].link);
	}
	ck_assert_uint_eq(as_hash_count(&t), 3000);
	for (i = 0; i < 3000; i++) {
		ck_assert_uint_eq(r[i].link.hash, as_hash_str(r[i].key));
		/* An equal string elsewhere finds it. */
		as_strlcpy(other, r[i].key, sizeof other);
		ck_assert_ptr_eq(AS_HASH_ITEM(as_hash_find_str(&t, other),
		    struct rec, link), &r[i]);
		ck_assert_ptr_eq(AS_HASH_ITEM(as_hash_find_str(&u, other),
		    struct prec, link), &p[i]);
		ck_assert_ptr_eq(AS_HASH_ITEM(as_hash_find(&u,
		    as_hash_str(other), other), struct prec, link), &p[i]);
	}
	ck_assert_ptr_null(as_hash_find_str(&t, "ns-0/pool-3000"));
	ck_assert_ptr_null(as_hash_find_str(&u, ""));
	ck_assert_uint_eq(visit_all(&t), 3000);
	for (i = 0; i < 3000; i += 2)
		as_hash_remove(&u, &p[i].link);
	for (i = 0; i < 3000; i++)
		ck_assert_ptr_eq(AS_HASH_ITEM(as_hash_find_str(&u,
		    r[i].key), struct prec, link), i % 2 == 0 ? NULL : &p[i]);
	as_hash_fini(&t);
	as_hash_fini(&u);
	free(p);
	free(r);
}
END_TEST

static Suite *
hash_suite(void)
{
	Suite	*s = suite_create("hash");
	TCase	*tc = tcase_create("hash");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_empty);
	tcase_add_loop_test(tc, test_min_buckets, 0,
	    (int)AS_ARRAY_SIZE(min_rows));
	tcase_add_test(tc, test_insert_find_remove);
	tcase_add_test(tc, test_collisions);
	tcase_add_test(tc, test_remove_while_iterating);
	tcase_add_test(tc, test_growth_many_keys);
	tcase_add_test(tc, test_shrink);
	tcase_add_test(tc, test_clear);
	tcase_add_test(tc, test_order);
	tcase_add_test(tc, test_string_keys);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(hash_suite()));
}
