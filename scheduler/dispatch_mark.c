/*
 * dispatch_mark.c: the dispatcher's own hand-off markers, for the pools
 * whose consumer keeps none (RabbitMQ; consumer.h).  A Redis pool's marker
 * is a key beside its queue, which the consumer's handed_off() asks; a
 * RabbitMQ queue cannot be asked whether a message is in it, so the marker
 * lives here: (namespace, task id) -> sandbox, set when a hand-off is
 * confirmed, looked up when a redelivered message has no live task.
 *
 * Why in memory, and not on the broker or in Kubernetes:
 *  - the broker: a queue per task (declared with x-expires) would be a
 *    marker that a passive queue.declare can look up, but a queue is a
 *    process and a metadata-store write on every node of the cluster, and
 *    a passive declare of a missing queue closes the channel; a queue of
 *    markers per namespace cannot be looked up by id at all;
 *  - Kubernetes: an annotation on the claim goes with the claim, which is
 *    exactly when the marker is needed (the redelivery comes after the
 *    claim is gone); a ConfigMap or Lease per task is one more write and
 *    one more delete per task against the API server, doubling the
 *    dispatcher's writes, for a case that a connection loss makes common
 *    and a crash makes rare.
 * The common case is a connection loss (a broker restart, a blip, a memory
 * alarm): the broker redelivers every unacked message while this process,
 * and so its markers, lives.  What is left is a crash of agentscaler after
 * a hand-off and before its ack, whose claim is also gone before the
 * restarted process consumes again: the claims are read before any message
 * is taken, so a task whose claim lives is rebuilt from it and the
 * redelivery joins it (README, "Dispatch mode"); a rebuilt claim whose
 * sandbox succeeded sets the marker itself (dtask_succeeded_unseen).  So
 * that a claim is there to be read, the claim of a task that ended before
 * its message was acked here is kept until that message comes back and is
 * acked, or the consumer has been up DISPATCH_ACK_HOLD seconds without it
 * (dtask_hold): deleted at once, a crash before the redelivery left no
 * record at all, and the task ran again in another sandbox.
 *
 * Bounded: at most DMARK_MAX markers, each for marker_ttl (the claim TTL
 * plus a day, as on Redis); the oldest goes first when the table is full.
 * The table (rt/hash.h) hashes (namespace, id) with task_hash(), as the
 * task tables do.
 *
 * Ownership: the table copies what it is given; dmarks_find() returns a
 * string borrowed until the next call on the table.
 */
#include <sys/queue.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/hash.h"
#include "task.h"

#include "dispatch_int.h"

#define DMARK_MAX	65536	/* markers in one dispatcher */

struct dmark {
	struct as_hash_entry	 link;		/* task_hash(ns, id) */
	TAILQ_ENTRY(dmark)	 fifo;		/* oldest first */
	double			 expires;	/* mono */
	char			*ns;
	char			*id;
	char			*sandbox;
};

/* What dmarks_eq() compares a marker with. */
struct dmark_key {
	const char		*ns;
	const char		*id;
};

struct dmarks {
	struct as_hash		 tab;
	TAILQ_HEAD(, dmark)	 fifo;
};

static int
dmarks_eq(const struct as_hash_entry *l, const void *arg)
{
	const struct dmark	*k = AS_HASH_ITEM(l, struct dmark, link);
	const struct dmark_key	*key = arg;

	return (strcmp(k->id, key->id) == 0 && strcmp(k->ns, key->ns) == 0);
}

struct dmarks *
dmarks_new(void)
{
	struct dmarks	*m = xcalloc(1, sizeof *m);

	as_hash_init(&m->tab, 64, 0, dmarks_eq);
	TAILQ_INIT(&m->fifo);
	return (m);
}

static struct dmark *
dmarks_get(const struct dmarks *m, const char *ns, const char *id)
{
	struct dmark_key key = { ns, id };

	return (AS_HASH_ITEM(as_hash_find(&m->tab, task_hash(ns, id), &key),
	    struct dmark, link));
}

static void
dmarks_drop(struct dmarks *m, struct dmark *k)
{
	as_hash_remove(&m->tab, &k->link);
	TAILQ_REMOVE(&m->fifo, k, fifo);
	free(k->ns);
	free(k->id);
	free(k->sandbox);
	free(k);
}

void
dmarks_free(struct dmarks *m)
{
	if (m == NULL)
		return;
	while (!TAILQ_EMPTY(&m->fifo))
		dmarks_drop(m, TAILQ_FIRST(&m->fifo));
	as_hash_fini(&m->tab);
	free(m);
}

void
dmarks_add(struct dmarks *m, const char *ns, const char *id,
    const char *sandbox, double ttl, double now)
{
	struct dmark	*k;

	while ((k = TAILQ_FIRST(&m->fifo)) != NULL &&
	    (as_hash_count(&m->tab) >= DMARK_MAX || k->expires <= now))
		dmarks_drop(m, k);
	if ((k = dmarks_get(m, ns, id)) != NULL) {
		/* Again (a hand-off repeated): renewed, last out. */
		free(k->sandbox);
		TAILQ_REMOVE(&m->fifo, k, fifo);
	} else {
		k = xcalloc(1, sizeof *k);
		k->ns = xstrdup(ns);
		k->id = xstrdup(id);
		as_hash_insert(&m->tab, &k->link, task_hash(ns, id));
	}
	k->sandbox = xstrdup(sandbox);
	k->expires = now + ttl;
	TAILQ_INSERT_TAIL(&m->fifo, k, fifo);
}

const char *
dmarks_find(struct dmarks *m, const char *ns, const char *id, double now)
{
	struct dmark	*k;

	if ((k = dmarks_get(m, ns, id)) == NULL)
		return (NULL);
	if (k->expires <= now) {
		dmarks_drop(m, k);
		return (NULL);
	}
	return (k->sandbox);
}

size_t
dmarks_count(const struct dmarks *m)
{
	return (as_hash_count(&m->tab));
}
