/*
 * check_simulate.c: the policy simulator (simulate.h) and its parts: the
 * event queue, the seeded generators, the trace parser (every bad line a
 * clear error with its number), the KEDA/HPA step rules (a table), the
 * quantiles, whole runs small enough to work out by hand, and the PNG.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "agentscaler/rt/common.h"
#include "scheduler/config.h"
#include "scheduler/sim_keda.h"
#include "scheduler/sim_png.h"
#include "scheduler/sim_queue.h"
#include "scheduler/sim_trace.h"
#include "scheduler/simulate.h"
#include "util/testutil.h"

/* The queue: by time, ties in push order, through growth. */
START_TEST(test_queue_order)
{
	struct sim_queue q = { 0 };
	struct sim_event e, prev;
	struct sim_rng	 r;
	int		 i, n = 0;

	sim_rng_seed(&r, 3);
	for (i = 0; i < 5000; i++)
		sim_queue_push(&q, (double)(sim_rng_next(&r) % 100), 0, i);
	ck_assert(sim_queue_pop(&q, &prev));
	n = 1;
	while (sim_queue_pop(&q, &e)) {
		ck_assert(e.t > prev.t || (e.t == prev.t && e.arg > prev.arg));
		prev = e;
		n++;
	}
	ck_assert_int_eq(n, 5000);
	ck_assert(!sim_queue_pop(&q, &e));
	sim_queue_free(&q);
}
END_TEST

static char *
trace_text(const struct sim_trace *tr, size_t *len)
{
	char	*buf = NULL;
	FILE	*f = open_memstream(&buf, len);

	ck_assert_ptr_nonnull(f);
	sim_trace_write(tr, f);
	fclose(f);
	return (buf);
}

/* Same name and seed, same trace; another seed, another trace. */
START_TEST(test_generators_seeded)
{
	const char *const *names = sim_gen_names();
	const char	*name = names[_i];
	struct sim_gen_params p = { 0 };
	struct sim_trace a, b, c;
	char		*ta, *tb, *tc;
	size_t		 la, lb, lc, i;

	ck_assert_int_eq(sim_generate(name, 7, &p, &a), 0);
	ck_assert_int_eq(sim_generate(name, 7, &p, &b), 0);
	ck_assert_int_eq(sim_generate(name, 8, &p, &c), 0);
	ck_assert_uint_gt(a.n, 10);
	ta = trace_text(&a, &la);
	tb = trace_text(&b, &lb);
	tc = trace_text(&c, &lc);
	ck_assert_msg(la == lb && memcmp(ta, tb, la) == 0, "%s: seed 7 twice "
	    "differs", name);
	ck_assert_msg(la != lc || memcmp(ta, tc, la) != 0, "%s: seeds 7 and "
	    "8 agree", name);
	for (i = 0; i < a.n; i++) {
		ck_assert(i == 0 || a.v[i].t >= a.v[i - 1].t);
		ck_assert(a.v[i].work > 0);
		if (a.v[i].parent < 0)
			continue;
		ck_assert_int_lt(a.v[i].parent, (long)i);
		ck_assert(a.v[i].t > a.v[a.v[i].parent].t);
		ck_assert_int_eq(a.v[i].depth, a.v[a.v[i].parent].depth + 1);
		ck_assert_int_le(a.v[i].depth, 3);
	}
	free(ta);
	free(tb);
	free(tc);
	sim_trace_free(&a);
	sim_trace_free(&b);
	sim_trace_free(&c);
}
END_TEST

START_TEST(test_generator_unknown)
{
	struct sim_gen_params p = { 0 };
	struct sim_trace tr;

	ck_assert_int_eq(sim_generate("bursty", 1, &p, &tr), -1);
	ck_assert_int_eq(sim_gen_defaults("", &p), -1);
}
END_TEST

/* What the generator writes, the parser reads back. */
START_TEST(test_trace_round_trip)
{
	struct sim_gen_params p = { 0 };
	struct sim_trace a, b;
	char		*t, err[256];
	size_t		 len, i;

	ck_assert_int_eq(sim_generate("cascade", 5, &p, &a), 0);
	t = trace_text(&a, &len);
	ck_assert_msg(sim_trace_parse(t, len, &b, err, sizeof err) == 0,
	    "%s", err);
	ck_assert_uint_eq(a.n, b.n);
	for (i = 0; i < a.n; i++) {
		ck_assert_str_eq(a.v[i].id, b.v[i].id);
		ck_assert_int_eq(a.v[i].parent, b.v[i].parent);
		ck_assert(fabs(a.v[i].t - b.v[i].t) < 0.001);
		ck_assert(fabs(a.v[i].work - b.v[i].work) < 0.001);
	}
	free(t);
	sim_trace_free(&a);
	sim_trace_free(&b);
}
END_TEST

