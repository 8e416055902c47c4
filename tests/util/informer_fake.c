/*
 * informer_fake.c: the fake informer of informer_fake.h.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentscaler/rt/common.h"
#include "informer_fake.h"

struct informer	*fake_inf_made[32];
int		 fake_inf_nmade, fake_inf_nlive;

static struct informer *
fake_new(struct k8s_client *kc, const struct informer_options *o,
    informer_fn *fn, void *arg, char *err, size_t errlen)
{
	struct informer	*i;

	(void)kc;
	(void)err;
	(void)errlen;
	ck_assert_int_lt(fake_inf_nmade, (int)AS_ARRAY_SIZE(fake_inf_made));
	i = xcalloc(1, sizeof *i);
	as_strlcpy(i->path, o->path, sizeof i->path);
	i->fn = fn;
	i->arg = arg;
	i->transform = o->transform;
	i->objs = cJSON_CreateArray();
	fake_inf_made[fake_inf_nmade++] = i;
	fake_inf_nlive++;
	return (i);
}

static void
fake_free(struct informer *i)
{
	int	 k;

	for (k = 0; k < fake_inf_nmade; k++)
		if (fake_inf_made[k] == i)
			fake_inf_made[k] = NULL;
	cJSON_Delete(i->objs);
	free(i);
	fake_inf_nlive--;
}

static const char *
str_at(const cJSON *o, const char *a, const char *b)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, a);

	v = cJSON_GetObjectItemCaseSensitive(v, b);
	return (cJSON_IsString(v) ? v->valuestring : "");
}

int
fake_inf_index(const struct informer *i, const char *ns, const char *name)
{
	const cJSON	*o;
	int		 k = 0;

	cJSON_ArrayForEach(o, i->objs) {
		if (strcmp(str_at(o, "metadata", "namespace"), ns) == 0 &&
		    strcmp(str_at(o, "metadata", "name"), name) == 0)
			return (k);
		k++;
	}
	return (-1);
}

static const cJSON *
fake_get(const struct informer *i, const char *ns, const char *name)
{
	int	 k = fake_inf_index(i, ns, name);

	return (k < 0 ? NULL : cJSON_GetArrayItem(i->objs, k));
}

static int
fake_synced(const struct informer *i)
{
	return (i->synced);
}

static void
fake_stats(const struct informer *i, struct informer_stats *st)
{
	memset(st, 0, sizeof *st);
	st->errors = st->failing = i->errors;
}

const struct informer_ops fake_inf_ops = {
	.informer_new = fake_new,
	.informer_free = fake_free,
	.informer_get = fake_get,
	.informer_synced = fake_synced,
	.informer_stats = fake_stats,
};

void
fake_inf_reset(void)
{
	fake_inf_nmade = fake_inf_nlive = 0;
}

cJSON *
fake_deploy(const char *ns, const char *name, int rv, long spec, long status)
{
	char	 buf[1024];
	cJSON	*o;

	snprintf(buf, sizeof buf, "{\"kind\":\"Deployment\",\"apiVersion\":"
	    "\"apps/v1\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\","
	    "\"resourceVersion\":\"%d\",\"uid\":\"u-%s\",\"labels\":{\"a\":"
	    "\"b\"},\"managedFields\":[{\"manager\":\"kubectl\"}]},\"spec\":"
	    "{\"replicas\":%ld,\"selector\":{},\"template\":{\"spec\":{}}},"
	    "\"status\":{\"replicas\":%ld,\"readyReplicas\":%ld,"
	    "\"conditions\":[]}}", name, ns, rv, name, spec, status, status);
	ck_assert_ptr_nonnull(o = cJSON_Parse(buf));
	return (o);
}

void
fake_inf_event(struct informer *i, enum informer_event ev, cJSON *obj)
{
	int	 k;

	if (i->transform != NULL)
		i->transform(obj, NULL);
	k = fake_inf_index(i, str_at(obj, "metadata", "namespace"),
	    str_at(obj, "metadata", "name"));
	if (ev == INFORMER_DELETED) {
		ck_assert_int_ge(k, 0);
		cJSON_DeleteItemFromArray(i->objs, k);
		i->fn(i, ev, obj, i->arg);
		cJSON_Delete(obj);
		return;
	}
	if (k >= 0)
		cJSON_ReplaceItemInArray(i->objs, k, obj);
	else
		cJSON_AddItemToArray(i->objs, obj);
	i->fn(i, ev, obj, i->arg);
}

void
fake_inf_sync(struct informer *i)
{
	i->synced = 1;
	i->fn(i, INFORMER_SYNCED, NULL, i->arg);
}
