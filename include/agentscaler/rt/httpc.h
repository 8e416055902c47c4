/*
 * httpc.h: an HTTP client for JSON APIs on the caller's libev loop (libcurl
 * multi); nothing here blocks.  The Kubernetes client (k8s/client.c) and the
 * RabbitMQ management source (scalers/rabbitmq_http.c) are built on it.
 *
 * Every request passes through one token-bucket rate limiter per client
 * (qps, burst), gets a per-attempt timeout, is retried with jittered backoff
 * on 5xx, transport errors and timeouts, and waits for Retry-After on 429.
 * Authentication is basic (user and password) or bearer (a token); a hook
 * may refresh the credentials before each attempt, and another decides
 * whether a 401 is worth one more try.  Credentials are never logged.
 *
 * Ownership: httpc_new() copies its options and strings.  A response passed
 * to a completion is borrowed for the duration of the call.  A completion
 * runs exactly once per accepted request, never before the call that started
 * it returns, and with -AS_ECANCELED when the request is cancelled or the
 * client freed.  httpc_free() may be called from inside a completion.
 *
 * Streaming (httpc_stream()): a GET whose 2xx body is handed over line by
 * line as it arrives, for Kubernetes watches.  A line passed to the line
 * callback is borrowed for the duration of the call.  The line callback runs
 * on the loop, never inside libcurl, so it may cancel its own request (the
 * completion then runs at once, inside the cancel, and no more lines come),
 * start others or free the client.
 */
#ifndef AGENTSCALER_HTTPC_H
#define AGENTSCALER_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct prom_hist;

struct ev_loop;
struct httpc;
struct httpc_req;

struct httpc_response {
	int		 err;		/* 0 on 2xx, else -AS_E... */
	long		 code;		/* HTTP status, 0 when none arrived */
	const char	*body;		/* NUL-terminated, may be "" */
	size_t		 body_len;
	const char	*message;	/* text for errors, "" on success */
};

typedef void	 httpc_done_fn(const struct httpc_response *, void *arg);
/*
 * One line of a streaming response: without its "\n" (and a "\r" before
 * it), NUL-terminated at line[len]; empty lines are not reported.
 */
typedef void	 httpc_line_fn(const char *line, size_t len, void *arg);
/* Writes one line describing an HTTP error response into out. */
typedef void	 httpc_message_fn(long code, const char *body, size_t len,
		    char *out, size_t outlen);
/* Runs before every attempt; may call httpc_set_bearer()/_basic(). */
typedef void	 httpc_prepare_fn(struct httpc *, void *arg);
/*
 * Runs after a 401, at most once per request; returns 1 when the request
 * should be tried once more (the credentials may have changed), 0 to fail
 * it with -AS_EAUTH.  That extra attempt does not count as a retry.  When
 * the credentials were set again (httpc_set_*) after the failed attempt
 * started, the request is tried once more without asking the hook.
 */
typedef int	 httpc_unauthorized_fn(struct httpc *, const char *method,
		    const char *path, void *arg);

struct httpc_options {
	const char	*base_url;	/* http(s)://host[:port][/prefix] */
	const char	*log_name;	/* log component; default "http" */
	const char	*ca_file;	/* NULL: the system CAs */
	const char	*ca_data;	/* PEM; replaces ca_file and the
					   system CAs (CURLOPT_CAINFO_BLOB) */
	size_t		 ca_data_len;
	const char	*cert_file;	/* client certificate, PEM */
	const char	*key_file;	/* its private key, PEM */
	int		 insecure_skip_verify;
	double		 qps;		/* default 20 */
	int		 burst;		/* default 30 */
	double		 timeout;	/* per attempt, seconds; default 10 */
	double		 connect_timeout; /* at most, per attempt; default 5 */
	int		 max_retries;	/* default 5; -1: no retries */
	double		 retry_base;	/* first backoff, s; default 0.1 */
	double		 retry_cap;	/* largest backoff, s; default 5 */
	size_t		 max_body;	/* bytes; default 64 MiB */
	httpc_message_fn *message;	/* NULL: "<code>: <start of body>" */
	httpc_prepare_fn *prepare;	/* optional */
	httpc_unauthorized_fn *unauthorized;	/* optional */
	void		(*cleanup)(void *arg);	/* runs once, at the end */
	void		*arg;		/* for the three hooks above */
};

/*
 * Returns a client or NULL with a reason in err.  Each client holds a
 * curl_global_init() reference until it is gone.
 */
struct httpc	*httpc_new(struct ev_loop *, const struct httpc_options *,
		    char *err, size_t errlen);
/*
 * Cancels every pending request (completions run), then frees; inside a
 * completion the final teardown (and the cleanup hook) waits until the
 * client's own callback returns.  A second call does nothing.
 */
void		 httpc_free(struct httpc *);

/* Sets (token) or clears (NULL) the bearer token; copied. */
void		 httpc_set_bearer(struct httpc *, const char *token);
/* Sets (both) or clears (NULL user) basic authentication; copied. */
void		 httpc_set_basic(struct httpc *, const char *user,
		    const char *password);
