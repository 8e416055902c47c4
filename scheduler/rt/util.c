/*
 * util.c: allocation wrappers, error names, clocks, jitter and small file
 * readers and RFC 3339 times shared by every module.  Nothing here touches
 * the event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"

static const char *const as_err_names[AS_EMAX] = {
	[AS_OK] = "ok",
	[AS_ENOMEM] = "out of memory",
	[AS_EINVAL] = "invalid input",
	[AS_EPROTO] = "protocol error",
	[AS_ETIMEDOUT] = "timed out",
	[AS_ECONN] = "connection failed",
	[AS_EAUTH] = "authentication failed",
	[AS_ENOTFOUND] = "not found",
	[AS_EFORBIDDEN] = "forbidden",
	[AS_ECONFLICT] = "conflict",
	[AS_ETHROTTLED] = "throttled",
	[AS_ESERVER] = "server error",
	[AS_ECANCELED] = "canceled",
	[AS_EIO] = "i/o error",
	[AS_EAGAIN] = "try again",
};

const char *
as_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err >= AS_EMAX || as_err_names[err] == NULL)
		return ("unknown error");
	return (as_err_names[err]);
}

static void
xoom(size_t n)
{
	fprintf(stderr, "agentscaler: out of memory allocating %zu bytes\n",
	    n);
	abort();
}

#ifdef AS_TESTING
unsigned long	 as_xmalloc_calls;
#endif

void *
xmalloc(size_t n)
{
	void	*p;

#ifdef AS_TESTING
	as_xmalloc_calls++;
#endif
	if (n == 0)
		n = 1;
	if ((p = malloc(n)) == NULL)
		xoom(n);
	return (p);
}

/*
 * cJSON allocates through xmalloc from before main() on (json.h): this
 * object holds xmalloc, so every program that links the runtime has it.
 * With a malloc other than the C library's, cJSON copies instead of calling
 * realloc; it frees with free(), so its printed strings are free()d too.
 */
static void	 as_json_hooks(void) __attribute__((constructor));

static void
as_json_hooks(void)
{
	cJSON_Hooks	 h = { xmalloc, free };

	cJSON_InitHooks(&h);
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void	*p;

	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	if ((p = calloc(nmemb, size)) == NULL)
		xoom(nmemb * size);
	return (p);
}

void *
xrealloc(void *old, size_t n)
{
	void	*p;

	if (n == 0)
		n = 1;
	if ((p = realloc(old, n)) == NULL)
		xoom(n);
	return (p);
}

char *
xstrdup(const char *s)
{
	return (xstrndup(s, strlen(s)));
}

char *
xstrndup(const char *s, size_t n)
{
	char	*p;
	size_t	 len;

	len = strnlen(s, n);
	p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return (p);
}

