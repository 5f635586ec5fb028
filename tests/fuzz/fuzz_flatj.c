/*
 * fuzz_flatj: the flat-object fast path against jansson, differentially.
 *
 * The input is one JSON text. Invariants:
 *   - flatj_parse returns 1, 0 or -ENOMEM; *out is an object exactly when
 *     it returns 1;
 *   - when it returns 1, the jansson path (each maximal invalid UTF-8
 *     subpart replaced by U+FFFD, then json_loadb with JSON_ALLOW_NUL)
 *     accepts the same text, and both objects dump to identical bytes
 *     (same keys in the same order, same values, NUL bytes included);
 *   - when jansson yields an object whose values are all strings and the
 *     input has no '\' escape of a surrogate, no control byte and no bytes
 *     after the object, flatj does not decline it (the fast path really is
 *     taken for what it exists for).
 */
#include "fuzz.h"

#include "flatj.h"
#include "wire.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static bool all_strings(json_t *o)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) if (!json_is_string(v)) return false;
	return true;
}

static bool plain_input(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')
			return false;
		if (c == '\\')
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	json_t *fast = NULL, *slow;
	json_error_t err;
	size_t clen;
	char *clean;
	int rc;

	rc = flatj_parse(p, size, &fast);
	FUZZ_CHECK(rc == 1 || rc == 0 || rc == -ENOMEM);
	FUZZ_CHECK((rc == 1) == (fast != NULL));
	FUZZ_CHECK(rc != 1 || json_is_object(fast));

	clean = wire_utf8_sanitize(p, size, &clen);
	if (!clean) {
		json_decref(fast);
		return 0;
	}
	slow = json_loadb(clean, clen, JSON_ALLOW_NUL, &err);
	free(clean);
	if (rc == 1) {
		char *a, *b;
		FUZZ_CHECK(slow != NULL);
		a = json_dumps(fast, JSON_COMPACT | JSON_ENSURE_ASCII);
		b = json_dumps(slow, JSON_COMPACT | JSON_ENSURE_ASCII);
		FUZZ_CHECK(a && b && strcmp(a, b) == 0);
		FUZZ_CHECK(json_equal(fast, slow));
		free(a);
		free(b);
	} else if (rc == 0 && slow && json_is_object(slow) &&
		   all_strings(slow) && plain_input(p, size)) {
		FUZZ_CHECK(!"flatj declined a plain flat object of strings");
	}
	json_decref(fast);
	json_decref(slow);
	return 0;
}
