/*
 * kspec: finding and reading Jupyter kernelspecs (kernel.json).
 *
 * Owns the search path (the daemon's extra dirs, $JUPYTER_PATH/kernels, the
 * user data dir, /usr/local/share and /usr/share, in that order), the
 * kernel.json parser and the argv placeholder substitution. A kernelspec is
 * a directory holding kernel.json; its name is the directory name, matched
 * case-insensitively. The first *valid* spec of a name wins: a malformed
 * kernel.json is logged and skipped so that a later copy can take over, as
 * a broken user-level install must not hide a working system one.
 *
 * Invariants: a struct kspec returned from here always has argc >= 1, a
 * non-empty argv[0], and NULL-terminated argv and env vectors whose strings
 * it owns. Everything read is bounded: kernel.json size, entries per
 * directory, search path length, vector and string sizes.
 *
 * Threads: pure file reading plus getenv(); any thread, as long as nobody
 * changes the environment concurrently (skipped specs are reported with
 * log_warnx, which writes each line with one write(2) and no shared state).
 * It does not resolve argv[0] on PATH, start processes, or merge the spec
 * env into the daemon's environment: that is the kernel module's job (and
 * check.c's, for --check).
 */
#include "kspec.h"

#include "dbuf.h"
#include "errmsg.h"
#include "log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define KSPEC_FILE_MAX (1024 * 1024) /* bytes of kernel.json */
#define KSPEC_DIR_MAX  1024	     /* kernelspecs read per directory */
#define KSPEC_PATH_MAX 64	     /* search path entries */
#define KSPEC_VEC_MAX  1024	     /* argv elements, env entries */
#define KSPEC_STR_MAX  (1024 * 1024) /* one expanded or substituted string */
#define KSPEC_PREFIX   "/usr"	     /* {prefix}: where Debian's Jupyter is */

