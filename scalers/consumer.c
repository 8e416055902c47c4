/*
 * consumer.c: the registry of consumers (consumer.h), by source type and,
 * for rabbitmq, by address scheme: only AMQP can consume; the management
 * API (http://, https://) can only be read.
 */
#include <stdlib.h>
#include <string.h>

#include "agentscaler/scalers/consumer.h"

const struct consumer_type *
consumer_type_find(const char *source_type, const char *address)
{
	if (source_type == NULL)
		return (NULL);
	if (strcmp(source_type, "redis-list") == 0)
		return (&consumer_type_redis_list);
	if (strcmp(source_type, "redis-stream") == 0)
		return (&consumer_type_redis_stream);
	if (strcmp(source_type, "rabbitmq") == 0) {
		if (address == NULL || (strncmp(address, "amqp://", 7) != 0 &&
		    strncmp(address, "amqps://", 8) != 0))
			return (NULL);
		return (&consumer_type_rabbitmq);
	}
	return (NULL);
}
