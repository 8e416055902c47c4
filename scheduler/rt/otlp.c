/*
 * otlp.c: the OTLP/HTTP JSON exporter (otlp.h).  One libev timer sends
 * what the ring holds every interval; otlp_emit() sends at once when a
 * batch is full.  At most one request is in flight, so a slow collector
 * costs a full ring and counted drops, never memory or the loop's time.
 * The export request follows the OTLP specification's OTLP/HTTP section
 * (POST /v1/traces, Content-Type application/json); the batch sizes
 * mirror the SDK BatchSpanProcessor's knobs (maxQueueSize,
 * maxExportBatchSize, scheduledDelayMillis) in the OTel specification's
 * sdk.md, with smaller defaults.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/httpc.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/rt/otlp.h"

struct otlp {
	struct ev_loop		*loop;
	struct httpc		*hc;
	struct trace_ring	 ring;
	struct trace_span	*batch;		/* batch_max spans */
	size_t			 batch_max;
	double			 interval;
	ev_timer		 timer;
	struct httpc_req	*req;		/* in flight, or NULL */
	size_t			 req_n;		/* its spans */
	struct trace_resource	*res;
	size_t			 nres;
	uint64_t		 exported, failed;
	int			 warned;	/* collector down logged */
	otlp_flushed_fn		*flushed;	/* a flush waits, or NULL */
	void			*flushed_arg;
};

static void	 otlp_send(struct otlp *);

/*
 * A flush sends the next batch when none is in flight (one the client
 * refuses at once is counted and the next one tried), and ends when there
 * is nothing left to send nor to wait for.
 */
static void
otlp_flush_more(struct otlp *o)
{
	otlp_flushed_fn	*fn = o->flushed;

	while (o->req == NULL && o->ring.n > 0)
		otlp_send(o);
	if (fn == NULL || o->req != NULL)
		return;
	o->flushed = NULL;
	fn(o->flushed_arg);
}

static void
otlp_done(const struct httpc_response *r, void *arg)
{
	struct otlp	*o = arg;

	o->req = NULL;
	if (r->err == 0) {
		o->exported += o->req_n;
		if (o->warned)
			log_info("otlp", "the collector takes spans again");
		o->warned = 0;
	} else {
		o->failed += o->req_n;
		if (r->err != -AS_ECANCELED && !o->warned) {
			log_warn("otlp", "cannot export %zu spans, dropped: "
			    "%s", o->req_n, r->message);
			o->warned = 1;
		}
	}
	o->req_n = 0;
	if (r->err == -AS_ECANCELED)
		return;
	if (o->flushed != NULL)
		otlp_flush_more(o);
	else if (o->ring.n >= o->batch_max)
		otlp_send(o);
}

static void
otlp_send(struct otlp *o)
{
	char	*body;
	size_t	 n;

	if (o->req != NULL || o->ring.n == 0)
		return;
	n = trace_ring_take(&o->ring, o->batch, o->batch_max);
	body = trace_otlp_json(o->res, o->nres, "agentscaler", as_version,
	    o->batch, n);
	o->req_n = n;
	o->req = httpc_request(o->hc, "POST", "/v1/traces",
	    "application/json", body, otlp_done, o);
	free(body);
	if (o->req == NULL) {
		o->failed += n;
		o->req_n = 0;
	}
}

static void
otlp_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct otlp	*o = w->data;

	(void)loop;
	(void)revents;
	if (o->flushed != NULL)
		otlp_flush_more(o);
	else
		otlp_send(o);
}

