/*
 * check_rabbitmq.c: the rabbitmq source, both transports, against one real
 * rabbitmq-server (with the management plugin) started for the whole suite
 * (tests/util/testutil.c: own HOME, node name, epmd and loopback ports).
 * Each test uses its own queue names or vhost and its own ev loop, driven
 * with EVRUN_ONCE under a bounded deadline.  What the broker sees is read
 * with rabbitmqctl and the management API; messages are published and
 * consumed with rabbitmq-c's blocking API (tests/util/amqp.c).  The address
 * parser and validate() are tables of rows.
 *
 * The management API refreshes queue statistics every 500 ms here
 * (collect_statistics_interval in the test broker's config), so the HTTP
 * cases poll until the broker's numbers settle, under a deadline.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "scalers/compat_amqp.h"
#include "scalers/rabbitmq.h"
#include "agentscaler/scalers/scaler.h"
#include "util/amqp.h"
#include "util/loop.h"
#include "util/testutil.h"

#define DEADLINE 20.0	/* seconds; a bound, never a speed check */

/* TESTABLE knobs of scalers/rabbitmq_http.c and rabbitmq_amqp.c. */
extern int	 rabbitmq_http_page_size;
extern double	 rabbitmq_http_reuse;
extern int	 rabbitmq_amqp_heartbeat;

static struct tu_rabbit rb;

/* ---- blocking rabbitmq-c helpers (tests/util/amqp.c) ---- */

/*
 * A consumer that takes n messages (prefetch n) and acknowledges none; the
 * connection stays open until tu_amqp_close().
 */
static amqp_connection_state_t
bconsume_noack(const char *vhost, const char *q, int n)
{
	amqp_connection_state_t c = tu_amqp_open(&rb, vhost);
	amqp_envelope_t	 env;
	amqp_rpc_reply_t r;
	struct timeval	 tv = { 10, 0 };
	int		 i;

	amqp_basic_qos(c, 1, 0, (uint16_t)n, 0);
	ck_assert(amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL);
	amqp_basic_consume(c, 1, amqp_cstring_bytes(q), amqp_empty_bytes, 0,
	    0, 0, amqp_empty_table);
	ck_assert(amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL);
	for (i = 0; i < n; i++) {
		amqp_maybe_release_buffers(c);
		r = amqp_consume_message(c, &env, &tv, 0);
		ck_assert_msg(r.reply_type == AMQP_RESPONSE_NORMAL,
		    "delivery %d", i);
		amqp_destroy_envelope(&env);
	}
	return (c);
}

/* A vhost of its own, guest allowed everything. */
static void
mkvhost(const char *v)
{
	char	 path[256];
	long	 code;

	snprintf(path, sizeof path, "/api/vhosts/%s", v);
	code = tu_rabbit_api(&rb, "PUT", path, "{}", NULL);
	ck_assert_msg(code == 201 || code == 204, "PUT %s: %ld", path, code);
	snprintf(path, sizeof path, "/api/permissions/%s/guest", v);
	code = tu_rabbit_api(&rb, "PUT", path, "{\"configure\":\".*\","
	    "\"write\":\".*\",\"read\":\".*\"}", NULL);
	ck_assert_msg(code == 201 || code == 204, "PUT %s: %ld", path, code);
}

/* How many client connections the broker lists for vhost. */
static int
broker_connections(const char *vhost)
{
	char	*out = NULL, *line, *save = NULL;
	int	 n = 0;

	ck_assert_int_eq(tu_rabbit_ctl(&rb, &out, "list_connections",
	    "--no-table-headers", "--silent", "vhost", "client_properties",
	    NULL), 0);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, vhost, strlen(vhost)) == 0 &&
		    line[strlen(vhost)] == '\t' &&
		    strstr(line, "agentscaler") != NULL)
			n++;
	}
	free(out);
	return (n);
}

/*
 * The heartbeat (seconds) the broker negotiated with the one agentscaler
 * connection of vhost, or -1 when it lists none.
 */
static int
broker_heartbeat(const char *vhost)
{
	char	*out = NULL, *line, *save = NULL, *tab;
	int	 hb = -1;

	ck_assert_int_eq(tu_rabbit_ctl(&rb, &out, "list_connections",
	    "--no-table-headers", "--silent", "vhost", "timeout",
	    "client_properties", NULL), 0);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, vhost, strlen(vhost)) == 0 &&
		    line[strlen(vhost)] == '\t' &&
		    strstr(line, "agentscaler") != NULL) {
			tab = line + strlen(vhost) + 1;
			hb = (int)strtol(tab, NULL, 10);
		}
	}
	free(out);
	return (hb);
}

/* ---- the loop ---- */

/* One poll to completion; returns its result. */
static struct scaler_result
poll_wait(struct ev_loop *loop, struct scaler *s)
{
	return (tu_poll_wait(loop, s, DEADLINE));
}

/*
 * Polls until the result matches (error, ready, in flight; -1 for "any")
 * or the deadline passes; returns the last result.
 */
static struct scaler_result
poll_until(struct ev_loop *loop, struct scaler *s, int error, double ready,
    double in_flight)
{
	struct scaler_result res;
	double		 end = as_mono_now() + DEADLINE;

	for (;;) {
		res = poll_wait(loop, s);
		if (res.error == error && (ready < 0 || res.ready == ready) &&
		    (in_flight < 0 || res.in_flight == in_flight))
			return (res);
		if (as_mono_now() > end)
			return (res);
		tu_run_for(loop, 0.1);
	}
}

static struct scaler *
make(struct ev_loop *loop, const struct scaler_source *src)
{
	struct scaler	*s;
	char		 err[256] = "";

	ck_assert_ptr_eq(scaler_type_find("rabbitmq"), &scaler_type_rabbitmq);
	s = scaler_type_rabbitmq.create(loop, src, err, sizeof err);
	ck_assert_msg(s != NULL, "create: %s", err);
	return (s);
}

static char amqp_vh[160], http_vh[160];

/* The broker's addresses with a vhost path. */
static const char *
amqp_url(const char *vhost)
{
	snprintf(amqp_vh, sizeof amqp_vh, "amqp://127.0.0.1:%d/%s",
	    rb.amqp_port, vhost);
	return (amqp_vh);
}

static const char *
http_url(const char *vhost)
{
	snprintf(http_vh, sizeof http_vh, "http://127.0.0.1:%d/%s",
	    rb.mgmt_port, vhost);
	return (http_vh);
}

static struct rabbitmq_stats
stats_of(const struct scaler *s)
{
	struct rabbitmq_stats st;

	ck_assert_int_eq(rabbitmq_stats(s, &st), 0);
	return (st);
}

