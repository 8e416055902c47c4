/*
 * sim_trace.c: the trace format, its parser and the generators of
 * sim_trace.h.  Pure apart from sim_trace_write's FILE.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/hash.h"
#include "sim_trace.h"

void
sim_rng_seed(struct sim_rng *r, uint64_t seed)
{
	r->s = seed;
}

uint64_t
sim_rng_next(struct sim_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (z ^ (z >> 31));
}

double
sim_rng_uniform(struct sim_rng *r)
{
	return ((double)(sim_rng_next(r) >> 11) * (1.0 / 9007199254740992.0));
}

double
sim_rng_exp(struct sim_rng *r, double mean)
{
	return (-mean * log(1.0 - sim_rng_uniform(r)));
}

double
sim_rng_lognormal(struct sim_rng *r, double median, double sigma)
{
	double	 u1 = 1.0 - sim_rng_uniform(r), u2 = sim_rng_uniform(r);
	double	 z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);

	return (median * exp(sigma * z));
}

size_t
sim_trace_add(struct sim_trace *tr, double t, const char *id, long parent,
    double work, double cpu)
{
	struct sim_task *k;

	if (tr->n == tr->cap) {
		tr->cap = tr->cap ? tr->cap * 2 : 256;
		tr->v = xrealloc(tr->v, tr->cap * sizeof *tr->v);
	}
	k = &tr->v[tr->n];
	memset(k, 0, sizeof *k);
	k->t = t;
	k->work = work;
	k->parent = parent;
	k->depth = parent >= 0 ? tr->v[parent].depth + 1 : 0;
	as_strlcpy(k->id, id, sizeof k->id);
	if (cpu > 0) {
		as_strlcpy(k->res_name[0], "cpu", sizeof k->res_name[0]);
		k->res_val[0] = cpu;
		k->nres = 1;
	}
	return (tr->n++);
}

void
sim_trace_free(struct sim_trace *tr)
{
	free(tr->v);
	memset(tr, 0, sizeof *tr);
}

void
sim_trace_write(const struct sim_trace *tr, FILE *f)
{
	const struct sim_task *k;
	size_t		 i;
	int		 j;

	for (i = 0; i < tr->n; i++) {
		k = &tr->v[i];
		fprintf(f, "{\"t\": %.3f, \"id\": \"%s\", \"parent\": ", k->t,
		    k->id);
		if (k->parent >= 0)
			fprintf(f, "\"%s\"", tr->v[k->parent].id);
		else
			fputs("null", f);
		fprintf(f, ", \"work\": %.3f", k->work);
		if (k->nres > 0) {
			fputs(", \"resources\": {", f);
			for (j = 0; j < k->nres; j++)
				fprintf(f, "%s\"%s\": %.15g", j ? ", " : "",
				    k->res_name[j], k->res_val[j]);
			fputc('}', f);
		}
		fputs("}\n", f);
	}
}

/* The parser: ids seen so far, by id. */
struct idrec {
	struct as_hash_entry link;
	long		 idx;
	char		 id[SIM_ID_MAX];
};

static int
number_field(const cJSON *o, const char *name, int required, double *out,
    char *what, size_t len)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (v == NULL) {
		if (required)
			snprintf(what, len, "%s: missing", name);
		return (required ? -1 : 0);
	}
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
	    v->valuedouble < 0 || v->valuedouble > 1e9) {
		snprintf(what, len, "%s: expected a number in [0, 1e9]", name);
		return (-1);
	}
	*out = v->valuedouble;
	return (0);
}

/* One line into tr; 0 or -1 with the reason in what. */
static int
parse_line(const char *line, size_t len, struct sim_trace *tr,
    struct as_hash *ids, char *what, size_t wlen)
{
	cJSON		*o;
	const cJSON	*f, *par, *res;
	struct idrec	*rec = NULL, *pr;
	struct sim_task	*k;
	double		 t = 0, work = 0;
	long		 parent = -1;
	size_t		 idx;
	int		 rc = -1;

