/*
 * scale.c: the scale subresource (autoscaling/v1 Scale) of the workloads we
 * resize: Deployments, StatefulSets and agent-sandbox SandboxWarmPools.
 *
 * Reads are GET .../<name>/scale; writes are a merge-patch of
 * {"spec":{"replicas":N}} on the same path, which is what kubectl scale
 * does and which works for custom resources too, where a PUT of a Scale
 * without resourceVersion is not known to be accepted
 * (ref/kubernetes-api-semantics.md section 8).  Both go through
 * k8s_client_request, so they share its rate limiter and retries; a small
 * context turns the raw response into a struct k8s_scale.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/log.h"

/* Longest DNS subdomain (RFC 1123), the limit for names and namespaces. */
#define K8S_NAME_MAX	253

struct k8s_kind {
	const char	*kind;
	const char	*prefix;
	const char	*resource;
};

/* Alphabetical; one row per workload kind we can scale. */
static const struct k8s_kind k8s_kinds[] = {
	{ "Deployment", "/apis/apps/v1", "deployments" },
	{ "SandboxWarmPool", K8S_SANDBOX_EXT_API, "sandboxwarmpools" },
	{ "StatefulSet", "/apis/apps/v1", "statefulsets" },
};

struct scale_ctx {
	k8s_scale_fn	*fn;
	void		*arg;
};

static int	 scale_valid_name(const char *);
static int	 scale_replicas(const cJSON *, const char *, long *, char *,
		    size_t);
static char	*scale_path(const char *, const char *, const char *);
static void	 scale_done(const struct k8s_response *, void *);
static struct k8s_req *scale_request(struct k8s_client *, const char *,
		    const char *, const char *, const char *, k8s_scale_fn *,
		    void *);

int
k8s_kind_resource(const char *kind, const char **prefix,
    const char **resource)
{
	size_t	 i;

	if (kind == NULL)
		return (-AS_EINVAL);
	for (i = 0; i < AS_ARRAY_SIZE(k8s_kinds); i++) {
		if (strcmp(kind, k8s_kinds[i].kind) != 0)
			continue;
		if (prefix != NULL)
			*prefix = k8s_kinds[i].prefix;
		if (resource != NULL)
			*resource = k8s_kinds[i].resource;
		return (0);
	}
	return (-AS_EINVAL);
}

const char *const *
k8s_kind_list(void)
{
	static const char	*names[AS_ARRAY_SIZE(k8s_kinds) + 1];
	size_t			 i;

	if (names[0] == NULL)
		for (i = 0; i < AS_ARRAY_SIZE(k8s_kinds); i++)
			names[i] = k8s_kinds[i].kind;
	return (names);
}

/*
 * Names and namespaces are DNS subdomains (lower-case alphanumerics, '-' and
 * '.'); checking them keeps a bad name from reaching into another path.
 */
static int
scale_valid_name(const char *s)
{
	size_t	 i;

	if (s == NULL || *s == '\0')
		return (0);
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= K8S_NAME_MAX)
			return (0);
		if ((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.')
			continue;
		return (0);
	}
	return (strcmp(s, ".") != 0 && strcmp(s, "..") != 0);
}

/* Returns the path of the scale subresource, or NULL for bad arguments. */
static char *
scale_path(const char *kind, const char *ns, const char *name)
{
	const char	*prefix, *resource;

	if (k8s_kind_resource(kind, &prefix, &resource) != 0) {
		log_warn("k8s", "cannot scale unknown kind \"%s\"",
		    kind != NULL ? kind : "");
		return (NULL);
	}
	if (!scale_valid_name(ns) || !scale_valid_name(name)) {
		log_warn("k8s", "bad namespace or name for %s scale", kind);
		return (NULL);
	}
	return (xasprintf("%s/namespaces/%s/%s/%s/scale", prefix, ns,
	    resource, name));
}

/*
 * Reads key of o as a replica count (a whole number in [0, INT32_MAX], as
 * int32 fields are); a missing key is reported as 1 so the caller decides.
 */
static int
scale_replicas(const cJSON *o, const char *what, long *out, char *err,
    size_t errlen)
{
	const cJSON	*v;
	double		 d;

	v = cJSON_GetObjectItemCaseSensitive(o, "replicas");
	if (v == NULL)
		return (1);
	if (!cJSON_IsNumber(v)) {
		snprintf(err, errlen, "%s.replicas is not a number", what);
		return (-AS_EPROTO);
	}
	d = v->valuedouble;
	if (!isfinite(d) || d < 0 || d > INT32_MAX || d != floor(d)) {
		snprintf(err, errlen, "%s.replicas is out of range: %g", what,
		    d);
		return (-AS_EPROTO);
	}
	*out = (long)d;
	return (0);
}

