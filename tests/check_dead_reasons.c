/*
 * check_dead_reasons.c: the bounded reason label of
 * agentscaler_dispatch_dead_letters_total (scheduler/dispatch_metrics.c):
 * the list is sorted and whole, a listed reason counts as itself, and an
 * unlisted one as its prefix's ".other", else as "other" (never as
 * whichever reason came 32nd).
 */
#include <check.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "util/testutil.h"

#include "scheduler/dispatch_int.h"

START_TEST(test_sorted_and_whole)
{
	size_t	 i;

	for (i = 0; i < DEAD_REASONS; i++) {
		ck_assert_ptr_nonnull(dispatch_dead_reasons[i]);
		if (i > 0)
			ck_assert_msg(strcmp(dispatch_dead_reasons[i - 1],
			    dispatch_dead_reasons[i]) < 0, "%s before %s",
			    dispatch_dead_reasons[i - 1],
			    dispatch_dead_reasons[i]);
		ck_assert_uint_eq(dispatch_dead_reason(
		    dispatch_dead_reasons[i]), i);
	}
}
END_TEST

static const struct {
	const char	*reason;
	const char	*counted;
} rows[] = {
	{ "claim.readyTimeout", "claim.readyTimeout" },
	{ "quota.maxSandboxes", "quota.maxSandboxes" },
	{ "claim.SandboxFailed", "claim.other" },	/* a Ready reason */
	{ "runtime.crashed", "runtime.other" },		/* a runtime's own */
	{ "handoff.teapot", "handoff.other" },
	{ "task.whatever", "task.other" },
	{ "cascade.new", "other" },			/* no cascade.other */
	{ "nodot", "other" },
	{ "", "other" },
};

START_TEST(test_mapping)
{
	size_t	 i = dispatch_dead_reason(rows[_i].reason);

	ck_assert_uint_lt(i, DEAD_REASONS);
	ck_assert_str_eq(dispatch_dead_reasons[i], rows[_i].counted);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("dead_reasons");
	TCase	*tc = tcase_create("reasons");

	tcase_add_test(tc, test_sorted_and_whole);
	tcase_add_loop_test(tc, test_mapping, 0, (int)AS_ARRAY_SIZE(rows));
	suite_add_tcase(s, tc);
	return (tu_run_suite(s));
}
