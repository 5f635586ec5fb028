/*
 * dbuf.c: the growable byte buffer (see dbuf.h).
 *
 * Owns nothing but the caller's struct dbuf. Invariants: len <= max <=
 * DBUF_NOMAX, so len + n + 1 never overflows once n <= max - len was
 * checked; when p is not NULL, len < cap and p[len] is NUL; err, once set,
 * is only cleared by dbuf_reset, dbuf_take and dbuf_cleanup.
 *
 * Growth starts at DBUF_MIN bytes and doubles, but never allocates more
 * than the cap can use (max + 1). Nothing shrinks by itself: a buffer
 * reused or freed at once should not pay a realloc (for a large one, glibc
 * then maps and unmaps it on every use); dbuf_trim is for one that is kept.
 */
#include "dbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DBUF_MIN 64

void dbuf_init(struct dbuf *b, size_t max)
{
	b->p = NULL;
	b->len = b->cap = 0;
	b->max = max < DBUF_NOMAX ? max : DBUF_NOMAX;
	b->err = 0;
}

void dbuf_cleanup(struct dbuf *b)
{
	free(b->p);
	dbuf_init(b, b->max);
}

char *dbuf_grow(struct dbuf *b, size_t n)
{
	size_t want, cap;
	char *p;

	if (b->err)
		return NULL;
	if (n > b->max - b->len) {
		b->err = -E2BIG;
		return NULL;
	}
	want = b->len + n + 1;
	if (want <= b->cap)
		return b->p + b->len;
	cap = b->cap ? b->cap : DBUF_MIN;
	while (cap < want)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	p = realloc(b->p, cap);
	if (!p) {
		b->err = -ENOMEM;
		return NULL;
	}
	if (!b->p)
		p[0] = '\0';
	b->p = p;
	b->cap = cap;
	return b->p + b->len;
}

int dbuf_add(struct dbuf *b, const void *data, size_t n)
{
	char *w = dbuf_room(b, n);

	if (!w)
		return b->err;
	if (n)
		memcpy(w, data, n);
	dbuf_commit(b, n);
	return 0;
}

int dbuf_addstr(struct dbuf *b, const char *s)
{
	return dbuf_add(b, s, strlen(s));
}

int dbuf_addf(struct dbuf *b, const char *fmt, ...)
{
	size_t avail = b->p ? b->cap - b->len : 0;
	va_list ap;
	char *w;
	int n;

	if (b->err)
		return b->err;
	/* First into the room there is; again once, after growing. */
	va_start(ap, fmt);
	n = vsnprintf(avail ? b->p + b->len : NULL, avail, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = -EINVAL;
		goto fail;
	}
	if ((size_t)n < avail && (size_t)n <= b->max - b->len) {
		b->len += (size_t)n;
		return 0;
	}
	w = dbuf_room(b, (size_t)n);
	if (!w)
		goto fail;
	va_start(ap, fmt);
	vsnprintf(w, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
fail:
	/* A cut first attempt wrote over the terminator. */
	if (b->p)
		b->p[b->len] = '\0';
	return b->err;
}

void dbuf_shift(struct dbuf *b, size_t n)
{
	if (n > b->len)
		n = b->len;
	if (!n)
		return;
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	b->p[b->len] = '\0';
}

void dbuf_trim(struct dbuf *b)
{
	char *p;

	if (!b->p || b->cap == b->len + 1)
		return;
	p = realloc(b->p, b->len + 1);
	if (!p)
		return;
	b->p = p;
	b->cap = b->len + 1;
}

char *dbuf_take(struct dbuf *b, size_t *len)
{
	char *p = b->p;

	if (len)
		*len = 0;
	if (b->err) {
		dbuf_cleanup(b);
		return NULL;
	}
	if (!p) {
		p = malloc(1);
		if (p)
			p[0] = '\0';
	}
	if (p && len)
		*len = b->len;
	dbuf_init(b, b->max);
	return p;
}
