/*
 * redis_list.c: the "redis-list" source: LLEN of a list (plus LLEN of a
 * processing list when in-flight work is counted).
 *
 * Everything about connections lives in scalers/redis_endpoint.c: both LLENs
 * of a poll go out on the endpoint's one main connection, pipelined with
 * every other Redis source on the same server, and push mode listens on
 * __keyspace@<db>__:<queue> through the endpoint's one subscriber, with
 * the list (l) and generic (g) classes.  This file only says which commands
 * a poll sends and how their replies become a result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "agentscaler/rt/common.h"
#include "redis_endpoint.h"
#include "redis_list.h"
#include "agentscaler/scalers/scaler.h"

enum redis_list_tag {
	REDIS_LIST_TAG_QUEUE,
	REDIS_LIST_TAG_PROCESSING
};

struct redis_list_scaler {
	struct redis_endpoint_source rs;	/* first: the scaler base */
	char			*queue;
	char			*processing;	/* or NULL */
	struct redis_endpoint_fmt llen_queue;	/* LLEN queue */
	struct redis_endpoint_fmt llen_processing;	/* or empty */
};

static int	 redis_list_validate(const struct scaler_source *, char *,
		    size_t);
static struct scaler *redis_list_create(struct ev_loop *,
		    const struct scaler_source *, char *, size_t);
static int	 redis_list_poll(struct scaler *, scaler_done_fn *, void *);
static int	 redis_list_subscribe(struct scaler *, scaler_wake_fn *,
		    void *);
static void	 redis_list_destroy(struct scaler *);

const struct scaler_type scaler_type_redis_list = {
	.name = "redis-list",
	.validate = redis_list_validate,
	.create = redis_list_create,
	.poll = redis_list_poll,
	.subscribe = redis_list_subscribe,
	.pushing = redis_endpoint_source_pushing,
	.destroy = redis_list_destroy,
};

int
redis_list_parse_address(const char *url, struct redis_addr *out, char *err,
    size_t errlen)
{
	return (redis_endpoint_parse_address(url, out, err, errlen));
}

static int
redis_list_validate(const struct scaler_source *src, char *err, size_t errlen)
{
	int	 rc;

	if ((rc = redis_endpoint_validate("redis-list", src, err,
	    errlen)) != 0)
		return (rc);
	if (src->queue == NULL || *src->queue == '\0') {
		snprintf(err, errlen, "redis-list needs a queue (list key)");
		return (-AS_EINVAL);
	}
	if (src->processing != NULL && *src->processing == '\0') {
		snprintf(err, errlen, "the processing list name is empty");
		return (-AS_EINVAL);
	}
	return (0);
}

static struct scaler *
redis_list_create(struct ev_loop *loop, const struct scaler_source *src,
    char *err, size_t errlen)
{
	struct redis_list_scaler *s;

	if (redis_list_validate(src, err, errlen) != 0)
		return (NULL);
	s = xcalloc(1, sizeof *s);
	if (redis_endpoint_source_init(&s->rs, &scaler_type_redis_list, loop,
	    src, err, errlen) != 0) {
		free(s);
		return (NULL);
	}
	s->queue = xstrdup(src->queue);
	redis_endpoint_fmt_set(&s->llen_queue, "LLEN %b", s->queue,
	    strlen(s->queue));
	if (src->count_in_flight && src->processing != NULL) {
		s->processing = xstrdup(src->processing);
		redis_endpoint_fmt_set(&s->llen_processing, "LLEN %b",
		    s->processing, strlen(s->processing));
	}
	return (&s->rs.base);
}

/* An LLEN reply: the length, or an error naming the key. */
static void
redis_list_take(struct redis_endpoint_poll *p, int tag,
    const redisReply *reply)
{
	const struct redis_list_scaler *s =
	    (const struct redis_list_scaler *)p->src;
	const char	*key;

	key = tag == REDIS_LIST_TAG_QUEUE ? s->queue : s->processing;
	if (reply->type == REDIS_REPLY_INTEGER) {
		if (tag == REDIS_LIST_TAG_QUEUE)
			p->res.ready = (double)reply->integer;
		else
			p->res.in_flight = (double)reply->integer;
	} else if (reply->type == REDIS_REPLY_ERROR)
		redis_endpoint_result_error(&p->res,
		    redis_endpoint_reply_err(reply->str), s->rs.cl.ep,
		    "LLEN %.40s: %.100s", key, reply->str);
	else
		redis_endpoint_result_error(&p->res, -AS_EPROTO, s->rs.cl.ep,
		    "LLEN %.40s: unexpected reply type %d", key, reply->type);
}

/*
 * Queues LLEN (and LLEN of the processing list) on the endpoint's shared
 * connection.  While it is down the poll completes on the next loop turn
 * with the last cause: -AS_EAUTH after an authentication failure,
 * -AS_ECONN otherwise.  Returns -AS_EAGAIN while a poll is pending.
 */
static int
redis_list_poll(struct scaler *base, scaler_done_fn *fn, void *arg)
{
	struct redis_list_scaler *s = (struct redis_list_scaler *)base;
	struct redis_endpoint_poll *p;
	int		 rc;

	if ((rc = redis_endpoint_poll_start(&s->rs, sizeof *p,
	    redis_list_take, fn, arg, &p)) != 0)
		return (rc);
	if (redis_endpoint_poll_formatted(p, REDIS_LIST_TAG_QUEUE,
	    &s->llen_queue) == 0 && s->processing != NULL)
		redis_endpoint_poll_formatted(p, REDIS_LIST_TAG_PROCESSING,
		    &s->llen_processing);
	redis_endpoint_poll_sent(p);
	return (0);
}

/*
 * Push mode: list commands raise class l, DEL and friends class g.  Returns
 * 0 even when the server later refuses CONFIG (the log says so and
 * pushing() stays 0).
 */
static int
redis_list_subscribe(struct scaler *base, scaler_wake_fn *fn, void *arg)
{
	struct redis_list_scaler *s = (struct redis_list_scaler *)base;

	return (redis_endpoint_source_subscribe(&s->rs, s->queue,
	    REDIS_ENDPOINT_EV_LIST, fn, arg));
}

/* A pending poll completes with -AS_ECANCELED before this returns. */
static void
redis_list_destroy(struct scaler *base)
{
	struct redis_list_scaler *s = (struct redis_list_scaler *)base;

	redis_endpoint_source_fini(&s->rs);
	redis_endpoint_fmt_clear(&s->llen_queue);
	redis_endpoint_fmt_clear(&s->llen_processing);
	free(s->queue);
	free(s->processing);
	free(s);
}
