/*
 * check_handoff_http.c: the pure half of the agent protocol on
 * agentscaler's side (scheduler/handoff_http.c): the Task body keeps the
 * message byte for byte, the runtime's answers are told from the router's
 * and a proxy's, each malformed answer is refused, the token is the HMAC of
 * docs/protocol.md section 2, paths are percent-encoded, and the Result has
 * the fields of result.schema.json (tests/integration/test_dispatch_http.py
 * validates it against the schema itself).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "scheduler/handoff_http.h"
#include "util/testutil.h"

#define TP	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define V	"\"apiVersion\":\"agentscaler.io/v1\","
#define EL(events, next) "{" V "\"kind\":\"EventList\",\"taskId\":\"t-1\"," \
	"\"attempt\":1,\"instance\":\"i\",\"state\":\"running\",\"first\":1," \
	"\"next\":" #next ",\"more\":false,\"events\":[" events "]}"
#define EV(seq, rest) "{\"seq\":" #seq ",\"time\":" \
	"\"2026-12-06T16:40:01Z\"," rest "}"

START_TEST(test_task_body)
{
	/* An id whose JSON looks like the seam the builder looks for. */
	const char	*orig = "{\"id\":\"a},\\\"task\\\":\",\"payload\":"
	    "{\"n\":1.50, \"s\":\"x\"}}";
	struct handoff_spec h;
	cJSON		*o, *m;
	char		*body;
	size_t		 len;

	memset(&h, 0, sizeof h);
	h.ns = "team-a";
	h.pool = "coder";
	h.claim = "coder-3f";
	h.sandbox = "wp-x7k2p";
	h.task_id = "a},\"task\":";
	h.root_id = h.task_id;
	body = hh_task_body(&h, orig, strlen(orig), 2, TP,
	    "tok0123456789abcdef", &len);
	ck_assert_uint_eq(len, strlen(body));
	/* The message, byte for byte (1.50 and the space kept), at the end. */
	ck_assert_int_eq(memcmp(body + len - strlen(orig) - 1, orig,
	    strlen(orig)), 0);
	ck_assert_str_eq(body + len - 1, "}");
	o = cJSON_Parse(body);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(as_json_str(o, "apiVersion"), "agentscaler.io/v1");
	ck_assert_str_eq(as_json_str(o, "kind"), "Task");
	m = cJSON_GetObjectItemCaseSensitive(o, "agentscaler");
	ck_assert_str_eq(as_json_str(m, "namespace"), "team-a");
	ck_assert_str_eq(as_json_str(m, "sandbox"), "wp-x7k2p");
	ck_assert_str_eq(as_json_str(m, "id"), "a},\"task\":");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m, "parent")));
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(m, "depth")->valueint,
	    0);
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(m,
	    "attempt")->valueint, 2);
	ck_assert_str_eq(as_json_str(m, "traceparent"), TP);
	ck_assert_str_eq(as_json_str(m, "token"), "tok0123456789abcdef");
	ck_assert_str_eq(as_json_str(cJSON_GetObjectItemCaseSensitive(o,
	    "task"), "id"), "a},\"task\":");
	cJSON_Delete(o);
	free(body);

	/* No traceparent: null; no token: absent. */
	body = hh_task_body(&h, orig, strlen(orig), 1, NULL, NULL, &len);
	o = cJSON_Parse(body);
	m = cJSON_GetObjectItemCaseSensitive(o, "agentscaler");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m,
	    "traceparent")));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(m, "token"));
	cJSON_Delete(o);
	free(body);
}
END_TEST

