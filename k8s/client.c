/*
 * client.c: the Kubernetes API client, a thin layer over the HTTP client
 * (scheduler/httpc.c: libcurl multi on the caller's libev loop, the token
 * bucket, retries and per-attempt timeouts all live there).
 *
 * What this layer adds: the in-cluster configuration, the bearer token file
 * and Kubernetes Status objects as error messages.  The token is read at
 * start, again before an attempt when the copy is a minute old (as
 * client-go's cached file token source) and at once after a 401, after
 * which the request is tried once more.  It is never logged.
 *
 * Lifetimes.  A struct k8s_req wraps one httpc request and is freed right
 * after its completion has run.  The struct k8s_client lives until the
 * httpc client is gone: k8s_client_free() may run inside a completion, in
 * which case httpc defers its teardown, and our cleanup hook frees the rest
 * only then, so a second k8s_client_free() still finds c->closing set.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "agentscaler/common.h"
#include "agentscaler/httpc.h"
#include "agentscaler/k8s.h"
#include "agentscaler/log.h"

#define K8S_SA_DIR		"/var/run/secrets/kubernetes.io/serviceaccount"
#define K8S_TOKEN_PERIOD	60.0	/* seconds between token re-reads */

struct k8s_client {
	struct httpc		*h;
	char			*token_file;
	char			*token;
	double			 token_at;	/* mono time of the last read */
	int			 closing;
};

struct k8s_req {
	struct httpc_req	*hr;
	k8s_line_fn		*line;		/* watches */
	k8s_done_fn		*done;
	void			*arg;
};

#ifdef AS_TESTING
/* The unit tests' names for two pure functions now in httpc.c. */
int	 k8s_client_classify(int curl_ok, long code, int *retry);
double	 k8s_client_retry_after(const char *value, time_t now);
#endif

static void	 client_token_free(char *);
static void	 client_token_load(struct k8s_client *, int);
static void	 client_prepare(struct httpc *, void *);
static int	 client_unauthorized(struct httpc *, const char *,
		    const char *, void *);
static void	 client_cleanup(void *);
static void	 client_req_done(const struct httpc_response *, void *);
static void	 client_line(const char *, size_t, void *);
static void	*client_sink_send(void *, const char *, const char *,
		    const char *, const char *, k8s_done_fn *, void *);
static void	 client_sink_cancel(void *, void *);

/*
 * In-cluster configuration as client-go's InClusterConfig: both variables
 * must be set, and an IPv6 host goes in brackets.
 */
int
k8s_options_incluster(struct k8s_options *opts, const char *dir, char *buf,
    size_t buflen, char *err, size_t errlen)
{
	const char	*host, *port, *lb = "", *rb = "";
	size_t		 off = 0;
	int		 n;

	if (dir == NULL)
		dir = K8S_SA_DIR;
	host = getenv("KUBERNETES_SERVICE_HOST");
	port = getenv("KUBERNETES_SERVICE_PORT");
	if (host == NULL || *host == '\0' || port == NULL || *port == '\0') {
		snprintf(err, errlen, "not in a cluster: "
		    "KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT unset");
		return (-AS_EINVAL);
	}
	if (strchr(host, ':') != NULL && host[0] != '[') {
		lb = "[";
		rb = "]";
	}
	n = snprintf(buf, buflen, "https://%s%s%s:%s", lb, host, rb, port);
	if (n < 0 || (size_t)n >= buflen)
		goto small;
	opts->apiserver = buf;
	off = (size_t)n + 1;
	n = snprintf(buf + off, buflen - off, "%s/token", dir);
	if (n < 0 || (size_t)n >= buflen - off)
		goto small;
	opts->token_file = buf + off;
	off += (size_t)n + 1;
	n = snprintf(buf + off, buflen - off, "%s/ca.crt", dir);
	if (n < 0 || (size_t)n >= buflen - off)
		goto small;
	opts->ca_file = buf + off;
	if (access(opts->token_file, R_OK) != 0) {
		snprintf(err, errlen, "%s: cannot read the token",
		    opts->token_file);
		return (-AS_EINVAL);
	}
	if (access(opts->ca_file, R_OK) != 0) {
		snprintf(err, errlen, "%s: cannot read the CA", opts->ca_file);
		return (-AS_EINVAL);
	}
	return (0);
small:
	snprintf(err, errlen, "in-cluster configuration: buffer too small");
	return (-AS_EINVAL);
}

