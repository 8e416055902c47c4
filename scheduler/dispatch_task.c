/*
 * dispatch_task.c: a task's record and the steps of its state machine
 * (dispatch.c describes the states): making and freeing records, failing a
 * task and settling a failure that came during a consumer operation, dead
 * letters, acks, and the hand-off with its redelivery marker check.
 *
 * Ownership: a task is freed here only (dtask_maybe_free), once neither a
 * consumer operation (t->op) nor a Kubernetes request (t->req) of its own
 * is pending; each completion clears its flag first, then frees a doomed
 * task.  A message passed to dpool_dead_letter() or acked is the
 * consumer's from then on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "config.h"
#include "agentscaler/scalers/consumer.h"
#include "agentscaler/rt/log.h"
#include "quota.h"
#include "task.h"

#include "dispatch_int.h"

static int	 dtask_msg_void_of(const struct dtask *,
		    const struct consumer_msg *);
static void	 dtask_ran_before(struct dtask *);

/* Pool counters. */

static void
dpool_dead(struct dpool *p, const char *reason)
{
	if (p != NULL)
		p->dead[dispatch_dead_reason(reason)]++;
}

static enum dshown
dtask_shown(const struct dtask *t)
{
	if (t->doomed)
		return (DS_NONE);
	if (t->counted_waiting)
		return (DS_PENDING);
	return (t->launch == L_WARM ? DS_WARM : t->launch == L_COLD ?
	    DS_COLD : DS_NONE);
}

void
dtask_unshow(struct dtask *t)
{
	if (t->pool != NULL)
		t->pool->shown[dtask_shown(t)]--;
}

void
dtask_show(struct dtask *t)
{
	if (t->pool != NULL)
		t->pool->shown[dtask_shown(t)]++;
}

void
dtask_set_waiting(struct dtask *t, int on)
{
	if (t->counted_waiting == on)
		return;
	dtask_unshow(t);
	t->counted_waiting = on;
	dtask_show(t);
	if (t->pool != NULL)
		t->pool->waiting += on ? 1 : -1;
}

void
dtask_set_pool(struct dtask *t, struct dpool *p)
{
	struct dpool	*o = t->pool;

	if (o == p)
		return;
	if (o != NULL) {
		dtask_unshow(t);
		o->live--;
		if (t->counted_waiting)
			o->waiting--;
		if (t->spawned)
			o->spawners--;
		TAILQ_REMOVE(&o->tasks, t, plink);
	}
	t->pool = p;
	if (p != NULL) {
		dtask_show(t);
		p->live++;
		if (t->counted_waiting)
			p->waiting++;
		if (t->spawned)
			p->spawners++;
		TAILQ_INSERT_TAIL(&p->tasks, t, plink);
	}
}

/* t has a child now: counted once in its pool's spawners. */
void
dtask_set_spawned(struct dtask *t)
{
	if (t->spawned)
		return;
	t->spawned = 1;
	if (t->pool != NULL)
		t->pool->spawners++;
}

void
dtask_set_state(struct dtask *t, enum tstate st)
{
	dtask_trace_state(t, st);
	t->st = st;
	dtask_set_waiting(t, st == T_CLAIMING || st == T_WAITING);
}

struct dtask *
dtask_new(struct dns *ns, struct dpool *p, const char *id, const char *parent,
    const char *root, int depth)
{
	struct dtask	*t;

	t = xcalloc(1, sizeof *t);
	t->ns = ns;
	t->id = xstrdup(id);
	t->parent = parent != NULL && parent[0] != '\0' ? xstrdup(parent) :
	    NULL;
	t->root = xstrdup(root);
	t->depth = depth;
	dtask_set_pool(t, p);
	if (p != NULL) {
		t->pool_name = dpool_label(p);
		task_claim_name(p->cfg->name, ns->name, id, t->claim);
	}
	dns_insert(ns, t);
	dtask_trace_new(t);
	return (t);
}

char *
dpool_label(const struct dpool *p)
{
	char	 label[64];

	task_pool_label(p->cfg->name, label);
	return (xstrdup(label));
}

