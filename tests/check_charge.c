/*
 * check_charge.c: what a task is charged (charge.h).  Three tables: the
 * resource names Kubernetes accepts in a container and those it refuses
 * (case variants of the standard names above all); the charge of a task
 * against a pool's floor (the rule of issue 11: a task without requests,
 * or asking less, is charged the template); and the effective pod requests
 * of SandboxTemplates, worked out by hand as Kubernetes computes them.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "scheduler/charge.h"
#include "agentscaler/rt/common.h"
#include "scheduler/quantity.h"
#include "scheduler/config.h"
#include "util/testutil.h"

/* err NULL: accepted; else a substring of the refusal. */
static const struct {
	const char	*name;
	const char	*err;
} name_rows[] = {
	{ "cpu", NULL },
	{ "memory", NULL },
	{ "ephemeral-storage", NULL },
	{ "hugepages-2Mi", NULL },
	{ "hugepages-1Gi", NULL },
	{ "nvidia.com/gpu", NULL },
	{ "example.com/Foo_bar.1", NULL },
	{ "a.b-c.example/x", NULL },
	{ "CPU", "write \"cpu\"" },
	{ "Cpu", "write \"cpu\"" },
	{ "Memory", "write \"memory\"" },
	{ "EPHEMERAL-STORAGE", "write \"ephemeral-storage\"" },
	{ "gpu", "extended resources are <domain>/<name>" },
	{ "storage", "without a domain only cpu" },
	{ "pods", "without a domain only cpu" },
	{ "requests.cpu", "without a domain only cpu" },
	{ "HugePages-2Mi", "without a domain only cpu" },
	{ "hugepages-", "without a domain only cpu" },
	{ "hugepages-two", "without a domain only cpu" },
	{ "", "empty" },
	{ "a b", "not a Kubernetes resource name" },
	{ "NVIDIA.com/gpu", "lowercase DNS domain" },
	{ "nvidia.com/", "lowercase DNS domain" },
	{ "/gpu", "lowercase DNS domain" },
	{ "nvidia.com/-gpu", "lowercase DNS domain" },
	{ "nvidia.com/gpu/x", "lowercase DNS domain" },
	{ "-nvidia.com/gpu", "lowercase DNS domain" },
	{ "nvidia..com/gpu", "lowercase DNS domain" },
	{ "kubernetes.io/gpu", "Kubernetes' own" },
	{ "node.kubernetes.io/x", "Kubernetes' own" },
	{ "requests.nvidia.com/gpu", "Kubernetes' own" },
	{ "notkubernetes.io/x", NULL },
	{ "example.com/"
	    "a23456789012345678901234567890123456789012345678901234567890123",
	    NULL },
	{ "example.com/"
	    "a234567890123456789012345678901234567890123456789012345678901234",
	    "lowercase DNS domain" },
};

START_TEST(test_name_rows)
{
	char	 err[256] = "";
	int	 rc;

	rc = charge_name_check(name_rows[_i].name, err, sizeof err);
	if (name_rows[_i].err == NULL)
		ck_assert_msg(rc == 0, "%s: refused: %s", name_rows[_i].name,
		    err);
	else {
		ck_assert_msg(rc == -AS_EINVAL, "%s: accepted",
		    name_rows[_i].name);
		ck_assert_msg(strstr(err, name_rows[_i].err) != NULL,
		    "%s: %s", name_rows[_i].name, err);
	}
}
END_TEST

/* "cpu=500m,memory=1Gi" into r; returns the count. */
static size_t
res_parse(const char *spec, struct task_resource *r, size_t max)
{
	char	 buf[1024], *p, *save = NULL, *eq;
	size_t	 n = 0;

	if (spec == NULL || *spec == '\0')
		return (0);
	as_strlcpy(buf, spec, sizeof buf);
	for (p = strtok_r(buf, ",", &save); p != NULL;
	    p = strtok_r(NULL, ",", &save)) {
		ck_assert_uint_lt(n, max);
		eq = strchr(p, '=');
		ck_assert_ptr_nonnull(eq);
		*eq = '\0';
		as_strlcpy(r[n].name, p, sizeof r[n].name);
		ck_assert_int_eq(quantity_parse(eq + 1, &r[n].value), 0);
		n++;
	}
	return (n);
}

