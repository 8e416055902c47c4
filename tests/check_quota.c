/*
 * check_quota.c: AgentQuota admission (quota.h).  Scenarios are tables of
 * steps (check, check-then-admit, admit, release, replicas, new config,
 * expectations on usage, sums, trees and headroom) run against one
 * struct quota_ns; each row's comment works out its numbers.  Two more
 * tests drive many tasks: a random spawn/release walk checked against a
 * naive model of children and tree sizes, and the hash tables through
 * growth and shrinking.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "scheduler/quantity.h"
#include "scheduler/config.h"
#include "scheduler/quota.h"
#include "util/testutil.h"

enum op {
	OP_END, OP_TRY, OP_CHECK, OP_ADMIT, OP_RELEASE, OP_FILL, OP_RELEASE_N,
	OP_REPLICAS, OP_CONFIG, OP_USAGE, OP_COUNTS, OP_USED, OP_TREE,
	OP_HEAD, OP_LIVE, OP_TOP
};

struct step {
	enum op			 op;
	double			 now;
	const char		*id;	/* FILL, RELEASE_N: "<id>-<k>" */
	const char		*parent;
	const char		*root;
	int			 depth;
	const char		*res;	/* "cpu=500m,memory=1Gi" */
	enum quota_verdict	 want;
	enum quota_reason	 reason;
	const char		*detail;	/* a substring; NULL: any */
	long			 a, b, c;
	double			 x, y;
	const struct quota_config *cfg;
};

/* check, then admit when admitted */
#define TRY(t, i, p, r, d, rs, v, why, det) { .op = OP_TRY, .now = (t), \
	.id = (i), .parent = (p), .root = (r), .depth = (d), .res = (rs), \
	.want = (v), .reason = (why), .detail = (det) }
#define CK(t, i, p, r, d, rs, v, why, det) { .op = OP_CHECK, .now = (t), \
	.id = (i), .parent = (p), .root = (r), .depth = (d), .res = (rs), \
	.want = (v), .reason = (why), .detail = (det) }
#define OK(t, i, p, r, d) TRY(t, i, p, r, d, NULL, QUOTA_ADMIT, NONE, "")
#define ROOT(t, i) OK(t, i, NULL, i, 0)
#define AD(t, i, p, r, d) { .op = OP_ADMIT, .now = (t), .id = (i), \
	.parent = (p), .root = (r), .depth = (d) }
#define RL(t, i) { .op = OP_RELEASE, .now = (t), .id = (i) }
/* admits n tasks "<pre>-0".."<pre>-<n-1>"; root NULL: each its own root */
#define FILL(t, pre, n, p, r, d, rs) { .op = OP_FILL, .now = (t), \
	.id = (pre), .a = (n), .parent = (p), .root = (r), .depth = (d), \
	.res = (rs) }
#define RLN(t, pre, n) { .op = OP_RELEASE_N, .now = (t), .id = (pre), \
	.a = (n) }
#define RP(n) { .op = OP_REPLICAS, .a = (n) }
#define CFG(q) { .op = OP_CONFIG, .cfg = (q) }
#define USAGE(sb, tasks, roots) { .op = OP_USAGE, .a = (sb), .b = (tasks), \
	.c = (roots) }
#define COUNTS(adm, def, rej) { .op = OP_COUNTS, .a = (adm), .b = (def), \
	.c = (rej) }
#define USED(name, v) { .op = OP_USED, .id = (name), .x = (v) }
/* live 0: the tree is gone */
#define TREE(t, r, live, total, depth, secs, tok) { .op = OP_TREE, \
	.now = (t), .id = (r), .a = (live), .b = (total), .c = (depth), \
	.x = (secs), .y = (tok) }
#define HEAD(n) { .op = OP_HEAD, .a = (n) }
#define LIVE(i, yes) { .op = OP_LIVE, .id = (i), .a = (yes) }
/* the roots quota_top_trees(n) returns, comma-separated */
#define TOP(t, n, list) { .op = OP_TOP, .now = (t), .a = (n), .id = (list) }
#define END { .op = OP_END }

#define ADMIT	QUOTA_ADMIT
#define DEFER	QUOTA_DEFER
#define REJECT	QUOTA_REJECT
#define NONE	QUOTA_R_NONE

/*
 * A quota: maxSandboxes, maxDepth, maxChildrenPerTask,
 * maxDescendantsPerRoot, maxRoots (-1: unlimited), spawnRate perSecond
 * (0: none) and burst, sandboxSecondsPerRoot (0: none),
 * reserveForDescendants, onExceeded, resources.
 */
#define QCFG(sb, dep, ch, de, ro, rate, burst, budget, resv, on, res, nres) \
	{ .max_sandboxes = (sb), .max_depth = (dep), \
	.max_children_per_task = (ch), .max_descendants_per_root = (de), \
	.max_roots = (ro), .spawn_per_second = (rate), .spawn_burst = (burst), \
	.sandbox_seconds_per_root = (budget), \
	.reserve_for_descendants = (resv), .on_exceeded = (on), \
	.resources = (res), .nresources = (nres) }
#define D	QUOTA_ON_DEFER
#define R	QUOTA_ON_REJECT

static struct quota_resource res_cpu2[] = { { "cpu", "2", 2 } };
static struct quota_resource res_cpu300m[] = { { "cpu", "300m", 0.3 } };
static struct quota_resource res_cpu_mem[] = { { "cpu", "4", 4 },
    { "memory", "8Gi", 8589934592.0 } };

static const struct quota_config q_sb2 =
    QCFG(2, -1, -1, -1, -1, 0, 1, 0, 0, D, NULL, 0);
static const struct quota_config q_sb2_reject =
    QCFG(2, -1, -1, -1, -1, 0, 1, 0, 0, R, NULL, 0);
static const struct quota_config q_sb5 =
    QCFG(5, -1, -1, -1, -1, 0, 1, 0, 0, D, NULL, 0);
static const struct quota_config q_depth1 =
    QCFG(-1, 1, -1, -1, -1, 0, 1, 0, 0, D, NULL, 0);
static const struct quota_config q_order =
    QCFG(4, 3, 1, 3, -1, 1, 1, 0, 0, D, res_cpu2, 1);
static const struct quota_config q_root_order =
    QCFG(10, -1, -1, -1, 1, 0, 1, 0, 0.2, D, res_cpu2, 1);
static const struct quota_config q_budget =
    QCFG(-1, -1, -1, -1, -1, 0, 1, 10, 0, D, NULL, 0);
static const struct quota_config q_charge =
    QCFG(-1, -1, -1, -1, -1, 0, 1, 1000, 0, D, NULL, 0);
static const struct quota_config q_spawn =
    QCFG(-1, -1, -1, -1, -1, 2, 3, 0, 0, D, NULL, 0);
static const struct quota_config q_children =
    QCFG(-1, -1, 2, -1, -1, 0, 1, 0, 0, D, NULL, 0);
static const struct quota_config q_reserve =
    QCFG(10, -1, -1, -1, -1, 0, 1, 0, 0.2, D, NULL, 0);
static const struct quota_config q_reserve25 =
    QCFG(10, -1, -1, -1, -1, 0, 1, 0, 0.25, R, NULL, 0);
static const struct quota_config q_res =
    QCFG(-1, -1, -1, -1, -1, 0, 1, 0, 0, D, res_cpu_mem, 2);
static const struct quota_config q_cpu300m =
    QCFG(-1, -1, -1, -1, -1, 0, 1, 0, 0, D, res_cpu300m, 1);
static const struct quota_config q_roots =
    QCFG(-1, -1, -1, -1, 2, 0, 1, 0, 0, D, NULL, 0);
static const struct quota_config q_desc =
    QCFG(-1, -1, -1, 3, -1, 0, 1, 0, 0, D, NULL, 0);
static const struct quota_config q_all_reject =
    QCFG(1, 1, 1, 2, 1, 1, 1, 5, 0, R, res_cpu2, 1);

struct scenario {
	const char			*name;
	const struct quota_config	*cfg;	/* NULL: no AgentQuota */
	struct step			 steps[44];
};

