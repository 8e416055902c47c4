/*
 * testutil.c: starts and stops real redis-server, kube-sim and
 * rabbitmq-server processes for the C suites, by PID, on free loopback
 * ports; reads what a redis-server reports; drives kube-sim's admin API;
 * captures the log; builds and runs suites around those servers.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>

#include "agentscaler/rt/common.h"
#include "testutil.h"

int
tu_free_port(void)
{
	struct sockaddr_in sin;
	socklen_t	 len = sizeof sin;
	int		 fd, port = -1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return (-1);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return (port);
}

int
tu_listen(int backlog, int *portp)
{
	struct sockaddr_in sin;
	socklen_t	 len = sizeof sin;
	int		 fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
	ck_assert(listen(fd, backlog) == 0);
	ck_assert(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	*portp = ntohs(sin.sin_port);
	return (fd);
}

int
tu_connect(int port)
{
	struct sockaddr_in sin;
	int		 fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
	return (fd);
}

void
tu_write_file(const char *path, const char *text)
{
	char	 tmp[256];
	FILE	*fp;

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	ck_assert_msg((fp = fopen(tmp, "w")) != NULL, "open %s", tmp);
	fputs(text, fp);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_msg(rename(tmp, path) == 0, "rename %s", tmp);
}

int
tu_count(const char *hay, const char *needle)
{
	int	 n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return (n);
}

static void
tu_kill(pid_t pid)
{
	int	 status, i;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}

static int
tu_redis_spawn(struct tu_redis *r, const char *const *extra)
{
	const char	*argv[64];
	char		 port[16];
	size_t		 n = 0;
	int		 i;

	snprintf(port, sizeof port, "%d", r->port);
	argv[n++] = "redis-server";
	argv[n++] = "--port";
	argv[n++] = port;
	argv[n++] = "--bind";
	argv[n++] = "127.0.0.1";
	argv[n++] = "--save";
	argv[n++] = "";
	argv[n++] = "--appendonly";
	argv[n++] = "no";
	argv[n++] = "--loglevel";
	argv[n++] = "warning";
	for (i = 0; extra != NULL && extra[i] != NULL && n < 62; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	if ((r->pid = fork()) == -1)
		return (-1);
	if (r->pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0)
			dup2(fd, 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 500; i++) {
		redisContext *c = redisConnect("127.0.0.1", r->port);
		if (c != NULL && c->err == 0) {
			redisReply *rep = redisCommand(c, "PING");
			int ok = rep != NULL && rep->type == REDIS_REPLY_STATUS;
			if (rep != NULL)
				freeReplyObject(rep);
			redisFree(c);
			if (ok)
				return (0);
		} else if (c != NULL)
			redisFree(c);
		usleep(10000);
	}
	tu_kill(r->pid);
	r->pid = 0;
	return (-1);
}

int
tu_redis_start(struct tu_redis *r, const char *const *extra)
{
	memset(r, 0, sizeof *r);
	if ((r->port = tu_free_port()) < 0)
		return (-1);
	snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
	return (tu_redis_spawn(r, extra));
}

int
tu_redis_restart(struct tu_redis *r, const char *const *extra)
{
	tu_kill(r->pid);
	r->pid = 0;
	return (tu_redis_spawn(r, extra));
}

void
tu_redis_stop(struct tu_redis *r)
{
	tu_kill(r->pid);
	r->pid = 0;
}

long long
tu_redis_cmd(const struct tu_redis *r, const char *fmt, ...)
{
	redisContext	*c;
	redisReply	*rep;
	va_list		 ap;
	long long	 v = -1;

	c = redisConnect("127.0.0.1", r->port);
	if (c == NULL || c->err != 0) {
		if (c != NULL)
			redisFree(c);
		return (-1);
	}
	va_start(ap, fmt);
	rep = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (rep != NULL) {
		if (rep->type == REDIS_REPLY_INTEGER)
			v = rep->integer;
		else if (rep->type != REDIS_REPLY_ERROR)
			v = 0;
		freeReplyObject(rep);
	}
	redisFree(c);
	return (v);
}

char *
tu_redis_str(const struct tu_redis *r, const char *fmt, ...)
{
	redisContext	*c;
	redisReply	*rep;
	va_list		 ap;
	char		*out = NULL;

	c = redisConnect("127.0.0.1", r->port);
	if (c == NULL || c->err != 0)
		goto out;
	va_start(ap, fmt);
	rep = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (rep == NULL)
		goto out;
	if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS)
		out = xstrdup(rep->str);
	else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[1]->type == REDIS_REPLY_STRING)
		out = xstrdup(rep->element[1]->str);
	else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[1]->type == REDIS_REPLY_INTEGER)
		out = xasprintf("%lld", rep->element[1]->integer);
	freeReplyObject(rep);
out:
	if (c != NULL)
		redisFree(c);
	return (out);
}

long long
tu_redis_info(const struct tu_redis *r, const char *section, const char *key)
{
	char		*info, *p;
	long long	 v = -1;

	if ((info = tu_redis_str(r, "INFO %s", section)) == NULL)
		return (-1);
	if ((p = strstr(info, key)) != NULL)
		v = strtoll(p + strlen(key), NULL, 10);
	free(info);
	return (v);
}

long long
tu_redis_clients(const struct tu_redis *r)
{
	return (tu_redis_info(r, "clients", "\nconnected_clients:"));
}

int
tu_pred_clients(void *arg)
{
	struct tu_clients_arg *c = arg;

	return (tu_redis_clients(c->r) == c->want);
}

/* Servers started through tu_redis_up() and not yet stopped. */
static struct tu_redis *tu_redis_kept[8];

