/*
 * lang: what the daemon must say to a kernel in its own language.
 *
 * Helper cells are generated here: setting and unsetting environment
 * variables inside the kernel process. Values travel base64-encoded inside
 * the generated code, so no byte of a user-supplied name or value is ever
 * parsed as code (quotes, backslashes, newlines, non-ASCII all arrive
 * verbatim). Pure functions; any thread.
 */
#ifndef E2BCI_LANG_H
#define E2BCI_LANG_H

#include <jansson.h>

/* Code that sets every key of set (object of string -> string) and unsets
 * every name in unset (array of strings, may be NULL) in the kernel's
 * process environment. Returns a new malloc'd string, or NULL when the
 * language has no helper (the caller logs and skips) or on ENOMEM. */
char *lang_env_code(const char *language, json_t *set, json_t *unset);

/* Code that changes the kernel's working directory to cwd. Returns a new
 * malloc'd string, or NULL when the language cannot (or on ENOMEM). */
char *lang_cwd_code(const char *language, const char *cwd);

#endif
