/*
 * config.h: AgentPool and AgentQuota objects (DESIGN.md section 5), parsed
 * from --config: the JSON shape `{"pools": [...], "quotas": [...]}`, or
 * YAML as kubectl apply reads it (one or more documents of bare objects,
 * Lists of them, or the same shape); and from the CRDs.  Parsing is pure:
 * bytes in, a struct config out.
 *
 * Every error names the field path and what was expected, e.g.
 * `pools[0].spec.scaling.maxReplicas: expected an integer in [0, 100000],
 * got "ten"`.  Unknown fields are rejected.
 *
 * Ownership: config_parse() returns a config the caller frees with
 * config_free(); every string inside belongs to it.
 */
#ifndef AGENTSCALER_CONFIG_H
#define AGENTSCALER_CONFIG_H

#include <stddef.h>

#include "agentscaler/rt/hash.h"
#include "autoscale.h"

struct pod_cidr;

/*
 * The least spec.scaling.pollIntervalMs: below it a value is taken for
 * KEDA's seconds (config.c, config_check_poll_units()).
 */
#define CONFIG_POLL_FLOOR_MS	100

enum pool_mode { POOL_MODE_SCALE, POOL_MODE_DISPATCH };
enum quota_on_exceeded { QUOTA_ON_DEFER, QUOTA_ON_REJECT };
/* spec.handoff.mode and .via (docs/protocol.md section 2). */
enum handoff_mode { HANDOFF_INBOX, HANDOFF_HTTP };
enum handoff_via { HANDOFF_VIA_ROUTER, HANDOFF_VIA_POD_IP };
/*
 * The stock sandbox-router's Service: sandbox-router-svc, port 8080, in
 * the namespace its manifests name (kubernetes-sigs/agent-sandbox
 * sandbox-router/deploy/service.yaml: "default").  spec.handoff.router's
 * default in --config mode, --handoff-routers' default in CRD mode.
 */
#define HANDOFF_ROUTER_DEFAULT "http://sandbox-router-svc.default.svc:8080"

struct pool_source_config {
	char	*type;
	char	*address;
	char	*queue;
	char	*exchange;		/* results, rabbitmq: instead of queue */
	char	*processing_list;	/* redis-list in-flight list */
	char	*consumer_group;
	char	*secret_name;		/* authSecretRef */
	char	*secret_key;
	char	*secret_ns;		/* authSecretRef.namespace (CRD mode) */
	char	*secret_user_key;	/* authSecretRef.usernameKey */
	char	*username_file;		/* file mode: from usernameKey */
	char	*username_secret;	/* CRD mode: "ns/name/usernameKey" */
	char	*password_file;		/* file mode: also from authSecretRef */
	char	*password_env;
	char	*password_secret;	/* CRD mode: "ns/name/key" of authSecretRef */
	char	*username;
	char	*tls_ca_file;
	int	 tls_insecure;
	int	 count_in_flight;
	long	 prefetch;		/* dispatch: consumer window */
	long	 claim_idle_seconds;	/* dispatch: redis-stream XAUTOCLAIM */
	int	 keyspace_notifications;	/* enum scaler_keyspace */
	char	*stream_field;		/* redis-stream: the body's field */
};

/*
 * spec.handoff of a dispatch pool: how a task reaches its sandbox.  inbox
 * is the broker inbox (DESIGN.md section 7 step 6); http the agent
 * protocol (docs/protocol.md) through the sandbox-router or to the pod IP.
 */
struct pool_handoff_config {
	enum handoff_mode	 mode;
	enum handoff_via	 via;
	char			*router;	/* base URL of the router */
	long			 port;		/* the runtime's */
	long			 deadline_seconds;
	long			 max_attempts;
	char			*tls_ca_file;	/* to the router; NULL: system */
};

struct quota_resource {
	char	*name;		/* cpu, memory, nvidia.com/gpu */
	char	*quantity;	/* as written: "64", "256Gi" */
	double	 value;		/* in base units (cores, bytes, devices) */
};

