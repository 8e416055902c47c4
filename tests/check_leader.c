/*
 * check_leader.c: leader election (k8s/leader.c).  First the pure parts
 * with an injected clock: option rules, the Lease's JSON both ways, the
 * observed-change clock that decides expiry, the records written to take,
 * renew and release; then candidates on one loop against the real
 * tools/kube-sim: one leader out of two, take-over only after the lease
 * duration once the leader stops renewing, immediate take-over after a
 * release, stepping down at the renew deadline while the API server is
 * unreachable, leader_is_leader() false at once after the process slept
 * past the deadline, and stepping down when another holder appears.
 * Short terms (lease 1 s, deadline 0.6 s, retry 0.2 s); every wait is
 * bounded.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/k8s/events.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/k8s/leader.h"
#include "agentscaler/k8s/status_writer.h"
#include "util/loop.h"
#include "util/sink.h"
#include "util/testutil.h"

#define WAIT	20.0	/* seconds; a deadline, not a speed check */
#define LEASES	"/apis/coordination.k8s.io/v1/namespaces/default/leases"

/* ---- pure: options ---- */

static const struct {
	const char	*ns, *name, *id;
	double		 dur, deadline, retry;
	int		 ok;
	const char	*err;
} opt_rows[] = {
	{ "default", "as", "a", 15, 10, 2, 1, NULL },
	{ "default", "as", "a", 3, 2, 0.5, 1, NULL },
	{ "default", "as", "a", 1, 0.6, 0.2, 1, NULL },
	{ "", "as", "a", 15, 10, 2, 0, "namespace and a name" },
	{ "default", NULL, "a", 15, 10, 2, 0, "namespace and a name" },
	{ "default", "as", "", 15, 10, 2, 0, "holder identity" },
	{ "default", "as", "a", 2.5, 2, 1, 0, "whole number" },
	{ "default", "as", "a", 0, 0, 0, 0, "whole number" },
	{ "default", "as", "a", 10, 10, 2, 0, "greater than the renew" },
	{ "default", "as", "a", 15, 2.4, 2, 0, "1.2 x the retry period" },
	{ "default", "as", "a", 15, 10, 0, 0, "retry period must be" },
	{ "default", "as", "a", 15, NAN, 2, 0, "greater than the renew" },
};

START_TEST(test_options)
{
	struct leader_options o;
	char	 err[256] = "";
	int	 rc;

	memset(&o, 0, sizeof o);
	o.ns = opt_rows[_i].ns;
	o.name = opt_rows[_i].name;
	o.identity = opt_rows[_i].id;
	o.lease_duration = opt_rows[_i].dur;
	o.renew_deadline = opt_rows[_i].deadline;
	o.retry_period = opt_rows[_i].retry;
	rc = leader_options_check(&o, err, sizeof err);
	if (opt_rows[_i].ok)
		ck_assert_msg(rc == 0, "row %d: %s", _i, err);
	else {
		ck_assert_int_eq(rc, -AS_EINVAL);
		ck_assert_msg(strstr(err, opt_rows[_i].err) != NULL,
		    "row %d: %s", _i, err);
	}
}
END_TEST

START_TEST(test_options_identity_long)
{
	struct leader_options o = { "default", "as", NULL, 15, 10, 2 };
	char	 id[LEADER_IDENTITY_MAX + 2], err[256];

	memset(id, 'x', sizeof id - 1);
	id[sizeof id - 1] = '\0';
	o.identity = id;
	ck_assert_int_eq(leader_options_check(&o, err, sizeof err),
	    -AS_EINVAL);
	id[LEADER_IDENTITY_MAX] = '\0';
	ck_assert_int_eq(leader_options_check(&o, err, sizeof err), 0);
}
END_TEST

START_TEST(test_default_namespace)
{
	char	 dir[64], path[96], out[64];

	snprintf(dir, sizeof dir, "/tmp/check_leader.%d", (int)getpid());
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	unsetenv("POD_NAMESPACE");
	leader_default_namespace(dir, out, sizeof out);
	ck_assert_str_eq(out, "default");	/* no file */
	snprintf(path, sizeof path, "%s/namespace", dir);
	tu_write_file(path, "agents\n");
	leader_default_namespace(dir, out, sizeof out);
	ck_assert_str_eq(out, "agents");
	setenv("POD_NAMESPACE", "from-env", 1);
	leader_default_namespace(dir, out, sizeof out);
	ck_assert_str_eq(out, "from-env");
	unsetenv("POD_NAMESPACE");
	tu_write_file(path, "\n");
	leader_default_namespace(dir, out, sizeof out);
	ck_assert_str_eq(out, "default");	/* empty file */
	unlink(path);
	rmdir(dir);
}
END_TEST

