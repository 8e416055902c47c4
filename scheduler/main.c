/*
 * main.c: command-line flags, declared once in options_table (STYLE.md
 * habit 7): getopt_long's table and --help are generated from it.  Flags may
 * also come from AGENTSCALER_<FLAG> environment variables (the chart uses
 * them); a flag on the command line wins.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "agentscaler/rt/common.h"
#include "config.h"
#include "daemon.h"
#include "agentscaler/k8s/leader.h"
#include "agentscaler/rt/log.h"

enum opt_kind { OPT_STRING, OPT_NUMBER, OPT_INT, OPT_FLAG };

struct option_row {
	const char	*name;
	enum opt_kind	 kind;
	const char	*def;
	double		 min, max;
	const char	*help;
};

enum {
	O_CONFIG, O_SECRETS_DIR, O_METRICS_ADDR, O_ADMIN_ADDR, O_LOG_FORMAT,
	O_LOG_LEVEL,
	O_KUBECONFIG, O_CONTEXT,
	O_APISERVER, O_TOKEN_FILE, O_CA_FILE, O_INSECURE, O_KUBE_QPS,
	O_KUBE_BURST, O_KUBE_TIMEOUT, O_KUBE_RETRIES, O_RESYNC, O_INSTANCE,
	O_LEADER_ELECT, O_LEASE_NAME, O_LEASE_NAMESPACE, O_LEASE_DURATION,
	O_RENEW_DEADLINE, O_RETRY_PERIOD, O_CHECK_CONFIG, O_WATCH_NAMESPACE,
	O_SHARED_SECRETS, O_SECRET_NAMESPACES,
	O_HELP_CONFIG, O_HELP_CONFIG_JSON, O_HELP, O_VERSION, O_COUNT
};

static const struct option_row options_table[O_COUNT] = {
	[O_CONFIG] = { "config", OPT_STRING, NULL, 0, 0,
	    "AgentPool/AgentQuota JSON file: {\"pools\": [...], "
	    "\"quotas\": [...]}; without it, the AgentPool and AgentQuota "
	    "objects of the cluster (CRD mode)" },
	[O_SECRETS_DIR] = { "secrets-dir", OPT_STRING,
	    "/etc/agentscaler/secrets", 0, 0,
	    "--config: where authSecretRef {name, key} is mounted as "
	    "<dir>/<name>/<key> (CRD mode reads Secrets through the API)" },
	[O_METRICS_ADDR] = { "metrics-addr", OPT_STRING, "127.0.0.1:9090", 0, 0,
	    "listen address of /metrics /healthz /readyz (Prometheus and "
	    "the kubelet's probes)" },
	[O_ADMIN_ADDR] = { "admin-addr", OPT_STRING, "127.0.0.1:9091", 0, 0,
	    "listen address of /status and /explain, which show task ids, "
	    "namespaces and trees: keep it on loopback (kubectl exec, "
	    "port-forward); \"off\" or empty: not served" },
	[O_LOG_FORMAT] = { "log-format", OPT_STRING, "json", 0, 0,
	    "json | text" },
	[O_LOG_LEVEL] = { "log-level", OPT_STRING, "info", 0, 0,
	    "debug | info | warn | error" },
	[O_KUBECONFIG] = { "kubeconfig", OPT_STRING, NULL, 0, 0,
	    "kubeconfig file; without it and without --apiserver: "
	    "KUBECONFIG, in-cluster, then ~/.kube/config" },
	[O_CONTEXT] = { "context", OPT_STRING, NULL, 0, 0,
	    "kubeconfig context to use (default: its current-context)" },
	[O_APISERVER] = { "apiserver", OPT_STRING, NULL, 0, 0,
	    "API server URL; overrides the kubeconfig's server (alone: no "
	    "kubeconfig is read)" },
	[O_TOKEN_FILE] = { "token-file", OPT_STRING, NULL, 0, 0,
	    "bearer token file, re-read every minute and on 401; overrides "
	    "the kubeconfig user's token and exec plugin" },
	[O_CA_FILE] = { "ca-file", OPT_STRING, NULL, 0, 0,
	    "CA bundle for the API server's certificate; overrides the "
	    "kubeconfig's" },
	[O_INSECURE] = { "insecure-skip-tls-verify", OPT_FLAG, NULL, 0, 0,
	    "do not verify the API server's certificate (testing only)" },
	[O_KUBE_QPS] = { "kube-qps", OPT_NUMBER, "20", 0.1, 10000,
	    "sustained Kubernetes requests per second" },
	[O_KUBE_BURST] = { "kube-burst", OPT_INT, "30", 1, 100000,
	    "Kubernetes requests allowed at once" },
	[O_KUBE_TIMEOUT] = { "kube-timeout", OPT_NUMBER, "10", 0.1, 600,
	    "seconds per Kubernetes request attempt" },
	[O_KUBE_RETRIES] = { "kube-retries", OPT_INT, "5", 0, 100,
	    "retries of a failed Kubernetes request (5xx, 429, timeouts)" },
	[O_RESYNC] = { "resync-seconds", OPT_NUMBER, "30", 1, 86400,
	    "re-read each target's replicas at least this often" },
	[O_INSTANCE] = { "instance", OPT_STRING, NULL, 0, 0,
	    "stable name of this agentscaler: its Redis processing lists and "
	    "stream consumer, recovered after a restart (default: the host "
	    "name, i.e. the pod name); with --leader-elect, the Lease's "
	    "holder identity" },
	[O_LEADER_ELECT] = { "leader-elect", OPT_FLAG, NULL, 0, 0,
	    "elect a leader on a coordination.k8s.io/v1 Lease: only the "
	    "holder writes to Kubernetes and consumes tasks, the others wait "
	    "warm and take over when it expires (the Helm chart sets it)" },
	[O_LEASE_NAME] = { "lease-name", OPT_STRING, "agentscaler", 0, 0,
	    "name of the Lease" },
	[O_LEASE_NAMESPACE] = { "lease-namespace", OPT_STRING, NULL, 0, 0,
	    "namespace of the Lease (default: $POD_NAMESPACE, else the "
	    "service account's namespace, else default)" },
	[O_LEASE_DURATION] = { "lease-duration", OPT_INT, "15", 1, 86400,
	    "seconds a standby waits, from the last change it saw, before it "
	    "takes the Lease" },
	[O_RENEW_DEADLINE] = { "renew-deadline", OPT_NUMBER, "10", 0.001,
	    86400, "seconds the leader leads on without a successful "
	    "renewal; below --lease-duration" },
	[O_RETRY_PERIOD] = { "retry-period", OPT_NUMBER, "2", 0.001, 86400,
	    "seconds between attempts to renew or take the Lease; "
	    "--renew-deadline must exceed 1.2 times it" },
	[O_CHECK_CONFIG] = { "check-config", OPT_FLAG, NULL, 0, 0,
	    "validate --config and exit (0 good, 2 bad)" },
	[O_WATCH_NAMESPACE] = { "watch-namespace", OPT_STRING, NULL, 0, 0,
	    "CRD mode: watch AgentPools and AgentQuotas of this namespace "
	    "only (default: all namespaces)" },
	[O_SHARED_SECRETS] = { "shared-secrets", OPT_STRING, NULL, 0, 0,
	    "CRD mode: comma-separated NAMESPACE/NAME of Secrets that pools "
	    "of every namespace may name (authSecretRef.namespace); only an "
	    "administrator sets this" },
	[O_SECRET_NAMESPACES] = { "secret-namespaces", OPT_STRING, NULL, 0, 0,
	    "CRD mode: comma-separated namespaces whose pools may read "
	    "Secrets of their own namespace (default: all; the chart's RBAC "
	    "must match)" },
	[O_HELP_CONFIG] = { "help-config", OPT_FLAG, NULL, 0, 0,
	    "print the config file reference and exit" },
	[O_HELP_CONFIG_JSON] = { "help-config-json", OPT_FLAG, NULL, 0, 0,
	    "print the config field table as JSON and exit" },
	[O_HELP] = { "help", OPT_FLAG, NULL, 0, 0, "print this help and exit" },
	[O_VERSION] = { "version", OPT_FLAG, NULL, 0, 0,
	    "print the version and exit" },
};

static void
usage(FILE *fp)
{
	size_t	 i;
	char	 flag[64];

	fprintf(fp, "usage: agentscaler [--config FILE] [flags]\n"
	    "       agentscaler explain TASK-ID [--admin-addr HOST:PORT] "
	    "[--json]\n\n"
	    "Queue-driven autoscaler for AI-agent workloads on Kubernetes.\n"
	    "Every flag may also be set as AGENTSCALER_<FLAG> (upper case, "
	    "'-' as '_').\n\nflags:\n");
	for (i = 0; i < O_COUNT; i++) {
		const struct option_row *o = &options_table[i];

		snprintf(flag, sizeof flag, "--%s%s", o->name,
		    o->kind == OPT_FLAG ? "" : o->kind == OPT_STRING ?
		    " S" : " N");
		fprintf(fp, "  %-32s %s", flag, o->help);
		if (o->def != NULL)
			fprintf(fp, " (default %s)", o->def);
		fprintf(fp, "\n");
	}
}

static int
opt_number(const struct option_row *o, const char *s, double *out)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < o->min ||
	    v > o->max || (o->kind == OPT_INT && v != (double)(long)v)) {
		fprintf(stderr, "agentscaler: --%s: expected %s in [%g, %g], "
		    "got \"%s\"\n", o->name, o->kind == OPT_INT ?
		    "an integer" : "a number", o->min, o->max, s);
		return (-AS_EINVAL);
	}
	*out = v;
	return (0);
}

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
	    "[--admin-addr HOST:PORT] [--json]\n");
	return (2);
}

/* The daemon serves /explain on --admin-addr or nowhere. */
static int
addr_off(const char *addr)
{
	return (*addr == '\0' || strcmp(addr, "off") == 0);
}

