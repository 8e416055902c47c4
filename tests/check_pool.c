/*
 * check_pool.c: the scale pools (scheduler/pool.c) at scale, without a
 * network: a daemon built by hand (a standby, so nothing is written, with
 * every target's replicas known), its pools driven the way their timers
 * drive them (pool_poll_done() with a reading) and the CRD status sweep
 * called as crd.c calls it.
 *
 * Linearity (issue 15): the pools visited per sweep, counted by pool.c in
 * d->pool_visits, stay within a constant times the number of pools, for
 * 100, 1,000 and 10,000 pools, with and without quotas, in many small
 * namespaces and in one large one.  A count, not a clock: the test fails
 * on a quadratic loop however fast the machine.
 *
 * Equivalence: the quota cap, which pool.c now takes from per-namespace
 * groups kept up to date, equals the one the old code computed by walking
 * every pool of the daemon (ref_quota_cap() below, its algorithm), over
 * random readings, replicas and reloads.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/scalers/scaler.h"
#include "scheduler/config.h"
#include "scheduler/crd.h"
#include "scheduler/daemon_state.h"
#include "scheduler/dispatch.h"
#include "scheduler/pool.h"
#include "scheduler/quota.h"
#include "util/testutil.h"

/* Visits allowed per pool and per sweep: a constant, whatever N is. */
#define VISITS_PER_POOL	8

struct layout {
	size_t	 npools;
	size_t	 per_ns;	/* pools per namespace */
	long	 max_sandboxes;	/* each namespace's quota; -2: none */
};

/*
 * One namespace with a quota, contended (each pool "not read yet" needs
 * its maxReplicas, 10) or not: the first sweep, every pool going from
 * "not read yet" to its reading, changes every need, which the pools whose
 * readings arrive together share one quota_share() for.
 */
static const struct layout layouts[] = {
	{ 100, 10, -2 },
	{ 1000, 10, -2 },
	{ 10000, 10, -2 },
	{ 100, 10, 5 },
	{ 1000, 10, 5 },
	{ 10000, 10, 5 },
	{ 10000, 10000, -2 },
	{ 100, 100, 40 },
	{ 1000, 1000, 400 },
	{ 10000, 10000, 4000 },
	{ 100, 100, 2000 },
	{ 1000, 1000, 20000 },
	{ 10000, 10000, 200000 },
};

struct fixture {
	struct ev_loop		*loop;
	struct daemon_options	 opts;
	struct daemon		 d;
};

static void
add_pool(struct config *c, const char *ns, const char *name, long max,
    int count_in_flight)
{
	char	 buf[1024], err[256];
	cJSON	*obj;

	snprintf(buf, sizeof buf, "{\"apiVersion\":\"agentscaler.io/v1alpha1\","
	    "\"kind\":\"AgentPool\",\"metadata\":{\"name\":\"%s\","
	    "\"namespace\":\"%s\"},\"spec\":{\"source\":{\"type\":"
	    "\"redis-list\",\"address\":\"redis://127.0.0.1:1/0\",\"queue\":"
	    "\"%s.%s\",\"countInFlight\":%s},\"target\":{\"kind\":"
	    "\"Deployment\",\"name\":\"%s\"},\"scaling\":{\"maxReplicas\":%ld,"
	    "\"tasksPerReplica\":1}}}", name, ns, ns, name,
	    count_in_flight ? "true" : "false", name, max);
	obj = cJSON_Parse(buf);
	ck_assert_ptr_nonnull(obj);
	ck_assert_msg(config_add_pool(c, obj, NULL, NULL, "", err,
	    sizeof err) == 0, "%s", err);
	cJSON_Delete(obj);
}

static void
add_quota(struct config *c, const char *ns, long max)
{
	char	 buf[512], err[256];
	cJSON	*obj;

	snprintf(buf, sizeof buf, "{\"apiVersion\":\"agentscaler.io/v1alpha1\","
	    "\"kind\":\"AgentQuota\",\"metadata\":{\"name\":\"q\","
	    "\"namespace\":\"%s\"},\"spec\":{\"maxSandboxes\":%ld}}", ns, max);
	obj = cJSON_Parse(buf);
	ck_assert_ptr_nonnull(obj);
	ck_assert_msg(config_add_quota(c, obj, "", err, sizeof err) == 0, "%s",
	    err);
	cJSON_Delete(obj);
}

