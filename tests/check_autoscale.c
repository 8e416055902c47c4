/*
 * check_autoscale.c: table-driven cases for the scale-mode maths.  Each row
 * is a scenario: parameters, then steps of (now, backlog, in flight, source
 * ok, quota cap) with the expected desired replicas and reason.  The
 * "current" replicas follow the previous decision, as they would once the
 * PATCH has landed.
 */
#include <check.h>
#include <stdlib.h>

#include "scheduler/autoscale.h"
#include "util/testutil.h"

struct step {
	double	 now;
	double	 backlog;
	double	 in_flight;
	int	 source_err;
	long	 quota_cap;	/* 0 in a row means "none" unless quota set */
	int	 quota;
	long	 want;
	enum autoscale_reason why;
};

struct scenario {
	const char		*name;
	struct autoscale_params	 p;
	long			 start;		/* replicas before the first step */
	struct step		 steps[12];
};

#define P(min, max, tpr, act, cool, stab, step) \
	{ (min), (max), (tpr), (act), (cool), (stab), (step) }
#define S(t, b, f, w, r) { (t), (b), (f), 0, 0, 0, (w), (r) }
#define SERR(t, w) { (t), 0, 0, 1, 0, 0, (w), AUTOSCALE_SOURCE_ERROR }
#define SQ(t, b, cap, w, r) { (t), (b), 0, 0, (cap), 1, (w), (r) }
#define END { -1, 0, 0, 0, 0, 0, 0, 0 }

static const struct scenario scenarios[] = {
	{ "activation from zero", P(0, 10, 1, 0, 60, 60, 0), 0, {
		S(0, 0, 0, 0, AUTOSCALE_HOLD),
		S(1, 1, 0, 1, AUTOSCALE_ACTIVATE),
		END } },
	{ "activation threshold is strict", P(0, 10, 1, 3, 60, 60, 0), 0, {
		S(0, 3, 0, 0, AUTOSCALE_HOLD),
		S(1, 4, 0, 4, AUTOSCALE_ACTIVATE),
		END } },
	{ "jump straight to the need", P(0, 100, 4, 0, 60, 60, 0), 0, {
		S(0, 25, 0, 7, AUTOSCALE_ACTIVATE),
		S(1, 90, 0, 23, AUTOSCALE_UP),
		END } },
	{ "maxScaleUpStep caps each step", P(0, 100, 1, 0, 60, 60, 3), 0, {
		S(0, 10, 0, 3, AUTOSCALE_UP_CAPPED),
		S(1, 10, 0, 6, AUTOSCALE_UP_CAPPED),
		S(2, 10, 0, 9, AUTOSCALE_UP_CAPPED),
		S(3, 10, 0, 10, AUTOSCALE_UP),
		END } },
	{ "max clamp", P(0, 5, 1, 0, 60, 60, 0), 0, {
		S(0, 25, 0, 5, AUTOSCALE_ACTIVATE),
		END } },
	{ "min clamp keeps replicas when idle", P(2, 5, 1, 0, 0, 0, 0), 0, {
		S(0, 0, 0, 2, AUTOSCALE_ACTIVATE),
		S(100, 0, 0, 2, AUTOSCALE_CLAMP),
		END } },
	{ "stabilization on the way down", P(0, 100, 1, 0, 5, 10, 0), 0, {
		S(0, 8, 0, 8, AUTOSCALE_ACTIVATE),
		S(1, 3, 0, 8, AUTOSCALE_STABILIZING),
		S(5, 2, 0, 8, AUTOSCALE_STABILIZING),
		S(10.5, 2, 0, 3, AUTOSCALE_STABILIZING),
		S(15.5, 2, 0, 2, AUTOSCALE_DOWN),
		END } },
	{ "cooldown before zero", P(0, 100, 1, 0, 30, 0, 0), 0, {
		S(0, 4, 0, 4, AUTOSCALE_ACTIVATE),
		S(1, 0, 0, 1, AUTOSCALE_COOLDOWN),
		S(29, 0, 0, 1, AUTOSCALE_COOLDOWN),
		S(31, 0, 0, 0, AUTOSCALE_TO_ZERO),
		S(40, 0, 0, 0, AUTOSCALE_HOLD),
		END } },
	{ "activity restarts the cooldown", P(0, 100, 1, 0, 10, 0, 0), 0, {
		S(0, 1, 0, 1, AUTOSCALE_ACTIVATE),
		S(8, 1, 0, 1, AUTOSCALE_HOLD),
		S(12, 0, 0, 1, AUTOSCALE_COOLDOWN),
		S(18.5, 0, 0, 0, AUTOSCALE_TO_ZERO),
		END } },
	{ "never below in-flight", P(0, 100, 2, 0, 0, 0, 0), 6, {
		S(0, 0, 5, 3, AUTOSCALE_DOWN),
		S(1, 0, 5, 3, AUTOSCALE_HOLD),
		S(2, 0, 1, 1, AUTOSCALE_DOWN),
		S(3, 0, 0, 0, AUTOSCALE_TO_ZERO),
		END } },
	{ "in-flight wakes from zero", P(0, 100, 1, 0, 0, 0, 0), 0, {
		S(0, 0, 2, 2, AUTOSCALE_ACTIVATE),
		END } },
	{ "in-flight floor still obeys max", P(0, 3, 1, 0, 0, 0, 0), 0, {
		S(0, 0, 9, 3, AUTOSCALE_ACTIVATE),
		END } },
	{ "a source error never scales to zero", P(0, 100, 1, 0, 0, 0, 0), 0, {
		S(0, 5, 0, 5, AUTOSCALE_ACTIVATE),
		SERR(100, 5),
		SERR(1000, 5),
		S(1001, 5, 0, 5, AUTOSCALE_HOLD),
		END } },
	{ "a restart waits out the window and cooldown", P(0, 100, 1, 0, 20,
	    10, 0), 7, {
		S(0, 0, 0, 7, AUTOSCALE_STABILIZING),
		S(11, 0, 0, 1, AUTOSCALE_COOLDOWN),
		S(21, 0, 0, 0, AUTOSCALE_TO_ZERO),
		END } },
	{ "quota caps the decision", P(0, 100, 1, 0, 60, 60, 0), 0, {
		SQ(0, 30, 12, 12, AUTOSCALE_QUOTA),
		SQ(1, 30, 20, 20, AUTOSCALE_QUOTA),
		END } },
	{ "many wake-ups do not overflow the window", P(0, 100, 1, 0, 60, 60,
	    0), 0, {
		S(0, 50, 0, 50, AUTOSCALE_ACTIVATE),
		END } },
	/*
	 * Issue 12, defect 10a: a need past what a long holds went through
	 * an undefined conversion and scaled to minReplicas.
	 */
	{ "a huge backlog clamps to max", P(1, 10, 1, 0, 60, 60, 0), 1, {
		S(0, 1e19, 0, 10, AUTOSCALE_UP),
		S(1, 1e300, 0, 10, AUTOSCALE_CLAMP),
		S(2, 1.0 / 0.0, 0, 10, AUTOSCALE_CLAMP),
		END } },
	{ "a huge backlog wakes from zero", P(0, 10, 3, 0, 60, 60, 0), 0, {
		S(0, 9.3e18, 0, 10, AUTOSCALE_ACTIVATE),
		END } },
	{ "a huge in-flight count clamps to max", P(0, 10, 1, 0, 60, 60, 0), 4,
	    {
		S(0, 0, 1e300, 10, AUTOSCALE_UP),
		END } },
};

