/*
 * consumer.c: the registry of consumers (consumer.h), one alphabetical
 * array found by source type (each consumer's name is its scaler type's)
 * and, for rabbitmq, by address scheme: only AMQP can consume; the
 * management API (http://, https://) can only be read.
 */
#include <stdlib.h>
#include <string.h>

#include "agentscaler/scalers/consumer.h"

static const struct consumer_type *const consumer_types[] = {
	&consumer_type_rabbitmq,
	&consumer_type_redis_list,
	&consumer_type_redis_stream,
	NULL
};

const struct consumer_type *
consumer_type_find(const char *source_type, const char *address)
{
	size_t	 i;

	if (source_type == NULL)
		return (NULL);
	for (i = 0; consumer_types[i] != NULL; i++)
		if (strcmp(source_type, consumer_types[i]->name) == 0)
			break;
	if (consumer_types[i] == &consumer_type_rabbitmq &&
	    (address == NULL || (strncmp(address, "amqp://", 7) != 0 &&
	    strncmp(address, "amqps://", 8) != 0)))
		return (NULL);
	return (consumer_types[i]);
}
