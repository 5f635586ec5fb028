/*
 * req: validation of request bodies, before anything touches a context.
 *
 * Owns the schema checks of POST /execute and POST /contexts (see
 * docs/http-contract.md, "Request bodies") and language normalization. A body
 * that is not a JSON object answers 400, a wrong field 422, and both
 * context_id and language 400, checked after the schema as the reference
 * server does. Unknown keys are ignored, as the SDKs may add some.
 *
 * Invariants: on success every string handed out is a NUL-terminated copy
 * the caller owns; on failure the output struct is all NULL, so cleanup is
 * always safe. Reasons are one line of printable ASCII and never echo more
 * than REQ_ECHO_MAX bytes of the client's input.
 *
 * Bodies are parsed with JSON_ALLOW_NUL so that code may hold U+0000, as it
 * may with the reference server. ipykernel does not report such code as an
 * error: its handler raises ("source code string cannot contain null
 * bytes") and it goes idle without a reply, which run.c turns into an
 * UnexpectedEndOfExecution error line.
 * Strings that end up as C strings elsewhere (context ids, language names,
 * cwd, env var names and values) must not hold NUL: a silently truncated
 * value would reach the wrong context or the wrong variable.
 *
 * Threads: pure functions; any thread. It does not know which contexts or
 * languages exist: that is for the caller to decide (404/500).
 */
#include "req.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"

#define REQ_ECHO_MAX 100
/* The fixed part of a jansson error message is short; its text may quote a
 * token of the input, which the echo bound covers anyway. */
#define REQ_JERR_MAX 160

/* Copies at most max bytes of s (len bytes) into dst as printable ASCII:
 * anything else (controls, newlines, bytes of multi-byte characters) becomes
 * '?', so a reason stays one plain line; "..." marks a cut. dst must hold
 * max + 4 bytes. */
static void echo(char *dst, const char *s, size_t len, size_t max)
{
	size_t i, n = len < max ? len : max;

	for (i = 0; i < n; i++)
		dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (len > max) {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
}

static char *dupn(const char *s, size_t len)
{
	char *r = malloc(len + 1);

	if (!r)
		return NULL;
	memcpy(r, s, len);
	r[len] = '\0';
	return r;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
	       c == '\r';
}

/* Parses body into a JSON object in *root (new reference). Returns 0, 400
 * or 500 (out of memory). */
static int load_object(const char *body, size_t len, json_t **root, char *err,
		       size_t errlen)
{
	char text[REQ_JERR_MAX + 4];
	json_error_t jerr;

	/* JSON_DECODE_ANY lets "1" or "null" parse, so the client hears that
	 * the body must be an object rather than a lexer complaint. */
	*root = json_loadb(body ? body : "", body ? len : 0,
			   JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!*root) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return errmsg_set(err, errlen, 500, "Out of memory");
		echo(text, jerr.text, strlen(jerr.text), REQ_JERR_MAX);
		return errmsg_set(err, errlen, 400,
				  "Invalid JSON body: %s at line %d column %d",
				  text, jerr.line, jerr.column);
	}
	if (!json_is_object(*root)) {
		json_decref(*root);
		*root = NULL;
		return errmsg_set(err, errlen, 400,
				  "Request body must be a JSON object");
	}
	return 0;
}

/* Reads an optional string field: absent or null leaves *out NULL; a string
 * without NUL bytes is returned borrowed; anything else is a 422. */
