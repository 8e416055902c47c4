/*
 * scaler_url.h: the part of a source address every source parses the same
 * way (scalers/url.c): the scheme's extent, the authority, host[:port]
 * with IPv6 in brackets and no user:password@, and decimal numbers (the
 * port, the redis database).  Each source keeps its own scheme table,
 * defaults and path (redis database, rabbitmq vhost), and its own wording
 * where the two differ (struct scaler_url_texts).
 *
 * Pure: no I/O, no name lookup.  Error messages never quote the authority,
 * since a rejected address may carry a password.
 *
 * Ownership: everything is borrowed; out->end points into the caller's
 * string.
 */
#ifndef AGENTSCALER_SCALER_URL_H
#define AGENTSCALER_SCALER_URL_H

#include <stddef.h>

#define SCALER_URL_HOST_MAX	255

/* The source's own words in two of the messages. */
struct scaler_url_texts {
	const char	*credentials;	/* after "...not allowed; use " */
	const char	*ipv6_example;	/* after "need brackets, as in " */
};

struct scaler_url_authority {
	char		 host[SCALER_URL_HOST_MAX + 1];	/* IPv6 bare */
	int		 port;		/* 1..65535, 0 when absent */
	const char	*end;		/* "", or "/...", "?..." or "#..." */
};

/*
 * Returns the length of url's scheme when url starts with "scheme://" (a
 * letter, then letters, digits, '+', '-' or '.', 16 characters at most),
 * else 0.
 */
size_t	 scaler_url_scheme_length(const char *url);

/*
 * Parses the authority that starts at auth (just after "scheme://") and
 * ends at the first '/', '?', '#' or the end of the string, into *out.
 * Returns 0, or -AS_EINVAL with a message in err for inline credentials
 * (refused, never echoed), a bad or missing host, a host longer than
 * SCALER_URL_HOST_MAX, an unbracketed IPv6 address, a bad port or
 * trailing characters.
 */
int	 scaler_url_parse_authority(const char *auth,
	    const struct scaler_url_texts *, struct scaler_url_authority *out,
	    char *err, size_t errlen);

/*
 * Parses [p, end) as a decimal number from 0 to max: digits only, no sign,
 * not empty.  Returns 0 with it in *out, or -1 and leaves *out alone.
 */
int	 scaler_url_parse_number(const char *p, const char *end, long max,
	    long *out);

#endif
