/*
 * redis_addr.c: the Redis address parser and the source checks every
 * Redis source and consumer shares (redis_addr.h).  Pure: bytes in, a
 * struct or a reason out.  The authority part is scalers/url.c's, as for
 * the RabbitMQ addresses (scalers/rabbitmq_addr.c).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/scaler.h"
#include "redis_addr.h"
#include "scaler_url.h"

/*
 * The address parser; the authority is scalers/url.c's.  Error messages
 * never quote the authority part, since a rejected address may carry a
 * password.
 */
static const struct scaler_url_texts redis_endpoint_url_texts = {
	.example = "redis://host:port/db",
	.schemes = "redis://",
	.credentials = "authSecretRef, passwordFile or passwordEnv",
	.ipv6_example = "redis://[::1]:6379/0",
};

_Static_assert(sizeof ((struct redis_addr *)0)->host >=
    SCALER_URL_HOST_MAX + 1, "redis_addr.host holds any parsed host");

int
redis_endpoint_parse_address(const char *url, struct redis_addr *out,
    char *err, size_t errlen)
{
	struct scaler_url_authority a;
	const char	*p;
	size_t		 slen;
	long		 v = 0;

	memset(out, 0, sizeof *out);
	if ((slen = scaler_url_start(url, &redis_endpoint_url_texts, err,
	    errlen)) == 0)
		return (-AS_EINVAL);
	if (slen == 6 && strncasecmp(url, "rediss", 6) == 0) {
		/* hiredis_ssl arrived in hiredis 1.0; Debian 12 has 0.14.1. */
		snprintf(err, errlen, "rediss:// needs hiredis >= 1.0 with "
		    "TLS; this build has %d.%d.%d", HIREDIS_MAJOR,
		    HIREDIS_MINOR, HIREDIS_PATCH);
		return (-AS_EINVAL);
	}
	if (slen != 5 || strncasecmp(url, "redis", 5) != 0)
		return (scaler_url_unsupported(url, slen,
		    &redis_endpoint_url_texts, err, errlen));
	if (scaler_url_parse_authority(url + slen + 3,
	    &redis_endpoint_url_texts, &a, err, errlen) != 0)
		return (-AS_EINVAL);

	p = a.end;
	if (*p == '?' || *p == '#') {
		snprintf(err, errlen, "query strings and fragments are not "
		    "supported; the database goes in the path: /db");
		return (-AS_EINVAL);
	}
	if (*p == '/' && p[1] != '\0') {
		if (scaler_url_parse_number(p + 1, p + strlen(p),
		    2147483647L, &v) != 0) {
			snprintf(err, errlen, "database must be a number from "
			    "0 to 2147483647, as in redis://host:6379/0");
			return (-AS_EINVAL);
		}
		out->db = (int)v;
	}
	as_strlcpy(out->host, a.host, sizeof out->host);
	out->port = a.port != 0 ? a.port : 6379;
	return (0);
}

int
redis_endpoint_validate(const char *what, const struct scaler_source *src,
    char *err, size_t errlen)
{
	struct redis_addr addr;
	int		 rc;

	if (src->address == NULL) {
		snprintf(err, errlen, "%s needs an address "
		    "(redis://host:port/db)", what);
		return (-AS_EINVAL);
	}
	if ((rc = redis_endpoint_parse_address(src->address, &addr, err,
	    errlen)) != 0)
		return (rc);
	return (scaler_url_check_source(src, err, errlen));
}

int
redis_endpoint_reply_err(const char *text)
{
	return (strncmp(text, "NOAUTH", 6) == 0 ||
	    strncmp(text, "WRONGPASS", 9) == 0 ||
	    strncmp(text, "NOPERM", 6) == 0 ? -AS_EAUTH : -AS_EPROTO);
}