	if ((o = cJSON_ParseWithLength(line, len)) == NULL) {
		snprintf(what, wlen, "not JSON");
		return (-1);
	}
	if (!cJSON_IsObject(o)) {
		snprintf(what, wlen, "expected a JSON object");
		goto out;
	}
	cJSON_ArrayForEach(f, o) {
		if (strcmp(f->string, "t") != 0 && strcmp(f->string, "id") &&
		    strcmp(f->string, "parent") && strcmp(f->string, "work") &&
		    strcmp(f->string, "resources")) {
			snprintf(what, wlen, "unknown field \"%.40s\" (t, id, "
			    "parent, work, resources)", f->string);
			goto out;
		}
	}
	if (number_field(o, "t", 1, &t, what, wlen) != 0 ||
	    number_field(o, "work", 1, &work, what, wlen) != 0)
		goto out;
	f = cJSON_GetObjectItemCaseSensitive(o, "id");
	if (!cJSON_IsString(f) || f->valuestring[0] == '\0' ||
	    strlen(f->valuestring) >= SIM_ID_MAX) {
		snprintf(what, wlen, "id: expected a string of 1 to %d bytes",
		    SIM_ID_MAX - 1);
		goto out;
	}
	if (as_hash_find_str(ids, f->valuestring) != NULL) {
		snprintf(what, wlen, "id \"%s\": a second task with this id",
		    f->valuestring);
		goto out;
	}
	par = cJSON_GetObjectItemCaseSensitive(o, "parent");
	if (par != NULL && !cJSON_IsNull(par)) {
		if (!cJSON_IsString(par)) {
			snprintf(what, wlen, "parent: expected a string or "
			    "null");
			goto out;
		}
		pr = AS_HASH_ITEM(as_hash_find_str(ids, par->valuestring),
		    struct idrec, link);
		if (pr == NULL) {
			snprintf(what, wlen, "parent \"%.60s\": no earlier "
			    "task has this id", par->valuestring);
			goto out;
		}
		parent = pr->idx;
		if (t < tr->v[parent].t) {
			snprintf(what, wlen, "t %.3f: before its parent's "
			    "%.3f", t, tr->v[parent].t);
			goto out;
		}
	}
	idx = sim_trace_add(tr, t, f->valuestring, parent, work, 0);
	k = &tr->v[idx];
	res = cJSON_GetObjectItemCaseSensitive(o, "resources");
	if (res != NULL) {
		if (!cJSON_IsObject(res)) {
			snprintf(what, wlen, "resources: expected an object of "
			    "numbers");
			tr->n--;
			goto out;
		}
		cJSON_ArrayForEach(f, res) {
			if (!cJSON_IsNumber(f) || f->valuedouble < 0 ||
			    !isfinite(f->valuedouble) || k->nres >= SIM_MAX_RES ||
			    strlen(f->string) >= sizeof k->res_name[0]) {
				snprintf(what, wlen, "resources.%.23s: expected "
				    "a number >= 0 (at most %d names of < 24 "
				    "bytes)", f->string, SIM_MAX_RES);
				tr->n--;
				goto out;
			}
			as_strlcpy(k->res_name[k->nres], f->string,
			    sizeof k->res_name[0]);
			k->res_val[k->nres++] = f->valuedouble;
		}
	}
	rec = xcalloc(1, sizeof *rec);
	rec->idx = (long)idx;
	as_strlcpy(rec->id, k->id, sizeof rec->id);
	as_hash_insert_str(ids, &rec->link);
	rc = 0;
out:
	cJSON_Delete(o);
	return (rc);
}

int
sim_trace_parse(const char *buf, size_t len, struct sim_trace *out,
    char *err, size_t errlen)
{
	struct as_hash	 ids;
	struct as_hash_entry *e, *nx;
	const char	*p = buf, *end = buf + len, *nl;
	char		 what[200];
	size_t		 lineno = 0, n;
	int		 rc = 0;

	memset(out, 0, sizeof *out);
	as_hash_init_str(&ids, 0, AS_HASH_KEY_ARRAY,
	    AS_HASH_KEYOFF(struct idrec, link, id));
	while (p < end) {
		lineno++;
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' ' ||
		    p[n - 1] == '\t'))
			n--;
		if (n > 0 && p[0] != '#') {
			if (memchr(p, '\0', n) != NULL) {
				snprintf(what, sizeof what, "a NUL byte");
				rc = -1;
			} else
				rc = parse_line(p, n, out, &ids, what,
				    sizeof what);
			if (rc != 0) {
				snprintf(err, errlen, "line %zu: %s", lineno,
				    what);
				sim_trace_free(out);
				break;
			}
		}
		p = nl != NULL ? nl + 1 : end;
	}
	for (e = as_hash_first(&ids); e != NULL; e = nx) {
		nx = as_hash_next(&ids, e);
		free(AS_HASH_ITEM(e, struct idrec, link));
	}
	as_hash_fini(&ids);
	return (rc);
}

/* Generators. */

static const char *const gen_names[] = {
	"cascade", "diurnal", "onoff", "poisson", NULL
};

const char *const *
sim_gen_names(void)
{
	return (gen_names);
}

static void
dflt(double *v, double d)
{
	if (*v <= 0)
		*v = d;
}

int
sim_gen_defaults(const char *name, struct sim_gen_params *p)
{
	int	 cascade = strcmp(name, "cascade") == 0;

	if (!cascade && strcmp(name, "poisson") && strcmp(name, "onoff") &&
	    strcmp(name, "diurnal"))
		return (-1);
	dflt(&p->duration, 600);
	dflt(&p->rate, cascade ? 1.5 : strcmp(name, "onoff") == 0 ? 3 : 0.5);
	dflt(&p->on, 10);
	dflt(&p->off, cascade ? 140 : 110);
	dflt(&p->period, 600);
	dflt(&p->work, cascade ? 15 : 20);
	dflt(&p->work_sigma, 0.5);
	dflt(&p->spawn_p, 0.7);
	dflt(&p->fanout, 3);
	if (p->max_depth <= 0)
		p->max_depth = 3;
	return (0);
}

