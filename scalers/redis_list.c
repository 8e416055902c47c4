/*
 * redis_list.c: the "redis-list" source: LLEN of a list (plus LLEN of a
 * processing list when in-flight work is counted), read with hiredis 0.14.1
 * on the caller's libev loop.
 *
 * Endpoints.  Every instance belongs to one endpoint, shared by all the
 * instances on the same loop with the same host, port, database and
 * password source, and refcounted by them.  An endpoint owns two
 * connections: "main", on which every LLEN goes, and "sub", opened by the
 * first subscribe(), which carries keyspace notifications.  hiredis only
 * appends a command to its output buffer and arms the write watcher; the
 * write happens when the loop next finds the socket writable.  So all the
 * polls issued during one loop iteration, for every pool on the endpoint,
 * leave in one write and come back as one pipelined batch.
 *
 * Lifetimes.  hiredis calls each command callback exactly once, with NULL
 * when the context goes away, and frees the context itself after an I/O
 * error or a failed connect.  One rule keeps that safe: a context's data
 * points to its connection exactly while the endpoint considers it
 * current.  Whoever retires a context (redis_list_conn_lost() or
 * redis_list_conn_close()) first clears both pointers, so callbacks that
 * run later, possibly after the endpoint is gone, see data == NULL and only
 * release their own privdata.  Callers' code (completions) runs only from
 * LLEN reply callbacks and from our own timers, and nothing touches the
 * endpoint after calling it: a completion may destroy the last instance,
 * which frees the endpoint at once (redisAsyncFree() from inside a reply
 * callback is deferred by hiredis until the callback returns).
 *
 * hiredis calls the connect and disconnect callbacks without its "in
 * callback" guard, so a free there would not be deferred; caller code never
 * runs there, nor in the subscriber's callbacks: wake-ups go through a
 * zero-delay timer per instance.
 *
 * Timeouts.  0.14.1 has none, so each connection runs a connect timer, a
 * command timer (re-armed with ev_timer_again while replies are awaited)
 * and a retry timer for the jittered reconnect.  A timer that expires frees
 * the context from outside any hiredis callback; the pending LLENs then
 * complete with -AS_ETIMEDOUT.
 *
 * hiredis 0.14.1 writes with write(2), so the process must ignore SIGPIPE.
 */
#include <sys/queue.h>

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ev.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "agentscaler/common.h"
#include "agentscaler/log.h"
#include "agentscaler/redis_list.h"
#include "agentscaler/scaler.h"

#define REDIS_LIST_LOG		"redis"
#define REDIS_LIST_TIMEOUT	2.0	/* connect and command, seconds */
#define REDIS_LIST_BACKOFF_BASE	0.1
#define REDIS_LIST_BACKOFF_CAP	5.0
#define REDIS_LIST_RECHECK	60.0	/* CONFIG again after a refusal */

enum redis_list_kind {
	REDIS_LIST_MAIN,
	REDIS_LIST_SUB
};

/* What a handshake reply answers; passed as the command's privdata. */
enum redis_list_tag {
	REDIS_LIST_TAG_AUTH = 1,
	REDIS_LIST_TAG_SELECT,
	REDIS_LIST_TAG_PING,
	REDIS_LIST_TAG_CONFIG_GET,
	REDIS_LIST_TAG_CONFIG_SET
};

enum redis_list_push {
	REDIS_LIST_PUSH_UNKNOWN,
	REDIS_LIST_PUSH_LIVE,
	REDIS_LIST_PUSH_REFUSED
};

enum redis_list_sub {
	REDIS_LIST_SUB_NONE,	/* no SUBSCRIBE on the current connection */
	REDIS_LIST_SUB_SENT,
	REDIS_LIST_SUB_LIVE	/* the server confirmed it */
};

struct redis_list_endpoint;

struct redis_list_conn {
	struct redis_list_endpoint *ep;
	enum redis_list_kind	 kind;
	redisAsyncContext	*ac;		/* NULL while down */
	int			 connected;	/* TCP connect finished */
	int			 ready;		/* the handshake answered */
	int			 was_ready;	/* ready at least once */
	int			 push_ok;	/* sub: notifications enabled */
	unsigned		 attempt;	/* failures since last ready */
	unsigned		 npending;	/* replies we are waiting for */
	unsigned		 nhandshake;	/* AUTH, SELECT, PING */
	char			*secret;	/* until AUTH answers */
	int			 err;		/* last failure, -AS_E... */
	char			 cause[160];	/* its text, without endpoint */
	ev_timer		 connect_timer;
	ev_timer		 command_timer;
	ev_timer		 retry_timer;
};

struct redis_list_scaler;

struct redis_list_endpoint {
	LIST_ENTRY(redis_list_endpoint) entry;
	struct ev_loop		*loop;
	struct redis_addr	 addr;
	char			 name[272];	/* host:port, [v6]:port */
	char			*password_file;
	char			*password_env;
	double			 connect_timeout;
	double			 command_timeout;
	unsigned		 refs;
	LIST_HEAD(, redis_list_scaler) scalers;
	struct redis_list_conn	 main;
	struct redis_list_conn	 sub;
	enum redis_list_push	 push_logged;	/* mode last announced */
};

/* One poll's LLENs in flight; owned by hiredis's callbacks. */
struct redis_list_poll {
	struct redis_list_scaler *s;	/* NULL once destroy() orphaned it */
	unsigned		 outstanding;
	unsigned		 nreplies;
	struct scaler_result	 res;
};

struct redis_list_scaler {
	struct scaler		 base;
	LIST_ENTRY(redis_list_scaler) entry;
	struct redis_list_endpoint *ep;
	struct ev_loop		*loop;
	char			*queue;
	char			*processing;	/* NULL unless counted */
	char			*channel;	/* keyspace channel, once */
	struct redis_list_poll	*poll;		/* LLENs in hiredis */
	scaler_done_fn		*done_fn;	/* set while a poll pends */
	void			*done_arg;
	struct scaler_result	 later;		/* delivered by later_timer */
	ev_timer		 later_timer;
	scaler_wake_fn		*wake_fn;
	void			*wake_arg;
	ev_timer		 wake_timer;
	enum redis_list_sub	 sub;
};

