/*
 * check_secret_store.c: broker credentials read from Secrets through the
 * API (secret_store.h), against the real kube-sim: a first lookup waits
 * for the read, a lookup asking for a copy read since a moment reads again
 * (rotation), the last copy serves through an API outage, a deleted Secret
 * serves nothing, a missing key says so, and a Secret no pool names any
 * more is forgotten.  Values never reach the log.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/k8s/secret_store.h"
#include "agentscaler/rt/prom.h"
#include "util/loop.h"
#include "util/testutil.h"

#define SECRETS	"/api/v1/namespaces/default/secrets"
#define WAIT	20.0

static struct tu_kubesim ks;
static struct ev_loop	*loop;
static struct k8s_client *kc;
static struct secret_store *st;

static void
ks_once_setup(void)
{
	(void)tu_kubesim_start(&ks, NULL);
}

static void
ks_once_teardown(void)
{
	tu_kubesim_stop(&ks);
}

static void
setup(void)
{
	struct k8s_options o;
	char		 err[256] = "";

	ck_assert_msg(ks.pid > 0, "tools/kube-sim/kube-sim did not start");
	tu_kubesim_reset(&ks);
	ck_assert_ptr_nonnull(loop = ev_loop_new(EVFLAG_AUTO));
	memset(&o, 0, sizeof o);
	o.apiserver = ks.url;
	o.max_retries = -1;		/* one attempt: faults fail at once */
	kc = k8s_client_new(loop, &o, err, sizeof err);
	ck_assert_msg(kc != NULL, "k8s_client_new: %s", err);
	st = secret_store_new(kc);
}

static void
teardown(void)
{
	secret_store_free(st);
	k8s_client_free(kc);
	ev_run(loop, EVRUN_NOWAIT);
	ev_loop_destroy(loop);
}

/* Creates or replaces Secret name with one key, base64 of value. */
static void
put_secret(const char *name, const char *key, const char *value)
{
	char	 url[256], body[512], *b64;
	long	 code;

	b64 = as_base64_encode(value, strlen(value));
	snprintf(body, sizeof body, "{\"apiVersion\":\"v1\",\"kind\":"
	    "\"Secret\",\"metadata\":{\"name\":\"%s\",\"namespace\":"
	    "\"default\"},\"data\":{\"%s\":\"%s\"}}", name, key, b64);
	free(b64);
	snprintf(url, sizeof url, "%s%s/%s", ks.url, SECRETS, name);
	code = tu_http("PUT", url, "application/json", body, NULL);
	if (code == 404) {
		snprintf(url, sizeof url, "%s%s", ks.url, SECRETS);
		code = tu_http("POST", url, "application/json", body, NULL);
	}
	ck_assert_msg(code == 200 || code == 201, "secret %s: %ld", name,
	    code);
}

struct lookup {
	const char	*ref;
	double		 since;
	int		 rc;
	char		*val;
	char		 err[256];
	int		 eagain;	/* lookups that answered -AS_EAGAIN */
};

/* A predicate: looks up again until the answer is not -AS_EAGAIN. */
static int
settled(void *arg)
{
	struct lookup	*l = arg;

	as_secret_free(l->val, 0);
	l->val = NULL;
	l->rc = secret_store_lookup(st, l->ref, l->since, &l->val, l->err,
	    sizeof l->err);
	if (l->rc == -AS_EAGAIN)
		l->eagain++;
	return (l->rc != -AS_EAGAIN);
}

static void
look(struct lookup *l, const char *ref, double since)
{
	memset(l, 0, sizeof *l);
	l->ref = ref;
	l->since = since;
	ck_assert_msg(tu_run_until(loop, settled, l, WAIT), "%s: %s", ref,
	    l->err);
}

static double
reads(const char *result)
{
	struct prom	 w;
	char		 pat[96];
	const char	*p;
	double		 v = -1;

	memset(&w, 0, sizeof w);
	secret_store_metrics(st, &w);
	snprintf(pat, sizeof pat, "agentscaler_secret_reads_total{result=\"%s\"} ",
	    result);
	if ((p = strstr(w.b.p, pat)) != NULL)
		v = strtod(p + strlen(pat), NULL);
	free(w.b.p);
	return (v);
}

