/*
 * fuzz_watch.c: libFuzzer target for the watch-stream event parser
 * (watch_line_parse, k8s/informer.c), pure: one newline-delimited event of
 * a Kubernetes watch.  Every line is an event of a known kind or refused
 * with a reason; the detached object is the caller's to free.
 *
 * The line is also read here on its own (cJSON) and the parser's answer
 * checked against it: the kind is the one "type" names (a line without a
 * string type and an object is refused), the object handed back is the
 * event's object unchanged, a BOOKMARK's resourceVersion is the object's,
 * and an ERROR's code, 410-ness and message are the Status object's.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/k8s/informer.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The kind "type" names; WATCH_LINE_BAD for anything else. */
static enum watch_line
expected_kind(const cJSON *ev)
{
	static const struct {
		const char	*type;
		enum watch_line	 kind;
	} types[] = {
		{ "ADDED", WATCH_LINE_ADDED },
		{ "MODIFIED", WATCH_LINE_MODIFIED },
		{ "DELETED", WATCH_LINE_DELETED },
		{ "BOOKMARK", WATCH_LINE_BOOKMARK },
		{ "ERROR", WATCH_LINE_ERROR },
	};
	const cJSON	*type, *obj;
	size_t		 i;

	if (ev == NULL)
		return (WATCH_LINE_BAD);
	type = cJSON_GetObjectItemCaseSensitive(ev, "type");
	obj = cJSON_GetObjectItemCaseSensitive(ev, "object");
	if (!cJSON_IsString(type) || !cJSON_IsObject(obj))
		return (WATCH_LINE_BAD);
	for (i = 0; i < sizeof types / sizeof types[0]; i++)
		if (strcmp(type->valuestring, types[i].type) == 0)
			return (types[i].kind);
	return (WATCH_LINE_BAD);
}

/* a and b print the same (unformatted). */
static int
same_json(const cJSON *a, const cJSON *b)
{
	char	*pa = cJSON_PrintUnformatted(a), *pb = cJSON_PrintUnformatted(b);
	int	 same = pa != NULL && pb != NULL && strcmp(pa, pb) == 0;

	cJSON_free(pa);
	cJSON_free(pb);
	return (same);
}

static const char *
string_of(const cJSON *o, const char *name)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, name);

	return (cJSON_IsString(v) ? v->valuestring : NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct watch_line_info w;
	enum watch_line	 kind;
	const cJSON	*obj, *md, *code;
	const char	*rv, *reason, *message;
	cJSON		*ev;
	double		 want_code;
	int		 want_gone;
	size_t		 n;

	/* Filled, so that an unterminated message is seen below. */
	memset(&w, 0x5a, sizeof w);
	kind = watch_line_parse((const char *)data, size, &w);
	if (memchr(w.msg, '\0', sizeof w.msg) == NULL)
		abort();
	ev = cJSON_ParseWithLength((const char *)data, size);
	if (kind != expected_kind(ev))
		abort();
	obj = cJSON_GetObjectItemCaseSensitive(ev, "object");
	switch (kind) {
	case WATCH_LINE_BAD:
		if (w.obj != NULL || w.msg[0] == '\0')
			abort();	/* a refusal always explains itself */
		break;
	case WATCH_LINE_ERROR:
		if (!same_json(w.obj, obj) || w.rv != NULL)
			abort();
		code = cJSON_GetObjectItemCaseSensitive(obj, "code");
		want_code = cJSON_IsNumber(code) ? code->valuedouble : 0;
		if (!(w.code == want_code || (isnan(w.code) &&
		    isnan(want_code))))
			abort();
		reason = string_of(obj, "reason");
		want_gone = want_code == 410 || (reason != NULL &&
		    (strcmp(reason, "Expired") == 0 ||
		    strcmp(reason, "Gone") == 0));
		if (w.gone != want_gone)
			abort();
		/* The server's message, cut to fit; never an empty one. */
		message = string_of(obj, "message");
		if (message == NULL || message[0] == '\0')
			message = "no message";
		n = strlen(w.msg);
		if (n == 0 || strncmp(w.msg, message, n) != 0 ||
		    (n < sizeof w.msg - 1 && message[n] != '\0'))
			abort();
		break;
	default:
		/* The event's object, detached unchanged. */
		if (!cJSON_IsObject(w.obj) || !same_json(w.obj, obj))
			abort();
		if (kind != WATCH_LINE_BOOKMARK) {
			if (w.rv != NULL)
				abort();
			break;
		}
		md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
		rv = string_of(md, "resourceVersion");
		if (w.rv == NULL || strcmp(w.rv, rv != NULL ? rv : "") != 0)
			abort();
		break;
	}
	cJSON_Delete(ev);
	cJSON_Delete(w.obj);
	return (0);
}