char *
xvasprintf(const char *fmt, va_list ap)
{
	va_list	 aq;
	char	*p;
	int	 n;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0)
		abort();
	p = xmalloc((size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	return (p);
}

char *
xasprintf(const char *fmt, ...)
{
	va_list	 ap;
	char	*p;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	return (p);
}

size_t
as_strlcpy(char *dst, const char *src, size_t size)
{
	size_t	 len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return (len);
}

/*
 * UTF-8 (RFC 3629; Unicode 15, table 3-7 for the ill-formed cases).  The cut
 * helpers look only at the bytes around the cut: they never split a
 * sequence, but leave ill-formed bytes elsewhere as they are, so that
 * valid input stays valid and a prefix of it.
 */
size_t
as_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char	 c, lo = 0x80, hi = 0xbf;
	size_t		 need, i;

	if (n == 0)
		return (0);
	c = p[0];
	if (c < 0x80)
		return (1);
	if (c >= 0xc2 && c <= 0xdf)
		need = 1;
	else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (c == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;	/* overlong */
		else if (c == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else
		return (0);	/* continuation, 0xc0, 0xc1, 0xf5.. */
	if (n < need + 1)
		return (0);
	if (p[1] < lo || p[1] > hi)
		return (0);
	for (i = 2; i <= need; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return (0);
	return (need + 1);
}

size_t
as_utf8_invalid_at(const char *buf, size_t len)
{
	const unsigned char	*p = (const unsigned char *)buf;
	size_t			 i = 0, n;

	while (i < len) {
		if ((n = as_utf8_seq(p + i, len - i)) == 0)
			return (i);
		i += n;
	}
	return (len);
}

/* How many bytes the sequence a lead byte opens takes; 0: not a lead. */
static size_t
utf8_lead_len(unsigned char c)
{
	if (c >= 0xc2 && c <= 0xdf)
		return (2);
	if (c >= 0xe0 && c <= 0xef)
		return (3);
	if (c >= 0xf0 && c <= 0xf4)
		return (4);
	return (0);
}

/*
 * The bytes of s[0..n) to keep when nothing known follows: n, or the start
 * of a sequence its lead byte says runs past n (at most 3 bytes back).
 */
static size_t
utf8_keep(const unsigned char *s, size_t n)
{
	size_t	 k = n, len;

	while (k > 0 && n - k < 3) {
		k--;
		if ((s[k] & 0xc0) != 0x80) {
			len = utf8_lead_len(s[k]);
			return (len > 0 && k + len > n ? k : n);
		}
	}
	return (n);
}

size_t
as_utf8_cut(const char *s, size_t max)
{
	const char	*nul = memchr(s, '\0', max);

	if (nul != NULL)
		return ((size_t)(nul - s));
	/* s[max] exists: a continuation byte there means a split. */
	if (((unsigned char)s[max] & 0xc0) != 0x80)
		return (max);
	return (utf8_keep((const unsigned char *)s, max));
}

size_t
as_strlcpy_utf8(char *dst, const char *src, size_t size)
{
	size_t	 n;

	if (size > 0) {
		n = as_utf8_cut(src, size - 1);
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return (strlen(src));
}

size_t
as_utf8_trim(char *s)
{
	size_t	 n = strlen(s);

	n = utf8_keep((const unsigned char *)s, n);
	s[n] = '\0';
	return (n);
}

#ifdef AS_TESTING
double	 as_mono_skew;
int	 as_clock_frozen;
#endif

double
as_mono_now(void)
{
	struct timespec ts;

#ifdef AS_TESTING
	if (as_clock_frozen)
		return (1e6 + as_mono_skew);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + as_mono_skew);
#else
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
#endif
}

double
as_wall_now(void)
{
	struct timespec ts;

#ifdef AS_TESTING
	if (as_clock_frozen)
		return (1.8e9 + as_mono_skew);
#endif
	clock_gettime(CLOCK_REALTIME, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

static uint64_t as_rng_state;

double
as_random(void)
{
	uint64_t x;

	if (as_rng_state == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		as_rng_state = ((uint64_t)ts.tv_nsec << 20) ^
		    (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ULL;
	}
	x = as_rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	as_rng_state = x;
	return ((double)(x >> 11) / 9007199254740992.0);
}

#ifdef AS_TESTING
void
as_random_seed(uint64_t seed)
{
	as_rng_state = seed != 0 ? seed : 0x9e3779b97f4a7c15ULL;
}
#endif

double
as_backoff(double base, double cap, unsigned attempt)
{
	double	 hi = base;
	unsigned i;

	for (i = 0; i < attempt && hi < cap; i++)
		hi *= 2;
	if (hi > cap)
		hi = cap;
	if (hi < base / 2)
		return (base / 2);
	return (base / 2 + as_random() * (hi - base / 2));
}

uint64_t
as_hash_str(const char *s)
{
	uint64_t	 h = 14695981039346656037ULL;	/* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (h);
}

void
as_bucket_init(struct as_bucket *b, double rate, double burst, double now)
{
	b->rate = rate;
	b->burst = burst;
	b->tokens = burst;
	b->at = now;
}

static void
as_bucket_refill(struct as_bucket *b, double now)
{
	if (now > b->at)
		b->tokens += (now - b->at) * b->rate;
	if (b->tokens > b->burst)
		b->tokens = b->burst;
	b->at = now;
}

int
as_bucket_take(struct as_bucket *b, double now)
{
	as_bucket_refill(b, now);
	if (b->tokens < 1.0 - 1e-9)
		return (0);
	b->tokens -= 1.0;
	return (1);
}

double
as_bucket_wait(struct as_bucket *b, double now)
{
	as_bucket_refill(b, now);
	if (b->tokens >= 1.0 - 1e-9 || b->rate <= 0)
		return (0);
	return ((1.0 - b->tokens) / b->rate);
}

char *
as_read_file(const char *path, size_t maxlen, size_t *lenp, char *err,
    size_t errlen)
{
	char	*buf = NULL, *out = NULL;
	size_t	 len = 0;
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return (NULL);
	}
	buf = xmalloc(maxlen + 1);
	for (;;) {
		n = read(fd, buf + len, maxlen + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > maxlen) {
			snprintf(err, errlen, "%s: larger than %zu bytes", path,
			    maxlen);
			goto out;
		}
	}
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	out = buf;
	buf = NULL;
out:
	close(fd);
	free(buf);
	return (out);
}

char *
as_read_secret(const char *path, char *err, size_t errlen)
{
	char	*s;
	size_t	 len;

	if ((s = as_read_file(path, 64 * 1024, &len, err, errlen)) == NULL)
		return (NULL);
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		s[--len] = '\0';
	return (s);
}

void
as_secret_free(char *s, size_t len)
{
	if (s != NULL) {
		explicit_bzero(s, len > 0 ? len : strlen(s));
		free(s);
	}
}

static as_secret_lookup_fn	*secret_provider;
static void			*secret_provider_arg;

void
as_secret_provider(as_secret_lookup_fn *fn, void *arg)
{
	secret_provider = fn;
	secret_provider_arg = arg;
}

int
as_secret_lookup(const char *ref, double since, char **out, char *err,
    size_t errlen)
{
	*out = NULL;
	if (secret_provider == NULL) {
		snprintf(err, errlen, "Secret %s: no Kubernetes API to read it "
		    "from (Secrets are read through the API in CRD mode only)",
		    ref);
		return (-AS_EAUTH);
	}
	return (secret_provider(secret_provider_arg, ref, since, out, err,
	    errlen));
}

void
as_buf_printf(struct as_buf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	for (;;) {
		if (b->cap - b->len < 2 || b->p == NULL) {
			b->cap = b->cap == 0 ? 1024 : b->cap * 2;
			b->p = xrealloc(b->p, b->cap);
		}
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			abort();
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		while (b->cap - b->len <= (size_t)n)
			b->cap *= 2;
		b->p = xrealloc(b->p, b->cap);
	}
}

void
as_buf_label(struct as_buf *b, const char *s)
{
	size_t	 n, left = strlen(s);

	for (; *s != '\0'; s += n, left -= n) {
		n = 1;
		if (*s == '\\')
			as_buf_printf(b, "\\\\");
		else if (*s == '"')
			as_buf_printf(b, "\\\"");
		else if (*s == '\n')
			as_buf_printf(b, "\\n");
		else if ((n = as_utf8_seq((const unsigned char *)s, left)) == 0) {
			as_buf_printf(b, "\xef\xbf\xbd");
			n = 1;
		} else
			as_buf_printf(b, "%.*s", (int)n, s);
	}
}

void
as_redact(char *dst, size_t dstlen, const char *text, const char *secret)
{
	const char	*hit;
	size_t		 len = 0, n, slen;

	if (dstlen == 0)
		return;
	dst[0] = '\0';
	slen = secret != NULL ? strlen(secret) : 0;
	while (*text != '\0' && len + 1 < dstlen) {
		hit = slen > 0 ? strstr(text, secret) : NULL;
		n = hit != NULL ? (size_t)(hit - text) : strlen(text);
		if (n > dstlen - 1 - len)
			n = dstlen - 1 - len;
		memcpy(dst + len, text, n);
		len += n;
		dst[len] = '\0';
		if (hit == NULL)
			break;
		len += as_strlcpy(dst + len, "<redacted>", dstlen - len);
		if (len >= dstlen)
			break;
		text = hit + slen;
	}
}

/*
 * RFC 3339 in UTC, as Go's time.RFC3339 and RFC3339Nano write it (the
 * nanosecond form keeps trailing zeros, which Go's RFC3339Nano trims; the
 * fixed width sorts as text), or with six digits as metav1.MicroTime.  A
 * value that gmtime_r cannot represent prints as the epoch rather than as
 * garbage.
 */
static void
as_rfc3339_digits(double wall, int digits, char *out, size_t outlen)
{
	struct tm	 tm;
	time_t		 sec;
	double		 whole, unit = pow(10, digits > 0 ? digits : 9);
	long		 frac;

	if (outlen == 0)
		return;
	if (!(wall > -1e15 && wall < 1e15))	/* NaN and absurd values */
		wall = 0;
	/*
	 * Rounded to the last digit shown (whole seconds: to the nanosecond,
	 * then cut), carried into the seconds.
	 */
	whole = floor(wall);
	frac = lround((wall - whole) * unit);
	if (frac >= (long)unit) {
		whole += 1;
		frac -= (long)unit;
	}
	sec = (time_t)whole;
	if (gmtime_r(&sec, &tm) == NULL) {
		sec = 0;
		frac = 0;
		gmtime_r(&sec, &tm);
	}
	if (digits > 0)
		snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%0*ldZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, digits, frac);
	else
		snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
}

void
as_rfc3339(double wall, int nanos, char *out, size_t outlen)
{
	as_rfc3339_digits(wall, nanos ? 9 : 0, out, outlen);
}

void
as_rfc3339_micro(double wall, char *out, size_t outlen)
{
	as_rfc3339_digits(wall, 6, out, outlen);
}

/* Reads exactly n decimal digits at *sp and advances; -1 if not digits. */
static long
rfc3339_digits(const char **sp, int n)
{
	const char	*s = *sp;
	long		 v = 0;
	int		 i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (-1);
		v = v * 10 + (s[i] - '0');
	}
	*sp = s + n;
	return (v);
}

/*
 * Days from 1970-01-01 to a proleptic Gregorian date, computed here so the
 * result never depends on TZ or on timegm() (the era arithmetic is Howard
 * Hinnant's days_from_civil, described in his "chrono-Compatible Low-Level
 * Date Algorithms").
 */
static long
rfc3339_days(long y, long m, long d)
{
	long	 era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + doe - 719468);
}

/*
 * Strict RFC 3339 section 5.6 date-time: four-digit year, two-digit
 * fields, 'T' or 't', an optional fraction of 1 to 9 digits, then 'Z',
 * 'z' or +hh:mm/-hh:mm, and nothing after.  A leap second (:60) is
 * refused, as Go's time.Parse refuses it.
 */
int
as_parse_rfc3339(const char *s, double *out)
{
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31 };
	long	 y, mo, d, h, mi, sec, oh, om, off = 0, frac = 0;
	int	 nfrac = 0, leap;

	if (s == NULL)
		return (-AS_EINVAL);
	if ((y = rfc3339_digits(&s, 4)) < 0 || *s++ != '-' ||
	    (mo = rfc3339_digits(&s, 2)) < 0 || *s++ != '-' ||
	    (d = rfc3339_digits(&s, 2)) < 0 || (*s != 'T' && *s != 't'))
		return (-AS_EINVAL);
	s++;
	if ((h = rfc3339_digits(&s, 2)) < 0 || *s++ != ':' ||
	    (mi = rfc3339_digits(&s, 2)) < 0 || *s++ != ':' ||
	    (sec = rfc3339_digits(&s, 2)) < 0)
		return (-AS_EINVAL);
	if (*s == '.') {
		s++;
		while (*s >= '0' && *s <= '9') {
			if (++nfrac > 9)
				return (-AS_EINVAL);
			frac = frac * 10 + (*s++ - '0');
		}
		if (nfrac == 0)
			return (-AS_EINVAL);
		for (; nfrac < 9; nfrac++)
			frac *= 10;
	}
	if (*s == 'Z' || *s == 'z')
		s++;
	else if (*s == '+' || *s == '-') {
		int sign = *s++ == '-' ? -1 : 1;

		if ((oh = rfc3339_digits(&s, 2)) < 0 || *s++ != ':' ||
		    (om = rfc3339_digits(&s, 2)) < 0 || oh > 23 || om > 59)
			return (-AS_EINVAL);
		off = sign * (oh * 3600 + om * 60);
	} else
		return (-AS_EINVAL);
	if (*s != '\0')
		return (-AS_EINVAL);
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || sec > 59)
		return (-AS_EINVAL);
	*out = (double)(rfc3339_days(y, mo, d) * 86400 + h * 3600 + mi * 60 +
	    sec - off) + (double)frac / 1e9;
	return (0);
}

int
as_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

/*
 * Digests go through libcrypto's EVP interface, which the project links
 * anyway (libcurl and rabbitmq-c use OpenSSL): no hand-rolled crypto.
 */
static void
as_crypto_fail(const char *what)
{
	fprintf(stderr, "agentscaler: libcrypto: %s failed\n", what);
	abort();
}

void
as_sha256_init(struct as_sha256 *s)
{
	EVP_MD_CTX	*ctx;

	as_sha256_discard(s);
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		as_crypto_fail("EVP_MD_CTX_new");
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		as_crypto_fail("EVP_DigestInit_ex");
	s->ctx = ctx;
}

void
as_sha256_update(struct as_sha256 *s, const void *p, size_t len)
{
	if (s->ctx == NULL || len == 0)
		return;
	if (EVP_DigestUpdate(s->ctx, p, len) != 1)
		as_crypto_fail("EVP_DigestUpdate");
}

void
as_sha256_final(struct as_sha256 *s, unsigned char out[AS_SHA256_LEN])
{
	unsigned int	 n = 0;

	if (s->ctx == NULL) {
		memset(out, 0, AS_SHA256_LEN);
		return;
	}
	if (EVP_DigestFinal_ex(s->ctx, out, &n) != 1 || n != AS_SHA256_LEN)
		as_crypto_fail("EVP_DigestFinal_ex");
	as_sha256_discard(s);
}

void
as_sha256_discard(struct as_sha256 *s)
{
	EVP_MD_CTX_free(s->ctx);
	s->ctx = NULL;
}

void
as_sha256(const void *p, size_t len, unsigned char out[AS_SHA256_LEN])
{
	struct as_sha256 s = { NULL };

	as_sha256_init(&s);
	as_sha256_update(&s, p, len);
	as_sha256_final(&s, out);
}

/*
 * RFC 2104 over SHA-256 (block 64 bytes): H((K ^ opad) || H((K ^ ipad) ||
 * m)), with a key longer than a block hashed first.
 */
void
as_hmac_sha256(const void *key, size_t keylen, const void *p, size_t len,
    unsigned char out[AS_SHA256_LEN])
{
	struct as_sha256 s = { NULL };
	unsigned char	 k[64], pad[64], inner[AS_SHA256_LEN];
	size_t		 i;

	memset(k, 0, sizeof k);
	if (keylen > sizeof k)
		as_sha256(key, keylen, k);
	else if (keylen > 0)
		memcpy(k, key, keylen);
	for (i = 0; i < sizeof pad; i++)
		pad[i] = k[i] ^ 0x36;
	as_sha256_init(&s);
	as_sha256_update(&s, pad, sizeof pad);
	as_sha256_update(&s, p, len);
	as_sha256_final(&s, inner);
	for (i = 0; i < sizeof pad; i++)
		pad[i] = k[i] ^ 0x5c;
	as_sha256_init(&s);
	as_sha256_update(&s, pad, sizeof pad);
	as_sha256_update(&s, inner, sizeof inner);
	as_sha256_final(&s, out);
	explicit_bzero(k, sizeof k);
	explicit_bzero(pad, sizeof pad);
}

void
as_sha1_hex(const void *p, size_t len, char out[41])
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 n = 0;

	if (EVP_Digest(p, len, md, &n, EVP_sha1(), NULL) != 1 || n != 20)
		as_crypto_fail("EVP_Digest(SHA-1)");
	as_hex(md, n, out);
}

void
as_hex(const unsigned char *p, size_t len, char *out)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * len] = '\0';
}

