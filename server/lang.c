/*
 * lang: per-language helper cells (see lang.h).
 *
 * Each language gets one template that decodes a base64 JSON document
 * {"set": {...}, "unset": [...]} with its own standard library and applies
 * it to the process environment, so child processes see it too. The
 * templates are data; adding a language is adding a row. Pure functions.
 */
#include "lang.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lang_env_tpl {
	const char *language;
	const char *before, *after; /* the base64 document goes between */
};

static const struct lang_env_tpl lang_env_tpls[] = {
	{"python",
	 "(lambda d, o=__import__('os'): (o.environ.update(d['set']), "
	 "[o.environ.pop(k, None) for k in d['unset']], None)[-1])"
	 "(__import__('json').loads(__import__('base64').b64decode('",
	 "')))"},
	{"javascript",
	 "(() => { const d = JSON.parse(Buffer.from('",
	 "', 'base64').toString('utf8')); Object.assign(process.env, d.set); "
	 "for (const k of d.unset) delete process.env[k]; })();"},
	{"typescript",
	 "(() => { const d = JSON.parse(Buffer.from('",
	 "', 'base64').toString('utf8')); Object.assign(process.env, d.set); "
	 "for (const k of d.unset) delete process.env[k]; })();"},
};

static char *lang_b64(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s,
				(int)n);
	return out;
}

char *lang_env_code(const char *language, json_t *set, json_t *unset)
{
	const struct lang_env_tpl *t = NULL;
	json_t *doc;
	char *text = NULL, *b64 = NULL, *code = NULL;

	for (size_t i = 0; i < sizeof(lang_env_tpls) / sizeof(*lang_env_tpls);
	     i++)
		if (strcmp(lang_env_tpls[i].language, language) == 0)
			t = &lang_env_tpls[i];
	if (!t)
		return NULL;
	doc = json_pack("{s:O?,s:O?}", "set", set, "unset", unset);
	if (!doc)
		return NULL;
	if (!json_object_get(doc, "set") || json_is_null(json_object_get(doc, "set")))
		json_object_set_new(doc, "set", json_object());
	if (!json_object_get(doc, "unset") ||
	    json_is_null(json_object_get(doc, "unset")))
		json_object_set_new(doc, "unset", json_array());
	text = json_dumps(doc, JSON_COMPACT);
	if (text)
		b64 = lang_b64(text);
	if (b64 && asprintf(&code, "%s%s%s", t->before, b64, t->after) < 0)
		code = NULL;
	free(b64);
	free(text);
	json_decref(doc);
	return code;
}

static const struct lang_env_tpl lang_cwd_tpls[] = {
	{"python", "__import__('os').chdir(__import__('base64').b64decode('",
	 "').decode('utf-8', 'surrogateescape'))"},
	{"javascript", "process.chdir(Buffer.from('", "', 'base64').toString('utf8'));"},
	{"typescript", "process.chdir(Buffer.from('", "', 'base64').toString('utf8'));"},
	{"bash", "cd -- \"$(printf %s '", "' | base64 -d)\""},
};

char *lang_cwd_code(const char *language, const char *cwd)
{
	char *b64, *code = NULL;

	for (size_t i = 0; i < sizeof(lang_cwd_tpls) / sizeof(*lang_cwd_tpls);
	     i++) {
		const struct lang_env_tpl *t = &lang_cwd_tpls[i];
		if (strcmp(t->language, language) != 0)
			continue;
		b64 = lang_b64(cwd);
		if (b64 && asprintf(&code, "%s%s%s", t->before, b64, t->after) < 0)
			code = NULL;
		free(b64);
		return code;
	}
	return NULL;
}