/* kind -1: refused (-AS_EPROTO), a transport failure to the caller. */
static const struct answer_row {
	const char	*body;
	int		 kind;
	size_t		 nevents;
} answer_rows[] = {
	/* The router's own errors, a proxy's page, junk. */
	{ "{\"detail\":\"sandbox not found\"}", -1, 0 },
	{ "<html><body>502 Bad Gateway</body></html>", -1, 0 },
	{ "", -1, 0 },
	{ "[]", -1, 0 },
	{ "{\"apiVersion\":\"agentscaler.io/v2\",\"kind\":\"Error\","
	    "\"reason\":\"x\",\"detail\":\"\"}", -1, 0 },
	{ "{" V "\"kind\":\"Gossip\"}", -1, 0 },
	/* Errors. */
	{ "{" V "\"kind\":\"Error\",\"reason\":\"task.unknown\",\"detail\":"
	    "\"no task t-1 here\",\"taskId\":\"t-1\"}", HH_ERROR, 0 },
	{ "{" V "\"kind\":\"Error\",\"detail\":\"d\"}", -1, 0 },
	{ "{" V "\"kind\":\"Error\",\"reason\":\"\",\"detail\":\"d\"}", -1, 0 },
	/* TaskStatus. */
	{ "{" V "\"kind\":\"TaskStatus\",\"id\":\"t-1\",\"attempt\":1,"
	    "\"state\":\"running\",\"next\":1,\"instance\":\"i\"}",
	    HH_TASK_STATUS, 0 },
	{ "{" V "\"kind\":\"TaskStatus\",\"id\":\"t-1\",\"attempt\":0,"
	    "\"state\":\"running\",\"next\":1,\"instance\":\"i\"}", -1, 0 },
	{ "{" V "\"kind\":\"TaskStatus\",\"id\":\"t-1\",\"attempt\":1,"
	    "\"state\":\"sleeping\",\"next\":1,\"instance\":\"i\"}", -1, 0 },
	/* EventLists. */
	{ EL("", 0), HH_EVENT_LIST, 0 },
	{ EL(EV(1, "\"type\":\"started\",\"attempt\":1") ","
	    EV(2, "\"type\":\"progress\",\"fraction\":0.5") ","
	    EV(3, "\"type\":\"spawn\",\"key\":\"k1\",\"task\":{\"payload\":1}")
	    "," EV(4, "\"type\":\"completed\",\"result\":null"), 4),
	    HH_EVENT_LIST, 4 },
	{ EL(EV(7, "\"type\":\"failed\",\"error\":{\"reason\":\"agent.crash\","
	    "\"message\":\"m\",\"retryable\":true}"), 7), HH_EVENT_LIST, 1 },
	/* Out of sequence, after the terminal event, next not the last. */
	{ EL(EV(1, "\"type\":\"started\",\"attempt\":1") ","
	    EV(3, "\"type\":\"progress\""), 3), -1, 0 },
	{ EL(EV(1, "\"type\":\"completed\",\"result\":1") ","
	    EV(2, "\"type\":\"progress\""), 2), -1, 0 },
	{ EL(EV(1, "\"type\":\"started\",\"attempt\":1"), 5), -1, 0 },
	/* Events without what this side reads. */
	{ EL(EV(0, "\"type\":\"progress\""), 0), -1, 0 },
	{ EL(EV(1, "\"type\":\"started\""), 1), -1, 0 },
	{ EL(EV(1, "\"type\":\"teleport\""), 1), -1, 0 },
	{ EL(EV(1, "\"type\":\"spawn\",\"key\":\"k\",\"task\":{}"), 1), -1, 0 },
	{ EL(EV(1, "\"type\":\"completed\""), 1), -1, 0 },
	{ EL(EV(1, "\"type\":\"failed\",\"error\":{\"reason\":\"r\","
	    "\"message\":\"m\"}"), 1), -1, 0 },
	{ EL("{\"seq\":1,\"type\":\"progress\"}", 1), -1, 0 },
	{ EL("{\"seq\":1.5,\"type\":\"progress\",\"time\":\"t\"}", 1), -1, 0 },
	{ "{" V "\"kind\":\"EventList\",\"taskId\":\"t-1\",\"attempt\":1,"
	    "\"instance\":\"i\",\"state\":\"running\",\"first\":1,\"next\":0,"
	    "\"events\":[]}", -1, 0 },
};

