/*
 * check_task.c: the task contract and the SandboxClaim around it.  Every
 * refusal reason of task_parse has crafted inputs; every JSON output is
 * read back with cJSON; claim names and label values are checked by an
 * independent validator over many generated inputs.
 */
#include <check.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "scheduler/task.h"
#include "util/testutil.h"

#define TP	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

/* reason NULL: the message is accepted. */
static const struct {
	const char	*msg;
	const char	*reason;
} parse_rows[] = {
	/* Accepted: unknown fields ignored, payload of any type. */
	{ "{\"id\":\"t-1\"}", NULL },
	{ " \r\n\t{\"id\":\"t-1\"} \n", NULL },
	{ "{\"id\":\"t-1\",\"payload\":{\"a\":[1,2.5e-3,true,null]}}", NULL },
	{ "{\"id\":\"t-1\",\"payload\":\"text\"}", NULL },
	{ "{\"id\":\"t-1\",\"payload\":-0.5E+2}", NULL },
	{ "{\"id\":\"t-1\",\"payload\":[]}", NULL },
	{ "{\"id\":\"t-1\",\"payload\":null}", NULL },
	{ "{\"id\":\"t-1\",\"payload\":false}", NULL },
	{ "{\"id\":\"t-1\",\"whatever\":{\"x\":1},\"Id\":7}", NULL },
	{ "{\"id\":\"t-1\",\"parent\":null,\"resources\":null,"
	    "\"traceparent\":null,\"deadline\":null}", NULL },
	{ "{\"id\":\"t-1\",\"parent\":\"t-0\",\"resources\":{},"
	    "\"traceparent\":\"" TP "\",\"deadline\":"
	    "\"2026-11-25T17:34:45+02:00\"}", NULL },
	{ "{\"id\":\"t\\u002d1\",\"payload\":\"\\ud83d\\ude00 \\\" \\\\ "
	    "\\/ \\b\\f\\n\\r\\t\"}", NULL },
	{ "{\"id\":\"t-1\",\"payload\":\"\xe2\x82\xac\xf4\x8f\xbf\xbf\"}",
	    NULL },
	{ "{\"payload\":{\"id\":1},\"id\":\"~!#$%&'()*+,-./:;<=>?@[]^_`{|}\"}",
	    NULL },

	{ "{\"id\":\"t\xff\"}", "task.invalidUtf8" },
	/*
	 * Refused by our strict syntax pass; rows marked (c) are ones cJSON
	 * alone accepts.
	 */
	{ "\xef\xbb\xbf{\"id\":\"t-1\"}", "task.notJson" },	/* BOM (c) */

	{ "", "task.notJson" },
	{ "   ", "task.notJson" },
	{ "{\"id\":", "task.notJson" },
	{ "{\"id\":\"t-1\"", "task.notJson" },
	{ "{\"id\":\"t-1\"} x", "task.notJson" },
	{ "{\"id\":\"t-1\"}{}", "task.notJson" },
	{ "{\"id\":\"t-1\",}", "task.notJson" },
	{ "{'id':'t-1'}", "task.notJson" },
	{ "{id:\"t-1\"}", "task.notJson" },
	{ "{\"id\":\"t-1\",\"n\":01}", "task.notJson" },	/* (c) */
	{ "{\"id\":\"t-1\",\"n\":1.}", "task.notJson" },	/* (c) */
	{ "{\"id\":\"t-1\",\"n\":-.5}", "task.notJson" },	/* (c) */
	{ "{\"id\":\"t-1\",\"p\":\"a\tb\"}", "task.notJson" },	/* (c) */
	{ "{\"id\":\"t-1\",\"n\":+1}", "task.notJson" },
	{ "{\"id\":\"t-1\",\"n\":1e}", "task.notJson" },
	{ "{\"id\":\"t-1\",\"n\":-}", "task.notJson" },
	{ "{\"id\":\"t-1\",\"n\":NaN}", "task.notJson" },
	{ "{\"id\":\"t-1\",\"n\":tru}", "task.notJson" },
	{ "{\"id\":\"t-1\",\"p\":\"\\x41\"}", "task.notJson" },
	{ "{\"id\":\"t-1\",\"p\":\"\\u12g4\"}", "task.notJson" }, /* (c) */
	{ "{\"id\":\"a\\u0000b\"}", "task.notJson" },	/* (c), as "a" */
	{ "{\"id\\u0000x\":\"a\",\"id\":\"b\"}", "task.notJson" },
	/* Syntax we pass on to cJSON, which refuses a lone surrogate. */
	{ "{\"id\":\"t-1\",\"p\":\"\\ud800\"}", "task.notJson" },
	{ "{\"id\":\"t-1\",\"p\":[1 2]}", "task.notJson" },
	{ "{\"id\" \"t-1\"}", "task.notJson" },

	{ "[]", "task.notObject" },
	{ "[{\"id\":\"t-1\"}]", "task.notObject" },
	{ "\"t-1\"", "task.notObject" },
	{ "42", "task.notObject" },
	{ "null", "task.notObject" },
	{ "true", "task.notObject" },

	{ "{}", "task.missingId" },
	{ "{\"ID\":\"t-1\"}", "task.missingId" },	/* case matters */
	{ "{\"payload\":{\"id\":\"t-1\"}}", "task.missingId" },

	{ "{\"id\":\"\"}", "task.badId" },
	{ "{\"id\":5}", "task.badId" },
	{ "{\"id\":null}", "task.badId" },
	{ "{\"id\":[\"t\"]}", "task.badId" },
	{ "{\"id\":\"a b\"}", "task.badId" },
	{ "{\"id\":\"a\\u0001\"}", "task.badId" },
	{ "{\"id\":\"a\\u007f\"}", "task.badId" },
	{ "{\"id\":\"caf\xc3\xa9\"}", "task.badId" },
	{ "{\"id\":\"a\",\"id\":\"b\"}", "task.badId" },

	{ "{\"id\":\"t-1\",\"parent\":\"\"}", "task.badParent" },
	{ "{\"id\":\"t-1\",\"parent\":1}", "task.badParent" },
	{ "{\"id\":\"t-1\",\"parent\":\"x y\"}", "task.badParent" },
	{ "{\"id\":\"t-1\",\"parent\":\"t-1\"}", "task.badParent" },
	{ "{\"id\":\"t-1\",\"parent\":\"a\",\"parent\":\"b\"}",
	    "task.badParent" },

	{ "{\"id\":\"t-1\",\"resources\":[]}", "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":\"1\"}", "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"cpu\":\"abc\"}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"cpu\":\"\"}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"cpu\":\"1 \"}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"cpu\":\"1Xi\"}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"cpu\":\"-1\"}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"cpu\":-1}}", "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"cpu\":1e999}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"cpu\":true}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"cpu\":null}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"cpu\":{}}}", "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"cpu\":\"1\",\"cpu\":\"2\"}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"\":\"1\"}}", "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"a b\":\"1\"}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{},\"resources\":{}}",
	    "task.badResources" },
	/* Names are Kubernetes': a case variant is refused, never 0. */
	{ "{\"id\":\"t-1\",\"resources\":{\"CPU\":\"0.1\"}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"Memory\":\"1Gi\"}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"gpu\":1}}",
	    "task.badResources" },
	{ "{\"id\":\"t-1\",\"resources\":{\"NVIDIA.com/gpu\":1}}",
	    "task.badResources" },

	{ "{\"id\":\"t-1\",\"traceparent\":7}", "task.badTraceparent" },
	{ "{\"id\":\"t-1\",\"traceparent\":\"\"}", "task.badTraceparent" },
	{ "{\"id\":\"t-1\",\"traceparent\":"
	    "\"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01\"}",
	    "task.badTraceparent" },
	{ "{\"id\":\"t-1\",\"traceparent\":"
	    "\"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"}",
	    "task.badTraceparent" },
	{ "{\"id\":\"t-1\",\"traceparent\":"
	    "\"00-00000000000000000000000000000000-00f067aa0ba902b7-01\"}",
	    "task.badTraceparent" },
	{ "{\"id\":\"t-1\",\"traceparent\":"
	    "\"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01\"}",
	    "task.badTraceparent" },
	{ "{\"id\":\"t-1\",\"traceparent\":"
	    "\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x\"}",
	    "task.badTraceparent" },
	{ "{\"id\":\"t-1\",\"traceparent\":"
	    "\"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01\"}",
	    "task.badTraceparent" },
	{ "{\"id\":\"t-1\",\"traceparent\":"
	    "\"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01\"}",
	    "task.badTraceparent" },
	{ "{\"id\":\"t-1\",\"traceparent\":"
	    "\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g\"}",
	    "task.badTraceparent" },

	{ "{\"id\":\"t-1\",\"deadline\":\"tomorrow\"}", "task.badDeadline" },
	{ "{\"id\":\"t-1\",\"deadline\":1795628085}", "task.badDeadline" },
	{ "{\"id\":\"t-1\",\"deadline\":\"2026-02-29T00:00:00Z\"}",
	    "task.badDeadline" },
	{ "{\"id\":\"t-1\",\"deadline\":\"2026-11-25T17:34:45\"}",
	    "task.badDeadline" },
	{ "{\"id\":\"t-1\",\"deadline\":\"1970-01-01T00:00:00Z\"}",
	    "task.badDeadline" },
};

