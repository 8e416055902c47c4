/*
 * scaler.h: the one interface every queue source implements (KEDA's
 * Scaler, pkg/scalers/scaler.go, made asynchronous for one libev loop).
 *
 * Contract of poll(): the completion runs exactly once per successful
 * poll() call, never before poll() has returned, with an error on failure
 * and -AS_ECANCELED when the instance is destroyed first.  A poll() that
 * returns non-zero never runs its completion.  The result passed to the
 * completion is borrowed for the duration of the call.
 *
 * Ownership: create() returns an instance the caller releases with
 * scaler_destroy(); the source config is copied, never kept.
 */
#ifndef AGENTSCALER_SCALER_H
#define AGENTSCALER_SCALER_H

#include <stddef.h>

struct ev_loop;
struct scaler;

/* What a source needs to know; strings are borrowed during create(). */
struct scaler_source {
	const char	*type;		/* "redis-list", ... */
	const char	*address;	/* redis://host:port/db */
	const char	*queue;		/* list, stream or queue name */
	const char	*exchange;	/* results (rabbitmq): instead of queue */
	const char	*processing;	/* in-flight list (redis-list) or NULL */
	const char	*consumer_group;
	const char	*password_file;	/* secret from a file, re-read on connect */
	const char	*password_env;	/* or from an environment variable */
	const char	*password_secret; /* or a Secret's key read through the
					   API, "ns/name/key" (CRD mode) */
	const char	*username_file;	/* user name from a file (--config) */
	const char	*username_secret; /* or a Secret's key (CRD mode) */
	const char	*username;	/* rabbitmq user; NULL: guest */
	const char	*ca_file;	/* TLS: CA bundle; NULL: system CAs */
	int		 insecure_skip_verify;	/* TLS: do not verify (tests) */
	int		 count_in_flight;
	/* Redis: SCALER_KEYSPACE_*, whether keyspace notifications are used */
	int		 keyspace_notifications;
	const char	*stream_field;	/* redis-stream: the task body's field */
	double		 connect_timeout;	/* seconds */
	double		 command_timeout;	/* seconds */
};

/*
 * source.keyspaceNotifications of a Redis source.  auto: turn on the
 * notify-keyspace-events classes it needs (CONFIG SET) and poll when the
 * server refuses; off: never CONFIG, never subscribe, poll only; require:
 * as auto, but a server that has them off and refuses to turn them on (or
 * to say: CONFIG GET refused) fails the source's polls with the reason.
 */
enum scaler_keyspace {
	SCALER_KEYSPACE_AUTO,
	SCALER_KEYSPACE_OFF,
	SCALER_KEYSPACE_REQUIRE
};

struct scaler_result {
	int		 error;		/* 0 or -AS_E... */
	double		 ready;		/* messages waiting */
	double		 in_flight;	/* taken but not finished, when counted */
	char		 errmsg[192];
	double		 consumers;	/* rabbitmq: consumers of the queue */
	double		 publish_rate;	/* messages/s in, when has_rates */
	double		 deliver_rate;	/* messages/s out, when has_rates */
	int		 has_rates;	/* rabbitmq http transport only */
};

typedef void	 scaler_done_fn(struct scaler *, const struct scaler_result *,
		    void *arg);
/* Push wake-up: something changed on the source, evaluate now. */
typedef void	 scaler_wake_fn(struct scaler *, void *arg);

struct scaler_type {
	const char	*name;
	/* Checks the combination of fields; optional. */
	int		 (*validate)(const struct scaler_source *, char *err,
			    size_t errlen);
	struct scaler	*(*create)(struct ev_loop *, const struct scaler_source *,
			    char *err, size_t errlen);
	int		 (*poll)(struct scaler *, scaler_done_fn *, void *arg);
	/*
	 * Optional push mode: call wake() whenever the source changes.  Returns
	 * 0 when subscribed (it may still fall back to polling later and says so
	 * in the log), -AS_EINVAL when this type cannot push.
	 */
	int		 (*subscribe)(struct scaler *, scaler_wake_fn *, void *arg);
	/* 1 while push wake-ups are live, 0 when only polling works. */
	int		 (*pushing)(const struct scaler *);
	void		 (*destroy)(struct scaler *);
};

/* Every backend instance embeds this first. */
struct scaler {
	const struct scaler_type *type;
};

/* Looks a type up by name in the registry; NULL when unknown. */
const struct scaler_type *scaler_type_find(const char *name);
/* Returns the registry's names, comma-separated, for error messages. */
const char	*scaler_type_names(void);
/*
 * The registry's names, alphabetical, NULL-terminated (static): the one
 * list the config's enum, --help-config and --print-vocabulary come from.
 */
const char *const *scaler_type_list(void);

static inline int
scaler_poll(struct scaler *s, scaler_done_fn *fn, void *arg)
{
	return (s->type->poll(s, fn, arg));
}

static inline void
scaler_destroy(struct scaler *s)
{
	if (s != NULL)
		s->type->destroy(s);
}

extern const struct scaler_type scaler_type_rabbitmq;
extern const struct scaler_type scaler_type_redis_list;
extern const struct scaler_type scaler_type_redis_stream;

/*
 * Where a source's password comes from, copied out of a scaler_source
 * (scalers/secret.c): a file or an environment variable (file mode, set by
 * the operator), or a key of a Secret in the pool's namespace read through
 * the Kubernetes API (CRD mode; see as_secret_lookup()).  At most one is
 * set; none means no password.
 */
struct scaler_secret {
	char	*file;
	char	*env;
	char	*ref;
	char	*user_file;	/* the user name, from the same Secret */
	char	*user_ref;
	char	*user;		/* or given inline (source.username) */
};

void	 scaler_secret_set(struct scaler_secret *, const struct scaler_source *);
/* 1 when src names the same password source. */
int	 scaler_secret_same(const struct scaler_secret *,
	    const struct scaler_source *);
void	 scaler_secret_clear(struct scaler_secret *);
/* 0 or -AS_EINVAL when src names more than one password source. */
int	 scaler_secret_check(const struct scaler_source *, char *err,
	    size_t errlen);
/*
 * Reads the password afresh: 0 with a new string in *out (NULL when the
 * source has none; let go of with as_secret_free), or -AS_EAUTH (or
 * -AS_EAGAIN while a Secret is being read) with the reason in err.  since:
 * a Secret's value must have been read after this moment (the end of the
 * last failed attempt; 0 on the first connect), see as_secret_lookup().
 */
int	 scaler_secret_read(const struct scaler_secret *, double since,
	    char **out, char *err, size_t errlen);
/*
 * The user name, from a Secret or file (authSecretRef.usernameKey) or else
 * source.username: as scaler_secret_read(), *out NULL when the source
 * names none.
 */
int	 scaler_secret_user(const struct scaler_secret *, double since,
	    char **out, char *err, size_t errlen);

#endif