/* ---- pure: the address parser ---- */

struct addr_row {
	const char	*url;
	int		 rc;
	enum rabbitmq_transport transport;
	int		 tls;
	const char	*host;
	int		 port;
	const char	*vhost;
	const char	*err;	/* expected in the message */
};

static const struct addr_row addr_rows[] = {
	{ "amqp://127.0.0.1:5672/", 0, RABBITMQ_AMQP, 0, "127.0.0.1", 5672,
	    "/", NULL },
	{ "amqp://rabbit", 0, RABBITMQ_AMQP, 0, "rabbit", 5672, "/", NULL },
	{ "amqp://rabbit/%2F", 0, RABBITMQ_AMQP, 0, "rabbit", 5672, "/",
	    NULL },
	{ "amqp://rabbit.ns.svc:5673/agents", 0, RABBITMQ_AMQP, 0,
	    "rabbit.ns.svc", 5673, "agents", NULL },
	{ "AMQPS://h/v%2Fx%20y", 0, RABBITMQ_AMQP, 1, "h", 5671, "v/x y",
	    NULL },
	{ "amqp://[::1]:5672/v", 0, RABBITMQ_AMQP, 0, "::1", 5672, "v", NULL },
	{ "http://127.0.0.1:15672", 0, RABBITMQ_HTTP, 0, "127.0.0.1", 15672,
	    "/", NULL },
	{ "http://h/", 0, RABBITMQ_HTTP, 0, "h", 15672, "/", NULL },
	{ "https://h/prod", 0, RABBITMQ_HTTP, 1, "h", 15671, "prod", NULL },
	{ "http://[fe80::1]:8080/%2f", 0, RABBITMQ_HTTP, 0, "fe80::1", 8080,
	    "/", NULL },
	{ NULL, -AS_EINVAL, 0, 0, NULL, 0, NULL, "empty address" },
	{ "", -AS_EINVAL, 0, 0, NULL, 0, NULL, "empty address" },
	{ "rabbit:5672", -AS_EINVAL, 0, 0, NULL, 0, NULL, "must start" },
	{ "redis://h:6379/0", -AS_EINVAL, 0, 0, NULL, 0, NULL,
	    "scheme \"redis\"" },
	{ "ftp://h", -AS_EINVAL, 0, 0, NULL, 0, NULL, "scheme" },
	{ "amqp://guest:guest@h:5672/", -AS_EINVAL, 0, 0, NULL, 0, NULL,
	    "credentials" },
	{ "http://u:hunter2@h:15672/", -AS_EINVAL, 0, 0, NULL, 0, NULL,
	    "credentials" },
	{ "amqps://hunter2@h", -AS_EINVAL, 0, 0, NULL, 0, NULL,
	    "credentials" },
	{ "amqp://", -AS_EINVAL, 0, 0, NULL, 0, NULL, "no host" },
	{ "amqp://:5672/", -AS_EINVAL, 0, 0, NULL, 0, NULL, "no host" },
	{ "amqp://h:", -AS_EINVAL, 0, 0, NULL, 0, NULL, "empty port" },
	{ "amqp://h:0/", -AS_EINVAL, 0, 0, NULL, 0, NULL, "1 to 65535" },
	{ "amqp://h:65536/", -AS_EINVAL, 0, 0, NULL, 0, NULL, "1 to 65535" },
	{ "amqp://h:x/", -AS_EINVAL, 0, 0, NULL, 0, NULL, "1 to 65535" },
	{ "amqp://h/a/b", -AS_EINVAL, 0, 0, NULL, 0, NULL, "%2F" },
	{ "amqp://h//", -AS_EINVAL, 0, 0, NULL, 0, NULL, "%2F" },
	{ "amqp://h/%zz", -AS_EINVAL, 0, 0, NULL, 0, NULL, "percent" },
	{ "amqp://h/%2", -AS_EINVAL, 0, 0, NULL, 0, NULL, "percent" },
	{ "amqp://h/%00", -AS_EINVAL, 0, 0, NULL, 0, NULL, "%00" },
	{ "amqp://h/a b", -AS_EINVAL, 0, 0, NULL, 0, NULL, "bad character" },
	{ "http://h/?vhost=x", -AS_EINVAL, 0, 0, NULL, 0, NULL, "query" },
	{ "http://h/v#frag", -AS_EINVAL, 0, 0, NULL, 0, NULL, "query" },
	{ "amqp://[::1/", -AS_EINVAL, 0, 0, NULL, 0, NULL, "unterminated" },
	{ "amqp://[zz]/", -AS_EINVAL, 0, 0, NULL, 0, NULL, "IPv6" },
	{ "amqp://::1:5672/", -AS_EINVAL, 0, 0, NULL, 0, NULL, "brackets" },
	{ "amqp://h$x/", -AS_EINVAL, 0, 0, NULL, 0, NULL, "bad character" },
	{ "amqp://[::1]x/", -AS_EINVAL, 0, 0, NULL, 0, NULL,
	    "after the host" },
};

START_TEST(test_parse_address)
{
	const struct addr_row *row = &addr_rows[_i];
	struct rabbitmq_addr a;
	char		 err[192] = "";
	int		 rc;

	rc = rabbitmq_parse_address(row->url, &a, err, sizeof err);
	ck_assert_msg(rc == row->rc, "%s: rc %d (%s)", row->url, rc, err);
	if (rc == 0) {
		ck_assert_int_eq(a.transport, row->transport);
		ck_assert_int_eq(a.tls, row->tls);
		ck_assert_str_eq(a.host, row->host);
		ck_assert_int_eq(a.port, row->port);
		ck_assert_str_eq(a.vhost, row->vhost);
	} else {
		ck_assert_msg(strstr(err, row->err) != NULL,
		    "%s: \"%s\" lacks \"%s\"", row->url, err, row->err);
		/* A rejected address may hold a password: never echoed. */
		ck_assert(strstr(err, "hunter2") == NULL);
		ck_assert(strstr(err, "guest:guest") == NULL);
	}
}
END_TEST

START_TEST(test_parse_long_vhost)
{
	struct rabbitmq_addr a;
	char		 url[600], err[192];

	memset(url, 0, sizeof url);
	memcpy(url, "amqp://h/", 9);
	memset(url + 9, 'v', 255);
	ck_assert_int_eq(rabbitmq_parse_address(url, &a, err, sizeof err), 0);
	ck_assert_uint_eq(strlen(a.vhost), 255);
	url[9 + 255] = 'v';
	ck_assert_int_eq(rabbitmq_parse_address(url, &a, err, sizeof err),
	    -AS_EINVAL);
	ck_assert(strstr(err, "longer than 255") != NULL);
}
END_TEST

