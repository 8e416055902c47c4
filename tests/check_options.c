/*
 * check_options.c: the daemon's flags (scheduler/options.c): defaults,
 * environment, command line, bounds, and the copy by table into struct
 * daemon_options, each field named here by hand so that a row pointing at
 * the wrong field fails.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentscaler/rt/common.h"
#include "scheduler/daemon.h"
#include "scheduler/options.h"
#include "scheduler/podcidr.h"
#include "util/testutil.h"

extern char **environ;

/* No AGENTSCALER_* from whoever runs the tests. */
static void
clear_env(void)
{
	char	 name[256];
	size_t	 i, n;

	for (i = 0; environ[i] != NULL; ) {
		if (strncmp(environ[i], "AGENTSCALER_", 12) != 0) {
			i++;
			continue;
		}
		n = strcspn(environ[i], "=");
		ck_assert_uint_lt(n, sizeof name);
		memcpy(name, environ[i], n);
		name[n] = '\0';
		unsetenv(name);
	}
}

/* Parses a NULL-terminated argument list as main() would. */
static int
parse(struct options *o, struct daemon_options *d, char *err, size_t errlen,
    const char *const *args)
{
	char	*argv[64];
	int	 argc = 0, rc;

	argv[argc++] = (char *)"agentscaler";
	while (*args != NULL)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	if ((rc = options_parse(o, argc, argv)) != 0)
		return (rc);
	if ((rc = options_numbers(o)) != 0)
		return (rc);
	return (options_daemon(o, d, err, errlen));
}

START_TEST(test_defaults)
{
	static const char *const none[] = { NULL };
	struct options		 o;
	struct daemon_options	 d;
	char			 err[256], host[128];

	clear_env();
	ck_assert_int_eq(parse(&o, &d, err, sizeof err, none), 0);
	ck_assert_ptr_null(d.config_path);
	ck_assert_ptr_null(d.watch_namespace);
	ck_assert_str_eq(d.secrets_dir, "/etc/agentscaler/secrets");
	ck_assert_str_eq(d.metrics_addr, "127.0.0.1:9090");
	ck_assert_str_eq(d.admin_addr, "127.0.0.1:9091");
	ck_assert_double_eq(d.resync_seconds, 0);	/* deprecated */
	ck_assert_ptr_null(d.k8s.kubeconfig);
	ck_assert_ptr_null(d.k8s.context);
	ck_assert_ptr_null(d.k8s.apiserver);
	ck_assert_ptr_null(d.k8s.token_file);
	ck_assert_ptr_null(d.k8s.ca_file);
	ck_assert_int_eq(d.k8s.insecure_skip_tls_verify, 0);
	ck_assert_double_eq(d.k8s.qps, 20);
	ck_assert_int_eq(d.k8s.burst, 30);
	ck_assert_double_eq(d.k8s.timeout, 10);
	ck_assert_int_eq(d.k8s.max_retries, 5);
	ck_assert_int_eq(d.leader_elect, 0);
	ck_assert_str_eq(d.leader.name, "agentscaler");
	ck_assert_ptr_nonnull(d.leader.ns);	/* the in-cluster default */
	ck_assert_double_eq(d.leader.lease_duration, 15);
	ck_assert_double_eq(d.leader.renew_deadline, 10);
	ck_assert_double_eq(d.leader.retry_period, 2);
	ck_assert_uint_eq(d.tenancy.nshared, 0);
	ck_assert_uint_eq(d.tenancy.nsecret_namespaces, 0);
	/* The stock router Service, and no pod ranges (via podIP refused). */
	ck_assert_uint_eq(d.tenancy.nrouters, 1);
	ck_assert_str_eq(d.tenancy.routers[0],
	    "http://sandbox-router-svc.default.svc:8080");
	ck_assert_uint_eq(d.tenancy.npod_cidrs, 0);
	if (gethostname(host, sizeof host) == 0 && host[0] != '\0') {
		host[sizeof host - 1] = '\0';
		ck_assert_str_eq(d.instance, host);
	}
	ck_assert_ptr_eq(d.leader.identity, d.instance);
	ck_assert_ptr_null(o.val[O_HELP]);
	options_free(&o);
}
END_TEST

