/*
 * check_trace.c: spans and their OTLP/HTTP JSON (rt/trace.h) and the
 * exporter (rt/otlp.h): traceparent parsing (table), ids, parent and link
 * encoding, attribute encoding and limits, the ring's bound and drop
 * count, batching over the wire to a small collector stand-in on the
 * test's loop (every request a valid ExportTraceServiceRequest of at most
 * batch spans, all spans delivered once), drops counted when the
 * collector is away (connection refused) or slow (never answers), and the
 * flush of a clean stop (the whole ring now, done told once).
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/rt/otlp.h"
#include "agentscaler/rt/trace.h"
#include "util/loop.h"
#include "util/testutil.h"

static const struct tp_row {
	const char	*in;
	int		 ok;
} tp_rows[] = {
	{ "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 1 },
	{ "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 1 },
	{ "00-00000000000000000000000000000000-00f067aa0ba902b7-01", 0 },
	{ "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", 0 },
	{ "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", 0 },
	{ "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0 },
	{ "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", 0 },
	{ "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0 },
	{ "", 0 },
};

START_TEST(test_traceparent)
{
	const struct tp_row	*r = &tp_rows[_i];
	struct trace_ctx	 c;
	char			 hex[33];

	ck_assert_int_eq(trace_parse_traceparent(r->in, &c) == 0, r->ok);
	if (!r->ok)
		return;
	as_hex(c.trace_id, 16, hex);
	ck_assert_str_eq(hex, "4bf92f3577b34da6a3ce929d0e0e4736");
	as_hex(c.span_id, 8, hex);
	ck_assert_str_eq(hex, "00f067aa0ba902b7");
}
END_TEST

START_TEST(test_ids)
{
	uint8_t	 a[16], b[16];

	trace_new_id(a, sizeof a);
	trace_new_id(b, sizeof b);
	ck_assert(!trace_id_zero(a, sizeof a));
	ck_assert(memcmp(a, b, sizeof a) != 0);
	memset(a, 0, sizeof a);
	ck_assert(trace_id_zero(a, sizeof a));
}
END_TEST

static void
mkspan(struct trace_span *s, const char *name, uint8_t seed)
{
	memset(s, 0, sizeof *s);
	memset(s->ctx.trace_id, 0xab, 16);
	memset(s->ctx.span_id, seed, 8);
	as_strlcpy(s->name, name, sizeof s->name);
	s->kind = TRACE_KIND_INTERNAL;
	s->start_ns = 1800000000000000000ULL;
	s->end_ns = s->start_ns + 1500000;
}

/* The attribute key's value object in the span's list, or NULL. */
static cJSON *
attr_of(cJSON *attrs, const char *key)
{
	cJSON	*kv;

	cJSON_ArrayForEach(kv, attrs)
		if (strcmp(as_json_str(kv, "key"), key) == 0)
			return (cJSON_GetObjectItem(kv, "value"));
	return (NULL);
}