void
tu_redis_down_all(void)
{
	size_t	 i;

	for (i = 0; i < AS_ARRAY_SIZE(tu_redis_kept); i++) {
		if (tu_redis_kept[i] != NULL) {
			if (tu_redis_kept[i]->pid > 0)
				kill(tu_redis_kept[i]->pid, SIGCONT);
			tu_redis_stop(tu_redis_kept[i]);
			tu_redis_kept[i] = NULL;
		}
	}
}

void
tu_redis_up(struct tu_redis *r, const char *const *extra)
{
	size_t	 i;

	ck_assert_int_eq(tu_redis_start(r, extra), 0);
	for (i = 0; i < AS_ARRAY_SIZE(tu_redis_kept); i++) {
		if (tu_redis_kept[i] == NULL) {
			tu_redis_kept[i] = r;
			break;
		}
	}
}

void
tu_redis_down(struct tu_redis *r)
{
	size_t	 i;

	for (i = 0; i < AS_ARRAY_SIZE(tu_redis_kept); i++) {
		if (tu_redis_kept[i] == r)
			tu_redis_kept[i] = NULL;
	}
	tu_redis_stop(r);
}

int
tu_redis_run_suite(Suite *s)
{
	signal(SIGPIPE, SIG_IGN);
	atexit(tu_redis_down_all);
	return (tu_run_suite(s));
}

