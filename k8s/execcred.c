/*
 * execcred.c: runs exec credential plugins, after client-go's
 * plugin/pkg/client/auth/exec/exec.go (the ExecCredential exchange, the
 * KUBERNETES_EXEC_INFO variable, the environment the plugin inherits with
 * the kubeconfig's env on top, a command with a '/' as a path, else found
 * on PATH).  The code and its words are ours.
 *
 * One run: the command is looked up in the parent (the child of a
 * threaded process, libcurl's resolver has threads, may only call
 * async-signal-safe functions, so the argv, environment and path are all
 * ready before fork); the child gets /dev/null, two pipes, its own process
 * group (so a timeout kills what it started too), default signal
 * dispositions and no other descriptor, then execve(2).  A third pipe,
 * close-on-exec, carries the errno of a failed execve back, so "cannot
 * start" is not mistaken for the plugin's own exit status 127.
 *
 * The run ends when both pipes have reached EOF (or were closed because
 * the timeout passed or stdout grew too large) and the child has been
 * reaped.  Blocking runs poll(2) the pipes and waitpid(2); loop runs use
 * ev_io for the pipes and, on the default loop, an ev_child: libev's
 * default loop reaps every child itself (waitpid(-1) on SIGCHLD), so a
 * waitpid of ours could find nothing.  On other loops (tests) a 50 ms
 * timer polls waitpid(WNOHANG); that timer also enforces the deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "execcred.h"
#include "kubeconfig.h"

#define EC_TICK		0.05	/* s: deadline and waitpid polling */
#define EC_STDERR_KEEP	1024	/* bytes of stderr kept for messages */
#define EC_LINE_MAX	200	/* characters of stderr in a message */
#define EC_DEFAULT_PATH	"/usr/local/bin:/usr/bin:/bin"

extern char	**environ;

struct execcred {
	struct ev_loop		*loop;
	char			*command;
	char			*api_version;
	char			*install_hint;
	char			**argv;		/* argv[0] = command */
	char			**envp;		/* may hold secrets */
	double			 timeout;

	/* The run in progress. */
	pid_t			 pid;
	int			 fds[2];	/* stdout, stderr; -1 closed */
	char			*out;
	size_t			 out_len;
	int			 too_big;
	char			 errbuf[EC_STDERR_KEEP + 1];
	size_t			 err_len;
	int			 exited;
	int			 status;
	int			 timed_out;
	double			 deadline;	/* mono */
	int			 busy;		/* execcred_start */
	struct ev_io		 io[2];
	struct ev_timer		 tick;
	struct ev_child		 child;
	execcred_done_fn	*done;
	void			*arg;
};

static char	*ec_find(const char *, char *, size_t);
static int	 ec_spawn(struct execcred *, char *, size_t);
static int	 ec_read(struct execcred *, int);
static void	 ec_close(struct execcred *, int);
static void	 ec_kill(struct execcred *);
static int	 ec_result(struct execcred *, struct execcred_cred *, char *,
		    size_t);
static void	 ec_reset(struct execcred *);
static void	 ec_io_cb(struct ev_loop *, struct ev_io *, int);
static void	 ec_tick_cb(struct ev_loop *, struct ev_timer *, int);
static void	 ec_child_cb(struct ev_loop *, struct ev_child *, int);
static void	 ec_check_done(struct execcred *);

/* ---- pure ---- */

static void
ec_zero_string(cJSON *o, const char *key)
{
	cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (cJSON_IsString(v) && v->valuestring != NULL)
		explicit_bzero(v->valuestring, strlen(v->valuestring));
}

int
execcred_parse(const char *data, size_t len, const char *api_version,
    struct execcred_cred *out, char *err, size_t errlen)
{
	struct execcred_cred c;
	const cJSON	*kind, *ver, *status, *tok, *cert, *key, *exp;
	cJSON		*root = NULL;
	int		 rc = -AS_EPROTO;