/* ---- pure: validate() ---- */

struct valid_row {
	const char	*address;
	const char	*queue;
	int		 count_in_flight;
	const char	*ca_file;
	const char	*processing;
	int		 rc;
	const char	*err;
};

static const struct valid_row valid_rows[] = {
	{ "amqp://h/", "q", 0, NULL, NULL, 0, NULL },
	{ "http://h/", "q", 1, NULL, NULL, 0, NULL },
	{ "https://h/", "q", 1, "/ca.pem", NULL, 0, NULL },
	{ "amqps://h/", "q", 0, "/ca.pem", NULL, 0, NULL },
	{ "amqp://h/", "q", 1, NULL, NULL, -AS_EINVAL,
	    "use the management API: http://" },
	{ "amqps://h/", "q", 1, NULL, NULL, -AS_EINVAL, "countInFlight" },
	{ "amqp://h/", "q", 0, "/ca.pem", NULL, -AS_EINVAL, "use amqps://" },
	{ "http://h/", "q", 0, "/ca.pem", NULL, -AS_EINVAL, "use https://" },
	{ "amqp://h/", "", 0, NULL, NULL, -AS_EINVAL, "queue" },
	{ "amqp://h/", NULL, 0, NULL, NULL, -AS_EINVAL, "queue" },
	{ NULL, "q", 0, NULL, NULL, -AS_EINVAL, "needs an address" },
	{ "amqp://u:p@h/", "q", 0, NULL, NULL, -AS_EINVAL, "credentials" },
	{ "http://h/", "q", 1, NULL, "q.processing", -AS_EINVAL,
	    "processingList" },
};

START_TEST(test_validate)
{
	const struct valid_row *row = &valid_rows[_i];
	struct scaler_source src = tu_amqp_source(row->address, row->queue);
	char		 err[192] = "";
	int		 rc;

	src.count_in_flight = row->count_in_flight;
	src.ca_file = row->ca_file;
	src.processing = row->processing;
	rc = scaler_type_rabbitmq.validate(&src, err, sizeof err);
	ck_assert_msg(rc == row->rc, "row %d: rc %d (%s)", _i, rc, err);
	if (rc != 0)
		ck_assert_msg(strstr(err, row->err) != NULL,
		    "row %d: \"%s\" lacks \"%s\"", _i, err, row->err);
}
END_TEST

START_TEST(test_validate_queue_too_long)
{
	struct scaler_source src;
	char		 q[300], err[192];

	memset(q, 'q', sizeof q - 1);
	q[sizeof q - 1] = '\0';
	src = tu_amqp_source("amqp://h/", q);
	ck_assert_int_eq(scaler_type_rabbitmq.validate(&src, err, sizeof err),
	    -AS_EINVAL);
	ck_assert(strstr(err, "longer than 255") != NULL);
}
END_TEST

/* ---- against the broker: AMQP ---- */

START_TEST(test_amqp_backlog)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	amqp_connection_state_t c, k;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;

	tu_rabbit_need();
	c = tu_amqp_open(&rb, "/");
	tu_amqp_declare(c, "amqp-backlog", 0);
	src = tu_amqp_source(amqp_url(""), "amqp-backlog");
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == 0, "%s", res.errmsg);
	ck_assert(res.ready == 0);
	tu_amqp_publish(c, "amqp-backlog", 7);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == 0, "%s", res.errmsg);
	ck_assert_msg(res.ready == 7, "ready %g", res.ready);
	ck_assert(res.in_flight == 0);
	ck_assert(res.consumers == 0);
	ck_assert_int_eq(res.has_rates, 0);

	/* A consumer holding 3 unacked: AMQP sees 4 ready, 1 consumer. */
	k = bconsume_noack("/", "amqp-backlog", 3);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == 0, "%s", res.errmsg);
	ck_assert_msg(res.ready == 4, "ready %g", res.ready);
	ck_assert(res.consumers == 1);
	ck_assert(res.in_flight == 0);
	tu_amqp_close(k);
	ck_assert_int_eq(stats_of(s).connects, 1);
	scaler_destroy(s);
	tu_amqp_delete(c, "amqp-backlog");
	tu_amqp_close(c);
	ev_loop_destroy(loop);
}
END_TEST

/* ---- against the broker: HTTP ---- */

START_TEST(test_http_backlog_in_flight)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	amqp_connection_state_t c, k;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;

	tu_rabbit_need();
	c = tu_amqp_open(&rb, "/");
	tu_amqp_declare(c, "http-backlog", 0);
	tu_amqp_publish(c, "http-backlog", 5);
	src = tu_amqp_source(http_url(""), "http-backlog");
	src.count_in_flight = 1;
	s = make(loop, &src);
	res = poll_until(loop, s, 0, 5, 0);
	ck_assert_msg(res.error == 0 && res.ready == 5, "%d %g %s",
	    res.error, res.ready, res.errmsg);
	ck_assert(res.in_flight == 0);
	ck_assert_int_eq(res.has_rates, 1);

	k = bconsume_noack("/", "http-backlog", 2);
	res = poll_until(loop, s, 0, 3, 2);
	ck_assert_msg(res.error == 0 && res.ready == 3 && res.in_flight == 2,
	    "ready %g in flight %g %s", res.ready, res.in_flight, res.errmsg);
	ck_assert(res.consumers == 1);
	ck_assert(res.publish_rate >= 0 && res.deliver_rate >= 0);
	tu_amqp_close(k);
	/* Unacked messages return to the queue when the consumer goes. */
	res = poll_until(loop, s, 0, 5, 0);
	ck_assert_msg(res.ready == 5 && res.in_flight == 0, "%g %g",
	    res.ready, res.in_flight);
	scaler_destroy(s);
	tu_amqp_delete(c, "http-backlog");
	tu_amqp_close(c);
	ev_loop_destroy(loop);
}
END_TEST

/* Polls every instance in the same loop iteration; waits for them all. */
static void
poll_all(struct ev_loop *loop, struct scaler **s, struct tu_rec *w, int n)
{
	int	 i, done;
	double	 end = as_mono_now() + DEADLINE;

	memset(w, 0, (size_t)n * sizeof *w);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(scaler_poll(s[i], tu_rec_done, &w[i]), 0);
	for (;;) {
		for (i = 0, done = 0; i < n; i++)
			done += w[i].ndone;
		if (done == n || as_mono_now() > end)
			break;
		tu_run_for(loop, 0.01);
	}
	for (i = 0; i < n; i++)
		ck_assert_int_eq(w[i].ndone, 1);
}

