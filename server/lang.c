/*
 * lang: per-language helper cells (see lang.h).
 *
 * Each language gets one template that decodes a base64 (R: hex) JSON
 * document {"set": {...}, "unset": [...]} with its own standard library and
 * applies it to the process environment, so child processes see it too.
 * The templates are data; adding a language is adding a row. Bash, which
 * has no JSON parser, gets one base64-decoded assignment per variable.
 * Pure functions.
 */
#include "lang.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jtext.h"

struct lang_env_tpl {
	const char *language;
	const char *before, *after; /* the encoded document goes between */
	int hex;		    /* hex instead of base64 (no base64 in R) */
};

#define LANG_R_HEX_DECODE                                                      \
	"rawToChar(as.raw(strtoi(substring(h, seq(1, nchar(h), 2), "           \
	"seq(2, nchar(h), 2)), 16L)))"

static const struct lang_env_tpl lang_env_tpls[] = {
    {"python",
     "(lambda d, o=__import__('os'): (o.environ.update(d['set']), "
     "[o.environ.pop(k, None) for k in d['unset']], None)[-1])"
     "(__import__('json').loads(__import__('base64').b64decode('",
     "')))", 0},
    {"javascript", "(() => { const d = JSON.parse(Buffer.from('",
     "', 'base64').toString('utf8')); Object.assign(process.env, d.set); "
     "for (const k of d.unset) delete process.env[k]; })();",
     0},
    /* System.getenv is read-only in Java: the runner's helper changes the
     * process environment (children see it) and, as E2B's reference does,
     * the system properties. */
    {"java", "e2bci.E2b.setenv(\"", "\");", 0},
    {"r", "local({h <- \"",
     "\"; d <- jsonlite::fromJSON(" LANG_R_HEX_DECODE
     ", simplifyVector = FALSE); if (length(d$set)) do.call(Sys.setenv, "
     "d$set); for (k in unlist(d$unset)) Sys.unsetenv(k); "
     "invisible(NULL)})",
     1},
};

static char *lang_b64(const char *s);

static char *lang_hex(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(2 * n + 1);

	if (out)
		jtext_hex((const unsigned char *)s, n, out);
	return out;
}

/* Bash has no JSON: one assignment per variable, each value decoded by
 * base64 -d (a trailing "x" keeps trailing newlines that $(...) would
 * strip). Names that are not shell identifiers cannot be exported by bash
 * and are skipped. */
static bool lang_is_ident(const char *k)
{
	if (!*k || (!isalpha((unsigned char)*k) && *k != '_'))
		return false;
	for (; *k; k++)
		if (!isalnum((unsigned char)*k) && *k != '_')
			return false;
	return true;
}

static char *lang_bash_env(json_t *set, json_t *unset)
{
	char *code = strdup(""), *b64, *next;
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach(set, key, v)
	{
		if (!code || !lang_is_ident(key) || !json_is_string(v))
			continue;
		b64 = lang_b64(json_string_value(v));
		if (!b64 || asprintf(&next,
				     "%s__e2b_v=$(printf %%s '%s' | base64 -d; "
				     "printf x); export %s=\"${__e2b_v%%x}\"; "
				     "unset -v __e2b_v\n",
				     code, b64, key) < 0)
			next = NULL;
		free(b64);
		free(code);
		code = next;
	}
	json_array_foreach(unset, i, v)
	{
		key = json_string_value(v);
		if (!code || !key || !lang_is_ident(key))
			continue;
		if (asprintf(&next, "%sunset -v %s\n", code, key) < 0)
			next = NULL;
		free(code);
		code = next;
	}
	return code;
}

/* Standard base64 (RFC 4648, padded) of the string s; malloc'd. */
static char *lang_b64(const char *s)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i, o = 0;
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (!out)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		unsigned long v = (unsigned long)p[i] << 16 |
				  (unsigned long)p[i + 1] << 8 | p[i + 2];
		out[o++] = tab[v >> 18];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		out[o++] = tab[v & 63];
	}
	if (i < n) {
		unsigned long v = (unsigned long)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned long)p[i + 1] << 8;
		out[o++] = tab[v >> 18];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return out;
}

/* The row for language in a table of n rows, or NULL. TypeScript runs on
 * the JavaScript runtime and shares its rows. */
static const struct lang_env_tpl *lang_find(const struct lang_env_tpl *t,
					    size_t n, const char *language)
{
	if (strcmp(language, "typescript") == 0)
		language = "javascript";
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].language, language) == 0)
			return &t[i];
	return NULL;
}

/* payload, encoded as the row wants it, between the row's two halves. */
static char *lang_wrap(const struct lang_env_tpl *t, const char *payload)
{
	char *enc = t->hex ? lang_hex(payload) : lang_b64(payload), *code;

	if (!enc || asprintf(&code, "%s%s%s", t->before, enc, t->after) < 0)
		code = NULL;
	free(enc);
	return code;
}

char *lang_env_code(const char *language, json_t *set, json_t *unset)
{
	const struct lang_env_tpl *t;
	json_t *doc;
	char *text, *code = NULL;

	if (strcmp(language, "bash") == 0)
		return lang_bash_env(set, unset);
	t = lang_find(lang_env_tpls,
		      sizeof(lang_env_tpls) / sizeof(*lang_env_tpls), language);
	if (!t || !(doc = json_object()))
		return NULL;
	json_object_set_new(doc, "set", set ? json_incref(set) : json_object());
	json_object_set_new(doc, "unset",
			    unset ? json_incref(unset) : json_array());
	text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (text)
		code = lang_wrap(t, text);
	free(text);
	json_decref(doc);
	return code;
}

static const struct lang_env_tpl lang_cwd_tpls[] = {
    {"python", "__import__('os').chdir(__import__('base64').b64decode('",
     "').decode('utf-8', 'surrogateescape'))", 0},
    {"javascript", "process.chdir(Buffer.from('",
     "', 'base64').toString('utf8'));", 0},
    {"bash", "__e2b_d=$(printf %s '",
     "' | base64 -d; printf x); cd -- \"${__e2b_d%x}\"; unset -v __e2b_d", 0},
    {"r", "local({h <- \"", "\"; setwd(" LANG_R_HEX_DECODE ")})", 1},
};

char *lang_cwd_code(const char *language, const char *cwd)
{
	const struct lang_env_tpl *t =
	    lang_find(lang_cwd_tpls,
		      sizeof(lang_cwd_tpls) / sizeof(*lang_cwd_tpls), language);

	return t ? lang_wrap(t, cwd) : NULL;
}
