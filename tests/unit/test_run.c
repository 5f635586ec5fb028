/*
 * test_run: run.c's phase machine against a stub kernel, envd and clock.
 *
 * Linked with run.c and what it truly uses (exec, enc, flatj, wire,
 * sha256, lang, log, metrics), not libe2bci.a: this file defines the
 * kernel_, envd_ and loop_ timer functions run.c calls (mk/unit.mk). The
 * stub kernel records every execute_request (its code, silent or not, the
 * msg_id it got) and every interrupt; the test answers as a kernel would,
 * on the channel a kernel would, with output messages left unparsed as
 * wire_decode_lazy leaves them. Time moves only when the test says so.
 *
 * Covered: ENVD -> GLOBALS -> ENV -> MAIN -> RESTORE and what each phase
 * sends, the queue, helper cells and requests the kernel aborts (sent
 * again), interrupts (repeated until the kernel reports, then a new kernel
 * asked for), the grace for a reply that trails idle (and one that never
 * comes), the kernel dying in every phase, deadlines (queued, running, spent
 * before the context was ready), failed sends, a cell asking to exit.
 */
#include "envd.h"
#include "exec.h"
#include "kernel.h"
#include "lang.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "run.h"
#include "streamsum.h"
#include "testhelp.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- the clock */

#define MAX_TIMERS 32

static uint64_t now_ms = 1000000;
static struct loop_timer *timers[MAX_TIMERS];

uint64_t loop_now_ms(void)
{
	return now_ms;
}

void loop_timer_disarm(struct loop *l, struct loop_timer *t)
{
	(void)l;
	for (size_t i = 0; i < MAX_TIMERS; i++)
		if (timers[i] == t)
			timers[i] = NULL;
	t->armed = false;
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t ms,
		    loop_fn fn, void *arg)
{
	loop_timer_disarm(l, t);
	t->due_ms = now_ms + ms;
	t->fn = fn;
	t->arg = arg;
	t->armed = true;
	for (size_t i = 0; i < MAX_TIMERS; i++) {
		if (!timers[i]) {
			timers[i] = t;
			return;
		}
	}
	fprintf(stderr, "test_run: too many timers\n");
	abort();
}

/* Moves the clock ms on, firing what falls due, earliest first (a timer
 * is disarmed before its callback, which may free it). */
static void advance(uint64_t ms)
{
	uint64_t end = now_ms + ms;

	for (;;) {
		struct loop_timer *t = NULL;
		for (size_t i = 0; i < MAX_TIMERS; i++)
			if (timers[i] && timers[i]->due_ms <= end &&
			    (!t || timers[i]->due_ms < t->due_ms))
				t = timers[i];
		if (!t)
			break;
		now_ms = t->due_ms > now_ms ? t->due_ms : now_ms;
		loop_timer_disarm(NULL, t);
		t->fn(t->arg, 0);
	}
	now_ms = end;
}

/* ------------------------------------------------------- the stub kernel */

#define MAX_SENT 64

struct kernel {
	int n;
};

static struct {
	char *code;
	bool silent;
	char msg_id[37];
} sent[MAX_SENT];
static size_t nsent, ninterrupts, send_fails; /* fail the next send_fails */

int kernel_execute(struct kernel *k, const char *code, size_t len, bool silent,
		   char *msg_id_out)
{
	(void)k;
	if (send_fails > 0) {
		send_fails--;
		return -EIO;
	}
	if (nsent == MAX_SENT)
		abort();
	sent[nsent].code = strndup(code, len);
	sent[nsent].silent = silent;
	snprintf(sent[nsent].msg_id, sizeof(sent[nsent].msg_id), "req-%zu",
		 nsent);
	if (msg_id_out)
		strcpy(msg_id_out, sent[nsent].msg_id);
	nsent++;
	return 0;
}

int kernel_interrupt(struct kernel *k)
{
	(void)k;
	ninterrupts++;
	return 0;
}

/* ----------------------------------------------------------- stub envd */

struct envd_req {
	envd_done_fn done;
	void *arg;
	char token[64];
};

static struct envd_req envd_one;
static bool envd_pending;
static size_t nfetches, ncancels;

struct envd_req *envd_fetch(struct loop *l, const char *url, const char *token,
			    long timeout_ms, envd_done_fn done, void *arg)
{
	(void)l;
	(void)url;
	(void)timeout_ms;
	nfetches++;
	envd_one.done = done;
	envd_one.arg = arg;
	snprintf(envd_one.token, sizeof(envd_one.token), "%s",
		 token ? token : "");
	envd_pending = true;
	return &envd_one;
}

