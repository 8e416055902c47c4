/*
 * config.c: the AgentPool/AgentQuota document, declared once as field
 * tables (STYLE.md habit 7, after tmux options-table.c).  One generic walker
 * applies a table to a cJSON object: it rejects unknown and duplicate keys,
 * checks types and ranges, fills defaults and names the field path in every
 * error.  Checks that span fields run after the walk.
 *
 * Offsets in a table are into the top struct (struct pool_config or struct
 * quota_config) plus the offs of the F_OBJECT rows above them: a nested
 * object with off 0 only groups keys, one with an off is a struct of its
 * own (the source and results, struct pool_source_config; the handoff).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "charge.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/rt/yaml.h"
#include "quantity.h"
#include "config.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/scalers/scaler.h"
#include "task.h"

#define CONFIG_MAX_BYTES (4 * 1024 * 1024)
#define API_VERSION "agentscaler.io/v1alpha1"

enum field_kind {
	F_STRING,
	F_INT,
	F_NUMBER,
	F_BOOL,
	F_ENUM,		/* one of values, stored as its index (int) */
	F_OBJECT,	/* keys of a nested object; sub is its table, whose
			   offsets are from base + off */
	F_IGNORE,	/* accepted and ignored (metadata.labels, status) */
	F_RESOURCES	/* map of resource name to quantity: off is a
			   struct quota_resource * followed by its count */
};

/*
 * An enum's names, NULL-terminated, from the table that owns them (the
 * scaler registry, the workload kinds of k8s/scale.c), so that the config,
 * its reference, the CRDs' enums (tests/integration/test_crd_schema.py) and
 * the code cannot name different lists.
 */
typedef const char *const *config_values_fn(void);

struct field {
	const char		*name;
	enum field_kind		 kind;
	size_t			 off;
	int			 required;
	double			 min, max;
	double			 def;		/* numbers, bools, enums */
	const char		*def_str;	/* strings */
	config_values_fn	*values;	/* F_ENUM and enum strings */
	const struct field	*sub;		/* F_OBJECT */
	const char		*help;
};

/* F_RESOURCES writes the count right after the array pointer. */
_Static_assert(offsetof(struct pool_config, ndefault_resources) ==
    offsetof(struct pool_config, default_resources) +
    sizeof(struct quota_resource *), "pool_config defaultResources layout");
_Static_assert(offsetof(struct quota_config, nresources) ==
    offsetof(struct quota_config, resources) +
    sizeof(struct quota_resource *), "quota_config resources layout");

#define END_FIELDS { NULL, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL }
#define PO(m) offsetof(struct pool_config, m)
#define QO(m) offsetof(struct quota_config, m)
/* Into the struct of an F_OBJECT whose off is that struct's. */
#define SO(m) offsetof(struct pool_source_config, m)
#define HO(m) offsetof(struct pool_handoff_config, m)

/* F_ENUM values are stored as indexes: the order is the enum's. */
static const char *const *
mode_values(void)
{
	static const char *const v[] = { "scale", "dispatch", NULL };

	return (v);
}

static const char *const *
exceeded_values(void)
{
	static const char *const v[] = { "defer", "reject", NULL };

	return (v);
}

static const char *const *
keyspace_values(void)
{
	static const char *const v[] = { "auto", "off", "require", NULL };

	return (v);
}

static const struct field metadata_fields[] = {
	{ "name", F_STRING, PO(name), 1, 0, 0, 0, NULL, NULL, NULL,
	    "object name (DNS-1123 subdomain)" },
	{ "namespace", F_STRING, PO(ns), 0, 0, 0, 0, "default", NULL, NULL,
	    "namespace of the pool and its target" },
	{ "labels", F_IGNORE, 0, 0, 0, 0, 0, NULL, NULL, NULL, "ignored" },
	{ "annotations", F_IGNORE, 0, 0, 0, 0, 0, NULL, NULL, NULL,
	    "ignored" },
	END_FIELDS
};

static const struct field secret_ref_fields[] = {
	{ "name", F_STRING, SO(secret_name), 1, 0, 0, 0, NULL, NULL,
	    NULL, "Secret name (DNS-1123 subdomain); CRD mode: a Secret of "
	    "the pool's namespace, read through the API; --config: the file "
	    "<secrets-dir>/<name>/<key>" },
	{ "key", F_STRING, SO(secret_key), 1, 0, 0, 0, NULL, NULL,
	    NULL, "key in the Secret holding the password ([-._a-zA-Z0-9]+)" },
	{ "usernameKey", F_STRING, SO(secret_user_key), 0, 0, 0, 0,
	    NULL, NULL, NULL, "key in the same Secret holding the user name "
	    "(rabbitmq, or a Redis ACL user); instead of username" },
	{ "namespace", F_STRING, SO(secret_ns), 0, 0, 0, 0, NULL, NULL,
	    NULL, "CRD mode: another namespace, only for a Secret the "
	    "administrator shares (--shared-secrets)" },
	END_FIELDS
};

static const struct field tls_fields[] = {
	{ "caFile", F_STRING, SO(tls_ca_file), 0, 0, 0, 0, NULL, NULL,
	    NULL, "CA bundle for amqps:// and https:// (default: system CAs); "
	    "--config only, refused in CRD mode" },
	{ "insecureSkipVerify", F_BOOL, SO(tls_insecure), 0, 0, 1, 0,
	    NULL, NULL, NULL, "do not verify the broker's certificate (tests)" },
	END_FIELDS
};

static const struct field source_fields[] = {
	{ "type", F_STRING, SO(type), 1, 0, 0, 0, NULL,
	    scaler_type_list, NULL, NULL },
	{ "address", F_STRING, SO(address), 1, 0, 0, 0, NULL, NULL,
	    NULL, "redis://host:6379/0 (credentials never inline)" },
	{ "authSecretRef", F_OBJECT, 0, 0, 0, 0, 0, NULL, NULL,
	    secret_ref_fields, "{name, key} of the password Secret" },
	{ "passwordFile", F_STRING, SO(password_file), 0, 0, 0, 0,
	    NULL, NULL, NULL, "file holding the password; --config only, "
	    "refused in CRD mode" },
	{ "passwordEnv", F_STRING, SO(password_env), 0, 0, 0, 0, NULL,
	    NULL, NULL, "environment variable holding the password; --config "
	    "only, refused in CRD mode" },
	{ "username", F_STRING, SO(username), 0, 0, 0, 0, NULL, NULL,
	    NULL, "RabbitMQ user, or Redis 6 ACL user (AUTH user password); "
	    "the password comes from the secret" },
	{ "tls", F_OBJECT, 0, 0, 0, 0, 0, NULL, NULL, tls_fields,
	    "TLS options of the broker connection" },
	{ "queue", F_STRING, SO(queue), 1, 0, 0, 0, NULL, NULL, NULL,
	    "list, stream or queue name" },
	{ "processingList", F_STRING, SO(processing_list), 0, 0, 0, 0,
	    NULL, NULL, NULL,
	    "redis-list: list of taken tasks (default: scale mode "
	    "<queue>.processing, dispatch mode <queue>:processing:<instance>)" },
	{ "consumerGroup", F_STRING, SO(consumer_group), 0, 0, 0, 0,
	    NULL, NULL, NULL, "redis-stream consumer group" },
	{ "countInFlight", F_BOOL, SO(count_in_flight), 0, 0, 1, 0,
	    NULL, NULL, NULL, "backlog = ready + in flight" },
	{ "prefetch", F_INT, SO(prefetch), 0, 1, 10000, 32, NULL, NULL,
	    NULL, "dispatch: most messages taken and not yet acked" },
	{ "claimIdleSeconds", F_INT, SO(claim_idle_seconds), 0, 1,
	    86400, 300, NULL, NULL, NULL,
	    "dispatch, redis-stream: take others' pending entries idle this long" },
	{ "keyspaceNotifications", F_ENUM, SO(keyspace_notifications), 0, 0,
	    0, SCALER_KEYSPACE_AUTO, NULL, keyspace_values, NULL,
	    "Redis: auto turns on notify-keyspace-events (CONFIG SET) for push "
	    "wake-ups and polls when refused; off never sends CONFIG, polls "
	    "only; require fails the source when they are off and cannot be "
	    "turned on" },
	{ "streamField", F_STRING, SO(stream_field), 0, 0, 0, 0, "task",
	    NULL, NULL, "redis-stream, dispatch: the entry field holding the "
	    "task JSON (XADD <stream> * task <JSON>)" },
	END_FIELDS
};

/* spec.results: a subset of the source's keys, into pool_config.results. */
static const char *const *
results_type_values(void)
{
	static const char *const v[] = { "rabbitmq", "redis-list",
	    "redis-stream", NULL };

	return (v);
}

static const struct field results_fields[] = {
	{ "type", F_STRING, SO(type), 1, 0, 0, 0, NULL, results_type_values,
	    NULL, NULL },
	{ "address", F_STRING, SO(address), 1, 0, 0, 0, NULL, NULL, NULL,
	    "redis://host:6379/0 or amqp://host:5672/vhost (credentials "
	    "never inline)" },
	{ "authSecretRef", F_OBJECT, 0, 0, 0, 0, 0, NULL, NULL,
	    secret_ref_fields, "{name, key} of the password Secret" },
	{ "passwordFile", F_STRING, SO(password_file), 0, 0, 0, 0, NULL, NULL,
	    NULL, "file holding the password; --config only, refused in CRD "
	    "mode" },
	{ "passwordEnv", F_STRING, SO(password_env), 0, 0, 0, 0, NULL, NULL,
	    NULL, "environment variable holding the password; --config only, "
	    "refused in CRD mode" },
	{ "username", F_STRING, SO(username), 0, 0, 0, 0, NULL, NULL, NULL,
	    "Redis ACL user or RabbitMQ user (the password comes from the "
	    "secret)" },
	{ "tls", F_OBJECT, 0, 0, 0, 0, 0, NULL, NULL, tls_fields,
	    "TLS options of the connection" },
	{ "queue", F_STRING, SO(queue), 0, 0, 0, 0, NULL, NULL, NULL,
	    "list (LPUSH), stream (XADD) or RabbitMQ queue (by the default "
	    "exchange) the Results go to" },
	{ "exchange", F_STRING, SO(exchange), 0, 0, 0, 0, NULL, NULL, NULL,
	    "rabbitmq, instead of queue: a durable direct exchange the "
	    "Results go to with routing key = task id" },
	END_FIELDS
};

