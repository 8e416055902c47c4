/*
 * check_dispatch.c: the dispatch state machine (scheduler/dispatch.c)
 * driven through struct dispatch_ops by a fake Kubernetes client, a fake
 * claim informer and a fake consumer, none of which completes anything by
 * itself: each test completes requests, consumer operations and watch
 * events by hand, in the order a real cluster or broker may produce them
 * (a pipelined Redis connection, RabbitMQ confirms, a watch that beats a
 * response).  Nothing here touches the network or waits for the clock.
 *
 * A ledger follows every message delivered: acked, dead-lettered (with the
 * reason) or neither (given back to the broker when the dispatcher frees
 * it), and every hand-off.  check_invariants() asserts what must hold after
 * any step: no message both acked and dead-lettered or finished twice, no
 * message acked without its task handed off, at most one consumer
 * operation in flight per task, the quota's task count equal to the
 * admitted records once nothing is pending (never above them), and no
 * claim on the fake server without a live task.
 */
#include <sys/queue.h>

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "scheduler/config.h"
#include "scheduler/crd.h"
#include "agentscaler/scalers/consumer.h"
#include "scheduler/dispatch.h"
#include "agentscaler/k8s/informer.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/rt/otlp.h"
#include "agentscaler/rt/prom.h"
#include "agentscaler/rt/trace.h"
#include "scheduler/task.h"
#include "util/testutil.h"

/* The sweep (readyTimeoutSeconds) is run by hand, with the clock moved. */
#include "scheduler/dispatch_int.h"

#define NS		"ns"
#define CLAIMS_PATH	"/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/"

/* The fake Kubernetes client: requests wait until the test answers. */

struct freq {
	TAILQ_ENTRY(freq)	 entry;
	char			 method[8];
	char			 path[512];
	char			*body;
	k8s_done_fn		*done;
	k8s_scale_fn		*sdone;
	void			*arg;
};

static TAILQ_HEAD(, freq) reqs = TAILQ_HEAD_INITIALIZER(reqs);

static struct freq *
fk_add(const char *method, const char *path, const char *body)
{
	struct freq	*r = xcalloc(1, sizeof *r);

	as_strlcpy(r->method, method, sizeof r->method);
	as_strlcpy(r->path, path, sizeof r->path);
	r->body = body != NULL ? xstrdup(body) : NULL;
	TAILQ_INSERT_TAIL(&reqs, r, entry);
	return (r);
}

static struct k8s_req *
fk_request(struct k8s_client *k, const char *method, const char *path,
    const char *content_type, const char *body, k8s_done_fn *done, void *arg)
{
	struct freq	*r;

	(void)k;
	(void)content_type;
	r = fk_add(method, path, body);
	r->done = done;
	r->arg = arg;
	return ((struct k8s_req *)r);
}

static struct k8s_req *
fk_scale_get(struct k8s_client *k, const char *kind, const char *ns,
    const char *name, k8s_scale_fn *done, void *arg)
{
	struct freq	*r;

	(void)k;
	(void)kind;
	(void)ns;
	r = fk_add("GET", name, NULL);
	r->sdone = done;
	r->arg = arg;
	return ((struct k8s_req *)r);
}

static struct k8s_req *
fk_scale_patch(struct k8s_client *k, const char *kind, const char *ns,
    const char *name, long replicas, k8s_scale_fn *done, void *arg)
{
	struct freq	*r;

	(void)replicas;
	r = (struct freq *)fk_scale_get(k, kind, ns, name, done, arg);
	as_strlcpy(r->method, "PATCH", sizeof r->method);
	return ((struct k8s_req *)r);
}

/*
 * Completes r (taken off the list first, as the real client does); body
 * may be r's own.
 */
static void
fk_reply(struct freq *r, int err, long code, const char *body)
{
	struct k8s_response resp;
	struct k8s_scale sc = { 0, 0, "" };

	TAILQ_REMOVE(&reqs, r, entry);
	if (r->sdone != NULL)
		r->sdone(err, err == 0 ? &sc : NULL, err == 0 ? "" : "failed",
		    r->arg);
	else {
		memset(&resp, 0, sizeof resp);
		resp.err = err;
		resp.code = code;
		resp.body = body != NULL ? body : "";
		resp.body_len = strlen(resp.body);
		resp.message = err == 0 ? "" : "fake failure";
		r->done(&resp, r->arg);
	}
	free(r->body);
	free(r);
}

/* Answers a /scale request r with the pool's spec and status replicas. */
static void
fk_reply_scale(struct freq *r, long spec, long status)
{
	struct k8s_scale sc;

	TAILQ_REMOVE(&reqs, r, entry);
	sc.spec_replicas = spec;
	sc.status_replicas = status;
	r->sdone(0, &sc, "", r->arg);
	free(r->body);
	free(r);
}

/* The oldest pending /scale request of method. */
static struct freq *
fk_find_scale(const char *method)
{
	struct freq	*r;

	TAILQ_FOREACH(r, &reqs, entry)
		if (strcmp(r->method, method) == 0 && r->sdone != NULL)
			return (r);
	return (NULL);
}

static void
fk_cancel(struct k8s_req *req)
{
	fk_reply((struct freq *)req, -AS_ECANCELED, 0, NULL);
}

/* The oldest pending request of method whose path contains needle. */
static struct freq *
fk_find(const char *method, const char *needle)
{
	struct freq	*r;

	TAILQ_FOREACH(r, &reqs, entry)
		if (strcmp(r->method, method) == 0 && r->done != NULL &&
		    strstr(r->path, needle) != NULL)
			return (r);
	return (NULL);
}

/*
 * The fake server's claims ("ns/name" -> object), made by answering POSTs,
 * and the claim informer of each namespace, whose events the test sends.
 */

static cJSON	*server;

struct finf {
	char		 ns[64];
	informer_fn	*fn;
	void		*arg;
	cJSON		*cache;
	int		 failing;	/* LIST/WATCH failing: an outage */
};

#define MAX_INF	4
static struct finf *infs[MAX_INF];

static struct informer *
fi_new(struct k8s_client *k, const struct informer_options *io,
    informer_fn *fn, void *arg, char *err, size_t errlen)
{
	struct finf	*fi = xcalloc(1, sizeof *fi);
	const char	*p = strstr(io->path, "/namespaces/");
	size_t		 i;

	(void)k;
	(void)err;
	(void)errlen;
	ck_assert_ptr_nonnull(p);
	p += strlen("/namespaces/");
	for (i = 0; p[i] != '\0' && p[i] != '/' && i < sizeof fi->ns - 1; i++)
		fi->ns[i] = p[i];
	fi->fn = fn;
	fi->arg = arg;
	fi->cache = cJSON_CreateObject();
	for (i = 0; i < MAX_INF && infs[i] != NULL; i++)
		;
	ck_assert_uint_lt(i, MAX_INF);
	infs[i] = fi;
	return ((struct informer *)fi);
}

static void
fi_free(struct informer *inf)
{
	struct finf	*fi = (struct finf *)inf;
	size_t		 i;

	if (fi == NULL)
		return;
	for (i = 0; i < MAX_INF; i++)
		if (infs[i] == fi)
			infs[i] = NULL;
	cJSON_Delete(fi->cache);
	free(fi);
}

static const cJSON *
fi_get(const struct informer *inf, const char *ns, const char *name)
{
	const struct finf *fi = (const struct finf *)inf;

	(void)ns;
	return (cJSON_GetObjectItemCaseSensitive(fi->cache, name));
}

static void
fi_stats(const struct informer *inf, struct informer_stats *st)
{
	memset(st, 0, sizeof *st);
	st->failing = (uint64_t)((const struct finf *)inf)->failing;
	st->errors = st->failing;
}

static struct finf *
fi_find(const char *ns)
{
	size_t	 i;

	for (i = 0; i < MAX_INF; i++)
		if (infs[i] != NULL && strcmp(infs[i]->ns, ns) == 0)
			return (infs[i]);
	ck_abort_msg("no informer on namespace %s", ns);
	return (NULL);
}

static void
fi_synced(const char *ns)
{
	struct finf	*fi = fi_find(ns);

	fi->fn((struct informer *)fi, INFORMER_SYNCED, NULL, fi->arg);
}

static cJSON *
srv_claim(const char *ns, const char *name)
{
	char	 key[160];

	snprintf(key, sizeof key, "%s/%s", ns, name);
	return (cJSON_GetObjectItemCaseSensitive(server, key));
}

/* The informer sees the server's claim ns/name as it is now. */
static void
fi_show(const char *ns, const char *name)
{
	struct finf	*fi = fi_find(ns);
	cJSON		*obj = srv_claim(ns, name), *old;
	enum informer_event ev;

	ck_assert_ptr_nonnull(obj);
	old = cJSON_DetachItemFromObjectCaseSensitive(fi->cache, name);
	ev = old != NULL ? INFORMER_MODIFIED : INFORMER_ADDED;
	cJSON_Delete(old);
	cJSON_AddItemToObject(fi->cache, name, cJSON_Duplicate(obj, 1));
	fi->fn((struct informer *)fi, ev, cJSON_GetObjectItemCaseSensitive(
	    fi->cache, name), fi->arg);
}

/* The claim goes from the server; the informer reports DELETED. */
static void
fi_gone(const char *ns, const char *name)
{
	struct finf	*fi = fi_find(ns);
	cJSON		*obj;
	char		 key[160];

	snprintf(key, sizeof key, "%s/%s", ns, name);
	obj = cJSON_DetachItemFromObjectCaseSensitive(server, key);
	ck_assert_ptr_nonnull(obj);
	cJSON_Delete(cJSON_DetachItemFromObjectCaseSensitive(fi->cache,
	    name));
	fi->fn((struct informer *)fi, INFORMER_DELETED, obj, fi->arg);
	cJSON_Delete(obj);
}

static const char *
claim_name_of(const cJSON *obj)
{
	return (cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "name")));
}

/* Answers a claim POST: 201 with the object stored, or 409. */
static char *
srv_post(struct freq *r, int conflict)
{
	cJSON	*obj = cJSON_Parse(r->body), *old;
	char	 key[160], *text;

	ck_assert_ptr_nonnull(obj);
	snprintf(key, sizeof key, "%s/%s", NS, claim_name_of(obj));
	if ((old = srv_claim(NS, claim_name_of(obj))) != NULL || conflict) {
		cJSON_Delete(obj);
		fk_reply(r, -AS_ECONFLICT, 409, "{}");
		return (NULL);
	}
	cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(obj,
	    "metadata"), "uid", key);
	cJSON_AddItemToObject(server, key, obj);
	text = xstrdup(claim_name_of(obj));
	fk_reply(r, 0, 201, r->body);
	return (text);
}

/* Sets the claim's status: bound to sandbox (NULL: none), Ready or not. */
static void
srv_status(const char *name, const char *sandbox, const char *ready,
    const char *reason)
{
	cJSON	*obj = srv_claim(NS, name), *st, *conds, *c;

	ck_assert_ptr_nonnull(obj);
	cJSON_DeleteItemFromObjectCaseSensitive(obj, "status");
	st = cJSON_AddObjectToObject(obj, "status");
	if (sandbox != NULL)
		cJSON_AddStringToObject(cJSON_AddObjectToObject(st, "sandbox"),
		    "name", sandbox);
	conds = cJSON_AddArrayToObject(st, "conditions");
	c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "type", "Ready");
	cJSON_AddStringToObject(c, "status", ready);
	cJSON_AddStringToObject(c, "reason", reason);
	cJSON_AddItemToArray(conds, c);
}

/*
 * The pod of the claim's sandbox reached a terminal phase: Ready=False and
 * Finished=True, both with reason (PodSucceeded or PodFailed).  An evicted
 * pod shows PodFailed this way for a moment before it is recreated.
 */
static void
srv_finished(const char *name, const char *sandbox, const char *reason)
{
	cJSON	*c;

	srv_status(name, sandbox, "False", reason);
	c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "type", "Finished");
	cJSON_AddStringToObject(c, "status", "True");
	cJSON_AddStringToObject(c, "reason", reason);
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(srv_claim(NS, name), "status"),
	    "conditions"), c);
}

static void
srv_deleting(const char *name)
{
	cJSON	*obj = srv_claim(NS, name);

	ck_assert_ptr_nonnull(obj);
	cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(obj,
	    "metadata"), "deletionTimestamp", "2026-01-01T00:00:00Z");
}

/* The fake consumer: operations wait until the test completes them. */

enum fop_kind { OP_ACK, OP_DL, OP_HANDOFF, OP_CHECK };

struct fcons;

struct fop {
	TAILQ_ENTRY(fop)	 entry;
	enum fop_kind		 kind;
	struct fcons		*c;
	struct consumer_msg	*msg;	/* ack and dead letter */
	char			 task[TASK_ID_MAX + 1];
	char			 reason[64];	/* dead letter */
	char			 detail[256];
	consumer_done_fn	*done;
	consumer_handoff_fn	*hdone;
	consumer_check_fn	*cdone;
	void			*arg;
};

struct fcons {
	struct consumer		 base;
	char			 queue[64];
	consumer_deliver_fn	*deliver;
	consumer_state_fn	*state;
	void			*arg;
	int			 window;
	int			 outstanding;
	int			 started;
	int			 gen;		/* connection, bumped by fc_lose */
};

static TAILQ_HEAD(, fop) ops = TAILQ_HEAD_INITIALIZER(ops);

#define MAX_CONS	4
static struct fcons *conss[MAX_CONS];

/* What became of each message delivered (the serial in its priv). */
#define MAX_MSGS	4096
struct mrec {
	char		 task[TASK_ID_MAX + 1];
	struct fcons	*c;
	int		 gen;		/* the connection that delivered it */
	int		 acked;
	int		 dead;
	char		 reason[64];
};
static struct mrec	 ledger[MAX_MSGS];
static int		 nmsgs;
static int		 nhandoffs;	/* hand-offs completed */

/*
 * Tasks handed off through each queue's consumers, for the "no ack without
 * hand-off" check.  By queue, not by connection: the consumer of a pool
 * that replaced another (dispatcher_apply) reads the same queue, and the
 * hand-off marker lives on the broker.
 */
#define MAX_HANDED	1024
static struct {
	char		 queue[64];
	char		 task[TASK_ID_MAX + 1];
} handed[MAX_HANDED];
static int	 nhanded;

static int
was_handed_off(const struct fcons *c, const char *task)
{
	int	 i;

	for (i = 0; i < nhanded; i++)
		if (strcmp(handed[i].queue, c->queue) == 0 &&
		    strcmp(handed[i].task, task) == 0)
			return (1);
	return (0);
}

/* Records task as handed off through queue (here, or before a restart). */
static void
note_handed(const char *queue, const char *task)
{
	if (nhanded == MAX_HANDED)
		return;
	as_strlcpy(handed[nhanded].queue, queue, sizeof handed[0].queue);
	as_strlcpy(handed[nhanded++].task, task, sizeof handed[0].task);
}

static struct consumer *
fc_create(struct ev_loop *loop, const struct scaler_source *src,
    const struct consumer_options *co, char *err, size_t errlen);
static int	 fc_start(struct consumer *, consumer_deliver_fn *,
		    consumer_state_fn *, void *);
static void	 fc_set_window(struct consumer *, int);
static int	 fc_ack(struct consumer *, struct consumer_msg *,
		    consumer_done_fn *, void *);
static int	 fc_dead_letter(struct consumer *, struct consumer_msg *,
		    const char *, size_t, consumer_done_fn *, void *);
static int	 fc_handoff(struct consumer *, const char *, const char *,
		    const char *, const char *, size_t, consumer_handoff_fn *,
		    void *);
static int	 fc_handed_off(struct consumer *, const char *, const char *,
		    consumer_check_fn *, void *);
static int	 fc_outstanding(const struct consumer *);
static int	 fc_msg_live(const struct consumer *,
		    const struct consumer_msg *);
static void	 fc_destroy(struct consumer *);

static const struct consumer_type fake_consumer_type = {
	.name = "fake",
	.create = fc_create,
	.start = fc_start,
	.set_window = fc_set_window,
	.ack = fc_ack,
	.dead_letter = fc_dead_letter,
	.handoff = fc_handoff,
	.handed_off = fc_handed_off,
	.outstanding = fc_outstanding,
	.destroy = fc_destroy,
};

/*
 * The same, as RabbitMQ behaves: no marker to ask, and a lost connection
 * (fc_lose) voids what it delivered: its acks and dead letters fail
 * (-AS_ECONN, never sent), the broker redelivers.
 */
static const struct consumer_type fake_rabbit_type = {
	.name = "fake-rabbitmq",
	.create = fc_create,
	.start = fc_start,
	.set_window = fc_set_window,
	.ack = fc_ack,
	.dead_letter = fc_dead_letter,
	.handoff = fc_handoff,
	.msg_live = fc_msg_live,
	.outstanding = fc_outstanding,
	.destroy = fc_destroy,
};

static struct consumer *
fc_create(struct ev_loop *loop, const struct scaler_source *src,
    const struct consumer_options *co, char *err, size_t errlen)
{
	struct fcons	*c = xcalloc(1, sizeof *c);
	size_t		 i;

	(void)loop;
	(void)err;
	(void)errlen;
	c->base.type = strcmp(src->type, "rabbitmq") == 0 ?
	    &fake_rabbit_type : &fake_consumer_type;
	as_strlcpy(c->queue, src->queue, sizeof c->queue);
	c->window = co->window;
	for (i = 0; i < MAX_CONS && conss[i] != NULL; i++)
		;
	ck_assert_uint_lt(i, MAX_CONS);
	conss[i] = c;
	return (&c->base);
}

static int
fc_start(struct consumer *base, consumer_deliver_fn *deliver,
    consumer_state_fn *state, void *arg)
{
	struct fcons	*c = (struct fcons *)base;

	c->deliver = deliver;
	c->state = state;
	c->arg = arg;
	c->started = 1;
	return (0);
}