/* ---- pure: the Lease's JSON ---- */

static const char lease_full[] =
    "{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\","
    "\"metadata\":{\"name\":\"as\",\"namespace\":\"default\","
    "\"resourceVersion\":\"42\"},\"spec\":{\"holderIdentity\":\"pod-a\","
    "\"leaseDurationSeconds\":15,"
    "\"acquireTime\":\"2026-11-25T17:34:45.123456Z\","
    "\"renewTime\":\"2026-11-25T17:35:01.000001Z\","
    "\"leaseTransitions\":3}}";

START_TEST(test_parse_full)
{
	struct leader_record r;
	char	 err[160];

	ck_assert_int_eq(leader_record_parse(lease_full, strlen(lease_full),
	    &r, err, sizeof err), 0);
	ck_assert_str_eq(r.holder, "pod-a");
	ck_assert_int_eq(r.duration, 15);
	ck_assert_str_eq(r.acquire, "2026-11-25T17:34:45.123456Z");
	ck_assert_str_eq(r.renew, "2026-11-25T17:35:01.000001Z");
	ck_assert_int_eq(r.transitions, 3);
	ck_assert_str_eq(r.rv, "42");
}
END_TEST

static const struct {
	const char	*body;
	int		 ok;
	const char	*holder;	/* when ok */
	const char	*err;		/* when not */
} parse_rows[] = {
	/* A Lease just created by someone else: an empty spec. */
	{ "{\"metadata\":{\"resourceVersion\":\"1\"},\"spec\":{}}", 1, "",
	    NULL },
	{ "{\"metadata\":{}}", 1, "", NULL },
	{ "{\"spec\":{\"holderIdentity\":null}}", 1, "", NULL },
	{ "{\"spec\":{\"holderIdentity\":\"\",\"leaseDurationSeconds\":1}}",
	    1, "", NULL },
	{ "not json", 0, NULL, "not a JSON object" },
	{ "[1]", 0, NULL, "not a JSON object" },
	{ "{\"spec\":7}", 0, NULL, "spec is not an object" },
	{ "{\"spec\":{\"holderIdentity\":7}}", 0, NULL, "holderIdentity" },
	{ "{\"spec\":{\"leaseDurationSeconds\":-1}}", 0, NULL,
	    "leaseDurationSeconds" },
	{ "{\"spec\":{\"leaseDurationSeconds\":1.5}}", 0, NULL,
	    "leaseDurationSeconds" },
	{ "{\"spec\":{\"leaseDurationSeconds\":\"15\"}}", 0, NULL,
	    "leaseDurationSeconds" },
	{ "{\"spec\":{\"leaseTransitions\":1e12}}", 0, NULL,
	    "leaseTransitions" },
	{ "{\"spec\":{\"renewTime\":false}}", 0, NULL, "renewTime" },
	{ "{\"metadata\":{\"resourceVersion\":5}}", 0, NULL,
	    "resourceVersion" },
};

START_TEST(test_parse_rows)
{
	struct leader_record r;
	char	 err[160] = "";
	int	 rc;

	rc = leader_record_parse(parse_rows[_i].body,
	    strlen(parse_rows[_i].body), &r, err, sizeof err);
	if (parse_rows[_i].ok) {
		ck_assert_msg(rc == 0, "row %d: %s", _i, err);
		ck_assert_str_eq(r.holder, parse_rows[_i].holder);
	} else {
		ck_assert_int_eq(rc, -AS_EPROTO);
		ck_assert_msg(strstr(err, parse_rows[_i].err) != NULL,
		    "row %d: %s", _i, err);
	}
}
END_TEST

START_TEST(test_parse_holder_too_long)
{
	struct leader_record r;
	char	*body, id[LEADER_IDENTITY_MAX + 2], err[160];

	memset(id, 'h', sizeof id - 1);
	id[sizeof id - 1] = '\0';
	body = xasprintf("{\"spec\":{\"holderIdentity\":\"%s\"}}", id);
	ck_assert_int_eq(leader_record_parse(body, strlen(body), &r, err,
	    sizeof err), -AS_EPROTO);
	free(body);
}
END_TEST