static const struct bad {
	const char	*text;
	const char	*err;	/* the whole message starts with this */
} bad[] = {
	{ "{\"t\": 1, \"id\": \"a\", \"work\": 1}\nnope\n", "line 2: not JSON" },
	{ "[1]", "line 1: expected a JSON object" },
	{ "{\"id\": \"a\", \"work\": 1}", "line 1: t: missing" },
	{ "{\"t\": 1, \"id\": \"a\"}", "line 1: work: missing" },
	{ "{\"t\": -1, \"id\": \"a\", \"work\": 1}", "line 1: t: expected a "
	    "number in [0, 1e9]" },
	{ "{\"t\": \"1\", \"id\": \"a\", \"work\": 1}", "line 1: t: expected" },
	{ "{\"t\": 1, \"id\": \"\", \"work\": 1}", "line 1: id: expected a "
	    "string of 1 to 47 bytes" },
	{ "{\"t\": 1, \"id\": 5, \"work\": 1}", "line 1: id: expected" },
	{ "{\"t\": 1, \"id\": \"a\", \"work\": 1}\n\n# c\n"
	    "{\"t\": 2, \"id\": \"a\", \"work\": 1}", "line 4: id \"a\": a "
	    "second task with this id" },
	{ "{\"t\": 1, \"id\": \"b\", \"parent\": \"a\", \"work\": 1}",
	    "line 1: parent \"a\": no earlier task has this id" },
	{ "{\"t\": 5, \"id\": \"a\", \"work\": 1}\n"
	    "{\"t\": 4, \"id\": \"b\", \"parent\": \"a\", \"work\": 1}",
	    "line 2: t 4.000: before its parent's 5.000" },
	{ "{\"t\": 1, \"id\": \"a\", \"parent\": 3, \"work\": 1}",
	    "line 1: parent: expected a string or null" },
	{ "{\"t\": 1, \"id\": \"a\", \"work\": 1, \"cpu\": 1}",
	    "line 1: unknown field \"cpu\"" },
	{ "{\"t\": 1, \"id\": \"a\", \"work\": 1, \"resources\": 1}",
	    "line 1: resources: expected an object of numbers" },
	{ "{\"t\": 1, \"id\": \"a\", \"work\": 1, \"resources\": "
	    "{\"cpu\": \"1\"}}", "line 1: resources.cpu: expected a number" },
	{ "{\"t\": 1, \"id\": \"a\", \"work\": 1, \"resources\": {\"a\": 1, "
	    "\"b\": 1, \"c\": 1, \"d\": 1, \"e\": 1}}",
	    "line 1: resources.e: expected" },
	{ "{\"t\": 1e400, \"id\": \"a\", \"work\": 1}", "line 1: t: expected" },
};

/* Every bad line: an error with its line number, the trace emptied. */
START_TEST(test_trace_bad)
{
	struct sim_trace tr;
	char		 err[256] = "";

	ck_assert_int_eq(sim_trace_parse(bad[_i].text, strlen(bad[_i].text),
	    &tr, err, sizeof err), -1);
	ck_assert_msg(strncmp(err, bad[_i].err, strlen(bad[_i].err)) == 0,
	    "row %d: want \"%s...\", got \"%s\"", _i, bad[_i].err, err);
	ck_assert_uint_eq(tr.n, 0);
	ck_assert_ptr_null(tr.v);
}
END_TEST

