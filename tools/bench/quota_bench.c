/*
 * quota_bench.c: what AgentQuota admission costs the dispatcher.
 *
 * Builds one namespace with 100,000 live tasks (5,000 trees of 20, each a
 * root with children and grandchildren) under a quota with every limit on
 * but set wide enough that the candidates pass all of them, so every
 * decision walks the whole list of checks.  Then times, with
 * clock_gettime(CLOCK_MONOTONIC) around a bounded loop:
 *
 *   quota_check() alone over a fixed set of 4,096 candidates (80 %
 *   descendants of random live tasks, 20 % new roots), the clock passed in
 *   advancing 1 ms a decision (so trees are charged and buckets refilled);
 *
 *   check + admit + release of the same candidates (the dispatcher's cycle
 *   for a task that comes and goes while 100,000 others stay).
 *
 * Memory per live task is the growth of glibc's allocated bytes
 * (mallinfo2().uordblks, which counts malloc headers and padding) from an
 * empty namespace to 100,000 admitted tasks, divided by 100,000: task
 * records, tree records and both hash tables.  The heap is read again
 * around the check loop to show that checking allocates nothing.
 *
 * Each loop runs three times; the median rate is printed with the others.
 *
 * usage: quota_bench [CHECKS [CYCLES]]   (defaults 5,000,000 and 2,000,000)
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentscaler/rt/common.h"
#include "scheduler/config.h"
#include "scheduler/quota.h"

#define TREES		5000
#define PER_TREE	20
#define LIVE		(TREES * PER_TREE)
#define CANDIDATES	4096
#define REPS		3

struct cand {
	char			 id[32];
	char			 parent[32];
	char			 root[32];
	struct quota_task	 t;
};

static struct quota_res	 reqs[] = { { "cpu", 0.5 },
    { "memory", 1073741824.0 } };

static double
mono(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

static size_t
heap_used(void)
{
	return (mallinfo2().uordblks);
}

static unsigned long rng = 88172645463325252UL;

static unsigned long
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (rng);
}

/* Task k of tree r: 0 the root, 1-4 its children, 5-19 grandchildren. */
static void
task_of(size_t r, size_t k, char *id, char *parent, char *root, size_t len,
    struct quota_task *t)
{
	snprintf(root, len, "root-%zu", r);
	if (k == 0)
		snprintf(id, len, "%s", root);
	else
		snprintf(id, len, "task-%zu-%zu", r, k);
	if (k == 0)
		;
	else if (k <= 4)
		snprintf(parent, len, "%s", root);
	else
		snprintf(parent, len, "task-%zu-%zu", r, 1 + (k - 5) % 4);
	memset(t, 0, sizeof *t);
	t->id = id;
	t->root = root;
	t->parent = k == 0 ? NULL : parent;
	t->depth = k == 0 ? 0 : k <= 4 ? 1 : 2;
	t->res = reqs;
	t->nres = AS_ARRAY_SIZE(reqs);
}

static int
cmp_double(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return (x < y ? -1 : x > y);
}