START_TEST(test_body_round_trip)
{
	struct leader_record a, b;
	char	*s, err[160];

	memset(&a, 0, sizeof a);
	as_strlcpy(a.holder, "pod-\"b\"", sizeof a.holder);
	a.duration = 15;
	as_strlcpy(a.acquire, "2026-11-25T17:34:45.123456Z", sizeof a.acquire);
	as_strlcpy(a.renew, "2026-11-25T17:34:47.000000Z", sizeof a.renew);
	a.transitions = 7;
	as_strlcpy(a.rv, "99", sizeof a.rv);
	s = leader_record_body("ns1", "lease1", &a);
	ck_assert_ptr_nonnull(strstr(s, "\"apiVersion\":\"coordination.k8s.io"
	    "/v1\""));
	ck_assert_ptr_nonnull(strstr(s, "\"kind\":\"Lease\""));
	ck_assert_ptr_nonnull(strstr(s, "\"name\":\"lease1\""));
	ck_assert_ptr_nonnull(strstr(s, "\"namespace\":\"ns1\""));
	ck_assert_ptr_nonnull(strstr(s, "\"resourceVersion\":\"99\""));
	ck_assert_int_eq(leader_record_parse(s, strlen(s), &b, err,
	    sizeof err), 0);
	free(s);
	ck_assert(leader_record_same(&a, &b));
	ck_assert_str_eq(b.rv, "99");

	/* Released: the empty holder is written, not left out. */
	a.holder[0] = '\0';
	a.rv[0] = '\0';
	s = leader_record_body("ns1", "lease1", &a);
	ck_assert_ptr_nonnull(strstr(s, "\"holderIdentity\":\"\""));
	ck_assert_ptr_null(strstr(s, "resourceVersion"));
	free(s);
}
END_TEST

/* ---- pure: the observed-change clock ---- */

static struct leader_record
rec(const char *holder, long duration, const char *renew, long transitions,
    const char *rv)
{
	struct leader_record r;

	memset(&r, 0, sizeof r);
	as_strlcpy(r.holder, holder, sizeof r.holder);
	r.duration = duration;
	as_strlcpy(r.acquire, "2026-01-01T00:00:00.000000Z", sizeof r.acquire);
	as_strlcpy(r.renew, renew, sizeof r.renew);
	r.transitions = transitions;
	as_strlcpy(r.rv, rv, sizeof r.rv);
	return (r);
}

START_TEST(test_expiry_observed_time)
{
	struct leader_observation obs;
	struct leader_record r;

	memset(&obs, 0, sizeof obs);
	ck_assert(!leader_may_take(&obs, "a", 1e9));	/* nothing read */

	/*
	 * The server's renewTime is from 2000: ignored.  Only the time we
	 * saw the record change counts (client-go: observedTime).
	 */
	r = rec("b", 15, "2000-01-01T00:00:00.000000Z", 0, "1");
	ck_assert_int_eq(leader_observe(&obs, &r, 100), 1);
	ck_assert(!leader_may_take(&obs, "a", 100));
	ck_assert(!leader_may_take(&obs, "a", 114.999));
	ck_assert(leader_may_take(&obs, "a", 115));

	/* The same record read again: the clock does not move. */
	r = rec("b", 15, "2000-01-01T00:00:00.000000Z", 0, "1");
	ck_assert_int_eq(leader_observe(&obs, &r, 110), 0);
	ck_assert(leader_may_take(&obs, "a", 115));
	ck_assert_double_eq(obs.at, 100);

	/* A renewal: the clock restarts at our sighting. */
	r = rec("b", 15, "2000-01-01T00:00:02.000000Z", 0, "2");
	ck_assert_int_eq(leader_observe(&obs, &r, 112), 1);
	ck_assert(!leader_may_take(&obs, "a", 126.9));
	ck_assert(leader_may_take(&obs, "a", 127));

	/* Metadata only (a label): new version, same clock. */
	r = rec("b", 15, "2000-01-01T00:00:02.000000Z", 0, "3");
	ck_assert_int_eq(leader_observe(&obs, &r, 120), 0);
	ck_assert_str_eq(obs.rec.rv, "3");
	ck_assert_double_eq(obs.at, 112);

	/* The holder's own duration counts, not ours. */
	r = rec("b", 40, "2000-01-01T00:00:02.000000Z", 0, "4");
	ck_assert_int_eq(leader_observe(&obs, &r, 130), 1);
	ck_assert(!leader_may_take(&obs, "a", 169));
	ck_assert(leader_may_take(&obs, "a", 170));

	/* Our own name: ours to renew at once (a restart, a slow path). */
	ck_assert(leader_may_take(&obs, "b", 130));
}
END_TEST

