/*
 * trace.h: spans and their OTLP/HTTP JSON encoding (issue 19), pure: no
 * I/O, no clock (times are passed in), so tests/check_trace.c checks ids,
 * parents, links, attributes, batching and drop counting directly.  The
 * exporter that posts the batches (otlp.h) is built on it.
 *
 * A span is a fixed-size value (struct trace_span: at most TRACE_MAX_ATTRS
 * attributes and one link), so that a ring of N spans (struct trace_ring)
 * is all the memory the traces of a daemon take, whatever the collector
 * does: a span finished while the ring is full is dropped and counted.
 *
 * The encoding is the protobuf-JSON mapping of
 * opentelemetry/proto/collector/trace/v1 ExportTraceServiceRequest as the
 * OTLP specification gives it for OTLP/HTTP JSON (docs/specs/otlp.md,
 * "JSON Protobuf Encoding"): traceId and spanId as lowercase hex (not
 * base64), enums as integers, 64-bit integers as decimal strings.
 *
 * Ownership: everything is copied in; trace_otlp_json() returns a new
 * string the caller frees.
 */
#ifndef AGENTSCALER_TRACE_H
#define AGENTSCALER_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_MAX_ATTRS	12
#define TRACE_NAME_MAX	48
#define TRACE_KEY_MAX	40
#define TRACE_VAL_MAX	160

/* OTLP Span.SpanKind values. */
enum trace_kind {
	TRACE_KIND_INTERNAL = 1, TRACE_KIND_SERVER = 2, TRACE_KIND_CLIENT = 3,
	TRACE_KIND_PRODUCER = 4, TRACE_KIND_CONSUMER = 5
};

/* OTLP Status.StatusCode values. */
enum trace_status { TRACE_UNSET = 0, TRACE_OK = 1, TRACE_ERROR = 2 };

struct trace_ctx {
	uint8_t		 trace_id[16];
	uint8_t		 span_id[8];
};

struct trace_attr {
	char		 key[TRACE_KEY_MAX];
	int		 is_int;
	long long	 i;
	char		 s[TRACE_VAL_MAX];	/* cut to fit */
};

struct trace_span {
	struct trace_ctx	 ctx;
	uint8_t			 parent_id[8];	/* all zero: a root */
	char			 name[TRACE_NAME_MAX];
	enum trace_kind		 kind;
	uint64_t		 start_ns, end_ns;	/* Unix nanoseconds */
	enum trace_status	 status;
	char			 status_msg[TRACE_VAL_MAX];
	struct trace_attr	 attrs[TRACE_MAX_ATTRS];
	size_t			 nattrs;
	int			 has_link;
	struct trace_ctx	 link;
	char			 link_type[24];	/* its attribute; "" none */
};

/*
 * Parses a W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>") into ctx.
 * Returns 0, or -AS_EINVAL for anything else (all-zero ids included).
 */
int	 trace_parse_traceparent(const char *, struct trace_ctx *);
/* Whether the id (n bytes) is all zero. */
int	 trace_id_zero(const uint8_t *, size_t n);
/* Fills n bytes with a random, non-zero id (getrandom(2)). */
void	 trace_new_id(uint8_t *, size_t n);

/*
 * Adds a string (or integer) attribute to s; a key already there is
 * replaced; past TRACE_MAX_ATTRS it is left out.  Values are cut to fit.
 */
void	 trace_span_str(struct trace_span *, const char *key, const char *);
void	 trace_span_int(struct trace_span *, const char *key, long long);

/* A bounded ring of finished spans, oldest first. */
struct trace_ring {
	struct trace_span	*v;
	size_t			 cap, head, n;
	uint64_t		 dropped;	/* pushed while full */
};

/* cap >= 1 spans; freed with trace_ring_fini(). */
void	 trace_ring_init(struct trace_ring *, size_t cap);
void	 trace_ring_fini(struct trace_ring *);
/* Copies s in; returns 0, or -AS_EAGAIN (counted in dropped) when full. */
int	 trace_ring_push(struct trace_ring *, const struct trace_span *);
/*
 * Moves the oldest min(max, n) spans out into out (an array of max);
 * returns how many.
 */
size_t	 trace_ring_take(struct trace_ring *, struct trace_span *out,
	    size_t max);

/* A resource attribute (service.name, k8s.namespace.name, ...). */
struct trace_resource {
	const char	*key;
	const char	*value;
};

/*
 * The ExportTraceServiceRequest of n spans under one resource (nres
 * attributes) and one instrumentation scope, as a new JSON string.
 */
char	*trace_otlp_json(const struct trace_resource *, size_t nres,
	    const char *scope, const char *scope_version,
	    const struct trace_span *, size_t n);

#endif
