/*
 * test_exec: the order of an execution's lines when the kernel's messages
 * arrive in the orders the two sockets allow. The shell reply and the iopub
 * messages travel on different sockets, so the execute_reply can overtake
 * output printed before an error; the stream must still read stdout, error,
 * end_of_execution, with exactly one error line.
 */
#include "exec.h"
#include "loop.h"
#include "testhelp.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>

static struct loop *tl;

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
	m.parent_msg_id = e->msg_id;
	st = exec_on_msg(e, shell, &m);
	json_decref(m.header);
	json_decref(m.content);
	return st;
}

static struct exec *running(void)
{
	struct exec *e = exec_new(tl, "x", 1, NULL, NULL, 60000, 1 << 20);

	if (e) {
		e->state = EXEC_RUNNING;
		strcpy(e->msg_id, "m1");
	}
	return e;
}

/* The stream so far as "type[:name]" words joined by spaces, e.g.
 * "stdout error:ZeroDivisionError end_of_execution". */
static char *summary(struct exec *e)
{
	static char out[1024];
	char buf[65536], *line, *save = NULL;
	ssize_t n = exec_read(e, buf, sizeof(buf) - 1);

	out[0] = '\0';
	if (n <= 0)
		return out;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		json_t *j = json_loads(line, 0, NULL);
		const char *t = json_string_value(json_object_get(j, "type"));
		const char *name =
		    json_string_value(json_object_get(j, "name"));

		if (t && strcmp(t, "number_of_executions") != 0)
			snprintf(out + strlen(out), sizeof(out) - strlen(out),
				 "%s%s%s%s", *out ? " " : "", t,
				 name ? ":" : "", name ? name : "");
		json_decref(j);
	}
	return out;
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

static void test_reply_overtakes_output_and_error(void)
{
	struct exec *e = running();

	REQUIRE(e);
	CHECK(feed(e, true, "execute_reply", REPLY_ERR) == EXEC_GOING);
	CHECK(feed(e, false, "stream", STDOUT) == EXEC_GOING);
	CHECK(feed(e, false, "error", IOPUB_ERR) == EXEC_GOING);
	CHECK(feed(e, false, "status", IDLE) == EXEC_COMPLETE);
	exec_finish(e);
	CHECK_STR(summary(e),
		  "stdout error:ZeroDivisionError end_of_execution");
	exec_unref(e);
}

static void test_iopub_first(void)
{
	struct exec *e = running();

	REQUIRE(e);
	feed(e, false, "stream", STDOUT);
	feed(e, false, "error", IOPUB_ERR);
	feed(e, true, "execute_reply", REPLY_ERR);
	CHECK(feed(e, false, "status", IDLE) == EXEC_COMPLETE);
	exec_finish(e);
	CHECK_STR(summary(e),
		  "stdout error:ZeroDivisionError end_of_execution");
	exec_unref(e);
}

/* A kernel that reports the error only in its reply still gets its line,
 * after everything iopub brought. */
static void test_error_only_in_the_reply(void)
{
	struct exec *e = running();

	REQUIRE(e);
	feed(e, true, "execute_reply", REPLY_ERR);
	feed(e, false, "stream", STDOUT);
	CHECK(feed(e, false, "status", IDLE) == EXEC_COMPLETE);
	exec_finish(e);
	CHECK_STR(summary(e),
		  "stdout error:ZeroDivisionError end_of_execution");
	exec_unref(e);
}

/* The stream ends early (context deleted) after the reply: the kernel's
 * error is the one the client sees, and only one. */
static void test_fail_after_error_reply(void)
{
	struct exec *e = running();

	REQUIRE(e);
	feed(e, true, "execute_reply", REPLY_ERR);
	exec_fail(e, "ContextDeleted", "Context was deleted");
	CHECK_STR(summary(e), "error:ZeroDivisionError end_of_execution");
	exec_unref(e);
}

static void test_aborted_reply_after_it_ran(void)
{
	struct exec *e = running();

	REQUIRE(e);
	feed(e, false, "execute_input", "{\"execution_count\":4}");
	feed(e, true, "execute_reply",
	     "{\"status\":\"aborted\",\"execution_count\":4}");
	CHECK(feed(e, false, "status", IDLE) == EXEC_COMPLETE);
	exec_finish(e);
	CHECK_STR(summary(e), "error:ExecutionAborted end_of_execution");
	exec_unref(e);
}

static void test_ok_reply_no_error(void)
{
	struct exec *e = running();

	REQUIRE(e);
	feed(e, true, "execute_reply", "{\"status\":\"ok\"}");
	feed(e, false, "stream", STDOUT);
	CHECK(feed(e, false, "status", IDLE) == EXEC_COMPLETE);
	exec_finish(e);
	CHECK_STR(summary(e), "stdout end_of_execution");
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
	loop_free(tl);
	return test_report();
}
