/*
 * prom.c: Prometheus text exposition format 0.0.4 (prom.h).
 *
 * Everything is appended to one as_buf, which grows as needed and aborts
 * on out-of-memory like every x*alloc: a /metrics answer is either whole
 * or the process is gone.  The only state is the family written last,
 * which keeps HELP and TYPE to one pair a family when the rows of a table
 * name it again and names the samples that follow, and the count of
 * samples whose label keys are not their family's.
 */
#include <sys/resource.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/prom.h"

static const char *const prom_type_names[] = {
	[PROM_COUNTER] = "counter",
	[PROM_GAUGE] = "gauge",
	[PROM_HISTOGRAM] = "histogram",
};

static void	 prom_series(struct prom *, const char *suffix,
		    const char *const *labels, const char *le);
static int	 prom_keys_match(const char *, const char *const *);
static void	 prom_process_stat(struct prom *);
static double	 prom_boot_time(void);
static void	 prom_md_cell(FILE *, const char *);

void
prom_family(struct prom *w, const struct prom_def *def)
{
	size_t	 i;

	if (w->def == def)
		return;
	w->def = def;
	as_buf_printf(&w->b, "# HELP %s ", def->name);
	/* HELP text escapes backslash and newline, not the double quote. */
	for (i = 0; def->help[i] != '\0'; i++) {
		if (def->help[i] == '\\')
			as_buf_printf(&w->b, "\\\\");
		else if (def->help[i] == '\n')
			as_buf_printf(&w->b, "\\n");
		else
			as_buf_printf(&w->b, "%c", def->help[i]);
	}
	as_buf_printf(&w->b, "\n# TYPE %s %s\n", def->name,
	    prom_type_names[def->type]);
}

/* 1 when the keys of labels are those of want (space-separated), in order. */
static int
prom_keys_match(const char *want, const char *const *labels)
{
	size_t	 i, n;

	for (i = 0; labels != NULL && labels[i] != NULL; i += 2) {
		n = strlen(labels[i]);
		if (strncmp(want, labels[i], n) != 0 ||
		    (want[n] != ' ' && want[n] != '\0'))
			return (0);
		want += n;
		if (*want == ' ')
			want++;
	}
	return (*want == '\0');
}

/* family[suffix]{k="v",...[,le="..."]} with no value yet. */
static void
prom_series(struct prom *w, const char *suffix, const char *const *labels,
    const char *le)
{
	size_t	 i;
	int	 any = 0;

	if (w->def == NULL) {
		w->strays++;	/* a sample before any family: dropped */
		return;
	}
	if (!prom_keys_match(w->def->labels, labels))
		w->strays++;
	as_buf_printf(&w->b, "%s%s", w->def->name, suffix);
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
prom_sample(struct prom *w, const char *const *labels, double v)
{
	if (w->def == NULL) {
		w->strays++;
		return;
	}
	prom_series(w, "", labels, NULL);
	as_buf_printf(&w->b, " %.17g\n", v);
}

void
prom_sample_each(struct prom *w, const char *const *labels, const char *key,
    const char *const *names, const double *v, size_t n)
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
		prom_sample(w, all, v[i]);
	}
}

void
prom_sample_u64(struct prom *w, const char *const *labels, uint64_t v)
{
	if (w->def == NULL) {
		w->strays++;
		return;
	}
	prom_series(w, "", labels, NULL);
	as_buf_printf(&w->b, " %llu\n", (unsigned long long)v);
}

void
prom_hist_init(struct prom_hist *h, const double *bounds, size_t n)
{
	memset(h, 0, sizeof *h);
	h->bounds = bounds;
	h->n = n < PROM_HIST_MAX ? n : PROM_HIST_MAX - 1;
}

void
prom_hist_add(struct prom_hist *h, double v)
{
	size_t	 i;

	if (!(v >= 0))
		v = 0;
	for (i = 0; i < h->n && v > h->bounds[i]; i++)
		;
	h->counts[i]++;
	h->total++;
	h->sum += v;
}

void
prom_histogram(struct prom *w, const char *const *labels,
    const struct prom_hist *h)
{
	uint64_t	 cum = 0;
	char		 le[40];
	size_t		 i;

	if (w->def == NULL) {
		w->strays++;
		return;
	}
	for (i = 0; i <= h->n; i++) {
		cum += h->counts[i];
		if (i < h->n)
			snprintf(le, sizeof le, "%g", h->bounds[i]);
		else
			as_strlcpy(le, "+Inf", sizeof le);
		prom_series(w, "_bucket", labels, le);
		as_buf_printf(&w->b, " %llu\n", (unsigned long long)cum);
	}
	prom_series(w, "_sum", labels, NULL);
	as_buf_printf(&w->b, " %.9g\n", h->sum);
	prom_series(w, "_count", labels, NULL);
	as_buf_printf(&w->b, " %llu\n", (unsigned long long)h->total);
}