int
dpool_is_of(const struct dpool *p, const struct dtask *t)
{
	char	 label[64];

	if (t->pool_name == NULL)
		return (1);
	task_pool_label(p->cfg->name, label);
	return (strcmp(label, t->pool_name) == 0);
}

/* Frees now if nothing is pending, else once the last completion runs. */
void
dtask_maybe_free(struct dtask *t)
{
	dtask_unshow(t);
	t->doomed = 1;
	dtask_show(t);
	if (t->admitted) {
		/* The sandbox is gone (or never came): capacity frees now. */
		t->admitted = 0;
		quota_release(t->ns->quota, t->id, as_mono_now());
		dns_kick(t->ns);
	}
	if (t->st == T_DEFERRED) {
		dtask_undefer(t);
		t->st = T_RELEASING;
	}
	if (t->op || t->req != NULL || t->save_req != NULL)
		return;
	dhttp_free(t);
	dtask_trace_end(t);
	dtask_set_waiting(t, 0);
	dtask_set_pool(t, NULL);
	dns_remove(t->ns, t);
	if (t->msg != NULL)
		consumer_msg_free(t->msg);	/* the broker redelivers it */
	free(t->id);
	free(t->parent);
	free(t->root);
	free(t->pool_name);
	free(t->res);
	free(t->why_detail);
	free(t->fail_detail);
	free(t->verdict_detail);
	free(t->spawn_key);
	free(t);
}

/* Dead letters. */

struct dl_op {
	struct dpool	*pool;		/* NULL once the pool is gone */
	char		 reason[48];
	char		*detail;
	struct dtask	*t;		/* task waiting on it, or NULL */
};

static void
dl_done(int err, const char *errmsg, void *arg)
{
	struct dl_op	*op = arg;
	struct dtask	*t = op->t;

	if (err != -AS_ECANCELED && op->pool != NULL) {
		if (err == 0)
			dpool_dead(op->pool, op->reason);
		else {
			op->pool->dead_letter_errors++;
			log_kv(LOG_WARN, "dispatch", DPOOL_LOG(op->pool,
			    NULL, op->reason), "%s: cannot dead-letter (%s); the "
			    "message stays with the broker and comes back: %s",
			    op->pool->id, op->reason, errmsg);
		}
	}
	if (t != NULL && err == -AS_ECANCELED && !t->doomed &&
	    t->fail_reason[0] == '\0') {
		/*
		 * Its pool was replaced or removed: the message went back to
		 * the broker, and when it comes back while the task's claim is
		 * still being released, it is dead-lettered for this reason
		 * (dpool_deliver), not taken as a new task.
		 */
		as_strlcpy_utf8(t->fail_reason, op->reason,
		    sizeof t->fail_reason);
		free(t->fail_detail);
		t->fail_detail = op->detail;
		op->detail = NULL;
	}
	free(op->detail);
	free(op);
	if (t != NULL) {
		t->op = 0;
		if (t->doomed)
			dtask_maybe_free(t);
	}
}

/*
 * The record of msg: task.tooLarge never copies the message whole (a cut
 * message has only its prefix anyway), every other reason does.
 */
static char *
dead_letter_record(struct dpool *p, struct consumer_msg *msg,
    const char *reason, const char *detail, const char *task_id,
    size_t *lenp)
{
	unsigned char	 sha[AS_SHA256_LEN];

	if (msg->truncated)
		return (task_dead_letter_record_cut(reason, detail, p->cfg->ns,
		    p->cfg->name, task_id, msg->body, msg->len, msg->size,
		    msg->sha256, as_wall_now(), lenp));
	if (strcmp(reason, "task.tooLarge") == 0) {
		as_sha256(msg->body, msg->len, sha);
		return (task_dead_letter_record_cut(reason, detail, p->cfg->ns,
		    p->cfg->name, task_id, msg->body, msg->len, msg->len, sha,
		    as_wall_now(), lenp));
	}
	return (task_dead_letter_record(reason, detail, p->cfg->ns,
	    p->cfg->name, task_id, msg->body, msg->len, as_wall_now(), lenp));
}