START_TEST(test_expiry_released)
{
	struct leader_observation obs;
	struct leader_record r;

	memset(&obs, 0, sizeof obs);
	r = rec("b", 15, "2026-01-01T00:00:00.000000Z", 4, "9");
	(void)leader_observe(&obs, &r, 100);
	ck_assert(!leader_may_take(&obs, "a", 101));
	/* Released: holder "", duration 1; free at once. */
	r = rec("", 1, "2026-01-01T00:00:01.000000Z", 4, "10");
	ck_assert_int_eq(leader_observe(&obs, &r, 101), 1);
	ck_assert(leader_may_take(&obs, "a", 101));
	/* No duration at all: expired as soon as seen. */
	r = rec("c", 0, "2026-01-01T00:00:02.000000Z", 5, "11");
	(void)leader_observe(&obs, &r, 102);
	ck_assert(leader_may_take(&obs, "a", 102));
}
END_TEST

START_TEST(test_record_next)
{
	struct leader_record old, out;
	double	 t;

	/* Taking over from b: acquire now, one more transition. */
	old = rec("b", 15, "2026-01-01T00:00:05.000000Z", 4, "17");
	leader_record_next(&old, "a", 3, 1795628085.25, &out);
	ck_assert_str_eq(out.holder, "a");
	ck_assert_int_eq(out.duration, 3);
	ck_assert_str_eq(out.renew, "2026-11-25T17:34:45.250000Z");
	ck_assert_str_eq(out.acquire, out.renew);
	ck_assert_int_eq(out.transitions, 5);
	ck_assert_str_eq(out.rv, "17");
	ck_assert_int_eq(as_parse_rfc3339(out.renew, &t), 0);
	ck_assert(fabs(t - 1795628085.25) < 1e-6);

	/* Renewing our own: acquire and transitions kept. */
	old = out;
	leader_record_next(&old, "a", 3, 1795628087.5, &out);
	ck_assert_str_eq(out.acquire, "2026-11-25T17:34:45.250000Z");
	ck_assert_str_eq(out.renew, "2026-11-25T17:34:47.500000Z");
	ck_assert_int_eq(out.transitions, 5);

	/* After a release (holder ""): a transition. */
	old = rec("", 1, "2026-01-01T00:00:05.000000Z", 5, "20");
	leader_record_next(&old, "a", 3, 1795628090, &out);
	ck_assert_int_eq(out.transitions, 6);
	ck_assert_str_eq(out.acquire, "2026-11-25T17:34:50.000000Z");
}
END_TEST

START_TEST(test_record_released)
{
	struct leader_record cur, out;

	cur = rec("a", 15, "2026-01-01T00:00:05.000000Z", 5, "21");
	leader_record_released(&cur, 1795628090.000001, &out);
	ck_assert_str_eq(out.holder, "");
	ck_assert_int_eq(out.duration, 1);
	ck_assert_str_eq(out.renew, "2026-11-25T17:34:50.000001Z");
	ck_assert_str_eq(out.acquire, out.renew);
	ck_assert_int_eq(out.transitions, 5);
	ck_assert_str_eq(out.rv, "21");
}
END_TEST

/* ---- against kube-sim ---- */

static struct ev_loop *loop;
static struct tu_kubesim ks;
static char	 lease[64];	/* this test's Lease name */
static int	 lease_seq;

struct cand {
	struct k8s_client *k8s;
	struct leader	*l;
	int		 started;
	int		 stopped;
	int		 released;
	int		 release_err;
	double		 started_at;	/* mono */
	double		 stopped_at;
};

static void
ks_setup(void)
{
	(void)tu_kubesim_start(&ks, NULL);
}

static void
ks_teardown(void)
{
	tu_kubesim_stop(&ks);
}