/*
 * The process_* family, with the names and meanings of the Prometheus
 * client libraries (client_golang prometheus/process_collector_procfs.go
 * reads the same /proc files).
 */
static const struct prom_def pm_start = { "process_start_time_seconds",
    PROM_GAUGE, "", "Start time of the process since the Unix epoch, in "
    "seconds." };
static const struct prom_def pm_cpu = { "process_cpu_seconds_total",
    PROM_COUNTER, "", "User and system CPU time spent, in seconds." };
static const struct prom_def pm_rss = { "process_resident_memory_bytes",
    PROM_GAUGE, "", "Resident memory size, in bytes." };
static const struct prom_def pm_vsize = { "process_virtual_memory_bytes",
    PROM_GAUGE, "", "Virtual memory size, in bytes." };
static const struct prom_def pm_fds = { "process_open_fds", PROM_GAUGE, "",
    "Open file descriptors." };
static const struct prom_def pm_max_fds = { "process_max_fds", PROM_GAUGE,
    "", "Limit of open file descriptors (RLIMIT_NOFILE, soft)." };

const struct prom_def *const prom_process_defs[] = {
	&pm_start, &pm_cpu, &pm_rss, &pm_vsize, &pm_fds, &pm_max_fds, NULL
};

/* Boot time (btime of /proc/stat), 0 when unknown. */
static double
prom_boot_time(void)
{
	FILE		*f;
	char		 line[256];
	double		 bt = 0;

	if ((f = fopen("/proc/stat", "re")) == NULL)
		return (0);
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "btime %lf", &bt) == 1)
			break;
	fclose(f);
	return (bt);
}

/* /proc/self/stat: fields 14-15 (utime, stime), 22-24 (start, vsize, rss). */
static void
prom_process_stat(struct prom *w)
{
	FILE		*f;
	char		 buf[1024], *p;
	unsigned long long utime, stime, start, vsize;
	long long	 rss;
	long		 tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	double		 bt;
	size_t		 n;

	if ((f = fopen("/proc/self/stat", "re")) == NULL)
		return;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command may hold spaces and parentheses: skip to its end. */
	if ((p = strrchr(buf, ')')) == NULL || tck <= 0 || page <= 0)
		return;
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld", &utime,
	    &stime, &start, &vsize, &rss) != 5)
		return;
	if ((bt = prom_boot_time()) > 0) {
		prom_family(w, &pm_start);
		prom_sample(w, NULL, bt + (double)start / (double)tck);
	}
	prom_family(w, &pm_cpu);
	prom_sample(w, NULL, (double)(utime + stime) / (double)tck);
	prom_family(w, &pm_rss);
	prom_sample(w, NULL, (double)rss * (double)page);
	prom_family(w, &pm_vsize);
	prom_sample(w, NULL, (double)vsize);
}

void
prom_process(struct prom *w)
{
	DIR		*dir;
	struct dirent	*de;
	struct rlimit	 rl;
	long		 n = 0;

	prom_process_stat(w);
	if ((dir = opendir("/proc/self/fd")) != NULL) {
		while ((de = readdir(dir)) != NULL)
			if (de->d_name[0] != '.')
				n++;
		closedir(dir);
		prom_family(w, &pm_fds);
		prom_sample(w, NULL, (double)(n - 1));	/* less the DIR's */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY) {
		prom_family(w, &pm_max_fds);
		prom_sample(w, NULL, (double)rl.rlim_cur);
	}
}

/* Markdown cells hold no newline and no bare pipe. */
static void
prom_md_cell(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '|')
			fputs("\\|", f);
		else if (*s == '\n')
			fputc(' ', f);
		else
			fputc(*s, f);
	}
}

void
prom_defs_print(FILE *f, const struct prom_def *const *defs)
{
	const char	*l;

	for (; *defs != NULL; defs++) {
		fprintf(f, "| `%s` | %s | ", (*defs)->name,
		    prom_type_names[(*defs)->type]);
		for (l = (*defs)->labels; *l != '\0'; l++)
			if (*l == ' ')
				fputs(", ", f);
			else
				fputc(*l, f);
		fputs(" | ", f);
		prom_md_cell(f, (*defs)->help);
		fputs(" |\n", f);
	}
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