/*
 * Dead-letters msg (taken over) of pool p with a reason.  t, when given, is
 * held until the operation ends.
 */
void
dpool_dead_letter(struct dpool *p, struct dtask *t, struct consumer_msg *msg,
    const char *reason, const char *detail, const char *task_id)
{
	struct dl_op	*op;
	char		*rec;
	size_t		 len;

	log_kv(LOG_INFO, "dispatch", DPOOL_LOG(p, task_id, reason),
	    "%s: task %s dead-lettered to %s.rejected: %s: %s",
	    p->id, task_id != NULL ? task_id : "(unparsed)",
	    p->cfg->source.queue, reason, detail);
	dispatch_recent_add(p->d, p->cfg->ns, task_id, reason, detail);
	rec = dead_letter_record(p, msg, reason, detail, task_id, &len);
	op = xcalloc(1, sizeof *op);
	op->pool = p;
	op->t = t;
	as_strlcpy_utf8(op->reason, reason, sizeof op->reason);
	op->detail = xstrdup(detail != NULL ? detail : "");
	if (t != NULL)
		t->op = 1;
	if (p->cons == NULL || p->ct->dead_letter(p->cons, msg, rec, len,
	    dl_done, op) != 0) {
		/* Not taken: the broker keeps it; it comes back. */
		consumer_msg_free(msg);
		p->dead_letter_errors++;
		if (t != NULL)
			t->op = 0;
		free(op->detail);
		free(op);
	}
	free(rec);
}

/* Fails a task: dead-letter its message (if held), then drop its claim. */
void
dtask_fail(struct dtask *t, const char *reason, const char *detail)
{
	struct consumer_msg *msg = t->msg;

	if (t->verdict[0] == '\0') {
		as_strlcpy_utf8(t->verdict, reason, sizeof t->verdict);
		free(t->verdict_detail);
		t->verdict_detail = xstrdup(detail != NULL ? detail : "");
	}
	if (t->op && (msg != NULL || t->st == T_HANDOFF)) {
		/*
		 * A hand-off or marker check is in flight (its message may have
		 * gone with a lost connection meanwhile): it decides.
		 */
		if (t->fail_reason[0] == '\0') {
			as_strlcpy_utf8(t->fail_reason, reason,
			    sizeof t->fail_reason);
			free(t->fail_detail);
			t->fail_detail = xstrdup(detail != NULL ? detail : "");
		}
		return;
	}
	t->msg = NULL;
	if (strncmp(reason, "claim.", 6) == 0)
		dpool_event(t->pool, 1, "ClaimFailed", "Claim", "task %s: claim "
		    "%s failed: %s: %s", t->id, t->claim, reason, detail);
	if (msg != NULL && t->spawn_key != NULL) {
		/* No broker holds it: the parent's runtime is told. */
		consumer_msg_free(msg);
		log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, reason),
		    "%s/%s: child task %s failed: %s: %s",
		    t->ns->name, t->claim, t->id, reason, detail);
		dispatch_recent_add(t->ns->d, t->ns->name, t->id, reason,
		    detail);
	} else if (msg != NULL && t->pool != NULL)
		dpool_dead_letter(t->pool, t, msg, reason, detail, t->id);
	else if (msg != NULL)
		consumer_msg_free(msg);
	else if (!t->handed_off && t->fail_reason[0] == '\0') {
		/*
		 * Its message is away: gone with a lost connection (it comes
		 * back redelivered), or the task is known from its claim only
		 * (rebuilt, or its pool replaced).  That message, if it comes
		 * back while the claim is being released, gets this reason
		 * (dpool_deliver).
		 */
		as_strlcpy_utf8(t->fail_reason, reason, sizeof t->fail_reason);
		free(t->fail_detail);
		t->fail_detail = xstrdup(detail != NULL ? detail : "");
		log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, reason),
		    "%s/%s: task %s failed while its message "
		    "was away: %s: %s", t->ns->name, t->claim, t->id, reason,
		    detail);
	} else
		log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, reason),
		    "%s/%s: task %s failed after hand-off: %s: %s",
		    t->ns->name, t->claim, t->id, reason, detail);
	dhttp_child_failed(t, reason, detail);
	dtask_release(t);
}

