/*
 * check_execcred.c: exec credential plugins.  Pure cases first (the
 * ExecCredential a plugin prints, the KUBERNETES_EXEC_INFO it gets), then
 * real plugins (small /bin/sh scripts in a temporary directory) run
 * blocking and on a private ev loop: the environment they see, failures
 * with the first line of stderr, the time and size bounds, a missing
 * command with its install hint, and a plugin killed by execcred_free().
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "k8s/execcred.h"
#include "k8s/kubeconfig.h"
#include "util/loop.h"
#include "util/testutil.h"

#define V1	"client.authentication.k8s.io/v1"
#define V1B	"client.authentication.k8s.io/v1beta1"
#define WAIT	20.0	/* seconds; a deadline, not a speed check */

/* ---- pure: execcred_parse ---- */

struct parse_row {
	const char	*name;
	const char	*out;
	const char	*token;		/* expected, or NULL */
	int		 cert;		/* expects a certificate and key */
	double		 expiry;
	const char	*err;		/* NULL: parses */
};

#define EC(status) "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\"," \
	"\"status\":" status "}"

static const struct parse_row parse_rows[] = {
	{ "token", EC("{\"token\":\"t-1\"}"), "t-1", 0, 0, NULL },
	{ "token with expiry", EC("{\"token\":\"t\",\"expirationTimestamp\":"
	    "\"2030-01-02T03:04:05Z\"}"), "t", 0, 1893553445, NULL },
	{ "expiry with an offset", EC("{\"token\":\"t\",\"expirationTimestamp\":"
	    "\"2030-01-02T05:04:05+02:00\"}"), "t", 0, 1893553445, NULL },
	{ "certificate and key", EC("{\"clientCertificateData\":\"C\","
	    "\"clientKeyData\":\"K\"}"), NULL, 1, 0, NULL },
	{ "spec and unknown fields", "{\"kind\":\"ExecCredential\","
	    "\"apiVersion\":\"" V1 "\",\"spec\":{\"interactive\":false},"
	    "\"status\":{\"token\":\"t\",\"other\":1}}", "t", 0, 0, NULL },
	{ "null expiry", EC("{\"token\":\"t\",\"expirationTimestamp\":null}"),
	    "t", 0, 0, NULL },
	{ "empty", "", NULL, 0, 0, "printed nothing" },
	{ "not JSON", "token: t", NULL, 0, 0, "not JSON" },
	{ "an array", "[]", NULL, 0, 0, "not an object" },
	{ "another kind", "{\"apiVersion\":\"" V1 "\",\"kind\":\"Secret\"}",
	    NULL, 0, 0, "kind \"Secret\", not ExecCredential" },
	{ "another version", "{\"apiVersion\":\"" V1B "\",\"kind\":"
	    "\"ExecCredential\",\"status\":{\"token\":\"t\"}}", NULL, 0, 0,
	    "apiVersion \"" V1B "\", but the kubeconfig asks for \"" V1 "\"" },
	{ "no status", "{\"apiVersion\":\"" V1 "\",\"kind\":"
	    "\"ExecCredential\"}", NULL, 0, 0, "without a status" },
	{ "status empty", EC("{}"), NULL, 0, 0, "neither a token nor" },
	{ "empty token", EC("{\"token\":\"\"}"), NULL, 0, 0,
	    "neither a token nor" },
	{ "certificate alone", EC("{\"clientCertificateData\":\"C\"}"), NULL,
	    0, 0, "only one of clientCertificateData and clientKeyData" },
	{ "key alone", EC("{\"token\":\"t\",\"clientKeyData\":\"K\"}"), NULL,
	    0, 0, "only one of" },
	{ "token a number", EC("{\"token\":5}"), NULL, 0, 0,
	    "must be strings" },
	{ "bad expiry", EC("{\"token\":\"t\",\"expirationTimestamp\":"
	    "\"tomorrow\"}"), NULL, 0, 0, "expirationTimestamp is not an RFC "
	    "3339 time" },
	{ "expiry a number", EC("{\"token\":\"t\",\"expirationTimestamp\":5}"),
	    NULL, 0, 0, "expirationTimestamp" },
};

