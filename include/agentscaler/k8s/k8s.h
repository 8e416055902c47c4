/*
 * k8s.h: the Kubernetes API client, libcurl multi driven by the caller's
 * libev loop; nothing here blocks.
 *
 * Every request passes through one token-bucket rate limiter (qps, burst),
 * is retried with jittered backoff on 5xx, transport errors and timeouts,
 * waits for Retry-After on 429, re-reads the token file on 401 (and every
 * minute), runs an exec credential plugin before its credentials expire and
 * after a 401, and turns a Kubernetes Status body into a one-line message.
 *
 * Ownership: options are copied by k8s_client_new().  A response passed to
 * a completion is borrowed for the duration of the call.  A completion runs
 * exactly once per accepted request, never before the call that started it
 * returns, and with -AS_ECANCELED when the request is cancelled or the
 * client freed.  A watch line is borrowed for the duration of its call.
 */
#ifndef AGENTSCALER_K8S_H
#define AGENTSCALER_K8S_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct k8s_client;
struct k8s_req;
struct kubeconfig_cluster;
struct kubeconfig_exec;
struct prom_hist;

/*
 * Where the configuration comes from (k8s_client_new() resolves it, see
 * kubeconfig_resolve() in kubeconfig.h): kubeconfig (--kubeconfig), else
 * apiserver alone, else KUBECONFIG, in-cluster, ~/.kube/config.  With a
 * kubeconfig, apiserver, token_file, ca_file and insecure_skip_tls_verify
 * override what it says (kubectl's --server, --token, --certificate-
 * authority); without one the fields below are used as given.
 */
struct k8s_options {
	const char	*apiserver;	/* https://host:port */
	const char	*token_file;	/* bearer token, re-read every minute */
	const char	*ca_file;
	int		 insecure_skip_tls_verify;
	const char	*kubeconfig;	/* a file; NULL: see above */
	const char	*context;	/* NULL: current-context */
	/* Credentials a kubeconfig provides (or a caller sets directly). */
	const char	*token;		/* static bearer token */
	const char	*ca_data;	/* PEM */
	size_t		 ca_data_len;
	const char	*cert_file;	/* client certificate, PEM */
	const char	*key_file;
	const char	*cert_data;	/* PEM */
	size_t		 cert_data_len;
	const char	*key_data;	/* PEM */
	size_t		 key_data_len;
	const struct kubeconfig_exec *exec;	/* credential plugin */
	const struct kubeconfig_cluster *exec_cluster;	/* for its info */
	double		 qps;		/* default 20 */
	int		 burst;		/* default 30 */
	double		 timeout;	/* per attempt, seconds; default 10 */
	int		 max_retries;	/* default 5; -1: no retries */
	double		 retry_base;	/* first backoff, seconds; default 0.1 */
	double		 retry_cap;	/* largest backoff, seconds; default 5 */
};

struct k8s_response {
	int		 err;		/* 0 on 2xx, else -AS_E... */
	long		 code;		/* HTTP status, 0 when none arrived */
	const char	*body;		/* NUL-terminated, may be "" */
	size_t		 body_len;
	const char	*message;	/* human text for errors, "" on success */
};

typedef void	 k8s_done_fn(const struct k8s_response *, void *arg);
/* One line of a watch stream (one JSON event), NUL-terminated at len. */
typedef void	 k8s_line_fn(const char *line, size_t len, void *arg);

/*
 * Fills opts from KUBERNETES_SERVICE_HOST/PORT and the service-account
 * files under dir (NULL: /var/run/secrets/kubernetes.io/serviceaccount).
 * The strings point into buf.  Returns 0 or -AS_EINVAL with a reason.
 */
int	 k8s_options_incluster(struct k8s_options *opts, const char *dir,
	    char *buf, size_t buflen, char *err, size_t errlen);

/*
 * Resolves where the configuration comes from (see struct k8s_options),
 * logs that source (never a secret), runs an exec credential plugin once
 * (blocking, bounded) when the user has one, and returns a client, or NULL
 * with a reason in err.  Each client holds a curl_global_init() reference
 * until k8s_client_free().
 */
struct k8s_client *k8s_client_new(struct ev_loop *, const struct k8s_options *,
	    char *err, size_t errlen);
/* Cancels every pending request (completions run), then frees. */
void	 k8s_client_free(struct k8s_client *);

/*
 * Queues a request.  path starts with "/"; body may be NULL; content_type
 * applies to the body.  Returns a handle valid until the completion runs,
 * or NULL (the completion will not run) when the arguments are bad.
 */
struct k8s_req *k8s_client_request(struct k8s_client *, const char *method,
	    const char *path, const char *content_type, const char *body,
	    k8s_done_fn *, void *arg);
/* Ends a pending request now; its completion runs with -AS_ECANCELED. */
void	 k8s_req_cancel(struct k8s_req *);

