/*
 * daemon.h: the agentscaler process: one libev loop that owns the config,
 * the pools, the Kubernetes client and the HTTP endpoints.
 *
 * Ownership: options are borrowed for the life of daemon_run().
 */
#ifndef AGENTSCALER_DAEMON_H
#define AGENTSCALER_DAEMON_H

#include "config.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/k8s/leader.h"

struct daemon_options {
	const char		*config_path;	/* NULL: CRD mode */
	const char		*watch_namespace;	/* CRD mode; NULL: all */
	const char		*secrets_dir;	/* --config's authSecretRef */
	const char		*handoff_key_file;	/* NULL: random */
	struct config_tenancy	 tenancy;	/* CRD mode: who reads what */
	const char		*metrics_addr;	/* /metrics /healthz /readyz */
	const char		*admin_addr;	/* /status /explain; NULL: off */
	const char		*otlp_endpoint;	/* traces; NULL: off */
	double			 resync_seconds;	/* deprecated, unused */
	char			 instance[128];	/* dispatch: stable name */
	struct k8s_options	 k8s;
	/*
	 * Leader election (--leader-elect): only the holder of the Lease
	 * writes to Kubernetes and consumes tasks; identity is instance.
	 */
	int			 leader_elect;
	struct leader_options	 leader;
	/* --shadow: every pool in shadow mode (config.h, pool_config). */
	int			 shadow;
};

/* Exit codes of daemon_run() and of the process. */
#define DAEMON_EXIT_OK		0
#define DAEMON_EXIT_FAIL	1	/* cannot start: port in use, ... */
#define DAEMON_EXIT_CONFIG	2	/* bad flags or config */

/* Seconds SIGTERM waits for the Lease's release before exiting anyway. */
#define DAEMON_RELEASE_WAIT	2.0
/*
 * Seconds SIGTERM waits at most for what is buffered to go out: the
 * spans the exporter holds (--otlp-endpoint) and the rejections not yet in
 * their ConfigMap (--leader-elect).  The Lease's release follows the
 * rejections' write, so a stop takes DAEMON_DRAIN_WAIT +
 * DAEMON_RELEASE_WAIT at most (5 s; the chart's
 * terminationGracePeriodSeconds is 30).
 */
#define DAEMON_DRAIN_WAIT	3.0

/*
 * Loads the config, starts every pool and serves until SIGTERM or SIGINT;
 * SIGHUP reloads the config (a bad one is refused, the old one kept).
 * Without a config file (CRD mode) the config comes from the AgentPool and
 * AgentQuota objects of the cluster, applied live as they change (crd.h).
 * With leader election, a standby reads (sources, targets) but neither
 * writes to Kubernetes nor consumes tasks until it holds the Lease, and
 * SIGTERM releases the Lease (waiting DAEMON_RELEASE_WAIT at most).
 * SIGTERM first flushes the exporter's spans and the rejections' last
 * write (DAEMON_DRAIN_WAIT at most); a second SIGTERM exits at once.
 * Returns one of the exit codes above.
 */
int	 daemon_run(const struct daemon_options *);

#endif
