/*
 * fuzz_convert.c: libFuzzer target for `agentscaler convert` (pure: YAML
 * bytes in, AgentPool YAML out).  Every input either converts or fails
 * with a message, never crashes or leaks; what it prints for a pool is
 * YAML the config parser reads without crashing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/yaml.h"
#include "scheduler/config.h"
#include "scheduler/convert.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct as_buf	 out = { NULL, 0, 0 };
	struct config	*c = NULL;
	cJSON		*docs;
	char		 err[512];
	int		 n;

	if (as_yaml_parse((const char *)data, size, &docs, NULL, err,
	    sizeof err) != 0)
		return (0);
	err[0] = '\0';
	n = convert_keda(docs, size & 1, &out, err, sizeof err);
	if (n < 0 && err[0] == '\0')
		abort();
	if (n > 0 && config_parse(out.p, out.len, NULL, &c, err,
	    sizeof err) == 0)
		config_free(c);
	free(out.p);
	cJSON_Delete(docs);
	return (0);
}