static int	 redis_list_validate(const struct scaler_source *, char *,
		    size_t);
static struct scaler *redis_list_create(struct ev_loop *,
		    const struct scaler_source *, char *, size_t);
static int	 redis_list_poll(struct scaler *, scaler_done_fn *, void *);
static int	 redis_list_subscribe(struct scaler *, scaler_wake_fn *,
		    void *);
static int	 redis_list_pushing(const struct scaler *);
static void	 redis_list_destroy(struct scaler *);

static void	 redis_list_conn_start(struct redis_list_conn *);
static void	 redis_list_conn_lost(struct redis_list_conn *, int,
		    const char *, int);
static void	 redis_list_sub_watch(struct redis_list_endpoint *,
		    struct redis_list_scaler *);

static LIST_HEAD(, redis_list_endpoint) redis_list_endpoints =
    LIST_HEAD_INITIALIZER(redis_list_endpoints);

/*
 * The address parser.  Error messages never quote the authority part, since
 * a rejected address may carry a password.
 */
static int
redis_list_parse_number(const char *p, const char *end, long max, long *out)
{
	long	 v = 0;

	if (p == end)
		return (-1);
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return (-1);
		v = v * 10 + (*p - '0');
		if (v > max)
			return (-2);
	}
	*out = v;
	return (0);
}

int
redis_list_parse_address(const char *url, struct redis_addr *out, char *err,
    size_t errlen)
{
	const char	*p, *auth, *auth_end, *host, *host_end, *q;
	size_t		 hostlen, i, ncolon;
	long		 v = 0;
	int		 rc;

	memset(out, 0, sizeof *out);
	if (url == NULL || *url == '\0') {
		snprintf(err, errlen, "empty address; expected "
		    "redis://host:port/db");
		return (-AS_EINVAL);
	}
	for (p = url; isalnum((unsigned char)*p) || *p == '+' ||
	    *p == '-' || *p == '.'; p++)
		;
	if (p == url || strncmp(p, "://", 3) != 0 || p - url > 16 ||
	    !isalpha((unsigned char)*url)) {
		snprintf(err, errlen, "address must start with redis://");
		return (-AS_EINVAL);
	}
	if (p - url == 6 && strncasecmp(url, "rediss", 6) == 0) {
		snprintf(err, errlen, "rediss:// (TLS) is not supported; "
		    "use redis://");
		return (-AS_EINVAL);
	}
	if (p - url != 5 || strncasecmp(url, "redis", 5) != 0) {
		snprintf(err, errlen, "unsupported scheme \"%.*s\"; expected "
		    "redis://", (int)(p - url), url);
		return (-AS_EINVAL);
	}
	auth = p + 3;
	auth_end = auth + strcspn(auth, "/?#");
	if (memchr(auth, '@', (size_t)(auth_end - auth)) != NULL) {
		snprintf(err, errlen, "credentials in the address are not "
		    "allowed; use password_file or password_env");
		return (-AS_EINVAL);
	}

	if (*auth == '[') {
		host = auth + 1;
		host_end = memchr(host, ']', (size_t)(auth_end - host));
		if (host_end == NULL) {
			snprintf(err, errlen, "unterminated '[' in the "
			    "address");
			return (-AS_EINVAL);
		}
		hostlen = (size_t)(host_end - host);
		for (i = 0, ncolon = 0; i < hostlen; i++) {
			if (host[i] == ':')
				ncolon++;
			else if (!isxdigit((unsigned char)host[i]) &&
			    host[i] != '.')
				break;
		}
		if (hostlen == 0 || i != hostlen || ncolon < 2) {
			snprintf(err, errlen, "bad IPv6 address in brackets");
			return (-AS_EINVAL);
		}
		q = host_end + 1;
	} else {
		host = auth;
		host_end = auth + strcspn(auth, ":/?#");
		hostlen = (size_t)(host_end - host);
		for (p = auth, ncolon = 0; p < auth_end; p++)
			ncolon += *p == ':';
		if (ncolon > 1) {
			snprintf(err, errlen, "IPv6 addresses need brackets, "
			    "as in redis://[::1]:6379/0");
			return (-AS_EINVAL);
		}
		if (hostlen == 0) {
			snprintf(err, errlen, "the address has no host");
			return (-AS_EINVAL);
		}
		for (i = 0; i < hostlen; i++) {
			if (!isalnum((unsigned char)host[i]) &&
			    host[i] != '-' && host[i] != '.' && host[i] != '_')
				break;
		}
		if (i != hostlen) {
			snprintf(err, errlen, "bad character in the host name");
			return (-AS_EINVAL);
		}
		q = host_end;
	}
	if (hostlen >= sizeof out->host) {
		snprintf(err, errlen, "host name too long");
		return (-AS_EINVAL);
	}

	out->port = 6379;
	if (q < auth_end && *q == ':') {
		rc = redis_list_parse_number(q + 1, auth_end, 65535, &v);
		if (rc == -1 && q + 1 == auth_end) {
			snprintf(err, errlen, "empty port after ':'");
			return (-AS_EINVAL);
		}
		if (rc != 0 || v == 0) {
			snprintf(err, errlen, "port must be a number from 1 "
			    "to 65535");
			return (-AS_EINVAL);
		}
		out->port = (int)v;
	} else if (q != auth_end) {
		snprintf(err, errlen, "unexpected character after the host");
		return (-AS_EINVAL);
	}

	p = auth_end;
	if (*p == '?' || *p == '#') {
		snprintf(err, errlen, "query strings and fragments are not "
		    "supported; the database goes in the path: /db");
		return (-AS_EINVAL);
	}
	if (*p == '/' && p[1] != '\0') {
		rc = redis_list_parse_number(p + 1, p + strlen(p), 2147483647L,
		    &v);
		if (rc != 0) {
			snprintf(err, errlen, "database must be a number from "
			    "0 to 2147483647, as in redis://host:6379/0");
			return (-AS_EINVAL);
		}
		out->db = (int)v;
	}
	memcpy(out->host, host, hostlen);
	out->host[hostlen] = '\0';
	return (0);
}

