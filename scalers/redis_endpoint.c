/*
 * redis_endpoint.c: the Redis endpoints every Redis source and consumer
 * shares, read with hiredis 0.14.1 on the caller's libev loop.
 *
 * Endpoints.  Every client (a scale-mode source or a dispatch-mode
 * consumer) belongs to one endpoint, shared by all the clients on the same
 * loop with the same host, port, database and password source, whatever
 * their type, and refcounted by them.  An endpoint owns two connections:
 * "main", on which every client's commands go, and "sub", opened by the
 * first subscribe(), which carries keyspace notifications.  hiredis only
 * appends a command to its output buffer and arms the write watcher; the
 * write happens when the loop next finds the socket writable.  So all the
 * commands issued during one loop iteration, for every pool on the
 * endpoint, leave in one write and come back as one pipelined batch.
 * That is also why nothing here may block the server on our behalf: a
 * BLMOVE or XREADGROUP BLOCK on the main connection would hold back the
 * replies of every pool behind it.
 *
 * Lifetimes.  hiredis calls each command callback exactly once, with NULL
 * when the context goes away, and frees the context itself after an I/O
 * error or a failed connect.  One rule keeps that safe: a context's data
 * points to its connection exactly while the endpoint considers it
 * current.  Whoever retires a context (redis_endpoint_conn_lost() or
 * redis_endpoint_conn_close()) first clears both pointers, so callbacks
 * that run later, possibly after the endpoint is gone, see data == NULL and
 * only release their own privdata.  Callers' code (completions) runs only
 * from poll and request reply callbacks, from our own timers, and from
 * client_fini() (its cancellations), and nothing touches the endpoint
 * after calling it: a completion may finalize the last client, which
 * frees the endpoint at once (redisAsyncFree() from inside a reply callback
 * is deferred by hiredis until the callback returns).
 *
 * hiredis calls the connect and disconnect callbacks without its "in
 * callback" guard, so a free there would not be deferred; caller code never
 * runs there, nor in the subscriber's callbacks: wake-ups and link events
 * (main connection up or down, subscription confirmed) go through
 * zero-delay timers per client, as do the completions of requests sent
 * while the main connection is down.
 *
 * Keyspace notifications.  Each client says which notification classes
 * its key raises (l for lists, t for streams; g for DEL and friends comes
 * with both).  The subscriber's handshake reads notify-keyspace-events and
 * adds what the clients then subscribed need; a client that subscribes
 * later with a class not yet on makes the endpoint ask again, on the main
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

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/log.h"
#include "redis_endpoint.h"
#include "agentscaler/scalers/scaler.h"
#include "scaler_later.h"
#include "scaler_url.h"

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
	double			 down_at;	/* last failure (mono); 0 none */
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
	struct scaler_secret	 secret;	/* the password's source */
	double			 connect_timeout;
	double			 command_timeout;
	unsigned		 refs;
	LIST_HEAD(, redis_endpoint_client) clients;
	unsigned		 main_losses;	/* main connection outages */
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

/*
 * A command or a transaction of a client; the privdata of each of its
 * hiredis callbacks.  On the client's reqs list while hiredis has it, on
 * its failed list when it could not be sent; cl is NULL once orphaned.
 */
struct redis_endpoint_req {
	TAILQ_ENTRY(redis_endpoint_req) entry;
	struct redis_endpoint_client *cl;
	redis_endpoint_reply_fn	*fn;
	void			*arg;
	unsigned		 due;		/* replies still to come */
	int			 err;		/* failed before leaving */
	char			 errmsg[192];
};

/* Formatted commands waiting for tx_send(); NULL for a bad format. */
struct redis_endpoint_tx {
	char			**cmds;
	size_t			*lens;
	size_t			 n;
};

static void	 redis_endpoint_conn_start(struct redis_endpoint_conn *);
static void	 redis_endpoint_conn_lost(struct redis_endpoint_conn *, int,
		    const char *, int);
static void	 redis_endpoint_sub_watch(struct redis_endpoint *,
		    struct redis_endpoint_client *);
static void	 redis_endpoint_link_kick(struct redis_endpoint_client *);
static void	 redis_endpoint_links_kick(struct redis_endpoint *, int);
static void	 redis_endpoint_config_extend(struct redis_endpoint *);

static LIST_HEAD(, redis_endpoint) redis_endpoints =
    LIST_HEAD_INITIALIZER(redis_endpoints);

