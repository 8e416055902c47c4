/*
 * check_owners.c: who else scales a target (scheduler/owners.c), over the
 * fake informer (tests/util/informer_fake.c): HPAs and ScaledObjects
 * listed and changed by hand.  The whole path (daemon, kube-sim) is
 * tests/integration/test_adopt.py.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/k8s/informer.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/log.h"
#include "scheduler/owners.h"
#include "util/informer_fake.h"
#include "util/testutil.h"

static const struct key_row {
	const char	*obj;
	const char	*key;	/* NULL: none */
} key_rows[] = {
	{ "{\"metadata\":{\"name\":\"h\",\"namespace\":\"ns\"},\"spec\":{"
	    "\"scaleTargetRef\":{\"apiVersion\":\"apps/v1\",\"kind\":"
	    "\"Deployment\",\"name\":\"web\"}}}", "Deployment/ns/web" },
	/* A ScaledObject's kind defaults to Deployment (KEDA's docs). */
	{ "{\"metadata\":{\"name\":\"s\",\"namespace\":\"ns\"},\"spec\":{"
	    "\"scaleTargetRef\":{\"name\":\"web\"}}}", "Deployment/ns/web" },
	{ "{\"metadata\":{\"name\":\"s\",\"namespace\":\"ns\"},\"spec\":{"
	    "\"scaleTargetRef\":{\"kind\":\"StatefulSet\",\"name\":\"db\"}}}",
	    "StatefulSet/ns/db" },
	{ "{\"metadata\":{\"name\":\"s\",\"namespace\":\"ns\"},\"spec\":{"
	    "\"scaleTargetRef\":{\"kind\":\"Deployment\"}}}", NULL },
	{ "{\"metadata\":{\"name\":\"s\",\"namespace\":\"ns\"},\"spec\":{"
	    "\"scaleTargetRef\":{\"name\":\"\"}}}", NULL },
	{ "{\"metadata\":{\"name\":\"s\"},\"spec\":{\"scaleTargetRef\":{"
	    "\"name\":\"web\"}}}", NULL },
	{ "{\"metadata\":{\"name\":\"s\",\"namespace\":\"ns\"},\"spec\":{}}",
	    NULL },
	{ "[]", NULL },
};

START_TEST(test_target_key)
{
	const struct key_row *r = &key_rows[_i];
	cJSON		*o = cJSON_Parse(r->obj);
	char		 key[64];

	ck_assert_ptr_nonnull(o);
	if (r->key == NULL)
		ck_assert_int_eq(owners_target_key(o, key, sizeof key), -1);
	else {
		ck_assert_int_eq(owners_target_key(o, key, sizeof key), 0);
		ck_assert_str_eq(key, r->key);
	}
	/* Too small a buffer: none, never a cut key. */
	ck_assert_int_eq(owners_target_key(o, key, 8), -1);
	cJSON_Delete(o);
}
END_TEST

static cJSON *
owner_obj(const char *ns, const char *name, const char *kind,
    const char *target)
{
	cJSON	*o = cJSON_CreateObject(), *md, *ref;

	md = cJSON_AddObjectToObject(o, "metadata");
	cJSON_AddStringToObject(md, "name", name);
	cJSON_AddStringToObject(md, "namespace", ns);
	cJSON_AddStringToObject(md, "resourceVersion", "1");
	cJSON_AddItemToObject(md, "managedFields", cJSON_CreateArray());
	ref = cJSON_AddObjectToObject(cJSON_AddObjectToObject(o, "spec"),
	    "scaleTargetRef");
	if (kind != NULL)
		cJSON_AddStringToObject(ref, "kind", kind);
	cJSON_AddStringToObject(ref, "name", target);
	return (o);
}

static int	 calls;

static void
on_change(void *arg)
{
	(void)arg;
	calls++;
}

