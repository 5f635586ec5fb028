/*
 * fuzz_enc: kernel events -> NDJSON lines (enc_result, enc_stream_n,
 * enc_error, enc_error_content, enc_count, enc_simple, enc_strip_quotes).
 *
 * Input: the first byte picks the mode, the second the is_main_result flag
 * and the stream name; the rest is
 *   mode 0: JSON text (any value, U+0000 allowed): it is the MIME bundle of
 *           enc_result and the content of enc_error_content;
 *   mode 1: a bundle built from raw bytes, so that enc sees what jansson's
 *           parser never produces (invalid UTF-8 in keys and values):
 *           records separated by 0x1E, each "key 0x1F value", the value's
 *           first byte its type (s: raw string, r: 8 raw bytes of a double,
 *           a: array of raw strings split on 0x1D, o: object of one raw
 *           key, j: JSON text, i: integer, n: null). Keys are cut at a NUL:
 *           enc would write it as "\u0000", valid JSON that jansson's
 *           parser refuses in keys (wire_ parses with jansson, so no real
 *           bundle holds one). NaN and infinities cannot be built at all;
 *   mode 2: fields separated by 0x1E for enc_stream_n (text, timestamp)
 *           and enc_error (name, value, traceback), raw bytes.
 *
 * Every line must be: non-NULL, ASCII without controls (DEL is valid raw
 * JSON and jansson keeps it raw), exactly one "\n" and that at the end,
 * strict JSON that jansson parses back into an object whose first key is
 * "type", and canonical: dumping the parsed object again with JSON_COMPACT |
 * JSON_ENSURE_ASCII gives the same bytes (this holds enc_stream_n's
 * hand-written escaper to jansson's). Where the input is valid UTF-8, the
 * fields carry exactly the input (result fields per the MIME table, stream
 * text, error name/value/traceback); unknown MIME types land in "extra";
 * nothing else appears in a result.
 */
#include "fuzz.h"

#include "enc.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

/* The parsed line (new reference); checks the line invariants. */
static json_t *check_line(char *line, const char *type)
{
	size_t len, i;
	json_error_t jerr;
	json_t *j;
	char *again;

	FUZZ_CHECK(line != NULL);
	len = strlen(line);
	FUZZ_CHECK(len >= 3 && line[len - 1] == '\n');
	for (i = 0; i + 1 < len; i++)
		FUZZ_CHECK(line[i] >= 0x20 && (unsigned char)line[i] <= 0x7f);
	FUZZ_CHECK(strncmp(line, "{\"type\":", 8) == 0);
	j = json_loadb(line, len - 1, JSON_ALLOW_NUL, &jerr);
	if (j == NULL)
		fprintf(stderr, "unparsable line: %s (%s)\n", jerr.text, line);
	FUZZ_CHECK(j != NULL && json_is_object(j));
	FUZZ_CHECK(json_is_string(json_object_get(j, "type")));
	if (type)
		FUZZ_CHECK(strcmp(json_string_value(json_object_get(j, "type")),
				  type) == 0);
	again = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
	FUZZ_CHECK(again != NULL);
	if (strlen(again) != len - 1 || memcmp(again, line, len - 1) != 0)
		fprintf(stderr, "not canonical:\n%s%s\n", line, again);
	FUZZ_CHECK(strlen(again) == len - 1 &&
		   memcmp(again, line, len - 1) == 0);
	free(again);
	free(line);
	return j;
}

/* True when s (len bytes) is valid UTF-8, by jansson's own check. */
static int valid_utf8(const char *s, size_t len)
{
	json_t *t = json_stringn(s, len);

	json_decref(t);
	return t != NULL;
}

static int str_is(json_t *v, const char *s, size_t len)
{
	return json_is_string(v) && json_string_length(v) == len &&
	       memcmp(json_string_value(v), s, len) == 0;
}