	memset(&c, 0, sizeof c);
	if (data == NULL || len == 0) {
		snprintf(err, errlen, "printed nothing");
		return (rc);
	}
	if ((root = cJSON_ParseWithLength(data, len)) == NULL) {
		snprintf(err, errlen, "printed something that is not JSON");
		return (rc);
	}
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "printed JSON that is not an object");
		goto out;
	}
	kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
	ver = cJSON_GetObjectItemCaseSensitive(root, "apiVersion");
	if (!cJSON_IsString(kind) ||
	    strcmp(kind->valuestring, "ExecCredential") != 0) {
		snprintf(err, errlen, "printed kind \"%.64s\", not "
		    "ExecCredential", cJSON_IsString(kind) ?
		    kind->valuestring : "");
		goto out;
	}
	if (!cJSON_IsString(ver) || api_version == NULL ||
	    strcmp(ver->valuestring, api_version) != 0) {
		snprintf(err, errlen, "printed apiVersion \"%.64s\", but the "
		    "kubeconfig asks for \"%s\"", cJSON_IsString(ver) ?
		    ver->valuestring : "", api_version != NULL ? api_version :
		    "");
		goto out;
	}
	status = cJSON_GetObjectItemCaseSensitive(root, "status");
	if (!cJSON_IsObject(status)) {
		snprintf(err, errlen, "printed an ExecCredential without a "
		    "status");
		goto out;
	}
	tok = cJSON_GetObjectItemCaseSensitive(status, "token");
	cert = cJSON_GetObjectItemCaseSensitive(status,
	    "clientCertificateData");
	key = cJSON_GetObjectItemCaseSensitive(status, "clientKeyData");
	exp = cJSON_GetObjectItemCaseSensitive(status, "expirationTimestamp");
	if ((tok != NULL && !cJSON_IsString(tok) && !cJSON_IsNull(tok)) ||
	    (cert != NULL && !cJSON_IsString(cert) && !cJSON_IsNull(cert)) ||
	    (key != NULL && !cJSON_IsString(key) && !cJSON_IsNull(key))) {
		snprintf(err, errlen, "status.token, clientCertificateData and "
		    "clientKeyData must be strings");
		goto out;
	}
	if (cJSON_IsString(tok) && *tok->valuestring != '\0')
		c.token = xstrdup(tok->valuestring);
	if (cJSON_IsString(cert) && *cert->valuestring != '\0') {
		c.cert = xstrdup(cert->valuestring);
		c.cert_len = strlen(c.cert);
	}
	if (cJSON_IsString(key) && *key->valuestring != '\0') {
		c.key = xstrdup(key->valuestring);
		c.key_len = strlen(c.key);
	}
	if ((c.cert == NULL) != (c.key == NULL)) {
		snprintf(err, errlen, "status has only one of "
		    "clientCertificateData and clientKeyData");
		goto out;
	}
	if (c.token == NULL && c.cert == NULL) {
		snprintf(err, errlen, "status has neither a token nor "
		    "clientCertificateData and clientKeyData");
		goto out;
	}
	if (exp != NULL && !cJSON_IsNull(exp) && (!cJSON_IsString(exp) ||
	    as_parse_rfc3339(exp->valuestring, &c.expiry) != 0)) {
		snprintf(err, errlen, "status.expirationTimestamp is not an "
		    "RFC 3339 time");
		goto out;
	}
	*out = c;
	memset(&c, 0, sizeof c);
	rc = 0;
out:
	execcred_cred_clear(&c);
	if (cJSON_IsObject(status = cJSON_GetObjectItemCaseSensitive(root,
	    "status"))) {
		ec_zero_string((cJSON *)status, "token");
		ec_zero_string((cJSON *)status, "clientKeyData");
	}
	cJSON_Delete(root);
	return (rc);
}

char *
execcred_info(const char *api_version, const struct execcred_cluster *cl)
{
	cJSON	*root, *spec, *c;
	char	*s, *out, *b64;

	root = cJSON_CreateObject();
	spec = cJSON_CreateObject();
	if (root == NULL || spec == NULL)
		abort();
	cJSON_AddStringToObject(root, "apiVersion", api_version);
	cJSON_AddStringToObject(root, "kind", "ExecCredential");
	cJSON_AddItemToObject(root, "spec", spec);
	cJSON_AddBoolToObject(spec, "interactive", 0);
	if (cl != NULL) {
		if ((c = cJSON_CreateObject()) == NULL)
			abort();
		cJSON_AddItemToObject(spec, "cluster", c);
		cJSON_AddStringToObject(c, "server", cl->server != NULL ?
		    cl->server : "");
		if (cl->ca_data != NULL) {
			b64 = as_base64_encode(cl->ca_data, cl->ca_data_len);
			cJSON_AddStringToObject(c,
			    "certificate-authority-data", b64);
			free(b64);
		}
		if (cl->insecure_skip_tls_verify)
			cJSON_AddBoolToObject(c, "insecure-skip-tls-verify",
			    1);
	}
	if ((s = cJSON_PrintUnformatted(root)) == NULL)
		abort();
	cJSON_Delete(root);
	out = xstrdup(s);
	cJSON_free(s);
	return (out);
}