void
tu_capture_start(struct tu_capture *c)
{
	int	 fd;

	snprintf(c->path, sizeof c->path, "/tmp/%s.%d.log",
	    program_invocation_short_name, (int)getpid());
	fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(fd >= 0);
	c->saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

char *
tu_capture_end(struct tu_capture *c)
{
	char	 err[128];
	char	*text;

	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	text = as_read_file(c->path, 1 << 20, NULL, err, sizeof err);
	unlink(c->path);
	ck_assert_msg(text != NULL, "%s", err);
	fputs(text, stderr);
	return (text);
}

int
tu_kubesim_start(struct tu_kubesim *k, const char *const *args)
{
	const char	*argv[64];
	char		 line[2048];
	cJSON		*j = NULL, *v;
	FILE		*fp = NULL;
	size_t		 n = 0;
	int		 pfd[2], i, rc = -1;

	memset(k, 0, sizeof *k);
	argv[n++] = "tools/kube-sim/kube-sim";
	argv[n++] = "--port";
	argv[n++] = "0";
	argv[n++] = "--admin-port";
	argv[n++] = "0";
	for (i = 0; args != NULL && args[i] != NULL && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (pipe(pfd) == -1)
		return (-1);
	if ((k->pid = fork()) == -1)
		return (-1);
	if (k->pid == 0) {
		close(pfd[0]);
		dup2(pfd[1], 1);
		close(pfd[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	fp = fdopen(pfd[0], "r");
	if (fp == NULL || fgets(line, sizeof line, fp) == NULL)
		goto out;
	if ((j = cJSON_Parse(line)) == NULL)
		goto out;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "url")) == NULL ||
	    !cJSON_IsString(v))
		goto out;
	as_strlcpy(k->url, v->valuestring, sizeof k->url);
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "admin")) != NULL &&
	    cJSON_IsString(v))
		as_strlcpy(k->admin, v->valuestring, sizeof k->admin);
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "ca")) != NULL &&
	    cJSON_IsString(v))
		as_strlcpy(k->ca, v->valuestring, sizeof k->ca);
	rc = 0;
out:
	cJSON_Delete(j);
	if (fp != NULL)
		fclose(fp);	/* kube-sim writes nothing more to stdout */
	else
		close(pfd[0]);
	if (rc != 0) {
		tu_kill(k->pid);
		k->pid = 0;
	}
	return (rc);
}

void
tu_kubesim_stop(struct tu_kubesim *k)
{
	tu_kill(k->pid);
	k->pid = 0;
}

long
tu_kubesim_admin(const struct tu_kubesim *k, const char *method,
    const char *path, const char *body, char **bodyp)
{
	char	 url[256];

	snprintf(url, sizeof url, "%s%s", k->admin, path);
	return (tu_http(method, url, "application/json", body, bodyp));
}

void
tu_kubesim_reset(const struct tu_kubesim *k)
{
	tu_kubesim_admin(k, "POST", "/resume", "{}", NULL);
	tu_kubesim_admin(k, "DELETE", "/faults", NULL, NULL);
	tu_kubesim_admin(k, "DELETE", "/latency", NULL, NULL);
}

void
tu_kubesim_fault(const struct tu_kubesim *k, const char *method,
    const char *path, int code, int count, int retry_after)
{
	char	 body[256], ra[32] = "";
	long	 rc;

	if (retry_after >= 0)
		snprintf(ra, sizeof ra, ",\"retryAfter\":%d", retry_after);
	snprintf(body, sizeof body, "{\"method\":\"%s\",\"path\":\"%s\","
	    "\"code\":%d,\"count\":%d%s}", method, path, code, count, ra);
	rc = tu_kubesim_admin(k, "POST", "/faults", body, NULL);
	ck_assert_msg(rc / 100 == 2, "POST /faults %s: %ld", body, rc);
}

void
tu_kubesim_tokens_make(struct tu_kubesim_tokens *t, const char *prefix)
{
	snprintf(t->dir, sizeof t->dir, "/tmp/%s.XXXXXX", prefix);
	ck_assert_msg(mkdtemp(t->dir) != NULL, "mkdtemp %s", t->dir);
	snprintf(t->csv, sizeof t->csv, "%s/tokens.csv", t->dir);
	snprintf(t->file, sizeof t->file, "%s/token", t->dir);
	tu_write_file(t->csv, "tok-a,agentscaler,uid-1,system:masters\n");
	tu_write_file(t->file, "tok-a\n");
}

void
tu_kubesim_tokens_remove(struct tu_kubesim_tokens *t)
{
	if (t->dir[0] == '\0')
		return;
	unlink(t->csv);
	unlink(t->file);
	rmdir(t->dir);
	t->dir[0] = '\0';
}