static void
fc_set_window(struct consumer *base, int window)
{
	((struct fcons *)base)->window = window;
}

static int
fc_outstanding(const struct consumer *base)
{
	return (((const struct fcons *)base)->outstanding);
}

static int
msg_serial(const struct consumer_msg *msg);

static int
fc_msg_live(const struct consumer *base, const struct consumer_msg *msg)
{
	return (ledger[msg_serial(msg)].gen ==
	    ((const struct fcons *)base)->gen);
}

static struct fop *
fop_add(struct fcons *c, enum fop_kind kind, void *arg)
{
	struct fop	*op = xcalloc(1, sizeof *op);

	op->c = c;
	op->kind = kind;
	op->arg = arg;
	TAILQ_INSERT_TAIL(&ops, op, entry);
	return (op);
}

static int
msg_serial(const struct consumer_msg *msg)
{
	return (*(const int *)msg->priv);
}

static int
fc_ack(struct consumer *base, struct consumer_msg *msg,
    consumer_done_fn *done, void *arg)
{
	struct fop	*op = fop_add((struct fcons *)base, OP_ACK, arg);

	ck_assert_ptr_eq(ledger[msg_serial(msg)].c, base);
	op->msg = msg;
	op->done = done;
	return (0);
}

static int
fc_dead_letter(struct consumer *base, struct consumer_msg *msg,
    const char *record, size_t len, consumer_done_fn *done, void *arg)
{
	struct fop	*op = fop_add((struct fcons *)base, OP_DL, arg);
	cJSON		*rec = cJSON_ParseWithLength(record, len);

	ck_assert_ptr_eq(ledger[msg_serial(msg)].c, base);
	ck_assert_ptr_nonnull(rec);
	as_strlcpy(op->reason, cJSON_GetStringValue(
	    cJSON_GetObjectItemCaseSensitive(rec, "reason")),
	    sizeof op->reason);
	as_strlcpy(op->detail, cJSON_GetStringValue(
	    cJSON_GetObjectItemCaseSensitive(rec, "detail")),
	    sizeof op->detail);
	cJSON_Delete(rec);
	op->msg = msg;
	op->done = done;
	return (0);
}

static int
fc_handoff(struct consumer *base, const char *ns, const char *sandbox,
    const char *task_id, const char *body, size_t len,
    consumer_handoff_fn *done, void *arg)
{
	struct fop	*op = fop_add((struct fcons *)base, OP_HANDOFF, arg);

	(void)ns;
	(void)sandbox;
	(void)body;
	(void)len;
	as_strlcpy(op->task, task_id, sizeof op->task);
	op->hdone = done;
	return (0);
}

static int
fc_handed_off(struct consumer *base, const char *ns, const char *task_id,
    consumer_check_fn *done, void *arg)
{
	struct fop	*op = fop_add((struct fcons *)base, OP_CHECK, arg);

	(void)ns;
	as_strlcpy(op->task, task_id, sizeof op->task);
	op->cdone = done;
	return (0);
}

/*
 * Completes op with err; outcome is the hand-off outcome or the marker
 * check's answer.
 */
static void
fop_complete(struct fop *op, int err, int outcome)
{
	struct mrec	*m;
	const char	*errmsg;

	TAILQ_REMOVE(&ops, op, entry);
	if (op->msg != NULL && ledger[msg_serial(op->msg)].gen != op->c->gen)
		/* Its tag is void: never sent (rabbitmq_consumer.c). */
		err = -AS_ECONN;
	errmsg = err != 0 ? "fake failure" : "";
	if (op->msg != NULL) {
		m = &ledger[msg_serial(op->msg)];
		if (err == 0 && op->kind == OP_ACK)
			m->acked++;
		else if (err == 0 && op->kind == OP_DL) {
			m->dead++;
			as_strlcpy(m->reason, op->reason, sizeof m->reason);
		}
		ck_assert_msg(m->acked + m->dead <= 1, "message %d of task %s "
		    "finished twice (acked %d, dead-lettered %d)",
		    msg_serial(op->msg), m->task, m->acked, m->dead);
		ck_assert_msg(!m->acked || was_handed_off(m->c, m->task),
		    "message of task %s acked without a hand-off through "
		    "its consumer (%s)", m->task, op->arg == op->c->arg ?
		    "as a late redelivery" : "by its task");
		if (m->gen == op->c->gen)
			op->c->outstanding--;
		consumer_msg_free(op->msg);
	}
	if (op->kind == OP_HANDOFF && err == 0) {
		nhandoffs++;
		if (!was_handed_off(op->c, op->task))
			note_handed(op->c->queue, op->task);
	}
	switch (op->kind) {
	case OP_ACK:
	case OP_DL:
		op->done(err, errmsg, op->arg);
		break;
	case OP_HANDOFF:
		op->hdone(err, outcome, errmsg, op->arg);
		break;
	case OP_CHECK:
		op->cdone(err, outcome, errmsg, op->arg);
		break;
	}
	free(op);
}

static void
fc_destroy(struct consumer *base)
{
	struct fcons	*c = (struct fcons *)base;
	struct fop	*op, *next;
	size_t		 i;

	for (op = TAILQ_FIRST(&ops); op != NULL; op = next) {
		next = TAILQ_NEXT(op, entry);
		if (op->c == c)
			fop_complete(op, -AS_ECANCELED, 0);
	}
	for (i = 0; i < MAX_CONS; i++)
		if (conss[i] == c)
			conss[i] = NULL;
	free(c);
}

static struct fcons *
fc_find(const char *queue)
{
	size_t	 i;

	for (i = 0; i < MAX_CONS; i++)
		if (conss[i] != NULL && strcmp(conss[i]->queue, queue) == 0)
			return (conss[i]);
	ck_abort_msg("no consumer on queue %s", queue);
	return (NULL);
}

/* The oldest pending operation of kind (on consumer c when not NULL). */
static struct fop *
fop_find(struct fcons *c, enum fop_kind kind)
{
	struct fop	*op;

	TAILQ_FOREACH(op, &ops, entry)
		if (op->kind == kind && (c == NULL || op->c == c))
			return (op);
	return (NULL);
}

static int
fop_count(struct fcons *c, enum fop_kind kind)
{
	struct fop	*op;
	int		 n = 0;

	TAILQ_FOREACH(op, &ops, entry)
		if (op->kind == kind && (c == NULL || op->c == c))
			n++;
	return (n);
}

/*
 * Delivers task message {"id": id}, with "parent" unless NULL, on queue;
 * returns its serial.
 */
static int
fc_deliver_child(const char *queue, const char *id, const char *parent,
    int redelivered)
{
	struct fcons	*c = fc_find(queue);
	struct consumer_msg *msg;
	char		 body[2 * TASK_ID_MAX + 32];
	int		 serial;

	ck_assert(c->started);
	ck_assert_int_lt(c->outstanding, c->window);
	ck_assert_int_lt(nmsgs, MAX_MSGS);
	serial = nmsgs++;
	as_strlcpy(ledger[serial].task, id, sizeof ledger[serial].task);
	ledger[serial].c = c;
	ledger[serial].gen = c->gen;
	if (parent != NULL)
		snprintf(body, sizeof body, "{\"id\":\"%s\",\"parent\":"
		    "\"%s\"}", id, parent);
	else
		snprintf(body, sizeof body, "{\"id\":\"%s\"}", id);
	msg = xcalloc(1, sizeof *msg);
	msg->body = xstrdup(body);
	msg->len = strlen(body);
	msg->redelivered = redelivered;
	msg->received = as_mono_now();
	snprintf(msg->ref, sizeof msg->ref, "%d", serial);
	msg->priv = xmalloc(sizeof(int));
	*(int *)msg->priv = serial;
	c->outstanding++;
	c->deliver(&c->base, msg, c->arg);
	return (serial);
}

static int
fc_deliver(const char *queue, const char *id, int redelivered)
{
	return (fc_deliver_child(queue, id, NULL, redelivered));
}

/*
 * The broker takes back what c delivered on its connection, which is gone
 * (the state callback says so unless quiet: the test reports it later
 * with fc_report), and c connects again.
 */
static void
fc_lose(struct fcons *c, int quiet)
{
	c->gen++;
	c->outstanding = 0;
	if (!quiet)
		c->state(&c->base, 0, "connection lost", c->arg);
	if (!quiet)
		c->state(&c->base, 1, NULL, c->arg);
}

static void
fc_report(struct fcons *c)
{
	c->state(&c->base, 0, "connection lost", c->arg);
	c->state(&c->base, 1, NULL, c->arg);
}

static const struct consumer_type *
fc_type(const char *source_type, const char *address)
{
	(void)address;
	if (strcmp(source_type, "rabbitmq") == 0)
		return (&fake_rabbit_type);
	return (&fake_consumer_type);
}

static const struct dispatch_ops fake_ops = {
	.request = fk_request,
	.cancel = fk_cancel,
	.scale_get = fk_scale_get,
	.scale_patch = fk_scale_patch,
	.informer_new = fi_new,
	.informer_free = fi_free,
	.informer_get = fi_get,
	.informer_stats = fi_stats,
	.consumer_type = fc_type,
};

/* The dispatcher under test, on pools "a" (queue qa) and "b" (qb). */

static struct ev_loop	*loop;
static struct config	*cfg;
static struct dispatcher *disp;

#define POOL(name, queue) \
	"{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"" NS "\"}," \
	"\"spec\":{\"mode\":\"dispatch\",\"source\":{\"type\":\"redis-list\"," \
	"\"address\":\"redis://127.0.0.1:1/0\",\"queue\":\"" queue "\"}," \
	"\"handoff\":{\"mode\":\"inbox\"}," \
	"\"sandbox\":{\"warmPool\":\"wp\",\"spare\":{\"min\":0,\"max\":0}}}}"

/*
 * Traced fixtures (setup_traced): an exporter that never sends (its
 * collector is a closed port, its interval an hour), and every span the
 * dispatcher finishes, in order, from dispatch_span_hook.
 */
static int			 traced;
static struct otlp		*tr_otlp;
static struct trace_span	 tr_spans[64];
static size_t			 tr_n;

static void
tr_hook(const struct trace_span *s)
{
	ck_assert_uint_lt(tr_n, AS_ARRAY_SIZE(tr_spans));
	tr_spans[tr_n++] = *s;
}

/* The dispatcher on config doc, its consumers and requests from dops. */
static void
setup_ops(const char *doc, const struct dispatch_ops *dops)
{
	struct dispatch_options o;
	char		 err[512];

	as_mono_skew = 0;
	memset(ledger, 0, sizeof ledger);
	nmsgs = nhandoffs = nhanded = 0;
	server = cJSON_CreateObject();
	loop = ev_loop_new(EVFLAG_AUTO);
	ck_assert_int_eq(config_parse(doc, strlen(doc), NULL, &cfg, err,
	    sizeof err), 0);
	memset(&o, 0, sizeof o);
	o.instance = "test";
	o.sweep_interval = 86400;	/* the tests run no sweep */
	o.sizing_interval = 86400;
	o.ops = dops;
	if (traced) {
		struct otlp_options	 oo = { .endpoint = "http://127.0.0.1:1",
		    .ring = 256, .batch = 256, .interval = 3600 };

		tr_otlp = otlp_new(loop, &oo, err, sizeof err);
		ck_assert_msg(tr_otlp != NULL, "%s", err);
		tr_n = 0;
		dispatch_span_hook = tr_hook;
		o.otlp = tr_otlp;
	}
	disp = dispatcher_new(loop, NULL, &o);
	dispatcher_apply(disp, cfg);
	fi_synced(NS);
}

static void
setup_doc(const char *doc)
{
	log_set_level(LOG_ERROR);
	setup_ops(doc, &fake_ops);
}

static void
setup(void)
{
	setup_doc("{\"pools\":[" POOL("a", "qa") "," POOL("b", "qb") "]}");
}

static void
setup_traced(void)
{
	traced = 1;
	setup();
}

static void
teardown(void)
{
	struct freq	*r;

	dispatcher_free(disp);	/* NULL: the test freed it */
	disp = NULL;
	otlp_free(tr_otlp);
	tr_otlp = NULL;
	dispatch_span_hook = NULL;
	traced = 0;
	ck_assert_msg(TAILQ_EMPTY(&ops), "consumer operations left");
	while ((r = TAILQ_FIRST(&reqs)) != NULL)
		fk_reply(r, -AS_ECANCELED, 0, NULL);	/* never reached */
	config_free(cfg);
	cJSON_Delete(server);
	ev_loop_destroy(loop);
}

/*
 * What /status says: live task records, of them deferred (not counted by
 * the quota), and the quota's count of tasks.
 */
static void
ns_counts(long *live, long *deferred, long *quota_tasks)
{
	cJSON	*root = cJSON_CreateObject(), *ns;

	dispatcher_status(disp, root);
	ns = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root,
	    "namespaces"), 0);
	ck_assert_ptr_nonnull(ns);
	*live = (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ns,
	    "liveTasks"));
	*deferred = (long)cJSON_GetNumberValue(
	    cJSON_GetObjectItemCaseSensitive(ns, "deferred"));
	*quota_tasks = (long)cJSON_GetNumberValue(
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
	    ns, "used"), "tasks"));
	cJSON_Delete(root);
}

/* A counter of pool name in /status "dispatch" (-1: absent). */
static long
pool_counter(const char *pool, const char *key)
{
	cJSON	*root = cJSON_CreateObject(), *p, *v;
	long	 n = -1;

	dispatcher_status(disp, root);
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(root,
	    "dispatch")) {
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		    p, "name")), pool) != 0)
			continue;
		if ((v = cJSON_GetObjectItemCaseSensitive(p, key)) != NULL)
			n = (long)cJSON_GetNumberValue(v);
	}
	cJSON_Delete(root);
	return (n);
}

/* Runs the sweep as if secs had passed since the last one. */
static void
sweep_after(double secs)
{
	as_mono_skew += secs;
	dispatcher_sweep(loop, &disp->sweep, 0);
}

/*
 * The sums over the pools and states of agentscaler_dispatch_tasks of
 * /metrics: live (all states), waiting (claiming, waiting) and deferred;
 * each series asserted non-negative, and every sample on its family's
 * labels (w.strays).
 */
enum { G_LIVE, G_WAITING, G_DEFERRED, G_N };

static void
pool_gauges(long sums[G_N])
{
	static const char fam[] = "agentscaler_dispatch_tasks{";
	struct prom	 w;
	const char	*line, *end, *sp;
	long		 v;

	memset(sums, 0, G_N * sizeof *sums);
	memset(&w, 0, sizeof w);
	dispatcher_metrics(disp, &w);
	/* Not ck_assert: each passing one is a message to the runner. */
	if (w.strays != 0)
		ck_abort_msg("%u samples off their family's labels", w.strays);
	for (line = w.b.p; line != NULL && *line != '\0'; line = end + 1) {
		if ((end = strchr(line, '\n')) == NULL)
			break;
		if (strncmp(line, fam, strlen(fam)) != 0)
			continue;
		for (sp = end; sp > line && sp[-1] != ' '; sp--)
			;
		v = strtol(sp, NULL, 10);
		if (v < 0)
			ck_abort_msg("%.*s", (int)(end - line), line);
		sums[G_LIVE] += v;
		if (memmem(line, (size_t)(end - line), "state=\"claiming\"",
		    16) != NULL || memmem(line, (size_t)(end - line),
		    "state=\"waiting\"", 15) != NULL)
			sums[G_WAITING] += v;
		if (memmem(line, (size_t)(end - line), "state=\"deferred\"",
		    16) != NULL)
			sums[G_DEFERRED] += v;
	}
	free(w.b.p);
}

static long
live_tasks(void)
{
	long	 live, deferred, q;

	ns_counts(&live, &deferred, &q);
	return (live);
}

/* The task a consumer operation is about. */
static const char *
fop_task(const struct fop *op)
{
	return (op->msg != NULL ? ledger[msg_serial(op->msg)].task : op->task);
}

/*
 * Whether op is one of a task record's: not an ack of a message no task
 * holds (its arg is the pool's, the one start() got), not a dead letter
 * refusing a second message (task.duplicate).  Acks, hand-offs and checks
 * of one record share their arg (the record); a dead letter is matched by
 * task id.
 */
static int
fop_on_task(const struct fop *op)
{
	if (op->arg == op->c->arg)
		return (0);
	return (op->kind != OP_DL || strcmp(op->reason, "task.duplicate") != 0);
}

static void	 check_pool_counts(void);

/*
 * The invariants of the file's opening note that hold after every step
 * (the message ones are asserted as operations complete).  A dead letter
 * that refuses a second message of a live task (task.duplicate) is not an
 * operation on that task.
 */
