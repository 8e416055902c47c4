/*
 * redis_endpoint.c: the Redis endpoints every Redis source shares, read with
 * hiredis 0.14.1 on the caller's libev loop.
 *
 * Endpoints.  Every source belongs to one endpoint, shared by all the
 * sources on the same loop with the same host, port, database and password
 * source, whatever their type (redis-list, redis-stream), and refcounted
 * by them.  An endpoint owns two connections: "main", on which every
 * source's commands go, and "sub", opened by the first subscribe(), which
 * carries keyspace notifications.  hiredis only appends a command to its
 * output buffer and arms the write watcher; the write happens when the loop
 * next finds the socket writable.  So all the polls issued during one loop
 * iteration, for every pool on the endpoint, leave in one write and come
 * back as one pipelined batch.
 *
 * Lifetimes.  hiredis calls each command callback exactly once, with NULL
 * when the context goes away, and frees the context itself after an I/O
 * error or a failed connect.  One rule keeps that safe: a context's data
 * points to its connection exactly while the endpoint considers it
 * current.  Whoever retires a context (redis_endpoint_conn_lost() or
 * redis_endpoint_conn_close()) first clears both pointers, so callbacks
 * that run later, possibly after the endpoint is gone, see data == NULL and
 * only release their own privdata.  Callers' code (completions) runs only
 * from poll reply callbacks and from our own timers, and nothing touches the
 * endpoint after calling it: a completion may destroy the last source,
 * which frees the endpoint at once (redisAsyncFree() from inside a reply
 * callback is deferred by hiredis until the callback returns).
 *
 * hiredis calls the connect and disconnect callbacks without its "in
 * callback" guard, so a free there would not be deferred; caller code never
 * runs there, nor in the subscriber's callbacks: wake-ups go through a
 * zero-delay timer per source.
 *
 * Keyspace notifications.  Each source says which notification classes its
 * key raises (l for lists, t for streams; g for DEL and friends comes with
 * both).  The subscriber's handshake reads notify-keyspace-events and adds
 * what the sources then subscribed need; a source that subscribes later
 * with a class not yet on makes the endpoint ask again, on the main
 * connection (a subscribed connection accepts no CONFIG).  Flags are only
 * ever added, never removed.
 *
 * Timeouts.  0.14.1 has none, so each connection runs a connect timer, a
 * command timer (re-armed with ev_timer_again while replies are awaited)
 * and a retry timer for the jittered reconnect.  A timer that expires frees
 * the context from outside any hiredis callback; the pending commands then
 * complete with -AS_ETIMEDOUT.
 *
 * hiredis 0.14.1 writes with write(2), so the process must ignore SIGPIPE.
 */
#include <sys/queue.h>

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
#include "agentscaler/redis_endpoint.h"
#include "agentscaler/scaler.h"
#include "agentscaler/scaler_later.h"
#include "agentscaler/scaler_url.h"

#define REDIS_ENDPOINT_LOG		"redis"
#define REDIS_ENDPOINT_TIMEOUT		2.0	/* connect, command: s */
#define REDIS_ENDPOINT_BACKOFF_BASE	0.1
#define REDIS_ENDPOINT_BACKOFF_CAP	5.0
#define REDIS_ENDPOINT_RECHECK		60.0	/* CONFIG refused: s */

/* K, the keyspace channel itself, next to the REDIS_ENDPOINT_EV_* classes. */
#define REDIS_ENDPOINT_EV_KEYSPACE	0x100

enum redis_endpoint_kind {
	REDIS_ENDPOINT_MAIN,
	REDIS_ENDPOINT_SUB
};

/* What a handshake reply answers; passed as the command's privdata. */
enum redis_endpoint_tag {
	REDIS_ENDPOINT_TAG_AUTH = 1,
	REDIS_ENDPOINT_TAG_SELECT,
	REDIS_ENDPOINT_TAG_PING,
	REDIS_ENDPOINT_TAG_CONFIG_GET,
	REDIS_ENDPOINT_TAG_CONFIG_SET
};

enum redis_endpoint_push {
	REDIS_ENDPOINT_PUSH_UNKNOWN,
	REDIS_ENDPOINT_PUSH_LIVE,
	REDIS_ENDPOINT_PUSH_REFUSED
};

enum redis_endpoint_sub {
	REDIS_ENDPOINT_SUB_NONE,	/* no SUBSCRIBE on the current conn */
	REDIS_ENDPOINT_SUB_SENT,
	REDIS_ENDPOINT_SUB_LIVE		/* the server confirmed it */
};

struct redis_endpoint_conn {
	struct redis_endpoint	*ep;
	enum redis_endpoint_kind kind;
	redisAsyncContext	*ac;		/* NULL while down */
	int			 connected;	/* TCP connect finished */
	int			 ready;		/* handshake answered */
	int			 was_ready;	/* ready at least once */
	int			 push_ok;	/* sub: events enabled */
	int			 checking;	/* CONFIG in flight */
	unsigned		 setting;	/* what CONFIG SET sets */
	unsigned		 attempt;	/* failures since last ready */
	unsigned		 npending;	/* replies awaited */
	unsigned		 nhandshake;	/* AUTH, SELECT, PING */
	char			*secret;	/* until AUTH answers */
	int			 err;		/* last failure */
	char			 cause[160];	/* its text */
	ev_timer		 connect_timer;
	ev_timer		 command_timer;
	ev_timer		 retry_timer;
};

