/*
 * rabbitmq_conn.c: one AMQP connection with one channel on the caller's
 * libev loop (rabbitmq_conn.h), shared by the scale-mode source and the
 * dispatch-mode consumer.  rabbitmq-c 0.11, Option A of
 * ref/c-event-loop-patterns.md section 3.
 *
 * Nothing waits for a reply inside the loop.  Methods are written with
 * amqp_send_method(); an ev_io on the socket and a drain that calls
 * amqp_simple_wait_frame_noblock() with a zero timeout until the library
 * answers AMQP_STATUS_TIMEOUT read the frames, including frames the library
 * already holds in its buffer or queue, which would never wake the fd.  The
 * library keeps a frame that arrived in part in its own inbound buffer and
 * completes it on a later call, so a zero timeout never loses bytes; every
 * frame we are given is whole.  Content (a delivery's header and body) is
 * handed to the owner frame by frame, so a body that spans several frames
 * never makes us wait for the rest either.
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
 * Unbounded but not expected to wait: amqp_send_method() and
 * amqp_basic_publish() when the socket's send buffer is full.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "agentscaler/rt/common.h"
#include "compat_amqp.h"
#include "agentscaler/rt/log.h"
#include "rabbitmq.h"
#include "rabbitmq_conn.h"
#include "agentscaler/scalers/scaler.h"

#define RCONN_LOG		"rabbitmq"
#define RCONN_TIMEOUT		2.0	/* connect and command, seconds */
#define RCONN_HEARTBEAT		10	/* seconds, asked of the broker */
#define RCONN_BACKOFF_BASE	0.1
#define RCONN_BACKOFF_CAP	5.0
#define RCONN_SYSTEM_CA		"/etc/ssl/certs/ca-certificates.crt"

static void	 rconn_connect(struct rabbitmq_conn *);
static void	 rconn_tcp_abort(struct rabbitmq_conn *);
static void	 rconn_tcp_next(struct rabbitmq_conn *);
static void	 rconn_drain(struct rabbitmq_conn *);

/* The heartbeat we ask for, seconds; tests shorten it. */
TESTABLE int	 rabbitmq_amqp_heartbeat = RCONN_HEARTBEAT;

static const struct timeval rconn_zero_tv = { 0, 0 };

static struct timeval
rconn_tv(double secs)
{
	struct timeval	 tv;

	tv.tv_sec = (time_t)secs;
	tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
	return (tv);
}

void
rabbitmq_bytes(char *out, size_t outlen, amqp_bytes_t b)
{
	size_t	 n = b.len < outlen - 1 ? b.len : outlen - 1;

	if (b.bytes == NULL)
		n = 0;
	if (n > 0)
		memcpy(out, b.bytes, n);
	out[n] = '\0';
}

int
rabbitmq_code_err(int code)
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

int
rabbitmq_status_err(int status)
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

/* Stops every watcher on the socket and frees the connection, if any. */
static void
rconn_close(struct rabbitmq_conn *c, int polite)
{
	amqp_connection_close_t	 cc;

	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->heartbeat_timer);
	ev_timer_stop(c->loop, &c->command_timer);
	rconn_tcp_abort(c);
	c->healthy = 0;
	if (c->amqp == NULL) {
		c->state = RABBITMQ_CONN_DOWN;
		return;
	}
	if (polite) {
		/* Said, not awaited: close-ok would need a blocking wait. */
		memset(&cc, 0, sizeof cc);
		cc.reply_code = AMQP_REPLY_SUCCESS;
		cc.reply_text = amqp_cstring_bytes("source removed");
		amqp_send_method(c->amqp, 0, AMQP_CONNECTION_CLOSE_METHOD, &cc);
	}
	amqp_destroy_connection(c->amqp);	/* closes the fd */
	c->amqp = NULL;
	c->state = RABBITMQ_CONN_DOWN;
}

/*
 * Records why the connection is down, logs it once per outage, closes it,
 * tells the owner and arms the retry timer.
 */
