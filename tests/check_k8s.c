/*
 * check_k8s.c: the Kubernetes client.  Pure cases first (Scale parsing,
 * Status messages, kinds, error classes, Retry-After, in-cluster options),
 * then the client against nothing (arguments, cancel, connection refused),
 * then against the real tools/kube-sim, one instance per test case, reset
 * between tests.  Each client test drives a private ev loop until its
 * completions have run, with a bounded deadline.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/k8s/k8s.h"
#include "util/loop.h"
#include "util/testutil.h"

/* TESTABLE functions of k8s/client.c. */
int	 k8s_client_classify(int curl_ok, long code, int *retry);
double	 k8s_client_retry_after(const char *value, time_t now);

#define WAIT	30.0	/* seconds; a deadline, not a speed check */

/* ---- pure: k8s_scale_parse ---- */

struct parse_row {
	const char	*name;
	const char	*body;
	int		 len;	/* -1: strlen */
	int		 rc;
	long		 spec;
	long		 status;
	const char	*err;	/* substring of the reason */
};

#define SCALE_OK "{\"apiVersion\":\"autoscaling/v1\",\"kind\":\"Scale\"," \
	"\"metadata\":{\"name\":\"web\",\"namespace\":\"default\"}," \
	"\"spec\":{\"replicas\":3},\"status\":{\"replicas\":2," \
	"\"selector\":\"app=web\"}}"

static const struct parse_row parse_rows[] = {
	{ "good", SCALE_OK, -1, 0, 3, 2, NULL },
	{ "zero replicas omit spec.replicas",
	    "{\"kind\":\"Scale\",\"spec\":{},\"status\":{\"replicas\":0}}", -1,
	    0, 0, 0, NULL },
	{ "no kind, no spec", "{\"status\":{\"replicas\":4}}", -1, 0, 0, 4,
	    NULL },
	{ "resourceVersion", "{\"metadata\":{\"resourceVersion\":\"41\"},"
	    "\"spec\":{\"replicas\":1},\"status\":{\"replicas\":1}}", -1, 0,
	    1, 1, NULL },
	{ "resourceVersion too long", "{\"metadata\":{\"resourceVersion\":"
	    "\"123456789012345678901234567890123\"},\"status\":{\"replicas\""
	    ":1}}", -1, 0, 0, 1, NULL },
	{ "large", "{\"spec\":{\"replicas\":2147483647},"
	    "\"status\":{\"replicas\":7}}", -1, 0, 2147483647, 7, NULL },
	{ "missing status", "{\"kind\":\"Scale\",\"spec\":{\"replicas\":1}}",
	    -1, -AS_EPROTO, 0, 0, "status" },
	{ "missing status.replicas",
	    "{\"spec\":{\"replicas\":1},\"status\":{\"selector\":\"a=b\"}}",
	    -1, -AS_EPROTO, 0, 0, "status.replicas is missing" },
	{ "spec.replicas a string",
	    "{\"spec\":{\"replicas\":\"3\"},\"status\":{\"replicas\":2}}", -1,
	    -AS_EPROTO, 0, 0, "spec.replicas is not a number" },
	{ "status.replicas null",
	    "{\"spec\":{\"replicas\":3},\"status\":{\"replicas\":null}}", -1,
	    -AS_EPROTO, 0, 0, "status.replicas is not a number" },
	{ "negative", "{\"spec\":{\"replicas\":-1},\"status\":{\"replicas\":0}}",
	    -1, -AS_EPROTO, 0, 0, "out of range" },
	{ "fraction", "{\"spec\":{\"replicas\":1.5},\"status\":{\"replicas\":0}}",
	    -1, -AS_EPROTO, 0, 0, "out of range" },
	{ "beyond int32",
	    "{\"spec\":{\"replicas\":1e12},\"status\":{\"replicas\":0}}", -1,
	    -AS_EPROTO, 0, 0, "out of range" },
	{ "spec an array", "{\"spec\":[1],\"status\":{\"replicas\":0}}", -1,
	    -AS_EPROTO, 0, 0, "spec is not an object" },
	{ "status a number", "{\"spec\":{\"replicas\":1},\"status\":1}", -1,
	    -AS_EPROTO, 0, 0, "status" },
	{ "another kind", "{\"kind\":\"Deployment\",\"spec\":{\"replicas\":1},"
	    "\"status\":{\"replicas\":1}}", -1, -AS_EPROTO, 0, 0, "kind" },
	{ "kind not a string", "{\"kind\":7,\"status\":{\"replicas\":1}}", -1,
	    -AS_EPROTO, 0, 0, "kind" },
	{ "top-level array", "[]", -1, -AS_EPROTO, 0, 0, "not an object" },
	{ "not JSON", "<html>502 Bad Gateway</html>", -1, -AS_EPROTO, 0, 0,
	    "not JSON" },
	{ "truncated by len", SCALE_OK, 40, -AS_EPROTO, 0, 0, "not JSON" },
	{ "empty", "", -1, -AS_EPROTO, 0, 0, "empty" },
	{ "NULL", NULL, 0, -AS_EPROTO, 0, 0, "empty" },
};

START_TEST(test_scale_parse)
{
	const struct parse_row *row = &parse_rows[_i];
	struct k8s_scale sc = { -7, -7, "x" };
	char		 err[256] = "";
	size_t		 len;
	int		 rc;

	len = row->len >= 0 ? (size_t)row->len : strlen(row->body);
	rc = k8s_scale_parse(row->body, len, &sc, err, sizeof err);
	ck_assert_msg(rc == row->rc, "%s: rc %d, want %d (%s)", row->name, rc,
	    row->rc, err);
	if (rc == 0) {
		ck_assert_int_eq(sc.spec_replicas, row->spec);
		ck_assert_int_eq(sc.status_replicas, row->status);
		/* The workload's resourceVersion, when the answer has one. */
		ck_assert_str_eq(sc.resource_version, strstr(row->body,
		    "\"resourceVersion\":\"41\"") != NULL ? "41" : "");
	} else {
		ck_assert_msg(strstr(err, row->err) != NULL,
		    "%s: err \"%s\" lacks \"%s\"", row->name, err, row->err);
		/* A failed parse leaves the output alone. */
		ck_assert_int_eq(sc.spec_replicas, -7);
	}
}
END_TEST

/* ---- pure: k8s_status_message ---- */

struct status_row {
	const char	*name;
	long		 code;
	const char	*body;
	const char	*want;
};

static char long_body[301];
static char long_want[256];

static const struct status_row status_rows[] = {
	{ "Status 404", 404, "{\"kind\":\"Status\",\"apiVersion\":\"v1\","
	    "\"metadata\":{},\"status\":\"Failure\",\"message\":"
	    "\"deployments.apps \\\"web\\\" not found\",\"reason\":\"NotFound\","
	    "\"details\":{\"name\":\"web\",\"group\":\"apps\",\"kind\":"
	    "\"deployments\"},\"code\":404}",
	    "404 NotFound: deployments.apps \"web\" not found" },
	{ "Status 409 conflict", 409, "{\"kind\":\"Status\",\"message\":"
	    "\"Operation cannot be fulfilled on deployments.apps \\\"web\\\": "
	    "the object has been modified\",\"reason\":\"Conflict\"}",
	    "409 Conflict: Operation cannot be fulfilled on deployments.apps "
	    "\"web\": the object has been modified" },
	{ "Status without reason", 500, "{\"kind\":\"Status\","
	    "\"message\":\"boom\"}", "500: boom" },
	{ "Status with reason only", 503, "{\"kind\":\"Status\","
	    "\"reason\":\"ServiceUnavailable\",\"message\":\"\"}",
	    "503 ServiceUnavailable" },
	{ "message made one line", 422, "{\"kind\":\"Status\",\"reason\":"
	    "\"Invalid\",\"message\":\"a\\n\\tb\\u0007 c\\u00e9\"}",
	    "422 Invalid: a b c?" },
	{ "reason made one line beside a message", 500, "{\"kind\":"
	    "\"Status\",\"reason\":\"a\\nb\",\"message\":\"m\"}",
	    "500 a b: m" },
	{ "APF plain text 429", 429,
	    "Too many requests, please try again later.\n",
	    "429: Too many requests, please try again later." },
	{ "HTML", 502, "<html>\r\n<body>Bad Gateway</body>\r\n</html>\r\n",
	    "502: <html> <body>Bad Gateway</body> </html>" },
	{ "JSON but not a Status", 500, "{\"error\":\"x\"}",
	    "500: {\"error\":\"x\"}" },
	{ "other kind ignored", 500, "{\"kind\":\"Pod\",\"message\":\"m\"}",
	    "500: {\"kind\":\"Pod\",\"message\":\"m\"}" },
	{ "long body cut", 503, long_body, long_want },
	{ "empty body", 502, "", "502: empty body" },
	{ "blank body", 504, " \r\n", "504: empty body" },
	{ "NULL body", 500, NULL, "500: empty body" },
};

