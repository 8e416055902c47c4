/*
 * dispatch_ns.c: a namespace (struct dns): its task table (chained hashing
 * on the task id), the messages its pools' consumers deliver, admission of
 * each task against the namespace's AgentQuota (quota.h) on what it is
 * charged (charge.h), and the two deferred FIFOs with their pump.
 *
 * Ownership: a namespace is made by the first pool that names it (dns_get)
 * and freed, with its tasks, by the last one (dns_free).  A deferred task
 * keeps its message unacked and sits on one FIFO (t->dq) until it is
 * admitted, rejected or freed; dtask_undefer() takes it off.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "charge.h"
#include "agentscaler/rt/common.h"
#include "config.h"
#include "agentscaler/scalers/consumer.h"
#include "agentscaler/k8s/informer.h"
#include "agentscaler/rt/log.h"
#include "quota.h"
#include "task.h"
#include "warmpool.h"

#include "dispatch_int.h"

#define MAX_DEFERRED	10000	/* per namespace; then backpressure */
#define PUMP_MAX	1000	/* deferred tasks re-checked per pump */

static void	 dpool_window(struct dpool *);

/* The task table of a namespace: the rt hash table on the task id. */

struct dtask *
dns_find(const struct dns *ns, const char *id)
{
	return (AS_HASH_ITEM(as_hash_find(&ns->byid, task_hash("", id), id),
	    struct dtask, hlink));
}

void
dns_insert(struct dns *ns, struct dtask *t)
{
	as_hash_insert(&ns->byid, &t->hlink, task_hash("", t->id));
	TAILQ_INSERT_TAIL(&ns->tasks, t, all);
	ns->ntasks++;
}

void
dns_remove(struct dns *ns, struct dtask *t)
{
	as_hash_remove(&ns->byid, &t->hlink);
	TAILQ_REMOVE(&ns->tasks, t, all);
	ns->ntasks--;
}

/* Takes a deferred task out of its queue. */
void
dtask_undefer(struct dtask *t)
{
	struct dns	*ns = t->ns;

	if (t->parent != NULL)
		TAILQ_REMOVE(&ns->defer_desc, t, dq);
	else
		TAILQ_REMOVE(&ns->defer_roots, t, dq);
	ns->ndeferred--;
	if (t->pool != NULL) {
		t->pool->deferred--;
		dpool_window(t->pool);
	}
}

/*
 * A task the quota deferred or rejected: an Event under the reason's
 * Event reason (quota_reason_event: CascadeRejected for cascade.* limits,
 * QuotaExceeded for the others), on the pool and on the namespace's
 * AgentQuota; none for a reason that has no Event.
 */
static void
dtask_quota_event(struct dtask *t, enum quota_reason why, const char *detail,
    int rejected)
{
	struct dispatcher *d = t->ns->d;
	const struct quota_config *qc;
	const char	*reason;
	char		 note[512];

	if (d->event == NULL || (reason = quota_reason_event(why)) == NULL)
		return;
	snprintf(note, sizeof note, "task %s %s: %s: %s", t->id, rejected ?
	    "rejected" : "deferred", quota_reason_name(why), detail);
	as_utf8_trim(note);
	if (t->pool != NULL)
		d->event(d->event_arg, "AgentPool", t->ns->name,
		    t->pool->cfg->name, 1, reason, "Admit", note);
	if ((qc = config_quota_for(d->config, t->ns->name)) != NULL)
		d->event(d->event_arg, "AgentQuota", t->ns->name, qc->name, 1,
		    reason, "Admit", note);
}

void
dtask_quota_task(const struct dtask *t, const struct task_resource *res,
    size_t nres, struct quota_task *qt, struct quota_res *qr)
{
	size_t	 i;

	for (i = 0; i < nres && i < TASK_MAX_RESOURCES; i++) {
		qr[i].name = res[i].name;
		qr[i].value = res[i].value;
	}
	memset(qt, 0, sizeof *qt);
	qt->id = t->id;
	qt->parent = t->parent;
	qt->root = t->root;
	qt->depth = t->depth;
	qt->res = qr;
	qt->nres = i;
}