static void
rconn_down(struct rabbitmq_conn *c, int err, const char *cause)
{
	double	 delay;

	c->err = err;
	as_strlcpy(c->cause, cause, sizeof c->cause);
	/* The next connect reads a Secret again, unless one is being read. */
	if (err != -AS_EAGAIN)
		c->down_at = as_mono_now();
	if (c->state != RABBITMQ_CONN_DOWN && c->was_ready && c->attempt == 0)
		log_warn(RCONN_LOG, "%s: connection lost: %s", c->name, cause);
	else if (c->attempt == 0 && err != -AS_EAGAIN)
		log_warn(RCONN_LOG, "%s: cannot connect: %s; retrying with "
		    "backoff", c->name, cause);
	else
		log_debug(RCONN_LOG, "%s: attempt %u: %s", c->name,
		    c->attempt + 1, cause);
	rconn_close(c, 0);
	/* A Secret being read through the API: not a failure, try soon. */
	delay = err == -AS_EAGAIN ? RCONN_BACKOFF_BASE :
	    as_backoff(RCONN_BACKOFF_BASE, RCONN_BACKOFF_CAP, c->attempt);
	if (c->attempt < 64 && err != -AS_EAGAIN)
		c->attempt++;
	ev_timer_stop(c->loop, &c->retry_timer);
	ev_timer_set(&c->retry_timer, delay, 0.);
	ev_timer_start(c->loop, &c->retry_timer);
	c->hooks->down(c, err, c->cause);
}

void
rabbitmq_conn_lost(struct rabbitmq_conn *c, int err, const char *fmt, ...)
{
	char	 cause[160];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(cause, sizeof cause, fmt, ap);
	va_end(ap);
	rconn_down(c, err, cause);
}

int
rabbitmq_conn_send(struct rabbitmq_conn *c, amqp_channel_t ch,
    amqp_method_number_t id, void *m, const char *what)
{
	int	 rc;

	if (c->amqp == NULL)
		return (-1);
	if ((rc = amqp_send_method(c->amqp, ch, id, m)) != AMQP_STATUS_OK) {
		rabbitmq_conn_lost(c, rabbitmq_status_err(rc), "sending %s: %s",
		    what, amqp_error_string2(rc));
		return (-1);
	}
	return (0);
}

void
rabbitmq_conn_deadline(struct rabbitmq_conn *c, double at)
{
	double	 delay;

	ev_timer_stop(c->loop, &c->command_timer);
	if (at <= 0 || c->amqp == NULL)
		return;
	delay = at - as_mono_now();
	ev_timer_set(&c->command_timer, delay > 0 ? delay : 0., 0.);
	ev_timer_start(c->loop, &c->command_timer);
}

static int
rconn_open_channel(struct rabbitmq_conn *c)
{
	amqp_channel_open_t	 o;

	memset(&o, 0, sizeof o);
	c->state = RABBITMQ_CONN_OPENING;
	if (rabbitmq_conn_send(c, RABBITMQ_CHANNEL, AMQP_CHANNEL_OPEN_METHOD,
	    &o, "channel.open") != 0)
		return (-1);
	rabbitmq_conn_deadline(c, as_mono_now() + c->command_timeout);
	return (0);
}

int
rabbitmq_conn_reopen(struct rabbitmq_conn *c)
{
	return (rconn_open_channel(c));
}

