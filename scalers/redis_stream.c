/*
 * redis_stream.c: the "redis-stream" source: a stream read by one consumer
 * group.  ready is the group's lag (entries not yet delivered to any of its
 * consumers), in_flight its pending entries (delivered, not acknowledged).
 *
 * A poll pipelines, on the endpoint's one main connection (shared with
 * every Redis source on the server, scalers/redis_endpoint.c):
 *
 *	XLEN <stream>
 *	XINFO GROUPS <stream>		-> the group's lag
 *	XPENDING <stream> <group>	-> pending count, when counted
 *
 * Lag.  Redis 7 reports it per group, but as nil when it cannot compute it
 * cheaply: after XDEL or XTRIM removed entries the group has not read yet,
 * or after XGROUP CREATE/SETID at an arbitrary id; Redis 6 has no lag
 * field at all.  Then we count instead: XLEN when the group has delivered
 * nothing (last-delivered-id 0-0), else the entries after last-delivered-id
 * with XRANGE <stream> <next id> + COUNT 1000, a second round trip.  That
 * count is exact up to the cap; past it, ready reads 1000, a lower bound
 * (enough for all but the widest pools, and it costs the entries' bodies,
 * so the cap stays modest).  Either way ready never exceeds XLEN: lag can
 * count entries trimmed before delivery, which no worker will ever see.
 *
 * KEDA's redis-streams scaler (pkg/scalers/redis_streams_scaler.go) reads
 * lag the same way but treats a missing stream as 0 and a missing group as
 * XLEN; here both are errors (-AS_ENOTFOUND, naming the stream and group),
 * so that a typo in the config shows up as a source that is down rather
 * than as an idle queue.  Such errors are replies, not connection
 * failures: the shared connection stays.
 *
 * Push mode listens on __keyspace@<db>__:<stream> with the stream (t) and
 * generic (g) classes: XADD, XGROUP CREATE and DEL wake the pool.  XACK
 * raises no event, so pending shrinking is seen by the next poll.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "agentscaler/rt/common.h"
#include "redis_endpoint.h"
#include "agentscaler/scalers/scaler.h"

#define REDIS_STREAM_SCAN_CAP	1000	/* lag fallback: entries counted */

enum redis_stream_tag {
	REDIS_STREAM_TAG_XLEN,
	REDIS_STREAM_TAG_GROUPS,
	REDIS_STREAM_TAG_PENDING,
	REDIS_STREAM_TAG_RANGE
};

struct redis_stream_scaler {
	struct redis_endpoint_source rs;	/* first: the scaler base */
	char			*stream;
	char			*group;
	int			 count_in_flight;
};

struct redis_stream_poll {
	struct redis_endpoint_poll p;		/* first */
	long long		 xlen;
};

/* The fields of the group's entry in XINFO GROUPS that we use. */
struct redis_stream_group {
	const redisReply	*lag;		/* NULL when absent */
	const char		*last_id;
};

static int	 redis_stream_validate(const struct scaler_source *, char *,
		    size_t);
static struct scaler *redis_stream_create(struct ev_loop *,
		    const struct scaler_source *, char *, size_t);
static int	 redis_stream_poll(struct scaler *, scaler_done_fn *, void *);
static int	 redis_stream_subscribe(struct scaler *, scaler_wake_fn *,
		    void *);
static int	 redis_stream_pushing(const struct scaler *);
static void	 redis_stream_destroy(struct scaler *);

const struct scaler_type scaler_type_redis_stream = {
	.name = "redis-stream",
	.validate = redis_stream_validate,
	.create = redis_stream_create,
	.poll = redis_stream_poll,
	.subscribe = redis_stream_subscribe,
	.pushing = redis_stream_pushing,
	.destroy = redis_stream_destroy,
};

static int
redis_stream_validate(const struct scaler_source *src, char *err,
    size_t errlen)
{
	int	 rc;

	if ((rc = redis_endpoint_validate("redis-stream", src, err,
	    errlen)) != 0)
		return (rc);
	if (src->queue == NULL || *src->queue == '\0') {
		snprintf(err, errlen, "redis-stream needs a queue (the "
		    "stream key)");
		return (-AS_EINVAL);
	}
	if (src->consumer_group == NULL || *src->consumer_group == '\0') {
		snprintf(err, errlen, "redis-stream needs a consumerGroup");
		return (-AS_EINVAL);
	}
	if (src->processing != NULL) {
		snprintf(err, errlen, "processingList is for redis-list; a "
		    "stream's in-flight work is its group's pending entries");
		return (-AS_EINVAL);
	}
	return (0);
}