static void
check_invariants(void)
{
	struct fop	*op, *o2;
	struct freq	*r;
	long		 live, deferred, q, g[G_N];
	int		 quiet = TAILQ_EMPTY(&ops);
	cJSON		*c, *tid, *ex;

	TAILQ_FOREACH(op, &ops, entry) {
		if (!fop_on_task(op))
			continue;
		for (o2 = TAILQ_NEXT(op, entry); o2 != NULL;
		    o2 = TAILQ_NEXT(o2, entry))
			ck_assert_msg(!fop_on_task(o2) || o2->c != op->c ||
			    (op->kind != OP_DL && o2->kind != OP_DL ?
			    o2->arg != op->arg : strcmp(fop_task(o2),
			    fop_task(op)) != 0),
			    "two consumer operations in flight on task %s "
			    "(kinds %d %s, %d %s)", fop_task(op), op->kind,
			    op->reason, o2->kind, o2->reason);
	}
	/*
	 * A record that has let its quota go may wait for a completion;
	 * once nothing is pending, the quota counts exactly the admitted.
	 */
	TAILQ_FOREACH(r, &reqs, entry)
		if (r->done != NULL)
			quiet = 0;
	ns_counts(&live, &deferred, &q);
	ck_assert_int_le(q, live - deferred);
	if (quiet)
		ck_assert_int_eq(q, live - deferred);
	/* The pools' counts add up to the namespace's (no pool below 0). */
	pool_gauges(g);
	ck_assert_int_eq(g[G_DEFERRED], deferred);
	ck_assert_int_le(g[G_LIVE], live);
	ck_assert_int_le(g[G_WAITING], live - deferred);
	check_pool_counts();
	cJSON_ArrayForEach(c, server) {
		tid = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(c, "metadata"),
		    "annotations"), TASK_ANN_TASK_ID);
		ex = cJSON_CreateObject();
		ck_assert_msg(dispatcher_explain(disp,
		    cJSON_GetStringValue(tid), ex) == 1 &&
		    cJSON_GetObjectItemCaseSensitive(ex, "claim") != NULL,
		    "claim %s without a live task", c->string);
		cJSON_Delete(ex);
	}
}

/*
 * Each pool's counts, kept as tasks move (dtask_set_pool, dtask_show),
 * equal a walk of its namespace's tasks: live, waiting, what its CRD status
 * shows, and its own task list; and its namespace's spares the sum of its
 * pools'.
 */
static void
check_pool_counts(void)
{
	struct dpool	*p, *q;
	struct dtask	*t;
	long		 live, waiting, shown[DS_N], mine, spares, spawners;
	int		 k;

	if (disp == NULL)
		return;
	LIST_FOREACH(p, &disp->pools, entry) {
		live = waiting = mine = spawners = 0;
		memset(shown, 0, sizeof shown);
		TAILQ_FOREACH(t, &p->ns->tasks, all) {
			if (t->pool != p)
				continue;
			live++;
			waiting += t->counted_waiting;
			spawners += t->spawned;
			shown[t->doomed ? DS_NONE : t->counted_waiting ?
			    DS_PENDING : t->launch == L_WARM ? DS_WARM :
			    t->launch == L_COLD ? DS_COLD : DS_NONE]++;
		}
		TAILQ_FOREACH(t, &p->tasks, plink) {
			ck_assert_ptr_eq(t->pool, p);
			mine++;
		}
		ck_assert_int_eq(p->live, live);
		ck_assert_int_eq(mine, live);
		ck_assert_int_eq(p->waiting, waiting);
		ck_assert_int_eq(p->spawners, spawners);
		for (k = 0; k < DS_N; k++)
			ck_assert_msg(p->shown[k] == shown[k], "%s: shown[%d] "
			    "%ld, the walk %ld", p->id, k, p->shown[k],
			    shown[k]);
		spares = 0;
		LIST_FOREACH(q, &p->ns->pools, nsentry)
			spares += q->spares_counted;
		ck_assert_int_eq(p->ns->spares, spares);
		ck_assert_ptr_eq(dpool_find(disp, p->cfg->ns, p->cfg->name), p);
	}
}

/*
 * Takes task id off queue through claim, bind and Ready to its hand-off,
 * left in flight.  Returns the claim's name (the caller frees it).
 */
static char *
to_handoff(const char *queue, const char *id, const char *sandbox)
{
	struct freq	*r;
	char		*name;

	fc_deliver(queue, id, 0);
	ck_assert_ptr_nonnull(r = fk_find("POST", "/sandboxclaims"));
	ck_assert_ptr_nonnull(name = srv_post(r, 0));
	fi_show(NS, name);
	srv_status(name, sandbox, "True", "DependenciesReady");
	fi_show(NS, name);
	ck_assert_int_eq(fop_count(NULL, OP_HANDOFF), 1);
	check_invariants();
	return (name);
}

/* Answers the claim's DELETE, and the informer reports it gone. */
static void
finish_delete(const char *name)
{
	struct freq	*r;

	ck_assert_ptr_nonnull(r = fk_find("DELETE", name));
	fk_reply(r, 0, 200, "{}");
	if (srv_claim(NS, name) != NULL)
		fi_gone(NS, name);
}

/*
 * Answers every pending GET of a Sandbox with 404: a claim deleted by
 * someone else holds its quota until its Sandbox is gone.
 */
static void
sandboxes_gone(void)
{
	struct freq	*r;

	while ((r = fk_find("GET", "/sandboxes/")) != NULL)
		fk_reply(r, -AS_ENOTFOUND, 404, "{}");
}

/* Completes every pending consumer operation with success, oldest first. */
static void
complete_all_ops(void)
{
	struct fop	*op;

	while ((op = TAILQ_FIRST(&ops)) != NULL) {
		fop_complete(op, 0, CONSUMER_HANDOFF_DONE);
		check_invariants();
	}
}

START_TEST(test_happy_path)
{
	char	*name = to_handoff("qa", "t1", "sb-1");

	fop_complete(fop_find(NULL, OP_HANDOFF), 0, CONSUMER_HANDOFF_DONE);
	check_invariants();
	ck_assert_int_eq(fop_count(NULL, OP_ACK), 1);
	complete_all_ops();
	ck_assert_int_eq(ledger[0].acked, 1);
	ck_assert_int_eq(live_tasks(), 1);
	/* The sandbox finishes: the claim goes, the record with it. */
	fi_gone(NS, name);
	sandboxes_gone();
	ck_assert_int_eq(live_tasks(), 0);
	check_invariants();
	free(name);
}
END_TEST

/* The span of tr_spans named name about task id, or NULL. */
static const struct trace_span *
tr_find(const char *name, const char *id)
{
	size_t	 i, j;

	for (i = 0; i < tr_n; i++) {
		if (strcmp(tr_spans[i].name, name) != 0)
			continue;
		for (j = 0; j < tr_spans[i].nattrs; j++)
			if (strcmp(tr_spans[i].attrs[j].key,
			    "agentscaler.task.id") == 0 &&
			    strcmp(tr_spans[i].attrs[j].s, id) == 0)
				return (&tr_spans[i]);
	}
	return (NULL);
}

/* The string attribute key of s, or NULL. */
static const char *
tr_attr(const struct trace_span *s, const char *key)
{
	size_t	 j;

	for (j = 0; j < s->nattrs; j++)
		if (strcmp(s->attrs[j].key, key) == 0)
			return (s->attrs[j].s);
	return (NULL);
}

/*
 * Traces (issue 19): a task's phases, arrival to completion, each a child
 * of its task span, in order, then the task span itself, handed to the
 * exporter (which holds them: its collector is away).
 */
START_TEST(test_traced_phases)
{
	static const char *const phases[] = { "agentscaler.admit",
	    "agentscaler.claim", "agentscaler.wait_ready",
	    "agentscaler.handoff", "agentscaler.run", "agentscaler.complete" };
	const struct trace_span	*top;
	struct otlp_stats	 st;
	char			*name = to_handoff("qa", "t1", "sb-1");
	size_t			 i;

	fop_complete(fop_find(NULL, OP_HANDOFF), 0, CONSUMER_HANDOFF_DONE);
	complete_all_ops();
	fi_gone(NS, name);
	sandboxes_gone();
	ck_assert_int_eq(live_tasks(), 0);
	ck_assert_uint_eq(tr_n, AS_ARRAY_SIZE(phases) + 1);
	top = &tr_spans[tr_n - 1];
	ck_assert_str_eq(top->name, "invoke_agent a");
	ck_assert_ptr_eq(tr_find("invoke_agent a", "t1"), top);
	ck_assert_int_eq(top->kind, TRACE_KIND_CLIENT);
	ck_assert_int_eq(top->status, TRACE_OK);
	ck_assert(trace_id_zero(top->parent_id, 8));	/* no traceparent */
	ck_assert(!top->has_link);
	for (i = 0; i < AS_ARRAY_SIZE(phases); i++) {
		ck_assert_str_eq(tr_spans[i].name, phases[i]);
		ck_assert_mem_eq(tr_spans[i].ctx.trace_id, top->ctx.trace_id,
		    16);
		ck_assert_mem_eq(tr_spans[i].parent_id, top->ctx.span_id, 8);
		ck_assert(tr_spans[i].start_ns <= tr_spans[i].end_ns);
		ck_assert(tr_spans[i].start_ns >= top->start_ns);
		if (i > 0)
			ck_assert(tr_spans[i].start_ns >=
			    tr_spans[i - 1].end_ns);
	}
	otlp_stats(tr_otlp, &st);
	ck_assert_uint_eq(st.pending, tr_n);
	free(name);
}
END_TEST

/*
 * A sub-task without a traceparent of its own: in its parent task's trace,
 * under the parent's span, and linked to it.
 */
START_TEST(test_traced_child_linked)
{
	const struct trace_span	*par, *kid;
	struct freq		*r;
	char			*pn = to_handoff("qa", "p1", "sb-1"), *cn;

	fop_complete(fop_find(NULL, OP_HANDOFF), 0, CONSUMER_HANDOFF_DONE);
	complete_all_ops();
	fc_deliver_child("qa", "c1", "p1", 0);
	ck_assert_ptr_nonnull(r = fk_find("POST", "/sandboxclaims"));
	ck_assert_ptr_nonnull(cn = srv_post(r, 0));
	fi_show(NS, cn);
	srv_status(cn, "sb-2", "True", "DependenciesReady");
	fi_show(NS, cn);
	fop_complete(fop_find(NULL, OP_HANDOFF), 0, CONSUMER_HANDOFF_DONE);
	complete_all_ops();
	fi_gone(NS, cn);
	fi_gone(NS, pn);
	sandboxes_gone();
	ck_assert_int_eq(live_tasks(), 0);
	ck_assert_ptr_nonnull(par = tr_find("invoke_agent a", "p1"));
	ck_assert_ptr_nonnull(kid = tr_find("invoke_agent a", "c1"));
	ck_assert(!par->has_link);
	ck_assert(kid->has_link);
	ck_assert_str_eq(kid->link_type, "parent_task");
	ck_assert_mem_eq(kid->link.trace_id, par->ctx.trace_id, 16);
	ck_assert_mem_eq(kid->link.span_id, par->ctx.span_id, 8);
	ck_assert_mem_eq(kid->ctx.trace_id, par->ctx.trace_id, 16);
	ck_assert_mem_eq(kid->parent_id, par->ctx.span_id, 8);
	ck_assert_ptr_nonnull(tr_find("agentscaler.handoff", "c1"));
	/* A sub-task's span carries every attribute (9; 8 fitted before). */
	ck_assert_str_eq(tr_attr(kid, "agentscaler.task.parent"), "p1");
	ck_assert_ptr_nonnull(tr_attr(kid, "agentscaler.launch"));
	free(pn);
	free(cn);
}
END_TEST

/*
 * A task still running when the dispatcher goes (a clean stop): its run
 * and task spans end then and still name its pool, though the pools are
 * freed before the tasks.
 */
START_TEST(test_traced_live_at_free)
{
	const struct trace_span	*top, *run;
	char			*name = to_handoff("qa", "t1", "sb-1");

	fop_complete(fop_find(NULL, OP_HANDOFF), 0, CONSUMER_HANDOFF_DONE);
	complete_all_ops();
	ck_assert_int_eq(live_tasks(), 1);
	ck_assert_ptr_null(tr_find("invoke_agent a", "t1"));
	dispatcher_free(disp);
	disp = NULL;
	ck_assert_ptr_nonnull(top = tr_find("invoke_agent a", "t1"));
	ck_assert_str_eq(tr_attr(top, "gen_ai.agent.name"), "a");
	ck_assert_ptr_nonnull(run = tr_find("agentscaler.run", "t1"));
	ck_assert_str_eq(tr_attr(run, "agentscaler.pool"), "a");
	free(name);
}
END_TEST

/* A claim that fails before the hand-off: dead letter, claim deleted. */
static const struct {
	const char	*name;
	int		 deleting;	/* else terminal */
	const char	*reason;
} early_rows[] = {
	{ "terminal before hand-off", 0, "claim.PodFailed" },
	{ "deleting before hand-off", 1, "claim.deleted" },
};

START_TEST(test_claim_fails_before_handoff)
{
	struct freq	*r;
	char		*name;

	fc_deliver("qa", "t1", 0);
	ck_assert_ptr_nonnull(r = fk_find("POST", "/sandboxclaims"));
	ck_assert_ptr_nonnull(name = srv_post(r, 0));
	fi_show(NS, name);
	if (early_rows[_i].deleting)
		srv_deleting(name);
	else
		srv_status(name, NULL, "False", "PodFailed");
	fi_show(NS, name);
	check_invariants();
	ck_assert_int_eq(fop_count(NULL, OP_DL), 1);
	complete_all_ops();
	finish_delete(name);
	check_invariants();
	ck_assert_int_eq(ledger[0].dead, 1);
	ck_assert_str_eq(ledger[0].reason, early_rows[_i].reason);
	ck_assert_int_eq(live_tasks(), 0);
	free(name);
}
END_TEST

/*
 * Defect 1 (issue 12): the claim goes (deleted, being deleted, or
 * terminal) while the task's hand-off is in flight.  No dead letter may
 * start beside the hand-off; once it completes, a task that reached its
 * sandbox has its message acked, one that did not is dead-lettered.
 */
enum claim_change { CC_DELETED, CC_DELETING, CC_TERMINAL };

static const struct {
	const char	*name;
	enum claim_change change;
	int		 others_first;	/* other completions before hand-off */
	int		 handoff_err;	/* 0: the hand-off lands */
	const char	*reason;	/* the dead letter's, when it fails */
} gone_rows[] = {
	{ "deleted, hand-off first", CC_DELETED, 0, 0, NULL },
	{ "deleted, others first", CC_DELETED, 1, 0, NULL },
	{ "deleted, hand-off fails", CC_DELETED, 0, -AS_ECONN,
	    "claim.deleted" },
	{ "deleting, hand-off first", CC_DELETING, 0, 0, NULL },
	{ "deleting, others first", CC_DELETING, 1, 0, NULL },
	{ "deleting, hand-off fails", CC_DELETING, 1, -AS_ECONN,
	    "claim.deleted" },
	{ "terminal, hand-off first", CC_TERMINAL, 0, 0, NULL },
	{ "terminal, others first", CC_TERMINAL, 1, 0, NULL },
	{ "terminal, hand-off fails", CC_TERMINAL, 0, -AS_ECONN,
	    "claim.PodFailed" },
};

START_TEST(test_claim_gone_during_handoff)
{
	char		*name = to_handoff("qa", "t1", "sb-1");
	struct fop	*op, *h = fop_find(NULL, OP_HANDOFF);
	struct freq	*r;

	switch (gone_rows[_i].change) {
	case CC_DELETED:
		fi_gone(NS, name);
		break;
	case CC_DELETING:
		srv_deleting(name);
		fi_show(NS, name);
		break;
	case CC_TERMINAL:
		srv_status(name, "sb-1", "False", "PodFailed");
		fi_show(NS, name);
		break;
	}
	check_invariants();
	ck_assert_int_eq(fop_count(NULL, OP_DL), 0);
	if (gone_rows[_i].others_first) {
		/* Whatever else is pending completes before the hand-off. */
		while ((op = TAILQ_FIRST(&ops)) != NULL && op != h)
			fop_complete(op, 0, 0);
		if ((r = fk_find("DELETE", name)) != NULL)
			finish_delete(name);
		check_invariants();
	}
	fop_complete(h, gone_rows[_i].handoff_err, CONSUMER_HANDOFF_DONE);
	check_invariants();
	complete_all_ops();
	if (fk_find("DELETE", name) != NULL)
		finish_delete(name);
	sandboxes_gone();
	check_invariants();
	if (gone_rows[_i].handoff_err == 0) {
		ck_assert_int_eq(ledger[0].acked, 1);
		ck_assert_int_eq(ledger[0].dead, 0);
	} else {
		ck_assert_int_eq(ledger[0].acked, 0);
		ck_assert_int_eq(ledger[0].dead, 1);
		ck_assert_str_eq(ledger[0].reason, gone_rows[_i].reason);
	}
	ck_assert_int_eq(live_tasks(), 0);
	free(name);
}
END_TEST

/*
 * Defect 4 (issue 12): task t1 of pool a is live when pool b (same
 * namespace) takes a message with the same id.  b's message must end
 * through b's consumer (a dead letter naming pool a), and nothing may go
 * through a's: before, it joined a's task and was acked by a's consumer,
 * and b leaked a window slot each time.
 */
enum a_stage { A_CLAIMING, A_RUNNING, A_RELEASING };

static const struct {
	const char	*name;
	enum a_stage	 stage;
} twin_rows[] = {
	{ "pool a still claiming", A_CLAIMING },
	{ "pool a running", A_RUNNING },
	{ "pool a releasing", A_RELEASING },
};

START_TEST(test_same_id_two_pools)
{
	struct fcons	*a = fc_find("qa"), *b = fc_find("qb");
	struct fop	*op;
	char		*name = NULL;
	int		 serial;

	if (twin_rows[_i].stage == A_CLAIMING)
		fc_deliver("qa", "t1", 0);
	else {
		name = to_handoff("qa", "t1", "sb-1");
		complete_all_ops();		/* hand-off, then ack */
		ck_assert_int_eq(ledger[0].acked, 1);
	}
	if (twin_rows[_i].stage == A_RELEASING) {
		srv_status(name, "sb-1", "False", "PodSucceeded");
		fi_show(NS, name);
		ck_assert_ptr_nonnull(fk_find("DELETE", name));
	}
	serial = fc_deliver("qb", "t1", 0);
	check_invariants();
	ck_assert_int_eq(fop_count(a, OP_HANDOFF) + fop_count(a, OP_ACK) +
	    fop_count(a, OP_DL), 0);
	ck_assert_ptr_nonnull(op = fop_find(b, OP_DL));
	ck_assert_str_eq(op->reason, "task.duplicate");
	ck_assert_msg(strstr(op->detail, NS "/a") != NULL, "detail %s",
	    op->detail);
	complete_all_ops();
	ck_assert_int_eq(ledger[serial].dead, 1);
	ck_assert_int_eq(b->outstanding, 0);
	/* a's task goes on untouched. */
	ck_assert_int_eq(live_tasks(), 1);
	check_invariants();
	free(name);
}
END_TEST

