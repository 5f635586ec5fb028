/*
 * kh_out: turning pipe bytes into stream text.
 *
 * A read from a pipe can end in the middle of a UTF-8 sequence, and Jupyter
 * stream text must be valid UTF-8. kh_out keeps such a cut-off tail back
 * until the next chunk (or a flush) and replaces bytes that can never be
 * valid with U+FFFD. Pure functions over the caller's struct; any thread.
 */
#ifndef E2B_KH_OUT_H
#define E2B_KH_OUT_H

#include <stdbool.h>
#include <stddef.h>

struct kh_out {
	unsigned char hold[4]; /* an incomplete sequence from the last chunk */
	size_t nhold;
};

/* Returns what can be shown now of the held bytes plus buf (len bytes) as
 * a malloc'd, NUL-terminated, valid UTF-8 string of *outlen bytes (may be
 * 0), keeping an incomplete sequence at the end back unless flush is set
 * (then it becomes U+FFFD). NULL on allocation failure. */
char *kh_out_take(struct kh_out *o, const char *buf, size_t len, bool flush,
		  size_t *outlen);

#endif