static const char as_b64_tbl[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
as_base64_encode(const char *buf, size_t len)
{
	const unsigned char	*p = (const unsigned char *)buf;
	char			*out;
	size_t			 i, o = 0;
	uint32_t		 v;

	out = xmalloc((len + 2) / 3 * 4 + 1);
	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = as_b64_tbl[v >> 18];
		out[o++] = as_b64_tbl[(v >> 12) & 63];
		out[o++] = as_b64_tbl[(v >> 6) & 63];
		out[o++] = as_b64_tbl[v & 63];
	}
	if (i < len) {
		v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		out[o++] = as_b64_tbl[v >> 18];
		out[o++] = as_b64_tbl[(v >> 12) & 63];
		out[o++] = i + 1 < len ? as_b64_tbl[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return (out);
}

static int
as_b64_val(int c)
{
	const char	*p;

	if (c == '\0' || (p = strchr(as_b64_tbl, c)) == NULL)
		return (-1);
	return ((int)(p - as_b64_tbl));
}

/*
 * Strict like Go's base64.StdEncoding (which decodes Kubernetes' []byte
 * fields): padding required, nothing after it, unused bits zero; only line
 * breaks and blanks between characters are skipped.
 */
char *
as_base64_decode(const char *s, size_t len, size_t *outlen)
{
	char		*out;
	size_t		 i, o = 0, n = 0, pad = 0;
	uint32_t	 v = 0;
	int		 d;

	out = xmalloc(len / 4 * 3 + 3);
	for (i = 0; i < len; i++) {
		if (s[i] == '\n' || s[i] == '\r' || s[i] == ' ' ||
		    s[i] == '\t')
			continue;
		if (s[i] == '=') {
			/* "xx==" or "xxx=", and nothing but '=' after. */
			if (n % 4 < 2)
				goto bad;
			pad++;
			d = 0;
		} else if (pad > 0 ||
		    (d = as_b64_val((unsigned char)s[i])) < 0)
			goto bad;
		v = v << 6 | (uint32_t)d;
		if (++n % 4 == 0) {
			out[o++] = (char)(v >> 16);
			out[o++] = (char)(v >> 8);
			out[o++] = (char)v;
			v = 0;
		}
	}
	if (pad > 0) {
		if (n % 4 != 0 || pad > 2)
			goto bad;
		/* The bits the padding hides must be zero. */
		if ((pad == 2 && (out[o - 2] != 0 || out[o - 1] != 0)) ||
		    (pad == 1 && out[o - 1] != 0))
			goto bad;
		o -= pad;
	}
	if (n % 4 != 0)
		goto bad;
	out[o] = '\0';
	if (outlen != NULL)
		*outlen = o;
	return (out);
bad:
	free(out);
	return (NULL);
}