START_TEST(test_parse_reasons)
{
	struct task		 t;
	struct task_error	 err;
	const char		*msg = parse_rows[_i].msg;
	const char		*want = parse_rows[_i].reason;
	int			 rc;

	rc = task_parse(msg, strlen(msg), 0, &t, &err);
	if (want == NULL) {
		ck_assert_msg(rc == 0, "row %d refused: %s: %s", _i,
		    err.reason, err.detail);
		ck_assert_str_eq(err.reason, "");
		ck_assert_str_ne(t.id, "");
	} else {
		ck_assert_int_eq(rc, -AS_EINVAL);
		ck_assert_msg(strcmp(err.reason, want) == 0, "row %d: %s "
		    "(%s), want %s", _i, err.reason, err.detail, want);
		ck_assert_str_ne(err.detail, "");
		ck_assert_str_eq(t.parent, "");
		ck_assert_uint_eq(t.nresources, 0);
	}
}
END_TEST

/* Inputs that need a length or a size of their own. */
START_TEST(test_parse_odd_inputs)
{
	struct task		 t;
	struct task_error	 err;
	static const char	 nul[] = "{\"id\":\"t-1\"}\0junk";
	static const char	 nul_in[] = "{\"id\":\"t\0-1\"}";
	char			 id[300], msg[400];
	int			 i;

	/* A NUL byte is valid UTF-8 but never JSON outside an escape. */
	ck_assert_int_eq(task_parse(nul, sizeof nul - 1, 0, &t, &err),
	    -AS_EINVAL);
	ck_assert_str_eq(err.reason, "task.notJson");
	ck_assert_int_eq(task_parse(nul_in, sizeof nul_in - 1, 0, &t, &err),
	    -AS_EINVAL);
	ck_assert_str_eq(err.reason, "task.notJson");
	/* The length is honoured: what follows it is not read. */
	ck_assert_int_eq(task_parse(nul, 12, 0, &t, &err), 0);
	ck_assert_str_eq(t.id, "t-1");
	ck_assert_int_eq(task_parse(NULL, 0, 0, &t, &err), -AS_EINVAL);
	ck_assert_str_eq(err.reason, "task.notJson");

	/* Ids of exactly 253 bytes pass, 254 do not. */
	memset(id, 'a', sizeof id);
	id[TASK_ID_MAX] = '\0';
	snprintf(msg, sizeof msg, "{\"id\":\"%s\",\"parent\":\"%s\"}", id,
	    "p");
	ck_assert_int_eq(task_parse(msg, strlen(msg), 0, &t, &err), 0);
	ck_assert_uint_eq(strlen(t.id), TASK_ID_MAX);
	snprintf(msg, sizeof msg, "{\"id\":\"x\",\"parent\":\"%s\"}", id);
	ck_assert_int_eq(task_parse(msg, strlen(msg), 0, &t, &err), 0);
	ck_assert_str_eq(t.parent, id);
	id[TASK_ID_MAX] = 'a';
	id[TASK_ID_MAX + 1] = '\0';
	snprintf(msg, sizeof msg, "{\"id\":\"%s\"}", id);
	ck_assert_int_eq(task_parse(msg, strlen(msg), 0, &t, &err),
	    -AS_EINVAL);
	ck_assert_str_eq(err.reason, "task.badId");
	snprintf(msg, sizeof msg, "{\"id\":\"x\",\"parent\":\"%s\"}", id);
	ck_assert_int_eq(task_parse(msg, strlen(msg), 0, &t, &err),
	    -AS_EINVAL);
	ck_assert_str_eq(err.reason, "task.badParent");

	/* 16 resources pass, 17 do not. */
	for (i = 16; i <= 17; i++) {
		struct as_buf b = { NULL, 0, 0 };
		int j;

		as_buf_printf(&b, "{\"id\":\"t\",\"resources\":{");
		for (j = 0; j < i; j++)
			as_buf_printf(&b, "%s\"x.io/r%d\":%d", j ? "," : "",
			    j, j);
		as_buf_printf(&b, "}}");
		ck_assert_int_eq(task_parse(b.p, b.len, 0, &t, &err),
		    i == 16 ? 0 : -AS_EINVAL);
		if (i == 16)
			ck_assert_uint_eq(t.nresources, 16);
		else
			ck_assert_str_eq(err.reason, "task.badResources");
		free(b.p);
	}

	/* Deep nesting in the payload: accepted up to cJSON's limit. */
	for (i = 0; i < 2; i++) {
		struct as_buf b = { NULL, 0, 0 };
		int j, depth = i == 0 ? 999 : 1000;

		as_buf_printf(&b, "{\"id\":\"t\",\"payload\":");
		for (j = 0; j < depth; j++)
			as_buf_printf(&b, "[");
		for (j = 0; j < depth; j++)
			as_buf_printf(&b, "]");
		as_buf_printf(&b, "}");
		ck_assert_int_eq(task_parse(b.p, b.len, 0, &t, &err),
		    i == 0 ? 0 : -AS_EINVAL);
		if (i == 1)
			ck_assert_str_eq(err.reason, "task.notJson");
		free(b.p);
	}
}
END_TEST

START_TEST(test_parse_fields)
{
	const char *msg = "{\"payload\":{\"prompt\":\"hi\"},\"id\":\"t-42\","
	    "\"parent\":\"t-1\",\"resources\":{\"cpu\":\"500m\",\"memory\":"
	    "\"1Gi\",\"nvidia.com/gpu\":1,\"ephemeral-storage\":\"1.5e3\","
	    "\"hugepages-2Mi\":0},\"traceparent\":\"" TP "\",\"deadline\":"
	    "\"2026-11-25T17:34:45.25Z\"}";
	struct task		 t;
	struct task_error	 err;

	ck_assert_int_eq(task_parse(msg, strlen(msg), 0, &t, &err), 0);
	ck_assert_str_eq(t.id, "t-42");
	ck_assert_str_eq(t.parent, "t-1");
	ck_assert_str_eq(t.traceparent, TP);
	ck_assert_double_eq(t.deadline, 1795628085.25);
	ck_assert_uint_eq(t.nresources, 5);
	ck_assert_str_eq(t.resources[0].name, "cpu");
	ck_assert_double_eq_tol(t.resources[0].value, 0.5, 1e-12);
	ck_assert_str_eq(t.resources[1].name, "memory");
	ck_assert_double_eq(t.resources[1].value, 1073741824.0);
	ck_assert_str_eq(t.resources[2].name, "nvidia.com/gpu");
	ck_assert_double_eq(t.resources[2].value, 1);
	ck_assert_double_eq(t.resources[3].value, 1500);
	ck_assert_double_eq(t.resources[4].value, 0);

	/* A root with nothing optional. */
	ck_assert_int_eq(task_parse("{\"id\":\"r\"}", 10, 0, &t, &err), 0);
	ck_assert_str_eq(t.parent, "");
	ck_assert_str_eq(t.traceparent, "");
	ck_assert_double_eq(t.deadline, 0);
	ck_assert_uint_eq(t.nresources, 0);
}
END_TEST

/* A refused resource name: the detail names the field and the fix. */
START_TEST(test_parse_resource_name_detail)
{
	const char *msg = "{\"id\":\"t-9\",\"resources\":{\"cpu\":\"1\","
	    "\"CPU\":\"0.1\"}}";
	struct task		 t;
	struct task_error	 err;

	ck_assert_int_eq(task_parse(msg, strlen(msg), 0, &t, &err),
	    -AS_EINVAL);
	ck_assert_str_eq(err.reason, "task.badResources");
	ck_assert_str_eq(err.detail, "resource \"CPU\" in \"resources\": not "
	    "a Kubernetes resource name (names are case-sensitive: write "
	    "\"cpu\")");
	ck_assert_str_eq(t.id, "t-9");
}
END_TEST

/* A refusal after the id was read keeps it for the dead-letter record. */
START_TEST(test_parse_failure_keeps_id)
{
	const char *msg = "{\"id\":\"t-7\",\"parent\":\"p\",\"resources\":"
	    "{\"cpu\":\"1\"},\"deadline\":\"never\"}";
	struct task		 t;
	struct task_error	 err;

	ck_assert_int_eq(task_parse(msg, strlen(msg), 0, &t, &err),
	    -AS_EINVAL);
	ck_assert_str_eq(err.reason, "task.badDeadline");
	ck_assert_str_eq(t.id, "t-7");
	ck_assert_str_eq(t.parent, "");
	ck_assert_uint_eq(t.nresources, 0);
	ck_assert_int_eq(task_parse("{\"id\":\"a b\"}", 12, 0, &t, &err),
	    -AS_EINVAL);
	ck_assert_str_eq(t.id, "");
	/* err may be NULL. */
	ck_assert_int_eq(task_parse("{}", 2, 0, &t, NULL), -AS_EINVAL);
}
END_TEST

/* A message padded with spaces to exactly n bytes. */
static char *
padded(size_t n)
{
	char	*m = xmalloc(n);

	memset(m, ' ', n);
	memcpy(m, "{\"id\":\"t-1\"}", 12);
	return (m);
}

START_TEST(test_size_limit)
{
	struct task		 t;
	struct task_error	 err;
	char			*m;

	m = padded(100);
	ck_assert_int_eq(task_parse(m, 100, 100, &t, &err), 0);
	ck_assert_int_eq(task_parse(m, 100, 99, &t, &err), -AS_EINVAL);
	ck_assert_str_eq(err.reason, "task.tooLarge");
	ck_assert_ptr_nonnull(strstr(err.detail, "100 bytes"));
	ck_assert_ptr_nonnull(strstr(err.detail, "99"));
	free(m);

	/* The size gate comes before any other: garbage is still tooLarge. */
	ck_assert_int_eq(task_parse("\xff\xff\xff", 3, 2, &t, &err),
	    -AS_EINVAL);
	ck_assert_str_eq(err.reason, "task.tooLarge");

	/* 0 means the 1 MiB default. */
	m = padded(TASK_MAX_BYTES_DEFAULT + 1);
	ck_assert_int_eq(task_parse(m, TASK_MAX_BYTES_DEFAULT, 0, &t, &err),
	    0);
	ck_assert_int_eq(task_parse(m, TASK_MAX_BYTES_DEFAULT + 1, 0, &t,
	    &err), -AS_EINVAL);
	ck_assert_str_eq(err.reason, "task.tooLarge");
	ck_assert_ptr_nonnull(strstr(err.detail, "1048577 bytes"));
	ck_assert_ptr_nonnull(strstr(err.detail, "1048576"));
	free(m);
}
END_TEST

