/*
 * simulate_cli.c: `agentscaler simulate`, the command line of simulate.h:
 * reads or generates a trace, runs every policy on it, prints the table
 * (or JSON) and draws the picture (sim_png.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/json.h"
#include "config.h"
#include "sim_png.h"
#include "simulate.h"

#define MAX_POLICIES	32

static int
usage(void)
{
	fprintf(stderr,
	    "usage: agentscaler simulate (--trace FILE | --generate NAME)\n"
	    "    [--seed N] [--duration S] [--rate R] [--write-trace FILE]\n"
	    "    [--config FILE] [--policies LIST] [--static N,N,...]\n"
	    "    [--cold-median S] [--cold-sigma X] [--warm-bind S]\n"
	    "    [--grace S] [--kube-qps Q] [--replenish-delay S]\n"
	    "    [--json] [--png FILE]\n"
	    "generators: cascade, diurnal, onoff, poisson; policies:\n"
	    "predictive, rate (agentscaler dispatch, warmpool.c), scale\n"
	    "(agentscaler scale mode), keda (KEDA + HPA on a Deployment),\n"
	    "keda-pool (KEDA on the SandboxWarmPool), static-N\n");
	return (2);
}

static int
num(const char *flag, const char *v, double lo, double hi, double *out)
{
	char	*end;
	double	 d;

	errno = 0;
	d = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || !(d >= lo && d <= hi)) {
		fprintf(stderr, "agentscaler simulate: %s: expected a number "
		    "in [%g, %g], got \"%s\"\n", flag, lo, hi, v);
		return (-1);
	}
	*out = d;
	return (0);
}

/* Splits a comma list into policies (prefix "static-" for --static). */
static int
add_policies(const char *list, const char *prefix, struct sim_policy *v,
    size_t *n)
{
	char	*copy = xstrdup(list), *p, *next, name[40];
	int	 rc = 0;

	for (p = copy; p != NULL && *p != '\0'; p = next) {
		if ((next = strchr(p, ',')) != NULL)
			*next++ = '\0';
		snprintf(name, sizeof name, "%s%s", prefix, p);
		if (*n >= MAX_POLICIES || sim_policy_parse(name, &v[*n]) != 0) {
			fprintf(stderr, "agentscaler simulate: unknown policy "
			    "\"%s\" (or more than %d)\n", name, MAX_POLICIES);
			rc = -1;
			break;
		}
		(*n)++;
	}
	free(copy);
	return (rc);
}

static void
print_table(const struct sim_result *r, size_t n)
{
	size_t	 i;

	printf("%-12s %6s %5s %7s %7s %7s %6s %9s %9s %9s %5s %s\n",
	    "policy", "tasks", "rej", "p50_s", "p95_s", "p99_s", "warm%",
	    "busy_sbs", "idle_sbs", "total_sbs", "peak",
	    "quota(adm/def/rej)");
	for (i = 0; i < n; i++, r++)
		printf("%-12s %6zu %5zu %7.2f %7.2f %7.2f %6.1f %9.0f %9.0f "
		    "%9.0f %5ld %llu/%llu/%llu\n", r->policy.name,
		    r->started, r->rejected + r->dropped, r->p50, r->p95,
		    r->p99, r->started ? 100.0 * (double)r->warm /
		    (double)r->started : 0, r->busy, r->idle,
		    r->busy + r->idle, r->peak,
		    (unsigned long long)r->admitted,
		    (unsigned long long)r->deferred,
		    (unsigned long long)r->qrejected);
}

static const struct sim_result *
find(const struct sim_result *r, size_t n, const char *name)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcmp(r[i].policy.name, name) == 0)
			return (&r[i]);
	return (NULL);
}

/* The aim of issue 17, for the first claim policy against keda. */
static void
print_aim(const struct sim_result *r, size_t n)
{
	const struct sim_result *a, *k = find(r, n, "keda");
	const char	*names[] = { "predictive", "rate" };
	size_t		 i;

	for (i = 0; i < 2 && k != NULL; i++) {
		if ((a = find(r, n, names[i])) == NULL || a->started == 0)
			continue;
		if (a->started != k->started) {
			printf("%s vs keda: not comparable, %zu tasks ran "
			    "against %zu (the quota)\n", names[i], a->started,
			    k->started);
			continue;
		}
		printf("%s vs keda: p95 wait %.1fx lower (%.2f s vs %.2f s), "
		    "sandbox-seconds %.2fx, warm %.1f %%\n", names[i],
		    a->p95 > 0 ? k->p95 / a->p95 : 0, a->p95, k->p95,
		    (k->busy + k->idle) > 0 ? (a->busy + a->idle) /
		    (k->busy + k->idle) : 0, 100.0 * (double)a->warm /
		    (double)a->started);
	}
}

