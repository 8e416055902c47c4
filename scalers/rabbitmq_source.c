/*
 * rabbitmq_source.c: the "rabbitmq" scaler type as the configuration sees
 * it (source.type: rabbitmq).  It checks the source (rabbitmq_addr.c) and
 * hands create() to one of two transports by the scheme: amqp/amqps to
 * scalers/rabbitmq_amqp.c, http/https to scalers/rabbitmq_http.c.  An
 * instance carries its transport's type, so poll() and destroy() never come
 * back here.  This file sits above the transports; what they share with it
 * (address, checks, secrets, error text) is rabbitmq_addr.c, below them.
 *
 * Which transport when (README.md, "RabbitMQ: which transport when"): AMQP
 * is the cheapest read but sees only ready messages; a passive declare does
 * not count messages delivered and not yet acknowledged, so countInFlight
 * is refused there (KEDA's kedacore/keda#356 and #638 are what happens
 * otherwise: work in flight looks like an empty queue).  The management API
 * sees ready, unacknowledged and the message rates.
 */
#include <string.h>

#include "agentscaler/rt/common.h"
#include "rabbitmq.h"
#include "agentscaler/scalers/scaler.h"

static int	 rabbitmq_validate(const struct scaler_source *, char *,
		    size_t);
static struct scaler *rabbitmq_create(struct ev_loop *,
		    const struct scaler_source *, char *, size_t);
static int	 rabbitmq_poll(struct scaler *, scaler_done_fn *, void *);
static void	 rabbitmq_destroy(struct scaler *);

int
rabbitmq_stats(const struct scaler *s, struct rabbitmq_stats *st)
{
	memset(st, 0, sizeof *st);
	if (s == NULL)
		return (-AS_EINVAL);
	if (s->type == &rabbitmq_amqp_type)
		rabbitmq_amqp_stats(s, st);
	else if (s->type == &rabbitmq_http_type)
		rabbitmq_http_stats(s, st);
	else
		return (-AS_EINVAL);
	return (0);
}

/* The vtable. */

static int
rabbitmq_validate(const struct scaler_source *src, char *err, size_t errlen)
{
	struct rabbitmq_addr addr;

	return (rabbitmq_check_source(src, 0, &addr, err, errlen));
}

static struct scaler *
rabbitmq_create(struct ev_loop *loop, const struct scaler_source *src,
    char *err, size_t errlen)
{
	struct rabbitmq_addr addr;

	if (rabbitmq_check_source(src, 0, &addr, err, errlen) != 0)
		return (NULL);
	if (addr.transport == RABBITMQ_AMQP)
		return (rabbitmq_amqp_type.create(loop, src, err, errlen));
	return (rabbitmq_http_type.create(loop, src, err, errlen));
}

/* Instances carry their transport's type; these only forward. */
static int
rabbitmq_poll(struct scaler *s, scaler_done_fn *fn, void *arg)
{
	if (s->type == &scaler_type_rabbitmq)
		return (-AS_EINVAL);
	return (s->type->poll(s, fn, arg));
}

static void
rabbitmq_destroy(struct scaler *s)
{
	if (s->type != &scaler_type_rabbitmq)
		s->type->destroy(s);
}

const struct scaler_type scaler_type_rabbitmq = {
	.name = "rabbitmq",
	.validate = rabbitmq_validate,
	.create = rabbitmq_create,
	.poll = rabbitmq_poll,
	.destroy = rabbitmq_destroy,
};