/*
 * A passive declare of a missing queue closes the channel: that pool
 * alone gets -AS_ENOTFOUND, the pool polled after it in the same batch
 * (whose declare the broker discarded) still reads, and the connection
 * stays: one login, one broker connection, one channel reopen per tick.
 */
START_TEST(test_amqp_missing_queue)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	amqp_connection_state_t c;
	struct scaler_source src;
	struct scaler	*s[3];
	struct tu_rec	 w[3];
	struct rabbitmq_stats st;
	int		 tick;

	tu_rabbit_need();
	mkvhost("t-missing");
	c = tu_amqp_open(&rb, "t-missing");
	tu_amqp_declare(c, "present", 0);
	tu_amqp_publish(c, "present", 2);
	src = tu_amqp_source(amqp_url("t-missing"), "absent-q");
	s[0] = make(loop, &src);
	src.queue = "present";
	s[1] = make(loop, &src);
	src.queue = "absent-q";
	s[2] = make(loop, &src);	/* the same missing queue again */
	for (tick = 0; tick < 3; tick++) {
		poll_all(loop, s, w, 3);
		ck_assert_msg(w[0].res.error == -AS_ENOTFOUND, "tick %d: %d %s",
		    tick, w[0].res.error, w[0].res.errmsg);
		ck_assert_msg(strstr(w[0].res.errmsg, "queue absent-q not "
		    "found in vhost t-missing") != NULL, "%s",
		    w[0].res.errmsg);
		ck_assert_int_eq(w[2].res.error, -AS_ENOTFOUND);
		ck_assert_msg(w[1].res.error == 0, "tick %d: %s", tick,
		    w[1].res.errmsg);
		ck_assert(w[1].res.ready == 2);
	}
	st = stats_of(s[1]);
	ck_assert_int_eq(st.connects, 1);
	ck_assert_int_eq(st.reopens, 3);
	ck_assert_int_eq(st.connected, 1);
	ck_assert_int_eq(st.sharing, 3);
	ck_assert_int_eq(broker_connections("t-missing"), 1);

	/* Declared now: found at the next poll, same connection. */
	tu_amqp_declare(c, "absent-q", 0);
	poll_all(loop, s, w, 3);
	ck_assert_msg(w[0].res.error == 0, "%s", w[0].res.errmsg);
	ck_assert(w[0].res.ready == 0);
	ck_assert_int_eq(stats_of(s[0]).connects, 1);
	scaler_destroy(s[0]);
	scaler_destroy(s[1]);
	scaler_destroy(s[2]);
	tu_amqp_delete(c, "absent-q");
	tu_amqp_delete(c, "present");
	tu_amqp_close(c);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * Five pools on one endpoint: one connection, one batch per tick with one
 * declare per distinct queue.  Another vhost, or another user, is another
 * endpoint.
 */