/*
 * Opens a watch: a streaming GET of path (which carries the query, e.g.
 * "...?watch=true&resourceVersion=7"), with the client's credentials and
 * rate limiter but no total timeout and no retries; the caller decides what
 * a failure means.  Each newline-terminated event goes to line (outside
 * libcurl: it may cancel the watch or free the client); done runs once at
 * the end, err 0 when the server closed the stream cleanly.  idle_timeout:
 * seconds without a byte before it fails with -AS_ETIMEDOUT, 0 none;
 * max_line: the longest event, 0 for 16 MiB (-AS_EPROTO beyond).  See
 * httpc_stream() for the rest.  Returns a handle as k8s_client_request().
 */
struct k8s_req *k8s_client_watch(struct k8s_client *, const char *path,
	    double idle_timeout, size_t max_line, k8s_line_fn *, k8s_done_fn *,
	    void *arg);
/*
 * A way to send one request, for modules that only write (the event
 * recorder, the status writer): k8s_client_sink() fills it with
 * k8s_client_request() and k8s_req_cancel(); tests put a fake there.  send
 * returns a handle, or NULL when the request was refused (done will not
 * run); cancel makes done run at once with -AS_ECANCELED.
 */
struct k8s_sink {
	void	*(*send)(void *arg, const char *method, const char *path,
		    const char *content_type, const char *body, k8s_done_fn *done,
		    void *ctx);
	void	 (*cancel)(void *arg, void *req);
	void	*arg;
};

void	 k8s_client_sink(struct k8s_client *, struct k8s_sink *);
/* The loop the client runs on. */
struct ev_loop	*k8s_client_loop(const struct k8s_client *);

/* Calls fn for each (verb, code) request counter; code 0: no response. */
void	 k8s_client_foreach_stat(const struct k8s_client *,
	    void (*fn)(const char *verb, long code, uint64_t count, void *),
	    void *arg);
/*
 * Each verb's histogram of request durations, the rate limiter's wait
 * included (watches excluded), and the histogram of that wait alone
 * (httpc.h; NULL for NULL or a client being freed).
 */
void	 k8s_client_foreach_latency(const struct k8s_client *,
	    void (*fn)(const char *verb, const struct prom_hist *, void *),
	    void *arg);
const struct prom_hist *k8s_client_limiter_wait(const struct k8s_client *);

/* The scale subresource of a workload (autoscaling/v1 Scale). */
struct k8s_scale {
	long		 spec_replicas;
	long		 status_replicas;
	char		 resource_version[32];	/* metadata's, or "" */
};

typedef void	 k8s_scale_fn(int err, const struct k8s_scale *,
		    const char *errmsg, void *arg);

/*
 * The agent-sandbox API (kubernetes-sigs/agent-sandbox), named once:
 * Sandboxes in the core group, SandboxClaims, SandboxWarmPools and
 * SandboxTemplates in the extensions group, both at one version.
 */
#define K8S_SANDBOX_GROUP	"agents.x-k8s.io"
#define K8S_SANDBOX_EXT_GROUP	"extensions." K8S_SANDBOX_GROUP
#define K8S_SANDBOX_VERSION	"v1beta1"
#define K8S_SANDBOX_API		"/apis/" K8S_SANDBOX_GROUP "/" \
				    K8S_SANDBOX_VERSION
#define K8S_SANDBOX_EXT_API	"/apis/" K8S_SANDBOX_EXT_GROUP "/" \
				    K8S_SANDBOX_VERSION

/*
 * Resolves a workload kind (one of k8s_kind_list()) to its API path prefix
 * and resource, e.g. "/apis/apps/v1", "deployments".  Returns 0 or
 * -AS_EINVAL for an unknown kind.
 */
int	 k8s_kind_resource(const char *kind, const char **prefix,
	    const char **resource);
/*
 * The workload kinds agentscaler can scale, alphabetical, NULL-terminated
 * (static): the one list the config's enum, --help-config and
 * --print-vocabulary come from.
 */
const char *const *k8s_kind_list(void);

/* GET .../<resource>/<name>/scale. */
struct k8s_req *k8s_scale_get(struct k8s_client *, const char *kind,
	    const char *ns, const char *name, k8s_scale_fn *, void *arg);
/* Merge-PATCH {"spec":{"replicas":N}} on .../<name>/scale. */
struct k8s_req *k8s_scale_patch(struct k8s_client *, const char *kind,
	    const char *ns, const char *name, long replicas, k8s_scale_fn *,
	    void *arg);

/*
 * Pure: parses an autoscaling/v1 Scale body.  Returns 0 or -AS_EPROTO with
 * the reason in err.
 */
int	 k8s_scale_parse(const char *body, size_t len, struct k8s_scale *,
	    char *err, size_t errlen);
/*
 * Pure: turns an error response (Status object or anything else) into one
 * line of text in out, e.g. `404 NotFound: deployments.apps "x" not found`.
 */
void	 k8s_status_message(long code, const char *body, size_t len, char *out,
	    size_t outlen);

#endif
