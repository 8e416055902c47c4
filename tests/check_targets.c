/*
 * check_targets.c: the scale pools' watched targets (scheduler/targets.c),
 * over a fake informer (the targets_ops seam): the test lists and sends
 * events by hand, so every case is exact and needs no server.  The real
 * informer against kube-sim is check_informer's; the whole path (daemon,
 * kube-sim, kubectl-style writes) is tests/integration/test_targets.py.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/k8s/informer.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/log.h"
#include "scheduler/targets.h"
#include "util/informer_fake.h"
#include "util/testutil.h"

/* A subscriber: what it was told, how often. */
struct sub_rec {
	int			 calls;
	struct target_state	 last;
};

static void
on_target(const struct target_state *st, void *arg)
{
	struct sub_rec	*r = arg;

	r->calls++;
	r->last = *st;
}

static struct targets *
targets_fake(int cluster_wide)
{
	struct targets_options o;

	memset(&o, 0, sizeof o);
	o.cluster_wide = cluster_wide;
	o.ops = &fake_inf_ops;
	fake_inf_reset();
	return (targets_new(NULL, &o));
}

static void
setup(void)
{
	log_set_level(LOG_ERROR);
}

/*
 * Two pools on one target are both told; a third on a missing one is told
 * "not found" at the list; changes that do not touch the replicas, and
 * objects nobody watches, tell nobody.
 */
START_TEST(test_two_on_one)
{
	struct targets	*ts = targets_fake(0);
	struct target_sub *a, *b, *c;
	struct sub_rec	 ra, rb, rc;
	struct target_state st;
	struct targets_stats sts;
	struct informer	*i;

	memset(&ra, 0, sizeof ra);
	memset(&rb, 0, sizeof rb);
	memset(&rc, 0, sizeof rc);
	a = targets_subscribe(ts, "Deployment", "ns", "web", on_target, &ra);
	b = targets_subscribe(ts, "Deployment", "ns", "web", on_target, &rb);
	c = targets_subscribe(ts, "Deployment", "ns", "ghost", on_target, &rc);
	ck_assert(a != NULL && b != NULL && c != NULL);
	ck_assert_int_eq(fake_inf_nmade, 1);
	i = fake_inf_made[0];
	ck_assert_str_eq(i->path, "/apis/apps/v1/namespaces/ns/deployments");
	targets_get(a, &st);
	ck_assert_int_eq(st.listed, 0);
	ck_assert_int_eq(ra.calls, 0);	/* never from inside subscribe */

	fake_inf_event(i, INFORMER_ADDED, fake_deploy("ns", "web", 10, 2, 1));
	fake_inf_event(i, INFORMER_ADDED, fake_deploy("ns", "other", 11, 5, 5));
	fake_inf_sync(i);
	ck_assert_int_eq(ra.calls, 1);
	ck_assert_int_eq(rb.calls, 1);
	ck_assert(ra.last.listed && ra.last.found);
	ck_assert_int_eq(ra.last.spec_replicas, 2);
	ck_assert_int_eq(ra.last.status_replicas, 1);
	ck_assert_int_eq(ra.last.ready_replicas, 1);
	ck_assert_str_eq(ra.last.rv, "10");
	ck_assert_str_eq(ra.last.err, "");
	ck_assert_int_eq(rc.calls, 1);
	ck_assert(rc.last.listed && !rc.last.found);
	ck_assert_str_eq(rc.last.err, "deployments.apps \"ghost\" not found");

	/* Scaled by someone else: both told. */
	fake_inf_event(i, INFORMER_MODIFIED, fake_deploy("ns", "web", 12, 4, 1));
	ck_assert_int_eq(ra.calls, 2);
	ck_assert_int_eq(rb.calls, 2);
	ck_assert_int_eq(rb.last.spec_replicas, 4);
	/* A new resourceVersion, the same replicas: nobody. */
	fake_inf_event(i, INFORMER_MODIFIED, fake_deploy("ns", "web", 13, 4, 1));
	ck_assert_int_eq(ra.calls, 2);
	targets_get(a, &st);
	ck_assert_str_eq(st.rv, "13");
	/* Status moves: told. */
	fake_inf_event(i, INFORMER_MODIFIED, fake_deploy("ns", "web", 14, 4, 4));
	ck_assert_int_eq(ra.calls, 3);
	ck_assert_int_eq(ra.last.status_replicas, 4);
	/* Another object: nobody. */
	fake_inf_event(i, INFORMER_MODIFIED, fake_deploy("ns", "other", 15, 6, 5));
	ck_assert_int_eq(ra.calls + rb.calls + rc.calls, 3 + 3 + 1);

	/* Deleted, then made again. */
	fake_inf_event(i, INFORMER_DELETED, fake_deploy("ns", "web", 16, 4, 4));
	ck_assert_int_eq(ra.calls, 4);
	ck_assert(ra.last.listed && !ra.last.found);
	ck_assert_str_eq(rb.last.err, "deployments.apps \"web\" not found");
	fake_inf_event(i, INFORMER_ADDED, fake_deploy("ns", "web", 17, 1, 0));
	ck_assert_int_eq(rb.calls, 5);
	ck_assert(rb.last.found);
	ck_assert_int_eq(rb.last.spec_replicas, 1);
	ck_assert_str_eq(rb.last.err, "");

	targets_get_stats(ts, &sts);
	ck_assert_uint_eq(sts.informers, 1);
	ck_assert_uint_eq(sts.targets, 2);
	ck_assert_uint_eq(sts.subscriptions, 3);
	targets_unsubscribe(ts, a);
	targets_unsubscribe(ts, b);
	targets_unsubscribe(ts, c);
	ck_assert_int_eq(fake_inf_nlive, 0);	/* the last one freed the watch */
	targets_free(ts);
}
END_TEST