struct k8s_client *
k8s_client_new(struct ev_loop *loop, const struct k8s_options *opts,
    char *err, size_t errlen)
{
	struct k8s_options o;
	struct httpc_options ho;
	struct k8s_client *c = NULL;
	char		 buf[1024];

	if (loop == NULL || opts == NULL) {
		snprintf(err, errlen, "no loop or no options");
		return (NULL);
	}
	o = *opts;
	if (o.apiserver == NULL) {
		struct k8s_options ic;

		memset(&ic, 0, sizeof ic);
		if (k8s_options_incluster(&ic, NULL, buf, sizeof buf, err,
		    errlen) != 0)
			return (NULL);
		o.apiserver = ic.apiserver;
		if (o.token_file == NULL)
			o.token_file = ic.token_file;
		if (o.ca_file == NULL)
			o.ca_file = ic.ca_file;
	}
	if (strncmp(o.apiserver, "https://", 8) != 0 &&
	    strncmp(o.apiserver, "http://", 7) != 0) {
		snprintf(err, errlen, "apiserver must be an http(s) URL");
		return (NULL);
	}

	c = xcalloc(1, sizeof *c);
	if (o.token_file != NULL) {
		c->token_file = xstrdup(o.token_file);
		if ((c->token = as_read_secret(c->token_file, err,
		    errlen)) == NULL)
			goto fail;
		c->token_at = as_mono_now();
	}
	memset(&ho, 0, sizeof ho);
	ho.base_url = o.apiserver;
	ho.log_name = "k8s";
	ho.ca_file = o.ca_file;
	ho.insecure_skip_verify = o.insecure_skip_tls_verify;
	ho.qps = o.qps;
	ho.burst = o.burst;
	ho.timeout = o.timeout;
	ho.max_retries = o.max_retries;
	ho.retry_base = o.retry_base;
	ho.retry_cap = o.retry_cap;
	ho.message = k8s_status_message;
	ho.prepare = client_prepare;
	ho.unauthorized = client_unauthorized;
	ho.cleanup = client_cleanup;
	ho.arg = c;
	if ((c->h = httpc_new(loop, &ho, err, errlen)) == NULL)
		goto fail;
	httpc_set_bearer(c->h, c->token);
	return (c);
fail:
	client_token_free(c->token);
	free(c->token_file);
	free(c);
	return (NULL);
}

/* Cancels every pending request (completions run), then frees. */
void
k8s_client_free(struct k8s_client *c)
{
	if (c == NULL || c->closing)
		return;
	c->closing = 1;
	httpc_free(c->h);	/* client_cleanup frees c, now or later */
}

/* httpc's cleanup hook: the last use of c. */
static void
client_cleanup(void *arg)
{
	struct k8s_client *c = arg;

	client_token_free(c->token);
	free(c->token_file);
	free(c);
}

void
k8s_client_foreach_stat(const struct k8s_client *c,
    void (*fn)(const char *, long, uint64_t, void *), void *arg)
{
	if (c == NULL || c->closing)
		return;
	httpc_foreach_stat(c->h, fn, arg);
}

static void
client_token_free(char *tok)
{
	if (tok != NULL) {
		explicit_bzero(tok, strlen(tok));
		free(tok);
	}
}

/*
 * Re-reads the token file when forced (after a 401) or when the copy is a
 * minute old.  On failure the old token stays: the kubelet replaces the file
 * atomically, so a failed read is more likely ours than a revocation.
 */
static void
client_token_load(struct k8s_client *c, int force)
{
	char	 err[256];
	char	*tok;
	double	 now;

	if (c->token_file == NULL)
		return;
	now = as_mono_now();
	if (!force && now - c->token_at < K8S_TOKEN_PERIOD)
		return;
	c->token_at = now;
	if ((tok = as_read_secret(c->token_file, err, sizeof err)) == NULL) {
		log_warn("k8s", "cannot re-read the token: %s", err);
		return;
	}
	client_token_free(c->token);
	c->token = tok;
	httpc_set_bearer(c->h, c->token);
}

