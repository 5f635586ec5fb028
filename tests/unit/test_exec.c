/*
 * test_exec: the order of an execution's lines when the kernel's messages
 * arrive in the orders the two sockets allow. The shell reply and the iopub
 * messages travel on different sockets, so the execute_reply can overtake
 * output printed before an error; the stream must still read stdout, error,
 * end_of_execution, with exactly one error line.
 */
#include "exec.h"
#include "loop.h"
#include "streamsum.h"
#include "testhelp.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>

static struct loop *tl;
static struct exec_budget budget = {1 << 20, 1 << 20, 0};

/* Feeds one message: msg_type plus a content object given as JSON. */
static enum exec_step feed(struct exec *e, bool shell, const char *type,
			   const char *content)
{
	struct wire_msg m = {0};
	enum exec_step st;

	m.header = json_pack("{ssss}", "msg_type", type, "date",
			     "2026-11-22T05:21:29.956554Z");
	m.content = json_loads(content, 0, NULL);
	m.msg_type = type;
	m.msg_id = "";
	m.parent_msg_id = "m1"; /* run_ routes by it; exec_ never looks */
	st = exec_on_msg(e, shell, &m);
	json_decref(m.header);
	json_decref(m.content);
	return st;
}

static struct exec *running(void)
{
	struct exec *e = exec_new(tl, "x", 1, NULL, NULL, 60000, &budget);

	if (e)
		e->state = EXEC_RUNNING;
	return e;
}

#define REPLY_ERR                                                              \
	"{\"status\":\"error\",\"execution_count\":3,\"ename\":"               \
	"\"ZeroDivisionError\",\"evalue\":\"division by zero\","               \
	"\"traceback\":[]}"
#define IOPUB_ERR                                                              \
	"{\"ename\":\"ZeroDivisionError\",\"evalue\":\"division by zero\","    \
	"\"traceback\":[\"tb\"]}"
#define STDOUT "{\"name\":\"stdout\",\"text\":\"before\\n\"}"
#define IDLE   "{\"execution_state\":\"idle\"}"

struct step {
	bool shell;
	const char *type, *content;
};

#define REPLY(c)                                                               \
	{                                                                      \
		true, "execute_reply", c                                       \
	}
#define IOPUB(t, c)                                                            \
	{                                                                      \
		false, t, c                                                    \
	}
#define NSTEPS(a) (sizeof(a) / sizeof(*(a)))

/* Feeds the steps to a running execution: the cell is complete after the
 * last one, not before (unless fail: then it ends early through exec_fail,
 * as when its context is deleted). Then checks the stream's summary. */
static void play(const struct step *st, size_t n, bool fail, const char *want)
{
	struct exec *e = running();

	REQUIRE(e);
	for (size_t i = 0; i < n; i++)
		CHECK(feed(e, st[i].shell, st[i].type, st[i].content) ==
		      (i + 1 == n && !fail ? EXEC_COMPLETE : EXEC_GOING));
	if (fail)
		exec_fail(e, "ContextDeleted", "Context was deleted");
	else
		exec_finish(e);
	CHECK_STR(stream_summary(e), want);
	exec_unref(e);
}

static void test_reply_overtakes_output_and_error(void)
{
	static const struct step st[] = {
	    REPLY(REPLY_ERR), IOPUB("stream", STDOUT),
	    IOPUB("error", IOPUB_ERR), IOPUB("status", IDLE)};

	play(st, NSTEPS(st), false,
	     "stdout error:ZeroDivisionError end_of_execution");
}

static void test_iopub_first(void)
{
	static const struct step st[] = {
	    IOPUB("stream", STDOUT), IOPUB("error", IOPUB_ERR),
	    REPLY(REPLY_ERR), IOPUB("status", IDLE)};

	play(st, NSTEPS(st), false,
	     "stdout error:ZeroDivisionError end_of_execution");
}

/* A kernel that reports the error only in its reply still gets its line,
 * after everything iopub brought. */
static void test_error_only_in_the_reply(void)
{
	static const struct step st[] = {
	    REPLY(REPLY_ERR), IOPUB("stream", STDOUT), IOPUB("status", IDLE)};

	play(st, NSTEPS(st), false,
	     "stdout error:ZeroDivisionError end_of_execution");
}

/* The stream ends early (context deleted) after the reply: the kernel's
 * error is the one the client sees, and only one. */
static void test_fail_after_error_reply(void)
{
	static const struct step st[] = {REPLY(REPLY_ERR)};

	play(st, NSTEPS(st), true, "error:ZeroDivisionError end_of_execution");
}

static void test_aborted_reply_after_it_ran(void)
{
	static const struct step st[] = {
	    IOPUB("execute_input", "{\"execution_count\":4}"),
	    REPLY("{\"status\":\"aborted\",\"execution_count\":4}"),
	    IOPUB("status", IDLE)};

	play(st, NSTEPS(st), false, "error:ExecutionAborted end_of_execution");
}

static void test_ok_reply_no_error(void)
{
	static const struct step st[] = {REPLY("{\"status\":\"ok\"}"),
					 IOPUB("stream", STDOUT),
					 IOPUB("status", IDLE)};

	play(st, NSTEPS(st), false, "stdout end_of_execution");
}

/* Idle before the reply: the reply may still come (another socket), so
 * the caller hears "no reply yet" and the cell completes with the reply. */
static void test_idle_before_reply(void)
{
	struct exec *e = running();

	REQUIRE(e);
	CHECK(feed(e, false, "stream", STDOUT) == EXEC_GOING);
	CHECK(feed(e, false, "status", IDLE) == EXEC_NO_REPLY);
	CHECK(feed(e, true, "execute_reply", "{\"status\":\"ok\"}") ==
	      EXEC_COMPLETE);
	exec_finish(e);
	CHECK_STR(stream_summary(e), "stdout end_of_execution");
	exec_unref(e);
}

/* Idle and never a reply (the kernel's handler failed): every later
 * message still says so, and the run module's ending reads as one error. */
static void test_idle_without_reply(void)
{
	struct exec *e = running();

	REQUIRE(e);
	CHECK(feed(e, false, "status", IDLE) == EXEC_NO_REPLY);
	CHECK(feed(e, false, "stream", STDOUT) == EXEC_NO_REPLY);
	exec_fail(e, "UnexpectedEndOfExecution", "no reply");
	CHECK_STR(stream_summary(e),
		  "stdout error:UnexpectedEndOfExecution end_of_execution");
	exec_unref(e);
}

int main(void)
{
	tl = loop_new();
	if (!tl)
		return 1;
	TEST(test_reply_overtakes_output_and_error);
	TEST(test_iopub_first);
	TEST(test_error_only_in_the_reply);
	TEST(test_fail_after_error_reply);
	TEST(test_aborted_reply_after_it_ran);
	TEST(test_ok_reply_no_error);
	TEST(test_idle_before_reply);
	TEST(test_idle_without_reply);
	loop_free(tl);
	return test_report();
}