/* Every flag with a field, each with its own value. */
START_TEST(test_every_field)
{
	static const char *const args[] = {
		"--config", "/c.json", "--secrets-dir", "/s",
		"--metrics-addr", "0.0.0.0:1", "--admin-addr", "127.0.0.1:2",
		"--kubeconfig", "/kc", "--context", "ctx",
		"--apiserver", "https://api:6443", "--token-file", "/tok",
		"--ca-file", "/ca", "--insecure-skip-tls-verify",
		"--kube-qps", "3.5", "--kube-burst", "7",
		"--kube-timeout", "9.5",
		"--kube-retries", "11", "--resync-seconds", "13",
		"--instance", "inst-1", "--leader-elect",
		"--lease-name", "lname", "--lease-namespace", "lns",
		"--lease-duration", "17", "--renew-deadline", "8.5",
		"--retry-period", "1.5", "--watch-namespace", "wns",
		"--shared-secrets", "a/x,,b/y", "--secret-namespaces", "n1,n2",
		"--handoff-routers", "https://r1:8443,,http://r2",
		"--pod-cidrs", "10.244.0.0/16,fd00::/8",
		"--log-level", "debug", NULL
	};
	struct options		 o;
	struct daemon_options	 d;
	char			 err[256];

	clear_env();
	ck_assert_int_eq(parse(&o, &d, err, sizeof err, args), 0);
	ck_assert_str_eq(d.config_path, "/c.json");
	ck_assert_str_eq(d.secrets_dir, "/s");
	ck_assert_str_eq(d.metrics_addr, "0.0.0.0:1");
	ck_assert_str_eq(d.admin_addr, "127.0.0.1:2");
	ck_assert_str_eq(d.k8s.kubeconfig, "/kc");
	ck_assert_str_eq(d.k8s.context, "ctx");
	ck_assert_str_eq(d.k8s.apiserver, "https://api:6443");
	ck_assert_str_eq(d.k8s.token_file, "/tok");
	ck_assert_str_eq(d.k8s.ca_file, "/ca");
	ck_assert_int_eq(d.k8s.insecure_skip_tls_verify, 1);
	ck_assert_double_eq(d.k8s.qps, 3.5);
	ck_assert_int_eq(d.k8s.burst, 7);
	ck_assert_double_eq(d.k8s.timeout, 9.5);
	ck_assert_int_eq(d.k8s.max_retries, 11);
	ck_assert_double_eq(d.resync_seconds, 13);
	ck_assert_str_eq(d.instance, "inst-1");
	ck_assert_str_eq(d.leader.identity, "inst-1");
	ck_assert_int_eq(d.leader_elect, 1);
	ck_assert_str_eq(d.leader.name, "lname");
	ck_assert_str_eq(d.leader.ns, "lns");
	ck_assert_double_eq(d.leader.lease_duration, 17);
	ck_assert_double_eq(d.leader.renew_deadline, 8.5);
	ck_assert_double_eq(d.leader.retry_period, 1.5);
	ck_assert_str_eq(d.watch_namespace, "wns");
	ck_assert_uint_eq(d.tenancy.nshared, 2);
	ck_assert_str_eq(d.tenancy.shared[0], "a/x");
	ck_assert_str_eq(d.tenancy.shared[1], "b/y");
	ck_assert_uint_eq(d.tenancy.nsecret_namespaces, 2);
	ck_assert_str_eq(d.tenancy.secret_namespaces[1], "n2");
	ck_assert_uint_eq(d.tenancy.nrouters, 2);
	ck_assert_str_eq(d.tenancy.routers[0], "https://r1:8443");
	ck_assert_str_eq(d.tenancy.routers[1], "http://r2");
	ck_assert_uint_eq(d.tenancy.npod_cidrs, 2);
	ck_assert_int_eq(pod_cidr_match(d.tenancy.pod_cidrs, 2, "10.244.9.9"),
	    1);
	ck_assert_int_eq(pod_cidr_match(d.tenancy.pod_cidrs, 2, "fd00::1"), 1);
	ck_assert_int_eq(pod_cidr_match(d.tenancy.pod_cidrs, 2, "10.245.0.1"),
	    0);
	ck_assert_str_eq(o.val[O_LOG_LEVEL], "debug");
	options_free(&o);
}
END_TEST

