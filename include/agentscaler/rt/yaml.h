/*
 * yaml.h: YAML text into cJSON values (scheduler/rt/yaml.c, on libyaml's
 * document API), for the files people write for kubectl: the config
 * (--config, --check-config) and KEDA's objects (agentscaler convert).
 *
 * Scalars are typed as Kubernetes' YAML reader (sigs.k8s.io/yaml, YAML
 * 1.1 through go-yaml) types them for the shapes our objects use: a
 * quoted scalar is a string; a plain one is null (~, null, Null, NULL or
 * empty), a boolean (true/false in any of the three cases YAML allows),
 * an integer or a float (decimal, with sign, fraction and exponent), else
 * a string.  yes/no/on/off stay strings (YAML 1.2; a field that wants a
 * boolean then says so).  Mapping keys are scalars, kept as strings.
 * Aliases are expanded; a document of more than YAML_MAX_NODES values, or
 * deeper than YAML_MAX_DEPTH, is refused (a few aliases can otherwise
 * make billions).  Pure: bytes in, values out.
 *
 * Ownership: *out is the caller's (cJSON_Delete()).
 */
#ifndef AGENTSCALER_RT_YAML_H
#define AGENTSCALER_RT_YAML_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <yaml.h>

#define YAML_MAX_NODES	1000000
#define YAML_MAX_DEPTH	64

/*
 * Every document of buf (separated by ---) as one element of the array
 * *out, in order; documents that are empty or null are left out.  line,
 * when not NULL, receives a parallel array of each kept document's first
 * line (1-based).  Returns 0, or -AS_EINVAL with "line L, column C: ..."
 * in err and *out NULL.
 */
int	 as_yaml_parse(const char *buf, size_t len, cJSON **out, cJSON **lines,
	    char *err, size_t errlen);

/*
 * "not valid YAML: line L, column C: <libyaml's problem and context>" of a
 * parser whose load failed, into err (kubeconfig.c says it the same way).
 */
void	 as_yaml_problem(const yaml_parser_t *, char *err, size_t errlen);

#endif
