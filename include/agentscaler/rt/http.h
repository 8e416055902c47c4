/*
 * http.h: the small HTTP server behind /metrics, /healthz and /readyz, and
 * behind /status and /explain on the admin address, libmicrohttpd with
 * external epoll polling on the caller's libev loop
 * (ref/c-event-loop-patterns.md section 6), so handlers run on the loop
 * thread and read scheduler state directly.
 *
 * Bounds: at most HTTP_MAX_CONNS connections are kept open; each has
 * HTTP_REQUEST_SECONDS from its opening or its last answer to complete a
 * request, else it is closed; a new connection beyond the limit closes the
 * open one nearest its deadline rather than being refused, so a probe gets
 * through idle and slow clients.
 *
 * Ownership: a handler returns a body it allocated with malloc (x*alloc);
 * the server frees it after sending.
 */
#ifndef AGENTSCALER_HTTP_H
#define AGENTSCALER_HTTP_H

#include <stddef.h>

#include <stdint.h>

struct ev_loop;
struct http_server;

#define HTTP_MAX_CONNS		64
#define HTTP_REQUEST_SECONDS	10

/* Connection counters of one server (http_server_get_stats()). */
struct http_stats {
	uint64_t	 open;		/* now, shut-down ones excluded */
	uint64_t	 accepted;
	uint64_t	 evicted;	/* closed for a newcomer at the limit */
	uint64_t	 expired;	/* closed at their deadline */
};

struct http_reply {
	void		*request;	/* set by the server, for http_query() */
	int		 status;	/* 200 unless set */
	const char	*content_type;	/* static string */
	char		*body;		/* malloc'd; the server frees it */
	size_t		 len;
};

typedef void	 http_handler_fn(void *arg, struct http_reply *);

/*
 * Parses "host:port" or "[v6]:port" and listens there.  Returns the server
 * or NULL with the reason in err.
 */
struct http_server *http_server_new(struct ev_loop *, const char *addr,
	    char *err, size_t errlen);
/* Adds an exact-path GET route; at most 16. Returns 0 or -AS_EINVAL. */
int	 http_server_route(struct http_server *, const char *path,
	    http_handler_fn *, void *arg);
/*
 * A query-string argument of the request being answered (URL-decoded), or
 * NULL; borrowed for the handler's call.
 */
const char *http_query(const struct http_reply *, const char *key);
/* The port actually bound (useful with port 0). */
int	 http_server_port(const struct http_server *);
/* Copies the connection counters into the caller's struct. */
void	 http_server_get_stats(const struct http_server *,
	    struct http_stats *);
void	 http_server_free(struct http_server *);

#endif
