/*
 * enc: kernel events -> the NDJSON lines of the HTTP contract.
 *
 * Owns the mapping from Jupyter MIME bundles, stream text and error contents
 * to the "Line types" of docs/http-contract.md, and the one way those lines are
 * serialized: compact JSON, ASCII only (jansson's JSON_ENSURE_ASCII escapes
 * everything else, astral characters as surrogate pairs), "type" first,
 * exactly one "\n" at the end and none inside.
 *
 * Invariants: every line this module returns is valid strict JSON. Whatever
 * the caller hands in is copied through a cleaning walk first, because
 * jansson will happily serialize a non-finite real as "nan.0" and refuses to
 * serialize a string that is not UTF-8 (which would turn a kernel quirk into
 * a spurious out-of-memory): non-finite reals become null, invalid UTF-8
 * becomes U+FFFD, nesting deeper than ENC_MAX_DEPTH becomes null. Strings
 * are handled with their lengths so U+0000 survives as \u0000.
 *
 * Threads: pure functions with no global state; any thread may call them.
 * It does not decide which events produce lines, when an execution ends or
 * how many errors an execution reports: that is exec_'s business.
 */
#include "enc.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbuf.h"
#include "flatj.h"
#include "jtext.h"

#define ENC_DUMP_FLAGS (JSON_COMPACT | JSON_ENSURE_ASCII)
/* Values nested deeper are replaced by null. Real bundles nest a handful of
 * levels; the bound keeps every line parseable by the SDKs (Python's json
 * module gives up near its recursion limit of 1000, jansson at 2048). */
#define ENC_MAX_DEPTH 256

/* json_dump_callback's writer: every piece goes into the line's dbuf. */
static int enc_dump_add(const char *data, size_t size, void *arg)
{
	return dbuf_add(arg, data, size);
}

/* Serializes obj as one line and drops the reference (steals obj; NULL is
 * accepted and yields NULL so callers can chain allocations). */
static char *enc_line(json_t *obj)
{
	struct dbuf b;
	int rc;

	if (!obj)
		return NULL;
	dbuf_init(&b, DBUF_NOMAX);
	rc = json_dump_callback(obj, enc_dump_add, &b, ENC_DUMP_FLAGS);
	json_decref(obj);
	if (rc != 0) {
		dbuf_cleanup(&b);
		return NULL;
	}
	dbuf_add(&b, "\n", 1);
	return dbuf_take(&b, NULL);
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left), or 0 when
 * the bytes there are not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	int step = jtext_utf8_step(s, n);

	return step > 0 ? (size_t)step : 0;
}

/* A JSON string from len bytes; each byte that does not start a valid UTF-8
 * sequence becomes U+FFFD. Returns a new reference or NULL (ENOMEM). */
static json_t *str_new(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	json_t *j;
	char *fixed;
	size_t i = 0, o = 0, n;

	if (!s)
		return json_string_nocheck("");
	if (jtext_utf8_valid(s, len))
		return json_stringn_nocheck(s, len);
	if (len > SIZE_MAX / 3)
		return NULL;
	fixed = malloc(len * 3 + 1);
	if (!fixed)
		return NULL;
	while (i < len) {
		n = utf8_seq(p + i, len - i);
		if (n) {
			memcpy(fixed + o, s + i, n);
			o += n;
			i += n;
		} else {
			memcpy(fixed + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		}
	}
	j = json_stringn_nocheck(fixed, o);
	free(fixed);
	return j;
}

static json_t *str_of(const char *s)
{
	return str_new(s, s ? strlen(s) : 0);
}

static json_t *clean(json_t *v, int depth);

static json_t *clean_object(json_t *v, int depth)
{
	json_t *o = json_object(), *k;
	void *it;
	int rc;

	if (!o)
		return NULL;
	for (it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
		k = str_new(json_object_iter_key(it),
			    json_object_iter_key_len(it));
		if (!k)
			goto fail;
		/* The _new setter steals the cleaned value even when it fails.
		 */
		rc = json_object_setn_new_nocheck(
		    o, json_string_value(k), json_string_length(k),
		    clean(json_object_iter_value(it), depth + 1));
		json_decref(k);
		if (rc)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *clean_array(json_t *v, int depth)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < json_array_size(v); i++) {
		if (json_array_append_new(
			a, clean(json_array_get(v, i), depth + 1))) {
			json_decref(a);
			a = NULL;
		}
	}
	return a;
}

/* A copy of v that serializes as strict JSON: see the file comment. Strings
 * and scalars are shared, containers are rebuilt. Returns a new reference or
 * NULL (ENOMEM). */
static json_t *clean(json_t *v, int depth)
{
	if (!v || depth > ENC_MAX_DEPTH)
		return json_null();
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return clean_object(v, depth);
	case JSON_ARRAY:
		return clean_array(v, depth);
	case JSON_STRING:
		if (jtext_utf8_valid(json_string_value(v),
				     json_string_length(v)))
			return json_incref(v);
		return str_new(json_string_value(v), json_string_length(v));
	case JSON_REAL:
		if (!isfinite(json_real_value(v)))
			return json_null();
		return json_incref(v);
	default:
		return json_incref(v);
	}
}