void envd_cancel(struct envd_req *r)
{
	if (r && envd_pending) {
		envd_pending = false;
		ncancels++;
	}
}

/* envd answers: vars as JSON text (NULL: it failed, with why). */
static void envd_answer(const char *vars, const char *why)
{
	json_t *v = vars ? json_loads(vars, 0, NULL) : json_object();

	envd_pending = false;
	envd_one.done(envd_one.arg, v, why);
}

/* ------------------------------------------------------ the run's owner */

static struct metrics metrics;
static struct exec_budget budget = {1 << 20, 1 << 22, 0};
static const struct run_env env = {NULL, &metrics, "http://envd", 1000, 2000};
static struct kernel k1 = {1}, k2 = {2};
static struct run R;
static char restarted[128]; /* why the run asked for a new kernel */

static void owner_restart(void *arg, const char *why)
{
	struct run *r = arg;

	snprintf(restarted, sizeof(restarted), "%s", why);
	/* What ctx_restart does: the run lets go, a new kernel comes. */
	run_fail_all(r, false, "ContextRestarting", "Context was restarted");
}

static const struct run_ops ops = {owner_restart};

static void reset(void)
{
	for (size_t i = 0; i < nsent; i++)
		free(sent[i].code);
	memset(&metrics, 0, sizeof(metrics));
	memset(timers, 0, sizeof(timers));
	nsent = ninterrupts = send_fails = nfetches = ncancels = 0;
	envd_pending = false;
	restarted[0] = '\0';
	run_init(&R, &env, "ctx-test", "python", &ops, &R);
}

/* Ends the run as a deleted context does; then no timer may be left armed
 * (the loop would fire it into freed memory). */
static void done(void)
{
	run_fail_all(&R, true, "ContextDeleted", "Context was deleted");
	run_cleanup(&R);
	for (size_t i = 0; i < MAX_TIMERS; i++)
		CHECK(timers[i] == NULL);
}

static struct exec *new_exec(const char *code, const char *env_vars)
{
	json_t *vars = env_vars ? json_loads(env_vars, 0, NULL) : NULL;
	struct exec *e = exec_new(NULL, code, strlen(code), vars, "tok",
				  1000000000L, &budget);

	json_decref(vars);
	return e;
}

/* The kernel sends a message whose parent is request n (sent[n]). Output
 * messages come unparsed, as wire_decode_lazy delivers them. */
static void deliver(enum kernel_chan ch, const char *type, size_t n,
		    const char *content)
{
	struct wire_msg m = {0};
	bool lazy = strcmp(type, "stream") == 0 ||
		    strcmp(type, "execute_result") == 0 ||
		    strcmp(type, "display_data") == 0;

	m.header = json_pack("{ssssss}", "msg_type", type, "msg_id", "k",
			     "date", "2026-11-22T05:21:29.956554Z");
	m.msg_type = type;
	m.msg_id = "k";
	m.parent_msg_id = sent[n].msg_id;
	if (lazy) {
		m.raw_content.data = content;
		m.raw_content.len = strlen(content);
	} else {
		m.content = json_loads(content, 0, NULL);
	}
	run_on_msg(&R, ch, &m);
	json_decref(m.header);
	json_decref(m.content);
}

#define OK_REPLY      "{\"status\":\"ok\",\"execution_count\":1}"
#define ABORTED_REPLY "{\"status\":\"aborted\"}"
#define IDLE	      "{\"execution_state\":\"idle\"}"
#define BUSY	      "{\"execution_state\":\"busy\"}"

static void helper_ok(size_t n)
{
	deliver(KERNEL_SHELL, "execute_reply", n, OK_REPLY);
}

/* A whole cell as a kernel runs it: busy, input, a stdout line, its
 * result, the reply, idle. */
static void cell(size_t n)
{
	deliver(KERNEL_IOPUB, "status", n, BUSY);
	deliver(KERNEL_IOPUB, "execute_input", n,
		"{\"code\":\"x\",\"execution_count\":1}");
	deliver(KERNEL_IOPUB, "stream", n,
		"{\"name\":\"stdout\",\"text\":\"hi\\n\"}");
	deliver(KERNEL_IOPUB, "execute_result", n,
		"{\"execution_count\":1,\"data\":{\"text/plain\":\"2\"},"
		"\"metadata\":{}}");
	deliver(KERNEL_SHELL, "execute_reply", n, OK_REPLY);
	deliver(KERNEL_IOPUB, "status", n, IDLE);
}