START_TEST(test_status_message)
{
	const struct status_row *row = &status_rows[_i];
	char		 out[512];

	memset(long_body, 'x', sizeof long_body - 1);
	snprintf(long_want, sizeof long_want, "503: %.200s", long_body);
	k8s_status_message(row->code, row->body,
	    row->body != NULL ? strlen(row->body) : 0, out, sizeof out);
	ck_assert_msg(strcmp(out, row->want) == 0, "%s: got \"%s\", want \"%s\"",
	    row->name, out, row->want);
}
END_TEST

START_TEST(test_status_message_small)
{
	char	 out[8];

	memset(out, 'z', sizeof out);
	k8s_status_message(404, "{\"kind\":\"Status\",\"reason\":\"NotFound\","
	    "\"message\":\"long message\"}", 64, out, sizeof out);
	ck_assert_str_eq(out, "404 Not");
	/* A length shorter than the string: only len bytes are read. */
	k8s_status_message(500, "abcdef", 3, out, sizeof out);
	ck_assert_str_eq(out, "500: ab");
}
END_TEST

/* ---- pure: kinds, error classes, Retry-After ---- */

struct kind_row {
	const char	*kind;
	int		 rc;
	const char	*prefix;
	const char	*resource;
};

static const struct kind_row kind_rows[] = {
	{ "Deployment", 0, "/apis/apps/v1", "deployments" },
	{ "StatefulSet", 0, "/apis/apps/v1", "statefulsets" },
	{ "SandboxWarmPool", 0, "/apis/extensions.agents.x-k8s.io/v1beta1",
	    "sandboxwarmpools" },
	{ "deployment", -AS_EINVAL, NULL, NULL },
	{ "Pod", -AS_EINVAL, NULL, NULL },
	{ "", -AS_EINVAL, NULL, NULL },
	{ NULL, -AS_EINVAL, NULL, NULL },
};

START_TEST(test_kind_resource)
{
	const struct kind_row *row = &kind_rows[_i];
	const char	*prefix = "unset", *resource = "unset";

	ck_assert_int_eq(k8s_kind_resource(row->kind, &prefix, &resource),
	    row->rc);
	if (row->rc == 0) {
		ck_assert_str_eq(prefix, row->prefix);
		ck_assert_str_eq(resource, row->resource);
	} else {
		ck_assert_str_eq(prefix, "unset");
		ck_assert_str_eq(resource, "unset");
	}
}
END_TEST

/* The kinds the config's enum comes from: each one resolves. */
START_TEST(test_kind_list)
{
	const char *const	*k;
	size_t			 i, n = 0;

	for (i = 0; i < 2; i++) {
		k = k8s_kind_list();
		ck_assert_str_eq(k[0], "Deployment");
		ck_assert_str_eq(k[1], "SandboxWarmPool");
		ck_assert_str_eq(k[2], "StatefulSet");
		ck_assert_ptr_null(k[3]);
	}
	for (k = k8s_kind_list(); *k != NULL; k++, n++)
		ck_assert_int_eq(k8s_kind_resource(*k, NULL, NULL), 0);
	ck_assert_uint_eq(n, AS_ARRAY_SIZE(kind_rows) - 4);
	ck_assert_str_eq(K8S_SANDBOX_API, "/apis/agents.x-k8s.io/v1beta1");
	ck_assert_str_eq(K8S_SANDBOX_EXT_API,
	    "/apis/extensions.agents.x-k8s.io/v1beta1");
}
END_TEST

struct class_row {
	int	 curl_ok;
	long	 code;
	int	 err;
	int	 retry;
};

static const struct class_row class_rows[] = {
	{ 1, 200, 0, 0 },
	{ 1, 201, 0, 0 },
	{ 1, 400, -AS_EINVAL, 0 },
	{ 1, 401, -AS_EAUTH, 0 },
	{ 1, 403, -AS_EFORBIDDEN, 0 },
	{ 1, 404, -AS_ENOTFOUND, 0 },
	{ 1, 409, -AS_ECONFLICT, 0 },
	{ 1, 410, -AS_EPROTO, 0 },
	{ 1, 415, -AS_EPROTO, 0 },
	{ 1, 422, -AS_EINVAL, 0 },
	{ 1, 429, -AS_ETHROTTLED, 1 },
	{ 1, 500, -AS_ESERVER, 1 },
	{ 1, 503, -AS_ESERVER, 1 },
	{ 1, 504, -AS_ESERVER, 1 },
	{ 1, 302, -AS_EPROTO, 0 },
	{ 0, 0, -AS_ECONN, 1 },
};

START_TEST(test_classify)
{
	const struct class_row *row = &class_rows[_i];
	int	 retry = -1;

	ck_assert_int_eq(k8s_client_classify(row->curl_ok, row->code, &retry),
	    row->err);
	ck_assert_int_eq(retry, row->retry);
}
END_TEST

START_TEST(test_retry_after)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date. */
	time_t	 t = 784111777;

	ck_assert(k8s_client_retry_after("1", t) == 1);
	ck_assert(k8s_client_retry_after(" 32 ", t) == 32);
	ck_assert(k8s_client_retry_after("0", t) == 0);
	ck_assert(k8s_client_retry_after(NULL, t) == -1);
	ck_assert(k8s_client_retry_after("", t) == -1);
	ck_assert(k8s_client_retry_after("soon", t) == -1);
	ck_assert(k8s_client_retry_after("-3", t) == -1);
	ck_assert(k8s_client_retry_after("Sun, 06 Nov 1994 08:49:39 GMT",
	    t) == 2);
	ck_assert(k8s_client_retry_after("Sun, 06 Nov 1994 08:49:30 GMT",
	    t) == 0);
}
END_TEST

static void	 loop_setup(void);
static void	 loop_teardown(void);
static struct ev_loop *loop;

/* ---- pure-ish: in-cluster options (environment and files) ---- */

static char sa_dir[64];

