/*
 * testutil.h: real servers for the C suites.  Each start function launches
 * the real program on a free 127.0.0.1 port, waits until it answers, and
 * records its PID; the matching stop function ends it by that PID.
 *
 * Ownership: the structs are the caller's; stop frees nothing but the
 * process.  Helpers that cannot go on assert with Check.
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

/*
 * Writes text to path through path.tmp and rename(2), so that a reader
 * sees the old text or the new, never a part (as the kubelet replaces a
 * mounted token).  Asserts.
 */
void	 tu_write_file(const char *path, const char *text);
/* How many times needle occurs in hay, not overlapping. */
int	 tu_count(const char *hay, const char *needle);

/* Returns a free loopback TCP port (bind to port 0, read it, close). */
int	 tu_free_port(void);
/*
 * A loopback TCP listener on a free port that nobody accepts on, with the
 * given backlog; returns its fd (the caller closes it), the port in *portp.
 */
int	 tu_listen(int backlog, int *portp);
/* A blocking loopback connection to port; returns its fd. */
int	 tu_connect(int port);
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

/*
 * A reply from a fresh blocking connection as a new string the caller
 * frees: a string or status reply, or the second element of a two-element
 * array (CONFIG GET, PUBSUB NUMSUB), a number printed; NULL otherwise.
 */
char	*tu_redis_str(const struct tu_redis *, const char *fmt, ...);
/*
 * The number that follows key (e.g. "\nconnected_clients:") in the text
 * of INFO section, or -1.
 */
long long tu_redis_info(const struct tu_redis *, const char *section,
	    const char *key);
/* INFO clients connected_clients, or -1. */
long long tu_redis_clients(const struct tu_redis *);

/* tu_pred_clients() waits for connected_clients to equal want. */
struct tu_clients_arg {
	const struct tu_redis	*r;
	long long		 want;
};
/* A predicate for tu_run_until(): arg is a struct tu_clients_arg. */
int	 tu_pred_clients(void *arg);

/*
 * Servers a suite keeps track of, so that a failed test cannot leave one
 * running.  tu_redis_up() starts one as tu_redis_start() does, asserts
 * that it started, and records the struct (borrowed: it must outlive
 * tu_redis_down()); tu_redis_down() forgets it and stops it;
 * tu_redis_down_all(), for atexit(), stops every server still recorded
 * (continuing a stopped one first).  At most eight at a time.
 */
void	 tu_redis_up(struct tu_redis *, const char *const *extra);
void	 tu_redis_down(struct tu_redis *);
void	 tu_redis_down_all(void);
/*
 * Runs a suite of redis tests with the default runner: SIGPIPE ignored
 * (hiredis 0.14.1 writes with write(2), and a reset peer raises it) and
 * tu_redis_down_all() at exit.  Returns the process exit code.
 */
int	 tu_redis_run_suite(Suite *);

/*
 * Log capture: tu_capture_start() sends stderr to a new file,
 * /tmp/<program name>.<pid>.log (path); tu_capture_end() restores stderr,
 * removes the file, copies its text to the real stderr and returns it as
 * a new string the caller frees.  Both assert on failure.
 */
struct tu_capture {
	int	 saved;		/* the real stderr */
	char	 path[64];
};
void	 tu_capture_start(struct tu_capture *);
char	*tu_capture_end(struct tu_capture *);

/*
 * args: extra kube-sim arguments, NULL-terminated, or NULL.  Returns 0,
 * or -1 with pid 0.  Stopping one that is not running does nothing.
 */
int	 tu_kubesim_start(struct tu_kubesim *, const char *const *args);
void	 tu_kubesim_stop(struct tu_kubesim *);
/*
 * A request to kube-sim's admin API (path such as "/faults"), JSON body or
 * NULL; returns the HTTP code or -1, the body as tu_http() does.
 */
long	 tu_kubesim_admin(const struct tu_kubesim *, const char *method,
	    const char *path, const char *body, char **bodyp);
/* A healthy server for the next test: resumed, no faults, no latency. */
void	 tu_kubesim_reset(const struct tu_kubesim *);
/*
 * The next count requests with method whose path and query contain path
 * fail with code, with Retry-After when retry_after >= 0.  Asserts.
 */
void	 tu_kubesim_fault(const struct tu_kubesim *, const char *method,
	    const char *path, int code, int count, int retry_after);