struct redis_endpoint {
	LIST_ENTRY(redis_endpoint) entry;
	struct ev_loop		*loop;
	struct redis_addr	 addr;
	char			 name[272];	/* host:port */
	char			*password_file;
	char			*password_env;
	double			 connect_timeout;
	double			 command_timeout;
	unsigned		 refs;
	LIST_HEAD(, redis_endpoint_source) sources;
	struct redis_endpoint_conn main;
	struct redis_endpoint_conn sub;
	unsigned		 ev_on;		/* classes on */
	unsigned		 ev_refused;	/* SET refused */
	enum redis_endpoint_push push_logged;	/* mode last announced */
};

/* One command of a poll; the privdata of its hiredis callback. */
struct redis_endpoint_cmd {
	struct redis_endpoint_poll *p;
	int			 tag;
};

static void	 redis_endpoint_conn_start(struct redis_endpoint_conn *);
static void	 redis_endpoint_conn_lost(struct redis_endpoint_conn *, int,
		    const char *, int);
static void	 redis_endpoint_sub_watch(struct redis_endpoint *,
		    struct redis_endpoint_source *);
static void	 redis_endpoint_config_extend(struct redis_endpoint *);

static LIST_HEAD(, redis_endpoint) redis_endpoints =
    LIST_HEAD_INITIALIZER(redis_endpoints);

/*
 * The address parser; the authority is scalers/url.c's.  Error messages
 * never quote the authority part, since a rejected address may carry a
 * password.
 */
static const struct scaler_url_texts redis_endpoint_url_texts = {
	.credentials = "password_file or password_env",
	.ipv6_example = "redis://[::1]:6379/0",
};

_Static_assert(sizeof ((struct redis_addr *)0)->host >=
    SCALER_URL_HOST_MAX + 1, "redis_addr.host holds any parsed host");

int
redis_endpoint_parse_address(const char *url, struct redis_addr *out,
    char *err, size_t errlen)
{
	struct scaler_url_authority a;
	const char	*p;
	size_t		 slen;
	long		 v = 0;

	memset(out, 0, sizeof *out);
	if (url == NULL || *url == '\0') {
		snprintf(err, errlen, "empty address; expected "
		    "redis://host:port/db");
		return (-AS_EINVAL);
	}
	if ((slen = scaler_url_scheme_length(url)) == 0) {
		snprintf(err, errlen, "address must start with redis://");
		return (-AS_EINVAL);
	}
	if (slen == 6 && strncasecmp(url, "rediss", 6) == 0) {
		/* hiredis_ssl arrived in hiredis 1.0; Debian 12 has 0.14.1. */
		snprintf(err, errlen, "rediss:// needs hiredis >= 1.0 with "
		    "TLS; this build has %d.%d.%d", HIREDIS_MAJOR,
		    HIREDIS_MINOR, HIREDIS_PATCH);
		return (-AS_EINVAL);
	}
	if (slen != 5 || strncasecmp(url, "redis", 5) != 0) {
		snprintf(err, errlen, "unsupported scheme \"%.*s\"; expected "
		    "redis://", (int)slen, url);
		return (-AS_EINVAL);
	}
	if (scaler_url_parse_authority(url + slen + 3,
	    &redis_endpoint_url_texts, &a, err, errlen) != 0)
		return (-AS_EINVAL);

	p = a.end;
	if (*p == '?' || *p == '#') {
		snprintf(err, errlen, "query strings and fragments are not "
		    "supported; the database goes in the path: /db");
		return (-AS_EINVAL);
	}
	if (*p == '/' && p[1] != '\0') {
		if (scaler_url_parse_number(p + 1, p + strlen(p),
		    2147483647L, &v) != 0) {
			snprintf(err, errlen, "database must be a number from "
			    "0 to 2147483647, as in redis://host:6379/0");
			return (-AS_EINVAL);
		}
		out->db = (int)v;
	}
	as_strlcpy(out->host, a.host, sizeof out->host);
	out->port = a.port != 0 ? a.port : 6379;
	return (0);
}

/* Secrets. */

static void
redis_endpoint_secret_free(char *secret)
{
	if (secret != NULL) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
}