/*
 * The consumer operation in flight has ended on a task that failed
 * meanwhile (dtask_fail): one that did not reach its sandbox is failed now
 * (its message dead-lettered); one that did (handed) has its message acked
 * and its claim released, as a task that failed after its hand-off.
 */
static void
dtask_settle(struct dtask *t, int handed)
{
	char	 reason[48];
	char	*detail = t->fail_detail;

	as_strlcpy_utf8(reason, t->fail_reason, sizeof reason);
	t->fail_reason[0] = '\0';
	t->fail_detail = NULL;
	if (!handed)
		dtask_fail(t, reason, detail);
	else if (strcmp(reason, "claim.deleted") != 0)
		/* It reached a sandbox that had failed: not a completion. */
		dtask_sandbox_failed(t, reason, detail);
	else {
		log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, reason),
		    "%s/%s: task %s failed after hand-off: %s: %s",
		    t->ns->name, t->claim, t->id, reason, detail);
		dtask_release(t);
	}
	free(detail);
}

/*
 * The common start of a completion on t, once its request or operation is
 * cleared: 1 when there is nothing more to do, because it was cancelled or
 * the task is being freed (which then happens here, if it was the last
 * thing the record waited for).
 */
int
dtask_completion_moot(struct dtask *t, int err)
{
	if (t->doomed) {
		dtask_maybe_free(t);
		return (1);
	}
	return (err == -AS_ECANCELED);
}

/* Acks and releases. */

static void
ack_done(int err, const char *errmsg, void *arg)
{
	struct dtask	*t = arg;

	t->op = 0;
	if (dtask_completion_moot(t, err))
		return;
	if (err == 0)
		t->acked = 1;
	else if (t->pool != NULL)
		log_kv(LOG_WARN, "dispatch", DTASK_LOG(t, NULL),
		    "%s: ack of task %s failed, the broker "
		    "will redeliver it (handed off already; it will not be "
		    "handed off twice): %s", t->pool->id, t->id, errmsg);
	if (t->st == T_ACKING)
		dtask_set_state(t, T_RUNNING);
	if (t->held && t->acked && t->st == T_RUNNING) {
		/* The claim was kept for this ack (dtask_hold). */
		t->held = 0;
		dtask_release(t);
	}
}

/*
 * Acks the task's message; ACKING ends at once when there is none to ack:
 * none held, or one whose connection is gone (a void message: its
 * redelivery is acked when it comes, dpool_deliver).
 */
void
dtask_ack(struct dtask *t)
{
	struct consumer_msg *msg = t->msg;

	t->msg = NULL;
	if (msg != NULL && t->spawn_key != NULL) {
		/* Made here, held by no broker: nothing to ack. */
		consumer_msg_free(msg);
		msg = NULL;
		t->acked = 1;
	}
	if (msg != NULL && (t->pool == NULL || t->pool->cons == NULL ||
	    dtask_msg_void_of(t, msg))) {
		consumer_msg_free(msg);
		msg = NULL;
	}
	if (msg != NULL) {
		t->op = 1;
		if (t->pool->ct->ack(t->pool->cons, msg, ack_done, t) == 0)
			return;
		t->op = 0;
		consumer_msg_free(msg);
	}
	if (t->st == T_ACKING)
		dtask_set_state(t, T_RUNNING);
}

/* Hand-off. */