/* Describes a failed login in err; returns the as_err value. */
static int
rconn_login_error(struct rabbitmq_conn *c, const amqp_rpc_reply_t *reply,
    const char *secret, char *err, size_t errlen)
{
	amqp_connection_close_t *cc;
	char		 text[128], raw[128];

	if (reply->reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
	    reply->reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
		cc = reply->reply.decoded;
		rabbitmq_bytes(raw, sizeof raw, cc->reply_text);
		as_redact(text, sizeof text, raw, secret);
		if (cc->reply_code == AMQP_ACCESS_REFUSED) {
			snprintf(err, errlen, "authentication failed for user "
			    "%.64s: %s", c->user, text);
			return (-AS_EAUTH);
		}
		snprintf(err, errlen, "login refused: %s", text);
		return (rabbitmq_code_err(cc->reply_code));
	}
	if (reply->reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
		if (reply->library_error == AMQP_STATUS_TIMEOUT)
			snprintf(err, errlen, "login timed out after %g s",
			    c->command_timeout);
		else
			snprintf(err, errlen, "login: %s",
			    amqp_error_string2(reply->library_error));
		return (rabbitmq_status_err(reply->library_error));
	}
	as_strlcpy(err, "login: unexpected reply", errlen);
	return (-AS_EPROTO);
}

/*
 * Logs in on a connected socket, with the command timeout as the handshake
 * timeout (blocking but bounded), then opens the channel asynchronously.
 * Takes conn; on failure it is destroyed and the connection goes down.
 * The client properties name the connection and ask for the broker's
 * consumer cancel and connection.blocked notifications.
 */
static void
rconn_login(struct rabbitmq_conn *c, amqp_connection_state_t conn)
{
	amqp_rpc_reply_t reply;
	amqp_table_entry_t prop[2], caps[2];
	amqp_table_t	 props;
	struct timeval	 mtv;
	char		*secret = NULL, *user = NULL, err[320];
	int		 rc, fd, flags;

	if ((rc = scaler_secret_user(&c->secret, c->down_at, &user, err,
	    sizeof err)) != 0 || (rc = rabbitmq_secret_read(&c->secret,
	    c->user, c->down_at, &secret, err, sizeof err)) != 0) {
		as_secret_free(user, 0);
		amqp_destroy_connection(conn);
		rconn_down(c, rc, err);
		return;
	}
	mtv = rconn_tv(c->command_timeout);
	amqp_set_handshake_timeout(conn, &mtv);
	amqp_set_rpc_timeout(conn, &mtv);
	caps[0].key = amqp_cstring_bytes("consumer_cancel_notify");
	caps[1].key = amqp_cstring_bytes("connection.blocked");
	caps[0].value.kind = caps[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
	caps[0].value.value.boolean = caps[1].value.value.boolean = 1;
	prop[0].key = amqp_cstring_bytes("connection_name");
	prop[0].value.kind = AMQP_FIELD_KIND_UTF8;
	prop[0].value.value.bytes = amqp_cstring_bytes(c->label);
	prop[1].key = amqp_cstring_bytes("capabilities");
	prop[1].value.kind = AMQP_FIELD_KIND_TABLE;
	prop[1].value.value.table.num_entries = 2;
	prop[1].value.value.table.entries = caps;
	props.num_entries = 2;
	props.entries = prop;
	reply = amqp_login_with_properties(conn, c->addr.vhost, 0,
	    AMQP_DEFAULT_FRAME_SIZE, rabbitmq_amqp_heartbeat, &props,
	    AMQP_SASL_METHOD_PLAIN, user != NULL ? user : c->user, secret);
	as_secret_free(user, 0);
	if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
		rc = rconn_login_error(c, &reply, secret, err, sizeof err);
		amqp_destroy_connection(conn);
		as_secret_free(secret, 0);
		rconn_down(c, rc, err);
		return;
	}
	as_secret_free(secret, 0);

	fd = amqp_get_sockfd(conn);
	/* Every read goes through a zero timeout; make sure none can block. */
	if ((flags = fcntl(fd, F_GETFL)) != -1 && !(flags & O_NONBLOCK))
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	c->amqp = conn;
	c->connects++;
	c->heartbeat = amqp_get_heartbeat(conn);
	c->last_rx = as_mono_now();
	ev_io_set(&c->io, fd, EV_READ);
	ev_io_start(c->loop, &c->io);
	if (c->heartbeat > 0) {
		c->heartbeat_timer.repeat = c->heartbeat / 2.0;
		ev_timer_again(c->loop, &c->heartbeat_timer);
	}
	if (rconn_open_channel(c) != 0)
		return;
	/* The handshake may have left frames in the library's buffers. */
	rconn_drain(c);
}

