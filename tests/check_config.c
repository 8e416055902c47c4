/*
 * check_config.c: the config document.  A good document parses with every
 * default in place; each bad row must fail with exit-worthy -AS_EINVAL and
 * an error that names the field path and what was expected.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/scaler.h"
#include "scheduler/quantity.h"
#include "scheduler/config.h"
#include "scheduler/podcidr.h"
#include "util/testutil.h"

#define POOL(spec) "{\"pools\":[{\"metadata\":{\"name\":\"p1\"},\"spec\":" \
	spec "}]}"
#define SRC "\"source\":{\"type\":\"redis-list\",\"address\":" \
	"\"redis://127.0.0.1:6379/0\",\"queue\":\"tasks\"}"
#define TGT "\"target\":{\"kind\":\"Deployment\",\"name\":\"web\"}"

START_TEST(test_good)
{
	const char *doc = "{\"pools\":[{\"apiVersion\":\"agentscaler.io/"
	    "v1alpha1\",\"kind\":\"AgentPool\",\"metadata\":{\"name\":\"p1\","
	    "\"namespace\":\"team-a\",\"labels\":{\"x\":\"y\"}},\"spec\":{"
	    SRC "," TGT ",\"scaling\":{\"maxReplicas\":5,\"tasksPerReplica\":"
	    "2,\"cooldownSeconds\":0.5}}}],\"quotas\":[{\"metadata\":{\"name\":"
	    "\"q\",\"namespace\":\"team-a\"},\"spec\":{\"maxSandboxes\":50,"
	    "\"resources\":{\"cpu\":\"64\",\"memory\":\"256Gi\",\"nvidia.com/"
	    "gpu\":4},\"cascade\":{\"maxDepth\":3,\"spawnRate\":{\"perSecond\":"
	    "1,\"burst\":4},\"reserveForDescendants\":0.2},\"onExceeded\":"
	    "\"reject\"}}]}";
	struct config		*c;
	const struct quota_config *q;
	char			 err[512];

	ck_assert_int_eq(config_parse(doc, strlen(doc), "/s", &c, err,
	    sizeof err), 0);
	ck_assert_uint_eq(c->npools, 1);
	ck_assert_str_eq(c->pools[0].ns, "team-a");
	ck_assert_str_eq(c->pools[0].name, "p1");
	ck_assert_int_eq(c->pools[0].mode, POOL_MODE_SCALE);
	ck_assert_str_eq(c->pools[0].source.queue, "tasks");
	ck_assert_str_eq(c->pools[0].source.processing_list,
	    "tasks.processing");
	ck_assert_str_eq(c->pools[0].target_kind, "Deployment");
	ck_assert_int_eq(c->pools[0].scaling.max_replicas, 5);
	ck_assert_int_eq(c->pools[0].scaling.min_replicas, 0);
	ck_assert_int_eq(c->pools[0].scaling.tasks_per_replica, 2);
	ck_assert_double_eq(c->pools[0].scaling.cooldown_seconds, 0.5);
	ck_assert_double_eq(c->pools[0].scaling.stabilization_seconds, 60);
	ck_assert_int_eq(c->pools[0].poll_interval_ms, 1000);
	ck_assert_int_eq(c->pools[0].claim_ttl_seconds, 3600);
	ck_assert_int_eq(c->pools[0].spare_max, 50);
	q = config_quota_for(c, "team-a");
	ck_assert_ptr_nonnull(q);
	ck_assert_ptr_null(config_quota_for(c, "team-b"));
	ck_assert_int_eq(q->max_sandboxes, 50);
	ck_assert_uint_eq(q->nresources, 3);
	ck_assert_double_eq(q->resources[1].value, 256.0 * 1073741824.0);
	ck_assert_int_eq(q->max_depth, 3);
	ck_assert_int_eq(q->max_roots, -1);
	ck_assert_int_eq(q->spawn_burst, 4);
	ck_assert_int_eq(q->on_exceeded, QUOTA_ON_REJECT);
	config_free(c);
}
END_TEST

/* spec.sandbox.defaultResources: the charge floor of a dispatch pool. */
START_TEST(test_default_resources)
{
	const char *doc = "{\"pools\":[{\"metadata\":{\"name\":\"d\"},"
	    "\"spec\":{\"mode\":\"dispatch\"," SRC ",\"sandbox\":{"
	    "\"warmPool\":\"wp\",\"defaultResources\":{\"cpu\":\"500m\","
	    "\"memory\":\"1Gi\",\"nvidia.com/gpu\":1}}}},{\"metadata\":{"
	    "\"name\":\"e\"},\"spec\":{\"mode\":\"dispatch\"," SRC ","
	    "\"sandbox\":{\"warmPool\":\"wp\"}}}]}";
	struct config	*c;
	char		 err[512];

	ck_assert_int_eq(config_parse(doc, strlen(doc), NULL, &c, err,
	    sizeof err), 0);
	ck_assert_uint_eq(c->pools[0].ndefault_resources, 3);
	ck_assert_str_eq(c->pools[0].default_resources[0].name, "cpu");
	ck_assert_str_eq(c->pools[0].default_resources[0].quantity, "500m");
	ck_assert_double_eq(c->pools[0].default_resources[0].value, 0.5);
	ck_assert_double_eq(c->pools[0].default_resources[1].value,
	    1073741824.0);
	ck_assert_str_eq(c->pools[0].default_resources[2].name,
	    "nvidia.com/gpu");
	ck_assert_uint_eq(c->pools[1].ndefault_resources, 0);
	ck_assert_ptr_null(c->pools[1].default_resources);
	config_free(c);
}
END_TEST

/*
 * spec.handoff and spec.results (issue 16): a dispatch pool without them
 * hands off over http (the default since issue 16; inbox is asked for);
 * http takes the protocol's defaults, the router the stock Service; the results destination resolves its password as
 * the source does.
 */
