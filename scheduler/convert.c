/*
 * convert.c: KEDA ScaledObjects into AgentPools (convert.h).
 *
 * KEDA's field meanings are from its documentation (keda.sh/docs, pages
 * reference/scaledobject-spec, scalers/rabbitmq-queue, scalers/redis-lists,
 * scalers/redis-streams, concepts/authentication); every trigger value is
 * a string there, so numbers are read from strings.  Each pool is built
 * as a cJSON object plus a list of notes, then printed as YAML: the notes
 * as `#` lines above the document.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "convert.h"

struct conv {
	const cJSON	*docs;
	struct as_buf	 notes;
};

static void	 conv_note(struct conv *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
conv_note(struct conv *cv, const char *fmt, ...)
{
	va_list	 ap;
	char	 line[512];

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	as_buf_printf(&cv->notes, "# %s\n", line);
}

/* A KEDA value: a string ("5") or, written by hand, a number. */
static int
conv_num(const cJSON *o, const char *key, double *v)
{
	const cJSON	*x = cJSON_GetObjectItemCaseSensitive(o, key);
	char		*end;

	if (cJSON_IsNumber(x)) {
		*v = x->valuedouble;
		return (0);
	}
	if (!cJSON_IsString(x) || x->valuestring[0] == '\0')
		return (-1);
	*v = strtod(x->valuestring, &end);
	return (*end == '\0' && isfinite(*v) ? 0 : -1);
}

/* A count field of ours from a KEDA value: whole, at least lo. */
static void
conv_count(struct conv *cv, cJSON *dst, const char *ours, const cJSON *md,
    const char *theirs, long lo)
{
	double	 v;
	long	 n;

	if (cJSON_GetObjectItemCaseSensitive(md, theirs) == NULL)
		return;
	if (conv_num(md, theirs, &v) != 0 || v < 0) {
		conv_note(cv, "%s: not a number, not carried over", theirs);
		return;
	}
	n = (long)ceil(v);
	if (n < lo)
		n = lo;
	if ((double)n != v)
		conv_note(cv, "%s %g: agentscaler counts whole tasks, %s %ld",
		    theirs, v, ours, n);
	cJSON_AddNumberToObject(dst, ours, (double)n);
}

/* The TriggerAuthentication ns/name among the documents, or NULL. */
static const cJSON *
conv_auth(const struct conv *cv, const char *ns, const char *name)
{
	const cJSON	*d, *md;
	const char	*dns;

	cJSON_ArrayForEach(d, cv->docs) {
		md = cJSON_GetObjectItemCaseSensitive(d, "metadata");
		dns = as_json_str(md, "namespace");
		if (as_json_str(d, "kind") != NULL &&
		    strcmp(as_json_str(d, "kind"), "TriggerAuthentication") ==
		    0 && as_json_str(md, "name") != NULL &&
		    strcmp(as_json_str(md, "name"), name) == 0 &&
		    strcmp(dns != NULL ? dns : "default", ns) == 0)
			return (d);
	}
	return (NULL);
}

/*
 * The trigger's authenticationRef: a password (and username) from a
 * Secret become authSecretRef; the rest is named (KEDA's
 * concepts/authentication: secretTargetRef {parameter, name, key}).
 */