static const char *const *
handoff_mode_values(void)
{
	static const char *const v[] = { "inbox", "http", NULL };

	return (v);
}

static const char *const *
handoff_via_values(void)
{
	static const char *const v[] = { "router", "podIP", NULL };

	return (v);
}

static const struct field handoff_tls_fields[] = {
	{ "caFile", F_STRING, HO(tls_ca_file), 0, 0, 0, 0, NULL, NULL, NULL,
	    "CA bundle for an https:// router (default: system CAs; always "
	    "verified); --config only, refused in CRD mode" },
	END_FIELDS
};

static const struct field handoff_fields[] = {
	{ "mode", F_ENUM, HO(mode), 0, 0, 0, HANDOFF_HTTP, NULL,
	    handoff_mode_values, NULL, "http (the agent protocol, "
	    "docs/protocol.md) | inbox (a Redis list or RabbitMQ queue "
	    "per sandbox, read by the agent: needs broker egress and "
	    "credentials in the sandbox)" },
	{ "via", F_ENUM, HO(via), 0, 0, 0, HANDOFF_VIA_ROUTER, NULL,
	    handoff_via_values, NULL, "http: router (the sandbox-router) | "
	    "podIP (straight to the pod)" },
	{ "router", F_STRING, HO(router), 0, 0, 0, 0, HANDOFF_ROUTER_DEFAULT,
	    NULL, NULL, "http, via router: the router's base URL (https:// "
	    "for TLS); CRD mode: one of --handoff-routers, default the "
	    "first" },
	{ "port", F_INT, HO(port), 0, 1, 65535, 8888, NULL, NULL, NULL,
	    "http: the runtime's port in the sandbox" },
	{ "deadlineSeconds", F_INT, HO(deadline_seconds), 0, 1, 86400, 120,
	    NULL, NULL, NULL, "http: a hand-off not accepted by then fails "
	    "handoff.unreachable" },
	{ "maxAttempts", F_INT, HO(max_attempts), 0, 1, 100, 1, NULL, NULL,
	    NULL, "http: runs of a task whose failure is retryable" },
	{ "tls", F_OBJECT, 0, 0, 0, 0, 0, NULL, NULL, handoff_tls_fields,
	    "http: TLS to the router" },
	END_FIELDS
};

static const struct field target_fields[] = {
	{ "kind", F_STRING, PO(target_kind), 1, 0, 0, 0, NULL, k8s_kind_list,
	    NULL, NULL },
	{ "name", F_STRING, PO(target_name), 1, 0, 0, 0, NULL, NULL, NULL,
	    "workload to scale, in the pool's namespace" },
	END_FIELDS
};

static const char *const *
spare_policy_values(void)
{
	/* enum warmpool_policy's order */
	static const char *const v[] = { "predictive", "rate", NULL };

	return (v);
}

static const struct field spare_fields[] = {
	{ "min", F_INT, PO(spare_min), 0, 0, 100000, 0, NULL, NULL, NULL,
	    "fewest warm sandboxes" },
	{ "max", F_INT, PO(spare_max), 0, 0, 100000, 50, NULL, NULL, NULL,
	    "most warm sandboxes" },
	{ "policy", F_ENUM, PO(spare_policy), 0, 0, 0, WARMPOOL_PREDICTIVE,
	    NULL, spare_policy_values, NULL, "warm-pool sizing: predictive "
	    "(arrivals expected over a cold start, from running trees) | rate "
	    "(arrival rate x cold start x 1.5); see `agentscaler simulate`" },
	END_FIELDS
};

static const struct field sandbox_fields[] = {
	{ "warmPool", F_STRING, PO(warm_pool), 1, 0, 0, 0, NULL, NULL, NULL,
	    "SandboxWarmPool to claim from" },
	{ "claimTTLSeconds", F_INT, PO(claim_ttl_seconds), 0, 1, 604800, 3600,
	    NULL, NULL, NULL, "lifecycle.shutdownTime set on every claim" },
	{ "spare", F_OBJECT, 0, 0, 0, 0, 0, NULL, NULL, spare_fields,
	    "warm-pool size bounds" },
	{ "readyTimeoutSeconds", F_INT, PO(ready_timeout_seconds), 0, 1, 86400,
	    180, NULL, NULL, NULL,
	    "a claim not bound and Ready by then is dead-lettered and deleted" },
	{ "maxTaskBytes", F_INT, PO(max_task_bytes), 0, 64, 67108864, 1048576,
	    NULL, NULL, NULL, "larger task messages are dead-lettered" },
	{ "defaultResources", F_RESOURCES, PO(default_resources), 0, 0, 0, 0,
	    NULL, NULL, NULL,
	    "least a task is charged against the AgentQuota, per resource, "
	    "in place of the warm pool's SandboxTemplate requests, e.g. "
	    "{\"cpu\": \"1\"}" },
	END_FIELDS
};

static const struct field scaling_fields[] = {
	{ "minReplicas", F_INT, PO(scaling.min_replicas), 0, 0, 100000, 0,
	    NULL, NULL, NULL, "fewest replicas" },
	{ "maxReplicas", F_INT, PO(scaling.max_replicas), 0, 0, 100000, 100,
	    NULL, NULL, NULL, "most replicas" },
	{ "tasksPerReplica", F_INT, PO(scaling.tasks_per_replica), 0, 1,
	    1000000, 1, NULL, NULL, NULL, "backlog one replica takes" },
	{ "activationBacklog", F_INT, PO(scaling.activation_backlog), 0, 0,
	    1000000000, 0, NULL, NULL, NULL, "wake from zero above this" },
	{ "cooldownSeconds", F_NUMBER, PO(scaling.cooldown_seconds), 0, 0,
	    604800, 60, NULL, NULL, NULL, "idle time before zero" },
	{ "scaleDownStabilizationSeconds", F_NUMBER,
	    PO(scaling.stabilization_seconds), 0, 0, 86400, 60, NULL, NULL,
	    NULL, "look-back window on the way down" },
	{ "maxScaleUpStep", F_INT, PO(scaling.max_scale_up_step), 0, 0,
	    100000, 0, NULL, NULL, NULL, "0 = jump straight to the need" },
	{ "pollIntervalMs", F_INT, PO(poll_interval_ms), 0,
	    CONFIG_POLL_FLOOR_MS, 3600000, 1000, NULL, NULL, NULL,
	    "poll period in milliseconds (KEDA's pollingInterval counts "
	    "seconds: 30 s is 30000); push sources wake earlier" },
	END_FIELDS
};

static const struct field pool_spec_fields[] = {
	{ "mode", F_ENUM, PO(mode), 0, 0, 0, POOL_MODE_SCALE, NULL,
	    mode_values, NULL, NULL },
	{ "source", F_OBJECT, PO(source), 1, 0, 0, 0, NULL, NULL,
	    source_fields, "where the tasks wait" },
	{ "target", F_OBJECT, 0, 0, 0, 0, 0, NULL, NULL, target_fields,
	    "scale mode: the workload to scale" },
	{ "sandbox", F_OBJECT, 0, 0, 0, 0, 0, NULL, NULL, sandbox_fields,
	    "dispatch mode: warm pool and claims" },
	{ "scaling", F_OBJECT, 0, 0, 0, 0, 0, NULL, NULL, scaling_fields,
	    "replica maths (DESIGN.md section 8)" },
	{ "handoff", F_OBJECT, PO(handoff), 0, 0, 0, 0, NULL, NULL,
	    handoff_fields, "dispatch mode: how a task reaches its sandbox" },
	{ "results", F_OBJECT, PO(results), 0, 0, 0, 0, NULL, NULL,
	    results_fields, "dispatch mode, http hand-off: where Results "
	    "are published" },
	{ "shadow", F_BOOL, PO(shadow), 0, 0, 1, 0, NULL, NULL, NULL,
	    "decide, log and report (status, metrics) without writing the "
	    "target or claims and without consuming: run beside another "
	    "autoscaler first" },
	END_FIELDS
};

static const struct field quota_metadata_fields[] = {
	{ "name", F_STRING, QO(name), 1, 0, 0, 0, NULL, NULL, NULL,
	    "object name" },
	{ "namespace", F_STRING, QO(ns), 0, 0, 0, 0, "default", NULL, NULL,
	    "namespace the quota limits" },
	{ "labels", F_IGNORE, 0, 0, 0, 0, 0, NULL, NULL, NULL, "ignored" },
	{ "annotations", F_IGNORE, 0, 0, 0, 0, 0, NULL, NULL, NULL,
	    "ignored" },
	END_FIELDS
};

static const struct field spawn_fields[] = {
	{ "perSecond", F_NUMBER, QO(spawn_per_second), 0, 0, 1e6, 0, NULL,
	    NULL, NULL, "sustained spawns per second per tree (0: no limit)" },
	{ "burst", F_INT, QO(spawn_burst), 0, 1, 1000000, 1, NULL, NULL, NULL,
	    "spawns allowed at once" },
	END_FIELDS
};