/*
 * The address parser; the authority is scalers/url.c's.  Error messages
 * never quote the authority part, since a rejected address may carry a
 * password.
 */
static const struct scaler_url_texts redis_endpoint_url_texts = {
	.credentials = "authSecretRef, passwordFile or passwordEnv",
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
	as_secret_free(c->secret, 0);
	c->secret = NULL;
}

/*
 * The subscriber went away: nothing is subscribed any more, and the next
 * one reads the server's flags afresh (a restarted server lost them).
 */
static void
redis_endpoint_sub_reset(struct redis_endpoint *ep)
{
	struct redis_endpoint_client *cl;

	LIST_FOREACH(cl, &ep->clients, entry) {
		cl->sub = REDIS_ENDPOINT_SUB_NONE;
		cl->push_told = 0;
	}
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
		/* The next connect reads a Secret again (not while one is). */
		if (err != -AS_EAGAIN)
			c->down_at = as_mono_now();
		as_strlcpy(c->cause, cause != NULL && *cause != '\0' ? cause :
		    "connection closed", sizeof c->cause);
		if (c->ready)
			log_warn(REDIS_ENDPOINT_LOG, "%s: %s lost: %s",
			    ep->name, redis_endpoint_conn_what(c), c->cause);
		else if (c->attempt == 0 && err != -AS_EAGAIN)
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
	else
		redis_endpoint_links_kick(ep, 1);
	if (err == 0)
		delay = REDIS_ENDPOINT_RECHECK;
	else if (err == -AS_EAGAIN)	/* a Secret being read: try soon */
		delay = REDIS_ENDPOINT_BACKOFF_BASE;
	else
		delay = as_backoff(REDIS_ENDPOINT_BACKOFF_BASE,
		    REDIS_ENDPOINT_BACKOFF_CAP, c->attempt);
	if (c->attempt < 64 && err != -AS_EAGAIN)
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
	if (c->kind == REDIS_ENDPOINT_MAIN) {
		redis_endpoint_links_kick(ep, 0);
		redis_endpoint_config_extend(ep);
	}
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

/* The classes a client needs on the server: its own, g and K. */
static unsigned
redis_endpoint_ev_need(const struct redis_endpoint_client *cl)
{
	return (cl->classes | REDIS_ENDPOINT_EV_GENERIC |
	    REDIS_ENDPOINT_EV_KEYSPACE);
}

/* The union over the clients that asked for push, minus refusals. */
static unsigned
redis_endpoint_ev_want(const struct redis_endpoint *ep)
{
	const struct redis_endpoint_client *cl;
	unsigned	 want = 0;

	LIST_FOREACH(cl, &ep->clients, entry) {
		if (cl->wake_fn != NULL)
			want |= redis_endpoint_ev_need(cl);
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
 * connection (a later client needed more classes) the pushes already live
 * stay; the clients that needed the refused classes keep polling until the
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
	struct redis_endpoint_client *cl;

	c->checking = 0;
	ep->ev_on = on;
	if (c->kind == REDIS_ENDPOINT_SUB)
		c->push_ok = 1;
	if (!ep->sub.push_ok)
		return;
	redis_endpoint_push_mode(ep, REDIS_ENDPOINT_PUSH_LIVE, NULL);
	LIST_FOREACH(cl, &ep->clients, entry) {
		if (cl->wake_fn != NULL && cl->sub == REDIS_ENDPOINT_SUB_NONE)
			redis_endpoint_sub_watch(ep, cl);
	}
	redis_endpoint_config_extend(ep);
}

static void	 redis_endpoint_handshake_cb(redisAsyncContext *, void *,
		    void *);

/*
 * CONFIG GET notify-keyspace-events answered.  Adds what the subscribed
 * clients need and the server lacks to its flags, rather than replacing
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
 * A client subscribed after the subscriber's handshake and needs a class
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
		as_secret_free(c->secret, 0);
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
	char		*secret = NULL, *user = NULL;
	char		 cause[160];
	int		 rc;

	ev_timer_stop(ep->loop, &c->retry_timer);
	if (c->ac != NULL)
		return;
	redis_endpoint_conn_reset(c);
	/* A user name (Redis 6 ACL) only from a Secret's usernameKey. */
	if ((rc = scaler_secret_user(&ep->secret, c->down_at, &user, cause,
	    sizeof cause)) != 0 || (rc = scaler_secret_read(&ep->secret,
	    c->down_at, &secret, cause, sizeof cause)) != 0) {
		as_secret_free(user, 0);
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
		as_secret_free(secret, 0);
		as_secret_free(user, 0);
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

	if (secret != NULL && user != NULL)
		rc = redis_endpoint_conn_command(c,
		    redis_endpoint_handshake_cb,
		    (void *)(intptr_t)REDIS_ENDPOINT_TAG_AUTH, "AUTH %b %b",
		    user, strlen(user), secret, strlen(secret));
	else if (secret != NULL)
		rc = redis_endpoint_conn_command(c,
		    redis_endpoint_handshake_cb,
		    (void *)(intptr_t)REDIS_ENDPOINT_TAG_AUTH, "AUTH %b",
		    secret, strlen(secret));
	as_secret_free(user, 0);
	if (secret != NULL) {
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

/* Finds or opens the endpoint for this client; the caller holds a ref. */
static struct redis_endpoint *
redis_endpoint_get(struct ev_loop *loop, const struct redis_addr *addr,
    const struct scaler_source *src)
{
	struct redis_endpoint *ep;
	double		 ct, mt;

	ct = src->connect_timeout > 0 ? src->connect_timeout :
	    REDIS_ENDPOINT_TIMEOUT;
	mt = src->command_timeout > 0 ? src->command_timeout :
	    REDIS_ENDPOINT_TIMEOUT;
	LIST_FOREACH(ep, &redis_endpoints, entry) {
		if (ep->loop == loop && ep->addr.port == addr->port &&
		    ep->addr.db == addr->db &&
		    strcmp(ep->addr.host, addr->host) == 0 &&
		    scaler_secret_same(&ep->secret, src))
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
	scaler_secret_set(&ep->secret, src);
	ep->connect_timeout = ct;
	ep->command_timeout = mt;
	ep->refs = 1;
	LIST_INIT(&ep->clients);
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
	scaler_secret_clear(&ep->secret);
	free(ep);
}

const char *
redis_endpoint_name(const struct redis_endpoint *ep)
{
	return (ep->name);
}

/* Keyspace subscriptions, one SUBSCRIBE per distinct channel. */

static int
redis_endpoint_channel_is(const struct redis_endpoint_client *cl,
    const char *name, size_t len)
{
	return (cl->channel != NULL && strlen(cl->channel) == len &&
	    memcmp(cl->channel, name, len) == 0);
}

static void	 redis_endpoint_sub_cb(redisAsyncContext *, void *, void *);

/* Subscribes cl, unless the server lacks one of its classes. */
static void
redis_endpoint_sub_watch(struct redis_endpoint *ep,
    struct redis_endpoint_client *cl)
{
	struct redis_endpoint_client *o;

	if (ep->sub.ac == NULL || !ep->sub.push_ok ||
	    (redis_endpoint_ev_need(cl) & ~ep->ev_on) != 0)
		return;
	LIST_FOREACH(o, &ep->clients, entry) {
		if (o != cl && o->sub != REDIS_ENDPOINT_SUB_NONE &&
		    strcmp(o->channel, cl->channel) == 0) {
			cl->sub = o->sub;
			if (cl->sub == REDIS_ENDPOINT_SUB_LIVE)
				redis_endpoint_link_kick(cl);
			return;
		}
	}
	if (redis_endpoint_conn_command(&ep->sub, redis_endpoint_sub_cb, NULL,
	    "SUBSCRIBE %s", cl->channel) == 0)
		cl->sub = REDIS_ENDPOINT_SUB_SENT;
}

static void
redis_endpoint_sub_unwatch(struct redis_endpoint *ep,
    struct redis_endpoint_client *cl)
{
	struct redis_endpoint_client *o;

	if (cl->sub == REDIS_ENDPOINT_SUB_NONE || ep->sub.ac == NULL)
		return;
	cl->sub = REDIS_ENDPOINT_SUB_NONE;
	LIST_FOREACH(o, &ep->clients, entry) {
		if (o != cl && o->sub != REDIS_ENDPOINT_SUB_NONE &&
		    strcmp(o->channel, cl->channel) == 0)
			return;
	}
	/* No reply callback: hiredis routes "unsubscribe" to the channel's. */
	redisAsyncCommand(ep->sub.ac, NULL, NULL, "UNSUBSCRIBE %s",
	    cl->channel);
}

/*
 * Subscription replies and keyspace events.  Wake-ups are delivered from
 * each client's zero-delay timer: never from inside hiredis, and several
 * events in one loop iteration make one wake-up.
 */
static void
redis_endpoint_sub_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_endpoint_conn *c = ac->data;
	struct redis_endpoint_client *cl;
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
		LIST_FOREACH(cl, &c->ep->clients, entry) {
			if (redis_endpoint_channel_is(cl, chan, len) &&
			    cl->sub != REDIS_ENDPOINT_SUB_NONE) {
				cl->sub = REDIS_ENDPOINT_SUB_LIVE;
				redis_endpoint_link_kick(cl);
			}
		}
	} else if (strcasecmp(kind, "message") == 0) {
		LIST_FOREACH(cl, &c->ep->clients, entry) {
			if (cl->wake_fn != NULL &&
			    redis_endpoint_channel_is(cl, chan, len) &&
			    !ev_is_active(&cl->wake_timer)) {
				ev_timer_set(&cl->wake_timer, 0., 0.);
				ev_timer_start(cl->loop, &cl->wake_timer);
			}
		}
	}
}

/* Results. */

static void
redis_endpoint_verrmsg(char *buf, size_t len, const struct redis_endpoint *ep,
    const char *fmt, va_list ap)
{
	int	 n;

	n = snprintf(buf, len, "redis %s: ", ep->name);
	if (n < 0 || (size_t)n >= len)
		return;
	vsnprintf(buf + n, len - (size_t)n, fmt, ap);
}

void
redis_endpoint_errmsg(char *buf, size_t len, const struct redis_endpoint *ep,
    const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	redis_endpoint_verrmsg(buf, len, ep, fmt, ap);
	va_end(ap);
}

void
redis_endpoint_result_error(struct scaler_result *res, int err,
    const struct redis_endpoint *ep, const char *fmt, ...)
{
	va_list	 ap;

	res->error = err;
	va_start(ap, fmt);
	redis_endpoint_verrmsg(res->errmsg, sizeof res->errmsg, ep, fmt, ap);
	va_end(ap);
}

int
redis_endpoint_reply_err(const char *text)
{
	return (strncmp(text, "NOAUTH", 6) == 0 ||
	    strncmp(text, "WRONGPASS", 9) == 0 ||
	    strncmp(text, "NOPERM", 6) == 0 ? -AS_EAUTH : -AS_EPROTO);
}

/* Clients. */

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
	if ((rc = scaler_secret_check(src, err, errlen)) != 0)
		return (rc);
	if (!(src->connect_timeout >= 0) || !(src->command_timeout >= 0) ||
	    isinf(src->connect_timeout) || isinf(src->command_timeout)) {
		snprintf(err, errlen, "timeouts must be finite and not "
		    "negative");
		return (-AS_EINVAL);
	}
	return (0);
}

static void
redis_endpoint_wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_endpoint_client *cl = w->data;

	(void)loop;
	(void)revents;
	cl->wake_fn(cl, cl->wake_arg);	/* may finalize cl */
}

/* Something about the main connection or the subscription changed. */
static void
redis_endpoint_link_kick(struct redis_endpoint_client *cl)
{
	if (cl->link_fn != NULL && !ev_is_active(&cl->link_timer)) {
		ev_timer_set(&cl->link_timer, 0., 0.);
		ev_timer_start(cl->loop, &cl->link_timer);
	}
}

/* The main connection came up (lost 0) or went down (lost 1). */
static void
redis_endpoint_links_kick(struct redis_endpoint *ep, int lost)
{
	struct redis_endpoint_client *cl;

	if (lost)
		ep->main_losses++;
	LIST_FOREACH(cl, &ep->clients, entry)
		redis_endpoint_link_kick(cl);
}

/*
 * Tells one link event, the most urgent first: a loss not told yet (even
 * when the connection is back by now, so that the owner hears of every
 * outage), then the connection being up, then a confirmed subscription.
 * The timer looks again on the next turn, since more may be due.
 */
static void
redis_endpoint_link_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_endpoint_client *cl = w->data;
	struct redis_endpoint *ep = cl->ep;
	const struct redis_endpoint_conn *c = &ep->main;
	char		 msg[224];
	int		 ev = 0;

	(void)revents;
	msg[0] = '\0';
	if (cl->link_told != REDIS_ENDPOINT_LINK_DOWN &&
	    cl->link_losses != ep->main_losses) {
		ev = REDIS_ENDPOINT_LINK_DOWN;
		redis_endpoint_errmsg(msg, sizeof msg, ep, "%s",
		    c->cause[0] != '\0' ? c->cause : "connection lost");
	} else if (cl->link_told != REDIS_ENDPOINT_LINK_UP && c->ready)
		ev = REDIS_ENDPOINT_LINK_UP;
	else if (cl->sub == REDIS_ENDPOINT_SUB_LIVE && !cl->push_told) {
		cl->push_told = 1;
		ev = REDIS_ENDPOINT_LINK_PUSH;
	}
	if (ev == 0)
		return;
	if (ev != REDIS_ENDPOINT_LINK_PUSH) {
		cl->link_told = ev;
		cl->link_losses = ep->main_losses;
	}
	ev_timer_set(w, 0., 0.);
	ev_timer_start(loop, w);
	cl->link_fn(cl, ev, msg, cl->link_arg);	/* may finalize cl */
}

