/*
 * redis_ep.h: the endpoint itself, private to the files that make the
 * Redis endpoints of redis_endpoint.h, bottom first:
 *
 *  - scalers/redis_conn.c: one connection (redis_conn.h);
 *  - scalers/redis_keyspace.c: the keyspace-notification subscriber, on
 *    the endpoint's "sub" connection, and the server's
 *    notify-keyspace-events flags (the functions below);
 *  - scalers/redis_endpoint.c: the endpoint cache, the clients, their
 *    link events, commands and transactions;
 *  - scalers/redis_source.c: the base of the scale-mode sources and their
 *    polls.
 *
 * Ownership: an endpoint belongs to the cache of scalers/redis_endpoint.c,
 * which frees it with the last client's reference; the other files borrow
 * it through a client.
 */
#ifndef AGENTSCALER_REDIS_EP_H
#define AGENTSCALER_REDIS_EP_H

#include <sys/queue.h>

#include <ev.h>

#include "agentscaler/scalers/scaler.h"
#include "redis_addr.h"
#include "redis_conn.h"
#include "redis_endpoint.h"
#include "scaler_cache.h"

/* How the endpoint's keyspace notifications were last announced. */
enum redis_endpoint_push {
	REDIS_ENDPOINT_PUSH_UNKNOWN,
	REDIS_ENDPOINT_PUSH_LIVE,
	REDIS_ENDPOINT_PUSH_REFUSED
};

/* A client's keyspace subscription (its field sub). */
enum redis_endpoint_sub {
	REDIS_ENDPOINT_SUB_NONE,	/* no SUBSCRIBE on the current conn */
	REDIS_ENDPOINT_SUB_SENT,
	REDIS_ENDPOINT_SUB_LIVE		/* the server confirmed it */
};

struct redis_endpoint {
	struct scaler_cache_entry ce;		/* redis_endpoints */
	struct ev_loop		*loop;
	struct redis_addr	 addr;
	char			 name[272];	/* host:port */
	struct scaler_secret	 secret;	/* the password's source */
	LIST_HEAD(, redis_endpoint_client) clients;
	unsigned		 main_losses;	/* main connection outages */
	struct redis_conn	 main;
	struct redis_conn	 sub;
	unsigned		 ev_on;		/* classes on */
	unsigned		 ev_refused;	/* SET refused */
	enum redis_endpoint_push push_logged;	/* mode last announced */
	char			 push_cause[160]; /* why CONFIG was refused */
};

/*
 * Something about the main connection or the subscription changed: the
 * client hears of it from its link timer (redis_endpoint_client_link()).
 */
static inline void
redis_endpoint_link_kick(struct redis_endpoint_client *cl)
{
	if (cl->link_fn != NULL && !ev_is_active(&cl->link_timer)) {
		ev_timer_set(&cl->link_timer, 0., 0.);
		ev_timer_start(cl->loop, &cl->link_timer);
	}
}

/* scalers/redis_keyspace.c. */

/* The hooks of the "sub" connection: its handshake reads the flags. */
extern const struct redis_conn_hooks redis_keyspace_sub_hooks;

/*
 * A client subscribed after the subscriber's handshake, or the main
 * connection is back: asks the server, on the main connection, for the
 * classes the subscribed clients need and it does not have on.
 */
void	 redis_keyspace_config_extend(struct redis_endpoint *);

/* Drops cl's subscription (UNSUBSCRIBE once no other client shares it). */
void	 redis_keyspace_unwatch(struct redis_endpoint *,
	    struct redis_endpoint_client *cl);

#endif