/*
 * A claim on the server for task id, named name, bound to sandbox, of the
 * pool whose label (task_pool_label) is pool.
 */
static void
srv_put_claim_of(const char *name, const char *id, const char *sandbox,
    const char *pool)
{
	char	 key[160], *doc;
	cJSON	*obj;

	doc = xasprintf("{\"metadata\":{\"name\":\"%s\",\"namespace\":"
	    "\"" NS "\",\"labels\":{\"" TASK_LABEL_MANAGED "\":\""
	    TASK_LABEL_MANAGED_VALUE "\",\"" TASK_LABEL_POOL "\":\"%s\","
	    "\"" TASK_LABEL_DEPTH "\":\"0\"},\"annotations\":{\""
	    TASK_ANN_TASK_ID "\":\"%s\",\"" TASK_ANN_ROOT_ID "\":\"%s\"}}}",
	    name, pool, id, id);
	ck_assert_ptr_nonnull(obj = cJSON_Parse(doc));
	free(doc);
	snprintf(key, sizeof key, "%s/%s", NS, name);
	cJSON_AddItemToObject(server, key, obj);
	if (sandbox != NULL)
		srv_status(name, sandbox, "True", "DependenciesReady");
}

/* The same, of pool a. */
static void
srv_put_claim(const char *name, const char *id, const char *sandbox)
{
	srv_put_claim_of(name, id, sandbox, "a");
}

/*
 * Defect 9 (issue 12): the claim name of t1 is taken by another task's
 * claim (a collision, made on purpose under the old FNV names).  The POST
 * gets 409, the GET shows the other task: t1 is dead-lettered
 * claim.nameConflict and the other task's claim is never deleted.
 */
START_TEST(test_name_conflict_keeps_other_claim)
{
	struct freq	*r;
	char		 name[CLAIM_NAME_MAX + 1], *body;

	task_claim_name("a", NS, "t1", name);
	srv_put_claim(name, "someone-else", "sb-9");
	fi_show(NS, name);		/* rebuilt: a live task of its own */
	fc_deliver("qa", "t1", 0);
	ck_assert_ptr_nonnull(r = fk_find("POST", "/sandboxclaims"));
	ck_assert_ptr_null(srv_post(r, 0));	/* 409 */
	ck_assert_ptr_nonnull(r = fk_find("GET", name));
	body = cJSON_PrintUnformatted(srv_claim(NS, name));
	fk_reply(r, 0, 200, body);
	free(body);
	ck_assert_ptr_null(fk_find("DELETE", name));
	complete_all_ops();
	ck_assert_ptr_null(fk_find("DELETE", name));
	ck_assert_int_eq(ledger[0].dead, 1);
	ck_assert_str_eq(ledger[0].reason, "claim.nameConflict");
	ck_assert_int_eq(live_tasks(), 1);	/* someone-else's */
	ck_assert_ptr_nonnull(srv_claim(NS, name));
	check_invariants();
}
END_TEST

/*
 * Upgrade: a claim named by the old scheme ("-" and 16 hex digits of
 * FNV-1a-64) is rebuilt from its labels and annotations, and the task's
 * redelivered message joins it: no second claim under the new name.
 */
START_TEST(test_old_claim_name_adopted)
{
	static const char old[] = "a-07d98f71556c9ea4";
	struct fop	*op;

	srv_put_claim(old, "t1", "sb-1");
	fi_show(NS, old);
	ck_assert_int_eq(live_tasks(), 1);
	fc_deliver("qa", "t1", 1);
	ck_assert_ptr_null(fk_find("POST", "/sandboxclaims"));
	ck_assert_ptr_nonnull(op = fop_find(NULL, OP_HANDOFF));
	ck_assert_str_eq(op->task, "t1");
	complete_all_ops();
	ck_assert_int_eq(ledger[0].acked, 1);
	fi_gone(NS, old);
	sandboxes_gone();
	ck_assert_int_eq(live_tasks(), 0);
	check_invariants();
}
END_TEST

/* Applies the config doc in place of cfg (which it frees). */
static void
reapply(const char *doc)
{
	struct config	*c;
	char		 err[512];

	ck_assert_msg(config_parse(doc, strlen(doc), NULL, &c, err,
	    sizeof err) == 0, "%s", err);
	dispatcher_apply(disp, c);
	config_free(cfg);
	cfg = c;
	check_invariants();
}

/* The first claim on the server not yet bound and Ready, or NULL. */
static const char *
unready_claim(void)
{
	cJSON	*c;
	char	*txt;
	int	 ready;

	cJSON_ArrayForEach(c, server) {
		txt = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c,
		    "status"));
		ready = txt != NULL && strstr(txt, "\"True\"") != NULL;
		free(txt);
		if (!ready && cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(c, "metadata"),
		    "deletionTimestamp") == NULL)
			return (claim_name_of(c));
	}
	return (NULL);
}

/*
 * A cluster and broker where everything works: completes consumer
 * operations (the marker answering as the broker's would), answers claim
 * requests, binds claims; until nothing is left to do.
 */
static void
drive(void)
{
	struct fop	*op;
	struct freq	*r;
	const char	*name;
	char		 sb[80], *made, *body;
	char		 cname[CLAIM_NAME_MAX + 1];

	for (;;) {
		check_invariants();
		if ((op = TAILQ_FIRST(&ops)) != NULL) {
			fop_complete(op, 0, op->kind == OP_CHECK ?
			    was_handed_off(op->c, op->task) :
			    was_handed_off(op->c, op->task) ?
			    CONSUMER_HANDOFF_DUPLICATE : CONSUMER_HANDOFF_DONE);
			continue;
		}
		/* A claim someone else deleted: its Sandbox is gone too. */
		if ((r = fk_find("GET", "/sandboxes/")) != NULL) {
			fk_reply(r, -AS_ENOTFOUND, 404, "{}");
			continue;
		}
		if ((r = fk_find("POST", "/sandboxclaims")) != NULL) {
			if ((made = srv_post(r, 0)) != NULL) {
				fi_show(NS, made);
				free(made);
			}
			continue;
		}
		if ((r = fk_find("GET", "/sandboxclaims/")) != NULL) {
			as_strlcpy(cname, strrchr(r->path, '/') + 1,
			    sizeof cname);
			if (srv_claim(NS, cname) == NULL)
				fk_reply(r, -AS_ENOTFOUND, 404, "{}");
			else {
				body = cJSON_PrintUnformatted(srv_claim(NS,
				    cname));
				fk_reply(r, 0, 200, body);
				free(body);
			}
			continue;
		}
		if ((r = fk_find("DELETE", "/sandboxclaims/")) != NULL) {
			as_strlcpy(cname, strrchr(r->path, '/') + 1,
			    sizeof cname);
			if (srv_claim(NS, cname) == NULL)
				fk_reply(r, -AS_ENOTFOUND, 404, "{}");
			else
				finish_delete(cname);
			continue;
		}
		if ((name = unready_claim()) != NULL) {
			snprintf(sb, sizeof sb, "sb-%s", name);
			srv_status(name, sb, "True", "DependenciesReady");
			fi_show(NS, name);
			continue;
		}
		break;
	}
}

/* Every claim's sandbox finishes: the claims go. */
static void
all_claims_gone(void)
{
	cJSON	*c;
	char	 name[CLAIM_NAME_MAX + 1];

	while ((c = cJSON_GetArrayItem(server, 0)) != NULL) {
		as_strlcpy(name, claim_name_of(c), sizeof name);
		fi_gone(NS, name);
		sandboxes_gone();
		check_invariants();
	}
}

#define QUOTA1 \
	"\"quotas\":[{\"metadata\":{\"name\":\"q\",\"namespace\":\"" NS "\"}," \
	"\"spec\":{\"maxSandboxes\":1}}]"
#define POOL_WP2(name, queue) \
	"{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"" NS "\"}," \
	"\"spec\":{\"mode\":\"dispatch\",\"source\":{\"type\":\"redis-list\"," \
	"\"address\":\"redis://127.0.0.1:1/0\",\"queue\":\"" queue "\"}," \
	"\"handoff\":{\"mode\":\"inbox\"}," \
	"\"sandbox\":{\"warmPool\":\"wp2\",\"spare\":{\"min\":0,\"max\":0}}}}"

/*
 * Defect 3 (issue 12): pool a is replaced (its warm pool edited: a new
 * pool of the same name) or removed while its task t1 is at each stage.
 * Its held message goes back to the broker; a replacement takes the
 * record over and the message, redelivered, joins it and is handed off
 * (or dead-lettered for the reason its task failed); a removed pool's
 * tasks that never reached a sandbox have their claims deleted.  Counts
 * stay exact throughout (check_invariants: no pool's deferred count below
 * 0, the pools' deferred counts add up to the namespace's).
 */
enum rp_stage { RP_DEFERRED, RP_CLAIMING, RP_WAITING, RP_HANDOFF, RP_ACKING,
	RP_RUNNING, RP_DEAD };

static const struct {
	const char	*name;
	enum rp_stage	 stage;
	int		 removed;	/* else replaced */
} replace_rows[] = {
	{ "replaced while deferred", RP_DEFERRED, 0 },
	{ "replaced while claiming", RP_CLAIMING, 0 },
	{ "replaced while waiting", RP_WAITING, 0 },
	{ "replaced during hand-off", RP_HANDOFF, 0 },
	{ "replaced during ack", RP_ACKING, 0 },
	{ "replaced while running", RP_RUNNING, 0 },
	{ "replaced during dead letter", RP_DEAD, 0 },
	{ "removed while deferred", RP_DEFERRED, 1 },
	{ "removed while claiming", RP_CLAIMING, 1 },
	{ "removed while waiting", RP_WAITING, 1 },
	{ "removed during hand-off", RP_HANDOFF, 1 },
	{ "removed while running", RP_RUNNING, 1 },
	{ "removed during dead letter", RP_DEAD, 1 },
};

START_TEST(test_pool_replaced)
{
	static const char quota_doc[] = "{\"pools\":[" POOL("a", "qa") ","
	    POOL("b", "qb") "]," QUOTA1 "}";
	static const char replaced_doc[] = "{\"pools\":[" POOL_WP2("a", "qa")
	    "," POOL("b", "qb") "]," QUOTA1 "}";
	static const char removed_doc[] = "{\"pools\":[" POOL("b", "qb") "],"
	    QUOTA1 "}";
	enum rp_stage	 stage = replace_rows[_i].stage;
	struct freq	*r;
	char		*name = NULL, *name0 = NULL;
	char		 cname[CLAIM_NAME_MAX + 1];
	long		 live, deferred, q;
	int		 s1, s2 = -1;

	reapply(quota_doc);
	if (stage == RP_DEFERRED) {
		/* t0 of pool b holds the one sandbox the quota allows. */
		name0 = to_handoff("qb", "t0", "sb-0");
		complete_all_ops();
	}
	s1 = nmsgs;
	switch (stage) {
	case RP_DEFERRED:
		fc_deliver("qa", "t1", 0);
		ns_counts(&live, &deferred, &q);
		ck_assert_int_eq(deferred, 1);
		break;
	case RP_CLAIMING:
		fc_deliver("qa", "t1", 0);
		break;
	case RP_WAITING:
		fc_deliver("qa", "t1", 0);
		ck_assert_ptr_nonnull(r = fk_find("POST", "/sandboxclaims"));
		ck_assert_ptr_nonnull(name = srv_post(r, 0));
		fi_show(NS, name);
		break;
	case RP_HANDOFF:
		name = to_handoff("qa", "t1", "sb-1");
		break;
	case RP_ACKING:
	case RP_RUNNING:
		name = to_handoff("qa", "t1", "sb-1");
		fop_complete(fop_find(NULL, OP_HANDOFF), 0,
		    CONSUMER_HANDOFF_DONE);
		ck_assert_int_eq(fop_count(NULL, OP_ACK), 1);
		if (stage == RP_RUNNING)
			complete_all_ops();
		break;
	case RP_DEAD:
		fc_deliver("qa", "t1", 0);
		ck_assert_ptr_nonnull(r = fk_find("POST", "/sandboxclaims"));
		ck_assert_ptr_nonnull(name = srv_post(r, 0));
		fi_show(NS, name);
		srv_status(name, NULL, "False", "PodFailed");
		fi_show(NS, name);
		ck_assert_int_eq(fop_count(NULL, OP_DL), 1);
		break;
	}
	check_invariants();

	reapply(replace_rows[_i].removed ? removed_doc : replaced_doc);
	/* The message held went back to the broker (or was acked before). */
	ck_assert_int_eq(ledger[s1].acked, stage == RP_RUNNING);
	ck_assert_int_eq(ledger[s1].dead, 0);
	ns_counts(&live, &deferred, &q);
	ck_assert_int_eq(deferred, 0);
	if (!replace_rows[_i].removed && stage != RP_RUNNING) {
		/* The broker redelivers it, to the new pool's consumer. */
		s2 = fc_deliver("qa", "t1", 1);
		check_invariants();
	}
	if (stage == RP_DEFERRED) {
		if (!replace_rows[_i].removed) {
			ns_counts(&live, &deferred, &q);
			ck_assert_int_eq(deferred, 1);
		}
		drive();
		fi_gone(NS, name0);	/* t0 ends: its slot frees */
		sandboxes_gone();	/* once its Sandbox is gone */
		ev_run(loop, EVRUN_NOWAIT);	/* the pump's kick */
	}
	drive();
	if (replace_rows[_i].removed && (stage == RP_CLAIMING ||
	    stage == RP_WAITING || stage == RP_DEAD)) {
		/* It never reached a sandbox: its claim was deleted. */
		task_claim_name("a", NS, "t1", cname);
		ck_assert_ptr_null(srv_claim(NS, cname));
	}
	if (s2 >= 0 && stage == RP_DEAD) {
		ck_assert_int_eq(ledger[s2].dead, 1);
		ck_assert_str_eq(ledger[s2].reason, "claim.PodFailed");
	} else if (s2 >= 0) {
		ck_assert_msg(ledger[s2].acked == 1, "redelivered message of "
		    "t1 not handed off and acked");
		ck_assert_int_eq(fc_find("qa")->outstanding, 0);
	}
	if (!replace_rows[_i].removed)
		/* The window is whole: prefetch, nothing deferred. */
		ck_assert_int_eq(fc_find("qa")->window, 32);
	all_claims_gone();
	ck_assert_int_eq(live_tasks(), 0);
	check_invariants();
	free(name);
	free(name0);
}
END_TEST

/*
 * Defect 10 (issue 12): a task known from its claim only (rebuilt at
 * start, never handed off by this process) whose claim fails or finishes
 * and is being released; then its message comes (redelivered).  Before,
 * it was acked as "a late redelivery" with neither hand-off nor dead
 * letter.  The hand-off marker decides: there (the task ran before the
 * restart), the message is acked; not there, it is dead-lettered, for the
 * claim's reason when the claim failed.
 */
static const struct {
	const char	*name;
	int		 terminal;	/* else succeeded */
	int		 marker;	/* the marker is there */
	const char	*reason;	/* of the dead letter, or NULL */
} rebuilt_rows[] = {
	{ "claim failed, no marker", 1, 0, "claim.PodFailed" },
	{ "claim failed, marker", 1, 1, NULL },
	{ "claim succeeded, no marker", 0, 0, "claim.PodSucceeded" },
	{ "claim succeeded, marker", 0, 1, NULL },
};

START_TEST(test_rebuilt_released_then_message)
{
	struct fop	*op;
	char		 name[CLAIM_NAME_MAX + 1];

	task_claim_name("a", NS, "t1", name);
	srv_put_claim(name, "t1", rebuilt_rows[_i].terminal ? NULL : "sb-1");
	fi_show(NS, name);
	ck_assert_int_eq(live_tasks(), 1);
	if (rebuilt_rows[_i].terminal)
		srv_status(name, NULL, "False", "PodFailed");
	else
		srv_status(name, "sb-1", "False", "PodSucceeded");
	fi_show(NS, name);
	ck_assert_ptr_nonnull(fk_find("DELETE", name));
	if (rebuilt_rows[_i].marker)
		note_handed("qa", "t1");	/* before the restart */
	fc_deliver("qa", "t1", 1);
	check_invariants();
	while ((op = TAILQ_FIRST(&ops)) != NULL) {
		fop_complete(op, 0, op->kind == OP_CHECK ?
		    was_handed_off(op->c, op->task) : 0);
		check_invariants();
	}
	if (rebuilt_rows[_i].reason == NULL)
		ck_assert_int_eq(ledger[0].acked, 1);
	else {
		ck_assert_int_eq(ledger[0].dead, 1);
		ck_assert_str_eq(ledger[0].reason, rebuilt_rows[_i].reason);
	}
	finish_delete(name);
	ck_assert_int_eq(live_tasks(), 0);
	check_invariants();
}
END_TEST

/*
 * Random seeds 34, 42, 111 and 296 (issue 12, check_dispatch at d4e60e9):
 * pool a is removed while its task t1 has been handed off through qa; the
 * record lives on without a pool (dpool_free: it may still run) until its
 * claim goes.  Then a message with the same id comes on pool b's queue
 * qb.  It is not t1's message (ids are unique in a namespace, and t1 came
 * from qa): it is dead-lettered through b naming pool a, never acked as
 * a late redelivery (nothing went through qb: the ledger's check), nor
 * joined to the record (which would re-parent t1 to b, hand it off again
 * through qb and ack b's later copies unseen).  Before, a record without
 * a pool was taken as any pool's: seeds 34 and 296 acked b's message of a
 * task released after its sandbox failed, 42 and 111 of one whose ack
 * was cut by the removal.  The last row is the control: pool a comes
 * back and t1's own message, redelivered on qa, is acked (it ran).
 */