static void
test_setup(void)
{
	ck_assert_msg(ks.pid > 0, "tools/kube-sim/kube-sim did not start");
	ck_assert_ptr_nonnull(loop = ev_loop_new(EVFLAG_AUTO));
	tu_kubesim_reset(&ks);
	snprintf(lease, sizeof lease, "lease-%d-%d", (int)getpid(),
	    ++lease_seq);
}

static void
test_teardown(void)
{
	ev_loop_destroy(loop);
	loop = NULL;
}

static void
cand_started(struct leader *l, void *arg)
{
	struct cand	*c = arg;

	ck_assert_ptr_eq(l, c->l);
	ck_assert(leader_is_leader(l));
	c->started++;
	c->started_at = as_mono_now();
}

static void
cand_stopped(struct leader *l, void *arg)
{
	struct cand	*c = arg;

	ck_assert_ptr_eq(l, c->l);
	ck_assert(!leader_is_leader(l));
	c->stopped++;
	c->stopped_at = as_mono_now();
}

static void
cand_released(struct leader *l, int err, void *arg)
{
	struct cand	*c = arg;

	ck_assert_ptr_eq(l, c->l);
	c->released++;
	c->release_err = err;
}

/* A candidate on this test's Lease: 1 s / 0.6 s / 0.2 s. */
static void
cand_start(struct cand *c, const char *id)
{
	struct k8s_options ko;
	struct leader_options lo;
	char	 err[256];

	memset(c, 0, sizeof *c);
	memset(&ko, 0, sizeof ko);
	ko.apiserver = ks.url;
	ko.max_retries = -1;
	ko.timeout = 0.3;
	c->k8s = k8s_client_new(loop, &ko, err, sizeof err);
	ck_assert_msg(c->k8s != NULL, "%s", err);
	memset(&lo, 0, sizeof lo);
	lo.ns = "default";
	lo.name = lease;
	lo.identity = id;
	lo.lease_duration = 1;
	lo.renew_deadline = 0.6;
	lo.retry_period = 0.2;
	c->l = leader_new(c->k8s, &lo, cand_started, cand_stopped, c, err,
	    sizeof err);
	ck_assert_msg(c->l != NULL, "%s", err);
}

static void
cand_end(struct cand *c)
{
	leader_free(c->l);
	c->l = NULL;
	k8s_client_free(c->k8s);
	c->k8s = NULL;
}

/* The Lease as kube-sim has it now. */
static struct leader_record
lease_now(void)
{
	struct leader_record r;
	char	 url[256], err[160];
	char	*body = NULL;
	long	 code;

	snprintf(url, sizeof url, "%s" LEASES "/%s", ks.url, lease);
	code = tu_http("GET", url, NULL, NULL, &body);
	ck_assert_msg(code == 200, "GET lease: %ld", code);
	ck_assert_int_eq(leader_record_parse(body, strlen(body), &r, err,
	    sizeof err), 0);
	free(body);
	return (r);
}

static int
pred_one_started(void *arg)
{
	struct cand	*c = arg;

	return (c[0].started + c[1].started > 0);
}

/*
 * Two candidates, a and b, on this test's Lease; returns the one that
 * leads once one does, the other in *other.
 */
static struct cand *
pair_start(struct cand *c, struct cand **other)
{
	cand_start(&c[0], "a");
	cand_start(&c[1], "b");
	ck_assert(tu_run_until(loop, pred_one_started, c, WAIT));
	*other = c[0].started ? &c[1] : &c[0];
	return (c[0].started ? &c[0] : &c[1]);
}

/* Turns the loop for seconds, asserting at every turn: never two leaders. */
static void
run_never_two(struct cand *c, double seconds)
{
	double	 end = as_mono_now() + seconds;

	while (as_mono_now() < end) {
		ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
		ck_assert(!(leader_is_leader(c[0].l) &&
		    leader_is_leader(c[1].l)));
		usleep(2000);
	}
}

