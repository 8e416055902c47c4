/*
 * options.c: the daemon's flags, declared once in options_table (STYLE.md
 * habit 7): getopt_long's table, the defaults, the environment variables,
 * --help and the copy into struct daemon_options are generated from it.
 * Flags may also come from AGENTSCALER_<FLAG> environment variables (the
 * chart uses them); a flag on the command line wins.
 */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/k8s/leader.h"
#include "config.h"
#include "daemon.h"
#include "options.h"
#include "podcidr.h"

enum opt_kind { OPT_STRING, OPT_NUMBER, OPT_INT, OPT_FLAG };

/* The type of a flag's field in struct daemon_options. */
enum opt_field { F_NONE, F_STRING, F_DOUBLE, F_INT };

struct option_row {
	const char	*name;
	enum opt_kind	 kind;
	const char	*def;
	double		 min, max;
	const char	*help;
	enum opt_field	 field;	/* F_NONE: main.c reads it */
	size_t		 off;	/* offsetof the field */
};

/*
 * The field's type comes from the member itself (_Generic does not
 * evaluate its operand), so a row cannot name a field of another type.
 */
#define FIELD(m)							\
	_Generic(((struct daemon_options *)NULL)->m,			\
	    const char *: F_STRING, double: F_DOUBLE, int: F_INT),	\
	offsetof(struct daemon_options, m)
#define NOFIELD	F_NONE, 0

