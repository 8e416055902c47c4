/*
 * rabbitmq_http.c: the management API transport of the "rabbitmq" source
 * (http://host:15672/vhost, https://): one paged
 *
 *	GET /api/queues/<vhost>?page=N&page_size=500&sort=name&columns=...
 *
 * per vhost and tick, whose rows give every pool on that vhost its
 * messages_ready (ready), messages_unacknowledged (in flight: delivered,
 * not yet acknowledged, which AMQP cannot see), consumers and the publish
 * and deliver rates.  The requests go through the project's HTTP client
 * (scheduler/rt/httpc.c: libcurl multi on the loop, a rate limiter, per-attempt
 * timeouts), one client per endpoint.
 *
 * Endpoints and coalescing.  Instances with the same loop, host, port,
 * vhost, user, password source and TLS settings share an endpoint.  A poll
 * joins ep->waiting, and a zero-delay timer starts one listing for all the
 * polls of that loop iteration; a poll that arrives while a listing is
 * running joins it (its rows are as fresh as the broker's statistics,
 * which it refreshes every collect_statistics_interval, 5 s by default).
 * When the last page is in, the rows are sorted by name and each waiting
 * pool looks its queue up: a queue absent from the listing fails that pool
 * alone with -AS_ENOTFOUND.  The daemon jitters its pools' polls, so they
 * seldom share a loop iteration: a listing that started less than
 * RMH_REUSE seconds ago therefore answers new polls too, which bounds the
 * listings to about two a second per vhost however many pools read it,
 * for rows at most that much older than the broker's own statistics.  A queue listed without statistics yet (just
 * declared, or statistics disabled on the broker) fails with -AS_EAGAIN
 * rather than reading as empty: a source we cannot read holds replicas.
 *
 * Pages are read one after the other; queues created or deleted between
 * two pages may shift rows, so a queue can be missed for one tick (an
 * -AS_ENOTFOUND that the next tick corrects).
 *
 * Credentials.  Basic authentication; the password is read when a listing
 * starts, at most once a minute, and again after a 401, which is retried
 * once only when the password changed.  It is never logged.
 *
 * Completions are stored in the instance and delivered from its own
 * zero-delay timer, never from inside the HTTP client.
 */
#include <sys/queue.h>

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/httpc.h"
#include "agentscaler/rt/log.h"
#include "rabbitmq.h"
#include "agentscaler/scalers/scaler.h"
#include "scaler_later.h"

#define RMH_LOG			"rabbitmq"
#define RMH_TIMEOUT		5.0	/* per request, seconds */
#define RMH_CONNECT_TIMEOUT	2.0
#define RMH_PAGE_SIZE		500	/* the management API's largest */
#define RMH_PAGES_MAX		1000
#define RMH_SECRET_PERIOD	60.0	/* seconds between password reads */
#define RMH_REUSE		0.5	/* seconds a listing answers polls */
#define RMH_COLUMNS		"name,messages_ready,messages_unacknowledged," \
	"consumers,message_stats.publish_details.rate," \
	"message_stats.deliver_get_details.rate"

TESTABLE int	 rabbitmq_http_page_size = RMH_PAGE_SIZE;
TESTABLE double	 rabbitmq_http_reuse = RMH_REUSE;

enum rmh_poll {
	RMH_POLL_IDLE,		/* on no list: none, or the result waits */
	RMH_POLL_WAITING	/* on ep->waiting or a fetch's waiters */
};

struct rmh_row {
	char		*name;
	int		 has_stats;
	double		 ready;
	double		 unacked;
	double		 consumers;
	double		 publish_rate;
	double		 deliver_rate;
};

struct rmh_scaler;
TAILQ_HEAD(rmh_scaler_q, rmh_scaler);

/* One listing of the vhost, page after page. */
struct rmh_fetch {
	struct rmh_endpoint	*ep;		/* NULL once orphaned */
	struct rmh_scaler_q	 waiters;
	struct httpc_req	*req;
	double			 started;	/* mono time of page 1 */
	long			 page;
	struct rmh_row		*rows;
	size_t			 nrows;
	size_t			 cap;
};