static void
handoff_done(int err, int outcome, const char *errmsg, void *arg)
{
	struct dtask	*t = arg;
	struct dpool	*p = t->pool;
	int		 ran;

	t->op = 0;
	if (dtask_completion_moot(t, err))
		return;
	/*
	 * Its sandbox succeeded while this hand-off was in flight
	 * (dtask_apply): a hand-off reached it (an earlier one, or this one
	 * before its confirm came) and the task ran, whatever this one's
	 * fate, unless the broker refused the only one there was.
	 */
	ran = t->succeeded_seen;
	t->succeeded_seen = 0;
	if (ran && !t->rebuilt && !t->handoff_unknown &&
	    (err == -AS_EIO || err == -AS_ENOTFOUND)) {
		/*
		 * The broker refused the only hand-off there was: the sandbox
		 * ended without the task.
		 */
		ran = 0;
		if (t->fail_reason[0] == '\0') {
			as_strlcpy(t->fail_reason, "claim.finishedBeforeHandoff",
			    sizeof t->fail_reason);
			free(t->fail_detail);
			t->fail_detail = xstrdup("the sandbox finished before "
			    "the task reached it");
		}
	}
	if (ran) {
		t->fail_reason[0] = '\0';
		if (err != 0) {
			if (!dtask_succeeded_unseen(t))
				dtask_succeeded(t);
			return;
		}
	}
	if (err != 0 && t->fail_reason[0] != '\0') {
		dtask_settle(t, 0);
		return;
	}
	if (err != 0) {
		/* Refused outright (nack, return), or perhaps delivered. */
		if (err != -AS_EIO && err != -AS_ENOTFOUND)
			t->handoff_unknown = 1;
		if (p != NULL)
			log_kv(LOG_WARN, "dispatch", DTASK_LOG(t, NULL),
			    "%s: hand-off of task %s to %s "
			    "failed, retrying: %s", p->id, t->id, t->sandbox,
			    errmsg);
		dtask_set_state(t, T_WAITING);
		t->retry_at = as_mono_now() + as_backoff(0.2, 5,
		    t->attempts++);
		return;
	}
	t->handed_off = 1;
	t->attempts = 0;
	if (p != NULL && p->ct->handed_off == NULL)
		/* The consumer keeps no marker: keep it here. */
		dmarks_add(p->d->marks, t->ns->name, t->id, t->sandbox,
		    (double)p->cfg->claim_ttl_seconds + 86400, as_mono_now());
	if (p != NULL && t->msg != NULL) {
		prom_hist_add(&p->handoff,
		    as_mono_now() - t->msg->received);
		if (outcome == CONSUMER_HANDOFF_DONE)
			p->handed_off++;
	}
	dtask_set_state(t, T_ACKING);
	dtask_ack(t);
	if (t->fail_reason[0] != '\0')
		dtask_settle(t, 1);
	else if (ran)
		dtask_succeeded(t);
	else if (outcome == CONSUMER_HANDOFF_ELSEWHERE) {
		/*
		 * The marker says this task went to another sandbox before:
		 * an earlier claim of the same name, since gone, so the task
		 * ran and this message is a late redelivery (its ack was
		 * lost).  The claim made for it now is not needed.
		 */
		if (p != NULL)
			log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, NULL),
			    "%s: task %s ran before in another "
			    "sandbox; redelivered message acked, claim %s "
			    "released", p->id, t->id, t->claim);
		dtask_release(t);
	}
}

void
dtask_handoff_spec(const struct dtask *t, struct handoff_spec *hs)
{
	memset(hs, 0, sizeof *hs);
	hs->ns = t->ns->name;
	hs->pool = t->pool->cfg->name;
	hs->claim = t->claim;
	hs->sandbox = t->sandbox;
	hs->task_id = t->id;
	hs->parent_id = t->parent;
	hs->root_id = t->root;
	hs->depth = t->depth;
}

void
dtask_handoff(struct dtask *t)
{
	struct dpool	*p = t->pool;
	struct handoff_spec hs;
	char		*body;
	size_t		 len;

	if (p == NULL || p->cons == NULL || t->msg == NULL) {
		dtask_set_state(t, T_WAITING);
		t->retry_at = as_mono_now() + 1;
		return;
	}
	if (dpool_http(p)) {
		dhttp_handoff(t);	/* dispatch_http.c */
		return;
	}
	dtask_handoff_spec(t, &hs);
	body = task_handoff_body(&hs, t->msg->body, t->msg->len, &len);
	dtask_set_state(t, T_HANDOFF);
	t->retry_at = 0;
	t->op = 1;
	if (p->ct->handoff(p->cons, t->ns->name, t->sandbox, t->id, body, len,
	    handoff_done, t) != 0) {
		t->op = 0;
		dtask_set_state(t, T_WAITING);
		t->retry_at = as_mono_now() + 1;
	} else
		t->handoff_sent = 1;
	free(body);
}

