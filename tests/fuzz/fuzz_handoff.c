/*
 * fuzz_handoff.c: libFuzzer target for the agent protocol's answers
 * (scheduler/handoff_http.c hh_answer_parse), pure.  Whatever the bytes: a
 * refusal names a reason and leaves nothing behind; an accepted EventList
 * has at most 256 events, in sequence from seq 1 up, nothing after a
 * terminal event, next the last seq; an accepted Error has a reason.  The
 * input is also taken as a task id (the path must stay printable ASCII
 * without spaces) and as a Result's runtime result (the Result must parse
 * again).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "scheduler/handoff_http.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_answer(const struct hh_answer *a)
{
	size_t	 i;

	switch (a->kind) {
	case HH_ERROR:
		if (a->reason == NULL || a->reason[0] == '\0' ||
		    a->detail == NULL)
			abort();
		break;
	case HH_TASK_STATUS:
		if (a->id == NULL || a->attempt < 1 || a->next < 0)
			abort();
		break;
	case HH_EVENT_LIST:
		if (a->nevents > HH_MAX_EVENTS || a->attempt < 1 ||
		    (a->nevents > 0 && a->next != a->events[a->nevents -
		    1].seq))
			abort();
		for (i = 0; i < a->nevents; i++) {
			if (a->events[i].seq < 1 || a->events[i].time == NULL)
				abort();
			if (i > 0 && (a->events[i].seq !=
			    a->events[i - 1].seq + 1 ||
			    a->events[i - 1].type == HH_EV_COMPLETED ||
			    a->events[i - 1].type == HH_EV_FAILED))
				abort();
			if (a->events[i].type == HH_EV_FAILED &&
			    a->events[i].reason == NULL)
				abort();
			if (a->events[i].type == HH_EV_SPAWN &&
			    (a->events[i].key == NULL ||
			    a->events[i].key[0] == '\0' ||
			    a->events[i].task == NULL))
				abort();
		}
		break;
	case HH_REPLY_ACK:
		/* The runtime's, and nothing more is read from it. */
		if (a->events != NULL || a->nevents != 0)
			abort();
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hh_answer a;
	struct hh_result r;
	char		 err[160], *s, *p, *body;
	const char	*c;
	cJSON		*j;

	err[0] = '\0';
	if (hh_answer_parse((const char *)data, size, &a, err,
	    sizeof err) == 0) {
		check_answer(&a);
		hh_answer_free(&a);
	} else if (err[0] == '\0' || a.doc != NULL || a.events != NULL)
		abort();

	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	p = hh_path(s, "");
	for (c = p; *c != '\0'; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			abort();
	free(p);

	memset(&r, 0, sizeof r);
	r.id = s;
	r.result = j = cJSON_ParseWithLength((const char *)data, size);
	r.finished_at = 1796575272.004;
	body = hh_result_body(&r, NULL);
	cJSON_Delete(j);
	if ((j = cJSON_Parse(body)) == NULL)
		abort();
	cJSON_Delete(j);
	free(body);
	free(s);
	return (0);
}