static const struct field cascade_fields[] = {
	{ "maxDepth", F_INT, QO(max_depth), 0, 0, 1000, -1, NULL, NULL, NULL,
	    "deepest sub-agent; the root has depth 0" },
	{ "maxChildrenPerTask", F_INT, QO(max_children_per_task), 0, 0,
	    1000000, -1, NULL, NULL, NULL, "live children of one task" },
	{ "maxDescendantsPerRoot", F_INT, QO(max_descendants_per_root), 0, 0,
	    1000000, -1, NULL, NULL, NULL, "live tasks in one tree" },
	{ "maxRoots", F_INT, QO(max_roots), 0, 0, 1000000, -1, NULL, NULL,
	    NULL, "live trees" },
	{ "spawnRate", F_OBJECT, 0, 0, 0, 0, 0, NULL, NULL, spawn_fields,
	    "token bucket per tree" },
	{ "sandboxSecondsPerRoot", F_NUMBER, QO(sandbox_seconds_per_root), 0,
	    0, 1e9, 0, NULL, NULL, NULL, "budget of one tree (0: none)" },
	{ "reserveForDescendants", F_NUMBER, QO(reserve_for_descendants), 0, 0,
	    1, 0, NULL, NULL, NULL, "share of maxSandboxes kept for children" },
	END_FIELDS
};

static const struct field quota_spec_fields[] = {
	{ "maxSandboxes", F_INT, QO(max_sandboxes), 0, 0, 1000000, -1, NULL,
	    NULL, NULL, "live replicas + claims in the namespace" },
	{ "resources", F_RESOURCES, QO(resources), 0, 0, 0, 0, NULL, NULL, NULL,
	    "sum of pod requests, e.g. {\"cpu\": \"64\"}" },
	{ "cascade", F_OBJECT, 0, 0, 0, 0, 0, NULL, NULL, cascade_fields,
	    "limits on trees of sub-agents" },
	{ "onExceeded", F_ENUM, QO(on_exceeded), 0, 0, 0, QUOTA_ON_DEFER, NULL,
	    exceeded_values, NULL, "defer | reject, for live limits" },
	END_FIELDS
};

static int	 config_apply(const struct field *, const cJSON *, void *,
		    const char *, char *, size_t);
static void	 config_defaults(const struct field *, void *);
static void	 config_free_pool(struct pool_config *);
static void	 config_free_source(struct pool_source_config *);
static void	 config_free_quota(struct quota_config *);

static void
config_path(char *out, size_t outlen, const char *path, const char *key)
{
	snprintf(out, outlen, "%s%s%s", path, *path != '\0' ? "." : "", key);
}

/* path.where.key, as config_path() makes path.key. */
static void
config_sub(char *out, size_t outlen, const char *path, const char *where,
    const char *key)
{
	char	 k[128];

	snprintf(k, sizeof k, "%s.%s", where, key);
	config_path(out, outlen, path, k);
}

/* Describes a JSON value briefly for error messages. */
static void
config_describe(const cJSON *v, char *out, size_t outlen)
{
	char	*s;

	if (cJSON_IsObject(v))
		as_strlcpy(out, "an object", outlen);
	else if (cJSON_IsArray(v))
		as_strlcpy(out, "an array", outlen);
	else if (cJSON_IsNull(v))
		as_strlcpy(out, "null", outlen);
	else if ((s = cJSON_PrintUnformatted(v)) != NULL) {
		if (strlen(s) > 40)
			snprintf(out, outlen, "%.*s...", AS_UTF8_PREC(s, 37));
		else
			as_strlcpy(out, s, outlen);
		cJSON_free(s);
	} else
		as_strlcpy(out, "?", outlen);
}

static void
config_names(const struct field *tbl, char *out, size_t outlen)
{
	size_t	 len = 0;

	out[0] = '\0';
	for (; tbl->name != NULL && len < outlen; tbl++)
		len += (size_t)snprintf(out + len, outlen - len, "%s%s",
		    len > 0 ? ", " : "", tbl->name);
}

static void
config_defaults(const struct field *tbl, void *base)
{
	char	*p;

	for (; tbl->name != NULL; tbl++) {
		p = (char *)base + tbl->off;
		switch (tbl->kind) {
		case F_STRING:
			if (*(char **)p == NULL && tbl->def_str != NULL)
				*(char **)p = xstrdup(tbl->def_str);
			break;
		case F_INT:
			*(long *)p = (long)tbl->def;
			break;
		case F_NUMBER:
			*(double *)p = tbl->def;
			break;
		case F_BOOL:
		case F_ENUM:
			*(int *)p = (int)tbl->def;
			break;
		case F_OBJECT:
			config_defaults(tbl->sub, (char *)base + tbl->off);
			break;
		default:
			break;
		}
	}
}

/* An enum's values as "a | b | c" in buf; buf. */
static const char *
config_values_text(const struct field *f, char *buf, size_t len)
{
	const char *const	*v = f->values();
	size_t			 i, n = 0;

	buf[0] = '\0';
	for (i = 0; v[i] != NULL && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s",
		    i > 0 ? " | " : "", v[i]);
	return (buf);
}

/* A field's help text: its own, else its values ("a | b | c"). */
static const char *
config_help(const struct field *f, char *buf, size_t len)
{
	if (f->help != NULL || f->values == NULL)
		return (f->help != NULL ? f->help : "");
	return (config_values_text(f, buf, len));
}

static int
config_enum_index(const char *const *values, const char *s)
{
	int	 i;

	for (i = 0; values[i] != NULL; i++)
		if (strcmp(values[i], s) == 0)
			return (i);
	return (-1);
}

static int
config_resources(const cJSON *v, void *dst, const char *path, char *err,
    size_t errlen)
{
	struct quota_resource **res = dst;
	size_t		*nres = (size_t *)((char *)dst + sizeof *res);
	const cJSON	*it;
	size_t		 n = 0;
	double		 d;

	if (!cJSON_IsObject(v)) {
		snprintf(err, errlen, "%s: expected an object of quantities",
		    path);
		return (-AS_EINVAL);
	}
	cJSON_ArrayForEach(it, v)
		n++;
	*res = xcalloc(n, sizeof **res);
	cJSON_ArrayForEach(it, v) {
		char qs[64], why[256];

		/* Names as in a task (charge.h): "CPU" would match nothing. */
		if (charge_name_check(it->string, why, sizeof why) != 0) {
			snprintf(err, errlen, "%s.%.*s: %s", path,
			    AS_UTF8_PREC(it->string, 64), why);
			return (-AS_EINVAL);
		}
		if (cJSON_IsString(it))
			as_strlcpy(qs, it->valuestring, sizeof qs);
		else if (cJSON_IsNumber(it))
			snprintf(qs, sizeof qs, "%.17g", it->valuedouble);
		else
			qs[0] = '\0';
		if (qs[0] == '\0' || quantity_parse(qs, &d) != 0 ||
		    d < 0) {
			char got[64];

			config_describe(it, got, sizeof got);
			snprintf(err, errlen, "%s.%s: expected a quantity such "
			    "as \"4\", \"500m\" or \"16Gi\", got %s", path,
			    it->string, got);
			return (-AS_EINVAL);
		}
		(*res)[*nres].name = xstrdup(it->string);
		(*res)[*nres].quantity = xstrdup(qs);
		(*res)[*nres].value = d;
		(*nres)++;
	}
	return (0);
}

static int
config_field(const struct field *f, const cJSON *v, void *base,
    const char *path, char *err, size_t errlen)
{
	char	*p = (char *)base + f->off, got[64];
	double	 d;
	int	 i;

	config_describe(v, got, sizeof got);
	switch (f->kind) {
	case F_STRING:
		if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
			snprintf(err, errlen, "%s: expected a non-empty string, "
			    "got %s", path, got);
			return (-AS_EINVAL);
		}
		if (f->values != NULL &&
		    config_enum_index(f->values(), v->valuestring) < 0)
			goto bad_enum;
		free(*(char **)p);
		*(char **)p = xstrdup(v->valuestring);
		return (0);
	case F_ENUM:
		if (!cJSON_IsString(v) ||
		    (i = config_enum_index(f->values(), v->valuestring)) < 0)
			goto bad_enum;
		*(int *)p = i;
		return (0);
	case F_BOOL:
		if (!cJSON_IsBool(v)) {
			snprintf(err, errlen, "%s: expected true or false, got "
			    "%s", path, got);
			return (-AS_EINVAL);
		}
		*(int *)p = cJSON_IsTrue(v);
		return (0);
	case F_INT:
	case F_NUMBER:
		d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
		if (!cJSON_IsNumber(v) || !isfinite(d) || d < f->min ||
		    d > f->max || (f->kind == F_INT && d != floor(d))) {
			snprintf(err, errlen, "%s: expected %s in [%.15g, "
			    "%.15g], got %s", path, f->kind == F_INT ?
			    "an integer" : "a number", f->min, f->max, got);
			return (-AS_EINVAL);
		}
		if (f->kind == F_INT)
			*(long *)p = (long)d;
		else
			*(double *)p = d;
		return (0);
	case F_OBJECT:
		return (config_apply(f->sub, v, p, path, err, errlen));
	case F_RESOURCES:
		return (config_resources(v, p, path, err, errlen));
	case F_IGNORE:
		return (0);
	}
	return (0);
bad_enum:
	{
		char	 vals[256];

		snprintf(err, errlen, "%s: expected one of %s, got %s", path,
		    config_values_text(f, vals, sizeof vals), got);
	}
	return (-AS_EINVAL);
}

static int
config_apply(const struct field *tbl, const cJSON *obj, void *base,
    const char *path, char *err, size_t errlen)
{
	const struct field	*f;
	const cJSON		*it, *prev;
	char			 sub[256], names[512], got[64];
	int			 rc;

	if (!cJSON_IsObject(obj)) {
		config_describe(obj, got, sizeof got);
		snprintf(err, errlen, "%s: expected an object, got %s",
		    *path != '\0' ? path : "(document)", got);
		return (-AS_EINVAL);
	}
	cJSON_ArrayForEach(it, obj) {
		config_path(sub, sizeof sub, path, it->string);
		for (prev = obj->child; prev != it; prev = prev->next) {
			if (strcmp(prev->string, it->string) == 0) {
				snprintf(err, errlen, "%s: duplicate field",
				    sub);
				return (-AS_EINVAL);
			}
		}
		for (f = tbl; f->name != NULL; f++)
			if (strcmp(f->name, it->string) == 0)
				break;
		if (f->name == NULL) {
			config_names(tbl, names, sizeof names);
			snprintf(err, errlen, "%s: unknown field (expected one "
			    "of: %s)", sub, names);
			return (-AS_EINVAL);
		}
		if ((rc = config_field(f, it, base, sub, err, errlen)) != 0)
			return (rc);
	}
	for (f = tbl; f->name != NULL; f++) {
		if (f->required &&
		    cJSON_GetObjectItemCaseSensitive(obj, f->name) == NULL) {
			config_path(sub, sizeof sub, path, f->name);
			snprintf(err, errlen, "%s: required field is missing",
			    sub);
			return (-AS_EINVAL);
		}
	}
	return (0);
}

