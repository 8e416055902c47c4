/*
 * daemon_state.h: the state of the running daemon, private to its files:
 * daemon.c (start, config, leadership, signals, shutdown), pool.c (the
 * scale pools, which read and write it) and daemon_http.c (the endpoints,
 * which read it).  The calls go one way, daemon.c -> daemon_http.c ->
 * pool.c; what the lower files need of the upper one is inline here.
 *
 * Ownership: daemon_run() owns the struct and everything it points to.
 */
#ifndef AGENTSCALER_DAEMON_STATE_H
#define AGENTSCALER_DAEMON_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "agentscaler/k8s/leader.h"
#include "agentscaler/rt/hash.h"
#include "agentscaler/rt/prom.h"
#include "daemon.h"
#include "dispatch.h"

struct config;
struct crd;
struct http_server;
struct k8s_client;
struct pool;
struct secret_store;
struct owners;
struct targets;

struct daemon {
	struct ev_loop		*loop;
	const struct daemon_options *opts;
	struct config		*config;
	struct pool		**pools;
	size_t			 npools;
	/*
	 * Indexes of the pools (pool.c), rebuilt by pool_apply_config(): by
	 * (namespace, name), and the pools of each namespace (struct
	 * pool_ns), so that nothing done for one pool walks all of them.
	 */
	struct as_hash		 pool_index;
	struct as_hash		 pool_nss;
	/*
	 * Pools visited by the loops of pool.c, all together: what a sweep
	 * costs, which a test (tests/check_pool.c) holds linear in npools.
	 */
	uint64_t		 pool_visits;
	/* AgentPool statuses pool.c said changed (crd_status_touch()). */
	uint64_t		 status_touches;
	/*
	 * Pools whose evaluation waits for the loop's next ev_prepare
	 * (pool.c, pool_evaluate_soon()), in order, and that watcher.
	 */
	struct pool		*pool_defer_head, *pool_defer_tail;
	ev_prepare		 pool_defer_w;
	struct k8s_client	*k8s;
	struct targets		*targets;	/* the scale pools' targets */
	struct owners		*owners;	/* their HPAs, ScaledObjects */
	struct dispatcher	*dispatch;
	struct otlp		*otlp;		/* traces, or NULL */
	struct http_server	*http;		/* --metrics-addr */
	struct http_server	*admin;		/* --admin-addr, or NULL */
	ev_signal		 sigterm, sigint, sighup;
	ev_timer		 trim;		/* daemon_trim_cb */
	uint64_t		 reloads_ok, reloads_failed;
	double			 started;
	/* The loop's lateness (daemon_http.c). */
	ev_timer		 lag_timer;
	double			 lag_due;
	struct prom_hist	 lag;
	struct crd		*crd;		/* CRD mode, else NULL */
	struct secret_store	*secrets;	/* CRD mode, else NULL */

	/* Leader election; elector NULL when off. */
	struct leader		*elector;
	struct k8s_client	*lease_k8s;	/* the elector's own client */
	int			 leading;	/* 1 without election */
	int			 releasing;	/* SIGTERM: Lease going */
	/*
	 * A clean stop's flush (daemon.c, daemon_drain()): what it waits
	 * for, and its deadline.
	 */
	int			 stopping;	/* SIGTERM or SIGINT came */
	int			 drain_expired;	/* the deadline passed */
	int			 drain_over;	/* the loop has stopped */
	struct dispatcher_save	*wait_rejections;	/* their last write */
	int			 wait_spans;	/* the exporter's flush */
	int			 wait_lease;	/* the Lease's release */
	ev_timer		 drain_timer;
	struct dispatch_options	 dopts;
	char			 rejections_cm[280];	/* its ConfigMap */
};
/*
 * 1 when this process may write to Kubernetes now: always without leader
 * election; with it, while it holds the Lease within its renew deadline,
 * read from the clock at this call (leader_is_leader()), so a write is
 * refused even before the elector's timers have run.
 */
static inline int
daemon_may_write(const struct daemon *d)
{
	return (d->leading && (d->elector == NULL ||
	    leader_is_leader(d->elector)));
}

#endif
