/*
 * check_pool_targets.c: a scale pool and its watched target
 * (scheduler/pool.c over scheduler/targets.c), without a network: a
 * daemon built by hand (a standby: it decides, never writes), its targets
 * on the fake informer (util/informer_fake.h), and PATCH answers handed
 * to pool_patch_done() as the client would.
 *
 * What is held: the watch's events and the PATCH answers are ordered by
 * resourceVersion (an older one never undoes a newer one, from either
 * side); an absent target is "not found" with the replicas held; two pools
 * on one target both follow it; reloads move subscriptions and the last
 * pool's going ends the watch.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/log.h"
#include "scheduler/config.h"
#include "scheduler/daemon_state.h"
#include "scheduler/pool.h"
#include "scheduler/targets.h"
#include "util/informer_fake.h"
#include "util/testutil.h"

struct world {
	struct ev_loop		*loop;
	struct daemon_options	 opts;
	struct daemon		 d;
};

/* A config of scale pools on Deployments: n (name, target) pairs. */
static struct config *
pools_on(const char *const *pairs, size_t n)
{
	struct config	*c = config_new();
	char		 buf[1024], err[256];
	cJSON		*obj;
	size_t		 k;

	for (k = 0; k < n; k++) {
		snprintf(buf, sizeof buf, "{\"metadata\":{\"name\":\"%s\","
		    "\"namespace\":\"default\"},\"spec\":{\"source\":{\"type\":"
		    "\"redis-list\",\"address\":\"redis://127.0.0.1:1/0\","
		    "\"queue\":\"q-%s\"},\"target\":{\"kind\":\"Deployment\","
		    "\"name\":\"%s\"},\"scaling\":{\"maxReplicas\":10}}}",
		    pairs[2 * k], pairs[2 * k], pairs[2 * k + 1]);
		ck_assert_ptr_nonnull(obj = cJSON_Parse(buf));
		ck_assert_msg(config_add_pool(c, obj, NULL, NULL, "", err,
		    sizeof err) == 0, "%s", err);
		cJSON_Delete(obj);
	}
	return (c);
}

static void
world_init(struct world *w)
{
	struct targets_options to;

	memset(w, 0, sizeof *w);
	log_set_level(LOG_ERROR);
	fake_inf_reset();
	w->loop = ev_loop_new(EVFLAG_AUTO);
	w->d.loop = w->loop;
	w->d.opts = &w->opts;
	memset(&to, 0, sizeof to);
	to.ops = &fake_inf_ops;
	w->d.targets = targets_new(NULL, &to);
}

/* pool_apply_config() as daemon_apply() calls it; takes c. */
static void
world_apply(struct world *w, struct config *c)
{
	pool_apply_config(&w->d, c);
	config_free(w->d.config);
	w->d.config = c;
}

static void
world_fini(struct world *w)
{
	pool_free_all(&w->d);
	ck_assert_int_eq(fake_inf_nlive, 0);	/* the watch went with them */
	targets_free(w->d.targets);
	config_free(w->d.config);
	ev_loop_destroy(w->loop);
}

/* Our PATCH's answer: spec replicas at resourceVersion rv. */
static void
answer(struct pool *p, long spec, const char *rv)
{
	struct k8s_scale sc;

	memset(&sc, 0, sizeof sc);
	sc.spec_replicas = spec;
	as_strlcpy(sc.resource_version, rv, sizeof sc.resource_version);
	p->patch_from = p->spec_replicas;
	pool_patch_done(0, &sc, "", p);
}