void kspec_strv_free(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

void kspec_free(struct kspec *k)
{
	if (k == NULL)
		return;
	free(k->name);
	free(k->dir);
	kspec_strv_free(k->argv);
	free(k->display_name);
	free(k->language);
	kspec_strv_free(k->env);
	for (size_t i = 0; k->check != NULL && k->check[i] != NULL; i++)
		kspec_strv_free(k->check[i]);
	free(k->check);
	free(k);
}

/* Returns dir as a new absolute path without trailing slashes, or NULL. */
static char *kspec_abspath(const char *dir)
{
	struct dbuf b = DBUF_INIT(KSPEC_STR_MAX);
	char cwd[PATH_MAX];
	size_t n = strlen(dir);

	if (dir[0] != '/') {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return NULL;
		dbuf_add(&b, cwd, strlen(cwd));
		if (strcmp(cwd, "/") != 0)
			dbuf_add(&b, "/", 1);
	}
	while (n > 1 && dir[n - 1] == '/')
		n--;
	dbuf_add(&b, dir, n);
	return dbuf_take(&b, NULL);
}

/* Reads a whole regular file of at most KSPEC_FILE_MAX bytes. Returns a new
 * buffer (not NUL-terminated) and its length, or NULL with err set. */
static char *kspec_read(const char *path, size_t *lenp, char *err,
			size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t r;
	int fd, ok = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		errmsg_set(err, errlen, -1, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		errmsg_set(err, errlen, -1, "%s: not a regular file", path);
		goto out;
	}
	/* One byte more than the cap, so an oversized file is detected even
	 * when st_size lied (a file growing while we read it). */
	buf = malloc(KSPEC_FILE_MAX + 1);
	if (buf == NULL) {
		errmsg_set(err, errlen, -1, "%s: out of memory", path);
		goto out;
	}
	while (len <= KSPEC_FILE_MAX) {
		r = read(fd, buf + len, KSPEC_FILE_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			errmsg_set(err, errlen, -1, "%s: %s", path,
				   strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > KSPEC_FILE_MAX) {
		errmsg_set(err, errlen, -1, "%s: larger than %d bytes", path,
			   KSPEC_FILE_MAX);
		goto out;
	}
	ok = 1;
	*lenp = len;
out:
	close(fd);
	if (!ok) {
		free(buf);
		buf = NULL;
	}
	return buf;
}

/* Expands every ${NAME} in s from the environment; an unset NAME becomes
 * the empty string, a malformed reference stays as written. */
static char *kspec_expand(const char *s)
{
	struct dbuf b = DBUF_INIT(KSPEC_STR_MAX);
	const char *p = s, *end, *val;
	char name[256];
	size_t n, i;

	while (*p != '\0') {
		end = (p[0] == '$' && p[1] == '{') ? strchr(p + 2, '}') : NULL;
		n = end != NULL ? (size_t)(end - (p + 2)) : 0;
		for (i = 0; i < n && (isalnum((unsigned char)p[2 + i]) ||
				      p[2 + i] == '_');
		     i++)
			;
		if (end == NULL || n == 0 || i != n || n >= sizeof(name)) {
			dbuf_add(&b, p, 1);
			p++;
			continue;
		}
		memcpy(name, p + 2, n);
		name[n] = '\0';
		val = getenv(name);
		if (val != NULL)
			dbuf_add(&b, val, strlen(val));
		p = end + 1;
	}
	return dbuf_take(&b, NULL);
}

/* Copies an optional string field; absent or null gives "". */
static int kspec_opt_str(json_t *root, const char *key, char **out, char *err,
			 size_t errlen)
{
	json_t *v = json_object_get(root, key);

	if (v != NULL && !json_is_null(v) && !json_is_string(v)) {
		errmsg_set(err, errlen, -1, "%s must be a string", key);
		return -EINVAL;
	}
	*out =
	    strdup(v != NULL && json_is_string(v) ? json_string_value(v) : "");
	if (*out == NULL) {
		errmsg_set(err, errlen, -1, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int kspec_parse_argv(struct kspec *k, json_t *root, char *err,
			    size_t errlen)
{
	json_t *argv = json_object_get(root, "argv"), *v;
	size_t i, n;

	n = json_is_array(argv) ? json_array_size(argv) : 0;
	if (n == 0 || n > KSPEC_VEC_MAX) {
		errmsg_set(err, errlen, -1,
			   "argv must be a non-empty array of "
			   "at most %d strings",
			   KSPEC_VEC_MAX);
		return -EINVAL;
	}
	k->argv = calloc(n + 1, sizeof(char *));
	if (k->argv == NULL)
		goto nomem;
	json_array_foreach(argv, i, v)
	{
		if (!json_is_string(v) ||
		    (i == 0 && json_string_length(v) == 0)) {
			errmsg_set(err, errlen, -1, "argv[%zu] must be a %s", i,
				   i == 0 ? "non-empty string" : "string");
			return -EINVAL;
		}
		k->argv[i] = strdup(json_string_value(v));
		if (k->argv[i] == NULL)
			goto nomem;
		k->argc = i + 1;
	}
	return 0;
nomem:
	errmsg_set(err, errlen, -1, "out of memory");
	return -ENOMEM;
}

/* Builds "KEY=VALUE" for one env entry, value ${VAR}-expanded. */
static char *kspec_env_entry(const char *key, json_t *v)
{
	struct dbuf b = DBUF_INIT(KSPEC_STR_MAX);
	char *val = kspec_expand(json_string_value(v));

	if (val == NULL)
		return NULL;
	dbuf_add(&b, key, strlen(key));
	dbuf_add(&b, "=", 1);
	dbuf_add(&b, val, strlen(val));
	free(val);
	return dbuf_take(&b, NULL);
}

static int kspec_parse_env(struct kspec *k, json_t *root, char *err,
			   size_t errlen)
{
	json_t *env = json_object_get(root, "env"), *v;
	const char *key;
	size_t n = 0;

	if (env != NULL && !json_is_null(env) && !json_is_object(env)) {
		errmsg_set(err, errlen, -1, "env must be an object");
		return -EINVAL;
	}
	if (json_is_object(env))
		n = json_object_size(env);
	if (n > KSPEC_VEC_MAX) {
		errmsg_set(err, errlen, -1, "env has more than %d entries",
			   KSPEC_VEC_MAX);
		return -EINVAL;
	}
	k->env = calloc(n + 1, sizeof(char *));
	if (k->env == NULL)
		goto nomem;
	if (n == 0)
		return 0;
	json_object_foreach(env, key, v)
	{
		if (key[0] == '\0' || strchr(key, '=') != NULL ||
		    !json_is_string(v)) {
			errmsg_set(err, errlen, -1,
				   "env entry '%s' must be a "
				   "string with a name without '='",
				   key);
			return -EINVAL;
		}
		k->env[k->nenv] = kspec_env_entry(key, v);
		if (k->env[k->nenv] == NULL)
			goto nomem;
		k->nenv++;
	}
	return 0;
nomem:
	errmsg_set(err, errlen, -1, "out of memory or value too long");
	return -ENOMEM;
}

/* A JSON array of n strings as a NULL-terminated vector; NULL if it is
 * not one or on ENOMEM. */
static char **kspec_strv_of(json_t *a)
{
	size_t i, n = json_is_array(a) ? json_array_size(a) : 0;
	char **v;
	json_t *e;

	if (n == 0 || n > KSPEC_VEC_MAX || !(v = calloc(n + 1, sizeof(*v))))
		return NULL;
	json_array_foreach(a, i, e)
	{
		if (!json_is_string(e) ||
		    !(v[i] = strdup(json_string_value(e))))
			break;
	}
	if (i < n || v[0][0] == '\0') {
		kspec_strv_free(v);
		return NULL;
	}
	return v;
}

/* metadata["e2b-ci"]["check"]: a list of commands, each a non-empty list
 * of strings. Optional; anything else there makes the kernelspec invalid,
 * since only our own kernelspecs carry it. */
static int kspec_parse_check(struct kspec *k, json_t *root, char *err,
			     size_t errlen)
{
	json_t *list = json_object_get(
	    json_object_get(json_object_get(root, "metadata"), "e2b-ci"),
	    "check");
	size_t i, n = json_is_array(list) ? json_array_size(list) : 0;
	json_t *cmd;

	if (list == NULL)
		return 0;
	if (n == 0 || n > KSPEC_VEC_MAX ||
	    !(k->check = calloc(n + 1, sizeof(*k->check))))
		goto bad;
	json_array_foreach(list, i, cmd)
	{
		if (!(k->check[i] = kspec_strv_of(cmd)))
			goto bad;
	}
	return 0;
bad:
	errmsg_set(err, errlen, -1,
		   "metadata.e2b-ci.check must be a list of commands, each "
		   "a non-empty list of strings");
	return -EINVAL;
}

static int kspec_parse_root(struct kspec *k, json_t *root, char *err,
			    size_t errlen)
{
	json_t *im;
	int r;

	if (!json_is_object(root)) {
		errmsg_set(err, errlen, -1, "not a JSON object");
		return -EINVAL;
	}
	if ((r = kspec_parse_argv(k, root, err, errlen)) != 0 ||
	    (r = kspec_opt_str(root, "display_name", &k->display_name, err,
			       errlen)) != 0 ||
	    (r = kspec_opt_str(root, "language", &k->language, err, errlen)) !=
		0 ||
	    (r = kspec_parse_env(k, root, err, errlen)) != 0 ||
	    (r = kspec_parse_check(k, root, err, errlen)) != 0)
		return r;
	/* jupyter_client treats interrupt_mode as a caseless enum with
	 * "signal" as the default. */
	im = json_object_get(root, "interrupt_mode");
	if (im == NULL || json_is_null(im))
		return 0;
	if (json_is_string(im) &&
	    strcasecmp(json_string_value(im), "message") == 0)
		k->interrupt_message = true;
	else if (!json_is_string(im) ||
		 strcasecmp(json_string_value(im), "signal") != 0) {
		return errmsg_set(
		    err, errlen, -EINVAL,
		    "interrupt_mode must be \"signal\" or \"message\"");
	}
	return 0;
}

struct kspec *kspec_parse(const char *json, size_t len, const char *dir,
			  const char *name, char *err, size_t errlen)
{
	struct kspec *k = NULL;
	struct dbuf b = DBUF_INIT(KSPEC_STR_MAX);
	json_error_t jerr;
	json_t *root = NULL;
	char *path = NULL, why[200];
	int ok = 0;

	errmsg_set(err, errlen, -1, "out of memory");
	k = calloc(1, sizeof(*k));
	if (k == NULL || (k->name = strdup(name)) == NULL ||
	    (k->dir = kspec_abspath(dir)) == NULL)
		goto out;
	/* The path only names the file in reasons. */
	dbuf_add(&b, k->dir, strlen(k->dir));
	dbuf_add(&b, "/kernel.json", strlen("/kernel.json"));
	if ((path = dbuf_take(&b, NULL)) == NULL)
		goto out;
	root = json_loadb(json, len, 0, &jerr);
	if (root == NULL) {
		errmsg_set(err, errlen, -1, "%s: line %d: %s", path, jerr.line,
			   jerr.text);
		goto out;
	}
	if (kspec_parse_root(k, root, why, sizeof(why)) != 0) {
		errmsg_set(err, errlen, -1, "%s: %s", path, why);
		goto out;
	}
	ok = 1;
out:
	json_decref(root);
	free(path);
	if (!ok) {
		kspec_free(k);
		k = NULL;
	}
	return k;
}

struct kspec *kspec_load(const char *dir, const char *name, char *err,
			 size_t errlen)
{
	struct kspec *k = NULL;
	struct dbuf b = DBUF_INIT(KSPEC_STR_MAX);
	char *abs = NULL, *path = NULL, *text = NULL;
	size_t len = 0;

	errmsg_set(err, errlen, -1, "out of memory");
	if ((abs = kspec_abspath(dir)) == NULL)
		goto out;
	dbuf_add(&b, abs, strlen(abs));
	dbuf_add(&b, "/kernel.json", strlen("/kernel.json"));
	if ((path = dbuf_take(&b, NULL)) == NULL)
		goto out;
	if ((text = kspec_read(path, &len, err, errlen)) == NULL)
		goto out;
	k = kspec_parse(text, len, abs, name, err, errlen);
out:
	free(text);
	free(path);
	free(abs);
	return k;
}

/* A growable NULL-terminated vector of owned strings holding at most max
 * entries; failed is sticky. */
struct kspec_vec {
	char **v;
	size_t n, max;
	int failed;
};

static int kspec_vec_has(const struct kspec_vec *v, const char *s)
{
	size_t i;

	for (i = 0; i < v->n; i++) {
		if (strcmp(v->v[i], s) == 0)
			return 1;
	}
	return 0;
}

/* Appends a + b (b may be "") unless already present or full. */
static void kspec_vec_add(struct kspec_vec *v, const char *a, size_t alen,
			  const char *b)
{
	struct dbuf s = DBUF_INIT(KSPEC_STR_MAX);
	char **nv, *str;

	if (v->failed || alen == 0)
		return;
	dbuf_add(&s, a, alen);
	dbuf_add(&s, b, strlen(b));
	if ((str = dbuf_take(&s, NULL)) == NULL) {
		v->failed = 1;
		return;
	}
	if (kspec_vec_has(v, str) || v->n >= v->max) {
		free(str);
		return;
	}
	nv = realloc(v->v, (v->n + 2) * sizeof(char *));
	if (nv == NULL) {
		free(str);
		v->failed = 1;
		return;
	}
	v->v = nv;
	v->v[v->n++] = str;
	v->v[v->n] = NULL;
}

/* Appends every non-empty entry of the colon-separated list plus suffix. */
static void kspec_vec_add_list(struct kspec_vec *v, const char *list,
			       const char *suffix)
{
	const char *p = list, *colon;

	while (p != NULL && *p != '\0') {
		colon = strchr(p, ':');
		kspec_vec_add(v, p, colon ? (size_t)(colon - p) : strlen(p),
			      suffix);
		p = colon ? colon + 1 : NULL;
	}
}

char **kspec_search_path(const char *extra)
{
	struct kspec_vec v = {.max = KSPEC_PATH_MAX};
	const char *data = getenv("JUPYTER_DATA_DIR"), *home = getenv("HOME");
	const char *sys[] = {"/usr/local/share/jupyter/kernels",
			     "/usr/share/jupyter/kernels"};
	size_t i;

	kspec_vec_add_list(&v, extra, "");
	kspec_vec_add_list(&v, getenv("JUPYTER_PATH"), "/kernels");
	if (data != NULL && *data != '\0')
		kspec_vec_add(&v, data, strlen(data), "/kernels");
	else if (home != NULL && *home != '\0')
		kspec_vec_add(&v, home, strlen(home),
			      "/.local/share/jupyter/kernels");
	for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		kspec_vec_add(&v, sys[i], strlen(sys[i]), "");
	if (!v.failed && v.v == NULL)
		v.v = calloc(1, sizeof(char *));
	if (v.failed || v.v == NULL) {
		kspec_strv_free(v.v);
		return NULL;
	}
	return v.v;
}

static int kspec_valid_name(const char *s)
{
	size_t i;

	if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '.' && s[i] != '_')
			return 0;
	}
	return i > 0;
}

static int kspec_name_cmp(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	int r = strcasecmp(x, y);

	return r != 0 ? r : strcmp(x, y);
}

/* Returns the sorted names of the kernelspec dirs (valid name, containing
 * kernel.json) in dir as a new vector; an unreadable dir gives an empty
 * one. NULL only on ENOMEM. */
static char **kspec_scan(const char *dir)
{
	struct kspec_vec v = {.max = KSPEC_DIR_MAX};
	struct dirent *de;
	char probe[NAME_MAX + sizeof("/kernel.json")];
	DIR *d = opendir(dir);

	while (d != NULL && (de = readdir(d)) != NULL && !v.failed) {
		if (!kspec_valid_name(de->d_name))
			continue;
		snprintf(probe, sizeof(probe), "%s/kernel.json", de->d_name);
		if (faccessat(dirfd(d), probe, F_OK, 0) != 0)
			continue;
		if (v.n >= KSPEC_DIR_MAX) {
			log_warnx("kernelspecs: more than %d in %s, ignoring "
				  "the rest",
				  KSPEC_DIR_MAX, dir);
			break;
		}
		kspec_vec_add(&v, de->d_name, strlen(de->d_name), "");
	}
	if (d != NULL)
		closedir(d);
	if (!v.failed && v.v == NULL)
		v.v = calloc(1, sizeof(char *));
	if (v.failed || v.v == NULL) {
		kspec_strv_free(v.v);
		return NULL;
	}
	qsort(v.v, v.n, sizeof(char *), kspec_name_cmp);
	return v.v;
}

/* Loads dir/name, logging why when it is malformed. */
static struct kspec *kspec_try(const char *dir, const char *name)
{
	struct dbuf b = DBUF_INIT(KSPEC_STR_MAX);
	struct kspec *k;
	char err[512], *sub;

	dbuf_add(&b, dir, strlen(dir));
	dbuf_add(&b, "/", 1);
	dbuf_add(&b, name, strlen(name));
	if ((sub = dbuf_take(&b, NULL)) == NULL)
		return NULL;
	k = kspec_load(sub, name, err, sizeof(err));
	if (k == NULL)
		log_warnx("kernelspec %s skipped: %s", name, err);
	free(sub);
	return k;
}

/* The first valid spec named want (case-insensitively) on path. */
static struct kspec *kspec_find_name(char *const *path, const char *want)
{
	struct kspec *k = NULL;
	char **names;
	size_t i, j;

	for (i = 0; path[i] != NULL && k == NULL; i++) {
		names = kspec_scan(path[i]);
		for (j = 0; names != NULL && names[j] != NULL && k == NULL;
		     j++) {
			if (strcasecmp(names[j], want) == 0)
				k = kspec_try(path[i], names[j]);
		}
		kspec_strv_free(names);
	}
	return k;
}

static void kspec_list_free(struct kspec **list)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; list[i] != NULL; i++)
		kspec_free(list[i]);
	free(list);
}

static int kspec_listed(struct kspec *const *list, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcasecmp(list[i]->name, name) == 0)
			return 1;
	}
	return 0;
}

