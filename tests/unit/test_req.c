/*
 * test_req: every accept and reject branch of the POST /execute and POST
 * /contexts body checks, with the exact status and reason, and language
 * normalization. Run under ASan it also shows the error paths do not leak.
 */
#include "req.h"
#include "testhelp.h"

#include <stdlib.h>
#include <string.h>

/* A reason is one short line of printable ASCII. */
static int reason_ok(const char *r)
{
	size_t i, n = strlen(r);

	if (n == 0 || n > 200)
		return 0;
	for (i = 0; i < n; i++)
		if (r[i] < 0x20 || r[i] > 0x7e)
			return 0;
	return 1;
}

/* Parses body and checks status and reason; on failure the output must be
 * empty. Returns the status. */
static int exec_rej(const char *body, int status, const char *reason)
{
	struct req_execute r;
	char err[256] = "unset";
	int rc = req_parse_execute(body, strlen(body), &r, err, sizeof(err));

	CHECK(rc == status);
	if (rc != status)
		fprintf(stderr, "    body %s: got %d (%s)\n", body, rc, err);
	if (reason)
		CHECK_STR(err, reason);
	CHECK(reason_ok(err));
	CHECK(!r.code && !r.code_len && !r.context_id && !r.language &&
	      !r.env_vars);
	req_execute_cleanup(&r);
	return rc;
}

static int exec_ok(const char *body, struct req_execute *r)
{
	char err[256] = "";
	int rc = req_parse_execute(body, strlen(body), r, err, sizeof(err));

	if (rc)
		fprintf(stderr, "    body %s: got %d (%s)\n", body, rc, err);
	return rc;
}

static void test_execute_minimal(void)
{
	struct req_execute r;

	REQUIRE(exec_ok("{\"code\":\"x = 1\"}", &r) == 0);
	CHECK_STR(r.code, "x = 1");
	CHECK(r.code_len == 5);
	CHECK(!r.context_id && !r.language && !r.env_vars);
	req_execute_cleanup(&r);
	CHECK(!r.code);
	req_execute_cleanup(&r);
	req_execute_cleanup(NULL);
}

/* The Python SDK sends all four keys, unset ones as null. */
static void test_execute_python_sdk(void)
{
	struct req_execute r;

	REQUIRE(exec_ok("{\"code\": \"1+1\", \"context_id\": null, "
			"\"language\": null, \"env_vars\": null}",
			&r) == 0);
	CHECK_STR(r.code, "1+1");
	CHECK(!r.context_id && !r.language && !r.env_vars);
	req_execute_cleanup(&r);
}

static void test_execute_context_and_language(void)
{
	struct req_execute r;

	REQUIRE(exec_ok("{\"code\":\"\",\"context_id\":\"abc-123\"}", &r) == 0);
	CHECK_STR(r.code, "");
	CHECK(r.code_len == 0);
	CHECK_STR(r.context_id, "abc-123");
	CHECK(!r.language);
	req_execute_cleanup(&r);

	REQUIRE(exec_ok("{\"code\":\"1\",\"language\":\" JS \"}", &r) == 0);
	CHECK_STR(r.language, "javascript");
	CHECK(!r.context_id);
	req_execute_cleanup(&r);

	REQUIRE(exec_ok("{\"code\":\"1\",\"language\":\"  \"}", &r) == 0);
	CHECK_STR(r.language, "python");
	req_execute_cleanup(&r);

	/* An empty context_id counts as absent, so it does not conflict. */
	REQUIRE(exec_ok("{\"code\":\"1\",\"context_id\":\"\","
			"\"language\":\"ts\"}",
			&r) == 0);
	CHECK(!r.context_id);
	CHECK_STR(r.language, "typescript");
	req_execute_cleanup(&r);

	REQUIRE(exec_ok("{\"code\":\"1\",\"context_id\":\"c\","
			"\"language\":null}",
			&r) == 0);
	CHECK_STR(r.context_id, "c");
	CHECK(!r.language);
	req_execute_cleanup(&r);
}

static void test_execute_both(void)
{
	const char *why = "Only one of context_id or language can be provided";

	exec_rej(
	    "{\"code\":\"1\",\"context_id\":\"c\",\"language\":\"python\"}",
	    400, why);
	exec_rej("{\"code\":\"1\",\"context_id\":\"c\",\"language\":\"\"}", 400,
		 why);
	/* Schema errors come first, as with the reference server. */
	exec_rej("{\"context_id\":\"c\",\"language\":\"python\"}", 422,
		 "Field 'code' is required");
}

