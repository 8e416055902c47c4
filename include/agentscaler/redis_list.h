/*
 * redis_list.h: the parts of the redis-list source (scalers/redis_list.c)
 * that are useful outside its vtable: the pure address parser, which
 * configuration validation and the unit tests call directly.
 *
 * Ownership: the caller owns struct redis_addr; nothing here allocates.
 */
#ifndef AGENTSCALER_REDIS_LIST_H
#define AGENTSCALER_REDIS_LIST_H

#include <stddef.h>

struct redis_addr {
	char	 host[256];	/* name or address, IPv6 without brackets */
	int	 port;		/* 1..65535, 6379 when absent */
	int	 db;		/* 0 when absent */
};

/*
 * Parses "redis://host[:port][/db]" (IPv6 as "redis://[::1]:6379/2") into
 * *out.  Pure: no I/O, no name lookup.  Returns 0, or -AS_EINVAL with a
 * message in err for another scheme, inline credentials (refused, never
 * echoed), a bad host, port or database, or trailing garbage.
 */
int	 redis_list_parse_address(const char *url, struct redis_addr *out,
	    char *err, size_t errlen);

#endif