START_TEST(test_answer)
{
	const struct answer_row *row = &answer_rows[_i];
	struct hh_answer a;
	char		 err[160] = "";
	int		 rc;

	rc = hh_answer_parse(row->body, strlen(row->body), &a, err,
	    sizeof err);
	if (row->kind < 0) {
		ck_assert_msg(rc == -AS_EPROTO, "row %d parsed", _i);
		ck_assert_msg(err[0] != '\0', "row %d: no reason", _i);
		ck_assert_ptr_null(a.doc);
		return;
	}
	ck_assert_msg(rc == 0, "row %d: %s", _i, err);
	ck_assert_int_eq(a.kind, row->kind);
	ck_assert_uint_eq(a.nevents, row->nevents);
	hh_answer_free(&a);
	hh_answer_free(&a);	/* twice is harmless */
}
END_TEST

START_TEST(test_answer_fields)
{
	const char	*b = EL(EV(3, "\"type\":\"spawn\",\"key\":\"k1\","
	    "\"task\":{\"payload\":{\"q\":2}}") "," EV(4, "\"type\":"
	    "\"failed\",\"error\":{\"reason\":\"agent.oom\",\"message\":"
	    "\"out of memory\",\"retryable\":true}"), 4);
	const char	*e = "{" V "\"kind\":\"Error\",\"reason\":"
	    "\"task.conflict\",\"detail\":\"holds t-0\",\"taskId\":"
	    "\"t-0\"}";
	struct hh_answer a;
	char		 err[160];

	ck_assert_int_eq(hh_answer_parse(b, strlen(b), &a, err, sizeof err),
	    0);
	ck_assert_str_eq(a.id, "t-1");
	ck_assert_str_eq(a.instance, "i");
	ck_assert_int_eq(a.next, 4);
	ck_assert_int_eq(a.events[0].type, HH_EV_SPAWN);
	ck_assert_str_eq(a.events[0].key, "k1");
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(a.events[0].task,
	    "payload"));
	ck_assert_int_eq(a.events[1].type, HH_EV_FAILED);
	ck_assert_str_eq(a.events[1].reason, "agent.oom");
	ck_assert_str_eq(a.events[1].message, "out of memory");
	ck_assert_int_eq(a.events[1].retryable, 1);
	hh_answer_free(&a);
	ck_assert_int_eq(hh_answer_parse(e, strlen(e), &a, err, sizeof err),
	    0);
	ck_assert_str_eq(a.reason, "task.conflict");
	ck_assert_str_eq(a.task_id, "t-0");
	hh_answer_free(&a);
}
END_TEST

START_TEST(test_token_and_path)
{
	char	 tok[HH_TOKEN_LEN + 1];
	char	*p;

	/* Python: hmac.new(b"secret-key", b"team-a/3f2a-uid/t-1", sha256) */
	hh_token("secret-key", 10, "team-a", "3f2a-uid", "t-1", tok);
	ck_assert_str_eq(tok, "c39ee7100eb305d57217af28cdb20613"
	    "3f4aad5d0ba07760258adfaecddca44c");
	p = hh_path("t-1", "");
	ck_assert_str_eq(p, "/agentscaler/v1/tasks/t-1");
	free(p);
	p = hh_path("a/b c%?#~._", "/events?after=3&wait=25");
	ck_assert_str_eq(p, "/agentscaler/v1/tasks/a%2Fb%20c%25%3F%23~._"
	    "/events?after=3&wait=25");
	free(p);
}
END_TEST

/*
 * The long-poll's answer begins only when its wait ends; the sandbox-router
 * answers 502 when no response header came within its
 * --response-header-timeout, 30 s by default (docs/protocol.md section 7).
 */
START_TEST(test_wait_under_router_header_timeout)
{
	ck_assert_int_eq(HH_WAIT, 25);
	ck_assert_int_le(HH_WAIT + 5, 30);
}
END_TEST

