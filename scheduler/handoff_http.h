/*
 * handoff_http.h: the pure half of agentscaler's side of the agent
 * protocol agentscaler.io/v1 (docs/protocol.md, the JSON Schemas in
 * docs/protocol/): the Task body of a hand-off, the answers of the runtime
 * (TaskStatus, EventList, Error) told from anything else (a router's
 * {"detail"}, a proxy's page), the task's token, the request paths and
 * headers, and the Result published for the producer.  No I/O and no clock:
 * the state machine that uses them is scheduler/dispatch_http.c.
 *
 * Ownership: every char * returned is malloc'd, the caller frees it.  A
 * struct hh_answer owns the parsed document; the pointers in it (strings,
 * events, their JSON values) are borrowed from it until hh_answer_free().
 */
#ifndef AGENTSCALER_HANDOFF_HTTP_H
#define AGENTSCALER_HANDOFF_HTTP_H

#include <stddef.h>

#include "agentscaler/rt/common.h"
#include "task.h"

#define HH_API_VERSION	"agentscaler.io/v1"
#define HH_BASE_PATH	"/agentscaler/v1"
#define HH_TOKEN_LEN	64		/* hex of HMAC-SHA256 */
#define HH_MAX_EVENTS	256		/* per EventList (section 6) */
/*
 * Long-poll wait, s (section 7): under the sandbox-router's 30 s wait for
 * response headers, past which it answers 502.
 */
#define HH_WAIT		25

struct cJSON;

enum hh_kind { HH_TASK_STATUS, HH_EVENT_LIST, HH_ERROR };
enum hh_event_type {
	HH_EV_STARTED, HH_EV_PROGRESS, HH_EV_SPAWN, HH_EV_COMPLETED,
	HH_EV_FAILED
};

struct hh_event {
	long			 seq;
	enum hh_event_type	 type;
	const char		*time;
	long			 attempt;	/* started */
	const char		*key;		/* spawn */
	const struct cJSON	*task;		/* spawn: {payload, ...} */
	const struct cJSON	*result;	/* completed: any JSON */
	const char		*reason;	/* failed: error.* */
	const char		*message;
	int			 retryable;
};

struct hh_answer {
	enum hh_kind		 kind;
	struct cJSON		*doc;
	/* Error */
	const char		*reason;
	const char		*detail;
	const char		*task_id;	/* Error.taskId, or NULL */
	/* TaskStatus (id, attempt, state, next, instance) and EventList */
	const char		*id;
	long			 attempt;
	const char		*state;
	const char		*instance;
	long			 first;
	long			 next;
	int			 more;
	struct hh_event		*events;
	size_t			 nevents;
};

/*
 * Parses an answer of the runtime.  Returns 0 with *a filled (free it with
 * hh_answer_free()) when body is a TaskStatus, an EventList or an Error of
 * agentscaler.io/v1 with the fields this side reads; -AS_EPROTO with a
 * reason in err otherwise: not JSON, no or another apiVersion or kind (the
 * router's or a proxy's answer), or a protocol object that breaks its
 * schema (events out of order, a seq below 1, a terminal event before
 * another).  The caller takes -AS_EPROTO as a transport failure, never as
 * the runtime's word.
 */
int		 hh_answer_parse(const char *body, size_t len,
		    struct hh_answer *a, char *err, size_t errlen);
void		 hh_answer_free(struct hh_answer *);

/*
 * The Task body of a hand-off (task.schema.json): the output of
 * task_handoff_body() for h and the message orig (kept byte for byte under
 * "task"), with apiVersion, kind and, in "agentscaler", attempt,
 * traceparent (NULL: null) and token (NULL: none).  *outlen gets the
 * length.
 */
char		*hh_task_body(const struct handoff_spec *h, const char *orig,
		    size_t len, long attempt, const char *traceparent,
		    const char *token, size_t *outlen);

/*
 * The task's token: HMAC-SHA256(key, "<ns>/<claim uid>/<task id>") as 64
 * lowercase hex digits and a NUL (section 2), so that any agentscaler
 * holding the key derives the same one.
 */
void		 hh_token(const void *key, size_t keylen, const char *ns,
		    const char *claim_uid, const char *id,
		    char out[HH_TOKEN_LEN + 1]);

/*
 * The path of task id's resource, HH_BASE_PATH "/tasks/<id>" with id
 * percent-encoded (every byte but A-Z a-z 0-9 - . _ ~), then suffix ("",
 * "/events?after=3&wait=25", "/replies").  Returns a malloc'd string.
 */
char		*hh_path(const char *id, const char *suffix);

/* Whether s is a W3C traceparent this side passes on (common.schema). */
int		 hh_traceparent_ok(const char *s);
/*
 * A new traceparent from 24 random bytes (a trace id and a parent id,
 * never all zeros), sampled: "00-<32 hex>-<16 hex>-01".
 */
void		 hh_traceparent_new(const unsigned char rnd[24],
		    char out[56]);

/*
 * What became of a task (result.schema.json).  failed: error instead of
 * result (NULL result: null).  sandbox NULL: the task never reached one
 * (sandbox null).  started_at 0: null.  traceparent NULL: null.
 */
struct hh_result {
	const char		*id;
	int			 failed;
	const struct cJSON	*result;
	const char		*reason;
	const char		*message;
	int			 retryable;
	const char		*ns;
	const char		*pool;
	const char		*claim;
	const char		*sandbox;
	const char		*parent;
	const char		*root;
	long			 attempt;
	double			 started_at;	/* wall */
	double			 finished_at;	/* wall */
	const char		*traceparent;
};

char		*hh_result_body(const struct hh_result *, size_t *outlen);

#endif
