/*
 * daemon.c: the process: one libev loop, started, reconfigured and
 * stopped here.  The pools of scale mode are pool.c's, the HTTP endpoints
 * daemon_http.c's, the dispatcher dispatch*.c's and CRD mode crd.c's; the
 * state they share is struct daemon (daemon_state.h).
 *
 * Config: a file (--config, reloaded on SIGHUP; a bad one is refused and
 * the running one kept) or, without one, CRD mode, where the informers
 * build it from the AgentPool and AgentQuota objects and daemon_crd_apply()
 * swaps it in as they change.
 *
 * Leader election (--leader-elect, k8s/leader.c): d->leading is 1 while
 * this process may write, always 1 without election.  A standby polls its
 * sources, reads its targets and runs the maths (so its stabilization
 * windows are warm), but every write site asks daemon_may_write() first,
 * which also reads the elector's clock (status and Event writes too: the
 * CRD mode's writers ask it at each write through crd_options), and the
 * dispatcher (consumers, claims, warm-pool sizing) exists only while
 * leading.  Stopping to lead cancels the writes in flight and frees the
 * dispatcher: held messages go back to their sources.
 *
 * A clean stop (SIGTERM, SIGINT) flushes before it frees (daemon_drain()):
 * the writes stop, the dispatcher goes (its tasks' last spans are made
 * then, and its rejections not yet in their ConfigMap are sent, if this
 * process still leads), the exporter sends every span it holds, and the
 * loop runs until both ended, DAEMON_DRAIN_WAIT at most.  The Lease is
 * released once the rejections are written, so the next leader reads
 * them; then the loop stops.  Their write is abandoned (the one in
 * flight cancelled, the one queued dropped) when the Lease is lost
 * meanwhile or the deadline passes first: none lands once another may
 * lead.  A second signal stops it at once.
 */
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "agentscaler/k8s/k8s.h"
#include "agentscaler/k8s/leader.h"
#include "agentscaler/k8s/secret_store.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/rt/otlp.h"
#include "config.h"
#include "crd.h"
#include "daemon.h"
#include "daemon_http.h"
#include "daemon_state.h"
#include "dispatch.h"
#include "owners.h"
#include "pool.h"
#include "targets.h"

static void	 daemon_apply(struct daemon *, struct config *);
static void	 daemon_drain_step(struct daemon *);

/* daemon_may_write() for crd.h: status and Event writes ask it too. */
static int
daemon_may_write_cb(void *arg)
{
	return (daemon_may_write(arg));
}

/*
 * Swaps in a new config: the scale pools (pool_apply_config()), then the
 * dispatcher's.  Takes ownership of nc.
 */
static void
daemon_apply(struct daemon *d, struct config *nc)
{
	size_t	 i;

	for (i = 0; i < nc->npools && d->opts->shadow; i++)
		nc->pools[i].shadow = 1;
	pool_apply_config(d, nc);
	if (d->dispatch != NULL)
		dispatcher_apply(d->dispatch, nc);
	config_free(d->config);
	d->config = nc;
	log_info("daemon", "config loaded: %zu pools, %zu quotas", nc->npools,
	    nc->nquotas);
}

#define DAEMON_TRIM_FIRST 10.0	/* s after start: the first lists are in */
#define DAEMON_TRIM_EVERY 60.0

/*
 * Hands the heap's free pages back to the system now and then: the start
 * (a config file's tree, the first LISTs, a large /status) and every
 * re-list leave megabytes free between live blocks, which glibc keeps
 * mapped; malloc_trim() releases them (issue 15: RSS is what a memory
 * limit counts).  A walk of the heap, a few milliseconds at 10,000 pools.
 */
static void
daemon_trim_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static void
daemon_reload(struct daemon *d)
{
	struct config	*nc;
	char		 err[512];

	if (d->crd != NULL) {
		log_info("daemon", "CRD mode: nothing to reload, AgentPool and "
		    "AgentQuota changes apply as they happen");
		return;
	}
	if (config_load(d->opts->config_path, d->opts->secrets_dir, &nc, err,
	    sizeof err) != 0) {
		d->reloads_failed++;
		log_error("daemon", "reload refused, keeping the running "
		    "config: %s", err);
		return;
	}
	d->reloads_ok++;
	daemon_apply(d, nc);
}