#define DSP "\"mode\":\"dispatch\"," SRC ",\"sandbox\":{\"warmPool\":\"wp\"}"
START_TEST(test_handoff)
{
	const char *doc = "{\"pools\":[{\"metadata\":{\"name\":\"a\"},"
	    "\"spec\":{" DSP "}},{\"metadata\":{\"name\":\"b\"},\"spec\":{"
	    DSP ",\"handoff\":{\"mode\":\"http\"},\"results\":{\"type\":"
	    "\"redis-stream\",\"address\":\"redis://r:6379\",\"queue\":"
	    "\"results\",\"authSecretRef\":{\"name\":\"rs\",\"key\":\"pw\"}}}},"
	    "{\"metadata\":{\"name\":\"c\"},\"spec\":{" DSP ",\"handoff\":{"
	    "\"mode\":\"http\",\"via\":\"podIP\",\"router\":\"https://r:8443"
	    "\",\"port\":9000,\"deadlineSeconds\":5,\"maxAttempts\":3,"
	    "\"tls\":{\"caFile\":\"/ca.pem\"}}}},{\"metadata\":{\"name\":"
	    "\"d\"},\"spec\":{" DSP ",\"handoff\":{\"mode\":\"inbox\"}}}]}";
	struct config	*c;
	const struct pool_config *a, *b, *x;
	char		 err[512];

	ck_assert_int_eq(config_parse(doc, strlen(doc), "/s", &c, err,
	    sizeof err), 0);
	a = &c->pools[0];
	b = &c->pools[1];
	x = &c->pools[2];
	ck_assert_int_eq(a->handoff.mode, HANDOFF_HTTP);
	ck_assert_int_eq(a->has_results, 0);
	ck_assert_int_eq(b->handoff.mode, HANDOFF_HTTP);
	ck_assert_int_eq(b->handoff.via, HANDOFF_VIA_ROUTER);
	ck_assert_str_eq(b->handoff.router,
	    "http://sandbox-router-svc.default.svc:8080");
	ck_assert_int_eq(b->handoff.port, 8888);
	ck_assert_int_eq(b->handoff.deadline_seconds, 120);
	ck_assert_int_eq(b->handoff.max_attempts, 1);
	ck_assert_ptr_null(b->handoff.tls_ca_file);
	ck_assert_int_eq(b->has_results, 1);
	ck_assert_str_eq(b->results.type, "redis-stream");
	ck_assert_str_eq(b->results.queue, "results");
	ck_assert_str_eq(b->results.password_file, "/s/rs/pw");
	ck_assert_int_eq(x->handoff.via, HANDOFF_VIA_POD_IP);
	ck_assert_str_eq(x->handoff.router, "https://r:8443");
	ck_assert_int_eq(x->handoff.port, 9000);
	ck_assert_int_eq(x->handoff.deadline_seconds, 5);
	ck_assert_int_eq(x->handoff.max_attempts, 3);
	ck_assert_str_eq(x->handoff.tls_ca_file, "/ca.pem");
	ck_assert_int_eq(config_same_handoff(a, a), 1);
	ck_assert_int_eq(config_same_handoff(a, b), 0);
	ck_assert_int_eq(config_same_handoff(a, &c->pools[3]), 0);
	ck_assert_int_eq(c->pools[3].handoff.mode, HANDOFF_INBOX);
	ck_assert_int_eq(config_same_handoff(b, x), 0);
	config_free(c);
}
END_TEST

/* CRD mode: the router's CA, like the source's, is a file of the daemon. */
START_TEST(test_handoff_crd)
{
	const char *obj = "{\"metadata\":{\"name\":\"p\",\"namespace\":"
	    "\"team-a\"},\"spec\":{" DSP ",\"handoff\":{\"mode\":\"http\","
	    "\"tls\":{\"caFile\":\"/etc/passwd\"}}}}";
	const char *obj2 = "{\"metadata\":{\"name\":\"p\",\"namespace\":"
	    "\"team-a\"},\"spec\":{" DSP ",\"handoff\":{\"mode\":\"http\"},"
	    "\"results\":{\"type\":\"redis-list\",\"address\":\"redis://r\","
	    "\"queue\":\"out\",\"authSecretRef\":{\"name\":\"rs\",\"key\":"
	    "\"pw\"}}}}";
	const char *obj3 = "{\"metadata\":{\"name\":\"p2\",\"namespace\":"
	    "\"team-a\"},\"spec\":{" DSP ",\"handoff\":{\"mode\":\"http\"},"
	    "\"results\":{\"type\":\"rabbitmq\",\"address\":\"amqp://r\","
	    "\"exchange\":\"xr\",\"authSecretRef\":{\"name\":\"rs\",\"key\":"
	    "\"pw\"}}}}";
	static const char *const routers[] = { HANDOFF_ROUTER_DEFAULT };
	struct scaler_source src;
	struct config_tenancy t;
	struct config	*c = config_new();
	cJSON		*j;
	char		 err[512] = "";

	memset(&t, 0, sizeof t);
	t.routers = routers;
	t.nrouters = 1;
	j = cJSON_Parse(obj);
	ck_assert_int_eq(config_add_pool(c, j, NULL, &t, "", err, sizeof err),
	    -AS_EINVAL);
	ck_assert_msg(strstr(err, "spec.handoff.tls.caFile: refused in CRD "
	    "mode") != NULL, "%s", err);
	cJSON_Delete(j);
	j = cJSON_Parse(obj2);
	ck_assert_int_eq(config_add_pool(c, j, NULL, &t, "", err, sizeof err),
	    0);
	ck_assert_str_eq(c->pools[0].results.password_secret,
	    "team-a/rs/pw");
	cJSON_Delete(j);
	/* RabbitMQ to an exchange: into the source the publisher gets. */
	j = cJSON_Parse(obj3);
	ck_assert_msg(config_add_pool(c, j, NULL, &t, "", err, sizeof err) ==
	    0, "%s", err);
	config_pool_results(&c->pools[1], &src);
	ck_assert_str_eq(src.type, "rabbitmq");
	ck_assert_str_eq(src.exchange, "xr");
	ck_assert_ptr_null(src.queue);
	ck_assert_str_eq(src.password_secret, "team-a/rs/pw");
	cJSON_Delete(j);
	config_free(c);
}
END_TEST

/*
 * CRD mode: spec.handoff.router is a tenant's, and the daemon sends each
 * task's requests there: only a router of --handoff-routers is taken (a
 * pool naming none gets the first), and via podIP needs --pod-cidrs.
 * File mode (the operator's file) takes any http(s) router.
 */
static const char *const crd_routers[] = {
	"http://sandbox-router-svc.default.svc:8080",
	"https://router.ops.svc:8443/",
};

static const struct {
	const char	*handoff;	/* spec.handoff; NULL: none */
	size_t		 nrouters;	/* of crd_routers */
	int		 cidrs;		/* --pod-cidrs given */
	int		 crd;		/* 0: --config file mode */
	const char	*want;		/* the router; or "!" error text */
} router_rows[] = {
	{ NULL, 2, 0, 1, "http://sandbox-router-svc.default.svc:8080" },
	{ "{\"via\":\"router\"}", 2, 0, 1,
	    "http://sandbox-router-svc.default.svc:8080" },
	{ "{\"router\":\"https://router.ops.svc:8443\"}", 2, 0, 1,
	    "https://router.ops.svc:8443" },
	{ "{\"router\":\"http://sandbox-router-svc.default.svc:8080/\"}", 2,
	    0, 1, "http://sandbox-router-svc.default.svc:8080/" },
	{ "{\"router\":\"http://169.254.169.254/latest\"}", 2, 0, 1,
	    "!spec.handoff.router: \"http://169.254.169.254/latest\" refused "
	    "in CRD mode: not one of the routers agentscaler allows "
	    "(--handoff-routers: http://sandbox-router-svc.default.svc:8080, "
	    "...)" },
	{ "{\"router\":\"http://sandbox-router-svc.default.svc:8080.evil\"}",
	    1, 0, 1, "!refused in CRD mode: not one of the routers" },
	{ "{\"router\":\"http://127.0.0.1:6379\"}", 2, 0, 0,
	    "http://127.0.0.1:6379" },
	{ NULL, 0, 0, 1, "!spec.handoff.router: refused in CRD mode: "
	    "agentscaler allows no router (--handoff-routers is empty)" },
	{ NULL, 0, 0, 0, HANDOFF_ROUTER_DEFAULT },
	{ "{\"via\":\"podIP\"}", 2, 0, 1, "!spec.handoff.via: podIP "
	    "refused in CRD mode: agentscaler has no --pod-cidrs" },
	{ "{\"via\":\"podIP\",\"router\":\"http://x:1\"}", 2, 1, 1,
	    "http://x:1" },
	{ "{\"via\":\"podIP\"}", 0, 0, 0, HANDOFF_ROUTER_DEFAULT },
	{ "{\"mode\":\"inbox\",\"router\":\"http://x:1\"}", 0, 0, 1,
	    "http://x:1" },
};

