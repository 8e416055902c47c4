/*
 * check_util.c: the shared helpers: secret redaction, backoff bounds,
 * bounded copies (and UTF-8 at their cuts), the growable buffer with Prometheus escaping, and RFC
 * 3339 times.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
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

/*
 * as_backoff(base, cap, a) is a delay drawn from [base/2, min(cap,
 * base * 2^a)]: each attempt's draws stay in its own range, the range's
 * top doubles until the cap and is reached (nearly), and the draws are
 * spread over the range (jitter).  A constant, a delay without jitter, one
 * that does not grow, or one past the cap fails here.  Seeded: the same
 * draws every run.
 */
START_TEST(test_backoff_bounds)
{
	const double	 base = 0.1, cap = 5.0;
	double		 d, hi, lo, max, min, sum, mean, prev_mean = 0;
	unsigned	 a;
	int		 i, n = 400;

	as_random_seed(42);
	for (a = 0; a < 40; a++) {
		hi = base * ldexp(1.0, (int)(a < 30 ? a : 30));
		if (hi > cap)
			hi = cap;
		lo = base / 2;
		max = 0;
		min = 1e9;
		sum = 0;
		for (i = 0; i < n; i++) {
			d = as_backoff(base, cap, a);
			ck_assert_msg(d >= lo && d <= hi,
			    "attempt %u: %f outside [%f, %f]", a, d, lo, hi);
			if (d > max)
				max = d;
			if (d < min)
				min = d;
			sum += d;
		}
		mean = sum / n;
		/* Jitter: the draws cover the range, top and bottom. */
		ck_assert_msg(max > hi - (hi - lo) / 10,
		    "attempt %u: largest %f, range top %f", a, max, hi);
		ck_assert_msg(min < lo + (hi - lo) / 10,
		    "attempt %u: smallest %f, range bottom %f", a, min, lo);
		/* Uniform: the mean is near the middle of the range. */
		ck_assert_msg(fabs(mean - (lo + hi) / 2) < (hi - lo) / 10,
		    "attempt %u: mean %f, range [%f, %f]", a, mean, lo, hi);
		/* Growth until the cap: each attempt waits longer on average. */
		if (a > 0 && base * ldexp(1.0, (int)a - 1) < cap)
			ck_assert_msg(mean > prev_mean * 1.3,
			    "attempt %u: mean %f after %f", a, mean, prev_mean);
		prev_mean = mean;
	}
	/* The cap is reached: late attempts wait up to cap, never more. */
	ck_assert(hi == cap);
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

/*
 * UTF-8 at cuts.  size is the destination's (as_strlcpy_utf8); want is
 * what it holds.  Ill-formed input is kept byte for byte: only a sequence
 * the cut would split is dropped.
 */
static const struct {
	const char	*src;
	size_t		 size;
	const char	*want;
} utf8_rows[] = {
	{ "abcdef", 4, "abc" },			/* ASCII as as_strlcpy */
	{ "abc", 4, "abc" },			/* exact fit */
	{ "abc", 0, NULL },			/* size 0: nothing written */
	{ "abc", 1, "" },
	{ "\xc3\xa9", 1, "" },
	{ "\xc3\xa9", 2, "" },			/* 2-byte split */
	{ "\xc3\xa9", 3, "\xc3\xa9" },		/* exact fit */
	{ "a\xc3\xa9z", 3, "a" },
	{ "a\xe2\x82\xac", 3, "a" },		/* 3-byte after 1 */
	{ "a\xe2\x82\xac", 4, "a" },		/* after 2 */
	{ "a\xe2\x82\xac", 5, "a\xe2\x82\xac" },
	{ "\xf0\x9f\x98\x80!", 4, "" },		/* 4-byte after 3 */
	{ "\xf0\x9f\x98\x80!", 5, "\xf0\x9f\x98\x80" },
	/* Ill-formed input: kept as it is. */
	{ "\xff\xfe" "abc", 3, "\xff\xfe" },
	{ "a\x80\x80\x80\x80z", 4, "a\x80\x80" },	/* stray continuations */
	{ "\xc3\xa9\x80\x80", 4, "\xc3\xa9\x80" },	/* sequence ends first */
	{ "\xc0\xaf" "x", 2, "\xc0" },		/* 0xc0 leads nothing */
	{ "\xe2\x82" "abc", 3, "\xe2\x82" },	/* truncated, not by us */
	{ "\xf0\x9f\x98", 3, "" },		/* ... but split by us */
};

START_TEST(test_utf8_rows)
{
	char	 out[16];
	size_t	 n;

	memset(out, 'Z', sizeof out);
	n = as_strlcpy_utf8(out, utf8_rows[_i].src, utf8_rows[_i].size);
	ck_assert_uint_eq(n, strlen(utf8_rows[_i].src));
	if (utf8_rows[_i].want == NULL)
		ck_assert_int_eq(out[0], 'Z');
	else {
		ck_assert_str_eq(out, utf8_rows[_i].want);
		ck_assert_uint_eq(as_utf8_cut(utf8_rows[_i].src,
		    utf8_rows[_i].size - 1), strlen(utf8_rows[_i].want));
	}
}
END_TEST

/* Whole characters in s[0..n): 1 when every byte of it is UTF-8. */
static int
utf8_ok(const char *s, size_t n)
{
	return (as_utf8_invalid_at(s, n) == n);
}

/*
 * Every cut of every 2-, 3- and 4-byte character after 0 to 3 ASCII bytes,
 * through all three helpers: the output is the longest whole-character
 * prefix that fits.
 */
START_TEST(test_utf8_every_offset)
{
	static const char *const chars[] = {
		"\xc3\xa9", "\xdf\xbf", "\xe2\x82\xac", "\xef\xbf\xbd",
		"\xed\x9f\xbf", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
	};
	char	 src[32], out[32], buf[32];
	size_t	 c, lead, size, want, clen;

	for (c = 0; c < AS_ARRAY_SIZE(chars); c++)
	for (lead = 0; lead < 4; lead++) {
		clen = strlen(chars[c]);
		snprintf(src, sizeof src, "%.*s%s%s", (int)lead, "xyz",
		    chars[c], chars[c]);
		for (size = 1; size <= strlen(src) + 1; size++) {
			/* Whole characters: lead ASCII, then clen each. */
			want = size - 1 < lead ? size - 1 :
			    lead + (size - 1 - lead) / clen * clen;
			as_strlcpy_utf8(out, src, size);
			ck_assert_uint_eq(strlen(out), want);
			ck_assert(memcmp(out, src, want) == 0);
			ck_assert(utf8_ok(out, want));
			ck_assert_uint_eq(as_utf8_cut(src, size - 1), want);
			/* The same buffer cut by snprintf, then trimmed. */
			snprintf(buf, size, "%s", src);
			ck_assert_uint_eq(as_utf8_trim(buf), want);
			ck_assert_str_eq(buf, out);
		}
	}
}
END_TEST

START_TEST(test_utf8_trim)
{
	char	 a[] = "", b[] = "abc", c[] = "ab\xe2\x82", d[] = "\xff",
		 e[] = "a\x80\x80\x80\x80", f[] = "\xc3\xa9";

	ck_assert_uint_eq(as_utf8_trim(a), 0);
	ck_assert_uint_eq(as_utf8_trim(b), 3);
	ck_assert_uint_eq(as_utf8_trim(c), 2);
	ck_assert_str_eq(c, "ab");
	ck_assert_uint_eq(as_utf8_trim(d), 1);		/* kept */
	ck_assert_uint_eq(as_utf8_trim(e), 5);		/* kept */
	ck_assert_uint_eq(as_utf8_trim(f), 2);
}
END_TEST

/*
 * Random byte strings, drawn mostly from UTF-8's structural bytes so that
 * valid input is common: the output is always a prefix of the input that
 * fits, and valid whenever the input was.
 */
START_TEST(test_utf8_fuzz)
{
	static const unsigned char pick[] = {
		'a', 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
		0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff,
	};
	static const char *const whole[] = {
		"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
	};
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	char	 src[40], out[40], buf[40];
	size_t	 i, len, size, n, valid = 0;
	int	 round;

	for (round = 0; round < 20000; round++) {
		len = 0;
		while (len < 30) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			if (round % 2 == 0) {	/* whole characters */
				const char *w = whole[x % 4];

				memcpy(src + len, w, strlen(w));
				len += strlen(w);
			} else
				src[len++] = (char)pick[x % sizeof pick];
		}
		src[len] = '\0';
		len = strlen(src);		/* a picked NUL ends it */
		if (utf8_ok(src, len))
			valid++;
		for (size = 0; size <= len + 1; size++) {
			memset(out, 'Z', sizeof out);
			as_strlcpy_utf8(out, src, size);
			if (size == 0) {
				ck_assert_int_eq(out[0], 'Z');
				continue;
			}
			n = strlen(out);
			ck_assert_uint_lt(n, size);
			ck_assert(memcmp(out, src, n) == 0);
			ck_assert_uint_ge(n + 3, size - 1 < len ? size - 1 :
			    len);
			snprintf(buf, size, "%s", src);
			i = as_utf8_trim(buf);
			ck_assert(memcmp(buf, src, i) == 0);
			if (utf8_ok(src, len)) {
				ck_assert(utf8_ok(out, n));
				ck_assert(utf8_ok(buf, i));
				ck_assert_str_eq(buf, out);
			}
		}
	}
	ck_assert_uint_gt(valid, 10000);	/* the even rounds at least */
}
END_TEST

