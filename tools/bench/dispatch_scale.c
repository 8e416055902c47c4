/*
 * dispatch_scale.c: the dispatcher (scheduler/dispatch*.c) at scale: 10,000
 * dispatch pools and up to 100,000 live tasks in one process (issue 15).
 *
 * Not the daemon and no API server: the dispatcher runs over fakes given
 * through struct dispatch_ops, as tests/check_dispatch.c drives it (its
 * fakes are its own; these are this file's).  The fake API answers what a
 * task's life needs at once (a claim POST gets 201, a claim DELETE 200, a
 * Sandbox GET 404) and leaves every other request pending forever (warm
 * pool /scale reads, template reads: counted and printed); the fake claim
 * informer keeps its cache in a hash table and sends its events when told;
 * the fake consumer completes every operation (hand-off, ack) with
 * success.  Every pool is a redis-list dispatch pool on warm pool "wp"
 * with no spares, spread over the namespaces round-robin, no AgentQuota.
 *
 * Live tasks are made the way a restarted daemon meets them: one claim per
 * task, bound to a Ready sandbox and labelled as the dispatcher labels
 * its claims, reported ADDED by the informer; the dispatcher rebuilds a
 * record for each (dns_claim_event).  They stay live for the whole run.
 *
 * Printed at 0, 10,000, 50,000 and 100,000 live tasks (the steps):
 *
 *   intake     CPU per claim of taking the step's new claims in;
 *   sweep      CPU of one dispatcher_sweep_now() (the periodic tick:
 *              retries, readyTimeoutSeconds, the TTL backstop, tree
 *              budgets), the mean over a bounded number of sweeps;
 *   hand-off   CPU of one task's whole path with that many others live:
 *              message delivered -> claim POST -> claim Ready (informer) ->
 *              hand-off -> ack -> claim gone -> Sandbox 404 -> record
 *              freed, over HANDOFFS tasks on pools spread over all; this
 *              includes the fakes' own share (building the claim object,
 *              the hash tables), the same at every step;
 *   memory     glibc's allocated bytes (mallinfo2().uordblks, headers and
 *              padding included) grown by the step's claims in the fake
 *              informer's cache (the real informer keeps one parsed
 *              object per claim too) and, apart, by the dispatcher's
 *              records; VmRSS of the process (cache, records, config and
 *              10,000 pools).
 *
 * CPU is CLOCK_PROCESS_CPUTIME_ID (this process is single-threaded), so a
 * busy machine changes the figures less than it changes wall time.  A
 * growth of sweep ms per step in proportion to the live tasks is linear;
 * faster growth is printed as such.
 *
 * usage: dispatch_scale [POOLS [NAMESPACES [TASKS [SWEEPS [HANDOFFS]]]]]
 *        (defaults 10000 1000 100000 50 2000)
 */
#include <sys/queue.h>

#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/k8s/informer.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/hash.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/scalers/consumer.h"
#include "scheduler/config.h"
#include "scheduler/dispatch.h"
#include "scheduler/task.h"

#define MAX_STEPS	4

/* The fake API: requests it answers (work) and those it never does. */

enum rkind { R_POST_CLAIM, R_DELETE_CLAIM, R_GET_SANDBOX, R_OTHER };

struct breq {
	TAILQ_ENTRY(breq)	 entry;
	enum rkind		 kind;
	int			 work;	/* on the work list, else idle */
	char			 path[512];
	char			*body;
	k8s_done_fn		*done;
	k8s_scale_fn		*sdone;
	void			*arg;
};

TAILQ_HEAD(breqs, breq);
static struct breqs	 work = TAILQ_HEAD_INITIALIZER(work);
static struct breqs	 idle = TAILQ_HEAD_INITIALIZER(idle);
static size_t		 nidle;

/* The fake claim informers: one per namespace, a hash of claims. */

struct bclaim {
	struct as_hash_entry	 hlink;
	char			 name[CLAIM_NAME_MAX + 1];
	cJSON			*obj;		/* NULL when compact */
	char			*text;		/* compact: obj printed */
};

struct binf {
	struct as_hash_entry	 hlink;	/* infs, by namespace */
	char			 ns[64];
	informer_fn		*fn;
	void			*arg;
	informer_transform_fn	*transform;	/* as the real informer */
	void			*transform_arg;
	int			 compact;	/* as the real informer */
	struct as_hash		 claims;
};

static struct as_hash	 infs;
/* Claims parsed again for a compact cache's reader, freed by lent_free. */
static cJSON		**lent;
static size_t		 nlent, lent_cap;

/* The fake consumer: operations complete in order, with success. */

enum okind { O_ACK, O_DL, O_HANDOFF, O_CHECK };

