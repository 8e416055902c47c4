/*
 * task.h: the task message (DESIGN.md section 6) and the SandboxClaim that
 * carries it (section 7, ref/agent-sandbox-api.md section 9).  Everything
 * here is pure: bytes or parsed JSON in, structs or bytes out; no I/O, no
 * clock (callers pass the time).
 *
 * Ownership: returned strings are malloc'd and belong to the caller.
 * struct task and struct claim_view are plain values (fixed buffers).
 */
#ifndef AGENTSCALER_TASK_H
#define AGENTSCALER_TASK_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define TASK_MAX_BYTES_DEFAULT	(1024 * 1024)
#define TASK_PREFIX_BYTES	4096	/* of a message in a cut record */
#define TASK_CUT_STR_MAX	256	/* reason, detail, ns, name, id */
/*
 * The most a cut record (task_dead_letter_record_cut()) takes: the prefix
 * and five strings as JSON (a control byte escapes to 6), the time, the
 * digest, the size and the keys.
 */
#define TASK_CUT_RECORD_MAX	(6 * (TASK_PREFIX_BYTES + \
				    5 * TASK_CUT_STR_MAX) + 512)
#define TASK_ID_MAX		253	/* bytes */
#define TASK_MAX_RESOURCES	16
#define CLAIM_NAME_MAX		63

/* Label and annotation keys we put on claims. */
#define TASK_LABEL_MANAGED	"app.kubernetes.io/managed-by"
#define TASK_LABEL_MANAGED_VALUE "agentscaler"
#define TASK_LABEL_POOL		"agentscaler.io/pool"	/* AgentPool name */
#define TASK_LABEL_TASK		"agentscaler.io/task"	/* task hash, hex */
#define TASK_LABEL_ROOT		"agentscaler.io/root"	/* root hash, hex */
#define TASK_LABEL_DEPTH	"agentscaler.io/depth"
#define TASK_ANN_TASK_ID	"agentscaler.io/task-id"
#define TASK_ANN_PARENT_ID	"agentscaler.io/parent-id"
#define TASK_ANN_ROOT_ID	"agentscaler.io/root-id"
#define TASK_ANN_INSTANCE	"agentscaler.io/instance"
#define TASK_ANN_TRACEPARENT	"agentscaler.io/traceparent"
#define TASK_ANN_RESOURCES	"agentscaler.io/resources"	/* JSON */
#define TASK_ANN_REQUESTED_AT	"agents.x-k8s.io/client-first-requested-at"
/*
 * {"seconds": <the tree's sandbox-seconds>, "at": <unix s when saved>},
 * saved on a claim of the tree at a bounded rate (dispatch_claim.c).
 */
#define TASK_ANN_TREE_BUDGET	"agentscaler.io/tree-budget"

struct task_resource {
	char	 name[128];	/* cpu, memory, nvidia.com/gpu */
	double	 value;		/* base units (cores, bytes, devices) */
};

struct task {
	char	 id[TASK_ID_MAX + 1];
	char	 parent[TASK_ID_MAX + 1];	/* "" when a root */
	char	 traceparent[56];		/* "" when absent */
	double	 deadline;			/* unix s; 0 when absent */
	struct task_resource resources[TASK_MAX_RESOURCES];
	size_t	 nresources;
};

/* Why a message was refused: a machine-readable reason and a detail. */
struct task_error {
	char	 reason[48];	/* "task.notJson", "task.badId", ... */
	char	 detail[256];
};

/*
 * Parses one message: UTF-8 JSON object of at most max_bytes (0: the
 * default), "id" required (a string of 1..253 printable ASCII bytes, no
 * spaces), "parent" optional (same rules), "payload" any JSON, "resources"
 * an object of Kubernetes quantities under Kubernetes resource names
 * (charge_name_check(): "CPU" is refused), "traceparent" a W3C traceparent
 * (version 00: 2-32-16-2 lowercase hex), "deadline" RFC 3339.  Unknown
 * fields are ignored.  Returns 0, or -AS_EINVAL with err filled; reasons:
 * task.tooLarge, task.invalidUtf8, task.notJson, task.notObject,
 * task.missingId, task.badId, task.badParent, task.badResources,
 * task.badTraceparent, task.badDeadline.  On failure out is zeroed except
 * out->id, which keeps the id when the id itself was valid (for the
 * dead-letter record's taskId).
 */
int	 task_parse(const char *buf, size_t len, size_t max_bytes,
	    struct task *out, struct task_error *err);

