/*
 * dispatch_recent.c: what the status page (/ui) shows of dispatch beyond
 * dispatcher_status(): the deferred tasks with their reasons and the
 * newest dead letters from the explain ring (d->recent).  Both are
 * bounded per request (STATUS_DEFERRED per namespace, STATUS_DEAD in all),
 * so a namespace with thousands deferred costs the page a few dozen rows.
 */
#include <stddef.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "config.h"
#include "quota.h"

#include "dispatch_int.h"

#define STATUS_DEFERRED	25	/* deferred tasks listed per namespace */
#define STATUS_DEAD	25	/* newest dead letters listed */

/* One deferred task as a /status row; pos: its place in its queue. */
static void
dispatch_recent_deferred_row(const struct dns *ns, const struct dtask *t,
    size_t pos, cJSON *arr)
{
	cJSON	*o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "namespace", ns->name);
	cJSON_AddStringToObject(o, "task", t->id);
	cJSON_AddStringToObject(o, "pool", t->pool != NULL ?
	    t->pool->cfg->name : t->pool_name != NULL ? t->pool_name : "");
	cJSON_AddStringToObject(o, "root", t->root);
	cJSON_AddNumberToObject(o, "depth", t->depth);
	cJSON_AddStringToObject(o, "reason", quota_reason_name(t->why));
	cJSON_AddStringToObject(o, "detail",
	    t->why_detail != NULL ? t->why_detail : "");
	cJSON_AddNumberToObject(o, "queuePosition", (double)pos);
	cJSON_AddItemToArray(arr, o);
}

void
dispatcher_status_recent(const struct dispatcher *d, cJSON *root)
{
	const struct dns *ns;
	const struct dtask *t;
	const struct recent *r;
	cJSON	*arr, *o;
	char	 at[40];
	size_t	 i, n, pos;

	arr = cJSON_AddArrayToObject(root, "deferredTasks");
	LIST_FOREACH(ns, &d->nss, entry) {
		/* Descendants are admitted first: list them first. */
		n = pos = 0;
		TAILQ_FOREACH(t, &ns->defer_desc, dq) {
			if (n++ >= STATUS_DEFERRED)
				break;
			dispatch_recent_deferred_row(ns, t, pos++, arr);
		}
		pos = 0;
		TAILQ_FOREACH(t, &ns->defer_roots, dq) {
			if (n++ >= STATUS_DEFERRED)
				break;
			dispatch_recent_deferred_row(ns, t, pos++, arr);
		}
	}
	arr = cJSON_AddArrayToObject(root, "recentDeadLetters");
	for (i = 0; i < d->nrecent && i < RECENT && i < STATUS_DEAD; i++) {
		r = &d->recent[(d->nrecent - 1 - i) % RECENT];
		as_rfc3339(r->wall, 0, at, sizeof at);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "namespace", r->ns);
		cJSON_AddStringToObject(o, "task", r->id);
		cJSON_AddStringToObject(o, "reason", r->reason);
		cJSON_AddStringToObject(o, "detail", r->detail);
		cJSON_AddStringToObject(o, "at", at);
		cJSON_AddItemToArray(arr, o);
	}
}
