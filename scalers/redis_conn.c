/*
 * redis_conn.c: one Redis connection (redis_conn.h), read with hiredis
 * 0.14.1 on the caller's libev loop.
 *
 * hiredis only appends a command to its output buffer and arms the write
 * watcher; the write happens when the loop next finds the socket
 * writable, so everything queued in one loop turn leaves in one write.
 *
 * hiredis calls the connect and disconnect callbacks without its "in
 * callback" guard, so a free there would not be deferred; nothing but this
 * module's own bookkeeping and the owner's hooks runs there.
 *
 * Timeouts.  0.14.1 has none, so each connection runs a connect timer, a
 * command timer (re-armed with ev_timer_again while replies are awaited)
 * and a retry timer for the jittered reconnect.  A timer that expires frees
 * the context from outside any hiredis callback; the pending commands then
 * complete with a NULL reply, after the cause is recorded (-AS_ETIMEDOUT).
 *
 * hiredis 0.14.1 writes with write(2), so the process must ignore SIGPIPE.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/scalers/scaler.h"
#include "redis_conn.h"

#define REDIS_CONN_LOG		"redis"
#define REDIS_CONN_BACKOFF_BASE	0.1
#define REDIS_CONN_BACKOFF_CAP	5.0
#define REDIS_CONN_RECHECK	60.0	/* closed on purpose: s */

/* What a handshake reply answers; passed as the command's privdata. */
enum redis_conn_tag {
	REDIS_CONN_TAG_AUTH = 1,
	REDIS_CONN_TAG_SELECT,
	REDIS_CONN_TAG_PING
};

static void	 redis_conn_timeout_cb(struct ev_loop *, ev_timer *, int);
static void	 redis_conn_retry_cb(struct ev_loop *, ev_timer *, int);

void
redis_conn_init(struct redis_conn *c, struct ev_loop *loop, const char *name,
    const char *what, const struct redis_addr *addr, int select,
    const struct scaler_secret *secret, double connect_timeout,
    double command_timeout, const struct redis_conn_hooks *hooks, void *arg)
{
	memset(c, 0, sizeof *c);
	c->loop = loop;
	c->name = name;
	c->what = what;
	c->addr = addr;
	c->select = select;
	c->secret = secret;
	c->connect_timeout = connect_timeout;
	c->command_timeout = command_timeout;
	c->hooks = hooks;
	c->arg = arg;
	ev_timer_init(&c->connect_timer, redis_conn_timeout_cb, 0., 0.);
	ev_timer_init(&c->command_timer, redis_conn_timeout_cb, 0.,
	    command_timeout);
	ev_timer_init(&c->retry_timer, redis_conn_retry_cb, 0., 0.);
	c->connect_timer.data = c->command_timer.data = c;
	c->retry_timer.data = c;
}

void
redis_conn_tighten(struct redis_conn *c, double connect_timeout,
    double command_timeout)
{
	if (connect_timeout < c->connect_timeout)
		c->connect_timeout = connect_timeout;
	if (command_timeout < c->command_timeout) {
		c->command_timeout = command_timeout;
		c->command_timer.repeat = command_timeout;
	}
}

/*
 * Queues one command; npending counts the replies we wait for, and the
 * command timer runs while it is non-zero on a connected socket.  Returns
 * 0, or -AS_ECONN when the context no longer accepts commands.
 */
int
redis_conn_commandv(struct redis_conn *c,
    redisCallbackFn *fn, void *privdata, const char *fmt, va_list ap)
{
	if (c->ac == NULL)
		return (-AS_ECONN);
	if (redisvAsyncCommand(c->ac, fn, privdata, fmt, ap) != REDIS_OK)
		return (-AS_ECONN);
	if (c->npending++ == 0 && c->connected)
		ev_timer_again(c->loop, &c->command_timer);
	return (0);
}

int
redis_conn_command(struct redis_conn *c,
    redisCallbackFn *fn, void *privdata, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = redis_conn_commandv(c, fn, privdata, fmt, ap);
	va_end(ap);
	return (rc);
}

