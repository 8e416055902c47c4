/*
 * client.c: the Kubernetes API client, a thin layer over the HTTP client
 * (scheduler/rt/httpc.c: libcurl multi on the caller's libev loop, the token
 * bucket, retries and per-attempt timeouts all live there).
 *
 * What this layer adds: where the configuration comes from (kubeconfig,
 * --apiserver, in-cluster; k8s/kubeconfig.c decides), the bearer token
 * file, exec credential plugins and Kubernetes Status objects as error
 * messages.  The token is read at start, again before an attempt when the
 * copy is a minute old (as client-go's cached file token source) and at
 * once after a 401, after which the request is tried once more.  It is
 * never logged.
 *
 * An exec plugin (k8s/execcred.c) runs once at start, blocking (bounded by
 * its timeout), so that the first requests carry credentials.  Later runs
 * go on the loop: a timer starts one shortly before the credentials
 * expire, while the old ones still work, and a 401 starts one at once and
 * holds the request queue (httpc_hold) until it is over, so the retried
 * request and the ones behind it carry the new credentials.  A failed run
 * keeps the old credentials and is tried again with backoff.
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

#include "agentscaler/rt/common.h"
#include "execcred.h"
#include "agentscaler/rt/httpc.h"
#include "agentscaler/k8s/k8s.h"
#include "kubeconfig.h"
#include "agentscaler/rt/log.h"

#define K8S_TOKEN_PERIOD	60.0	/* seconds between token re-reads */
#define K8S_EXEC_EARLY_MAX	60.0	/* refresh at most this early, s */
#define K8S_EXEC_MIN_DELAY	1.0	/* between two plugin runs, s */
#define K8S_EXEC_RETRY_CAP	30.0	/* backoff after failed runs, s */

