/*
 * task.c: the task message (DESIGN.md section 6) and the SandboxClaim that
 * carries it (section 7, ref/agent-sandbox-api.md sections 4 and 9).
 *
 * Everything here is pure: the caller passes bytes, parsed JSON and the
 * time; nothing reads a clock or does I/O, so every function is tested and
 * fuzzed directly.
 *
 * A message goes through four gates in a fixed order, each with its own
 * reason: size, UTF-8, strict JSON syntax, then the fields.  The strict
 * syntax pass exists because cJSON is lenient (a byte order mark, leading
 * zeros, "1.", raw control characters in strings, \u with non-hex digits)
 * and the original bytes are handed to the sandbox verbatim: whatever we
 * accept must be JSON for any parser on the other side, not only for
 * cJSON.  The same pass refuses \u0000, which cJSON silently turns into the
 * end of a C string (a key "id\u0000x" would read as "id" here and as
 * something else in the sandbox).
 *
 * Output JSON is built with cJSON, which escapes for us; every string is
 * made valid UTF-8 first (invalid bytes become U+FFFD), so the output is
 * valid JSON whatever a caller passes in.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "charge.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/k8s/k8s.h"
#include "quantity.h"
#include "config.h"
#include "task.h"

/* A JSON syntax check over a buffer already known to be UTF-8. */
struct json_scan {
	const unsigned char	*p;
	const unsigned char	*start;
	const unsigned char	*end;
	const char		*why;
};

static int	 json_value(struct json_scan *, int);
static int	 task_fail(struct task_error *, const char *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* A copy of s that is valid UTF-8: ill-formed bytes become U+FFFD. */
static char *
utf8_clean(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 len, i = 0, o = 0, n;
	char			*out;

	len = strlen(s);
	if (as_utf8_invalid_at(s, len) == len)
		return (xstrdup(s));
	out = xmalloc(len * 3 + 1);
	while (i < len) {
		if ((n = as_utf8_seq(p + i, len - i)) == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, p + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return (out);
}

/*
 * Copies src into dst (size bytes), cut so that no UTF-8 sequence is
 * split: a claim field longer than its buffer loses whole characters.
 */
static void
copy_cut(char *dst, size_t size, const char *src)
{
	as_strlcpy_utf8(dst, src != NULL ? src : "", size);
}

/*
 * For error details: at most max bytes of s, printable ASCII only (others
 * shown as '?'), "..." when cut.  Details go to logs and dead letters, so
 * they never carry raw message bytes.
 */
static void
quote(char *dst, size_t size, const char *s, size_t max)
{
	size_t	 i, o = 0;

	for (i = 0; s[i] != '\0' && o + 4 < size; i++) {
		if (i == max) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		dst[o++] = s[i] >= 0x21 && s[i] <= 0x7e ? s[i] : '?';
	}
	dst[o] = '\0';
}

static int
task_fail(struct task_error *err, const char *reason, const char *fmt, ...)
{
	va_list	 ap;

	as_strlcpy(err->reason, reason, sizeof err->reason);
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof err->detail, fmt, ap);
	va_end(ap);
	return (-AS_EINVAL);
}

/*
 * Strict JSON (RFC 8259) syntax, recursive descent with cJSON's nesting
 * limit.  Returns 0, or -1 with s->why set and s->p at the offending byte.
 */
static void
json_ws(struct json_scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' ||
	    *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int
json_string(struct json_scan *s)
{
	int	 i, h, v;

	s->p++;		/* the opening quote */
	while (s->p < s->end) {
		if (*s->p == '"') {
			s->p++;
			return (0);
		}
		if (*s->p < 0x20) {
			s->why = "raw control character in a string";
			return (-1);
		}
		if (*s->p != '\\') {
			s->p++;
			continue;
		}
		if (s->end - s->p < 2) {
			s->why = "unterminated escape";
			return (-1);
		}
		if (s->p[1] != '\0' && strchr("\"\\/bfnrt", s->p[1]) != NULL) {
			s->p += 2;
			continue;
		}
		if (s->p[1] != 'u' || s->end - s->p < 6) {
			s->why = "bad escape in a string";
			return (-1);
		}
		for (i = 0, v = 0; i < 4; i++) {
			if ((h = as_hexval(s->p[2 + i])) < 0) {
				s->why = "bad \\u escape";
				return (-1);
			}
			v = v * 16 + h;
		}
		if (v == 0) {
			s->why = "\\u0000 is not accepted";
			return (-1);
		}
		s->p += 6;
	}
	s->why = "unterminated string";
	return (-1);
}

static int
json_digits(struct json_scan *s)
{
	const unsigned char *p0 = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	if (s->p == p0) {
		s->why = "digit expected in a number";
		return (-1);
	}
	return (0);
}

static int
json_number(struct json_scan *s)
{
	if (*s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;		/* no leading zeros */
	else if (json_digits(s) != 0)
		return (-1);
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (json_digits(s) != 0)
			return (-1);
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (json_digits(s) != 0)
			return (-1);
	}
	return (0);
}

static int
json_literal(struct json_scan *s, const char *word)
{
	size_t	 n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
		s->why = "unexpected character";
		return (-1);
	}
	s->p += n;
	return (0);
}

/* An object or an array; s->p is at '{' or '['. */
static int
json_container(struct json_scan *s, int depth)
{
	int	 obj = *s->p == '{';
	char	 close = obj ? '}' : ']';

	if (depth >= CJSON_NESTING_LIMIT) {
		s->why = "nested too deeply";
		return (-1);
	}
	s->p++;
	json_ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		return (0);
	}
	for (;;) {
		if (obj) {
			if (s->p >= s->end || *s->p != '"') {
				s->why = "object key expected";
				return (-1);
			}
			if (json_string(s) != 0)
				return (-1);
			json_ws(s);
			if (s->p >= s->end || *s->p != ':') {
				s->why = "':' expected";
				return (-1);
			}
			s->p++;
		}
		if (json_value(s, depth + 1) != 0)
			return (-1);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			json_ws(s);
			continue;
		}
		if (s->p < s->end && *s->p == close) {
			s->p++;
			return (0);
		}
		s->why = obj ? "',' or '}' expected" : "',' or ']' expected";
		return (-1);
	}
}

