/*
 * redis_endpoint.h: what the Redis sources (scalers/redis_list.c,
 * scalers/redis_stream.c) and consumers (scalers/redis_consume.c) share:
 *
 *  - the pure address parser and source checks (redis_addr.h,
 *    scalers/redis_addr.c);
 *  - endpoints (scalers/redis_endpoint.c on scalers/redis_conn.c): one per loop, host, port, database and password source,
 *    each with ONE main connection that every user on it pipelines its
 *    commands on, and ONE subscriber connection for keyspace notifications,
 *    whatever the source or consumer types;
 *  - struct redis_endpoint_client, what every user of an endpoint embeds:
 *    the reference, the keyspace subscription with its wake-ups
 *    (scalers/redis_keyspace.c), the connection up/down notifications, and
 *    the commands in flight, each with a completion that runs exactly once
 *    (scalers/redis_endpoint.c);
 *  - struct redis_endpoint_source, the base every Redis source embeds
 *    first (it starts with struct scaler itself), which carries the poll
 *    lifecycle of scaler.h (completion exactly once, never before poll()
 *    returns, -AS_ECANCELED on destroy) on top of a client
 *    (scalers/redis_source.c).
 *
 * A source's poll goes: redis_endpoint_poll_start(), one or more
 * redis_endpoint_poll_command(), redis_endpoint_poll_sent().  Each reply is
 * handed to the source's take function with the tag it was queued with; a
 * take function may queue a follow-up command on the same poll.  The
 * completion runs once the last reply is in.
 *
 * Ownership: struct redis_addr is the caller's; a client (and so a source)
 * is embedded in its owner and holds a reference on its endpoint between
 * its init and fini; polls, requests and transactions belong to the
 * endpoint module once sent, which frees them after their completion.
 * Replies passed to take and reply functions are borrowed for the call.
 */
#ifndef AGENTSCALER_REDIS_ENDPOINT_H
#define AGENTSCALER_REDIS_ENDPOINT_H

#include <sys/queue.h>

#include <stddef.h>

#include <ev.h>

#include "agentscaler/scalers/scaler.h"
#include "redis_addr.h"
#include "scaler_later.h"

struct redisReply;
struct redis_endpoint;
struct redis_endpoint_client;
struct redis_endpoint_poll;
struct redis_endpoint_req;
struct redis_endpoint_tx;

/*
 * Keyspace-notification classes a client needs (notify-keyspace-events
 * letters l, t and g); K is always added.  The endpoint asks the server for
 * the union over its subscribed clients.
 */
#define REDIS_ENDPOINT_EV_GENERIC	0x01	/* g: DEL, RENAME... */
#define REDIS_ENDPOINT_EV_LIST		0x02	/* l: list commands */
#define REDIS_ENDPOINT_EV_STREAM	0x04	/* t: stream commands */

/* A keyspace event on the client's key (see client_subscribe()). */
typedef void	 redis_endpoint_wake_fn(struct redis_endpoint_client *,
		    void *arg);

/* What a link function hears (see redis_endpoint_client_link()). */
#define REDIS_ENDPOINT_LINK_UP		1	/* main connection ready */
#define REDIS_ENDPOINT_LINK_DOWN	2	/* lost or cannot connect */
#define REDIS_ENDPOINT_LINK_PUSH	3	/* subscription confirmed */
typedef void	 redis_endpoint_link_fn(struct redis_endpoint_client *,
		    int event, const char *errmsg, void *arg);

/*
 * The completion of a command or transaction: err 0 with the reply
 * (borrowed; it may be an error reply, which is the caller's to read), or
 * a negative as_err with reply NULL and errmsg "redis <endpoint>: ...":
 * the main connection's failure when it is down or goes down before the
 * reply (-AS_ECONN, -AS_EAUTH after an authentication failure,
 * -AS_ETIMEDOUT when the server stopped answering), -AS_ECANCELED when
 * the client is finalized first, -AS_EINVAL for a command that does not
 * format.
 */
typedef void	 redis_endpoint_reply_fn(int err, const struct redisReply *,
		    const char *errmsg, void *arg);

TAILQ_HEAD(redis_endpoint_reqs, redis_endpoint_req);

/*
 * A user of an endpoint.  Private to the files of redis_ep.h, except ep
 * (read, for redis_endpoint_name() and messages).
 */