/*
 * agentscaler explain TASK-ID [--admin-addr HOST:PORT] [--json]: asks a
 * running daemon, on its admin address (AGENTSCALER_ADMIN_ADDR as the
 * daemon reads it, else the default), why a task waits or was rejected.
 * Exit 0 when the task is known, 1 when not, 2 when the daemon cannot be
 * asked.
 */
static int
explain_main(int argc, char **argv)
{
	const char	*addr = getenv("AGENTSCALER_ADMIN_ADDR");
	const char	*id = NULL;
	struct as_buf	 b = { NULL, 0, 0 };
	CURL		*c;
	char		*esc, url[1024];
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
		} else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (id == NULL && argv[i][0] != '-')
			id = argv[i];
		else
			return (explain_usage());
	}
	if (id == NULL)
		return (explain_usage());
	if (addr == NULL)
		addr = options_table[O_ADMIN_ADDR].def;
	if (addr_off(addr)) {
		fprintf(stderr, "agentscaler explain: the admin address is "
		    "off; give the daemon's --admin-addr\n");
		return (2);
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (c = curl_easy_init()) == NULL)
		return (2);
	esc = curl_easy_escape(c, id, 0);
	snprintf(url, sizeof url, "http://%s/explain?task=%s", addr,
	    esc != NULL ? esc : "");
	curl_free(esc);
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
 * Splits a comma-separated list into a new array of new strings (empty
 * items skipped); *n is its length.  NULL for NULL.
 */
