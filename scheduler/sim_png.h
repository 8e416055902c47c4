/*
 * sim_png.h: the simulator's picture (simulate.h): wait and sandboxes
 * over time per policy, and the cost/wait frontier of the static pools
 * with each policy as a point, as an indexed-colour PNG (deflate by
 * zlib, which libcurl links already; the encoder and a 3x5 pixel font
 * are ours).
 */
#ifndef AGENTSCALER_SIM_PNG_H
#define AGENTSCALER_SIM_PNG_H

#include <stddef.h>
#include <stdint.h>

struct sim_result;

/* A plain canvas of palette indexes; the caller frees px. */
struct sim_canvas {
	int	 w, h;
	uint8_t	*px;
};

/*
 * Encodes c as a PNG (palette of ncolors RGB triples) into a new buffer
 * *out of *outlen bytes; returns 0, or -1 when deflate fails.
 */
int	 sim_png_encode(const struct sim_canvas *c, const uint8_t *rgb,
	    int ncolors, uint8_t **out, size_t *outlen);
/* Draws the results and writes path; 0, or -1 with err. */
int	 sim_png_write(const char *path, const struct sim_result *r, size_t n,
	    char *err, size_t errlen);

#endif
