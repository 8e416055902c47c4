/*
 * fuzz_task.c: libFuzzer target for the task contract (task.h) and the
 * RFC 3339 parser, all pure.  Every refusal must name a reason; every
 * JSON text we produce must parse again, the hand-off must carry the
 * original unchanged, and a claim we build must read back through
 * task_claim_parse.  Any input is also read as a claim object, and as
 * an oversized message: its cut record must stay within
 * TASK_CUT_RECORD_MAX, carry the size and digest given, and keep a prefix
 * of the input (as text only when that prefix is UTF-8).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "scheduler/task.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Parses out as JSON or aborts; returns the tree. */
static cJSON *
must_json(const char *out, size_t len)
{
	cJSON	*j;

	if (out == NULL || strlen(out) != len)
		abort();
	if ((j = cJSON_ParseWithLength(out, len)) == NULL)
		abort();
	return (j);
}

static int
dns_label_ok(const char *s)
{
	size_t	 i, n = strlen(s);

	if (n == 0 || n > CLAIM_NAME_MAX || s[0] == '-' || s[n - 1] == '-')
		return (0);
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return (0);
	return (1);
}

/* The task.tooLarge record of buf, told it is part of a larger message. */
static void
check_cut(const char *buf, size_t size)
{
	unsigned char	 sha[AS_SHA256_LEN];
	char		 hex[2 * AS_SHA256_LEN + 1], *out, *dec, *str;
	const cJSON	*o, *b;
	cJSON		*j;
	size_t		 len, dlen, n, whole = size + (size & 1);

	as_sha256(buf, size, sha);
	as_hex(sha, sizeof sha, hex);
	str = xstrndup(buf, size);	/* as the strings, up to a NUL */
	out = task_dead_letter_record_cut("task.tooLarge", str, str, "pool",
	    size > 0 ? str : NULL, buf, size, whole, sha, 0, &len);
	free(str);
	if (len > TASK_CUT_RECORD_MAX)
		abort();
	j = must_json(out, len);
	o = cJSON_GetObjectItemCaseSensitive(j, "sha256");
	if (!cJSON_IsString(o) || strcmp(o->valuestring, hex) != 0)
		abort();
	o = cJSON_GetObjectItemCaseSensitive(j, "size");
	if (!cJSON_IsNumber(o) || o->valuedouble != (double)whole)
		abort();
	o = cJSON_GetObjectItemCaseSensitive(j, "originalPrefix");
	b = cJSON_GetObjectItemCaseSensitive(j, "originalPrefixBase64");
	if ((o == NULL) == (b == NULL))
		abort();
	if (o != NULL) {
		if (!cJSON_IsString(o))
			abort();
		n = strlen(o->valuestring);
		if (n > TASK_PREFIX_BYTES || n > size ||
		    memcmp(o->valuestring, buf, n) != 0 ||
		    task_utf8_cut(buf, n) != n)
			abort();
	} else {
		if (!cJSON_IsString(b))
			abort();
		dec = as_base64_decode(b->valuestring, strlen(b->valuestring),
		    &dlen);
		n = size < TASK_PREFIX_BYTES ? size : TASK_PREFIX_BYTES;
		if (dec == NULL || dlen != n || memcmp(dec, buf, n) != 0 ||
		    task_utf8_cut(buf, n) != (size_t)-1)
			abort();
		free(dec);
	}
	o = cJSON_GetObjectItemCaseSensitive(j, "truncated");
	if (!cJSON_IsBool(o) || cJSON_IsTrue(o) != (n < whole))
		abort();
	cJSON_Delete(j);
	free(out);
}

