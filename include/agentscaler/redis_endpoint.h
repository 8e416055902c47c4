/*
 * redis_endpoint.h: what the Redis sources (scalers/redis_list.c,
 * scalers/redis_stream.c) share, implemented in scalers/redis_endpoint.c:
 *
 *  - the pure address parser;
 *  - endpoints: one per loop, host, port, database and password source,
 *    each with ONE main connection that every source on it pipelines its
 *    commands on, and ONE subscriber connection for keyspace notifications,
 *    whatever the source types;
 *  - struct redis_endpoint_source, the base every Redis source embeds
 *    first (it starts with struct scaler itself), which carries the poll
 *    lifecycle of scaler.h (completion exactly once, never before poll()
 *    returns, -AS_ECANCELED on destroy) and the push wake-ups.
 *
 * A source's poll goes: redis_endpoint_poll_start(), one or more
 * redis_endpoint_poll_command(), redis_endpoint_poll_sent().  Each reply is
 * handed to the source's take function with the tag it was queued with; a
 * take function may queue a follow-up command on the same poll.  The
 * completion runs once the last reply is in.
 *
 * Ownership: struct redis_addr is the caller's; a source owns its embedded
 * base, which holds a reference on its endpoint between
 * redis_endpoint_source_init() and redis_endpoint_source_fini(); a poll
 * belongs to the endpoint module, which frees it after the completion.
 * Replies passed to take functions are borrowed for the call.
 */
#ifndef AGENTSCALER_REDIS_ENDPOINT_H
#define AGENTSCALER_REDIS_ENDPOINT_H

#include <sys/queue.h>

#include <stddef.h>

#include <ev.h>

#include "agentscaler/scaler.h"
#include "agentscaler/scaler_later.h"

struct redisReply;
struct redis_endpoint;
struct redis_endpoint_poll;

struct redis_addr {
	char	 host[256];	/* name or address; IPv6 bare */
	int	 port;		/* 1..65535, 6379 when absent */
	int	 db;		/* 0 when absent */
};

/*
 * Parses "redis://host[:port][/db]" (IPv6 as "redis://[::1]:6379/2") into
 * *out.  Pure: no I/O, no name lookup.  Returns 0, or -AS_EINVAL with a
 * message in err for another scheme (rediss:// included: the hiredis this
 * is built with has no TLS before 1.0), inline credentials (refused, never
 * echoed), a bad host, port or database, or trailing garbage.
 */
int	 redis_endpoint_parse_address(const char *url,
	    struct redis_addr *out, char *err, size_t errlen);

/*
 * Keyspace-notification classes a source needs (notify-keyspace-events
 * letters l, t and g); K is always added.  The endpoint asks the server for
 * the union over its subscribed sources.
 */
#define REDIS_ENDPOINT_EV_GENERIC	0x01	/* g: DEL, RENAME... */
#define REDIS_ENDPOINT_EV_LIST		0x02	/* l: list commands */
#define REDIS_ENDPOINT_EV_STREAM	0x04	/* t: stream commands */

/*
 * Called with each reply of a poll, in the order they arrive, with the tag
 * given to redis_endpoint_poll_command().  Only while the poll's source is
 * alive and the result carries no error yet; the reply is borrowed.
 */
typedef void	 redis_endpoint_take_fn(struct redis_endpoint_poll *,
		    int tag, const struct redisReply *);

/* One poll in flight; a source's own poll struct embeds it first. */
struct redis_endpoint_poll {
	struct redis_endpoint_source *src;	/* NULL once orphaned */
	redis_endpoint_take_fn	*take;
	unsigned		 outstanding;	/* replies due + hold */
	struct scaler_result	 res;
};

/* Private to scalers/redis_endpoint.c, except base (read) and ep. */
struct redis_endpoint_source {
	struct scaler		 base;
	struct redis_endpoint	*ep;
	struct ev_loop		*loop;
	LIST_ENTRY(redis_endpoint_source) entry;
	struct redis_endpoint_poll *poll;	/* in hiredis's hands */
	struct scaler_later	 later;		/* the pending poll */
	scaler_wake_fn		*wake_fn;
	void			*wake_arg;
	ev_timer		 wake_timer;
	char			*channel;	/* keyspace channel */
	unsigned		 classes;	/* REDIS_ENDPOINT_EV_* */
	int			 sub;		/* subscription state */
};

