/*
 * simulate.c: the engine of simulate.h.  One run is one policy over one
 * trace: an event queue in virtual time (sim_queue.h), tasks and sandboxes
 * in arrays, and the policy's decisions taken by the daemon's own pure
 * functions.  The glue that the daemon keeps in dispatch_warm.c (the spare
 * target bounded by the quota's head-room) is the same calls in the same
 * order here: warmpool_target_policy(), then quota_spare_target().
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "config.h"
#include "quota.h"
#include "sim_keda.h"
#include "sim_queue.h"
#include "simulate.h"

enum { E_ARRIVE, E_CLAIM, E_START, E_DONE, E_READY, E_GONE, E_RECONCILE,
	E_TICK, E_POLL, E_HPA, E_SAMPLE };

enum tst { T_FUTURE, T_WAIT, T_DEFER, T_CLAIMING, T_RUN, T_DONE,
	T_REJECTED };

struct stask {
	enum tst st;
	double	 arrive, start;
	long	 sbox;
	long	 first_child, next_sibling, root;
	long	 subtree;	/* tasks in its tree from it down */
	int	 spawned;
	int	 warm;
};

struct sbox {
	double	 created, ready;
	long	 task;		/* -1: none */
	int	 is_ready;
	int	 pooled;	/* a warm-pool member, or a deployment pod */
	int	 cold;		/* made for its task: Ready is the bind */
	int	 gone;		/* terminating or gone */
	int	 drain;		/* pod: end after the task */
};

struct sim {
	const struct sim_trace	 *tr;
	const struct sim_cluster *cl;
	const struct sim_policy	 *pol;
	int			  deploy;
	struct sim_queue	  q;
	struct sim_rng		  rng;
	struct stask		 *t;
	struct sbox		 *b;
	size_t			  nb, capb;
	long			 *fifo;		/* deployment queue / deferred */
	size_t			  fhead, ftail;
	double			  now, last;
	long			  live, busy, spec;
	long			  nwait, nclaiming, nrun, nspawners;
	size_t			  remaining;
	int			  reconcile_due;
	struct quota_ns		 *quota;
	struct warmpool_params	  wp;
	struct warmpool_state	  ws;
	struct autoscale_params	  ap;
	struct autoscale_state	  as;
	struct keda_params	  kp;
	struct keda_state	  ks;
	struct as_bucket	  writes;
	double			  poll;		/* scale mode: s */
	double			 *waits;
	double			  second_wait;
	struct sim_result	 *r;
};

void
sim_cluster_defaults(struct sim_cluster *c)
{
	/*
	 * Cold start: agent-sandbox's own measurement, "pod start (cached
	 * image): ~2.5-3.5s" (upstream extensions/controllers/
	 * sandboxwarmpool_controller.go, the MaxRefillRate comment): median
	 * 3 s, sigma 0.25 puts the middle 80 % in 2.2-4.1 s.  Warm bind:
	 * the adoption PATCH and the watch event of Ready, two round-trips
	 * of a real API server (kube-sim binds in 3.5 ms p50, README's
	 * dispatch figures; a real cluster is slower): 0.2 s, an assumption
	 * the live replay must check.  Write round-trip 50 ms: the same
	 * upstream comment's "~50ms mean queue wait" under APF.  The daemon's
	 * writes: --kube-qps 20, --kube-burst 30 (options.c defaults).
	 * Grace: an agent that exits on SIGTERM at once (1 s); Kubernetes'
	 * default terminationGracePeriodSeconds (30) is the upper bound.
	 * ReplenishDelay: upstream's default 0.  Tick: pollIntervalMs 1000.
	 */
	c->cold_median = 3;
	c->cold_sigma = 0.25;
	c->warm_bind = 0.2;
	c->grace = 1;
	c->write_rtt = 0.05;
	c->qps = 20;
	c->burst = 30;
	c->replenish_delay = 0;
	c->tick = 1;
	c->seed = 1;
}