/* Random bytes and mutated lines: never a crash, always "line N: ...". */
START_TEST(test_trace_fuzz)
{
	static const char good[] = "{\"t\": 1.5, \"id\": \"r1\", \"parent\": "
	    "null, \"work\": 3, \"resources\": {\"cpu\": 1}}\n{\"t\": 2, "
	    "\"id\": \"r1.0\", \"parent\": \"r1\", \"work\": 1}\n";
	struct sim_trace tr;
	struct sim_rng	 r;
	char		 buf[sizeof good], err[256];
	size_t		 len;
	int		 i, k;

	sim_rng_seed(&r, 11);
	ck_assert_int_eq(sim_trace_parse(good, strlen(good), &tr, err,
	    sizeof err), 0);
	ck_assert_uint_eq(tr.n, 2);
	sim_trace_free(&tr);
	for (i = 0; i < 20000; i++) {
		memcpy(buf, good, sizeof good);
		len = (size_t)(sim_rng_next(&r) % (sizeof good - 1)) + 1;
		for (k = 0; k < 1 + i % 4; k++)
			buf[sim_rng_next(&r) % len] = (char)(sim_rng_next(&r) %
			    256);
		if (sim_trace_parse(buf, len, &tr, err, sizeof err) != 0)
			ck_assert_msg(strncmp(err, "line ", 5) == 0, "%s", err);
		sim_trace_free(&tr);
	}
}
END_TEST

/* KEDA and the HPA, one call a row on a running state. */
enum kop { K_POLL, K_HPA, K_END };

static const struct krow {
	const char	*name;
	struct kstep {
		enum kop op;
		double	 now;
		double	 metric;
		long	 want;
	} steps[10];
} keda_rows[] = {
	{ "activation 0 -> 1 at a poll, the HPA holds at 0", {
		{ K_HPA, 0, 50, 0 },
		{ K_POLL, 1, 0, 0 },
		{ K_POLL, 31, 1, 1 },
		{ K_END, 0, 0, 0 } } },
	{ "up: max(+100 %, +4 pods) a sync", {
		{ K_POLL, 0, 100, 1 },
		{ K_HPA, 15, 100, 5 },		/* 1 + 4 */
		{ K_HPA, 30, 100, 10 },		/* 5 x 2 */
		{ K_HPA, 45, 100, 20 },
		{ K_HPA, 60, 100, 40 },
		{ K_HPA, 75, 100, 80 },
		{ K_HPA, 90, 100, 100 },	/* the need */
		{ K_END, 0, 0, 0 } } },
	{ "tolerance: within 10 % holds", {
		{ K_POLL, 0, 1, 1 },
		{ K_HPA, 15, 10, 5 },
		{ K_HPA, 30, 10, 10 },
		{ K_HPA, 45, 10.9, 10 },	/* 1.09: held */
		{ K_HPA, 60, 11.5, 12 },	/* 1.15: ceil 11.5 */
		{ K_END, 0, 0, 0 } } },
	{ "down: the highest recommendation of 300 s", {
		{ K_POLL, 0, 1, 1 },
		{ K_HPA, 15, 4, 4 },
		{ K_HPA, 30, 1, 4 },
		{ K_HPA, 314, 1, 4 },		/* 15 s is 299 s old */
		{ K_HPA, 316, 1, 1 },
		{ K_END, 0, 0, 0 } } },
	{ "to zero after cooldownPeriod without activity, at a poll", {
		{ K_POLL, 0, 3, 1 },
		{ K_POLL, 30, 0, 1 },
		{ K_POLL, 299, 0, 1 },
		{ K_POLL, 300, 0, 0 },
		{ K_HPA, 315, 0, 0 },
		{ K_POLL, 330, 2, 1 },		/* activation again */
		{ K_HPA, 345, 2, 2 },
		{ K_END, 0, 0, 0 } } },
};

START_TEST(test_keda_steps)
{
	const struct krow *row = &keda_rows[_i];
	const struct kstep *st;
	struct keda_params p;
	struct keda_state s;
	long		 got;

	keda_params_defaults(&p);
	memset(&s, 0, sizeof s);
	for (st = row->steps; st->op != K_END; st++) {
		got = st->op == K_POLL ? keda_poll(&s, &p, st->now, st->metric) :
		    keda_hpa_sync(&s, &p, st->now, st->metric);
		ck_assert_msg(got == st->want, "%s: at %g want %ld, got %ld",
		    row->name, st->now, st->want, got);
	}
}
END_TEST

START_TEST(test_quantile)
{
	double	 v[] = { 5, 1, 4, 2, 3, 10, 9, 8, 7, 6 };
	double	 one[] = { 42 };

	ck_assert(sim_quantile(v, 10, 0.5) == 5);
	ck_assert(sim_quantile(v, 10, 0.95) == 10);
	ck_assert(sim_quantile(v, 10, 0.91) == 10);
	ck_assert(sim_quantile(v, 10, 0.9) == 9);
	ck_assert(sim_quantile(v, 10, 0) == 1);
	ck_assert(sim_quantile(one, 1, 0.99) == 42);
	ck_assert(sim_quantile(v, 0, 0.5) == 0);
}
END_TEST