/* Completes the failed requests, one per loop turn (fn may finalize cl). */
static void
redis_endpoint_fail_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_endpoint_client *cl = w->data;
	struct redis_endpoint_req *req;
	redis_endpoint_reply_fn *fn;
	void		*arg;
	char		 errmsg[sizeof req->errmsg];
	int		 err;

	(void)revents;
	if ((req = TAILQ_FIRST(&cl->failed)) == NULL)
		return;
	TAILQ_REMOVE(&cl->failed, req, entry);
	if (!TAILQ_EMPTY(&cl->failed)) {
		ev_timer_set(w, 0., 0.);
		ev_timer_start(loop, w);
	}
	fn = req->fn;
	arg = req->arg;
	err = req->err;
	as_strlcpy(errmsg, req->errmsg, sizeof errmsg);
	free(req);
	fn(err, NULL, errmsg, arg);
}

int
redis_endpoint_client_init(struct redis_endpoint_client *cl,
    struct ev_loop *loop, const struct scaler_source *src, char *err,
    size_t errlen)
{
	struct redis_addr addr;
	int		 rc;

	memset(cl, 0, sizeof *cl);
	if ((rc = redis_endpoint_parse_address(src->address, &addr, err,
	    errlen)) != 0)
		return (rc);
	cl->loop = loop;
	TAILQ_INIT(&cl->reqs);
	TAILQ_INIT(&cl->failed);
	ev_timer_init(&cl->wake_timer, redis_endpoint_wake_cb, 0., 0.);
	ev_timer_init(&cl->link_timer, redis_endpoint_link_cb, 0., 0.);
	ev_timer_init(&cl->fail_timer, redis_endpoint_fail_cb, 0., 0.);
	cl->wake_timer.data = cl->link_timer.data = cl;
	cl->fail_timer.data = cl;
	cl->ep = redis_endpoint_get(loop, &addr, src);
	LIST_INSERT_HEAD(&cl->ep->clients, cl, entry);
	return (0);
}