/* Header fields shared by both kinds: apiVersion, kind, status. */
static int
config_header(const cJSON *obj, const char *kind, const char *path,
    char *err, size_t errlen)
{
	const cJSON	*v;

	char		 at[256];

	if (!cJSON_IsObject(obj)) {
		snprintf(err, errlen, "%s: expected an %s object",
		    *path != '\0' ? path : "(document)", kind);
		return (-AS_EINVAL);
	}
	v = cJSON_GetObjectItemCaseSensitive(obj, "apiVersion");
	if (v != NULL && (!cJSON_IsString(v) ||
	    strcmp(v->valuestring, API_VERSION) != 0)) {
		config_path(at, sizeof at, path, "apiVersion");
		snprintf(err, errlen, "%s: expected \"%s\"", at, API_VERSION);
		return (-AS_EINVAL);
	}
	v = cJSON_GetObjectItemCaseSensitive(obj, "kind");
	if (v != NULL && (!cJSON_IsString(v) ||
	    strcmp(v->valuestring, kind) != 0)) {
		config_path(at, sizeof at, path, "kind");
		snprintf(err, errlen, "%s: expected \"%s\"", at, kind);
		return (-AS_EINVAL);
	}
	return (0);
}

/* DNS-1123 subdomain: lowercase alphanumerics, '-' and '.', <= 253. */
static int
config_dns_name(const char *s, size_t max)
{
	size_t	 n = strlen(s), i;

	if (n == 0 || n > max || !isalnum((unsigned char)s[0]) ||
	    !isalnum((unsigned char)s[n - 1]))
		return (0);
	for (i = 0; i < n; i++) {
		if (!(islower((unsigned char)s[i]) ||
		    isdigit((unsigned char)s[i]) || s[i] == '-' || s[i] == '.'))
			return (0);
	}
	return (1);
}

int
config_dns_subdomain(const char *s, size_t max)
{
	size_t	 n = strlen(s), i;

	if (!config_dns_name(s, max))
		return (0);
	/* Each dot-separated label starts and ends alphanumeric. */
	for (i = 1; i < n; i++)
		if (s[i] == '.' && (s[i - 1] == '.' || s[i - 1] == '-' ||
		    s[i + 1] == '-'))
			return (0);
	return (1);
}

/* k8s.io/apimachinery validation IsConfigMapKey, which Secrets use too. */
int
config_secret_key(const char *s)
{
	size_t	 n = strlen(s), i;

	if (n == 0 || n > 253 || strcmp(s, ".") == 0 ||
	    strncmp(s, "..", 2) == 0)
		return (0);
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_' && s[i] != '.')
			return (0);
	return (1);
}

static int
config_listed(const char *s, const char *const *list, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return (1);
	return (0);
}

/*
 * Where the password comes from (see struct config_tenancy): file mode keeps
 * the operator's files and variables; CRD mode allows only a Secret of the
 * pool's namespace or a shared one, read through the API.
 */
static int
config_check_secret(struct pool_config *p, struct pool_source_config *s,
    const char *where, const char *secrets_dir,
    const struct config_tenancy *crd, const char *path, char *err,
    size_t errlen)
{
	const char	*field = NULL, *ns, *bad;
	char		 at[256], key[320];

	if (s->secret_name != NULL) {
		if (!config_dns_subdomain(s->secret_name, 253)) {
			config_sub(at, sizeof at, path, where,
			    "authSecretRef.name");
			snprintf(err, errlen, "%s: expected a Secret name "
			    "(DNS-1123 subdomain: lowercase letters, digits, "
			    "'-', '.'), got \"%.*s\"", at,
			    AS_UTF8_PREC(s->secret_name, 64));
			return (-AS_EINVAL);
		}
		if (!config_secret_key(s->secret_key) ||
		    (s->secret_user_key != NULL &&
		    !config_secret_key(s->secret_user_key))) {
			config_sub(at, sizeof at, path, where,
			    config_secret_key(s->secret_key) ?
			    "authSecretRef.usernameKey" : "authSecretRef.key");
			bad = config_secret_key(s->secret_key) ?
			    s->secret_user_key : s->secret_key;
			snprintf(err, errlen, "%s: expected a Secret key "
			    "([-._a-zA-Z0-9]+, not \".\" or \"..\"), got "
			    "\"%.*s\"", at, AS_UTF8_PREC(bad, 64));
			return (-AS_EINVAL);
		}
		if (s->secret_user_key != NULL && s->username != NULL) {
			config_sub(at, sizeof at, path, where, "username");
			snprintf(err, errlen, "%s: give username or "
			    "authSecretRef.usernameKey, not both", at);
			return (-AS_EINVAL);
		}
	}
	if (crd == NULL) {
		if (s->secret_ns != NULL) {
			config_sub(at, sizeof at, path, where,
			    "authSecretRef.namespace");
			snprintf(err, errlen, "%s: only in CRD mode; with "
			    "--config the Secret is the file "
			    "<secrets-dir>/<name>/<key>", at);
			return (-AS_EINVAL);
		}
		if (secrets_dir == NULL)
			secrets_dir = "/etc/agentscaler/secrets";
		if (s->secret_name != NULL)
			s->password_file = xasprintf("%s/%s/%s", secrets_dir,
			    s->secret_name, s->secret_key);
		if (s->secret_user_key != NULL)
			s->username_file = xasprintf("%s/%s/%s", secrets_dir,
			    s->secret_name, s->secret_user_key);
		return (0);
	}
	if (s->password_file != NULL)
		field = "passwordFile";
	else if (s->password_env != NULL)
		field = "passwordEnv";
	else if (s->tls_ca_file != NULL)
		field = "tls.caFile";
	if (field != NULL) {
		config_sub(at, sizeof at, path, where, field);
		snprintf(err, errlen, "%s: refused in CRD mode: an AgentPool "
		    "may not name a file or variable of agentscaler; put the "
		    "password in a Secret of namespace %s and name it with "
		    "authSecretRef", at, p->ns);
		return (-AS_EINVAL);
	}
	if (s->secret_name == NULL)
		return (0);
	ns = s->secret_ns != NULL ? s->secret_ns : p->ns;
	snprintf(key, sizeof key, "%s/%s", ns, s->secret_name);
	config_sub(at, sizeof at, path, where, "authSecretRef");
	if (strcmp(ns, p->ns) != 0) {
		if (!config_listed(key, crd->shared, crd->nshared)) {
			snprintf(err, errlen, "%s: Secret %s is in another "
			    "namespace and not one the administrator shares "
			    "(--shared-secrets); a pool may only use Secrets "
			    "of its own namespace %s", at, key, p->ns);
			return (-AS_EINVAL);
		}
	} else if (crd->secret_namespaces != NULL &&
	    !config_listed(ns, crd->secret_namespaces,
	    crd->nsecret_namespaces) &&
	    !config_listed(key, crd->shared, crd->nshared)) {
		snprintf(err, errlen, "%s: agentscaler may not read Secrets "
		    "in namespace %s (--secret-namespaces lists the "
		    "namespaces it may read them in)", at, ns);
		return (-AS_EINVAL);
	}
	s->password_secret = xasprintf("%s/%s", key, s->secret_key);
	if (s->secret_user_key != NULL)
		s->username_secret = xasprintf("%s/%s", key,
		    s->secret_user_key);
	return (0);
}

/* 1 when a and b are the same URL but for one trailing '/'. */
static int
config_same_url(const char *a, const char *b)
{
	size_t	 la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '/')
		la--;
	if (lb > 0 && b[lb - 1] == '/')
		lb--;
	return (la == lb && strncmp(a, b, la) == 0);
}

/*
 * CRD mode: a tenant writes spec.handoff, and the daemon sends each task's
 * requests where it points.  The router must be one the operator allowed
 * (--handoff-routers; a pool naming none takes the first), and via podIP
 * needs --pod-cidrs, the ranges a pod IP is checked against before it is
 * used (the IP comes from the claim's status, in the tenant's namespace).
 */
static int
config_check_handoff_crd(struct pool_config *p, const cJSON *spec,
    const struct config_tenancy *crd, const char *path, char *err,
    size_t errlen)
{
	struct pool_handoff_config *h = &p->handoff;
	char	 at[256];
	size_t	 i;

	if (h->mode != HANDOFF_HTTP)
		return (0);
	if (h->via == HANDOFF_VIA_POD_IP) {
		if (crd->npod_cidrs > 0)
			return (0);
		config_path(at, sizeof at, path, "spec.handoff.via");
		snprintf(err, errlen, "%s: podIP refused in CRD mode: "
		    "agentscaler has no --pod-cidrs to check a pod IP "
		    "against", at);
		return (-AS_EINVAL);
	}
	if (cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
	    spec, "handoff"), "router") == NULL && crd->nrouters > 0) {
		free(h->router);
		h->router = xstrdup(crd->routers[0]);
		return (0);
	}
	for (i = 0; i < crd->nrouters; i++)
		if (config_same_url(h->router, crd->routers[i]))
			return (0);
	config_path(at, sizeof at, path, "spec.handoff.router");
	if (crd->nrouters == 0)
		snprintf(err, errlen, "%s: refused in CRD mode: agentscaler "
		    "allows no router (--handoff-routers is empty)", at);
	else
		snprintf(err, errlen, "%s: \"%.*s\" refused in CRD mode: "
		    "not one of the routers agentscaler allows "
		    "(--handoff-routers: %.128s%s)", at,
		    AS_UTF8_PREC(h->router, 64),
		    crd->routers[0], crd->nrouters > 1 ? ", ..." : "");
	return (-AS_EINVAL);
}

