/*
 * scaler_later.h: the pending-poll bookkeeping of scaler.h's contract,
 * shared by the sources (scalers/later.c).  One struct scaler_later,
 * embedded in the instance, remembers the completion of the poll in
 * progress and can deliver a stored result from its own ev_timer, so that
 * a completion never runs before poll() has returned, nor inside a
 * library's or an endpoint's own functions.
 *
 * A source's poll() calls scaler_later_start(), fills res as the answer
 * comes, then either scaler_later_arm() (delivered from the timer) or,
 * from a callback of the loop, scaler_later_complete().  destroy() calls
 * scaler_later_cancel() and itself runs the completion it gets back, with
 * -AS_ECANCELED, once its own teardown is done.  The completion may free
 * the instance, and with it the struct scaler_later.
 *
 * Ownership: the struct is the instance's; res is the source's to fill,
 * the other fields are private to scalers/later.c.  The result passed to
 * the completion is a copy, borrowed for the call.
 */
#ifndef AGENTSCALER_SCALER_LATER_H
#define AGENTSCALER_SCALER_LATER_H

#include <ev.h>

#include "agentscaler/scalers/scaler.h"

struct scaler_later {
	struct scaler_result	 res;		/* what arm() delivers */
	struct scaler		*owner;		/* passed to the completion */
	struct ev_loop		*loop;
	scaler_done_fn		*done_fn;	/* set while a poll pends */
	void			*done_arg;
	ev_timer		 timer;
};

/* Sets l up for owner on loop; nothing pends. */
void	 scaler_later_init(struct scaler_later *l, struct ev_loop *loop,
	    struct scaler *owner);

/*
 * Starts a poll: remembers fn and arg and clears res.  Returns 0,
 * -AS_EINVAL without fn, -AS_EAGAIN while a poll is pending (nothing
 * changes then).
 */
int	 scaler_later_start(struct scaler_later *l, scaler_done_fn *fn,
	    void *arg);

/* 1 between scaler_later_start() and the completion, else 0. */
int	 scaler_later_pending(const struct scaler_later *l);

/*
 * Delivers a copy of res to the pending completion from the timer, delay
 * seconds from now (0: the next loop turn).
 */
void	 scaler_later_arm(struct scaler_later *l, double delay);

/*
 * Delivers res to the pending completion now.  Only from a callback of
 * the loop, never from inside poll().
 */
void	 scaler_later_complete(struct scaler_later *l,
	    const struct scaler_result *res);

/*
 * Stops the timer and forgets the pending poll.  Returns its completion
 * with its argument in *argp, for the caller to run with -AS_ECANCELED;
 * NULL when no poll was pending.
 */
scaler_done_fn *scaler_later_cancel(struct scaler_later *l, void **argp);

#endif
