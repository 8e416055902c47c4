/*
 * json.h: the project's use of cJSON, wrapped once (STYLE.md habit 10).
 *
 * Allocation: every cJSON allocation goes through xmalloc (common.h), so
 * it aborts on out-of-memory as the rest of the project does.  The hooks
 * are installed before main() runs, by a constructor in the allocation
 * object (scheduler/rt/util.c), in every binary, test and fuzz target that
 * links the runtime.  So cJSON_Create*, cJSON_Add*ToObject and
 * cJSON_Print* never return NULL for want of memory, and nothing checks
 * them for it; what cJSON_Print* returns is freed with free().
 *
 * Ownership: the getters return borrowed pointers into the tree; the
 * printers return a new string the caller frees with free().
 */
#ifndef AGENTSCALER_JSON_H
#define AGENTSCALER_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

/*
 * The string member key of o (borrowed), or NULL when o is not an object,
 * key is absent or its value is not a string.
 */
const char	*as_json_str(const cJSON *o, const char *key);

/*
 * o printed without whitespace, in a new string (its length in *lenp when
 * lenp is not NULL), then o deleted.  NULL only for a NULL o.
 */
char		*as_json_print_free(cJSON *o, size_t *lenp);

/*
 * Wipes the text of every string in o and below it (values, not keys):
 * what cJSON copied out of a document that held a secret (a token, a
 * Secret's data), before cJSON_Delete() frees it.  NULL does nothing.
 */
void		 as_json_wipe(cJSON *o);

/*
 * Deletes every member of the object o whose key is not in keep (a
 * NULL-terminated list); what an informer's transform uses to cache only
 * what its readers read.  o NULL or not an object: nothing.
 */
void		 as_json_keep(cJSON *o, const char *const *keep);

#ifdef AS_TESTING
/* Test builds only: how many times xmalloc() has run (cJSON's hooks). */
extern unsigned long	 as_xmalloc_calls;
#endif

#endif
