/*
 * fuzz_config.c: libFuzzer target for the config parser (pure: bytes in,
 * struct config or an error out).  Every input must either parse or fail
 * with a message, never crash or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "scheduler/quantity.h"
#include "scheduler/config.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*c = NULL;
	char		 err[512];
	double		 q;
	char		*s;

	err[0] = '\0';
	if (config_parse((const char *)data, size, "/s", &c, err,
	    sizeof err) == 0) {
		if (c == NULL)
			abort();
		config_free(c);
	} else if (c != NULL || err[0] == '\0')
		abort();	/* a failure always explains itself */
	s = xstrndup((const char *)data, size > 64 ? 64 : size);
	(void)quantity_parse(s, &q);
	free(s);
	return (0);
}
