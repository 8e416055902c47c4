/*
 * check_scalers.c: the registry of scaler types and the scripted "fake"
 * type the scheduler's tests rely on (its completions must keep the real
 * contract: once, later, canceled inside destroy()).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/scaler.h"
#include "util/scaler_fake.h"
#include "util/testutil.h"

struct rec {
	int			 ndone;
	int			 nwake;
	struct scaler_result	 res;
	double			 at;
	int			 destroy;	/* destroy the instance on done */
};

static void
rec_done(struct scaler *s, const struct scaler_result *r, void *arg)
{
	struct rec	*w = arg;

	w->ndone++;
	w->res = *r;
	w->at = as_mono_now();
	if (w->destroy)
		scaler_destroy(s);
}

static void
rec_wake(struct scaler *s, void *arg)
{
	(void)s;
	((struct rec *)arg)->nwake++;
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

static void
run_until_done(struct ev_loop *loop, struct rec *w, double timeout)
{
	ev_timer	 tick;
	double		 end = as_mono_now() + timeout;

	ev_timer_init(&tick, tick_cb, 0.01, 0.01);
	ev_timer_start(loop, &tick);
	while (w->ndone == 0 && as_mono_now() < end)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &tick);
}

static struct scaler *
fake_new(struct ev_loop *loop, const char *queue)
{
	struct scaler_source src;
	struct scaler	*s;
	char		 err[128];

	memset(&src, 0, sizeof src);
	src.type = "fake";
	src.queue = queue;
	s = scaler_type_fake.create(loop, &src, err, sizeof err);
	ck_assert(s != NULL);
	return (s);
}

START_TEST(test_registry)
{
	/* The scripted fake is linked into tests only, never registered. */
	ck_assert_ptr_null(scaler_type_find("fake"));
	ck_assert_ptr_eq(scaler_type_find("redis-list"),
	    &scaler_type_redis_list);
	ck_assert_ptr_null(scaler_type_find("redis"));
	ck_assert_ptr_null(scaler_type_find(""));
	ck_assert_ptr_null(scaler_type_find(NULL));
	/* Alphabetical, and without the test-only fake. */
	ck_assert_str_eq(scaler_type_names(),
	    "rabbitmq, redis-list, redis-stream");
	ck_assert_str_eq(scaler_type_names(),
	    "rabbitmq, redis-list, redis-stream");
	ck_assert_str_eq(scaler_type_fake.name, "fake");
	ck_assert_str_eq(scaler_type_redis_list.name, "redis-list");
}
END_TEST

