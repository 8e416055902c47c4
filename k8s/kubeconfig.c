/*
 * kubeconfig.c: the kubeconfig file, parsed with libyaml's document API
 * (the whole node graph, then a walk over the fields we know).
 *
 * Why the document API: aliases come back as references to one node, never
 * expanded, so an alias bomb costs nothing, and our walk only descends into
 * the fixed shape of a Config (at most five levels), so even a cycle built
 * from an anchor inside its own node ends at the first type mismatch.  A
 * merge key ("<<") is followed one level when a key is not found directly,
 * as YAML 1.1 (and so client-go, through go-yaml) merges it.
 *
 * Behaviour that mirrors client-go, named where it happens:
 * k8s.io/client-go/tools/clientcmd/loader.go (ResolveLocalPaths: relative
 * paths against the file's directory, an exec command only when it has a
 * path separator; the KUBECONFIG merge), tools/clientcmd/validation.go (what
 * a usable context needs) and tools/clientcmd/api/v1/types.go (field
 * names).  The code and its words are ours.
 *
 * kubeconfig_parse(), kubeconfig_merge() and kubeconfig_select() are pure;
 * kubeconfig_load() reads files and kubeconfig_resolve() also reads the
 * environment (KUBECONFIG, HOME, KUBERNETES_SERVICE_HOST).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <yaml.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/yaml.h"
#include "agentscaler/k8s/k8s.h"
#include "kubeconfig.h"

/* Where a pod finds its ServiceAccount (client-go rest.InClusterConfig). */
#define K8S_SA_DIR	"/var/run/secrets/kubernetes.io/serviceaccount"
#define KC_PATH_MAX	96	/* "users[123456].user.exec.env[12].name" */
#define KC_MERGE_DEPTH	4	/* "<<" chains followed */
#define KC_EXEC_V1	"client.authentication.k8s.io/v1"
#define KC_EXEC_V1BETA1	"client.authentication.k8s.io/v1beta1"

struct kc_parse {
	yaml_document_t	*doc;
	const char	*dir;
	char		*err;
	size_t		 errlen;
};

