/*
 * check_warmpool.c: the warm-pool sizing maths.  Scenarios are tables of
 * events (arrivals, cold-start samples) and expected targets at given
 * times; the arithmetic is worked out in each row's comment.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "scheduler/warmpool.h"
#include "util/testutil.h"

enum ev { ARRIVE, COLD, EXPECT, END };

struct step {
	enum ev	 ev;
	double	 now;
	double	 v;		/* arrivals, cold seconds or waiting */
	long	 want;		/* EXPECT: target */
};

struct scenario {
	const char		*name;
	struct warmpool_params	 p;
	struct step		 steps[16];
};

#define PARAMS(min, max, cool) { (min), (max), (cool), 1.5, 10, 0.3, 2, 300, 3, \
	WARMPOOL_RATE }

static const struct scenario scenarios[] = {
	{ "idle pool stays at zero", PARAMS(0, 50, 60), {
		{ EXPECT, 0, 0, 0 },
		{ EXPECT, 1000, 0, 0 },
		{ END, 0, 0, 0 } } },
	{ "first arrival after idle: at least one at once", PARAMS(0, 50, 60), {
		/* rate 1/10 x 2 s x 1.5 = 0.3 -> ceil 1 */
		{ ARRIVE, 100, 1, 0 },
		{ EXPECT, 100, 0, 1 },
		{ END, 0, 0, 0 } } },
	{ "spare.min is the floor while active", PARAMS(3, 50, 60), {
		{ ARRIVE, 5, 1, 0 },
		{ EXPECT, 5, 0, 3 },
		{ END, 0, 0, 0 } } },
	{ "burst: rate x cold start x safety", PARAMS(0, 50, 60), {
		/* 100 arrivals at once: rate 10/s x 2 s x 1.5 = 30 */
		{ ARRIVE, 10, 100, 0 },
		{ EXPECT, 10, 0, 30 },
		/* measured cold start 4 s: 10 x 4 x 1.5 = 60 -> max 50 */
		{ COLD, 10, 4, 0 },
		{ EXPECT, 10, 0, 50 },
		{ END, 0, 0, 0 } } },
	{ "rate decays with time constant 10 s", PARAMS(0, 100, 600), {
		/* 10/s x e^-1 = 3.68/s x 2 x 1.5 = 11.04 -> 12 */
		{ ARRIVE, 0, 100, 0 },
		{ EXPECT, 10, 0, 12 },
		/* e^-3 x 10 x 3 = 1.49 -> 2 */
		{ EXPECT, 30, 0, 2 },
		{ END, 0, 0, 0 } } },
	{ "cold EWMA moves by alpha 0.3", PARAMS(0, 1000, 600), {
		/* first sample sets 1 s; then 1 + 0.3 x (11 - 1) = 4 s */
		{ COLD, 0, 1, 0 },
		{ COLD, 0, 11, 0 },
		/* 10/s x 4 s x 1.5 = 60 */
		{ ARRIVE, 1, 100, 0 },
		{ EXPECT, 1, 0, 60 },
		{ END, 0, 0, 0 } } },
	{ "cooldown: zero after quiet, not before", PARAMS(2, 50, 60), {
		{ ARRIVE, 100, 1, 0 },
		{ EXPECT, 159, 0, 2 },
		{ EXPECT, 160, 0, 0 },
		{ END, 0, 0, 0 } } },
	{ "waiting tasks hold the pool up past cooldown", PARAMS(1, 50, 60), {
		{ ARRIVE, 100, 1, 0 },
		{ EXPECT, 300, 4, 1 },
		{ EXPECT, 300, 0, 0 },
		{ END, 0, 0, 0 } } },
	{ "spare.max 0 never scales up", PARAMS(0, 0, 60), {
		{ ARRIVE, 1, 1000, 0 },
		{ EXPECT, 1, 0, 0 },
		{ END, 0, 0, 0 } } },
	{ "bad samples are ignored", PARAMS(0, 100, 60), {
		{ COLD, 0, -1, 0 },
		{ COLD, 0, NAN, 0 },
		/* still the 2 s default: 10 x 2 x 1.5 = 30 */
		{ ARRIVE, 1, 100, 0 },
		{ EXPECT, 1, 0, 30 },
		{ END, 0, 0, 0 } } },
};

START_TEST(test_scenario)
{
	const struct scenario	*sc = &scenarios[_i];
	struct warmpool_params	 p = sc->p;
	struct warmpool_state	 s = { 0 };
	const struct step	*st;
	long			 got;

	warmpool_params_defaults(&p);
	for (st = sc->steps; st->ev != END; st++) {
		switch (st->ev) {
		case ARRIVE:
			warmpool_arrival(&s, &p, st->now, (unsigned)st->v);
			break;
		case COLD:
			warmpool_cold_sample(&s, &p, st->v);
			break;
		case EXPECT:
			got = warmpool_target(&s, &p, st->now, (long)st->v);
			ck_assert_msg(got == st->want, "%s: at t=%g want %ld, "
			    "got %ld", sc->name, st->now, st->want, got);
			ck_assert_int_eq(s.target, got);
			break;
		default:
			break;
		}
	}
}
END_TEST

START_TEST(test_steady_rate_reads_true)
{
	struct warmpool_params	 p = PARAMS(0, 1000, 60);
	struct warmpool_state	 s = { 0 };
	double			 t;

	warmpool_params_defaults(&p);
	/* 5 arrivals/s for 100 s (10 time constants): the EWMA reads ~5. */
	for (t = 0; t < 100; t += 0.2)
		warmpool_arrival(&s, &p, t, 1);
	ck_assert_msg(fabs(warmpool_rate(&s, &p, t) - 5) < 0.3,
	    "rate %g", warmpool_rate(&s, &p, t));
}
END_TEST

START_TEST(test_defaults)
{
	struct warmpool_params	 p = { 0 };

	p.spare_min = 5;
	p.spare_max = 2;
	warmpool_params_defaults(&p);
	ck_assert(p.safety == 1.5 && p.rate_tau == 10 && p.cold_alpha == 0.3 &&
	    p.cold_default == 2);
	ck_assert_int_eq(p.spare_max, 5);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("warmpool");
	TCase	*tc = tcase_create("maths");

	tcase_add_loop_test(tc, test_scenario, 0,
	    (int)(sizeof scenarios / sizeof scenarios[0]));
	tcase_add_test(tc, test_steady_rate_reads_true);
	tcase_add_test(tc, test_defaults);
	suite_add_tcase(s, tc);
	return (tu_run_suite(s));
}
