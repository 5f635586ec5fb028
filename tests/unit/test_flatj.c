/*
 * test_flatj: the flat-object fast path gives what jansson gives, and
 * declines what it must not read. The differential fuzzer
 * (tests/fuzz/fuzz_flatj.c) covers the space; these are the cases worth
 * naming.
 */
#include "testhelp.h"

#include "flatj.h"
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* jansson's view of the same bytes, after the wire's UTF-8 repair. */
static char *slow_dump(const char *p, size_t n)
{
	size_t clen;
	char *clean = wire_utf8_sanitize(p, n, &clen), *s = NULL;
	json_error_t err;
	json_t *j;

	if (!clean)
		return NULL;
	j = json_loadb(clean, clen, JSON_ALLOW_NUL, &err);
	free(clean);
	if (j)
		s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(j);
	return s;
}

static void accepts(const char *p, size_t n, const char *want)
{
	json_t *o = NULL;
	char *fast, *slow;

	CHECK(flatj_parse(p, n, &o) == 1);
	REQUIRE(o);
	fast = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	slow = slow_dump(p, n);
	CHECK_STR(fast, slow);
	CHECK_STR(fast, want);
	free(fast);
	free(slow);
	json_decref(o);
}

static void declines(const char *p, size_t n)
{
	json_t *o = (json_t *)1;

	CHECK(flatj_parse(p, n, &o) == 0);
	CHECK(o == NULL);
}

#define ACCEPTS(lit, want) accepts(lit, sizeof(lit) - 1, want)
#define DECLINES(lit)	   declines(lit, sizeof(lit) - 1)

static void test_stream_content(void)
{
	ACCEPTS("{\"name\": \"stdout\", \"text\": \"hello\\n\"}",
		"{\"name\":\"stdout\",\"text\":\"hello\\n\"}");
	ACCEPTS(" {} ", "{}");
	ACCEPTS("\r\n{ \"a\"\t:\n\"b\" }\n", "{\"a\":\"b\"}");
}

static void test_escapes(void)
{
	ACCEPTS("{\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
		"{\"e\":\"\\\"\\\\/\\b\\f\\n\\r\\t\"}");
	ACCEPTS("{\"u\":\"\\u00e9\\u00E9\\u20ac\\ud83d\\ude00\"}",
		"{\"u\":\"\\u00E9\\u00E9\\u20AC\\uD83D\\uDE00\"}");
	ACCEPTS("{\"z\":\"a\\u0000b\"}", "{\"z\":\"a\\u0000b\"}");
}

static void test_utf8(void)
{
	/* Raw UTF-8 kept, each maximal invalid subpart one U+FFFD. */
	ACCEPTS("{\"t\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}",
		"{\"t\":\"caf\\u00E9 \\uD83D\\uDE00\"}");
	ACCEPTS("{\"t\":\"a\xff"
		"b\xe0\x80"
		"c\xed\xa0\x80"
		"d\xe2\x82\"}",
		"{\"t\":\"a\\uFFFDb\\uFFFD\\uFFFDc\\uFFFD\\uFFFD\\uFFFDd"
		"\\uFFFD\"}");
}

static void test_duplicates(void)
{
	/* jansson keeps the first position and the last value. */
	ACCEPTS("{\"a\":\"1\",\"b\":\"2\",\"a\":\"3\"}",
		"{\"a\":\"3\",\"b\":\"2\"}");
}

static void test_long_text(void)
{
	size_t n = 70000, i;
	char *p = malloc(n + 32), *want = malloc(n + 32);

	REQUIRE(p && want);
	memcpy(p, "{\"text\":\"", 9);
	for (i = 0; i < n; i++)
		p[9 + i] = (char)('a' + i % 26);
	memcpy(p + 9 + n, "\\n\"}", 5);
	memcpy(want, p, 9 + n);
	memcpy(want + 9 + n, "\\n\"}", 5);
	accepts(p, strlen(p), want);
	free(p);
	free(want);
}

static void test_declines(void)
{
	DECLINES("");
	DECLINES("[]");
	DECLINES("\"s\"");
	DECLINES("{\"a\":1}");
	DECLINES("{\"a\":null}");
	DECLINES("{\"a\":{}}");
	DECLINES("{\"a\":[\"b\"]}");
	DECLINES("{\"a\":\"b\",}");
	DECLINES("{,}");
	DECLINES("{\"a\" \"b\"}");
	DECLINES("{\"a\":\"b\"");
	DECLINES("{\"a\":\"b");
	DECLINES("{\"a\":\"b\"} x");
	DECLINES("{\"a\":\"b\"}{}");
	DECLINES("{\"a\":\"tab\there\"}");	/* raw control character */
	DECLINES("{\"a\":\"\\x\"}");		/* unknown escape */
	DECLINES("{\"a\":\"\\u12\"}");		/* short \u */
	DECLINES("{\"a\":\"\\ud800\"}");	/* lone high surrogate */
	DECLINES("{\"a\":\"\\ud800\\u0041\"}"); /* high + not low */
	DECLINES("{\"a\":\"\\udc00\"}");	/* lone low surrogate */
	DECLINES("{\"a\\u0000\":\"b\"}");	/* NUL in a key */
	DECLINES("{\"a\":\"b\"\0}");
	DECLINES("\xef\xbb\xbf{}"); /* a BOM is not JSON */
}

static void dumps_like_jansson(const char *text)
{
	json_t *o = json_loads(text, JSON_ALLOW_NUL, NULL);
	char *mine = NULL, *theirs;
	size_t len = 0;

	REQUIRE(o);
	CHECK(flatj_dump(o, &mine, &len) == 1);
	theirs = json_dumps(o, JSON_COMPACT);
	CHECK_STR(mine, theirs);
	CHECK(mine && len == strlen(mine));
	free(mine);
	free(theirs);
	json_decref(o);
}

static void test_dump(void)
{
	char *out = (char *)1;
	size_t len = 7;
	json_t *o;

	dumps_like_jansson("{}");
	dumps_like_jansson("{\"name\": \"stdout\", \"text\": \"hi\\n\"}");
	dumps_like_jansson(
	    "{\"e\":\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\"}");
	dumps_like_jansson(
	    "{\"u\":\"caf\\u00e9 \\ud83d\\ude00\", \"z\":\"a\\u0000b\"}");
	dumps_like_jansson("{\"k\\n\\\"\":\"\", \"\":\"v\"}");
	/* Anything but an object of strings is jansson's. */
	o = json_pack("{s:s,s:i}", "a", "b", "n", 1);
	CHECK(flatj_dump(o, &out, &len) == 0);
	CHECK(out == NULL && len == 0);
	json_decref(o);
	o = json_pack("[s]", "a");
	CHECK(flatj_dump(o, &out, &len) == 0);
	json_decref(o);
	o = json_object();
	json_object_setn_new_nocheck(o, "a\0b", 3, json_string("v"));
	CHECK(flatj_dump(o, &out, &len) == 0); /* a key holding NUL */
	json_decref(o);
}

int main(void)
{
	TEST(test_stream_content);
	TEST(test_escapes);
	TEST(test_utf8);
	TEST(test_duplicates);
	TEST(test_long_text);
	TEST(test_declines);
	TEST(test_dump);
	return test_report();
}