struct redis_endpoint_client {
	struct redis_endpoint	*ep;
	struct ev_loop		*loop;
	LIST_ENTRY(redis_endpoint_client) entry;
	/* Keyspace wake-ups. */
	redis_endpoint_wake_fn	*wake_fn;
	void			*wake_arg;
	ev_timer		 wake_timer;
	char			*channel;	/* keyspace channel */
	unsigned		 classes;	/* REDIS_ENDPOINT_EV_* */
	int			 sub;		/* subscription state */
	int			 keyspace;	/* enum scaler_keyspace */
	/* Connection up/down. */
	redis_endpoint_link_fn	*link_fn;
	void			*link_arg;
	ev_timer		 link_timer;
	int			 link_told;	/* last event told */
	unsigned		 link_losses;	/* the endpoint's, then */
	int			 push_told;
	/* Commands in flight, and those that failed before leaving. */
	struct redis_endpoint_reqs reqs;
	struct redis_endpoint_reqs failed;
	ev_timer		 fail_timer;
};

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

/*
 * The base of a source.  Private to the files of redis_ep.h, except base
 * (read) and cl.ep.
 */
struct redis_endpoint_source {
	struct scaler		 base;
	struct redis_endpoint_client cl;
	struct redis_endpoint_poll *poll;	/* in hiredis's hands */
	struct scaler_later	 later;		/* the pending poll */
	scaler_wake_fn		*wake_fn;
	void			*wake_arg;
};

/* Clients. */

/*
 * Sets a client up: finds or opens the endpoint for src's address,
 * password source and timeouts on loop (connecting starts at once).
 * Returns 0, or -AS_EINVAL with a message in err (the client then holds
 * nothing and needs no fini).
 */
int	 redis_endpoint_client_init(struct redis_endpoint_client *,
	    struct ev_loop *, const struct scaler_source *src, char *err,
	    size_t errlen);

/*
 * Tears a client down: the completion of every command or transaction it
 * sent that has not completed yet runs with -AS_ECANCELED before this
 * returns (those still with hiredis stay there, orphaned: their replies
 * are dropped), its wake-ups and link events stop, its keyspace
 * subscription goes, and the endpoint reference is dropped (the last one
 * closes both connections).  Idempotent.
 */
void	 redis_endpoint_client_fini(struct redis_endpoint_client *);

/*
 * Push mode: listens on __keyspace@<db>__:<key> through the endpoint's one
 * subscriber connection and calls fn (from a zero-delay timer, never from
 * inside hiredis; several events in one loop turn make one call) on every
 * event.  classes says which notification classes the key's commands
 * raise.  Returns 0, or -AS_EINVAL without fn; a server that refuses CONFIG
 * leaves the client polling, which the log says once per endpoint.  A
 * second call only replaces fn and arg.
 */
int	 redis_endpoint_client_subscribe(struct redis_endpoint_client *,
	    const char *key, unsigned classes, redis_endpoint_wake_fn *fn,
	    void *arg);

/* 1 while the client's keyspace subscription is confirmed, else 0. */
int	 redis_endpoint_client_pushing(const struct redis_endpoint_client *);

/*
 * 1 when the server has the notifications the client needs off and refused
 * to turn them on (or to say), with the reason in err; else 0.
 */
int	 redis_endpoint_client_push_refused(const struct redis_endpoint_client *,
	    char *err, size_t errlen);

/*
 * Link events, each from a timer of the client (never from inside hiredis
 * and never before this returns), in order and one per loop turn:
 * REDIS_ENDPOINT_LINK_UP when the main connection is ready (at once on the
 * next turn when it already is), REDIS_ENDPOINT_LINK_DOWN with the cause
 * when it is lost or cannot be opened (once per outage, and only after UP
 * or before any), and REDIS_ENDPOINT_LINK_PUSH each time the client's
 * keyspace subscription is confirmed (events before it were missed: a
 * consumer fetches once).  fn may finalize the client.
 */
void	 redis_endpoint_client_link(struct redis_endpoint_client *,
	    redis_endpoint_link_fn *fn, void *arg);

/*
 * Sends one command on the endpoint's main connection, where it pipelines
 * with every other client's; fmt as hiredis's redisAsyncCommand (%s, %b
 * for binary-safe arguments).  Blocking commands (BLMOVE, XREAD BLOCK...)
 * must not be sent: they would stall every user of the server.  Returns
 * 0, after which fn runs exactly once, never before this returns (when the
 * connection is down: on a later loop turn, with -AS_ECONN or -AS_EAUTH);
 * -AS_EINVAL without fn (nothing runs then).
 */