START_TEST(test_fake_script)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler	*s = fake_new(loop, "q");
	struct rec	 w;

	/* Nothing scripted yet. */
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, rec_done, &w), 0);
	ck_assert_int_eq(w.ndone, 0);
	ck_assert_int_eq(scaler_fake_pending(s), 1);
	ck_assert_int_eq(scaler_poll(s, rec_done, &w), -AS_EAGAIN);
	run_until_done(loop, &w, 2);
	ck_assert_int_eq(w.res.error, -AS_EAGAIN);

	scaler_fake_push_result(s, 0, 5, 1);
	scaler_fake_push_result(s, -AS_ECONN, 0, 0);
	scaler_fake_push_result(s, 0, 9, 2);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, rec_done, &w), 0);
	ck_assert_int_eq(w.ndone, 0);
	ev_run(loop, EVRUN_ONCE);	/* a zero-delay timer: next turn */
	ck_assert_int_eq(w.ndone, 1);
	ck_assert(w.res.error == 0 && w.res.ready == 5 &&
	    w.res.in_flight == 1);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, rec_done, &w), 0);
	run_until_done(loop, &w, 2);
	ck_assert_int_eq(w.res.error, -AS_ECONN);
	ck_assert(strstr(w.res.errmsg, "fake q") != NULL);
	/* The last result repeats once the script runs out. */
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, rec_done, &w), 0);
	run_until_done(loop, &w, 2);
	ck_assert(w.res.error == 0 && w.res.ready == 9);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, rec_done, &w), 0);
	run_until_done(loop, &w, 2);
	ck_assert(w.res.error == 0 && w.res.ready == 9);
	ck_assert_uint_eq(scaler_fake_polls(s), 5);

	scaler_fake_clear(s);
	scaler_fake_push_result(s, 0, 1, 0);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, rec_done, &w), 0);
	run_until_done(loop, &w, 2);
	ck_assert(w.res.ready == 1);
	scaler_destroy(s);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_fake_delay_fail_cancel)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler	*s = fake_new(loop, "q");
	struct rec	 w;
	double		 t0;

	scaler_fake_push_result(s, 0, 3, 0);
	scaler_fake_set_delay(s, 0.2);
	memset(&w, 0, sizeof w);
	t0 = as_mono_now();
	ck_assert_int_eq(scaler_poll(s, rec_done, &w), 0);
	run_until_done(loop, &w, 5);
	ck_assert_int_eq(w.ndone, 1);
	ck_assert(w.at - t0 >= 0.15);

	scaler_fake_fail_next_poll(s, -AS_ECONN);
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(scaler_poll(s, rec_done, &w), -AS_ECONN);
	ck_assert_int_eq(scaler_fake_pending(s), 0);
	ck_assert_int_eq(scaler_poll(s, rec_done, &w), 0);
	scaler_destroy(s);
	ck_assert_int_eq(w.ndone, 1);
	ck_assert_int_eq(w.res.error, -AS_ECANCELED);

	/* A completion may destroy its own instance. */
	s = fake_new(loop, "q");
	scaler_fake_push_result(s, 0, 1, 0);
	memset(&w, 0, sizeof w);
	w.destroy = 1;
	ck_assert_int_eq(scaler_poll(s, rec_done, &w), 0);
	run_until_done(loop, &w, 2);
	ck_assert_int_eq(w.ndone, 1);
	ck_assert_uint_eq(scaler_fake_instances(), 0);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_fake_push_find)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct scaler	*a = fake_new(loop, "a"), *b = fake_new(loop, "b");
	struct scaler_source src;
	struct rec	 w;
	char		 err[64];

	ck_assert_uint_eq(scaler_fake_instances(), 2);
	ck_assert_ptr_eq(scaler_fake_find("a"), a);
	ck_assert_ptr_eq(scaler_fake_find("b"), b);
	ck_assert_ptr_null(scaler_fake_find("c"));

	memset(&w, 0, sizeof w);
	ck_assert_int_eq(a->type->pushing(a), 0);
	ck_assert_int_eq(a->type->subscribe(a, rec_wake, &w), 0);
	ck_assert_int_eq(a->type->pushing(a), 1);
	scaler_fake_wake(a);
	scaler_fake_wake(a);		/* coalesced */
	ck_assert_int_eq(w.nwake, 0);
	ev_run(loop, EVRUN_ONCE);
	ck_assert_int_eq(w.nwake, 1);

	scaler_fake_set_push(b, 0);
	ck_assert_int_eq(b->type->subscribe(b, rec_wake, &w), -AS_EINVAL);
	ck_assert_int_eq(b->type->pushing(b), 0);

	memset(&src, 0, sizeof src);
	src.address = "fail:broker on fire";
	ck_assert_ptr_null(scaler_type_fake.create(loop, &src, err,
	    sizeof err));
	ck_assert_str_eq(err, "fake: broker on fire");

	scaler_destroy(a);
	scaler_destroy(b);
	scaler_destroy(NULL);
	ck_assert_uint_eq(scaler_fake_instances(), 0);
	ev_loop_destroy(loop);
}
END_TEST

static Suite *
scalers_suite(void)
{
	Suite	*s = suite_create("scalers");
	TCase	*tc = tcase_create("registry and fake");

	tcase_add_test(tc, test_registry);
	tcase_add_test(tc, test_fake_script);
	tcase_add_test(tc, test_fake_delay_fail_cancel);
	tcase_add_test(tc, test_fake_push_find);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(scalers_suite()));
}
