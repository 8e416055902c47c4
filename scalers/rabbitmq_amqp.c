/*
 * rabbitmq_amqp.c: the AMQP transport of the "rabbitmq" source
 * (amqp://host:5672/vhost, amqps://): a passive queue.declare per queue and
 * poll, whose declare-ok carries message_count (ready messages) and
 * consumer_count.  rabbitmq-c 0.11 on the caller's libev loop, Option A of
 * ref/c-event-loop-patterns.md section 3.
 *
 * What AMQP cannot see.  message_count counts ready messages only: messages
 * delivered to a consumer and not yet acknowledged are not in it, so work
 * in flight looks like an empty queue (kedacore/keda#356, #638).
 * countInFlight is therefore refused for amqp:// addresses (validate() in
 * rabbitmq_source.c); the management API transport counts them.
 *
 * Endpoints.  Every instance belongs to one endpoint, shared by all the
 * instances on the same loop with the same host, port, vhost, user,
 * password source and TLS settings, and refcounted by them.  An endpoint
 * owns one connection and one channel.  Polls are not sent at once: they
 * wait on ep->waiting until a zero-delay timer flushes them, so all the
 * polls of one loop iteration leave together, one declare per distinct
 * queue, pipelined on the channel.  Replies come back in order and are
 * matched to ep->inflight, oldest first.
 *
 * Nothing waits for a reply inside the loop.  Declares and channel.open are
 * written with amqp_send_method(); an ev_io on the socket and a drain that
 * calls amqp_simple_wait_frame_noblock() with a zero timeout until the
 * library answers AMQP_STATUS_TIMEOUT read the replies, including frames the
 * library already holds in its buffer or queue, which would never wake the
 * fd.  A command timer (re-armed on progress) bounds every reply.
 *
 * A missing queue.  A passive declare of a queue that does not exist makes
 * the broker close the channel with 404 NOT_FOUND, and discard whatever we
 * pipelined after it.  We answer channel.close-ok, fail that one poll with
 * -AS_ENOTFOUND, put the discarded declares back at the head of the waiting
 * list, open the channel again and resend them: the connection stays, so a
 * queue that is not declared yet (the normal state when scaling from zero
 * and consumers declare it) costs one channel round trip per tick, not a
 * reconnect (KEDA rebuilds its scaler, a new dial, on every such poll).
 *
 * Heartbeats.  rabbitmq-c sends them only from inside a wait call, and
 * cannot notice missing ones with a zero timeout, so a repeating timer at
 * half the negotiated heartbeat drains (which sends a heartbeat when due)
 * and declares the connection dead when nothing arrived for two heartbeat
 * intervals.
 *
 * Connecting.  For amqp:// the TCP connect runs on the loop (a
 * non-blocking connect() watched by an ev_io, under the connect timeout)
 * and rabbitmq-c takes the connected socket over; amqps:// goes through
 * amqp_socket_open_noblock(), since 0.11 cannot adopt a TLS socket.
 *
 * What still blocks, bounded: the name lookup (getaddrinfo, as in every
 * source here), the TLS connect and handshake (connect timeout) and the
 * AMQP login handshake (amqp_set_handshake_timeout: the command timeout).
 * Unbounded but not expected to wait: amqp_send_method() of a few small
 * frames when the socket's send buffer is full.  We never consume, so the
 * unbounded body reads of amqp_consume_message() never happen here.
 *
 * Completions.  Results are stored in the instance and delivered from its
 * own zero-delay timer, so callers' code never runs inside the endpoint's
 * functions and may destroy anything, the last instance included.
 */
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "agentscaler/common.h"
#include "agentscaler/compat_amqp.h"
#include "agentscaler/log.h"
#include "agentscaler/rabbitmq.h"
#include "agentscaler/scaler.h"
#include "agentscaler/scaler_later.h"

#define RMQ_LOG			"rabbitmq"
#define RMQ_TIMEOUT		2.0	/* connect and command, seconds */
#define RMQ_HEARTBEAT		10	/* seconds, asked of the broker */
#define RMQ_BACKOFF_BASE	0.1
#define RMQ_BACKOFF_CAP		5.0
#define RMQ_CHANNEL		1
#define RMQ_SYSTEM_CA		"/etc/ssl/certs/ca-certificates.crt"

enum rmq_state {
	RMQ_DOWN,		/* no connection */
	RMQ_CONNECTING,		/* amqp://: the TCP connect runs */
	RMQ_OPENING,		/* connected, channel.open sent */
	RMQ_READY		/* the channel is open */
};

enum rmq_poll {
	RMQ_POLL_IDLE,		/* on no list: none, or the result waits */
	RMQ_POLL_WAITING,	/* on ep->waiting, not sent yet */
	RMQ_POLL_SENT		/* a waiter of a declare on the wire */
};

struct rmq_scaler;

/* One passive queue.declare on the wire, for one or more polls. */
struct rmq_decl {
	TAILQ_ENTRY(rmq_decl)	 entry;
	char			*queue;
	LIST_HEAD(, rmq_scaler)	 waiters;
};

struct rmq_endpoint {
	LIST_ENTRY(rmq_endpoint) entry;
	struct ev_loop		*loop;
	struct rabbitmq_addr	 addr;
	char			 name[272];	/* host:port, for messages */
	char			*user;
	char			*password_file;
	char			*password_env;
	char			*ca_file;
	int			 insecure;
	double			 connect_timeout;
	double			 command_timeout;
	unsigned		 refs;
	LIST_HEAD(, rmq_scaler)	 scalers;