/*
 * Bearer tokens for kube-sim (--tokens csv), in a new directory under /tmp
 * named after prefix: csv makes tok-a the admin user "agentscaler"
 * (system:masters), file (for the client's token_file) holds tok-a.
 * tu_kubesim_tokens_remove() removes all three; it does nothing when dir
 * is "" (never made, or removed already).  Both assert.
 */
struct tu_kubesim_tokens {
	char	 dir[64];
	char	 csv[128];
	char	 file[128];
};
void	 tu_kubesim_tokens_make(struct tu_kubesim_tokens *,
	    const char *prefix);
void	 tu_kubesim_tokens_remove(struct tu_kubesim_tokens *);
/*
 * A blocking HTTP request with libcurl easy (tests only); returns the HTTP
 * code or -1, the body in a new string in *bodyp when bodyp is not NULL.
 */
long	 tu_http(const char *method, const char *url, const char *ctype,
	    const char *body, char **bodyp);

/* Runs a suite with the default runner; returns the process exit code. */
int	 tu_run_suite(Suite *);
/*
 * A new test case added to s, with a timeout in seconds (0: Check's
 * default) and its fixtures, each pair or function NULL for none:
 * once_setup and once_teardown run around the whole case (unchecked),
 * setup and teardown around each test (checked).
 */
TCase	*tu_tcase(Suite *s, const char *name, int timeout, SFun once_setup,
	    SFun once_teardown, SFun setup, SFun teardown);

/*
 * A private rabbitmq-server with the management plugin, everything on
 * 127.0.0.1: AMQP, management HTTP, both again over TLS (a self-signed
 * certificate for localhost, CA in ca), Erlang distribution and an epmd of
 * its own, started first so that the node does not start a shared one.
 * Its own HOME (cookie), node name, data and log directories under dir.
 * Management statistics are collected every 500 ms.  Starting takes
 * seconds: one broker per suite.
 */
struct tu_rabbit {
	pid_t	 pid;		/* the rabbitmq-server script */
	pid_t	 epmd_pid;
	pid_t	 owner;		/* the process that started it */
	int	 amqp_port;
	int	 amqps_port;	/* 0 when TLS could not be set up */
	int	 mgmt_port;
	int	 mgmts_port;	/* management over TLS, 0 without */
	int	 dist_port;
	int	 epmd_port;
	char	 dir[128];
	char	 node[64];
	char	 amqp_url[96];	/* amqp://127.0.0.1:port/ */
	char	 amqps_url[96];	/* amqps://localhost:port/ or "" */
	char	 http_url[96];	/* http://127.0.0.1:port/ */
	char	 https_url[96];	/* https://localhost:port/ or "" */
	char	 ca[192];	/* the TLS listeners' certificate, or "" */
};

/* Returns 0 once `rabbitmqctl await_startup` succeeds, or -1. */
int	 tu_rabbit_start(struct tu_rabbit *);
/*
 * One broker for a whole suite.  tu_rabbit_run_suite() ignores SIGPIPE
 * (rabbitmq-c and libcurl write to sockets), starts rb (saying so on
 * stderr when it cannot), runs the suite with the default runner and stops
 * rb, at exit too, continued first in case a test left it stopped
 * (SIGSTOP); it returns the process exit code.  rb must live until the
 * process exits (a static).
 * tu_rabbit_need() asserts, in a test, that the broker started;
 * tu_rabbit_continue(), a checked fixture, continues it before each test.
 */
int	 tu_rabbit_run_suite(struct tu_rabbit *rb, Suite *);
void	 tu_rabbit_need(void);
void	 tu_rabbit_continue(void);
/*
 * Stops the node, then its epmd, by PID; removes dir.  Only the process
 * that started it does anything (Check forks its tests).  Idempotent.
 */
void	 tu_rabbit_stop(struct tu_rabbit *);
/*
 * A broker restart as clients see it, from any process: stop_app closes
 * every connection and listener, start_app opens them again (and returns
 * once the broker is ready).  Both return 0 or -1.
 */
int	 tu_rabbit_stop_app(const struct tu_rabbit *);
int	 tu_rabbit_start_app(const struct tu_rabbit *);
/*
 * Runs rabbitmqctl -n node with the arguments (NULL-terminated); returns
 * its exit status, stdout in a new string in *outp when outp is not NULL.
 */
int	 tu_rabbit_ctl(const struct tu_rabbit *, char **outp, ...);
/*
 * A blocking management API request as guest; path starts with /api.
 * Returns the HTTP code or -1, the body in *bodyp as tu_http().
 */
long	 tu_rabbit_api(const struct tu_rabbit *, const char *method,
	    const char *path, const char *body, char **bodyp);

#endif
