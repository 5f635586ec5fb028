/*
 * test_sha256: the sha256_ module against published and independent vectors.
 *
 * Every digest test runs twice, once with each block function: SHA-NI (when
 * /proc/cpuinfo says the CPU has it) and portable C. Digests are checked
 * against the FIPS 180-2 examples, HMACs against RFC 4231 test cases 1-7,
 * and the padding of every length 0..300 against one digest of all their
 * digests made by Python's hashlib, since padding is code the two block
 * functions share and cross-checking them cannot find a bug in it.
 */
#include "jtext.h"
#include "sha256.h"
#include "testhelp.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LEN_MAX 300

struct rfc4231 {
	int tc;
	int key_rep;
	const char *key_hex;
	const char *data_hex;
	const char *mac;
	size_t maclen; /* bytes compared: 16 for the truncated case 5 */
};

/* RFC 4231 section 4: test case, key repeat count, key, data, MAC and the
 * bytes of it compared. A key of one repeated byte is written once with
 * its repeat count, as the RFC does. */
static const struct rfc4231 rfc4231[] = {
    {1, 20, "0b", "4869205468657265",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 32},
    {2, 1, "4a656665",
     "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 32},
    {3, 20, "aa",
     "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
     "dddddddddddddddddddddddddddddddd",
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", 32},
    {4, 1, "0102030405060708090a0b0c0d0e0f10111213141516171819",
     "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
     "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", 32},
    {5, 20, "0c", "546573742057697468205472756e636174696f6e",
     "a3b6167473100ee06e0c796c2955552b", 16},
    {6, 131, "aa",
     "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a"
     "65204b6579202d2048617368204b6579204669727374",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 32},
    {7, 131, "aa",
     "5468697320697320612074657374207573696e672061206c6172676572207468"
     "616e20626c6f636b2d73697a65206b657920616e642061206c61726765722074"
     "68616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565"
     "647320746f20626520686173686564206265666f7265206265696e6720757365"
     "642062792074686520484d414320616c676f726974686d2e",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 32},
};

/* Python: hashlib.sha256(b"".join(hashlib.sha256(pat[:n]).digest()
 * for n in range(301))), pat as in fill_pattern(). */
static const char lengths_digest[] =
    "54b58abcc2dc8d4ea99bc29d10df353ba91af3918896c396a2bf3fcc245c4e9e";

/* The implementations to run: SHA-NI first when the CPU has it. */
static bool cpu_shani;
static const char *const impl_names[] = {"sha-ni", "portable"};

/* The index of the first implementation to run; use_impl(k) selects one. */
static size_t impl_first(void)
{
	return cpu_shani ? 0 : 1;
}

static void use_impl(size_t k)
{
	sha256_force_portable(k == 1);
}

static size_t unhex(const char *hex, int rep, unsigned char *out, size_t cap)
{
	size_t n = strlen(hex) / 2, i, len = 0;
	int r;

	for (r = 0; r < rep; r++)
		for (i = 0; i < n && len < cap; i++) {
			char two[3] = {hex[2 * i], hex[2 * i + 1], '\0'};

			out[len++] = (unsigned char)strtoul(two, NULL, 16);
		}
	return len;
}

static void digest_hex(const void *p, size_t n, char out[2 * SHA256_LEN + 1])
{
	unsigned char md[SHA256_LEN];
	struct sha256 c;

	sha256_init(&c);
	sha256_update(&c, p, n);
	sha256_final(&c, md);
	jtext_hex(md, sizeof(md), out);
}

static void fill_pattern(unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(((i * 167 + 13) ^ (i >> 8)) & 0xff);
}

static bool cpuinfo_has(const char *flag)
{
	char line[8192], want[64], *s;
	bool found = false;
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (!f)
		return false;
	snprintf(want, sizeof(want), " %s", flag);
	while (fgets(line, sizeof(line), f)) {
		size_t n;

		if (strncmp(line, "flags", 5) != 0)
			continue;
		line[strcspn(line, "\n")] = ' ';
		n = strlen(want);
		for (s = strstr(line, want); s; s = strstr(s + 1, want))
			if (s[n] == ' ')
				found = true;
		break;
	}
	fclose(f);
	return found;
}

/* The module picks SHA-NI exactly when the kernel reports the CPU has it
 * (and the SSSE3/SSE4.1 the code also needs), and the switch works. */
static void test_select(void)
{
	sha256_force_portable(0);
	CHECK_STR(sha256_impl(), cpu_shani ? "sha-ni" : "portable");
	sha256_force_portable(1);
	CHECK_STR(sha256_impl(), "portable");
	sha256_force_portable(0);
	CHECK_STR(sha256_impl(), cpu_shani ? "sha-ni" : "portable");
	if (!cpu_shani)
		printf("     (no SHA-NI on this CPU: portable only)\n");
}

/* FIPS 180-2 appendix B and its one- and two-block messages. */
static void test_nist(void)
{
	static const struct {
		const char *msg, *md;
	} v[] = {
	    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b"
		 "855"},
	    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f2"
		    "0015ad"},
	    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c"
	     "1"},
	    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
	     "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
	     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d"
	     "1"},
	};
	char hex[2 * SHA256_LEN + 1];
	size_t i, k;

	for (k = impl_first(); k < 2; k++) {
		use_impl(k);
		for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
			digest_hex(v[i].msg, strlen(v[i].msg), hex);
			if (strcmp(hex, v[i].md) != 0)
				fprintf(stderr, "  %s, \"%s\"\n", impl_names[k],
					v[i].msg);
			CHECK_STR(hex, v[i].md);
		}
		/* NULL with length 0 is the empty message. */
		digest_hex(NULL, 0, hex);
		CHECK_STR(hex, v[0].md);
	}
}