/* Secrets. */

static void
redis_list_secret_free(char *secret)
{
	if (secret != NULL) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
}

/* Reads the password afresh; *secretp stays NULL when none is set. */
static int
redis_list_secret_read(const struct redis_list_endpoint *ep, char **secretp,
    char *err, size_t errlen)
{
	const char	*v;

	*secretp = NULL;
	if (ep->password_file != NULL) {
		*secretp = as_read_secret(ep->password_file, err, errlen);
		if (*secretp == NULL)
			return (-AS_EAUTH);
		if (**secretp == '\0') {
			snprintf(err, errlen, "password file %s is empty",
			    ep->password_file);
			redis_list_secret_free(*secretp);
			*secretp = NULL;
			return (-AS_EAUTH);
		}
	} else if (ep->password_env != NULL) {
		if ((v = getenv(ep->password_env)) == NULL || *v == '\0') {
			snprintf(err, errlen, "environment variable %s is "
			    "not set", ep->password_env);
			return (-AS_EAUTH);
		}
		*secretp = xstrdup(v);
	}
	return (0);
}

/*
 * Copies a server's error text, replacing any copy of the secret with
 * "<redacted>": servers should never echo it, but the text goes into logs.
 */
static void
redis_list_redact(char *dst, size_t dstlen, const char *text,
    const char *secret)
{
	const char	*hit;
	size_t		 len = 0, n, slen;

	dst[0] = '\0';
	slen = secret != NULL ? strlen(secret) : 0;
	while (*text != '\0' && len + 1 < dstlen) {
		hit = slen > 0 ? strstr(text, secret) : NULL;
		n = hit != NULL ? (size_t)(hit - text) : strlen(text);
		if (n > dstlen - 1 - len)
			n = dstlen - 1 - len;
		memcpy(dst + len, text, n);
		len += n;
		dst[len] = '\0';
		if (hit == NULL)
			break;
		len += as_strlcpy(dst + len, "<redacted>", dstlen - len);
		if (len >= dstlen)
			break;
		text = hit + slen;
	}
}

/* Connections. */

static const char *
redis_list_conn_what(const struct redis_list_conn *c)
{
	return (c->kind == REDIS_LIST_MAIN ? "connection" :
	    "subscriber connection");
}

/*
 * Queues one command; npending counts the replies we wait for, and the
 * command timer runs while it is non-zero on a connected socket.  Returns
 * 0, or -AS_ECONN when the context no longer accepts commands.
 */
static int
redis_list_conn_command(struct redis_list_conn *c, redisCallbackFn *fn,
    void *privdata, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	if (c->ac == NULL)
		return (-AS_ECONN);
	va_start(ap, fmt);
	rc = redisvAsyncCommand(c->ac, fn, privdata, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK)
		return (-AS_ECONN);
	if (c->npending++ == 0 && c->connected)
		ev_timer_again(c->ep->loop, &c->command_timer);
	return (0);
}

/* One awaited reply arrived: progress, so the command deadline moves. */
static void
redis_list_conn_replied(struct redis_list_conn *c)
{
	if (c->npending > 0)
		c->npending--;
	if (c->npending > 0)
		ev_timer_again(c->ep->loop, &c->command_timer);
	else
		ev_timer_stop(c->ep->loop, &c->command_timer);
}

static void
redis_list_conn_reset(struct redis_list_conn *c)
{
	struct ev_loop	*loop = c->ep->loop;

	ev_timer_stop(loop, &c->connect_timer);
	ev_timer_stop(loop, &c->command_timer);
	c->connected = c->ready = c->push_ok = 0;
	c->npending = c->nhandshake = 0;
	redis_list_secret_free(c->secret);
	c->secret = NULL;
}

/* The subscriber went away: nothing is subscribed any more. */
static void
redis_list_sub_reset(struct redis_list_endpoint *ep)
{
	struct redis_list_scaler *s;

	LIST_FOREACH(s, &ep->scalers, entry)
		s->sub = REDIS_LIST_SUB_NONE;
}

/*
 * Records why a connection is down, logs it once per outage, and arms the
 * retry timer.  err 0 means a deliberate close that is not worth a log.
 */
static void
redis_list_conn_down(struct redis_list_conn *c, int err, const char *cause)
{
	struct redis_list_endpoint *ep = c->ep;
	double		 delay;

	if (err != 0) {
		c->err = err;
		as_strlcpy(c->cause, cause != NULL && *cause != '\0' ? cause :
		    "connection closed", sizeof c->cause);
		if (c->ready)
			log_warn(REDIS_LIST_LOG, "%s: %s lost: %s", ep->name,
			    redis_list_conn_what(c), c->cause);
		else if (c->attempt == 0)
			log_warn(REDIS_LIST_LOG, "%s: cannot open the %s: %s; "
			    "retrying with backoff", ep->name,
			    redis_list_conn_what(c), c->cause);
		else
			log_debug(REDIS_LIST_LOG, "%s: %s attempt %u: %s",
			    ep->name, redis_list_conn_what(c), c->attempt + 1,
			    c->cause);
	}
	if (c->ready)
		c->attempt = 0;
	if (c->kind == REDIS_LIST_SUB)
		redis_list_sub_reset(ep);
	if (err == 0)
		delay = REDIS_LIST_RECHECK;
	else
		delay = as_backoff(REDIS_LIST_BACKOFF_BASE,
		    REDIS_LIST_BACKOFF_CAP, c->attempt);
	if (c->attempt < 64)
		c->attempt++;
	redis_list_conn_reset(c);
	ev_timer_stop(ep->loop, &c->retry_timer);
	ev_timer_set(&c->retry_timer, delay, 0.);
	ev_timer_start(ep->loop, &c->retry_timer);
}