static void
sa_setup(void)
{
	char	 path[128];
	FILE	*fp;

	snprintf(sa_dir, sizeof sa_dir, "/tmp/check_k8s_sa.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(sa_dir));
	snprintf(path, sizeof path, "%s/token", sa_dir);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	fputs("secret-token\n", fp);
	fclose(fp);
	snprintf(path, sizeof path, "%s/ca.crt", sa_dir);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	fputs("not really a CA\n", fp);
	fclose(fp);
}

static void
sa_teardown(void)
{
	char	 path[128];

	snprintf(path, sizeof path, "%s/token", sa_dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/ca.crt", sa_dir);
	unlink(path);
	rmdir(sa_dir);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

struct ic_row {
	const char	*host;
	const char	*port;
	int		 rc;
	const char	*url;
};

static const struct ic_row ic_rows[] = {
	{ "10.96.0.1", "443", 0, "https://10.96.0.1:443" },
	{ "fd00:10:96::1", "443", 0, "https://[fd00:10:96::1]:443" },
	{ "[fd00::1]", "6443", 0, "https://[fd00::1]:6443" },
	{ NULL, "443", -AS_EINVAL, NULL },
	{ "10.96.0.1", NULL, -AS_EINVAL, NULL },
	{ "", "443", -AS_EINVAL, NULL },
};

START_TEST(test_incluster)
{
	const struct ic_row *row = &ic_rows[_i];
	struct k8s_options o;
	char		 buf[512], err[256] = "", want[128];

	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	if (row->host != NULL)
		setenv("KUBERNETES_SERVICE_HOST", row->host, 1);
	if (row->port != NULL)
		setenv("KUBERNETES_SERVICE_PORT", row->port, 1);
	memset(&o, 0, sizeof o);
	ck_assert_int_eq(k8s_options_incluster(&o, sa_dir, buf, sizeof buf,
	    err, sizeof err), row->rc);
	if (row->rc != 0) {
		ck_assert(strstr(err, "KUBERNETES_SERVICE") != NULL);
		return;
	}
	ck_assert_str_eq(o.apiserver, row->url);
	snprintf(want, sizeof want, "%s/token", sa_dir);
	ck_assert_str_eq(o.token_file, want);
	snprintf(want, sizeof want, "%s/ca.crt", sa_dir);
	ck_assert_str_eq(o.ca_file, want);
}
END_TEST

START_TEST(test_incluster_errors)
{
	struct k8s_options o;
	char		 buf[512], err[256] = "", path[128];

	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	memset(&o, 0, sizeof o);
	ck_assert_int_eq(k8s_options_incluster(&o, sa_dir, buf, 20, err,
	    sizeof err), -AS_EINVAL);
	ck_assert(strstr(err, "too small") != NULL);
	snprintf(path, sizeof path, "%s/ca.crt", sa_dir);
	unlink(path);
	ck_assert_int_eq(k8s_options_incluster(&o, sa_dir, buf, sizeof buf,
	    err, sizeof err), -AS_EINVAL);
	ck_assert(strstr(err, "ca.crt") != NULL);
	snprintf(path, sizeof path, "%s/token", sa_dir);
	unlink(path);
	ck_assert_int_eq(k8s_options_incluster(&o, sa_dir, buf, sizeof buf,
	    err, sizeof err), -AS_EINVAL);
	ck_assert(strstr(err, "token") != NULL);
	/* The client takes the same path when apiserver is NULL. */
	unsetenv("KUBECONFIG");
	memset(&o, 0, sizeof o);
	loop_setup();
	ck_assert_ptr_null(k8s_client_new(loop, &o, err, sizeof err));
	ck_assert_msg(strstr(err, "token") != NULL, "%s", err);
	/* Not in a cluster, no kubeconfig anywhere: it says where it looked. */
	unsetenv("KUBERNETES_SERVICE_HOST");
	setenv("HOME", sa_dir, 1);
	ck_assert_ptr_null(k8s_client_new(loop, &o, err, sizeof err));
	loop_teardown();
	ck_assert_msg(strstr(err, "no Kubernetes configuration") != NULL &&
	    strstr(err, "/.kube/config") != NULL, "%s", err);
}
END_TEST

/* ---- the client on a private loop ---- */

static struct ev_timer guard;

struct result {
	int		 calls;
	int		 err;
	long		 code;
	char		 msg[512];
	char		 body[1024];
	int		 have_scale;
	struct k8s_scale sc;
	double		 at;	/* mono time of the completion */
	int		 returned;	/* the starting call had returned */
};

static void
guard_cb(struct ev_loop *l, struct ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
}

/* The guard timer wakes ev_run so the deadline below is always checked. */
static void
loop_setup(void)
{
	ck_assert_ptr_nonnull(loop = ev_loop_new(EVFLAG_AUTO));
	ev_timer_init(&guard, guard_cb, 0.05, 0.05);
	ev_timer_start(loop, &guard);
}

static void
loop_teardown(void)
{
	ev_timer_stop(loop, &guard);
	ev_loop_destroy(loop);
	loop = NULL;
}

static void
on_done(const struct k8s_response *resp, void *arg)
{
	struct result	*res = arg;

	ck_assert_msg(res->returned, "completion ran before the call returned");
	res->calls++;
	res->err = resp->err;
	res->code = resp->code;
	res->at = as_mono_now();
	ck_assert_ptr_nonnull(resp->body);
	ck_assert_ptr_nonnull(resp->message);
	ck_assert_uint_eq(strlen(resp->body), resp->body_len);
	as_strlcpy(res->msg, resp->message, sizeof res->msg);
	as_strlcpy(res->body, resp->body, sizeof res->body);
}

static void
on_scale(int err, const struct k8s_scale *sc, const char *msg, void *arg)
{
	struct result	*res = arg;

	ck_assert_msg(res->returned, "completion ran before the call returned");
	res->calls++;
	res->err = err;
	res->at = as_mono_now();
	ck_assert_ptr_nonnull(msg);
	as_strlcpy(res->msg, msg, sizeof res->msg);
	if (err == 0) {
		ck_assert_ptr_nonnull(sc);
		res->sc = *sc;
		res->have_scale = 1;
	} else
		ck_assert_ptr_null(sc);
}

static struct k8s_client *
client_new(const char *url, struct k8s_options *o)
{
	struct k8s_options def;
	struct k8s_client *c;
	char		 err[256] = "";

	if (o == NULL) {
		memset(&def, 0, sizeof def);
		o = &def;
	}
	o->apiserver = url;
	if (o->retry_base == 0)
		o->retry_base = 0.02;
	if (o->retry_cap == 0)
		o->retry_cap = 0.1;
	c = k8s_client_new(loop, o, err, sizeof err);
	ck_assert_msg(c != NULL, "k8s_client_new: %s", err);
	return (c);
}

struct stat_find {
	const char	*verb;
	long		 code;
	uint64_t	 count;
};

static void
stat_cb(const char *verb, long code, uint64_t count, void *arg)
{
	struct stat_find *f = arg;

	if (strcmp(verb, f->verb) == 0 && code == f->code)
		f->count += count;
}

static uint64_t
stat_get(struct k8s_client *c, const char *verb, long code)
{
	struct stat_find f = { verb, code, 0 };

	k8s_client_foreach_stat(c, stat_cb, &f);
	return (f.count);
}

static char dead_url[64];

static void
dead_setup(void)
{
	loop_setup();
	/* Nothing listens on a port we just bound and closed. */
	snprintf(dead_url, sizeof dead_url, "http://127.0.0.1:%d",
	    tu_free_port());
}

START_TEST(test_client_bad_args)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res;
	char		 err[256];

	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	o.apiserver = "ftp://example.com";
	ck_assert_ptr_null(k8s_client_new(loop, &o, err, sizeof err));
	ck_assert(strstr(err, "http") != NULL);
	o.apiserver = dead_url;
	o.token_file = "/nonexistent/token";
	ck_assert_ptr_null(k8s_client_new(loop, &o, err, sizeof err));
	ck_assert(strstr(err, "/nonexistent/token") != NULL);

	c = client_new(dead_url, NULL);
	ck_assert_ptr_null(k8s_client_request(c, "GET", "api", NULL, NULL,
	    on_done, &res));
	ck_assert_ptr_null(k8s_client_request(c, "GET", "/a b", NULL, NULL,
	    on_done, &res));
	ck_assert_ptr_null(k8s_client_request(c, "GET", "/a\r\nX: y", NULL,
	    NULL, on_done, &res));
	ck_assert_ptr_null(k8s_client_request(c, "get", "/api", NULL, NULL,
	    on_done, &res));
	ck_assert_ptr_null(k8s_client_request(c, "GET", "/api", NULL, NULL,
	    NULL, &res));
	ck_assert_ptr_null(k8s_scale_get(c, "Pod", "default", "web",
	    on_scale, &res));
	ck_assert_ptr_null(k8s_scale_get(c, "Deployment", "default", "../x",
	    on_scale, &res));
	ck_assert_ptr_null(k8s_scale_get(c, "Deployment", "", "web",
	    on_scale, &res));
	ck_assert_ptr_null(k8s_scale_get(c, "Deployment", "default",
	    "Web", on_scale, &res));
	ck_assert_ptr_null(k8s_scale_patch(c, "Deployment", "default", "web",
	    -1, on_scale, &res));
	tu_run_for(loop, 0.1);
	ck_assert_int_eq(res.calls, 0);
	k8s_client_free(c);
	k8s_client_free(NULL);
}
END_TEST

START_TEST(test_client_refused)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res;
	char		 want[128];

	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	o.max_retries = 2;
	c = client_new(dead_url, &o);
	ck_assert_ptr_nonnull(k8s_client_request(c, "GET", "/api", NULL, NULL,
	    on_done, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	tu_run_for(loop, 0.1);
	ck_assert_int_eq(res.calls, 1);
	ck_assert_int_eq(res.err, -AS_ECONN);
	ck_assert_int_eq(res.code, 0);
	snprintf(want, sizeof want, "(%s)", dead_url);
	ck_assert_msg(strstr(res.msg, want) != NULL, "message: %s", res.msg);
	/* Every attempt is counted, code 0 for no response. */
	ck_assert_uint_eq(stat_get(c, "GET", 0), 3);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_client_no_retries)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res;

	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	o.max_retries = -1;
	c = client_new(dead_url, &o);
	ck_assert_ptr_nonnull(k8s_client_request(c, "DELETE", "/api/x", NULL,
	    NULL, on_done, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_int_eq(res.err, -AS_ECONN);
	ck_assert_uint_eq(stat_get(c, "DELETE", 0), 1);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_client_cancel_offline)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct k8s_req	*r1, *r2;
	struct result	 res[3];

	memset(&o, 0, sizeof o);
	memset(res, 0, sizeof res);
	/* One token: the second and third requests wait in the queue. */
	o.qps = 0.5;
	o.burst = 1;
	o.max_retries = 100;
	c = client_new(dead_url, &o);
	r1 = k8s_client_request(c, "GET", "/a", NULL, NULL, on_done, &res[0]);
	r2 = k8s_client_request(c, "PUT", "/b", "application/json", "{}",
	    on_done, &res[1]);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default", "web",
	    on_scale, &res[2]));
	ck_assert_ptr_nonnull(r1);
	ck_assert_ptr_nonnull(r2);
	res[0].returned = res[1].returned = res[2].returned = 1;
	k8s_req_cancel(r2);
	ck_assert_int_eq(res[1].calls, 1);
	ck_assert_int_eq(res[1].err, -AS_ECANCELED);
	ck_assert_str_eq(res[1].msg, "canceled");
	tu_run_for(loop, 0.2);	/* r1 now sleeps between refused attempts */
	ck_assert_int_eq(res[0].calls, 0);
	k8s_client_free(c);
	ck_assert_int_eq(res[0].calls, 1);
	ck_assert_int_eq(res[0].err, -AS_ECANCELED);
	ck_assert_int_eq(res[1].calls, 1);
	ck_assert_int_eq(res[2].calls, 1);
	ck_assert_int_eq(res[2].err, -AS_ECANCELED);
	tu_run_for(loop, 0.1);
	ck_assert_int_eq(res[0].calls + res[1].calls + res[2].calls, 3);
}
END_TEST

/* A completion that frees the client; the others must still run once. */
struct free_ctx {
	struct k8s_client *c;
	int		 calls;
	int		 canceled;
};

static void
on_done_free(const struct k8s_response *resp, void *arg)
{
	struct free_ctx	*f = arg;

	f->calls++;
	if (resp->err == -AS_ECANCELED)
		f->canceled++;
	if (f->c != NULL) {
		struct k8s_client *c = f->c;

		f->c = NULL;
		k8s_client_free(c);
		/* A second free and a new request on a closing client. */
		k8s_client_free(c);
	}
}

START_TEST(test_client_free_in_callback)
{
	struct k8s_options o;
	struct free_ctx	 f;
	int		 i;

	memset(&o, 0, sizeof o);
	memset(&f, 0, sizeof f);
	o.max_retries = -1;
	f.c = client_new(dead_url, &o);
	/* The first fails (refused), frees the client, cancelling the rest. */
	for (i = 0; i < 4; i++)
		ck_assert_ptr_nonnull(k8s_client_request(f.c, "GET", "/a",
		    NULL, NULL, on_done_free, &f));
	ck_assert(tu_run_count(loop, &f.calls, 4, WAIT));
	tu_run_for(loop, 0.1);
	ck_assert_int_eq(f.calls, 4);
	ck_assert_ptr_null(f.c);
	ck_assert_int_ge(f.canceled, 1);
}
END_TEST

/* ---- against the real kube-sim ---- */

static struct tu_kubesim ks;	/* pid 0 when it did not start */
/* tokens.csv for kube-sim, token for us; dir "" without --tokens */
static struct tu_kubesim_tokens tok;
static int	 ks_tokens = 1;	/* kube-sim supports --tokens */

static void
ks_start(const char *const *args)
{
	(void)tu_kubesim_start(&ks, args);
}

static void
ks_setup_plain(void)
{
	ks_start(NULL);
}

static void
ks_setup_tls(void)
{
	static const char *const args[] = { "--tls", NULL };

	ks_start(args);
}

/* Whether this kube-sim has --tokens (skip the token cases if not). */
static int
ks_has_tokens(void)
{
	char	 line[512];
	FILE	*fp;
	int	 found = 0;

	if ((fp = popen("tools/kube-sim/kube-sim --help 2>&1", "r")) == NULL)
		return (0);
	while (fgets(line, sizeof line, fp) != NULL)
		if (strstr(line, "--tokens") != NULL)
			found = 1;
	pclose(fp);
	return (found);
}

static void
ks_setup_tokens(void)
{
	static const char *const args[] = { "--tokens", tok.csv, NULL };

	if (!(ks_tokens = ks_has_tokens())) {
		fprintf(stderr, "check_k8s: kube-sim has no --tokens; "
		    "skipping the token cases\n");
		return;
	}

	tu_kubesim_tokens_make(&tok, "check_k8s_tok");
	ks_start(args);
}

static void
ks_teardown(void)
{
	tu_kubesim_stop(&ks);
	tu_kubesim_tokens_remove(&tok);
}

static long
ks_admin(const char *method, const char *path, const char *body)
{
	return (tu_kubesim_admin(&ks, method, path, body, NULL));
}

/* Each test starts from a healthy server: no faults, no delay, running. */
static void
ks_test_setup(void)
{
	if (!ks_tokens) {
		loop_setup();
		return;
	}
	ck_assert_msg(ks.pid > 0, "tools/kube-sim/kube-sim did not start");
	loop_setup();
	tu_kubesim_reset(&ks);
}

static void
ks_test_teardown(void)
{
	loop_teardown();
}

/* Creates Deployment name in default with the given replicas (or finds it). */
static void
ks_deployment(const char *name, long replicas)
{
	char	 url[256], body[1024];
	long	 code;

	snprintf(url, sizeof url,
	    "%s/apis/apps/v1/namespaces/default/deployments", ks.url);
	snprintf(body, sizeof body, "{\"apiVersion\":\"apps/v1\","
	    "\"kind\":\"Deployment\",\"metadata\":{\"name\":\"%s\"},"
	    "\"spec\":{\"replicas\":%ld,\"selector\":{\"matchLabels\":"
	    "{\"app\":\"%s\"}},\"template\":{\"metadata\":{\"labels\":"
	    "{\"app\":\"%s\"}},\"spec\":{\"containers\":[{\"name\":\"c\","
	    "\"image\":\"busybox\"}]}}}}", name, replicas, name, name);
	code = tu_http("POST", url, "application/json", body, NULL);
	ck_assert_msg(code == 201 || code == 409, "create %s: %ld", name,
	    code);
}

/* Returns spec.replicas of a Deployment as kube-sim has it, or -1. */
static long
ks_spec_replicas(const char *name)
{
	cJSON	*j, *spec, *r;
	char	 url[256], *body = NULL;
	long	 v = -1;

	snprintf(url, sizeof url,
	    "%s/apis/apps/v1/namespaces/default/deployments/%s", ks.url, name);
	if (tu_http("GET", url, NULL, NULL, &body) != 200) {
		free(body);
		return (-1);
	}
	j = cJSON_Parse(body);
	spec = cJSON_GetObjectItemCaseSensitive(j, "spec");
	r = cJSON_GetObjectItemCaseSensitive(spec, "replicas");
	if (cJSON_IsNumber(r))
		v = (long)r->valuedouble;
	cJSON_Delete(j);
	free(body);
	return (v);
}

struct ks_entry {
	double	 mono;
	long	 code;
	char	 user[64];
};

/*
 * Reads kube-sim's request log from seq since; keeps the requests with
 * this method whose path contains path.  Returns how many, and their
 * arrival times, codes and users in out (up to max).  With since < 0 it
 * returns the next sequence number instead.
 */
static long
ks_log(long since, const char *method, const char *path,
    struct ks_entry *out, int max)
{
	cJSON	*j, *reqs, *e, *v;
	char	 url[256], *body = NULL;
	long	 n = 0;

	snprintf(url, sizeof url, "%s/requests?since=%ld", ks.admin,
	    since < 0 ? 0 : since);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, &body), 200);
	ck_assert_ptr_nonnull(j = cJSON_Parse(body));
	free(body);
	if (since < 0) {
		v = cJSON_GetObjectItemCaseSensitive(j, "next");
		ck_assert(cJSON_IsNumber(v));
		n = (long)v->valuedouble;
		cJSON_Delete(j);
		return (n);
	}
	reqs = cJSON_GetObjectItemCaseSensitive(j, "requests");
	ck_assert(cJSON_IsArray(reqs));
	cJSON_ArrayForEach(e, reqs) {
		v = cJSON_GetObjectItemCaseSensitive(e, "method");
		if (!cJSON_IsString(v) || strcmp(v->valuestring, method) != 0)
			continue;
		v = cJSON_GetObjectItemCaseSensitive(e, "path");
		if (!cJSON_IsString(v) || strstr(v->valuestring, path) == NULL)
			continue;
		if (n < max) {
			memset(&out[n], 0, sizeof out[n]);
			v = cJSON_GetObjectItemCaseSensitive(e, "mono");
			out[n].mono = cJSON_IsNumber(v) ? v->valuedouble : -1;
			v = cJSON_GetObjectItemCaseSensitive(e, "code");
			out[n].code = cJSON_IsNumber(v) ? (long)v->valuedouble :
			    0;
			v = cJSON_GetObjectItemCaseSensitive(e, "user");
			if (cJSON_IsString(v))
				as_strlcpy(out[n].user, v->valuestring,
				    sizeof out[n].user);
		}
		n++;
	}
	cJSON_Delete(j);
	return (n);
}