START_TEST(test_traceparent)
{
	unsigned char	 zero[24];
	char		 tp[56];

	ck_assert(hh_traceparent_ok(TP));
	ck_assert(!hh_traceparent_ok(NULL));
	ck_assert(!hh_traceparent_ok(""));
	ck_assert(!hh_traceparent_ok("00-00000000000000000000000000000000-"
	    "00f067aa0ba902b7-01"));
	ck_assert(!hh_traceparent_ok("00-4BF92F3577B34DA6A3CE929D0E0E4736-"
	    "00f067aa0ba902b7-01"));
	ck_assert(!hh_traceparent_ok(TP "x"));
	memset(zero, 0, sizeof zero);
	hh_traceparent_new(zero, tp);
	ck_assert(hh_traceparent_ok(tp));
	ck_assert_uint_eq(strlen(tp), 55);
}
END_TEST

START_TEST(test_result)
{
	struct hh_result r;
	cJSON		*res = cJSON_Parse("{\"answer\":42}"), *o, *sb, *e;
	char		*body;

	memset(&r, 0, sizeof r);
	r.id = "t-1";
	r.result = res;
	r.ns = "team-a";
	r.pool = "coder";
	r.claim = "coder-3f";
	r.sandbox = "wp-1";
	r.root = "t-1";
	r.attempt = 1;
	r.started_at = 1796575201.25;
	r.finished_at = 1796575272.004;
	r.traceparent = TP;
	body = hh_result_body(&r, NULL);
	o = cJSON_Parse(body);
	ck_assert_str_eq(as_json_str(o, "kind"), "Result");
	ck_assert_str_eq(as_json_str(o, "state"), "completed");
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(o, "result"), "answer")->valueint,
	    42);
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(o, "error"));
	sb = cJSON_GetObjectItemCaseSensitive(o, "sandbox");
	ck_assert_str_eq(as_json_str(sb, "name"), "wp-1");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "parent")));
	ck_assert_str_eq(as_json_str(o, "startedAt"),
	    "2026-12-06T16:40:01.250000000Z");
	ck_assert_str_eq(as_json_str(o, "traceparent"), TP);
	cJSON_Delete(o);
	free(body);

	/* Never reached a sandbox: failed, sandbox and startedAt null. */
	r.failed = 1;
	r.reason = "handoff.unreachable";
	r.message = "no answer";
	r.sandbox = NULL;
	r.started_at = 0;
	r.traceparent = NULL;
	r.parent = "t-0";
	body = hh_result_body(&r, NULL);
	o = cJSON_Parse(body);
	ck_assert_str_eq(as_json_str(o, "state"), "failed");
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(o, "result"));
	e = cJSON_GetObjectItemCaseSensitive(o, "error");
	ck_assert_str_eq(as_json_str(e, "reason"), "handoff.unreachable");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e,
	    "retryable")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "sandbox")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o,
	    "startedAt")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o,
	    "traceparent")));
	ck_assert_str_eq(as_json_str(o, "parent"), "t-0");
	cJSON_Delete(o);
	free(body);
	cJSON_Delete(res);
}
END_TEST

/* A spawn event's "replies" is read as the set the runtime holds. */
START_TEST(test_spawn_replies)
{
	const char	*b = EL(EV(2, "\"type\":\"spawn\",\"key\":\"a\","
	    "\"task\":{\"payload\":1},\"replies\":[\"deferred\","
	    "\"admitted\",\"bogus\"]") "," EV(3, "\"type\":\"spawn\","
	    "\"key\":\"b\",\"task\":{\"payload\":1}"), 3);
	struct hh_answer a;
	char		 err[160];

	ck_assert_msg(hh_answer_parse(b, strlen(b), &a, err, sizeof err) ==
	    0, "%s", err);
	ck_assert_uint_eq(a.events[0].replies, HH_RB(HH_R_DEFERRED) |
	    HH_RB(HH_R_ADMITTED));
	ck_assert_uint_eq(a.events[1].replies, 0);
	hh_answer_free(&a);
	b = "{" V "\"kind\":\"ReplyAck\",\"key\":\"a\",\"type\":"
	    "\"admitted\",\"duplicate\":false}";
	ck_assert_int_eq(hh_answer_parse(b, strlen(b), &a, err, sizeof err),
	    0);
	ck_assert_int_eq(a.kind, HH_REPLY_ACK);
	hh_answer_free(&a);
}
END_TEST