/* A value with the whitespace around it. */
static int
json_value(struct json_scan *s, int depth)
{
	int	 rc;

	json_ws(s);
	if (s->p >= s->end) {
		s->why = "unexpected end";
		return (-1);
	}
	switch (*s->p) {
	case '{':
	case '[':
		rc = json_container(s, depth);
		break;
	case '"':
		rc = json_string(s);
		break;
	case 't':
		rc = json_literal(s, "true");
		break;
	case 'f':
		rc = json_literal(s, "false");
		break;
	case 'n':
		rc = json_literal(s, "null");
		break;
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			rc = json_number(s);
		else {
			s->why = "unexpected character";
			rc = -1;
		}
	}
	if (rc == 0)
		json_ws(s);
	return (rc);
}

/* 0 when buf is one strict JSON text; else -1 with why and the offset. */
static int
json_check(const char *buf, size_t len, const char **why, size_t *at)
{
	struct json_scan s;

	s.start = s.p = (const unsigned char *)buf;
	s.end = s.start + len;
	s.why = NULL;
	if (json_value(&s, 0) == 0 && s.p != s.end)
		s.why = "trailing data after the value";
	if (s.why == NULL)
		return (0);
	*why = s.why;
	*at = (size_t)(s.p - s.start);
	return (-1);
}

/*
 * The first member named key (case-sensitive) and whether another follows:
 * cJSON keeps duplicate keys and returns the first, while other parsers
 * keep the last, so a duplicated field we act on is refused.
 */
static const cJSON *
task_field(const cJSON *doc, const char *key, int *dup)
{
	const cJSON	*c, *first = NULL;

	*dup = 0;
	for (c = doc->child; c != NULL; c = c->next) {
		if (c->string == NULL || strcmp(c->string, key) != 0)
			continue;
		if (first != NULL) {
			*dup = 1;
			break;
		}
		first = c;
	}
	return (first);
}

static const char *
json_type_name(const cJSON *v)
{
	if (cJSON_IsArray(v))
		return ("an array");
	if (cJSON_IsString(v))
		return ("a string");
	if (cJSON_IsNumber(v))
		return ("a number");
	if (cJSON_IsBool(v))
		return ("a boolean");
	if (cJSON_IsNull(v))
		return ("null");
	if (cJSON_IsObject(v))
		return ("an object");
	return ("something else");
}