	struct addrinfo		*ai;		/* while connecting */
	struct addrinfo		*ai_cur;
	int			 cfd;		/* the socket connecting */
	int			 cerrno;	/* the last address's error */
	ev_io			 cio;
	ev_timer		 connect_timer;
	amqp_connection_state_t	 conn;		/* NULL while down */
	enum rmq_state		 state;
	int			 heartbeat;	/* negotiated, seconds */
	double			 last_rx;	/* mono time data last came */
	TAILQ_HEAD(rmq_scaler_q, rmq_scaler) waiting;
	TAILQ_HEAD(rmq_decl_q, rmq_decl) inflight;
	ev_io			 io;
	ev_timer		 heartbeat_timer;
	ev_timer		 command_timer;
	ev_timer		 retry_timer;
	ev_timer		 flush_timer;

	unsigned		 attempt;	/* failures since last ready */
	int			 was_ready;
	int			 blocked_logged;
	int			 err;		/* last failure, -AS_E... */
	char			 cause[160];

	uint64_t		 connects;
	uint64_t		 reopens;
	uint64_t		 requests;
	uint64_t		 batches;
};

struct rmq_scaler {
	struct scaler		 base;
	LIST_ENTRY(rmq_scaler)	 entry;		/* ep->scalers */
	TAILQ_ENTRY(rmq_scaler)	 wentry;	/* ep->waiting */
	LIST_ENTRY(rmq_scaler)	 dentry;	/* decl->waiters */
	struct rmq_endpoint	*ep;
	struct ev_loop		*loop;
	char			*queue;
	enum rmq_poll		 pstate;
	struct rmq_decl		*decl;
	struct scaler_later	 later;		/* the pending poll */
};

static struct scaler *rmq_create(struct ev_loop *,
		    const struct scaler_source *, char *, size_t);
static int	 rmq_poll(struct scaler *, scaler_done_fn *, void *);
static void	 rmq_destroy(struct scaler *);