/* The environment sets a flag; the command line wins over it. */
START_TEST(test_environment)
{
	static const char *const none[] = { NULL };
	static const char *const qps[] = { "--kube-qps", "4", NULL };
	struct options		 o;
	struct daemon_options	 d;
	char			 err[256];

	clear_env();
	setenv("AGENTSCALER_KUBE_QPS", "6", 1);
	setenv("AGENTSCALER_LEADER_ELECT", "true", 1);
	setenv("AGENTSCALER_INSECURE_SKIP_TLS_VERIFY", "false", 1);
	setenv("AGENTSCALER_ADMIN_ADDR", "off", 1);
	setenv("AGENTSCALER_WATCH_NAMESPACE", "", 1);	/* empty: unset */
	ck_assert_int_eq(parse(&o, &d, err, sizeof err, none), 0);
	ck_assert_double_eq(d.k8s.qps, 6);
	ck_assert_int_eq(d.leader_elect, 1);
	ck_assert_int_eq(d.k8s.insecure_skip_tls_verify, 0);
	ck_assert_ptr_null(d.admin_addr);
	ck_assert_ptr_null(d.watch_namespace);
	options_free(&o);
	ck_assert_int_eq(parse(&o, &d, err, sizeof err, qps), 0);
	ck_assert_double_eq(d.k8s.qps, 4);
	options_free(&o);
	clear_env();
}
END_TEST

static const struct {
	const char	*args[4];
	const char	*err;	/* options_daemon()'s reason; or NULL */
} bad_rows[] = {
	{ { "--kube-qps", "fast", NULL }, NULL },
	{ { "--kube-qps", "0.01", NULL }, NULL },	/* below 0.1 */
	{ { "--kube-burst", "2.5", NULL }, NULL },	/* not whole */
	{ { "--kube-retries", "101", NULL }, NULL },
	{ { "--lease-duration", "", NULL }, NULL },
	{ { "--no-such-flag", NULL }, NULL },
	{ { "positional", NULL }, NULL },
	{ { "--shared-secrets", "noslash", NULL }, "NAMESPACE/NAME" },
	{ { "--shared-secrets", "a/b/c", NULL }, "NAMESPACE/NAME" },
	{ { "--shared-secrets", "/name", NULL }, "NAMESPACE/NAME" },
	{ { "--handoff-routers", "sandbox-router-svc:8080", NULL },
	    "--handoff-routers: expected http:// or https:// URLs" },
	{ { "--pod-cidrs", "10.0.0.0/8,10.1.0.0", NULL },
	    "--pod-cidrs: expected ADDRESS/BITS, got \"10.1.0.0\"" },
};

START_TEST(test_bad)
{
	struct options		 o;
	struct daemon_options	 d;
	char			 err[256] = "";
	FILE			*saved = stderr;

	clear_env();
	stderr = fopen("/dev/null", "w");	/* the complaints */
	ck_assert_int_eq(parse(&o, &d, err, sizeof err, bad_rows[_i].args),
	    -AS_EINVAL);
	fclose(stderr);
	stderr = saved;
	if (bad_rows[_i].err != NULL)
		ck_assert_ptr_nonnull(strstr(err, bad_rows[_i].err));
	options_free(&o);
}
END_TEST

/* --help: every flag once, with its default, after the usage lines. */
START_TEST(test_usage)
{
	char	*text = NULL, *line;
	size_t	 len = 0;
	FILE	*fp;
	int	 flags = 0;

	ck_assert_ptr_nonnull(fp = open_memstream(&text, &len));
	options_usage(fp);
	fclose(fp);
	ck_assert(strncmp(text, "usage: agentscaler [--config FILE]", 34) == 0);
	for (line = strstr(text, "\n  --"); line != NULL;
	    line = strstr(line + 1, "\n  --"))
		flags++;
	ck_assert_int_eq(flags, O_COUNT);
	ck_assert_int_eq(tu_count(text, "--kube-qps N "), 1);
	ck_assert_int_eq(tu_count(text, "(default 20)"), 1);
	ck_assert_int_eq(tu_count(text, "--leader-elect "), 1);
	ck_assert_int_eq(tu_count(text, "--config S "), 1);
	ck_assert_str_eq(options_default(O_ADMIN_ADDR), "127.0.0.1:9091");
	ck_assert_ptr_null(options_default(O_CONFIG));
	free(text);
}
END_TEST

static Suite *
options_suite(void)
{
	Suite	*s = suite_create("options");
	TCase	*tc = tcase_create("options");

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_every_field);
	tcase_add_test(tc, test_environment);
	tcase_add_loop_test(tc, test_bad, 0, (int)AS_ARRAY_SIZE(bad_rows));
	tcase_add_test(tc, test_usage);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(options_suite()));
}