/*
 * The dead-letter record for "<queue>.rejected":
 *   {"reason": ..., "detail": ..., "pool": "<ns>/<name>", "taskId": ...
 *    (when known), "at": "<RFC 3339>", "original": "<the message>"}
 * with "originalBase64" instead of "original" when the bytes are not valid
 * UTF-8.  task_id may be NULL.  Returns the JSON text and its length.
 */
char	*task_dead_letter_record(const char *reason, const char *detail,
	    const char *pool_ns, const char *pool_name, const char *task_id,
	    const char *body, size_t len, double wall_now, size_t *outlen);

/*
 * The dead-letter record of a message too large to copy whole (reason
 * task.tooLarge), bounded whatever the message (TASK_CUT_RECORD_MAX):
 *   {"reason", "detail", "pool", "taskId" (when known), "at",
 *    "size": <bytes of the whole message>,
 *    "sha256": "<64 hex digits of the whole message>",
 *    "originalPrefix": "<its first bytes>", "truncated": true}
 * prefix holds the first prefix_len bytes of the size-byte message (the
 * caller may pass more than it keeps); sha256 is the digest of the whole.
 * At most TASK_PREFIX_BYTES are kept, cut back to the last whole UTF-8
 * character, as "originalPrefix"; when those bytes are not UTF-8 (or hold a
 * NUL), all of them go as "originalPrefixBase64".  "truncated" is true when
 * the prefix kept is shorter than the message.  The other strings are
 * cut to TASK_CUT_STR_MAX bytes each first.
 */
char	*task_dead_letter_record_cut(const char *reason, const char *detail,
	    const char *pool_ns, const char *pool_name, const char *task_id,
	    const char *prefix, size_t prefix_len, uint64_t size,
	    const unsigned char sha256[32], double wall_now, size_t *outlen);

/*
 * How many of the first len bytes of buf make a prefix that ends on a
 * UTF-8 character boundary: len when buf[0..len) is UTF-8, less when only
 * its last character is cut short; (size_t)-1 when the bytes are not
 * UTF-8 or hold a NUL.
 */
size_t	 task_utf8_cut(const char *buf, size_t len);

/* 64-bit FNV-1a of ns, a NUL byte, then id. */
uint64_t task_hash(const char *ns, const char *id);
/* 32-bit FNV-1a as 8 lowercase hex digits (agent-sandbox NameHash). */
void	 task_name_hash(const char *s, char out[9]);

/*
 * The first CLAIM_DIGEST_HEX lowercase hex digits (128 bits) of the
 * SHA-256 of ns, a NUL byte, then id: a producer cannot make two task ids
 * share a claim name (FNV-1a, used before, can be collided on purpose).
 */
#define CLAIM_DIGEST_HEX	32
void	 task_claim_digest(const char *ns, const char *id,
	    char out[CLAIM_DIGEST_HEX + 1]);

/*
 * Deterministic claim name: the prefix (an AgentPool name) reduced to
 * DNS-1123 label characters and cut so that "<prefix>-<task_claim_digest(
 * ns, id)>" fits in 63 (the prefix keeps at most 30 characters); an empty
 * result prefix becomes "task".  Claims named by earlier versions ("-" and
 * 16 hex digits of task_hash()) are still adopted: dispatch finds a task's
 * claim by its annotations, never by recomputing its name.
 */
void	 task_claim_name(const char *prefix, const char *ns, const char *id,
	    char out[CLAIM_NAME_MAX + 1]);

/*
 * The TASK_LABEL_POOL value for an AgentPool name: the name itself when it
 * is a valid label value (<= 63 of [A-Za-z0-9._-], alphanumeric at both
 * ends), else a sanitized cut of it, '-', and its task_name_hash().
 */
void	 task_pool_label(const char *pool, char out[64]);

struct claim_spec {
	const char	*ns;
	const char	*name;		/* task_claim_name() */
	const char	*pool;		/* AgentPool name */
	const char	*warm_pool;	/* SandboxWarmPool name */
	const char	*task_id;
	const char	*parent_id;	/* NULL for a root */
	const char	*root_id;
	int		 depth;		/* 0 for a root */
	const char	*traceparent;	/* NULL when absent */
	const char	*instance;	/* the agentscaler that made it */
	double		 wall_now;	/* unix seconds */
	long		 ttl_seconds;	/* lifecycle.shutdownTime = now + ttl */
	const struct task_resource *resources;	/* the task's requests */
	size_t		 nresources;
};

