/*
 * secret_store.c: broker credentials of CRD-mode pools, read from Secrets
 * through the API (secret_store.h says what is served when).  One entry per
 * Secret ("ns/name") in a hash table; each holds the decoded keys of the
 * last good read, when that was, and the read in flight if any.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "agentscaler/rt/hash.h"
#include "agentscaler/k8s/k8s.h"
#include "agentscaler/rt/log.h"
#include "agentscaler/rt/prom.h"
#include "agentscaler/k8s/secret_store.h"

#define SS_LOG		"secrets"
#define SS_BUCKETS	1024	/* at first; the table grows */
/* Seconds between reads of a Secret that could not be read. */
#define SS_RETRY	1.0
/* Seconds a connect waits for a read before the last copy serves. */
#define SS_WAIT		3.0

enum ss_result { SS_OK, SS_NOT_FOUND, SS_FORBIDDEN, SS_FAILED, SS_NRESULTS };
static const char *const ss_result_names[SS_NRESULTS] = {
	"ok", "not_found", "forbidden", "failed"
};

struct ss_entry {
	struct as_hash_entry	 link;		/* as_hash_str(id) */
	struct secret_store	*st;
	char			*id;		/* ns/name */
	char			*ns;
	char			*name;
	char			**keys;		/* of the last good read */
	char			**vals;
	size_t			 n;
	int			 have;		/* a copy to serve */
	double			 copy_at;	/* its read started then */
	double			 tried_at;	/* the last read started */
	uint64_t		 gen;		/* the last config naming it */
	struct k8s_req		*req;		/* in flight */
	char			 msg[224];	/* why nothing is served */
	enum ss_result		 last;
};

struct secret_store {
	struct k8s_client	*k8s;
	uint64_t		 gen;		/* of the config being applied */
	struct as_hash		 tab;
	uint64_t		 reads[SS_NRESULTS];
};

static void
ss_values_clear(struct ss_entry *e)
{
	size_t	 i;

	for (i = 0; i < e->n; i++) {
		free(e->keys[i]);
		as_secret_free(e->vals[i], 0);
	}
	free(e->keys);
	free(e->vals);
	e->keys = e->vals = NULL;
	e->n = 0;
	e->have = 0;
}

static void
ss_entry_free(struct ss_entry *e)
{
	ss_values_clear(e);
	free(e->id);
	free(e->ns);
	free(e->name);
	free(e);
}

/* Takes the data of a Secret object; 0, or -1 with the reason in e->msg. */
static int
ss_take(struct ss_entry *e, const char *body)
{
	cJSON		*o, *data, *it;
	char		**keys, **vals, *v;
	size_t		 n = 0, len, cap;

	if ((o = cJSON_Parse(body)) == NULL) {
		snprintf(e->msg, sizeof e->msg, "Secret %s: the API server's "
		    "answer is not JSON", e->id);
		return (-1);
	}
	data = cJSON_GetObjectItemCaseSensitive(o, "data");
	cap = (size_t)cJSON_GetArraySize(data);
	keys = xcalloc(cap + 1, sizeof *keys);
	vals = xcalloc(cap + 1, sizeof *vals);
	cJSON_ArrayForEach(it, data) {
		if (!cJSON_IsString(it) || it->string == NULL)
			continue;
		v = as_base64_decode(it->valuestring, strlen(it->valuestring),
		    &len);
		/* A password is a string: no NUL inside, nothing decoded. */
		if (v == NULL || memchr(v, '\0', len) != NULL) {
			as_secret_free(v, len);
			continue;
		}
		keys[n] = xstrdup(it->string);
		vals[n++] = v;
	}
	as_json_wipe(o);	/* the base64 of the values */
	cJSON_Delete(o);
	ss_values_clear(e);
	e->keys = keys;
	e->vals = vals;
	e->n = n;
	e->have = 1;
	e->msg[0] = '\0';
	return (0);
}