static const struct {
	const char	*name;
	int		 ok;
	enum sim_policy_kind kind;
	long		 n;
} policy_rows[] = {
	{ "predictive", 1, SIM_P_WARMPOOL, 0 },
	{ "rate", 1, SIM_P_WARMPOOL, 0 },
	{ "keda", 1, SIM_P_KEDA, 0 },
	{ "keda-pool", 1, SIM_P_KEDA_POOL, 0 },
	{ "scale", 1, SIM_P_SCALE, 0 },
	{ "static-12", 1, SIM_P_STATIC, 12 },
	{ "static-", 0, 0, 0 },
	{ "static-1x", 0, 0, 0 },
	{ "static--1", 0, 0, 0 },
	{ "hpa", 0, 0, 0 },
};

START_TEST(test_policy_parse)
{
	struct sim_policy p;
	int		 rc = sim_policy_parse(policy_rows[_i].name, &p);

	ck_assert_int_eq(rc == 0, policy_rows[_i].ok);
	if (rc == 0) {
		ck_assert_int_eq(p.kind, policy_rows[_i].kind);
		ck_assert_int_eq(p.n, policy_rows[_i].n);
		ck_assert_str_eq(p.name, policy_rows[_i].name);
	}
}
END_TEST

/* A cluster without randomness: cold start exactly 3 s. */
static void
fixed_cluster(struct sim_cluster *c)
{
	sim_cluster_defaults(c);
	c->cold_sigma = 0;
}

static void
run(const char *trace, const char *policy, const struct quota_config *q,
    struct sim_result *r)
{
	struct sim_cluster c;
	struct sim_policy p;
	struct sim_trace tr;
	char		 err[256];

	fixed_cluster(&c);
	ck_assert_msg(sim_trace_parse(trace, strlen(trace), &tr, err,
	    sizeof err) == 0, "%s", err);
	ck_assert_int_eq(sim_policy_parse(policy, &p), 0);
	sim_run(&tr, &c, &p, NULL, q, r);
	sim_trace_free(&tr);
}

#define NEAR(a, b)	ck_assert_msg(fabs((a) - (b)) < 1e-6, \
			    "%s = %.9g, want %.9g", #a, (double)(a), (double)(b))

START_TEST(test_run_cold)
{
	struct sim_result r;

	/*
	 * No pool: the claim is written at 0 and the sandbox is Ready a
	 * write round-trip and a cold start later, 3.05; the task runs
	 * 10 s and the sandbox ends 1 s of grace after: 14.05 sandbox-s.
	 */
	run("{\"t\": 0, \"id\": \"a\", \"work\": 10}", "static-0", NULL, &r);
	ck_assert_uint_eq(r.started, 1);
	ck_assert_uint_eq(r.warm, 0);
	ck_assert_uint_eq(r.adopted, 0);
	NEAR(r.p50, 3.05);
	NEAR(r.busy, 10);
	NEAR(r.idle, 4.05);
	NEAR(r.end, 14.05);
	ck_assert_int_eq(r.peak, 1);
	sim_result_free(&r);
}
END_TEST

START_TEST(test_run_warm)
{
	struct sim_result r;

	/*
	 * One spare from 0: the task at 5 adopts it, bound 0.2 s later;
	 * the pool refills at 5.05 (the adoption seen after a round
	 * trip).  The run ends at 5.2 + 10 + 1 = 16.2: 16.2 s of the
	 * first sandbox, 11.15 of the refill.
	 */
	run("{\"t\": 5, \"id\": \"a\", \"work\": 10}", "static-1", NULL, &r);
	ck_assert_uint_eq(r.warm, 1);
	ck_assert_uint_eq(r.adopted, 1);
	NEAR(r.p95, 0.2);
	NEAR(r.busy, 10);
	NEAR(r.busy + r.idle, 16.2 + 11.15);
	ck_assert_int_eq(r.peak, 2);
	sim_result_free(&r);
}
END_TEST

