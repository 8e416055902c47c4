/*
 * check_redis_stream.c: the redis-stream source, and the endpoint it shares
 * with redis-list, against real redis-server processes
 * (tests/util/testutil.c): each test with its own server and its own ev
 * loop, driven with EVRUN_ONCE under a bounded deadline.  What the server
 * sees (INFO clients, INFO stats, INFO commandstats, CONFIG) is checked
 * through separate blocking hiredis connections.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <hiredis/hiredis.h>

#include "agentscaler/rt/common.h"
#include "scalers/redis_endpoint.h"
#include "agentscaler/scalers/scaler.h"
#include "util/loop.h"
#include "util/testutil.h"

#define DEADLINE 10.0	/* seconds; generous for valgrind */

/* TESTABLE functions of scalers/redis_stream.c. */
int	 redis_stream_next_id(const char *, char *, size_t);

/* Connections the server ever accepted, our checks' included. */
static long long
server_accepted(const struct tu_redis *r)
{
	return (tu_redis_info(r, "stats", "\ntotal_connections_received:"));
}

/* How often a command ran, from INFO commandstats (0 when never). */
static long long
server_calls(const struct tu_redis *r, const char *cmd)
{
	char		 key[64];
	long long	 v;

	snprintf(key, sizeof key, "cmdstat_%s:calls=", cmd);
	v = tu_redis_info(r, "commandstats", key);
	return (v < 0 ? 0 : v);
}

/* One poll to completion; returns its result. */
static struct scaler_result
poll_wait(struct ev_loop *loop, struct scaler *s)
{
	return (tu_poll_wait(loop, s, DEADLINE));
}

static struct scaler *
make(struct ev_loop *loop, const struct scaler_source *src)
{
	const struct scaler_type *t = scaler_type_find(src->type);
	struct scaler	*s;
	char		 err[256] = "";

	ck_assert(t != NULL);
	s = t->create(loop, src, err, sizeof err);
	ck_assert_msg(s != NULL, "create: %s", err);
	return (s);
}

static struct scaler_source
stream_source(const struct tu_redis *r, const char *stream, const char *group)
{
	struct scaler_source src;

	memset(&src, 0, sizeof src);
	src.type = "redis-stream";
	src.address = r->url;
	src.queue = stream;
	src.consumer_group = group;
	src.count_in_flight = 1;
	return (src);
}

/* XADD n entries with ids 1-0 .. n-0 (explicit, so tests can XDEL them). */
static void
xadd_n(const struct tu_redis *r, const char *stream, int from, int n)
{
	int	 i;

	for (i = from; i < from + n; i++)
		ck_assert_int_eq(tu_redis_cmd(r, "XADD %s %d-0 task %d",
		    stream, i, i), 0);
}

/* n entries with ids the server picks, in one round trip. */
static void
xadd_auto(const struct tu_redis *r, const char *stream, int n)
{
	ck_assert_int_eq(tu_redis_cmd(r, "EVAL %s 1 %s %d", "for i = 1, "
	    "tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], '*', 'task', "
	    "i) end", stream, n), 0);
}

/* ids 1-0 .. n-0 in one round trip (an empty stream only). */
static void
xadd_bulk(const struct tu_redis *r, const char *stream, int n)
{
	ck_assert_int_eq(tu_redis_cmd(r, "EVAL %s 1 %s %d", "for i = 1, "
	    "tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], i .. '-0', "
	    "'task', i) end", stream, n), 0);
}

struct log_arg {
	const struct tu_capture	*cap;
	const char		*needle;
};

/* Whether the captured log has the needle yet (stderr is unbuffered). */
static int
pred_logged(void *arg)
{
	const struct log_arg *a = arg;
	char		 err[128];
	char		*text;
	int		 found;

	text = as_read_file(a->cap->path, 1 << 20, NULL, err, sizeof err);
	found = text != NULL && strstr(text, a->needle) != NULL;
	free(text);
	return (found);
}

/* Pure parts. */

struct id_row {
	const char	*id;
	int		 rc;
	const char	*next;
};

