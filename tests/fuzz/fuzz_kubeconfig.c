/*
 * fuzz_kubeconfig.c: libFuzzer target for the kubeconfig parser, the
 * context selection and the merge (all pure), the ExecCredential parser
 * and the base64 decoder.  Every input must parse or fail with a reason,
 * never crash or leak; what parses must select, merge with itself and
 * free cleanly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "k8s/execcred.h"
#include "k8s/kubeconfig.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kubeconfig_selection sel;
	struct kubeconfig *kc = NULL, *again = NULL;
	struct execcred_cred cred;
	char		 err[512];
	size_t		 i, len;
	char		*b;

	err[0] = '\0';
	if (kubeconfig_parse((const char *)data, size, "/fuzz", &kc, err,
	    sizeof err) == 0) {
		if (kc == NULL)
			abort();
		/* Every context, then the current one. */
		for (i = 0; i < kc->ncontexts; i++) {
			err[0] = '\0';
			if (kubeconfig_select(kc, kc->contexts[i].name, &sel,
			    err, sizeof err) != 0 && err[0] == '\0')
				abort();
		}
		err[0] = '\0';
		if (kubeconfig_select(kc, NULL, &sel, err, sizeof err) != 0 &&
		    err[0] == '\0')
			abort();
		/* Merging a copy changes nothing: every name is taken. */
		if (kubeconfig_parse((const char *)data, size, NULL, &again,
		    err, sizeof err) != 0)
			abort();
		len = kc->nclusters + kc->nusers + kc->ncontexts;
		kubeconfig_merge(kc, again);
		if (kc->nclusters + kc->nusers + kc->ncontexts != len)
			abort();
		kubeconfig_free(kc);
	} else if (kc != NULL || err[0] == '\0')
		abort();	/* a failure always explains itself */

	memset(&cred, 0, sizeof cred);
	err[0] = '\0';
	if (execcred_parse((const char *)data, size,
	    "client.authentication.k8s.io/v1", &cred, err, sizeof err) == 0) {
		if (cred.token == NULL && cred.cert == NULL)
			abort();
		execcred_cred_clear(&cred);
	} else if (err[0] == '\0' || cred.token != NULL)
		abort();

	if ((b = as_base64_decode((const char *)data, size, &len)) != NULL) {
		if (len > size)
			abort();
		free(b);
	}
	return (0);
}