START_TEST(test_amqp_shared_connection)
{
	static const char *const queues[] = { "sq0", "sq1", "sq2", "sq3",
	    "sq0" };
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	amqp_connection_state_t c;
	struct scaler_source src;
	struct scaler	*s[5], *other;
	struct tu_rec	 w[5];
	struct rabbitmq_stats before, after;
	int		 i;

	tu_rabbit_need();
	mkvhost("t-share");
	c = tu_amqp_open(&rb, "t-share");
	for (i = 0; i < 4; i++) {
		tu_amqp_declare(c, queues[i], 0);
		tu_amqp_publish(c, queues[i], i + 1);
	}
	for (i = 0; i < 5; i++) {
		src = tu_amqp_source(amqp_url("t-share"), queues[i]);
		s[i] = make(loop, &src);
	}
	poll_all(loop, s, w, 5);
	before = stats_of(s[0]);
	poll_all(loop, s, w, 5);
	after = stats_of(s[0]);
	for (i = 0; i < 5; i++) {
		ck_assert_msg(w[i].res.error == 0, "%s", w[i].res.errmsg);
		ck_assert(w[i].res.ready == (i == 4 ? 1 : i + 1));
	}
	ck_assert_int_eq(after.batches - before.batches, 1);
	ck_assert_int_eq(after.requests - before.requests, 4);
	ck_assert_int_eq(after.connects, 1);
	ck_assert_int_eq(after.sharing, 5);
	ck_assert_int_eq(broker_connections("t-share"), 1);

	/* The default vhost: another endpoint, another connection. */
	src = tu_amqp_source(amqp_url(""), "sq0");
	other = make(loop, &src);
	ck_assert_int_eq(stats_of(other).sharing, 1);
	ck_assert_int_eq(poll_wait(loop, other).error, -AS_ENOTFOUND);
	scaler_destroy(other);
	ck_assert_int_eq(stats_of(s[0]).sharing, 5);

	for (i = 0; i < 5; i++)
		scaler_destroy(s[i]);
	for (i = 0; i < 4; i++)
		tu_amqp_delete(c, queues[i]);
	tu_amqp_close(c);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * Every pool on a vhost is served by one GET per tick; a queue absent from
 * the listing fails that pool alone.
 */
START_TEST(test_http_shared_listing)
{
	static const char *const queues[] = { "hq0", "hq1", "hq2", "nope" };
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	amqp_connection_state_t c;
	struct scaler_source src;
	struct scaler	*s[4], *other;
	struct scaler_result res;
	struct tu_rec	 w[4];
	struct rabbitmq_stats before, after;
	double		 end;
	int		 i, settled = 0;

	tu_rabbit_need();
	mkvhost("t-hshare");
	c = tu_amqp_open(&rb, "t-hshare");
	for (i = 0; i < 3; i++) {
		tu_amqp_declare(c, queues[i], 0);
		tu_amqp_publish(c, queues[i], i + 2);
	}
	for (i = 0; i < 4; i++) {
		src = tu_amqp_source(http_url("t-hshare"), queues[i]);
		s[i] = make(loop, &src);
	}
	end = as_mono_now() + DEADLINE;
	while (!settled && as_mono_now() < end) {
		before = stats_of(s[0]);
		poll_all(loop, s, w, 4);
		after = stats_of(s[0]);
		ck_assert_int_eq(after.requests - before.requests, 1);
		ck_assert_int_eq(after.batches - before.batches, 1);
		settled = 1;
		for (i = 0; i < 3; i++)
			settled &= w[i].res.error == 0 &&
			    w[i].res.ready == i + 2;
		if (!settled)
			tu_run_for(loop, 0.2);
	}
	ck_assert_msg(settled, "%d %g %s", w[0].res.error, w[0].res.ready,
	    w[0].res.errmsg);
	ck_assert_int_eq(w[3].res.error, -AS_ENOTFOUND);
	ck_assert_msg(strstr(w[3].res.errmsg, "queue nope not found in vhost "
	    "t-hshare") != NULL, "%s", w[3].res.errmsg);
	ck_assert_int_eq(after.sharing, 4);

	/*
	 * Polls in other loop iterations (the daemon jitters its pools) are
	 * answered by a listing that started within the reuse window.
	 */
	rabbitmq_http_reuse = 60;
	before = stats_of(s[0]);
	for (i = 0; i < 4; i++) {
		res = poll_wait(loop, s[i]);
		ck_assert_int_eq(res.error, w[i].res.error);
		ck_assert(res.ready == w[i].res.ready);
	}
	ck_assert_int_eq(stats_of(s[0]).requests, before.requests);
	rabbitmq_http_reuse = 0;
	(void)poll_wait(loop, s[0]);
	ck_assert_int_eq(stats_of(s[0]).requests, before.requests + 1);

	/* Another vhost: another endpoint and its own listing. */
	src = tu_amqp_source(http_url(""), "hq0");
	other = make(loop, &src);
	ck_assert_int_eq(stats_of(other).sharing, 1);
	ck_assert_int_eq(poll_wait(loop, other).error, -AS_ENOTFOUND);
	ck_assert_int_eq(stats_of(other).requests, 1);
	ck_assert_int_eq(stats_of(s[0]).requests, before.requests + 1);
	scaler_destroy(other);

	for (i = 0; i < 4; i++)
		scaler_destroy(s[i]);
	for (i = 0; i < 3; i++)
		tu_amqp_delete(c, queues[i]);
	tu_amqp_close(c);
	ev_loop_destroy(loop);
}
END_TEST

/* A listing longer than a page is read page after page. */
START_TEST(test_http_pages)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	amqp_connection_state_t c;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;
	uint64_t	 before;
	char		 q[16];
	int		 i, saved = rabbitmq_http_page_size;

	tu_rabbit_need();
	mkvhost("t-page");
	c = tu_amqp_open(&rb, "t-page");
	for (i = 0; i < 5; i++) {
		snprintf(q, sizeof q, "p%d", i);
		tu_amqp_declare(c, q, 0);
	}
	tu_amqp_publish(c, "p4", 3);
	rabbitmq_http_page_size = 2;
	src = tu_amqp_source(http_url("t-page"), "p4");
	s = make(loop, &src);
	res = poll_until(loop, s, 0, 3, -1);
	before = stats_of(s).requests;
	res = poll_wait(loop, s);
	rabbitmq_http_page_size = saved;
	ck_assert_msg(res.error == 0 && res.ready == 3, "%d %g %s", res.error,
	    res.ready, res.errmsg);
	ck_assert_int_eq(stats_of(s).requests - before, 3);	/* 5 rows / 2 */
	scaler_destroy(s);
	for (i = 0; i < 5; i++) {
		snprintf(q, sizeof q, "p%d", i);
		tu_amqp_delete(c, q);
	}
	tu_amqp_close(c);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_missing_vhost)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;

	tu_rabbit_need();
	src = tu_amqp_source(http_url("no-such-vhost"), "q");
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == -AS_ENOTFOUND, "%d %s", res.error,
	    res.errmsg);
	ck_assert(strstr(res.errmsg, "vhost no-such-vhost not found") != NULL);
	scaler_destroy(s);

	src = tu_amqp_source(amqp_url("no-such-vhost"), "q");
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == -AS_EFORBIDDEN, "%d %s", res.error,
	    res.errmsg);
	ck_assert(strstr(res.errmsg, "no-such-vhost") != NULL);
	scaler_destroy(s);
	ev_loop_destroy(loop);
}
END_TEST

static void
write_pw(const char *path, const char *pw)
{
	FILE	*fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	fprintf(fp, "%s\n", pw);
	ck_assert_int_eq(fclose(fp), 0);
}

/*
 * CRD mode's Secrets (as_secret_lookup): a stand-in provider serves the
 * user name and the password; the first lookup of each answers -AS_EAGAIN
 * as the store does while it reads, and a login waits for the value.
 */
static int	secret_lookups, secret_eagain;

static int
fake_secret(void *arg, const char *ref, double since, char **out, char *err,
    size_t errlen)
{
	(void)arg;
	(void)since;
	secret_lookups++;
	if (secret_eagain > 0) {
		secret_eagain--;
		snprintf(err, errlen, "reading Secret %s through the API", ref);
		return (-AS_EAGAIN);
	}
	if (strcmp(ref, "ns/rmq/user") == 0 || strcmp(ref, "ns/rmq/pw") == 0) {
		*out = xstrdup("guest");
		return (0);
	}
	snprintf(err, errlen, "Secret %s has no such key", ref);
	return (-AS_EAUTH);
}

START_TEST(test_auth_from_secret)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*a, *h;

	tu_rabbit_need();
	as_secret_provider(fake_secret, NULL);
	secret_eagain = 2;
	src = tu_amqp_source(amqp_url(""), "q");
	src.username_secret = "ns/rmq/user";
	src.password_secret = "ns/rmq/pw";
	a = make(loop, &src);
	res = poll_until(loop, a, -AS_ENOTFOUND, -1, -1);
	ck_assert_msg(res.error == -AS_ENOTFOUND, "%d %s", res.error,
	    res.errmsg);
	src = tu_amqp_source(http_url(""), "q");
	src.username_secret = "ns/rmq/user";
	src.password_secret = "ns/rmq/pw";
	h = make(loop, &src);
	res = poll_until(loop, h, -AS_ENOTFOUND, -1, -1);
	ck_assert_msg(res.error == -AS_ENOTFOUND, "%d %s", res.error,
	    res.errmsg);
	ck_assert_int_ge(secret_lookups, 4);
	scaler_destroy(h);

	/* A key the Secret lacks: an authentication error naming it. */
	src = tu_amqp_source(amqp_url(""), "q");
	src.username_secret = "ns/rmq/nouser";
	src.password_secret = "ns/rmq/pw";
	h = make(loop, &src);
	res = poll_until(loop, h, -AS_EAUTH, -1, -1);
	ck_assert_msg(res.error == -AS_EAUTH, "%d %s", res.error, res.errmsg);
	ck_assert_msg(strstr(res.errmsg, "ns/rmq/nouser") != NULL, "%s",
	    res.errmsg);
	scaler_destroy(h);
	scaler_destroy(a);
	as_secret_provider(NULL, NULL);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * Wrong credentials: -AS_EAUTH on both transports, the password in no
 * message and no log line.  A corrected password file is picked up: by the
 * next AMQP login, and by the HTTP retry after the 401.
 */