/*
 * Creates a Deployment through the client under test, for servers tu_http
 * cannot reach (TLS with our CA, tokens).
 */
static void
api_deployment(struct k8s_client *c, const char *name)
{
	struct result	 res;
	char		 body[1024];

	memset(&res, 0, sizeof res);
	snprintf(body, sizeof body, "{\"apiVersion\":\"apps/v1\","
	    "\"kind\":\"Deployment\",\"metadata\":{\"name\":\"%s\"},"
	    "\"spec\":{\"replicas\":1,\"selector\":{\"matchLabels\":"
	    "{\"app\":\"%s\"}},\"template\":{\"metadata\":{\"labels\":"
	    "{\"app\":\"%s\"}},\"spec\":{\"containers\":[{\"name\":\"c\","
	    "\"image\":\"busybox\"}]}}}}", name, name, name);
	ck_assert_ptr_nonnull(k8s_client_request(c, "POST",
	    "/apis/apps/v1/namespaces/default/deployments", NULL, body,
	    on_done, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_msg(res.err == 0 || res.err == -AS_ECONFLICT, "create: %s",
	    res.msg);
}

START_TEST(test_ks_scale_get)
{
	struct k8s_client *c;
	struct result	 res;

	memset(&res, 0, sizeof res);
	ks_deployment("get-web", 3);
	c = client_new(ks.url, NULL);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "get-web", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_msg(res.err == 0, "err %d: %s", res.err, res.msg);
	ck_assert_int_eq(res.calls, 1);
	ck_assert_int_eq(res.sc.spec_replicas, 3);
	ck_assert_int_ge(res.sc.status_replicas, 0);
	ck_assert_int_le(res.sc.status_replicas, 3);
	ck_assert_str_eq(res.msg, "");
	ck_assert_uint_eq(stat_get(c, "GET", 200), 1);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_ks_scale_patch)
{
	struct k8s_client *c;
	struct result	 res;
	struct ks_entry	 e[4];
	long		 seq;

	memset(&res, 0, sizeof res);
	ks_deployment("patch-web", 1);
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	c = client_new(ks.url, NULL);
	ck_assert_ptr_nonnull(k8s_scale_patch(c, "Deployment", "default",
	    "patch-web", 5, on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_msg(res.err == 0, "err %d: %s", res.err, res.msg);
	ck_assert_int_eq(res.sc.spec_replicas, 5);
	ck_assert_int_eq(ks_spec_replicas("patch-web"), 5);
	ck_assert_int_eq(ks_log(seq, "PATCH",
	    "/apis/apps/v1/namespaces/default/deployments/patch-web/scale", e,
	    4), 1);
	ck_assert_int_eq(e[0].code, 200);
	/* To zero: spec.replicas is then omitted from the Scale. */
	memset(&res, 0, sizeof res);
	ck_assert_ptr_nonnull(k8s_scale_patch(c, "Deployment", "default",
	    "patch-web", 0, on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_msg(res.err == 0, "err %d: %s", res.err, res.msg);
	ck_assert_int_eq(res.sc.spec_replicas, 0);
	ck_assert_int_eq(ks_spec_replicas("patch-web"), 0);
	ck_assert_uint_eq(stat_get(c, "PATCH", 200), 2);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_ks_not_found)
{
	struct k8s_client *c;
	struct result	 res;
	struct ks_entry	 e[4];
	long		 seq;

	memset(&res, 0, sizeof res);
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	c = client_new(ks.url, NULL);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "missing", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_int_eq(res.err, -AS_ENOTFOUND);
	ck_assert_str_eq(res.msg,
	    "404 NotFound: deployments.apps \"missing\" not found");
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(ks_log(seq, "GET", "/missing/scale", e, 4), 1);
	ck_assert_uint_eq(stat_get(c, "GET", 404), 1);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_ks_500_then_ok)
{
	struct k8s_client *c;
	struct result	 res;
	struct ks_entry	 e[8];
	long		 seq;

	memset(&res, 0, sizeof res);
	ks_deployment("r500-web", 1);
	tu_kubesim_fault(&ks, "PATCH", "r500-web/scale", 500, 3, -1);
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	c = client_new(ks.url, NULL);
	ck_assert_ptr_nonnull(k8s_scale_patch(c, "Deployment", "default",
	    "r500-web", 4, on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_msg(res.err == 0, "err %d: %s", res.err, res.msg);
	ck_assert_int_eq(res.sc.spec_replicas, 4);
	ck_assert_int_eq(ks_log(seq, "PATCH", "r500-web/scale", e, 8), 4);
	ck_assert_int_eq(e[0].code, 500);
	ck_assert_int_eq(e[2].code, 500);
	ck_assert_int_eq(e[3].code, 200);
	ck_assert_uint_eq(stat_get(c, "PATCH", 500), 3);
	ck_assert_uint_eq(stat_get(c, "PATCH", 200), 1);
	ck_assert_int_eq(ks_spec_replicas("r500-web"), 4);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_ks_500_exhausted)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res;
	struct ks_entry	 e[8];
	long		 seq;

	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	o.max_retries = 2;
	ks_deployment("x500-web", 1);
	tu_kubesim_fault(&ks, "GET", "x500-web/scale", 503, 10, -1);
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	c = client_new(ks.url, &o);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "x500-web", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_int_eq(res.err, -AS_ESERVER);
	ck_assert_msg(strncmp(res.msg, "503", 3) == 0, "msg %s", res.msg);
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(ks_log(seq, "GET", "x500-web/scale", e, 8), 3);
	ck_assert_uint_eq(stat_get(c, "GET", 503), 3);
	k8s_client_free(c);
}
END_TEST

struct noretry_row {
	int	 code;
	int	 err;
};

static const struct noretry_row noretry_rows[] = {
	{ 400, -AS_EINVAL },
	{ 403, -AS_EFORBIDDEN },
	{ 404, -AS_ENOTFOUND },
	{ 409, -AS_ECONFLICT },
	{ 422, -AS_EINVAL },
};

START_TEST(test_ks_not_retried)
{
	const struct noretry_row *row = &noretry_rows[_i];
	struct k8s_client *c;
	struct result	 res;
	struct ks_entry	 e[8];
	char		 want[16];
	long		 seq;

	memset(&res, 0, sizeof res);
	ks_deployment("noretry-web", 2);
	tu_kubesim_fault(&ks, "PATCH", "noretry-web/scale", row->code, 5, -1);
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	c = client_new(ks.url, NULL);
	ck_assert_ptr_nonnull(k8s_scale_patch(c, "Deployment", "default",
	    "noretry-web", 3, on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_int_eq(res.err, row->err);
	snprintf(want, sizeof want, "%d", row->code);
	ck_assert_msg(strncmp(res.msg, want, 3) == 0, "msg %s", res.msg);
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(ks_log(seq, "PATCH", "noretry-web/scale", e, 8), 1);
	ck_assert_uint_eq(stat_get(c, "PATCH", row->code), 1);
	ck_assert_int_eq(ks_spec_replicas("noretry-web"), 2);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_ks_429_retry_after)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res;
	struct ks_entry	 e[8];
	long		 seq;

	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	/* Backoff alone would retry within 20 ms. */
	o.retry_base = 0.01;
	o.retry_cap = 0.02;
	ks_deployment("r429-web", 1);
	tu_kubesim_fault(&ks, "PATCH", "r429-web/scale", 429, 1, 1);
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	c = client_new(ks.url, &o);
	ck_assert_ptr_nonnull(k8s_scale_patch(c, "Deployment", "default",
	    "r429-web", 2, on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_msg(res.err == 0, "err %d: %s", res.err, res.msg);
	ck_assert_int_eq(ks_log(seq, "PATCH", "r429-web/scale", e, 8), 2);
	ck_assert_int_eq(e[0].code, 429);
	ck_assert_int_eq(e[1].code, 200);
	/* A correctness check: the retry waited for Retry-After: 1. */
	ck_assert_msg(e[1].mono - e[0].mono >= 0.9, "retry after %.3fs",
	    e[1].mono - e[0].mono);
	ck_assert_uint_eq(stat_get(c, "PATCH", 429), 1);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_ks_timeout)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res;
	struct ks_entry	 e[8];
	long		 seq;

	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	o.timeout = 0.3;
	o.max_retries = 1;
	ks_deployment("slow-web", 1);
	ck_assert_int_eq(ks_admin("POST", "/latency",
	    "{\"ms\":2000,\"path\":\"slow-web\"}") / 100, 2);
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	c = client_new(ks.url, &o);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "slow-web", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_int_eq(res.err, -AS_ETIMEDOUT);
	ck_assert_msg(strstr(res.msg, ks.url) != NULL, "msg %s", res.msg);
	ck_assert_int_eq(ks_log(seq, "GET", "slow-web/scale", e, 8), 2);
	ck_assert_uint_eq(stat_get(c, "GET", 0), 2);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_ks_pause_resume)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res;

	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	o.max_retries = 2;
	ks_deployment("pause-web", 2);
	c = client_new(ks.url, &o);
	/* Warm a keep-alive connection, then take the server away. */
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "pause-web", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_int_eq(res.err, 0);
	ck_assert_int_eq(ks_admin("POST", "/pause", "{}") / 100, 2);

	memset(&res, 0, sizeof res);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "pause-web", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_int_eq(res.err, -AS_ECONN);
	ck_assert_msg(strstr(res.msg, "connection refused") != NULL &&
	    strstr(res.msg, ks.url) != NULL, "msg %s", res.msg);
	ck_assert_uint_ge(stat_get(c, "GET", 0), 3);
	k8s_client_free(c);

	/* A request that keeps retrying gets through once the server is back. */
	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	o.max_retries = 50;
	o.retry_base = 0.05;
	o.retry_cap = 0.1;
	c = client_new(ks.url, &o);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "pause-web", on_scale, &res));
	res.returned = 1;
	tu_run_for(loop, 0.4);
	ck_assert_int_eq(res.calls, 0);
	ck_assert_int_eq(ks_admin("POST", "/resume", "{}") / 100, 2);
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_msg(res.err == 0, "err %d: %s", res.err, res.msg);
	ck_assert_int_eq(res.sc.spec_replicas, 2);
	ck_assert_uint_ge(stat_get(c, "GET", 0), 2);
	ck_assert_uint_eq(stat_get(c, "GET", 200), 1);
	k8s_client_free(c);
}
END_TEST

static int
pred_failed_attempts(void *arg)
{
	return (stat_get(arg, "GET", 0) >= 8);
}

START_TEST(test_ks_outage_logged_once)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct tu_capture cap;
	struct result	 res[2];
	char		*log;

	/*
	 * An outage is one warning when the API server stops answering and
	 * one info line when it answers again; the retries in between are
	 * debug.  Before, every retry of every request was a warning.
	 */
	memset(&o, 0, sizeof o);
	memset(res, 0, sizeof res);
	o.max_retries = 50;
	o.retry_base = 0.05;
	o.retry_cap = 0.1;
	ks_deployment("outage-web", 1);
	c = client_new(ks.url, &o);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "outage-web", on_scale, &res[0]));
	res[0].returned = 1;
	ck_assert(tu_run_count(loop, &res[0].calls, 1, WAIT));
	ck_assert_int_eq(res[0].err, 0);
	memset(res, 0, sizeof res);
	tu_capture_start(&cap);
	ck_assert_int_eq(ks_admin("POST", "/pause", "{}") / 100, 2);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "outage-web", on_scale, &res[0]));
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "outage-web", on_scale, &res[1]));
	res[0].returned = res[1].returned = 1;
	ck_assert(tu_run_until(loop, pred_failed_attempts, c, WAIT));
	ck_assert_int_eq(res[0].calls + res[1].calls, 0);
	ck_assert_int_eq(ks_admin("POST", "/resume", "{}") / 100, 2);
	ck_assert(tu_run_count(loop, &res[0].calls, 1, WAIT));
	ck_assert(tu_run_count(loop, &res[1].calls, 1, WAIT));
	log = tu_capture_end(&cap);
	ck_assert_int_eq(res[0].err, 0);
	ck_assert_int_eq(res[1].err, 0);
	ck_assert_msg(tu_count(log, "\"level\":\"warn\"") == 1,
	    "%d warnings for one outage", tu_count(log,
	    "\"level\":\"warn\""));
	ck_assert_int_eq(tu_count(log, "unreachable"), 1);
	ck_assert_int_eq(tu_count(log, "answers again"), 1);
	free(log);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_ks_cancel_pending)
{
	struct k8s_client *c;
	struct k8s_req	*r[3];
	struct result	 res[3];
	int		 i;

	memset(res, 0, sizeof res);
	ks_deployment("cancel-web", 1);
	ck_assert_int_eq(ks_admin("POST", "/latency",
	    "{\"ms\":1500,\"path\":\"cancel-web\"}") / 100, 2);
	c = client_new(ks.url, NULL);
	for (i = 0; i < 3; i++) {
		r[i] = k8s_scale_patch(c, "Deployment", "default",
		    "cancel-web", 3, on_scale, &res[i]);
		ck_assert_ptr_nonnull(r[i]);
		res[i].returned = 1;
	}
	tu_run_for(loop, 0.3);	/* all three are on the wire now */
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(res[i].calls, 0);
	k8s_req_cancel(r[1]);
	ck_assert_int_eq(res[1].calls, 1);
	ck_assert_int_eq(res[1].err, -AS_ECANCELED);
	k8s_client_free(c);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(res[i].calls, 1);
		ck_assert_int_eq(res[i].err, -AS_ECANCELED);
		ck_assert_str_eq(res[i].msg, "canceled");
	}
	tu_run_for(loop, 0.2);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(res[i].calls, 1);
}
END_TEST