static const struct id_row id_rows[] = {
	{ "4-0", 0, "4-1" },
	{ "0-0", 0, "0-1" },
	{ "1700000000000-41", 0, "1700000000000-42" },
	{ "5-18446744073709551615", 0, "6-0" },
	{ "18446744073709551615-18446744073709551615", 1, NULL },
	{ "18446744073709551616-0", -1, NULL },
	{ "5-18446744073709551616", -1, NULL },
	{ "5", -1, NULL },
	{ "5-", -1, NULL },
	{ "-5-1", -1, NULL },
	{ "5--1", -1, NULL },
	{ "5-1x", -1, NULL },
	{ "", -1, NULL },
	{ NULL, -1, NULL },
};

START_TEST(test_next_id)
{
	const struct id_row *row = &id_rows[_i];
	char		 buf[48] = "";
	int		 rc;

	rc = redis_stream_next_id(row->id, buf, sizeof buf);
	ck_assert_msg(rc == row->rc, "%s: rc %d", row->id, rc);
	if (rc == 0)
		ck_assert_str_eq(buf, row->next);
}
END_TEST

START_TEST(test_validate)
{
	const struct scaler_type *t = &scaler_type_redis_stream;
	struct scaler_source src;
	struct redis_addr a;
	char		 err[192];

	ck_assert_ptr_eq(scaler_type_find("redis-stream"), t);
	ck_assert_str_eq(t->name, "redis-stream");
	memset(&src, 0, sizeof src);
	src.type = "redis-stream";
	src.address = "redis://h:6379/0";
	src.queue = "tasks";
	ck_assert_int_eq(t->validate(&src, err, sizeof err), -AS_EINVAL);
	ck_assert_msg(strstr(err, "consumerGroup") != NULL, "%s", err);
	src.consumer_group = "";
	ck_assert_int_eq(t->validate(&src, err, sizeof err), -AS_EINVAL);
	src.consumer_group = "workers";
	ck_assert_int_eq(t->validate(&src, err, sizeof err), 0);
	src.processing = "tasks.processing";
	ck_assert_int_eq(t->validate(&src, err, sizeof err), -AS_EINVAL);
	ck_assert(strstr(err, "processingList is for redis-list") != NULL);
	src.processing = NULL;
	src.queue = NULL;
	ck_assert_int_eq(t->validate(&src, err, sizeof err), -AS_EINVAL);
	ck_assert(strstr(err, "stream key") != NULL);
	src.queue = "tasks";
	src.password_file = "/f";
	src.password_env = "E";
	ck_assert_int_eq(t->validate(&src, err, sizeof err), -AS_EINVAL);
	ck_assert(strstr(err, "not several") != NULL);
	src.password_env = NULL;

	/* No TLS in hiredis 0.14.1: said plainly, by both types. */
	src.address = "rediss://h:6380/0";
	ck_assert_int_eq(t->validate(&src, err, sizeof err), -AS_EINVAL);
	ck_assert_str_eq(err, "rediss:// needs hiredis >= 1.0 with TLS; this "
	    "build has 0.14.1");
	ck_assert(t->create(NULL, &src, err, sizeof err) == NULL);
	src.type = "redis-list";
	ck_assert_int_eq(scaler_type_redis_list.validate(&src, err,
	    sizeof err), -AS_EINVAL);
	ck_assert(strstr(err, "hiredis >= 1.0") != NULL);
	ck_assert_int_eq(redis_endpoint_parse_address("REDISS://h", &a, err,
	    sizeof err), -AS_EINVAL);
	ck_assert(strstr(err, "hiredis >= 1.0") != NULL);
	src.address = "redis://u:hunter2@h";
	src.type = "redis-stream";
	ck_assert(t->create(NULL, &src, err, sizeof err) == NULL);
	ck_assert(strstr(err, "hunter2") == NULL);
}
END_TEST

/* Against a server. */