START_TEST(test_label_utf8)
{
	struct as_buf	 b = { NULL, 0, 0 };

	/* Whole characters pass; ill-formed bytes become U+FFFD. */
	as_buf_label(&b, "p\xc3\xa9-\xe2\x82");
	ck_assert_str_eq(b.p, "p\xc3\xa9-\xef\xbf\xbd\xef\xbf\xbd");
	ck_assert(utf8_ok(b.p, b.len));
	b.len = 0;
	as_buf_label(&b, "\xff\"\xf0\x9f\x98\x80");
	ck_assert_str_eq(b.p, "\xef\xbf\xbd\\\"\xf0\x9f\x98\x80");
	free(b.p);
}
END_TEST

/* ok 0: refused.  want is unix seconds. */
static const struct {
	const char	*text;
	int		 ok;
	double		 want;
} rfc3339_rows[] = {
	{ "1970-01-01T00:00:00Z", 1, 0 },
	{ "2026-11-25T17:34:45Z", 1, 1795628085 },
	{ "2026-11-25t17:34:45z", 1, 1795628085 },
	{ "2026-11-25T19:34:45+02:00", 1, 1795628085 },
	{ "2026-11-25T12:04:45-05:30", 1, 1795628085 },
	{ "2026-11-25T17:34:45+00:00", 1, 1795628085 },
	{ "2026-11-25T17:34:45-00:00", 1, 1795628085 },
	{ "2026-11-26T17:33:45+23:59", 1, 1795628085 },
	{ "2026-11-25T17:34:45.5Z", 1, 1795628085.5 },
	{ "2026-11-25T17:34:45.250000000Z", 1, 1795628085.25 },
	{ "2026-11-25T17:34:45.125+01:00", 1, 1795628085.125 - 3600 },
	{ "1969-12-31T23:59:59Z", 1, -1 },
	{ "2000-02-29T00:00:00Z", 1, 951782400 },	/* 400-year leap */
	{ "2024-02-29T23:59:59Z", 1, 1709251199 },
	{ "9999-12-31T23:59:59Z", 1, 253402300799.0 },
	{ "0001-01-01T00:00:00Z", 1, -62135596800.0 },
	{ "0000-01-01T00:00:00Z", 1, -62167219200.0 },
	{ "2023-02-29T00:00:00Z", 0, 0 },
	{ "1900-02-29T00:00:00Z", 0, 0 },		/* 100-year rule */
	{ "2026-04-31T00:00:00Z", 0, 0 },
	{ "2026-13-01T00:00:00Z", 0, 0 },
	{ "2026-00-01T00:00:00Z", 0, 0 },
	{ "2026-01-00T00:00:00Z", 0, 0 },
	{ "2026-01-32T00:00:00Z", 0, 0 },
	{ "2026-11-25T24:00:00Z", 0, 0 },
	{ "2026-11-25T23:60:00Z", 0, 0 },
	{ "2026-12-31T23:59:60Z", 0, 0 },		/* leap second */
	{ "2026-11-25T17:34:45+24:00", 0, 0 },
	{ "2026-11-25T17:34:45+02:60", 0, 0 },
	{ "2026-11-25T17:34:45+0200", 0, 0 },
	{ "2026-11-25T17:34:45+02", 0, 0 },
	{ "2026-11-25T17:34:45.1234567891Z", 0, 0 },	/* 10 digits */
	{ "2026-11-25T17:34:45.Z", 0, 0 },
	{ "2026-11-25T17:34:45", 0, 0 },
	{ "2026-11-25T17:34:45ZZ", 0, 0 },
	{ "2026-11-25T17:34:45Z ", 0, 0 },
	{ " 2026-11-25T17:34:45Z", 0, 0 },
	{ "2026-11-25 17:34:45Z", 0, 0 },
	{ "2026-11-25", 0, 0 },
	{ "26-11-25T17:34:45Z", 0, 0 },
	{ "2026-1-25T17:34:45Z", 0, 0 },
	{ "2026-11-25T7:34:45Z", 0, 0 },
	{ "+2026-11-25T17:34:45Z", 0, 0 },
	{ "2026-11-25T17:34:4aZ", 0, 0 },
	{ "2026/11/25T17:34:45Z", 0, 0 },
	{ "", 0, 0 },
	{ "Z", 0, 0 },
};