static int	 kc_fail(struct kc_parse *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static yaml_node_t *kc_node(struct kc_parse *, int);
static int	 kc_is_null(const yaml_node_t *);
static int	 kc_get(struct kc_parse *, yaml_node_t *, const char *,
		    const char *, yaml_node_t **);
static int	 kc_mapping(struct kc_parse *, yaml_node_t *, const char *,
		    const char *, yaml_node_t **);
static int	 kc_sequence(struct kc_parse *, yaml_node_t *, const char *,
		    const char *, yaml_node_t **);
static int	 kc_scalar(struct kc_parse *, yaml_node_t *, const char *,
		    const char *, const yaml_node_t **);
static int	 kc_string(struct kc_parse *, yaml_node_t *, const char *,
		    const char *, char **);
static int	 kc_file(struct kc_parse *, yaml_node_t *, const char *,
		    const char *, char **);
static int	 kc_bool(struct kc_parse *, yaml_node_t *, const char *,
		    const char *, int *);
static int	 kc_base64(struct kc_parse *, yaml_node_t *, const char *,
		    const char *, char **, size_t *);
static int	 kc_present(struct kc_parse *, yaml_node_t *, const char *,
		    const char *, int *);
static char	*kc_resolve(const char *, const char *);
static int	 kc_entries(struct kc_parse *, yaml_node_t *, const char *,
		    yaml_node_t **, size_t *);
/* Fills one entry (a struct kubeconfig_cluster, _user or _context). */
typedef int	 kc_entry_fn(struct kc_parse *, yaml_node_t *, const char *,
		    void *);

static int	 kc_list(struct kc_parse *, yaml_node_t *, const char *,
		    size_t, kc_entry_fn *, void **, size_t *);
static kc_entry_fn kc_cluster;
static kc_entry_fn kc_user;
static kc_entry_fn kc_context;
static int	 kc_exec(struct kc_parse *, yaml_node_t *, const char *,
		    struct kubeconfig_exec **);
static void	 kc_fmt(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 kc_join(char *, size_t, const char *, const char *);
static void	 kc_cluster_free(struct kubeconfig_cluster *);
static void	 kc_user_free(struct kubeconfig_user *);
static void	 kc_exec_free(struct kubeconfig_exec *);
static void	 kc_context_free(struct kubeconfig_context *);

static int
kc_fail(struct kc_parse *p, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
	return (-AS_EINVAL);
}

static yaml_node_t *
kc_node(struct kc_parse *p, int id)
{
	return (yaml_document_get_node(p->doc, id));
}

/* A plain empty, "~" or "null" scalar: YAML's null, a missing value. */
static int
kc_is_null(const yaml_node_t *n)
{
	const char	*v;

	if (n == NULL)
		return (1);
	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return (0);
	v = (const char *)n->data.scalar.value;
	return (n->data.scalar.length == 0 || strcmp(v, "~") == 0 ||
	    strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	    strcmp(v, "NULL") == 0);
}

/* snprintf for field paths: a path too long to print ends in "...". */
static void
kc_fmt(char *out, size_t outlen, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= outlen)
		memcpy(out + outlen - 4, "...", 4);
}

/* Appends ".key" to path, or makes "key" when path is "". */
static void
kc_join(char *out, size_t outlen, const char *path, const char *key)
{
	kc_fmt(out, outlen, "%s%s%s", path, *path != '\0' ? "." : "", key);
}

/*
 * Finds key in the mapping map: *out is its value node, NULL when absent
 * (or null).  A key given twice is an error; a key not given is looked up
 * in a "<<" merge (a mapping or a sequence of them), KC_MERGE_DEPTH deep.
 */
static int
kc_lookup(struct kc_parse *p, yaml_node_t *map, const char *path,
    const char *key, yaml_node_t **out, int depth)
{
	yaml_node_pair_t *pair;
	yaml_node_t	*k, *merge = NULL, *m;
	yaml_node_item_t *it;
	char		 where[KC_PATH_MAX];
	int		 rc, found = 0;

	*out = NULL;
	for (pair = map->data.mapping.pairs.start;
	    pair < map->data.mapping.pairs.top; pair++) {
		k = kc_node(p, pair->key);
		if (k == NULL || k->type != YAML_SCALAR_NODE)
			continue;
		if (strcmp((const char *)k->data.scalar.value, "<<") == 0 &&
		    k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
			merge = kc_node(p, pair->value);
			continue;
		}
		if (strlen(key) != k->data.scalar.length ||
		    strcmp((const char *)k->data.scalar.value, key) != 0)
			continue;
		if (found) {
			kc_join(where, sizeof where, path, key);
			return (kc_fail(p, "%s: given twice", where));
		}
		found = 1;
		*out = kc_node(p, pair->value);
	}
	if (found || merge == NULL || depth >= KC_MERGE_DEPTH)
		goto done;
	if (merge->type == YAML_MAPPING_NODE)
		return (kc_lookup(p, merge, path, key, out, depth + 1));
	if (merge->type != YAML_SEQUENCE_NODE)
		return (kc_fail(p, "%s%s<<: a merge key needs a mapping", path,
		    *path != '\0' ? "." : ""));
	for (it = merge->data.sequence.items.start;
	    it < merge->data.sequence.items.top; it++) {
		m = kc_node(p, *it);
		if (m == NULL || m->type != YAML_MAPPING_NODE)
			return (kc_fail(p, "%s%s<<: a merge key needs mappings",
			    path, *path != '\0' ? "." : ""));
		if ((rc = kc_lookup(p, m, path, key, out, depth + 1)) != 0)
			return (rc);
		if (*out != NULL)
			break;
	}
done:
	if (kc_is_null(*out))
		*out = NULL;
	return (0);
}

static int
kc_get(struct kc_parse *p, yaml_node_t *map, const char *path,
    const char *key, yaml_node_t **out)
{
	return (kc_lookup(p, map, path, key, out, 0));
}

/* The value of key when it has the type (NULL when absent), else an error. */
static int
kc_typed(struct kc_parse *p, yaml_node_t *map, const char *path,
    const char *key, yaml_node_type_t type, yaml_node_t **out)
{
	char	 where[KC_PATH_MAX];
	int	 rc;

	if ((rc = kc_get(p, map, path, key, out)) != 0)
		return (rc);
	if (*out != NULL && (*out)->type != type) {
		kc_join(where, sizeof where, path, key);
		return (kc_fail(p, "%s: expected a %s", where,
		    type == YAML_MAPPING_NODE ? "mapping" : "list"));
	}
	return (0);
}

static int
kc_mapping(struct kc_parse *p, yaml_node_t *map, const char *path,
    const char *key, yaml_node_t **out)
{
	return (kc_typed(p, map, path, key, YAML_MAPPING_NODE, out));
}

static int
kc_sequence(struct kc_parse *p, yaml_node_t *map, const char *path,
    const char *key, yaml_node_t **out)
{
	return (kc_typed(p, map, path, key, YAML_SEQUENCE_NODE, out));
}

static int
kc_scalar(struct kc_parse *p, yaml_node_t *map, const char *path,
    const char *key, const yaml_node_t **out)
{
	yaml_node_t	*n;
	char		 where[KC_PATH_MAX];
	int		 rc;

	*out = NULL;
	if ((rc = kc_get(p, map, path, key, &n)) != 0)
		return (rc);
	if (n == NULL)
		return (0);
	kc_join(where, sizeof where, path, key);
	if (n->type != YAML_SCALAR_NODE)
		return (kc_fail(p, "%s: expected a string", where));
	if (strlen((const char *)n->data.scalar.value) !=
	    n->data.scalar.length)
		return (kc_fail(p, "%s: contains a NUL byte", where));
	*out = n;
	return (0);
}

/* Any scalar as a new string (a plain 123 is the string "123"). */
static int
kc_string(struct kc_parse *p, yaml_node_t *map, const char *path,
    const char *key, char **out)
{
	const yaml_node_t *n;
	int		 rc;

	if ((rc = kc_scalar(p, map, path, key, &n)) != 0)
		return (rc);
	if (n != NULL)
		*out = xstrdup((const char *)n->data.scalar.value);
	return (0);
}

/* A file name, joined to the kubeconfig's directory when relative. */
static int
kc_file(struct kc_parse *p, yaml_node_t *map, const char *path,
    const char *key, char **out)
{
	const yaml_node_t *n;
	int		 rc;

	if ((rc = kc_scalar(p, map, path, key, &n)) != 0)
		return (rc);
	if (n != NULL && n->data.scalar.length > 0)
		*out = kc_resolve(p->dir, (const char *)n->data.scalar.value);
	return (0);
}

/* YAML 1.1 booleans (go-yaml v2 reads kubeconfigs so); quoted is a string. */
static int
kc_bool(struct kc_parse *p, yaml_node_t *map, const char *path,
    const char *key, int *out)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes",
	    "Yes", "YES", "on", "On", "ON", "y", "Y" };
	static const char *const no[] = { "false", "False", "FALSE", "no",
	    "No", "NO", "off", "Off", "OFF", "n", "N" };
	const yaml_node_t *n;
	const char	*v;
	char		 where[KC_PATH_MAX];
	size_t		 i;
	int		 rc;

	if ((rc = kc_scalar(p, map, path, key, &n)) != 0 || n == NULL)
		return (rc);
	v = (const char *)n->data.scalar.value;
	if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		for (i = 0; i < AS_ARRAY_SIZE(yes); i++) {
			if (strcmp(v, yes[i]) == 0) {
				*out = 1;
				return (0);
			}
			if (strcmp(v, no[i]) == 0) {
				*out = 0;
				return (0);
			}
		}
	}
	kc_join(where, sizeof where, path, key);
	return (kc_fail(p, "%s: expected true or false", where));
}

