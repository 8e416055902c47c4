/*
 * check_events.c: the Event recorder (events.h) against a fake sink and an
 * injected clock: the first occurrence creates, repeats become a series
 * (count, lastObservedTime) PATCHed at once and then at most every
 * series_interval, a series ends after finish_after, the key leaves the
 * note out, 404 re-creates, failures are not retried, the rate limit drops,
 * the LRU bounds the keys, and nothing is written while not leading.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/k8s/events.h"
#include "util/sink.h"
#include "util/testutil.h"

static double	 now_s;

static double
fake_clock(void)
{
	return (now_s);
}

static struct tu_sink	 sk;
static struct events	*rec;
static int		 leading;

static int
may_write(void *arg)
{
	return (*(int *)arg);
}

static const struct event_ref pool_a = { "agentscaler.io/v1alpha1",
    "AgentPool", "team-a", "web", "uid-1" };
static const struct event_ref pool_b = { "agentscaler.io/v1alpha1",
    "AgentPool", "team-a", "batch", "uid-2" };

static void
make(size_t cache, double qps, double burst)
{
	struct events_options o;

	now_s = 1700000000.0;
	leading = 1;
	tu_sink_init(&sk);
	memset(&o, 0, sizeof o);
	o.instance = "test-0";
	o.clock = fake_clock;
	o.may_write = may_write;
	o.may_write_arg = &leading;
	o.cache_size = cache;
	o.qps = qps;
	o.burst = burst;
	o.series_interval = 10;
	o.finish_after = 360;
	rec = events_new(&sk.sink, &o);
}

static void
setup(void)
{
	make(0, 0, 0);
}

static void
teardown(void)
{
	events_free(rec);
	rec = NULL;
	ck_assert_int_eq(tu_sink_pending(&sk), 0);
	tu_sink_clear(&sk);
}

static cJSON *
body(int i)
{
	cJSON	*o = cJSON_Parse(sk.r[i].body);

	ck_assert_ptr_nonnull(o);
	return (o);
}

static double
series_count(int i)
{
	cJSON		*o = body(i);
	const cJSON	*s, *c;
	double		 v;

	s = cJSON_GetObjectItemCaseSensitive(o, "series");
	c = cJSON_GetObjectItemCaseSensitive(s, "count");
	v = cJSON_IsNumber(c) ? c->valuedouble : -1;
	cJSON_Delete(o);
	return (v);
}

START_TEST(test_create_fields)
{
	cJSON		*o;
	const cJSON	*reg;
	struct events_stats st;

	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Scale",
	    "Deployment %s scaled from %d to %d", "web", 0, 3);
	ck_assert_int_eq(sk.n, 1);
	ck_assert_str_eq(sk.r[0].method, "POST");
	ck_assert_str_eq(sk.r[0].path,
	    "/apis/events.k8s.io/v1/namespaces/team-a/events");
	o = body(0);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "apiVersion")->valuestring,
	    "events.k8s.io/v1");
	ck_assert_str_eq(cJSON_GetObjectItem(o, "reason")->valuestring,
	    "ScaledUp");
	ck_assert_str_eq(cJSON_GetObjectItem(o, "action")->valuestring,
	    "Scale");
	ck_assert_str_eq(cJSON_GetObjectItem(o, "type")->valuestring,
	    "Normal");
	ck_assert_str_eq(cJSON_GetObjectItem(o, "note")->valuestring,
	    "Deployment web scaled from 0 to 3");
	ck_assert_str_eq(cJSON_GetObjectItem(o,
	    "reportingController")->valuestring, "agentscaler.io/agentscaler");
	ck_assert_str_eq(cJSON_GetObjectItem(o,
	    "reportingInstance")->valuestring, "test-0");
	/* MicroTime: six fractional digits. */
	ck_assert_str_eq(cJSON_GetObjectItem(o, "eventTime")->valuestring,
	    "2023-11-14T22:13:20.000000Z");
	ck_assert(strncmp(cJSON_GetObjectItem(cJSON_GetObjectItem(o,
	    "metadata"), "name")->valuestring, "web.", 4) == 0);
	reg = cJSON_GetObjectItem(o, "regarding");
	ck_assert_str_eq(cJSON_GetObjectItem(reg, "kind")->valuestring,
	    "AgentPool");
	ck_assert_str_eq(cJSON_GetObjectItem(reg, "uid")->valuestring,
	    "uid-1");
	ck_assert_ptr_null(cJSON_GetObjectItem(o, "series"));
	cJSON_Delete(o);
	tu_sink_reply(&sk, 0, 201, "{}");
	events_get_stats(rec, &st);
	ck_assert_uint_eq(st.created, 1);
	ck_assert_uint_eq(st.cached, 1);
}
END_TEST

