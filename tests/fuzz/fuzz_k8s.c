/*
 * fuzz_k8s.c: libFuzzer target for the Kubernetes response parsers: the
 * Scale body and the Status-to-message formatter, both pure.  A Scale that
 * parses has replica counts in range; a refusal says why.  The message
 * starts with the code, is terminated within the buffer it was given and
 * never written past it, and a shorter buffer gets a prefix of the same
 * text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/k8s/k8s.h"

#define SHORT	8

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct k8s_scale sc;
	char		 err[256], msg[512], cut[512], num[32];
	long		 code = size > 0 ? 100 + data[0] * 2 : 500;
	size_t		 i, n;

	err[0] = '\0';
	memset(&sc, 0x5a, sizeof sc);
	if (k8s_scale_parse((const char *)data, size, &sc, err,
	    sizeof err) != 0) {
		if (err[0] == '\0')
			abort();
	} else if (sc.spec_replicas < 0 || sc.spec_replicas > INT32_MAX ||
	    sc.status_replicas < 0 || sc.status_replicas > INT32_MAX)
		abort();

	memset(msg, 0x5a, sizeof msg);
	k8s_status_message(code, (const char *)data, size, msg, sizeof msg);
	if (memchr(msg, '\0', sizeof msg) == NULL)
		abort();
	n = strlen(msg);
	snprintf(num, sizeof num, "%ld", code);
	if (strncmp(msg, num, strlen(num)) != 0 ||
	    (msg[strlen(num)] != ':' && msg[strlen(num)] != ' '))
		abort();
	/* One printable ASCII line: the server's text is sanitised. */
	for (i = 0; i < n; i++)
		if ((unsigned char)msg[i] < 0x20 ||
		    (unsigned char)msg[i] >= 0x7f)
			abort();

	memset(cut, 0x5a, sizeof cut);
	k8s_status_message(code, (const char *)data, size, cut, SHORT);
	if (memchr(cut, '\0', SHORT) == NULL)
		abort();
	for (i = SHORT; i < sizeof cut; i++)
		if (cut[i] != 0x5a)
			abort();	/* written past the buffer */
	if (strncmp(cut, msg, strlen(cut)) != 0 ||
	    strlen(cut) != (n < SHORT - 1 ? n : SHORT - 1))
		abort();
	return (0);
}
