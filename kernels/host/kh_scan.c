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
#include <string.h>

void kh_scan_init(struct kh_scan *s, const char *token, const char *kinds)
{
	memset(s, 0, sizeof(*s));
	s->token = token;
	s->toklen = strlen(token);
	s->kinds = kinds;
	/* What is held back stays under a marker's length (see above); the
	 * chunk appended to it is the caller's read, bounded there. */
	dbuf_init(&s->held, DBUF_NOMAX);
}

void kh_scan_cleanup(struct kh_scan *s)
{
	dbuf_cleanup(&s->held);
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
 * Classifies the token found at buf[at] (len bytes held). Returns the
 * offset where scanning resumes, or (size_t)-1 when the marker is not
 * complete yet.
 */
static size_t kh_scan_at(const struct kh_scan *s, const char *buf, size_t len,
			 size_t at, const struct kh_scan_ops *ops, void *arg)
{
	size_t kind = at + s->toklen, body = kind + 1;
	const char *nl;

	if (kind >= len)
		return (size_t)-1;
	if (buf[kind] == '\0' || !strchr(s->kinds, buf[kind]))
		goto text;
	nl = memchr(buf + body, '\n', len - body);
	if (nl && (size_t)(nl - (buf + body)) <= KH_SCAN_BODY_MAX) {
		ops->mark(arg, buf[kind], buf + body,
			  (size_t)(nl - (buf + body)));
		return (size_t)(nl - buf) + 1;
	}
	if (!nl && len - body <= KH_SCAN_BODY_MAX)
		return (size_t)-1;
text:
	/* Not a marker: the token itself is text; scan on after it. */
	kh_scan_text(ops, arg, buf + at, s->toklen);
	return kind;
}

int kh_scan_feed(struct kh_scan *s, const char *in, size_t n,
		 const struct kh_scan_ops *ops, void *arg)
{
	size_t pos = 0, at, next, keep, len;
	const char *hit, *buf;

	if (dbuf_add(&s->held, in, n) < 0) {
		dbuf_reset(&s->held);
		return -ENOMEM;
	}
	/* The callbacks do not feed this scanner: buf stays where it is. */
	buf = dbuf_ptr(&s->held);
	len = dbuf_len(&s->held);
	while (pos < len) {
		hit = memmem(buf + pos, len - pos, s->token, s->toklen);
		if (!hit) {
			keep = kh_scan_partial(s, buf + pos, len - pos);
			kh_scan_text(ops, arg, buf + pos, len - pos - keep);
			pos = len - keep;
			break;
		}
		at = (size_t)(hit - buf);
		kh_scan_text(ops, arg, buf + pos, at - pos);
		next = kh_scan_at(s, buf, len, at, ops, arg);
		if (next == (size_t)-1) {
			pos = at;
			break;
		}
		pos = next;
	}
	dbuf_shift(&s->held, pos);
	return 0;
}

void kh_scan_flush(struct kh_scan *s, const struct kh_scan_ops *ops, void *arg)
{
	kh_scan_text(ops, arg, dbuf_ptr(&s->held), dbuf_len(&s->held));
	dbuf_reset(&s->held);
}
