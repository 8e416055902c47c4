/*
 * leader.c: leader election on a coordination.k8s.io/v1 Lease (leader.h),
 * after kubernetes/client-go tools/leaderelection/leaderelection.go
 * (tryAcquireOrRenew, renew, release); our own code and words.
 *
 * Who runs what.  One retry timer drives the campaign: every retry period
 * (a little jittered while not leading) it starts one attempt, unless one
 * is still in flight.  A leader's attempt is client-go's optimistic fast
 * path: one PUT of renewTime over the resourceVersion it last wrote; a 409
 * falls back at once to the slow path, which every candidate takes: GET,
 * POST when missing, else decide from what was observed and PUT.  One
 * request at a time, so completions never race each other.
 *
 * Time.  A candidate never trusts the server's renewTime: it notes on its
 * own monotonic clock when it saw the record change, and the Lease is free
 * once leaseDurationSeconds passed since then with no change.  The leader
 * counts its term from the moment it sent its last successful write (not
 * when the answer came): another candidate can only have seen that write
 * later, so the leader's renew_deadline ends at least lease_duration -
 * renew_deadline before anyone else may take over, whatever the latency.
 *
 * Stopping.  The term is checked three ways, none of which waits for a
 * request: leader_is_leader() reads the clock at each call; a timer at
 * maximum priority fires at the deadline; and an ev_check watcher at
 * maximum priority, which libev runs after each wait before any other
 * callback (the libev manual, "ev_prepare and ev_check"), steps down at
 * once when the deadline passed while the process slept or was stopped.
 * Stepping down cancels the request in flight and runs the stopped
 * callback, which is where the caller stops writing.
 *
 * Client-go differs in two small ways that we keep: it steps down only
 * when the deadline passes, where we also step down as soon as a read
 * shows the Lease in other hands; and it measures the term from the
 * answer, where we measure it from the request.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/k8s/leader.h"
#include "agentscaler/rt/log.h"

#define LEASE_API	"/apis/coordination.k8s.io/v1"
#define LEADER_LOG	"leader"
#define LEADER_SA_DIR	"/var/run/secrets/kubernetes.io/serviceaccount"

enum leader_op {
	LEADER_OP_NONE,
	LEADER_OP_GET,		/* slow path: read */
	LEADER_OP_CREATE,	/* POST: the Lease was missing */
	LEADER_OP_TAKE,		/* PUT after a read */
	LEADER_OP_RENEW,	/* PUT over what we wrote last (fast path) */
	LEADER_OP_RELEASE,	/* PUT of the released record */
	LEADER_OP_RELEASE_GET	/* read after a 409 on release */
};

static const char *const leader_op_names[] = {
	[LEADER_OP_NONE] = "", [LEADER_OP_GET] = "reading",
	[LEADER_OP_CREATE] = "creating", [LEADER_OP_TAKE] = "taking",
	[LEADER_OP_RENEW] = "renewing", [LEADER_OP_RELEASE] = "releasing",
	[LEADER_OP_RELEASE_GET] = "reading (to release)",
};

struct leader {
	struct k8s_client	*k8s;
	struct ev_loop		*loop;
	char			*ns;
	char			*name;
	char			*identity;
	char			*path;		/* .../leases/<name> */
	char			*collection;	/* .../leases */
	double			 duration;
	double			 deadline;
	double			 retry;
	leader_fn		*started;
	leader_fn		*stopped;
	void			*arg;

	struct leader_observation obs;
	int			 leading;
	double			 renewed_at;	/* mono: last good write sent */
	struct k8s_req		*req;
	enum leader_op		 op;
	double			 sent_at;	/* mono: req was sent */

	int			 releasing;
	int			 release_err;
	leader_released_fn	*released;
	void			*released_arg;

	ev_timer		 retry_timer;
	ev_timer		 deadline_timer;
	ev_timer		 release_timer;
	ev_check		 check;

	char			 error[256];
	uint64_t		 errors;
	uint64_t		 holder_changes;
	uint64_t		 started_n;
	uint64_t		 stopped_n;
};

static void	 leader_done(const struct k8s_response *, void *);
static void	 leader_step_down(struct leader *, const char *);
static void	 leader_release_finish(struct leader *, int);

/* Options and defaults. */

