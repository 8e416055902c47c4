/*
 * check_kubeconfig.c: kubeconfig files.  Pure cases first: every field of
 * a full document, then table-driven parse errors and odd-but-valid YAML
 * (anchors, aliases, merge keys, a cycle, an alias bomb, huge lists), the
 * selection of a context and what it refuses, and the KUBECONFIG merge.
 * Then the I/O: loading files (relative paths, missing files, size bound)
 * and kubeconfig_resolve() with the environment it reads (KUBECONFIG,
 * HOME, KUBERNETES_SERVICE_HOST) and the flags that override a kubeconfig.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/k8s/k8s.h"
#include "k8s/kubeconfig.h"
#include "util/testutil.h"

/* "hello" and a PEM-ish key, base64. */
#define B64_HELLO	"aGVsbG8="
#define B64_KEY		"LS0tLS1CRUdJTiBLRVktLS0tLQpzZWNyZXQKLS0tLS1FTkQgS0VZLS0tLS0K"

static const char full_doc[] =
    "apiVersion: v1\n"
    "kind: Config\n"
    "preferences: {}\n"
    "current-context: dev\n"
    "unknown-top-level: [ignored, too]\n"
    "clusters:\n"
    "- name: prod\n"
    "  cluster:\n"
    "    server: https://10.0.0.1:6443\n"
    "    certificate-authority: pki/ca.crt\n"
    "    tls-server-name: api.internal\n"
    "    proxy-url: http://proxy:3128\n"
    "    extensions: [{name: x, extension: {}}]\n"
    "- name: dev\n"
    "  cluster:\n"
    "    server: \"https://127.0.0.1:8443\"\n"
    "    certificate-authority-data: " B64_HELLO "\n"
    "    insecure-skip-tls-verify: false\n"
    "- name: lab\n"
    "  cluster: {server: 'http://lab:80', insecure-skip-tls-verify: yes}\n"
    "users:\n"
    "- name: alice\n"
    "  user:\n"
    "    token: tok-alice\n"
    "    tokenFile: ../tokens/alice\n"
    "    client-certificate: /abs/alice.crt\n"
    "    client-key: alice.key\n"
    "- name: bob\n"
    "  user:\n"
    "    client-certificate-data: " B64_HELLO "\n"
    "    client-key-data: " B64_KEY "\n"
    "- name: plug\n"
    "  user:\n"
    "    exec:\n"
    "      apiVersion: client.authentication.k8s.io/v1\n"
    "      command: bin/get-token\n"
    "      args: [--cluster, prod, \"--flag=a b\"]\n"
    "      env:\n"
    "      - name: AWS_PROFILE\n"
    "        value: dev\n"
    "      - {name: EMPTY}\n"
    "      installHint: install get-token from the wiki\n"
    "      interactiveMode: Never\n"
    "      provideClusterInfo: true\n"
    "- name: onpath\n"
    "  user:\n"
    "    exec: {apiVersion: client.authentication.k8s.io/v1beta1,"
    " command: gke-gcloud-auth-plugin}\n"
    "- name: gcp\n"
    "  user:\n"
    "    auth-provider: {name: gcp, config: {access-token: x}}\n"
    "- name: basic\n"
    "  user: {username: u, password: p}\n"
    "- name: imp\n"
    "  user: {token: t, as: admin, as-groups: [g]}\n"
    "contexts:\n"
    "- name: dev\n"
    "  context: {cluster: dev, user: alice, namespace: agents}\n"
    "- name: prod\n"
    "  context:\n"
    "    cluster: prod\n"
    "    user: plug\n";

static const struct kubeconfig_cluster *
find_cluster(const struct kubeconfig *kc, const char *name)
{
	size_t	 i;

	for (i = 0; i < kc->nclusters; i++)
		if (strcmp(kc->clusters[i].name, name) == 0)
			return (&kc->clusters[i]);
	ck_abort_msg("no cluster %s", name);
	return (NULL);
}

static const struct kubeconfig_user *
find_user(const struct kubeconfig *kc, const char *name)
{
	size_t	 i;

	for (i = 0; i < kc->nusers; i++)
		if (strcmp(kc->users[i].name, name) == 0)
			return (&kc->users[i]);
	ck_abort_msg("no user %s", name);
	return (NULL);
}

static struct kubeconfig *
parse_ok(const char *doc, const char *dir)
{
	struct kubeconfig *kc = NULL;
	char		 err[512] = "";

	ck_assert_msg(kubeconfig_parse(doc, strlen(doc), dir, &kc, err,
	    sizeof err) == 0, "parse: %s", err);
	ck_assert_ptr_nonnull(kc);
	return (kc);
}