START_TEST(test_encode)
{
	struct trace_resource	 res[] = { { "service.name", "agentscaler" },
	    { "k8s.namespace.name", "ns1" }, { "k8s.pod.name", "" } };
	struct trace_span	 v[2];
	cJSON			*doc, *rs, *ss, *spans, *s0, *s1, *l, *a;
	char			*json;

	mkspan(&v[0], "agentscaler.task", 1);
	trace_span_str(&v[0], "agentscaler.task.id", "t-1");
	trace_span_int(&v[0], "agentscaler.task.depth", 2);
	trace_span_str(&v[0], "agentscaler.task.id", "t-\"2\"");
	v[0].status = TRACE_ERROR;
	as_strlcpy(v[0].status_msg, "task.deadline", sizeof v[0].status_msg);
	mkspan(&v[1], "claim", 2);
	memset(v[1].parent_id, 1, 8);
	v[1].kind = TRACE_KIND_CLIENT;
	v[1].has_link = 1;
	memset(v[1].link.trace_id, 0xcd, 16);
	memset(v[1].link.span_id, 0x0e, 8);
	as_strlcpy(v[1].link_type, "parent_task", sizeof v[1].link_type);

	json = trace_otlp_json(res, AS_ARRAY_SIZE(res), "agentscaler", "1.0",
	    v, 2);
	doc = cJSON_Parse(json);
	ck_assert_ptr_nonnull(doc);
	rs = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "resourceSpans"), 0);
	a = cJSON_GetObjectItem(cJSON_GetObjectItem(rs, "resource"),
	    "attributes");
	/* An empty value (the pod, unknown) is left out. */
	ck_assert_int_eq(cJSON_GetArraySize(a), 2);
	ck_assert_str_eq(as_json_str(attr_of(a, "service.name"),
	    "stringValue"), "agentscaler");
	ss = cJSON_GetArrayItem(cJSON_GetObjectItem(rs, "scopeSpans"), 0);
	ck_assert_str_eq(as_json_str(cJSON_GetObjectItem(ss, "scope"),
	    "name"), "agentscaler");
	spans = cJSON_GetObjectItem(ss, "spans");
	ck_assert_int_eq(cJSON_GetArraySize(spans), 2);
	s0 = cJSON_GetArrayItem(spans, 0);
	s1 = cJSON_GetArrayItem(spans, 1);
	ck_assert_str_eq(as_json_str(s0, "traceId"),
	    "abababababababababababababababab");
	ck_assert_str_eq(as_json_str(s0, "spanId"), "0101010101010101");
	ck_assert_ptr_null(cJSON_GetObjectItem(s0, "parentSpanId"));
	ck_assert_str_eq(as_json_str(s0, "startTimeUnixNano"),
	    "1800000000000000000");
	ck_assert_str_eq(as_json_str(s0, "endTimeUnixNano"),
	    "1800000000001500000");
	ck_assert_int_eq(cJSON_GetObjectItem(s0, "kind")->valueint, 1);
	a = cJSON_GetObjectItem(s0, "attributes");
	ck_assert_int_eq(cJSON_GetArraySize(a), 2);	/* replaced, not added */
	ck_assert_str_eq(as_json_str(attr_of(a, "agentscaler.task.id"),
	    "stringValue"), "t-\"2\"");
	ck_assert_str_eq(as_json_str(attr_of(a, "agentscaler.task.depth"),
	    "intValue"), "2");
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(s0,
	    "status"), "code")->valueint, 2);
	ck_assert_str_eq(as_json_str(cJSON_GetObjectItem(s0, "status"),
	    "message"), "task.deadline");
	ck_assert_ptr_null(cJSON_GetObjectItem(s0, "links"));

	ck_assert_str_eq(as_json_str(s1, "parentSpanId"), "0101010101010101");
	ck_assert_int_eq(cJSON_GetObjectItem(s1, "kind")->valueint, 3);
	l = cJSON_GetArrayItem(cJSON_GetObjectItem(s1, "links"), 0);
	ck_assert_str_eq(as_json_str(l, "traceId"),
	    "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd");
	ck_assert_str_eq(as_json_str(l, "spanId"), "0e0e0e0e0e0e0e0e");
	ck_assert_str_eq(as_json_str(attr_of(cJSON_GetObjectItem(l,
	    "attributes"), "agentscaler.link.type"), "stringValue"),
	    "parent_task");
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(s1,
	    "status"), "code"));
	cJSON_Delete(doc);
	free(json);
}
END_TEST