int
leader_options_check(const struct leader_options *o, char *err,
    size_t errlen)
{
	if (o->ns == NULL || *o->ns == '\0' || o->name == NULL ||
	    *o->name == '\0') {
		snprintf(err, errlen, "the Lease needs a namespace and a name");
		return (-AS_EINVAL);
	}
	if (o->identity == NULL || *o->identity == '\0' ||
	    strlen(o->identity) > LEADER_IDENTITY_MAX) {
		snprintf(err, errlen, "the holder identity must have 1 to %d "
		    "bytes", LEADER_IDENTITY_MAX);
		return (-AS_EINVAL);
	}
	if (!(o->lease_duration >= 1 && o->lease_duration <= INT32_MAX) ||
	    o->lease_duration != floor(o->lease_duration)) {
		snprintf(err, errlen, "the lease duration must be a whole "
		    "number of seconds, at least 1 (got %g)", o->lease_duration);
		return (-AS_EINVAL);
	}
	if (!(o->retry_period > 0)) {
		snprintf(err, errlen, "the retry period must be greater than "
		    "0 (got %g)", o->retry_period);
		return (-AS_EINVAL);
	}
	if (!(o->lease_duration > o->renew_deadline)) {
		snprintf(err, errlen, "the lease duration (%g s) must be "
		    "greater than the renew deadline (%g s)", o->lease_duration,
		    o->renew_deadline);
		return (-AS_EINVAL);
	}
	if (!(o->renew_deadline > LEADER_JITTER * o->retry_period)) {
		snprintf(err, errlen, "the renew deadline (%g s) must be "
		    "greater than %g x the retry period (%g s)",
		    o->renew_deadline, LEADER_JITTER, o->retry_period);
		return (-AS_EINVAL);
	}
	return (0);
}

void
leader_default_namespace(const char *dir, char *out, size_t outlen)
{
	const char	*env = getenv("POD_NAMESPACE");
	char		 path[512], err[256];
	char		*buf;
	size_t		 len = 0;

	if (env != NULL && *env != '\0') {
		as_strlcpy(out, env, outlen);
		return;
	}
	snprintf(path, sizeof path, "%s/namespace", dir != NULL ? dir :
	    LEADER_SA_DIR);
	if ((buf = as_read_file(path, 253, &len, err, sizeof err)) != NULL) {
		while (len > 0 && (buf[len - 1] == '\n' ||
		    buf[len - 1] == '\r' || buf[len - 1] == ' '))
			buf[--len] = '\0';
		if (len > 0) {
			as_strlcpy(out, buf, outlen);
			free(buf);
			return;
		}
		free(buf);
	}
	as_strlcpy(out, "default", outlen);
}

/* Pure parts. */

/* Copies a string member of obj into dst; absent or null gives "". */
static int
leader_json_str(const cJSON *obj, const char *key, char *dst, size_t len,
    char *err, size_t errlen)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(obj, key);

	dst[0] = '\0';
	if (v == NULL || cJSON_IsNull(v))
		return (0);
	if (!cJSON_IsString(v) || strlen(v->valuestring) >= len) {
		snprintf(err, errlen, "Lease: %s is not a string of at most "
		    "%zu bytes", key, len - 1);
		return (-AS_EPROTO);
	}
	as_strlcpy(dst, v->valuestring, len);
	return (0);
}

/* A whole number member of obj in [0, INT32_MAX]; absent gives 0. */
static int
leader_json_count(const cJSON *obj, const char *key, long *out, char *err,
    size_t errlen)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(obj, key);
	double		 d;

	*out = 0;
	if (v == NULL || cJSON_IsNull(v))
		return (0);
	d = cJSON_GetNumberValue(v);
	if (!cJSON_IsNumber(v) || !(d >= 0 && d <= INT32_MAX) ||
	    d != floor(d)) {
		snprintf(err, errlen, "Lease: %s is not a whole number from 0 "
		    "to %d", key, INT32_MAX);
		return (-AS_EPROTO);
	}
	*out = (long)d;
	return (0);
}

