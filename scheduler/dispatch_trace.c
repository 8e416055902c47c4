/*
 * dispatch_trace.c: the spans of a dispatched task (issue 19), when the
 * daemon exports traces (--otlp-endpoint; d->otlp).  Each task gets one
 * span from its arrival to the end of its record, named
 * "invoke_agent <pool>" with gen_ai.operation.name invoke_agent (the
 * OpenTelemetry GenAI conventions' agent invocation span,
 * semantic-conventions docs/gen-ai/gen-ai-agent-spans.md), and under it one
 * span per phase, opened and closed by the task's state changes
 * (dtask_set_state()):
 *
 *   agentscaler.admit       arrival to admission (deferrals included)
 *   agentscaler.claim       the SandboxClaim's POST to its creation
 *   agentscaler.wait_ready  the claim made to its sandbox Ready
 *   agentscaler.handoff     Ready to the runtime's acceptance and the ack
 *   agentscaler.run         the sandbox running the task
 *   agentscaler.complete    the release of the claim
 *
 * The task span's parent is the task's W3C traceparent (task.c parses it;
 * the protocol carries it), so the scheduler's part sits in the caller's
 * trace.  A sub-task's span carries a link to its parent task's span (the
 * GenAI conventions nest a sub-agent's invoke_agent under the agent that
 * called it; a sub-task here has its own traceparent, the runtime's, so
 * the relation to the parent task's span is a link, as the OTel trace
 * API's "Links between spans" describes for causal relations outside the
 * parent chain); a sub-task without a traceparent joins its parent task's
 * trace as its child.  Spans are finished here and handed to the exporter
 * (rt/otlp.h), which never blocks; with tracing off nothing is allocated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/otlp.h"
#include "agentscaler/rt/trace.h"
#include "config.h"
#include "dispatch_int.h"

struct dtrace {
	int			 resolved;
	struct trace_ctx	 ctx;		/* the task span's */
	uint8_t			 parent[8];
	int			 has_link;
	struct trace_ctx	 link;
	uint64_t		 start_ns;
	const char		*phase;		/* NULL: none open */
	uint64_t		 phase_ns;
	int			 deferred;	/* the phase was */
	/*
	 * The task's pool, last seen: a dispatcher that stops frees its
	 * pools before its tasks, whose last spans still name it.
	 */
	char			 pool[TRACE_VAL_MAX];
};

#ifdef AS_TESTING
void	(*dispatch_span_hook)(const struct trace_span *);
#endif

/* A finished span to the exporter (and, in tests, to the hook). */
static void
dtrace_emit(struct dtask *t, const struct trace_span *s)
{
#ifdef AS_TESTING
	if (dispatch_span_hook != NULL)
		dispatch_span_hook(s);
#endif
	otlp_emit(t->ns->d->otlp, s);
}

static uint64_t
dtrace_now(void)
{
	return ((uint64_t)(as_wall_now() * 1e9));
}

/* The task's pool's name (noted while it has one), or NULL. */
static const char *
dtrace_pool(const struct dtask *t)
{
	if (t->pool != NULL)
		as_strlcpy(t->tr->pool, t->pool->cfg->name,
		    sizeof t->tr->pool);
	return (t->tr->pool[0] != '\0' ? t->tr->pool : NULL);
}

void
dtask_trace_new(struct dtask *t)
{
	if (t->ns->d->otlp == NULL)
		return;
	t->tr = xcalloc(1, sizeof *t->tr);
	t->tr->start_ns = dtrace_now();
	t->tr->phase = "agentscaler.admit";
	t->tr->phase_ns = t->tr->start_ns;
	(void)dtrace_pool(t);
}

/* Ids, parent and link, once the task's traceparent is known. */
static void
dtrace_resolve(struct dtask *t)
{
	struct dtrace		*tr = t->tr;
	struct dtask		*par = NULL;
	struct trace_ctx	 tp;

	if (tr->resolved)
		return;
	tr->resolved = 1;
	trace_new_id(tr->ctx.span_id, 8);
	if (t->parent != NULL && (par = dns_find(t->ns, t->parent)) != NULL &&
	    (par->tr == NULL || !par->tr->resolved))
		par = NULL;
	if (trace_parse_traceparent(t->traceparent, &tp) == 0) {
		memcpy(tr->ctx.trace_id, tp.trace_id, 16);
		memcpy(tr->parent, tp.span_id, 8);
	} else if (par != NULL) {
		memcpy(tr->ctx.trace_id, par->tr->ctx.trace_id, 16);
		memcpy(tr->parent, par->tr->ctx.span_id, 8);
	} else
		trace_new_id(tr->ctx.trace_id, 16);
	if (par != NULL) {
		tr->has_link = 1;
		tr->link = par->tr->ctx;
	}
}

/*
 * The task span's context as a W3C traceparent (sampled): what the
 * hand-off sends the runtime, so that the agent's own spans sit under the
 * scheduler's task span in one trace (the trace follows the task into its
 * sandbox).  -1 when tracing is off.
 */
