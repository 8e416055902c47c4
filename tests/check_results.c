/*
 * check_results.c: the results publisher's RabbitMQ side
 * (scalers/results.c, agentscaler/scalers/results.h) against one real
 * rabbitmq-server started for the suite (tests/util/testutil.c), each
 * test with its own queues and ev loop, driven under bounded deadlines;
 * what the broker holds is read with the blocking client of
 * tests/util/amqp.c.  The Redis side runs in
 * tests/integration/test_dispatch_http.py.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/results.h"
#include "agentscaler/scalers/scaler.h"
#include "util/amqp.h"
#include "util/loop.h"
#include "util/testutil.h"

#define DEADLINE	20.0	/* seconds; a bound, never a speed check */

static struct tu_rabbit rb;
static struct ev_loop *loop;
static amqp_connection_state_t b;

struct sent {
	int	 done;
	int	 err;
	char	 msg[256];
};

static void
sent_cb(int err, const char *errmsg, void *arg)
{
	struct sent	*s = arg;

	s->done++;
	s->err = err;
	snprintf(s->msg, sizeof s->msg, "%s", errmsg);
}

static int
pred_sent(void *arg)
{
	return (((struct sent *)arg)->done > 0);
}

static struct scaler_source
source(const char *queue, const char *exchange)
{
	struct scaler_source src = tu_amqp_source(rb.amqp_url, queue);

	src.exchange = exchange;
	src.connect_timeout = 5;
	src.command_timeout = 5;
	return (src);
}

/* Sends body for id and runs the loop until it completes; its error. */
static int
send_wait(struct results *r, const char *id, const char *body,
    struct sent *s)
{
	memset(s, 0, sizeof *s);
	ck_assert_int_eq(results_send(r, id, body, strlen(body), sent_cb, s),
	    0);
	ck_assert_int_eq(s->done, 0);		/* never inside the call */
	ck_assert(tu_run_until(loop, pred_sent, s, DEADLINE));
	ck_assert_int_eq(s->done, 1);
	return (s->err);
}

START_TEST(test_validate)
{
	struct scaler_source src;
	char		 err[256];

	src = source("q", "x");
	ck_assert_ptr_null(results_new(loop, &src, err, sizeof err));
	ck_assert_str_eq(err, "results: give one of queue, exchange");
	src = source(NULL, NULL);
	ck_assert_ptr_null(results_new(loop, &src, err, sizeof err));
	src = source("q", NULL);
	src.address = "http://127.0.0.1:15672/";
	ck_assert_ptr_null(results_new(loop, &src, err, sizeof err));
	ck_assert_msg(strstr(err, "amqp://") != NULL, "%s", err);
}
END_TEST

/* To a queue by the default exchange: persistent JSON, ids set. */
START_TEST(test_queue)
{
	struct scaler_source src = source("res-q", NULL);
	struct tu_amqp_msg m;
	struct results	*r;
	struct sent	 s;
	char		 err[256], *body;
	size_t		 len;

	tu_amqp_delete(b, "res-q");
	ck_assert_ptr_nonnull(r = results_new(loop, &src, err, sizeof err));
	ck_assert_int_eq(send_wait(r, "t-1", "{\"id\":\"t-1\"}", &s), 0);
	ck_assert_int_eq(send_wait(r, "t-2", "{\"id\":\"t-2\"}", &s), 0);
	body = tu_amqp_get(b, "res-q", &len, &m);
	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(body, "{\"id\":\"t-1\"}");
	ck_assert_str_eq(m.message_id, "t-1");
	ck_assert_str_eq(m.content_type, "application/json");
	ck_assert_int_eq(m.delivery_mode, 2);
	free(body);
	body = tu_amqp_get(b, "res-q", &len, &m);
	ck_assert_str_eq(m.message_id, "t-2");
	free(body);
	results_free(r);
}
END_TEST