int
leader_record_parse(const char *body, size_t len, struct leader_record *rec,
    char *err, size_t errlen)
{
	const cJSON	*meta, *spec;
	cJSON		*o;
	int		 rc = -AS_EPROTO;

	memset(rec, 0, sizeof *rec);
	o = cJSON_ParseWithLength(body, len);
	if (!cJSON_IsObject(o)) {
		snprintf(err, errlen, "Lease: not a JSON object");
		goto out;
	}
	meta = cJSON_GetObjectItemCaseSensitive(o, "metadata");
	spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
	if (leader_json_str(meta, "resourceVersion", rec->rv, sizeof rec->rv,
	    err, errlen) != 0)
		goto out;
	if (spec != NULL && !cJSON_IsObject(spec)) {
		snprintf(err, errlen, "Lease: spec is not an object");
		goto out;
	}
	if (leader_json_str(spec, "holderIdentity", rec->holder,
	    sizeof rec->holder, err, errlen) != 0 ||
	    leader_json_str(spec, "acquireTime", rec->acquire,
	    sizeof rec->acquire, err, errlen) != 0 ||
	    leader_json_str(spec, "renewTime", rec->renew, sizeof rec->renew,
	    err, errlen) != 0 ||
	    leader_json_count(spec, "leaseDurationSeconds", &rec->duration,
	    err, errlen) != 0 ||
	    leader_json_count(spec, "leaseTransitions", &rec->transitions,
	    err, errlen) != 0)
		goto out;
	rc = 0;
out:
	cJSON_Delete(o);
	return (rc);
}

char *
leader_record_body(const char *ns, const char *name,
    const struct leader_record *rec)
{
	cJSON	*o, *meta, *spec;
	char	*s, *out;

	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "apiVersion", "coordination.k8s.io/v1");
	cJSON_AddStringToObject(o, "kind", "Lease");
	meta = cJSON_AddObjectToObject(o, "metadata");
	cJSON_AddStringToObject(meta, "name", name);
	cJSON_AddStringToObject(meta, "namespace", ns);
	if (rec->rv[0] != '\0')
		cJSON_AddStringToObject(meta, "resourceVersion", rec->rv);
	spec = cJSON_AddObjectToObject(o, "spec");
	/* Written even when empty, as client-go does on release. */
	cJSON_AddStringToObject(spec, "holderIdentity", rec->holder);
	cJSON_AddNumberToObject(spec, "leaseDurationSeconds",
	    (double)rec->duration);
	if (rec->acquire[0] != '\0')
		cJSON_AddStringToObject(spec, "acquireTime", rec->acquire);
	if (rec->renew[0] != '\0')
		cJSON_AddStringToObject(spec, "renewTime", rec->renew);
	cJSON_AddNumberToObject(spec, "leaseTransitions",
	    (double)rec->transitions);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (s == NULL)
		abort();	/* out of memory, as xmalloc */
	out = xstrdup(s);
	cJSON_free(s);
	return (out);
}

int
leader_record_same(const struct leader_record *a,
    const struct leader_record *b)
{
	return (strcmp(a->holder, b->holder) == 0 &&
	    a->duration == b->duration &&
	    strcmp(a->acquire, b->acquire) == 0 &&
	    strcmp(a->renew, b->renew) == 0 &&
	    a->transitions == b->transitions);
}

int
leader_observe(struct leader_observation *obs, const struct leader_record *rec,
    double now)
{
	if (obs->valid && leader_record_same(&obs->rec, rec)) {
		/* A metadata-only change moves the version, not the clock. */
		as_strlcpy(obs->rec.rv, rec->rv, sizeof obs->rec.rv);
		return (0);
	}
	obs->rec = *rec;
	obs->at = now;
	obs->valid = 1;
	return (1);
}

int
leader_may_take(const struct leader_observation *obs, const char *identity,
    double now)
{
	if (!obs->valid)
		return (0);
	if (obs->rec.holder[0] == '\0' ||
	    strcmp(obs->rec.holder, identity) == 0)
		return (1);
	/* client-go's isLeaseValid: observedTime + duration > now. */
	return (!(obs->at + (double)obs->rec.duration > now));
}