/* An id or a parent: 1..TASK_ID_MAX printable ASCII bytes, no spaces. */
static int
task_id_check(const cJSON *v, const char *what, char *dst,
    const char *reason, struct task_error *err)
{
	const char	*s;
	size_t		 i, len;

	if (!cJSON_IsString(v))
		return (task_fail(err, reason, "\"%s\" must be a string, not "
		    "%s", what, json_type_name(v)));
	s = v->valuestring;
	len = strlen(s);
	if (len == 0 || len > TASK_ID_MAX)
		return (task_fail(err, reason, "\"%s\" must be 1 to %d bytes, "
		    "not %zu", what, TASK_ID_MAX, len));
	for (i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return (task_fail(err, reason, "\"%s\" has a byte "
			    "that is not printable ASCII at offset %zu (spaces "
			    "and control characters are refused)", what, i));
	memcpy(dst, s, len + 1);
	return (0);
}

static int
task_resources(const cJSON *v, struct task *out, struct task_error *err)
{
	const cJSON	*r;
	char		 q[80], vq[48], why[256];
	double		 val;
	size_t		 i;

	if (!cJSON_IsObject(v))
		return (task_fail(err, "task.badResources", "\"resources\" "
		    "must be an object, not %s", json_type_name(v)));
	for (r = v->child; r != NULL; r = r->next) {
		quote(q, sizeof q, r->string, 64);
		/* Refused, not normalised: charge.c says why. */
		if (charge_name_check(r->string, why, sizeof why) != 0)
			return (task_fail(err, "task.badResources", "resource "
			    "\"%s\" in \"resources\": %s", q, why));
		for (i = 0; i < out->nresources; i++)
			if (strcmp(out->resources[i].name, r->string) == 0)
				return (task_fail(err, "task.badResources",
				    "resource \"%s\" given twice", q));
		if (out->nresources == TASK_MAX_RESOURCES)
			return (task_fail(err, "task.badResources", "more "
			    "than %d resources", TASK_MAX_RESOURCES));
		if (cJSON_IsNumber(r))
			val = r->valuedouble;
		else if (cJSON_IsString(r)) {
			if (quantity_parse(r->valuestring, &val) != 0) {
				quote(vq, sizeof vq, r->valuestring, 32);
				return (task_fail(err, "task.badResources",
				    "resource \"%s\": \"%s\" is not a "
				    "Kubernetes quantity of zero or more", q,
				    vq));
			}
		} else
			return (task_fail(err, "task.badResources", "resource "
			    "\"%s\" must be a quantity string or a number, not "
			    "%s", q, json_type_name(r)));
		if (!isfinite(val) || val < 0)
			return (task_fail(err, "task.badResources", "resource "
			    "\"%s\" must be a finite quantity of zero or more",
			    q));
		as_strlcpy(out->resources[out->nresources].name, r->string,
		    sizeof out->resources[0].name);
		out->resources[out->nresources].value = val;
		out->nresources++;
	}
	return (0);
}

/* W3C Trace Context, version 00: 00-<32 hex>-<16 hex>-<2 hex>. */
static int
task_traceparent(const char *s, char *dst, size_t dstlen,
    struct task_error *err)
{
	static const char zeros[33] = "00000000000000000000000000000000";
	size_t	 i;

	if (strlen(s) != 55 || s[0] != '0' || s[1] != '0' || s[2] != '-' ||
	    s[35] != '-' || s[52] != '-')
		goto bad;
	for (i = 3; i < 55; i++) {
		if (i == 35 || i == 52)
			continue;
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			goto bad;
	}
	if (memcmp(s + 3, zeros, 32) == 0)
		return (task_fail(err, "task.badTraceparent", "the trace id "
		    "is all zeros"));
	if (memcmp(s + 36, zeros, 16) == 0)
		return (task_fail(err, "task.badTraceparent", "the parent id "
		    "is all zeros"));
	as_strlcpy(dst, s, dstlen);
	return (0);
bad:
	return (task_fail(err, "task.badTraceparent", "\"traceparent\" must "
	    "be 00-<32 hex>-<16 hex>-<2 hex> in lowercase (W3C Trace Context "
	    "version 00)"));
}

/* The fields, in the order the reasons are documented. */
static int
task_fields(const cJSON *doc, struct task *out, struct task_error *err)
{
	const cJSON	*v;
	int		 dup, rc;
	char		 q[48];

	if ((v = task_field(doc, "id", &dup)) == NULL)
		return (task_fail(err, "task.missingId", "the task has no "
		    "\"id\""));
	if (dup)
		return (task_fail(err, "task.badId", "\"id\" given twice"));
	if ((rc = task_id_check(v, "id", out->id, "task.badId", err)) != 0)
		return (rc);

	/* Optional fields: absent and null mean the same. */
	if ((v = task_field(doc, "parent", &dup)) != NULL && dup)
		return (task_fail(err, "task.badParent", "\"parent\" given "
		    "twice"));
	if (v != NULL && !cJSON_IsNull(v)) {
		if ((rc = task_id_check(v, "parent", out->parent,
		    "task.badParent", err)) != 0)
			return (rc);
		if (strcmp(out->parent, out->id) == 0)
			return (task_fail(err, "task.badParent", "a task "
			    "cannot be its own parent"));
	}

	if ((v = task_field(doc, "resources", &dup)) != NULL && dup)
		return (task_fail(err, "task.badResources", "\"resources\" "
		    "given twice"));
	if (v != NULL && !cJSON_IsNull(v) &&
	    (rc = task_resources(v, out, err)) != 0)
		return (rc);

	if ((v = task_field(doc, "traceparent", &dup)) != NULL && dup)
		return (task_fail(err, "task.badTraceparent", "\"traceparent\" "
		    "given twice"));
	if (v != NULL && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v))
			return (task_fail(err, "task.badTraceparent",
			    "\"traceparent\" must be a string, not %s",
			    json_type_name(v)));
		if ((rc = task_traceparent(v->valuestring, out->traceparent,
		    sizeof out->traceparent, err)) != 0)
			return (rc);
	}

	if ((v = task_field(doc, "deadline", &dup)) != NULL && dup)
		return (task_fail(err, "task.badDeadline", "\"deadline\" given "
		    "twice"));
	if (v != NULL && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v))
			return (task_fail(err, "task.badDeadline",
			    "\"deadline\" must be an RFC 3339 string, not %s",
			    json_type_name(v)));
		quote(q, sizeof q, v->valuestring, 40);
		if (as_parse_rfc3339(v->valuestring, &out->deadline) != 0)
			return (task_fail(err, "task.badDeadline", "\"%s\" is "
			    "not an RFC 3339 time such as "
			    "2026-11-25T17:34:45Z", q));
		/* 0 means "no deadline" in struct task. */
		if (out->deadline <= 0)
			return (task_fail(err, "task.badDeadline", "\"%s\" is "
			    "not after 1970-01-01T00:00:00Z", q));
	}
	return (0);
}

/*
 * On failure out is zeroed except out->id, which keeps the id when the id
 * itself was valid, so that the dead-letter record can name the task.
 */
int
task_parse(const char *buf, size_t len, size_t max_bytes, struct task *out,
    struct task_error *err)
{
	struct task_error	 scratch;
	cJSON			*doc = NULL;
	char			*copy = NULL;
	char			 id[TASK_ID_MAX + 1];
	const char		*why, *end = NULL;
	size_t			 at;
	int			 rc;

	if (err == NULL)
		err = &scratch;
	memset(err, 0, sizeof *err);
	memset(out, 0, sizeof *out);
	if (max_bytes == 0)
		max_bytes = TASK_MAX_BYTES_DEFAULT;
	if (len > max_bytes)
		return (task_fail(err, "task.tooLarge", "the message is %zu "
		    "bytes, more than the limit of %zu", len, max_bytes));
	if (buf == NULL) {
		buf = "";
		len = 0;
	}
	if ((at = as_utf8_invalid_at(buf, len)) < len)
		return (task_fail(err, "task.invalidUtf8", "the message is not "
		    "valid UTF-8 (byte %zu)", at));
	if (json_check(buf, len, &why, &at) != 0)
		return (task_fail(err, "task.notJson", "the message is not "
		    "JSON: %s at byte %zu", why, at));