enum rm_stage { RM_RUNNING, RM_ACK_CUT, RM_RELEASING, RM_BACK };

static const struct {
	const char	*name;
	enum rm_stage	 stage;
} removed_rows[] = {
	{ "running, then b's message", RM_RUNNING },
	{ "ack cut by the removal, then b's message", RM_ACK_CUT },
	{ "sandbox failed, releasing, then b's message", RM_RELEASING },
	{ "pool a back, then a's message", RM_BACK },
};

START_TEST(test_removed_pool_task_other_queue)
{
	static const char removed_doc[] = "{\"pools\":[" POOL("b", "qb")
	    "]}";
	static const char back_doc[] = "{\"pools\":[" POOL("a", "qa") ","
	    POOL("b", "qb") "]}";
	enum rm_stage	 stage = removed_rows[_i].stage;
	struct fcons	*b = fc_find("qb");
	struct fop	*op;
	char		*name;
	int		 serial;

	name = to_handoff("qa", "t1", "sb-1");
	if (stage == RM_ACK_CUT) {
		ck_assert_ptr_nonnull(op = fop_find(NULL, OP_HANDOFF));
		fop_complete(op, 0, CONSUMER_HANDOFF_DONE);
		ck_assert_ptr_nonnull(fop_find(NULL, OP_ACK));
	} else
		complete_all_ops();		/* hand-off, then ack */
	check_invariants();
	reapply(removed_doc);			/* cancels a's ack, if any */
	ck_assert_int_eq(live_tasks(), 1);	/* it may still run */
	if (stage == RM_RELEASING) {
		srv_status(name, NULL, "False", "PodFailed");
		fi_show(NS, name);
		ck_assert_ptr_nonnull(fk_find("DELETE", name));
	}
	if (stage == RM_BACK) {
		reapply(back_doc);
		serial = fc_deliver("qa", "t1", 1);
		check_invariants();
		complete_all_ops();
		ck_assert_int_eq(ledger[serial].acked, 1);
		free(name);
		return;
	}
	serial = fc_deliver("qb", "t1", 0);
	check_invariants();
	ck_assert_int_eq(fop_count(b, OP_HANDOFF) + fop_count(b, OP_ACK), 0);
	ck_assert_ptr_nonnull(op = fop_find(b, OP_DL));
	ck_assert_str_eq(op->reason, "task.duplicate");
	ck_assert_msg(strstr(op->detail, NS "/a") != NULL, "detail %s",
	    op->detail);
	complete_all_ops();
	ck_assert_int_eq(ledger[serial].dead, 1);
	ck_assert_int_eq(ledger[serial].acked, 0);
	ck_assert_int_eq(b->outstanding, 0);
	/* The record is still a's, not b's: b's next copy is refused too. */
	serial = fc_deliver("qb", "t1", 1);
	complete_all_ops();
	ck_assert_int_eq(ledger[serial].dead, 1);
	ck_assert_int_eq(pool_counter("b", "handedOff"), 0);
	check_invariants();
	free(name);
}
END_TEST

/*
 * The record of a task rebuilt from its claim while no pool of the
 * claim's pool label exists knows its pool by that label only.  Pool names
 * may be longer than a label (63), when the label is the name cut and
 * hashed (task_pool_label): the pool of that name, once configured, is
 * the record's, and the task's redelivered message joins it and is
 * handed off.  Before, the label was compared with the pool's name, and
 * the task's own message was dead-lettered task.duplicate as another
 * pool's.
 */
#define LONG_POOL \
	"pool-with-a-name-longer-than-a-label-value-may-be-which-is-63-chars"

START_TEST(test_rebuilt_long_pool_name)
{
	static const char doc[] = "{\"pools\":[" POOL("a", "qa") ","
	    POOL("b", "qb") "," POOL(LONG_POOL, "ql") "]}";
	char		 name[CLAIM_NAME_MAX + 1], label[64];
	struct fop	*op;
	int		 serial;

	ck_assert_uint_gt(strlen(LONG_POOL), 63);
	task_pool_label(LONG_POOL, label);
	ck_assert_str_ne(label, LONG_POOL);
	task_claim_name(LONG_POOL, NS, "t1", name);
	srv_put_claim_of(name, "t1", "sb-1", label);
	fi_show(NS, name);		/* no such pool yet */
	ck_assert_int_eq(live_tasks(), 1);
	reapply(doc);
	serial = fc_deliver("ql", "t1", 1);
	check_invariants();
	ck_assert_ptr_null(fop_find(NULL, OP_DL));
	ck_assert_ptr_nonnull(op = fop_find(fc_find("ql"), OP_HANDOFF));
	ck_assert_str_eq(op->task, "t1");
	complete_all_ops();
	ck_assert_int_eq(ledger[serial].acked, 1);
	check_invariants();
}
END_TEST

#define POOL_RT(name, queue, rt) \
	"{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"" NS "\"}," \
	"\"spec\":{\"mode\":\"dispatch\",\"source\":{\"type\":\"redis-list\"," \
	"\"address\":\"redis://127.0.0.1:1/0\",\"queue\":\"" queue "\"}," \
	"\"handoff\":{\"mode\":\"inbox\"}," \
	"\"sandbox\":{\"warmPool\":\"wp\",\"readyTimeoutSeconds\":" rt "," \
	"\"spare\":{\"min\":0,\"max\":0}}}}"

/* Stores the POSTed claim on the server, but the answer is lost. */
static void
srv_post_lost(struct freq *r)
{
	cJSON	*obj = cJSON_Parse(r->body);
	char	 key[160];

	ck_assert_ptr_nonnull(obj);
	snprintf(key, sizeof key, "%s/%s", NS, claim_name_of(obj));
	ck_assert_ptr_null(srv_claim(NS, claim_name_of(obj)));
	cJSON_AddItemToObject(server, key, obj);
	fk_reply(r, -AS_ECONN, 0, NULL);
}

/*
 * Defect 5 (issue 12): the API server cannot be reached for longer than
 * readyTimeoutSeconds (10 s here; the clock is moved on, the sweep run by
 * hand).  Time without it does not count: no claim.readyTimeout or
 * claim.createFailed, and the task is handed off once it is back.  A POST
 * that landed before its answer was lost leaves a claim that is deleted
 * when the task fails later for a reason of its own, not left to its TTL.
 */
enum outage { O_WAITING, O_CLAIMING, O_ORPHAN };

static const struct {
	const char	*name;
	enum outage	 kind;
} outage_rows[] = {
	{ "claim waits for Ready through an outage", O_WAITING },
	{ "claim POST fails through an outage", O_CLAIMING },
	{ "POST landed, answer lost, then refused", O_ORPHAN },
};

START_TEST(test_api_outage)
{
	static const char doc[] = "{\"pools\":[" POOL_RT("a", "qa", "10") ","
	    POOL("b", "qb") "]}";
	struct finf	*fi = fi_find(NS);
	struct freq	*r;
	char		*name = NULL;
	int		 i;

	reapply(doc);
	fc_deliver("qa", "t1", 0);
	ck_assert_ptr_nonnull(r = fk_find("POST", "/sandboxclaims"));
	switch (outage_rows[_i].kind) {
	case O_WAITING:
		ck_assert_ptr_nonnull(name = srv_post(r, 0));
		fi_show(NS, name);
		break;
	case O_CLAIMING:
		fk_reply(r, -AS_ECONN, 0, NULL);
		break;
	case O_ORPHAN:
		srv_post_lost(r);
		break;
	}
	/* The outage: the watch fails too.  Four times the timeout. */
	fi->failing = 1;
	for (i = 0; i < 8; i++) {
		dispatcher_sweep_now(disp);
		as_mono_skew += 5;
		if ((r = fk_find("POST", "/sandboxclaims")) != NULL)
			fk_reply(r, -AS_ECONN, 0, NULL);
		check_invariants();
		ck_assert_int_eq(fop_count(NULL, OP_DL), 0);
	}
	fi->failing = 0;
	dispatcher_sweep_now(disp);
	ck_assert_int_eq(fop_count(NULL, OP_DL), 0);
	if (outage_rows[_i].kind == O_ORPHAN) {
		/*
		 * Back, but the POST is refused now (403: a ResourceQuota on
		 * claims), which is no outage: readyTimeoutSeconds runs out.
		 */
		for (i = 0; i < 6 && fop_count(NULL, OP_DL) == 0; i++) {
			as_mono_skew += 5;
			dispatcher_sweep_now(disp);
			if ((r = fk_find("POST", "/sandboxclaims")) != NULL)
				fk_reply(r, -AS_EFORBIDDEN, 403, "{}");
			check_invariants();
		}
		ck_assert_int_eq(fop_count(NULL, OP_DL), 1);
		drive();
		ck_assert_int_eq(ledger[0].dead, 1);
		ck_assert_str_eq(ledger[0].reason, "claim.createFailed");
		ck_assert_int_eq(cJSON_GetArraySize(server), 0);
		ck_assert_int_eq(live_tasks(), 0);
		return;
	}
	/* Back: the retried POST lands (after its backoff), then Ready. */
	if (outage_rows[_i].kind == O_CLAIMING) {
		as_mono_skew += 11;	/* the backoff's cap, 10 s */
		dispatcher_sweep_now(disp);
	}
	drive();
	ck_assert_int_eq(ledger[0].acked, 1);
	ck_assert_int_eq(ledger[0].dead, 0);
	dispatcher_sweep_now(disp);	/* sees the outage over */
	/* A timeout of the task's own still counts. */
	fc_deliver("qa", "t2", 0);
	ck_assert_ptr_nonnull(r = fk_find("POST", "/sandboxclaims"));
	free(name);
	ck_assert_ptr_nonnull(name = srv_post(r, 0));
	fi_show(NS, name);
	as_mono_skew += 11;
	dispatcher_sweep_now(disp);
	ck_assert_int_eq(fop_count(NULL, OP_DL), 1);
	drive();
	ck_assert_int_eq(ledger[1].dead, 1);
	ck_assert_str_eq(ledger[1].reason, "claim.readyTimeout");
	all_claims_gone();
	ck_assert_int_eq(live_tasks(), 0);
	check_invariants();
	free(name);
}
END_TEST

/*
 * Defect 8 (issue 12): a restart or fail-over rebuilds the task table from
 * the claims of the informer's initial list, in whatever order the API
 * server lists them.  The claims of r's two children come before r's own
 * (or after it, the order that always worked); at the sync the quota must
 * count both as r's children (maxChildrenPerTask 2: a third child waits)
 * and the tree must keep the sandbox-seconds it had used: 500 saved on a
 * claim 50 s ago, plus 50 s for each of its three live tasks since (they
 * were made before the save), so at least 650 of its 1000.
 */
#define RB_QUOTA \
	"{\"metadata\":{\"name\":\"q\",\"namespace\":\"" NS "\"}," \
	"\"spec\":{\"cascade\":{\"maxChildrenPerTask\":2," \
	"\"sandboxSecondsPerRoot\":1000}}}"

/* A claim of pool a for id (child of parent, or a root), made ago s back. */
static void
srv_put_tree_claim(const char *id, const char *parent, int depth,
    double ago, const char *budget)
{
	char	 name[CLAIM_NAME_MAX + 1], key[160], made[64], *doc;
	cJSON	*obj;

	task_claim_name("a", NS, id, name);
	as_rfc3339(as_wall_now() - ago, 0, made, sizeof made);
	doc = xasprintf("{\"metadata\":{\"name\":\"%s\",\"namespace\":"
	    "\"" NS "\",\"creationTimestamp\":\"%s\",\"labels\":{\""
	    TASK_LABEL_MANAGED "\":\"" TASK_LABEL_MANAGED_VALUE "\",\""
	    TASK_LABEL_POOL "\":\"a\",\"" TASK_LABEL_DEPTH "\":\"%d\"},"
	    "\"annotations\":{\"" TASK_ANN_TASK_ID "\":\"%s\",\""
	    TASK_ANN_ROOT_ID "\":\"r\"%s%s%s%s%s}}}", name, made, depth, id,
	    parent != NULL ? ",\"" TASK_ANN_PARENT_ID "\":\"" : "",
	    parent != NULL ? parent : "", parent != NULL ? "\"" : "",
	    budget != NULL ? ",\"" TASK_ANN_TREE_BUDGET "\":" : "",
	    budget != NULL ? budget : "");
	ck_assert_ptr_nonnull(obj = cJSON_Parse(doc));
	free(doc);
	snprintf(key, sizeof key, "%s/%s", NS, name);
	cJSON_AddItemToObject(server, key, obj);
	srv_status(name, id, "True", "DependenciesReady");
	fi_show(NS, name);
}

/* The sandbox-seconds /status shows for tree root, -1 when none. */
static double
tree_seconds(const char *root)
{
	cJSON	*st = cJSON_CreateObject(), *ns, *tr;
	double	 v = -1;

	dispatcher_status(disp, st);
	ns = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st,
	    "namespaces"), 0);
	cJSON_ArrayForEach(tr, cJSON_GetObjectItemCaseSensitive(ns,
	    "largestTrees"))
		if (strcmp(cJSON_GetStringValue(
		    cJSON_GetObjectItemCaseSensitive(tr, "root")), root) == 0)
			v = cJSON_GetNumberValue(
			    cJSON_GetObjectItemCaseSensitive(tr,
			    "sandboxSeconds"));
	cJSON_Delete(st);
	return (v);
}

static const struct {
	const char	*name;
	int		 parent_first;
} rebuild_rows[] = {
	{ "children's claims listed before the parent's", 0 },
	{ "parent's claim listed first", 1 },
};

START_TEST(test_rebuild_children_first)
{
	static const char doc[] = "{\"pools\":[" POOL("a", "qa") ","
	    POOL("b", "qb") "],\"quotas\":[" RB_QUOTA "]}";
	static const char saved[] = "\"{\\\"seconds\\\":500,\\\"at\\\":%.3f}\"";
	struct dispatch_options o;
	char		 err[512], budget[128];
	long		 live, deferred, q;

	/* The same dispatcher, restarted on a quota, not synced yet. */
	dispatcher_free(disp);
	config_free(cfg);
	ck_assert_int_eq(config_parse(doc, strlen(doc), NULL, &cfg, err,
	    sizeof err), 0);
	memset(&o, 0, sizeof o);
	o.instance = "test";
	o.sweep_interval = 86400;
	o.sizing_interval = 86400;
	o.ops = &fake_ops;
	disp = dispatcher_new(loop, NULL, &o);
	dispatcher_apply(disp, cfg);

	snprintf(budget, sizeof budget, saved, as_wall_now() - 50);
	if (rebuild_rows[_i].parent_first)
		srv_put_tree_claim("r", NULL, 0, 100, budget);
	srv_put_tree_claim("c1", "r", 1, 80, NULL);
	srv_put_tree_claim("c2", "r", 1, 60, NULL);
	if (!rebuild_rows[_i].parent_first)
		srv_put_tree_claim("r", NULL, 0, 100, budget);
	fi_synced(NS);
	ck_assert_int_eq(live_tasks(), 3);

	/* r has two live children already: a third waits for one to end. */
	fc_deliver_child("qa", "c3", "r", 0);
	ck_assert_msg(fk_find("POST", "/sandboxclaims") == NULL,
	    "a third child of r was admitted");
	ns_counts(&live, &deferred, &q);
	ck_assert_int_eq(deferred, 1);
	ck_assert_int_eq(q, 3);
	ck_assert_msg(tree_seconds("r") >= 650 && tree_seconds("r") < 1000,
	    "tree r restarted at %g sandbox-seconds", tree_seconds("r"));
	check_invariants();
	check_invariants();
}
END_TEST

/*
 * RabbitMQ (issue 12, defects 2 and 6): pool "a" on a broker whose lost
 * connection voids the messages it delivered and redelivers them.
 */
static void
setup_rabbit(void)
{
	setup_doc("{\"pools\":[{\"metadata\":{\"name\":\"a\",\"namespace\":\""
	    NS "\"},\"spec\":{\"mode\":\"dispatch\",\"source\":{\"type\":"
	    "\"rabbitmq\",\"address\":\"amqp://127.0.0.1:1/%2F\",\"queue\":"
	    "\"qr\"},\"handoff\":{\"mode\":\"inbox\"},\"sandbox\":{"
	    "\"warmPool\":\"wp\",\"spare\":{\"min\":0,"
	    "\"max\":0}}}}]}");
}

/* No message of any task was dead-lettered. */
static void
assert_no_dead_letter(void)
{
	int	 i;

	for (i = 0; i < nmsgs; i++)
		ck_assert_msg(ledger[i].dead == 0, "message %d of task %s "
		    "dead-lettered: %s", i, ledger[i].task, ledger[i].reason);
}

/*
 * Defect 2: the consumer loses its connection while task t1 holds its
 * message, at each stage; the broker redelivers the message, before or
 * after the state callback reports the loss.  The redelivery joins the
 * task: no dead letter (before: task.duplicate, which acked the only live
 * copy), the task goes on, one hand-off, and the redelivered copy is the
 * one acked.
 */
enum lost_stage {
	LS_CLAIMING,		/* the claim's POST in flight */
	LS_WAITING,		/* the claim exists, not Ready */
	LS_HANDOFF,		/* hand-off in flight, lands after */
	LS_HANDED,		/* hand-off lands after the loss */
	LS_ACKING		/* handed off, the ack in flight */
};

