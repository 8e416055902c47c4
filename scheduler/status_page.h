/*
 * status_page.h: the status page, one self-contained HTML document (inline
 * CSS and script, no other asset) that reads /status every 2 s and shows
 * pools, warm pools, quotas, trees, deferred tasks and dead letters.
 * daemon_http.c serves it on the admin address as /ui.  Static storage.
 */
#ifndef AGENTSCALER_STATUS_PAGE_H
#define AGENTSCALER_STATUS_PAGE_H

extern const char status_page_html[];

#endif