	/*
	 * cJSON with require_null_terminated over len + 1 bytes: the parse
	 * must end exactly at our terminator.  The syntax pass has already
	 * refused NUL bytes, so the terminator is the only one.
	 */
	copy = xmalloc(len + 1);
	if (len > 0)
		memcpy(copy, buf, len);
	copy[len] = '\0';
	if ((doc = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 1)) ==
	    NULL) {
		rc = task_fail(err, "task.notJson", "the message is not JSON "
		    "(the parser stopped at byte %td)",
		    end != NULL ? end - copy : (ptrdiff_t)0);
		goto out;
	}
	if (!cJSON_IsObject(doc)) {
		rc = task_fail(err, "task.notObject", "a task is a JSON "
		    "object, not %s", json_type_name(doc));
		goto out;
	}
	if ((rc = task_fields(doc, out, err)) != 0) {
		memcpy(id, out->id, sizeof id);
		memset(out, 0, sizeof *out);
		memcpy(out->id, id, sizeof id);
	} else
		err->reason[0] = err->detail[0] = '\0';
out:
	cJSON_Delete(doc);
	free(copy);
	return (rc);
}

/*
 * Adds a string (NULL as ""), made valid UTF-8 first.  cJSON allocates
 * through xmalloc (json.h): no allocation here can fail.
 */
static void
json_put_str(cJSON *o, const char *key, const char *s)
{
	char	*c = utf8_clean(s != NULL ? s : "");

	cJSON_AddStringToObject(o, key, c);
	free(c);
}

/*
 * "original" holds the message as a JSON string when it is UTF-8 without
 * NUL bytes (cJSON strings end at a NUL); anything else goes in
 * "originalBase64" so the exact bytes survive.
 */
char *
task_dead_letter_record(const char *reason, const char *detail,
    const char *pool_ns, const char *pool_name, const char *task_id,
    const char *body, size_t len, double wall_now, size_t *outlen)
{
	cJSON	*o = cJSON_CreateObject();
	char	 at[40], *s;

	if (body == NULL)
		len = 0;
	json_put_str(o, "reason", reason);
	json_put_str(o, "detail", detail);
	s = xasprintf("%s/%s", pool_ns != NULL ? pool_ns : "",
	    pool_name != NULL ? pool_name : "");
	json_put_str(o, "pool", s);
	free(s);
	if (task_id != NULL)
		json_put_str(o, "taskId", task_id);
	as_rfc3339(wall_now, 1, at, sizeof at);
	json_put_str(o, "at", at);
	if (as_utf8_invalid_at(body, len) == len &&
	    (len == 0 || memchr(body, '\0', len) == NULL)) {
		s = xstrndup(len > 0 ? body : "", len);
		cJSON_AddStringToObject(o, "original", s);
	} else {
		s = as_base64_encode(body, len);
		cJSON_AddStringToObject(o, "originalBase64", s);
	}
	free(s);
	return (as_json_print_free(o, outlen));
}

/*
 * 1 when p[0..n) is the start of a well-formed sequence cut short: the
 * missing bytes are filled with the lowest ones allowed after p[0] and the
 * result must read as one sequence longer than n.
 */
static int
utf8_partial(const unsigned char *p, size_t n)
{
	unsigned char	 t[4];
	size_t		 i, got;

	if (n == 0 || n > 3)
		return (0);
	memcpy(t, p, n);
	for (i = n; i < 4; i++)
		t[i] = 0x80;
	if (n == 1 && t[0] == 0xe0)
		t[1] = 0xa0;
	else if (n == 1 && t[0] == 0xf0)
		t[1] = 0x90;
	got = as_utf8_seq(t, 4);
	return (got > n);
}

size_t
task_utf8_cut(const char *buf, size_t len)
{
	size_t	 at;

	if (len == 0)
		return (0);
	if (memchr(buf, '\0', len) != NULL)
		return ((size_t)-1);
	if ((at = as_utf8_invalid_at(buf, len)) == len)
		return (len);
	if (len - at < 4 && utf8_partial((const unsigned char *)buf + at,
	    len - at))
		return (at);
	return ((size_t)-1);
}

/* Adds s (NULL as "") cut to TASK_CUT_STR_MAX bytes, whole characters. */
static void
json_put_cut(cJSON *o, const char *key, const char *s)
{
	char	*c;

	if (s == NULL)
		s = "";
	c = xstrndup(s, as_utf8_cut(s, TASK_CUT_STR_MAX));
	json_put_str(o, key, c);
	free(c);
}

/*
 * The record keeps a bounded prefix, the size and the digest instead of the
 * message: an 8 MiB message used to become a 48 MiB record (escaped, or
 * base64), which a broker may refuse over its own limit, and the message
 * then comes back for ever.
 */