static void
conv_trigger_auth(struct conv *cv, const cJSON *trig, const char *ns,
    cJSON *src)
{
	const cJSON	*ref, *ta, *it;
	const char	*name, *kind, *param, *sname, *key;
	cJSON		*asr = NULL;

	ref = cJSON_GetObjectItemCaseSensitive(trig, "authenticationRef");
	if ((name = as_json_str(ref, "name")) == NULL)
		return;
	kind = as_json_str(ref, "kind");
	if (kind != NULL && strcmp(kind, "TriggerAuthentication") != 0) {
		conv_note(cv, "authenticationRef %s %s: not carried over; give "
		    "spec.source.authSecretRef (a Secret of the pool's "
		    "namespace, or one the administrator shares)", kind, name);
		return;
	}
	if ((ta = conv_auth(cv, ns, name)) == NULL) {
		conv_note(cv, "authenticationRef %s: no such "
		    "TriggerAuthentication in the input; give "
		    "spec.source.authSecretRef", name);
		return;
	}
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(ta, "spec"), "secretTargetRef")) {
		param = as_json_str(it, "parameter");
		sname = as_json_str(it, "name");
		key = as_json_str(it, "key");
		if (param == NULL || sname == NULL || key == NULL)
			continue;
		if (strcmp(param, "password") == 0 && asr == NULL) {
			asr = cJSON_AddObjectToObject(src, "authSecretRef");
			cJSON_AddStringToObject(asr, "name", sname);
			cJSON_AddStringToObject(asr, "key", key);
		} else if (strcmp(param, "username") == 0) {
			conv_note(cv, "TriggerAuthentication %s: username from "
			    "Secret %s key %s: set authSecretRef.usernameKey "
			    "(same Secret as the password)", name, sname, key);
		} else
			conv_note(cv, "TriggerAuthentication %s: %s from "
			    "Secret %s key %s: not carried over (agentscaler "
			    "reads the address from spec.source.address, the "
			    "password alone from the Secret)", name, param,
			    sname, key);
	}
	if (cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
	    ta, "spec"), "env") != NULL)
		conv_note(cv, "TriggerAuthentication %s: env (variables of the "
		    "scaled workload) not carried over: agentscaler does not "
		    "run in that pod", name);
}

/* metadata.<key>FromEnv: a variable of the workload, not ours. */
static void
conv_from_env(struct conv *cv, const cJSON *md, const char *const *keys)
{
	for (; *keys != NULL; keys++)
		if (as_json_str(md, *keys) != NULL)
			conv_note(cv, "%s %s: not carried over: it names a "
			    "variable of the scaled workload's container, which "
			    "agentscaler cannot read; give the value here (a "
			    "password: authSecretRef)", *keys,
			    as_json_str(md, *keys));
}

/* redis and redis-streams: the address and database. */
static void
conv_redis_addr(struct conv *cv, const cJSON *md, cJSON *src)
{
	const char	*addr = as_json_str(md, "address");
	const char	*host = as_json_str(md, "host");
	const char	*port = as_json_str(md, "port");
	const char	*db = as_json_str(md, "databaseIndex");
	char		 a[512];

	if (addr != NULL)
		snprintf(a, sizeof a, "redis://%s/%s", addr, db != NULL ? db :
		    "0");
	else if (host != NULL)
		snprintf(a, sizeof a, "redis://%s:%s/%s", host, port != NULL ?
		    port : "6379", db != NULL ? db : "0");
	else {
		conv_note(cv, "no address or host in the trigger: set "
		    "spec.source.address (redis://host:port/db)");
		snprintf(a, sizeof a, "redis://REPLACE-ME:6379/0");
	}
	cJSON_AddStringToObject(src, "address", a);
	if (as_json_str(md, "enableTLS") != NULL &&
	    strcmp(as_json_str(md, "enableTLS"), "true") == 0)
		conv_note(cv, "enableTLS: not carried over: this build's Redis "
		    "client has no TLS (rediss:// is refused)");
}

static int
conv_redis(struct conv *cv, const cJSON *md, cJSON *src, cJSON *sc)
{
	static const char *const env[] = { "addressFromEnv", "hostFromEnv",
	    "portFromEnv", "usernameFromEnv", "passwordFromEnv", NULL };

	cJSON_AddStringToObject(src, "type", "redis-list");
	conv_redis_addr(cv, md, src);
	if (as_json_str(md, "listName") == NULL) {
		conv_note(cv, "listName missing: set spec.source.queue");
		cJSON_AddStringToObject(src, "queue", "REPLACE-ME");
	} else
		cJSON_AddStringToObject(src, "queue", as_json_str(md,
		    "listName"));
	/* KEDA: listLength is the average target per replica, ours too. */
	conv_count(cv, sc, "tasksPerReplica", md, "listLength", 1);
	conv_count(cv, sc, "activationBacklog", md, "activationListLength",
	    0);
	conv_from_env(cv, md, env);
	return (0);
}

