/*
 * dispatch_int.h: private to the dispatcher's files (scheduler/dispatch*.c):
 * its structs and the functions those files share.  Other modules use
 * scheduler/dispatch.h only.
 *
 *   dispatch.c          the public API: dispatcher_new/apply/free/headroom,
 *                       pool create and free;
 *   dispatch_task.c     task records and their state machine: fail and
 *                       settle, dead letters, acks, the hand-off;
 *   dispatch_ns.c       namespaces: the task table, message intake,
 *                       admission against the AgentQuota, deferral, pump;
 *   dispatch_claim.c    SandboxClaims: create, adopt, delete, the claim
 *                       informer (rebuild at start), the sweep;
 *   dispatch_warm.c     warm pool sizing glue and the template reads;
 *   dispatch_mark.c     hand-off markers of pools whose consumer keeps
 *                       none (RabbitMQ), and why they live in memory;
 *   dispatch_metrics.c  /metrics, /status, explain, Events, CRD status;
 *   dispatch_trace.c    a task's spans (OTLP traces).
 *
 * Ownership: a dispatcher owns its pools (struct dpool) and namespaces
 * (struct dns, freed with the last pool that uses it); a namespace owns its
 * task records (struct dtask); a task owns the message it holds (t->msg)
 * and is freed only once no consumer operation or Kubernetes request of
 * its own is pending (dtask_maybe_free).  All of it runs on the
 * dispatcher's loop.
 */
#ifndef AGENTSCALER_DISPATCH_INT_H
#define AGENTSCALER_DISPATCH_INT_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/scalers/consumer.h"
#include "dispatch.h"
#include "agentscaler/rt/hash.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/k8s/informer.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/prom.h"
#include "quota.h"
#include "task.h"
#include "warmpool.h"

#define CLAIMS_API	K8S_SANDBOX_EXT_API
/*
 * Seconds a claim whose sandbox succeeded is kept, once the consumer is
 * up, for the redelivery of a message whose ack is not known to have
 * landed, on a source that keeps no hand-off marker (RabbitMQ;
 * dispatch_mark.c).
 */
#define DISPATCH_ACK_HOLD	10.0

enum tstate {
	T_CLAIMING, T_WAITING, T_HANDOFF, T_ACKING, T_RUNNING, T_RELEASING,
	T_DEFERRED
};

enum launch { L_UNKNOWN, L_WARM, L_COLD };

/*
 * What a pool's CRD status counts of a task (dtask_shown()): a claim
 * pending, on a warm sandbox or a cold one; kept per pool (p->shown) as
 * the fields it reads change, so the status walks no task.
 */
enum dshown { DS_NONE, DS_PENDING, DS_WARM, DS_COLD, DS_N };

/*
 * The dead-letter reasons /metrics counts (dispatch_metrics.c), sorted: a
 * bounded label.  A reason not in the list (a claim's Ready reason, a
 * runtime's own) is counted under its prefix's ".other", else "other".
 */
#define DEAD_REASONS	40
extern const char *const dispatch_dead_reasons[DEAD_REASONS];
/* The index in dispatch_dead_reasons of what counts reason. */
size_t		 dispatch_dead_reason(const char *reason);

struct dns;
struct dpool;
struct drstore;
struct dmarks;
struct dhttp;
struct dtrace;
struct httpc;
struct otlp;
struct results;