struct rmh_endpoint {
	LIST_ENTRY(rmh_endpoint) entry;
	struct ev_loop		*loop;
	struct rabbitmq_addr	 addr;
	char			 name[272];	/* host:port, for messages */
	char			 vpath[3 * RABBITMQ_NAME_MAX + 1];
	char			*user;
	struct scaler_secret	 secret_src;	/* the password's source */
	char			*ca_file;
	int			 insecure;
	char			*secret;	/* NULL until read */
	char			*login;		/* the user, when from a Secret */
	double			 secret_at;
	struct httpc		*h;
	unsigned		 refs;
	struct rmh_scaler_q	 waiting;
	struct rmh_fetch	*fetch;		/* the listing running */
	struct rmh_row		*rows;		/* the last listing, sorted */
	size_t			 nrows;
	double			 rows_at;	/* mono time it started */
	ev_timer		 flush_timer;
	uint64_t		 requests;
	uint64_t		 batches;
};

struct rmh_scaler {
	struct scaler		 base;
	TAILQ_ENTRY(rmh_scaler)	 wentry;	/* waiting or fetch->waiters */
	struct rmh_endpoint	*ep;
	struct ev_loop		*loop;
	char			*queue;
	enum rmh_poll		 pstate;
	struct rmh_scaler_q	*on;		/* the list wentry is on */
	struct scaler_later	 later;		/* the pending poll */
};

static struct scaler *rmh_create(struct ev_loop *,
		    const struct scaler_source *, char *, size_t);
static int	 rmh_poll(struct scaler *, scaler_done_fn *, void *);
static void	 rmh_destroy(struct scaler *);

static void	 rmh_page(struct rmh_fetch *);
static void	 rmh_page_done(const struct httpc_response *, void *);

static LIST_HEAD(, rmh_endpoint) rmh_endpoints =
    LIST_HEAD_INITIALIZER(rmh_endpoints);

/* Percent-encodes everything but RFC 3986's unreserved characters. */
static void
rmh_escape(char *out, size_t outlen, const char *in)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		 n = 0;
	unsigned char	 c;

	for (; *in != '\0' && n + 4 <= outlen; in++) {
		c = (unsigned char)*in;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~')
			out[n++] = (char)c;
		else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = '\0';
}

/*
 * The management API's errors are {"error":"...","reason":"..."}; anything
 * else is shown as the start of the body, on one line.
 */
static void
rmh_message(long code, const char *body, size_t len, char *out,
    size_t outlen)
{
	const cJSON	*e, *r;
	cJSON		*j = NULL;
	char		 raw[161];
	size_t		 i, n = 0;

	if (body != NULL && len > 0)
		j = cJSON_ParseWithLength(body, len);
	e = cJSON_GetObjectItemCaseSensitive(j, "error");
	r = cJSON_GetObjectItemCaseSensitive(j, "reason");
	if (cJSON_IsString(e) && cJSON_IsString(r))
		snprintf(out, outlen, "%ld %.64s: %.120s", code, e->valuestring,
		    r->valuestring);
	else if (cJSON_IsString(e))
		snprintf(out, outlen, "%ld %.64s", code, e->valuestring);
	else {
		for (i = 0; body != NULL && i < len && n + 1 < sizeof raw;
		    i++)
			raw[n++] = body[i] >= 0x20 && body[i] < 0x7f ?
			    body[i] : ' ';
		raw[n] = '\0';
		snprintf(out, outlen, "%ld: %s", code, n > 0 ? raw :
		    "empty body");
	}
	cJSON_Delete(j);
}

/* Polls: results are delivered from the instance's own timer. */

static void
rmh_later(struct rmh_scaler *s)
{
	s->pstate = RMH_POLL_IDLE;
	s->on = NULL;
	scaler_later_arm(&s->later, 0.);
}

