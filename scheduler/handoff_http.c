/*
 * handoff_http.c: the pure half of the agent protocol on agentscaler's side
 * (handoff_http.h; docs/protocol.md sections 2 to 4).  The parser is
 * strict about what this side acts on (the kind, the fields of section 6,
 * the order of events) and lenient about what it does not read, so a
 * runtime that adds a field does not turn every answer into a transport
 * failure; the conformance tests (tests/clients) hold runtimes to the
 * schemas.  Parsers are pure (STYLE.md habit 12): tests/fuzz/fuzz_handoff.c
 * feeds this one arbitrary bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "handoff_http.h"

/* A growing buffer of bytes (NULs kept), NUL-terminated. */
struct hh_buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

static void
hh_add(struct hh_buf *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
hh_adds(struct hh_buf *b, const char *s)
{
	hh_add(b, s, strlen(s));
}

static const char *const event_types[] = {
	"started", "progress", "spawn", "completed", "failed", NULL
};

/* An integer member in [min, LONG_MAX] (as JSON numbers go), or -1. */
static int
hh_int(const cJSON *o, const char *key, long min, long *out)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, key);
	double		 d;

	if (!cJSON_IsNumber(v))
		return (-1);
	d = v->valuedouble;
	if (d != d || d < (double)min || d > 9007199254740992.0 ||
	    d != (double)(long)d)
		return (-1);
	*out = (long)d;
	return (0);
}

static int
hh_fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s", what);
	return (-AS_EPROTO);
}

static const char *const reply_types[] = {
	"deferred", "admitted", "rejected", "result", NULL
};

/* A spawn's "replies": the set of reply types it names (others: none). */
static unsigned
hh_replies(const cJSON *a)
{
	const cJSON	*x;
	unsigned	 have = 0;
	size_t		 i;

	cJSON_ArrayForEach(x, a) {
		if (!cJSON_IsString(x))
			continue;
		for (i = 0; reply_types[i] != NULL; i++)
			if (strcmp(x->valuestring, reply_types[i]) == 0)
				have |= HH_RB(i);
	}
	return (have);
}

static int
hh_event_parse(const cJSON *e, struct hh_event *ev, char *err, size_t errlen)
{
	const cJSON	*x;
	const char	*type;
	int		 i;

	if (!cJSON_IsObject(e))
		return (hh_fail(err, errlen, "an event is not an object"));
	if (hh_int(e, "seq", 1, &ev->seq) != 0)
		return (hh_fail(err, errlen, "an event's seq is not an "
		    "integer >= 1"));
	if ((type = as_json_str(e, "type")) == NULL)
		return (hh_fail(err, errlen, "an event has no type"));
	for (i = 0; event_types[i] != NULL; i++)
		if (strcmp(event_types[i], type) == 0)
			break;
	if (event_types[i] == NULL)
		return (hh_fail(err, errlen, "an event of an unknown type"));
	ev->type = (enum hh_event_type)i;
	if ((ev->time = as_json_str(e, "time")) == NULL)
		return (hh_fail(err, errlen, "an event has no time"));
	switch (ev->type) {
	case HH_EV_STARTED:
		if (hh_int(e, "attempt", 1, &ev->attempt) != 0)
			return (hh_fail(err, errlen, "a started event without "
			    "its attempt"));
		break;
	case HH_EV_PROGRESS:
		break;
	case HH_EV_SPAWN:
		ev->key = as_json_str(e, "key");
		x = cJSON_GetObjectItemCaseSensitive(e, "task");
		if (ev->key == NULL || ev->key[0] == '\0' ||
		    !cJSON_IsObject(x) ||
		    cJSON_GetObjectItemCaseSensitive(x, "payload") == NULL)
			return (hh_fail(err, errlen, "a spawn event without "
			    "key or task.payload"));
		ev->task = x;
		ev->replies = hh_replies(
		    cJSON_GetObjectItemCaseSensitive(e, "replies"));
		break;
	case HH_EV_COMPLETED:
		ev->result = cJSON_GetObjectItemCaseSensitive(e, "result");
		if (ev->result == NULL)
			return (hh_fail(err, errlen, "a completed event "
			    "without result"));
		break;
	case HH_EV_FAILED:
		x = cJSON_GetObjectItemCaseSensitive(e, "error");
		ev->reason = as_json_str(x, "reason");
		ev->message = as_json_str(x, "message");
		if (ev->reason == NULL || ev->reason[0] == '\0' ||
		    ev->message == NULL || !cJSON_IsBool(
		    cJSON_GetObjectItemCaseSensitive(x, "retryable")))
			return (hh_fail(err, errlen, "a failed event without "
			    "error {reason, message, retryable}"));
		ev->retryable = cJSON_IsTrue(
		    cJSON_GetObjectItemCaseSensitive(x, "retryable"));
		break;
	}
	return (0);
}

