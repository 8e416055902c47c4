/*
 * dispatch_http.c: handoff.mode http, agentscaler's side of the agent
 * protocol (docs/protocol.md section 8) for one task at a time, over the
 * pool's HTTP client (scheduler/rt/httpc.c) and results publisher
 * (agentscaler/scalers/results.h); the messages are handoff_http.c's.
 *
 *   POD      the pod's IP: the claim's status.sandbox.podIPs[0] as
 *            its watch shows it, else (via podIP) a GET of the Sandbox;
 *            via the router it goes in X-Sandbox-Pod-IP when known;
 *   PUT      the Task; a transport failure (no answer, a 5xx, anything
 *            without the protocol's apiVersion) is retried with jittered
 *            backoff (0.2 s doubling to 5 s) until handoff.deadlineSeconds,
 *            then the task fails handoff.unreachable; 201 or 200: the
 *            source message is acked, only now; 409 handoff.conflict; 410
 *            the task ran and was acknowledged before: ack and clean up;
 *   POLL     GET events?after=N&ack=A&wait=25 (attempt timeout 40 s), over
 *            and over; after passes each event read, ack only those whose
 *            effects are done (a deferred spawn holds it below itself);
 *            404 task.unknown on a task handed off: runtime.lost;
 *   SPAWN    a spawn event becomes a child task <id>/<key> whose parent is
 *            this task (where it was read), with a message of its own
 *            that no broker holds (t->spawn_key: its ack is a no-op, a
 *            rejection dead-letters nothing), admitted like a producer's
 *            child (dtask_admit); its verdicts (deferred, admitted once
 *            its claim is made, rejected) and, at its end, its Result go
 *            to this task's runtime as Replies, from a queue of their own
 *            (h->outq, one POST at a time beside the long-poll);
 *   PUBLISH  the Result, to the pool's results destination, retried until
 *            it is confirmed (at least once; the task is not released
 *            before);
 *   DELETE   the task on the runtime (acknowledges its end), then the
 *            claim is released as every task's is (quota, claim delete).
 *
 * A task known from its claim only (agentscaler restarted) resumes with
 * POLL from after=0 (the runtime's retained log is the cursor); its message,
 * when it comes back unacked, is acked once the runtime shows it holds the
 * task, or handed off (PUT) when it does not.
 *
 * Ownership: a task owns its struct dhttp (t->http), freed with the task
 * (dhttp_free, from dtask_maybe_free).  Each request, Sandbox GET and
 * publish of it is cancelled there; their completions, which then run
 * with -AS_ECANCELED, touch nothing.  A completion cancelled for another
 * reason (the pool replaced, its client or publisher freed) schedules the
 * step again, on whatever pool the task then has.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/common.h"
#include "agentscaler/rt/httpc.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/scalers/results.h"
#include "agentscaler/scalers/scaler.h"
#include "config.h"
#include "handoff_http.h"
#include "podcidr.h"
#include "quota.h"
#include "task.h"

#include "dispatch_int.h"

#define DH_REQ_TIMEOUT	10.0	/* s per request (section 2) */
#define DH_POLL_SLACK	15.0	/* s beyond the long-poll's wait */
/* Bytes read of one answer: a runtime is tenant code (protocol section 2). */
#define DH_ANSWER_MAX	(4 * 1024 * 1024)

enum dh_phase { DH_IDLE, DH_POD, DH_PUT, DH_POLL, DH_PUBLISH,
	DH_DELETE, DH_DONE };

struct dh_pub;

/* A spawn read from the task's log (section 8 step 3). */
struct dh_spawn {
	char			*key;
	long			 seq;		/* 0: known from its child */
	char			 child[TASK_ID_MAX + 1];
	unsigned		 have;		/* HH_RB: the runtime's */
	unsigned		 sent;		/* HH_RB: queued by this side */
	int			 final;		/* ack may pass it */
	TAILQ_ENTRY(dh_spawn)	 link;
};

/*
 * A Reply waiting to go (h->outq).  waiter: the child whose Result it
 * carries, which DELETEs its task on its runtime only once this reply is
 * answered (section 8 step 4), so that a restart in between finds the
 * child's end again and tells the parent again; NULL: none, or gone.
 * publish: not a Reply but a rejected child's Result (body) for the
 * pool's results destination, queued before its rejected Reply, so that
 * the spawn is acknowledged only once both are done.
 */
struct dh_out {
	struct dh_spawn		*s;
	struct dhttp		*waiter;
	enum hh_reply		 type;
	int			 publish;
	char			*body;
	TAILQ_ENTRY(dh_out)	 link;
};

struct dhttp {
	struct dtask		*t;
	enum dh_phase		 phase;
	enum dh_phase		 next;		/* what the timer starts */
	enum dh_phase		 after_pod;	/* what follows DH_POD */
	struct httpc_req	*req;
	struct k8s_req		*kreq;		/* Sandbox GET */
	struct dh_pub		*pub;		/* results_send in flight */
	ev_timer		 timer;
	int			 freeing;
	double			 deadline;	/* mono: PUT, DELETE */
	unsigned		 tries;
	long			 after;
	long			 attempt;
	double			 started_at;	/* wall; 0: not known */
	int			 lost_wait;	/* 404 on a rebuilt task */
	char			 instance[65];	/* the runtime's, last seen */
	/*
	 * handoff.maxAttempts > 1: the message, kept from the hand-off for
	 * another attempt (a retryable failure, runtime.lost); again: the
	 * end in progress starts attempt + 1 instead of a Result.
	 */
	char			*body;
	size_t			 blen;
	int			 again;
	char			 pod_ip[64];
	int			 pod_refused;	/* outside --pod-cidrs */
	char			 token[HH_TOKEN_LEN + 1];
	char			 tp[56];
	/* The answer being worked through (spawn replies) and where. */
	struct hh_answer	 ans;
	size_t			 idx;
	/* The end: the Result, whether to DELETE, what to tell after. */
	char			*result;
	size_t			 result_len;
	int			 failed;
	int			 del;
	char			 reason[64];
	char			*detail;
	/* Sub-tasks: the spawns read, the Replies to send, one at a time. */
	TAILQ_HEAD(, dh_spawn)	 spawns;
	TAILQ_HEAD(, dh_out)	 outq;
	struct httpc_req	*rreq;
	struct dh_pub		*rpub;		/* outq's publish in flight */
	ev_timer		 rtimer;
	unsigned		 rtries;
	struct dh_out		*told;		/* its Result, in the parent's */
};

struct dh_pub {
	struct dhttp	*h;		/* NULL once the task is gone */
};

static void	 dh_step(struct dhttp *);
static void	 dh_retry(struct dhttp *, enum dh_phase, double delay);
static void	 dh_poll(struct dhttp *);
static void	 dh_events(struct dhttp *);
static void	 dh_publish(struct dhttp *);
static void	 dh_delete(struct dhttp *);
static void	 dh_finish(struct dhttp *);
static void	 dh_begin(struct dhttp *, enum dh_phase);
static void	 dh_reply_timer_cb(struct ev_loop *, ev_timer *, int);
static int	 dh_tell_parent(struct dhttp *);
static void	 dh_out_done(struct dh_out *);

int
dpool_http(const struct dpool *p)
{
	return (p != NULL && p->cfg->mode == POOL_MODE_DISPATCH &&
	    p->cfg->handoff.mode == HANDOFF_HTTP);
}

