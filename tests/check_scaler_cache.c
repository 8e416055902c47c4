/*
 * check_scaler_cache.c: the reference-counted endpoint cache shared by the
 * Redis and RabbitMQ endpoints (scalers/cache.c): sharing by key, the
 * last reference telling the caller to free, and the search order.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalers/scaler_cache.h"
#include "util/testutil.h"

struct ep {
	int			 id;
	char			 key[16];
	struct scaler_cache_entry ce;
};

static int
ep_match(const struct scaler_cache_entry *e,
    const struct scaler_cache_key *key)
{
	const struct ep	*ep = SCALER_CACHE_OWNER(e, struct ep, ce);

	return (strcmp(ep->key, key->addr) == 0);
}

static struct ep *
ep_get(struct scaler_cache *c, const char *key)
{
	const struct scaler_cache_key k = { NULL, key, NULL };
	struct scaler_cache_entry *e;

	if ((e = scaler_cache_get(c, ep_match, &k)) == NULL)
		return (NULL);
	return (SCALER_CACHE_OWNER(e, struct ep, ce));
}

static struct ep *
ep_new(struct scaler_cache *c, int id, const char *key)
{
	struct ep	*ep = calloc(1, sizeof *ep);

	ck_assert_ptr_nonnull(ep);
	ep->id = id;
	snprintf(ep->key, sizeof ep->key, "%s", key);
	scaler_cache_add(c, &ep->ce);
	return (ep);
}

START_TEST(test_share_and_free)
{
	struct scaler_cache cache = SCALER_CACHE_INITIALIZER(cache);
	struct ep	*a, *b, *x;

	ck_assert_ptr_null(ep_get(&cache, "a"));
	a = ep_new(&cache, 1, "a");
	ck_assert_uint_eq(scaler_cache_refs(&a->ce), 1);
	b = ep_new(&cache, 2, "b");
	x = ep_get(&cache, "a");
	ck_assert_ptr_eq(x, a);
	ck_assert_uint_eq(scaler_cache_refs(&a->ce), 2);
	ck_assert_ptr_eq(ep_get(&cache, "b"), b);
	ck_assert_uint_eq(scaler_cache_refs(&b->ce), 2);
	ck_assert_ptr_null(ep_get(&cache, "c"));

	/* Not the last reference: the entry stays and is still found. */
	ck_assert_int_eq(scaler_cache_put(&a->ce), 0);
	ck_assert_uint_eq(scaler_cache_refs(&a->ce), 1);
	ck_assert_ptr_eq(ep_get(&cache, "a"), a);
	ck_assert_int_eq(scaler_cache_put(&a->ce), 0);
	/* The last one: off the cache, the caller frees. */
	ck_assert_int_eq(scaler_cache_put(&a->ce), 1);
	free(a);
	ck_assert_ptr_null(ep_get(&cache, "a"));
	ck_assert_ptr_eq(ep_get(&cache, "b"), b);
	ck_assert_int_eq(scaler_cache_put(&b->ce), 0);
	ck_assert_int_eq(scaler_cache_put(&b->ce), 0);
	ck_assert_int_eq(scaler_cache_put(&b->ce), 1);
	free(b);
	ck_assert_ptr_null(LIST_FIRST(&cache));
}
END_TEST

/* Two entries that both match (never made by the callers): newest first. */
START_TEST(test_newest_first)
{
	struct scaler_cache cache = SCALER_CACHE_INITIALIZER(cache);
	struct ep	*old, *new;

	old = ep_new(&cache, 1, "k");
	new = ep_new(&cache, 2, "k");
	ck_assert_ptr_eq(ep_get(&cache, "k"), new);
	ck_assert_int_eq(scaler_cache_put(&new->ce), 0);
	ck_assert_int_eq(scaler_cache_put(&new->ce), 1);
	free(new);
	ck_assert_ptr_eq(ep_get(&cache, "k"), old);
	ck_assert_int_eq(scaler_cache_put(&old->ce), 0);
	ck_assert_int_eq(scaler_cache_put(&old->ce), 1);
	free(old);
}
END_TEST

/* Table: a cache of several keys, each looked up n times, then let go. */
static const struct {
	const char	*keys[4];
	int		 gets;
} share_rows[] = {
	{ { "one", NULL }, 0 },
	{ { "one", NULL }, 3 },
	{ { "x", "y", "z", NULL }, 1 },
	{ { "x", "y", "z", "w" }, 5 },
};

START_TEST(test_share_table)
{
	struct scaler_cache cache = SCALER_CACHE_INITIALIZER(cache);
	struct ep	*eps[4];
	size_t		 i, n = 0;
	int		 g;

	for (i = 0; i < 4 && share_rows[_i].keys[i] != NULL; i++)
		eps[n++] = ep_new(&cache, (int)i, share_rows[_i].keys[i]);
	for (g = 0; g < share_rows[_i].gets; g++) {
		for (i = 0; i < n; i++)
			ck_assert_ptr_eq(ep_get(&cache,
			    share_rows[_i].keys[i]), eps[i]);
	}
	for (i = 0; i < n; i++) {
		ck_assert_uint_eq(scaler_cache_refs(&eps[i]->ce),
		    (unsigned)share_rows[_i].gets + 1);
		for (g = 0; g < share_rows[_i].gets; g++)
			ck_assert_int_eq(scaler_cache_put(&eps[i]->ce), 0);
		ck_assert_int_eq(scaler_cache_put(&eps[i]->ce), 1);
		ck_assert_ptr_null(ep_get(&cache, share_rows[_i].keys[i]));
		free(eps[i]);
	}
	ck_assert_ptr_null(LIST_FIRST(&cache));
}
END_TEST

static Suite *
scaler_cache_suite(void)
{
	Suite	*s = suite_create("scaler_cache");
	TCase	*tc = tcase_create("cache");

	tcase_add_test(tc, test_share_and_free);
	tcase_add_test(tc, test_newest_first);
	tcase_add_loop_test(tc, test_share_table, 0,
	    sizeof share_rows / sizeof share_rows[0]);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(scaler_cache_suite()));
}