static struct owners *
owners_fake(int cluster_wide)
{
	struct owners_options o;

	memset(&o, 0, sizeof o);
	o.cluster_wide = cluster_wide;
	o.ops = &fake_inf_ops;
	fake_inf_reset();
	calls = 0;
	return (owners_new(NULL, &o));
}

static const char *
who_of(const struct owner_sub *s, int *known)
{
	static char	 who[128];

	owners_get(s, who, sizeof who, known);
	return (who);
}

/*
 * One subscription: both informers made for its namespace; unknown until
 * each lists or fails; an HPA then a ScaledObject on the target (the
 * ScaledObject named first: KEDA makes the HPA for it), a retarget, a
 * delete; the informers go with the last subscription.
 */
START_TEST(test_owners_follow)
{
	struct owners	*o = owners_fake(0);
	struct owner_sub *s, *t;
	struct informer	*so, *hpa;
	int		 known;

	s = owners_subscribe(o, "Deployment", "ns", "web", on_change, NULL);
	t = owners_subscribe(o, "Deployment", "ns", "db", on_change, NULL);
	ck_assert_int_eq(fake_inf_nmade, 2);
	so = fake_inf_made[0];
	hpa = fake_inf_made[1];
	ck_assert_str_eq(so->path, "/apis/keda.sh/v1alpha1/namespaces/ns/"
	    "scaledobjects");
	ck_assert_str_eq(hpa->path, "/apis/autoscaling/v2/namespaces/ns/"
	    "horizontalpodautoscalers");
	ck_assert_str_eq(who_of(s, &known), "");
	ck_assert_int_eq(known, 0);
	fake_inf_sync(hpa);
	who_of(s, &known);
	ck_assert_int_eq(known, 0);
	so->errors = 1;		/* 404: KEDA not installed */
	who_of(s, &known);
	ck_assert_int_eq(known, 1);

	fake_inf_event(hpa, INFORMER_ADDED, owner_obj("ns", "h", "Deployment",
	    "web"));
	ck_assert_int_eq(calls, 1);
	ck_assert_str_eq(who_of(s, &known), "HorizontalPodAutoscaler h");
	ck_assert_str_eq(who_of(t, &known), "");
	fake_inf_event(so, INFORMER_ADDED, owner_obj("ns", "k", NULL, "web"));
	ck_assert_str_eq(who_of(s, &known), "ScaledObject k");
	/* Same target again: nobody told. */
	fake_inf_event(so, INFORMER_MODIFIED, owner_obj("ns", "k", NULL,
	    "web"));
	ck_assert_int_eq(calls, 2);
	/* Retargeted: both told. */
	fake_inf_event(so, INFORMER_MODIFIED, owner_obj("ns", "k",
	    "Deployment", "db"));
	ck_assert_int_eq(calls, 4);
	ck_assert_str_eq(who_of(s, &known), "HorizontalPodAutoscaler h");
	ck_assert_str_eq(who_of(t, &known), "ScaledObject k");
	/* Another kind of the same name is another target. */
	fake_inf_event(hpa, INFORMER_MODIFIED, owner_obj("ns", "h",
	    "StatefulSet", "web"));
	ck_assert_str_eq(who_of(s, &known), "");
	fake_inf_event(so, INFORMER_DELETED, owner_obj("ns", "k", NULL, "db"));
	ck_assert_str_eq(who_of(t, &known), "");
	owners_unsubscribe(o, s);
	ck_assert_int_eq(fake_inf_nlive, 2);
	owners_unsubscribe(o, t);
	ck_assert_int_eq(fake_inf_nlive, 0);
	owners_free(o);
}
END_TEST

/*
 * Cluster-wide: one informer per resource for every namespace; an owner
 * seen before the pool subscribed is found at once; owners_free() with
 * subscriptions still in.
 */