static const struct option_row options_table[O_COUNT] = {
	[O_CONFIG] = { "config", OPT_STRING, NULL, 0, 0,
	    "AgentPool/AgentQuota JSON file: {\"pools\": [...], "
	    "\"quotas\": [...]}; without it, the AgentPool and AgentQuota "
	    "objects of the cluster (CRD mode)",
	    FIELD(config_path) },
	[O_SECRETS_DIR] = { "secrets-dir", OPT_STRING,
	    "/etc/agentscaler/secrets", 0, 0,
	    "--config: where authSecretRef {name, key} is mounted as "
	    "<dir>/<name>/<key> (CRD mode reads Secrets through the API)",
	    FIELD(secrets_dir) },
	[O_HANDOFF_KEY_FILE] = { "handoff-key-file", OPT_STRING, NULL, 0, 0,
	    "dispatch, handoff http: the key the tasks' tokens are derived "
	    "from (docs/protocol.md section 2), a file every replica mounts "
	    "(a Secret); without it a random key per process, and a "
	    "restarted agentscaler cannot follow the tasks it handed off",
	    FIELD(handoff_key_file) },
	[O_METRICS_ADDR] = { "metrics-addr", OPT_STRING, "127.0.0.1:9090", 0, 0,
	    "listen address of /metrics /healthz /readyz (Prometheus and "
	    "the kubelet's probes)",
	    FIELD(metrics_addr) },
	[O_ADMIN_ADDR] = { "admin-addr", OPT_STRING, "127.0.0.1:9091", 0, 0,
	    "listen address of /status and /explain, which show task ids, "
	    "namespaces and trees: keep it on loopback (kubectl exec, "
	    "port-forward); \"off\" or empty: not served",
	    FIELD(admin_addr) },
	[O_LOG_FORMAT] = { "log-format", OPT_STRING, "json", 0, 0,
	    "json | text",
	    NOFIELD },
	[O_LOG_LEVEL] = { "log-level", OPT_STRING, "info", 0, 0,
	    "debug | info | warn | error",
	    NOFIELD },
	[O_KUBECONFIG] = { "kubeconfig", OPT_STRING, NULL, 0, 0,
	    "kubeconfig file; without it and without --apiserver: "
	    "KUBECONFIG, in-cluster, then ~/.kube/config",
	    FIELD(k8s.kubeconfig) },
	[O_CONTEXT] = { "context", OPT_STRING, NULL, 0, 0,
	    "kubeconfig context to use (default: its current-context)",
	    FIELD(k8s.context) },
	[O_APISERVER] = { "apiserver", OPT_STRING, NULL, 0, 0,
	    "API server URL; overrides the kubeconfig's server (alone: no "
	    "kubeconfig is read)",
	    FIELD(k8s.apiserver) },
	[O_TOKEN_FILE] = { "token-file", OPT_STRING, NULL, 0, 0,
	    "bearer token file, re-read every minute and on 401; overrides "
	    "the kubeconfig user's token and exec plugin",
	    FIELD(k8s.token_file) },
	[O_CA_FILE] = { "ca-file", OPT_STRING, NULL, 0, 0,
	    "CA bundle for the API server's certificate; overrides the "
	    "kubeconfig's",
	    FIELD(k8s.ca_file) },
	[O_INSECURE] = { "insecure-skip-tls-verify", OPT_FLAG, NULL, 0, 0,
	    "do not verify the API server's certificate (testing only)",
	    FIELD(k8s.insecure_skip_tls_verify) },
	[O_KUBE_QPS] = { "kube-qps", OPT_NUMBER, "20", 0.1, 10000,
	    "sustained Kubernetes requests per second",
	    FIELD(k8s.qps) },
	[O_KUBE_BURST] = { "kube-burst", OPT_INT, "30", 1, 100000,
	    "Kubernetes requests allowed at once",
	    FIELD(k8s.burst) },
	[O_KUBE_TIMEOUT] = { "kube-timeout", OPT_NUMBER, "10", 0.1, 600,
	    "seconds per Kubernetes request attempt",
	    FIELD(k8s.timeout) },
	[O_KUBE_RETRIES] = { "kube-retries", OPT_INT, "5", 0, 100,
	    "retries of a failed Kubernetes request (5xx, 429, timeouts)",
	    FIELD(k8s.max_retries) },
	[O_RESYNC] = { "resync-seconds", OPT_NUMBER, "0", 0, 86400,
	    "deprecated and ignored (a warning if set): the targets' "
	    "replicas come from list + watch, never re-read",
	    FIELD(resync_seconds) },
	[O_INSTANCE] = { "instance", OPT_STRING, NULL, 0, 0,
	    "stable name of this agentscaler: its Redis processing lists and "
	    "stream consumer, recovered after a restart (default: the host "
	    "name, i.e. the pod name); with --leader-elect, the Lease's "
	    "holder identity",
	    NOFIELD },
	[O_LEADER_ELECT] = { "leader-elect", OPT_FLAG, NULL, 0, 0,
	    "elect a leader on a coordination.k8s.io/v1 Lease: only the "
	    "holder writes to Kubernetes and consumes tasks, the others wait "
	    "warm and take over when it expires (the Helm chart sets it)",
	    FIELD(leader_elect) },
	[O_LEASE_NAME] = { "lease-name", OPT_STRING, "agentscaler", 0, 0,
	    "name of the Lease",
	    FIELD(leader.name) },
	[O_LEASE_NAMESPACE] = { "lease-namespace", OPT_STRING, NULL, 0, 0,
	    "namespace of the Lease (default: $POD_NAMESPACE, else the "
	    "service account's namespace, else default)",
	    FIELD(leader.ns) },
	[O_LEASE_DURATION] = { "lease-duration", OPT_INT, "15", 1, 86400,
	    "seconds a standby waits, from the last change it saw, before it "
	    "takes the Lease",
	    FIELD(leader.lease_duration) },
	[O_RENEW_DEADLINE] = { "renew-deadline", OPT_NUMBER, "10", 0.001,
	    86400, "seconds the leader leads on without a successful "
	    "renewal; below --lease-duration",
	    FIELD(leader.renew_deadline) },
	[O_RETRY_PERIOD] = { "retry-period", OPT_NUMBER, "2", 0.001, 86400,
	    "seconds between attempts to renew or take the Lease; "
	    "--renew-deadline must exceed 1.2 times it",
	    FIELD(leader.retry_period) },
	[O_CHECK_CONFIG] = { "check-config", OPT_FLAG, NULL, 0, 0,
	    "validate --config and exit (0 good, 2 bad)",
	    NOFIELD },
	[O_WATCH_NAMESPACE] = { "watch-namespace", OPT_STRING, NULL, 0, 0,
	    "CRD mode: watch AgentPools and AgentQuotas of this namespace "
	    "only (default: all namespaces)",
	    FIELD(watch_namespace) },
	[O_SHARED_SECRETS] = { "shared-secrets", OPT_STRING, NULL, 0, 0,
	    "CRD mode: comma-separated NAMESPACE/NAME of Secrets that pools "
	    "of every namespace may name (authSecretRef.namespace); only an "
	    "administrator sets this",
	    NOFIELD },
	[O_SECRET_NAMESPACES] = { "secret-namespaces", OPT_STRING, NULL, 0, 0,
	    "CRD mode: comma-separated namespaces whose pools may read "
	    "Secrets of their own namespace (default: all; the chart's RBAC "
	    "must match)",
	    NOFIELD },
	[O_HANDOFF_ROUTERS] = { "handoff-routers", OPT_STRING,
	    HANDOFF_ROUTER_DEFAULT, 0, 0,
	    "CRD mode: comma-separated base URLs of the sandbox-routers an "
	    "AgentPool's spec.handoff.router may name (any other is refused; "
	    "a pool naming none takes the first; empty: none); only an "
	    "administrator sets this",
	    NOFIELD },
	[O_POD_CIDRS] = { "pod-cidrs", OPT_STRING, NULL, 0, 0,
	    "comma-separated CIDRs of the cluster's pod IPs: a sandbox's pod "
	    "IP (from its claim's status) outside them is never connected to "
	    "nor sent to the router; CRD mode refuses handoff via podIP "
	    "without it",
	    NOFIELD },
	[O_SHADOW] = { "shadow", OPT_FLAG, NULL, 0, 0,
	    "shadow mode for every pool (as spec.shadow: true): decisions "
	    "are computed, logged, exported and written to status, nothing "
	    "is written to targets or claims and nothing is consumed",
	    FIELD(shadow) },
	[O_HELP_CONFIG] = { "help-config", OPT_FLAG, NULL, 0, 0,
	    "print the config file reference and exit",
	    NOFIELD },
	[O_HELP_CONFIG_JSON] = { "help-config-json", OPT_FLAG, NULL, 0, 0,
	    "print the config field table as JSON and exit",
	    NOFIELD },
	[O_PRINT_VOCABULARY] = { "print-vocabulary", OPT_FLAG, NULL, 0, 0,
	    "print the source types, workload kinds and API groups (from "
	    "their registries) as JSON and exit",
	    NOFIELD },
	[O_PRINT_METRICS] = { "print-metrics", OPT_FLAG, NULL, 0, 0,
	    "print every metric family and label as the README's Markdown "
	    "tables and exit",
	    NOFIELD },
	[O_HELP] = { "help", OPT_FLAG, NULL, 0, 0, "print this help and exit",
	    NOFIELD },
	[O_VERSION] = { "version", OPT_FLAG, NULL, 0, 0,
	    "print the version and exit",
	    NOFIELD },
};