static const struct scenario scenarios[] = {
	{ "no quota admits everything and still tracks", NULL, {
		FILL(0, "r", 50, NULL, NULL, 0, "cpu=2"),
		CK(0, "deep", "r-0", "r-0", 100, "cpu=1000", ADMIT, NONE, ""),
		USAGE(50, 50, 50),
		USED("cpu", 100),
		HEAD(-1),
		RP(7),
		HEAD(-1),
		USAGE(57, 50, 50),
		TREE(3, "r-0", 1, 1, 0, 3, -1),
		END } },

	{ "maxSandboxes defers, with the numbers", &q_sb2, {
		ROOT(0, "r1"),
		ROOT(0, "r2"),
		TRY(0, "r3", NULL, "r3", 0, NULL, DEFER, QUOTA_R_MAX_SANDBOXES,
		    "2 of 2 sandboxes live (maxSandboxes 2)"),
		/* descendants are held by it too */
		TRY(0, "c1", "r1", "r1", 1, NULL, DEFER, QUOTA_R_MAX_SANDBOXES,
		    "2 of 2"),
		RL(1, "r1"),
		ROOT(1, "r3"),
		USAGE(2, 2, 2),
		COUNTS(3, 2, 0),
		END } },

	{ "onExceeded reject turns live limits into rejections",
	    &q_sb2_reject, {
		ROOT(0, "r1"),
		ROOT(0, "r2"),
		TRY(0, "r3", NULL, "r3", 0, NULL, REJECT, QUOTA_R_MAX_SANDBOXES,
		    "2 of 2 sandboxes live (maxSandboxes 2)"),
		COUNTS(2, 0, 1),
		END } },

	{ "replicas count against maxSandboxes; headroom", &q_sb5, {
		HEAD(5),
		RP(3),
		HEAD(2),
		ROOT(0, "r1"),
		HEAD(1),
		ROOT(0, "r2"),
		HEAD(0),
		CK(0, "r3", NULL, "r3", 0, NULL, DEFER, QUOTA_R_MAX_SANDBOXES,
		    "5 of 5 sandboxes live (maxSandboxes 5)"),
		USAGE(5, 2, 2),
		RP(10),		/* over the quota: headroom stays 0 */
		HEAD(0),
		CK(0, "r3", NULL, "r3", 0, NULL, DEFER, QUOTA_R_MAX_SANDBOXES,
		    "12 of 5"),
		RP(0),
		HEAD(3),
		RP(-4),		/* nonsense reads as none */
		USAGE(2, 2, 2),
		END } },

	{ "maxDepth is structural: rejected even under defer", &q_depth1, {
		ROOT(0, "r"),
		OK(0, "c", "r", "r", 1),
		TRY(0, "g", "c", "r", 2, NULL, REJECT, QUOTA_R_MAX_DEPTH,
		    "depth 2 > maxDepth 1"),
		LIVE("g", 0),
		COUNTS(2, 0, 1),
		END } },

	{ "a descendant: checks run in the documented order", &q_order, {
		/* maxSandboxes 4, maxDepth 3, maxChildren 1, maxDesc 3,
		 * spawn 1/s burst 1, cpu 2 */
		TRY(0, "r", NULL, "r", 0, "cpu=1", ADMIT, NONE, ""),
		TRY(0, "c1", "r", "r", 1, "cpu=1", ADMIT, NONE, ""),
		RP(2),		/* 4 of 4 sandboxes, cpu 2 of 2, bucket 0 */
		CK(0, "c2", "r", "r", 4, "cpu=3", REJECT, QUOTA_R_MAX_DEPTH,
		    "depth 4 > maxDepth 3"),
		CK(0, "c2", "r", "r", 1, "cpu=3", REJECT,
		    QUOTA_R_NEVER_FIT,
		    "asks 3 cpu, more than the whole quota of 2 (2)"),
		CK(0, "c2", "r", "r", 1, "cpu=1", DEFER, QUOTA_R_MAX_SANDBOXES,
		    "4 of 4 sandboxes live"),
		RP(0),
		CK(0, "c2", "r", "r", 1, "cpu=1", DEFER, QUOTA_R_RESOURCES,
		    "cpu: 2 in use + 1 asked > 2 (quota 2)"),
		CK(0, "c2", "r", "r", 1, NULL, DEFER,
		    QUOTA_R_MAX_CHILDREN,
		    "parent r has 1 of 1 live children (maxChildrenPerTask 1)"),
		CK(0, "c2", "c1", "r", 2, NULL, DEFER, QUOTA_R_SPAWN_RATE,
		    "spawn bucket empty (0 tokens; perSecond 1, burst 1): "
		    "next token in 1.000 s"),
		CK(0.5, "c2", "c1", "r", 2, NULL, DEFER, QUOTA_R_SPAWN_RATE,
		    "next token in 0.500 s"),
		TRY(1, "c2", "c1", "r", 2, NULL, ADMIT, NONE, ""),
		/* bucket 0.5 and tree full: the tree size is named first */
		CK(1.5, "c3", "c2", "r", 3, NULL, DEFER,
		    QUOTA_R_MAX_DESCENDANTS,
		    "tree r has 3 of 3 live tasks (maxDescendantsPerRoot 3; "
		    "the root counts)"),
		RL(2, "c1"),	/* c2 keeps its ghost parent c1 */
		TRY(2, "c3", "c2", "r", 3, NULL, ADMIT, NONE, ""),
		/* 2 live for 1 s, 3 for 1 s; c1 went, c3 came */
		TREE(2, "r", 3, 4, 3, 5, 0),
		END } },

	{ "a new root: checks run in the documented order", &q_root_order, {
		/* maxSandboxes 10, roots stop at 8, cpu 2, maxRoots 1 */
		TRY(0, "r", NULL, "r", 0, "cpu=1", ADMIT, NONE, ""),
		CK(0, "x", NULL, "x", 0, "cpu=2", DEFER, QUOTA_R_RESOURCES,
		    "cpu: 1 in use + 2 asked > 2"),
		CK(0, "x", NULL, "x", 0, NULL, DEFER, QUOTA_R_MAX_ROOTS,
		    "1 of 1 trees live (maxRoots 1)"),
		FILL(0, "c", 7, "r", "r", 1, NULL),
		CK(0, "x", NULL, "x", 0, "cpu=2", DEFER, QUOTA_R_RESERVED,
		    "8 of 10 sandboxes live; new roots stop at 8"),
		FILL(0, "d", 2, "r", "r", 1, NULL),
		CK(0, "x", NULL, "x", 0, "cpu=2", DEFER, QUOTA_R_MAX_SANDBOXES,
		    "10 of 10 sandboxes live"),
		CK(0, "x", NULL, "x", 0, "cpu=9", REJECT,
		    QUOTA_R_NEVER_FIT, "asks 9 cpu"),
		END } },

	{ "every limit on, onExceeded reject", &q_all_reject, {
		TRY(0, "r", NULL, "r", 0, "cpu=1", ADMIT, NONE, ""),
		TRY(0, "x", NULL, "x", 0, NULL, REJECT, QUOTA_R_MAX_SANDBOXES,
		    "1 of 1"),
		TRY(0, "c", "r", "r", 1, NULL, REJECT, QUOTA_R_MAX_SANDBOXES,
		    "1 of 1"),
		TRY(0, "g", "r", "r", 2, NULL, REJECT, QUOTA_R_MAX_DEPTH,
		    "depth 2 > maxDepth 1"),
		TRY(5, "c", "r", "r", 1, NULL, REJECT, QUOTA_R_BUDGET,
		    "tree r has used 5 of 5 sandbox-seconds "
		    "(sandboxSecondsPerRoot 5)"),
		COUNTS(1, 0, 4),
		END } },

	{ "sandbox-seconds budget is structural", &q_budget, {
		ROOT(0, "r"),
		OK(0, "c1", "r", "r", 1),
		/* 2 live x 4.75 s = 9.5 < 10 */
		CK(4.75, "c2", "r", "r", 1, NULL, ADMIT, NONE, ""),
		/* 2 x 5 = 10: reached */
		CK(5, "c2", "r", "r", 1, NULL, REJECT, QUOTA_R_BUDGET,
		    "tree r has used 10 of 10 sandbox-seconds "
		    "(sandboxSecondsPerRoot 10)"),
		RL(5, "c1"),
		CK(100, "c2", "r", "r", 1, NULL, REJECT,
		    QUOTA_R_BUDGET, "used 105 of 10"),
		/* another tree has its own budget */
		ROOT(100, "r2"),
		OK(100, "r2c", "r2", "r2", 1),
		END } },

	{ "sandbox-seconds are charged exactly, piecewise", &q_charge, {
		ROOT(0, "r"),			/* live 1 */
		OK(10, "c1", "r", "r", 1),	/* 10 x 1 = 10; live 2 */
		OK(15, "c2", "r", "r", 1),	/* + 5 x 2 = 20; live 3 */
		TREE(15, "r", 3, 3, 1, 20, -1),
		RL(20, "c1"),			/* + 5 x 3 = 35; live 2 */
		TREE(30, "r", 2, 3, 1, 55, -1),	/* + 10 x 2 */
		/* checks charge too, and charging twice adds nothing */
		CK(35, "x", "r", "r", 1, NULL, ADMIT, NONE, ""),
		TREE(35, "r", 2, 3, 1, 65, -1),
		TREE(35, "r", 2, 3, 1, 65, -1),
		/* time going backwards is ignored */
		TREE(30, "r", 2, 3, 1, 65, -1),
		RL(40, "r"),			/* + 5 x 2 = 75; live 1 */
		TREE(50, "r", 1, 3, 1, 85, -1),
		RL(50, "c2"),			/* the tree goes with it */
		TREE(50, "r", 0, 0, 0, 0, 0),
		USAGE(0, 0, 0),
		ROOT(60, "r"),			/* a fresh tree and budget */
		TREE(70, "r", 1, 1, 0, 10, -1),
		END } },

	{ "spawn bucket: burst, refill, next token", &q_spawn, {
		ROOT(0, "r"),			/* a root: a full bucket */
		TREE(0, "r", 1, 1, 0, 0, 3),
		OK(0, "c1", "r", "r", 1),
		OK(0, "c2", "r", "r", 1),
		OK(0, "c3", "r", "r", 1),
		TREE(0, "r", 4, 4, 1, 0, 0),
		/* 2 per second: a token every 0.5 s */
		TRY(0, "c4", "r", "r", 1, NULL, DEFER, QUOTA_R_SPAWN_RATE,
		    "tree r spawn bucket empty (0 tokens; perSecond 2, burst "
		    "3): next token in 0.500 s"),
		TRY(0.25, "c4", "r", "r", 1, NULL, DEFER, QUOTA_R_SPAWN_RATE,
		    "(0.5 tokens; perSecond 2, burst 3): next token in "
		    "0.250 s"),
		TREE(0.25, "r", 4, 4, 1, 1, 0.5),
		OK(0.5, "c4", "r", "r", 1),
		TREE(0.5, "r", 5, 5, 1, 2, 0),
		TREE(10, "r", 5, 5, 1, 49.5, 3),	/* capped at burst */
		OK(10, "g1", "c1", "r", 2),		/* the tree's bucket */
		TREE(10, "r", 6, 6, 2, 49.5, 2),
		/* roots never wait for tokens and start their own */
		ROOT(10, "r2"),
		TREE(10, "r2", 1, 1, 0, 0, 3),
		END } },

	{ "spawn bucket: admits past the check leave no debt", &q_spawn, {
		ROOT(0, "r"),
		AD(0, "c1", "r", "r", 1),
		AD(0, "c2", "r", "r", 1),
		AD(0, "c3", "r", "r", 1),
		AD(0, "c4", "r", "r", 1),
		AD(0, "c5", "r", "r", 1),
		TREE(0, "r", 6, 6, 1, 0, 0),
		OK(0.5, "c6", "r", "r", 1),
		END } },

	{ "live children per task, parents ending first", &q_children, {
		ROOT(0, "r"),
		OK(0, "c1", "r", "r", 1),
		OK(0, "c2", "r", "r", 1),
		TRY(0, "c3", "r", "r", 1, NULL, DEFER,
		    QUOTA_R_MAX_CHILDREN,
		    "parent r has 2 of 2 live children"),
		OK(0, "g1", "c1", "r", 2),	/* c1 has none */
		RL(1, "c1"),			/* g1 keeps a ghost c1 */
		OK(1, "c3", "r", "r", 1),
		RL(2, "r"),			/* r: ghost of c2, c3 */
		LIVE("r", 0),
		USAGE(3, 3, 1),
		/* the id again: joins tree r, with no children of its own */
		ROOT(3, "r"),
		/* 4 x 1 s + 4 x 1 s + 3 x 1 s; r, c1, c2, g1, c3, r */
		TREE(3, "r", 4, 6, 2, 11, -1),
		OK(3, "d1", "r", "r", 1),
		OK(3, "d2", "r", "r", 1),
		TRY(3, "d3", "r", "r", 1, NULL, DEFER,
		    QUOTA_R_MAX_CHILDREN, "parent r has 2 of 2"),
		RL(4, "c2"),
		RL(4, "c3"),			/* frees the ghost r */
		RL(4, "g1"),			/* frees the ghost c1 */
		TRY(4, "d3", "r", "r", 1, NULL, DEFER,
		    QUOTA_R_MAX_CHILDREN, "parent r has 2 of 2"),
		RL(5, "d1"),
		OK(5, "d3", "r", "r", 1),
		RL(6, "d2"),
		RL(6, "d3"),
		RL(6, "r"),
		USAGE(0, 0, 0),
		END } },

	{ "live tasks per tree, the root counted", &q_desc, {
		ROOT(0, "r"),
		OK(0, "c1", "r", "r", 1),
		OK(0, "g1", "c1", "r", 2),
		TRY(0, "c2", "r", "r", 1, NULL, DEFER,
		    QUOTA_R_MAX_DESCENDANTS,
		    "tree r has 3 of 3 live tasks"),
		ROOT(0, "s"),			/* other trees are not held */
		RL(1, "g1"),
		OK(1, "c2", "r", "r", 1),
		END } },

	{ "maxRoots counts live trees, not root tasks", &q_roots, {
		ROOT(0, "r1"),
		ROOT(0, "r2"),
		TRY(0, "r3", NULL, "r3", 0, NULL, DEFER, QUOTA_R_MAX_ROOTS,
		    "2 of 2 trees live (maxRoots 2)"),
		OK(0, "c1", "r1", "r1", 1),	/* descendants pass */
		RL(1, "r1"),			/* tree r1 lives on in c1 */
		TRY(1, "r3", NULL, "r3", 0, NULL, DEFER, QUOTA_R_MAX_ROOTS,
		    "2 of 2"),
		RL(2, "c1"),
		ROOT(2, "r3"),
		USAGE(2, 2, 2),
		END } },

	{ "reserveForDescendants: roots stop, descendants go on",
	    &q_reserve, {
		/* floor(10 x 0.8) = 8 */
		FILL(0, "r", 8, NULL, NULL, 0, NULL),
		TRY(0, "x", NULL, "x", 0, NULL, DEFER, QUOTA_R_RESERVED,
		    "8 of 10 sandboxes live; new roots stop at 8 "
		    "(reserveForDescendants 0.2 keeps 2 for descendants)"),
		OK(0, "c1", "r-0", "r-0", 1),
		OK(0, "c2", "r-1", "r-1", 1),
		TRY(0, "c3", "r-0", "r-0", 1, NULL, DEFER,
		    QUOTA_R_MAX_SANDBOXES, "10 of 10"),
		RL(1, "c1"),
		CK(1, "c3", "r-0", "r-0", 1, NULL, ADMIT, NONE, ""),
		CK(1, "x", NULL, "x", 0, NULL, DEFER, QUOTA_R_RESERVED,
		    "9 of 10"),
		RL(1, "c2"),
		CK(1, "x", NULL, "x", 0, NULL, DEFER, QUOTA_R_RESERVED,
		    "8 of 10"),
		RL(1, "r-7"),
		ROOT(1, "x"),
		END } },

	{ "reserveForDescendants rounds the root share down",
	    &q_reserve25, {
		/* floor(10 x 0.75) = 7 */
		FILL(0, "r", 7, NULL, NULL, 0, NULL),
		TRY(0, "x", NULL, "x", 0, NULL, REJECT, QUOTA_R_RESERVED,
		    "new roots stop at 7 (reserveForDescendants 0.25 keeps "
		    "3 for descendants)"),
		OK(0, "c1", "r-0", "r-0", 1),
		END } },

	{ "resources: sums by name against the quota", &q_res, {
		TRY(0, "r1", NULL, "r1", 0, "cpu=3,memory=4Gi", ADMIT, NONE,
		    ""),
		TRY(0, "r2", NULL, "r2", 0, "cpu=2", DEFER, QUOTA_R_RESOURCES,
		    "cpu: 3 in use + 2 asked > 4 (quota 4)"),
		/* no request: counts 0 */
		TRY(0, "r3", NULL, "r3", 0, NULL, ADMIT, NONE, ""),
		/* exactly the limit fits */
		TRY(0, "r4", NULL, "r4", 0, "cpu=1,memory=4Gi", ADMIT, NONE,
		    ""),
		USED("cpu", 4),
		USED("memory", 8589934592.0),
		TRY(0, "r5", NULL, "r5", 0, "memory=1", DEFER,
		    QUOTA_R_RESOURCES, "memory: 8589934592 in use + 1 asked > "
		    "8589934592 (quota 8Gi)"),
		TRY(0, "r6", NULL, "r6", 0, "cpu=5", REJECT,
		    QUOTA_R_NEVER_FIT,
		    "asks 5 cpu, more than the whole quota of 4 (4)"),
		TRY(0, "r6", NULL, "r6", 0, "memory=9Gi", REJECT,
		    QUOTA_R_NEVER_FIT, "(8Gi)"),
		/* names without a limit pass and are tracked */
		TRY(0, "r7", NULL, "r7", 0, "nvidia.com/gpu=2,"
		    "ephemeral-storage=1Gi", ADMIT, NONE, ""),
		USED("nvidia.com/gpu", 2),
		USED("ephemeral-storage", 1073741824.0),
		USED("hugepages-2Mi", 0),
		RL(1, "r1"),
		USED("cpu", 1),
		USED("memory", 4294967296.0),
		TRY(1, "r2", NULL, "r2", 0, "cpu=2", ADMIT, NONE, ""),
		RL(1, "r4"),
		RL(1, "r2"),
		RL(1, "r7"),
		USED("cpu", 0),
		USED("memory", 0),
		USED("nvidia.com/gpu", 0),
		COUNTS(5, 2, 2),
		END } },

	{ "resources: rounding never refuses what fits", &q_cpu300m, {
		/* 0.1 + 0.1 + 0.1 is 0.30000000000000004 in doubles */
		FILL(0, "f", 2, NULL, NULL, 0, "cpu=100m"),
		TRY(0, "f-2", NULL, "f-2", 0, "cpu=100m", ADMIT, NONE, ""),
		USED("cpu", 0.3),
		TRY(0, "g", NULL, "g", 0, "cpu=100m", DEFER, QUOTA_R_RESOURCES,
		    "cpu: 0.3 in use + 0.1 asked > 0.3 (quota 300m)"),
		TRY(0, "h", NULL, "h", 0, "cpu=0", ADMIT, NONE, ""),
		RLN(1, "f", 3),
		USED("cpu", 0),		/* exactly: no rounding dust left */
		TRY(1, "g", NULL, "g", 0, "cpu=300m", ADMIT, NONE, ""),
		END } },

	{ "admit is idempotent, unknown releases are ignored", &q_sb2, {
		ROOT(0, "r1"),
		AD(0, "r1", NULL, "r1", 0),
		USAGE(1, 1, 1),
		TREE(0, "r1", 1, 1, 0, 0, -1),
		ROOT(0, "r2"),
		/* a live task checked again keeps its sandbox */
		CK(0, "r1", NULL, "r1", 0, NULL, ADMIT, NONE, ""),
		CK(0, "r3", NULL, "r3", 0, NULL, DEFER, QUOTA_R_MAX_SANDBOXES,
		    "2 of 2"),
		RL(0, "nope"),
		USAGE(2, 2, 2),
		RL(0, "r1"),
		RL(0, "r1"),
		USAGE(1, 1, 1),
		LIVE("r1", 0),
		LIVE("r2", 1),
		END } },

	{ "a new config keeps usage and trees", NULL, {
		ROOT(0, "r1"),
		ROOT(0, "r2"),
		OK(0, "c1", "r1", "r1", 1),
		CFG(&q_sb2),
		CK(0, "r4", NULL, "r4", 0, NULL, DEFER, QUOTA_R_MAX_SANDBOXES,
		    "3 of 2 sandboxes live"),
		USAGE(3, 3, 2),
		HEAD(0),
		CFG(&q_sb5),
		HEAD(2),
		ROOT(0, "r4"),
		/* a spawn limit arriving starts every tree full */
		CFG(&q_spawn),
		TREE(0, "r1", 2, 2, 1, 0, 3),
		CFG(NULL),
		HEAD(-1),
		CK(0, "r5", NULL, "r5", 500, "cpu=1e9", ADMIT, NONE, ""),
		USAGE(4, 4, 3),
		END } },

	{ "top trees: live, then total, then name", NULL, {
		ROOT(0, "A"),
		OK(0, "A1", "A", "A", 1),
		OK(0, "A2", "A1", "A", 2),		/* A: 3 live, 3 */
		ROOT(0, "B"),
		FILL(0, "B", 4, "B", "B", 1, NULL),
		RL(0, "B-0"),
		RL(0, "B-1"),				/* B: 3 live, 5 */
		ROOT(0, "C"),				/* C: 1 live */
		ROOT(0, "D"),
		FILL(0, "D", 2, "D", "D", 1, NULL),	/* D: 3 live, 3 */
		TOP(0, 10, "B,A,D,C"),
		TOP(0, 3, "B,A,D"),
		TOP(0, 1, "B"),
		TOP(0, 0, ""),
		TREE(0, "A", 3, 3, 2, 0, -1),
		RL(1, "A2"),				/* deepest goes */
		TREE(1, "A", 2, 3, 1, 3, -1),
		TOP(1, 10, "B,D,A,C"),
		END } },
};