static int
kc_base64(struct kc_parse *p, yaml_node_t *map, const char *path,
    const char *key, char **out, size_t *outlen)
{
	const yaml_node_t *n;
	char		 where[KC_PATH_MAX];
	int		 rc;

	if ((rc = kc_scalar(p, map, path, key, &n)) != 0 || n == NULL ||
	    n->data.scalar.length == 0)
		return (rc);
	*out = as_base64_decode((const char *)n->data.scalar.value,
	    n->data.scalar.length, outlen);
	if (*out == NULL) {
		kc_join(where, sizeof where, path, key);
		return (kc_fail(p, "%s: not valid base64", where));
	}
	return (0);
}

/* Sets *out when key is there with any non-null value. */
static int
kc_present(struct kc_parse *p, yaml_node_t *map, const char *path,
    const char *key, int *out)
{
	yaml_node_t	*n;
	int		 rc;

	if ((rc = kc_get(p, map, path, key, &n)) != 0)
		return (rc);
	if (n != NULL)
		*out = 1;
	return (0);
}

/* client-go's ResolvePath: absolute paths and an empty dir stay. */
static char *
kc_resolve(const char *dir, const char *path)
{
	if (dir == NULL || *dir == '\0' || path[0] == '/')
		return (xstrdup(path));
	return (xasprintf("%s%s%s", dir,
	    dir[strlen(dir) - 1] == '/' ? "" : "/", path));
}

struct kc_name {
	const char	*name;
	size_t		 index;
};

static int
kc_name_cmp(const void *a, const void *b)
{
	const struct kc_name *x = a, *y = b;
	int		 c = strcmp(x->name, y->name);

	if (c != 0)
		return (c);
	return (x->index < y->index ? -1 : x->index > y->index);
}

/*
 * A list of named entries, {name: ..., cluster|user|context: {...}}:
 * checks each is a mapping with a non-empty name, and that no name is
 * given twice (sorted, so a huge list costs n log n, not n^2).  *seqp
 * points into the document.
 */
static int
kc_entries(struct kc_parse *p, yaml_node_t *root, const char *key,
    yaml_node_t **seqp, size_t *np)
{
	yaml_node_item_t *it;
	yaml_node_t	*seq, *e;
	const yaml_node_t *name;
	struct kc_name	*names = NULL;
	char		 where[KC_PATH_MAX];
	size_t		 n = 0, i;
	int		 rc;

	*np = 0;
	if ((rc = kc_sequence(p, root, "", key, &seq)) != 0)
		return (rc);
	*seqp = seq;
	if (seq == NULL)
		return (0);
	names = xcalloc((size_t)(seq->data.sequence.items.top -
	    seq->data.sequence.items.start) + 1, sizeof *names);
	for (it = seq->data.sequence.items.start;
	    it < seq->data.sequence.items.top; it++, n++) {
		kc_fmt(where, sizeof where, "%s[%zu]", key, n);
		e = kc_node(p, *it);
		if (e == NULL || e->type != YAML_MAPPING_NODE) {
			rc = kc_fail(p, "%s: expected a mapping", where);
			goto out;
		}
		if ((rc = kc_scalar(p, e, where, "name", &name)) != 0)
			goto out;
		if (name == NULL || name->data.scalar.length == 0) {
			rc = kc_fail(p, "%s.name: missing", where);
			goto out;
		}
		names[n].name = (const char *)name->data.scalar.value;
		names[n].index = n;
	}
	qsort(names, n, sizeof *names, kc_name_cmp);
	for (i = 1; i < n; i++) {
		if (strcmp(names[i - 1].name, names[i].name) == 0) {
			rc = kc_fail(p, "%s[%zu].name: \"%s\" is given twice",
			    key, names[i].index, names[i].name);
			goto out;
		}
	}
	*np = n;
	rc = 0;
out:
	free(names);
	return (rc);
}

/*
 * One list of named entries into a new array of n + 1 elements of size
 * bytes, each filled by fn.  *arrp and *np are set even on failure (the
 * entries counted are the ones to free).
 */
static int
kc_list(struct kc_parse *p, yaml_node_t *root, const char *key, size_t size,
    kc_entry_fn *fn, void **arrp, size_t *np)
{
	yaml_node_t	*seq;
	char		 where[KC_PATH_MAX];
	size_t		 n, i;
	int		 rc;

	*np = 0;
	if ((rc = kc_entries(p, root, key, &seq, &n)) != 0)
		return (rc);
	*arrp = xcalloc(n + 1, size);
	for (i = 0; i < n; i++) {
		kc_fmt(where, sizeof where, "%s[%zu]", key, i);
		(*np)++;
		if ((rc = fn(p, kc_node(p, seq->data.sequence.items.start[i]),
		    where, (char *)*arrp + i * size)) != 0)
			return (rc);
	}
	return (0);
}

static int
kc_cluster(struct kc_parse *p, yaml_node_t *e, const char *where, void *out)
{
	struct kubeconfig_cluster *c = out;
	yaml_node_t	*m;
	char		 path[KC_PATH_MAX];
	int		 rc;

	if ((rc = kc_string(p, e, where, "name", &c->name)) != 0)
		return (rc);
	kc_join(path, sizeof path, where, "cluster");
	if ((rc = kc_mapping(p, e, where, "cluster", &m)) != 0 || m == NULL)
		return (rc);
	if ((rc = kc_string(p, m, path, "server", &c->server)) != 0 ||
	    (rc = kc_file(p, m, path, "certificate-authority",
	    &c->ca_file)) != 0 ||
	    (rc = kc_base64(p, m, path, "certificate-authority-data",
	    &c->ca_data, &c->ca_data_len)) != 0 ||
	    (rc = kc_bool(p, m, path, "insecure-skip-tls-verify",
	    &c->insecure_skip_tls_verify)) != 0 ||
	    (rc = kc_string(p, m, path, "tls-server-name",
	    &c->tls_server_name)) != 0 ||
	    (rc = kc_string(p, m, path, "proxy-url", &c->proxy_url)) != 0)
		return (rc);
	return (0);
}