/* got equals want, in order, values within 1e-9 relative. */
static void
res_expect(const struct task_resource *got, size_t n, const char *want,
    const char *what)
{
	struct task_resource w[2 * TASK_MAX_RESOURCES];
	size_t	 i, nw = res_parse(want, w, AS_ARRAY_SIZE(w));

	ck_assert_msg(n == nw, "%s: %zu resources, want %zu (%s)", what, n,
	    nw, want);
	for (i = 0; i < n; i++) {
		ck_assert_msg(strcmp(got[i].name, w[i].name) == 0,
		    "%s: [%zu] %s, want %s", what, i, got[i].name, w[i].name);
		ck_assert_msg(fabs(got[i].value - w[i].value) <= 1e-9 *
		    fmax(1, w[i].value), "%s: %s %.17g, want "
		    "%.17g", what, got[i].name, got[i].value, w[i].value);
	}
}

/* want NULL: refused (too many names). */
static const struct {
	const char	*what;
	const char	*req;
	const char	*floor;
	const char	*want;
} charge_rows[] = {
	{ "no requests: charged the template", "", "cpu=1", "cpu=1" },
	{ "asking less is charged the template", "cpu=100m", "cpu=1",
	    "cpu=1" },
	{ "asking more is charged as asked", "cpu=2", "cpu=1", "cpu=2" },
	{ "exactly the template", "cpu=1", "cpu=1", "cpu=1" },
	{ "the floor's other names are added after the task's",
	    "nvidia.com/gpu=1,memory=1Gi", "cpu=1,memory=2Gi",
	    "nvidia.com/gpu=1,memory=2Gi,cpu=1" },
	{ "per resource: more of one, less of another", "cpu=3,memory=1Mi",
	    "cpu=1,memory=1Gi", "cpu=3,memory=1Gi" },
	{ "no floor: as asked", "cpu=100m", "", "cpu=100m" },
	{ "neither: nothing", "", "", "" },
	{ "zero asked is charged the template", "cpu=0", "cpu=250m",
	    "cpu=250m" },
	{ "16 names fit", "a.io/r0=1,a.io/r1=1,a.io/r2=1,a.io/r3=1,"
	    "a.io/r4=1,a.io/r5=1,a.io/r6=1,a.io/r7=1,a.io/r8=1,a.io/r9=1,"
	    "a.io/r10=1,a.io/r11=1,a.io/r12=1,a.io/r13=1,a.io/r14=1",
	    "cpu=1,a.io/r0=2", "a.io/r0=2,a.io/r1=1,a.io/r2=1,a.io/r3=1,"
	    "a.io/r4=1,a.io/r5=1,a.io/r6=1,a.io/r7=1,a.io/r8=1,a.io/r9=1,"
	    "a.io/r10=1,a.io/r11=1,a.io/r12=1,a.io/r13=1,a.io/r14=1,cpu=1" },
	{ "17 names do not", "a.io/r0=1,a.io/r1=1,a.io/r2=1,a.io/r3=1,"
	    "a.io/r4=1,a.io/r5=1,a.io/r6=1,a.io/r7=1,a.io/r8=1,a.io/r9=1,"
	    "a.io/r10=1,a.io/r11=1,a.io/r12=1,a.io/r13=1,a.io/r14=1,"
	    "a.io/r15=1", "cpu=1", NULL },
};

