/*
 * check_informer.c: watches and the informer against the real
 * tools/kube-sim.  First the streaming request itself (k8s_client_watch:
 * lines arrive while the response is still open, cancel, clean end, error
 * statuses, the line bound, the idle limit, no retries, the token hooks),
 * then the informer (k8s/informer.c): paged LIST, watch events, selectors,
 * bookmarks, dropped watches, 410 by ERROR event and by status, expired
 * continue tokens, backoff after failures, an API outage, freeing inside
 * the callback.  One kube-sim per test case, with bookmarks every 300 ms;
 * each test works in a namespace of its own.  Every wait is bounded and
 * waits for a functional outcome.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/k8s/informer.h"
#include "agentscaler/k8s/k8s.h"
#include "util/loop.h"
#include "util/testutil.h"

#define WAIT	30.0	/* seconds; a deadline, not a speed check */

static struct ev_loop *loop;
static struct tu_kubesim ks;	/* pid 0 when it did not start */
static char	 ns[64];	/* this test's namespace */
static char	 cm_path[160];	/* /api/v1/namespaces/<ns>/configmaps */
static int	 ns_seq;
static struct tu_kubesim_tokens tok;	/* dir "" without --tokens */

/* ---- kube-sim ---- */

static void
ks_setup(void)
{
	static const char *const args[] = { "--bookmark-interval-ms", "300",
	    NULL };

	(void)tu_kubesim_start(&ks, args);
}

/* kube-sim with a token file: tok-a is an admin. */
static void
ks_setup_tokens(void)
{
	static const char *const args[] = { "--tokens", tok.csv,
	    "--bookmark-interval-ms", "300", NULL };

	tu_kubesim_tokens_make(&tok, "check_informer");
	(void)tu_kubesim_start(&ks, args);
}

static void
ks_teardown(void)
{
	tu_kubesim_stop(&ks);
	tu_kubesim_tokens_remove(&tok);
}

static long
ks_admin(const char *method, const char *path, const char *body,
    char **out)
{
	return (tu_kubesim_admin(&ks, method, path, body, out));
}

/* An API request as the admin user (token tok-a when kube-sim has tokens). */
static long
ks_api(const char *method, const char *path, const char *ctype,
    const char *body, char **out)
{
	char	 url[512];

	snprintf(url, sizeof url, "%s%s", ks.url, path);
	return (tu_http(method, url, ctype, body, out));
}

static void
test_setup(void)
{
	char	 body[256];
	long	 code;

	ck_assert_msg(ks.pid > 0, "tools/kube-sim/kube-sim did not start");
	ck_assert_ptr_nonnull(loop = ev_loop_new(EVFLAG_AUTO));
	tu_kubesim_reset(&ks);
	snprintf(ns, sizeof ns, "inf-%d-%d", (int)getpid(), ++ns_seq);
	snprintf(cm_path, sizeof cm_path, "/api/v1/namespaces/%s/configmaps",
	    ns);
	if (tok.dir[0] != '\0')
		return;		/* tu_http has no token: the test makes it */
	snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"%s\"}}", ns);
	code = ks_api("POST", "/api/v1/namespaces", NULL, body, NULL);
	ck_assert_msg(code == 201, "create namespace %s: %ld", ns, code);
}

static void
test_teardown(void)
{
	ev_loop_destroy(loop);
	loop = NULL;
}

/* Creates ConfigMap name in ns with data {"k": value} and labels (JSON). */
static void
cm_create(const char *name, const char *labels, const char *value)
{
	char	*body;
	long	 code;

	body = xasprintf("{\"metadata\":{\"name\":\"%s\",\"labels\":%s},"
	    "\"data\":{\"k\":\"%s\"}}", name, labels != NULL ? labels : "{}",
	    value);
	code = ks_api("POST", cm_path, NULL, body, NULL);
	free(body);
	ck_assert_msg(code == 201, "create %s: %ld", name, code);
}

static void
cm_patch(const char *name, const char *patch)
{
	char	 path[256];
	long	 code;

	snprintf(path, sizeof path, "%s/%s", cm_path, name);
	code = ks_api("PATCH", path, "application/merge-patch+json", patch,
	    NULL);
	ck_assert_msg(code == 200, "patch %s: %ld", name, code);
}

static void
cm_delete(const char *name)
{
	char	 path[256];
	long	 code;

	snprintf(path, sizeof path, "%s/%s", cm_path, name);
	code = ks_api("DELETE", path, NULL, NULL, NULL);
	ck_assert_msg(code == 200, "delete %s: %ld", name, code);
}

/* kube-sim's current resourceVersion, into out. */
static void
ks_rv(char *out, size_t len)
{
	cJSON	*j, *v;
	char	*body = NULL;

	ck_assert_int_eq(ks_admin("GET", "/healthz", NULL, &body), 200);
	ck_assert_ptr_nonnull(j = cJSON_Parse(body));
	free(body);
	v = cJSON_GetObjectItemCaseSensitive(j, "resourceVersion");
	ck_assert(cJSON_IsString(v));
	as_strlcpy(out, v->valuestring, len);
	cJSON_Delete(j);
}

/* The sequence number the next request will get in kube-sim's log. */
static long
ks_seq(void)
{
	cJSON	*j, *v;
	char	*body = NULL;
	long	 n;

	ck_assert_int_eq(ks_admin("GET", "/requests?since=0", NULL, &body),
	    200);
	ck_assert_ptr_nonnull(j = cJSON_Parse(body));
	free(body);
	v = cJSON_GetObjectItemCaseSensitive(j, "next");
	ck_assert(cJSON_IsNumber(v));
	n = (long)v->valuedouble;
	cJSON_Delete(j);
	return (n);
}

struct ks_req {
	char	 query[1024];
	long	 code;		/* -1 while in flight */
	double	 mono;
	char	 user[64];
};

/*
 * The GETs of cm_path since seq whose query contains every string of has
 * (NULL-terminated) and none of hasnt; up to max into out.  Returns how
 * many.
 */
static int
ks_gets(long since, const char *const *has, const char *const *hasnt,
    struct ks_req *out, int max)
{
	cJSON		*j, *e, *v;
	const char	*q;
	char		 path[64], *body = NULL;
	int		 n = 0, k, ok;

	snprintf(path, sizeof path, "/requests?since=%ld", since);
	ck_assert_int_eq(ks_admin("GET", path, NULL, &body), 200);
	ck_assert_ptr_nonnull(j = cJSON_Parse(body));
	free(body);
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j,
	    "requests")) {
		v = cJSON_GetObjectItemCaseSensitive(e, "method");
		if (!cJSON_IsString(v) || strcmp(v->valuestring, "GET") != 0)
			continue;
		v = cJSON_GetObjectItemCaseSensitive(e, "path");
		if (!cJSON_IsString(v) || strcmp(v->valuestring, cm_path) != 0)
			continue;
		v = cJSON_GetObjectItemCaseSensitive(e, "query");
		q = cJSON_IsString(v) ? v->valuestring : "";
		ok = 1;
		for (k = 0; has != NULL && has[k] != NULL; k++)
			if (strstr(q, has[k]) == NULL)
				ok = 0;
		for (k = 0; hasnt != NULL && hasnt[k] != NULL; k++)
			if (strstr(q, hasnt[k]) != NULL)
				ok = 0;
		if (!ok)
			continue;
		if (n < max) {
			as_strlcpy(out[n].query, q, sizeof out[n].query);
			v = cJSON_GetObjectItemCaseSensitive(e, "code");
			out[n].code = cJSON_IsNumber(v) ? (long)v->valuedouble :
			    -1;
			v = cJSON_GetObjectItemCaseSensitive(e, "mono");
			out[n].mono = cJSON_IsNumber(v) ? v->valuedouble : 0;
			v = cJSON_GetObjectItemCaseSensitive(e, "user");
			as_strlcpy(out[n].user, cJSON_IsString(v) ?
			    v->valuestring : "", sizeof out[n].user);
		}
		n++;
	}
	cJSON_Delete(j);
	return (n);
}