int	 redis_endpoint_command(struct redis_endpoint_client *,
	    redis_endpoint_reply_fn *fn, void *arg, const char *fmt, ...);

/*
 * Transactions: commands queued with tx_add() go out as MULTI, the
 * commands, EXEC, back to back on the main connection, so nothing from
 * another user of the endpoint can come between them and the server runs
 * them atomically.  tx_new() never fails; tx_add() formats like
 * redis_endpoint_command() and returns 0, or -AS_EINVAL for a format that
 * does not work (tx_send() then fails the completion with -AS_EINVAL).
 * tx_send() takes the transaction and behaves as redis_endpoint_command();
 * fn gets EXEC's reply (an array of the commands' replies, or an error
 * such as EXECABORT).  tx_free() releases one that is not sent.
 */
struct redis_endpoint_tx *redis_endpoint_tx_new(void);
int	 redis_endpoint_tx_add(struct redis_endpoint_tx *, const char *fmt,
	    ...);
int	 redis_endpoint_tx_send(struct redis_endpoint_client *,
	    struct redis_endpoint_tx *, redis_endpoint_reply_fn *fn,
	    void *arg);
void	 redis_endpoint_tx_free(struct redis_endpoint_tx *);

/* Sources (scale mode). */

/*
 * Sets up the base of a new source of the given type: a client of the
 * endpoint for src (redis_endpoint_client_init()).  Returns 0, or
 * -AS_EINVAL with a message in err (the base then holds nothing).
 */
int	 redis_endpoint_source_init(struct redis_endpoint_source *,
	    const struct scaler_type *, struct ev_loop *,
	    const struct scaler_source *src, char *err, size_t errlen);

/*
 * Tears the base down: a pending poll completes with -AS_ECANCELED before
 * this returns (its commands stay with hiredis, orphaned), and the client
 * is finalized (redis_endpoint_client_fini()).  The caller then frees its
 * own fields.
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
 * A command formatted once, at the source's creation, and sent by each
 * poll as it is: hiredis's formatting of "LLEN %b" on every poll of every
 * pool was a quarter of an idle daemon's CPU at 1,000 pools (issue 15).
 * Zeroed is empty; redis_endpoint_fmt_set() replaces what f holds (fmt as
 * redis_endpoint_poll_command's; aborts on out-of-memory) and
 * redis_endpoint_fmt_clear() frees it.
 */
struct redis_endpoint_fmt {
	char	*cmd;
	size_t	 len;
};

void	 redis_endpoint_fmt_set(struct redis_endpoint_fmt *, const char *fmt,
	    ...);
void	 redis_endpoint_fmt_clear(struct redis_endpoint_fmt *);
/* redis_endpoint_poll_command() with a command formatted already. */
int	 redis_endpoint_poll_formatted(struct redis_endpoint_poll *, int tag,
	    const struct redis_endpoint_fmt *);

/*
 * Ends the queueing phase of redis_endpoint_poll_start(); if nothing went
 * out, the completion runs on the next loop turn.  Call it exactly once,
 * from the source's poll(), after the last redis_endpoint_poll_command().
 */
void	 redis_endpoint_poll_sent(struct redis_endpoint_poll *);

/*
 * Push mode for a source: redis_endpoint_client_subscribe() with fn called
 * as scaler_wake_fn on the source's base.
 */
int	 redis_endpoint_source_subscribe(struct redis_endpoint_source *,
	    const char *key, unsigned classes, scaler_wake_fn *fn, void *arg);

/*
 * The pushing() of every Redis source type (base is the struct scaler of
 * a struct redis_endpoint_source, which the source embeds first): 1 while
 * the source's keyspace subscription is confirmed, else 0.
 */
int	 redis_endpoint_source_pushing(const struct scaler *base);

/*
 * Sets res->error to err and res->errmsg to "redis <endpoint>: " plus the
 * formatted text.
 */
void	 redis_endpoint_result_error(struct scaler_result *res, int err,
	    const struct redis_endpoint *, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/* Writes "redis <endpoint>: " plus the formatted text into buf. */
void	 redis_endpoint_errmsg(char *buf, size_t len,
	    const struct redis_endpoint *, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/* The endpoint's name for messages, "host:port" or "[v6]:port"; borrowed. */
const char *redis_endpoint_name(const struct redis_endpoint *);

#endif