void
leader_record_next(const struct leader_record *old, const char *identity,
    long duration, double wall_now, struct leader_record *out)
{
	char	 now[40];

	as_rfc3339_micro(wall_now, now, sizeof now);
	memset(out, 0, sizeof *out);
	as_strlcpy(out->holder, identity, sizeof out->holder);
	out->duration = duration;
	as_strlcpy(out->renew, now, sizeof out->renew);
	as_strlcpy(out->rv, old->rv, sizeof out->rv);
	if (strcmp(old->holder, identity) == 0 && old->acquire[0] != '\0') {
		as_strlcpy(out->acquire, old->acquire, sizeof out->acquire);
		out->transitions = old->transitions;
	} else {
		as_strlcpy(out->acquire, now, sizeof out->acquire);
		out->transitions = strcmp(old->holder, identity) == 0 ?
		    old->transitions : old->transitions + 1;
	}
}

void
leader_record_released(const struct leader_record *cur, double wall_now,
    struct leader_record *out)
{
	char	 now[40];

	as_rfc3339_micro(wall_now, now, sizeof now);
	*out = *cur;
	out->holder[0] = '\0';
	out->duration = 1;
	as_strlcpy(out->acquire, now, sizeof out->acquire);
	as_strlcpy(out->renew, now, sizeof out->renew);
}

/* State. */

static int
leader_valid(const struct leader *l, double now)
{
	return (l->leading && now < l->renewed_at + l->deadline);
}

int
leader_is_leader(const struct leader *l)
{
	return (l != NULL && leader_valid(l, as_mono_now()));
}

const char *
leader_holder(const struct leader *l)
{
	return (l->obs.valid ? l->obs.rec.holder : "");
}

int
leader_observed(const struct leader *l)
{
	return (l->obs.valid);
}

const char *
leader_error(const struct leader *l)
{
	return (l->error);
}

static void
leader_fail(struct leader *l, const char *what, const char *msg)
{
	l->errors++;
	if (strcmp(l->error, msg) != 0)
		log_warn(LEADER_LOG, "%s Lease %s/%s failed: %s", what, l->ns,
		    l->name, msg);
	as_strlcpy(l->error, msg, sizeof l->error);
}

static void
leader_ok(struct leader *l)
{
	if (l->error[0] != '\0')
		log_info(LEADER_LOG, "Lease %s/%s reachable again", l->ns,
		    l->name);
	l->error[0] = '\0';
}

/* Takes a record read or written into the observation; logs holder moves. */
static void
leader_seen(struct leader *l, const struct leader_record *rec)
{
	char	 before[LEADER_IDENTITY_MAX + 1];
	int	 had = l->obs.valid;

	as_strlcpy(before, l->obs.rec.holder, sizeof before);
	(void)leader_observe(&l->obs, rec, as_mono_now());
	if (had && strcmp(before, rec->holder) == 0)
		return;
	if (had)
		l->holder_changes++;
	log_info(LEADER_LOG, "Lease %s/%s: holder %s%s, transitions %ld",
	    l->ns, l->name, rec->holder[0] != '\0' ? rec->holder :
	    "none (released)", strcmp(rec->holder, l->identity) == 0 ?
	    " (this process)" : "", rec->transitions);
}

static void
leader_cancel(struct leader *l)
{
	if (l->req != NULL)
		k8s_req_cancel(l->req);	/* leader_done clears l->req */
	l->req = NULL;
	l->op = LEADER_OP_NONE;
}

static int
leader_send(struct leader *l, enum leader_op op, const char *method,
    const char *path, const struct leader_record *rec)
{
	char	*body = NULL;

	if (rec != NULL)
		body = leader_record_body(l->ns, l->name, rec);
	l->op = op;
	l->sent_at = as_mono_now();
	l->req = k8s_client_request(l->k8s, method, path, body != NULL ?
	    "application/json" : NULL, body, leader_done, l);
	free(body);
	if (l->req == NULL) {
		l->op = LEADER_OP_NONE;
		leader_fail(l, leader_op_names[op], "the client refused the "
		    "request");
		return (-AS_EINVAL);
	}
	return (0);
}

static void
leader_arm_deadline(struct leader *l, double now)
{
	ev_timer_stop(l->loop, &l->deadline_timer);
	ev_timer_set(&l->deadline_timer, l->renewed_at + l->deadline - now,
	    0.);
	ev_timer_start(l->loop, &l->deadline_timer);
}

