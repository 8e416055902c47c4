/*
 * fuzz_execcred.c: libFuzzer target for the exec credential plugin's
 * output (execcred_parse, k8s/execcred.c), pure, in both API versions: a
 * reply is a token or a certificate and key, or refused with a reason, and
 * nothing is left allocated either way.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/execcred.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const versions[] = {
	    "client.authentication.k8s.io/v1",
	    "client.authentication.k8s.io/v1beta1" };
	struct execcred_cred cred;
	char		 err[256];
	size_t		 i;

	for (i = 0; i < 2; i++) {
		memset(&cred, 0, sizeof cred);
		err[0] = '\0';
		if (execcred_parse((const char *)data, size, versions[i], &cred,
		    err, sizeof err) == 0) {
			if (cred.token == NULL && cred.cert == NULL)
				abort();
			if ((cred.cert == NULL) != (cred.key == NULL))
				abort();
			execcred_cred_clear(&cred);
		} else if (err[0] == '\0' || cred.token != NULL ||
		    cred.cert != NULL || cred.key != NULL)
			abort();
	}
	return (0);
}