/*
 * Verdict monotonicity on agentscaler's side (section 4): deferred, then
 * admitted | rejected, then result after admitted (or alone); never back,
 * never twice.
 */
static const struct {
	unsigned	 have;
	enum hh_reply	 r;
	int		 ok;
} follow_rows[] = {
	{ 0, HH_R_DEFERRED, 1 },
	{ 0, HH_R_ADMITTED, 1 },
	{ 0, HH_R_REJECTED, 1 },
	{ 0, HH_R_RESULT, 1 },
	{ HH_RB(HH_R_DEFERRED), HH_R_DEFERRED, 0 },
	{ HH_RB(HH_R_DEFERRED), HH_R_ADMITTED, 1 },
	{ HH_RB(HH_R_DEFERRED), HH_R_REJECTED, 1 },
	{ HH_RB(HH_R_ADMITTED), HH_R_DEFERRED, 0 },
	{ HH_RB(HH_R_ADMITTED), HH_R_ADMITTED, 0 },
	{ HH_RB(HH_R_ADMITTED), HH_R_REJECTED, 0 },
	{ HH_RB(HH_R_ADMITTED), HH_R_RESULT, 1 },
	{ HH_RB(HH_R_REJECTED), HH_R_DEFERRED, 0 },
	{ HH_RB(HH_R_REJECTED), HH_R_ADMITTED, 0 },
	{ HH_RB(HH_R_REJECTED), HH_R_RESULT, 0 },
	{ HH_RB(HH_R_RESULT), HH_R_ADMITTED, 0 },
	{ HH_RB(HH_R_RESULT), HH_R_DEFERRED, 0 },
	{ HH_RB(HH_R_RESULT), HH_R_RESULT, 0 },
	{ HH_RB(HH_R_DEFERRED) | HH_RB(HH_R_ADMITTED), HH_R_RESULT, 1 },
};

START_TEST(test_reply_may_follow)
{
	ck_assert_int_eq(hh_reply_may_follow(follow_rows[_i].have,
	    follow_rows[_i].r), follow_rows[_i].ok);
}
END_TEST

START_TEST(test_child_id)
{
	char	 out[TASK_ID_MAX + 1], parent[TASK_ID_MAX + 1], again[256];

	hh_child_id("t-1", "k", out);
	ck_assert_str_eq(out, "t-1/k");
	/* 253 bytes exactly: still the plain form. */
	memset(parent, 'p', 251);
	parent[251] = '\0';
	hh_child_id(parent, "k", out);
	ck_assert_uint_eq(strlen(out), 253);
	ck_assert_str_eq(out + 251, "/k");
	/* Longer: 220 bytes, "/#", 31 hex digits; a function of both. */
	hh_child_id(parent, "kk", out);
	ck_assert_uint_eq(strlen(out), 220 + 2 + 31);
	ck_assert_int_eq(strncmp(out + 220, "/#", 2), 0);
	as_strlcpy(again, out, sizeof again);
	hh_child_id(parent, "kk", out);
	ck_assert_str_eq(out, again);
	hh_child_id(parent, "kl", out);
	ck_assert_str_ne(out, again);
}
END_TEST

/*
 * The child's message: id and parent set here, never by the runtime;
 * payload, resources, deadline copied; the spawn's traceparent, else the
 * parent's; nothing else of the spawn (a "parent" or "id" in it is not
 * taken).
 */