static char **
opt_list(const char *s, size_t *n)
{
	char		**v;
	const char	*p, *e;

	*n = 0;
	if (s == NULL)
		return (NULL);
	v = xcalloc(strlen(s) / 2 + 2, sizeof *v);
	for (p = s; *p != '\0'; p = *e == ',' ? e + 1 : e) {
		if ((e = strchr(p, ',')) == NULL)
			e = p + strlen(p);
		if (e > p)
			v[(*n)++] = xstrndup(p, (size_t)(e - p));
	}
	return (v);
}

static void
opt_list_free(char **v, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
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
	struct option		 longopts[O_COUNT + 1];
	const char		*val[O_COUNT];
	struct daemon_options	 opts;
	enum log_format		 fmt;
	enum log_level		 lvl;
	double			 num[O_COUNT];
	char			**shared = NULL, **secret_ns = NULL;
	size_t			 nshared = 0, nsecret_ns = 0;
	char			 env[96], err[512], lease_ns[256];
	size_t			 i, j;
	int			 ch, idx, rc;

	if (argc >= 2 && strcmp(argv[1], "explain") == 0)
		return (explain_main(argc, argv));
	memset(longopts, 0, sizeof longopts);
	for (i = 0; i < O_COUNT; i++) {
		const struct option_row *o = &options_table[i];

		longopts[i].name = o->name;
		longopts[i].has_arg = o->kind == OPT_FLAG ? no_argument :
		    required_argument;
		longopts[i].val = 0x100 + (int)i;
		/* Defaults, then the environment. */
		val[i] = o->def;
		snprintf(env, sizeof env, "AGENTSCALER_%s", o->name);
		for (j = 12; env[j] != '\0'; j++)
			env[j] = env[j] == '-' ? '_' :
			    (char)(env[j] >= 'a' && env[j] <= 'z' ?
			    env[j] - 32 : env[j]);
		if (getenv(env) != NULL && *getenv(env) != '\0')
			val[i] = o->kind == OPT_FLAG ?
			    (strcmp(getenv(env), "false") == 0 ||
			    strcmp(getenv(env), "0") == 0 ? NULL : "1") :
			    getenv(env);
	}
	while ((ch = getopt_long(argc, argv, "hV", longopts, &idx)) != -1) {
		if (ch == 'h')
			ch = 0x100 + O_HELP;
		if (ch == 'V')
			ch = 0x100 + O_VERSION;
		if (ch < 0x100 || ch >= 0x100 + O_COUNT) {
			usage(stderr);
			return (DAEMON_EXIT_CONFIG);
		}
		val[ch - 0x100] = options_table[ch - 0x100].kind == OPT_FLAG ?
		    "1" : optarg;
	}
	if (optind < argc) {
		fprintf(stderr, "agentscaler: unexpected argument \"%s\"\n",
		    argv[optind]);
		return (DAEMON_EXIT_CONFIG);
	}
	if (val[O_HELP] != NULL) {
		usage(stdout);
		return (DAEMON_EXIT_OK);
	}
	if (val[O_VERSION] != NULL) {
		printf("agentscaler %s\n", as_version);
		return (DAEMON_EXIT_OK);
	}
	if (val[O_HELP_CONFIG] != NULL) {
		config_print_reference();
		return (DAEMON_EXIT_OK);
	}
	if (val[O_HELP_CONFIG_JSON] != NULL) {
		config_print_reference_json();
		return (DAEMON_EXIT_OK);
	}
	for (i = 0; i < O_COUNT; i++) {
		num[i] = 0;
		if ((options_table[i].kind == OPT_NUMBER ||
		    options_table[i].kind == OPT_INT) && val[i] != NULL &&
		    opt_number(&options_table[i], val[i], &num[i]) != 0)
			return (DAEMON_EXIT_CONFIG);
	}
	if (log_parse_format(val[O_LOG_FORMAT], &fmt) != 0) {
		fprintf(stderr, "agentscaler: --log-format: expected json or "
		    "text, got \"%s\"\n", val[O_LOG_FORMAT]);
		return (DAEMON_EXIT_CONFIG);
	}
	if (log_parse_level(val[O_LOG_LEVEL], &lvl) != 0) {
		fprintf(stderr, "agentscaler: --log-level: expected debug, "
		    "info, warn or error, got \"%s\"\n", val[O_LOG_LEVEL]);
		return (DAEMON_EXIT_CONFIG);
	}
	log_set_format(fmt);
	log_set_level(lvl);
	if (val[O_CHECK_CONFIG] != NULL && val[O_CONFIG] == NULL) {
		fprintf(stderr, "agentscaler: --check-config needs --config "
		    "FILE (see --help and --help-config)\n");
		return (DAEMON_EXIT_CONFIG);
	}
	if (val[O_CHECK_CONFIG] != NULL) {
		struct config *c;

		if (config_load(val[O_CONFIG], val[O_SECRETS_DIR], &c, err,
		    sizeof err) != 0) {
			log_error("config", "%s", err);
			return (DAEMON_EXIT_CONFIG);
		}
		printf("%s: %zu pools, %zu quotas: ok\n", val[O_CONFIG],
		    c->npools, c->nquotas);
		config_free(c);
		return (DAEMON_EXIT_OK);
	}

	memset(&opts, 0, sizeof opts);
	opts.config_path = val[O_CONFIG];
	opts.watch_namespace = val[O_WATCH_NAMESPACE];
	opts.secrets_dir = val[O_SECRETS_DIR];
	shared = opt_list(val[O_SHARED_SECRETS], &nshared);
	secret_ns = opt_list(val[O_SECRET_NAMESPACES], &nsecret_ns);
	for (i = 0; i < nshared; i++) {
		const char *sl = strchr(shared[i], '/');

		if (sl == NULL || strchr(sl + 1, '/') != NULL ||
		    sl == shared[i] || !config_dns_subdomain(sl + 1, 253)) {
			fprintf(stderr, "agentscaler: --shared-secrets: "
			    "expected NAMESPACE/NAME, got \"%s\"\n",
			    shared[i]);
			opt_list_free(shared, nshared);
			opt_list_free(secret_ns, nsecret_ns);
			return (DAEMON_EXIT_CONFIG);
		}
	}
	opts.tenancy.shared = (const char *const *)shared;
	opts.tenancy.nshared = nshared;
	opts.tenancy.secret_namespaces = (const char *const *)secret_ns;
	opts.tenancy.nsecret_namespaces = nsecret_ns;
	opts.metrics_addr = val[O_METRICS_ADDR];
	opts.admin_addr = val[O_ADMIN_ADDR] != NULL &&
	    !addr_off(val[O_ADMIN_ADDR]) ? val[O_ADMIN_ADDR] : NULL;
	opts.resync_seconds = num[O_RESYNC];
	if (val[O_INSTANCE] != NULL)
		as_strlcpy(opts.instance, val[O_INSTANCE], sizeof opts.instance);
	else if (gethostname(opts.instance, sizeof opts.instance) != 0 ||
	    opts.instance[0] == '\0')
		as_strlcpy(opts.instance, "agentscaler", sizeof opts.instance);
	opts.instance[sizeof opts.instance - 1] = '\0';
	opts.k8s.kubeconfig = val[O_KUBECONFIG];
	opts.k8s.context = val[O_CONTEXT];
	opts.k8s.apiserver = val[O_APISERVER];
	opts.k8s.token_file = val[O_TOKEN_FILE];
	opts.k8s.ca_file = val[O_CA_FILE];
	opts.k8s.insecure_skip_tls_verify = val[O_INSECURE] != NULL;
	opts.k8s.qps = num[O_KUBE_QPS];
	opts.k8s.burst = (int)num[O_KUBE_BURST];
	opts.k8s.timeout = num[O_KUBE_TIMEOUT];
	opts.k8s.max_retries = (int)num[O_KUBE_RETRIES];
	opts.leader_elect = val[O_LEADER_ELECT] != NULL;
	opts.leader.name = val[O_LEASE_NAME];
	if (val[O_LEASE_NAMESPACE] != NULL)
		opts.leader.ns = val[O_LEASE_NAMESPACE];
	else {
		leader_default_namespace(NULL, lease_ns, sizeof lease_ns);
		opts.leader.ns = lease_ns;
	}
	opts.leader.identity = opts.instance;
	opts.leader.lease_duration = num[O_LEASE_DURATION];
	opts.leader.renew_deadline = num[O_RENEW_DEADLINE];
	opts.leader.retry_period = num[O_RETRY_PERIOD];
	if (opts.leader_elect && leader_options_check(&opts.leader, err,
	    sizeof err) != 0) {
		fprintf(stderr, "agentscaler: leader election (--lease-*, "
		    "--renew-deadline, --retry-period, --instance): %s\n", err);
		opt_list_free(shared, nshared);
		opt_list_free(secret_ns, nsecret_ns);
		return (DAEMON_EXIT_CONFIG);
	}

	/*
	 * hiredis and rabbitmq-c write to sockets with write(2): a peer that
	 * went away must give EPIPE, not kill the daemon.
	 */
	signal(SIGPIPE, SIG_IGN);
	no_core_dumps();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("daemon", "libcurl initialisation failed");
		opt_list_free(shared, nshared);
		opt_list_free(secret_ns, nsecret_ns);
		return (DAEMON_EXIT_FAIL);
	}
	rc = daemon_run(&opts);
	curl_global_cleanup();
	opt_list_free(shared, nshared);
	opt_list_free(secret_ns, nsecret_ns);
	return (rc);
}