START_TEST(test_run_adopts_unready)
{
	struct sim_result r;

	/*
	 * a at 5 takes the Ready spare (as test_run_warm); its refill is
	 * written at 5.05 and Ready a cold start later, so b at 6 adopts it
	 * unready (agent-sandbox's claim controller falls back to the
	 * member closest to Ready): no warm hit, but an adoption, what the
	 * daemon counts as launch="warm" (the claim got a pool member, not
	 * a sandbox of its own).  b starts when the member is Ready, sooner
	 * than a cold start of its own.
	 */
	run("{\"t\": 5, \"id\": \"a\", \"work\": 10}\n"
	    "{\"t\": 6, \"id\": \"b\", \"work\": 10}", "static-1", NULL, &r);
	ck_assert_uint_eq(r.started, 2);
	ck_assert_uint_eq(r.warm, 1);
	ck_assert_uint_eq(r.adopted, 2);
	ck_assert(r.max > 1 && r.max < 3.05);
	sim_result_free(&r);
}
END_TEST

START_TEST(test_run_keda_deployment)
{
	struct sim_result r;

	/*
	 * KEDA polls at 0 and sees the task: 0 -> 1; the ReplicaSet makes
	 * the pod a round-trip later, Ready at 0.05 + 0.05 + 3 = 3.1,
	 * when it takes the task.
	 */
	run("{\"t\": 0, \"id\": \"a\", \"work\": 10}", "keda", NULL, &r);
	ck_assert_uint_eq(r.started, 1);
	ck_assert_uint_eq(r.warm, 0);
	NEAR(r.p50, 3.1);
	NEAR(r.busy, 10);
	ck_assert_uint_eq(r.admitted, 0);
	sim_result_free(&r);
}
END_TEST

START_TEST(test_run_quota)
{
	static const struct quota_config one = { .max_sandboxes = 1,
		.max_depth = -1, .max_children_per_task = -1,
		.max_descendants_per_root = -1, .max_roots = -1,
		.spawn_burst = 1, .on_exceeded = QUOTA_ON_DEFER };
	static const struct quota_config depth0 = { .max_sandboxes = -1,
		.max_depth = 0, .max_children_per_task = -1,
		.max_descendants_per_root = -1, .max_roots = -1,
		.spawn_burst = 1, .on_exceeded = QUOTA_ON_DEFER };
	struct sim_result r;

	/*
	 * One sandbox allowed: b waits for a's end (13.05), then starts
	 * cold: 13.05 + 3.05 = 16.1.
	 */
	run("{\"t\": 0, \"id\": \"a\", \"work\": 10}\n"
	    "{\"t\": 0, \"id\": \"b\", \"work\": 10}", "static-0", &one, &r);
	ck_assert_uint_eq(r.started, 2);
	ck_assert_uint_eq(r.admitted, 2);
	ck_assert_uint_eq(r.deferred, 1);
	NEAR(r.max, 16.1);
	sim_result_free(&r);
	/* maxDepth 0: the child is rejected, its own child never comes. */
	run("{\"t\": 0, \"id\": \"a\", \"work\": 10}\n"
	    "{\"t\": 1, \"id\": \"b\", \"parent\": \"a\", \"work\": 10}\n"
	    "{\"t\": 2, \"id\": \"c\", \"parent\": \"b\", \"work\": 10}",
	    "static-0", &depth0, &r);
	ck_assert_uint_eq(r.started, 1);
	ck_assert_uint_eq(r.rejected, 1);
	ck_assert_uint_eq(r.qrejected, 1);
	ck_assert_uint_eq(r.dropped, 1);
	sim_result_free(&r);
}
END_TEST

START_TEST(test_run_child_follows_parent)
{
	struct sim_result r;

	/*
	 * The child is spawned 2 s into its parent's run: the parent
	 * starts at 3.05 (cold), the child arrives at 5.05 and starts
	 * cold at 8.1; both waits are 3.05.
	 */
	run("{\"t\": 0, \"id\": \"a\", \"work\": 10}\n"
	    "{\"t\": 2, \"id\": \"b\", \"parent\": \"a\", \"work\": 1}",
	    "static-0", NULL, &r);
	ck_assert_uint_eq(r.started, 2);
	NEAR(r.p50, 3.05);
	NEAR(r.max, 3.05);
	sim_result_free(&r);
}
END_TEST