int
sim_policy_parse(const char *s, struct sim_policy *p)
{
	char	*end;
	long	 n;

	memset(p, 0, sizeof *p);
	as_strlcpy(p->name, s, sizeof p->name);
	if (strcmp(s, "predictive") == 0)
		p->kind = SIM_P_WARMPOOL, p->wp = WARMPOOL_PREDICTIVE;
	else if (strcmp(s, "rate") == 0)
		p->kind = SIM_P_WARMPOOL, p->wp = WARMPOOL_RATE;
	else if (strcmp(s, "keda") == 0)
		p->kind = SIM_P_KEDA;
	else if (strcmp(s, "keda-pool") == 0)
		p->kind = SIM_P_KEDA_POOL;
	else if (strcmp(s, "scale") == 0)
		p->kind = SIM_P_SCALE;
	else if (strncmp(s, "static-", 7) == 0) {
		n = strtol(s + 7, &end, 10);
		if (*end != '\0' || end == s + 7 || n < 0 || n > 100000)
			return (-1);
		p->kind = SIM_P_STATIC;
		p->n = n;
	} else
		return (-1);
	return (0);
}

static int
cmp_double(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return (x < y ? -1 : x > y);
}

double
sim_quantile(double *v, size_t n, double q)
{
	size_t	 k;

	if (n == 0)
		return (0);
	qsort(v, n, sizeof *v, cmp_double);
	/* nearest rank: the smallest value with at least q x n at or below */
	k = (size_t)ceil(q * (double)n - 1e-9);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (v[k - 1]);
}

void
sim_result_free(struct sim_result *r)
{
	free(r->pts);
	r->pts = NULL;
	r->npts = 0;
}

/* Time passes: the sandbox-seconds of [last, now]. */
static void
advance(struct sim *s, double now)
{
	double	 dt = now - s->last;

	if (dt > 0) {
		s->r->busy += dt * (double)s->busy;
		s->r->idle += dt * (double)(s->live - s->busy);
		s->last = now;
	}
	s->now = now;
}

static double
cold_draw(struct sim *s)
{
	return (sim_rng_lognormal(&s->rng, s->cl->cold_median,
	    s->cl->cold_sigma));
}

/* A new sandbox, Ready at ready (an E_READY is queued). */
static long
sbox_new(struct sim *s, double ready, int pooled, long task)
{
	struct sbox	*x;

	if (s->nb == s->capb) {
		s->capb = s->capb ? s->capb * 2 : 256;
		s->b = xrealloc(s->b, s->capb * sizeof *s->b);
	}
	x = &s->b[s->nb];
	memset(x, 0, sizeof *x);
	x->created = s->now;
	x->ready = ready;
	x->task = task;
	x->pooled = pooled;
	x->cold = task >= 0;
	s->live++;
	if (s->live > s->r->peak)
		s->r->peak = s->live;
	sim_queue_push(&s->q, ready, E_READY, (long)s->nb);
	return ((long)s->nb++);
}

static void
sbox_end(struct sim *s, long i)
{
	s->b[i].gone = 1;
	s->b[i].pooled = 0;
	sim_queue_push(&s->q, s->now + s->cl->grace, E_GONE, i);
}

static void
reconcile_soon(struct sim *s)
{
	if (!s->reconcile_due) {
		s->reconcile_due = 1;
		sim_queue_push(&s->q, s->now + s->cl->write_rtt +
		    s->cl->replenish_delay, E_RECONCILE, 0);
	}
}

static void
set_spec(struct sim *s, long n)
{
	if (n == s->spec)
		return;
	s->spec = n;
	reconcile_soon(s);
}

/* fifo: the deployment's queue, or the deferred tasks in order. */
static void
fifo_push(struct sim *s, long i)
{
	s->fifo[s->ftail++] = i;
}

static void start_task(struct sim *, long task, long sbox, int warm);
static void claim(struct sim *, long task);

/* An idle pod takes the next queued task; 1 when it did. */
static int
pod_take(struct sim *s, long pod)
{
	long	 i;

	if (s->b[pod].drain || s->fhead == s->ftail)
		return (0);
	i = s->fifo[s->fhead++];
	start_task(s, i, pod, 0);
	return (1);
}

/*
 * The controllers: agent-sandbox's warm pool (claims) or the ReplicaSet
 * (deployment) toward spec, slow-start batches 1, 2, 4, ... one write
 * round-trip each; surplus: unready first, then idle ones, newest first.
 */