/* A completion to run with -AS_ECANCELED once fini() has let go. */
struct redis_endpoint_cancel {
	redis_endpoint_reply_fn	*fn;
	void			*arg;
};

void
redis_endpoint_client_fini(struct redis_endpoint_client *cl)
{
	struct redis_endpoint *ep = cl->ep;
	struct redis_endpoint_cancel *cancel = NULL;
	struct redis_endpoint_req *req;
	size_t		 n = 0, i = 0;
	char		 msg[224];

	if (ep == NULL)
		return;
	ev_timer_stop(cl->loop, &cl->wake_timer);
	ev_timer_stop(cl->loop, &cl->link_timer);
	ev_timer_stop(cl->loop, &cl->fail_timer);
	cl->wake_fn = NULL;
	cl->link_fn = NULL;
	redis_endpoint_errmsg(msg, sizeof msg, ep, "canceled: the client "
	    "went away");

	/*
	 * Requests with hiredis are orphaned (their callbacks free them),
	 * failed ones are ours to free; the completions run once the endpoint
	 * is let go, since dropping the last reference frees the contexts,
	 * and with them the orphans.
	 */
	TAILQ_FOREACH(req, &cl->reqs, entry)
		n++;
	TAILQ_FOREACH(req, &cl->failed, entry)
		n++;
	if (n > 0)
		cancel = xcalloc(n, sizeof *cancel);
	while ((req = TAILQ_FIRST(&cl->reqs)) != NULL) {
		TAILQ_REMOVE(&cl->reqs, req, entry);
		req->cl = NULL;
		cancel[i].fn = req->fn;
		cancel[i++].arg = req->arg;
	}
	while ((req = TAILQ_FIRST(&cl->failed)) != NULL) {
		TAILQ_REMOVE(&cl->failed, req, entry);
		cancel[i].fn = req->fn;
		cancel[i++].arg = req->arg;
		free(req);
	}

	redis_endpoint_sub_unwatch(ep, cl);
	LIST_REMOVE(cl, entry);
	cl->ep = NULL;
	redis_endpoint_put(ep);
	free(cl->channel);
	cl->channel = NULL;
	for (i = 0; i < n; i++)
		cancel[i].fn(-AS_ECANCELED, NULL, msg, cancel[i].arg);
	free(cancel);
}