/* Every policy over a generated cascade: all tasks run, deterministic. */
START_TEST(test_run_policies)
{
	static const char *const pols[] = { "predictive", "rate", "keda",
		"keda-pool", "scale", "static-5" };
	struct sim_gen_params gp = { 0 };
	struct sim_cluster c;
	struct sim_policy p;
	struct sim_trace tr;
	struct sim_result a, b;
	size_t		 i;

	sim_cluster_defaults(&c);
	gp.duration = 200;
	ck_assert_int_eq(sim_generate("cascade", 4, &gp, &tr), 0);
	for (i = 0; i < sizeof pols / sizeof pols[0]; i++) {
		ck_assert_int_eq(sim_policy_parse(pols[i], &p), 0);
		sim_run(&tr, &c, &p, NULL, NULL, &a);
		sim_run(&tr, &c, &p, NULL, NULL, &b);
		ck_assert_uint_eq(a.started, tr.n);
		ck_assert_uint_eq(a.tasks, tr.n);
		ck_assert_msg(a.p95 == b.p95 && a.busy == b.busy &&
		    a.idle == b.idle, "%s: two runs differ", pols[i]);
		ck_assert(a.p50 <= a.p95 && a.p95 <= a.p99 && a.p99 <= a.max);
		ck_assert_uint_le(a.warm, a.started);
		ck_assert_uint_gt(a.npts, 0);
		sim_result_free(&a);
		sim_result_free(&b);
	}
	sim_trace_free(&tr);
}
END_TEST

static uint32_t
get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3]);
}

/* The PNG: signature, chunks with good CRCs, rows that inflate back. */
START_TEST(test_png_encode)
{
	static const uint8_t rgb[] = { 0, 0, 0, 255, 255, 255 };
	uint8_t		 px[] = { 0, 1, 1, 0, 1, 1 };
	struct sim_canvas c = { 3, 2, px };
	uint8_t		*png, raw[8];
	size_t		 len, pos = 8;
	uLongf		 rawlen = sizeof raw;
	uint32_t	 n;
	int		 chunks = 0;

	ck_assert_int_eq(sim_png_encode(&c, rgb, 2, &png, &len), 0);
	ck_assert(memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);
	while (pos < len) {
		n = get32(png + pos);
		ck_assert_uint_eq(get32(png + pos + 8 + n),
		    (uint32_t)crc32(0L, png + pos + 4, n + 4));
		if (memcmp(png + pos + 4, "IHDR", 4) == 0) {
			ck_assert_uint_eq(get32(png + pos + 8), 3);
			ck_assert_uint_eq(get32(png + pos + 12), 2);
		}
		if (memcmp(png + pos + 4, "IDAT", 4) == 0) {
			ck_assert_int_eq(uncompress(raw, &rawlen,
			    png + pos + 8, n), Z_OK);
			ck_assert_uint_eq(rawlen, 8);
			ck_assert(memcmp(raw, "\0\0\1\1\0\1\1\0", 8) == 0 ||
			    memcmp(raw, "\0\0\1\1\0\0\1\1", 8) == 0);
		}
		pos += 12 + n;
		chunks++;
	}
	ck_assert_uint_eq(pos, len);
	ck_assert_int_eq(chunks, 4);
	free(png);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("simulate");
	TCase	*tc = tcase_create("parts");
	TCase	*tr = tcase_create("runs");
	int	 ngen = 0;

	while (sim_gen_names()[ngen] != NULL)
		ngen++;
	tcase_add_test(tc, test_queue_order);
	tcase_add_loop_test(tc, test_generators_seeded, 0, ngen);
	tcase_add_test(tc, test_generator_unknown);
	tcase_add_test(tc, test_trace_round_trip);
	tcase_add_loop_test(tc, test_trace_bad, 0,
	    (int)(sizeof bad / sizeof bad[0]));
	tcase_add_test(tc, test_trace_fuzz);
	tcase_add_loop_test(tc, test_keda_steps, 0,
	    (int)(sizeof keda_rows / sizeof keda_rows[0]));
	tcase_add_test(tc, test_quantile);
	tcase_add_loop_test(tc, test_policy_parse, 0,
	    (int)(sizeof policy_rows / sizeof policy_rows[0]));
	tcase_add_test(tc, test_png_encode);
	tcase_add_test(tr, test_run_cold);
	tcase_add_test(tr, test_run_warm);
	tcase_add_test(tr, test_run_adopts_unready);
	tcase_add_test(tr, test_run_keda_deployment);
	tcase_add_test(tr, test_run_quota);
	tcase_add_test(tr, test_run_child_follows_parent);
	tcase_add_test(tr, test_run_policies);
	tcase_set_timeout(tr, 60);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, tr);
	return (tu_run_suite(s));
}