static int
conv_streams(struct conv *cv, const cJSON *md, cJSON *src, cJSON *sc)
{
	static const char *const env[] = { "addressFromEnv", "hostFromEnv",
	    "portFromEnv", "usernameFromEnv", "passwordFromEnv", NULL };
	const char	*group = as_json_str(md, "consumerGroup");

	cJSON_AddStringToObject(src, "type", "redis-stream");
	conv_redis_addr(cv, md, src);
	cJSON_AddStringToObject(src, "queue", as_json_str(md, "stream") !=
	    NULL ? as_json_str(md, "stream") : "REPLACE-ME");
	if (group == NULL) {
		conv_note(cv, "consumerGroup missing: agentscaler reads a "
		    "stream through its consumer group; set "
		    "spec.source.consumerGroup");
		group = "REPLACE-ME";
	}
	cJSON_AddStringToObject(src, "consumerGroup", group);
	/*
	 * KEDA's three modes (scalers/redis-streams): pendingEntriesCount
	 * (XPENDING), streamLength (XLEN), lagCount (the group's lag).
	 * agentscaler's backlog is the group's lag, plus the pending
	 * entries with countInFlight.
	 */
	if (cJSON_GetObjectItemCaseSensitive(md, "lagCount") != NULL) {
		conv_count(cv, sc, "tasksPerReplica", md, "lagCount", 1);
		conv_count(cv, sc, "activationBacklog", md,
		    "activationLagCount", 0);
	} else if (cJSON_GetObjectItemCaseSensitive(md,
	    "pendingEntriesCount") != NULL) {
		conv_count(cv, sc, "tasksPerReplica", md,
		    "pendingEntriesCount", 1);
		cJSON_AddBoolToObject(src, "countInFlight", 1);
		conv_note(cv, "pendingEntriesCount: KEDA counted the pending "
		    "entries only; agentscaler counts the undelivered ones "
		    "plus the pending (countInFlight: true)");
	} else if (cJSON_GetObjectItemCaseSensitive(md, "streamLength") !=
	    NULL) {
		conv_count(cv, sc, "tasksPerReplica", md, "streamLength", 1);
		conv_count(cv, sc, "activationBacklog", md,
		    "activationStreamLength", 0);
		conv_note(cv, "streamLength: KEDA counted every entry the "
		    "stream keeps (XLEN); agentscaler counts the group's "
		    "undelivered entries, which falls as work is taken");
	}
	conv_from_env(cv, md, env);
	return (0);
}

static int
conv_rabbitmq(struct conv *cv, const cJSON *md, cJSON *src, cJSON *sc)
{
	static const char *const env[] = { "hostFromEnv", NULL };
	const char	*host = as_json_str(md, "host");
	const char	*mode = as_json_str(md, "mode");
	const char	*at, *scheme, *addr;
	char		 a[512];

	cJSON_AddStringToObject(src, "type", "rabbitmq");
	if (host == NULL) {
		conv_note(cv, "host missing (perhaps in the "
		    "TriggerAuthentication): set spec.source.address "
		    "(amqp://host:5672/vhost or http://host:15672/vhost)");
		cJSON_AddStringToObject(src, "address",
		    "amqp://REPLACE-ME:5672/");
	} else if ((scheme = strstr(host, "://")) != NULL &&
	    (at = strchr(scheme + 3, '@')) != NULL &&
	    (strchr(scheme + 3, '/') == NULL || at < strchr(scheme + 3,
	    '/'))) {
		/* Credentials never inline: the password goes to a Secret. */
		snprintf(a, sizeof a, "%.*s%s", (int)(scheme + 3 - host), host,
		    at + 1);
		cJSON_AddStringToObject(src, "address", a);
		conv_note(cv, "host: the user and password were removed from "
		    "the address; put the password in a Secret and name it in "
		    "spec.source.authSecretRef");
	} else
		cJSON_AddStringToObject(src, "address", host);
	if (as_json_str(md, "vhostName") != NULL)
		conv_note(cv, "vhostName %s: not carried over; the vhost is "
		    "the address's path", as_json_str(md, "vhostName"));
	cJSON_AddStringToObject(src, "queue", as_json_str(md, "queueName") !=
	    NULL ? as_json_str(md, "queueName") : "REPLACE-ME");
	if (mode != NULL && strcmp(mode, "MessageRate") == 0)
		conv_note(cv, "mode MessageRate: not carried over: agentscaler "
		    "scales on the backlog (the queue's length), not on the "
		    "publish rate; tasksPerReplica left at its default");
	else {
		conv_count(cv, sc, "tasksPerReplica", md, "value", 1);
		if (cJSON_GetObjectItemCaseSensitive(md, "value") == NULL)
			conv_count(cv, sc, "tasksPerReplica", md, "queueLength",
			    1);
	}
	conv_count(cv, sc, "activationBacklog", md, "activationValue", 0);
	if (as_json_str(md, "unsafeSsl") != NULL &&
	    strcmp(as_json_str(md, "unsafeSsl"), "true") == 0) {
		addr = as_json_str(src, "address");
		if (strncmp(addr, "amqps://", 8) == 0 ||
		    strncmp(addr, "https://", 8) == 0)
			cJSON_AddBoolToObject(cJSON_AddObjectToObject(src,
			    "tls"), "insecureSkipVerify", 1);
		else
			conv_note(cv, "unsafeSsl: not carried over: the address "
			    "is not TLS");
	}
	if (as_json_str(md, "excludeUnacknowledged") != NULL)
		conv_note(cv, "excludeUnacknowledged: agentscaler counts the "
		    "ready messages, and the unacknowledged ones too with "
		    "countInFlight (http:// addresses)");
	conv_from_env(cv, md, env);
	return (0);
}

