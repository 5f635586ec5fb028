/*
 * Unit tests for log: formats, threshold, errno handling, truncation.
 * stderr is pointed at a temporary file for each capture and restored after.
 */
#include "log.h"
#include "testhelp.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static char cap_buf[16384];
static int cap_fd = -1, saved_stderr = -1;

static void cap_begin(void)
{
	char tmpl[] = "/tmp/test_log.XXXXXX";

	cap_fd = mkstemp(tmpl);
	if (cap_fd < 0)
		abort();
	unlink(tmpl);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(cap_fd, STDERR_FILENO);
}

/* Restores stderr and returns everything written since cap_begin(). */
static const char *cap_end(void)
{
	ssize_t n;

	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	n = pread(cap_fd, cap_buf, sizeof(cap_buf) - 1, 0);
	close(cap_fd);
	cap_buf[n > 0 ? n : 0] = '\0';
	return cap_buf;
}

/* Checks "2026-11-21T23:59:59.123Z " shape at the start of s. */
static int is_timestamp(const char *s)
{
	const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ ";
	size_t i;

	for (i = 0; shape[i]; i++) {
		if (shape[i] == 'd' ? !isdigit((unsigned char)s[i])
				    : s[i] != shape[i])
			return 0;
	}
	return 1;
}

static void test_plain_format(void)
{
	const char *out;

	log_init(LOG_LVL_INFO, 0);
	cap_begin();
	log_info("hello %d", 42);
	out = cap_end();
	REQUIRE(strlen(out) > 25);
	CHECK(is_timestamp(out));
	CHECK_STR(out + 25, "INFO hello 42\n");
}

static void test_journal_format(void)
{
	const char *out;

	log_init(LOG_LVL_DEBUG, 1);
	cap_begin();
	log_debug("d");
	log_info("i");
	log_warnx("w");
	log_errx("e");
	out = cap_end();
	CHECK_STR(out, "<7>d\n<6>i\n<4>w\n<3>e\n");
}

static void test_errno_suffix_and_preserved(void)
{
	const char *out;
	int e1, e2, e3;

	log_init(LOG_LVL_INFO, 1);
	cap_begin();
	errno = ENOENT;
	log_warn("open %s", "x");
	e1 = errno;
	errno = EACCES;
	log_err("bind");
	e2 = errno;
	errno = EPERM;
	log_warnx("no suffix");
	e3 = errno;
	out = cap_end();
	CHECK(e1 == ENOENT);
	CHECK(e2 == EACCES);
	CHECK(e3 == EPERM);
	CHECK_STR(out, "<4>open x: No such file or directory\n"
		       "<3>bind: Permission denied\n"
		       "<4>no suffix\n");
}

static void test_threshold(void)
{
	const char *out;

	log_init(LOG_LVL_WARN, 1);
	cap_begin();
	log_debug("no");
	log_info("no");
	log_warnx("yes");
	log_errx("yes");
	out = cap_end();
	CHECK_STR(out, "<4>yes\n<3>yes\n");

	log_init(LOG_LVL_ERR, 1);
	cap_begin();
	log_warnx("no");
	log_errx("only");
	out = cap_end();
	CHECK_STR(out, "<3>only\n");
}

static void test_truncation_and_newlines(void)
{
	static char big[10000];
	const char *out;
	size_t n;

	memset(big, 'a', sizeof(big) - 1);
	log_init(LOG_LVL_INFO, 1);
	cap_begin();
	log_info("%s", big);
	log_info("two\nlines\r");
	out = cap_end();
	n = strcspn(out, "\n");
	CHECK(n == 4095);
	CHECK(strncmp(out, "<6>aaa", 6) == 0);
	CHECK(strncmp(out + n - 4, "a...\n", 5) == 0);
	CHECK_STR(out + n + 1, "<6>two lines \n");
}

static void test_parse_level(void)
{
	enum log_level l = LOG_LVL_INFO;

	CHECK(log_parse_level("error", &l) == 0 && l == LOG_LVL_ERR);
	CHECK(log_parse_level("warn", &l) == 0 && l == LOG_LVL_WARN);
	CHECK(log_parse_level("debug", &l) == 0 && l == LOG_LVL_DEBUG);
	CHECK(log_parse_level("INFO", &l) == 0 && l == LOG_LVL_INFO);
	CHECK(log_parse_level("loud", &l) == -1 && l == LOG_LVL_INFO);
	CHECK(log_parse_level("", &l) == -1);
	CHECK(log_parse_level(NULL, &l) == -1);
}

int main(void)
{
	TEST(test_plain_format);
	TEST(test_journal_format);
	TEST(test_errno_suffix_and_preserved);
	TEST(test_threshold);
	TEST(test_truncation_and_newlines);
	TEST(test_parse_level);
	return test_report();
}
