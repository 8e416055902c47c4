/*
 * prom.h: the one writer of Prometheus text exposition format 0.0.4
 * (scheduler/rt/prom.c), for every /metrics family of the daemon.
 *
 * Every family is declared once, as a const struct prom_def (name, type,
 * label keys, help) in the module that writes it; the module lists its
 * definitions in a NULL-ended array that `agentscaler --print-metrics`
 * prints as the README's table (daemon_http.c collects the arrays).  A
 * family starts with prom_family(def): "# HELP" and "# TYPE" are written
 * once, when def differs from the family written last.  Samples name no
 * family: they belong to the one started last, so a series cannot be
 * written outside the family that documents it.  A sample whose label keys
 * are not the definition's, in order, is still written but counted in
 * w->strays (the daemon logs it; tests assert none).
 *
 * A label list is an array of const char * holding key, value, key,
 * value, ... and ending at the first NULL key (NULL itself is the empty
 * list).  Label values are escaped here (backslash, double quote,
 * newline), so callers pass raw strings.
 *
 * Naming follows the Prometheus conventions (base units, _total for
 * counters, _seconds, _bytes; a gauge's series sum to something
 * meaningful; an unknown value is an absent series, never -1).
 *
 * Ownership: the text accumulates in w->b, which the caller owns and frees
 * (or hands to the HTTP server); everything passed in is borrowed for the
 * call, and definitions must outlive the writer (they are static).
 */
#ifndef AGENTSCALER_PROM_H
#define AGENTSCALER_PROM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agentscaler/rt/common.h"

#define PROM_LABELS_MAX	8	/* pairs before prom_sample_each()'s own */
#define PROM_HIST_MAX	24	/* buckets of a struct prom_hist, +Inf in */

enum prom_type {
	PROM_COUNTER,
	PROM_GAUGE,
	PROM_HISTOGRAM
};

/* One family: what the README's table says of it. */
struct prom_def {
	const char	*name;
	enum prom_type	 type;
	const char	*labels;	/* keys, space-separated; "" none */
	const char	*help;
};

/* Zero-initialise (struct prom w = { 0 };) to start an empty text. */
struct prom {
	struct as_buf		 b;
	const struct prom_def	*def;		/* the family written last */
	unsigned		 strays;	/* samples off their def */
};

/* Writes def's HELP and TYPE lines, unless def is the family written last. */
void		 prom_family(struct prom *, const struct prom_def *);

/* family{labels} v, the value as %.17g (integers up to 2^53 exactly). */
void		 prom_sample(struct prom *, const char *const *labels,
		    double v);
/*
 * A series per value: family{labels,key="names[i]"} v[i] for each i < n,
 * as prom_sample() writes them (labels: PROM_LABELS_MAX pairs at most, the
 * rest ignored).
 */
void		 prom_sample_each(struct prom *, const char *const *labels,
		    const char *key, const char *const *names,
		    const double *v, size_t n);
/* family{labels} v for a counter: every uint64_t exactly. */
void		 prom_sample_u64(struct prom *, const char *const *labels,
		    uint64_t v);

/*
 * A histogram's state: n bounds (ascending, at most PROM_HIST_MAX - 1)
 * and a count per bucket (not cumulative), the last one above every bound.
 */
struct prom_hist {
	const double	*bounds;
	size_t		 n;
	uint64_t	 counts[PROM_HIST_MAX];
	uint64_t	 total;
	double		 sum;
};

void		 prom_hist_init(struct prom_hist *, const double *bounds,
		    size_t n);
/* Counts v (a negative or NaN v counts as 0). */
void		 prom_hist_add(struct prom_hist *, double v);
/*
 * The series of one histogram: family_bucket{labels,le="b"} with
 * cumulative counts for each bound (le as %g) and le="+Inf", then
 * family_sum (%.9g) and family_count.
 */
void		 prom_histogram(struct prom *, const char *const *labels,
		    const struct prom_hist *);

/*
 * The process_* family of the Prometheus client libraries, read from
 * /proc/self (Linux): start time, CPU seconds, resident and virtual
 * memory, open and maximum file descriptors.  A value that cannot be read
 * is left out.
 */
extern const struct prom_def *const prom_process_defs[];
void		 prom_process(struct prom *);

/*
 * The Markdown rows (| `name` | type | labels | help |) of a NULL-ended
 * array of definitions.
 */
void		 prom_defs_print(FILE *, const struct prom_def *const *);

/*
 * A row of a table of per-object series, for modules whose values are
 * fields of a struct: the family, a fixed extra label (label NULL: none),
 * and the field at offset off, read as its kind says.  PROM_F_CALL: the
 * caller computes the value (off is free for its own use).
 */
enum prom_field {
	PROM_F_DOUBLE,
	PROM_F_LONG,
	PROM_F_U64,
	PROM_F_INT,
	PROM_F_CALL
};

struct prom_row {
	const struct prom_def *def;
	const char	*label;
	const char	*value;
	size_t		 off;
	enum prom_field	 kind;
};

/* The field of obj the row names, as a double; NAN for PROM_F_CALL. */
double		 prom_row_value(const struct prom_row *, const void *obj);

#endif