static struct k8s_client *
client_new(int max_retries)
{
	struct k8s_options o;
	struct k8s_client *c;
	char		 err[256] = "";

	memset(&o, 0, sizeof o);
	o.apiserver = ks.url;
	o.retry_base = 0.02;
	o.retry_cap = 0.1;
	o.max_retries = max_retries;
	if (tok.dir[0] != '\0')
		o.token_file = tok.file;
	c = k8s_client_new(loop, &o, err, sizeof err);
	ck_assert_msg(c != NULL, "k8s_client_new: %s", err);
	return (c);
}

/* ---- the streaming request ---- */

struct wrec {
	struct k8s_client *c;
	struct k8s_req	*req;
	int		 lines;
	char		 names[16][64];	/* object.metadata.name per line */
	char		 types[16][16];
	int		 done;
	int		 in_cancel;	/* k8s_req_cancel is running */
	int		 done_in_cancel;
	int		 err;
	long		 code;
	char		 msg[512];
	char		 body[256];
	int		 cancel_on;	/* cancel the watch at this line */
	int		 free_on;	/* free the client at this line */
	int		 returned;
};

static void
w_line(const char *line, size_t len, void *arg)
{
	struct wrec	*w = arg;
	cJSON		*j, *t, *md, *name;
	int		 k;

	ck_assert_msg(w->returned, "a line before the call returned");
	ck_assert_msg(!w->done, "a line after the completion");
	ck_assert_uint_eq(strlen(line), len);
	ck_assert_msg(len > 0 && line[len - 1] != '\n' &&
	    line[len - 1] != '\r', "line not stripped");
	k = w->lines++;
	ck_assert_ptr_nonnull(j = cJSON_Parse(line));
	t = cJSON_GetObjectItemCaseSensitive(j, "type");
	md = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
	    j, "object"), "metadata");
	name = cJSON_GetObjectItemCaseSensitive(md, "name");
	if (k < 16) {
		as_strlcpy(w->types[k], cJSON_IsString(t) ? t->valuestring :
		    "", sizeof w->types[k]);
		as_strlcpy(w->names[k], cJSON_IsString(name) ?
		    name->valuestring : "", sizeof w->names[k]);
	}
	cJSON_Delete(j);
	if (w->cancel_on == w->lines) {
		w->in_cancel = 1;
		k8s_req_cancel(w->req);
		w->in_cancel = 0;
	}
	if (w->free_on == w->lines) {
		k8s_client_free(w->c);
		w->c = NULL;
	}
}

static void
w_done(const struct k8s_response *resp, void *arg)
{
	struct wrec	*w = arg;

	ck_assert_msg(w->returned, "completion before the call returned");
	w->done++;
	w->done_in_cancel = w->in_cancel;
	w->err = resp->err;
	w->code = resp->code;
	as_strlcpy(w->msg, resp->message, sizeof w->msg);
	as_strlcpy(w->body, resp->body, sizeof w->body);
}

/* Opens a watch of cm_path with the extra query q. */
static struct k8s_req *
w_open(struct wrec *w, const char *q, double idle, size_t max_line)
{
	char	 path[512];

	snprintf(path, sizeof path, "%s?watch=true&%s", cm_path, q);
	w->req = k8s_client_watch(w->c, path, idle, max_line, w_line, w_done,
	    w);
	w->returned = 1;
	return (w->req);
}

/* Zeroes w and gives it a client of its own. */
static void
w_init(struct wrec *w, int max_retries)
{
	memset(w, 0, sizeof *w);
	w->c = client_new(max_retries);
}

/* A watch from kube-sim's resourceVersion now; q: more query, or NULL. */
static struct k8s_req *
w_open_now(struct wrec *w, const char *q, double idle, size_t max_line)
{
	char	 rv[32], query[256];

	ks_rv(rv, sizeof rv);
	snprintf(query, sizeof query, "resourceVersion=%s%s%s", rv,
	    q != NULL ? "&" : "", q != NULL ? q : "");
	return (w_open(w, query, idle, max_line));
}

static long	 seq0;		/* namespaces are per test: the whole log */

/*
 * A watch of cm_path has started (kube-sim logs 200 once its stream is
 * registered); arg points to the log sequence to look from.
 */
static int
pred_watching(void *arg)
{
	struct ks_req	 reqs[8];
	const char	*wat[] = { "watch=true", NULL };
	int		 n, k;

	n = ks_gets(*(long *)arg, wat, NULL, reqs, 8);
	for (k = 0; k < n && k < 8; k++)
		if (reqs[k].code == 200)
			return (1);
	return (0);
}

START_TEST(test_stream_incremental)
{
	struct wrec	 w;

	w_init(&w, 0);
	ck_assert_ptr_nonnull(w_open_now(&w, "timeoutSeconds=60", 0, 0));
	ck_assert(tu_run_until(loop, pred_watching, &seq0, WAIT));

	/* Each event arrives on its own, while the response is still open. */
	cm_create("s1", NULL, "v");
	ck_assert(tu_run_count(loop, &w.lines, 1, WAIT));
	ck_assert_int_eq(w.done, 0);
	ck_assert_str_eq(w.types[0], "ADDED");
	ck_assert_str_eq(w.names[0], "s1");
	cm_patch("s1", "{\"data\":{\"k\":\"v2\"}}");
	ck_assert(tu_run_count(loop, &w.lines, 2, WAIT));
	ck_assert_int_eq(w.done, 0);
	ck_assert_str_eq(w.types[1], "MODIFIED");

	/* Cancel mid-stream: the completion runs inside, nothing after. */
	w.in_cancel = 1;
	k8s_req_cancel(w.req);
	w.in_cancel = 0;
	ck_assert_int_eq(w.done, 1);
	ck_assert_int_eq(w.done_in_cancel, 1);
	ck_assert_int_eq(w.err, -AS_ECANCELED);
	cm_create("s2", NULL, "v");
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(w.lines, 2);
	ck_assert_int_eq(w.done, 1);
	k8s_client_free(w.c);
}
END_TEST

START_TEST(test_stream_clean_end)
{
	struct wrec	 w;

	w_init(&w, 0);
	/* Bookmarks (every 300 ms) until the server's timeout ends it. */
	ck_assert_ptr_nonnull(w_open_now(&w, "timeoutSeconds=1&"
	    "allowWatchBookmarks=true", 0, 0));
	ck_assert(tu_run_count(loop, &w.done, 1, WAIT));
	ck_assert_int_eq(w.err, 0);
	ck_assert_int_eq(w.code, 200);
	ck_assert_str_eq(w.msg, "");
	ck_assert_str_eq(w.body, "");
	ck_assert_int_ge(w.lines, 1);
	ck_assert_str_eq(w.types[0], "BOOKMARK");
	k8s_client_free(w.c);
}
END_TEST

START_TEST(test_stream_error_status)
{
	struct wrec	 w;

	w_init(&w, 0);
	ck_assert_ptr_nonnull(w_open(&w, "resourceVersion=abc", 0, 0));
	ck_assert(tu_run_count(loop, &w.done, 1, WAIT));
	ck_assert_int_eq(w.err, -AS_EINVAL);
	ck_assert_int_eq(w.code, 400);
	/* The Status body is read for the message, not given as lines. */
	ck_assert_str_eq(w.msg, "400 BadRequest: invalid resource version: "
	    "abc");
	ck_assert_ptr_nonnull(strstr(w.body, "\"kind\":\"Status\""));
	ck_assert_int_eq(w.lines, 0);
	k8s_client_free(w.c);
}
END_TEST