/*
 * ScaleSpec.Replicas is "omitempty" in autoscaling/v1, so a Scale at zero
 * replicas comes as "spec":{} and a missing spec.replicas means 0.
 * ScaleStatus.Replicas is always sent, so a missing status.replicas means
 * the body is not a Scale.
 */
int
k8s_scale_parse(const char *body, size_t len, struct k8s_scale *sc,
    char *err, size_t errlen)
{
	const cJSON	*kind, *spec, *status, *rv;
	cJSON		*j = NULL;
	struct k8s_scale out = { 0, 0, "" };
	int		 rc = -AS_EPROTO, r;

	if (body == NULL || len == 0) {
		snprintf(err, errlen, "empty Scale body");
		goto out;
	}
	if ((j = cJSON_ParseWithLength(body, len)) == NULL) {
		snprintf(err, errlen, "Scale body is not JSON");
		goto out;
	}
	if (!cJSON_IsObject(j)) {
		snprintf(err, errlen, "Scale body is not an object");
		goto out;
	}
	kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
	if (kind != NULL && (!cJSON_IsString(kind) ||
	    strcmp(kind->valuestring, "Scale") != 0)) {
		snprintf(err, errlen, "kind is not Scale");
		goto out;
	}
	spec = cJSON_GetObjectItemCaseSensitive(j, "spec");
	if (spec != NULL && !cJSON_IsObject(spec)) {
		snprintf(err, errlen, "spec is not an object");
		goto out;
	}
	if (spec != NULL &&
	    (r = scale_replicas(spec, "spec", &out.spec_replicas, err,
	    errlen)) < 0)
		goto out;
	status = cJSON_GetObjectItemCaseSensitive(j, "status");
	if (!cJSON_IsObject(status)) {
		snprintf(err, errlen, "status is missing or not an object");
		goto out;
	}
	if ((r = scale_replicas(status, "status", &out.status_replicas, err,
	    errlen)) < 0)
		goto out;
	if (r > 0) {
		snprintf(err, errlen, "status.replicas is missing");
		goto out;
	}
	/* The workload's version after the write (one too long: none). */
	rv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
	    j, "metadata"), "resourceVersion");
	if (cJSON_IsString(rv) &&
	    strlen(rv->valuestring) < sizeof out.resource_version)
		as_strlcpy(out.resource_version, rv->valuestring,
		    sizeof out.resource_version);
	*sc = out;
	rc = 0;
out:
	cJSON_Delete(j);
	return (rc);
}

/* Turns the raw response into a Scale, then calls the caller's function. */
static void
scale_done(const struct k8s_response *resp, void *arg)
{
	struct scale_ctx *ctx = arg;
	struct k8s_scale sc;
	char		 err[256];
	int		 rc;

	if ((rc = resp->err) != 0) {
		ctx->fn(rc, NULL, resp->message, ctx->arg);
		goto out;
	}
	if ((rc = k8s_scale_parse(resp->body, resp->body_len, &sc, err,
	    sizeof err)) != 0) {
		ctx->fn(rc, NULL, err, ctx->arg);
		goto out;
	}
	ctx->fn(0, &sc, "", ctx->arg);
out:
	free(ctx);
}

static struct k8s_req *
scale_request(struct k8s_client *c, const char *method, const char *path,
    const char *ctype, const char *body, k8s_scale_fn *fn, void *arg)
{
	struct scale_ctx *ctx;
	struct k8s_req	*r;

	ctx = xcalloc(1, sizeof *ctx);
	ctx->fn = fn;
	ctx->arg = arg;
	if ((r = k8s_client_request(c, method, path, ctype, body, scale_done,
	    ctx)) == NULL)
		free(ctx);
	return (r);
}

struct k8s_req *
k8s_scale_get(struct k8s_client *c, const char *kind, const char *ns,
    const char *name, k8s_scale_fn *fn, void *arg)
{
	struct k8s_req	*r = NULL;
	char		*path;

	if (c == NULL || fn == NULL)
		return (NULL);
	if ((path = scale_path(kind, ns, name)) == NULL)
		return (NULL);
	r = scale_request(c, "GET", path, NULL, NULL, fn, arg);
	free(path);
	return (r);
}

struct k8s_req *
k8s_scale_patch(struct k8s_client *c, const char *kind, const char *ns,
    const char *name, long replicas, k8s_scale_fn *fn, void *arg)
{
	struct k8s_req	*r = NULL;
	char		*path, body[64];

	if (c == NULL || fn == NULL || replicas < 0 || replicas > INT32_MAX)
		return (NULL);
	if ((path = scale_path(kind, ns, name)) == NULL)
		return (NULL);
	snprintf(body, sizeof body, "{\"spec\":{\"replicas\":%ld}}",
	    replicas);
	r = scale_request(c, "PATCH", path, "application/merge-patch+json",
	    body, fn, arg);
	free(path);
	return (r);
}