/*
 * What the task is charged (charge.h): its requests against the pool's
 * floor, which is spec.sandbox.defaultResources when set, else the
 * requests of the warm pool's SandboxTemplate as last read.  Until the
 * template has been read once, a namespace whose AgentQuota limits
 * resources cannot know the charge: the task waits (deferred,
 * sandbox.templateUnknown, whatever onExceeded says: it is the cluster's
 * wait, not the task's fault) rather than being charged less than its pod
 * will request.  Without resource limits nothing is at stake and the task
 * goes on with what is known.  Returns QUOTA_ADMIT with out filled, or
 * the verdict with qd filled.
 */
static enum quota_verdict
dtask_charge(struct dtask *t, struct task_resource *out, size_t *nout,
    struct quota_decision *qd)
{
	struct dpool	*p = t->pool;
	const struct quota_config *qc;
	struct task_resource def[TASK_MAX_RESOURCES];
	const struct task_resource *floor = NULL;
	size_t		 i, nfloor = 0;
	int		 n;

	memset(qd, 0, sizeof *qd);
	if (p != NULL && p->cfg->ndefault_resources > 0) {
		for (i = 0; i < p->cfg->ndefault_resources &&
		    i < TASK_MAX_RESOURCES; i++) {
			as_strlcpy(def[i].name,
			    p->cfg->default_resources[i].name,
			    sizeof def[i].name);
			def[i].value = p->cfg->default_resources[i].value;
		}
		floor = def;
		nfloor = i;
	} else if (p != NULL && p->tpl_known) {
		floor = p->tpl_res;
		nfloor = p->tpl_nres;
	} else if (p != NULL && (qc = config_quota_for(t->ns->d->config,
	    t->ns->name)) != NULL && qc->nresources > 0) {
		qd->verdict = QUOTA_DEFER;
		qd->reason = QUOTA_R_TEMPLATE_UNKNOWN;
		snprintf(qd->detail, sizeof qd->detail, "the requests of warm "
		    "pool %.48s's SandboxTemplate are not known yet: %.*s",
		    p->cfg->warm_pool, AS_UTF8_PREC(p->tpl_err[0] != '\0' ?
		    p->tpl_err : "not read yet", 100));
		return (QUOTA_DEFER);
	}
	if ((n = charge_task(t->res, t->nres, floor, nfloor, out)) < 0) {
		/* The task's own fault: qd->reason stays QUOTA_R_NONE. */
		qd->verdict = QUOTA_REJECT;
		snprintf(qd->detail, sizeof qd->detail, "\"resources\" and "
		    "the pool's requests name more than %d resources together",
		    TASK_MAX_RESOURCES);
		return (QUOTA_REJECT);
	}
	*nout = (size_t)n;
	return (QUOTA_ADMIT);
}

/*
 * Runs admission (quota.h) for a task holding its message, on what it is
 * charged (dtask_charge).  Returns 1 when admitted (the caller goes on to
 * claim; t->res is now the charge, which the claim's annotation carries),
 * 0 when it was deferred (queued, message kept unacked) or rejected
 * (dead-lettered).
 */