START_TEST(test_charge_rows)
{
	struct task_resource req[TASK_MAX_RESOURCES], fl[TASK_MAX_RESOURCES];
	struct task_resource out[TASK_MAX_RESOURCES];
	size_t	 nreq, nfl;
	int	 n;

	nreq = res_parse(charge_rows[_i].req, req, AS_ARRAY_SIZE(req));
	nfl = res_parse(charge_rows[_i].floor, fl, AS_ARRAY_SIZE(fl));
	n = charge_task(req, nreq, fl, nfl, out);
	if (charge_rows[_i].want == NULL) {
		ck_assert_int_eq(n, -AS_EINVAL);
		return;
	}
	ck_assert_msg(n >= 0, "%s: refused", charge_rows[_i].what);
	res_expect(out, (size_t)n, charge_rows[_i].want,
	    charge_rows[_i].what);
}
END_TEST

#define TPL(spec) "{\"spec\":{\"podTemplate\":{\"spec\":" spec "}}}"
#define CT(name, res) "{\"name\":\"" name "\",\"image\":\"i\"," \
	"\"resources\":" res "}"
#define SIDECAR(name, res) "{\"name\":\"" name "\",\"image\":\"i\"," \
	"\"restartPolicy\":\"Always\",\"resources\":" res "}"

/* want NULL: refused, err holds errsub. */
static const struct {
	const char	*what;
	const char	*tmpl;
	const char	*want;
	const char	*errsub;
} tpl_rows[] = {
	{ "one container", TPL("{\"containers\":[" CT("a",
	    "{\"requests\":{\"cpu\":\"1\",\"memory\":\"512Mi\"}}") "]}"),
	    "cpu=1,memory=512Mi", NULL },
	{ "containers add up", TPL("{\"containers\":[" CT("a",
	    "{\"requests\":{\"cpu\":\"500m\"}}") "," CT("b",
	    "{\"requests\":{\"cpu\":\"250m\",\"memory\":\"1Gi\"}}") "]}"),
	    "cpu=750m,memory=1Gi", NULL },
	{ "requests default to limits", TPL("{\"containers\":[" CT("a",
	    "{\"limits\":{\"cpu\":\"2\",\"nvidia.com/gpu\":1}}") "]}"),
	    "cpu=2,nvidia.com/gpu=1", NULL },
	{ "a request below its limit counts, not the limit",
	    TPL("{\"containers\":[" CT("a", "{\"requests\":{\"cpu\":\"1\"},"
	    "\"limits\":{\"cpu\":\"4\",\"memory\":\"1Gi\"}}") "]}"),
	    "cpu=1,memory=1Gi", NULL },
	{ "an init container larger than the app wins",
	    TPL("{\"containers\":[" CT("a", "{\"requests\":{\"cpu\":\"1\","
	    "\"memory\":\"1Gi\"}}") "],\"initContainers\":[" CT("i",
	    "{\"requests\":{\"cpu\":\"2\"}}") "]}"),
	    "cpu=2,memory=1Gi", NULL },
	{ "init containers take the max, not the sum",
	    TPL("{\"containers\":[" CT("a", "{\"requests\":{\"cpu\":\"1\"}}")
	    "],\"initContainers\":[" CT("i", "{\"requests\":{\"cpu\":"
	    "\"1500m\"}}") "," CT("j", "{\"requests\":{\"cpu\":\"1200m\"}}")
	    "]}"), "cpu=1500m", NULL },
	/* app 1 + sidecar 0.5 = 1.5; init i (before the sidecar) 2 */
	{ "a sidecar adds to the app", TPL("{\"containers\":[" CT("a",
	    "{\"requests\":{\"cpu\":\"1\"}}") "],\"initContainers\":[" CT("i",
	    "{\"requests\":{\"cpu\":\"2\"}}") "," SIDECAR("s",
	    "{\"requests\":{\"cpu\":\"500m\"}}") "]}"), "cpu=2", NULL },
	/* init i runs beside the sidecar started before it: 2 + 0.5 */
	{ "an init container after a sidecar counts with it",
	    TPL("{\"containers\":[" CT("a", "{\"requests\":{\"cpu\":\"1\"}}")
	    "],\"initContainers\":[" SIDECAR("s", "{\"requests\":{\"cpu\":"
	    "\"500m\"}}") "," CT("i", "{\"requests\":{\"cpu\":\"2\"}}") "]}"),
	    "cpu=2500m", NULL },
	{ "overhead is added", TPL("{\"containers\":[" CT("a",
	    "{\"requests\":{\"cpu\":\"1\"}}") "],\"overhead\":{\"cpu\":"
	    "\"100m\"}}"), "cpu=1100m", NULL },
	{ "no requests anywhere", TPL("{\"containers\":[{\"name\":\"a\","
	    "\"image\":\"i\"}]}"), "", NULL },
	{ "no podTemplate.spec", "{\"spec\":{\"podTemplate\":{}}}", NULL,
	    "no spec.podTemplate.spec" },
	{ "not even a spec", "{}", NULL, "no spec.podTemplate.spec" },
	{ "a bad quantity", TPL("{\"containers\":[" CT("a",
	    "{\"requests\":{\"cpu\":\"lots\"}}") "]}"), NULL,
	    "container a: \"cpu\": not a quantity" },
	{ "a bad name", TPL("{\"containers\":[" CT("a",
	    "{\"requests\":{\"CPU\":\"1\"}}") "]}"), NULL,
	    "container a: \"CPU\": not a Kubernetes resource name" },
};

