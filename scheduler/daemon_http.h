/*
 * daemon_http.h: the daemon's HTTP endpoints (scheduler/daemon_http.c):
 * /metrics, /healthz and /readyz on --metrics-addr, /status and /explain
 * on --admin-addr when given.
 *
 * Ownership: the servers are the daemon's (d->http, d->admin); the
 * handlers borrow the daemon for as long as the servers live.
 */
#ifndef AGENTSCALER_DAEMON_HTTP_H
#define AGENTSCALER_DAEMON_HTTP_H

#include <stdio.h>

struct daemon;

/*
 * Listens on the daemon's addresses and routes the endpoints.  Returns 0,
 * or -AS_EINVAL after logging why (the address is bad or taken); what was
 * started is freed by daemon_http_stop().
 */
int	 daemon_http_start(struct daemon *);
/* Closes both listeners; safe when they never started. */
void	 daemon_http_stop(struct daemon *);
/*
 * --print-metrics: every family the daemon can write (the definitions of
 * daemon_http.c, the dispatcher, the CRD mode, the secret store and the
 * process_* family) and every label, as the README's Markdown tables.
 */
void	 daemon_http_print_metrics(FILE *);

#endif