struct dtask {
	struct dns		*ns;
	struct dpool		*pool;		/* NULL: pool gone or unknown */
	/*
	 * The pool it came from, also while pool is NULL (removed), in the
	 * form of the claim's pool label (task_pool_label: a name longer
	 * than a label is cut and hashed), which is all a rebuilt record
	 * knows; NULL when its claim names none.  dpool_is_of() compares.
	 */
	char			*pool_name;
	char			*id;
	char			*parent;	/* NULL for a root */
	char			*root;
	int			 depth;
	int			 spawned;	/* has had a child */
	char			 claim[CLAIM_NAME_MAX + 1];
	char			 sandbox[254];
	char			 pod_ip[64];	/* the claim's; "" unknown */
	char			 traceparent[56];
	enum tstate		 st;
	struct consumer_msg	*msg;		/* held, not yet acked */
	struct k8s_req		*req;		/* Kubernetes request */
	struct k8s_req		*save_req;	/* PATCH: tree budget */
	int			 op;		/* consumer operation pending */
	int			 claim_exists;
	int			 rebuilt;	/* known from a claim at start */
	int			 handed_off;
	int			 handoff_sent;	/* its outcome may be lost */
	int			 acked;		/* its message's ack landed */
	/*
	 * Its sandbox succeeded while a hand-off that may repeat an earlier
	 * one (rebuilt, or handoff_sent) was in flight: the task ran; the
	 * hand-off's completion settles it as a success (handoff_done).
	 */
	int			 succeeded_seen;
	/* A hand-off of it failed in a way that may have delivered it. */
	int			 handoff_unknown;
	/*
	 * Its sandbox succeeded (or failed after the hand-off) before its
	 * message was acked here (a pool
	 * without a marker of its own): the claim is kept, as the only
	 * record past a crash that the task ran, until the redelivery is
	 * acked or the consumer has been up DISPATCH_ACK_HOLD seconds
	 * (dtask_hold); since held_at (mono).
	 */
	int			 held;
	double			 held_at;
	int			 doomed;	/* free once nothing pending */
	int			 admitted;	/* counted by the quota */
	int			 failed;	/* sandbox failed after hand-off */
	/*
	 * The claim went without our foreground delete (someone else's,
	 * perhaps in the background): the quota holds the task until its
	 * Sandbox is gone (dtask_release reads it), owned by claim_uid.
	 */
	int			 await_sandbox;
	char			 claim_uid[64];
	/*
	 * The claim's Ready reason while it is the cluster's fault
	 * (task_claim_cluster_wait), else "": readyTimeoutSeconds then
	 * backs off instead of failing the task.
	 */
	char			 wait_reason[48];
	unsigned		 cluster_waits;
	struct task_resource	*res;		/* requests, or NULL */
	size_t			 nres;
	enum quota_reason	 why;		/* last deferral reason */
	char			*why_detail;
	/*
	 * A failure that came while a consumer operation was in flight,
	 * decided once it ends (dtask_settle); "" when none.
	 */
	char			 fail_reason[48];
	char			*fail_detail;
	/*
	 * Why the task failed (dtask_fail), kept while its record lives: a
	 * redelivery of its message (whose dead letter never happened: the
	 * connection went) is dead-lettered with it; "" when none.
	 */
	char			 verdict[48];
	char			*verdict_detail;
	int			 counted_waiting;
	enum launch		 launch;
	double			 t_claim;	/* mono: POST sent */
	double			 ready_by;	/* mono: readyTimeout */
	double			 shutdown_time;	/* wall, from the claim */
	double			 retry_at;	/* mono; 0: none */
	unsigned		 attempts;
	struct dhttp		*http;		/* handoff http; NULL */
	/*
	 * A child spawned through the protocol (dispatch_http.c), under
	 * this key of its parent's; NULL otherwise.  Its message is made
	 * here, held by no broker: its ack does nothing, a rejection
	 * dead-letters nothing (the parent's runtime is told instead).
	 */
	char			*spawn_key;
	struct dtrace		*tr;		/* its spans; NULL: off */
	struct as_hash_entry	 hlink;		/* ns->byid: task_hash("", id) */
	TAILQ_ENTRY(dtask)	 all;
	TAILQ_ENTRY(dtask)	 plink;		/* pool->tasks */
	TAILQ_ENTRY(dtask)	 dq;		/* deferred queue */
};

