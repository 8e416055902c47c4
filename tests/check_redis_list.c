/*
 * check_redis_list.c: the redis-list source against real redis-server
 * processes (tests/util/testutil.c), each test with its own server and its
 * own ev loop, driven with EVRUN_ONCE under a bounded deadline.  What the
 * server sees (INFO, PUBSUB, CONFIG) is checked through a separate blocking
 * hiredis connection.  The address parser is a table of rows.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <hiredis/hiredis.h>

#include "agentscaler/rt/common.h"
#include "scalers/redis_endpoint.h"
#include "scalers/redis_list.h"
#include "agentscaler/scalers/scaler.h"
#include "util/loop.h"
#include "util/testutil.h"

#define DEADLINE 10.0	/* seconds; generous for valgrind */

/* Runs a command in database db on a fresh blocking connection. */
static void
server_cmd_db(const struct tu_redis *r, int db, const char *cmd)
{
	redisContext	*c;
	redisReply	*rep;

	c = redisConnect("127.0.0.1", r->port);
	ck_assert(c != NULL && c->err == 0);
	rep = redisCommand(c, "SELECT %d", db);
	ck_assert(rep != NULL && rep->type == REDIS_REPLY_STATUS);
	freeReplyObject(rep);
	rep = redisCommand(c, cmd);
	ck_assert(rep != NULL && rep->type != REDIS_REPLY_ERROR);
	freeReplyObject(rep);
	redisFree(c);
}

/* Writes text to /tmp/check_redis_list.<pid>.<suffix>, named in path. */
static void
pw_file(char *path, size_t len, const char *suffix, const char *text)
{
	FILE	*fp;

	snprintf(path, len, "/tmp/check_redis_list.%d.%s", (int)getpid(),
	    suffix);
	fp = fopen(path, "w");
	ck_assert(fp != NULL);
	fputs(text, fp);
	fclose(fp);
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
	struct scaler	*s;
	char		 err[256] = "";

	s = scaler_type_redis_list.create(loop, src, err, sizeof err);
	ck_assert_msg(s != NULL, "create: %s", err);
	return (s);
}

static struct scaler_source
source(const struct tu_redis *r, const char *queue)
{
	struct scaler_source src;

	memset(&src, 0, sizeof src);
	src.type = "redis-list";
	src.address = r->url;
	src.queue = queue;
	return (src);
}

/* The address parser. */

struct addr_row {
	const char	*url;
	int		 rc;
	const char	*host;
	int		 port;
	int		 db;
	const char	*err;	/* expected in the message */
};

