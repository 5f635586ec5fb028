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
 * flatj_members finds an object's members without copying them: the
 * stream text of a message is escaped into its NDJSON line straight from
 * the received frame (enc_stream_raw).
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

/* A JSON string as it stands in the text: the bytes between its quotes,
 * escapes and all. */
struct flatj_span {
	const char *p;
	size_t len;
};

struct flatj_member {
	struct flatj_span key, val;
};

/* Finds the members of the flat object at p (len bytes) without decoding
 * anything: up to max of them go to out, raw, in text order (a repeated key
 * appears twice; jansson keeps the last value). Accepts exactly the texts
 * flatj_parse accepts, minus keys holding an escape (they would need
 * decoding to be compared). Returns the member count, or -EINVAL to decline
 * (anything else, or more than max members). */
int flatj_members(const char *p, size_t len, struct flatj_member *out,
		  size_t max);

/* The other way: when obj is an object whose values are all strings, writes
 * exactly what json_dumps(obj, JSON_COMPACT) writes (members in order,
 * non-ASCII as UTF-8, control characters escaped as jansson escapes them)
 * into a new NUL-terminated buffer *out of *len bytes and returns 1; returns
 * 0 for anything else (*out NULL: use jansson), -ENOMEM. */
int flatj_dump(const json_t *obj, char **out, size_t *len);

#endif