int
dtask_admit(struct dtask *t)
{
	struct dns	*ns = t->ns;
	struct quota_task qt;
	struct quota_res qr[TASK_MAX_RESOURCES];
	struct quota_decision qd;
	struct task_resource charged[TASK_MAX_RESOURCES];
	size_t		 ncharged = 0;
	double		 now = as_mono_now();

	switch (dtask_charge(t, charged, &ncharged, &qd)) {
	case QUOTA_ADMIT:
		dtask_quota_task(t, charged, ncharged, &qt, qr);
		quota_check(ns->quota, &qt, now, &qd);
		break;
	case QUOTA_REJECT:
		/* The task's own fault, not a quota decision. */
		if (t->st == T_DEFERRED)
			dtask_undefer(t);
		dtask_fail(t, "task.badResources", qd.detail);
		return (0);
	case QUOTA_DEFER:
		break;
	}
	if (qd.verdict == QUOTA_ADMIT) {
		quota_count(ns->quota, QUOTA_ADMIT, QUOTA_R_NONE);
		quota_admit(ns->quota, &qt, now);
		t->admitted = 1;
		t->why = QUOTA_R_NONE;
		free(t->res);
		t->res = NULL;
		t->nres = ncharged;
		if (ncharged > 0) {
			t->res = xcalloc(ncharged, sizeof *t->res);
			memcpy(t->res, charged, ncharged * sizeof *t->res);
		}
		return (1);
	}
	/* Idle warm spares hold the slots: a task comes before them. */
	if (qd.verdict == QUOTA_REJECT)
		(void)quota_spares_give_way(&qd, dns_spares(ns));
	if (qd.verdict == QUOTA_REJECT) {
		quota_count(ns->quota, QUOTA_REJECT, qd.reason);
		if (t->st == T_DEFERRED)
			dtask_undefer(t);
		dtask_quota_event(t, qd.reason, qd.detail, 1);
		dtask_fail(t, quota_reason_name(qd.reason), qd.detail);
		return (0);
	}
	/* Defer: keep the message, wait in the namespace's FIFO. */
	if (t->st != T_DEFERRED) {
		quota_count(ns->quota, QUOTA_DEFER, qd.reason);
		dtask_set_state(t, T_DEFERRED);
		if (t->parent != NULL)
			TAILQ_INSERT_TAIL(&ns->defer_desc, t, dq);
		else
			TAILQ_INSERT_TAIL(&ns->defer_roots, t, dq);
		ns->ndeferred++;
		if (t->pool != NULL) {
			t->pool->deferred++;
			dpool_window(t->pool);
		}
		if (t->why != qd.reason && t->pool != NULL)
			log_kv(LOG_INFO, "dispatch", DTASK_LOG(t,
			    quota_reason_name(qd.reason)),
			    "%s: task %s deferred: %s: %s",
			    t->pool->id, t->id, quota_reason_name(qd.reason),
			    qd.detail);
		dtask_quota_event(t, qd.reason, qd.detail, 0);
		dhttp_child_deferred(t, quota_reason_name(qd.reason),
		    qd.detail);
	}
	t->why = qd.reason;
	free(t->why_detail);
	t->why_detail = xstrdup(qd.detail);
	return (0);
}

/*
 * Re-checks deferred tasks, descendants first (they finish trees and free
 * what their parents wait for), in arrival order.  New roots are looked at
 * only when no descendant waits for namespace-wide capacity, so a stream of
 * roots cannot starve the trees already running.
 */
/*
 * One deferred queue: admits what fits, in order; returns 1 when a task
 * still waits for namespace-wide capacity (quota_reason_namespace_wide),
 * which later tasks would not fit either.  *n counts checks against
 * PUMP_MAX.
 */
static int
dns_pump_queue(struct dns *ns, struct dtask *t, int *n, int stop)
{
	struct dtask	*next;
	int		 blocked = 0;

	(void)ns;
	for (; t != NULL && *n < PUMP_MAX; t = next, (*n)++) {
		next = TAILQ_NEXT(t, dq);
		if (t->op || t->doomed)
			continue;
		if (dtask_admit(t)) {
			dtask_undefer(t);
			dtask_go(t);
		} else if (t->st == T_DEFERRED &&
		    quota_reason_namespace_wide(t->why)) {
			blocked = 1;
			if (stop)
				break;
		}
	}
	return (blocked);
}

void
dns_pump(struct dns *ns)
{
	int	 n = 0;

	ns->pump = 0;
	dns_replicas(ns);	/* spares may have shrunk since */
	if (!dns_pump_queue(ns, TAILQ_FIRST(&ns->defer_desc), &n, 0))
		(void)dns_pump_queue(ns, TAILQ_FIRST(&ns->defer_roots), &n, 1);
}

void
dispatcher_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dispatcher *d = w->data;
	struct dns	*ns;

	(void)loop;
	(void)revents;
	LIST_FOREACH(ns, &d->nss, entry)
		if (ns->pump)
			dns_pump(ns);
}

/* Capacity freed in ns: re-check its deferred tasks on the next turn. */
void
dns_kick(struct dns *ns)
{
	if (ns->ndeferred == 0 || ns->pump)
		return;
	ns->pump = 1;
	if (!ev_is_active(&ns->d->kick)) {
		ev_timer_set(&ns->d->kick, 0., 0.);
		ev_timer_start(ns->d->loop, &ns->d->kick);
	}
}

/*
 * The consumer's window: prefetch messages in progress, plus those
 * deferred (they wait in our FIFO, not in the broker); no more once the
 * namespace holds MAX_DEFERRED (backpressure to the source).
 */
