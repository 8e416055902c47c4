/*
 * dispatch.h: dispatch mode (DESIGN.md section 7): every task message of a
 * dispatch pool becomes one SandboxClaim, is handed to the bound sandbox's
 * inbox, and its source message is acked only after that; the warm pool is
 * kept at the spare target (warmpool.h).
 *
 * One dispatcher per daemon.  Per namespace it keeps one informer on the
 * SandboxClaims labelled app.kubernetes.io/managed-by=agentscaler (never a
 * watch per claim) and the table of live tasks, rebuilt from those claims'
 * labels and annotations before any pool of the namespace starts
 * consuming.  Per pool it owns one consumer (consumer.h).
 *
 * Ownership: the config passed to dispatcher_apply() is borrowed until the
 * next dispatcher_apply() or dispatcher_free().
 */
#ifndef AGENTSCALER_DISPATCH_H
#define AGENTSCALER_DISPATCH_H

#include <stddef.h>

#include "agentscaler/k8s/informer.h"
#include "agentscaler/k8s/k8s.h"

struct as_buf;
struct cJSON;
struct config;
struct prom;
struct prom_def;
struct consumer_type;
struct ev_loop;
struct k8s_client;
struct dispatcher;
struct pod_cidr;
struct otlp;

struct crd_pool_status;
struct crd_quota_status;

/*
 * An Event worth recording about the AgentPool or AgentQuota (kind) ns/name:
 * QuotaExceeded, CascadeRejected, ClaimFailed, SourceError.
 */
typedef void	 dispatch_event_fn(void *arg, const char *kind, const char *ns,
		    const char *name, int warning, const char *reason,
		    const char *action, const char *note);

/*
 * What the dispatcher asks of Kubernetes and of the brokers, as one table
 * so that a unit test (tests/check_dispatch.c) can complete each request
 * and consumer operation in the order it chooses.  Each member has the
 * contract of the function it stands for: k8s_client_request(),
 * k8s_req_cancel(), k8s_scale_get(), k8s_scale_patch(), informer_new(),
 * informer_free(), informer_get(), informer_get_stats() and
 * consumer_type_find().
 */
struct dispatch_ops {
	struct k8s_req	*(*request)(struct k8s_client *, const char *method,
			    const char *path, const char *content_type,
			    const char *body, k8s_done_fn *, void *arg);
	void		 (*cancel)(struct k8s_req *);
	struct k8s_req	*(*scale_get)(struct k8s_client *, const char *kind,
			    const char *ns, const char *name, k8s_scale_fn *,
			    void *arg);
	struct k8s_req	*(*scale_patch)(struct k8s_client *, const char *kind,
			    const char *ns, const char *name, long replicas,
			    k8s_scale_fn *, void *arg);
	struct informer	*(*informer_new)(struct k8s_client *,
			    const struct informer_options *, informer_fn *,
			    void *arg, char *err, size_t errlen);
	void		 (*informer_free)(struct informer *);
	const struct cJSON *(*informer_get)(const struct informer *,
			    const char *ns, const char *name);
	void		 (*informer_stats)(const struct informer *,
			    struct informer_stats *);
	const struct consumer_type *(*consumer_type)(const char *source_type,
			    const char *address);
};

struct dispatch_options {
	const char	*instance;	/* this agentscaler's stable name */
	double		 sweep_interval;	/* s; default 0.25 */
	double		 sizing_interval;	/* s; default 1 */
	dispatch_event_fn *event;	/* NULL: no Events */
	void		*event_arg;
	/*
	 * What pool ns/name's CRD status reports (dispatcher_pool_status())
	 * changed, as the sweep saw it; NULL: nobody listens.
	 */
	void		(*status)(void *arg, const char *ns, const char *name);
	void		*status_arg;
	/*
	 * 1: consumers also take over what dead instances left in flight
	 * (consumer_options.adopt); the daemon always sets it.
	 */
	int		 adopt;
	/*
	 * handoff http: the file of the key the tasks' tokens derive from
	 * (docs/protocol.md section 2); NULL: a random key of this process.
	 */
	const char	*handoff_key_file;
	/*
	 * The ConfigMap ns/name that keeps the newest rejections across
	 * restarts and leaders (dispatch_recent.c): read when the
	 * dispatcher starts, written a second after each change.  NULL: kept
	 * in memory only.
	 */
	const char	*rejections_ns;
	const char	*rejections_name;
	/*
	 * handoff http: the pod IPs agentscaler may connect to or name to
	 * the router (podcidr.h; borrowed, outliving the dispatcher); none:
	 * any.
	 */
	const struct pod_cidr *pod_cidrs;
	size_t		 npod_cidrs;
	/* Where the tasks' spans go (borrowed); NULL: no traces. */
	struct otlp	*otlp;
	/* NULL: the real client, informer and consumers (tests only). */
	const struct dispatch_ops *ops;
};