/* A 500 and a refused connection: one attempt each, whatever max_retries. */
START_TEST(test_stream_no_retries)
{
	struct wrec	 w;
	long		 seq;
	char		 dead[64];
	const char	*has[] = { "watch=true", NULL };
	struct ks_req	 reqs[4];

	w_init(&w, 5);
	tu_kubesim_fault(&ks, "GET", "watch=true", 500, 3, -1);
	seq = ks_seq();
	ck_assert_ptr_nonnull(w_open_now(&w, NULL, 0, 0));
	ck_assert(tu_run_count(loop, &w.done, 1, WAIT));
	ck_assert_int_eq(w.err, -AS_ESERVER);
	ck_assert_int_eq(w.code, 500);
	ck_assert_msg(strncmp(w.msg, "500 InternalError", 17) == 0, "%s",
	    w.msg);
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(ks_gets(seq, has, NULL, reqs, 4), 1);
	k8s_client_free(w.c);

	memset(&w, 0, sizeof w);
	snprintf(dead, sizeof dead, "http://127.0.0.1:%d", tu_free_port());
	{
		struct k8s_options o;
		char	 err[256];

		memset(&o, 0, sizeof o);
		o.apiserver = dead;
		o.max_retries = 5;
		ck_assert_ptr_nonnull(w.c = k8s_client_new(loop, &o, err,
		    sizeof err));
	}
	ck_assert_ptr_nonnull(w_open(&w, "resourceVersion=1", 0, 0));
	ck_assert(tu_run_count(loop, &w.done, 1, WAIT));
	ck_assert_int_eq(w.err, -AS_ECONN);
	ck_assert_int_eq(w.code, 0);
	ck_assert_ptr_nonnull(strstr(w.msg, dead));
	k8s_client_free(w.c);
}
END_TEST

START_TEST(test_stream_line_too_long)
{
	struct wrec	 w;
	char		 big[3001];

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	w_init(&w, 0);
	ck_assert_ptr_nonnull(w_open_now(&w, "timeoutSeconds=60", 0, 1000));
	cm_create("small", NULL, "v");
	ck_assert(tu_run_count(loop, &w.lines, 1, WAIT));
	cm_create("big", NULL, big);
	ck_assert(tu_run_count(loop, &w.done, 1, WAIT));
	ck_assert_int_eq(w.lines, 1);
	ck_assert_str_eq(w.names[0], "small");
	ck_assert_int_eq(w.err, -AS_EPROTO);
	ck_assert_int_eq(w.code, 200);
	ck_assert_msg(strstr(w.msg, "a line longer than 1000 bytes") != NULL,
	    "%s", w.msg);
	k8s_client_free(w.c);
}
END_TEST

START_TEST(test_stream_idle)
{
	struct wrec	 w;

	w_init(&w, 0);
	/* No bookmarks asked for, nothing happens: idle after 0.5 s. */
	ck_assert_ptr_nonnull(w_open_now(&w, "timeoutSeconds=60", 0.5, 0));
	ck_assert(tu_run_count(loop, &w.done, 1, WAIT));
	ck_assert_int_eq(w.err, -AS_ETIMEDOUT);
	ck_assert_int_eq(w.code, 200);
	ck_assert_msg(strstr(w.msg, "no data for 0.5 s") != NULL, "%s", w.msg);
	ck_assert_int_eq(w.lines, 0);
	k8s_client_free(w.c);
}
END_TEST

START_TEST(test_stream_dropped)
{
	struct wrec	 w;

	w_init(&w, 0);
	ck_assert_ptr_nonnull(w_open_now(&w, "timeoutSeconds=60", 0, 0));
	ck_assert(tu_run_until(loop, pred_watching, &seq0, WAIT));
	ck_assert_int_eq(ks_admin("POST", "/drop-watches", "{}", NULL), 200);
	ck_assert(tu_run_count(loop, &w.done, 1, WAIT));
	/* Started (200), then broken: the caller's cue to watch again. */
	ck_assert_int_eq(w.err, -AS_ECONN);
	ck_assert_int_eq(w.code, 200);
	k8s_client_free(w.c);
}
END_TEST

/*
 * Three events already in history arrive at once; cancelling (or freeing
 * the client) at the first line stops the rest.
 */
START_TEST(test_stream_stop_in_line)
{
	struct wrec	 w;
	char		 rv[32], q[128];

	w_init(&w, 0);
	ks_rv(rv, sizeof rv);
	cm_create("h1", NULL, "v");
	cm_create("h2", NULL, "v");
	cm_create("h3", NULL, "v");
	snprintf(q, sizeof q, "resourceVersion=%s&timeoutSeconds=60", rv);
	if (_i == 0)
		w.cancel_on = 1;
	else
		w.free_on = 1;
	ck_assert_ptr_nonnull(w_open(&w, q, 0, 0));
	ck_assert(tu_run_count(loop, &w.done, 1, WAIT));
	ck_assert_int_eq(w.lines, 1);
	ck_assert_str_eq(w.names[0], "h1");
	ck_assert_int_eq(w.err, -AS_ECANCELED);
	if (_i == 0)
		ck_assert_int_eq(w.done_in_cancel, 1);
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(w.lines, 1);
	ck_assert_int_eq(w.done, 1);
	k8s_client_free(w.c);
}
END_TEST

/* The token hooks apply: a stale token gets a 401, is re-read, retried. */
START_TEST(test_stream_token)
{
	struct wrec	 w;
	struct ks_req	 reqs[4];
	const char	*has[] = { "watch=true", NULL };
	long		 seq;

	tu_write_file(tok.file, "tok-stale\n");
	w_init(&w, 0);
	tu_write_file(tok.file, "tok-a\n");
	seq = ks_seq();
	ck_assert_ptr_nonnull(w_open(&w, "resourceVersion=0&timeoutSeconds=1&"
	    "allowWatchBookmarks=true", 0, 0));
	ck_assert(tu_run_count(loop, &w.done, 1, WAIT));
	ck_assert_msg(w.err == 0, "%s", w.msg);
	ck_assert_int_ge(w.lines, 1);
	ck_assert_int_eq(ks_gets(seq, has, NULL, reqs, 4), 2);
	ck_assert_int_eq(reqs[0].code, 401);
	ck_assert_int_eq(reqs[1].code, 200);
	ck_assert_str_eq(reqs[1].user, "agentscaler");
	k8s_client_free(w.c);
}
END_TEST

/* ---- the informer ---- */

struct ev_rec {
	enum informer_event type;
	char		 name[64];
	char		 rv[32];
	char		 value[32];	/* data.k */
};

struct rec {
	struct k8s_client *c;		/* the informer's */
	struct informer	*inf;
	int		 n;
	struct ev_rec	 ev[128];
	int		 added;
	int		 modified;
	int		 deleted;
	int		 synced;
	int		 free_on;	/* informer_free at this event */
	int		 freed;
	int		 compact;	/* informer_options.compact */
};

static const char *
str_at(const cJSON *o, const char *a, const char *b)
{
	const cJSON	*v;

	v = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b != NULL)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return (cJSON_IsString(v) ? v->valuestring : "");
}