/* Each byte string goes inside a payload string. */
static const struct {
	const char	*bytes;
	int		 ok;
} utf8_rows[] = {
	{ "\xc2\x80", 1 },			/* U+0080 */
	{ "\xdf\xbf", 1 },			/* U+07FF */
	{ "\xe0\xa0\x80", 1 },			/* U+0800 */
	{ "\xed\x9f\xbf", 1 },			/* U+D7FF */
	{ "\xee\x80\x80", 1 },			/* U+E000 */
	{ "\xef\xbf\xbf", 1 },			/* U+FFFF */
	{ "\xf0\x90\x80\x80", 1 },		/* U+10000 */
	{ "\xf4\x8f\xbf\xbf", 1 },		/* U+10FFFF */
	{ "\xc0\xaf", 0 },			/* overlong '/' */
	{ "\xc1\xbf", 0 },			/* overlong */
	{ "\xe0\x80\xaf", 0 },			/* overlong */
	{ "\xe0\x9f\xbf", 0 },			/* overlong U+07FF */
	{ "\xf0\x80\x80\xaf", 0 },		/* overlong */
	{ "\xf0\x8f\xbf\xbf", 0 },		/* overlong U+FFFF */
	{ "\xed\xa0\x80", 0 },			/* U+D800 */
	{ "\xed\xbf\xbf", 0 },			/* U+DFFF */
	{ "\xed\xa0\xbd\xed\xb8\x80", 0 },	/* CESU-8 pair */
	{ "\xf4\x90\x80\x80", 0 },		/* U+110000 */
	{ "\xf5\x80\x80\x80", 0 },
	{ "\xf8\x88\x80\x80\x80", 0 },		/* 5-byte form */
	{ "\x80", 0 },				/* lone continuation */
	{ "\xbf", 0 },
	{ "\xe2\x82", 0 },			/* truncated */
	{ "\xe2\x28\xa1", 0 },			/* bad continuation */
	{ "\xf0\x9f\x98", 0 },
	{ "\xfe", 0 },
	{ "\xff", 0 },
};

START_TEST(test_utf8)
{
	struct task		 t;
	struct task_error	 err;
	char			 msg[128];
	int			 rc;

	snprintf(msg, sizeof msg, "{\"id\":\"t\",\"payload\":\"a%sb\"}",
	    utf8_rows[_i].bytes);
	rc = task_parse(msg, strlen(msg), 0, &t, &err);
	if (utf8_rows[_i].ok)
		ck_assert_msg(rc == 0, "row %d: %s", _i, err.detail);
	else {
		ck_assert_int_eq(rc, -AS_EINVAL);
		ck_assert_str_eq(err.reason, "task.invalidUtf8");
		/* The detail names where: byte 22, right after "a. */
		ck_assert_msg(strstr(err.detail, "(byte 22)") != NULL, "%s",
		    err.detail);
	}
	/* Non-UTF-8 at the very end, where a sequence is cut short. */
	snprintf(msg, sizeof msg, "{\"id\":\"t\"}%s", utf8_rows[_i].bytes);
	rc = task_parse(msg, strlen(msg), 0, &t, &err);
	ck_assert_int_eq(rc, -AS_EINVAL);
	ck_assert_str_eq(err.reason, utf8_rows[_i].ok ? "task.notJson" :
	    "task.invalidUtf8");
}
END_TEST

/* RFC 4648 decoding, written separately from task.c's encoder. */
static unsigned char *
b64_decode(const char *s, size_t *lenp)
{
	static const char	 tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t			 n = strlen(s), i, o = 0;
	unsigned char		*out;
	unsigned		 acc = 0;
	int			 bits = 0;

	ck_assert_uint_eq(n % 4, 0);
	out = xmalloc(n / 4 * 3 + 1);
	for (i = 0; i < n && s[i] != '='; i++) {
		const char *p = strchr(tbl, s[i]);

		ck_assert_ptr_nonnull(p);
		acc = (acc << 6) | (unsigned)(p - tbl);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1U << bits) - 1;
		}
	}
	*lenp = o;
	return (out);
}

static cJSON *
parse_json(const char *s, size_t len)
{
	cJSON	*j;

	ck_assert_uint_eq(strlen(s), len);
	j = cJSON_ParseWithLength(s, len);
	ck_assert_msg(j != NULL, "not JSON: %s", s);
	return (j);
}

START_TEST(test_dead_letter_text)
{
	const char	*body = "{\"id\":\"t-1\",\"payload\":\"caf\xc3\xa9 "
	    "\\\"q\\\"\"}";
	cJSON		*j;
	char		*r;
	size_t		 len;
	double		 at;

	r = task_dead_letter_record("cascade.maxDepth", "depth 4 > 3",
	    "team-a", "research", "t-1", body, strlen(body), 1795628085.5,
	    &len);
	j = parse_json(r, len);
	ck_assert_str_eq(as_json_str(j, "reason"), "cascade.maxDepth");
	ck_assert_str_eq(as_json_str(j, "detail"), "depth 4 > 3");
	ck_assert_str_eq(as_json_str(j, "pool"), "team-a/research");
	ck_assert_str_eq(as_json_str(j, "taskId"), "t-1");
	ck_assert_str_eq(as_json_str(j, "at"),
	    "2026-11-25T17:34:45.500000000Z");
	ck_assert_int_eq(as_parse_rfc3339(as_json_str(j, "at"), &at), 0);
	ck_assert_double_eq(at, 1795628085.5);
	ck_assert_str_eq(as_json_str(j, "original"), body);
	ck_assert_ptr_null(cJSON_GetObjectItem(j, "originalBase64"));
	cJSON_Delete(j);
	free(r);

	/* No task id: no taskId.  Odd bytes in the detail stay JSON. */
	r = task_dead_letter_record("task.notJson", "a \"quoted\"\n\x01\xff"
	    "\\ detail", "ns", "p", NULL, "not json", 8, 0, &len);
	j = parse_json(r, len);
	ck_assert_ptr_null(cJSON_GetObjectItem(j, "taskId"));
	ck_assert_str_eq(as_json_str(j, "detail"),
	    "a \"quoted\"\n\x01\xef\xbf\xbd\\ detail");
	ck_assert_str_eq(as_json_str(j, "original"), "not json");
	ck_assert_str_eq(as_json_str(j, "at"),
	    "1970-01-01T00:00:00.000000000Z");
	cJSON_Delete(j);
	free(r);

	/* An empty message is still recorded. */
	r = task_dead_letter_record("task.notJson", "empty", "ns", "p", NULL,
	    NULL, 0, 0, &len);
	j = parse_json(r, len);
	ck_assert_str_eq(as_json_str(j, "original"), "");
	cJSON_Delete(j);
	free(r);
}
END_TEST

/* Bytes that are not UTF-8 (or hold a NUL) round-trip through base64. */
static const struct {
	const char	*bytes;
	size_t		 len;
} b64_rows[] = {
	{ "\xff", 1 },
	{ "\xff\xfe", 2 },
	{ "\xff\xfe\xfd", 3 },
	{ "{\"id\":\"t\xc0\xaf\"}", 13 },
	{ "a\0b", 3 },
	{ "\x80\x00\x00\x00", 4 },
	{ "\xed\xa0\x80 surrogate", 13 },
};

START_TEST(test_dead_letter_base64)
{
	cJSON		*j;
	char		*r;
	unsigned char	*dec;
	size_t		 len, dlen;

	r = task_dead_letter_record("task.invalidUtf8", "bad", "ns", "p",
	    NULL, b64_rows[_i].bytes, b64_rows[_i].len, 1.0, &len);
	j = parse_json(r, len);
	ck_assert_ptr_null(cJSON_GetObjectItem(j, "original"));
	ck_assert_ptr_nonnull(as_json_str(j, "originalBase64"));
	dec = b64_decode(as_json_str(j, "originalBase64"), &dlen);
	ck_assert_uint_eq(dlen, b64_rows[_i].len);
	ck_assert(memcmp(dec, b64_rows[_i].bytes, dlen) == 0);
	free(dec);
	cJSON_Delete(j);
	free(r);
}
END_TEST

/*
 * task.tooLarge records: bounded whatever the message, the digest of the
 * whole, the prefix cut on a character boundary (or base64 when the bytes
 * are not UTF-8).
 */
enum cut_fill {
	CUT_A,		/* 'a' */
	CUT_E_ACUTE,	/* "{" then U+00E9 (2 bytes): 4096 splits one */
	CUT_EMOJI0,	/* U+1F600 (4 bytes) after 0..3 ASCII bytes */
	CUT_EMOJI1,
	CUT_EMOJI2,
	CUT_EMOJI3,
	CUT_CONTROL,	/* 0x01: 6 bytes each as JSON */
	CUT_FF,		/* never UTF-8 */
	CUT_NUL,	/* UTF-8, but a NUL */
	CUT_BAD_LATE,	/* ASCII, one 0xff at 2000 */
	CUT_HALF_TAIL,	/* ASCII, 0xc3 0x28 across the cut: a prefix */
	CUT_BAD_TAIL,	/* ASCII, 0xe0 0x80 before the cut: never one */
	CUT_GOOD_TAIL	/* ASCII, U+0800 (0xe0 0xa0 0x80) across the cut */
};