/* One awaited reply arrived: progress, so the command deadline moves. */
void
redis_conn_replied(struct redis_conn *c)
{
	if (c->npending > 0)
		c->npending--;
	if (c->npending > 0)
		ev_timer_again(c->loop, &c->command_timer);
	else
		ev_timer_stop(c->loop, &c->command_timer);
}

static void
redis_conn_reset(struct redis_conn *c)
{
	struct ev_loop	*loop = c->loop;

	ev_timer_stop(loop, &c->connect_timer);
	ev_timer_stop(loop, &c->command_timer);
	c->connected = c->ready = c->push_ok = c->checking = 0;
	c->setting = 0;
	c->npending = c->nhandshake = 0;
	as_secret_free(c->password, 0);
	c->password = NULL;
}

/*
 * Records why a connection is down, logs it once per outage, and arms the
 * retry timer.  err 0 means a deliberate close that is not worth a log.
 */
static void
redis_conn_down(struct redis_conn *c, int err,
    const char *cause)
{
	double		 delay;

	if (err != 0) {
		c->err = err;
		/* The next connect reads a Secret again (not while one is). */
		if (err != -AS_EAGAIN)
			c->down_at = as_mono_now();
		as_strlcpy(c->cause, cause != NULL && *cause != '\0' ? cause :
		    "connection closed", sizeof c->cause);
		if (c->ready)
			log_warn(REDIS_CONN_LOG, "%s: %s lost: %s",
			    c->name, c->what, c->cause);
		else if (c->attempt == 0 && err != -AS_EAGAIN)
			log_warn(REDIS_CONN_LOG, "%s: cannot open the %s: "
			    "%s; retrying with backoff", c->name,
			    c->what, c->cause);
		else
			log_debug(REDIS_CONN_LOG, "%s: %s attempt %u: %s",
			    c->name, c->what,
			    c->attempt + 1, c->cause);
	}
	if (c->ready)
		c->attempt = 0;
	if (c->hooks->down != NULL)
		c->hooks->down(c, err);
	if (err == 0)
		delay = REDIS_CONN_RECHECK;
	else if (err == -AS_EAGAIN)	/* a Secret being read: try soon */
		delay = REDIS_CONN_BACKOFF_BASE;
	else
		delay = as_backoff(REDIS_CONN_BACKOFF_BASE,
		    REDIS_CONN_BACKOFF_CAP, c->attempt);
	if (c->attempt < 64 && err != -AS_EAGAIN)
		c->attempt++;
	redis_conn_reset(c);
	ev_timer_stop(c->loop, &c->retry_timer);
	ev_timer_set(&c->retry_timer, delay, 0.);
	ev_timer_start(c->loop, &c->retry_timer);
}

/*
 * The one "connection lost" path, idempotent: retires the context (see the
 * lifetime rule at the top), records the cause, schedules the reconnect and,
 * unless hiredis is already freeing the context (lib_frees), frees it.  The
 * free runs the pending callbacks, and through them callers' completions,
 * so nothing here touches the endpoint after it.
 */
void
redis_conn_lost(struct redis_conn *c, int err,
    const char *cause, int lib_frees)
{
	redisAsyncContext *ac = c->ac;

	if (ac == NULL)
		return;
	c->ac = NULL;
	ac->data = NULL;
	redis_conn_down(c, err, cause);
	/* A server that stopped answering one socket is not serving pushes. */
	if (c->dependent != NULL && err == -AS_ETIMEDOUT)
		redis_conn_lost(c->dependent, -AS_ECONN, "the main "
		    "connection timed out", 0);
	if (!lib_frees)
		redisAsyncFree(ac);
}

/* Retires the context for good: the endpoint is going away. */
void
redis_conn_close(struct redis_conn *c)
{
	redisAsyncContext *ac = c->ac;

	redis_conn_reset(c);
	ev_timer_stop(c->loop, &c->retry_timer);
	if (ac != NULL) {
		c->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac);
	}
}

