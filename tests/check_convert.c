/*
 * check_convert.c: KEDA ScaledObjects into AgentPools (scheduler/convert.c).
 * Each row: KEDA YAML in; substrings the output must hold (the fields
 * carried, the notes on those that are not); and the output must be a
 * valid --config (config_parse()), so what convert prints applies.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/yaml.h"
#include "scheduler/config.h"
#include "scheduler/convert.h"
#include "util/testutil.h"

#define SO(meta, spec) "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\n" \
	"metadata: {name: so, namespace: ns" meta "}\nspec:\n" \
	"  scaleTargetRef: {name: web}\n" spec

static const struct row {
	const char	*in;
	int		 npools;	/* -1: refused */
	const char	*want[6];	/* substrings of the output */
} rows[] = {
	/* redis: list, address and db, listLength, activation, env. */
	{ SO("", "  minReplicaCount: 1\n  maxReplicaCount: 7\n  triggers:\n"
	    "  - type: redis\n    metadata: {address: 'r.ns:6379', "
	    "databaseIndex: '2', listName: jobs, listLength: '4', "
	    "activationListLength: '1', passwordFromEnv: REDIS_PASSWORD}\n"),
	    1, { "type: \"redis-list\"", "address: \"redis://r.ns:6379/2\"",
	    "tasksPerReplica: 4", "activationBacklog: 1",
	    "# passwordFromEnv REDIS_PASSWORD: not carried over",
	    "maxReplicas: 7" } },
	/* redis host + port; enableTLS named. */
	{ SO("", "  triggers:\n  - type: redis\n    metadata: {host: r, port: "
	    "'6380', listName: q, listLength: '1', enableTLS: 'true'}\n"), 1,
	    { "address: \"redis://r:6380/0\"", "# enableTLS: not carried",
	    "shadow: true", NULL } },
	/* redis-streams: the three modes. */
	{ SO("", "  triggers:\n  - type: redis-streams\n    metadata: {address: "
	    "'r:6379', stream: s, consumerGroup: g, lagCount: '5', "
	    "activationLagCount: '2'}\n"), 1, { "type: \"redis-stream\"",
	    "consumerGroup: \"g\"", "tasksPerReplica: 5", "activationBacklog: 2",
	    NULL } },
	{ SO("", "  triggers:\n  - type: redis-streams\n    metadata: {address: "
	    "'r:6379', stream: s, consumerGroup: g, pendingEntriesCount: "
	    "'10'}\n"), 1, { "countInFlight: true", "tasksPerReplica: 10",
	    "# pendingEntriesCount: KEDA counted the pending", NULL } },
	{ SO("", "  triggers:\n  - type: redis-streams\n    metadata: {address: "
	    "'r:6379', stream: s, streamLength: '50'}\n"), 1,
	    { "# consumerGroup missing", "consumerGroup: \"REPLACE-ME\"",
	    "# streamLength: KEDA counted every entry", NULL } },
	/* rabbitmq: credentials out of the address, auth, spec fields. */
	{ SO(", annotations: {autoscaling.keda.sh/paused: 'true'}",
	    "  pollingInterval: 30\n  cooldownPeriod: 300\n"
	    "  initialCooldownPeriod: 60\n  idleReplicaCount: 0\n"
	    "  fallback: {failureThreshold: 3, replicas: 2}\n  advanced:\n"
	    "    restoreToOriginalReplicaCount: true\n"
	    "    horizontalPodAutoscalerConfig:\n      behavior:\n"
	    "        scaleDown: {stabilizationWindowSeconds: 90, policies: "
	    "[{type: Pods, value: 1, periodSeconds: 15}]}\n"
	    "  triggers:\n  - type: rabbitmq\n    metadata: {host: "
	    "'amqp://u:p@mq:5672/v', queueName: q, mode: QueueLength, value: "
	    "'20', unsafeSsl: 'true'}\n    authenticationRef: {name: ta}\n"
	    "---\nkind: TriggerAuthentication\nmetadata: {name: ta, namespace: "
	    "ns}\nspec:\n  secretTargetRef:\n  - {parameter: password, name: "
	    "mq, key: pw}\n"), 1, { "address: \"amqp://mq:5672/v\"",
	    "\"agentscaler.io/paused\": \"true\"", "pollIntervalMs: 30000",
	    "cooldownSeconds: 300", "scaleDownStabilizationSeconds: 90",
	    "authSecretRef:\n      name: \"mq\"\n      key: \"pw\"" } },
	{ SO("", "  fallback: {failureThreshold: 3, replicas: 2}\n  advanced:\n"
	    "    restoreToOriginalReplicaCount: true\n    scalingModifiers: "
	    "{formula: x}\n  initialCooldownPeriod: 60\n  idleReplicaCount: 0\n"
	    "  triggers:\n  - type: rabbitmq\n    metadata: {host: "
	    "'http://mq:15672/', queueName: q, mode: MessageRate, value: '5'}\n"
	    "    metricType: Value\n"), 1, { "# fallback: not carried over",
	    "# advanced.restoreToOriginalReplicaCount: not carried over",
	    "# mode MessageRate: not carried over",
	    "# initialCooldownPeriod: not carried over",
	    "# idleReplicaCount: not carried over",
	    "# triggers[0].metricType Value: not carried over" } },
	/* Unsupported triggers only: skipped; auth missing: named. */
	{ SO("", "  triggers:\n  - type: kafka\n    metadata: {topic: t}\n"), 0,
	    { "# ScaledObject so: skipped", "# triggers[0] (kafka): not "
	    "carried over", NULL } },
	{ SO("", "  triggers:\n  - type: redis\n    metadata: {address: 'r:1', "
	    "listName: q}\n    authenticationRef: {name: gone}\n"), 1,
	    { "# authenticationRef gone: no such TriggerAuthentication",
	    NULL } },
	{ "kind: ScaledObject\nmetadata: {name: so}\nspec:\n  scaleTargetRef: "
	    "{kind: Rollout, name: web}\n  triggers:\n  - type: redis\n"
	    "    metadata: {address: 'r:1', listName: q}\n",
	    -2, { "# scaleTargetRef.kind Rollout", NULL } },
	{ "kind: Deployment\nmetadata: {name: web}\n", -1, { NULL } },
};

