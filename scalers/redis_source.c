/*
 * redis_source.c: the base every Redis source embeds (struct
 * redis_endpoint_source, redis_endpoint.h) and its polls: the poll
 * lifecycle of scaler.h (completion exactly once, never before poll()
 * returns, -AS_ECANCELED on destroy) on top of an endpoint client.  A
 * poll's commands go straight onto the endpoint's main connection
 * (scalers/redis_conn.c), pipelined with every other user's; each reply
 * goes to the source's take function, and the last completes the poll.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/scaler.h"
#include "redis_conn.h"
#include "redis_endpoint.h"
#include "redis_ep.h"
#include "scaler_later.h"

/* One command of a poll; the privdata of its hiredis callback. */
struct redis_endpoint_cmd {
	struct redis_endpoint_poll *p;
	int			 tag;
};

static int	 redis_endpoint_poll_queued(struct redis_endpoint_poll *,
		    struct redis_endpoint_cmd *, int);

static void
redis_endpoint_source_woken(struct redis_endpoint_client *cl, void *arg)
{
	struct redis_endpoint_source *s = arg;

	(void)cl;
	s->wake_fn(&s->base, s->wake_arg);	/* may destroy s */
}

int
redis_endpoint_source_init(struct redis_endpoint_source *s,
    const struct scaler_type *type, struct ev_loop *loop,
    const struct scaler_source *src, char *err, size_t errlen)
{
	int	 rc;

	if ((rc = redis_endpoint_client_init(&s->cl, loop, src, err,
	    errlen)) != 0)
		return (rc);
	s->base.type = type;
	scaler_later_init(&s->later, loop, &s->base);
	return (0);
}

void
redis_endpoint_source_fini(struct redis_endpoint_source *s)
{
	struct scaler_result res;
	scaler_done_fn	*fn;
	void		*arg;

	if (s->cl.ep == NULL)
		return;
	fn = scaler_later_cancel(&s->later, &arg);
	if (s->poll != NULL) {
		s->poll->src = NULL;
		s->poll = NULL;
	}
	memset(&res, 0, sizeof res);
	redis_endpoint_result_error(&res, -AS_ECANCELED, s->cl.ep, "poll "
	    "canceled: source destroyed");
	redis_endpoint_client_fini(&s->cl);
	if (fn != NULL)
		fn(&s->base, &res, arg);
}

int
redis_endpoint_poll_start(struct redis_endpoint_source *s, size_t size,
    redis_endpoint_take_fn *take, scaler_done_fn *fn, void *arg,
    struct redis_endpoint_poll **pp)
{
	struct redis_endpoint_poll *p;
	char		 cause[160];
	int		 rc;

	*pp = NULL;
	if (take == NULL || size < sizeof *p)
		return (-AS_EINVAL);
	if ((rc = scaler_later_start(&s->later, fn, arg)) != 0)
		return (rc);
	p = xcalloc(1, size);
	p->src = s;
	p->take = take;
	p->outstanding = 1;		/* held until poll_sent() */
	/* The replies are then skipped: the result keeps this error. */
	if (s->cl.keyspace == SCALER_KEYSPACE_REQUIRE &&
	    redis_endpoint_client_push_refused(&s->cl, cause, sizeof cause))
		redis_endpoint_result_error(&p->res, -AS_EPROTO, s->cl.ep,
		    "keyspaceNotifications is require, and the server's "
		    "notify-keyspace-events lacks what this source needs: %s",
		    cause);
	s->poll = p;
	*pp = p;
	return (0);
}

/* A NULL reply: the context went away; say why, from the endpoint. */
static void
redis_endpoint_poll_lost(struct redis_endpoint_poll *p)
{
	const struct redis_conn *c;

	if (p->src == NULL || p->res.error != 0)
		return;
	c = &p->src->cl.ep->main;
	redis_endpoint_result_error(&p->res, redis_conn_err(c), p->src->cl.ep,
	    "%s", redis_conn_cause(c, "connection lost"));
}

/* The last reply is in: complete (from a hiredis callback). */
static void
redis_endpoint_poll_finish(struct redis_endpoint_poll *p)
{
	struct redis_endpoint_source *s = p->src;
	struct scaler_result res = p->res;

	free(p);
	if (s == NULL)
		return;		/* destroy() completed it already */
	s->poll = NULL;
	scaler_later_complete(&s->later, &res);	/* may destroy s */
}