/* The task of a step; its "name=quantity,..." requests go into res. */
static void
step_task(const struct step *st, const char *id, struct quota_task *t,
    struct quota_res *res, size_t maxres, char *buf, size_t buflen)
{
	char	*p, *eq, *comma;

	memset(t, 0, sizeof *t);
	t->id = id;
	t->parent = st->parent;
	t->root = st->root != NULL ? st->root : id;
	t->depth = st->depth;
	t->res = res;
	if (st->res == NULL)
		return;
	ck_assert_uint_lt(strlen(st->res), buflen);
	as_strlcpy(buf, st->res, buflen);
	for (p = buf; p != NULL; p = comma) {
		if ((comma = strchr(p, ',')) != NULL)
			*comma++ = '\0';
		eq = strchr(p, '=');
		ck_assert_ptr_nonnull(eq);
		*eq = '\0';
		ck_assert_uint_lt(t->nres, maxres);
		res[t->nres].name = p;
		ck_assert_msg(quantity_parse(eq + 1,
		    &res[t->nres].value) == 0, "bad quantity %s", eq + 1);
		t->nres++;
	}
}

static int
step_tree(struct quota_ns *ns, double now, const char *root,
    struct quota_tree_info *out)
{
	struct quota_tree_info	 all[64];
	size_t			 i, n;

