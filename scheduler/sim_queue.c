/*
 * sim_queue.c: the binary heap of sim_queue.h.
 */
#include <stdlib.h>

#include "agentscaler/rt/common.h"
#include "sim_queue.h"

static int
earlier(const struct sim_event *a, const struct sim_event *b)
{
	if (a->t != b->t)
		return (a->t < b->t);
	return (a->seq < b->seq);
}

void
sim_queue_push(struct sim_queue *q, double t, int kind, long arg)
{
	struct sim_event e, tmp;
	size_t		 i, up;

	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 256;
		q->v = xrealloc(q->v, q->cap * sizeof *q->v);
	}
	e.t = t;
	e.seq = q->next_seq++;
	e.kind = kind;
	e.arg = arg;
	i = q->n++;
	q->v[i] = e;
	while (i > 0) {
		up = (i - 1) / 2;
		if (!earlier(&q->v[i], &q->v[up]))
			break;
		tmp = q->v[up];
		q->v[up] = q->v[i];
		q->v[i] = tmp;
		i = up;
	}
}

int
sim_queue_pop(struct sim_queue *q, struct sim_event *e)
{
	struct sim_event tmp;
	size_t		 i = 0, l, m;

	if (q->n == 0)
		return (0);
	*e = q->v[0];
	q->v[0] = q->v[--q->n];
	for (;;) {
		l = 2 * i + 1;
		m = i;
		if (l < q->n && earlier(&q->v[l], &q->v[m]))
			m = l;
		if (l + 1 < q->n && earlier(&q->v[l + 1], &q->v[m]))
			m = l + 1;
		if (m == i)
			break;
		tmp = q->v[m];
		q->v[m] = q->v[i];
		q->v[i] = tmp;
		i = m;
	}
	return (1);
}

void
sim_queue_free(struct sim_queue *q)
{
	free(q->v);
	q->v = NULL;
	q->n = q->cap = 0;
}