struct pool_config {
	char			*ns;
	char			*name;
	enum pool_mode		 mode;
	struct pool_source_config source;
	char			*target_kind;
	char			*target_name;
	char			*warm_pool;
	long			 claim_ttl_seconds;
	long			 spare_min;
	long			 spare_max;
	long			 ready_timeout_seconds;
	long			 max_task_bytes;
	/* spec.sandbox.defaultResources: the charge floor (charge.h) */
	struct quota_resource	*default_resources;
	size_t			 ndefault_resources;	/* right after */
	struct autoscale_params	 scaling;
	long			 poll_interval_ms;
	struct pool_handoff_config handoff;
	/*
	 * spec.results: where the Results of an http hand-off go (a Redis
	 * list or stream); has_results 0 when the pool names none.
	 */
	struct pool_source_config results;
	int			 has_results;
	/*
	 * Adoption beside another autoscaler (README "Adopting it beside
	 * KEDA"): spec.shadow, or the daemon's --shadow (set by the daemon
	 * on every pool it applies): decide, log and report, write nothing,
	 * consume nothing.  metadata.annotations agentscaler.io/paused
	 * "true" (paused) and agentscaler.io/paused-replicas N (-1: not
	 * given): no writes, or the target held at N.
	 */
	int			 shadow;
	int			 paused;
	long			 paused_replicas;
	double			 created;	/* CRD: creationTimestamp; 0 */
};

#define CONFIG_ANN_PAUSED		"agentscaler.io/paused"
#define CONFIG_ANN_PAUSED_REPLICAS	"agentscaler.io/paused-replicas"

struct quota_config {
	char			*ns;
	char			*name;
	long			 max_sandboxes;		/* -1: unlimited */
	struct quota_resource	*resources;
	size_t			 nresources;		/* right after */
	long			 max_depth;		/* -1: unlimited */
	long			 max_children_per_task;
	long			 max_descendants_per_root;
	long			 max_roots;
	double			 spawn_per_second;	/* 0: unlimited */
	long			 spawn_burst;
	double			 sandbox_seconds_per_root;
	double			 reserve_for_descendants;
	enum quota_on_exceeded	 on_exceeded;
};

struct config {
	struct pool_config	*pools;
	size_t			 npools;
	struct quota_config	*quotas;
	size_t			 nquotas;
	size_t			 pools_cap;	/* allocated, for config_add_* */
	size_t			 quotas_cap;
	/*
	 * Private to config.c: the pools by (namespace, name) and the quotas
	 * by namespace, so that adding one and finding a quota cost the same
	 * with ten thousand as with one (issue 15).
	 */
	struct as_hash		 pool_index;
	struct as_hash		 quota_index;
};

struct cJSON;

/*
 * Parses a config document.  secrets_dir (may be NULL) is where
 * authSecretRef {name, key} resolves to the file <dir>/<name>/<key>.
 * Returns 0 and *out, or -AS_EINVAL with the first error in err.
 */
int	 config_parse(const char *buf, size_t len, const char *secrets_dir,
	    struct config **out, char *err, size_t errlen);
/*
 * --check-config: every object of a document judged on its own (a second
 * pool of the same name is refused as in config_parse()).  fn is called
 * once per object, in order, with who ("pools[0]" in the {pools, quotas}
 * shape, else "AgentPool team-a/p1 (line 3)"), its error or NULL when
 * valid, and skipped 1 for an object of another kind (a Deployment in the
 * same file for kubectl apply).  Returns the number of invalid objects,
 * or -AS_EINVAL with err when the document itself cannot be read.
 */
typedef void	 config_check_fn(void *arg, const char *who, const char *err,
		    int skipped);
int	 config_check(const char *buf, size_t len, const char *secrets_dir,
	    config_check_fn *fn, void *arg, char *err, size_t errlen);
/* Reads and parses a file; same contract as config_parse(). */
int	 config_load(const char *path, const char *secrets_dir,
	    struct config **out, char *err, size_t errlen);
void	 config_free(struct config *);