/*
 * spec.handoff and spec.results: dispatch mode only; http through the
 * router needs an http(s):// router URL; the router's CA is a file of the
 * daemon (refused in CRD mode, as the source's); the results destination
 * takes its password as the source does.
 */
static int
config_check_handoff(struct pool_config *p, const cJSON *spec,
    const char *secrets_dir, const struct config_tenancy *crd,
    const char *path, char *err, size_t errlen)
{
	struct pool_handoff_config *h = &p->handoff;
	const char	*which = NULL;
	char		 at[256];
	int		 nauth, rc;

	p->has_results = cJSON_GetObjectItemCaseSensitive(spec,
	    "results") != NULL;
	if (p->mode != POOL_MODE_DISPATCH) {
		if (cJSON_GetObjectItemCaseSensitive(spec, "handoff") != NULL)
			which = "spec.handoff";
		else if (p->has_results)
			which = "spec.results";
		if (which != NULL) {
			config_path(at, sizeof at, path, which);
			snprintf(err, errlen, "%s: dispatch mode only", at);
			return (-AS_EINVAL);
		}
		return (0);
	}
	if (crd != NULL && (rc = config_check_handoff_crd(p, spec, crd, path,
	    err, errlen)) != 0)
		return (rc);
	if (strncmp(h->router, "http://", 7) != 0 &&
	    strncmp(h->router, "https://", 8) != 0) {
		config_path(at, sizeof at, path, "spec.handoff.router");
		snprintf(err, errlen, "%s: expected an http:// or https:// URL, "
		    "got \"%.*s\"", at, AS_UTF8_PREC(h->router, 64));
		return (-AS_EINVAL);
	}
	if (crd != NULL && h->tls_ca_file != NULL) {
		config_path(at, sizeof at, path, "spec.handoff.tls.caFile");
		snprintf(err, errlen, "%s: refused in CRD mode: an AgentPool "
		    "may not name a file of agentscaler", at);
		return (-AS_EINVAL);
	}
	if (p->has_results && h->mode != HANDOFF_HTTP) {
		config_path(at, sizeof at, path, "spec.results");
		snprintf(err, errlen, "%s: only with handoff.mode http (an "
		    "inbox agent publishes its own results)", at);
		return (-AS_EINVAL);
	}
	if (!p->has_results)
		return (0);
	nauth = (p->results.secret_name != NULL) +
	    (p->results.password_file != NULL) +
	    (p->results.password_env != NULL);
	if (nauth > 1) {
		config_path(at, sizeof at, path, "spec.results");
		snprintf(err, errlen, "%s: give at most one of "
		    "authSecretRef, passwordFile, passwordEnv", at);
		return (-AS_EINVAL);
	}
	/* A queue, or (rabbitmq only) an exchange instead: one of them. */
	if (strcmp(p->results.type, "rabbitmq") == 0 ?
	    (p->results.queue != NULL) == (p->results.exchange != NULL) :
	    p->results.queue == NULL || p->results.exchange != NULL) {
		config_path(at, sizeof at, path, "spec.results");
		snprintf(err, errlen, "%s: %s", at,
		    strcmp(p->results.type, "rabbitmq") == 0 ? "give one of "
		    "queue, exchange" : "give queue (exchange is rabbitmq's)");
		return (-AS_EINVAL);
	}
	return (config_check_secret(p, &p->results, "spec.results",
	    secrets_dir, crd, path, err, errlen));
}

static const struct field pool_top_fields[] = {
	{ "apiVersion", F_IGNORE, 0, 0, 0, 0, 0, NULL, NULL, NULL, API_VERSION },
	{ "kind", F_IGNORE, 0, 0, 0, 0, 0, NULL, NULL, NULL, "AgentPool" },
	{ "metadata", F_OBJECT, 0, 1, 0, 0, 0, NULL, NULL, metadata_fields,
	    "name and namespace" },
	{ "spec", F_OBJECT, 0, 1, 0, 0, 0, NULL, NULL, pool_spec_fields,
	    "the pool" },
	{ "status", F_IGNORE, 0, 0, 0, 0, 0, NULL, NULL, NULL,
	    "written by agentscaler" },
	END_FIELDS
};

static const struct field quota_top_fields[] = {
	{ "apiVersion", F_IGNORE, 0, 0, 0, 0, 0, NULL, NULL, NULL, API_VERSION },
	{ "kind", F_IGNORE, 0, 0, 0, 0, 0, NULL, NULL, NULL, "AgentQuota" },
	{ "metadata", F_OBJECT, 0, 1, 0, 0, 0, NULL, NULL,
	    quota_metadata_fields, "name and namespace" },
	{ "spec", F_OBJECT, 0, 1, 0, 0, 0, NULL, NULL, quota_spec_fields,
	    "the quota" },
	{ "status", F_IGNORE, 0, 0, 0, 0, 0, NULL, NULL, NULL,
	    "written by agentscaler" },
	END_FIELDS
};

/*
 * metadata.annotations: agentscaler.io/paused "true" or "false", and
 * agentscaler.io/paused-replicas, a count as KEDA's
 * autoscaling.keda.sh/paused-replicas (keda.sh docs, "Pause
 * autoscaling"): the target is scaled to it and held there.  Other
 * annotations are not ours and are ignored.
 */
static int
config_check_annotations(struct pool_config *p, const cJSON *obj,
    const char *path, char *err, size_t errlen)
{
	const cJSON	*ann;
	const char	*v;
	char		 at[256], *end;
	long		 n;

	p->paused_replicas = -1;
	ann = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "annotations");
	if ((v = as_json_str(ann, CONFIG_ANN_PAUSED)) != NULL) {
		if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
			config_path(at, sizeof at, path,
			    "metadata.annotations." CONFIG_ANN_PAUSED);
			snprintf(err, errlen, "%s: expected \"true\" or "
			    "\"false\", got \"%s\"", at, v);
			return (-AS_EINVAL);
		}
		p->paused = strcmp(v, "true") == 0;
	}
	if ((v = as_json_str(ann, CONFIG_ANN_PAUSED_REPLICAS)) != NULL) {
		config_path(at, sizeof at, path,
		    "metadata.annotations." CONFIG_ANN_PAUSED_REPLICAS);
		errno = 0;
		n = strtol(v, &end, 10);
		if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 ||
		    n > p->scaling.max_replicas) {
			snprintf(err, errlen, "%s: expected a count in [0, "
			    "maxReplicas %ld], got \"%s\"", at,
			    p->scaling.max_replicas, v);
			return (-AS_EINVAL);
		}
		if (p->mode != POOL_MODE_SCALE) {
			snprintf(err, errlen, "%s: scale mode only (a dispatch "
			    "pool has no replicas to hold; use %s)", at,
			    CONFIG_ANN_PAUSED);
			return (-AS_EINVAL);
		}
		p->paused = 1;
		p->paused_replicas = n;
	}
	return (0);
}

int
config_pool_consumes(const struct pool_config *p)
{
	return (p->mode == POOL_MODE_DISPATCH && !p->shadow && !p->paused);
}