struct dns {
	struct dispatcher	*d;
	char			 name[64];
	struct informer		*claims;
	int			 synced;
	struct as_hash		 byid;		/* tasks by id */
	size_t			 ntasks;
	TAILQ_HEAD(, dtask)	 tasks;
	int			 refs;		/* pools using it */
	struct quota_ns		*quota;
	TAILQ_HEAD(, dtask)	 defer_desc;	/* descendants first */
	TAILQ_HEAD(, dtask)	 defer_roots;
	size_t			 ndeferred;
	int			 pump;		/* re-check deferred soon */
	long			 scale_replicas;	/* scale-mode pools' */
	long			 spares;	/* its pools' spares_counted */
	/*
	 * API outage (dispatch_claim.c): since when the sweep has seen one
	 * (mono; 0: reachable), and when a request of ours last found no
	 * API server (mono; 0: the last one was answered).
	 */
	double			 down_since;
	double			 api_failed_at;
	LIST_ENTRY(dns)		 entry;
	struct as_hash_entry	 nslink;	/* d->nss_byname */
	LIST_HEAD(, dpool)	 pools;	/* its dpools, in d->pools order */
};

/* A rejected or dead-lettered task, for explain; RECENT kept. */
#define RECENT		1024
struct recent {
	char		 ns[64];
	char		 id[TASK_ID_MAX + 1];
	char		 reason[48];
	char		 detail[240];
	double		 wall;
};

struct dpool {
	struct dispatcher	*d;
	struct dns		*ns;
	const struct pool_config *cfg;
	char			 id[320];
	const struct consumer_type *ct;
	struct consumer		*cons;
	int			 started;
	int			 up;
	double			 up_since;	/* mono: consuming; 0: down */
	char			 src_err[192];

	struct warmpool_params	 wp;
	struct warmpool_state	 ws;
	struct k8s_req		*scale_req;
	long			 spare_patched;	/* -1: not yet */
	long			 spare_actual;	/* status.replicas; -1 */
	long			 spares_counted;	/* in ns->spares */
	double			 scale_read;	/* mono */
	char			 k8s_err[256];

	/* The charge floor (charge.h) when no defaultResources is set. */
	struct k8s_req		*tpl_req;	/* GET pool, then template */
	int			 tpl_known;	/* read once at least */
	char			 tpl_name[254];
	struct task_resource	 tpl_res[TASK_MAX_RESOURCES];
	size_t			 tpl_nres;
	double			 tpl_at;	/* mono: next read */
	unsigned		 tpl_attempts;
	char			 tpl_err[320];	/* last read's; "" */

	/*
	 * Its tasks (t->pool == p), in the order they came to it, so that
	 * nothing done for one pool walks its namespace's tasks; moved by
	 * dtask_set_pool() only, with live, waiting and shown.
	 */
	TAILQ_HEAD(, dtask)	 tasks;
	long			 shown[DS_N];	/* tasks by dtask_shown() */
	long			 live;		/* tasks of this pool */
	long			 deferred;	/* of them, deferred */
	long			 waiting;	/* CLAIMING + WAITING */
	long			 spawners;	/* of live, with a child */
	uint64_t		 received;
	uint64_t		 handed_off;
	uint64_t		 completed;
	uint64_t		 failed;	/* sandbox failed after hand-off */
	uint64_t		 cluster_waits;	/* ready timeouts backed off */
	/* Claims that became Ready, and that failed, by enum launch. */
	uint64_t		 claims_ready[3], claims_failed[3];
	uint64_t		 redelivered;
	uint64_t		 dead_letter_errors;
	uint64_t		 dead[DEAD_REASONS];
	struct prom_hist	 ready_warm, ready_cold, handoff;
	struct httpc		*hc;		/* handoff http: the client */
	struct results		*results;	/* and the Results' publisher */
	LIST_ENTRY(dpool)	 entry;
	LIST_ENTRY(dpool)	 nsentry;	/* ns->pools */
	struct as_hash_entry	 keylink;	/* d->pools_byname */
	uint64_t		 status_hash;	/* dpool_status_note() */
	struct dpool		*succ;		/* dispatcher_apply's */
	int			 kept;		/* dispatcher_apply's */
};

