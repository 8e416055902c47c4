/*
 * redis_conn.h: one hiredis 0.14.1 connection to a Redis server on the
 * caller's libev loop (scalers/redis_conn.c), as an endpoint
 * (redis_endpoint.h) runs two of them: "main" for every client's commands
 * and "sub" for keyspace notifications.
 *
 * What it does: the connect, the handshake (AUTH with the password read
 * afresh from its source and never logged, SELECT, PING: ready means the
 * server answered), the connect and command deadlines that 0.14.1 lacks,
 * and reconnects with jittered exponential backoff.  It logs each outage
 * once.
 *
 * What the owner does, through three hooks, each optional: started() once
 * the handshake is queued (what it queues goes out in the same first
 * write), ready() once the handshake is answered, and down() once the
 * connection is gone (the cause is recorded, the retry not yet armed).
 * The hooks run inside this module's functions, hiredis callbacks
 * included, so they must never run the owner's callers' code, nor free
 * the struct.
 *
 * Lifetimes.  hiredis calls each command callback exactly once, with NULL
 * when the context goes away, and frees the context itself after an I/O
 * error or a failed connect.  A context's data points to its struct
 * redis_conn exactly while the connection considers it current; whoever
 * retires a context (redis_conn_lost(), redis_conn_close()) first clears
 * both pointers, so callbacks that run later see data == NULL and only
 * release their own privdata (redis_conn_of()).
 *
 * Ownership: the struct is embedded in its owner, and name, addr and
 * secret are borrowed from it for the connection's life.  Fields marked
 * "read" may be read by the owner, fields marked "owner" are the owner's
 * to use (they are cleared with each new connection); the rest are
 * private.
 */
#ifndef AGENTSCALER_REDIS_CONN_H
#define AGENTSCALER_REDIS_CONN_H

#include <stdarg.h>
#include <stddef.h>

#include <ev.h>
#include <hiredis/async.h>

#include "agentscaler/scalers/scaler.h"
#include "redis_addr.h"

struct redis_conn;

struct redis_conn_hooks {
	void	 (*started)(struct redis_conn *);
	void	 (*ready)(struct redis_conn *);
	void	 (*down)(struct redis_conn *, int err);
};

struct redis_conn {
	/* Settings. */
	struct ev_loop		*loop;		/* read */
	const char		*name;		/* read: host:port */
	const char		*what;		/* "connection"... */
	const struct redis_addr	*addr;
	int			 select;	/* SELECT addr->db */
	const struct scaler_secret *secret;	/* the password's source */
	double			 connect_timeout;	/* read */
	double			 command_timeout;	/* read */
	struct redis_conn	*dependent;	/* lost too on a timeout */
	const struct redis_conn_hooks *hooks;
	void			*arg;		/* read: the owner's */

	/* The connection. */
	redisAsyncContext	*ac;		/* read: NULL while down */
	int			 connected;	/* TCP connect finished */
	int			 ready;		/* read: handshake answered */
	int			 was_ready;	/* ready at least once */
	unsigned		 attempt;	/* read: failures since ready */
	unsigned		 npending;	/* replies awaited */
	unsigned		 nhandshake;	/* AUTH, SELECT, PING */
	char			*password;	/* until AUTH answers */
	double			 down_at;	/* last failure (mono); 0 none */
	int			 err;		/* read: last failure */
	char			 cause[160];	/* read: its text */
	ev_timer		 connect_timer;
	ev_timer		 command_timer;
	ev_timer		 retry_timer;	/* read: armed while down */

	/* Keyspace configuration (scalers/redis_keyspace.c). */
	int			 push_ok;	/* owner: sub, events on */
	int			 checking;	/* owner: CONFIG in flight */
	unsigned		 setting;	/* owner: what CONFIG SET sets */
};

/*
 * Sets c up, down and idle: what names it in the log ("connection"), a
 * non-zero select sends SELECT addr->db in the handshake, dependent (or
 * NULL) is taken down with c when c's server stops answering.
 */
void	 redis_conn_init(struct redis_conn *c, struct ev_loop *loop,
	    const char *name, const char *what, const struct redis_addr *addr,
	    int select, const struct scaler_secret *secret,
	    double connect_timeout, double command_timeout,
	    const struct redis_conn_hooks *hooks, void *arg);

/* Lowers the deadlines to these when they are shorter. */
void	 redis_conn_tighten(struct redis_conn *c, double connect_timeout,
	    double command_timeout);

/*
 * Opens the connection, unless it is open, and queues its handshake;
 * failures arm the retry timer.
 */
void	 redis_conn_start(struct redis_conn *c);

/*
 * The one "connection lost" path, idempotent: retires the context, records
 * err and cause (err 0: a deliberate close, retried much later and not
 * logged), arms the reconnect and, unless hiredis is already freeing the
 * context (lib_frees), frees it, which runs the pending callbacks.
 */
void	 redis_conn_lost(struct redis_conn *c, int err, const char *cause,
	    int lib_frees);

/* Marks c down with err and cause when there is no context to retire. */
void	 redis_conn_fail(struct redis_conn *c, int err, const char *cause);

/* Retires the context and the timers for good: the owner goes away. */
void	 redis_conn_close(struct redis_conn *c);

/*
 * Queues one command, formatted as hiredis's redisAsyncCommand, or one
 * already formatted; the command deadline runs while replies are awaited.
 * Returns 0, or -AS_ECONN when there is no context or it refuses commands.
 */
int	 redis_conn_command(struct redis_conn *c, redisCallbackFn *fn,
	    void *privdata, const char *fmt, ...);
int	 redis_conn_commandv(struct redis_conn *c, redisCallbackFn *fn,
	    void *privdata, const char *fmt, va_list ap);
int	 redis_conn_formatted(struct redis_conn *c, redisCallbackFn *fn,
	    void *privdata, const char *cmd, size_t len);

/* One awaited reply arrived: the command deadline moves. */
void	 redis_conn_replied(struct redis_conn *c);

/*
 * The start of a reply callback of a command that is the connection's own
 * business (handshake, CONFIG): the connection of ac, or NULL when the
 * context is retired (nothing to do) or the reply is NULL (the connection
 * is lost); else the reply counts as arrived.
 */
struct redis_conn *redis_conn_of(redisAsyncContext *ac, void *reply);

/*
 * Why c went down: its last error, or -AS_ECONN when none is recorded,
 * and its text, or dflt (borrowed).
 */
int	 redis_conn_err(const struct redis_conn *c);
const char *redis_conn_cause(const struct redis_conn *c, const char *dflt);

#endif