static void
rmh_fail_list(struct rmh_endpoint *ep, struct rmh_scaler_q *q, int err,
    const char *msg)
{
	struct rmh_scaler *s;

	while ((s = TAILQ_FIRST(q)) != NULL) {
		TAILQ_REMOVE(q, s, wentry);
		rabbitmq_result_error(&s->later.res, err, ep->name, "%s", msg);
		rmh_later(s);
	}
}

/* Credentials. */

/*
 * Reads the password when forced, when none is loaded or when the copy is
 * a minute old; keeps the old one when a re-read fails.  Returns 1 when the
 * password changed, 0 when not, -1 when none could be loaded (reason in
 * err).
 */
static int
rmh_secret_refresh(struct rmh_endpoint *ep, int force, char *err,
    size_t errlen)
{
	char	*secret = NULL, *user = NULL;
	double	 now = as_mono_now(), prev = ep->secret_at;
	int	 changed, rc;

	if (!force && ep->secret != NULL && now - ep->secret_at <
	    RMH_SECRET_PERIOD)
		return (0);
	ep->secret_at = now;
	/* A Secret must have been read since the last refresh. */
	if ((rc = scaler_secret_user(&ep->secret_src, prev, &user, err,
	    errlen)) != 0 || (rc = rabbitmq_secret_read(&ep->secret_src,
	    ep->user, prev, &secret, err, errlen)) != 0) {
		as_secret_free(user, 0);
		if (rc == -AS_EAGAIN) {
			ep->secret_at = prev;	/* ask again at the next poll */
			return (ep->secret == NULL ? -1 : 0);
		}
		if (ep->secret == NULL)
			return (-1);
		log_warn(RMH_LOG, "%s: cannot re-read the password, keeping "
		    "the previous one: %s", ep->name, err);
		return (0);
	}
	changed = ep->secret == NULL || strcmp(ep->secret, secret) != 0 ||
	    (user != NULL && (ep->login == NULL ||
	    strcmp(ep->login, user) != 0));
	as_secret_free(ep->secret, 0);
	ep->secret = secret;
	if (user != NULL) {
		as_secret_free(ep->login, 0);
		ep->login = user;
	}
	httpc_set_basic(ep->h, ep->login != NULL ? ep->login : ep->user,
	    ep->secret);
	return (changed);
}

/* httpc's hook after a 401: one more try only with a new password. */
static int
rmh_unauthorized(struct httpc *h, const char *method, const char *path,
    void *arg)
{
	struct rmh_endpoint *ep = arg;
	char		 err[160];

	(void)h;
	(void)method;
	(void)path;
	return (rmh_secret_refresh(ep, 1, err, sizeof err) == 1);
}

/* Listings. */

static void
rmh_rows_free(struct rmh_row *rows, size_t nrows)
{
	size_t	 i;

	for (i = 0; i < nrows; i++)
		free(rows[i].name);
	free(rows);
}

static void
rmh_fetch_free(struct rmh_fetch *f)
{
	rmh_rows_free(f->rows, f->nrows);
	free(f);
}

/* Forgets the last listing: after an error, nothing old is served. */
static void
rmh_rows_clear(struct rmh_endpoint *ep)
{
	rmh_rows_free(ep->rows, ep->nrows);
	ep->rows = NULL;
	ep->nrows = 0;
}

/* Starts a listing for every waiting poll. */
static void
rmh_flush(struct rmh_endpoint *ep)
{
	struct rmh_fetch *f;
	struct rmh_scaler *s;
	char		 err[160];

	ev_timer_stop(ep->loop, &ep->flush_timer);
	if (ep->fetch != NULL || TAILQ_EMPTY(&ep->waiting))
		return;
	if (rmh_secret_refresh(ep, 0, err, sizeof err) < 0) {
		rmh_fail_list(ep, &ep->waiting, -AS_EAUTH, err);
		return;
	}
	f = xcalloc(1, sizeof *f);
	f->ep = ep;
	TAILQ_INIT(&f->waiters);
	while ((s = TAILQ_FIRST(&ep->waiting)) != NULL) {
		TAILQ_REMOVE(&ep->waiting, s, wentry);
		TAILQ_INSERT_TAIL(&f->waiters, s, wentry);
		s->on = &f->waiters;
	}
	ep->fetch = f;
	ep->batches++;
	f->started = as_mono_now();
	f->page = 1;
	rmh_page(f);
}