static void	 rmq_connect(struct rmq_endpoint *);
static void	 rmq_tcp_abort(struct rmq_endpoint *);
static void	 rmq_lost(struct rmq_endpoint *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 rmq_drain(struct rmq_endpoint *);
static void	 rmq_flush(struct rmq_endpoint *);

/* The heartbeat we ask for, seconds; tests shorten it. */
TESTABLE int	 rabbitmq_amqp_heartbeat = RMQ_HEARTBEAT;

static LIST_HEAD(, rmq_endpoint) rmq_endpoints =
    LIST_HEAD_INITIALIZER(rmq_endpoints);

static const struct timeval rmq_zero_tv = { 0, 0 };

static struct timeval
rmq_tv(double secs)
{
	struct timeval	 tv;

	tv.tv_sec = (time_t)secs;
	tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
	return (tv);
}

/* Copies an amqp_bytes_t into a C string, cut to fit. */
static void
rmq_bytes(char *out, size_t outlen, amqp_bytes_t b)
{
	size_t	 n = b.len < outlen - 1 ? b.len : outlen - 1;

	if (b.bytes == NULL)
		n = 0;
	if (n > 0)
		memcpy(out, b.bytes, n);
	out[n] = '\0';
}

/* Polls: results are delivered from the instance's own timer. */

static void
rmq_later(struct rmq_scaler *s)
{
	s->pstate = RMQ_POLL_IDLE;
	s->decl = NULL;
	scaler_later_arm(&s->later, 0.);
}

static void
rmq_fail_poll(struct rmq_scaler *s, int err, const char *cause)
{
	rabbitmq_result_error(&s->later.res, err, s->ep->name, "%s", cause);
	rmq_later(s);
}

/* Fails every poll on the endpoint, waiting or on the wire. */
static void
rmq_fail_all(struct rmq_endpoint *ep, int err, const char *cause)
{
	struct rmq_scaler *s;
	struct rmq_decl	*d;

	while ((d = TAILQ_FIRST(&ep->inflight)) != NULL) {
		TAILQ_REMOVE(&ep->inflight, d, entry);
		while ((s = LIST_FIRST(&d->waiters)) != NULL) {
			LIST_REMOVE(s, dentry);
			rmq_fail_poll(s, err, cause);
		}
		free(d->queue);
		free(d);
	}
	while ((s = TAILQ_FIRST(&ep->waiting)) != NULL) {
		TAILQ_REMOVE(&ep->waiting, s, wentry);
		rmq_fail_poll(s, err, cause);
	}
}

/* The connection. */

static void
rmq_command_progress(struct rmq_endpoint *ep)
{
	if (ep->state == RMQ_OPENING || !TAILQ_EMPTY(&ep->inflight))
		ev_timer_again(ep->loop, &ep->command_timer);
	else
		ev_timer_stop(ep->loop, &ep->command_timer);
}

/* Stops every watcher on the socket and frees the connection, if any. */
static void
rmq_close_conn(struct rmq_endpoint *ep, int polite)
{
	amqp_connection_close_t	 cc;

	ev_io_stop(ep->loop, &ep->io);
	ev_timer_stop(ep->loop, &ep->heartbeat_timer);
	ev_timer_stop(ep->loop, &ep->command_timer);
	ev_timer_stop(ep->loop, &ep->flush_timer);
	rmq_tcp_abort(ep);
	if (ep->conn == NULL) {
		ep->state = RMQ_DOWN;
		return;
	}
	if (polite) {
		/* Said, not awaited: close-ok would need a blocking wait. */
		memset(&cc, 0, sizeof cc);
		cc.reply_code = AMQP_REPLY_SUCCESS;
		cc.reply_text = amqp_cstring_bytes("source removed");
		amqp_send_method(ep->conn, 0, AMQP_CONNECTION_CLOSE_METHOD,
		    &cc);
	}
	amqp_destroy_connection(ep->conn);	/* closes the fd */
	ep->conn = NULL;
	ep->state = RMQ_DOWN;
}

/*
 * Records why the endpoint is down, logs it once per outage, fails every
 * pending poll with the cause and arms the retry timer.
 */
static void
rmq_down(struct rmq_endpoint *ep, int err, const char *cause)
{
	double	 delay;

	ep->err = err;
	as_strlcpy(ep->cause, cause, sizeof ep->cause);
	if (ep->state != RMQ_DOWN && ep->was_ready && ep->attempt == 0)
		log_warn(RMQ_LOG, "%s: connection lost: %s", ep->name, cause);
	else if (ep->attempt == 0)
		log_warn(RMQ_LOG, "%s: cannot connect: %s; retrying with "
		    "backoff", ep->name, cause);
	else
		log_debug(RMQ_LOG, "%s: attempt %u: %s", ep->name,
		    ep->attempt + 1, cause);
	rmq_close_conn(ep, 0);
	rmq_fail_all(ep, err, cause);
	delay = as_backoff(RMQ_BACKOFF_BASE, RMQ_BACKOFF_CAP, ep->attempt);
	if (ep->attempt < 64)
		ep->attempt++;
	ev_timer_stop(ep->loop, &ep->retry_timer);
	ev_timer_set(&ep->retry_timer, delay, 0.);
	ev_timer_start(ep->loop, &ep->retry_timer);
}

static void
rmq_lost(struct rmq_endpoint *ep, int err, const char *fmt, ...)
{
	char	 cause[160];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(cause, sizeof cause, fmt, ap);
	va_end(ap);
	rmq_down(ep, err, cause);
}

/* An AMQP reply code as an as_err value. */
static int
rmq_code_err(int code)
{
	switch (code) {
	case AMQP_NOT_FOUND:
		return (-AS_ENOTFOUND);
	case AMQP_ACCESS_REFUSED:
		return (-AS_EFORBIDDEN);
	case AMQP_NOT_ALLOWED:
		return (-AS_EFORBIDDEN);
	case AMQP_CONNECTION_FORCED:
		return (-AS_ECONN);
	}
	return (-AS_EPROTO);
}

/* A library status as an as_err value. */
static int
rmq_status_err(int status)
{
	switch (status) {
	case AMQP_STATUS_TIMEOUT:
	case AMQP_STATUS_HEARTBEAT_TIMEOUT:
		return (-AS_ETIMEDOUT);
	case AMQP_STATUS_NO_MEMORY:
		return (-AS_ENOMEM);
	case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
	case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
	case AMQP_STATUS_SSL_CONNECTION_FAILED:
	case AMQP_STATUS_SSL_ERROR:
		return (-AS_EPROTO);
	}
	return (-AS_ECONN);
}

/* Sends one method; a failure means the connection is gone. */
static int
rmq_send(struct rmq_endpoint *ep, amqp_channel_t ch, amqp_method_number_t id,
    void *m, const char *what)
{
	int	 rc;

	if ((rc = amqp_send_method(ep->conn, ch, id, m)) != AMQP_STATUS_OK) {
		rmq_lost(ep, rmq_status_err(rc), "sending %s: %s", what,
		    amqp_error_string2(rc));
		return (-1);
	}
	return (0);
}

static int
rmq_open_channel(struct rmq_endpoint *ep)
{
	amqp_channel_open_t	 o;

	memset(&o, 0, sizeof o);
	ep->state = RMQ_OPENING;
	if (rmq_send(ep, RMQ_CHANNEL, AMQP_CHANNEL_OPEN_METHOD, &o,
	    "channel.open") != 0)
		return (-1);
	rmq_command_progress(ep);
	return (0);
}

/*
 * Logs in on a connected socket, with the command timeout as the handshake
 * timeout (blocking but bounded), then opens the channel asynchronously.
 * Takes conn; on failure it is destroyed and the endpoint goes down.
 */
static void
rmq_login(struct rmq_endpoint *ep, amqp_connection_state_t conn)
{
	amqp_rpc_reply_t reply;
	amqp_table_entry_t prop;
	amqp_table_t	 props;
	struct timeval	 mtv;
	char		*secret = NULL, err[320], text[128], raw[128];
	char		 cname[320];
	int		 rc, fd, flags, code;

	if ((rc = rabbitmq_secret_read(ep->password_file, ep->password_env,
	    ep->user, &secret, err, sizeof err)) != 0) {
		amqp_destroy_connection(conn);
		rmq_down(ep, rc, err);
		return;
	}
	mtv = rmq_tv(ep->command_timeout);
	amqp_set_handshake_timeout(conn, &mtv);
	amqp_set_rpc_timeout(conn, &mtv);
	snprintf(cname, sizeof cname, "agentscaler %s", ep->addr.vhost);
	prop.key = amqp_cstring_bytes("connection_name");
	prop.value.kind = AMQP_FIELD_KIND_UTF8;
	prop.value.value.bytes = amqp_cstring_bytes(cname);
	props.num_entries = 1;
	props.entries = &prop;
	reply = amqp_login_with_properties(conn, ep->addr.vhost, 0,
	    AMQP_DEFAULT_FRAME_SIZE, rabbitmq_amqp_heartbeat, &props,
	    AMQP_SASL_METHOD_PLAIN, ep->user, secret);
	if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
		rc = -AS_EPROTO;
		as_strlcpy(err, "login: unexpected reply", sizeof err);
		if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
		    reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *cc = reply.reply.decoded;

			code = cc->reply_code;
			rmq_bytes(raw, sizeof raw, cc->reply_text);
			as_redact(text, sizeof text, raw, secret);
			if (code == AMQP_ACCESS_REFUSED) {
				rc = -AS_EAUTH;
				snprintf(err, sizeof err, "authentication "
				    "failed for user %.64s: %s", ep->user,
				    text);
			} else {
				rc = rmq_code_err(code);
				snprintf(err, sizeof err, "login refused: %s",
				    text);
			}
		} else if (reply.reply_type ==
		    AMQP_RESPONSE_LIBRARY_EXCEPTION) {
			rc = rmq_status_err(reply.library_error);
			if (reply.library_error == AMQP_STATUS_TIMEOUT)
				snprintf(err, sizeof err, "login timed out "
				    "after %g s", ep->command_timeout);
			else
				snprintf(err, sizeof err, "login: %s",
				    amqp_error_string2(reply.library_error));
		}
		amqp_destroy_connection(conn);
		rabbitmq_secret_free(secret);
		rmq_down(ep, rc, err);
		return;
	}
	rabbitmq_secret_free(secret);

	fd = amqp_get_sockfd(conn);
	/* Every read goes through a zero timeout; make sure none can block. */
	if ((flags = fcntl(fd, F_GETFL)) != -1 && !(flags & O_NONBLOCK))
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	ep->conn = conn;
	ep->connects++;
	ep->heartbeat = amqp_get_heartbeat(conn);
	ep->last_rx = as_mono_now();
	ev_io_set(&ep->io, fd, EV_READ);
	ev_io_start(ep->loop, &ep->io);
	if (ep->heartbeat > 0) {
		ep->heartbeat_timer.repeat = ep->heartbeat / 2.0;
		ev_timer_again(ep->loop, &ep->heartbeat_timer);
	}
	if (rmq_open_channel(ep) != 0)
		return;
	/* The handshake may have left frames in the library's buffers. */
	rmq_drain(ep);
}