START_TEST(test_parse)
{
	const struct parse_row *row = &parse_rows[_i];
	struct execcred_cred c;
	char		 err[512] = "";
	int		 rc;

	memset(&c, 0, sizeof c);
	rc = execcred_parse(row->out, strlen(row->out), V1, &c, err,
	    sizeof err);
	if (row->err != NULL) {
		ck_assert_msg(rc == -AS_EPROTO, "%s: rc %d", row->name, rc);
		ck_assert_msg(strstr(err, row->err) != NULL,
		    "%s: err \"%s\" lacks \"%s\"", row->name, err, row->err);
		ck_assert_ptr_null(c.token);
		return;
	}
	ck_assert_msg(rc == 0, "%s: %s", row->name, err);
	if (row->token != NULL)
		ck_assert_str_eq(c.token, row->token);
	else
		ck_assert_ptr_null(c.token);
	if (row->cert) {
		ck_assert_str_eq(c.cert, "C");
		ck_assert_uint_eq(c.cert_len, 1);
		ck_assert_str_eq(c.key, "K");
	}
	ck_assert(c.expiry == row->expiry);
	execcred_cred_clear(&c);
	ck_assert_ptr_null(c.token);
}
END_TEST

/* Error messages name fields, never a value a plugin gave. */
START_TEST(test_parse_never_echoes_secrets)
{
	struct execcred_cred c;
	char		 err[512] = "";

	memset(&c, 0, sizeof c);
	ck_assert_int_ne(execcred_parse(EC("{\"token\":\"s3cr3t\","
	    "\"clientKeyData\":\"k3y\",\"expirationTimestamp\":\"x\"}"),
	    strlen(EC("{\"token\":\"s3cr3t\",\"clientKeyData\":\"k3y\","
	    "\"expirationTimestamp\":\"x\"}")), V1, &c, err, sizeof err), 0);
	ck_assert(strstr(err, "s3cr3t") == NULL && strstr(err, "k3y") == NULL);
}
END_TEST

START_TEST(test_info)
{
	struct execcred_cluster cl = { "https://10.0.0.1:6443", "hello", 5, 1 };
	cJSON		*o;
	const cJSON	*spec, *c;
	char		*s;

	s = execcred_info(V1, NULL);
	ck_assert_str_eq(s, "{\"apiVersion\":\"" V1 "\",\"kind\":"
	    "\"ExecCredential\",\"spec\":{\"interactive\":false}}");
	free(s);
	s = execcred_info(V1B, &cl);
	ck_assert_ptr_nonnull(o = cJSON_Parse(s));
	spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
	c = cJSON_GetObjectItemCaseSensitive(spec, "cluster");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o,
	    "apiVersion")->valuestring, V1B);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(spec,
	    "interactive")));
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(c,
	    "server")->valuestring, "https://10.0.0.1:6443");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(c,
	    "certificate-authority-data")->valuestring, "aGVsbG8=");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c,
	    "insecure-skip-tls-verify")));
	cJSON_Delete(o);
	free(s);
}
END_TEST

/* ---- real plugins ---- */

static char	 dir[64];

static void
dir_setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/check_execcred.%d.XXXXXX",
	    (int)getpid());
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
dir_teardown(void)
{
	char	 cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	(void)!system(cmd);
}

/* Writes an executable /bin/sh script; returns its path (static). */
static const char *
script(const char *name, const char *body)
{
	static char	 path[128];
	char		*text;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	text = xasprintf("#!/bin/sh\n%s\n", body);
	tu_write_file(path, text);
	free(text);
	ck_assert_int_eq(chmod(path, 0700), 0);
	return (path);
}

/* A config for command (borrowed strings; args and env as given). */
static struct kubeconfig_exec
config(const char *command, char **args, size_t nargs,
    struct kubeconfig_env *env, size_t nenv)
{
	struct kubeconfig_exec x;

	memset(&x, 0, sizeof x);
	x.api_version = (char *)V1;
	x.command = (char *)command;
	x.args = args;
	x.nargs = nargs;
	x.env = env;
	x.nenv = nenv;
	x.interactive_mode = (char *)"Never";
	return (x);
}

