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

/*
 * The predictive policy.  learn_tau 1e9 in most rows makes the decayed
 * task-seconds plain ones (tau x (1 - exp(-dt / tau)) = dt), so the
 * arithmetic in the comments is exact enough.
 */
enum pev { P_ROOT, P_SPAWN, P_LOAD, P_COLD, P_EXPECT, P_RATE, P_END };

struct pstep {
	enum pev ev;
	double	 now;
	double	 a;		/* ROOT: n; SPAWN: parent spawned; COLD: s */
	long	 running, spawners, waiting, headroom;	/* LOAD */
	long	 want;		/* EXPECT: predictive, RATE: rate policy */
};

struct pscenario {
	const char		*name;
	double			 learn_tau;
	double			 cooldown;
	struct pstep		 steps[12];
};

#define LOAD(t, r, s, w, h) { P_LOAD, (t), 0, (r), (s), (w), (h), 0 }
#define EXP(t, n) { P_EXPECT, (t), 0, 0, 0, 0, 0, (n) }
#define RATE(t, n) { P_RATE, (t), 0, 0, 0, 0, 0, (n) }
#define PEV(e, t, a) { (e), (t), (a), 0, 0, 0, 0, 0 }
#define PEND PEV(P_END, 0, 0)

static const struct pscenario pscenarios[] = {
	{ "roots: (1 + safety) x cold x the 3 s root rate", 1e9, 60, {
		/*
		 * 3 roots at once: roots 3/3 s = 1/s, D = 2 s x 1 = 2,
		 * 2.5 x 2 = 5 (floor: rate 0.3 x 2 x 2.5 = 1.5, below);
		 * the rate policy: 0.3/s x 2 x 1.5 = 0.9 -> 1.
		 */
		PEV(P_ROOT, 10, 3),
		EXP(10, 5),
		RATE(10, 1),
		PEND } },
	{ "running spawners: the pool grows before a child arrives", 1e9,
	    60, {
		/*
		 * A root runs 20 s and spawns (first child: l_n = 1 per 20
		 * s); it and its child run 20 s more and it spawns again
		 * (l_s = 1 per 20 spawner-seconds; l_n = 1 per 40).  Then
		 * 20 spawners and 1 other run: D = 2 x (20 / 20 + 1 / 40) =
		 * 2.05, 2.5 x 2.05 = 5.125 -> 6.  The rate policy sees 3
		 * arrivals: 0.115/s x 2 x 1.5 -> 1.
		 */
		PEV(P_ROOT, 0, 1),
		LOAD(0, 1, 0, 0, -1),
		PEV(P_SPAWN, 20, 0),
		LOAD(20, 2, 1, 0, -1),
		PEV(P_SPAWN, 40, 1),
		LOAD(40, 21, 20, 0, -1),
		EXP(40, 6),
		RATE(40, 1),
		PEND } },
	{ "tasks waiting beyond the first add", 1e9, 60, {
		/* 5 as in the first row, + (4 - 1) */
		PEV(P_ROOT, 10, 3),
		LOAD(10, 0, 0, 4, -1),
		EXP(10, 8),
		PEND } },
	{ "the quota head-room caps", 1e9, 60, {
		PEV(P_ROOT, 10, 3),
		LOAD(10, 0, 0, 0, 2),
		EXP(10, 2),
		PEND } },
	{ "the burst floor decays within the cooldown, then zero", 300, 600, {
		/*
		 * 10 roots at 0: roots 10/3 s, D = 6.67, x 2.5 = 16.7 ->
		 * 17.  At 100 s: peak rate 1/s x e^(-100/300) = 0.717,
		 * floor 2.5 x 2 x 0.717 = 3.58 -> 4 (the rate policy: its
		 * rate is e^-10, its floor while active 1).  At 600 s, the
		 * cooldown: 0, both.
		 */
		PEV(P_ROOT, 0, 10),
		EXP(0, 17),
		EXP(100, 4),
		RATE(100, 1),
		EXP(599, 1),
		EXP(600, 0),
		RATE(600, 0),
		PEND } },
	{ "H is the cold start's mean + 2 mean deviations", 1e9, 60, {
		/*
		 * Samples 2 and 4: mean 2 + 0.3 x 2 = 2.6, deviation
		 * 0.3 x 2 = 0.6: H = 3.8.  3 roots: 2.5 x 3.8 x 1 = 9.5
		 * -> 10.
		 */
		PEV(P_COLD, 0, 2),
		PEV(P_COLD, 0, 4),
		PEV(P_ROOT, 0, 3),
		EXP(0, 10),
		PEND } },
	{ "never active: zero", 1e9, 60, {
		LOAD(5, 3, 3, 0, -1),
		EXP(5, 0),
		PEND } },
};

START_TEST(test_predictive)
{
	const struct pscenario	*sc = &pscenarios[_i];
	struct warmpool_params	 p = PARAMS(0, 100, sc->cooldown);
	struct warmpool_state	 s = { 0 };
	struct warmpool_load	 l = { 0, 0, 0, -1 };
	const struct pstep	*st;
	long			 got;
	unsigned		 k;

	p.learn_tau = sc->learn_tau;
	warmpool_params_defaults(&p);
	for (st = sc->steps; st->ev != P_END; st++) {
		switch (st->ev) {
		case P_ROOT:
			for (k = 0; k < (unsigned)st->a; k++)
				warmpool_root(&s, &p, st->now);
			warmpool_arrival(&s, &p, st->now, (unsigned)st->a);
			break;
		case P_SPAWN:
			warmpool_spawn(&s, &p, st->now, st->a != 0);
			warmpool_arrival(&s, &p, st->now, 1);
			break;
		case P_LOAD:
			l.running = st->running;
			l.spawners = st->spawners;
			l.waiting = st->waiting;
			l.headroom = st->headroom;
			warmpool_load(&s, &p, st->now, &l);
			break;
		case P_COLD:
			warmpool_cold_sample(&s, &p, st->a);
			break;
		case P_EXPECT:
		case P_RATE:
			p.policy = st->ev == P_RATE ? WARMPOOL_RATE :
			    WARMPOOL_PREDICTIVE;
			got = warmpool_target_policy(&s, &p, st->now, &l);
			ck_assert_msg(got == st->want, "%s: at %g %s want %ld, "
			    "got %ld", sc->name, st->now,
			    warmpool_policy_name(p.policy), st->want, got);
			break;
		default:
			break;
		}
	}
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
	tcase_add_loop_test(tc, test_predictive, 0,
	    (int)(sizeof pscenarios / sizeof pscenarios[0]));
	tcase_add_test(tc, test_defaults);
	suite_add_tcase(s, tc);
	return (tu_run_suite(s));
}
