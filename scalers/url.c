/*
 * url.c: the address parsing the Redis and RabbitMQ sources share (see
 * scaler_url.h).  Both parsers (redis_endpoint_parse_address() and
 * rabbitmq_parse_address()) check the empty address and the scheme
 * themselves, with their own messages, then hand the authority here and
 * parse their own path from out->end.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "scaler_url.h"

int
scaler_url_parse_number(const char *p, const char *end, long max, long *out)
{
	long	 v = 0;

	if (p == end)
		return (-1);
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return (-1);
		v = v * 10 + (*p - '0');
		if (v > max)
			return (-1);
	}
	*out = v;
	return (0);
}

size_t
scaler_url_scheme_length(const char *url)
{
	const char	*p;

	for (p = url; isalnum((unsigned char)*p) || *p == '+' ||
	    *p == '-' || *p == '.'; p++)
		;
	if (p == url || strncmp(p, "://", 3) != 0 || p - url > 16 ||
	    !isalpha((unsigned char)*url))
		return (0);
	return ((size_t)(p - url));
}

int
scaler_url_parse_authority(const char *auth,
    const struct scaler_url_texts *texts, struct scaler_url_authority *out,
    char *err, size_t errlen)
{
	const char	*p, *auth_end, *host, *host_end, *q;
	size_t		 hostlen, i, ncolon;
	long		 port = 0;

	memset(out, 0, sizeof *out);
	auth_end = auth + strcspn(auth, "/?#");
	if (memchr(auth, '@', (size_t)(auth_end - auth)) != NULL) {
		snprintf(err, errlen, "credentials in the address are not "
		    "allowed; use %s", texts->credentials);
		return (-AS_EINVAL);
	}

	if (*auth == '[') {
		host = auth + 1;
		host_end = memchr(host, ']', (size_t)(auth_end - host));
		if (host_end == NULL) {
			snprintf(err, errlen, "unterminated '[' in the "
			    "address");
			return (-AS_EINVAL);
		}
		hostlen = (size_t)(host_end - host);
		for (i = 0, ncolon = 0; i < hostlen; i++) {
			if (host[i] == ':')
				ncolon++;
			else if (!isxdigit((unsigned char)host[i]) &&
			    host[i] != '.')
				break;
		}
		if (hostlen == 0 || i != hostlen || ncolon < 2) {
			snprintf(err, errlen, "bad IPv6 address in brackets");
			return (-AS_EINVAL);
		}
		q = host_end + 1;
	} else {
		host = auth;
		host_end = auth + strcspn(auth, ":/?#");
		hostlen = (size_t)(host_end - host);
		for (p = auth, ncolon = 0; p < auth_end; p++)
			ncolon += *p == ':';
		if (ncolon > 1) {
			snprintf(err, errlen, "IPv6 addresses need brackets, "
			    "as in %s", texts->ipv6_example);
			return (-AS_EINVAL);
		}
		if (hostlen == 0) {
			snprintf(err, errlen, "the address has no host");
			return (-AS_EINVAL);
		}
		for (i = 0; i < hostlen; i++) {
			if (!isalnum((unsigned char)host[i]) &&
			    host[i] != '-' && host[i] != '.' && host[i] != '_')
				break;
		}
		if (i != hostlen) {
			snprintf(err, errlen, "bad character in the host name");
			return (-AS_EINVAL);
		}
		q = host_end;
	}
	if (hostlen >= sizeof out->host) {
		snprintf(err, errlen, "host name too long");
		return (-AS_EINVAL);
	}

	if (q < auth_end && *q == ':') {
		if (q + 1 == auth_end) {
			snprintf(err, errlen, "empty port after ':'");
			return (-AS_EINVAL);
		}
		if (scaler_url_parse_number(q + 1, auth_end, 65535,
		    &port) != 0 || port == 0) {
			snprintf(err, errlen, "port must be a number from 1 "
			    "to 65535");
			return (-AS_EINVAL);
		}
	} else if (q != auth_end) {
		snprintf(err, errlen, "unexpected character after the host");
		return (-AS_EINVAL);
	}
	memcpy(out->host, host, hostlen);
	out->host[hostlen] = '\0';
	out->port = (int)port;
	out->end = auth_end;
	return (0);
}
