/*
 * podcidr.h: the cluster's pod address ranges (--pod-cidrs), against which
 * a sandbox's pod IP is checked before agentscaler connects to it or names
 * it to the router.  The pod IP comes from the SandboxClaim's or Sandbox's
 * status, objects of the tenant's namespace: a tenant allowed to write
 * their status could otherwise point agentscaler at any address.
 *
 * Pure: text in, a struct pod_cidr out; no allocation.
 */
#ifndef AGENTSCALER_PODCIDR_H
#define AGENTSCALER_PODCIDR_H

#include <stddef.h>

struct pod_cidr {
	int		 family;	/* AF_INET or AF_INET6 */
	unsigned char	 addr[16];	/* network order, host bits zero */
	int		 bits;		/* prefix length */
};

/*
 * Parses "ADDR/BITS" (IPv4 or IPv6; BITS required, within the family's
 * width).  Returns 0, or -AS_EINVAL.
 */
int	 pod_cidr_parse(const char *text, struct pod_cidr *out);

/*
 * 1 when ip (an address literal, IPv4 or IPv6, no brackets) lies in one of
 * the n ranges; 0 otherwise, and for text that is no address.
 */
int	 pod_cidr_match(const struct pod_cidr *v, size_t n, const char *ip);

#endif
