/*
 * check_crd.c: the pure parts of CRD mode (crd.h): building the config
 * from objects judged one by one, the oldest AgentQuota of a namespace
 * winning, and the status documents with their conditions, whose
 * lastTransitionTime moves only when their status flips.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "scheduler/config.h"
#include "scheduler/crd.h"
#include "util/testutil.h"

/* An object as the API server returns it: server metadata, status. */
#define POOL_OBJ(name, addr, extra) "{\"apiVersion\":\"agentscaler.io/" \
	"v1alpha1\",\"kind\":\"AgentPool\",\"metadata\":{\"name\":\"" name \
	"\",\"namespace\":\"team-a\",\"uid\":\"u-" name "\",\"generation\":2," \
	"\"resourceVersion\":\"17\",\"creationTimestamp\":" \
	"\"2026-01-01T00:00:00Z\",\"managedFields\":[]},\"spec\":{\"mode\":" \
	"\"scale\",\"source\":{\"type\":\"redis-list\",\"address\":\"" addr \
	"\",\"queue\":\"q\"" extra "},\"target\":{\"kind\":\"Deployment\"," \
	"\"name\":\"web\"},\"scaling\":{\"maxReplicas\":5}},\"status\":" \
	"{\"replicas\":1}}"
#define QUOTA_OBJ(name, ns, ts) "{\"metadata\":{\"name\":\"" name "\"," \
	"\"namespace\":\"" ns "\",\"creationTimestamp\":\"" ts "\"},\"spec\":" \
	"{\"maxSandboxes\":5}}"

static struct config *
build(const char *const *docs, const int *quota, size_t n,
    struct crd_object *objs, cJSON **keep)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		keep[i] = cJSON_Parse(docs[i]);
		ck_assert_ptr_nonnull(keep[i]);
		memset(&objs[i], 0, sizeof objs[i]);
		objs[i].quota = quota[i];
		objs[i].obj = keep[i];
	}
	return (crd_build_config(objs, n, NULL));
}

START_TEST(test_each_object_alone)
{
	const char *const docs[] = {
	    POOL_OBJ("good", "redis://127.0.0.1:6379/0", ""),
	    POOL_OBJ("bad-address", "redis://", ""),
	    POOL_OBJ("bad-auth", "redis://127.0.0.1:6379/0",
		",\"passwordFile\":\"/a\",\"passwordEnv\":\"B\""),
	    POOL_OBJ("good-2", "redis://127.0.0.1:6380/0", ""),
	};
	const int	 quota[] = { 0, 0, 0, 0 };
	struct crd_object objs[4];
	cJSON		*keep[4];
	struct config	*c;
	size_t		 i;

	c = build(docs, quota, 4, objs, keep);
	ck_assert_uint_eq(c->npools, 2);
	ck_assert_str_eq(c->pools[0].name, "good");
	ck_assert_str_eq(c->pools[1].name, "good-2");
	ck_assert_int_eq(c->pools[0].scaling.max_replicas, 5);
	ck_assert(objs[0].valid && objs[3].valid);
	ck_assert(!objs[1].valid && !objs[2].valid);
	/* The parser's message, with the field path of the object. */
	ck_assert_str_eq(objs[1].err, "spec.source: the address has no host");
	ck_assert_str_eq(objs[2].err, "spec.source: give at most one of "
	    "authSecretRef, passwordFile, passwordEnv");
	ck_assert_str_eq(objs[0].err, "");
	config_free(c);
	for (i = 0; i < 4; i++)
		cJSON_Delete(keep[i]);
}
END_TEST

/*
 * crd_slim() keeps what CRD mode reads: the config built from slimmed
 * objects is the one built from whole ones (same pools, same verdicts),
 * and the metadata crd_upsert() reads and the status stay; the server's
 * bookkeeping and kubectl's copy of the spec go.
 */
