/*
 * informer.h: list + watch of one Kubernetes collection, with a local cache
 * (client-go's reflector + store, k8s.io/client-go/tools/cache/reflector.go,
 * made asynchronous for one libev loop).
 *
 * Life: LIST (paged by limit/continue) fills the cache and reports every
 * object as ADDED (or MODIFIED / DELETED against the previous cache after a
 * re-list), then INFORMER_SYNCED once; then WATCH from the list's
 * resourceVersion with allowWatchBookmarks=true and timeoutSeconds.  Events
 * update the cache and are reported; BOOKMARKs only move the
 * resourceVersion.  A watch that ends normally is reopened from the last
 * resourceVersion; 410 Gone (status code or an ERROR event) re-lists; any
 * other failure retries with jittered backoff (base..cap), counted.
 *
 * A watch is one streaming GET through the k8s client (so it shares the
 * rate limiter and credentials); events are newline-delimited JSON.
 *
 * Ownership: options are copied.  Objects passed to the callback and
 * returned by informer_get() belong to the cache: borrowed until the next
 * return to the loop.  The callback may call informer_free() on its own
 * informer; nothing more is reported after that.
 */
#ifndef AGENTSCALER_INFORMER_H
#define AGENTSCALER_INFORMER_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct k8s_client;
struct informer;

enum informer_event {
	INFORMER_ADDED,
	INFORMER_MODIFIED,
	INFORMER_DELETED,	/* obj: the last state known */
	INFORMER_SYNCED		/* a (re-)list is done; obj NULL */
};

typedef void	 informer_fn(struct informer *, enum informer_event,
		    const struct cJSON *obj, void *arg);

/*
 * Called on every object before it is cached or reported (each listed
 * item, each ADDED, MODIFIED and DELETED), as client-go's SetTransform
 * (k8s.io/client-go/tools/cache/shared_informer.go): it may delete or
 * change anything of obj in place, to keep the cache small, except
 * metadata.name, metadata.namespace and metadata.resourceVersion, which
 * the cache itself reads.
 */
typedef void	 informer_transform_fn(struct cJSON *obj, void *arg);

struct informer_options {
	const char	*path;		/* collection, e.g. /apis/extensions.
					   agents.x-k8s.io/v1beta1/namespaces/
					   ns/sandboxclaims */
	const char	*label_selector;	/* NULL: all */
	const char	*field_selector;	/* NULL: all */
	long		 page_size;	/* default 500 */
	long		 watch_timeout;	/* s, timeoutSeconds; default 300 */
	double		 backoff_base;	/* s, default 0.2 */
	double		 backoff_cap;	/* s, default 10 */
	const char	*log_name;	/* for logs; default the path */
	informer_transform_fn *transform;	/* NULL: objects kept whole */
	void		*transform_arg;
	/*
	 * 1: the cache keeps each object as its printed JSON, a few hundred
	 * bytes where a cJSON tree costs about 80 per node (issue 15), and
	 * parses it again when read: informer_get(), informer_foreach() and
	 * a re-list's events each parse once.  What they return is then lent
	 * until the next return to the loop, as everything here is.
	 */
	int		 compact;
};

struct informer_stats {
	uint64_t	 lists;		/* LISTs completed (first + re-lists) */
	uint64_t	 relists_gone;	/* re-lists caused by 410 */
	uint64_t	 watches;	/* WATCH requests started */
	uint64_t	 events;	/* ADDED/MODIFIED/DELETED applied */
	uint64_t	 bookmarks;
	uint64_t	 errors;	/* failed LIST/WATCH attempts */
	uint64_t	 failing;	/* of them, in a row now: 0 once a LIST
					   or WATCH works (the API server is
					   reachable) */
};

/* Starts listing at once.  Returns NULL with err on bad options. */
struct informer	*informer_new(struct k8s_client *,
		    const struct informer_options *, informer_fn *, void *arg,
		    char *err, size_t errlen);
/* Stops (cancels the request in flight) and frees the cache. */
void		 informer_free(struct informer *);

/* 1 once the first list is complete. */
int		 informer_synced(const struct informer *);
/* The cached object of that name (namespace for namespaced paths), or NULL. */
const struct cJSON *informer_get(const struct informer *, const char *ns,
		    const char *name);
/* Calls fn for every cached object (order unspecified). */
void		 informer_foreach(const struct informer *,
		    void (*fn)(const struct cJSON *obj, void *arg), void *arg);
size_t		 informer_size(const struct informer *);
const char	*informer_resource_version(const struct informer *);
void		 informer_get_stats(const struct informer *,
		    struct informer_stats *);

/*
 * Pure: one line of a watch stream.  Returns the kind of event; for
 * ADDED/MODIFIED/DELETED *obj is the object, detached (the caller owns it),
 * for BOOKMARK *rv is its resourceVersion (borrowed from *obj, which the
 * caller frees too), for ERROR code and msg say what the server said.  A
 * line that is not a watch event is WATCH_LINE_BAD with the reason in msg.
 * Fuzzed (tests/fuzz/fuzz_watch.c).
 */
enum watch_line {
	WATCH_LINE_BAD,
	WATCH_LINE_ADDED,
	WATCH_LINE_MODIFIED,
	WATCH_LINE_DELETED,
	WATCH_LINE_BOOKMARK,
	WATCH_LINE_ERROR
};

struct watch_line_info {
	struct cJSON	*obj;		/* the caller frees it; may be NULL */
	const char	*rv;		/* BOOKMARK: borrowed from obj; or NULL */
	double		 code;		/* ERROR: its code, 0 when none */
	int		 gone;		/* ERROR: 410 Gone / Expired */
	char		 msg[512];	/* ERROR and BAD */
};

enum watch_line	 watch_line_parse(const char *line, size_t len,
		    struct watch_line_info *);

#endif
