/*
 * autoscale.h: scale-mode maths (DESIGN.md section 8) as pure functions of
 * (state, inputs, now).  No I/O and no clock: the caller passes a monotonic
 * `now`, so unit tests and the trace simulator drive it with a virtual one.
 *
 * Ownership: the state is a plain value owned by the caller (embedded in the
 * pool); nothing here allocates.
 */
#ifndef AGENTSCALER_AUTOSCALE_H
#define AGENTSCALER_AUTOSCALE_H

#include <stddef.h>

struct autoscale_params {
	long	 min_replicas;
	long	 max_replicas;
	long	 tasks_per_replica;		/* >= 1 */
	long	 activation_backlog;		/* wake from zero when above */
	double	 cooldown_seconds;		/* idle time before zero */
	double	 stabilization_seconds;		/* look-back on the way down */
	long	 max_scale_up_step;		/* 0: jump to the need */
};

#define AUTOSCALE_WINDOW 64

/*
 * Zeroed is the initial state.  The window grows on the heap as samples
 * come, up to AUTOSCALE_WINDOW (a pool without stabilization holds one or
 * two: 10,000 pools do not carry 1 KB each, issue 15);
 * autoscale_state_reset() frees it.
 */
struct autoscale_state {
	int	 started;		/* 0 until the first evaluation */
	long	 desired;		/* last decision */
	double	 last_active;		/* last time backlog > activation */
	size_t	 nwindow;
	size_t	 capwindow;		/* allocated */
	struct autoscale_sample {
		double	 t;
		long	 need;
	}	*window;		/* clamped needs, oldest first */
};

/* Frees the window and zeroes st (the initial state again). */
void	 autoscale_state_reset(struct autoscale_state *st);

struct autoscale_input {
	int	 source_ok;	/* 0: the source could not be read */
	double	 backlog;	/* ready (+ in flight when counted) */
	double	 in_flight;	/* tasks being worked on; 0 if unknown */
	long	 current;	/* replicas the target has now (spec) */
	long	 quota_cap;	/* most replicas the quota allows; -1: none */
	double	 now;		/* monotonic seconds */
};

enum autoscale_reason {
	AUTOSCALE_HOLD,		/* no change */
	AUTOSCALE_ACTIVATE,	/* from zero */
	AUTOSCALE_UP,
	AUTOSCALE_UP_CAPPED,	/* up, limited by maxScaleUpStep */
	AUTOSCALE_DOWN,
	AUTOSCALE_STABILIZING,	/* would go down, held by the window */
	AUTOSCALE_COOLDOWN,	/* would go to zero, held by the cooldown */
	AUTOSCALE_TO_ZERO,
	AUTOSCALE_SOURCE_ERROR,	/* held because the source failed */
	AUTOSCALE_QUOTA,	/* clamped by the namespace quota */
	AUTOSCALE_CLAMP		/* moved to fit min/max */
};

struct autoscale_decision {
	long			 desired;
	long			 need;
	enum autoscale_reason	 reason;
};

/*
 * One evaluation: updates the state and fills the decision.  The desired
 * count is never below ceil(in_flight / tasksPerReplica) (clamped to max),
 * never zero because of a source error, and never above quota_cap.
 */
void	 autoscale_decide(struct autoscale_state *,
	    const struct autoscale_params *, const struct autoscale_input *,
	    struct autoscale_decision *);

/* Returns a static name for a reason ("activate", "cooldown", ...). */
const char *autoscale_reason_name(enum autoscale_reason);

#endif