struct dispatcher {
	struct ev_loop		*loop;
	struct k8s_client	*k8s;
	const struct dispatch_ops *ops;
	char			 instance[128];
	int			 adopt;
	double			 sweep_interval;
	double			 sizing_interval;
	ev_timer		 sweep;
	ev_timer		 kick;		/* pump deferred now */
	double			 last_sizing;
	const struct config	*config;
	struct recent		*recent;	/* ring of RECENT */
	size_t			 nrecent;
	struct drstore		*rstore;	/* NULL: not kept */
	LIST_HEAD(, dns)	 nss;
	struct as_hash		 nss_byname;	/* nss by name */
	LIST_HEAD(, dpool)	 pools;
	/*
	 * The pools by (namespace, name): a pool and the one replacing it
	 * share a key for the length of dispatcher_apply().
	 */
	struct as_hash		 pools_byname;
	dispatch_event_fn	*event;
	void			*event_arg;
	void			(*status)(void *, const char *, const char *);
	void			*status_arg;
	struct dmarks		*marks;		/* dispatch_mark.c */
	struct otlp		*otlp;		/* traces; NULL: off */
	char			*hkey;		/* handoff http: token key */
	size_t			 hkeylen;
	/* --pod-cidrs (borrowed); none: a pod IP is taken as it is. */
	const struct pod_cidr	*pod_cidrs;
	size_t			 npod_cidrs;
	/*
	 * Pools and tasks visited by the loops that serve one pool (apply,
	 * free, sizing, status, a claim's pool): what tests/check_dispatch.c
	 * holds to the pool's own share, never every pool or task.
	 */
	uint64_t		 visits;
};

/* dispatch_task.c: task records and their state machine. */
void		 dtask_set_waiting(struct dtask *, int);
/*
 * Moves t to pool p (NULL: none), off its pool's tasks, live, waiting
 * and shown counts, onto p's.
 */
void		 dtask_set_pool(struct dtask *, struct dpool *);
/*
 * Around a change of what dtask_shown() reads (t->launch, t->doomed):
 * takes t off its pool's shown count, then puts it back.
 */
void		 dtask_unshow(struct dtask *);
void		 dtask_show(struct dtask *);
/* The pool ns/name, or NULL: a lookup (d->pools_byname). */
struct dpool	*dpool_find(const struct dispatcher *, const char *ns,
		    const char *name);
void		 dtask_set_state(struct dtask *, enum tstate);
void		 dtask_set_spawned(struct dtask *);
/* A record in ns's table, counted live by p (may be NULL). */
struct dtask	*dtask_new(struct dns *, struct dpool *, const char *id,
		    const char *parent, const char *root, int depth);
void		 dtask_maybe_free(struct dtask *);
int		 dtask_completion_moot(struct dtask *, int err);
/* Takes msg over; t (or NULL) is held until the broker answers. */
void		 dpool_dead_letter(struct dpool *, struct dtask *,
		    struct consumer_msg *, const char *reason,
		    const char *detail, const char *task_id);
void		 dtask_fail(struct dtask *, const char *, const char *);
void		 dtask_handoff(struct dtask *);
/* What task_handoff_body() says of t (t->pool set; strings borrowed). */
void		 dtask_handoff_spec(const struct dtask *, struct handoff_spec *);
/* Acks the message t holds (if any); ACKING ends with it. */
void		 dtask_ack(struct dtask *);
void		 dtask_go(struct dtask *);
/* The consumer of p lost its connection: lets its void messages go. */
void		 dpool_release_void(struct dpool *);
/* Whether t holds a message its consumer says is void (ct->msg_live). */
int		 dtask_msg_void(const struct dtask *);
/*
 * A task whose sandbox succeeded though no hand-off of this process was
 * confirmed (rebuilt from its claim, or the confirm went with the
 * connection), on a pool without a marker of its own: taken as handed off
 * (marker set, message acked).
 */
int		 dtask_succeeded_unseen(struct dtask *);
/*
 * The sandbox of a task handed off succeeded: its claim is released, or
 * kept while its message's ack is not known to have landed (dtask_hold).
 */
void		 dtask_succeeded(struct dtask *);
/* A held task whose redelivery did not come within the hold: released. */
void		 dtask_hold_sweep(struct dtask *, double now);
/*
 * A task that ran and ended (succeeded, or failed after its hand-off): 1
 * when its claim is kept because its message's ack has not landed yet.
 */