/* One step of the campaign (the retry timer's). */
static void
leader_try(struct leader *l)
{
	struct leader_record next;

	if (l->releasing || l->req != NULL)
		return;
	if (leader_is_leader(l)) {
		leader_record_next(&l->obs.rec, l->identity,
		    (long)l->duration, as_wall_now(), &next);
		(void)leader_send(l, LEADER_OP_RENEW, "PUT", l->path, &next);
	} else
		(void)leader_send(l, LEADER_OP_GET, "GET", l->path, NULL);
}

static void
leader_got(struct leader *l, const struct k8s_response *r)
{
	struct leader_record rec, next;
	char		 err[160];

	if (r->err == -AS_ENOTFOUND) {
		memset(&rec, 0, sizeof rec);
		leader_record_next(&rec, l->identity, (long)l->duration,
		    as_wall_now(), &next);
		next.transitions = 0;	/* a new Lease starts at 0 */
		log_info(LEADER_LOG, "Lease %s/%s does not exist; creating it",
		    l->ns, l->name);
		(void)leader_send(l, LEADER_OP_CREATE, "POST", l->collection,
		    &next);
		return;
	}
	if (r->err != 0) {
		leader_fail(l, "reading", r->message);
		return;
	}
	if (leader_record_parse(r->body, r->body_len, &rec, err,
	    sizeof err) != 0) {
		leader_fail(l, "reading", err);
		return;
	}
	leader_ok(l);
	leader_seen(l, &rec);
	if (!leader_may_take(&l->obs, l->identity, as_mono_now())) {
		if (l->leading)
			leader_step_down(l, "the Lease is in other hands");
		return;
	}
	leader_record_next(&l->obs.rec, l->identity, (long)l->duration,
	    as_wall_now(), &next);
	(void)leader_send(l, LEADER_OP_TAKE, "PUT", l->path, &next);
}

static void
leader_wrote(struct leader *l, enum leader_op op, double sent,
    const struct k8s_response *r)
{
	struct leader_record rec;
	char		 err[160];
	double		 now;

	if (r->err == -AS_ECONFLICT) {
		/*
		 * Someone wrote in between (a 409 on create: someone made it).
		 * After our own fast path, read at once; a lost race waits
		 * for the next round.
		 */
		leader_ok(l);
		if (op == LEADER_OP_RENEW)
			(void)leader_send(l, LEADER_OP_GET, "GET", l->path,
			    NULL);
		else
			log_debug(LEADER_LOG, "%s Lease %s/%s: another "
			    "candidate was first", leader_op_names[op], l->ns,
			    l->name);
		return;
	}
	if (r->err != 0) {
		leader_fail(l, leader_op_names[op], r->message);
		return;
	}
	if (leader_record_parse(r->body, r->body_len, &rec, err,
	    sizeof err) != 0) {
		leader_fail(l, leader_op_names[op], err);
		return;
	}
	leader_ok(l);
	leader_seen(l, &rec);
	now = as_mono_now();
	if (now >= sent + l->deadline) {
		/* Already too old to lead on; the next round writes again. */
		log_warn(LEADER_LOG, "%s Lease %s/%s took %.3f s, longer than "
		    "the renew deadline", leader_op_names[op], l->ns, l->name,
		    now - sent);
		return;
	}
	l->renewed_at = sent;
	leader_arm_deadline(l, now);
	if (l->leading)
		return;
	l->leading = 1;
	l->started_n++;
	log_info(LEADER_LOG, "leading: Lease %s/%s held as %s (transitions "
	    "%ld); renewing every %g s, stepping down if not renewed within "
	    "%g s", l->ns, l->name, l->identity, rec.transitions, l->retry,
	    l->deadline);
	if (l->started != NULL)
		l->started(l, l->arg);
}