/*
 * amqps://: rabbitmq-c 0.11 cannot take over a connected TLS socket, so
 * amqp_socket_open_noblock() connects and shakes hands, blocking but
 * bounded by the connect timeout.
 */
static void
rmq_connect_tls(struct rmq_endpoint *ep)
{
	amqp_connection_state_t conn = amqp_new_connection();
	amqp_socket_t	*sock;
	struct timeval	 ctv;
	const char	*ca = ep->ca_file != NULL ? ep->ca_file : RMQ_SYSTEM_CA;
	int		 rc;

	if ((sock = amqp_ssl_socket_new(conn)) == NULL) {
		amqp_destroy_connection(conn);
		rmq_down(ep, -AS_ENOMEM, "cannot create the TLS socket");
		return;
	}
	/* rabbitmq-c 0.11 loads no system CAs by itself. */
	if (amqp_ssl_socket_set_cacert(sock, ca) != AMQP_STATUS_OK &&
	    !ep->insecure) {
		amqp_destroy_connection(conn);
		rmq_lost(ep, -AS_EINVAL, "cannot load the CA file %s", ca);
		return;
	}
	amqp_ssl_socket_set_verify_peer(sock, !ep->insecure);
	amqp_ssl_socket_set_verify_hostname(sock, !ep->insecure);
	ctv = rmq_tv(ep->connect_timeout);
	/* Note: the name lookup inside is a blocking getaddrinfo. */
	if ((rc = amqp_socket_open_noblock(sock, ep->addr.host, ep->addr.port,
	    &ctv)) != AMQP_STATUS_OK) {
		amqp_destroy_connection(conn);
		if (rc == AMQP_STATUS_TIMEOUT)
			rmq_lost(ep, -AS_ETIMEDOUT, "connect timed out after "
			    "%g s", ep->connect_timeout);
		else
			rmq_lost(ep, rmq_status_err(rc), "connect: %s",
			    amqp_error_string2(rc));
		return;
	}
	rmq_login(ep, conn);
}

/* Forgets a TCP connect in progress, if any. */
static void
rmq_tcp_abort(struct rmq_endpoint *ep)
{
	ev_io_stop(ep->loop, &ep->cio);
	ev_timer_stop(ep->loop, &ep->connect_timer);
	if (ep->cfd >= 0) {
		close(ep->cfd);
		ep->cfd = -1;
	}
	if (ep->ai != NULL) {
		freeaddrinfo(ep->ai);
		ep->ai = NULL;
	}
	ep->ai_cur = NULL;
}

/* The TCP connect succeeded: rabbitmq-c takes the socket over. */
static void
rmq_tcp_connected(struct rmq_endpoint *ep)
{
	amqp_connection_state_t conn;
	amqp_socket_t	*sock;
	int		 fd = ep->cfd;

	ep->cfd = -1;
	rmq_tcp_abort(ep);
	conn = amqp_new_connection();
	if ((sock = amqp_tcp_socket_new(conn)) == NULL) {
		close(fd);
		amqp_destroy_connection(conn);
		rmq_down(ep, -AS_ENOMEM, "cannot create the socket");
		return;
	}
	amqp_tcp_socket_set_sockfd(sock, fd);	/* closed with conn */
	rmq_login(ep, conn);
}

