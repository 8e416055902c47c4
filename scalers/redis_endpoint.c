/*
 * redis_endpoint.c: the Redis endpoints every Redis source and consumer
 * shares (redis_endpoint.h): the endpoint cache, the clients, their link
 * events, and their commands and transactions.  The connections are
 * scalers/redis_conn.c's, the keyspace subscriber scalers/redis_keyspace.c's
 * and the sources' polls scalers/redis_source.c's (redis_ep.h).
 *
 * Endpoints.  Every client (a scale-mode source or a dispatch-mode
 * consumer) belongs to one endpoint, shared by all the clients on the same
 * loop with the same host, port, database and password source, whatever
 * their type, and refcounted by them (scalers/cache.c).  An endpoint owns
 * two connections: "main", on which every client's commands go, and "sub",
 * opened by the first subscribe(), which carries keyspace notifications.
 * hiredis only appends a command to its output buffer and arms the write
 * watcher; the write happens when the loop next finds the socket writable.
 * So all the commands issued during one loop iteration, for every pool on
 * the endpoint, leave in one write and come back as one pipelined batch.
 * That is also why nothing here may block the server on our behalf: a
 * BLMOVE or XREADGROUP BLOCK on the main connection would hold back the
 * replies of every pool behind it.
 *
 * Lifetimes.  A retired context's data is NULL (redis_conn.h), so callbacks
 * that run later, possibly after the endpoint is gone, only release their
 * own privdata.  Callers' code (completions) runs only from poll and
 * request reply callbacks, from our own timers, and from client_fini()
 * (its cancellations), and nothing touches the endpoint after calling it:
 * a completion may finalize the last client, which frees the endpoint at
 * once (redisAsyncFree() from inside a reply callback is deferred by
 * hiredis until the callback returns).
 *
 * Caller code never runs inside the connect and disconnect callbacks, nor
 * in the subscriber's: link events (main connection up or down,
 * subscription confirmed) go through zero-delay timers per client, as do
 * the completions of requests sent while the main connection is down.
 */
#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/scaler.h"
#include "redis_addr.h"
#include "redis_conn.h"
#include "redis_endpoint.h"
#include "redis_ep.h"
#include "scaler_cache.h"
#include "scaler_url.h"

#define REDIS_ENDPOINT_TIMEOUT		2.0	/* connect, command: s */

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

static void	 redis_endpoint_links_kick(struct redis_endpoint *, int);

static struct scaler_cache redis_endpoints =
    SCALER_CACHE_INITIALIZER(redis_endpoints);

/* The main connection: its clients hear when it comes and goes. */
static void
redis_endpoint_main_ready(struct redis_conn *c)
{
	struct redis_endpoint *ep = c->arg;

	redis_endpoint_links_kick(ep, 0);
	/* A class check that the main connection lost is asked again. */
	redis_keyspace_config_extend(ep);
}

static void
redis_endpoint_main_down(struct redis_conn *c, int err)
{
	(void)err;
	redis_endpoint_links_kick(c->arg, 1);
}

static const struct redis_conn_hooks redis_endpoint_main_hooks = {
	.ready = redis_endpoint_main_ready,
	.down = redis_endpoint_main_down,
};

/* Endpoints. */

static int
redis_endpoint_match(const struct scaler_cache_entry *e,
    const struct scaler_cache_key *k)
{
	const struct redis_endpoint *ep = SCALER_CACHE_OWNER(e,
	    struct redis_endpoint, ce);
	const struct redis_addr *addr = k->addr;

	return (ep->loop == k->loop && ep->addr.port == addr->port &&
	    ep->addr.db == addr->db &&
	    strcmp(ep->addr.host, addr->host) == 0 &&
	    scaler_secret_same(&ep->secret, k->src));
}