void
dpool_http_init(struct dpool *p)
{
	const struct pool_handoff_config *hc = &p->cfg->handoff;
	struct httpc_options o;
	struct scaler_source src;
	char		 err[256];

	if (!dpool_http(p))
		return;
	memset(&o, 0, sizeof o);
	o.base_url = hc->router;
	o.log_name = "handoff";
	o.ca_file = hc->tls_ca_file;
	/* One long-poll per running task: the limiter must not queue them. */
	o.qps = 10000;
	o.burst = 10000;
	o.timeout = DH_REQ_TIMEOUT;
	o.max_body = DH_ANSWER_MAX;
	o.max_retries = -1;		/* the steps retry themselves */
	if ((p->hc = httpc_new(p->d->loop, &o, err, sizeof err)) == NULL)
		log_error("dispatch", "%s: hand-off client: %s", p->id, err);
	if (!p->cfg->has_results)
		return;
	config_pool_results(p->cfg, &src);
	src.connect_timeout = 5;
	src.command_timeout = 10;
	if ((p->results = results_new(p->d->loop, &src, err,
	    sizeof err)) == NULL)
		log_error("dispatch", "%s: results destination: %s", p->id,
		    err);
}

void
dpool_http_fini(struct dpool *p)
{
	/* Pending requests and sends complete -AS_ECANCELED: retried later. */
	httpc_free(p->hc);
	p->hc = NULL;
	results_free(p->results);
	p->results = NULL;
}

void
dispatcher_http_key(struct dispatcher *d, const char *file)
{
	char	 err[256];
	size_t	 i;

	if (file != NULL) {
		d->hkey = as_read_secret(file, err, sizeof err);
		if (d->hkey != NULL && d->hkey[0] != '\0') {
			d->hkeylen = strlen(d->hkey);
			return;
		}
		log_error("dispatch", "--handoff-key-file: %s; using a random "
		    "key", d->hkey == NULL ? err : "the file is empty");
		as_secret_free(d->hkey, 0);
	}
	d->hkeylen = 32;
	d->hkey = xmalloc(d->hkeylen + 1);
	for (i = 0; i < d->hkeylen; i++)
		d->hkey[i] = (char)(1 + (int)(as_random() * 255));
	d->hkey[d->hkeylen] = '\0';
}

/* The task's record of its protocol state, made on first use. */
static struct dhttp *
dh_get(struct dtask *t)
{
	struct dhttp	*h = t->http;
	unsigned char	 rnd[24];
	size_t		 i;

	if (h != NULL)
		return (h);
	h = xcalloc(1, sizeof *h);
	h->t = t;
	h->attempt = 1;
	ev_init(&h->timer, NULL);
	h->timer.data = h;
	TAILQ_INIT(&h->spawns);
	TAILQ_INIT(&h->outq);
	ev_init(&h->rtimer, dh_reply_timer_cb);
	h->rtimer.data = h;
	/*
	 * With tracing on, the runtime's parent is this task's span (same
	 * trace as the message's traceparent); without, the message's own.
	 */
	if (dtask_trace_parent(t, h->tp) == 0)
		;
	else if (hh_traceparent_ok(t->traceparent))
		as_strlcpy(h->tp, t->traceparent, sizeof h->tp);
	else {
		for (i = 0; i < sizeof rnd; i++)
			rnd[i] = (unsigned char)(as_random() * 256);
		hh_traceparent_new(rnd, h->tp);
	}
	hh_token(t->ns->d->hkey, t->ns->d->hkeylen, t->ns->name, t->claim_uid,
	    t->id, h->token);
	t->http = h;
	return (h);
}

void
dhttp_free(struct dtask *t)
{
	struct dhttp	*h = t->http;
	struct dh_spawn	*s;
	struct dh_out	*o;

	if (h == NULL)
		return;
	h->freeing = 1;
	ev_timer_stop(t->ns->d->loop, &h->timer);
	ev_timer_stop(t->ns->d->loop, &h->rtimer);
	if (h->req != NULL)
		httpc_req_cancel(h->req);
	if (h->rreq != NULL)
		httpc_req_cancel(h->rreq);
	if (h->told != NULL)
		h->told->waiter = NULL;
	while ((o = TAILQ_FIRST(&h->outq)) != NULL) {
		TAILQ_REMOVE(&h->outq, o, link);
		dh_out_done(o);
	}
	while ((s = TAILQ_FIRST(&h->spawns)) != NULL) {
		TAILQ_REMOVE(&h->spawns, s, link);
		free(s->key);
		free(s);
	}
	if (h->kreq != NULL)
		t->ns->d->ops->cancel(h->kreq);
	if (h->pub != NULL)
		h->pub->h = NULL;	/* its completion frees it */
	if (h->rpub != NULL)
		h->rpub->h = NULL;
	hh_answer_free(&h->ans);
	explicit_bzero(h->token, sizeof h->token);
	free(h->body);
	free(h->result);
	free(h->detail);
	free(h);
	t->http = NULL;
}

/* Whether h's task has gone another way (released, freed, failed). */
static int
dh_moot(const struct dhttp *h)
{
	const struct dtask *t = h->t;

	return (h->freeing || t->doomed || t->st == T_RELEASING);
}

static void
dh_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dhttp	*h = w->data;

	(void)loop;
	(void)revents;
	if (dh_moot(h))
		return;
	h->phase = h->next;
	dh_step(h);
}

static void
dh_retry(struct dhttp *h, enum dh_phase phase, double delay)
{
	struct ev_loop	*loop = h->t->ns->d->loop;

	h->phase = DH_IDLE;
	h->next = phase;
	ev_timer_stop(loop, &h->timer);
	ev_set_cb(&h->timer, dh_timer_cb);
	ev_timer_set(&h->timer, delay, 0.);
	ev_timer_start(loop, &h->timer);
}

/* The next backoff of the step that failed, 0.2 s doubling to 5 s. */
static double
dh_backoff(struct dhttp *h)
{
	return (as_backoff(0.2, 5, h->tries++));
}

/* Headers of every request about the task (section 2). */
static void
dh_headers(const struct dhttp *h, char lines[6][320], const char *hdr[7])
{
	const struct dtask *t = h->t;
	const struct dpool *p = t->pool;
	size_t		 n = 0;

	snprintf(lines[n], sizeof lines[n], "traceparent: %s", h->tp);
	hdr[n] = lines[n];
	n++;
	/* Not Authorization: the sandbox-router deletes it (section 2). */
	snprintf(lines[n], sizeof lines[n], "X-Agentscaler-Token: %s",
	    h->token);
	hdr[n] = lines[n];
	n++;
	if (p->cfg->handoff.via == HANDOFF_VIA_ROUTER) {
		snprintf(lines[n], sizeof lines[n], "X-Sandbox-ID: %s",
		    t->sandbox);
		hdr[n] = lines[n];
		n++;
		snprintf(lines[n], sizeof lines[n], "X-Sandbox-Namespace: %s",
		    t->ns->name);
		hdr[n] = lines[n];
		n++;
		snprintf(lines[n], sizeof lines[n], "X-Sandbox-Port: %ld",
		    p->cfg->handoff.port);
		hdr[n] = lines[n];
		n++;
		if (h->pod_ip[0] != '\0') {
			snprintf(lines[n], sizeof lines[n],
			    "X-Sandbox-Pod-IP: %s", h->pod_ip);
			hdr[n] = lines[n];
			n++;
		}
	}
	hdr[n] = NULL;
}

