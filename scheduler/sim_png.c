/*
 * sim_png.c: the PNG of sim_png.h.  PNG as the W3C specification (2nd
 * edition) lays it out: signature, IHDR, PLTE, one IDAT of zlib data over
 * rows each led by filter byte 0, IEND; every chunk with its CRC-32.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "agentscaler/rt/common.h"
#include "sim_png.h"
#include "simulate.h"

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Appends a chunk (type, data) at *pos of buf. */
static void
chunk(uint8_t *buf, size_t *pos, const char *type, const uint8_t *data,
    size_t len)
{
	uint8_t	*p = buf + *pos;
	uLong	 crc;

	put32(p, (uint32_t)len);
	memcpy(p + 4, type, 4);
	if (len > 0)
		memcpy(p + 8, data, len);
	crc = crc32(0L, p + 4, (uInt)(len + 4));
	put32(p + 8 + len, (uint32_t)crc);
	*pos += 12 + len;
}

int
sim_png_encode(const struct sim_canvas *c, const uint8_t *rgb, int ncolors,
    uint8_t **out, size_t *outlen)
{
	static const uint8_t sig[8] = { 137, 'P', 'N', 'G', 13, 10, 26, 10 };
	uint8_t		 ihdr[13], *raw, *z, *buf;
	size_t		 rawlen = (size_t)c->h * ((size_t)c->w + 1), pos = 0;
	uLongf		 zlen = compressBound((uLong)rawlen);
	int		 y;

	raw = xmalloc(rawlen);
	for (y = 0; y < c->h; y++) {
		raw[(size_t)y * ((size_t)c->w + 1)] = 0;
		memcpy(raw + (size_t)y * ((size_t)c->w + 1) + 1,
		    c->px + (size_t)y * (size_t)c->w, (size_t)c->w);
	}
	z = xmalloc(zlen);
	if (compress2(z, &zlen, raw, (uLong)rawlen, 9) != Z_OK) {
		free(raw);
		free(z);
		return (-1);
	}
	free(raw);
	buf = xmalloc(8 + 25 + 12 + (size_t)ncolors * 3 + 12 + zlen + 12);
	memcpy(buf, sig, 8);
	pos = 8;
	put32(ihdr, (uint32_t)c->w);
	put32(ihdr + 4, (uint32_t)c->h);
	ihdr[8] = 8;		/* bits per index */
	ihdr[9] = 3;		/* indexed colour */
	ihdr[10] = ihdr[11] = ihdr[12] = 0;
	chunk(buf, &pos, "IHDR", ihdr, sizeof ihdr);
	chunk(buf, &pos, "PLTE", rgb, (size_t)ncolors * 3);
	chunk(buf, &pos, "IDAT", z, zlen);
	chunk(buf, &pos, "IEND", NULL, 0);
	free(z);
	*out = buf;
	*outlen = pos;
	return (0);
}

/* Drawing. */

enum { C_WHITE, C_BLACK, C_GRID, C_STATIC, C_FIRST };

static const uint8_t palette[] = {
	255, 255, 255,	0, 0, 0,	220, 220, 220,	140, 140, 140,
	31, 119, 180,	214, 39, 40,	44, 160, 44,	255, 127, 14,
	148, 103, 189,	140, 86, 75,	227, 119, 194,	23, 190, 207,
};
#define NCOLORS ((int)(sizeof palette / 3))

static void
dot(struct sim_canvas *c, int x, int y, int col)
{
	if (x >= 0 && y >= 0 && x < c->w && y < c->h)
		c->px[(size_t)y * (size_t)c->w + (size_t)x] = (uint8_t)col;
}

static void
box(struct sim_canvas *c, int x0, int y0, int x1, int y1, int col)
{
	int	 x, y;

	for (y = y0; y <= y1; y++)
		for (x = x0; x <= x1; x++)
			dot(c, x, y, col);
}

static void
line(struct sim_canvas *c, int x0, int y0, int x1, int y1, int col)
{
	int	 dx = abs(x1 - x0), dy = -abs(y1 - y0);
	int	 sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy, e2;

	for (;;) {
		dot(c, x0, y0, col);
		dot(c, x0, y0 + 1, col);	/* two pixels thick */
		if (x0 == x1 && y0 == y1)
			break;
		e2 = 2 * e;
		if (e2 >= dy) {
			e += dy;
			x0 += sx;
		}
		if (e2 <= dx) {
			e += dx;
			y0 += sy;
		}
	}
}

