/*
 * test_dbuf: the growable buffer: growth keeps every byte, the cap is exact,
 * a failure sticks until reset or take, take hands over a string, the
 * in-place writes of the hot paths (room + commit), shift.
 */
#include "testhelp.h"

#include "dbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void test_grows_and_keeps_every_byte(void)
{
	struct dbuf b;
	char want[100000];

	dbuf_init(&b, DBUF_NOMAX);
	CHECK(dbuf_len(&b) == 0);
	CHECK_STR(dbuf_ptr(&b), "");
	for (size_t i = 0; i < sizeof(want); i++) {
		char c = (char)('a' + i % 26);
		want[i] = c;
		REQUIRE(dbuf_add(&b, &c, 1) == 0);
	}
	CHECK(dbuf_len(&b) == sizeof(want));
	CHECK(memcmp(dbuf_ptr(&b), want, sizeof(want)) == 0);
	CHECK(dbuf_ptr(&b)[sizeof(want)] == '\0');
	/* Doubling: a hundred thousand single adds, a few reallocations. */
	CHECK(b.cap >= b.len + 1 && b.cap <= 2 * (b.len + 1));
	dbuf_cleanup(&b);
	CHECK(b.p == NULL && b.len == 0);
}

static void test_cap_is_exact(void)
{
	struct dbuf b;

	dbuf_init(&b, 10);
	CHECK(dbuf_add(&b, "0123456789", 10) == 0);
	CHECK(dbuf_len(&b) == 10);
	CHECK_STR(dbuf_ptr(&b), "0123456789");
	/* Never more than the cap can use is allocated. */
	CHECK(b.cap == 11);
	CHECK(dbuf_add(&b, "x", 1) == -E2BIG);
	CHECK(dbuf_err(&b) == -E2BIG);
	CHECK_STR(dbuf_ptr(&b), "0123456789");
	dbuf_cleanup(&b);

	dbuf_init(&b, 10);
	CHECK(dbuf_add(&b, "01234567890", 11) == -E2BIG);
	CHECK(dbuf_len(&b) == 0);
	dbuf_cleanup(&b);

	/* Zero bytes fit a full buffer. */
	dbuf_init(&b, 3);
	CHECK(dbuf_add(&b, "abc", 3) == 0);
	CHECK(dbuf_add(&b, "", 0) == 0);
	CHECK(dbuf_err(&b) == 0);
	dbuf_cleanup(&b);
}

static void test_failure_sticks(void)
{
	struct dbuf b;
	char *s;

	dbuf_init(&b, 8);
	CHECK(dbuf_addstr(&b, "abcd") == 0);
	CHECK(dbuf_addstr(&b, "efghij") == -E2BIG);
	/* Later adds that would fit do nothing and report the failure. */
	CHECK(dbuf_addstr(&b, "e") == -E2BIG);
	CHECK(dbuf_addf(&b, "%d", 1) == -E2BIG);
	CHECK(dbuf_room(&b, 1) == NULL);
	CHECK(dbuf_len(&b) == 4);
	CHECK_STR(dbuf_ptr(&b), "abcd");
	/* One check at the end: take gives nothing, and starts over. */
	CHECK(dbuf_take(&b, NULL) == NULL);
	CHECK(dbuf_err(&b) == 0 && dbuf_len(&b) == 0 && b.p == NULL);
	CHECK(dbuf_addstr(&b, "ok") == 0);
	s = dbuf_take(&b, NULL);
	CHECK_STR(s, "ok");
	free(s);

	/* reset clears it too, keeping the memory. */
	dbuf_init(&b, 4);
	CHECK(dbuf_addstr(&b, "abcde") == -E2BIG);
	dbuf_reset(&b);
	CHECK(dbuf_err(&b) == 0);
	CHECK(dbuf_addstr(&b, "abcd") == 0);
	CHECK_STR(dbuf_ptr(&b), "abcd");
	dbuf_cleanup(&b);
}

