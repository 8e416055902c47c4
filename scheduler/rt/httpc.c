/*
 * httpc.c: an HTTP client on the caller's libev loop, libcurl multi inside.
 * It was the core of the Kubernetes client (k8s/client.c, now a thin layer
 * on top that adds the bearer token file and Status messages); the RabbitMQ
 * management source uses it with basic authentication.
 *
 * Design.  One CURLM per client keeps the keep-alive connections.  The
 * structure follows curl's docs/examples/evhiperfifo.c: curl tells us which
 * sockets to watch (httpc_sock_cb; one struct httpc_sock with an embedded
 * ev_io each) and when to wake it (httpc_timer_cb; one ev_timer), and each
 * watcher calls curl_multi_socket_action and then collects finished
 * transfers.  Unlike the example we divide timeouts by 1000.0, use the
 * CURL_CSELECT_* names and never exit().  curl is never called from inside
 * its own callbacks.
 *
 * A request (struct httpc_req) lives from httpc_request until its
 * completion has run, and is in exactly one state:
 *
 *	QUEUED		in the FIFO of the token bucket, waiting for a token
 *	RUNNING		an attempt is in the multi handle
 *	SLEEPING	its own ev_timer runs: a backoff, a Retry-After, or a
 *			zero-delay timer that delivers an early failure
 *	DONE		the completion is running or has run
 *
 * Every attempt, retries included, takes one token from the single bucket
 * (qps, burst); when the bucket is empty one ev_timer wakes the queue when
 * the next token is due.  Each attempt gets a fresh easy handle (with the
 * credentials of that moment: the prepare hook may have changed them);
 * connections are reused through the multi handle regardless.  libcurl 7.88
 * has no curl_multi_get_handles, so every pending request is also on
 * c->reqs; free and cancel walk that list.
 *
 * Streams.  httpc_stream() is a request with no total timeout and no
 * retries whose 2xx body is split into lines.  curl's write callback only
 * appends to the request's buffer (checking the line bound, restarting the
 * idle timer, which is the request's own ev_timer, free while RUNNING) and
 * puts the request on c->ready; after curl_multi_socket_action has
 * returned, httpc_deliver hands the complete lines over, before any
 * completion of the same turn.  So a line callback never runs inside curl
 * and may cancel its request: the completion runs inside the cancel, and
 * the request itself is freed once the delivery loop lets go of it
 * (r->delivering).
 *
 * Outages.  An attempt that got no HTTP response at all (refused, reset,
 * timed out, no route) marks the server unreachable; the first such
 * attempt logs one warning, the first response after it (any status) one
 * info line with how long it lasted.  Retries are logged at debug only, so
 * an outage of any length under any load is two lines, not one per retry.
 *
 * Reentrancy.  Completions run from our watchers, and may start requests,
 * cancel others or free the client.  Every watcher callback brackets its
 * work with c->depth; httpc_free inside a completion cancels all requests
 * at once but leaves the final teardown to the outermost callback, after
 * curl has returned (the in-callback flag hiredis's async.c uses).
 */
#include <sys/queue.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/httpc.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/rt/prom.h"

#define HTTPC_BODY_MAX		(64 * 1024 * 1024)
#define HTTPC_RETRY_AFTER_MAX	300.0	/* the longest Retry-After we wait */
#define HTTPC_CONNECT_TIMEOUT	5.0	/* at most, per attempt */
#define HTTPC_TIMEOUT_MAX	3600.0	/* keeps milliseconds in a long */
#define HTTPC_TOKEN_SLACK	1e-9
#define HTTPC_MSG_RAW		200	/* body bytes in a default message */
#define HTTPC_LINE_MAX		(16 * 1024 * 1024)

#define HTTPC_CONTAINER(p, type, member)				\
	((type *)(void *)((char *)(p) - offsetof(type, member)))

enum httpc_req_state {
	HTTPC_REQ_QUEUED,
	HTTPC_REQ_RUNNING,
	HTTPC_REQ_SLEEPING,
	HTTPC_REQ_DONE
};

/* One socket curl asked us to watch. */
struct httpc_sock {
	struct ev_io		 io;
	struct httpc		*client;
	LIST_ENTRY(httpc_sock)	 entry;
};

/* One (verb, code) attempt counter. */
struct httpc_stat {
	char			 verb[16];
	long			 code;
	uint64_t		 count;
};

/* The durations of one verb's attempts, the limiter's wait included. */
struct httpc_lat {
	char			 verb[16];
	struct prom_hist	 h;
};

/*
 * Buckets of the attempt durations and of the limiter's wait, those of
 * client-go's rest_client_request_duration_seconds and
 * rest_client_rate_limiter_duration_seconds (k8s.io/client-go
 * tools/metrics), up to a minute.
 */
static const double httpc_took_bounds[] = { 0.005, 0.025, 0.1, 0.25, 0.5,
    1, 2, 4, 8, 15, 30, 60 };

struct httpc_req {
	struct httpc		*client;
	enum httpc_req_state	 state;
	TAILQ_ENTRY(httpc_req)	 entry;		/* on c->reqs while pending */
	TAILQ_ENTRY(httpc_req)	 wait;		/* on c->waitq while QUEUED */
	struct ev_timer		 timer;		/* SLEEPING */
	int			 fail_on_wake;	/* the timer delivers err */
	double			 queued_at;	/* mono: this attempt queued */

	char			*method;
	char			*path;
	char			*url;
	char			*content_type;
	char			*body;
	size_t			 body_len;
	httpc_done_fn		*done;
	void			*arg;

	char			**xheaders;	/* "Name: value", NULL-ended */
	double			 timeout;	/* 0: the client's */
	int			 no_retry;	/* the caller retries */
	int			 own_base;	/* another server than c's */

	unsigned		 attempts;	/* finished, 401 retry not */
	int			 auth_retried;
	unsigned		 cred_gen;	/* of the attempt's credentials */
	CURL			*easy;
	struct curl_slist	*headers;
	char			 errbuf[CURL_ERROR_SIZE];

	char			*resp;		/* the last attempt's body */
	size_t			 resp_len;
	size_t			 resp_cap;
	int			 resp_too_big;

	int			 err;
	long			 code;
	char			 msg[512];