/* Reads the password afresh; *secretp stays NULL when none is set. */
static int
redis_endpoint_secret_read(const struct redis_endpoint *ep, char **secretp,
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
			redis_endpoint_secret_free(*secretp);
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

/* Connections. */

static const char *
redis_endpoint_conn_what(const struct redis_endpoint_conn *c)
{
	return (c->kind == REDIS_ENDPOINT_MAIN ? "connection" :
	    "subscriber connection");
}

/*
 * Queues one command; npending counts the replies we wait for, and the
 * command timer runs while it is non-zero on a connected socket.  Returns
 * 0, or -AS_ECONN when the context no longer accepts commands.
 */
static int
redis_endpoint_conn_commandv(struct redis_endpoint_conn *c,
    redisCallbackFn *fn, void *privdata, const char *fmt, va_list ap)
{
	if (c->ac == NULL)
		return (-AS_ECONN);
	if (redisvAsyncCommand(c->ac, fn, privdata, fmt, ap) != REDIS_OK)
		return (-AS_ECONN);
	if (c->npending++ == 0 && c->connected)
		ev_timer_again(c->ep->loop, &c->command_timer);
	return (0);
}

static int
redis_endpoint_conn_command(struct redis_endpoint_conn *c,
    redisCallbackFn *fn, void *privdata, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = redis_endpoint_conn_commandv(c, fn, privdata, fmt, ap);
	va_end(ap);
	return (rc);
}

/* One awaited reply arrived: progress, so the command deadline moves. */
static void
redis_endpoint_conn_replied(struct redis_endpoint_conn *c)
{
	if (c->npending > 0)
		c->npending--;
	if (c->npending > 0)
		ev_timer_again(c->ep->loop, &c->command_timer);
	else
		ev_timer_stop(c->ep->loop, &c->command_timer);
}

static void
redis_endpoint_conn_reset(struct redis_endpoint_conn *c)
{
	struct ev_loop	*loop = c->ep->loop;

	ev_timer_stop(loop, &c->connect_timer);
	ev_timer_stop(loop, &c->command_timer);
	c->connected = c->ready = c->push_ok = c->checking = 0;
	c->setting = 0;
	c->npending = c->nhandshake = 0;
	redis_endpoint_secret_free(c->secret);
	c->secret = NULL;
}

/*
 * The subscriber went away: nothing is subscribed any more, and the next
 * one reads the server's flags afresh (a restarted server lost them).
 */
static void
redis_endpoint_sub_reset(struct redis_endpoint *ep)
{
	struct redis_endpoint_source *s;

	LIST_FOREACH(s, &ep->sources, entry)
		s->sub = REDIS_ENDPOINT_SUB_NONE;
	ep->ev_on = ep->ev_refused = 0;
}

/*
 * Records why a connection is down, logs it once per outage, and arms the
 * retry timer.  err 0 means a deliberate close that is not worth a log.
 */
static void
redis_endpoint_conn_down(struct redis_endpoint_conn *c, int err,
    const char *cause)
{
	struct redis_endpoint *ep = c->ep;
	double		 delay;

	if (err != 0) {
		c->err = err;
		as_strlcpy(c->cause, cause != NULL && *cause != '\0' ? cause :
		    "connection closed", sizeof c->cause);
		if (c->ready)
			log_warn(REDIS_ENDPOINT_LOG, "%s: %s lost: %s",
			    ep->name, redis_endpoint_conn_what(c), c->cause);
		else if (c->attempt == 0)
			log_warn(REDIS_ENDPOINT_LOG, "%s: cannot open the %s: "
			    "%s; retrying with backoff", ep->name,
			    redis_endpoint_conn_what(c), c->cause);
		else
			log_debug(REDIS_ENDPOINT_LOG, "%s: %s attempt %u: %s",
			    ep->name, redis_endpoint_conn_what(c),
			    c->attempt + 1, c->cause);
	}
	if (c->ready)
		c->attempt = 0;
	if (c->kind == REDIS_ENDPOINT_SUB)
		redis_endpoint_sub_reset(ep);
	if (err == 0)
		delay = REDIS_ENDPOINT_RECHECK;
	else
		delay = as_backoff(REDIS_ENDPOINT_BACKOFF_BASE,
		    REDIS_ENDPOINT_BACKOFF_CAP, c->attempt);
	if (c->attempt < 64)
		c->attempt++;
	redis_endpoint_conn_reset(c);
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
redis_endpoint_conn_lost(struct redis_endpoint_conn *c, int err,
    const char *cause, int lib_frees)
{
	struct redis_endpoint *ep = c->ep;
	redisAsyncContext *ac = c->ac;

	if (ac == NULL)
		return;
	c->ac = NULL;
	ac->data = NULL;
	redis_endpoint_conn_down(c, err, cause);
	/* A server that stopped answering one socket is not serving pushes. */
	if (c->kind == REDIS_ENDPOINT_MAIN && err == -AS_ETIMEDOUT)
		redis_endpoint_conn_lost(&ep->sub, -AS_ECONN, "the main "
		    "connection timed out", 0);
	if (!lib_frees)
		redisAsyncFree(ac);
}

/* Retires the context for good: the endpoint is going away. */
static void
redis_endpoint_conn_close(struct redis_endpoint_conn *c)
{
	redisAsyncContext *ac = c->ac;

	redis_endpoint_conn_reset(c);
	ev_timer_stop(c->ep->loop, &c->retry_timer);
	if (ac != NULL) {
		c->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac);
	}
}

/* Marks a connection down without a context (nothing to free). */
static void
redis_endpoint_conn_fail(struct redis_endpoint_conn *c, int err,
    const char *cause)
{
	redis_endpoint_conn_down(c, err, cause);
}

static void
redis_endpoint_conn_ready(struct redis_endpoint_conn *c)
{
	struct redis_endpoint *ep = c->ep;

	c->ready = 1;
	if (c->was_ready)
		log_info(REDIS_ENDPOINT_LOG, "%s: %s restored", ep->name,
		    redis_endpoint_conn_what(c));
	else if (c->attempt > 0)
		log_info(REDIS_ENDPOINT_LOG, "%s: %s open", ep->name,
		    redis_endpoint_conn_what(c));
	else
		log_debug(REDIS_ENDPOINT_LOG, "%s: %s open", ep->name,
		    redis_endpoint_conn_what(c));
	c->was_ready = 1;
	c->attempt = 0;
	/* A class check that the main connection lost is asked again. */
	if (c->kind == REDIS_ENDPOINT_MAIN)
		redis_endpoint_config_extend(ep);
}

static void
redis_endpoint_connect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_endpoint_conn *c = ac->data;

	if (c == NULL)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context when we return. */
		redis_endpoint_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
		return;
	}
	c->connected = 1;
	ev_timer_stop(c->ep->loop, &c->connect_timer);
	if (c->npending > 0)
		ev_timer_again(c->ep->loop, &c->command_timer);
	if (c->nhandshake == 0)
		redis_endpoint_conn_ready(c);
}

static void
redis_endpoint_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_endpoint_conn *c = ac->data;

	(void)status;
	if (c != NULL)
		redis_endpoint_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
}

