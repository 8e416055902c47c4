/*
 * config.h: AgentPool and AgentQuota objects (DESIGN.md section 5), parsed
 * from the JSON shape `{"pools": [...], "quotas": [...]}` of --config, and
 * later from the CRDs.  Parsing is pure: bytes in, a struct config out.
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

#include "agentscaler/autoscale.h"

enum pool_mode { POOL_MODE_SCALE, POOL_MODE_DISPATCH };
enum quota_on_exceeded { QUOTA_DEFER, QUOTA_REJECT };

struct pool_source_config {
	char	*type;
	char	*address;
	char	*queue;
	char	*processing_list;	/* redis-list in-flight list */
	char	*consumer_group;
	char	*secret_name;		/* authSecretRef */
	char	*secret_key;
	char	*password_file;		/* resolved from authSecretRef */
	char	*password_env;
	char	*username;
	char	*tls_ca_file;
	int	 tls_insecure;
	int	 count_in_flight;
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
	struct autoscale_params	 scaling;
	long			 poll_interval_ms;
};

struct quota_resource {
	char	*name;		/* cpu, memory, nvidia.com/gpu */
	char	*quantity;	/* as written: "64", "256Gi" */
	double	 value;		/* in base units (cores, bytes, devices) */
};

struct quota_config {
	char			*ns;
	char			*name;
	long			 max_sandboxes;		/* -1: unlimited */
	struct quota_resource	*resources;
	size_t			 nresources;
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
};

/*
 * Parses a config document.  secrets_dir (may be NULL) is where
 * authSecretRef {name, key} resolves to the file <dir>/<name>/<key>.
 * Returns 0 and *out, or -AS_EINVAL with the first error in err.
 */
int	 config_parse(const char *buf, size_t len, const char *secrets_dir,
	    struct config **out, char *err, size_t errlen);
/* Reads and parses a file; same contract as config_parse(). */
int	 config_load(const char *path, const char *secrets_dir,
	    struct config **out, char *err, size_t errlen);
void	 config_free(struct config *);

/* Finds the quota of a namespace, or NULL. */
const struct quota_config *config_quota_for(const struct config *,
	    const char *ns);

/*
 * Pure: parses a Kubernetes quantity ("500m", "2", "1.5Gi", "1e3") into a
 * number of base units.  Returns 0 or -AS_EINVAL.
 */
int	 config_parse_quantity(const char *, double *);

/* Help text for the config file format, generated from the field table. */
void	 config_print_reference(void);

#endif