/*
 * The SandboxClaim (extensions.agents.x-k8s.io/v1beta1) to POST: name,
 * labels and annotations above (the task's resource requests as a JSON
 * object of base units, so that quota usage is rebuilt from claims after a
 * restart), agents.x-k8s.io/created-by, traceparent
 * copied (also as opentelemetry.io/trace-context), spec.warmPoolRef, and
 * spec.lifecycle {shutdownTime, shutdownPolicy: DeleteForeground}.
 */
char	*task_claim_body(const struct claim_spec *, size_t *outlen);

/* What dispatch needs to know about a claim object. */
struct claim_view {
	char	 name[CLAIM_NAME_MAX + 1];
	char	 ns[64];
	char	 uid[64];
	int	 managed;		/* carries our managed-by label */
	char	 pool[64];		/* TASK_LABEL_POOL */
	char	 task_id[TASK_ID_MAX + 1];
	char	 parent_id[TASK_ID_MAX + 1];
	char	 root_id[TASK_ID_MAX + 1];
	int	 depth;
	char	 sandbox[254];		/* status.sandbox.name; "" unbound */
	char	 pod_ip[64];		/* status.sandbox.podIPs[0]; "" */
	int	 ready;			/* Ready: 1 True, 0 False, -1 none */
	char	 ready_reason[64];
	char	 ready_message[256];
	int	 finished;		/* Finished=True */
	char	 finished_reason[64];	/* its reason: PodSucceeded, ... */
	int	 deleting;		/* metadata.deletionTimestamp set */
	double	 created;		/* creationTimestamp, unix s; 0 */
	double	 shutdown_time;		/* spec.lifecycle.shutdownTime; 0 */
	double	 requested_at;		/* TASK_ANN_REQUESTED_AT; 0 */
	struct task_resource resources[TASK_MAX_RESOURCES];
	size_t	 nresources;		/* from TASK_ANN_RESOURCES */
	double	 tree_seconds;		/* TASK_ANN_TREE_BUDGET; -1 none */
	double	 tree_saved_at;		/* its "at", unix s; 0 */
};

/*
 * Reads a SandboxClaim object.  Missing optional parts leave defaults
 * (ready -1, "" strings, 0 times).  Returns 0 or -AS_EPROTO with err when
 * the object has no metadata.name.
 */
int	 task_claim_parse(const struct cJSON *obj, struct claim_view *out,
	    char *err, size_t errlen);

/*
 * The claim informers' transform (informer_options.transform, arg
 * unused): deletes from the SandboxClaim obj, in place, all that
 * task_claim_parse() does not read (managedFields, ownerReferences, other
 * labels and annotations, the spec but its lifecycle, the conditions'
 * times), so that a cached claim costs a few hundred bytes, not kilobytes
 * (issue 15).  status.sandbox is kept whole.  A field task_claim_parse()
 * starts reading must be kept here too (tests/check_task.c parses both).
 */
void	 task_claim_slim(struct cJSON *obj, void *arg);

/*
 * 1 when the claim's Ready reason means it will never become ready
 * (ref/agent-sandbox-api.md 4.3: InvalidMetadata, EnvVarsInjectionRejected,
 * VolumeClaimTemplatesError, ClaimExpired, SandboxExpired, PodFailed,
 * PodSucceeded).  TemplateNotFound and WarmPoolNotFound are not: upstream
 * recovers from them (#1315), see task_claim_cluster_wait().
 */
int	 task_claim_terminal(const struct claim_view *);

/*
 * 1 when the claim is not Ready for a reason that is the cluster's fault,
 * not the task's: ReconcilerError (e.g. a compute ResourceQuota refusing
 * the pod), DependenciesNotReady (pending, unschedulable),
 * TemplateNotFound, WarmPoolNotFound.  The controller retries them all.
 */
int	 task_claim_cluster_wait(const struct claim_view *);

struct handoff_spec {
	const char	*ns;
	const char	*pool;
	const char	*claim;
	const char	*sandbox;
	const char	*task_id;
	const char	*parent_id;	/* NULL for a root */
	const char	*root_id;
	int		 depth;
};

/*
 * What goes into the sandbox's inbox: the original message untouched
 * under "task", with what agentscaler knows beside it:
 *   {"agentscaler": {"namespace", "pool", "claim", "sandbox", "id",
 *    "parent", "root", "depth"}, "task": <original JSON>}
 */
char	*task_handoff_body(const struct handoff_spec *, const char *orig,
	    size_t len, size_t *outlen);

#endif