/* Adds the valid specs of one directory whose names are not yet listed.
 * Returns 0 or -ENOMEM; *listp stays NULL-terminated either way. */
static int kspec_list_dir(struct kspec ***listp, size_t *np, const char *dir)
{
	struct kspec **nv, *k;
	char **names = kspec_scan(dir);
	size_t j;
	int r = 0;

	if (names == NULL)
		return -ENOMEM;
	for (j = 0; names[j] != NULL && *np < KSPEC_DIR_MAX; j++) {
		if (kspec_listed(*listp, *np, names[j]))
			continue;
		if ((k = kspec_try(dir, names[j])) == NULL)
			continue;
		// NOLINTNEXTLINE(bugprone-sizeof-expression): pointers
		nv = realloc(*listp, (*np + 2) * sizeof(*nv));
		if (nv == NULL) {
			kspec_free(k);
			r = -ENOMEM;
			goto out;
		}
		nv[(*np)++] = k;
		nv[*np] = NULL;
		*listp = nv;
	}
out:
	kspec_strv_free(names);
	return r;
}

struct kspec **kspec_list(char *const *path)
{
	// NOLINTNEXTLINE(bugprone-sizeof-expression): pointers
	struct kspec **list = calloc(1, sizeof(*list));
	size_t i, n = 0;