static void
leader_release_step(struct leader *l, enum leader_op op,
    const struct k8s_response *r)
{
	struct leader_record rec, rel;
	char		 err[160];

	if (op == LEADER_OP_RELEASE && r->err == -AS_ECONFLICT) {
		(void)leader_send(l, LEADER_OP_RELEASE_GET, "GET", l->path,
		    NULL);
		return;
	}
	if (r->err == -AS_ENOTFOUND) {
		leader_release_finish(l, 0);	/* nothing left to release */
		return;
	}
	if (r->err != 0) {
		leader_fail(l, leader_op_names[op], r->message);
		leader_release_finish(l, r->err);
		return;
	}
	if (leader_record_parse(r->body, r->body_len, &rec, err,
	    sizeof err) != 0) {
		leader_fail(l, leader_op_names[op], err);
		leader_release_finish(l, -AS_EPROTO);
		return;
	}
	leader_seen(l, &rec);
	if (op == LEADER_OP_RELEASE) {
		log_info(LEADER_LOG, "released Lease %s/%s", l->ns, l->name);
		leader_release_finish(l, 0);
		return;
	}
	if (strcmp(rec.holder, l->identity) != 0) {
		leader_release_finish(l, 0);	/* not ours any more */
		return;
	}
	leader_record_released(&rec, as_wall_now(), &rel);
	if (leader_send(l, LEADER_OP_RELEASE, "PUT", l->path, &rel) != 0)
		leader_release_finish(l, -AS_EINVAL);
}

static void
leader_done(const struct k8s_response *r, void *arg)
{
	struct leader	*l = arg;
	enum leader_op	 op = l->op;
	double		 sent = l->sent_at;

	l->req = NULL;
	l->op = LEADER_OP_NONE;
	if (r->err == -AS_ECANCELED)
		return;
	switch (op) {
	case LEADER_OP_GET:
		leader_got(l, r);
		break;
	case LEADER_OP_CREATE:
	case LEADER_OP_TAKE:
	case LEADER_OP_RENEW:
		leader_wrote(l, op, sent, r);
		break;
	case LEADER_OP_RELEASE:
	case LEADER_OP_RELEASE_GET:
		leader_release_step(l, op, r);
		break;
	case LEADER_OP_NONE:
		break;
	}
}

static void
leader_step_down(struct leader *l, const char *why)
{
	if (!l->leading)
		return;
	l->leading = 0;
	l->stopped_n++;
	ev_timer_stop(l->loop, &l->deadline_timer);
	leader_cancel(l);
	log_warn(LEADER_LOG, "stopped leading: Lease %s/%s: %s", l->ns,
	    l->name, why);
	if (l->stopped != NULL)
		l->stopped(l, l->arg);
}

/* Timers and the check watcher. */

static void
leader_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct leader	*l = w->data;
	double		 next = l->retry;

	(void)revents;
	leader_try(l);
	if (!l->leading)
		next *= 1 + (LEADER_JITTER - 1) * as_random();
	ev_timer_set(w, next, 0.);
	ev_timer_start(loop, w);
}

/* The renew deadline, checked against the clock (the timer may be early). */
static void
leader_deadline_check(struct leader *l)
{
	double	 now;
	char	 why[96];

	if (!l->leading)
		return;
	now = as_mono_now();
	if (leader_valid(l, now)) {
		if (!ev_is_active(&l->deadline_timer))
			leader_arm_deadline(l, now);
		return;
	}
	snprintf(why, sizeof why, "not renewed for %.3f s (renew deadline "
	    "%g s)", now - l->renewed_at, l->deadline);
	leader_step_down(l, why);
}

static void
leader_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	leader_deadline_check(w->data);
}

static void
leader_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct leader	*l = w->data;

	(void)loop;
	(void)revents;
	if (l->leading && !leader_valid(l, as_mono_now()))
		leader_deadline_check(l);
}

static void
leader_release_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct leader	*l = w->data;

	(void)loop;
	(void)revents;
	if (l->req != NULL) {
		log_warn(LEADER_LOG, "releasing Lease %s/%s: no answer in "
		    "time; the standby takes over when it expires", l->ns,
		    l->name);
		leader_cancel(l);
		l->release_err = -AS_ETIMEDOUT;
	}
	leader_release_finish(l, l->release_err);
}

static void
leader_release_finish(struct leader *l, int err)
{
	leader_released_fn *fn = l->released;

	ev_timer_stop(l->loop, &l->release_timer);
	l->released = NULL;
	if (fn != NULL)
		fn(l, err, l->released_arg);
}

/* Life cycle. */