static const struct cut_row {
	enum cut_fill	 fill;
	size_t		 size;		/* the whole message */
	size_t		 passed;	/* bytes given; 0: all */
	int		 base64;	/* expect originalPrefixBase64 */
	size_t		 kept;		/* bytes of prefix expected */
	const char	*sha256;	/* NULL: as_sha256() of the whole */
} cut_rows[] = {
	/* FIPS 180-2 appendix B.3: one million 'a'. */
	{ CUT_A, 1000000, 0, 0, 4096, "cdc76e5c9914fb9281a1c7e284d73e67"
	    "f1809a48a497200e046d39ccc7112cd0" },
	{ CUT_A, 1000000, 4096, 0, 4096, "cdc76e5c9914fb9281a1c7e284d73e67"
	    "f1809a48a497200e046d39ccc7112cd0" },	/* a consumer's prefix */
	{ CUT_A, 100, 0, 0, 100, NULL },	/* whole: not truncated */
	{ CUT_A, 0, 0, 0, 0, NULL },
	{ CUT_E_ACUTE, 65537, 0, 0, 4095, NULL },
	{ CUT_E_ACUTE, 65537, 4097, 0, 4095, NULL },
	{ CUT_EMOJI0, 20000, 0, 0, 4096, NULL },
	{ CUT_EMOJI1, 20000, 0, 0, 4093, NULL },
	{ CUT_EMOJI2, 20000, 0, 0, 4094, NULL },
	{ CUT_EMOJI3, 20000, 0, 0, 4095, NULL },
	{ CUT_CONTROL, 100000, 0, 0, 4096, NULL },
	{ CUT_FF, 100000, 0, 1, 4096, NULL },
	{ CUT_NUL, 9000, 0, 1, 4096, NULL },
	{ CUT_BAD_LATE, 9000, 0, 1, 4096, NULL },
	{ CUT_HALF_TAIL, 9000, 0, 0, 4095, NULL },
	{ CUT_BAD_TAIL, 9000, 0, 1, 4096, NULL },
	{ CUT_GOOD_TAIL, 9000, 0, 0, 4094, NULL },
	{ CUT_FF, 3, 0, 1, 3, NULL },
};

static char *
cut_message(const struct cut_row *row)
{
	static const char emoji[] = "\xf0\x9f\x98\x80";
	char	*m = xmalloc(row->size + 1);
	size_t	 i, pad;

	for (i = 0; i < row->size; i++) {
		switch (row->fill) {
		case CUT_A:
			m[i] = 'a';
			break;
		case CUT_E_ACUTE:
			m[i] = i == 0 ? '{' : (i % 2 == 1 ? '\xc3' : '\xa9');
			break;
		case CUT_EMOJI0:
		case CUT_EMOJI1:
		case CUT_EMOJI2:
		case CUT_EMOJI3:
			pad = (size_t)(row->fill - CUT_EMOJI0);
			m[i] = i < pad ? 'x' : emoji[(i - pad) % 4];
			break;
		case CUT_CONTROL:
			m[i] = '\x01';
			break;
		case CUT_FF:
			m[i] = '\xff';
			break;
		case CUT_NUL:
			m[i] = i == 17 ? '\0' : 'n';
			break;
		case CUT_BAD_LATE:
			m[i] = i == 2000 ? '\xff' : 'b';
			break;
		case CUT_HALF_TAIL:
			m[i] = i == 4095 ? '\xc3' : (i == 4096 ? '(' : 't');
			break;
		case CUT_BAD_TAIL:
			m[i] = i == 4094 ? '\xe0' : (i == 4095 ? '\x80' : 't');
			break;
		case CUT_GOOD_TAIL:
			m[i] = i == 4094 ? '\xe0' : (i == 4095 ? '\xa0' :
			    (i == 4096 ? '\x80' : 'g'));
			break;
		}
	}
	m[row->size] = '\0';
	return (m);
}

START_TEST(test_dead_letter_cut)
{
	const struct cut_row *row = &cut_rows[_i];
	unsigned char	 sha[AS_SHA256_LEN];
	char		 hex[2 * AS_SHA256_LEN + 1], *m, *r, *dec;
	const char	*text;
	size_t		 len, dlen, passed;
	cJSON		*j, *v;

	m = cut_message(row);
	as_sha256(m, row->size, sha);
	as_hex(sha, sizeof sha, hex);
	if (row->sha256 != NULL)
		ck_assert_str_eq(hex, row->sha256);
	passed = row->passed > 0 ? row->passed : row->size;
	r = task_dead_letter_record_cut("task.tooLarge", "the message is big",
	    "team-a", "research", NULL, m, passed, row->size, sha,
	    1795628085.5, &len);
	ck_assert_uint_le(len, TASK_CUT_RECORD_MAX);
	ck_assert_uint_eq(strlen(r), len);
	j = parse_json(r, len);
	ck_assert_str_eq(as_json_str(j, "reason"), "task.tooLarge");
	ck_assert_str_eq(as_json_str(j, "detail"), "the message is big");
	ck_assert_str_eq(as_json_str(j, "pool"), "team-a/research");
	ck_assert_str_eq(as_json_str(j, "at"),
	    "2026-11-25T17:34:45.500000000Z");
	ck_assert_ptr_null(cJSON_GetObjectItem(j, "taskId"));
	ck_assert_ptr_null(cJSON_GetObjectItem(j, "original"));
	v = cJSON_GetObjectItem(j, "size");
	ck_assert(cJSON_IsNumber(v));
	ck_assert_double_eq(v->valuedouble, (double)row->size);
	ck_assert_str_eq(as_json_str(j, "sha256"), hex);
	v = cJSON_GetObjectItem(j, "truncated");
	ck_assert(cJSON_IsBool(v));
	ck_assert_int_eq(cJSON_IsTrue(v), row->kept < row->size);
	if (row->base64) {
		ck_assert_ptr_null(cJSON_GetObjectItem(j, "originalPrefix"));
		dec = (char *)b64_decode(as_json_str(j, "originalPrefixBase64"),
		    &dlen);
		ck_assert_uint_eq(dlen, row->kept);
		ck_assert(memcmp(dec, m, dlen) == 0);
		free(dec);
	} else {
		ck_assert_ptr_null(cJSON_GetObjectItem(j,
		    "originalPrefixBase64"));
		text = as_json_str(j, "originalPrefix");
		ck_assert_ptr_nonnull(text);
		ck_assert_uint_eq(strlen(text), row->kept);
		ck_assert(memcmp(text, m, row->kept) == 0);
		/* Ends on a boundary: what follows is no continuation. */
		if (row->kept < row->size)
			ck_assert(((unsigned char)m[row->kept] & 0xc0) !=
			    0x80);
	}
	cJSON_Delete(j);
	free(r);
	free(m);
}
END_TEST

/* Every other string is bounded too, whatever it holds. */
START_TEST(test_dead_letter_cut_bounded)
{
	unsigned char	 sha[AS_SHA256_LEN];
	char		*big, *r;
	size_t		 len, n = 100000;
	cJSON		*j;

	big = xmalloc(n + 1);
	memset(big, '\x01', n);
	big[n] = '\0';
	as_sha256(big, n, sha);
	r = task_dead_letter_record_cut(big, big, big, big, big, big, n,
	    UINT64_MAX / 2, sha, 0, &len);
	ck_assert_uint_le(len, TASK_CUT_RECORD_MAX);
	j = parse_json(r, len);
	ck_assert_uint_eq(strlen(as_json_str(j, "detail")), TASK_CUT_STR_MAX);
	ck_assert_uint_eq(strlen(as_json_str(j, "taskId")), TASK_CUT_STR_MAX);
	ck_assert_uint_eq(strlen(as_json_str(j, "originalPrefix")),
	    TASK_PREFIX_BYTES);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "truncated")));
	cJSON_Delete(j);
	free(r);
	/* No prefix at all (NULL): still a record. */
	r = task_dead_letter_record_cut("task.tooLarge", "d", "ns", "p", NULL,
	    NULL, 5, 5, sha, 0, &len);
	j = parse_json(r, len);
	ck_assert_str_eq(as_json_str(j, "originalPrefix"), "");
	cJSON_Delete(j);
	free(r);
	free(big);
}
END_TEST

/*
 * A detail or task id cut at TASK_CUT_STR_MAX loses whole characters: the
 * record holds no half sequence (which used to read back as U+FFFD).
 */
START_TEST(test_dead_letter_cut_utf8)
{
	unsigned char	 sha[AS_SHA256_LEN];
	char		 text[TASK_CUT_STR_MAX + 8], *r;
	const char	*d;
	size_t		 len;
	cJSON		*j;

	memset(text, 'a', TASK_CUT_STR_MAX - 1);
	/* A 3-byte character across the cut, then more. */
	memcpy(text + TASK_CUT_STR_MAX - 1, "\xe2\x82\xac" "bc", 6);
	as_sha256("", 0, sha);
	r = task_dead_letter_record_cut("task.tooLarge", text, "ns", "p",
	    text, "", 0, 1, sha, 0, &len);
	ck_assert_uint_eq(as_utf8_invalid_at(r, len), len);
	j = parse_json(r, len);
	d = as_json_str(j, "detail");
	ck_assert_uint_eq(strlen(d), TASK_CUT_STR_MAX - 1);
	ck_assert(strstr(d, "\xef\xbf\xbd") == NULL);
	ck_assert_str_eq(as_json_str(j, "taskId"), d);
	cJSON_Delete(j);
	free(r);
}
END_TEST