/* The spec fields of a ScaledObject, each carried or named. */
static void
conv_spec(struct conv *cv, const cJSON *spec, cJSON *sc)
{
	const cJSON	*adv, *hpa, *beh, *down;
	double		 v;

	/* KEDA's defaults: minReplicaCount 0, maxReplicaCount 100 (ours). */
	if (conv_num(spec, "minReplicaCount", &v) == 0)
		cJSON_AddNumberToObject(sc, "minReplicas", v);
	if (conv_num(spec, "maxReplicaCount", &v) == 0)
		cJSON_AddNumberToObject(sc, "maxReplicas", v);
	/* pollingInterval counts seconds (default 30); ours milliseconds. */
	if (conv_num(spec, "pollingInterval", &v) == 0) {
		cJSON_AddNumberToObject(sc, "pollIntervalMs", v * 1000);
		conv_note(cv, "pollingInterval %g s = pollIntervalMs %g; push "
		    "sources (Redis keyspace notifications) wake the pool "
		    "sooner", v, v * 1000);
	}
	/* cooldownPeriod: the wait after the last activity before zero. */
	if (conv_num(spec, "cooldownPeriod", &v) == 0)
		cJSON_AddNumberToObject(sc, "cooldownSeconds", v);
	if (cJSON_GetObjectItemCaseSensitive(spec, "initialCooldownPeriod"))
		conv_note(cv, "initialCooldownPeriod: not carried over: "
		    "agentscaler applies cooldownSeconds from the first idle "
		    "reading");
	if (cJSON_GetObjectItemCaseSensitive(spec, "idleReplicaCount"))
		conv_note(cv, "idleReplicaCount: not carried over: an idle "
		    "pool goes to minReplicas");
	if (cJSON_GetObjectItemCaseSensitive(spec, "fallback"))
		conv_note(cv, "fallback: not carried over: when the source "
		    "cannot be read agentscaler holds the replicas where they "
		    "are (no fallback count)");
	adv = cJSON_GetObjectItemCaseSensitive(spec, "advanced");
	if (cJSON_GetObjectItemCaseSensitive(adv,
	    "restoreToOriginalReplicaCount"))
		conv_note(cv, "advanced.restoreToOriginalReplicaCount: not "
		    "carried over: a deleted AgentPool leaves its target's "
		    "replicas as they are");
	if (cJSON_GetObjectItemCaseSensitive(adv, "scalingModifiers"))
		conv_note(cv, "advanced.scalingModifiers: not carried over: "
		    "one source per pool, no formula");
	hpa = cJSON_GetObjectItemCaseSensitive(adv,
	    "horizontalPodAutoscalerConfig");
	beh = cJSON_GetObjectItemCaseSensitive(hpa, "behavior");
	down = cJSON_GetObjectItemCaseSensitive(beh, "scaleDown");
	if (conv_num(down, "stabilizationWindowSeconds", &v) == 0)
		cJSON_AddNumberToObject(sc, "scaleDownStabilizationSeconds", v);
	if (cJSON_GetObjectItemCaseSensitive(down, "policies") != NULL ||
	    cJSON_GetObjectItemCaseSensitive(beh, "scaleUp") != NULL)
		conv_note(cv, "advanced.horizontalPodAutoscalerConfig.behavior "
		    "policies and scaleUp: not carried over: agentscaler has "
		    "no HPA; its own bound on a step up is "
		    "scaling.maxScaleUpStep");
	if (cJSON_GetObjectItemCaseSensitive(hpa, "name") != NULL)
		conv_note(cv, "advanced.horizontalPodAutoscalerConfig.name: "
		    "not carried over: agentscaler makes no HPA");
}

