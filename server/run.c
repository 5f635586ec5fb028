/*
 * run: one context's execution pipeline (see run.h).
 *
 * State lives in struct ctx (queue, running exec, phase, the one pending
 * helper cell); this file owns its transitions. Invariant: at most one
 * request of ours is in the kernel at any time (a helper cell or the
 * execution), so every reply can be matched and nothing of ours is ever
 * queued behind a failing cell. Loop thread only.
 */
#include "run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "envd.h"
#include "exec.h"
#include "lang.h"
#include "log.h"
#include "server.h"
#include "wire.h"

#define RUN_INTERRUPT_REPEAT_MS 500
#define RUN_HELPER_TRIES	5
/* How long an execute_reply may trail its idle status. A kernel sends the
 * reply before idle, but on another socket, so the two can arrive in either
 * order, microseconds apart; one that has not come a second after idle is
 * not coming. */
#define RUN_REPLY_GRACE_MS 1000

static void run_advance(struct ctx *c);

static int run_send_helper_now(struct ctx *c)
{
	if (!c->kernel)
		return -1;
	return kernel_execute(c->kernel, c->helper_code, strlen(c->helper_code),
			      true, c->helper_id);
}

/* Sends a helper cell (code is stolen) and moves to phase; its reply moves
 * the pipeline on. Returns false, the phase unchanged, when there is
 * nothing to wait for (no helper for this language, or the send failed). */
static bool run_helper(struct ctx *c, char *code, enum run_phase phase)
{
	if (!code) {
		log_warnx("context %.8s: no env helper for language %s; env "
			  "vars not applied",
			  c->id, c->language);
		return false;
	}
	free(c->helper_code);
	c->helper_code = code;
	c->helper_tries = 1;
	if (run_send_helper_now(c) == 0) {
		c->phase = phase;
		return true;
	}
	free(c->helper_code);
	c->helper_code = NULL;
	return false;
}

static void run_release(struct ctx *c)
{
	struct exec *e = c->running;

	loop_timer_disarm(c->srv->loop, &c->interrupt_timer);
	loop_timer_disarm(c->srv->loop, &c->reply_timer);
	c->running = NULL;
	if (e) {
		e->ctx = NULL;
		exec_unref(e);
	}
}

static void run_complete(struct ctx *c)
{
	struct exec *e = c->running;
	char *restore = NULL;

	if (e->state == EXEC_RUNNING)
		metrics_exec(&c->srv->metrics, loop_now_ms() - e->run_ms);
	exec_finish(e);
	if (e->env_applied)
		restore = lang_env_restore_code(c->language);
	run_release(c);
	c->phase = RUN_IDLE;
	if (restore && run_helper(c, restore, RUN_RESTORE))
		return;
	run_pump(c);
}

static void run_send_main(struct ctx *c)
{
	struct exec *e = c->running;

	c->phase = RUN_MAIN;
	if (e->client_gone || e->state == EXEC_DONE) {
		/* Nobody waits for it any more: do not run it at all. */
		run_complete(c);
		return;
	}
	if (!c->kernel || kernel_execute(c->kernel, e->code, e->code_len, false,
					 e->msg_id) < 0) {
		exec_fail(e, "UnexpectedEndOfExecution",
			  "Could not send the code to the kernel");
		run_complete(c);
		return;
	}
	if (e->state != EXEC_RUNNING) {
		c->srv->metrics.executions++;
		e->run_ms = loop_now_ms();
	}
	e->state = EXEC_RUNNING;
}

static void run_on_envd(void *arg, json_t *vars, const char *why)
{
	struct ctx *c = arg;

	c->envd = NULL;
	/* Sandbox-wide env vars that never arrive are a misconfiguration or a
	 * broken envd: worth a warning, but once per context, not per cell. */
	if (why && !c->envd_warned) {
		c->envd_warned = true;
		log_warnx("context %.8s: GET %.200s/envs failed (%s): its code "
			  "runs without the sandbox-wide env vars (said once "
			  "per context)",
			  c->id, c->srv->cfg.envd_url, why);
	}
	json_decref(c->global_env);
	c->global_env = vars;
	c->need_global_env = false;
	if (c->phase != RUN_ENVD)
		return;
	if (json_object_size(vars) > 0) {
		log_debug("context %.8s: %zu global env vars from envd", c->id,
			  json_object_size(vars));
		if (run_helper(c, lang_env_code(c->language, vars, false),
			       RUN_GLOBALS))
			return;
	}
	c->phase = RUN_GLOBALS;
	run_advance(c);
}