char *
task_dead_letter_record_cut(const char *reason, const char *detail,
    const char *pool_ns, const char *pool_name, const char *task_id,
    const char *prefix, size_t prefix_len, uint64_t size,
    const unsigned char sha256[32], double wall_now, size_t *outlen)
{
	cJSON	*o = cJSON_CreateObject();
	char	 at[40], hex[2 * 32 + 1], *s, *ns, *name;
	size_t	 keep, cut;

	if (prefix == NULL)
		prefix_len = 0;
	keep = prefix_len < TASK_PREFIX_BYTES ? prefix_len : TASK_PREFIX_BYTES;
	if (keep > size)
		keep = (size_t)size;
	json_put_cut(o, "reason", reason);
	json_put_cut(o, "detail", detail);
	ns = xstrndup(pool_ns != NULL ? pool_ns : "", TASK_CUT_STR_MAX);
	name = xstrndup(pool_name != NULL ? pool_name : "", TASK_CUT_STR_MAX);
	s = xasprintf("%s/%s", ns, name);
	json_put_str(o, "pool", s);
	free(s);
	free(ns);
	free(name);
	if (task_id != NULL)
		json_put_cut(o, "taskId", task_id);
	as_rfc3339(wall_now, 1, at, sizeof at);
	json_put_str(o, "at", at);
	cJSON_AddNumberToObject(o, "size", (double)size);
	as_hex(sha256, 32, hex);
	json_put_str(o, "sha256", hex);
	if ((cut = task_utf8_cut(prefix, keep)) != (size_t)-1) {
		s = xstrndup(cut > 0 ? prefix : "", cut);
		cJSON_AddStringToObject(o, "originalPrefix", s);
	} else {
		cut = keep;
		s = as_base64_encode(prefix, keep);
		cJSON_AddStringToObject(o, "originalPrefixBase64", s);
	}
	free(s);
	cJSON_AddBoolToObject(o, "truncated", cut < size);
	return (as_json_print_free(o, outlen));
}

uint64_t
task_hash(const char *ns, const char *id)
{
	const unsigned char	*p;
	uint64_t		 h = 14695981039346656037ULL;
	const uint64_t		 prime = 1099511628211ULL;

	for (p = (const unsigned char *)(ns != NULL ? ns : ""); *p; p++)
		h = (h ^ *p) * prime;
	h *= prime;		/* the NUL separator: h ^ 0 == h */
	for (p = (const unsigned char *)(id != NULL ? id : ""); *p; p++)
		h = (h ^ *p) * prime;
	return (h);
}

/*
 * agent-sandbox's NameHash (FNV-1a 32 over the name, as %08x), the hash
 * its warm-pool selector carries (ref/agent-sandbox-api.md section 5).
 */
void
task_name_hash(const char *s, char out[9])
{
	const unsigned char	*p = (const unsigned char *)s;
	uint32_t		 h = 2166136261U;

	for (; *p != '\0'; p++)
		h = (h ^ *p) * 16777619U;
	snprintf(out, 9, "%08" PRIx32, h);
}

static int
is_alnum(char c)
{
	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'));
}

/* SHA-256 of ns, its NUL and id (the shared libcrypto helper, util.c). */
void
task_claim_digest(const char *ns, const char *id,
    char out[CLAIM_DIGEST_HEX + 1])
{
	struct as_sha256 st = { NULL };
	unsigned char	 md[AS_SHA256_LEN];
	char		 hex[2 * AS_SHA256_LEN + 1];

	if (ns == NULL)
		ns = "";
	if (id == NULL)
		id = "";
	as_sha256_init(&st);
	as_sha256_update(&st, ns, strlen(ns) + 1);	/* the NUL too */
	as_sha256_update(&st, id, strlen(id));
	as_sha256_final(&st, md);
	as_hex(md, sizeof md, hex);
	memcpy(out, hex, CLAIM_DIGEST_HEX);
	out[CLAIM_DIGEST_HEX] = '\0';
}

void
task_claim_name(const char *prefix, const char *ns, const char *id,
    char out[CLAIM_NAME_MAX + 1])
{
	/* "-" and the digest follow the prefix. */
	char		 p[CLAIM_NAME_MAX - CLAIM_DIGEST_HEX];
	char		 digest[CLAIM_DIGEST_HEX + 1];
	const size_t	 max = sizeof p - 1;
	size_t		 n = 0;
	char		 c;

	for (; prefix != NULL && *prefix != '\0' && n < max; prefix++) {
		c = *prefix;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!is_alnum(c))
			c = '-';
		/* No leading '-' and no runs of them. */
		if (c == '-' && (n == 0 || p[n - 1] == '-'))
			continue;
		p[n++] = c;
	}
	while (n > 0 && p[n - 1] == '-')
		n--;
	p[n] = '\0';
	if (n == 0)
		as_strlcpy(p, "task", sizeof p);
	task_claim_digest(ns, id, digest);
	snprintf(out, CLAIM_NAME_MAX + 1, "%s-%s", p, digest);
}

static int
label_char_ok(char c)
{
	return (is_alnum(c) || c == '-' || c == '_' || c == '.');
}

/* Kubernetes label value: "" or <= 63 of [A-Za-z0-9._-], alnum at ends. */
static int
label_value_ok(const char *s)
{
	size_t	 i, len = strlen(s);

	if (len == 0)
		return (1);
	if (len > 63 || !is_alnum(s[0]) || !is_alnum(s[len - 1]))
		return (0);
	for (i = 0; i < len; i++)
		if (!label_char_ok(s[i]))
			return (0);
	return (1);
}

void
task_pool_label(const char *pool, char out[64])
{
	char	 h[9];
	size_t	 n = 0;
	char	 c;

	if (pool == NULL)
		pool = "";
	if (label_value_ok(pool)) {
		as_strlcpy(out, pool, 64);
		return;
	}
	task_name_hash(pool, h);
	/* Room for "-" and the 8 hex digits after the cut name. */
	for (; pool[0] != '\0' && n < 63 - 9; pool++) {
		c = label_char_ok(pool[0]) ? pool[0] : '-';
		if (n == 0 && !is_alnum(c))
			continue;
		out[n++] = c;
	}
	while (n > 0 && !is_alnum(out[n - 1]))
		n--;
	if (n == 0)
		memcpy(out, h, 9);
	else {
		out[n] = '-';
		memcpy(out + n + 1, h, 9);
	}
}