/* Leader election. */

/*
 * The elector's started callback: the writes begin.  Each scale pool reads
 * its target again before its first write (the old leader may have changed
 * it after our last read), and the dispatcher starts: it lists the claims,
 * rebuilds the live tasks, then consumes (adopting the Redis processing
 * lists of other instances, now orphans).
 */
static void
daemon_start_leading(struct leader *l, void *arg)
{
	struct daemon	*d = arg;

	(void)l;
	if (d->leading || d->stopping)
		return;
	d->leading = 1;
	log_info("daemon", "leader: writing to Kubernetes and consuming tasks");
	pool_forget_targets(d);
	pool_evaluate_all(d);
	if (d->dispatch == NULL) {
		d->dispatch = dispatcher_new(d->loop, d->k8s, &d->dopts);
		dispatcher_apply(d->dispatch, d->config);
	}
}

/*
 * The elector's stopped callback (renew deadline passed, Lease lost or
 * being released): no write may go out from here on.  Requests in flight
 * are cancelled; the dispatcher goes, its consumers with it, so the
 * messages it held return to their sources for the next leader.
 */
static void
daemon_stop_leading(struct leader *l, void *arg)
{
	struct daemon	*d = arg;

	(void)l;
	/*
	 * Lost during a stop (daemon_drain() already cleared d->leading):
	 * the rejections' last write, in flight or queued, goes no further.
	 */
	if (d->stopping)
		dispatcher_save_abandon(d->wait_rejections);
	if (!d->leading)
		return;
	d->leading = 0;
	pool_forget_targets(d);
	crd_hold(d->crd);	/* status, Events in flight */
	/* A standby writes nothing: the unsaved rejections are dropped. */
	(void)dispatcher_free_save(d->dispatch, 0, NULL, NULL);
	d->dispatch = NULL;
	log_warn("daemon", "standby: no more writes to Kubernetes, no tasks "
	    "consumed");
}

/*
 * Starts campaigning.  The elector gets a Kubernetes client of its own:
 * no retries (its retry period is the retry) and a timeout of half the
 * renew deadline, so a renewal never waits behind other requests in the
 * shared rate limiter nor outlives the term it is meant to extend.
 */
static int
daemon_elect(struct daemon *d)
{
	struct k8s_options ko = d->opts->k8s;
	struct leader_options lo = d->opts->leader;
	char		 err[512];

	lo.identity = d->opts->instance;
	ko.max_retries = -1;
	if (ko.timeout <= 0 || ko.timeout > lo.renew_deadline / 2)
		ko.timeout = lo.renew_deadline / 2;
	if ((d->lease_k8s = k8s_client_new(d->loop, &ko, err,
	    sizeof err)) == NULL) {
		log_error("daemon", "kubernetes client (leader election): %s",
		    err);
		return (-AS_EINVAL);
	}
	d->elector = leader_new(d->lease_k8s, &lo, daemon_start_leading,
	    daemon_stop_leading, d, err, sizeof err);
	if (d->elector == NULL) {
		log_error("daemon", "leader election: %s", err);
		return (-AS_EINVAL);
	}
	return (0);
}

static void
daemon_released(struct leader *l, int err, void *arg)
{
	struct daemon	*d = arg;

	(void)l;
	if (err != 0)
		log_warn("daemon", "the Lease was not released (%s); the "
		    "standby takes over when it expires", as_strerror(err));
	d->wait_lease = 0;
	daemon_drain_step(d);
}

/* A clean stop's flush. */

static void
daemon_rejections_saved(void *arg)
{
	struct daemon	*d = arg;

	d->wait_rejections = NULL;
	daemon_drain_step(d);
}

static void
daemon_spans_flushed(void *arg)
{
	struct daemon	*d = arg;

	d->wait_spans = 0;
	daemon_drain_step(d);
}

/*
 * The next step of the stop: the Lease goes once the rejections are
 * written (or the deadline passed: their write is abandoned first, so
 * none lands after the release), the loop stops once the Lease is
 * released and the spans are sent (or the deadline passed).
 */