START_TEST(test_one_leader)
{
	struct cand	 c[2], *lead, *other;
	struct leader_record r;

	lead = pair_start(c, &other);
	run_never_two(c, 2.0);
	/* Renewed all along: no change of hands. */
	ck_assert_int_eq(lead->started, 1);
	ck_assert_int_eq(lead->stopped, 0);
	ck_assert_int_eq(other->started, 0);
	ck_assert(leader_is_leader(lead->l));
	r = lease_now();
	ck_assert_str_eq(r.holder, lead == &c[0] ? "a" : "b");
	ck_assert_int_eq(r.duration, 1);
	ck_assert_int_eq(r.transitions, 0);	/* created, never moved */
	ck_assert_str_eq(leader_holder(other->l), r.holder);
	cand_end(&c[0]);
	cand_end(&c[1]);
}
END_TEST

static int
pred_started(void *arg)
{
	return (((struct cand *)arg)->started > 0);
}

START_TEST(test_takeover_after_expiry)
{
	struct cand	 c[2], *lead, *other;
	struct leader_record r;
	double		 gone, took;

	lead = pair_start(c, &other);
	run_never_two(c, 0.5);
	/* The leader dies: no release, no more renewals. */
	cand_end(lead);
	gone = as_mono_now();
	ck_assert(tu_run_until(loop, pred_started, other, WAIT));
	took = other->started_at - gone;
	/*
	 * Not before the lease duration counted from the last renewal the
	 * standby saw (at most a retry period before the death).
	 */
	ck_assert_msg(took >= 1.0 - 0.2 - 0.05, "took over after %.3f s",
	    took);
	r = lease_now();
	ck_assert_str_eq(r.holder, other == &c[0] ? "a" : "b");
	ck_assert_int_eq(r.transitions, 1);
	cand_end(other);
}
END_TEST

static int
pred_released(void *arg)
{
	return (((struct cand *)arg)->released > 0);
}

START_TEST(test_release_hands_over)
{
	struct cand	 c[2], *lead, *other;
	struct leader_record r;
	double		 t;

	lead = pair_start(c, &other);
	run_never_two(c, 0.3);
	ck_assert_int_eq(leader_release(lead->l, 2.0, cand_released, lead), 0);
	/* Stopped inside the call; the completion comes later. */
	ck_assert_int_eq(lead->stopped, 1);
	ck_assert(!leader_is_leader(lead->l));
	ck_assert_int_eq(lead->released, 0);
	ck_assert_int_eq(leader_release(lead->l, 2.0, cand_released, lead),
	    -AS_EINVAL);
	t = as_mono_now();
	ck_assert(tu_run_until(loop, pred_released, lead, WAIT));
	ck_assert_int_eq(lead->release_err, 0);
	r = lease_now();
	if (other->started == 0) {
		/* Caught before the standby took it: released as written. */
		ck_assert_str_eq(r.holder, "");
		ck_assert_int_eq(r.duration, 1);
		ck_assert_int_eq(r.transitions, 0);
	}
	ck_assert(tu_run_until(loop, pred_started, other, WAIT));
	/* Without waiting for the lease duration (1 s). */
	ck_assert_msg(other->started_at - t < 0.9, "took %.3f s",
	    other->started_at - t);
	r = lease_now();
	ck_assert_str_eq(r.holder, other == &c[0] ? "a" : "b");
	ck_assert_int_eq(r.transitions, 1);
	ck_assert_int_eq(lead->released, 1);
	cand_end(lead);
	cand_end(other);
}
END_TEST

static int
pred_stopped(void *arg)
{
	return (((struct cand *)arg)->stopped > 0);
}

START_TEST(test_deadline_while_unreachable)
{
	struct cand	 c;
	double		 paused;

	cand_start(&c, "a");
	ck_assert(tu_run_until(loop, pred_started, &c, WAIT));
	tu_run_for(loop, 0.3);
	ck_assert_int_eq(tu_kubesim_admin(&ks, "POST", "/pause", NULL, NULL),
	    200);
	paused = as_mono_now();
	ck_assert(tu_run_until(loop, pred_stopped, &c, WAIT));
	/* Within the renew deadline of the last renewal, not the lease. */
	ck_assert_msg(c.stopped_at - paused <= 0.6 + 0.1,
	    "stepped down %.3f s after the outage", c.stopped_at - paused);
	ck_assert(!leader_is_leader(c.l));
	ck_assert_str_ne(leader_error(c.l), "");
	ck_assert_int_eq(tu_kubesim_admin(&ks, "POST", "/resume", NULL, NULL),
	    200);
	/* Back: the Lease is still ours, so it leads again. */
	ck_assert(tu_run_count(loop, &c.started, 2, WAIT));
	ck_assert_str_eq(leader_error(c.l), "");
	cand_end(&c);
}
END_TEST

