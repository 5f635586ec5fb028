/*
 * test_lang: the helper cells of lang.c, run by the real interpreters where
 * they are present (Debian's python3 and bash always; node and Rscript when
 * installed): values with every awkward byte must arrive verbatim, no value
 * byte may appear in the code, and the restore cell must put back exactly
 * what the set cell overrode: a variable the interpreter inherited, one the
 * code itself set (exported or not, for bash), and one that was unset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lang.h"
#include "testhelp.h"

static const char *const nasty = "a'b\"c\\d\ne $(touch /tmp/e2bci-pwned) "
				 "`id` \xc3\xa9\xe6\x97\xa5 %s\n\n";

/* Runs cmd with the script on stdin and returns its stdout (malloc'd). */
static char *run(const char *cmd, const char *script)
{
	char path[] = "/tmp/e2bci-lang-XXXXXX", line[8192], *out;
	int fd = mkstemp(path);
	size_t n = 0;
	FILE *f;

	if (fd < 0 || write(fd, script, strlen(script)) < 0)
		return NULL;
	close(fd);
	snprintf(line, sizeof(line), "E2BCI_INH=inherited %s < %s", cmd, path);
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

/* The override every language test applies: a new variable with every
 * awkward byte, and overrides of an inherited, a user-set and an unset
 * one. */
static json_t *overrides(void)
{
	return json_pack("{s:s,s:s,s:s,s:s}", "E2BCI_A", nasty, "E2BCI_INH",
			 "o1", "E2BCI_USER", "o2", "E2BCI_GONE", "o3");
}

/* What each script prints after the set cell and after the restore. */
static const char want_set_fmt[] = "%s|o1|o2|o3\n";
static const char want_restored[] =
    "unset|inherited|user|unset\ninherited|user|unset\n";

/* Runs pre (which sets E2BCI_USER as user code would), the set code, mid
 * (shows the variables, then changes E2BCI_USER as the cell may), the
 * restore code and post (shows them again, and what a child process sees)
 * in the interpreter cmd. */
static void check_roundtrip(const char *language, const char *cmd,
			    const char *pre, const char *mid, const char *post)
{
	json_t *set = overrides();
	char *code = lang_env_code(language, set, true);
	char *restore = lang_env_restore_code(language), *script, *out, *want;

	REQUIRE(code && restore);
	/* Base64, or for bash only letters and digits as they are. */
	CHECK(strstr(code, "$(touch") == NULL);
	CHECK(strstr(code, "`id`") == NULL);
	REQUIRE(asprintf(&script, "%s%s\n%s%s\n%s", pre, code, mid, restore,
			 post) > 0);
	out = run(cmd, script);
	REQUIRE(out);
	REQUIRE(asprintf(&want, want_set_fmt, nasty) > 0);
	REQUIRE(strlen(want) + sizeof(want_restored) < 4096);
	{
		char full[4096];
		snprintf(full, sizeof(full), "%s%s", want, want_restored);
		CHECK_STR(out, full);
	}
	free(want);
	free(out);
	free(script);
	free(restore);
	free(code);
	json_decref(set);
}

static void test_python_restores_what_it_overrode(void)
{
	check_roundtrip(
	    "python", "/usr/bin/python3",
	    "import os, subprocess, sys\n"
	    "def show():\n"
	    "    g = lambda k: os.environ.get(k, 'unset')\n"
	    "    sys.stdout.write('|'.join(map(g, ('E2BCI_A', 'E2BCI_INH', "
	    "'E2BCI_USER', 'E2BCI_GONE'))) + '\\n')\n"
	    "os.environ['E2BCI_USER'] = 'user'\n",
	    "show(); sys.stdout.flush()\n"
	    "os.environ['E2BCI_USER'] = 'cell'\n",
	    "show(); sys.stdout.flush()\n"
	    "subprocess.run(['sh', '-c', 'echo "
	    "\"$E2BCI_INH|$E2BCI_USER|${E2BCI_GONE-unset}\"'])\n");
}

static void test_bash_restores_what_it_overrode(void)
{
	check_roundtrip(
	    "bash", "/bin/bash --noprofile --norc",
	    "show() { printf '%s|%s|%s|%s\\n' \"${E2BCI_A-unset}\" "
	    "\"${E2BCI_INH-unset}\" \"${E2BCI_USER-unset}\" "
	    "\"${E2BCI_GONE-unset}\"; }\n"
	    "E2BCI_USER=user\n",
	    "show\n"
	    "E2BCI_USER=cell\n",
	    "show\n"
	    /* E2BCI_USER was not exported before: a child must not see it. */
	    "sh -c 'echo "
	    "\"$E2BCI_INH|${E2BCI_USER-user}|${E2BCI_GONE-unset}\"'\n"
	    "[ \"$E2BCI_USER\" = user ] || echo 'lost the shell variable'\n");
}

static void test_javascript_restores_what_it_overrode(void)
{
	if (access("/usr/bin/node", X_OK) != 0)
		return; /* node is installed by the javascript kernel's deps */
	check_roundtrip(
	    "javascript", "/usr/bin/node",
	    "const show = () => process.stdout.write(['E2BCI_A', 'E2BCI_INH', "
	    "'E2BCI_USER', 'E2BCI_GONE'].map(k => process.env[k] ?? "
	    "'unset').join('|') + '\\n');\n"
	    "process.env.E2BCI_USER = 'user';\n",
	    "show();\n"
	    "process.env.E2BCI_USER = 'cell';\n",
	    "show();\n"
	    "process.stdout.write(require('child_process').execSync('echo "
	    "\"$E2BCI_INH|$E2BCI_USER|${E2BCI_GONE-unset}\"'));\n");
}

static void test_r_restores_what_it_overrode(void)
{
	if (access("/usr/bin/Rscript", X_OK) != 0)
		return;
	check_roundtrip(
	    "r", "/usr/bin/Rscript --vanilla -",
	    "show <- function() cat(paste(sapply(c('E2BCI_A', 'E2BCI_INH', "
	    "'E2BCI_USER', 'E2BCI_GONE'), Sys.getenv, unset = 'unset'), "
	    "collapse = '|'), '\\n', sep = '')\n"
	    "Sys.setenv(E2BCI_USER = 'user')\n",
	    "show()\n"
	    "Sys.setenv(E2BCI_USER = 'cell')\n",
	    "show()\n"
	    "cat(system('echo \"$E2BCI_INH|$E2BCI_USER|${E2BCI_GONE-unset}\"', "
	    "intern = TRUE), '\\n', sep = '')\n");
}

/* Two saves without a restore in between (a restore cell that never ran):
 * the first value is the one put back. */
static void test_first_saved_value_wins(void)
{
	json_t *a = json_pack("{s:s}", "E2BCI_INH", "first"),
	       *b = json_pack("{s:s}", "E2BCI_INH", "second");
	char *ca = lang_env_code("python", a, true),
	     *cb = lang_env_code("python", b, true),
	     *r = lang_env_restore_code("python"), *script, *out;

	REQUIRE(ca && cb && r);
	REQUIRE(asprintf(&script,
			 "import os, sys\n%s\n%s\n%s\n%s\n"
			 "sys.stdout.write(os.environ.get('E2BCI_INH', "
			 "'unset'))\n",
			 ca, cb, r, r) > 0);
	out = run("/usr/bin/python3", script);
	CHECK_STR(out, "inherited");
	free(out);
	free(script);
	free(ca);
	free(cb);
	free(r);
	json_decref(a);
	json_decref(b);
}

/* Sandbox-wide values are applied without save: a restore afterwards
 * leaves them in place. */
static void test_unsaved_values_stay(void)
{
	json_t *g = json_pack("{s:s}", "E2BCI_G", "global");
	char *code = lang_env_code("bash", g, false),
	     *r = lang_env_restore_code("bash"), *script, *out;

	REQUIRE(code && r);
	REQUIRE(asprintf(&script, "%s\n%s\nsh -c 'printf %%s \"$E2BCI_G\"'\n",
			 code, r) > 0);
	out = run("/bin/bash --noprofile --norc", script);
	CHECK_STR(out, "global");
	free(out);
	free(script);
	free(code);
	free(r);
	json_decref(g);
}

/* bash: 2,000 variables in one helper with no subshell per variable, a
 * readonly variable skipped without losing the rest, an integer variable
 * not evaluated, and "set -eu" in the shell surviving it all. */
static void test_bash_many_vars_one_step(void)
{
	json_t *set = json_object();
	char key[32], *code, *r, *script, *out;

	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "E2BCI_V%d", i);
		json_object_set_new(set, key, json_string(key + 6));
	}
	json_object_set_new(set, "E2BCI_RO", json_string("new"));
	json_object_set_new(set, "E2BCI_I",
			    json_string("x[$(echo pwned >&2)]"));
	code = lang_env_code("bash", set, true);
	r = lang_env_restore_code("bash");
	REQUIRE(code && r);
	CHECK(strstr(code, "$(") == NULL);
	CHECK(strstr(code, "base64") == NULL);
	REQUIRE(asprintf(&script,
			 "set -eu; readonly E2BCI_RO=ro; declare -i E2BCI_I=4\n"
			 "%s\n"
			 "echo \"$E2BCI_V0 $E2BCI_V1999 $E2BCI_RO $E2BCI_I\"\n"
			 "%s\n"
			 "echo \"${E2BCI_V0-unset} $E2BCI_RO $E2BCI_I\"\n",
			 code, r) > 0);
	out = run("/bin/bash --noprofile --norc 2>&1", script);
	CHECK_STR(out, "V0 V1999 ro x[$(echo pwned >&2)]\nunset ro 4\n");
	free(out);
	free(script);
	free(code);
	free(r);
	json_decref(set);
}

