/*
 * podcidr.c: pod address ranges and the membership test (podcidr.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agentscaler/rt/common.h"
#include "podcidr.h"

/* Parses an address literal of either family into addr; its family. */
static int
pod_cidr_addr(const char *text, unsigned char addr[16])
{
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, text, addr) == 1)
		return (AF_INET);
	if (inet_pton(AF_INET6, text, addr) == 1)
		return (AF_INET6);
	return (0);
}

/* 1 when the first bits bits of a and b are the same. */
static int
pod_cidr_prefix_eq(const unsigned char *a, const unsigned char *b, int bits)
{
	int	 whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)whole) != 0)
		return (0);
	if (rest == 0)
		return (1);
	return (((a[whole] ^ b[whole]) & (0xff << (8 - rest)) & 0xff) == 0);
}

int
pod_cidr_parse(const char *text, struct pod_cidr *out)
{
	char		 host[64], *end;
	const char	*sl;
	long		 bits;
	int		 max, i;

	memset(out, 0, sizeof *out);
	if (text == NULL || (sl = strchr(text, '/')) == NULL ||
	    (size_t)(sl - text) >= sizeof host || sl[1] == '\0')
		return (-AS_EINVAL);
	memcpy(host, text, (size_t)(sl - text));
	host[sl - text] = '\0';
	if ((out->family = pod_cidr_addr(host, out->addr)) == 0)
		return (-AS_EINVAL);
	max = out->family == AF_INET ? 32 : 128;
	errno = 0;
	bits = strtol(sl + 1, &end, 10);
	if (errno != 0 || *end != '\0' || sl[1] < '0' || sl[1] > '9' ||
	    bits < 0 || bits > max)
		return (-AS_EINVAL);
	out->bits = (int)bits;
	/* Host bits are cleared: 10.1.2.3/16 means 10.1.0.0/16. */
	for (i = out->bits; i < max; i++)
		out->addr[i / 8] &= (unsigned char)~(0x80 >> (i % 8));
	return (0);
}

int
pod_cidr_match(const struct pod_cidr *v, size_t n, const char *ip)
{
	unsigned char	 addr[16];
	int		 family;
	size_t		 i;

	if (ip == NULL || (family = pod_cidr_addr(ip, addr)) == 0)
		return (0);
	for (i = 0; i < n; i++)
		if (v[i].family == family &&
		    pod_cidr_prefix_eq(addr, v[i].addr, v[i].bits))
			return (1);
	return (0);
}