struct tu_buf {
	char	*p;
	size_t	 len;
};

static size_t
tu_http_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct tu_buf	*b = arg;
	size_t		 n = size * nmemb;

	b->p = xrealloc(b->p, b->len + n + 1);
	memcpy(b->p + b->len, ptr, n);
	b->len += n;
	b->p[b->len] = '\0';
	return (n);
}

/*
 * Sends the request c is set up for (URL, method, timeout, credentials),
 * with body as ctype (NULL: application/json) when body is not NULL, and
 * frees c.  Returns the HTTP code or -1, the body as tu_http() does.
 */
static long
tu_http_perform(CURL *c, const char *ctype, const char *body, char **bodyp)
{
	struct curl_slist *h = NULL;
	struct tu_buf	 b = { xstrdup(""), 0 };
	char		 ct[128];
	long		 code = -1;

	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tu_http_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (body != NULL) {
		snprintf(ct, sizeof ct, "Content-Type: %s",
		    ctype != NULL ? ctype : "application/json");
		h = curl_slist_append(h, ct);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	if (bodyp != NULL)
		*bodyp = b.p;
	else
		free(b.p);
	return (code);
}

long
tu_http(const char *method, const char *url, const char *ctype,
    const char *body, char **bodyp)
{
	CURL	*c;

	if ((c = curl_easy_init()) == NULL)
		return (-1);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	return (tu_http_perform(c, ctype, body, bodyp));
}

int
tu_run_suite(Suite *s)
{
	SRunner	*sr = srunner_create(s);
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}

TCase *
tu_tcase(Suite *s, const char *name, int timeout, SFun once_setup,
    SFun once_teardown, SFun setup, SFun teardown)
{
	TCase	*tc = tcase_create(name);

	if (timeout > 0)
		tcase_set_timeout(tc, timeout);
	if (once_setup != NULL || once_teardown != NULL)
		tcase_add_unchecked_fixture(tc, once_setup, once_teardown);
	if (setup != NULL || teardown != NULL)
		tcase_add_checked_fixture(tc, setup, teardown);
	suite_add_tcase(s, tc);
	return (tc);
}

/*
 * rabbitmq-server.  The script stays the parent of the Erlang VM and turns
 * SIGTERM into `rabbitmqctl stop`; PR_SET_PDEATHSIG makes it (and our epmd)
 * go away with the test process even after a crash.
 */
#define TU_RABBIT_BIN	"/usr/lib/rabbitmq/bin/"
#define TU_RABBIT_WAIT	120.0	/* seconds, start to ready at most */

static void
tu_rabbit_env(const struct tu_rabbit *r)
{
	char	 v[256];

	setenv("HOME", r->dir, 1);
	setenv("RABBITMQ_NODENAME", r->node, 1);
	setenv("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1", 1);
	snprintf(v, sizeof v, "%d", r->amqp_port);
	setenv("RABBITMQ_NODE_PORT", v, 1);
	snprintf(v, sizeof v, "%d", r->dist_port);
	setenv("RABBITMQ_DIST_PORT", v, 1);
	setenv("ERL_EPMD_ADDRESS", "127.0.0.1", 1);
	snprintf(v, sizeof v, "%d", r->epmd_port);
	setenv("ERL_EPMD_PORT", v, 1);
	setenv("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
	    "-kernel inet_dist_use_interface {127,0,0,1}", 1);
	snprintf(v, sizeof v, "%s/mnesia", r->dir);
	setenv("RABBITMQ_MNESIA_BASE", v, 1);
	snprintf(v, sizeof v, "%s/log", r->dir);
	setenv("RABBITMQ_LOG_BASE", v, 1);
	snprintf(v, sizeof v, "%s/enabled_plugins", r->dir);
	setenv("RABBITMQ_ENABLED_PLUGINS_FILE", v, 1);
	snprintf(v, sizeof v, "%s/rabbitmq", r->dir);
	setenv("RABBITMQ_CONFIG_FILE", v, 1);
	snprintf(v, sizeof v, "%s/no-env.conf", r->dir);
	setenv("RABBITMQ_CONF_ENV_FILE", v, 1);
}

/* fork + exec with the broker's environment; stdout/err to dir/name. */
static pid_t
tu_rabbit_spawn(const struct tu_rabbit *r, const char *const *argv,
    const char *log, int pdeath, int outfd)
{
	char	 path[256];
	pid_t	 pid;
	int	 fd;

	if ((pid = fork()) == -1)
		return (-1);
	if (pid > 0)
		return (pid);
	if (pdeath)
		prctl(PR_SET_PDEATHSIG, SIGTERM);
	setsid();
	tu_rabbit_env(r);
	if (chdir(r->dir) != 0)
		_exit(126);
	snprintf(path, sizeof path, "%s/%s", r->dir, log);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd >= 0) {
		dup2(outfd >= 0 ? outfd : fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	if (outfd >= 0)
		close(outfd);
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0)
		dup2(fd, 0);
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

static int
tu_rabbit_vctl(const struct tu_rabbit *r, char **outp, va_list ap)
{
	const char	*argv[32];
	struct tu_buf	 b = { xstrdup(""), 0 };
	char		 chunk[4096];
	size_t		 n = 0;
	ssize_t		 got;
	pid_t		 pid;
	int		 pfd[2], status;

	argv[n++] = TU_RABBIT_BIN "rabbitmqctl";
	argv[n++] = "-n";
	argv[n++] = r->node;
	while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	argv[n] = NULL;
	if (pipe(pfd) == -1) {
		free(b.p);
		return (-1);
	}
	if ((pid = tu_rabbit_spawn(r, argv, "ctl.log", 1, pfd[1])) == -1) {
		close(pfd[0]);
		close(pfd[1]);
		free(b.p);
		return (-1);
	}
	close(pfd[1]);
	while ((got = read(pfd[0], chunk, sizeof chunk)) > 0 ||
	    (got == -1 && errno == EINTR)) {
		if (got <= 0)
			continue;
		b.p = xrealloc(b.p, b.len + (size_t)got + 1);
		memcpy(b.p + b.len, chunk, (size_t)got);
		b.len += (size_t)got;
		b.p[b.len] = '\0';
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (outp != NULL)
		*outp = b.p;
	else
		free(b.p);
	return (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int
tu_rabbit_ctl(const struct tu_rabbit *r, char **outp, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, outp);
	rc = tu_rabbit_vctl(r, outp, ap);
	va_end(ap);
	return (rc);
}

static int
tu_rabbit_write(const char *dir, const char *name, const char *text)
{
	char	 path[256];
	FILE	*fp;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((fp = fopen(path, "w")) == NULL)
		return (-1);
	fputs(text, fp);
	return (fclose(fp) == 0 ? 0 : -1);
}

/* A self-signed certificate for localhost and 127.0.0.1; 0 or -1. */
static int
tu_rabbit_cert(struct tu_rabbit *r)
{
	char	 cmd[1024];

	snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey rsa:2048 -nodes "
	    "-keyout '%s/key.pem' -out '%s/cert.pem' -days 2 "
	    "-subj /CN=localhost -addext "
	    "'subjectAltName=DNS:localhost,IP:127.0.0.1' >/dev/null 2>&1 && "
	    "chmod 644 '%s/key.pem'", r->dir, r->dir, r->dir);
	if (system(cmd) != 0)
		return (-1);
	snprintf(r->ca, sizeof r->ca, "%s/cert.pem", r->dir);
	return (0);
}

static int
tu_rabbit_boot(struct tu_rabbit *r)
{
	const char	*argv[] = { TU_RABBIT_BIN "rabbitmq-server", NULL };
	double		 end = as_mono_now() + TU_RABBIT_WAIT;
	int		 status;

	if ((r->pid = tu_rabbit_spawn(r, argv, "server.out", 1, -1)) == -1) {
		r->pid = 0;
		return (-1);
	}
	while (as_mono_now() < end) {
		/* An early call exits 69 before the node has registered. */
		if (tu_rabbit_ctl(r, NULL, "await_startup", "--timeout", "60",
		    NULL) == 0)
			return (0);
		if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
			r->pid = 0;
			return (-1);
		}
		usleep(200000);
	}
	return (-1);
}

int
tu_rabbit_start(struct tu_rabbit *r)
{
	const char	*epmd[] = { "/usr/bin/epmd", "-address", "127.0.0.1",
	    "-port", NULL, NULL };
	char		 conf[2048], port[16];
	int		 i, fd;

	memset(r, 0, sizeof *r);
	r->owner = getpid();
	snprintf(r->dir, sizeof r->dir, "/tmp/tu_rabbit.XXXXXX");
	if (mkdtemp(r->dir) == NULL)
		return (-1);
	snprintf(r->node, sizeof r->node, "tu%d@localhost", (int)getpid());
	r->amqp_port = tu_free_port();
	r->mgmt_port = tu_free_port();
	r->dist_port = tu_free_port();
	r->epmd_port = tu_free_port();
	if (tu_rabbit_cert(r) == 0) {
		r->amqps_port = tu_free_port();
		r->mgmts_port = tu_free_port();
	}
	snprintf(r->amqp_url, sizeof r->amqp_url, "amqp://127.0.0.1:%d/",
	    r->amqp_port);
	snprintf(r->http_url, sizeof r->http_url, "http://127.0.0.1:%d/",
	    r->mgmt_port);
	if (r->amqps_port > 0) {
		snprintf(r->amqps_url, sizeof r->amqps_url,
		    "amqps://localhost:%d/", r->amqps_port);
		snprintf(r->https_url, sizeof r->https_url,
		    "https://localhost:%d/", r->mgmts_port);
	}
	snprintf(conf, sizeof conf,
	    "listeners.tcp.default = 127.0.0.1:%d\n"
	    "management.tcp.ip = 127.0.0.1\n"
	    "management.tcp.port = %d\n"
	    "collect_statistics_interval = 500\n"
	    "management.rates_mode = basic\n"
	    "log.console = false\n"
	    "log.file.level = warning\n",
	    r->amqp_port, r->mgmt_port);
	if (r->amqps_port > 0)
		snprintf(conf + strlen(conf), sizeof conf - strlen(conf),
		    "listeners.ssl.default = 127.0.0.1:%d\n"
		    "ssl_options.cacertfile = %s\n"
		    "ssl_options.certfile = %s\n"
		    "ssl_options.keyfile = %s/key.pem\n"
		    "ssl_options.verify = verify_none\n"
		    "ssl_options.fail_if_no_peer_cert = false\n"
		    "management.ssl.ip = 127.0.0.1\n"
		    "management.ssl.port = %d\n"
		    "management.ssl.cacertfile = %s\n"
		    "management.ssl.certfile = %s\n"
		    "management.ssl.keyfile = %s/key.pem\n",
		    r->amqps_port, r->ca, r->ca, r->dir, r->mgmts_port, r->ca,
		    r->ca, r->dir);
	if (tu_rabbit_write(r->dir, "rabbitmq.conf", conf) != 0 ||
	    tu_rabbit_write(r->dir, "enabled_plugins",
	    "[rabbitmq_management].\n") != 0)
		goto fail;
	/* Our own epmd, so that stop can end exactly it. */
	snprintf(port, sizeof port, "%d", r->epmd_port);
	epmd[4] = port;
	if ((r->epmd_pid = tu_rabbit_spawn(r, epmd, "epmd.log", 1,
	    -1)) == -1) {
		r->epmd_pid = 0;
		goto fail;
	}
	for (i = 0; i < 500; i++) {
		struct sockaddr_in sin;

		fd = socket(AF_INET, SOCK_STREAM, 0);
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_port = htons((unsigned short)r->epmd_port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sin,
		    sizeof sin) == 0) {
			close(fd);
			break;
		}
		if (fd >= 0)
			close(fd);
		usleep(10000);
	}
	if (tu_rabbit_boot(r) != 0)
		goto fail;
	return (0);
fail:
	tu_rabbit_stop(r);
	return (-1);
}

static void
tu_rabbit_stop_node(struct tu_rabbit *r)
{
	double	 end;
	int	 status;

	if (r->pid <= 0)
		return;
	tu_rabbit_ctl(r, NULL, "stop", NULL);
	end = as_mono_now() + 30;
	while (as_mono_now() < end) {
		if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
			r->pid = 0;
			return;
		}
		usleep(20000);
	}
	/* The script's process group holds the VM and its helpers. */
	kill(-r->pid, SIGKILL);
	waitpid(r->pid, &status, 0);
	r->pid = 0;
}