static const struct addr_row addr_rows[] = {
	{ "redis://127.0.0.1:6379/0", 0, "127.0.0.1", 6379, 0, NULL },
	{ "redis://localhost", 0, "localhost", 6379, 0, NULL },
	{ "redis://localhost/", 0, "localhost", 6379, 0, NULL },
	{ "redis://redis.ns.svc:6380/3", 0, "redis.ns.svc", 6380, 3, NULL },
	{ "REDIS://h_1:1/15", 0, "h_1", 1, 15, NULL },
	{ "redis://h:65535/2147483647", 0, "h", 65535, 2147483647, NULL },
	{ "redis://[::1]:6379/2", 0, "::1", 6379, 2, NULL },
	{ "redis://[::1]", 0, "::1", 6379, 0, NULL },
	{ "redis://[fe80::1:2]/1", 0, "fe80::1:2", 6379, 1, NULL },
	{ "redis://[::ffff:10.0.0.1]:7000", 0, "::ffff:10.0.0.1", 7000, 0,
	    NULL },
	{ NULL, -AS_EINVAL, NULL, 0, 0, "empty address" },
	{ "", -AS_EINVAL, NULL, 0, 0, "empty address" },
	{ "localhost:6379", -AS_EINVAL, NULL, 0, 0, "redis://" },
	{ "redis:/h", -AS_EINVAL, NULL, 0, 0, "redis://" },
	{ " redis://h", -AS_EINVAL, NULL, 0, 0, "redis://" },
	{ "http://h:80/", -AS_EINVAL, NULL, 0, 0, "scheme \"http\"" },
	{ "rediss://h", -AS_EINVAL, NULL, 0, 0,
	    "rediss:// needs hiredis >= 1.0 with TLS; this build has 0.14.1" },
	{ "redis-sentinel://h", -AS_EINVAL, NULL, 0, 0, "scheme" },
	{ "redis://", -AS_EINVAL, NULL, 0, 0, "no host" },
	{ "redis://:6379/0", -AS_EINVAL, NULL, 0, 0, "no host" },
	{ "redis://h:", -AS_EINVAL, NULL, 0, 0, "empty port" },
	{ "redis://h:/1", -AS_EINVAL, NULL, 0, 0, "empty port" },
	{ "redis://h:0", -AS_EINVAL, NULL, 0, 0, "1 to 65535" },
	{ "redis://h:65536", -AS_EINVAL, NULL, 0, 0, "1 to 65535" },
	{ "redis://h:99999999999999999999", -AS_EINVAL, NULL, 0, 0,
	    "1 to 65535" },
	{ "redis://h:12ab", -AS_EINVAL, NULL, 0, 0, "1 to 65535" },
	{ "redis://h:-1", -AS_EINVAL, NULL, 0, 0, "1 to 65535" },
	{ "redis://h:+1", -AS_EINVAL, NULL, 0, 0, "1 to 65535" },
	{ "redis://user:hunter2@h:6379/0", -AS_EINVAL, NULL, 0, 0,
	    "credentials" },
	{ "redis://:hunter2@h", -AS_EINVAL, NULL, 0, 0, "credentials" },
	{ "redis://hunter2@h", -AS_EINVAL, NULL, 0, 0, "credentials" },
	{ "redis://u:hunter2/x@h", -AS_EINVAL, NULL, 0, 0, "1 to 65535" },
	{ "redis://h/x", -AS_EINVAL, NULL, 0, 0, "database" },
	{ "redis://h/1/2", -AS_EINVAL, NULL, 0, 0, "database" },
	{ "redis://h/-1", -AS_EINVAL, NULL, 0, 0, "database" },
	{ "redis://h/2147483648", -AS_EINVAL, NULL, 0, 0, "database" },
	{ "redis://h/0@hunter2", -AS_EINVAL, NULL, 0, 0, "database" },
	{ "redis://h?db=1", -AS_EINVAL, NULL, 0, 0, "query" },
	{ "redis://h/1#x", -AS_EINVAL, NULL, 0, 0, "database" },
	{ "redis://h#x", -AS_EINVAL, NULL, 0, 0, "query" },
	{ "redis://[::1", -AS_EINVAL, NULL, 0, 0, "unterminated" },
	{ "redis://[]:1", -AS_EINVAL, NULL, 0, 0, "IPv6" },
	{ "redis://[host]:1", -AS_EINVAL, NULL, 0, 0, "IPv6" },
	{ "redis://[::1]x", -AS_EINVAL, NULL, 0, 0, "after the host" },
	{ "redis://::1:6379", -AS_EINVAL, NULL, 0, 0, "brackets" },
	{ "redis://h$t:1", -AS_EINVAL, NULL, 0, 0, "bad character" },
	{ "redis://h t", -AS_EINVAL, NULL, 0, 0, "bad character" },
};

START_TEST(test_parse_address)
{
	const struct addr_row *row = &addr_rows[_i];
	struct redis_addr a;
	char		 err[192] = "";
	int		 rc;

	rc = redis_list_parse_address(row->url, &a, err, sizeof err);
	ck_assert_msg(rc == row->rc, "%s: rc %d (%s)", row->url, rc, err);
	if (rc == 0) {
		ck_assert_str_eq(a.host, row->host);
		ck_assert_int_eq(a.port, row->port);
		ck_assert_int_eq(a.db, row->db);
	} else {
		ck_assert_msg(strstr(err, row->err) != NULL, "%s: \"%s\"",
		    row->url, err);
		ck_assert_msg(strstr(err, "hunter2") == NULL, "%s: leaks "
		    "\"%s\"", row->url, err);
	}
}
END_TEST

START_TEST(test_parse_long_host)
{
	struct redis_addr a;
	char		 url[400], err[192];

	memset(url, 'a', sizeof url);
	memcpy(url, "redis://", 8);
	url[8 + 255] = '\0';
	ck_assert_int_eq(redis_list_parse_address(url, &a, err, sizeof err),
	    0);
	ck_assert_uint_eq(strlen(a.host), 255);
	memset(url, 'a', sizeof url);
	memcpy(url, "redis://", 8);
	url[8 + 256] = '\0';
	ck_assert_int_eq(redis_list_parse_address(url, &a, err, sizeof err),
	    -AS_EINVAL);
	ck_assert(strstr(err, "too long") != NULL);
	/* A tiny buffer still gets a terminated message. */
	ck_assert_int_eq(redis_list_parse_address("x", &a, err, 4),
	    -AS_EINVAL);
	ck_assert_uint_eq(strlen(err), 3);
}
END_TEST

