/*
 * kh_scan: finding in-band markers in a stream of bytes.
 *
 * Bash mode makes bash print "<token><kind><body>\n" markers into its own
 * stdout and stderr (see kh_bash.c). kh_scan splits a stream into the text
 * around them and the markers themselves, as bytes arrive: text is passed
 * on at once, except for a tail that may be the start of a marker, which
 * waits for the next chunk. Pure functions over the caller's struct; any
 * thread.
 */
#ifndef E2B_KH_SCAN_H
#define E2B_KH_SCAN_H

#include <stddef.h>

#include "dbuf.h"

#define KH_SCAN_BODY_MAX 256 /* longest marker body; longer: it is text */

struct kh_scan_ops {
	/* len (> 0) bytes of ordinary output. */
	void (*text)(void *arg, const char *buf, size_t len);
	/* A marker: kind is one of the scanner's kinds, body excludes the
	 * newline. */
	void (*mark)(void *arg, char kind, const char *body, size_t len);
};

struct kh_scan {
	const char *token; /* borrowed, never empty */
	size_t toklen;
	const char *kinds; /* borrowed: the bytes that may follow a token */
	struct dbuf held;  /* bytes held back, and the chunk being scanned */
};

/* token and kinds are borrowed and must outlive the scanner. */
void kh_scan_init(struct kh_scan *s, const char *token, const char *kinds);

/* Scans n more bytes, calling ops with arg in stream order. The callbacks
 * must not feed this scanner. Returns 0 or -ENOMEM (these bytes, and any
 * held back, are lost). */
int kh_scan_feed(struct kh_scan *s, const char *in, size_t n,
		 const struct kh_scan_ops *ops, void *arg);

/* Passes everything held back on as text (end of stream). */
void kh_scan_flush(struct kh_scan *s, const struct kh_scan_ops *ops, void *arg);

void kh_scan_cleanup(struct kh_scan *s);

#endif