int
dtask_trace_parent(struct dtask *t, char out[56])
{
	uint8_t		 b[24];
	char		 hex[49];

	if (t->tr == NULL)
		return (-1);
	dtrace_resolve(t);
	memcpy(b, t->tr->ctx.trace_id, 16);
	memcpy(b + 16, t->tr->ctx.span_id, 8);
	as_hex(b, sizeof b, hex);
	snprintf(out, 56, "00-%.32s-%.16s-01", hex, hex + 32);
	return (0);
}

static void
dtrace_common(const struct dtask *t, struct trace_span *s)
{
	trace_span_str(s, "agentscaler.task.id", t->id);
	trace_span_str(s, "k8s.namespace.name", t->ns->name);
	if (dtrace_pool(t) != NULL)
		trace_span_str(s, "agentscaler.pool", dtrace_pool(t));
}

static void
dtrace_phase_end(struct dtask *t, uint64_t now)
{
	struct dtrace		*tr = t->tr;
	struct trace_span	 s;

	if (tr->phase == NULL)
		return;
	dtrace_resolve(t);
	memset(&s, 0, sizeof s);
	memcpy(s.ctx.trace_id, tr->ctx.trace_id, 16);
	trace_new_id(s.ctx.span_id, 8);
	memcpy(s.parent_id, tr->ctx.span_id, 8);
	as_strlcpy(s.name, tr->phase, sizeof s.name);
	s.kind = TRACE_KIND_INTERNAL;
	s.start_ns = tr->phase_ns;
	s.end_ns = now;
	dtrace_common(t, &s);
	if (strcmp(tr->phase, "agentscaler.claim") == 0 ||
	    strcmp(tr->phase, "agentscaler.wait_ready") == 0)
		trace_span_str(&s, "agentscaler.claim", t->claim);
	if (tr->deferred)
		trace_span_int(&s, "agentscaler.deferred", 1);
	dtrace_emit(t, &s);
	tr->phase = NULL;
	tr->deferred = 0;
}

static const char *
dtrace_phase_of(enum tstate st)
{
	switch (st) {
	case T_DEFERRED:
		return ("agentscaler.admit");
	case T_CLAIMING:
		return ("agentscaler.claim");
	case T_WAITING:
		return ("agentscaler.wait_ready");
	case T_HANDOFF:
	case T_ACKING:
		return ("agentscaler.handoff");
	case T_RUNNING:
		return ("agentscaler.run");
	case T_RELEASING:
		return ("agentscaler.complete");
	}
	return ("agentscaler.unknown");
}

void
dtask_trace_state(struct dtask *t, enum tstate st)
{
	const char	*ph;
	uint64_t	 now;

	if (t->tr == NULL)
		return;
	(void)dtrace_pool(t);
	ph = dtrace_phase_of(st);
	if (st == T_DEFERRED)
		t->tr->deferred = 1;
	if (t->tr->phase != NULL && strcmp(t->tr->phase, ph) == 0)
		return;
	now = dtrace_now();
	dtrace_phase_end(t, now);
	t->tr->phase = ph;
	t->tr->phase_ns = now;
}

void
dtask_trace_end(struct dtask *t)
{
	struct dtrace		*tr = t->tr;
	struct trace_span	 s;
	uint64_t		 now;

	if (tr == NULL)
		return;
	now = dtrace_now();
	dtrace_phase_end(t, now);
	memset(&s, 0, sizeof s);
	s.ctx = tr->ctx;
	memcpy(s.parent_id, tr->parent, 8);
	if (dtrace_pool(t) != NULL)	/* cut to fit, as before */
		snprintf(s.name, sizeof s.name, "invoke_agent %.*s",
		    (int)(sizeof s.name - 14), dtrace_pool(t));
	else
		as_strlcpy(s.name, "invoke_agent", sizeof s.name);
	s.kind = TRACE_KIND_CLIENT;
	s.start_ns = tr->start_ns;
	s.end_ns = now;
	dtrace_common(t, &s);
	trace_span_str(&s, "gen_ai.operation.name", "invoke_agent");
	if (dtrace_pool(t) != NULL)
		trace_span_str(&s, "gen_ai.agent.name", dtrace_pool(t));
	trace_span_str(&s, "agentscaler.claim", t->claim);
	if (t->parent != NULL)
		trace_span_str(&s, "agentscaler.task.parent", t->parent);
	trace_span_int(&s, "agentscaler.task.depth", t->depth);
	if (t->launch != L_UNKNOWN)
		trace_span_str(&s, "agentscaler.launch", t->launch == L_WARM ?
		    "warm" : "cold");
	if (t->verdict[0] != '\0' || t->failed) {
		s.status = TRACE_ERROR;
		as_strlcpy_utf8(s.status_msg, t->verdict[0] != '\0' ?
		    t->verdict : "sandbox failed", sizeof s.status_msg);
		trace_span_str(&s, "error.type", t->verdict[0] != '\0' ?
		    t->verdict : "sandbox.failed");
	} else if (t->handed_off)
		s.status = TRACE_OK;
	if (tr->has_link) {
		s.has_link = 1;
		s.link = tr->link;
		as_strlcpy(s.link_type, "parent_task", sizeof s.link_type);
	}
	dtrace_emit(t, &s);
	free(tr);
	t->tr = NULL;
}