static void
check_task(const char *buf, size_t size)
{
	struct task		 t;
	struct task_error	 err;
	struct claim_spec	 cs;
	struct claim_view	 cv;
	struct handoff_spec	 h;
	char			 name[CLAIM_NAME_MAX + 1], cerr[128], *out;
	char			*p1, *p2;
	cJSON			*j, *orig;
	const cJSON		*o;
	size_t			 len;
	int			 rc;

	rc = task_parse(buf, size, 0, &t, &err);
	if (rc != 0 && (strncmp(err.reason, "task.", 5) != 0 ||
	    err.detail[0] == '\0'))
		abort();	/* a refusal always explains itself */
	if (rc == 0 && err.reason[0] != '\0')
		abort();
	/* The size gate comes first, whatever the bytes. */
	if (size > 1 && (task_parse(buf, size, size - 1, &t, &err) !=
	    -AS_EINVAL || strcmp(err.reason, "task.tooLarge") != 0))
		abort();
	rc = task_parse(buf, size, 0, &t, &err);

	out = task_dead_letter_record(rc == 0 ? "test.ok" : err.reason,
	    err.detail, "ns", "pool", t.id[0] != '\0' ? t.id : NULL, buf, size,
	    1795628085.5, &len);
	j = must_json(out, len);
	o = cJSON_GetObjectItemCaseSensitive(j, "original");
	if (o != NULL && (!cJSON_IsString(o) || strlen(o->valuestring) !=
	    size || memcmp(o->valuestring, buf, size) != 0))
		abort();
	if (o == NULL && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j,
	    "originalBase64")))
		abort();
	cJSON_Delete(j);
	free(out);
	check_cut(buf, size);
	if (rc != 0)
		return;

	/* Accepted: the hand-off embeds exactly what came in. */
	memset(&h, 0, sizeof h);
	h.ns = "ns";
	h.pool = "pool";
	h.claim = "c";
	h.sandbox = "s";
	h.task_id = t.id;
	h.parent_id = t.parent[0] != '\0' ? t.parent : NULL;
	h.root_id = t.id;
	out = task_handoff_body(&h, buf, size, &len);
	j = must_json(out, len);
	if ((orig = cJSON_ParseWithLength(buf, size)) == NULL)
		abort();
	/* Printed forms, not cJSON_Compare: that one trips on duplicates. */
	p1 = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j,
	    "task"));
	p2 = cJSON_PrintUnformatted(orig);
	if (p1 == NULL || p2 == NULL || strcmp(p1, p2) != 0)
		abort();
	cJSON_free(p1);
	cJSON_free(p2);
	cJSON_Delete(orig);
	cJSON_Delete(j);
	free(out);

	/* And a claim for it reads back. */
	task_claim_name(t.id, "ns", t.id, name);
	if (!dns_label_ok(name))
		abort();
	memset(&cs, 0, sizeof cs);
	cs.ns = "ns";
	cs.name = name;
	cs.pool = t.id;
	cs.warm_pool = "warm";
	cs.task_id = t.id;
	cs.parent_id = h.parent_id;
	cs.root_id = t.parent[0] != '\0' ? t.parent : t.id;
	cs.depth = (int)t.nresources;
	cs.traceparent = t.traceparent[0] != '\0' ? t.traceparent : NULL;
	cs.instance = "fuzz";
	cs.wall_now = t.deadline;
	cs.ttl_seconds = 60;
	out = task_claim_body(&cs, &len);
	j = must_json(out, len);
	if (task_claim_parse(j, &cv, cerr, sizeof cerr) != 0 ||
	    strcmp(cv.name, name) != 0 || strcmp(cv.task_id, t.id) != 0 ||
	    cv.depth != cs.depth || !cv.managed)
		abort();
	cJSON_Delete(j);
	free(out);
}

/* Whatever JSON comes in, reading it as a claim never misbehaves. */
static void
check_claim(const char *buf, size_t size)
{
	struct claim_view cv;
	cJSON		*j;
	char		 err[128];

	if ((j = cJSON_ParseWithLength(buf, size)) == NULL)
		return;
	err[0] = '\0';
	if (task_claim_parse(j, &cv, err, sizeof err) != 0 && err[0] == '\0')
		abort();
	(void)task_claim_terminal(&cv);
	cJSON_Delete(j);
}

/* A time that parses formats and parses back to itself. */
static void
check_time(const char *buf, size_t size)
{
	char	*s, text[40];
	double	 t, back;

	s = xstrndup(buf, size > 64 ? 64 : size);
	if (as_parse_rfc3339(s, &t) == 0 && t >= -62135596800.0 &&
	    t < 253402300800.0) {
		as_rfc3339(t, 1, text, sizeof text);
		if (as_parse_rfc3339(text, &back) != 0 ||
		    fabs(back - t) > 1e-3)
			abort();
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*buf = (const char *)data;

	check_task(buf, size);
	check_claim(buf, size);
	check_time(buf, size);
	return (0);
}
