/*
 * test_enc: golden NDJSON lines for every line type and MIME mapping, the
 * escaping and strictness guarantees, and two recorded ipykernel sessions
 * replayed through enc_ the way an execution does.
 */
#include "enc.h"
#include "testhelp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every line: ASCII printable only, one "\n" at the very end, strict JSON
 * (jansson's decoder rejects nan/inf), an object whose first key is
 * "type". */
static int line_ok(const char *l)
{
	size_t i, n = l ? strlen(l) : 0;
	json_t *j;
	int ok;

	if (n < 2 || l[n - 1] != '\n' || strncmp(l, "{\"type\":", 8) != 0)
		return 0;
	for (i = 0; i + 1 < n; i++)
		if (l[i] < 0x20 || l[i] > 0x7e)
			return 0;
	j = json_loadb(l, n, JSON_ALLOW_NUL, NULL);
	ok = json_is_object(j) && json_is_string(json_object_get(j, "type"));
	json_decref(j);
	return ok;
}

#define LINE_IS(expr, want)                                                    \
	do {                                                                   \
		char *l_ = (expr);                                             \
		CHECK_STR(l_, want);                                           \
		CHECK(line_ok(l_));                                            \
		free(l_);                                                      \
	} while (0)

static json_t *js(const char *text)
{
	json_t *j = json_loads(text, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);

	if (!j)
		fprintf(stderr, "  bad test JSON: %s\n", text);
	return j;
}

/* enc_result on a bundle given as JSON text. */
static char *res(const char *bundle, bool main_result)
{
	json_t *b = js(bundle);
	char *l = b ? enc_result(b, main_result) : NULL;

	json_decref(b);
	return l;
}

static void test_count(void)
{
	LINE_IS(enc_count(1),
		"{\"type\":\"number_of_executions\",\"execution_count\":1}\n");
	LINE_IS(enc_count(9007199254740993LL),
		"{\"type\":\"number_of_executions\","
		"\"execution_count\":9007199254740993}\n");
}

static void test_stream(void)
{
	LINE_IS(enc_stream("stdout", "hi\n", "2024-05-01T10:00:00.105123Z"),
		"{\"type\":\"stdout\",\"text\":\"hi\\n\","
		"\"timestamp\":\"2024-05-01T10:00:00.105123Z\"}\n");
	LINE_IS(enc_stream("stderr", "a\tb\r\n\"q\" \\ \x1b[0m", "t"),
		"{\"type\":\"stderr\",\"text\":\"a\\tb\\r\\n\\\"q\\\" \\\\ "
		"\\u001B[0m\",\"timestamp\":\"t\"}\n");
	LINE_IS(enc_stream("stdout", "", "t"),
		"{\"type\":\"stdout\",\"text\":\"\",\"timestamp\":\"t\"}\n");
}

static void test_stream_now(void)
{
	char *l = enc_stream("stdout", "x", NULL);
	json_t *j;
	const char *ts;
	struct tm tm;
	char *end;
	time_t t;

	REQUIRE(line_ok(l));
	j = js(l);
	free(l);
	REQUIRE(j);
	ts = json_string_value(json_object_get(j, "timestamp"));
	CHECK(ts && strlen(ts) == 27 && ts[10] == 'T' && ts[19] == '.' &&
	      ts[26] == 'Z');
	memset(&tm, 0, sizeof(tm));
	end = ts ? strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	CHECK(end && strspn(end + 1, "0123456789") == 6);
	t = timegm(&tm);
	CHECK(labs((long)(t - time(NULL))) <= 5);
	json_decref(j);
}

static void test_simple(void)
{
	LINE_IS(enc_simple("keepalive"), "{\"type\":\"keepalive\"}\n");
	LINE_IS(enc_simple("end_of_execution"),
		"{\"type\":\"end_of_execution\"}\n");
}

static void test_error(void)
{
	LINE_IS(
	    enc_error("NameError", "name 'x' is not defined", "a\nb"),
	    "{\"type\":\"error\",\"name\":\"NameError\","
	    "\"value\":\"name 'x' is not defined\",\"traceback\":\"a\\nb\"}\n");
	LINE_IS(enc_error("ContextRestarting", "Context was restarted", NULL),
		"{\"type\":\"error\",\"name\":\"ContextRestarting\","
		"\"value\":\"Context was restarted\",\"traceback\":\"\"}\n");
	LINE_IS(enc_error(NULL, NULL, NULL),
		"{\"type\":\"error\",\"name\":\"\",\"value\":\"\","
		"\"traceback\":\"\"}\n");
}

static void error_content_is(const char *content, const char *want)
{
	json_t *c = js(content);

	LINE_IS(enc_error_content(c), want);
	json_decref(c);
}

static void test_error_content(void)
{
	error_content_is("{\"ename\":\"ValueError\",\"evalue\":\"bad\","
			 "\"traceback\":[\"line 1\",\"line 2\",\"line 3\"]}",
			 "{\"type\":\"error\",\"name\":\"ValueError\","
			 "\"value\":\"bad\","
			 "\"traceback\":\"line 1\\nline 2\\nline 3\"}\n");
	/* Non-string items are skipped; an empty first item still counts. */
	error_content_is("{\"ename\":\"E\",\"evalue\":\"v\","
			 "\"traceback\":[\"\",1,\"b\",null]}",
			 "{\"type\":\"error\",\"name\":\"E\",\"value\":\"v\","
			 "\"traceback\":\"\\nb\"}\n");
	error_content_is("{\"ename\":5,\"traceback\":[]}",
			 "{\"type\":\"error\",\"name\":\"\",\"value\":\"\","
			 "\"traceback\":\"\"}\n");
	error_content_is(
	    "{\"ename\":\"E\",\"evalue\":\"a\\u0000b\","
	    "\"traceback\":\"one string\"}",
	    "{\"type\":\"error\",\"name\":\"E\","
	    "\"value\":\"a\\u0000b\",\"traceback\":\"one string\"}\n");
	error_content_is("[1]", "{\"type\":\"error\",\"name\":\"\","
				"\"value\":\"\",\"traceback\":\"\"}\n");
	LINE_IS(enc_error_content(NULL),
		"{\"type\":\"error\",\"name\":\"\",\"value\":\"\","
		"\"traceback\":\"\"}\n");
}

/* Each known MIME type alone, and the field it becomes. */
static void test_result_each_mime(void)
{
	static const struct {
		const char *bundle, *fields;
	} cases[] = {
	    {"{\"text/plain\":\"2\"}", "\"text\":\"2\""},
	    {"{\"text/html\":\"<b>x</b>\"}", "\"html\":\"<b>x</b>\""},
	    {"{\"text/markdown\":\"# T\"}", "\"markdown\":\"# T\""},
	    {"{\"image/svg+xml\":\"<svg/>\"}", "\"svg\":\"<svg/>\""},
	    {"{\"image/png\":\"iVBORw0KGgo=\"}", "\"png\":\"iVBORw0KGgo=\""},
	    {"{\"image/jpeg\":\"/9j/4AAQ\"}", "\"jpeg\":\"/9j/4AAQ\""},
	    {"{\"application/pdf\":\"JVBERi0=\"}", "\"pdf\":\"JVBERi0=\""},
	    {"{\"text/latex\":\"$x^2$\"}", "\"latex\":\"$x^2$\""},
	    {"{\"application/json\":{\"a\":[1,2.5,null,true]}}",
	     "\"json\":{\"a\":[1,2.5,null,true]}"},
	    {"{\"application/javascript\":\"alert(1)\"}",
	     "\"javascript\":\"alert(1)\""},
	    {"{\"e2b/data\":{\"x\":{\"0\":1}}}", "\"data\":{\"x\":{\"0\":1}}"},
	    {"{\"e2b/chart\":{\"type\":\"line\",\"elements\":[]}}",
	     "\"chart\":{\"type\":\"line\",\"elements\":[]}"},
	};
	char want[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(want, sizeof(want),
			 "{\"type\":\"result\",%s,\"extra\":{},"
			 "\"is_main_result\":false}\n",
			 cases[i].fields);
		LINE_IS(res(cases[i].bundle, false), want);
	}
}

/* Fields come out in one fixed order whatever the bundle's order. */
static void test_result_all(void)
{
	LINE_IS(res("{\"e2b/chart\":{\"c\":1},\"e2b/data\":{\"d\":1},"
		    "\"application/javascript\":\"j\","
		    "\"application/json\":[1],\"text/latex\":\"l\","
		    "\"application/pdf\":\"p\",\"image/jpeg\":\"J\","
		    "\"image/png\":\"P\",\"image/svg+xml\":\"s\","
		    "\"text/markdown\":\"m\",\"text/html\":\"h\","
		    "\"text/plain\":\"'t'\"}",
		    true),
		"{\"type\":\"result\",\"text\":\"t\",\"html\":\"h\","
		"\"markdown\":\"m\",\"svg\":\"s\",\"png\":\"P\",\"jpeg\":\"J\","
		"\"pdf\":\"p\",\"latex\":\"l\",\"json\":[1],"
		"\"javascript\":\"j\",\"data\":{\"d\":1},\"chart\":{\"c\":1},"
		"\"extra\":{},\"is_main_result\":true}\n");
}

static void test_result_extra(void)
{
	LINE_IS(res("{\"text/plain\":\"<Figure>\","
		    "\"application/vnd.custom+json\":{\"k\":[1,\"v\"]},"
		    "\"application/x-other\":\"o\",\"x/null\":null}",
		    false),
		"{\"type\":\"result\",\"text\":\"<Figure>\","
		"\"extra\":{\"application/vnd.custom+json\":{\"k\":[1,\"v\"]},"
		"\"application/x-other\":\"o\",\"x/null\":null},"
		"\"is_main_result\":false}\n");
	LINE_IS(res("{}", true),
		"{\"type\":\"result\",\"extra\":{},\"is_main_result\":true}\n");
	LINE_IS(
	    res("{}", false),
	    "{\"type\":\"result\",\"extra\":{},\"is_main_result\":false}\n");
	/* A known type with a value its field cannot hold is kept in extra
	 * rather than handed to the SDKs with the wrong type. */
	LINE_IS(res("{\"text/html\":5,\"application/json\":7,"
		    "\"e2b/data\":true}",
		    true),
		"{\"type\":\"result\",\"extra\":{\"text/html\":5,"
		"\"application/json\":7,\"e2b/data\":true},"
		"\"is_main_result\":true}\n");
	/* null for a known type is the same as absent. */
	LINE_IS(res("{\"text/html\":null,\"text/plain\":\"1\"}", true),
		"{\"type\":\"result\",\"text\":\"1\",\"extra\":{},"
		"\"is_main_result\":true}\n");
}

static void test_result_non_object(void)
{
	const char *want = "{\"type\":\"result\",\"extra\":{},"
			   "\"is_main_result\":true}\n";

	LINE_IS(enc_result(NULL, true), want);
	LINE_IS(res("[\"text/plain\"]", true), want);
	LINE_IS(res("\"2\"", true), want);
}

static void strip_is(const char *in, const char *want)
{
	char *s = enc_strip_quotes(in);

	CHECK_STR(s, want);
	free(s);
}

static void test_strip_quotes(void)
{
	strip_is("'abc'", "abc");
	strip_is("\"abc\"", "abc");
	strip_is("'a\"", "'a\"");
	strip_is("\"a'", "\"a'");
	strip_is("'", "'");
	strip_is("\"", "\"");
	strip_is("''", "");
	strip_is("\"\"", "");
	strip_is("'a'b'", "a'b");
	strip_is("''x''", "'x'");
	strip_is("abc", "abc");
	strip_is("", "");
	strip_is(NULL, "");
	strip_is("'\xc3\xa9'", "\xc3\xa9");
}

static void test_result_text_quotes(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"\"'abc'\"", "\"abc\""},	  {"\"\\\"abc\\\"\"", "\"abc\""},
	    {"\"'a\\\"\"", "\"'a\\\"\""}, {"\"'\"", "\"'\""},
	    {"\"''\"", "\"\""},		  {"\"2\"", "\"2\""},
	};
	char bundle[128], want[160];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(bundle, sizeof(bundle), "{\"text/plain\":%s}",
			 cases[i].in);
		snprintf(want, sizeof(want),
			 "{\"type\":\"result\",\"text\":%s,\"extra\":{},"
			 "\"is_main_result\":true}\n",
			 cases[i].out);
		LINE_IS(res(bundle, true), want);
	}
}

