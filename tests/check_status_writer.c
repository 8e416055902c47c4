/*
 * check_status_writer.c: status subresource writes (status_writer.h)
 * against a fake sink and an injected clock: written only on change (key
 * order does not matter), not before min_interval per object, the latest
 * wins, lost keys are nulled, the status seen on the object counts as
 * written, failures retry after a backoff, 404 stops, a 422 is not retried
 * until the status changes, nothing while not leading.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/k8s/status_writer.h"
#include "util/sink.h"
#include "util/testutil.h"

#define P	"/apis/agentscaler.io/v1alpha1/namespaces/a/agentpools/web"

static double		 now_s;
static struct tu_sink	 sk;
static struct status_writer *w;
static int		 leading;
static int		 rejected_calls;
static long		 rejected_code;

static void
on_rejected(void *arg, const char *path, long code, const char *msg)
{
	(void)arg;
	(void)msg;
	ck_assert_str_eq(path, P);
	rejected_calls++;
	rejected_code = code;
}

static int
may_write(void *arg)
{
	return (*(int *)arg);
}

static double
fake_clock(void)
{
	return (now_s);
}

static void
setup(void)
{
	struct status_writer_options o;

	now_s = 100;
	leading = 1;
	tu_sink_init(&sk);
	memset(&o, 0, sizeof o);
	o.min_interval = 2;
	o.qps = 100;
	o.burst = 100;
	o.clock = fake_clock;
	o.may_write = may_write;
	o.may_write_arg = &leading;
	o.rejected = on_rejected;
	rejected_calls = 0;
	w = status_writer_new(&sk.sink, &o);
}

static void
teardown(void)
{
	status_writer_free(w);
	ck_assert_int_eq(tu_sink_pending(&sk), 0);
	tu_sink_clear(&sk);
}

static void
set(const char *json)
{
	cJSON	*o = cJSON_Parse(json);

	ck_assert_ptr_nonnull(o);
	status_writer_set(w, P, o);
}

START_TEST(test_only_on_change)
{
	struct status_writer_stats st;

	set("{\"replicas\":1,\"backlog\":0}");
	ck_assert_int_eq(sk.n, 1);
	ck_assert_str_eq(sk.r[0].method, "PATCH");
	ck_assert_str_eq(sk.r[0].path, P "/status");
	ck_assert_str_eq(sk.r[0].ctype, "application/merge-patch+json");
	ck_assert_str_eq(sk.r[0].body,
	    "{\"status\":{\"replicas\":1,\"backlog\":0}}");
	tu_sink_reply(&sk, 0, 200, "{}");
	/* The same status (other key order), many times: nothing sent. */
	now_s += 10;
	set("{\"backlog\":0,\"replicas\":1}");
	set("{\"replicas\":1,\"backlog\":0}");
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 1);
	status_writer_get_stats(w, &st);
	ck_assert_uint_eq(st.writes, 1);
	ck_assert_uint_eq(st.unchanged, 2);
}
END_TEST

/*
 * The timer looks at the objects with something to write, not at every
 * object (issue 15): 2,000 objects whose status stands cost a tick
 * nothing; 5 changed while not leading are looked at, each tick, until
 * written, then no more.
 */
START_TEST(test_tick_visits_pending_only)
{
	struct status_writer_stats st;
	cJSON		*seen = cJSON_Parse("{\"replicas\":1}");
	char		 path[128];
	int		 i;

	for (i = 0; i < 2000; i++) {
		snprintf(path, sizeof path, P "-%d", i);
		status_writer_seen(w, path, seen);
		status_writer_set(w, path, cJSON_Duplicate(seen, 1));
	}
	status_writer_tick(w);
	status_writer_get_stats(w, &st);
	ck_assert_uint_eq(st.unchanged, 2000);
	ck_assert_uint_eq(st.visits, 0);
	leading = 0;
	for (i = 0; i < 5; i++) {
		snprintf(path, sizeof path, P "-%d", i * 100);
		status_writer_set(w, path, cJSON_Parse("{\"replicas\":2}"));
	}
	status_writer_tick(w);
	status_writer_tick(w);
	status_writer_get_stats(w, &st);
	ck_assert_uint_eq(st.visits, 10);
	ck_assert_int_eq(sk.n, 0);
	leading = 1;
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 5);
	for (i = 0; i < 5; i++)
		tu_sink_reply(&sk, i, 200, "{}");
	status_writer_tick(w);
	status_writer_get_stats(w, &st);
	ck_assert_uint_eq(st.visits, 15);
	ck_assert_uint_eq(st.writes, 5);
	cJSON_Delete(seen);
}
END_TEST

START_TEST(test_rate_and_coalescing)
{
	set("{\"replicas\":1}");
	tu_sink_reply(&sk, 0, 200, "{}");
	/* Within min_interval: held; the latest wins. */
	now_s += 0.5;
	set("{\"replicas\":2}");
	set("{\"replicas\":3,\"backlog\":4}");
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 1);
	now_s += 2;
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 2);
	ck_assert_str_eq(sk.r[1].body,
	    "{\"status\":{\"replicas\":3,\"backlog\":4}}");
	/* A change while a write is in flight goes after it. */
	now_s += 3;
	set("{\"replicas\":5}");
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 2);
	tu_sink_reply(&sk, 1, 200, "{}");
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 3);
	/* backlog went away: nulled, merge patch semantics. */
	ck_assert_str_eq(sk.r[2].body,
	    "{\"status\":{\"replicas\":5,\"backlog\":null}}");
	tu_sink_reply(&sk, 2, 200, "{}");
}
END_TEST