static void
rmh_flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	rmh_flush(w->data);
}

/* Ends the listing with an error for every pool waiting on it. */
static void
rmh_fetch_fail(struct rmh_fetch *f, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
rmh_fetch_fail(struct rmh_fetch *f, int err, const char *fmt, ...)
{
	struct rmh_endpoint *ep = f->ep;
	char		 msg[192];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	ep->fetch = NULL;
	rmh_rows_clear(ep);
	rmh_fail_list(ep, &f->waiters, err, msg);
	rmh_fetch_free(f);
	rmh_flush(ep);		/* polls that came meanwhile */
}

static void
rmh_page(struct rmh_fetch *f)
{
	struct rmh_endpoint *ep = f->ep;
	char		 path[1024];

	snprintf(path, sizeof path, "/api/queues/%s?page=%ld&page_size=%d"
	    "&sort=name&columns=" RMH_COLUMNS, ep->vpath, f->page,
	    rabbitmq_http_page_size);
	ep->requests++;
	f->req = httpc_request(ep->h, "GET", path, NULL, NULL, rmh_page_done,
	    f);
	if (f->req == NULL)
		rmh_fetch_fail(f, -AS_EINVAL, "cannot start GET %s", path);
}

static double
rmh_number(const cJSON *o, const char *key, int *found)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
	    v->valuedouble < 0) {
		if (found != NULL)
			*found = 0;
		return (0);
	}
	return (v->valuedouble);
}

/* The rate of message_stats.<what>.rate, 0 when absent. */
static double
rmh_rate(const cJSON *item, const char *what)
{
	const cJSON	*ms, *d;

	ms = cJSON_GetObjectItemCaseSensitive(item, "message_stats");
	d = cJSON_GetObjectItemCaseSensitive(ms, what);
	return (rmh_number(d, "rate", NULL));
}

/*
 * Pure: appends the rows of one page to f and returns the page count, or
 * -1 with the reason in err.
 */
static long
rmh_parse_page(struct rmh_fetch *f, const char *body, size_t len, char *err,
    size_t errlen)
{
	const cJSON	*items, *item, *name, *pc;
	struct rmh_row	*row;
	cJSON		*j;
	long		 pages = -1;
	int		 found;

	if ((j = cJSON_ParseWithLength(body, len)) == NULL) {
		snprintf(err, errlen, "the queue listing is not JSON");
		return (-1);
	}
	items = cJSON_GetObjectItemCaseSensitive(j, "items");
	pc = cJSON_GetObjectItemCaseSensitive(j, "page_count");
	if (!cJSON_IsArray(items) || !cJSON_IsNumber(pc) ||
	    !(pc->valuedouble >= 0) || pc->valuedouble > 1e9) {
		snprintf(err, errlen, "the queue listing has no items or "
		    "page_count");
		goto out;
	}
	cJSON_ArrayForEach(item, items) {
		name = cJSON_GetObjectItemCaseSensitive(item, "name");
		if (!cJSON_IsString(name) || name->valuestring == NULL)
			continue;
		if (f->nrows == f->cap) {
			f->cap = f->cap > 0 ? f->cap * 2 : 64;
			f->rows = xrealloc(f->rows, f->cap * sizeof *f->rows);
		}
		row = &f->rows[f->nrows++];
		memset(row, 0, sizeof *row);
		row->name = xstrdup(name->valuestring);
		found = 1;
		row->ready = rmh_number(item, "messages_ready", &found);
		row->unacked = rmh_number(item, "messages_unacknowledged",
		    &found);
		row->has_stats = found;
		row->consumers = rmh_number(item, "consumers", NULL);
		row->publish_rate = rmh_rate(item, "publish_details");
		row->deliver_rate = rmh_rate(item, "deliver_get_details");
	}
	pages = (long)pc->valuedouble;
out:
	cJSON_Delete(j);
	return (pages);
}

