/*
 * charge.c: resource names, template requests and the charge of a task
 * (charge.h).  Pure: cJSON in, plain arrays out.
 *
 * Refuse or normalise a name like "CPU"?  Refuse.  Kubernetes itself
 * refuses it in a pod, so no quota of ours could ever be on it, and
 * lower-casing would quietly turn a name the producer got wrong into a
 * charge they did not ask for ("GPU" is no "nvidia.com/gpu" either).  A
 * dead letter naming the field tells them, once, what to write instead.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "charge.h"
#include "agentscaler/rt/common.h"
#include "quantity.h"
#include "config.h"

#define NAME_PART_MAX	63
#define DOMAIN_MAX	253

/* Requests by name, at most TASK_MAX_RESOURCES of them. */
struct reqs {
	struct task_resource	 r[TASK_MAX_RESOURCES];
	size_t			 n;
};

static const char *const standard_names[] = { "cpu", "memory",
    "ephemeral-storage" };

static int	 charge_domain_ok(const char *, size_t);
static int	 charge_name_part_ok(const char *);
static int	 reqs_slot(struct reqs *, const char *);
static int	 reqs_merge(struct reqs *, const struct reqs *, int, char *,
		    size_t);
static int	 reqs_map(const cJSON *, struct reqs *, int, const char *,
		    char *, size_t);
static int	 reqs_container(const cJSON *, struct reqs *, const char *,
		    char *, size_t);

static int
alnum(char c)
{
	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'));
}

/* DNS-1123 subdomain: lowercase labels of [a-z0-9-], alphanumeric ends. */
static int
charge_domain_ok(const char *s, size_t len)
{
	size_t	 i, label = 0;

	if (len == 0 || len > DOMAIN_MAX)
		return (0);
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return (0);
			label = 0;
			continue;
		}
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return (0);
		if (label == 0 && s[i] == '-')
			return (0);
		if (++label > NAME_PART_MAX)
			return (0);
	}
	return (label > 0 && s[len - 1] != '-');
}