/* A re-list without the object (its DELETED missed): not found. */
START_TEST(test_relist_drops)
{
	struct targets	*ts = targets_fake(0);
	struct sub_rec	 r;
	struct informer	*i;

	memset(&r, 0, sizeof r);
	ck_assert_ptr_nonnull(targets_subscribe(ts, "StatefulSet", "ns", "db",
	    on_target, &r));
	i = fake_inf_made[0];
	ck_assert_str_eq(i->path, "/apis/apps/v1/namespaces/ns/statefulsets");
	fake_inf_event(i, INFORMER_ADDED, fake_deploy("ns", "db", 3, 2, 2));
	fake_inf_sync(i);
	ck_assert(r.last.found);
	cJSON_DeleteItemFromArray(i->objs, fake_inf_index(i, "ns", "db"));
	fake_inf_sync(i);
	ck_assert_int_eq(r.calls, 2);
	ck_assert(!r.last.found);
	ck_assert_str_eq(r.last.err, "statefulsets.apps \"db\" not found");
	targets_free(ts);	/* with a subscription in */
	ck_assert_int_eq(fake_inf_nlive, 0);
}
END_TEST

/*
 * Informers: one per (kind, namespace) in use, made with its first
 * target and freed with its last; or one per kind cluster-wide.
 */
START_TEST(test_informer_life)
{
	struct targets	*ts = targets_fake(0);
	struct target_sub *s[5];
	struct sub_rec	 r;

	memset(&r, 0, sizeof r);
	s[0] = targets_subscribe(ts, "Deployment", "a", "x", on_target, &r);
	s[1] = targets_subscribe(ts, "Deployment", "a", "y", on_target, &r);
	s[2] = targets_subscribe(ts, "Deployment", "b", "x", on_target, &r);
	s[3] = targets_subscribe(ts, "StatefulSet", "a", "x", on_target, &r);
	s[4] = targets_subscribe(ts, "SandboxWarmPool", "a", "x", on_target,
	    &r);
	ck_assert_int_eq(fake_inf_nlive, 4);
	ck_assert_str_eq(fake_inf_made[3]->path, "/apis/extensions.agents.x-k8s.io/"
	    "v1beta1/namespaces/a/sandboxwarmpools");
	ck_assert_ptr_null(targets_subscribe(ts, "Pod", "a", "x", on_target,
	    &r));
	ck_assert_ptr_null(targets_subscribe(NULL, "Deployment", "a", "x",
	    on_target, &r));
	targets_unsubscribe(ts, s[0]);
	ck_assert_int_eq(fake_inf_nlive, 4);
	targets_unsubscribe(ts, s[1]);
	ck_assert_int_eq(fake_inf_nlive, 3);
	ck_assert_ptr_null(fake_inf_made[0]);
	targets_unsubscribe(ts, NULL);
	targets_unsubscribe(ts, s[2]);
	targets_unsubscribe(ts, s[3]);
	targets_unsubscribe(ts, s[4]);
	ck_assert_int_eq(fake_inf_nlive, 0);
	targets_free(ts);

	ts = targets_fake(1);
	s[0] = targets_subscribe(ts, "Deployment", "a", "x", on_target, &r);
	s[1] = targets_subscribe(ts, "Deployment", "b", "x", on_target, &r);
	s[2] = targets_subscribe(ts, "SandboxWarmPool", "c", "x", on_target,
	    &r);
	ck_assert_int_eq(fake_inf_nlive, 2);
	ck_assert_str_eq(fake_inf_made[0]->path, "/apis/apps/v1/deployments");
	ck_assert_str_eq(fake_inf_made[1]->path, "/apis/extensions.agents.x-k8s.io/"
	    "v1beta1/sandboxwarmpools");
	/* Cluster-wide: the namespace in the object picks the target. */
	fake_inf_event(fake_inf_made[0], INFORMER_ADDED, fake_deploy("b", "x", 5, 3, 0));
	fake_inf_sync(fake_inf_made[0]);
	targets_get(s[1], &r.last);
	ck_assert_int_eq(r.last.spec_replicas, 3);
	targets_get(s[0], &r.last);
	ck_assert(r.last.listed && !r.last.found);
	targets_free(ts);
	ck_assert_int_eq(fake_inf_nlive, 0);
}
END_TEST

