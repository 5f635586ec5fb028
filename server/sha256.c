/*
 * sha256.c: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104).
 *
 * Owns the hash so the daemon need not load libcrypto (about 1.5 MiB of
 * resident memory) for the one primitive the wire protocol uses. The block
 * function comes in two forms, chosen once before main() runs: the x86 SHA
 * extensions (SHA-NI) where the CPU has them, and portable C everywhere
 * else. Both take a run of whole blocks, so a large update is one call.
 *
 * Invariants: h[] is the FIPS 180-4 chaining state H0..H7 in both forms (the
 * SHA-NI code converts to its ABEF/CDGH lanes and back inside each call), so
 * the two are interchangeable between any two calls; nbuf < 64 between
 * calls; contexts are wiped by final.
 *
 * Threads: the selected block function is written by a constructor before
 * main() and read afterwards; sha256_force_portable exists for tests only.
 * Contexts have no shared state.
 *
 * It does not offer other digests, EVP-style dispatch, or side-channel
 * hardening beyond what SHA-256 needs: the compression function has no
 * data-dependent branches or table lookups in either form, and MACs are
 * compared with sha256_memeq.
 */
#include "sha256.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define SHA256_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

typedef void sha256_blocks_fn(uint32_t h[8], const unsigned char *p, size_t n);

/* FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of
 * the cube roots of the first 64 primes. */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t load_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void store_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

#define ROTR(x, n)   ((x) >> (n) | (x) << (32 - (n)))
#define CH(x, y, z)  ((z) ^ ((x) & ((y) ^ (z))))
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))
#define BSIG0(x)     (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x)     (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x)     (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x)     (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))

/*
 * FIPS 180-4 section 6.2.2, one block after another. The schedule is kept
 * as a ring of 16 words: W[t] replaces W[t-16], the only one no longer
 * needed.
 */
static void blocks_portable(uint32_t h[8], const unsigned char *p, size_t n)
{
	uint32_t w[16], a, b, c, d, e, f, g, hh, t1, t2;
	int t;

	for (; n > 0; n--, p += SHA256_BLOCK) {
		a = h[0];
		b = h[1];
		c = h[2];
		d = h[3];
		e = h[4];
		f = h[5];
		g = h[6];
		hh = h[7];
		for (t = 0; t < 64; t++) {
			if (t < 16)
				w[t] = load_be32(p + 4 * t);
			else
				w[t & 15] += SSIG1(w[(t - 2) & 15]) +
					     w[(t - 7) & 15] +
					     SSIG0(w[(t - 15) & 15]);
			t1 = hh + BSIG1(e) + CH(e, f, g) + K[t] + w[t & 15];
			t2 = BSIG0(a) + MAJ(a, b, c);
			hh = g;
			g = f;
			f = e;
			e = d + t1;
			d = c;
			c = b;
			b = a;
			a = t1 + t2;
		}
		h[0] += a;
		h[1] += b;
		h[2] += c;
		h[3] += d;
		h[4] += e;
		h[5] += f;
		h[6] += g;
		h[7] += hh;
	}
}

#ifdef SHA256_X86
/*
 * The SHA extensions, as Intel describes them: SHA256RNDS2 does two rounds
 * on the state split into ABEF and CDGH (A and C in the top lane), taking
 * W[t] + K[t] for both rounds from the low half of its third operand.
 * After two rounds the old ABEF is the new CDGH, so the two registers swap
 * roles and no moves are needed. SHA256MSG1 and SHA256MSG2 compute the
 * sigma0 and sigma1 halves of the schedule four words at a time; W[t-7]
 * is added between them.
 *
 * The target attribute lets the file build without -msha; the code runs
 * only after cpuid has said yes.
 */
#define SHANI __attribute__((target("sha,sse4.1")))

/* Four message words, big-endian in memory, to the lanes of a register. */
static inline SHANI __m128i shani_load(const unsigned char *p, __m128i bswap)
{
	return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), bswap);
}