static void
on_event(struct informer *inf, enum informer_event type, const cJSON *obj,
    void *arg)
{
	struct rec	*r = arg;
	struct ev_rec	*e;
	const cJSON	*cached;

	/* r->inf is set when informer_new returns: nothing comes before. */
	ck_assert_ptr_eq(inf, r->inf);
	ck_assert_msg(!r->freed, "an event after informer_free");
	ck_assert_int_lt(r->n, (int)AS_ARRAY_SIZE(r->ev));
	e = &r->ev[r->n++];
	e->type = type;
	switch (type) {
	case INFORMER_SYNCED:
		ck_assert_ptr_null(obj);
		ck_assert(informer_synced(inf));
		r->synced++;
		break;
	case INFORMER_ADDED:
	case INFORMER_MODIFIED:
		ck_assert_ptr_nonnull(obj);
		/* The object handed over is the cache's (compact: a copy). */
		cached = informer_get(inf, ns, str_at(obj, "metadata",
		    "name"));
		if (!r->compact)
			ck_assert_ptr_eq(cached, obj);
		ck_assert_ptr_nonnull(cached);
		ck_assert(cJSON_Compare(cached, obj, 1));
		if (type == INFORMER_ADDED)
			r->added++;
		else
			r->modified++;
		break;
	case INFORMER_DELETED:
		ck_assert_ptr_nonnull(obj);
		ck_assert_ptr_null(informer_get(inf, ns, str_at(obj,
		    "metadata", "name")));
		r->deleted++;
		break;
	}
	if (obj != NULL) {
		/* Listed items get the list's kind, as events have it. */
		ck_assert_str_eq(str_at(obj, "kind", NULL), "ConfigMap");
		ck_assert_str_eq(str_at(obj, "apiVersion", NULL), "v1");
		ck_assert_str_eq(str_at(obj, "metadata", "namespace"), ns);
		as_strlcpy(e->name, str_at(obj, "metadata", "name"),
		    sizeof e->name);
		as_strlcpy(e->rv, str_at(obj, "metadata", "resourceVersion"),
		    sizeof e->rv);
		as_strlcpy(e->value, str_at(obj, "data", "k"),
		    sizeof e->value);
	}
	if (r->free_on == r->n) {
		informer_free(inf);
		r->freed = 1;
		informer_free(NULL);
	}
}

static struct informer *
inf_new(struct k8s_client *c, struct rec *r, struct informer_options *o)
{
	struct informer_options def;
	char		 err[256] = "";

	if (o == NULL) {
		memset(&def, 0, sizeof def);
		o = &def;
	}
	o->path = cm_path;
	if (o->backoff_base == 0)
		o->backoff_base = 0.05;
	if (o->backoff_cap == 0)
		o->backoff_cap = 0.3;
	r->inf = informer_new(c, o, on_event, r, err, sizeof err);
	ck_assert_msg(r->inf != NULL, "informer_new: %s", err);
	return (r->inf);
}

/*
 * A client and an informer of cm_path (o: options or NULL) recording into
 * r; returns the informer once its first LIST is in (SYNCED).
 */
static struct informer *
inf_synced(struct rec *r, struct informer_options *o)
{
	r->c = client_new(0);
	inf_new(r->c, r, o);
	ck_assert_msg(tu_run_count(loop, &r->synced, 1, WAIT), "never "
	    "SYNCED (%d events)", r->n);
	return (r->inf);
}

/* Frees what inf_synced() made, the informer first. */
static void
inf_end(struct rec *r)
{
	informer_free(r->inf);
	k8s_client_free(r->c);
}

static void
expect(const struct rec *r, int k, enum informer_event type,
    const char *name, const char *value)
{
	ck_assert_msg(k < r->n, "event %d missing (have %d)", k, r->n);
	ck_assert_msg(r->ev[k].type == type, "event %d: type %d, want %d "
	    "(%s)", k, r->ev[k].type, type, r->ev[k].name);
	if (name != NULL)
		ck_assert_str_eq(r->ev[k].name, name);
	if (value != NULL)
		ck_assert_str_eq(r->ev[k].value, value);
}

static struct informer_stats
stats(const struct informer *inf)
{
	struct informer_stats st;

	informer_get_stats(inf, &st);
	return (st);
}

/*
 * The cache holds exactly what kube-sim lists (with the selector, encoded),
 * at the same resourceVersions.
 */
static void
cache_matches(const struct informer *inf, const char *enc_selector)
{
	cJSON		*j, *it;
	const cJSON	*o;
	char		 path[512], *body = NULL;
	size_t		 n = 0;

	snprintf(path, sizeof path, "%s%s%s", cm_path, enc_selector != NULL ?
	    "?labelSelector=" : "", enc_selector != NULL ? enc_selector : "");
	ck_assert_int_eq(ks_api("GET", path, NULL, NULL, &body), 200);
	ck_assert_ptr_nonnull(j = cJSON_Parse(body));
	free(body);
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "items")) {
		o = informer_get(inf, ns, str_at(it, "metadata", "name"));
		ck_assert_msg(o != NULL, "%s not cached", str_at(it,
		    "metadata", "name"));
		ck_assert_str_eq(str_at(o, "metadata", "resourceVersion"),
		    str_at(it, "metadata", "resourceVersion"));
		n++;
	}
	cJSON_Delete(j);
	ck_assert_uint_eq(informer_size(inf), n);
}

static void
count_cb(const cJSON *obj, void *arg)
{
	ck_assert_ptr_nonnull(obj);
	(*(size_t *)arg)++;
}

START_TEST(test_list_paged)
{
	struct informer_options o;
	struct informer	*inf;
	struct rec	 r;
	struct ks_req	 reqs[8];
	const char	*lim[] = { "limit=3", NULL };
	const char	*cont[] = { "limit=3", "continue=", NULL };
	const char	*wat[] = { "watch=true", NULL };
	char		 name[16], rv[32], want[64];
	size_t		 n = 0;
	long		 seq;
	int		 k;

	memset(&r, 0, sizeof r);
	memset(&o, 0, sizeof o);
	for (k = 0; k < 7; k++) {
		snprintf(name, sizeof name, "c%d", k);
		cm_create(name, NULL, "v");
	}
	ks_rv(rv, sizeof rv);
	seq = ks_seq();
	r.c = client_new(0);
	o.page_size = 3;
	o.compact = r.compact = _i;
	inf = inf_new(r.c, &r, &o);
	ck_assert(!informer_synced(inf));
	ck_assert_uint_eq(informer_size(inf), 0);
	ck_assert_str_eq(informer_resource_version(inf), "");
	ck_assert(tu_run_count(loop, &r.synced, 1, WAIT));

	/* Seven ADDED in list order, then one SYNCED. */
	ck_assert_int_eq(r.n, 8);
	for (k = 0; k < 7; k++) {
		snprintf(name, sizeof name, "c%d", k);
		expect(&r, k, INFORMER_ADDED, name, "v");
	}
	expect(&r, 7, INFORMER_SYNCED, NULL, NULL);
	ck_assert(informer_synced(inf));
	ck_assert_uint_eq(informer_size(inf), 7);
	informer_foreach(inf, count_cb, &n);
	ck_assert_uint_eq(n, 7);
	ck_assert_ptr_null(informer_get(inf, ns, "nope"));
	ck_assert_ptr_null(informer_get(inf, "other", "c1"));
	cache_matches(inf, NULL);
	ck_assert_str_eq(informer_resource_version(inf), rv);

	/* Paging happened: three pages of at most 3, two with continue. */
	ck_assert_int_eq(ks_gets(seq, lim, NULL, reqs, 8), 3);
	ck_assert_int_eq(ks_gets(seq, cont, NULL, reqs, 8), 2);
	ck_assert_int_eq(stats(inf).lists, 1);
	ck_assert_int_eq(stats(inf).events, 7);
	ck_assert_int_eq(stats(inf).errors, 0);
	ck_assert_int_eq(stats(inf).watches, 1);
	/* The watch starts from the list's resourceVersion. */
	ck_assert(tu_run_until(loop, pred_watching, &seq0, WAIT));
	ck_assert_int_eq(ks_gets(seq, wat, NULL, reqs, 8), 1);
	ck_assert_ptr_nonnull(strstr(reqs[0].query, "allowWatchBookmarks="
	    "true"));
	ck_assert_ptr_nonnull(strstr(reqs[0].query, "timeoutSeconds=300"));
	snprintf(want, sizeof want, "resourceVersion=%s", rv);
	ck_assert_ptr_nonnull(strstr(reqs[0].query, want));
	inf_end(&r);
}
END_TEST

static int
pred_rv_current(void *arg)
{
	char	 rv[32];

	ks_rv(rv, sizeof rv);
	return (strcmp(informer_resource_version(arg), rv) == 0);
}

