/*
 * json.c: small helpers over cJSON shared by every layer (json.h).  The
 * allocation hooks themselves live beside xmalloc in util.c, the object
 * every binary links, so that no program can use cJSON before they are in.
 */
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"

const char *
as_json_str(const cJSON *o, const char *key)
{
	const cJSON	*v;

	if (!cJSON_IsObject(o))
		return (NULL);
	v = cJSON_GetObjectItemCaseSensitive(o, key);
	return (cJSON_IsString(v) ? v->valuestring : NULL);
}

char *
as_json_print_free(cJSON *o, size_t *lenp)
{
	char	*s;

	if (o == NULL)
		return (NULL);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (s == NULL)
		abort();	/* cannot happen with xmalloc's hooks */
	if (lenp != NULL)
		*lenp = strlen(s);
	return (s);
}

void
as_json_wipe(cJSON *o)
{
	cJSON	*it;

	if (o == NULL)
		return;
	if (cJSON_IsString(o) && o->valuestring != NULL)
		explicit_bzero(o->valuestring, strlen(o->valuestring));
	cJSON_ArrayForEach(it, o)
		as_json_wipe(it);
}

void
as_json_keep(cJSON *o, const char *const *keep)
{
	cJSON	*c, *next;
	size_t	 k;

	if (!cJSON_IsObject(o))
		return;
	for (c = o->child; c != NULL; c = next) {
		next = c->next;
		for (k = 0; keep[k] != NULL; k++)
			if (c->string != NULL && strcmp(c->string, keep[k]) == 0)
				break;
		if (keep[k] == NULL)
			cJSON_Delete(cJSON_DetachItemViaPointer(o, c));
	}
}