static void
daemon_drain_step(struct daemon *d)
{
	if (d->drain_over || (d->wait_rejections && !d->drain_expired))
		return;
	if (d->wait_rejections != NULL) {
		/* Its done runs now and steps again. */
		dispatcher_save_abandon(d->wait_rejections);
		return;
	}
	if (d->elector != NULL && !d->releasing) {
		d->releasing = 1;
		d->wait_lease = 1;
		if (leader_release(d->elector, DAEMON_RELEASE_WAIT,
		    daemon_released, d) == 0)
			return;
		d->wait_lease = 0;
	}
	if (d->wait_lease || (d->wait_spans && !d->drain_expired))
		return;
	ev_break(d->loop, EVBREAK_ALL);
}

static void
daemon_drain_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon	*d = w->data;

	(void)loop;
	(void)revents;
	d->drain_expired = 1;
	if (d->wait_rejections || d->wait_spans)
		log_warn("daemon", "stopping: still sending after %.0f s "
		    "(%s%s%s); exiting without waiting more", DAEMON_DRAIN_WAIT,
		    d->wait_rejections ? "the rejections ConfigMap" : "",
		    d->wait_rejections && d->wait_spans ? ", " : "",
		    d->wait_spans ? "the spans" : "");
	daemon_drain_step(d);
}

/*
 * The first SIGTERM or SIGINT: nothing writes from here on but the
 * flush.  The dispatcher goes first (freeing its tasks ends their spans;
 * its rejections' last write is sent while this process still leads),
 * then the exporter sends what it holds; daemon_drain_step() waits for
 * both, DAEMON_DRAIN_WAIT at most.
 */
static void
daemon_drain(struct daemon *d)
{
	struct dispatcher *dp = d->dispatch;
	int		 save = daemon_may_write(d);

	d->stopping = 1;
	ev_timer_start(d->loop, &d->drain_timer);
	d->leading = 0;
	crd_hold(d->crd);	/* status, Events */
	d->dispatch = NULL;
	d->wait_rejections = dispatcher_free_save(dp, save,
	    daemon_rejections_saved, d);
	d->wait_spans = otlp_flush(d->otlp, daemon_spans_flushed, d);
	daemon_drain_step(d);
}

static void
daemon_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon	*d = w->data;

	(void)revents;
	if (w->signum == SIGHUP) {
		log_info("daemon", "SIGHUP: reloading %s",
		    d->opts->config_path != NULL ? d->opts->config_path :
		    "(CRD mode)");
		daemon_reload(d);
		return;
	}
	/*
	 * Stop writing, flush, then hand the Lease over (each bounded), so
	 * the standby need not wait for it to expire.  A second signal does
	 * not wait.
	 */
	if (d->stopping) {
		log_info("daemon", "%s again: exiting now", w->signum ==
		    SIGTERM ? "SIGTERM" : "SIGINT");
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	log_info("daemon", "%s: stopping", w->signum == SIGTERM ? "SIGTERM" :
	    "SIGINT");
	daemon_drain(d);
}

/* CRD mode (crd.h): the objects' config, status snapshots, Events. */

static void
daemon_crd_apply(void *arg, struct config *c)
{
	struct daemon	*d = arg;
	const struct pool_config *p;
	size_t		 i;

	/*
	 * Read the pools' Secrets now, so their first connect finds them;
	 * forget those no pool names any more.
	 */
	secret_store_begin(d->secrets);
	for (i = 0; i < c->npools; i++) {
		p = &c->pools[i];
		if (p->source.password_secret != NULL)
			secret_store_want(d->secrets, p->source.secret_ns !=
			    NULL ? p->source.secret_ns : p->ns,
			    p->source.secret_name);
		if (p->has_results && p->results.password_secret != NULL)
			secret_store_want(d->secrets, p->results.secret_ns !=
			    NULL ? p->results.secret_ns : p->ns,
			    p->results.secret_name);
	}
	secret_store_end(d->secrets);
	daemon_apply(d, c);
}

static void
daemon_dispatch_event(void *arg, const char *kind, const char *ns,
    const char *name, int warning, const char *reason, const char *action,
    const char *note)
{
	struct daemon	*d = arg;

	crd_event(d->crd, kind, ns, name, warning ? EVENT_WARNING :
	    EVENT_NORMAL, reason, action, "%s", note);
}