static int
rmh_row_cmp(const void *a, const void *b)
{
	return (strcmp(((const struct rmh_row *)a)->name,
	    ((const struct rmh_row *)b)->name));
}

/* Answers one poll from the endpoint's last listing. */
static void
rmh_answer(struct rmh_endpoint *ep, struct rmh_scaler *s)
{
	struct scaler_result *res = &s->later.res;
	struct rmh_row	 key, *row;

	key.name = s->queue;
	row = ep->nrows > 0 ? bsearch(&key, ep->rows, ep->nrows,
	    sizeof *ep->rows, rmh_row_cmp) : NULL;
	if (row == NULL)
		rabbitmq_result_error(res, -AS_ENOTFOUND, ep->name,
		    "queue %.64s not found in vhost %.64s", s->queue,
		    ep->addr.vhost);
	else if (!row->has_stats)
		rabbitmq_result_error(res, -AS_EAGAIN, ep->name,
		    "queue %.64s has no statistics yet (new queue, or "
		    "statistics disabled on the broker)", s->queue);
	else {
		res->ready = row->ready;
		res->in_flight = row->unacked;
		res->consumers = row->consumers;
		res->publish_rate = row->publish_rate;
		res->deliver_rate = row->deliver_rate;
		res->has_rates = 1;
	}
	rmh_later(s);
}

/*
 * The listing is complete: it becomes the endpoint's last listing, and
 * each waiting pool looks its queue up in it.
 */
static void
rmh_fetch_finish(struct rmh_fetch *f)
{
	struct rmh_endpoint *ep = f->ep;
	struct rmh_scaler *s;

	if (f->nrows > 1)
		qsort(f->rows, f->nrows, sizeof *f->rows, rmh_row_cmp);
	rmh_rows_clear(ep);
	ep->rows = f->rows;
	ep->nrows = f->nrows;
	ep->rows_at = f->started;
	f->rows = NULL;
	f->nrows = 0;
	while ((s = TAILQ_FIRST(&f->waiters)) != NULL) {
		TAILQ_REMOVE(&f->waiters, s, wentry);
		rmh_answer(ep, s);
	}
	ep->fetch = NULL;
	rmh_fetch_free(f);
	rmh_flush(ep);		/* polls that came meanwhile */
}

static void
rmh_page_done(const struct httpc_response *resp, void *arg)
{
	struct rmh_fetch *f = arg;
	struct rmh_endpoint *ep = f->ep;
	char		 err[160];
	long		 pages;

	f->req = NULL;
	if (ep == NULL) {		/* the endpoint went away */
		rmh_fetch_free(f);
		return;
	}
	if (resp->err != 0) {
		if (resp->code == 401)
			rmh_fetch_fail(f, -AS_EAUTH, "the management API "
			    "refused the credentials of user %.64s (%s)",
			    ep->user, resp->message);
		else if (resp->code == 404)
			rmh_fetch_fail(f, -AS_ENOTFOUND, "vhost %.64s not "
			    "found (%s)", ep->addr.vhost, resp->message);
		else if (resp->code == 403)
			rmh_fetch_fail(f, -AS_EFORBIDDEN, "user %.64s may not "
			    "list vhost %.64s (%s)", ep->user, ep->addr.vhost,
			    resp->message);
		else
			rmh_fetch_fail(f, resp->err, "%s", resp->message);
		return;
	}
	if ((pages = rmh_parse_page(f, resp->body, resp->body_len, err,
	    sizeof err)) < 0) {
		rmh_fetch_fail(f, -AS_EPROTO, "%s", err);
		return;
	}
	if (f->page < pages && f->page < RMH_PAGES_MAX) {
		f->page++;
		rmh_page(f);
		return;
	}
	rmh_fetch_finish(f);
}