/* Four rounds starting at round t, with the message words w = W[t..t+3]. */
static inline SHANI void shani_rounds4(__m128i *abef, __m128i *cdgh, __m128i w,
				       int t)
{
	__m128i wk = _mm_add_epi32(w, _mm_loadu_si128((const __m128i *)&K[t]));

	*cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
	wk = _mm_shuffle_epi32(wk, 0x0e);
	*abef = _mm_sha256rnds2_epu32(*abef, *cdgh, wk);
}

/* W[t..t+3] from the sixteen words before it, four to a register. */
static inline SHANI __m128i shani_schedule(__m128i w16, __m128i w12, __m128i w8,
					   __m128i w4)
{
	__m128i x = _mm_sha256msg1_epu32(w16, w12);

	x = _mm_add_epi32(x, _mm_alignr_epi8(w4, w8, 4));
	return _mm_sha256msg2_epu32(x, w4);
}

static SHANI void blocks_shani(uint32_t h[8], const unsigned char *p, size_t n)
{
	/* Byte-swaps each 32-bit lane: the message is big-endian. */
	const __m128i bswap =
	    _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
	__m128i abef, cdgh, abef0, cdgh0, m0, m1, m2, m3, x;
	int t;

	/* H0..H3 and H4..H7 (H0 and H4 in lane 0) to ABEF and CDGH. */
	x = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xb1);
	cdgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1b);
	abef = _mm_alignr_epi8(x, cdgh, 8);
	cdgh = _mm_blend_epi16(cdgh, x, 0xf0);

	for (; n > 0; n--, p += SHA256_BLOCK) {
		abef0 = abef;
		cdgh0 = cdgh;
		m0 = shani_load(p, bswap);
		shani_rounds4(&abef, &cdgh, m0, 0);
		m1 = shani_load(p + 16, bswap);
		shani_rounds4(&abef, &cdgh, m1, 4);
		m2 = shani_load(p + 32, bswap);
		shani_rounds4(&abef, &cdgh, m2, 8);
		m3 = shani_load(p + 48, bswap);
		shani_rounds4(&abef, &cdgh, m3, 12);
		for (t = 16; t < 64; t += 16) {
			m0 = shani_schedule(m0, m1, m2, m3);
			shani_rounds4(&abef, &cdgh, m0, t);
			m1 = shani_schedule(m1, m2, m3, m0);
			shani_rounds4(&abef, &cdgh, m1, t + 4);
			m2 = shani_schedule(m2, m3, m0, m1);
			shani_rounds4(&abef, &cdgh, m2, t + 8);
			m3 = shani_schedule(m3, m0, m1, m2);
			shani_rounds4(&abef, &cdgh, m3, t + 12);
		}
		abef = _mm_add_epi32(abef, abef0);
		cdgh = _mm_add_epi32(cdgh, cdgh0);
	}

	/* And back: ABEF, CDGH to H0..H3, H4..H7. */
	x = _mm_shuffle_epi32(abef, 0x1b);
	cdgh = _mm_shuffle_epi32(cdgh, 0xb1);
	_mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(x, cdgh, 0xf0));
	_mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(cdgh, x, 8));
}

/* SHA (leaf 7 EBX bit 29), and the SSSE3 and SSE4.1 shuffles and blends
 * the code above also uses (leaf 1 ECX bits 9 and 19). cpuid rather than
 * __builtin_cpu_supports("sha"), which clang 14 does not know. */
static int have_shani(void)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	if (!(c & bit_SSSE3) || !(c & bit_SSE4_1))
		return 0;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return 0;
	return (b & bit_SHA) != 0;
}
#endif

/* Portable until the constructor has run, so a hash from an earlier
 * constructor is still right. */
static sha256_blocks_fn *blocks = blocks_portable;

static sha256_blocks_fn *best_blocks(void)
{
#ifdef SHA256_X86
	if (have_shani())
		return blocks_shani;
#endif
	return blocks_portable;
}

__attribute__((constructor)) static void sha256_select(void)
{
	blocks = best_blocks();
}

void sha256_force_portable(int on)
{
	blocks = on ? blocks_portable : best_blocks();
}

const char *sha256_impl(void)
{
	return blocks == blocks_portable ? "portable" : "sha-ni";
}