	/* Streams only. */
	int			 stream;
	httpc_line_fn		*line;
	double			 idle_timeout;
	size_t			 max_line;
	long			 stream_code;	/* the status, once known */
	char			*sbuf;		/* lines not yet delivered */
	size_t			 slen;
	size_t			 scap;
	size_t			 sline;		/* bytes since the last \n */
	int			 line_too_long;
	int			 on_ready;
	TAILQ_ENTRY(httpc_req)	 ready;		/* on c->ready */
	int			 delivering;	/* httpc_deliver holds it */
};

struct httpc {
	struct ev_loop		*loop;
	CURLM			*multi;
	struct ev_timer		 curl_timer;
	struct ev_timer		 rl_timer;

	char			*base_url;
	char			*log_name;
	char			*ca_file;
	char			*ca_data;
	size_t			 ca_data_len;
	char			*cert_file;
	char			*key_file;
	char			*cert_blob;
	size_t			 cert_blob_len;
	char			*key_blob;
	size_t			 key_blob_len;
	char			*bearer;
	char			*user;
	char			*password;
	unsigned		 cred_gen;	/* bumped by httpc_set_* */
	int			 held;		/* httpc_hold */
	int			 insecure;
	double			 qps;
	int			 burst;
	double			 timeout;
	double			 connect_timeout;
	int			 max_retries;
	double			 retry_base;
	double			 retry_cap;
	size_t			 max_body;
	char			 user_agent[128];

	httpc_message_fn	*message;
	httpc_prepare_fn	*prepare;
	httpc_unauthorized_fn	*unauthorized;
	void			(*cleanup)(void *);
	void			*arg;

	double			 tokens;	/* the bucket */
	double			 tokens_at;

	TAILQ_HEAD(, httpc_req)	 reqs;
	TAILQ_HEAD(, httpc_req)	 waitq;
	TAILQ_HEAD(, httpc_req)	 ready;		/* streams with lines */
	LIST_HEAD(, httpc_sock)	 socks;

	struct httpc_stat	*stats;
	size_t			 nstats;
	struct httpc_lat	*lat;
	size_t			 nlat;
	struct prom_hist	 wait;		/* queued to started */

	unsigned		 depth;		/* watcher callbacks running */
	int			 closing;

	int			 unreachable;	/* no response since ... */
	double			 unreachable_at;	/* mono: ... this */
	uint64_t		 unreachable_tries;
};

static int	 httpc_sock_cb(CURL *, curl_socket_t, int, void *, void *);
static int	 httpc_timer_cb(CURLM *, long, void *);
static void	 httpc_io_cb(struct ev_loop *, struct ev_io *, int);
static void	 httpc_curl_timer_cb(struct ev_loop *, struct ev_timer *, int);
static void	 httpc_rl_timer_cb(struct ev_loop *, struct ev_timer *, int);
static void	 httpc_check_done(struct httpc *);
static void	 httpc_deliver(struct httpc *);
static void	 httpc_leave(struct httpc *);
static void	 httpc_destroy(struct httpc *);
static void	 httpc_pump(struct httpc *);
static void	 httpc_count(struct httpc *, const struct httpc_req *, long);
static void	 httpc_reach(struct httpc *, int, const char *);
static void	 httpc_default_message(long, const char *, size_t, char *,
		    size_t);
static size_t	 req_write_cb(char *, size_t, size_t, void *);
static size_t	 req_stream_write(struct httpc_req *, const char *, size_t);
static void	 req_deliver(struct httpc_req *);
static void	 req_idle(struct httpc_req *);
static struct httpc_req *req_new(struct httpc *, const char *, const char *,
		    const char *, const char *, httpc_done_fn *, void *);
static void	 req_free(struct httpc_req *);
static void	 req_enqueue(struct httpc_req *);
static void	 req_start(struct httpc_req *);
static int	 req_setup(struct httpc_req *);
static void	 req_attempt_done(struct httpc_req *, CURLcode);
static void	 req_transport_message(struct httpc_req *, CURLcode, long);
static void	 req_detach(struct httpc_req *);
static void	 req_sleep(struct httpc_req *, double);
static void	 req_fail_later(struct httpc_req *, int, const char *);
static void	 req_timer_cb(struct ev_loop *, struct ev_timer *, int);
static void	 req_complete(struct httpc_req *);
static void	 req_cancel(struct httpc_req *);

/* A copy of len bytes, NUL-terminated, or NULL for NULL. */
static char *
httpc_blob_dup(const char *p, size_t len)
{
	char	*out;

	if (p == NULL)
		return (NULL);
	out = xmalloc(len + 1);
	memcpy(out, p, len);
	out[len] = '\0';
	return (out);
}