/* A poll's command, formatted once: one argument per key, spaces and all. */
START_TEST(test_fmt_once)
{
	static const char want[] = "*2\r\n$4\r\nLLEN\r\n$6\r\na b\r\nc\r\n";
	struct redis_endpoint_fmt f = { NULL, 0 };

	redis_endpoint_fmt_set(&f, "LLEN %b", "a b\r\nc", (size_t)6);
	ck_assert_uint_eq(f.len, sizeof want - 1);
	ck_assert(memcmp(f.cmd, want, f.len) == 0);
	redis_endpoint_fmt_set(&f, "LLEN %b", "q", (size_t)1);
	ck_assert_uint_eq(f.len, strlen("*2\r\n$4\r\nLLEN\r\n$1\r\nq\r\n"));
	redis_endpoint_fmt_clear(&f);
	ck_assert_ptr_null(f.cmd);
	redis_endpoint_fmt_clear(&f);
}
END_TEST

START_TEST(test_validate)
{
	struct scaler_source src;
	char		 err[192];

	memset(&src, 0, sizeof src);
	src.queue = "q";
	ck_assert_int_eq(scaler_type_redis_list.validate(&src, err,
	    sizeof err), -AS_EINVAL);
	src.address = "redis://h";
	ck_assert_int_eq(scaler_type_redis_list.validate(&src, err,
	    sizeof err), 0);
	src.queue = "";
	ck_assert_int_eq(scaler_type_redis_list.validate(&src, err,
	    sizeof err), -AS_EINVAL);
	src.queue = "q";
	src.password_file = "/f";
	src.password_env = "E";
	ck_assert_int_eq(scaler_type_redis_list.validate(&src, err,
	    sizeof err), -AS_EINVAL);
	ck_assert(strstr(err, "not several") != NULL);
	src.password_env = NULL;
	src.command_timeout = -1;
	ck_assert_int_eq(scaler_type_redis_list.validate(&src, err,
	    sizeof err), -AS_EINVAL);
	src.command_timeout = 0;
	src.address = "redis://u:hunter2@h";
	ck_assert(scaler_type_redis_list.create(NULL, &src, err,
	    sizeof err) == NULL);
	ck_assert(strstr(err, "hunter2") == NULL);
	ck_assert_ptr_eq(scaler_type_find("redis-list"),
	    &scaler_type_redis_list);
}
END_TEST

/* Against a server. */