/* Joins the strings of array a with sep into a new JSON string in *out.
 * strict: any non-string element makes the array unfit (returns 1);
 * otherwise such elements are skipped. Returns 0, 1 or -ENOMEM. */
static int join(json_t *a, const char *sep, int strict, json_t **out)
{
	size_t i, total = 0, seplen = strlen(sep), o = 0, l;
	int first = 1;
	json_t *e;
	char *buf;

	*out = NULL;
	for (i = 0; i < json_array_size(a); i++) {
		e = json_array_get(a, i);
		if (!json_is_string(e)) {
			if (strict)
				return 1;
			continue;
		}
		l = json_string_length(e);
		if (l > SIZE_MAX - 1 - seplen - total)
			return -ENOMEM;
		total += l + seplen;
	}
	buf = malloc(total + 1);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < json_array_size(a); i++) {
		e = json_array_get(a, i);
		if (!json_is_string(e))
			continue;
		if (!first) {
			memcpy(buf + o, sep, seplen);
			o += seplen;
		}
		first = 0;
		l = json_string_length(e);
		memcpy(buf + o, json_string_value(e), l);
		o += l;
	}
	*out = str_new(buf, o);
	free(buf);
	return *out ? 0 : -ENOMEM;
}

/* Strips one pair of matching surrounding ' or " from the string v.
 * Returns a new reference or NULL (ENOMEM). */
static json_t *strip_json(json_t *v)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);

	if (len >= 2 && (s[0] == '\'' || s[0] == '"') && s[len - 1] == s[0])
		return json_stringn_nocheck(s + 1, len - 2);
	return json_incref(v);
}

/* How a known MIME type's value becomes its field. */
enum enc_kind {
	ENC_PLAIN, /* text, with one pair of surrounding quotes stripped */
	ENC_TEXT,  /* a string, or an array of strings joined with "" */
	ENC_JSON,  /* an object or array; a string holding one is parsed */
};

/* The known MIME types, in the order their fields appear in a line. */
static const struct enc_mime {
	const char *mime;
	const char *field;
	enum enc_kind kind;
} enc_mimes[] = {
    {"text/plain", "text", ENC_PLAIN},
    {"text/html", "html", ENC_TEXT},
    {"text/markdown", "markdown", ENC_TEXT},
    {"image/svg+xml", "svg", ENC_TEXT},
    {"image/png", "png", ENC_TEXT},
    {"image/jpeg", "jpeg", ENC_TEXT},
    {"application/pdf", "pdf", ENC_TEXT},
    {"text/latex", "latex", ENC_TEXT},
    {"application/json", "json", ENC_JSON},
    {"application/javascript", "javascript", ENC_TEXT},
    {"e2b/data", "data", ENC_JSON},
    {"e2b/chart", "chart", ENC_JSON},
};

#define ENC_NMIMES (sizeof(enc_mimes) / sizeof(enc_mimes[0]))