START_TEST(test_read_and_rotate)
{
	struct tu_capture cap;
	struct lookup	 l;
	double		 t;
	char		*log;

	tu_capture_start(&cap);
	put_secret("redis", "password", "first-pw");
	secret_store_begin(st);
	secret_store_want(st, "default", "redis");
	secret_store_end(st);
	look(&l, "default/redis/password", 0);
	ck_assert_int_eq(l.rc, 0);
	ck_assert_str_eq(l.val, "first-pw");
	as_secret_free(l.val, 0);

	/* Rotated: a lookup since before it still gets the copy, no read. */
	put_secret("redis", "password", "second-pw");
	t = as_mono_now();
	look(&l, "default/redis/password", 0);
	ck_assert_int_eq(l.eagain, 0);
	ck_assert_str_eq(l.val, "first-pw");
	as_secret_free(l.val, 0);
	/* A connect after a failure at t asks for a copy read since then. */
	look(&l, "default/redis/password", t);
	ck_assert_int_ge(l.eagain, 1);
	ck_assert_int_eq(l.rc, 0);
	ck_assert_str_eq(l.val, "second-pw");
	as_secret_free(l.val, 0);
	ck_assert(reads("ok") == 2);

	/* A key the Secret does not have. */
	look(&l, "default/redis/user", 0);
	ck_assert_int_eq(l.rc, -AS_EAUTH);
	ck_assert_msg(strstr(l.err, "Secret default/redis has no key \"user\"")
	    != NULL, "%s", l.err);
	log = tu_capture_end(&cap);
	ck_assert(strstr(log, "first-pw") == NULL);
	ck_assert(strstr(log, "second-pw") == NULL);
	free(log);
}
END_TEST

START_TEST(test_outage_serves_the_last_copy)
{
	struct lookup	 l;
	double		 t;

	put_secret("rmq", "pw", "kept-pw");
	look(&l, "default/rmq/pw", 0);
	ck_assert_str_eq(l.val, "kept-pw");
	as_secret_free(l.val, 0);
	/* The API fails every read: the last copy serves. */
	tu_kubesim_fault(&ks, "GET", "secrets/rmq", 503, 100, -1);
	t = as_mono_now();
	look(&l, "default/rmq/pw", t);
	ck_assert_int_ge(l.eagain, 1);
	ck_assert_int_eq(l.rc, 0);
	ck_assert_str_eq(l.val, "kept-pw");
	as_secret_free(l.val, 0);
	ck_assert(reads("failed") >= 1);
	/* And no read again for each lookup while it fails (1 s apart). */
	look(&l, "default/rmq/pw", as_mono_now());
	ck_assert_int_eq(l.eagain, 0);
	ck_assert_str_eq(l.val, "kept-pw");
	as_secret_free(l.val, 0);
}
END_TEST

START_TEST(test_deleted_and_forbidden)
{
	struct lookup	 l;
	char		 url[256];
	double		 t;

	put_secret("gone", "pw", "gone-pw");
	look(&l, "default/gone/pw", 0);
	ck_assert_str_eq(l.val, "gone-pw");
	as_secret_free(l.val, 0);
	snprintf(url, sizeof url, "%s%s/gone", ks.url, SECRETS);
	ck_assert_int_eq(tu_http("DELETE", url, NULL, NULL, NULL), 200);
	t = as_mono_now();
	look(&l, "default/gone/pw", t);
	ck_assert_int_eq(l.rc, -AS_EAUTH);
	ck_assert_msg(strstr(l.err, "Secret default/gone not found") != NULL,
	    "%s", l.err);
	ck_assert_ptr_null(l.val);

	/* 403: the chart's RBAC does not let it read that namespace. */
	tu_kubesim_fault(&ks, "GET", "secrets/denied", 403, 100, -1);
	look(&l, "default/denied/pw", 0);
	ck_assert_int_eq(l.rc, -AS_EAUTH);
	ck_assert_msg(strstr(l.err, "may not read Secret default/denied") !=
	    NULL, "%s", l.err);

	/* Not a reference: refused before anything is read. */
	ck_assert_int_eq(secret_store_lookup(st, "default/../x", 0, &l.val,
	    l.err, sizeof l.err), -AS_EINVAL);
	ck_assert_int_eq(secret_store_lookup(st, "noslash", 0, &l.val,
	    l.err, sizeof l.err), -AS_EINVAL);
}
END_TEST

START_TEST(test_forgotten_when_no_pool_names_it)
{
	struct prom	 w;
	struct lookup	 l;

	put_secret("a", "pw", "a-pw");
	put_secret("b", "pw", "b-pw");
	secret_store_begin(st);
	secret_store_want(st, "default", "a");
	secret_store_want(st, "default", "b");
	secret_store_end(st);
	look(&l, "default/a/pw", 0);
	as_secret_free(l.val, 0);
	look(&l, "default/b/pw", 0);
	as_secret_free(l.val, 0);
	secret_store_begin(st);
	secret_store_want(st, "default", "a");
	secret_store_end(st);
	memset(&w, 0, sizeof w);
	secret_store_metrics(st, &w);
	ck_assert_msg(strstr(w.b.p, "agentscaler_secrets 1\n") != NULL, "%s",
	    w.b.p);
	free(w.b.p);
}
END_TEST

static Suite *
secret_store_suite(void)
{
	Suite	*s = suite_create("secret_store");
	TCase	*tc;

	tc = tu_tcase(s, "kube-sim", 120, ks_once_setup, ks_once_teardown,
	    setup, teardown);
	tcase_add_test(tc, test_read_and_rotate);
	tcase_add_test(tc, test_outage_serves_the_last_copy);
	tcase_add_test(tc, test_deleted_and_forbidden);
	tcase_add_test(tc, test_forgotten_when_no_pool_names_it);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(secret_store_suite()));
}