START_TEST(test_llen_counts)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s, *bare, *wrong, *db3;
	char		 addr[96];

	tu_redis_up(&r, NULL);
	ck_assert_int_eq(tu_redis_cmd(&r, "RPUSH %s a b c d e f g", "jobs"),
	    7);
	ck_assert_int_eq(tu_redis_cmd(&r, "RPUSH %s x y z", "jobs:proc"), 3);
	ck_assert_int_eq(tu_redis_cmd(&r, "SET %s v", "str"), 0);
	src = source(&r, "jobs");
	src.processing = "jobs:proc";
	src.count_in_flight = 1;
	s = make(loop, &src);
	src.count_in_flight = 0;
	bare = make(loop, &src);
	src.queue = "str";
	wrong = make(loop, &src);
	snprintf(addr, sizeof addr, "redis://127.0.0.1:%d/3", r.port);
	src.address = addr;
	src.queue = "jobs";
	db3 = make(loop, &src);
	server_cmd_db(&r, 3, "RPUSH jobs only-in-db-3");

	res = poll_wait(loop, s);
	ck_assert_msg(res.error == 0, "%s", res.errmsg);
	ck_assert(res.ready == 7 && res.in_flight == 3);
	ck_assert_str_eq(res.errmsg, "");
	res = poll_wait(loop, bare);
	ck_assert(res.error == 0 && res.ready == 7 && res.in_flight == 0);
	res = poll_wait(loop, db3);
	ck_assert(res.error == 0 && res.ready == 1);
	res = poll_wait(loop, wrong);
	ck_assert_int_eq(res.error, -AS_EPROTO);
	ck_assert(strstr(res.errmsg, "WRONGTYPE") != NULL);
	ck_assert(strstr(res.errmsg, "127.0.0.1:") != NULL);
	/* An empty list is a real zero. */
	ck_assert_int_eq(tu_redis_cmd(&r, "DEL %s", "jobs"), 1);
	res = poll_wait(loop, s);
	ck_assert(res.error == 0 && res.ready == 0 && res.in_flight == 3);

	scaler_destroy(s);
	scaler_destroy(bare);
	scaler_destroy(wrong);
	scaler_destroy(db3);
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_shared_connection)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler	*s[20], *other;
	struct tu_rec	 w[20];
	struct tu_clients_arg ca;
	char		 q[16], addr[96];
	long long	 reads0, reads1;
	size_t		 i;

	tu_redis_up(&r, NULL);
	src = source(&r, NULL);
	for (i = 0; i < AS_ARRAY_SIZE(s); i++) {
		snprintf(q, sizeof q, "q%zu", i);
		src.queue = q;
		s[i] = make(loop, &src);
		tu_redis_cmd(&r, "RPUSH %s %d", q, (int)i);
	}
	snprintf(addr, sizeof addr, "redis://127.0.0.1:%d/1", r.port);
	src.address = addr;
	other = make(loop, &src);
	(void)poll_wait(loop, s[0]);
	(void)poll_wait(loop, other);

	/* The server's view: ours are two (db 0, db 1) plus this check. */
	ck_assert_int_eq(tu_redis_clients(&r), 3);

	/* All twenty polls of one loop turn reach the server in one read. */
	reads0 = tu_redis_info(&r, "stats", "\ntotal_reads_processed:");
	memset(w, 0, sizeof w);
	for (i = 0; i < AS_ARRAY_SIZE(s); i++)
		ck_assert_int_eq(scaler_poll(s[i], tu_rec_done, &w[i]), 0);
	for (i = 0; i < AS_ARRAY_SIZE(s); i++)
		ck_assert(tu_run_until(loop, tu_pred_done, &w[i], DEADLINE));
	reads1 = tu_redis_info(&r, "stats", "\ntotal_reads_processed:");
	/*
	 * One read for the batch, the rest for the INFO connections; one
	 * command per write would be twenty or more.
	 */
	ck_assert_msg(reads1 - reads0 <= 5, "%lld reads", reads1 - reads0);
	for (i = 0; i < AS_ARRAY_SIZE(s); i++) {
		ck_assert_int_eq(w[i].res.error, 0);
		ck_assert(w[i].res.ready == 1);
	}

	/* The last instance of an endpoint closes its socket. */
	for (i = 0; i < AS_ARRAY_SIZE(s); i++)
		scaler_destroy(s[i]);
	ca.r = &r;
	ca.want = 2;
	ck_assert(tu_run_until(loop, tu_pred_clients, &ca, DEADLINE));
	scaler_destroy(other);
	ca.want = 1;
	ck_assert(tu_run_until(loop, tu_pred_clients, &ca, DEADLINE));
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_push_wakeup)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler	*a, *b, *c;
	struct tu_rec	 wa, wb, wc;
	struct tu_capture	 cap;
	char		*flags, *n, *log;

	tu_redis_up(&r, NULL);
	tu_capture_start(&cap);
	src = source(&r, "tasks");
	a = make(loop, &src);
	b = make(loop, &src);
	src.queue = "other";
	c = make(loop, &src);
	memset(&wa, 0, sizeof wa);
	memset(&wb, 0, sizeof wb);
	memset(&wc, 0, sizeof wc);
	ck_assert_int_eq(a->type->subscribe(a, tu_rec_wake, &wa), 0);
	ck_assert_int_eq(b->type->subscribe(b, tu_rec_wake, &wb), 0);
	ck_assert_int_eq(c->type->subscribe(c, tu_rec_wake, &wc), 0);
	ck_assert(tu_run_until(loop, tu_pred_pushing, a, DEADLINE));
	ck_assert(tu_run_until(loop, tu_pred_pushing, b, DEADLINE));
	ck_assert(tu_run_until(loop, tu_pred_pushing, c, DEADLINE));

	flags = tu_redis_str(&r, "CONFIG GET %s", "notify-keyspace-events");
	ck_assert(flags != NULL && strchr(flags, 'K') != NULL &&
	    strchr(flags, 'l') != NULL && strchr(flags, 'g') != NULL);
	free(flags);
	/* a and b share one SUBSCRIBE on one subscriber connection. */
	n = tu_redis_str(&r, "PUBSUB NUMSUB %s", "__keyspace@0__:tasks");
	ck_assert_str_eq(n, "1");
	free(n);
	ck_assert_int_eq(tu_redis_clients(&r), 3);

	ck_assert_int_eq(tu_redis_cmd(&r, "LPUSH %s job", "tasks"), 1);
	ck_assert(tu_run_until(loop, tu_pred_woken, &wa, DEADLINE));
	ck_assert(tu_run_until(loop, tu_pred_woken, &wb, DEADLINE));
	ck_assert_int_eq(wc.nwake, 0);
	ck_assert_int_eq(tu_redis_cmd(&r, "RPOP %s", "tasks"), 0);
	ck_assert_int_eq(tu_redis_cmd(&r, "RPUSH %s job", "other"), 1);
	ck_assert(tu_run_until(loop, tu_pred_woken, &wc, DEADLINE));
	/* Deleting a queue (a drain by DEL) wakes its pool too. */
	wc.nwake = 0;
	ck_assert_int_eq(tu_redis_cmd(&r, "DEL %s", "other"), 1);
	ck_assert(tu_run_until(loop, tu_pred_woken, &wc, DEADLINE));

	/* Still subscribed for b when a goes; nothing left after b. */
	scaler_destroy(a);
	tu_run_for(loop, 0.1);
	n = tu_redis_str(&r, "PUBSUB NUMSUB %s", "__keyspace@0__:tasks");
	ck_assert_str_eq(n, "1");
	free(n);
	wb.nwake = 0;
	ck_assert_int_eq(tu_redis_cmd(&r, "LPUSH %s job", "tasks"), 1);
	ck_assert(tu_run_until(loop, tu_pred_woken, &wb, DEADLINE));
	scaler_destroy(b);
	tu_run_for(loop, 0.1);
	n = tu_redis_str(&r, "PUBSUB NUMSUB %s", "__keyspace@0__:tasks");
	ck_assert_str_eq(n, "0");
	free(n);
	scaler_destroy(c);
	log = tu_capture_end(&cap);
	ck_assert_int_eq(tu_count(log, "push wake-ups via keyspace "
	    "notifications"), 1);
	free(log);
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_push_fallback)
{
	static const char *const extra[] = { "--rename-command", "CONFIG", "",
	    NULL };
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s, *t;
	struct tu_rec	 w, w2;
	struct tu_capture	 cap;
	char		*log;

	tu_redis_up(&r, extra);
	tu_capture_start(&cap);
	src = source(&r, "tasks");
	s = make(loop, &src);
	t = make(loop, &src);
	memset(&w, 0, sizeof w);
	memset(&w2, 0, sizeof w2);
	ck_assert_int_eq(s->type->subscribe(s, tu_rec_wake, &w), 0);
	ck_assert_int_eq(t->type->subscribe(t, tu_rec_wake, &w2), 0);
	tu_run_for(loop, 0.5);
	ck_assert_int_eq(s->type->pushing(s), 0);
	ck_assert_int_eq(t->type->pushing(t), 0);
	ck_assert_int_eq(tu_redis_cmd(&r, "LPUSH %s a b", "tasks"), 2);
	res = poll_wait(loop, s);
	ck_assert(res.error == 0 && res.ready == 2);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(w.nwake, 0);
	scaler_destroy(s);
	scaler_destroy(t);
	log = tu_capture_end(&cap);
	ck_assert_int_eq(tu_count(log, "polling only: CONFIG GET refused"),
	    1);
	free(log);
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * source.keyspaceNotifications.  off: subscribe() declines (the pool
 * polls), no subscriber connects and no CONFIG is sent, even where it would
 * be allowed.  require on a server refusing CONFIG: polls fail with the
 * reason once the refusal is known; auto on the same endpoint polls fine.
 */
START_TEST(test_keyspace_modes)
{
	static const char *const extra[] = { "--rename-command", "CONFIG", "",
	    NULL };
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r, q;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s, *a;
	struct tu_rec	 w, wa;
	struct tu_capture	 cap;
	char		*log, *stats;

	memset(&w, 0, sizeof w);
	memset(&wa, 0, sizeof wa);
	/* off, on a server that allows CONFIG */
	tu_redis_up(&q, NULL);
	src = source(&q, "tasks");
	src.keyspace_notifications = SCALER_KEYSPACE_OFF;
	s = make(loop, &src);
	ck_assert_int_eq(s->type->subscribe(s, tu_rec_wake, &w), -AS_EINVAL);
	ck_assert_int_eq(tu_redis_cmd(&q, "LPUSH %s a b", "tasks"), 2);
	res = poll_wait(loop, s);
	ck_assert(res.error == 0 && res.ready == 2);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(s->type->pushing(s), 0);
	ck_assert_int_eq(w.nwake, 0);
	stats = tu_redis_str(&q, "INFO %s", "commandstats");
	ck_assert_msg(strstr(stats, "cmdstat_config") == NULL, "%s", stats);
	ck_assert(strstr(stats, "cmdstat_subscribe") == NULL);
	free(stats);
	scaler_destroy(s);
	tu_redis_down(&q);

	/* require and auto, on a server without CONFIG */
	tu_redis_up(&r, extra);
	tu_capture_start(&cap);
	src = source(&r, "tasks");
	src.keyspace_notifications = SCALER_KEYSPACE_REQUIRE;
	s = make(loop, &src);
	src.keyspace_notifications = SCALER_KEYSPACE_AUTO;
	a = make(loop, &src);
	ck_assert_int_eq(s->type->subscribe(s, tu_rec_wake, &w), 0);
	ck_assert_int_eq(a->type->subscribe(a, tu_rec_wake, &wa), 0);
	tu_run_for(loop, 0.5);
	ck_assert_int_eq(tu_redis_cmd(&r, "LPUSH %s a", "tasks"), 1);
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, -AS_EPROTO);
	ck_assert_msg(strstr(res.errmsg, "keyspaceNotifications is require") !=
	    NULL && strstr(res.errmsg, "CONFIG GET refused") != NULL, "%s",
	    res.errmsg);
	res = poll_wait(loop, a);
	ck_assert(res.error == 0 && res.ready == 1);
	scaler_destroy(s);
	scaler_destroy(a);
	log = tu_capture_end(&cap);
	free(log);
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * source.username with a password (file mode, inline): AUTH user password
 * as a Redis 6 ACL user, where AUTH password alone would log in as the
 * default user.
 */
START_TEST(test_acl_user_inline)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s, *d;
	char		 path[64];

	tu_redis_up(&r, NULL);
	ck_assert_int_eq(tu_redis_cmd(&r, "ACL SETUSER agents on >%s ~* "
	    "+@all", "agents-pw"), 0);
	pw_file(path, sizeof path, "acl", "agents-pw\n");
	ck_assert_int_eq(tu_redis_cmd(&r, "LPUSH %s a", "tasks"), 1);
	/* the default user gets a password: only the ACL user can get in */
	ck_assert_int_eq(tu_redis_cmd(&r, "CONFIG SET requirepass %s",
	    "admin-pw"), 0);
	src = source(&r, "tasks");
	src.password_file = path;
	d = make(loop, &src);			/* AUTH agents-pw: default */
	res = poll_wait(loop, d);
	ck_assert_int_eq(res.error, -AS_EAUTH);
	src.username = "agents";
	s = make(loop, &src);			/* another endpoint */
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == 0 && res.ready == 1, "%s", res.errmsg);
	scaler_destroy(s);
	scaler_destroy(d);
	unlink(path);
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
	src = source(&r, "tasks");
	s = make(loop, &src);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(s->type->subscribe(s, tu_rec_wake, &w), 0);
	ck_assert(tu_run_until(loop, tu_pred_pushing, s, DEADLINE));
	tu_redis_cmd(&r, "RPUSH %s a", "tasks");
	res = poll_wait(loop, s);
	ck_assert(res.error == 0 && res.ready == 1);

	tu_redis_stop(&r);
	for (i = 0; i < 5; i++) {
		res = poll_wait(loop, s);
		ck_assert_msg(res.error == -AS_ECONN, "poll %d: %d %s", i,
		    res.error, res.errmsg);
		ck_assert(strstr(res.errmsg, "127.0.0.1:") != NULL);
		tu_run_for(loop, 0.1);
	}
	ck_assert_int_eq(s->type->pushing(s), 0);

	ck_assert_int_eq(tu_redis_restart(&r, NULL), 0);
	end = as_mono_now() + DEADLINE;
	while (!ok && as_mono_now() < end) {
		res = poll_wait(loop, s);
		ok = res.error == 0;
		if (!ok) {
			ck_assert_int_eq(res.error, -AS_ECONN);
			tu_run_for(loop, 0.05);
		}
	}
	ck_assert_msg(ok, "no recovery: %s", res.errmsg);
	ck_assert(res.ready == 0);	/* a fresh, empty server */
	ck_assert(tu_run_until(loop, tu_pred_pushing, s, DEADLINE));
	w.nwake = 0;
	ck_assert_int_eq(tu_redis_cmd(&r, "LPUSH %s b", "tasks"), 1);
	ck_assert(tu_run_until(loop, tu_pred_woken, &w, DEADLINE));
	res = poll_wait(loop, s);
	ck_assert(res.error == 0 && res.ready == 1);
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
	struct scaler	*s, *e, *none;
	struct tu_capture	 cap;
	char		 path[64], *log;
	FILE		*fp;
	double		 end;

	/* As --requirepass (testutil's readiness PING needs no password). */
	tu_redis_up(&r, NULL);
	ck_assert_int_eq(tu_redis_cmd(&r, "CONFIG SET requirepass %s",
	    "s3cret-pw"), 0);
	pw_file(path, sizeof path, "pw", "wr0ng-pw\n");
	tu_capture_start(&cap);
	src = source(&r, "tasks");
	src.password_file = path;
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, -AS_EAUTH);
	ck_assert(strstr(res.errmsg, "authentication failed") != NULL);
	ck_assert(strstr(res.errmsg, "WRONGPASS") != NULL);
	ck_assert(strstr(res.errmsg, "127.0.0.1:") != NULL);
	ck_assert(strstr(res.errmsg, "wr0ng") == NULL);
	ck_assert(strstr(res.errmsg, "s3cret") == NULL);
	/* While down, the cause stays an authentication failure. */
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, -AS_EAUTH);

	/* No password at all: the server's NOAUTH is an auth error too. */
	src.password_file = NULL;
	none = make(loop, &src);
	res = poll_wait(loop, none);
	ck_assert_int_eq(res.error, -AS_EAUTH);
	ck_assert(strstr(res.errmsg, "NOAUTH") != NULL);
	scaler_destroy(none);

	/* The file is read again at each connect. */
	fp = fopen(path, "w");
	ck_assert(fp != NULL);
	fputs("s3cret-pw\n", fp);
	fclose(fp);
	end = as_mono_now() + DEADLINE;
	do {
		tu_run_for(loop, 0.05);
		res = poll_wait(loop, s);
	} while (res.error != 0 && as_mono_now() < end);
	ck_assert_msg(res.error == 0, "%s", res.errmsg);

	/* From the environment. */
	setenv("CHECK_REDIS_LIST_PW", "s3cret-pw", 1);
	src.password_env = "CHECK_REDIS_LIST_PW";
	e = make(loop, &src);
	res = poll_wait(loop, e);
	ck_assert_msg(res.error == 0, "%s", res.errmsg);
	scaler_destroy(e);
	unsetenv("CHECK_REDIS_LIST_PW");
	e = make(loop, &src);
	res = poll_wait(loop, e);
	ck_assert_int_eq(res.error, -AS_EAUTH);
	ck_assert(strstr(res.errmsg, "CHECK_REDIS_LIST_PW") != NULL);
	scaler_destroy(e);

	scaler_destroy(s);
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