/* Checks that span fields of one pool. */
static int
config_check_pool(struct pool_config *p, const cJSON *obj,
    const char *secrets_dir, const struct config_tenancy *crd,
    const char *path, char *err, size_t errlen)
{
	const struct scaler_type	*st;
	const cJSON			*spec;
	char				 at[256];
	int				 nauth, rc;

	spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
	if (!config_dns_name(p->name, 253)) {
		config_path(at, sizeof at, path, "metadata.name");
		snprintf(err, errlen, "%s: expected a DNS-1123 "
		    "name (lowercase letters, digits, '-', '.'), got \"%s\"",
		    at, p->name);
		return (-AS_EINVAL);
	}
	if (!config_dns_name(p->ns, 63) || strchr(p->ns, '.') != NULL) {
		config_path(at, sizeof at, path, "metadata.namespace");
		snprintf(err, errlen, "%s: expected a "
		    "DNS-1123 label, got \"%s\"", at, p->ns);
		return (-AS_EINVAL);
	}
	if (p->scaling.min_replicas > p->scaling.max_replicas) {
		config_path(at, sizeof at, path, "spec.scaling.minReplicas");
		snprintf(err, errlen, "%s: %ld is "
		    "above maxReplicas %ld", at, p->scaling.min_replicas,
		    p->scaling.max_replicas);
		return (-AS_EINVAL);
	}
	if (p->spare_min > p->spare_max) {
		config_path(at, sizeof at, path, "spec.sandbox.spare.min");
		snprintf(err, errlen, "%s: %ld is above "
		    "spare.max %ld", at, p->spare_min, p->spare_max);
		return (-AS_EINVAL);
	}
	if (p->mode == POOL_MODE_SCALE &&
	    cJSON_GetObjectItemCaseSensitive(spec, "target") == NULL) {
		config_path(at, sizeof at, path, "spec.target");
		snprintf(err, errlen, "%s: required in scale mode", at);
		return (-AS_EINVAL);
	}
	if (p->mode == POOL_MODE_DISPATCH &&
	    cJSON_GetObjectItemCaseSensitive(spec, "sandbox") == NULL) {
		config_path(at, sizeof at, path, "spec.sandbox");
		snprintf(err, errlen, "%s: required in dispatch mode",
		    at);
		return (-AS_EINVAL);
	}
	if (p->ndefault_resources > TASK_MAX_RESOURCES) {
		/* A claim's annotation carries at most that many. */
		config_path(at, sizeof at, path,
		    "spec.sandbox.defaultResources");
		snprintf(err, errlen, "%s: at most %d resources, not %zu", at,
		    TASK_MAX_RESOURCES, p->ndefault_resources);
		return (-AS_EINVAL);
	}
	if (p->mode == POOL_MODE_DISPATCH &&
	    strcmp(p->source.type, "rabbitmq") == 0 &&
	    strncmp(p->source.address, "amqp://", 7) != 0 &&
	    strncmp(p->source.address, "amqps://", 8) != 0) {
		config_path(at, sizeof at, path, "spec.source.address");
		snprintf(err, errlen, "%s: dispatch mode "
		    "consumes the queue, which needs amqp:// or amqps:// (the "
		    "management API can only be read)", at);
		return (-AS_EINVAL);
	}
	if (strcmp(p->source.type, "redis-stream") == 0 &&
	    p->source.consumer_group == NULL) {
		config_path(at, sizeof at, path, "spec.source.consumerGroup");
		snprintf(err, errlen, "%s: required for redis-stream",
		    at);
		return (-AS_EINVAL);
	}
	nauth = (p->source.secret_name != NULL) +
	    (p->source.password_file != NULL) +
	    (p->source.password_env != NULL);
	if (nauth > 1) {
		config_path(at, sizeof at, path, "spec.source");
		snprintf(err, errlen, "%s: give at most one of "
		    "authSecretRef, passwordFile, passwordEnv", at);
		return (-AS_EINVAL);
	}
	if ((rc = config_check_annotations(p, obj, path, err, errlen)) != 0)
		return (rc);
	if ((st = scaler_type_find(p->source.type)) == NULL) {
		config_path(at, sizeof at, path, "spec.source.type");
		snprintf(err, errlen, "%s: \"%s\" is not "
		    "available in this build (available: %s)", at,
		    p->source.type, scaler_type_names());
		return (-AS_EINVAL);
	}
	if ((rc = config_check_secret(p, &p->source, "spec.source",
	    secrets_dir, crd, path, err, errlen)) != 0)
		return (rc);
	if ((rc = config_check_handoff(p, spec, secrets_dir, crd, path, err,
	    errlen)) != 0)
		return (rc);
	/*
	 * Dispatch mode leaves it unset: the consumer then takes one list
	 * per instance, <queue>:processing:<instance> (consumer.h).
	 */
	if (p->source.processing_list == NULL && p->mode == POOL_MODE_SCALE &&
	    strcmp(p->source.type, "redis-list") == 0)
		p->source.processing_list = xasprintf("%s.processing",
		    p->source.queue);
	if (st->validate != NULL) {
		struct scaler_source src;
		char e[192];

		memset(&src, 0, sizeof src);
		src.type = p->source.type;
		src.address = p->source.address;
		src.queue = p->source.queue;
		src.processing = p->source.processing_list;
		src.consumer_group = p->source.consumer_group;
		src.count_in_flight = p->source.count_in_flight;
		src.keyspace_notifications = p->source.keyspace_notifications;
		src.stream_field = p->source.stream_field;
		src.username = p->source.username;
		src.password_file = p->source.password_file;
		src.password_env = p->source.password_env;
		src.password_secret = p->source.password_secret;
		src.username_file = p->source.username_file;
		src.username_secret = p->source.username_secret;
		src.ca_file = p->source.tls_ca_file;
		src.insecure_skip_verify = p->source.tls_insecure;
		if (st->validate(&src, e, sizeof e) != 0) {
			config_path(at, sizeof at, path, "spec.source");
			snprintf(err, errlen, "%s: %s", at, e);
			return (-AS_EINVAL);
		}
	}
	return (0);
}

/*
 * An entry of the indexes: the pool or quota at i of c (the arrays move as
 * they grow; the entries stay).
 */
struct config_ref {
	struct as_hash_entry	 link;
	const struct config	*c;
	size_t			 i;
};

/* What the pool index is asked for. */
struct config_pool_key {
	const char	*ns;
	const char	*name;
};

static uint64_t
config_pool_hash(const char *ns, const char *name)
{
	return (as_hash_str(ns) * 31 + as_hash_str(name));
}

static int
config_pool_eq(const struct as_hash_entry *e, const void *arg)
{
	const struct config_ref	*r;
	const struct config_pool_key *k = arg;
	const struct pool_config *p;

	r = AS_HASH_ITEM(e, struct config_ref, link);
	p = &r->c->pools[r->i];

	return (strcmp(p->ns, k->ns) == 0 && strcmp(p->name, k->name) == 0);
}

static int
config_quota_eq(const struct as_hash_entry *e, const void *arg)
{
	const struct config_ref	*r;

	r = AS_HASH_ITEM(e, struct config_ref, link);
	return (strcmp(r->c->quotas[r->i].ns, arg) == 0);
}

/* The index of the entry e found, or (size_t)-1 for NULL. */
static size_t
config_ref_index(const struct as_hash_entry *e)
{
	return (e != NULL ? AS_HASH_ITEM(e, struct config_ref, link)->i :
	    (size_t)-1);
}

static void
config_ref_add(struct config *c, struct as_hash *t, size_t i, uint64_t h)
{
	struct config_ref	*r = xcalloc(1, sizeof *r);

	r->c = c;
	r->i = i;
	as_hash_insert(t, &r->link, h);
}

static void
config_refs_free(struct as_hash *t)
{
	struct as_hash_entry	*e, *next;

	for (e = as_hash_first(t); e != NULL; e = next) {
		next = as_hash_next(t, e);
		free(AS_HASH_ITEM(e, struct config_ref, link));
	}
	as_hash_fini(t);
}

struct config *
config_new(void)
{
	struct config	*c = xcalloc(1, sizeof *c);

	as_hash_init(&c->pool_index, 0, 0, config_pool_eq);
	as_hash_init(&c->quota_index, 0, 0, config_quota_eq);
	return (c);
}

/* Makes room for one more element in *arr (of *n, capacity *cap). */
static void
config_grow(void **arr, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return;
	*cap = *cap == 0 ? 8 : *cap * 2;
	*arr = xrealloc(*arr, *cap * size);
}

/*
 * pollIntervalMs below the floor.  KEDA's pollingInterval counts seconds
 * (keda.sh docs, ScaledObject spec: "pollingInterval: 30"), and a value
 * carried over by habit would poll the broker every 30 ms: refused with
 * the reading it most likely meant, not the table's bare range.
 */
static int
config_check_poll_units(const cJSON *obj, const char *path, char *err,
    size_t errlen)
{
	const cJSON	*v;
	char		 at[256];

	v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(obj, "spec"), "scaling"),
	    "pollIntervalMs");
	if (!cJSON_IsNumber(v) || v->valuedouble < 1 ||
	    v->valuedouble >= CONFIG_POLL_FLOOR_MS ||
	    v->valuedouble != floor(v->valuedouble))
		return (0);
	config_path(at, sizeof at, path, "spec.scaling.pollIntervalMs");
	snprintf(err, errlen, "%s: %.0f is in milliseconds, below the %d ms "
	    "floor; KEDA's pollingInterval counts seconds: for %.0f s write "
	    "%.0f", at, v->valuedouble, CONFIG_POLL_FLOOR_MS, v->valuedouble,
	    v->valuedouble * 1000);
	return (-AS_EINVAL);
}

int
config_add_pool(struct config *c, const cJSON *obj, const char *secrets_dir,
    const struct config_tenancy *crd, const char *path, char *err,
    size_t errlen)
{
	struct pool_config	*p;
	struct config_pool_key	 k;
	char			 at[256];
	size_t			 j;
	int			 rc;

	config_grow((void **)&c->pools, c->npools, &c->pools_cap,
	    sizeof *c->pools);
	p = &c->pools[c->npools];
	memset(p, 0, sizeof *p);
	config_defaults(pool_top_fields, p);
	if ((rc = config_header(obj, "AgentPool", path, err, errlen)) != 0 ||
	    (rc = config_check_poll_units(obj, path, err, errlen)) != 0 ||
	    (rc = config_apply(pool_top_fields, obj, p, path, err,
	    errlen)) != 0 ||
	    (rc = config_check_pool(p, obj, secrets_dir, crd, path, err,
	    errlen)) != 0)
		goto fail;
	k.ns = p->ns;
	k.name = p->name;
	j = config_ref_index(as_hash_find(&c->pool_index,
	    config_pool_hash(p->ns, p->name), &k));
	if (j != (size_t)-1) {
		config_path(at, sizeof at, path, "metadata.name");
		if (path[0] != '\0')
			snprintf(err, errlen, "%s: pool %s/%s is declared "
			    "twice (first at pools[%zu])", at, p->ns, p->name,
			    j);
		else
			snprintf(err, errlen, "%s: pool %s/%s is declared "
			    "twice", at, p->ns, p->name);
		rc = -AS_EINVAL;
		goto fail;
	}
	config_ref_add(c, &c->pool_index, c->npools,
	    config_pool_hash(p->ns, p->name));
	c->npools++;
	return (0);
fail:
	config_free_pool(p);
	return (rc);
}

int
config_add_quota(struct config *c, const cJSON *obj, const char *path,
    char *err, size_t errlen)
{
	struct quota_config	*q;
	char			 at[256];
	size_t			 j;
	int			 rc;

	config_grow((void **)&c->quotas, c->nquotas, &c->quotas_cap,
	    sizeof *c->quotas);
	q = &c->quotas[c->nquotas];
	memset(q, 0, sizeof *q);
	config_defaults(quota_top_fields, q);
	if ((rc = config_header(obj, "AgentQuota", path, err, errlen)) != 0 ||
	    (rc = config_apply(quota_top_fields, obj, q, path, err,
	    errlen)) != 0)
		goto fail;
	j = config_ref_index(as_hash_find(&c->quota_index, as_hash_str(q->ns),
	    q->ns));
	if (j != (size_t)-1) {
		config_path(at, sizeof at, path, "metadata.namespace");
		snprintf(err, errlen, "%s: namespace %s already has a quota "
		    "(%s); at most one per namespace", at, q->ns,
		    c->quotas[j].name);
		rc = -AS_EINVAL;
		goto fail;
	}
	config_ref_add(c, &c->quota_index, c->nquotas, as_hash_str(q->ns));
	c->nquotas++;
	return (0);
fail:
	config_free_quota(q);
	return (rc);
}