START_TEST(test_watch_events)
{
	struct informer_options o;
	struct informer	*inf;
	struct rec	 r;

	memset(&r, 0, sizeof r);
	memset(&o, 0, sizeof o);
	o.compact = r.compact = _i;
	cm_create("a", NULL, "v");
	cm_create("b", NULL, "v");
	cm_create("c", NULL, "v");
	inf = inf_synced(&r, &o);
	ck_assert_int_eq(r.n, 4);

	cm_create("d", NULL, "v");
	cm_patch("b", "{\"data\":{\"k\":\"v2\"}}");
	cm_delete("c");
	ck_assert(tu_run_count(loop, &r.n, 7, WAIT));
	expect(&r, 4, INFORMER_ADDED, "d", "v");
	expect(&r, 5, INFORMER_MODIFIED, "b", "v2");
	expect(&r, 6, INFORMER_DELETED, "c", "v");	/* its last state */
	ck_assert_ptr_nonnull(informer_get(inf, ns, "d"));
	ck_assert_ptr_null(informer_get(inf, ns, "c"));
	ck_assert_str_eq(str_at(informer_get(inf, ns, "b"), "data", "k"),
	    "v2");
	cache_matches(inf, NULL);
	ck_assert(tu_run_until(loop, pred_rv_current, inf, WAIT));
	ck_assert_int_eq(stats(inf).events, 6);
	ck_assert_int_eq(stats(inf).lists, 1);
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(r.n, 7);	/* nothing twice */
	inf_end(&r);
}
END_TEST

/*
 * The transform hook: keeps "data.k" only, marked, and drops metadata.uid;
 * counts its calls.
 */
static void
tr_slim(cJSON *obj, void *arg)
{
	cJSON		*md, *data;
	const cJSON	*k;
	char		 v[64];

	(*(int *)arg)++;
	md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	data = cJSON_GetObjectItemCaseSensitive(obj, "data");
	k = cJSON_GetObjectItemCaseSensitive(data, "k");
	snprintf(v, sizeof v, "T:%s", cJSON_IsString(k) ? k->valuestring : "");
	cJSON_DeleteItemFromObjectCaseSensitive(md, "uid");
	cJSON_DeleteItemFromObjectCaseSensitive(obj, "data");
	data = cJSON_AddObjectToObject(obj, "data");
	cJSON_AddStringToObject(data, "k", v);
}

/*
 * Every object, listed or watched, deleted ones too, goes through the
 * transform once before it is cached and reported.
 */
START_TEST(test_transform)
{
	struct informer_options o;
	struct informer	*inf;
	struct rec	 r;
	const cJSON	*b;
	int		 calls = 0;

	memset(&r, 0, sizeof r);
	memset(&o, 0, sizeof o);
	o.transform = tr_slim;
	o.transform_arg = &calls;
	o.compact = r.compact = _i;
	cm_create("a", NULL, "v");
	cm_create("b", NULL, "v");
	cm_create("c", NULL, "v");
	inf = inf_synced(&r, &o);
	ck_assert_int_eq(r.n, 4);
	expect(&r, 0, INFORMER_ADDED, "a", "T:v");
	ck_assert_int_eq(calls, 3);

	cm_create("d", NULL, "v");
	cm_patch("b", "{\"data\":{\"k\":\"v2\"}}");
	cm_delete("c");
	ck_assert(tu_run_count(loop, &r.n, 7, WAIT));
	expect(&r, 4, INFORMER_ADDED, "d", "T:v");
	expect(&r, 5, INFORMER_MODIFIED, "b", "T:v2");
	expect(&r, 6, INFORMER_DELETED, "c", "T:v");
	ck_assert_int_eq(calls, 6);
	ck_assert_ptr_nonnull(b = informer_get(inf, ns, "b"));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(b, "metadata"), "uid"));
	ck_assert_str_eq(str_at(b, "data", "k"), "T:v2");
	/* What the cache needs stays: the resourceVersions match. */
	cache_matches(inf, NULL);
	inf_end(&r);
}
END_TEST

START_TEST(test_label_selector)
{
	struct informer_options o;
	struct informer	*inf;
	struct rec	 r;
	struct ks_req	 reqs[4];
	const char	*enc = "app%3Dweb%2Ctier%20in%20%28front%2C%20back%29";
	const char	*lim[] = { "limit=", NULL };
	long		 seq;

	memset(&r, 0, sizeof r);
	memset(&o, 0, sizeof o);
	cm_create("m1", "{\"app\":\"web\",\"tier\":\"front\"}", "v");
	cm_create("m2", "{\"app\":\"web\",\"tier\":\"back\"}", "v");
	cm_create("x1", "{\"app\":\"db\",\"tier\":\"front\"}", "v");
	cm_create("x2", "{\"app\":\"web\"}", "v");
	seq = ks_seq();
	/* Spaces, parentheses and commas: all must be encoded. */
	o.label_selector = "app=web,tier in (front, back)";
	inf = inf_synced(&r, &o);
	ck_assert_int_eq(r.added, 2);
	ck_assert_uint_eq(informer_size(inf), 2);
	ck_assert_ptr_nonnull(informer_get(inf, ns, "m1"));
	ck_assert_ptr_nonnull(informer_get(inf, ns, "m2"));
	ck_assert_int_eq(ks_gets(seq, lim, NULL, reqs, 4), 1);
	ck_assert_msg(strstr(reqs[0].query, enc) != NULL, "query %s",
	    reqs[0].query);

	/* Entering the selector is ADDED, leaving it DELETED. */
	cm_patch("x1", "{\"metadata\":{\"labels\":{\"app\":\"web\"}}}");
	cm_patch("m2", "{\"metadata\":{\"labels\":{\"tier\":\"mid\"}}}");
	cm_create("x3", "{\"app\":\"db\"}", "v");
	cm_create("m3", "{\"app\":\"web\",\"tier\":\"back\"}", "v");
	ck_assert(tu_run_count(loop, &r.n, 6, WAIT));
	expect(&r, 3, INFORMER_ADDED, "x1", NULL);
	expect(&r, 4, INFORMER_DELETED, "m2", NULL);
	expect(&r, 5, INFORMER_ADDED, "m3", NULL);
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(r.n, 6);	/* x3 never matched */
	cache_matches(inf, enc);
	inf_end(&r);
}
END_TEST

/* A field selector, encoded, on LIST and WATCH. */
START_TEST(test_field_selector)
{
	struct informer_options o;
	struct rec	 r;
	struct ks_req	 reqs[4];
	const char	*sel[] = { "fieldSelector=metadata.name%21%3Df1", NULL };
	long		 seq;

	memset(&r, 0, sizeof r);
	memset(&o, 0, sizeof o);
	cm_create("f1", NULL, "v");
	cm_create("f2", NULL, "v");
	seq = ks_seq();
	o.field_selector = "metadata.name!=f1";
	inf_synced(&r, &o);
	ck_assert_int_eq(r.n, 2);
	expect(&r, 0, INFORMER_ADDED, "f2", NULL);
	cm_patch("f1", "{\"data\":{\"k\":\"v2\"}}");
	cm_create("f3", NULL, "v");
	ck_assert(tu_run_count(loop, &r.n, 3, WAIT));
	expect(&r, 2, INFORMER_ADDED, "f3", NULL);
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(r.n, 3);
	ck_assert(tu_run_until(loop, pred_watching, &seq0, WAIT));
	ck_assert_int_eq(ks_gets(seq, sel, NULL, reqs, 4), 2);	/* LIST, WATCH */
	inf_end(&r);
}
END_TEST

/* Any collection: cluster-scoped namespaces, keyed by name alone. */
struct any_rec {
	int	 added;
	int	 synced;
	char	 name[64];
};

static void
on_any(struct informer *inf, enum informer_event type, const cJSON *obj,
    void *arg)
{
	struct any_rec	*a = arg;

	(void)inf;
	if (type == INFORMER_SYNCED)
		a->synced++;
	else if (type == INFORMER_ADDED) {
		a->added++;
		as_strlcpy(a->name, str_at(obj, "metadata", "name"),
		    sizeof a->name);
		ck_assert_str_eq(str_at(obj, "kind", NULL), "Namespace");
	}
}