static void
reconcile(struct sim *s)
{
	long	 have = 0, i, batch = 1, inbatch = 0, k = 0, drop;
	int	 pass;

	s->reconcile_due = 0;
	for (i = 0; i < (long)s->nb; i++)
		if (s->b[i].pooled) {
			s->b[i].drain = 0;
			have++;
		}
	for (; have < s->spec; have++) {
		sbox_new(s, s->now + (double)(k + 1) * s->cl->write_rtt +
		    cold_draw(s), 1, -1);
		if (++inbatch == batch) {
			inbatch = 0;
			batch *= 2;
			k++;
		}
	}
	drop = have - s->spec;
	for (pass = 0; pass < 3 && drop > 0; pass++)
		for (i = (long)s->nb - 1; i >= 0 && drop > 0; i--) {
			struct sbox *x = &s->b[i];

			if (!x->pooled || (pass == 0 && x->is_ready) ||
			    (pass == 1 && x->task >= 0))
				continue;
			drop--;
			if (pass == 2)
				x->drain = 1;	/* busy: after its task */
			else
				sbox_end(s, i);
		}
}

static void
start_task(struct sim *s, long i, long sb, int warm)
{
	struct stask	*k = &s->t[i];
	double		 w = s->now - k->arrive;
	long		 c;

	if (k->st == T_CLAIMING)
		s->nclaiming--;
	k->st = T_RUN;
	k->start = s->now;
	k->sbox = sb;
	k->warm = warm;
	s->b[sb].task = i;
	s->waits[s->r->started++] = w;
	if (warm)
		s->r->warm++;
	if (w > s->second_wait)
		s->second_wait = w;
	s->nwait--;
	s->nrun++;
	s->busy++;
	sim_queue_push(&s->q, s->now + s->tr->v[i].work, E_DONE, i);
	for (c = k->first_child; c >= 0; c = s->t[c].next_sibling)
		sim_queue_push(&s->q, s->now + s->tr->v[c].t - s->tr->v[i].t,
		    E_ARRIVE, c);
}

static void
quota_task_of(struct sim *s, long i, struct quota_task *qt,
    struct quota_res *res)
{
	const struct sim_task *k = &s->tr->v[i];
	int		 j;

	for (j = 0; j < k->nres; j++) {
		res[j].name = k->res_name[j];
		res[j].value = k->res_val[j];
	}
	qt->id = k->id;
	qt->parent = k->parent >= 0 ? s->tr->v[k->parent].id : NULL;
	qt->root = s->tr->v[s->t[i].root].id;
	qt->depth = k->depth;
	qt->res = res;
	qt->nres = (size_t)k->nres;
}

/* Admission: 1 admitted (claim made), 0 deferred, -1 rejected. */
static int
admit(struct sim *s, long i)
{
	struct quota_task qt;
	struct quota_res res[SIM_MAX_RES];
	struct quota_decision d;

	quota_task_of(s, i, &qt, res);
	quota_check(s->quota, &qt, s->now, &d);
	if (d.verdict == QUOTA_REJECT && s->spec > 0)
		quota_spares_give_way(&d, s->spec);
	if (d.verdict == QUOTA_ADMIT) {
		quota_admit(s->quota, &qt, s->now);
		s->r->admitted++;
		claim(s, i);
		return (1);
	}
	if (d.verdict == QUOTA_DEFER) {
		if (s->t[i].st != T_DEFER)
			s->r->deferred++;
		return (0);
	}
	s->r->qrejected++;
	return (-1);
}

static void
reject(struct sim *s, long i)
{
	s->t[i].st = T_REJECTED;
	s->r->rejected++;
	s->nwait--;
	s->remaining -= (size_t)s->t[i].subtree;
}

/* Deferred tasks, in order, again. */
static void
retry_deferred(struct sim *s)
{
	size_t	 i, keep = s->fhead;
	long	 k;
	int	 v;

	if (s->deploy)
		return;	/* the fifo is the deployment's queue */
	for (i = s->fhead; i < s->ftail; i++) {
		k = s->fifo[i];
		v = admit(s, k);
		if (v == 0)
			s->fifo[keep++] = k;
		else if (v < 0)
			reject(s, k);
	}
	s->ftail = keep;
}

static void
claim(struct sim *s, long i)
{
	s->t[i].st = T_CLAIMING;
	s->nclaiming++;
	sim_queue_push(&s->q, s->now, E_CLAIM, i);
}

