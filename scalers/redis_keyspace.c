/*
 * redis_keyspace.c: the keyspace-notification subscriber of a Redis
 * endpoint (redis_ep.h), on its "sub" connection, opened by the first
 * client that subscribes.
 *
 * Each client says which notification classes its key raises (l for
 * lists, t for streams; g for DEL and friends comes with both).  The
 * subscriber's handshake reads notify-keyspace-events and adds what the
 * clients then subscribed need; a client that subscribes later with a
 * class not yet on makes the endpoint ask again, on the main connection (a
 * subscribed connection accepts no CONFIG).  Flags are only ever added,
 * never removed.  One SUBSCRIBE goes out per distinct channel, however
 * many clients watch the key.
 *
 * Caller code never runs here: wake-ups and subscription confirmations
 * reach the clients through their zero-delay timers (the wake timer, and
 * the link timer of scalers/redis_endpoint.c).
 */
#include <sys/queue.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ev.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/log.h"
#include "redis_conn.h"
#include "redis_endpoint.h"
#include "redis_ep.h"

#define REDIS_KEYSPACE_LOG		"redis"

/* K, the keyspace channel itself, next to the REDIS_ENDPOINT_EV_* classes. */
#define REDIS_ENDPOINT_EV_KEYSPACE	0x100

/* What a CONFIG reply answers; passed as the command's privdata. */
enum redis_keyspace_config {
	REDIS_KEYSPACE_CONFIG_GET = 1,
	REDIS_KEYSPACE_CONFIG_SET
};

static void	 redis_keyspace_config_cb(redisAsyncContext *, void *,
		    void *);
static void	 redis_keyspace_sub_watch(struct redis_endpoint *,
		    struct redis_endpoint_client *);
static void	 redis_keyspace_sub_cb(redisAsyncContext *, void *, void *);

/* Keyspace-notification classes. */

/* The classes that notify-keyspace-events flags turn on. */
static unsigned
redis_keyspace_ev_parse(const char *flags)
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
redis_keyspace_ev_letters(unsigned classes, char *buf)
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
redis_keyspace_ev_need(const struct redis_endpoint_client *cl)
{
	return (cl->classes | REDIS_ENDPOINT_EV_GENERIC |
	    REDIS_ENDPOINT_EV_KEYSPACE);
}

/* The union over the clients that asked for push, minus refusals. */
static unsigned
redis_keyspace_ev_want(const struct redis_endpoint *ep)
{
	const struct redis_endpoint_client *cl;
	unsigned	 want = 0;

	LIST_FOREACH(cl, &ep->clients, entry) {
		if (cl->wake_fn != NULL)
			want |= redis_keyspace_ev_need(cl);
	}
	return (want & ~ep->ev_refused);
}

