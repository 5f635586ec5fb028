/*
 * test_lang: the helper cells of lang.c, run by the real interpreters where
 * they are always present (Debian's python3 and bash): values with every
 * awkward byte must arrive verbatim and no value byte may appear in the code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lang.h"
#include "testhelp.h"

static const char *const nasty = "a'b\"c\\d\ne $(touch /tmp/e2bci-pwned) "
				 "`id` \xc3\xa9\xe6\x97\xa5 %s\n\n";

/* Runs argv0 with the script on stdin and returns its stdout (malloc'd). */
static char *run(const char *cmd, const char *script)
{
	char path[] = "/tmp/e2bci-lang-XXXXXX", line[8192], *out;
	int fd = mkstemp(path);
	size_t n = 0;
	FILE *f;

	if (fd < 0 || write(fd, script, strlen(script)) < 0)
		return NULL;
	close(fd);
	snprintf(line, sizeof(line), "%s < %s", cmd, path);
	f = popen(line, "r");
	out = calloc(1, 65536);
	if (f && out)
		n = fread(out, 1, 65535, f);
	if (f)
		pclose(f);
	unlink(path);
	(void)n;
	return out;
}

static json_t *vars(void)
{
	return json_pack("{s:s,s:s}", "E2BCI_A", nasty, "E2BCI_B", "plain");
}

static void test_python_sets_and_unsets(void)
{
	json_t *set = vars(), *unset = json_pack("[s]", "E2BCI_GONE");
	char *code = lang_env_code("python", set, unset), *script, *out;

	REQUIRE(code);
	CHECK(strstr(code, "touch") == NULL);
	CHECK(strstr(code, "plain") == NULL);
	REQUIRE(asprintf(&script,
			 "import os, sys\nos.environ['E2BCI_GONE'] = 'x'\n%s\n"
			 "sys.stdout.write(os.environ['E2BCI_A'] + '|' + "
			 "os.environ['E2BCI_B'] + '|' + "
			 "str('E2BCI_GONE' in os.environ))\n",
			 code) > 0);
	out = run("/usr/bin/python3", script);
	REQUIRE(out);
	char *want;
	REQUIRE(asprintf(&want, "%s|plain|False", nasty) > 0);
	CHECK_STR(out, want);
	free(want);
	free(out);
	free(script);
	free(code);
	json_decref(set);
	json_decref(unset);
}

static void test_bash_sets_and_unsets(void)
{
	json_t *set = vars(),
	       *unset = json_pack("[ss]", "E2BCI_GONE", "not-an-ident");
	char *code = lang_env_code("bash", set, unset), *script, *out, *want;

	REQUIRE(code);
	CHECK(strstr(code, "touch") == NULL);
	REQUIRE(asprintf(&script,
			 "export E2BCI_GONE=x\n%s"
			 "printf '%%s|%%s|%%s' \"$E2BCI_A\" \"$E2BCI_B\" "
			 "\"${E2BCI_GONE-unset}\"\n",
			 code) > 0);
	out = run("/bin/bash --noprofile --norc", script);
	REQUIRE(out);
	REQUIRE(asprintf(&want, "%s|plain|unset", nasty) > 0);
	CHECK_STR(out, want);
	free(want);
	free(out);
	free(script);
	free(code);
	json_decref(set);
	json_decref(unset);
}

static void test_bash_skips_names_bash_cannot_export(void)
{
	json_t *set = json_pack("{s:s,s:s}", "OK_1", "v", "bad name;id", "v");
	char *code = lang_env_code("bash", set, NULL);

	REQUIRE(code);
	CHECK(strstr(code, "OK_1") != NULL);
	CHECK(strstr(code, "bad") == NULL);
	free(code);
	json_decref(set);
}

static void test_cwd_python(void)
{
	char *code = lang_cwd_code("python", "/tmp"), *script, *out;

	REQUIRE(code);
	REQUIRE(asprintf(&script,
			 "import os, sys\n%s\nsys.stdout.write(os.getcwd())\n",
			 code) > 0);
	out = run("cd / && /usr/bin/python3", script);
	CHECK_STR(out, "/tmp");
	free(out);
	free(script);
	free(code);
}

static void test_unknown_language_has_no_helper(void)
{
	json_t *set = vars();

	CHECK(lang_env_code("cobol", set, NULL) == NULL);
	CHECK(lang_cwd_code("cobol", "/tmp") == NULL);
	json_decref(set);
}

static void test_r_uses_hex_only(void)
{
	json_t *set = vars();
	char *code = lang_env_code("r", set, NULL);
	const char *h;

	REQUIRE(code);
	h = strstr(code, "h <- \"");
	REQUIRE(h);
	h += 6;
	for (; *h && *h != '"'; h++)
		CHECK(strchr("0123456789abcdef", *h) != NULL);
	free(code);
	json_decref(set);
}

int main(void)
{
	TEST(test_python_sets_and_unsets);
	TEST(test_bash_sets_and_unsets);
	TEST(test_bash_skips_names_bash_cannot_export);
	TEST(test_cwd_python);
	TEST(test_unknown_language_has_no_helper);
	TEST(test_r_uses_hex_only);
	return test_report();
}