void
options_usage(FILE *fp)
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

/* --pod-cidrs into o->pod_cidrs. */
static int
options_pod_cidrs(struct options *o, char *err, size_t errlen)
{
	char	**v;
	size_t	 n, i;
	int	 rc = 0;

	free(o->pod_cidrs);
	o->pod_cidrs = NULL;
	o->npod_cidrs = 0;
	v = opt_list(o->val[O_POD_CIDRS], &n);
	if (n > 0)
		o->pod_cidrs = xcalloc(n, sizeof *o->pod_cidrs);
	for (i = 0; i < n && rc == 0; i++)
		if ((rc = pod_cidr_parse(v[i], &o->pod_cidrs[i])) != 0)
			snprintf(err, errlen, "--pod-cidrs: expected "
			    "ADDRESS/BITS, got \"%s\"", v[i]);
	if (rc == 0)
		o->npod_cidrs = n;
	opt_list_free(v, n);
	return (rc);
}

const char *
options_default(enum options_id id)
{
	return (id < O_COUNT ? options_table[id].def : NULL);
}

int
options_addr_off(const char *addr)
{
	return (*addr == '\0' || strcmp(addr, "off") == 0);
}

/* AGENTSCALER_<FLAG>: upper case, '-' as '_'. */
static const char *
opt_env(const struct option_row *o)
{
	char		 env[96];
	const char	*v;
	size_t		 j;

	snprintf(env, sizeof env, "AGENTSCALER_%s", o->name);
	for (j = 12; env[j] != '\0'; j++)
		env[j] = env[j] == '-' ? '_' : (char)(env[j] >= 'a' &&
		    env[j] <= 'z' ? env[j] - 32 : env[j]);
	if ((v = getenv(env)) == NULL || *v == '\0')
		return (o->def);
	if (o->kind == OPT_FLAG)
		return (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 ?
		    NULL : "1");
	return (v);
}

int
options_parse(struct options *o, int argc, char **argv)
{
	struct option	 longopts[O_COUNT + 1];
	size_t		 i;
	int		 ch, idx;

	memset(o, 0, sizeof *o);
	memset(longopts, 0, sizeof longopts);
	for (i = 0; i < O_COUNT; i++) {
		longopts[i].name = options_table[i].name;
		longopts[i].has_arg = options_table[i].kind == OPT_FLAG ?
		    no_argument : required_argument;
		longopts[i].val = 0x100 + (int)i;
		o->val[i] = opt_env(&options_table[i]);
	}
	optind = 0;	/* glibc: start afresh (tests parse many times) */
	while ((ch = getopt_long(argc, argv, "hV", longopts, &idx)) != -1) {
		if (ch == 'h')
			ch = 0x100 + O_HELP;
		if (ch == 'V')
			ch = 0x100 + O_VERSION;
		if (ch < 0x100 || ch >= 0x100 + O_COUNT) {
			options_usage(stderr);
			return (-AS_EINVAL);
		}
		o->val[ch - 0x100] = options_table[ch - 0x100].kind ==
		    OPT_FLAG ? "1" : optarg;
	}
	if (optind < argc) {
		fprintf(stderr, "agentscaler: unexpected argument \"%s\"\n",
		    argv[optind]);
		return (-AS_EINVAL);
	}
	return (0);
}

