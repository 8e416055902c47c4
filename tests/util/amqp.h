/*
 * amqp.h: a blocking rabbitmq-c client for the test side of the RabbitMQ
 * suites (check_rabbitmq, check_rabbitmq_consume): it sets queues up,
 * publishes, reads back what our code published and counts what a queue
 * holds, as guest over plain AMQP on 127.0.0.1; and it makes the source
 * both suites point our code at.  Every helper asserts with Check when the
 * broker does not answer as expected.
 *
 * Ownership: a connection is the caller's, closed with tu_amqp_close();
 * the body tu_amqp_get() returns is the caller's to free.
 */
#ifndef AGENTSCALER_TESTUTIL_AMQP_H
#define AGENTSCALER_TESTUTIL_AMQP_H

#include <stddef.h>

#include "scalers/compat_amqp.h"
#include "agentscaler/scalers/scaler.h"
#include "testutil.h"

struct ev_loop;

/* A rabbitmq source for address and queue, the rest zero. */
struct scaler_source tu_amqp_source(const char *address, const char *queue);

/* A connection to vhost with channel 1 open, no heartbeat. */
amqp_connection_state_t tu_amqp_open(const struct tu_rabbit *,
	    const char *vhost);
void	 tu_amqp_close(amqp_connection_state_t);
/*
 * The fixture of a broker test: a running broker whatever came before
 * (tu_rabbit_continue, tu_rabbit_need), a loop of the test's own in *loop
 * and a connection to vhost "/" in *b; tu_amqp_fixture_end() undoes it.
 */
void	 tu_amqp_fixture(const struct tu_rabbit *, struct ev_loop **loop,
	    amqp_connection_state_t *b);
void	 tu_amqp_fixture_end(struct ev_loop **loop,
	    amqp_connection_state_t b);
/* Declares q (durable or not) and purges what an earlier run left. */
void	 tu_amqp_declare(amqp_connection_state_t, const char *q, int durable);
void	 tu_amqp_delete(amqp_connection_state_t, const char *q);
/* Publishes n persistent copies of {"task":1} to q, then a round trip. */
void	 tu_amqp_publish(amqp_connection_state_t, const char *q, int n);
/* Publishes one persistent message with this body, then a round trip. */
void	 tu_amqp_publish_body(amqp_connection_state_t, const char *q,
	    const char *body, size_t len);

/* The properties of a message taken with tu_amqp_get(). */
struct tu_amqp_msg {
	char	 message_id[256];	/* "" when not set */
	char	 content_type[64];	/* "" when not set */
	int	 delivery_mode;		/* 0 when not set, 2 persistent */
	int	 redelivered;
};

/*
 * Takes one message off q (basic.get, acknowledged): returns its body as
 * a new NUL-terminated string with its length in *lenp and its properties
 * in *props (either may be NULL), or NULL when q is empty.
 */
char	*tu_amqp_get(amqp_connection_state_t, const char *q, size_t *lenp,
	    struct tu_amqp_msg *props);
/*
 * A passive declare of an existing q: ready messages (unacked ones are
 * not counted) and consumers.
 */
void	 tu_amqp_count(amqp_connection_state_t, const char *q, long *ready,
	    long *consumers);

#endif