static bool sent_is(size_t n, const char *code, bool silent)
{
	return n < nsent && strcmp(sent[n].code, code) == 0 &&
	       sent[n].silent == silent;
}

static bool sent_env(size_t n, const char *vars, bool save)
{
	json_t *v = json_loads(vars, 0, NULL);
	char *code = lang_env_code("python", v, save);
	bool same = code && sent_is(n, code, true);

	free(code);
	json_decref(v);
	return same;
}

/* ----------------------------------------------------------------- tests */

static void test_phases_in_order(void)
{
	struct exec *e = new_exec("1+1", "{\"B\":\"2\"}");
	char *restore = lang_env_restore_code("python");

	reset();
	run_start(&R, &k1);
	run_submit(&R, e);
	/* ENVD: the global env vars are fetched with the request's token. */
	CHECK(R.phase == RUN_ENVD && e->state == EXEC_PREPARE);
	CHECK(nfetches == 1 && strcmp(envd_one.token, "tok") == 0);
	CHECK(nsent == 0);
	envd_answer("{\"A\":\"1\"}", NULL);
	/* GLOBALS: a silent cell sets them, without saving. */
	CHECK(R.phase == RUN_GLOBALS && sent_env(0, "{\"A\":\"1\"}", false));
	helper_ok(0);
	/* ENV: a silent cell sets the request's env_vars, saving the old. */
	CHECK(R.phase == RUN_ENV && sent_env(1, "{\"B\":\"2\"}", true));
	helper_ok(1);
	/* MAIN: the code itself, not silent. */
	CHECK(R.phase == RUN_MAIN && sent_is(2, "1+1", false));
	CHECK(e->state == EXEC_RUNNING && metrics.executions == 1);
	CHECK(run_busy(&R));
	cell(2);
	CHECK_STR(stream_summary(e), "stdout result end_of_execution");
	CHECK(e->state == EXEC_DONE && e->job == NULL);
	/* RESTORE: the env_vars put back, the exec already let go. */
	CHECK(R.phase == RUN_RESTORE && sent_is(3, restore, true));
	CHECK(!run_busy(&R) && metrics.exec_count == 1);
	helper_ok(3);
	CHECK(R.phase == RUN_IDLE && nsent == 4);
	exec_unref(e);

	/* The next execution: env fetched already, no env_vars: MAIN. */
	e = new_exec("2+2", NULL);
	run_submit(&R, e);
	CHECK(nfetches == 1 && R.phase == RUN_MAIN && sent_is(4, "2+2", false));
	cell(4);
	CHECK(R.phase == RUN_IDLE && nsent == 5);
	exec_unref(e);
	free(restore);
	done();
}

static void test_queue_runs_in_order(void)
{
	struct exec *a = new_exec("a", NULL), *b = new_exec("b", NULL);

	reset();
	run_submit(&R, a);
	run_submit(&R, b);
	/* No kernel yet: both wait. */
	CHECK(a->state == EXEC_QUEUED && b->state == EXEC_QUEUED && nsent == 0);
	run_start(&R, &k1);
	envd_answer("{}", NULL);
	CHECK(sent_is(0, "a", false) && b->state == EXEC_QUEUED);
	deliver(KERNEL_IOPUB, "stream", 0,
		"{\"name\":\"stderr\",\"text\":\"w\\n\"}");
	deliver(KERNEL_SHELL, "execute_reply", 0, OK_REPLY);
	CHECK(nsent == 1); /* the reply alone does not end the cell */
	deliver(KERNEL_IOPUB, "status", 0, IDLE);
	CHECK_STR(stream_summary(a), "stderr end_of_execution");
	CHECK(sent_is(1, "b", false) && b->state == EXEC_RUNNING);
	/* A message of the finished request is not b's. */
	deliver(KERNEL_IOPUB, "stream", 0,
		"{\"name\":\"stdout\",\"text\":\"late\\n\"}");
	CHECK_STR(stream_summary(b), "");
	cell(1);
	CHECK_STR(stream_summary(b), "stdout result end_of_execution");
	exec_unref(a);
	exec_unref(b);
	done();
}