static const struct {
	const char	*name;
	enum lost_stage	 stage;
	int		 quiet;		/* redelivery before the report */
} lost_rows[] = {
	{ "claiming", LS_CLAIMING, 0 },
	{ "claiming, redelivered first", LS_CLAIMING, 1 },
	{ "waiting", LS_WAITING, 0 },
	{ "waiting, redelivered first", LS_WAITING, 1 },
	{ "hand-off in flight", LS_HANDOFF, 0 },
	{ "hand-off in flight, redelivered first", LS_HANDOFF, 1 },
	{ "hand-off lands after the loss", LS_HANDED, 0 },
	{ "ack in flight", LS_ACKING, 0 },
	{ "ack in flight, redelivered first", LS_ACKING, 1 },
};

START_TEST(test_rabbit_lost_redelivered)
{
	struct fcons	*c = fc_find("qr");
	enum lost_stage	 st = lost_rows[_i].stage;
	struct freq	*r;
	char		*name = NULL;
	int		 serial;

	if (st == LS_CLAIMING || st == LS_WAITING) {
		fc_deliver("qr", "t1", 0);
		if (st == LS_WAITING) {
			ck_assert_ptr_nonnull(r = fk_find("POST",
			    "/sandboxclaims"));
			ck_assert_ptr_nonnull(name = srv_post(r, 0));
			fi_show(NS, name);
		}
	} else
		name = to_handoff("qr", "t1", "sb-1");
	if (st == LS_ACKING) {
		fop_complete(fop_find(c, OP_HANDOFF), 0,
		    CONSUMER_HANDOFF_DONE);
		ck_assert_ptr_nonnull(fop_find(c, OP_ACK));
	}
	fc_lose(c, lost_rows[_i].quiet);
	check_invariants();
	if (st == LS_HANDED)
		fop_complete(fop_find(c, OP_HANDOFF), 0,
		    CONSUMER_HANDOFF_DONE);
	if (st == LS_ACKING && !lost_rows[_i].quiet)
		complete_all_ops();	/* the ack fails: its tag is void */
	serial = fc_deliver("qr", "t1", 1);
	check_invariants();
	if (lost_rows[_i].quiet)
		fc_report(c);
	check_invariants();
	if (st == LS_CLAIMING) {
		ck_assert_ptr_nonnull(r = fk_find("POST", "/sandboxclaims"));
		ck_assert_ptr_nonnull(name = srv_post(r, 0));
		fi_show(NS, name);
	}
	if (st == LS_CLAIMING || st == LS_WAITING) {
		srv_status(name, "sb-1", "True", "DependenciesReady");
		fi_show(NS, name);
	}
	complete_all_ops();
	assert_no_dead_letter();
	ck_assert_int_eq(nhandoffs, 1);
	ck_assert_int_eq(ledger[0].acked, 0);		/* given back */
	ck_assert_int_eq(ledger[serial].acked, 1);
	ck_assert_int_eq(c->outstanding, 0);
	ck_assert_ptr_null(fk_find("POST", "/sandboxclaims"));
	ck_assert_ptr_null(fk_find("DELETE", name));
	ck_assert_int_eq(live_tasks(), 1);		/* it goes on */
	fi_gone(NS, name);
	sandboxes_gone();
	ck_assert_int_eq(live_tasks(), 0);
	check_invariants();
	free(name);
}
END_TEST

/*
 * Defect 2: a task fails while its message is void (the claim turns
 * terminal after the loss, or its dead letter is in flight when the
 * connection goes).  The redelivery is dead-lettered with the task's own
 * reason, not task.duplicate, exactly once.
 */
static const struct {
	const char	*name;
	int		 fail_first;	/* dead letter in flight at the loss */
} fail_lost_rows[] = {
	{ "fails after the loss", 0 },
	{ "dead letter in flight at the loss", 1 },
};

START_TEST(test_rabbit_fail_while_lost)
{
	struct fcons	*c = fc_find("qr");
	struct freq	*r;
	char		*name;
	int		 serial;

	fc_deliver("qr", "t1", 0);
	ck_assert_ptr_nonnull(r = fk_find("POST", "/sandboxclaims"));
	ck_assert_ptr_nonnull(name = srv_post(r, 0));
	fi_show(NS, name);
	srv_status(name, NULL, "False", "PodFailed");
	if (fail_lost_rows[_i].fail_first) {
		fi_show(NS, name);
		ck_assert_int_eq(fop_count(c, OP_DL), 1);
	}
	fc_lose(c, 0);
	if (!fail_lost_rows[_i].fail_first)
		fi_show(NS, name);
	complete_all_ops();	/* a dead letter of a void message fails */
	check_invariants();
	serial = fc_deliver("qr", "t1", 1);
	complete_all_ops();
	finish_delete(name);
	check_invariants();
	ck_assert_int_eq(ledger[0].dead + ledger[0].acked, 0);
	ck_assert_int_eq(ledger[serial].dead, 1);
	ck_assert_str_eq(ledger[serial].reason, "claim.PodFailed");
	ck_assert_int_eq(nhandoffs, 0);
	ck_assert_int_eq(live_tasks(), 0);
	free(name);
}
END_TEST

/*
 * Defect 6: t1 was handed off, its ack went with the connection, and the
 * task ended (its claim is gone) before the redelivery came.  The
 * dispatcher's marker (dispatch_mark.c) turns it into an ack: no second
 * claim, no second hand-off (before: a new claim, the task ran again).
 */
START_TEST(test_rabbit_redelivered_after_claim_gone)
{
	struct fcons	*c = fc_find("qr");
	char		*name = to_handoff("qr", "t1", "sb-1");
	int		 serial;

	fop_complete(fop_find(c, OP_HANDOFF), 0, CONSUMER_HANDOFF_DONE);
	fc_lose(c, 0);
	complete_all_ops();		/* the ack fails: its tag is void */
	fi_gone(NS, name);		/* the task ended */
	sandboxes_gone();
	ck_assert_int_eq(live_tasks(), 0);
	serial = fc_deliver("qr", "t1", 1);
	check_invariants();
	ck_assert_ptr_null(fk_find("POST", "/sandboxclaims"));
	complete_all_ops();
	check_invariants();
	ck_assert_int_eq(ledger[serial].acked, 1);
	assert_no_dead_letter();
	ck_assert_int_eq(nhandoffs, 1);
	ck_assert_ptr_null(fk_find("POST", "/sandboxclaims"));
	ck_assert_int_eq(live_tasks(), 0);
	free(name);
}
END_TEST

/*
 * Once every operation ends: message serial of t1 was acked as a task that
 * ran, with no dead letter, no hand-off here and no claim made.
 */
static void
assert_acked_as_ran(int serial)
{
	check_invariants();
	complete_all_ops();
	check_invariants();
	assert_no_dead_letter();
	ck_assert_int_eq(ledger[serial].acked, 1);
	ck_assert_int_eq(nhandoffs, 0);
	ck_assert_ptr_null(fk_find("POST", "/sandboxclaims"));
}

/*
 * A crash between a hand-off and its ack (test_dispatch_crash.py's RabbitMQ
 * run, with fast agents): the restarted process rebuilds t1 from a claim
 * whose sandbox has already succeeded, and the broker redelivers t1's
 * message, while the claim is kept for it (test_rabbit_claim_kept_until_acked),
 * after it is gone (no redelivery within the hold), or before the claim
 * reports the end.  A RabbitMQ pool has no marker to ask, but
 * PodSucceeded is the completion of the task the claim was made for: the
 * message is acked, no claim is made.  Before: dead-lettered
 * task.duplicate (or claim.finishedBeforeHandoff), although it ran.
 */
enum ran_stage { RAN_KEPT, RAN_GONE, RAN_JOINED };

static const struct {
	const char	*name;
	enum ran_stage	 stage;
} ran_rows[] = {
	{ "redelivered while the claim is kept", RAN_KEPT },
	{ "redelivered after the claim is gone", RAN_GONE },
	{ "redelivery joins, then the sandbox succeeds", RAN_JOINED },
};

START_TEST(test_rabbit_rebuilt_succeeded_then_message)
{
	struct fcons	*c = fc_find("qr");
	char		 name[CLAIM_NAME_MAX + 1];
	int		 serial = -1;

	task_claim_name("a", NS, "t1", name);
	srv_put_claim(name, "t1", NULL);
	note_handed("qr", "t1");	/* by the process before the crash */
	if (ran_rows[_i].stage != RAN_JOINED)
		srv_finished(name, "sb-1", "PodSucceeded");
	fi_show(NS, name);
	ck_assert_int_eq(live_tasks(), 1);
	if (ran_rows[_i].stage == RAN_JOINED) {
		serial = fc_deliver("qr", "t1", 1);
		check_invariants();
		srv_finished(name, "sb-1", "PodSucceeded");
		fi_show(NS, name);
	}
	/* Kept until the message is acked (an ack in flight, or to come). */
	ck_assert_ptr_null(fk_find("DELETE", name));
	if (ran_rows[_i].stage == RAN_GONE) {
		c->state(&c->base, 1, NULL, c->arg);	/* consume-ok */
		sweep_after(DISPATCH_ACK_HOLD + 1);
		finish_delete(name);
		ck_assert_int_eq(live_tasks(), 0);
	}
	if (ran_rows[_i].stage != RAN_JOINED)
		serial = fc_deliver("qr", "t1", 1);
	assert_acked_as_ran(serial);
	if (ran_rows[_i].stage != RAN_GONE)
		finish_delete(name);
	ck_assert_int_eq(live_tasks(), 0);
	check_invariants();
}
END_TEST

/*
 * The broker closes the connection after t1's hand-off was published and
 * before its confirm (test_dispatch_crash.py's RabbitMQ run, fast agents):
 * the hand-off fails here, yet the sandbox got the task, ran it and
 * succeeded.  The redelivery comes after the claim reports PodSucceeded, or
 * joins before.  Its message is acked, no second hand-off, no claim; before:
 * dead-lettered task.duplicate ("failed and its claim is being released"),
 * or claim.finishedBeforeHandoff.
 */
static const struct {
	const char	*name;
	int		 joined;	/* redelivered before the end */
} confirm_rows[] = {
	{ "redelivered after the sandbox succeeded", 0 },
	{ "redelivery joins, then the sandbox succeeds", 1 },
};

START_TEST(test_rabbit_confirm_lost_then_succeeded)
{
	struct fcons	*c = fc_find("qr");
	char		*name = to_handoff("qr", "t1", "sb-1");
	int		 serial = -1;

	note_handed("qr", "t1");	/* the publish landed */
	fc_lose(c, 0);
	fop_complete(fop_find(c, OP_HANDOFF), -AS_ECONN, 0);
	check_invariants();
	if (confirm_rows[_i].joined)
		serial = fc_deliver("qr", "t1", 1);
	srv_finished(name, "sb-1", "PodSucceeded");
	fi_show(NS, name);
	/* Kept until the message is acked (an ack in flight, or to come). */
	ck_assert_ptr_null(fk_find("DELETE", name));
	if (!confirm_rows[_i].joined)
		serial = fc_deliver("qr", "t1", 1);
	assert_acked_as_ran(serial);
	finish_delete(name);
	ck_assert_int_eq(live_tasks(), 0);
	check_invariants();
	free(name);
}
END_TEST

/*
 * The process crashes (kill -9) and starts again on the same broker and
 * API server: its in-memory hand-off markers are gone, what its tasks
 * held goes back to the broker, and the new process rebuilds its tasks
 * from the claims left before it consumes.
 */
static void
restart_dispatcher(void)
{
	struct dispatch_options o;
	cJSON		*c;

	dispatcher_free(disp);
	memset(&o, 0, sizeof o);
	o.instance = "test";
	o.sweep_interval = 86400;
	o.sizing_interval = 86400;
	o.ops = &fake_ops;
	disp = dispatcher_new(loop, NULL, &o);
	dispatcher_apply(disp, cfg);
	cJSON_ArrayForEach(c, server)
		fi_show(NS, claim_name_of(c));
	fi_synced(NS);
	check_invariants();
}

/*
 * The crash test's RabbitMQ run on a loaded machine ("a task ran in two
 * sandboxes"): t1's sandbox succeeded while t1's message was not acked
 * here, because the process before a crash handed it off and died before
 * its ack (t1 rebuilt from its claim), or the ack went with a lost
 * connection, or the hand-off's confirm did.  The broker will redeliver
 * that message, and RabbitMQ keeps no marker: while this process lives its
 * memory has one, but past a crash the claim is the only record that t1
 * ran.  Before, the claim was deleted at once; a crash before the
 * redelivery was acked then left nothing, and the next process claimed
 * again: t1 ran a second time, in another sandbox.  Now the claim is kept
 * until the redelivery is acked (then deleted), or until the consumer has
 * been up DISPATCH_ACK_HOLD seconds without it (its ack had landed), and a
 * crash meanwhile finds the claim again.
 */
enum unacked_how { UA_REBUILT, UA_ACK_LOST, UA_CONFIRM_LOST };

static const struct {
	const char	*name;
	enum unacked_how how;
	int		 crash;		/* a crash before the redelivery */
	int		 never;		/* no redelivery: the ack had landed */
} unacked_rows[] = {
	{ "rebuilt, crash, then redelivered", UA_REBUILT, 1, 0 },
	{ "rebuilt, redelivered", UA_REBUILT, 0, 0 },
	{ "rebuilt, never redelivered", UA_REBUILT, 0, 1 },
	{ "ack lost, crash, then redelivered", UA_ACK_LOST, 1, 0 },
	{ "ack lost, redelivered", UA_ACK_LOST, 0, 0 },
	{ "confirm lost, crash, then redelivered", UA_CONFIRM_LOST, 1, 0 },
	{ "confirm lost, redelivered", UA_CONFIRM_LOST, 0, 0 },
};

START_TEST(test_rabbit_claim_kept_until_acked)
{
	char		 name[CLAIM_NAME_MAX + 1], *made = NULL;
	struct fcons	*c = fc_find("qr");
	int		 serial;

	task_claim_name("a", NS, "t1", name);
	switch (unacked_rows[_i].how) {
	case UA_REBUILT:
		srv_put_claim(name, "t1", NULL);
		note_handed("qr", "t1");	/* before the crash */
		break;
	case UA_ACK_LOST:
		made = to_handoff("qr", "t1", "sb-1");
		fop_complete(fop_find(c, OP_HANDOFF), 0,
		    CONSUMER_HANDOFF_DONE);
		fc_lose(c, 0);
		complete_all_ops();	/* the ack fails: its tag is void */
		break;
	case UA_CONFIRM_LOST:
		made = to_handoff("qr", "t1", "sb-1");
		note_handed("qr", "t1");	/* the publish landed */
		fc_lose(c, 0);
		fop_complete(fop_find(c, OP_HANDOFF), -AS_ECONN, 0);
		break;
	}
	free(made);
	srv_finished(name, "sb-1", "PodSucceeded");
	fi_show(NS, name);
	check_invariants();
	if (unacked_rows[_i].crash) {
		if (fk_find("DELETE", name) != NULL)
			finish_delete(name);	/* before: the claim went */
		restart_dispatcher();
		c = fc_find("qr");
	} else
		ck_assert_msg(fk_find("DELETE", name) == NULL, "the claim of "
		    "t1 is deleted while t1's message is unacked");
	if (unacked_rows[_i].never) {
		/* The consumer is up; no redelivery comes within the hold. */
		c->state(&c->base, 1, NULL, c->arg);	/* consume-ok */
		sweep_after(DISPATCH_ACK_HOLD / 2);
		ck_assert_ptr_null(fk_find("DELETE", name));
		sweep_after(DISPATCH_ACK_HOLD / 2 + 1);
		ck_assert_ptr_nonnull(fk_find("DELETE", name));
		finish_delete(name);
		ck_assert_int_eq(live_tasks(), 0);
		assert_no_dead_letter();
		ck_assert_int_eq(nhandoffs, 0);
		return;
	}
	serial = fc_deliver("qr", "t1", 1);
	check_invariants();
	ck_assert_msg(fk_find("POST", "/sandboxclaims") == NULL, "t1 is "
	    "claimed again: it runs a second time in another sandbox");
	ck_assert_int_eq(live_tasks(), 1);
	ck_assert_ptr_null(fk_find("DELETE", name));	/* not before the ack */
	complete_all_ops();
	check_invariants();
	assert_no_dead_letter();
	ck_assert_int_eq(ledger[serial].acked, 1);
	ck_assert_int_eq(nhandoffs, unacked_rows[_i].how == UA_ACK_LOST);
	ck_assert_ptr_null(fk_find("POST", "/sandboxclaims"));
	finish_delete(name);
	ck_assert_int_eq(live_tasks(), 0);
	check_invariants();
}
END_TEST

/*
 * The crash test's RabbitMQ run on a loaded machine, again ("a task ran in
 * two sandboxes", five tasks at once): t1 is rebuilt from its Ready claim
 * (the process before a crash handed it off and died before its ack), its
 * redelivery joins it and the hand-off is repeated into the same sandbox;
 * while that repeat is in flight the sandbox reports PodSucceeded (the
 * first hand-off ran).  Before, that was "claim.finishedBeforeHandoff":
 * settled as a failure once the repeat was confirmed, TaskFailed, and the
 * claim deleted at once, with the redelivery's ack not yet landed; a crash
 * then, and the next process claimed t1 again.  Now it is a success, and
 * the claim stays until the ack lands.
 */
static const struct {
	const char	*name;
	int		 confirmed;	/* the repeat's confirm comes */
	int		 crash;		/* before the ack lands */
} repeat_rows[] = {
	{ "repeat confirmed, crash before the ack lands", 1, 1 },
	{ "repeat confirmed, the ack lands", 1, 0 },
	{ "the repeat's confirm goes with the connection", 0, 0 },
};