START_TEST(test_cluster_scoped)
{
	struct informer_options o;
	struct k8s_client *c;
	struct informer	*inf;
	struct any_rec	 a;
	char		 sel[128], err[256];

	memset(&a, 0, sizeof a);
	memset(&o, 0, sizeof o);
	snprintf(sel, sizeof sel, "kubernetes.io/metadata.name=%s", ns);
	o.path = "/api/v1/namespaces";
	o.label_selector = sel;
	c = client_new(0);
	ck_assert_ptr_nonnull(inf = informer_new(c, &o, on_any, &a, err,
	    sizeof err));
	ck_assert(tu_run_count(loop, &a.synced, 1, WAIT));
	ck_assert_int_eq(a.added, 1);
	ck_assert_str_eq(a.name, ns);
	ck_assert_ptr_nonnull(informer_get(inf, NULL, ns));
	ck_assert_ptr_nonnull(informer_get(inf, "", ns));
	ck_assert_uint_eq(informer_size(inf), 1);
	informer_free(inf);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_bookmarks)
{
	struct informer	*inf;
	struct rec	 r;
	char		 body[256];

	memset(&r, 0, sizeof r);
	cm_create("a", NULL, "v");
	inf = inf_synced(&r, NULL);
	/* A write elsewhere moves the global version, with no event here. */
	snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"%s-other\"}}",
	    ns);
	ck_assert_int_eq(ks_api("POST", "/api/v1/namespaces", NULL, body,
	    NULL), 201);
	ck_assert(tu_run_until(loop, pred_rv_current, inf, WAIT));
	ck_assert_int_ge(stats(inf).bookmarks, 1);
	ck_assert_int_eq(r.n, 2);
	ck_assert_int_eq(stats(inf).events, 1);
	ck_assert_int_eq(stats(inf).lists, 1);
	inf_end(&r);
}
END_TEST

/* Counters of the informer's stats to reach: at least these. */
struct stat_wait {
	const struct informer *inf;
	uint64_t	 watches;
	uint64_t	 errors;
};

static int
pred_stats(void *arg)
{
	const struct stat_wait *w = arg;
	struct informer_stats st;

	informer_get_stats(w->inf, &st);
	return (st.watches >= w->watches && st.errors >= w->errors);
}

/* Turns the loop until inf has started watches and failed errors times. */
static void
wait_stats(const struct informer *inf, uint64_t watches, uint64_t errors)
{
	struct stat_wait w = { inf, watches, errors };

	ck_assert_msg(tu_run_until(loop, pred_stats, &w, WAIT), "wanted %ju "
	    "watches, %ju errors; have %ju, %ju", (uintmax_t)watches,
	    (uintmax_t)errors, (uintmax_t)stats(inf).watches,
	    (uintmax_t)stats(inf).errors);
}

START_TEST(test_drop_watches)
{
	struct informer	*inf;
	struct rec	 r;
	struct ks_req	 reqs[4];
	const char	*wat[] = { "watch=true", NULL };
	const char	*lim[] = { "limit=", NULL };
	char		 rv[32], want[64];
	const char	*p;
	long		 seq;

	memset(&r, 0, sizeof r);
	cm_create("a", NULL, "v");
	inf = inf_synced(&r, NULL);
	cm_create("b", NULL, "v");
	ck_assert(tu_run_count(loop, &r.n, 3, WAIT));
	ck_assert(tu_run_until(loop, pred_watching, &seq0, WAIT));
	as_strlcpy(rv, informer_resource_version(inf), sizeof rv);
	seq = ks_seq();

	ck_assert_int_eq(ks_admin("POST", "/drop-watches", "{}", NULL), 200);
	wait_stats(inf, 2, 0);
	cm_create("c", NULL, "v");
	ck_assert(tu_run_count(loop, &r.n, 4, WAIT));
	expect(&r, 0, INFORMER_ADDED, "a", NULL);
	expect(&r, 1, INFORMER_SYNCED, NULL, NULL);
	expect(&r, 2, INFORMER_ADDED, "b", NULL);
	expect(&r, 3, INFORMER_ADDED, "c", NULL);
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(r.n, 4);
	/* Reopened from the last version, without a LIST. */
	ck_assert_int_eq(stats(inf).lists, 1);
	ck_assert_int_eq(stats(inf).errors, 0);
	ck_assert_int_eq(ks_gets(seq, lim, NULL, reqs, 4), 0);
	ck_assert_int_ge(ks_gets(seq, wat, NULL, reqs, 4), 1);
	snprintf(want, sizeof want, "resourceVersion=%s", rv);
	p = strstr(reqs[0].query, want);
	ck_assert_msg(p != NULL && (p[strlen(want)] == '\0' ||
	    p[strlen(want)] == '&'), "query %s, want %s", reqs[0].query, want);
	inf_end(&r);
}
END_TEST

/* Watches the server ends (timeoutSeconds) are reopened, never re-listed. */
START_TEST(test_watch_timeout_rewatch)
{
	struct informer_options o;
	struct informer	*inf;
	struct rec	 r;
	struct ks_req	 reqs[8];
	const char	*wat[] = { "watch=true", "timeoutSeconds=1", NULL };
	long		 seq;

	memset(&r, 0, sizeof r);
	memset(&o, 0, sizeof o);
	cm_create("a", NULL, "v");
	seq = ks_seq();
	o.watch_timeout = 1;
	inf = inf_synced(&r, &o);
	wait_stats(inf, 3, 0);
	cm_create("b", NULL, "v");
	ck_assert(tu_run_count(loop, &r.n, 3, WAIT));
	expect(&r, 2, INFORMER_ADDED, "b", NULL);
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(r.n, 3);
	ck_assert_int_eq(stats(inf).lists, 1);
	ck_assert_int_eq(stats(inf).errors, 0);
	ck_assert_int_ge(ks_gets(seq, wat, NULL, reqs, 8), 3);
	ck_assert_int_eq(reqs[0].code, 200);
	inf_end(&r);
}
END_TEST

/*
 * An event line beyond the 16 MiB bound is an error; the informer
 * re-lists (LIST bodies may be larger) and reports the object from there.
 */
START_TEST(test_event_too_large)
{
	struct informer	*inf;
	struct rec	 r;
	struct wrec	 w;
	char		*big, *body;
	size_t		 len = 17 * 1024 * 1024;

	memset(&r, 0, sizeof r);
	cm_create("a", NULL, "v");
	inf = inf_synced(&r, NULL);
	big = xmalloc(len + 1);
	memset(big, 'x', len);
	big[len] = '\0';
	body = xasprintf("{\"metadata\":{\"name\":\"big\"},\"data\":"
	    "{\"k\":\"%s\"}}", big);
	free(big);
	/* Through our client: the loop keeps reading the watch meanwhile. */
	memset(&w, 0, sizeof w);
	w.returned = 1;
	ck_assert_ptr_nonnull(k8s_client_request(r.c, "POST", cm_path, NULL,
	    body, w_done, &w));
	free(body);
	ck_assert(tu_run_count(loop, &w.done, 1, WAIT));
	ck_assert_msg(w.err == 0, "create big: %s", w.msg);
	ck_assert(tu_run_count(loop, &r.synced, 2, WAIT));
	ck_assert_int_eq(r.n, 4);
	expect(&r, 2, INFORMER_ADDED, "big", NULL);
	expect(&r, 3, INFORMER_SYNCED, NULL, NULL);
	ck_assert_int_eq(stats(inf).errors, 1);
	ck_assert_int_eq(stats(inf).lists, 2);
	ck_assert_int_eq(stats(inf).relists_gone, 0);
	ck_assert_uint_eq(strlen(str_at(informer_get(inf, ns, "big"), "data",
	    "k")), len);
	inf_end(&r);
}
END_TEST