/* The claim reaches the API server: adopt a member or start cold. */
static void
claim_write(struct sim *s, long i)
{
	long	 j, best = -1;

	if (!as_bucket_take(&s->writes, s->now)) {
		sim_queue_push(&s->q, s->now + as_bucket_wait(&s->writes,
		    s->now), E_CLAIM, i);
		return;
	}
	for (j = 0; j < (long)s->nb; j++) {
		if (!s->b[j].pooled)
			continue;
		if (best < 0 || (s->b[j].is_ready && !s->b[best].is_ready) ||
		    (s->b[j].is_ready == s->b[best].is_ready &&
		    s->b[j].ready < s->b[best].ready))
			best = j;
	}
	if (best < 0) {
		s->t[i].sbox = sbox_new(s, s->now + s->cl->write_rtt +
		    cold_draw(s), 0, i);
		return;
	}
	s->t[i].sbox = best;
	s->r->adopted++;
	s->b[best].pooled = 0;
	s->b[best].task = i;
	if (s->b[best].is_ready) {
		s->t[i].warm = 1;
		sim_queue_push(&s->q, s->now + s->cl->warm_bind, E_START, i);
	}
	/* else: E_READY of the member starts it */
	reconcile_soon(s);	/* the pool refills */
}

static void
size_pool(struct sim *s)
{
	struct warmpool_load l;
	long	 target, head;

	if (s->pol->kind != SIM_P_WARMPOOL)
		return;
	head = quota_headroom(s->quota);
	l.waiting = s->nclaiming;
	l.running = s->nrun;
	l.spawners = s->nspawners;
	l.headroom = head >= 0 ? head + s->spec : -1;
	target = warmpool_target_policy(&s->ws, &s->wp, s->now, &l);
	quota_set_replicas(s->quota, target > s->spec ? target : s->spec);
	head = quota_headroom(s->quota);
	target = quota_spare_target(target, s->spec, head,
	    head == 0 ? (long)(s->ftail - s->fhead) : 0);
	set_spec(s, target);
	quota_set_replicas(s->quota, s->spec);
}

static void
arrive(struct sim *s, long i)
{
	struct stask	*k = &s->t[i];
	long		 par = s->tr->v[i].parent, j;
	int		 v;

	s->r->tasks++;
	k->arrive = s->now;
	k->st = T_WAIT;
	s->nwait++;
	if (s->pol->kind == SIM_P_WARMPOOL) {
		if (par >= 0)
			warmpool_spawn(&s->ws, &s->wp, s->now,
			    s->t[par].spawned);
		else
			warmpool_root(&s->ws, &s->wp, s->now);
		warmpool_arrival(&s->ws, &s->wp, s->now, 1);
	}
	if (par >= 0 && !s->t[par].spawned) {
		s->t[par].spawned = 1;
		if (s->t[par].st == T_RUN)
			s->nspawners++;
	}
	if (s->deploy) {
		for (j = 0; j < (long)s->nb; j++)
			if (s->b[j].pooled && s->b[j].is_ready &&
			    s->b[j].task < 0 && !s->b[j].drain) {
				start_task(s, i, j, 1);
				return;
			}
		fifo_push(s, i);
		return;
	}
	if (s->ws.target == 0)
		size_pool(s);	/* wake the pool in this tick */
	if (s->ftail > s->fhead) {
		/* behind deferred tasks: in line */
		k->st = T_DEFER;
		s->r->deferred++;
		fifo_push(s, i);
		return;
	}
	v = admit(s, i);
	if (v == 0) {
		k->st = T_DEFER;
		fifo_push(s, i);
	} else if (v < 0)
		reject(s, i);
}

static void
done(struct sim *s, long i)
{
	struct stask	*k = &s->t[i];
	long		 sb = k->sbox;

	k->st = T_DONE;
	s->nrun--;
	s->busy--;
	if (k->spawned)
		s->nspawners--;
	s->remaining--;
	s->b[sb].task = -1;
	if (s->deploy) {
		if (s->b[sb].drain) {
			sbox_end(s, sb);
			return;
		}
		pod_take(s, sb);
		return;
	}
	quota_release(s->quota, s->tr->v[i].id, s->now);
	sbox_end(s, sb);
	retry_deferred(s);
}