START_TEST(test_hashes)
{
	char	 h[9];

	/* ref/agent-sandbox-api.md section 14 asks to pin this one. */
	task_name_hash("my-sandbox", h);
	ck_assert_str_eq(h, "374de8f5");
	task_name_hash("", h);
	ck_assert_str_eq(h, "811c9dc5");	/* the FNV-1a 32 basis */
	/* FNV-1a 64 of "team-a\0t-1" and of "\0", from Python. */
	ck_assert_uint_eq(task_hash("team-a", "t-1"), 0x07d98f71556c9ea4ULL);
	ck_assert_uint_eq(task_hash("", ""), 0xaf63bd4c8601b7dfULL);
	/* The separator keeps ("ab","c") apart from ("a","bc"). */
	ck_assert_uint_ne(task_hash("ab", "c"), task_hash("a", "bc"));
}
END_TEST

/*
 * Checked independently of task.c: 1 to 63 letters (capitals only with
 * upper) and digits, with the characters of punct inside, never first or
 * last.  A DNS-1123 label is lower case with "-"; a Kubernetes label value
 * (non-empty here) allows both cases and "-_.".
 */
static int
name_ok(const char *s, int upper, const char *punct)
{
	size_t	 i, n = strlen(s);

	if (n == 0 || n > 63)
		return (0);
	for (i = 0; i < n; i++) {
		int alnum = (s[i] >= 'a' && s[i] <= 'z') ||
		    (upper && s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9');

		if (!alnum && strchr(punct, s[i]) == NULL)
			return (0);
		if (!alnum && (i == 0 || i == n - 1))
			return (0);
	}
	return (1);
}

static int
dns_label_ok(const char *s)
{
	return (name_ok(s, 0, "-"));
}

static int
label_value_ok(const char *s)
{
	return (name_ok(s, 1, "-_."));
}

static const struct {
	const char	*prefix;
	const char	*want;		/* before "-<16 hex>" */
} claim_name_rows[] = {
	{ "research", "research" },
	{ "My_Pool.v2", "my-pool-v2" },
	{ "--a--b--", "a-b" },
	{ "", "task" },
	{ NULL, "task" },
	{ "---", "task" },
	{ "\xc3\xa9t\xc3\xa9", "t" },
	{ "UPPER", "upper" },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
	/* Cut at 30 lands on a '-', which is trimmed. */
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbb",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
};

START_TEST(test_claim_name_rows)
{
	char	 name[CLAIM_NAME_MAX + 1], want[CLAIM_NAME_MAX + 1];

	task_claim_name(claim_name_rows[_i].prefix, "team-a", "t-1", name);
	/* SHA-256("team-a\0t-1"), its first 32 hex digits (Python hashlib). */
	snprintf(want, sizeof want, "%s-%s", claim_name_rows[_i].want,
	    "bb5836a4b350bf6458db04baff589c9c");
	ck_assert_str_eq(name, want);
	ck_assert(dns_label_ok(name));
}
END_TEST

/*
 * Issue 12, defect 9: the name's digest is SHA-256 (collision-resistant),
 * no longer FNV-1a-64, which a producer can collide on purpose.
 */
START_TEST(test_claim_digest)
{
	char	 d[CLAIM_DIGEST_HEX + 1], name[CLAIM_NAME_MAX + 1];

	task_claim_digest("team-a", "t-2", d);
	ck_assert_str_eq(d, "249d63ec0a42066789987209faa7b84c");
	/* The NUL between namespace and id keeps the parts apart. */
	task_claim_digest("ab", "c", d);
	task_claim_name("p", "a", "bc", name);
	ck_assert_str_ne(name + 2, d);
	task_claim_name("p", "ab", "c", name);
	ck_assert_str_eq(name + 2, d);
	task_claim_name("p", "team-a", "t-2", name);
	ck_assert_str_eq(name, "p-249d63ec0a42066789987209faa7b84c");
}
END_TEST

START_TEST(test_claim_name_generated)
{
	static const char alpha[] = "abcXYZ019-._/ \t\xc3\xa9\xff~:@";
	char		 prefix[300], id[64], name[CLAIM_NAME_MAX + 1];
	char		 again[CLAIM_NAME_MAX + 1], other[CLAIM_NAME_MAX + 1];
	uint32_t	 seed = 12345;
	int		 i, j, len;

	for (i = 0; i < 5000; i++) {
		seed = seed * 1103515245U + 12345U;
		len = (int)((seed >> 8) % 260);
		for (j = 0; j < len; j++) {
			seed = seed * 1103515245U + 12345U;
			prefix[j] = alpha[(seed >> 8) % (sizeof alpha - 1)];
		}
		prefix[len] = '\0';
		snprintf(id, sizeof id, "task-%d", i);
		task_claim_name(prefix, "ns", id, name);
		ck_assert_msg(dns_label_ok(name), "prefix %d gave \"%s\"", i,
		    name);
		/* Deterministic; another id or namespace gives another name. */
		task_claim_name(prefix, "ns", id, again);
		ck_assert_str_eq(name, again);
		snprintf(id, sizeof id, "task-%d", i + 1);
		task_claim_name(prefix, "ns", id, other);
		ck_assert_str_ne(name, other);
		task_claim_name(prefix, "ns2", id, again);
		ck_assert_str_ne(other, again);
	}
}
END_TEST

START_TEST(test_pool_label)
{
	char	 pool[300], out[64], h[9];
	size_t	 i;
	int	 n;

	task_pool_label("research", out);
	ck_assert_str_eq(out, "research");
	task_pool_label("a.b_c-D", out);
	ck_assert_str_eq(out, "a.b_c-D");
	memset(pool, 'p', 63);
	pool[63] = '\0';
	task_pool_label(pool, out);
	ck_assert_str_eq(out, pool);		/* 63 is still valid */
	pool[63] = 'q';
	pool[64] = '\0';
	task_pool_label(pool, out);
	task_name_hash(pool, h);
	ck_assert(label_value_ok(out));
	ck_assert_uint_eq(strlen(out), 63);
	ck_assert_str_eq(out + 55, h);
	task_pool_label("---", out);
	task_name_hash("---", h);
	ck_assert_str_eq(out, h);
	task_pool_label("-x-", out);
	task_name_hash("-x-", h);
	ck_assert_str_eq(out + 2, h);
	ck_assert(strncmp(out, "x-", 2) == 0);

	/* Long and odd names always give a valid value; distinct ones. */
	for (n = 1; n <= 253; n++) {
		for (i = 0; i < (size_t)n; i++)
			pool[i] = "a.-_Z9/"[(i * 7 + (size_t)n) % 7];
		pool[n] = '\0';
		task_pool_label(pool, out);
		ck_assert_msg(label_value_ok(out), "%d: %s", n, out);
	}
}
END_TEST

static const cJSON *
jpath(const cJSON *o, const char *a, const char *b, const char *c)
{
	o = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b != NULL)
		o = cJSON_GetObjectItemCaseSensitive(o, b);
	if (c != NULL)
		o = cJSON_GetObjectItemCaseSensitive(o, c);
	return (o);
}

static const char *
jpath_str(const cJSON *o, const char *a, const char *b, const char *c)
{
	o = jpath(o, a, b, c);
	ck_assert_msg(cJSON_IsString(o), "%s.%s.%s is not a string", a,
	    b ? b : "", c ? c : "");
	return (o->valuestring);
}