struct k8s_client {
	struct ev_loop		*loop;
	struct httpc		*h;
	char			*token_file;
	char			*token;
	double			 token_at;	/* mono time of the last read */
	struct execcred		*ex;		/* NULL: no exec plugin */
	struct execcred_cred	 cred;		/* its current credentials */
	struct ev_timer		 ex_timer;	/* the next refresh */
	unsigned		 ex_failures;	/* runs failed in a row */
	double			 ex_failed_at;	/* mono */
	int			 holding;	/* httpc_hold while it runs */
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
static struct execcred *client_exec_new(struct ev_loop *,
		    const struct k8s_options *, char *, size_t);
static void	 client_exec_use(struct k8s_client *);
static void	 client_exec_schedule(struct k8s_client *, double);
static void	 client_exec_refresh(struct k8s_client *, int);
static void	 client_exec_timer_cb(struct ev_loop *, struct ev_timer *,
		    int);
static void	 client_exec_over(struct k8s_client *, const char *);
static void	 client_exec_done(struct execcred *, int,
		    struct execcred_cred *, const char *, void *);

struct k8s_client *
k8s_client_new(struct ev_loop *loop, const struct k8s_options *opts,
    char *err, size_t errlen)
{
	struct k8s_options o;
	struct httpc_options ho;
	struct k8s_client *c = NULL, *out = NULL;
	struct kubeconfig *kc = NULL;
	char		 buf[1024], desc[1024];

	if (loop == NULL || opts == NULL) {
		snprintf(err, errlen, "no loop or no options");
		return (NULL);
	}
	if (kubeconfig_resolve(opts, &o, &kc, buf, sizeof buf, desc,
	    sizeof desc, err, errlen) != 0)
		return (NULL);
	if (strncmp(o.apiserver, "https://", 8) != 0 &&
	    strncmp(o.apiserver, "http://", 7) != 0) {
		snprintf(err, errlen, "apiserver must be an http(s) URL");
		goto out;
	}
	log_info("k8s", "configuration: %s", desc);

	c = xcalloc(1, sizeof *c);
	c->loop = loop;
	ev_timer_init(&c->ex_timer, client_exec_timer_cb, 0., 0.);
	c->ex_timer.data = c;
	if (o.token_file != NULL) {
		c->token_file = xstrdup(o.token_file);
		if ((c->token = as_read_secret(c->token_file, err,
		    errlen)) == NULL)
			goto fail;
		c->token_at = as_mono_now();
	} else if (o.token != NULL)
		c->token = xstrdup(o.token);
	if (o.exec != NULL) {
		/* Blocking, once: the first requests need credentials. */
		if ((c->ex = client_exec_new(loop, &o, err, errlen)) == NULL ||
		    execcred_run(c->ex, &c->cred, err, errlen) != 0)
			goto fail;
	}
	memset(&ho, 0, sizeof ho);
	ho.base_url = o.apiserver;
	ho.log_name = "k8s";
	ho.ca_file = o.ca_file;
	ho.ca_data = o.ca_data;
	ho.ca_data_len = o.ca_data_len;
	ho.cert_file = o.cert_file;
	ho.key_file = o.key_file;
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
	if (o.cert_data != NULL)
		httpc_set_client_cert(c->h, o.cert_data, o.cert_data_len,
		    o.key_data, o.key_data_len);
	if (c->ex != NULL)
		client_exec_use(c);
	out = c;
	c = NULL;
	goto out;
fail:
	execcred_free(c->ex);
	execcred_cred_clear(&c->cred);
	as_secret_free(c->token, 0);
	free(c->token_file);
	free(c);
out:
	kubeconfig_free(kc);
	return (out);
}

/*
 * The runner of the exec plugin, told about the cluster the way client-go
 * does when provideClusterInfo is set (the CA as data, read from its file
 * if need be).  NULL with a reason when the CA cannot be read.
 */
static struct execcred *
client_exec_new(struct ev_loop *loop, const struct k8s_options *o, char *err,
    size_t errlen)
{
	struct execcred_cluster cl;
	struct execcred	*x;
	char		*ca = NULL;
	size_t		 calen = 0;

	memset(&cl, 0, sizeof cl);
	cl.server = o->apiserver;
	cl.insecure_skip_tls_verify = o->insecure_skip_tls_verify;
	cl.ca_data = o->ca_data;
	cl.ca_data_len = o->ca_data_len;
	if (o->exec->provide_cluster_info && o->ca_data == NULL &&
	    o->ca_file != NULL) {
		if ((ca = as_read_file(o->ca_file, 1024 * 1024, &calen, err,
		    errlen)) == NULL)
			return (NULL);
		cl.ca_data = ca;
		cl.ca_data_len = calen;
	}
	x = execcred_new(loop, o->exec, &cl, 0);
	free(ca);
	return (x);
}

/* Hands the plugin's credentials to httpc and plans the next run. */
static void
client_exec_use(struct k8s_client *c)
{
	char	 until[40] = "";
	double	 left, early;

	/* Exactly what the plugin gave: a missing one clears the old one. */
	httpc_set_bearer(c->h, c->cred.token);
	httpc_set_client_cert(c->h, c->cred.cert, c->cred.cert_len,
	    c->cred.key, c->cred.key_len);
	if (c->cred.expiry <= 0) {
		log_info("k8s", "exec plugin %s: %s without expiry (run "
		    "again after a 401)", execcred_command(c->ex),
		    c->cred.token != NULL ? "token" : "client certificate");
		return;
	}
	as_rfc3339(c->cred.expiry, 0, until, sizeof until);
	log_info("k8s", "exec plugin %s: %s valid until %s",
	    execcred_command(c->ex), c->cred.token != NULL ? "token" :
	    "client certificate", until);
	/* A tenth of the lifetime early, at most a minute. */
	left = c->cred.expiry - as_wall_now();
	early = left / 10 < K8S_EXEC_EARLY_MAX ? left / 10 :
	    K8S_EXEC_EARLY_MAX;
	client_exec_schedule(c, left - early);
}

static void
client_exec_schedule(struct k8s_client *c, double delay)
{
	if (delay < K8S_EXEC_MIN_DELAY)
		delay = K8S_EXEC_MIN_DELAY;
	ev_timer_stop(c->loop, &c->ex_timer);
	ev_timer_set(&c->ex_timer, delay, 0.);
	ev_timer_start(c->loop, &c->ex_timer);
}

static void
client_exec_timer_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	client_exec_refresh(w->data, 0);
}