/* Announces the push mode of an endpoint when it first settles or changes. */
static void
redis_keyspace_push_mode(struct redis_endpoint *ep,
    enum redis_endpoint_push m, const char *reason)
{
	if (m == ep->push_logged)
		return;
	ep->push_logged = m;
	if (m == REDIS_ENDPOINT_PUSH_LIVE)
		log_info(REDIS_KEYSPACE_LOG, "%s: push wake-ups via keyspace "
		    "notifications", ep->name);
	else
		log_warn(REDIS_KEYSPACE_LOG, "%s: polling only: %s", ep->name,
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
redis_keyspace_config_refused(struct redis_conn *c, const char *what,
    const char *reason)
{
	struct redis_endpoint *ep = c->arg;
	char		 cause[160], letters[8];
	unsigned	 missing;

	snprintf(cause, sizeof cause, "%s refused: %s", what, reason);
	as_strlcpy(ep->push_cause, cause, sizeof ep->push_cause);
	c->checking = 0;
	if (c == &ep->sub) {
		redis_keyspace_push_mode(ep, REDIS_ENDPOINT_PUSH_REFUSED,
		    cause);
		redis_conn_lost(c, 0, cause, 0);
		return;
	}
	missing = redis_keyspace_ev_want(ep) & ~ep->ev_on;
	ep->ev_refused |= missing;
	log_warn(REDIS_KEYSPACE_LOG, "%s: no keyspace events of class %s, "
	    "those pools poll only: %s", ep->name,
	    redis_keyspace_ev_letters(missing, letters), cause);
}

/* The server has the classes in on: subscribe whoever they cover. */
static void
redis_keyspace_config_ok(struct redis_conn *c, unsigned on)
{
	struct redis_endpoint *ep = c->arg;
	struct redis_endpoint_client *cl;

	c->checking = 0;
	ep->ev_on = on;
	if (c == &ep->sub)
		c->push_ok = 1;
	if (!ep->sub.push_ok)
		return;
	redis_keyspace_push_mode(ep, REDIS_ENDPOINT_PUSH_LIVE, NULL);
	LIST_FOREACH(cl, &ep->clients, entry) {
		if (cl->wake_fn != NULL && cl->sub == REDIS_ENDPOINT_SUB_NONE)
			redis_keyspace_sub_watch(ep, cl);
	}
	redis_keyspace_config_extend(ep);
}

/*
 * CONFIG GET notify-keyspace-events answered.  Adds what the subscribed
 * clients need and the server lacks to its flags, rather than replacing
 * them.
 */
static void
redis_keyspace_config_got(struct redis_conn *c, const redisReply *r)
{
	const char	*flags;
	char		 letters[8], want[48];
	unsigned	 on, missing;

	if (r->type == REDIS_REPLY_ERROR) {
		redis_keyspace_config_refused(c, "CONFIG GET", r->str);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		redis_keyspace_config_refused(c, "CONFIG GET",
		    "unexpected reply");
		return;
	}
	flags = r->element[1]->str;
	on = redis_keyspace_ev_parse(flags);
	missing = (redis_keyspace_ev_want(c->arg) |
	    REDIS_ENDPOINT_EV_KEYSPACE | REDIS_ENDPOINT_EV_GENERIC) & ~on;
	if (missing == 0) {
		redis_keyspace_config_ok(c, on);
		return;
	}
	c->setting = on | missing;
	/* hiredis's format knows %s but not a precision on it. */
	snprintf(want, sizeof want, "%.32s%s", flags,
	    redis_keyspace_ev_letters(missing, letters));
	if (redis_conn_command(c, redis_keyspace_config_cb,
	    (void *)(intptr_t)REDIS_KEYSPACE_CONFIG_SET,
	    "CONFIG SET notify-keyspace-events %s", want) != 0)
		redis_conn_lost(c, -AS_ECONN, "cannot queue CONFIG "
		    "SET", 0);
}

/* CONFIG GET and CONFIG SET replies, on either connection. */
static void
redis_keyspace_config_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_conn *c;
	const redisReply *reply = r;

	if ((c = redis_conn_of(ac, r)) == NULL)
		return;
	if ((intptr_t)privdata == REDIS_KEYSPACE_CONFIG_GET)
		redis_keyspace_config_got(c, reply);
	else if (reply->type == REDIS_REPLY_ERROR)
		redis_keyspace_config_refused(c, "CONFIG SET", reply->str);
	else
		redis_keyspace_config_ok(c, c->setting);
}

/*
 * A client subscribed after the subscriber's handshake and needs a class
 * the server does not have on: ask on the main connection, since the
 * subscribed one accepts no CONFIG.
 */
void
redis_keyspace_config_extend(struct redis_endpoint *ep)
{
	struct redis_conn *c = &ep->main;

	if (!ep->sub.push_ok || c->checking ||
	    (redis_keyspace_ev_want(ep) & ~ep->ev_on) == 0)
		return;
	if (redis_conn_command(c, redis_keyspace_config_cb,
	    (void *)(intptr_t)REDIS_KEYSPACE_CONFIG_GET,
	    "CONFIG GET notify-keyspace-events") == 0)
		c->checking = 1;
}

/*
 * The subscriber went away: nothing is subscribed any more, and the next
 * one reads the server's flags afresh (a restarted server lost them).
 */
static void
redis_keyspace_sub_down(struct redis_conn *c, int err)
{
	struct redis_endpoint *ep = c->arg;
	struct redis_endpoint_client *cl;

	(void)err;
	LIST_FOREACH(cl, &ep->clients, entry) {
		cl->sub = REDIS_ENDPOINT_SUB_NONE;
		cl->push_told = 0;
	}
	ep->ev_on = ep->ev_refused = 0;
}

/*
 * The subscriber's handshake, after its AUTH and PING: read the server's
 * flags (redis_keyspace_config_got() adds what is missing).
 */
static void
redis_keyspace_sub_started(struct redis_conn *c)
{
	if (redis_conn_command(c, redis_keyspace_config_cb,
	    (void *)(intptr_t)REDIS_KEYSPACE_CONFIG_GET,
	    "CONFIG GET notify-keyspace-events") == 0)
		c->checking = 1;
}

const struct redis_conn_hooks redis_keyspace_sub_hooks = {
	.started = redis_keyspace_sub_started,
	.down = redis_keyspace_sub_down,
};

/* Keyspace subscriptions, one SUBSCRIBE per distinct channel. */

static int
redis_keyspace_channel_is(const struct redis_endpoint_client *cl,
    const char *name, size_t len)
{
	return (cl->channel != NULL && strlen(cl->channel) == len &&
	    memcmp(cl->channel, name, len) == 0);
}

/* Subscribes cl, unless the server lacks one of its classes. */
static void
redis_keyspace_sub_watch(struct redis_endpoint *ep,
    struct redis_endpoint_client *cl)
{
	struct redis_endpoint_client *o;

