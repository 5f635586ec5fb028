/*
 * flatj: a fast path for the flat JSON objects most Jupyter messages are.
 *
 * A stream message's content is {"name": "stdout", "text": "<64 KiB>"}, and
 * its header and parent header are objects of short strings. jansson reads
 * such text a byte at a time through its lexer and a growing buffer; that
 * was 60 % of the daemon's CPU while streaming stdout. flatj reads an object
 * whose values are all strings with word-at-a-time scans and bulk copies,
 * and builds the same json_t jansson's json_loadb(JSON_ALLOW_NUL) builds for
 * that text after the wire's UTF-8 repair (each maximal invalid subpart
 * replaced by U+FFFD).
 *
 * flatj_dump writes such objects the way jansson's compact dump does, with
 * the same bulk copies: stream messages a kernel host publishes are dumped,
 * signed and sent once per pipe read.
 *
 * It declines (returns 0) everything else: nested values, numbers, literals,
 * an error jansson would report (a raw control character, a bad escape, a
 * lone surrogate, a NUL in a key, trailing bytes). The caller then takes the
 * jansson path, so every input gives exactly what jansson gives; the
 * differential fuzz target tests/fuzz/fuzz_flatj.c holds it to that.
 * Pure function: no global state, any thread.
 */
#ifndef E2BCI_FLATJ_H
#define E2BCI_FLATJ_H

#include <jansson.h>
#include <stddef.h>

/* Parses len bytes at p. Returns 1 with a new object in *out, 0 when the
 * text is not a flat object of strings this parser reproduces exactly
 * (*out NULL: use jansson), -ENOMEM. */
int flatj_parse(const char *p, size_t len, json_t **out);

/* The other way: when obj is an object whose values are all strings, writes
 * exactly what json_dumps(obj, JSON_COMPACT) writes (members in order,
 * non-ASCII as UTF-8, control characters escaped as jansson escapes them)
 * into a new NUL-terminated buffer *out of *len bytes and returns 1; returns
 * 0 for anything else (*out NULL: use jansson), -ENOMEM. */
int flatj_dump(const json_t *obj, char **out, size_t *len);

#endif