static void test_non_ascii(void)
{
	const char *u = "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80";
	const char *esc = "caf\\u00E9 \\u65E5\\u672C \\uD83D\\uDE00";
	char want[256], bundle[256];
	json_t *b;

	snprintf(want, sizeof(want),
		 "{\"type\":\"stdout\",\"text\":\"%s\",\"timestamp\":\"t\"}\n",
		 esc);
	LINE_IS(enc_stream("stdout", u, "t"), want);
	snprintf(bundle, sizeof(bundle),
		 "{\"text/plain\":\"'%s'\",\"text/html\":\"%s\","
		 "\"x/\xc3\xa9\":\"%s\"}",
		 u, u, u);
	snprintf(want, sizeof(want),
		 "{\"type\":\"result\",\"text\":\"%s\",\"html\":\"%s\","
		 "\"extra\":{\"x/\\u00E9\":\"%s\"},\"is_main_result\":true}\n",
		 esc, esc, esc);
	LINE_IS(res(bundle, true), want);
	snprintf(want, sizeof(want),
		 "{\"type\":\"error\",\"name\":\"%s\",\"value\":\"\","
		 "\"traceback\":\"\"}\n",
		 esc);
	LINE_IS(enc_error(u, "", ""), want);
	/* Astral characters written as escapes come back as the same pair. */
	b = js("{\"text/plain\":\"\\ud83d\\ude00\"}");
	LINE_IS(enc_result(b, false),
		"{\"type\":\"result\",\"text\":\"\\uD83D\\uDE00\","
		"\"extra\":{},\"is_main_result\":false}\n");
	json_decref(b);
}