static struct scaler *
redis_stream_create(struct ev_loop *loop, const struct scaler_source *src,
    char *err, size_t errlen)
{
	struct redis_stream_scaler *s;

	if (redis_stream_validate(src, err, errlen) != 0)
		return (NULL);
	s = xcalloc(1, sizeof *s);
	if (redis_endpoint_source_init(&s->rs, &scaler_type_redis_stream,
	    loop, src, err, errlen) != 0) {
		free(s);
		return (NULL);
	}
	s->stream = xstrdup(src->queue);
	s->group = xstrdup(src->consumer_group);
	s->count_in_flight = src->count_in_flight != 0;
	return (&s->rs.base);
}

/*
 * Parses a stream id "<ms>-<seq>" and returns the id right after it in buf;
 * 0, 1 when nothing can follow, -1 when it does not parse.
 */
TESTABLE int	 redis_stream_next_id(const char *, char *, size_t);

TESTABLE int
redis_stream_next_id(const char *id, char *buf, size_t len)
{
	unsigned long long ms, seq;
	char		*end;

	if (id == NULL || *id < '0' || *id > '9')
		return (-1);
	errno = 0;
	ms = strtoull(id, &end, 10);
	if (errno != 0 || *end != '-' || end[1] < '0' || end[1] > '9')
		return (-1);
	seq = strtoull(end + 1, &end, 10);
	if (errno != 0 || *end != '\0')
		return (-1);
	if (seq < UINT64_MAX)
		snprintf(buf, len, "%llu-%llu", ms, seq + 1);
	else if (ms < UINT64_MAX)
		snprintf(buf, len, "%llu-0", ms + 1);
	else
		return (1);
	return (0);
}

/* Finds the group in an XINFO GROUPS reply; 0, or -1 when absent. */
static int
redis_stream_group_find(const redisReply *r, const char *group,
    struct redis_stream_group *g)
{
	const redisReply *e, *k, *v;
	size_t		 i, j, glen = strlen(group);
	int		 found;

	for (i = 0; i < r->elements; i++) {
		e = r->element[i];
		if (e->type != REDIS_REPLY_ARRAY)
			continue;
		memset(g, 0, sizeof *g);
		found = 0;
		for (j = 0; j + 1 < e->elements; j += 2) {
			k = e->element[j];
			v = e->element[j + 1];
			if (k->type != REDIS_REPLY_STRING &&
			    k->type != REDIS_REPLY_STATUS)
				continue;
			if (strcmp(k->str, "name") == 0)
				found = v->type == REDIS_REPLY_STRING &&
				    v->len == glen &&
				    memcmp(v->str, group, glen) == 0;
			else if (strcmp(k->str, "lag") == 0)
				g->lag = v;
			else if (strcmp(k->str, "last-delivered-id") == 0 &&
			    v->type == REDIS_REPLY_STRING)
				g->last_id = v->str;
		}
		if (found)
			return (0);
	}
	return (-1);
}

static void
redis_stream_not_found(struct redis_endpoint_poll *p, int no_stream)
{
	const struct redis_stream_scaler *s =
	    (const struct redis_stream_scaler *)p->src;

	if (no_stream)
		redis_endpoint_result_error(&p->res, -AS_ENOTFOUND, s->rs.cl.ep,
		    "stream %.40s does not exist (XGROUP CREATE %.40s %.40s 0 "
		    "MKSTREAM makes both)", s->stream, s->stream, s->group);
	else
		redis_endpoint_result_error(&p->res, -AS_ENOTFOUND, s->rs.cl.ep,
		    "stream %.40s has no consumer group %.40s", s->stream,
		    s->group);
}

/* XINFO GROUPS: the lag, or the count that stands in for it. */
static void
redis_stream_take_groups(struct redis_stream_poll *sp, const redisReply *r)
{
	struct redis_endpoint_poll *p = &sp->p;
	const struct redis_stream_scaler *s =
	    (const struct redis_stream_scaler *)p->src;
	struct redis_stream_group g;
	char		 next[48];
	int		 rc;

	if (r->type == REDIS_REPLY_ERROR) {
		if (strstr(r->str, "no such key") != NULL)
			redis_stream_not_found(p, 1);
		else
			redis_endpoint_result_error(&p->res,
			    redis_endpoint_reply_err(r->str), s->rs.cl.ep,
			    "XINFO GROUPS %.40s: %.100s", s->stream, r->str);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY) {
		redis_endpoint_result_error(&p->res, -AS_EPROTO, s->rs.cl.ep,
		    "XINFO GROUPS %.40s: unexpected reply type %d", s->stream,
		    r->type);
		return;
	}
	if (redis_stream_group_find(r, s->group, &g) != 0) {
		redis_stream_not_found(p, 0);
		return;
	}
	if (g.lag != NULL && g.lag->type == REDIS_REPLY_INTEGER &&
	    g.lag->integer >= 0) {
		p->res.ready = (double)(g.lag->integer < sp->xlen ?
		    g.lag->integer : sp->xlen);
		return;
	}
	/* No usable lag: count (see the top of the file). */
	if (g.last_id != NULL && strcmp(g.last_id, "0-0") == 0) {
		p->res.ready = (double)sp->xlen;
		return;
	}
	rc = redis_stream_next_id(g.last_id, next, sizeof next);
	if (rc < 0) {
		redis_endpoint_result_error(&p->res, -AS_EPROTO, s->rs.cl.ep,
		    "XINFO GROUPS %.40s: no usable last-delivered-id for "
		    "group %.40s", s->stream, s->group);
		return;
	}
	if (rc > 0) {
		p->res.ready = 0;
		return;
	}
	redis_endpoint_poll_command(p, REDIS_STREAM_TAG_RANGE,
	    "XRANGE %b %s + COUNT %d", s->stream, strlen(s->stream), next,
	    REDIS_STREAM_SCAN_CAP);
}