/*
 * The watch is kept down (503s) while objects change, history is
 * compacted, the watch comes back: ERROR 410, re-list, and the difference
 * is reported.
 */
START_TEST(test_compact_relist)
{
	struct informer_options o;
	struct informer	*inf;
	struct rec	 r;

	memset(&r, 0, sizeof r);
	memset(&o, 0, sizeof o);
	o.compact = r.compact = _i;
	cm_create("a", NULL, "v");
	cm_create("b", NULL, "v");
	cm_create("c", NULL, "v");
	inf = inf_synced(&r, &o);
	ck_assert(tu_run_until(loop, pred_watching, &seq0, WAIT));
	tu_kubesim_fault(&ks, "GET", "watch=true", 503, 100000, -1);
	ck_assert_int_eq(ks_admin("POST", "/drop-watches", "{}", NULL), 200);
	wait_stats(inf, 0, 2);

	cm_delete("b");
	cm_create("d", NULL, "v");
	cm_patch("c", "{\"data\":{\"k\":\"v2\"}}");
	ck_assert_int_eq(ks_admin("POST", "/compact", "{}", NULL), 200);
	ck_assert_int_eq(ks_admin("DELETE", "/faults", NULL, NULL), 200);
	ck_assert(tu_run_count(loop, &r.synced, 2, WAIT));

	ck_assert_int_eq(r.n, 4 + 4);
	expect(&r, 4, INFORMER_DELETED, "b", "v");
	expect(&r, 5, INFORMER_MODIFIED, "c", "v2");
	expect(&r, 6, INFORMER_ADDED, "d", "v");
	expect(&r, 7, INFORMER_SYNCED, NULL, NULL);
	ck_assert_int_eq(stats(inf).relists_gone, 1);
	ck_assert_int_eq(stats(inf).lists, 2);
	ck_assert_int_eq(stats(inf).events, 3 + 3);
	cache_matches(inf, NULL);
	/* And it watches again from the new list. */
	cm_create("e", NULL, "v");
	ck_assert(tu_run_count(loop, &r.n, 9, WAIT));
	expect(&r, 8, INFORMER_ADDED, "e", NULL);
	inf_end(&r);
}
END_TEST

/* 410 as a plain status on the watch: re-list, nothing changed, no events. */
START_TEST(test_watch_status_410)
{
	struct informer	*inf;
	struct rec	 r;

	memset(&r, 0, sizeof r);
	cm_create("a", NULL, "v");
	tu_kubesim_fault(&ks, "GET", "watch=true", 410, 1, -1);
	inf = inf_synced(&r, NULL);
	ck_assert(tu_run_count(loop, &r.synced, 2, WAIT));
	ck_assert_int_eq(r.n, 3);
	expect(&r, 0, INFORMER_ADDED, "a", NULL);
	expect(&r, 1, INFORMER_SYNCED, NULL, NULL);
	expect(&r, 2, INFORMER_SYNCED, NULL, NULL);
	ck_assert_int_eq(stats(inf).relists_gone, 1);
	ck_assert_int_eq(stats(inf).lists, 2);
	ck_assert_int_eq(stats(inf).errors, 0);
	inf_end(&r);
}
END_TEST

struct cont_arg {
	long	 seq;
};

static int
pred_cont_in_flight(void *arg)
{
	struct cont_arg	*a = arg;
	struct ks_req	 reqs[4];
	const char	*cont[] = { "continue=", NULL };

	return (ks_gets(a->seq, cont, NULL, reqs, 4) >= 1 &&
	    reqs[0].code == -1);
}

/* History compacted while a continue is on its way: real 410, restart. */
START_TEST(test_continue_expired)
{
	struct informer_options o;
	struct informer	*inf;
	struct rec	 r;
	struct cont_arg	 a;
	struct ks_req	 reqs[16];
	const char	*cont[] = { "continue=", NULL };
	const char	*first[] = { "limit=2", NULL };
	const char	*nocont[] = { "continue=", NULL };
	char		 name[16];
	int		 k, n;

	memset(&r, 0, sizeof r);
	memset(&o, 0, sizeof o);
	for (k = 0; k < 6; k++) {
		snprintf(name, sizeof name, "p%d", k);
		cm_create(name, NULL, "v");
	}
	ck_assert_int_eq(ks_admin("POST", "/latency", "{\"ms\":3000,"
	    "\"path\":\"continue=\"}", NULL) / 100, 2);
	a.seq = ks_seq();
	r.c = client_new(0);
	o.page_size = 2;
	inf = inf_new(r.c, &r, &o);
	ck_assert(tu_run_until(loop, pred_cont_in_flight, &a, WAIT));
	ck_assert_int_eq(ks_admin("POST", "/compact", "{}", NULL), 200);
	ck_assert_int_eq(ks_admin("DELETE", "/latency", NULL, NULL), 200);
	ck_assert(tu_run_count(loop, &r.synced, 1, WAIT));

	ck_assert_int_eq(r.n, 7);
	for (k = 0; k < 6; k++) {
		snprintf(name, sizeof name, "p%d", k);
		expect(&r, k, INFORMER_ADDED, name, NULL);
	}
	ck_assert_int_eq(stats(inf).lists, 1);
	n = ks_gets(a.seq, cont, NULL, reqs, 16);
	ck_assert_int_ge(n, 3);
	ck_assert_int_eq(reqs[0].code, 410);
	/* Two first pages: the one before and the one after the 410. */
	ck_assert_int_eq(ks_gets(a.seq, first, nocont, reqs, 16), 2);
	cache_matches(inf, NULL);
	inf_end(&r);
}
END_TEST

START_TEST(test_list_500_backoff)
{
	struct informer_options o;
	struct tu_capture cap;
	struct informer	*inf;
	struct rec	 r;
	struct ks_req	 reqs[8];
	const char	*lim[] = { "limit=", NULL };
	char		*log;
	long		 seq;

	memset(&r, 0, sizeof r);
	memset(&o, 0, sizeof o);
	cm_create("a", NULL, "v");
	tu_kubesim_fault(&ks, "GET", "limit=", 500, 2, -1);
	seq = ks_seq();
	/* The informer's backoff, not the client's. */
	r.c = client_new(-1);
	o.backoff_base = 0.2;
	o.backoff_cap = 1;
	o.log_name = "test-cms";
	tu_capture_start(&cap);
	inf = inf_new(r.c, &r, &o);
	ck_assert(tu_run_count(loop, &r.synced, 1, WAIT));
	log = tu_capture_end(&cap);
	ck_assert_int_eq(r.n, 2);
	ck_assert_int_eq(stats(inf).errors, 2);
	ck_assert_int_eq(stats(inf).lists, 1);
	ck_assert_int_eq(ks_gets(seq, lim, NULL, reqs, 8), 3);
	ck_assert_int_eq(reqs[0].code, 500);
	ck_assert_int_eq(reqs[1].code, 500);
	ck_assert_int_eq(reqs[2].code, 200);
	/* Each retry waited at least the smallest backoff (base / 2). */
	ck_assert_msg(reqs[1].mono - reqs[0].mono >= 0.1, "%f",
	    reqs[1].mono - reqs[0].mono);
	ck_assert_msg(reqs[2].mono - reqs[1].mono >= 0.1, "%f",
	    reqs[2].mono - reqs[1].mono);
	ck_assert_msg(strstr(log, "test-cms: LIST failed: 500 InternalError")
	    != NULL, "log: %s", log);
	ck_assert_msg(strstr(log, "test-cms: recovered after 2 failures") !=
	    NULL, "log: %s", log);
	free(log);
	inf_end(&r);
}
END_TEST