START_TEST(test_ks_rate_limit)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res[6];
	struct ks_entry	 e[8];
	long		 seq;
	int		 i, done;

	memset(&o, 0, sizeof o);
	memset(res, 0, sizeof res);
	o.qps = 5;
	o.burst = 1;
	ks_deployment("rl-web", 1);
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	c = client_new(ks.url, &o);
	for (i = 0; i < 6; i++) {
		ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
		    "rl-web", on_scale, &res[i]));
		res[i].returned = 1;
	}
	for (done = 0; done < 6; ) {
		ck_assert(tu_run_count(loop, &res[done].calls, 1, WAIT));
		ck_assert_int_eq(res[done].err, 0);
		done++;
	}
	/* FIFO: completions in the order the requests were made. */
	for (i = 1; i < 6; i++)
		ck_assert(res[i].at >= res[i - 1].at);
	ck_assert_int_eq(ks_log(seq, "GET", "rl-web/scale", e, 8), 6);
	/* Spacing, not speed: one token every 0.2 s after the first. */
	ck_assert_msg(e[5].mono - e[0].mono >= 0.9, "6 requests in %.3fs",
	    e[5].mono - e[0].mono);
	for (i = 1; i < 6; i++)
		ck_assert_msg(e[i].mono - e[i - 1].mono >= 0.1,
		    "gap %d: %.3fs", i, e[i].mono - e[i - 1].mono);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_tls_with_ca)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res;

	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	ck_assert(strncmp(ks.url, "https://", 8) == 0);
	ck_assert(ks.ca[0] != '\0');
	o.ca_file = ks.ca;
	c = client_new(ks.url, &o);
	api_deployment(c, "tls-web");
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "tls-web", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_msg(res.err == 0, "err %d: %s", res.err, res.msg);
	ck_assert_int_eq(res.sc.spec_replicas, 1);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_tls_without_ca)
{
	struct k8s_client *c;
	struct result	 res;
	struct ks_entry	 e[4];
	long		 seq;

	memset(&res, 0, sizeof res);
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	/* Verification is on by default: the system CAs do not know ours. */
	c = client_new(ks.url, NULL);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "tls-web", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_int_eq(res.err, -AS_ECONN);
	ck_assert_msg(strstr(res.msg, "certificate") != NULL, "msg %s",
	    res.msg);
	/* Not retried, and no request reached the API. */
	ck_assert_uint_eq(stat_get(c, "GET", 0), 1);
	ck_assert_int_eq(ks_log(seq, "GET", "tls-web", e, 4), 0);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_tls_insecure)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res;

	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	o.insecure_skip_tls_verify = 1;
	c = client_new(ks.url, &o);
	api_deployment(c, "tls-web");
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "tls-web", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_msg(res.err == 0, "err %d: %s", res.err, res.msg);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_token_sent)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res;
	struct ks_entry	 e[4];
	long		 seq;

	if (!ks_tokens)
		return;
	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	tu_write_file(tok.csv, "tok-a,agentscaler,uid-1,system:masters\n");
	tu_write_file(tok.file, "tok-a\n");
	o.token_file = tok.file;
	c = client_new(ks.url, &o);
	api_deployment(c, "tok-web");
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "tok-web", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_msg(res.err == 0, "err %d: %s", res.err, res.msg);
	ck_assert_int_eq(ks_log(seq, "GET", "tok-web/scale", e, 4), 1);
	ck_assert_str_eq(e[0].user, "agentscaler");
	k8s_client_free(c);
}
END_TEST

