/*
 * check_json.c: the runtime's cJSON helpers (rt/json.h): cJSON allocates
 * through xmalloc from before main(), the string getter, the printer and
 * the wipe of secrets that cJSON copied.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "util/testutil.h"

/*
 * cJSON's every allocation is xmalloc's: creating, parsing, adding and
 * printing each count.  Without the hooks (cJSON's own malloc) none would,
 * and a NULL from an allocation failure would reach callers that no longer
 * check for it.
 */
START_TEST(test_hooks_are_xmalloc)
{
	unsigned long	 before;
	cJSON		*o;
	char		*s;

	before = as_xmalloc_calls;
	o = cJSON_CreateObject();
	ck_assert_uint_gt(as_xmalloc_calls, before);

	before = as_xmalloc_calls;
	cJSON_AddStringToObject(o, "k", "v");
	ck_assert_uint_gt(as_xmalloc_calls, before);

	before = as_xmalloc_calls;
	s = as_json_print_free(o, NULL);
	ck_assert_uint_gt(as_xmalloc_calls, before);
	ck_assert_str_eq(s, "{\"k\":\"v\"}");
	free(s);	/* free(), not cJSON_free(): the hooks' free */

	before = as_xmalloc_calls;
	o = cJSON_Parse("[1, \"two\", {\"three\": 3}]");
	ck_assert_ptr_nonnull(o);
	ck_assert_uint_gt(as_xmalloc_calls, before);
	cJSON_Delete(o);
}
END_TEST

static const struct {
	const char	*doc;
	const char	*key;
	const char	*want;	/* NULL: none */
} str_rows[] = {
	{ "{\"a\": \"x\"}", "a", "x" },
	{ "{\"a\": \"\"}", "a", "" },
	{ "{\"a\": \"x\"}", "A", NULL },	/* case sensitive */
	{ "{\"a\": \"x\"}", "b", NULL },
	{ "{\"a\": 1}", "a", NULL },
	{ "{\"a\": null}", "a", NULL },
	{ "{\"a\": {\"b\": \"x\"}}", "b", NULL },	/* members only */
	{ "[\"x\"]", "a", NULL },	/* not an object */
	{ "\"a\"", "a", NULL },
	{ NULL, "a", NULL },		/* no document */
};

START_TEST(test_str)
{
	cJSON		*o = NULL;
	const char	*got;

	if (str_rows[_i].doc != NULL)
		ck_assert_ptr_nonnull(o = cJSON_Parse(str_rows[_i].doc));
	got = as_json_str(o, str_rows[_i].key);
	if (str_rows[_i].want == NULL)
		ck_assert_ptr_null(got);
	else
		ck_assert_str_eq(got, str_rows[_i].want);
	cJSON_Delete(o);
}
END_TEST

START_TEST(test_print_free)
{
	cJSON	*o;
	char	*s;
	size_t	 len = 0;

	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "n"), "x", 1.5);
	cJSON_AddNullToObject(o, "z");
	s = as_json_print_free(o, &len);
	ck_assert_str_eq(s, "{\"n\":{\"x\":1.5},\"z\":null}");
	ck_assert_uint_eq(len, strlen(s));
	free(s);
	ck_assert_ptr_null(as_json_print_free(NULL, &len));
}
END_TEST

/* Every string value is zeroed in place, at any depth; keys stay. */
START_TEST(test_wipe)
{
	cJSON		*o;
	const cJSON	*tok, *deep, *arr;
	char		*p_tok, *p_deep, *p_arr;
	size_t		 l_tok, l_deep, l_arr, i;

	o = cJSON_Parse("{\"status\": {\"token\": \"s3cret\", \"n\": 7, "
	    "\"data\": {\"k\": \"c2VjcmV0\"}}, \"list\": [\"pw\", 1]}");
	ck_assert_ptr_nonnull(o);
	tok = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(o, "status"), "token");
	deep = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(o, "status"), "data"), "k");
	arr = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "list"),
	    0);
	p_tok = tok->valuestring;
	l_tok = strlen(p_tok);
	p_deep = deep->valuestring;
	l_deep = strlen(p_deep);
	p_arr = arr->valuestring;
	l_arr = strlen(p_arr);

	as_json_wipe(o);
	for (i = 0; i < l_tok; i++)
		ck_assert_int_eq(p_tok[i], 0);
	for (i = 0; i < l_deep; i++)
		ck_assert_int_eq(p_deep[i], 0);
	for (i = 0; i < l_arr; i++)
		ck_assert_int_eq(p_arr[i], 0);
	ck_assert_str_eq(tok->string, "token");
	ck_assert_str_eq(deep->string, "k");
	ck_assert_int_eq((int)cJSON_GetNumberValue(
	    cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(o, "status"), "n")), 7);
	cJSON_Delete(o);
	as_json_wipe(NULL);
}
END_TEST

static Suite *
json_suite(void)
{
	Suite	*s = suite_create("json");
	TCase	*tc = tcase_create("json");

	tcase_add_test(tc, test_hooks_are_xmalloc);
	tcase_add_loop_test(tc, test_str, 0, (int)AS_ARRAY_SIZE(str_rows));
	tcase_add_test(tc, test_print_free);
	tcase_add_test(tc, test_wipe);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(json_suite()));
}