START_TEST(test_pause_resume)
{
	struct informer	*inf;
	struct rec	 r;

	memset(&r, 0, sizeof r);
	cm_create("a", NULL, "v");
	inf = inf_synced(&r, NULL);
	cm_create("b", NULL, "v");
	ck_assert(tu_run_count(loop, &r.n, 3, WAIT));

	ck_assert_int_eq(ks_admin("POST", "/pause", "{}", NULL), 200);
	wait_stats(inf, 0, 2);
	ck_assert_int_eq(ks_admin("POST", "/resume", "{}", NULL), 200);
	cm_create("c", NULL, "v");
	ck_assert(tu_run_count(loop, &r.n, 4, WAIT));
	expect(&r, 3, INFORMER_ADDED, "c", NULL);
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(r.n, 4);
	/* Back from the last version: no re-list was needed. */
	ck_assert_int_eq(stats(inf).lists, 1);
	cache_matches(inf, NULL);
	inf_end(&r);
}
END_TEST

/*
 * informer_free inside the callback: during the initial list's ADDEDs, at
 * SYNCED, at a watch event, at a re-list's DELETED; nothing comes after.
 */
static const int free_at[] = { 1, 4, 5, 5 };

START_TEST(test_free_in_callback)
{
	struct k8s_client *c;
	struct rec	 r;

	memset(&r, 0, sizeof r);
	cm_create("a", NULL, "v");
	cm_create("b", NULL, "v");
	cm_create("z", NULL, "v");
	if (_i == 3)
		/* The watch is kept down until history is compacted. */
		tu_kubesim_fault(&ks, "GET", "watch=true", 503, 100000, -1);
	c = client_new(0);
	r.free_on = free_at[_i];
	inf_new(c, &r, NULL);
	if (_i == 2 || _i == 3) {
		ck_assert(tu_run_count(loop, &r.synced, 1, WAIT));
		if (_i == 2)
			cm_create("d", NULL, "v");
		else {
			cm_delete("z");
			ck_assert_int_eq(ks_admin("POST", "/compact", "{}",
			    NULL), 200);
			ck_assert_int_eq(ks_admin("DELETE", "/faults", NULL,
			    NULL), 200);
		}
	}
	ck_assert(tu_run_count(loop, &r.freed, 1, WAIT));
	ck_assert_int_eq(r.n, free_at[_i]);
	if (_i == 3)
		expect(&r, 4, INFORMER_DELETED, "z", NULL);
	cm_create("late", NULL, "v");
	tu_run_for(loop, 0.5);
	ck_assert_int_eq(r.n, free_at[_i]);
	k8s_client_free(c);
}
END_TEST

/* informer_free from outside: while listing (slowly), while watching. */
START_TEST(test_free_outside)
{
	struct k8s_client *c;
	struct informer	*inf;
	struct rec	 r;

	memset(&r, 0, sizeof r);
	cm_create("a", NULL, "v");
	c = client_new(0);
	ck_assert_int_eq(ks_admin("POST", "/latency", "{\"ms\":500,"
	    "\"path\":\"limit=\"}", NULL) / 100, 2);
	inf = inf_new(c, &r, NULL);
	tu_run_for(loop, 0.1);
	informer_free(inf);
	r.freed = 1;
	tu_run_for(loop, 0.8);
	ck_assert_int_eq(r.n, 0);

	ks_admin("DELETE", "/latency", NULL, NULL);
	memset(&r, 0, sizeof r);
	inf = inf_new(c, &r, NULL);
	ck_assert(tu_run_count(loop, &r.synced, 1, WAIT));
	ck_assert(tu_run_until(loop, pred_watching, &seq0, WAIT));
	informer_free(inf);
	r.freed = 1;
	cm_create("b", NULL, "v");
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(r.n, 2);

	/* The wrong order, the client first: the informer just stops. */
	memset(&r, 0, sizeof r);
	inf = inf_new(c, &r, NULL);
	ck_assert(tu_run_count(loop, &r.synced, 1, WAIT));
	k8s_client_free(c);
	cm_create("c", NULL, "v");
	tu_run_for(loop, 0.5);
	ck_assert_int_eq(r.n, 3);
	ck_assert(informer_synced(inf));
	ck_assert_uint_eq(informer_size(inf), 2);
	informer_free(inf);
}
END_TEST

START_TEST(test_bad_options)
{
	struct informer_options o;
	struct k8s_client *c;
	struct rec	 r;
	char		 err[256];

	memset(&r, 0, sizeof r);
	c = client_new(0);
	memset(&o, 0, sizeof o);
	o.path = cm_path;
	ck_assert_ptr_null(informer_new(NULL, &o, on_event, &r, err,
	    sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "no client"));
	ck_assert_ptr_null(informer_new(c, NULL, on_event, &r, err,
	    sizeof err));
	ck_assert_ptr_null(informer_new(c, &o, NULL, &r, err, sizeof err));
	o.path = "api/v1/configmaps";
	ck_assert_ptr_null(informer_new(c, &o, on_event, &r, err,
	    sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "must start with"));
	o.path = "/api/v1/configmaps?labelSelector=a";
	ck_assert_ptr_null(informer_new(c, &o, on_event, &r, err,
	    sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "give selectors as options"));
	o.path = cm_path;
	o.page_size = -1;
	ck_assert_ptr_null(informer_new(c, &o, on_event, &r, err,
	    sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "must not be negative"));
	o.page_size = 0;
	o.backoff_cap = -1;
	ck_assert_ptr_null(informer_new(c, &o, on_event, &r, err,
	    sizeof err));
	informer_free(NULL);
	ck_assert(!informer_synced(NULL));
	ck_assert_uint_eq(informer_size(NULL), 0);
	ck_assert_ptr_null(informer_get(NULL, "a", "b"));
	k8s_client_free(c);
}
END_TEST

static Suite *
informer_suite(void)
{
	Suite	*s = suite_create("informer");
	TCase	*tc;

	tc = tu_tcase(s, "stream", 120, ks_setup, ks_teardown, test_setup,
	    test_teardown);
	tcase_add_test(tc, test_stream_incremental);
	tcase_add_test(tc, test_stream_clean_end);
	tcase_add_test(tc, test_stream_error_status);
	tcase_add_test(tc, test_stream_no_retries);
	tcase_add_test(tc, test_stream_line_too_long);
	tcase_add_test(tc, test_stream_idle);
	tcase_add_test(tc, test_stream_dropped);
	tcase_add_loop_test(tc, test_stream_stop_in_line, 0, 2);

	tc = tu_tcase(s, "stream-tokens", 120, ks_setup_tokens, ks_teardown,
	    test_setup, test_teardown);
	tcase_add_test(tc, test_stream_token);

	tc = tu_tcase(s, "informer", 120, ks_setup, ks_teardown, test_setup,
	    test_teardown);
	/* _i: informer_options.compact off, on */
	tcase_add_loop_test(tc, test_list_paged, 0, 2);
	/* _i: informer_options.compact off, on */
	tcase_add_loop_test(tc, test_watch_events, 0, 2);
	/* _i: informer_options.compact off, on */
	tcase_add_loop_test(tc, test_transform, 0, 2);
	tcase_add_test(tc, test_label_selector);
	tcase_add_test(tc, test_field_selector);
	tcase_add_test(tc, test_cluster_scoped);
	tcase_add_test(tc, test_bookmarks);
	tcase_add_test(tc, test_drop_watches);
	tcase_add_test(tc, test_watch_timeout_rewatch);
	tcase_add_test(tc, test_event_too_large);
	/* _i: informer_options.compact off, on */
	tcase_add_loop_test(tc, test_compact_relist, 0, 2);
	tcase_add_test(tc, test_watch_status_410);
	tcase_add_test(tc, test_continue_expired);
	tcase_add_test(tc, test_list_500_backoff);
	tcase_add_test(tc, test_pause_resume);
	tcase_add_loop_test(tc, test_free_in_callback, 0,
	    (int)AS_ARRAY_SIZE(free_at));
	tcase_add_test(tc, test_free_outside);
	tcase_add_test(tc, test_bad_options);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(informer_suite()));
}
