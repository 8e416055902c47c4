/*
 * check_dispatch_recent.c: the ConfigMap that keeps the newest rejections
 * across restarts and leaders (scheduler/dispatch_recent.c), against
 * kube-sim: written after changes, at most KEPT (256) of them, read by the
 * next dispatcher before what it noted meanwhile, the last change sent
 * when the dispatcher stops (and its end told to the daemon, which waits
 * for it on a clean stop), nothing sent when leadership was lost, before
 * or during the stop; and the status page's lists.
 */
#include <sys/queue.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/common.h"
#include "scheduler/dispatch.h"
#include "util/loop.h"
#include "util/testutil.h"

#include "scheduler/dispatch_int.h"

#define WAIT	20.0

static struct ev_loop *loop;
static struct tu_kubesim ks;
static struct k8s_client *k8s;
static char	 cm[64];	/* this test's ConfigMap */
static int	 seq;

static void
ks_setup(void)
{
	(void)tu_kubesim_start(&ks, NULL);
}

static void
ks_teardown(void)
{
	tu_kubesim_stop(&ks);
}

static void
test_setup(void)
{
	struct k8s_options ko;
	char	 err[256];

	ck_assert_msg(ks.pid > 0, "tools/kube-sim/kube-sim did not start");
	ck_assert_ptr_nonnull(loop = ev_loop_new(EVFLAG_AUTO));
	tu_kubesim_reset(&ks);
	memset(&ko, 0, sizeof ko);
	ko.apiserver = ks.url;
	k8s = k8s_client_new(loop, &ko, err, sizeof err);
	ck_assert_msg(k8s != NULL, "%s", err);
	snprintf(cm, sizeof cm, "rej-%d-%d", (int)getpid(), ++seq);
}

static void
test_teardown(void)
{
	k8s_client_free(k8s);
	ev_loop_destroy(loop);
}

static struct dispatcher *
disp_new(void)
{
	struct dispatch_options o;

	memset(&o, 0, sizeof o);
	o.instance = "t";
	o.rejections_ns = "default";
	o.rejections_name = cm;
	return (dispatcher_new(loop, k8s, &o));
}

/* The task ids the ConfigMap keeps, oldest first, as "a,b,c" (new). */
static char *
kept(void)
{
	char	 url[512], *body = NULL, *out;
	cJSON	*o, *arr, *e;
	struct as_buf b = { NULL, 0, 0 };
	long	 code;

	snprintf(url, sizeof url, "%s/api/v1/namespaces/default/configmaps/%s",
	    ks.url, cm);
	code = tu_http("GET", url, NULL, NULL, &body);
	as_buf_printf(&b, "%s", "");
	if (code == 200 && (o = cJSON_Parse(body)) != NULL) {
		arr = cJSON_Parse(cJSON_GetObjectItem(cJSON_GetObjectItem(o,
		    "data"), "rejections")->valuestring);
		cJSON_ArrayForEach(e, arr)
			as_buf_printf(&b, "%s%s", b.len > 0 ? "," : "",
			    cJSON_GetObjectItem(e, "task")->valuestring);
		cJSON_Delete(arr);
		cJSON_Delete(o);
	}
	free(body);
	out = b.p;
	return (out);
}

static const char *want;

static int
pred_kept(void *arg)
{
	char	*k = kept();
	int	 ok = strcmp(k, want) == 0;

	(void)arg;
	free(k);
	return (ok);
}

static int
pred_count(void *arg)
{
	const struct dispatcher *d = arg;

	return (d->nrecent == 3);
}

START_TEST(test_written_then_read_first)
{
	struct dispatcher *d;
	cJSON		*o;

	d = disp_new();
	dispatch_recent_add(d, "ns1", "t-1", "cascade.maxDepth", "depth 9");
	dispatch_recent_add(d, "ns2", "t-2", "claim.failed", NULL);
	want = "t-1,t-2";
	ck_assert(tu_run_until(loop, pred_kept, NULL, WAIT));
	dispatcher_free(d);

	/* The next one notes t-3 before its read answers: t-3 goes last. */
	d = disp_new();
	dispatch_recent_add(d, "ns1", "t-3", "cascade.maxDepth", "depth 4");
	ck_assert(tu_run_until(loop, pred_count, d, WAIT));
	ck_assert_str_eq(d->recent[0].id, "t-1");
	ck_assert_str_eq(d->recent[0].detail, "depth 9");
	ck_assert_str_eq(d->recent[1].ns, "ns2");
	ck_assert_str_eq(d->recent[2].id, "t-3");
	o = cJSON_CreateObject();
	ck_assert_int_eq(dispatcher_explain_ns(d, "t-1", "ns1", o), 1);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "state")->valuestring,
	    "rejected");
	cJSON_Delete(o);
	o = cJSON_CreateObject();
	ck_assert_int_eq(dispatcher_explain_ns(d, "t-1", "ns2", o), 0);
	cJSON_Delete(o);
	want = "t-1,t-2,t-3";
	ck_assert(tu_run_until(loop, pred_kept, NULL, WAIT));
	dispatcher_free(d);
}
END_TEST

