/*
 * quantity.c: the Kubernetes quantity grammar (quantity.h).  Pure.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "quantity.h"

/*
 * Kubernetes quantity suffixes (k8s.io/apimachinery pkg/api/resource
 * suffix.go): binary SI as powers of two, decimal SI as powers of ten.
 */
static const struct {
	const char	*suffix;
	int		 pow2;
	int		 pow10;
} quantity_suffixes[] = {
	{ "Ki", 10, 0 }, { "Mi", 20, 0 }, { "Gi", 30, 0 }, { "Ti", 40, 0 },
	{ "Pi", 50, 0 }, { "Ei", 60, 0 },
	{ "n", 0, -9 }, { "u", 0, -6 }, { "m", 0, -3 }, { "", 0, 0 },
	{ "k", 0, 3 }, { "M", 0, 6 }, { "G", 0, 9 }, { "T", 0, 12 },
	{ "P", 0, 15 }, { "E", 0, 18 },
};

static int
quantity_digit(char c)
{
	return (c >= '0' && c <= '9');
}

/*
 * The grammar of k8s.io/apimachinery pkg/api/resource quantity.go:
 *
 *   quantity ::= [sign] number suffix
 *   number   ::= digits | digits "." | digits "." digits | "." digits
 *   suffix   ::= "" | binarySI | decimalSI | ("e" | "E") [sign] digits
 *
 * checked by hand so that strtod() never sees what Kubernetes refuses
 * (hex, "inf", "nan", spaces, an exponent followed by a suffix).  The
 * exponent must fit an int64 as ParseQuantity's strconv.ParseInt demands.
 * Unlike Kubernetes, which rounds below 1n up to 1n, the value is the
 * nearest double.  Negative values are refused: nothing we limit or
 * request can be below zero.
 */
int
quantity_parse(const char *s, double *out)
{
	const char	*p, *suffix, *exp;
	char		*end;
	size_t		 ndigits = 0, nexp = 0, i;
	double		 v, scale;
	int		 neg;

	if (s == NULL)
		return (-AS_EINVAL);
	p = s;
	if (*p == '+' || *p == '-')
		p++;
	for (; quantity_digit(*p); p++)
		ndigits++;
	if (*p == '.')
		for (p++; quantity_digit(*p); p++)
			ndigits++;
	if (ndigits == 0)
		return (-AS_EINVAL);
	suffix = p;
	if ((*p == 'e' || *p == 'E') && p[1] != '\0' &&
	    !(p[0] == 'E' && p[1] == 'i')) {
		/* A decimal exponent: a signed integer, then nothing. */
		p++;
		neg = *p == '-';
		if (*p == '+' || *p == '-')
			p++;
		for (; *p == '0'; p++)
			;
		for (exp = p; quantity_digit(*p); p++)
			nexp++;
		if (*p != '\0' || !quantity_digit(p[-1]) || nexp > 19 ||
		    (nexp == 19 && strcmp(exp, neg ? "9223372036854775808" :
		    "9223372036854775807") > 0))
			return (-AS_EINVAL);
		v = strtod(s, &end);
		if (end != p)
			return (-AS_EINVAL);
	} else {
		for (i = 0; i < AS_ARRAY_SIZE(quantity_suffixes); i++)
			if (strcmp(suffix, quantity_suffixes[i].suffix) == 0)
				break;
		if (i == AS_ARRAY_SIZE(quantity_suffixes))
			return (-AS_EINVAL);
		v = strtod(s, &end);
		if (end != suffix)
			return (-AS_EINVAL);
		/* Powers of two and of ten up to 1e22 are exact doubles. */
		v = ldexp(v, quantity_suffixes[i].pow2);
		scale = pow(10, abs(quantity_suffixes[i].pow10));
		v = quantity_suffixes[i].pow10 < 0 ? v / scale : v * scale;
	}
	if (!isfinite(v) || v < 0)
		return (-AS_EINVAL);
	*out = v + 0.0;		/* "-0" is zero, not minus zero */
	return (0);
}