/* Marks a connection down without a context (nothing to free). */
void
redis_conn_fail(struct redis_conn *c, int err,
    const char *cause)
{
	redis_conn_down(c, err, cause);
}

static void
redis_conn_ready(struct redis_conn *c)
{
	c->ready = 1;
	if (c->was_ready)
		log_info(REDIS_CONN_LOG, "%s: %s restored", c->name,
		    c->what);
	else if (c->attempt > 0)
		log_info(REDIS_CONN_LOG, "%s: %s open", c->name,
		    c->what);
	else
		log_debug(REDIS_CONN_LOG, "%s: %s open", c->name,
		    c->what);
	c->was_ready = 1;
	c->attempt = 0;
	if (c->hooks->ready != NULL)
		c->hooks->ready(c);
}

static void
redis_conn_connect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_conn *c = ac->data;

	if (c == NULL)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context when we return. */
		redis_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
		return;
	}
	c->connected = 1;
	ev_timer_stop(c->loop, &c->connect_timer);
	if (c->npending > 0)
		ev_timer_again(c->loop, &c->command_timer);
	if (c->nhandshake == 0)
		redis_conn_ready(c);
}

static void
redis_conn_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_conn *c = ac->data;

	(void)status;
	if (c != NULL)
		redis_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
}

/* The connect timer or the command timer expired. */
static void
redis_conn_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_conn *c = w->data;
	char		 cause[96];

	(void)loop;
	(void)revents;
	if (w == &c->connect_timer)
		snprintf(cause, sizeof cause, "connect timed out after %g s",
		    c->connect_timeout);
	else
		snprintf(cause, sizeof cause, "command timed out: no reply "
		    "within %g s", c->command_timeout);
	redis_conn_lost(c, -AS_ETIMEDOUT, cause, 0);
}

static void
redis_conn_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	redis_conn_start(w->data);
}
/* AUTH, SELECT and PING replies. */
static void
redis_conn_handshake_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_conn *c;
	redisReply	*reply = r;
	char		 text[128], cause[160];

	if ((c = redis_conn_of(ac, r)) == NULL)
		return;
	switch ((enum redis_conn_tag)(intptr_t)privdata) {
	case REDIS_CONN_TAG_AUTH:
		c->nhandshake--;
		if (reply->type == REDIS_REPLY_ERROR) {
			as_redact(text, sizeof text, reply->str,
			    c->password);
			snprintf(cause, sizeof cause, "authentication failed: "
			    "%s", text);
			redis_conn_lost(c, -AS_EAUTH, cause, 0);
			return;
		}
		as_secret_free(c->password, 0);
		c->password = NULL;
		break;
	case REDIS_CONN_TAG_SELECT:
		c->nhandshake--;
		if (reply->type == REDIS_REPLY_ERROR) {
			snprintf(cause, sizeof cause, "SELECT %d failed: "
			    "%.100s", c->addr->db, reply->str);
			redis_conn_lost(c, -AS_EINVAL, cause, 0);
			return;
		}
		break;
	case REDIS_CONN_TAG_PING:
		c->nhandshake--;
		if (reply->type == REDIS_REPLY_ERROR) {
			snprintf(cause, sizeof cause, "PING refused: %.100s",
			    reply->str);
			redis_conn_lost(c, strncmp(reply->str,
			    "NOAUTH", 6) == 0 ? -AS_EAUTH : -AS_EPROTO, cause,
			    0);
			return;
		}
		break;
	}
	if (c->nhandshake == 0 && !c->ready)
		redis_conn_ready(c);
}

/*
 * Opens a connection and queues its handshake: AUTH when a password is
 * configured, SELECT for a database other than 0, PING, and CONFIG GET on
 * the subscriber.  Everything queued before the connect completes goes out in
 * the first write.  Failures arm the retry timer.
 */
