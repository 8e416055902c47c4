/*
 * options.h: the daemon's command-line flags, declared once in a table
 * (options.c; STYLE.md habit 7).  getopt_long's table, the defaults, the
 * AGENTSCALER_<FLAG> environment variables, --help and the copy into
 * struct daemon_options all come from that table.
 *
 * Ownership: struct options borrows its strings from argv, the environment
 * and the table, and owns what options_daemon() builds (the lists, the
 * Lease's namespace); a struct daemon_options filled from it borrows from
 * it and must not outlive it.  options_free() frees what it owns.
 */
#ifndef AGENTSCALER_OPTIONS_H
#define AGENTSCALER_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

struct daemon_options;
struct pod_cidr;

enum options_id {
	O_CONFIG, O_SECRETS_DIR, O_HANDOFF_KEY_FILE, O_METRICS_ADDR, O_ADMIN_ADDR, O_LOG_FORMAT,
	O_LOG_LEVEL,
	O_KUBECONFIG, O_CONTEXT,
	O_APISERVER, O_TOKEN_FILE, O_CA_FILE, O_INSECURE, O_KUBE_QPS,
	O_KUBE_BURST, O_KUBE_TIMEOUT, O_KUBE_RETRIES, O_RESYNC, O_INSTANCE,
	O_LEADER_ELECT, O_LEASE_NAME, O_LEASE_NAMESPACE, O_LEASE_DURATION,
	O_RENEW_DEADLINE, O_RETRY_PERIOD, O_CHECK_CONFIG, O_WATCH_NAMESPACE,
	O_SHARED_SECRETS, O_SECRET_NAMESPACES, O_HANDOFF_ROUTERS, O_POD_CIDRS,
	O_SHADOW,
	O_HELP_CONFIG, O_HELP_CONFIG_JSON, O_PRINT_VOCABULARY, O_PRINT_METRICS,
	O_HELP, O_VERSION, O_COUNT
};

struct options {
	/* Each flag's text; NULL when unset.  A flag without value: "1". */
	const char	*val[O_COUNT];
	/* The numeric flags' values, after options_numbers(); else 0. */
	double		 num[O_COUNT];
	/* Built by options_daemon(). */
	char		**shared;
	size_t		 nshared;
	char		**secret_ns;
	size_t		 nsecret_ns;
	char		**routers;
	size_t		 nrouters;
	struct pod_cidr	*pod_cidrs;
	size_t		 npod_cidrs;
	char		 lease_ns[256];
};

/*
 * Reads the flags: each one's default, then AGENTSCALER_<FLAG> (upper
 * case, '-' as '_'; for a flag without value "false" and "0" unset it),
 * then argv through getopt_long.  Returns 0, or -AS_EINVAL with the
 * complaint on stderr (an unknown flag: the usage too; an argument that is
 * not a flag).  Call options_free() in either case.
 */
int		 options_parse(struct options *, int argc, char **argv);

/*
 * Checks the numeric flags against their bounds into o->num.  Returns 0,
 * or -AS_EINVAL with the complaint on stderr.
 */
int		 options_numbers(struct options *);

/*
 * Fills d from o: every flag with a field in struct daemon_options is
 * copied by the table, then the rest: --admin-addr "off" or "" as NULL,
 * --instance defaulting to the host name, --lease-namespace to
 * leader_default_namespace(), --shared-secrets, --secret-namespaces,
 * --handoff-routers and --pod-cidrs split at commas.  Returns 0, or
 * -AS_EINVAL with the reason in err (a --shared-secrets item that is not
 * NAMESPACE/NAME, a router that is no http(s):// URL, a bad CIDR).
 */
int		 options_daemon(struct options *, struct daemon_options *d,
		    char *err, size_t errlen);

/* Frees what o owns; o may be half-filled or zeroed. */
void		 options_free(struct options *);

/* The help text (usage line and one line per flag, with its default). */
void		 options_usage(FILE *);

/* A flag's default from the table, or NULL. */
const char	*options_default(enum options_id);

/* 1 for an address that means "not served": "" or "off". */
int		 options_addr_off(const char *);

#endif