START_TEST(test_slim_builds_the_same)
{
	const char *const docs[] = {
	    POOL_OBJ("good", "redis://127.0.0.1:6379/0", ""),
	    POOL_OBJ("bad-address", "redis://", ""),
	    "{\"metadata\":{\"name\":\"q\",\"namespace\":\"team-a\","
		"\"creationTimestamp\":\"2026-01-01T00:00:00Z\",\"annotations\":"
		"{\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\"},"
		"\"labels\":{\"a\":\"b\"},\"finalizers\":[\"f\"]},\"spec\":"
		"{\"maxSandboxes\":5}}",
	    QUOTA_OBJ("q2", "team-a", "2026-02-01T00:00:00Z"),
	};
	const int	 quota[] = { 0, 0, 1, 1 };
	struct crd_object whole[4], slim[4];
	cJSON		*kw[4], *ks[4];
	struct config	*cw, *cs;
	char		*text;
	size_t		 i;

	cw = build(docs, quota, 4, whole, kw);
	cs = build(docs, quota, 4, slim, ks);
	config_free(cs);
	for (i = 0; i < 4; i++)
		crd_slim(ks[i], NULL);
	cs = crd_build_config(slim, 4, NULL);
	ck_assert_uint_eq(cs->npools, cw->npools);
	ck_assert_uint_eq(cs->nquotas, cw->nquotas);
	ck_assert_uint_eq(cs->npools, 1);
	ck_assert_uint_eq(cs->nquotas, 1);
	ck_assert_str_eq(cs->pools[0].name, cw->pools[0].name);
	ck_assert_str_eq(cs->pools[0].source.address,
	    cw->pools[0].source.address);
	ck_assert_int_eq(cs->pools[0].scaling.max_replicas,
	    cw->pools[0].scaling.max_replicas);
	ck_assert_str_eq(cs->quotas[0].name, "q");
	ck_assert_int_eq(cs->quotas[0].max_sandboxes,
	    cw->quotas[0].max_sandboxes);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(slim[i].valid, whole[i].valid);
		ck_assert_str_eq(slim[i].err, whole[i].err);
	}
	text = cJSON_PrintUnformatted(ks[0]);
	ck_assert_str_eq(text, "{\"metadata\":{\"name\":\"good\","
	    "\"namespace\":\"team-a\",\"uid\":\"u-good\",\"generation\":2,"
	    "\"resourceVersion\":\"17\",\"creationTimestamp\":"
	    "\"2026-01-01T00:00:00Z\"},\"spec\":{\"mode\":\"scale\","
	    "\"source\":{\"type\":\"redis-list\",\"address\":"
	    "\"redis://127.0.0.1:6379/0\",\"queue\":\"q\"},\"target\":{"
	    "\"kind\":\"Deployment\",\"name\":\"web\"},\"scaling\":{"
	    "\"maxReplicas\":5}},\"status\":{\"replicas\":1}}");
	free(text);
	text = cJSON_PrintUnformatted(ks[2]);
	ck_assert_ptr_null(strstr(text, "last-applied"));
	ck_assert_ptr_null(strstr(text, "labels"));
	ck_assert_ptr_null(strstr(text, "finalizers"));
	free(text);
	config_free(cw);
	config_free(cs);
	for (i = 0; i < 4; i++) {
		cJSON_Delete(kw[i]);
		cJSON_Delete(ks[i]);
	}
}
END_TEST

/*
 * The pause annotations survive the slimming (ours only, not kubectl's
 * copy of the spec) and reach the config; so does the pool's age.
 */
START_TEST(test_slim_keeps_pause)
{
	const char *const docs[] = {
	    "{\"metadata\":{\"name\":\"p\",\"namespace\":\"team-a\","
		"\"creationTimestamp\":\"2026-01-01T00:00:00Z\",\"annotations\":"
		"{\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\","
		"\"agentscaler.io/paused-replicas\":\"2\"}},\"spec\":{\"source\":"
		"{\"type\":\"redis-list\",\"address\":\"redis://h:6379/0\","
		"\"queue\":\"q\"},\"target\":{\"kind\":\"Deployment\",\"name\":"
		"\"web\"}}}",
	};
	const int	 quota[] = { 0 };
	struct crd_object objs[1];
	cJSON		*keep[1];
	struct config	*c;
	char		*text;

	c = build(docs, quota, 1, objs, keep);
	config_free(c);
	crd_slim(keep[0], NULL);
	text = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetObjectItem(
	    keep[0], "metadata"), "annotations"));
	ck_assert_str_eq(text, "{\"agentscaler.io/paused-replicas\":\"2\"}");
	free(text);
	objs[0].created = 1767225600;
	c = crd_build_config(objs, 1, NULL);
	ck_assert_uint_eq(c->npools, 1);
	ck_assert_int_eq(c->pools[0].paused, 1);
	ck_assert_int_eq(c->pools[0].paused_replicas, 2);
	ck_assert_double_eq(c->pools[0].created, 1767225600);
	config_free(c);
	cJSON_Delete(keep[0]);
}
END_TEST