/* Moves the running execution through the phases that need no answer. */
static void run_advance(struct ctx *c)
{
	struct exec *e = c->running;

	switch (c->phase) {
	case RUN_ENVD:
		if (c->need_global_env) {
			c->envd = envd_fetch(
			    c->srv->loop, c->srv->cfg.envd_url, e->token,
			    c->srv->cfg.envd_timeout_ms, run_on_envd, c);
			if (c->envd)
				return;
			c->need_global_env = false;
		}
		/* fall through */
	case RUN_GLOBALS:
		c->phase = RUN_ENV;
		if (e->env_vars && !e->client_gone) {
			e->env_applied = true;
			if (run_helper(
				c,
				lang_env_code(c->language, e->env_vars, true),
				RUN_ENV))
				return;
		}
		/* fall through */
	case RUN_ENV:
		run_send_main(c);
		return;
	case RUN_RESTORE:
		c->phase = RUN_IDLE;
		run_pump(c);
		return;
	case RUN_IDLE:
	case RUN_MAIN:
		return;
	}
}

void run_pump(struct ctx *c)
{
	struct exec *e;

	if (c->phase != RUN_IDLE || c->state != CTX_READY || !c->head ||
	    c->srv->stopping)
		return;
	e = c->head;
	c->head = e->next;
	if (!c->head)
		c->tail = NULL;
	e->next = NULL;
	c->running = e;
	e->state = EXEC_PREPARE;
	c->phase = RUN_ENVD;
	run_advance(c);
}

/* The request's own deadline passed: the stream ends with an error now and
 * the cell is interrupted (or dropped from the queue). */
static void run_deadline(void *arg, short revents)
{
	struct exec *e = arg;
	char value[96];

	(void)revents;
	snprintf(value, sizeof(value),
		 "Execution exceeded its deadline of "
		 "%lld ms",
		 e->deadline_ms);
	exec_ref(e);
	if (e->ctx)
		run_cancel(e->ctx, e);
	exec_fail(e, "TimeoutError", value);
	exec_unref(e);
}

/* Arms e's deadline for what is left of it: it counts from the request's
 * arrival, which for a context still starting its first kernel was a while
 * ago. Returns false when nothing is left. */
static bool run_arm_deadline(struct ctx *c, struct exec *e)
{
	uint64_t spent = loop_now_ms() - e->started_ms;

	if (e->deadline_ms <= 0)
		return true;
	if (spent >= (uint64_t)e->deadline_ms)
		return false;
	loop_timer_arm(c->srv->loop, &e->deadline,
		       (uint64_t)e->deadline_ms - spent, run_deadline, e);
	return true;
}

void run_submit(struct ctx *c, struct exec *e)
{
	if (!run_arm_deadline(c, e)) {
		char value[96];
		snprintf(value, sizeof(value),
			 "Execution exceeded its deadline of %lld ms before "
			 "its context was ready",
			 e->deadline_ms);
		exec_fail(e, "TimeoutError", value);
		return;
	}
	exec_ref(e);
	e->ctx = c;
	e->state = EXEC_QUEUED;
	if (c->tail)
		c->tail->next = e;
	else
		c->head = e;
	c->tail = e;
	if (c->state == CTX_FAILED) {
		/* Nothing will run here until a restart succeeds. */
		exec_fail(e, "ContextUnavailable", c->fail_reason);
	}
	run_pump(c);
}

/* Repeats the interrupt every RUN_INTERRUPT_REPEAT_MS until the kernel
 * reports it (an error, or the execute_reply): a SIGINT can land before the
 * cell runs, where ipykernel swallows it. Once reported it is never repeated:
 * a second KeyboardInterrupt inside ipykernel's own error handling does harm.
 * Restarts the kernel once interrupt_timeout_ms passed without the cell
 * ending. */
static void run_interrupt_tick(void *arg, short revents)
{
	struct ctx *c = arg;

	(void)revents;
	if (!c->running || !c->kernel)
		return;
	if (loop_now_ms() < c->interrupt_deadline) {
		if (c->running->last_report_ms < c->interrupt_sent_ms) {
			kernel_interrupt(c->kernel);
			c->interrupt_sent_ms = loop_now_ms();
		}
		loop_timer_arm(c->srv->loop, &c->interrupt_timer,
			       RUN_INTERRUPT_REPEAT_MS, run_interrupt_tick, c);
		return;
	}
	log_warnx("context %.8s: cell did not stop within %ld ms of an "
		  "interrupt; restarting the kernel",
		  c->id, c->srv->cfg.interrupt_timeout_ms);
	ctx_restart(c, "interrupt timed out");
}

/* Idle came for the running execution and its reply did not follow: the
 * kernel failed while handling the request (ipykernel publishes idle even
 * when its handler raised: code with a NUL byte, an error its JSON packer
 * cannot encode) and no reply will come. The kernel is alive and keeps its
 * state; the stream ends with an error and the context moves on. */