START_TEST(test_parse_every_field)
{
	struct kubeconfig *kc = parse_ok(full_doc, "/home/a/.kube");
	const struct kubeconfig_cluster *c;
	const struct kubeconfig_user *u;
	const struct kubeconfig_exec *x;

	ck_assert_str_eq(kc->current_context, "dev");
	ck_assert_uint_eq(kc->nclusters, 3);
	ck_assert_uint_eq(kc->nusers, 7);
	ck_assert_uint_eq(kc->ncontexts, 2);

	c = find_cluster(kc, "prod");
	ck_assert_str_eq(c->server, "https://10.0.0.1:6443");
	ck_assert_str_eq(c->ca_file, "/home/a/.kube/pki/ca.crt");
	ck_assert_ptr_null(c->ca_data);
	ck_assert_str_eq(c->tls_server_name, "api.internal");
	ck_assert_str_eq(c->proxy_url, "http://proxy:3128");
	ck_assert_int_eq(c->insecure_skip_tls_verify, 0);
	c = find_cluster(kc, "dev");
	ck_assert_str_eq(c->server, "https://127.0.0.1:8443");
	ck_assert_uint_eq(c->ca_data_len, 5);
	ck_assert(memcmp(c->ca_data, "hello", 5) == 0);
	ck_assert_ptr_null(c->ca_file);
	c = find_cluster(kc, "lab");
	ck_assert_int_eq(c->insecure_skip_tls_verify, 1);

	u = find_user(kc, "alice");
	ck_assert_str_eq(u->token, "tok-alice");
	ck_assert_str_eq(u->token_file, "/home/a/.kube/../tokens/alice");
	ck_assert_str_eq(u->cert_file, "/abs/alice.crt");
	ck_assert_str_eq(u->key_file, "/home/a/.kube/alice.key");
	ck_assert_ptr_null(u->exec);
	u = find_user(kc, "bob");
	ck_assert_uint_eq(u->cert_data_len, 5);
	ck_assert(memcmp(u->cert_data, "hello", 5) == 0);
	ck_assert_str_eq(u->key_data,
	    "-----BEGIN KEY-----\nsecret\n-----END KEY-----\n");
	ck_assert_uint_eq(u->key_data_len, strlen(u->key_data));

	x = find_user(kc, "plug")->exec;
	ck_assert_ptr_nonnull(x);
	ck_assert_str_eq(x->api_version, "client.authentication.k8s.io/v1");
	/* loader.go: a command with a separator is relative to the file. */
	ck_assert_str_eq(x->command, "/home/a/.kube/bin/get-token");
	ck_assert_uint_eq(x->nargs, 3);
	ck_assert_str_eq(x->args[0], "--cluster");
	ck_assert_str_eq(x->args[2], "--flag=a b");
	ck_assert_uint_eq(x->nenv, 2);
	ck_assert_str_eq(x->env[0].name, "AWS_PROFILE");
	ck_assert_str_eq(x->env[0].value, "dev");
	ck_assert_str_eq(x->env[1].name, "EMPTY");
	ck_assert_str_eq(x->env[1].value, "");
	ck_assert_str_eq(x->install_hint, "install get-token from the wiki");
	ck_assert_str_eq(x->interactive_mode, "Never");
	ck_assert_int_eq(x->provide_cluster_info, 1);
	x = find_user(kc, "onpath")->exec;
	ck_assert_str_eq(x->command, "gke-gcloud-auth-plugin");
	ck_assert_ptr_null(x->interactive_mode);
	ck_assert_int_eq(x->provide_cluster_info, 0);

	ck_assert_str_eq(find_user(kc, "gcp")->auth_provider, "gcp");
	ck_assert_int_eq(find_user(kc, "basic")->has_basic, 1);
	ck_assert_int_eq(find_user(kc, "imp")->has_impersonation, 1);

	ck_assert_str_eq(kc->contexts[0].name, "dev");
	ck_assert_str_eq(kc->contexts[0].cluster, "dev");
	ck_assert_str_eq(kc->contexts[0].user, "alice");
	ck_assert_str_eq(kc->contexts[0].ns, "agents");
	ck_assert_ptr_null(kc->contexts[1].ns);
	kubeconfig_free(kc);
}
END_TEST

START_TEST(test_parse_no_dir_keeps_relative)
{
	struct kubeconfig *kc = parse_ok(full_doc, NULL);

	ck_assert_str_eq(find_cluster(kc, "prod")->ca_file, "pki/ca.crt");
	ck_assert_str_eq(find_user(kc, "plug")->exec->command, "bin/get-token");
	kubeconfig_free(kc);
}
END_TEST

/* ---- parse: errors and odd YAML ---- */

struct parse_row {
	const char	*name;
	const char	*doc;
	const char	*err;	/* NULL: parses; else a substring */
	size_t		 nclusters;
	size_t		 nusers;
};

#define CL(extra) "clusters:\n- name: c\n  cluster:\n    server: s\n" extra