struct bop {
	TAILQ_ENTRY(bop)	 entry;
	enum okind		 kind;
	struct bcons		*c;
	struct consumer_msg	*msg;
	consumer_done_fn	*done;
	consumer_handoff_fn	*hdone;
	consumer_check_fn	*cdone;
	void			*arg;
};

struct bcons {
	struct consumer		 base;
	struct as_hash_entry	 hlink;	/* conss, by queue */
	char			 queue[64];
	consumer_deliver_fn	*deliver;
	void			*arg;
	int			 outstanding;
};

static TAILQ_HEAD(, bop) ops = TAILQ_HEAD_INITIALIZER(ops);
static struct as_hash	 conss;
static uint64_t		 ndead;		/* dead letters: none expected */

static struct k8s_req	*bk_request(struct k8s_client *, const char *,
			    const char *, const char *, const char *,
			    k8s_done_fn *, void *);
static void		 bk_cancel(struct k8s_req *);
static struct k8s_req	*bk_scale(struct k8s_client *, const char *,
			    const char *, const char *, k8s_scale_fn *, void *);
static struct k8s_req	*bk_scale_patch(struct k8s_client *, const char *,
			    const char *, const char *, long, k8s_scale_fn *,
			    void *);
static struct informer	*bi_new(struct k8s_client *,
			    const struct informer_options *, informer_fn *,
			    void *, char *, size_t);
static void		 bi_free(struct informer *);
static const cJSON	*bi_get(const struct informer *, const char *,
			    const char *);
static void		 bi_stats(const struct informer *,
			    struct informer_stats *);
static const cJSON	*bclaim_obj(struct bclaim *);
static void		 lent_free(void);
static const struct consumer_type *bc_type(const char *, const char *);
static void		 die(const char *, ...)
			    __attribute__((format(printf, 1, 2), noreturn));

static const struct dispatch_ops bench_ops = {
	.request = bk_request,
	.cancel = bk_cancel,
	.scale_get = bk_scale,
	.scale_patch = bk_scale_patch,
	.informer_new = bi_new,
	.informer_free = bi_free,
	.informer_get = bi_get,
	.informer_stats = bi_stats,
	.consumer_type = bc_type,
};

