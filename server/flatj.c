/*
 * flatj.c: flat string-valued JSON objects, parsed without jansson's lexer.
 *
 * Grammar accepted (RFC 8259 restricted): ws "{" ws [ member *( ws "," ws
 * member ) ] ws "}" ws, member = string ws ":" ws string. Strings are copied
 * into a scratch dbuf in runs (jtext_plain_run), escapes decoded, UTF-8
 * checked and repaired the way wire_utf8_sanitize repairs it, and handed to
 * jansson with json_stringn_nocheck (valid by construction). Members are set
 * in order with json_object_setn_new_nocheck, so a repeated key keeps its
 * first position and its last value, as in jansson's own parser.
 *
 * What jansson rejects is declined here rather than reported: raw control
 * characters, unknown escapes, malformed \u, unpaired surrogates, NUL in a
 * key, anything after the closing brace but whitespace. Declining is always
 * safe; accepting is only allowed when the result equals jansson's.
 */
#include "flatj.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dbuf.h"
#include "jtext.h"

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *p, size_t len, size_t i)
{
	while (i < len && is_ws(p[i]))
		i++;
	return i;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits at p (len bytes available) or -1. */
static long hex4(const char *p, size_t len)
{
	long v = 0;

	if (len < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

static size_t put_utf8(char *o, unsigned long cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * The string whose opening quote is at p[*i], decoded into b (b->len reset).
 * Advances *i past the closing quote. Returns 1, 0 to decline, -ENOMEM.
 */
static int read_string(const char *p, size_t len, size_t *i, struct dbuf *b)
{
	size_t at = *i + 1;

	dbuf_reset(b);
	for (;;) {
		size_t run = jtext_plain_run(p + at, len - at);
		/* The run and what one step below writes at most: a UTF-8
		 * sequence, U+FFFD or a decoded escape, 4 bytes. */
		char *w = dbuf_room(b, run + 4), *w0 = w;
		unsigned char c;

		if (!w)
			return -ENOMEM;
		memcpy(w, p + at, run);
		w += run;
		at += run;
		if (at >= len)
			return 0; /* unterminated */
		c = (unsigned char)p[at];
		if (c == '"') {
			dbuf_commit(b, (size_t)(w - w0));
			*i = at + 1;
			return 1;
		}
		if (c < 0x20)
			return 0; /* jansson: control character */
		if (c >= 0x80) {
			int step = jtext_utf8_step(
			    (const unsigned char *)p + at, len - at);
			if (step > 0) {
				memcpy(w, p + at, (size_t)step);
				w += step;
				at += (size_t)step;
			} else {
				memcpy(w, "\xef\xbf\xbd", 3);
				w += 3;
				at += (size_t)-step;
			}
			dbuf_commit(b, (size_t)(w - w0));
			continue;
		}
		/* A backslash. */
		if (at + 1 >= len)
			return 0;
		c = (unsigned char)p[at + 1];
		at += 2;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			*w++ = (char)c;
			break;
		case 'b':
			*w++ = '\b';
			break;
		case 'f':
			*w++ = '\f';
			break;
		case 'n':
			*w++ = '\n';
			break;
		case 'r':
			*w++ = '\r';
			break;
		case 't':
			*w++ = '\t';
			break;
		case 'u':
			break;
		default:
			return 0;
		}
		if (c == 'u') {
			long u = hex4(p + at, len - at);
			unsigned long cp;
			if (u < 0)
				return 0;
			at += 4;
			cp = (unsigned long)u;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return 0; /* lone low surrogate */
			if (cp >= 0xd800 && cp <= 0xdbff) {
				long lo;
				if (at + 6 > len || p[at] != '\\' ||
				    p[at + 1] != 'u')
					return 0;
				lo = hex4(p + at + 2, len - at - 2);
				if (lo < 0xdc00 || lo > 0xdfff)
					return 0;
				at += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     ((unsigned long)lo - 0xdc00);
			}
			w += put_utf8(w, cp);
		}
		dbuf_commit(b, (size_t)(w - w0));
	}
}

int flatj_parse(const char *p, size_t len, json_t **out)
{
	struct dbuf key = DBUF_INIT(DBUF_NOMAX), val = DBUF_INIT(DBUF_NOMAX);
	json_t *obj = NULL, *s;
	size_t i;
	int rc = 0;

	*out = NULL;
	i = skip_ws(p, len, 0);
	if (i >= len || p[i] != '{')
		return 0;
	obj = json_object();
	if (!obj)
		return -ENOMEM;
	i = skip_ws(p, len, i + 1);
	if (i < len && p[i] == '}') {
		i++;
		goto end;
	}
	for (;;) {
		if (i >= len || p[i] != '"')
			goto done;
		rc = read_string(p, len, &i, &key);
		if (rc <= 0)
			goto done;
		rc = 0;
		if (memchr(dbuf_ptr(&key), '\0', dbuf_len(&key)))
			goto done; /* jansson: NUL byte in object key */
		i = skip_ws(p, len, i);
		if (i >= len || p[i] != ':')
			goto done;
		i = skip_ws(p, len, i + 1);
		if (i >= len || p[i] != '"')
			goto done;
		rc = read_string(p, len, &i, &val);
		if (rc <= 0)
			goto done;
		rc = -ENOMEM;
		s = json_stringn_nocheck(dbuf_ptr(&val), dbuf_len(&val));
		if (!s || json_object_setn_new_nocheck(obj, dbuf_ptr(&key),
						       dbuf_len(&key), s) < 0)
			goto done;
		rc = 0;
		i = skip_ws(p, len, i);
		if (i < len && p[i] == ',') {
			i = skip_ws(p, len, i + 1);
			continue;
		}
		if (i < len && p[i] == '}') {
			i++;
			break;
		}
		goto done;
	}
end:
	if (skip_ws(p, len, i) == len) {
		*out = obj;
		obj = NULL;
		rc = 1;
	}
done:
	json_decref(obj);
	dbuf_cleanup(&key);
	dbuf_cleanup(&val);
	return rc;
}

/*
 * Skips the string whose opening quote is at p[*i], checking what
 * read_string checks (no raw control character, known escapes, four hex
 * digits after \u, surrogates in pairs) without writing anything; bytes of
 * invalid UTF-8 are accepted, as read_string repairs them. Returns 1 with *i
 * past the closing quote, or 0 to decline.
 */
static int skip_string(const char *p, size_t len, size_t *i)
{
	size_t at = *i + 1;

	for (;;) {
		unsigned char c;
		long u;

		at += jtext_plain_run(p + at, len - at);
		if (at >= len)
			return 0;
		c = (unsigned char)p[at];
		if (c == '"') {
			*i = at + 1;
			return 1;
		}
		if (c < 0x20)
			return 0;
		if (c >= 0x80) {
			int step = jtext_utf8_step(
			    (const unsigned char *)p + at, len - at);
			at += (size_t)(step > 0 ? step : -step);
			continue;
		}
		/* A backslash. */
		if (at + 1 >= len)
			return 0;
		c = (unsigned char)p[at + 1];
		at += 2;
		if (c && strchr("\"\\/bfnrt", c))
			continue;
		if (c != 'u' || (u = hex4(p + at, len - at)) < 0 ||
		    (u >= 0xdc00 && u <= 0xdfff))
			return 0;
		at += 4;
		if (u < 0xd800 || u > 0xdbff)
			continue;
		if (at + 6 > len || p[at] != '\\' || p[at + 1] != 'u')
			return 0;
		u = hex4(p + at + 2, len - at - 2);
		if (u < 0xdc00 || u > 0xdfff)
			return 0;
		at += 6;
	}
}

/* The string at p[*i] as a raw span; 0 to decline. */
static int span_string(const char *p, size_t len, size_t *i,
		       struct flatj_span *s)
{
	size_t start = *i + 1;

	if (*i >= len || p[*i] != '"' || !skip_string(p, len, i))
		return 0;
	s->p = p + start;
	s->len = *i - 1 - start;
	return 1;
}

int flatj_members(const char *p, size_t len, struct flatj_member *out,
		  size_t max)
{
	size_t i = skip_ws(p, len, 0), n = 0;

	if (i >= len || p[i] != '{')
		return -EINVAL;
	i = skip_ws(p, len, i + 1);
	if (i < len && p[i] == '}')
		return skip_ws(p, len, i + 1) == len ? 0 : -EINVAL;
	for (;;) {
		struct flatj_member m;
		if (n == max || !span_string(p, len, &i, &m.key) ||
		    memchr(m.key.p, '\\', m.key.len))
			return -EINVAL;
		i = skip_ws(p, len, i);
		if (i >= len || p[i] != ':')
			return -EINVAL;
		i = skip_ws(p, len, i + 1);
		if (!span_string(p, len, &i, &m.val))
			return -EINVAL;
		out[n++] = m;
		i = skip_ws(p, len, i);
		if (i < len && p[i] == ',') {
			i = skip_ws(p, len, i + 1);
			continue;
		}
		if (i < len && p[i] == '}' && skip_ws(p, len, i + 1) == len)
			return (int)n;
		return -EINVAL;
	}
}

/* Room for a string of n bytes in the worst case (all \u00XX) plus quotes. */
static size_t dump_room(size_t n)
{
	return n > (SIZE_MAX - 2) / 6 ? SIZE_MAX : 6 * n + 2;
}

/* A JSON string as jansson's dump_string writes it without flags. */
static size_t dump_str(char *o, const char *s, size_t n)
{
	size_t w = 0, i = 0;

	o[w++] = '"';
	while (i < n) {
		size_t run = jtext_plain_run(s + i, n - i);
		unsigned char c;

		memcpy(o + w, s + i, run);
		w += run;
		i += run;
		if (i == n)
			break;
		c = (unsigned char)s[i++];
		if (c >= 0x80) /* valid UTF-8 by jansson's invariant */
			o[w++] = (char)c;
		else
			w += jtext_esc_ascii(o + w, c);
	}
	o[w++] = '"';
	return w;
}

int flatj_dump(const json_t *obj, char **out, size_t *len)
{
	const char *key;
	json_t *v;
	size_t klen, room = 3;
	struct dbuf b;
	char *buf, *w;

	*out = NULL;
	*len = 0;
	if (!json_is_object(obj))
		return 0;
	json_object_keylen_foreach((json_t *)obj, key, klen, v)
	{
		size_t a, c;
		/* A key holding NUL (json_object_setn) is jansson's to write.
		 */
		if (!json_is_string(v) || klen != strlen(key))
			return 0;
		a = dump_room(klen);
		c = dump_room(json_string_length(v));
		if (a == SIZE_MAX || c == SIZE_MAX ||
		    room > SIZE_MAX - a - c - 2)
			return -ENOMEM;
		room += a + c + 2;
	}
	/* The worst case in one piece, written in place. */
	dbuf_init(&b, DBUF_NOMAX);
	buf = w = dbuf_room(&b, room);
	if (!buf)
		return -ENOMEM;
	*w++ = '{';
	json_object_keylen_foreach((json_t *)obj, key, klen, v)
	{
		if (w > buf + 1)
			*w++ = ',';
		w += dump_str(w, key, klen);
		*w++ = ':';
		w += dump_str(w, json_string_value(v), json_string_length(v));
	}
	*w++ = '}';
	dbuf_commit(&b, (size_t)(w - buf));
	*out = dbuf_take(&b, len);
	return *out ? 1 : -ENOMEM;
}