/*
 * A note past EVENTS_NOTE_MAX (a runtime's long error message, say) loses
 * whole characters: the Event stays UTF-8 at every cut.
 */
START_TEST(test_note_cut_utf8)
{
	char	 text[1400];
	size_t	 i, len;
	int	 shift;
	cJSON	*o;
	const char *note;

	for (shift = 0; shift < 3; shift++) {
		memset(text, 'a', (size_t)shift);
		for (i = (size_t)shift; i + 3 < sizeof text; i += 3)
			memcpy(text + i, "\xe2\x82\xac", 3);
		text[i] = '\0';
		events_record(rec, &pool_a, EVENT_WARNING, "TaskFailed",
		    "Sandbox", "%s", text);
		ck_assert_int_eq(sk.n, shift + 1);
		ck_assert_uint_eq(as_utf8_invalid_at(sk.r[shift].body,
		    strlen(sk.r[shift].body)), strlen(sk.r[shift].body));
		o = body(shift);
		note = cJSON_GetObjectItem(o, "note")->valuestring;
		len = strlen(note);
		ck_assert_uint_gt(len, 1023 - 3);
		ck_assert_uint_le(len, 1023);
		ck_assert(strncmp(note, text, len) == 0);
		ck_assert_uint_eq(as_utf8_invalid_at(note, len), len);
		cJSON_Delete(o);
		tu_sink_reply(&sk, shift, 201, "{}");
		now_s += 1000;		/* the next is a new Event */
	}
}
END_TEST

START_TEST(test_series)
{
	struct events_stats st;
	char		 name[300];
	cJSON		*o;
	int		 i;

	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	o = body(0);
	snprintf(name, sizeof name, "/apis/events.k8s.io/v1/namespaces/"
	    "team-a/events/%s", cJSON_GetObjectItem(cJSON_GetObjectItem(o,
	    "metadata"), "name")->valuestring);
	cJSON_Delete(o);
	/* A repeat while the create is in flight: counted, written after. */
	now_s += 1;
	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Scale",
	    "another note, same key");
	ck_assert_int_eq(sk.n, 1);
	tu_sink_reply(&sk, 0, 201, "{}");
	ck_assert_int_eq(sk.n, 2);
	ck_assert_str_eq(sk.r[1].method, "PATCH");
	ck_assert_str_eq(sk.r[1].ctype, "application/merge-patch+json");
	ck_assert_str_eq(sk.r[1].path, name);
	ck_assert_double_eq(series_count(1), 2);
	tu_sink_reply(&sk, 1, 200, "{}");
	/* Further repeats wait for series_interval, then go as one. */
	for (i = 0; i < 5; i++) {
		now_s += 1;
		events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Scale",
		    "x");
		events_tick(rec);
	}
	ck_assert_int_eq(sk.n, 2);
	now_s += 5;
	events_tick(rec);
	ck_assert_int_eq(sk.n, 3);
	ck_assert_double_eq(series_count(2), 7);
	tu_sink_reply(&sk, 2, 200, "{}");
	events_tick(rec);
	ck_assert_int_eq(sk.n, 3);	/* nothing new: quiet */
	events_get_stats(rec, &st);
	ck_assert_uint_eq(st.created, 1);
	ck_assert_uint_eq(st.patched, 2);
}
END_TEST