START_TEST(test_oldest_quota_wins)
{
	const char *const docs[] = {
	    QUOTA_OBJ("zz-newer", "team-a", "2026-03-01T00:00:00Z"),
	    QUOTA_OBJ("b-old", "team-a", "2026-01-01T00:00:00Z"),
	    QUOTA_OBJ("a-old", "team-a", "2026-01-01T00:00:00Z"),
	    QUOTA_OBJ("only", "team-b", "2026-05-01T00:00:00Z"),
	};
	struct crd_object objs[4];
	cJSON		*keep[4];
	struct config	*c;
	size_t		 i;

	for (i = 0; i < 4; i++) {
		keep[i] = cJSON_Parse(docs[i]);
		memset(&objs[i], 0, sizeof objs[i]);
		objs[i].quota = 1;
		objs[i].obj = keep[i];
		as_parse_rfc3339(cJSON_GetObjectItem(cJSON_GetObjectItem(
		    keep[i], "metadata"), "creationTimestamp")->valuestring,
		    &objs[i].created);
	}
	c = crd_build_config(objs, 4, NULL);
	ck_assert_uint_eq(c->nquotas, 2);
	ck_assert_str_eq(config_quota_for(c, "team-a")->name, "a-old");
	ck_assert_str_eq(config_quota_for(c, "team-b")->name, "only");
	ck_assert(!objs[0].valid && !objs[1].valid && objs[2].valid &&
	    objs[3].valid);
	ck_assert_ptr_nonnull(strstr(objs[0].err, "already has AgentQuota "
	    "a-old, the oldest"));
	ck_assert_ptr_nonnull(strstr(objs[1].err, "a-old"));
	config_free(c);
	for (i = 0; i < 4; i++)
		cJSON_Delete(keep[i]);
}
END_TEST

static const char *
cond(const cJSON *st, const char *type, const char *field)
{
	const cJSON	*it;

	cJSON_ArrayForEach(it, cJSON_GetObjectItem(st, "conditions"))
		if (strcmp(cJSON_GetObjectItem(it, "type")->valuestring,
		    type) == 0)
			return (cJSON_GetObjectItem(it, field)->valuestring);
	return (NULL);
}