static void
ss_read_done(const struct k8s_response *r, void *arg)
{
	struct ss_entry		*e = arg;
	struct secret_store	*st = e->st;
	enum ss_result		 res;
	char			 prev[sizeof e->msg];

	e->req = NULL;
	if (r->err == -AS_ECANCELED)
		return;
	as_strlcpy(prev, e->msg, sizeof prev);
	if (r->err == 0) {
		res = ss_take(e, r->body) == 0 ? SS_OK : SS_FAILED;
		if (res == SS_OK) {
			if (e->last != SS_OK)
				log_info(SS_LOG, "Secret %s read (%zu keys)",
				    e->id, e->n);
			e->copy_at = e->tried_at;
		}
	} else if (r->code == 404) {
		res = SS_NOT_FOUND;
		ss_values_clear(e);
		snprintf(e->msg, sizeof e->msg, "Secret %s not found", e->id);
	} else if (r->code == 403) {
		res = SS_FORBIDDEN;
		ss_values_clear(e);
		snprintf(e->msg, sizeof e->msg, "agentscaler may not read "
		    "Secret %s (forbidden: the chart's secretAccess grants "
		    "`get` on Secrets only in the namespaces it lists)", e->id);
	} else {
		/* The API is out of reach: the last copy goes on serving. */
		res = SS_FAILED;
		snprintf(e->msg, sizeof e->msg, "cannot read Secret %s: %s",
		    e->id, r->message);
	}
	st->reads[res]++;
	if (res != SS_OK && strcmp(prev, e->msg) != 0)
		log_warn(SS_LOG, "%s%s", e->msg, e->have ?
		    "; the last copy read goes on serving" : "");
	e->last = res;
}

static void
ss_read(struct ss_entry *e)
{
	char	 path[600];

	if (e->req != NULL)
		return;
	e->tried_at = as_mono_now();
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/secrets/%s",
	    e->ns, e->name);
	e->req = k8s_client_request(e->st->k8s, "GET", path, NULL, NULL,
	    ss_read_done, e);
	if (e->req == NULL)
		snprintf(e->msg, sizeof e->msg, "cannot read Secret %s: the "
		    "request was refused", e->id);
}

/*
 * Names and namespaces reach a URL path: DNS-1123 subdomains only (labels
 * of [a-z0-9-] that start and end alphanumeric), so no "." or ".." either.
 */
static int
ss_valid_name(const char *s, size_t len)
{
	size_t	 i;
	int	 an, prev_an = 0;

	if (len == 0 || len > 253)
		return (0);
	for (i = 0; i < len; i++) {
		an = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
		if (!an && s[i] != '-' && s[i] != '.')
			return (0);
		/* A label starts and ends alphanumeric. */
		if (s[i] == '.' && !prev_an)
			return (0);
		if (s[i] == '-' && (i == 0 || s[i - 1] == '.'))
			return (0);
		prev_an = an;
	}
	return (prev_an);
}

static struct ss_entry *
ss_get(struct secret_store *st, const char *ns, size_t nslen,
    const char *name, size_t namelen)
{
	struct ss_entry	*e;
	char		 id[520];

	if (!ss_valid_name(ns, nslen) || !ss_valid_name(name, namelen))
		return (NULL);
	snprintf(id, sizeof id, "%.*s/%.*s", (int)nslen, ns, (int)namelen,
	    name);
	if ((e = AS_HASH_ITEM(as_hash_find_str(&st->tab, id), struct ss_entry,
	    link)) != NULL)
		return (e);
	e = xcalloc(1, sizeof *e);
	e->st = st;
	e->id = xstrdup(id);
	e->ns = xstrndup(ns, nslen);
	e->name = xstrndup(name, namelen);
	e->last = SS_OK;
	as_hash_insert_str(&st->tab, &e->link);
	return (e);
}

void
secret_store_want(struct secret_store *st, const char *ns, const char *name)
{
	struct ss_entry	*e;

	if ((e = ss_get(st, ns, strlen(ns), name, strlen(name))) == NULL)
		return;
	e->gen = st->gen;
	if (!e->have && e->req == NULL)
		ss_read(e);
}