static void
die(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double
clock_s(clockid_t id)
{
	struct timespec	 ts;

	clock_gettime(id, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

static double
cpu_s(void)
{
	return (clock_s(CLOCK_PROCESS_CPUTIME_ID));
}

static size_t
heap_bytes(void)
{
	return (mallinfo2().uordblks);
}

/* VmRSS of this process in KiB, or 0. */
static long
rss_kib(void)
{
	FILE	*f = fopen("/proc/self/status", "r");
	char	 line[256];
	long	 kib = 0;

	if (f == NULL)
		return (0);
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kib = strtol(line + 6, NULL, 10);
	fclose(f);
	return (kib);
}

static struct breq *
breq_add(enum rkind kind, const char *path, const char *body)
{
	struct breq	*r = xcalloc(1, sizeof *r);

	r->kind = kind;
	as_strlcpy(r->path, path, sizeof r->path);
	r->body = body != NULL ? xstrdup(body) : NULL;
	r->work = kind != R_OTHER;
	if (r->work)
		TAILQ_INSERT_TAIL(&work, r, entry);
	else {
		TAILQ_INSERT_TAIL(&idle, r, entry);
		nidle++;
	}
	return (r);
}

static void
breq_unlink(struct breq *r)
{
	if (r->work)
		TAILQ_REMOVE(&work, r, entry);
	else {
		TAILQ_REMOVE(&idle, r, entry);
		nidle--;
	}
}

static struct k8s_req *
bk_request(struct k8s_client *k, const char *method, const char *path,
    const char *content_type, const char *body, k8s_done_fn *done, void *arg)
{
	enum rkind	 kind = R_OTHER;
	struct breq	*r;

	(void)k;
	(void)content_type;
	if (strcmp(method, "POST") == 0 && strstr(path, "/sandboxclaims") !=
	    NULL)
		kind = R_POST_CLAIM;
	else if (strcmp(method, "DELETE") == 0 &&
	    strstr(path, "/sandboxclaims/") != NULL)
		kind = R_DELETE_CLAIM;
	else if (strcmp(method, "GET") == 0 && strstr(path, "/sandboxes/") !=
	    NULL)
		kind = R_GET_SANDBOX;
	r = breq_add(kind, path, body);
	r->done = done;
	r->arg = arg;
	return ((struct k8s_req *)r);
}

static struct k8s_req *
bk_scale(struct k8s_client *k, const char *kind, const char *ns,
    const char *name, k8s_scale_fn *done, void *arg)
{
	struct breq	*r;

	(void)k;
	(void)kind;
	(void)ns;
	r = breq_add(R_OTHER, name, NULL);
	r->sdone = done;
	r->arg = arg;
	return ((struct k8s_req *)r);
}

static struct k8s_req *
bk_scale_patch(struct k8s_client *k, const char *kind, const char *ns,
    const char *name, long replicas, k8s_scale_fn *done, void *arg)
{
	(void)replicas;
	return (bk_scale(k, kind, ns, name, done, arg));
}

/* Completes r (taken off its list first, as the real client does). */
static void
breq_reply(struct breq *r, int err, long code, const char *body)
{
	struct k8s_response resp;
	struct k8s_scale sc = { 0, 0, "" };

	breq_unlink(r);
	if (r->sdone != NULL)
		r->sdone(err, err == 0 ? &sc : NULL, err == 0 ? "" : "failed",
		    r->arg);
	else {
		memset(&resp, 0, sizeof resp);
		resp.err = err;
		resp.code = code;
		resp.body = body != NULL ? body : "";
		resp.body_len = strlen(resp.body);
		resp.message = err == 0 ? "" : "bench: failed";
		r->done(&resp, r->arg);
	}
	free(r->body);
	free(r);
}

static void
bk_cancel(struct k8s_req *req)
{
	breq_reply((struct breq *)req, -AS_ECANCELED, 0, NULL);
}

static int
bclaim_eq(const struct as_hash_entry *e, const void *key)
{
	return (strcmp(AS_HASH_ITEM(e, struct bclaim, hlink)->name,
	    key) == 0);
}

static int
binf_eq(const struct as_hash_entry *e, const void *key)
{
	return (strcmp(AS_HASH_ITEM(e, struct binf, hlink)->ns, key) == 0);
}

static int
bcons_eq(const struct as_hash_entry *e, const void *key)
{
	return (strcmp(AS_HASH_ITEM(e, struct bcons, hlink)->queue,
	    key) == 0);
}

static struct informer *
bi_new(struct k8s_client *k, const struct informer_options *io,
    informer_fn *fn, void *arg, char *err, size_t errlen)
{
	struct binf	*fi = xcalloc(1, sizeof *fi);
	const char	*p = strstr(io->path, "/namespaces/");
	size_t		 i;

	(void)k;
	(void)err;
	(void)errlen;
	p = p != NULL ? p + strlen("/namespaces/") : "";
	for (i = 0; p[i] != '\0' && p[i] != '/' && i < sizeof fi->ns - 1; i++)
		fi->ns[i] = p[i];
	fi->fn = fn;
	fi->arg = arg;
	fi->transform = io->transform;
	fi->transform_arg = io->transform_arg;
	fi->compact = io->compact;
	as_hash_init(&fi->claims, 0, 0, bclaim_eq);
	as_hash_insert(&infs, &fi->hlink, as_hash_str(fi->ns));
	return ((struct informer *)fi);
}

static struct binf *
binf_find(const char *ns)
{
	return (AS_HASH_ITEM(as_hash_find(&infs, as_hash_str(ns), ns),
	    struct binf, hlink));
}

static struct bclaim *
bclaim_find(const struct binf *fi, const char *name)
{
	return (AS_HASH_ITEM(as_hash_find(&fi->claims, as_hash_str(name),
	    name), struct bclaim, hlink));
}

static void
bi_free(struct informer *inf)
{
	struct binf	*fi = (struct binf *)inf;
	struct as_hash_entry *e;
	struct bclaim	*c;

	if (fi == NULL)
		return;
	while ((e = as_hash_first(&fi->claims)) != NULL) {
		c = AS_HASH_ITEM(e, struct bclaim, hlink);
		as_hash_remove(&fi->claims, e);
		cJSON_Delete(c->obj);
		free(c->text);
		free(c);
	}
	as_hash_fini(&fi->claims);
	as_hash_remove(&infs, &fi->hlink);
	free(fi);
}

static const cJSON *
bi_get(const struct informer *inf, const char *ns, const char *name)
{
	struct bclaim	*c = bclaim_find((const struct binf *)inf, name);

	(void)ns;
	return (c != NULL ? bclaim_obj(c) : NULL);
}

/* c's object: compact, parsed again and lent until lent_free(). */
static const cJSON *
bclaim_obj(struct bclaim *c)
{
	cJSON	*obj;

	if (c->obj != NULL)
		return (c->obj);
	if ((obj = cJSON_Parse(c->text)) == NULL)
		die("dispatch_scale: a cached claim does not parse");
	if (nlent == lent_cap) {
		lent_cap = lent_cap > 0 ? lent_cap * 2 : 64;
		lent = xrealloc(lent, lent_cap * sizeof *lent);
	}
	lent[nlent++] = obj;
	return (obj);
}

/* What the real informer frees on return to the loop. */
static void
lent_free(void)
{
	while (nlent > 0)
		cJSON_Delete(lent[--nlent]);
}

static void
bi_stats(const struct informer *inf, struct informer_stats *st)
{
	(void)inf;
	memset(st, 0, sizeof *st);
}

/* Puts obj (taken over) in the cache of ns; returns its entry. */
static struct bclaim *
bi_put(struct binf *fi, cJSON *obj)
{
	struct bclaim	*c = xcalloc(1, sizeof *c);

	if (fi->transform != NULL)
		fi->transform(obj, fi->transform_arg);
	as_strlcpy(c->name, cJSON_GetStringValue(
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
	    obj, "metadata"), "name")), sizeof c->name);
	if (fi->compact) {
		c->text = cJSON_PrintUnformatted(obj);
		cJSON_Delete(obj);
		obj = NULL;
	}
	c->obj = obj;
	as_hash_insert(&fi->claims, &c->hlink, as_hash_str(c->name));
	return (c);
}

/* The claim goes from the cache; the informer reports it DELETED. */
static void
bi_gone(struct binf *fi, const char *name)
{
	struct bclaim	*c = bclaim_find(fi, name);

	if (c == NULL)
		return;
	as_hash_remove(&fi->claims, &c->hlink);
	fi->fn((struct informer *)fi, INFORMER_DELETED, bclaim_obj(c),
	    fi->arg);
	lent_free();
	cJSON_Delete(c->obj);
	free(c->text);
	free(c);
}

/* Adds status: bound to sandbox, Ready=True. */
static void
claim_ready(cJSON *obj, const char *sandbox)
{
	cJSON	*st, *c;

	cJSON_DeleteItemFromObjectCaseSensitive(obj, "status");
	st = cJSON_AddObjectToObject(obj, "status");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(st, "sandbox"), "name",
	    sandbox);
	c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "type", "Ready");
	cJSON_AddStringToObject(c, "status", "True");
	cJSON_AddStringToObject(c, "reason", "DependenciesReady");
	cJSON_AddItemToArray(cJSON_AddArrayToObject(st, "conditions"), c);
}