START_TEST(test_command_timeout)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler_result res, during, again;
	struct scaler	*s;
	double		 t0, took, end;

	tu_redis_up(&r, NULL);
	src = source(&r, "tasks");
	src.command_timeout = 0.3;
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, 0);

	kill(r.pid, SIGSTOP);
	t0 = as_mono_now();
	during = poll_wait(loop, s);
	took = as_mono_now() - t0;
	again = poll_wait(loop, s);
	kill(r.pid, SIGCONT);

	ck_assert_msg(during.error == -AS_ETIMEDOUT, "%d %s", during.error,
	    during.errmsg);
	ck_assert(strstr(during.errmsg, "0.3 s") != NULL);
	ck_assert(strstr(during.errmsg, "127.0.0.1:") != NULL);
	ck_assert_msg(took >= 0.25 && took < 5, "took %.3f s", took);
	ck_assert(again.error != 0);
	end = as_mono_now() + DEADLINE;
	do {
		tu_run_for(loop, 0.05);
		res = poll_wait(loop, s);
	} while (res.error != 0 && as_mono_now() < end);
	ck_assert_msg(res.error == 0, "%s", res.errmsg);
	scaler_destroy(s);
	tu_redis_down(&r);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_refused)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;
	char		 addr[64], name[64];
	int		 port = tu_free_port();

	snprintf(addr, sizeof addr, "redis://127.0.0.1:%d/0", port);
	snprintf(name, sizeof name, "redis 127.0.0.1:%d: ", port);
	memset(&src, 0, sizeof src);
	src.address = addr;
	src.queue = "q";
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, -AS_ECONN);
	ck_assert(strncmp(res.errmsg, name, strlen(name)) == 0);
	ck_assert(strstr(res.errmsg, "refused") != NULL);
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, -AS_ECONN);
	scaler_destroy(s);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * A listener with backlog 0 that never accepts: once one connection fills
 * its queue, further SYNs are dropped and connect() hangs.
 */
