/*
 * kspec: finding and reading Jupyter kernelspecs (kernel.json).
 *
 * A kernelspec is a directory named after the kernel holding kernel.json.
 * The search path, first hit wins: the daemon's own extra dirs (option
 * --kernel-path, colon-separated, each a directory of kernelspec dirs), then
 * each $JUPYTER_PATH entry + "/kernels", $JUPYTER_DATA_DIR/kernels (default
 * ~/.local/share/jupyter/kernels), /usr/local/share/jupyter/kernels,
 * /usr/share/jupyter/kernels. Lookup by language: a kernelspec whose name
 * equals the language (case-insensitive; "python" is an alias of "python3"),
 * else the first (in search order, then name order) whose "language" field
 * equals it case-insensitively. Pure file reading; any thread, except the
 * cache (struct kspec_cache), which the daemon's loop thread owns.
 */
#ifndef E2BCI_KSPEC_H
#define E2BCI_KSPEC_H

#include <stdbool.h>
#include <stddef.h>

struct kspec {
	char *name;  /* directory name */
	char *dir;   /* absolute path of the kernelspec directory */
	char **argv; /* NULL-terminated, unsubstituted */
	size_t argc;
	char *display_name;	/* "" when absent */
	char *language;		/* "" when absent */
	bool interrupt_message; /* interrupt_mode == "message" */
	char **env; /* NULL-terminated "KEY=VALUE" after ${VAR} expansion */
	size_t nenv;
	/* metadata["e2b-ci"]["check"]: commands (NULL-terminated argv
	 * vectors, unsubstituted; the list NULL-terminated) that e2b-ci
	 * --check runs to see that the kernel can start, e.g. our kernel
	 * host's launch.sh --check. NULL when absent. */
	char ***check;
};

/* Reads dir/kernel.json; name is the kernelspec name. Returns a new kspec or
 * NULL, with a reason in err (argv missing/empty/not strings, bad JSON,
 * unreadable file). */
struct kspec *kspec_load(const char *dir, const char *name, char *err,
			 size_t errlen);

/* The same from the text of a kernel.json already in memory (len bytes, need
 * not be NUL-terminated); dir is the kernelspec directory it belongs to
 * (made absolute, as k->dir) and names the file in reasons. Returns a new
 * kspec or NULL, with a reason in err as kspec_load gives it. */
struct kspec *kspec_parse(const char *json, size_t len, const char *dir,
			  const char *name, char *err, size_t errlen);
void kspec_free(struct kspec *k);

/* Builds the search path list described above. extra may be NULL or a
 * colon-separated list. Returns a NULL-terminated array of malloc'd strings
 * (free with kspec_strv_free) or NULL on ENOMEM. */
char **kspec_search_path(const char *extra);
void kspec_strv_free(char **v);

/* Finds the kernelspec for lang (already normalized) on path. Returns a new
 * kspec or NULL when none matches or none of the candidates parses. */
struct kspec *kspec_find(char *const *path, const char *lang);

/* Lists every kernelspec on path (first hit per name), for logs and --check.
 * Returns a NULL-terminated array of new kspecs (free each and the array)
 * or NULL on ENOMEM. */
struct kspec **kspec_list(char *const *path);

/* argv with {connection_file}, {resource_dir} (k->dir) and {prefix} ("/usr")
 * substituted in every element. Returns a NULL-terminated malloc'd vector
 * (kspec_strv_free) or NULL. */
char **kspec_argv(const struct kspec *k, const char *connection_file);
/* The same for another vector of k's (one of k->check). */
char **kspec_subst_argv(const struct kspec *k, char *const *v,
			const char *connection_file);

/* kspec_find, and for "typescript" without a spec of its own the
 * JavaScript kernel's spec (our runner serves both). A new kspec or NULL. */
struct kspec *kspec_resolve(char *const *path, const char *lang);

/* The daemon's kernelspecs: each language resolved once (kspec_resolve on
 * path), hit or miss, and kept until kspec_cache_cleanup. */
struct kspec_cache_entry;
struct kspec_cache {
	char **path; /* the search path (kspec_search_path), owned */
	struct kspec_cache_entry *head;
};

/* Builds the search path from extra (as kspec_search_path). Returns 0, or
 * -1 on ENOMEM. */
int kspec_cache_init(struct kspec_cache *c, const char *extra);
/* The kernelspec for a normalized language, looked up on first use and
 * logged when found. Borrowed (valid until the cleanup); NULL when none is
 * installed (a miss is cached too) or on ENOMEM. */
const struct kspec *kspec_cache_get(struct kspec_cache *c, const char *lang);
/* Frees every kernelspec and the path; accepts a zeroed cache. */
void kspec_cache_cleanup(struct kspec_cache *c);

#endif