START_TEST(test_order_by_version)
{
	static const char *const pairs[] = { "a", "web", "b", "web" };
	struct world	 w;
	struct informer	*inf;
	struct pool	*p, *q;

	world_init(&w);
	world_apply(&w, pools_on(pairs, 2));
	ck_assert_int_eq(fake_inf_nmade, 1);
	inf = fake_inf_made[0];
	ck_assert_str_eq(inf->path, "/apis/apps/v1/namespaces/default/"
	    "deployments");
	p = w.d.pools[0];
	q = w.d.pools[1];
	ck_assert(!p->spec_known && !q->spec_known);	/* not listed yet */

	fake_inf_event(inf, INFORMER_ADDED, fake_deploy("default", "web", 10,
	    2, 1));
	fake_inf_sync(inf);
	ck_assert(p->spec_known && q->spec_known);
	ck_assert_int_eq(p->spec_replicas, 2);
	ck_assert_int_eq(q->status_replicas, 1);

	/* Our write lands at 12; an event from before it (11) comes late. */
	answer(p, 5, "12");
	ck_assert_int_eq(p->spec_replicas, 5);
	ck_assert_uint_eq(p->scale_up, 1);
	fake_inf_event(inf, INFORMER_MODIFIED, fake_deploy("default", "web",
	    11, 2, 2));
	ck_assert_int_eq(p->spec_replicas, 5);	/* older than the answer */
	ck_assert_int_eq(q->status_replicas, 2);	/* q holds 10: newer */
	fake_inf_event(inf, INFORMER_MODIFIED, fake_deploy("default", "web",
	    12, 5, 2));
	ck_assert_int_eq(q->spec_replicas, 5);
	/* Someone else scales (kubectl scale): both pools take it. */
	fake_inf_event(inf, INFORMER_MODIFIED, fake_deploy("default", "web",
	    13, 7, 5));
	ck_assert_int_eq(p->spec_replicas, 7);
	ck_assert_int_eq(q->spec_replicas, 7);
	/* An answer older than what the watch told: ignored. */
	answer(p, 5, "12");
	ck_assert_int_eq(p->spec_replicas, 7);
	ck_assert_str_eq(p->spec_rv, "13");

	/* Gone: "not found", replicas held, nothing known to write over. */
	fake_inf_event(inf, INFORMER_DELETED, fake_deploy("default", "web",
	    14, 7, 5));
	ck_assert(!p->spec_known && !q->spec_known);
	ck_assert_str_eq(p->k8s_err, "deployments.apps \"web\" not found");
	ck_assert_int_eq(p->spec_replicas, 7);
	ck_assert_uint_eq(q->kube_errors, 1);
	/* Made again. */
	fake_inf_event(inf, INFORMER_ADDED, fake_deploy("default", "web", 20,
	    0, 0));
	ck_assert(p->spec_known && q->spec_known);
	ck_assert_int_eq(p->spec_replicas, 0);
	ck_assert_str_eq(q->k8s_err, "");
	world_fini(&w);
}
END_TEST

START_TEST(test_reload_moves_subscriptions)
{
	static const char *const one[] = { "a", "web", "b", "api" };
	static const char *const two[] = { "a", "api", "b", "api" };
	struct world	 w;
	struct informer	*inf;
	struct targets_stats st;
	struct pool	*a;

	world_init(&w);
	world_apply(&w, pools_on(one, 2));
	inf = fake_inf_made[0];
	fake_inf_event(inf, INFORMER_ADDED, fake_deploy("default", "web", 3,
	    4, 4));
	fake_inf_sync(inf);
	a = w.d.pools[0];
	ck_assert_int_eq(a->spec_replicas, 4);
	ck_assert(!w.d.pools[1]->spec_known);		/* api: not found */

	/* a now targets api, which does not exist either. */
	world_apply(&w, pools_on(two, 2));
	ck_assert_ptr_eq(w.d.pools[0], a);		/* kept */
	ck_assert(!a->spec_known);
	ck_assert_str_eq(a->k8s_err, "deployments.apps \"api\" not found");
	targets_get_stats(w.d.targets, &st);
	ck_assert_uint_eq(st.targets, 1);		/* web: nobody's */
	ck_assert_uint_eq(st.subscriptions, 2);
	ck_assert_int_eq(fake_inf_nmade, 1);		/* the same watch */
	fake_inf_event(inf, INFORMER_ADDED, fake_deploy("default", "api", 9,
	    1, 0));
	ck_assert(a->spec_known && w.d.pools[1]->spec_known);
	ck_assert_int_eq(a->spec_replicas, 1);

	/* No pools: the watch ends. */
	world_apply(&w, config_new());
	ck_assert_int_eq(fake_inf_nlive, 0);
	world_fini(&w);
}
END_TEST

static Suite *
pool_targets_suite(void)
{
	Suite	*s = suite_create("pool_targets");
	TCase	*tc = tcase_create("pool_targets");

	tcase_add_test(tc, test_order_by_version);
	tcase_add_test(tc, test_reload_moves_subscriptions);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(pool_targets_suite()));
}