	n = quota_top_trees(ns, now, all, AS_ARRAY_SIZE(all));
	for (i = 0; i < n; i++)
		if (strcmp(all[i].root, root) == 0) {
			*out = all[i];
			return (1);
		}
	return (0);
}

START_TEST(test_scenario)
{
	const struct scenario	*sc = &scenarios[_i];
	const struct step	*st;
	struct quota_ns		*ns = quota_ns_new(sc->cfg);
	struct quota_task	 t;
	struct quota_res	 res[8];
	struct quota_decision	 d;
	struct quota_usage	 u;
	struct quota_tree_info	 ti, top[16];
	char			 names[256], id[64], list[256];
	size_t			 k, n;
	long			 i;
	int			 row;

	for (st = sc->steps; st->op != OP_END; st++) {
		row = (int)(st - sc->steps);
		switch (st->op) {
		case OP_TRY:
		case OP_CHECK:
			step_task(st, st->id, &t, res, AS_ARRAY_SIZE(res),
			    names, sizeof names);
			memset(&d, 0x55, sizeof d);
			quota_check(ns, &t, st->now, &d);
			quota_count(ns, d.verdict, d.reason);
			ck_assert_msg(d.verdict == st->want &&
			    d.reason == st->reason,
			    "%s, step %d (%s): want %d %s, got %d %s (%s)",
			    sc->name, row, st->id, st->want,
			    quota_reason_name(st->reason), d.verdict,
			    quota_reason_name(d.reason), d.detail);
			ck_assert_msg(st->detail == NULL ||
			    (st->detail[0] == '\0' ? d.detail[0] == '\0' :
			    strstr(d.detail, st->detail) != NULL),
			    "%s, step %d: detail \"%s\" lacks \"%s\"",
			    sc->name, row, d.detail, st->detail);
			if (st->op == OP_TRY && d.verdict == QUOTA_ADMIT) {
				quota_admit(ns, &t, st->now);
				ck_assert(quota_live(ns, st->id));
			}
			break;
		case OP_ADMIT:
			step_task(st, st->id, &t, res, AS_ARRAY_SIZE(res),
			    names, sizeof names);
			quota_admit(ns, &t, st->now);
			break;
		case OP_RELEASE:
			quota_release(ns, st->id, st->now);
			ck_assert(!quota_live(ns, st->id));
			break;
		case OP_FILL:
			for (i = 0; i < st->a; i++) {
				snprintf(id, sizeof id, "%s-%ld", st->id, i);
				step_task(st, id, &t, res, AS_ARRAY_SIZE(res),
				    names, sizeof names);
				quota_admit(ns, &t, st->now);
			}
			break;
		case OP_RELEASE_N:
			for (i = 0; i < st->a; i++) {
				snprintf(id, sizeof id, "%s-%ld", st->id, i);
				quota_release(ns, id, st->now);
			}
			break;
		case OP_REPLICAS:
			quota_set_replicas(ns, st->a);
			break;
		case OP_CONFIG:
			quota_ns_set_config(ns, st->cfg);
			break;
		case OP_USAGE:
			quota_usage(ns, &u);
			ck_assert_msg(u.sandboxes == st->a &&
			    u.tasks == st->b && u.roots == st->c, "%s, step "
			    "%d: usage %ld/%ld/%ld, want %ld/%ld/%ld",
			    sc->name, row, u.sandboxes, u.tasks, u.roots,
			    st->a, st->b, st->c);
			ck_assert_int_eq(u.replicas, u.sandboxes - u.tasks);
			break;
		case OP_COUNTS:
			quota_usage(ns, &u);
			ck_assert_msg(u.admitted == (uint64_t)st->a &&
			    u.deferred == (uint64_t)st->b &&
			    u.rejected == (uint64_t)st->c, "%s, step %d: "
			    "counts %ju/%ju/%ju", sc->name, row,
			    (uintmax_t)u.admitted, (uintmax_t)u.deferred,
			    (uintmax_t)u.rejected);
			break;
		case OP_USED:
			ck_assert_msg(fabs(quota_used(ns, st->id) - st->x) <=
			    1e-12 * st->x, "%s, step %d: %s used %.17g, want "
			    "%.17g", sc->name, row, st->id,
			    quota_used(ns, st->id), st->x);
			break;
		case OP_TREE:
			if (st->a == 0) {
				ck_assert_msg(!step_tree(ns, st->now, st->id,
				    &ti), "%s, step %d: tree %s still there",
				    sc->name, row, st->id);
				break;
			}
			ck_assert_msg(step_tree(ns, st->now, st->id, &ti),
			    "%s, step %d: no tree %s", sc->name, row, st->id);
			ck_assert_msg(ti.live == st->a && ti.total == st->b &&
			    ti.max_depth == st->c && ti.seconds == st->x &&
			    fabs(ti.tokens - st->y) < 1e-9, "%s, step %d: "
			    "tree %s live %ld total %ld depth %d seconds %.17g "
			    "tokens %.17g", sc->name, row, st->id, ti.live,
			    ti.total, ti.max_depth, ti.seconds, ti.tokens);
			break;
		case OP_HEAD:
			ck_assert_msg(quota_headroom(ns) == st->a, "%s, step "
			    "%d: headroom %ld, want %ld", sc->name, row,
			    quota_headroom(ns), st->a);
			break;
		case OP_LIVE:
			ck_assert_int_eq(quota_live(ns, st->id), st->a);
			break;
		case OP_TOP:
			n = quota_top_trees(ns, st->now, top, (size_t)st->a);
			list[0] = '\0';
			for (k = 0; k < n; k++) {
				size_t	 len = strlen(list);

				snprintf(list + len, sizeof list - len, "%s%s",
				    k > 0 ? "," : "", top[k].root);
			}
			ck_assert_msg(strcmp(list, st->id) == 0, "%s, step "
			    "%d: top %s, want %s", sc->name, row, list, st->id);
			break;
		case OP_END:
			break;
		}
	}
	quota_ns_free(ns);
}
END_TEST