/*
 * Sends one request about h's task: method, path suffix, body (or NULL),
 * attempt timeout; fn gets h.  Returns 0, or -1 when it cannot go now
 * (no pool or client; the caller retries).
 */
static int
dh_send_on(struct dhttp *h, struct httpc_req **slot, const char *method,
    const char *suffix, const char *body, double timeout, httpc_done_fn *fn)
{
	struct dtask	*t = h->t;
	struct dpool	*p = t->pool;
	struct httpc_req_options o;
	char		 lines[6][320], base[128], *path;
	const char	*hdr[7];

	if (p == NULL || p->hc == NULL || !dpool_http(p))
		return (-1);
	memset(&o, 0, sizeof o);
	dh_headers(h, lines, hdr);
	o.headers = hdr;
	o.timeout = timeout;
	o.no_retry = 1;
	o.content_type = "application/json";
	if (p->cfg->handoff.via == HANDOFF_VIA_POD_IP) {
		if (h->pod_ip[0] == '\0')
			return (-1);
		snprintf(base, sizeof base, strchr(h->pod_ip, ':') != NULL ?
		    "http://[%s]:%ld" : "http://%s:%ld", h->pod_ip,
		    p->cfg->handoff.port);
		o.base_url = base;
	}
	path = hh_path(t->id, suffix);
	*slot = httpc_request_ex(p->hc, method, path, &o, body, fn, h);
	free(path);
	explicit_bzero(lines[1], sizeof lines[1]);
	return (*slot != NULL ? 0 : -1);
}

/* dh_send_on() for the task's step in flight (h->req). */
static int
dh_send(struct dhttp *h, const char *method, const char *suffix,
    const char *body, double timeout, httpc_done_fn *fn)
{
	return (dh_send_on(h, &h->req, method, suffix, body, timeout, fn));
}

/*
 * Parses resp as the runtime's answer: 0 with a filled (to free) when it
 * is one, -1 when it is a transport failure (no answer, or not the
 * protocol's: the router's, a proxy's), with why in msg.
 */
static int
dh_answer(const struct httpc_response *r, struct hh_answer *a, char *msg,
    size_t msglen)
{
	char	 err[160];

	if (r->code == 0) {
		snprintf(msg, msglen, "%s", r->message);
		return (-1);
	}
	if (hh_answer_parse(r->body, r->body_len, a, err, sizeof err) != 0) {
		snprintf(msg, msglen, "HTTP %ld: %s", r->code, err);
		return (-1);
	}
	return (0);
}

/* Sandbox GET: the pod's IP. */

/*
 * Takes ip as the pod's when --pod-cidrs holds it (or none is set): it
 * comes from a status of the tenant's namespace, and an address outside
 * the pods' ranges is neither connected to nor named to the router.
 */
static void
dh_pod_take(struct dhttp *h, const char *ip)
{
	const struct dispatcher *d = h->t->ns->d;

	h->pod_ip[0] = '\0';
	if (ip == NULL || ip[0] == '\0' || strlen(ip) >= sizeof h->pod_ip)
		return;
	if (d->npod_cidrs > 0 && !pod_cidr_match(d->pod_cidrs, d->npod_cidrs,
	    ip)) {
		if (!h->pod_refused)
			log_kv(LOG_WARN, "dispatch", DTASK_LOG(h->t, NULL),
			    "%s/%s: task %s: pod IP %.64s is "
			    "outside --pod-cidrs: not used", h->t->ns->name,
			    h->t->sandbox, h->t->id, ip);
		h->pod_refused = 1;
		return;
	}
	as_strlcpy(h->pod_ip, ip, sizeof h->pod_ip);
}

static void
dh_pod_done(const struct k8s_response *r, void *arg)
{
	struct dhttp	*h = arg;
	const cJSON	*ips, *ip;
	cJSON		*obj;

	h->kreq = NULL;
	if (r->err == -AS_ECANCELED && h->freeing)
		return;
	if (dh_moot(h))
		return;
	obj = r->err == 0 ? cJSON_ParseWithLength(r->body, r->body_len) :
	    NULL;
	ips = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(obj, "status"), "podIPs");
	ip = cJSON_GetArrayItem(ips, 0);
	if (cJSON_IsString(ip))
		dh_pod_take(h, ip->valuestring);
	cJSON_Delete(obj);
	if (h->pod_ip[0] == '\0' && h->t->pool != NULL &&
	    h->t->pool->cfg->handoff.via == HANDOFF_VIA_POD_IP) {
		if (h->after_pod == DH_PUT && h->t->msg != NULL &&
		    !h->t->handed_off && as_mono_now() > h->deadline) {
			dtask_fail(h->t, "handoff.unreachable", h->pod_refused ?
			    "the sandbox's pod IP is outside --pod-cidrs" :
			    "the sandbox shows no pod IP");
			return;
		}
		dh_retry(h, DH_POD, dh_backoff(h));
		return;
	}
	h->phase = h->after_pod;
	dh_step(h);
}

static void
dh_pod(struct dhttp *h, enum dh_phase then)
{
	struct dtask	*t = h->t;
	char		 path[512];

	h->phase = DH_POD;
	h->after_pod = then;
	h->pod_ip[0] = '\0';
	/* The claim's status.sandbox.podIPs, kept fresh by its watch. */
	if (t->pod_ip[0] != '\0')
		dh_pod_take(h, t->pod_ip);
	if (h->pod_ip[0] != '\0') {
		h->phase = then;
		dh_step(h);
		return;
	}
	snprintf(path, sizeof path, K8S_SANDBOX_API "/namespaces/%s/"
	    "sandboxes/%s", t->ns->name, t->sandbox);
	h->kreq = t->ns->d->ops->request(t->ns->d->k8s, "GET", path, NULL,
	    NULL, dh_pod_done, h);
	if (h->kreq == NULL)
		dh_retry(h, DH_POD, dh_backoff(h));
}

/* PUT: the hand-off. */

static void
dh_accepted(struct dhttp *h)
{
	struct dtask	*t = h->t;
	struct dpool	*p = t->pool;

	t->handed_off = 1;
	t->attempts = 0;
	h->tries = 0;
	if (p != NULL && t->msg != NULL) {
		prom_hist_add(&p->handoff,
		    as_mono_now() - t->msg->received);
		p->handed_off++;
	}
	log_kv(LOG_DEBUG, "dispatch", DTASK_LOG(t, NULL),
	    "%s/%s: task %s accepted by the runtime of "
	    "sandbox %s", t->ns->name, t->claim, t->id, t->sandbox);
	/* Only now: the runtime holds the task (section 8 step 1). */
	dtask_set_state(t, T_ACKING);
	dtask_ack(t);
}

