/*
 * Unit tests for kspec: search path, kernel.json parsing, lookup order,
 * aliases, language fallback, malformed specs and argv substitution. Each
 * test builds its kernelspec trees under a fresh mkdtemp() directory.
 */
#include "kspec.h"
#include "log.h"
#include "testhelp.h"

#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];

static void root_new(void)
{
	strcpy(root, "/tmp/test_kspec.XXXXXX");
	if (mkdtemp(root) == NULL)
		abort();
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void root_free(void)
{
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Returns root/sub in a static buffer (one of four, for nesting). */
static const char *at(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static const char *at(const char *fmt, ...)
{
	static char bufs[4][PATH_MAX];
	static int next;
	char *b = bufs[next++ % 4];
	va_list ap;
	int n;

	n = snprintf(b, PATH_MAX, "%s/", root);
	va_start(ap, fmt);
	vsnprintf(b + n, PATH_MAX - (size_t)n, fmt, ap);
	va_end(ap);
	return b;
}

static void mkdirs(const char *path)
{
	char tmp[PATH_MAX], *p;

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0755);
			*p = '/';
		}
	}
	mkdir(tmp, 0755);
}

/* Writes root/dir/name/kernel.json with the given text. */
static void spec(const char *dir, const char *name, const char *json)
{
	char d[PATH_MAX], f[PATH_MAX + 16];
	FILE *fp;

	snprintf(d, sizeof(d), "%s/%s/%s", root, dir, name);
	mkdirs(d);
	snprintf(f, sizeof(f), "%s/kernel.json", d);
	fp = fopen(f, "w");
	if (fp == NULL)
		abort();
	fputs(json, fp);
	fclose(fp);
}

static char *spec_json(const char *display, const char *lang)
{
	static char buf[512];

	snprintf(buf, sizeof(buf),
		 "{\"argv\": [\"/bin/k\", \"{connection_file}\"], "
		 "\"display_name\": \"%s\", \"language\": \"%s\"}",
		 display, lang);
	return buf;
}