/* To a direct exchange, routing key = the task id. */
START_TEST(test_exchange)
{
	struct scaler_source src = source(NULL, "res-x");
	struct tu_amqp_msg m;
	struct results	*r;
	struct sent	 s;
	char		 err[256], *body;
	size_t		 len;
	long		 code;

	code = tu_rabbit_api(&rb, "PUT", "/api/exchanges/%2F/res-x",
	    "{\"type\":\"direct\",\"durable\":true}", NULL);
	ck_assert(code == 201 || code == 204);
	tu_amqp_delete(b, "res-mine");
	tu_amqp_declare(b, "res-mine", 1);
	code = tu_rabbit_api(&rb, "POST", "/api/bindings/%2F/e/res-x/q/"
	    "res-mine", "{\"routing_key\":\"a/b\"}", NULL);
	ck_assert(code == 201 || code == 204);
	ck_assert_ptr_nonnull(r = results_new(loop, &src, err, sizeof err));
	/* Unbound: confirmed, dropped by the broker. */
	ck_assert_int_eq(send_wait(r, "other", "{}", &s), 0);
	ck_assert_int_eq(send_wait(r, "a/b", "{\"id\":\"a/b\"}", &s), 0);
	body = tu_amqp_get(b, "res-mine", &len, &m);
	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(m.message_id, "a/b");
	free(body);
	ck_assert_ptr_null(tu_amqp_get(b, "res-mine", &len, &m));
	results_free(r);
}
END_TEST

/*
 * The broker goes away: a send fails (the caller sends again); once it is
 * back a send is confirmed again.
 */
START_TEST(test_broker_restart)
{
	struct scaler_source src = source("res-r", NULL);
	struct tu_amqp_msg m;
	struct results	*r;
	struct sent	 s;
	char		 err[256], *body;
	size_t		 len;
	int		 rc = -1, i;

	tu_amqp_delete(b, "res-r");
	ck_assert_ptr_nonnull(r = results_new(loop, &src, err, sizeof err));
	ck_assert_int_eq(send_wait(r, "r-1", "{}", &s), 0);
	tu_amqp_close(b);
	ck_assert_int_eq(tu_rabbit_stop_app(&rb), 0);
	ck_assert_int_ne(send_wait(r, "r-2", "{}", &s), 0);
	ck_assert_int_eq(tu_rabbit_start_app(&rb), 0);
	/* Sent again, as dispatch_http.c does, until confirmed. */
	for (i = 0; i < 100 && rc != 0; i++) {
		if ((rc = send_wait(r, "r-2", "{\"id\":\"r-2\"}", &s)) != 0)
			tu_run_for(loop, 0.2);
	}
	ck_assert_msg(rc == 0, "%s", s.msg);
	b = tu_amqp_open(&rb, "/");
	body = tu_amqp_get(b, "res-r", &len, &m);
	ck_assert_str_eq(m.message_id, "r-1");
	free(body);
	body = tu_amqp_get(b, "res-r", &len, &m);
	ck_assert_str_eq(m.message_id, "r-2");
	free(body);
	results_free(r);
}
END_TEST

/* Freed with a send waiting for the channel: it completes cancelled. */
START_TEST(test_free_pending)
{
	struct scaler_source src = source("res-f", NULL);
	struct results	*r;
	struct sent	 s;
	char		 err[256];

	memset(&s, 0, sizeof s);
	ck_assert_ptr_nonnull(r = results_new(loop, &src, err, sizeof err));
	ck_assert_int_eq(results_send(r, "f-1", "{}", 2, sent_cb, &s), 0);
	results_free(r);
	ck_assert_int_eq(s.done, 1);
	ck_assert_int_eq(s.err, -AS_ECANCELED);
}
END_TEST

static void
broker_setup(void)
{
	tu_amqp_fixture(&rb, &loop, &b);
}

static void
broker_teardown(void)
{
	tu_amqp_fixture_end(&loop, b);
}

static Suite *
results_suite(void)
{
	Suite	*s = suite_create("results");
	TCase	*tc;

	tc = tu_tcase(s, "rabbitmq", 120, NULL, NULL, broker_setup,
	    broker_teardown);
	tcase_add_test(tc, test_validate);
	tcase_add_test(tc, test_queue);
	tcase_add_test(tc, test_exchange);
	tcase_add_test(tc, test_broker_restart);
	tcase_add_test(tc, test_free_pending);
	return (s);
}

int
main(void)
{
	return (tu_rabbit_run_suite(&rb, results_suite()));
}
