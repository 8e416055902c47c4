/*
 * yaml.c: YAML documents into cJSON (yaml.h).  libyaml loads a whole
 * document into its node table.  A first walk counts the values the tree
 * would have and its height, each node once (aliases share libyaml nodes,
 * so a few of them can stand for billions of values: the count, not the
 * file size, bounds the work), and refuses too many or too deep before
 * anything is made; the second makes the cJSON tree of the root.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/rt/yaml.h"

struct yjs {
	yaml_document_t	*doc;
	size_t		*count;		/* per node: values below; 0 unknown */
	size_t		*height;
	char		*err;
	size_t		 errlen;
};

static int	 yjs_node(struct yjs *, yaml_node_t *, int, cJSON **);

/* Whether s (n bytes) is one of the words in list (NULL-ended). */
static int
yjs_word(const char *s, size_t n, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strlen(*list) == n && memcmp(*list, s, n) == 0)
			return (1);
	return (0);
}

/* A decimal number: [-+]digits[.digits][(e|E)[-+]digits], or .5 */
static int
yjs_number(const char *s, size_t n, int *integer)
{
	size_t	 i = 0, digits = 0;

	*integer = 1;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	for (; i < n && isdigit((unsigned char)s[i]); i++)
		digits++;
	if (i < n && s[i] == '.') {
		*integer = 0;
		for (i++; i < n && isdigit((unsigned char)s[i]); i++)
			digits++;
	}
	if (digits == 0)
		return (0);
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		*integer = 0;
		i++;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		if (i >= n || !isdigit((unsigned char)s[i]))
			return (0);
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	}
	return (i == n);
}

static cJSON *
yjs_scalar(const yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL",
	    NULL };
	static const char *const yes[] = { "true", "True", "TRUE", NULL };
	static const char *const no[] = { "false", "False", "FALSE", NULL };
	const char	*s = (const char *)n->data.scalar.value;
	size_t		 len = n->data.scalar.length;
	char		*t;
	double		 v;
	int		 integer;
	cJSON		*o;

	if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		if (yjs_word(s, len, nulls))
			return (cJSON_CreateNull());
		if (yjs_word(s, len, yes))
			return (cJSON_CreateTrue());
		if (yjs_word(s, len, no))
			return (cJSON_CreateFalse());
		if (yjs_number(s, len, &integer)) {
			t = xstrndup(s, len);
			v = strtod(t, NULL);
			free(t);
			if (isfinite(v))
				return (cJSON_CreateNumber(v));
		}
	}
	t = xstrndup(s, len);
	o = cJSON_CreateString(t);
	free(t);
	return (o);
}

static int
yjs_fail(struct yjs *y, const yaml_node_t *n, const char *what)
{
	snprintf(y->err, y->errlen, "line %zu, column %zu: %s",
	    n->start_mark.line + 1, n->start_mark.column + 1, what);
	return (-AS_EINVAL);
}

/*
 * The values of node id and below into y->count[id - 1], its height into
 * y->height; each node walked once.  A node met again before its walk is
 * done is a cycle (libyaml does not make them; counted as too deep).
 */
static void
yjs_count(struct yjs *y, int id, size_t depth)
{
	yaml_node_t	*n = yaml_document_get_node(y->doc, id);
	yaml_node_item_t *it;
	yaml_node_pair_t *pr;
	size_t		 c = 1, h = 0, i = (size_t)id - 1;

	if (n == NULL || y->count[i] != 0)
		return;
	y->count[i] = 1;
	y->height[i] = YAML_MAX_DEPTH + 1;	/* in progress: a cycle */
	if (depth > YAML_MAX_DEPTH)
		return;
	if (n->type == YAML_SEQUENCE_NODE)
		for (it = n->data.sequence.items.start;
		    it < n->data.sequence.items.top; it++) {
			yjs_count(y, *it, depth + 1);
			c += y->count[*it - 1];
			if (y->height[*it - 1] > h)
				h = y->height[*it - 1];
			if (c > YAML_MAX_NODES)
				break;
		}
	else if (n->type == YAML_MAPPING_NODE)
		for (pr = n->data.mapping.pairs.start;
		    pr < n->data.mapping.pairs.top; pr++) {
			yjs_count(y, pr->value, depth + 1);
			c += y->count[pr->value - 1];
			if (y->height[pr->value - 1] > h)
				h = y->height[pr->value - 1];
			if (c > YAML_MAX_NODES)
				break;
		}
	y->count[i] = c;
	y->height[i] = h + 1;
}