/* A 3x5 font: five rows of three bits (4 = left), our own glyphs. */
static const char glyph_chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyz-.%:/()=,";
static const uint8_t glyphs[][5] = {
	{7,5,5,5,7},{2,6,2,2,7},{7,1,7,4,7},{7,1,3,1,7},{5,5,7,1,1},
	{7,4,7,1,7},{7,4,7,5,7},{7,1,1,2,2},{7,5,7,5,7},{7,5,7,1,7},
	{2,5,7,5,5},{6,5,6,5,6},{3,4,4,4,3},{6,5,5,5,6},{7,4,6,4,7},
	{7,4,6,4,4},{3,4,5,5,3},{5,5,7,5,5},{7,2,2,2,7},{1,1,1,5,2},
	{5,5,6,5,5},{4,4,4,4,7},{5,7,7,5,5},{6,5,5,5,5},{2,5,5,5,2},
	{6,5,6,4,4},{2,5,5,6,3},{6,5,6,5,5},{3,4,2,1,6},{7,2,2,2,2},
	{5,5,5,5,7},{5,5,5,5,2},{5,5,7,7,5},{5,5,2,5,5},{5,5,2,2,2},
	{7,1,2,4,7},{0,0,7,0,0},{0,0,0,0,2},{5,1,2,4,5},{0,2,0,2,0},
	{1,1,2,4,4},{1,2,2,2,1},{4,2,2,2,4},{0,7,0,7,0},{0,0,0,2,4},
};

/* Text at (x, y), each font pixel s x s. */
static void
text(struct sim_canvas *c, int x, int y, int s, int col, const char *str)
{
	const char	*g;
	int		 r, b, ch;

	for (; *str != '\0'; str++, x += 4 * s) {
		ch = *str >= 'A' && *str <= 'Z' ? *str - 'A' + 'a' : *str;
		if (ch == ' ' || (g = strchr(glyph_chars, ch)) == NULL)
			continue;
		for (r = 0; r < 5; r++)
			for (b = 0; b < 3; b++)
				if (glyphs[g - glyph_chars][r] & (4 >> b))
					box(c, x + b * s, y + r * s,
					    x + b * s + s - 1,
					    y + r * s + s - 1, col);
	}
}

struct frame {
	int	 x0, y0, x1, y1;	/* pixels, y0 at the top */
	double	 xmax, ymax;
};

static int
fx(const struct frame *f, double v)
{
	return (f->x0 + (int)lround((f->x1 - f->x0) * (v / f->xmax)));
}

static int
fy(const struct frame *f, double v)
{
	if (v > f->ymax)
		v = f->ymax;
	return (f->y1 - (int)lround((f->y1 - f->y0) * (v / f->ymax)));
}

/* A round axis maximum at or above v. */
static double
round_up(double v)
{
	static const double steps[] = { 1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8 };
	double	 p;
	size_t	 i;

	if (!(v > 0))
		return (1);
	p = pow(10, floor(log10(v)));
	for (i = 0; i < sizeof steps / sizeof steps[0]; i++)
		if (v <= steps[i] * p)
			return (steps[i] * p);
	return (10 * p);
}

static void
axes(struct sim_canvas *c, const struct frame *f, const char *title,
    const char *xl)
{
	char	 lab[32];
	int	 i;

	for (i = 0; i <= 4; i++) {
		line(c, f->x0, f->y1 - (f->y1 - f->y0) * i / 4, f->x1,
		    f->y1 - (f->y1 - f->y0) * i / 4, C_GRID);
		snprintf(lab, sizeof lab, "%g", f->ymax * i / 4);
		text(c, f->x0 - 8 * (int)strlen(lab) - 6,
		    f->y1 - (f->y1 - f->y0) * i / 4 - 5, 2, C_BLACK, lab);
		snprintf(lab, sizeof lab, "%g", f->xmax * i / 4);
		text(c, fx(f, f->xmax * i / 4) - 4 * (int)strlen(lab),
		    f->y1 + 8, 2, C_BLACK, lab);
	}
	line(c, f->x0, f->y0, f->x0, f->y1, C_BLACK);
	line(c, f->x0, f->y1, f->x1, f->y1, C_BLACK);
	text(c, f->x0, f->y0 - 16, 2, C_BLACK, title);
	text(c, f->x1 - 8 * (int)strlen(xl), f->y1 + 22, 2, C_BLACK, xl);
}