void
execcred_cred_clear(struct execcred_cred *c)
{
	as_secret_free(c->token, 0);
	free(c->cert);
	as_secret_free(c->key, c->key_len);
	memset(c, 0, sizeof *c);
}

/* ---- the runner ---- */

struct execcred *
execcred_new(struct ev_loop *loop, const struct kubeconfig_exec *cfg,
    const struct execcred_cluster *cluster, double timeout)
{
	struct execcred	*x;
	size_t		 i, j, n, nenv = 0;
	char		*info;

	x = xcalloc(1, sizeof *x);
	x->loop = loop;
	x->command = xstrdup(cfg->command);
	x->api_version = xstrdup(cfg->api_version);
	if (cfg->install_hint != NULL)
		x->install_hint = xstrdup(cfg->install_hint);
	x->timeout = timeout > 0 ? timeout : EXECCRED_TIMEOUT;
	x->fds[0] = x->fds[1] = -1;
	x->argv = xcalloc(cfg->nargs + 2, sizeof *x->argv);
	x->argv[0] = xstrdup(cfg->command);
	for (i = 0; i < cfg->nargs; i++)
		x->argv[i + 1] = xstrdup(cfg->args[i]);

	/*
	 * Our environment, less what the kubeconfig sets and
	 * KUBERNETES_EXEC_INFO, then the kubeconfig's, then ours.
	 */
	for (n = 0; environ != NULL && environ[n] != NULL; n++)
		;
	x->envp = xcalloc(n + cfg->nenv + 2, sizeof *x->envp);
	for (i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t	 klen = eq != NULL ? (size_t)(eq - environ[i]) :
		    strlen(environ[i]);
		int	 skip = klen == 20 &&
		    strncmp(environ[i], "KUBERNETES_EXEC_INFO", 20) == 0;

		for (j = 0; j < cfg->nenv && !skip; j++)
			skip = strlen(cfg->env[j].name) == klen &&
			    strncmp(environ[i], cfg->env[j].name, klen) == 0;
		if (!skip)
			x->envp[nenv++] = xstrdup(environ[i]);
	}
	for (j = 0; j < cfg->nenv; j++)
		x->envp[nenv++] = xasprintf("%s=%s", cfg->env[j].name,
		    cfg->env[j].value);
	info = execcred_info(cfg->api_version, cfg->provide_cluster_info ?
	    cluster : NULL);
	x->envp[nenv++] = xasprintf("KUBERNETES_EXEC_INFO=%s", info);
	free(info);

	ev_timer_init(&x->tick, ec_tick_cb, EC_TICK, EC_TICK);
	x->tick.data = x;
	for (i = 0; i < 2; i++)
		x->io[i].data = x;
	return (x);
}

void
execcred_free(struct execcred *x)
{
	size_t	 i;

	if (x == NULL)
		return;
	if (x->pid > 0) {
		ec_kill(x);
		ec_close(x, 0);
		ec_close(x, 1);
		if (x->busy) {
			ev_timer_stop(x->loop, &x->tick);
			if (ev_is_active(&x->child))
				ev_child_stop(x->loop, &x->child);
			x->busy = 0;
		}
		if (!x->exited)
			while (waitpid(x->pid, &x->status, 0) == -1 &&
			    errno == EINTR)
				;
		ec_reset(x);
	}
	for (i = 0; x->argv[i] != NULL; i++)
		free(x->argv[i]);
	free(x->argv);
	for (i = 0; x->envp[i] != NULL; i++) {
		explicit_bzero(x->envp[i], strlen(x->envp[i]));
		free(x->envp[i]);
	}
	free(x->envp);
	free(x->command);
	free(x->api_version);
	free(x->install_hint);
	free(x);
}

int
execcred_busy(const struct execcred *x)
{
	return (x->busy);
}

const char *
execcred_command(const struct execcred *x)
{
	return (x->command);
}

/*
 * The file execve should run: command itself when it has a '/', else the
 * first executable regular file of that name on PATH.  NULL when none.
 */