START_TEST(test_handoff_routers)
{
	struct pod_cidr	 cidr;
	struct config_tenancy t;
	struct config	*c = config_new();
	cJSON		*j;
	char		 doc[512], err[512] = "";
	const char	*want = router_rows[_i].want;
	int		 rc;

	memset(&t, 0, sizeof t);
	t.routers = crd_routers;
	t.nrouters = router_rows[_i].nrouters;
	ck_assert_int_eq(pod_cidr_parse("10.0.0.0/8", &cidr), 0);
	if (router_rows[_i].cidrs) {
		t.pod_cidrs = &cidr;
		t.npod_cidrs = 1;
	}
	snprintf(doc, sizeof doc, "{\"metadata\":{\"name\":\"p\","
	    "\"namespace\":\"team-a\"},\"spec\":{" DSP "%s%s}}",
	    router_rows[_i].handoff != NULL ? ",\"handoff\":" : "",
	    router_rows[_i].handoff != NULL ? router_rows[_i].handoff : "");
	j = cJSON_Parse(doc);
	ck_assert_ptr_nonnull(j);
	rc = config_add_pool(c, j, "/s", router_rows[_i].crd ? &t : NULL, "",
	    err, sizeof err);
	if (want[0] == '!') {
		ck_assert_int_eq(rc, -AS_EINVAL);
		ck_assert_msg(strstr(err, want + 1) != NULL, "%s", err);
	} else {
		ck_assert_msg(rc == 0, "%s", err);
		ck_assert_str_eq(c->pools[0].handoff.router, want);
	}
	cJSON_Delete(j);
	config_free(c);
}
END_TEST

/* --pod-cidrs: parsing and membership, both families. */
START_TEST(test_pod_cidr)
{
	struct pod_cidr	 v[2];
	static const char *const bad[] = { "10.0.0.0", "10.0.0.0/33",
	    "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x", "ten/8", "::/129",
	    "10.0.0.0/ 8", "" };
	size_t		 i;

	ck_assert_int_eq(pod_cidr_parse("10.244.7.9/16", &v[0]), 0);
	ck_assert_int_eq(pod_cidr_parse("fd00:10::/56", &v[1]), 0);
	ck_assert_int_eq(pod_cidr_match(v, 2, "10.244.0.1"), 1);
	ck_assert_int_eq(pod_cidr_match(v, 2, "10.244.255.255"), 1);
	ck_assert_int_eq(pod_cidr_match(v, 2, "10.245.0.1"), 0);
	ck_assert_int_eq(pod_cidr_match(v, 2, "169.254.169.254"), 0);
	ck_assert_int_eq(pod_cidr_match(v, 2, "fd00:10:0:ff::1"), 1);
	ck_assert_int_eq(pod_cidr_match(v, 2, "fd00:10:0:100::1"), 0);
	ck_assert_int_eq(pod_cidr_match(v, 2, "::ffff:10.244.0.1"), 0);
	ck_assert_int_eq(pod_cidr_match(v, 2, "metadata.google.internal"), 0);
	ck_assert_int_eq(pod_cidr_match(v, 2, ""), 0);
	ck_assert_int_eq(pod_cidr_match(v, 1, "fd00:10::1"), 0);
	ck_assert_int_eq(pod_cidr_match(v, 0, "10.244.0.1"), 0);
	ck_assert_int_eq(pod_cidr_parse("127.0.0.1/32", &v[0]), 0);
	ck_assert_int_eq(pod_cidr_match(v, 1, "127.0.0.1"), 1);
	ck_assert_int_eq(pod_cidr_match(v, 1, "127.0.0.2"), 0);
	ck_assert_int_eq(pod_cidr_parse("0.0.0.0/0", &v[0]), 0);
	ck_assert_int_eq(pod_cidr_match(v, 1, "203.0.113.5"), 1);
	ck_assert_int_eq(pod_cidr_parse("10.1.2.3/12", &v[0]), 0);
	ck_assert_int_eq(pod_cidr_match(v, 1, "10.15.0.1"), 1);
	ck_assert_int_eq(pod_cidr_match(v, 1, "10.16.0.1"), 0);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(pod_cidr_parse(bad[i], &v[0]) == -AS_EINVAL,
		    "%s", bad[i]);
}
END_TEST

START_TEST(test_secret_ref)
{
	const char *doc = POOL("{\"source\":{\"type\":\"redis-list\","
	    "\"address\":\"redis://r:6379\",\"queue\":\"q\",\"authSecretRef\":"
	    "{\"name\":\"redis\",\"key\":\"password\"}}," TGT "}");
	struct config	*c;
	char		 err[512];

	ck_assert_int_eq(config_parse(doc, strlen(doc), "/etc/as", &c, err,
	    sizeof err), 0);
	ck_assert_str_eq(c->pools[0].source.password_file,
	    "/etc/as/redis/password");
	config_free(c);
}
END_TEST

/*
 * CRD mode (issue 11): tenants write the objects.  Nothing in a pool may
 * name a file or variable of the daemon, reach out of its namespace for a
 * Secret, or smuggle a path through a Secret's name or key.
 */
#define CRD_POOL(ns, source) "{\"metadata\":{\"name\":\"p1\",\"namespace\":" \
	"\"" ns "\"},\"spec\":{\"source\":{\"type\":\"redis-list\"," \
	"\"address\":\"redis://r:6379\",\"queue\":\"q\"" source "}," TGT "}}"
#define REF(name, key) ",\"authSecretRef\":{\"name\":\"" name "\"," \
	"\"key\":\"" key "\"}"

static const char *const crd_shared[] = { "infra/shared-redis" };
static const char *const crd_secret_ns[] = { "team-a" };