/*
 * Tries the next address of the name: a non-blocking connect whose result
 * the cio watcher reads.  With none left, the endpoint goes down with the
 * last address's error.
 */
static void
rmq_tcp_next(struct rmq_endpoint *ep)
{
	struct addrinfo	*ai;
	int		 fd;

	for (; (ai = ep->ai_cur) != NULL; ep->ai_cur = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			ep->cerrno = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			ep->cfd = fd;
			rmq_tcp_connected(ep);
			return;
		}
		if (errno == EINPROGRESS) {
			ep->cfd = fd;
			ev_io_set(&ep->cio, fd, EV_WRITE);
			ev_io_start(ep->loop, &ep->cio);
			return;
		}
		ep->cerrno = errno;
		close(fd);
	}
	rmq_tcp_abort(ep);
	rmq_lost(ep, -AS_ECONN, "connect: %s", strerror(ep->cerrno));
}

static void
rmq_cio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rmq_endpoint *ep = w->data;
	socklen_t	 len = sizeof(int);
	int		 soerr = 0;

	(void)revents;
	ev_io_stop(loop, w);
	if (getsockopt(ep->cfd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr == 0) {
		rmq_tcp_connected(ep);
		return;
	}
	ep->cerrno = soerr;
	close(ep->cfd);
	ep->cfd = -1;
	ep->ai_cur = ep->ai_cur->ai_next;
	rmq_tcp_next(ep);
}

static void
rmq_connect_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rmq_endpoint *ep = w->data;

	(void)loop;
	(void)revents;
	rmq_tcp_abort(ep);
	rmq_lost(ep, -AS_ETIMEDOUT, "connect timed out after %g s",
	    ep->connect_timeout);
}

/*
 * Opens the connection.  amqp://: the name lookup (a blocking
 * getaddrinfo, as everywhere in this project), then a non-blocking connect
 * on the loop under the connect timeout; amqps://: see rmq_connect_tls.
 * The login follows.
 */
static void
rmq_connect(struct rmq_endpoint *ep)
{
	struct addrinfo	 hints;
	char		 port[16];
	int		 rc;

	if (ep->conn != NULL || ep->state == RMQ_CONNECTING)
		return;
	if (ep->addr.tls) {
		rmq_connect_tls(ep);
		return;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof port, "%d", ep->addr.port);
	if ((rc = getaddrinfo(ep->addr.host, port, &hints, &ep->ai)) != 0) {
		ep->ai = NULL;
		rmq_lost(ep, -AS_ECONN, "cannot resolve %s: %s", ep->addr.host,
		    gai_strerror(rc));
		return;
	}
	ep->state = RMQ_CONNECTING;
	ep->ai_cur = ep->ai;
	ep->cerrno = ECONNREFUSED;
	ev_timer_set(&ep->connect_timer, ep->connect_timeout, 0.);
	ev_timer_start(ep->loop, &ep->connect_timer);
	rmq_tcp_next(ep);
}

/* The channel is open: the endpoint is ready; send what waits. */
static void
rmq_ready(struct rmq_endpoint *ep)
{
	ep->state = RMQ_READY;
	if (!ep->was_ready)
		log_info(RMQ_LOG, "%s: connected (vhost %s, heartbeat %d s)",
		    ep->name, ep->addr.vhost, ep->heartbeat);
	else if (ep->attempt > 0)
		log_info(RMQ_LOG, "%s: connection restored", ep->name);
	ep->was_ready = 1;
	ep->attempt = 0;
	ep->err = 0;
	ep->cause[0] = '\0';
	rmq_command_progress(ep);
	rmq_flush(ep);
}

/* A declare-ok: the oldest declare on the wire answered. */
static void
rmq_declared(struct rmq_endpoint *ep, const amqp_queue_declare_ok_t *ok)
{
	struct rmq_decl	*d;
	struct rmq_scaler *s;

	if ((d = TAILQ_FIRST(&ep->inflight)) == NULL) {
		rmq_lost(ep, -AS_EPROTO, "unexpected queue.declare-ok");
		return;
	}
	TAILQ_REMOVE(&ep->inflight, d, entry);
	while ((s = LIST_FIRST(&d->waiters)) != NULL) {
		LIST_REMOVE(s, dentry);
		s->later.res.ready = (double)ok->message_count;
		s->later.res.consumers = (double)ok->consumer_count;
		rmq_later(s);
	}
	free(d->queue);
	free(d);
	rmq_command_progress(ep);
}

/*
 * channel.close from the broker: the oldest declare on the wire failed (404
 * for a missing queue).  Everything after it was discarded by the broker:
 * back to the head of the waiting list, in order, for the reopened channel.
 */