/* A series of one field of the samples (0 live, 1 worst wait). */
static void
series(struct sim_canvas *c, const struct frame *f,
    const struct sim_result *r, int what, int col)
{
	size_t	 i;
	int	 px = -1, py = 0, x, y;
	double	 v;

	for (i = 0; i < r->npts; i++) {
		v = what == 0 ? r->pts[i].live : r->pts[i].wait;
		x = fx(f, r->pts[i].t);
		y = fy(f, v);
		if (px >= 0)
			line(c, px, py, x, y, col);
		px = x;
		py = y;
	}
}

int
sim_png_write(const char *path, const struct sim_result *r, size_t n,
    char *err, size_t errlen)
{
	struct sim_canvas c;
	struct frame	 fw, fl, ff;
	uint8_t		*png;
	size_t		 len, i, j;
	double		 tmax = 1, wmax = 0, lmax = 0, cmax = 0, pmax = 0, v;
	int		 col, lx = 70, px = -1, py = 0, x, y, rc = -1;
	char		 lab[64];
	FILE		*f;

	c.w = 1200;
	c.h = 1000;
	c.px = xcalloc((size_t)c.w * (size_t)c.h, 1);
	for (i = 0; i < n; i++) {
		for (j = 0; j < r[i].npts; j++) {
			if (r[i].pts[j].t > tmax)
				tmax = r[i].pts[j].t;
			if (r[i].policy.kind != SIM_P_STATIC) {
				if (r[i].pts[j].wait > wmax)
					wmax = r[i].pts[j].wait;
				if (r[i].pts[j].live > lmax)
					lmax = r[i].pts[j].live;
			}
		}
		v = r[i].busy + r[i].idle;
		cmax = v > cmax ? v : cmax;
		pmax = r[i].p95 > pmax ? r[i].p95 : pmax;
	}
	fw = (struct frame){ 90, 70, 1170, 320, round_up(tmax), round_up(wmax) };
	fl = (struct frame){ 90, 390, 1170, 620, round_up(tmax), round_up(lmax) };
	ff = (struct frame){ 90, 690, 1170, 930, round_up(cmax), round_up(pmax) };
	axes(&c, &fw, "worst wait of tasks started each second, s", "t, s");
	axes(&c, &fl, "sandboxes (live) over time", "t, s");
	axes(&c, &ff, "p95 wait, s, against sandbox-seconds: static pools "
	    "(grey), policies", "sandbox-seconds");
	for (i = 0, col = C_FIRST; i < n; i++) {
		if (r[i].policy.kind == SIM_P_STATIC)
			continue;
		series(&c, &fw, &r[i], 1, col);
		series(&c, &fl, &r[i], 0, col);
		box(&c, lx, 12, lx + 14, 26, col);
		text(&c, lx + 20, 12, 3, C_BLACK, r[i].policy.name);
		lx += 20 + 12 * (int)strlen(r[i].policy.name) + 30;
		x = fx(&ff, r[i].busy + r[i].idle);
		y = fy(&ff, r[i].p95);
		box(&c, x - 5, y - 5, x + 5, y + 5, col);
		text(&c, x + 8, y - 12, 2, col, r[i].policy.name);
		if (++col >= NCOLORS)
			col = C_FIRST;
	}
	for (i = 0; i < n; i++) {
		if (r[i].policy.kind != SIM_P_STATIC)
			continue;
		x = fx(&ff, r[i].busy + r[i].idle);
		y = fy(&ff, r[i].p95);
		if (px >= 0)
			line(&c, px, py, x, y, C_STATIC);
		box(&c, x - 3, y - 3, x + 3, y + 3, C_STATIC);
		snprintf(lab, sizeof lab, "%ld", r[i].policy.n);
		text(&c, x + 6, y + 4, 2, C_STATIC, lab);
		px = x;
		py = y;
	}
	if (sim_png_encode(&c, palette, NCOLORS, &png, &len) != 0) {
		snprintf(err, errlen, "%s: deflate failed", path);
		goto out;
	}
	if ((f = fopen(path, "wb")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(png);
		goto out;
	}
	rc = fwrite(png, 1, len, f) == len ? 0 : -1;
	if (fclose(f) != 0)
		rc = -1;
	if (rc != 0)
		snprintf(err, errlen, "%s: write failed", path);
	free(png);
out:
	free(c.px);
	return (rc);
}