START_TEST(test_seen_status)
{
	cJSON	*seen = cJSON_Parse("{\"replicas\":1}");

	/* What the object already has (after a restart) is not rewritten. */
	status_writer_seen(w, P, seen);
	cJSON_Delete(seen);
	set("{\"replicas\":1}");
	ck_assert_int_eq(sk.n, 0);
	ck_assert_ptr_nonnull(status_writer_current(w, P));
	set("{\"replicas\":2}");
	ck_assert_int_eq(sk.n, 1);
	tu_sink_reply(&sk, 0, 200, "{}");
}
END_TEST

START_TEST(test_failures)
{
	struct tu_capture cap;
	char	*log;

	tu_capture_start(&cap);
	set("{\"replicas\":1}");
	tu_sink_reply(&sk, 0, 503, "{}");
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 1);		/* backoff */
	now_s += 120;
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 2);		/* retried */
	tu_sink_reply(&sk, 1, 503, "{}");
	log = tu_capture_end(&cap);
	ck_assert_int_eq(tu_count(log, "cannot write"), 1);
	free(log);
	now_s += 120;
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 3);
	/* 404: the object is gone; nothing more for it. */
	tu_sink_reply(&sk, 2, 404, "{}");
	now_s += 120;
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 3);
	/* Forgotten with a write in flight: cancelled. */
	set("{\"replicas\":9}");
	ck_assert_int_eq(sk.n, 4);
	status_writer_forget(w, P);
	ck_assert_int_eq(tu_sink_pending(&sk), 0);
	ck_assert_ptr_null(status_writer_current(w, P));
}
END_TEST

START_TEST(test_standby)
{
	leading = 0;
	set("{\"replicas\":1}");
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 0);
	leading = 1;
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 1);
	tu_sink_reply(&sk, 0, 200, "{}");
}
END_TEST

START_TEST(test_hold_keeps_the_status_for_later)
{
	/*
	 * Leadership lost with a write in flight: it is cancelled, nothing
	 * goes out while standing by, and the same status is written once
	 * leading again.  Before status_writer_hold() a cancelled write also
	 * leaked what was being sent.
	 */
	set("{\"replicas\":4}");
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 1);
	leading = 0;
	status_writer_hold(w);
	ck_assert_int_eq(tu_sink_pending(&sk), 0);
	now_s += 10;
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 1);
	leading = 1;
	status_writer_tick(w);
	ck_assert_int_eq(sk.n, 2);
	ck_assert_str_eq(sk.r[1].body, sk.r[0].body);
	tu_sink_reply(&sk, 1, 200, "{}");
	ck_assert_ptr_nonnull(strstr(sk.r[1].body, "\"replicas\":4"));
}
END_TEST

START_TEST(test_rejected_is_not_retried)
{
	struct status_writer_stats st;
	struct tu_capture cap;
	char	*log;

	/*
	 * 422 (the CRD's schema refuses the status): the same status would
	 * be refused again, so it is not retried, however long, nor sent
	 * again when set again; a different status is.  Before, it was
	 * retried after every backoff for ever.
	 */
	tu_capture_start(&cap);
	set("{\"replicas\":-1}");
	ck_assert_int_eq(sk.n, 1);
	tu_sink_reply(&sk, 0, 422, "{}");
	now_s += 120;
	status_writer_tick(w);
	now_s += 120;
	set("{\"replicas\":-1}");
	status_writer_tick(w);
	ck_assert_msg(sk.n == 1, "a rejected status was sent %d more times",
	    sk.n - 1);
	log = tu_capture_end(&cap);
	ck_assert_int_eq(tu_count(log, "refused (HTTP 422)"), 1);
	free(log);
	status_writer_get_stats(w, &st);
	ck_assert_uint_eq(st.rejected, 1);
	ck_assert_uint_eq(st.failed, 0);
	ck_assert_int_eq(rejected_calls, 1);
	ck_assert_int_eq(rejected_code, 422);
	/* Another status is another content: sent. */
	set("{\"replicas\":2}");
	ck_assert_int_eq(sk.n, 2);
	tu_sink_reply(&sk, 1, 200, "{}");
}
END_TEST

static Suite *
status_writer_suite(void)
{
	Suite	*s = suite_create("status_writer");
	TCase	*tc = tu_tcase(s, "writes", 0, NULL, NULL, setup, teardown);

	tcase_add_test(tc, test_only_on_change);
	tcase_add_test(tc, test_rate_and_coalescing);
	tcase_add_test(tc, test_tick_visits_pending_only);
	tcase_add_test(tc, test_seen_status);
	tcase_add_test(tc, test_failures);
	tcase_add_test(tc, test_standby);
	tcase_add_test(tc, test_hold_keeps_the_status_for_later);
	tcase_add_test(tc, test_rejected_is_not_retried);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(status_writer_suite()));
}