static int
yjs_node(struct yjs *y, yaml_node_t *n, int depth, cJSON **out)
{
	yaml_node_item_t *it;
	yaml_node_pair_t *pr;
	yaml_node_t	*k, *v;
	cJSON		*o, *c;
	char		*key;
	int		 rc;

	*out = NULL;
	switch (n->type) {
	case YAML_SCALAR_NODE:
		*out = yjs_scalar(n);
		return (0);
	case YAML_SEQUENCE_NODE:
		o = cJSON_CreateArray();
		for (it = n->data.sequence.items.start;
		    it < n->data.sequence.items.top; it++) {
			if ((rc = yjs_node(y, yaml_document_get_node(y->doc,
			    *it), depth + 1, &c)) != 0) {
				cJSON_Delete(o);
				return (rc);
			}
			cJSON_AddItemToArray(o, c);
		}
		*out = o;
		return (0);
	case YAML_MAPPING_NODE:
		o = cJSON_CreateObject();
		for (pr = n->data.mapping.pairs.start;
		    pr < n->data.mapping.pairs.top; pr++) {
			k = yaml_document_get_node(y->doc, pr->key);
			v = yaml_document_get_node(y->doc, pr->value);
			if (k == NULL || v == NULL ||
			    k->type != YAML_SCALAR_NODE) {
				cJSON_Delete(o);
				return (yjs_fail(y, k != NULL ? k : n,
				    "a mapping key that is not a scalar"));
			}
			key = xstrndup((const char *)k->data.scalar.value,
			    k->data.scalar.length);
			if (cJSON_GetObjectItemCaseSensitive(o, key) != NULL) {
				free(key);
				cJSON_Delete(o);
				return (yjs_fail(y, k, "a key given twice"));
			}
			if ((rc = yjs_node(y, v, depth + 1, &c)) != 0) {
				free(key);
				cJSON_Delete(o);
				return (rc);
			}
			cJSON_AddItemToObject(o, key, c);
			free(key);
		}
		*out = o;
		return (0);
	default:
		return (yjs_fail(y, n, "an empty node"));
	}
}

void
as_yaml_problem(const yaml_parser_t *p, char *err, size_t errlen)
{
	snprintf(err, errlen, "not valid YAML: line %zu, column %zu: %s%s%s",
	    p->problem_mark.line + 1, p->problem_mark.column + 1,
	    p->problem != NULL ? p->problem : "error",
	    p->context != NULL ? " " : "",
	    p->context != NULL ? p->context : "");
}

int
as_yaml_parse(const char *buf, size_t len, cJSON **out, cJSON **lines,
    char *err, size_t errlen)
{
	yaml_parser_t	 parser;
	yaml_document_t	 doc;
	yaml_node_t	*root;
	struct yjs	 y;
	cJSON		*docs, *lns, *v;
	int		 rc = -AS_EINVAL;

	*out = NULL;
	if (lines != NULL)
		*lines = NULL;
	if (!yaml_parser_initialize(&parser)) {
		snprintf(err, errlen, "cannot initialise the YAML parser");
		return (-AS_ENOMEM);
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)(buf !=
	    NULL ? buf : ""), buf != NULL ? len : 0);
	docs = cJSON_CreateArray();
	lns = cJSON_CreateArray();
	for (;;) {
		if (!yaml_parser_load(&parser, &doc)) {
			as_yaml_problem(&parser, err, errlen);
			rc = -AS_EINVAL;
			goto out;
		}
		if ((root = yaml_document_get_root_node(&doc)) == NULL) {
			yaml_document_delete(&doc);
			break;		/* the end of the stream */
		}
		memset(&y, 0, sizeof y);
		y.doc = &doc;
		y.err = err;
		y.errlen = errlen;
		y.count = xcalloc((size_t)(doc.nodes.top - doc.nodes.start),
		    sizeof *y.count);
		y.height = xcalloc((size_t)(doc.nodes.top - doc.nodes.start),
		    sizeof *y.height);
		yjs_count(&y, 1, 0);
		v = NULL;
		if (y.count[0] > YAML_MAX_NODES)
			rc = yjs_fail(&y, root, "more than 1000000 values "
			    "(aliases?)");
		else if (y.height[0] > YAML_MAX_DEPTH)
			rc = yjs_fail(&y, root, "nested more than 64 deep");
		else
			rc = yjs_node(&y, root, 0, &v);
		free(y.count);
		free(y.height);
		if (rc == 0 && !cJSON_IsNull(v)) {
			cJSON_AddItemToArray(docs, v);
			cJSON_AddItemToArray(lns, cJSON_CreateNumber(
			    (double)root->start_mark.line + 1));
		} else
			cJSON_Delete(v);
		yaml_document_delete(&doc);
		if (rc != 0)
			goto out;
	}
	*out = docs;
	docs = NULL;
	if (lines != NULL) {
		*lines = lns;
		lns = NULL;
	}
	rc = 0;
out:
	cJSON_Delete(docs);
	cJSON_Delete(lns);
	yaml_parser_delete(&parser);
	return (rc);
}

_Static_assert(YAML_MAX_NODES == 1000000 && YAML_MAX_DEPTH == 64,
    "yjs_node()'s messages name the limits");
