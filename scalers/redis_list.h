/*
 * redis_list.h: the parts of the redis-list source (scalers/redis_list.c)
 * that are useful outside its vtable.  The address parser now lives with
 * the shared endpoints (redis_endpoint.h); the old name stays for callers.
 *
 * Ownership: the caller owns struct redis_addr; nothing here allocates.
 */
#ifndef AGENTSCALER_REDIS_LIST_H
#define AGENTSCALER_REDIS_LIST_H

#include <stddef.h>

#include "redis_endpoint.h"

/* The same as redis_endpoint_parse_address(). */
int	 redis_list_parse_address(const char *url, struct redis_addr *out,
	    char *err, size_t errlen);

#endif
