/*
 * util.c: allocation wrappers, error names, clocks, jitter and small file
 * readers shared by every module.  Nothing here touches the event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "agentscaler/common.h"

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

void *
xmalloc(size_t n)
{
	void	*p;

	if (n == 0)
		n = 1;
	if ((p = malloc(n)) == NULL)
		xoom(n);
	return (p);
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
xasprintf(const char *fmt, ...)
{
	va_list	 ap;
	char	*p;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	p = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
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

double
as_mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

double
as_wall_now(void)
{
	struct timespec ts;

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
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			as_buf_printf(b, "\\\\");
		else if (*s == '"')
			as_buf_printf(b, "\\\"");
		else if (*s == '\n')
			as_buf_printf(b, "\\n");
		else
			as_buf_printf(b, "%c", *s);
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
