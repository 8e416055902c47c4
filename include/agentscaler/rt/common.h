/*
 * common.h: the error values, allocation wrappers and small helpers that
 * every module shares.
 *
 * Ownership: x*alloc and xstrdup return memory the caller frees with free();
 * they abort on out-of-memory, so no NULL check follows them (tmux
 * xmalloc.c does the same).
 */
#ifndef AGENTSCALER_COMMON_H
#define AGENTSCALER_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef AS_TESTING
#define TESTABLE
#else
#define TESTABLE static
#endif

#define AS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * The version, "0.1.0+<git describe>" (scheduler/rt/version.c, the only
 * object rebuilt when the commit changes).
 */
extern const char as_version[];

/* Functions return 0 or one of these, negated. */
enum as_err {
	AS_OK = 0,
	AS_ENOMEM = 1,
	AS_EINVAL,	/* bad argument or bad input */
	AS_EPROTO,	/* the peer answered something we cannot read */
	AS_ETIMEDOUT,
	AS_ECONN,	/* connection refused, reset or lost */
	AS_EAUTH,	/* authentication failed */
	AS_ENOTFOUND,
	AS_EFORBIDDEN,
	AS_ECONFLICT,
	AS_ETHROTTLED,	/* 429 */
	AS_ESERVER,	/* 5xx */
	AS_ECANCELED,
	AS_EIO,
	AS_EAGAIN,
	AS_EMAX
};

/* Returns a static name for a (positive or negative) as_err value. */
const char	*as_strerror(int err);

void		*xmalloc(size_t);
void		*xcalloc(size_t, size_t);
void		*xrealloc(void *, size_t);
char		*xstrdup(const char *);
char		*xstrndup(const char *, size_t);
/* Formats into a new string; the caller frees it. */
char		*xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));
/* The same with a va_list, which it leaves for the caller to va_end(). */
char		*xvasprintf(const char *, va_list)
		    __attribute__((format(printf, 1, 0)));

/*
 * Copies at most size-1 bytes and always terminates; returns strlen(src)
 * so callers can detect truncation, as OpenBSD's strlcpy.
 */
size_t		 as_strlcpy(char *dst, const char *src, size_t size);

/*
 * UTF-8 at cuts: tenant and broker text cut into a fixed buffer must stay
 * valid UTF-8 (Prometheus label values, protobuf strings, Kubernetes
 * Events).  These never split a sequence: they back off to the start of
 * the last whole one.  Ill-formed input is kept as it is, byte for byte
 * (only a sequence the cut itself would split is dropped), so valid input
 * gives valid output, always a prefix of the input.  Pure; no allocation.
 *
 * as_utf8_cut: how many bytes of s to keep to fit in max bytes (for
 * "%.*s").  as_strlcpy_utf8: as_strlcpy, cut so; returns strlen(src).
 * as_utf8_trim: drops an incomplete sequence at the end of s (a buffer
 * snprintf has cut); returns the new length.
 */
size_t		 as_utf8_cut(const char *s, size_t max);
size_t		 as_strlcpy_utf8(char *dst, const char *src, size_t size);
size_t		 as_utf8_trim(char *s);
/*
 * The two arguments of "%.*s" printing at most max bytes of s, whole
 * characters ("%.64s" cuts anywhere).  s is evaluated twice.
 */
#define AS_UTF8_PREC(s, max)	(int)as_utf8_cut((s), (max)), (s)
/*
 * The length of the well-formed sequence at p (n bytes available), or 0:
 * overlong forms, surrogates and code points above U+10FFFF are
 * ill-formed.  as_utf8_invalid_at: the offset of the first ill-formed
 * byte of buf, or len when all of it is UTF-8.
 */
size_t		 as_utf8_seq(const unsigned char *p, size_t n);
size_t		 as_utf8_invalid_at(const char *buf, size_t len);

/* 64-bit FNV-1a hash of a string, for hash tables (no adversary). */
uint64_t	 as_hash_str(const char *);

/*
 * RFC 4648 base64 with padding.  as_base64_encode() returns a new
 * NUL-terminated string.  as_base64_decode() returns the bytes in a new
 * buffer (NUL-terminated for convenience, length in *outlen), or NULL when
 * s is not valid base64; line breaks and blanks in s are skipped.  The
 * caller frees either result.
 */
char		*as_base64_encode(const char *buf, size_t len);
char		*as_base64_decode(const char *s, size_t len, size_t *outlen);

/* The value of one hex digit (either case), or -1. */
int		 as_hexval(int c);

/*
 * SHA-256 (FIPS 180-4) through OpenSSL's libcrypto (EVP), fed in pieces:
 * as_sha256_init(), any number of as_sha256_update(), then
 * as_sha256_final(), which writes the digest and frees the state;
 * as_sha256_discard() frees it without a digest (a message lost half-way).
 * Both accept a state never started or already finished.  Like x*alloc,
 * they abort when libcrypto fails (it can only run out of memory here).
 * as_sha256() digests one buffer, as_sha1_hex() one buffer as 40 lowercase
 * hex digits (Redis scripts have SHA-1 only: redis.sha1hex()).
 */
#define AS_SHA256_LEN	32
struct as_sha256 {
	void	*ctx;		/* EVP_MD_CTX; NULL when not started */
};

void		 as_sha256_init(struct as_sha256 *);
void		 as_sha256_update(struct as_sha256 *, const void *, size_t);
void		 as_sha256_final(struct as_sha256 *,
		    unsigned char out[AS_SHA256_LEN]);