static const struct crd_row {
	const char	*obj;
	int		 restrict_ns;	/* --secret-namespaces team-a */
	const char	*want;		/* NULL: valid; else in the error */
	const char	*secret;	/* valid: password_secret */
} crd_rows[] = {
	{ CRD_POOL("team-a", ",\"passwordFile\":\"/var/run/secrets/"
	    "kubernetes.io/serviceaccount/token\""), 0,
	    "spec.source.passwordFile: refused in CRD mode", NULL },
	{ CRD_POOL("team-a", ",\"passwordEnv\":\"AWS_SECRET_ACCESS_KEY\""), 0,
	    "spec.source.passwordEnv: refused in CRD mode", NULL },
	{ CRD_POOL("team-a", ",\"tls\":{\"caFile\":\"/etc/shadow\"}"), 0,
	    "spec.source.tls.caFile: refused in CRD mode", NULL },
	{ CRD_POOL("team-a", REF("..", "../../var/run/secrets/kubernetes.io/"
	    "serviceaccount/token")), 0,
	    "spec.source.authSecretRef.name: expected a Secret name", NULL },
	{ CRD_POOL("team-a", REF("redis", "../../token")), 0,
	    "spec.source.authSecretRef.key: expected a Secret key", NULL },
	{ CRD_POOL("team-a", REF("redis", "..")), 0,
	    "spec.source.authSecretRef.key", NULL },
	{ CRD_POOL("team-a", REF("redis", "a/b")), 0,
	    "spec.source.authSecretRef.key", NULL },
	{ CRD_POOL("team-a", REF("a..b", "k")), 0,
	    "spec.source.authSecretRef.name", NULL },
	{ CRD_POOL("team-a", REF("Redis", "k")), 0,
	    "spec.source.authSecretRef.name", NULL },
	{ CRD_POOL("team-a", ",\"authSecretRef\":{\"name\":\"broker\","
	    "\"key\":\"password\",\"namespace\":\"team-b\"}"), 0,
	    "Secret team-b/broker is in another namespace", NULL },
	{ CRD_POOL("team-a", REF("redis", "password")), 0, NULL,
	    "team-a/redis/password" },
	{ CRD_POOL("team-a", REF("redis", "pass_word-1.txt")), 1, NULL,
	    "team-a/redis/pass_word-1.txt" },
	{ CRD_POOL("team-b", REF("redis", "password")), 1,
	    "may not read Secrets in namespace team-b", NULL },
	{ CRD_POOL("team-b", ",\"authSecretRef\":{\"name\":\"shared-redis\","
	    "\"key\":\"password\",\"namespace\":\"infra\"}"), 1, NULL,
	    "infra/shared-redis/password" },
	{ CRD_POOL("team-a", ""), 0, NULL, NULL },
	{ CRD_POOL("team-a", ",\"authSecretRef\":{\"name\":\"r\",\"key\":\"pw\","
	    "\"usernameKey\":\"../user\"}"), 0,
	    "spec.source.authSecretRef.usernameKey: expected a Secret key",
	    NULL },
	{ CRD_POOL("team-a", ",\"username\":\"bob\",\"authSecretRef\":{"
	    "\"name\":\"r\",\"key\":\"pw\",\"usernameKey\":\"user\"}"), 0,
	    "give username or authSecretRef.usernameKey, not both", NULL },
};

START_TEST(test_crd_tenancy)
{
	const struct crd_row *row = &crd_rows[_i];
	struct config_tenancy t = { crd_shared, 1, NULL, 0, NULL, 0, NULL,
	    0 };
	struct config	*c = config_new();
	cJSON		*o = cJSON_Parse(row->obj);
	char		 err[512] = "";
	int		 rc;

	ck_assert_ptr_nonnull(o);
	if (row->restrict_ns) {
		t.secret_namespaces = crd_secret_ns;
		t.nsecret_namespaces = 1;
	}
	rc = config_add_pool(c, o, "/s", &t, "", err, sizeof err);
	if (row->want != NULL) {
		ck_assert_int_eq(rc, -AS_EINVAL);
		ck_assert_msg(strstr(err, row->want) != NULL, "%s", err);
		ck_assert_uint_eq(c->npools, 0);
	} else {
		ck_assert_msg(rc == 0, "%s", err);
		ck_assert_uint_eq(c->npools, 1);
		/* Never a file of the daemon in CRD mode. */
		ck_assert_ptr_null(c->pools[0].source.password_file);
		if (row->secret == NULL)
			ck_assert_ptr_null(c->pools[0].source.password_secret);
		else
			ck_assert_str_eq(c->pools[0].source.password_secret,
			    row->secret);
		ck_assert_ptr_null(c->pools[0].source.username_secret);
	}
	cJSON_Delete(o);
	config_free(c);
}
END_TEST

/* usernameKey: the user name from the same Secret, in both modes. */
START_TEST(test_username_key)
{
	const char *obj = CRD_POOL("team-a", ",\"authSecretRef\":{\"name\":"
	    "\"rmq\",\"key\":\"password\",\"usernameKey\":\"user\"}");
	const char *doc = "{\"pools\":[" CRD_POOL("team-a",
	    ",\"authSecretRef\":{\"name\":\"rmq\",\"key\":\"password\","
	    "\"usernameKey\":\"user\"}") "]}";
	struct config_tenancy t = { NULL, 0, NULL, 0, NULL, 0, NULL, 0 };
	struct config	*c = config_new(), *f;
	cJSON		*o = cJSON_Parse(obj);
	char		 err[512];

	ck_assert_int_eq(config_add_pool(c, o, NULL, &t, "", err, sizeof err),
	    0);
	ck_assert_str_eq(c->pools[0].source.username_secret,
	    "team-a/rmq/user");
	ck_assert_str_eq(c->pools[0].source.password_secret,
	    "team-a/rmq/password");
	ck_assert_int_eq(config_parse(doc, strlen(doc), "/s", &f, err,
	    sizeof err), 0);
	ck_assert_str_eq(f->pools[0].source.username_file, "/s/rmq/user");
	ck_assert_ptr_null(f->pools[0].source.username_secret);
	ck_assert(!config_same_source(&c->pools[0], &f->pools[0]));
	config_free(f);
	config_free(c);
	cJSON_Delete(o);
}
END_TEST

/*
 * source.keyspaceNotifications and streamField: defaults (auto, "task"),
 * parsed values, both carried to the scaler's source, and a change of
 * either is a change of source (the pool's scaler is made again).
 */
START_TEST(test_redis_source_options)
{
	const char *d1 = POOL("{" SRC "," TGT "}");
	const char *d2 = POOL("{\"source\":{\"type\":\"redis-stream\","
	    "\"address\":\"redis://127.0.0.1:6379/0\",\"queue\":\"tasks\","
	    "\"consumerGroup\":\"g\",\"keyspaceNotifications\":\"off\","
	    "\"streamField\":\"job\",\"username\":\"agents\"}," TGT "}");
	struct config	*a, *b;
	struct scaler_source src;
	char		 err[512];

	ck_assert_int_eq(config_parse(d1, strlen(d1), NULL, &a, err,
	    sizeof err), 0);
	ck_assert_int_eq(a->pools[0].source.keyspace_notifications,
	    SCALER_KEYSPACE_AUTO);
	ck_assert_str_eq(a->pools[0].source.stream_field, "task");
	ck_assert_int_eq(config_parse(d2, strlen(d2), NULL, &b, err,
	    sizeof err), 0);
	ck_assert_int_eq(b->pools[0].source.keyspace_notifications,
	    SCALER_KEYSPACE_OFF);
	config_pool_source(&b->pools[0], &src);
	ck_assert_int_eq(src.keyspace_notifications, SCALER_KEYSPACE_OFF);
	ck_assert_str_eq(src.stream_field, "job");
	ck_assert_str_eq(src.username, "agents");
	ck_assert(!config_same_source(&a->pools[0], &b->pools[0]));
	config_free(a);
	config_free(b);
}
END_TEST