/*
 * The one "connection lost" path, idempotent: retires the context (see the
 * lifetime rule at the top), records the cause, schedules the reconnect and,
 * unless hiredis is already freeing the context (lib_frees), frees it.  The
 * free runs the pending callbacks, and through them callers' completions,
 * so nothing here touches the endpoint after it.
 */
static void
redis_list_conn_lost(struct redis_list_conn *c, int err, const char *cause,
    int lib_frees)
{
	struct redis_list_endpoint *ep = c->ep;
	redisAsyncContext *ac = c->ac;

	if (ac == NULL)
		return;
	c->ac = NULL;
	ac->data = NULL;
	redis_list_conn_down(c, err, cause);
	/* A server that stopped answering one socket is not serving pushes. */
	if (c->kind == REDIS_LIST_MAIN && err == -AS_ETIMEDOUT)
		redis_list_conn_lost(&ep->sub, -AS_ECONN, "the main "
		    "connection timed out", 0);
	if (!lib_frees)
		redisAsyncFree(ac);
}

/* Retires the context for good: the endpoint is going away. */
static void
redis_list_conn_close(struct redis_list_conn *c)
{
	redisAsyncContext *ac = c->ac;

	redis_list_conn_reset(c);
	ev_timer_stop(c->ep->loop, &c->retry_timer);
	if (ac != NULL) {
		c->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac);
	}
}

static void
redis_list_conn_ready(struct redis_list_conn *c)
{
	struct redis_list_endpoint *ep = c->ep;

	c->ready = 1;
	if (c->was_ready)
		log_info(REDIS_LIST_LOG, "%s: %s restored", ep->name,
		    redis_list_conn_what(c));
	else if (c->attempt > 0)
		log_info(REDIS_LIST_LOG, "%s: %s open", ep->name,
		    redis_list_conn_what(c));
	else
		log_debug(REDIS_LIST_LOG, "%s: %s open", ep->name,
		    redis_list_conn_what(c));
	c->was_ready = 1;
	c->attempt = 0;
}

static void
redis_list_connect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_list_conn *c = ac->data;

	if (c == NULL)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context when we return. */
		redis_list_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
		return;
	}
	c->connected = 1;
	ev_timer_stop(c->ep->loop, &c->connect_timer);
	if (c->npending > 0)
		ev_timer_again(c->ep->loop, &c->command_timer);
	if (c->nhandshake == 0)
		redis_list_conn_ready(c);
}

static void
redis_list_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_list_conn *c = ac->data;

	(void)status;
	if (c != NULL)
		redis_list_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
}

static void
redis_list_connect_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_list_conn *c = w->data;
	char		 cause[96];

	(void)loop;
	(void)revents;
	snprintf(cause, sizeof cause, "connect timed out after %g s",
	    c->ep->connect_timeout);
	redis_list_conn_lost(c, -AS_ETIMEDOUT, cause, 0);
}

static void
redis_list_command_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_list_conn *c = w->data;
	char		 cause[96];

	(void)loop;
	(void)revents;
	snprintf(cause, sizeof cause, "command timed out: no reply within "
	    "%g s", c->ep->command_timeout);
	redis_list_conn_lost(c, -AS_ETIMEDOUT, cause, 0);
}

static void
redis_list_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	redis_list_conn_start(w->data);
}

/* Announces the push mode of an endpoint when it first settles or changes. */
static void
redis_list_push_mode(struct redis_list_endpoint *ep, enum redis_list_push m,
    const char *reason)
{
	if (m == ep->push_logged)
		return;
	ep->push_logged = m;
	if (m == REDIS_LIST_PUSH_LIVE)
		log_info(REDIS_LIST_LOG, "%s: push wake-ups via keyspace "
		    "notifications", ep->name);
	else
		log_warn(REDIS_LIST_LOG, "%s: polling only: %s", ep->name,
		    reason);
}

static void
redis_list_push_refused(struct redis_list_conn *c, const char *what,
    const char *reason)
{
	char	 cause[160];

	snprintf(cause, sizeof cause, "%s refused: %s", what, reason);
	redis_list_push_mode(c->ep, REDIS_LIST_PUSH_REFUSED, cause);
	/* Quietly; the retry timer checks again much later. */
	redis_list_conn_lost(c, 0, cause, 0);
}

static void
redis_list_push_live(struct redis_list_conn *c)
{
	struct redis_list_endpoint *ep = c->ep;
	struct redis_list_scaler *s;

	c->push_ok = 1;
	redis_list_push_mode(ep, REDIS_LIST_PUSH_LIVE, NULL);
	LIST_FOREACH(s, &ep->scalers, entry) {
		if (s->wake_fn != NULL && s->sub == REDIS_LIST_SUB_NONE)
			redis_list_sub_watch(ep, s);
	}
}

static void	 redis_list_handshake_cb(redisAsyncContext *, void *, void *);

/*
 * CONFIG GET notify-keyspace-events answered.  We need K (keyspace
 * channel), l (list commands: pushes and pops) and g (generic: DEL, EXPIRE,
 * RENAME, so that a deleted queue wakes the pool too), or A for all classes;
 * add what is missing to the server's flags rather than replacing them.
 */
static void
redis_list_config_got(struct redis_list_conn *c, const redisReply *r)
{
	const char	*flags;
	char		 want[64];
	int		 all;

	if (r->type == REDIS_REPLY_ERROR) {
		redis_list_push_refused(c, "CONFIG GET", r->str);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		redis_list_push_refused(c, "CONFIG GET", "unexpected reply");
		return;
	}
	flags = r->element[1]->str;
	all = strchr(flags, 'A') != NULL;
	if (strchr(flags, 'K') != NULL && (all || (strchr(flags, 'l') !=
	    NULL && strchr(flags, 'g') != NULL))) {
		redis_list_push_live(c);
		return;
	}
	snprintf(want, sizeof want, "%.32s%s%s%s", flags,
	    strchr(flags, 'K') != NULL ? "" : "K",
	    all || strchr(flags, 'l') != NULL ? "" : "l",
	    all || strchr(flags, 'g') != NULL ? "" : "g");
	if (redis_list_conn_command(c, redis_list_handshake_cb,
	    (void *)(intptr_t)REDIS_LIST_TAG_CONFIG_SET,
	    "CONFIG SET notify-keyspace-events %s", want) != 0)
		redis_list_conn_lost(c, -AS_ECONN, "cannot queue CONFIG SET",
		    0);
}

