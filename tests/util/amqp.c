/*
 * amqp.c: the blocking test-side AMQP client (amqp.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <ev.h>

#include "scalers/compat_amqp.h"
#include "amqp.h"
#include "testutil.h"

static void
tu_amqp_ok(amqp_connection_state_t c, const char *what)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);

	ck_assert_msg(r.reply_type == AMQP_RESPONSE_NORMAL, "%s: reply type "
	    "%d", what, (int)r.reply_type);
}

struct scaler_source
tu_amqp_source(const char *address, const char *queue)
{
	struct scaler_source src;

	memset(&src, 0, sizeof src);
	src.type = "rabbitmq";
	src.address = address;
	src.queue = queue;
	return (src);
}

amqp_connection_state_t
tu_amqp_open(const struct tu_rabbit *rb, const char *vhost)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t	*sock = amqp_tcp_socket_new(c);
	amqp_rpc_reply_t r;

	ck_assert_ptr_nonnull(sock);
	ck_assert_int_eq(amqp_socket_open(sock, "127.0.0.1", rb->amqp_port),
	    AMQP_STATUS_OK);
	r = amqp_login(c, vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0,
	    AMQP_SASL_METHOD_PLAIN, "guest", "guest");
	ck_assert_msg(r.reply_type == AMQP_RESPONSE_NORMAL, "login to %s",
	    vhost);
	amqp_channel_open(c, 1);
	tu_amqp_ok(c, "channel.open");
	return (c);
}

void
tu_amqp_close(amqp_connection_state_t c)
{
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}

void
tu_amqp_fixture(const struct tu_rabbit *rb, struct ev_loop **loop,
    amqp_connection_state_t *b)
{
	tu_rabbit_continue();
	tu_rabbit_need();
	ck_assert_ptr_nonnull(*loop = ev_loop_new(EVFLAG_AUTO));
	*b = tu_amqp_open(rb, "/");
}

void
tu_amqp_fixture_end(struct ev_loop **loop, amqp_connection_state_t b)
{
	tu_amqp_close(b);
	ev_loop_destroy(*loop);
	*loop = NULL;
}

void
tu_amqp_declare(amqp_connection_state_t c, const char *q, int durable)
{
	amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, durable, 0, 0,
	    amqp_empty_table);
	tu_amqp_ok(c, "queue.declare");
	amqp_queue_purge(c, 1, amqp_cstring_bytes(q));
	tu_amqp_ok(c, "queue.purge");
}

void
tu_amqp_delete(amqp_connection_state_t c, const char *q)
{
	amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 0, 0);
	tu_amqp_ok(c, "queue.delete");
}

/* A round trip, so that what was published before has been routed. */
static void
tu_amqp_sync(amqp_connection_state_t c, const char *q)
{
	amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 1, 0, 0, 0,
	    amqp_empty_table);
	tu_amqp_ok(c, "passive queue.declare");
}

static void
tu_amqp_send(amqp_connection_state_t c, const char *q, amqp_bytes_t body)
{
	amqp_basic_properties_t props;

	memset(&props, 0, sizeof props);
	props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	props.delivery_mode = 2;
	ck_assert_int_eq(amqp_basic_publish(c, 1, amqp_empty_bytes,
	    amqp_cstring_bytes(q), 0, 0, &props, body), AMQP_STATUS_OK);
}

void
tu_amqp_publish(amqp_connection_state_t c, const char *q, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		tu_amqp_send(c, q, amqp_cstring_bytes("{\"task\":1}"));
	tu_amqp_sync(c, q);
}

void
tu_amqp_publish_body(amqp_connection_state_t c, const char *q,
    const char *body, size_t len)
{
	amqp_bytes_t	 b;

	b.bytes = (void *)(uintptr_t)body;
	b.len = len;
	tu_amqp_send(c, q, b);
	tu_amqp_sync(c, q);
}

static void
tu_amqp_str(char *out, size_t outlen, amqp_bytes_t b)
{
	size_t	 n = b.len < outlen - 1 ? b.len : outlen - 1;

	if (n > 0)
		memcpy(out, b.bytes, n);
	out[n] = '\0';
}

char *
tu_amqp_get(amqp_connection_state_t c, const char *q, size_t *lenp,
    struct tu_amqp_msg *props)
{
	amqp_basic_get_ok_t *ok;
	amqp_rpc_reply_t r;
	amqp_message_t	 m;
	amqp_basic_properties_t *p;
	char		*body;
	int		 redelivered;

	amqp_maybe_release_buffers(c);
	r = amqp_basic_get(c, 1, amqp_cstring_bytes(q), 1);
	ck_assert_msg(r.reply_type == AMQP_RESPONSE_NORMAL, "basic.get %s",
	    q);
	if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
		return (NULL);
	ck_assert_uint_eq(r.reply.id, AMQP_BASIC_GET_OK_METHOD);
	ok = r.reply.decoded;
	redelivered = ok->redelivered != 0;
	r = amqp_read_message(c, 1, &m, 0);
	ck_assert_msg(r.reply_type == AMQP_RESPONSE_NORMAL, "reading from %s",
	    q);
	body = malloc(m.body.len + 1);
	ck_assert_ptr_nonnull(body);
	if (m.body.len > 0)
		memcpy(body, m.body.bytes, m.body.len);
	body[m.body.len] = '\0';
	if (lenp != NULL)
		*lenp = m.body.len;
	if (props != NULL) {
		memset(props, 0, sizeof *props);
		p = &m.properties;
		props->redelivered = redelivered;
		if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
			tu_amqp_str(props->message_id,
			    sizeof props->message_id, p->message_id);
		if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
			tu_amqp_str(props->content_type,
			    sizeof props->content_type, p->content_type);
		if (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
			props->delivery_mode = p->delivery_mode;
	}
	amqp_destroy_message(&m);
	return (body);
}

void
tu_amqp_count(amqp_connection_state_t c, const char *q, long *ready,
    long *consumers)
{
	amqp_queue_declare_ok_t *ok;

	ok = amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 1, 0, 0, 0,
	    amqp_empty_table);
	ck_assert_msg(ok != NULL, "passive declare of %s", q);
	if (ready != NULL)
		*ready = (long)ok->message_count;
	if (consumers != NULL)
		*consumers = (long)ok->consumer_count;
}