static void
ready(struct sim *s, long sb)
{
	struct sbox	*x = &s->b[sb];
	long		 i = x->task;

	if (x->gone)
		return;
	x->is_ready = 1;
	if (s->deploy) {
		if (x->pooled && x->task < 0)
			pod_take(s, sb);
		return;
	}
	if (i < 0)
		return;
	if (x->cold) {
		warmpool_cold_sample(&s->ws, &s->wp, s->now - x->created);
		start_task(s, i, sb, 0);
	} else
		sim_queue_push(&s->q, s->now + s->cl->warm_bind, E_START, i);
}

static void
tick(struct sim *s)
{
	struct autoscale_input in;
	struct autoscale_decision d;

	switch (s->pol->kind) {
	case SIM_P_WARMPOOL:
		retry_deferred(s);
		size_pool(s);
		break;
	case SIM_P_SCALE:
		in.source_ok = 1;
		in.backlog = (double)(s->nwait + s->nrun);
		in.in_flight = (double)s->nrun;
		in.current = s->spec;
		in.quota_cap = -1;
		in.now = s->now;
		autoscale_decide(&s->as, &s->ap, &in, &d);
		set_spec(s, d.desired);
		break;
	default:
		retry_deferred(s);
		break;
	}
}

/* KEDA's metric: queued + running (deployment), waiting (warm pool). */
static double
keda_metric(const struct sim *s)
{
	return (s->deploy ? (double)(s->nwait + s->nrun) : (double)s->nwait);
}

static void
setup(struct sim *s, const struct pool_config *pool,
    const struct quota_config *quota)
{
	const struct sim_trace *tr = s->tr;
	size_t		 i;
	long		 par;
	long		*lastkid;

	s->t = xcalloc(tr->n ? tr->n : 1, sizeof *s->t);
	s->waits = xcalloc(tr->n ? tr->n : 1, sizeof *s->waits);
	s->fifo = xcalloc(tr->n ? tr->n : 1, sizeof *s->fifo);
	lastkid = xcalloc(tr->n ? tr->n : 1, sizeof *lastkid);
	for (i = 0; i < tr->n; i++) {
		s->t[i].first_child = s->t[i].next_sibling = -1;
		s->t[i].sbox = -1;
		lastkid[i] = -1;
		par = tr->v[i].parent;
		s->t[i].root = par >= 0 ? s->t[par].root : (long)i;
		if (par < 0) {
			sim_queue_push(&s->q, tr->v[i].t, E_ARRIVE, (long)i);
			continue;
		}
		if (lastkid[par] < 0)
			s->t[par].first_child = (long)i;
		else
			s->t[lastkid[par]].next_sibling = (long)i;
		lastkid[par] = (long)i;
	}
	free(lastkid);
	for (i = tr->n; i-- > 0;) {
		s->t[i].subtree++;
		if (tr->v[i].parent >= 0)
			s->t[tr->v[i].parent].subtree += s->t[i].subtree;
	}
	s->remaining = tr->n;
	/* The parser's defaults (config.c's field table) without a pool. */
	s->wp.spare_min = pool != NULL ? pool->spare_min : 0;
	s->wp.spare_max = pool != NULL ? pool->spare_max : 50;
	s->wp.cooldown = pool != NULL ? pool->scaling.cooldown_seconds : 60;
	s->wp.policy = s->pol->wp;
	warmpool_params_defaults(&s->wp);
	if (pool != NULL) {
		s->ap = pool->scaling;
		s->poll = (double)pool->poll_interval_ms / 1000;
	} else {
		s->ap.max_replicas = 100;
		s->ap.tasks_per_replica = 1;
		s->ap.cooldown_seconds = 60;
		s->ap.stabilization_seconds = 60;
		s->poll = 1;
	}
	keda_params_defaults(&s->kp);
	s->kp.max_replicas = s->ap.max_replicas;
	s->quota = quota_ns_new(s->pol->kind == SIM_P_KEDA ||
	    s->pol->kind == SIM_P_SCALE ? NULL : quota);
	as_bucket_init(&s->writes, s->cl->qps, s->cl->burst, 0);
	sim_rng_seed(&s->rng, s->cl->seed);
	s->deploy = s->pol->kind == SIM_P_KEDA || s->pol->kind == SIM_P_SCALE;
}

