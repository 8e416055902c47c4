/*
 * fuzz_watch.c: libFuzzer target for the watch-stream event parser
 * (watch_line_parse, k8s/informer.c), pure: one newline-delimited event of
 * a Kubernetes watch.  Every line is an event of a known kind or refused
 * with a reason; the detached object is the caller's to free.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/k8s/informer.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct watch_line_info w;
	enum watch_line	 kind;

	kind = watch_line_parse((const char *)data, size, &w);
	if (memchr(w.msg, '\0', sizeof w.msg) == NULL)
		abort();
	switch (kind) {
	case WATCH_LINE_BAD:
		if (w.obj != NULL || w.msg[0] == '\0')
			abort();	/* a refusal always explains itself */
		break;
	case WATCH_LINE_ERROR:
		if (w.obj == NULL || w.msg[0] == '\0')
			abort();
		break;
	default:
		if (!cJSON_IsObject(w.obj))
			abort();
		if (kind != WATCH_LINE_BOOKMARK && w.rv != NULL)
			abort();
		break;
	}
	cJSON_Delete(w.obj);
	return (0);
}