/* Children of task i, recursively (depth first, ids by path). */
static void
gen_children(struct sim_trace *tr, struct sim_rng *r,
    const struct sim_gen_params *p, size_t i)
{
	double	 pspawn, off, work;
	long	 k, nkids;
	size_t	 c;
	char	 id[SIM_ID_MAX];

	if (tr->v[i].depth >= p->max_depth)
		return;
	pspawn = p->spawn_p / (tr->v[i].depth + 1);
	if (sim_rng_uniform(r) >= pspawn)
		return;
	/* 1 + geometric with mean fanout - 1 */
	nkids = 1;
	while (nkids < 32 && sim_rng_uniform(r) < 1.0 - 1.0 / p->fanout)
		nkids++;
	for (k = 0; k < nkids; k++) {
		off = tr->v[i].work * (0.1 + 0.7 * sim_rng_uniform(r));
		work = sim_rng_lognormal(r, p->work, p->work_sigma);
		snprintf(id, sizeof id, "%.30s.%d", tr->v[i].id, (int)k);
		c = sim_trace_add(tr, tr->v[i].t + off, id, (long)i, work, 0);
		gen_children(tr, r, p, c);
	}
}

static int
by_time(const void *a, const void *b)
{
	const struct sim_task *x = a, *y = b;

	if (x->t != y->t)
		return (x->t < y->t ? -1 : 1);
	return (strcmp(x->id, y->id));
}

/*
 * Sorts by t and points every child at its parent again.  A generated id
 * is its parent's id, a dot and a number ("r3.0.1"), and a child comes
 * strictly after its parent (at least 0.1 x the parent's work later).
 */
static void
gen_sort(struct sim_trace *tr)
{
	struct as_hash	 ids;
	struct as_hash_entry *e, *nx;
	struct idrec	*rec;
	size_t		 i;
	char		 pid[SIM_ID_MAX], *dot;

	qsort(tr->v, tr->n, sizeof *tr->v, by_time);
	as_hash_init_str(&ids, 0, AS_HASH_KEY_ARRAY,
	    AS_HASH_KEYOFF(struct idrec, link, id));
	for (i = 0; i < tr->n; i++) {
		tr->v[i].parent = -1;
		as_strlcpy(pid, tr->v[i].id, sizeof pid);
		if ((dot = strrchr(pid, '.')) != NULL) {
			*dot = '\0';
			rec = AS_HASH_ITEM(as_hash_find_str(&ids, pid),
			    struct idrec, link);
			tr->v[i].parent = rec != NULL ? rec->idx : -1;
		}
		rec = xcalloc(1, sizeof *rec);
		rec->idx = (long)i;
		as_strlcpy(rec->id, tr->v[i].id, sizeof rec->id);
		as_hash_insert_str(&ids, &rec->link);
	}
	for (e = as_hash_first(&ids); e != NULL; e = nx) {
		nx = as_hash_next(&ids, e);
		free(AS_HASH_ITEM(e, struct idrec, link));
	}
	as_hash_fini(&ids);
}

int
sim_generate(const char *name, uint64_t seed,
    const struct sim_gen_params *pin, struct sim_trace *out)
{
	struct sim_gen_params p = *pin;
	struct sim_rng	 r;
	double		 t = 0, rate, cyc;
	size_t		 i;
	long		 n = 0;
	int		 cascade, onoff, diurnal;
	char		 id[SIM_ID_MAX];

	if (sim_gen_defaults(name, &p) != 0)
		return (-1);
	memset(out, 0, sizeof *out);
	sim_rng_seed(&r, seed);
	cascade = strcmp(name, "cascade") == 0;
	onoff = cascade || strcmp(name, "onoff") == 0;
	diurnal = strcmp(name, "diurnal") == 0;
	/*
	 * Thinning (Lewis and Shedler): candidates at the peak rate, each kept
	 * with rate(t) / peak.
	 */
	for (;;) {
		t += sim_rng_exp(&r, 1.0 / (diurnal ? 2 * p.rate : p.rate));
		if (t >= p.duration)
			break;
		if (onoff) {
			cyc = fmod(t, p.on + p.off);
			if (cyc >= p.on)
				continue;
		} else if (diurnal) {
			rate = p.rate * (1 + sin(2 * M_PI * t / p.period));
			if (sim_rng_uniform(&r) * 2 * p.rate >= rate)
				continue;
		}
		snprintf(id, sizeof id, "r%ld", n++);
		i = sim_trace_add(out, t, id, -1,
		    sim_rng_lognormal(&r, p.work, p.work_sigma), 0);
		if (cascade)
			gen_children(out, &r, &p, i);
	}
	gen_sort(out);
	return (0);
}