	if (ep->sub.ac == NULL || !ep->sub.push_ok ||
	    (redis_keyspace_ev_need(cl) & ~ep->ev_on) != 0)
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
	if (redis_conn_command(&ep->sub, redis_keyspace_sub_cb, NULL,
	    "SUBSCRIBE %s", cl->channel) == 0)
		cl->sub = REDIS_ENDPOINT_SUB_SENT;
}

void
redis_keyspace_unwatch(struct redis_endpoint *ep,
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
redis_keyspace_sub_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_conn *c = ac->data;
	struct redis_endpoint *ep;
	struct redis_endpoint_client *cl;
	redisReply	*reply = r;
	const char	*kind, *chan;
	size_t		 len;

	(void)privdata;
	if (c == NULL)
		return;
	if (reply == NULL) {
		redis_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING)
		return;
	ep = c->arg;
	kind = reply->element[0]->str;
	chan = reply->element[1]->str;
	len = reply->element[1]->len;
	if (strcasecmp(kind, "subscribe") == 0) {
		redis_conn_replied(c);
		LIST_FOREACH(cl, &ep->clients, entry) {
			if (redis_keyspace_channel_is(cl, chan, len) &&
			    cl->sub != REDIS_ENDPOINT_SUB_NONE) {
				cl->sub = REDIS_ENDPOINT_SUB_LIVE;
				redis_endpoint_link_kick(cl);
			}
		}
	} else if (strcasecmp(kind, "message") == 0) {
		LIST_FOREACH(cl, &ep->clients, entry) {
			if (cl->wake_fn != NULL &&
			    redis_keyspace_channel_is(cl, chan, len) &&
			    !ev_is_active(&cl->wake_timer)) {
				ev_timer_set(&cl->wake_timer, 0., 0.);
				ev_timer_start(cl->loop, &cl->wake_timer);
			}
		}
	}
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
	/* keyspaceNotifications off: no CONFIG, no SUBSCRIBE, polls only. */
	if (cl->keyspace == SCALER_KEYSPACE_OFF)
		return (-AS_EINVAL);
	cl->wake_fn = fn;
	cl->wake_arg = arg;
	if (!first)
		return (0);
	cl->classes = classes;
	free(cl->channel);
	cl->channel = xasprintf("__keyspace@%d__:%s", ep->addr.db, key);
	if (ep->sub.ac == NULL && !ev_is_active(&ep->sub.retry_timer))
		redis_conn_start(&ep->sub);
	else if (ep->sub.push_ok && (redis_keyspace_ev_need(cl) &
	    ~ep->ev_on) != 0)
		redis_keyspace_config_extend(ep);
	else
		redis_keyspace_sub_watch(ep, cl);
	return (0);
}

int
redis_endpoint_client_pushing(const struct redis_endpoint_client *cl)
{
	return (cl->sub == REDIS_ENDPOINT_SUB_LIVE);
}

int
redis_endpoint_client_push_refused(const struct redis_endpoint_client *cl,
    char *err, size_t errlen)
{
	const struct redis_endpoint *ep = cl->ep;

	if (ep == NULL || cl->wake_fn == NULL ||
	    redis_endpoint_client_pushing(cl))
		return (0);
	if (ep->push_logged != REDIS_ENDPOINT_PUSH_REFUSED &&
	    (redis_keyspace_ev_need(cl) & ep->ev_refused) == 0)
		return (0);
	as_strlcpy(err, ep->push_cause, errlen);
	return (1);
}
