/*
 * http.c: libmicrohttpd without threads.  MHD_USE_EPOLL gives one fd that
 * covers the listener and every connection; an ev_io on it calls MHD_run,
 * and an ev_prepare re-arms a timer from MHD_get_timeout before each sleep,
 * because MHD must run within that time even when no fd is ready
 * (<microhttpd.h>, MHD_get_timeout).
 *
 * Bounds.  A probe must get through however many idle or slow clients hold
 * connections (64 idle ones used to fill MHD's limit, and the kubelet's
 * /healthz then waited in the listen backlog).  MHD's own timeout counts
 * inactivity, so a client trickling a byte at a time keeps its slot for
 * ever, and at its limit MHD stops accepting.  So the server tracks every
 * connection itself (MHD_OPTION_NOTIFY_CONNECTION) in a list ordered by
 * deadline: a connection has HTTP_REQUEST_SECONDS from its opening, or from
 * its last answer, to complete a request, and is shut down when that passes
 * (the constant-timeout list of the libev manual's "Be smart about
 * timeouts").  When a new connection would make more than HTTP_MAX_CONNS
 * open, the one nearest its deadline (the longest idle or slowest) is shut
 * down instead of the newcomer being refused.  MHD sees the shutdown as the
 * peer going away and closes the socket itself; its own limit, twice ours,
 * only backs this up while such sockets wait to be reaped.  There is no
 * per-address limit: the kubelet, Prometheus and a misbehaving client may
 * share an address (host network, SNAT, loopback), and a per-address cap
 * would then refuse the probe.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <ev.h>
#include <microhttpd.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/http.h"
#include "agentscaler/rt/log.h"

#define HTTP_MAX_ROUTES 16

struct http_route {
	char		*path;
	http_handler_fn	*fn;
	void		*arg;
};

/* One TCP connection, from MHD's STARTED notification to its CLOSED. */
struct http_conn {
	int			 fd;
	double			 deadline;	/* monotonic */
	int			 closing;	/* shut down, MHD to reap */
	TAILQ_ENTRY(http_conn)	 entry;		/* while !closing */
};

TAILQ_HEAD(http_conns, http_conn);

struct http_server {
	struct ev_loop		*loop;
	struct MHD_Daemon	*mhd;
	ev_io			 io;
	ev_timer		 timer;
	ev_prepare		 prepare;
	int			 port;
	struct http_route	 routes[HTTP_MAX_ROUTES];
	size_t			 nroutes;
	struct http_conns	 conns;		/* open ones, by deadline */
	struct http_stats	 stats;
};

static void
http_conn_touch(struct http_server *s, struct http_conn *c)
{
	/* Every deadline is now + the same constant: the tail is latest. */
	TAILQ_REMOVE(&s->conns, c, entry);
	c->deadline = as_mono_now() + HTTP_REQUEST_SECONDS;
	TAILQ_INSERT_TAIL(&s->conns, c, entry);
}

/* Shuts c down; MHD reads the end of it and closes the socket. */
static void
http_conn_close(struct http_server *s, struct http_conn *c, uint64_t *count)
{
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	c->closing = 1;
	TAILQ_REMOVE(&s->conns, c, entry);
	s->stats.open--;
	(*count)++;
}

static void
http_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct http_server	*s = cls;
	struct http_conn	*c = *socket_context;
	const union MHD_ConnectionInfo *ci;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		c = xcalloc(1, sizeof *c);
		ci = MHD_get_connection_info(conn,
		    MHD_CONNECTION_INFO_CONNECTION_FD);
		c->fd = ci != NULL ? ci->connect_fd : -1;
		c->deadline = as_mono_now() + HTTP_REQUEST_SECONDS;
		TAILQ_INSERT_TAIL(&s->conns, c, entry);
		*socket_context = c;
		s->stats.open++;
		s->stats.accepted++;
		/* The newcomer is at the tail, so never its own victim. */
		if (s->stats.open > HTTP_MAX_CONNS)
			http_conn_close(s, TAILQ_FIRST(&s->conns),
			    &s->stats.evicted);
		return;
	}
	if (c == NULL)
		return;
	if (!c->closing) {
		TAILQ_REMOVE(&s->conns, c, entry);
		s->stats.open--;
	}
	free(c);
	*socket_context = NULL;
}

/* The connection's state, from the access handler or completion. */
static struct http_conn *
http_conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return (ci != NULL ? ci->socket_context : NULL);
}

/* An answer went out: the connection has a new deadline to send another. */
static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_conn	*c = http_conn_of(conn);

	(void)con_cls;
	(void)toe;
	if (c != NULL && !c->closing)
		http_conn_touch(cls, c);
}

static void
http_expire(struct http_server *s)
{
	struct http_conn	*c;
	double			 now = as_mono_now();

	while ((c = TAILQ_FIRST(&s->conns)) != NULL && c->deadline <= now)
		http_conn_close(s, c, &s->stats.expired);
}

static void
http_run(struct http_server *s)
{
	MHD_run(s->mhd);
}

static void
http_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	http_run(w->data);
}

static void
http_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	http_expire(w->data);
	http_run(w->data);
}

/* One timer serves MHD's timeout and the first connection's deadline. */
static void
http_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct http_server	*s = w->data;
	struct http_conn	*c = TAILQ_FIRST(&s->conns);
	MHD_UNSIGNED_LONG_LONG	 ms;
	double			 after = -1;

	(void)revents;
	ev_timer_stop(loop, &s->timer);
	if (MHD_get_timeout(s->mhd, &ms) == MHD_YES)
		after = (double)ms / 1000.0;
	if (c != NULL && (after < 0 || c->deadline - as_mono_now() < after))
		after = c->deadline - as_mono_now();
	if (after >= 0 || c != NULL) {
		ev_timer_set(&s->timer, after > 0 ? after : 0., 0.);
		ev_timer_start(loop, &s->timer);
	}
}