/*
 * amqps://: rabbitmq-c 0.11 cannot take over a connected TLS socket, so
 * amqp_socket_open_noblock() connects and shakes hands, blocking but
 * bounded by the connect timeout.
 */
static void
rconn_connect_tls(struct rabbitmq_conn *c)
{
	amqp_connection_state_t conn = amqp_new_connection();
	amqp_socket_t	*sock;
	struct timeval	 ctv;
	const char	*ca = c->ca_file != NULL ? c->ca_file : RCONN_SYSTEM_CA;
	int		 rc;

	if ((sock = amqp_ssl_socket_new(conn)) == NULL) {
		amqp_destroy_connection(conn);
		rconn_down(c, -AS_ENOMEM, "cannot create the TLS socket");
		return;
	}
	/* rabbitmq-c 0.11 loads no system CAs by itself. */
	if (amqp_ssl_socket_set_cacert(sock, ca) != AMQP_STATUS_OK &&
	    !c->insecure) {
		amqp_destroy_connection(conn);
		rabbitmq_conn_lost(c, -AS_EINVAL, "cannot load the CA file %s",
		    ca);
		return;
	}
	amqp_ssl_socket_set_verify_peer(sock, !c->insecure);
	amqp_ssl_socket_set_verify_hostname(sock, !c->insecure);
	ctv = rconn_tv(c->connect_timeout);
	/* Note: the name lookup inside is a blocking getaddrinfo. */
	if ((rc = amqp_socket_open_noblock(sock, c->addr.host, c->addr.port,
	    &ctv)) != AMQP_STATUS_OK) {
		amqp_destroy_connection(conn);
		if (rc == AMQP_STATUS_TIMEOUT)
			rabbitmq_conn_lost(c, -AS_ETIMEDOUT, "connect timed "
			    "out after %g s", c->connect_timeout);
		else
			rabbitmq_conn_lost(c, rabbitmq_status_err(rc),
			    "connect: %s", amqp_error_string2(rc));
		return;
	}
	rconn_login(c, conn);
}

/* Forgets a TCP connect in progress, if any. */
static void
rconn_tcp_abort(struct rabbitmq_conn *c)
{
	ev_io_stop(c->loop, &c->cio);
	ev_timer_stop(c->loop, &c->connect_timer);
	if (c->cfd >= 0) {
		close(c->cfd);
		c->cfd = -1;
	}
	if (c->ai != NULL) {
		freeaddrinfo(c->ai);
		c->ai = NULL;
	}
	c->ai_cur = NULL;
}

/* The TCP connect succeeded: rabbitmq-c takes the socket over. */
static void
rconn_tcp_connected(struct rabbitmq_conn *c)
{
	amqp_connection_state_t conn;
	amqp_socket_t	*sock;
	int		 fd = c->cfd;

	c->cfd = -1;
	rconn_tcp_abort(c);
	conn = amqp_new_connection();
	if ((sock = amqp_tcp_socket_new(conn)) == NULL) {
		close(fd);
		amqp_destroy_connection(conn);
		rconn_down(c, -AS_ENOMEM, "cannot create the socket");
		return;
	}
	amqp_tcp_socket_set_sockfd(sock, fd);	/* closed with conn */
	rconn_login(c, conn);
}

/*
 * Tries the next address of the name: a non-blocking connect whose result
 * the cio watcher reads.  With none left, the connection goes down with the
 * last address's error.
 */