static int
hh_event_list(struct hh_answer *a, char *err, size_t errlen)
{
	const cJSON	*evs, *e;
	size_t		 n, i;

	evs = cJSON_GetObjectItemCaseSensitive(a->doc, "events");
	if (hh_int(a->doc, "first", 1, &a->first) != 0 ||
	    hh_int(a->doc, "next", 0, &a->next) != 0 ||
	    !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(a->doc, "more")) ||
	    !cJSON_IsArray(evs))
		return (hh_fail(err, errlen, "an EventList without first, "
		    "next, more or events"));
	a->more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a->doc,
	    "more"));
	n = (size_t)cJSON_GetArraySize(evs);
	if (n > HH_MAX_EVENTS)
		return (hh_fail(err, errlen, "an EventList of more than 256 "
		    "events"));
	a->events = n > 0 ? xcalloc(n, sizeof *a->events) : NULL;
	i = 0;
	cJSON_ArrayForEach(e, evs) {
		if (hh_event_parse(e, &a->events[i], err, errlen) != 0)
			return (-AS_EPROTO);
		if (i > 0 && a->events[i].seq != a->events[i - 1].seq + 1)
			return (hh_fail(err, errlen, "events out of sequence"));
		if (i > 0 && (a->events[i - 1].type == HH_EV_COMPLETED ||
		    a->events[i - 1].type == HH_EV_FAILED))
			return (hh_fail(err, errlen, "an event after the "
			    "terminal one"));
		i++;
	}
	a->nevents = n;
	/* next is the last seq returned (section 6). */
	if (n > 0 && a->next != a->events[n - 1].seq)
		return (hh_fail(err, errlen, "next is not the last event's "
		    "seq"));
	return (0);
}

