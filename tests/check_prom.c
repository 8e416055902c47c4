/*
 * check_prom.c: the Prometheus text writer (scheduler/rt/prom.c).  Each row
 * of the table writes through the API and compares the whole text.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/prom.h"
#include "util/testutil.h"

static const char *const nslabels[] = { "namespace", "ns", "pool", "p",
    NULL };
static const char *const hard[] = { "v", "a\\b\"c\nd", NULL };
static const char *const extra[] = { "namespace", "ns", "launch", "warm",
    NULL, "ignored" };
static const double bounds[] = { 0.5, 1, 2.5 };

static const struct prom_def d_a = { "a_total", PROM_COUNTER,
    "namespace pool", "Things." };
static const struct prom_def d_a0 = { "a_total", PROM_COUNTER, "",
    "Things." };
static const struct prom_def d_b = { "b", PROM_GAUGE, "",
    "Stuff (at most 64)." };
static const struct prom_def d_c = { "c", PROM_GAUGE, "",
    "back\\slash\nnew \"line\"" };
static const struct prom_def d_d = { "d", PROM_GAUGE, "v", "D." };
static const struct prom_def d_e = { "e", PROM_GAUGE, "", "E." };
static const struct prom_def d_h = { "h", PROM_GAUGE, "namespace launch",
    "H." };
static const struct prom_def d_r = { "r_total", PROM_COUNTER, "result",
    "R." };
static const struct prom_def d_q = { "q", PROM_GAUGE, "namespace pool what",
    "Q." };
static const struct prom_def d_lat = { "lat_seconds", PROM_HISTOGRAM,
    "namespace launch", "Latency." };

static void
w_family_once(struct prom *w)
{
	prom_family(w, &d_a);
	prom_sample_u64(w, nslabels, 1);
	prom_family(w, &d_a);
	prom_sample_u64(w, nslabels, 2);
	prom_family(w, &d_b);
	prom_sample(w, NULL, 0.25);
}

static void
w_help_escaped(struct prom *w)
{
	prom_family(w, &d_c);
}

static void
w_label_escaped(struct prom *w)
{
	prom_family(w, &d_d);
	prom_sample(w, hard, -1);
}

static void
w_values(struct prom *w)
{
	prom_family(w, &d_e);
	prom_sample(w, NULL, 9007199254740992.0);
	prom_sample(w, NULL, 0.1);
	prom_sample_u64(w, NULL, UINT64_MAX);
	prom_family(w, &d_h);
	prom_sample(w, extra, 3);
}

static void
w_each(struct prom *w)
{
	static const char *const names[] = { "ok", "fail\"ed" };
	static const double v[] = { 3, 0.5 };

	prom_family(w, &d_r);
	prom_sample_each(w, NULL, "result", names, v, 2);
	prom_family(w, &d_q);
	prom_sample_each(w, nslabels, "what", names, v, 1);
}

static void
w_histogram(struct prom *w)
{
	struct prom_hist h;

	prom_hist_init(&h, bounds, 3);
	prom_hist_add(&h, 0.25);
	prom_hist_add(&h, 2);
	prom_hist_add(&h, 2.5);		/* le is inclusive */
	prom_hist_add(&h, 3);
	prom_hist_add(&h, -1);		/* counts as 0 */
	prom_family(w, &d_lat);
	prom_histogram(w, extra, &h);
}

static const struct {
	const char	*name;
	void		(*write)(struct prom *);
	const char	*want;
} rows[] = {
	{ "HELP and TYPE once per family", w_family_once,
	    "# HELP a_total Things.\n# TYPE a_total counter\n"
	    "a_total{namespace=\"ns\",pool=\"p\"} 1\n"
	    "a_total{namespace=\"ns\",pool=\"p\"} 2\n"
	    "# HELP b Stuff (at most 64).\n# TYPE b gauge\n"
	    "b 0.25\n" },
	{ "HELP escapes backslash and newline only", w_help_escaped,
	    "# HELP c back\\\\slash\\nnew \"line\"\n# TYPE c gauge\n" },
	{ "label values escape backslash, quote, newline", w_label_escaped,
	    "# HELP d D.\n# TYPE d gauge\n"
	    "d{v=\"a\\\\b\\\"c\\nd\"} -1\n" },
	{ "values: doubles exact, counters exact", w_values,
	    "# HELP e E.\n# TYPE e gauge\n"
	    "e 9007199254740992\n"
	    "e 0.10000000000000001\n"
	    "e 18446744073709551615\n"
	    "# HELP h H.\n# TYPE h gauge\n"
	    "h{namespace=\"ns\",launch=\"warm\"} 3\n" },
	{ "one series a value, after the common labels", w_each,
	    "# HELP r_total R.\n# TYPE r_total counter\n"
	    "r_total{result=\"ok\"} 3\n"
	    "r_total{result=\"fail\\\"ed\"} 0.5\n"
	    "# HELP q Q.\n# TYPE q gauge\n"
	    "q{namespace=\"ns\",pool=\"p\",what=\"ok\"} 3\n" },
	{ "histogram: cumulative buckets, +Inf, sum, count", w_histogram,
	    "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
	    "lat_seconds_bucket{namespace=\"ns\",launch=\"warm\","
	    "le=\"0.5\"} 2\n"
	    "lat_seconds_bucket{namespace=\"ns\",launch=\"warm\",le=\"1\"} "
	    "2\n"
	    "lat_seconds_bucket{namespace=\"ns\",launch=\"warm\","
	    "le=\"2.5\"} 4\n"
	    "lat_seconds_bucket{namespace=\"ns\",launch=\"warm\",le=\"+Inf\"} "
	    "5\n"
	    "lat_seconds_sum{namespace=\"ns\",launch=\"warm\"} 7.75\n"
	    "lat_seconds_count{namespace=\"ns\",launch=\"warm\"} 5\n" },
};