START_TEST(test_rfc3339_parse)
{
	double	 t = -12345;
	int	 rc;

	rc = as_parse_rfc3339(rfc3339_rows[_i].text, &t);
	if (rfc3339_rows[_i].ok) {
		ck_assert_msg(rc == 0, "%s refused", rfc3339_rows[_i].text);
		ck_assert_double_eq(t, rfc3339_rows[_i].want);
	} else {
		ck_assert_msg(rc == -AS_EINVAL, "%s accepted",
		    rfc3339_rows[_i].text);
		ck_assert_double_eq(t, -12345);	/* untouched */
	}
}
END_TEST

START_TEST(test_rfc3339_format)
{
	char	 s[40];
	double	 t;

	as_rfc3339(0, 0, s, sizeof s);
	ck_assert_str_eq(s, "1970-01-01T00:00:00Z");
	as_rfc3339(0, 1, s, sizeof s);
	ck_assert_str_eq(s, "1970-01-01T00:00:00.000000000Z");
	as_rfc3339(1795628085.5, 1, s, sizeof s);
	ck_assert_str_eq(s, "2026-11-25T17:34:45.500000000Z");
	as_rfc3339(1795628085.5, 0, s, sizeof s);	/* truncated, not */
	ck_assert_str_eq(s, "2026-11-25T17:34:45Z");	/* rounded */
	as_rfc3339(951782400, 0, s, sizeof s);
	ck_assert_str_eq(s, "2000-02-29T00:00:00Z");
	as_rfc3339(-0.5, 1, s, sizeof s);
	ck_assert_str_eq(s, "1969-12-31T23:59:59.500000000Z");
	/* A fraction that rounds up to the next second carries. */
	as_rfc3339(1.9999999999, 1, s, sizeof s);
	ck_assert_str_eq(s, "1970-01-01T00:00:02.000000000Z");
	as_rfc3339(0.000000001, 1, s, sizeof s);
	ck_assert_str_eq(s, "1970-01-01T00:00:00.000000001Z");
	/* MicroTime: six digits, rounded, carrying into the second. */
	as_rfc3339_micro(1795628085.5, s, sizeof s);
	ck_assert_str_eq(s, "2026-11-25T17:34:45.500000Z");
	as_rfc3339_micro(1795628085.1234564, s, sizeof s);
	ck_assert_str_eq(s, "2026-11-25T17:34:45.123456Z");
	as_rfc3339_micro(1.9999996, s, sizeof s);
	ck_assert_str_eq(s, "1970-01-01T00:00:02.000000Z");
	ck_assert_int_eq(as_parse_rfc3339("2026-11-25T17:34:45.123456Z", &t),
	    0);
	ck_assert(fabs(t - 1795628085.123456) < 1e-6);
	/* Nonsense prints as the epoch; a short buffer stays terminated. */
	as_rfc3339(NAN, 0, s, sizeof s);
	ck_assert_str_eq(s, "1970-01-01T00:00:00Z");
	as_rfc3339(1e300, 0, s, sizeof s);
	ck_assert_str_eq(s, "1970-01-01T00:00:00Z");
	as_rfc3339(0, 0, s, 5);
	ck_assert_str_eq(s, "1970");
	ck_assert_int_eq(as_parse_rfc3339(NULL, &t), -AS_EINVAL);
}
END_TEST