static int
kc_user(struct kc_parse *p, yaml_node_t *e, const char *where, void *out)
{
	struct kubeconfig_user *u = out;
	static const char *const imp[] = { "as", "as-uid", "as-groups",
	    "as-user-extra" };
	const yaml_node_t *name;
	yaml_node_t	*m, *ap;
	char		 path[KC_PATH_MAX], app[KC_PATH_MAX];
	size_t		 i;
	int		 rc;

	if ((rc = kc_string(p, e, where, "name", &u->name)) != 0)
		return (rc);
	kc_join(path, sizeof path, where, "user");
	if ((rc = kc_mapping(p, e, where, "user", &m)) != 0 || m == NULL)
		return (rc);
	if ((rc = kc_string(p, m, path, "token", &u->token)) != 0 ||
	    (rc = kc_file(p, m, path, "tokenFile", &u->token_file)) != 0 ||
	    (rc = kc_file(p, m, path, "client-certificate",
	    &u->cert_file)) != 0 ||
	    (rc = kc_base64(p, m, path, "client-certificate-data",
	    &u->cert_data, &u->cert_data_len)) != 0 ||
	    (rc = kc_file(p, m, path, "client-key", &u->key_file)) != 0 ||
	    (rc = kc_base64(p, m, path, "client-key-data", &u->key_data,
	    &u->key_data_len)) != 0 ||
	    (rc = kc_present(p, m, path, "username", &u->has_basic)) != 0 ||
	    (rc = kc_present(p, m, path, "password", &u->has_basic)) != 0)
		return (rc);
	for (i = 0; i < AS_ARRAY_SIZE(imp); i++)
		if ((rc = kc_present(p, m, path, imp[i],
		    &u->has_impersonation)) != 0)
			return (rc);
	if ((rc = kc_mapping(p, m, path, "auth-provider", &ap)) != 0)
		return (rc);
	if (ap != NULL) {
		kc_join(app, sizeof app, path, "auth-provider");
		if ((rc = kc_scalar(p, ap, app, "name", &name)) != 0)
			return (rc);
		u->auth_provider = xstrdup(name != NULL ?
		    (const char *)name->data.scalar.value : "");
	}
	return (kc_exec(p, m, path, &u->exec));
}

static int
kc_exec(struct kc_parse *p, yaml_node_t *user, const char *upath,
    struct kubeconfig_exec **out)
{
	struct kubeconfig_exec *x;
	yaml_node_item_t *it;
	yaml_node_t	*m, *seq, *item;
	char		 path[KC_PATH_MAX], ip[KC_PATH_MAX];
	size_t		 i;
	int		 rc;

	if ((rc = kc_mapping(p, user, upath, "exec", &m)) != 0 || m == NULL)
		return (rc);
	kc_join(path, sizeof path, upath, "exec");
	x = *out = xcalloc(1, sizeof *x);
	if ((rc = kc_string(p, m, path, "apiVersion", &x->api_version)) != 0 ||
	    (rc = kc_string(p, m, path, "command", &x->command)) != 0 ||
	    (rc = kc_string(p, m, path, "installHint",
	    &x->install_hint)) != 0 ||
	    (rc = kc_string(p, m, path, "interactiveMode",
	    &x->interactive_mode)) != 0 ||
	    (rc = kc_bool(p, m, path, "provideClusterInfo",
	    &x->provide_cluster_info)) != 0)
		return (rc);
	/* loader.go: a command with a separator is a path, else on PATH. */
	if (x->command != NULL && strchr(x->command, '/') != NULL &&
	    x->command[0] != '/' && p->dir != NULL && *p->dir != '\0') {
		char *abs = kc_resolve(p->dir, x->command);

		free(x->command);
		x->command = abs;
	}
	if ((rc = kc_sequence(p, m, path, "args", &seq)) != 0)
		return (rc);
	if (seq != NULL) {
		x->args = xcalloc((size_t)(seq->data.sequence.items.top -
		    seq->data.sequence.items.start) + 1, sizeof *x->args);
		for (it = seq->data.sequence.items.start, i = 0;
		    it < seq->data.sequence.items.top; it++, i++) {
			item = kc_node(p, *it);
			if (item == NULL || item->type != YAML_SCALAR_NODE ||
			    strlen((const char *)item->data.scalar.value) !=
			    item->data.scalar.length)
				return (kc_fail(p, "%s.args[%zu]: expected a "
				    "string", path, i));
			x->args[x->nargs++] =
			    xstrdup((const char *)item->data.scalar.value);
		}
	}
	if ((rc = kc_sequence(p, m, path, "env", &seq)) != 0)
		return (rc);
	if (seq == NULL)
		return (0);
	x->env = xcalloc((size_t)(seq->data.sequence.items.top -
	    seq->data.sequence.items.start) + 1, sizeof *x->env);
	for (it = seq->data.sequence.items.start, i = 0;
	    it < seq->data.sequence.items.top; it++, i++) {
		kc_fmt(ip, sizeof ip, "%s.env[%zu]", path, i);
		item = kc_node(p, *it);
		if (item == NULL || item->type != YAML_MAPPING_NODE)
			return (kc_fail(p, "%s: expected a mapping", ip));
		x->nenv++;
		if ((rc = kc_string(p, item, ip, "name",
		    &x->env[i].name)) != 0 ||
		    (rc = kc_string(p, item, ip, "value",
		    &x->env[i].value)) != 0)
			return (rc);
		if (x->env[i].name == NULL || x->env[i].name[0] == '\0' ||
		    strchr(x->env[i].name, '=') != NULL)
			return (kc_fail(p, "%s.name: missing or not a valid "
			    "variable name", ip));
		if (x->env[i].value == NULL)
			x->env[i].value = xstrdup("");
	}
	return (0);
}