START_TEST(test_pool_status)
{
	struct crd_pool_status s;
	cJSON		*a, *b, *c;
	const double	 t0 = 1767225600;	/* 2026-01-01T00:00:00Z */

	memset(&s, 0, sizeof s);
	s.replicas = 3;
	s.desired = 3;
	s.backlog = 7;
	s.in_flight = 2;
	s.last_scale = t0;
	s.started = 1;
	s.source_ok = 1;
	s.warm_replicas = -1;
	a = crd_pool_status_json(&s, 4, NULL, t0 + 10);
	ck_assert_int_eq(cJSON_GetObjectItem(a, "replicas")->valueint, 3);
	ck_assert_int_eq(cJSON_GetObjectItem(a, "backlog")->valueint, 7);
	ck_assert_int_eq(cJSON_GetObjectItem(a, "observedGeneration")->valueint,
	    4);
	ck_assert_str_eq(cJSON_GetObjectItem(a, "lastScaleTime")->valuestring,
	    "2026-01-01T00:00:00Z");
	ck_assert_ptr_null(cJSON_GetObjectItem(a, "claims"));
	ck_assert_str_eq(cond(a, "Ready", "status"), "True");
	ck_assert_str_eq(cond(a, "Active", "status"), "True");
	ck_assert_str_eq(cond(a, "QuotaLimited", "status"), "False");
	ck_assert_str_eq(cond(a, "SourceError", "status"), "False");
	ck_assert_str_eq(cond(a, "Ready", "lastTransitionTime"),
	    "2026-01-01T00:00:10Z");

	/* Same state later: the very same document (nothing to write). */
	b = crd_pool_status_json(&s, 4, a, t0 + 100);
	ck_assert(cJSON_Compare(a, b, 1));

	/* The source breaks: Ready and SourceError flip, others keep time. */
	s.source_ok = 0;
	as_strlcpy(s.source_err, "connection refused", sizeof s.source_err);
	c = crd_pool_status_json(&s, 4, b, t0 + 200);
	ck_assert_str_eq(cond(c, "Ready", "status"), "False");
	ck_assert_str_eq(cond(c, "Ready", "reason"), "SourceError");
	ck_assert_str_eq(cond(c, "Ready", "lastTransitionTime"),
	    "2026-01-01T00:03:20Z");
	ck_assert_str_eq(cond(c, "SourceError", "status"), "True");
	ck_assert_str_eq(cond(c, "SourceError", "message"),
	    "connection refused");
	ck_assert_str_eq(cond(c, "Active", "lastTransitionTime"),
	    "2026-01-01T00:00:10Z");
	cJSON_Delete(a);
	cJSON_Delete(b);
	cJSON_Delete(c);

	/* Dispatch: claims and the warm pool. */
	memset(&s, 0, sizeof s);
	s.dispatch = 1;
	s.replicas = 2;
	s.claims_warm = 2;
	s.claims_pending = 1;
	s.warm_replicas = 2;
	s.warm_ready = 1;
	s.quota_limited = 1;
	as_strlcpy(s.quota_msg, "3 tasks deferred", sizeof s.quota_msg);
	a = crd_pool_status_json(&s, 1, NULL, t0);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "claims"),
	    "warm")->valueint, 2);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "claims"),
	    "pending")->valueint, 1);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(a,
	    "warmPool"), "readyReplicas")->valueint, 1);
	ck_assert_str_eq(cond(a, "QuotaLimited", "status"), "True");
	ck_assert_str_eq(cond(a, "QuotaLimited", "message"),
	    "3 tasks deferred");
	ck_assert_str_eq(cond(a, "Ready", "reason"), "Starting");
	ck_assert_ptr_null(cJSON_GetObjectItem(a, "lastScaleTime"));
	/* Shadow, Paused and Conflict: present only while true. */
	ck_assert_ptr_null(cond(a, "Shadow", "status"));
	ck_assert_ptr_null(cond(a, "Paused", "status"));
	ck_assert_ptr_null(cond(a, "Conflict", "status"));
	cJSON_Delete(a);
	memset(&s, 0, sizeof s);
	s.shadow = 1;
	as_strlcpy(s.hold_msg, "would scale Deployment/web to 3 (now 1)",
	    sizeof s.hold_msg);
	as_strlcpy(s.conflict, "HorizontalPodAutoscaler web scales it",
	    sizeof s.conflict);
	a = crd_pool_status_json(&s, 1, NULL, t0);
	ck_assert_str_eq(cond(a, "Shadow", "status"), "True");
	ck_assert_str_eq(cond(a, "Shadow", "message"),
	    "would scale Deployment/web to 3 (now 1)");
	ck_assert_str_eq(cond(a, "Conflict", "reason"), "TargetOwned");
	ck_assert_ptr_null(cond(a, "Paused", "status"));
	cJSON_Delete(a);
	memset(&s, 0, sizeof s);
	s.paused = 1;
	as_strlcpy(s.hold_msg, "agentscaler.io/paused: nothing is written",
	    sizeof s.hold_msg);
	a = crd_pool_status_json(&s, 1, NULL, t0);
	ck_assert_str_eq(cond(a, "Paused", "reason"), "PausedByAnnotation");
	ck_assert_ptr_null(cond(a, "Shadow", "status"));
	cJSON_Delete(a);
}
END_TEST

/*
 * The hash that tells the daemon a pool's status changed (what the status
 * tick makes again): the same for the same report, another for a change
 * of any one field.
 */