void		 as_sha256_discard(struct as_sha256 *);
void		 as_sha256(const void *, size_t, unsigned char out[AS_SHA256_LEN]);
void		 as_sha1_hex(const void *, size_t, char out[41]);
/* HMAC-SHA256 (RFC 2104, RFC 4231) of a buffer under a key of any length. */
void		 as_hmac_sha256(const void *key, size_t keylen, const void *,
		    size_t, unsigned char out[AS_SHA256_LEN]);
/* len bytes as 2 * len lowercase hex digits and a NUL. */
void		 as_hex(const unsigned char *, size_t len, char *out);

/* Monotonic clock in seconds. */
double		 as_mono_now(void);
#ifdef AS_TESTING
/*
 * Added to as_mono_now() in test builds only: a unit suite moves time
 * forward without waiting (check_dispatch's readyTimeoutSeconds rows).
 */
extern double	 as_mono_skew;
/*
 * Test builds only: while set, neither clock is read; as_mono_now() is
 * 1e6 + as_mono_skew and as_wall_now() 1.8e9 + as_mono_skew, so a seeded
 * test sees the same times whatever the machine's load.
 */
extern int	 as_clock_frozen;
#endif
/* Wall clock in seconds since the epoch. */
double		 as_wall_now(void);

/*
 * Uniform random double in [0, 1) from a per-process xorshift generator
 * seeded at start; used only for jitter, never for anything secret.
 */
double		 as_random(void);
#ifdef AS_TESTING
/*
 * Test builds only: restarts as_random() from seed, so that a seeded test
 * (check_dispatch's random interleavings) gets the same jitter each run.
 */
void		 as_random_seed(uint64_t seed);
#endif

/*
 * Exponential backoff with full jitter: a delay in [base/2, min(cap,
 * base * 2^attempt)] seconds.
 */
double		 as_backoff(double base, double cap, unsigned attempt);

/*
 * A token bucket: rate tokens per second up to burst, starting full.  Pure:
 * the caller passes the time (any clock, the same one every call).
 */
struct as_bucket {
	double	 rate;
	double	 burst;
	double	 tokens;
	double	 at;
};

void		 as_bucket_init(struct as_bucket *, double rate, double burst,
		    double now);
/* Takes one token if there is one: returns 1, else 0. */
int		 as_bucket_take(struct as_bucket *, double now);
/* Seconds until a token is there (0: now). */
double		 as_bucket_wait(struct as_bucket *, double now);

/*
 * Reads a whole small file into a new NUL-terminated buffer (at most
 * maxlen bytes).  Returns NULL with a message in err on failure.  The caller
 * frees the result.
 */
char		*as_read_file(const char *path, size_t maxlen, size_t *lenp,
		    char *err, size_t errlen);

/*
 * Reads a secret from a file (trailing newlines stripped).  Same contract as
 * as_read_file; the secret is never logged by anything in this project.
 */
char		*as_read_secret(const char *path, char *err, size_t errlen);

/*
 * Wipes a secret (len bytes, or up to its NUL when len is 0) and frees it;
 * NULL is fine.  The one way every secret this process reads is let go of
 * (broker passwords, tokens, keys), so none lingers in freed memory.
 */
void		 as_secret_free(char *s, size_t len);

/*
 * Secrets named by reference, "namespace/name/key" (a key of a Kubernetes
 * Secret), come from whoever registered a provider: the daemon's secret
 * store in CRD mode (k8s/secret_store.c).  Without one every lookup fails.
 * since (as_mono_now() seconds; 0: any) asks for a value read after that
 * moment, so that a connect after a failure uses a rotated Secret.  A
 * lookup returns 0 with a new string in *out (let go of with
 * as_secret_free), -AS_EAGAIN while the value is being read, or another
 * -AS_E... with a reason that names the Secret, never its value.
 */
typedef int	 as_secret_lookup_fn(void *arg, const char *ref, double since,
		    char **out, char *err, size_t errlen);
void		 as_secret_provider(as_secret_lookup_fn *, void *arg);
int		 as_secret_lookup(const char *ref, double since, char **out,
		    char *err, size_t errlen);

/*
 * Copies text into dst (always terminated), replacing every copy of secret
 * with "<redacted>": servers should never echo a password, but their error
 * text goes into logs.  secret may be NULL or "".
 */
void		 as_redact(char *dst, size_t dstlen, const char *text,
		    const char *secret);

/*
 * A growable string; as_buf_printf appends.  The caller owns b->p and frees
 * it with free() (or hands it to a library that does).
 */
struct as_buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

void		 as_buf_printf(struct as_buf *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
/*
 * Appends s with Prometheus label-value escaping (\\, \", \n); an
 * ill-formed UTF-8 byte becomes U+FFFD, as the text format wants UTF-8.
 */
void		 as_buf_label(struct as_buf *, const char *s);

/*
 * Formats a wall time (unix seconds) as RFC 3339 UTC into out:
 * "2026-11-25T17:34:45Z", or with nanos "2026-11-25T17:34:45.123456789Z"
 * (the Go SDK's RFC3339Nano, trailing zeros kept).  out needs 40 bytes.
 */
void		 as_rfc3339(double wall, int nanos, char *out, size_t outlen);
/* The same as a Kubernetes MicroTime: six fractional digits. */
void		 as_rfc3339_micro(double wall, char *out, size_t outlen);
/*
 * Pure: parses RFC 3339 ("Z" or +hh:mm/-hh:mm offsets, optional fraction)
 * into unix seconds.  Returns 0 or -AS_EINVAL.
 */
int		 as_parse_rfc3339(const char *s, double *out);

#endif