START_TEST(test_attr_limits)
{
	struct trace_span	 s;
	char			 key[16], big[400];
	int			 i;

	mkspan(&s, "x", 1);
	for (i = 0; i < TRACE_MAX_ATTRS + 3; i++) {
		snprintf(key, sizeof key, "k%d", i);
		trace_span_int(&s, key, i);
	}
	ck_assert_uint_eq(s.nattrs, TRACE_MAX_ATTRS);
	memset(big, 'v', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	trace_span_str(&s, "k0", big);
	ck_assert_int_eq(s.attrs[0].is_int, 0);
	ck_assert_uint_eq(strlen(s.attrs[0].s), TRACE_VAL_MAX - 1);
	/* Cut at a character: OTLP string values must be UTF-8. */
	for (i = 0; i + 4 < (int)sizeof big; i += 4)
		memcpy(big + i, "\xf0\x9f\x98\x80", 4);
	big[i] = '\0';
	trace_span_str(&s, "k0", big);
	ck_assert_uint_eq(strlen(s.attrs[0].s), (TRACE_VAL_MAX - 1) / 4 * 4);
	ck_assert(strncmp(s.attrs[0].s, big, strlen(s.attrs[0].s)) == 0);
}
END_TEST

START_TEST(test_ring)
{
	struct trace_ring	 r;
	struct trace_span	 s, out[4];
	size_t			 n;
	int			 i;

	trace_ring_init(&r, 3);
	for (i = 1; i <= 5; i++) {
		mkspan(&s, "x", (uint8_t)i);
		ck_assert_int_eq(trace_ring_push(&r, &s), i <= 3 ? 0 :
		    -AS_EAGAIN);
	}
	ck_assert_uint_eq(r.dropped, 2);
	n = trace_ring_take(&r, out, 2);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(out[0].ctx.span_id[0], 1);
	ck_assert_int_eq(out[1].ctx.span_id[0], 2);
	mkspan(&s, "x", 6);
	ck_assert_int_eq(trace_ring_push(&r, &s), 0);	/* wraps */
	n = trace_ring_take(&r, out, 4);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(out[0].ctx.span_id[0], 3);
	ck_assert_int_eq(out[1].ctx.span_id[0], 6);
	ck_assert_uint_eq(r.n, 0);
	trace_ring_fini(&r);
}
END_TEST

/*
 * A collector stand-in on the test's loop: accepts, reads one request
 * (headers, then Content-Length bytes), keeps its body's span count, and
 * answers 200 {} unless mute (then it answers nothing: a slow collector).
 */
struct coll {
	struct ev_loop	*loop;
	int		 lfd;
	ev_io		 lw;
	int		 mute;
	int		 requests;
	int		 spans;
	int		 max_batch;
	int		 bad;
	int		 open;	/* connections accepted, not closed */
};

struct conn {
	struct coll	*c;
	ev_io		 w;
	char		 buf[1 << 20];
	size_t		 len;
};

static void
conn_close(struct conn *k)
{
	ev_io_stop(k->c->loop, &k->w);
	close(k->w.fd);
	k->c->open--;
	free(k);
}

static void
conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn	*k = w->data;
	const char	*end, *cl;
	const char	 ok[] = "HTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\nContent-Length: 2\r\n\r\n{}";
	cJSON		*doc, *spans;
	ssize_t		 got;
	long		 want;
	int		 n;

	(void)loop;
	(void)revents;
	got = read(w->fd, k->buf + k->len, sizeof k->buf - 1 - k->len);
	if (got <= 0) {
		conn_close(k);
		return;
	}
	k->len += (size_t)got;
	k->buf[k->len] = '\0';
	if ((end = strstr(k->buf, "\r\n\r\n")) == NULL)
		return;
	cl = strcasestr(k->buf, "Content-Length:");
	want = cl != NULL ? strtol(cl + 15, NULL, 10) : 0;
	if ((long)(k->len - (size_t)(end + 4 - k->buf)) < want)
		return;
	k->c->requests++;
	if (strncmp(k->buf, "POST /v1/traces ", 16) != 0 ||
	    strcasestr(k->buf, "Content-Type: application/json") == NULL)
		k->c->bad++;
	doc = cJSON_Parse(end + 4);
	spans = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(
	    cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "resourceSpans"), 0),
	    "scopeSpans"), 0), "spans");
	n = cJSON_GetArraySize(spans);
	if (spans == NULL)
		k->c->bad++;
	k->c->spans += n;
	if (n > k->c->max_batch)
		k->c->max_batch = n;
	cJSON_Delete(doc);
	k->len = 0;
	if (!k->c->mute)
		(void)!write(w->fd, ok, sizeof ok - 1);
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct coll	*c = w->data;
	struct conn	*k;
	int		 fd;

	(void)revents;
	if ((fd = accept(w->fd, NULL, NULL)) < 0)
		return;
	k = xcalloc(1, sizeof *k);
	k->c = c;
	c->open++;
	ev_io_init(&k->w, conn_cb, fd, EV_READ);
	k->w.data = k;
	ev_io_start(loop, &k->w);
}