START_TEST(test_lag_and_pending)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s, *bare, *other;
	long long	 calls;

	tu_redis_up(&r, NULL);
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0 MKSTREAM",
	    "tasks", "workers"), 0);
	/* A second group on the same stream, which reads nothing. */
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0",
	    "tasks", "audit"), 0);
	src = stream_source(&r, "tasks", "workers");
	s = make(loop, &src);
	src.count_in_flight = 0;
	bare = make(loop, &src);
	src.consumer_group = "audit";
	other = make(loop, &src);

	/* An empty stream with its group: a real zero. */
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == 0, "%s", res.errmsg);
	ck_assert(res.ready == 0 && res.in_flight == 0);

	xadd_n(&r, "tasks", 1, 10);
	ck_assert_int_eq(tu_redis_cmd(&r, "XREADGROUP GROUP %s %s COUNT 4 "
	    "STREAMS %s >", "workers", "c1", "tasks"), 0);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == 0, "%s", res.errmsg);
	ck_assert_msg(res.ready == 6 && res.in_flight == 4, "%g %g",
	    res.ready, res.in_flight);
	ck_assert_str_eq(res.errmsg, "");
	/* Lag came from XINFO GROUPS: nothing had to be counted. */
	ck_assert_int_eq(server_calls(&r, "xrange"), 0);

	ck_assert_int_eq(tu_redis_cmd(&r, "XACK %s %s 1-0 2-0", "tasks",
	    "workers"), 2);
	res = poll_wait(loop, s);
	ck_assert(res.error == 0 && res.ready == 6 && res.in_flight == 2);

	/* Without countInFlight: no XPENDING, in_flight stays 0. */
	calls = server_calls(&r, "xpending");
	ck_assert_int_eq(calls, 3);
	res = poll_wait(loop, bare);
	ck_assert(res.error == 0 && res.ready == 6 && res.in_flight == 0);
	ck_assert_int_eq(server_calls(&r, "xpending"), calls);
	/* Each group has its own lag. */
	res = poll_wait(loop, other);
	ck_assert(res.error == 0 && res.ready == 10);

	/* Everything delivered and acknowledged. */
	ck_assert_int_eq(tu_redis_cmd(&r, "XREADGROUP GROUP %s %s COUNT 100 "
	    "STREAMS %s >", "workers", "c2", "tasks"), 0);
	res = poll_wait(loop, s);
	ck_assert(res.error == 0 && res.ready == 0 && res.in_flight == 8);
	ck_assert_int_eq(tu_redis_cmd(&r, "XACK %s %s 3-0 4-0 5-0 6-0 7-0 8-0 "
	    "9-0 10-0", "tasks", "workers"), 8);
	res = poll_wait(loop, s);
	ck_assert(res.error == 0 && res.ready == 0 && res.in_flight == 0);

	/* Trimmed before delivery: never more ready than the stream holds. */
	xadd_n(&r, "tasks", 11, 5);
	ck_assert_int_eq(tu_redis_cmd(&r, "XTRIM %s MAXLEN 2", "tasks"), 13);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == 0 && res.ready == 2, "%d %g", res.error,
	    res.ready);

	scaler_destroy(s);
	scaler_destroy(bare);
	scaler_destroy(other);
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * Redis 7 reports lag nil once entries the group has not read yet are
 * deleted, or for a group created at an arbitrary id: the source counts.
 */