int
redis_endpoint_client_subscribe(struct redis_endpoint_client *cl,
    const char *key, unsigned classes, redis_endpoint_wake_fn *fn,
    void *arg)
{
	struct redis_endpoint *ep = cl->ep;
	int		 first = cl->wake_fn == NULL;

	if (fn == NULL || ep == NULL)
		return (-AS_EINVAL);
	cl->wake_fn = fn;
	cl->wake_arg = arg;
	if (!first)
		return (0);
	cl->classes = classes;
	free(cl->channel);
	cl->channel = xasprintf("__keyspace@%d__:%s", ep->addr.db, key);
	if (ep->sub.ac == NULL && !ev_is_active(&ep->sub.retry_timer))
		redis_endpoint_conn_start(&ep->sub);
	else if (ep->sub.push_ok && (redis_endpoint_ev_need(cl) &
	    ~ep->ev_on) != 0)
		redis_endpoint_config_extend(ep);
	else
		redis_endpoint_sub_watch(ep, cl);
	return (0);
}

int
redis_endpoint_client_pushing(const struct redis_endpoint_client *cl)
{
	return (cl->sub == REDIS_ENDPOINT_SUB_LIVE);
}

void
redis_endpoint_client_link(struct redis_endpoint_client *cl,
    redis_endpoint_link_fn *fn, void *arg)
{
	struct redis_endpoint *ep = cl->ep;
	int		 first = cl->link_fn == NULL;

	if (ep == NULL)
		return;
	cl->link_fn = fn;
	cl->link_arg = arg;
	if (fn == NULL) {
		ev_timer_stop(cl->loop, &cl->link_timer);
		return;
	}
	if (first) {
		cl->link_told = 0;
		cl->link_losses = ep->main_losses;
		/* Already failing (not just connecting): say so at once. */
		if (!ep->main.ready && ep->main.attempt > 0)
			cl->link_losses--;
	}
	redis_endpoint_link_kick(cl);
}