static const struct {
	const char *mime, *field;
	char kind; /* p: plain text, t: text, j: JSON */
} mimes[] = {
    {"text/plain", "text", 'p'},
    {"text/html", "html", 't'},
    {"text/markdown", "markdown", 't'},
    {"image/svg+xml", "svg", 't'},
    {"image/png", "png", 't'},
    {"image/jpeg", "jpeg", 't'},
    {"application/pdf", "pdf", 't'},
    {"text/latex", "latex", 't'},
    {"application/json", "json", 'j'},
    {"application/javascript", "javascript", 't'},
    {"e2b/data", "data", 'j'},
    {"e2b/chart", "chart", 'j'},
};
#define NMIMES (sizeof(mimes) / sizeof(mimes[0]))

static int find_mime(const char *key)
{
	size_t i;

	for (i = 0; i < NMIMES; i++)
		if (strcmp(mimes[i].mime, key) == 0)
			return (int)i;
	return -1;
}

/* Concatenation of an array of strings, or -1 when one is not a string. */
static int joined_is(json_t *a, json_t *field)
{
	size_t i, o = 0, total = 0;
	json_t *e;
	char *buf;
	int r;

	json_array_foreach(a, i, e)
	{
		if (!json_is_string(e))
			return -1;
		total += json_string_length(e);
	}
	buf = malloc(total + 1);
	FUZZ_CHECK(buf != NULL);
	json_array_foreach(a, i, e)
	{
		memcpy(buf + o, json_string_value(e), json_string_length(e));
		o += json_string_length(e);
	}
	r = str_is(field, buf, o);
	free(buf);
	return r;
}

/* One bundle entry (valid UTF-8, from the parser) against the line. */
static void check_entry(json_t *res, json_t *extra, const char *key, json_t *v)
{
	int m = find_mime(key);
	json_t *f;
	const char *s;
	size_t n;
	int r;

	if (m < 0) {
		FUZZ_CHECK(json_object_get(extra, key) != NULL);
		return;
	}
	f = json_object_get(res, mimes[m].field);
	if (json_is_null(v)) {
		FUZZ_CHECK(f == NULL && json_object_get(extra, key) == NULL);
		return;
	}
	if (mimes[m].kind == 'j') {
		if (json_is_object(v) || json_is_array(v))
			FUZZ_CHECK(json_typeof(f) == json_typeof(v));
		else if (json_is_string(v))
			FUZZ_CHECK(json_is_object(f) || json_is_array(f) ||
				   json_equal(f, v));
		else
			FUZZ_CHECK(f == NULL &&
				   json_object_get(extra, key) != NULL);
		return;
	}
	if (json_is_string(v)) {
		s = json_string_value(v);
		n = json_string_length(v);
		if (mimes[m].kind == 'p' && n >= 2 &&
		    (s[0] == '\'' || s[0] == '"') && s[n - 1] == s[0])
			FUZZ_CHECK(str_is(f, s + 1, n - 2));
		else
			FUZZ_CHECK(str_is(f, s, n));
		return;
	}
	r = json_is_array(v) ? joined_is(v, f) : -1;
	if (r < 0)
		FUZZ_CHECK(f == NULL && json_object_get(extra, key) != NULL);
	else if (mimes[m].kind == 't')
		FUZZ_CHECK(r == 1);
	else
		FUZZ_CHECK(json_is_string(f)); /* joined, then stripped */
}