static int
pred_loaded(void *arg)
{
	struct dispatcher *d = arg;
	char	*k;
	int	 ok;

	/* Loaded: an entry noted now is written (a POST: none existed). */
	k = kept();
	ok = *k != '\0';
	free(k);
	(void)d;
	return (ok);
}

START_TEST(test_stop_sends_the_last_change)
{
	struct dispatcher *d;

	d = disp_new();
	dispatch_recent_add(d, "ns1", "first", "r", "d");
	ck_assert(tu_run_until(loop, pred_loaded, d, WAIT));
	/* Freed within the second before its write: sent on its own. */
	dispatch_recent_add(d, "ns1", "last", "r", "d");
	dispatcher_free(d);
	want = "first,last";
	ck_assert(tu_run_until(loop, pred_kept, NULL, WAIT));
}
END_TEST

static void
saved_cb(void *arg)
{
	(*(int *)arg)++;
}

static int
pred_saved(void *arg)
{
	return (*(int *)arg > 0);
}

static int
pred_read(void *arg)
{
	struct dispatcher *d = arg;

	return (d->nrecent > 0);
}

/*
 * The ConfigMap writes (PATCH, POST) kube-sim logged from seq since on;
 * *next: the seq after the last request it logged, of any kind.
 */
static int
cm_writes(long since, long *next)
{
	char	 path[64], *body = NULL;
	cJSON	*o, *e;
	int	 n = 0;

	snprintf(path, sizeof path, "/requests?since=%ld", since);
	ck_assert_int_eq(tu_kubesim_admin(&ks, "GET", path, NULL, &body), 200);
	ck_assert_ptr_nonnull(o = cJSON_Parse(body));
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, "requests")) {
		const char *m = cJSON_GetObjectItem(e, "method")->valuestring;

		if ((strcmp(m, "PATCH") == 0 || strcmp(m, "POST") == 0) &&
		    strstr(cJSON_GetObjectItem(e, "path")->valuestring,
		    "/configmaps") != NULL)
			n++;
	}
	*next = (long)cJSON_GetObjectItem(o, "next")->valuedouble;
	cJSON_Delete(o);
	free(body);
	return (n);
}

static int
pred_writes(void *arg)
{
	long	*since = arg, next;

	return (cm_writes(*since, &next) > 0);
}

/*
 * Runs the loop until kube-sim logged no request for 1.5 s (longer than
 * SAVE_DELAY, so a write still due shows), WAIT at most; returns the
 * ConfigMap writes from seq since on.
 */
static int
cm_writes_settled(long since)
{
	long	 next, last = -1;
	int	 quiet = 0, n = 0, i;

	for (i = 0; i < (int)(WAIT * 10) && quiet < 15; i++) {
		tu_run_for(loop, 0.1);
		n = cm_writes(since, &next);
		quiet = next == last ? quiet + 1 : 0;
		last = next;
	}
	ck_assert_int_ge(quiet, 15);
	return (n);
}

/*
 * A clean stop (save): the last change's end is told, once, after the
 * call, and by then the ConfigMap has it.  A stop without save (the
 * leadership was lost) sends nothing: the next reader finds only what
 * was written before.
 */
START_TEST(test_stop_tells_when_saved)
{
	struct dispatcher *d;
	char		*k;
	long		 since;
	int		 n = 0;

	d = disp_new();
	dispatch_recent_add(d, "ns1", "first", "r", "d");
	ck_assert(tu_run_until(loop, pred_loaded, d, WAIT));
	dispatch_recent_add(d, "ns1", "last", "r", "d");
	ck_assert_ptr_nonnull(dispatcher_free_save(d, 1, saved_cb, &n));
	ck_assert_int_eq(n, 0);
	ck_assert(tu_run_until(loop, pred_saved, &n, WAIT));
	ck_assert_int_eq(n, 1);
	k = kept();
	ck_assert_str_eq(k, "first,last");
	free(k);

	d = disp_new();
	ck_assert(tu_run_until(loop, pred_read, d, WAIT));
	dispatch_recent_add(d, "ns1", "unsaved", "r", "d");
	(void)cm_writes(0, &since);
	n = 0;
	ck_assert_ptr_null(dispatcher_free_save(d, 0, saved_cb, &n));
	/* Nothing goes out, even given the time a write would take. */
	ck_assert_int_eq(cm_writes_settled(since), 0);
	ck_assert_int_eq(n, 0);
	d = disp_new();
	ck_assert(tu_run_until(loop, pred_read, d, WAIT));
	ck_assert_uint_eq(d->nrecent, 2);
	ck_assert_str_eq(d->recent[1].id, "last");
	ck_assert_ptr_null(dispatcher_free_save(d, 1, saved_cb, &n));
	ck_assert_int_eq(n, 0);
}
END_TEST