/* AUTH, SELECT and CONFIG replies. */
static void
redis_list_handshake_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_list_conn *c = ac->data;
	redisReply	*reply = r;
	char		 text[128], cause[160];

	if (c == NULL)
		return;
	if (reply == NULL) {
		redis_list_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
		return;
	}
	redis_list_conn_replied(c);
	switch ((enum redis_list_tag)(intptr_t)privdata) {
	case REDIS_LIST_TAG_AUTH:
		c->nhandshake--;
		if (reply->type == REDIS_REPLY_ERROR) {
			redis_list_redact(text, sizeof text, reply->str,
			    c->secret);
			snprintf(cause, sizeof cause, "authentication failed: "
			    "%s", text);
			redis_list_conn_lost(c, -AS_EAUTH, cause, 0);
			return;
		}
		redis_list_secret_free(c->secret);
		c->secret = NULL;
		break;
	case REDIS_LIST_TAG_SELECT:
		c->nhandshake--;
		if (reply->type == REDIS_REPLY_ERROR) {
			snprintf(cause, sizeof cause, "SELECT %d failed: "
			    "%.100s", c->ep->addr.db, reply->str);
			redis_list_conn_lost(c, -AS_EINVAL, cause, 0);
			return;
		}
		break;
	case REDIS_LIST_TAG_PING:
		c->nhandshake--;
		if (reply->type == REDIS_REPLY_ERROR) {
			snprintf(cause, sizeof cause, "PING refused: %.100s",
			    reply->str);
			redis_list_conn_lost(c, strncmp(reply->str, "NOAUTH",
			    6) == 0 ? -AS_EAUTH : -AS_EPROTO, cause, 0);
			return;
		}
		break;
	case REDIS_LIST_TAG_CONFIG_GET:
		redis_list_config_got(c, reply);
		return;
	case REDIS_LIST_TAG_CONFIG_SET:
		if (reply->type == REDIS_REPLY_ERROR)
			redis_list_push_refused(c, "CONFIG SET", reply->str);
		else
			redis_list_push_live(c);
		return;
	}
	if (c->nhandshake == 0 && !c->ready)
		redis_list_conn_ready(c);
}

/* Marks a connection down without a context (nothing to free). */
static void
redis_list_conn_fail(struct redis_list_conn *c, int err, const char *cause)
{
	redis_list_conn_down(c, err, cause);
}

/*
 * Opens a connection and queues its handshake: AUTH when a password is
 * configured, SELECT for a database other than 0, PING, and CONFIG GET on
 * the subscriber.  Everything queued before the connect completes goes out in
 * the first write.  Failures arm the retry timer.
 */
static void
redis_list_conn_start(struct redis_list_conn *c)
{
	struct redis_list_endpoint *ep = c->ep;
	redisAsyncContext *ac;
	char		*secret = NULL;
	char		 cause[160];
	int		 rc;

	ev_timer_stop(ep->loop, &c->retry_timer);
	if (c->ac != NULL)
		return;
	redis_list_conn_reset(c);
	if ((rc = redis_list_secret_read(ep, &secret, cause,
	    sizeof cause)) != 0) {
		redis_list_conn_fail(c, rc, cause);
		return;
	}
	/* Note: hiredis 0.14.1 resolves names with a blocking getaddrinfo. */
	ac = redisAsyncConnect(ep->addr.host, ep->addr.port);
	if (ac == NULL || ac->err != 0) {
		as_strlcpy(cause, ac != NULL && ac->errstr != NULL ?
		    ac->errstr : "cannot allocate a context", sizeof cause);
		if (ac != NULL)
			redisAsyncFree(ac);
		redis_list_secret_free(secret);
		redis_list_conn_fail(c, -AS_ECONN, cause);
		return;
	}
	ac->data = c;
	redisLibevAttach(ep->loop, ac);
	redisAsyncSetConnectCallback(ac, redis_list_connect_cb);
	redisAsyncSetDisconnectCallback(ac, redis_list_disconnect_cb);
	c->ac = ac;
	ev_timer_set(&c->connect_timer, ep->connect_timeout, 0.);
	ev_timer_start(ep->loop, &c->connect_timer);
	c->command_timer.repeat = ep->command_timeout;

	if (secret != NULL) {
		rc = redis_list_conn_command(c, redis_list_handshake_cb,
		    (void *)(intptr_t)REDIS_LIST_TAG_AUTH, "AUTH %b", secret,
		    strlen(secret));
		c->secret = secret;	/* kept to redact the reply */
		c->nhandshake += rc == 0;
	}
	if (c->kind == REDIS_LIST_MAIN && ep->addr.db != 0) {
		rc = redis_list_conn_command(c, redis_list_handshake_cb,
		    (void *)(intptr_t)REDIS_LIST_TAG_SELECT, "SELECT %d",
		    ep->addr.db);
		c->nhandshake += rc == 0;
	}
	/* Ready means the server answered, not just that TCP connected. */
	rc = redis_list_conn_command(c, redis_list_handshake_cb,
	    (void *)(intptr_t)REDIS_LIST_TAG_PING, "PING");
	c->nhandshake += rc == 0;
	if (c->kind == REDIS_LIST_SUB)
		redis_list_conn_command(c, redis_list_handshake_cb,
		    (void *)(intptr_t)REDIS_LIST_TAG_CONFIG_GET,
		    "CONFIG GET notify-keyspace-events");
}