static void
print_json(const char *source, const struct sim_cluster *cl,
    const struct sim_result *r, size_t n)
{
	cJSON	*root = cJSON_CreateObject(), *arr, *o, *c;
	char	*s;
	size_t	 i;

	cJSON_AddStringToObject(root, "trace", source);
	c = cJSON_AddObjectToObject(root, "cluster");
	cJSON_AddNumberToObject(c, "coldMedian", cl->cold_median);
	cJSON_AddNumberToObject(c, "coldSigma", cl->cold_sigma);
	cJSON_AddNumberToObject(c, "warmBind", cl->warm_bind);
	cJSON_AddNumberToObject(c, "grace", cl->grace);
	cJSON_AddNumberToObject(c, "writeRTT", cl->write_rtt);
	cJSON_AddNumberToObject(c, "kubeQPS", cl->qps);
	cJSON_AddNumberToObject(c, "replenishDelay", cl->replenish_delay);
	cJSON_AddNumberToObject(c, "seed", (double)cl->seed);
	arr = cJSON_AddArrayToObject(root, "policies");
	for (i = 0; i < n; i++, r++) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "policy", r->policy.name);
		cJSON_AddNumberToObject(o, "tasks", (double)r->tasks);
		cJSON_AddNumberToObject(o, "started", (double)r->started);
		cJSON_AddNumberToObject(o, "rejected", (double)r->rejected);
		cJSON_AddNumberToObject(o, "dropped", (double)r->dropped);
		cJSON_AddNumberToObject(o, "waitP50", r->p50);
		cJSON_AddNumberToObject(o, "waitP95", r->p95);
		cJSON_AddNumberToObject(o, "waitP99", r->p99);
		cJSON_AddNumberToObject(o, "waitMean", r->mean);
		cJSON_AddNumberToObject(o, "waitMax", r->max);
		cJSON_AddNumberToObject(o, "warmHitRatio", r->started ?
		    (double)r->warm / (double)r->started : 0);
		cJSON_AddNumberToObject(o, "adoptedRatio", r->started ?
		    (double)r->adopted / (double)r->started : 0);
		cJSON_AddNumberToObject(o, "sandboxSecondsBusy", r->busy);
		cJSON_AddNumberToObject(o, "sandboxSecondsIdle", r->idle);
		cJSON_AddNumberToObject(o, "peakSandboxes", (double)r->peak);
		cJSON_AddNumberToObject(o, "end", r->end);
		c = cJSON_AddObjectToObject(o, "quota");
		cJSON_AddNumberToObject(c, "admitted", (double)r->admitted);
		cJSON_AddNumberToObject(c, "deferred", (double)r->deferred);
		cJSON_AddNumberToObject(c, "rejected", (double)r->qrejected);
		cJSON_AddItemToArray(arr, o);
	}
	s = as_json_print_free(root, NULL);
	printf("%s\n", s);
	free(s);
}