static void test_aborted_cells_are_sent_again(void)
{
	struct exec *e = new_exec("x", "{\"B\":\"2\"}");

	reset();
	run_start(&R, &k1);
	run_submit(&R, e);
	envd_answer("{}", NULL);
	/* ipykernel aborts what reaches it right after a failed cell: the
	 * helper goes again, at most five times in all, then the pipeline
	 * moves on. */
	CHECK(R.phase == RUN_ENV && nsent == 1);
	for (size_t i = 0; i < 4; i++) {
		deliver(KERNEL_SHELL, "execute_reply", i, ABORTED_REPLY);
		CHECK(nsent == i + 2 && R.phase == RUN_ENV);
		CHECK(strcmp(sent[i + 1].code, sent[0].code) == 0);
	}
	deliver(KERNEL_SHELL, "execute_reply", 4, ABORTED_REPLY);
	CHECK(R.phase == RUN_MAIN && sent_is(5, "x", false));
	/* The request itself, aborted before it ran: sent again under a new
	 * msg_id, counted once. */
	deliver(KERNEL_SHELL, "execute_reply", 5, ABORTED_REPLY);
	deliver(KERNEL_IOPUB, "status", 5, IDLE);
	CHECK(sent_is(6, "x", false) && R.phase == RUN_MAIN);
	CHECK(strcmp(sent[6].msg_id, R.msg_id) == 0);
	CHECK(metrics.executions == 1);
	cell(6);
	CHECK_STR(stream_summary(e), "stdout result end_of_execution");
	CHECK(R.phase == RUN_RESTORE);
	exec_unref(e);
	done();
}

static void test_interrupt_repeats_until_reported(void)
{
	struct exec *e = new_exec("while True: pass", NULL);

	reset();
	run_start(&R, &k1);
	run_submit(&R, e);
	envd_answer("{}", NULL);
	deliver(KERNEL_IOPUB, "status", 0, BUSY);
	/* The client goes away: the cell is interrupted... */
	exec_set_sink(e, NULL, NULL);
	run_cancel(e);
	CHECK(ninterrupts == 1 && e->interrupted && metrics.interrupts == 1);
	/* ...again every 500 ms while the kernel reports nothing... */
	advance(500);
	CHECK(ninterrupts == 2);
	deliver(KERNEL_IOPUB, "error", 0,
		"{\"ename\":\"KeyboardInterrupt\",\"evalue\":\"\","
		"\"traceback\":[]}");
	/* ...and never once it did. */
	advance(500);
	advance(500);
	CHECK(ninterrupts == 2);
	/* Interrupted: idle ends it even without a reply. */
	deliver(KERNEL_IOPUB, "status", 0, IDLE);
	CHECK(R.phase == RUN_IDLE && !run_busy(&R) && e->job == NULL);
	CHECK(!R.interrupt_timer.armed && restarted[0] == '\0');
	exec_unref(e);
	done();
}

static void test_deadline_interrupts_then_restarts(void)
{
	struct exec *e = new_exec("sleep", NULL);
	struct exec *q = new_exec("next", NULL);

	reset();
	e->deadline_ms = 3000;
	run_start(&R, &k1);
	run_submit(&R, e);
	run_submit(&R, q);
	envd_answer("{}", NULL);
	advance(2999);
	CHECK(ninterrupts == 0 && e->state == EXEC_RUNNING);
	advance(1);
	/* The stream ends at once; the cell is interrupted. */
	CHECK_STR(stream_summary(e), "error:TimeoutError end_of_execution");
	CHECK(ninterrupts == 1);
	/* It never stops: after --interrupt-timeout-ms a new kernel. */
	advance(2000);
	CHECK_STR(restarted, "interrupt timed out");
	CHECK(R.kernel == NULL && R.phase == RUN_IDLE && e->job == NULL);
	/* The queued execution waits for it, and runs on it. */
	CHECK(q->state == EXEC_QUEUED);
	run_start(&R, &k2);
	CHECK(nfetches == 2); /* a new kernel: global env again */
	envd_answer("{}", NULL);
	CHECK(sent_is(1, "next", false) && q->state == EXEC_RUNNING);
	exec_unref(e);
	exec_unref(q);
	done();
}