START_TEST(test_claim_body)
{
	char		 pool[254], name[CLAIM_NAME_MAX + 1], want[64], h[24];
	struct claim_spec cs;
	const cJSON	*labels, *ann, *l;
	cJSON		*j, *tc;
	char		*body;
	size_t		 len;
	double		 t;

	memset(pool, 'P', 253);
	pool[253] = '\0';
	pool[0] = 'a';
	task_claim_name(pool, "team-a", "t-2", name);
	memset(&cs, 0, sizeof cs);
	cs.ns = "team-a";
	cs.name = name;
	cs.pool = pool;
	cs.warm_pool = "research-warm";
	cs.task_id = "t-2";
	cs.parent_id = "t-1";
	cs.root_id = "t-0";
	cs.depth = 2;
	cs.traceparent = TP;
	cs.instance = "agentscaler-0";
	cs.wall_now = 1795628085.25;
	cs.ttl_seconds = 3600;
	body = task_claim_body(&cs, &len);
	j = parse_json(body, len);
	ck_assert_str_eq(jpath_str(j, "apiVersion", NULL, NULL),
	    "extensions.agents.x-k8s.io/v1beta1");
	ck_assert_str_eq(jpath_str(j, "kind", NULL, NULL), "SandboxClaim");
	ck_assert_str_eq(jpath_str(j, "metadata", "name", NULL), name);
	ck_assert_str_eq(jpath_str(j, "metadata", "namespace", NULL),
	    "team-a");

	labels = jpath(j, "metadata", "labels", NULL);
	ck_assert_int_eq(cJSON_GetArraySize(labels), 6);
	for (l = labels->child; l != NULL; l = l->next) {
		ck_assert(cJSON_IsString(l));
		ck_assert_msg(label_value_ok(l->valuestring), "%s=%s",
		    l->string, l->valuestring);
	}
	ck_assert_str_eq(jpath_str(labels, TASK_LABEL_MANAGED, NULL, NULL),
	    "agentscaler");
	task_pool_label(pool, want);
	ck_assert_str_eq(jpath_str(labels, TASK_LABEL_POOL, NULL, NULL), want);
	snprintf(h, sizeof h, "%016" PRIx64, task_hash("team-a", "t-2"));
	ck_assert_str_eq(jpath_str(labels, TASK_LABEL_TASK, NULL, NULL), h);
	snprintf(h, sizeof h, "%016" PRIx64, task_hash("team-a", "t-0"));
	ck_assert_str_eq(jpath_str(labels, TASK_LABEL_ROOT, NULL, NULL), h);
	ck_assert_str_eq(jpath_str(labels, TASK_LABEL_DEPTH, NULL, NULL), "2");
	ck_assert_str_eq(jpath_str(labels, "agents.x-k8s.io/created-by", NULL,
	    NULL), "agentscaler");

	ann = jpath(j, "metadata", "annotations", NULL);
	ck_assert_int_eq(cJSON_GetArraySize(ann), 7);
	ck_assert_str_eq(jpath_str(ann, TASK_ANN_TASK_ID, NULL, NULL), "t-2");
	ck_assert_str_eq(jpath_str(ann, TASK_ANN_PARENT_ID, NULL, NULL),
	    "t-1");
	ck_assert_str_eq(jpath_str(ann, TASK_ANN_ROOT_ID, NULL, NULL), "t-0");
	ck_assert_str_eq(jpath_str(ann, TASK_ANN_INSTANCE, NULL, NULL),
	    "agentscaler-0");
	ck_assert_str_eq(jpath_str(ann, TASK_ANN_REQUESTED_AT, NULL, NULL),
	    "2026-11-25T17:34:45.250000000Z");
	ck_assert_str_eq(jpath_str(ann, TASK_ANN_TRACEPARENT, NULL, NULL), TP);
	tc = cJSON_Parse(jpath_str(ann, "opentelemetry.io/trace-context", NULL,
	    NULL));
	ck_assert_ptr_nonnull(tc);
	ck_assert_int_eq(cJSON_GetArraySize(tc), 1);
	ck_assert_str_eq(jpath_str(tc, "traceparent", NULL, NULL), TP);
	cJSON_Delete(tc);

	ck_assert_str_eq(jpath_str(j, "spec", "warmPoolRef", "name"),
	    "research-warm");
	ck_assert_str_eq(jpath_str(j, "spec", "lifecycle", "shutdownTime"),
	    "2026-11-25T18:34:45Z");
	ck_assert_int_eq(as_parse_rfc3339(jpath_str(j, "spec", "lifecycle",
	    "shutdownTime"), &t), 0);
	ck_assert_double_eq(t, 1795628085.0 + 3600);
	/*
	 * Foreground: the TTL's delete keeps the claim until its Sandbox and
	 * pod are gone, so its quota is never freed early (issue 12).
	 */
	ck_assert_str_eq(jpath_str(j, "spec", "lifecycle", "shutdownPolicy"),
	    "DeleteForeground");
	cJSON_Delete(j);
	free(body);

	/* A root without trace context or TTL. */
	cs.pool = "research";
	cs.parent_id = NULL;
	cs.root_id = "t-2";
	cs.depth = 0;
	cs.traceparent = NULL;
	cs.ttl_seconds = 0;
	body = task_claim_body(&cs, &len);
	j = parse_json(body, len);
	ann = jpath(j, "metadata", "annotations", NULL);
	ck_assert_int_eq(cJSON_GetArraySize(ann), 4);
	ck_assert_ptr_null(cJSON_GetObjectItem(ann, TASK_ANN_PARENT_ID));
	ck_assert_ptr_null(cJSON_GetObjectItem(ann, TASK_ANN_TRACEPARENT));
	ck_assert_str_eq(jpath_str(j, "metadata", "labels", TASK_LABEL_POOL),
	    "research");
	ck_assert_str_eq(jpath_str(j, "metadata", "labels", TASK_LABEL_DEPTH),
	    "0");
	ck_assert_str_eq(jpath_str(j, "metadata", "labels", TASK_LABEL_TASK),
	    jpath_str(j, "metadata", "labels", TASK_LABEL_ROOT));
	ck_assert_ptr_null(jpath(j, "spec", "lifecycle", NULL));
	cJSON_Delete(j);
	free(body);
}
END_TEST

#define CLAIM_MD(extra) "{\"apiVersion\":\"extensions.agents.x-k8s.io/" \
	"v1beta1\",\"kind\":\"SandboxClaim\",\"metadata\":{\"name\":" \
	"\"research-0123456789abcdef\",\"namespace\":\"team-a\",\"uid\":" \
	"\"5f0c-11\",\"resourceVersion\":\"42\",\"creationTimestamp\":" \
	"\"2026-11-25T17:34:46Z\",\"labels\":{" \
	"\"app.kubernetes.io/managed-by\":" \
	"\"agentscaler\",\"agentscaler.io/pool\":\"research\"," \
	"\"agentscaler.io/depth\":\"1\"},\"annotations\":{" \
	"\"agentscaler.io/task-id\":\"t-2\",\"agentscaler.io/parent-id\":" \
	"\"t-1\",\"agentscaler.io/root-id\":\"t-1\"," \
	"\"agents.x-k8s.io/client-first-requested-at\":" \
	"\"2026-11-25T17:34:45.500000000Z\"}" extra "},\"spec\":{" \
	"\"warmPoolRef\":{\"name\":\"research-warm\"},\"lifecycle\":{" \
	"\"shutdownTime\":\"2026-11-25T18:34:45Z\",\"shutdownPolicy\":" \
	"\"Delete\"}}"
#define COND(type, status, reason) "{\"type\":\"" type "\",\"status\":\"" \
	status "\",\"reason\":\"" reason "\",\"message\":\"m-" reason "\"," \
	"\"lastTransitionTime\":\"2026-11-25T17:34:47Z\"}"

static const struct {
	const char	*json;
	const char	*sandbox;
	int		 ready;
	const char	*reason;
	int		 finished;
	int		 deleting;
	int		 terminal;
} claim_rows[] = {
	/* Just created: no status yet. */
	{ CLAIM_MD("") "}", "", -1, "", 0, 0, 0 },
	{ CLAIM_MD("") ",\"status\":{}}", "", -1, "", 0, 0, 0 },
	{ CLAIM_MD("") ",\"status\":{\"conditions\":[" COND("Ready", "False",
	    "SandboxMissing") "]}}", "", 0, "SandboxMissing", 0, 0, 0 },
	/* Warm adoption: a pool member's name, ready at once. */
	{ CLAIM_MD("") ",\"status\":{\"sandbox\":{\"name\":\"research-warm-"
	    "x7k2p\",\"podIPs\":[\"10.0.0.7\"]},\"conditions\":[" COND("Ready",
	    "True", "DependenciesReady") "]}}", "research-warm-x7k2p", 1,
	    "DependenciesReady", 0, 0, 0 },
	/* Cold start: the claim's own name, not ready yet. */
	{ CLAIM_MD("") ",\"status\":{\"sandbox\":{\"name\":\"research-"
	    "0123456789abcdef\"},\"conditions\":[" COND("Ready", "False",
	    "DependenciesNotReady") "]}}", "research-0123456789abcdef", 0,
	    "DependenciesNotReady", 0, 0, 0 },
	{ CLAIM_MD("") ",\"status\":{\"conditions\":[" COND("Ready", "False",
	    "WarmPoolNotFound") "]}}", "", 0, "WarmPoolNotFound", 0, 0, 0 },
	{ CLAIM_MD("") ",\"status\":{\"sandbox\":{\"name\":\"s\"},"
	    "\"conditions\":[" COND("Ready", "False", "PodFailed") "]}}", "s",
	    0, "PodFailed", 0, 0, 1 },
	{ CLAIM_MD("") ",\"status\":{\"sandbox\":{\"name\":\"s\"},"
	    "\"conditions\":[" COND("Ready", "False", "PodSucceeded") ","
	    COND("Finished", "True", "Done") "]}}", "s", 0, "PodSucceeded", 1,
	    0, 1 },
	{ CLAIM_MD("") ",\"status\":{\"sandbox\":{\"name\":\"s\"},"
	    "\"conditions\":[" COND("Finished", "False", "Running") ","
	    COND("Ready", "Unknown", "ReconcilerError") "]}}", "s", -1,
	    "ReconcilerError", 0, 0, 0 },
	/* Deleting: the watch still shows it until it is gone. */
	{ CLAIM_MD(",\"deletionTimestamp\":\"2026-11-25T17:40:00Z\"") ","
	    "\"status\":{\"sandbox\":{\"name\":\"s\"},\"conditions\":["
	    COND("Ready", "True", "DependenciesReady") "]}}", "s", 1,
	    "DependenciesReady", 0, 1, 0 },
	/* Malformed parts are ignored, not fatal. */
	{ CLAIM_MD("") ",\"status\":{\"sandbox\":\"s\",\"conditions\":{}}}",
	    "", -1, "", 0, 0, 0 },
	{ CLAIM_MD("") ",\"status\":{\"conditions\":[1,{\"status\":\"True\"},"
	    "{\"type\":\"Ready\"}]}}", "", -1, "", 0, 0, 0 },
};

START_TEST(test_claim_parse_rows)
{
	struct claim_view cv;
	cJSON		*j;
	char		 err[128];

	j = parse_json(claim_rows[_i].json, strlen(claim_rows[_i].json));
	ck_assert_int_eq(task_claim_parse(j, &cv, err, sizeof err), 0);
	ck_assert_str_eq(cv.name, "research-0123456789abcdef");
	ck_assert_str_eq(cv.ns, "team-a");
	ck_assert_str_eq(cv.uid, "5f0c-11");
	ck_assert_int_eq(cv.managed, 1);
	ck_assert_str_eq(cv.pool, "research");
	ck_assert_str_eq(cv.task_id, "t-2");
	ck_assert_str_eq(cv.parent_id, "t-1");
	ck_assert_str_eq(cv.root_id, "t-1");
	ck_assert_int_eq(cv.depth, 1);
	ck_assert_double_eq(cv.created, 1795628086.0);
	ck_assert_double_eq(cv.requested_at, 1795628085.5);
	ck_assert_double_eq(cv.shutdown_time, 1795628085.0 + 3600);
	ck_assert_str_eq(cv.sandbox, claim_rows[_i].sandbox);
	ck_assert_int_eq(cv.ready, claim_rows[_i].ready);
	ck_assert_str_eq(cv.ready_reason, claim_rows[_i].reason);
	if (claim_rows[_i].reason[0] != '\0')
		ck_assert(strncmp(cv.ready_message, "m-", 2) == 0);
	ck_assert_int_eq(cv.finished, claim_rows[_i].finished);
	ck_assert_str_eq(cv.finished_reason, claim_rows[_i].finished ?
	    "Done" : "");
	ck_assert_int_eq(cv.deleting, claim_rows[_i].deleting);
	ck_assert_int_eq(task_claim_terminal(&cv), claim_rows[_i].terminal);
	cJSON_Delete(j);
}
END_TEST