/* Water-filling rows: headroom, wants, the caps they get. */
static const struct {
	long	 headroom;
	size_t	 n;
	long	 want[5];
	long	 cap[5];
} share_rows[] = {
	/* more headroom than wants: everyone gets what it asked */
	{ 100, 3, { 3, 5, 2 }, { 3, 5, 2 } },
	/* exactly enough */
	{ 10, 3, { 3, 5, 2 }, { 3, 5, 2 } },
	/* equal wants, equal shares */
	{ 6, 3, { 10, 10, 10 }, { 2, 2, 2 } },
	/* a remainder goes one each in index order */
	{ 7, 3, { 10, 10, 10 }, { 3, 2, 2 } },
	{ 2, 3, { 5, 5, 5 }, { 1, 1, 0 } },
	/* smallest wants first; what they leave goes to the others */
	{ 10, 3, { 1, 8, 8 }, { 1, 5, 4 } },
	{ 10, 3, { 20, 3, 2 }, { 5, 3, 2 } },
	{ 12, 4, { 1, 2, 30, 30 }, { 1, 2, 5, 4 } },
	/* zero headroom: nothing */
	{ 0, 3, { 4, 1, 7 }, { 0, 0, 0 } },
	/* pools wanting nothing (or less) take no share */
	{ 5, 3, { 0, -3, 9 }, { 0, 0, 5 } },
	{ 5, 2, { 0, 0 }, { 0, 0 } },
	/* unlimited: cap = want */
	{ -1, 3, { 4, 0, 700 }, { 4, 0, 700 } },
	{ -1, 1, { -2 }, { 0 } },
	{ 9, 0, { 0 }, { 0 } },
};

START_TEST(test_share)
{
	long	 cap[5] = { -9, -9, -9, -9, -9 };
	size_t	 i;

	quota_share(share_rows[_i].headroom, share_rows[_i].want, cap,
	    share_rows[_i].n);
	for (i = 0; i < share_rows[_i].n; i++)
		ck_assert_msg(cap[i] == share_rows[_i].cap[i], "row %d: "
		    "cap[%zu] %ld, want %ld", _i, i, cap[i],
		    share_rows[_i].cap[i]);
	for (; i < 5; i++)
		ck_assert_int_eq(cap[i], -9);
}
END_TEST

/*
 * quota_share() as it was before it found its level by sorting: rounds of
 * equal shares, then the last units one each in index order.  The
 * reference the sorted version must equal.
 */
static void
ref_quota_share(long headroom, const long *want, long *cap, size_t n)
{
	long	 left = headroom, share, give;
	size_t	 i, active = 0;

	for (i = 0; i < n; i++) {
		cap[i] = headroom < 0 && want[i] > 0 ? want[i] : 0;
		if (want[i] > 0)
			active++;
	}
	if (headroom < 0)
		return;
	while (active > 0 && left > 0) {
		share = left / (long)active;
		for (i = 0; i < n && left > 0; i++) {
			if (want[i] <= cap[i])
				continue;
			give = want[i] - cap[i];
			if (share > 0 && give > share)
				give = share;
			else if (share == 0)
				give = 1;
			cap[i] += give;
			left -= give;
			if (cap[i] == want[i])
				active--;
		}
	}
}

static unsigned long share_seed;

static unsigned long
share_rand(unsigned long below)
{
	share_seed = share_seed * 6364136223846793005UL +
	    1442695040888963407UL;
	return ((share_seed >> 17) % below);
}

/*
 * Random wants (ties, zeros, negatives, small and huge values) and
 * headrooms (unlimited, none, short of the sum, about it, beyond it): the
 * sorted quota_share() gives what the rounds gave, cap for cap.
 */
START_TEST(test_share_same_as_rounds)
{
	static const long scale[] = { 3, 10, 1000, 100000, 1L << 40 };
	long		 want[300], cap[300], ref[300], sum, level;
	size_t		 n, i;
	int		 round;

	share_seed = 1000003UL * (unsigned long)(_i + 1);
	for (round = 0; round < 200; round++) {
		long	 top = scale[share_rand(AS_ARRAY_SIZE(scale))];
		long	 head;

		n = share_rand(AS_ARRAY_SIZE(want) + 1);
		for (i = 0, sum = 0; i < n; i++) {
			want[i] = (long)share_rand((unsigned long)top + 1);
			if (share_rand(8) == 0)
				want[i] = -want[i];	/* wants nothing */
			if (i > 0 && share_rand(4) == 0)
				want[i] = want[share_rand(i)];	/* a tie */
			if (want[i] > 0)
				sum += want[i];
		}
		switch (share_rand(5)) {
		case 0:
			head = -1;
			break;
		case 1:
			head = (long)share_rand(n + 2);
			break;
		case 2:
			head = sum + (long)share_rand(n + 2) - (long)n / 2;
			break;
		case 3:
			head = sum * 2 + 1;
			break;
		default:
			head = sum > 0 ? (long)share_rand((unsigned long)sum) :
			    0;
		}
		if (head < -1)
			head = 0;
		ref_quota_share(head, want, ref, n);
		level = quota_share(head, want, cap, n);
		for (i = 0; i < n; i++) {
			ck_assert_msg(cap[i] == ref[i], "seed %d round %d: n %zu "
			    "headroom %ld, cap[%zu] %ld, the rounds gave %ld",
			    _i, round, n, head, i, cap[i], ref[i]);
			/* The level it returns: min(want, level), +1 at most. */
			if (want[i] > 0)
				ck_assert(cap[i] - (want[i] < level ? want[i] :
				    level) <= (want[i] > level ? 1 : 0));
		}
	}
}
END_TEST