/* One ScaledObject: 1 when a pool was made (into pool), else 0. */
static int
conv_one(struct conv *cv, const cJSON *so, int shadow, cJSON **pool)
{
	const cJSON	*md, *spec, *ref, *trig, *tmd, *ann;
	const char	*ns, *name, *type, *kind, *const *k;
	cJSON		*p, *m, *ps, *src, *sc, *tgt, *pa;
	int		 i = 0, done = 0, known = 0;

	*pool = NULL;
	md = cJSON_GetObjectItemCaseSensitive(so, "metadata");
	spec = cJSON_GetObjectItemCaseSensitive(so, "spec");
	ns = as_json_str(md, "namespace") != NULL ? as_json_str(md,
	    "namespace") : "default";
	name = as_json_str(md, "name") != NULL ? as_json_str(md, "name") :
	    "REPLACE-ME";
	p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "apiVersion", "agentscaler.io/v1alpha1");
	cJSON_AddStringToObject(p, "kind", "AgentPool");
	m = cJSON_AddObjectToObject(p, "metadata");
	cJSON_AddStringToObject(m, "name", name);
	cJSON_AddStringToObject(m, "namespace", ns);
	/* KEDA's pause annotations (reference/scaledobject-spec). */
	ann = cJSON_GetObjectItemCaseSensitive(md, "annotations");
	if (as_json_str(ann, "autoscaling.keda.sh/paused") != NULL ||
	    as_json_str(ann, "autoscaling.keda.sh/paused-replicas") != NULL) {
		pa = cJSON_AddObjectToObject(m, "annotations");
		if (as_json_str(ann, "autoscaling.keda.sh/paused") != NULL)
			cJSON_AddStringToObject(pa, "agentscaler.io/paused",
			    as_json_str(ann, "autoscaling.keda.sh/paused"));
		if (as_json_str(ann, "autoscaling.keda.sh/paused-replicas") !=
		    NULL)
			cJSON_AddStringToObject(pa,
			    "agentscaler.io/paused-replicas", as_json_str(ann,
			    "autoscaling.keda.sh/paused-replicas"));
	}
	ps = cJSON_AddObjectToObject(p, "spec");
	if (shadow)
		cJSON_AddBoolToObject(ps, "shadow", 1);
	src = cJSON_AddObjectToObject(ps, "source");
	ref = cJSON_GetObjectItemCaseSensitive(spec, "scaleTargetRef");
	kind = as_json_str(ref, "kind") != NULL ? as_json_str(ref, "kind") :
	    "Deployment";
	for (k = k8s_kind_list(); *k != NULL; k++)
		known |= strcmp(*k, kind) == 0;
	if (!known)
		conv_note(cv, "scaleTargetRef.kind %s: agentscaler scales "
		    "Deployment, StatefulSet and SandboxWarmPool", kind);
	tgt = cJSON_AddObjectToObject(ps, "target");
	cJSON_AddStringToObject(tgt, "kind", kind);
	cJSON_AddStringToObject(tgt, "name", as_json_str(ref, "name") !=
	    NULL ? as_json_str(ref, "name") : "REPLACE-ME");
	sc = cJSON_AddObjectToObject(ps, "scaling");
	conv_spec(cv, spec, sc);
	cJSON_ArrayForEach(trig, cJSON_GetObjectItemCaseSensitive(spec,
	    "triggers")) {
		type = as_json_str(trig, "type");
		tmd = cJSON_GetObjectItemCaseSensitive(trig, "metadata");
		if (type == NULL)
			type = "(none)";
		if (done || (strcmp(type, "rabbitmq") != 0 &&
		    strcmp(type, "redis") != 0 &&
		    strcmp(type, "redis-streams") != 0)) {
			conv_note(cv, "triggers[%d] (%s): not carried over: %s",
			    i, type, done ? "an AgentPool reads one source" :
			    "agentscaler reads rabbitmq, redis (lists) and "
			    "redis-streams");
			i++;
			continue;
		}
		if (strcmp(type, "rabbitmq") == 0)
			conv_rabbitmq(cv, tmd, src, sc);
		else if (strcmp(type, "redis") == 0)
			conv_redis(cv, tmd, src, sc);
		else
			conv_streams(cv, tmd, src, sc);
		conv_trigger_auth(cv, trig, ns, src);
		if (as_json_str(trig, "metricType") != NULL &&
		    strcmp(as_json_str(trig, "metricType"), "AverageValue") !=
		    0)
			conv_note(cv, "triggers[%d].metricType %s: not carried "
			    "over: agentscaler divides the backlog by "
			    "tasksPerReplica (AverageValue)", i,
			    as_json_str(trig, "metricType"));
		done = 1;
		i++;
	}
	if (!done) {
		cJSON_Delete(p);
		return (0);
	}
	if (cJSON_GetArraySize(sc) == 0)
		cJSON_DeleteItemFromObjectCaseSensitive(ps, "scaling");
	*pool = p;
	return (1);
}