static const struct enc_mime *mime_find(const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < ENC_NMIMES; i++)
		if (strlen(enc_mimes[i].mime) == len &&
		    memcmp(enc_mimes[i].mime, key, len) == 0)
			return &enc_mimes[i];
	return NULL;
}

/* The field value of a JSON-kind MIME type: see enc_field. */
static int json_field(json_t *v, json_t **out)
{
	json_t *parsed;

	if (!json_is_object(v) && !json_is_array(v) && !json_is_string(v))
		return 1;
	parsed = NULL;
	/* Without JSON_DECODE_ANY only an object or array parses, so a string
	 * such as "12" stays the string it was. */
	if (json_is_string(v))
		parsed = json_loadb(json_string_value(v), json_string_length(v),
				    JSON_ALLOW_NUL, NULL);
	*out = clean(parsed ? parsed : v, 0);
	json_decref(parsed);
	return *out ? 0 : -ENOMEM;
}

/* Converts the value v of the known MIME type m into its field. Returns 0
 * with a new reference in *out; 1 when v does not fit the field (a number
 * where text belongs, say), so the caller keeps it in "extra" instead of
 * handing the SDKs a field of the wrong type; or -ENOMEM. */
static int enc_field(const struct enc_mime *m, json_t *v, json_t **out)
{
	json_t *s = NULL;
	int rc;

	*out = NULL;
	if (m->kind == ENC_JSON)
		return json_field(v, out);
	if (json_is_string(v)) {
		s = clean(v, 0);
	} else if (json_is_array(v)) {
		rc = join(v, "", 1, &s);
		if (rc)
			return rc;
	} else {
		return 1;
	}
	if (!s)
		return -ENOMEM;
	if (m->kind == ENC_PLAIN) {
		*out = strip_json(s);
		json_decref(s);
	} else {
		*out = s;
	}
	return *out ? 0 : -ENOMEM;
}

/* Adds a cleaned copy of v to obj under the key (len bytes). */
static int set_clean(json_t *obj, const char *key, size_t len, json_t *v)
{
	json_t *k = str_new(key, len);
	int rc;

	if (!k)
		return -ENOMEM;
	rc = json_object_setn_new_nocheck(obj, json_string_value(k),
					  json_string_length(k), clean(v, 0));
	json_decref(k);
	return rc ? -ENOMEM : 0;
}

/* Sorts the bundle's entries into the known fields (slot, indexed like
 * enc_mimes, new references) and extra. A known MIME type whose value is
 * null is treated as absent. Returns 0 or -ENOMEM. */
static int split_bundle(json_t *bundle, json_t **slot, json_t *extra)
{
	const struct enc_mime *m;
	const char *key;
	size_t len;
	void *it;
	json_t *v;
	int rc;

	for (it = json_object_iter(bundle); it;
	     it = json_object_iter_next(bundle, it)) {
		key = json_object_iter_key(it);
		len = json_object_iter_key_len(it);
		v = json_object_iter_value(it);
		m = mime_find(key, len);
		if (m && json_is_null(v))
			continue;
		rc = m ? enc_field(m, v, &slot[m - enc_mimes]) : 1;
		if (rc == 1)
			rc = set_clean(extra, key, len, v);
		if (rc < 0)
			return rc;
	}
	return 0;
}

char *enc_result(json_t *bundle, bool is_main_result)
{
	json_t *slot[ENC_NMIMES] = {NULL};
	json_t *out = json_object(), *extra = json_object();
	char *line = NULL;
	size_t i;
	int rc;

	if (!out || !extra)
		goto out;
	if (json_is_object(bundle) && split_bundle(bundle, slot, extra))
		goto out;
	if (json_object_set_new(out, "type", json_string("result")))
		goto out;
	for (i = 0; i < ENC_NMIMES; i++) {
		if (!slot[i])
			continue;
		rc = json_object_set_new(out, enc_mimes[i].field, slot[i]);
		slot[i] = NULL;
		if (rc)
			goto out;
	}
	if (json_object_set(out, "extra", extra) ||
	    json_object_set_new(out, "is_main_result",
				json_boolean(is_main_result)))
		goto out;
	line = enc_line(out);
	out = NULL;
out:
	for (i = 0; i < ENC_NMIMES; i++)
		json_decref(slot[i]);
	json_decref(extra);
	json_decref(out);
	return line;
}