static void
rconn_tcp_next(struct rabbitmq_conn *c)
{
	struct addrinfo	*ai;
	int		 fd;

	for (; (ai = c->ai_cur) != NULL; c->ai_cur = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			c->cerrno = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			c->cfd = fd;
			rconn_tcp_connected(c);
			return;
		}
		if (errno == EINPROGRESS) {
			c->cfd = fd;
			ev_io_set(&c->cio, fd, EV_WRITE);
			ev_io_start(c->loop, &c->cio);
			return;
		}
		c->cerrno = errno;
		close(fd);
	}
	rconn_tcp_abort(c);
	rabbitmq_conn_lost(c, -AS_ECONN, "connect: %s", strerror(c->cerrno));
}

static void
rconn_cio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rabbitmq_conn *c = w->data;
	socklen_t	 len = sizeof(int);
	int		 soerr = 0;

	(void)revents;
	ev_io_stop(loop, w);
	if (getsockopt(c->cfd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr == 0) {
		rconn_tcp_connected(c);
		return;
	}
	c->cerrno = soerr;
	close(c->cfd);
	c->cfd = -1;
	c->ai_cur = c->ai_cur->ai_next;
	rconn_tcp_next(c);
}

static void
rconn_connect_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rabbitmq_conn *c = w->data;

	(void)loop;
	(void)revents;
	rconn_tcp_abort(c);
	rabbitmq_conn_lost(c, -AS_ETIMEDOUT, "connect timed out after %g s",
	    c->connect_timeout);
}

/*
 * Opens the connection.  amqp://: the name lookup (a blocking
 * getaddrinfo, as everywhere in this project), then a non-blocking connect
 * on the loop under the connect timeout; amqps://: see rconn_connect_tls.
 * The login follows.
 */
static void
rconn_connect(struct rabbitmq_conn *c)
{
	struct addrinfo	 hints;
	char		 port[16];
	int		 rc;

	if (c->amqp != NULL || c->state == RABBITMQ_CONN_CONNECTING)
		return;
	if (c->addr.tls) {
		rconn_connect_tls(c);
		return;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof port, "%d", c->addr.port);
	if ((rc = getaddrinfo(c->addr.host, port, &hints, &c->ai)) != 0) {
		c->ai = NULL;
		rabbitmq_conn_lost(c, -AS_ECONN, "cannot resolve %s: %s",
		    c->addr.host, gai_strerror(rc));
		return;
	}
	c->state = RABBITMQ_CONN_CONNECTING;
	c->ai_cur = c->ai;
	c->cerrno = ECONNREFUSED;
	ev_timer_set(&c->connect_timer, c->connect_timeout, 0.);
	ev_timer_start(c->loop, &c->connect_timer);
	rconn_tcp_next(c);
}

/* The channel is open: the owner goes on. */
static void
rconn_ready(struct rabbitmq_conn *c)
{
	c->state = RABBITMQ_CONN_READY;
	rabbitmq_conn_deadline(c, 0);
	c->hooks->ready(c);
}

void
rabbitmq_conn_healthy(struct rabbitmq_conn *c)
{
	if (c->healthy || c->state != RABBITMQ_CONN_READY)
		return;
	c->healthy = 1;
	if (!c->was_ready)
		log_info(RCONN_LOG, "%s: connected (vhost %s, heartbeat %d s)",
		    c->name, c->addr.vhost, c->heartbeat);
	else if (c->attempt > 0)
		log_info(RCONN_LOG, "%s: connection restored", c->name);
	c->was_ready = 1;
	c->attempt = 0;
	c->err = 0;
	c->cause[0] = '\0';
}