	if (list == NULL)
		return NULL;
	for (i = 0; path != NULL && path[i] != NULL; i++) {
		if (kspec_list_dir(&list, &n, path[i]) != 0) {
			kspec_list_free(list);
			return NULL;
		}
	}
	return list;
}

/* The first listed spec whose language field equals lang. */
static struct kspec *kspec_find_language(char *const *path, const char *lang)
{
	struct kspec **list = kspec_list(path), *found = NULL;
	size_t i;

	for (i = 0; list != NULL && list[i] != NULL; i++) {
		if (found == NULL && strcasecmp(list[i]->language, lang) == 0)
			found = list[i];
		else
			kspec_free(list[i]);
	}
	free(list);
	return found;
}

struct kspec *kspec_find(char *const *path, const char *lang)
{
	struct kspec *k;

	if (path == NULL || lang == NULL || lang[0] == '\0')
		return NULL;
	k = kspec_find_name(path, lang);
	/* jupyter_client maps "python" to the native "python3" spec and the
	 * E2B SDK relies on it, but a spec really named python comes first. */
	if (k == NULL && strcasecmp(lang, "python") == 0)
		k = kspec_find_name(path, "python3");
	if (k == NULL)
		k = kspec_find_language(path, lang);
	return k;
}

/* Replaces each keys[i] in s by vals[i]; returns a new string or NULL. */
static char *kspec_subst(const char *s, const char *const *keys,
			 const char *const *vals, size_t n)
{
	struct dbuf b = DBUF_INIT(KSPEC_STR_MAX);
	size_t i;

	while (*s != '\0') {
		for (i = 0; i < n; i++) {
			if (strncmp(s, keys[i], strlen(keys[i])) == 0)
				break;
		}
		if (i < n) {
			dbuf_add(&b, vals[i], strlen(vals[i]));
			s += strlen(keys[i]);
		} else {
			dbuf_add(&b, s, 1);
			s++;
		}
	}
	return dbuf_take(&b, NULL);
}