static void
dpool_window(struct dpool *p)
{
	long	 w;

	if (p->cons == NULL)
		return;
	if (p->ns->ndeferred >= MAX_DEFERRED)
		w = p->deferred;
	else
		w = p->cfg->source.prefetch + p->deferred;
	if (w > 65535)
		w = 65535;
	p->ct->set_window(p->cons, (int)w);
}

/* Messages from a pool's consumer. */

static void
late_ack_done(int err, const char *errmsg, void *arg)
{
	struct dpool	*p = arg;

	if (err != 0 && err != -AS_ECANCELED)
		log_warn("dispatch", "%s: ack of a late redelivery failed, it "
		    "comes back: %s", p->id, errmsg);
}

/*
 * A message of a task that is being released and that this process never
 * handed off, though it may have run: known from its claim only (rebuilt
 * at start, or its hand-off cut off by a pool's replacement).  The
 * hand-off marker says whether it ran: then the message is acked; if not,
 * or when it cannot tell, dead-lettered, for the reason its claim failed
 * when known.  Never acked unseen.  The check, then its dead letter, is the
 * task's consumer operation (t->op): the record stays until it ends, so a
 * second copy meanwhile is refused, and no new record of the same id
 * starts an operation beside it.
 */
struct late_op {
	struct dpool		*p;
	struct dtask		*t;		/* held while the check runs */
	struct consumer_msg	*msg;
	char			 id[TASK_ID_MAX + 1];
	char			 reason[48];
	char			*detail;
};

static void
late_dead_letter(struct late_op *op, const char *why)
{
	char	 detail[512];

	if (op->detail != NULL)
		as_strlcpy_utf8(detail, op->detail, sizeof detail);
	else
		snprintf(detail, sizeof detail, "task %s was known from its "
		    "claim only, which is being released; %s", op->id, why);
	as_utf8_trim(detail);
	dpool_dead_letter(op->p, op->t, op->msg, op->reason, detail, op->id);
	op->msg = NULL;
}

static void
late_check_done(int err, int yes, const char *errmsg, void *arg)
{
	struct late_op	*op = arg;
	struct dtask	*t = op->t;

	t->op = 0;
	if (err == -AS_ECANCELED)
		consumer_msg_free(op->msg);	/* back to the broker */
	else if (err == 0 && yes) {
		log_kv(LOG_INFO, "dispatch", DPOOL_LOG(op->p, op->id, NULL),
		    "%s: task %s ran before; acking its "
		    "redelivered message", op->p->id, op->id);
		if (op->p->ct->ack(op->p->cons, op->msg, late_ack_done,
		    op->p) != 0)
			consumer_msg_free(op->msg);
	} else
		late_dead_letter(op, err != 0 ? errmsg :
		    "no hand-off marker says it ran");
	free(op->detail);
	free(op);
	if (t->doomed && !t->op)
		dtask_maybe_free(t);
}

static void
dpool_late_check(struct dpool *p, struct dtask *t, struct consumer_msg *msg,
    const char *id)
{
	struct late_op	*op;

	op = xcalloc(1, sizeof *op);
	op->p = p;
	op->t = t;
	op->msg = msg;
	as_strlcpy(op->id, id, sizeof op->id);
	if (t->fail_reason[0] != '\0') {
		as_strlcpy_utf8(op->reason, t->fail_reason, sizeof op->reason);
		op->detail = xstrdup(t->fail_detail != NULL ?
		    t->fail_detail : "");
		t->fail_reason[0] = '\0';	/* once */
	} else
		as_strlcpy(op->reason, "task.duplicate", sizeof op->reason);
	t->op = 1;
	if (p->ct->handed_off == NULL || p->ct->handed_off(p->cons,
	    p->ns->name, id, late_check_done, op) != 0) {
		t->op = 0;
		late_dead_letter(op, p->ct->handed_off == NULL ? "this source "
		    "keeps no hand-off marker to tell whether it ran" :
		    "the hand-off marker cannot be read");
		free(op->detail);
		free(op);
	}
}