/* The operator's file keeps files and variables, but no traversal. */
START_TEST(test_file_mode_secret_names)
{
	const char *traversal = "{\"pools\":[" CRD_POOL("team-a",
	    REF("..", "../../var/run/secrets/kubernetes.io/serviceaccount/"
	    "token")) "]}";
	const char *ns = "{\"pools\":[" CRD_POOL("team-a",
	    ",\"authSecretRef\":{\"name\":\"r\",\"key\":\"k\",\"namespace\":"
	    "\"b\"}") "]}";
	const char *env = "{\"pools\":[" CRD_POOL("team-a",
	    ",\"passwordEnv\":\"REDIS_PW\"") "]}";
	struct config	*c;
	char		 err[512];

	ck_assert_int_eq(config_parse(traversal, strlen(traversal), "/s", &c,
	    err, sizeof err), -AS_EINVAL);
	ck_assert_msg(strstr(err, "authSecretRef.name: expected a Secret "
	    "name") != NULL, "%s", err);
	ck_assert_int_eq(config_parse(ns, strlen(ns), "/s", &c, err,
	    sizeof err), -AS_EINVAL);
	ck_assert_msg(strstr(err, "only in CRD mode") != NULL, "%s", err);
	ck_assert_int_eq(config_parse(env, strlen(env), "/s", &c, err,
	    sizeof err), 0);
	ck_assert_str_eq(c->pools[0].source.password_env, "REDIS_PW");
	ck_assert_ptr_null(c->pools[0].source.password_secret);
	config_free(c);
}
END_TEST

