/*
 * crd.h: CRD mode.  Without --config the daemon's config comes from the
 * AgentPool and AgentQuota objects of the cluster (all namespaces, or one),
 * kept by two informers (informer.h: list + watch, bookmarks, re-list on
 * 410, backoff), plus one on SandboxWarmPools for the dispatch pools'
 * status.
 *
 * Each object is parsed on its own (config_add_pool/config_add_quota).  The
 * valid ones make the config handed to the daemon, through the same apply
 * path as a SIGHUP reload, whenever a spec changes (status and metadata
 * changes do not count); an invalid one is left out and reported on its own
 * status (Ready=False, reason InvalidSpec, the parser's message) and as a
 * Warning Event, never taking the valid ones down.  At most one AgentQuota
 * per namespace: the oldest (creationTimestamp, then name) is used, the
 * others are invalid.  Nothing is applied before both informers listed.
 *
 * Every second the status of each object is computed from the running
 * pools (the daemon's callbacks fill the snapshots below) and handed to the
 * status writer (status_writer.h), which writes only what changed.  Events
 * go through one recorder (events.h).
 *
 * Ownership: options are borrowed for the life of the crd; the config given
 * to apply() becomes the callee's.
 */
#ifndef AGENTSCALER_CRD_H
#define AGENTSCALER_CRD_H

#include <stddef.h>
#include <stdint.h>

#include "agentscaler/k8s/events.h"

struct as_buf;
struct prom;
struct prom_def;
struct cJSON;
struct config;
struct config_tenancy;
struct ev_loop;
struct k8s_client;
struct crd;

#define CRD_GROUP_VERSION	"agentscaler.io/v1alpha1"
#define CRD_MAX_RESOURCES	16

/* What a running pool looks like, for its AgentPool status. */
/* Every field counts in crd_pool_status_hash(). */
struct crd_pool_status {
	int		 dispatch;	/* dispatch mode */
	long		 replicas;	/* scale: target spec; dispatch: warm
					   pool status.replicas (-1 unknown) */
	long		 desired;	/* scale: decision; dispatch: spares */
	long		 backlog;
	long		 in_flight;
	double		 last_scale;	/* wall; 0: never */
	long		 claims_warm;	/* dispatch: live claims */
	long		 claims_cold;
	long		 claims_pending;
	long		 warm_replicas;	/* filled by crd.c; -1 unknown */
	long		 warm_ready;
	int		 started;	/* read its source at least once */
	int		 source_ok;
	char		 source_err[192];
	char		 target_err[256];
	int		 quota_limited;
	char		 quota_msg[160];
	/*
	 * Why nothing is written (condition Shadow, Paused or Conflict, each
	 * present only while true), with its message: "would scale
	 * Deployment/x to 3 (now 1)", "held at 2 replicas", "HPA x
	 * scales Deployment/y".
	 */
	int		 shadow;
	int		 paused;
	char		 hold_msg[224];
	char		 conflict[640];	/* "": none */
};

/* What the namespace uses against its AgentQuota. */
struct crd_quota_status {
	long		 sandboxes;
	long		 replicas;
	long		 tasks;
	long		 roots;
	long		 deferred;	/* waiting now */
	uint64_t	 rejected;	/* since start */
	size_t		 nres;
	struct {
		char	 name[64];
		double	 used;
	}		 res[CRD_MAX_RESOURCES];
	int		 limited;	/* no room now, or tasks deferred */
	char		 limited_msg[160];
};

struct crd_options {
	const char	*watch_namespace;	/* NULL: all */
	const struct config_tenancy *tenancy;	/* NULL: no shared Secrets */
	const char	*instance;		/* reportingInstance */
	/*
	 * 1 when this process may write status and Events now (the
	 * daemon's daemon_may_write(), asked at each write); NULL: always.
	 */
	int		 (*may_write)(void *arg);
	/* The config of the valid objects; the callee owns it. */
	void		 (*apply)(void *arg, struct config *);
	/* Snapshot of the running pool ns/name: 0, or -1 when none runs. */
	int		 (*pool_status)(void *arg, const char *ns,
			    const char *name, struct crd_pool_status *);
	/* Usage of namespace ns: 0, or -1 when unknown. */
	int		 (*quota_status)(void *arg, const char *ns,
			    struct crd_quota_status *);
	void		*arg;
	double		 status_interval;	/* s; default 1 */
	double		 status_min_interval;	/* s per object; default 2 */
};