static const struct parse_row parse_rows[] = {
	{ "empty", "", NULL, 0, 0 },
	{ "null document", "~\n", NULL, 0, 0 },
	{ "comment only", "# nothing\n", NULL, 0, 0 },
	{ "null lists", "clusters:\nusers: ~\ncontexts: null\n", NULL, 0, 0 },
	{ "JSON", "{\"clusters\":[{\"name\":\"a\",\"cluster\":{\"server\":"
	    "\"https://x\"}}],\"users\":[{\"name\":\"u\",\"user\":{\"token\":"
	    "\"t\"}}]}", NULL, 1, 1 },
	{ "entry without body", "clusters: [{name: a}]\nusers: [{name: u}]\n",
	    NULL, 1, 1 },
	{ "plain number token", "users: [{name: u, user: {token: 12345}}]\n",
	    NULL, 0, 1 },
	{ "alias reused", "clusters:\n- &c {name: a, cluster: {server: s}}\n"
	    "users: [{name: u, user: &u {token: t}}, {name: v, user: *u}]\n",
	    NULL, 1, 2 },
	{ "merge key", "base: &b {server: s, insecure-skip-tls-verify: true}\n"
	    "clusters: [{name: a, cluster: {<<: *b, server: t}}]\n", NULL, 1,
	    0 },
	{ "merge key list", "x: &x {server: s}\ny: &y {proxy-url: p}\n"
	    "clusters: [{name: a, cluster: {<<: [*x, *y]}}]\n", NULL, 1, 0 },
	{ "alias bomb outside the walked fields",
	    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
	    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
	    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
	    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
	    "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
	    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
	    "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
	    "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n"
	    "clusters: []\n", NULL, 0, 0 },
	{ "not YAML", "clusters: [\n", "not valid YAML: line", 0, 0 },
	{ "tab indentation", "clusters:\n\t- name: a\n", "not valid YAML", 0,
	    0 },
	{ "undefined alias", "clusters: *nope\n", "not valid YAML", 0, 0 },
	{ "a list at the top", "- a\n- b\n", "not a mapping", 0, 0 },
	{ "a scalar at the top", "hello\n", "not a mapping", 0, 0 },
	{ "clusters a mapping", "clusters: {a: b}\n",
	    "clusters: expected a list", 0, 0 },
	{ "cluster entry a scalar", "clusters: [a]\n",
	    "clusters[0]: expected a mapping", 0, 0 },
	{ "missing name", "users: [{name: a}, {user: {token: t}}]\n",
	    "users[1].name: missing", 0, 0 },
	{ "empty name", "contexts: [{name: ''}]\n", "contexts[0].name: missing",
	    0, 0 },
	{ "name a list", "contexts: [{name: [a]}]\n",
	    "contexts[0].name: expected a string", 0, 0 },
	{ "duplicate name", "clusters: [{name: a}, {name: b}, {name: a}]\n",
	    "clusters[2].name: \"a\" is given twice", 0, 0 },
	{ "duplicate key", "current-context: a\ncurrent-context: b\n",
	    "current-context: given twice", 0, 0 },
	{ "cluster a list", "clusters: [{name: a, cluster: [1]}]\n",
	    "clusters[0].cluster: expected a mapping", 0, 0 },
	{ "server a mapping", "clusters: [{name: a, cluster: {server: {}}}]\n",
	    "clusters[0].cluster.server: expected a string", 0, 0 },
	{ "bad boolean", CL("    insecure-skip-tls-verify: maybe\n"),
	    "clusters[0].cluster.insecure-skip-tls-verify: expected true or "
	    "false", 0, 0 },
	{ "quoted boolean", CL("    insecure-skip-tls-verify: \"true\"\n"),
	    "insecure-skip-tls-verify: expected true or false", 0, 0 },
	{ "CA data not base64", CL("    certificate-authority-data: '!!!'\n"),
	    "clusters[0].cluster.certificate-authority-data: not valid base64",
	    0, 0 },
	{ "CA data without padding", CL("    certificate-authority-data: QQ\n"),
	    "certificate-authority-data: not valid base64", 0, 0 },
	{ "key data not base64", "users:\n- name: a\n  user:\n"
	    "    client-certificate-data: " B64_HELLO "\n"
	    "- name: b\n  user:\n    client-key-data: QUJD$\n",
	    "users[1].user.client-key-data: not valid base64", 0, 0 },
	{ "cert data not base64",
	    "users: [{name: a, user: {client-certificate-data: '*'}}]\n",
	    "users[0].user.client-certificate-data: not valid base64", 0, 0 },
	{ "NUL in a token", "users: [{name: a, user: {token: \"a\\0b\"}}]\n",
	    "users[0].user.token: contains a NUL byte", 0, 0 },
	{ "exec a string", "users: [{name: a, user: {exec: run}}]\n",
	    "users[0].user.exec: expected a mapping", 0, 0 },
	{ "exec args a string",
	    "users: [{name: a, user: {exec: {command: c, args: x}}}]\n",
	    "users[0].user.exec.args: expected a list", 0, 0 },
	{ "exec arg a mapping",
	    "users: [{name: a, user: {exec: {command: c, args: [x, {}]}}}]\n",
	    "users[0].user.exec.args[1]: expected a string", 0, 0 },
	{ "exec env without name",
	    "users: [{name: a, user: {exec: {command: c, env: [{value: v}]}}}]\n",
	    "users[0].user.exec.env[0].name: missing", 0, 0 },
	{ "exec env name with =",
	    "users: [{name: a, user: {exec: {env: [{name: 'A=B'}]}}}]\n",
	    "users[0].user.exec.env[0].name: missing or not a valid", 0, 0 },
	{ "exec env a list of strings",
	    "users: [{name: a, user: {exec: {env: [A=B]}}}]\n",
	    "users[0].user.exec.env[0]: expected a mapping", 0, 0 },
	{ "provideClusterInfo not a boolean",
	    "users: [{name: a, user: {exec: {provideClusterInfo: 2}}}]\n",
	    "exec.provideClusterInfo: expected true or false", 0, 0 },
	{ "merge key on a scalar", "clusters: [{name: a, cluster: {<<: x}}]\n",
	    "clusters[0].cluster.<<: a merge key needs a mapping", 0, 0 },
	{ "a cycle through an anchor", "clusters: &a [*a]\n",
	    "clusters[0]: expected a mapping", 0, 0 },
	{ "a cycle inside an entry",
	    "users: &u [{name: a, user: *u}]\n",
	    "users[0].user: expected a mapping", 0, 0 },
};