static const struct bad {
	const char	*doc;
	const char	*want;		/* a substring of the error */
} bad_rows[] = {
	{ "{", "not valid JSON" },
	{ "[]", "expected an object" },
	{ "{\"pool\":[]}", "pool: unknown field" },
	{ "{\"pools\":{}}", "pools: expected an array" },
	{ "{\"pools\":[1]}", "pools[0]: expected an AgentPool object" },
	{ POOL("{" SRC "}"), "pools[0].spec.target: required in scale mode" },
	{ "{\"pools\":[{\"spec\":{" SRC "," TGT "}}]}",
	    "pools[0].metadata: required field is missing" },
	{ POOL("{" SRC "," TGT ",\"scaling\":{\"maxReplicas\":\"ten\"}}"),
	    "pools[0].spec.scaling.maxReplicas: expected an integer in [0, "
	    "100000], got \"ten\"" },
	{ POOL("{" SRC "," TGT ",\"scaling\":{\"maxReplicas\":2.5}}"),
	    "maxReplicas: expected an integer" },
	{ POOL("{" SRC "," TGT ",\"scaling\":{\"maxReplicas\":-1}}"),
	    "maxReplicas: expected an integer in [0, 100000], got -1" },
	{ POOL("{" SRC "," TGT ",\"scaling\":{\"maxreplicas\":3}}"),
	    "pools[0].spec.scaling.maxreplicas: unknown field (expected one "
	    "of: minReplicas, maxReplicas" },
	{ POOL("{" SRC "," TGT ",\"scaling\":{\"minReplicas\":5,"
	    "\"maxReplicas\":3}}"), "minReplicas: 5 is above maxReplicas 3" },
	{ POOL("{" SRC "," TGT ",\"scaling\":{\"pollIntervalMs\":0}}"),
	    "pollIntervalMs: expected an integer in [100, 3600000], got 0" },
	/* KEDA's seconds by habit: refused with the reading it meant. */
	{ POOL("{" SRC "," TGT ",\"scaling\":{\"pollIntervalMs\":30}}"),
	    "pools[0].spec.scaling.pollIntervalMs: 30 is in milliseconds, "
	    "below the 100 ms floor; KEDA's pollingInterval counts seconds: "
	    "for 30 s write 30000" },
	{ POOL("{" SRC "," TGT ",\"scaling\":{\"pollIntervalMs\":99}}"),
	    "99 is in milliseconds, below the 100 ms floor" },
	{ POOL("{" SRC "," TGT ",\"scaling\":{\"pollIntervalMs\":30.5}}"),
	    "pollIntervalMs: expected an integer" },
	{ POOL("{" SRC "," TGT ",\"shadow\":1}"),
	    "pools[0].spec.shadow: expected true or false, got 1" },
	{ "{\"pools\":[{\"metadata\":{\"name\":\"p1\",\"annotations\":{"
	    "\"agentscaler.io/paused\":\"yes\"}},\"spec\":{" SRC "," TGT "}}]}",
	    "pools[0].metadata.annotations.agentscaler.io/paused: expected "
	    "\"true\" or \"false\", got \"yes\"" },
	{ "{\"pools\":[{\"metadata\":{\"name\":\"p1\",\"annotations\":{"
	    "\"agentscaler.io/paused-replicas\":\"-1\"}},\"spec\":{" SRC ","
	    TGT "}}]}", "agentscaler.io/paused-replicas: expected a count in "
	    "[0, maxReplicas 100], got \"-1\"" },
	{ "{\"pools\":[{\"metadata\":{\"name\":\"p1\",\"annotations\":{"
	    "\"agentscaler.io/paused-replicas\":\"101\"}},\"spec\":{" SRC ","
	    TGT "}}]}", "got \"101\"" },
	{ "{\"pools\":[{\"metadata\":{\"name\":\"p1\",\"annotations\":{"
	    "\"agentscaler.io/paused-replicas\":\"1\"}},\"spec\":{\"mode\":"
	    "\"dispatch\",\"source\":{\"type\":\"redis-list\",\"address\":"
	    "\"redis://h:6379/0\",\"queue\":\"t\"},\"sandbox\":{\"warmPool\":"
	    "\"wp\"}}}]}", "paused-replicas: scale mode only" },
	{ POOL("{" SRC ",\"target\":{\"kind\":\"Pod\",\"name\":\"x\"}}"),
	    "pools[0].spec.target.kind: expected one of Deployment | "
	    "SandboxWarmPool | StatefulSet, got \"Pod\"" },
	{ POOL("{" SRC ",\"target\":{\"kind\":\"Deployment\"}}"),
	    "pools[0].spec.target.name: required field is missing" },
	{ POOL("{\"source\":{\"type\":\"kafka\",\"address\":\"x\",\"queue\":"
	    "\"q\"}," TGT "}"), "pools[0].spec.source.type: expected one of "
	    "rabbitmq | redis-list | redis-stream, got \"kafka\"" },
	{ POOL("{\"source\":{\"type\":\"redis-list\",\"address\":\"x\"},"
	    TGT "}"), "pools[0].spec.source.queue: required field is "
	    "missing" },
	{ POOL("{\"source\":{\"type\":\"redis-list\",\"address\":\"x\","
	    "\"queue\":\"\"}," TGT "}"), "queue: expected a non-empty string" },
	{ POOL("{\"source\":{\"type\":\"redis-list\",\"address\":\"x\","
	    "\"queue\":\"q\",\"countInFlight\":\"yes\"}," TGT "}"),
	    "countInFlight: expected true or false, got \"yes\"" },
	{ POOL("{\"source\":{\"type\":\"redis-list\",\"address\":\"x\","
	    "\"queue\":\"q\",\"passwordFile\":\"/a\",\"passwordEnv\":\"B\"},"
	    TGT "}"), "give at most one of authSecretRef, passwordFile" },
	{ POOL("{\"source\":{\"type\":\"redis-stream\",\"address\":\"x\","
	    "\"queue\":\"q\"}," TGT "}"),
	    "spec.source.consumerGroup: required for redis-stream" },
	{ POOL("{\"mode\":\"dispatch\"," SRC "}"),
	    "spec.sandbox: required in dispatch mode" },
	{ POOL("{\"mode\":\"dispatch\"," SRC ",\"sandbox\":{\"warmPool\":"
	    "\"wp\",\"defaultResources\":{\"CPU\":\"1\"}}}"),
	    "pools[0].spec.sandbox.defaultResources.CPU: not a Kubernetes "
	    "resource name (names are case-sensitive: write \"cpu\")" },
	{ POOL("{\"mode\":\"dispatch\"," SRC ",\"sandbox\":{\"warmPool\":"
	    "\"wp\",\"defaultResources\":{\"cpu\":\"-1\"}}}"),
	    "pools[0].spec.sandbox.defaultResources.cpu: expected a quantity" },
	{ POOL("{\"mode\":\"dispatch\"," SRC ",\"sandbox\":{\"warmPool\":"
	    "\"wp\",\"defaultResources\":[]}}"),
	    "defaultResources: expected an object of quantities" },
	{ POOL("{\"mode\":\"dispatch\"," SRC ",\"sandbox\":{\"warmPool\":"
	    "\"wp\",\"defaultResources\":{\"a.io/r0\":1,\"a.io/r1\":1,"
	    "\"a.io/r2\":1,\"a.io/r3\":1,\"a.io/r4\":1,\"a.io/r5\":1,"
	    "\"a.io/r6\":1,\"a.io/r7\":1,\"a.io/r8\":1,\"a.io/r9\":1,"
	    "\"a.io/r10\":1,\"a.io/r11\":1,\"a.io/r12\":1,\"a.io/r13\":1,"
	    "\"a.io/r14\":1,\"a.io/r15\":1,\"a.io/r16\":1}}}"),
	    "spec.sandbox.defaultResources: at most 16 resources, not 17" },
	{ "{\"quotas\":[{\"metadata\":{\"name\":\"q\"},\"spec\":{\"resources\":"
	    "{\"Memory\":\"1Gi\"}}}]}",
	    "quotas[0].spec.resources.Memory: not a Kubernetes resource name "
	    "(names are case-sensitive: write \"memory\")" },
	{ POOL("{\"source\":{\"type\":\"redis-list\",\"address\":\"redis://r\","
	    "\"queue\":\"q\",\"keyspaceNotifications\":\"never\"}," TGT "}"),
	    "pools[0].spec.source.keyspaceNotifications: expected one of auto | "
	    "off | require, got \"never\"" },
	{ POOL("{" DSP ",\"handoff\":{\"mode\":\"grpc\"}}"),
	    "pools[0].spec.handoff.mode: expected one of inbox | http, got "
	    "\"grpc\"" },
	{ POOL("{" DSP ",\"handoff\":{\"mode\":\"http\",\"router\":"
	    "\"ftp://r\"}}"), "pools[0].spec.handoff.router: expected an "
	    "http:// or https:// URL" },
	{ POOL("{" DSP ",\"handoff\":{\"port\":0}}"),
	    "spec.handoff.port: expected an integer in [1, 65535], got 0" },
	{ POOL("{" SRC "," TGT ",\"handoff\":{\"mode\":\"http\"}}"),
	    "pools[0].spec.handoff: dispatch mode only" },
	{ POOL("{" DSP ",\"handoff\":{\"mode\":\"inbox\"},\"results\":{"
	    "\"type\":\"redis-list\",\"address\":\"redis://r\",\"queue\":"
	    "\"out\"}}"), "pools[0].spec.results: "
	    "only with handoff.mode http" },
	{ POOL("{" DSP ",\"handoff\":{\"mode\":\"http\"},\"results\":{"
	    "\"type\":\"kafka\",\"address\":\"x\",\"queue\":\"q\"}}"),
	    "pools[0].spec.results.type: expected one of rabbitmq | "
	    "redis-list | redis-stream, got \"kafka\"" },
	/* A queue, or (rabbitmq) an exchange instead: exactly one. */
	{ POOL("{" DSP ",\"handoff\":{\"mode\":\"http\"},\"results\":{"
	    "\"type\":\"rabbitmq\",\"address\":\"amqp://r\",\"queue\":\"q\","
	    "\"exchange\":\"x\"}}"), "pools[0].spec.results: give one of queue, "
	    "exchange" },
	{ POOL("{" DSP ",\"handoff\":{\"mode\":\"http\"},\"results\":{"
	    "\"type\":\"rabbitmq\",\"address\":\"amqp://r\"}}"),
	    "pools[0].spec.results: give one of queue, exchange" },
	{ POOL("{" DSP ",\"handoff\":{\"mode\":\"http\"},\"results\":{"
	    "\"type\":\"redis-list\",\"address\":\"redis://r\","
	    "\"exchange\":\"x\"}}"), "pools[0].spec.results: give queue "
	    "(exchange is rabbitmq's)" },
	{ POOL("{" DSP ",\"handoff\":{\"mode\":\"http\"},\"results\":{"
	    "\"type\":\"redis-list\",\"address\":\"x\",\"queue\":\"q\","
	    "\"passwordFile\":\"/a\",\"passwordEnv\":\"B\"}}"),
	    "pools[0].spec.results: give at most one of" },
	{ POOL("{" DSP ",\"handoff\":{\"mode\":\"http\"},\"results\":{"
	    "\"type\":\"redis-list\",\"address\":\"x\",\"queue\":\"q\","
	    "\"consumerGroup\":\"g\"}}"), "pools[0].spec.results.consumerGroup: "
	    "unknown field" },
	{ POOL("{\"mode\":\"both\"," SRC "}"),
	    "spec.mode: expected one of scale | dispatch, got \"both\"" },
	{ POOL("{" SRC "," TGT ",\"scaling\":{},\"scaling\":{}}"),
	    "pools[0].spec.scaling: duplicate field" },
	{ "{\"pools\":[{\"kind\":\"Pool\",\"metadata\":{\"name\":\"p\"},"
	    "\"spec\":{" SRC "," TGT "}}]}", "pools[0].kind: expected "
	    "\"AgentPool\"" },
	{ "{\"pools\":[{\"metadata\":{\"name\":\"Bad_Name\"},\"spec\":{" SRC
	    "," TGT "}}]}", "metadata.name: expected a DNS-1123 name" },
	{ "{\"pools\":[{\"metadata\":{\"name\":\"p\"},\"spec\":{" SRC "," TGT
	    "}},{\"metadata\":{\"name\":\"p\"},\"spec\":{" SRC "," TGT "}}]}",
	    "pools[1].metadata.name: pool default/p is declared twice" },
	{ "{\"quotas\":[{\"metadata\":{\"name\":\"q\"},\"spec\":{\"resources\":"
	    "{\"cpu\":\"lots\"}}}]}", "quotas[0].spec.resources.cpu: expected "
	    "a quantity" },
	{ "{\"quotas\":[{\"metadata\":{\"name\":\"q\"},\"spec\":{\"cascade\":"
	    "{\"reserveForDescendants\":1.5}}}]}",
	    "quotas[0].spec.cascade.reserveForDescendants: expected a number "
	    "in [0, 1], got 1.5" },
	{ "{\"quotas\":[{\"metadata\":{\"name\":\"q\"},\"spec\":{}},"
	    "{\"metadata\":{\"name\":\"r\"},\"spec\":{}}]}",
	    "quotas[1].metadata.namespace: namespace default already has a "
	    "quota (q)" },
	{ "{\"quotas\":[{\"metadata\":{\"name\":\"q\"},\"spec\":{\"onExceeded"
	    "\":\"drop\"}}]}", "onExceeded: expected one of defer | reject" },
};