static void run_reply_missing(void *arg, short revents)
{
	struct ctx *c = arg;
	struct exec *e = c->running;

	(void)revents;
	if (c->phase != RUN_MAIN || !e)
		return;
	log_warnx("context %.8s: the kernel went idle without replying to the "
		  "execution; ending it (the kernel's log may say why)",
		  c->id);
	exec_fail(e, "UnexpectedEndOfExecution",
		  "The kernel went idle without replying to the execution "
		  "request: it failed while handling it");
	run_complete(c);
}

static bool run_unqueue(struct ctx *c, struct exec *e)
{
	for (struct exec **pp = &c->head; *pp; pp = &(*pp)->next) {
		if (*pp != e)
			continue;
		*pp = e->next;
		if (c->tail == e) {
			c->tail = NULL;
			for (struct exec *q = c->head; q; q = q->next)
				c->tail = q;
		}
		e->next = NULL;
		e->ctx = NULL;
		exec_unref(e);
		return true;
	}
	return false;
}

void run_cancel(struct ctx *c, struct exec *e)
{
	if (run_unqueue(c, e))
		return;
	if (c->running != e || e->state != EXEC_RUNNING || !c->kernel)
		return;
	if (e->got_idle) {
		/* The kernel is done with it and only its reply is missing
		 * (run_reply_missing would end it shortly): there is nothing
		 * to interrupt. */
		run_reply_missing(c, 0);
		return;
	}
	log_info("context %.8s: %s; interrupting the cell", c->id,
		 e->client_gone ? "client went away" : "deadline passed");
	c->srv->metrics.interrupts++;
	e->interrupted = true;
	kernel_interrupt(c->kernel);
	c->interrupt_sent_ms = loop_now_ms();
	c->interrupt_deadline =
	    loop_now_ms() + (uint64_t)c->srv->cfg.interrupt_timeout_ms;
	loop_timer_arm(c->srv->loop, &c->interrupt_timer,
		       RUN_INTERRUPT_REPEAT_MS, run_interrupt_tick, c);
}

static void run_on_helper_reply(struct ctx *c, struct wire_msg *m)
{
	const char *st =
	    json_string_value(json_object_get(m->content, "status"));

	if (st && strcmp(st, "aborted") == 0 &&
	    c->helper_tries < RUN_HELPER_TRIES) {
		c->helper_tries++;
		log_debug("context %.8s: helper cell aborted; sending it again",
			  c->id);
		if (run_send_helper_now(c) == 0)
			return;
	}
	if (st && strcmp(st, "ok") != 0)
		log_warnx(
		    "context %.8s: helper cell ended with status %s (%s)",
		    c->id, st,
		    json_string_value(json_object_get(m->content, "evalue"))
			?: "");
	free(c->helper_code);
	c->helper_code = NULL;
	c->helper_id[0] = '\0';
	if (c->phase == RUN_RESTORE || c->running)
		run_advance(c);
}

void run_on_msg(struct ctx *c, enum kernel_chan ch, struct wire_msg *m)
{
	const char *parent = m->parent_msg_id;
	struct exec *e = c->running;

	if (!parent || ch == KERNEL_CONTROL)
		return;
	if (c->phase == RUN_MAIN && e && strcmp(parent, e->msg_id) == 0) {
		switch (exec_on_msg(e, ch == KERNEL_SHELL, m)) {
		case EXEC_COMPLETE:
			if (e->ask_exit)
				ctx_restart(
				    c, "the code asked the kernel to exit");
			else
				run_complete(c);
			break;
		case EXEC_NO_REPLY:
			if (!c->reply_timer.armed)
				loop_timer_arm(c->srv->loop, &c->reply_timer,
					       RUN_REPLY_GRACE_MS,
					       run_reply_missing, c);
			break;
		case EXEC_RESEND:
			log_debug(
			    "context %.8s: request aborted before it ran; "
			    "sending it again",
			    c->id);
			run_send_main(c);
			break;
		case EXEC_GOING:
			break;
		}
		return;
	}
	if (ch == KERNEL_SHELL && c->helper_code &&
	    strcmp(m->msg_type, "execute_reply") == 0 &&
	    strcmp(parent, c->helper_id) == 0)
		run_on_helper_reply(c, m);
}

void run_fail_all(struct ctx *c, bool queued, const char *name,
		  const char *value)
{
	if (c->running) {
		exec_fail(c->running, name, value);
		run_release(c);
	}
	while (queued && c->head) {
		struct exec *e = c->head;
		c->head = e->next;
		e->next = NULL;
		e->ctx = NULL;
		exec_fail(e, name, value);
		exec_unref(e);
	}
	if (queued)
		c->tail = NULL;
	c->phase = RUN_IDLE;
	free(c->helper_code);
	c->helper_code = NULL;
	envd_cancel(c->envd);
	c->envd = NULL;
}