/* The name of a qualified name: 1..63 of [A-Za-z0-9._-], alnum ends. */
static int
charge_name_part_ok(const char *s)
{
	size_t	 i, len = strlen(s);

	if (len == 0 || len > NAME_PART_MAX || !alnum(s[0]) ||
	    !alnum(s[len - 1]))
		return (0);
	for (i = 0; i < len; i++)
		if (!alnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
			return (0);
	return (1);
}

int
charge_name_check(const char *name, char *err, size_t errlen)
{
	const char	*slash;
	size_t		 i, len = strlen(name), dlen;
	double		 v;

	if (len == 0) {
		snprintf(err, errlen, "an empty resource name");
		return (-AS_EINVAL);
	}
	if (len >= sizeof(((struct task_resource *)0)->name)) {
		snprintf(err, errlen, "longer than %zu bytes",
		    sizeof(((struct task_resource *)0)->name) - 1);
		return (-AS_EINVAL);
	}
	if ((slash = strchr(name, '/')) == NULL) {
		for (i = 0; i < AS_ARRAY_SIZE(standard_names); i++)
			if (strcmp(name, standard_names[i]) == 0)
				return (0);
		if (strncmp(name, "hugepages-", 10) == 0 &&
		    quantity_parse(name + 10, &v) == 0 && v > 0)
			return (0);
		for (i = 0; i < AS_ARRAY_SIZE(standard_names); i++)
			if (strcasecmp(name, standard_names[i]) == 0) {
				snprintf(err, errlen, "not a Kubernetes "
				    "resource name (names are case-sensitive: "
				    "write \"%s\")", standard_names[i]);
				return (-AS_EINVAL);
			}
		snprintf(err, errlen, "not a Kubernetes resource name "
		    "(without a domain only cpu, memory, ephemeral-storage "
		    "and hugepages-<size>; extended resources are "
		    "<domain>/<name>, e.g. nvidia.com/gpu)");
		return (-AS_EINVAL);
	}
	dlen = (size_t)(slash - name);
	if (!charge_domain_ok(name, dlen) || !charge_name_part_ok(slash + 1)) {
		snprintf(err, errlen, "not a Kubernetes resource name (an "
		    "extended resource is a lowercase DNS domain, '/', and a "
		    "name of at most 63 characters [A-Za-z0-9._-])");
		return (-AS_EINVAL);
	}
	if ((dlen == 13 && strncmp(name, "kubernetes.io", 13) == 0) ||
	    (dlen > 13 && strncmp(slash - 14, ".kubernetes.io", 14) == 0) ||
	    strncmp(name, "requests.", 9) == 0) {
		snprintf(err, errlen, "not a resource a container may request "
		    "(kubernetes.io domains and the \"requests.\" prefix are "
		    "Kubernetes' own)");
		return (-AS_EINVAL);
	}
	return (0);
}

/* The index of name in q, added at 0 when new; -1 when q is full. */
static int
reqs_slot(struct reqs *q, const char *name)
{
	size_t	 i;

	for (i = 0; i < q->n; i++)
		if (strcmp(q->r[i].name, name) == 0)
			return ((int)i);
	if (q->n == TASK_MAX_RESOURCES)
		return (-1);
	as_strlcpy(q->r[q->n].name, name, sizeof q->r[0].name);
	q->r[q->n].value = 0;
	return ((int)q->n++);
}

/* dst += src (add), or dst = max(dst, src) per name. */
static int
reqs_merge(struct reqs *dst, const struct reqs *src, int add, char *err,
    size_t errlen)
{
	size_t	 i;
	int	 k;

	for (i = 0; i < src->n; i++) {
		if ((k = reqs_slot(dst, src->r[i].name)) < 0) {
			snprintf(err, errlen, "the pod requests more than %d "
			    "resources", TASK_MAX_RESOURCES);
			return (-AS_EINVAL);
		}
		if (add)
			dst->r[k].value += src->r[i].value;
		else if (src->r[i].value > dst->r[k].value)
			dst->r[k].value = src->r[i].value;
	}
	return (0);
}

/*
 * A map of quantities (requests, limits, overhead) into q; with fill, only
 * names q does not have yet are taken (limits default requests).
 */
static int
reqs_map(const cJSON *m, struct reqs *q, int fill, const char *where,
    char *err, size_t errlen)
{
	const cJSON	*it;
	char		 why[256];
	double		 v;
	size_t		 i;
	int		 k, had;

	if (m == NULL)
		return (0);
	if (!cJSON_IsObject(m)) {
		snprintf(err, errlen, "%s: not an object", where);
		return (-AS_EINVAL);
	}
	cJSON_ArrayForEach(it, m) {
		if (charge_name_check(it->string, why, sizeof why) != 0) {
			snprintf(err, errlen, "%s: \"%.64s\": %s", where,
			    it->string, why);
			return (-AS_EINVAL);
		}
		if (cJSON_IsNumber(it) && isfinite(it->valuedouble) &&
		    it->valuedouble >= 0)
			v = it->valuedouble;
		else if (!cJSON_IsString(it) ||
		    quantity_parse(it->valuestring, &v) != 0) {
			snprintf(err, errlen, "%s: \"%.64s\": not a quantity",
			    where, it->string);
			return (-AS_EINVAL);
		}
		for (had = 0, i = 0; i < q->n && !had; i++)
			had = strcmp(q->r[i].name, it->string) == 0;
		if (fill && had)
			continue;
		if ((k = reqs_slot(q, it->string)) < 0) {
			snprintf(err, errlen, "%s: more than %d resources",
			    where, TASK_MAX_RESOURCES);
			return (-AS_EINVAL);
		}
		q->r[k].value = v;
	}
	return (0);
}

/* One container's requests: resources.requests, then limits for the rest. */
static int
reqs_container(const cJSON *c, struct reqs *q, const char *list, char *err,
    size_t errlen)
{
	const cJSON	*res, *name;
	char		 where[160];

	memset(q, 0, sizeof *q);
	name = cJSON_GetObjectItemCaseSensitive(c, "name");
	snprintf(where, sizeof where, "%s %.64s", list,
	    cJSON_IsString(name) ? name->valuestring : "?");
	if ((res = cJSON_GetObjectItemCaseSensitive(c, "resources")) == NULL)
		return (0);
	if (reqs_map(cJSON_GetObjectItemCaseSensitive(res, "requests"), q, 0,
	    where, err, errlen) != 0)
		return (-AS_EINVAL);
	return (reqs_map(cJSON_GetObjectItemCaseSensitive(res, "limits"), q, 1,
	    where, err, errlen));
}

int
charge_template_requests(const cJSON *tmpl, struct task_resource *out,
    size_t *nout, char *err, size_t errlen)
{
	const cJSON	*spec, *list, *c, *rp;
	struct reqs	 app, side, init, one, cur;

	*nout = 0;
	spec = cJSON_GetObjectItemCaseSensitive(tmpl, "spec");
	spec = cJSON_GetObjectItemCaseSensitive(spec, "podTemplate");
	spec = cJSON_GetObjectItemCaseSensitive(spec, "spec");
	if (!cJSON_IsObject(spec)) {
		snprintf(err, errlen, "the template has no "
		    "spec.podTemplate.spec");
		return (-AS_EINVAL);
	}
	memset(&app, 0, sizeof app);
	memset(&side, 0, sizeof side);
	memset(&init, 0, sizeof init);
	list = cJSON_GetObjectItemCaseSensitive(spec, "containers");
	if (!cJSON_IsArray(list))
		list = NULL;
	cJSON_ArrayForEach(c, list) {
		if (reqs_container(c, &one, "container", err, errlen) != 0 ||
		    reqs_merge(&app, &one, 1, err, errlen) != 0)
			return (-AS_EINVAL);
	}
	list = cJSON_GetObjectItemCaseSensitive(spec, "initContainers");
	if (!cJSON_IsArray(list))
		list = NULL;
	cJSON_ArrayForEach(c, list) {
		if (reqs_container(c, &one, "init container", err, errlen) != 0)
			return (-AS_EINVAL);
		rp = cJSON_GetObjectItemCaseSensitive(c, "restartPolicy");
		if (cJSON_IsString(rp) &&
		    strcmp(rp->valuestring, "Always") == 0) {
			/* A sidecar: runs from here on, with the app. */
			if (reqs_merge(&side, &one, 1, err, errlen) != 0)
				return (-AS_EINVAL);
			cur = side;
		} else {
			cur = one;
			if (reqs_merge(&cur, &side, 1, err, errlen) != 0)
				return (-AS_EINVAL);
		}
		if (reqs_merge(&init, &cur, 0, err, errlen) != 0)
			return (-AS_EINVAL);
	}
	memset(&one, 0, sizeof one);
	if (reqs_merge(&app, &side, 1, err, errlen) != 0 ||
	    reqs_merge(&app, &init, 0, err, errlen) != 0 ||
	    reqs_map(cJSON_GetObjectItemCaseSensitive(spec, "overhead"), &one,
	    0, "overhead", err, errlen) != 0 ||
	    reqs_merge(&app, &one, 1, err, errlen) != 0)
		return (-AS_EINVAL);
	memcpy(out, app.r, app.n * sizeof *out);
	*nout = app.n;
	return (0);
}

int
charge_task(const struct task_resource *req, size_t nreq,
    const struct task_resource *floor, size_t nfloor,
    struct task_resource *out)
{
	size_t	 i, j, n = 0;

	for (i = 0; i < nreq; i++) {
		out[n] = req[i];
		for (j = 0; j < nfloor; j++)
			if (strcmp(floor[j].name, req[i].name) == 0 &&
			    floor[j].value > out[n].value)
				out[n].value = floor[j].value;
		n++;
	}
	for (j = 0; j < nfloor; j++) {
		for (i = 0; i < nreq; i++)
			if (strcmp(floor[j].name, req[i].name) == 0)
				break;
		if (i < nreq)
			continue;
		if (n == TASK_MAX_RESOURCES)
			return (-AS_EINVAL);
		out[n++] = floor[j];
	}
	return ((int)n);
}