static void test_execute_not_object(void)
{
	exec_rej("[1,2]", 400, "Request body must be a JSON object");
	exec_rej("1", 400, "Request body must be a JSON object");
	exec_rej("null", 400, "Request body must be a JSON object");
	exec_rej("\"code\"", 400, "Request body must be a JSON object");
	exec_rej("", 400,
		 "Invalid JSON body: unexpected token near end of file at line "
		 "1 column 0");
	exec_rej(
	    "{", 400,
	    "Invalid JSON body: string or '}' expected near end of file at "
	    "line 1 column 1");
	exec_rej("{\"code\":\"1\"} x", 400,
		 "Invalid JSON body: end of file expected near 'x' at line 1 "
		 "column 14");
	exec_rej("{\"code\":\n\"1\",}", 400,
		 "Invalid JSON body: string or '}' expected near '}' at line "
		 "2 column 5");
	/* Invalid UTF-8 never becomes a string, and never reaches the reason
	 * (reason_ok checks the latter). */
	exec_rej("{\"code\":\"\xff\"}", 400,
		 "Invalid JSON body: unable to decode byte 0xff near '\"' at "
		 "line 1 column 9");
	exec_rej("{\"code\":\"\xc3\"}", 400, NULL);
	exec_rej("{\"code\":\"1\",\"code\":1e999}", 400, NULL);
}

/* A body need not be NUL-terminated: only len bytes count, and a raw NUL
 * byte is not JSON. */
static void test_execute_length(void)
{
	const char body[] = "{\"code\":\"1\"}garbage";
	struct req_execute r;
	char err[128];

	REQUIRE(req_parse_execute(body, 12, &r, err, sizeof(err)) == 0);
	CHECK_STR(r.code, "1");
	req_execute_cleanup(&r);
	CHECK(req_parse_execute(body, 13, &r, err, sizeof(err)) == 400);
	CHECK(req_parse_execute("{}\0", 3, &r, err, sizeof(err)) == 400);
	CHECK(req_parse_execute(NULL, 0, &r, err, sizeof(err)) == 400);
	CHECK(!r.code);
}

static void test_execute_code_schema(void)
{
	exec_rej("{}", 422, "Field 'code' is required");
	exec_rej("{\"Code\":\"1\"}", 422, "Field 'code' is required");
	exec_rej("{\"code\":null}", 422, "Field 'code' must be a string");
	exec_rej("{\"code\":1}", 422, "Field 'code' must be a string");
	exec_rej("{\"code\":[\"1\"]}", 422, "Field 'code' must be a string");
	exec_rej("{\"code\":{}}", 422, "Field 'code' must be a string");
	exec_rej("{\"code\":true}", 422, "Field 'code' must be a string");
}

static void test_execute_field_schema(void)
{
	exec_rej("{\"code\":\"1\",\"context_id\":5}", 422,
		 "Field 'context_id' must be a string or null");
	exec_rej("{\"code\":\"1\",\"context_id\":{}}", 422,
		 "Field 'context_id' must be a string or null");
	exec_rej("{\"code\":\"1\",\"context_id\":\"a\\u0000b\"}", 422,
		 "Field 'context_id' must not contain NUL bytes");
	exec_rej("{\"code\":\"1\",\"language\":[\"python\"]}", 422,
		 "Field 'language' must be a string or null");
	exec_rej("{\"code\":\"1\",\"language\":false}", 422,
		 "Field 'language' must be a string or null");
	exec_rej("{\"code\":\"1\",\"language\":\"py\\u0000\"}", 422,
		 "Field 'language' must not contain NUL bytes");
}