START_TEST(test_token_bad)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res;
	struct ks_entry	 e[4];
	long		 seq;

	if (!ks_tokens)
		return;
	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	tu_write_file(tok.csv, "tok-a,agentscaler,uid-1,system:masters\n");
	tu_write_file(tok.file, "wrong\n");
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	o.token_file = tok.file;
	c = client_new(ks.url, &o);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "tok-web", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_int_eq(res.err, -AS_EAUTH);
	ck_assert_msg(strncmp(res.msg, "401", 3) == 0, "msg %s", res.msg);
	/* Tried once more after re-reading the file, then given up. */
	tu_run_for(loop, 0.2);
	ck_assert_int_eq(ks_log(seq, "GET", "tok-web/scale", e, 4), 2);
	ck_assert_uint_eq(stat_get(c, "GET", 401), 2);
	k8s_client_free(c);
}
END_TEST

START_TEST(test_token_rotated)
{
	struct k8s_options o;
	struct k8s_client *c;
	struct result	 res;
	struct ks_entry	 e[4];
	long		 seq;

	if (!ks_tokens)
		return;
	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	tu_write_file(tok.csv, "tok-a,agentscaler,uid-1,system:masters\n");
	tu_write_file(tok.file, "tok-a\n");
	o.token_file = tok.file;
	c = client_new(ks.url, &o);
	api_deployment(c, "rot-web");
	/* The token rotates; the client still holds the old one. */
	tu_write_file(tok.csv, "tok-b,agentscaler,uid-1,system:masters\n");
	tu_write_file(tok.file, "tok-b\n");
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	ck_assert_ptr_nonnull(k8s_scale_patch(c, "Deployment", "default",
	    "rot-web", 2, on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_msg(res.err == 0, "err %d: %s", res.err, res.msg);
	ck_assert_int_eq(ks_log(seq, "PATCH", "rot-web/scale", e, 4), 2);
	ck_assert_int_eq(e[0].code, 401);
	ck_assert_int_eq(e[1].code, 200);
	ck_assert_str_eq(e[1].user, "agentscaler");
	k8s_client_free(c);
}
END_TEST

/* ---- kubeconfig: CA data, a static token, an exec plugin (TLS) ---- */

static void
ks_setup_tls_tokens(void)
{
	static const char *const args[] = { "--tls", "--tokens", tok.csv,
	    NULL };

	tu_kubesim_tokens_make(&tok, "check_k8s_kc");
	ks_start(args);
}

/*
 * Writes tok.dir/config: the TLS kube-sim with ca as its CA (base64), and
 * user as the "user:" body; returns its path (static).
 */
static const char *
kc_write(const char *ca, const char *user)
{
	static char	 path[160];
	char		*pem, *b64, *doc, err[256];
	size_t		 len;

	ck_assert_ptr_nonnull(pem = as_read_file(ca, 65536, &len, err,
	    sizeof err));
	b64 = as_base64_encode(pem, len);
	doc = xasprintf("apiVersion: v1\nkind: Config\ncurrent-context: t\n"
	    "clusters:\n- name: sim\n  cluster:\n    server: %s\n"
	    "    certificate-authority-data: %s\n"
	    "users:\n- name: u\n  user:\n%s\n"
	    "contexts:\n- name: t\n  context: {cluster: sim, user: u}\n",
	    ks.url, b64, user);
	snprintf(path, sizeof path, "%s/config", tok.dir);
	tu_write_file(path, doc);
	free(doc);
	free(b64);
	free(pem);
	return (path);
}

static struct k8s_client *
kc_client(const char *path)
{
	struct k8s_options o;
	struct k8s_client *c;
	char		 err[512] = "";

	memset(&o, 0, sizeof o);
	o.kubeconfig = path;
	o.retry_base = 0.02;
	o.retry_cap = 0.1;
	c = k8s_client_new(loop, &o, err, sizeof err);
	ck_assert_msg(c != NULL, "k8s_client_new: %s", err);
	return (c);
}

START_TEST(test_kc_ca_data_and_token)
{
	struct k8s_client *c;
	struct result	 res;
	struct ks_entry	 e[4];
	long		 seq;

	tu_write_file(tok.csv, "tok-a,agentscaler,uid-1,system:masters\n");
	c = kc_client(kc_write(ks.ca, "    token: tok-a"));
	api_deployment(c, "kc-web");
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	memset(&res, 0, sizeof res);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "kc-web", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_msg(res.err == 0, "err %d: %s", res.err, res.msg);
	ck_assert_int_eq(ks_log(seq, "GET", "kc-web/scale", e, 4), 1);
	ck_assert_str_eq(e[0].user, "agentscaler");
	k8s_client_free(c);
}
END_TEST

/* certificate-authority-data replaces the system CAs: a wrong one fails. */
START_TEST(test_kc_wrong_ca)
{
	struct k8s_client *c;
	struct result	 res;
	char		 path[160];
	FILE		*fp;

	/* A certificate of nobody we trust: the server's own, as a CA. */
	snprintf(path, sizeof path, "%s/other.pem", tok.dir);
	ck_assert_int_eq(system("openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:prime256v1 -nodes -keyout /dev/null -subj "
	    "/CN=other -days 1 2>/dev/null > /tmp/check_k8s_other.pem"), 0);
	ck_assert_ptr_nonnull(fp = fopen("/tmp/check_k8s_other.pem", "r"));
	fclose(fp);
	c = kc_client(kc_write("/tmp/check_k8s_other.pem", "    token: tok-a"));
	unlink("/tmp/check_k8s_other.pem");
	memset(&res, 0, sizeof res);
	ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment", "default",
	    "kc-web", on_scale, &res));
	res.returned = 1;
	ck_assert(tu_run_count(loop, &res.calls, 1, WAIT));
	ck_assert_int_eq(res.err, -AS_ECONN);
	ck_assert_msg(strstr(res.msg, "certificate") != NULL, "%s", res.msg);
	k8s_client_free(c);
}
END_TEST