START_TEST(test_scenario)
{
	const struct scenario	*sc = &scenarios[_i];
	struct autoscale_state	 st = { 0 };
	struct autoscale_input	 in;
	struct autoscale_decision d;
	long			 current = sc->start;
	size_t			 i;

	for (i = 0; i < 12 && sc->steps[i].now >= 0; i++) {
		const struct step *s = &sc->steps[i];

		in.source_ok = !s->source_err;
		in.backlog = s->backlog;
		in.in_flight = s->in_flight;
		in.current = current;
		in.quota_cap = s->quota ? s->quota_cap : -1;
		in.now = s->now;
		autoscale_decide(&st, &sc->p, &in, &d);
		ck_assert_msg(d.desired == s->want,
		    "%s step %zu: desired %ld, want %ld", sc->name, i,
		    d.desired, s->want);
		ck_assert_msg(d.reason == s->why,
		    "%s step %zu: reason %s, want %s", sc->name, i,
		    autoscale_reason_name(d.reason),
		    autoscale_reason_name(s->why));
		current = d.desired;
	}
	autoscale_state_reset(&st);
}
END_TEST

/* Thousands of evaluations a second for a minute stay within the window. */
START_TEST(test_window_bounded)
{
	struct autoscale_params	 p = P(0, 1000, 1, 0, 60, 60, 0);
	struct autoscale_state	 st = { 0 };
	struct autoscale_input	 in = { 1, 0, 0, 0, -1, 0 };
	struct autoscale_decision d;
	int			 i;

	for (i = 0; i < 120000; i++) {
		in.now = i * 0.001;
		in.backlog = (i % 1000 == 0) ? 500 : 1;
		in.current = st.desired;
		autoscale_decide(&st, &p, &in, &d);
		ck_assert_uint_le(st.nwindow, AUTOSCALE_WINDOW);
		ck_assert_uint_le(st.capwindow, AUTOSCALE_WINDOW);
	}
	/* The 500 seen 1 ms ago is inside the window: no scale down. */
	ck_assert_int_eq(d.desired, 500);
	ck_assert_int_eq(d.reason, AUTOSCALE_STABILIZING);
	autoscale_state_reset(&st);
	ck_assert_ptr_null(st.window);
	ck_assert_int_eq(st.started, 0);
}
END_TEST

static Suite *
autoscale_suite(void)
{
	Suite	*s = suite_create("autoscale");
	TCase	*tc = tcase_create("scenarios");

	tcase_add_loop_test(tc, test_scenario, 0,
	    (int)(sizeof scenarios / sizeof scenarios[0]));
	tcase_add_test(tc, test_window_bounded);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(autoscale_suite()));
}
