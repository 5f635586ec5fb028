/*
 * lang: what the daemon must say to a kernel in its own language.
 *
 * Helper cells are generated here: setting environment variables inside the
 * kernel process, putting back what an execution's env_vars overrode, and
 * changing the working directory. Values travel encoded inside the generated
 * code (base64, or hex escapes for bash), so no byte of a user-supplied name
 * or value is ever parsed as code (quotes, backslashes, newlines, non-ASCII
 * all arrive verbatim), and a value of any size fits (Java gets its string
 * constants in pieces below the class file's 65535-byte limit). Pure
 * functions; any thread.
 */
#ifndef E2BCI_LANG_H
#define E2BCI_LANG_H

#include <jansson.h>
#include <stdbool.h>

/* Code that sets every key of set (object of string -> string) in the
 * kernel's process environment, so child processes see it too. With save,
 * the kernel first remembers, inside itself, the value each of these
 * variables has now or that it is unset (a variable remembered already
 * keeps its first value), for lang_env_restore_code. Returns a new malloc'd
 * string, or NULL when the language has no helper (the caller logs and
 * skips) or on ENOMEM. */
char *lang_env_code(const char *language, json_t *set, bool save);

/* Code that puts back every variable remembered by lang_env_code(..., true)
 * exactly as it was (same value, or unset) and forgets them; it does
 * nothing when nothing is remembered. Returns a new malloc'd string, or NULL
 * when the language has no helper or on ENOMEM. */
char *lang_env_restore_code(const char *language);

/* Code that changes the kernel's working directory to cwd. Returns a new
 * malloc'd string, or NULL when the language cannot (or on ENOMEM). */
char *lang_cwd_code(const char *language, const char *cwd);

#endif