static char *
ec_find(const char *command, char *buf, size_t buflen)
{
	const char	*path, *p, *colon;
	struct stat	 st;
	size_t		 dlen;
	int		 n;

	if (strchr(command, '/') != NULL)
		return (access(command, X_OK) == 0 ? (char *)command : NULL);
	if ((path = getenv("PATH")) == NULL || *path == '\0')
		path = EC_DEFAULT_PATH;
	for (p = path; p != NULL; p = colon != NULL ? colon + 1 : NULL) {
		colon = strchr(p, ':');
		dlen = colon != NULL ? (size_t)(colon - p) : strlen(p);
		n = snprintf(buf, buflen, "%.*s%s%s", (int)dlen, p,
		    dlen > 0 ? "/" : "./", command);
		if (n < 0 || (size_t)n >= buflen)
			continue;
		if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(buf, X_OK) == 0)
			return (buf);
	}
	return (NULL);
}

static void
ec_closefd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/*
 * Starts the child unless a loop run is going; returns 0 or a negative
 * as_err (-AS_EAGAIN when busy) with the reason.
 */
static int
ec_spawn(struct execcred *x, char *err, size_t errlen)
{
	struct sigaction sa;
	sigset_t	 all;
	char		 pathbuf[4096];
	const char	*path;
	int		 outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int		 fail[2] = { -1, -1 }, devnull = -1, e = 0, sig;
	ssize_t		 n;
	pid_t		 pid;

	if (x->busy) {
		snprintf(err, errlen, "exec plugin \"%s\": already running",
		    x->command);
		return (-AS_EAGAIN);
	}
	if ((path = ec_find(x->command, pathbuf, sizeof pathbuf)) == NULL) {
		snprintf(err, errlen, "exec plugin \"%s\": not found%s%s",
		    x->command, x->install_hint != NULL ? ": " : "",
		    x->install_hint != NULL ? x->install_hint : "");
		return (-AS_ENOTFOUND);
	}
	if (pipe2(outp, O_CLOEXEC) == -1 || pipe2(errp, O_CLOEXEC) == -1 ||
	    pipe2(fail, O_CLOEXEC) == -1 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "exec plugin \"%s\": %s", x->command,
		    strerror(errno));
		goto fail;
	}
	if ((pid = fork()) == -1) {
		snprintf(err, errlen, "exec plugin \"%s\": fork: %s",
		    x->command, strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		/* Async-signal-safe calls only from here on. */
		setpgid(0, 0);
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_DFL;
		for (sig = 1; sig < NSIG; sig++)
			(void)sigaction(sig, &sa, NULL);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		if (dup2(devnull, 0) == -1 || dup2(outp[1], 1) == -1 ||
		    dup2(errp[1], 2) == -1) {
			e = errno;
			(void)!write(fail[1], &e, sizeof e);
			_exit(127);
		}
		/* Everything else goes, but the close-on-exec fail pipe. */
		if (fail[1] > 3)
			close_range(3, (unsigned)fail[1] - 1, 0);
		close_range((unsigned)fail[1] + 1, ~0U, 0);
		execve(path, x->argv, x->envp);
		e = errno;
		(void)!write(fail[1], &e, sizeof e);
		_exit(127);
	}
	x->pid = pid;
	(void)setpgid(pid, pid);	/* either side may win the race */
	close(outp[1]);
	close(errp[1]);
	close(fail[1]);
	close(devnull);
	while ((n = read(fail[0], &e, sizeof e)) == -1 && errno == EINTR)
		;
	close(fail[0]);
	x->fds[0] = outp[0];
	x->fds[1] = errp[0];
	x->deadline = as_mono_now() + x->timeout;
	if (n == (ssize_t)sizeof e) {
		snprintf(err, errlen, "exec plugin \"%s\": cannot start: %s",
		    x->command, strerror(e));
		ec_close(x, 0);
		ec_close(x, 1);
		while (waitpid(pid, &x->status, 0) == -1 && errno == EINTR)
			;
		x->pid = 0;
		return (-AS_EIO);
	}
	return (0);
fail:
	ec_closefd(&outp[0]);
	ec_closefd(&outp[1]);
	ec_closefd(&errp[0]);
	ec_closefd(&errp[1]);
	ec_closefd(&fail[0]);
	ec_closefd(&fail[1]);
	ec_closefd(&devnull);
	return (-AS_EIO);
}

/*
 * Reads what pipe i (0 stdout, 1 stderr) has; closes it at EOF or when
 * stdout grows beyond the bound.  Returns 1 while it stays open.
 */
