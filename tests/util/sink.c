/*
 * sink.c: the fake k8s_sink of sink.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "agentscaler/rt/common.h"
#include "sink.h"

static void	*tu_sink_send(void *, const char *, const char *, const char *,
		    const char *, k8s_done_fn *, void *);
static void	 tu_sink_cancel(void *, void *);

static void *
tu_sink_send(void *arg, const char *method, const char *path,
    const char *ctype, const char *body, k8s_done_fn *done, void *ctx)
{
	struct tu_sink		*s = arg;
	struct tu_sink_req	*r;

	if (s->refuse)
		return (NULL);
	ck_assert_int_lt(s->n, TU_SINK_MAX);
	r = &s->r[s->n++];
	r->method = xstrdup(method);
	r->path = xstrdup(path);
	r->ctype = xstrdup(ctype != NULL ? ctype : "");
	r->body = xstrdup(body != NULL ? body : "");
	r->done = done;
	r->ctx = ctx;
	r->pending = 1;
	return ((void *)(uintptr_t)s->n);	/* index + 1 */
}

static void
tu_sink_cancel(void *arg, void *req)
{
	struct tu_sink		*s = arg;
	struct tu_sink_req	*r = &s->r[(uintptr_t)req - 1];
	struct k8s_response	 resp;

	ck_assert(r->pending);
	r->pending = 0;
	memset(&resp, 0, sizeof resp);
	resp.err = -AS_ECANCELED;
	resp.body = "";
	resp.message = "cancelled";
	r->done(&resp, r->ctx);
}

void
tu_sink_init(struct tu_sink *s)
{
	memset(s, 0, sizeof *s);
	s->sink.send = tu_sink_send;
	s->sink.cancel = tu_sink_cancel;
	s->sink.arg = s;
}

void
tu_sink_reply(struct tu_sink *s, int i, long code, const char *body)
{
	struct tu_sink_req	*r;
	struct k8s_response	 resp;

	ck_assert_int_lt(i, s->n);
	r = &s->r[i];
	ck_assert(r->pending);
	r->pending = 0;
	memset(&resp, 0, sizeof resp);
	resp.code = code;
	resp.body = body != NULL ? body : "";
	resp.body_len = strlen(resp.body);
	resp.message = code >= 200 && code < 300 ? "" : "failed";
	resp.err = code >= 200 && code < 300 ? 0 : code == 404 ?
	    -AS_ENOTFOUND : code == 409 ? -AS_ECONFLICT : code >= 500 ?
	    -AS_ESERVER : -AS_EINVAL;
	r->done(&resp, r->ctx);
}

int
tu_sink_pending(const struct tu_sink *s)
{
	int	 i, n = 0;

	for (i = 0; i < s->n; i++)
		n += s->r[i].pending;
	return (n);
}

void
tu_sink_clear(struct tu_sink *s)
{
	int	 i;

	for (i = 0; i < s->n; i++) {
		free(s->r[i].method);
		free(s->r[i].path);
		free(s->r[i].ctype);
		free(s->r[i].body);
	}
	s->n = 0;
}