static void
redis_endpoint_connect_timeout_cb(struct ev_loop *loop, ev_timer *w,
    int revents)
{
	struct redis_endpoint_conn *c = w->data;
	char		 cause[96];

	(void)loop;
	(void)revents;
	snprintf(cause, sizeof cause, "connect timed out after %g s",
	    c->ep->connect_timeout);
	redis_endpoint_conn_lost(c, -AS_ETIMEDOUT, cause, 0);
}

static void
redis_endpoint_command_timeout_cb(struct ev_loop *loop, ev_timer *w,
    int revents)
{
	struct redis_endpoint_conn *c = w->data;
	char		 cause[96];

	(void)loop;
	(void)revents;
	snprintf(cause, sizeof cause, "command timed out: no reply within "
	    "%g s", c->ep->command_timeout);
	redis_endpoint_conn_lost(c, -AS_ETIMEDOUT, cause, 0);
}

static void
redis_endpoint_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	redis_endpoint_conn_start(w->data);
}

/* Keyspace-notification classes. */

/* The classes that notify-keyspace-events flags turn on. */
static unsigned
redis_endpoint_ev_parse(const char *flags)
{
	unsigned	 on = 0;

	if (strchr(flags, 'K') != NULL)
		on |= REDIS_ENDPOINT_EV_KEYSPACE;
	/* A is "g$lshzxetd" in Redis 7: every class we use. */
	if (strchr(flags, 'A') != NULL)
		on |= REDIS_ENDPOINT_EV_GENERIC | REDIS_ENDPOINT_EV_LIST |
		    REDIS_ENDPOINT_EV_STREAM;
	if (strchr(flags, 'g') != NULL)
		on |= REDIS_ENDPOINT_EV_GENERIC;
	if (strchr(flags, 'l') != NULL)
		on |= REDIS_ENDPOINT_EV_LIST;
	if (strchr(flags, 't') != NULL)
		on |= REDIS_ENDPOINT_EV_STREAM;
	return (on);
}

/* The flag letters of a set of classes, into buf (at least 5 bytes). */
static const char *
redis_endpoint_ev_letters(unsigned classes, char *buf)
{
	char	*p = buf;

	if (classes & REDIS_ENDPOINT_EV_KEYSPACE)
		*p++ = 'K';
	if (classes & REDIS_ENDPOINT_EV_GENERIC)
		*p++ = 'g';
	if (classes & REDIS_ENDPOINT_EV_LIST)
		*p++ = 'l';
	if (classes & REDIS_ENDPOINT_EV_STREAM)
		*p++ = 't';
	*p = '\0';
	return (buf);
}

/* The classes a source needs on the server: its own, g and K. */
static unsigned
redis_endpoint_ev_need(const struct redis_endpoint_source *s)
{
	return (s->classes | REDIS_ENDPOINT_EV_GENERIC |
	    REDIS_ENDPOINT_EV_KEYSPACE);
}

/* The union over the sources that asked for push, minus refusals. */
static unsigned
redis_endpoint_ev_want(const struct redis_endpoint *ep)
{
	const struct redis_endpoint_source *s;
	unsigned	 want = 0;

	LIST_FOREACH(s, &ep->sources, entry) {
		if (s->wake_fn != NULL)
			want |= redis_endpoint_ev_need(s);
	}
	return (want & ~ep->ev_refused);
}

/* Announces the push mode of an endpoint when it first settles or changes. */
static void
redis_endpoint_push_mode(struct redis_endpoint *ep,
    enum redis_endpoint_push m, const char *reason)
{
	if (m == ep->push_logged)
		return;
	ep->push_logged = m;
	if (m == REDIS_ENDPOINT_PUSH_LIVE)
		log_info(REDIS_ENDPOINT_LOG, "%s: push wake-ups via keyspace "
		    "notifications", ep->name);
	else
		log_warn(REDIS_ENDPOINT_LOG, "%s: polling only: %s", ep->name,
		    reason);
}

/*
 * CONFIG refused.  On the subscriber's handshake nothing can push: drop it
 * quietly and let the retry timer ask again much later.  On the main
 * connection (a later source needed more classes) the pushes already live
 * stay; the sources that needed the refused classes keep polling until the
 * subscriber reconnects.
 */
static void
redis_endpoint_config_refused(struct redis_endpoint_conn *c, const char *what,
    const char *reason)
{
	struct redis_endpoint *ep = c->ep;
	char		 cause[160], letters[8];
	unsigned	 missing;

	snprintf(cause, sizeof cause, "%s refused: %s", what, reason);
	c->checking = 0;
	if (c->kind == REDIS_ENDPOINT_SUB) {
		redis_endpoint_push_mode(ep, REDIS_ENDPOINT_PUSH_REFUSED,
		    cause);
		redis_endpoint_conn_lost(c, 0, cause, 0);
		return;
	}
	missing = redis_endpoint_ev_want(ep) & ~ep->ev_on;
	ep->ev_refused |= missing;
	log_warn(REDIS_ENDPOINT_LOG, "%s: no keyspace events of class %s, "
	    "those pools poll only: %s", ep->name,
	    redis_endpoint_ev_letters(missing, letters), cause);
}

/* The server has the classes in on: subscribe whoever they cover. */
static void
redis_endpoint_config_ok(struct redis_endpoint_conn *c, unsigned on)
{
	struct redis_endpoint *ep = c->ep;
	struct redis_endpoint_source *s;

	c->checking = 0;
	ep->ev_on = on;
	if (c->kind == REDIS_ENDPOINT_SUB)
		c->push_ok = 1;
	if (!ep->sub.push_ok)
		return;
	redis_endpoint_push_mode(ep, REDIS_ENDPOINT_PUSH_LIVE, NULL);
	LIST_FOREACH(s, &ep->sources, entry) {
		if (s->wake_fn != NULL && s->sub == REDIS_ENDPOINT_SUB_NONE)
			redis_endpoint_sub_watch(ep, s);
	}
	redis_endpoint_config_extend(ep);
}