static int
ec_read(struct execcred *x, int i)
{
	char	 buf[16384];
	ssize_t	 n;
	size_t	 keep;

	for (;;) {
		n = read(x->fds[i], buf, sizeof buf);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return (1);
		if (n <= 0)
			break;
		if (i == 1) {
			keep = EC_STDERR_KEEP - x->err_len;
			if (keep > (size_t)n)
				keep = (size_t)n;
			memcpy(x->errbuf + x->err_len, buf, keep);
			x->err_len += keep;
			x->errbuf[x->err_len] = '\0';
			if (!x->busy)
				return (1);
			continue;
		}
		if ((size_t)n > EXECCRED_MAX_OUTPUT - x->out_len) {
			x->too_big = 1;
			ec_kill(x);
			break;
		}
		x->out = xrealloc(x->out, x->out_len + (size_t)n + 1);
		memcpy(x->out + x->out_len, buf, (size_t)n);
		x->out_len += (size_t)n;
		x->out[x->out_len] = '\0';
		/* A blocking run reads what poll announced, then polls. */
		if (!x->busy)
			return (1);
	}
	explicit_bzero(buf, sizeof buf);
	ec_close(x, i);
	return (0);
}

static void
ec_close(struct execcred *x, int i)
{
	if (x->fds[i] < 0)
		return;
	if (x->busy)
		ev_io_stop(x->loop, &x->io[i]);
	close(x->fds[i]);
	x->fds[i] = -1;
}

/* SIGKILL to the plugin's process group (and to it, in case). */
static void
ec_kill(struct execcred *x)
{
	if (x->pid > 0 && !x->exited) {
		(void)kill(-x->pid, SIGKILL);
		(void)kill(x->pid, SIGKILL);
	}
}

/* The first line of the plugin's stderr, cut, for a message. */
static void
ec_stderr_line(const struct execcred *x, char *out, size_t outlen)
{
	size_t	 i, n = 0;

	for (i = 0; i < x->err_len && n + 1 < outlen && n < EC_LINE_MAX;
	    i++) {
		if (x->errbuf[i] == '\n' && n > 0)
			break;
		if (x->errbuf[i] == '\n' || x->errbuf[i] == '\r')
			continue;
		out[n++] = (unsigned char)x->errbuf[i] < 0x20 ? ' ' :
		    x->errbuf[i];
	}
	out[n] = '\0';
}

/* What a finished run (pipes closed, child reaped) means. */
static int
ec_result(struct execcred *x, struct execcred_cred *cred, char *err,
    size_t errlen)
{
	char	 line[EC_LINE_MAX + 1], why[256];
	int	 rc;

	ec_stderr_line(x, line, sizeof line);
	if (x->timed_out) {
		snprintf(err, errlen, "exec plugin \"%s\": no answer within "
		    "%g s, killed", x->command, x->timeout);
		return (-AS_ETIMEDOUT);
	}
	if (x->too_big) {
		snprintf(err, errlen, "exec plugin \"%s\": printed more than "
		    "%d bytes, killed", x->command, EXECCRED_MAX_OUTPUT);
		return (-AS_EPROTO);
	}
	if (WIFSIGNALED(x->status)) {
		snprintf(err, errlen, "exec plugin \"%s\": killed by signal "
		    "%d%s%s", x->command, WTERMSIG(x->status),
		    line[0] != '\0' ? ": " : "", line);
		return (-AS_EIO);
	}
	if (!WIFEXITED(x->status) || WEXITSTATUS(x->status) != 0) {
		snprintf(err, errlen, "exec plugin \"%s\": exit status %d%s%s",
		    x->command, WIFEXITED(x->status) ?
		    WEXITSTATUS(x->status) : -1, line[0] != '\0' ? ": " : "",
		    line);
		return (-AS_EAUTH);
	}
	if ((rc = execcred_parse(x->out, x->out_len, x->api_version, cred,
	    why, sizeof why)) != 0) {
		snprintf(err, errlen, "exec plugin \"%s\": %s", x->command,
		    why);
		return (rc);
	}
	return (0);
}

/* Forgets the finished run. */
static void
ec_reset(struct execcred *x)
{
	if (x->out != NULL) {
		explicit_bzero(x->out, x->out_len);
		free(x->out);
	}
	x->out = NULL;
	x->out_len = 0;
	x->too_big = 0;
	x->err_len = 0;
	x->errbuf[0] = '\0';
	x->exited = 0;
	x->status = 0;
	x->timed_out = 0;
	x->pid = 0;
}