START_TEST(test_lag_fallback)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s, *mid, *big;
	struct tu_rec	 ws, wm;
	char		*lag;
	long long	 ranges;

	tu_redis_up(&r, NULL);
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0 MKSTREAM",
	    "tasks", "workers"), 0);
	xadd_n(&r, "tasks", 1, 10);
	ck_assert_int_eq(tu_redis_cmd(&r, "XREADGROUP GROUP %s %s COUNT 4 "
	    "STREAMS %s >", "workers", "c1", "tasks"), 0);
	ck_assert_int_eq(tu_redis_cmd(&r, "XDEL %s 8-0", "tasks"), 1);
	/* The premise: the server no longer knows the lag. */
	lag = tu_redis_str(&r, "EVAL %s 0", "local g = redis.call('XINFO', "
	    "'GROUPS', 'tasks')[1]; for i = 1, #g, 2 do if g[i] == 'lag' "
	    "then return type(g[i + 1]) end end; return 'absent'");
	ck_assert_msg(lag != NULL && strcmp(lag, "boolean") == 0, "lag is %s",
	    lag != NULL ? lag : "?");
	free(lag);

	src = stream_source(&r, "tasks", "workers");
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == 0, "%s", res.errmsg);
	/* 5-0, 6-0, 7-0, 9-0, 10-0 are still to be delivered. */
	ck_assert_msg(res.ready == 5 && res.in_flight == 4, "%g %g",
	    res.ready, res.in_flight);
	ranges = server_calls(&r, "xrange");
	ck_assert_int_eq(ranges, 1);

	/* A group created at an id of its own: entries after it. */
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 5-0", "tasks",
	    "late"), 0);
	src.consumer_group = "late";
	mid = make(loop, &src);
	res = poll_wait(loop, mid);
	ck_assert_msg(res.error == 0 && res.ready == 4, "%s %g", res.errmsg,
	    res.ready);

	/* A group that delivered nothing yet: the whole stream, by XLEN. */
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0", "tasks",
	    "fresh"), 0);
	ck_assert_int_eq(tu_redis_cmd(&r, "XDEL %s 1-0", "tasks"), 1);
	scaler_destroy(mid);
	src.consumer_group = "fresh";
	mid = make(loop, &src);
	ranges = server_calls(&r, "xrange");
	res = poll_wait(loop, mid);
	ck_assert_msg(res.error == 0 && res.ready == 8, "%s %g", res.errmsg,
	    res.ready);
	ck_assert_int_eq(server_calls(&r, "xrange"), ranges);

	/* Past the scan cap the count is a lower bound: 1000. */
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0 MKSTREAM",
	    "big", "workers"), 0);
	xadd_bulk(&r, "big", 1205);
	ck_assert_int_eq(tu_redis_cmd(&r, "XREADGROUP GROUP %s %s COUNT 5 "
	    "STREAMS %s >", "workers", "c1", "big"), 0);
	ck_assert_int_eq(tu_redis_cmd(&r, "XDEL %s 100-0", "big"), 1);
	src.queue = "big";
	src.consumer_group = "workers";
	big = make(loop, &src);
	res = poll_wait(loop, big);
	ck_assert_msg(res.error == 0 && res.ready == 1000 &&
	    res.in_flight == 5, "%s %g %g", res.errmsg, res.ready,
	    res.in_flight);

	/*
	 * Destroyed while its follow-up XRANGE is in flight: mid's replies
	 * come after s's XINFO GROUPS (which queues the XRANGE) and before
	 * the XRANGE's, and mid's completion destroys s.
	 */
	ranges = server_calls(&r, "xrange");
	memset(&ws, 0, sizeof ws);
	memset(&wm, 0, sizeof wm);
	wm.destroy_in_done = s;
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &ws), 0);
	ck_assert_int_eq(scaler_poll(mid, tu_rec_done, &wm), 0);
	ck_assert(tu_run_until(loop, tu_pred_done, &wm, DEADLINE));
	ck_assert_int_eq(wm.res.error, 0);
	ck_assert_int_eq(ws.ndone, 1);
	ck_assert_int_eq(ws.res.error, -AS_ECANCELED);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(ws.ndone, 1);
	ck_assert_int_eq(server_calls(&r, "xrange"), ranges + 1);
	scaler_destroy(mid);
	scaler_destroy(big);
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_not_found)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s, *wrong;
	long long	 clients, accepted;
	int		 i;

	tu_redis_up(&r, NULL);
	src = stream_source(&r, "tasks", "workers");
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, -AS_ENOTFOUND);
	ck_assert_msg(strstr(res.errmsg, "stream tasks does not exist") !=
	    NULL, "%s", res.errmsg);
	ck_assert(strstr(res.errmsg, "127.0.0.1:") != NULL);
	/* Ours (one main connection) plus this check's. */
	clients = tu_redis_clients(&r);
	ck_assert_int_eq(clients, 2);

	/*
	 * Errors in replies keep the connection: between two readings the
	 * server accepts only the second reading's own connection.
	 */
	accepted = server_accepted(&r);
	for (i = 0; i < 3; i++) {
		res = poll_wait(loop, s);
		ck_assert_int_eq(res.error, -AS_ENOTFOUND);
	}
	ck_assert_int_eq(server_accepted(&r), accepted + 1);

	/* The stream without the group, or with another group only. */
	xadd_n(&r, "tasks", 1, 3);
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0", "tasks",
	    "others"), 0);
	accepted = server_accepted(&r);
	for (i = 0; i < 3; i++) {
		res = poll_wait(loop, s);
		ck_assert_int_eq(res.error, -AS_ENOTFOUND);
		ck_assert_msg(strstr(res.errmsg, "stream tasks has no "
		    "consumer group workers") != NULL, "%s", res.errmsg);
	}
	ck_assert_int_eq(server_accepted(&r), accepted + 1);
	ck_assert_int_eq(tu_redis_clients(&r), clients);

	/* Creating the group recovers on the next poll. */
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0", "tasks",
	    "workers"), 0);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == 0 && res.ready == 3, "%s", res.errmsg);

	/* Another type under the key: a protocol error, named. */
	ck_assert_int_eq(tu_redis_cmd(&r, "RPUSH %s x", "alist"), 1);
	src.queue = "alist";
	wrong = make(loop, &src);
	res = poll_wait(loop, wrong);
	ck_assert_int_eq(res.error, -AS_EPROTO);
	ck_assert_msg(strstr(res.errmsg, "WRONGTYPE") != NULL, "%s",
	    res.errmsg);
	scaler_destroy(wrong);

	/* Deleted under us: not found again, on the same connection. */
	ck_assert_int_eq(tu_redis_cmd(&r, "DEL %s", "tasks"), 1);
	accepted = server_accepted(&r);
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, -AS_ENOTFOUND);
	ck_assert_int_eq(server_accepted(&r), accepted + 1);
	scaler_destroy(s);
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_push_xadd)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;
	struct tu_rec	 w;
	char		*flags;

	tu_redis_up(&r, NULL);
	src = stream_source(&r, "tasks", "workers");
	s = make(loop, &src);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(s->type->subscribe(s, tu_rec_wake, &w), 0);
	ck_assert(tu_run_until(loop, tu_pred_pushing, s, DEADLINE));
	flags = tu_redis_str(&r, "CONFIG GET %s", "notify-keyspace-events");
	ck_assert_msg(flags != NULL && strchr(flags, 'K') != NULL &&
	    strchr(flags, 't') != NULL && strchr(flags, 'g') != NULL,
	    "flags %s", flags != NULL ? flags : "?");
	/* Only what streams need: no list class. */
	ck_assert(strchr(flags, 'l') == NULL && strchr(flags, 'A') == NULL);
	free(flags);

	/* Creating the stream and its group wakes the pool. */
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s $ MKSTREAM",
	    "tasks", "workers"), 0);
	ck_assert(tu_run_until(loop, tu_pred_woken, &w, DEADLINE));
	w.nwake = 0;
	xadd_auto(&r, "tasks", 1);
	ck_assert(tu_run_until(loop, tu_pred_woken, &w, DEADLINE));
	res = poll_wait(loop, s);
	ck_assert(res.error == 0 && res.ready == 1);
	/* Three XADDs in one script: one or more wake-ups, and all counted. */
	w.nwake = 0;
	xadd_auto(&r, "tasks", 3);
	ck_assert(tu_run_until(loop, tu_pred_woken, &w, DEADLINE));
	res = poll_wait(loop, s);
	ck_assert(res.error == 0 && res.ready == 4);
	scaler_destroy(s);
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * A list pool and a stream pool on one server share one main connection
 * and one subscriber, and the server gets the union of their classes.
 */
