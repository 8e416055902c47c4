/*
 * sink.h: a fake struct k8s_sink for the suites of modules that only write
 * (events.c, status_writer.c): every request is recorded, none is sent; the
 * test answers them with tu_sink_reply() in any order.
 *
 * Ownership: the struct is the caller's; tu_sink_clear() frees what it
 * recorded.  A request that was never answered is cancelled by the module
 * under test (its free function) through the sink.
 */
#ifndef AGENTSCALER_TEST_SINK_H
#define AGENTSCALER_TEST_SINK_H

#include "agentscaler/k8s/k8s.h"

#define TU_SINK_MAX	256

struct tu_sink_req {
	char		*method;
	char		*path;
	char		*ctype;
	char		*body;
	k8s_done_fn	*done;
	void		*ctx;
	int		 pending;
};

struct tu_sink {
	struct k8s_sink		 sink;
	struct tu_sink_req	 r[TU_SINK_MAX];
	int			 n;
	int			 refuse;	/* send returns NULL */
};

/* Sets up s (zeroed) and its k8s_sink. */
void	 tu_sink_init(struct tu_sink *);
/* Answers request i with an HTTP code (2xx: err 0) and body. */
void	 tu_sink_reply(struct tu_sink *, int i, long code, const char *body);
/* Requests still unanswered. */
int	 tu_sink_pending(const struct tu_sink *);
/* Frees the records (answering nothing). */
void	 tu_sink_clear(struct tu_sink *);

#endif