static struct config *
layout_config(const struct layout *l)
{
	struct config	*c = config_new();
	char		 ns[64], name[64];
	size_t		 i;

	for (i = 0; i < l->npools; i++) {
		snprintf(ns, sizeof ns, "ns-%zu", i / l->per_ns);
		snprintf(name, sizeof name, "p-%zu", i);
		add_pool(c, ns, name, 10, 0);
		if (l->max_sandboxes >= 0 && i % l->per_ns == 0)
			add_quota(c, ns, l->max_sandboxes);
	}
	return (c);
}

static void
fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof *f);
	log_set_level(LOG_ERROR);
	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->opts.resync_seconds = 1e9;	/* the targets stay known */
	f->d.loop = f->loop;
	f->d.opts = &f->opts;
	f->d.leading = 0;		/* a standby: decides, never writes */
}

/* pool_apply_config() as daemon_apply() calls it; takes c. */
static void
fixture_apply(struct fixture *f, struct config *c)
{
	pool_apply_config(&f->d, c);
	config_free(f->d.config);
	f->d.config = c;
}

static void
fixture_fini(struct fixture *f)
{
	pool_free_all(&f->d);
	config_free(f->d.config);
	ev_loop_destroy(f->loop);
}

/* Every target read, at its replicas now (as pool_get_done() leaves it). */
static void
targets_known(struct daemon *d)
{
	size_t	 i;

	for (i = 0; i < d->npools; i++) {
		d->pools[i]->spec_known = 1;
		d->pools[i]->spec_time = as_mono_now();
	}
}

/*
 * One poll of every pool, as the timers do it: an idle queue.  The
 * readings arrive in batches of 100 (the callbacks of one loop
 * iteration), each followed by the loop's ev_prepare.
 */
static uint64_t
sweep_polls(struct daemon *d)
{
	struct scaler_result r;
	size_t		 i;

	memset(&r, 0, sizeof r);
	d->pool_visits = 0;
	for (i = 0; i < d->npools; i++) {
		pool_poll_done(d->pools[i]->scaler, &r, d->pools[i]);
		if (i % 100 == 99)
			pool_defer_flush(d);
	}
	pool_defer_flush(d);
	return (d->pool_visits);
}

/* The CRD status sweep (crd_status_cb): each pool, each namespace once. */
static uint64_t
sweep_status(struct daemon *d)
{
	struct crd_pool_status	 ps;
	struct crd_quota_status	 qs;
	size_t			 i;

	d->pool_visits = 0;
	for (i = 0; i < d->npools; i++) {
		const struct pool_config *c = d->pools[i]->cfg;

		memset(&ps, 0, sizeof ps);
		ck_assert_int_eq(pool_crd_status(d, c->ns, c->name, &ps), 0);
		if (i == 0 || strcmp(d->pools[i - 1]->cfg->ns, c->ns) != 0) {
			memset(&qs, 0, sizeof qs);
			ck_assert_int_eq(pool_crd_quota_status(d, c->ns, &qs),
			    0);
		}
	}
	return (d->pool_visits);
}

