/*
 * Unit tests for the one-copy stream path: enc_stream_raw (over
 * flatj_members) must give, for every content a kernel can send, exactly the
 * line the parsing path gives (wire_msg_parse_content, then enc_stream_n of
 * the name and text), or decline so that path runs. Hand-picked cases cover
 * every escape, UTF-8 repair, surrogates, repeated and escaped keys; then a
 * seeded random differential run over an alphabet of the tricky pieces.
 */
#include "enc.h"
#include "flatj.h"
#include "testhelp.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#define TS "2026-11-22T05:21:29.956554Z"

/* The line of the parsing path, or NULL when it gives none (malformed
 * content, no string "text"). */
static char *reference(const char *content, size_t len)
{
	struct wire_msg m = {0};
	const char *name;
	json_t *text;
	char *line = NULL;

	m.raw_content.data = content;
	m.raw_content.len = len;
	if (wire_msg_parse_content(&m) < 0)
		return NULL;
	name = json_string_value(json_object_get(m.content, "name"));
	text = json_object_get(m.content, "text");
	if (json_is_string(text))
		line = enc_stream_n(
		    name && strcmp(name, "stderr") == 0 ? "stderr" : "stdout",
		    json_string_value(text), json_string_length(text), TS);
	wire_msg_cleanup(&m);
	return line;
}

/* 1: same line, 0: declined (fine), -1: differs (printed). */
static int compare(const char *content, size_t len)
{
	char *line = NULL, *want = reference(content, len);
	int rc = enc_stream_raw(content, len, TS, &line), same;

	if (rc == 0) {
		free(want);
		return 0;
	}
	same = rc == 1 && want && strcmp(line, want) == 0;
	if (!same)
		fprintf(stderr, "    content %.*s\n    raw  %s    want %s",
			(int)len, content, line ? line : "(null)\n",
			want ? want : "(null)\n");
	free(line);
	free(want);
	return same ? 1 : -1;
}

static int compare_str(const char *content)
{
	return compare(content, strlen(content));
}

