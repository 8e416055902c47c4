/*
 * sim_queue.h: the simulator's event queue (simulate.h), a binary heap
 * ordered by (time, sequence): events at the same virtual time come out in
 * the order they were pushed, so a run is a function of its inputs alone.
 *
 * Ownership: the queue owns its array; events are plain values copied in
 * and out.
 */
#ifndef AGENTSCALER_SIM_QUEUE_H
#define AGENTSCALER_SIM_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct sim_event {
	double	 t;		/* virtual seconds */
	uint64_t seq;		/* push order, set by sim_queue_push */
	int	 kind;		/* the caller's */
	long	 arg;		/* the caller's (a task, a member) */
};

struct sim_queue {
	struct sim_event *v;
	size_t		 n;
	size_t		 cap;
	uint64_t	 next_seq;
};

/* Zeroed is an empty queue. */
void	 sim_queue_push(struct sim_queue *, double t, int kind, long arg);
/* Takes the earliest event into *e: 1, or 0 when empty. */
int	 sim_queue_pop(struct sim_queue *, struct sim_event *e);
void	 sim_queue_free(struct sim_queue *);

#endif