/* One million 'a', in chunks of uneven sizes that straddle the block
 * boundary in every way, so every path of sha256_update is taken. */
static void test_million_a(void)
{
	static const size_t chunks[] = {
	    1, 63, 64, 65, 3, 127, 128, 129, 55, 56, 4099, 1000, 65536, 7, 640};
	static const char want[] = "cdc76e5c9914fb9281a1c7e284d73e67"
				   "f1809a48a497200e046d39ccc7112cd0";
	unsigned char md[SHA256_LEN], *buf;
	char hex[2 * SHA256_LEN + 1];
	struct sha256 c;
	size_t k, n, left, j;

	buf = malloc(65536);
	REQUIRE(buf);
	memset(buf, 'a', 65536);
	for (k = impl_first(); k < 2; k++) {
		use_impl(k);
		sha256_init(&c);
		for (left = 1000000, j = 0; left; left -= n, j++) {
			n = chunks[j % (sizeof(chunks) / sizeof(chunks[0]))];
			if (n > left)
				n = left;
			sha256_update(&c, buf, n);
		}
		sha256_final(&c, md);
		jtext_hex(md, sizeof(md), hex);
		if (strcmp(hex, want) != 0)
			fprintf(stderr, "  %s\n", impl_names[k]);
		CHECK_STR(hex, want);
	}
	free(buf);
}

/* Three 64 KiB updates and a tail: runs of many blocks per call. The
 * golden digest is Python's. */
static void test_large(void)
{
	const size_t n = 3 * 65536 + 17;
	unsigned char md[SHA256_LEN], *buf;
	char hex[2 * SHA256_LEN + 1];
	struct sha256 c;
	size_t i, k;

	buf = malloc(n);
	REQUIRE(buf);
	for (i = 0; i < n; i++)
		buf[i] = (unsigned char)(i * 7);
	for (k = impl_first(); k < 2; k++) {
		use_impl(k);
		sha256_init(&c);
		for (i = 0; i < n; i += 65536)
			sha256_update(&c, buf + i,
				      n - i < 65536 ? n - i : 65536);
		sha256_final(&c, md);
		jtext_hex(md, sizeof(md), hex);
		CHECK_STR(hex,
			  "57008a6980a99beb743b80b4cfcd1fbd106282ff6b6760749"
			  "3c905dc389eec20");
	}
	free(buf);
}

/*
 * Every length 0..300: one-shot and byte-by-byte, under each block
 * function, all agree; and the digests of all lengths match Python's.
 */