static void
dh_put_done(const struct httpc_response *r, void *arg)
{
	struct dhttp	*h = arg;
	struct dtask	*t = h->t;
	struct hh_answer a;
	char		 msg[320], detail[400];
	int		 ok;

	h->req = NULL;
	if (r->err == -AS_ECANCELED) {
		if (!dh_moot(h))
			dh_retry(h, DH_PUT, 0.2);
		return;
	}
	if (dh_moot(h))
		return;
	ok = dh_answer(r, &a, msg, sizeof msg) == 0;
	if (!ok || a.kind == HH_EVENT_LIST ||
	    a.kind == HH_REPLY_ACK || r->code >= 500) {
		if (ok) {
			/* The runtime's 5xx (stopping, say): try again. */
			snprintf(msg, sizeof msg, "HTTP %ld %s", r->code,
			    a.kind == HH_ERROR ? a.reason : "");
			hh_answer_free(&a);
		}
		if (as_mono_now() >= h->deadline) {
			snprintf(detail, sizeof detail, "no runtime accepted "
			    "the task within %ld s: %s", t->pool != NULL ?
			    t->pool->cfg->handoff.deadline_seconds : 0L, msg);
			dtask_fail(t, "handoff.unreachable", detail);
			return;
		}
		/* Once at info, so that an operator sees it; then debug. */
		if (h->tries == 0)
			log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, NULL),
			    "%s/%s: hand-off of task %s to "
			    "sandbox %s not accepted yet: %s; retrying until "
			    "the hand-off deadline", t->ns->name, t->claim,
			    t->id, t->sandbox, msg);
		else
			log_kv(LOG_DEBUG, "dispatch", DTASK_LOG(t, NULL),
			    "%s/%s: hand-off of task %s: "
			    "%s; retrying", t->ns->name, t->claim, t->id, msg);
		/* A restarted pod may have a new IP: read it again. */
		h->after_pod = DH_PUT;
		dh_retry(h, h->pod_ip[0] != '\0' ? DH_POD : DH_PUT,
		    dh_backoff(h));
		return;
	}
	if (a.kind == HH_TASK_STATUS && (r->code == 200 || r->code == 201)) {
		hh_answer_free(&a);
		dh_accepted(h);
		if (!dh_moot(h))
			dh_poll(h);
		return;
	}
	snprintf(detail, sizeof detail, "HTTP %ld %s: %s", r->code,
	    a.kind == HH_ERROR ? a.reason : "", a.kind == HH_ERROR ?
	    a.detail : "");
	if (r->code == 410) {
		/* Ran and acknowledged before (section 8 step 1): clean up. */
		hh_answer_free(&a);
		log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, NULL),
		    "%s/%s: task %s ended and was "
		    "acknowledged before; acking its message, releasing the "
		    "claim", t->ns->name, t->claim, t->id);
		t->handed_off = 1;
		dtask_set_state(t, T_ACKING);
		dtask_ack(t);
		dtask_release(t);
		return;
	}
	hh_answer_free(&a);
	dtask_fail(t, r->code == 409 ? "handoff.conflict" : "handoff.refused",
	    detail);
}

static void
dh_put(struct dhttp *h)
{
	struct dtask	*t = h->t;
	struct dpool	*p = t->pool;
	struct handoff_spec hs;
	const char	*msg = t->msg != NULL ? t->msg->body : h->body;
	size_t		 len = t->msg != NULL ? t->msg->len : h->blen;
	char		*body;

	if (msg == NULL || p == NULL) {
		dh_poll(h);	/* the message went: follow, or wait for it */
		return;
	}
	if (t->msg != NULL && h->body == NULL &&
	    p->cfg->handoff.max_attempts > 1) {
		h->body = xmalloc(len + 1);
		memcpy(h->body, msg, len);
		h->body[len] = '\0';
		h->blen = len;
	}
	dtask_handoff_spec(t, &hs);
	body = hh_task_body(&hs, msg, len, h->attempt, h->tp, h->token, NULL);
	h->phase = DH_PUT;
	t->handoff_sent = 1;
	if (dh_send(h, "PUT", "", body, DH_REQ_TIMEOUT, dh_put_done) != 0)
		dh_retry(h, DH_PUT, dh_backoff(h));
	as_secret_free(body, 0);	/* it holds the token */
}

/* POLL: the long-poll, and what its events do. */

/*
 * The pool's retry policy (handoff.maxAttempts): 1 when h's task may run
 * again, as attempt + 1 in the same sandbox, because this process still
 * holds its message (section 8, "Failures").
 */
static int
dh_may_retry(const struct dhttp *h)
{
	const struct dpool *p = h->t->pool;

	return (p != NULL && h->body != NULL &&
	    h->attempt < p->cfg->handoff.max_attempts);
}

/* Attempt h->attempt failed with reason; attempt + 1 follows its end. */
static void
dh_again(struct dhttp *h, const char *reason, const char *message)
{
	struct dtask	*t = h->t;
	char		 detail[320];

	log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, reason),
	    "%s/%s: task %s attempt %ld failed (%s: %s); "
	    "attempt %ld follows", t->ns->name, t->claim, t->id, h->attempt,
	    reason, message != NULL ? message : "", h->attempt + 1);
	snprintf(detail, sizeof detail, "attempt %ld: %s", h->attempt,
	    message != NULL ? message : "");
	as_utf8_trim(detail);
	dispatch_recent_add(t->ns->d, t->ns->name, t->id, reason, detail);
	h->again = 1;
}

/* Ends the task with a Result (section 8 step 4). */
static void
dh_end(struct dhttp *h, int failed, const cJSON *result, const char *reason,
    const char *message, int retryable, int del)
{
	struct dtask	*t = h->t;
	struct hh_result r;

	memset(&r, 0, sizeof r);
	r.id = t->id;
	r.failed = failed;
	r.result = result;
	r.reason = reason;
	r.message = message;
	r.retryable = retryable;
	r.ns = t->ns->name;
	r.pool = t->pool != NULL ? t->pool->cfg->name : t->pool_name;
	r.claim = t->claim;
	r.sandbox = t->sandbox[0] != '\0' ? t->sandbox : NULL;
	r.parent = t->parent;
	r.root = t->root;
	r.attempt = h->attempt;
	r.started_at = h->started_at;
	r.finished_at = as_wall_now();
	r.traceparent = h->tp;
	free(h->result);
	h->result = hh_result_body(&r, &h->result_len);
	h->failed = failed;
	h->del = del;
	as_strlcpy_utf8(h->reason, failed ? reason : "", sizeof h->reason);
	free(h->detail);
	h->detail = xstrdup(message != NULL ? message : "");
	h->tries = 0;
	dh_publish(h);
}