START_TEST(test_shared_with_list)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*list, *stream, *stream2;
	struct tu_rec	 wl, ws, ws2, dl, ds;
	struct tu_clients_arg ca;
	long long	 accepted, reads0, reads1;
	char		*flags;

	tu_redis_up(&r, NULL);
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0 MKSTREAM",
	    "stream", "workers"), 0);
	ck_assert_int_eq(tu_redis_cmd(&r, "RPUSH %s a b", "list"), 2);
	xadd_n(&r, "stream", 1, 3);
	accepted = server_accepted(&r);
	memset(&src, 0, sizeof src);
	src.type = "redis-list";
	src.address = r.url;
	src.queue = "list";
	list = make(loop, &src);
	src = stream_source(&r, "stream", "workers");
	stream = make(loop, &src);
	res = poll_wait(loop, list);
	ck_assert(res.error == 0 && res.ready == 2);
	res = poll_wait(loop, stream);
	ck_assert(res.error == 0 && res.ready == 3);
	/* One connection between them (plus this check's). */
	ck_assert_int_eq(tu_redis_clients(&r), 2);
	ck_assert_int_eq(server_accepted(&r), accepted + 1 + 2);

	/* Both polls of one loop turn arrive in one read. */
	reads0 = tu_redis_info(&r, "stats", "\ntotal_reads_processed:");
	memset(&dl, 0, sizeof dl);
	memset(&ds, 0, sizeof ds);
	ck_assert_int_eq(scaler_poll(list, tu_rec_done, &dl), 0);
	ck_assert_int_eq(scaler_poll(stream, tu_rec_done, &ds), 0);
	ck_assert(tu_run_until(loop, tu_pred_done, &dl, DEADLINE));
	ck_assert(tu_run_until(loop, tu_pred_done, &ds, DEADLINE));
	reads1 = tu_redis_info(&r, "stats", "\ntotal_reads_processed:");
	/* One for the batch, two for the INFO connection; not four. */
	ck_assert_msg(reads1 - reads0 <= 3, "%lld reads", reads1 - reads0);
	ck_assert(dl.res.ready == 2 && ds.res.ready == 3);

	/* The list subscribes first: the server gets K, g and l. */
	memset(&wl, 0, sizeof wl);
	memset(&ws, 0, sizeof ws);
	memset(&ws2, 0, sizeof ws2);
	ck_assert_int_eq(list->type->subscribe(list, tu_rec_wake, &wl), 0);
	ck_assert(tu_run_until(loop, tu_pred_pushing, list, DEADLINE));
	flags = tu_redis_str(&r, "CONFIG GET %s", "notify-keyspace-events");
	ck_assert(flags != NULL && strchr(flags, 't') == NULL);
	free(flags);
	/* Then the stream: t is added, asked on the main connection. */
	ck_assert_int_eq(stream->type->subscribe(stream, tu_rec_wake, &ws), 0);
	ck_assert(tu_run_until(loop, tu_pred_pushing, stream, DEADLINE));
	flags = tu_redis_str(&r, "CONFIG GET %s", "notify-keyspace-events");
	ck_assert_msg(flags != NULL && strchr(flags, 'K') != NULL &&
	    strchr(flags, 'g') != NULL && strchr(flags, 'l') != NULL &&
	    strchr(flags, 't') != NULL, "flags %s", flags);
	free(flags);
	ck_assert(list->type->pushing(list));
	/* Main plus one subscriber, plus this check. */
	ck_assert_int_eq(tu_redis_clients(&r), 3);

	/* A second stream pool on the endpoint: no new socket. */
	src.consumer_group = "audit";
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0", "stream",
	    "audit"), 0);
	stream2 = make(loop, &src);
	ck_assert_int_eq(stream2->type->subscribe(stream2, tu_rec_wake, &ws2),
	    0);
	ck_assert(tu_run_until(loop, tu_pred_pushing, stream2, DEADLINE));
	ck_assert_int_eq(tu_redis_clients(&r), 3);

	ck_assert_int_eq(tu_redis_cmd(&r, "XADD %s * k v", "stream"), 0);
	ck_assert(tu_run_until(loop, tu_pred_woken, &ws, DEADLINE));
	ck_assert(tu_run_until(loop, tu_pred_woken, &ws2, DEADLINE));
	ck_assert_int_eq(wl.nwake, 0);
	ck_assert_int_eq(tu_redis_cmd(&r, "LPUSH %s c", "list"), 3);
	ck_assert(tu_run_until(loop, tu_pred_woken, &wl, DEADLINE));
	res = poll_wait(loop, stream2);
	ck_assert(res.error == 0 && res.ready == 4);

	/* The last source of the endpoint closes both sockets. */
	scaler_destroy(list);
	scaler_destroy(stream);
	ca.r = &r;
	ca.want = 3;
	ck_assert(tu_run_until(loop, tu_pred_clients, &ca, DEADLINE));
	scaler_destroy(stream2);
	ca.want = 1;
	ck_assert(tu_run_until(loop, tu_pred_clients, &ca, DEADLINE));
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * The server allows CONFIG GET but not CONFIG SET, and has the list classes
 * on already: the list pool pushes, the stream pool asks for t, is refused,
 * and polls, without disturbing the list's subscription.
 */