/*
 * The Lease lost during a clean stop (or the stop's deadline before the
 * Lease is released): abandoning the stop's writes cancels the one in
 * flight (its end is told at once, not when the slow server answers) and
 * frees the one queued behind it unsent.
 */
START_TEST(test_lease_lost_during_the_stop)
{
	struct dispatcher *d;
	struct dispatcher_save *sa;
	char	 lat[256];
	long	 since;
	int	 n = 0;

	d = disp_new();
	dispatch_recent_add(d, "ns1", "first", "r", "d");
	ck_assert(tu_run_until(loop, pred_loaded, d, WAIT));
	snprintf(lat, sizeof lat, "{\"ms\": 60000, \"method\": \"PATCH\", "
	    "\"path\": \"%s\"}", cm);
	ck_assert_int_eq(tu_kubesim_admin(&ks, "POST", "/latency", lat, NULL),
	    200);
	(void)cm_writes(0, &since);
	dispatch_recent_add(d, "ns1", "second", "r", "d");
	/* Its PATCH reached the server, which holds it a minute. */
	ck_assert(tu_run_until(loop, pred_writes, &since, WAIT));
	dispatch_recent_add(d, "ns1", "third", "r", "d");
	ck_assert_ptr_nonnull(sa = dispatcher_free_save(d, 1, saved_cb, &n));
	ck_assert_int_eq(n, 0);
	dispatcher_save_abandon(sa);
	ck_assert_int_eq(n, 1);
	/* The one in flight only: "third" is never sent. */
	ck_assert_int_eq(cm_writes_settled(since), 1);
	ck_assert_int_eq(n, 1);
}
END_TEST

START_TEST(test_at_most_256_newest)
{
	struct dispatcher *d;
	char	 id[32], *k;
	int	 i;

	d = disp_new();
	for (i = 0; i < 300; i++) {
		snprintf(id, sizeof id, "t%d", i);
		dispatch_recent_add(d, "ns", id, "r", NULL);
	}
	want = NULL;
	for (;;) {
		k = kept();
		if (tu_count(k, ",") == 255 && strncmp(k, "t44,", 4) == 0 &&
		    strcmp(k + strlen(k) - 5, ",t299") == 0) {
			free(k);
			break;
		}
		free(k);
		tu_run_for(loop, 0.1);
	}
	dispatcher_free(d);
}
END_TEST

START_TEST(test_status_lists)
{
	struct dispatcher *d;
	cJSON	*root, *dead;
	int	 i;
	char	 id[32];

	d = disp_new();
	for (i = 0; i < 30; i++) {
		snprintf(id, sizeof id, "t%d", i);
		dispatch_recent_add(d, "ns", id, "r", "<b>x</b>");
	}
	root = cJSON_CreateObject();
	dispatcher_status_recent(d, root);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(root,
	    "deferredTasks")), 0);
	dead = cJSON_GetObjectItem(root, "recentDeadLetters");
	ck_assert_int_eq(cJSON_GetArraySize(dead), 25);
	/* Newest first, the detail as given (the page escapes it). */
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(dead, 0),
	    "task")->valuestring, "t29");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(dead, 0),
	    "detail")->valuestring, "<b>x</b>");
	cJSON_Delete(root);
	dispatcher_free(d);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("dispatch_recent");
	TCase	*tc = tcase_create("configmap");

	tcase_add_unchecked_fixture(tc, ks_setup, ks_teardown);
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_written_then_read_first);
	tcase_add_test(tc, test_stop_sends_the_last_change);
	tcase_add_test(tc, test_stop_tells_when_saved);
	tcase_add_test(tc, test_lease_lost_during_the_stop);
	tcase_add_test(tc, test_at_most_256_newest);
	tcase_add_test(tc, test_status_lists);
	suite_add_tcase(s, tc);
	return (tu_run_suite(s));
}
