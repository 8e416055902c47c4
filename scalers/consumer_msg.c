/*
 * consumer_msg.c: what every consumer (consumer.h) shares.
 */
#include <stdlib.h>

#include "agentscaler/consumer.h"

void
consumer_msg_free(struct consumer_msg *m)
{
	if (m == NULL)
		return;
	free(m->body);
	free(m->priv);
	free(m);
}
