/*
 * decisions.h: a small ring of a scale pool's recent autoscale decisions,
 * for the status page (/ui) and /status.  Pure: time is passed in, no
 * allocation.  An entry is kept when the decision changes (desired count
 * or reason) and, while it holds, once every `every` seconds, so the
 * DECISIONS_MAX entries cover the last minutes of a steady pool and the
 * last changes of a busy one.
 */
#ifndef AGENTSCALER_DECISIONS_H
#define AGENTSCALER_DECISIONS_H

#include <stddef.h>

struct cJSON;

#define DECISIONS_MAX	32

struct decision_entry {
	double		 wall;		/* s since the epoch */
	double		 backlog;
	long		 current;	/* replicas when decided */
	long		 desired;
	const char	*reason;	/* static (autoscale_reason_name()) */
};

struct decisions {
	struct decision_entry	 e[DECISIONS_MAX];
	size_t			 n;	/* entries ever kept */
};

/*
 * Notes one evaluation: kept when the ring is empty, when desired or
 * reason differ from the newest entry, or when the newest is at least
 * every seconds old.  Returns 1 when kept, 0 when not.  reason is borrowed
 * for the ring's life (a static string).
 */
int	 decisions_note(struct decisions *, double wall, double backlog,
	    long current, long desired, const char *reason, double every);
/* The kept entries, oldest first: at most DECISIONS_MAX. */
size_t	 decisions_count(const struct decisions *);
/* The i-th kept entry, oldest first (i < decisions_count()). */
const struct decision_entry *decisions_at(const struct decisions *,
	    size_t i);
/*
 * Appends the entries, oldest first, to the JSON array arr as objects
 * {"at": RFC 3339, "backlog", "replicas", "desired", "reason"}.
 */
void	 decisions_json(const struct decisions *, struct cJSON *arr);

#endif