struct httpc *
httpc_new(struct ev_loop *loop, const struct httpc_options *o, char *err,
    size_t errlen)
{
	struct httpc	*c = NULL, *out = NULL;
	size_t		 len;
	int		 global = 0;

	if (loop == NULL || o == NULL || o->base_url == NULL) {
		snprintf(err, errlen, "no loop, no options or no base URL");
		return (NULL);
	}
	if (strncmp(o->base_url, "https://", 8) != 0 &&
	    strncmp(o->base_url, "http://", 7) != 0) {
		snprintf(err, errlen, "the base URL must be an http(s) URL");
		return (NULL);
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init failed");
		return (NULL);
	}
	global = 1;

	c = xcalloc(1, sizeof *c);
	c->loop = loop;
	TAILQ_INIT(&c->reqs);
	TAILQ_INIT(&c->waitq);
	TAILQ_INIT(&c->ready);
	LIST_INIT(&c->socks);
	ev_timer_init(&c->curl_timer, httpc_curl_timer_cb, 0., 0.);
	ev_timer_init(&c->rl_timer, httpc_rl_timer_cb, 0., 0.);
	c->curl_timer.data = c;
	c->rl_timer.data = c;

	c->base_url = xstrdup(o->base_url);
	len = strlen(c->base_url);
	while (len > 0 && c->base_url[len - 1] == '/')
		c->base_url[--len] = '\0';
	c->log_name = xstrdup(o->log_name != NULL ? o->log_name : "http");
	if (o->ca_file != NULL)
		c->ca_file = xstrdup(o->ca_file);
	c->ca_data = httpc_blob_dup(o->ca_data, o->ca_data_len);
	c->ca_data_len = o->ca_data_len;
	if (o->cert_file != NULL)
		c->cert_file = xstrdup(o->cert_file);
	if (o->key_file != NULL)
		c->key_file = xstrdup(o->key_file);
	c->insecure = o->insecure_skip_verify;
	c->qps = o->qps > 0 ? o->qps : 20;
	c->burst = o->burst > 0 ? o->burst : 30;
	c->timeout = o->timeout > 0 ? o->timeout : 10;
	if (c->timeout > HTTPC_TIMEOUT_MAX)
		c->timeout = HTTPC_TIMEOUT_MAX;
	c->connect_timeout = o->connect_timeout > 0 ? o->connect_timeout :
	    HTTPC_CONNECT_TIMEOUT;
	if (c->connect_timeout > c->timeout)
		c->connect_timeout = c->timeout;
	c->max_retries = o->max_retries > 0 ? o->max_retries :
	    (o->max_retries < 0 ? 0 : 5);
	c->retry_base = o->retry_base > 0 ? o->retry_base : 0.1;
	c->retry_cap = o->retry_cap > 0 ? o->retry_cap : 5;
	if (c->retry_cap < c->retry_base)
		c->retry_cap = c->retry_base;
	c->max_body = o->max_body > 0 ? o->max_body : HTTPC_BODY_MAX;
	c->message = o->message != NULL ? o->message : httpc_default_message;
	c->prepare = o->prepare;
	c->unauthorized = o->unauthorized;
	c->arg = o->arg;
	c->tokens = c->burst;
	c->tokens_at = as_mono_now();
	prom_hist_init(&c->wait, httpc_took_bounds,
	    AS_ARRAY_SIZE(httpc_took_bounds));
	snprintf(c->user_agent, sizeof c->user_agent, "agentscaler/%s",
	    as_version);

	if ((c->multi = curl_multi_init()) == NULL) {
		snprintf(err, errlen, "curl_multi_init failed");
		goto out;
	}
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, httpc_sock_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, httpc_timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);

	if (c->insecure)
		log_warn(c->log_name, "TLS verification of %s is disabled "
		    "(insecure_skip_tls_verify)", c->base_url);
	/* Only a client that exists owns the cleanup hook. */
	c->cleanup = o->cleanup;
	out = c;
	c = NULL;
	global = 0;
out:
	if (c != NULL) {
		if (c->multi != NULL)
			curl_multi_cleanup(c->multi);
		free(c->base_url);
		free(c->log_name);
		free(c->ca_file);
		free(c->ca_data);
		free(c->cert_file);
		free(c->key_file);
		free(c);
	}
	if (global)
		curl_global_cleanup();
	return (out);
}

void
httpc_free(struct httpc *c)
{
	struct httpc_req *r;

	if (c == NULL || c->closing)
		return;
	c->closing = 1;
	c->depth++;
	while ((r = TAILQ_FIRST(&c->reqs)) != NULL)
		req_cancel(r);
	httpc_leave(c);
}

/* The end of every entry from the loop: tears down a client freed inside. */
static void
httpc_leave(struct httpc *c)
{
	if (--c->depth == 0 && c->closing)
		httpc_destroy(c);
}

static void
httpc_destroy(struct httpc *c)
{
	struct httpc_sock *sk;
	void		(*cleanup)(void *) = c->cleanup;
	void		*arg = c->arg;

	ev_timer_stop(c->loop, &c->curl_timer);
	ev_timer_stop(c->loop, &c->rl_timer);
	/* Closes the cached connections; may call httpc_sock_cb. */
	curl_multi_cleanup(c->multi);
	ev_timer_stop(c->loop, &c->curl_timer);
	while ((sk = LIST_FIRST(&c->socks)) != NULL) {
		ev_io_stop(c->loop, &sk->io);
		LIST_REMOVE(sk, entry);
		free(sk);
	}
	as_secret_free(c->bearer, 0);
	as_secret_free(c->password, 0);
	as_secret_free(c->key_blob, c->key_blob_len);
	free(c->cert_blob);
	free(c->user);
	free(c->stats);
	free(c->lat);
	free(c->base_url);
	free(c->log_name);
	free(c->ca_file);
	free(c->ca_data);
	free(c->cert_file);
	free(c->key_file);
	free(c);
	curl_global_cleanup();
	if (cleanup != NULL)
		cleanup(arg);
}

void
httpc_set_bearer(struct httpc *c, const char *token)
{
	/* The same token again (a re-read file) is not a new credential. */
	if (token == NULL ? c->bearer == NULL :
	    c->bearer != NULL && strcmp(token, c->bearer) == 0)
		return;
	as_secret_free(c->bearer, 0);
	c->bearer = token != NULL ? xstrdup(token) : NULL;
	c->cred_gen++;
}

void
httpc_set_basic(struct httpc *c, const char *user, const char *password)
{
	if (user != NULL && c->user != NULL && strcmp(user, c->user) == 0 &&
	    strcmp(password != NULL ? password : "", c->password) == 0)
		return;
	free(c->user);
	as_secret_free(c->password, 0);
	c->user = user != NULL ? xstrdup(user) : NULL;
	c->password = user != NULL ? xstrdup(password != NULL ? password :
	    "") : NULL;
	c->cred_gen++;
}

void
httpc_set_client_cert(struct httpc *c, const char *cert, size_t cert_len,
    const char *key, size_t key_len)
{
	if (cert == NULL ? c->cert_blob == NULL : c->cert_blob != NULL &&
	    cert_len == c->cert_blob_len && key_len == c->key_blob_len &&
	    memcmp(cert, c->cert_blob, cert_len) == 0 && key != NULL &&
	    memcmp(key, c->key_blob, key_len) == 0)
		return;
	free(c->cert_blob);
	as_secret_free(c->key_blob, c->key_blob_len);
	c->cert_blob = c->key_blob = NULL;
	c->cert_blob_len = c->key_blob_len = 0;
	if (cert != NULL) {
		c->cert_blob = httpc_blob_dup(cert, cert_len);
		c->cert_blob_len = cert_len;
		c->key_blob = httpc_blob_dup(key != NULL ? key : "",
		    key != NULL ? key_len : 0);
		c->key_blob_len = key != NULL ? key_len : 0;
	}
	c->cred_gen++;
}

void
httpc_hold(struct httpc *c, int on)
{
	if (c->closing || c->held == !!on)
		return;
	c->held = !!on;
	if (!c->held)
		httpc_pump(c);
}

const char *
httpc_base_url(const struct httpc *c)
{
	return (c->base_url);
}

