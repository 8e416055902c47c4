/*
 * check_yaml.c: YAML documents into cJSON (scheduler/rt/yaml.c): how each
 * scalar is typed, several documents, errors with their line, and the
 * bounds on aliases and depth.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/yaml.h"
#include "util/testutil.h"

static const struct row {
	const char	*yaml;
	const char	*json;	/* the documents, printed; NULL: refused */
	const char	*err;	/* a substring of the error */
} rows[] = {
	{ "a: 1\nb: -2.5\nc: 1e3\nd: '7'\ne: \"x\"\nf: .5\n",
	    "[{\"a\":1,\"b\":-2.5,\"c\":1000,\"d\":\"7\",\"e\":\"x\",\"f\":0.5}]",
	    NULL },
	{ "a: true\nb: False\nc: TRUE\nd: yes\ne: 'true'\nf: on\n",
	    "[{\"a\":true,\"b\":false,\"c\":true,\"d\":\"yes\",\"e\":\"true\","
	    "\"f\":\"on\"}]", NULL },
	{ "a: ~\nb:\nc: null\nd: 'null'\ne: 30s\nf: 1.2.3\ng: 0x1F\n",
	    "[{\"a\":null,\"b\":null,\"c\":null,\"d\":\"null\",\"e\":\"30s\","
	    "\"f\":\"1.2.3\",\"g\":\"0x1F\"}]", NULL },
	{ "- 1\n- [a, b]\n- {c: d}\n", "[[1,[\"a\",\"b\"],{\"c\":\"d\"}]]",
	    NULL },
	/* Several documents; empty ones left out. */
	{ "---\na: 1\n---\n---\n# only a comment\n---\nb: 2\n...\n",
	    "[{\"a\":1},{\"b\":2}]", NULL },
	{ "", "[]", NULL },
	{ "x: &anchor {k: v}\ny: *anchor\n",
	    "[{\"x\":{\"k\":\"v\"},\"y\":{\"k\":\"v\"}}]", NULL },
	{ "a: 1\na: 2\n", NULL, "line 2, column 1: a key given twice" },
	{ "? [a]\n: 1\n", NULL, "a mapping key that is not a scalar" },
	{ "a: [1, 2\n", NULL, "not valid YAML: line 2" },
	{ "a: 1\n---\nb: : :\n", NULL, "not valid YAML: line 3, column 4" },
};

START_TEST(test_rows)
{
	const struct row *r = &rows[_i];
	cJSON		*docs, *lines;
	char		 err[256], *s;

	if (r->json == NULL) {
		ck_assert_int_eq(as_yaml_parse(r->yaml, strlen(r->yaml), &docs,
		    &lines, err, sizeof err), -AS_EINVAL);
		ck_assert_ptr_null(docs);
		ck_assert_ptr_null(lines);
		ck_assert_msg(strstr(err, r->err) != NULL, "%s", err);
		return;
	}
	ck_assert_msg(as_yaml_parse(r->yaml, strlen(r->yaml), &docs, &lines,
	    err, sizeof err) == 0, "%s", err);
	s = cJSON_PrintUnformatted(docs);
	ck_assert_str_eq(s, r->json);
	ck_assert_int_eq(cJSON_GetArraySize(lines), cJSON_GetArraySize(docs));
	free(s);
	cJSON_Delete(docs);
	cJSON_Delete(lines);
}
END_TEST

/* Each kept document's first line. */
START_TEST(test_lines)
{
	const char	*y = "a: 1\n---\n\n---\n# c\nb: 2\n";
	cJSON		*docs, *lines;
	char		 err[128];

	ck_assert_int_eq(as_yaml_parse(y, strlen(y), &docs, &lines, err,
	    sizeof err), 0);
	ck_assert_int_eq(cJSON_GetArraySize(lines), 2);
	ck_assert_int_eq(cJSON_GetArrayItem(lines, 0)->valueint, 1);
	ck_assert_int_eq(cJSON_GetArrayItem(lines, 1)->valueint, 6);
	cJSON_Delete(docs);
	cJSON_Delete(lines);
	ck_assert_int_eq(as_yaml_parse(NULL, 0, &docs, NULL, err, sizeof err),
	    0);
	ck_assert_int_eq(cJSON_GetArraySize(docs), 0);
	cJSON_Delete(docs);
}
END_TEST

/* A billion laughs stops at the value bound; deep nesting at the depth. */
START_TEST(test_bounds)
{
	const char	*laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
	    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
	    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
	    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
	    "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
	    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
	cJSON		*docs;
	char		 err[128], deep[400];
	size_t		 i;

	ck_assert_int_eq(as_yaml_parse(laughs, strlen(laughs), &docs, NULL,
	    err, sizeof err), -AS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "more than 1000000 values"));
	for (i = 0; i < 100; i++)
		deep[i] = '[';
	deep[i] = '\0';
	ck_assert_int_eq(as_yaml_parse(deep, strlen(deep), &docs, NULL, err,
	    sizeof err), -AS_EINVAL);
	for (i = 0; i < 60; i++)
		deep[i] = '[';
	for (; i < 120; i++)
		deep[i] = ']';
	deep[i] = '\0';
	ck_assert_int_eq(as_yaml_parse(deep, strlen(deep), &docs, NULL, err,
	    sizeof err), 0);
	cJSON_Delete(docs);
	for (i = 0; i < 70; i++)
		deep[i] = '[';
	for (; i < 140; i++)
		deep[i] = ']';
	deep[i] = '\0';
	ck_assert_int_eq(as_yaml_parse(deep, strlen(deep), &docs, NULL, err,
	    sizeof err), -AS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "nested more than 64 deep"));
}
END_TEST

static Suite *
yaml_suite(void)
{
	Suite	*s = suite_create("yaml");
	TCase	*tc = tcase_create("yaml");

	tcase_add_loop_test(tc, test_rows, 0, (int)AS_ARRAY_SIZE(rows));
	tcase_add_test(tc, test_lines);
	tcase_add_test(tc, test_bounds);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(yaml_suite()));
}