START_TEST(test_sweep_linear)
{
	const struct layout *l = &layouts[_i];
	struct fixture	 f;
	uint64_t	 v, bound = (uint64_t)VISITS_PER_POOL * l->npools;
	int		 k;

	fixture_init(&f);
	f.d.pool_visits = 0;
	fixture_apply(&f, layout_config(l));
	ck_assert_uint_eq(f.d.npools, l->npools);
	ck_assert_msg(f.d.pool_visits <= bound, "%zu pools (%zu per "
	    "namespace): the config's apply visited %llu pools, more than %llu",
	    l->npools, l->per_ns, (unsigned long long)f.d.pool_visits,
	    (unsigned long long)bound);
	targets_known(&f.d);
	for (k = 0; k < 3; k++) {
		v = sweep_polls(&f.d);
		ck_assert_msg(v <= bound, "%zu pools (%zu per namespace, "
		    "quota %ld): sweep %d of the polls visited %llu pools, "
		    "more than %llu", l->npools, l->per_ns, l->max_sandboxes,
		    k, (unsigned long long)v, (unsigned long long)bound);
		v = sweep_status(&f.d);
		ck_assert_msg(v <= bound, "%zu pools (%zu per namespace): the "
		    "status sweep visited %llu pools, more than %llu",
		    l->npools, l->per_ns, (unsigned long long)v,
		    (unsigned long long)bound);
	}
	/* A reload of the same config keeps every pool, in linear work. */
	f.d.pool_visits = 0;
	fixture_apply(&f, layout_config(l));
	ck_assert_uint_eq(f.d.npools, l->npools);
	ck_assert_msg(f.d.pool_visits <= bound, "%zu pools: a reload visited "
	    "%llu pools, more than %llu", l->npools,
	    (unsigned long long)f.d.pool_visits, (unsigned long long)bound);
	fixture_fini(&f);
}
END_TEST

/*
 * Busy pools in one contended namespace (quota: one replica a pool, each
 * needing 4 to 8), their needs changing at every sweep and all their
 * readings arriving in one loop iteration: the namespace computes its
 * shares once for all of them, at the loop's ev_prepare, not once per
 * pool (which cost N visits each, N^2 a sweep).
 */
START_TEST(test_busy_sweep_batched)
{
	static const size_t sizes[] = { 100, 1000, 10000 };
	struct layout	 l = { sizes[_i], sizes[_i], (long)sizes[_i] };
	struct scaler_result r;
	struct fixture	 f;
	uint64_t	 bound = (uint64_t)VISITS_PER_POOL * l.npools;
	size_t		 i;
	int		 k;

	fixture_init(&f);
	fixture_apply(&f, layout_config(&l));
	targets_known(&f.d);
	/* The loop runs below: no poll of the (absent) broker meanwhile. */
	for (i = 0; i < f.d.npools; i++)
		ev_timer_stop(f.loop, &f.d.pools[i]->poll_timer);
	for (k = 0; k < 4; k++) {
		f.d.pool_visits = 0;
		for (i = 0; i < f.d.npools; i++) {
			memset(&r, 0, sizeof r);
			r.ready = (double)((k % 2 ? 3 : 6) + (i + (size_t)k) %
			    3);
			pool_poll_done(f.d.pools[i]->scaler, &r, f.d.pools[i]);
		}
		/* What waits runs before the loop blocks. */
		ck_assert_ptr_nonnull(f.d.pool_defer_head);
		ev_run(f.loop, EVRUN_NOWAIT);
		ck_assert_ptr_null(f.d.pool_defer_head);
		ck_assert_msg(f.d.pool_visits <= bound, "%zu busy pools, "
		    "sweep %d: %llu visits, more than %llu", l.npools, k,
		    (unsigned long long)f.d.pool_visits,
		    (unsigned long long)bound);
		/* Each was evaluated, against the quota. */
		for (i = 0; i < f.d.npools; i++)
			ck_assert_int_eq(f.d.pools[i]->last.need,
			    (k % 2 ? 3 : 6) + (long)((i + (size_t)k) % 3));
	}
	fixture_fini(&f);
}
END_TEST

/*
 * Event-driven status: the pools whose AgentPool status would change are
 * the ones the CRD is told of (d->status_touches), so a status tick
 * makes those, not every pool's.  10,000 idle pools: after the first
 * sweep (each pool's first reading) a sweep changes no status; one that
 * brings every hundredth pool a backlog changes those 100.
 */
