/*
 * Unit tests for the bounds on an execution's unread output (exec.c,
 * struct exec_budget): --max-backlog per execution, --max-backlog-total over
 * all of them. Output past either is dropped with one notice naming which
 * bound was hit; error and end lines are always kept; what a reader takes,
 * what a gone client leaves and what a freed execution held all return to
 * the shared budget. Stream messages come both parsed and as raw content
 * (wire_decode_lazy); a raw result is weighed before it is parsed.
 */
#include "exec.h"
#include "loop.h"
#include "testhelp.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>

static struct loop *tl;

static void feed_json(struct exec *e, const char *type, json_t *content)
{
	struct wire_msg m = {0};

	m.header = json_pack("{ssss}", "msg_type", type, "date",
			     "2026-11-22T05:21:29.956554Z");
	m.content = content;
	m.msg_type = type;
	m.msg_id = "";
	m.parent_msg_id = "m1"; /* run_ routes by it; exec_ never looks */
	exec_on_msg(e, false, &m);
	json_decref(m.header);
	json_decref(m.content);
}

/* A stdout message of n bytes of 'y'; raw: left unparsed, as
 * wire_decode_lazy leaves it. */
static void feed_text(struct exec *e, size_t n, bool raw)
{
	char *text = malloc(n + 1);
	struct wire_msg m = {0};
	char *content;

	memset(text, 'y', n);
	text[n] = '\0';
	if (!raw) {
		feed_json(e, "stream",
			  json_pack("{ssss}", "name", "stdout", "text", text));
		free(text);
		return;
	}
	content = malloc(n + 64);
	snprintf(content, n + 64, "{\"name\":\"stdout\",\"text\":\"%s\"}",
		 text);
	m.header = json_pack("{ss}", "msg_type", "stream");
	m.msg_type = "stream";
	m.msg_id = "";
	m.parent_msg_id = "m1"; /* run_ routes by it; exec_ never looks */
	m.raw_content.data = content;
	m.raw_content.len = strlen(content);
	exec_on_msg(e, false, &m);
	wire_msg_cleanup(&m);
	free(content);
	free(text);
}

static void nop_wake(void *sink)
{
	(void)sink;
}

static struct exec *running(struct exec_budget *b)
{
	struct exec *e = exec_new(tl, "x", 1, NULL, NULL, 60000, b);

	if (e) {
		e->state = EXEC_RUNNING;
		exec_set_sink(e, nop_wake, NULL);
	}
	return e;
}

