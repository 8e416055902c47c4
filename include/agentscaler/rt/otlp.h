/*
 * otlp.h: the OTLP/HTTP JSON trace exporter (issue 19): finished spans go
 * into a bounded ring (trace.h) and leave it in batches, POSTed to
 * <endpoint>/v1/traces through the HTTP client engine (httpc.h) on the
 * caller's loop.  Nothing here blocks: a batch is sent when batch_size
 * spans wait or every interval seconds, one request at a time; a span
 * that finds the ring full is dropped, and so is a batch the collector
 * refused or never answered; both are counted (otlp_stats()).
 *
 * Ownership: otlp_new() copies its options and strings; spans are copied.
 */
#ifndef AGENTSCALER_OTLP_H
#define AGENTSCALER_OTLP_H

#include <stddef.h>
#include <stdint.h>

#include "agentscaler/rt/trace.h"

struct ev_loop;
struct otlp;

struct otlp_options {
	/* http(s)://host:port[/prefix]; a trailing /v1/traces is taken off. */
	const char	*endpoint;
	size_t		 ring;		/* spans kept at most; default 2048 */
	size_t		 batch;		/* spans per request; default 256 */
	double		 interval;	/* s between sends; default 2 */
	double		 timeout;	/* s per attempt; default 5 */
	/* service.name and the like; copied. */
	const struct trace_resource *resource;
	size_t		 nresource;
};

struct otlp_stats {
	uint64_t	 exported;	/* spans the collector took */
	uint64_t	 dropped_full;	/* spans that found the ring full */
	uint64_t	 dropped_failed;	/* spans of failed requests */
	uint64_t	 pending;	/* spans in the ring */
};

/* Returns an exporter, or NULL with the reason in err (a bad URL). */
struct otlp	*otlp_new(struct ev_loop *, const struct otlp_options *,
		    char *err, size_t errlen);
/*
 * Called once a flush (otlp_flush()) ended: the ring is empty and no
 * request is in flight, whether the collector took the spans or not.
 */
typedef void	 otlp_flushed_fn(void *arg);
/*
 * For a clean stop: sends what the ring holds now without waiting for the
 * interval, batch after batch (one request at a time), and calls done(arg)
 * once when the last one ended.  Returns 1 when done will be called (never
 * before this returns), 0 when there was nothing to send nor in flight (o
 * NULL too).  Failures are counted and logged as for any export; spans
 * emitted meanwhile go with it.  otlp_free() before the end drops the
 * rest; done is not called then.
 */
int		 otlp_flush(struct otlp *, otlp_flushed_fn *done, void *arg);
/* Cancels the request in flight (its spans count as dropped), frees. */
void		 otlp_free(struct otlp *);
/* Queues a finished span; a NULL exporter does nothing. */
void		 otlp_emit(struct otlp *, const struct trace_span *);
void		 otlp_stats(const struct otlp *, struct otlp_stats *);

#endif