int
secret_store_lookup(void *arg, const char *ref, double since, char **out,
    char *err, size_t errlen)
{
	struct secret_store *st = arg;
	struct ss_entry	*e;
	const char	*s1, *s2, *key;
	double		 now = as_mono_now();
	size_t		 i;

	*out = NULL;
	if ((s1 = strchr(ref, '/')) == NULL ||
	    (s2 = strchr(s1 + 1, '/')) == NULL ||
	    (e = ss_get(st, ref, (size_t)(s1 - ref), s1 + 1,
	    (size_t)(s2 - s1 - 1))) == NULL) {
		snprintf(err, errlen, "bad Secret reference");
		return (-AS_EINVAL);
	}
	key = s2 + 1;
	/*
	 * The copy serves when it was read (its read started) after since.
	 * Otherwise read it again, unless a read that failed is that recent
	 * (the API is failing: the last copy serves, or the failure is said).
	 */
	if (!(e->have && e->copy_at >= since)) {
		if (e->req == NULL && ((e->have && e->last == SS_OK) ||
		    e->tried_at == 0 || now - e->tried_at >= SS_RETRY))
			ss_read(e);
		/* Wait for the read, SS_WAIT at most when there is a copy. */
		if (e->req != NULL && (!e->have ||
		    now - e->tried_at < SS_WAIT)) {
			snprintf(err, errlen, "reading Secret %s through the "
			    "API", e->id);
			return (-AS_EAGAIN);
		}
	}
	if (!e->have) {
		as_strlcpy(err, e->msg[0] != '\0' ? e->msg : "Secret not read",
		    errlen);
		return (-AS_EAUTH);
	}
	for (i = 0; i < e->n; i++)
		if (strcmp(e->keys[i], key) == 0) {
			*out = xstrdup(e->vals[i]);
			return (0);
		}
	snprintf(err, errlen, "Secret %s has no key \"%.64s\"", e->id, key);
	return (-AS_EAUTH);
}

void
secret_store_begin(struct secret_store *st)
{
	st->gen++;
}

/* Forgets (and wipes) the Secrets no pool of the config names. */
void
secret_store_end(struct secret_store *st)
{
	struct as_hash_entry *l, *next;
	struct ss_entry	*e;

	for (l = as_hash_first(&st->tab); l != NULL; l = next) {
		next = as_hash_next(&st->tab, l);
		e = AS_HASH_ITEM(l, struct ss_entry, link);
		if (e->gen == st->gen)
			continue;
		as_hash_remove(&st->tab, l);
		if (e->req != NULL)	/* done runs now, cancelled */
			k8s_req_cancel(e->req);
		ss_entry_free(e);
	}
}

struct secret_store *
secret_store_new(struct k8s_client *k8s)
{
	struct secret_store *st = xcalloc(1, sizeof *st);

	st->k8s = k8s;
	as_hash_init_str(&st->tab, SS_BUCKETS, 0,
	    AS_HASH_KEYOFF(struct ss_entry, link, id));
	return (st);
}

void
secret_store_free(struct secret_store *st)
{
	struct as_hash_entry *l, *next;
	struct ss_entry	*e;

	if (st == NULL)
		return;
	for (l = as_hash_first(&st->tab); l != NULL; l = next) {
		next = as_hash_next(&st->tab, l);
		e = AS_HASH_ITEM(l, struct ss_entry, link);
		if (e->req != NULL)
			k8s_req_cancel(e->req);
		ss_entry_free(e);
	}
	as_hash_fini(&st->tab);
	free(st);
}

static const struct prom_def m_reads = { "agentscaler_secret_reads_total",
    PROM_COUNTER, "result", "CRD mode: Secrets read through the API for "
    "broker credentials, by result." };
static const struct prom_def m_secrets = { "agentscaler_secrets",
    PROM_GAUGE, "", "CRD mode: Secrets held for broker credentials." };

const struct prom_def *const secret_store_metric_defs[] = {
	&m_reads, &m_secrets, NULL
};

void
secret_store_metrics(const struct secret_store *st, struct prom *w)
{
	double	 v[SS_NRESULTS];
	size_t	 i;

	for (i = 0; i < SS_NRESULTS; i++)
		v[i] = st != NULL ? (double)st->reads[i] : 0;
	prom_family(w, &m_reads);
	prom_sample_each(w, NULL, "result", ss_result_names, v, SS_NRESULTS);
	prom_family(w, &m_secrets);
	prom_sample(w, NULL, st != NULL ? (double)as_hash_count(&st->tab) : 0);
}