static void check_result(json_t *bundle, int is_main, int exact)
{
	json_t *res = check_line(enc_result(bundle, is_main), "result"), *v;
	json_t *extra = json_object_get(res, "extra");
	const char *key;
	size_t i, known = 3;

	FUZZ_CHECK(json_is_object(extra));
	FUZZ_CHECK(json_is_boolean(json_object_get(res, "is_main_result")));
	FUZZ_CHECK(json_is_true(json_object_get(res, "is_main_result")) ==
		   (is_main != 0));
	for (i = 0; i < NMIMES; i++) {
		v = json_object_get(res, mimes[i].field);
		if (v == NULL)
			continue;
		known++;
		if (mimes[i].kind == 'j')
			FUZZ_CHECK(json_is_object(v) || json_is_array(v) ||
				   json_is_string(v));
		else
			FUZZ_CHECK(json_is_string(v));
	}
	FUZZ_CHECK(json_object_size(res) == known);
	if (!json_is_object(bundle))
		FUZZ_CHECK(json_object_size(extra) == 0 && known == 3);
	if (exact && json_is_object(bundle)) {
		json_object_foreach(bundle, key, v)
		    check_entry(res, extra, key, v);
	}
	json_decref(res);
}

/* The traceback enc_error_content should produce for a parsed content. */
static void check_error_content(json_t *content)
{
	json_t *e = check_line(enc_error_content(content), "error");
	json_t *tb = json_object_get(content, "traceback"), *x;
	const char *names[] = {"ename", "evalue"},
		   *fields[] = {"name", "value"};
	size_t i, n = 0;
	int k;

	for (k = 0; k < 2; k++) {
		x = json_object_get(content, names[k]);
		if (json_is_string(x))
			FUZZ_CHECK(
			    json_equal(json_object_get(e, fields[k]), x));
		else
			FUZZ_CHECK(
			    str_is(json_object_get(e, fields[k]), "", 0));
	}
	x = json_object_get(e, "traceback");
	FUZZ_CHECK(json_is_string(x));
	if (json_is_string(tb)) {
		FUZZ_CHECK(json_equal(x, tb));
	} else if (json_is_array(tb)) {
		json_t *e2;
		json_array_foreach(tb, i, e2)
		{
			if (json_is_string(e2))
				n += json_string_length(e2) + 1;
		}
		FUZZ_CHECK(json_string_length(x) == (n ? n - 1 : 0));
	} else {
		FUZZ_CHECK(json_string_length(x) == 0);
	}
	json_decref(e);
}

/* Splits off the next field ending at sep (or the end). */
static const char *next_field(const char **p, const char *end, char sep,
			      size_t *len)
{
	const char *s = *p, *q;

	if (s == NULL)
		return NULL;
	q = memchr(s, sep, (size_t)(end - s));
	*len = (size_t)((q ? q : end) - s);
	*p = q ? q + 1 : NULL;
	return s;
}

static json_t *raw_value(const char *v, size_t n)
{
	const char *p = v + 1, *end = v + n, *s;
	double d = 0;
	json_t *a;
	size_t l;

	if (n == 0)
		return json_null();
	switch (v[0]) {
	case 's':
		return json_stringn_nocheck(p, n - 1);
	case 'r':
		memcpy(&d, p, n - 1 < sizeof(d) ? n - 1 : sizeof(d));
		return json_real(d); /* NULL for NaN/Inf: jansson refuses */
	case 'a':
		a = json_array();
		while ((s = next_field(&p, end, 0x1d, &l)) != NULL)
			json_array_append_new(a, json_stringn_nocheck(s, l));
		return a;
	case 'o':
		a = json_object();
		json_object_setn_new_nocheck(a, p, strnlen(p, n - 1),
					     json_integer(1));
		return a;
	case 'j':
		return json_loadb(p, n - 1, JSON_DECODE_ANY | JSON_ALLOW_NUL,
				  NULL);
	case 'i':
		return json_integer((json_int_t)(n - 1) * 1000003 - 7);
	default:
		return json_null();
	}
}