static void	 redis_endpoint_handshake_cb(redisAsyncContext *, void *,
		    void *);

/*
 * CONFIG GET notify-keyspace-events answered.  Adds what the subscribed
 * sources need and the server lacks to its flags, rather than replacing
 * them.
 */
static void
redis_endpoint_config_got(struct redis_endpoint_conn *c, const redisReply *r)
{
	const char	*flags;
	char		 letters[8], want[48];
	unsigned	 on, missing;

	if (r->type == REDIS_REPLY_ERROR) {
		redis_endpoint_config_refused(c, "CONFIG GET", r->str);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		redis_endpoint_config_refused(c, "CONFIG GET",
		    "unexpected reply");
		return;
	}
	flags = r->element[1]->str;
	on = redis_endpoint_ev_parse(flags);
	missing = (redis_endpoint_ev_want(c->ep) | REDIS_ENDPOINT_EV_KEYSPACE |
	    REDIS_ENDPOINT_EV_GENERIC) & ~on;
	if (missing == 0) {
		redis_endpoint_config_ok(c, on);
		return;
	}
	c->setting = on | missing;
	/* hiredis's format knows %s but not a precision on it. */
	snprintf(want, sizeof want, "%.32s%s", flags,
	    redis_endpoint_ev_letters(missing, letters));
	if (redis_endpoint_conn_command(c, redis_endpoint_handshake_cb,
	    (void *)(intptr_t)REDIS_ENDPOINT_TAG_CONFIG_SET,
	    "CONFIG SET notify-keyspace-events %s", want) != 0)
		redis_endpoint_conn_lost(c, -AS_ECONN, "cannot queue CONFIG "
		    "SET", 0);
}

/*
 * A source subscribed after the subscriber's handshake and needs a class
 * the server does not have on: ask on the main connection, since the
 * subscribed one accepts no CONFIG.
 */
static void
redis_endpoint_config_extend(struct redis_endpoint *ep)
{
	struct redis_endpoint_conn *c = &ep->main;

	if (!ep->sub.push_ok || c->checking ||
	    (redis_endpoint_ev_want(ep) & ~ep->ev_on) == 0)
		return;
	if (redis_endpoint_conn_command(c, redis_endpoint_handshake_cb,
	    (void *)(intptr_t)REDIS_ENDPOINT_TAG_CONFIG_GET,
	    "CONFIG GET notify-keyspace-events") == 0)
		c->checking = 1;
}

/* AUTH, SELECT, PING and CONFIG replies. */
static void
redis_endpoint_handshake_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_endpoint_conn *c = ac->data;
	redisReply	*reply = r;
	char		 text[128], cause[160];

	if (c == NULL)
		return;
	if (reply == NULL) {
		redis_endpoint_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
		return;
	}
	redis_endpoint_conn_replied(c);
	switch ((enum redis_endpoint_tag)(intptr_t)privdata) {
	case REDIS_ENDPOINT_TAG_AUTH:
		c->nhandshake--;
		if (reply->type == REDIS_REPLY_ERROR) {
			as_redact(text, sizeof text, reply->str,
			    c->secret);
			snprintf(cause, sizeof cause, "authentication failed: "
			    "%s", text);
			redis_endpoint_conn_lost(c, -AS_EAUTH, cause, 0);
			return;
		}
		redis_endpoint_secret_free(c->secret);
		c->secret = NULL;
		break;
	case REDIS_ENDPOINT_TAG_SELECT:
		c->nhandshake--;
		if (reply->type == REDIS_REPLY_ERROR) {
			snprintf(cause, sizeof cause, "SELECT %d failed: "
			    "%.100s", c->ep->addr.db, reply->str);
			redis_endpoint_conn_lost(c, -AS_EINVAL, cause, 0);
			return;
		}
		break;
	case REDIS_ENDPOINT_TAG_PING:
		c->nhandshake--;
		if (reply->type == REDIS_REPLY_ERROR) {
			snprintf(cause, sizeof cause, "PING refused: %.100s",
			    reply->str);
			redis_endpoint_conn_lost(c, strncmp(reply->str,
			    "NOAUTH", 6) == 0 ? -AS_EAUTH : -AS_EPROTO, cause,
			    0);
			return;
		}
		break;
	case REDIS_ENDPOINT_TAG_CONFIG_GET:
		redis_endpoint_config_got(c, reply);
		return;
	case REDIS_ENDPOINT_TAG_CONFIG_SET:
		if (reply->type == REDIS_REPLY_ERROR)
			redis_endpoint_config_refused(c, "CONFIG SET",
			    reply->str);
		else
			redis_endpoint_config_ok(c, c->setting);
		return;
	}
	if (c->nhandshake == 0 && !c->ready)
		redis_endpoint_conn_ready(c);
}

/*
 * Opens a connection and queues its handshake: AUTH when a password is
 * configured, SELECT for a database other than 0, PING, and CONFIG GET on
 * the subscriber.  Everything queued before the connect completes goes out in
 * the first write.  Failures arm the retry timer.
 */