struct otlp *
otlp_new(struct ev_loop *loop, const struct otlp_options *opt, char *err,
    size_t errlen)
{
	struct httpc_options	 ho;
	struct otlp		*o;
	char			*base;
	size_t			 i, len;

	base = xstrdup(opt->endpoint != NULL ? opt->endpoint : "");
	len = strlen(base);
	while (len > 0 && base[len - 1] == '/')
		base[--len] = '\0';
	if (len >= 10 && strcmp(base + len - 10, "/v1/traces") == 0)
		base[len - 10] = '\0';
	if (strncmp(base, "http://", 7) != 0 &&
	    strncmp(base, "https://", 8) != 0) {
		snprintf(err, errlen, "the OTLP endpoint must be an http(s) "
		    "URL, not \"%s\"", opt->endpoint != NULL ? opt->endpoint :
		    "");
		free(base);
		return (NULL);
	}
	memset(&ho, 0, sizeof ho);
	ho.base_url = base;
	ho.log_name = "otlp";
	ho.qps = 50;
	ho.burst = 10;
	ho.timeout = opt->timeout > 0 ? opt->timeout : 5;
	ho.connect_timeout = ho.timeout < 2 ? ho.timeout : 2;
	ho.max_retries = 1;
	ho.retry_cap = 1;
	ho.max_body = 1 << 20;
	o = xcalloc(1, sizeof *o);
	if ((o->hc = httpc_new(loop, &ho, err, errlen)) == NULL) {
		free(base);
		free(o);
		return (NULL);
	}
	free(base);
	o->loop = loop;
	trace_ring_init(&o->ring, opt->ring > 0 ? opt->ring : 2048);
	o->batch_max = opt->batch > 0 ? opt->batch : 256;
	if (o->batch_max > o->ring.cap)
		o->batch_max = o->ring.cap;
	o->batch = xcalloc(o->batch_max, sizeof *o->batch);
	o->nres = opt->nresource;
	o->res = xcalloc(o->nres + 1, sizeof *o->res);
	for (i = 0; i < o->nres; i++) {
		o->res[i].key = xstrdup(opt->resource[i].key);
		o->res[i].value = xstrdup(opt->resource[i].value != NULL ?
		    opt->resource[i].value : "");
	}
	o->interval = opt->interval > 0 ? opt->interval : 2;
	ev_timer_init(&o->timer, otlp_tick, o->interval, o->interval);
	o->timer.data = o;
	ev_timer_start(loop, &o->timer);
	ev_unref(loop);		/* the exporter alone keeps no loop alive */
	return (o);
}

int
otlp_flush(struct otlp *o, otlp_flushed_fn *done, void *arg)
{
	if (o == NULL || (o->req == NULL && o->ring.n == 0))
		return (0);
	/* A request in flight goes first; its end sends the rest. */
	while (o->req == NULL && o->ring.n > 0)
		otlp_send(o);
	o->flushed = done;
	o->flushed_arg = arg;
	if (o->req == NULL) {
		/* All refused at once: done on the loop, not in this call. */
		ev_feed_event(o->loop, &o->timer, EV_TIMER);
	}
	return (1);
}

void
otlp_free(struct otlp *o)
{
	size_t	 i;

	if (o == NULL)
		return;
	o->flushed = NULL;	/* its caller frees us: nothing to tell */
	ev_ref(o->loop);
	ev_timer_stop(o->loop, &o->timer);
	httpc_free(o->hc);	/* the request in flight completes */
	for (i = 0; i < o->nres; i++) {
		free((char *)o->res[i].key);
		free((char *)o->res[i].value);
	}
	free(o->res);
	free(o->batch);
	trace_ring_fini(&o->ring);
	free(o);
}

void
otlp_emit(struct otlp *o, const struct trace_span *s)
{
	if (o == NULL)
		return;
	(void)trace_ring_push(&o->ring, s);
	if (o->ring.n >= o->batch_max)
		otlp_send(o);
}

void
otlp_stats(const struct otlp *o, struct otlp_stats *st)
{
	memset(st, 0, sizeof *st);
	if (o == NULL)
		return;
	st->exported = o->exported;
	st->dropped_full = o->ring.dropped;
	st->dropped_failed = o->failed;
	st->pending = o->ring.n;
}