/* Before every attempt: the token may be a minute old. */
static void
client_prepare(struct httpc *h, void *arg)
{
	(void)h;
	client_token_load(arg, 0);
}

/* After a 401: re-read the token file and try once more, if we have one. */
static int
client_unauthorized(struct httpc *h, const char *method, const char *path,
    void *arg)
{
	struct k8s_client *c = arg;

	(void)h;
	if (c->token_file == NULL)
		return (0);
	log_info("k8s", "%s %s: 401, re-reading the token file %s", method,
	    path, c->token_file);
	client_token_load(c, 1);
	return (1);
}

#ifdef AS_TESTING
int
k8s_client_classify(int curl_ok, long code, int *retry)
{
	return (httpc_classify(curl_ok, code, retry));
}

double
k8s_client_retry_after(const char *value, time_t now)
{
	return (httpc_retry_after(value, now));
}
#endif

struct k8s_req *
k8s_client_request(struct k8s_client *c, const char *method,
    const char *path, const char *content_type, const char *body,
    k8s_done_fn *done, void *arg)
{
	struct k8s_req	*r;

	if (c == NULL || c->closing || done == NULL)
		return (NULL);
	r = xcalloc(1, sizeof *r);
	r->done = done;
	r->arg = arg;
	/* No completion can run before httpc_request returns. */
	r->hr = httpc_request(c->h, method, path, content_type, body,
	    client_req_done, r);
	if (r->hr == NULL) {
		free(r);
		return (NULL);
	}
	return (r);
}

static void *
client_sink_send(void *arg, const char *method, const char *path,
    const char *content_type, const char *body, k8s_done_fn *done, void *ctx)
{
	return (k8s_client_request(arg, method, path, content_type, body, done,
	    ctx));
}

static void
client_sink_cancel(void *arg, void *req)
{
	(void)arg;
	k8s_req_cancel(req);
}

void
k8s_client_sink(struct k8s_client *c, struct k8s_sink *s)
{
	s->send = client_sink_send;
	s->cancel = client_sink_cancel;
	s->arg = c;
}

struct k8s_req *
k8s_client_watch(struct k8s_client *c, const char *path, double idle_timeout,
    size_t max_line, k8s_line_fn *line, k8s_done_fn *done, void *arg)
{
	struct httpc_stream_options so;
	struct k8s_req	*r;

	if (c == NULL || c->closing || line == NULL || done == NULL)
		return (NULL);
	memset(&so, 0, sizeof so);
	so.idle_timeout = idle_timeout;
	so.max_line = max_line;
	r = xcalloc(1, sizeof *r);
	r->line = line;
	r->done = done;
	r->arg = arg;
	/* The token hooks of the client apply to this request too. */
	r->hr = httpc_stream(c->h, path, &so, client_line, client_req_done, r);
	if (r->hr == NULL) {
		free(r);
		return (NULL);
	}
	return (r);
}

struct ev_loop *
k8s_client_loop(const struct k8s_client *c)
{
	return (httpc_loop(c->h));
}

/* May cancel r (freeing it inside): r is not touched after the call. */
static void
client_line(const char *line, size_t len, void *arg)
{
	struct k8s_req	*r = arg;

	r->line(line, len, r->arg);
}

static void
client_req_done(const struct httpc_response *hresp, void *arg)
{
	struct k8s_req	*r = arg;
	struct k8s_response resp;

	resp.err = hresp->err;
	resp.code = hresp->code;
	resp.body = hresp->body;
	resp.body_len = hresp->body_len;
	resp.message = hresp->message;
	r->done(&resp, r->arg);
	free(r);
}

void
k8s_req_cancel(struct k8s_req *r)
{
	/* Inside its own completion this does nothing (httpc's DONE state). */
	if (r != NULL)
		httpc_req_cancel(r->hr);
}