static void
redis_endpoint_conn_start(struct redis_endpoint_conn *c)
{
	struct redis_endpoint *ep = c->ep;
	redisAsyncContext *ac;
	char		*secret = NULL;
	char		 cause[160];
	int		 rc;

	ev_timer_stop(ep->loop, &c->retry_timer);
	if (c->ac != NULL)
		return;
	redis_endpoint_conn_reset(c);
	if ((rc = redis_endpoint_secret_read(ep, &secret, cause,
	    sizeof cause)) != 0) {
		redis_endpoint_conn_fail(c, rc, cause);
		return;
	}
	/* Note: hiredis 0.14.1 resolves names with a blocking getaddrinfo. */
	ac = redisAsyncConnect(ep->addr.host, ep->addr.port);
	if (ac == NULL || ac->err != 0) {
		as_strlcpy(cause, ac != NULL && ac->errstr != NULL ?
		    ac->errstr : "cannot allocate a context", sizeof cause);
		if (ac != NULL)
			redisAsyncFree(ac);
		redis_endpoint_secret_free(secret);
		redis_endpoint_conn_fail(c, -AS_ECONN, cause);
		return;
	}
	ac->data = c;
	redisLibevAttach(ep->loop, ac);
	redisAsyncSetConnectCallback(ac, redis_endpoint_connect_cb);
	redisAsyncSetDisconnectCallback(ac, redis_endpoint_disconnect_cb);
	c->ac = ac;
	ev_timer_set(&c->connect_timer, ep->connect_timeout, 0.);
	ev_timer_start(ep->loop, &c->connect_timer);
	c->command_timer.repeat = ep->command_timeout;

	if (secret != NULL) {
		rc = redis_endpoint_conn_command(c,
		    redis_endpoint_handshake_cb,
		    (void *)(intptr_t)REDIS_ENDPOINT_TAG_AUTH, "AUTH %b",
		    secret, strlen(secret));
		c->secret = secret;	/* kept to redact the reply */
		c->nhandshake += rc == 0;
	}
	if (c->kind == REDIS_ENDPOINT_MAIN && ep->addr.db != 0) {
		rc = redis_endpoint_conn_command(c,
		    redis_endpoint_handshake_cb,
		    (void *)(intptr_t)REDIS_ENDPOINT_TAG_SELECT, "SELECT %d",
		    ep->addr.db);
		c->nhandshake += rc == 0;
	}
	/* Ready means the server answered, not just that TCP connected. */
	rc = redis_endpoint_conn_command(c, redis_endpoint_handshake_cb,
	    (void *)(intptr_t)REDIS_ENDPOINT_TAG_PING, "PING");
	c->nhandshake += rc == 0;
	if (c->kind == REDIS_ENDPOINT_SUB &&
	    redis_endpoint_conn_command(c, redis_endpoint_handshake_cb,
	    (void *)(intptr_t)REDIS_ENDPOINT_TAG_CONFIG_GET,
	    "CONFIG GET notify-keyspace-events") == 0)
		c->checking = 1;
}

static void
redis_endpoint_conn_init(struct redis_endpoint_conn *c,
    struct redis_endpoint *ep, enum redis_endpoint_kind kind)
{
	c->ep = ep;
	c->kind = kind;
	ev_timer_init(&c->connect_timer, redis_endpoint_connect_timeout_cb,
	    0., 0.);
	ev_timer_init(&c->command_timer, redis_endpoint_command_timeout_cb,
	    0., ep->command_timeout);
	ev_timer_init(&c->retry_timer, redis_endpoint_retry_cb, 0., 0.);
	c->connect_timer.data = c->command_timer.data = c;
	c->retry_timer.data = c;
}

/* Endpoints. */

static int
redis_endpoint_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == b);
	return (strcmp(a, b) == 0);
}

static const char *
redis_endpoint_nonempty(const char *s)
{
	return (s != NULL && *s != '\0' ? s : NULL);
}