void sha256_init(struct sha256 *c)
{
	/* FIPS 180-4 section 5.3.3. */
	static const uint32_t iv[8] = {
	    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	memcpy(c->h, iv, sizeof(iv));
	c->len = 0;
	c->nbuf = 0;
}

void sha256_update(struct sha256 *c, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t n;

	if (len == 0)
		return;
	c->len += len;
	if (c->nbuf) {
		n = SHA256_BLOCK - c->nbuf;
		if (n > len)
			n = len;
		memcpy(c->buf + c->nbuf, p, n);
		c->nbuf += n;
		p += n;
		len -= n;
		if (c->nbuf < SHA256_BLOCK)
			return;
		blocks(c->h, c->buf, 1);
		c->nbuf = 0;
	}
	n = len / SHA256_BLOCK;
	if (n) {
		blocks(c->h, p, n);
		p += n * SHA256_BLOCK;
		len -= n * SHA256_BLOCK;
	}
	if (len) {
		memcpy(c->buf, p, len);
		c->nbuf = len;
	}
}

/*
 * FIPS 180-4 section 5.1.1: a 1 bit, zeros up to 56 mod 64 bytes, then the
 * message length in bits as a 64-bit big-endian number.
 */
void sha256_final(struct sha256 *c, unsigned char out[SHA256_LEN])
{
	uint64_t bits = c->len * 8;
	int i;

	c->buf[c->nbuf++] = 0x80;
	if (c->nbuf > SHA256_BLOCK - 8) {
		memset(c->buf + c->nbuf, 0, SHA256_BLOCK - c->nbuf);
		blocks(c->h, c->buf, 1);
		c->nbuf = 0;
	}
	memset(c->buf + c->nbuf, 0, SHA256_BLOCK - 8 - c->nbuf);
	store_be32(c->buf + SHA256_BLOCK - 8, (uint32_t)(bits >> 32));
	store_be32(c->buf + SHA256_BLOCK - 4, (uint32_t)bits);
	blocks(c->h, c->buf, 1);
	for (i = 0; i < 8; i++)
		store_be32(out + 4 * i, c->h[i]);
	explicit_bzero(c, sizeof(*c));
}

/*
 * RFC 2104: HMAC(K, m) = H((K0 ^ opad) || H((K0 ^ ipad) || m)), where K0 is
 * the key (or its digest, when longer than a block) padded with zeros to a
 * block. The inner hash starts here; the outer one waits for final.
 */
void sha256_hmac_init(struct sha256_hmac *h, const void *key, size_t keylen)
{
	unsigned char k0[SHA256_BLOCK], ipad[SHA256_BLOCK];
	struct sha256 kc;
	int i;

	memset(k0, 0, sizeof(k0));
	if (keylen > SHA256_BLOCK) {
		sha256_init(&kc);
		sha256_update(&kc, key, keylen);
		sha256_final(&kc, k0);
	} else if (keylen) {
		memcpy(k0, key, keylen);
	}
	for (i = 0; i < SHA256_BLOCK; i++) {
		ipad[i] = k0[i] ^ 0x36;
		h->opad[i] = k0[i] ^ 0x5c;
	}
	sha256_init(&h->inner);
	sha256_update(&h->inner, ipad, sizeof(ipad));
	explicit_bzero(k0, sizeof(k0));
	explicit_bzero(ipad, sizeof(ipad));
}

void sha256_hmac_update(struct sha256_hmac *h, const void *data, size_t len)
{
	sha256_update(&h->inner, data, len);
}

void sha256_hmac_final(struct sha256_hmac *h, unsigned char out[SHA256_LEN])
{
	unsigned char mac[SHA256_LEN];
	struct sha256 outer;

	sha256_final(&h->inner, mac);
	sha256_init(&outer);
	sha256_update(&outer, h->opad, sizeof(h->opad));
	sha256_update(&outer, mac, sizeof(mac));
	sha256_final(&outer, out);
	explicit_bzero(mac, sizeof(mac));
	explicit_bzero(h, sizeof(*h));
}

/*
 * Every byte is read, through volatile so the compiler cannot stop at the
 * first difference, and the result comes from the OR of all differences
 * without a branch.
 */
int sha256_memeq(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned int d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return (int)(1 & ((d - 1) >> 8));
}