/*
 * The body follows ref/agent-sandbox-api.md section 9 step 1.  A ttl of
 * zero or less leaves spec.lifecycle out (no safety-net expiry) rather
 * than asking for a claim that expires as it is made.
 */
char *
task_claim_body(const struct claim_spec *cs, size_t *outlen)
{
	cJSON	*o, *md, *labels, *ann, *spec, *lc, *tc;
	char	 buf[64], t[40], *s;
	size_t	 n;

	o = cJSON_CreateObject();
	json_put_str(o, "apiVersion", K8S_SANDBOX_EXT_GROUP "/"
	    K8S_SANDBOX_VERSION);
	json_put_str(o, "kind", "SandboxClaim");
	md = cJSON_AddObjectToObject(o, "metadata");
	json_put_str(md, "name", cs->name);
	json_put_str(md, "namespace", cs->ns);

	labels = cJSON_AddObjectToObject(md, "labels");
	json_put_str(labels, TASK_LABEL_MANAGED, TASK_LABEL_MANAGED_VALUE);
	task_pool_label(cs->pool, buf);
	json_put_str(labels, TASK_LABEL_POOL, buf);
	snprintf(buf, sizeof buf, "%016" PRIx64, task_hash(cs->ns,
	    cs->task_id));
	json_put_str(labels, TASK_LABEL_TASK, buf);
	snprintf(buf, sizeof buf, "%016" PRIx64, task_hash(cs->ns,
	    cs->root_id));
	json_put_str(labels, TASK_LABEL_ROOT, buf);
	snprintf(buf, sizeof buf, "%d", cs->depth);
	json_put_str(labels, TASK_LABEL_DEPTH, buf);
	/* agent-sandbox's metrics normalise unknown values to "unknown". */
	json_put_str(labels, "agents.x-k8s.io/created-by", "agentscaler");

	ann = cJSON_AddObjectToObject(md, "annotations");
	json_put_str(ann, TASK_ANN_TASK_ID, cs->task_id);
	if (cs->parent_id != NULL && cs->parent_id[0] != '\0')
		json_put_str(ann, TASK_ANN_PARENT_ID, cs->parent_id);
	json_put_str(ann, TASK_ANN_ROOT_ID, cs->root_id);
	json_put_str(ann, TASK_ANN_INSTANCE, cs->instance);
	/* The Go SDK writes RFC3339Nano here (ref section 4.4). */
	as_rfc3339(cs->wall_now, 1, t, sizeof t);
	json_put_str(ann, TASK_ANN_REQUESTED_AT, t);
	if (cs->nresources > 0) {
		cJSON	*ro = cJSON_CreateObject();

		for (n = 0; n < cs->nresources && n < TASK_MAX_RESOURCES; n++)
			cJSON_AddNumberToObject(ro, cs->resources[n].name,
			    cs->resources[n].value);
		s = as_json_print_free(ro, &n);
		json_put_str(ann, TASK_ANN_RESOURCES, s);
		free(s);
	}
	if (cs->traceparent != NULL && cs->traceparent[0] != '\0') {
		json_put_str(ann, TASK_ANN_TRACEPARENT, cs->traceparent);
		/*
		 * The value encoding of opentelemetry.io/trace-context is not
		 * pinned down upstream (ref/agent-sandbox-api.md section 14);
		 * a JSON text carrier map is our best reading of the Go SDK.
		 * The plain agentscaler.io/traceparent above is the one we
		 * rely on ourselves.
		 */
		tc = cJSON_CreateObject();
		json_put_str(tc, "traceparent", cs->traceparent);
		s = as_json_print_free(tc, &n);
		json_put_str(ann, "opentelemetry.io/trace-context", s);
		free(s);
	}

	spec = cJSON_AddObjectToObject(o, "spec");
	json_put_str(cJSON_AddObjectToObject(spec, "warmPoolRef"), "name",
	    cs->warm_pool);
	if (cs->ttl_seconds > 0) {
		lc = cJSON_AddObjectToObject(spec, "lifecycle");
		as_rfc3339(cs->wall_now + (double)cs->ttl_seconds, 0, t,
		    sizeof t);
		json_put_str(lc, "shutdownTime", t);
		/*
		 * DeleteForeground, not Delete: the controller then deletes
		 * the claim with propagationPolicy Foreground, so the claim
		 * (and our quota's hold on it) outlives its Sandbox and pod;
		 * Delete frees the claim at once while the pod still runs.
		 * Upstream extensions/api/v1beta1/sandboxclaim_types.go
		 * (ShutdownPolicyDeleteForeground), accepted since before
		 * v0.5 (the v1alpha1 enum has it too).
		 */
		json_put_str(lc, "shutdownPolicy", "DeleteForeground");
	}
	return (as_json_print_free(o, outlen));
}

/* Borrowed lookups that tolerate a NULL or non-object parent. */
static const cJSON *
jget(const cJSON *o, const char *key)
{
	if (!cJSON_IsObject(o))
		return (NULL);
	return (cJSON_GetObjectItemCaseSensitive(o, key));
}

/* jget() for a tree the caller may change. */
static cJSON *
jmut(cJSON *o, const char *key)
{
	if (!cJSON_IsObject(o))
		return (NULL);
	return (cJSON_GetObjectItemCaseSensitive(o, key));
}

