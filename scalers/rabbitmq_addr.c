/*
 * rabbitmq_addr.c: what every RabbitMQ file shares, below all of them: the
 * pure address parser (amqp, amqps, http, https), the source checks for the
 * scaler and the consumer, the user name and password of a source, and the
 * error text of a failed read (rabbitmq.h).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agentscaler/rt/common.h"
#include "rabbitmq.h"
#include "agentscaler/scalers/scaler.h"
#include "scaler_url.h"

struct rabbitmq_scheme {
	const char		*name;
	enum rabbitmq_transport	 transport;
	int			 tls;
	int			 port;
};

static const struct rabbitmq_scheme rabbitmq_schemes[] = {
	{ "amqp", RABBITMQ_AMQP, 0, 5672 },
	{ "amqps", RABBITMQ_AMQP, 1, 5671 },
	{ "http", RABBITMQ_HTTP, 0, 15672 },
	{ "https", RABBITMQ_HTTP, 1, 15671 },
};

static const struct scaler_url_texts rabbitmq_url_texts = {
	.credentials = "username with authSecretRef, passwordFile or "
	    "passwordEnv",
	.ipv6_example = "amqp://[::1]:5672/",
};

_Static_assert(sizeof ((struct rabbitmq_addr *)0)->host >=
    SCALER_URL_HOST_MAX + 1, "rabbitmq_addr.host holds any parsed host");

/* Decodes the vhost segment [p, end) into out; 0 or -1 with err set. */
static int
rabbitmq_parse_vhost(const char *p, const char *end, char *out,
    size_t outlen, char *err, size_t errlen)
{
	size_t	 n = 0;
	int	 hi, lo;
	char	 ch;

	for (; p < end; p++) {
		ch = *p;
		if (ch == '/') {
			snprintf(err, errlen, "the vhost is one path segment; "
			    "write a '/' inside a vhost name as %%2F");
			return (-1);
		}
		if (ch == '%') {
			if (end - p < 3 || (hi = as_hexval(p[1])) < 0 ||
			    (lo = as_hexval(p[2])) < 0) {
				snprintf(err, errlen, "bad percent-escape in "
				    "the vhost");
				return (-1);
			}
			ch = (char)(hi * 16 + lo);
			p += 2;
			if (ch == '\0') {
				snprintf(err, errlen, "the vhost has %%00");
				return (-1);
			}
		} else if ((unsigned char)ch <= 0x20 || ch == 0x7f) {
			snprintf(err, errlen, "bad character in the vhost; "
			    "percent-encode it");
			return (-1);
		}
		if (n + 1 >= outlen) {
			snprintf(err, errlen, "the vhost is longer than %d "
			    "bytes", RABBITMQ_NAME_MAX);
			return (-1);
		}
		out[n++] = ch;
	}
	out[n] = '\0';
	return (0);
}

/*
 * The parser.  Error messages never quote the authority part, since a
 * rejected address may carry a password.
 */
int
rabbitmq_parse_address(const char *url, struct rabbitmq_addr *out, char *err,
    size_t errlen)
{
	const struct rabbitmq_scheme *sch = NULL;
	struct scaler_url_authority a;
	const char	*p;
	size_t		 i, slen;

	memset(out, 0, sizeof *out);
	if (url == NULL || *url == '\0') {
		snprintf(err, errlen, "empty address; expected "
		    "amqp://host:5672/vhost or http://host:15672/vhost");
		return (-AS_EINVAL);
	}
	if ((slen = scaler_url_scheme_length(url)) == 0) {
		snprintf(err, errlen, "address must start with amqp://, "
		    "amqps://, http:// or https://");
		return (-AS_EINVAL);
	}
	for (i = 0; i < AS_ARRAY_SIZE(rabbitmq_schemes); i++) {
		if (strlen(rabbitmq_schemes[i].name) == slen &&
		    strncasecmp(url, rabbitmq_schemes[i].name, slen) == 0)
			sch = &rabbitmq_schemes[i];
	}
	if (sch == NULL) {
		snprintf(err, errlen, "unsupported scheme \"%.*s\"; expected "
		    "amqp://, amqps://, http:// or https://", (int)slen, url);
		return (-AS_EINVAL);
	}
	if (scaler_url_parse_authority(url + slen + 3, &rabbitmq_url_texts,
	    &a, err, errlen) != 0)
		return (-AS_EINVAL);

	p = a.end;
	if (strpbrk(p, "?#") != NULL) {
		snprintf(err, errlen, "query strings and fragments are not "
		    "supported; the vhost goes in the path: /vhost");
		return (-AS_EINVAL);
	}
	if (*p == '\0' || strcmp(p, "/") == 0)
		as_strlcpy(out->vhost, "/", sizeof out->vhost);
	else if (rabbitmq_parse_vhost(p + 1, p + strlen(p), out->vhost,
	    sizeof out->vhost, err, errlen) != 0)
		return (-AS_EINVAL);
	out->transport = sch->transport;
	out->tls = sch->tls;
	as_strlcpy(out->scheme, sch->name, sizeof out->scheme);
	as_strlcpy(out->host, a.host, sizeof out->host);
	out->port = a.port != 0 ? a.port : sch->port;
	return (0);
}

