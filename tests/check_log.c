/*
 * check_log.c: the log lines (rt/log.h), read back from stderr: in the JSON
 * format every line parses, log_kv()'s fields are keys of their own
 * (pool, namespace, task, claim, reason, duration_ms) beside msg, absent
 * ones left out, values escaped; the text format prints the sentence only,
 * exactly as log_msg() does; levels below the threshold print nothing.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/rt/log.h"
#include "util/testutil.h"

static int	 saved = -1;
static FILE	*cap;

/* Sends stderr to a temporary file until capture_end(). */
static void
capture(void)
{
	cap = tmpfile();
	ck_assert_ptr_nonnull(cap);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(dup2(fileno(cap), STDERR_FILENO), 0);
}

/* What was logged since capture() (caller frees). */
static char *
capture_end(void)
{
	char	*buf;
	long	 n;

	ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
	close(saved);
	n = ftell(cap);
	buf = xcalloc(1, (size_t)n + 1);
	rewind(cap);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, cap), (size_t)n);
	fclose(cap);
	return (buf);
}

START_TEST(test_json_fields)
{
	cJSON	*o;
	char	*out;

	log_set_format(LOG_FORMAT_JSON);
	log_set_level(LOG_INFO);
	capture();
	log_kv(LOG_INFO, "dispatch", &(struct log_fields){ .pool = "p",
	    .ns = "team-a", .task = "t\"1", .claim = "p-t1-abc",
	    .reason = "quota.maxSandboxes", .duration_ms = 12.5,
	    .has_duration = 1 }, "team-a/p: task %s deferred", "t\"1");
	out = capture_end();
	ck_assert_ptr_nonnull(strchr(out, '\n'));
	o = cJSON_Parse(out);
	ck_assert_msg(o != NULL, "not JSON: %s", out);
	ck_assert_str_eq(as_json_str(o, "level"), "info");
	ck_assert_str_eq(as_json_str(o, "component"), "dispatch");
	ck_assert_str_eq(as_json_str(o, "pool"), "p");
	ck_assert_str_eq(as_json_str(o, "namespace"), "team-a");
	ck_assert_str_eq(as_json_str(o, "task"), "t\"1");
	ck_assert_str_eq(as_json_str(o, "claim"), "p-t1-abc");
	ck_assert_str_eq(as_json_str(o, "reason"), "quota.maxSandboxes");
	ck_assert(cJSON_GetObjectItem(o, "duration_ms")->valuedouble == 12.5);
	ck_assert_str_eq(as_json_str(o, "msg"),
	    "team-a/p: task t\"1 deferred");
	cJSON_Delete(o);
	free(out);
}
END_TEST

START_TEST(test_json_absent)
{
	cJSON	*o;
	char	*out;

	log_set_format(LOG_FORMAT_JSON);
	log_set_level(LOG_INFO);
	capture();
	log_kv(LOG_WARN, "dispatch", &(struct log_fields){ .task = "x" },
	    "line\nbreak");
	log_msg(LOG_INFO, "daemon", "plain");
	out = capture_end();
	o = cJSON_Parse(out);	/* the first line */
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(as_json_str(o, "task"), "x");
	ck_assert_ptr_null(cJSON_GetObjectItem(o, "pool"));
	ck_assert_ptr_null(cJSON_GetObjectItem(o, "namespace"));
	ck_assert_ptr_null(cJSON_GetObjectItem(o, "duration_ms"));
	ck_assert_str_eq(as_json_str(o, "msg"), "line\nbreak");
	cJSON_Delete(o);
	o = cJSON_Parse(strchr(out, '\n') + 1);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(as_json_str(o, "msg"), "plain");
	ck_assert_int_eq(cJSON_GetArraySize(o), 4);	/* ts level comp msg */
	cJSON_Delete(o);
	free(out);
}
END_TEST