/*
 * Starts a plugin run unless one is going; hold: keep every request
 * queued until it is over (after a 401).
 */
static void
client_exec_refresh(struct k8s_client *c, int hold)
{
	char	 err[512];

	if (hold && !c->holding) {
		c->holding = 1;
		httpc_hold(c->h, 1);
	}
	if (execcred_busy(c->ex))
		return;
	ev_timer_stop(c->loop, &c->ex_timer);
	if (execcred_start(c->ex, client_exec_done, c, err, sizeof err) != 0)
		client_exec_over(c, err);
}

/*
 * The end of a run, or of a start that failed (msg: the reason, NULL on
 * success): backoff after a failure, the queue released either way.
 */
static void
client_exec_over(struct k8s_client *c, const char *msg)
{
	double	 delay;

	if (msg != NULL) {
		c->ex_failures++;
		c->ex_failed_at = as_mono_now();
		delay = as_backoff(K8S_EXEC_MIN_DELAY, K8S_EXEC_RETRY_CAP,
		    c->ex_failures - 1);
		log_warn("k8s", "%s; keeping the current credentials, next "
		    "try in %.1fs", msg, delay);
		client_exec_schedule(c, delay);
	}
	if (c->holding) {
		c->holding = 0;
		httpc_hold(c->h, 0);
	}
}

static void
client_exec_done(struct execcred *x, int err, struct execcred_cred *cred,
    const char *msg, void *arg)
{
	struct k8s_client *c = arg;

	(void)x;
	if (err == 0) {
		execcred_cred_clear(&c->cred);
		c->cred = *cred;
		memset(cred, 0, sizeof *cred);
		c->ex_failures = 0;
		client_exec_use(c);
	}
	client_exec_over(c, err == 0 ? NULL : msg);
}

/* Cancels every pending request (completions run), then frees. */
void
k8s_client_free(struct k8s_client *c)
{
	if (c == NULL || c->closing)
		return;
	c->closing = 1;
	/* No plugin run or timer may outlive this call. */
	ev_timer_stop(c->loop, &c->ex_timer);
	execcred_free(c->ex);
	c->ex = NULL;
	httpc_free(c->h);	/* client_cleanup frees c, now or later */
}

/* httpc's cleanup hook: the last use of c. */
static void
client_cleanup(void *arg)
{
	struct k8s_client *c = arg;

	execcred_cred_clear(&c->cred);
	as_secret_free(c->token, 0);
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

void
k8s_client_foreach_latency(const struct k8s_client *c,
    void (*fn)(const char *, const struct prom_hist *, void *), void *arg)
{
	if (c == NULL || c->closing)
		return;
	httpc_foreach_latency(c->h, fn, arg);
}

const struct prom_hist *
k8s_client_limiter_wait(const struct k8s_client *c)
{
	if (c == NULL || c->closing)
		return (NULL);
	return (httpc_limiter_wait(c->h));
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
	as_secret_free(c->token, 0);
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
	if (c->ex != NULL) {
		/* A plugin that just failed is not run again at once. */
		if (!execcred_busy(c->ex) && c->ex_failures > 0 &&
		    as_mono_now() - c->ex_failed_at < K8S_EXEC_MIN_DELAY)
			return (0);
		if (execcred_busy(c->ex))
			log_debug("k8s", "%s %s: 401, waiting for the exec "
			    "plugin", method, path);
		else
			log_info("k8s", "%s %s: 401, running the exec plugin "
			    "%s again", method, path, execcred_command(c->ex));
		client_exec_refresh(c, 1);
		return (1);
	}
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
