/*
 * events.h: an events.k8s.io/v1 Event recorder for the AgentPool and
 * AgentQuota objects, de-duplicated the way client-go's events broadcaster
 * does it (k8s.io/client-go/tools/events/event_broadcaster.go): events with
 * the same key (reporting controller, regarding object, action, reason) are
 * one Event; the first occurrence creates it, repeats turn it into a series
 * whose {count, lastObservedTime} are merge-PATCHed onto it; a series not
 * seen for finish_after seconds (6 min upstream) ends, and the next
 * occurrence creates a new Event.  Unlike upstream, which writes a growing
 * series only every 30 min, repeats are written at most every
 * series_interval seconds per Event, so the count an operator sees is
 * fresh.
 *
 * Never blocks, bounded: at most cache_size keys (least recently used
 * forgotten), creates limited by a token bucket (qps, burst; an event over
 * the limit is dropped and counted), a write that fails is logged once (until
 * one succeeds again) and not retried, except a series PATCH of an Event
 * that is gone (404), which re-creates it as upstream does.  Nothing is
 * written while may_write() says no (a standby replica, or a leader past
 * its renew deadline): it is asked at the moment of each write.
 *
 * Ownership: options and the strings passed to events_record() are copied;
 * the sink is borrowed until events_free(), which cancels what is in
 * flight.
 */
#ifndef AGENTSCALER_EVENTS_H
#define AGENTSCALER_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "agentscaler/k8s/k8s.h"

struct events;

enum event_type { EVENT_NORMAL, EVENT_WARNING };

/* The object an event is about (events.k8s.io/v1 regarding). */
struct event_ref {
	const char	*api_version;	/* "agentscaler.io/v1alpha1" */
	const char	*kind;		/* "AgentPool" */
	const char	*ns;
	const char	*name;
	const char	*uid;		/* may be NULL or "" */
};

struct events_options {
	const char	*controller;	/* reportingController */
	const char	*instance;	/* reportingInstance (<= 128) */
	double		 qps;		/* creates per second; default 5 */
	double		 burst;		/* default 25 */
	size_t		 cache_size;	/* keys kept; default 4096 */
	double		 series_interval;	/* s; default 10 */
	double		 finish_after;	/* s; default 360 */
	/* 1 when this process may write now; NULL: always write. */
	int		 (*may_write)(void *arg);
	void		*may_write_arg;
	double		 (*clock)(void);	/* wall seconds; as_wall_now */
	struct ev_loop	*loop;		/* NULL: the caller calls
					   events_tick() */
};

struct events_stats {
	uint64_t	 recorded;	/* events_record() calls that may write */
	uint64_t	 created;	/* Events created (POST 2xx) */
	uint64_t	 patched;	/* series written (PATCH 2xx) */
	uint64_t	 dropped;	/* over the rate limit */
	uint64_t	 failed;	/* writes refused or failed */
	size_t		 cached;	/* keys in the cache */
};

/* Returns a recorder writing through sink (borrowed). */
struct events	*events_new(const struct k8s_sink *sink,
		    const struct events_options *);
/* Cancels the writes in flight and frees; NULL does nothing. */
void		 events_free(struct events *);
/*
 * Leadership lost: cancels every write in flight (no retry may go out
 * later) and forgets those entries; the next occurrence starts afresh.
 */
void		 events_hold(struct events *);
/*
 * Records one occurrence: creates the Event, or counts a repeat into its
 * series.  note is printf-formatted (cut to 1 kB).  ref->ns and ref->name
 * are required; the Event lives in ref->ns.
 */
void		 events_record(struct events *, const struct event_ref *ref,
		    enum event_type, const char *reason, const char *action,
		    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/*
 * Writes the series updates that are due and ends the series that are
 * over.  With a loop in the options a timer calls it every second.
 */
void		 events_tick(struct events *);
void		 events_get_stats(const struct events *, struct events_stats *);

#endif