/*
 * quota_share()'s steps (quota_share_steps counts each want visited and
 * each comparison of the sort) stay within a constant times n log2 n for
 * distinct wants, in 1,000 to 64,000 pools: a count, so a quadratic
 * version fails however fast the machine is.
 */
START_TEST(test_share_steps)
{
	static const size_t sizes[] = { 1000, 4000, 16000, 64000 };
	long		*want, *cap, sum;
	size_t		 k, i, n, lg;
	uint64_t	 bound;

	for (k = 0; k < AS_ARRAY_SIZE(sizes); k++) {
		n = sizes[k];
		want = xcalloc(n, sizeof *want);
		cap = xcalloc(n, sizeof *cap);
		/* Distinct wants in a shuffled order, one short of all. */
		for (i = 0, sum = 0; i < n; i++) {
			want[i] = (long)((i * 7919) % n) * 3 + 1;
			sum += want[i];
		}
		for (lg = 1; ((size_t)1 << lg) < n; lg++)
			;
		bound = (uint64_t)n * (lg + 4) * 2;
		quota_share_steps = 0;
		quota_share(sum - 1, want, cap, n);
		ck_assert_msg(quota_share_steps <= bound, "%zu pools: %llu "
		    "steps, more than %llu", n,
		    (unsigned long long)quota_share_steps,
		    (unsigned long long)bound);
		quota_share_steps = 0;
		quota_share(sum / 3, want, cap, n);
		ck_assert_msg(quota_share_steps <= bound, "%zu pools, a third "
		    "of the sum: %llu steps, more than %llu", n,
		    (unsigned long long)quota_share_steps,
		    (unsigned long long)bound);
		free(want);
		free(cap);
	}
}
END_TEST

/*
 * A random walk of spawns and releases, with maxChildrenPerTask 3 and
 * maxDescendantsPerRoot 6: every check must agree with a naive model that
 * counts by scanning, parents often end before their children, and
 * everything drains to zero.
 */
#define WALK_MAX	4000

struct mtask {
	char	 id[16];
	int	 parent;	/* index, -1 for a root */
	int	 root;
	int	 depth;
	int	 live;
};

static unsigned long walk_seed = 12345;

static unsigned
walk_rand(void)
{
	walk_seed = walk_seed * 6364136223846793005UL + 1442695040888963407UL;
	return ((unsigned)(walk_seed >> 33));
}

START_TEST(test_random_walk)
{
	static const struct quota_config q = QCFG(-1, -1, 3, 6, -1, 0, 1, 0,
	    0, D, NULL, 0);
	static struct mtask	 m[WALK_MAX];
	struct quota_ns		*ns = quota_ns_new(&q);
	struct quota_task	 t;
	struct quota_decision	 d;
	struct quota_usage	 u;
	int			 n = 0, i, j, p, kids, size, nlive = 0, roots;
	enum quota_reason	 want;

	while (n < WALK_MAX) {
		if (nlive > 0 && walk_rand() % 3 == 0) {
			/* release a random live task */
			for (i = (int)(walk_rand() % (unsigned)n); !m[i].live;
			    i = (i + 1) % n)
				;
			quota_release(ns, m[i].id, n);
			m[i].live = 0;
			nlive--;
			continue;
		}
		/* spawn: a root, or a child of a random live task */
		p = -1;
		if (nlive > 0 && walk_rand() % 4 != 0)
			for (p = (int)(walk_rand() % (unsigned)n); !m[p].live;
			    p = (p + 1) % n)
				;
		i = n++;
		snprintf(m[i].id, sizeof m[i].id, "w%d", i);
		m[i].parent = p;
		m[i].root = p < 0 ? i : m[p].root;
		m[i].depth = p < 0 ? 0 : m[p].depth + 1;
		kids = size = 0;
		for (j = 0; j < i; j++) {
			if (!m[j].live)
				continue;
			if (p >= 0 && m[j].parent == p)
				kids++;
			if (m[j].root == m[i].root)
				size++;
		}
		want = p >= 0 && kids >= 3 ? QUOTA_R_MAX_CHILDREN :
		    size >= 6 ? QUOTA_R_MAX_DESCENDANTS : QUOTA_R_NONE;
		memset(&t, 0, sizeof t);
		t.id = m[i].id;
		t.parent = p >= 0 ? m[p].id : NULL;
		t.root = m[m[i].root].id;
		t.depth = m[i].depth;
		quota_check(ns, &t, i, &d);
		ck_assert_msg(d.reason == want, "step %d: want \"%s\", got "
		    "\"%s\" (%s)", i, quota_reason_name(want),
		    quota_reason_name(d.reason), d.detail);
		if (d.verdict == QUOTA_ADMIT) {
			quota_admit(ns, &t, i);
			m[i].live = 1;
			nlive++;
		}
		quota_usage(ns, &u);
		ck_assert_int_eq(u.tasks, nlive);
	}
	/* live trees: distinct roots of live tasks, root or not */
	for (i = 0; i < n; i++)
		m[i].depth = 0;
	for (roots = 0, i = 0; i < n; i++)
		if (m[i].live && m[m[i].root].depth++ == 0)
			roots++;
	quota_usage(ns, &u);
	ck_assert_int_eq(u.roots, roots);
	/* drain in a random order */
	while (nlive > 0) {
		for (i = (int)(walk_rand() % (unsigned)n); !m[i].live;
		    i = (i + 1) % n)
			;
		quota_release(ns, m[i].id, n);
		m[i].live = 0;
		nlive--;
	}
	quota_usage(ns, &u);
	ck_assert_int_eq(u.tasks, 0);
	ck_assert_int_eq(u.roots, 0);
	quota_ns_free(ns);
}
END_TEST

/*
 * 20,000 tasks in 1,000 trees through table growth, then out in a
 * different order through shrinking; lookups stay right throughout, and
 * freeing a full namespace (ghosts included) leaks nothing.
 */
START_TEST(test_many)
{
	static const struct quota_config q = QCFG(-1, -1, -1, -1, -1, 0, 1,
	    0, 0, D, res_cpu2, 1);
	struct quota_ns		*ns = quota_ns_new(&q);
	struct quota_task	 t;
	struct quota_res	 r = { "memory", 2 };
	struct quota_usage	 u;
	char			 id[32], root[32], parent[32];
	long			 i;

	for (i = 0; i < 20000; i++) {
		snprintf(id, sizeof id, "task-%ld", i);
		snprintf(root, sizeof root, "task-%ld", i / 20 * 20);
		snprintf(parent, sizeof parent, "task-%ld", i - 1);
		memset(&t, 0, sizeof t);
		t.id = id;
		t.root = root;
		t.parent = i % 20 == 0 ? NULL : parent;
		t.depth = (int)(i % 20);
		t.res = &r;
		t.nres = 1;
		quota_admit(ns, &t, 0);
	}
	quota_usage(ns, &u);
	ck_assert_int_eq(u.tasks, 20000);
	ck_assert_int_eq(u.roots, 1000);
	ck_assert(quota_used(ns, "memory") == 40000);
	for (i = 0; i < 20000; i++) {
		snprintf(id, sizeof id, "task-%ld", i);
		ck_assert(quota_live(ns, id));
	}
	ck_assert(!quota_live(ns, "task-20000"));
	/* odd ones out: each leaves a ghost parent behind */
	for (i = 1; i < 20000; i += 2) {
		snprintf(id, sizeof id, "task-%ld", i);
		quota_release(ns, id, 10);
	}
	quota_usage(ns, &u);
	ck_assert_int_eq(u.tasks, 10000);
	ck_assert(quota_used(ns, "memory") == 20000);
	for (i = 0; i < 20000; i++) {
		snprintf(id, sizeof id, "task-%ld", i);
		ck_assert_int_eq(quota_live(ns, id), i % 2 == 0);
	}
	/* release most evens from the top down, then free with the rest */
	for (i = 19998; i >= 2000; i -= 2) {
		snprintf(id, sizeof id, "task-%ld", i);
		quota_release(ns, id, 20);
	}
	quota_usage(ns, &u);
	ck_assert_int_eq(u.tasks, 1000);
	ck_assert_int_eq(u.roots, 100);
	for (i = 0; i < 2000; i += 2) {
		snprintf(id, sizeof id, "task-%ld", i);
		ck_assert(quota_live(ns, id));
	}
	quota_ns_free(ns);
	quota_ns_free(NULL);
}
END_TEST

