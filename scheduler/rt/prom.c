/*
 * prom.c: Prometheus text exposition format 0.0.4 (prom.h).
 *
 * Everything is appended to one as_buf, which grows as needed and aborts
 * on out-of-memory like every x*alloc: a /metrics answer is either whole
 * or the process is gone.  The only state is the family written last,
 * which is what keeps HELP and TYPE to one pair a family when the rows of
 * a table name it again.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/prom.h"

static const char *const prom_type_names[] = {
	[PROM_COUNTER] = "counter",
	[PROM_GAUGE] = "gauge",
	[PROM_HISTOGRAM] = "histogram",
};

static int	 prom_same_family(const struct prom *, const char *);
static void	 prom_series(struct prom *, const char *name,
		    const char *suffix, const char *const *labels,
		    const char *le);

/*
 * 1 when name is the family written last.  A name too long for the memory
 * is compared on what it holds: the longest real names are a third of it.
 */
static int
prom_same_family(const struct prom *w, const char *name)
{
	size_t	 n = strlen(w->family);

	return (n > 0 && strncmp(w->family, name, n) == 0 &&
	    (name[n] == '\0' || n == sizeof w->family - 1));
}

void
prom_family(struct prom *w, const char *name, enum prom_type type,
    const char *help, ...)
{
	va_list	 ap;
	char	*text;
	size_t	 i;

	if (prom_same_family(w, name))
		return;
	as_strlcpy(w->family, name, sizeof w->family);
	va_start(ap, help);
	text = xvasprintf(help, ap);
	va_end(ap);
	as_buf_printf(&w->b, "# HELP %s ", name);
	/* HELP text escapes backslash and newline, not the double quote. */
	for (i = 0; text[i] != '\0'; i++) {
		if (text[i] == '\\')
			as_buf_printf(&w->b, "\\\\");
		else if (text[i] == '\n')
			as_buf_printf(&w->b, "\\n");
		else
			as_buf_printf(&w->b, "%c", text[i]);
	}
	free(text);
	as_buf_printf(&w->b, "\n# TYPE %s %s\n", name, prom_type_names[type]);
}

/* name[suffix]{k="v",...[,le="..."]} with no value yet. */
static void
prom_series(struct prom *w, const char *name, const char *suffix,
    const char *const *labels, const char *le)
{
	size_t	 i;
	int	 any = 0;

	as_buf_printf(&w->b, "%s%s", name, suffix);
	for (i = 0; labels != NULL && labels[i] != NULL; i += 2) {
		as_buf_printf(&w->b, "%s%s=\"", any ? "," : "{", labels[i]);
		as_buf_label(&w->b, labels[i + 1] != NULL ? labels[i + 1] :
		    "");
		as_buf_printf(&w->b, "\"");
		any = 1;
	}
	if (le != NULL) {
		as_buf_printf(&w->b, "%sle=\"%s\"", any ? "," : "{", le);
		any = 1;
	}
	if (any)
		as_buf_printf(&w->b, "}");
}

void
prom_sample(struct prom *w, const char *name, const char *const *labels,
    double v)
{
	prom_series(w, name, "", labels, NULL);
	as_buf_printf(&w->b, " %.17g\n", v);
}

void
prom_sample_each(struct prom *w, const char *name, const char *const *labels,
    const char *key, const char *const *names, const double *v, size_t n)
{
	const char	*all[2 * PROM_LABELS_MAX + 3];
	size_t		 i, k = 0;

	for (i = 0; labels != NULL && labels[i] != NULL &&
	    k < 2 * PROM_LABELS_MAX; i += 2) {
		all[k++] = labels[i];
		all[k++] = labels[i + 1];
	}
	all[k] = key;
	all[k + 2] = NULL;
	for (i = 0; i < n; i++) {
		all[k + 1] = names[i];
		prom_sample(w, name, all, v[i]);
	}
}

void
prom_sample_u64(struct prom *w, const char *name, const char *const *labels,
    uint64_t v)
{
	prom_series(w, name, "", labels, NULL);
	as_buf_printf(&w->b, " %llu\n", (unsigned long long)v);
}

void
prom_samplef(struct prom *w, const char *name, const char *const *labels,
    const char *fmt, ...)
{
	va_list	 ap;
	char	*text;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	prom_series(w, name, "", labels, NULL);
	as_buf_printf(&w->b, " %s\n", text);
	free(text);
}

void
prom_histogram(struct prom *w, const char *name, const char *const *labels,
    const double *bounds, const uint64_t *counts, size_t n, double sum,
    uint64_t count)
{
	uint64_t	 cum = 0;
	char		 le[40];
	size_t		 i;

	for (i = 0; i <= n; i++) {
		cum += counts[i];
		if (i < n)
			snprintf(le, sizeof le, "%g", bounds[i]);
		else
			as_strlcpy(le, "+Inf", sizeof le);
		prom_series(w, name, "_bucket", labels, le);
		as_buf_printf(&w->b, " %llu\n", (unsigned long long)cum);
	}
	prom_series(w, name, "_sum", labels, NULL);
	as_buf_printf(&w->b, " %.9g\n", sum);
	prom_series(w, name, "_count", labels, NULL);
	as_buf_printf(&w->b, " %llu\n", (unsigned long long)count);
}

double
prom_row_value(const struct prom_row *row, const void *obj)
{
	const char	*f = (const char *)obj + row->off;

	switch (row->kind) {
	case PROM_F_DOUBLE:
		return (*(const double *)(const void *)f);
	case PROM_F_LONG:
		return ((double)*(const long *)(const void *)f);
	case PROM_F_U64:
		return ((double)*(const uint64_t *)(const void *)f);
	case PROM_F_INT:
		return ((double)*(const int *)(const void *)f);
	default:
		return (NAN);
	}
}