#define PRINT_TOKEN							\
	"printf '{\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","	\
	"\"status\":{\"token\":\"%s\"}}' " V1

START_TEST(test_run_token_env_args)
{
	struct kubeconfig_env env[] = { { (char *)"TOK", (char *)"tok-from-env" },
	    { (char *)"OVERRIDDEN", (char *)"by-kubeconfig" } };
	char		*args[] = { (char *)"one", (char *)"two words" };
	struct execcred_cluster cl = { "https://sim", NULL, 0, 0 };
	struct kubeconfig_exec x;
	struct execcred_cred c;
	struct execcred	*ec;
	char		 err[512] = "", path[128], *info;
	const char	*cmd;

	snprintf(path, sizeof path, "%s/seen", dir);
	cmd = script("plugin", "{ echo \"$1|$2|$#\"; echo \"$INHERITED\";"
	    " echo \"$OVERRIDDEN\"; echo \"$KUBERNETES_EXEC_INFO\";"
	    " [ -t 0 ] && echo tty || echo notty; } > \"$0.seen\"\n"
	    PRINT_TOKEN " \"$TOK\"");
	setenv("INHERITED", "from-parent", 1);
	setenv("OVERRIDDEN", "from-parent", 1);
	setenv("KUBERNETES_EXEC_INFO", "stale", 1);
	x = config(cmd, args, 2, env, 2);
	x.provide_cluster_info = 1;
	ec = execcred_new(NULL, &x, &cl, 0);
	memset(&c, 0, sizeof c);
	ck_assert_msg(execcred_run(ec, &c, err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(c.token, "tok-from-env");
	ck_assert(c.expiry == 0);
	execcred_cred_clear(&c);
	execcred_free(ec);
	unsetenv("KUBERNETES_EXEC_INFO");

	snprintf(path, sizeof path, "%s/plugin.seen", dir);
	ck_assert_ptr_nonnull(info = as_read_file(path, 4096, NULL, err,
	    sizeof err));
	ck_assert_msg(strstr(info, "one|two words|2\nfrom-parent\n"
	    "by-kubeconfig\n{\"apiVersion\":\"" V1 "\",\"kind\":"
	    "\"ExecCredential\",\"spec\":{\"interactive\":false,\"cluster\":"
	    "{\"server\":\"https://sim\"}}}\nnotty\n") == info, "%s", info);
	free(info);
}
END_TEST

START_TEST(test_run_on_path)
{
	struct kubeconfig_exec x;
	struct execcred_cred c;
	struct execcred	*ec;
	char		 err[512] = "", *old, *path;

	script("my-token-plugin", PRINT_TOKEN " t-path");
	old = xstrdup(getenv("PATH") != NULL ? getenv("PATH") : "/bin");
	path = xasprintf("/nonexistent:%s:%s", dir, old);
	setenv("PATH", path, 1);
	x = config("my-token-plugin", NULL, 0, NULL, 0);
	ec = execcred_new(NULL, &x, NULL, 0);
	memset(&c, 0, sizeof c);
	ck_assert_msg(execcred_run(ec, &c, err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(c.token, "t-path");
	execcred_cred_clear(&c);
	execcred_free(ec);
	setenv("PATH", old, 1);
	free(old);
	free(path);
}
END_TEST

struct fail_row {
	const char	*name;
	const char	*body;		/* NULL: a command that is not there */
	double		 timeout;
	int		 rc;
	const char	*err;
};

static const struct fail_row fail_rows[] = {
	{ "exit status and the first stderr line",
	    "echo 'error: token expired, run: cloud login' >&2\n"
	    "echo 'details nobody needs' >&2\nexit 4", 0, -AS_EAUTH,
	    "exit status 4: error: token expired, run: cloud login" },
	{ "signal", "kill -TERM $$", 0, -AS_EIO, "killed by signal 15" },
	{ "bad output", "echo not json", 0, -AS_EPROTO,
	    "printed something that is not JSON" },
	{ "timeout kills it and its children",
	    "sleep 30 & sleep 30", 0.3, -AS_ETIMEDOUT,
	    "no answer within 0.3 s, killed" },
	{ "stdout closed, process lingers", "exec >&-; sleep 30", 0.3,
	    -AS_ETIMEDOUT, "killed" },
	{ "too much output", "yes tok-tok-tok | head -c 2000000", 0,
	    -AS_EPROTO, "printed more than 1048576 bytes, killed" },
	{ "not executable", "", 0, -AS_ENOTFOUND, "not found" },
	{ "missing", NULL, 0, -AS_ENOTFOUND,
	    "exec plugin \"/nonexistent/get-token\": not found: see the wiki" },
};

START_TEST(test_run_failures)
{
	const struct fail_row *row = &fail_rows[_i];
	struct kubeconfig_exec x;
	struct execcred_cred c;
	struct execcred	*ec;
	char		 err[512] = "";
	const char	*cmd = "/nonexistent/get-token";
	double		 t0;
	int		 rc;

	if (row->body != NULL)
		cmd = script("plugin", row->body);
	if (row->body != NULL && *row->body == '\0')
		ck_assert_int_eq(chmod(cmd, 0600), 0);
	x = config(cmd, NULL, 0, NULL, 0);
	x.install_hint = (char *)"see the wiki";
	ec = execcred_new(NULL, &x, NULL, row->timeout);
	memset(&c, 0, sizeof c);
	t0 = as_mono_now();
	rc = execcred_run(ec, &c, err, sizeof err);
	ck_assert_msg(rc == row->rc, "%s: rc %d (%s)", row->name, rc, err);
	ck_assert_msg(strstr(err, row->err) != NULL,
	    "%s: err \"%s\" lacks \"%s\"", row->name, err, row->err);
	ck_assert_msg(strstr(err, "details nobody") == NULL, "%s", err);
	ck_assert_ptr_null(c.token);
	/* A bound, not a speed check: nothing waits for the 30 s sleeps. */
	ck_assert_msg(as_mono_now() - t0 < 15, "%s took %.1f s", row->name,
	    as_mono_now() - t0);
	execcred_free(ec);
}
END_TEST

/* ---- on a loop ---- */

struct done_rec {
	int			 calls;
	int			 err;
	char			 token[64];
	char			 msg[512];
	int			 returned;
};

static void
on_done(struct execcred *ec, int err, struct execcred_cred *c,
    const char *msg, void *arg)
{
	struct done_rec	*d = arg;

	ck_assert_ptr_nonnull(ec);
	ck_assert_msg(d->returned, "done ran inside execcred_start");
	ck_assert_int_eq(execcred_busy(ec), 0);
	d->calls++;
	d->err = err;
	as_strlcpy(d->msg, msg, sizeof d->msg);
	if (err == 0)
		as_strlcpy(d->token, c->token, sizeof d->token);
}

static int
pred_done(void *arg)
{
	return (((struct done_rec *)arg)->calls > 0);
}

START_TEST(test_start_on_a_loop)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct kubeconfig_exec x;
	struct execcred	*ec;
	struct done_rec	 d;
	char		 err[512] = "";

	x = config(script("plugin", "sleep 0.2\n" PRINT_TOKEN " t-async"),
	    NULL, 0, NULL, 0);
	ec = execcred_new(loop, &x, NULL, 0);
	memset(&d, 0, sizeof d);
	ck_assert_int_eq(execcred_start(ec, on_done, &d, err, sizeof err), 0);
	d.returned = 1;
	ck_assert_int_eq(execcred_busy(ec), 1);
	ck_assert_int_eq(execcred_start(ec, on_done, &d, err, sizeof err),
	    -AS_EAGAIN);
	ck_assert_int_eq(execcred_run(ec, NULL, err, sizeof err), -AS_EAGAIN);
	ck_assert(tu_run_until(loop, pred_done, &d, WAIT));
	ck_assert_int_eq(d.calls, 1);
	ck_assert_msg(d.err == 0, "%s", d.msg);
	ck_assert_str_eq(d.token, "t-async");

	/* Again, failing this time, on the same runner. */
	script("plugin", "echo 'no way' >&2; exit 1");
	memset(&d, 0, sizeof d);
	ck_assert_int_eq(execcred_start(ec, on_done, &d, err, sizeof err), 0);
	d.returned = 1;
	ck_assert(tu_run_until(loop, pred_done, &d, WAIT));
	ck_assert_int_eq(d.err, -AS_EAUTH);
	ck_assert_msg(strstr(d.msg, "exit status 1: no way") != NULL, "%s",
	    d.msg);

	/* A timeout on the loop. */
	execcred_free(ec);
	x = config(script("slow", "sleep 30"), NULL, 0, NULL, 0);
	ec = execcred_new(loop, &x, NULL, 0.3);
	memset(&d, 0, sizeof d);
	ck_assert_int_eq(execcred_start(ec, on_done, &d, err, sizeof err), 0);
	d.returned = 1;
	ck_assert(tu_run_until(loop, pred_done, &d, WAIT));
	ck_assert_int_eq(d.err, -AS_ETIMEDOUT);
	execcred_free(ec);

	/* A start that cannot start: no callback. */
	x = config("/nonexistent/x", NULL, 0, NULL, 0);
	ec = execcred_new(loop, &x, NULL, 0);
	memset(&d, 0, sizeof d);
	ck_assert_int_eq(execcred_start(ec, on_done, &d, err, sizeof err),
	    -AS_ENOTFOUND);
	ck_assert_int_eq(execcred_busy(ec), 0);
	execcred_free(ec);
	tu_run_for(loop, 0.1);
	ck_assert_int_eq(d.calls, 0);
	ev_loop_destroy(loop);
}
END_TEST

/* Freed while running: the plugin is killed and reaped, done never runs. */
START_TEST(test_free_while_running)
{
	struct ev_loop	*loop = ev_loop_new(EVFLAG_AUTO);
	struct kubeconfig_exec x;
	struct execcred	*ec;
	struct done_rec	 d;
	char		 err[512] = "", path[128], *pid;
	int		 n;

	snprintf(path, sizeof path, "%s/pid", dir);
	x = config(script("plugin", "echo $$ > \"$0.pid\"; exec sleep 30"),
	    NULL, 0, NULL, 0);
	ec = execcred_new(loop, &x, NULL, 0);
	memset(&d, 0, sizeof d);
	d.returned = 1;
	ck_assert_int_eq(execcred_start(ec, on_done, &d, err, sizeof err), 0);
	snprintf(path, sizeof path, "%s/plugin.pid", dir);
	for (n = 0; n < 200 && access(path, R_OK) != 0; n++)
		tu_run_for(loop, 0.02);
	ck_assert_ptr_nonnull(pid = as_read_file(path, 64, NULL, err,
	    sizeof err));
	execcred_free(ec);
	/* Reaped: the PID no longer names our child. */
	ck_assert_int_ne(kill((pid_t)strtol(pid, NULL, 10), 0), 0);
	free(pid);
	tu_run_for(loop, 0.1);
	ck_assert_int_eq(d.calls, 0);
	ev_loop_destroy(loop);
}
END_TEST

static Suite *
execcred_suite(void)
{
	Suite	*s = suite_create("execcred");
	TCase	*tc;

	tc = tcase_create("pure");
	tcase_add_loop_test(tc, test_parse, 0, (int)AS_ARRAY_SIZE(parse_rows));
	tcase_add_test(tc, test_parse_never_echoes_secrets);
	tcase_add_test(tc, test_info);
	suite_add_tcase(s, tc);

	tc = tu_tcase(s, "run", 60, NULL, NULL, dir_setup, dir_teardown);
	tcase_add_test(tc, test_run_token_env_args);
	tcase_add_test(tc, test_run_on_path);
	tcase_add_loop_test(tc, test_run_failures, 0,
	    (int)AS_ARRAY_SIZE(fail_rows));
	tcase_add_test(tc, test_start_on_a_loop);
	tcase_add_test(tc, test_free_while_running);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(execcred_suite()));
}