/*
 * Every format parses back to its value, from year 1 to 9999; gmtime_r
 * writes the text, so this also checks our civil-date arithmetic against
 * the C library's.
 */
START_TEST(test_rfc3339_round_trip)
{
	char	 s[40];
	double	 t, back;

	for (t = -62135596800.0; t <= 253402300799.0;
	    t += 86400.0 * 13 + 3671) {
		as_rfc3339(t, 0, s, sizeof s);
		ck_assert_int_eq(as_parse_rfc3339(s, &back), 0);
		ck_assert_msg(back == t, "%s: %.0f != %.0f", s, back, t);
	}
	for (t = 1.7e9; t < 1.7e9 + 86400 * 400; t += 86400.0 * 3 + 0.125) {
		as_rfc3339(t, 1, s, sizeof s);
		ck_assert_int_eq(as_parse_rfc3339(s, &back), 0);
		ck_assert_msg(back == t, "%s: %.9f != %.9f", s, back, t);
	}
}
END_TEST

START_TEST(test_bucket_and_micro)
{
	struct as_bucket b;
	char		 t[48];

	as_bucket_init(&b, 2, 3, 100);
	ck_assert(as_bucket_take(&b, 100));
	ck_assert(as_bucket_take(&b, 100));
	ck_assert(as_bucket_take(&b, 100));
	ck_assert(!as_bucket_take(&b, 100));		/* burst spent */
	ck_assert_double_eq_tol(as_bucket_wait(&b, 100), 0.5, 1e-9);
	ck_assert(!as_bucket_take(&b, 100.4));
	ck_assert(as_bucket_take(&b, 100.5));		/* 2 per second */
	ck_assert(as_bucket_take(&b, 1000));
	ck_assert(as_bucket_take(&b, 1000));
	ck_assert(as_bucket_take(&b, 1000));
	ck_assert(!as_bucket_take(&b, 1000));		/* never past burst */
	as_rfc3339_micro(1669831467.912073, t, sizeof t);
	ck_assert_str_eq(t, "2022-11-30T18:04:27.912073Z");
	as_rfc3339_micro(0, t, sizeof t);
	ck_assert_str_eq(t, "1970-01-01T00:00:00.000000Z");
	ck_assert_uint_ne(as_hash_str("a"), as_hash_str("b"));
	ck_assert_uint_eq(as_hash_str(""), 14695981039346656037ULL);
}
END_TEST

