/*
 * req: validation of request bodies, before anything touches a context.
 *
 * Parses and checks the JSON bodies of POST /execute and POST /contexts and
 * normalizes language names. On failure it returns the HTTP status to answer
 * and writes a plain-text reason for the client. Pure functions; any thread.
 */
#ifndef E2BCI_REQ_H
#define E2BCI_REQ_H

#include <jansson.h>
#include <stddef.h>

struct req_execute {
	char *code;	  /* owned, never NULL after success */
	size_t code_len;  /* bytes, code may hold NUL */
	char *context_id; /* owned or NULL (absent or null) */
	char *language;	  /* owned, normalized, or NULL (absent or null) */
	json_t *env_vars; /* owned object of string -> string, or NULL */
};

struct req_context {
	char *language; /* owned, normalized; "python" when absent/null/empty */
	char *cwd; /* owned or NULL (absent/null/empty: caller's default) */
};

/* Parses body (len bytes, need not be NUL-terminated). Returns 0, or an HTTP
 * status: 400 for a body that is not a JSON object or for both context_id and
 * language set, 422 for schema violations (code missing or not a string,
 * context_id/language not string or null, env_vars not an object of strings
 * or null). err receives the reason (NUL-terminated, truncated to errlen). */
int req_parse_execute(const char *body, size_t len, struct req_execute *out,
		      char *err, size_t errlen);
void req_execute_cleanup(struct req_execute *r);

/* Same for POST /contexts; an empty body is the same as {}. */
int req_parse_context(const char *body, size_t len, struct req_context *out,
		      char *err, size_t errlen);
void req_context_cleanup(struct req_context *r);

/* Lower-cases and trims in; "" -> "python", "js" -> "javascript",
 * "ts" -> "typescript". Returns a new malloc'd string or NULL (ENOMEM). */
char *req_normalize_language(const char *in);

#endif