/* Finds or opens the endpoint for this source; the caller holds a ref. */
static struct redis_endpoint *
redis_endpoint_get(struct ev_loop *loop, const struct redis_addr *addr,
    const struct scaler_source *src)
{
	struct redis_endpoint *ep;
	const char	*pwfile = redis_endpoint_nonempty(src->password_file);
	const char	*pwenv = redis_endpoint_nonempty(src->password_env);
	double		 ct, mt;

	ct = src->connect_timeout > 0 ? src->connect_timeout :
	    REDIS_ENDPOINT_TIMEOUT;
	mt = src->command_timeout > 0 ? src->command_timeout :
	    REDIS_ENDPOINT_TIMEOUT;
	LIST_FOREACH(ep, &redis_endpoints, entry) {
		if (ep->loop == loop && ep->addr.port == addr->port &&
		    ep->addr.db == addr->db &&
		    strcmp(ep->addr.host, addr->host) == 0 &&
		    redis_endpoint_same(ep->password_file, pwfile) &&
		    redis_endpoint_same(ep->password_env, pwenv))
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
	LIST_INIT(&ep->sources);
	redis_endpoint_conn_init(&ep->main, ep, REDIS_ENDPOINT_MAIN);
	redis_endpoint_conn_init(&ep->sub, ep, REDIS_ENDPOINT_SUB);
	LIST_INSERT_HEAD(&redis_endpoints, ep, entry);
	redis_endpoint_conn_start(&ep->main);
	return (ep);
}

/* Drops a ref; the last one closes both connections and frees. */
static void
redis_endpoint_put(struct redis_endpoint *ep)
{
	if (--ep->refs > 0)
		return;
	LIST_REMOVE(ep, entry);
	redis_endpoint_conn_close(&ep->sub);
	redis_endpoint_conn_close(&ep->main);
	free(ep->password_file);
	free(ep->password_env);
	free(ep);
}

const char *
redis_endpoint_name(const struct redis_endpoint *ep)
{
	return (ep->name);
}

/* Keyspace subscriptions, one SUBSCRIBE per distinct channel. */

static int
redis_endpoint_channel_is(const struct redis_endpoint_source *s,
    const char *name, size_t len)
{
	return (s->channel != NULL && strlen(s->channel) == len &&
	    memcmp(s->channel, name, len) == 0);
}

static void	 redis_endpoint_sub_cb(redisAsyncContext *, void *, void *);

/* Subscribes s, unless the server lacks one of its classes. */
static void
redis_endpoint_sub_watch(struct redis_endpoint *ep,
    struct redis_endpoint_source *s)
{
	struct redis_endpoint_source *o;

	if (ep->sub.ac == NULL || !ep->sub.push_ok ||
	    (redis_endpoint_ev_need(s) & ~ep->ev_on) != 0)
		return;
	LIST_FOREACH(o, &ep->sources, entry) {
		if (o != s && o->sub != REDIS_ENDPOINT_SUB_NONE &&
		    strcmp(o->channel, s->channel) == 0) {
			s->sub = o->sub;
			return;
		}
	}
	if (redis_endpoint_conn_command(&ep->sub, redis_endpoint_sub_cb, NULL,
	    "SUBSCRIBE %s", s->channel) == 0)
		s->sub = REDIS_ENDPOINT_SUB_SENT;
}

static void
redis_endpoint_sub_unwatch(struct redis_endpoint *ep,
    struct redis_endpoint_source *s)
{
	struct redis_endpoint_source *o;

	if (s->sub == REDIS_ENDPOINT_SUB_NONE || ep->sub.ac == NULL)
		return;
	s->sub = REDIS_ENDPOINT_SUB_NONE;
	LIST_FOREACH(o, &ep->sources, entry) {
		if (o != s && o->sub != REDIS_ENDPOINT_SUB_NONE &&
		    strcmp(o->channel, s->channel) == 0)
			return;
	}
	/* No reply callback: hiredis routes "unsubscribe" to the channel's. */
	redisAsyncCommand(ep->sub.ac, NULL, NULL, "UNSUBSCRIBE %s",
	    s->channel);
}

/*
 * Subscription replies and keyspace events.  Wake-ups are delivered from
 * each source's zero-delay timer: never from inside hiredis, and several
 * events in one loop iteration make one wake-up.
 */
static void
redis_endpoint_sub_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_endpoint_conn *c = ac->data;
	struct redis_endpoint_source *s;
	redisReply	*reply = r;
	const char	*kind, *chan;
	size_t		 len;

	(void)privdata;
	if (c == NULL)
		return;
	if (reply == NULL) {
		redis_endpoint_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
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
		redis_endpoint_conn_replied(c);
		LIST_FOREACH(s, &c->ep->sources, entry) {
			if (redis_endpoint_channel_is(s, chan, len) &&
			    s->sub != REDIS_ENDPOINT_SUB_NONE)
				s->sub = REDIS_ENDPOINT_SUB_LIVE;
		}
	} else if (strcasecmp(kind, "message") == 0) {
		LIST_FOREACH(s, &c->ep->sources, entry) {
			if (s->wake_fn != NULL &&
			    redis_endpoint_channel_is(s, chan, len) &&
			    !ev_is_active(&s->wake_timer)) {
				ev_timer_set(&s->wake_timer, 0., 0.);
				ev_timer_start(s->loop, &s->wake_timer);
			}
		}
	}
}

/* Results. */

void
redis_endpoint_result_error(struct scaler_result *res, int err,
    const struct redis_endpoint *ep, const char *fmt, ...)
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

int
redis_endpoint_reply_err(const char *text)
{
	return (strncmp(text, "NOAUTH", 6) == 0 ||
	    strncmp(text, "WRONGPASS", 9) == 0 ||
	    strncmp(text, "NOPERM", 6) == 0 ? -AS_EAUTH : -AS_EPROTO);
}

/* Sources and their polls. */

static void
redis_endpoint_wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_endpoint_source *s = w->data;

	(void)loop;
	(void)revents;
	s->wake_fn(&s->base, s->wake_arg);	/* may destroy s */
}

