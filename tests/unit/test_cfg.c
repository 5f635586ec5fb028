/*
 * Unit tests for cfg: defaults, environment, flags and their precedence,
 * every kind of error, bounds, --help/--version/--check and the dumps.
 */
#include "cfg.h"
#include "testhelp.h"

#include <stdarg.h>
#include <stdlib.h>

#ifndef E2BCI_KERNELS_DIR
#define E2BCI_KERNELS_DIR "/usr/local/share/e2b-ci/kernels"
#endif

static const char *const names[][2] = {
    {"listen", "E2B_CI_LISTEN"},
    {"port", "E2B_CI_PORT"},
    {"cwd", "E2B_CI_CWD"},
    {"envd-url", "E2B_CI_ENVD_URL"},
    {"log-level", "E2B_CI_LOG_LEVEL"},
    {"kernel-path", "E2B_CI_KERNEL_PATH"},
    {"runtime-dir", "E2B_CI_RUNTIME_DIR"},
    {"default-languages", "E2B_CI_DEFAULT_LANGUAGES"},
    {"pool", "E2B_CI_POOL"},
    {"max-kernels", "E2B_CI_MAX_KERNELS"},
    {"access-token", "E2B_CI_ACCESS_TOKEN"},
    {"kernel-memory-max", "E2B_CI_KERNEL_MEMORY_MAX"},
    {"kernel-cpu-weight", "E2B_CI_KERNEL_CPU_WEIGHT"},
    {"kernel-tasks-max", "E2B_CI_KERNEL_TASKS_MAX"},
    {"kernel-user", "E2B_CI_KERNEL_USER"},
    {"max-body", "E2B_CI_MAX_BODY"},
    {"keepalive-ms", "E2B_CI_KEEPALIVE_MS"},
    {"kernel-start-timeout-ms", "E2B_CI_KERNEL_START_TIMEOUT_MS"},
    {"kernel-retry-ms", "E2B_CI_KERNEL_RETRY_MS"},
    {"interrupt-timeout-ms", "E2B_CI_INTERRUPT_TIMEOUT_MS"},
    {"envd-timeout-ms", "E2B_CI_ENVD_TIMEOUT_MS"},
    {"max-contexts", "E2B_CI_MAX_CONTEXTS"},
    {"max-connections", "E2B_CI_MAX_CONNECTIONS"},
    {"header-timeout-ms", "E2B_CI_HEADER_TIMEOUT_MS"},
    {"stop-timeout-ms", "E2B_CI_STOP_TIMEOUT_MS"},
    {"max-backlog", "E2B_CI_MAX_BACKLOG"},
    {"max-backlog-total", "E2B_CI_MAX_BACKLOG_TOTAL"},
    {"max-kernel-message", "E2B_CI_MAX_KERNEL_MESSAGE"},
    {"zygote", "E2B_CI_ZYGOTE"},
    {"python-preload", "E2B_CI_PYTHON_PRELOAD"},
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static char err[256];
static char *outbuf;
static size_t outlen;

static void clear_env(void)
{
	size_t i;

	for (i = 0; i < NNAMES; i++)
		unsetenv(names[i][1]);
}

/* Runs cfg_load on a NULL-terminated argument list after the program
 * name; output goes to outbuf. */
static int load(struct cfg *c, ...)
{
	char *argv[32] = {"e2b-ci"};
	int argc = 1, r;
	va_list ap;
	FILE *out;

	va_start(ap, c);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	free(outbuf);
	outbuf = NULL;
	out = open_memstream(&outbuf, &outlen);
	if (out == NULL)
		abort();
	r = cfg_load(c, argc, argv, out, err, sizeof(err));
	fclose(out);
	return r;
}

/* Loads and expects failure with exactly the given message. */
static int fails_with(const char *msg, const char *a1, const char *a2)
{
	struct cfg c;
	int r = load(&c, a1, a2, NULL);
	int ok = r == -1 && strcmp(err, msg) == 0 && c.listen == NULL;

	if (!ok)
		fprintf(stderr, "    got %d '%s', want '%s'\n", r, err, msg);
	cfg_cleanup(&c);
	return ok;
}

/* Loads with one argument and expects failure mentioning what. */
static int rejects(const char *a1, const char *a2, const char *what)
{
	struct cfg c;
	int r = load(&c, a1, a2, NULL);
	int ok = r == -1 && strstr(err, what) != NULL;

	if (!ok)
		fprintf(stderr, "    %s %s: got %d '%s'\n", a1, a2 ? a2 : "", r,
			err);
	cfg_cleanup(&c);
	return ok;
}

static void test_defaults(void)
{
	struct cfg c;

	clear_env();
	REQUIRE(load(&c, NULL) == 0);
	CHECK_STR(err, "");
	CHECK_STR(c.listen, "::");
	CHECK(c.port == 49999);
	CHECK_STR(c.cwd, "/home/user");
	CHECK_STR(c.envd_url, "http://localhost:49983");
	CHECK_STR(c.log_level, "info");
	CHECK_STR(c.kernel_path, E2BCI_KERNELS_DIR);
	CHECK_STR(c.runtime_dir, "");
	CHECK_STR(c.default_languages, "python,javascript");
	CHECK(c.max_body == 10485760);
	CHECK(c.keepalive_ms == 5000);
	CHECK(c.kernel_start_timeout_ms == 60000);
	CHECK(c.kernel_retry_ms == 60000);
	CHECK(c.interrupt_timeout_ms == 5000);
	CHECK(c.envd_timeout_ms == 2000);
	CHECK(c.max_contexts == 64);
	CHECK(c.max_connections == 2048);
	CHECK(c.header_timeout_ms == 10000);
	CHECK(c.stop_timeout_ms == 10000);
	CHECK(c.max_backlog == 67108864);
	CHECK(outlen == 0);
	cfg_cleanup(&c);
	CHECK(c.listen == NULL && c.port == 0);
	cfg_cleanup(&c);
}

static void test_env_and_precedence(void)
{
	struct cfg c;

	clear_env();
	setenv("E2B_CI_PORT", "1234", 1);
	setenv("E2B_CI_CWD", "/tmp", 1);
	setenv("E2B_CI_MAX_BODY", "2M", 1);
	setenv("E2B_CI_KERNEL_PATH", "", 1);
	setenv("E2B_CI_LOG_LEVEL", "DEBUG", 1);
	REQUIRE(load(&c, NULL) == 0);
	CHECK(c.port == 1234);
	CHECK_STR(c.cwd, "/tmp");
	CHECK(c.max_body == 2 * 1024 * 1024);
	CHECK_STR(c.kernel_path, "");
	CHECK_STR(c.log_level, "DEBUG");
	cfg_cleanup(&c);

	/* Flags beat the environment, in both syntaxes; the last one wins. */
	REQUIRE(load(&c, "--port", "1", "--cwd=/srv", "--port=2", "--listen",
		     "127.0.0.1", "--max-body=4k", NULL) == 0);
	CHECK(c.port == 2);
	CHECK_STR(c.cwd, "/srv");
	CHECK_STR(c.listen, "127.0.0.1");
	CHECK(c.max_body == 4096);
	CHECK_STR(c.kernel_path, "");
	cfg_cleanup(&c);

	REQUIRE(load(&c, "--default-languages=", "--runtime-dir", "/run/x",
		     "--", NULL) == 0);
	CHECK_STR(c.default_languages, "");
	CHECK_STR(c.runtime_dir, "/run/x");
	cfg_cleanup(&c);

	setenv("E2B_CI_PORT", "x", 1);
	CHECK(fails_with("environment E2B_CI_PORT: invalid value 'x' "
			 "(expected an integer from 0 to 65535)",
			 NULL, NULL));
	/* A bad environment is not rescued by a flag: it is still wrong. */
	CHECK(rejects("--port", "5", "E2B_CI_PORT"));
	clear_env();
}

static void test_flag_errors(void)
{
	clear_env();
	CHECK(fails_with("unknown option --foo (see --help)", "--foo", NULL));
	CHECK(fails_with("unknown option --foo (see --help)", "--foo=1", NULL));
	CHECK(fails_with("unknown option -x (see --help)", "-x", NULL));
	CHECK(
	    fails_with("unexpected argument 'foo' (see --help)", "foo", NULL));
	CHECK(
	    fails_with("unexpected argument 'foo' (see --help)", "--", "foo"));
	CHECK(fails_with("option --port: missing value", "--port", NULL));
	CHECK(fails_with("option --cwd: missing value", "--cwd", "--port"));
	CHECK(fails_with("option --check takes no value", "--check=1", NULL));
	CHECK(fails_with("option --port: invalid value 'x' (expected an "
			 "integer from 0 to 65535)",
			 "--port", "x"));
}

static void test_integer_values(void)
{
	static const char *const bad[] = {
	    "12x", "",	   "-1",  "+1",	   " 1",
	    "1 ",  "0x10", "1.5", "65536", "99999999999999999999999",
	    "1k",
	};
	struct cfg c;
	size_t i;

	clear_env();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(rejects("--port", bad[i], "expected an integer from 0"));
	CHECK(load(&c, "--port=0", NULL) == 0 && c.port == 0);
	cfg_cleanup(&c);
	CHECK(load(&c, "--port=65535", NULL) == 0 && c.port == 65535);
	cfg_cleanup(&c);

	CHECK(rejects("--max-body", "1023", "from 1024 to 1073741824"));
	CHECK(rejects("--max-body", "2G", "k, M or G suffix"));
	CHECK(rejects("--max-body", "1T", "from 1024"));
	CHECK(rejects("--max-body", "1kk", "from 1024"));
	CHECK(rejects("--max-body", "k", "from 1024"));
	CHECK(rejects("--max-backlog", "17179869184G", "to 4294967296"));
	CHECK(load(&c, "--max-body=1G", "--max-backlog", "4g", NULL) == 0);
	CHECK(c.max_body == 1073741824L && c.max_backlog == 4294967296L);
	cfg_cleanup(&c);
	CHECK(load(&c, "--max-backlog=65536", NULL) == 0);
	CHECK(c.max_backlog == 65536);
	cfg_cleanup(&c);

	CHECK(rejects("--keepalive-ms", "49", "from 50 to 600000"));
	CHECK(rejects("--kernel-start-timeout-ms", "600001", "1000 to 600000"));
	CHECK(rejects("--interrupt-timeout-ms", "99", "100 to 600000"));
	CHECK(rejects("--kernel-retry-ms", "-1", "0 to 86400000"));
	CHECK(rejects("--envd-timeout-ms", "60001", "50 to 60000"));
	CHECK(rejects("--max-contexts", "0", "1 to 4096"));
	CHECK(rejects("--max-connections", "15", "16 to 65536"));
	CHECK(load(&c, "--max-contexts=4096", "--max-connections=16", NULL) ==
	      0);
	CHECK(c.max_contexts == 4096 && c.max_connections == 16);
	cfg_cleanup(&c);
}

static void test_string_values(void)
{
	struct cfg c;

	clear_env();
	CHECK(fails_with("option --log-level: invalid value 'loud' (expected "
			 "one of error, warn, info, debug)",
			 "--log-level", "loud"));
	CHECK(load(&c, "--log-level=warn", NULL) == 0);
	CHECK_STR(c.log_level, "warn");
	cfg_cleanup(&c);
	CHECK(rejects("--listen=", NULL, "--listen"));
	CHECK(rejects("--cwd", "home", "absolute path"));
	CHECK(rejects("--envd-url", "ftp://x", "http://host"));
	/* envd.c speaks plain HTTP only: https is refused at start instead of
	 * failing every fetch quietly. So is what envd.c cannot parse. */
	CHECK(rejects("--envd-url", "https://e:1", "https is not supported"));
	CHECK(rejects("--envd-url", "http://u@e:1", "http://host"));
	CHECK(rejects("--envd-url", "http://e:1?x", "http://host"));
	CHECK(rejects("--runtime-dir", "run", "absolute path or empty"));
	CHECK(load(&c, "--envd-url=HTTP://e:1/base", "--runtime-dir=", NULL) ==
	      0);
	CHECK_STR(c.envd_url, "HTTP://e:1/base");
	CHECK_STR(c.runtime_dir, "");
	cfg_cleanup(&c);
}

static void test_zygote_values(void)
{
	struct cfg c;

	clear_env();
	CHECK(load(&c, NULL) == 0);
	CHECK_STR(c.zygote, "on");
	CHECK_STR(c.python_preload, "numpy,pandas,matplotlib");
	cfg_cleanup(&c);
	CHECK(rejects("--zygote", "yes", "on or off"));
	CHECK(rejects("--python-preload", "os;sys", "module names"));
	/* An empty list preloads nothing; the environment sets both. */
	setenv("E2B_CI_ZYGOTE", "off", 1);
	CHECK(load(&c, "--python-preload=", NULL) == 0);
	CHECK_STR(c.zygote, "off");
	CHECK_STR(c.python_preload, "");
	cfg_cleanup(&c);
	setenv("E2B_CI_PYTHON_PRELOAD", "polars,scipy.stats", 1);
	CHECK(load(&c, NULL) == 0);
	CHECK_STR(c.python_preload, "polars,scipy.stats");
	cfg_cleanup(&c);
	clear_env();
}

static void test_help_version_check(void)
{
	struct cfg c;
	char want[128];
	size_t i;

	clear_env();
	/* --help works even when the environment holds a bad value. */
	setenv("E2B_CI_PORT", "bad", 1);
	CHECK(load(&c, "--help", NULL) == 1);
	CHECK(c.listen == NULL);
	CHECK(strncmp(outbuf, "Usage: e2b-ci", 13) == 0);
	for (i = 0; i < NNAMES; i++) {
		snprintf(want, sizeof(want), "  --%s VALUE ", names[i][0]);
		CHECK(strstr(outbuf, want) != NULL);
		snprintf(want, sizeof(want), "(env %s, default ", names[i][1]);
		CHECK(strstr(outbuf, want) != NULL);
	}
	CHECK(strstr(outbuf, "(env E2B_CI_PORT, default 49999)\n") != NULL);
	CHECK(strstr(outbuf, "(env E2B_CI_LISTEN, default ::)\n") != NULL);
	CHECK(strstr(outbuf, "--check") != NULL);
	cfg_cleanup(&c);
	CHECK(load(&c, "--port=1", "-h", NULL) == 1);
	CHECK(strncmp(outbuf, "Usage: ", 7) == 0);
	cfg_cleanup(&c);
	clear_env();

	CHECK(load(&c, "--version", NULL) == 1);
	CHECK(strncmp(outbuf, "e2b-ci ", 7) == 0 && outbuf[outlen - 1] == '\n');
	cfg_cleanup(&c);

	CHECK(load(&c, "--check", "--port", "7", NULL) == 2);
	CHECK(c.port == 7 && c.listen != NULL);
	CHECK(outlen == 0);
	cfg_cleanup(&c);
	CHECK(load(&c, "--check", "--port", "x", NULL) == -1);
	cfg_cleanup(&c);
}

static void test_print(void)
{
	struct cfg c;
	char want[128];
	size_t i, lines = 0;
	FILE *out;

	clear_env();
	REQUIRE(load(&c, "--port=8080", NULL) == 0);
	free(outbuf);
	outbuf = NULL;
	out = open_memstream(&outbuf, &outlen);
	REQUIRE(out != NULL);
	cfg_print(&c, out);
	fclose(out);
	for (i = 0; i < NNAMES; i++) {
		snprintf(want, sizeof(want), "%s%s = ", i ? "\n" : "",
			 names[i][0]);
		CHECK(strstr(outbuf, want) != NULL);
	}
	for (i = 0; i < outlen; i++)
		lines += outbuf[i] == '\n';
	CHECK(lines == NNAMES);
	CHECK(strstr(outbuf, "\nport = 8080\n") != NULL);
	CHECK(strstr(outbuf, "listen = ::\n") != NULL);
	CHECK(strstr(outbuf, "\nruntime-dir = \"\"\n") != NULL);
	CHECK(strstr(outbuf, "\nmax-backlog = 67108864\n") != NULL);
	cfg_cleanup(&c);
}

int main(void)
{
	TEST(test_defaults);
	TEST(test_env_and_precedence);
	TEST(test_flag_errors);
	TEST(test_integer_values);
	TEST(test_string_values);
	TEST(test_zygote_values);
	TEST(test_help_version_check);
	TEST(test_print);
	free(outbuf);
	return test_report();
}