int		 dtask_hold(struct dtask *);

/* Pool p's name as a claim's pool label shows it (malloc'd). */
char		*dpool_label(const struct dpool *);
/* Whether t came from pool p, by name (t->pool_name; 1 when unknown). */
int		 dpool_is_of(const struct dpool *, const struct dtask *);

/* dispatch_ns.c: namespaces, intake, admission, deferral. */
struct dtask	*dns_find(const struct dns *, const char *id);
void		 dns_insert(struct dns *, struct dtask *);
void		 dns_remove(struct dns *, struct dtask *);
void		 dtask_undefer(struct dtask *);
/*
 * Admission of t, holding its message, against the namespace's AgentQuota
 * (lineage from t->parent's record): 1 admitted (the caller claims, with
 * dtask_go), 0 deferred (queued) or rejected (failed: dtask_fail).
 */
int		 dtask_admit(struct dtask *);
/* Fills qt and qr (TASK_MAX_RESOURCES) to point into t and res. */
void		 dtask_quota_task(const struct dtask *,
		    const struct task_resource *, size_t, struct quota_task *,
		    struct quota_res *);
void		 dns_pump(struct dns *);
void		 dns_kick(struct dns *);
void		 dispatcher_kick_cb(struct ev_loop *, ev_timer *, int);
void		 dpool_start(struct dpool *);
/* Finds or makes the namespace (and starts its claim informer). */
struct dns	*dns_get(struct dispatcher *, const char *name);
/* The namespace, or NULL: a lookup (d->nss_byname). */
struct dns	*dns_lookup(const struct dispatcher *, const char *name);
void		 dns_free(struct dns *);

/* dispatch_claim.c: SandboxClaims and the sweep. */
void		 dtask_claim(struct dtask *);
void		 dtask_release(struct dtask *);
/* After the hand-off: a failure (counted, Event), then released. */
void		 dtask_sandbox_failed(struct dtask *, const char *reason,
		    const char *detail);
void		 dns_claim_event(struct informer *, enum informer_event,
		    const cJSON *, void *);
void		 dispatcher_sweep(struct ev_loop *, ev_timer *, int);
/* Notes whether a response of ns's API server came (outage tracking). */
void		 dns_api_note(struct dns *, const struct k8s_response *);

/* dispatch_warm.c: warm pool sizing glue, template reads. */
long		 dns_spares(const struct dns *);
/* After p's spare_patched or ws.target changed: its namespace's spares. */
void		 dpool_respare(struct dpool *);
void		 dns_replicas(struct dns *);
void		 dpool_size(struct dpool *, double now);
void		 dpool_template(struct dpool *, double now);

/* dispatch_mark.c: hand-off markers kept in memory. */
struct dmarks	*dmarks_new(void);
void		 dmarks_free(struct dmarks *);
/* Sets (or renews) the marker of (ns, id) for ttl seconds from now. */
void		 dmarks_add(struct dmarks *, const char *ns, const char *id,
		    const char *sandbox, double ttl, double now);
/* The sandbox the task went to, or NULL when no live marker. */
const char	*dmarks_find(struct dmarks *, const char *ns, const char *id,
		    double now);
size_t		 dmarks_count(const struct dmarks *);

/* dispatch_http.c: handoff.mode http (docs/protocol.md section 8). */
int		 dpool_http(const struct dpool *);
/* The pool's client and results publisher, when it hands off over http. */
void		 dpool_http_init(struct dpool *);
void		 dpool_http_fini(struct dpool *);
/* Reads the token key (NULL or unreadable: a random one). */
void		 dispatcher_http_key(struct dispatcher *, const char *file);
/* Hands t (holding its message) off: PUT, ack, follow, publish, release. */
void		 dhttp_handoff(struct dtask *);
/* t is known from its claim only, and Ready: follow it from after=0. */
void		 dhttp_resume(struct dtask *);
/*
 * t's sandbox ended (PodSucceeded: succeeded) while t is followed: its
 * Result is published and it is released here.  Returns 0 when t is not
 * a task of this kind (nothing done).
 */