START_TEST(test_parse_rows)
{
	const struct parse_row *row = &parse_rows[_i];
	struct kubeconfig *kc = (void *)1;
	char		 err[512] = "";
	int		 rc;

	rc = kubeconfig_parse(row->doc, strlen(row->doc), "/d", &kc, err,
	    sizeof err);
	if (row->err == NULL) {
		ck_assert_msg(rc == 0, "%s: %s", row->name, err);
		ck_assert_uint_eq(kc->nclusters, row->nclusters);
		ck_assert_uint_eq(kc->nusers, row->nusers);
		kubeconfig_free(kc);
		return;
	}
	ck_assert_msg(rc == -AS_EINVAL, "%s: rc %d", row->name, rc);
	ck_assert_ptr_null(kc);
	ck_assert_msg(strstr(err, row->err) != NULL,
	    "%s: err \"%s\" lacks \"%s\"", row->name, err, row->err);
}
END_TEST

/* Merge keys: the key itself wins over the merged one. */
START_TEST(test_parse_merge_key_values)
{
	struct kubeconfig *kc = parse_ok(parse_rows[8].doc, NULL);

	ck_assert_str_eq(kc->clusters[0].server, "t");
	ck_assert_int_eq(kc->clusters[0].insecure_skip_tls_verify, 1);
	kubeconfig_free(kc);
	kc = parse_ok(parse_rows[9].doc, NULL);
	ck_assert_str_eq(kc->clusters[0].server, "s");
	ck_assert_str_eq(kc->clusters[0].proxy_url, "p");
	kubeconfig_free(kc);
}
END_TEST

START_TEST(test_parse_null_data_and_length)
{
	struct kubeconfig *kc = NULL;
	char		 err[256];

	ck_assert_int_eq(kubeconfig_parse(NULL, 10, NULL, &kc, err,
	    sizeof err), 0);
	ck_assert_uint_eq(kc->nclusters, 0);
	kubeconfig_free(kc);
	/* len, not the NUL, ends the input. */
	ck_assert_int_eq(kubeconfig_parse(full_doc, 25, NULL, &kc, err,
	    sizeof err), 0);
	ck_assert_ptr_null(kc->current_context);
	kubeconfig_free(kc);
	kubeconfig_free(NULL);
}
END_TEST

/* Big lists parse in n log n; a repeat at the end is still found. */
START_TEST(test_parse_huge)
{
	struct as_buf	 b = { NULL, 0, 0 };
	struct kubeconfig *kc = NULL;
	char		 err[256] = "";
	int		 i, n = 20000;

	as_buf_printf(&b, "clusters:\n");
	for (i = 0; i < n; i++)
		as_buf_printf(&b, "- {name: c%d, cluster: {server: "
		    "'https://h%d'}}\n", i, i);
	ck_assert_int_eq(kubeconfig_parse(b.p, b.len, NULL, &kc, err,
	    sizeof err), 0);
	ck_assert_uint_eq(kc->nclusters, (size_t)n);
	ck_assert_str_eq(kc->clusters[n - 1].server, "https://h19999");
	kubeconfig_free(kc);
	as_buf_printf(&b, "- {name: c7}\n");
	ck_assert_int_eq(kubeconfig_parse(b.p, b.len, NULL, &kc, err,
	    sizeof err), -AS_EINVAL);
	ck_assert_msg(strstr(err, "clusters[20000].name: \"c7\" is given "
	    "twice") != NULL, "%s", err);
	free(b.p);
}
END_TEST

/* A field path longer than the buffer is cut, not overrun. */
START_TEST(test_parse_long_path)
{
	struct kubeconfig *kc = NULL;
	char		 err[16];

	ck_assert_int_eq(kubeconfig_parse("clusters: [x]", 13, NULL, &kc, err,
	    sizeof err), -AS_EINVAL);
	ck_assert_uint_eq(strlen(err), sizeof err - 1);
}
END_TEST

/* ---- select ---- */

