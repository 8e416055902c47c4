/*
 * redis_addr.h: the Redis address and the checks every Redis source and
 * consumer shares (scalers/redis_addr.c): pure, no I/O.  The endpoints
 * (redis_endpoint.h) and connections (redis_conn.h) are built on it.
 *
 * Ownership: struct redis_addr is the caller's; nothing is kept.
 */
#ifndef AGENTSCALER_REDIS_ADDR_H
#define AGENTSCALER_REDIS_ADDR_H

#include <stddef.h>

#include "agentscaler/scalers/scaler.h"

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
 * Checks what every Redis source and consumer needs: an address that
 * parses, at most one password source, finite non-negative timeouts.  what
 * names the type in messages.  Returns 0 or -AS_EINVAL with a message in
 * err.
 */
int	 redis_endpoint_validate(const char *what,
	    const struct scaler_source *, char *err, size_t errlen);

/*
 * Maps an error reply's text to an as_err: -AS_EAUTH for NOAUTH, WRONGPASS
 * and NOPERM, -AS_EPROTO otherwise.
 */
int	 redis_endpoint_reply_err(const char *text);

#endif