static void test_execute_env_schema(void)
{
	char body[600], want[300];

	exec_rej("{\"code\":\"1\",\"env_vars\":\"A=1\"}", 422,
		 "Field 'env_vars' must be an object or null");
	exec_rej("{\"code\":\"1\",\"env_vars\":[\"A\"]}", 422,
		 "Field 'env_vars' must be an object or null");
	exec_rej("{\"code\":\"1\",\"env_vars\":{\"A\":\"x\",\"K\":1}}", 422,
		 "env_vars value for key 'K' must be a string");
	exec_rej("{\"code\":\"1\",\"env_vars\":{\"K\":null}}", 422,
		 "env_vars value for key 'K' must be a string");
	exec_rej("{\"code\":\"1\",\"env_vars\":{\"K\":{\"a\":\"b\"}}}", 422,
		 "env_vars value for key 'K' must be a string");
	exec_rej("{\"code\":\"1\",\"env_vars\":{\"K\":\"a\\u0000\"}}", 422,
		 "env_vars value for key 'K' must not contain NUL bytes");
	exec_rej("{\"code\":\"1\",\"env_vars\":{\"\":\"x\"}}", 422,
		 "env_vars keys must not be empty");
	exec_rej("{\"code\":\"1\",\"env_vars\":{\"A=B\":\"x\"}}", 422,
		 "env_vars key 'A=B' must not contain '='");
	/* Keys are echoed as printable ASCII and cut at 100 bytes. */
	exec_rej("{\"code\":\"1\",\"env_vars\":{\"a\\nb\\u00e9\":1}}", 422,
		 "env_vars value for key 'a?b?"
		 "?' must be a string");
	snprintf(body, sizeof(body),
		 "{\"code\":\"1\",\"env_vars\":{\"%0300d\":1}}", 7);
	snprintf(want, sizeof(want),
		 "env_vars value for key '%0100d...' must be a string", 0);
	exec_rej(body, 422, want);
}

static void test_execute_env_verbatim(void)
{
	const char *body =
	    "{\"code\":\"1\",\"env_vars\":{\"Q\":\"a\\\"b'c\","
	    "\"B\":\"back\\\\slash\\\\\",\"N\":\"l1\\nl2\\r\\n\","
	    "\"U\":\"\\u00e9\\u65e5\\u672c\\ud83d\\ude00\",\"E\":\"\","
	    "\"S\":\"$HOME `x` $(y) %s\"}}";
	static const struct {
		const char *k, *v;
	} want[] = {
	    {"Q", "a\"b'c"},
	    {"B", "back\\slash\\"},
	    {"N", "l1\nl2\r\n"},
	    {"U", "\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac\xf0\x9f\x98\x80"},
	    {"E", ""},
	    {"S", "$HOME `x` $(y) %s"},
	};
	struct req_execute r;
	json_t *v;
	size_t i;

	REQUIRE(exec_ok(body, &r) == 0);
	REQUIRE(json_is_object(r.env_vars));
	CHECK(json_object_size(r.env_vars) == 6);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		v = json_object_get(r.env_vars, want[i].k);
		CHECK(json_is_string(v) &&
		      json_string_length(v) == strlen(want[i].v) &&
		      memcmp(json_string_value(v), want[i].v,
			     strlen(want[i].v)) == 0);
	}
	req_execute_cleanup(&r);
	CHECK(!r.env_vars);

	REQUIRE(exec_ok("{\"code\":\"1\",\"env_vars\":{}}", &r) == 0);
	CHECK(json_is_object(r.env_vars) && json_object_size(r.env_vars) == 0);
	req_execute_cleanup(&r);
}

static void test_execute_code_bytes(void)
{
	struct req_execute r;
	const char *want = "print('\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac "
			   "\xf0\x9f\x98\x80')\n\tx = \"q\\\\\"";

	REQUIRE(exec_ok("{\"code\":\"print('\\u00e9 \xe6\x97\xa5\xe6\x9c\xac "
			"\\ud83d\\ude00')\\n\\tx = \\\"q\\\\\\\\\\\"\"}",
			&r) == 0);
	CHECK(r.code_len == strlen(want));
	CHECK_STR(r.code, want);
	req_execute_cleanup(&r);

	REQUIRE(exec_ok("{\"code\":\"a\\u0000b\"}", &r) == 0);
	CHECK(r.code_len == 3);
	CHECK(memcmp(r.code, "a\0b", 4) == 0);
	req_execute_cleanup(&r);
}

static void test_execute_unknown_keys(void)
{
	struct req_execute r;

	REQUIRE(exec_ok("{\"timeout\":30,\"code\":\"1\",\"extra\":{\"a\":[1,"
			"{\"b\":null}]},\"request_timeout\":null}",
			&r) == 0);
	CHECK_STR(r.code, "1");
	req_execute_cleanup(&r);
}

/* The reason is cut to errlen, and a missing buffer is tolerated. */
static void test_execute_errlen(void)
{
	struct req_execute r;
	char err[10];

	memset(err, 'x', sizeof(err));
	CHECK(req_parse_execute("{}", 2, &r, err, sizeof(err)) == 422);
	CHECK_STR(err, "Field 'co");
	CHECK(req_parse_execute("{}", 2, &r, NULL, 0) == 422);
	memset(err, 'x', sizeof(err));
	CHECK(req_parse_execute("{}", 2, &r, err, 0) == 422);
	CHECK(err[0] == 'x');
}

