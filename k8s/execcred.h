/*
 * execcred.h: exec credential plugins (client.authentication.k8s.io v1 and
 * v1beta1 ExecCredential), the way managed clusters hand out credentials
 * (gke-gcloud-auth-plugin, aws eks get-token, kubelogin).
 *
 * A plugin is run without a shell and without a terminal: stdin is
 * /dev/null, KUBERNETES_EXEC_INFO carries an ExecCredential with
 * spec.interactive false (and spec.cluster when the kubeconfig asks for
 * it), stdout must be an ExecCredential with a status, and stderr is kept
 * only for the first line of an error.  A run is bounded in time (killed,
 * with its process group, after the timeout) and in output size.
 *
 * execcred_run() blocks (for start-up); execcred_start() runs on the libev
 * loop (ev_io on the pipes, ev_child on the default loop or a polling
 * timer on another) and calls done exactly once, from the loop, never
 * inside the call that started it.
 *
 * Ownership: execcred_new() copies what it needs.  A struct execcred_cred
 * filled by this module is the caller's; execcred_cred_clear() zeroes and
 * frees it.  Error messages name the plugin command, its exit status and
 * the first line of its stderr; never a token or key.
 */
#ifndef AGENTSCALER_EXECCRED_H
#define AGENTSCALER_EXECCRED_H

#include <stddef.h>

struct ev_loop;
struct execcred;
struct kubeconfig_exec;

#define EXECCRED_TIMEOUT	10.0		/* seconds per run */
#define EXECCRED_MAX_OUTPUT	(1024 * 1024)	/* bytes of stdout */

/* What a plugin returned (status of an ExecCredential). */
struct execcred_cred {
	char	*token;		/* NULL when it gave a certificate */
	char	*cert;		/* clientCertificateData, PEM */
	size_t	 cert_len;
	char	*key;		/* clientKeyData, PEM */
	size_t	 key_len;
	double	 expiry;	/* expirationTimestamp, unix s; 0: none */
};

/* The cluster a plugin is told about when provideClusterInfo is set. */
struct execcred_cluster {
	const char	*server;
	const char	*ca_data;	/* PEM, NULL: none */
	size_t		 ca_data_len;
	int		 insecure_skip_tls_verify;
};

typedef void	 execcred_done_fn(struct execcred *, int err,
		    struct execcred_cred *cred, const char *errmsg,
		    void *arg);

/*
 * Pure: parses a plugin's stdout.  api_version is the one the kubeconfig
 * asked for (the reply must match).  Returns 0 and fills *out (the caller
 * clears it), or -AS_EPROTO with the reason in err.
 */
int	 execcred_parse(const char *data, size_t len, const char *api_version,
	    struct execcred_cred *out, char *err, size_t errlen);
/*
 * Pure: the KUBERNETES_EXEC_INFO value, a new string the caller frees;
 * cluster NULL leaves spec.cluster out.
 */
char	*execcred_info(const char *api_version,
	    const struct execcred_cluster *cluster);
/* Zeroes and frees what *cred holds; the struct can be filled again. */
void	 execcred_cred_clear(struct execcred_cred *);

/*
 * A runner for one plugin configuration.  cluster is used only when the
 * configuration sets provideClusterInfo (may be NULL).  timeout <= 0:
 * EXECCRED_TIMEOUT.  Never fails (a missing command shows at run time).
 */
struct execcred	*execcred_new(struct ev_loop *, const struct kubeconfig_exec *,
		    const struct execcred_cluster *cluster, double timeout);
/* Kills (SIGKILL, its process group) and reaps a running plugin; frees. */
void		 execcred_free(struct execcred *);

/*
 * Runs the plugin and waits for it (at most the timeout).  Returns 0 with
 * *out filled, or a negative as_err with the reason in err.
 */
int		 execcred_run(struct execcred *, struct execcred_cred *out,
		    char *err, size_t errlen);
/*
 * Starts a run on the loop; done runs once when it is over (it must not
 * free the execcred; cred is borrowed, steal its fields and set them NULL
 * to keep them).  Returns 0, -AS_EAGAIN when a run is already going, or
 * another negative as_err (done will not run) with the reason in err.
 */
int		 execcred_start(struct execcred *, execcred_done_fn *, void *arg,
		    char *err, size_t errlen);
/* Whether a run started by execcred_start() is going. */
int		 execcred_busy(const struct execcred *);
/* The command as configured, for messages (borrowed). */
const char	*execcred_command(const struct execcred *);

#endif