START_TEST(test_rows)
{
	struct prom	 w;

	memset(&w, 0, sizeof w);
	rows[_i].write(&w);
	ck_assert_msg(w.b.p != NULL && strcmp(w.b.p, rows[_i].want) == 0,
	    "%s:\n%s\nwant:\n%s", rows[_i].name, w.b.p != NULL ? w.b.p : "",
	    rows[_i].want);
	ck_assert_uint_eq(w.strays, 0);
	free(w.b.p);
}
END_TEST

/*
 * A sample whose label keys are not its family's (missing, extra, out of
 * order), or written before any family, is a stray: counted.
 */
START_TEST(test_strays)
{
	static const char *const swapped[] = { "pool", "p", "namespace", "ns",
	    NULL };
	static const char *const one[] = { "namespace", "ns", NULL };
	struct prom	 w;

	memset(&w, 0, sizeof w);
	prom_sample(&w, NULL, 1);
	ck_assert_uint_eq(w.strays, 1);
	ck_assert_ptr_null(w.b.p);
	prom_family(&w, &d_a);
	prom_sample(&w, swapped, 1);
	prom_sample(&w, one, 1);
	prom_sample(&w, NULL, 1);
	ck_assert_uint_eq(w.strays, 4);
	prom_family(&w, &d_a0);
	prom_sample(&w, NULL, 1);
	prom_sample(&w, one, 1);
	ck_assert_uint_eq(w.strays, 5);
	free(w.b.p);
}
END_TEST

/* The process_* family is read from /proc and plausible. */
START_TEST(test_process)
{
	struct prom	 w;
	const char	*p;
	double		 start, fds, max;

	memset(&w, 0, sizeof w);
	prom_process(&w);
	ck_assert_uint_eq(w.strays, 0);
	ck_assert_ptr_nonnull(p = strstr(w.b.p,
	    "\nprocess_start_time_seconds "));
	start = strtod(p + 28, NULL);
	ck_assert(start > 1.5e9 && start < 4e9);
	ck_assert_ptr_nonnull(strstr(w.b.p, "\nprocess_cpu_seconds_total "));
	ck_assert_ptr_nonnull(strstr(w.b.p,
	    "\nprocess_resident_memory_bytes "));
	ck_assert_ptr_nonnull(p = strstr(w.b.p, "\nprocess_open_fds "));
	fds = strtod(p + 18, NULL);
	ck_assert_ptr_nonnull(p = strstr(w.b.p, "\nprocess_max_fds "));
	max = strtod(p + 17, NULL);
	ck_assert(fds >= 3 && fds <= max);
	free(w.b.p);
}
END_TEST

/* The Markdown rows of a definition table. */
START_TEST(test_defs_print)
{
	static const struct prom_def pipe = { "p", PROM_GAUGE, "", "a|b" };
	static const struct prom_def *const defs[] = { &d_q, &pipe, NULL };
	char		*buf = NULL;
	size_t		 len = 0;
	FILE		*f;

	ck_assert_ptr_nonnull(f = open_memstream(&buf, &len));
	prom_defs_print(f, defs);
	fclose(f);
	ck_assert_str_eq(buf, "| `q` | gauge | namespace, pool, what | Q. |\n"
	    "| `p` | gauge |  | a\\|b |\n");
	free(buf);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("prom");
	TCase	*tc = tcase_create("text");

	tcase_add_loop_test(tc, test_rows, 0,
	    (int)(sizeof rows / sizeof rows[0]));
	tcase_add_test(tc, test_strays);
	tcase_add_test(tc, test_process);
	tcase_add_test(tc, test_defs_print);
	suite_add_tcase(s, tc);
	return (tu_run_suite(s));
}