static void test_lengths(void)
{
	unsigned char pat[LEN_MAX], md[2][2][SHA256_LEN], all[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];
	struct sha256 c, acc[2];
	size_t n, i, k;

	fill_pattern(pat, sizeof(pat));
	for (k = impl_first(); k < 2; k++)
		sha256_init(&acc[k]);
	for (n = 0; n <= LEN_MAX; n++) {
		for (k = impl_first(); k < 2; k++) {
			use_impl(k);
			sha256_init(&c);
			sha256_update(&c, pat, n);
			sha256_final(&c, md[k][0]);
			sha256_init(&c);
			for (i = 0; i < n; i++)
				sha256_update(&c, pat + i, 1);
			sha256_final(&c, md[k][1]);
			if (memcmp(md[k][0], md[k][1], SHA256_LEN) != 0)
				fprintf(stderr, "  %s, length %zu\n",
					impl_names[k], n);
			CHECK(memcmp(md[k][0], md[k][1], SHA256_LEN) == 0);
			sha256_update(&acc[k], md[k][0], SHA256_LEN);
		}
		if (cpu_shani) {
			if (memcmp(md[0][0], md[1][0], SHA256_LEN) != 0)
				fprintf(stderr, "  length %zu\n", n);
			CHECK(memcmp(md[0][0], md[1][0], SHA256_LEN) == 0);
		}
	}
	for (k = impl_first(); k < 2; k++) {
		sha256_final(&acc[k], all);
		jtext_hex(all, sizeof(all), hex);
		CHECK_STR(hex, lengths_digest);
	}
}

/* The chaining state means the same in both forms: switching block
 * functions in the middle of a message changes nothing. */
static void test_switch_midway(void)
{
	unsigned char pat[LEN_MAX], md[SHA256_LEN], want[SHA256_LEN];
	struct sha256 c;

	fill_pattern(pat, sizeof(pat));
	sha256_force_portable(1);
	sha256_init(&c);
	sha256_update(&c, pat, sizeof(pat));
	sha256_final(&c, want);

	sha256_force_portable(0);
	sha256_init(&c);
	sha256_update(&c, pat, 130);
	sha256_force_portable(1);
	sha256_update(&c, pat + 130, 100);
	sha256_force_portable(0);
	sha256_update(&c, pat + 230, sizeof(pat) - 230);
	sha256_final(&c, md);
	CHECK(memcmp(md, want, SHA256_LEN) == 0);
}

static void hmac_hex(const void *key, size_t keylen, const void *data,
		     size_t len, size_t step, char out[2 * SHA256_LEN + 1])
{
	unsigned char mac[SHA256_LEN];
	const unsigned char *p = data;
	struct sha256_hmac h;
	size_t i, n;

	sha256_hmac_init(&h, key, keylen);
	for (i = 0; i < len; i += n) {
		n = len - i < step ? len - i : step;
		sha256_hmac_update(&h, p + i, n);
	}
	sha256_hmac_final(&h, mac);
	jtext_hex(mac, sizeof(mac), out);
}

/* RFC 4231 test cases 1-7, in one update and in pieces of 1, 7 and 64. */
static void test_hmac_rfc4231(void)
{
	unsigned char key[256], data[256];
	char hex[2 * SHA256_LEN + 1];
	/* 1000: more than any test case's data, so one update. */
	static const size_t steps[] = {1, 7, 64, 1000};
	size_t i, j, k, klen, dlen;

	for (k = impl_first(); k < 2; k++) {
		use_impl(k);
		for (i = 0; i < sizeof(rfc4231) / sizeof(rfc4231[0]); i++) {
			const struct rfc4231 *v = &rfc4231[i];

			klen = unhex(v->key_hex, v->key_rep, key, sizeof(key));
			dlen = unhex(v->data_hex, 1, data, sizeof(data));
			REQUIRE(klen > 0 && dlen > 0);
			for (j = 0; j < sizeof(steps) / sizeof(steps[0]); j++) {
				hmac_hex(key, klen, data, dlen, steps[j], hex);
				hex[2 * v->maclen] = '\0';
				if (strcmp(hex, v->mac) != 0)
					fprintf(
					    stderr,
					    "  %s, test case %d, step %zu\n",
					    impl_names[k], v->tc, steps[j]);
				CHECK_STR(hex, v->mac);
			}
		}
	}
}