START_TEST(test_bad)
{
	const struct bad	*b = &bad_rows[_i];
	struct config		*c = (struct config *)1;
	char			 err[512] = "";

	ck_assert_int_eq(config_parse(b->doc, strlen(b->doc), NULL, &c, err,
	    sizeof err), -AS_EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(err, b->want) != NULL,
	    "row %d: error \"%s\" lacks \"%s\"", _i, err, b->want);
}
END_TEST

/*
 * Kubernetes quantity syntax (k8s.io/apimachinery pkg/api/resource
 * quantity.go): [sign] number, then one suffix, a decimal exponent, or
 * nothing.  Values are exact where the double is.
 */
static const struct {
	const char	*s;
	int		 ok;
	double		 v;
} quantity_rows[] = {
	/* plain numbers and fractions */
	{ "2", 1, 2 }, { "0", 1, 0 }, { "007", 1, 7 }, { "0.5", 1, 0.5 },
	{ ".5", 1, 0.5 }, { "5.", 1, 5 }, { "+3", 1, 3 }, { "-0", 1, 0 },
	{ "1.25", 1, 1.25 },
	/* decimal SI */
	{ "100n", 1, 100e-9 }, { "100u", 1, 100e-6 }, { "500m", 1, 0.5 },
	{ "1500m", 1, 1.5 }, { "4k", 1, 4000 }, { "1.5k", 1, 1500 },
	{ "2M", 1, 2e6 }, { "3G", 1, 3e9 }, { "1T", 1, 1e12 },
	{ "1P", 1, 1e15 }, { "2E", 1, 2e18 },
	/* binary SI */
	{ "1Ki", 1, 1024 }, { "64Mi", 1, 67108864.0 },
	{ "1.5Gi", 1, 1610612736.0 }, { "256Gi", 1, 274877906944.0 },
	{ "1Ti", 1, 1099511627776.0 }, { "1Pi", 1, 1125899906842624.0 },
	{ "1Ei", 1, 1152921504606846976.0 }, { ".5Mi", 1, 524288 },
	/* decimal exponents */
	{ "1e3", 1, 1000 }, { "1E3", 1, 1000 }, { "1e+3", 1, 1000 },
	{ "12e-1", 1, 1.2 }, { "1.5e2", 1, 150 }, { "2.e1", 1, 20 },
	{ "1e0", 1, 1 }, { "1e-0003", 1, 1e-3 },
	/* refused: empty, signs and dots alone, negatives */
	{ "", 0, 0 }, { "+", 0, 0 }, { "-", 0, 0 }, { ".", 0, 0 },
	{ "-.", 0, 0 }, { "-1", 0, 0 }, { "-500m", 0, 0 }, { "-1e3", 0, 0 },
	/* refused: suffixes Kubernetes does not know */
	{ "Gi", 0, 0 }, { "1GB", 0, 0 }, { "1K", 0, 0 }, { "1ki", 0, 0 },
	{ "1gi", 0, 0 }, { "1Mii", 0, 0 }, { "1mi", 0, 0 }, { "1b", 0, 0 },
	{ "1kk", 0, 0 },
	/* refused: exponents done wrong */
	{ "1e", 0, 0 }, { "1e+", 0, 0 }, { "1e3Gi", 0, 0 }, { "1e3k", 0, 0 },
	{ "1e1.5", 0, 0 }, { "1Ee3", 0, 0 }, { "e3", 0, 0 }, { "1e400", 0, 0 },
	{ "1e99999999999999999999", 0, 0 },
	/* refused: C number syntax that strtod would take */
	{ "0x10", 0, 0 }, { "0X1p4", 0, 0 }, { "nan", 0, 0 }, { "inf", 0, 0 },
	{ "infinity", 0, 0 }, { "1,5", 0, 0 },
	/* refused: spaces and stray characters */
	{ "1 Gi", 0, 0 }, { " 1", 0, 0 }, { "1 ", 0, 0 }, { "1\n", 0, 0 },
	{ "1.2.3", 0, 0 }, { "++1", 0, 0 }, { "1-", 0, 0 }, { "Ki1", 0, 0 },
};

START_TEST(test_quantity)
{
	double	 v = -1;
	int	 rc = quantity_parse(quantity_rows[_i].s, &v);

	ck_assert_msg((rc == 0) == quantity_rows[_i].ok, "\"%s\": rc %d",
	    quantity_rows[_i].s, rc);
	if (quantity_rows[_i].ok)
		ck_assert_msg(v == quantity_rows[_i].v ||
		    fabs(v - quantity_rows[_i].v) <= 1e-15 * fabs(v),
		    "\"%s\": got %.17g, want %.17g", quantity_rows[_i].s, v,
		    quantity_rows[_i].v);
	else
		ck_assert_msg(v == -1, "\"%s\": out written on failure",
		    quantity_rows[_i].s);
}
END_TEST

/*
 * Adoption: spec.shadow, and the pause annotations (ours only; others are
 * ignored).  Which pools the dispatcher runs: config_pool_consumes().
 */
#define ANN_POOL(ann, spec) "{\"pools\":[{\"metadata\":{\"name\":" \
	"\"p1\",\"annotations\":{" ann "}},\"spec\":" spec "}]}"
#define DISP "\"mode\":\"dispatch\",\"source\":{\"type\":\"redis-list\"," \
	"\"address\":\"redis://h:6379/0\",\"queue\":\"t\"},\"sandbox\":{" \
	"\"warmPool\":\"wp\"}"
static const struct adopt_row {
	const char	*doc;
	int		 shadow, paused;
	long		 paused_replicas;
	int		 consumes;
} adopt_rows[] = {
	{ POOL("{" SRC "," TGT "}"), 0, 0, -1, 0 },
	{ POOL("{" SRC "," TGT ",\"shadow\":true}"), 1, 0, -1, 0 },
	{ ANN_POOL("\"agentscaler.io/paused\":\"true\",\"x/y\":\"z\"",
	    "{" SRC "," TGT "}"), 0, 1, -1, 0 },
	{ ANN_POOL("\"agentscaler.io/paused\":\"false\"", "{" SRC "," TGT
	    "}"), 0, 0, -1, 0 },
	{ ANN_POOL("\"agentscaler.io/paused-replicas\":\"2\"", "{" SRC ","
	    TGT "}"), 0, 1, 2, 0 },
	{ POOL("{" DISP "}"), 0, 0, -1, 1 },
	{ POOL("{" DISP ",\"shadow\":true}"), 1, 0, -1, 0 },
	{ ANN_POOL("\"agentscaler.io/paused\":\"true\"", "{" DISP "}"), 0,
	    1, -1, 0 },
};

START_TEST(test_adopt)
{
	const struct adopt_row *r = &adopt_rows[_i];
	struct config	*c;
	char		 err[512];

	ck_assert_msg(config_parse(r->doc, strlen(r->doc), NULL, &c, err,
	    sizeof err) == 0, "%s", err);
	ck_assert_int_eq(c->pools[0].shadow, r->shadow);
	ck_assert_int_eq(c->pools[0].paused, r->paused);
	ck_assert_int_eq(c->pools[0].paused_replicas, r->paused_replicas);
	ck_assert_int_eq(config_pool_consumes(&c->pools[0]), r->consumes);
	config_free(c);
}
END_TEST

