/*
 * results.h: where a dispatch pool publishes the Result of each task it
 * handed off over HTTP (docs/protocol.md section 8, "Results
 * destination"): a Redis list (LPUSH of the Result JSON) or a Redis
 * stream (XADD <stream> * id <task id> result <Result JSON>), on the
 * endpoint connection the Redis sources and consumers share
 * (scalers/redis_endpoint.h); or RabbitMQ, a queue by the default
 * exchange or a durable direct exchange with routing key = the task id,
 * persistent, message_id = correlation_id = the task id, on an AMQP
 * connection of the publisher's own with publisher confirms: a send
 * completes 0 only once the broker confirmed it.
 *
 * At least once is the caller's: a failed send completes with the error
 * and the caller sends again; a send whose reply was lost may have landed,
 * so a consumer of the results dedupes by id.
 *
 * Ownership: results_new() copies what it keeps of src.  A body passed to
 * results_send() is copied.  The completion runs exactly once per accepted
 * send, never before results_send() returns, with -AS_ECANCELED when the
 * publisher is freed first.
 */
#ifndef AGENTSCALER_RESULTS_H
#define AGENTSCALER_RESULTS_H

#include <stddef.h>

struct ev_loop;
struct scaler_source;
struct results;

typedef void	 results_done_fn(int err, const char *errmsg, void *arg);

/*
 * A publisher to src (type "redis-list", "redis-stream" or "rabbitmq",
 * address, queue (or, rabbitmq only, exchange), password source).  Returns NULL with a reason in err.
 */
struct results	*results_new(struct ev_loop *, const struct scaler_source *src,
		    char *err, size_t errlen);
/* Pending sends complete with -AS_ECANCELED, then it is freed. */
void		 results_free(struct results *);
/*
 * Publishes body (the Result of task id).  Returns 0, after which fn runs
 * once; -AS_EINVAL (nothing runs) for bad arguments.
 */
int		 results_send(struct results *, const char *id,
		    const char *body, size_t len, results_done_fn *fn,
		    void *arg);

#endif
