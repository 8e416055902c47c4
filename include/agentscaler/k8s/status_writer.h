/*
 * status_writer.h: writes the status of custom objects (AgentPool,
 * AgentQuota) through their status subresource: a merge-PATCH of
 * {"status": {...}} on <object path>/status, only when the status differs
 * from the one last written (or, before the first write, from the one the
 * object was seen with), coalesced (the latest status wins while a write is
 * in flight or waiting), at most one write per object every min_interval
 * seconds, and all objects together under one token bucket (qps, burst).
 * Nothing is written while may_write() says no: asked at the moment of each
 * write, so a leader past its renew deadline writes nothing even before its
 * timers have run.  A failed write is logged once (until a write succeeds)
 * and tried again after a backoff; 404 means the object is gone and
 * forgets it.  Any other 4xx but 401, 408, 409 and 429 (a 422 from the
 * CRD's schema, a 400) is permanent for that content: not retried until a
 * different status is set, logged once, counted as rejected and reported
 * through the rejected callback.
 *
 * Ownership: status_writer_set() takes the cJSON it is given; paths are
 * copied; what status_writer_current() returns is borrowed until the next
 * call into the writer.  The sink is borrowed until status_writer_free(),
 * which cancels the write in flight.
 */
#ifndef AGENTSCALER_STATUS_WRITER_H
#define AGENTSCALER_STATUS_WRITER_H

#include <stdint.h>

#include "agentscaler/k8s/k8s.h"

struct cJSON;
struct status_writer;

struct status_writer_options {
	double		 min_interval;	/* s per object; default 2 */
	double		 qps;		/* all objects; default 10 */
	double		 burst;		/* default 20 */
	/* 1 when this process may write now; NULL: always write. */
	int		 (*may_write)(void *arg);
	void		*may_write_arg;
	double		 (*clock)(void);	/* monotonic; as_mono_now */
	/*
	 * A status refused for good (code, the server's message), once per
	 * content; NULL: none.  Runs inside the write's completion.
	 */
	void		 (*rejected)(void *arg, const char *path, long code,
			    const char *msg);
	void		*rejected_arg;
	struct ev_loop	*loop;		/* NULL: the caller calls
					   status_writer_tick() */
};

struct status_writer_stats {
	uint64_t	 writes;	/* PATCHes that succeeded */
	uint64_t	 unchanged;	/* statuses set equal to the last */
	uint64_t	 failed;	/* transient failures, retried */
	uint64_t	 rejected;	/* refused for good, not retried */
	uint64_t	 visits;	/* entries the ticks looked at */
};

struct status_writer *status_writer_new(const struct k8s_sink *,
		    const struct status_writer_options *);
void		 status_writer_free(struct status_writer *);
/*
 * The status the object at path (".../agentpools/NAME", without
 * "/status") should have; takes status.
 */
void		 status_writer_set(struct status_writer *, const char *path,
		    struct cJSON *status);
/*
 * The status the object was seen with (an informer's copy; borrowed), the
 * base of the comparison until the first write.  NULL: none.
 */
void		 status_writer_seen(struct status_writer *, const char *path,
		    const struct cJSON *status);
/* The object is gone: forget it (a write in flight is cancelled). */
void		 status_writer_forget(struct status_writer *, const char *path);
/* The latest status set, written or seen for path, or NULL. */
const struct cJSON *status_writer_current(const struct status_writer *,
		    const char *path);
/* Starts the writes that are due; a timer calls it with a loop. */
void		 status_writer_tick(struct status_writer *);
/*
 * Leadership lost: cancels every write in flight, so no retry goes out
 * later; what was being sent is kept as wanted and written once leading
 * again (unless something newer is set meanwhile).
 */
void		 status_writer_hold(struct status_writer *);
void		 status_writer_get_stats(const struct status_writer *,
		    struct status_writer_stats *);

#endif