/* Keys at the block size and one either side (Python's hmac made the
 * MACs), and the empty key given as NULL. */
static void test_hmac_keys(void)
{
	static const struct {
		size_t keylen;
		const char *mac;
	} v[] = {
	    {63, "0417c274dadb1200ca4ab1084465122580f8073e0831d868c5f43195d85d9"
		 "2ef"},
	    {64, "c778b31e07b7ed445b7518ca555e0479e655ab70c89afbd255a28579056fb"
		 "d0c"},
	    {65, "c7b1d196e9b4fdd7736591757ace44623dc454b6949d21b8bbc26edb8f538"
		 "9cf"},
	};
	static const char msg[] = "block-sized key";
	unsigned char key[65], mac[SHA256_LEN];
	struct sha256_hmac h;
	char hex[2 * SHA256_LEN + 1];
	size_t i, k;

	for (i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)i;
	for (k = impl_first(); k < 2; k++) {
		use_impl(k);
		for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
			hmac_hex(key, v[i].keylen, msg, strlen(msg), 5, hex);
			CHECK_STR(hex, v[i].mac);
		}
		sha256_hmac_init(&h, NULL, 0);
		sha256_hmac_update(&h, NULL, 0);
		sha256_hmac_final(&h, mac);
		jtext_hex(mac, sizeof(mac), hex);
		CHECK_STR(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c4937156"
			       "53c6c712144292c5ad");
	}
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* final leaves nothing of the message or the key behind. */
static void test_wipe(void)
{
	unsigned char md[SHA256_LEN];
	struct sha256_hmac h;
	struct sha256 c;

	sha256_init(&c);
	sha256_update(&c, "secret", 6);
	sha256_final(&c, md);
	CHECK(all_zero(&c, sizeof(c)));

	sha256_hmac_init(&h, "key", 3);
	sha256_hmac_update(&h, "secret", 6);
	CHECK(!all_zero(h.opad, sizeof(h.opad)));
	sha256_hmac_final(&h, md);
	CHECK(all_zero(&h, sizeof(h)));
}

static void test_memeq(void)
{
	unsigned char a[64], b[64];
	size_t i;
	int bit;

	fill_pattern(a, sizeof(a));
	memcpy(b, a, sizeof(b));
	CHECK(sha256_memeq(a, b, sizeof(a)) == 1);
	CHECK(sha256_memeq(a, b, 0) == 1);
	CHECK(sha256_memeq(NULL, NULL, 0) == 1);
	CHECK(sha256_memeq(a, a, sizeof(a)) == 1);
	/* One flipped bit anywhere is a difference, reported as exactly 0. */
	for (i = 0; i < sizeof(a); i++)
		for (bit = 0; bit < 8; bit++) {
			b[i] ^= (unsigned char)(1 << bit);
			CHECK(sha256_memeq(a, b, sizeof(a)) == 0);
			CHECK(sha256_memeq(a, b, i) == 1);
			CHECK(sha256_memeq(a, b, i + 1) == 0);
			b[i] ^= (unsigned char)(1 << bit);
		}
	/* Every byte different. */
	for (i = 0; i < sizeof(b); i++)
		b[i] = (unsigned char)~a[i];
	CHECK(sha256_memeq(a, b, sizeof(a)) == 0);
}

int main(void)
{
	cpu_shani = cpuinfo_has("sha_ni") && cpuinfo_has("ssse3") &&
		    cpuinfo_has("sse4_1");
	TEST(test_select);
	TEST(test_nist);
	TEST(test_million_a);
	TEST(test_large);
	TEST(test_lengths);
	TEST(test_switch_midway);
	TEST(test_hmac_rfc4231);
	TEST(test_hmac_keys);
	TEST(test_wipe);
	TEST(test_memeq);
	sha256_force_portable(0);
	return test_report();
}