/*
 * Names without a limit are tracked 64 at a time (a producer inventing
 * names cannot grow the table without bound); limited names always are.
 */
START_TEST(test_tracked_names)
{
	static const struct quota_config q = QCFG(-1, -1, -1, -1, -1, 0, 1,
	    0, 0, D, res_cpu2, 1);
	struct quota_ns		*ns = quota_ns_new(&q);
	struct quota_task	 t;
	struct quota_res	 r[70], cpu = { "cpu", 1 };
	char			 names[70][16];
	int			 i;

	for (i = 0; i < 70; i++) {
		snprintf(names[i], sizeof names[i], "r%d", i);
		r[i].name = names[i];
		r[i].value = 1;
	}
	memset(&t, 0, sizeof t);
	t.id = "many";
	t.res = r;
	t.nres = 70;
	quota_admit(ns, &t, 0);
	ck_assert(quota_used(ns, "r63") == 1);
	ck_assert(quota_used(ns, "r64") == 0);
	t.id = "cpu";
	t.res = &cpu;
	t.nres = 1;
	quota_admit(ns, &t, 0);
	ck_assert(quota_used(ns, "cpu") == 1);
	quota_release(ns, "many", 1);
	ck_assert(quota_used(ns, "r0") == 0);
	t.id = "late";
	t.res = &r[69];
	quota_admit(ns, &t, 1);
	ck_assert(quota_used(ns, "r69") == 1);
	/* dropping the limit on cpu keeps its live sum */
	quota_ns_set_config(ns, NULL);
	ck_assert(quota_used(ns, "cpu") == 1);
	quota_ns_free(ns);
}
END_TEST

/*
 * Budget persistence (issue 12, defect 8): a tree with a budget is due
 * for a save once per interval from its start; a restored charge raises
 * the tree's, never lowers it, and counts against the budget.  Without a
 * budget nothing is saved.
 */
START_TEST(test_budget_save_restore)
{
	struct quota_ns		*ns = quota_ns_new(&q_budget);
	struct quota_ns		*free_ns = quota_ns_new(NULL);
	struct quota_task	 t = { .id = "r", .root = "r" };
	struct quota_task	 c = { .id = "c", .parent = "r", .root = "r",
	    .depth = 1 };
	struct quota_decision	 d;
	struct quota_tree_info	 ti;
	double			 secs = -1;

	quota_admit(ns, &t, 100);
	ck_assert_int_eq(quota_tree_save_due(ns, "r", 101, 3, &secs), 0);
	ck_assert_int_eq(quota_tree_save_due(ns, "r", 103, 3, &secs), 1);
	ck_assert(secs == 3);
	ck_assert_int_eq(quota_tree_save_due(ns, "r", 105, 3, &secs), 0);
	ck_assert_int_eq(quota_tree_save_due(ns, "nope", 200, 3, &secs), 0);
	quota_tree_restore(ns, "r", 4, 105);	/* 5 charged: kept */
	ck_assert_uint_eq(quota_top_trees(ns, 105, &ti, 1), 1);
	ck_assert(ti.seconds == 5);
	quota_tree_restore(ns, "r", 9.5, 105);
	ck_assert_uint_eq(quota_top_trees(ns, 105, &ti, 1), 1);
	ck_assert(ti.seconds == 9.5);
	quota_check(ns, &c, 105, &d);
	ck_assert_int_eq(d.verdict, QUOTA_ADMIT);
	quota_check(ns, &c, 105.5, &d);		/* 10 of 10 */
	ck_assert_int_eq(d.verdict, QUOTA_REJECT);
	ck_assert_int_eq(d.reason, QUOTA_R_BUDGET);
	quota_tree_restore(ns, "nope", 1, 105);	/* no tree: nothing */

	quota_admit(free_ns, &t, 100);
	ck_assert_int_eq(quota_tree_save_due(free_ns, "r", 1000, 3, &secs),
	    0);
	quota_ns_free(free_ns);
	quota_ns_free(ns);
}
END_TEST

/*
 * The one table of reasons: every reason's wire name (Events, /explain,
 * dead letters and their metrics labels must not change), its Event
 * reason and whether it waits for the whole namespace.  A row per reason;
 * test_reason_rows checks that none is missing.
 */
static const struct {
	enum quota_reason	 r;
	const char		*name;
	const char		*event;
	int			 wide;
} reason_rows[] = {
	{ QUOTA_R_NONE, "", NULL, 0 },
	{ QUOTA_R_MAX_DEPTH, "cascade.maxDepth", "CascadeRejected", 0 },
	{ QUOTA_R_UNKNOWN_PARENT, "cascade.unknownParent", "CascadeRejected",
	    0 },
	{ QUOTA_R_BUDGET, "budget.sandboxSeconds", "QuotaExceeded", 0 },
	{ QUOTA_R_NEVER_FIT, "quota.resourcesNeverFit", "QuotaExceeded", 1 },
	{ QUOTA_R_MAX_SANDBOXES, "quota.maxSandboxes", "QuotaExceeded", 1 },
	{ QUOTA_R_RESERVED, "quota.reserved", "QuotaExceeded", 1 },
	{ QUOTA_R_RESOURCES, "quota.resources", "QuotaExceeded", 1 },
	{ QUOTA_R_MAX_ROOTS, "cascade.maxRoots", "CascadeRejected", 0 },
	{ QUOTA_R_MAX_CHILDREN, "cascade.maxChildrenPerTask",
	    "CascadeRejected", 0 },
	{ QUOTA_R_MAX_DESCENDANTS, "cascade.maxDescendantsPerRoot",
	    "CascadeRejected", 0 },
	{ QUOTA_R_SPAWN_RATE, "cascade.spawnRate", "CascadeRejected", 0 },
	{ QUOTA_R_TEMPLATE_UNKNOWN, "sandbox.templateUnknown", NULL, 0 },
	/* out of range: read as none */
	{ QUOTA_R_COUNT, "", NULL, 0 },
	{ (enum quota_reason)-1, "", NULL, 0 },
};

START_TEST(test_reason_table)
{
	enum quota_reason	 r = reason_rows[_i].r;
	const char		*ev = quota_reason_event(r);

	ck_assert_str_eq(quota_reason_name(r), reason_rows[_i].name);
	ck_assert_msg(reason_rows[_i].event == NULL ? ev == NULL :
	    ev != NULL && strcmp(ev, reason_rows[_i].event) == 0,
	    "%s: event %s, want %s", reason_rows[_i].name, ev,
	    reason_rows[_i].event);
	ck_assert_int_eq(quota_reason_namespace_wide(r),
	    reason_rows[_i].wide);
}
END_TEST

/* Every reason has a row above, and no two share a wire name. */
START_TEST(test_reason_rows)
{
	size_t	 i, j;
	int	 seen;

	for (i = 0; i < QUOTA_R_COUNT; i++) {
		seen = 0;
		for (j = 0; j < AS_ARRAY_SIZE(reason_rows); j++)
			seen += reason_rows[j].r == (enum quota_reason)i;
		ck_assert_msg(seen == 1, "reason %zu has %d rows", i, seen);
		for (j = i + 1; j < QUOTA_R_COUNT; j++)
			ck_assert_str_ne(quota_reason_name(i),
			    quota_reason_name(j));
	}
}
END_TEST

#define GIVE_WAY_NOTE	"; waiting for warm spares to give way"

/*
 * Spares give way, the admission half: only a rejection, only for
 * maxSandboxes, only while the namespace holds a spare.  Each row
 * breaks one of the three conditions, or none.
 */
static const struct {
	enum quota_verdict	 v;
	enum quota_reason	 r;
	long			 spares;
	int			 gives;		/* deferred instead */
} give_rows[] = {
	{ REJECT, QUOTA_R_MAX_SANDBOXES, 1, 1 },
	{ REJECT, QUOTA_R_MAX_SANDBOXES, 40, 1 },
	{ REJECT, QUOTA_R_MAX_SANDBOXES, 0, 0 },	/* no spare */
	{ REJECT, QUOTA_R_MAX_SANDBOXES, -1, 0 },
	{ DEFER, QUOTA_R_MAX_SANDBOXES, 3, 0 },	/* waits anyway */
	{ ADMIT, NONE, 3, 0 },
	{ REJECT, QUOTA_R_RESERVED, 3, 0 },	/* see test_..._other */
};

