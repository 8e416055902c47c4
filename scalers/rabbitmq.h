/*
 * rabbitmq.h: the "rabbitmq" source.  One scaler type, two transports
 * chosen by the address scheme:
 *
 *	amqp://host:5672/vhost, amqps://
 *		scalers/rabbitmq_amqp.c: a passive queue.declare per queue and
 *		tick over one AMQP connection per endpoint; ready count and
 *		consumers only
 *	http://host:15672/vhost, https://
 *		scalers/rabbitmq_http.c: one paged GET /api/queues/<vhost> per
 *		vhost and tick on the management API; ready, unacknowledged
 *		(in flight) and rates
 *
 * scalers/rabbitmq_addr.c holds the pure address parser, the checks and the
 * helpers every RabbitMQ file shares (it depends on none of them);
 * scalers/rabbitmq_source.c, the type that hands create() to a transport,
 * sits above the transports.  The AMQP
 * connection itself is scalers/rabbitmq_conn.c (rabbitmq_conn.h), shared
 * with the dispatch-mode consumer, scalers/rabbitmq_consumer.c (consumer.h).
 *
 * Ownership: the caller owns every struct passed in; nothing here keeps a
 * pointer it was given.  Secrets returned by rabbitmq_secret_read() are the
 * caller's, to release with as_secret_free().
 */
#ifndef AGENTSCALER_RABBITMQ_H
#define AGENTSCALER_RABBITMQ_H

#include <stddef.h>
#include <stdint.h>

#include "agentscaler/scalers/scaler.h"

#define RABBITMQ_NAME_MAX	255	/* AMQP shortstr: queue and vhost */

enum rabbitmq_transport {
	RABBITMQ_AMQP,
	RABBITMQ_HTTP
};

struct rabbitmq_addr {
	enum rabbitmq_transport transport;
	int		 tls;		/* amqps:// or https:// */
	char		 scheme[8];	/* lower case, as above */
	char		 host[256];	/* name or address, IPv6 unbracketed */
	int		 port;		/* 5672, 5671, 15672 or 15671 default */
	char		 vhost[RABBITMQ_NAME_MAX + 1];	/* decoded, or "/" */
};

/*
 * Parses "amqp[s]://host[:port][/vhost]" or "http[s]://host[:port][/vhost]"
 * (IPv6 in brackets) into *out.  The vhost is one percent-decoded path
 * segment; no path or "/" alone means the default vhost "/", which can also
 * be written %2F.  Pure: no I/O, no name lookup.  Returns 0, or -AS_EINVAL
 * with a message in err for another scheme, inline credentials (refused,
 * never echoed), a bad host, port or vhost, a query or a fragment.
 */
int	 rabbitmq_parse_address(const char *url, struct rabbitmq_addr *out,
	    char *err, size_t errlen);

/* What the tests and the logs can see of an instance's endpoint. */
struct rabbitmq_stats {
	enum rabbitmq_transport transport;
	unsigned	 sharing;	/* instances on the same endpoint */
	int		 connected;	/* amqp: the connection is up */
	uint64_t	 connects;	/* amqp: logins that succeeded */
	uint64_t	 reopens;	/* amqp: channels reopened */
	uint64_t	 requests;	/* amqp: declares; http: GETs sent */
	uint64_t	 batches;	/* declare batches or listings */
};

/*
 * Fills *st for a rabbitmq instance.  Returns 0, or -AS_EINVAL when s is
 * not one.
 */
int	 rabbitmq_stats(const struct scaler *s, struct rabbitmq_stats *st);

/* For scalers/rabbitmq_*.c only. */

/* The transports' types; instances carry these, not scaler_type_rabbitmq. */
extern const struct scaler_type rabbitmq_amqp_type;
extern const struct scaler_type rabbitmq_http_type;

void	 rabbitmq_amqp_stats(const struct scaler *, struct rabbitmq_stats *);
void	 rabbitmq_http_stats(const struct scaler *, struct rabbitmq_stats *);

/*
 * Checks the fields of a rabbitmq source and parses its address into
 * *addr: the address, the queue, TLS settings only with amqps:// or
 * https://, one password source, finite timeouts, no fields of other
 * sources.  consumer = 0 for the scaler (countInFlight needs http://);
 * 1 for the dispatch-mode consumer (scalers/rabbitmq_consumer.c), which
 * needs amqp:// or amqps://.  Returns 0, or -AS_EINVAL with the reason in
 * err.
 */
int	 rabbitmq_check_source(const struct scaler_source *, int consumer,
	    struct rabbitmq_addr *addr, char *err, size_t errlen);

/* "guest" unless set. */
const char *rabbitmq_user(const struct scaler_source *);

/*
 * Reads the password afresh (scaler_secret_read()); with no source, the
 * password of user "guest" is "guest" and any other user gets -AS_EAUTH.
 * Returns 0 with a new string in *out (let go of with as_secret_free), or
 * -AS_EAUTH (-AS_EAGAIN while a Secret is being read) with the reason,
 * never the secret, in err.
 */
int	 rabbitmq_secret_read(const struct scaler_secret *, const char *user,
	    double since, char **out, char *err, size_t errlen);
/* "host:port" or "[v6]:port" into out. */
void	 rabbitmq_endpoint_name(const struct rabbitmq_addr *, char *out,
	    size_t outlen);
/*
 * Sets res->error and res->errmsg to "rabbitmq <name>: <detail>"; the
 * detail is printf-formatted.
 */
void	 rabbitmq_result_error(struct scaler_result *res, int err,
	    const char *name, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
/* NULL for NULL or "". */
const char *rabbitmq_nonempty(const char *);
/* strcmp that treats two NULLs as equal. */
int	 rabbitmq_same(const char *, const char *);

#endif