static void mode_raw_bundle(const char *p, const char *end, int is_main)
{
	json_t *bundle = json_object(), *v;
	const char *rec, *r, *k, *val;
	size_t rl, kl, vl;

	while ((rec = next_field(&p, end, 0x1e, &rl)) != NULL) {
		r = rec;
		k = next_field(&r, rec + rl, 0x1f, &kl);
		val = r;
		vl = r ? (size_t)(rec + rl - r) : 0;
		v = val ? raw_value(val, vl) : json_null();
		/* jansson refuses to make a NaN or infinite real at all, so
		 * no json_t can hold one: such a value becomes null here. */
		if (v == NULL)
			v = json_null();
		/* See the file comment on NUL in keys. */
		kl = strnlen(k, kl);
		json_object_setn_new_nocheck(bundle, k, kl, v);
	}
	check_result(bundle, is_main, 0);
	json_decref(check_line(enc_error_content(bundle), "error"));
	json_decref(bundle);
}

static char *cstr(const char *s, size_t n)
{
	char *r = malloc(n + 1);

	FUZZ_CHECK(r != NULL);
	memcpy(r, s, n);
	r[n] = '\0';
	return r;
}

static void mode_fields(const char *p, const char *end, unsigned flags)
{
	const char *f[5] = {NULL};
	size_t l[5] = {0}, i;
	char *c[5];
	const char *stream = (flags & 2) ? "stderr" : "stdout";
	json_t *j;

	for (i = 0; i < 5; i++) {
		f[i] = next_field(&p, end, 0x1e, &l[i]);
		if (f[i] == NULL)
			f[i] = "";
		c[i] = cstr(f[i], l[i]);
	}
	/* Text keeps its NUL bytes; the rest are C strings. */
	j = check_line(
	    enc_stream_n(stream, c[0], l[0], (flags & 4) ? NULL : c[1]),
	    stream);
	if (valid_utf8(c[0], l[0]))
		FUZZ_CHECK(str_is(json_object_get(j, "text"), c[0], l[0]));
	if (!(flags & 4) && valid_utf8(c[1], strlen(c[1])))
		FUZZ_CHECK(str_is(json_object_get(j, "timestamp"), c[1],
				  strlen(c[1])));
	json_decref(j);
	json_decref(check_line(enc_stream(stream, c[0], c[1]), stream));
	j = check_line(enc_error(c[2], c[3], c[4]), "error");
	for (i = 2; i < 5; i++) {
		const char *names[] = {"name", "value", "traceback"};
		json_t *x = json_object_get(j, names[i - 2]);
		FUZZ_CHECK(json_is_string(x));
		if (valid_utf8(c[i], strlen(c[i])))
			FUZZ_CHECK(str_is(x, c[i], strlen(c[i])));
	}
	json_decref(j);
	json_decref(check_line(enc_simple(c[2]), NULL));
	j = check_line(enc_count((long long)l[0] - (long long)l[1] * 65537),
		       "number_of_executions");
	FUZZ_CHECK(json_integer_value(json_object_get(j, "execution_count")) ==
		   (long long)l[0] - (long long)l[1] * 65537);
	json_decref(j);
	{
		char *s = enc_strip_quotes(c[0]);
		size_t n = strlen(c[0]), m = strlen(s);

		FUZZ_CHECK(m == n || (m + 2 == n && c[0][0] == c[0][n - 1] &&
				      (c[0][0] == '"' || c[0][0] == '\'') &&
				      memcmp(s, c[0] + 1, m) == 0));
		free(s);
	}
	for (i = 0; i < 5; i++)
		free(c[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 2,
		   *end = (const char *)data + size;
	unsigned flags;
	json_t *j;

	if (size < 2)
		return 0;
	flags = data[1];
	switch (data[0] % 3) {
	case 0:
		j = json_loadb(p, size - 2, JSON_DECODE_ANY | JSON_ALLOW_NUL,
			       NULL);
		if (j == NULL)
			return 0;
		check_result(j, flags & 1, 1);
		check_error_content(j);
		json_decref(j);
		break;
	case 1:
		mode_raw_bundle(p, end, flags & 1);
		break;
	default:
		mode_fields(p, end, flags);
		break;
	}
	return 0;
}