/*
 * One object of a config file (config_items()): an AgentPool (kind 0), an
 * AgentQuota (1), or an object of another kind (-1: kubectl would apply
 * it; it is not ours).  path is "pools[0]" in the {pools, quotas} shape,
 * "" for a bare object, whose errors name it by kind/namespace/name; line
 * is its YAML document's first line (0 in JSON).
 */
struct config_item {
	const cJSON	*obj;
	int		 kind;
	char		 path[64];
	int		 line;
};

static void
config_item_add(struct config_item **v, size_t *n, size_t *cap,
    const cJSON *obj, int kind, const char *path, int line)
{
	config_grow((void **)v, *n, cap, sizeof **v);
	(*v)[*n].obj = obj;
	(*v)[*n].kind = kind;
	as_strlcpy((*v)[*n].path, path, sizeof (*v)[*n].path);
	(*v)[*n].line = line;
	(*n)++;
}

/* The {"pools": [...], "quotas": [...]} shape of doc into v. */
static int
config_shape(const cJSON *doc, struct config_item **v, size_t *n,
    size_t *cap, int line, char *err, size_t errlen)
{
	const cJSON	*pools, *quotas, *it, *top;
	char		 path[64];
	size_t		 i;

	cJSON_ArrayForEach(top, doc) {
		if (strcmp(top->string, "pools") != 0 &&
		    strcmp(top->string, "quotas") != 0) {
			snprintf(err, errlen, "%s: unknown field (expected one "
			    "of: pools, quotas)", top->string);
			return (-AS_EINVAL);
		}
	}
	pools = cJSON_GetObjectItemCaseSensitive(doc, "pools");
	quotas = cJSON_GetObjectItemCaseSensitive(doc, "quotas");
	if ((pools != NULL && !cJSON_IsArray(pools)) ||
	    (quotas != NULL && !cJSON_IsArray(quotas))) {
		snprintf(err, errlen, "%s: expected an array",
		    pools != NULL && !cJSON_IsArray(pools) ? "pools" : "quotas");
		return (-AS_EINVAL);
	}
	i = 0;
	cJSON_ArrayForEach(it, pools) {
		snprintf(path, sizeof path, "pools[%zu]", i++);
		config_item_add(v, n, cap, it, 0, path, line);
	}
	i = 0;
	cJSON_ArrayForEach(it, quotas) {
		snprintf(path, sizeof path, "quotas[%zu]", i++);
		config_item_add(v, n, cap, it, 1, path, line);
	}
	return (0);
}

/* One YAML document: a bare object, a List of them, or the shape. */
static int
config_doc(const cJSON *doc, int line, struct config_item **v, size_t *n,
    size_t *cap, char *err, size_t errlen)
{
	const char	*kind = as_json_str(doc, "kind");
	const cJSON	*it;

	if (!cJSON_IsObject(doc)) {
		snprintf(err, errlen, "line %d: expected an AgentPool or "
		    "AgentQuota object, a List of them, or {pools, quotas}",
		    line);
		return (-AS_EINVAL);
	}
	if (kind == NULL)
		return (config_shape(doc, v, n, cap, line, err, errlen));
	if (strcmp(kind, "List") == 0 || (strlen(kind) > 4 &&
	    strcmp(kind + strlen(kind) - 4, "List") == 0)) {
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(doc,
		    "items"))
			if (config_doc(it, line, v, n, cap, err, errlen) != 0)
				return (-AS_EINVAL);
		return (0);
	}
	config_item_add(v, n, cap, doc, strcmp(kind, "AgentPool") == 0 ? 0 :
	    strcmp(kind, "AgentQuota") == 0 ? 1 : -1, "", line);
	return (0);
}

/*
 * The objects of a config file: JSON in the {pools, quotas} shape (a
 * file that starts with '{' or '['), else YAML, one document or many, as
 * kubectl apply reads them: bare AgentPool and AgentQuota objects, Lists
 * of them, or the {pools, quotas} shape.  *root holds what *v points
 * into; the caller frees both.
 */
static int
config_items(const char *buf, size_t len, cJSON **root,
    struct config_item **v, size_t *n, char *err, size_t errlen)
{
	const cJSON	*doc, *ln;
	cJSON		*lines = NULL;
	size_t		 i, cap = 0;
	int		 rc;

	*root = NULL;
	*v = NULL;
	*n = 0;
	if (len > CONFIG_MAX_BYTES) {
		snprintf(err, errlen, "config: larger than %d bytes",
		    CONFIG_MAX_BYTES);
		return (-AS_EINVAL);
	}
	for (i = 0; i < len && isspace((unsigned char)buf[i]); i++)
		;
	if (i < len && (buf[i] == '{' || buf[i] == '[')) {
		if ((*root = cJSON_ParseWithLength(buf, len)) == NULL) {
			const char *at = cJSON_GetErrorPtr();
			size_t off = at != NULL && at >= buf &&
			    at <= buf + len ? (size_t)(at - buf) : 0;
			int line = 1;

			for (i = 0; i < off; i++)
				line += buf[i] == '\n';
			snprintf(err, errlen, "config: not valid JSON (near "
			    "byte %zu, line %d)", off, line);
			return (-AS_EINVAL);
		}
		if (!cJSON_IsObject(*root)) {
			snprintf(err, errlen, "config: expected an object with "
			    "\"pools\" and \"quotas\"");
			return (-AS_EINVAL);
		}
		return (config_shape(*root, v, n, &cap, 0, err, errlen));
	}
	if ((rc = as_yaml_parse(buf, len, root, &lines, err, errlen)) != 0)
		return (rc);
	if (cJSON_GetArraySize(*root) == 0) {
		cJSON_Delete(lines);
		snprintf(err, errlen, "config: no document (neither JSON nor "
		    "YAML objects)");
		return (-AS_EINVAL);
	}
	for (doc = (*root)->child, ln = lines->child; doc != NULL && rc == 0;
	    doc = doc->next, ln = ln->next)
		rc = config_doc(doc, (int)ln->valuedouble, v, n, &cap, err,
		    errlen);
	cJSON_Delete(lines);
	return (rc);
}

/* "AgentPool team-a/p1 (line 3)" of a bare object, for its errors. */
static void
config_item_name(const struct config_item *x, char *out, size_t len)
{
	const cJSON	*md = cJSON_GetObjectItemCaseSensitive(x->obj,
	    "metadata");
	const char	*ns = as_json_str(md, "namespace");
	const char	*name = as_json_str(md, "name");
	const char	*kind = as_json_str(x->obj, "kind");
	char		 at[32];

	if (x->line > 0)
		snprintf(at, sizeof at, " (line %d)", x->line);
	else
		at[0] = '\0';
	snprintf(out, len, "%s %s/%s%s", kind != NULL ? kind : x->kind == 1 ?
	    "AgentQuota" : "AgentPool", ns != NULL ? ns : "default",
	    name != NULL ? name : "(no name)", at);
}

/* Adds x to c; its error named by its path, or by its name when bare. */
static int
config_item_apply(struct config *c, const struct config_item *x,
    const char *secrets_dir, char *err, size_t errlen)
{
	char	 e[768], who[400];
	int	 rc;

	if (x->kind < 0) {
		config_item_name(x, who, sizeof who);
		snprintf(err, errlen, "%s: not an AgentPool or AgentQuota",
		    who);
		return (-AS_EINVAL);
	}
	rc = x->kind == 0 ? config_add_pool(c, x->obj, secrets_dir, NULL,
	    x->path, e, sizeof e) : config_add_quota(c, x->obj, x->path, e,
	    sizeof e);
	if (rc == 0)
		return (0);
	if (x->path[0] != '\0') {
		snprintf(err, errlen, "%s", e);
		return (rc);
	}
	config_item_name(x, who, sizeof who);
	snprintf(err, errlen, "%s: %s", who, e);
	return (rc);
}

int
config_parse(const char *buf, size_t len, const char *secrets_dir,
    struct config **out, char *err, size_t errlen)
{
	struct config_item *v = NULL;
	struct config	*c = NULL;
	cJSON		*root = NULL;
	size_t		 i, n;
	int		 rc;

	*out = NULL;
	if ((rc = config_items(buf, len, &root, &v, &n, err, errlen)) != 0)
		goto out;
	c = config_new();
	for (i = 0; i < n; i++)
		if ((rc = config_item_apply(c, &v[i], secrets_dir, err,
		    errlen)) != 0)
			goto out;
	*out = c;
	c = NULL;
out:
	config_free(c);
	free(v);
	cJSON_Delete(root);
	return (rc);
}

int
config_check(const char *buf, size_t len, const char *secrets_dir,
    config_check_fn *fn, void *arg, char *err, size_t errlen)
{
	struct config_item *v = NULL;
	struct config	*c = NULL;
	cJSON		*root = NULL;
	char		 e[1024], who[400];
	size_t		 i, n;
	int		 rc, bad = 0;

	if ((rc = config_items(buf, len, &root, &v, &n, err, errlen)) != 0)
		goto out;
	c = config_new();
	for (i = 0; i < n; i++) {
		if (v[i].path[0] != '\0')
			as_strlcpy(who, v[i].path, sizeof who);
		else
			config_item_name(&v[i], who, sizeof who);
		if (v[i].kind < 0) {
			fn(arg, who, NULL, 1);
			continue;
		}
		if (config_item_apply(c, &v[i], secrets_dir, e,
		    sizeof e) != 0) {
			bad++;
			fn(arg, who, e, 0);
		} else
			fn(arg, who, NULL, 0);
	}
	rc = bad;
out:
	config_free(c);
	free(v);
	cJSON_Delete(root);
	return (rc);
}

int
config_load(const char *path, const char *secrets_dir, struct config **out,
    char *err, size_t errlen)
{
	char	*buf, e[256];
	size_t	 len;
	int	 rc;

	*out = NULL;
	if ((buf = as_read_file(path, CONFIG_MAX_BYTES, &len, e,
	    sizeof e)) == NULL) {
		snprintf(err, errlen, "%s", e);
		return (-AS_EINVAL);
	}
	rc = config_parse(buf, len, secrets_dir, out, err, errlen);
	free(buf);
	return (rc);
}