static const char select_doc[] =
    "current-context: ok\n"
    "clusters:\n"
    "- {name: c, cluster: {server: 'https://c', certificate-authority-data: "
    B64_HELLO "}}\n"
    "- {name: noserver, cluster: {}}\n"
    "- {name: sni, cluster: {server: s, tls-server-name: x}}\n"
    "- {name: proxy, cluster: {server: s, proxy-url: http://p}}\n"
    "- {name: both, cluster: {server: s, certificate-authority: ca,"
    " insecure-skip-tls-verify: true}}\n"
    "users:\n"
    "- {name: tok, user: {token: t}}\n"
    "- {name: gcp, user: {auth-provider: {name: gcp}}}\n"
    "- {name: oidc, user: {auth-provider: {name: oidc, config: {}}}}\n"
    "- {name: basic, user: {username: u, password: p}}\n"
    "- {name: imp, user: {token: t, as-uid: x}}\n"
    "- {name: certonly, user: {client-certificate: c.crt}}\n"
    "- {name: keyonly, user: {client-key-data: " B64_KEY "}}\n"
    "- {name: nocmd, user: {exec: {apiVersion: "
    "client.authentication.k8s.io/v1, interactiveMode: Never}}}\n"
    "- {name: alpha, user: {exec: {command: c, apiVersion: "
    "client.authentication.k8s.io/v1alpha1}}}\n"
    "- {name: v1nomode, user: {exec: {command: c, apiVersion: "
    "client.authentication.k8s.io/v1}}}\n"
    "- {name: always, user: {exec: {command: c, apiVersion: "
    "client.authentication.k8s.io/v1, interactiveMode: Always}}}\n"
    "- {name: beta, user: {exec: {command: c, apiVersion: "
    "client.authentication.k8s.io/v1beta1}}}\n"
    "contexts:\n"
    "- {name: ok, context: {cluster: c, user: tok}}\n"
    "- {name: anon, context: {cluster: c}}\n"
    "- {name: nocluster, context: {user: tok}}\n"
    "- {name: gone, context: {cluster: gone, user: tok}}\n"
    "- {name: goneuser, context: {cluster: c, user: nobody}}\n"
    "- {name: noserver, context: {cluster: noserver}}\n"
    "- {name: sni, context: {cluster: sni}}\n"
    "- {name: proxy, context: {cluster: proxy}}\n"
    "- {name: both, context: {cluster: both}}\n"
    "- {name: gcp, context: {cluster: c, user: gcp}}\n"
    "- {name: oidc, context: {cluster: c, user: oidc}}\n"
    "- {name: basic, context: {cluster: c, user: basic}}\n"
    "- {name: imp, context: {cluster: c, user: imp}}\n"
    "- {name: certonly, context: {cluster: c, user: certonly}}\n"
    "- {name: keyonly, context: {cluster: c, user: keyonly}}\n"
    "- {name: nocmd, context: {cluster: c, user: nocmd}}\n"
    "- {name: alpha, context: {cluster: c, user: alpha}}\n"
    "- {name: v1nomode, context: {cluster: c, user: v1nomode}}\n"
    "- {name: always, context: {cluster: c, user: always}}\n"
    "- {name: beta, context: {cluster: c, user: beta}}\n";

struct select_row {
	const char	*context;	/* NULL: current-context */
	const char	*err;		/* NULL: selects */
	const char	*user;		/* the user selected, "" none */
};

static const struct select_row select_rows[] = {
	{ NULL, NULL, "tok" },
	{ "", NULL, "tok" },
	{ "anon", NULL, "" },
	{ "beta", NULL, "beta" },
	{ "missing", "context \"missing\" not found", NULL },
	{ "nocluster", "context \"nocluster\" names no cluster", NULL },
	{ "gone", "context \"gone\": cluster \"gone\" not found", NULL },
	{ "goneuser", "context \"goneuser\": user \"nobody\" not found", NULL },
	{ "noserver", "cluster \"noserver\" has no server", NULL },
	{ "sni", "cluster \"sni\": tls-server-name is not supported", NULL },
	{ "proxy", "cluster \"proxy\": proxy-url is not supported", NULL },
	{ "both", "insecure-skip-tls-verify cannot be combined with a "
	    "certificate-authority", NULL },
	{ "gcp", "user \"gcp\": auth-provider \"gcp\" is not supported; use an "
	    "exec credential plugin", NULL },
	{ "oidc", "auth-provider \"oidc\" is not supported", NULL },
	{ "basic", "user \"basic\": username/password (basic authentication) "
	    "is not supported", NULL },
	{ "imp", "user \"imp\": impersonation", NULL },
	{ "certonly", "user \"certonly\": client-certificate without "
	    "client-key", NULL },
	{ "keyonly", "user \"keyonly\": client-key without client-certificate",
	    NULL },
	{ "nocmd", "user \"nocmd\": exec.command is missing", NULL },
	{ "alpha", "exec.apiVersion \"client.authentication.k8s.io/v1alpha1\" "
	    "is not supported", NULL },
	{ "v1nomode", "exec.interactiveMode must be set", NULL },
	{ "always", "exec.interactiveMode \"Always\" cannot be honoured", NULL },
};

START_TEST(test_select_rows)
{
	const struct select_row *row = &select_rows[_i];
	struct kubeconfig_selection sel;
	struct kubeconfig *kc = parse_ok(select_doc, NULL);
	char		 err[512] = "";
	int		 rc;

	rc = kubeconfig_select(kc, row->context, &sel, err, sizeof err);
	if (row->err == NULL) {
		ck_assert_msg(rc == 0, "%s: %s", row->context, err);
		ck_assert_str_eq(sel.cluster->name, "c");
		if (*row->user == '\0')
			ck_assert_ptr_null(sel.user);
		else
			ck_assert_str_eq(sel.user->name, row->user);
	} else {
		ck_assert_int_eq(rc, -AS_EINVAL);
		ck_assert_msg(strstr(err, row->err) != NULL,
		    "%s: err \"%s\" lacks \"%s\"", row->context, err,
		    row->err);
	}
	kubeconfig_free(kc);
}
END_TEST

