/*
 * log.c: one line per event on stderr, JSON by default so that log
 * pipelines can index fields, or text for people (--log-format text).
 * Lines are written with one write(2) each so they never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/log.h"

static enum log_level log_level = LOG_INFO;
static enum log_format log_format = LOG_FORMAT_JSON;

static const char *const log_level_names[] = { "debug", "info", "warn",
    "error" };

void
log_set_level(enum log_level level)
{
	log_level = level;
}

void
log_set_format(enum log_format format)
{
	log_format = format;
}

int
log_parse_level(const char *s, enum log_level *out)
{
	size_t	 i;

	for (i = 0; i < AS_ARRAY_SIZE(log_level_names); i++) {
		if (strcmp(s, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return (0);
		}
	}
	return (-AS_EINVAL);
}

int
log_parse_format(const char *s, enum log_format *out)
{
	if (strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else if (strcmp(s, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else
		return (-AS_EINVAL);
	return (0);
}

/*
 * Appends s to buf as the inside of a JSON string; returns the new length.
 * A well-formed UTF-8 sequence goes in whole or not at all (the room
 * checked for an escape fits the longest), so a cut splits none.
 */
static size_t
log_escape(char *buf, size_t len, size_t size, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c;
	size_t	 n;

	for (; *s != '\0' && len + 7 < size; s += n) {
		c = (unsigned char)*s;
		/* The NUL stops as_utf8_seq before the 4 bytes it may read. */
		n = c >= 0x80 ? as_utf8_seq((const unsigned char *)s, 4) : 1;
		if (n > 1) {
			memcpy(buf + len, s, n);
			len += n;
			continue;
		}
		n = 1;
		if (c == '"' || c == '\\') {
			buf[len++] = '\\';
			buf[len++] = (char)c;
		} else if (c == '\n') {
			buf[len++] = '\\';
			buf[len++] = 'n';
		} else if (c >= 0x80) {
			/* Not UTF-8 (tenant or broker text): U+FFFD. */
			memcpy(buf + len, "\xef\xbf\xbd", 3);
			len += 3;
		} else if (c < 0x20) {
			buf[len++] = '\\';
			buf[len++] = 'u';
			buf[len++] = '0';
			buf[len++] = '0';
			buf[len++] = hex[c >> 4];
			buf[len++] = hex[c & 0xf];
		} else
			buf[len++] = (char)c;
	}
	return (len);
}

/* Appends ,"key":"value" (value escaped) when value is not NULL. */
static size_t
log_put(char *buf, size_t len, size_t size, const char *key,
    const char *value)
{
	if (value == NULL || len + strlen(key) + 8 >= size)
		return (len);
	len += (size_t)snprintf(buf + len, size - len, ",\"%s\":\"", key);
	len = log_escape(buf, len, size - 2, value);
	buf[len++] = '"';
	return (len);
}

static void
log_vemit(enum log_level level, const char *component,
    const struct log_fields *f, const char *fmt, va_list ap)
{
	char		 msg[2048], line[4608], ts[40];
	struct timespec	 now;
	struct tm	 tm;
	size_t		 len;
	int		 n;

	vsnprintf(msg, sizeof msg, fmt, ap);
	as_utf8_trim(msg);

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = (int)strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof ts - (size_t)n, ".%03ldZ",
	    now.tv_nsec / 1000000);

	if (log_format == LOG_FORMAT_TEXT) {
		n = snprintf(line, sizeof line - 1, "%s %-5s %s: %s", ts,
		    log_level_names[level], component, msg);
		len = n < 0 ? 0 : (size_t)n;
		if (len > sizeof line - 2)
			len = sizeof line - 2;
	} else {
		len = (size_t)snprintf(line, sizeof line,
		    "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"", ts,
		    log_level_names[level]);
		len = log_escape(line, len, sizeof line - 8, component);
		line[len++] = '"';
		if (f != NULL) {
			len = log_put(line, len, 2048, "pool", f->pool);
			len = log_put(line, len, 2048, "namespace", f->ns);
			len = log_put(line, len, 2048, "task", f->task);
			len = log_put(line, len, 2048, "claim", f->claim);
			len = log_put(line, len, 2048, "reason", f->reason);
			if (f->has_duration)
				len += (size_t)snprintf(line + len,
				    sizeof line - len, ",\"duration_ms\":%.3f",
				    f->duration_ms);
		}
		memcpy(line + len, ",\"msg\":\"", 8);
		len += 8;
		len = log_escape(line, len, sizeof line - 4, msg);
		line[len++] = '"';
		line[len++] = '}';
	}
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
}

void
log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
	va_list	 ap;

	if (level < log_level)
		return;
	va_start(ap, fmt);
	log_vemit(level, component, NULL, fmt, ap);
	va_end(ap);
}

void
log_kv(enum log_level level, const char *component,
    const struct log_fields *f, const char *fmt, ...)
{
	va_list	 ap;

	if (level < log_level)
		return;
	va_start(ap, fmt);
	log_vemit(level, component, f, fmt, ap);
	va_end(ap);
}
