/*
 * check_prom.c: the Prometheus text writer (scheduler/rt/prom.c).  Each row
 * of the table writes through the API and compares the whole text.
 */
#include <check.h>
#include <stdint.h>
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
static const uint64_t counts[] = { 1, 0, 2, 3 };

static void
w_family_once(struct prom *w)
{
	prom_family(w, "a_total", PROM_COUNTER, "Things.");
	prom_sample_u64(w, "a_total", NULL, 1);
	prom_family(w, "a_total", PROM_COUNTER, "Things.");
	prom_sample_u64(w, "a_total", nslabels, 2);
	prom_family(w, "b", PROM_GAUGE, "Stuff (at most %d).", 64);
	prom_sample(w, "b", NULL, 0.25);
}

static void
w_help_escaped(struct prom *w)
{
	prom_family(w, "c", PROM_GAUGE, "back\\slash\nnew \"line\"");
}

static void
w_label_escaped(struct prom *w)
{
	prom_sample(w, "d", hard, -1);
}

static void
w_values(struct prom *w)
{
	prom_sample(w, "e", NULL, 9007199254740992.0);
	prom_sample(w, "e", NULL, 0.1);
	prom_sample_u64(w, "f", NULL, UINT64_MAX);
	prom_samplef(w, "g", nslabels, "%.3f", 1.0 / 3);
	prom_sample(w, "h", extra, 3);
}

static void
w_each(struct prom *w)
{
	static const char *const names[] = { "ok", "fail\"ed" };
	static const double v[] = { 3, 0.5 };
	static const char *const many[] = { "a", "1", "b", "2", "c", "3",
	    "d", "4", "e", "5", "f", "6", "g", "7", "h", "8", "i", "9", NULL };

	prom_sample_each(w, "r_total", NULL, "result", names, v, 2);
	prom_sample_each(w, "q", nslabels, "what", names, v, 1);
	prom_sample_each(w, "m", many, "k", names, v, 1);
}

static void
w_histogram(struct prom *w)
{
	prom_family(w, "lat_seconds", PROM_HISTOGRAM, "Latency.");
	prom_histogram(w, "lat_seconds", extra, bounds, counts, 3, 12.5, 6);
	prom_histogram(w, "lat_seconds", NULL, bounds, counts, 0, 0.1, 1);
}

static const struct {
	const char	*name;
	void		(*write)(struct prom *);
	const char	*want;
} rows[] = {
	{ "HELP and TYPE once per family, help formatted", w_family_once,
	    "# HELP a_total Things.\n# TYPE a_total counter\n"
	    "a_total 1\n"
	    "a_total{namespace=\"ns\",pool=\"p\"} 2\n"
	    "# HELP b Stuff (at most 64).\n# TYPE b gauge\n"
	    "b 0.25\n" },
	{ "HELP escapes backslash and newline only", w_help_escaped,
	    "# HELP c back\\\\slash\\nnew \"line\"\n# TYPE c gauge\n" },
	{ "label values escape backslash, quote, newline", w_label_escaped,
	    "d{v=\"a\\\\b\\\"c\\nd\"} -1\n" },
	{ "values: doubles exact, counters exact, formats", w_values,
	    "e 9007199254740992\n"
	    "e 0.10000000000000001\n"
	    "f 18446744073709551615\n"
	    "g{namespace=\"ns\",pool=\"p\"} 0.333\n"
	    "h{namespace=\"ns\",launch=\"warm\"} 3\n" },
	{ "one series a value, after the common labels", w_each,
	    "r_total{result=\"ok\"} 3\n"
	    "r_total{result=\"fail\\\"ed\"} 0.5\n"
	    "q{namespace=\"ns\",pool=\"p\",what=\"ok\"} 3\n"
	    "m{a=\"1\",b=\"2\",c=\"3\",d=\"4\",e=\"5\",f=\"6\",g=\"7\","
	    "h=\"8\",k=\"ok\"} 3\n" },
	{ "histogram: cumulative buckets, +Inf, sum, count", w_histogram,
	    "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
	    "lat_seconds_bucket{namespace=\"ns\",launch=\"warm\","
	    "le=\"0.5\"} 1\n"
	    "lat_seconds_bucket{namespace=\"ns\",launch=\"warm\",le=\"1\"} "
	    "1\n"
	    "lat_seconds_bucket{namespace=\"ns\",launch=\"warm\","
	    "le=\"2.5\"} 3\n"
	    "lat_seconds_bucket{namespace=\"ns\",launch=\"warm\",le=\"+Inf\"} "
	    "6\n"
	    "lat_seconds_sum{namespace=\"ns\",launch=\"warm\"} 12.5\n"
	    "lat_seconds_count{namespace=\"ns\",launch=\"warm\"} 6\n"
	    "lat_seconds_bucket{le=\"+Inf\"} 1\n"
	    "lat_seconds_sum 0.1\n"
	    "lat_seconds_count 1\n" },
};

START_TEST(test_rows)
{
	struct prom	 w;

	memset(&w, 0, sizeof w);
	rows[_i].write(&w);
	ck_assert_msg(w.b.p != NULL && strcmp(w.b.p, rows[_i].want) == 0,
	    "%s:\n%s\nwant:\n%s", rows[_i].name, w.b.p != NULL ? w.b.p : "",
	    rows[_i].want);
	free(w.b.p);
}
END_TEST

/* A family name longer than the memory still gets its head only once. */
START_TEST(test_long_family)
{
	struct prom	 w;
	char		 name[PROM_NAME_MAX + 40];
	const char	*p;
	int		 heads = 0;

	memset(&w, 0, sizeof w);
	memset(name, 'x', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	prom_family(&w, name, PROM_GAUGE, "Long.");
	prom_family(&w, name, PROM_GAUGE, "Long.");
	for (p = w.b.p; (p = strstr(p, "# TYPE")) != NULL; p++)
		heads++;
	ck_assert_int_eq(heads, 1);
	free(w.b.p);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("prom");
	TCase	*tc = tcase_create("text");

	tcase_add_loop_test(tc, test_rows, 0,
	    (int)(sizeof rows / sizeof rows[0]));
	tcase_add_test(tc, test_long_family);
	suite_add_tcase(s, tc);
	return (tu_run_suite(s));
}