/* {"type":type} as a new object, or NULL (ENOMEM). */
static json_t *typed(const char *type)
{
	json_t *o = json_object();

	if (o && json_object_set_new(o, "type", str_of(type))) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

char *enc_count(long long execution_count)
{
	json_t *o = typed("number_of_executions");

	if (o && json_object_set_new(o, "execution_count",
				     json_integer(execution_count))) {
		json_decref(o);
		o = NULL;
	}
	return enc_line(o);
}

/* The current UTC time as 2024-05-01T10:00:00.123456Z. */
static void now_iso(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%06ldZ", (long)(ts.tv_nsec / 1000));
}

/* Appends s (n bytes of UTF-8) as the body of a JSON string, escaped the way
 * jansson's JSON_ENSURE_ASCII does (so lines match the jansson-built ones
 * byte for byte); invalid UTF-8 becomes \uFFFD. With out NULL it only
 * counts. Returns the length written. */
static size_t esc_str(char *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	size_t w = 0, i = 0;
	char tmp[16];

	while (i < n) {
		unsigned c = p[i], cp;
		size_t k = 0, len = 1;
		if (jtext_plain((unsigned char)c)) {
			if (out)
				out[w] = (char)c;
			w++;
			i++;
			continue;
		}
		if (c < 0x80) {
			k = jtext_esc_ascii(tmp, (unsigned char)c);
		} else {
			len = utf8_seq(p + i, n - i);
			if (len == 0) {
				len = 1;
				cp = 0xFFFD;
			} else if (len == 2) {
				cp = (c & 0x1Fu) << 6 | (p[i + 1] & 0x3Fu);
			} else if (len == 3) {
				cp = (c & 0x0Fu) << 12 |
				     (p[i + 1] & 0x3Fu) << 6 |
				     (p[i + 2] & 0x3Fu);
			} else {
				cp = (c & 0x07u) << 18 |
				     (p[i + 1] & 0x3Fu) << 12 |
				     (p[i + 2] & 0x3Fu) << 6 |
				     (p[i + 3] & 0x3Fu);
			}
			if (cp > 0xFFFF) {
				unsigned v = cp - 0x10000,
					 hi = 0xD800 | (v >> 10),
					 lo = 0xDC00 | (v & 0x3FF);
				k = (size_t)snprintf(
				    tmp, sizeof(tmp), "\\u%c%c%c%c\\u%c%c%c%c",
				    hex[hi >> 12], hex[(hi >> 8) & 15],
				    hex[(hi >> 4) & 15], hex[hi & 15],
				    hex[lo >> 12], hex[(lo >> 8) & 15],
				    hex[(lo >> 4) & 15], hex[lo & 15]);
			} else {
				k = (size_t)snprintf(
				    tmp, sizeof(tmp), "\\u%c%c%c%c",
				    hex[cp >> 12], hex[(cp >> 8) & 15],
				    hex[(cp >> 4) & 15], hex[cp & 15]);
			}
		}
		if (out)
			memcpy(out + w, tmp, k);
		w += k;
		i += len;
	}
	return w;
}

/* esc_str into out, which has room for the worst case (6 bytes per input
 * byte), copying runs of plain ASCII at once: stream text is mostly that. */
static size_t esc_fast(char *out, const char *s, size_t n)
{
	size_t w = 0, i = 0;

	while (i < n) {
		size_t j = i + jtext_plain_run(s + i, n - i);
		memcpy(out + w, s + i, j - i);
		w += j - i;
		i = j;
		if (i == n)
			break;
		/* One escaped character (or one UTF-8 sequence). */
		size_t k = 1;
		if ((unsigned char)s[i] >= 0x80) {
			k = utf8_seq((const unsigned char *)s + i, n - i);
			if (k == 0)
				k = 1;
		}
		w += esc_str(out + w, s + i, k);
		i += k;
	}
	return w;
}

/* Code point cp as esc_str writes it. */
static size_t esc_cp(char *out, unsigned long cp)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t w = 0;

	if (cp < 0x80) {
		if (jtext_plain((unsigned char)cp)) {
			out[0] = (char)cp;
			return 1;
		}
		return jtext_esc_ascii(out, (unsigned char)cp);
	}
	if (cp > 0xFFFF) {
		unsigned long v = cp - 0x10000;
		w = esc_cp(out, 0xD800 | v >> 10);
		cp = 0xDC00 | (v & 0x3FF);
	}
	out[w] = '\\';
	out[w + 1] = 'u';
	for (int i = 0; i < 4; i++)
		out[w + 2 + i] = hex[cp >> (12 - 4 * i) & 15];
	return w + 6;
}