START_TEST(test_rabbit_repeat_handoff_succeeded)
{
	struct fcons	*c = fc_find("qr");
	struct dpool	*p;
	char		 name[CLAIM_NAME_MAX + 1];
	int		 serial;

	task_claim_name("a", NS, "t1", name);
	srv_put_claim(name, "t1", "sb-1");
	note_handed("qr", "t1");	/* by the process before the crash */
	fi_show(NS, name);
	ck_assert_int_eq(live_tasks(), 1);
	serial = fc_deliver("qr", "t1", 1);
	check_invariants();
	ck_assert_ptr_nonnull(fop_find(c, OP_HANDOFF));	/* the repeat */
	srv_finished(name, "sb-1", "PodSucceeded");
	fi_show(NS, name);
	ck_assert_ptr_null(fk_find("DELETE", name));
	if (!repeat_rows[_i].confirmed) {
		fc_lose(c, 0);
		fop_complete(fop_find(c, OP_HANDOFF), -AS_ECONN, 0);
		check_invariants();
		ck_assert_msg(fk_find("DELETE", name) == NULL, "the claim of "
		    "t1 is deleted while t1's message is unacked");
		serial = fc_deliver("qr", "t1", 1);
		assert_acked_as_ran(serial);
	} else {
		fop_complete(fop_find(c, OP_HANDOFF), 0,
		    CONSUMER_HANDOFF_DONE);
		check_invariants();
		ck_assert_ptr_nonnull(fop_find(c, OP_ACK));
		ck_assert_msg(fk_find("DELETE", name) == NULL, "the claim of "
		    "t1 is deleted before its message's ack landed");
		if (repeat_rows[_i].crash) {
			restart_dispatcher();
			c = fc_find("qr");
			serial = fc_deliver("qr", "t1", 1);
			check_invariants();
			ck_assert_msg(fk_find("POST", "/sandboxclaims") == NULL,
			    "t1 is claimed again: it runs a second time in "
			    "another sandbox");
		}
		complete_all_ops();
		check_invariants();
		assert_no_dead_letter();
		ck_assert_int_eq(ledger[serial].acked, 1);
		ck_assert_ptr_null(fk_find("POST", "/sandboxclaims"));
	}
	ck_assert_ptr_nonnull(fk_find("DELETE", name));
	ck_assert_ptr_nonnull(p = dpool_find(disp, NS, "a"));
	ck_assert_msg(p->failed == 0, "t1 counted failed: it succeeded");
	finish_delete(name);
	ck_assert_int_eq(live_tasks(), 0);
	check_invariants();
}
END_TEST

/*
 * The other side of test_rabbit_repeat_handoff_succeeded: t1's first and
 * only hand-off is in flight when its sandbox reports PodSucceeded, and
 * the broker then refuses the publish (basic.nack): the sandbox ended
 * without the task, which is dead-lettered claim.finishedBeforeHandoff,
 * not acked as a task that ran.  With a hand-off whose outcome was lost
 * before (a connection gone), the task may have run: it is not dead-
 * lettered, and its claim waits for the redelivery.
 */
START_TEST(test_rabbit_refused_handoff_sandbox_succeeded)
{
	struct fcons	*c = fc_find("qr");
	char		*name = to_handoff("qr", "t1", "sb-1");
	int		 serial = -1;

	if (_i == 1) {
		/* A first attempt's confirm went with the connection. */
		note_handed("qr", "t1");	/* the publish landed */
		fc_lose(c, 0);
		fop_complete(fop_find(c, OP_HANDOFF), -AS_ECONN, 0);
		serial = fc_deliver("qr", "t1", 1);	/* retried on it */
		sweep_after(6);
		ck_assert_ptr_nonnull(fop_find(c, OP_HANDOFF));
	}
	srv_finished(name, "sb-1", "PodSucceeded");
	fi_show(NS, name);
	fop_complete(fop_find(c, OP_HANDOFF), -AS_EIO, 0);
	check_invariants();
	if (_i == 0) {
		complete_all_ops();
		ck_assert_int_eq(ledger[0].dead, 1);
		ck_assert_str_eq(ledger[0].reason,
		    "claim.finishedBeforeHandoff");
	} else {
		ck_assert_ptr_null(fk_find("DELETE", name));
		assert_acked_as_ran(serial);
	}
	ck_assert_ptr_nonnull(fk_find("DELETE", name));
	finish_delete(name);
	ck_assert_int_eq(live_tasks(), 0);
	check_invariants();
	free(name);
}
END_TEST

/*
 * A held claim (test_rabbit_claim_kept_until_acked) released another way:
 * deleted by someone else (or its TTL) while held, and the GET of its
 * Sandbox fails.  The task waits for the Sandbox to go and must be retried
 * by the sweep like any releasing task; before, a task released while held
 * stayed held and the sweep skipped it for good: its record and its quota
 * stayed until a restart.
 */
START_TEST(test_rabbit_held_claim_deleted)
{
	char		 name[CLAIM_NAME_MAX + 1], *made;
	struct fcons	*c = fc_find("qr");
	struct freq	*r;

	task_claim_name("a", NS, "t1", name);
	made = to_handoff("qr", "t1", "sb-1");
	fop_complete(fop_find(c, OP_HANDOFF), 0, CONSUMER_HANDOFF_DONE);
	fc_lose(c, 0);
	complete_all_ops();	/* the ack fails: its tag is void */
	free(made);
	srv_finished(name, "sb-1", "PodSucceeded");
	fi_show(NS, name);
	ck_assert_ptr_null(fk_find("DELETE", name));	/* held */
	fi_gone(NS, name);	/* deleted in the background */
	ck_assert_ptr_nonnull(r = fk_find("GET", "/sandboxes/sb-1"));
	fk_reply(r, -AS_ECONN, 503, "{}");	/* unanswered: ask again */
	ck_assert_ptr_null(fk_find("GET", "/sandboxes/sb-1"));
	ck_assert_int_eq(live_tasks(), 1);
	sweep_after(11);
	ck_assert_msg(fk_find("GET", "/sandboxes/sb-1") != NULL, "the sweep "
	    "never asks again whether the Sandbox of a task released while "
	    "held is gone: its record and quota stay");
	sandboxes_gone();
	ck_assert_int_eq(live_tasks(), 0);
	check_invariants();
	assert_no_dead_letter();
}
END_TEST

/*
 * Issue 12 (agent-sandbox semantics): Finished=True only says the pod
 * reached a terminal phase, and an evicted or deleted pod passes through
 * Failed before the controller recreates it.  After the hand-off, PodFailed
 * (on Finished, or forwarded on Ready alone) is a failure: counted failed,
 * never completed, the claim released.  PodSucceeded is the completion.
 * Before, every row counted a completion.
 */
static const struct {
	const char	*name;
	const char	*reason;
	int		 finished;	/* Finished=True too, else Ready only */
	int		 during;	/* while the hand-off is in flight */
	long		 completed;
	long		 failed;
} ended_rows[] = {
	{ "evicted: Finished/PodFailed", "PodFailed", 1, 0, 0, 1 },
	{ "Ready=False/PodFailed only", "PodFailed", 0, 0, 0, 1 },
	{ "PodFailed during the hand-off", "PodFailed", 1, 1, 0, 1 },
	{ "Finished/PodSucceeded", "PodSucceeded", 1, 0, 1, 0 },
	{ "Ready=False/PodSucceeded only", "PodSucceeded", 0, 0, 1, 0 },
};

START_TEST(test_sandbox_ends_after_handoff)
{
	char	*name = to_handoff("qa", "t1", "sb-1");

	if (!ended_rows[_i].during) {
		complete_all_ops();		/* hand-off, then ack */
		ck_assert_int_eq(ledger[0].acked, 1);
	}
	if (ended_rows[_i].finished)
		srv_finished(name, "sb-1", ended_rows[_i].reason);
	else
		srv_status(name, "sb-1", "False", ended_rows[_i].reason);
	fi_show(NS, name);
	check_invariants();
	complete_all_ops();
	ck_assert_int_eq(ledger[0].acked, 1);
	ck_assert_int_eq(ledger[0].dead, 0);
	finish_delete(name);		/* released: the claim goes */
	check_invariants();
	ck_assert_int_eq(live_tasks(), 0);
	ck_assert_int_eq(pool_counter("a", "completed"),
	    ended_rows[_i].completed);
	ck_assert_int_eq(pool_counter("a", "failed"), ended_rows[_i].failed);
	free(name);
}
END_TEST

/*
 * Issue 12: pod-level problems reach the claim only as non-terminal
 * ReconcilerError ("exceeded quota") or DependenciesNotReady
 * (unschedulable), and upstream recovers from TemplateNotFound and
 * WarmPoolNotFound (#1315).  They are the cluster's fault: past
 * readyTimeoutSeconds the task keeps its message and its claim and is
 * handed off once Ready.  Before, the first two were dead-lettered
 * claim.readyTimeout by the sweep, the last two at once.  The last row is
 * the control: an unexplained wait still times out.
 */
static const struct {
	const char	*reason;
	const char	*sandbox;	/* bound already, or NULL */
	const char	*dead;		/* dead letter expected, or NULL */
} wait_rows[] = {
	{ "ReconcilerError", NULL, NULL },
	{ "ReconcilerError", "sb-1", NULL },
	{ "DependenciesNotReady", "sb-1", NULL },
	{ "TemplateNotFound", NULL, NULL },
	{ "WarmPoolNotFound", NULL, NULL },
	{ "SandboxNotReady", NULL, "claim.readyTimeout" },
};

START_TEST(test_cluster_fault_waits)
{
	struct freq	*r;
	char		*name;
	int		 i;

	fc_deliver("qa", "t1", 0);
	ck_assert_ptr_nonnull(r = fk_find("POST", "/sandboxclaims"));
	ck_assert_ptr_nonnull(name = srv_post(r, 0));
	fi_show(NS, name);
	srv_status(name, wait_rows[_i].sandbox, "False",
	    wait_rows[_i].reason);
	fi_show(NS, name);
	check_invariants();
	ck_assert_int_eq(fop_count(NULL, OP_DL), 0);
	/* Well past readyTimeoutSeconds (180 s), several times over. */
	for (i = 0; i < 4 && fop_count(NULL, OP_DL) == 0; i++) {
		sweep_after(1000);
		check_invariants();
	}
	if (wait_rows[_i].dead != NULL) {
		complete_all_ops();
		ck_assert_int_eq(ledger[0].dead, 1);
		ck_assert_str_eq(ledger[0].reason, wait_rows[_i].dead);
		finish_delete(name);
		free(name);
		return;
	}
	ck_assert_int_eq(fop_count(NULL, OP_DL), 0);
	ck_assert_ptr_null(fk_find("DELETE", name));
	/* The cluster recovers: the task goes on. */
	srv_status(name, "sb-1", "True", "DependenciesReady");
	fi_show(NS, name);
	ck_assert_int_eq(fop_count(NULL, OP_HANDOFF), 1);
	complete_all_ops();
	ck_assert_int_eq(ledger[0].acked, 1);
	ck_assert_int_eq(ledger[0].dead, 0);
	check_invariants();
	free(name);
}
END_TEST

/*
 * Issue 12 (defect 10): a claim deleted in the background by someone else
 * goes while its Sandbox (and pod) still run.  The quota keeps counting
 * the task until a GET of the Sandbox says it is gone (404) or no longer
 * the claim's; our own foreground delete needs no GET.  Before, the quota
 * let the task go with the claim.
 */
enum sb_after { SB_GONE, SB_OTHER_OWNER, SB_OURS };

static const struct {
	const char	*name;
	enum sb_after	 after;
} bg_rows[] = {
	{ "Sandbox terminating, then gone", SB_GONE },
	{ "Sandbox of that name owned by another claim", SB_OTHER_OWNER },
	{ "our own foreground release", SB_OURS },
};

START_TEST(test_background_delete_holds_quota)
{
	char		*name = to_handoff("qa", "t1", "sb-1");
	char		 body[512];
	struct freq	*r;
	long		 live, deferred, q;

	complete_all_ops();		/* hand-off, then ack */
	ns_counts(&live, &deferred, &q);
	ck_assert_int_eq(q, 1);
	if (bg_rows[_i].after == SB_OURS) {
		srv_finished(name, "sb-1", "PodSucceeded");
		fi_show(NS, name);
		finish_delete(name);
		ck_assert_ptr_null(fk_find("GET", "/sandboxes/"));
		ns_counts(&live, &deferred, &q);
		ck_assert_int_eq(q, 0);
		ck_assert_int_eq(live, 0);
		free(name);
		return;
	}
	fi_gone(NS, name);		/* someone else's delete */
	check_invariants();
	ns_counts(&live, &deferred, &q);
	ck_assert_int_eq(q, 1);
	ck_assert_ptr_nonnull(r = fk_find("GET", "/sandboxes/sb-1"));
	/* Still there, terminating, the claim's: the quota keeps it. */
	snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"sb-1\","
	    "\"deletionTimestamp\":\"2026-01-01T00:00:00Z\","
	    "\"ownerReferences\":[{\"kind\":\"SandboxClaim\",\"uid\":"
	    "\"" NS "/%s\",\"controller\":true}]}}", name);
	fk_reply(r, 0, 200, body);
	check_invariants();
	ns_counts(&live, &deferred, &q);
	ck_assert_int_eq(q, 1);
	ck_assert_int_eq(live, 1);
	sweep_after(60);
	ck_assert_ptr_nonnull(r = fk_find("GET", "/sandboxes/sb-1"));
	if (bg_rows[_i].after == SB_GONE)
		fk_reply(r, -AS_ENOTFOUND, 404, "{}");
	else
		fk_reply(r, 0, 200, "{\"metadata\":{\"name\":\"sb-1\","
		    "\"ownerReferences\":[{\"kind\":\"SandboxClaim\","
		    "\"uid\":\"other\",\"controller\":true}]}}");
	check_invariants();
	ns_counts(&live, &deferred, &q);
	ck_assert_int_eq(q, 0);
	ck_assert_int_eq(live, 0);
	ck_assert_int_eq(pool_counter("a", "completed"), 1);
	free(name);
}
END_TEST

/*
 * Issue 17: the predictive warm-pool sizing reads the running tasks that
 * have spawned (dpool->spawners, kept with the pool's tasks) and learns
 * from each child whether its parent had spawned before.
 */
START_TEST(test_spawners_counted)
{
	struct dpool	*p;

	LIST_FOREACH(p, &disp->pools, entry)
		if (strcmp(p->cfg->name, "a") == 0)
			break;
	ck_assert_ptr_nonnull(p);
	fc_deliver("qa", "t1", 0);
	ck_assert_int_eq(p->spawners, 0);
	ck_assert(p->ws.roots > 0);
	fc_deliver_child("qa", "c1", "t1", 0);
	ck_assert_int_eq(p->spawners, 1);
	ck_assert(p->ws.spawn_n == 1 && p->ws.spawn_s == 0);
	fc_deliver_child("qa", "c2", "t1", 0);
	ck_assert_int_eq(p->spawners, 1);
	ck_assert(p->ws.spawn_s > 0.99);
	check_invariants();
	complete_all_ops();
}
END_TEST

/*
 * Issue 12: the warm pool's controller deletes surplus members without a
 * precondition, so lowering spec.replicas while a claim is being made can
 * delete the member it has just adopted.  The pool (pool a: spare max 0,
 * found at 3) is lowered only once the claims that may take a spare are
 * bound.  Before, the PATCH to 0 went out with the claim unbound.
 */
START_TEST(test_warm_pool_lowered_after_bind)
{
	struct dpool	*p;
	struct freq	*r;
	char		*name;

	LIST_FOREACH(p, &disp->pools, entry)
		if (strcmp(p->cfg->name, "a") == 0)
			break;
	ck_assert_ptr_nonnull(p);
	fc_deliver("qa", "t1", 0);
	ck_assert_ptr_nonnull(r = fk_find("POST", "/sandboxclaims"));
	ck_assert_ptr_nonnull(name = srv_post(r, 0));
	fi_show(NS, name);
	dpool_size(p, as_mono_now());
	ck_assert_ptr_nonnull(r = fk_find_scale("GET"));
	fk_reply_scale(r, 3, 3);
	dpool_size(p, as_mono_now());
	ck_assert_ptr_null(fk_find_scale("PATCH"));
	/* Bound (and handed off): now the surplus may go. */
	srv_status(name, "wp-x7k2p", "True", "DependenciesReady");
	fi_show(NS, name);
	dpool_size(p, as_mono_now());
	ck_assert_ptr_nonnull(r = fk_find_scale("PATCH"));
	fk_reply_scale(r, 0, 0);
	complete_all_ops();
	check_invariants();
	free(name);
}
END_TEST

/*
 * Randomized interleavings: each run is reproducible from its seed (the
 * loop index) and bounded by RANDOM_STEPS.  Each step, chosen by the
 * seeded generator, delivers a message (ids from a small set, on either
 * pool, sometimes marked redelivered), completes one pending consumer
 * operation or Kubernetes request (success or failure), or changes a claim
 * and shows it to the informer; now and then it applies a changed config
 * (a pool replaced or removed), runs the deferred pump, starts or ends an
 * API outage (the claim informer failing), or moves the clock on and runs
 * the sweep (retries, readyTimeoutSeconds); check_invariants() runs after
 * every step.
 * At the end the dispatcher is freed: every message must then be acked,
 * dead-lettered or given back (freed), never two of them (ASan finds what
 * is never freed).
 */
#ifndef RANDOM_FIRST
#define RANDOM_FIRST	0	/* one seed: -DRANDOM_FIRST=N -DRANDOM_SEEDS=N+1 */
#endif
#ifndef RANDOM_SEEDS
#define RANDOM_SEEDS	25	/* more seeds: compile with -DRANDOM_SEEDS=N */
#endif
#define RANDOM_STEPS	5000
#ifndef RANDOM_JITTER
#define RANDOM_JITTER	0	/* another backoff jitter for the same seeds */
#endif