/* Endpoints. */

static void	 rmh_endpoint_put(struct rmh_endpoint *);

static struct rmh_endpoint *
rmh_endpoint_get(struct ev_loop *loop, const struct rabbitmq_addr *addr,
    const struct scaler_source *src, char *err, size_t errlen)
{
	struct httpc_options ho;
	struct rmh_endpoint *ep;
	const char	*user = rabbitmq_user(src);
	const char	*ca = rabbitmq_nonempty(src->ca_file);
	int		 insecure = src->insecure_skip_verify != 0;
	char		 base[320];

	LIST_FOREACH(ep, &rmh_endpoints, entry) {
		if (ep->loop == loop && ep->addr.port == addr->port &&
		    ep->addr.tls == addr->tls &&
		    strcmp(ep->addr.host, addr->host) == 0 &&
		    strcmp(ep->addr.vhost, addr->vhost) == 0 &&
		    strcmp(ep->user, user) == 0 &&
		    scaler_secret_same(&ep->secret_src, src) &&
		    rabbitmq_same(ep->ca_file, ca) &&
		    ep->insecure == insecure) {
			ep->refs++;
			return (ep);
		}
	}

	ep = xcalloc(1, sizeof *ep);
	ep->loop = loop;
	ep->addr = *addr;
	rabbitmq_endpoint_name(addr, ep->name, sizeof ep->name);
	rmh_escape(ep->vpath, sizeof ep->vpath, addr->vhost);
	ep->user = xstrdup(user);
	scaler_secret_set(&ep->secret_src, src);
	ep->ca_file = ca != NULL ? xstrdup(ca) : NULL;
	ep->insecure = insecure;
	ep->refs = 1;
	TAILQ_INIT(&ep->waiting);
	ev_timer_init(&ep->flush_timer, rmh_flush_cb, 0., 0.);
	ep->flush_timer.data = ep;

	snprintf(base, sizeof base, "%s://%s%s%s:%d", addr->scheme,
	    strchr(addr->host, ':') != NULL ? "[" : "", addr->host,
	    strchr(addr->host, ':') != NULL ? "]" : "", addr->port);
	memset(&ho, 0, sizeof ho);
	ho.base_url = base;
	ho.log_name = RMH_LOG;
	ho.ca_file = ca;
	ho.insecure_skip_verify = insecure;
	ho.qps = 50;
	ho.burst = 50;
	ho.timeout = src->command_timeout > 0 ? src->command_timeout :
	    RMH_TIMEOUT;
	ho.connect_timeout = src->connect_timeout > 0 ?
	    src->connect_timeout : RMH_CONNECT_TIMEOUT;
	ho.max_retries = -1;	/* the next tick is the retry */
	ho.max_body = 256 * 1024 * 1024;
	ho.message = rmh_message;
	ho.unauthorized = rmh_unauthorized;
	ho.arg = ep;
	if ((ep->h = httpc_new(loop, &ho, err, errlen)) == NULL) {
		ep->refs = 1;
		LIST_INSERT_HEAD(&rmh_endpoints, ep, entry);
		rmh_endpoint_put(ep);
		return (NULL);
	}
	LIST_INSERT_HEAD(&rmh_endpoints, ep, entry);
	return (ep);
}

/* Drops a ref; the last one cancels the listing and frees. */
static void
rmh_endpoint_put(struct rmh_endpoint *ep)
{
	if (--ep->refs > 0)
		return;
	LIST_REMOVE(ep, entry);
	ev_timer_stop(ep->loop, &ep->flush_timer);
	if (ep->fetch != NULL) {
		/* Its completion runs inside httpc_free and frees it. */
		ep->fetch->ep = NULL;
		ep->fetch = NULL;
	}
	httpc_free(ep->h);
	rmh_rows_clear(ep);
	as_secret_free(ep->secret, 0);
	as_secret_free(ep->login, 0);
	free(ep->user);
	scaler_secret_clear(&ep->secret_src);
	free(ep->ca_file);
	free(ep);
}