static int ctx_parse(const char *body, size_t len, struct req_context *r,
		     char *err)
{
	return req_parse_context(body, len, r, err, 256);
}

static void ctx_ok(const char *body, const char *lang, const char *cwd)
{
	struct req_context r;
	char err[256] = "";

	CHECK(ctx_parse(body, strlen(body), &r, err) == 0);
	CHECK_STR(r.language, lang);
	if (cwd)
		CHECK_STR(r.cwd, cwd);
	else
		CHECK(!r.cwd);
	req_context_cleanup(&r);
	CHECK(!r.language && !r.cwd);
}

static void ctx_rej(const char *body, int status, const char *reason)
{
	struct req_context r;
	char err[256] = "unset";

	CHECK(ctx_parse(body, strlen(body), &r, err) == status);
	if (reason)
		CHECK_STR(err, reason);
	CHECK(reason_ok(err));
	CHECK(!r.language && !r.cwd);
	req_context_cleanup(&r);
}

static void test_context(void)
{
	struct req_context r;
	char err[256];

	ctx_ok("", "python", NULL);
	ctx_ok(" \r\n\t", "python", NULL);
	ctx_ok("{}", "python", NULL);
	ctx_ok("{\"language\":null,\"cwd\":null}", "python", NULL);
	ctx_ok("{\"language\":\"\",\"cwd\":\"\"}", "python", NULL);
	ctx_ok("{\"language\":\"JS\",\"cwd\":\"/tmp/\xc3\xa9 x\"}",
	       "javascript", "/tmp/\xc3\xa9 x");
	ctx_ok("{\"language\":\" R \",\"other\":1}", "r", NULL);
	ctx_ok("{\"cwd\":\"/home/user\"}", "python", "/home/user");
	CHECK(req_parse_context(NULL, 0, &r, err, sizeof(err)) == 0);
	CHECK_STR(r.language, "python");
	req_context_cleanup(&r);
	req_context_cleanup(NULL);
}

static void test_context_reject(void)
{
	ctx_rej("[]", 400, "Request body must be a JSON object");
	ctx_rej("null", 400, "Request body must be a JSON object");
	ctx_rej(
	    "nope", 400,
	    "Invalid JSON body: invalid token near 'nope' at line 1 column 4");
	ctx_rej("{\"language\":5}", 422,
		"Field 'language' must be a string or null");
	ctx_rej("{\"language\":\"python\",\"cwd\":[]}", 422,
		"Field 'cwd' must be a string or null");
	ctx_rej("{\"cwd\":\"/tmp\\u0000/x\"}", 422,
		"Field 'cwd' must not contain NUL bytes");
}

static void norm_is(const char *in, const char *want)
{
	char *s = req_normalize_language(in);

	CHECK_STR(s, want);
	free(s);
}

static void test_normalize(void)
{
	norm_is("python", "python");
	norm_is("Python", "python");
	norm_is("\t PYTHON \n", "python");
	norm_is("", "python");
	norm_is(" \t\r\n\v\f", "python");
	norm_is(NULL, "python");
	norm_is("js", "javascript");
	norm_is(" JS ", "javascript");
	norm_is("JavaScript", "javascript");
	norm_is("ts", "typescript");
	norm_is("Ts", "typescript");
	norm_is("TypeScript", "typescript");
	norm_is("r", "r");
	norm_is("Bash", "bash");
	norm_is("java", "java");
	norm_is("j s", "j s");
	norm_is("jss", "jss");
	norm_is("\xc3\x89X", "\xc3\x89x");
}

int main(void)
{
	TEST(test_execute_minimal);
	TEST(test_execute_python_sdk);
	TEST(test_execute_context_and_language);
	TEST(test_execute_both);
	TEST(test_execute_not_object);
	TEST(test_execute_length);
	TEST(test_execute_code_schema);
	TEST(test_execute_field_schema);
	TEST(test_execute_env_schema);
	TEST(test_execute_env_verbatim);
	TEST(test_execute_code_bytes);
	TEST(test_execute_unknown_keys);
	TEST(test_execute_errlen);
	TEST(test_context);
	TEST(test_context_reject);
	TEST(test_normalize);
	return test_report();
}
