/*
 * scaler_fake.h: the scripted "fake" scaler type (tests/util/scaler_fake.c),
 * for the unit tests; it is linked into test binaries only, never into
 * agentscaler, and is not in the registry (scaler_type_find() never finds it).  It keeps the real contract: each poll completes
 * exactly once, on a later loop turn (a zero-delay ev_timer, or after the
 * scripted delay), with -AS_ECANCELED inside destroy() when still pending.
 *
 * Script: results queued with scaler_fake_push_result() are consumed one
 * per poll, in order.  When the queue is empty the last consumed result
 * repeats; before any result is queued, polls complete with -AS_EAGAIN.
 * create() fails (with the text after the prefix as its error) when the
 * source's address starts with "fail:".
 *
 * Ownership: every function borrows the instance, which must be of type
 * "fake" (they abort otherwise); scaler_fake_find() returns a borrowed
 * pointer, valid until the instance is destroyed.
 */
#ifndef AGENTSCALER_SCALER_FAKE_H
#define AGENTSCALER_SCALER_FAKE_H

struct scaler;

extern const struct scaler_type scaler_type_fake;

/* Queues one result; err is 0 or a negative as_err. */
void		 scaler_fake_push_result(struct scaler *, int err, double ready,
		    double in_flight);
/* Drops the queued results (the repeating last result stays). */
void		 scaler_fake_clear(struct scaler *);
/* Seconds between poll() and its completion; 0 (the default): next turn. */
void		 scaler_fake_set_delay(struct scaler *, double seconds);
/* Makes the next poll() call itself fail with err, without completing. */
void		 scaler_fake_fail_next_poll(struct scaler *, int err);
/*
 * can_push 0 makes subscribe() answer -AS_EINVAL and pushing() 0; the
 * default is 1: subscribe() succeeds and pushing() is then 1.
 */
void		 scaler_fake_set_push(struct scaler *, int can_push);
/* Fires the subscribed wake function on the next loop turn. */
void		 scaler_fake_wake(struct scaler *);

/* Polls started (successful poll() calls) since create. */
unsigned	 scaler_fake_polls(const struct scaler *);
/* 1 while a poll is pending. */
int		 scaler_fake_pending(const struct scaler *);
/* Live instances of the fake type, all loops together. */
unsigned	 scaler_fake_instances(void);
/* The most recently created live instance with this queue, or NULL. */
struct scaler	*scaler_fake_find(const char *queue);

#endif
