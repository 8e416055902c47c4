/*
 * rabbitmq_conn.h: one AMQP connection with one channel, driven by
 * rabbitmq-c on the caller's libev loop (Option A of
 * ref/c-event-loop-patterns.md section 3), as both AMQP users share it:
 * the scale-mode source (scalers/rabbitmq_amqp.c, passive declares) and the
 * dispatch-mode consumer (scalers/rabbitmq_consumer.c).
 *
 * What it does (scalers/rabbitmq_conn.c): the connect (a non-blocking TCP
 * connect on the loop for amqp://, rabbitmq-c's bounded TLS connect for
 * amqps:// with a CA file or without verification), the login with the
 * password read afresh from its file or variable and never logged, the
 * channel.open, heartbeats from a timer, the frame pump (an ev_io plus a
 * drain with a zero timeout that also empties the library's buffers),
 * connection.close and connection.blocked from the broker, a reply
 * deadline, and reconnects with jittered exponential backoff.
 *
 * What the owner does, through three hooks: ready() once the channel is
 * open (send what waits), frame() for every frame on the channel once it
 * is open, content frames and channel.close included (the owner answers
 * or drops the connection), and down() once the connection is gone (fail
 * what was pending; the retry is already armed).  The owner also says when
 * the connection is good for what it wants (rabbitmq_conn_healthy()),
 * which resets the backoff.  The hooks run inside
 * this module's functions: from its watchers, and also inside
 * rabbitmq_conn_send() and rabbitmq_conn_lost() when the owner calls them.
 * So they must never run the owner's callers' code, nor free the struct.
 *
 * Ownership: the struct is embedded in its owner and set up by
 * rabbitmq_conn_init(), which copies every string; rabbitmq_conn_fini()
 * closes and releases everything.  Fields marked "read" may be read by the
 * owner; the rest are private.
 */
#ifndef AGENTSCALER_RABBITMQ_CONN_H
#define AGENTSCALER_RABBITMQ_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "compat_amqp.h"
#include "rabbitmq.h"
#include "agentscaler/scalers/scaler.h"

#define RABBITMQ_CHANNEL	1	/* the one channel we use */

enum rabbitmq_conn_state {
	RABBITMQ_CONN_DOWN,		/* no connection */
	RABBITMQ_CONN_CONNECTING,	/* amqp://: the TCP connect runs */
	RABBITMQ_CONN_OPENING,		/* logged in, channel.open sent */
	RABBITMQ_CONN_READY		/* the channel is open */
};

struct rabbitmq_conn;

struct rabbitmq_conn_hooks {
	void	 (*ready)(struct rabbitmq_conn *);
	void	 (*frame)(struct rabbitmq_conn *, const amqp_frame_t *);
	void	 (*down)(struct rabbitmq_conn *, int err, const char *cause);
};

struct rabbitmq_conn {
	/* Settings. */
	struct ev_loop		*loop;			/* read */
	struct rabbitmq_addr	 addr;			/* read */
	char			 name[272];	/* read: host:port */
	char			*label;		/* connection_name */
	char			*user;
	struct scaler_secret	 secret;	/* the password's source */
	double			 down_at;	/* last failure (mono); 0 none */
	char			*ca_file;
	int			 insecure;
	double			 connect_timeout;	/* read */
	double			 command_timeout;	/* read */
	const struct rabbitmq_conn_hooks *hooks;
	void			*arg;		/* read: the owner's */

	/* The connection. */
	amqp_connection_state_t	 amqp;		/* read: NULL while down */
	enum rabbitmq_conn_state state;		/* read */
	int			 err;		/* read: last failure */
	char			 cause[160];	/* read: and why */
	uint64_t		 connects;	/* read: logins that worked */

	struct addrinfo		*ai;		/* while connecting */
	struct addrinfo		*ai_cur;
	int			 cfd;
	int			 cerrno;
	ev_io			 cio;
	ev_timer		 connect_timer;
	int			 heartbeat;	/* negotiated, seconds */
	double			 last_rx;
	ev_io			 io;
	ev_timer		 heartbeat_timer;
	ev_timer		 command_timer;
	ev_timer		 retry_timer;
	unsigned		 attempt;	/* failures since healthy */
	int			 healthy;	/* this connection */
	int			 was_ready;	/* any connection, ever */
	int			 blocked_logged;
};

/*
 * Sets c up for the endpoint addr with the credentials, TLS settings and
 * timeouts of src (0 timeouts: the defaults); label becomes the
 * connection_name client property the broker shows.  Connects from the
 * loop, on its next turn, not inside this call.
 */
void	 rabbitmq_conn_init(struct rabbitmq_conn *c, struct ev_loop *loop,
	    const struct rabbitmq_addr *addr, const struct scaler_source *src,
	    const char *label, const struct rabbitmq_conn_hooks *hooks,
	    void *arg);
/* 1 when c was set up from the same endpoint, credentials and TLS. */
int	 rabbitmq_conn_matches(const struct rabbitmq_conn *c,
	    struct ev_loop *loop, const struct rabbitmq_addr *addr,
	    const struct scaler_source *src);
/*
 * Closes the connection (connection.close said, not awaited), stops every
 * watcher and frees what c holds.  No hook runs.
 */
void	 rabbitmq_conn_fini(struct rabbitmq_conn *c);

/*
 * Sends one method on channel ch.  Returns 0, or -1 when the connection
 * was lost doing so (down() has run).
 */
int	 rabbitmq_conn_send(struct rabbitmq_conn *c, amqp_channel_t ch,
	    amqp_method_number_t id, void *method, const char *what);
/*
 * The owner found the connection usable (the scaler: the channel is open;
 * the consumer: it consumes): the backoff starts again from its base and
 * the last failure is forgotten.  Until then a connection that opens and
 * then fails (a queue that does not exist) backs off further each time.
 */
void	 rabbitmq_conn_healthy(struct rabbitmq_conn *c);
/* Opens the channel again after channel.close; -1 as above. */
int	 rabbitmq_conn_reopen(struct rabbitmq_conn *c);
/*
 * Declares the connection lost: logs it once per outage, closes it, runs
 * down() with err and the formatted cause, and arms the retry.
 */
void	 rabbitmq_conn_lost(struct rabbitmq_conn *c, int err,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/*
 * A reply must arrive by the monotonic time at (as_mono_now()), else the
 * connection is lost with "no reply within <command timeout> s"; 0 means
 * nothing is awaited.
 */
void	 rabbitmq_conn_deadline(struct rabbitmq_conn *c, double at);
/* Makes the deadline stricter when a sharer has a shorter timeout. */
void	 rabbitmq_conn_tighten(struct rabbitmq_conn *c,
	    const struct scaler_source *src);

/* An AMQP reply code, or a library status, as an as_err value. */
int	 rabbitmq_code_err(int code);
int	 rabbitmq_status_err(int status);
/* Copies an amqp_bytes_t into a C string, cut to fit. */
void	 rabbitmq_bytes(char *out, size_t outlen, amqp_bytes_t b);

#endif