START_TEST(test_auth)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*a, *h, *n;
	struct tu_capture	 cap;
	char		 path[64], *log;

	tu_rabbit_need();
	snprintf(path, sizeof path, "/tmp/check_rabbitmq.%d.pw",
	    (int)getpid());
	write_pw(path, "wr0ng-pw");
	tu_capture_start(&cap);
	src = tu_amqp_source(amqp_url(""), "q");
	src.password_file = path;
	a = make(loop, &src);
	res = poll_wait(loop, a);
	ck_assert_msg(res.error == -AS_EAUTH, "%d %s", res.error, res.errmsg);
	ck_assert(strstr(res.errmsg, "authentication failed for user guest")
	    != NULL);
	ck_assert(strstr(res.errmsg, "wr0ng") == NULL);
	src = tu_amqp_source(http_url(""), "q");
	src.password_file = path;
	h = make(loop, &src);
	res = poll_wait(loop, h);
	ck_assert_msg(res.error == -AS_EAUTH, "%d %s", res.error, res.errmsg);
	ck_assert(strstr(res.errmsg, "refused the credentials of user "
	    "guest") != NULL);
	ck_assert(strstr(res.errmsg, "401") != NULL);
	ck_assert(strstr(res.errmsg, "wr0ng") == NULL);

	/* Another user with no password source at all. */
	src = tu_amqp_source(http_url(""), "q");
	src.username = "nobody";
	n = make(loop, &src);
	res = poll_wait(loop, n);
	ck_assert_int_eq(res.error, -AS_EAUTH);
	ck_assert(strstr(res.errmsg, "user nobody has no password") != NULL);
	scaler_destroy(n);

	write_pw(path, "guest");
	res = poll_until(loop, h, -AS_ENOTFOUND, -1, -1);
	ck_assert_msg(res.error == -AS_ENOTFOUND, "%d %s", res.error,
	    res.errmsg);
	res = poll_until(loop, a, -AS_ENOTFOUND, -1, -1);
	ck_assert_msg(res.error == -AS_ENOTFOUND, "%d %s", res.error,
	    res.errmsg);

	/* From the environment. */
	setenv("CHECK_RABBITMQ_PW", "guest", 1);
	scaler_destroy(h);
	src = tu_amqp_source(http_url(""), "q");
	src.password_env = "CHECK_RABBITMQ_PW";
	h = make(loop, &src);
	ck_assert_int_eq(poll_wait(loop, h).error, -AS_ENOTFOUND);
	scaler_destroy(h);
	unsetenv("CHECK_RABBITMQ_PW");
	h = make(loop, &src);
	res = poll_wait(loop, h);
	ck_assert_int_eq(res.error, -AS_EAUTH);
	ck_assert(strstr(res.errmsg, "CHECK_RABBITMQ_PW") != NULL);
	scaler_destroy(h);

	scaler_destroy(a);
	log = tu_capture_end(&cap);
	ck_assert(strstr(log, "authentication failed") != NULL);
	ck_assert(strstr(log, "wr0ng") == NULL);
	free(log);
	unlink(path);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_refused)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;
	char		 addr[64];
	int		 port = tu_free_port();

	snprintf(addr, sizeof addr, "amqp://127.0.0.1:%d/", port);
	src = tu_amqp_source(addr, "q");
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == -AS_ECONN, "%d %s", res.error, res.errmsg);
	ck_assert_msg(strstr(res.errmsg, "refused") != NULL, "%s",
	    res.errmsg);
	ck_assert(strstr(res.errmsg, "127.0.0.1:") != NULL);
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, -AS_ECONN);
	scaler_destroy(s);

	snprintf(addr, sizeof addr, "http://127.0.0.1:%d/", port);
	src = tu_amqp_source(addr, "q");
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == -AS_ECONN, "%d %s", res.error, res.errmsg);
	ck_assert(strstr(res.errmsg, "refused") != NULL);
	scaler_destroy(s);
	ev_loop_destroy(loop);
}
END_TEST

/* The contract: ECANCELED on destroy, completions that destroy or poll. */
static void
destroy_cases(struct ev_loop *loop, const char *address)
{
	struct scaler_source src = tu_amqp_source(address, "dq");
	struct scaler	*s, *t;
	struct tu_rec	 w, w2;

	s = make(loop, &src);
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
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(w.ndone + w2.ndone, 2);

	/* A completion that polls again. */
	s = make(loop, &src);
	memset(&w, 0, sizeof w);
	w.poll_again = 1;
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), 0);
	ck_assert(tu_run_until(loop, tu_pred_done, &w, DEADLINE));
	w.ndone = 0;
	ck_assert(tu_run_until(loop, tu_pred_done, &w, DEADLINE));
	ck_assert_int_eq(w.res.error, 0);
	scaler_destroy(s);
}

START_TEST(test_destroy_pending)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	amqp_connection_state_t c;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s, *t;
	struct tu_rec	 w;
	uint64_t	 sent;

	tu_rabbit_need();
	c = tu_amqp_open(&rb, "/");
	tu_amqp_declare(c, "dq", 0);
	tu_amqp_declare(c, "dq2", 0);
	tu_amqp_publish(c, "dq", 1);
	tu_amqp_publish(c, "dq2", 2);
	destroy_cases(loop, amqp_url(""));
	/* A new queue has no statistics at first: wait for them. */
	src = tu_amqp_source(http_url(""), "dq");
	s = make(loop, &src);
	res = poll_until(loop, s, 0, 1, -1);
	ck_assert_msg(res.error == 0, "%s", res.errmsg);
	scaler_destroy(s);
	destroy_cases(loop, http_url(""));

	/*
	 * A declare already on the wire when its poll is destroyed: the
	 * reply that follows must not be taken for the next one's.
	 */
	src = tu_amqp_source(amqp_url(""), "dq");
	s = make(loop, &src);
	src.queue = "dq2";
	t = make(loop, &src);
	(void)poll_wait(loop, t);
	sent = stats_of(t).requests;
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), 0);
	while (stats_of(t).requests == sent)
		ev_run(loop, EVRUN_NOWAIT);
	ck_assert_int_eq(w.ndone, 0);
	scaler_destroy(s);
	ck_assert_int_eq(w.ndone, 1);
	ck_assert_int_eq(w.res.error, -AS_ECANCELED);
	res = poll_wait(loop, t);
	ck_assert_msg(res.error == 0 && res.ready == 2, "%d %g", res.error,
	    res.ready);
	scaler_destroy(t);
	tu_amqp_delete(c, "dq");
	tu_amqp_delete(c, "dq2");
	tu_amqp_close(c);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * An idle connection stays open: heartbeats go out while nothing else
 * does.  rabbitmq-c sends one from inside its wait call once a heartbeat
 * interval T has passed since its last frame out (amqp_heartbeat_send() in
 * librabbitmq/amqp_private.h), and every drain makes that call: the
 * heartbeat timer's, every T / 2, and the one each heartbeat of the
 * broker's wakes (so the timer alone is not what this shows: without it
 * the test still passes).  The broker hears from us at least every 1.5 T;
 * it closes a connection after two of its checks, T apart, found nothing
 * new: 2 to 3 T after the last frame (rabbit_heartbeat.erl,
 * start_heartbeat_receiver).  With T = 1 s a stall of half a second (a
 * loaded machine, ASan) could get the connection closed and reconnected;
 * T = 2 s leaves a whole second, and 8 s of idling still outlast 3 T, by
 * when a client sending no heartbeats has been closed (connects 2).  The
 * broker must list T itself: idling with heartbeats off proves nothing.
 */