/*
 * One object at a time, for the CRD mode (each AgentPool and AgentQuota is
 * judged on its own) and for config_parse() itself.  config_new() returns an
 * empty config.  config_add_pool() and config_add_quota() parse one object
 * (a cJSON object, borrowed) and append it to c; path prefixes the field
 * paths of errors ("pools[0]", or "" for plain "spec.scaling.maxReplicas").
 * A second pool of the same namespace/name, or a second quota in a
 * namespace, is refused.  Pure.  Return 0, or -AS_EINVAL with the error in
 * err and c unchanged.
 */
struct config *config_new(void);

/*
 * CRD mode: the objects come from tenants, each of whom may create
 * AgentPools in its own namespace only, and who must never reach the
 * daemon's files, environment or another namespace's Secrets.  A pool then
 * names no path or variable of the daemon (passwordFile, passwordEnv and
 * tls.caFile are refused), and its authSecretRef is a Secret of its own
 * namespace, read through the API, or one that the administrator shares
 * with every namespace (shared, "namespace/name", from the chart).  When
 * secret_namespaces is set, only pools of those namespaces may name a
 * Secret of their own (the chart grants the daemon `get` on Secrets there
 * only).
 */
struct config_tenancy {
	const char *const	*shared;
	size_t			 nshared;
	const char *const	*secret_namespaces;	/* NULL: all */
	size_t			 nsecret_namespaces;
	/*
	 * spec.handoff.router may name only one of these (--handoff-routers,
	 * the operator's); a pool naming none takes the first.  None: no pool
	 * may hand off through a router.
	 */
	const char *const	*routers;
	size_t			 nrouters;
	/* --pod-cidrs: none, and via podIP is refused. */
	const struct pod_cidr	*pod_cidrs;
	size_t			 npod_cidrs;
};

/*
 * crd: NULL for a file the operator wrote (authSecretRef is the file
 * <secrets_dir>/<name>/<key>), the tenancy rules in CRD mode.
 */
int	 config_add_pool(struct config *c, const struct cJSON *obj,
	    const char *secrets_dir, const struct config_tenancy *crd,
	    const char *path, char *err, size_t errlen);
/* A Secret key as Kubernetes takes it: [-._a-zA-Z0-9]+, not "." or "..". */
int	 config_secret_key(const char *);
/* A DNS-1123 subdomain of at most max bytes (Secret and object names). */
int	 config_dns_subdomain(const char *, size_t max);
int	 config_add_quota(struct config *c, const struct cJSON *obj,
	    const char *path, char *err, size_t errlen);

/* Finds the quota of a namespace, or NULL. */
const struct quota_config *config_quota_for(const struct config *,
	    const char *ns);

struct scaler_source;

/*
 * Fills src (strings borrowed from p) with the pool's source for a scaler or
 * a consumer; the processing list is passed for dispatch mode, and for
 * scale mode only when it is counted.
 */
void	 config_pool_source(const struct pool_config *p,
	    struct scaler_source *src);
/* Fills src (strings borrowed) with the pool's spec.results. */
void	 config_pool_results(const struct pool_config *p,
	    struct scaler_source *src);
/* 1 when the two pools' sources are the same (every source field). */
int	 config_same_source(const struct pool_config *,
	    const struct pool_config *);
/* 1 when the two pools' spec.handoff and spec.results are the same. */
int	 config_same_handoff(const struct pool_config *,
	    const struct pool_config *);

/*
 * 1 when the dispatcher runs p (consumes its source and claims): a
 * dispatch pool neither in shadow nor paused.  The scale pools
 * (pool.c) run every other pool, shadow and paused dispatch pools
 * included: they read the backlog and report what they would claim.
 */
int	 config_pool_consumes(const struct pool_config *p);

/* Help text for the config file format, generated from the field table. */
void	 config_print_reference(void);
/*
 * The same field table as JSON, for tools and for the test that keeps the
 * CRDs in charts/agentscaler/crds in step with the parser:
 * {"AgentPool": [{"path", "type", "required", "min", "max", "default",
 * "enum"}...], "AgentQuota": [...]}.  type is string, integer, number,
 * boolean, enum, object or quantities; "default" is absent when unset is
 * its own meaning (e.g. -1 = unlimited, below "min").
 */
void	 config_print_reference_json(void);

#endif