/* Listens on 127.0.0.1 (serve: with an accept watcher); returns the port. */
static int
coll_listen(struct coll *c, struct ev_loop *loop, int serve)
{
	struct sockaddr_in	 sa;
	socklen_t		 len = sizeof sa;

	memset(c, 0, sizeof *c);
	c->loop = loop;
	c->lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(c->lfd, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(c->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(c->lfd, 16), 0);
	ck_assert_int_eq(getsockname(c->lfd, (struct sockaddr *)&sa, &len), 0);
	if (serve) {
		ev_io_init(&c->lw, accept_cb, c->lfd, EV_READ);
		c->lw.data = c;
		ev_io_start(loop, &c->lw);
	}
	return (ntohs(sa.sin_port));
}

static struct otlp *
exporter(struct ev_loop *loop, int port, size_t ring, size_t batch,
    double interval, double timeout)
{
	struct trace_resource	 res[] = { { "service.name", "agentscaler" } };
	struct otlp_options	 o;
	struct otlp		*x;
	char			 url[64], err[256];

	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/traces", port);
	memset(&o, 0, sizeof o);
	o.endpoint = url;
	o.ring = ring;
	o.batch = batch;
	o.interval = interval;
	o.timeout = timeout;
	o.resource = res;
	o.nresource = 1;
	x = otlp_new(loop, &o, err, sizeof err);
	ck_assert_msg(x != NULL, "%s", err);
	return (x);
}

struct want {
	struct coll	*c;
	struct otlp	*x;
	int		 spans;
	uint64_t	 failed;
};

static int
pred_spans(void *arg)
{
	struct want		*w = arg;
	struct otlp_stats	 st;

	otlp_stats(w->x, &st);
	return (w->c->spans >= w->spans && st.exported >= (uint64_t)w->spans);
}

static int
pred_closed(void *arg)
{
	return (((struct coll *)arg)->open == 0);
}

static int
pred_failed(void *arg)
{
	struct want		*w = arg;
	struct otlp_stats	 st;

	otlp_stats(w->x, &st);
	return (st.dropped_failed >= w->failed);
}

/*
 * Frees the exporter x, stops the stand-in c once every connection is
 * closed, then its loop.
 */
static void
coll_end(struct coll *c, struct otlp *x)
{
	otlp_free(x);
	ev_io_stop(c->loop, &c->lw);
	close(c->lfd);
	ck_assert(tu_run_until(c->loop, pred_closed, c, 10));
	ev_loop_destroy(c->loop);
}

/* Emits n spans, ids 0..n-1, to x. */
static void
emit_n(struct otlp *x, int n)
{
	struct trace_span	 s;
	int			 i;

	for (i = 0; i < n; i++) {
		mkspan(&s, "x", (uint8_t)i);
		otlp_emit(x, &s);
	}
}

START_TEST(test_batching)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct otlp_stats	 st;
	struct coll		 c;
	struct want		 w;
	struct otlp		*x;
	int			 port;

	port = coll_listen(&c, loop, 1);
	/* A long interval: only full batches go before the tail's tick. */
	x = exporter(loop, port, 64, 5, 0.2, 5);
	emit_n(x, 23);
	w = (struct want){ &c, x, 23, 0 };
	ck_assert(tu_run_until(loop, pred_spans, &w, 20));
	otlp_stats(x, &st);
	ck_assert_uint_eq(st.exported, 23);
	ck_assert_uint_eq(st.dropped_full, 0);
	ck_assert_uint_eq(st.dropped_failed, 0);
	ck_assert_uint_eq(st.pending, 0);
	ck_assert_int_eq(c.spans, 23);
	ck_assert_int_eq(c.max_batch, 5);
	ck_assert_int_ge(c.requests, 5);
	ck_assert_int_eq(c.bad, 0);
	coll_end(&c, x);
}
END_TEST

/* Away: nothing listens; a ring of 4 takes 4 of 10, the rest dropped. */
START_TEST(test_collector_away)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct otlp_stats	 st;
	struct coll		 c;
	struct want		 w;
	struct otlp		*x;
	int			 port;

	port = coll_listen(&c, loop, 0);
	close(c.lfd);		/* refused from now on */
	x = exporter(loop, port, 4, 4, 0.1, 1);
	emit_n(x, 10);
	otlp_stats(x, &st);
	/* 4 went out as a batch at once, 4 wait, 2 found the ring full. */
	ck_assert_uint_eq(st.pending, 4);
	ck_assert_uint_eq(st.dropped_full, 2);
	w = (struct want){ &c, x, 0, 8 };
	ck_assert(tu_run_until(loop, pred_failed, &w, 30));
	otlp_stats(x, &st);
	ck_assert_uint_eq(st.exported, 0);
	ck_assert_uint_eq(st.dropped_failed + st.dropped_full, 10);
	otlp_free(x);
	ev_loop_destroy(loop);
}
END_TEST