START_TEST(test_amqp_heartbeat)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;
	int		 saved = rabbitmq_amqp_heartbeat;

	tu_rabbit_need();
	mkvhost("t-heartbeat");
	rabbitmq_amqp_heartbeat = 2;
	src = tu_amqp_source(amqp_url("t-heartbeat"), "hb");
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, -AS_ENOTFOUND);
	ck_assert_int_eq(broker_heartbeat("t-heartbeat"), 2);
	tu_run_for(loop, 8.0);
	rabbitmq_amqp_heartbeat = saved;
	ck_assert_int_eq(stats_of(s).connected, 1);
	ck_assert_int_eq(broker_connections("t-heartbeat"), 1);
	res = poll_wait(loop, s);
	ck_assert_int_eq(res.error, -AS_ENOTFOUND);
	ck_assert_int_eq(stats_of(s).connects, 1);
	scaler_destroy(s);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_amqps)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;

	tu_rabbit_need();
	ck_assert_msg(rb.amqps_url[0] != '\0', "no TLS listener (openssl?)");
	/* Our CA: verified, peer and host name (localhost). */
	src = tu_amqp_source(rb.amqps_url, "tls-q");
	src.ca_file = rb.ca;
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == -AS_ENOTFOUND, "%d %s", res.error,
	    res.errmsg);
	scaler_destroy(s);
	/* The system CAs do not know it: refused, not silently accepted. */
	src.ca_file = NULL;
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == -AS_EPROTO, "%d %s", res.error, res.errmsg);
	scaler_destroy(s);
	/* Unless verification is off. */
	src.insecure_skip_verify = 1;
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == -AS_ENOTFOUND, "%d %s", res.error,
	    res.errmsg);
	scaler_destroy(s);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_https)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;

	tu_rabbit_need();
	ck_assert_msg(rb.https_url[0] != '\0', "no TLS listener (openssl?)");
	src = tu_amqp_source(rb.https_url, "tls-q");
	src.ca_file = rb.ca;
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == -AS_ENOTFOUND, "%d %s", res.error,
	    res.errmsg);
	scaler_destroy(s);
	src.ca_file = NULL;
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == -AS_ECONN, "%d %s", res.error, res.errmsg);
	ck_assert_msg(strstr(res.errmsg, "certificate") != NULL, "%s",
	    res.errmsg);
	scaler_destroy(s);
	src.insecure_skip_verify = 1;
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == -AS_ENOTFOUND, "%d %s", res.error,
	    res.errmsg);
	scaler_destroy(s);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * A broker that stops answering (SIGSTOP): both transports fail within
 * their command timeout, then recover by themselves.
 */
START_TEST(test_timeout)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*a, *h;

	tu_rabbit_need();
	src = tu_amqp_source(amqp_url(""), "to-q");
	src.command_timeout = 0.5;
	a = make(loop, &src);
	src = tu_amqp_source(http_url(""), "to-q");
	src.command_timeout = 0.5;
	h = make(loop, &src);
	ck_assert_int_eq(poll_wait(loop, a).error, -AS_ENOTFOUND);
	ck_assert_int_eq(poll_wait(loop, h).error, -AS_ENOTFOUND);
	ck_assert_int_eq(kill(-rb.pid, SIGSTOP), 0);
	res = poll_wait(loop, a);
	ck_assert_msg(res.error == -AS_ETIMEDOUT, "%d %s", res.error,
	    res.errmsg);
	ck_assert(strstr(res.errmsg, "no reply within 0.5 s") != NULL);
	res = poll_wait(loop, h);
	kill(-rb.pid, SIGCONT);
	ck_assert_msg(res.error == -AS_ETIMEDOUT, "%d %s", res.error,
	    res.errmsg);
	res = poll_until(loop, a, -AS_ENOTFOUND, -1, -1);
	ck_assert_msg(res.error == -AS_ENOTFOUND, "%d %s", res.error,
	    res.errmsg);
	ck_assert_int_eq(stats_of(a).connects, 2);
	res = poll_until(loop, h, -AS_ENOTFOUND, -1, -1);
	ck_assert_int_eq(res.error, -AS_ENOTFOUND);
	scaler_destroy(a);
	scaler_destroy(h);
	ev_loop_destroy(loop);
}
END_TEST