struct ev_loop *
httpc_loop(const struct httpc *c)
{
	return (c->loop);
}

void
httpc_foreach_stat(const struct httpc *c,
    void (*fn)(const char *, long, uint64_t, void *), void *arg)
{
	size_t	 i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nstats; i++)
		fn(c->stats[i].verb, c->stats[i].code, c->stats[i].count, arg);
}

void
httpc_foreach_latency(const struct httpc *c,
    void (*fn)(const char *, const struct prom_hist *, void *), void *arg)
{
	size_t	 i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nlat; i++)
		fn(c->lat[i].verb, &c->lat[i].h, arg);
}

const struct prom_hist *
httpc_limiter_wait(const struct httpc *c)
{
	return (&c->wait);
}

/*
 * Counts the end of r's attempt under (verb, code), and for a request that
 * is not a stream its duration from the queue (the limiter's wait in).
 */
static void
httpc_count(struct httpc *c, const struct httpc_req *r, long code)
{
	const char	*verb = r->method;
	size_t		 i;

	if (!r->stream) {
		for (i = 0; i < c->nlat &&
		    strcmp(c->lat[i].verb, verb) != 0; i++)
			;
		if (i == c->nlat) {
			c->lat = xrealloc(c->lat, (c->nlat + 1) *
			    sizeof *c->lat);
			as_strlcpy(c->lat[i].verb, verb, sizeof c->lat[i].verb);
			prom_hist_init(&c->lat[i].h, httpc_took_bounds,
			    AS_ARRAY_SIZE(httpc_took_bounds));
			c->nlat++;
		}
		prom_hist_add(&c->lat[i].h, as_mono_now() - r->queued_at);
	}
	for (i = 0; i < c->nstats; i++) {
		if (c->stats[i].code == code &&
		    strcmp(c->stats[i].verb, verb) == 0) {
			c->stats[i].count++;
			return;
		}
	}
	c->stats = xrealloc(c->stats, (c->nstats + 1) * sizeof *c->stats);
	as_strlcpy(c->stats[c->nstats].verb, verb,
	    sizeof c->stats[c->nstats].verb);
	c->stats[c->nstats].code = code;
	c->stats[c->nstats].count = 1;
	c->nstats++;
}

/*
 * The message of an error response when the caller has no parser of its
 * own: "<code>: <body>", the body cut to HTTPC_MSG_RAW bytes and made
 * printable on one line.
 */
static void
httpc_default_message(long code, const char *body, size_t len, char *out,
    size_t outlen)
{
	char		 text[HTTPC_MSG_RAW + 1];
	size_t		 i, n = 0;
	unsigned char	 ch;

	if (body == NULL)
		len = 0;
	for (i = 0; i < len && n < HTTPC_MSG_RAW; i++) {
		ch = (unsigned char)body[i];
		if (ch < 0x20 || ch >= 0x7f)
			ch = ' ';
		if (ch == ' ' && (n == 0 || text[n - 1] == ' '))
			continue;
		text[n++] = (char)ch;
	}
	while (n > 0 && text[n - 1] == ' ')
		n--;
	text[n] = '\0';
	snprintf(out, outlen, "%ld: %s", code, n > 0 ? text : "empty body");
}

int
httpc_classify(int curl_ok, long code, int *retry)
{
	*retry = 0;
	if (!curl_ok) {
		*retry = 1;
		return (-AS_ECONN);
	}
	if (code >= 200 && code < 300)
		return (0);
	switch (code) {
	case 400:
	case 422:
		return (-AS_EINVAL);
	case 401:
		return (-AS_EAUTH);
	case 403:
		return (-AS_EFORBIDDEN);
	case 404:
		return (-AS_ENOTFOUND);
	case 409:
		return (-AS_ECONFLICT);
	case 429:
		*retry = 1;
		return (-AS_ETHROTTLED);
	}
	if (code >= 500 && code < 600) {
		*retry = 1;
		return (-AS_ESERVER);
	}
	return (-AS_EPROTO);
}

double
httpc_retry_after(const char *value, time_t now)
{
	const char	*p;
	double		 secs = 0;
	time_t		 t;

	if (value == NULL)
		return (-1);
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value == '\0')
		return (-1);
	for (p = value; *p >= '0' && *p <= '9'; p++) {
		if (secs < 1e9)
			secs = secs * 10 + (*p - '0');
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (p != value && *p == '\0')
		return (secs);
	if ((t = curl_getdate(value, NULL)) == -1)
		return (-1);
	return (t > now ? (double)(t - now) : 0);
}

/* CURLMOPT_SOCKETFUNCTION: only (re)arms watchers, never calls curl. */
static int
httpc_sock_cb(CURL *easy, curl_socket_t s, int what, void *userp,
    void *sockp)
{
	struct httpc	*c = userp;
	struct httpc_sock *sk = sockp;
	int		 events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (sk != NULL) {
			ev_io_stop(c->loop, &sk->io);
			LIST_REMOVE(sk, entry);
			free(sk);
		}
		return (0);
	}
	if (sk == NULL) {
		sk = xcalloc(1, sizeof *sk);
		sk->client = c;
		LIST_INSERT_HEAD(&c->socks, sk, entry);
		curl_multi_assign(c->multi, s, sk);
	} else
		ev_io_stop(c->loop, &sk->io);
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	/* Set even for a known fd: the number may belong to a new socket. */
	ev_io_init(&sk->io, httpc_io_cb, s, events);
	ev_io_start(c->loop, &sk->io);
	return (0);
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer, 0 arms a zero-delay one. */
static int
httpc_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct httpc	*c = userp;

	(void)multi;
	ev_timer_stop(c->loop, &c->curl_timer);
	if (timeout_ms >= 0) {
		ev_timer_set(&c->curl_timer, (double)timeout_ms / 1000.0, 0.);
		ev_timer_start(c->loop, &c->curl_timer);
	}
	return (0);
}

static void
httpc_io_cb(struct ev_loop *loop, struct ev_io *w, int revents)
{
	struct httpc_sock *sk = HTTPC_CONTAINER(w, struct httpc_sock, io);
	struct httpc	*c = sk->client;
	int		 mask = 0, running, fd = w->fd;

	(void)loop;
	if (revents & EV_READ)
		mask |= CURL_CSELECT_IN;
	if (revents & EV_WRITE)
		mask |= CURL_CSELECT_OUT;
	if (revents & EV_ERROR)
		mask |= CURL_CSELECT_ERR;
	c->depth++;
	/* May free sk (CURL_POLL_REMOVE): use only fd from here on. */
	curl_multi_socket_action(c->multi, fd, mask, &running);
	httpc_deliver(c);
	httpc_check_done(c);
	httpc_leave(c);
}