static void
dpool_deliver(struct consumer *c, struct consumer_msg *msg, void *arg)
{
	struct dpool	*p = arg;
	struct dns	*ns = p->ns;
	struct task	*tk;
	struct task_error te;
	struct dtask	*t, *par;
	char		 detail[640];
	double		 now = as_mono_now();
	long		 before = p->ws.target;

	(void)c;
	p->received++;
	if (msg->redelivered)
		p->redelivered++;
	warmpool_arrival(&p->ws, &p->wp, now, 1);
	if (before == 0)
		dpool_size(p, now);	/* wake the pool in this tick */
	tk = xmalloc(sizeof *tk);
	if (msg->truncated) {
		snprintf(detail, sizeof detail, "the message is %" PRIu64 " "
		    "bytes, more than the limit of %ld; the record keeps its "
		    "first bytes, its size and its SHA-256", msg->size,
		    p->cfg->max_task_bytes);
		dpool_dead_letter(p, NULL, msg, "task.tooLarge", detail, NULL);
		goto out;
	}
	if (task_parse(msg->body, msg->len, (size_t)p->cfg->max_task_bytes,
	    tk, &te) != 0) {
		/* task_parse keeps a valid id: the record names the task. */
		dpool_dead_letter(p, NULL, msg, te.reason, te.detail,
		    tk->id[0] != '\0' ? tk->id : NULL);
		goto out;
	}
	if (tk->deadline > 0 && tk->deadline < as_wall_now()) {
		dpool_dead_letter(p, NULL, msg, "task.deadlineExceeded",
		    "the task's deadline passed before it was dispatched",
		    tk->id);
		goto out;
	}
	if ((t = dns_find(ns, tk->id)) != NULL) {
		if ((t->pool != NULL && t->pool != p) || (t->pool == NULL &&
		    !dpool_is_of(p, t))) {
			/*
			 * Task ids are unique in a namespace (DESIGN.md 6):
			 * another pool's live task is not this message's,
			 * and nothing of it goes through the other pool's
			 * consumer.  So too when that pool was removed and
			 * its task lives on (dpool_free): it ran from the
			 * other pool's message, never from this one.
			 */
			snprintf(detail, sizeof detail, "task %s is live in "
			    "pool %s/%s; task ids are unique in a namespace",
			    tk->id, ns->name, t->pool_name);
			dpool_dead_letter(p, NULL, msg, "task.duplicate",
			    detail, tk->id);
		} else if (dtask_msg_void(t)) {
			/*
			 * The task's message came on a connection that is gone
			 * (the state callback has not said so yet): this is
			 * it again.  It takes the place of the void copy, even
			 * during a hand-off, which acks it when it lands.
			 */
			consumer_msg_free(t->msg);
			t->msg = msg;
		} else if (t->msg != NULL) {
			snprintf(detail, sizeof detail, "task %s is already "
			    "being dispatched from another message", tk->id);
			dpool_dead_letter(p, NULL, msg, "task.duplicate",
			    detail, tk->id);
		} else if (t->op && !t->handed_off && !t->doomed &&
		    (t->st == T_HANDOFF || t->st == T_CLAIMING)) {
			/*
			 * Its message went with a lost connection while a
			 * hand-off or marker check was in flight: this is it
			 * again, and joins; the completion goes on with it
			 * (and settles a failure recorded meanwhile, so no
			 * second operation starts on the task).
			 */
			t->msg = msg;
		} else if (t->op && !t->handed_off) {
			/*
			 * The task is being finished: its own dead letter (or
			 * the ack of a task that ran before) is in flight.
			 * Nothing of this message joins a task that failed or
			 * ended, and no second operation starts on it: this
			 * one is refused as a second message.
			 */
			snprintf(detail, sizeof detail, "task %s is being "
			    "finished from another message", tk->id);
			dpool_dead_letter(p, NULL, msg, "task.duplicate",
			    detail, tk->id);
		} else if ((t->st == T_RELEASING || t->doomed) &&
		    !t->handed_off && !t->rebuilt) {
			/*
			 * It failed here and never ran: its own message was
			 * dead-lettered; an ack would drop this one unseen.
			 * Unless this is that message again: redelivered
			 * because its dead letter went with the connection,
			 * or cancelled when its pool was replaced; then it
			 * gets the task's own verdict, as an operation of the
			 * task (t->op): the record stays until it ends, so a
			 * later copy meets it here instead of a new record.
			 */
			if (t->fail_reason[0] != '\0') {
				dpool_dead_letter(p, t, msg, t->fail_reason,
				    t->fail_detail, tk->id);
				t->fail_reason[0] = '\0';	/* once */
			} else if (msg->redelivered && t->verdict[0] != '\0' &&
			    p->ct->msg_live != NULL)
				dpool_dead_letter(p, t, msg, t->verdict,
				    t->verdict_detail, tk->id);
			else {
				snprintf(detail, sizeof detail, "task %s failed "
				    "and its claim is being released", tk->id);
				dpool_dead_letter(p, NULL, msg,
				    "task.duplicate", detail, tk->id);
			}
		} else if ((t->st == T_RELEASING || t->doomed) &&
		    !t->handed_off) {
			/* Rebuilt: it may have run, or never. */
			dpool_late_check(p, t, msg, tk->id);
		} else if (t->handed_off && t->pool == p && !t->acked &&
		    !t->op && !t->doomed && t->st == T_RUNNING) {
			/*
			 * It ran, and its ack did not land here (rebuilt from
			 * its claim, or the ack went with a connection): the
			 * task acks this one, and a claim kept for it then
			 * goes (dtask_hold).
			 */
			log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, NULL),
			    "%s: task %s already handed off; acking the "
			    "redelivered message", p->id, tk->id);
			t->msg = msg;
			dtask_set_state(t, T_ACKING);
			dtask_ack(t);
		} else if (t->st == T_RELEASING || t->doomed ||
		    (t->handed_off && t->pool == p)) {
			/*
			 * It ran, or runs: this is a late redelivery (its ack
			 * was lost with a connection, or is in flight).
			 */
			log_kv(LOG_INFO, "dispatch", DPOOL_LOG(p, tk->id,
			    NULL), "%s: task %s already handed off; acking "
			    "the redelivered message", p->id, tk->id);
			if (p->ct->ack(p->cons, msg, late_ack_done, p) != 0)
				consumer_msg_free(msg);
		} else {
			/* Rebuilt from its claim: the message joins it. */
			t->msg = msg;
			if (t->pool == NULL) {
				/* Counted waiting by no pool so far: now p's. */
				dtask_set_pool(t, p);
				if (t->pool_name == NULL)
					t->pool_name = dpool_label(p);
			}
			if (t->st == T_RUNNING && t->sandbox[0] != '\0')
				dtask_handoff(t);
			else if (t->st == T_WAITING &&
			    t->ready_by == 0)
				t->ready_by = now +
				    (double)p->cfg->ready_timeout_seconds;
		}
		goto out;
	}
	if (tk->parent[0] != '\0') {
		par = dns_find(ns, tk->parent);
		if (par == NULL || par->st == T_RELEASING ||
		    par->st == T_DEFERRED || par->doomed) {
			snprintf(detail, sizeof detail, "parent %s is not a "
			    "live task of namespace %s", tk->parent, ns->name);
			dpool_event(p, 1, quota_reason_event(
			    QUOTA_R_UNKNOWN_PARENT), "Admit", "task %s "
			    "rejected: %s: %s", tk->id, quota_reason_name(
			    QUOTA_R_UNKNOWN_PARENT), detail);
			dpool_dead_letter(p, NULL, msg, quota_reason_name(
			    QUOTA_R_UNKNOWN_PARENT), detail, tk->id);
			goto out;
		}
		t = dtask_new(ns, p, tk->id, tk->parent, par->root,
		    par->depth + 1);
		/* The predictive sizing learns the trees' spawning. */
		warmpool_spawn(&p->ws, &p->wp, now, par->spawned);
		dtask_set_spawned(par);
	} else {
		t = dtask_new(ns, p, tk->id, NULL, tk->id, 0);
		warmpool_root(&p->ws, &p->wp, now);
	}
	t->msg = msg;
	as_strlcpy(t->traceparent, tk->traceparent, sizeof t->traceparent);
	if (tk->nresources > 0) {
		t->res = xcalloc(tk->nresources, sizeof *t->res);
		memcpy(t->res, tk->resources, tk->nresources * sizeof *t->res);
		t->nres = tk->nresources;
	}
	t->ready_by = now + (double)p->cfg->ready_timeout_seconds;
	if (dtask_admit(t))
		dtask_go(t);
