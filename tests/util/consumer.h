/*
 * consumer.h: driving a dispatch-mode consumer (agentscaler/scalers/consumer.h)
 * in a test, the same for every type: the completions of its operations
 * recorded, and each operation run to its completion on the test's loop
 * under a deadline.
 *
 * Ownership: every struct here is the caller's; nothing is allocated.
 */
#ifndef AGENTSCALER_TESTUTIL_CONSUMER_H
#define AGENTSCALER_TESTUTIL_CONSUMER_H

#include <ev.h>

#include "agentscaler/scalers/consumer.h"

/*
 * One operation's completions: tu_op_done() and the two others count,
 * keep the last result (asserting that an error has a message) and, when
 * destroy is set, destroy that consumer from inside the completion, once.
 */
struct tu_op {
	int		 n;
	int		 err;
	int		 outcome;	/* hand-off outcome, marker found */
	char		 msg[256];
	struct consumer	*destroy;
};

void	 tu_op_done(int err, const char *errmsg, void *op);
void	 tu_op_handoff(int err, int outcome, const char *errmsg, void *op);
void	 tu_op_check(int err, int yes, const char *errmsg, void *op);
/* A predicate for tu_run_until(): a completion has come. */
int	 tu_pred_op(void *op);

/*
 * Each runs one operation to its completion within timeout seconds: *op
 * is zeroed first (outcome -1); asserts that the call accepted it, that
 * the completion did not run inside the call and that it ran exactly
 * once.  Returns the completion's error, the rest is in *op.  Bodies and
 * records are strings (their length is strlen).
 */
int	 tu_ack_wait(struct ev_loop *, struct consumer *,
	    struct consumer_msg *, struct tu_op *, double timeout);
int	 tu_dead_letter_wait(struct ev_loop *, struct consumer *,
	    struct consumer_msg *, const char *record, struct tu_op *,
	    double timeout);
int	 tu_handoff_wait(struct ev_loop *, struct consumer *, const char *ns,
	    const char *sandbox, const char *task_id, const char *body,
	    struct tu_op *, double timeout);
int	 tu_handed_off_wait(struct ev_loop *, struct consumer *,
	    const char *ns, const char *task_id, struct tu_op *,
	    double timeout);

/* Options with this instance and window, polling every second. */
struct consumer_options tu_consumer_options(const char *instance,
	    int window);

#endif