static enum MHD_Result
http_answer(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct http_server	*s = cls;
	struct http_conn	*c;
	struct http_reply	 r;
	struct MHD_Response	*resp;
	enum MHD_Result		 ret;
	size_t			 i;

	(void)version;
	(void)upload_data;
	if (*con_cls == NULL) {
		/* First call: headers only.  Answer on the second. */
		*con_cls = s;
		/* The answer gets a full deadline to be sent. */
		if ((c = http_conn_of(conn)) != NULL && !c->closing)
			http_conn_touch(s, c);
		return (MHD_YES);
	}
	if (*upload_data_size != 0) {
		*upload_data_size = 0;	/* ignore bodies */
		return (MHD_YES);
	}
	memset(&r, 0, sizeof r);
	r.request = conn;
	r.status = 200;
	r.content_type = "text/plain; charset=utf-8";
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		r.status = 405;
		r.body = xstrdup("method not allowed\n");
	} else {
		for (i = 0; i < s->nroutes; i++)
			if (strcmp(s->routes[i].path, url) == 0)
				break;
		if (i == s->nroutes) {
			r.status = 404;
			r.body = xstrdup("not found\n");
		} else
			s->routes[i].fn(s->routes[i].arg, &r);
	}
	if (r.body == NULL)
		r.body = xstrdup("");
	if (r.len == 0)
		r.len = strlen(r.body);
	resp = MHD_create_response_from_buffer(r.len, r.body,
	    MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(r.body);
		return (MHD_NO);
	}
	MHD_add_response_header(resp, "Content-Type", r.content_type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	ret = MHD_queue_response(conn, (unsigned int)r.status, resp);
	MHD_destroy_response(resp);
	return (ret);
}

static int
http_parse_addr(const char *addr, struct sockaddr_storage *ss, char *err,
    size_t errlen)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	char			 host[128], *end;
	const char		*colon;
	long			 port;

	memset(ss, 0, sizeof *ss);
	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');

		if (rb == NULL || rb[1] != ':' || (size_t)(rb - addr) >=
		    sizeof host)
			goto bad;
		memcpy(host, addr + 1, (size_t)(rb - addr - 1));
		host[rb - addr - 1] = '\0';
		colon = rb + 1;
	} else {
		if ((colon = strrchr(addr, ':')) == NULL ||
		    (size_t)(colon - addr) >= sizeof host)
			goto bad;
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = '\0';
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 0 ||
	    port > 65535)
		goto bad;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		return (0);
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		return (0);
	}
bad:
	snprintf(err, errlen, "address \"%s\": expected host:port with a "
	    "numeric IP, e.g. 127.0.0.1:9090", addr);
	return (-AS_EINVAL);
}

struct http_server *
http_server_new(struct ev_loop *loop, const char *addr, char *err,
    size_t errlen)
{
	struct http_server	*s;
	struct sockaddr_storage	 ss;
	const union MHD_DaemonInfo *info;
	unsigned int		 flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

	if (http_parse_addr(addr, &ss, err, errlen) != 0)
		return (NULL);
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s = xcalloc(1, sizeof *s);
	s->loop = loop;
	TAILQ_INIT(&s->conns);
	/*
	 * MHD's limit leaves room for the connections shut down and not yet
	 * reaped; its inactivity timeout backs our deadlines up.
	 */
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, http_answer, s,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)HTTP_REQUEST_SECONDS,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(2 * HTTP_MAX_CONNS),
	    MHD_OPTION_NOTIFY_CONNECTION, http_notify, s,
	    MHD_OPTION_NOTIFY_COMPLETED, http_completed, s,
	    MHD_OPTION_END);
	if (s->mhd == NULL) {
		snprintf(err, errlen, "cannot listen on %s (address in use or "
		    "not local?)", addr);
		free(s);
		return (NULL);
	}
	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	ev_io_init(&s->io, http_io_cb, info->epoll_fd, EV_READ);
	s->io.data = s;
	ev_io_start(loop, &s->io);
	ev_init(&s->timer, http_timer_cb);
	s->timer.data = s;
	ev_prepare_init(&s->prepare, http_prepare_cb);
	s->prepare.data = s;
	ev_prepare_start(loop, &s->prepare);
	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info != NULL ? info->port : 0;
	return (s);
}

const char *
http_query(const struct http_reply *r, const char *key)
{
	if (r->request == NULL)
		return (NULL);
	return (MHD_lookup_connection_value(r->request, MHD_GET_ARGUMENT_KIND,
	    key));
}

int
http_server_route(struct http_server *s, const char *path,
    http_handler_fn *fn, void *arg)
{
	if (s->nroutes == HTTP_MAX_ROUTES)
		return (-AS_EINVAL);
	s->routes[s->nroutes].path = xstrdup(path);
	s->routes[s->nroutes].fn = fn;
	s->routes[s->nroutes].arg = arg;
	s->nroutes++;
	return (0);
}

int
http_server_port(const struct http_server *s)
{
	return (s->port);
}

void
http_server_get_stats(const struct http_server *s, struct http_stats *st)
{
	*st = s->stats;
}

void
http_server_free(struct http_server *s)
{
	size_t	 i;

	if (s == NULL)
		return;
	ev_io_stop(s->loop, &s->io);
	ev_timer_stop(s->loop, &s->timer);
	ev_prepare_stop(s->loop, &s->prepare);
	/* Stopping closes every connection; each CLOSED frees its state. */
	MHD_stop_daemon(s->mhd);
	for (i = 0; i < s->nroutes; i++)
		free(s->routes[i].path);
	free(s);
}