START_TEST(test_template_rows)
{
	struct task_resource out[TASK_MAX_RESOURCES];
	cJSON	*obj;
	size_t	 n = 99;
	char	 err[256] = "";
	int	 rc;

	obj = cJSON_Parse(tpl_rows[_i].tmpl);
	ck_assert_msg(obj != NULL, "%s: bad test JSON", tpl_rows[_i].what);
	rc = charge_template_requests(obj, out, &n, err, sizeof err);
	cJSON_Delete(obj);
	if (tpl_rows[_i].want == NULL) {
		ck_assert_int_eq(rc, -AS_EINVAL);
		ck_assert_msg(strstr(err, tpl_rows[_i].errsub) != NULL,
		    "%s: %s", tpl_rows[_i].what, err);
		ck_assert_uint_eq(n, 0);
		return;
	}
	ck_assert_msg(rc == 0, "%s: %s", tpl_rows[_i].what, err);
	res_expect(out, n, tpl_rows[_i].want, tpl_rows[_i].what);
}
END_TEST

/* More names than a claim's annotation holds: refused, not cut. */
START_TEST(test_template_too_many)
{
	struct task_resource out[TASK_MAX_RESOURCES];
	struct as_buf b = { NULL, 0, 0 };
	cJSON	*obj;
	size_t	 n;
	char	 err[256] = "";
	int	 i;

	as_buf_printf(&b, "{\"spec\":{\"podTemplate\":{\"spec\":{"
	    "\"containers\":[{\"name\":\"a\",\"resources\":{\"requests\":{");
	for (i = 0; i <= TASK_MAX_RESOURCES; i++)
		as_buf_printf(&b, "%s\"x.io/r%d\":\"1\"", i ? "," : "", i);
	as_buf_printf(&b, "}}}]}}}}");
	obj = cJSON_Parse(b.p);
	free(b.p);
	ck_assert_ptr_nonnull(obj);
	ck_assert_int_eq(charge_template_requests(obj, out, &n, err,
	    sizeof err), -AS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "more than 16"));
	cJSON_Delete(obj);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("charge");
	TCase	*tc = tcase_create("charge");

	tcase_add_loop_test(tc, test_name_rows, 0,
	    (int)AS_ARRAY_SIZE(name_rows));
	tcase_add_loop_test(tc, test_charge_rows, 0,
	    (int)AS_ARRAY_SIZE(charge_rows));
	tcase_add_loop_test(tc, test_template_rows, 0,
	    (int)AS_ARRAY_SIZE(tpl_rows));
	tcase_add_test(tc, test_template_too_many);
	suite_add_tcase(s, tc);
	return (tu_run_suite(s));
}