int
hh_answer_parse(const char *body, size_t len, struct hh_answer *a, char *err,
    size_t errlen)
{
	const char	*v, *kind;
	int		 rc = -AS_EPROTO;

	memset(a, 0, sizeof *a);
	if (body == NULL || len == 0)
		return (hh_fail(err, errlen, "an empty answer"));
	if ((a->doc = cJSON_ParseWithLength(body, len)) == NULL ||
	    !cJSON_IsObject(a->doc)) {
		hh_fail(err, errlen, "not a JSON object");
		goto out;
	}
	v = as_json_str(a->doc, "apiVersion");
	kind = as_json_str(a->doc, "kind");
	if (v == NULL || strcmp(v, HH_API_VERSION) != 0 || kind == NULL) {
		hh_fail(err, errlen, "not an answer of agentscaler.io/v1 (no "
		    "apiVersion and kind: the router's or a proxy's)");
		goto out;
	}
	if (strcmp(kind, "Error") == 0) {
		a->kind = HH_ERROR;
		a->reason = as_json_str(a->doc, "reason");
		a->detail = as_json_str(a->doc, "detail");
		a->task_id = as_json_str(a->doc, "taskId");
		if (a->reason == NULL || a->reason[0] == '\0' ||
		    a->detail == NULL) {
			hh_fail(err, errlen, "an Error without reason or "
			    "detail");
			goto out;
		}
		rc = 0;
		goto out;
	}
	if (strcmp(kind, "ReplyAck") == 0) {
		/* Nothing this side reads but that it is the runtime's. */
		a->kind = HH_REPLY_ACK;
		rc = 0;
		goto out;
	}
	if (strcmp(kind, "TaskStatus") == 0)
		a->kind = HH_TASK_STATUS;
	else if (strcmp(kind, "EventList") == 0)
		a->kind = HH_EVENT_LIST;
	else {
		hh_fail(err, errlen, "an answer of an unknown kind");
		goto out;
	}
	a->id = as_json_str(a->doc, a->kind == HH_TASK_STATUS ? "id" :
	    "taskId");
	a->state = as_json_str(a->doc, "state");
	a->instance = as_json_str(a->doc, "instance");
	if (a->id == NULL || a->state == NULL || a->instance == NULL ||
	    hh_int(a->doc, "attempt", 1, &a->attempt) != 0 ||
	    (strcmp(a->state, "running") != 0 &&
	    strcmp(a->state, "completed") != 0 &&
	    strcmp(a->state, "failed") != 0)) {
		hh_fail(err, errlen, "a TaskStatus or EventList without id, "
		    "attempt, state or instance");
		goto out;
	}
	if (a->kind == HH_TASK_STATUS) {
		if (hh_int(a->doc, "next", 0, &a->next) != 0) {
			hh_fail(err, errlen, "a TaskStatus without next");
			goto out;
		}
		rc = 0;
		goto out;
	}
	rc = hh_event_list(a, err, errlen);
out:
	if (rc != 0)
		hh_answer_free(a);
	return (rc);
}

void
hh_answer_free(struct hh_answer *a)
{
	if (a == NULL)
		return;
	cJSON_Delete(a->doc);
	free(a->events);
	memset(a, 0, sizeof *a);
}

char *
hh_task_body(const struct handoff_spec *h, const char *orig, size_t len,
    long attempt, const char *traceparent, const char *token,
    size_t *outlen)
{
	static const char head[] = "{\"apiVersion\":\"" HH_API_VERSION
	    "\",\"kind\":\"Task\",\"agentscaler\":";
	static const char pre[] = "{\"agentscaler\":";
	struct hh_buf	 b = { NULL, 0, 0 };
	cJSON		*x;
	char		*inbox, *more, *end;
	size_t		 ilen, mlen, meta;

	/*
	 * task_handoff_body() writes {"agentscaler":META,"task":ORIG}.  META
	 * is a flat object printed by cJSON, whose strings escape '"': the
	 * first '},"task":' after the prefix is its end.
	 */
	inbox = task_handoff_body(h, orig, len, &ilen);
	end = strstr(inbox + sizeof pre - 1, "}" "," "\"task\":");
	meta = (size_t)(end - inbox) - (sizeof pre - 1);
	x = cJSON_CreateObject();
	cJSON_AddNumberToObject(x, "attempt", (double)attempt);
	if (traceparent != NULL)
		cJSON_AddStringToObject(x, "traceparent", traceparent);
	else
		cJSON_AddNullToObject(x, "traceparent");
	if (token != NULL)
		cJSON_AddStringToObject(x, "token", token);
	more = as_json_print_free(x, &mlen);
	hh_add(&b, head, sizeof head - 1);
	hh_add(&b, inbox + sizeof pre - 1, meta);	/* META less '}' */
	hh_add(&b, ",", 1);
	hh_add(&b, more + 1, mlen - 1);			/* more less '{' */
	hh_add(&b, end + 1, ilen - (size_t)(end + 1 - inbox));
	as_secret_free(more, 0);
	free(inbox);
	if (outlen != NULL)
		*outlen = b.len;
	return (b.p);
}