static void test_deadlines_while_queued_or_spent(void)
{
	struct exec *a = new_exec("a", NULL), *b = new_exec("b", NULL);
	struct exec *c = new_exec("c", NULL);

	reset();
	b->deadline_ms = 1000;
	run_submit(&R, a);
	run_submit(&R, b);
	advance(1000);
	/* b's deadline passed in the queue: it ends and leaves the queue. */
	CHECK_STR(stream_summary(b), "error:TimeoutError end_of_execution");
	CHECK(b->job == NULL && R.head && R.head == R.tail);
	/* Spent before its context was ready: never queued. */
	c->deadline_ms = 500;
	c->started_ms = now_ms - 600;
	run_submit(&R, c);
	CHECK_STR(stream_summary(c), "error:TimeoutError end_of_execution");
	CHECK(c->job == NULL);
	/* Ended while queued (its owner failed it): its deadline has nothing
	 * left to do; it stays until its turn, where it is skipped, its
	 * stream left as it ended. */
	struct exec *d = new_exec("d", NULL);
	d->deadline_ms = 1000;
	run_submit(&R, d);
	exec_fail(d, "ContextUnavailable", "no kernel");
	advance(1000);
	CHECK(d->job != NULL && R.tail == d->job);
	run_start(&R, &k1);
	envd_answer("{}", NULL);
	CHECK(nsent == 1 && sent_is(0, "a", false));
	cell(0);
	CHECK(nsent == 1 && d->job == NULL && R.phase == RUN_IDLE);
	CHECK_STR(stream_summary(d),
		  "error:ContextUnavailable end_of_execution");
	exec_unref(a);
	exec_unref(b);
	exec_unref(c);
	exec_unref(d);
	done();
}

static void test_reply_after_idle_grace(void)
{
	struct exec *a = new_exec("a", NULL), *b = new_exec("b", NULL);

	reset();
	run_start(&R, &k1);
	run_submit(&R, a);
	run_submit(&R, b);
	envd_answer("{}", NULL);
	/* Idle first, the reply a moment later (other socket): fine. */
	deliver(KERNEL_IOPUB, "status", 0, IDLE);
	CHECK(R.reply_timer.armed && a->state == EXEC_RUNNING);
	advance(999);
	deliver(KERNEL_SHELL, "execute_reply", 0, OK_REPLY);
	CHECK_STR(stream_summary(a), "end_of_execution");
	CHECK(!R.reply_timer.armed && sent_is(1, "b", false));
	/* Idle and no reply within the grace: the handler failed. */
	deliver(KERNEL_IOPUB, "status", 1, IDLE);
	advance(999);
	CHECK(b->state == EXEC_RUNNING);
	advance(1);
	CHECK_STR(stream_summary(b),
		  "error:UnexpectedEndOfExecution end_of_execution");
	CHECK(R.phase == RUN_IDLE && b->job == NULL);
	exec_unref(a);
	exec_unref(b);
	done();
}

/* Drives a fresh execution (with env_vars) to phase p. */
static struct exec *drive_to(enum run_phase p)
{
	struct exec *e = new_exec("x", "{\"B\":\"2\"}");

	run_start(&R, &k1);
	run_submit(&R, e);
	if (p == RUN_ENVD)
		return e;
	envd_answer("{\"A\":\"1\"}", NULL);
	if (p == RUN_GLOBALS)
		return e;
	helper_ok(0);
	if (p == RUN_ENV)
		return e;
	helper_ok(1);
	if (p == RUN_MAIN)
		return e;
	cell(2);
	return e;
}

static void test_kernel_death_in_every_phase(void)
{
	static const enum run_phase phases[] = {RUN_ENVD, RUN_GLOBALS, RUN_ENV,
						RUN_MAIN, RUN_RESTORE};

	for (size_t i = 0; i < sizeof(phases) / sizeof(*phases); i++) {
		struct exec *e, *q = new_exec("queued", NULL);
		size_t before;

		reset();
		e = drive_to(phases[i]);
		CHECK(R.phase == phases[i]);
		run_submit(&R, q);
		/* The kernel dies: what its context does. */
		run_fail_all(&R, false, "ContextRestarting",
			     "Context was restarted");
		CHECK(R.phase == RUN_IDLE && R.kernel == NULL);
		CHECK(R.helper_code == NULL && !envd_pending);
		CHECK(ncancels == (phases[i] == RUN_ENVD));
		CHECK_STR(stream_summary(e),
			  phases[i] == RUN_RESTORE
			      ? "stdout result end_of_execution"
			      : "error:ContextRestarting "
				"end_of_execution");
		CHECK(e->job == NULL && q->state == EXEC_QUEUED);
		/* A late reply of the dead kernel changes nothing. */
		before = nsent;
		if (before > 0)
			helper_ok(before - 1);
		CHECK(nsent == before && R.phase == RUN_IDLE);
		/* The new kernel: global env again, then the queued one. */
		run_start(&R, &k2);
		CHECK(R.phase == RUN_ENVD && envd_pending);
		envd_answer("{}", NULL);
		CHECK(sent_is(nsent - 1, "queued", false));
		exec_unref(e);
		exec_unref(q);
		done();
	}
}