/*
 * Checks what every Redis source needs: an address that parses, at most one
 * password source, finite non-negative timeouts.  what names the type in
 * messages.  Returns 0 or -AS_EINVAL with a message in err.
 */
int	 redis_endpoint_validate(const char *what,
	    const struct scaler_source *, char *err, size_t errlen);

/*
 * Sets up the base of a new source of the given type: finds or opens the
 * endpoint for src's address and password source on loop.  Returns 0, or
 * -AS_EINVAL with a message in err (the base then holds nothing).
 */
int	 redis_endpoint_source_init(struct redis_endpoint_source *,
	    const struct scaler_type *, struct ev_loop *,
	    const struct scaler_source *src, char *err, size_t errlen);

/*
 * Tears the base down: a pending poll completes with -AS_ECANCELED before
 * this returns (its commands stay with hiredis, orphaned), the keyspace
 * subscription goes, and the endpoint reference is dropped (the last one
 * closes both connections).  The caller then frees its own fields.
 */
void	 redis_endpoint_source_fini(struct redis_endpoint_source *);

/*
 * Starts a poll: allocates size bytes (at least the size of struct
 * redis_endpoint_poll, zeroed) whose replies go to take.  Returns 0 with
 * the poll in *pp, -AS_EINVAL without fn, -AS_EAGAIN while a poll is
 * pending.
 */
int	 redis_endpoint_poll_start(struct redis_endpoint_source *,
	    size_t size, redis_endpoint_take_fn *take, scaler_done_fn *fn,
	    void *arg, struct redis_endpoint_poll **pp);

/*
 * Queues one command of a poll on the endpoint's main connection, where it
 * pipelines with every other source's; fmt as hiredis's redisAsyncCommand
 * (%s, %b for binary-safe keys).  Returns 0 when queued.  When the
 * connection is down, the poll's result takes the endpoint's last failure
 * (-AS_EAUTH after an authentication failure, -AS_ECONN otherwise, with its
 * cause), unless it already holds an error, and that code is returned.
 */
int	 redis_endpoint_poll_command(struct redis_endpoint_poll *, int tag,
	    const char *fmt, ...);

/*
 * Ends the queueing phase of redis_endpoint_poll_start(); if nothing went
 * out, the completion runs on the next loop turn.  Call it exactly once,
 * from the source's poll(), after the last redis_endpoint_poll_command().
 */
void	 redis_endpoint_poll_sent(struct redis_endpoint_poll *);

/*
 * Push mode: listens on __keyspace@<db>__:<key> through the endpoint's one
 * subscriber connection and calls fn (from a zero-delay timer, never from
 * inside hiredis; several events in one loop turn make one call) on every
 * event.  classes says which notification classes the key's commands
 * raise.  Returns 0, or -AS_EINVAL without fn; a server that refuses CONFIG
 * leaves the source polling, which the log says once per endpoint.
 */
int	 redis_endpoint_source_subscribe(struct redis_endpoint_source *,
	    const char *key, unsigned classes, scaler_wake_fn *fn, void *arg);

/* 1 while the source's keyspace subscription is confirmed, else 0. */
int	 redis_endpoint_source_pushing(const struct redis_endpoint_source *);

/*
 * Sets res->error to err and res->errmsg to "redis <endpoint>: " plus the
 * formatted text.
 */
void	 redis_endpoint_result_error(struct scaler_result *res, int err,
	    const struct redis_endpoint *, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/*
 * Maps an error reply's text to an as_err: -AS_EAUTH for NOAUTH, WRONGPASS
 * and NOPERM, -AS_EPROTO otherwise.
 */
int	 redis_endpoint_reply_err(const char *text);

/* The endpoint's name for messages, "host:port" or "[v6]:port"; borrowed. */
const char *redis_endpoint_name(const struct redis_endpoint *);

#endif