/* A Ready claim of task id of pool, as the dispatcher labels its own. */
static cJSON *
claim_new(const char *pool, const char *ns, const char *id)
{
	char	 name[CLAIM_NAME_MAX + 1], label[64], *doc;
	cJSON	*obj;

	task_claim_name(pool, ns, id, name);
	task_pool_label(pool, label);
	doc = xasprintf("{\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\","
	    "\"uid\":\"uid-%s\",\"labels\":{\"" TASK_LABEL_MANAGED "\":\""
	    TASK_LABEL_MANAGED_VALUE "\",\"" TASK_LABEL_POOL "\":\"%s\",\""
	    TASK_LABEL_DEPTH "\":\"0\"},\"annotations\":{\"" TASK_ANN_TASK_ID
	    "\":\"%s\",\"" TASK_ANN_ROOT_ID "\":\"%s\"}}}", name, ns, id, label,
	    id, id);
	obj = cJSON_Parse(doc);
	free(doc);
	if (obj == NULL)
		die("dispatch_scale: a claim did not parse");
	claim_ready(obj, "sb");
	return (obj);
}

static struct consumer *bc_create(struct ev_loop *,
		    const struct scaler_source *,
		    const struct consumer_options *, char *, size_t);
static int	 bc_start(struct consumer *, consumer_deliver_fn *,
		    consumer_state_fn *, void *);
static void	 bc_set_window(struct consumer *, int);
static int	 bc_ack(struct consumer *, struct consumer_msg *,
		    consumer_done_fn *, void *);
static int	 bc_dead_letter(struct consumer *, struct consumer_msg *,
		    const char *, size_t, consumer_done_fn *, void *);
static int	 bc_handoff(struct consumer *, const char *, const char *,
		    const char *, const char *, size_t, consumer_handoff_fn *,
		    void *);
static int	 bc_handed_off(struct consumer *, const char *, const char *,
		    consumer_check_fn *, void *);
static int	 bc_outstanding(const struct consumer *);
static void	 bc_destroy(struct consumer *);

static const struct consumer_type bench_consumer_type = {
	.name = "bench",
	.create = bc_create,
	.start = bc_start,
	.set_window = bc_set_window,
	.ack = bc_ack,
	.dead_letter = bc_dead_letter,
	.handoff = bc_handoff,
	.handed_off = bc_handed_off,
	.outstanding = bc_outstanding,
	.destroy = bc_destroy,
};

static const struct consumer_type *
bc_type(const char *source_type, const char *address)
{
	(void)source_type;
	(void)address;
	return (&bench_consumer_type);
}

