/*
 * check_util.c: the shared helpers: secret redaction, backoff bounds,
 * bounded copies and the growable buffer with Prometheus escaping.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/common.h"
#include "util/testutil.h"

static const struct {
	const char	*text;
	const char	*secret;
	size_t		 size;
	const char	*want;
} redact_rows[] = {
	{ "WRONGPASS for pw123", "pw123", 64, "WRONGPASS for <redacted>" },
	{ "pw123pw123", "pw123", 64, "<redacted><redacted>" },
	{ "no secret here", "pw123", 64, "no secret here" },
	{ "no secret", NULL, 64, "no secret" },
	{ "no secret", "", 64, "no secret" },
	{ "x pw123 y", "pw123", 6, "x <re" },	/* truncated, terminated */
	{ "pw12", "pw123", 64, "pw12" },	/* a prefix is not the secret */
	{ "", "pw123", 64, "" },
};

START_TEST(test_redact)
{
	char	 out[64];

	memset(out, 'Z', sizeof out);
	as_redact(out, redact_rows[_i].size, redact_rows[_i].text,
	    redact_rows[_i].secret);
	ck_assert_str_eq(out, redact_rows[_i].want);
}
END_TEST

START_TEST(test_backoff_bounds)
{
	unsigned	 a;
	int		 i;

	for (a = 0; a < 40; a++) {
		for (i = 0; i < 200; i++) {
			double d = as_backoff(0.1, 5.0, a);

			ck_assert(d >= 0.05 && d <= 5.0);
		}
	}
}
END_TEST

START_TEST(test_buf_and_strlcpy)
{
	struct as_buf	 b = { NULL, 0, 0 };
	char		 small[4];
	int		 i;

	for (i = 0; i < 1000; i++)
		as_buf_printf(&b, "%d,", i);
	ck_assert_uint_eq(b.len, strlen(b.p));
	ck_assert(strncmp(b.p, "0,1,2,", 6) == 0);
	b.len = 0;
	as_buf_label(&b, "a\"b\\c\nd");
	ck_assert_str_eq(b.p, "a\\\"b\\\\c\\nd");
	free(b.p);
	ck_assert_uint_eq(as_strlcpy(small, "abcdef", sizeof small), 6);
	ck_assert_str_eq(small, "abc");
}
END_TEST

static Suite *
util_suite(void)
{
	Suite	*s = suite_create("util");
	TCase	*tc = tcase_create("util");

	tcase_add_loop_test(tc, test_redact, 0,
	    (int)AS_ARRAY_SIZE(redact_rows));
	tcase_add_test(tc, test_backoff_bounds);
	tcase_add_test(tc, test_buf_and_strlcpy);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(util_suite()));
}