int
execcred_run(struct execcred *x, struct execcred_cred *out, char *err,
    size_t errlen)
{
	struct pollfd	 pfd[2];
	struct timespec	 ts = { 0, 5 * 1000 * 1000 };
	double		 left;
	nfds_t		 n;
	pid_t		 p;
	int		 i, rc;

	if ((rc = ec_spawn(x, err, errlen)) != 0)
		return (rc);
	while (x->fds[0] >= 0 || x->fds[1] >= 0) {
		if ((left = x->deadline - as_mono_now()) <= 0) {
			x->timed_out = 1;
			ec_kill(x);
			ec_close(x, 0);
			ec_close(x, 1);
			break;
		}
		n = 0;
		for (i = 0; i < 2; i++) {
			if (x->fds[i] < 0)
				continue;
			pfd[n].fd = x->fds[i];
			pfd[n].events = POLLIN;
			pfd[n++].revents = 0;
		}
		if (poll(pfd, n, (int)(left * 1000) + 1) <= 0)
			continue;
		for (i = 0; i < (int)n; i++)
			if (pfd[i].revents != 0)
				(void)ec_read(x, pfd[i].fd == x->fds[0] ? 0 :
				    1);
	}
	/* Pipes closed; the plugin may still linger: wait, then kill. */
	while (!x->exited) {
		p = waitpid(x->pid, &x->status, WNOHANG);
		if (p == x->pid || (p == -1 && errno == ECHILD)) {
			x->exited = 1;
			break;
		}
		if (as_mono_now() >= x->deadline && !x->timed_out) {
			x->timed_out = 1;
			ec_kill(x);
		}
		nanosleep(&ts, NULL);
	}
	rc = ec_result(x, out, err, errlen);
	ec_reset(x);
	return (rc);
}

int
execcred_start(struct execcred *x, execcred_done_fn *done, void *arg,
    char *err, size_t errlen)
{
	int	 i, rc;

	if ((rc = ec_spawn(x, err, errlen)) != 0)
		return (rc);
	x->busy = 1;
	x->done = done;
	x->arg = arg;
	for (i = 0; i < 2; i++) {
		(void)fcntl(x->fds[i], F_SETFL,
		    fcntl(x->fds[i], F_GETFL) | O_NONBLOCK);
		ev_io_init(&x->io[i], ec_io_cb, x->fds[i], EV_READ);
		ev_io_start(x->loop, &x->io[i]);
	}
	if (ev_is_default_loop(x->loop)) {
		ev_child_init(&x->child, ec_child_cb, x->pid, 0);
		x->child.data = x;
		ev_child_start(x->loop, &x->child);
	}
	ev_timer_again(x->loop, &x->tick);
	return (0);
}

static void
ec_io_cb(struct ev_loop *loop, struct ev_io *w, int revents)
{
	struct execcred	*x = w->data;

	(void)loop;
	(void)revents;
	(void)ec_read(x, w == &x->io[0] ? 0 : 1);
	ec_check_done(x);
}

static void
ec_child_cb(struct ev_loop *loop, struct ev_child *w, int revents)
{
	struct execcred	*x = w->data;

	(void)revents;
	ev_child_stop(loop, w);
	x->status = w->rstatus;
	x->exited = 1;
	ec_check_done(x);
}

static void
ec_tick_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	struct execcred	*x = w->data;
	pid_t		 p;

	(void)loop;
	(void)revents;
	if (!x->exited && !ev_is_default_loop(x->loop)) {
		p = waitpid(x->pid, &x->status, WNOHANG);
		if (p == x->pid)
			x->exited = 1;
	}
	if (!x->exited && !x->timed_out && as_mono_now() >= x->deadline) {
		x->timed_out = 1;
		ec_kill(x);
		ec_close(x, 0);
		ec_close(x, 1);
	}
	ec_check_done(x);
}

/* The end of a loop run: both pipes closed and the child reaped. */
static void
ec_check_done(struct execcred *x)
{
	struct execcred_cred cred;
	char		 msg[512] = "";
	int		 rc;

	if (!x->busy || x->fds[0] >= 0 || x->fds[1] >= 0 || !x->exited)
		return;
	ev_timer_stop(x->loop, &x->tick);
	if (ev_is_active(&x->child))
		ev_child_stop(x->loop, &x->child);
	memset(&cred, 0, sizeof cred);
	rc = ec_result(x, &cred, msg, sizeof msg);
	ec_reset(x);
	x->busy = 0;
	x->done(x, rc, &cred, msg, x->arg);
	execcred_cred_clear(&cred);
}
