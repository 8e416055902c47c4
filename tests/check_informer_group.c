/*
 * check_informer_group.c: the bookkeeping targets.c and owners.c share
 * (scheduler/informer_group.c), over the fake informer
 * (tests/util/informer_fake.c): groups made with their first user and
 * freed with the last, per namespace or cluster-wide; keys with their
 * subscriptions.  What an event means is check_targets' and
 * check_owners'.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/k8s/informer.h"
#include "agentscaler/rt/common.h"
#include "scheduler/informer_group.h"
#include "util/informer_fake.h"
#include "util/testutil.h"

/* A caller's group and key, with the base first. */
struct my_group {
	struct informer_group	 ig;
	int			 extra;
};

struct my_key {
	struct informer_key	 k;
	char			*owned;
};

struct my_sub {
	struct informer_sub	 base;
	int			 id;
};

static int	 events, clears;

static void
on_event(struct informer *inf, enum informer_event ev, const cJSON *obj,
    void *arg)
{
	struct my_group	*g = arg;

	(void)inf;
	(void)ev;
	(void)obj;
	g->extra++;
	events++;
}

static struct my_group *
group_get(struct informer_groups *ig, const char *tag, const char *ns)
{
	struct informer_options io;
	struct my_group	*g;
	char		 err[64];

	g = (struct my_group *)informer_groups_use(ig, tag, ns);
	if (g != NULL)
		return (g);
	memset(&io, 0, sizeof io);
	g = (struct my_group *)informer_groups_add(ig, sizeof *g, tag, ns,
	    "/apis/apps/v1", "deployments", &io, on_event, err, sizeof err);
	ck_assert_ptr_nonnull(g->ig.inf);
	ck_assert_str_eq(io.path, g->ig.path);
	return (g);
}

/*
 * Per namespace: one group per (tag, ns), counted by its users, out of
 * the table with the last; its informer's events reach the caller's
 * struct.
 */
START_TEST(test_groups_namespaced)
{
	struct informer_groups ig;
	struct my_group	*a, *b, *c;

	fake_inf_reset();
	events = 0;
	informer_groups_init(&ig, NULL, &fake_inf_ops, 0);
	ck_assert_ptr_null(informer_groups_use(&ig, "Deployment", "n1"));
	a = group_get(&ig, "Deployment", "n1");
	b = group_get(&ig, "Deployment", "n1");
	c = group_get(&ig, "Deployment", "n2");
	ck_assert_ptr_eq(a, b);
	ck_assert_ptr_ne(a, c);
	ck_assert_int_eq(fake_inf_nmade, 2);
	ck_assert_str_eq(a->ig.key, "Deployment/n1");
	ck_assert_str_eq(a->ig.ns, "n1");
	ck_assert_str_eq(a->ig.path, "/apis/apps/v1/namespaces/n1/"
	    "deployments");
	ck_assert_str_eq(fake_inf_made[1]->path, "/apis/apps/v1/namespaces/"
	    "n2/deployments");
	ck_assert_uint_eq(a->ig.users, 2);
	/* Another tag in the same namespace is another group. */
	ck_assert_ptr_ne(group_get(&ig, "StatefulSet", "n1"), a);
	ck_assert_int_eq(fake_inf_nmade, 3);

	ck_assert_int_eq(informer_group_synced(&ig, &a->ig), 0);
	fake_inf_sync(a->ig.inf);
	ck_assert_int_eq(informer_group_synced(&ig, &a->ig), 1);
	ck_assert_int_eq(events, 1);
	ck_assert_int_eq(a->extra, 1);

	ck_assert_int_eq(informer_groups_put(&ig, &a->ig), 0);
	ck_assert_int_eq(fake_inf_nlive, 3);
	ck_assert_int_eq(informer_groups_put(&ig, &a->ig), 1);
	/* Out of the table, still the caller's until freed. */
	ck_assert_ptr_null(informer_groups_use(&ig, "Deployment", "n1"));
	ck_assert_str_eq(a->ig.key, "Deployment/n1");
	informer_groups_free(&ig, &a->ig);
	ck_assert_int_eq(fake_inf_nlive, 2);
	ck_assert_int_eq(informer_groups_put(&ig, NULL), 0);
	informer_groups_free(&ig, NULL);
	/* The rest go with the table. */
	informer_groups_fini(&ig);
	ck_assert_int_eq(fake_inf_nlive, 0);
}
END_TEST

