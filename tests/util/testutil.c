/*
 * testutil.c: starts and stops real redis-server and kube-sim processes for
 * the C suites, by PID, on free loopback ports.
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
#include <sys/socket.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>

#include "agentscaler/common.h"
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

long
tu_http(const char *method, const char *url, const char *ctype,
    const char *body, char **bodyp)
{
	struct curl_slist *h = NULL;
	struct tu_buf	 b = { xstrdup(""), 0 };
	char		 ct[128];
	long		 code = -1;
	CURL		*c;

	if ((c = curl_easy_init()) == NULL)
		return (-1);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
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