static size_t count(char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

static void test_search_path(void)
{
	char **p;

	setenv("JUPYTER_PATH", "/jp1::/jp2:", 1);
	setenv("JUPYTER_DATA_DIR", "/data", 1);
	setenv("HOME", "/home/u", 1);
	p = kspec_search_path("/x::/y");
	REQUIRE(p != NULL);
	REQUIRE(count(p) == 7);
	CHECK_STR(p[0], "/x");
	CHECK_STR(p[1], "/y");
	CHECK_STR(p[2], "/jp1/kernels");
	CHECK_STR(p[3], "/jp2/kernels");
	CHECK_STR(p[4], "/data/kernels");
	CHECK_STR(p[5], "/usr/local/share/jupyter/kernels");
	CHECK_STR(p[6], "/usr/share/jupyter/kernels");
	kspec_strv_free(p);

	unsetenv("JUPYTER_PATH");
	unsetenv("JUPYTER_DATA_DIR");
	p = kspec_search_path(NULL);
	REQUIRE(p != NULL);
	REQUIRE(count(p) == 3);
	CHECK_STR(p[0], "/home/u/.local/share/jupyter/kernels");
	kspec_strv_free(p);

	unsetenv("HOME");
	p = kspec_search_path("");
	REQUIRE(p != NULL);
	REQUIRE(count(p) == 2);
	CHECK_STR(p[0], "/usr/local/share/jupyter/kernels");
	kspec_strv_free(p);
}

static void test_load_fields(void)
{
	char err[256] = "";
	struct kspec *k;

	root_new();
	setenv("KSPEC_T_FOO", "bar", 1);
	unsetenv("KSPEC_T_NOPE");
	spec("k", "deno",
	     "{\"argv\": [\"deno\", \"jupyter\", \"--conn\", "
	     "\"{connection_file}\"], \"display_name\": \"Deno\", "
	     "\"language\": \"typescript\", \"interrupt_mode\": \"message\", "
	     "\"metadata\": {\"x\": 1}, \"env\": {\"A\": \"${KSPEC_T_FOO}/x\", "
	     "\"B\": \"${KSPEC_T_NOPE}z\", \"C\": \"$KSPEC_T_FOO ${ bad "
	     "${}\"}}");
	k = kspec_load(at("k/deno"), "deno", err, sizeof(err));
	REQUIRE(k != NULL);
	CHECK_STR(k->name, "deno");
	CHECK_STR(k->dir, at("k/deno"));
	CHECK(k->argc == 4);
	CHECK_STR(k->argv[0], "deno");
	CHECK_STR(k->argv[3], "{connection_file}");
	CHECK(k->argv[4] == NULL);
	CHECK_STR(k->display_name, "Deno");
	CHECK_STR(k->language, "typescript");
	CHECK(k->interrupt_message);
	REQUIRE(k->nenv == 3);
	CHECK_STR(k->env[0], "A=bar/x");
	CHECK_STR(k->env[1], "B=z");
	CHECK_STR(k->env[2], "C=$KSPEC_T_FOO ${ bad ${}");
	CHECK(k->env[3] == NULL);
	kspec_free(k);
	root_free();
}

static void test_load_defaults_and_relative_dir(void)
{
	char err[256] = "", cwd[PATH_MAX];
	struct kspec *k;

	root_new();
	spec("k", "min",
	     "{\"argv\": [\"/bin/k\"], \"interrupt_mode\": "
	     "\"signal\"}");
	REQUIRE(getcwd(cwd, sizeof(cwd)) != NULL);
	REQUIRE(chdir(root) == 0);
	k = kspec_load("k/min/", "min", err, sizeof(err));
	REQUIRE(chdir(cwd) == 0);
	REQUIRE(k != NULL);
	CHECK_STR(k->dir, at("k/min"));
	CHECK(k->argc == 1);
	CHECK_STR(k->display_name, "");
	CHECK_STR(k->language, "");
	CHECK(!k->interrupt_message);
	CHECK(k->nenv == 0);
	CHECK(k->env != NULL && k->env[0] == NULL);
	kspec_free(k);
	root_free();
}

static void check_bad(const char *json, const char *why)
{
	char err[256] = "";
	struct kspec *k;

	spec("bad", "b", json);
	k = kspec_load(at("bad/b"), "b", err, sizeof(err));
	CHECK(k == NULL);
	if (strstr(err, why) == NULL)
		fprintf(stderr, "  FAIL %s: reason '%s' lacks '%s'\n", th_cur,
			err, why);
	CHECK(strstr(err, why) != NULL);
	kspec_free(k);
}

static void test_load_malformed(void)
{
	char err[256] = "";
	FILE *fp;

	root_new();
	check_bad("{\"argv\": [\"x\"", "line 1");
	check_bad("[\"x\"]", "not a JSON object");
	check_bad("{\"display_name\": \"x\"}", "argv");
	check_bad("{\"argv\": []}", "argv");
	check_bad("{\"argv\": \"python\"}", "argv");
	check_bad("{\"argv\": [\"x\", 3]}", "argv[1]");
	check_bad("{\"argv\": [\"\"]}", "argv[0]");
	check_bad("{\"argv\": [\"x\"], \"language\": 3}", "language");
	check_bad("{\"argv\": [\"x\"], \"interrupt_mode\": \"poke\"}",
		  "interrupt_mode");
	check_bad("{\"argv\": [\"x\"], \"env\": {\"A\": 1}}", "env");
	check_bad("{\"argv\": [\"x\"], \"env\": [\"A=1\"]}", "env");
	CHECK(kspec_load(at("nothere"), "nothere", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "No such file") != NULL);

	/* Just over the size bound, though otherwise valid JSON. */
	spec("bad", "big", "");
	fp = fopen(at("bad/big/kernel.json"), "w");
	REQUIRE(fp != NULL);
	fputs("{\"argv\": [\"x\"], \"pad\": \"", fp);
	for (int i = 0; i < 1024 * 1024; i++)
		fputc('a', fp);
	fputs("\"}", fp);
	fclose(fp);
	CHECK(kspec_load(at("bad/big"), "big", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "larger than") != NULL);
	root_free();
}

static void test_order_and_shadowing(void)
{
	char *path[3];
	struct kspec *k, **l;

	root_new();
	spec("one", "python3", spec_json("first", "python"));
	spec("two", "python3", spec_json("second", "python"));
	spec("two", "bash", spec_json("Bash", "bash"));
	spec("two", "Zed", spec_json("Zed", "zed"));
	spec("two", "alpha", spec_json("Alpha", "alpha"));
	mkdirs(at("two/nokerneljson"));
	mkdirs(at("two/bad name"));
	spec("two", "bad name", spec_json("x", "x"));
	path[0] = (char *)at("one");
	path[1] = (char *)at("two");
	path[2] = NULL;

	k = kspec_find(path, "python3");
	REQUIRE(k != NULL);
	CHECK_STR(k->display_name, "first");
	kspec_free(k);

	l = kspec_list(path);
	REQUIRE(l != NULL);
	REQUIRE(count((char **)l) == 4);
	CHECK_STR(l[0]->display_name, "first");
	CHECK_STR(l[1]->name, "alpha");
	CHECK_STR(l[2]->name, "bash");
	CHECK_STR(l[3]->name, "Zed");
	for (size_t i = 0; l[i] != NULL; i++)
		kspec_free(l[i]);
	free(l);
	root_free();
}

static void test_python_alias(void)
{
	char *path[3];
	struct kspec *k;

	/* The alias beats the language fallback: apython comes first in
	 * path order but is only a language match. */
	root_new();
	spec("one", "apython", spec_json("apy", "python"));
	spec("two", "python3", spec_json("py3", "python"));
	path[0] = (char *)at("one");
	path[1] = (char *)at("two");
	path[2] = NULL;
	k = kspec_find(path, "python");
	REQUIRE(k != NULL);
	CHECK_STR(k->name, "python3");
	kspec_free(k);

	/* A spec really named "python" wins, even from a later directory. */
	spec("three", "python", spec_json("py", "python"));
	path[0] = (char *)at("two");
	path[1] = (char *)at("three");
	k = kspec_find(path, "python");
	REQUIRE(k != NULL);
	CHECK_STR(k->name, "python");
	CHECK_STR(k->display_name, "py");
	kspec_free(k);
	root_free();
}

static void test_language_fallback(void)
{
	char *path[3];
	struct kspec *k;

	root_new();
	spec("one", "tslab", spec_json("TS", "typescript"));
	spec("two", "ir", spec_json("R", "R"));
	spec("two", "zz", spec_json("zz", "typescript"));
	spec("two", "deno", spec_json("Deno", "typescript"));
	path[0] = (char *)at("one");
	path[1] = (char *)at("two");
	path[2] = NULL;

	k = kspec_find(path, "r");
	REQUIRE(k != NULL);
	CHECK_STR(k->name, "ir");
	kspec_free(k);

	/* Path order first, then name order: tslab (one) beats deno (two). */
	k = kspec_find(path, "typescript");
	REQUIRE(k != NULL);
	CHECK_STR(k->name, "tslab");
	kspec_free(k);

	path[0] = path[1];
	path[1] = NULL;
	k = kspec_find(path, "TypeScript");
	REQUIRE(k != NULL);
	CHECK_STR(k->name, "deno");
	kspec_free(k);

	CHECK(kspec_find(path, "cobol") == NULL);
	CHECK(kspec_find(path, "") == NULL);
	root_free();
}

static void test_case_insensitive(void)
{
	char *path[2];
	struct kspec *k;

	root_new();
	/* The language field differs, so only the name can match. */
	spec("one", "JavaScript", spec_json("JS", "ecmascript"));
	path[0] = (char *)at("one");
	path[1] = NULL;
	k = kspec_find(path, "javascript");
	REQUIRE(k != NULL);
	CHECK_STR(k->name, "JavaScript");
	CHECK_STR(k->display_name, "JS");
	kspec_free(k);
	k = kspec_find(path, "JAVASCRIPT");
	CHECK(k != NULL);
	kspec_free(k);
	root_free();
}

static void test_malformed_skipped(void)
{
	char *path[3];
	struct kspec *k, **l;

	root_new();
	spec("one", "python3", "{\"argv\": [\"x\", 1]}");
	spec("one", "ir", "{not json");
	spec("two", "python3", spec_json("good", "python"));
	spec("two", "r", spec_json("good r", "r"));
	path[0] = (char *)at("one");
	path[1] = (char *)at("two");
	path[2] = NULL;

	k = kspec_find(path, "python");
	REQUIRE(k != NULL);
	CHECK_STR(k->display_name, "good");
	CHECK_STR(k->dir, at("two/python3"));
	kspec_free(k);

	k = kspec_find(path, "r");
	REQUIRE(k != NULL);
	CHECK_STR(k->display_name, "good r");
	kspec_free(k);

	l = kspec_list(path);
	REQUIRE(l != NULL);
	REQUIRE(count((char **)l) == 2);
	CHECK_STR(l[0]->display_name, "good");
	CHECK_STR(l[1]->display_name, "good r");
	for (size_t i = 0; l[i] != NULL; i++)
		kspec_free(l[i]);
	free(l);

	path[1] = NULL;
	CHECK(kspec_find(path, "python3") == NULL);
	root_free();
}

static void test_argv_substitution(void)
{
	char err[256], expect[PATH_MAX + 64], **v;
	struct kspec *k;

	root_new();
	spec("k", "j",
	     "{\"argv\": [\"{prefix}/bin/j\", \"--f={connection_file}\","
	     " \"{resource_dir}/x:{resource_dir}\", \"{unknown}\","
	     " \"{connection_file\"]}");
	k = kspec_load(at("k/j"), "j", err, sizeof(err));
	REQUIRE(k != NULL);
	v = kspec_argv(k, "/run/c.json");
	REQUIRE(v != NULL);
	REQUIRE(count(v) == 5);
	CHECK_STR(v[0], "/usr/bin/j");
	CHECK_STR(v[1], "--f=/run/c.json");
	snprintf(expect, sizeof(expect), "%s/x:%s", k->dir, k->dir);
	CHECK_STR(v[2], expect);
	CHECK_STR(v[3], "{unknown}");
	CHECK_STR(v[4], "{connection_file");
	/* The spec itself stays unsubstituted. */
	CHECK_STR(k->argv[1], "--f={connection_file}");
	kspec_strv_free(v);
	CHECK(kspec_argv(k, NULL) == NULL);
	kspec_free(k);
	root_free();
}

/* metadata["e2b-ci"]["check"]: the commands --check runs, substituted
 * like argv; optional, and strict where present. */
static void test_check_commands(void)
{
	char err[256], expect[PATH_MAX + 64], **v;
	struct kspec *k;

	root_new();
	spec(
	    "k", "ours",
	    "{\"argv\": [\"/bin/sh\", \"{resource_dir}/l.sh\"],"
	    " \"metadata\": {\"e2b\": {\"host\": \"h\"}, \"e2b-ci\":"
	    " {\"check\": [[\"/bin/sh\", \"{resource_dir}/l.sh\", \"--check\"],"
	    " [\"true\"]]}}}");
	k = kspec_load(at("k/ours"), "ours", err, sizeof(err));
	REQUIRE(k != NULL);
	REQUIRE(k->check != NULL);
	REQUIRE(count(k->check[0]) == 3 && count(k->check[1]) == 1);
	CHECK(k->check[2] == NULL);
	CHECK_STR(k->check[0][1], "{resource_dir}/l.sh");
	v = kspec_subst_argv(k, k->check[0], "c.json");
	REQUIRE(v != NULL && count(v) == 3);
	snprintf(expect, sizeof(expect), "%s/l.sh", k->dir);
	CHECK_STR(v[1], expect);
	CHECK_STR(v[2], "--check");
	kspec_strv_free(v);
	kspec_free(k);

	/* Absent, or other metadata only: no check. */
	spec("k", "plain",
	     "{\"argv\": [\"x\"], \"metadata\": {\"debugger\": true}}");
	k = kspec_load(at("k/plain"), "plain", err, sizeof(err));
	REQUIRE(k != NULL);
	CHECK(k->check == NULL);
	kspec_free(k);

	check_bad("{\"argv\": [\"x\"], \"metadata\": {\"e2b-ci\": "
		  "{\"check\": \"x\"}}}",
		  "metadata.e2b-ci.check");
	check_bad("{\"argv\": [\"x\"], \"metadata\": {\"e2b-ci\": "
		  "{\"check\": [\"x\"]}}}",
		  "metadata.e2b-ci.check");
	check_bad("{\"argv\": [\"x\"], \"metadata\": {\"e2b-ci\": "
		  "{\"check\": [[]]}}}",
		  "metadata.e2b-ci.check");
	check_bad("{\"argv\": [\"x\"], \"metadata\": {\"e2b-ci\": "
		  "{\"check\": [[\"\"]]}}}",
		  "metadata.e2b-ci.check");
	check_bad("{\"argv\": [\"x\"], \"metadata\": {\"e2b-ci\": "
		  "{\"check\": [[\"a\", 1]]}}}",
		  "metadata.e2b-ci.check");
	root_free();
}

/* kspec_resolve: TypeScript falls back to the JavaScript kernel. */
static void test_resolve_typescript(void)
{
	char *path[2];
	struct kspec *k;

	root_new();
	spec("one", "javascript", spec_json("JS", "javascript"));
	path[0] = (char *)at("one");
	path[1] = NULL;
	CHECK(kspec_find(path, "typescript") == NULL);
	k = kspec_resolve(path, "typescript");
	REQUIRE(k != NULL);
	CHECK_STR(k->name, "javascript");
	kspec_free(k);
	spec("one", "typescript", spec_json("TS", "typescript"));
	k = kspec_resolve(path, "typescript");
	REQUIRE(k != NULL);
	CHECK_STR(k->name, "typescript");
	kspec_free(k);
	CHECK(kspec_resolve(path, "cobol") == NULL);
	root_free();
}

static void test_system_python3(void)
{
	char **path;
	struct kspec *k;

	if (access("/usr/share/jupyter/kernels/python3/kernel.json", R_OK) !=
	    0) {
		printf(
		    "     (no /usr/share/jupyter/kernels/python3: skipped)\n");
		return;
	}
	root_new();
	setenv("JUPYTER_PATH", root, 1);
	setenv("JUPYTER_DATA_DIR", root, 1);
	path = kspec_search_path(NULL);
	REQUIRE(path != NULL);
	k = kspec_find(path, "python");
	REQUIRE(k != NULL);
	CHECK_STR(k->name, "python3");
	CHECK_STR(k->language, "python");
	CHECK(k->argc >= 1 && strstr(k->argv[0], "python") != NULL);
	if (access("/usr/local/share/jupyter/kernels/python3", F_OK) != 0)
		CHECK_STR(k->dir, "/usr/share/jupyter/kernels/python3");
	kspec_free(k);
	kspec_strv_free(path);
	unsetenv("JUPYTER_PATH");
	unsetenv("JUPYTER_DATA_DIR");
	root_free();
}

int main(void)
{
	/* Skipped malformed specs are logged as warnings; keep output terse. */
	log_init(LOG_LVL_ERR, 0);
	TEST(test_search_path);
	TEST(test_load_fields);
	TEST(test_load_defaults_and_relative_dir);
	TEST(test_load_malformed);
	TEST(test_order_and_shadowing);
	TEST(test_python_alias);
	TEST(test_language_fallback);
	TEST(test_case_insensitive);
	TEST(test_malformed_skipped);
	TEST(test_argv_substitution);
	TEST(test_check_commands);
	TEST(test_resolve_typescript);
	TEST(test_system_python3);
	return test_report();
}