/*
 * task_claim_slim keeps all that task_claim_parse reads: every row, and a
 * claim as the API server returns it (managedFields, owner, finalizers,
 * other labels and annotations, resources and tree budget), read the same
 * after it; what it drops is gone.
 */
static const char *const slim_extra[] = {
	CLAIM_MD(",\"managedFields\":[{\"manager\":\"agentscaler\","
	    "\"operation\":\"Update\",\"fieldsV1\":{\"f:metadata\":{}}}],"
	    "\"ownerReferences\":[{\"uid\":\"o\",\"controller\":true}],"
	    "\"finalizers\":[\"x\"],\"generation\":3,\"deletionTimestamp\":"
	    "\"2026-11-25T17:40:00Z\"") ",\"status\":{\"sandbox\":{\"name\":"
	    "\"s\"},\"conditions\":[" COND("Ready", "True", "DependenciesReady")
	    "," COND("Finished", "True", "Done") "]}}",
	"{\"metadata\":{\"name\":\"c\",\"namespace\":\"n\",\"labels\":{"
	    "\"app.kubernetes.io/managed-by\":\"agentscaler\",\"other\":\"x\"},"
	    "\"annotations\":{\"agentscaler.io/task-id\":\"t\","
	    "\"agentscaler.io/resources\":\"{\\\"cpu\\\":0.5,\\\"memory\\\":"
	    "1073741824}\",\"agentscaler.io/tree-budget\":\"{\\\"seconds\\\":"
	    "12.5,\\\"at\\\":1795628000}\",\"kubectl.kubernetes.io/last-"
	    "applied-configuration\":\"{}\"}},\"spec\":{\"lifecycle\":{"
	    "\"shutdownTime\":\"2026-11-25T18:34:45Z\"}}}",
	"{\"metadata\":{\"name\":\"c\",\"labels\":[],\"annotations\":1},"
	    "\"spec\":[],\"status\":{\"conditions\":[1,\"x\",{}]}}",
};

START_TEST(test_claim_slim_reads_same)
{
	struct claim_view full, slim;
	cJSON		*j;
	char		 err[128], *text;
	const char	*doc;
	size_t		 nrows = AS_ARRAY_SIZE(claim_rows);

	doc = (size_t)_i < nrows ? claim_rows[_i].json :
	    slim_extra[(size_t)_i - nrows];
	j = parse_json(doc, strlen(doc));
	ck_assert_int_eq(task_claim_parse(j, &full, err, sizeof err), 0);
	task_claim_slim(j, NULL);
	ck_assert_int_eq(task_claim_parse(j, &slim, err, sizeof err), 0);
	ck_assert(memcmp(&full, &slim, sizeof full) == 0);
	text = cJSON_PrintUnformatted(j);
	ck_assert_ptr_null(strstr(text, "managedFields"));
	ck_assert_ptr_null(strstr(text, "ownerReferences"));
	ck_assert_ptr_null(strstr(text, "lastTransitionTime"));
	ck_assert_ptr_null(strstr(text, "warmPoolRef"));
	ck_assert_ptr_null(strstr(text, "last-applied"));
	ck_assert_ptr_null(strstr(text, "\"other\""));
	ck_assert_ptr_null(strstr(text, "apiVersion"));
	free(text);
	cJSON_Delete(j);
}
END_TEST

/* status.sandbox.podIPs[0] (handoff http, X-Sandbox-Pod-IP or via podIP). */
START_TEST(test_claim_pod_ip)
{
	static const struct {
		const char	*status;
		const char	*ip;
	} rows[] = {
		{ "{\"sandbox\":{\"name\":\"s\",\"podIPs\":[\"10.1.2.3\","
		    "\"fd00::1\"]}}", "10.1.2.3" },
		{ "{\"sandbox\":{\"name\":\"s\",\"podIPs\":[]}}", "" },
		{ "{\"sandbox\":{\"name\":\"s\",\"podIPs\":[7]}}", "" },
		{ "{\"sandbox\":{\"name\":\"s\",\"podIPs\":\"10.1.2.3\"}}", "" },
		{ "{\"sandbox\":{\"name\":\"s\",\"podIPs\":[\"1234567890"
		    "1234567890123456789012345678901234567890123456789012345"
		    "67890\"]}}", "" },
		{ "{}", "" },
	};
	struct claim_view cv;
	char		*doc, err[128];
	cJSON		*j;
	size_t		 i;

	for (i = 0; i < AS_ARRAY_SIZE(rows); i++) {
		doc = xasprintf("{\"metadata\":{\"name\":\"c\"},\"status\":"
		    "%s}", rows[i].status);
		j = parse_json(doc, strlen(doc));
		ck_assert_int_eq(task_claim_parse(j, &cv, err, sizeof err), 0);
		ck_assert_msg(strcmp(cv.pod_ip, rows[i].ip) == 0, "row %zu: %s",
		    i, cv.pod_ip);
		cJSON_Delete(j);
		free(doc);
	}
}
END_TEST

START_TEST(test_claim_parse_sparse)
{
	struct claim_view cv;
	cJSON		*j;
	char		 err[128], longname[400], *doc;
	int		 i;

	/* Only a name: every default. */
	j = cJSON_Parse("{\"metadata\":{\"name\":\"c\"}}");
	ck_assert_int_eq(task_claim_parse(j, &cv, err, sizeof err), 0);
	ck_assert_str_eq(cv.name, "c");
	ck_assert_str_eq(cv.ns, "");
	ck_assert_int_eq(cv.managed, 0);
	ck_assert_str_eq(cv.pool, "");
	ck_assert_str_eq(cv.task_id, "");
	ck_assert_int_eq(cv.depth, 0);
	ck_assert_str_eq(cv.sandbox, "");
	ck_assert_int_eq(cv.ready, -1);
	ck_assert_int_eq(cv.finished, 0);
	ck_assert_int_eq(cv.deleting, 0);
	ck_assert_double_eq(cv.created, 0);
	ck_assert_double_eq(cv.shutdown_time, 0);
	ck_assert_double_eq(cv.requested_at, 0);
	ck_assert_int_eq(task_claim_terminal(&cv), 0);
	cJSON_Delete(j);

	/* No name: refused. */
	static const char *const noname[] = {
		"{}", "[]", "{\"metadata\":{}}", "{\"metadata\":[]}",
		"{\"metadata\":{\"name\":\"\"}}", "{\"metadata\":{\"name\":1}}",
		"{\"Metadata\":{\"name\":\"c\"}}",
	};
	for (i = 0; i < (int)AS_ARRAY_SIZE(noname); i++) {
		j = cJSON_Parse(noname[i]);
		err[0] = '\0';
		ck_assert_int_eq(task_claim_parse(j, &cv, err, sizeof err),
		    -AS_EPROTO);
		ck_assert_str_eq(err, "the SandboxClaim has no metadata.name");
		cJSON_Delete(j);
	}
	ck_assert_int_eq(task_claim_parse(NULL, &cv, err, sizeof err),
	    -AS_EPROTO);

	/* Not ours, bad depth labels, unparsable times. */
	static const char *const depth[] = { "x", "-1", "", "1e3",
	    "9999999999", " 1" };
	for (i = 0; i < (int)AS_ARRAY_SIZE(depth); i++) {
		doc = xasprintf("{\"metadata\":{\"name\":\"c\",\"labels\":{"
		    "\"app.kubernetes.io/managed-by\":\"Helm\","
		    "\"agentscaler.io/depth\":\"%s\"},\"creationTimestamp\":"
		    "\"yesterday\"}}", depth[i]);
		j = cJSON_Parse(doc);
		ck_assert_int_eq(task_claim_parse(j, &cv, err, sizeof err), 0);
		ck_assert_int_eq(cv.depth, 0);
		ck_assert_int_eq(cv.managed, 0);
		ck_assert_double_eq(cv.created, 0);
		cJSON_Delete(j);
		free(doc);
	}

	/* Over-long strings are cut to their buffers on a UTF-8 boundary. */
	memset(longname, 'n', sizeof longname);
	memcpy(longname + 62, "\xc3\xa9", 2);
	longname[300] = '\0';
	doc = xasprintf("{\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\","
	    "\"annotations\":{\"agentscaler.io/task-id\":\"%s\"}},\"status\":"
	    "{\"sandbox\":{\"name\":\"%s\"}}}", longname, longname, longname,
	    longname);
	j = cJSON_Parse(doc);
	ck_assert_int_eq(task_claim_parse(j, &cv, err, sizeof err), 0);
	ck_assert_uint_eq(strlen(cv.name), 62);	/* é would not fit */
	ck_assert_uint_eq(strlen(cv.ns), 62);
	ck_assert_uint_eq(strlen(cv.task_id), TASK_ID_MAX);
	ck_assert_uint_eq(strlen(cv.sandbox), sizeof cv.sandbox - 1);
	cJSON_Delete(j);
	free(doc);
}
END_TEST