START_TEST(test_wake_after_deadline)
{
	struct cand	 c;

	cand_start(&c, "a");
	ck_assert(tu_run_until(loop, pred_started, &c, WAIT));
	ck_assert(leader_is_leader(c.l));
	/* As a SIGSTOP would: no loop turn for longer than the deadline. */
	usleep(700000);
	ck_assert(!leader_is_leader(c.l));
	ck_assert_int_eq(c.stopped, 0);
	/* The first turn steps down before anything else runs. */
	ev_run(loop, EVRUN_NOWAIT);
	ck_assert_int_eq(c.stopped, 1);
	cand_end(&c);
}
END_TEST

/*
 * Status and Event writes ask leader_is_leader() at the moment of the
 * write, as every other write does: past the renew deadline, before any
 * timer of the elector has run (a process resumed after SIGSTOP), nothing
 * goes out.  The daemon wires them as here (daemon_may_write()); before,
 * they read a flag that only the stopped callback cleared, so both writes
 * went out.
 */
static int
leader_gate(void *arg)
{
	return (leader_is_leader(arg));
}

START_TEST(test_writes_refused_after_deadline)
{
	struct status_writer_options so;
	struct events_options eo;
	struct event_ref ref = { "agentscaler.io/v1alpha1", "AgentPool",
	    "default", "web", "uid-1" };
	struct status_writer *sw;
	struct events	*ev;
	struct tu_sink	 sk;
	struct cand	 c;

	cand_start(&c, "a");
	ck_assert(tu_run_until(loop, pred_started, &c, WAIT));
	tu_sink_init(&sk);
	memset(&so, 0, sizeof so);
	so.may_write = leader_gate;
	so.may_write_arg = c.l;
	sw = status_writer_new(&sk.sink, &so);
	memset(&eo, 0, sizeof eo);
	eo.may_write = leader_gate;
	eo.may_write_arg = c.l;
	ev = events_new(&sk.sink, &eo);
	/* Leading: both go out. */
	status_writer_set(sw, "/apis/x/a", cJSON_Parse("{\"n\":1}"));
	events_record(ev, &ref, EVENT_NORMAL, "ScaledUp", "Scale", "1");
	ck_assert_int_eq(sk.n, 2);
	tu_sink_reply(&sk, 0, 200, "{}");
	tu_sink_reply(&sk, 1, 200, "{}");
	/* As a SIGSTOP would: no loop turn for longer than the deadline. */
	usleep(700000);
	ck_assert_int_eq(c.stopped, 0);		/* no timer has run */
	status_writer_set(sw, "/apis/x/b", cJSON_Parse("{\"n\":2}"));
	status_writer_tick(sw);
	events_record(ev, &ref, EVENT_WARNING, "SourceError", "Read", "2");
	events_tick(ev);
	ck_assert_msg(sk.n == 2, "%d writes sent past the renew deadline",
	    sk.n - 2);
	status_writer_free(sw);
	events_free(ev);
	tu_sink_clear(&sk);
	cand_end(&c);
}
END_TEST

START_TEST(test_other_holder_appears)
{
	struct cand	 c;
	struct leader_record r, o;
	char	 url[256];
	char	*body;
	long	 code;

	cand_start(&c, "a");
	ck_assert(tu_run_until(loop, pred_started, &c, WAIT));
	/* Someone else writes the Lease over ours (an operator, a bug). */
	r = lease_now();
	leader_record_next(&r, "intruder", 30, as_wall_now(), &o);
	body = leader_record_body("default", lease, &o);
	snprintf(url, sizeof url, "%s" LEASES "/%s", ks.url, lease);
	code = tu_http("PUT", url, "application/json", body, NULL);
	free(body);
	ck_assert_int_eq(code, 200);
	/* The next renewal gets 409, reads, and steps down at once. */
	ck_assert(tu_run_until(loop, pred_stopped, &c, 0.55));
	ck_assert_str_eq(leader_holder(c.l), "intruder");
	/* ... and does not take it back before 30 s without change. */
	tu_run_for(loop, 0.5);
	ck_assert_int_eq(c.started, 1);
	cand_end(&c);
}
END_TEST