int
options_numbers(struct options *o)
{
	size_t	 i;

	for (i = 0; i < O_COUNT; i++) {
		o->num[i] = 0;
		if ((options_table[i].kind == OPT_NUMBER ||
		    options_table[i].kind == OPT_INT) && o->val[i] != NULL &&
		    opt_number(&options_table[i], o->val[i], &o->num[i]) != 0)
			return (-AS_EINVAL);
	}
	return (0);
}

int
options_daemon(struct options *o, struct daemon_options *d, char *err,
    size_t errlen)
{
	const struct option_row	*r;
	char			*p;
	size_t			 i;
	int			 rc;

	memset(d, 0, sizeof *d);
	for (i = 0; i < O_COUNT; i++) {
		r = &options_table[i];
		p = (char *)d + r->off;
		switch (r->field) {
		case F_NONE:
			break;
		case F_STRING:
			memcpy(p, &o->val[i], sizeof o->val[i]);
			break;
		case F_DOUBLE:
			memcpy(p, &o->num[i], sizeof o->num[i]);
			break;
		case F_INT:
			*(int *)(void *)p = r->kind == OPT_FLAG ?
			    o->val[i] != NULL : (int)o->num[i];
			break;
		}
	}
	if (d->admin_addr != NULL && options_addr_off(d->admin_addr))
		d->admin_addr = NULL;
	if (o->val[O_INSTANCE] != NULL)
		as_strlcpy(d->instance, o->val[O_INSTANCE], sizeof d->instance);
	else if (gethostname(d->instance, sizeof d->instance) != 0 ||
	    d->instance[0] == '\0')
		as_strlcpy(d->instance, "agentscaler", sizeof d->instance);
	d->instance[sizeof d->instance - 1] = '\0';
	d->leader.identity = d->instance;
	if (d->leader.ns == NULL) {
		leader_default_namespace(NULL, o->lease_ns,
		    sizeof o->lease_ns);
		d->leader.ns = o->lease_ns;
	}
	opt_list_free(o->shared, o->nshared);
	opt_list_free(o->secret_ns, o->nsecret_ns);
	o->shared = opt_list(o->val[O_SHARED_SECRETS], &o->nshared);
	o->secret_ns = opt_list(o->val[O_SECRET_NAMESPACES], &o->nsecret_ns);
	for (i = 0; i < o->nshared; i++) {
		const char *sl = strchr(o->shared[i], '/');

		if (sl == NULL || strchr(sl + 1, '/') != NULL ||
		    sl == o->shared[i] || !config_dns_subdomain(sl + 1, 253)) {
			snprintf(err, errlen, "--shared-secrets: expected "
			    "NAMESPACE/NAME, got \"%s\"", o->shared[i]);
			return (-AS_EINVAL);
		}
	}
	opt_list_free(o->routers, o->nrouters);
	o->routers = opt_list(o->val[O_HANDOFF_ROUTERS], &o->nrouters);
	for (i = 0; i < o->nrouters; i++)
		if (strncmp(o->routers[i], "http://", 7) != 0 &&
		    strncmp(o->routers[i], "https://", 8) != 0) {
			snprintf(err, errlen, "--handoff-routers: expected "
			    "http:// or https:// URLs, got \"%s\"",
			    o->routers[i]);
			return (-AS_EINVAL);
		}
	if ((rc = options_pod_cidrs(o, err, errlen)) != 0)
		return (rc);
	d->tenancy.routers = (const char *const *)o->routers;
	d->tenancy.nrouters = o->nrouters;
	d->tenancy.pod_cidrs = o->pod_cidrs;
	d->tenancy.npod_cidrs = o->npod_cidrs;
	d->tenancy.shared = (const char *const *)o->shared;
	d->tenancy.nshared = o->nshared;
	d->tenancy.secret_namespaces = (const char *const *)o->secret_ns;
	d->tenancy.nsecret_namespaces = o->nsecret_ns;
	return (0);
}

void
options_free(struct options *o)
{
	opt_list_free(o->shared, o->nshared);
	opt_list_free(o->secret_ns, o->nsecret_ns);
	opt_list_free(o->routers, o->nrouters);
	free(o->pod_cidrs);
	o->shared = o->secret_ns = o->routers = NULL;
	o->nshared = o->nsecret_ns = o->nrouters = 0;
	o->pod_cidrs = NULL;
	o->npod_cidrs = 0;
}
