/*
 * main.c: the process: the flags (declared once, in options.c), the
 * one-shot modes (--help, --version, --help-config, --check-config,
 * explain, convert, simulate), then the daemon.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "agentscaler/rt/common.h"
#include "config.h"
#include "convert.h"
#include "daemon.h"
#include "daemon_http.h"
#include "options.h"
#include "simulate.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/k8s/leader.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/rt/yaml.h"
#include "agentscaler/scalers/scaler.h"
#include "agentscaler/rt/log.h"

static size_t
explain_write(char *p, size_t size, size_t n, void *arg)
{
	struct as_buf	*b = arg;

	if (b->len < 1 << 20)
		as_buf_printf(b, "%.*s", (int)(size * n), p);
	return (size * n);
}

static int
explain_usage(void)
{
	fprintf(stderr, "usage: agentscaler explain TASK-ID "
	    "[-n|--namespace NS] [--admin-addr HOST:PORT] [--json]\n");
	return (2);
}

/*
 * agentscaler explain TASK-ID [-n NS] [--admin-addr HOST:PORT] [--json]:
 * asks a running daemon, on its admin address (AGENTSCALER_ADMIN_ADDR as the
 * daemon reads it, else the default), why a task waits or was rejected.
 * Exit 0 when the task is known, 1 when not, 2 when the daemon cannot be
 * asked.
 */
static int
explain_main(int argc, char **argv)
{
	const char	*addr = getenv("AGENTSCALER_ADMIN_ADDR");
	const char	*id = NULL, *ns = NULL;
	struct as_buf	 b = { NULL, 0, 0 };
	CURL		*c;
	char		*esc, *nesc = NULL, url[1024];
	cJSON		*o;
	const cJSON	*e;
	long		 code = 0;
	int		 i, json = 0, rc;

	if (addr != NULL && *addr == '\0')
		addr = NULL;	/* as the daemon reads an empty variable */
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--admin-addr") == 0 && i + 1 < argc)
			addr = argv[++i];
		else if (strncmp(argv[i], "--admin-addr=", 13) == 0)
			addr = argv[i] + 13;
		else if (strncmp(argv[i], "--metrics-addr", 14) == 0) {
			fprintf(stderr, "agentscaler explain: /explain is "
			    "served on the admin address: use --admin-addr\n");
			return (2);
		} else if ((strcmp(argv[i], "-n") == 0 ||
		    strcmp(argv[i], "--namespace") == 0) && i + 1 < argc)
			ns = argv[++i];
		else if (strncmp(argv[i], "--namespace=", 12) == 0)
			ns = argv[i] + 12;
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (id == NULL && argv[i][0] != '-')
			id = argv[i];
		else
			return (explain_usage());
	}
	if (id == NULL)
		return (explain_usage());
	if (addr == NULL)
		addr = options_default(O_ADMIN_ADDR);
	if (options_addr_off(addr)) {
		fprintf(stderr, "agentscaler explain: the admin address is "
		    "off; give the daemon's --admin-addr\n");
		return (2);
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (c = curl_easy_init()) == NULL)
		return (2);
	esc = curl_easy_escape(c, id, 0);
	if (ns != NULL)
		nesc = curl_easy_escape(c, ns, 0);
	snprintf(url, sizeof url, "http://%s/explain?task=%s%s%s", addr,
	    esc != NULL ? esc : "", nesc != NULL ? "&namespace=" : "",
	    nesc != NULL ? nesc : "");
	curl_free(esc);
	curl_free(nesc);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, explain_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(c) != CURLE_OK) {
		fprintf(stderr, "agentscaler explain: cannot reach the daemon "
		    "at %s (see --admin-addr)\n", addr);
		rc = 2;
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		o = b.p != NULL ? cJSON_Parse(b.p) : NULL;
		e = cJSON_GetObjectItemCaseSensitive(o, "explanation");
		if (json || !cJSON_IsString(e))
			printf("%s\n", b.p != NULL ? b.p : "");
		else
			printf("%s\n", e->valuestring);
		cJSON_Delete(o);
		rc = code == 200 ? 0 : code == 404 ? 1 : 2;
	}
	free(b.p);
	curl_easy_cleanup(c);
	curl_global_cleanup();
	return (rc);
}

/*
 * --print-vocabulary: the names other files repeat (the chart's CRD enums
 * and RBAC rules, README), from the tables that own them, for the tests
 * that hold those copies to them (tests/integration/test_vocabulary.py).
 */
