/*
 * kh_scan.c: the marker scanner of bash mode.
 *
 * Owns the bytes of a stream that cannot be classified yet: a possible
 * prefix of the token at the end of a chunk, or a marker whose newline has
 * not arrived. Everything else is passed on the moment it is read, so
 * streaming output is never delayed by more than a token's length.
 *
 * Invariants: a marker is the token, one byte of s->kinds, at most
 * KH_SCAN_BODY_MAX bytes without a newline, and a newline. A token followed
 * by anything else, or by an over-long body, is ordinary text (user output
 * that merely contains the token, e.g. "declare -f" of our helpers); the
 * held-back bytes never exceed token + kind + KH_SCAN_BODY_MAX.
 *
 * Threads: no shared state. It does not know what markers mean.
 */
#include "kh_scan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void kh_scan_init(struct kh_scan *s, const char *token, const char *kinds)
{
	memset(s, 0, sizeof(*s));
	s->token = token;
	s->toklen = strlen(token);
	s->kinds = kinds;
}

void kh_scan_cleanup(struct kh_scan *s)
{
	free(s->buf);
	s->buf = NULL;
	s->len = s->cap = 0;
}

static int kh_scan_append(struct kh_scan *s, const char *in, size_t n)
{
	size_t cap;
	char *nb;

	if (n == 0)
		return 0;
	if (n <= s->cap - s->len)
		goto copy;
	cap = (s->len + n) * 2;
	if (cap < s->len + n)
		return -ENOMEM;
	nb = realloc(s->buf, cap);
	if (!nb)
		return -ENOMEM;
	s->buf = nb;
	s->cap = cap;
copy:
	memcpy(s->buf + s->len, in, n);
	s->len += n;
	return 0;
}

/* Length of the longest proper prefix of the token that ends buf. */
static size_t kh_scan_partial(const struct kh_scan *s, const char *buf,
			      size_t n)
{
	size_t k = n < s->toklen - 1 ? n : s->toklen - 1;

	for (; k > 0; k--) {
		if (memcmp(buf + n - k, s->token, k) == 0)
			return k;
	}
	return 0;
}

static void kh_scan_text(const struct kh_scan_ops *ops, void *arg,
			 const char *buf, size_t n)
{
	if (n > 0)
		ops->text(arg, buf, n);
}

/*
 * Classifies the token found at buf[at]. Returns the offset where scanning
 * resumes, or (size_t)-1 when the marker is not complete yet.
 */
static size_t kh_scan_at(struct kh_scan *s, size_t at,
			 const struct kh_scan_ops *ops, void *arg)
{
	size_t kind = at + s->toklen, body = kind + 1;
	const char *nl;

	if (kind >= s->len)
		return (size_t)-1;
	if (s->buf[kind] == '\0' || !strchr(s->kinds, s->buf[kind]))
		goto text;
	nl = memchr(s->buf + body, '\n', s->len - body);
	if (nl && (size_t)(nl - (s->buf + body)) <= KH_SCAN_BODY_MAX) {
		ops->mark(arg, s->buf[kind], s->buf + body,
			  (size_t)(nl - (s->buf + body)));
		return (size_t)(nl - s->buf) + 1;
	}
	if (!nl && s->len - body <= KH_SCAN_BODY_MAX)
		return (size_t)-1;
text:
	/* Not a marker: the token itself is text; scan on after it. */
	kh_scan_text(ops, arg, s->buf + at, s->toklen);
	return kind;
}

int kh_scan_feed(struct kh_scan *s, const char *in, size_t n,
		 const struct kh_scan_ops *ops, void *arg)
{
	size_t pos = 0, at, next, keep;
	const char *hit;

	if (kh_scan_append(s, in, n) < 0)
		return -ENOMEM;
	while (pos < s->len) {
		hit = memmem(s->buf + pos, s->len - pos, s->token, s->toklen);
		if (!hit) {
			keep = kh_scan_partial(s, s->buf + pos, s->len - pos);
			kh_scan_text(ops, arg, s->buf + pos,
				     s->len - pos - keep);
			pos = s->len - keep;
			break;
		}
		at = (size_t)(hit - s->buf);
		kh_scan_text(ops, arg, s->buf + pos, at - pos);
		next = kh_scan_at(s, at, ops, arg);
		if (next == (size_t)-1) {
			pos = at;
			break;
		}
		pos = next;
	}
	if (pos > 0 && pos < s->len)
		memmove(s->buf, s->buf + pos, s->len - pos);
	s->len -= pos;
	return 0;
}

void kh_scan_flush(struct kh_scan *s, const struct kh_scan_ops *ops, void *arg)
{
	if (s->len > 0)
		kh_scan_text(ops, arg, s->buf, s->len);
	s->len = 0;
}