START_TEST(test_select_no_current_context)
{
	struct kubeconfig_selection sel;
	struct kubeconfig *kc = parse_ok("clusters: []\n", NULL);
	char		 err[256] = "";

	ck_assert_int_eq(kubeconfig_select(kc, NULL, &sel, err, sizeof err),
	    -AS_EINVAL);
	ck_assert(strstr(err, "no current-context is set") != NULL);
	kubeconfig_free(kc);
}
END_TEST

/* ---- merge (client-go loader.go: the first file to set a name wins) ---- */

START_TEST(test_merge)
{
	struct kubeconfig *a, *b, *c;

	a = parse_ok("users: [{name: u, user: {token: first}}]\n"
	    "contexts: [{name: x, context: {cluster: c1, user: u}}]\n", NULL);
	b = parse_ok("current-context: from-b\n"
	    "clusters: [{name: c1, cluster: {server: s1}}]\n"
	    "users: [{name: u, user: {token: second}},"
	    " {name: v, user: {token: v}}]\n"
	    "contexts: [{name: x, context: {cluster: other}},"
	    " {name: from-b, context: {cluster: c1, user: v}}]\n", NULL);
	c = parse_ok("current-context: from-c\n"
	    "clusters: [{name: c1, cluster: {server: s3}},"
	    " {name: c2, cluster: {server: s2}}]\n", NULL);
	kubeconfig_merge(a, b);
	kubeconfig_merge(a, c);
	kubeconfig_merge(a, NULL);
	ck_assert_str_eq(a->current_context, "from-b");
	ck_assert_uint_eq(a->nclusters, 2);
	ck_assert_str_eq(find_cluster(a, "c1")->server, "s1");
	ck_assert_str_eq(find_cluster(a, "c2")->server, "s2");
	ck_assert_uint_eq(a->nusers, 2);
	ck_assert_str_eq(find_user(a, "u")->token, "first");
	ck_assert_str_eq(find_user(a, "v")->token, "v");
	ck_assert_uint_eq(a->ncontexts, 2);
	ck_assert_str_eq(a->contexts[0].cluster, "c1");
	kubeconfig_free(a);
}
END_TEST

/* ---- files and the environment ---- */

static char	 tmpdir[64];