static int
kc_context(struct kc_parse *p, yaml_node_t *e, const char *where, void *out)
{
	struct kubeconfig_context *c = out;
	yaml_node_t	*m;
	char		 path[KC_PATH_MAX];
	int		 rc;

	if ((rc = kc_string(p, e, where, "name", &c->name)) != 0)
		return (rc);
	kc_join(path, sizeof path, where, "context");
	if ((rc = kc_mapping(p, e, where, "context", &m)) != 0 || m == NULL)
		return (rc);
	if ((rc = kc_string(p, m, path, "cluster", &c->cluster)) != 0 ||
	    (rc = kc_string(p, m, path, "user", &c->user)) != 0 ||
	    (rc = kc_string(p, m, path, "namespace", &c->ns)) != 0)
		return (rc);
	return (0);
}

int
kubeconfig_parse(const char *data, size_t len, const char *dir,
    struct kubeconfig **out, char *err, size_t errlen)
{
	yaml_parser_t	 parser;
	yaml_document_t	 doc;
	struct kc_parse	 p;
	struct kubeconfig *kc = NULL;
	yaml_node_t	*root;
	void		*arr;
	int		 rc = -AS_EINVAL, have_doc = 0;

	*out = NULL;
	memset(&p, 0, sizeof p);
	p.doc = &doc;
	p.dir = dir;
	p.err = err;
	p.errlen = errlen;
	if (!yaml_parser_initialize(&parser)) {
		snprintf(err, errlen, "cannot initialise the YAML parser");
		return (-AS_ENOMEM);
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)(data !=
	    NULL ? data : ""), data != NULL ? len : 0);
	if (!yaml_parser_load(&parser, &doc)) {
		as_yaml_problem(&parser, err, errlen);
		goto out;
	}
	have_doc = 1;
	kc = xcalloc(1, sizeof *kc);
	/* An empty file is an empty config, as client-go reads it. */
	if ((root = yaml_document_get_root_node(&doc)) == NULL ||
	    kc_is_null(root)) {
		rc = 0;
		goto out;
	}
	if (root->type != YAML_MAPPING_NODE) {
		snprintf(err, errlen, "not a kubeconfig: the document is not a "
		    "mapping");
		goto out;
	}
	if ((rc = kc_string(&p, root, "", "current-context",
	    &kc->current_context)) != 0)
		goto out;

	arr = NULL;
	rc = kc_list(&p, root, "clusters", sizeof *kc->clusters, kc_cluster,
	    &arr, &kc->nclusters);
	kc->clusters = arr;
	if (rc != 0)
		goto out;
	arr = NULL;
	rc = kc_list(&p, root, "users", sizeof *kc->users, kc_user, &arr,
	    &kc->nusers);
	kc->users = arr;
	if (rc != 0)
		goto out;
	arr = NULL;
	rc = kc_list(&p, root, "contexts", sizeof *kc->contexts, kc_context,
	    &arr, &kc->ncontexts);
	kc->contexts = arr;
	if (rc != 0)
		goto out;
	rc = 0;
out:
	if (have_doc)
		yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (rc != 0) {
		kubeconfig_free(kc);
		return (rc);
	}
	*out = kc;
	return (0);
}

static void
kc_cluster_free(struct kubeconfig_cluster *c)
{
	free(c->name);
	free(c->server);
	free(c->ca_file);
	free(c->ca_data);
	free(c->tls_server_name);
	free(c->proxy_url);
}

static void
kc_exec_free(struct kubeconfig_exec *x)
{
	size_t	 i;

	if (x == NULL)
		return;
	free(x->api_version);
	free(x->command);
	for (i = 0; i < x->nargs; i++)
		free(x->args[i]);
	free(x->args);
	/* An env value may be a secret (a client secret for the plugin). */
	for (i = 0; i < x->nenv; i++) {
		free(x->env[i].name);
		as_secret_free(x->env[i].value, 0);
	}
	free(x->env);
	free(x->install_hint);
	free(x->interactive_mode);
	free(x);
}

static void
kc_user_free(struct kubeconfig_user *u)
{
	free(u->name);
	as_secret_free(u->token, 0);
	free(u->token_file);
	free(u->cert_file);
	free(u->cert_data);
	free(u->key_file);
	as_secret_free(u->key_data, u->key_data_len);
	kc_exec_free(u->exec);
	free(u->auth_provider);
}

static void
kc_context_free(struct kubeconfig_context *c)
{
	free(c->name);
	free(c->cluster);
	free(c->user);
	free(c->ns);
}

void
kubeconfig_free(struct kubeconfig *kc)
{
	size_t	 i;

	if (kc == NULL)
		return;
	for (i = 0; i < kc->nclusters; i++)
		kc_cluster_free(&kc->clusters[i]);
	free(kc->clusters);
	for (i = 0; i < kc->nusers; i++)
		kc_user_free(&kc->users[i]);
	free(kc->users);
	for (i = 0; i < kc->ncontexts; i++)
		kc_context_free(&kc->contexts[i]);
	free(kc->contexts);
	free(kc->current_context);
	free(kc);
}

/*
 * The merge of one list: entries of src whose name dst lacks are moved to
 * the end of dst; the others are freed with src.  Written once for the
 * three entry types through their sizes and a name accessor.
 */
#define KC_MERGE_LIST(dst, src, list, n, freefn) do {			\
	size_t	 i_, j_;						\
									\
	(dst)->list = xrealloc((dst)->list, ((dst)->n + (src)->n + 1) *	\
	    sizeof *(dst)->list);					\
	for (i_ = 0; i_ < (src)->n; i_++) {				\
		for (j_ = 0; j_ < (dst)->n; j_++)			\
			if (strcmp((dst)->list[j_].name,		\
			    (src)->list[i_].name) == 0)			\
				break;					\
		if (j_ < (dst)->n) {					\
			freefn(&(src)->list[i_]);			\
			continue;					\
		}							\
		(dst)->list[(dst)->n++] = (src)->list[i_];		\
	}								\
	(src)->n = 0;							\
} while (0)

