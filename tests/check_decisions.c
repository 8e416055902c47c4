/*
 * check_decisions.c: the ring of a scale pool's recent decisions
 * (scheduler/decisions.h): what is kept, how it wraps, its JSON.
 */
#include <check.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "scheduler/decisions.h"
#include "util/testutil.h"

static const char up[] = "scale-up", hold[] = "hold";

START_TEST(test_keeps_changes_and_heartbeats)
{
	struct decisions r;

	memset(&r, 0, sizeof r);
	ck_assert_int_eq(decisions_note(&r, 100, 5, 1, 3, up, 10), 1);
	/* same decision 1 s later: not kept */
	ck_assert_int_eq(decisions_note(&r, 101, 6, 1, 3, up, 10), 0);
	/* same desired, another reason: kept */
	ck_assert_int_eq(decisions_note(&r, 102, 6, 3, 3, hold, 10), 1);
	/* another desired: kept */
	ck_assert_int_eq(decisions_note(&r, 103, 9, 3, 4, hold, 10), 1);
	/* unchanged but `every` seconds after the newest: kept */
	ck_assert_int_eq(decisions_note(&r, 112.5, 9, 4, 4, hold, 10), 0);
	ck_assert_int_eq(decisions_note(&r, 113, 9, 4, 4, hold, 10), 1);
	ck_assert_uint_eq(decisions_count(&r), 4);
	ck_assert(decisions_at(&r, 0)->wall == 100);
	ck_assert(decisions_at(&r, 3)->wall == 113);
	ck_assert_int_eq(decisions_at(&r, 3)->current, 4);
}
END_TEST

START_TEST(test_wraps_oldest_first)
{
	struct decisions r;
	size_t		 i;

	memset(&r, 0, sizeof r);
	for (i = 0; i < DECISIONS_MAX + 5; i++)
		ck_assert_int_eq(decisions_note(&r, (double)i, 0, 0, (long)i,
		    up, 10), 1);
	ck_assert_uint_eq(decisions_count(&r), DECISIONS_MAX);
	for (i = 0; i < DECISIONS_MAX; i++)
		ck_assert_int_eq(decisions_at(&r, i)->desired, (long)i + 5);
}
END_TEST

START_TEST(test_json)
{
	struct decisions r;
	cJSON		*arr, *o;
	char		*s;

	memset(&r, 0, sizeof r);
	arr = cJSON_CreateArray();
	decisions_json(&r, arr);
	ck_assert_int_eq(cJSON_GetArraySize(arr), 0);
	(void)decisions_note(&r, 0, 7, 2, 5, up, 10);
	(void)decisions_note(&r, 60, 0, 5, 0, hold, 10);
	decisions_json(&r, arr);
	ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
	o = cJSON_GetArrayItem(arr, 0);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "at")->valuestring,
	    "1970-01-01T00:00:00Z");
	ck_assert(cJSON_GetObjectItem(o, "backlog")->valuedouble == 7);
	ck_assert(cJSON_GetObjectItem(o, "replicas")->valuedouble == 2);
	ck_assert(cJSON_GetObjectItem(o, "desired")->valuedouble == 5);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "reason")->valuestring, up);
	s = cJSON_PrintUnformatted(cJSON_GetArrayItem(arr, 1));
	ck_assert_str_eq(s, "{\"at\":\"1970-01-01T00:01:00Z\",\"backlog\":0,"
	    "\"replicas\":5,\"desired\":0,\"reason\":\"hold\"}");
	cJSON_free(s);
	cJSON_Delete(arr);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("decisions");
	TCase	*tc = tcase_create("ring");

	tcase_add_test(tc, test_keeps_changes_and_heartbeats);
	tcase_add_test(tc, test_wraps_oldest_first);
	tcase_add_test(tc, test_json);
	suite_add_tcase(s, tc);
	return (tu_run_suite(s));
}