static void
httpc_curl_timer_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	struct httpc	*c = w->data;
	int		 running;

	(void)loop;
	(void)revents;
	c->depth++;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	httpc_deliver(c);
	httpc_check_done(c);
	httpc_leave(c);
}

/* Collects finished transfers; stops early when a completion frees c. */
static void
httpc_check_done(struct httpc *c)
{
	struct httpc_req *r;
	CURLMsg		*m;
	CURLcode	 res;
	CURL		*easy;
	char		*priv;
	int		 left;

	while (!c->closing &&
	    (m = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		easy = m->easy_handle;
		res = m->data.result;
		priv = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		if ((r = (struct httpc_req *)(void *)priv) == NULL)
			continue;
		req_attempt_done(r, res);
	}
}

/*
 * Hands the complete lines of every stream that received some to their
 * line callbacks, outside curl; stops early when a callback frees c.
 */
static void
httpc_deliver(struct httpc *c)
{
	struct httpc_req *r;

	while (!c->closing && (r = TAILQ_FIRST(&c->ready)) != NULL) {
		TAILQ_REMOVE(&c->ready, r, ready);
		r->on_ready = 0;
		req_deliver(r);
	}
}

static void
httpc_rl_timer_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	struct httpc	*c = w->data;

	(void)loop;
	(void)revents;
	c->depth++;
	httpc_pump(c);
	httpc_leave(c);
}

/*
 * The token bucket: refills at qps up to burst, starts queued attempts in
 * FIFO order while tokens last, and otherwise sleeps until the next one.
 */
static void
httpc_pump(struct httpc *c)
{
	struct httpc_req *r;
	double		 now, delay;

	if (c->held)
		return;		/* httpc_hold(c, 0) pumps again */
	now = as_mono_now();
	c->tokens += (now - c->tokens_at) * c->qps;
	if (c->tokens > c->burst)
		c->tokens = c->burst;
	c->tokens_at = now;
	while ((r = TAILQ_FIRST(&c->waitq)) != NULL &&
	    c->tokens >= 1.0 - HTTPC_TOKEN_SLACK) {
		c->tokens -= 1.0;
		TAILQ_REMOVE(&c->waitq, r, wait);
		prom_hist_add(&c->wait, now - r->queued_at);
		req_start(r);
	}
	if (TAILQ_EMPTY(&c->waitq) || ev_is_active(&c->rl_timer))
		return;
	delay = (1.0 - c->tokens) / c->qps;
	ev_timer_set(&c->rl_timer, delay > 0 ? delay : 0., 0.);
	ev_timer_start(c->loop, &c->rl_timer);
}

struct httpc_req *
httpc_request(struct httpc *c, const char *method, const char *path,
    const char *content_type, const char *body, httpc_done_fn *done,
    void *arg)
{
	struct httpc_req *r;

	if ((r = req_new(c, method, path, content_type, body, done,
	    arg)) == NULL)
		return (NULL);
	/* Starting is safe here: no completion can run before we return. */
	req_enqueue(r);
	return (r);
}

/* A header line the caller gives: "Name: value", no CR, LF or NUL. */
static int
header_ok(const char *h)
{
	const char	*colon = strchr(h, ':');

	return (colon != NULL && colon != h && strpbrk(h, "\r\n") == NULL);
}

struct httpc_req *
httpc_request_ex(struct httpc *c, const char *method, const char *path,
    const struct httpc_req_options *o, const char *body, httpc_done_fn *done,
    void *arg)
{
	struct httpc_req *r;
	size_t		 i, n = 0;
	char		*url;

	if (o != NULL && o->headers != NULL)
		for (; o->headers[n] != NULL; n++)
			if (!header_ok(o->headers[n]))
				return (NULL);
	if (o != NULL && (o->timeout < 0 || o->timeout > HTTPC_TIMEOUT_MAX))
		return (NULL);
	if ((r = req_new(c, method, path, o != NULL ? o->content_type : NULL,
	    body, done, arg)) == NULL)
		return (NULL);
	if (o != NULL && o->base_url != NULL) {
		url = xasprintf("%s%s", o->base_url, path);
		free(r->url);
		r->url = url;
		r->own_base = 1;
	}
	if (n > 0) {
		r->xheaders = xcalloc(n + 1, sizeof *r->xheaders);
		for (i = 0; i < n; i++)
			r->xheaders[i] = xstrdup(o->headers[i]);
	}
	if (o != NULL) {
		r->timeout = o->timeout;
		r->no_retry = o->no_retry;
	}
	req_enqueue(r);
	return (r);
}

struct httpc_req *
httpc_stream(struct httpc *c, const char *path,
    const struct httpc_stream_options *o, httpc_line_fn *line,
    httpc_done_fn *done, void *arg)
{
	struct httpc_req *r;

	if (line == NULL || (o != NULL && o->idle_timeout < 0))
		return (NULL);
	if ((r = req_new(c, "GET", path, NULL, NULL, done, arg)) == NULL)
		return (NULL);
	r->stream = 1;
	r->line = line;
	r->idle_timeout = o != NULL ? o->idle_timeout : 0;
	r->max_line = o != NULL && o->max_line > 0 ? o->max_line :
	    HTTPC_LINE_MAX;
	req_enqueue(r);
	return (r);
}