static void
redis_list_conn_init(struct redis_list_conn *c, struct redis_list_endpoint *ep,
    enum redis_list_kind kind)
{
	c->ep = ep;
	c->kind = kind;
	ev_timer_init(&c->connect_timer, redis_list_connect_timeout_cb, 0., 0.);
	ev_timer_init(&c->command_timer, redis_list_command_timeout_cb, 0.,
	    ep->command_timeout);
	ev_timer_init(&c->retry_timer, redis_list_retry_cb, 0., 0.);
	c->connect_timer.data = c->command_timer.data = c;
	c->retry_timer.data = c;
}

/* Endpoints. */

static int
redis_list_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == b);
	return (strcmp(a, b) == 0);
}

static const char *
redis_list_nonempty(const char *s)
{
	return (s != NULL && *s != '\0' ? s : NULL);
}

/* Finds or opens the endpoint for this source; the caller holds a ref. */
static struct redis_list_endpoint *
redis_list_endpoint_get(struct ev_loop *loop, const struct redis_addr *addr,
    const struct scaler_source *src)
{
	struct redis_list_endpoint *ep;
	const char	*pwfile = redis_list_nonempty(src->password_file);
	const char	*pwenv = redis_list_nonempty(src->password_env);
	double		 ct, mt;

	ct = src->connect_timeout > 0 ? src->connect_timeout :
	    REDIS_LIST_TIMEOUT;
	mt = src->command_timeout > 0 ? src->command_timeout :
	    REDIS_LIST_TIMEOUT;
	LIST_FOREACH(ep, &redis_list_endpoints, entry) {
		if (ep->loop == loop && ep->addr.port == addr->port &&
		    ep->addr.db == addr->db &&
		    strcmp(ep->addr.host, addr->host) == 0 &&
		    redis_list_same(ep->password_file, pwfile) &&
		    redis_list_same(ep->password_env, pwenv))
			break;
	}
	if (ep != NULL) {
		/* Shared sockets get the strictest deadlines asked for. */
		if (ct < ep->connect_timeout)
			ep->connect_timeout = ct;
		if (mt < ep->command_timeout) {
			ep->command_timeout = mt;
			ep->main.command_timer.repeat = mt;
			ep->sub.command_timer.repeat = mt;
		}
		ep->refs++;
		return (ep);
	}

	ep = xcalloc(1, sizeof *ep);
	ep->loop = loop;
	ep->addr = *addr;
	if (strchr(addr->host, ':') != NULL)
		snprintf(ep->name, sizeof ep->name, "[%s]:%d", addr->host,
		    addr->port);
	else
		snprintf(ep->name, sizeof ep->name, "%s:%d", addr->host,
		    addr->port);
	ep->password_file = pwfile != NULL ? xstrdup(pwfile) : NULL;
	ep->password_env = pwenv != NULL ? xstrdup(pwenv) : NULL;
	ep->connect_timeout = ct;
	ep->command_timeout = mt;
	ep->refs = 1;
	LIST_INIT(&ep->scalers);
	redis_list_conn_init(&ep->main, ep, REDIS_LIST_MAIN);
	redis_list_conn_init(&ep->sub, ep, REDIS_LIST_SUB);
	LIST_INSERT_HEAD(&redis_list_endpoints, ep, entry);
	redis_list_conn_start(&ep->main);
	return (ep);
}

/* Drops a ref; the last one closes both connections and frees. */
static void
redis_list_endpoint_put(struct redis_list_endpoint *ep)
{
	if (--ep->refs > 0)
		return;
	LIST_REMOVE(ep, entry);
	redis_list_conn_close(&ep->sub);
	redis_list_conn_close(&ep->main);
	free(ep->password_file);
	free(ep->password_env);
	free(ep);
}

/* Keyspace subscriptions, one SUBSCRIBE per distinct channel. */

static int
redis_list_channel_is(const struct redis_list_scaler *s, const char *name,
    size_t len)
{
	return (s->channel != NULL && strlen(s->channel) == len &&
	    memcmp(s->channel, name, len) == 0);
}

static void	 redis_list_sub_cb(redisAsyncContext *, void *, void *);

static void
redis_list_sub_watch(struct redis_list_endpoint *ep,
    struct redis_list_scaler *s)
{
	struct redis_list_scaler *o;

	if (ep->sub.ac == NULL || !ep->sub.push_ok)
		return;
	LIST_FOREACH(o, &ep->scalers, entry) {
		if (o != s && o->sub != REDIS_LIST_SUB_NONE &&
		    strcmp(o->channel, s->channel) == 0) {
			s->sub = o->sub;
			return;
		}
	}
	if (redis_list_conn_command(&ep->sub, redis_list_sub_cb, NULL,
	    "SUBSCRIBE %s", s->channel) == 0)
		s->sub = REDIS_LIST_SUB_SENT;
}

static void
redis_list_sub_unwatch(struct redis_list_endpoint *ep,
    struct redis_list_scaler *s)
{
	struct redis_list_scaler *o;

	if (s->sub == REDIS_LIST_SUB_NONE || ep->sub.ac == NULL)
		return;
	s->sub = REDIS_LIST_SUB_NONE;
	LIST_FOREACH(o, &ep->scalers, entry) {
		if (o != s && o->sub != REDIS_LIST_SUB_NONE &&
		    strcmp(o->channel, s->channel) == 0)
			return;
	}
	/* No reply callback: hiredis routes "unsubscribe" to the channel's. */
	redisAsyncCommand(ep->sub.ac, NULL, NULL, "UNSUBSCRIBE %s",
	    s->channel);
}

/*
 * Subscription replies and keyspace events.  Wake-ups are delivered from
 * each instance's zero-delay timer: never from inside hiredis, and several
 * events in one loop iteration make one wake-up.
 */
