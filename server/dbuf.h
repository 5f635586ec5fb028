/*
 * dbuf: the one growable byte buffer, in the shape of curl's dynbuf
 * (lib/dynbuf.c), shared by the daemon and the kernel host.
 *
 * A buffer is made with a cap on its length (dbuf_init); adding past the
 * cap, or running out of memory, fails, and the failure sticks: every later
 * add does nothing and reports the same error, so a caller that builds a
 * string in many steps checks once, at the end (dbuf_err, or dbuf_take
 * returning NULL). dbuf_reset starts over and clears it.
 *
 * The bytes are NUL-terminated once anything was added (the NUL is not
 * counted in the length, and not against the cap). Hot paths (NDJSON
 * escaping, flatj_dump, pipe reads) write in place: dbuf_room reserves n
 * bytes at the end, the caller writes up to n there and dbuf_commit counts
 * what it wrote. Growth doubles, so adding byte by byte is amortised O(1).
 *
 * Pure functions over the caller's struct; any thread. libc only: the
 * kernel host links it as it is.
 */
#ifndef E2BCI_DBUF_H
#define E2BCI_DBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* No cap but memory (and size_t: lengths stay below SIZE_MAX / 2). */
#define DBUF_NOMAX (SIZE_MAX / 2)

struct dbuf {
	char *p;    /* NULL until the first byte; then NUL-terminated */
	size_t len; /* bytes held, the NUL not counted */
	size_t cap; /* bytes allocated at p */
	size_t max; /* len never passes it */
	int err;    /* 0, or the first failure: -ENOMEM, -E2BIG (cap) */
};

/* An empty buffer whose length may reach max bytes (DBUF_NOMAX: no cap).
 * Allocates nothing. */
void dbuf_init(struct dbuf *b, size_t max);

/* The same as an initializer: struct dbuf b = DBUF_INIT(4096); max must
 * not pass DBUF_NOMAX. */
#define DBUF_INIT(cap_max)                                                     \
	{                                                                      \
		.max = (cap_max)                                               \
	}

/* Frees the bytes; the buffer is empty again, with the same cap. */
void dbuf_cleanup(struct dbuf *b);

/* Length 0 and the failure cleared; the memory is kept for reuse. Inline:
 * flatj resets its scratch once per string. */
static inline void dbuf_reset(struct dbuf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->p)
		b->p[0] = '\0';
}

/* Appends n bytes. Returns 0, or the (sticky) error: -E2BIG when the
 * length would pass the cap, -ENOMEM. */
int dbuf_add(struct dbuf *b, const void *data, size_t n);

/* dbuf_add of a NUL-terminated string. */
int dbuf_addstr(struct dbuf *b, const char *s);

/* Appends printf output. Returns 0 or the (sticky) error. */
int dbuf_addf(struct dbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Out of line: makes room for n more bytes (dbuf_room's slow path). */
char *dbuf_grow(struct dbuf *b, size_t n);

/* Room for n more bytes (and the NUL after them) at the end: returns
 * where they go, or NULL when that would pass the cap or memory ran out
 * (the failure sticks). Nothing is counted until dbuf_commit. */
static inline char *dbuf_room(struct dbuf *b, size_t n)
{
	/* cap never passes max + 1, so what fits is under the cap too. */
	if (!b->err && n < b->cap - b->len)
		return b->p + b->len;
	return dbuf_grow(b, n);
}

/* Counts n bytes written at dbuf_room's pointer (n at most what was
 * reserved) and terminates them. */
static inline void dbuf_commit(struct dbuf *b, size_t n)
{
	b->len += n;
	b->p[b->len] = '\0';
}

/* Drops the first n bytes (at most len), moving the rest to the front. */
void dbuf_shift(struct dbuf *b, size_t n);

/* Gives back what is allocated beyond the bytes and their NUL (for a
 * buffer that is kept, e.g. a line reserved for its worst case that waits
 * in a queue). */
void dbuf_trim(struct dbuf *b);

/* Hands the bytes over (as they are allocated: see dbuf_trim): a NUL-terminated
 * string ("" when nothing was added) owned by the caller, its length in *len
 * when len is not NULL; or NULL after a failure. Either way the buffer is empty
 * afterwards, the failure cleared. */
char *dbuf_take(struct dbuf *b, size_t *len);

/* The bytes (borrowed, NUL-terminated; "" when empty), valid until the
 * next call that adds. */
static inline const char *dbuf_ptr(const struct dbuf *b)
{
	return b->p ? b->p : "";
}

static inline size_t dbuf_len(const struct dbuf *b)
{
	return b->len;
}

/* 0, or the failure that stuck: -ENOMEM, -E2BIG. */
static inline int dbuf_err(const struct dbuf *b)
{
	return b->err;
}

#endif