static double
jtime(const cJSON *o, const char *key)
{
	const char	*s = as_json_str(o, key);
	double		 t;

	if (s == NULL || as_parse_rfc3339(s, &t) != 0)
		return (0);
	return (t);
}

/* The depth label: a non-negative decimal that fits an int, else 0. */
static int
claim_depth(const char *s)
{
	int	 v = 0;
	size_t	 i;

	if (s == NULL || s[0] == '\0' || strlen(s) > 9)
		return (0);
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (0);
		v = v * 10 + (s[i] - '0');
	}
	return (v);
}

/* The resources annotation: {"cpu": 0.5, ...}; bad entries are skipped. */
static void
claim_resources(const char *text, struct claim_view *out)
{
	cJSON		*o;
	const cJSON	*r;

	if (text == NULL || (o = cJSON_Parse(text)) == NULL)
		return;
	for (r = cJSON_IsObject(o) ? o->child : NULL; r != NULL &&
	    out->nresources < TASK_MAX_RESOURCES; r = r->next) {
		if (!cJSON_IsNumber(r) || !(r->valuedouble >= 0) ||
		    r->string == NULL)
			continue;
		copy_cut(out->resources[out->nresources].name,
		    sizeof out->resources[0].name, r->string);
		out->resources[out->nresources].value = r->valuedouble;
		out->nresources++;
	}
	cJSON_Delete(o);
}

/* The tree budget annotation; a bad one reads as none. */
static void
claim_tree_budget(const char *text, struct claim_view *out)
{
	cJSON		*o;
	const cJSON	*s, *at;

	out->tree_seconds = -1;
	if (text == NULL || (o = cJSON_Parse(text)) == NULL)
		return;
	s = cJSON_GetObjectItemCaseSensitive(o, "seconds");
	at = cJSON_GetObjectItemCaseSensitive(o, "at");
	if (cJSON_IsNumber(s) && s->valuedouble >= 0 && cJSON_IsNumber(at) &&
	    at->valuedouble > 0) {
		out->tree_seconds = s->valuedouble;
		out->tree_saved_at = at->valuedouble;
	}
	cJSON_Delete(o);
}

int
task_claim_parse(const cJSON *obj, struct claim_view *out, char *err,
    size_t errlen)
{
	const cJSON	*md, *labels, *ann, *status, *c;
	const char	*name, *s, *type;
	int		 seen_ready = 0;

	memset(out, 0, sizeof *out);
	out->ready = -1;
	md = jget(obj, "metadata");
	if ((name = as_json_str(md, "name")) == NULL || name[0] == '\0') {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "the SandboxClaim has no "
			    "metadata.name");
		return (-AS_EPROTO);
	}
	copy_cut(out->name, sizeof out->name, name);
	copy_cut(out->ns, sizeof out->ns, as_json_str(md, "namespace"));
	copy_cut(out->uid, sizeof out->uid, as_json_str(md, "uid"));
	out->created = jtime(md, "creationTimestamp");
	s = as_json_str(md, "deletionTimestamp");
	out->deleting = s != NULL && s[0] != '\0';

	labels = jget(md, "labels");
	s = as_json_str(labels, TASK_LABEL_MANAGED);
	out->managed = s != NULL && strcmp(s, TASK_LABEL_MANAGED_VALUE) == 0;
	copy_cut(out->pool, sizeof out->pool, as_json_str(labels,
	    TASK_LABEL_POOL));
	out->depth = claim_depth(as_json_str(labels, TASK_LABEL_DEPTH));

	ann = jget(md, "annotations");
	copy_cut(out->task_id, sizeof out->task_id, as_json_str(ann,
	    TASK_ANN_TASK_ID));
	copy_cut(out->parent_id, sizeof out->parent_id, as_json_str(ann,
	    TASK_ANN_PARENT_ID));
	copy_cut(out->root_id, sizeof out->root_id, as_json_str(ann,
	    TASK_ANN_ROOT_ID));
	out->requested_at = jtime(ann, TASK_ANN_REQUESTED_AT);
	claim_resources(as_json_str(ann, TASK_ANN_RESOURCES), out);
	claim_tree_budget(as_json_str(ann, TASK_ANN_TREE_BUDGET), out);

	out->shutdown_time = jtime(jget(jget(obj, "spec"), "lifecycle"),
	    "shutdownTime");

	status = jget(obj, "status");
	copy_cut(out->sandbox, sizeof out->sandbox,
	    as_json_str(jget(status, "sandbox"), "name"));
	c = cJSON_GetArrayItem(jget(jget(status, "sandbox"), "podIPs"), 0);
	if (cJSON_IsString(c) && strlen(c->valuestring) < sizeof out->pod_ip)
		as_strlcpy(out->pod_ip, c->valuestring, sizeof out->pod_ip);
	c = jget(status, "conditions");
	if (!cJSON_IsArray(c))
		return (0);
	for (c = c->child; c != NULL; c = c->next) {
		if ((type = as_json_str(c, "type")) == NULL)
			continue;
		s = as_json_str(c, "status");
		if (strcmp(type, "Ready") == 0 && !seen_ready) {
			seen_ready = 1;
			if (s != NULL && strcmp(s, "True") == 0)
				out->ready = 1;
			else if (s != NULL && strcmp(s, "False") == 0)
				out->ready = 0;
			copy_cut(out->ready_reason, sizeof out->ready_reason,
			    as_json_str(c, "reason"));
			copy_cut(out->ready_message,
			    sizeof out->ready_message,
			    as_json_str(c, "message"));
		} else if (strcmp(type, "Finished") == 0 && s != NULL &&
		    strcmp(s, "True") == 0) {
			out->finished = 1;
			copy_cut(out->finished_reason,
			    sizeof out->finished_reason,
			    as_json_str(c, "reason"));
		}
	}
	return (0);
}

