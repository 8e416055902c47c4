/*
 * loop.h: driving a test's private ev loop, and recording what a scaler
 * reports to it.  The run functions turn the loop with EVRUN_ONCE under a
 * deadline, with a 20 ms tick so that the deadline is always checked.
 *
 * Ownership: every struct here is the caller's; nothing is allocated.
 */
#ifndef AGENTSCALER_TESTUTIL_LOOP_H
#define AGENTSCALER_TESTUTIL_LOOP_H

#include <ev.h>

#include "agentscaler/scalers/scaler.h"

/* A condition to wait for: nonzero once it holds. */
typedef int	 tu_pred_fn(void *);

/*
 * Turns the loop until pred(arg) holds or timeout seconds pass; returns
 * the last pred(arg).
 */
int	 tu_run_until(struct ev_loop *, tu_pred_fn *pred, void *arg,
	    double timeout);
/* Turns the loop for seconds, whatever happens. */
void	 tu_run_for(struct ev_loop *, double seconds);
/* Turns the loop until *count reaches want or timeout; 1 if it did. */
int	 tu_run_count(struct ev_loop *, const int *count, int want,
	    double timeout);

/*
 * Completions and wake-ups of a scaler land here; zero it first.
 * tu_rec_done() counts and keeps the result, polls s once more when
 * poll_again is set, and destroys destroy_in_done, then destroy_too, when
 * they are set (each once).  tu_rec_wake() counts.
 */
struct tu_rec {
	int			 ndone;
	int			 nwake;
	struct scaler_result	 res;
	struct scaler		*destroy_in_done;
	struct scaler		*destroy_too;
	int			 poll_again;
};

void	 tu_rec_done(struct scaler *, const struct scaler_result *, void *);
void	 tu_rec_wake(struct scaler *, void *);
/* Predicates on a struct tu_rec: a completion, a wake-up, has come. */
int	 tu_pred_done(void *rec);
int	 tu_pred_woken(void *rec);
/* A predicate on a struct scaler: its push wake-ups are live. */
int	 tu_pred_pushing(void *scaler);

/*
 * One poll of s to completion within timeout seconds; asserts that the
 * completion did not run inside the poll call and ran exactly once, and
 * returns its result.
 */
struct scaler_result tu_poll_wait(struct ev_loop *, struct scaler *,
	    double timeout);

#endif