START_TEST(test_rows)
{
	const struct row *r = &rows[_i];
	struct as_buf	 out = { NULL, 0, 0 };
	struct config	*c;
	cJSON		*docs;
	char		 err[512];
	size_t		 k;
	int		 n;

	ck_assert_msg(as_yaml_parse(r->in, strlen(r->in), &docs, NULL, err,
	    sizeof err) == 0, "%s", err);
	n = convert_keda(docs, 1, &out, err, sizeof err);
	cJSON_Delete(docs);
	if (r->npools == -1) {
		ck_assert_int_eq(n, -AS_EINVAL);
		ck_assert_str_eq(err, "no ScaledObject in the input");
		free(out.p);
		return;
	}
	ck_assert_int_eq(n, r->npools == -2 ? 1 : r->npools);
	ck_assert_ptr_nonnull(out.p);
	for (k = 0; k < AS_ARRAY_SIZE(r->want) && r->want[k] != NULL; k++)
		ck_assert_msg(strstr(out.p, r->want[k]) != NULL,
		    "want \"%s\" in:\n%s", r->want[k], out.p);
	/* What it prints is a valid --config (but for the unknown kind). */
	if (r->npools > 0) {
		ck_assert_msg(config_parse(out.p, out.len, NULL, &c, err,
		    sizeof err) == 0, "%s\n%s", err, out.p);
		ck_assert_uint_eq(c->npools, 1);
		ck_assert_int_eq(c->pools[0].shadow, 1);
		config_free(c);
	}
	free(out.p);
}
END_TEST

/* --no-shadow: no shadow field; the same pool otherwise. */
START_TEST(test_no_shadow)
{
	const char	*in = SO("", "  triggers:\n  - type: redis\n    "
	    "metadata: {address: 'r:1', listName: q}\n");
	struct as_buf	 out = { NULL, 0, 0 };
	cJSON		*docs;
	char		 err[256];

	ck_assert_int_eq(as_yaml_parse(in, strlen(in), &docs, NULL, err,
	    sizeof err), 0);
	ck_assert_int_eq(convert_keda(docs, 0, &out, err, sizeof err), 1);
	ck_assert_ptr_null(strstr(out.p, "shadow"));
	cJSON_Delete(docs);
	free(out.p);
}
END_TEST

static Suite *
convert_suite(void)
{
	Suite	*s = suite_create("convert");
	TCase	*tc = tcase_create("convert");

	tcase_add_loop_test(tc, test_rows, 0, (int)AS_ARRAY_SIZE(rows));
	tcase_add_test(tc, test_no_shadow);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(convert_suite()));
}