static struct consumer *
bc_create(struct ev_loop *loop, const struct scaler_source *src,
    const struct consumer_options *co, char *err, size_t errlen)
{
	struct bcons	*c = xcalloc(1, sizeof *c);

	(void)loop;
	(void)co;
	(void)err;
	(void)errlen;
	c->base.type = &bench_consumer_type;
	as_strlcpy(c->queue, src->queue, sizeof c->queue);
	as_hash_insert(&conss, &c->hlink, as_hash_str(c->queue));
	return (&c->base);
}

static int
bc_start(struct consumer *base, consumer_deliver_fn *deliver,
    consumer_state_fn *state, void *arg)
{
	struct bcons	*c = (struct bcons *)base;

	c->deliver = deliver;
	c->arg = arg;
	state(base, 1, NULL, arg);
	return (0);
}

static void
bc_set_window(struct consumer *base, int window)
{
	(void)base;
	(void)window;
}

static int
bc_outstanding(const struct consumer *base)
{
	return (((const struct bcons *)base)->outstanding);
}

static struct bop *
bop_add(struct consumer *base, enum okind kind, struct consumer_msg *msg,
    void *arg)
{
	struct bop	*op = xcalloc(1, sizeof *op);

	op->kind = kind;
	op->c = (struct bcons *)base;
	op->msg = msg;
	op->arg = arg;
	TAILQ_INSERT_TAIL(&ops, op, entry);
	return (op);
}

static int
bc_ack(struct consumer *base, struct consumer_msg *msg,
    consumer_done_fn *done, void *arg)
{
	bop_add(base, O_ACK, msg, arg)->done = done;
	return (0);
}

static int
bc_dead_letter(struct consumer *base, struct consumer_msg *msg,
    const char *record, size_t len, consumer_done_fn *done, void *arg)
{
	(void)record;
	(void)len;
	bop_add(base, O_DL, msg, arg)->done = done;
	return (0);
}

static int
bc_handoff(struct consumer *base, const char *ns, const char *sandbox,
    const char *task_id, const char *body, size_t len,
    consumer_handoff_fn *done, void *arg)
{
	(void)ns;
	(void)sandbox;
	(void)task_id;
	(void)body;
	(void)len;
	bop_add(base, O_HANDOFF, NULL, arg)->hdone = done;
	return (0);
}

static int
bc_handed_off(struct consumer *base, const char *ns, const char *task_id,
    consumer_check_fn *done, void *arg)
{
	(void)ns;
	(void)task_id;
	bop_add(base, O_CHECK, NULL, arg)->cdone = done;
	return (0);
}

/* Completes op with err (0: success; a marker check answers "no"). */
static void
bop_complete(struct bop *op, int err)
{
	const char	*errmsg = err != 0 ? "bench: cancelled" : "";

	TAILQ_REMOVE(&ops, op, entry);
	if (op->msg != NULL) {
		op->c->outstanding--;
		consumer_msg_free(op->msg);
	}
	switch (op->kind) {
	case O_ACK:
	case O_DL:
		if (op->kind == O_DL && err == 0)
			ndead++;
		op->done(err, errmsg, op->arg);
		break;
	case O_HANDOFF:
		op->hdone(err, CONSUMER_HANDOFF_DONE, errmsg, op->arg);
		break;
	case O_CHECK:
		op->cdone(err, 0, errmsg, op->arg);
		break;
	}
	free(op);
}

static void
bc_destroy(struct consumer *base)
{
	struct bcons	*c = (struct bcons *)base;
	struct bop	*op, *next;

	for (op = TAILQ_FIRST(&ops); op != NULL; op = next) {
		next = TAILQ_NEXT(op, entry);
		if (op->c == c)
			bop_complete(op, -AS_ECANCELED);
	}
	as_hash_remove(&conss, &c->hlink);
	free(c);
}

/* The namespace of a claim request's path (.../namespaces/NS/...). */
static void
path_ns(const char *path, char *out, size_t outlen)
{
	const char	*p = strstr(path, "/namespaces/");
	size_t		 i;

	p = p != NULL ? p + strlen("/namespaces/") : "";
	for (i = 0; p[i] != '\0' && p[i] != '/' && i + 1 < outlen; i++)
		out[i] = p[i];
	out[i] = '\0';
}

/*
 * Answers a request the fake API serves: a claim POST is stored, Ready
 * and bound, answered 201 and shown to the informer; a claim DELETE is
 * answered and the claim reported gone; a Sandbox GET is a 404.
 */