/* The code point of the well-formed UTF-8 sequence of n bytes at s. */
static unsigned long utf8_cp(const unsigned char *s, int n)
{
	static const unsigned char lead[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
	unsigned long cp = s[0] & lead[n];

	for (int i = 1; i < n; i++)
		cp = cp << 6 | (s[i] & 0x3Fu);
	return cp;
}

/* The four hex digits at s. */
static unsigned long hex4_at(const char *s)
{
	unsigned long v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v = v << 4 | (unsigned long)(c <= '9'	? c - '0'
					     : c <= 'F' ? c - 'A' + 10
							: c - 'a' + 10);
	}
	return v;
}

/* The body of a JSON string as received (n bytes, escapes and raw UTF-8 as
 * flatj_members checked them) into out, exactly as esc_fast writes the
 * decoded and repaired text: plain runs copied, every escape and every
 * non-ASCII character rewritten. out has room for 6 bytes per input byte. */
static size_t esc_json_body(char *out, const char *s, size_t n)
{
	size_t w = 0, i = 0;

	while (i < n) {
		size_t run = jtext_plain_run(s + i, n - i);
		unsigned long cp;
		memcpy(out + w, s + i, run);
		w += run;
		i += run;
		if (i == n)
			break;
		if ((unsigned char)s[i] >= 0x80) {
			int step = jtext_utf8_step((const unsigned char *)s + i,
						   n - i);
			cp = step > 0
				 ? utf8_cp((const unsigned char *)s + i, step)
				 : 0xFFFD;
			i += (size_t)(step > 0 ? step : -step);
		} else if (s[i + 1] != 'u') {
			static const char from[] = "\"\\/bfnrt",
					  to[] = "\"\\/\b\f\n\r\t";
			cp = (unsigned char)to[strchr(from, s[i + 1]) - from];
			i += 2;
		} else {
			cp = hex4_at(s + i + 2);
			i += 6;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				cp = 0x10000 + ((cp - 0xD800) << 10) +
				     (hex4_at(s + i + 2) - 0xDC00);
				i += 6;
			}
		}
		w += esc_cp(out + w, cp);
	}
	return w;
}

/* {"type":stream,"text":<text>,"timestamp":...}: text is len bytes of
 * UTF-8 (raw false) or the body of a received JSON string (raw true). */
static char *stream_line(const char *stream, const char *text, size_t len,
			 bool raw, const char *timestamp)
{
	char now[64], *line, *w;
	struct dbuf b;
	size_t slen, tlen;

	if (!timestamp) {
		now_iso(now, sizeof(now));
		timestamp = now;
	}
	if (!stream)
		stream = "stdout";
	slen = strlen(stream);
	tlen = strlen(timestamp);
	/* Stream text is the bulk of most executions: escape it straight into
	 * the line in one pass instead of building and dumping a JSON object.
	 * The worst case is reserved (6 bytes per input byte; pages never
	 * written are never touched) and the rest given back. */
	if (len > (DBUF_NOMAX - 64) / 6 - slen - tlen)
		return NULL;
	dbuf_init(&b, DBUF_NOMAX);
	line = w = dbuf_room(&b, sizeof("{\"type\":\"\",\"text\":\"\","
					"\"timestamp\":\"\"}\n") +
				     6 * (slen + len + tlen));
	if (!line)
		return NULL;
	memcpy(w, "{\"type\":\"", 9);
	w += 9;
	w += esc_fast(w, stream, slen);
	memcpy(w, "\",\"text\":\"", 10);
	w += 10;
	w += raw ? esc_json_body(w, text, len) : esc_fast(w, text, len);
	memcpy(w, "\",\"timestamp\":\"", 15);
	w += 15;
	w += esc_fast(w, timestamp, tlen);
	memcpy(w, "\"}\n", 3);
	w += 3;
	dbuf_commit(&b, (size_t)(w - line));
	/* The line waits in the execution's queue: not at 6 times its size. */
	dbuf_trim(&b);
	return dbuf_take(&b, NULL);
}