static void test_taken_and_equal(void)
{
	static const char *const cases[] = {
	    "{\"name\":\"stdout\",\"text\":\"hello\\n\"}",
	    "{\"name\":\"stderr\",\"text\":\"err\"}",
	    "{\"text\":\"no name\",\"name\":\"stderr\"}",
	    "{\"name\":\"other\",\"text\":\"x\"}",
	    "{\"text\":\"only text\"}",
	    " { \"name\" : \"stdout\" , \"text\" : \"spaced\" } \n",
	    "{\"name\":\"stdout\",\"text\":\"\"}",
	    "{\"name\":\"stdout\",\"text\":\"\\\" \\\\ \\/ \\b \\f \\n \\r "
	    "\\t\"}",
	    "{\"name\":\"stdout\",\"text\":\"\\u0000 \\u0001 \\u001f \\u0020 "
	    "\\u0041 \\u007f \\u005c \\u0022 \\u002F\"}",
	    "{\"name\":\"stdout\",\"text\":\"\\u00e9 \\u00E9 \\u20ac \\uFFFF "
	    "\\ufffd\"}",
	    "{\"name\":\"stdout\",\"text\":\"\\ud83d\\ude00 \\uD800\\uDC00 "
	    "\\udbff\\udfff\"}",
	    "{\"name\":\"stdout\",\"text\":\"\xc3\xa9 \xe2\x82\xac "
	    "\xf0\x9f\x98\x80 \xef\xbf\xbf\"}",
	    /* Invalid UTF-8: lone continuation, truncated sequences,
	     * overlongs, surrogates, beyond U+10FFFF, bytes never valid. */
	    "{\"name\":\"stdout\",\"text\":\"\x80 \xc3 \xe2\x82 \xf0\x9f\x98 "
	    "\xc0\xaf \xe0\x80\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xf5 \xff "
	    "\xfe\"}",
	    "{\"name\":\"stdout\",\"text\":\"a\",\"text\":\"b\"}",
	    "{\"name\":\"stderr\",\"name\":\"stdout\",\"text\":\"last name\"}",
	    "{\"name\":\"stdout\",\"text\":\"x\",\"extra\":\"y\"}",
	    "{\"te\xff\":\"bad key\",\"text\":\"t\"}",
	    "{\"name\":\"stdout\",\"text\":\"\x7f del\"}",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(compare_str(cases[i]) == 1);
	/* A NUL inside the text, written raw as an escape only. */
	CHECK(compare("{\"text\":\"a\\u0000b\"}", 19) == 1);
}

/* What jansson (or the parser) rejects or reads differently is declined:
 * the parsing path then decides. */
static void test_declined(void)
{
	static const char *const cases[] = {
	    "{\"name\":\"stdout\"}",
	    "{\"name\":\"stdout\",\"text\":5}",
	    "{\"name\":\"stdout\",\"text\":[\"a\"]}",
	    "{\"name\":\"stdout\",\"text\":\"raw\x01control\"}",
	    "{\"name\":\"stdout\",\"text\":\"bad \\x escape\"}",
	    "{\"name\":\"stdout\",\"text\":\"short \\u12\"}",
	    "{\"name\":\"stdout\",\"text\":\"lone \\ud800 high\"}",
	    "{\"name\":\"stdout\",\"text\":\"lone \\udc00 low\"}",
	    "{\"name\":\"stdout\",\"text\":\"pair \\ud800\\u0041\"}",
	    "{\"name\":\"stdout\",\"text\":\"unterminated}",
	    "{\"name\":\"stdout\",\"text\":\"x\"} trailing",
	    "{\"na\\u006de\":\"stderr\",\"text\":\"escaped key\"}",
	    "{\"name\":\"std\\u0065rr\",\"text\":\"escaped name\"}",
	    "[\"text\"]",
	    "",
	    "{",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *line = (char *)1;
		CHECK(enc_stream_raw(cases[i], strlen(cases[i]), TS, &line) ==
		      0);
		CHECK(line == NULL);
	}
}

static void test_members(void)
{
	struct flatj_member m[2];
	const char *t = "{\"a\":\"1\",\"b\":\"x\\\"y\"}";

	REQUIRE(flatj_members(t, strlen(t), m, 2) == 2);
	CHECK(m[0].key.len == 1 && m[0].key.p[0] == 'a');
	CHECK(m[1].val.len == 4 && memcmp(m[1].val.p, "x\\\"y", 4) == 0);
	CHECK(flatj_members(t, strlen(t), m, 1) < 0);
	CHECK(flatj_members("{}", 2, m, 2) == 0);
	CHECK(flatj_members("{} x", 4, m, 2) < 0);
}

/* Random contents from pieces that exercise every branch; every one taken
 * must equal the parsing path. */
static void test_random_differential(void)
{
	static const char *const piece[] = {"a",
					    "Z",
					    " ",
					    "\\n",
					    "\\\"",
					    "\\\\",
					    "\\/",
					    "\\t",
					    "\\u0000",
					    "\\u001F",
					    "\\u0041",
					    "\\u00e9",
					    "\\uffff",
					    "\\ud83d\\ude00",
					    "\\ud800",
					    "\\udc00",
					    "\\x",
					    "\xc3\xa9",
					    "\xe2\x82\xac",
					    "\xf0\x9f\x98\x80",
					    "\x80",
					    "\xc3",
					    "\xe2\x82",
					    "\xed\xa0\x80",
					    "\xf8",
					    "\x01",
					    "\x7f",
					    "\"",
					    "\\u12",
					    "\\"};
	char buf[512];
	unsigned seed = 12345;
	int taken = 0, bad = 0;

	for (int iter = 0; iter < 100000; iter++) {
		size_t w = (size_t)snprintf(buf, sizeof(buf),
					    "{\"name\":\"%s\",\"text\":\"",
					    iter & 1 ? "stderr" : "stdout");
		int n = (int)(rand_r(&seed) % 12);
		for (int k = 0; k < n; k++) {
			const char *p =
			    piece[rand_r(&seed) %
				  (sizeof(piece) / sizeof(piece[0]))];
			memcpy(buf + w, p, strlen(p));
			w += strlen(p);
		}
		memcpy(buf + w, "\"}", 2);
		w += 2;
		switch (compare(buf, w)) {
		case 1:
			taken++;
			break;
		case -1:
			bad++;
			break;
		default:
			break;
		}
		if (bad > 3)
			break;
	}
	CHECK(bad == 0);
	/* Most inputs are valid JSON and must take the fast path. */
	CHECK(taken > 20000);
}

int main(void)
{
	TEST(test_taken_and_equal);
	TEST(test_declined);
	TEST(test_members);
	TEST(test_random_differential);
	return test_report();
}