static void
redis_stream_take(struct redis_endpoint_poll *p, int tag,
    const redisReply *r)
{
	struct redis_stream_poll *sp = (struct redis_stream_poll *)p;
	const struct redis_stream_scaler *s =
	    (const struct redis_stream_scaler *)p->src;
	const char	*what;

	switch (tag) {
	case REDIS_STREAM_TAG_XLEN:
		what = "XLEN";
		if (r->type == REDIS_REPLY_INTEGER) {
			sp->xlen = r->integer;
			return;
		}
		break;
	case REDIS_STREAM_TAG_GROUPS:
		redis_stream_take_groups(sp, r);
		return;
	case REDIS_STREAM_TAG_PENDING:
		what = "XPENDING";
		if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
		    r->element[0]->type == REDIS_REPLY_INTEGER) {
			p->res.in_flight = (double)r->element[0]->integer;
			return;
		}
		if (r->type == REDIS_REPLY_ERROR &&
		    strncmp(r->str, "NOGROUP", 7) == 0) {
			redis_stream_not_found(p, 0);
			return;
		}
		break;
	case REDIS_STREAM_TAG_RANGE:
		what = "XRANGE";
		if (r->type == REDIS_REPLY_ARRAY) {
			p->res.ready = (double)((long long)r->elements <
			    sp->xlen ? (long long)r->elements : sp->xlen);
			return;
		}
		break;
	default:
		return;
	}
	if (r->type == REDIS_REPLY_ERROR)
		redis_endpoint_result_error(&p->res,
		    redis_endpoint_reply_err(r->str), s->rs.cl.ep,
		    "%s %.40s: %.100s", what, s->stream, r->str);
	else
		redis_endpoint_result_error(&p->res, -AS_EPROTO, s->rs.cl.ep,
		    "%s %.40s: unexpected reply type %d", what, s->stream,
		    r->type);
}

/*
 * Queues XLEN, XINFO GROUPS and (when in-flight work is counted) XPENDING
 * on the endpoint's shared connection.  While it is down the poll completes
 * on the next loop turn with the last cause.  Returns -AS_EAGAIN while a
 * poll is pending.
 */
static int
redis_stream_poll(struct scaler *base, scaler_done_fn *fn, void *arg)
{
	struct redis_stream_scaler *s = (struct redis_stream_scaler *)base;
	struct redis_endpoint_poll *p;
	size_t		 slen = strlen(s->stream);
	int		 rc;

	if ((rc = redis_endpoint_poll_start(&s->rs,
	    sizeof(struct redis_stream_poll), redis_stream_take, fn, arg,
	    &p)) != 0)
		return (rc);
	if (redis_endpoint_poll_command(p, REDIS_STREAM_TAG_XLEN, "XLEN %b",
	    s->stream, slen) == 0 &&
	    redis_endpoint_poll_command(p, REDIS_STREAM_TAG_GROUPS,
	    "XINFO GROUPS %b", s->stream, slen) == 0 && s->count_in_flight)
		redis_endpoint_poll_command(p, REDIS_STREAM_TAG_PENDING,
		    "XPENDING %b %b", s->stream, slen, s->group,
		    strlen(s->group));
	redis_endpoint_poll_sent(p);
	return (0);
}

static int
redis_stream_subscribe(struct scaler *base, scaler_wake_fn *fn, void *arg)
{
	struct redis_stream_scaler *s = (struct redis_stream_scaler *)base;

	return (redis_endpoint_source_subscribe(&s->rs, s->stream,
	    REDIS_ENDPOINT_EV_STREAM, fn, arg));
}

static int
redis_stream_pushing(const struct scaler *base)
{
	const struct redis_stream_scaler *s =
	    (const struct redis_stream_scaler *)base;

	return (redis_endpoint_source_pushing(&s->rs));
}

/* A pending poll completes with -AS_ECANCELED before this returns. */
static void
redis_stream_destroy(struct scaler *base)
{
	struct redis_stream_scaler *s = (struct redis_stream_scaler *)base;

	redis_endpoint_source_fini(&s->rs);
	free(s->stream);
	free(s->group);
	free(s);
}