/* Finds or opens the endpoint for this client; the caller holds a ref. */
static struct redis_endpoint *
redis_endpoint_get(struct ev_loop *loop, const struct redis_addr *addr,
    const struct scaler_source *src)
{
	const struct scaler_cache_key key = { loop, addr, src };
	struct scaler_cache_entry *e;
	struct redis_endpoint *ep;
	double		 ct, mt;

	ct = src->connect_timeout > 0 ? src->connect_timeout :
	    REDIS_ENDPOINT_TIMEOUT;
	mt = src->command_timeout > 0 ? src->command_timeout :
	    REDIS_ENDPOINT_TIMEOUT;
	if ((e = scaler_cache_get(&redis_endpoints, redis_endpoint_match,
	    &key)) != NULL) {
		ep = SCALER_CACHE_OWNER(e, struct redis_endpoint, ce);
		/* Shared sockets get the strictest deadlines asked for. */
		redis_conn_tighten(&ep->main, ct, mt);
		redis_conn_tighten(&ep->sub, ct, mt);
		return (ep);
	}

	ep = xcalloc(1, sizeof *ep);
	ep->loop = loop;
	ep->addr = *addr;
	scaler_url_hostport(addr->host, addr->port, ep->name,
	    sizeof ep->name);
	scaler_secret_set(&ep->secret, src);
	LIST_INIT(&ep->clients);
	redis_conn_init(&ep->main, loop, ep->name, "connection", &ep->addr, 1,
	    &ep->secret, ct, mt, &redis_endpoint_main_hooks, ep);
	redis_conn_init(&ep->sub, loop, ep->name, "subscriber connection",
	    &ep->addr, 0, &ep->secret, ct, mt, &redis_keyspace_sub_hooks, ep);
	/* A server that stopped answering one socket is not serving pushes. */
	ep->main.dependent = &ep->sub;
	scaler_cache_add(&redis_endpoints, &ep->ce);
	redis_conn_start(&ep->main);
	return (ep);
}

/* Drops a ref; the last one closes both connections and frees. */
static void
redis_endpoint_put(struct redis_endpoint *ep)
{
	if (!scaler_cache_put(&ep->ce))
		return;
	redis_conn_close(&ep->sub);
	redis_conn_close(&ep->main);
	scaler_secret_clear(&ep->secret);
	free(ep);
}

const char *
redis_endpoint_name(const struct redis_endpoint *ep)
{
	return (ep->name);
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

static void
redis_endpoint_wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_endpoint_client *cl = w->data;

	(void)loop;
	(void)revents;
	cl->wake_fn(cl, cl->wake_arg);	/* may finalize cl */
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
	const struct redis_conn *c = &ep->main;
	char		 msg[224];
	int		 ev = 0;

	(void)revents;
	msg[0] = '\0';
	if (cl->link_told != REDIS_ENDPOINT_LINK_DOWN &&
	    cl->link_losses != ep->main_losses) {
		ev = REDIS_ENDPOINT_LINK_DOWN;
		redis_endpoint_errmsg(msg, sizeof msg, ep, "%s",
		    redis_conn_cause(c, "connection lost"));
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
	cl->keyspace = src->keyspace_notifications;
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

	redis_keyspace_unwatch(ep, cl);
	LIST_REMOVE(cl, entry);
	cl->ep = NULL;
	redis_endpoint_put(ep);
	free(cl->channel);
	cl->channel = NULL;
	for (i = 0; i < n; i++)
		cancel[i].fn(-AS_ECANCELED, NULL, msg, cancel[i].arg);
	free(cancel);
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
	const struct redis_conn *c;

	if (req->err != 0 || req->cl == NULL)
		return;
	ep = req->cl->ep;
	c = &ep->main;
	req->err = redis_conn_err(c);
	redis_endpoint_errmsg(req->errmsg, sizeof req->errmsg, ep, "%s",
	    redis_conn_cause(c, "connection closed"));
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
	struct redis_conn *c = ac->data;
	struct redis_endpoint_req *req = privdata;
	redis_endpoint_reply_fn *fn;
	void		*arg;
	char		 errmsg[sizeof req->errmsg];
	int		 err;

	if (r == NULL) {
		/* data still set: hiredis is freeing on its own. */
		if (c != NULL)
			redis_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
		redis_endpoint_req_lost(req);
	} else if (c != NULL)
		redis_conn_replied(c);
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
	struct redis_conn *c = &ep->main;
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
		    "not connected: %s", redis_conn_cause(c,
		    "connection closed"));
		/* A pending retry runs this turn: it keeps its cause. */
		if (!ev_is_active(&c->retry_timer) &&
		    !ev_is_pending(&c->retry_timer))
			redis_conn_fail(c, -AS_ECONN,
			    "not connected");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if (redis_conn_formatted(c, redis_endpoint_req_cb, req,
		    cmds[i], lens[i]) != 0)
			break;
		req->due++;
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