static void
files_setup(void)
{
	char	 path[128];

	snprintf(tmpdir, sizeof tmpdir, "/tmp/check_kubeconfig.%d.XXXXXX",
	    (int)getpid());
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(path, sizeof path, "%s/sub", tmpdir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/home", tmpdir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/home/.kube", tmpdir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	unsetenv("KUBECONFIG");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

static void
files_teardown(void)
{
	char	 cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	(void)!system(cmd);
	unsetenv("KUBECONFIG");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

/* Writes text to tmpdir/name; returns the path (static buffer rotation). */
static const char *
put(const char *name, const char *text)
{
	static char	 paths[4][160];
	static int	 next;
	char		*p = paths[next++ % 4];

	snprintf(p, sizeof paths[0], "%s/%s", tmpdir, name);
	tu_write_file(p, text);
	return (p);
}

#define ONE_DOC								\
	"current-context: one\n"					\
	"clusters: [{name: c, cluster: {server: 'https://one',"		\
	" certificate-authority: ca.crt}}]\n"				\
	"users: [{name: u, user: {tokenFile: tok, client-certificate:"	\
	" pki/u.crt, client-key: pki/u.key}}]\n"			\
	"contexts: [{name: one, context: {cluster: c, user: u}},"	\
	" {name: two, context: {cluster: c2, user: u}}]\n"

START_TEST(test_load_relative_paths)
{
	struct kubeconfig *kc = NULL;
	const char	*paths[1];
	char		 err[512] = "", want[192];

	paths[0] = put("sub/config", ONE_DOC);
	ck_assert_int_eq(kubeconfig_load(paths, 1, 0, &kc, err, sizeof err),
	    0);
	snprintf(want, sizeof want, "%s/sub/ca.crt", tmpdir);
	ck_assert_str_eq(kc->clusters[0].ca_file, want);
	snprintf(want, sizeof want, "%s/sub/tok", tmpdir);
	ck_assert_str_eq(kc->users[0].token_file, want);
	snprintf(want, sizeof want, "%s/sub/pki/u.key", tmpdir);
	ck_assert_str_eq(kc->users[0].key_file, want);
	kubeconfig_free(kc);
}
END_TEST

START_TEST(test_load_list)
{
	struct kubeconfig *kc = NULL;
	const char	*paths[3];
	char		 err[512] = "", missing[128];

	snprintf(missing, sizeof missing, "%s/missing", tmpdir);
	paths[0] = missing;
	paths[1] = put("a", "clusters: [{name: c2, cluster: {server: two}}]\n");
	paths[2] = put("b", ONE_DOC);
	ck_assert_int_eq(kubeconfig_load(paths, 3, 1, &kc, err, sizeof err),
	    0);
	ck_assert_str_eq(kc->current_context, "one");
	ck_assert_uint_eq(kc->nclusters, 2);
	ck_assert_str_eq(kc->clusters[0].name, "c2");
	kubeconfig_free(kc);

	/* An explicit file must exist; so must one file of a list. */
	ck_assert_int_eq(kubeconfig_load(paths, 1, 0, &kc, err, sizeof err),
	    -AS_EIO);
	ck_assert_msg(strstr(err, missing) != NULL, "%s", err);
	ck_assert_int_eq(kubeconfig_load(paths, 1, 1, &kc, err, sizeof err),
	    -AS_ENOTFOUND);
	ck_assert(strstr(err, "none of the kubeconfig files exists") != NULL);
	ck_assert_ptr_null(kc);

	/* A bad file names itself and the field. */
	paths[1] = put("bad", "users: [{name: u, user: {client-key-data: '%'}}]");
	ck_assert_int_eq(kubeconfig_load(paths, 3, 1, &kc, err, sizeof err),
	    -AS_EINVAL);
	ck_assert_msg(strstr(err, "/bad: users[0].user.client-key-data: not "
	    "valid base64") != NULL, "%s", err);
}
END_TEST

START_TEST(test_load_too_big)
{
	struct kubeconfig *kc = NULL;
	const char	*paths[1];
	char		 err[512] = "";
	char		*big;
	FILE		*fp;

	paths[0] = put("big", "");
	ck_assert_ptr_nonnull(fp = fopen(paths[0], "w"));
	big = xcalloc(1, 1024 * 1024);
	memset(big, '#', 1024 * 1024 - 1);
	for (int i = 0; i < 17; i++)
		fputs(big, fp);
	fclose(fp);
	free(big);
	ck_assert_int_eq(kubeconfig_load(paths, 1, 0, &kc, err, sizeof err),
	    -AS_EIO);
	ck_assert_msg(strstr(err, "larger than") != NULL, "%s", err);
}
END_TEST

/* ---- kubeconfig_resolve: the order and the overrides ---- */

static int
resolve(const struct k8s_options *in, struct k8s_options *out,
    struct kubeconfig **kc, char *desc, char *err)
{
	static char	 buf[1024];

	return (kubeconfig_resolve(in, out, kc, buf, sizeof buf, desc, 1024,
	    err, 512));
}

START_TEST(test_resolve_order)
{
	struct k8s_options in, out;
	struct kubeconfig *kc = NULL;
	char		 desc[1024], err[512], home[128], env[320];
	const char	*flag;

	memset(&in, 0, sizeof in);
	snprintf(home, sizeof home, "%s/home", tmpdir);
	setenv("HOME", home, 1);

	/* Nothing at all: a message that says where it looked. */
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), -AS_EINVAL);
	ck_assert_msg(strstr(err, "no Kubernetes configuration") != NULL &&
	    strstr(err, "/home/.kube/config") != NULL, "%s", err);

	/* ~/.kube/config, last. */
	put("home/.kube/config", "current-context: h\nclusters: [{name: c, "
	    "cluster: {server: 'https://home'}}]\ncontexts: [{name: h, "
	    "context: {cluster: c}}]\n");
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), 0);
	ck_assert_str_eq(out.apiserver, "https://home");
	ck_assert_msg(strstr(desc, "/home/.kube/config") != NULL &&
	    strstr(desc, "no credentials") != NULL, "%s", desc);
	kubeconfig_free(kc);

	/* In-cluster before it. */
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), -AS_EINVAL);
	ck_assert_msg(strstr(err, "cannot read the token") != NULL, "%s", err);
	in.context = "x";
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), -AS_EINVAL);
	ck_assert(strstr(err, "--context needs a kubeconfig") != NULL);
	in.context = NULL;

	/* KUBECONFIG before that. */
	flag = put("sub/config", ONE_DOC);
	snprintf(env, sizeof env, "%s/nope::%s:%s", tmpdir, flag, flag);
	setenv("KUBECONFIG", env, 1);
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), 0);
	ck_assert_str_eq(out.apiserver, "https://one");
	ck_assert_msg(strstr(desc, "KUBECONFIG=") != NULL &&
	    strstr(desc, "context \"one\"") != NULL, "%s", desc);
	kubeconfig_free(kc);
	in.context = "two";
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), -AS_EINVAL);
	ck_assert_msg(strstr(err, "cluster \"c2\" not found") != NULL, "%s",
	    err);
	in.context = NULL;

	/* --apiserver alone reads no kubeconfig... */
	in.apiserver = "http://direct";
	in.token_file = "/t";
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), 0);
	ck_assert_ptr_null(kc);
	ck_assert_str_eq(out.apiserver, "http://direct");
	ck_assert_msg(strstr(desc, "--apiserver http://direct, token file /t")
	    != NULL, "%s", desc);
	in.context = "one";
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), -AS_EINVAL);
	in.context = NULL;
	in.apiserver = NULL;
	in.token_file = NULL;

	/* ...and --kubeconfig comes first of all. */
	in.kubeconfig = put("flag", "current-context: f\nclusters: [{name: c, "
	    "cluster: {server: 'https://flag'}}]\ncontexts: [{name: f, "
	    "context: {cluster: c}}]\n");
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), 0);
	ck_assert_str_eq(out.apiserver, "https://flag");
	ck_assert_msg(strstr(desc, "--kubeconfig ") != NULL, "%s", desc);
	kubeconfig_free(kc);
	in.kubeconfig = "/nonexistent/kubeconfig";
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), -AS_EIO);
	ck_assert_msg(strstr(err, "/nonexistent/kubeconfig") != NULL, "%s",
	    err);
}
END_TEST