/* ---- base64 (kubeconfig *-data fields, task originalBase64) ---- */

static const struct b64_row {
	const char	*in;
	const char	*out;	/* NULL: invalid */
	size_t		 outlen;
} b64_rows[] = {
	{ "", "", 0 },
	{ "QQ==", "A", 1 },
	{ "QUI=", "AB", 2 },
	{ "QUJD", "ABC", 3 },
	{ "aGVsbG8gd29ybGQ=", "hello world", 11 },
	{ "aGVs\nbG8g\r\nd29y bGQ=\n", "hello world", 11 },
	{ "AAEC/w==", "\x00\x01\x02\xff", 4 },
	{ "+/+/", "\xfb\xff\xbf", 3 },
	{ "QQ", NULL, 0 },		/* padding is required (StdEncoding) */
	{ "QQ=", NULL, 0 },
	{ "QQ===", NULL, 0 },
	{ "Q===", NULL, 0 },
	{ "QR==", NULL, 0 },		/* bits under the padding set */
	{ "QUJ=", NULL, 0 },
	{ "QQ==QQ==", NULL, 0 },	/* data after padding */
	{ "QU!D", NULL, 0 },
	{ "QUJD_-==", NULL, 0 },	/* URL alphabet is not this one */
	{ "=", NULL, 0 },
};