/*
 * An exec plugin run at start, then again after a 401 on the loop (a
 * private loop: waitpid polling); the retried request waits for it.
 */
START_TEST(test_kc_exec_after_401)
{
	struct k8s_client *c;
	struct result	 res[3];
	struct ks_entry	 e[8];
	char		 plugin[160], user[512], runs[160], *text;
	long		 seq;
	int		 i;

	snprintf(plugin, sizeof plugin, "%s/plugin", tok.dir);
	snprintf(runs, sizeof runs, "%s/runs", tok.dir);
	tu_write_file(plugin, "#!/bin/sh\necho run >> \"$RUNS\"\n"
	    "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
	    "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%s\"}}' "
	    "\"$(cat \"$TOKEN_FILE\")\"\n");
	ck_assert_int_eq(chmod(plugin, 0700), 0);
	snprintf(user, sizeof user, "    exec:\n"
	    "      apiVersion: client.authentication.k8s.io/v1\n"
	    "      command: ./plugin\n      interactiveMode: Never\n"
	    "      env:\n      - {name: TOKEN_FILE, value: %s}\n"
	    "      - {name: RUNS, value: %s}", tok.file, runs);
	tu_write_file(tok.csv, "tok-a,agentscaler,uid-1,system:masters\n");
	tu_write_file(tok.file, "tok-a\n");
	c = kc_client(kc_write(ks.ca, user));
	api_deployment(c, "kc-exec");

	/* Rotate: the server forgets tok-a, the plugin hands out tok-b. */
	tu_write_file(tok.csv, "tok-b,agentscaler,uid-1,system:masters\n");
	tu_write_file(tok.file, "tok-b\n");
	seq = ks_log(-1, NULL, NULL, NULL, 0);
	memset(res, 0, sizeof res);
	for (i = 0; i < 3; i++) {
		ck_assert_ptr_nonnull(k8s_scale_get(c, "Deployment",
		    "default", "kc-exec", on_scale, &res[i]));
		res[i].returned = 1;
	}
	for (i = 0; i < 3; i++) {
		ck_assert(tu_run_count(loop, &res[i].calls, 1, WAIT));
		ck_assert_msg(res[i].err == 0, "err %d: %s", res[i].err,
		    res[i].msg);
	}
	ck_assert_int_ge(ks_log(seq, "GET", "kc-exec/scale", e, 8), 4);
	ck_assert_int_eq(e[0].code, 401);
	/* One run at start, one for the 401s, however many came back. */
	ck_assert_ptr_nonnull(text = as_read_file(runs, 4096, NULL, user,
	    sizeof user));
	ck_assert_int_eq(tu_count(text, "run\n"), 2);
	free(text);
	k8s_client_free(c);
}
END_TEST