static void
rmq_channel_closed(struct rmq_endpoint *ep, const amqp_channel_close_t *cc)
{
	amqp_channel_close_ok_t	 ok;
	struct rmq_decl	*d;
	struct rmq_scaler *s;
	char		 text[128];
	int		 code = cc->reply_code, err;

	rmq_bytes(text, sizeof text, cc->reply_text);
	memset(&ok, 0, sizeof ok);
	if (rmq_send(ep, RMQ_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok,
	    "channel.close-ok") != 0)
		return;
	if (ep->state != RMQ_READY) {
		rmq_lost(ep, -AS_EPROTO, "channel refused: %s", text);
		return;
	}
	if ((d = TAILQ_FIRST(&ep->inflight)) != NULL) {
		TAILQ_REMOVE(&ep->inflight, d, entry);
		err = rmq_code_err(code);
		while ((s = LIST_FIRST(&d->waiters)) != NULL) {
			LIST_REMOVE(s, dentry);
			if (code == AMQP_NOT_FOUND)
				rabbitmq_result_error(&s->later.res, err,
				    ep->name, "queue %.64s not found in vhost "
				    "%.64s", d->queue, ep->addr.vhost);
			else
				rabbitmq_result_error(&s->later.res, err,
				    ep->name, "queue %.64s: %s", d->queue,
				    text);
			rmq_later(s);
		}
		log_debug(RMQ_LOG, "%s: channel closed on queue %s: %s",
		    ep->name, d->queue, text);
		free(d->queue);
		free(d);
	}
	while ((d = TAILQ_LAST(&ep->inflight, rmq_decl_q)) != NULL) {
		TAILQ_REMOVE(&ep->inflight, d, entry);
		while ((s = LIST_FIRST(&d->waiters)) != NULL) {
			LIST_REMOVE(s, dentry);
			s->decl = NULL;
			s->pstate = RMQ_POLL_WAITING;
			TAILQ_INSERT_HEAD(&ep->waiting, s, wentry);
		}
		free(d->queue);
		free(d);
	}
	ep->reopens++;
	rmq_open_channel(ep);
}

/* connection.close from the broker (shutdown, an operator, an error). */
static void
rmq_connection_closed(struct rmq_endpoint *ep,
    const amqp_connection_close_t *cc)
{
	amqp_connection_close_ok_t ok;
	char		 text[128];
	int		 code = cc->reply_code;

	rmq_bytes(text, sizeof text, cc->reply_text);
	memset(&ok, 0, sizeof ok);
	amqp_send_method(ep->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
	rmq_lost(ep, code == AMQP_ACCESS_REFUSED ? -AS_EAUTH :
	    rmq_code_err(code), "closed by the broker: %s", text);
}

static void
rmq_frame(struct rmq_endpoint *ep, const amqp_frame_t *f)
{
	amqp_method_number_t id;

	if (f->frame_type != AMQP_FRAME_METHOD)
		return;		/* we never consume: no content frames */
	id = f->payload.method.id;
	if (f->channel == 0) {
		if (id == AMQP_CONNECTION_CLOSE_METHOD)
			rmq_connection_closed(ep, f->payload.method.decoded);
		else if (id == AMQP_CONNECTION_BLOCKED_METHOD &&
		    !ep->blocked_logged) {
			ep->blocked_logged = 1;
			log_info(RMQ_LOG, "%s: the broker blocks publishers "
			    "(resource alarm); reads go on", ep->name);
		} else if (id == AMQP_CONNECTION_UNBLOCKED_METHOD)
			ep->blocked_logged = 0;
		return;
	}
	if (f->channel != RMQ_CHANNEL)
		return;
	switch (id) {
	case AMQP_QUEUE_DECLARE_OK_METHOD:
		rmq_declared(ep, f->payload.method.decoded);
		break;
	case AMQP_CHANNEL_CLOSE_METHOD:
		rmq_channel_closed(ep, f->payload.method.decoded);
		break;
	case AMQP_CHANNEL_OPEN_OK_METHOD:
		if (ep->state == RMQ_OPENING)
			rmq_ready(ep);
		break;
	default:
		log_debug(RMQ_LOG, "%s: ignoring method 0x%08x", ep->name,
		    (unsigned)id);
		break;
	}
}

/*
 * Reads every frame the socket and the library's buffers hold, until the
 * library says there is nothing left.  Also sends a heartbeat when one is
 * due (rabbitmq-c does that inside its wait).
 */
static void
rmq_drain(struct rmq_endpoint *ep)
{
	struct timeval	 tv;
	amqp_frame_t	 f;
	int		 rc;

	/*
	 * A zero-timeout wait takes a queued frame first (amqp_frames_enqueued),
	 * then one from the read buffer (amqp_data_in_buffer), then tries
	 * recv: AMQP_STATUS_TIMEOUT means all three are empty.
	 */
	while (ep->conn != NULL) {
		amqp_maybe_release_buffers(ep->conn);
		tv = rmq_zero_tv;
		rc = amqp_simple_wait_frame_noblock(ep->conn, &f, &tv);
		if (rc == AMQP_STATUS_TIMEOUT)
			break;
		if (rc != AMQP_STATUS_OK) {
			rmq_lost(ep, rmq_status_err(rc), "%s",
			    rc == AMQP_STATUS_CONNECTION_CLOSED ||
			    rc == AMQP_STATUS_SOCKET_CLOSED ?
			    "the broker closed the connection" :
			    amqp_error_string2(rc));
			return;
		}
		ep->last_rx = as_mono_now();
		rmq_frame(ep, &f);
	}
	if (ep->conn != NULL)
		amqp_maybe_release_buffers(ep->conn);
}

/*
 * Sends one passive declare per distinct queue among the waiting polls, in
 * order, pipelined on the channel.  A failed send loses the connection,
 * which fails every poll on the endpoint, these included.
 */
static void
rmq_flush(struct rmq_endpoint *ep)
{
	struct rmq_decl_q fresh;
	amqp_queue_declare_t qd;
	struct rmq_scaler *s;
	struct rmq_decl	*d, *first;

	ev_timer_stop(ep->loop, &ep->flush_timer);
	if (ep->state != RMQ_READY || TAILQ_EMPTY(&ep->waiting))
		return;
	ep->batches++;
	TAILQ_INIT(&fresh);
	while ((s = TAILQ_FIRST(&ep->waiting)) != NULL) {
		TAILQ_REMOVE(&ep->waiting, s, wentry);
		TAILQ_FOREACH(d, &fresh, entry)
			if (strcmp(d->queue, s->queue) == 0)
				break;
		if (d == NULL) {
			d = xcalloc(1, sizeof *d);
			d->queue = xstrdup(s->queue);
			LIST_INIT(&d->waiters);
			TAILQ_INSERT_TAIL(&fresh, d, entry);
		}
		LIST_INSERT_HEAD(&d->waiters, s, dentry);
		s->decl = d;
		s->pstate = RMQ_POLL_SENT;
	}
	/* inflight owns them all before the first send can fail. */
	first = TAILQ_FIRST(&fresh);
	TAILQ_CONCAT(&ep->inflight, &fresh, entry);
	if (!ev_is_active(&ep->command_timer))
		ev_timer_again(ep->loop, &ep->command_timer);
	for (d = first; d != NULL; d = TAILQ_NEXT(d, entry)) {
		memset(&qd, 0, sizeof qd);
		qd.queue = amqp_cstring_bytes(d->queue);
		qd.passive = 1;
		qd.arguments = amqp_empty_table;
		ep->requests++;
		if (rmq_send(ep, RMQ_CHANNEL, AMQP_QUEUE_DECLARE_METHOD, &qd,
		    "queue.declare") != 0)
			return;		/* d is gone with the connection */
	}
}

/* Watchers. */

static void
rmq_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rmq_endpoint *ep = w->data;

	(void)loop;
	(void)revents;
	ep->last_rx = as_mono_now();
	rmq_drain(ep);
}