char *enc_stream_n(const char *stream, const char *text, size_t len,
		   const char *timestamp)
{
	return stream_line(stream, text, len, false, timestamp);
}

static bool span_is(const struct flatj_span *s, const char *lit)
{
	return s->len == strlen(lit) && memcmp(s->p, lit, s->len) == 0;
}

int enc_stream_raw(const char *content, size_t len, const char *timestamp,
		   char **line)
{
	struct flatj_member m[8];
	const struct flatj_span *name = NULL, *text = NULL;
	int n = flatj_members(content, len, m, 8);

	*line = NULL;
	/* As jansson reads a repeated key: the last one counts. */
	for (int i = 0; i < n; i++) {
		if (span_is(&m[i].key, "name"))
			name = &m[i].val;
		else if (span_is(&m[i].key, "text"))
			text = &m[i].val;
	}
	if (!text || (name && memchr(name->p, '\\', name->len)))
		return 0;
	*line =
	    stream_line(name && span_is(name, "stderr") ? "stderr" : "stdout",
			text->p, text->len, true, timestamp);
	return *line ? 1 : -ENOMEM;
}

char *enc_stream(const char *stream, const char *text, const char *timestamp)
{
	return enc_stream_n(stream, text ? text : "", text ? strlen(text) : 0,
			    timestamp);
}

/* The error line from three strings (stolen; NULL means out of memory). */
static char *error_line(json_t *name, json_t *value, json_t *traceback)
{
	json_t *o = typed("error");
	char *line = NULL;

	/* json_object_set takes its own references, so one release at the end
	 * covers success and every failure alike. */
	if (o && !json_object_set(o, "name", name) &&
	    !json_object_set(o, "value", value) &&
	    !json_object_set(o, "traceback", traceback)) {
		line = enc_line(o);
		o = NULL;
	}
	json_decref(o);
	json_decref(name);
	json_decref(value);
	json_decref(traceback);
	return line;
}

char *enc_error(const char *name, const char *value, const char *traceback)
{
	return error_line(str_of(name), str_of(value), str_of(traceback));
}

/* A string member of content as a clean JSON string; "" when it is missing
 * or not a string. New reference or NULL (ENOMEM). */
static json_t *member_str(json_t *content, const char *key)
{
	json_t *v = json_object_get(content, key);

	return json_is_string(v) ? clean(v, 0) : str_of("");
}

char *enc_error_content(json_t *content)
{
	json_t *tb = json_object_get(content, "traceback"), *joined = NULL;

	if (json_is_array(tb)) {
		if (join(tb, "\n", 0, &joined))
			joined = NULL;
	} else {
		joined = member_str(content, "traceback");
	}
	return error_line(member_str(content, "ename"),
			  member_str(content, "evalue"), joined);
}

char *enc_simple(const char *type)
{
	return enc_line(typed(type));
}

char *enc_strip_quotes(const char *s)
{
	size_t len = s ? strlen(s) : 0;
	char *r;

	if (len >= 2 && (s[0] == '\'' || s[0] == '"') && s[len - 1] == s[0]) {
		s++;
		len -= 2;
	}
	r = malloc(len + 1);
	if (!r)
		return NULL;
	if (len)
		memcpy(r, s, len);
	r[len] = '\0';
	return r;
}
