/*
 * status.c: turns an error response from the API server into one line of
 * text for logs and for the status page.
 *
 * Kubernetes answers most failures with a Status object (see
 * ref/kubernetes-api-semantics.md section 4); we print its code, reason and
 * message.  Anything else (the plain-text 429 of API Priority and Fairness,
 * a proxy's HTML page) is shown raw, cut to K8S_STATUS_RAW bytes and made
 * printable, so that one bad body cannot flood a log line.  Pure: no I/O.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/k8s/k8s.h"

#define K8S_STATUS_RAW	200

static size_t	 status_sanitise(char *, size_t, const char *, size_t);

/*
 * Copies at most len bytes of src into out as printable ASCII on one line:
 * control characters become spaces, each non-ASCII UTF-8 character becomes
 * one '?', runs of spaces collapse and the ends are trimmed.  Returns the
 * length written.
 */
static size_t
status_sanitise(char *out, size_t outlen, const char *src, size_t len)
{
	size_t		 i, n = 0;
	unsigned char	 ch;
	int		 space = 1;	/* drops leading blanks */

	if (outlen == 0)
		return (0);
	for (i = 0; i < len && n + 1 < outlen; i++) {
		ch = (unsigned char)src[i];
		if (ch < 0x20 || ch == 0x7f || ch == ' ') {
			if (space)
				continue;
			ch = ' ';
			space = 1;
		} else if ((ch & 0xc0) == 0x80) {
			continue;	/* UTF-8 continuation: one '?' is enough */
		} else {
			if (ch >= 0x80)
				ch = '?';
			space = 0;
		}
		out[n++] = (char)ch;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	return (n);
}

/*
 * The forms, by example:
 *   404 NotFound: deployments.apps "web" not found	(a Status)
 *   503: upstream connect error			(anything else)
 *   502: empty body
 */
void
k8s_status_message(long code, const char *body, size_t len, char *out,
    size_t outlen)
{
	cJSON		*j = NULL;
	const char	*reason = NULL, *message = NULL, *kind;
	char		 text[512], rtext[128];
	size_t		 n;

	if (out == NULL || outlen == 0)
		return;
	if (body == NULL)
		len = 0;
	if (len > 0)
		j = cJSON_ParseWithLength(body, len);
	if (cJSON_IsObject(j)) {
		kind = as_json_str(j, "kind");
		if (kind == NULL || strcmp(kind, "Status") == 0) {
			reason = as_json_str(j, "reason");
			message = as_json_str(j, "message");
		}
	}
	if (reason != NULL && *reason == '\0')
		reason = NULL;
	if (message != NULL && *message == '\0')
		message = NULL;
	if (message != NULL) {
		status_sanitise(text, sizeof text, message, strlen(message));
		if (reason != NULL) {
			/* The reason is the server's text too: one line. */
			status_sanitise(rtext, sizeof rtext, reason,
			    strlen(reason));
			snprintf(out, outlen, "%ld %s: %s", code, rtext, text);
		} else
			snprintf(out, outlen, "%ld: %s", code, text);
	} else if (reason != NULL) {
		status_sanitise(text, sizeof text, reason, strlen(reason));
		snprintf(out, outlen, "%ld %s", code, text);
	} else {
		n = status_sanitise(text, sizeof text, body,
		    len < K8S_STATUS_RAW ? len : K8S_STATUS_RAW);
		snprintf(out, outlen, "%ld: %s", code, n > 0 ? text :
		    "empty body");
	}
	cJSON_Delete(j);
}
