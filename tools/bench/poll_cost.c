/*
 * poll_cost.c: what one poll sweep costs agentscaler, per source type.
 *
 * Creates N sources of one type on one broker endpoint (queues
 * <prefix>-0 .. <prefix>-N-1), then runs S sweeps: every source polls once,
 * and the sweep ends when all completions have arrived.  Prints the CPU time
 * of this process (getrusage, user + system) and the wall time per sweep.
 * The broker's own CPU is not counted; the caller measures round trips on
 * the broker side for Redis (tools/bench/bench.py reads INFO stats); for
 * RabbitMQ the source's own counters give the batches (AMQP declare
 * batches, HTTP listings) per sweep.  POLL_COST_GAP_MS sleeps between
 * sweeps (outside the measured CPU), so that the HTTP transport's 0.5 s
 * listing reuse does not answer a sweep for free.
 *
 * usage: poll_cost TYPE ADDRESS PREFIX N SWEEPS [GROUP]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/log.h"
#include "scalers/rabbitmq.h"
#include "agentscaler/scalers/scaler.h"

struct sweep {
	size_t	 pending;
	size_t	 errors;
	double	 ready;
};

static void
poll_cost_done(struct scaler *s, const struct scaler_result *r, void *arg)
{
	struct sweep	*sw = arg;

	(void)s;
	sw->pending--;
	if (r->error != 0)
		sw->errors++;
	else
		sw->ready += r->ready;
}

static double
poll_cost_cpu(void)
{
	struct rusage	 ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
}

int
main(int argc, char **argv)
{
	const struct scaler_type *st;
	struct scaler_source	 src;
	struct scaler		**s;
	struct ev_loop		*loop;
	struct sweep		 sw;
	char			 err[256], **names;
	struct rabbitmq_stats	 rs0, rs1;
	size_t			 n, i, k, sweeps, errors = 0;
	double			 gap = 0;
	int			 warmups = 0;
	double			 cpu0 = 0, wall0 = 0, cpu, wall;

	if (argc < 6) {
		fprintf(stderr, "usage: poll_cost TYPE ADDRESS PREFIX N SWEEPS "
		    "[GROUP]\n");
		return (2);
	}
	log_set_level(LOG_WARN);
	if ((st = scaler_type_find(argv[1])) == NULL) {
		fprintf(stderr, "poll_cost: unknown type %s\n", argv[1]);
		return (2);
	}
	if (getenv("POLL_COST_GAP_MS") != NULL)
		gap = strtod(getenv("POLL_COST_GAP_MS"), NULL) / 1000.0;
	memset(&rs0, 0, sizeof rs0);
	memset(&rs1, 0, sizeof rs1);
	n = strtoul(argv[4], NULL, 10);
	sweeps = strtoul(argv[5], NULL, 10);
	loop = ev_default_loop(EVFLAG_AUTO);
	s = xcalloc(n, sizeof *s);
	names = xcalloc(n, sizeof *names);
	for (i = 0; i < n; i++) {
		memset(&src, 0, sizeof src);
		names[i] = xasprintf("%s-%zu", argv[3], i);
		src.type = argv[1];
		src.address = argv[2];
		src.queue = names[i];
		src.consumer_group = argc > 6 ? argv[6] : NULL;
		if ((s[i] = st->create(loop, &src, err, sizeof err)) == NULL) {
			fprintf(stderr, "poll_cost: create: %s\n", err);
			return (1);
		}
	}
	/* One warm-up sweep: connections, handshakes. */
	for (k = 0; k <= sweeps; k++) {
		if (k > 0 && gap > 0) {
			double c = poll_cost_cpu(), w = as_mono_now();

			ev_sleep(gap);
			cpu0 += poll_cost_cpu() - c;	/* not ours to count */
			wall0 += as_mono_now() - w;
		}
		if (k == 1) {
			cpu0 = poll_cost_cpu();
			wall0 = as_mono_now();
			if (n > 0)
				(void)rabbitmq_stats(s[0], &rs0);
		}
		memset(&sw, 0, sizeof sw);
		for (i = 0; i < n; i++)
			if (scaler_poll(s[i], poll_cost_done, &sw) == 0)
				sw.pending++;
		while (sw.pending > 0)
			ev_run(loop, EVRUN_ONCE);
		if (k > 0)
			errors += sw.errors;
		else if (n > 0 && sw.errors > 0 && ++warmups < 300) {
			/*
			 * Still connecting, or (management API) queues not in
			 * the statistics yet: warm up again, for at most ~30 s.
			 */
			k--;
			ev_sleep(0.1);
		}
	}
	cpu = poll_cost_cpu() - cpu0;
	wall = as_mono_now() - wall0;
	if (n > 0)
		(void)rabbitmq_stats(s[0], &rs1);
	printf("{\"type\": \"%s\", \"pools\": %zu, \"sweeps\": %zu, "
	    "\"cpu_ms_per_sweep\": %.3f, \"wall_ms_per_sweep\": %.3f, "
	    "\"batches_per_sweep\": %.2f, \"errors\": %zu}\n", argv[1], n,
	    sweeps, cpu * 1000.0 / sweeps, wall * 1000.0 / sweeps,
	    (double)(rs1.batches - rs0.batches) / sweeps, errors);
	for (i = 0; i < n; i++) {
		scaler_destroy(s[i]);
		free(names[i]);
	}
	ev_run(loop, EVRUN_NOWAIT);
	free(s);
	free(names);
	return (errors > 0 ? 1 : 0);
}