static void
redis_list_sub_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_list_conn *c = ac->data;
	struct redis_list_scaler *s;
	redisReply	*reply = r;
	const char	*kind, *chan;
	size_t		 len;

	(void)privdata;
	if (c == NULL)
		return;
	if (reply == NULL) {
		redis_list_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING)
		return;
	kind = reply->element[0]->str;
	chan = reply->element[1]->str;
	len = reply->element[1]->len;
	if (strcasecmp(kind, "subscribe") == 0) {
		redis_list_conn_replied(c);
		LIST_FOREACH(s, &c->ep->scalers, entry) {
			if (redis_list_channel_is(s, chan, len) &&
			    s->sub != REDIS_LIST_SUB_NONE)
				s->sub = REDIS_LIST_SUB_LIVE;
		}
	} else if (strcasecmp(kind, "message") == 0) {
		LIST_FOREACH(s, &c->ep->scalers, entry) {
			if (s->wake_fn != NULL &&
			    redis_list_channel_is(s, chan, len) &&
			    !ev_is_active(&s->wake_timer)) {
				ev_timer_set(&s->wake_timer, 0., 0.);
				ev_timer_start(s->loop, &s->wake_timer);
			}
		}
	}
}

/* Polls. */

static void
redis_list_result_error(struct scaler_result *res, int err,
    const struct redis_list_endpoint *ep, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
redis_list_result_error(struct scaler_result *res, int err,
    const struct redis_list_endpoint *ep, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	res->error = err;
	n = snprintf(res->errmsg, sizeof res->errmsg, "redis %s: ", ep->name);
	if (n < 0 || (size_t)n >= sizeof res->errmsg)
		return;
	va_start(ap, fmt);
	vsnprintf(res->errmsg + n, sizeof res->errmsg - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Completes a poll on a later loop turn (contract: never before return). */
static void
redis_list_later(struct redis_list_scaler *s)
{
	ev_timer_set(&s->later_timer, 0., 0.);
	ev_timer_start(s->loop, &s->later_timer);
}

static void
redis_list_later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_list_scaler *s = w->data;
	struct scaler_result res = s->later;
	scaler_done_fn	*fn = s->done_fn;

	(void)loop;
	(void)revents;
	s->done_fn = NULL;
	fn(&s->base, &res, s->done_arg);	/* may destroy s */
}

static void
redis_list_wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_list_scaler *s = w->data;

	(void)loop;
	(void)revents;
	s->wake_fn(&s->base, s->wake_arg);	/* may destroy s */
}

/* A NULL reply: the context went away; say why, from the endpoint. */
static void
redis_list_poll_lost(struct redis_list_poll *p)
{
	const struct redis_list_conn *c;

	if (p->s == NULL || p->res.error != 0)
		return;
	c = &p->s->ep->main;
	redis_list_result_error(&p->res, c->err != 0 ? c->err : -AS_ECONN,
	    p->s->ep, "%s", c->cause[0] != '\0' ? c->cause :
	    "connection lost");
}

static void
redis_list_poll_take(struct redis_list_poll *p, unsigned idx,
    const redisReply *reply)
{
	const char	*key;
	int		 err;

	if (p->s == NULL || p->res.error != 0)
		return;
	key = idx == 0 ? p->s->queue : p->s->processing;
	if (reply->type == REDIS_REPLY_INTEGER) {
		if (idx == 0)
			p->res.ready = (double)reply->integer;
		else
			p->res.in_flight = (double)reply->integer;
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		err = strncmp(reply->str, "NOAUTH", 6) == 0 ||
		    strncmp(reply->str, "WRONGPASS", 9) == 0 ||
		    strncmp(reply->str, "NOPERM", 6) == 0 ? -AS_EAUTH :
		    -AS_EPROTO;
		redis_list_result_error(&p->res, err, p->s->ep,
		    "LLEN %.40s: %.100s", key, reply->str);
	} else
		redis_list_result_error(&p->res, -AS_EPROTO, p->s->ep,
		    "LLEN %.40s: unexpected reply type %d", key, reply->type);
}

static void
redis_list_poll_finish(struct redis_list_poll *p)
{
	struct redis_list_scaler *s = p->s;
	struct scaler_result res = p->res;
	scaler_done_fn	*fn;

	free(p);
	if (s == NULL)
		return;			/* destroy() already completed it */
	s->poll = NULL;
	fn = s->done_fn;
	s->done_fn = NULL;
	fn(&s->base, &res, s->done_arg);	/* may destroy s */
}

static void
redis_list_llen_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_list_conn *c = ac->data;
	struct redis_list_poll *p = privdata;
	unsigned	 idx = p->nreplies++;

	if (r == NULL) {
		/* data still set: hiredis is freeing on its own. */
		if (c != NULL)
			redis_list_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
		redis_list_poll_lost(p);
	} else {
		if (c != NULL)
			redis_list_conn_replied(c);
		redis_list_poll_take(p, idx, r);
	}
	if (--p->outstanding == 0)
		redis_list_poll_finish(p);
}

/* The vtable. */

static int
redis_list_validate(const struct scaler_source *src, char *err, size_t errlen)
{
	struct redis_addr addr;
	int		 rc;

	if (src->address == NULL) {
		snprintf(err, errlen, "redis-list needs an address "
		    "(redis://host:port/db)");
		return (-AS_EINVAL);
	}
	if ((rc = redis_list_parse_address(src->address, &addr, err,
	    errlen)) != 0)
		return (rc);
	if (src->queue == NULL || *src->queue == '\0') {
		snprintf(err, errlen, "redis-list needs a queue (list key)");
		return (-AS_EINVAL);
	}
	if (src->processing != NULL && *src->processing == '\0') {
		snprintf(err, errlen, "the processing list name is empty");
		return (-AS_EINVAL);
	}
	if (redis_list_nonempty(src->password_file) != NULL &&
	    redis_list_nonempty(src->password_env) != NULL) {
		snprintf(err, errlen, "set password_file or password_env, "
		    "not both");
		return (-AS_EINVAL);
	}
	if (!(src->connect_timeout >= 0) || !(src->command_timeout >= 0) ||
	    isinf(src->connect_timeout) || isinf(src->command_timeout)) {
		snprintf(err, errlen, "timeouts must be finite and not "
		    "negative");
		return (-AS_EINVAL);
	}
	return (0);
}