char **kspec_subst_argv(const struct kspec *k, char *const *argv,
			const char *connection_file)
{
	const char *keys[] = {"{connection_file}", "{resource_dir}",
			      "{prefix}"};
	const char *vals[3];
	char **v;
	size_t i, n = 0;

	if (k == NULL || argv == NULL || connection_file == NULL)
		return NULL;
	vals[0] = connection_file;
	vals[1] = k->dir;
	vals[2] = KSPEC_PREFIX;
	while (argv[n] != NULL)
		n++;
	v = calloc(n + 1, sizeof(char *));
	if (v == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		v[i] = kspec_subst(argv[i], keys, vals, 3);
		if (v[i] == NULL) {
			kspec_strv_free(v);
			return NULL;
		}
	}
	return v;
}

char **kspec_argv(const struct kspec *k, const char *connection_file)
{
	return k ? kspec_subst_argv(k, k->argv, connection_file) : NULL;
}

struct kspec *kspec_resolve(char *const *path, const char *lang)
{
	struct kspec *k = kspec_find(path, lang);

	if (k == NULL && lang != NULL && strcmp(lang, "typescript") == 0)
		k = kspec_find(path, "javascript");
	return k;
}

/* The cache */

struct kspec_cache_entry {
	char *language;
	struct kspec *spec; /* NULL: known to have none */
	struct kspec_cache_entry *next;
};

int kspec_cache_init(struct kspec_cache *c, const char *extra)
{
	c->head = NULL;
	c->path = kspec_search_path(extra);
	return c->path ? 0 : -1;
}

const struct kspec *kspec_cache_get(struct kspec_cache *c, const char *lang)
{
	struct kspec_cache_entry *e;

	for (e = c->head; e; e = e->next)
		if (strcmp(e->language, lang) == 0)
			return e->spec;
	e = calloc(1, sizeof(*e));
	if (!e || !(e->language = strdup(lang))) {
		free(e);
		return NULL;
	}
	e->spec = kspec_resolve(c->path, lang);
	if (e->spec)
		log_info("language %s -> kernelspec %s (%s)", lang,
			 e->spec->name, e->spec->dir);
	e->next = c->head;
	c->head = e;
	return e->spec;
}

void kspec_cache_cleanup(struct kspec_cache *c)
{
	while (c->head) {
		struct kspec_cache_entry *e = c->head;
		c->head = e->next;
		kspec_free(e->spec);
		free(e->language);
		free(e);
	}
	kspec_strv_free(c->path);
	c->path = NULL;
}