static int opt_string(json_t *root, const char *key, json_t **out, char *err,
		      size_t errlen)
{
	json_t *v = json_object_get(root, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return errmsg_set(err, errlen, 422,
				  "Field '%s' must be a string or null", key);
	if (memchr(json_string_value(v), '\0', json_string_length(v)))
		return errmsg_set(err, errlen, 422,
				  "Field '%s' must not contain NUL bytes", key);
	*out = v;
	return 0;
}

/* Checks one env_vars entry: a usable variable name and a string value that
 * setenv and the kernels can take verbatim. Returns 0 or 422. */
static int check_env_entry(const char *key, json_t *v, char *err, size_t errlen)
{
	char k[REQ_ECHO_MAX + 4];

	echo(k, key, strlen(key), REQ_ECHO_MAX);
	if (!*key)
		return errmsg_set(err, errlen, 422,
				  "env_vars keys must not be empty");
	if (strchr(key, '='))
		return errmsg_set(err, errlen, 422,
				  "env_vars key '%s' must not contain '='", k);
	if (!json_is_string(v))
		return errmsg_set(
		    err, errlen, 422,
		    "env_vars value for key '%s' must be a string", k);
	if (memchr(json_string_value(v), '\0', json_string_length(v)))
		return errmsg_set(
		    err, errlen, 422,
		    "env_vars value for key '%s' must not contain NUL "
		    "bytes",
		    k);
	return 0;
}

/* Reads env_vars: absent or null leaves *out NULL; an object of strings is
 * returned borrowed; anything else is a 422. */
static int opt_env(json_t *root, json_t **out, char *err, size_t errlen)
{
	json_t *env = json_object_get(root, "env_vars");
	void *it;
	int rc;

	*out = NULL;
	if (!env || json_is_null(env))
		return 0;
	if (!json_is_object(env))
		return errmsg_set(err, errlen, 422,
				  "Field 'env_vars' must be an object or null");
	for (it = json_object_iter(env); it;
	     it = json_object_iter_next(env, it)) {
		/* jansson refuses NUL in keys when parsing, so a key is whole
		 * as a C string. */
		rc = check_env_entry(json_object_iter_key(it),
				     json_object_iter_value(it), err, errlen);
		if (rc)
			return rc;
	}
	*out = env;
	return 0;
}

/* Fills out from the validated fields (borrowed). Returns 0 or 500. */
static int fill_execute(struct req_execute *out, json_t *code, json_t *ctx,
			json_t *lang, json_t *env, char *err, size_t errlen)
{
	out->code_len = json_string_length(code);
	out->code = dupn(json_string_value(code), out->code_len);
	if (!out->code)
		goto oom;
	if (ctx && !(out->context_id = strdup(json_string_value(ctx))))
		goto oom;
	if (lang &&
	    !(out->language = req_normalize_language(json_string_value(lang))))
		goto oom;
	out->env_vars = json_incref(env);
	return 0;
oom:
	return errmsg_set(err, errlen, 500, "Out of memory");
}

int req_parse_execute(const char *body, size_t len, struct req_execute *out,
		      char *err, size_t errlen)
{
	json_t *root = NULL, *code, *ctx, *lang, *env;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = load_object(body, len, &root, err, errlen);
	if (rc)
		goto out;
	code = json_object_get(root, "code");
	if (!code) {
		rc = errmsg_set(err, errlen, 422, "Field 'code' is required");
		goto out;
	}
	if (!json_is_string(code)) {
		rc = errmsg_set(err, errlen, 422,
				"Field 'code' must be a string");
		goto out;
	}
	if ((rc = opt_string(root, "context_id", &ctx, err, errlen)) ||
	    (rc = opt_string(root, "language", &lang, err, errlen)) ||
	    (rc = opt_env(root, &env, err, errlen)))
		goto out;
	/* An empty context_id means "not given", as in the reference. */
	if (ctx && json_string_length(ctx) == 0)
		ctx = NULL;
	if (ctx && lang) {
		rc = errmsg_set(
		    err, errlen, 400,
		    "Only one of context_id or language can be provided");
		goto out;
	}
	rc = fill_execute(out, code, ctx, lang, env, err, errlen);
out:
	if (rc)
		req_execute_cleanup(out);
	json_decref(root);
	return rc;
}

void req_execute_cleanup(struct req_execute *r)
{
	if (!r)
		return;
	free(r->code);
	free(r->context_id);
	free(r->language);
	json_decref(r->env_vars);
	memset(r, 0, sizeof(*r));
}

static int blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!is_space(s[i]))
			return 0;
	return 1;
}

int req_parse_context(const char *body, size_t len, struct req_context *out,
		      char *err, size_t errlen)
{
	json_t *root = NULL, *lang = NULL, *cwd = NULL;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	/* No body (or only whitespace) is the same as {}. */
	if (body && !blank(body, len)) {
		if ((rc = load_object(body, len, &root, err, errlen)) ||
		    (rc = opt_string(root, "language", &lang, err, errlen)) ||
		    (rc = opt_string(root, "cwd", &cwd, err, errlen)))
			goto out;
	}
	/* An empty cwd means "not given": the caller applies its default. */
	if (cwd && json_string_length(cwd) == 0)
		cwd = NULL;
	out->language =
	    req_normalize_language(lang ? json_string_value(lang) : "");
	if (cwd)
		out->cwd = strdup(json_string_value(cwd));
	if (!out->language || (cwd && !out->cwd))
		rc = errmsg_set(err, errlen, 500, "Out of memory");
out:
	if (rc)
		req_context_cleanup(out);
	json_decref(root);
	return rc;
}

void req_context_cleanup(struct req_context *r)
{
	if (!r)
		return;
	free(r->language);
	free(r->cwd);
	memset(r, 0, sizeof(*r));
}

/* The short names clients use for languages whose kernels are longer. */
static const struct {
	const char *alias;
	const char *name;
} req_aliases[] = {
    {"", "python"},
    {"js", "javascript"},
    {"ts", "typescript"},
};

char *req_normalize_language(const char *in)
{
	size_t len, i;
	char *r;

	if (!in)
		in = "";
	while (is_space(*in))
		in++;
	len = strlen(in);
	while (len && is_space(in[len - 1]))
		len--;
	r = dupn(in, len);
	if (!r)
		return NULL;
	/* ASCII only: a locale-dependent tolower() could rewrite bytes of a
	 * multi-byte character. */
	for (i = 0; i < len; i++)
		if (r[i] >= 'A' && r[i] <= 'Z')
			r[i] = (char)(r[i] - 'A' + 'a');
	for (i = 0; i < sizeof(req_aliases) / sizeof(req_aliases[0]); i++) {
		if (strcmp(r, req_aliases[i].alias) == 0) {
			free(r);
			return strdup(req_aliases[i].name);
		}
	}
	return r;
}