/*
 * Ready once every informer in use has listed; a subscriber that comes
 * after the list knows its target at once.
 */
START_TEST(test_synced)
{
	struct targets	*ts = targets_fake(0);
	struct as_buf	 b = { NULL, 0, 0 };
	struct sub_rec	 r;
	struct target_sub *late;
	struct target_state st;
	char		 ns[16];
	int		 k;

	memset(&r, 0, sizeof r);
	ck_assert_int_eq(targets_synced(ts, NULL), 1);
	ck_assert_int_eq(targets_synced(NULL, NULL), 1);
	for (k = 0; k < 8; k++) {
		snprintf(ns, sizeof ns, "n%d", k);
		targets_subscribe(ts, "Deployment", ns, "x", on_target, &r);
	}
	ck_assert_int_eq(targets_synced(ts, &b), 0);
	ck_assert_ptr_nonnull(strstr(b.p, "Deployments of n"));
	ck_assert_ptr_nonnull(strstr(b.p, "not listed yet"));
	ck_assert_ptr_nonnull(strstr(b.p, "and 3 more"));
	free(b.p);
	for (k = 0; k < 7; k++)
		fake_inf_sync(fake_inf_made[k]);
	ck_assert_int_eq(targets_synced(ts, NULL), 0);
	fake_inf_sync(fake_inf_made[7]);
	ck_assert_int_eq(targets_synced(ts, NULL), 1);

	fake_inf_event(fake_inf_made[0], INFORMER_ADDED, fake_deploy("n0", "y", 9, 7, 0));
	late = targets_subscribe(ts, "Deployment", "n0", "y", on_target, &r);
	targets_get(late, &st);
	ck_assert(st.listed && st.found);
	ck_assert_int_eq(st.spec_replicas, 7);
	targets_get(NULL, &st);
	ck_assert_int_eq(st.listed, 0);
	targets_free(ts);
}
END_TEST

/*
 * Nothing per event walks the targets: with 2,000 targets in one
 * namespace, one event tells exactly its own subscriber (a count).
 */
START_TEST(test_event_cost)
{
	struct targets	*ts = targets_fake(1);
	struct targets_stats a, b;
	struct sub_rec	*r;
	char		 name[32];
	int		 k, n = 2000;

	r = xcalloc((size_t)n, sizeof *r);
	for (k = 0; k < n; k++) {
		snprintf(name, sizeof name, "d%d", k);
		targets_subscribe(ts, "Deployment", "ns", name, on_target,
		    &r[k]);
	}
	fake_inf_sync(fake_inf_made[0]);
	targets_get_stats(ts, &a);
	ck_assert_uint_eq(a.notified, (uint64_t)n);	/* all not found */
	fake_inf_event(fake_inf_made[0], INFORMER_ADDED, fake_deploy("ns", "d77", 2, 1, 0));
	fake_inf_event(fake_inf_made[0], INFORMER_ADDED, fake_deploy("elsewhere", "d5", 3, 1,
	    0));
	targets_get_stats(ts, &b);
	ck_assert_uint_eq(b.notified - a.notified, 1);
	ck_assert_uint_eq(b.events - a.events, 2);
	ck_assert_int_eq(r[77].calls, 2);
	ck_assert_int_eq(r[5].calls, 1);
	targets_free(ts);
	free(r);
}
END_TEST