void
sim_run(const struct sim_trace *tr, const struct sim_cluster *cl,
    const struct sim_policy *pol, const struct pool_config *pool,
    const struct quota_config *quota, struct sim_result *r)
{
	struct sim	 s;
	struct sim_event e;
	size_t		 capp = 0, i;
	long		 j;
	double		*w, horizon;

	memset(&s, 0, sizeof s);
	memset(r, 0, sizeof *r);
	r->policy = *pol;
	s.tr = tr;
	s.cl = cl;
	s.pol = pol;
	s.r = r;
	setup(&s, pool, quota);
	if (pol->kind == SIM_P_STATIC) {
		s.spec = pol->n;
		for (j = 0; j < pol->n; j++) {
			i = (size_t)sbox_new(&s, 0, 1, -1);
			s.b[i].is_ready = 1;
		}
	}
	sim_queue_push(&s.q, 0, E_SAMPLE, 0);
	if (pol->kind == SIM_P_KEDA || pol->kind == SIM_P_KEDA_POOL) {
		sim_queue_push(&s.q, 0, E_POLL, 0);
		sim_queue_push(&s.q, 0, E_HPA, 0);
	} else
		sim_queue_push(&s.q, 0, E_TICK, 0);
	horizon = (tr->n > 0 ? tr->v[tr->n - 1].t : 0) + 7 * 86400;
	while (s.remaining > 0 && sim_queue_pop(&s.q, &e) && e.t < horizon) {
		advance(&s, e.t);
		switch (e.kind) {
		case E_ARRIVE:
			arrive(&s, e.arg);
			break;
		case E_CLAIM:
			claim_write(&s, e.arg);
			break;
		case E_START:
			start_task(&s, e.arg, s.t[e.arg].sbox,
			    s.t[e.arg].warm);
			break;
		case E_DONE:
			done(&s, e.arg);
			break;
		case E_READY:
			ready(&s, e.arg);
			break;
		case E_GONE:
			s.live--;
			break;
		case E_RECONCILE:
			reconcile(&s);
			break;
		case E_TICK:
			tick(&s);
			sim_queue_push(&s.q, s.now + (pol->kind == SIM_P_SCALE ?
			    s.poll : cl->tick), E_TICK, 0);
			break;
		case E_POLL:
			set_spec(&s, keda_poll(&s.ks, &s.kp, s.now,
			    keda_metric(&s)));
			retry_deferred(&s);
			sim_queue_push(&s.q, s.now + s.kp.polling, E_POLL, 0);
			break;
		case E_HPA:
			set_spec(&s, keda_hpa_sync(&s.ks, &s.kp, s.now,
			    keda_metric(&s)));
			sim_queue_push(&s.q, s.now + s.kp.hpa_sync, E_HPA, 0);
			break;
		case E_SAMPLE:
			if (r->npts == capp) {
				capp = capp ? capp * 2 : 1024;
				r->pts = xrealloc(r->pts, capp * sizeof *r->pts);
			}
			r->pts[r->npts].t = (float)s.now;
			r->pts[r->npts].live = (float)s.live;
			r->pts[r->npts].waiting = (float)s.nwait;
			r->pts[r->npts++].wait = (float)s.second_wait;
			s.second_wait = 0;
			sim_queue_push(&s.q, s.now + 1, E_SAMPLE, 0);
			break;
		}
	}
	/* The end: the last task's sandbox terminates. */
	advance(&s, s.now + cl->grace);
	r->end = s.now;
	for (i = 0; i < tr->n; i++)
		if (s.t[i].st == T_FUTURE)
			r->dropped++;
	w = s.waits;
	if (r->started > 0) {
		for (i = 0; i < r->started; i++)
			r->mean += w[i];
		r->mean /= (double)r->started;
		r->p50 = sim_quantile(w, r->started, 0.50);
		r->p95 = sim_quantile(w, r->started, 0.95);
		r->p99 = sim_quantile(w, r->started, 0.99);
		r->max = w[r->started - 1];
	}
	quota_ns_free(s.quota);
	autoscale_state_reset(&s.as);
	sim_queue_free(&s.q);
	free(s.t);
	free(s.b);
	free(s.fifo);
	free(s.waits);
}
