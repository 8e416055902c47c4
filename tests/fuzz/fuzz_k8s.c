/*
 * fuzz_k8s.c: libFuzzer target for the Kubernetes response parsers: the
 * Scale body and the Status-to-message formatter, both pure.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/k8s/k8s.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct k8s_scale sc;
	char		 err[256], msg[512];
	long		 code = size > 0 ? 100 + data[0] * 2 : 500;

	err[0] = '\0';
	if (k8s_scale_parse((const char *)data, size, &sc, err,
	    sizeof err) != 0 && err[0] == '\0')
		abort();
	k8s_status_message(code, (const char *)data, size, msg, sizeof msg);
	if (memchr(msg, '\0', sizeof msg) == NULL)
		abort();
	k8s_status_message(code, (const char *)data, size, msg, 8);
	return (0);
}