/* Slow: accepted but never answered; the request times out, dropped. */
START_TEST(test_collector_slow)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct otlp_stats	 st;
	struct coll		 c;
	struct want		 w;
	struct otlp		*x;
	int			 port;

	port = coll_listen(&c, loop, 1);
	c.mute = 1;
	x = exporter(loop, port, 8, 2, 0.1, 0.3);
	emit_n(x, 12);
	otlp_stats(x, &st);
	ck_assert_uint_eq(st.dropped_full, 2);	/* 2 sent, 8 kept */
	w = (struct want){ &c, x, 0, 2 };
	ck_assert(tu_run_until(loop, pred_failed, &w, 30));
	otlp_stats(x, &st);
	ck_assert_uint_eq(st.exported, 0);
	ck_assert_int_ge(c.requests, 1);
	coll_end(&c, x);
}
END_TEST

static void
flushed_cb(void *arg)
{
	(*(int *)arg)++;
}

static int
pred_flushed(void *arg)
{
	return (*(int *)arg > 0);
}

/*
 * Flush: an hour's interval, batches of 5: 12 spans, 5 sent as a batch,
 * 7 waiting; the flush sends them now (two more requests, one at a time)
 * and says so once.
 */
START_TEST(test_flush)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct otlp_stats	 st;
	struct coll		 c;
	struct otlp		*x;
	int			 port, done = 0;

	port = coll_listen(&c, loop, 1);
	x = exporter(loop, port, 64, 5, 3600, 5);
	ck_assert_int_eq(otlp_flush(x, flushed_cb, &done), 0);	/* empty */
	emit_n(x, 12);
	ck_assert_int_eq(otlp_flush(x, flushed_cb, &done), 1);
	ck_assert_int_eq(done, 0);	/* never within the call */
	ck_assert(tu_run_until(loop, pred_flushed, &done, 20));
	otlp_stats(x, &st);
	ck_assert_uint_eq(st.exported, 12);
	ck_assert_uint_eq(st.pending, 0);
	ck_assert_int_eq(c.spans, 12);
	ck_assert_int_eq(c.max_batch, 5);
	ck_assert_int_eq(c.requests, 3);
	ck_assert_int_eq(done, 1);
	coll_end(&c, x);
}
END_TEST

/* Flush to a collector that is away: done told once, every span counted. */
START_TEST(test_flush_away)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct otlp_stats	 st;
	struct coll		 c;
	struct otlp		*x;
	int			 port, done = 0;

	port = coll_listen(&c, loop, 0);
	close(c.lfd);
	x = exporter(loop, port, 64, 5, 3600, 1);
	emit_n(x, 12);
	ck_assert_int_eq(otlp_flush(x, flushed_cb, &done), 1);
	ck_assert(tu_run_until(loop, pred_flushed, &done, 30));
	otlp_stats(x, &st);
	ck_assert_uint_eq(st.exported, 0);
	ck_assert_uint_eq(st.pending, 0);
	ck_assert_uint_eq(st.dropped_failed, 12);
	ck_assert_int_eq(done, 1);
	otlp_free(x);
	ev_loop_destroy(loop);
}
END_TEST

static Suite *
trace_suite(void)
{
	Suite	*s = suite_create("trace");
	TCase	*tc = tcase_create("trace");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_traceparent, 0,
	    (int)AS_ARRAY_SIZE(tp_rows));
	tcase_add_test(tc, test_ids);
	tcase_add_test(tc, test_encode);
	tcase_add_test(tc, test_attr_limits);
	tcase_add_test(tc, test_ring);
	tcase_add_test(tc, test_batching);
	tcase_add_test(tc, test_collector_away);
	tcase_add_test(tc, test_collector_slow);
	tcase_add_test(tc, test_flush);
	tcase_add_test(tc, test_flush_away);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(trace_suite()));
}