static void test_take(void)
{
	struct dbuf b;
	size_t len = 99;
	char *s;

	/* Nothing added: an empty string of the caller's. */
	dbuf_init(&b, DBUF_NOMAX);
	s = dbuf_take(&b, &len);
	REQUIRE(s);
	CHECK_STR(s, "");
	CHECK(len == 0);
	free(s);

	dbuf_init(&b, DBUF_NOMAX);
	CHECK(dbuf_add(&b, "a\0b", 3) == 0);
	s = dbuf_take(&b, &len);
	REQUIRE(s);
	CHECK(len == 3 && memcmp(s, "a\0b", 4) == 0);
	free(s);
	/* The buffer is empty again and usable. */
	CHECK(b.p == NULL && dbuf_len(&b) == 0);
	CHECK(dbuf_addstr(&b, "again") == 0);
	s = dbuf_take(&b, NULL);
	CHECK_STR(s, "again");
	free(s);
}

static void test_trim(void)
{
	struct dbuf b;
	char *w, *s;

	dbuf_init(&b, DBUF_NOMAX);
	w = dbuf_room(&b, 6000);
	REQUIRE(w);
	memcpy(w, "short", 5);
	dbuf_commit(&b, 5);
	CHECK(b.cap > 6000);
	/* A buffer that is kept gives back what it reserved. */
	dbuf_trim(&b);
	CHECK(b.cap == 6);
	CHECK_STR(dbuf_ptr(&b), "short");
	CHECK(dbuf_add(&b, "er", 2) == 0);
	s = dbuf_take(&b, NULL);
	CHECK_STR(s, "shorter");
	free(s);
	dbuf_trim(&b);
	CHECK(b.p == NULL);
}

static void test_addf(void)
{
	struct dbuf b;
	char big[3000];

	dbuf_init(&b, DBUF_NOMAX);
	CHECK(dbuf_addf(&b, "%s=%d;", "x", 42) == 0);
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	/* Longer than the room there is: grown, printed again, whole. */
	CHECK(dbuf_addf(&b, "[%s]", big) == 0);
	CHECK(dbuf_len(&b) == 5 + sizeof(big) + 1);
	CHECK(strncmp(dbuf_ptr(&b), "x=42;[zzz", 9) == 0);
	CHECK(dbuf_ptr(&b)[dbuf_len(&b) - 1] == ']');
	CHECK(dbuf_ptr(&b)[dbuf_len(&b)] == '\0');
	dbuf_cleanup(&b);

	/* The cap holds for printf output, and a cut attempt leaves the
	 * string as it was. */
	dbuf_init(&b, 200);
	CHECK(dbuf_addf(&b, "%s", "hello") == 0);
	CHECK(dbuf_addf(&b, "%s", big) == -E2BIG);
	CHECK_STR(dbuf_ptr(&b), "hello");
	dbuf_cleanup(&b);
}

static void test_room_and_commit(void)
{
	struct dbuf b;
	char *w;

	dbuf_init(&b, 100);
	w = dbuf_room(&b, 60);
	REQUIRE(w);
	memcpy(w, "abc", 3);
	dbuf_commit(&b, 3);
	CHECK_STR(dbuf_ptr(&b), "abc");
	/* Room is what the cap leaves, no more. */
	CHECK(dbuf_room(&b, 97) != NULL);
	CHECK(dbuf_err(&b) == 0);
	CHECK(dbuf_room(&b, 98) == NULL);
	CHECK(dbuf_err(&b) == -E2BIG);
	dbuf_cleanup(&b);
}

static void test_shift(void)
{
	struct dbuf b;

	dbuf_init(&b, DBUF_NOMAX);
	CHECK(dbuf_addstr(&b, "0123456789") == 0);
	dbuf_shift(&b, 4);
	CHECK_STR(dbuf_ptr(&b), "456789");
	CHECK(dbuf_len(&b) == 6);
	dbuf_shift(&b, 100);
	CHECK_STR(dbuf_ptr(&b), "");
	CHECK(dbuf_len(&b) == 0);
	dbuf_shift(&b, 1);
	dbuf_cleanup(&b);

	/* Shifting frees room under the cap. */
	dbuf_init(&b, 4);
	CHECK(dbuf_addstr(&b, "abcd") == 0);
	dbuf_shift(&b, 2);
	CHECK(dbuf_addstr(&b, "ef") == 0);
	CHECK_STR(dbuf_ptr(&b), "cdef");
	dbuf_cleanup(&b);
}

int main(void)
{
	TEST(test_grows_and_keeps_every_byte);
	TEST(test_cap_is_exact);
	TEST(test_failure_sticks);
	TEST(test_take);
	TEST(test_trim);
	TEST(test_addf);
	TEST(test_room_and_commit);
	TEST(test_shift);
	return test_report();
}