struct dispatcher *dispatcher_new(struct ev_loop *, struct k8s_client *,
	    const struct dispatch_options *);
/*
 * Runs the periodic sweep now, as its timer does every sweep_interval:
 * retries, readyTimeoutSeconds, the TTL backstop, sizing.  For tests.
 */
void	 dispatcher_sweep_now(struct dispatcher *);
/*
 * Releases held messages (the broker redelivers them), stops, frees.  The
 * rejections not yet in their ConfigMap (rejections_name) are sent on
 * their own, as by dispatcher_free_save(d, 1, NULL, NULL).
 */
void	 dispatcher_free(struct dispatcher *);
/* Told once when the last rejections write of a dispatcher ended. */
typedef void dispatcher_saved_fn(void *arg);
/* The rejections writes a dispatcher_free_save() left on their way. */
struct dispatcher_save;
/*
 * dispatcher_free() for the daemon: with save (it still leads), the
 * rejections not yet in their ConfigMap go out on their own, after the
 * write in flight; without (leadership lost: a standby never writes),
 * nothing more is sent and the write in flight is cancelled.  Returns a
 * handle when done(arg) will be called, once, after this returns, when
 * those writes ended (written, refused, cancelled by freeing the client
 * or abandoned); NULL when none is on its way (or done is NULL).  The
 * handle is valid until done runs.  The tasks' last spans are emitted to
 * options.otlp before this returns.
 */
struct dispatcher_save *dispatcher_free_save(struct dispatcher *, int save,
	    dispatcher_saved_fn *done, void *arg);
/*
 * The process may write no more (the Lease lost during the stop, or about
 * to be released): the write in flight is cancelled, the one queued
 * behind it freed unsent, and done runs before this returns.  NULL does
 * nothing.
 */
void	 dispatcher_save_abandon(struct dispatcher_save *);
/*
 * Takes the dispatch-mode pools of c: new ones start, removed ones stop,
 * unchanged ones (same source and sandbox settings) keep running.
 */
void	 dispatcher_apply(struct dispatcher *, const struct config *c);
/*
 * Scale mode: the namespace's headroom under its AgentQuota (more
 * sandboxes that may start), given the replicas its scale-mode pools run
 * now; -1 when unlimited.  Dispatch tasks and warm spares of the namespace
 * count too.  A NULL dispatcher (a standby's) counts from the config.
 */
long	 dispatcher_headroom(struct dispatcher *, const struct config *,
	    const char *ns, long scale_replicas);
/*
 * Why task id waits, runs or was rejected, as JSON fields into out
 * ("state", "reason", "detail", "explanation", ...).  Returns 1 when the
 * task is known, 0 otherwise (out still says so).
 */
int	 dispatcher_explain(const struct dispatcher *, const char *id,
	    struct cJSON *out);
/* As dispatcher_explain(), in namespace ns only (NULL: every one). */
int	 dispatcher_explain_ns(const struct dispatcher *, const char *id,
	    const char *ns, struct cJSON *out);
/* Prometheus text of the dispatch families, into w. */
void	 dispatcher_metrics(const struct dispatcher *, struct prom *w);
/* Their definitions (prom.h), NULL-ended, for --print-metrics. */
extern const struct prom_def *const dispatch_metric_defs[];
/* Adds "dispatch": {...} to the /status document. */
void	 dispatcher_status(const struct dispatcher *, struct cJSON *root);
/*
 * Adds "deferredTasks" (at most 25 per namespace, each with its reason and
 * place in the queue) and "recentDeadLetters" (the newest 25 of the
 * explain ring, newest first) to the /status document.
 */
void	 dispatcher_status_recent(const struct dispatcher *,
	    struct cJSON *root);
/*
 * The status snapshot of dispatch pool ns/name (crd.h).  Returns 0, or -1
 * when no such pool runs.
 */
int	 dispatcher_pool_status(const struct dispatcher *, const char *ns,
	    const char *name, struct crd_pool_status *);
/*
 * The namespace's usage for its AgentQuota status.  Returns 0, or -1 when
 * no dispatch pool runs there (the caller counts scale replicas itself).
 */
int	 dispatcher_quota_status(const struct dispatcher *, const char *ns,
	    struct crd_quota_status *);
/*
 * For /readyz: appends to notready one line per namespace whose claims are
 * not listed yet (its tasks are not rebuilt, so nothing is admitted there),
 * and to pools one line per pool not consuming, a problem of that pool,
 * not of the process.
 */
void	 dispatcher_readyz(const struct dispatcher *, struct as_buf *notready,
	    struct as_buf *pools);

#endif
