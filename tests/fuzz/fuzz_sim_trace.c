/*
 * fuzz_sim_trace.c: libFuzzer target for the simulator's trace parser
 * (sim_trace.h; pure: bytes in, a trace or "line N: why" out).  A failure
 * always names its line and leaves the trace empty; a trace that parses
 * keeps every parent before its child, and runs through one policy.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "scheduler/sim_trace.h"
#include "scheduler/simulate.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sim_trace tr;
	struct sim_cluster c;
	struct sim_policy p;
	struct sim_result r;
	char		 err[256];
	size_t		 i;

	err[0] = '\0';
	if (sim_trace_parse((const char *)data, size, &tr, err,
	    sizeof err) != 0) {
		if (strncmp(err, "line ", 5) != 0 || tr.n != 0 || tr.v != NULL)
			abort();
		return (0);
	}
	for (i = 0; i < tr.n; i++)
		if (tr.v[i].parent >= (long)i ||
		    (tr.v[i].parent >= 0 && tr.v[i].t < tr.v[tr.v[i].parent].t))
			abort();
	if (tr.n <= 50) {
		sim_cluster_defaults(&c);
		(void)sim_policy_parse("predictive", &p);
		sim_run(&tr, &c, &p, NULL, NULL, &r);
		if (r.started > tr.n)
			abort();
		sim_result_free(&r);
	}
	sim_trace_free(&tr);
	return (0);
}
