/*
 * kh_out.c: UTF-8 boundaries of streamed output.
 *
 * Owns the at most three bytes of a multibyte sequence cut by a pipe read.
 * Only a tail that could still become valid is held (a lead byte followed
 * by fewer continuation bytes than it announces); anything else goes out at
 * once, repaired by wire_utf8_sanitize(), so output is never delayed by
 * garbage. Any thread (no shared state); it does not publish anything.
 */
#include "kh_out.h"

#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* Bytes a sequence starting with lead c announces; 1 for ASCII and for
 * bytes that never start a sequence (those are repaired, not held). */
static size_t kh_out_seq_len(unsigned char c)
{
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c >= 0xe0 && c <= 0xef)
		return 3;
	if (c >= 0xf0 && c <= 0xf4)
		return 4;
	return 1;
}

/* How many bytes at the end of s (n bytes) form an incomplete sequence. */
static size_t kh_out_cut(const unsigned char *s, size_t n)
{
	for (size_t back = 1; back <= 3 && back <= n; back++) {
		unsigned char c = s[n - back];

		if ((c & 0xc0) == 0x80)
			continue;
		return kh_out_seq_len(c) > back ? back : 0;
	}
	return 0;
}

char *kh_out_take(struct kh_out *o, const char *buf, size_t len, bool flush,
		  size_t *outlen)
{
	unsigned char *all;
	size_t n = o->nhold + len, cut;
	char *text;

	all = malloc(n ? n : 1);
	if (!all)
		return NULL;
	memcpy(all, o->hold, o->nhold);
	if (len)
		memcpy(all + o->nhold, buf, len);
	cut = flush ? 0 : kh_out_cut(all, n);
	text = wire_utf8_sanitize((const char *)all, n - cut, outlen);
	if (text) {
		memcpy(o->hold, all + n - cut, cut);
		o->nhold = cut;
	}
	free(all);
	return text;
}