void
kubeconfig_merge(struct kubeconfig *dst, struct kubeconfig *src)
{
	if (src == NULL)
		return;
	KC_MERGE_LIST(dst, src, clusters, nclusters, kc_cluster_free);
	KC_MERGE_LIST(dst, src, users, nusers, kc_user_free);
	KC_MERGE_LIST(dst, src, contexts, ncontexts, kc_context_free);
	if (dst->current_context == NULL || *dst->current_context == '\0') {
		free(dst->current_context);
		dst->current_context = src->current_context;
		src->current_context = NULL;
	}
	kubeconfig_free(src);
}

/* validation.go's rules for the one context in use, in our words. */
static int
kc_select_user(const struct kubeconfig_user *u, char *err, size_t errlen)
{
	const struct kubeconfig_exec *x = u->exec;
	int	 cert, key;

	if (u->auth_provider != NULL) {
		snprintf(err, errlen, "user \"%s\": auth-provider \"%s\" is not "
		    "supported; use an exec credential plugin instead (such as "
		    "gke-gcloud-auth-plugin, kubelogin or aws eks get-token)",
		    u->name, u->auth_provider);
		return (-AS_EINVAL);
	}
	if (u->has_basic) {
		snprintf(err, errlen, "user \"%s\": username/password (basic "
		    "authentication) is not supported", u->name);
		return (-AS_EINVAL);
	}
	if (u->has_impersonation) {
		snprintf(err, errlen, "user \"%s\": impersonation (as, "
		    "as-groups, as-uid, as-user-extra) is not supported",
		    u->name);
		return (-AS_EINVAL);
	}
	cert = u->cert_file != NULL || u->cert_data != NULL;
	key = u->key_file != NULL || u->key_data != NULL;
	if (cert != key) {
		snprintf(err, errlen, "user \"%s\": %s without %s", u->name,
		    cert ? "client-certificate" : "client-key",
		    cert ? "client-key" : "client-certificate");
		return (-AS_EINVAL);
	}
	if (x == NULL)
		return (0);
	if (x->command == NULL || *x->command == '\0') {
		snprintf(err, errlen, "user \"%s\": exec.command is missing",
		    u->name);
		return (-AS_EINVAL);
	}
	if (x->api_version == NULL || (strcmp(x->api_version,
	    KC_EXEC_V1) != 0 && strcmp(x->api_version, KC_EXEC_V1BETA1) != 0)) {
		snprintf(err, errlen, "user \"%s\": exec.apiVersion \"%s\" is "
		    "not supported (use %s or %s)", u->name,
		    x->api_version != NULL ? x->api_version : "", KC_EXEC_V1,
		    KC_EXEC_V1BETA1);
		return (-AS_EINVAL);
	}
	/* v1 makes the mode explicit; v1beta1 defaults to IfAvailable. */
	if (x->interactive_mode == NULL &&
	    strcmp(x->api_version, KC_EXEC_V1) == 0) {
		snprintf(err, errlen, "user \"%s\": exec.interactiveMode must "
		    "be set for %s (Never or IfAvailable)", u->name,
		    KC_EXEC_V1);
		return (-AS_EINVAL);
	}
	if (x->interactive_mode != NULL &&
	    strcmp(x->interactive_mode, "Never") != 0 &&
	    strcmp(x->interactive_mode, "IfAvailable") != 0) {
		snprintf(err, errlen, "user \"%s\": exec.interactiveMode \"%s\" "
		    "cannot be honoured: agentscaler runs credential plugins "
		    "without a terminal (use Never or IfAvailable)", u->name,
		    x->interactive_mode);
		return (-AS_EINVAL);
	}
	return (0);
}

int
kubeconfig_select(const struct kubeconfig *kc, const char *context,
    struct kubeconfig_selection *sel, char *err, size_t errlen)
{
	const struct kubeconfig_cluster *cl;
	const char	*name;
	size_t		 i;

	memset(sel, 0, sizeof *sel);
	name = context != NULL && *context != '\0' ? context :
	    kc->current_context;
	if (name == NULL || *name == '\0') {
		snprintf(err, errlen, "no current-context is set (pass "
		    "--context NAME)");
		return (-AS_EINVAL);
	}
	for (i = 0; i < kc->ncontexts; i++)
		if (strcmp(kc->contexts[i].name, name) == 0)
			sel->context = &kc->contexts[i];
	if (sel->context == NULL) {
		snprintf(err, errlen, "context \"%s\" not found", name);
		return (-AS_EINVAL);
	}
	if (sel->context->cluster == NULL || *sel->context->cluster == '\0') {
		snprintf(err, errlen, "context \"%s\" names no cluster", name);
		return (-AS_EINVAL);
	}
	for (i = 0; i < kc->nclusters; i++)
		if (strcmp(kc->clusters[i].name, sel->context->cluster) == 0)
			sel->cluster = &kc->clusters[i];
	if ((cl = sel->cluster) == NULL) {
		snprintf(err, errlen, "context \"%s\": cluster \"%s\" not found",
		    name, sel->context->cluster);
		return (-AS_EINVAL);
	}
	if (cl->server == NULL || *cl->server == '\0') {
		snprintf(err, errlen, "cluster \"%s\" has no server", cl->name);
		return (-AS_EINVAL);
	}
	if (cl->tls_server_name != NULL || cl->proxy_url != NULL) {
		snprintf(err, errlen, "cluster \"%s\": %s is not supported",
		    cl->name, cl->tls_server_name != NULL ? "tls-server-name" :
		    "proxy-url");
		return (-AS_EINVAL);
	}
	if (cl->insecure_skip_tls_verify && (cl->ca_file != NULL ||
	    cl->ca_data != NULL)) {
		snprintf(err, errlen, "cluster \"%s\": insecure-skip-tls-verify "
		    "cannot be combined with a certificate-authority",
		    cl->name);
		return (-AS_EINVAL);
	}
	/* A context without a user talks to the server anonymously. */
	if (sel->context->user == NULL || *sel->context->user == '\0')
		return (0);
	for (i = 0; i < kc->nusers; i++)
		if (strcmp(kc->users[i].name, sel->context->user) == 0)
			sel->user = &kc->users[i];
	if (sel->user == NULL) {
		snprintf(err, errlen, "context \"%s\": user \"%s\" not found",
		    name, sel->context->user);
		return (-AS_EINVAL);
	}
	return (kc_select_user(sel->user, err, errlen));
}

