/*
 * leader.h: leader election on a coordination.k8s.io/v1 Lease, on the
 * caller's libev loop (k8s/leader.c).  The algorithm is client-go's
 * (kubernetes/client-go tools/leaderelection/leaderelection.go); the code
 * and its words are ours.
 *
 * A candidate reads the Lease and creates it when missing.  It takes the
 * Lease only when the holder is empty (a voluntary release), is itself, or
 * has not changed for leaseDurationSeconds measured on the candidate's own
 * monotonic clock from the moment it observed the change (never from the
 * server's renewTime: clocks of two machines may disagree by any offset).
 * Every write carries the resourceVersion read, so of two racing
 * candidates one gets 409 and stays a candidate.  The leader rewrites
 * renewTime every retry period and leads only while its last successful
 * write was sent less than renew_deadline ago: since renew_deadline <
 * lease_duration, it stops before any other candidate can take over.
 *
 * Ownership: leader_new() copies its options.  The struct leader and what
 * the accessors return belong to the module.  The started and stopped
 * callbacks run on the loop, never inside libcurl; leader_free() must not
 * be called from inside them.
 */
#ifndef AGENTSCALER_LEADER_H
#define AGENTSCALER_LEADER_H

#include <stddef.h>
#include <stdint.h>

struct k8s_client;
struct leader;

#define LEADER_DEFAULT_DURATION	15.0	/* s; component-base's defaults */
#define LEADER_DEFAULT_DEADLINE	10.0
#define LEADER_DEFAULT_RETRY	2.0
#define LEADER_JITTER		1.2	/* client-go's JitterFactor */
#define LEADER_IDENTITY_MAX	255

struct leader_options {
	const char	*ns;		/* the Lease's namespace */
	const char	*name;		/* the Lease's name */
	const char	*identity;	/* holderIdentity of this process */
	double		 lease_duration;	/* s, a whole number >= 1 */
	double		 renew_deadline;	/* s, < lease_duration */
	double		 retry_period;	/* s, renew_deadline/1.2 at most */
};

/* The spec of a Lease as read or to be written, plus its version. */
struct leader_record {
	char		 holder[LEADER_IDENTITY_MAX + 1];	/* "": none */
	long		 duration;	/* leaseDurationSeconds; 0 absent */
	char		 acquire[64];	/* acquireTime as the server wrote it */
	char		 renew[64];	/* renewTime, likewise */
	long		 transitions;	/* leaseTransitions */
	char		 rv[64];	/* metadata.resourceVersion */
};

/* What a candidate knows of the Lease: a record and when it changed. */
struct leader_observation {
	int			 valid;	/* a record was read */
	struct leader_record	 rec;
	double			 at;	/* monotonic: when it last changed */
};

typedef void	 leader_fn(struct leader *, void *arg);
/* err: 0 when the Lease was released (or was not ours), else -AS_E... */
typedef void	 leader_released_fn(struct leader *, int err, void *arg);

/*
 * Checks client-go's rules: a namespace, a name and an identity (at most
 * LEADER_IDENTITY_MAX bytes), lease_duration a whole number of seconds,
 * lease_duration > renew_deadline > LEADER_JITTER * retry_period > 0.
 * Returns 0 or -AS_EINVAL with the reason in err.
 */
int	 leader_options_check(const struct leader_options *, char *err,
	    size_t errlen);

/*
 * The namespace for the Lease when none is given: $POD_NAMESPACE, else
 * the service account's namespace file in dir (NULL: the in-cluster
 * path), else "default".  Writes it into out.
 */
void	 leader_default_namespace(const char *dir, char *out, size_t outlen);

/*
 * A candidate for the Lease, campaigning from the next loop turn on.
 * started runs when this process becomes the leader, stopped when it stops
 * (renew deadline passed, the Lease seen in other hands, or
 * leader_release()).  Returns NULL with the reason in err for bad options.
 * The client is borrowed and must outlive the leader; give it one of its
 * own (no retries, a timeout under the renew deadline) so that renewals
 * never wait behind other requests.
 */