/* A dispatch pool's status changed: its AgentPool's is made again. */
static void
daemon_dispatch_status(void *arg, const char *ns, const char *name)
{
	struct daemon	*d = arg;

	crd_status_touch(d->crd, ns, name);
}

/*
 * --otlp-endpoint: the exporter of the tasks' spans, under the resource
 * service.name agentscaler and, when the chart passes them (the downward
 * API), the pod's namespace and name (OTel semantic conventions,
 * resource/k8s.md).  Returns 0, or -1 with the reason logged.
 */
static int
daemon_otlp(struct daemon *d)
{
	struct trace_resource	 res[] = {
		{ "service.name", "agentscaler" },
		{ "service.version", as_version },
		{ "service.instance.id", d->opts->instance },
		{ "k8s.namespace.name", getenv("POD_NAMESPACE") },
		{ "k8s.pod.name", getenv("POD_NAME") },
	};
	struct otlp_options	 o;
	char			 err[256];

	memset(&o, 0, sizeof o);
	o.endpoint = d->opts->otlp_endpoint;
	o.resource = res;
	o.nresource = AS_ARRAY_SIZE(res);
	if ((d->otlp = otlp_new(d->loop, &o, err, sizeof err)) == NULL) {
		log_error("daemon", "--otlp-endpoint: %s", err);
		return (-1);
	}
	log_info("daemon", "exporting traces to %s", o.endpoint);
	return (0);
}