void
task_claim_slim(cJSON *obj, void *arg)
{
	static const char *const top[] = { "metadata", "spec", "status",
	    NULL };
	static const char *const md[] = { "name", "namespace", "uid",
	    "resourceVersion", "creationTimestamp", "deletionTimestamp",
	    "labels", "annotations", NULL };
	static const char *const labels[] = { TASK_LABEL_MANAGED,
	    TASK_LABEL_POOL, TASK_LABEL_DEPTH, NULL };
	static const char *const ann[] = { TASK_ANN_TASK_ID,
	    TASK_ANN_PARENT_ID, TASK_ANN_ROOT_ID, TASK_ANN_REQUESTED_AT,
	    TASK_ANN_RESOURCES, TASK_ANN_TREE_BUDGET, NULL };
	static const char *const spec[] = { "lifecycle", NULL };
	static const char *const lifecycle[] = { "shutdownTime", NULL };
	static const char *const status[] = { "sandbox", "conditions", NULL };
	static const char *const cond[] = { "type", "status", "reason",
	    "message", NULL };
	cJSON		*m, *c;

	(void)arg;
	as_json_keep(obj, top);
	m = jmut(obj, "metadata");
	as_json_keep(m, md);
	as_json_keep(jmut(m, "labels"), labels);
	as_json_keep(jmut(m, "annotations"), ann);
	as_json_keep(jmut(obj, "spec"), spec);
	as_json_keep(jmut(jmut(obj, "spec"), "lifecycle"), lifecycle);
	as_json_keep(jmut(obj, "status"), status);
	c = jmut(jmut(obj, "status"), "conditions");
	if (cJSON_IsArray(c))
		for (c = c->child; c != NULL; c = c->next)
			as_json_keep(c, cond);
}

static int
claim_reason_in(const struct claim_view *cv, const char *const *list,
    size_t n)
{
	size_t	 i;

	if (cv->ready == 1)
		return (0);
	for (i = 0; i < n; i++)
		if (strcmp(cv->ready_reason, list[i]) == 0)
			return (1);
	return (0);
}

/*
 * The reasons the controller never retries (upstream
 * extensions/controllers/sandboxclaim_controller.go, computeReadyCondition),
 * plus the forwarded pod outcomes: a pod that ends is not recreated
 * (ref/agent-sandbox-api.md sections 4.3 and 9, agent-sandbox #729).  The
 * Python SDK also fails fast on TemplateNotFound and WarmPoolNotFound, but
 * the controller requeues those and recovers once the object appears
 * (#1315): they are waits, not failures.
 */
int
task_claim_terminal(const struct claim_view *cv)
{
	static const char *const terminal[] = {
		"InvalidMetadata", "EnvVarsInjectionRejected",
		"VolumeClaimTemplatesError", "ClaimExpired", "SandboxExpired",
		"PodFailed", "PodSucceeded",
	};

	return (claim_reason_in(cv, terminal, AS_ARRAY_SIZE(terminal)));
}

/*
 * Pod-level problems reach the claim only as these non-terminal reasons
 * (ref/agent-sandbox-api.md section 15): the controller retries them.
 */
int
task_claim_cluster_wait(const struct claim_view *cv)
{
	static const char *const wait[] = {
		"ReconcilerError", "DependenciesNotReady", "TemplateNotFound",
		"WarmPoolNotFound",
	};

	return (claim_reason_in(cv, wait, AS_ARRAY_SIZE(wait)));
}

/*
 * The original is embedded by concatenation, byte for byte: it passed
 * task_parse, so it is one strict JSON text already, and re-printing it
 * through cJSON would change numbers and spacing the producer chose.
 */
char *
task_handoff_body(const struct handoff_spec *h, const char *orig, size_t len,
    size_t *outlen)
{
	static const char pre[] = "{\"agentscaler\":", mid[] = ",\"task\":";
	cJSON	*o = cJSON_CreateObject();
	char	*meta, *out;
	size_t	 mlen, n = 0;

	if (orig == NULL || len == 0) {
		orig = "null";
		len = 4;
	}
	json_put_str(o, "namespace", h->ns);
	json_put_str(o, "pool", h->pool);
	json_put_str(o, "claim", h->claim);
	json_put_str(o, "sandbox", h->sandbox);
	json_put_str(o, "id", h->task_id);
	if (h->parent_id != NULL && h->parent_id[0] != '\0')
		json_put_str(o, "parent", h->parent_id);
	else
		cJSON_AddNullToObject(o, "parent");
	json_put_str(o, "root", h->root_id);
	cJSON_AddNumberToObject(o, "depth", h->depth);
	meta = as_json_print_free(o, &mlen);

	out = xmalloc(sizeof pre - 1 + mlen + sizeof mid - 1 + len + 2);
	memcpy(out + n, pre, sizeof pre - 1);
	n += sizeof pre - 1;
	memcpy(out + n, meta, mlen);
	n += mlen;
	memcpy(out + n, mid, sizeof mid - 1);
	n += sizeof mid - 1;
	memcpy(out + n, orig, len);
	n += len;
	out[n++] = '}';
	out[n] = '\0';
	free(meta);
	if (outlen != NULL)
		*outlen = n;
	return (out);
}