/* YAML as kubectl apply reads it: documents of bare objects, Lists. */
#define Y_POOL(name, extra) "apiVersion: agentscaler.io/v1alpha1\n" \
	"kind: AgentPool\nmetadata:\n  name: " name "\n  namespace: team-a\n" \
	"spec:\n  source: {type: redis-list, address: 'redis://h:6379/0', " \
	"queue: q}\n  target: {kind: Deployment, name: web}\n" extra
#define Y_QUOTA "kind: AgentQuota\nmetadata: {name: q, namespace: team-a}\n" \
	"spec: {maxSandboxes: 5}\n"
static const struct yaml_row {
	const char	*doc;
	int		 npools, nquotas;	/* -1: refused */
	const char	*err;
} yaml_rows[] = {
	{ Y_POOL("p1", "") "---\n" Y_QUOTA, 1, 1, NULL },
	{ "# a comment\n---\n" Y_POOL("p1", "  shadow: true\n") "---\n", 1, 0,
	    NULL },
	{ "kind: List\nitems:\n- kind: AgentQuota\n  metadata: {name: q}\n"
	    "  spec: {maxSandboxes: 1}\n", 0, 1, NULL },
	{ "pools:\n- metadata: {name: p1}\n  spec:\n    source: {type: "
	    "redis-list, address: 'redis://h:6379/0', queue: q}\n    target: "
	    "{kind: Deployment, name: web}\n", 1, 0, NULL },
	{ Y_POOL("p1", "") "---\n" Y_POOL("p2", "  scaling: {maxReplicas: "
	    "ten}\n"), -1, 0, "AgentPool team-a/p2 (line 10): "
	    "spec.scaling.maxReplicas: expected an integer" },
	{ Y_POOL("p1", "") "---\n" Y_POOL("p1", ""), -1, 0,
	    "AgentPool team-a/p1 (line 10): metadata.name: pool team-a/p1 is "
	    "declared twice" },
	{ "kind: Deployment\nmetadata: {name: web}\n", -1, 0,
	    "Deployment default/web (line 1): not an AgentPool or AgentQuota" },
	{ "- 1\n", -1, 0, "line 1: expected an AgentPool or AgentQuota object" },
	{ "pools: 3\n", -1, 0, "pools: expected an array" },
	{ "# nothing\n", -1, 0, "config: no document" },
	{ "a: [\n", -1, 0, "not valid YAML" },
};

START_TEST(test_yaml)
{
	const struct yaml_row *r = &yaml_rows[_i];
	struct config	*c;
	char		 err[512];
	int		 rc;

	rc = config_parse(r->doc, strlen(r->doc), NULL, &c, err, sizeof err);
	if (r->npools < 0) {
		ck_assert_int_eq(rc, -AS_EINVAL);
		ck_assert_ptr_null(c);
		ck_assert_msg(strstr(err, r->err) != NULL, "%s", err);
		return;
	}
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_uint_eq(c->npools, (size_t)r->npools);
	ck_assert_uint_eq(c->nquotas, (size_t)r->nquotas);
	config_free(c);
}
END_TEST

/* --check-config: every object judged, each error named. */
struct check_log {
	char	 text[2048];
	int	 calls;
};

static void
check_cb(void *arg, const char *who, const char *err, int skipped)
{
	struct check_log *l = arg;
	size_t	 n = strlen(l->text);

	l->calls++;
	snprintf(l->text + n, sizeof l->text - n, "%s|%s|%d\n", who,
	    err != NULL ? err : "ok", skipped);
}

START_TEST(test_check)
{
	const char	*doc = Y_POOL("p1", "  scaling: {pollIntervalMs: 30}\n")
	    "---\n" Y_QUOTA "---\nkind: Deployment\nmetadata: {name: web}\n"
	    "---\n" Y_POOL("p2", "") "---\n" Y_POOL("p2", "");
	struct check_log l;
	char		 err[256];

	memset(&l, 0, sizeof l);
	ck_assert_int_eq(config_check(doc, strlen(doc), NULL, check_cb, &l,
	    err, sizeof err), 2);
	ck_assert_int_eq(l.calls, 5);
	ck_assert_str_eq(l.text,
	    "AgentPool team-a/p1 (line 1)|AgentPool team-a/p1 (line 1): "
	    "spec.scaling.pollIntervalMs: 30 is in milliseconds, below the 100 "
	    "ms floor; KEDA's pollingInterval counts seconds: for 30 s write "
	    "30000|0\n"
	    "AgentQuota team-a/q (line 11)|ok|0\n"
	    "Deployment default/web (line 15)|ok|1\n"
	    "AgentPool team-a/p2 (line 18)|ok|0\n"
	    "AgentPool team-a/p2 (line 27)|AgentPool team-a/p2 (line 27): "
	    "metadata.name: pool team-a/p2 is declared twice|0\n");
	memset(&l, 0, sizeof l);
	ck_assert_int_eq(config_check("{\"pools\": 1}", 13, NULL, check_cb,
	    &l, err, sizeof err), -AS_EINVAL);
	ck_assert_str_eq(err, "pools: expected an array");
	ck_assert_int_eq(l.calls, 0);
}
END_TEST

/* Every truncation of a good document is rejected cleanly, never crashes. */
START_TEST(test_truncations)
{
	const char	*doc = POOL("{" SRC "," TGT ",\"scaling\":{"
	    "\"maxReplicas\":5}}");
	struct config	*c;
	char		 err[512];
	size_t		 n, len = strlen(doc);

	for (n = 0; n < len; n++) {
		ck_assert_int_ne(config_parse(doc, n, NULL, &c, err,
		    sizeof err), 0);
		ck_assert_ptr_null(c);
	}
	ck_assert_int_eq(config_parse(doc, len, NULL, &c, err, sizeof err), 0);
	config_free(c);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite	*s = suite_create("config");
	TCase	*tc = tcase_create("parse");

	tcase_add_test(tc, test_good);
	tcase_add_test(tc, test_secret_ref);
	tcase_add_test(tc, test_handoff);
	tcase_add_test(tc, test_handoff_crd);
	tcase_add_loop_test(tc, test_handoff_routers, 0,
	    sizeof router_rows / sizeof router_rows[0]);
	tcase_add_test(tc, test_pod_cidr);
	tcase_add_loop_test(tc, test_crd_tenancy, 0,
	    (int)AS_ARRAY_SIZE(crd_rows));
	tcase_add_test(tc, test_file_mode_secret_names);
	tcase_add_test(tc, test_username_key);
	tcase_add_test(tc, test_redis_source_options);
	tcase_add_test(tc, test_default_resources);
	tcase_add_loop_test(tc, test_bad, 0,
	    (int)(sizeof bad_rows / sizeof bad_rows[0]));
	tcase_add_loop_test(tc, test_quantity, 0,
	    (int)(sizeof quantity_rows / sizeof quantity_rows[0]));
	tcase_add_test(tc, test_truncations);
	tcase_add_loop_test(tc, test_adopt, 0, (int)AS_ARRAY_SIZE(adopt_rows));
	tcase_add_loop_test(tc, test_yaml, 0, (int)AS_ARRAY_SIZE(yaml_rows));
	tcase_add_test(tc, test_check);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(config_suite()));
}