void
hh_token(const void *key, size_t keylen, const char *ns, const char *claim_uid,
    const char *id, char out[HH_TOKEN_LEN + 1])
{
	unsigned char	 mac[AS_SHA256_LEN];
	char		*msg;

	msg = xasprintf("%s/%s/%s", ns, claim_uid, id);
	as_hmac_sha256(key, keylen, msg, strlen(msg), mac);
	as_hex(mac, sizeof mac, out);
	out[HH_TOKEN_LEN] = '\0';
	free(msg);
}

char *
hh_path(const char *id, const char *suffix)
{
	static const char hex[] = "0123456789ABCDEF";
	struct hh_buf	 b = { NULL, 0, 0 };
	const unsigned char *p;
	char		 e[3];

	hh_adds(&b, HH_BASE_PATH "/tasks/");
	for (p = (const unsigned char *)id; *p != '\0'; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_' || *p == '~') {
			hh_add(&b, p, 1);
			continue;
		}
		e[0] = '%';
		e[1] = hex[*p >> 4];
		e[2] = hex[*p & 15];
		hh_add(&b, e, 3);
	}
	hh_adds(&b, suffix);
	return (b.p);
}

static int
hh_lower_hex(const char *s, size_t n)
{
	size_t	 i, zero = 0;

	for (i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return (0);
		zero += s[i] == '0';
	}
	return (zero < n);	/* never all zeros */
}

int
hh_traceparent_ok(const char *s)
{
	return (s != NULL && strlen(s) == 55 && strncmp(s, "00-", 3) == 0 &&
	    hh_lower_hex(s + 3, 32) && s[35] == '-' &&
	    hh_lower_hex(s + 36, 16) && s[52] == '-' &&
	    (hh_lower_hex(s + 53, 2) || strncmp(s + 53, "00", 2) == 0));
}

void
hh_traceparent_new(const unsigned char rnd[24], char out[56])
{
	unsigned char	 b[24];
	char		 hex[49];

	memcpy(b, rnd, sizeof b);
	b[15] |= 1;	/* neither id all zeros */
	b[23] |= 1;
	as_hex(b, sizeof b, hex);
	snprintf(out, 56, "00-%.32s-%.16s-01", hex, hex + 32);
}