START_TEST(test_owners_cluster_wide)
{
	struct owners	*o = owners_fake(1);
	struct owner_sub *a, *b;
	int		 known;

	a = owners_subscribe(o, "Deployment", "n1", "web", on_change, NULL);
	ck_assert_int_eq(fake_inf_nmade, 2);
	ck_assert_str_eq(fake_inf_made[1]->path,
	    "/apis/autoscaling/v2/horizontalpodautoscalers");
	fake_inf_event(fake_inf_made[1], INFORMER_ADDED, owner_obj("n2", "h",
	    "Deployment", "web"));
	ck_assert_int_eq(calls, 0);	/* nobody follows n2/web */
	b = owners_subscribe(o, "Deployment", "n2", "web", on_change, NULL);
	ck_assert_int_eq(fake_inf_nmade, 2);
	ck_assert_str_eq(who_of(b, &known), "HorizontalPodAutoscaler h");
	ck_assert_str_eq(who_of(a, &known), "");
	ck_assert_str_eq(who_of(NULL, &known), "");
	ck_assert_int_eq(known, 1);
	ck_assert_ptr_null(owners_subscribe(NULL, "Deployment", "n", "x",
	    on_change, NULL));
	owners_free(o);
	ck_assert_int_eq(fake_inf_nlive, 0);
}
END_TEST

/*
 * Two HPAs on one target and the named one deleted: the message names the
 * other, still there, never the deleted one (issue 18, i18adopt's known
 * issue: the name was kept until the count fell to zero).
 */
START_TEST(test_owners_named_deleted)
{
	struct owners	*o = owners_fake(0);
	struct owner_sub *s;
	struct informer	*hpa;
	const char	*other;
	char		 named[128];
	int		 known;

	s = owners_subscribe(o, "Deployment", "ns", "web", on_change, NULL);
	hpa = fake_inf_made[1];
	fake_inf_event(hpa, INFORMER_ADDED, owner_obj("ns", "h1",
	    "Deployment", "web"));
	fake_inf_event(hpa, INFORMER_ADDED, owner_obj("ns", "h2",
	    "Deployment", "web"));
	fake_inf_event(hpa, INFORMER_ADDED, owner_obj("ns", "h3",
	    "Deployment", "web"));
	/* The first seen is named while it stays. */
	ck_assert_str_eq(who_of(s, &known), "HorizontalPodAutoscaler h1");
	fake_inf_event(hpa, INFORMER_DELETED, owner_obj("ns", "h1",
	    "Deployment", "web"));
	as_strlcpy(named, who_of(s, &known), sizeof named);
	ck_assert_msg(strcmp(named, "HorizontalPodAutoscaler h2") == 0 ||
	    strcmp(named, "HorizontalPodAutoscaler h3") == 0, "%s", named);
	/* Retargeted away counts as gone from web: the other is named. */
	other = strcmp(named, "HorizontalPodAutoscaler h2") == 0 ? "h3" : "h2";
	fake_inf_event(hpa, INFORMER_MODIFIED, owner_obj("ns",
	    named + strlen("HorizontalPodAutoscaler "), "Deployment", "db"));
	ck_assert_str_eq(who_of(s, &known) + strlen(
	    "HorizontalPodAutoscaler "), other);
	fake_inf_event(hpa, INFORMER_DELETED, owner_obj("ns", "h2",
	    "Deployment", "web"));
	fake_inf_event(hpa, INFORMER_DELETED, owner_obj("ns", "h3",
	    "Deployment", "web"));
	ck_assert_str_eq(who_of(s, &known), "");
	owners_free(o);
}
END_TEST

static Suite *
owners_suite(void)
{
	Suite	*s = suite_create("owners");
	TCase	*tc = tcase_create("owners");

	log_set_level(LOG_ERROR);
	tcase_add_loop_test(tc, test_target_key, 0,
	    (int)AS_ARRAY_SIZE(key_rows));
	tcase_add_test(tc, test_owners_follow);
	tcase_add_test(tc, test_owners_cluster_wide);
	tcase_add_test(tc, test_owners_named_deleted);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(owners_suite()));
}