START_TEST(test_text_unchanged)
{
	char	*a, *b;

	log_set_format(LOG_FORMAT_TEXT);
	log_set_level(LOG_INFO);
	capture();
	log_kv(LOG_INFO, "dispatch", &(struct log_fields){ .pool = "p",
	    .task = "t1", .duration_ms = 3, .has_duration = 1 },
	    "p: task %s handed off", "t1");
	a = capture_end();
	capture();
	log_msg(LOG_INFO, "dispatch", "p: task %s handed off", "t1");
	b = capture_end();
	/* Past the timestamp, the two lines are the same. */
	ck_assert_ptr_nonnull(strchr(a, ' '));
	ck_assert_str_eq(strchr(a, ' '), strchr(b, ' '));
	ck_assert_str_eq(strchr(a, ' '), " info  dispatch: p: task t1 handed "
	    "off\n");
	free(a);
	free(b);
	log_set_format(LOG_FORMAT_JSON);
}
END_TEST

/*
 * A message or field past its buffer is cut at a character, in both
 * formats: every line stays UTF-8 (a collector may refuse it otherwise).
 */
START_TEST(test_cut_utf8)
{
	char	*big, *out;
	size_t	 i, n = 3 * 1500;
	int	 fmt, shift;

	big = xmalloc(n + 4);
	/* 0 to 2 ASCII bytes first: some cut lands inside a character. */
	for (shift = 0; shift < 3; shift++) {
		memset(big, 'a', (size_t)shift);
		for (i = (size_t)shift; i + 3 <= n; i += 3)
			memcpy(big + i, "\xe2\x82\xac", 3);
		big[i] = '\0';
		log_set_level(LOG_INFO);
		for (fmt = 0; fmt < 2; fmt++) {
			log_set_format(fmt ? LOG_FORMAT_JSON :
			    LOG_FORMAT_TEXT);
			capture();
			log_kv(LOG_INFO, "dispatch", &(struct log_fields){
			    .pool = big, .task = big }, "%s", big);
			out = capture_end();
			ck_assert_uint_gt(strlen(out), 2000);
			ck_assert_msg(as_utf8_invalid_at(out, strlen(out)) ==
			    strlen(out), "format %d shift %d: not UTF-8 at "
			    "byte %zu", fmt, shift,
			    as_utf8_invalid_at(out, strlen(out)));
			free(out);
		}
	}
	free(big);
}
END_TEST

/*
 * Bytes that are not UTF-8 (a broker's or a tenant's) become U+FFFD in a
 * JSON line, which stays valid UTF-8 and JSON; before, they were copied
 * as they came.
 */
START_TEST(test_json_invalid_utf8)
{
	cJSON	*o;
	char	*out;

	log_set_format(LOG_FORMAT_JSON);
	log_set_level(LOG_INFO);
	capture();
	log_kv(LOG_INFO, "dispatch", &(struct log_fields){ .task = "t\xc3(" },
	    "bad \xff\xfe end \xe2\x82\xac");
	out = capture_end();
	ck_assert_msg(as_utf8_invalid_at(out, strlen(out)) == strlen(out),
	    "not UTF-8 at byte %zu: %s", as_utf8_invalid_at(out, strlen(out)),
	    out);
	o = cJSON_Parse(out);
	ck_assert_msg(o != NULL, "not JSON: %s", out);
	ck_assert_str_eq(as_json_str(o, "msg"),
	    "bad \xef\xbf\xbd\xef\xbf\xbd end \xe2\x82\xac");
	ck_assert_str_eq(as_json_str(o, "task"), "t\xef\xbf\xbd(");
	cJSON_Delete(o);
	free(out);
}
END_TEST

START_TEST(test_level)
{
	char	*out;

	log_set_level(LOG_WARN);
	capture();
	log_kv(LOG_INFO, "dispatch", &(struct log_fields){ .task = "t" },
	    "hidden");
	out = capture_end();
	ck_assert_str_eq(out, "");
	free(out);
	log_set_level(LOG_INFO);
}
END_TEST

static Suite *
log_suite(void)
{
	Suite	*s = suite_create("log");
	TCase	*tc = tcase_create("log");

	tcase_add_test(tc, test_json_fields);
	tcase_add_test(tc, test_json_absent);
	tcase_add_test(tc, test_text_unchanged);
	tcase_add_test(tc, test_level);
	tcase_add_test(tc, test_cut_utf8);
	tcase_add_test(tc, test_json_invalid_utf8);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(log_suite()));
}
