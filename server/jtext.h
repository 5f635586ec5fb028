/*
 * jtext: byte-level helpers shared by everything that reads or writes JSON
 * string text (wire_, flatj_, enc_). Header-only: both are on the per-byte
 * path of streamed output and must inline.
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

#endif