/* Requests. */

/* Fills req's error from the main connection's last failure. */
static void
redis_endpoint_req_lost(struct redis_endpoint_req *req)
{
	const struct redis_endpoint *ep;
	const struct redis_endpoint_conn *c;

	if (req->err != 0 || req->cl == NULL)
		return;
	ep = req->cl->ep;
	c = &ep->main;
	req->err = c->err != 0 ? c->err : -AS_ECONN;
	redis_endpoint_errmsg(req->errmsg, sizeof req->errmsg, ep, "%s",
	    c->cause[0] != '\0' ? c->cause : "connection closed");
}

/*
 * Each reply of a request; the last one completes it.  Nothing touches
 * the connection or the client after the completion, which may finalize
 * the client and free the endpoint (hiredis defers that free until this
 * callback returns).
 */
static void
redis_endpoint_req_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_endpoint_conn *c = ac->data;
	struct redis_endpoint_req *req = privdata;
	redis_endpoint_reply_fn *fn;
	void		*arg;
	char		 errmsg[sizeof req->errmsg];
	int		 err;

	if (r == NULL) {
		/* data still set: hiredis is freeing on its own. */
		if (c != NULL)
			redis_endpoint_conn_lost(c, -AS_ECONN, ac->c.errstr,
			    1);
		redis_endpoint_req_lost(req);
	} else if (c != NULL)
		redis_endpoint_conn_replied(c);
	if (--req->due > 0)
		return;
	if (req->cl == NULL) {
		free(req);		/* orphaned: fini() completed it */
		return;
	}
	TAILQ_REMOVE(&req->cl->reqs, req, entry);
	fn = req->fn;
	arg = req->arg;
	err = req->err;
	as_strlcpy(errmsg, req->errmsg, sizeof errmsg);
	free(req);
	if (err != 0)
		fn(err, NULL, errmsg, arg);
	else
		fn(0, r, "", arg);
}

