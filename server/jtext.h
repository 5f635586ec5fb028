/*
 * jtext: byte-level helpers shared by everything that reads or writes JSON
 * string text (wire_, flatj_, enc_), and the one lowercase-hex writer (HMAC
 * signatures and keys, helper-cell values, the bash host's token).
 * Header-only: they are on the per-byte path of streamed output and must
 * inline.
 */
#ifndef E2BCI_JTEXT_H
#define E2BCI_JTEXT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * Length (1 to 4) of the well-formed UTF-8 sequence at s, or minus the length
 * of its maximal invalid subpart: the lead byte plus the continuation bytes
 * that could still have begun a well-formed sequence (Unicode 15, §3.9,
 * "U+FFFD Substitution of Maximal Subparts"). The second-byte ranges exclude
 * overlongs (E0, F0), surrogates (ED) and code points above U+10FFFF (F4);
 * C0, C1 and F5..FF never start a sequence. avail >= 1.
 */
static inline int jtext_utf8_step(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2;
	else if (c >= 0xe0 && c <= 0xef)
		need = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 4;
	else
		return -1;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	for (i = 1; i < need; i++) {
		if (i >= avail || s[i] < lo || s[i] > hi)
			return -(int)i;
		lo = 0x80;
		hi = 0xbf;
	}
	return (int)need;
}

/* Whether all len bytes at s are well-formed UTF-8. */
static inline int jtext_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		int step = jtext_utf8_step(p + i, len - i);
		if (step < 0)
			return 0;
		i += (size_t)step;
	}
	return 1;
}

/*
 * The escape of ASCII byte c (< 0x80, not plain) in a JSON string, as jansson
 * writes it: \" \\ \b \f \n \r \t, else \u00XX with uppercase hex. Writes
 * at most 6 bytes to o and returns how many.
 */
static inline size_t jtext_esc_ascii(char *o, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";
	char e = c == '"'    ? '"'
		 : c == '\\' ? '\\'
		 : c == '\b' ? 'b'
		 : c == '\f' ? 'f'
		 : c == '\n' ? 'n'
		 : c == '\r' ? 'r'
		 : c == '\t' ? 't'
			     : 0;

	o[0] = '\\';
	if (e) {
		o[1] = e;
		return 2;
	}
	memcpy(o + 1, "u00", 3);
	o[4] = hex[c >> 4];
	o[5] = hex[c & 15];
	return 6;
}

/* A byte that stands for itself inside a JSON string, read or written:
 * printable ASCII other than '"' and '\\'. */
static inline int jtext_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/*
 * How many bytes from s (n long) are plain, eight at a time: a word holds no
 * byte that is >= 0x80, < 0x20, '"' or '\\' exactly when none of the four
 * classic "has a zero/less-than byte" tests fires (each may misplace which
 * byte fired, never whether one did); a word that fires is finished bytewise.
 */
static inline size_t jtext_plain_run(const char *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101ull,
		       high = 0x8080808080808080ull;
	size_t i = 0;

	while (i + 8 <= n) {
		uint64_t w, q, b;
		memcpy(&w, s + i, 8);
		q = w ^ (ones * '"');
		b = w ^ (ones * '\\');
		if ((w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) |
		     ((b - ones) & ~b)) &
		    high)
			break;
		i += 8;
	}
	while (i < n && jtext_plain((unsigned char)s[i]))
		i++;
	return i;
}

/* n bytes of src as 2n lowercase hex digits plus a NUL into dst. */
static inline void jtext_hex(const unsigned char *src, size_t n, char *dst)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		dst[2 * i] = digits[src[i] >> 4];
		dst[2 * i + 1] = digits[src[i] & 0x0f];
	}
	dst[2 * n] = '\0';
}

#endif