/*
 * A task that ran and ended, on a pool whose consumer keeps no hand-off
 * marker (RabbitMQ), whose message was not acked here: rebuilt from its
 * claim (the process before a crash handed it off and died before the
 * ack), or its ack or its hand-off's confirm went with a lost connection,
 * or its ack is in flight.  The broker will redeliver that message.  The
 * marker in memory turns the redelivery into an ack while this process
 * lives, but past a crash the claim is the only record that the task ran:
 * deleted now, the next process would claim again and run the task a
 * second time, in another sandbox.  So the claim is kept (the sandbox has
 * ended; the quota still counts it) until the redelivery is acked here
 * (ack_done, dpool_deliver), or until the consumer has been up
 * DISPATCH_ACK_HOLD seconds since without it coming (its ack had landed:
 * RabbitMQ requeues a dead connection's messages in their place, ahead of
 * anything newer, so they come back first), or until the TTL backstop.
 * Returns 1 when the claim is kept.
 */
int
dtask_hold(struct dtask *t)
{
	struct dpool	*p = t->pool;

	if (p == NULL || p->ct->handed_off != NULL || t->acked ||
	    !t->claim_exists || t->doomed)
		return (0);
	if (!t->held) {
		t->held = 1;
		t->held_at = as_mono_now();
		log_debug("dispatch", "%s/%s: task %s ended before its message "
		    "was acked here; the claim is kept for the redelivery "
		    "(at most %.0f s once consuming)", t->ns->name, t->claim,
		    t->id, DISPATCH_ACK_HOLD);
	}
	if (t->st != T_ACKING)
		dtask_set_state(t, T_RUNNING);
	t->retry_at = 0;
	return (1);
}

void
dtask_succeeded(struct dtask *t)
{
	if (!dtask_hold(t))
		dtask_release(t);
}

void
dtask_hold_sweep(struct dtask *t, double now)
{
	struct dpool	*p = t->pool;
	double		 from;

	if (!t->held || t->st != T_RUNNING || t->op || t->doomed)
		return;
	if (p != NULL) {
		if (p->up_since == 0)
			return;		/* nothing comes while it is down */
		from = p->up_since > t->held_at ? p->up_since : t->held_at;
		if (now - from < DISPATCH_ACK_HOLD)
			return;
	}
	if (p == NULL)
		log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, NULL),
		    "%s/%s: task %s: its pool is gone; "
		    "releasing the claim kept for its redelivery", t->ns->name,
		    t->claim, t->id);
	else
		log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, NULL),
		    "%s/%s: task %s: no redelivery of its "
		    "message within %.0f s of consuming (its ack had landed); "
		    "releasing the claim", t->ns->name, t->claim, t->id,
		    DISPATCH_ACK_HOLD);
	t->held = 0;
	dtask_release(t);
}

/* The marker says the task was handed off before: ack, make no claim. */
static void
dtask_ran_before(struct dtask *t)
{
	if (t->pool != NULL)
		log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, NULL),
		    "%s: task %s was handed off before and has "
		    "ended; acking its redelivered message", t->pool->id, t->id);
	dtask_set_state(t, T_ACKING);
	dtask_ack(t);
	t->fail_reason[0] = '\0';
	dtask_succeeded(t);
}

/*
 * A task of a pool whose consumer keeps no hand-off marker (RabbitMQ),
 * whose sandbox succeeded, though no hand-off of it was confirmed here:
 * known from its claim only (rebuilt at start: the process before this one
 * handed it off and crashed before the ack), or its hand-off was sent and
 * the confirm went with the connection (the publish landed all the same).
 * PodSucceeded is the completion of the task the claim was made for.  The
 * marker is set here as if the hand-off had been confirmed, so that the
 * redelivered message is acked whether it comes while the claim is kept
 * for it (dtask_hold) or after the claim is gone, and a message the task
 * already holds is acked now; never dead-lettered task.duplicate, nor
 * claimed again.  Returns 1 when it applies (the task then ends: its claim
 * kept until its message is acked, or released).
 */
