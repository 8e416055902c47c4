/*
 * trace.c: the span model, its bounded ring and the OTLP/HTTP JSON encoder
 * (trace.h).  Pure but for trace_new_id(), which reads getrandom(2): no
 * clock, no I/O.  The field names and encodings follow the OTLP
 * specification's "JSON Protobuf Encoding" (opentelemetry-proto
 * docs/specification.md and opentelemetry/proto/trace/v1/trace.proto):
 * hex ids, integer enums, uint64 times as decimal strings.
 */
#include <sys/random.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/rt/trace.h"

static int
trace_unhex(const char *s, size_t n, uint8_t *out)
{
	size_t	 i;
	int	 hi, lo;

	for (i = 0; i < n; i++) {
		hi = s[2 * i];
		lo = s[2 * i + 1];
		hi = hi >= '0' && hi <= '9' ? hi - '0' :
		    hi >= 'a' && hi <= 'f' ? hi - 'a' + 10 : -1;
		lo = lo >= '0' && lo <= '9' ? lo - '0' :
		    lo >= 'a' && lo <= 'f' ? lo - 'a' + 10 : -1;
		if (hi < 0 || lo < 0)
			return (-AS_EINVAL);
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (0);
}

int
trace_id_zero(const uint8_t *id, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (id[i] != 0)
			return (0);
	return (1);
}

int
trace_parse_traceparent(const char *s, struct trace_ctx *ctx)
{
	uint8_t	 flags;

	/* W3C Trace Context: version-traceid-parentid-flags, 55 chars. */
	if (s == NULL || strlen(s) != 55 || s[2] != '-' || s[35] != '-' ||
	    s[52] != '-' || strncmp(s, "ff", 2) == 0)
		return (-AS_EINVAL);
	if (trace_unhex(s + 3, 16, ctx->trace_id) != 0 ||
	    trace_unhex(s + 36, 8, ctx->span_id) != 0 ||
	    trace_unhex(s + 53, 1, &flags) != 0 ||
	    trace_id_zero(ctx->trace_id, 16) || trace_id_zero(ctx->span_id, 8))
		return (-AS_EINVAL);
	return (0);
}

void
trace_new_id(uint8_t *id, size_t n)
{
	ssize_t	 got;
	size_t	 off;

	do {
		for (off = 0; off < n; off += (size_t)got) {
			got = getrandom(id + off, n - off, 0);
			if (got <= 0) {
				if (got < 0 && errno == EINTR) {
					got = 0;
					continue;
				}
				/* No entropy call: the jitter generator. */
				for (; off < n; off++)
					id[off] = (uint8_t)(as_random() * 256);
				break;
			}
		}
	} while (trace_id_zero(id, n));
}

static struct trace_attr *
trace_span_attr(struct trace_span *s, const char *key)
{
	size_t	 i;

	for (i = 0; i < s->nattrs; i++)
		if (strcmp(s->attrs[i].key, key) == 0)
			return (&s->attrs[i]);
	if (s->nattrs == TRACE_MAX_ATTRS)
		return (NULL);
	as_strlcpy(s->attrs[s->nattrs].key, key, TRACE_KEY_MAX);
	return (&s->attrs[s->nattrs++]);
}

void
trace_span_str(struct trace_span *s, const char *key, const char *v)
{
	struct trace_attr	*a;

	if ((a = trace_span_attr(s, key)) == NULL)
		return;
	a->is_int = 0;
	as_strlcpy_utf8(a->s, v != NULL ? v : "", sizeof a->s);
}

void
trace_span_int(struct trace_span *s, const char *key, long long v)
{
	struct trace_attr	*a;

	if ((a = trace_span_attr(s, key)) == NULL)
		return;
	a->is_int = 1;
	a->i = v;
}

void
trace_ring_init(struct trace_ring *r, size_t cap)
{
	memset(r, 0, sizeof *r);
	r->cap = cap > 0 ? cap : 1;
	r->v = xcalloc(r->cap, sizeof *r->v);
}

void
trace_ring_fini(struct trace_ring *r)
{
	free(r->v);
	memset(r, 0, sizeof *r);
}

int
trace_ring_push(struct trace_ring *r, const struct trace_span *s)
{
	if (r->n == r->cap) {
		r->dropped++;
		return (-AS_EAGAIN);
	}
	r->v[(r->head + r->n) % r->cap] = *s;
	r->n++;
	return (0);
}

size_t
trace_ring_take(struct trace_ring *r, struct trace_span *out, size_t max)
{
	size_t	 i, n;

	n = r->n < max ? r->n : max;
	for (i = 0; i < n; i++) {
		out[i] = r->v[r->head];
		r->head = (r->head + 1) % r->cap;
	}
	r->n -= n;
	if (r->n == 0)
		r->head = 0;
	return (n);
}

static void
trace_put_hex(cJSON *o, const char *key, const uint8_t *id, size_t n)
{
	char	 hex[33];

	as_hex(id, n, hex);
	cJSON_AddStringToObject(o, key, hex);
}

static void
trace_put_u64(cJSON *o, const char *key, uint64_t v)
{
	char	 num[24];

	snprintf(num, sizeof num, "%llu", (unsigned long long)v);
	cJSON_AddStringToObject(o, key, num);
}

/* An OTLP KeyValue with a string AnyValue, appended to the array a. */
static void
trace_put_kv(cJSON *a, const char *key, const char *v)
{
	cJSON	*kv, *val;

	kv = cJSON_CreateObject();
	cJSON_AddStringToObject(kv, "key", key);
	val = cJSON_AddObjectToObject(kv, "value");
	cJSON_AddStringToObject(val, "stringValue", v);
	cJSON_AddItemToArray(a, kv);
}

static cJSON *
trace_span_json(const struct trace_span *s)
{
	const struct trace_attr	*a;
	cJSON			*o, *attrs, *kv, *val, *links, *l, *st;
	char			 num[24];
	size_t			 i;

	o = cJSON_CreateObject();
	trace_put_hex(o, "traceId", s->ctx.trace_id, 16);
	trace_put_hex(o, "spanId", s->ctx.span_id, 8);
	if (!trace_id_zero(s->parent_id, 8))
		trace_put_hex(o, "parentSpanId", s->parent_id, 8);
	cJSON_AddStringToObject(o, "name", s->name);
	cJSON_AddNumberToObject(o, "kind", (double)s->kind);
	trace_put_u64(o, "startTimeUnixNano", s->start_ns);
	trace_put_u64(o, "endTimeUnixNano", s->end_ns);
	attrs = cJSON_AddArrayToObject(o, "attributes");
	for (i = 0; i < s->nattrs; i++) {
		a = &s->attrs[i];
		if (!a->is_int) {
			trace_put_kv(attrs, a->key, a->s);
			continue;
		}
		kv = cJSON_CreateObject();
		cJSON_AddStringToObject(kv, "key", a->key);
		val = cJSON_AddObjectToObject(kv, "value");
		snprintf(num, sizeof num, "%lld", a->i);
		cJSON_AddStringToObject(val, "intValue", num);
		cJSON_AddItemToArray(attrs, kv);
	}
	if (s->has_link) {
		links = cJSON_AddArrayToObject(o, "links");
		l = cJSON_CreateObject();
		trace_put_hex(l, "traceId", s->link.trace_id, 16);
		trace_put_hex(l, "spanId", s->link.span_id, 8);
		if (s->link_type[0] != '\0')
			trace_put_kv(cJSON_AddArrayToObject(l, "attributes"),
			    "agentscaler.link.type", s->link_type);
		cJSON_AddItemToArray(links, l);
	}
	st = cJSON_AddObjectToObject(o, "status");
	if (s->status != TRACE_UNSET)
		cJSON_AddNumberToObject(st, "code", (double)s->status);
	if (s->status == TRACE_ERROR && s->status_msg[0] != '\0')
		cJSON_AddStringToObject(st, "message", s->status_msg);
	return (o);
}

char *
trace_otlp_json(const struct trace_resource *res, size_t nres,
    const char *scope, const char *scope_version, const struct trace_span *v,
    size_t n)
{
	cJSON	*root, *rs, *r, *attrs, *ss, *sc, *spans;
	size_t	 i;

	root = cJSON_CreateObject();
	rs = cJSON_CreateObject();
	cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "resourceSpans"),
	    rs);
	r = cJSON_AddObjectToObject(rs, "resource");
	attrs = cJSON_AddArrayToObject(r, "attributes");
	for (i = 0; i < nres; i++)
		if (res[i].value != NULL && res[i].value[0] != '\0')
			trace_put_kv(attrs, res[i].key, res[i].value);
	ss = cJSON_CreateObject();
	cJSON_AddItemToArray(cJSON_AddArrayToObject(rs, "scopeSpans"), ss);
	sc = cJSON_AddObjectToObject(ss, "scope");
	cJSON_AddStringToObject(sc, "name", scope);
	if (scope_version != NULL)
		cJSON_AddStringToObject(sc, "version", scope_version);
	spans = cJSON_AddArrayToObject(ss, "spans");
	for (i = 0; i < n; i++)
		cJSON_AddItemToArray(spans, trace_span_json(&v[i]));
	return (as_json_print_free(root, NULL));
}