struct leader	*leader_new(struct k8s_client *, const struct leader_options *,
		    leader_fn *started, leader_fn *stopped, void *arg,
		    char *err, size_t errlen);
/* Stops campaigning and frees; runs no callback.  NULL does nothing. */
void		 leader_free(struct leader *);

/*
 * 1 while this process leads: it won the Lease and its last successful
 * write was sent less than renew_deadline ago, measured now on the
 * monotonic clock.  So a process that wakes from SIGSTOP sees 0 before any
 * of its timers has run.
 */
int		 leader_is_leader(const struct leader *);

/*
 * Stops campaigning; when leading, runs stopped first (inside this call),
 * then, when the Lease is ours, writes it released as client-go's
 * ReleaseOnCancel does (holderIdentity "", leaseDurationSeconds 1, times
 * now, transitions kept), so another candidate takes over at once.  done
 * runs exactly once, never inside this call: after the write, or after
 * timeout seconds with -AS_ETIMEDOUT.  Returns 0, or -AS_EINVAL when
 * called twice.
 */
int		 leader_release(struct leader *, double timeout,
		    leader_released_fn *done, void *arg);

/* The holder last observed ("" when none or not read yet); borrowed. */
const char	*leader_holder(const struct leader *);
/* 1 once the Lease was read (or written) at least once. */
int		 leader_observed(const struct leader *);
/* The last error talking to the API server, "" when the last call worked. */
const char	*leader_error(const struct leader *);

/*
 * What the elector knows, for the daemon's /metrics and /status (which
 * the scheduler writes): the strings are borrowed from the leader and
 * valid until its next loop turn.
 */
struct leader_stats {
	const char	*ns;		/* the Lease's */
	const char	*name;
	const char	*identity;	/* this process's */
	const char	*holder;	/* leader_holder() */
	const char	*error;		/* leader_error() */
	int		 leader;	/* leader_is_leader() now */
	int		 observed;	/* leader_observed() */
	long		 transitions;	/* leaseTransitions last observed */
	double		 unchanged_for;	/* s since it changed; if observed */
	double		 renewed_ago;	/* s since renewing; if leader */
	double		 duration;	/* the options, s */
	double		 deadline;
	double		 retry;
	uint64_t	 holder_changes;	/* holder changes observed */
	uint64_t	 started;	/* times this process started leading */
	uint64_t	 stopped;	/* ... and stopped */
	uint64_t	 errors;	/* Lease requests that failed */
};

/* Fills st from the elector's state, read now. */
void		 leader_get_stats(const struct leader *, struct leader_stats *);

/*
 * Pure: reads a Lease object.  Missing spec fields read as empty or 0.
 * Returns 0 or -AS_EPROTO with the reason in err.
 */
int	 leader_record_parse(const char *body, size_t len,
	    struct leader_record *, char *err, size_t errlen);
/*
 * Pure: the Lease object for ns/name holding rec (with rec->rv as its
 * resourceVersion when not empty), as a new string the caller frees.
 */
char	*leader_record_body(const char *ns, const char *name,
	    const struct leader_record *);
/* Pure: 1 when the two specs are the same (resourceVersions ignored). */
int	 leader_record_same(const struct leader_record *,
	    const struct leader_record *);

/*
 * Pure: takes a fresh read into obs; the change time moves to now only
 * when the spec differs from the one observed.  Returns 1 on a change.
 */
int	 leader_observe(struct leader_observation *,
	    const struct leader_record *, double now);
/*
 * Pure: 1 when identity may write the Lease now: it holds it, nobody
 * does, or the record has not changed for its leaseDurationSeconds.
 */
int	 leader_may_take(const struct leader_observation *,
	    const char *identity, double now);
/*
 * Pure: the record identity writes to take or renew the Lease over old:
 * renewTime now; acquireTime and transitions kept when identity held it,
 * else acquireTime now and transitions + 1.  The resourceVersion is old's.
 */
void	 leader_record_next(const struct leader_record *old,
	    const char *identity, long duration, double wall_now,
	    struct leader_record *out);
/* Pure: the released form of cur (see leader_release()). */
void	 leader_record_released(const struct leader_record *cur,
	    double wall_now, struct leader_record *out);

#endif