/* The broker restarts: errors while it is away, then recovery unaided. */
START_TEST(test_restart)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	amqp_connection_state_t c;
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*a, *h;

	tu_rabbit_need();
	c = tu_amqp_open(&rb, "/");
	tu_amqp_declare(c, "restart-q", 1);
	tu_amqp_publish(c, "restart-q", 3);
	tu_amqp_close(c);
	src = tu_amqp_source(amqp_url(""), "restart-q");
	a = make(loop, &src);
	src = tu_amqp_source(http_url(""), "restart-q");
	h = make(loop, &src);
	res = poll_wait(loop, a);
	ck_assert_msg(res.error == 0 && res.ready == 3, "%s", res.errmsg);
	res = poll_until(loop, h, 0, 3, 0);
	ck_assert_msg(res.error == 0 && res.ready == 3, "%s", res.errmsg);

	ck_assert_int_eq(tu_rabbit_stop_app(&rb), 0);
	tu_run_for(loop, 0.2);
	res = poll_wait(loop, a);
	ck_assert_msg(res.error == -AS_ECONN, "%d %s", res.error, res.errmsg);
	res = poll_wait(loop, h);
	ck_assert_msg(res.error == -AS_ECONN, "%d %s", res.error, res.errmsg);
	ck_assert_int_eq(stats_of(a).connected, 0);

	ck_assert_int_eq(tu_rabbit_start_app(&rb), 0);
	res = poll_until(loop, a, 0, 3, -1);
	ck_assert_msg(res.error == 0 && res.ready == 3, "%d %s", res.error,
	    res.errmsg);
	ck_assert_int_eq(stats_of(a).connects, 2);
	res = poll_until(loop, h, 0, 3, 0);
	ck_assert_msg(res.error == 0 && res.ready == 3, "%d %s", res.error,
	    res.errmsg);
	scaler_destroy(a);
	scaler_destroy(h);
	c = tu_amqp_open(&rb, "/");
	tu_amqp_delete(c, "restart-q");
	tu_amqp_close(c);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * A poll that arrives while the listing for its vhost is on the wire joins
 * it instead of starting another.
 */
START_TEST(test_http_join_listing)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	amqp_connection_state_t c;
	struct scaler_source src;
	struct scaler	*s, *t;
	struct tu_rec	 w, w2;
	uint64_t	 before;

	tu_rabbit_need();
	c = tu_amqp_open(&rb, "/");
	tu_amqp_declare(c, "join-a", 0);
	tu_amqp_declare(c, "join-b", 0);
	tu_amqp_publish(c, "join-b", 4);
	src = tu_amqp_source(http_url(""), "join-a");
	s = make(loop, &src);
	src.queue = "join-b";
	t = make(loop, &src);
	ck_assert_int_eq(poll_until(loop, t, 0, 4, -1).ready, 4);
	before = stats_of(s).requests;
	memset(&w, 0, sizeof w);
	memset(&w2, 0, sizeof w2);
	ck_assert_int_eq(scaler_poll(s, tu_rec_done, &w), 0);
	while (stats_of(s).requests == before)
		ev_run(loop, EVRUN_NOWAIT);
	ck_assert_int_eq(w.ndone, 0);
	ck_assert_int_eq(scaler_poll(t, tu_rec_done, &w2), 0);
	ck_assert(tu_run_until(loop, tu_pred_done, &w, DEADLINE));
	ck_assert(tu_run_until(loop, tu_pred_done, &w2, DEADLINE));
	ck_assert_msg(w2.res.error == 0 && w2.res.ready == 4, "%d %s",
	    w2.res.error, w2.res.errmsg);
	ck_assert_int_eq(stats_of(s).requests - before, 1);
	scaler_destroy(s);
	scaler_destroy(t);
	tu_amqp_delete(c, "join-a");
	tu_amqp_delete(c, "join-b");
	tu_amqp_close(c);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * A listener with backlog 0 that never accepts: once one connection fills
 * its queue, further SYNs are dropped and the connect hangs.  The connect
 * runs on the loop, so it ends by the connect timeout.
 */
START_TEST(test_amqp_connect_timeout)
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

	snprintf(addr, sizeof addr, "amqp://127.0.0.1:%d/", port);
	src = tu_amqp_source(addr, "q");
	src.connect_timeout = 0.3;
	s = make(loop, &src);
	t0 = as_mono_now();
	res = poll_wait(loop, s);
	took = as_mono_now() - t0;
	ck_assert_msg(res.error == -AS_ETIMEDOUT, "%d %s", res.error,
	    res.errmsg);
	ck_assert(strstr(res.errmsg, "connect timed out after 0.3 s") != NULL);
	ck_assert_msg(took < DEADLINE, "took %.3f s", took);
	scaler_destroy(s);
	close(ffd);
	close(lfd);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * A peer that accepts TCP and never speaks AMQP: the login (blocking in
 * rabbitmq-c) ends by the command timeout, as the handshake timeout.
 */
START_TEST(test_amqp_login_timeout)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler_source src;
	struct scaler_result res;
	struct scaler	*s;
	char		 addr[64];
	int		 lfd, port;

	lfd = tu_listen(8, &port);
	snprintf(addr, sizeof addr, "amqp://127.0.0.1:%d/", port);
	src = tu_amqp_source(addr, "q");
	src.command_timeout = 0.3;
	s = make(loop, &src);
	res = poll_wait(loop, s);
	ck_assert_msg(res.error == -AS_ETIMEDOUT, "%d %s", res.error,
	    res.errmsg);
	ck_assert_msg(strstr(res.errmsg, "login timed out after 0.3 s") !=
	    NULL, "%s", res.errmsg);
	scaler_destroy(s);
	close(lfd);
	ev_loop_destroy(loop);
}
END_TEST

static Suite *
rabbitmq_suite(void)
{
	Suite	*s = suite_create("rabbitmq");
	TCase	*tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_parse_address, 0,
	    (int)AS_ARRAY_SIZE(addr_rows));
	tcase_add_test(tc, test_parse_long_vhost);
	tcase_add_loop_test(tc, test_validate, 0,
	    (int)AS_ARRAY_SIZE(valid_rows));
	tcase_add_test(tc, test_validate_queue_too_long);
	suite_add_tcase(s, tc);

	/* Each starts with a running broker, whatever came before. */
	tc = tu_tcase(s, "broker", 180, NULL, NULL, tu_rabbit_continue, NULL);
	tcase_add_test(tc, test_amqp_backlog);
	tcase_add_test(tc, test_http_backlog_in_flight);
	tcase_add_test(tc, test_amqp_missing_queue);
	tcase_add_test(tc, test_amqp_shared_connection);
	tcase_add_test(tc, test_http_shared_listing);
	tcase_add_test(tc, test_http_pages);
	tcase_add_test(tc, test_missing_vhost);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_auth_from_secret);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_amqp_connect_timeout);
	tcase_add_test(tc, test_amqp_login_timeout);
	tcase_add_test(tc, test_http_join_listing);
	tcase_add_test(tc, test_destroy_pending);
	tcase_add_test(tc, test_amqp_heartbeat);
	tcase_add_test(tc, test_amqps);
	tcase_add_test(tc, test_https);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_restart);
	return (s);
}

int
main(void)
{
	/*
	 * Every HTTP poll makes a request unless a test asks otherwise, so
	 * that outages and counts show at once (the reuse test sets it).
	 */
	rabbitmq_http_reuse = 0;
	return (tu_rabbit_run_suite(&rb, rabbitmq_suite()));
}
