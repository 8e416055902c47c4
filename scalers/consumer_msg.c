/*
 * consumer_msg.c: what every consumer (consumer.h) shares.
 */
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/consumer.h"

struct consumer_msg *
consumer_msg_new(const char *p, size_t len, size_t max_bytes)
{
	struct consumer_msg *m = xcalloc(1, sizeof *m);

	m->size = len;
	if (max_bytes > 0 && len > max_bytes) {
		m->truncated = 1;
		as_sha256(p, len, m->sha256);
		if (len > CONSUMER_PREFIX_BYTES)
			len = CONSUMER_PREFIX_BYTES;
	}
	m->body = xmalloc(len + 1);
	if (len > 0)
		memcpy(m->body, p, len);
	m->body[len] = '\0';
	m->len = len;
	m->received = as_mono_now();
	return (m);
}

void
consumer_msg_free(struct consumer_msg *m)
{
	if (m == NULL)
		return;
	free(m->body);
	free(m->priv);
	free(m);
}