static void test_nul(void)
{
	LINE_IS(res("{\"text/plain\":\"a\\u0000b\",\"text/html\":\"\\u0000\","
		    "\"application/json\":{\"k\":\"x\\u0000y\"}}",
		    true),
		"{\"type\":\"result\",\"text\":\"a\\u0000b\","
		"\"html\":\"\\u0000\",\"json\":{\"k\":\"x\\u0000y\"},"
		"\"extra\":{},\"is_main_result\":true}\n");
	/* The quotes are found by length, not by strlen. */
	LINE_IS(res("{\"text/plain\":\"'\\u0000'\"}", true),
		"{\"type\":\"result\",\"text\":\"\\u0000\",\"extra\":{},"
		"\"is_main_result\":true}\n");
}

static void test_large_png(void)
{
	const size_t n = 1 << 20;
	const char *pre = "{\"type\":\"result\",\"png\":\"";
	const char *post = "\",\"extra\":{},\"is_main_result\":false}\n";
	char *png = malloc(n + 1), *want, *l;
	json_t *b;
	size_t i;

	REQUIRE(png);
	for (i = 0; i < n; i++)
		png[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789+/"[i % 64];
	png[n] = '\0';
	b = json_pack("{s:s}", "image/png", png);
	want = malloc(strlen(pre) + n + strlen(post) + 1);
	l = b ? enc_result(b, false) : NULL;
	if (want)
		snprintf(want, strlen(pre) + n + strlen(post) + 1, "%s%s%s",
			 pre, png, post);
	CHECK(l && want && strlen(l) == strlen(pre) + n + strlen(post));
	CHECK(l && want && strcmp(l, want) == 0);
	free(l);
	free(want);
	free(png);
	json_decref(b);
}

static void test_json_fields(void)
{
	/* JSON text in a string is parsed; other strings stay strings. */
	LINE_IS(res("{\"application/json\":\"{\\\"a\\\": [1, 2]}\","
		    "\"e2b/data\":\"[{\\\"x\\\":1}]\","
		    "\"e2b/chart\":\"not json\"}",
		    true),
		"{\"type\":\"result\",\"json\":{\"a\":[1,2]},"
		"\"data\":[{\"x\":1}],\"chart\":\"not json\",\"extra\":{},"
		"\"is_main_result\":true}\n");
	LINE_IS(
	    res("{\"application/json\":\"12\",\"e2b/data\":\"{bad\"}", true),
	    "{\"type\":\"result\",\"json\":\"12\",\"data\":\"{bad\","
	    "\"extra\":{},\"is_main_result\":true}\n");
	LINE_IS(res("{\"application/json\":[]}", true),
		"{\"type\":\"result\",\"json\":[],\"extra\":{},"
		"\"is_main_result\":true}\n");
}

static void test_text_arrays(void)
{
	LINE_IS(res("{\"text/html\":[\"<p>\\n\",\"x\",\"</p>\"],"
		    "\"text/plain\":[\"'a\",\"b'\"],\"image/svg+xml\":[]}",
		    true),
		"{\"type\":\"result\",\"text\":\"ab\","
		"\"html\":\"<p>\\nx</p>\",\"svg\":\"\",\"extra\":{},"
		"\"is_main_result\":true}\n");
	LINE_IS(res("{\"text/markdown\":[\"a\",1]}", true),
		"{\"type\":\"result\",\"extra\":{\"text/markdown\":[\"a\",1]},"
		"\"is_main_result\":true}\n");
}

/* jansson's private layout of a real (jansson 2.x value.c/jansson_private.h),
 * used only to plant the non-finite value its API refuses to store. */
struct fake_real {
	json_t json;
	double value;
};

static void test_nonfinite(void)
{
	json_t *nan_r = json_real(1.0), *inf_r = json_real(2.0), *b;

	REQUIRE(nan_r && inf_r);
	((struct fake_real *)nan_r)->value = NAN;
	((struct fake_real *)inf_r)->value = -INFINITY;
	REQUIRE(isnan(json_real_value(nan_r)));
	REQUIRE(isinf(json_real_value(inf_r)));
	b = json_pack("{s:{s:o,s:[o,f]},s:o}", "e2b/data", "a", nan_r, "b",
		      inf_r, 1.5, "x/y", json_real(0.5));
	REQUIRE(b);
	LINE_IS(enc_result(b, true),
		"{\"type\":\"result\",\"data\":{\"a\":null,\"b\":[null,1.5]},"
		"\"extra\":{\"x/y\":0.5},\"is_main_result\":true}\n");
	json_decref(b);
}

/* Strings that bypassed jansson's UTF-8 check still yield valid lines. */
static void test_invalid_utf8(void)
{
	json_t *b = json_object();

	REQUIRE(b);
	json_object_set_new_nocheck(b, "text/plain",
				    json_string_nocheck("a\xff"
							"b\xc3"));
	json_object_set_new_nocheck(b, "x/\xed\xa0\x80",
				    json_string_nocheck("\xc0\xaf"));
	LINE_IS(enc_result(b, true),
		"{\"type\":\"result\",\"text\":\"a\\uFFFDb\\uFFFD\","
		"\"extra\":{\"x/\\uFFFD\\uFFFD\\uFFFD\":\"\\uFFFD\\uFFFD\"},"
		"\"is_main_result\":true}\n");
	json_decref(b);
	LINE_IS(enc_error("\xf4\x90\x80\x80", "ok", "\xe2\x82"),
		"{\"type\":\"error\",\"name\":\"\\uFFFD\\uFFFD\\uFFFD\\uFFFD\","
		"\"value\":\"ok\",\"traceback\":\"\\uFFFD\\uFFFD\"}\n");
}

/* Too deep to be a real bundle: cut off rather than recursing forever. */
static void test_deep(void)
{
	json_t *root = json_array(), *cur = root, *next, *b;
	char *l;
	int i;

	REQUIRE(root);
	for (i = 0; i < 5000 && cur; i++) {
		next = json_array();
		json_array_append_new(cur, next);
		cur = next;
	}
	b = json_pack("{s:o}", "e2b/data", root);
	REQUIRE(b);
	l = enc_result(b, true);
	CHECK(line_ok(l) && strstr(l, "[null]"));
	free(l);
	json_decref(b);
}

/* A recorded ipykernel 6 exchange: iopub messages in arrival order, then
 * the shell reply. Replayed the way exec_ turns them into lines. */
static const char *const session_print[] = {
    "{\"header\":{\"msg_id\":\"a1\",\"msg_type\":\"status\","
    "\"username\":\"username\",\"session\":\"s1\","
    "\"date\":\"2024-05-01T10:00:00.100000Z\",\"version\":\"5.3\"},"
    "\"parent_header\":{\"msg_id\":\"req1\",\"msg_type\":"
    "\"execute_request\"},\"metadata\":{},"
    "\"content\":{\"execution_state\":\"busy\"}}",
    "{\"header\":{\"msg_id\":\"a2\",\"msg_type\":\"execute_input\","
    "\"username\":\"username\",\"session\":\"s1\","
    "\"date\":\"2024-05-01T10:00:00.101000Z\",\"version\":\"5.3\"},"
    "\"parent_header\":{\"msg_id\":\"req1\"},\"metadata\":{},"
    "\"content\":{\"code\":\"print('hi'); 1+1\",\"execution_count\":1}}",
    "{\"header\":{\"msg_id\":\"a3\",\"msg_type\":\"stream\","
    "\"username\":\"username\",\"session\":\"s1\","
    "\"date\":\"2024-05-01T10:00:00.105123Z\",\"version\":\"5.3\"},"
    "\"parent_header\":{\"msg_id\":\"req1\"},\"metadata\":{},"
    "\"content\":{\"name\":\"stdout\",\"text\":\"hi\\n\"}}",
    "{\"header\":{\"msg_id\":\"a4\",\"msg_type\":\"execute_result\","
    "\"username\":\"username\",\"session\":\"s1\","
    "\"date\":\"2024-05-01T10:00:00.106000Z\",\"version\":\"5.3\"},"
    "\"parent_header\":{\"msg_id\":\"req1\"},\"metadata\":{},"
    "\"content\":{\"data\":{\"text/plain\":\"2\"},\"metadata\":{},"
    "\"execution_count\":1}}",
    "{\"header\":{\"msg_id\":\"a5\",\"msg_type\":\"status\","
    "\"username\":\"username\",\"session\":\"s1\","
    "\"date\":\"2024-05-01T10:00:00.107000Z\",\"version\":\"5.3\"},"
    "\"parent_header\":{\"msg_id\":\"req1\"},\"metadata\":{},"
    "\"content\":{\"execution_state\":\"idle\"}}",
    "{\"header\":{\"msg_id\":\"r1\",\"msg_type\":\"execute_reply\","
    "\"username\":\"username\",\"session\":\"s1\","
    "\"date\":\"2024-05-01T10:00:00.107500Z\",\"version\":\"5.3\"},"
    "\"parent_header\":{\"msg_id\":\"req1\"},"
    "\"metadata\":{\"status\":\"ok\"},"
    "\"content\":{\"status\":\"ok\",\"execution_count\":1,"
    "\"user_expressions\":{},\"payload\":[]}}",
};

static const char *const session_zerodiv[] = {
    "{\"header\":{\"msg_id\":\"b1\",\"msg_type\":\"status\","
    "\"date\":\"2024-05-01T10:00:01.000000Z\"},"
    "\"parent_header\":{\"msg_id\":\"req2\"},\"metadata\":{},"
    "\"content\":{\"execution_state\":\"busy\"}}",
    "{\"header\":{\"msg_id\":\"b2\",\"msg_type\":\"execute_input\","
    "\"date\":\"2024-05-01T10:00:01.001000Z\"},"
    "\"parent_header\":{\"msg_id\":\"req2\"},\"metadata\":{},"
    "\"content\":{\"code\":\"1/0\",\"execution_count\":2}}",
    "{\"header\":{\"msg_id\":\"b3\",\"msg_type\":\"error\","
    "\"date\":\"2024-05-01T10:00:01.020000Z\"},"
    "\"parent_header\":{\"msg_id\":\"req2\"},\"metadata\":{},"
    "\"content\":{\"traceback\":["
    "\"\\u001b[0;31m-------------------------------------------------"
    "--------------------------\\u001b[0m\","
    "\"\\u001b[0;31mZeroDivisionError\\u001b[0m                         "
    "Traceback (most recent call last)\","
    "\"Cell \\u001b[0;32mIn[2], line 1\\u001b[0m\\n\\u001b[0;32m----> 1"
    "\\u001b[0m \\u001b[38;5;241;43m1\\u001b[39;49m\\u001b[38;5;241;43m/"
    "\\u001b[39;49m\\u001b[38;5;241;43m0\\u001b[39;49m\\n\","
    "\"\\u001b[0;31mZeroDivisionError\\u001b[0m: division by zero\"],"
    "\"ename\":\"ZeroDivisionError\",\"evalue\":\"division by zero\"}}",
    "{\"header\":{\"msg_id\":\"b4\",\"msg_type\":\"status\","
    "\"date\":\"2024-05-01T10:00:01.021000Z\"},"
    "\"parent_header\":{\"msg_id\":\"req2\"},\"metadata\":{},"
    "\"content\":{\"execution_state\":\"idle\"}}",
    "{\"header\":{\"msg_id\":\"r2\",\"msg_type\":\"execute_reply\","
    "\"date\":\"2024-05-01T10:00:01.022000Z\"},"
    "\"parent_header\":{\"msg_id\":\"req2\"},"
    "\"metadata\":{\"status\":\"error\"},"
    "\"content\":{\"status\":\"error\",\"execution_count\":2,"
    "\"ename\":\"ZeroDivisionError\",\"evalue\":\"division by zero\","
    "\"traceback\":[\"duplicate, not shown\"]}}",
};

static const char *const session_display[] = {
    "{\"header\":{\"msg_id\":\"c1\",\"msg_type\":\"execute_input\","
    "\"date\":\"2024-05-01T10:00:02.000000Z\"},\"parent_header\":{},"
    "\"metadata\":{},\"content\":{\"code\":\"display(HTML('<b>\\u00e9"
    "</b>'))\",\"execution_count\":3}}",
    "{\"header\":{\"msg_id\":\"c2\",\"msg_type\":\"display_data\","
    "\"date\":\"2024-05-01T10:00:02.010000Z\"},\"parent_header\":{},"
    "\"metadata\":{},\"content\":{\"data\":{\"text/plain\":"
    "\"<IPython.core.display.HTML object>\",\"text/html\":\"<b>\\u00e9"
    "</b>\"},\"metadata\":{},\"transient\":{}}}",
    "{\"header\":{\"msg_id\":\"c3\",\"msg_type\":\"stream\","
    "\"date\":\"2024-05-01T10:00:02.011000Z\"},\"parent_header\":{},"
    "\"metadata\":{},\"content\":{\"name\":\"stderr\","
    "\"text\":\"warn\\n\"}}",
    "{\"header\":{\"msg_id\":\"r3\",\"msg_type\":\"execute_reply\","
    "\"date\":\"2024-05-01T10:00:02.012000Z\"},\"parent_header\":{},"
    "\"metadata\":{},\"content\":{\"status\":\"ok\","
    "\"execution_count\":3}}",
};

/* One message's lines: NULL for messages that produce none. At most one
 * error per execution, and the reply ends the stream. */
static char *replay_one(json_t *msg, int *errored)
{
	json_t *h = json_object_get(msg, "header");
	json_t *c = json_object_get(msg, "content");
	const char *t = json_string_value(json_object_get(h, "msg_type"));
	const char *date = json_string_value(json_object_get(h, "date"));
	const char *status = json_string_value(json_object_get(c, "status"));
	char *err, *end, *both;

	if (!t)
		return NULL;
	if (!strcmp(t, "execute_input"))
		return enc_count(
		    json_integer_value(json_object_get(c, "execution_count")));
	if (!strcmp(t, "stream"))
		return enc_stream(json_string_value(json_object_get(c, "name")),
				  json_string_value(json_object_get(c, "text")),
				  date);
	if (!strcmp(t, "execute_result") || !strcmp(t, "display_data"))
		return enc_result(json_object_get(c, "data"),
				  !strcmp(t, "execute_result"));
	if (!strcmp(t, "error") && !*errored) {
		*errored = 1;
		return enc_error_content(c);
	}
	if (strcmp(t, "execute_reply"))
		return NULL;
	err = (status && !strcmp(status, "error") && !*errored)
		  ? enc_error_content(c)
		  : NULL;
	end = enc_simple("end_of_execution");
	both = calloc(1, (err ? strlen(err) : 0) + (end ? strlen(end) : 0) + 1);
	if (both && end)
		strcat(strcat(both, err ? err : ""), end);
	free(err);
	free(end);
	return both;
}

static char *replay(const char *const *msgs, size_t n)
{
	char *all = calloc(1, 1), *l, *grown;
	int errored = 0;
	size_t i;
	json_t *m;

	for (i = 0; all && i < n; i++) {
		m = js(msgs[i]);
		l = m ? replay_one(m, &errored) : NULL;
		json_decref(m);
		if (!l)
			continue;
		grown = realloc(all, strlen(all) + strlen(l) + 1);
		if (grown)
			strcat(grown, l);
		else
			free(all);
		all = grown;
		free(l);
	}
	return all;
}

static void test_recorded_sessions(void)
{
	char *out;

	out = replay(session_print,
		     sizeof(session_print) / sizeof(session_print[0]));
	CHECK_STR(out,
		  "{\"type\":\"number_of_executions\",\"execution_count\":1}\n"
		  "{\"type\":\"stdout\",\"text\":\"hi\\n\","
		  "\"timestamp\":\"2024-05-01T10:00:00.105123Z\"}\n"
		  "{\"type\":\"result\",\"text\":\"2\",\"extra\":{},"
		  "\"is_main_result\":true}\n"
		  "{\"type\":\"end_of_execution\"}\n");
	free(out);
	out = replay(session_zerodiv,
		     sizeof(session_zerodiv) / sizeof(session_zerodiv[0]));
	CHECK_STR(
	    out,
	    "{\"type\":\"number_of_executions\",\"execution_count\":2}\n"
	    "{\"type\":\"error\",\"name\":\"ZeroDivisionError\","
	    "\"value\":\"division by zero\",\"traceback\":"
	    "\"\\u001B[0;31m-------------------------------------------"
	    "--------------------------------\\u001B[0m\\n"
	    "\\u001B[0;31mZeroDivisionError\\u001B[0m                   "
	    "      Traceback (most recent call last)\\n"
	    "Cell \\u001B[0;32mIn[2], line 1\\u001B[0m\\n"
	    "\\u001B[0;32m----> 1\\u001B[0m \\u001B[38;5;241;43m1"
	    "\\u001B[39;49m\\u001B[38;5;241;43m/\\u001B[39;49m"
	    "\\u001B[38;5;241;43m0\\u001B[39;49m\\n\\n"
	    "\\u001B[0;31mZeroDivisionError\\u001B[0m: division by zero\"}\n"
	    "{\"type\":\"end_of_execution\"}\n");
	free(out);
	out = replay(session_display,
		     sizeof(session_display) / sizeof(session_display[0]));
	CHECK_STR(out,
		  "{\"type\":\"number_of_executions\",\"execution_count\":3}\n"
		  "{\"type\":\"result\","
		  "\"text\":\"<IPython.core.display.HTML object>\","
		  "\"html\":\"<b>\\u00E9</b>\",\"extra\":{},"
		  "\"is_main_result\":false}\n"
		  "{\"type\":\"stderr\",\"text\":\"warn\\n\","
		  "\"timestamp\":\"2024-05-01T10:00:02.011000Z\"}\n"
		  "{\"type\":\"end_of_execution\"}\n");
	free(out);
}

/* The hand-written stream escaper must match jansson's JSON_ENSURE_ASCII
 * output byte for byte, for random valid UTF-8 (all lengths, controls,
 * quotes, backslashes, NUL, astral characters). */
static void test_stream_matches_jansson(void)
{
	static const unsigned cps[] = {
	    0x00,   0x01,    0x08,    0x09,    0x0a,  0x0c,   0x0d,
	    0x1f,   0x20,    0x22,    0x2f,    0x5c,  0x41,   0x7e,
	    0x7f,   0x80,    0xe9,    0x7ff,   0x800, 0x65e5, 0xfffd,
	    0xffff, 0x10000, 0x1f600, 0x10ffff};
	unsigned seed = 12345;

	for (int round = 0; round < 500; round++) {
		char text[256];
		size_t n = 0;
		int count =
		    (int)((seed = seed * 1103515245u + 12345u) >> 16) % 40;
		for (int i = 0; i < count; i++) {
			seed = seed * 1103515245u + 12345u;
			unsigned cp =
			    cps[(seed >> 16) % (sizeof(cps) / sizeof(*cps))];
			if (cp < 0x80) {
				text[n++] = (char)cp;
			} else if (cp < 0x800) {
				text[n++] = (char)(0xC0 | cp >> 6);
				text[n++] = (char)(0x80 | (cp & 0x3F));
			} else if (cp < 0x10000) {
				text[n++] = (char)(0xE0 | cp >> 12);
				text[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				text[n++] = (char)(0x80 | (cp & 0x3F));
			} else {
				text[n++] = (char)(0xF0 | cp >> 18);
				text[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
				text[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				text[n++] = (char)(0x80 | (cp & 0x3F));
			}
		}
		json_t *o =
		    json_pack("{s:s,s:s%,s:s}", "type", "stdout", "text", text,
			      n, "timestamp", "2026-01-01T00:00:00Z");
		char *want = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII |
					       JSON_PRESERVE_ORDER);
		char *got =
		    enc_stream_n("stdout", text, n, "2026-01-01T00:00:00Z");
		REQUIRE(want && got);
		size_t wl = strlen(want);
		CHECK(strlen(got) == wl + 1 && strncmp(got, want, wl) == 0 &&
		      got[wl] == '\n');
		free(want);
		free(got);
		json_decref(o);
	}
}

int main(void)
{
	TEST(test_stream_matches_jansson);
	TEST(test_count);
	TEST(test_stream);
	TEST(test_stream_now);
	TEST(test_simple);
	TEST(test_error);
	TEST(test_error_content);
	TEST(test_result_each_mime);
	TEST(test_result_all);
	TEST(test_result_extra);
	TEST(test_result_non_object);
	TEST(test_strip_quotes);
	TEST(test_result_text_quotes);
	TEST(test_non_ascii);
	TEST(test_nul);
	TEST(test_large_png);
	TEST(test_json_fields);
	TEST(test_text_arrays);
	TEST(test_nonfinite);
	TEST(test_invalid_utf8);
	TEST(test_deep);
	TEST(test_recorded_sessions);
	return test_report();
}
