/*
 * sha256.h: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), without
 * libcrypto.
 *
 * The contexts are plain structs the caller owns (on the stack, usually);
 * nothing is allocated and nothing can fail. Any thread may use its own
 * context; the only module state is the block function, chosen once at
 * startup.
 */
#ifndef E2BCI_SHA256_H
#define E2BCI_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN   32 /* bytes of a digest */
#define SHA256_BLOCK 64 /* bytes of a block */

struct sha256 {
	uint32_t h[8];			 /* chaining state */
	uint64_t len;			 /* bytes hashed so far */
	unsigned char buf[SHA256_BLOCK]; /* a partial block */
	size_t nbuf;			 /* bytes in buf, < SHA256_BLOCK */
};

struct sha256_hmac {
	struct sha256 inner;		  /* H((K0 ^ ipad) || message...) */
	unsigned char opad[SHA256_BLOCK]; /* K0 ^ opad, for the outer hash */
};

/* Starts a digest. */
void sha256_init(struct sha256 *c);

/* Hashes len bytes at data; data may be NULL when len is 0. */
void sha256_update(struct sha256 *c, const void *data, size_t len);

/* Writes the digest to out and wipes c; sha256_init it again to reuse. */
void sha256_final(struct sha256 *c, unsigned char out[SHA256_LEN]);

/* Starts an HMAC under key (borrowed, not kept; NULL when keylen is 0).
 * A key longer than a block is hashed first, as RFC 2104 says. */
void sha256_hmac_init(struct sha256_hmac *h, const void *key, size_t keylen);

/* Authenticates len more bytes at data; data may be NULL when len is 0. */
void sha256_hmac_update(struct sha256_hmac *h, const void *data, size_t len);

/* Writes the MAC to out and wipes h, key material included. */
void sha256_hmac_final(struct sha256_hmac *h, unsigned char out[SHA256_LEN]);

/* Compares n bytes in time that depends on n only. Returns 1 when a and b
 * are equal, 0 otherwise (the opposite sense of memcmp). */
int sha256_memeq(const void *a, const void *b, size_t n);

/* For tests: on forces the portable block function, off goes back to the
 * one chosen at startup. Safe between any two calls on a context (both
 * keep the same state), but not while another thread is hashing. */
void sha256_force_portable(int on);

/* The block function in use: "sha-ni" or "portable". A static string. */
const char *sha256_impl(void);

#endif