static struct scaler *
redis_list_create(struct ev_loop *loop, const struct scaler_source *src,
    char *err, size_t errlen)
{
	struct redis_list_scaler *s;
	struct redis_addr addr;

	if (redis_list_validate(src, err, errlen) != 0)
		return (NULL);
	if (redis_list_parse_address(src->address, &addr, err, errlen) != 0)
		return (NULL);
	s = xcalloc(1, sizeof *s);
	s->base.type = &scaler_type_redis_list;
	s->loop = loop;
	s->queue = xstrdup(src->queue);
	if (src->count_in_flight && src->processing != NULL)
		s->processing = xstrdup(src->processing);
	ev_timer_init(&s->later_timer, redis_list_later_cb, 0., 0.);
	ev_timer_init(&s->wake_timer, redis_list_wake_cb, 0., 0.);
	s->later_timer.data = s->wake_timer.data = s;
	s->ep = redis_list_endpoint_get(loop, &addr, src);
	LIST_INSERT_HEAD(&s->ep->scalers, s, entry);
	return (&s->base);
}

/*
 * Queues LLEN (and LLEN of the processing list) on the endpoint's shared
 * connection.  While it is down the poll completes on the next loop turn
 * with the last cause: -AS_EAUTH after an authentication failure,
 * -AS_ECONN otherwise.  Returns -AS_EAGAIN while a poll is pending.
 */
static int
redis_list_poll(struct scaler *base, scaler_done_fn *fn, void *arg)
{
	struct redis_list_scaler *s = (struct redis_list_scaler *)base;
	struct redis_list_conn *c = &s->ep->main;
	struct redis_list_poll *p;

	if (fn == NULL)
		return (-AS_EINVAL);
	if (s->done_fn != NULL)
		return (-AS_EAGAIN);
	s->done_fn = fn;
	s->done_arg = arg;
	memset(&s->later, 0, sizeof s->later);

	p = xcalloc(1, sizeof *p);
	p->s = s;
	if (redis_list_conn_command(c, redis_list_llen_cb, p, "LLEN %b",
	    s->queue, strlen(s->queue)) != 0) {
		free(p);
		redis_list_result_error(&s->later, c->err == -AS_EAUTH ?
		    -AS_EAUTH : -AS_ECONN, s->ep, "not connected: %s",
		    c->cause[0] != '\0' ? c->cause : "connection closed");
		if (c->ac == NULL && !ev_is_active(&c->retry_timer))
			redis_list_conn_fail(c, -AS_ECONN, "not connected");
		redis_list_later(s);
		return (0);
	}
	p->outstanding = 1;
	if (s->processing != NULL) {
		if (redis_list_conn_command(c, redis_list_llen_cb, p,
		    "LLEN %b", s->processing, strlen(s->processing)) == 0)
			p->outstanding++;
		else
			redis_list_result_error(&p->res, -AS_ECONN, s->ep,
			    "cannot queue LLEN %.40s", s->processing);
	}
	s->poll = p;
	return (0);
}

/*
 * Push mode: a subscriber connection per endpoint listens on
 * __keyspace@<db>__:<queue>.  Returns 0 even when the server later refuses
 * CONFIG (the log says so and pushing() stays 0).
 */
static int
redis_list_subscribe(struct scaler *base, scaler_wake_fn *fn, void *arg)
{
	struct redis_list_scaler *s = (struct redis_list_scaler *)base;
	struct redis_list_endpoint *ep = s->ep;
	int		 first = s->wake_fn == NULL;

	if (fn == NULL)
		return (-AS_EINVAL);
	s->wake_fn = fn;
	s->wake_arg = arg;
	if (!first)
		return (0);
	s->channel = xasprintf("__keyspace@%d__:%s", ep->addr.db, s->queue);
	if (ep->sub.ac == NULL && !ev_is_active(&ep->sub.retry_timer))
		redis_list_conn_start(&ep->sub);
	else
		redis_list_sub_watch(ep, s);
	return (0);
}

static int
redis_list_pushing(const struct scaler *base)
{
	const struct redis_list_scaler *s =
	    (const struct redis_list_scaler *)base;

	return (s->sub == REDIS_LIST_SUB_LIVE);
}

/*
 * Completes a pending poll with -AS_ECANCELED before returning; its LLENs
 * stay with hiredis, orphaned, until their replies or the context's end.
 */
static void
redis_list_destroy(struct scaler *base)
{
	struct redis_list_scaler *s = (struct redis_list_scaler *)base;
	struct redis_list_endpoint *ep = s->ep;
	struct scaler_result res;
	scaler_done_fn	*fn = s->done_fn;
	void		*arg = s->done_arg;

	ev_timer_stop(s->loop, &s->later_timer);
	ev_timer_stop(s->loop, &s->wake_timer);
	s->done_fn = NULL;
	if (s->poll != NULL) {
		s->poll->s = NULL;
		s->poll = NULL;
	}
	memset(&res, 0, sizeof res);
	redis_list_result_error(&res, -AS_ECANCELED, ep, "poll canceled: "
	    "source destroyed");
	redis_list_sub_unwatch(ep, s);
	LIST_REMOVE(s, entry);
	redis_list_endpoint_put(ep);
	s->ep = NULL;
	if (fn != NULL)
		fn(&s->base, &res, arg);
	free(s->queue);
	free(s->processing);
	free(s->channel);
	free(s);
}

const struct scaler_type scaler_type_redis_list = {
	.name = "redis-list",
	.validate = redis_list_validate,
	.create = redis_list_create,
	.poll = redis_list_poll,
	.subscribe = redis_list_subscribe,
	.pushing = redis_list_pushing,
	.destroy = redis_list_destroy,
};