static void
rmq_heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rmq_endpoint *ep = w->data;
	double		 now = as_mono_now();
	int		 n = 0;

	(void)loop;
	(void)revents;
	if (ep->conn == NULL)
		return;
	/* Bytes this drain is about to read count as signs of life too. */
	if (ioctl(amqp_get_sockfd(ep->conn), FIONREAD, &n) == 0 && n > 0)
		ep->last_rx = now;
	rmq_drain(ep);
	if (ep->conn != NULL && now - ep->last_rx > 2.0 * ep->heartbeat)
		rmq_lost(ep, -AS_ETIMEDOUT, "no data and no heartbeat from the "
		    "broker for %.0f s", now - ep->last_rx);
}

static void
rmq_command_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rmq_endpoint *ep = w->data;

	(void)loop;
	(void)revents;
	rmq_lost(ep, -AS_ETIMEDOUT, "no reply within %g s",
	    ep->command_timeout);
}

static void
rmq_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	rmq_connect(w->data);
}

static void
rmq_flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	rmq_flush(w->data);
}

/* Endpoints. */

static struct rmq_endpoint *
rmq_endpoint_get(struct ev_loop *loop, const struct rabbitmq_addr *addr,
    const struct scaler_source *src)
{
	struct rmq_endpoint *ep;
	const char	*user = rabbitmq_user(src);
	const char	*pwfile = rabbitmq_nonempty(src->password_file);
	const char	*pwenv = rabbitmq_nonempty(src->password_env);
	const char	*ca = rabbitmq_nonempty(src->ca_file);
	int		 insecure = src->insecure_skip_verify != 0;
	double		 ct, mt;

	ct = src->connect_timeout > 0 ? src->connect_timeout : RMQ_TIMEOUT;
	mt = src->command_timeout > 0 ? src->command_timeout : RMQ_TIMEOUT;
	LIST_FOREACH(ep, &rmq_endpoints, entry) {
		if (ep->loop == loop && ep->addr.port == addr->port &&
		    ep->addr.tls == addr->tls &&
		    strcmp(ep->addr.host, addr->host) == 0 &&
		    strcmp(ep->addr.vhost, addr->vhost) == 0 &&
		    strcmp(ep->user, user) == 0 &&
		    rabbitmq_same(ep->password_file, pwfile) &&
		    rabbitmq_same(ep->password_env, pwenv) &&
		    rabbitmq_same(ep->ca_file, ca) &&
		    ep->insecure == insecure)
			break;
	}
	if (ep != NULL) {
		/* A shared connection gets the strictest deadlines. */
		if (ct < ep->connect_timeout)
			ep->connect_timeout = ct;
		if (mt < ep->command_timeout) {
			ep->command_timeout = mt;
			ep->command_timer.repeat = mt;
		}
		ep->refs++;
		return (ep);
	}

	ep = xcalloc(1, sizeof *ep);
	ep->loop = loop;
	ep->addr = *addr;
	rabbitmq_endpoint_name(addr, ep->name, sizeof ep->name);
	ep->user = xstrdup(user);
	ep->password_file = pwfile != NULL ? xstrdup(pwfile) : NULL;
	ep->password_env = pwenv != NULL ? xstrdup(pwenv) : NULL;
	ep->ca_file = ca != NULL ? xstrdup(ca) : NULL;
	ep->insecure = insecure;
	ep->connect_timeout = ct;
	ep->command_timeout = mt;
	ep->refs = 1;
	LIST_INIT(&ep->scalers);
	TAILQ_INIT(&ep->waiting);
	TAILQ_INIT(&ep->inflight);
	ep->cfd = -1;
	ev_io_init(&ep->io, rmq_io_cb, -1, EV_READ);
	ev_io_init(&ep->cio, rmq_cio_cb, -1, EV_WRITE);
	ev_timer_init(&ep->connect_timer, rmq_connect_timeout_cb, 0., 0.);
	ep->cio.data = ep->connect_timer.data = ep;
	ev_init(&ep->heartbeat_timer, rmq_heartbeat_cb);
	ev_init(&ep->command_timer, rmq_command_timeout_cb);
	ep->command_timer.repeat = mt;
	ev_timer_init(&ep->retry_timer, rmq_retry_cb, 0., 0.);
	ev_timer_init(&ep->flush_timer, rmq_flush_cb, 0., 0.);
	ep->io.data = ep->heartbeat_timer.data = ep->command_timer.data = ep;
	ep->retry_timer.data = ep->flush_timer.data = ep;
	if (insecure && addr->tls)
		log_warn(RMQ_LOG, "%s: TLS verification is disabled "
		    "(insecureSkipVerify)", ep->name);
	LIST_INSERT_HEAD(&rmq_endpoints, ep, entry);
	/* Connect from the loop, not inside create(). */
	ev_timer_start(loop, &ep->retry_timer);
	return (ep);
}

