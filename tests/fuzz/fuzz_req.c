/*
 * fuzz_req: request validation (req_parse_execute, req_parse_context,
 * req_normalize_language) on arbitrary bodies.
 *
 * The input is the body as received, not NUL-terminated, so ASan sees any
 * read past len. Invariants checked beyond "no crash":
 *   - the status is 0, 400 or 422 (500 is out of memory, which the fuzzer's
 *     allocator never reports), for both bodies;
 *   - on failure err is one non-empty line of printable ASCII, also when it
 *     is truncated to a tiny buffer, and the output struct is all NULL;
 *   - on success code is non-NULL, NUL-terminated at code_len; context_id
 *     and language are never both set, hold no NUL and are non-empty; the
 *     language is normalized (normalizing it again changes nothing); env_vars
 *     is an object of NUL-free strings with usable names; a context always
 *     has a language and a cwd that is NULL or non-empty;
 *   - the same body parses to the same status every time (no hidden state).
 */
#include "fuzz.h"

#include "req.h"

#include <string.h>

static void check_err(const char *err, size_t errlen)
{
	size_t i, n = strlen(err);

	FUZZ_CHECK(n > 0 && n < errlen);
	for (i = 0; i < n; i++)
		FUZZ_CHECK(err[i] >= 0x20 && err[i] < 0x7f);
}

static void check_lang(const char *lang)
{
	char *again;
	size_t n = strlen(lang), i;

	FUZZ_CHECK(n > 0);
	FUZZ_CHECK(strcmp(lang, "js") != 0 && strcmp(lang, "ts") != 0);
	for (i = 0; i < n; i++)
		FUZZ_CHECK(!(lang[i] >= 'A' && lang[i] <= 'Z'));
	again = req_normalize_language(lang);
	FUZZ_CHECK(again != NULL && strcmp(again, lang) == 0);
	free(again);
}

static void check_env(json_t *env)
{
	const char *key;
	json_t *v;

	FUZZ_CHECK(json_is_object(env));
	json_object_foreach(env, key, v)
	{
		FUZZ_CHECK(key[0] != '\0' && strchr(key, '=') == NULL);
		FUZZ_CHECK(json_is_string(v));
		FUZZ_CHECK(strlen(json_string_value(v)) ==
			   json_string_length(v));
	}
}

static int fuzz_execute(const char *body, size_t len, size_t errlen)
{
	struct req_execute r;
	char err[512];
	int rc;

	memset(err, 0, sizeof(err));
	rc = req_parse_execute(body, len, &r, err, errlen);
	FUZZ_CHECK(rc == 0 || rc == 400 || rc == 422);
	if (rc != 0) {
		if (errlen > 1)
			check_err(err, errlen);
		FUZZ_CHECK(r.code == NULL && r.context_id == NULL &&
			   r.language == NULL && r.env_vars == NULL);
		return rc;
	}
	FUZZ_CHECK(r.code != NULL && r.code[r.code_len] == '\0');
	FUZZ_CHECK(r.context_id == NULL || r.language == NULL);
	if (r.context_id)
		FUZZ_CHECK(r.context_id[0] != '\0');
	if (r.language)
		check_lang(r.language);
	if (r.env_vars)
		check_env(r.env_vars);
	req_execute_cleanup(&r);
	FUZZ_CHECK(r.code == NULL);
	return rc;
}

static int fuzz_context(const char *body, size_t len, size_t errlen)
{
	struct req_context r;
	char err[512];
	int rc;

	memset(err, 0, sizeof(err));
	rc = req_parse_context(body, len, &r, err, errlen);
	FUZZ_CHECK(rc == 0 || rc == 400 || rc == 422);
	if (rc != 0) {
		if (errlen > 1)
			check_err(err, errlen);
		FUZZ_CHECK(r.language == NULL && r.cwd == NULL);
		return rc;
	}
	FUZZ_CHECK(r.language != NULL);
	check_lang(r.language);
	FUZZ_CHECK(r.cwd == NULL || r.cwd[0] != '\0');
	req_context_cleanup(&r);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A private copy of exactly size bytes: no terminator to lean on. */
	char *body = malloc(size ? size : 1);
	char *lang, *nul;
	int rc;

	FUZZ_CHECK(body != NULL);
	if (size)
		memcpy(body, data, size);
	rc = fuzz_execute(body, size, 512);
	/* Truncated reasons must still be whole printable lines. */
	FUZZ_CHECK(fuzz_execute(body, size, 1 + size % 17) == rc);
	rc = fuzz_context(body, size, 512);
	FUZZ_CHECK(fuzz_context(body, size, 1 + size % 17) == rc);
	/* The language normalizer alone, on the body up to its first NUL. */
	nul = malloc(size + 1);
	FUZZ_CHECK(nul != NULL);
	memcpy(nul, data, size);
	nul[size] = '\0';
	lang = req_normalize_language(nul);
	FUZZ_CHECK(lang != NULL);
	check_lang(lang);
	free(lang);
	free(nul);
	free(body);
	return 0;
}
