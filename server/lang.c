/*
 * lang: per-language helper cells (see lang.h).
 *
 * Each language gets one template that decodes a base64 JSON document
 * {"set": {...}, "save": true|false} with its own standard library and
 * applies it to the process environment, so child processes see it too.
 * With "save", the previous value of every variable it sets (or its
 * absence) is remembered inside the kernel first: in os (Python), under a
 * global symbol (JavaScript), in an R option, in e2bci.E2b (Java), in shell
 * arrays (bash). The restore cell of the language puts those back. Keeping
 * the previous values in the kernel is what makes the restore exact: the
 * daemon cannot know what the kernel inherited or what user code set.
 *
 * The templates are data; adding a language is adding a row. Java's
 * document is cut into string literals of at most LANG_JAVA_CHUNK bytes,
 * since a class file constant holds at most 65535 bytes (and javac folds
 * "a" + "b", so the pieces are separate arguments). Bash, which has no
 * JSON parser, gets arrays of names and of values written as $'...' words
 * in which every byte but a letter or digit is a \xHH escape, and one loop
 * of builtins: no subshell or process per variable. Pure functions.
 */
#include "lang.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jtext.h"

#define LANG_JAVA_CHUNK 65000

struct lang_env_tpl {
	const char *language;
	const char *before, *after; /* the encoded document goes between */
	int hex;		    /* hex instead of base64 */
	size_t chunk;		    /* > 0: cut the encoding, joined by sep */
	const char *sep;
};

#define LANG_R_HEX_DECODE                                                      \
	"rawToChar(as.raw(strtoi(substring(h, seq(1, nchar(h), 2), "           \
	"seq(2, nchar(h), 2)), 16L)))"

static const struct lang_env_tpl lang_env_tpls[] = {
    {"python",
     "(lambda d, o=__import__('os'): ([o.__dict__.setdefault('_e2b_ci_env', "
     "{}).setdefault(k, o.environ.get(k)) for k in d['set']] if d['save'] "
     "else None, o.environ.update(d['set']), None)[-1])"
     "(__import__('json').loads(__import__('base64').b64decode('",
     "')))", 0, 0, NULL},
    {"javascript", "(() => { const d = JSON.parse(Buffer.from('",
     "', 'base64').toString('utf8')), e = process.env; if (d.save) { "
     "const s = Symbol.for('e2b-ci.env'), m = globalThis[s] || "
     "(globalThis[s] = new Map()); for (const k of Object.keys(d.set)) if "
     "(!m.has(k)) m.set(k, Object.prototype.hasOwnProperty.call(e, k) ? "
     "e[k] : undefined); } for (const k of Object.keys(d.set)) e[k] = "
     "d.set[k]; })();",
     0, 0, NULL},
    /* System.getenv is read-only in Java: the runner's helper changes the
     * process environment (children see it) and, as E2B's reference does,
     * the system properties. */
    {"java", "e2bci.E2b.env(\"", "\");", 0, LANG_JAVA_CHUNK, "\", \""},
    /* jsonlite (IRkernel needs it) decodes base64 in C. */
    {"r", "local({d <- jsonlite::fromJSON(rawToChar(jsonlite::base64_dec(\"",
     "\")), simplifyVector = FALSE); if (isTRUE(d$save)) { s <- "
     "getOption(\"e2b.ci.env\", list()); for (k in names(d$set)) if (!(k "
     "%in% names(s))) s[k] <- list(Sys.getenv(k, unset = NA)); "
     "options(e2b.ci.env = s) }; if (length(d$set)) do.call(Sys.setenv, "
     "d$set); invisible(NULL)})",
     0, 0, NULL},
};

/* Bash's restore walks the saved arrays backwards, so that when two saves
 * were never restored in between, the older value is put back last. */