int
tu_rabbit_stop_app(const struct tu_rabbit *r)
{
	return (tu_rabbit_ctl(r, NULL, "stop_app", NULL) == 0 ? 0 : -1);
}

int
tu_rabbit_start_app(const struct tu_rabbit *r)
{
	if (tu_rabbit_ctl(r, NULL, "start_app", NULL) != 0)
		return (-1);
	return (tu_rabbit_ctl(r, NULL, "await_startup", "--timeout", "60",
	    NULL) == 0 ? 0 : -1);
}

void
tu_rabbit_stop(struct tu_rabbit *r)
{
	char	 cmd[256];

	if (getpid() != r->owner)
		return;		/* a forked test: the parent owns it */
	tu_rabbit_stop_node(r);
	if (r->epmd_pid > 0) {
		tu_kill(r->epmd_pid);
		r->epmd_pid = 0;
	}
	if (r->dir[0] != '\0' && strncmp(r->dir, "/tmp/tu_rabbit.", 15) ==
	    0) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "tu_rabbit: cannot remove %s\n",
			    r->dir);
	}
	r->dir[0] = '\0';
}

/* The broker of tu_rabbit_run_suite(), and whether it started. */
static struct tu_rabbit *tu_rabbit_suite;
static int	 tu_rabbit_suite_up;