int
main(int argc, char **argv)
{
	struct quota_resource	 limits[] = {
		{ "cpu", "100k", 100000 },
		{ "memory", "200Ti", 200.0 * 1099511627776.0 },
	};
	struct quota_config	 q = {
		.max_sandboxes = 150000,
		.resources = limits,
		.nresources = AS_ARRAY_SIZE(limits),
		.max_depth = 5,
		.max_children_per_task = 8,
		.max_descendants_per_root = 32,
		.max_roots = 6000,
		.spawn_per_second = 10,
		.spawn_burst = 32,
		.sandbox_seconds_per_root = 1e9,
		.reserve_for_descendants = 0.1,
		.on_exceeded = QUOTA_ON_DEFER,
	};
	static struct cand	 cands[CANDIDATES];
	struct quota_ns		*ns;
	struct quota_decision	 d;
	struct quota_usage	 u;
	struct quota_task	 t;
	char			 id[32], parent[32], root[32];
	unsigned long		 nchecks = 5000000, ncycles = 2000000, i;
	unsigned long		 admitted[2] = { 0, 0 };
	double			 rate[2][REPS], now = 0, t0, el;
	size_t			 h0, h1, hc0, hc1, r, k;
	int			 rep;

	if (argc > 1)
		nchecks = strtoul(argv[1], NULL, 10);
	if (argc > 2)
		ncycles = strtoul(argv[2], NULL, 10);
	if (nchecks == 0 || ncycles == 0) {
		fprintf(stderr, "usage: quota_bench [CHECKS [CYCLES]] (both "
		    "positive)\n");
		return (2);
	}

	h0 = heap_used();
	ns = quota_ns_new(&q);
	for (r = 0; r < TREES; r++)
		for (k = 0; k < PER_TREE; k++) {
			task_of(r, k, id, parent, root, sizeof id, &t);
			quota_admit(ns, &t, now);
		}
	h1 = heap_used();
	quota_usage(ns, &u);
	if (u.tasks != LIVE || u.roots != TREES) {
		fprintf(stderr, "quota_bench: population is %ld tasks in %ld "
		    "trees, expected %d in %d\n", u.tasks, u.roots, LIVE,
		    TREES);
		return (1);
	}

	/* Candidates: 4 in 5 a child of a random live task, else a root. */
	for (i = 0; i < CANDIDATES; i++) {
		struct cand	*c = &cands[i];

		r = next_rand() % TREES;
		k = next_rand() % PER_TREE;
		memset(&c->t, 0, sizeof c->t);
		snprintf(c->id, sizeof c->id, "cand-%lu", i);
		c->t.id = c->id;
		c->t.res = reqs;
		c->t.nres = AS_ARRAY_SIZE(reqs);
		if (next_rand() % 5 == 0) {
			c->t.root = c->id;
			continue;
		}
		task_of(r, k, id, c->parent, c->root, sizeof id, &t);
		snprintf(c->parent, sizeof c->parent, "%s", t.id);
		c->t.parent = c->parent;
		c->t.root = c->root;
		c->t.depth = t.depth + 1;
	}

	hc0 = heap_used();
	for (rep = 0; rep < REPS; rep++) {
		admitted[0] = 0;
		t0 = mono();
		for (i = 0; i < nchecks; i++) {
			now += 0.001;
			quota_check(ns, &cands[i % CANDIDATES].t, now, &d);
			admitted[0] += d.verdict == QUOTA_ADMIT;
		}
		el = mono() - t0;
		rate[0][rep] = (double)nchecks / el;
	}
	hc1 = heap_used();

	for (rep = 0; rep < REPS; rep++) {
		admitted[1] = 0;
		t0 = mono();
		for (i = 0; i < ncycles; i++) {
			const struct quota_task	*c = &cands[i % CANDIDATES].t;

			now += 0.001;
			quota_check(ns, c, now, &d);
			if (d.verdict == QUOTA_ADMIT) {
				quota_admit(ns, c, now);
				quota_release(ns, c->id, now);
				admitted[1]++;
			}
		}
		el = mono() - t0;
		rate[1][rep] = (double)ncycles / el;
	}
	quota_usage(ns, &u);

	qsort(rate[0], REPS, sizeof rate[0][0], cmp_double);
	qsort(rate[1], REPS, sizeof rate[1][0], cmp_double);
	printf("quota_bench: %d live tasks (%d trees x %d, depth 0-2), "
	    "every limit on (maxSandboxes, resources cpu and memory, "
	    "maxDepth, maxChildrenPerTask, maxDescendantsPerRoot, maxRoots, "
	    "spawnRate, sandboxSecondsPerRoot, reserveForDescendants)\n",
	    LIVE, TREES, PER_TREE);
	printf("method: clock_gettime(CLOCK_MONOTONIC) around a bounded loop "
	    "over %d candidates (80%% descendants, 20%% new roots), %d runs, "
	    "median [min max]\n", CANDIDATES, REPS);
	printf("quota_check:               %lu decisions/run, %.2f M/s "
	    "[%.2f %.2f], %.0f ns each, %.1f%% admitted\n", nchecks,
	    rate[0][1] / 1e6, rate[0][0] / 1e6, rate[0][2] / 1e6,
	    1e9 / rate[0][1], 100.0 * (double)admitted[0] / (double)nchecks);
	printf("check + admit + release:   %lu cycles/run, %.2f M/s "
	    "[%.2f %.2f], %.0f ns each, %.1f%% admitted\n", ncycles,
	    rate[1][1] / 1e6, rate[1][0] / 1e6, rate[1][2] / 1e6,
	    1e9 / rate[1][1], 100.0 * (double)admitted[1] / (double)ncycles);
	printf("memory per live task:      %.1f bytes (mallinfo2 uordblks "
	    "delta %zu bytes over %d admits; task and tree records, hash "
	    "buckets, malloc overhead)\n", (double)(h1 - h0) / LIVE, h1 - h0,
	    LIVE);
	printf("heap change across checks: %ld bytes (mallinfo2 uordblks "
	    "before and after %d x %lu checks)\n", (long)hc1 - (long)hc0,
	    REPS, nchecks);
	printf("live after the cycles:     %ld tasks in %ld trees\n",
	    u.tasks, u.roots);
	quota_ns_free(ns);
	return (0);
}