static void
hh_put_opt(cJSON *o, const char *key, const char *v)
{
	if (v != NULL)
		cJSON_AddStringToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

char *
hh_result_body(const struct hh_result *r, size_t *outlen)
{
	cJSON	*o = cJSON_CreateObject(), *x;
	char	 ts[40];

	cJSON_AddStringToObject(o, "apiVersion", HH_API_VERSION);
	cJSON_AddStringToObject(o, "kind", "Result");
	cJSON_AddStringToObject(o, "id", r->id);
	cJSON_AddStringToObject(o, "state", r->failed ? "failed" :
	    "completed");
	if (r->failed) {
		x = cJSON_AddObjectToObject(o, "error");
		cJSON_AddStringToObject(x, "reason", r->reason);
		cJSON_AddStringToObject(x, "message", r->message != NULL ?
		    r->message : "");
		cJSON_AddBoolToObject(x, "retryable", r->retryable);
	} else if (r->result != NULL)
		cJSON_AddItemToObject(o, "result",
		    cJSON_Duplicate(r->result, 1));
	else
		cJSON_AddNullToObject(o, "result");
	if (r->sandbox != NULL) {
		x = cJSON_AddObjectToObject(o, "sandbox");
		cJSON_AddStringToObject(x, "namespace", r->ns);
		cJSON_AddStringToObject(x, "pool", r->pool);
		cJSON_AddStringToObject(x, "claim", r->claim);
		cJSON_AddStringToObject(x, "name", r->sandbox);
	} else
		cJSON_AddNullToObject(o, "sandbox");
	hh_put_opt(o, "parent", r->parent);
	cJSON_AddStringToObject(o, "root", r->root != NULL ? r->root : r->id);
	cJSON_AddNumberToObject(o, "attempt", (double)r->attempt);
	if (r->started_at > 0) {
		as_rfc3339(r->started_at, 1, ts, sizeof ts);
		cJSON_AddStringToObject(o, "startedAt", ts);
	} else
		cJSON_AddNullToObject(o, "startedAt");
	as_rfc3339(r->finished_at, 1, ts, sizeof ts);
	cJSON_AddStringToObject(o, "finishedAt", ts);
	hh_put_opt(o, "traceparent", r->traceparent);
	return (as_json_print_free(o, outlen));
}

const char *
hh_reply_name(enum hh_reply r)
{
	return ((unsigned)r < HH_R_N ? reply_types[r] : "?");
}

int
hh_reply_may_follow(unsigned have, enum hh_reply r)
{
	switch (r) {
	case HH_R_DEFERRED:
		return ((have & (HH_RB(HH_R_DEFERRED) | HH_RB_FINAL)) == 0);
	case HH_R_ADMITTED:
	case HH_R_REJECTED:
		return ((have & HH_RB_FINAL) == 0);
	case HH_R_RESULT:
		/* A result before admitted implies it (section 4). */
		return ((have & (HH_RB(HH_R_REJECTED) |
		    HH_RB(HH_R_RESULT))) == 0);
	default:
		return (0);
	}
}

void
hh_child_id(const char *parent, const char *key, char out[TASK_ID_MAX + 1])
{
	unsigned char	 md[AS_SHA256_LEN];
	char		 hex[2 * AS_SHA256_LEN + 1];
	struct as_sha256 s = { NULL };
	size_t		 np = strlen(parent), nk = strlen(key);

	if (np + 1 + nk <= TASK_ID_MAX) {
		memcpy(out, parent, np);
		out[np] = '/';
		memcpy(out + np + 1, key, nk + 1);
		return;
	}
	as_sha256_init(&s);
	as_sha256_update(&s, parent, np + 1);
	as_sha256_update(&s, key, nk);
	as_sha256_final(&s, md);
	as_hex(md, sizeof md, hex);
	snprintf(out, TASK_ID_MAX + 1, "%.220s/#%.31s", parent, hex);
}

char *
hh_child_message(const char *parent, const char *key, const cJSON *spawn,
    const char *parent_tp, size_t *outlen)
{
	static const char *const copied[] = {
		"payload", "resources", "deadline", NULL
	};
	char		 id[TASK_ID_MAX + 1];
	const cJSON	*x;
	const char	*tp;
	cJSON		*o;
	size_t		 i;

	hh_child_id(parent, key, id);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "parent", parent);
	for (i = 0; copied[i] != NULL; i++)
		if ((x = cJSON_GetObjectItemCaseSensitive(spawn,
		    copied[i])) != NULL)
			cJSON_AddItemToObject(o, copied[i],
			    cJSON_Duplicate(x, 1));
	tp = as_json_str(spawn, "traceparent");
	if (tp == NULL)
		tp = parent_tp;
	if (tp != NULL)
		cJSON_AddStringToObject(o, "traceparent", tp);
	return (as_json_print_free(o, outlen));
}

char *
hh_reply_body(const char *key, enum hh_reply type, const char *child,
    const char *reason, const char *detail, const char *result)
{
	cJSON	*o, *r;

	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "apiVersion", HH_API_VERSION);
	cJSON_AddStringToObject(o, "kind", "Reply");
	cJSON_AddStringToObject(o, "key", key);
	cJSON_AddStringToObject(o, "type", hh_reply_name(type));
	cJSON_AddStringToObject(o, "child", child);
	if (reason != NULL)
		cJSON_AddStringToObject(o, "reason", reason);
	if (detail != NULL) {
		/* reply.schema: at most 4096 characters. */
		char	 cut[4097];

		as_strlcpy_utf8(cut, detail, sizeof cut);
		cJSON_AddStringToObject(o, "detail", cut);
	}
	if (result != NULL && (r = cJSON_Parse(result)) != NULL)
		cJSON_AddItemToObject(o, "result", r);
	return (as_json_print_free(o, NULL));
}