START_TEST(test_spares_give_way)
{
	struct quota_decision	 d;
	const char		*det = "2 of 2 sandboxes live (maxSandboxes 2)";
	char			 want[sizeof d.detail];

	memset(&d, 0, sizeof d);
	d.verdict = give_rows[_i].v;
	d.reason = give_rows[_i].r;
	as_strlcpy(d.detail, det, sizeof d.detail);
	ck_assert_int_eq(quota_spares_give_way(&d, give_rows[_i].spares),
	    give_rows[_i].gives);
	ck_assert_int_eq(d.verdict, give_rows[_i].gives ? DEFER :
	    give_rows[_i].v);
	ck_assert_int_eq(d.reason, give_rows[_i].r);
	snprintf(want, sizeof want, "%s%s", det, give_rows[_i].gives ?
	    GIVE_WAY_NOTE : "");
	ck_assert_str_eq(d.detail, want);
}
END_TEST

/* No other reason clears when spares go: every one of them, rejected. */
START_TEST(test_spares_give_way_other)
{
	struct quota_decision	 d;
	int			 r;

	for (r = 0; r < QUOTA_R_COUNT; r++) {
		if (r == QUOTA_R_MAX_SANDBOXES)
			continue;
		memset(&d, 0, sizeof d);
		d.verdict = REJECT;
		d.reason = (enum quota_reason)r;
		as_strlcpy(d.detail, "n", sizeof d.detail);
		ck_assert_msg(quota_spares_give_way(&d, 3) == 0 &&
		    d.verdict == REJECT && d.reason == (enum quota_reason)r &&
		    strcmp(d.detail, "n") == 0, "%s gave way",
		    quota_reason_name((enum quota_reason)r));
	}
}
END_TEST

/* A full detail loses the note's tail, never its terminator. */
START_TEST(test_spares_give_way_full)
{
	struct quota_decision	 d;
	size_t			 len = sizeof d.detail - 10;

	memset(&d, 0, sizeof d);
	d.verdict = REJECT;
	d.reason = QUOTA_R_MAX_SANDBOXES;
	memset(d.detail, 'x', len);
	d.detail[len] = '\0';
	ck_assert_int_eq(quota_spares_give_way(&d, 1), 1);
	ck_assert_uint_eq(strlen(d.detail), sizeof d.detail - 1);
	ck_assert(strncmp(d.detail + len, GIVE_WAY_NOTE, 9) == 0);
}
END_TEST

/*
 * Spares give way, the sizing half: want (the warm pool's target) bounded
 * by headroom, then, in a full namespace, cur less one per waiting task.
 */
static const struct {
	long	 want, cur, head, waiting;
	long	 target;
} spare_rows[] = {
	{ 5, 2, -1, 0, 5 },	/* unlimited */
	{ 5, 2, -1, 2, 5 },	/* unlimited: nobody waits for a slot */
	{ 3, 2, 5, 0, 3 },	/* fits */
	{ 5, 2, 1, 0, 3 },	/* headroom caps the growth */
	{ 5, 2, 1, 2, 3 },	/* not full: waiting is not read */
	{ 1, 3, 2, 0, 1 },	/* shrinking is the pool's own */
	{ 5, 2, 0, 0, 2 },	/* full: keep what runs */
	{ 5, 2, 0, 1, 1 },	/* full: one spare per waiting task */
	{ 5, 2, 0, 2, 0 },
	{ 5, 2, 0, 7, 0 },	/* never below zero */
	{ 0, 3, 0, 1, 0 },	/* already lower than cur - waiting */
	{ 1, 3, 0, 1, 1 },
	{ 4, 0, 0, 3, 0 },	/* no spare to give */
};

START_TEST(test_spare_target)
{
	ck_assert_int_eq(quota_spare_target(spare_rows[_i].want,
	    spare_rows[_i].cur, spare_rows[_i].head, spare_rows[_i].waiting),
	    spare_rows[_i].target);
}
END_TEST

/*
 * Both halves with quota_check, onExceeded: reject: one spare and one
 * task fill maxSandboxes 2; the next task is deferred instead of rejected,
 * the spare target drops by one, and once the spare has gone the task
 * fits.  Without spares the same check stays a rejection.
 */
START_TEST(test_spares_give_way_check)
{
	struct quota_ns		*ns = quota_ns_new(&q_sb2_reject);
	struct quota_task	 a = { .id = "a", .root = "a" };
	struct quota_task	 b = { .id = "b", .root = "b" };
	struct quota_decision	 d;

	quota_set_replicas(ns, 1);
	quota_admit(ns, &a, 0);
	quota_check(ns, &b, 0, &d);
	ck_assert_int_eq(d.verdict, REJECT);
	ck_assert_int_eq(d.reason, QUOTA_R_MAX_SANDBOXES);
	ck_assert_int_eq(quota_spares_give_way(&d, 1), 1);
	ck_assert_int_eq(d.verdict, DEFER);
	ck_assert_ptr_nonnull(strstr(d.detail, "(maxSandboxes 2)"
	    GIVE_WAY_NOTE));
	ck_assert_int_eq(quota_spare_target(1, 1, quota_headroom(ns), 1), 0);
	quota_set_replicas(ns, 0);
	quota_check(ns, &b, 1, &d);
	ck_assert_int_eq(d.verdict, ADMIT);
	quota_set_replicas(ns, 1);
	quota_check(ns, &b, 2, &d);
	ck_assert_int_eq(quota_spares_give_way(&d, 0), 0);
	ck_assert_int_eq(d.verdict, REJECT);
	quota_ns_free(ns);
}
END_TEST

/*
 * Decisions are counted by verdict and reason (the reason label of
 * agentscaler_quota_decisions_total), next to the totals by verdict.
 */
START_TEST(test_decisions_by_reason)
{
	struct quota_config q = { .max_sandboxes = 1 };
	struct quota_ns	*ns = quota_ns_new(&q);
	struct quota_usage u;

	quota_count(ns, QUOTA_ADMIT, QUOTA_R_NONE);
	quota_count(ns, QUOTA_DEFER, QUOTA_R_MAX_SANDBOXES);
	quota_count(ns, QUOTA_DEFER, QUOTA_R_MAX_SANDBOXES);
	quota_count(ns, QUOTA_REJECT, QUOTA_R_MAX_DEPTH);
	ck_assert_uint_eq(quota_decisions(ns, QUOTA_ADMIT, QUOTA_R_NONE), 1);
	ck_assert_uint_eq(quota_decisions(ns, QUOTA_DEFER,
	    QUOTA_R_MAX_SANDBOXES), 2);
	ck_assert_uint_eq(quota_decisions(ns, QUOTA_REJECT,
	    QUOTA_R_MAX_SANDBOXES), 0);
	ck_assert_uint_eq(quota_decisions(ns, QUOTA_REJECT, QUOTA_R_MAX_DEPTH),
	    1);
	ck_assert_uint_eq(quota_decisions(ns, QUOTA_REJECT, QUOTA_R_COUNT), 0);
	quota_usage(ns, &u);
	ck_assert_uint_eq(u.admitted, 1);
	ck_assert_uint_eq(u.deferred, 2);
	ck_assert_uint_eq(u.rejected, 1);
	quota_ns_free(ns);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("quota");
	TCase	*tc = tcase_create("admission");

	tcase_add_loop_test(tc, test_scenario, 0,
	    (int)AS_ARRAY_SIZE(scenarios));
	tcase_add_loop_test(tc, test_share, 0, (int)AS_ARRAY_SIZE(share_rows));
	tcase_add_loop_test(tc, test_share_same_as_rounds, 0, 50);
	tcase_add_test(tc, test_share_steps);
	tcase_add_test(tc, test_random_walk);
	tcase_add_test(tc, test_many);
	tcase_add_test(tc, test_tracked_names);
	tcase_add_test(tc, test_budget_save_restore);
	tcase_add_loop_test(tc, test_reason_table, 0,
	    (int)AS_ARRAY_SIZE(reason_rows));
	tcase_add_test(tc, test_reason_rows);
	tcase_add_loop_test(tc, test_spares_give_way, 0,
	    (int)AS_ARRAY_SIZE(give_rows));
	tcase_add_test(tc, test_spares_give_way_other);
	tcase_add_test(tc, test_spares_give_way_full);
	tcase_add_loop_test(tc, test_spare_target, 0,
	    (int)AS_ARRAY_SIZE(spare_rows));
	tcase_add_test(tc, test_spares_give_way_check);
	tcase_add_test(tc, test_decisions_by_reason);
	suite_add_tcase(s, tc);
	return (tu_run_suite(s));
}