out:
	free(tk);
}

static void
dpool_state(struct consumer *c, int up, const char *errmsg, void *arg)
{
	struct dpool	*p = arg;

	(void)c;
	if (up && !p->up)
		log_kv(LOG_INFO, "dispatch", DPOOL_LOG(p, NULL, NULL),
		    "%s: consuming %s %s", p->id,
		    p->cfg->source.type, p->cfg->source.queue);
	else if (!up && (p->up || strcmp(p->src_err, errmsg) != 0))
		log_kv(LOG_WARN, "dispatch", DPOOL_LOG(p, NULL, NULL),
		    "%s: source down: %s", p->id, errmsg);
	if (!up && (p->up || p->src_err[0] == '\0'))
		dpool_event(p, 1, "SourceError", "Consume", "cannot consume "
		    "%s %s: %s", p->cfg->source.type, p->cfg->source.queue,
		    errmsg);
	p->up = up;
	if (!up)
		p->up_since = 0;
	else if (p->up_since == 0)
		p->up_since = as_mono_now();
	as_strlcpy_utf8(p->src_err, up ? "" : errmsg, sizeof p->src_err);
	if (!up)
		dpool_release_void(p);
}

void
dpool_start(struct dpool *p)
{
	if (p->started || p->cons == NULL)
		return;
	dpool_window(p);
	if (p->ct->start(p->cons, dpool_deliver, dpool_state, p) != 0) {
		log_kv(LOG_ERROR, "dispatch", DPOOL_LOG(p, NULL, NULL),
		    "%s: cannot start consuming", p->id);
		return;
	}
	p->started = 1;
}