/*
 * Queues n formatted commands back to back on the main connection, all
 * answering to req.  When the connection is down, or a command did not
 * format (cmds[i] NULL), req completes from the fail timer instead.
 */
static void
redis_endpoint_req_send(struct redis_endpoint_client *cl,
    struct redis_endpoint_req *req, char *const *cmds, const size_t *lens,
    size_t n)
{
	struct redis_endpoint *ep = cl->ep;
	struct redis_endpoint_conn *c = &ep->main;
	size_t		 i;

	req->cl = cl;
	for (i = 0; i < n; i++) {
		if (cmds[i] == NULL) {
			req->err = -AS_EINVAL;
			redis_endpoint_errmsg(req->errmsg, sizeof req->errmsg,
			    ep, "a command does not format");
			goto fail;
		}
	}
	if (c->ac == NULL) {
		req->err = c->err == -AS_EAUTH ? -AS_EAUTH : -AS_ECONN;
		redis_endpoint_errmsg(req->errmsg, sizeof req->errmsg, ep,
		    "not connected: %s", c->cause[0] != '\0' ? c->cause :
		    "connection closed");
		if (!ev_is_active(&c->retry_timer))
			redis_endpoint_conn_fail(c, -AS_ECONN,
			    "not connected");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if (redisAsyncFormattedCommand(c->ac, redis_endpoint_req_cb,
		    req, cmds[i], lens[i]) != REDIS_OK)
			break;
		req->due++;
		if (c->npending++ == 0 && c->connected)
			ev_timer_again(ep->loop, &c->command_timer);
	}
	/*
	 * hiredis refuses a well-formed command only once the context is
	 * disconnecting or being freed, and that cannot change between two
	 * calls: either every command of a transaction was queued or none.
	 */
	if (i == 0) {
		req->err = -AS_ECONN;
		redis_endpoint_errmsg(req->errmsg, sizeof req->errmsg, ep,
		    "the connection refuses commands");
		goto fail;
	}
	TAILQ_INSERT_TAIL(&cl->reqs, req, entry);
	return;
fail:
	TAILQ_INSERT_TAIL(&cl->failed, req, entry);
	if (!ev_is_active(&cl->fail_timer)) {
		ev_timer_set(&cl->fail_timer, 0., 0.);
		ev_timer_start(cl->loop, &cl->fail_timer);
	}
}

static char *
redis_endpoint_format(const char *fmt, va_list ap, size_t *lenp)
{
	char	*cmd = NULL;
	int	 len;

	if ((len = redisvFormatCommand(&cmd, fmt, ap)) < 0) {
		*lenp = 0;
		return (NULL);
	}
	*lenp = (size_t)len;
	return (cmd);
}

int
redis_endpoint_command(struct redis_endpoint_client *cl,
    redis_endpoint_reply_fn *fn, void *arg, const char *fmt, ...)
{
	struct redis_endpoint_req *req;
	va_list		 ap;
	char		*cmd;
	size_t		 len;

	if (fn == NULL || cl->ep == NULL)
		return (-AS_EINVAL);
	req = xcalloc(1, sizeof *req);
	req->fn = fn;
	req->arg = arg;
	va_start(ap, fmt);
	cmd = redis_endpoint_format(fmt, ap, &len);
	va_end(ap);
	redis_endpoint_req_send(cl, req, &cmd, &len, 1);
	redisFreeCommand(cmd);
	return (0);
}

/* Appends a formatted command, or NULL for one that did not format. */
static void
redis_endpoint_tx_push(struct redis_endpoint_tx *tx, char *cmd, size_t len)
{
	tx->cmds = xrealloc(tx->cmds, (tx->n + 1) * sizeof *tx->cmds);
	tx->lens = xrealloc(tx->lens, (tx->n + 1) * sizeof *tx->lens);
	tx->cmds[tx->n] = cmd;
	tx->lens[tx->n++] = len;
}