/* The directory part of path, "" for a bare name. */
static char *
kc_dirname(const char *path)
{
	const char	*slash = strrchr(path, '/');

	if (slash == NULL)
		return (xstrdup(""));
	if (slash == path)
		return (xstrdup("/"));
	return (xstrndup(path, (size_t)(slash - path)));
}

int
kubeconfig_load(const char *const *paths, size_t n, int skip_missing,
    struct kubeconfig **out, char *err, size_t errlen)
{
	struct kubeconfig *all = NULL, *one;
	struct stat	 st;
	char		 why[512];
	char		*data, *dir;
	size_t		 i, len, loaded = 0;
	int		 rc;

	*out = NULL;
	for (i = 0; i < n; i++) {
		if (skip_missing && stat(paths[i], &st) != 0 &&
		    errno == ENOENT)
			continue;
		if ((data = as_read_file(paths[i], KUBECONFIG_MAX_BYTES, &len,
		    err, errlen)) == NULL) {
			kubeconfig_free(all);
			return (-AS_EIO);
		}
		dir = kc_dirname(paths[i]);
		rc = kubeconfig_parse(data, len, dir, &one, why, sizeof why);
		as_secret_free(data, len);
		free(dir);
		if (rc != 0) {
			snprintf(err, errlen, "%s: %s", paths[i], why);
			kubeconfig_free(all);
			return (rc);
		}
		loaded++;
		if (all == NULL)
			all = one;
		else
			kubeconfig_merge(all, one);
	}
	if (loaded == 0) {
		snprintf(err, errlen, "none of the kubeconfig files exists");
		return (-AS_ENOTFOUND);
	}
	*out = all;
	return (0);
}

/* What authenticates the client, for the start-up log: never a secret. */
static void
kc_describe_auth(const struct k8s_options *o, char *out, size_t outlen)
{
	struct as_buf	 b = { NULL, 0, 0 };

	if (o->token_file != NULL)
		as_buf_printf(&b, "token file %s", o->token_file);
	else if (o->token != NULL)
		as_buf_printf(&b, "token");
	if (o->cert_data != NULL || o->cert_file != NULL)
		as_buf_printf(&b, "%sclient certificate%s%s",
		    b.len > 0 ? " + " : "", o->cert_file != NULL &&
		    o->cert_data == NULL ? " " : "",
		    o->cert_file != NULL && o->cert_data == NULL ?
		    o->cert_file : "");
	if (o->exec != NULL)
		as_buf_printf(&b, "exec plugin %s", o->exec->command);
	as_strlcpy(out, b.p != NULL ? b.p : "no credentials", outlen);
	free(b.p);
}

/*
 * The files of a KUBECONFIG value, split at ':' with empty parts and
 * repeats dropped (as client-go's deduplicate); into a new array of
 * pointers into a new copy, both freed by the caller (*copyp, *listp).
 */
static size_t
kc_split_list(const char *value, char **copyp, const char ***listp)
{
	const char	**list;
	char		*copy, *p, *colon;
	size_t		 n = 0, i, max = 1;

	copy = xstrdup(value);
	for (p = copy; *p != '\0'; p++)
		if (*p == ':')
			max++;
	list = xcalloc(max, sizeof *list);
	for (p = copy; p != NULL; p = colon) {
		if ((colon = strchr(p, ':')) != NULL)
			*colon++ = '\0';
		if (*p == '\0')
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(list[i], p) == 0)
				break;
		if (i == n)
			list[n++] = p;
	}
	*copyp = copy;
	*listp = list;
	return (n);
}

/* Fills out from a selected context; in's overrides win. */
static void
kc_apply(const struct k8s_options *in, const struct kubeconfig_selection *sel,
    struct k8s_options *out)
{
	const struct kubeconfig_cluster *cl = sel->cluster;
	const struct kubeconfig_user *u = sel->user;

	out->apiserver = in->apiserver != NULL ? in->apiserver : cl->server;
	out->ca_file = NULL;
	out->ca_data = NULL;
	out->ca_data_len = 0;
	/*
	 * As client-go's ClientConfig with overrides: --insecure drops the
	 * file's CA, a CA given on the command line replaces the file's.
	 */
	out->insecure_skip_tls_verify = in->insecure_skip_tls_verify ||
	    (cl->insecure_skip_tls_verify && in->ca_file == NULL);
	if (in->ca_file != NULL)
		out->ca_file = in->ca_file;
	else if (!in->insecure_skip_tls_verify && cl->ca_data != NULL) {
		out->ca_data = cl->ca_data;
		out->ca_data_len = cl->ca_data_len;
	} else if (!in->insecure_skip_tls_verify)
		out->ca_file = cl->ca_file;
	out->token = NULL;
	out->token_file = in->token_file;
	out->cert_file = out->key_file = NULL;
	out->cert_data = out->key_data = NULL;
	out->cert_data_len = out->key_data_len = 0;
	out->exec = NULL;
	out->exec_cluster = cl;
	if (u == NULL)
		return;
	if (in->token_file == NULL) {
		out->token = u->token;
		out->token_file = u->token_file;
	}
	/* The -data form wins over the file, as client-go says it will. */
	if (u->cert_data != NULL) {
		out->cert_data = u->cert_data;
		out->cert_data_len = u->cert_data_len;
	} else
		out->cert_file = u->cert_file;
	if (u->key_data != NULL) {
		out->key_data = u->key_data;
		out->key_data_len = u->key_data_len;
	} else
		out->key_file = u->key_file;
	/*
	 * client-go plugin/pkg/client/auth/exec (UpdateTransportConfig): a
	 * token or a client certificate already given wins over the plugin.
	 */
	if (out->token == NULL && out->token_file == NULL &&
	    out->cert_data == NULL && out->cert_file == NULL)
		out->exec = u->exec;
}