static Suite *
k8s_suite(void)
{
	Suite	*s = suite_create("k8s");
	TCase	*tc;

	tc = tcase_create("pure");
	tcase_add_loop_test(tc, test_scale_parse, 0,
	    (int)AS_ARRAY_SIZE(parse_rows));
	tcase_add_loop_test(tc, test_status_message, 0,
	    (int)AS_ARRAY_SIZE(status_rows));
	tcase_add_test(tc, test_status_message_small);
	tcase_add_loop_test(tc, test_kind_resource, 0,
	    (int)AS_ARRAY_SIZE(kind_rows));
	tcase_add_test(tc, test_kind_list);
	tcase_add_loop_test(tc, test_classify, 0,
	    (int)AS_ARRAY_SIZE(class_rows));
	tcase_add_test(tc, test_retry_after);
	suite_add_tcase(s, tc);

	tc = tcase_create("incluster");
	tcase_add_checked_fixture(tc, sa_setup, sa_teardown);
	tcase_add_loop_test(tc, test_incluster, 0,
	    (int)AS_ARRAY_SIZE(ic_rows));
	tcase_add_test(tc, test_incluster_errors);
	suite_add_tcase(s, tc);

	tc = tu_tcase(s, "offline", 60, NULL, NULL, dead_setup, loop_teardown);
	tcase_add_test(tc, test_client_bad_args);
	tcase_add_test(tc, test_client_refused);
	tcase_add_test(tc, test_client_no_retries);
	tcase_add_test(tc, test_client_cancel_offline);
	tcase_add_test(tc, test_client_free_in_callback);

	tc = tu_tcase(s, "kube-sim", 120, ks_setup_plain, ks_teardown,
	    ks_test_setup, ks_test_teardown);
	tcase_add_test(tc, test_ks_scale_get);
	tcase_add_test(tc, test_ks_scale_patch);
	tcase_add_test(tc, test_ks_not_found);
	tcase_add_test(tc, test_ks_500_then_ok);
	tcase_add_test(tc, test_ks_500_exhausted);
	tcase_add_loop_test(tc, test_ks_not_retried, 0,
	    (int)AS_ARRAY_SIZE(noretry_rows));
	tcase_add_test(tc, test_ks_429_retry_after);
	tcase_add_test(tc, test_ks_timeout);
	tcase_add_test(tc, test_ks_cancel_pending);
	tcase_add_test(tc, test_ks_rate_limit);
	tcase_add_test(tc, test_ks_pause_resume);
	tcase_add_test(tc, test_ks_outage_logged_once);

	tc = tu_tcase(s, "kube-sim-tls", 120, ks_setup_tls, ks_teardown,
	    ks_test_setup, ks_test_teardown);
	tcase_add_test(tc, test_tls_with_ca);
	tcase_add_test(tc, test_tls_without_ca);
	tcase_add_test(tc, test_tls_insecure);

	tc = tu_tcase(s, "kube-sim-tokens", 120, ks_setup_tokens, ks_teardown,
	    ks_test_setup, ks_test_teardown);
	tcase_add_test(tc, test_token_sent);
	tcase_add_test(tc, test_token_bad);
	tcase_add_test(tc, test_token_rotated);

	tc = tu_tcase(s, "kubeconfig", 120, ks_setup_tls_tokens, ks_teardown,
	    ks_test_setup, ks_test_teardown);
	tcase_add_test(tc, test_kc_ca_data_and_token);
	tcase_add_test(tc, test_kc_wrong_ca);
	tcase_add_test(tc, test_kc_exec_after_401);

	return (s);
}

int
main(void)
{
	int	 rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = tu_run_suite(k8s_suite());
	curl_global_cleanup();
	return (rc);
}
