/*
 * results.c: the results publisher (agentscaler/scalers/results.h) on a
 * Redis endpoint client (scalers/redis_endpoint.h).  One command per
 * Result; the endpoint pipelines it with every other user of the server,
 * and tells a connection that is down by failing the command, which the
 * caller sends again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/results.h"
#include "redis_endpoint.h"

struct results {
	struct redis_endpoint_client	 cl;
	char				*key;
	int				 stream;
};

struct results_op {
	results_done_fn	*fn;
	void		*arg;
};

struct results *
results_new(struct ev_loop *loop, const struct scaler_source *src, char *err,
    size_t errlen)
{
	struct results	*r;
	int		 stream;

	if (src->type == NULL || (strcmp(src->type, "redis-list") != 0 &&
	    strcmp(src->type, "redis-stream") != 0)) {
		snprintf(err, errlen, "results: type %s is not supported "
		    "(redis-list, redis-stream)", src->type != NULL ?
		    src->type : "(none)");
		return (NULL);
	}
	stream = strcmp(src->type, "redis-stream") == 0;
	if (redis_endpoint_validate(src->type, src, err, errlen) != 0)
		return (NULL);
	if (src->queue == NULL || src->queue[0] == '\0') {
		snprintf(err, errlen, "results: no queue (the %s key)",
		    stream ? "stream" : "list");
		return (NULL);
	}
	r = xcalloc(1, sizeof *r);
	if (redis_endpoint_client_init(&r->cl, loop, src, err, errlen) != 0) {
		free(r);
		return (NULL);
	}
	r->key = xstrdup(src->queue);
	r->stream = stream;
	return (r);
}

void
results_free(struct results *r)
{
	if (r == NULL)
		return;
	redis_endpoint_client_fini(&r->cl);
	free(r->key);
	free(r);
}

static void
results_reply(int err, const struct redisReply *reply, const char *errmsg,
    void *arg)
{
	struct results_op *op = arg;
	char		 msg[256];

	if (err == 0 && reply->type == REDIS_REPLY_ERROR) {
		snprintf(msg, sizeof msg, "redis: %s", reply->str);
		op->fn(-AS_EPROTO, msg, op->arg);
	} else
		op->fn(err, err != 0 ? errmsg : "", op->arg);
	free(op);
}

int
results_send(struct results *r, const char *id, const char *body, size_t len,
    results_done_fn *fn, void *arg)
{
	struct results_op *op;
	int		 rc;

	if (r == NULL || id == NULL || body == NULL || fn == NULL)
		return (-AS_EINVAL);
	op = xcalloc(1, sizeof *op);
	op->fn = fn;
	op->arg = arg;
	if (r->stream)
		rc = redis_endpoint_command(&r->cl, results_reply, op,
		    "XADD %s * id %s result %b", r->key, id, body, len);
	else
		rc = redis_endpoint_command(&r->cl, results_reply, op,
		    "LPUSH %s %b", r->key, body, len);
	if (rc != 0)
		free(op);
	return (rc);
}