START_TEST(test_pool_status_hash)
{
	struct crd_pool_status a, b;
	uint64_t	 h;
	int		 k;

	memset(&a, 0, sizeof a);
	a.replicas = 2;
	a.backlog = 5;
	a.last_scale = 1700000000.5;
	snprintf(a.source_err, sizeof a.source_err, "down");
	h = crd_pool_status_hash(&a);
	b = a;
	ck_assert_uint_eq(crd_pool_status_hash(&b), h);
	for (k = 0; k < 21; k++) {
		b = a;
		switch (k) {
		case 0:
			b.dispatch = 1;
			break;
		case 1:
			b.replicas = 3;
			break;
		case 2:
			b.desired = 1;
			break;
		case 3:
			b.backlog = 4;
			break;
		case 4:
			b.in_flight = 1;
			break;
		case 5:
			b.last_scale += 1;
			break;
		case 6:
			b.claims_warm = 1;
			break;
		case 7:
			b.claims_cold = 1;
			break;
		case 8:
			b.claims_pending = 1;
			break;
		case 9:
			b.warm_replicas = 1;
			break;
		case 10:
			b.warm_ready = 1;
			break;
		case 11:
			b.started = 1;
			break;
		case 12:
			b.source_ok = 1;
			break;
		case 13:
			b.source_err[0] = '\0';
			break;
		case 14:
			snprintf(b.target_err, sizeof b.target_err, "x");
			break;
		case 15:
			b.quota_limited = 1;
			break;
		case 16:
			b.shadow = 1;
			break;
		case 17:
			b.paused = 1;
			break;
		case 18:
			snprintf(b.hold_msg, sizeof b.hold_msg, "h");
			break;
		case 19:
			snprintf(b.conflict, sizeof b.conflict, "c");
			break;
		default:
			snprintf(b.quota_msg, sizeof b.quota_msg, "y");
			break;
		}
		ck_assert_msg(crd_pool_status_hash(&b) != h, "field %d", k);
	}
}
END_TEST

START_TEST(test_quota_and_invalid_status)
{
	struct crd_quota_status q;
	cJSON		*a, *b;
	const cJSON	*u;

	memset(&q, 0, sizeof q);
	q.sandboxes = 4;
	q.tasks = 3;
	q.replicas = 1;
	q.roots = 2;
	q.deferred = 1;
	q.rejected = 9;
	q.nres = 1;
	as_strlcpy(q.res[0].name, "cpu", sizeof q.res[0].name);
	q.res[0].used = 1.5;
	q.limited = 1;
	a = crd_quota_status_json(&q, 3, NULL, 1767225600);
	u = cJSON_GetObjectItem(a, "used");
	ck_assert_int_eq(cJSON_GetObjectItem(u, "sandboxes")->valueint, 4);
	ck_assert_double_eq(cJSON_GetObjectItem(u, "cpu")->valuedouble, 1.5);
	ck_assert_int_eq(cJSON_GetObjectItem(a, "rejected")->valueint, 9);
	ck_assert_str_eq(cond(a, "QuotaLimited", "status"), "True");
	cJSON_Delete(a);

	a = crd_invalid_status_json("spec.x: bad", 5, NULL, 1767225600);
	ck_assert_str_eq(cond(a, "Ready", "status"), "False");
	ck_assert_str_eq(cond(a, "Ready", "reason"), "InvalidSpec");
	ck_assert_str_eq(cond(a, "Ready", "message"), "spec.x: bad");
	ck_assert_int_eq(cJSON_GetObjectItem(a, "observedGeneration")->valueint,
	    5);
	b = crd_invalid_status_json("spec.x: bad", 5, a, 1767225700);
	ck_assert(cJSON_Compare(a, b, 1));
	cJSON_Delete(a);
	cJSON_Delete(b);
}
END_TEST

static Suite *
crd_suite(void)
{
	Suite	*s = suite_create("crd");
	TCase	*tc = tcase_create("pure");

	tcase_add_test(tc, test_each_object_alone);
	tcase_add_test(tc, test_slim_builds_the_same);
	tcase_add_test(tc, test_slim_keeps_pause);
	tcase_add_test(tc, test_oldest_quota_wins);
	tcase_add_test(tc, test_pool_status);
	tcase_add_test(tc, test_quota_and_invalid_status);
	tcase_add_test(tc, test_pool_status_hash);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(crd_suite()));
}