START_TEST(test_child_message)
{
	const char	*sp = "{\"payload\":{\"f\":\"a.c\"},\"resources\":"
	    "{\"cpu\":\"1\"},\"deadline\":\"2030-01-01T00:00:00Z\","
	    "\"parent\":\"forged\",\"id\":\"forged\"}";
	const char	*tp2 = "00-11111111111111111111111111111111-"
	    "2222222222222222-01";
	cJSON		*spawn = cJSON_Parse(sp), *o;
	char		*m;
	size_t		 len;

	m = hh_child_message("t-1", "k1", spawn, TP, &len);
	ck_assert_uint_eq(len, strlen(m));
	o = cJSON_Parse(m);
	ck_assert_str_eq(as_json_str(o, "id"), "t-1/k1");
	ck_assert_str_eq(as_json_str(o, "parent"), "t-1");
	ck_assert_str_eq(as_json_str(o, "traceparent"), TP);
	ck_assert_str_eq(as_json_str(o, "deadline"), "2030-01-01T00:00:00Z");
	ck_assert_str_eq(as_json_str(cJSON_GetObjectItemCaseSensitive(o,
	    "payload"), "f"), "a.c");
	ck_assert_str_eq(as_json_str(cJSON_GetObjectItemCaseSensitive(o,
	    "resources"), "cpu"), "1");
	cJSON_Delete(o);
	free(m);
	cJSON_AddStringToObject(spawn, "traceparent", tp2);
	m = hh_child_message("t-1", "k1", spawn, TP, NULL);
	o = cJSON_Parse(m);
	ck_assert_str_eq(as_json_str(o, "traceparent"), tp2);
	cJSON_Delete(o);
	free(m);
	cJSON_Delete(spawn);
	spawn = cJSON_Parse("{\"payload\":null}");
	m = hh_child_message("t-1", "k1", spawn, NULL, NULL);
	o = cJSON_Parse(m);
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(o,
	    "traceparent"));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o,
	    "payload")));
	cJSON_Delete(o);
	free(m);
	cJSON_Delete(spawn);
}
END_TEST

START_TEST(test_reply_body)
{
	char	*b = hh_reply_body("k1", HH_R_REJECTED, "t-1/k1",
	    "cascade.maxDepth", "depth 3 > 2", NULL);
	cJSON	*o = cJSON_Parse(b);

	ck_assert_str_eq(as_json_str(o, "apiVersion"), HH_API_VERSION);
	ck_assert_str_eq(as_json_str(o, "kind"), "Reply");
	ck_assert_str_eq(as_json_str(o, "type"), "rejected");
	ck_assert_str_eq(as_json_str(o, "child"), "t-1/k1");
	ck_assert_str_eq(as_json_str(o, "reason"), "cascade.maxDepth");
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(o, "result"));
	cJSON_Delete(o);
	free(b);
	b = hh_reply_body("k1", HH_R_RESULT, "t-1/k1", NULL, NULL,
	    "{\"id\":\"t-1/k1\",\"state\":\"completed\"}");
	o = cJSON_Parse(b);
	ck_assert_str_eq(as_json_str(o, "type"), "result");
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(o, "reason"));
	ck_assert_str_eq(as_json_str(cJSON_GetObjectItemCaseSensitive(o,
	    "result"), "state"), "completed");
	cJSON_Delete(o);
	free(b);
}
END_TEST

static Suite *
handoff_http_suite(void)
{
	Suite	*s = suite_create("handoff_http");
	TCase	*tc = tcase_create("pure");

	tcase_add_test(tc, test_task_body);
	tcase_add_loop_test(tc, test_answer, 0,
	    (int)AS_ARRAY_SIZE(answer_rows));
	tcase_add_test(tc, test_answer_fields);
	tcase_add_test(tc, test_token_and_path);
	tcase_add_test(tc, test_wait_under_router_header_timeout);
	tcase_add_test(tc, test_traceparent);
	tcase_add_test(tc, test_result);
	tcase_add_test(tc, test_spawn_replies);
	tcase_add_loop_test(tc, test_reply_may_follow, 0,
	    (int)AS_ARRAY_SIZE(follow_rows));
	tcase_add_test(tc, test_child_id);
	tcase_add_test(tc, test_child_message);
	tcase_add_test(tc, test_reply_body);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(handoff_http_suite()));
}