/* Checks the arguments and makes a request that is on c->reqs, or NULL. */
static struct httpc_req *
req_new(struct httpc *c, const char *method, const char *path,
    const char *content_type, const char *body, httpc_done_fn *done,
    void *arg)
{
	struct httpc_req *r;
	const char	*p;

	if (c == NULL || c->closing || method == NULL || path == NULL ||
	    done == NULL || path[0] != '/')
		return (NULL);
	if (*method == '\0' || strlen(method) >= sizeof c->stats->verb)
		return (NULL);
	for (p = method; *p != '\0'; p++)
		if (*p < 'A' || *p > 'Z')
			return (NULL);
	/* No spaces or control characters: they would split the request. */
	for (p = path; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return (NULL);
	if (content_type != NULL && strpbrk(content_type, "\r\n") != NULL)
		return (NULL);

	r = xcalloc(1, sizeof *r);
	r->client = c;
	r->method = xstrdup(method);
	r->path = xstrdup(path);
	r->url = xasprintf("%s%s", c->base_url, path);
	if (body != NULL) {
		r->body = xstrdup(body);
		r->body_len = strlen(body);
		r->content_type = xstrdup(content_type != NULL ? content_type :
		    "application/json");
	}
	r->done = done;
	r->arg = arg;
	ev_timer_init(&r->timer, req_timer_cb, 0., 0.);
	TAILQ_INSERT_TAIL(&c->reqs, r, entry);
	return (r);
}

void
httpc_req_cancel(struct httpc_req *r)
{
	struct httpc	*c;

	if (r == NULL || r->state == HTTPC_REQ_DONE)
		return;
	c = r->client;
	c->depth++;
	req_cancel(r);
	httpc_leave(c);
}

static void
req_enqueue(struct httpc_req *r)
{
	r->state = HTTPC_REQ_QUEUED;
	r->queued_at = as_mono_now();
	TAILQ_INSERT_TAIL(&r->client->waitq, r, wait);
	httpc_pump(r->client);
}

static size_t
req_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct httpc_req *r = arg;
	size_t		 n = size * nmemb;

	if (r->stream) {
		/* Any byte, even of an error body, shows the peer is alive. */
		if (r->idle_timeout > 0)
			ev_timer_again(r->client->loop, &r->timer);
		if (r->stream_code == 0)
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE,
			    &r->stream_code);
		if (r->stream_code >= 200 && r->stream_code < 300)
			return (req_stream_write(r, ptr, n));
	}
	if (n > r->client->max_body - r->resp_len) {
		r->resp_too_big = 1;
		return (0);	/* CURLE_WRITE_ERROR ends the transfer */
	}
	/*
	 * Doubling: a LIST of many MiB comes in 16 KiB pieces.  Not realloc:
	 * a body may hold a Secret, and the old block is wiped before it goes
	 * back to the allocator (as every body is when the request ends).
	 */
	if (r->resp_len + n + 1 > r->resp_cap) {
		size_t	 cap = r->resp_cap * 2 > r->resp_len + n + 1 ?
		    r->resp_cap * 2 : r->resp_len + n + 1;
		char	*p = xmalloc(cap);

		if (r->resp_len > 0)
			memcpy(p, r->resp, r->resp_len);
		as_secret_free(r->resp, r->resp_cap);
		r->resp = p;
		r->resp_cap = cap;
	}
	memcpy(r->resp + r->resp_len, ptr, n);
	r->resp_len += n;
	r->resp[r->resp_len] = '\0';
	return (n);
}

/*
 * Inside curl: appends a 2xx stream's bytes for httpc_deliver, checking
 * that no line grows beyond max_line.  Such a line ends the transfer (a
 * write error), and only the lines before it are kept.
 */
static size_t
req_stream_write(struct httpc_req *r, const char *ptr, size_t n)
{
	const char	*p = ptr, *end = ptr + n, *nl;
	size_t		 keep = n, need;

	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		r->sline += (size_t)(nl - p);
		if (r->sline > r->max_line)
			break;
		r->sline = 0;
		p = nl + 1;
	}
	if (nl == NULL)
		r->sline += (size_t)(end - p);
	if (r->sline > r->max_line) {
		r->line_too_long = 1;
		keep = (size_t)(p - ptr);
	}
	if (keep > 0) {
		need = r->slen + keep + 1;
		if (need > r->scap) {
			r->scap = r->scap * 2 > need ? r->scap * 2 : need;
			r->sbuf = xrealloc(r->sbuf, r->scap);
		}
		memcpy(r->sbuf + r->slen, ptr, keep);
		r->slen += keep;
		if (p != ptr && !r->on_ready) {
			TAILQ_INSERT_TAIL(&r->client->ready, r, ready);
			r->on_ready = 1;
		}
	}
	return (r->line_too_long ? 0 : n);
}

/*
 * Outside curl: calls the line callback for each complete line.  The
 * callback may cancel r (the completion then runs inside it, and r is
 * freed here) or free the client.
 */
static void
req_deliver(struct httpc_req *r)
{
	struct httpc	*c = r->client;
	char		*line, *nl;
	size_t		 off = 0, len;

	r->delivering = 1;
	while (r->state == HTTPC_REQ_RUNNING && !c->closing &&
	    off < r->slen &&
	    (nl = memchr(r->sbuf + off, '\n', r->slen - off)) != NULL) {
		line = r->sbuf + off;
		len = (size_t)(nl - line);
		off += len + 1;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		line[len] = '\0';
		if (len > 0)
			r->line(line, len, r->arg);
	}
	r->delivering = 0;
	if (r->state == HTTPC_REQ_DONE) {
		req_free(r);
		return;
	}
	memmove(r->sbuf, r->sbuf + off, r->slen - off);
	r->slen -= off;
}

/* Builds the easy handle of one attempt.  Returns 0 or -AS_ENOMEM. */
static int
req_setup(struct httpc_req *r)
{
	struct httpc	*c = r->client;
	struct curl_slist *h;
	CURL		*e;
	char		*line;
	size_t		 i;

	if ((e = curl_easy_init()) == NULL)
		return (-AS_ENOMEM);
	r->easy = e;
	r->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, req_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	/* A stream (a watch) lives for minutes: only idle_timeout ends it. */
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->stream ? 0L :
	    (long)((r->timeout > 0 ? r->timeout : c->timeout) * 1000));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(c->connect_timeout * 1000));
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	if (c->ca_data != NULL) {
		struct curl_blob blob = { c->ca_data, c->ca_data_len,
		    CURL_BLOB_COPY };

		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
	} else if (c->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_blob != NULL) {
		/* libcurl 7.71+ (Debian 12: 7.88), OpenSSL backend. */
		struct curl_blob cb = { c->cert_blob, c->cert_blob_len,
		    CURL_BLOB_COPY };
		struct curl_blob kb = { c->key_blob, c->key_blob_len,
		    CURL_BLOB_COPY };

		curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cb);
		curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &kb);
	} else if (c->cert_file != NULL) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file);
		curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file);
	}
	r->cred_gen = c->cred_gen;
	if (c->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->user != NULL) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERNAME, c->user);
		curl_easy_setopt(e, CURLOPT_PASSWORD, c->password);
	}
	if (strcmp(r->method, "GET") == 0 && r->body == NULL)
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	else {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
		if (strcmp(r->method, "HEAD") == 0)
			curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	}
	if (r->body != NULL) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)r->body_len);
	}

	h = curl_slist_append(NULL, "Accept: application/json");
	/* No "Expect: 100-continue" round trip for larger bodies. */
	if (h != NULL)
		h = curl_slist_append(h, "Expect:");
	if (h != NULL && r->content_type != NULL) {
		line = xasprintf("Content-Type: %s", r->content_type);
		h = curl_slist_append(h, line);
		free(line);
	}
	if (h != NULL && c->bearer != NULL && *c->bearer != '\0') {
		line = xasprintf("Authorization: Bearer %s", c->bearer);
		h = curl_slist_append(h, line);
		as_secret_free(line, 0);
	}
	for (i = 0; h != NULL && r->xheaders != NULL &&
	    r->xheaders[i] != NULL; i++)
		h = curl_slist_append(h, r->xheaders[i]);
	/* curl_slist_append keeps the list on failure, but we lose it. */
	if (h == NULL)
		return (-AS_ENOMEM);
	r->headers = h;
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	return (0);
}