int
dtask_succeeded_unseen(struct dtask *t)
{
	struct dpool	*p = t->pool;

	if (!(t->rebuilt || t->handoff_sent) || t->handed_off || t->op ||
	    p == NULL || p->ct->handed_off != NULL)
		return (0);
	t->handed_off = 1;
	dmarks_add(p->d->marks, t->ns->name, t->id, t->sandbox,
	    (double)p->cfg->claim_ttl_seconds + 86400, as_mono_now());
	dtask_ran_before(t);
	return (1);
}

/*
 * A redelivered message with no live task behind it: either the task never
 * got far, or it ran and ended and only the ack was lost.  The hand-off
 * marker tells which, before a claim is made for nothing.
 */
static void
check_done(int err, int yes, const char *errmsg, void *arg)
{
	struct dtask	*t = arg;

	t->op = 0;
	if (dtask_completion_moot(t, err))
		return;
	if (err == 0 && yes) {
		dtask_ran_before(t);
		return;
	}
	if (t->fail_reason[0] != '\0') {
		dtask_settle(t, 0);
		return;
	}
	if (err != 0 && t->pool != NULL)
		log_kv(LOG_WARN, "dispatch", DTASK_LOG(t, NULL),
		    "%s: cannot check whether task %s ran "
		    "before (%s); claiming", t->pool->id, t->id, errmsg);
	dtask_claim(t);
}

static void
dtask_check(struct dtask *t)
{
	struct dpool	*p = t->pool;

	dtask_set_state(t, T_CLAIMING);
	t->op = 1;
	if (p->ct->handed_off(p->cons, t->ns->name, t->id, check_done,
	    t) != 0) {
		t->op = 0;
		dtask_claim(t);
	}
}

/* An admitted task with its message: check the marker, or claim. */
void
dtask_go(struct dtask *t)
{
	t->ready_by = as_mono_now() + (t->pool != NULL ?
	    (double)t->pool->cfg->ready_timeout_seconds : 180.0);
	if (t->msg != NULL && t->msg->redelivered && t->pool != NULL &&
	    t->pool->ct->handed_off != NULL)
		dtask_check(t);
	else if (t->msg != NULL && t->msg->redelivered && t->pool != NULL &&
	    dmarks_find(t->ns->d->marks, t->ns->name, t->id,
	    as_mono_now()) != NULL)
		dtask_ran_before(t);	/* dispatch_mark.c */
	else
		dtask_claim(t);
}

static int
dtask_msg_void_of(const struct dtask *t, const struct consumer_msg *msg)
{
	const struct dpool *p = t->pool;

	return (msg != NULL && t->spawn_key == NULL && p != NULL &&
	    p->cons != NULL &&
	    p->ct->msg_live != NULL && !p->ct->msg_live(p->cons, msg));
}

int
dtask_msg_void(const struct dtask *t)
{
	return (dtask_msg_void_of(t, t->msg));
}

/*
 * The consumer of p lost its connection (RabbitMQ): what it delivered is
 * void, back with the broker, which redelivers it.  A task holding such a
 * message lets it go and goes on without it, as a task rebuilt from its
 * claim does; the redelivery joins it (dpool_deliver).  An operation in
 * flight on one (a hand-off) is left to finish: its completion finds no
 * message, or the redelivery, which joined meanwhile.  A deferred task is
 * only its message waiting in our queue: it goes, and its redelivery is
 * queued again.
 */
void
dpool_release_void(struct dpool *p)
{
	struct dtask	*t, *next;
	size_t		 n = 0;

	for (t = TAILQ_FIRST(&p->tasks); t != NULL; t = next) {
		next = TAILQ_NEXT(t, plink);
		if (!dtask_msg_void(t))
			continue;
		consumer_msg_free(t->msg);
		t->msg = NULL;
		n++;
		if (t->st == T_DEFERRED)
			dtask_maybe_free(t);
	}
	if (n > 0)
		log_info("dispatch", "%s: %zu held messages went back to the "
		    "broker with the connection; their redeliveries join their "
		    "tasks", p->id, n);
}