static void
redis_endpoint_tx_word(struct redis_endpoint_tx *tx, const char *word)
{
	char	*cmd = NULL;
	int	 len;

	len = redisFormatCommand(&cmd, "%s", word);
	redis_endpoint_tx_push(tx, len < 0 ? NULL : cmd, len < 0 ? 0 :
	    (size_t)len);
}

struct redis_endpoint_tx *
redis_endpoint_tx_new(void)
{
	struct redis_endpoint_tx *tx;

	tx = xcalloc(1, sizeof *tx);
	redis_endpoint_tx_word(tx, "MULTI");
	return (tx);
}

int
redis_endpoint_tx_add(struct redis_endpoint_tx *tx, const char *fmt, ...)
{
	va_list		 ap;
	char		*cmd;
	size_t		 len;

	va_start(ap, fmt);
	cmd = redis_endpoint_format(fmt, ap, &len);
	va_end(ap);
	redis_endpoint_tx_push(tx, cmd, len);
	return (cmd == NULL ? -AS_EINVAL : 0);
}

void
redis_endpoint_tx_free(struct redis_endpoint_tx *tx)
{
	size_t	 i;

	if (tx == NULL)
		return;
	for (i = 0; i < tx->n; i++)
		redisFreeCommand(tx->cmds[i]);
	free(tx->cmds);
	free(tx->lens);
	free(tx);
}

int
redis_endpoint_tx_send(struct redis_endpoint_client *cl,
    struct redis_endpoint_tx *tx, redis_endpoint_reply_fn *fn, void *arg)
{
	struct redis_endpoint_req *req;

	if (fn == NULL || cl->ep == NULL) {
		redis_endpoint_tx_free(tx);
		return (-AS_EINVAL);
	}
	req = xcalloc(1, sizeof *req);
	req->fn = fn;
	req->arg = arg;
	redis_endpoint_tx_word(tx, "EXEC");
	redis_endpoint_req_send(cl, req, tx->cmds, tx->lens, tx->n);
	redis_endpoint_tx_free(tx);
	return (0);
}

/* Sources and their polls. */

static void
redis_endpoint_source_woken(struct redis_endpoint_client *cl, void *arg)
{
	struct redis_endpoint_source *s = arg;

	(void)cl;
	s->wake_fn(&s->base, s->wake_arg);	/* may destroy s */
}

int
redis_endpoint_source_init(struct redis_endpoint_source *s,
    const struct scaler_type *type, struct ev_loop *loop,
    const struct scaler_source *src, char *err, size_t errlen)
{
	int	 rc;

	if ((rc = redis_endpoint_client_init(&s->cl, loop, src, err,
	    errlen)) != 0)
		return (rc);
	s->base.type = type;
	scaler_later_init(&s->later, loop, &s->base);
	return (0);
}

void
redis_endpoint_source_fini(struct redis_endpoint_source *s)
{
	struct scaler_result res;
	scaler_done_fn	*fn;
	void		*arg;

	if (s->cl.ep == NULL)
		return;
	fn = scaler_later_cancel(&s->later, &arg);
	if (s->poll != NULL) {
		s->poll->src = NULL;
		s->poll = NULL;
	}
	memset(&res, 0, sizeof res);
	redis_endpoint_result_error(&res, -AS_ECANCELED, s->cl.ep, "poll "
	    "canceled: source destroyed");
	redis_endpoint_client_fini(&s->cl);
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
	c = &p->src->cl.ep->main;
	redis_endpoint_result_error(&p->res, c->err != 0 ? c->err : -AS_ECONN,
	    p->src->cl.ep, "%s", c->cause[0] != '\0' ? c->cause :
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
	struct redis_endpoint_conn *c = &s->cl.ep->main;
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
		redis_endpoint_result_error(&p->res, rc, s->cl.ep,
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
	if (fn == NULL)
		return (-AS_EINVAL);
	s->wake_fn = fn;
	s->wake_arg = arg;
	return (redis_endpoint_client_subscribe(&s->cl, key, classes,
	    redis_endpoint_source_woken, s));
}

int
redis_endpoint_source_pushing(const struct redis_endpoint_source *s)
{
	return (redis_endpoint_client_pushing(&s->cl));
}
