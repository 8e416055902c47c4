/*
 * testutil.h: real servers for the C suites.  Each start function launches
 * the real program on a free 127.0.0.1 port, waits until it answers, and
 * records its PID; the matching stop function ends it by that PID.
 *
 * Ownership: the structs are the caller's; stop frees nothing but the
 * process.
 */
#ifndef AGENTSCALER_TESTUTIL_H
#define AGENTSCALER_TESTUTIL_H

#include <sys/types.h>

#include <check.h>

struct tu_redis {
	pid_t	 pid;
	int	 port;
	char	 url[64];	/* redis://127.0.0.1:port/0 */
};

struct tu_kubesim {
	pid_t	 pid;
	char	 url[128];
	char	 admin[128];
	char	 ca[512];	/* "" without --tls */
};

/* Returns a free loopback TCP port (bind to port 0, read it, close). */
int	 tu_free_port(void);
/* extra: more redis-server arguments or NULL.  Returns 0 or -1. */
int	 tu_redis_start(struct tu_redis *, const char *const *extra);
/* Restarts on the same port (a broker restart as clients see it). */
int	 tu_redis_restart(struct tu_redis *, const char *const *extra);
void	 tu_redis_stop(struct tu_redis *);
/*
 * Runs one redis command through a blocking hiredis connection and returns
 * the integer reply (or 0 for status replies); -1 on error.
 */
long long tu_redis_cmd(const struct tu_redis *, const char *fmt, ...);

/* args: extra kube-sim arguments, NULL-terminated, or NULL. */
int	 tu_kubesim_start(struct tu_kubesim *, const char *const *args);
void	 tu_kubesim_stop(struct tu_kubesim *);
/*
 * A blocking HTTP request with libcurl easy (tests only); returns the HTTP
 * code or -1, the body in a new string in *bodyp when bodyp is not NULL.
 */
long	 tu_http(const char *method, const char *url, const char *ctype,
	    const char *body, char **bodyp);

/* Runs a suite with the default runner; returns the process exit code. */
int	 tu_run_suite(Suite *);

#endif