/* YAML of v at indent (a mapping's values; scalars as JSON, valid YAML). */
static void
conv_yaml(struct as_buf *b, const cJSON *v, int indent)
{
	const cJSON	*it;
	char		*s;

	cJSON_ArrayForEach(it, v) {
		if (strspn(it->string, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") ==
		    strlen(it->string))
			as_buf_printf(b, "%*s%s:", indent, "", it->string);
		else
			as_buf_printf(b, "%*s\"%s\":", indent, "", it->string);
		if (cJSON_IsObject(it)) {
			as_buf_printf(b, "\n");
			conv_yaml(b, it, indent + 2);
			continue;
		}
		s = cJSON_PrintUnformatted(it);
		as_buf_printf(b, " %s\n", s);
		free(s);
	}
}

int
convert_keda(const cJSON *docs, int shadow, struct as_buf *out, char *err,
    size_t errlen)
{
	struct conv	 cv;
	const cJSON	*d;
	const char	*kind, *name;
	cJSON		*pool;
	int		 n = 0, seen = 0;

	memset(&cv, 0, sizeof cv);
	cv.docs = docs;
	cJSON_ArrayForEach(d, docs) {
		kind = as_json_str(d, "kind");
		name = as_json_str(cJSON_GetObjectItemCaseSensitive(d,
		    "metadata"), "name");
		if (kind == NULL || strcmp(kind, "ScaledObject") != 0) {
			if (kind == NULL || strcmp(kind,
			    "TriggerAuthentication") != 0)
				as_buf_printf(out, "# %s %s: skipped (not a "
				    "ScaledObject)\n", kind != NULL ? kind :
				    "(no kind)", name != NULL ? name : "");
			continue;
		}
		seen++;
		cv.notes.len = 0;
		if (cv.notes.p != NULL)
			cv.notes.p[0] = '\0';
		if (!conv_one(&cv, d, shadow, &pool)) {
			as_buf_printf(out, "# ScaledObject %s: skipped (no "
			    "rabbitmq, redis or redis-streams trigger)\n%s",
			    name != NULL ? name : "", cv.notes.p != NULL ?
			    cv.notes.p : "");
			continue;
		}
		as_buf_printf(out, "---\n# From ScaledObject %s/%s (KEDA).\n",
		    as_json_str(cJSON_GetObjectItemCaseSensitive(pool,
		    "metadata"), "namespace"), name != NULL ? name : "");
		if (shadow)
			as_buf_printf(out, "# shadow: true runs it beside the "
			    "ScaledObject, writing nothing; remove it once the "
			    "ScaledObject is gone.\n");
		if (cv.notes.p != NULL)
			as_buf_printf(out, "%s", cv.notes.p);
		conv_yaml(out, pool, 0);
		cJSON_Delete(pool);
		n++;
	}
	free(cv.notes.p);
	if (seen == 0) {
		snprintf(err, errlen, "no ScaledObject in the input");
		return (-AS_EINVAL);
	}
	return (n);
}