static void
dh_poll_done(const struct httpc_response *r, void *arg)
{
	struct dhttp	*h = arg;
	struct dtask	*t = h->t;
	struct dpool	*p = t->pool;
	char		 msg[320];

	h->req = NULL;
	if (r->err == -AS_ECANCELED) {
		if (!dh_moot(h))
			dh_retry(h, DH_POLL, 0.2);
		return;
	}
	if (dh_moot(h))
		return;
	hh_answer_free(&h->ans);
	if (dh_answer(r, &h->ans, msg, sizeof msg) != 0 ||
	    r->code >= 500 || (h->ans.kind != HH_EVENT_LIST &&
	    h->ans.kind != HH_ERROR)) {
		/* Router restarts, dropped connections: the same after. */
		hh_answer_free(&h->ans);
		log_kv(LOG_DEBUG, "dispatch", DTASK_LOG(t, NULL),
		    "%s/%s: events of task %s: %s; retrying",
		    t->ns->name, t->claim, t->id, msg);
		/* The pod may be a new one, at a new IP. */
		h->after_pod = DH_POLL;
		dh_retry(h, h->pod_ip[0] != '\0' ? DH_POD : DH_POLL,
		    dh_backoff(h));
		return;
	}
	h->tries = 0;
	if (h->ans.kind == HH_EVENT_LIST && h->instance[0] != '\0' &&
	    strncmp(h->instance, h->ans.instance,
	    sizeof h->instance - 1) != 0 && h->after > 0) {
		/* Another runtime process holds it: read its log from 0. */
		as_strlcpy(h->instance, h->ans.instance, sizeof h->instance);
		hh_answer_free(&h->ans);
		h->after = 0;
		dh_poll(h);
		return;
	}
	if (h->ans.kind == HH_EVENT_LIST)
		as_strlcpy(h->instance, h->ans.instance, sizeof h->instance);
	if (h->ans.kind == HH_EVENT_LIST) {
		if (!t->handed_off) {
			/* Rebuilt, and the runtime holds it: ack what came. */
			dh_accepted(h);
			if (dh_moot(h))
				return;
		}
		h->idx = 0;
		dh_events(h);
		return;
	}
	snprintf(msg, sizeof msg, "%s: %s", h->ans.reason, h->ans.detail);
	if (r->code == 410) {
		hh_answer_free(&h->ans);
		log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, NULL),
		    "%s/%s: task %s was acknowledged on the "
		    "runtime already; releasing", t->ns->name, t->claim, t->id);
		dtask_release(t);
		return;
	}
	hh_answer_free(&h->ans);
	if (r->code == 404 && !t->handed_off && t->msg != NULL) {
		/* Never handed off (a restart between Ready and PUT). */
		h->deadline = as_mono_now() + (double)(p != NULL ?
		    p->cfg->handoff.deadline_seconds : 120);
		dh_put(h);
		return;
	}
	if (r->code == 404 && !t->handed_off && p != NULL &&
	    (p->up_since == 0 ||
	    as_mono_now() - p->up_since < DISPATCH_ACK_HOLD)) {
		/*
		 * Known from its claim only: its message, if it was never
		 * acked, comes back once the consumer is up, and is then
		 * handed off.  Until then 404 says nothing.
		 */
		h->lost_wait = 1;
		dh_retry(h, DH_POLL, 1.0);
		return;
	}
	if (r->code == 404 && dh_may_retry(h)) {
		dh_again(h, "runtime.lost", msg);
		h->del = 0;
		dh_finish(h);
		return;
	}
	if (r->code == 404) {
		dh_end(h, 1, NULL, "runtime.lost", msg, 0, 0);
		return;
	}
	/* 401, 400: this side's token or request is not the runtime's. */
	dh_end(h, 1, NULL, r->code == 401 ? "handoff.unauthorized" :
	    "handoff.refused", msg, 0, 0);
}

/*
 * 1 when the child of spawn s is live here but no runtime has accepted it
 * yet: only the parent's log holds its message (the claim does not), so
 * a restart must find that spawn again (section 8 step 3).
 */
static int
dh_child_pending(const struct dhttp *h, const struct dh_spawn *s)
{
	const struct dtask *c = dns_find(h->t->ns, s->child);

	return (c != NULL && !c->handed_off && c->parent != NULL &&
	    strcmp(c->parent, h->t->id) == 0);
}

/*
 * The ack of the next long-poll: after, or below the first spawn whose
 * verdict is not final yet (a deferred child's spawn stays in the log, so
 * that a restarted agentscaler reads it again), or whose admitted child
 * was not handed off yet and has not ended.
 */
static long
dh_ack(const struct dhttp *h)
{
	const struct dh_spawn *s;
	long		 ack = h->after;

	TAILQ_FOREACH(s, &h->spawns, link)
		if (s->seq > 0 && s->seq - 1 < ack &&
		    (!s->final || dh_child_pending(h, s)))
			ack = s->seq - 1;
	return (ack);
}

static void
dh_poll(struct dhttp *h)
{
	char	 suffix[96];

	h->phase = DH_POLL;
	snprintf(suffix, sizeof suffix, "/events?after=%ld&ack=%ld&wait=%d",
	    h->after, dh_ack(h), HH_WAIT);
	if (dh_send(h, "GET", suffix, NULL, HH_WAIT + DH_POLL_SLACK,
	    dh_poll_done) != 0)
		dh_retry(h, DH_POLL, dh_backoff(h));
}

/* SPAWN: sub-tasks through the protocol (section 8 step 3). */

static struct dh_spawn *
dh_spawn_find(const struct dhttp *h, const char *key)
{
	struct dh_spawn	*s;

	TAILQ_FOREACH(s, &h->spawns, link)
		if (strcmp(s->key, key) == 0)
			return (s);
	return (NULL);
}

static struct dh_spawn *
dh_spawn_add(struct dhttp *h, const char *key, long seq, unsigned have)
{
	struct dh_spawn	*s;

	s = xcalloc(1, sizeof *s);
	s->key = xstrdup(key);
	s->seq = seq;
	s->have = have;
	hh_child_id(h->t->id, key, s->child);
	TAILQ_INSERT_TAIL(&h->spawns, s, link);
	return (s);
}

static void	 dh_reply_kick(struct dhttp *);

static void
dh_reply_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dhttp	*h = w->data;

	(void)loop;
	(void)revents;
	dh_reply_kick(h);
}

static void
dh_reply_later(struct dhttp *h, double delay)
{
	struct ev_loop	*loop = h->t->ns->d->loop;

	ev_timer_stop(loop, &h->rtimer);
	ev_timer_set(&h->rtimer, delay, 0.);
	ev_timer_start(loop, &h->rtimer);
}

static void
dh_reply_done(const struct httpc_response *r, void *arg)
{
	struct dhttp	*h = arg;
	struct dh_out	*o;
	struct hh_answer a;
	char		 msg[320];
	int		 theirs;

	h->rreq = NULL;
	if (h->freeing)
		return;
	if (r->err == -AS_ECANCELED) {
		dh_reply_later(h, 0.2);
		return;
	}
	theirs = dh_answer(r, &a, msg, sizeof msg) == 0;
	if (theirs)
		hh_answer_free(&a);
	if (!theirs || r->code >= 500) {
		/* Replies are idempotent by (key, type): send it again. */
		log_kv(LOG_DEBUG, "dispatch", DTASK_LOG(h->t, NULL),
		    "%s/%s: reply to task %s: %s; retrying",
		    h->t->ns->name, h->t->claim, h->t->id, theirs ?
		    "HTTP 5xx" : msg);
		dh_reply_later(h, as_backoff(0.2, 5, h->rtries++));
		return;
	}
	/*
	 * 200 (taken, or a duplicate); 404/410 (the parent no longer waits:
	 * a child's result is on the results destination anyway); 400, 401:
	 * not this reply's to mend by sending it again.
	 */
	h->rtries = 0;
	if ((o = TAILQ_FIRST(&h->outq)) != NULL) {
		TAILQ_REMOVE(&h->outq, o, link);
		if (r->code != 200)
			log_kv(LOG_INFO, "dispatch", DTASK_LOG(h->t, NULL),
			    "%s/%s: task %s: reply %s for "
			    "child %s dropped: HTTP %ld", h->t->ns->name,
			    h->t->claim, h->t->id, hh_reply_name(o->type),
			    o->s->child, r->code);
		if (o->type == HH_R_ADMITTED || o->type == HH_R_REJECTED) {
			o->s->have |= HH_RB(o->type);
			o->s->final = 1;	/* ack may pass it now */
		}
		dh_out_done(o);
	}
	dh_reply_kick(h);
}