/* The cache keeps names, versions and replicas; nothing else. */
START_TEST(test_slim)
{
	cJSON	*o = fake_deploy("ns", "web", 4, 3, 2);
	char	*text;

	cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(o,
	    "metadata"), "deletionTimestamp", "2026-12-06T00:00:00Z");
	targets_slim(o, NULL);
	text = cJSON_PrintUnformatted(o);
	ck_assert_str_eq(text, "{\"metadata\":{\"name\":\"web\",\"namespace\":"
	    "\"ns\",\"resourceVersion\":\"4\",\"uid\":\"u-web\","
	    "\"deletionTimestamp\":\"2026-12-06T00:00:00Z\"},\"spec\":"
	    "{\"replicas\":3},\"status\":{\"replicas\":2,\"readyReplicas\":2}}");
	free(text);
	cJSON_Delete(o);
}
END_TEST

struct parse_row {
	const char	*json;
	int		 found;
	long		 spec, status, ready;
	const char	*err;
};

static const struct parse_row parse_rows[] = {
	{ NULL, 0, 0, 0, 0, "sandboxwarmpools.extensions.agents.x-k8s.io "
	    "\"w\" not found" },
	{ "{\"metadata\":{\"name\":\"w\"}}", 1, 0, 0, 0, "" },
	{ "{\"spec\":{\"replicas\":5},\"status\":{}}", 1, 5, 0, 0, "" },
	{ "{\"spec\":{\"replicas\":5},\"status\":{\"replicas\":4,"
	    "\"readyReplicas\":3}}", 1, 5, 4, 3, "" },
	{ "{\"spec\":{\"replicas\":\"5\"}}", 1, 0, 0, 0,
	    "spec.replicas is not a replica count" },
	{ "{\"spec\":{\"replicas\":-1}}", 1, 0, 0, 0,
	    "spec.replicas is not a replica count" },
	{ "{\"spec\":{\"replicas\":1.5}}", 1, 0, 0, 0,
	    "spec.replicas is not a replica count" },
	{ "{\"status\":{\"readyReplicas\":3e10}}", 1, 0, 0, 0,
	    "status.readyReplicas is not a replica count" },
};

START_TEST(test_parse)
{
	const struct parse_row *row = &parse_rows[_i];
	struct target_state st;
	cJSON		*o = row->json != NULL ? cJSON_Parse(row->json) : NULL;

	targets_parse(o, "SandboxWarmPool", "w", &st);
	ck_assert_int_eq(st.listed, 1);
	ck_assert_int_eq(st.found, row->found);
	if (row->err[0] == '\0') {
		ck_assert_int_eq(st.spec_replicas, row->spec);
		ck_assert_int_eq(st.status_replicas, row->status);
		ck_assert_int_eq(st.ready_replicas, row->ready);
	}
	ck_assert_str_eq(st.err, row->err);
	cJSON_Delete(o);
}
END_TEST

struct rv_row {
	const char	*a, *b;
	int		 older;
};

static const struct rv_row rv_rows[] = {
	{ "9", "10", -1 },
	{ "10", "9", 0 },
	{ "10", "10", 0 },
	{ "123456789012345678", "123456789012345679", -1 },
	{ "", "10", 0 },
	{ "10", "", 0 },
	{ "abc", "10", 0 },	/* not comparable: take it */
	{ "10", "1a", 0 },
	{ "09", "10", -1 },
};

START_TEST(test_rv_older)
{
	const struct rv_row *row = &rv_rows[_i];

	ck_assert_msg(targets_rv_older(row->a, row->b) == row->older,
	    "%s vs %s", row->a, row->b);
}
END_TEST

static Suite *
targets_suite(void)
{
	Suite	*s = suite_create("targets");
	TCase	*tc = tcase_create("targets");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_two_on_one);
	tcase_add_test(tc, test_relist_drops);
	tcase_add_test(tc, test_informer_life);
	tcase_add_test(tc, test_synced);
	tcase_add_test(tc, test_event_cost);
	tcase_add_test(tc, test_slim);
	tcase_add_loop_test(tc, test_parse, 0,
	    (int)AS_ARRAY_SIZE(parse_rows));
	tcase_add_loop_test(tc, test_rv_older, 0, (int)AS_ARRAY_SIZE(rv_rows));
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(targets_suite()));
}