int
redis_endpoint_validate(const char *what, const struct scaler_source *src,
    char *err, size_t errlen)
{
	struct redis_addr addr;
	int		 rc;

	if (src->address == NULL) {
		snprintf(err, errlen, "%s needs an address "
		    "(redis://host:port/db)", what);
		return (-AS_EINVAL);
	}
	if ((rc = redis_endpoint_parse_address(src->address, &addr, err,
	    errlen)) != 0)
		return (rc);
	if (redis_endpoint_nonempty(src->password_file) != NULL &&
	    redis_endpoint_nonempty(src->password_env) != NULL) {
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

int
redis_endpoint_source_init(struct redis_endpoint_source *s,
    const struct scaler_type *type, struct ev_loop *loop,
    const struct scaler_source *src, char *err, size_t errlen)
{
	struct redis_addr addr;
	int		 rc;

	if ((rc = redis_endpoint_parse_address(src->address, &addr, err,
	    errlen)) != 0)
		return (rc);
	s->base.type = type;
	s->loop = loop;
	scaler_later_init(&s->later, loop, &s->base);
	ev_timer_init(&s->wake_timer, redis_endpoint_wake_cb, 0., 0.);
	s->wake_timer.data = s;
	s->ep = redis_endpoint_get(loop, &addr, src);
	LIST_INSERT_HEAD(&s->ep->sources, s, entry);
	return (0);
}

void
redis_endpoint_source_fini(struct redis_endpoint_source *s)
{
	struct redis_endpoint *ep = s->ep;
	struct scaler_result res;
	scaler_done_fn	*fn;
	void		*arg;

	if (ep == NULL)
		return;
	fn = scaler_later_cancel(&s->later, &arg);
	ev_timer_stop(s->loop, &s->wake_timer);
	if (s->poll != NULL) {
		s->poll->src = NULL;
		s->poll = NULL;
	}
	memset(&res, 0, sizeof res);
	redis_endpoint_result_error(&res, -AS_ECANCELED, ep, "poll canceled: "
	    "source destroyed");
	redis_endpoint_sub_unwatch(ep, s);
	LIST_REMOVE(s, entry);
	redis_endpoint_put(ep);
	s->ep = NULL;
	free(s->channel);
	s->channel = NULL;
	if (fn != NULL)
		fn(&s->base, &res, arg);
}

int
redis_endpoint_poll_start(struct redis_endpoint_source *s, size_t size,
    redis_endpoint_take_fn *take, scaler_done_fn *fn, void *arg,
    struct redis_endpoint_poll **pp)
{
	struct redis_endpoint_poll *p;
	int		 rc;

	*pp = NULL;
	if (take == NULL || size < sizeof *p)
		return (-AS_EINVAL);
	if ((rc = scaler_later_start(&s->later, fn, arg)) != 0)
		return (rc);
	p = xcalloc(1, size);
	p->src = s;
	p->take = take;
	p->outstanding = 1;		/* held until poll_sent() */
	s->poll = p;
	*pp = p;
	return (0);
}

/* A NULL reply: the context went away; say why, from the endpoint. */
static void
redis_endpoint_poll_lost(struct redis_endpoint_poll *p)
{
	const struct redis_endpoint_conn *c;

	if (p->src == NULL || p->res.error != 0)
		return;
	c = &p->src->ep->main;
	redis_endpoint_result_error(&p->res, c->err != 0 ? c->err : -AS_ECONN,
	    p->src->ep, "%s", c->cause[0] != '\0' ? c->cause :
	    "connection lost");
}

/* The last reply is in: complete (from a hiredis callback). */
static void
redis_endpoint_poll_finish(struct redis_endpoint_poll *p)
{
	struct redis_endpoint_source *s = p->src;
	struct scaler_result res = p->res;

	free(p);
	if (s == NULL)
		return;		/* destroy() completed it already */
	s->poll = NULL;
	scaler_later_complete(&s->later, &res);	/* may destroy s */
}

static void
redis_endpoint_cmd_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_endpoint_conn *c = ac->data;
	struct redis_endpoint_cmd *cmd = privdata;
	struct redis_endpoint_poll *p = cmd->p;
	int		 tag = cmd->tag;

	free(cmd);
	if (r == NULL) {
		/* data still set: hiredis is freeing on its own. */
		if (c != NULL)
			redis_endpoint_conn_lost(c, -AS_ECONN, ac->c.errstr,
			    1);
		redis_endpoint_poll_lost(p);
	} else {
		if (c != NULL)
			redis_endpoint_conn_replied(c);
		if (p->src != NULL && p->res.error == 0)
			p->take(p, tag, r);
	}
	if (--p->outstanding == 0)
		redis_endpoint_poll_finish(p);
}

int
redis_endpoint_poll_command(struct redis_endpoint_poll *p, int tag,
    const char *fmt, ...)
{
	struct redis_endpoint_source *s = p->src;
	struct redis_endpoint_conn *c = &s->ep->main;
	struct redis_endpoint_cmd *cmd;
	va_list		 ap;
	int		 rc;

	cmd = xmalloc(sizeof *cmd);
	cmd->p = p;
	cmd->tag = tag;
	va_start(ap, fmt);
	rc = redis_endpoint_conn_commandv(c, redis_endpoint_cmd_cb, cmd, fmt,
	    ap);
	va_end(ap);
	if (rc == 0) {
		p->outstanding++;
		return (0);
	}
	free(cmd);
	rc = c->err == -AS_EAUTH ? -AS_EAUTH : -AS_ECONN;
	if (p->res.error == 0)
		redis_endpoint_result_error(&p->res, rc, s->ep,
		    "not connected: %s", c->cause[0] != '\0' ? c->cause :
		    "connection closed");
	if (c->ac == NULL && !ev_is_active(&c->retry_timer))
		redis_endpoint_conn_fail(c, -AS_ECONN, "not connected");
	return (rc);
}

void
redis_endpoint_poll_sent(struct redis_endpoint_poll *p)
{
	struct redis_endpoint_source *s = p->src;

	if (--p->outstanding > 0)
		return;
	/* Nothing went out: complete on a later turn, never before return. */
	s->later.res = p->res;
	s->poll = NULL;
	free(p);
	scaler_later_arm(&s->later, 0.);
}

int
redis_endpoint_source_subscribe(struct redis_endpoint_source *s,
    const char *key, unsigned classes, scaler_wake_fn *fn, void *arg)
{
	struct redis_endpoint *ep = s->ep;
	int		 first = s->wake_fn == NULL;

	if (fn == NULL)
		return (-AS_EINVAL);
	s->wake_fn = fn;
	s->wake_arg = arg;
	if (!first)
		return (0);
	s->classes = classes;
	s->channel = xasprintf("__keyspace@%d__:%s", ep->addr.db, key);
	if (ep->sub.ac == NULL && !ev_is_active(&ep->sub.retry_timer))
		redis_endpoint_conn_start(&ep->sub);
	else if (ep->sub.push_ok && (redis_endpoint_ev_need(s) &
	    ~ep->ev_on) != 0)
		redis_endpoint_config_extend(ep);
	else
		redis_endpoint_sub_watch(ep, s);
	return (0);
}

int
redis_endpoint_source_pushing(const struct redis_endpoint_source *s)
{
	return (s->sub == REDIS_ENDPOINT_SUB_LIVE);
}