static void
redis_endpoint_cmd_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_conn *c = ac->data;
	struct redis_endpoint_cmd *cmd = privdata;
	struct redis_endpoint_poll *p = cmd->p;
	int		 tag = cmd->tag;

	free(cmd);
	if (r == NULL) {
		/* data still set: hiredis is freeing on its own. */
		if (c != NULL)
			redis_conn_lost(c, -AS_ECONN, ac->c.errstr, 1);
		redis_endpoint_poll_lost(p);
	} else {
		if (c != NULL)
			redis_conn_replied(c);
		if (p->src != NULL && p->res.error == 0)
			p->take(p, tag, r);
	}
	if (--p->outstanding == 0)
		redis_endpoint_poll_finish(p);
}

int
redis_endpoint_poll_command(struct redis_endpoint_poll *p, int tag,
    const char *fmt, ...)
{
	struct redis_endpoint_source *s = p->src;
	struct redis_conn *c = &s->cl.ep->main;
	struct redis_endpoint_cmd *cmd;
	va_list		 ap;
	int		 rc;

	cmd = xmalloc(sizeof *cmd);
	cmd->p = p;
	cmd->tag = tag;
	va_start(ap, fmt);
	rc = redis_conn_commandv(c, redis_endpoint_cmd_cb, cmd, fmt, ap);
	va_end(ap);
	return (redis_endpoint_poll_queued(p, cmd, rc));
}

void
redis_endpoint_fmt_set(struct redis_endpoint_fmt *f, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	redis_endpoint_fmt_clear(f);
	va_start(ap, fmt);
	n = redisvFormatCommand(&f->cmd, fmt, ap);
	va_end(ap);
	if (n < 0) {
		/* hiredis fails here only for want of memory: as xmalloc. */
		fprintf(stderr, "agentscaler: out of memory formatting a "
		    "Redis command\n");
		abort();
	}
	f->len = (size_t)n;
}

void
redis_endpoint_fmt_clear(struct redis_endpoint_fmt *f)
{
	if (f->cmd != NULL)
		redisFreeCommand(f->cmd);
	f->cmd = NULL;
	f->len = 0;
}

int
redis_endpoint_poll_formatted(struct redis_endpoint_poll *p, int tag,
    const struct redis_endpoint_fmt *f)
{
	struct redis_endpoint_cmd *cmd;

	cmd = xmalloc(sizeof *cmd);
	cmd->p = p;
	cmd->tag = tag;
	return (redis_endpoint_poll_queued(p, cmd, redis_conn_formatted(
	    &p->src->cl.ep->main, redis_endpoint_cmd_cb, cmd, f->cmd,
	    f->len)));
}

/* The end of both: rc is the queueing's; cmd is freed when it failed. */
static int
redis_endpoint_poll_queued(struct redis_endpoint_poll *p,
    struct redis_endpoint_cmd *cmd, int rc)
{
	struct redis_endpoint_source *s = p->src;
	struct redis_conn *c = &s->cl.ep->main;

	if (rc == 0) {
		p->outstanding++;
		return (0);
	}
	free(cmd);
	rc = c->err == -AS_EAUTH ? -AS_EAUTH : -AS_ECONN;
	if (p->res.error == 0)
		redis_endpoint_result_error(&p->res, rc, s->cl.ep,
		    "not connected: %s", redis_conn_cause(c,
		    "connection closed"));
	/* A pending retry runs this turn: it keeps the cause it has. */
	if (c->ac == NULL && !ev_is_active(&c->retry_timer) &&
	    !ev_is_pending(&c->retry_timer))
		redis_conn_fail(c, -AS_ECONN, "not connected");
	return (rc);
}

void
redis_endpoint_poll_sent(struct redis_endpoint_poll *p)
{
	struct redis_endpoint_source *s = p->src;

	if (--p->outstanding > 0)
		return;
	/* Nothing went out: complete on a later turn, never before return. */
	s->later.res = p->res;
	s->poll = NULL;
	free(p);
	scaler_later_arm(&s->later, 0.);
}

int
redis_endpoint_source_subscribe(struct redis_endpoint_source *s,
    const char *key, unsigned classes, scaler_wake_fn *fn, void *arg)
{
	if (fn == NULL)
		return (-AS_EINVAL);
	s->wake_fn = fn;
	s->wake_arg = arg;
	return (redis_endpoint_client_subscribe(&s->cl, key, classes,
	    redis_endpoint_source_woken, s));
}

int
redis_endpoint_source_pushing(const struct scaler *base)
{
	const struct redis_endpoint_source *s =
	    (const struct redis_endpoint_source *)base;

	return (redis_endpoint_client_pushing(&s->cl));
}