START_TEST(test_keys)
{
	/* Another reason, action or object: another Event. */
	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledDown", "Scale", "a");
	events_record(rec, &pool_b, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Poll", "a");
	ck_assert_int_eq(sk.n, 4);
	for (int i = 0; i < 4; i++) {
		ck_assert_str_eq(sk.r[i].method, "POST");
		tu_sink_reply(&sk, i, 201, "{}");
	}
}
END_TEST

START_TEST(test_finish_and_recreate)
{
	events_record(rec, &pool_a, EVENT_WARNING, "SourceError", "Poll", "a");
	tu_sink_reply(&sk, 0, 201, "{}");
	now_s += 1;
	events_record(rec, &pool_a, EVENT_WARNING, "SourceError", "Poll", "a");
	ck_assert_int_eq(sk.n, 2);
	tu_sink_reply(&sk, 1, 200, "{}");
	now_s += 2;
	events_record(rec, &pool_a, EVENT_WARNING, "SourceError", "Poll", "a");
	/* The series ends after finish_after: its last count is written. */
	now_s += 361;
	events_tick(rec);
	ck_assert_int_eq(sk.n, 3);
	ck_assert_str_eq(sk.r[2].method, "PATCH");
	ck_assert_double_eq(series_count(2), 3);
	tu_sink_reply(&sk, 2, 200, "{}");
	/* A new occurrence is a new Event. */
	events_record(rec, &pool_a, EVENT_WARNING, "SourceError", "Poll", "b");
	ck_assert_int_eq(sk.n, 4);
	ck_assert_str_eq(sk.r[3].method, "POST");
	ck_assert_double_eq(series_count(3), -1);
	tu_sink_reply(&sk, 3, 201, "{}");
	/* A series PATCH answered 404 (expired): created again with it. */
	now_s += 1;
	events_record(rec, &pool_a, EVENT_WARNING, "SourceError", "Poll", "b");
	ck_assert_int_eq(sk.n, 5);
	tu_sink_reply(&sk, 4, 404, "{}");
	ck_assert_int_eq(sk.n, 6);
	ck_assert_str_eq(sk.r[5].method, "POST");
	ck_assert_double_eq(series_count(5), 2);
	tu_sink_reply(&sk, 5, 201, "{}");
}
END_TEST

START_TEST(test_failures_not_retried)
{
	struct events_stats st;
	struct tu_capture cap;
	char		*log;

	tu_capture_start(&cap);
	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	tu_sink_reply(&sk, 0, 500, "{}");
	events_tick(rec);
	ck_assert_int_eq(sk.n, 1);	/* not retried */
	/* The next occurrence tries a fresh create; its failure is quiet. */
	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	ck_assert_int_eq(sk.n, 2);
	tu_sink_reply(&sk, 1, 500, "{}");
	/* A failed series PATCH stops that Event's writes. */
	events_record(rec, &pool_b, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	tu_sink_reply(&sk, 2, 201, "{}");
	events_record(rec, &pool_b, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	tu_sink_reply(&sk, 3, 500, "{}");
	now_s += 20;
	events_record(rec, &pool_b, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	events_tick(rec);
	ck_assert_int_eq(sk.n, 4);
	log = tu_capture_end(&cap);
	/* Logged once; the create of batch succeeded in between. */
	ck_assert_int_eq(tu_count(log, "cannot create Event"), 1);
	ck_assert_int_eq(tu_count(log, "cannot update Event"), 1);
	free(log);
	events_get_stats(rec, &st);
	ck_assert_uint_eq(st.failed, 3);
}
END_TEST

START_TEST(test_rate_limit_and_lru)
{
	struct events_stats st;
	struct event_ref r = pool_a;
	char		 name[32];
	int		 i;

	events_free(rec);
	tu_sink_clear(&sk);
	make(4, 1, 3);
	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof name, "p%d", i);
		r.name = name;
		events_record(rec, &r, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	}
	ck_assert_int_eq(sk.n, 3);		/* burst 3 */
	events_get_stats(rec, &st);
	ck_assert_uint_eq(st.dropped, 2);
	now_s += 10;
	for (i = 5; i < 10; i++) {
		snprintf(name, sizeof name, "p%d", i);
		r.name = name;
		events_record(rec, &r, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	}
	events_get_stats(rec, &st);
	ck_assert_uint_le(st.cached, 4);	/* bounded */
	for (i = 0; i < sk.n; i++)
		if (sk.r[i].pending)
			tu_sink_reply(&sk, i, 201, "{}");
}
END_TEST

START_TEST(test_standby_writes_nothing)
{
	leading = 0;
	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	events_tick(rec);
	ck_assert_int_eq(sk.n, 0);
	leading = 1;
	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	ck_assert_int_eq(sk.n, 1);
	/* Freed with the create in flight: cancelled (teardown checks). */
}
END_TEST

START_TEST(test_hold_cancels_writes_in_flight)
{
	/*
	 * Leadership lost with a create in flight: it is cancelled (no retry
	 * can go out later) and forgotten; the next occurrence, as leader
	 * again, creates afresh.
	 */
	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	ck_assert_int_eq(tu_sink_pending(&sk), 1);
	leading = 0;
	events_hold(rec);
	ck_assert_int_eq(tu_sink_pending(&sk), 0);
	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	events_tick(rec);
	ck_assert_int_eq(sk.n, 1);
	leading = 1;
	events_record(rec, &pool_a, EVENT_NORMAL, "ScaledUp", "Scale", "a");
	ck_assert_int_eq(sk.n, 2);
	ck_assert_str_eq(sk.r[1].method, "POST");
	tu_sink_reply(&sk, 1, 201, "{}");
}
END_TEST

static Suite *
events_suite(void)
{
	Suite	*s = suite_create("events");
	TCase	*tc = tu_tcase(s, "recorder", 0, NULL, NULL, setup, teardown);

	tcase_add_test(tc, test_create_fields);
	tcase_add_test(tc, test_series);
	tcase_add_test(tc, test_note_cut_utf8);
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_finish_and_recreate);
	tcase_add_test(tc, test_failures_not_retried);
	tcase_add_test(tc, test_rate_limit_and_lru);
	tcase_add_test(tc, test_standby_writes_nothing);
	tcase_add_test(tc, test_hold_cancels_writes_in_flight);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(events_suite()));
}