struct dns *
dns_lookup(const struct dispatcher *d, const char *name)
{
	return (AS_HASH_ITEM(as_hash_find_str(&d->nss_byname, name),
	    struct dns, nslink));
}

struct dns *
dns_get(struct dispatcher *d, const char *name)
{
	struct informer_options io;
	struct dns	*ns;
	char		 path[256], err[256];

	if ((ns = dns_lookup(d, name)) != NULL)
		return (ns);
	ns = xcalloc(1, sizeof *ns);
	ns->d = d;
	as_strlcpy(ns->name, name, sizeof ns->name);
	as_hash_init_str(&ns->byid, 64, 0,
	    AS_HASH_KEYOFF(struct dtask, hlink, id));
	TAILQ_INIT(&ns->tasks);
	TAILQ_INIT(&ns->defer_desc);
	TAILQ_INIT(&ns->defer_roots);
	LIST_INIT(&ns->pools);
	ns->quota = quota_ns_new(d->config != NULL ?
	    config_quota_for(d->config, name) : NULL);
	LIST_INSERT_HEAD(&d->nss, ns, entry);
	as_hash_insert_str(&d->nss_byname, &ns->nslink);
	snprintf(path, sizeof path, CLAIMS_API "/namespaces/%s/sandboxclaims",
	    name);
	memset(&io, 0, sizeof io);
	io.path = path;
	io.label_selector = TASK_LABEL_MANAGED "=" TASK_LABEL_MANAGED_VALUE;
	io.log_name = "claims";
	/* Issue 15: bytes per live task. */
	io.transform = task_claim_slim;
	io.compact = 1;
	ns->claims = d->ops->informer_new(d->k8s, &io, dns_claim_event, ns, err,
	    sizeof err);
	if (ns->claims == NULL)
		log_error("dispatch", "namespace %s: cannot watch claims: %s",
		    name, err);
	return (ns);
}

void
dns_free(struct dns *ns)
{
	struct dtask	*t;

	ns->d->ops->informer_free(ns->claims);
	ns->claims = NULL;
	while ((t = TAILQ_FIRST(&ns->tasks)) != NULL) {
		/*
		 * A cancel runs the request's completion, which may free the
		 * record (a release that was waiting for it): look again.
		 */
		if (t->req != NULL || t->save_req != NULL) {
			struct k8s_req *r = t->req != NULL ? t->req :
			    t->save_req;

			ns->d->ops->cancel(r);
			if (TAILQ_FIRST(&ns->tasks) == t) {
				if (t->req == r)
					t->req = NULL;
				if (t->save_req == r)
					t->save_req = NULL;
			}
			continue;
		}
		t->op = 0;	/* consumers are gone: nothing will call */
		dtask_maybe_free(t);
	}
	LIST_REMOVE(ns, entry);
	as_hash_remove(&ns->d->nss_byname, &ns->nslink);
	quota_ns_free(ns->quota);
	as_hash_fini(&ns->byid);
	free(ns);
}