static const struct {
	const char *language, *code;
} lang_restore[] = {
    {"python", "(lambda o=__import__('os'): ([o.environ.pop(k, None) if v is "
	       "None else o.environ.__setitem__(k, v) for k, v in "
	       "o.__dict__.pop('_e2b_ci_env', {}).items()], None)[-1])()"},
    {"javascript",
     "(() => { const s = Symbol.for('e2b-ci.env'), m = globalThis[s], e = "
     "process.env; delete globalThis[s]; if (m) for (const [k, v] of m) { if "
     "(v === undefined) delete e[k]; else e[k] = v; } })();"},
    {"java", "e2bci.E2b.restoreEnv();"},
    {"r", "local({s <- getOption(\"e2b.ci.env\"); options(e2b.ci.env = "
	  "NULL); for (k in names(s)) if (is.na(s[[k]])) Sys.unsetenv(k) else "
	  "do.call(Sys.setenv, s[k]); invisible(NULL)})"},
    {"bash",
     "{ if [[ -v __e2b_sn ]]; then for ((__e2b_i=${#__e2b_sn[@]}-1; "
     "__e2b_i>=0; __e2b_i--)); do __e2b_k=${__e2b_sn[__e2b_i]}; case "
     "${__e2b_st[__e2b_i]} in u) builtin unset -v \"$__e2b_k\";; x) builtin "
     "export \"$__e2b_k=${__e2b_sv[__e2b_i]}\";; *) builtin declare +x "
     "\"$__e2b_k\"; builtin printf -v \"$__e2b_k\" %s "
     "\"${__e2b_sv[__e2b_i]}\";; esac; done; fi; builtin unset -v __e2b_sn "
     "__e2b_sv __e2b_st __e2b_i __e2b_k; } || :"},
};

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

static char *lang_hex(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(2 * n + 1);

	if (out)
		jtext_hex((const unsigned char *)s, n, out);
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

/* payload, encoded as the row wants it (cut into chunks joined by the
 * row's separator when it asks), between the row's two halves. */
static char *lang_wrap(const struct lang_env_tpl *t, const char *payload)
{
	char *enc = t->hex ? lang_hex(payload) : lang_b64(payload);
	char *code = NULL;
	size_t len, size = 0;
	FILE *f;

	if (!enc || !(f = open_memstream(&code, &size)))
		goto out;
	fputs(t->before, f);
	len = strlen(enc);
	for (size_t i = 0; i < len; i += t->chunk ? t->chunk : len) {
		size_t n = t->chunk && len - i > t->chunk ? t->chunk : len - i;
		if (i > 0)
			fputs(t->sep, f);
		fwrite(enc + i, 1, n, f);
	}
	fputs(t->after, f);
	if (ferror(f) | fclose(f)) {
		free(code);
		code = NULL;
	}
out:
	free(enc);
	return code;
}

/* Names that are not shell identifiers cannot be exported by bash. */
static bool lang_is_ident(const char *k)
{
	if (!*k || (!isalpha((unsigned char)*k) && *k != '_'))
		return false;
	for (; *k; k++)
		if (!isalnum((unsigned char)*k) && *k != '_')
			return false;
	return true;
}

/* s as one bash $'...' word: letters and digits as they are, every other
 * byte as \xHH (two digits always, so a following digit cannot join the
 * escape). No quote, backslash or newline of s reaches bash's parser. */
static void lang_bash_word(FILE *f, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	fputs(" $'", f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) && *p < 0x80) {
			fputc(*p, f);
			continue;
		}
		fputc('\\', f);
		fputc('x', f);
		fputc(hex[*p >> 4], f);
		fputc(hex[*p & 15], f);
	}
	fputc('\'', f);
}

/* The loop body that remembers $__e2b_k (value, exported or not, or unset;
 * $__e2b_a holds its attributes) in __e2b_sn/__e2b_sv/__e2b_st, read by the
 * bash restore row. */
#define LANG_BASH_SAVE                                                         \
	"__e2b_sn+=(\"$__e2b_k\"); if [[ -v $__e2b_k ]]; then "                \
	"__e2b_sv+=(\"${!__e2b_k}\"); [[ $__e2b_a == *x* ]] && "               \
	"__e2b_st+=(x) || __e2b_st+=(s); else __e2b_sv+=(''); "                \
	"__e2b_st+=(u); fi; "