int
kubeconfig_resolve(const struct k8s_options *in, struct k8s_options *out,
    struct kubeconfig **kcp, char *buf, size_t buflen, char *desc,
    size_t desclen, char *err, size_t errlen)
{
	struct kubeconfig_selection sel;
	struct kubeconfig *kc = NULL;
	struct k8s_options ic;
	struct stat	 st;
	const char	**list = NULL, *env, *one[1];
	char		*copy = NULL, *home = NULL, source[320], why[512];
	char		 auth[320];
	size_t		 n;
	int		 skip = 0, rc;

	*out = *in;
	*kcp = NULL;
	if (in->kubeconfig != NULL) {
		one[0] = in->kubeconfig;
		list = one;
		n = 1;
		snprintf(source, sizeof source, "--kubeconfig %s",
		    in->kubeconfig);
	} else if (in->apiserver != NULL) {
		if (in->context != NULL) {
			snprintf(err, errlen, "--context needs a kubeconfig "
			    "(--kubeconfig, KUBECONFIG or ~/.kube/config), not "
			    "--apiserver");
			return (-AS_EINVAL);
		}
		kc_describe_auth(out, auth, sizeof auth);
		snprintf(desc, desclen, "--apiserver %s, %s", in->apiserver,
		    auth);
		return (0);
	} else if ((env = getenv("KUBECONFIG")) != NULL && *env != '\0') {
		n = kc_split_list(env, &copy, &list);
		skip = 1;
		snprintf(source, sizeof source, "KUBECONFIG=%s", env);
	} else if ((env = getenv("KUBERNETES_SERVICE_HOST")) != NULL &&
	    *env != '\0') {
		if (in->context != NULL) {
			snprintf(err, errlen, "--context needs a kubeconfig, "
			    "and none was found (running in a cluster)");
			return (-AS_EINVAL);
		}
		memset(&ic, 0, sizeof ic);
		if ((rc = k8s_options_incluster(&ic, NULL, buf, buflen, err,
		    errlen)) != 0)
			return (rc);
		out->apiserver = ic.apiserver;
		if (out->token_file == NULL)
			out->token_file = ic.token_file;
		if (out->ca_file == NULL)
			out->ca_file = ic.ca_file;
		kc_describe_auth(out, auth, sizeof auth);
		snprintf(desc, desclen, "in-cluster %s, %s", out->apiserver,
		    auth);
		return (0);
	} else {
		env = getenv("HOME");
		home = xasprintf("%s/.kube/config", env != NULL ? env : "");
		if (env == NULL || *env == '\0' || stat(home, &st) != 0) {
			snprintf(err, errlen, "no Kubernetes configuration: "
			    "pass --kubeconfig FILE or --apiserver URL, set "
			    "KUBECONFIG, run in a cluster, or create %s", home);
			free(home);
			return (-AS_EINVAL);
		}
		one[0] = home;
		list = one;
		n = 1;
		snprintf(source, sizeof source, "%s", home);
	}
	if ((rc = kubeconfig_load(list, n, skip, &kc, why, sizeof why)) != 0) {
		snprintf(err, errlen, "kubeconfig (%s): %s", source, why);
		goto out;
	}
	if ((rc = kubeconfig_select(kc, in->context, &sel, why,
	    sizeof why)) != 0) {
		snprintf(err, errlen, "kubeconfig (%s): %s", source, why);
		goto out;
	}
	kc_apply(in, &sel, out);
	kc_describe_auth(out, auth, sizeof auth);
	snprintf(desc, desclen, "kubeconfig (%s), context \"%s\", cluster "
	    "\"%s\" %s%s, user \"%s\": %s", source, sel.context->name,
	    sel.cluster->name, out->apiserver, in->apiserver != NULL ?
	    " (--apiserver)" : "", sel.user != NULL ? sel.user->name : "",
	    auth);
	*kcp = kc;
	kc = NULL;
	rc = 0;
out:
	kubeconfig_free(kc);
	if (list != one)
		free(list);
	free(copy);
	free(home);
	return (rc);
}

/*
 * In-cluster configuration as client-go's InClusterConfig: both variables
 * must be set, and an IPv6 host goes in brackets.
 */
int
k8s_options_incluster(struct k8s_options *opts, const char *dir, char *buf,
    size_t buflen, char *err, size_t errlen)
{
	const char	*host, *port, *lb = "", *rb = "";
	size_t		 off = 0;
	int		 n;

	if (dir == NULL)
		dir = K8S_SA_DIR;
	host = getenv("KUBERNETES_SERVICE_HOST");
	port = getenv("KUBERNETES_SERVICE_PORT");
	if (host == NULL || *host == '\0' || port == NULL || *port == '\0') {
		snprintf(err, errlen, "not in a cluster: "
		    "KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT unset");
		return (-AS_EINVAL);
	}
	if (strchr(host, ':') != NULL && host[0] != '[') {
		lb = "[";
		rb = "]";
	}
	n = snprintf(buf, buflen, "https://%s%s%s:%s", lb, host, rb, port);
	if (n < 0 || (size_t)n >= buflen)
		goto small;
	opts->apiserver = buf;
	off = (size_t)n + 1;
	n = snprintf(buf + off, buflen - off, "%s/token", dir);
	if (n < 0 || (size_t)n >= buflen - off)
		goto small;
	opts->token_file = buf + off;
	off += (size_t)n + 1;
	n = snprintf(buf + off, buflen - off, "%s/ca.crt", dir);
	if (n < 0 || (size_t)n >= buflen - off)
		goto small;
	opts->ca_file = buf + off;
	if (access(opts->token_file, R_OK) != 0) {
		snprintf(err, errlen, "%s: cannot read the token",
		    opts->token_file);
		return (-AS_EINVAL);
	}
	if (access(opts->ca_file, R_OK) != 0) {
		snprintf(err, errlen, "%s: cannot read the CA", opts->ca_file);
		return (-AS_EINVAL);
	}
	return (0);
small:
	snprintf(err, errlen, "in-cluster configuration: buffer too small");
	return (-AS_EINVAL);
}