static void
dh_rpub_done(int err, const char *errmsg, void *arg)
{
	struct dh_pub	*op = arg;
	struct dhttp	*h = op->h;
	struct dh_out	*o;

	free(op);
	if (h == NULL)
		return;		/* the parent is gone */
	h->rpub = NULL;
	if (err != 0) {
		log_warn("dispatch", "%s/%s: cannot publish the result of "
		    "rejected child %s (%s); retrying", h->t->ns->name,
		    h->t->claim, TAILQ_FIRST(&h->outq)->s->child, errmsg);
		dh_reply_later(h, err == -AS_ECANCELED ? 0.2 :
		    as_backoff(0.2, 5, h->rtries++));
		return;
	}
	h->rtries = 0;
	o = TAILQ_FIRST(&h->outq);
	TAILQ_REMOVE(&h->outq, o, link);
	dh_out_done(o);
	dh_reply_kick(h);
}

/* Publishes o, the Result of a rejected child (its pool's destination). */
static void
dh_reply_publish(struct dhttp *h, struct dh_out *o)
{
	struct dpool	*p = h->t->pool;
	struct dh_pub	*op;

	if (p == NULL || p->results == NULL) {
		dh_reply_later(h, as_backoff(0.2, 5, h->rtries++));
		return;
	}
	op = xcalloc(1, sizeof *op);
	op->h = h;
	h->rpub = op;
	if (results_send(p->results, o->s->child, o->body, strlen(o->body),
	    dh_rpub_done, op) != 0) {
		h->rpub = NULL;
		free(op);
		dh_reply_later(h, as_backoff(0.2, 5, h->rtries++));
	}
}

/* Sends the first Reply waiting, unless one is in flight or waits. */
static void
dh_reply_kick(struct dhttp *h)
{
	struct dh_out	*o = TAILQ_FIRST(&h->outq);

	if (o == NULL || h->rreq != NULL || h->rpub != NULL || h->freeing ||
	    ev_is_active(&h->rtimer))
		return;
	if (o->publish) {
		dh_reply_publish(h, o);
		return;
	}
	if (dh_send_on(h, &h->rreq, "POST", "/replies", o->body,
	    DH_REQ_TIMEOUT, dh_reply_done) != 0)
		dh_reply_later(h, as_backoff(0.2, 5, h->rtries++));
}

/*
 * Queues the Reply type for spawn s, unless it would move the key's
 * verdict backwards or repeat one (hh_reply_may_follow, over what the
 * runtime has and what was queued).  result: the child's Result, or NULL.
 */
static struct dh_out *
dh_queue(struct dhttp *h, struct dh_spawn *s, enum hh_reply type,
    const char *reason, const char *detail, const char *result)
{
	struct dh_out	*o;

	if (!hh_reply_may_follow(s->sent | s->have, type))
		return (NULL);
	s->sent |= HH_RB(type);
	o = xcalloc(1, sizeof *o);
	o->s = s;
	o->type = type;
	o->body = hh_reply_body(s->key, type, s->child, reason, detail,
	    result);
	TAILQ_INSERT_TAIL(&h->outq, o, link);
	log_kv(LOG_INFO, "dispatch", DTASK_LOG(h->t, NULL),
	    "%s/%s: task %s: child %s %s%s%s", h->t->ns->name,
	    h->t->claim, h->t->id, s->child, hh_reply_name(type),
	    reason != NULL ? ": " : "", reason != NULL ? reason : "");
	dh_reply_kick(h);
	return (o);
}

/*
 * The failed Result of h's child s, which no runtime took: no sandbox,
 * never started.  tp: the child's traceparent, or NULL for h's.
 */
static char *
dh_child_result(const struct dhttp *h, const struct dh_spawn *s,
    const char *reason, const char *detail, const char *tp)
{
	const struct dtask *t = h->t;
	struct hh_result r;

	memset(&r, 0, sizeof r);
	r.id = s->child;
	r.failed = 1;
	r.reason = reason;
	r.message = detail != NULL ? detail : "";
	r.ns = t->ns->name;
	r.pool = t->pool != NULL ? t->pool->cfg->name : t->pool_name;
	r.parent = t->id;
	r.root = t->root != NULL ? t->root : t->id;
	r.finished_at = as_wall_now();
	r.traceparent = tp != NULL && tp[0] != '\0' ? tp : h->tp;
	return (hh_result_body(&r, NULL));
}

/*
 * Child s of h's task rejected: its failed Result goes to the pool's
 * results destination (a producer waiting on the child's id learns it
 * too), then the rejected Reply to the parent's runtime.
 */
static void
dh_reject(struct dhttp *h, struct dh_spawn *s, const char *reason,
    const char *detail, const char *tp)
{
	const struct dpool *p = h->t->pool;
	struct dh_out	*o;

	if (!hh_reply_may_follow(s->sent | s->have, HH_R_REJECTED))
		return;
	if (p != NULL && p->cfg->has_results) {
		o = xcalloc(1, sizeof *o);
		o->s = s;
		o->publish = 1;
		o->body = dh_child_result(h, s, reason, detail, tp);
		TAILQ_INSERT_TAIL(&h->outq, o, link);
	}
	dh_queue(h, s, HH_R_REJECTED, reason, detail, NULL);
}

/*
 * A Reply answered (or dropped with its parent): freed, and the child
 * waiting on it goes on to its DELETE (on its own timer: never inside
 * another task's completion or free).
 */
static void
dh_out_done(struct dh_out *o)
{
	struct dhttp	*w = o->waiter;

	if (w != NULL) {
		w->told = NULL;
		w->deadline = as_mono_now() + (double)(w->t->pool != NULL ?
		    w->t->pool->cfg->handoff.deadline_seconds : 120);
		dh_retry(w, DH_DELETE, 0.);
	}
	free(o->body);
	free(o);
}

/*
 * A spawn event of h's task: the child is made and admitted, or found
 * (a replay: the answer was lost, or agentscaler restarted and rebuilt
 * the child from its claim), or refused.
 */
