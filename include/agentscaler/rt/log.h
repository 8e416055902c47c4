/*
 * log.h: structured logs on stderr, JSON lines by default, one event per
 * line: {"ts":"...","level":"info","component":"redis","msg":"..."}.
 *
 * Nothing here allocates on behalf of the caller.  Secrets (passwords,
 * tokens) must never be passed in; callers log the file they came from.
 */
#ifndef AGENTSCALER_LOG_H
#define AGENTSCALER_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_JSON, LOG_FORMAT_TEXT };

void	 log_set_level(enum log_level);
void	 log_set_format(enum log_format);
/* Returns 0, or -AS_EINVAL for a name other than debug|info|warn|error. */
int	 log_parse_level(const char *, enum log_level *);
/* Returns 0, or -AS_EINVAL for a name other than json|text. */
int	 log_parse_format(const char *, enum log_format *);

void	 log_msg(enum log_level, const char *component, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/*
 * The facts a line is about, as keys of their own in the JSON format
 * ("pool", "namespace", "task", "claim", "reason", "duration_ms") beside
 * "msg", which stays the sentence people read (the text format prints
 * only it, as log_msg() does).  NULL strings, and duration_ms unless
 * has_duration, are left out.  Borrowed for the call.
 */
struct log_fields {
	const char	*pool;
	const char	*ns;
	const char	*task;
	const char	*claim;
	const char	*reason;
	double		 duration_ms;
	int		 has_duration;
};

void	 log_kv(enum log_level, const char *component,
	    const struct log_fields *, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

#define log_debug(c, ...) log_msg(LOG_DEBUG, (c), __VA_ARGS__)
#define log_info(c, ...) log_msg(LOG_INFO, (c), __VA_ARGS__)
#define log_warn(c, ...) log_msg(LOG_WARN, (c), __VA_ARGS__)
#define log_error(c, ...) log_msg(LOG_ERROR, (c), __VA_ARGS__)

#endif
