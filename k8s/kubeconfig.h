/*
 * kubeconfig.h: kubeconfig files (the clientcmd v1 Config that kubectl
 * reads), as far as agentscaler needs them: clusters, users, contexts,
 * current-context, and exec credential plugins.
 *
 * kubeconfig_parse() is pure: bytes in, a struct kubeconfig out; relative
 * file paths are joined to the dir it is given (the file's directory, as
 * client-go does), but nothing is read.  kubeconfig_merge() combines files
 * as a KUBECONFIG list does; kubeconfig_select() picks the context, its
 * cluster and user, and refuses what agentscaler cannot honour
 * (auth-provider, impersonation, basic auth, proxy-url, tls-server-name).
 * kubeconfig_load() and k8s_options_resolve() (in k8s.h) do the I/O.
 *
 * Every error names the file when there is one, then the field path, e.g.
 * `/home/a/.kube/config: users[0].user.client-key-data: not valid base64`.
 * Unknown fields are ignored, as client-go ignores them.
 *
 * Ownership: a struct kubeconfig and every string and array in it belong to
 * it; kubeconfig_free() releases them (and zeroes the secrets).  Pointers
 * returned by kubeconfig_select() are borrowed from the config.
 */
#ifndef AGENTSCALER_KUBECONFIG_H
#define AGENTSCALER_KUBECONFIG_H

#include <stddef.h>

/* The largest kubeconfig file read. */
#define KUBECONFIG_MAX_BYTES	(16 * 1024 * 1024)

struct kubeconfig_env {
	char	*name;
	char	*value;
};

/* users[].user.exec: client.authentication.k8s.io ExecConfig. */
struct kubeconfig_exec {
	char			*api_version;
	char			*command;	/* resolved when it has a '/' */
	char			**args;
	size_t			 nargs;
	struct kubeconfig_env	*env;
	size_t			 nenv;
	char			*install_hint;
	char			*interactive_mode; /* Never|IfAvailable|Always */
	int			 provide_cluster_info;
};

struct kubeconfig_cluster {
	char	*name;
	char	*server;
	char	*ca_file;		/* certificate-authority, resolved */
	char	*ca_data;		/* certificate-authority-data, decoded */
	size_t	 ca_data_len;
	int	 insecure_skip_tls_verify;
	char	*tls_server_name;	/* parsed, refused when selected */
	char	*proxy_url;		/* parsed, refused when selected */
};

struct kubeconfig_user {
	char			*name;
	char			*token;
	char			*token_file;	/* resolved */
	char			*cert_file;	/* client-certificate, resolved */
	char			*cert_data;	/* client-certificate-data */
	size_t			 cert_data_len;
	char			*key_file;	/* client-key, resolved */
	char			*key_data;	/* client-key-data */
	size_t			 key_data_len;
	struct kubeconfig_exec	*exec;		/* NULL: none */
	/* Present in the file but not supported; refused when selected. */
	char			*auth_provider;	/* auth-provider.name */
	int			 has_basic;	/* username/password */
	int			 has_impersonation; /* as, as-groups, ... */
};

struct kubeconfig_context {
	char	*name;
	char	*cluster;
	char	*user;
	char	*ns;
};

struct kubeconfig {
	struct kubeconfig_cluster	*clusters;
	size_t				 nclusters;
	struct kubeconfig_user		*users;
	size_t				 nusers;
	struct kubeconfig_context	*contexts;
	size_t				 ncontexts;
	char				*current_context;
};

/* What kubeconfig_select() chose; every pointer is borrowed. */
struct kubeconfig_selection {
	const struct kubeconfig_context	*context;
	const struct kubeconfig_cluster	*cluster;
	const struct kubeconfig_user	*user;	/* NULL: no credentials */
};

/*
 * Pure: parses one kubeconfig document (YAML or JSON) of len bytes.  dir is
 * the directory relative paths are resolved against (NULL or "": leave them
 * relative).  Base64 fields are decoded.  Returns 0 and *out (the caller
 * frees it with kubeconfig_free()), or -AS_EINVAL with the field path and
 * reason in err and *out NULL.
 */
int	 kubeconfig_parse(const char *data, size_t len, const char *dir,
	    struct kubeconfig **out, char *err, size_t errlen);

/* Frees a config, zeroing tokens and keys first; NULL does nothing. */
void	 kubeconfig_free(struct kubeconfig *);

/*
 * Merges src into dst as a KUBECONFIG list does (client-go
 * tools/clientcmd/loader.go, ClientConfigLoadingRules.Load): dst came
 * first, so a cluster, user or context name dst already has keeps dst's
 * entry, and current-context is taken from src only when dst has none.
 * Consumes src (freed).
 */
void	 kubeconfig_merge(struct kubeconfig *dst, struct kubeconfig *src);

/*
 * Pure: picks the context (context, or current-context when NULL or ""),
 * then its cluster and user by name.  Returns 0, or -AS_EINVAL with the
 * reason when the context, cluster or user is missing, the cluster has no
 * server, or the selection needs something agentscaler does not support.
 */
int	 kubeconfig_select(const struct kubeconfig *, const char *context,
	    struct kubeconfig_selection *, char *err, size_t errlen);

/*
 * Reads and merges the files in paths (n of them, in priority order).  A
 * missing file is skipped when skip_missing is set (a KUBECONFIG list), an
 * error otherwise; so is a list where every file is missing.  Returns 0 and
 * *out, or a negative as_err with the file and reason in err.
 */
int	 kubeconfig_load(const char *const *paths, size_t n, int skip_missing,
	    struct kubeconfig **out, char *err, size_t errlen);

/*
 * Chooses the configuration k8s_client_new() uses, in this order:
 * in->kubeconfig (--kubeconfig), in->apiserver alone (no kubeconfig is
 * read), KUBECONFIG, in-cluster (KUBERNETES_SERVICE_HOST set), then
 * $HOME/.kube/config.  From a kubeconfig, in->context or its
 * current-context picks the cluster and user; in->apiserver, token_file,
 * ca_file and insecure_skip_tls_verify override them.  *out starts as a
 * copy of *in; its strings point into in, into *kcp (a loaded kubeconfig
 * the caller frees with kubeconfig_free() once out is no longer used, or
 * NULL) or into buf (in-cluster).  desc gets a line for the log naming the
 * source, context, server and kind of credentials, never a secret.
 * Returns 0, or a negative as_err with the reason in err.
 */
struct k8s_options;
int	 kubeconfig_resolve(const struct k8s_options *in,
	    struct k8s_options *out, struct kubeconfig **kcp, char *buf,
	    size_t buflen, char *desc, size_t desclen, char *err,
	    size_t errlen);

#endif
