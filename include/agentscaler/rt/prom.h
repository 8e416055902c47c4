/*
 * prom.h: the one writer of Prometheus text exposition format 0.0.4
 * (scheduler/rt/prom.c), for every /metrics family of the daemon.
 *
 * A family starts with prom_family(): "# HELP" and "# TYPE" are written
 * once, when the family differs from the one written last, so rows of a
 * table that share a family may each name it.  A sample is a name, a label
 * list and a value; label values are escaped here (backslash, double
 * quote, newline), so callers pass raw strings.  A label list is an array
 * of const char * holding key, value, key, value, ... and ending at the
 * first NULL key (NULL itself is the empty list).
 *
 * Ownership: the text accumulates in w->b, which the caller owns and frees
 * (or hands to the HTTP server); everything passed in is borrowed for the
 * call.
 */
#ifndef AGENTSCALER_PROM_H
#define AGENTSCALER_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "agentscaler/rt/common.h"

#define PROM_NAME_MAX	128
#define PROM_LABELS_MAX	8	/* pairs before prom_sample_each()'s own */

enum prom_type {
	PROM_COUNTER,
	PROM_GAUGE,
	PROM_HISTOGRAM
};

/* Zero-initialise (struct prom w = { 0 };) to start an empty text. */
struct prom {
	struct as_buf	 b;
	char		 family[PROM_NAME_MAX];	/* head written last */
};

/*
 * Writes the HELP and TYPE lines of family name, unless name is the family
 * written last.  help is a printf format; the text it makes is escaped as
 * HELP text is (backslash, newline).
 */
void		 prom_family(struct prom *, const char *name, enum prom_type,
		    const char *help, ...)
		    __attribute__((format(printf, 4, 5)));

/* name{labels} v, the value as %.17g (integers up to 2^53 exactly). */
void		 prom_sample(struct prom *, const char *name,
		    const char *const *labels, double v);
/*
 * A series per value: name{labels,key="names[i]"} v[i] for each i < n, as
 * prom_sample() writes them (labels: PROM_LABELS_MAX pairs at most, the
 * rest ignored).
 */
void		 prom_sample_each(struct prom *, const char *name,
		    const char *const *labels, const char *key,
		    const char *const *names, const double *v, size_t n);
/* name{labels} v for a counter: every uint64_t exactly. */
void		 prom_sample_u64(struct prom *, const char *name,
		    const char *const *labels, uint64_t v);
/* name{labels} and the value as the printf format makes it. */
void		 prom_samplef(struct prom *, const char *name,
		    const char *const *labels, const char *fmt, ...)
		    __attribute__((format(printf, 4, 5)));

/*
 * The series of one histogram: name_bucket{labels,le="b"} with cumulative
 * counts for each of the n bounds (le as %g) and le="+Inf", then name_sum
 * (%.9g) and name_count.  counts holds n + 1 per-bucket (not cumulative)
 * counts, the last one above every bound.
 */
void		 prom_histogram(struct prom *, const char *name,
		    const char *const *labels, const double *bounds,
		    const uint64_t *counts, size_t n, double sum,
		    uint64_t count);

/*
 * A row of a table of per-object series, for modules whose values are
 * fields of a struct: the family (help NULL: the row continues the
 * family of the row above), a fixed extra label (label NULL: none), and
 * the field at offset off, read as its kind says.  PROM_F_CALL: the
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
	const char	*name;
	enum prom_type	 type;
	const char	*label;
	const char	*value;
	size_t		 off;
	enum prom_field	 kind;
	const char	*help;
};

/* The field of obj the row names, as a double; NAN for PROM_F_CALL. */
double		 prom_row_value(const struct prom_row *, const void *obj);

#endif