static void
print_vocabulary(void)
{
	const char *const	*v;
	const char		*prefix, *resource, *group, *slash;
	cJSON			*root, *arr, *o, *sb;
	char			*s;

	root = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(root, "sourceTypes");
	for (v = scaler_type_list(); *v != NULL; v++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(*v));
	arr = cJSON_AddArrayToObject(root, "targetKinds");
	for (v = k8s_kind_list(); *v != NULL; v++) {
		if (k8s_kind_resource(*v, &prefix, &resource) != 0)
			continue;
		/* "/apis/<group>/<version>" or "/api/<version>" (core). */
		group = strncmp(prefix, "/apis/", 6) == 0 ? prefix + 6 : "";
		slash = strchr(group, '/');
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "kind", *v);
		s = xstrndup(group, slash != NULL ? (size_t)(slash - group) :
		    strlen(group));
		cJSON_AddStringToObject(o, "apiGroup", s);
		free(s);
		cJSON_AddStringToObject(o, "resource", resource);
		cJSON_AddItemToArray(arr, o);
	}
	sb = cJSON_AddObjectToObject(root, "sandbox");
	cJSON_AddStringToObject(sb, "apiGroup", K8S_SANDBOX_GROUP);
	cJSON_AddStringToObject(sb, "extensionsApiGroup",
	    K8S_SANDBOX_EXT_GROUP);
	cJSON_AddStringToObject(sb, "version", K8S_SANDBOX_VERSION);
	s = as_json_print_free(root, NULL);
	printf("%s\n", s);
	free(s);
}

/*
 * agentscaler convert [--no-shadow] [FILE|-]: KEDA ScaledObjects (and
 * their TriggerAuthentications) in YAML, AgentPools out (convert.h).  Exit
 * 0 with at least one pool, 1 when none could be made, 2 on bad input.
 */
static int
convert_main(int argc, char **argv)
{
	const char	*path = NULL;
	struct as_buf	 out = { NULL, 0, 0 };
	cJSON		*docs = NULL;
	char		*buf = NULL, err[512];
	size_t		 len;
	int		 i, shadow = 1, n, rc = 2;

	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--no-shadow") == 0)
			shadow = 0;
		else if (path == NULL && (argv[i][0] != '-' ||
		    strcmp(argv[i], "-") == 0))
			path = argv[i];
		else {
			fprintf(stderr, "usage: agentscaler convert "
			    "[--no-shadow] [FILE|-]\n");
			return (2);
		}
	}
	if (path == NULL || strcmp(path, "-") == 0)
		path = "/dev/stdin";
	if ((buf = as_read_file(path, 4 * 1024 * 1024, &len, err,
	    sizeof err)) == NULL) {
		fprintf(stderr, "agentscaler convert: %s\n", err);
		return (2);
	}
	if (as_yaml_parse(buf, len, &docs, NULL, err, sizeof err) != 0 ||
	    (n = convert_keda(docs, shadow, &out, err, sizeof err)) < 0) {
		fprintf(stderr, "agentscaler convert: %s: %s\n", path, err);
		goto out;
	}
	if (out.p != NULL)
		fputs(out.p, stdout);
	rc = n > 0 ? 0 : 1;
out:
	free(out.p);
	free(buf);
	cJSON_Delete(docs);
	return (rc);
}

/* What --check-config says of one object. */
struct check_tally {
	size_t	 pools, quotas, skipped, bad;
};

static void
check_report(void *arg, const char *who, const char *err, int skipped)
{
	struct check_tally *t = arg;

	if (skipped) {
		t->skipped++;
		printf("%s: not an AgentPool or AgentQuota, not checked\n", who);
	} else if (err != NULL) {
		t->bad++;
		fprintf(stderr, "%s\n", err);
	} else {
		if (strncmp(who, "AgentQuota", 10) == 0 ||
		    strncmp(who, "quotas[", 7) == 0)
			t->quotas++;
		else
			t->pools++;
		printf("%s: ok\n", who);
	}
}

/*
 * --check-config --config FILE: JSON or YAML (one or more documents, as
 * kubectl apply reads them); every object judged on its own, each error
 * on stderr with its kind/namespace/name.  Exit 0 when all are valid,
 * 2 otherwise.
 */
static int
check_config(const char *path, const char *secrets_dir)
{
	struct check_tally t;
	char		*buf, err[512];
	size_t		 len;
	int		 n;

	memset(&t, 0, sizeof t);
	if ((buf = as_read_file(path, 4 * 1024 * 1024, &len, err,
	    sizeof err)) == NULL) {
		fprintf(stderr, "agentscaler: %s\n", err);
		return (DAEMON_EXIT_CONFIG);
	}
	n = config_check(buf, len, secrets_dir, check_report, &t, err,
	    sizeof err);
	free(buf);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", path, err);
		return (DAEMON_EXIT_CONFIG);
	}
	if (n > 0) {
		fprintf(stderr, "%s: %d of %zu objects invalid\n", path, n,
		    t.pools + t.quotas + t.bad);
		return (DAEMON_EXIT_CONFIG);
	}
	printf("%s: %zu pools, %zu quotas: ok\n", path, t.pools, t.quotas);
	return (DAEMON_EXIT_OK);
}