void
rabbitmq_http_stats(const struct scaler *base, struct rabbitmq_stats *st)
{
	const struct rmh_scaler *s = (const struct rmh_scaler *)base;

	st->transport = RABBITMQ_HTTP;
	st->sharing = s->ep->refs;
	st->requests = s->ep->requests;
	st->batches = s->ep->batches;
}

/* The vtable. */

static struct scaler *
rmh_create(struct ev_loop *loop, const struct scaler_source *src, char *err,
    size_t errlen)
{
	struct rmh_scaler *s;
	struct rabbitmq_addr addr;
	struct rmh_endpoint *ep;

	if (rabbitmq_parse_address(src->address, &addr, err, errlen) != 0)
		return (NULL);
	if (addr.transport != RABBITMQ_HTTP) {
		snprintf(err, errlen, "not an http(s):// address");
		return (NULL);
	}
	if ((ep = rmh_endpoint_get(loop, &addr, src, err, errlen)) == NULL)
		return (NULL);
	s = xcalloc(1, sizeof *s);
	s->base.type = &rabbitmq_http_type;
	s->loop = loop;
	s->queue = xstrdup(src->queue);
	s->ep = ep;
	scaler_later_init(&s->later, loop, &s->base);
	return (&s->base);
}

/*
 * Answers from a listing that started less than rabbitmq_http_reuse
 * seconds ago, or joins the listing running on the endpoint, or the next
 * one, started on the next loop turn.  The completion always runs on a
 * later loop turn.  Returns -AS_EAGAIN while a poll is pending.
 */
static int
rmh_poll(struct scaler *base, scaler_done_fn *fn, void *arg)
{
	struct rmh_scaler *s = (struct rmh_scaler *)base;
	struct rmh_endpoint *ep = s->ep;
	int		 rc;

	if ((rc = scaler_later_start(&s->later, fn, arg)) != 0)
		return (rc);
	if (ep->fetch == NULL && ep->rows != NULL &&
	    as_mono_now() - ep->rows_at < rabbitmq_http_reuse) {
		rmh_answer(ep, s);
		return (0);
	}
	s->pstate = RMH_POLL_WAITING;
	if (ep->fetch != NULL) {
		s->on = &ep->fetch->waiters;
		TAILQ_INSERT_TAIL(s->on, s, wentry);
		return (0);
	}
	s->on = &ep->waiting;
	TAILQ_INSERT_TAIL(s->on, s, wentry);
	if (!ev_is_active(&ep->flush_timer)) {
		ev_timer_set(&ep->flush_timer, 0., 0.);
		ev_timer_start(ep->loop, &ep->flush_timer);
	}
	return (0);
}

/* Completes a pending poll with -AS_ECANCELED before returning. */
static void
rmh_destroy(struct scaler *base)
{
	struct rmh_scaler *s = (struct rmh_scaler *)base;
	struct rmh_endpoint *ep = s->ep;
	struct scaler_result res;
	scaler_done_fn	*fn;
	void		*arg;
	char		 name[sizeof ep->name];

	fn = scaler_later_cancel(&s->later, &arg);
	if (s->pstate == RMH_POLL_WAITING)
		TAILQ_REMOVE(s->on, s, wentry);
	s->pstate = RMH_POLL_IDLE;
	as_strlcpy(name, ep->name, sizeof name);
	rmh_endpoint_put(ep);
	s->ep = NULL;
	if (fn != NULL) {
		memset(&res, 0, sizeof res);
		rabbitmq_result_error(&res, -AS_ECANCELED, name, "poll "
		    "canceled: source destroyed");
		fn(&s->base, &res, arg);
	}
	free(s->queue);
	free(s);
}

const struct scaler_type rabbitmq_http_type = {
	.name = "rabbitmq",
	.create = rmh_create,
	.poll = rmh_poll,
	.destroy = rmh_destroy,
};