/* Starts one attempt; failures come back through a zero-delay timer. */
static void
req_start(struct httpc_req *r)
{
	struct httpc	*c = r->client;
	char		 msg[128];
	int		 rc;

	if (c->prepare != NULL)
		c->prepare(c, c->arg);
	as_secret_free(r->resp, r->resp_cap);
	r->resp = NULL;
	r->resp_len = 0;
	r->resp_cap = 0;
	r->resp_too_big = 0;
	r->stream_code = 0;
	r->slen = 0;
	r->sline = 0;
	r->line_too_long = 0;
	if ((rc = req_setup(r)) != 0) {
		req_detach(r);
		req_fail_later(r, rc, "cannot set up the transfer");
		return;
	}
	if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
		req_detach(r);
		snprintf(msg, sizeof msg, "curl_multi_add_handle failed");
		req_fail_later(r, -AS_EIO, msg);
		return;
	}
	r->state = HTTPC_REQ_RUNNING;
	if (r->stream && r->idle_timeout > 0) {
		/* The idle clock starts now; each write restarts it. */
		ev_now_update(c->loop);
		r->timer.repeat = r->idle_timeout;
		ev_timer_again(c->loop, &r->timer);
	}
}

/* Takes the easy handle out of the multi handle and frees it. */
static void
req_detach(struct httpc_req *r)
{
	struct httpc	*c = r->client;

	if (r->stream && r->state == HTTPC_REQ_RUNNING)
		ev_timer_stop(c->loop, &r->timer);	/* the idle timer */
	if (r->easy != NULL) {
		if (r->state == HTTPC_REQ_RUNNING)
			curl_multi_remove_handle(c->multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	curl_slist_free_all(r->headers);
	r->headers = NULL;
}

static void
req_sleep(struct httpc_req *r, double delay)
{
	r->state = HTTPC_REQ_SLEEPING;
	/* A delay counts from now, not from the start of this iteration. */
	ev_now_update(r->client->loop);
	ev_timer_set(&r->timer, delay, 0.);
	ev_timer_start(r->client->loop, &r->timer);
}

static void
req_fail_later(struct httpc_req *r, int err, const char *msg)
{
	r->err = err;
	r->code = 0;
	as_strlcpy(r->msg, msg, sizeof r->msg);
	r->fail_on_wake = 1;
	req_sleep(r, 0.);
}

static void
req_timer_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	struct httpc_req *r = HTTPC_CONTAINER(w, struct httpc_req, timer);
	struct httpc	*c = r->client;

	(void)loop;
	(void)revents;
	c->depth++;
	if (r->state == HTTPC_REQ_RUNNING)
		req_idle(r);
	else if (r->fail_on_wake)
		req_complete(r);
	else
		req_enqueue(r);
	httpc_leave(c);
}

/* A stream received nothing for idle_timeout: it ends, not retried. */
static void
req_idle(struct httpc_req *r)
{
	struct httpc	*c = r->client;
	long		 code = 0;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
	req_detach(r);
	httpc_count(c, r, code);
	r->attempts++;
	r->code = code;
	r->err = -AS_ETIMEDOUT;
	snprintf(r->msg, sizeof r->msg, "no data for %.1f s (%s)",
	    r->idle_timeout, r->url);
	req_complete(r);
}

/*
 * The message of a transport failure: curl's error buffer, then the system's
 * reason when curl left it out (7.88 says "Couldn't connect to server" for a
 * refused connection), then the server, e.g. "Failed to connect to 127.0.0.1
 * port 1234 after 0 ms: Couldn't connect to server: connection refused
 * (http://127.0.0.1:1234)".  oserr is CURLINFO_OS_ERRNO.
 */
static void
req_transport_message(struct httpc_req *r, CURLcode res, long oserr)
{
	const char	*text;
	char		 sys[128] = "";
	size_t		 i;

	text = r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(res);
	if (oserr > 0) {
		as_strlcpy(sys, strerror((int)oserr), sizeof sys);
		for (i = 0; sys[i] != '\0'; i++)
			if (sys[i] >= 'A' && sys[i] <= 'Z')
				sys[i] = (char)(sys[i] - 'A' + 'a');
		if (strcasestr(text, sys) != NULL)
			sys[0] = '\0';
	}
	snprintf(r->msg, sizeof r->msg, "%s%s%s (%s)", text,
	    sys[0] != '\0' ? ": " : "", sys, r->client->base_url);
}

/* Decides what one finished attempt means: done, retry, or 401 retry. */
static void
req_attempt_done(struct httpc_req *r, CURLcode res)
{
	struct httpc	*c = r->client;
	struct curl_header *hdr;
	const char	*what;
	double		 delay = -1;
	long		 code = 0, oserr = 0;
	int		 retry;

	if (res != CURLE_OK)
		curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
	/* A stream that broke after its status line reports that status. */
	if (res == CURLE_OK || r->stream) {
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
		if (curl_easy_header(r->easy, "Retry-After", 0, CURLH_HEADER,
		    -1, &hdr) == CURLHE_OK)
			delay = httpc_retry_after(hdr->value, time(NULL));
	}
	req_detach(r);
	httpc_count(c, r, code);
	r->attempts++;
	r->code = code;
	r->err = httpc_classify(res == CURLE_OK, code, &retry);
	if (res == CURLE_WRITE_ERROR && r->resp_too_big) {
		r->err = -AS_EPROTO;
		retry = 0;
		snprintf(r->msg, sizeof r->msg, "response larger than %zu "
		    "bytes (%s)", c->max_body, r->url);
	} else if (res != CURLE_OK) {
		if (res == CURLE_OPERATION_TIMEDOUT)
			r->err = -AS_ETIMEDOUT;
		else if (res == CURLE_OUT_OF_MEMORY)
			r->err = -AS_ENOMEM;
		/* A certificate that does not verify will not start to. */
		if (res == CURLE_PEER_FAILED_VERIFICATION ||
		    res == CURLE_SSL_CACERT_BADFILE ||
		    res == CURLE_SSL_CERTPROBLEM ||
		    res == CURLE_UNSUPPORTED_PROTOCOL ||
		    res == CURLE_URL_MALFORMAT)
			retry = 0;
		req_transport_message(r, res, oserr);
	} else if (r->err != 0)
		c->message(code, r->resp, r->resp_len, r->msg, sizeof r->msg);
	else
		r->msg[0] = '\0';
	if (r->stream && r->line_too_long) {
		/* Checked first: the write error it caused is ours. */
		r->err = -AS_EPROTO;
		retry = 0;
		snprintf(r->msg, sizeof r->msg, "a line longer than %zu bytes "
		    "(%s)", r->max_line, r->url);
	} else if (r->stream && r->err == 0 && r->sline > 0) {
		r->err = -AS_EPROTO;
		snprintf(r->msg, sizeof r->msg, "the stream ended inside a "
		    "line (%s)", r->url);
	}

	/* The outage log is about c's server; others are the caller's. */
	if (!r->own_base)
		httpc_reach(c, code != 0 || r->resp_too_big, r->msg);

	/* New credentials since this attempt began: they deserve a try. */
	if (code == 401 && !r->auth_retried && (r->cred_gen != c->cred_gen ||
	    (c->unauthorized != NULL &&
	    c->unauthorized(c, r->method, r->path, c->arg)))) {
		/* The 401 attempt does not count against max_retries. */
		r->auth_retried = 1;
		r->attempts--;
		req_enqueue(r);
		return;
	}
	/* A stream's owner decides what to do next. */
	if (r->err == 0 || !retry || r->stream || r->no_retry ||
	    r->attempts > (unsigned)c->max_retries) {
		req_complete(r);
		return;
	}
	/* The server knows best how long it needs; a 429 says so always. */
	if (delay >= 0 && (code == 429 || code >= 500)) {
		what = "Retry-After";
		if (delay > HTTPC_RETRY_AFTER_MAX)
			delay = HTTPC_RETRY_AFTER_MAX;
	} else {
		what = "backoff";
		delay = as_backoff(c->retry_base, c->retry_cap,
		    r->attempts - 1);
	}
	/* An outage is logged by httpc_reach(), once; not every retry. */
	log_debug(c->log_name, "%s %s: %s; retry %u of %d in %.2fs (%s)",
	    r->method, r->path, r->msg, r->attempts, c->max_retries, delay,
	    what);
	req_sleep(r, delay);
}

/*
 * Notes the outcome of one attempt: answered is 1 when an HTTP response
 * arrived (any status).  Logs the start of an outage and its end, once
 * each (see the top of this file).
 */
static void
httpc_reach(struct httpc *c, int answered, const char *msg)
{
	if (answered) {
		if (c->unreachable)
			log_info(c->log_name, "%s answers again after %.1f s "
			    "(%llu attempts failed meanwhile)", c->base_url,
			    as_mono_now() - c->unreachable_at,
			    (unsigned long long)c->unreachable_tries);
		c->unreachable = 0;
		return;
	}
	if (!c->unreachable) {
		c->unreachable = 1;
		c->unreachable_at = as_mono_now();
		c->unreachable_tries = 0;
		/* msg names the server already. */
		log_warn(c->log_name, "server unreachable: %s; retrying "
		    "(logged again when it answers, retries at debug)", msg);
	}
	c->unreachable_tries++;
}

/* Takes r off every list, then runs its completion once and frees it. */
static void
req_complete(struct httpc_req *r)
{
	struct httpc	*c = r->client;
	struct httpc_response resp;

	TAILQ_REMOVE(&c->reqs, r, entry);
	if (r->on_ready) {
		TAILQ_REMOVE(&c->ready, r, ready);
		r->on_ready = 0;
	}
	r->state = HTTPC_REQ_DONE;
	resp.err = r->err;
	resp.code = r->code;
	resp.body = r->resp != NULL ? r->resp : "";
	resp.body_len = r->resp_len;
	resp.message = r->err != 0 ? r->msg : "";
	r->done(&resp, r->arg);
	/* The client may be gone now; touch only r. */
	if (!r->delivering)
		req_free(r);
}

static void
req_free(struct httpc_req *r)
{
	size_t	 i;

	free(r->sbuf);
	as_secret_free(r->resp, r->resp_cap);
	free(r->method);
	free(r->path);
	free(r->url);
	free(r->content_type);
	free(r->body);
	if (r->xheaders != NULL) {
		for (i = 0; r->xheaders[i] != NULL; i++)
			as_secret_free(r->xheaders[i], 0);	/* a token */
		free(r->xheaders);
	}
	free(r);
}

static void
req_cancel(struct httpc_req *r)
{
	struct httpc	*c = r->client;

	switch (r->state) {
	case HTTPC_REQ_QUEUED:
		TAILQ_REMOVE(&c->waitq, r, wait);
		break;
	case HTTPC_REQ_RUNNING:
		httpc_count(c, r, 0);
		req_detach(r);
		break;
	case HTTPC_REQ_SLEEPING:
		ev_timer_stop(c->loop, &r->timer);
		break;
	case HTTPC_REQ_DONE:
		return;
	}
	as_secret_free(r->resp, r->resp_cap);
	r->resp = NULL;
	r->resp_len = 0;
	r->resp_cap = 0;
	r->err = -AS_ECANCELED;
	r->code = 0;
	as_strlcpy(r->msg, "canceled", sizeof r->msg);
	req_complete(r);
}