/* leader_get_stats(): what the daemon's /metrics and /status show. */
START_TEST(test_stats)
{
	struct cand	 c;
	struct leader_stats st;
	struct leader_record r, o;
	char	 url[256];
	char	*body;

	cand_start(&c, "a");
	leader_get_stats(c.l, &st);
	ck_assert_str_eq(st.ns, "default");
	ck_assert_str_eq(st.name, lease);
	ck_assert_str_eq(st.identity, "a");
	ck_assert_str_eq(st.holder, "");
	ck_assert(!st.leader && !st.observed);
	ck_assert(st.duration == 1 && st.deadline == 0.6 && st.retry == 0.2);
	ck_assert(st.started == 0 && st.stopped == 0 && st.errors == 0);
	ck_assert(tu_run_until(loop, pred_started, &c, WAIT));
	leader_get_stats(c.l, &st);
	ck_assert(st.leader && st.observed);
	ck_assert_str_eq(st.holder, "a");
	ck_assert(st.renewed_ago >= 0 && st.renewed_ago < 0.6);
	ck_assert(st.unchanged_for >= 0);
	ck_assert_int_eq(st.started, 1);
	/* Another holder: a change of hands, a 409, stepping down. */
	r = lease_now();
	leader_record_next(&r, "intruder", 30, as_wall_now(), &o);
	body = leader_record_body("default", lease, &o);
	snprintf(url, sizeof url, "%s" LEASES "/%s", ks.url, lease);
	ck_assert_int_eq(tu_http("PUT", url, "application/json", body, NULL),
	    200);
	free(body);
	ck_assert(tu_run_until(loop, pred_stopped, &c, 0.55));
	leader_get_stats(c.l, &st);
	ck_assert(!st.leader && st.renewed_ago == 0);
	ck_assert_str_eq(st.holder, "intruder");
	ck_assert_int_eq(st.transitions, r.transitions + 1);
	ck_assert_int_eq(st.stopped, 1);
	ck_assert(st.holder_changes >= 1);
	cand_end(&c);
}
END_TEST

START_TEST(test_release_not_leading)
{
	struct cand	 c;

	cand_start(&c, "a");
	/* Before the first attempt: nothing to release, done later. */
	ck_assert_int_eq(leader_release(c.l, 1.0, cand_released, &c), 0);
	ck_assert_int_eq(c.released, 0);
	ck_assert(tu_run_until(loop, pred_released, &c, WAIT));
	ck_assert_int_eq(c.release_err, 0);
	ck_assert_int_eq(c.started, 0);
	ck_assert_int_eq(c.stopped, 0);
	cand_end(&c);
	leader_free(NULL);
	ck_assert(!leader_is_leader(NULL));
}
END_TEST

static Suite *
leader_suite(void)
{
	Suite	*s = suite_create("leader");
	TCase	*tc;

	tc = tu_tcase(s, "pure", 0, NULL, NULL, NULL, NULL);
	tcase_add_loop_test(tc, test_options, 0,
	    (int)AS_ARRAY_SIZE(opt_rows));
	tcase_add_test(tc, test_options_identity_long);
	tcase_add_test(tc, test_default_namespace);
	tcase_add_test(tc, test_parse_full);
	tcase_add_loop_test(tc, test_parse_rows, 0,
	    (int)AS_ARRAY_SIZE(parse_rows));
	tcase_add_test(tc, test_parse_holder_too_long);
	tcase_add_test(tc, test_body_round_trip);
	tcase_add_test(tc, test_expiry_observed_time);
	tcase_add_test(tc, test_expiry_released);
	tcase_add_test(tc, test_record_next);
	tcase_add_test(tc, test_record_released);

	tc = tu_tcase(s, "kube-sim", 120, ks_setup, ks_teardown, test_setup,
	    test_teardown);
	tcase_add_test(tc, test_one_leader);
	tcase_add_test(tc, test_takeover_after_expiry);
	tcase_add_test(tc, test_release_hands_over);
	tcase_add_test(tc, test_deadline_while_unreachable);
	tcase_add_test(tc, test_wake_after_deadline);
	tcase_add_test(tc, test_other_holder_appears);
	tcase_add_test(tc, test_writes_refused_after_deadline);
	tcase_add_test(tc, test_release_not_leading);
	tcase_add_test(tc, test_stats);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(leader_suite()));
}