/* connection.close from the broker (shutdown, an operator, an error). */
static void
rconn_closed(struct rabbitmq_conn *c, const amqp_connection_close_t *cc)
{
	amqp_connection_close_ok_t ok;
	char		 text[128];
	int		 code = cc->reply_code;

	rabbitmq_bytes(text, sizeof text, cc->reply_text);
	memset(&ok, 0, sizeof ok);
	amqp_send_method(c->amqp, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
	rabbitmq_conn_lost(c, code == AMQP_ACCESS_REFUSED ? -AS_EAUTH :
	    rabbitmq_code_err(code), "closed by the broker: %s", text);
}

static void
rconn_frame(struct rabbitmq_conn *c, const amqp_frame_t *f)
{
	amqp_method_number_t id = 0;
	char		 text[128];

	if (f->frame_type == AMQP_FRAME_METHOD)
		id = f->payload.method.id;
	if (f->channel == 0) {
		if (id == AMQP_CONNECTION_CLOSE_METHOD)
			rconn_closed(c, f->payload.method.decoded);
		else if (id == AMQP_CONNECTION_BLOCKED_METHOD &&
		    !c->blocked_logged) {
			c->blocked_logged = 1;
			log_info(RCONN_LOG, "%s: the broker blocks publishers "
			    "(resource alarm)", c->name);
		} else if (id == AMQP_CONNECTION_UNBLOCKED_METHOD)
			c->blocked_logged = 0;
		return;
	}
	if (f->channel != RABBITMQ_CHANNEL)
		return;
	if (c->state == RABBITMQ_CONN_OPENING) {
		if (id == AMQP_CHANNEL_OPEN_OK_METHOD)
			rconn_ready(c);
		else if (id == AMQP_CHANNEL_CLOSE_METHOD) {
			const amqp_channel_close_t *cc =
			    f->payload.method.decoded;

			rabbitmq_bytes(text, sizeof text, cc->reply_text);
			rabbitmq_conn_lost(c, -AS_EPROTO, "channel refused: %s",
			    text);
		}
		return;
	}
	if (c->state == RABBITMQ_CONN_READY)
		c->hooks->frame(c, f);
}

/*
 * Reads every frame the socket and the library's buffers hold, until the
 * library says there is nothing left.  Also sends a heartbeat when one is
 * due (rabbitmq-c does that inside its wait).
 */
static void
rconn_drain(struct rabbitmq_conn *c)
{
	struct timeval	 tv;
	amqp_frame_t	 f;
	int		 rc;

	/*
	 * A zero-timeout wait takes a queued frame first
	 * (amqp_frames_enqueued), then one from the read buffer
	 * (amqp_data_in_buffer), then tries recv: AMQP_STATUS_TIMEOUT means
	 * all three are empty.  The frame's
	 * memory lives until the next amqp_maybe_release_buffers(), so each
	 * frame is used up before the next wait.
	 */
	while (c->amqp != NULL) {
		amqp_maybe_release_buffers(c->amqp);
		tv = rconn_zero_tv;
		rc = amqp_simple_wait_frame_noblock(c->amqp, &f, &tv);
		if (rc == AMQP_STATUS_TIMEOUT)
			break;
		if (rc != AMQP_STATUS_OK) {
			rabbitmq_conn_lost(c, rabbitmq_status_err(rc), "%s",
			    rc == AMQP_STATUS_CONNECTION_CLOSED ||
			    rc == AMQP_STATUS_SOCKET_CLOSED ?
			    "the broker closed the connection" :
			    amqp_error_string2(rc));
			return;
		}
		c->last_rx = as_mono_now();
		rconn_frame(c, &f);
	}
	if (c->amqp != NULL)
		amqp_maybe_release_buffers(c->amqp);
}

/* Watchers. */

static void
rconn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rabbitmq_conn *c = w->data;

	(void)loop;
	(void)revents;
	c->last_rx = as_mono_now();
	rconn_drain(c);
}

static void
rconn_heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rabbitmq_conn *c = w->data;
	double		 now = as_mono_now();
	int		 n = 0;

	(void)loop;
	(void)revents;
	if (c->amqp == NULL)
		return;
	/* Bytes this drain is about to read count as signs of life too. */
	if (ioctl(amqp_get_sockfd(c->amqp), FIONREAD, &n) == 0 && n > 0)
		c->last_rx = now;
	rconn_drain(c);
	if (c->amqp != NULL && now - c->last_rx > 2.0 * c->heartbeat)
		rabbitmq_conn_lost(c, -AS_ETIMEDOUT, "no data and no heartbeat "
		    "from the broker for %.0f s", now - c->last_rx);
}