/* Cluster-wide: one group per tag whatever the namespace. */
START_TEST(test_groups_cluster_wide)
{
	struct informer_groups ig;
	struct my_group	*a, *b;

	fake_inf_reset();
	informer_groups_init(&ig, NULL, &fake_inf_ops, 1);
	a = group_get(&ig, "0", "n1");
	b = group_get(&ig, "0", "n2");
	ck_assert_ptr_eq(a, b);
	ck_assert_int_eq(fake_inf_nmade, 1);
	ck_assert_str_eq(a->ig.key, "0/");
	ck_assert_ptr_null(a->ig.ns);
	ck_assert_str_eq(a->ig.path, "/apis/apps/v1/deployments");
	ck_assert_uint_eq(a->ig.users, 2);
	ck_assert_int_eq(informer_groups_put(&ig, &a->ig), 0);
	ck_assert_int_eq(informer_groups_put(&ig, &b->ig), 1);
	informer_groups_free(&ig, &b->ig);
	ck_assert_int_eq(fake_inf_nlive, 0);
	informer_groups_fini(&ig);
}
END_TEST

static void
my_clear(struct informer_key *k)
{
	free(((struct my_key *)k)->owned);
	clears++;
}

static int
sub_ids(const struct informer_key *k, int *ids, int max)
{
	const struct informer_sub *s;
	int		 n = 0;

	for (s = k->subs; s != NULL && n < max; s = s->next)
		ids[n++] = ((const struct my_sub *)s)->id;
	return (n);
}

/*
 * Keys: found or made (made once), their subscriptions listed and
 * unlisted in any order, the last one said; drop and fini free the
 * caller's part through clear, and the subscriptions left.
 */
START_TEST(test_index_subs)
{
	struct informer_index ix;
	struct my_key	*k, *k2;
	struct my_sub	*s[3];
	int		 made, ids[4], i;

	clears = 0;
	informer_index_init(&ix, my_clear);
	ck_assert_ptr_null(informer_index_get(&ix, "Deployment/ns/web", 0,
	    &made));
	ck_assert_int_eq(made, 0);
	k = (struct my_key *)informer_index_get(&ix, "Deployment/ns/web",
	    sizeof *k, &made);
	ck_assert_int_eq(made, 1);
	k->owned = xstrdup("mine");
	ck_assert_ptr_eq(informer_index_get(&ix, "Deployment/ns/web",
	    sizeof *k, &made), &k->k);
	ck_assert_int_eq(made, 0);
	ck_assert_uint_eq(informer_index_count(&ix), 1);

	for (i = 0; i < 3; i++) {
		s[i] = (struct my_sub *)informer_key_subscribe(&k->k,
		    sizeof *s[i]);
		s[i]->id = i;
	}
	ck_assert_int_eq(sub_ids(&k->k, ids, 4), 3);
	/* The middle, then the head, then the last. */
	ck_assert_int_eq(informer_key_unsubscribe(&k->k, &s[1]->base), 0);
	ck_assert_int_eq(sub_ids(&k->k, ids, 4), 2);
	ck_assert_int_eq(ids[0], 2);
	ck_assert_int_eq(ids[1], 0);
	ck_assert_int_eq(informer_key_unsubscribe(&k->k, &s[2]->base), 0);
	ck_assert_int_eq(sub_ids(&k->k, ids, 4), 1);
	ck_assert_int_eq(ids[0], 0);
	ck_assert_int_eq(informer_key_unsubscribe(&k->k, &s[0]->base), 1);
	ck_assert_ptr_null(k->k.subs);
	informer_index_drop(&ix, &k->k);
	ck_assert_int_eq(clears, 1);
	ck_assert_uint_eq(informer_index_count(&ix), 0);

	/* fini with a record and a subscription still in: no leak. */
	k2 = (struct my_key *)informer_index_get(&ix, "StatefulSet/ns/db",
	    sizeof *k2, NULL);
	k2->owned = xstrdup("mine too");
	(void)informer_key_subscribe(&k2->k, sizeof(struct my_sub));
	informer_index_fini(&ix);
	ck_assert_int_eq(clears, 2);

	/* No clear: the records alone. */
	informer_index_init(&ix, NULL);
	(void)informer_index_get(&ix, "a", sizeof(struct informer_key), NULL);
	informer_index_fini(&ix);
}
END_TEST

static Suite *
informer_group_suite(void)
{
	Suite	*s = suite_create("informer_group");
	TCase	*tc = tcase_create("informer_group");

	tcase_add_test(tc, test_groups_namespaced);
	tcase_add_test(tc, test_groups_cluster_wide);
	tcase_add_test(tc, test_index_subs);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(informer_group_suite()));
}