int
daemon_run(const struct daemon_options *opts)
{
	struct daemon	 d;
	struct crd_options copts;
	struct targets_options topts;
	struct owners_options oopts;
	struct config	*c = NULL;
	char		 err[512];
	int		 rc = DAEMON_EXIT_FAIL;

	memset(&d, 0, sizeof d);
	memset(&copts, 0, sizeof copts);
	d.opts = opts;
	d.started = as_mono_now();
	if (opts->config_path == NULL)
		c = config_new();	/* CRD mode: filled by the informers */
	else if (config_load(opts->config_path, opts->secrets_dir, &c, err,
	    sizeof err) != 0) {
		log_error("daemon", "bad config: %s", err);
		return (DAEMON_EXIT_CONFIG);
	}
	d.loop = ev_default_loop(EVFLAG_AUTO);
	if ((d.k8s = k8s_client_new(d.loop, &opts->k8s, err,
	    sizeof err)) == NULL) {
		log_error("daemon", "kubernetes client: %s", err);
		rc = DAEMON_EXIT_CONFIG;
		goto out;
	}
	/*
	 * The scale pools' targets: one watch per kind across the cluster
	 * when the AgentPools come from every namespace, else one per (kind,
	 * namespace) of the pools (the rule and why: targets.c).
	 */
	memset(&topts, 0, sizeof topts);
	memset(&oopts, 0, sizeof oopts);
	topts.cluster_wide = opts->config_path == NULL &&
	    opts->watch_namespace == NULL;
	d.targets = targets_new(d.k8s, &topts);
	/* Who else scales them (HPAs, ScaledObjects): the same rule. */
	oopts.cluster_wide = topts.cluster_wide;
	d.owners = owners_new(d.k8s, &oopts);
	if (opts->resync_seconds > 0)
		log_warn("daemon", "--resync-seconds is deprecated and ignored: "
		    "the targets' replicas come from watches, never re-read");
	d.dopts.instance = opts->instance;
	d.dopts.handoff_key_file = opts->handoff_key_file;
	d.dopts.pod_cidrs = opts->tenancy.pod_cidrs;
	d.dopts.npod_cidrs = opts->tenancy.npod_cidrs;
	if (opts->otlp_endpoint != NULL && opts->otlp_endpoint[0] != '\0' &&
	    daemon_otlp(&d) != 0) {
		rc = DAEMON_EXIT_CONFIG;
		goto out;
	}
	d.dopts.otlp = d.otlp;
	d.dopts.event = daemon_dispatch_event;
	d.dopts.event_arg = &d;
	d.dopts.status = daemon_dispatch_status;
	d.dopts.status_arg = &d;
	/*
	 * With or without election: a restarted pod has a new name, and the
	 * lists of dead instances are orphans.  A live instance's list is
	 * never taken (its heartbeat, scalers/redis_consume.c).
	 */
	d.dopts.adopt = 1;
	/*
	 * The newest rejections outlive a restart and a change of leader in
	 * a ConfigMap beside the Lease (dispatch_recent.c; README "explain").
	 */
	snprintf(d.rejections_cm, sizeof d.rejections_cm, "%s-rejections",
	    opts->leader.name);
	/*
	 * Only with --leader-elect: the chart grants the ConfigMap beside
	 * the Lease with leader election; a single replica keeps them in
	 * memory.
	 */
	if (opts->leader_elect) {
		d.dopts.rejections_ns = opts->leader.ns;
		d.dopts.rejections_name = d.rejections_cm;
	}
	if (!opts->leader_elect) {
		d.leading = 1;
		d.dispatch = dispatcher_new(d.loop, d.k8s, &d.dopts);
	}
	if (daemon_http_start(&d) != 0)
		goto out;

	ev_signal_init(&d.sigterm, daemon_signal_cb, SIGTERM);
	ev_signal_init(&d.sigint, daemon_signal_cb, SIGINT);
	ev_signal_init(&d.sighup, daemon_signal_cb, SIGHUP);
	d.sigterm.data = d.sigint.data = d.sighup.data = &d;
	ev_signal_start(d.loop, &d.sigterm);
	ev_signal_start(d.loop, &d.sigint);
	ev_signal_start(d.loop, &d.sighup);
	ev_timer_init(&d.trim, daemon_trim_cb, DAEMON_TRIM_FIRST,
	    DAEMON_TRIM_EVERY);
	ev_timer_start(d.loop, &d.trim);
	ev_timer_init(&d.drain_timer, daemon_drain_timeout_cb,
	    DAEMON_DRAIN_WAIT, 0);
	d.drain_timer.data = &d;

	daemon_apply(&d, c);
	c = NULL;
	if (opts->config_path == NULL) {
		copts.watch_namespace = opts->watch_namespace;
		copts.tenancy = &opts->tenancy;
		/*
		 * Broker credentials come from Secrets of the pools' own
		 * namespaces, through the API (secret_store.h).
		 */
		d.secrets = secret_store_new(d.k8s);
		as_secret_provider(secret_store_lookup, d.secrets);
		copts.instance = opts->instance;
		copts.may_write = daemon_may_write_cb;
		copts.apply = daemon_crd_apply;
		copts.pool_status = pool_crd_status;
		copts.quota_status = pool_crd_quota_status;
		copts.arg = &d;
		if ((d.crd = crd_new(d.loop, d.k8s, &copts, err,
		    sizeof err)) == NULL) {
			log_error("daemon", "CRD mode: %s", err);
			goto out;
		}
	}
	if (opts->leader_elect && daemon_elect(&d) != 0) {
		rc = DAEMON_EXIT_CONFIG;
		goto out;
	}
	ev_run(d.loop, 0);
	d.drain_over = 1;
	rc = DAEMON_EXIT_OK;
	log_info("daemon", "stopped");
out:
	crd_free(d.crd);
	pool_free_all(&d);
	targets_free(d.targets);
	owners_free(d.owners);
	as_secret_provider(NULL, NULL);
	secret_store_free(d.secrets);
	/* Here only when the loop never ran: a failed start, nothing kept. */
	(void)dispatcher_free_save(d.dispatch, 0, NULL, NULL);
	otlp_free(d.otlp);	/* after the tasks' last spans */
	leader_free(d.elector);
	k8s_client_free(d.lease_k8s);
	config_free(d.config);
	config_free(c);
	daemon_http_stop(&d);
	k8s_client_free(d.k8s);
	if (d.loop != NULL) {
		ev_signal_stop(d.loop, &d.sigterm);
		ev_signal_stop(d.loop, &d.sigint);
		ev_signal_stop(d.loop, &d.sighup);
		ev_timer_stop(d.loop, &d.trim);
		ev_timer_stop(d.loop, &d.drain_timer);
		/* Let cancelled transfers and freed contexts settle. */
		ev_run(d.loop, EVRUN_NOWAIT);
		ev_loop_destroy(d.loop);
	}
	return (rc);
}