static void
rconn_command_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rabbitmq_conn *c = w->data;

	(void)loop;
	(void)revents;
	rabbitmq_conn_lost(c, -AS_ETIMEDOUT, "no reply within %g s",
	    c->command_timeout);
}

static void
rconn_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	rconn_connect(w->data);
}

/* Setting up and tearing down. */

static double
rconn_timeout(double t)
{
	return (t > 0 ? t : RCONN_TIMEOUT);
}

void
rabbitmq_conn_init(struct rabbitmq_conn *c, struct ev_loop *loop,
    const struct rabbitmq_addr *addr, const struct scaler_source *src,
    const char *label, const struct rabbitmq_conn_hooks *hooks, void *arg)
{
	const char	*ca = rabbitmq_nonempty(src->ca_file);

	memset(c, 0, sizeof *c);
	c->loop = loop;
	c->addr = *addr;
	rabbitmq_endpoint_name(addr, c->name, sizeof c->name);
	c->label = xstrdup(label);
	c->user = xstrdup(rabbitmq_user(src));
	scaler_secret_set(&c->secret, src);
	c->ca_file = ca != NULL ? xstrdup(ca) : NULL;
	c->insecure = src->insecure_skip_verify != 0;
	c->connect_timeout = rconn_timeout(src->connect_timeout);
	c->command_timeout = rconn_timeout(src->command_timeout);
	c->hooks = hooks;
	c->arg = arg;
	c->cfd = -1;
	ev_io_init(&c->io, rconn_io_cb, -1, EV_READ);
	ev_io_init(&c->cio, rconn_cio_cb, -1, EV_WRITE);
	ev_timer_init(&c->connect_timer, rconn_connect_timeout_cb, 0., 0.);
	ev_init(&c->heartbeat_timer, rconn_heartbeat_cb);
	ev_timer_init(&c->command_timer, rconn_command_timeout_cb, 0., 0.);
	ev_timer_init(&c->retry_timer, rconn_retry_cb, 0., 0.);
	c->io.data = c->cio.data = c->connect_timer.data = c;
	c->heartbeat_timer.data = c->command_timer.data = c;
	c->retry_timer.data = c;
	if (c->insecure && addr->tls)
		log_warn(RCONN_LOG, "%s: TLS verification is disabled "
		    "(insecureSkipVerify)", c->name);
	/* Connect from the loop, not inside the caller's create(). */
	ev_timer_start(loop, &c->retry_timer);
}

int
rabbitmq_conn_matches(const struct rabbitmq_conn *c, struct ev_loop *loop,
    const struct rabbitmq_addr *addr, const struct scaler_source *src)
{
	return (c->loop == loop && c->addr.port == addr->port &&
	    c->addr.tls == addr->tls &&
	    strcmp(c->addr.host, addr->host) == 0 &&
	    strcmp(c->addr.vhost, addr->vhost) == 0 &&
	    strcmp(c->user, rabbitmq_user(src)) == 0 &&
	    scaler_secret_same(&c->secret, src) &&
	    rabbitmq_same(c->ca_file, rabbitmq_nonempty(src->ca_file)) &&
	    c->insecure == (src->insecure_skip_verify != 0));
}

void
rabbitmq_conn_tighten(struct rabbitmq_conn *c,
    const struct scaler_source *src)
{
	double	 ct = rconn_timeout(src->connect_timeout);
	double	 mt = rconn_timeout(src->command_timeout);

	if (ct < c->connect_timeout)
		c->connect_timeout = ct;
	if (mt < c->command_timeout)
		c->command_timeout = mt;
}

void
rabbitmq_conn_fini(struct rabbitmq_conn *c)
{
	rconn_close(c, 1);
	ev_timer_stop(c->loop, &c->retry_timer);
	free(c->label);
	free(c->user);
	scaler_secret_clear(&c->secret);
	free(c->ca_file);
	c->label = c->user = c->ca_file = NULL;
}