struct crd	*crd_new(struct ev_loop *, struct k8s_client *,
		    const struct crd_options *, char *err, size_t errlen);
/* Stops the informers, cancels writes in flight, frees. */
void		 crd_free(struct crd *);
/* Leadership lost: status and Event writes in flight are cancelled. */
void		 crd_hold(struct crd *);
/*
 * What AgentPool ns/name reports changed: its status is made again at the
 * next status tick.  Nothing when no such object is known, or c is NULL.
 */
void		 crd_status_touch(struct crd *, const char *ns,
		    const char *name);
/*
 * Pure: a hash of every field of the report, to tell whether it changed
 * (a field added to struct crd_pool_status goes into it too).
 */
uint64_t	 crd_pool_status_hash(const struct crd_pool_status *st);
/* Appends one line per informer that has not listed yet. */
void		 crd_readyz(const struct crd *, struct as_buf *);
/* Prometheus text of the CRD mode families, into w. */
void		 crd_metrics(const struct crd *, struct prom *w);
/* Their definitions (prom.h), NULL-ended, for --print-metrics. */
extern const struct prom_def *const crd_metric_defs[];
/*
 * An Event regarding the AgentPool or AgentQuota (kind) ns/name, with its
 * uid; nothing when no such object is known.  note is printf-formatted.
 */
void		 crd_event(struct crd *, const char *kind, const char *ns,
		    const char *name, enum event_type, const char *reason,
		    const char *action, const char *fmt, ...)
		    __attribute__((format(printf, 8, 9)));

/*
 * The AgentPool and AgentQuota informers' transform (arg unused): keeps
 * of obj, in place, the metadata crd.c reads (name, namespace, uid,
 * resourceVersion, generation, creationTimestamp), spec and status
 * (whose first sight is the status writer's base); managedFields, labels,
 * annotations (kubectl's last-applied copy of the spec) go.  The cache is
 * then the only copy crd.c keeps of an object (issue 15).
 */
void		 crd_slim(struct cJSON *obj, void *arg);

/* One object as the informers have it, for crd_build_config(). */
struct crd_object {
	int		 quota;		/* 0 AgentPool, 1 AgentQuota */
	const struct cJSON *obj;	/* the whole object, borrowed */
	double		 created;	/* creationTimestamp; 0 unknown */
	int		 valid;		/* out */
	char		 err[512];	/* out: why not valid */
};

/*
 * Pure: the config made of the valid objects.  Each is parsed on its own
 * from its name, namespace and spec (the server's metadata and status are
 * not the parser's business); quotas are taken oldest first per namespace
 * (creationTimestamp, then name), so a second quota in a namespace is the
 * invalid one.  Pools are held to the tenancy rules (config.h; NULL: no
 * Secret shared, every namespace may read its own).  Sets valid and err of
 * every object.  Returns a config the caller frees.
 */
struct config	*crd_build_config(struct crd_object *, size_t n,
		    const struct config_tenancy *);

/*
 * Pure: the status documents.  prev is the status written before (may be
 * NULL): a condition keeps its lastTransitionTime while its status stays
 * the same.  now is wall-clock seconds.  The caller frees the result.
 */
struct cJSON	*crd_pool_status_json(const struct crd_pool_status *,
		    long generation, const struct cJSON *prev, double now);
struct cJSON	*crd_quota_status_json(const struct crd_quota_status *,
		    long generation, const struct cJSON *prev, double now);
/* The status of an object the parser refused (Ready=False InvalidSpec). */
struct cJSON	*crd_invalid_status_json(const char *msg, long generation,
		    const struct cJSON *prev, double now);

#endif