void
tu_rabbit_continue(void)
{
	if (tu_rabbit_suite != NULL && tu_rabbit_suite->pid > 0)
		kill(-tu_rabbit_suite->pid, SIGCONT);
}

static void
tu_rabbit_suite_end(void)
{
	tu_rabbit_continue();
	tu_rabbit_stop(tu_rabbit_suite);
}

void
tu_rabbit_need(void)
{
	ck_assert_msg(tu_rabbit_suite_up, "rabbitmq-server did not start "
	    "(see %s)", tu_rabbit_suite != NULL ? tu_rabbit_suite->dir : "");
}

int
tu_rabbit_run_suite(struct tu_rabbit *rb, Suite *s)
{
	int	 rc;

	signal(SIGPIPE, SIG_IGN);
	tu_rabbit_suite = rb;
	tu_rabbit_suite_up = tu_rabbit_start(rb) == 0;
	if (!tu_rabbit_suite_up)
		fprintf(stderr, "%s: rabbitmq-server did not start\n",
		    program_invocation_short_name);
	atexit(tu_rabbit_suite_end);
	rc = tu_run_suite(s);
	tu_rabbit_suite_end();
	return (rc);
}

long
tu_rabbit_api(const struct tu_rabbit *r, const char *method, const char *path,
    const char *body, char **bodyp)
{
	char	 url[512];
	CURL	*c;

	if ((c = curl_easy_init()) == NULL)
		return (-1);
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", r->mgmt_port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_USERNAME, "guest");
	curl_easy_setopt(c, CURLOPT_PASSWORD, "guest");
	return (tu_http_perform(c, NULL, body, bodyp));
}
