/*
 * secret.c: where a source's password comes from, one place for the Redis
 * and RabbitMQ transports: a file or a variable of the daemon (file mode,
 * which the operator writes) or a key of a Secret read through the API (CRD
 * mode, which tenants write: see as_secret_lookup()).  Read afresh on every
 * connect so a rotated password is used without a restart; never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/scaler.h"

static const char *
secret_nonempty(const char *s)
{
	return (s != NULL && *s != '\0' ? s : NULL);
}

static char *
secret_dup(const char *s)
{
	return ((s = secret_nonempty(s)) != NULL ? xstrdup(s) : NULL);
}

static int
secret_same(const char *a, const char *b)
{
	b = secret_nonempty(b);
	return ((a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0));
}

void
scaler_secret_set(struct scaler_secret *s, const struct scaler_source *src)
{
	s->file = secret_dup(src->password_file);
	s->env = secret_dup(src->password_env);
	s->ref = secret_dup(src->password_secret);
	s->user_file = secret_dup(src->username_file);
	s->user_ref = secret_dup(src->username_secret);
	s->user = secret_dup(src->username);
}

int
scaler_secret_same(const struct scaler_secret *s,
    const struct scaler_source *src)
{
	return (secret_same(s->file, src->password_file) &&
	    secret_same(s->env, src->password_env) &&
	    secret_same(s->ref, src->password_secret) &&
	    secret_same(s->user_file, src->username_file) &&
	    secret_same(s->user_ref, src->username_secret) &&
	    secret_same(s->user, src->username));
}

void
scaler_secret_clear(struct scaler_secret *s)
{
	free(s->file);
	free(s->env);
	free(s->ref);
	free(s->user_file);
	free(s->user_ref);
	free(s->user);
	s->file = s->env = s->ref = s->user_file = s->user_ref = NULL;
	s->user = NULL;
}

int
scaler_secret_check(const struct scaler_source *src, char *err,
    size_t errlen)
{
	if ((secret_nonempty(src->password_file) != NULL) +
	    (secret_nonempty(src->password_env) != NULL) +
	    (secret_nonempty(src->password_secret) != NULL) > 1) {
		snprintf(err, errlen, "give one password source (a file, a "
		    "variable or a Secret), not several");
		return (-AS_EINVAL);
	}
	return (0);
}

/* One value from a Secret (ref) or a file; *out stays NULL for neither. */
static int
secret_fetch(const char *ref, const char *file, double since, char **out,
    char *err, size_t errlen)
{
	int	 rc;

	*out = NULL;
	if (ref != NULL) {
		if ((rc = as_secret_lookup(ref, since, out, err, errlen)) != 0)
			return (rc == -AS_EAGAIN ? rc : -AS_EAUTH);
	} else if (file != NULL) {
		if ((*out = as_read_secret(file, err, errlen)) == NULL)
			return (-AS_EAUTH);
	}
	return (0);
}

/* Refuses an empty value: no broker takes one. */
static int
secret_nonempty_value(char **out, const char *what, const char *name,
    char *err, size_t errlen)
{
	if (*out != NULL && **out == '\0') {
		snprintf(err, errlen, "the %s (%s) is empty", what, name);
		as_secret_free(*out, 0);
		*out = NULL;
		return (-AS_EAUTH);
	}
	return (0);
}

int
scaler_secret_user(const struct scaler_secret *s, double since, char **out,
    char *err, size_t errlen)
{
	int	 rc;

	if ((rc = secret_fetch(s->user_ref, s->user_file, since, out, err,
	    errlen)) != 0)
		return (rc);
	if (*out == NULL && s->user != NULL) {
		*out = xstrdup(s->user);
		return (0);
	}
	return (secret_nonempty_value(out, "user name", s->user_ref != NULL ?
	    s->user_ref : s->user_file, err, errlen));
}

int
scaler_secret_read(const struct scaler_secret *s, double since, char **out,
    char *err, size_t errlen)
{
	const char	*v;
	int		 rc;

	*out = NULL;
	if (s->ref != NULL || s->file != NULL) {
		if ((rc = secret_fetch(s->ref, s->file, since, out, err,
		    errlen)) != 0)
			return (rc);
	} else if (s->env != NULL) {
		if ((v = getenv(s->env)) == NULL || *v == '\0') {
			snprintf(err, errlen, "environment variable %s is "
			    "not set", s->env);
			return (-AS_EAUTH);
		}
		*out = xstrdup(v);
	} else
		return (0);
	return (secret_nonempty_value(out, "password", s->ref != NULL ?
	    s->ref : s->file != NULL ? s->file : s->env, err, errlen));
}
