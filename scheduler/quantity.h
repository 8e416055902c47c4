/*
 * quantity.h: Kubernetes resource quantities ("500m", "1.5Gi"), parsed
 * purely; shared by the config, the task contract and the charge.
 */
#ifndef AGENTSCALER_QUANTITY_H
#define AGENTSCALER_QUANTITY_H

/*
 * Pure: parses a Kubernetes quantity ("500m", "2", "1.5Gi", "1e3") into a
 * number of base units, with the syntax of k8s.io/apimachinery
 * pkg/api/resource (no hex, no spaces, no suffix after an exponent).
 * Returns 0, or -AS_EINVAL for anything else and for negative values.
 */
int	 quantity_parse(const char *, double *);

#endif