/* Java: no string literal in the helper may exceed the class file's 65535
 * bytes, whatever the size of the value. */
static void test_java_literals_fit_a_constant(void)
{
	size_t n = 1 << 20, longest = 0, cur = 0;
	char *big = malloc(n + 1), *code;
	json_t *set;
	bool in = false;

	REQUIRE(big);
	memset(big, 'x', n);
	big[n] = '\0';
	set = json_pack("{s:s}", "L", big);
	code = lang_env_code("java", set, true);
	REQUIRE(code);
	CHECK(strncmp(code, "e2bci.E2b.env(\"", 15) == 0);
	for (const char *p = code; *p; p++) {
		if (*p == '"') {
			in = !in;
			cur = 0;
		} else if (in && ++cur > longest) {
			longest = cur;
		}
	}
	CHECK(longest > 60000 && longest <= 65535);
	CHECK(strstr(code, "\" + \"") == NULL);
	free(code);
	free(big);
	json_decref(set);
}

static void test_bash_skips_names_bash_cannot_export(void)
{
	json_t *set = json_pack("{s:s,s:s}", "OK_1", "v", "bad name;id", "v");
	char *code = lang_env_code("bash", set, true);

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
	json_t *set = overrides();

	CHECK(lang_env_code("cobol", set, true) == NULL);
	CHECK(lang_env_restore_code("cobol") == NULL);
	CHECK(lang_cwd_code("cobol", "/tmp") == NULL);
	json_decref(set);
}

/* Every language with a set helper has a restore helper, TypeScript
 * included (it shares JavaScript's). */
static void test_every_set_helper_has_a_restore(void)
{
	static const char *const langs[] = {
	    "python", "javascript", "typescript", "r", "java", "bash"};
	json_t *set = overrides();

	for (size_t i = 0; i < sizeof(langs) / sizeof(*langs); i++) {
		char *code = lang_env_code(langs[i], set, true);
		char *r = lang_env_restore_code(langs[i]);
		CHECK(code != NULL);
		CHECK(r != NULL);
		free(code);
		free(r);
	}
	json_decref(set);
}

int main(void)
{
	TEST(test_python_restores_what_it_overrode);
	TEST(test_bash_restores_what_it_overrode);
	TEST(test_javascript_restores_what_it_overrode);
	TEST(test_r_restores_what_it_overrode);
	TEST(test_first_saved_value_wins);
	TEST(test_unsaved_values_stay);
	TEST(test_bash_many_vars_one_step);
	TEST(test_java_literals_fit_a_constant);
	TEST(test_bash_skips_names_bash_cannot_export);
	TEST(test_cwd_python);
	TEST(test_unknown_language_has_no_helper);
	TEST(test_every_set_helper_has_a_restore);
	return test_report();
}