START_TEST(test_base64_decode)
{
	const struct b64_row *row = &b64_rows[_i];
	size_t		 len = 99;
	char		*out, *back;

	out = as_base64_decode(row->in, strlen(row->in), &len);
	if (row->out == NULL) {
		ck_assert_msg(out == NULL, "\"%s\" decoded", row->in);
		return;
	}
	ck_assert_msg(out != NULL, "\"%s\" refused", row->in);
	ck_assert_uint_eq(len, row->outlen);
	ck_assert(memcmp(out, row->out, len) == 0);
	ck_assert_int_eq(out[len], '\0');
	/* Encoding gives the canonical text back. */
	back = as_base64_encode(out, len);
	if (strpbrk(row->in, " \r\n") == NULL)
		ck_assert_str_eq(back, row->in);
	free(back);
	free(out);
}
END_TEST

/* ---- SHA-256 and SHA-1 (dead-letter records of oversized messages) ---- */

static const struct sha_row {
	const char	*in;
	size_t		 repeat;	/* in, this many times */
	const char	*sha256;
} sha_rows[] = {
	/* FIPS 180-2 appendix B, and the empty string. */
	{ "", 1, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855" },
	{ "abc", 1, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad" },
	{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
	    "248d6a61d20638b8e5c026930c3e6039"
	    "a33ce45964ff2167f6ecedd419db06c1" },
	{ "a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67"
	    "f1809a48a497200e046d39ccc7112cd0" },
};

START_TEST(test_sha256)
{
	const struct sha_row *row = &sha_rows[_i];
	struct as_sha256 st = { NULL };
	unsigned char	 md[AS_SHA256_LEN];
	char		 hex[2 * AS_SHA256_LEN + 1], *all;
	size_t		 n = strlen(row->in), len = n * row->repeat, i, step;

	all = xmalloc(len + 1);
	for (i = 0; i < row->repeat; i++)
		memcpy(all + i * n, row->in, n);
	as_sha256(all, len, md);
	as_hex(md, sizeof md, hex);
	ck_assert_str_eq(hex, row->sha256);
	/* In uneven pieces, as body frames come. */
	as_sha256_init(&st);
	for (i = 0, step = 1; i < len; i += step, step = step * 3 + 1)
		as_sha256_update(&st, all + i, step < len - i ? step : len - i);
	as_sha256_final(&st, md);
	ck_assert_ptr_null(st.ctx);
	as_hex(md, sizeof md, hex);
	ck_assert_str_eq(hex, row->sha256);
	/* Discarded half-way: nothing leaks, a second discard is harmless. */
	as_sha256_init(&st);
	as_sha256_update(&st, all, len);
	as_sha256_discard(&st);
	as_sha256_discard(&st);
	free(all);
}
END_TEST

START_TEST(test_sha1)
{
	char	 hex[41];

	as_sha1_hex("abc", 3, hex);
	ck_assert_str_eq(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
	as_sha1_hex("", 0, hex);
	ck_assert_str_eq(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}
END_TEST

/*
 * RFC 4231 section 4, HMAC-SHA-256 of test cases 1 to 7 (case 5 is
 * compared on its first 128 bits, as the RFC truncates it); the agent
 * protocol's token (docs/protocol.md section 2).  Keys and data are
 * (byte, count) runs or literal strings.
 */
static const struct hmac_row {
	const char	*key;		/* NULL: keyb x keyn */
	int		 keyb;
	size_t		 keyn;
	const char	*data;		/* NULL: datab x datan */
	int		 datab;
	size_t		 datan;
	const char	*mac;
} hmac_rows[] = {
	{ NULL, 0x0b, 20, "Hi There", 0, 0, "b0344c61d8db38535ca8afceaf0bf12b"
	    "881dc200c9833da726e9376c2e32cff7" },
	{ "Jefe", 0, 0, "what do ya want for nothing?", 0, 0,
	    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
	{ NULL, 0xaa, 20, NULL, 0xdd, 50, "773ea91e36800e46854db8ebd09181a7"
	    "2959098b3ef8c122d9635514ced565fe" },
	{ "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
	    "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19", 0, 0, NULL, 0xcd, 50,
	    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
	{ NULL, 0x0c, 20, "Test With Truncation", 0, 0,
	    "a3b6167473100ee06e0c796c2955552b" },
	{ NULL, 0xaa, 131, "Test Using Larger Than Block-Size Key - Hash Key "
	    "First", 0, 0, "60e431591ee0b67f0d8a26aacbf5b77f"
	    "8e0bc6213728c5140546040f0ee37f54" },
	{ NULL, 0xaa, 131, "This is a test using a larger than block-size key "
	    "and a larger than block-size data. The key needs to be hashed "
	    "before being used by the HMAC algorithm.", 0, 0,
	    "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
};

START_TEST(test_hmac_sha256)
{
	const struct hmac_row *row = &hmac_rows[_i];
	unsigned char	 key[256], data[256], md[AS_SHA256_LEN];
	char		 hex[2 * AS_SHA256_LEN + 1];
	size_t		 kn, dn;

	kn = row->key != NULL ? strlen(row->key) : row->keyn;
	if (row->key != NULL)
		memcpy(key, row->key, kn);
	else
		memset(key, row->keyb, kn);
	dn = row->data != NULL ? strlen(row->data) : row->datan;
	if (row->data != NULL)
		memcpy(data, row->data, dn);
	else
		memset(data, row->datab, dn);
	as_hmac_sha256(key, kn, data, dn, md);
	as_hex(md, sizeof md, hex);
	hex[strlen(row->mac)] = '\0';
	ck_assert_str_eq(hex, row->mac);
}
END_TEST

static Suite *
util_suite(void)
{
	Suite	*s = suite_create("util");
	TCase	*tc = tcase_create("util");

	/*
	 * A hang guard, not a speed check: the round trip walks 8,000 years
	 * and the digests a million bytes, which under ASan on a loaded
	 * 2-core machine took longer than Check's default 4 s.
	 */
	tcase_set_timeout(tc, 120);

	tcase_add_loop_test(tc, test_redact, 0,
	    (int)AS_ARRAY_SIZE(redact_rows));
	tcase_add_test(tc, test_backoff_bounds);
	tcase_add_test(tc, test_buf_and_strlcpy);
	tcase_add_loop_test(tc, test_utf8_rows, 0,
	    (int)AS_ARRAY_SIZE(utf8_rows));
	tcase_add_test(tc, test_utf8_every_offset);
	tcase_add_test(tc, test_utf8_trim);
	tcase_add_test(tc, test_utf8_fuzz);
	tcase_add_test(tc, test_label_utf8);
	tcase_add_loop_test(tc, test_rfc3339_parse, 0,
	    (int)AS_ARRAY_SIZE(rfc3339_rows));
	tcase_add_test(tc, test_rfc3339_format);
	tcase_add_test(tc, test_rfc3339_round_trip);
	tcase_add_test(tc, test_bucket_and_micro);
	tcase_add_loop_test(tc, test_sha256, 0, (int)AS_ARRAY_SIZE(sha_rows));
	tcase_add_loop_test(tc, test_hmac_sha256, 0,
	    (int)AS_ARRAY_SIZE(hmac_rows));
	tcase_add_test(tc, test_sha1);
	tcase_add_loop_test(tc, test_base64_decode, 0,
	    (int)AS_ARRAY_SIZE(b64_rows));
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(util_suite()));
}