static void
serve(struct breq *r)
{
	char		 ns[64], *body;
	const char	*name;
	struct binf	*fi;
	struct bclaim	*c;
	cJSON		*obj;

	path_ns(r->path, ns, sizeof ns);
	switch (r->kind) {
	case R_POST_CLAIM:
		if ((fi = binf_find(ns)) == NULL ||
		    (obj = cJSON_Parse(r->body)) == NULL)
			die("dispatch_scale: a claim POST it cannot serve");
		body = r->body;
		r->body = NULL;
		breq_reply(r, 0, 201, body);
		free(body);
		claim_ready(obj, "sb");
		c = bi_put(fi, obj);
		fi->fn((struct informer *)fi, INFORMER_ADDED, bclaim_obj(c),
		    fi->arg);
		lent_free();
		break;
	case R_DELETE_CLAIM:
		name = strrchr(r->path, '/') + 1;
		fi = binf_find(ns);
		body = xstrdup(name);
		breq_reply(r, 0, 200, "{}");
		if (fi != NULL)
			bi_gone(fi, body);
		free(body);
		break;
	case R_GET_SANDBOX:
		breq_reply(r, -AS_ENOTFOUND, 404, "{}");
		break;
	case R_OTHER:
		break;
	}
}

/* Serves requests and completes operations until none is left. */
static void
drain(void)
{
	struct breq	*r;
	struct bop	*op;

	for (;;) {
		if ((r = TAILQ_FIRST(&work)) != NULL)
			serve(r);
		else if ((op = TAILQ_FIRST(&ops)) != NULL)
			bop_complete(op, 0);
		else
			break;
	}
}

/* One task's whole life on pool i's queue; its id is unique. */
static void
one_task(struct ev_loop *loop, long i, long serial, const char *ns)
{
	char		 queue[32], id[32], pool[32], name[CLAIM_NAME_MAX + 1];
	struct bcons	*c;
	struct consumer_msg *msg;
	char		 body[64];

	snprintf(queue, sizeof queue, "q%ld", i);
	snprintf(pool, sizeof pool, "p%ld", i);
	snprintf(id, sizeof id, "h%ld", serial);
	c = AS_HASH_ITEM(as_hash_find(&conss, as_hash_str(queue), queue),
	    struct bcons, hlink);
	if (c == NULL || c->deliver == NULL)
		die("dispatch_scale: pool %s does not consume", pool);
	snprintf(body, sizeof body, "{\"id\":\"%s\"}", id);
	msg = consumer_msg_new(body, strlen(body), 0);
	msg->received = as_mono_now();
	snprintf(msg->ref, sizeof msg->ref, "%ld", serial);
	c->outstanding++;
	c->deliver(&c->base, msg, c->arg);
	drain();
	ev_run(loop, EVRUN_NOWAIT);
	lent_free();
	drain();
	/* The sandbox is done: its claim goes, then its Sandbox. */
	task_claim_name(pool, ns, id, name);
	bi_gone(binf_find(ns), name);
	drain();
}

/* Live tasks, waiting, deferred over every namespace (/status). */
static long
live_tasks(struct dispatcher *d)
{
	cJSON	*root = cJSON_CreateObject(), *ns;
	long	 n = 0;

	dispatcher_status(d, root);
	cJSON_ArrayForEach(ns, cJSON_GetObjectItemCaseSensitive(root,
	    "namespaces"))
		n += (long)cJSON_GetNumberValue(
		    cJSON_GetObjectItemCaseSensitive(ns, "liveTasks"));
	cJSON_Delete(root);
	return (n);
}

static char *
config_doc(long npools, long nns)
{
	struct as_buf	 b;
	long		 i;

	memset(&b, 0, sizeof b);
	/*
	 * The inbox hand-off: this bench's consumer fake takes the task (an
	 * http pool, the default, would PUT to the stock router's name).
	 */
	as_buf_printf(&b, "{\"pools\":[");
	for (i = 0; i < npools; i++)
		as_buf_printf(&b, "%s{\"metadata\":{\"name\":\"p%ld\","
		    "\"namespace\":\"n%ld\"},\"spec\":{\"mode\":\"dispatch\","
		    "\"source\":{\"type\":\"redis-list\",\"address\":"
		    "\"redis://127.0.0.1:1/0\",\"queue\":\"q%ld\"},\"sandbox\":"
		    "{\"warmPool\":\"wp\",\"spare\":{\"min\":0,\"max\":0}},"
		    "\"handoff\":{\"mode\":\"inbox\"}}}",
		    i > 0 ? "," : "", i, i % nns, i);
	as_buf_printf(&b, "]}");
	return (b.p);
}

struct step {
	long	 live;
	double	 intake_us;	/* CPU per claim taken in */
	double	 sweep_ms;	/* CPU per sweep */
	double	 sweep_wall_ms;
	double	 handoff_us;	/* CPU per task's whole path */
	double	 handoff_wall_us;
	double	 cache_b;	/* heap per claim in the informer cache */
	double	 record_b;	/* heap per live task record */
	long	 rss_kib;
};