START_TEST(test_status_touches)
{
	static const struct layout l = { 10000, 10, 5 };
	struct scaler_result r;
	struct fixture	 f;
	uint64_t	 t0;
	size_t		 i;
	int		 k;

	fixture_init(&f);
	fixture_apply(&f, layout_config(&l));
	targets_known(&f.d);
	t0 = f.d.status_touches;
	sweep_polls(&f.d);
	ck_assert_uint_le(f.d.status_touches - t0, l.npools);
	for (k = 0; k < 2; k++) {
		t0 = f.d.status_touches;
		sweep_polls(&f.d);
		ck_assert_msg(f.d.status_touches == t0, "idle sweep %d: %llu "
		    "statuses changed", k,
		    (unsigned long long)(f.d.status_touches - t0));
	}
	t0 = f.d.status_touches;
	for (i = 0; i < l.npools; i += 100) {
		memset(&r, 0, sizeof r);
		r.ready = 3;
		pool_poll_done(f.d.pools[i]->scaler, &r, f.d.pools[i]);
	}
	pool_defer_flush(&f.d);
	ck_assert_uint_eq(f.d.status_touches - t0, l.npools / 100);
	fixture_fini(&f);
}
END_TEST

/* One poll of pool i with a backlog of ready tasks. */
static void
poll_one(struct daemon *d, size_t i, double ready)
{
	struct scaler_result r;

	memset(&r, 0, sizeof r);
	r.ready = ready;
	pool_poll_done(d->pools[i]->scaler, &r, d->pools[i]);
}

static long	 ref_quota_cap(struct pool *, double);

/*
 * The level a pool that needs little takes its need under, kept from the
 * last shares while needs only fall, is dropped when one rises: quota 6,
 * needs 1, 1, 10, 2 share 1, 1, 2, 2 (level 2); when the first pool's
 * need rises to 10 the level falls to 1 and the last pool, which needs 2,
 * may keep only 1.
 */
START_TEST(test_cap_level_falls)
{
	static const struct layout l = { 4, 4, 6 };
	static const double ready[] = { 1, 1, 10, 2 };
	struct fixture	 f;
	size_t		 i;

	fixture_init(&f);
	fixture_apply(&f, layout_config(&l));
	targets_known(&f.d);
	for (i = 0; i < 4; i++)
		poll_one(&f.d, i, ready[i]);
	pool_defer_flush(&f.d);
	ck_assert_int_eq(f.d.pools[3]->as.desired, 2);
	poll_one(&f.d, 0, 10);
	ck_assert_int_eq(ref_quota_cap(f.d.pools[3], 2), 1);
	ck_assert_int_eq(pool_quota_cap(f.d.pools[3], 2), 1);
	pool_defer_flush(&f.d);
	fixture_fini(&f);
}
END_TEST

/*
 * The cap as the old pool_quota_cap() computed it: every pool of the daemon
 * walked for the namespace's replicas and needs, then quota_share().
 */
static long
ref_quota_cap(struct pool *p, double backlog)
{
	struct daemon	*d = p->d;
	long		*need, *fair, used = 0, head, budget, cap, c;
	size_t		 i, n = 0, self = 0;

	for (i = 0; i < d->npools; i++) {
		const struct pool *q = d->pools[i];

		if (strcmp(q->cfg->ns, p->cfg->ns) == 0)
			used += q->as.desired > q->spec_replicas ?
			    q->as.desired : q->spec_replicas;
	}
	head = dispatcher_headroom(d->dispatch, d->config, p->cfg->ns, used);
	if (head < 0)
		return (-1);
	budget = head + used;
	need = xcalloc(d->npools, sizeof *need);
	fair = xcalloc(d->npools, sizeof *fair);
	for (i = 0; i < d->npools; i++) {
		const struct pool *q = d->pools[i];

		if (strcmp(q->cfg->ns, p->cfg->ns) != 0)
			continue;
		if (q == p)
			self = n;
		if (q == p)
			need[n++] = pool_need(q, backlog);
		else if (q->polls == 0)
			need[n++] = q->cfg->scaling.max_replicas;
		else
			need[n++] = q->source_read ? pool_need(q, q->ready +
			    (q->cfg->source.count_in_flight ? q->in_flight :
			    0)) : 0;
	}
	quota_share(budget, need, fair, n);
	c = p->as.desired > p->spec_replicas ? p->as.desired :
	    p->spec_replicas;
	cap = fair[self];
	if (cap > c + head)
		cap = c + head;
	free(need);
	free(fair);
	return (cap > 0 ? cap : 0);
}