/* Everything unread, as one string (caller frees). */
static char *drain(struct exec *e)
{
	size_t cap = e->pending + 1, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	while ((n = exec_read(e, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return buf;
}

static int count(const char *s, const char *needle)
{
	int n = 0;

	while ((s = strstr(s, needle)) != NULL) {
		n++;
		s += strlen(needle);
	}
	return n;
}

static void test_per_execution_bound(void)
{
	struct exec_budget b = {4096, 1 << 20, 0};
	struct exec *e = running(&b);
	char *out;

	REQUIRE(e);
	for (int i = 0; i < 10; i++)
		feed_text(e, 1000, i & 1);
	CHECK(e->pending <= 4096 + 200); /* + the notice */
	CHECK(b.used == e->held && e->held > e->pending);
	CHECK(e->dropped > 0);
	feed_json(
	    e, "error",
	    json_pack("{sssss[]}", "ename", "E", "evalue", "v", "traceback"));
	exec_finish(e);
	out = drain(e);
	CHECK(count(out, "client reads slower") == 1);
	CHECK(count(out, "\"type\":\"error\"") == 1);
	CHECK(count(out, "end_of_execution") == 1);
	CHECK(count(out, "\"type\":\"stdout\"") == 3);
	CHECK(b.used == 0 && e->pending == 0 && e->held == 0);
	free(out);
	exec_unref(e);
}

/* Two executions share the total: the second one's output is dropped
 * while the first holds the budget, and flows again once it was read. */
static void test_total_bound_across_executions(void)
{
	struct exec_budget b = {1 << 20, 8192, 0};
	struct exec *a = running(&b), *c = running(&b);
	char *out;

	REQUIRE(a && c);
	for (int i = 0; i < 7; i++)
		feed_text(a, 1000, i & 1);
	CHECK(a->dropped == 0);
	feed_text(c, 1000, false);
	feed_text(c, 1000, true);
	CHECK(c->dropped == 2);
	CHECK(b.used == a->held + c->held);
	CHECK(b.used <= 8192 + 200);
	out = drain(c);
	CHECK(count(out, "all executions reached the daemon's limit") == 1);
	free(out);
	free(drain(a));
	CHECK(b.used == 0);
	feed_text(c, 1000, true);
	out = drain(c);
	CHECK(count(out, "\"type\":\"stdout\"") == 1);
	free(out);
	exec_unref(a);
	exec_unref(c);
}

/* A client that goes away leaves nothing behind; neither does a freed
 * execution with unread lines. */
static void test_budget_returned(void)
{
	struct exec_budget b = {1 << 20, 1 << 20, 0};
	struct exec *a = running(&b), *c = running(&b);

	REQUIRE(a && c);
	feed_text(a, 5000, false);
	feed_text(c, 5000, true);
	CHECK(b.used > 10000);
	exec_set_sink(a, NULL, NULL);
	CHECK(a->pending == 0 && a->held == 0 && b.used == c->held);
	feed_text(a, 5000, false); /* nobody reads: not kept */
	CHECK(a->pending == 0);
	exec_unref(a);
	exec_unref(c);
	CHECK(b.used == 0);
}

/* Raw stream content is weighed as it came: what cannot fit is dropped
 * without being encoded; content just under the bound is kept. */
static void test_raw_drop_before_encoding(void)
{
	struct exec_budget b = {2048, 1 << 20, 0};
	struct exec *e = running(&b);

	REQUIRE(e);
	feed_text(e, 1800, true);
	CHECK(e->dropped == 0 && e->pending > 1800);
	feed_text(e, 100000, true);
	CHECK(e->dropped == 1);
	free(drain(e));
	exec_unref(e);
	CHECK(b.used == 0);
}

/* A raw result is parsed only when its line and the copies on the way
 * fit the total; otherwise it is dropped unparsed. */
static void test_raw_result_weighed_before_parsing(void)
{
	struct exec_budget b = {1 << 20, 40000, 0};
	struct exec *e = running(&b);
	char content[12000];
	struct wire_msg m = {0};

	REQUIRE(e);
	snprintf(content, sizeof(content),
		 "{\"data\":{\"text/plain\":\"%09000d\"},\"metadata\":{}}", 7);
	m.header = json_pack("{ss}", "msg_type", "display_data");
	m.msg_type = "display_data";
	m.msg_id = "";
	m.parent_msg_id = "m1"; /* run_ routes by it; exec_ never looks */
	m.raw_content.data = content;
	m.raw_content.len = strlen(content);
	exec_on_msg(e, false, &m);
	CHECK(m.content != NULL && e->dropped == 0 && e->pending > 9000);
	json_decref(m.content);
	m.content = NULL;
	m.raw_content.data = content;
	m.raw_content.len = strlen(content);
	exec_on_msg(e, false, &m); /* 9 KB held: 4 x 9 KB more do not fit */
	CHECK(m.content == NULL && e->dropped == 1);
	wire_msg_cleanup(&m);
	free(drain(e));
	exec_unref(e);
	CHECK(b.used == 0);
}

int main(void)
{
	tl = loop_new();
	TEST(test_per_execution_bound);
	TEST(test_total_bound_across_executions);
	TEST(test_budget_returned);
	TEST(test_raw_drop_before_encoding);
	TEST(test_raw_result_weighed_before_parsing);
	loop_free(tl);
	return test_report();
}