START_TEST(test_connect_timeout)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;
	char		 addr[64];
	double		 t0, took;
	int		 lfd, ffd, port;

	lfd = tu_listen(0, &port);
	ffd = tu_connect(port);

	snprintf(addr, sizeof addr, "redis://127.0.0.1:%d", port);
	memset(&src, 0, sizeof src);
	src.address = addr;
	src.queue = "q";
	src.connect_timeout = 0.2;
	s = make(loop, &src);
	t0 = as_mono_now();
	res = poll_wait(loop, s);
	took = as_mono_now() - t0;
	ck_assert_msg(res.error == -AS_ETIMEDOUT, "%d %s", res.error,
	    res.errmsg);
	ck_assert(strstr(res.errmsg, "connect timed out after 0.2 s") != NULL);
	ck_assert_msg(took >= 0.15 && took < 5, "took %.3f s", took);
	res = poll_wait(loop, s);
	ck_assert(res.error == -AS_ECONN || res.error == -AS_ETIMEDOUT);
	scaler_destroy(s);
	close(ffd);
	close(lfd);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_destroy_pending)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct tu_redis	 r;
	struct scaler_source src;
	struct scaler	*s, *t, *u;
	struct tu_rec	 w, w2;

	tu_redis_up(&r, NULL);
	src = source(&r, "tasks");
	s = make(loop, &src);
	(void)poll_wait(loop, s);

	/* In hiredis's hands. */
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), 0);
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), -AS_EAGAIN);
	scaler_destroy(s);
	ck_assert_int_eq(w.ndone, 1);
	ck_assert_int_eq(w.res.error, -AS_ECANCELED);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(w.ndone, 1);

	/* A completion that destroys its own and a sibling's instance. */
	s = make(loop, &src);
	t = make(loop, &src);
	memset(&w, 0, sizeof w);
	memset(&w2, 0, sizeof w2);
	w.destroy_in_done = s;
	w.destroy_too = t;
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), 0);
	ck_assert_int_eq(scaler_poll(t, tu_rec_done, &w2), 0);
	ck_assert(tu_run_until(loop, tu_pred_done, &w, DEADLINE));
	ck_assert_int_eq(w.ndone, 1);
	ck_assert_int_eq(w2.ndone, 1);
	ck_assert_int_eq(w2.res.error, -AS_ECANCELED);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(w.ndone + w2.ndone, 2);

	/* A completion that polls again, then one that destroys. */
	s = make(loop, &src);
	memset(&w, 0, sizeof w);
	w.poll_again = 1;
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), 0);
	ck_assert(tu_run_until(loop, tu_pred_done, &w, DEADLINE));
	w.ndone = 0;
	ck_assert(tu_run_until(loop, tu_pred_done, &w, DEADLINE));
	ck_assert_int_eq(w.res.error, 0);

	/* While disconnected: the deferred completion, canceled. */
	tu_redis_down(&r);
	u = make(loop, &src);
	tu_run_for(loop, 0.2);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(u, tu_rec_done, &w), 0);
	ck_assert_int_eq(w.ndone, 0);
	scaler_destroy(u);
	ck_assert_int_eq(w.ndone, 1);
	ck_assert_int_eq(w.res.error, -AS_ECANCELED);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), 0);
	scaler_destroy(s);
	ck_assert_int_eq(w.ndone, 1);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(w.ndone, 1);
	ev_loop_destroy(loop);
}
END_TEST

static Suite *
redis_list_suite(void)
{
	Suite	*s = suite_create("redis_list");
	TCase	*tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_parse_address, 0,
	    (int)AS_ARRAY_SIZE(addr_rows));
	tcase_add_test(tc, test_parse_long_host);
	tcase_add_test(tc, test_validate);
	tcase_add_test(tc, test_fmt_once);
	suite_add_tcase(s, tc);

	tc = tcase_create("server");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_llen_counts);
	tcase_add_test(tc, test_shared_connection);
	tcase_add_test(tc, test_push_wakeup);
	tcase_add_test(tc, test_push_fallback);
	tcase_add_test(tc, test_keyspace_modes);
	tcase_add_test(tc, test_acl_user_inline);
	tcase_add_test(tc, test_restart);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_command_timeout);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_connect_timeout);
	tcase_add_test(tc, test_destroy_pending);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_redis_run_suite(redis_list_suite()));
}