/* Drops a ref; the last one closes the connection and frees. */
static void
rmq_endpoint_put(struct rmq_endpoint *ep)
{
	if (--ep->refs > 0)
		return;
	LIST_REMOVE(ep, entry);
	rmq_close_conn(ep, 1);
	ev_timer_stop(ep->loop, &ep->retry_timer);
	/* No instance is left, so no declare has a waiter. */
	rmq_fail_all(ep, -AS_ECANCELED, "source destroyed");
	free(ep->user);
	free(ep->password_file);
	free(ep->password_env);
	free(ep->ca_file);
	free(ep);
}

void
rabbitmq_amqp_stats(const struct scaler *base, struct rabbitmq_stats *st)
{
	const struct rmq_scaler *s = (const struct rmq_scaler *)base;
	const struct rmq_endpoint *ep = s->ep;

	st->transport = RABBITMQ_AMQP;
	st->sharing = ep->refs;
	st->connected = ep->conn != NULL;
	st->connects = ep->connects;
	st->reopens = ep->reopens;
	st->requests = ep->requests;
	st->batches = ep->batches;
}

/* The vtable. */

static struct scaler *
rmq_create(struct ev_loop *loop, const struct scaler_source *src, char *err,
    size_t errlen)
{
	struct rmq_scaler *s;
	struct rabbitmq_addr addr;

	if (rabbitmq_parse_address(src->address, &addr, err, errlen) != 0)
		return (NULL);
	if (addr.transport != RABBITMQ_AMQP) {
		snprintf(err, errlen, "not an amqp:// address");
		return (NULL);
	}
	s = xcalloc(1, sizeof *s);
	s->base.type = &rabbitmq_amqp_type;
	s->loop = loop;
	s->queue = xstrdup(src->queue);
	scaler_later_init(&s->later, loop, &s->base);
	s->ep = rmq_endpoint_get(loop, &addr, src);
	LIST_INSERT_HEAD(&s->ep->scalers, s, entry);
	return (&s->base);
}

/*
 * Queues a passive declare for the next flush.  While the endpoint is down
 * after a failure the poll completes on the next loop turn with that cause;
 * before the first attempt, or while the channel opens, it waits for it.
 * Returns -AS_EAGAIN while a poll is pending.
 */
static int
rmq_poll(struct scaler *base, scaler_done_fn *fn, void *arg)
{
	struct rmq_scaler *s = (struct rmq_scaler *)base;
	struct rmq_endpoint *ep = s->ep;
	int		 rc;

	if ((rc = scaler_later_start(&s->later, fn, arg)) != 0)
		return (rc);
	if (ep->state == RMQ_DOWN && ep->err != 0) {
		rabbitmq_result_error(&s->later.res, ep->err, ep->name,
		    "not connected: %s", ep->cause);
		rmq_later(s);
		return (0);
	}
	s->pstate = RMQ_POLL_WAITING;
	TAILQ_INSERT_TAIL(&ep->waiting, s, wentry);
	if (ep->state == RMQ_READY && !ev_is_active(&ep->flush_timer)) {
		ev_timer_set(&ep->flush_timer, 0., 0.);
		ev_timer_start(ep->loop, &ep->flush_timer);
	}
	return (0);
}

/*
 * Completes a pending poll with -AS_ECANCELED before returning.  A declare
 * already on the wire stays in inflight, without this waiter, so that the
 * replies still match.
 */
static void
rmq_destroy(struct scaler *base)
{
	struct rmq_scaler *s = (struct rmq_scaler *)base;
	struct rmq_endpoint *ep = s->ep;
	struct scaler_result res;
	scaler_done_fn	*fn;
	void		*arg;
	char		 name[sizeof ep->name];

	fn = scaler_later_cancel(&s->later, &arg);
	if (s->pstate == RMQ_POLL_WAITING)
		TAILQ_REMOVE(&ep->waiting, s, wentry);
	else if (s->pstate == RMQ_POLL_SENT)
		LIST_REMOVE(s, dentry);
	s->pstate = RMQ_POLL_IDLE;
	as_strlcpy(name, ep->name, sizeof name);
	LIST_REMOVE(s, entry);
	rmq_endpoint_put(ep);
	s->ep = NULL;
	if (fn != NULL) {
		memset(&res, 0, sizeof res);
		rabbitmq_result_error(&res, -AS_ECANCELED, name, "poll "
		    "canceled: source destroyed");
		fn(&s->base, &res, arg);
	}
	free(s->queue);
	free(s);
}

const struct scaler_type rabbitmq_amqp_type = {
	.name = "rabbitmq",
	.create = rmq_create,
	.poll = rmq_poll,
	.destroy = rmq_destroy,
};