static void test_restore_that_cannot_be_sent(void)
{
	struct exec *a = new_exec("a", "{\"B\":\"2\"}"),
		    *b = new_exec("b", NULL);

	reset();
	run_start(&R, &k1);
	run_submit(&R, a);
	run_submit(&R, b);
	envd_answer("{}", NULL);
	helper_ok(0);
	CHECK(sent_is(1, "a", false));
	send_fails = 1; /* the restore cell's send fails */
	cell(1);
	CHECK_STR(stream_summary(a), "stdout result end_of_execution");
	/* No restore in flight: idle again, and b runs. */
	CHECK(sent_is(2, "b", false) && R.phase == RUN_MAIN);
	exec_unref(a);
	exec_unref(b);
	done();
}

static void test_code_that_cannot_be_sent(void)
{
	struct exec *a = new_exec("a", NULL), *b = new_exec("b", NULL);

	reset();
	run_start(&R, &k1);
	run_submit(&R, a);
	run_submit(&R, b);
	send_fails = 1;
	envd_answer("{}", NULL);
	CHECK_STR(stream_summary(a),
		  "error:UnexpectedEndOfExecution end_of_execution");
	CHECK(sent_is(0, "b", false) && b->state == EXEC_RUNNING);
	CHECK(metrics.executions == 1); /* b's: a never reached the kernel */
	exec_unref(a);
	exec_unref(b);
	done();
}

static void test_cancel_queued_and_gone_before_running(void)
{
	struct exec *a = new_exec("a", NULL), *b = new_exec("b", NULL);
	struct exec *c = new_exec("c", NULL);

	reset();
	run_start(&R, &k1);
	run_submit(&R, a);
	run_submit(&R, b);
	run_submit(&R, c);
	/* b's client leaves while it is queued: it just leaves the queue. */
	exec_set_sink(b, NULL, NULL);
	run_cancel(b);
	CHECK(b->job == NULL && ninterrupts == 0);
	/* c's client leaves too, but only noticed at its turn: not run. */
	c->client_gone = true;
	envd_answer("{}", NULL);
	cell(0);
	CHECK(nsent == 1 && R.phase == RUN_IDLE && c->job == NULL);
	CHECK(metrics.executions == 1);
	exec_unref(a);
	exec_unref(b);
	exec_unref(c);
	done();
}

static void test_cell_asking_to_exit(void)
{
	struct exec *e = new_exec("exit()", NULL);

	reset();
	run_start(&R, &k1);
	run_submit(&R, e);
	envd_answer("{}", NULL);
	deliver(KERNEL_SHELL, "execute_reply", 0,
		"{\"status\":\"ok\",\"execution_count\":1,\"payload\":"
		"[{\"source\":\"ask_exit\",\"keepkernel\":false}]}");
	deliver(KERNEL_IOPUB, "status", 0, IDLE);
	CHECK_STR(restarted, "the code asked the kernel to exit");
	CHECK(R.kernel == NULL && e->job == NULL);
	exec_unref(e);
	done();
}

int main(void)
{
	log_init(LOG_LVL_ERR, 0);
	TEST(test_phases_in_order);
	TEST(test_queue_runs_in_order);
	TEST(test_aborted_cells_are_sent_again);
	TEST(test_interrupt_repeats_until_reported);
	TEST(test_deadline_interrupts_then_restarts);
	TEST(test_deadlines_while_queued_or_spent);
	TEST(test_reply_after_idle_grace);
	TEST(test_kernel_death_in_every_phase);
	TEST(test_restore_that_cannot_be_sent);
	TEST(test_code_that_cannot_be_sent);
	TEST(test_cancel_queued_and_gone_before_running);
	TEST(test_cell_asking_to_exit);
	reset();
	return test_report();
}
