/*
 * charge.h: what a dispatched task is charged against its namespace's
 * AgentQuota (DESIGN.md sections 5 to 7).  A task's "resources" are the
 * producer's claim, not the price: the pod agent-sandbox starts for it has
 * the requests of the pool's SandboxTemplate, whatever the message says.
 * So the charge is, per resource name, the larger of the task's request and
 * the pool's floor (the template's effective pod requests, or the
 * AgentPool's spec.sandbox.defaultResources when set); a resource only the
 * task names is charged as asked, one only the floor names as the floor.
 *
 * Resource names are Kubernetes' own, so that a task's "CPU" can never slip
 * past a quota on "cpu": see charge_name_check().  Everything here is pure.
 *
 * Ownership: all arguments are borrowed; results go into caller arrays.
 */
#ifndef AGENTSCALER_CHARGE_H
#define AGENTSCALER_CHARGE_H

#include <stddef.h>

#include "task.h"

struct cJSON;

/*
 * Checks a resource name as Kubernetes checks a container's requests
 * (k8s.io/kubernetes pkg/apis/core/validation, validateContainerResourceName
 * with helper.IsStandardContainerResourceName and IsExtendedResourceName):
 * without a domain only cpu, memory, ephemeral-storage and
 * hugepages-<quantity>; with one, a DNS-1123 subdomain (lowercase), '/', and
 * a name of at most 63 characters [A-Za-z0-9._-] starting and ending
 * alphanumeric, the domain not kubernetes.io or under it.  Returns 0, or
 * -AS_EINVAL with why in err ("CPU" says to write "cpu").
 */
int	 charge_name_check(const char *name, char *err, size_t errlen);

/*
 * The effective requests of the pod a SandboxTemplate object makes
 * (spec.podTemplate.spec), as Kubernetes computes them for scheduling and
 * ResourceQuota (k8s.io/component-helpers resource.PodRequests): a
 * container's requests default to its limits; the app containers and the
 * restartable (sidecar) init containers add up; each other init container
 * counts with the sidecars started before it; the pod asks, per resource,
 * the larger of the two; spec.overhead is added.  Pod-level
 * spec.resources (a newer feature gate) is not read.  Fills out (at most
 * TASK_MAX_RESOURCES names) and *nout.  Returns 0, or -AS_EINVAL with why
 * in err (no podTemplate.spec, a bad name or quantity, too many names).
 */
int	 charge_template_requests(const struct cJSON *tmpl,
	    struct task_resource *out, size_t *nout, char *err, size_t errlen);

/*
 * The charge of a task: req (its requests) against floor (the pool's), as
 * in the note above, task names first in their order, then the floor's
 * others.  Returns the number of entries in out (which holds
 * TASK_MAX_RESOURCES), or -AS_EINVAL when the union has more names than
 * that.
 */
int	 charge_task(const struct task_resource *req, size_t nreq,
	    const struct task_resource *floor, size_t nfloor,
	    struct task_resource *out);

#endif