struct leader *
leader_new(struct k8s_client *k8s, const struct leader_options *o,
    leader_fn *started, leader_fn *stopped, void *arg, char *err,
    size_t errlen)
{
	struct leader	*l;

	if (k8s == NULL || o == NULL) {
		snprintf(err, errlen, "no client or no options");
		return (NULL);
	}
	if (leader_options_check(o, err, errlen) != 0)
		return (NULL);
	l = xcalloc(1, sizeof *l);
	l->k8s = k8s;
	l->loop = k8s_client_loop(k8s);
	l->ns = xstrdup(o->ns);
	l->name = xstrdup(o->name);
	l->identity = xstrdup(o->identity);
	l->collection = xasprintf(LEASE_API "/namespaces/%s/leases", o->ns);
	l->path = xasprintf("%s/%s", l->collection, o->name);
	l->duration = o->lease_duration;
	l->deadline = o->renew_deadline;
	l->retry = o->retry_period;
	l->started = started;
	l->stopped = stopped;
	l->arg = arg;
	ev_init(&l->retry_timer, leader_retry_cb);
	ev_init(&l->deadline_timer, leader_deadline_cb);
	ev_init(&l->release_timer, leader_release_cb);
	ev_check_init(&l->check, leader_check_cb);
	l->retry_timer.data = l->deadline_timer.data = l;
	l->release_timer.data = l->check.data = l;
	/* Before anything else that is due in the same loop turn. */
	ev_set_priority(&l->deadline_timer, EV_MAXPRI);
	ev_set_priority(&l->check, EV_MAXPRI);
	ev_check_start(l->loop, &l->check);
	ev_timer_set(&l->retry_timer, 0., 0.);
	ev_timer_start(l->loop, &l->retry_timer);
	log_info(LEADER_LOG, "campaigning for Lease %s/%s as %s (lease %g s, "
	    "renew deadline %g s, retry %g s)", l->ns, l->name, l->identity,
	    l->duration, l->deadline, l->retry);
	return (l);
}

void
leader_free(struct leader *l)
{
	if (l == NULL)
		return;
	l->started = l->stopped = NULL;
	l->released = NULL;
	ev_timer_stop(l->loop, &l->retry_timer);
	ev_timer_stop(l->loop, &l->deadline_timer);
	ev_timer_stop(l->loop, &l->release_timer);
	ev_check_stop(l->loop, &l->check);
	leader_cancel(l);
	free(l->ns);
	free(l->name);
	free(l->identity);
	free(l->collection);
	free(l->path);
	free(l);
}

int
leader_release(struct leader *l, double timeout, leader_released_fn *done,
    void *arg)
{
	struct leader_record rel;

	if (l == NULL || l->releasing)
		return (-AS_EINVAL);
	l->releasing = 1;
	l->released = done;
	l->released_arg = arg;
	l->release_err = 0;
	ev_timer_stop(l->loop, &l->retry_timer);
	leader_step_down(l, "releasing the Lease (shutting down)");
	leader_cancel(l);
	if (l->obs.valid && strcmp(l->obs.rec.holder, l->identity) == 0) {
		leader_record_released(&l->obs.rec, as_wall_now(), &rel);
		if (leader_send(l, LEADER_OP_RELEASE, "PUT", l->path,
		    &rel) == 0) {
			ev_timer_set(&l->release_timer, timeout > 0 ? timeout :
			    0., 0.);
			ev_timer_start(l->loop, &l->release_timer);
			return (0);
		}
		l->release_err = -AS_EINVAL;
	}
	/* Nothing to write: complete on the next loop turn. */
	ev_timer_set(&l->release_timer, 0., 0.);
	ev_timer_start(l->loop, &l->release_timer);
	return (0);
}

/* Observability: the daemon renders these (scheduler/daemon_http.c). */

void
leader_get_stats(const struct leader *l, struct leader_stats *st)
{
	double	 now = as_mono_now();

	memset(st, 0, sizeof *st);
	st->ns = l->ns;
	st->name = l->name;
	st->identity = l->identity;
	st->holder = leader_holder(l);
	st->error = l->error;
	st->leader = leader_is_leader(l);
	st->observed = l->obs.valid;
	st->transitions = l->obs.rec.transitions;
	if (st->observed)
		st->unchanged_for = now - l->obs.at;
	if (st->leader)
		st->renewed_ago = now - l->renewed_at;
	st->duration = l->duration;
	st->deadline = l->deadline;
	st->retry = l->retry;
	st->holder_changes = l->holder_changes;
	st->started = l->started_n;
	st->stopped = l->stopped_n;
	st->errors = l->errors;
}