START_TEST(test_resolve_overrides)
{
	struct k8s_options in, out;
	struct kubeconfig *kc = NULL;
	char		 desc[1024], err[512];

	memset(&in, 0, sizeof in);
	in.kubeconfig = put("k", "current-context: a\n"
	    "clusters: [{name: c, cluster: {server: 'https://file', "
	    "certificate-authority-data: " B64_HELLO "}}]\n"
	    "users: [{name: t, user: {token: secret-token}},"
	    " {name: x, user: {client-certificate-data: " B64_HELLO ","
	    " client-key-data: " B64_KEY ", client-key: ignored.key,"
	    " exec: {command: never-run, apiVersion:"
	    " client.authentication.k8s.io/v1beta1}}},"
	    " {name: e, user: {exec: {command: get-token, apiVersion:"
	    " client.authentication.k8s.io/v1beta1}}}]\n"
	    "contexts: [{name: a, context: {cluster: c, user: t}},"
	    " {name: b, context: {cluster: c, user: x}},"
	    " {name: e, context: {cluster: c, user: e}}]\n");

	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), 0);
	ck_assert_str_eq(out.apiserver, "https://file");
	ck_assert_uint_eq(out.ca_data_len, 5);
	ck_assert_ptr_null(out.ca_file);
	ck_assert_str_eq(out.token, "secret-token");
	ck_assert_ptr_null(out.exec);
	ck_assert_msg(strstr(desc, "user \"t\": token") != NULL, "%s", desc);
	ck_assert_msg(strstr(desc, "secret-token") == NULL, "%s", desc);
	kubeconfig_free(kc);

	/* The flags win: server, CA, token file. */
	in.apiserver = "https://flag";
	in.ca_file = "/flag/ca.crt";
	in.token_file = "/flag/token";
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), 0);
	ck_assert_str_eq(out.apiserver, "https://flag");
	ck_assert_str_eq(out.ca_file, "/flag/ca.crt");
	ck_assert_ptr_null(out.ca_data);
	ck_assert_str_eq(out.token_file, "/flag/token");
	ck_assert_ptr_null(out.token);
	ck_assert_msg(strstr(desc, "(--apiserver)") != NULL, "%s", desc);
	kubeconfig_free(kc);

	/* --insecure drops the file's CA. */
	in.apiserver = in.ca_file = in.token_file = NULL;
	in.insecure_skip_tls_verify = 1;
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), 0);
	ck_assert_ptr_null(out.ca_data);
	ck_assert_ptr_null(out.ca_file);
	ck_assert_int_eq(out.insecure_skip_tls_verify, 1);
	kubeconfig_free(kc);
	in.insecure_skip_tls_verify = 0;

	/* Certificate data wins over a file; a certificate over exec. */
	in.context = "b";
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), 0);
	ck_assert_uint_eq(out.cert_data_len, 5);
	ck_assert_ptr_nonnull(out.key_data);
	ck_assert_ptr_null(out.key_file);
	ck_assert_ptr_null(out.exec);
	ck_assert_msg(strstr(desc, "client certificate") != NULL, "%s", desc);
	kubeconfig_free(kc);

	/* Exec when nothing else; --token-file wins over it. */
	in.context = "e";
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), 0);
	ck_assert_ptr_nonnull(out.exec);
	ck_assert_ptr_nonnull(out.exec_cluster);
	ck_assert_msg(strstr(desc, "exec plugin get-token") != NULL, "%s",
	    desc);
	kubeconfig_free(kc);
	in.token_file = "/flag/token";
	ck_assert_int_eq(resolve(&in, &out, &kc, desc, err), 0);
	ck_assert_ptr_null(out.exec);
	kubeconfig_free(kc);
}
END_TEST

static Suite *
kubeconfig_suite(void)
{
	Suite	*s = suite_create("kubeconfig");
	TCase	*tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, test_parse_every_field);
	tcase_add_test(tc, test_parse_no_dir_keeps_relative);
	tcase_add_loop_test(tc, test_parse_rows, 0,
	    (int)AS_ARRAY_SIZE(parse_rows));
	tcase_add_test(tc, test_parse_merge_key_values);
	tcase_add_test(tc, test_parse_null_data_and_length);
	tcase_add_test(tc, test_parse_huge);
	tcase_add_test(tc, test_parse_long_path);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("select");
	tcase_add_loop_test(tc, test_select_rows, 0,
	    (int)AS_ARRAY_SIZE(select_rows));
	tcase_add_test(tc, test_select_no_current_context);
	tcase_add_test(tc, test_merge);
	suite_add_tcase(s, tc);

	tc = tu_tcase(s, "files", 60, NULL, NULL, files_setup,
	    files_teardown);
	tcase_add_test(tc, test_load_relative_paths);
	tcase_add_test(tc, test_load_list);
	tcase_add_test(tc, test_load_too_big);
	tcase_add_test(tc, test_resolve_order);
	tcase_add_test(tc, test_resolve_overrides);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(kubeconfig_suite()));
}
