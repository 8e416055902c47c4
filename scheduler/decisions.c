/*
 * decisions.c: the ring of a scale pool's recent decisions (decisions.h).
 * Entries are written in place, oldest overwritten; nothing allocates, so a
 * pool carries its ring by value.
 */
#include <stddef.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "decisions.h"

int
decisions_note(struct decisions *r, double wall, double backlog,
    long current, long desired, const char *reason, double every)
{
	const struct decision_entry *last;
	struct decision_entry *e;

	if (r->n > 0) {
		last = &r->e[(r->n - 1) % DECISIONS_MAX];
		if (last->desired == desired && last->reason == reason &&
		    wall - last->wall < every)
			return (0);
	}
	e = &r->e[r->n++ % DECISIONS_MAX];
	e->wall = wall;
	e->backlog = backlog;
	e->current = current;
	e->desired = desired;
	e->reason = reason;
	return (1);
}

size_t
decisions_count(const struct decisions *r)
{
	return (r->n < DECISIONS_MAX ? r->n : DECISIONS_MAX);
}

const struct decision_entry *
decisions_at(const struct decisions *r, size_t i)
{
	size_t	 first = r->n - decisions_count(r);

	return (&r->e[(first + i) % DECISIONS_MAX]);
}

void
decisions_json(const struct decisions *r, cJSON *arr)
{
	const struct decision_entry *e;
	cJSON	*o;
	char	 at[40];
	size_t	 i;

	for (i = 0; i < decisions_count(r); i++) {
		e = decisions_at(r, i);
		as_rfc3339(e->wall, 0, at, sizeof at);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "at", at);
		cJSON_AddNumberToObject(o, "backlog", e->backlog);
		cJSON_AddNumberToObject(o, "replicas", (double)e->current);
		cJSON_AddNumberToObject(o, "desired", (double)e->desired);
		cJSON_AddStringToObject(o, "reason",
		    e->reason != NULL ? e->reason : "");
		cJSON_AddItemToArray(arr, o);
	}
}