static void
dh_spawn(struct dhttp *h, const struct hh_event *ev)
{
	struct dtask	*t = h->t, *c;
	struct dpool	*p = t->pool;
	struct dh_spawn	*s;
	struct task	*tk = NULL;
	struct task_error te;
	char		*body = NULL, detail[640];
	size_t		 len;

	if (dh_spawn_find(h, ev->key) != NULL)
		return;		/* read before: its answer was repeated */
	s = dh_spawn_add(h, ev->key, ev->seq, ev->replies);
	c = dns_find(t->ns, s->child);
	if (c != NULL && (c->parent == NULL || strcmp(c->parent,
	    t->id) != 0)) {
		snprintf(detail, sizeof detail, "task %s is live in "
		    "namespace %s and is not a child of %s", s->child,
		    t->ns->name, t->id);
		dh_queue(h, s, HH_R_REJECTED, "spawn.idInUse", detail, NULL);
		return;
	}
	if (c != NULL) {
		/* Its claim exists, or is being made: no second one. */
		if (c->spawn_key == NULL)
			c->spawn_key = xstrdup(ev->key);
		if (ev->replies & HH_RB_FINAL)
			s->final = 1;	/* the runtime has its verdict */
		if (c->msg == NULL && !c->handed_off && !c->doomed &&
		    c->st != T_RELEASING && p != NULL) {
			/*
			 * Rebuilt from its claim, never handed off: its
			 * message is rebuilt from the spawn, which the ack
			 * held for it, and it is handed off once its sandbox
			 * is Ready (or at its next 404, if it is).
			 */
			body = hh_child_message(t->id, ev->key, ev->task,
			    h->tp, &len);
			c->msg = consumer_msg_new(body, len, 0);
			free(body);
			log_kv(LOG_INFO, "dispatch", DTASK_LOG(c, NULL),
			    "%s/%s: child task %s rebuilt "
			    "from the spawn in the log of task %s; handing it "
			    "off", c->ns->name, c->claim, c->id, t->id);
		}
		if (c->st == T_DEFERRED)
			dh_queue(h, s, HH_R_DEFERRED, quota_reason_name(
			    c->why), c->why_detail, NULL);
		else if (c->claim_exists || c->handed_off)
			dh_queue(h, s, HH_R_ADMITTED, NULL, NULL, NULL);
		else if (c->st == T_RELEASING || c->doomed)
			s->final = 1;	/* ending: its result tells */
		return;			/* claiming: post_done tells */
	}
	if (ev->replies & HH_RB_FINAL) {
		/* Decided before (its claim gone since): never again. */
		s->final = 1;
		return;
	}
	if (p == NULL) {
		dh_queue(h, s, HH_R_REJECTED, "spawn.invalid", "the parent's "
		    "pool is gone", NULL);	/* and its destination */
		return;
	}
	body = hh_child_message(t->id, ev->key, ev->task, h->tp, &len);
	tk = xmalloc(sizeof *tk);
	if (task_parse(body, len, (size_t)p->cfg->max_task_bytes, tk,
	    &te) != 0) {
		snprintf(detail, sizeof detail, "%s: %s", te.reason,
		    te.detail);
		dh_reject(h, s, "spawn.invalid", detail, NULL);
		goto out;
	}
	if (tk->deadline > 0 && tk->deadline < as_wall_now()) {
		dh_reject(h, s, "task.deadlineExceeded", "the child's "
		    "deadline passed before it was dispatched",
		    tk->traceparent);
		goto out;
	}
	c = dtask_new(t->ns, p, tk->id, t->id, t->root, t->depth + 1);
	c->spawn_key = xstrdup(ev->key);
	c->msg = consumer_msg_new(body, len, 0);
	as_strlcpy(c->traceparent, tk->traceparent, sizeof c->traceparent);
	if (tk->nresources > 0) {
		c->res = xcalloc(tk->nresources, sizeof *c->res);
		memcpy(c->res, tk->resources, tk->nresources * sizeof *c->res);
		c->nres = tk->nresources;
	}
	c->ready_by = as_mono_now() + (double)p->cfg->ready_timeout_seconds;
	p->received++;
	/* The admission of a producer's child whose parent is live. */
	if (dtask_admit(c))
		dtask_go(c);
out:
	free(tk);
	free(body);
}

/*
 * The parent's protocol state and spawn record of child c, or NULL when
 * c was not spawned through the protocol or its parent no longer follows
 * (gone, ending).  make: a record is made for a child known from its
 * claim only (rebuilt) whose spawn was acknowledged before the restart.
 */
static struct dhttp *
dh_parent(const struct dtask *c, struct dh_spawn **sp, int make)
{
	struct dtask	*pt;
	struct dhttp	*ph;
	const char	*key = c->spawn_key;
	char		 id[TASK_ID_MAX + 1];
	size_t		 n;

	if (c->parent == NULL || (pt = dns_find(c->ns, c->parent)) == NULL ||
	    (ph = pt->http) == NULL || dh_moot(ph) || pt->sandbox[0] == '\0')
		return (NULL);
	n = strlen(c->parent);
	if (key == NULL && strncmp(c->id, c->parent, n) == 0 &&
	    c->id[n] == '/')
		key = c->id + n + 1;
	if (key == NULL)
		return (NULL);
	hh_child_id(c->parent, key, id);
	if (strcmp(id, c->id) != 0)
		return (NULL);
	if ((*sp = dh_spawn_find(ph, key)) == NULL) {
		if (!make)
			return (NULL);
		*sp = dh_spawn_add(ph, key, 0, 0);
		(*sp)->final = 1;
	}
	return (ph);
}

void
dhttp_child_deferred(struct dtask *c, const char *reason, const char *detail)
{
	struct dh_spawn	*s;
	struct dhttp	*ph;

	if (c->spawn_key != NULL && (ph = dh_parent(c, &s, 0)) != NULL)
		dh_queue(ph, s, HH_R_DEFERRED, reason, detail, NULL);
}

void
dhttp_child_admitted(struct dtask *c)
{
	struct dh_spawn	*s;
	struct dhttp	*ph;

	if (c->spawn_key != NULL && (ph = dh_parent(c, &s, 0)) != NULL)
		dh_queue(ph, s, HH_R_ADMITTED, NULL, NULL, NULL);
}

void
dhttp_child_failed(struct dtask *c, const char *reason, const char *detail)
{
	struct dh_spawn	*s;
	struct dhttp	*ph;
	char		*res;

	if (c->spawn_key == NULL || (ph = dh_parent(c, &s, 0)) == NULL)
		return;
	if (!((s->sent | s->have) & HH_RB(HH_R_ADMITTED))) {
		dh_reject(ph, s, reason, detail, c->traceparent);
		return;
	}
	/* Admitted, then failed before a runtime took it: its Result. */
	res = dh_child_result(ph, s, reason, detail, c->traceparent);
	dh_queue(ph, s, HH_R_RESULT, NULL, NULL, res);
	free(res);
}

/*
 * h's task ended, its Result published: its parent's runtime is told.
 * Returns 1 when h waits for that reply before its DELETE (dh_out_done).
 */
static int
dh_tell_parent(struct dhttp *h)
{
	struct dh_spawn	*s;
	struct dhttp	*ph;
	struct dh_out	*o;

	if (h->again || h->told != NULL ||
	    (ph = dh_parent(h->t, &s, 1)) == NULL)
		return (0);
	if ((o = dh_queue(ph, s, HH_R_RESULT, NULL, NULL, h->result)) == NULL)
		return (0);
	o->waiter = h;
	h->told = o;
	h->phase = DH_PUBLISH;		/* its end is under way */
	return (1);
}

/* Works through h->ans from h->idx; after passes each event once done. */
static void
dh_events(struct dhttp *h)
{
	const struct hh_event *ev;
	double		 at;

	for (; h->idx < h->ans.nevents; h->idx++) {
		ev = &h->ans.events[h->idx];
		switch (ev->type) {
		case HH_EV_STARTED:
			if (h->started_at == 0)
				h->started_at = as_parse_rfc3339(ev->time,
				    &at) == 0 ? at : as_wall_now();
			break;
		case HH_EV_PROGRESS:
			break;
		case HH_EV_SPAWN:
			dh_spawn(h, ev);
			if (dh_moot(h))
				return;
			break;
		case HH_EV_FAILED:
			if (ev->retryable && dh_may_retry(h)) {
				/* Acknowledged, then attempt + 1. */
				dh_again(h, ev->reason, ev->message);
				hh_answer_free(&h->ans);
				h->del = 1;
				h->tries = 0;
				dh_delete(h);
				return;
			}
			/* FALLTHROUGH */
		case HH_EV_COMPLETED:
			dh_end(h, ev->type == HH_EV_FAILED, ev->result,
			    ev->reason, ev->message, ev->retryable, 1);
			hh_answer_free(&h->ans);
			return;
		}
		h->after = ev->seq;
	}
	/* more or not, the next long-poll answers at once when there is. */
	hh_answer_free(&h->ans);
	dh_poll(h);
}