int
simulate_main(int argc, char **argv)
{
	struct sim_cluster cl;
	struct sim_gen_params gp;
	struct sim_trace tr = { NULL, 0, 0 };
	struct sim_policy pols[MAX_POLICIES];
	struct sim_result *res = NULL;
	struct config	*cfg = NULL;
	const struct pool_config *pool = NULL;
	const struct quota_config *quota = NULL;
	const char	*trace = NULL, *gen = NULL, *out = NULL, *cfgpath = NULL;
	const char	*policies = "predictive,rate,keda,keda-pool,scale";
	const char	*statics = "0,2,5,10,20,40", *png = NULL, *a, *v;
	char		 err[512], *buf;
	size_t		 npol = 0, len, i;
	double		 d;
	int		 json = 0, rc = 2, k;
	FILE		*f;

	sim_cluster_defaults(&cl);
	memset(&gp, 0, sizeof gp);
	for (k = 2; k < argc; k++) {
		a = argv[k];
		v = k + 1 < argc ? argv[k + 1] : NULL;
		if (strcmp(a, "--json") == 0) {
			json = 1;
			continue;
		}
		if (v == NULL || strncmp(a, "--", 2) != 0)
			return (usage());
		k++;
		if (strcmp(a, "--trace") == 0)
			trace = v;
		else if (strcmp(a, "--generate") == 0)
			gen = v;
		else if (strcmp(a, "--write-trace") == 0)
			out = v;
		else if (strcmp(a, "--config") == 0)
			cfgpath = v;
		else if (strcmp(a, "--policies") == 0)
			policies = v;
		else if (strcmp(a, "--static") == 0)
			statics = v;
		else if (strcmp(a, "--png") == 0)
			png = v;
		else if (strcmp(a, "--seed") == 0) {
			if (num(a, v, 0, 1e15, &d) != 0)
				return (2);
			cl.seed = (uint64_t)d;
		} else if (strcmp(a, "--duration") == 0) {
			if (num(a, v, 1, 1e7, &gp.duration) != 0)
				return (2);
		} else if (strcmp(a, "--rate") == 0) {
			if (num(a, v, 1e-6, 1e5, &gp.rate) != 0)
				return (2);
		} else if (strcmp(a, "--cold-median") == 0) {
			if (num(a, v, 0.001, 3600, &cl.cold_median) != 0)
				return (2);
		} else if (strcmp(a, "--cold-sigma") == 0) {
			if (num(a, v, 0, 3, &cl.cold_sigma) != 0)
				return (2);
		} else if (strcmp(a, "--warm-bind") == 0) {
			if (num(a, v, 0, 600, &cl.warm_bind) != 0)
				return (2);
		} else if (strcmp(a, "--grace") == 0) {
			if (num(a, v, 0, 3600, &cl.grace) != 0)
				return (2);
		} else if (strcmp(a, "--kube-qps") == 0) {
			if (num(a, v, 0.1, 1e5, &cl.qps) != 0)
				return (2);
		} else if (strcmp(a, "--replenish-delay") == 0) {
			if (num(a, v, 0, 3600, &cl.replenish_delay) != 0)
				return (2);
		} else
			return (usage());
	}
	if ((trace == NULL) == (gen == NULL))
		return (usage());
	if (gen != NULL && sim_generate(gen, cl.seed, &gp, &tr) != 0) {
		fprintf(stderr, "agentscaler simulate: unknown generator "
		    "\"%s\"\n", gen);
		return (2);
	}
	if (trace != NULL) {
		if ((buf = as_read_file(trace, 64 << 20, &len, err,
		    sizeof err)) == NULL) {
			fprintf(stderr, "agentscaler simulate: %s\n", err);
			return (2);
		}
		k = sim_trace_parse(buf, len, &tr, err, sizeof err);
		free(buf);
		if (k != 0) {
			fprintf(stderr, "agentscaler simulate: %s: %s\n", trace,
			    err);
			return (2);
		}
	}
	if (out != NULL) {
		if ((f = fopen(out, "w")) == NULL) {
			fprintf(stderr, "agentscaler simulate: %s: %s\n", out,
			    strerror(errno));
			goto out;
		}
		sim_trace_write(&tr, f);
		rc = fclose(f) == 0 ? 0 : 2;
		goto out;
	}
	if (cfgpath != NULL) {
		if (config_load(cfgpath, NULL, &cfg, err, sizeof err) != 0) {
			fprintf(stderr, "agentscaler simulate: %s\n", err);
			goto out;
		}
		for (i = 0; i < cfg->npools && pool == NULL; i++)
			if (cfg->pools[i].mode == POOL_MODE_DISPATCH)
				pool = &cfg->pools[i];
		if (pool == NULL && cfg->npools > 0)
			pool = &cfg->pools[0];
		if (pool != NULL)
			quota = config_quota_for(cfg, pool->ns);
	}
	if (add_policies(policies, "", pols, &npol) != 0 ||
	    add_policies(statics, "static-", pols, &npol) != 0)
		goto out;
	res = xcalloc(npol ? npol : 1, sizeof *res);
	for (i = 0; i < npol; i++)
		sim_run(&tr, &cl, &pols[i], pool, quota, &res[i]);
	if (json)
		print_json(trace != NULL ? trace : gen, &cl, res, npol);
	else {
		printf("trace %s: %zu tasks; cold start median %.2f s, warm "
		    "bind %.2f s, grace %.1f s, seed %llu\n",
		    trace != NULL ? trace : gen, tr.n, cl.cold_median,
		    cl.warm_bind, cl.grace, (unsigned long long)cl.seed);
		print_table(res, npol);
		print_aim(res, npol);
	}
	rc = 0;
	if (png != NULL && sim_png_write(png, res, npol, err,
	    sizeof err) != 0) {
		fprintf(stderr, "agentscaler simulate: %s\n", err);
		rc = 2;
	}
out:
	for (i = 0; res != NULL && i < npol; i++)
		sim_result_free(&res[i]);
	free(res);
	config_free(cfg);
	sim_trace_free(&tr);
	return (rc);
}