/* What we write, we read back the same. */
START_TEST(test_claim_round_trip)
{
	struct claim_spec cs = { "team-a", NULL, "research", "research-warm",
	    "t-9", "t-3", "t-1", 3, TP, "agentscaler-0", 1795628085.125, 600,
	    NULL, 0 };
	struct claim_view cv;
	char		 name[CLAIM_NAME_MAX + 1], err[64], *body;
	cJSON		*j;
	size_t		 len;

	task_claim_name(cs.pool, cs.ns, cs.task_id, name);
	cs.name = name;
	body = task_claim_body(&cs, &len);
	j = parse_json(body, len);
	ck_assert_int_eq(task_claim_parse(j, &cv, err, sizeof err), 0);
	ck_assert_str_eq(cv.name, name);
	ck_assert_str_eq(cv.ns, "team-a");
	ck_assert_int_eq(cv.managed, 1);
	ck_assert_str_eq(cv.pool, "research");
	ck_assert_str_eq(cv.task_id, "t-9");
	ck_assert_str_eq(cv.parent_id, "t-3");
	ck_assert_str_eq(cv.root_id, "t-1");
	ck_assert_int_eq(cv.depth, 3);
	ck_assert_double_eq(cv.requested_at, 1795628085.125);
	ck_assert_double_eq(cv.shutdown_time, 1795628085.0 + 600);
	ck_assert_int_eq(cv.ready, -1);
	ck_assert_uint_eq(cv.nresources, 0);
	cJSON_Delete(j);
	free(body);
}
END_TEST

/* Resource requests ride on the claim, so usage is rebuilt after restart. */
START_TEST(test_claim_resources_round_trip)
{
	static const struct task_resource res[] = { { "cpu", 0.5 },
	    { "memory", 1073741824.0 }, { "nvidia.com/gpu", 1 } };
	struct claim_spec cs = { "team-a", "research-x", "research", "warm",
	    "t-9", NULL, "t-9", 0, NULL, "as-0", 1795628085.0, 600, res, 3 };
	struct claim_view cv;
	char		 err[64], *body;
	cJSON		*j;
	size_t		 len;

	body = task_claim_body(&cs, &len);
	j = parse_json(body, len);
	ck_assert_int_eq(task_claim_parse(j, &cv, err, sizeof err), 0);
	ck_assert_uint_eq(cv.nresources, 3);
	ck_assert_str_eq(cv.resources[0].name, "cpu");
	ck_assert_double_eq(cv.resources[0].value, 0.5);
	ck_assert_str_eq(cv.resources[1].name, "memory");
	ck_assert_double_eq(cv.resources[1].value, 1073741824.0);
	ck_assert_str_eq(cv.resources[2].name, "nvidia.com/gpu");
	ck_assert_double_eq(cv.resources[2].value, 1);
	cJSON_Delete(j);
	free(body);
}
END_TEST

/*
 * terminal: fail at once; wait: the cluster's fault (issue 12: upstream
 * retries pod-level problems and recovers from TemplateNotFound and
 * WarmPoolNotFound, #1315), waited for past readyTimeoutSeconds.
 */
static const struct {
	const char	*reason;
	int		 ready;
	int		 terminal;
	int		 wait;
} terminal_rows[] = {
	{ "InvalidMetadata", 0, 1, 0 },
	{ "EnvVarsInjectionRejected", 0, 1, 0 },
	{ "VolumeClaimTemplatesError", 0, 1, 0 },
	{ "ClaimExpired", 0, 1, 0 },
	{ "SandboxExpired", 0, 1, 0 },
	{ "TemplateNotFound", 0, 0, 1 },
	{ "WarmPoolNotFound", 0, 0, 1 },
	{ "PodFailed", 0, 1, 0 },
	{ "PodSucceeded", 0, 1, 0 },
	{ "PodFailed", -1, 1, 0 },
	{ "SandboxMissing", 0, 0, 0 },
	{ "SandboxNotReady", 0, 0, 0 },
	{ "SandboxCreatePending", 0, 0, 0 },
	{ "AdoptionConflict", 0, 0, 0 },
	{ "ReconcilerError", 0, 0, 1 },
	{ "ReconcilerError", -1, 0, 1 },
	{ "DependenciesNotReady", 0, 0, 1 },
	{ "SandboxSuspended", 0, 0, 0 },
	{ "DependenciesReady", 1, 0, 0 },
	{ "podfailed", 0, 0, 0 },		/* reasons are exact */
	{ "", -1, 0, 0 },
	{ "ClaimExpired", 1, 0, 0 },		/* Ready=True wins */
	{ "ReconcilerError", 1, 0, 0 },
};

START_TEST(test_claim_terminal)
{
	struct claim_view cv;

	memset(&cv, 0, sizeof cv);
	cv.ready = terminal_rows[_i].ready;
	as_strlcpy(cv.ready_reason, terminal_rows[_i].reason,
	    sizeof cv.ready_reason);
	ck_assert_int_eq(task_claim_terminal(&cv), terminal_rows[_i].terminal);
	ck_assert_int_eq(task_claim_cluster_wait(&cv), terminal_rows[_i].wait);
}
END_TEST

START_TEST(test_handoff)
{
	const char	*orig = " {\"id\":\"t-2\", \"parent\":\"t-1\","
	    "\"payload\":{\"n\":1.50,\"s\":\"caf\xc3\xa9 \\u00e9\"}} ";
	struct handoff_spec h = { "team-a", "research", "research-00aa",
	    "research-warm-x7k2p", "t-2", "t-1", "t-0", 2 };
	struct task	 t;
	struct task_error err;
	cJSON		*j, *o, *a;
	char		*body;
	size_t		 len;

	ck_assert_int_eq(task_parse(orig, strlen(orig), 0, &t, &err), 0);
	body = task_handoff_body(&h, orig, strlen(orig), &len);
	j = parse_json(body, len);
	ck_assert_int_eq(cJSON_GetArraySize(j), 2);
	/* Byte for byte, so numbers keep the producer's spelling. */
	ck_assert_ptr_nonnull(strstr(body, orig));
	o = cJSON_Parse(orig);
	ck_assert(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(j, "task"), o,
	    1));
	cJSON_Delete(o);
	a = cJSON_GetObjectItemCaseSensitive(j, "agentscaler");
	ck_assert_int_eq(cJSON_GetArraySize(a), 8);
	ck_assert_str_eq(as_json_str(a, "namespace"), "team-a");
	ck_assert_str_eq(as_json_str(a, "pool"), "research");
	ck_assert_str_eq(as_json_str(a, "claim"), "research-00aa");
	ck_assert_str_eq(as_json_str(a, "sandbox"), "research-warm-x7k2p");
	ck_assert_str_eq(as_json_str(a, "id"), "t-2");
	ck_assert_str_eq(as_json_str(a, "parent"), "t-1");
	ck_assert_str_eq(as_json_str(a, "root"), "t-0");
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(a, "depth")));
	ck_assert_double_eq(cJSON_GetObjectItem(a, "depth")->valuedouble, 2);
	cJSON_Delete(j);
	free(body);

	/* A root: parent is null. */
	h.parent_id = NULL;
	h.depth = 0;
	body = task_handoff_body(&h, "{\"id\":\"t-0\"}", 12, &len);
	j = parse_json(body, len);
	a = cJSON_GetObjectItemCaseSensitive(j, "agentscaler");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(a, "parent")));
	ck_assert_str_eq(as_json_str(cJSON_GetObjectItem(j, "task"), "id"),
	    "t-0");
	cJSON_Delete(j);
	free(body);
}
END_TEST

static Suite *
task_suite(void)
{
	Suite	*s = suite_create("task");
	TCase	*tc = tcase_create("parse");

	tcase_add_loop_test(tc, test_parse_reasons, 0,
	    (int)AS_ARRAY_SIZE(parse_rows));
	tcase_add_test(tc, test_parse_odd_inputs);
	tcase_add_test(tc, test_claim_resources_round_trip);
	tcase_add_test(tc, test_parse_fields);
	tcase_add_test(tc, test_parse_failure_keeps_id);
	tcase_add_test(tc, test_parse_resource_name_detail);
	tcase_add_test(tc, test_size_limit);
	tcase_add_loop_test(tc, test_utf8, 0, (int)AS_ARRAY_SIZE(utf8_rows));
	suite_add_tcase(s, tc);

	tc = tcase_create("output");
	tcase_add_test(tc, test_dead_letter_text);
	tcase_add_loop_test(tc, test_dead_letter_base64, 0,
	    (int)AS_ARRAY_SIZE(b64_rows));
	tcase_add_loop_test(tc, test_dead_letter_cut, 0,
	    (int)AS_ARRAY_SIZE(cut_rows));
	tcase_add_test(tc, test_dead_letter_cut_bounded);
	tcase_add_test(tc, test_dead_letter_cut_utf8);
	tcase_add_test(tc, test_hashes);
	tcase_add_loop_test(tc, test_claim_name_rows, 0,
	    (int)AS_ARRAY_SIZE(claim_name_rows));
	tcase_add_test(tc, test_claim_name_generated);
	tcase_add_test(tc, test_claim_digest);
	tcase_add_test(tc, test_pool_label);
	tcase_add_test(tc, test_claim_body);
	tcase_add_test(tc, test_handoff);
	suite_add_tcase(s, tc);

	tc = tcase_create("claim");
	tcase_add_loop_test(tc, test_claim_parse_rows, 0,
	    (int)AS_ARRAY_SIZE(claim_rows));
	tcase_add_loop_test(tc, test_claim_slim_reads_same, 0,
	    (int)(AS_ARRAY_SIZE(claim_rows) + AS_ARRAY_SIZE(slim_extra)));
	tcase_add_test(tc, test_claim_parse_sparse);
	tcase_add_test(tc, test_claim_pod_ip);
	tcase_add_test(tc, test_claim_round_trip);
	tcase_add_loop_test(tc, test_claim_terminal, 0,
	    (int)AS_ARRAY_SIZE(terminal_rows));
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(task_suite()));
}