/*
 * Sets (both) or clears (NULL cert) an in-memory client certificate and
 * key, PEM; copied (the key is zeroed when replaced).  They win over
 * cert_file/key_file for the attempts that start afterwards.
 */
void		 httpc_set_client_cert(struct httpc *, const char *cert,
		    size_t cert_len, const char *key, size_t key_len);
/*
 * Holds (on) or releases (off) the queue: while held no attempt starts,
 * so requests queue up behind, for instance, a credential refresh.
 * Releasing starts what the rate limiter allows.  Holds do not nest.
 */
void		 httpc_hold(struct httpc *, int on);

/*
 * Queues a request.  path starts with "/" and is appended to the base URL;
 * body may be NULL; content_type applies to the body.  Returns a handle
 * valid until the completion runs, or NULL (the completion will not run)
 * when the arguments are bad or the client is closing.
 */
struct httpc_req *httpc_request(struct httpc *, const char *method,
		    const char *path, const char *content_type,
		    const char *body, httpc_done_fn *, void *arg);
/*
 * httpc_request() with per-request options (the agent protocol's hand-off,
 * scheduler/handoff_http.c): base_url replaces the client's (a pod's
 * address, say); headers, "Name: value" lines ending with NULL, go with
 * every attempt (copied; wiped when freed, as they may carry a token); a
 * line without a colon or with CR or LF refuses the request; timeout (s,
 * 0: the client's) bounds each attempt; no_retry leaves every retry to
 * the caller (401 aside).  A request to another base URL is left out of
 * the client's outage log (its server is not the client's).  o may be
 * NULL.  Returns as httpc_request().
 */
struct httpc_req_options {
	const char		*content_type;
	const char		*base_url;
	const char *const	*headers;
	double			 timeout;
	int			 no_retry;
};
struct httpc_req *httpc_request_ex(struct httpc *, const char *method,
		    const char *path, const struct httpc_req_options *,
		    const char *body, httpc_done_fn *, void *arg);
/* Ends a pending request now; its completion runs with -AS_ECANCELED. */
void		 httpc_req_cancel(struct httpc_req *);

struct httpc_stream_options {
	double		 idle_timeout;	/* s without a byte: -AS_ETIMEDOUT;
					   0: no limit */
	size_t		 max_line;	/* bytes; default 16 MiB */
};

/*
 * Queues a streaming GET of path (see the top of this file).  Unlike
 * httpc_request() it has no total timeout (only the connect timeout and
 * opts->idle_timeout), takes one token from the rate limiter, and is never
 * retried, except once after a 401 when the unauthorized hook asks for it;
 * the caller decides what a failure means.  A 2xx body goes to line, one
 * call per line; any other body is kept, up to max_body, for the
 * completion's message as for httpc_request().  done runs exactly once, at
 * the end: err 0 when a 2xx stream ended cleanly, -AS_ETIMEDOUT when it was
 * idle too long, -AS_EPROTO when a line was longer than max_line or the
 * stream ended inside a line (lines before it were delivered), the usual
 * errors otherwise; code is the HTTP status when one arrived (so a 2xx
 * code with an error means the stream broke after it started).  body is
 * "" for a 2xx stream.  Returns a handle valid until done runs, or NULL
 * as httpc_request() does.
 */
struct httpc_req *httpc_stream(struct httpc *, const char *path,
		    const struct httpc_stream_options *, httpc_line_fn *line,
		    httpc_done_fn *done, void *arg);

/* Calls fn for each (verb, code) attempt counter; code 0: no response. */
void		 httpc_foreach_stat(const struct httpc *,
		    void (*fn)(const char *verb, long code, uint64_t count,
		    void *), void *arg);
/*
 * Calls fn for each verb's histogram of attempt durations, from queued
 * (the token bucket's wait included) to the attempt's end; streams are
 * not counted (they last as long as they are wanted).
 */
void		 httpc_foreach_latency(const struct httpc *,
		    void (*fn)(const char *verb, const struct prom_hist *,
		    void *), void *arg);
/* The histogram of attempts' waits in the token bucket's queue. */
const struct prom_hist *httpc_limiter_wait(const struct httpc *);
/* The base URL as used, without trailing slashes (borrowed). */
const char	*httpc_base_url(const struct httpc *);
/* The loop the client runs on. */
struct ev_loop	*httpc_loop(const struct httpc *);

/*
 * Pure: maps the outcome of one attempt to an as_err value; *retry says
 * whether another attempt may help.  curl_ok is 0 for a transport failure
 * (code is then ignored).  401 is not retryable here (see unauthorized).
 */
int		 httpc_classify(int curl_ok, long code, int *retry);
/*
 * Pure: parses a Retry-After value, delta-seconds or an HTTP-date taken
 * relative to now.  Returns seconds, or -1 when absent or unreadable.
 */
double		 httpc_retry_after(const char *value, time_t now);

#endif