START_TEST(test_class_refused)
{
	static const char *const extra[] = { "--notify-keyspace-events", "Klg",
	    NULL };
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*list, *stream;
	struct tu_rec	 wl, ws;
	struct tu_capture	 cap;
	struct log_arg	 la;
	char		*log;

	tu_redis_up(&r, extra);
	ck_assert_int_eq(tu_redis_cmd(&r, "ACL SETUSER default -config|set"),
	    0);
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0 MKSTREAM",
	    "stream", "workers"), 0);
	tu_capture_start(&cap);
	memset(&src, 0, sizeof src);
	src.type = "redis-list";
	src.address = r.url;
	src.queue = "list";
	list = make(loop, &src);
	src = stream_source(&r, "stream", "workers");
	stream = make(loop, &src);
	memset(&wl, 0, sizeof wl);
	memset(&ws, 0, sizeof ws);
	ck_assert_int_eq(list->type->subscribe(list, tu_rec_wake, &wl), 0);
	ck_assert(tu_run_until(loop, tu_pred_pushing, list, DEADLINE));
	ck_assert_int_eq(stream->type->subscribe(stream, tu_rec_wake, &ws), 0);
	la.cap = &cap;
	la.needle = "no keyspace events of class t, those pools poll only";
	ck_assert(tu_run_until(loop, pred_logged, &la, DEADLINE));
	ck_assert_int_eq(stream->type->pushing(stream), 0);
	ck_assert_int_eq(list->type->pushing(list), 1);
	ck_assert_int_eq(tu_redis_cmd(&r, "LPUSH %s a", "list"), 1);
	ck_assert(tu_run_until(loop, tu_pred_woken, &wl, DEADLINE));
	ck_assert_int_eq(tu_redis_cmd(&r, "XADD %s * k v", "stream"), 0);
	res = poll_wait(loop, stream);
	ck_assert(res.error == 0 && res.ready == 1);
	ck_assert_int_eq(ws.nwake, 0);
	scaler_destroy(stream);
	scaler_destroy(list);
	log = tu_capture_end(&cap);
	ck_assert_msg(strstr(log, "no keyspace events of class t, those "
	    "pools poll only") != NULL, "%s", log);
	ck_assert(strstr(log, "CONFIG SET refused") != NULL);
	free(log);
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_restart)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;
	struct tu_rec	 w;
	double		 end;
	int		 i, ok = 0;

	tu_redis_up(&r, NULL);
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0 MKSTREAM",
	    "tasks", "workers"), 0);
	xadd_n(&r, "tasks", 1, 2);
	src = stream_source(&r, "tasks", "workers");
	s = make(loop, &src);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(s->type->subscribe(s, tu_rec_wake, &w), 0);
	ck_assert(tu_run_until(loop, tu_pred_pushing, s, DEADLINE));
	res = poll_wait(loop, s);
	ck_assert(res.error == 0 && res.ready == 2);

	tu_redis_stop(&r);
	for (i = 0; i < 5; i++) {
		res = poll_wait(loop, s);
		ck_assert_msg(res.error == -AS_ECONN, "poll %d: %d %s", i,
		    res.error, res.errmsg);
		ck_assert(strstr(res.errmsg, "127.0.0.1:") != NULL);
		tu_run_for(loop, 0.1);
	}
	ck_assert_int_eq(s->type->pushing(s), 0);

	/* A fresh, empty server: reachable, but the stream is gone. */
	ck_assert_int_eq(tu_redis_restart(&r, NULL), 0);
	end = as_mono_now() + DEADLINE;
	while (!ok && as_mono_now() < end) {
		res = poll_wait(loop, s);
		ok = res.error != -AS_ECONN;
		if (!ok)
			tu_run_for(loop, 0.05);
	}
	ck_assert_msg(ok, "no recovery: %s", res.errmsg);
	ck_assert_msg(res.error == -AS_ENOTFOUND, "%s", res.errmsg);
	/* The new server gets its flags again, and pushes. */
	ck_assert(tu_run_until(loop, tu_pred_pushing, s, DEADLINE));
	w.nwake = 0;
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0 MKSTREAM",
	    "tasks", "workers"), 0);
	xadd_n(&r, "tasks", 1, 3);
	ck_assert(tu_run_until(loop, tu_pred_woken, &w, DEADLINE));
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == 0 && res.ready == 3, "%s", res.errmsg);
	scaler_destroy(s);
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_auth)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s, *good;
	struct tu_capture	 cap;
	struct tu_rec	 w;
	char		 path[64], *log;
	FILE		*fp;

	tu_redis_up(&r, NULL);
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0 MKSTREAM",
	    "tasks", "workers"), 0);
	ck_assert_int_eq(tu_redis_cmd(&r, "CONFIG SET requirepass %s",
	    "s3cret-pw"), 0);
	snprintf(path, sizeof path, "/tmp/check_redis_stream.%d.pw",
	    (int)getpid());
	fp = fopen(path, "w");
	ck_assert(fp != NULL);
	fputs("wr0ng-pw\n", fp);
	fclose(fp);
	tu_capture_start(&cap);
	src = stream_source(&r, "tasks", "workers");
	src.password_file = path;
	s = make(loop, &src);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(s->type->subscribe(s, tu_rec_wake, &w), 0);
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, -AS_EAUTH);
	ck_assert(strstr(res.errmsg, "authentication failed") != NULL);
	ck_assert(strstr(res.errmsg, "WRONGPASS") != NULL);
	ck_assert(strstr(res.errmsg, "wr0ng") == NULL);
	ck_assert(strstr(res.errmsg, "s3cret") == NULL);
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, -AS_EAUTH);
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(s->type->pushing(s), 0);
	scaler_destroy(s);

	/* The right password, from the environment. */
	setenv("CHECK_REDIS_STREAM_PW", "s3cret-pw", 1);
	src.password_file = NULL;
	src.password_env = "CHECK_REDIS_STREAM_PW";
	good = make(loop, &src);
	res = poll_wait(loop, good);
	ck_assert_msg(res.error == 0 && res.ready == 0, "%s", res.errmsg);
	scaler_destroy(good);
	unsetenv("CHECK_REDIS_STREAM_PW");

	log = tu_capture_end(&cap);
	ck_assert(strstr(log, "authentication failed") != NULL);
	ck_assert(strstr(log, "wr0ng") == NULL);
	ck_assert(strstr(log, "s3cret") == NULL);
	free(log);
	unlink(path);
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_destroy_pending)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler	*s, *t;
	struct tu_rec	 w, w2;

	tu_redis_up(&r, NULL);
	ck_assert_int_eq(tu_redis_cmd(&r, "XGROUP CREATE %s %s 0 MKSTREAM",
	    "tasks", "workers"), 0);
	src = stream_source(&r, "tasks", "workers");
	s = make(loop, &src);
	(void)poll_wait(loop, s);

	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), 0);
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), -AS_EAGAIN);
	scaler_destroy(s);
	ck_assert_int_eq(w.ndone, 1);
	ck_assert_int_eq(w.res.error, -AS_ECANCELED);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(w.ndone, 1);

	/* A completion that destroys a sibling with its poll pending. */
	s = make(loop, &src);
	t = make(loop, &src);
	memset(&w, 0, sizeof w);
	memset(&w2, 0, sizeof w2);
	w.destroy_in_done = t;
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), 0);
	ck_assert_int_eq(scaler_poll(t, tu_rec_done, &w2), 0);
	ck_assert(tu_run_until(loop, tu_pred_done, &w, DEADLINE));
	ck_assert_int_eq(w.res.error, 0);
	ck_assert_int_eq(w2.ndone, 1);
	ck_assert_int_eq(w2.res.error, -AS_ECANCELED);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(w.ndone + w2.ndone, 2);

	/* While disconnected: the deferred completion, canceled. */
	tu_redis_down(&r);
	tu_run_for(loop, 0.2);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), 0);
	ck_assert_int_eq(w.ndone, 0);
	scaler_destroy(s);
	ck_assert_int_eq(w.ndone, 1);
	ck_assert_int_eq(w.res.error, -AS_ECANCELED);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(w.ndone, 1);
	ev_loop_destroy(loop);
}
END_TEST

static Suite *
redis_stream_suite(void)
{
	Suite	*s = suite_create("redis_stream");
	TCase	*tc;

	tc = tcase_create("pure");
	tcase_add_loop_test(tc, test_next_id, 0, (int)AS_ARRAY_SIZE(id_rows));
	tcase_add_test(tc, test_validate);
	suite_add_tcase(s, tc);

	tc = tcase_create("server");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_lag_and_pending);
	tcase_add_test(tc, test_lag_fallback);
	tcase_add_test(tc, test_not_found);
	tcase_add_test(tc, test_push_xadd);
	tcase_add_test(tc, test_shared_with_list);
	tcase_add_test(tc, test_class_refused);
	tcase_add_test(tc, test_restart);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_destroy_pending);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_redis_run_suite(redis_stream_suite()));
}
