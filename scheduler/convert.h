/*
 * convert.h: `agentscaler convert`: KEDA ScaledObjects (with their
 * TriggerAuthentications) into AgentPools (issue 18; README "From KEDA
 * to agentscaler").  Pure: parsed documents in, YAML text out.
 *
 * Each ScaledObject whose triggers include a rabbitmq, redis (a list) or
 * redis-streams trigger becomes one AgentPool of the same name and
 * namespace on the same target, from its first such trigger.  Every field
 * that does not carry over is named in a `#` comment above the pool with
 * the reason; so are the mappings whose meaning shifts.  The pool comes
 * out in shadow mode unless told otherwise: it is meant to run beside the
 * ScaledObject first.
 *
 * Ownership: the documents are borrowed; out is appended to (the caller
 * frees out->p).
 */
#ifndef AGENTSCALER_CONVERT_H
#define AGENTSCALER_CONVERT_H

#include <stddef.h>

struct as_buf;
struct cJSON;

/*
 * docs: an array of objects (yaml.h's as_yaml_parse()).  shadow: 1 to
 * emit spec.shadow: true.  Returns the number of AgentPools written
 * (objects of other kinds are skipped, each with a comment), or
 * -AS_EINVAL with err when docs has no ScaledObject at all.
 */
int	 convert_keda(const struct cJSON *docs, int shadow, struct as_buf *out,
	    char *err, size_t errlen);

#endif