void
redis_conn_start(struct redis_conn *c)
{
	redisAsyncContext *ac;
	char		*secret = NULL, *user = NULL;
	char		 cause[160];
	int		 rc;

	ev_timer_stop(c->loop, &c->retry_timer);
	if (c->ac != NULL)
		return;
	redis_conn_reset(c);
	/* A user name (Redis 6 ACL): usernameKey, or source.username. */
	if ((rc = scaler_secret_user(c->secret, c->down_at, &user, cause,
	    sizeof cause)) != 0 || (rc = scaler_secret_read(c->secret,
	    c->down_at, &secret, cause, sizeof cause)) != 0) {
		as_secret_free(user, 0);
		redis_conn_fail(c, rc, cause);
		return;
	}
	/* Note: hiredis 0.14.1 resolves names with a blocking getaddrinfo. */
	ac = redisAsyncConnect(c->addr->host, c->addr->port);
	if (ac == NULL || ac->err != 0) {
		as_strlcpy(cause, ac != NULL && ac->errstr != NULL ?
		    ac->errstr : "cannot allocate a context", sizeof cause);
		if (ac != NULL)
			redisAsyncFree(ac);
		as_secret_free(secret, 0);
		as_secret_free(user, 0);
		redis_conn_fail(c, -AS_ECONN, cause);
		return;
	}
	ac->data = c;
	redisLibevAttach(c->loop, ac);
	redisAsyncSetConnectCallback(ac, redis_conn_connect_cb);
	redisAsyncSetDisconnectCallback(ac, redis_conn_disconnect_cb);
	c->ac = ac;
	ev_timer_set(&c->connect_timer, c->connect_timeout, 0.);
	ev_timer_start(c->loop, &c->connect_timer);
	c->command_timer.repeat = c->command_timeout;

	if (secret != NULL && user != NULL)
		rc = redis_conn_command(c,
		    redis_conn_handshake_cb,
		    (void *)(intptr_t)REDIS_CONN_TAG_AUTH, "AUTH %b %b",
		    user, strlen(user), secret, strlen(secret));
	else if (secret != NULL)
		rc = redis_conn_command(c,
		    redis_conn_handshake_cb,
		    (void *)(intptr_t)REDIS_CONN_TAG_AUTH, "AUTH %b",
		    secret, strlen(secret));
	as_secret_free(user, 0);
	if (secret != NULL) {
		c->password = secret;	/* kept to redact the reply */
		c->nhandshake += rc == 0;
	}
	if (c->select && c->addr->db != 0) {
		rc = redis_conn_command(c,
		    redis_conn_handshake_cb,
		    (void *)(intptr_t)REDIS_CONN_TAG_SELECT, "SELECT %d",
		    c->addr->db);
		c->nhandshake += rc == 0;
	}
	/* Ready means the server answered, not just that TCP connected. */
	rc = redis_conn_command(c, redis_conn_handshake_cb,
	    (void *)(intptr_t)REDIS_CONN_TAG_PING, "PING");
	c->nhandshake += rc == 0;
	if (c->hooks->started != NULL)
		c->hooks->started(c);
}

int
redis_conn_formatted(struct redis_conn *c, redisCallbackFn *fn,
    void *privdata, const char *cmd, size_t len)
{
	if (c->ac == NULL)
		return (-AS_ECONN);
	if (redisAsyncFormattedCommand(c->ac, fn, privdata, cmd, len) !=
	    REDIS_OK)
		return (-AS_ECONN);
	if (c->npending++ == 0 && c->connected)
		ev_timer_again(c->loop, &c->command_timer);
	return (0);
}

struct redis_conn *
redis_conn_of(redisAsyncContext *ac, void *reply)
{
	struct redis_conn *c = ac->data;

	if (c == NULL)
		return (NULL);
	if (reply == NULL) {
		redis_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
		return (NULL);
	}
	redis_conn_replied(c);
	return (c);
}

int
redis_conn_err(const struct redis_conn *c)
{
	return (c->err != 0 ? c->err : -AS_ECONN);
}

const char *
redis_conn_cause(const struct redis_conn *c, const char *dflt)
{
	return (c->cause[0] != '\0' ? c->cause : dflt);
}
