/*
 * testhelp.h: the unit-test harness, in the spirit of redis src/testhelp.h.
 *
 * A test file defines static void test_x(void) functions, calls them through
 * TEST(test_x) from main() and returns test_report(). CHECK() records a
 * failure with file:line and goes on; REQUIRE() also returns from the test.
 * The last line printed is "unit: N passed, N failed" for the whole binary.
 */
#ifndef E2BCI_TESTHELP_H
#define E2BCI_TESTHELP_H

#include <stdio.h>
#include <string.h>

static int th_passed, th_failed, th_cur_failed;
static const char *th_cur;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "  FAIL %s: %s:%d: %s\n", th_cur,      \
				__FILE__, __LINE__, #cond);                    \
			th_cur_failed++;                                       \
		}                                                              \
	} while (0)

#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "  FAIL %s: %s:%d: %s\n", th_cur,      \
				__FILE__, __LINE__, #cond);                    \
			th_cur_failed++;                                       \
			return;                                                \
		}                                                              \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *th_a = (a), *th_b = (b);                           \
		if (!th_a || !th_b || strcmp(th_a, th_b) != 0) {               \
			fprintf(stderr, "  FAIL %s: %s:%d: %s == %s\n"         \
				"    got:      %s\n    expected: %s\n",        \
				th_cur, __FILE__, __LINE__, #a, #b,            \
				th_a ? th_a : "(null)", th_b ? th_b : "(null)");\
			th_cur_failed++;                                       \
		}                                                              \
	} while (0)

#define TEST(fn)                                                               \
	do {                                                                   \
		th_cur = #fn;                                                  \
		th_cur_failed = 0;                                             \
		fn();                                                          \
		if (th_cur_failed) {                                           \
			th_failed++;                                           \
			printf("FAIL %s\n", #fn);                              \
		} else {                                                       \
			th_passed++;                                           \
			printf("ok   %s\n", #fn);                              \
		}                                                              \
	} while (0)

static inline int test_report(void)
{
	printf("unit: %d passed, %d failed\n", th_passed, th_failed);
	return th_failed ? 1 : 0;
}

#endif