/* Seven namespaces of uneven sizes; quotas on some, tight or loose. */
static struct config *
mixed_config(void)
{
	static const long quotas[] = { 6, -2, 25, 0, -2, 60, 13 };
	struct config	*c = config_new();
	char		 ns[32], name[32];
	size_t		 i, k;

	for (i = 0; i < 180; i++) {
		k = (i * i + 3 * i) % 7;
		snprintf(ns, sizeof ns, "team-%zu", k);
		snprintf(name, sizeof name, "p%zu", i);
		add_pool(c, ns, name, 1 + (long)(i % 9), i % 3 == 0);
	}
	for (k = 0; k < 7; k++) {
		snprintf(ns, sizeof ns, "team-%zu", k);
		if (quotas[k] >= 0)
			add_quota(c, ns, quotas[k]);
	}
	return (c);
}

static void
check_caps(struct daemon *d, int round)
{
	size_t	 i;
	double	 b;

	for (i = 0; i < d->npools; i++) {
		struct pool *p = d->pools[i];

		/* Its own reading, then a backlog it has not read. */
		b = p->ready + (p->cfg->source.count_in_flight ?
		    p->in_flight : 0);
		ck_assert_msg(pool_quota_cap(p, b) == ref_quota_cap(p, b),
		    "round %d, %s: cap %ld, the old walk %ld", round, p->id,
		    pool_quota_cap(p, b), ref_quota_cap(p, b));
		b = (double)((i * 7 + (size_t)round) % 13);
		ck_assert_msg(pool_quota_cap(p, b) == ref_quota_cap(p, b),
		    "round %d, %s, backlog %.0f: cap %ld, the old walk %ld",
		    round, p->id, b, pool_quota_cap(p, b),
		    ref_quota_cap(p, b));
	}
}

START_TEST(test_cap_same_as_walk)
{
	struct scaler_result r;
	struct fixture	 f;
	unsigned	 seed = 12345;
	size_t		 i;
	int		 round;

	fixture_init(&f);
	fixture_apply(&f, mixed_config());
	targets_known(&f.d);
	check_caps(&f.d, -1);	/* nothing polled yet */
	for (round = 0; round < 40; round++) {
		for (i = 0; i < f.d.npools; i++) {
			struct pool *p = f.d.pools[i];

			seed = seed * 1103515245u + 12345u;
			if ((seed >> 16) % 4 == 0)
				continue;	/* not polled this round */
			memset(&r, 0, sizeof r);
			if ((seed >> 8) % 11 == 0) {
				r.error = -AS_EPROTO;
				snprintf(r.errmsg, sizeof r.errmsg, "boom");
			}
			r.ready = (double)((seed >> 4) % 17);
			r.in_flight = (double)((seed >> 12) % 5);
			pool_poll_done(p->scaler, &r, p);
		}
		if (round % 2 == 0)
			check_caps(&f.d, round);	/* some evaluations wait */
		pool_defer_flush(&f.d);
		check_caps(&f.d, round);
		if (round % 10 == 9) {
			/*
			 * The targets moved (another writer, or the patches a
			 * leader made): a reload counts them again.
			 */
			for (i = 0; i < f.d.npools; i++)
				f.d.pools[i]->spec_replicas =
				    (long)((i + (size_t)round) % 5);
			fixture_apply(&f, mixed_config());
			check_caps(&f.d, round);
		}
	}
	fixture_fini(&f);
}
END_TEST

/*
 * The pool-level choice to write or hold (issue 18): shadow and paused
 * pools write nothing, paused-replicas holds N, a pool yields while an
 * HPA, a ScaledObject or an older AgentPool owns its target (the caller
 * sets conflict from owners_get() or the rival pool) or while its owners
 * are not listed yet.
 */
