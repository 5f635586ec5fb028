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
 *   - when jansson yields an object whose values are all strings, flatj
 *     accepts that object as jansson writes it (compact or indented, raw
 *     UTF-8 or \u escapes) and reads back the same object: the fast path
 *     really is taken for what it exists for. (Not the input itself: a
 *     repeated key may have replaced a non-string value.)
 *   - flatj_dump of any object jansson built writes exactly the bytes of
 *     json_dumps(JSON_COMPACT) when all values are strings, and declines
 *     (0) otherwise.
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

/* flatj_dump writes what jansson's compact dump writes, or declines. */
static void check_dump(json_t *o)
{
	char *mine = NULL, *theirs;
	size_t len = 0;
	int rc = flatj_dump(o, &mine, &len);

	FUZZ_CHECK(rc == 1 || rc == 0 || rc == -ENOMEM);
	FUZZ_CHECK(rc != 0 || !(json_is_object(o) && all_strings(o)));
	if (rc == 1) {
		theirs = json_dumps(o, JSON_COMPACT);
		FUZZ_CHECK(theirs && strlen(mine) == len &&
			   strcmp(mine, theirs) == 0);
		free(theirs);
	}
	free(mine);
}

/* flatj reads jansson's own rendering of o, with each flag set. */
static void check_reads_dump(json_t *o)
{
	static const size_t flags[] = {JSON_COMPACT, JSON_INDENT(2),
				       JSON_COMPACT | JSON_ENSURE_ASCII};

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		char *d = json_dumps(o, flags[i]);
		json_t *back = NULL;
		int rc;

		if (!d)
			return;
		rc = flatj_parse(d, strlen(d), &back);
		FUZZ_CHECK(rc == 1 || rc == -ENOMEM);
		FUZZ_CHECK(rc != 1 || json_equal(back, o));
		json_decref(back);
		free(d);
	}
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
	}
	if (slow && json_is_object(slow) && all_strings(slow))
		check_reads_dump(slow);
	if (slow)
		check_dump(slow);
	json_decref(fast);
	json_decref(slow);
	return 0;
}