int
main(int argc, char **argv)
{
	long		 npools = argc > 1 ? atol(argv[1]) : 10000;
	long		 nns = argc > 2 ? atol(argv[2]) : 1000;
	long		 ntasks = argc > 3 ? atol(argv[3]) : 100000;
	long		 nsweeps = argc > 4 ? atol(argv[4]) : 50;
	long		 nhand = argc > 5 ? atol(argv[5]) : 2000;
	long		 want[MAX_STEPS], made = 0, serial = 0, i, k, live;
	struct step	 steps[MAX_STEPS];
	struct dispatch_options o;
	struct dispatcher *d;
	struct config	*cfg;
	struct ev_loop	*loop;
	struct as_hash_entry *e;
	char		 err[512], ns[32];
	char		*doc;
	double		 c0, w0, rss0;
	size_t		 h0, h1, h2;
	int		 s, nsteps = 0;

	if (npools < 1 || nns < 1 || nns > npools || ntasks < 0 ||
	    nsweeps < 1 || nhand < 1) {
		fprintf(stderr, "usage: dispatch_scale [POOLS [NAMESPACES "
		    "[TASKS [SWEEPS [HANDOFFS]]]]]\n");
		return (2);
	}
	log_set_level(LOG_ERROR);
	want[nsteps++] = 0;
	if (ntasks / 10 > 0)
		want[nsteps++] = ntasks / 10;
	if (ntasks / 2 > ntasks / 10)
		want[nsteps++] = ntasks / 2;
	if (ntasks > 0)
		want[nsteps++] = ntasks;
	as_hash_init(&infs, 0, 0, binf_eq);
	as_hash_init(&conss, 0, 0, bcons_eq);
	loop = ev_loop_new(EVFLAG_AUTO);
	rss0 = (double)rss_kib();
	doc = config_doc(npools, nns);
	h0 = heap_bytes();
	if (config_parse(doc, strlen(doc), NULL, &cfg, err, sizeof err) != 0)
		die("dispatch_scale: config: %s", err);
	h1 = heap_bytes();
	free(doc);
	memset(&o, 0, sizeof o);
	o.instance = "bench";
	o.sweep_interval = 86400;	/* swept by hand */
	o.sizing_interval = 86400;
	o.ops = &bench_ops;
	c0 = cpu_s();
	d = dispatcher_new(loop, NULL, &o);
	dispatcher_apply(d, cfg);
	for (e = as_hash_first(&infs); e != NULL; e = as_hash_next(&infs, e)) {
		struct binf *fi = AS_HASH_ITEM(e, struct binf, hlink);

		fi->fn((struct informer *)fi, INFORMER_SYNCED, NULL, fi->arg);
	}
	drain();
	h2 = heap_bytes();
	printf("dispatch_scale: %ld dispatch pools over %ld namespaces "
	    "(redis-list, fake consumer, fake API, fake claim informers); "
	    "applied and started in %.0f ms CPU; VmRSS %.1f MiB (%.1f before "
	    "the config)\n", npools, nns, (cpu_s() - c0) * 1e3,
	    rss_kib() / 1024.0, rss0 / 1024.0);
	printf("heap per pool: %.0f B of parsed config, %.0f B of dispatcher "
	    "(its pool, namespace share, consumer and informer fakes, "
	    "pending requests)\n", ((double)h1 - (double)h0) / (double)npools,
	    ((double)h2 - (double)h1) / (double)npools);
	printf("requests left pending by the fake API (warm pool /scale, "
	    "templates): %zu\n", nidle);
	for (s = 0; s < nsteps; s++) {
		struct step *st = &steps[s];
		long	 n = want[s] - made;
		cJSON	**objs = n > 0 ? xcalloc((size_t)n, sizeof *objs) : NULL;
		struct bclaim **cs = n > 0 ? xcalloc((size_t)n, sizeof *cs) :
		    NULL;

		memset(st, 0, sizeof *st);
		/* The step's claims into the caches, then to the dispatcher. */
		h0 = heap_bytes();
		for (k = 0; k < n; k++) {
			char	 id[32], pool[32];

			i = (made + k) % npools;
			snprintf(id, sizeof id, "live%ld", made + k);
			snprintf(pool, sizeof pool, "p%ld", i);
			snprintf(ns, sizeof ns, "n%ld", i % nns);
			objs[k] = claim_new(pool, ns, id);
			cs[k] = bi_put(binf_find(ns), objs[k]);
		}
		h1 = heap_bytes();
		c0 = cpu_s();
		for (k = 0; k < n; k++) {
			struct binf *fi;

			snprintf(ns, sizeof ns, "n%ld", ((made + k) % npools) %
			    nns);
			fi = binf_find(ns);
			fi->fn((struct informer *)fi, INFORMER_ADDED,
			    bclaim_obj(cs[k]), fi->arg);
			lent_free();
		}
		drain();
		st->intake_us = n > 0 ? (cpu_s() - c0) * 1e6 / (double)n : 0;
		h2 = heap_bytes();
		st->cache_b = n > 0 ? ((double)h1 - (double)h0) / (double)n : 0;
		st->record_b = n > 0 ? ((double)h2 - (double)h1) / (double)n :
		    0;
		free(objs);
		free(cs);
		made = want[s];
		st->live = made;
		/* The periodic sweep. */
		c0 = cpu_s();
		w0 = clock_s(CLOCK_MONOTONIC);
		for (k = 0; k < nsweeps; k++)
			dispatcher_sweep_now(d);
		drain();
		st->sweep_ms = (cpu_s() - c0) * 1e3 / (double)nsweeps;
		st->sweep_wall_ms = (clock_s(CLOCK_MONOTONIC) - w0) * 1e3 /
		    (double)nsweeps;
		/* One task's path, others live; pools spread over all. */
		if (s == 0)
			for (k = 0; k < nhand / 10 + 1; k++) {	/* warm-up */
				i = (long)(((unsigned long long)k * 7919ULL) %
				    (unsigned long long)npools);
				snprintf(ns, sizeof ns, "n%ld", i % nns);
				one_task(loop, i, serial++, ns);
			}
		c0 = cpu_s();
		w0 = clock_s(CLOCK_MONOTONIC);
		for (k = 0; k < nhand; k++) {
			i = (long)(((unsigned long long)k * 7919ULL) %
			    (unsigned long long)npools);
			snprintf(ns, sizeof ns, "n%ld", i % nns);
			one_task(loop, i, serial++, ns);
		}
		st->handoff_us = (cpu_s() - c0) * 1e6 / (double)nhand;
		st->handoff_wall_us = (clock_s(CLOCK_MONOTONIC) - w0) * 1e6 /
		    (double)nhand;
		st->rss_kib = rss_kib();
		live = live_tasks(d);
		if (live != made)
			die("dispatch_scale: %ld live tasks, %ld expected "
			    "(a hand-off cycle left records, or claims were "
			    "not rebuilt)", live, made);
		printf("live %6ld: intake %6.2f us/claim; sweep %8.3f ms CPU "
		    "(%8.3f wall); hand-off path %6.2f us CPU (%6.2f wall); "
		    "heap/claim: cache %5.0f B, record %5.0f B; VmRSS "
		    "%6.1f MiB\n", st->live, st->intake_us, st->sweep_ms,
		    st->sweep_wall_ms, st->handoff_us, st->handoff_wall_us,
		    st->cache_b, st->record_b, st->rss_kib / 1024.0);
		fflush(stdout);
	}
	if (ndead > 0)
		printf("dead letters: %llu (none expected: a fake answered "
		    "wrongly)\n", (unsigned long long)ndead);
	/*
	 * Per live task, and step to step: a sweep that walks each task
	 * once grows with the tasks (plus cache misses once the records
	 * outgrow the CPU caches); one that grows by the square of the step
	 * is quadratic.
	 */
	for (s = 1; s < nsteps; s++)
		printf("sweep per live task at %6ld: %.1f ns\n", steps[s].live,
		    steps[s].sweep_ms * 1e6 / (double)steps[s].live);
	for (s = 2; s < nsteps; s++) {
		double	 ratio = steps[s].sweep_ms / steps[s - 1].sweep_ms;
		double	 tasks = (double)steps[s].live /
		    (double)steps[s - 1].live;

		printf("sweep growth %ld -> %ld live tasks: x%.1f for x%.1f "
		    "tasks (%s)\n", steps[s - 1].live, steps[s].live, ratio,
		    tasks, ratio > tasks * tasks * 0.75 ? "QUADRATIC or worse" :
		    ratio > 1.5 * tasks ? "faster than linear" : "linear");
	}
	if (nsteps > 1)
		printf("hand-off path at %ld live vs 0 live: x%.2f CPU\n",
		    steps[nsteps - 1].live, steps[nsteps - 1].handoff_us /
		    steps[0].handoff_us);
	c0 = cpu_s();
	dispatcher_free(d);
	while (TAILQ_FIRST(&idle) != NULL)
		breq_reply(TAILQ_FIRST(&idle), -AS_ECANCELED, 0, NULL);
	printf("dispatcher_free: %.0f ms CPU\n", (cpu_s() - c0) * 1e3);
	config_free(cfg);
	lent_free();
	free(lent);
	as_hash_fini(&infs);
	as_hash_fini(&conss);
	ev_loop_destroy(loop);
	return (0);
}