static const struct {
	const char		*name;
	struct pool_write_input	 in;
	enum pool_write		 want;
	long			 replicas;
} write_rows[] = {
	{ "scales", { 0, 0, 1, 0, -1, 5, 2, 1, -1 }, POOL_WRITE, 5 },
	{ "shadow writes nothing", { 1, 0, 1, 0, -1, 5, 2, 1, -1 },
	    POOL_HOLD_SHADOW, 5 },
	{ "shadow before conflict", { 1, 1, 1, 1, 3, 5, 2, 1, -1 },
	    POOL_HOLD_SHADOW, 5 },
	{ "paused writes nothing", { 0, 0, 1, 1, -1, 5, 2, 1, -1 },
	    POOL_HOLD_PAUSED, 5 },
	{ "paused-replicas holds N", { 0, 0, 1, 1, 3, 5, 2, 1, -1 },
	    POOL_WRITE, 3 },
	{ "paused-replicas already there", { 0, 0, 1, 1, 2, 5, 2, 1, -1 },
	    POOL_HOLD_SAME, 2 },
	{ "paused-replicas 0", { 0, 0, 1, 1, 0, 5, 2, 1, -1 }, POOL_WRITE, 0 },
	{ "yields to an owner (HPA, ScaledObject, older pool)",
	    { 0, 1, 1, 0, -1, 5, 2, 1, -1 }, POOL_HOLD_CONFLICT, 5 },
	{ "yields when paused too", { 0, 1, 1, 1, 3, 5, 2, 1, -1 },
	    POOL_HOLD_CONFLICT, 5 },
	{ "owners not listed yet", { 0, 0, 0, 0, -1, 5, 2, 1, -1 },
	    POOL_HOLD_UNKNOWN, 5 },
	{ "already there", { 0, 0, 1, 0, -1, 2, 2, 1, -1 }, POOL_HOLD_SAME, 2 },
	{ "standby", { 0, 0, 1, 0, -1, 5, 2, 0, -1 }, POOL_HOLD_STANDBY, 5 },
	{ "standby, paused-replicas", { 0, 0, 1, 1, 3, 5, 2, 0, -1 },
	    POOL_HOLD_STANDBY, 3 },
	{ "paused-replicas within the quota", { 0, 0, 1, 1, 3, 5, 2, 1, 4 },
	    POOL_WRITE, 3 },
	{ "paused-replicas never past the quota", { 0, 0, 1, 1, 100000, 5, 2,
	    1, 4 }, POOL_WRITE, 4 },
	{ "paused-replicas over the quota, target above it already",
	    { 0, 0, 1, 1, 100000, 5, 6, 1, 4 }, POOL_HOLD_SAME, 6 },
	{ "paused-replicas lowers a target above the quota",
	    { 0, 0, 1, 1, 5, 5, 8, 1, 4 }, POOL_WRITE, 5 },
};

START_TEST(test_write_choice)
{
	long	 want = -7;

	ck_assert_msg(pool_write_choice(&write_rows[_i].in, &want) ==
	    write_rows[_i].want, "%s", write_rows[_i].name);
	ck_assert_msg(want == write_rows[_i].replicas, "%s: %ld",
	    write_rows[_i].name, want);
}
END_TEST

static Suite *
pool_suite(void)
{
	Suite	*s = suite_create("pool");
	TCase	*tc = tcase_create("scale");

	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_sweep_linear, 0,
	    (int)(sizeof layouts / sizeof layouts[0]));
	tcase_add_loop_test(tc, test_busy_sweep_batched, 0, 3);
	tcase_add_test(tc, test_cap_same_as_walk);
	tcase_add_test(tc, test_cap_level_falls);
	tcase_add_test(tc, test_status_touches);
	tcase_add_loop_test(tc, test_write_choice, 0,
	    (int)(sizeof write_rows / sizeof write_rows[0]));
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(pool_suite()));
}