/* PUBLISH: the Result, at least once. */

static void
dh_pub_done(int err, const char *errmsg, void *arg)
{
	struct dh_pub	*op = arg;
	struct dhttp	*h = op->h;

	free(op);
	if (h == NULL)
		return;		/* the task is gone */
	h->pub = NULL;
	if (dh_moot(h))
		return;
	if (err != 0) {
		log_warn("dispatch", "%s/%s: cannot publish the result of task "
		    "%s (%s); retrying", h->t->ns->name, h->t->claim, h->t->id,
		    errmsg);
		dh_retry(h, DH_PUBLISH, err == -AS_ECANCELED ? 0.2 :
		    dh_backoff(h));
		return;
	}
	h->tries = 0;
	if (!dh_tell_parent(h))
		dh_delete(h);
}

static void
dh_publish(struct dhttp *h)
{
	struct dtask	*t = h->t;
	struct dpool	*p = t->pool;
	struct dh_pub	*op;

	h->phase = DH_PUBLISH;
	if (p != NULL && !p->cfg->has_results) {
		log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, NULL),
		    "%s/%s: task %s %s (pool %s has no "
		    "results destination): %s", t->ns->name, t->claim, t->id,
		    h->failed ? "failed" : "completed", p->id, h->result);
		if (!dh_tell_parent(h))
			dh_delete(h);
		return;
	}
	if (p == NULL || p->results == NULL) {
		dh_retry(h, DH_PUBLISH, dh_backoff(h));
		return;
	}
	op = xcalloc(1, sizeof *op);
	op->h = h;
	h->pub = op;
	if (results_send(p->results, t->id, h->result, h->result_len,
	    dh_pub_done, op) != 0) {
		h->pub = NULL;
		free(op);
		dh_retry(h, DH_PUBLISH, dh_backoff(h));
	}
}

/* DELETE, then the release every task ends with. */

static void
dh_finish(struct dhttp *h)
{
	struct dtask	*t = h->t;

	if (h->again) {
		h->again = 0;
		h->attempt++;
		h->after = 0;
		h->started_at = 0;
		h->instance[0] = '\0';
		h->tries = 0;
		h->deadline = as_mono_now() + (double)(t->pool != NULL ?
		    t->pool->cfg->handoff.deadline_seconds : 120);
		h->phase = DH_IDLE;
		dh_begin(h, DH_PUT);
		return;
	}
	h->phase = DH_DONE;
	if (h->failed) {
		dtask_sandbox_failed(t, h->reason, h->detail);
		return;
	}
	log_kv(LOG_INFO, "dispatch", DTASK_LOG(t, NULL),
	    "%s/%s: task %s completed; result published",
	    t->ns->name, t->claim, t->id);
	dtask_release(t);
}

static void
dh_delete_done(const struct httpc_response *r, void *arg)
{
	struct dhttp	*h = arg;
	struct hh_answer a;
	char		 msg[320];
	int		 theirs;

	h->req = NULL;
	if (r->err == -AS_ECANCELED) {
		if (!dh_moot(h))
			dh_retry(h, DH_DELETE, 0.2);
		return;
	}
	if (dh_moot(h))
		return;
	theirs = dh_answer(r, &a, msg, sizeof msg) == 0;
	if (theirs)
		hh_answer_free(&a);
	/*
	 * 204, or the runtime's 404/410/409 (forgotten, acknowledged,
	 * running: nothing this side can do more); a transport failure
	 * until the deadline (a runtime that exits once acknowledged is gone
	 * when a repeated DELETE comes).
	 */
	if (r->code == 204 || (theirs && r->code >= 400 && r->code < 500) ||
	    as_mono_now() >= h->deadline) {
		dh_finish(h);
		return;
	}
	dh_retry(h, DH_DELETE, dh_backoff(h));
}

static void
dh_delete(struct dhttp *h)
{
	struct dtask	*t = h->t;

	if (!h->del) {
		dh_finish(h);
		return;
	}
	if (h->phase != DH_DELETE)
		h->deadline = as_mono_now() + (double)(t->pool != NULL ?
		    t->pool->cfg->handoff.deadline_seconds : 120);
	h->phase = DH_DELETE;
	if (dh_send(h, "DELETE", "", NULL, DH_REQ_TIMEOUT,
	    dh_delete_done) != 0) {
		if (as_mono_now() >= h->deadline)
			dh_finish(h);
		else
			dh_retry(h, DH_DELETE, dh_backoff(h));
	}
}

static void
dh_step(struct dhttp *h)
{
	switch (h->phase) {
	case DH_POD:
		dh_pod(h, h->after_pod);
		break;
	case DH_PUT:
		dh_put(h);
		break;
	case DH_POLL:
		dh_poll(h);
		break;
	case DH_PUBLISH:
		dh_publish(h);
		break;
	case DH_DELETE:
		dh_delete(h);
		break;
	default:
		break;
	}
}

/* Starts at the pod's IP when the pool needs it, else at phase. */
static void
dh_begin(struct dhttp *h, enum dh_phase phase)
{
	const struct dpool *p = h->t->pool;

	ev_timer_stop(h->t->ns->d->loop, &h->timer);
	/* Via the router too: X-Sandbox-Pod-IP spares it a DNS lookup. */
	if (p != NULL && (p->cfg->handoff.via == HANDOFF_VIA_POD_IP ||
	    h->t->pod_ip[0] != '\0') && h->pod_ip[0] == '\0') {
		dh_pod(h, phase);
		return;
	}
	h->phase = phase;
	dh_step(h);
}

void
dhttp_handoff(struct dtask *t)
{
	struct dhttp	*h = dh_get(t);

	if (h->req != NULL || h->kreq != NULL || h->pub != NULL)
		return;		/* under way; a joined message is acked by it */
	if (h->phase >= DH_PUBLISH)
		return;
	dtask_set_state(t, T_HANDOFF);
	t->retry_at = 0;
	h->tries = 0;
	h->deadline = as_mono_now() + (double)t->pool->cfg->handoff.
	    deadline_seconds;
	dh_begin(h, DH_PUT);
}

void
dhttp_resume(struct dtask *t)
{
	struct dhttp	*h = dh_get(t);

	dtask_set_state(t, T_RUNNING);
	if (h->req != NULL || h->kreq != NULL || h->pub != NULL ||
	    h->phase != DH_IDLE)
		return;
	h->after = 0;
	dh_begin(h, DH_POLL);
}

int
dhttp_ended(struct dtask *t, int succeeded, const char *reason,
    const char *detail)
{
	struct dhttp	*h = t->http;

	if (h == NULL || !t->handed_off)
		return (0);
	if (h->phase >= DH_PUBLISH || h->pub != NULL)
		return (1);	/* its end is under way; the release follows */
	ev_timer_stop(t->ns->d->loop, &h->timer);
	if (h->req != NULL) {
		h->freeing = 1;	/* this cancel is not a retry */
		httpc_req_cancel(h->req);
		h->freeing = 0;
	}
	hh_answer_free(&h->ans);
	/* The fallback of issue 16: PodSucceeded without a terminal event. */
	if (succeeded)
		dh_end(h, 0, NULL, NULL, NULL, 0, 0);
	else
		dh_end(h, 1, NULL, reason, detail, 0, 0);
	return (1);
}