static void
config_free_pool(struct pool_config *p)
{
	size_t	 j;

	if (p == NULL)
		return;
	free(p->ns);
	free(p->name);
	config_free_source(&p->source);
	config_free_source(&p->results);
	free(p->handoff.router);
	free(p->handoff.tls_ca_file);
	free(p->target_kind);
	free(p->target_name);
	free(p->warm_pool);
	for (j = 0; j < p->ndefault_resources; j++) {
		free(p->default_resources[j].name);
		free(p->default_resources[j].quantity);
	}
	free(p->default_resources);
}

static void
config_free_source(struct pool_source_config *s)
{
	free(s->type);
	free(s->address);
	free(s->queue);
	free(s->exchange);
	free(s->processing_list);
	free(s->consumer_group);
	free(s->secret_name);
	free(s->secret_key);
	free(s->password_file);
	free(s->password_env);
	free(s->secret_ns);
	free(s->secret_user_key);
	free(s->username_file);
	free(s->username_secret);
	free(s->password_secret);
	free(s->username);
	free(s->tls_ca_file);
	free(s->stream_field);
}

static void
config_free_quota(struct quota_config *q)
{
	size_t	 j;

	free(q->ns);
	free(q->name);
	for (j = 0; j < q->nresources; j++) {
		free(q->resources[j].name);
		free(q->resources[j].quantity);
	}
	free(q->resources);
}

void
config_free(struct config *c)
{
	size_t	 i;

	if (c == NULL)
		return;
	for (i = 0; i < c->npools; i++)
		config_free_pool(&c->pools[i]);
	for (i = 0; i < c->nquotas; i++)
		config_free_quota(&c->quotas[i]);
	free(c->pools);
	free(c->quotas);
	config_refs_free(&c->pool_index);
	config_refs_free(&c->quota_index);
	free(c);
}

const struct quota_config *
config_quota_for(const struct config *c, const char *ns)
{
	size_t	 i;

	if (c == NULL)
		return (NULL);
	i = config_ref_index(as_hash_find(&c->quota_index, as_hash_str(ns),
	    ns));
	return (i != (size_t)-1 ? &c->quotas[i] : NULL);
}

static void
config_print_table(const struct field *tbl, const char *path)
{
	char	 sub[256], vals[256];

	for (; tbl->name != NULL; tbl++) {
		config_path(sub, sizeof sub, path, tbl->name);
		switch (tbl->kind) {
		case F_OBJECT:
			printf("  %-48s %s\n", sub, tbl->help);
			config_print_table(tbl->sub, sub);
			continue;
		case F_IGNORE:
			continue;
		case F_INT:
		case F_NUMBER:
			printf("  %-48s %s (default %.15g, range %.15g..%.15g)"
			    "%s\n", sub, tbl->help, tbl->def, tbl->min,
			    tbl->max, tbl->required ? ", required" : "");
			continue;
		default:
			printf("  %-48s %s%s\n", sub,
			    config_help(tbl, vals, sizeof vals),
			    tbl->required ? " (required)" : "");
		}
	}
}

static void
config_json_table(const struct field *tbl, const char *path, cJSON *arr)
{
	static const char *const types[] = { [F_STRING] = "string",
	    [F_INT] = "integer", [F_NUMBER] = "number", [F_BOOL] = "boolean",
	    [F_ENUM] = "enum", [F_OBJECT] = "object",
	    [F_RESOURCES] = "quantities" };
	const char *const	*values;
	cJSON			*o, *vals;
	char			 sub[256], help[256];
	size_t			 i;

	for (; tbl->name != NULL; tbl++) {
		if (tbl->kind == F_IGNORE)
			continue;
		config_path(sub, sizeof sub, path, tbl->name);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "path", sub);
		cJSON_AddStringToObject(o, "type", types[tbl->kind]);
		cJSON_AddBoolToObject(o, "required", tbl->required);
		cJSON_AddStringToObject(o, "help",
		    config_help(tbl, help, sizeof help));
		switch (tbl->kind) {
		case F_INT:
		case F_NUMBER:
			cJSON_AddNumberToObject(o, "min", tbl->min);
			cJSON_AddNumberToObject(o, "max", tbl->max);
			if (tbl->def >= tbl->min && tbl->def <= tbl->max)
				cJSON_AddNumberToObject(o, "default", tbl->def);
			break;
		case F_BOOL:
			cJSON_AddBoolToObject(o, "default", tbl->def != 0);
			break;
		case F_ENUM:
			cJSON_AddStringToObject(o, "default",
			    tbl->values()[(int)tbl->def]);
			break;
		case F_STRING:
			if (tbl->def_str != NULL)
				cJSON_AddStringToObject(o, "default",
				    tbl->def_str);
			break;
		default:
			break;
		}
		if (tbl->values != NULL) {
			values = tbl->values();
			vals = cJSON_AddArrayToObject(o, "enum");
			for (i = 0; values[i] != NULL; i++)
				cJSON_AddItemToArray(vals,
				    cJSON_CreateString(values[i]));
		}
		cJSON_AddItemToArray(arr, o);
		if (tbl->kind == F_OBJECT)
			config_json_table(tbl->sub, sub, arr);
	}
}

void
config_print_reference_json(void)
{
	cJSON	*root;
	char	*s;

	root = cJSON_CreateObject();
	config_json_table(pool_top_fields, "",
	    cJSON_AddArrayToObject(root, "AgentPool"));
	config_json_table(quota_top_fields, "",
	    cJSON_AddArrayToObject(root, "AgentQuota"));
	if ((s = cJSON_Print(root)) != NULL)
		printf("%s\n", s);
	cJSON_free(s);
	cJSON_Delete(root);
}

void
config_print_reference(void)
{
	printf("The objects of the --config file ({\"pools\": [...], "
	    "\"quotas\": [...]}), and of the\nAgentPool and AgentQuota "
	    "custom resources (agentscaler.io/v1alpha1) in CRD mode.\n\n");
	printf("AgentPool (pools[]):\n");
	config_print_table(pool_top_fields, "");
	printf("\nAgentQuota (quotas[]):\n");
	config_print_table(quota_top_fields, "");
}

void
config_pool_source(const struct pool_config *c, struct scaler_source *src)
{
	memset(src, 0, sizeof *src);
	src->type = c->source.type;
	src->address = c->source.address;
	src->queue = c->source.queue;
	src->processing = c->mode == POOL_MODE_DISPATCH ||
	    c->source.count_in_flight ? c->source.processing_list : NULL;
	src->consumer_group = c->source.consumer_group;
	src->password_file = c->source.password_file;
	src->password_env = c->source.password_env;
	src->password_secret = c->source.password_secret;
	src->username_file = c->source.username_file;
	src->username_secret = c->source.username_secret;
	src->count_in_flight = c->source.count_in_flight;
	src->keyspace_notifications = c->source.keyspace_notifications;
	src->stream_field = c->source.stream_field;
	src->username = c->source.username;
	src->ca_file = c->source.tls_ca_file;
	src->insecure_skip_verify = c->source.tls_insecure;
}

void
config_pool_results(const struct pool_config *c, struct scaler_source *src)
{
	const struct pool_source_config *r = &c->results;

	memset(src, 0, sizeof *src);
	src->type = r->type;
	src->address = r->address;
	src->queue = r->queue;
	src->exchange = r->exchange;
	src->password_file = r->password_file;
	src->password_env = r->password_env;
	src->password_secret = r->password_secret;
	src->username_file = r->username_file;
	src->username_secret = r->username_secret;
	src->username = r->username;
	src->ca_file = r->tls_ca_file;
	src->insecure_skip_verify = r->tls_insecure;
}

int
config_same_source(const struct pool_config *a, const struct pool_config *b)
{
#define SAME(f) ((a->f == NULL && b->f == NULL) || \
	(a->f != NULL && b->f != NULL && strcmp(a->f, b->f) == 0))
	return (SAME(source.type) && SAME(source.address) &&
	    SAME(source.queue) && SAME(source.processing_list) &&
	    SAME(source.consumer_group) && SAME(source.password_file) &&
	    SAME(source.password_env) && SAME(source.password_secret) &&
	    SAME(source.username_file) && SAME(source.username_secret) &&
	    SAME(source.username) && SAME(source.stream_field) &&
	    SAME(source.tls_ca_file) &&
	    a->source.keyspace_notifications ==
	    b->source.keyspace_notifications &&
	    a->source.tls_insecure == b->source.tls_insecure &&
	    a->source.count_in_flight == b->source.count_in_flight &&
	    a->source.prefetch == b->source.prefetch &&
	    a->source.claim_idle_seconds == b->source.claim_idle_seconds);
#undef SAME
}

int
config_same_handoff(const struct pool_config *a, const struct pool_config *b)
{
	const struct pool_handoff_config *x = &a->handoff, *y = &b->handoff;
	const struct pool_source_config *r = &a->results, *q = &b->results;

#define STR(u, v) (((u) == NULL && (v) == NULL) || ((u) != NULL && \
	(v) != NULL && strcmp((u), (v)) == 0))
	return (x->mode == y->mode && x->via == y->via &&
	    STR(x->router, y->router) && x->port == y->port &&
	    x->deadline_seconds == y->deadline_seconds &&
	    x->max_attempts == y->max_attempts &&
	    STR(x->tls_ca_file, y->tls_ca_file) &&
	    a->has_results == b->has_results && STR(r->type, q->type) &&
	    STR(r->address, q->address) && STR(r->queue, q->queue) &&
	    STR(r->exchange, q->exchange) &&
	    STR(r->password_file, q->password_file) &&
	    STR(r->password_env, q->password_env) &&
	    STR(r->password_secret, q->password_secret) &&
	    STR(r->username_file, q->username_file) &&
	    STR(r->username_secret, q->username_secret) &&
	    STR(r->username, q->username) &&
	    STR(r->tls_ca_file, q->tls_ca_file) &&
	    r->tls_insecure == q->tls_insecure);
#undef STR
}