/*
 * The daemon's memory holds broker passwords and tokens: no core dump may
 * carry them, and other processes of the same user may not read or trace
 * it (/proc/PID/mem) once it is not dumpable.
 */
static void
no_core_dumps(void)
{
	struct rlimit	 rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		log_warn("daemon", "cannot disable core dumps: %s",
		    strerror(errno));
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		log_warn("daemon", "cannot make the process not dumpable: %s",
		    strerror(errno));
}

int
main(int argc, char **argv)
{
	struct options		 o;
	struct daemon_options	 opts;
	enum log_format		 fmt;
	enum log_level		 lvl;
	char			 err[512];
	int			 rc = DAEMON_EXIT_CONFIG;

	if (argc >= 2 && strcmp(argv[1], "explain") == 0)
		return (explain_main(argc, argv));
	if (argc >= 2 && strcmp(argv[1], "convert") == 0)
		return (convert_main(argc, argv));
	if (argc >= 2 && strcmp(argv[1], "simulate") == 0)
		return (simulate_main(argc, argv));
	if (options_parse(&o, argc, argv) != 0)
		goto out;
	if (o.val[O_HELP] != NULL) {
		options_usage(stdout);
		rc = DAEMON_EXIT_OK;
		goto out;
	}
	if (o.val[O_VERSION] != NULL) {
		printf("agentscaler %s\n", as_version);
		rc = DAEMON_EXIT_OK;
		goto out;
	}
	if (o.val[O_HELP_CONFIG] != NULL) {
		config_print_reference();
		rc = DAEMON_EXIT_OK;
		goto out;
	}
	if (o.val[O_HELP_CONFIG_JSON] != NULL) {
		config_print_reference_json();
		rc = DAEMON_EXIT_OK;
		goto out;
	}
	if (o.val[O_PRINT_VOCABULARY] != NULL) {
		print_vocabulary();
		rc = DAEMON_EXIT_OK;
		goto out;
	}
	if (o.val[O_PRINT_METRICS] != NULL) {
		daemon_http_print_metrics(stdout);
		rc = DAEMON_EXIT_OK;
		goto out;
	}
	if (options_numbers(&o) != 0)
		goto out;
	if (log_parse_format(o.val[O_LOG_FORMAT], &fmt) != 0) {
		fprintf(stderr, "agentscaler: --log-format: expected json or "
		    "text, got \"%s\"\n", o.val[O_LOG_FORMAT]);
		goto out;
	}
	if (log_parse_level(o.val[O_LOG_LEVEL], &lvl) != 0) {
		fprintf(stderr, "agentscaler: --log-level: expected debug, "
		    "info, warn or error, got \"%s\"\n", o.val[O_LOG_LEVEL]);
		goto out;
	}
	log_set_format(fmt);
	log_set_level(lvl);
	if (o.val[O_CHECK_CONFIG] != NULL && o.val[O_CONFIG] == NULL) {
		fprintf(stderr, "agentscaler: --check-config needs --config "
		    "FILE (see --help and --help-config)\n");
		goto out;
	}
	if (o.val[O_CHECK_CONFIG] != NULL) {
		rc = check_config(o.val[O_CONFIG], o.val[O_SECRETS_DIR]);
		goto out;
	}
	if (options_daemon(&o, &opts, err, sizeof err) != 0) {
		fprintf(stderr, "agentscaler: %s\n", err);
		goto out;
	}
	if (opts.leader_elect && leader_options_check(&opts.leader, err,
	    sizeof err) != 0) {
		fprintf(stderr, "agentscaler: leader election (--lease-*, "
		    "--renew-deadline, --retry-period, --instance): %s\n", err);
		goto out;
	}

	/*
	 * hiredis and rabbitmq-c write to sockets with write(2): a peer that
	 * went away must give EPIPE, not kill the daemon.
	 */
	signal(SIGPIPE, SIG_IGN);
	no_core_dumps();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("daemon", "libcurl initialisation failed");
		rc = DAEMON_EXIT_FAIL;
		goto out;
	}
	rc = daemon_run(&opts);
	curl_global_cleanup();
out:
	options_free(&o);
	return (rc);
}