/* Shared helpers. */

const char *
rabbitmq_nonempty(const char *s)
{
	return (s != NULL && *s != '\0' ? s : NULL);
}

int
rabbitmq_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == b);
	return (strcmp(a, b) == 0);
}

const char *
rabbitmq_user(const struct scaler_source *src)
{
	const char	*u = rabbitmq_nonempty(src->username);

	/* A label only: the name itself is read at each login. */
	if (rabbitmq_nonempty(src->username_secret) != NULL ||
	    rabbitmq_nonempty(src->username_file) != NULL)
		return ("(the Secret's usernameKey)");
	return (u != NULL ? u : "guest");
}

int
rabbitmq_secret_read(const struct scaler_secret *sec, const char *user,
    double since, char **out, char *err, size_t errlen)
{
	int	 rc;

	if ((rc = scaler_secret_read(sec, since, out, err, errlen)) != 0 ||
	    *out != NULL)
		return (rc);
	if (strcmp(user, "guest") != 0) {
		snprintf(err, errlen, "user %.64s has no password: set "
		    "authSecretRef, passwordFile or passwordEnv", user);
		return (-AS_EAUTH);
	}
	*out = xstrdup("guest");
	return (0);
}


void
rabbitmq_endpoint_name(const struct rabbitmq_addr *a, char *out,
    size_t outlen)
{
	if (strchr(a->host, ':') != NULL)
		snprintf(out, outlen, "[%s]:%d", a->host, a->port);
	else
		snprintf(out, outlen, "%s:%d", a->host, a->port);
}

void
rabbitmq_result_error(struct scaler_result *res, int err, const char *name,
    const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	res->error = err;
	n = snprintf(res->errmsg, sizeof res->errmsg, "rabbitmq %s: ", name);
	if (n < 0 || (size_t)n >= sizeof res->errmsg)
		return;
	va_start(ap, fmt);
	vsnprintf(res->errmsg + n, sizeof res->errmsg - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Checking a source, for the scaler and the consumer. */

int
rabbitmq_check_source(const struct scaler_source *src, int consumer,
    struct rabbitmq_addr *addr, char *err, size_t errlen)
{
	int		 rc;

	if (src->address == NULL) {
		snprintf(err, errlen, "rabbitmq needs an address "
		    "(amqp://host:5672/vhost or http://host:15672/vhost)");
		return (-AS_EINVAL);
	}
	if ((rc = rabbitmq_parse_address(src->address, addr, err,
	    errlen)) != 0)
		return (rc);
	if (consumer && addr->transport != RABBITMQ_AMQP) {
		snprintf(err, errlen, "dispatch mode consumes over AMQP: use "
		    "an amqp:// or amqps:// address; the management API "
		    "(%s://) can read queue depths but cannot consume",
		    addr->scheme);
		return (-AS_EINVAL);
	}
	if (src->queue == NULL || *src->queue == '\0') {
		snprintf(err, errlen, "rabbitmq needs a queue name");
		return (-AS_EINVAL);
	}
	if (strlen(src->queue) > RABBITMQ_NAME_MAX) {
		snprintf(err, errlen, "the queue name is longer than %d bytes",
		    RABBITMQ_NAME_MAX);
		return (-AS_EINVAL);
	}
	/*
	 * A passive queue.declare answers message_count, which counts ready
	 * messages only: messages delivered and not yet acknowledged are
	 * invisible over AMQP.  Counting them needs the management API.  A
	 * consumer counts what it holds itself.
	 */
	if (!consumer && src->count_in_flight &&
	    addr->transport == RABBITMQ_AMQP) {
		snprintf(err, errlen, "countInFlight needs the unacknowledged "
		    "count, which AMQP (a passive queue.declare) cannot see; "
		    "use the management API: http://host:15672/vhost");
		return (-AS_EINVAL);
	}
	if (rabbitmq_nonempty(src->processing) != NULL) {
		snprintf(err, errlen, "processingList belongs to redis-list; "
		    "RabbitMQ counts unacknowledged messages itself (http "
		    "transport)");
		return (-AS_EINVAL);
	}
	if (rabbitmq_nonempty(src->consumer_group) != NULL) {
		snprintf(err, errlen, "consumerGroup is not used by rabbitmq");
		return (-AS_EINVAL);
	}
	if (!addr->tls && (rabbitmq_nonempty(src->ca_file) != NULL ||
	    src->insecure_skip_verify)) {
		snprintf(err, errlen, "tls is set but the address is %s://; "
		    "use %ss://", addr->scheme, addr->scheme);
		return (-AS_EINVAL);
	}
	if (scaler_secret_check(src, err, errlen) != 0)
		return (-AS_EINVAL);
	if (!(src->connect_timeout >= 0) || !(src->command_timeout >= 0) ||
	    isinf(src->connect_timeout) || isinf(src->command_timeout)) {
		snprintf(err, errlen, "timeouts must be finite and not "
		    "negative");
		return (-AS_EINVAL);
	}
	return (0);
}