/*
 * Bash: one compound command. Readonly variables are skipped, neither
 * saved nor set (assigning one would abandon the whole line), the integer
 * attribute is dropped first
 * (bash would evaluate the value as arithmetic, which can run code), and
 * "|| :" keeps a user's "set -e" from ending the shell on a failure here.
 */
static char *lang_bash_env(json_t *set, bool save)
{
	char *code = NULL;
	size_t size = 0;
	const char *key;
	json_t *v;
	FILE *f = open_memstream(&code, &size);

	if (!f)
		return NULL;
	fputs("{ __e2b_n=(", f);
	json_object_foreach(set, key, v)
	{
		if (lang_is_ident(key) && json_is_string(v))
			fprintf(f, " %s", key);
	}
	fputs(" ); __e2b_v=(", f);
	json_object_foreach(set, key, v)
	{
		if (lang_is_ident(key) && json_is_string(v))
			lang_bash_word(f, json_string_value(v));
	}
	fputs(" ); for ((__e2b_i=0; __e2b_i<${#__e2b_n[@]}; __e2b_i++)); do "
	      "__e2b_k=${__e2b_n[__e2b_i]}; __e2b_a=; [[ -v $__e2b_k ]] && "
	      "__e2b_a=${!__e2b_k@a}; [[ $__e2b_a == *r* ]] && continue; ",
	      f);
	if (save)
		fputs(LANG_BASH_SAVE, f);
	fputs("[[ $__e2b_a == *i* ]] && builtin declare +i \"$__e2b_k\"; "
	      "builtin export \"$__e2b_k=${__e2b_v[__e2b_i]}\"; done; builtin "
	      "unset -v __e2b_n __e2b_v __e2b_i __e2b_k __e2b_a; } || :",
	      f);
	if (ferror(f) | fclose(f)) {
		free(code);
		code = NULL;
	}
	return code;
}

char *lang_env_code(const char *language, json_t *set, bool save)
{
	const struct lang_env_tpl *t;
	json_t *doc;
	char *text, *code = NULL;

	if (strcmp(language, "bash") == 0)
		return lang_bash_env(set, save);
	t = lang_find(lang_env_tpls,
		      sizeof(lang_env_tpls) / sizeof(*lang_env_tpls), language);
	if (!t || !(doc = json_object()))
		return NULL;
	json_object_set_new(doc, "set", set ? json_incref(set) : json_object());
	json_object_set_new(doc, "save", json_boolean(save));
	text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (text)
		code = lang_wrap(t, text);
	free(text);
	json_decref(doc);
	return code;
}

char *lang_env_restore_code(const char *language)
{
	if (strcmp(language, "typescript") == 0)
		language = "javascript";
	for (size_t i = 0; i < sizeof(lang_restore) / sizeof(*lang_restore);
	     i++)
		if (strcmp(lang_restore[i].language, language) == 0)
			return strdup(lang_restore[i].code);
	return NULL;
}

static const struct lang_env_tpl lang_cwd_tpls[] = {
    {"python", "__import__('os').chdir(__import__('base64').b64decode('",
     "').decode('utf-8', 'surrogateescape'))", 0, 0, NULL},
    {"javascript", "process.chdir(Buffer.from('",
     "', 'base64').toString('utf8'));", 0, 0, NULL},
    {"bash", "__e2b_d=$(printf %s '",
     "' | base64 -d; printf x); cd -- \"${__e2b_d%x}\"; unset -v __e2b_d", 0, 0,
     NULL},
    {"r", "local({h <- \"", "\"; setwd(" LANG_R_HEX_DECODE ")})", 1, 0, NULL},
};

char *lang_cwd_code(const char *language, const char *cwd)
{
	const struct lang_env_tpl *t =
	    lang_find(lang_cwd_tpls,
		      sizeof(lang_cwd_tpls) / sizeof(*lang_cwd_tpls), language);

	return t ? lang_wrap(t, cwd) : NULL;
}