int		 dhttp_ended(struct dtask *, int succeeded, const char *reason,
		    const char *detail);
/* Cancels what t's protocol state has in flight and frees it. */
void		 dhttp_free(struct dtask *);
/*
 * A child spawned through the protocol (t->spawn_key) was deferred, had
 * its claim made, or failed before any runtime took it: its parent's
 * runtime is told (Reply deferred, admitted; rejected, or a failed Result
 * once admitted).  Nothing for any other task.
 */
void		 dhttp_child_deferred(struct dtask *, const char *reason,
		    const char *detail);
void		 dhttp_child_admitted(struct dtask *);
void		 dhttp_child_failed(struct dtask *, const char *reason,
		    const char *detail);

/*
 * dispatch_trace.c: a task's spans (nothing when d->otlp is NULL).
 * dtask_trace_new() at its arrival, dtask_trace_state() on each state
 * change (dtask_set_state()), dtask_trace_end() when its record is freed.
 */
void		 dtask_trace_new(struct dtask *);
void		 dtask_trace_state(struct dtask *, enum tstate);
void		 dtask_trace_end(struct dtask *);
/* The task span as a traceparent for the runtime; -1 without tracing. */
int		 dtask_trace_parent(struct dtask *, char out[56]);
#ifdef AS_TESTING
struct trace_span;
/* Test builds only: sees every span as it is finished. */
extern void	(*dispatch_span_hook)(const struct trace_span *);
#endif

/*
 * The log fields (log_kv()) of task t, with reason (may be NULL): its pool,
 * namespace, id, claim and, once its claim was asked for, the
 * milliseconds since (duration_ms).
 */
#define DTASK_LOG(t, r) (&(struct log_fields){				\
	.pool = (t)->pool != NULL ? (t)->pool->cfg->name : (t)->pool_name,	\
	.ns = (t)->ns->name, .task = (t)->id,				\
	.claim = (t)->claim[0] != '\0' ? (t)->claim : NULL, .reason = (r),	\
	.duration_ms = (as_mono_now() - (t)->t_claim) * 1e3,		\
	.has_duration = (t)->t_claim > 0 })
/* The log fields of pool p, about task id (may be NULL), with reason. */
#define DPOOL_LOG(p, id, r) (&(struct log_fields){			\
	.pool = (p)->cfg->name, .ns = (p)->cfg->ns, .task = (id),	\
	.reason = (r) })

/* dispatch_metrics.c: observability. */
void		 dpool_event(struct dpool *, int, const char *, const char *,
		    const char *, ...) __attribute__((format(printf, 5, 6)));
/*
 * After the sweep: when what p's CRD status reports changed since it was
 * last noted, d->status is told.
 */
void		 dpool_status_note(struct dpool *);
/*
 * dispatch_recent.c: notes a rejection or dead letter in d->recent (for
 * explain, /status and the page) and, when a ConfigMap keeps them, has it
 * written a second later.
 */
void		 dispatch_recent_add(struct dispatcher *, const char *ns,
		    const char *id, const char *reason, const char *detail);
/* Puts an entry of time wall in d->recent, and nothing else. */
void		 dispatch_recent_put(struct dispatcher *, const char *ns,
		    const char *id, const char *reason, const char *detail,
		    double wall);
/*
 * Keeps the newest rejections in the ConfigMap ns/name: reads it now (what
 * it holds goes into d->recent before what arrived meanwhile) and writes
 * it after changes.  Stopping with save sends the last unsaved change on
 * its own (it outlives d, after the write in flight) and frees the rest;
 * without save nothing more is sent (the write in flight is cancelled).
 * Returns dispatcher_free_save()'s handle.
 */
void		 dispatch_recent_store_start(struct dispatcher *,
		    const char *ns, const char *name);
struct dispatcher_save *dispatch_recent_store_stop(struct dispatcher *,
		    int save, dispatcher_saved_fn *done, void *arg);

#endif