static uint64_t	 rng;

static unsigned
rnd(unsigned n)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return ((unsigned)(rng >> 33) % n);
}

static struct fop *
fop_nth(unsigned n)
{
	struct fop	*op;

	TAILQ_FOREACH(op, &ops, entry)
		if (n-- == 0)
			return (op);
	return (NULL);
}

static struct freq *
fk_nth(unsigned n)
{
	struct freq	*r;

	TAILQ_FOREACH(r, &reqs, entry)
		if (n-- == 0)
			return (r);
	return (NULL);
}

static unsigned
count_ops(void)
{
	struct fop	*op;
	unsigned	 n = 0;

	TAILQ_FOREACH(op, &ops, entry)
		n++;
	return (n);
}

static unsigned
count_reqs(void)
{
	struct freq	*r;
	unsigned	 n = 0;

	TAILQ_FOREACH(r, &reqs, entry)
		n++;
	return (n);
}

/* The name (borrowed from server) of a random claim, or NULL. */
static const char *
random_claim(void)
{
	cJSON	*c;
	int	 n = cJSON_GetArraySize(server);

	if (n == 0)
		return (NULL);
	c = cJSON_GetArrayItem(server, (int)rnd((unsigned)n));
	return (claim_name_of(c));
}

static void
random_op(void)
{
	struct fop	*op;
	unsigned	 n = count_ops();

	if (n == 0)
		return;
	op = fop_nth(rnd(n));
	switch (op->kind) {
	case OP_CHECK:
		/* The marker is there only when the task was handed off. */
		fop_complete(op, rnd(8) == 0 ? -AS_ECONN : 0,
		    was_handed_off(op->c, op->task));
		break;
	case OP_HANDOFF:
		fop_complete(op, rnd(6) == 0 ? -AS_ECONN : 0,
		    was_handed_off(op->c, op->task) ?
		    CONSUMER_HANDOFF_DUPLICATE : CONSUMER_HANDOFF_DONE);
		break;
	default:
		fop_complete(op, rnd(8) == 0 ? -AS_ECONN : 0, 0);
		break;
	}
}

static void
random_req(void)
{
	struct freq	*r;
	char		 name[CLAIM_NAME_MAX + 1];
	char		*made, *body;
	unsigned	 n = count_reqs();

	if (n == 0)
		return;
	r = fk_nth(rnd(n));
	if (r->sdone != NULL) {
		fk_reply(r, rnd(2) ? 0 : -AS_ESERVER, 0, NULL);
		return;
	}
	as_strlcpy(name, strrchr(r->path, '/') + 1, sizeof name);
	if (strcmp(r->method, "POST") == 0) {
		if (rnd(5) == 0)
			fk_reply(r, -AS_ESERVER, 500, "{}");
		else if ((made = srv_post(r, 0)) != NULL) {
			if (rnd(2))
				fi_show(NS, made);
			free(made);
		}
	} else if (strcmp(r->method, "GET") == 0) {
		if (srv_claim(NS, name) == NULL)
			fk_reply(r, -AS_ENOTFOUND, 404, "{}");
		else {
			body = cJSON_PrintUnformatted(srv_claim(NS, name));
			fk_reply(r, 0, 200, body);
			free(body);
		}
	} else if (strcmp(r->method, "DELETE") == 0) {
		if (rnd(5) == 0)
			fk_reply(r, -AS_ESERVER, 500, "{}");
		else if (srv_claim(NS, name) == NULL)
			fk_reply(r, -AS_ENOTFOUND, 404, "{}");
		else {
			srv_deleting(name);
			fk_reply(r, 0, 200, "{}");
			if (rnd(2))
				fi_show(NS, name);
			else
				fi_gone(NS, name);
		}
	} else
		ck_abort_msg("unexpected %s %s", r->method, r->path);
}

static void
random_claim_change(void)
{
	const char	*name = random_claim();
	char		 sb[80];

	if (name == NULL)
		return;
	switch (rnd(6)) {
	case 0:
	case 1:
		snprintf(sb, sizeof sb, "sb-%s", name);
		srv_status(name, sb, "True", "DependenciesReady");
		fi_show(NS, name);
		break;
	case 2:
		srv_status(name, NULL, "False", "PodFailed");
		fi_show(NS, name);
		break;
	case 3:
		srv_deleting(name);
		fi_show(NS, name);
		break;
	case 4:
		fi_gone(NS, name);
		break;
	default:
		fi_show(NS, name);
		break;
	}
}

/* The consumer on queue, or NULL (its pool was removed). */
static struct fcons *
fc_try(const char *queue)
{
	size_t	 i;

	for (i = 0; i < MAX_CONS; i++)
		if (conss[i] != NULL && strcmp(conss[i]->queue, queue) == 0)
			return (conss[i]);
	return (NULL);
}

#define QUOTA3 \
	"\"quotas\":[{\"metadata\":{\"name\":\"q\",\"namespace\":\"" NS "\"}," \
	"\"spec\":{\"maxSandboxes\":3}}]"

/*
 * A new config mid-run: pools replaced (warm pool edited) or removed, all
 * under an AgentQuota that defers, so that deferred tasks meet it too.
 */
static void
random_apply(void)
{
	static const char *const docs[] = {
		"{\"pools\":[" POOL("a", "qa") "," POOL("b", "qb") "]," QUOTA3
		    "}",
		"{\"pools\":[" POOL_WP2("a", "qa") "," POOL("b", "qb") "],"
		    QUOTA3 "}",
		"{\"pools\":[" POOL("a", "qa") "," POOL_WP2("b", "qb") "],"
		    QUOTA3 "}",
		"{\"pools\":[" POOL("b", "qb") "]," QUOTA3 "}",
	};

	reapply(docs[rnd(AS_ARRAY_SIZE(docs))]);
}

START_TEST(test_random_interleavings)
{
	char		 id[16];
	struct fcons	*c;
	int		 step, i;

	rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(_i + 1);
	/*
	 * The seed alone decides what happens: the clock is frozen and the
	 * backoff jitter (as_random) seeded before the dispatcher is made
	 * again (the fixture's read the real clock), so a failing seed fails
	 * again on any machine, alone or after other seeds.
	 */
	teardown();
	as_clock_frozen = 1;
	as_random_seed(rng + RANDOM_JITTER * 0x2545f4914f6cdd1dULL);
	setup();
	for (step = 0; step < RANDOM_STEPS; step++) {
		if (rnd(RANDOM_STEPS / 8) == 0)
			random_apply();
		if (rnd(32) == 0)
			ev_run(loop, EVRUN_NOWAIT);	/* the pump's kick */
		if (rnd(RANDOM_STEPS / 16) == 0)	/* an API outage */
			fi_find(NS)->failing = !fi_find(NS)->failing;
		if (rnd(64) == 0) {
			/* Time passes (readyTimeoutSeconds: 180 s). */
			as_mono_skew += rnd(90);
			dispatcher_sweep_now(disp);
			check_invariants();
		}
		switch (rnd(4)) {
		case 0:
			c = fc_try(rnd(2) ? "qa" : "qb");
			if (c == NULL || c->outstanding >= c->window)
				break;
			snprintf(id, sizeof id, "t%u", rnd(8));
			fc_deliver(c->queue, id, rnd(4) == 0);
			break;
		case 1:
			random_op();
			break;
		case 2:
			random_req();
			break;
		default:
			random_claim_change();
			break;
		}
		check_invariants();
	}
	ck_assert_int_gt(nhandoffs, 0);		/* it got somewhere */
	as_clock_frozen = 0;
	dispatcher_free(disp);
	disp = NULL;
	for (i = 0; i < nmsgs; i++)
		ck_assert_msg(ledger[i].acked + ledger[i].dead <= 1,
		    "seed %d: message %d finished twice", _i, i);
}
END_TEST

/*
 * Scale (issue 15): P pools in one namespace, ten tasks each, and no
 * consumer (the dispatcher's own loops only).  What is done for one pool
 * visits that pool and its own tasks (disp->visits counts the loops),
 * never every pool or every task of the namespace: a reload of the same
 * config, one that removes half the pools, and the CRD status of every
 * pool (now no loop at all), whose claim counts equal a walk.  Counts,
 * not a clock: the old loops (every pool compared with every other, every
 * removed pool walking the namespace's tasks) cost P^2.
 */
#define SCALE_TASKS	10

static const struct consumer_type *
fc_none(const char *source_type, const char *address)
{
	(void)source_type;
	(void)address;
	return (NULL);
}

/* Pools p<from> .. p<to - 1> of namespace NS: a config document. */
static char *
scale_doc(size_t from, size_t to)
{
	size_t		 i, len = 0, cap = (to - from + 1) * 400;
	char		*doc = xmalloc(cap), name[32];

	len += (size_t)snprintf(doc + len, cap - len, "{\"pools\":[");
	for (i = from; i < to; i++) {
		snprintf(name, sizeof name, "p%zu", i);
		len += (size_t)snprintf(doc + len, cap - len, "%s{\"metadata\":"
		    "{\"name\":\"%s\",\"namespace\":\"" NS "\"},\"spec\":"
		    "{\"mode\":\"dispatch\",\"source\":{\"type\":"
		    "\"redis-list\",\"address\":\"redis://127.0.0.1:1/0\","
		    "\"queue\":\"q%s\"},\"handoff\":{\"mode\":\"inbox\"},"
		    "\"sandbox\":{\"warmPool\":\"wp\","
		    "\"spare\":{\"min\":0,\"max\":0}}}}", i > from ? "," :
		    "", name, name);
	}
	len += (size_t)snprintf(doc + len, cap - len, "]}");
	ck_assert_uint_lt(len, cap);
	return (doc);
}

static struct config *
scale_config(size_t from, size_t to)
{
	struct config	*c;
	char		*doc = scale_doc(from, to), err[512];

	ck_assert_int_eq(config_parse(doc, strlen(doc), NULL, &c, err,
	    sizeof err), 0);
	free(doc);
	return (c);
}

static void
count_status(void *arg, const char *ns, const char *name)
{
	(void)ns;
	(void)name;
	(*(size_t *)arg)++;
}

/* cfg becomes c, applied. */
static void
scale_apply(struct config *c)
{
	dispatcher_apply(disp, c);
	config_free(cfg);
	cfg = c;
}

START_TEST(test_scale_counts)
{
	static const size_t sizes[] = { 100, 1000, 4000 };
	static struct dispatch_ops none_ops;
	struct crd_pool_status st;
	struct dpool	*p;
	struct dtask	*t;
	char		 id[64], name[32], *doc;
	size_t		 np = sizes[_i], i, k, n;
	uint64_t	 bound;

	/* Above every level: each pool would say it cannot consume. */
	log_set_level((enum log_level)(LOG_ERROR + 1));
	none_ops = fake_ops;
	none_ops.consumer_type = fc_none;
	doc = scale_doc(0, np);
	setup_ops(doc, &none_ops);
	free(doc);
	/* Ten tasks a pool: claims pending, on warm and on cold sandboxes. */
	LIST_FOREACH(p, &disp->pools, entry)
		for (k = 0; k < SCALE_TASKS; k++) {
			snprintf(id, sizeof id, "%s-t%zu", p->cfg->name, k);
			t = dtask_new(p->ns, p, id, NULL, id, 0);
			if (k % 3 == 0) {
				dtask_set_state(t, T_WAITING);
				continue;
			}
			dtask_unshow(t);
			t->launch = k % 3 == 1 ? L_WARM : L_COLD;
			dtask_show(t);
		}
	if (np <= 100)
		check_pool_counts();
	disp->visits = 0;
	for (i = 0; i < np; i++) {
		snprintf(name, sizeof name, "p%zu", i);
		memset(&st, 0, sizeof st);
		ck_assert_int_eq(dispatcher_pool_status(disp, NS, name, &st),
		    0);
		ck_assert_int_eq(st.in_flight, SCALE_TASKS);
		ck_assert_int_eq(st.claims_pending, 4);
		ck_assert_int_eq(st.claims_warm, 3);
		ck_assert_int_eq(st.claims_cold, 3);
	}
	ck_assert_uint_eq(disp->visits, 0);
	/*
	 * The sweep's notes tell the CRD of the pools whose status changed:
	 * all at first, then none, then the one whose task moved on.
	 */
	disp->status = count_status;
	disp->status_arg = &n;
	for (k = 0; k < 3; k++) {
		if (k == 2)
			dtask_set_waiting(TAILQ_FIRST(&LIST_FIRST(
			    &disp->pools)->tasks), 0);
		n = 0;
		LIST_FOREACH(p, &disp->pools, entry)
			dpool_status_note(p);
		ck_assert_uint_eq(n, k == 0 ? np : k == 1 ? 0 : 1);
	}
	/* The same pools again: each kept, in linear work. */
	disp->visits = 0;
	scale_apply(scale_config(0, np));
	ck_assert_msg(disp->visits <= 3 * np, "%zu pools: a reload visited "
	    "%llu", np, (unsigned long long)disp->visits);
	LIST_FOREACH(p, &disp->pools, entry)
		ck_assert_int_eq(p->live, SCALE_TASKS);
	/* Half of them removed: those and their own tasks visited. */
	disp->visits = 0;
	scale_apply(scale_config(np / 2, np));
	bound = 3 * np + 2 * SCALE_TASKS * (np / 2);
	ck_assert_msg(disp->visits <= bound, "%zu pools: removing half "
	    "visited %llu, more than %llu", np,
	    (unsigned long long)disp->visits, (unsigned long long)bound);
	LIST_FOREACH(p, &disp->pools, entry)
		ck_assert_int_eq(p->live, SCALE_TASKS);
	if (np <= 100)
		check_pool_counts();
	teardown();
}
END_TEST

static Suite *
dispatch_suite(void)
{
	Suite	*s = suite_create("dispatch");
	TCase	*tc;

	tc = tcase_create("traced");
	tcase_add_checked_fixture(tc, setup_traced, teardown);
	tcase_add_test(tc, test_traced_phases);
	tcase_add_test(tc, test_traced_child_linked);
	tcase_add_test(tc, test_traced_live_at_free);
	suite_add_tcase(s, tc);

	tc = tcase_create("state");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_happy_path);
	tcase_add_loop_test(tc, test_claim_fails_before_handoff, 0,
	    (int)AS_ARRAY_SIZE(early_rows));
	tcase_add_loop_test(tc, test_claim_gone_during_handoff, 0,
	    (int)AS_ARRAY_SIZE(gone_rows));
	tcase_add_loop_test(tc, test_same_id_two_pools, 0,
	    (int)AS_ARRAY_SIZE(twin_rows));
	tcase_add_test(tc, test_name_conflict_keeps_other_claim);
	tcase_add_test(tc, test_old_claim_name_adopted);
	tcase_add_loop_test(tc, test_sandbox_ends_after_handoff, 0,
	    (int)AS_ARRAY_SIZE(ended_rows));
	tcase_add_loop_test(tc, test_cluster_fault_waits, 0,
	    (int)AS_ARRAY_SIZE(wait_rows));
	tcase_add_loop_test(tc, test_background_delete_holds_quota, 0,
	    (int)AS_ARRAY_SIZE(bg_rows));
	tcase_add_test(tc, test_warm_pool_lowered_after_bind);
	tcase_add_test(tc, test_spawners_counted);
	tcase_add_loop_test(tc, test_rebuild_children_first, 0,
	    AS_ARRAY_SIZE(rebuild_rows));
	tcase_add_loop_test(tc, test_pool_replaced, 0,
	    (int)AS_ARRAY_SIZE(replace_rows));
	tcase_add_loop_test(tc, test_api_outage, 0,
	    (int)AS_ARRAY_SIZE(outage_rows));
	tcase_add_loop_test(tc, test_rebuilt_released_then_message, 0,
	    (int)AS_ARRAY_SIZE(rebuilt_rows));
	tcase_add_loop_test(tc, test_removed_pool_task_other_queue, 0,
	    (int)AS_ARRAY_SIZE(removed_rows));
	tcase_add_test(tc, test_rebuilt_long_pool_name);
	suite_add_tcase(s, tc);

	tc = tcase_create("rabbitmq");
	tcase_add_checked_fixture(tc, setup_rabbit, teardown);
	tcase_add_loop_test(tc, test_rabbit_lost_redelivered, 0,
	    (int)AS_ARRAY_SIZE(lost_rows));
	tcase_add_loop_test(tc, test_rabbit_fail_while_lost, 0,
	    (int)AS_ARRAY_SIZE(fail_lost_rows));
	tcase_add_test(tc, test_rabbit_redelivered_after_claim_gone);
	tcase_add_loop_test(tc, test_rabbit_rebuilt_succeeded_then_message, 0,
	    (int)AS_ARRAY_SIZE(ran_rows));
	tcase_add_loop_test(tc, test_rabbit_confirm_lost_then_succeeded, 0,
	    (int)AS_ARRAY_SIZE(confirm_rows));
	tcase_add_test(tc, test_rabbit_held_claim_deleted);
	tcase_add_loop_test(tc, test_rabbit_claim_kept_until_acked, 0,
	    (int)AS_ARRAY_SIZE(unacked_rows));
	tcase_add_loop_test(tc, test_rabbit_repeat_handoff_succeeded, 0,
	    (int)(sizeof repeat_rows / sizeof repeat_rows[0]));
	tcase_add_loop_test(tc, test_rabbit_refused_handoff_sandbox_succeeded,
	    0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("scale");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_scale_counts, 0, 3);
	suite_add_tcase(s, tc);

	tc = tcase_create("random");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_random_interleavings, RANDOM_FIRST,
	    RANDOM_SEEDS);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(dispatch_suite()));
}
