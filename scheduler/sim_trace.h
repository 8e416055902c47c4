/*
 * sim_trace.h: arrival traces for the policy simulator (simulate.h): a
 * seeded random generator, the JSON-lines trace format with its strict
 * parser, and the named generators.
 *
 * A trace is one JSON object a line:
 *
 *   {"t": 12.5, "id": "r7", "parent": null, "work": 30,
 *    "resources": {"cpu": 1}}
 *
 * t is the nominal arrival in seconds, work how long the task runs once
 * its agent has it, resources its requests in base units (cores, bytes;
 * at most SIM_MAX_RES names).  A child names an earlier task as parent;
 * its t - parent's t is when, after the parent STARTED, the parent spawns
 * it: a parent that waits longer spawns later, and a parent that is
 * rejected spawns nothing.  Lines that are empty or start with '#' are
 * skipped.
 *
 * Ownership: a sim_trace owns its tasks; sim_trace_free() frees them.
 */
#ifndef AGENTSCALER_SIM_TRACE_H
#define AGENTSCALER_SIM_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SIM_MAX_RES	4
#define SIM_ID_MAX	48

/* splitmix64: small, seedable, the same sequence on every platform. */
struct sim_rng {
	uint64_t s;
};

void	 sim_rng_seed(struct sim_rng *, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *);
/* Uniform in [0, 1). */
double	 sim_rng_uniform(struct sim_rng *);
/* Exponential with this mean. */
double	 sim_rng_exp(struct sim_rng *, double mean);
/* Log-normal with this median and sigma of the log. */
double	 sim_rng_lognormal(struct sim_rng *, double median, double sigma);

struct sim_task {
	double	 t;
	double	 work;
	long	 parent;		/* index of an earlier task; -1: root */
	int	 depth;			/* 0 for a root */
	int	 nres;
	char	 id[SIM_ID_MAX];
	char	 res_name[SIM_MAX_RES][24];
	double	 res_val[SIM_MAX_RES];
};

struct sim_trace {
	struct sim_task	*v;
	size_t		 n;
	size_t		 cap;
};

/*
 * Parses a whole trace.  Returns 0, or -1 with "line N: what" in err (the
 * first bad line) and out emptied.
 */
int	 sim_trace_parse(const char *buf, size_t len, struct sim_trace *out,
	    char *err, size_t errlen);
/* Appends a task (parent an index or -1); returns its index. */
size_t	 sim_trace_add(struct sim_trace *, double t, const char *id,
	    long parent, double work, double cpu);
/* Writes the trace as JSON lines, in the format sim_trace_parse reads. */
void	 sim_trace_write(const struct sim_trace *, FILE *);
void	 sim_trace_free(struct sim_trace *);

/*
 * Generator parameters; a zero field takes the generator's default
 * (sim_gen_defaults).
 */
struct sim_gen_params {
	double	 duration;	/* s of root arrivals */
	double	 rate;		/* roots/s (the mean, or while on) */
	double	 on;		/* onoff, cascade: burst length, s */
	double	 off;		/* onoff, cascade: quiet between bursts, s */
	double	 period;	/* diurnal: s per cycle */
	double	 work;		/* median work, s */
	double	 work_sigma;
	double	 spawn_p;	/* cascade: P(a task spawns) at depth 0 */
	double	 fanout;	/* cascade: mean children of a spawner */
	int	 max_depth;	/* cascade */
};

/* The generator names, NULL-terminated. */
const char *const *sim_gen_names(void);
/*
 * Fills the zero fields of p with name's defaults.  Returns -1 for an
 * unknown name.
 */
int	 sim_gen_defaults(const char *name, struct sim_gen_params *p);
/*
 * Generates a trace: the same (name, seed, params) always give the same
 * trace.  Returns -1 for an unknown name.
 *
 *   poisson  roots at a constant rate;
 *   onoff    bursts: rate for `on` s, then nothing for `off` s;
 *   diurnal  rate x (1 + sin) over `period` (a day squeezed);
 *   cascade  onoff roots, each task spawning with P(spawn_p / (depth+1))
 *            1 + geometric(fanout - 1) children at uniform points of its
 *            work, down to max_depth.
 */
int	 sim_generate(const char *name, uint64_t seed,
	    const struct sim_gen_params *p, struct sim_trace *out);

#endif
