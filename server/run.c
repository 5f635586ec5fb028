/*
 * run: one context's execution pipeline (see run.h).
 *
 * All state is struct run's (queue, running execution, phase, the one
 * pending helper cell, global env, timers) plus one small struct run_job
 * per execution it holds (the queue link and the deadline timer); struct
 * exec only points back at its job. Invariant: at most one request of ours
 * is in the kernel at any time (a helper cell or the execution), so every
 * reply can be matched and nothing of ours is ever queued behind a failing
 * cell. Loop thread only.
 */
#include "run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envd.h"
#include "exec.h"
#include "lang.h"
#include "log.h"
#include "metrics.h"
#include "wire.h"

#define RUN_INTERRUPT_REPEAT_MS 500
#define RUN_HELPER_TRIES	5
/* How long an execute_reply may trail its idle status. A kernel sends the
 * reply before idle, but on another socket, so the two can arrive in either
 * order, microseconds apart; one that has not come a second after idle is
 * not coming. */
#define RUN_REPLY_GRACE_MS 1000

/* An execution while a run holds it (queued or running). */
struct run_job {
	struct run *run;
	struct exec *e; /* a reference */
	struct loop_timer deadline;
	struct run_job *next; /* the queue */
};

static void run_advance(struct run *r);

void run_init(struct run *r, const struct run_env *env, const char *id,
	      const char *language, const struct run_ops *ops, void *arg)
{
	memset(r, 0, sizeof(*r));
	r->env = env;
	r->id = id;
	r->language = language;
	r->ops = ops;
	r->arg = arg;
}

/* Lets go of job j (off every list already): e forgets it, and the run's
 * reference to e goes. */
static void run_job_free(struct run_job *j)
{
	loop_timer_disarm(j->run->env->loop, &j->deadline);
	j->e->job = NULL;
	exec_unref(j->e);
	free(j);
}

static int run_send_helper_now(struct run *r)
{
	if (!r->kernel)
		return -1;
	return kernel_execute(r->kernel, r->helper_code, strlen(r->helper_code),
			      true, r->helper_id);
}

/* Sends a helper cell (code is stolen) and moves to phase; its reply moves
 * the pipeline on. Returns false, the phase unchanged, when there is
 * nothing to wait for (no helper for this language, or the send failed). */
static bool run_helper(struct run *r, char *code, enum run_phase phase)
{
	if (!code) {
		log_warnx("context %.8s: no env helper for language %s; env "
			  "vars not applied",
			  r->id, r->language);
		return false;
	}
	free(r->helper_code);
	r->helper_code = code;
	r->helper_tries = 1;
	if (run_send_helper_now(r) == 0) {
		r->phase = phase;
		return true;
	}
	free(r->helper_code);
	r->helper_code = NULL;
	return false;
}

static void run_release(struct run *r)
{
	struct run_job *j = r->running;

	loop_timer_disarm(r->env->loop, &r->interrupt_timer);
	loop_timer_disarm(r->env->loop, &r->reply_timer);
	r->running = NULL;
	if (j)
		run_job_free(j);
}

static void run_pump(struct run *r);

static void run_complete(struct run *r)
{
	struct exec *e = r->running->e;
	char *restore = NULL;

	if (e->state == EXEC_RUNNING)
		metrics_exec(r->env->metrics, loop_now_ms() - r->run_ms);
	exec_finish(e);
	if (r->env_applied)
		restore = lang_env_restore_code(r->language);
	run_release(r);
	r->phase = RUN_IDLE;
	if (restore && run_helper(r, restore, RUN_RESTORE))
		return;
	run_pump(r);
}

static void run_send_main(struct run *r)
{
	struct exec *e = r->running->e;

	r->phase = RUN_MAIN;
	if (e->client_gone || e->state == EXEC_DONE) {
		/* Nobody waits for it any more: do not run it at all. */
		run_complete(r);
		return;
	}
	if (!r->kernel || kernel_execute(r->kernel, e->code, e->code_len, false,
					 r->msg_id) < 0) {
		exec_fail(e, "UnexpectedEndOfExecution",
			  "Could not send the code to the kernel");
		run_complete(r);
		return;
	}
	if (e->state != EXEC_RUNNING) {
		r->env->metrics->executions++;
		r->run_ms = loop_now_ms();
	}
	e->state = EXEC_RUNNING;
}

static void run_on_envd(void *arg, json_t *vars, const char *why)
{
	struct run *r = arg;

	r->envd = NULL;
	/* Sandbox-wide env vars that never arrive are a misconfiguration or a
	 * broken envd: worth a warning, but once per context, not per cell. */
	if (why && !r->envd_warned) {
		r->envd_warned = true;
		log_warnx("context %.8s: GET %.200s/envs failed (%s): its code "
			  "runs without the sandbox-wide env vars (said once "
			  "per context)",
			  r->id, r->env->envd_url, why);
	}
	json_decref(r->global_env);
	r->global_env = vars;
	r->need_global_env = false;
	if (r->phase != RUN_ENVD)
		return;
	if (json_object_size(vars) > 0) {
		log_debug("context %.8s: %zu global env vars from envd", r->id,
			  json_object_size(vars));
		if (run_helper(r, lang_env_code(r->language, vars, false),
			       RUN_GLOBALS))
			return;
	}
	r->phase = RUN_GLOBALS;
	run_advance(r);
}

/* Moves the running execution through the phases that need no answer. */
static void run_advance(struct run *r)
{
	struct exec *e = r->running ? r->running->e : NULL;

	switch (r->phase) {
	case RUN_ENVD:
		if (r->need_global_env) {
			r->envd =
			    envd_fetch(r->env->loop, r->env->envd_url, e->token,
				       r->env->envd_timeout_ms, run_on_envd, r);
			if (r->envd)
				return;
			r->need_global_env = false;
		}
		/* fall through */
	case RUN_GLOBALS:
		r->phase = RUN_ENV;
		if (e->env_vars && !e->client_gone) {
			r->env_applied = true;
			if (run_helper(
				r,
				lang_env_code(r->language, e->env_vars, true),
				RUN_ENV))
				return;
		}
		/* fall through */
	case RUN_ENV:
		run_send_main(r);
		return;
	case RUN_RESTORE:
		r->phase = RUN_IDLE;
		run_pump(r);
		return;
	case RUN_IDLE:
	case RUN_MAIN:
		return;
	}
}

/* Starts the next execution if there is a kernel and nothing runs. */
static void run_pump(struct run *r)
{
	struct run_job *j;

	if (r->phase != RUN_IDLE || !r->kernel || !r->head)
		return;
	j = r->head;
	r->head = j->next;
	if (!r->head)
		r->tail = NULL;
	j->next = NULL;
	r->running = j;
	r->jobs++;
	r->msg_id[0] = '\0';
	r->env_applied = false;
	r->run_ms = 0;
	/* One ended while queued keeps its state: run_send_main skips it. */
	if (j->e->state != EXEC_DONE)
		j->e->state = EXEC_PREPARE;
	r->phase = RUN_ENVD;
	run_advance(r);
}

void run_start(struct run *r, struct kernel *k)
{
	r->kernel = k;
	r->jobs = 0;
	r->need_global_env = true;
	run_pump(r);
}

/* The request's own deadline passed: the stream ends with an error now and
 * the cell is interrupted (or dropped from the queue). A stream that ended
 * already (its context failed it) has no deadline left. */
static void run_deadline(void *arg, short revents)
{
	struct exec *e = ((struct run_job *)arg)->e;
	char value[96];

	(void)revents;
	if (e->state == EXEC_DONE)
		return;
	snprintf(value, sizeof(value),
		 "Execution exceeded its deadline of "
		 "%lld ms",
		 e->deadline_ms);
	exec_ref(e);
	run_cancel(e);
	exec_fail(e, "TimeoutError", value);
	exec_unref(e);
}

/* Arms j's deadline for what is left of it: it counts from the request's
 * arrival, which for a context still starting its first kernel was a while
 * ago. Returns false when nothing is left. */
static bool run_arm_deadline(struct run *r, struct run_job *j)
{
	const struct exec *e = j->e;
	uint64_t spent = loop_now_ms() - e->started_ms;

	if (e->deadline_ms <= 0)
		return true;
	if (spent >= (uint64_t)e->deadline_ms)
		return false;
	loop_timer_arm(r->env->loop, &j->deadline,
		       (uint64_t)e->deadline_ms - spent, run_deadline, j);
	return true;
}

void run_submit(struct run *r, struct exec *e)
{
	struct run_job *j = calloc(1, sizeof(*j));

	if (!j) {
		exec_fail(e, "UnexpectedEndOfExecution", "Out of memory");
		return;
	}
	j->run = r;
	j->e = e;
	if (!run_arm_deadline(r, j)) {
		char value[96];
		snprintf(value, sizeof(value),
			 "Execution exceeded its deadline of %lld ms before "
			 "its context was ready",
			 e->deadline_ms);
		free(j);
		exec_fail(e, "TimeoutError", value);
		return;
	}
	exec_ref(e);
	e->job = j;
	e->state = EXEC_QUEUED;
	if (r->tail)
		r->tail->next = j;
	else
		r->head = j;
	r->tail = j;
	run_pump(r);
}

/* Repeats the interrupt every RUN_INTERRUPT_REPEAT_MS until the kernel
 * reports it (an error, or the execute_reply): a SIGINT can land before the
 * cell runs, where ipykernel swallows it. Once reported it is never repeated:
 * a second KeyboardInterrupt inside ipykernel's own error handling does harm.
 * Asks for a new kernel once interrupt_timeout_ms passed without the cell
 * ending. */
static void run_interrupt_tick(void *arg, short revents)
{
	struct run *r = arg;

	(void)revents;
	if (!r->running || !r->kernel)
		return;
	if (loop_now_ms() < r->interrupt_deadline) {
		if (r->running->e->last_report_ms < r->interrupt_sent_ms) {
			kernel_interrupt(r->kernel);
			r->interrupt_sent_ms = loop_now_ms();
		}
		loop_timer_arm(r->env->loop, &r->interrupt_timer,
			       RUN_INTERRUPT_REPEAT_MS, run_interrupt_tick, r);
		return;
	}
	log_warnx("context %.8s: cell did not stop within %ld ms of an "
		  "interrupt; restarting the kernel",
		  r->id, r->env->interrupt_timeout_ms);
	r->ops->restart(r->arg, "interrupt timed out");
}

/* Idle came for the running execution and its reply did not follow: the
 * kernel failed while handling the request (ipykernel publishes idle even
 * when its handler raised: code with a NUL byte, an error its JSON packer
 * cannot encode) and no reply will come. The kernel is alive and keeps its
 * state; the stream ends with an error and the context moves on. */
static void run_reply_missing(void *arg, short revents)
{
	struct run *r = arg;

	(void)revents;
	if (r->phase != RUN_MAIN || !r->running)
		return;
	log_warnx("context %.8s: the kernel went idle without replying to the "
		  "execution; ending it (the kernel's log may say why)",
		  r->id);
	exec_fail(r->running->e, "UnexpectedEndOfExecution",
		  "The kernel went idle without replying to the execution "
		  "request: it failed while handling it");
	run_complete(r);
}

static bool run_unqueue(struct run *r, struct run_job *j)
{
	for (struct run_job **pp = &r->head; *pp; pp = &(*pp)->next) {
		if (*pp != j)
			continue;
		*pp = j->next;
		if (r->tail == j) {
			r->tail = NULL;
			for (struct run_job *q = r->head; q; q = q->next)
				r->tail = q;
		}
		j->next = NULL;
		run_job_free(j);
		return true;
	}
	return false;
}

void run_cancel(struct exec *e)
{
	struct run_job *j = e->job;
	struct run *r;

	if (!j)
		return;
	r = j->run;
	if (run_unqueue(r, j))
		return;
	if (r->running != j || e->state != EXEC_RUNNING || !r->kernel)
		return;
	if (e->got_idle) {
		/* The kernel is done with it and only its reply is missing
		 * (run_reply_missing would end it shortly): there is nothing
		 * to interrupt. */
		run_reply_missing(r, 0);
		return;
	}
	log_info("context %.8s: %s; interrupting the cell", r->id,
		 e->client_gone ? "client went away" : "deadline passed");
	r->env->metrics->interrupts++;
	e->interrupted = true;
	kernel_interrupt(r->kernel);
	r->interrupt_sent_ms = loop_now_ms();
	r->interrupt_deadline =
	    loop_now_ms() + (uint64_t)r->env->interrupt_timeout_ms;
	loop_timer_arm(r->env->loop, &r->interrupt_timer,
		       RUN_INTERRUPT_REPEAT_MS, run_interrupt_tick, r);
}

static void run_on_helper_reply(struct run *r, struct wire_msg *m)
{
	const char *st =
	    json_string_value(json_object_get(m->content, "status"));

	if (st && strcmp(st, "aborted") == 0 &&
	    r->helper_tries < RUN_HELPER_TRIES) {
		r->helper_tries++;
		log_debug("context %.8s: helper cell aborted; sending it again",
			  r->id);
		if (run_send_helper_now(r) == 0)
			return;
	}
	if (st && strcmp(st, "ok") != 0)
		log_warnx(
		    "context %.8s: helper cell ended with status %s (%s)",
		    r->id, st,
		    json_string_value(json_object_get(m->content, "evalue"))
			?: "");
	free(r->helper_code);
	r->helper_code = NULL;
	r->helper_id[0] = '\0';
	if (r->phase == RUN_RESTORE || r->running)
		run_advance(r);
}

/* A message of the running execution: exec_ turns it into lines and says
 * where the cell stands. */
static void run_on_exec_msg(struct run *r, enum kernel_chan ch,
			    struct wire_msg *m)
{
	struct exec *e = r->running->e;

	switch (exec_on_msg(e, ch == KERNEL_SHELL, m)) {
	case EXEC_COMPLETE:
		if (e->ask_exit)
			r->ops->restart(r->arg,
					"the code asked the kernel to exit");
		else
			run_complete(r);
		break;
	case EXEC_NO_REPLY:
		if (!r->reply_timer.armed)
			loop_timer_arm(r->env->loop, &r->reply_timer,
				       RUN_REPLY_GRACE_MS, run_reply_missing,
				       r);
		break;
	case EXEC_RESEND:
		log_debug("context %.8s: request aborted before it ran; "
			  "sending it again",
			  r->id);
		run_send_main(r);
		break;
	case EXEC_GOING:
		break;
	}
}

void run_on_msg(struct run *r, enum kernel_chan ch, struct wire_msg *m)
{
	const char *parent = m->parent_msg_id;

	if (!parent || ch == KERNEL_CONTROL)
		return;
	if (r->phase == RUN_MAIN && r->running &&
	    strcmp(parent, r->msg_id) == 0) {
		run_on_exec_msg(r, ch, m);
		return;
	}
	if (ch == KERNEL_SHELL && r->helper_code &&
	    strcmp(m->msg_type, "execute_reply") == 0 &&
	    strcmp(parent, r->helper_id) == 0)
		run_on_helper_reply(r, m);
}

void run_fail_all(struct run *r, bool queued, const char *name,
		  const char *value)
{
	r->kernel = NULL;
	if (r->running) {
		exec_fail(r->running->e, name, value);
		run_release(r);
	}
	while (queued && r->head) {
		struct run_job *j = r->head;
		r->head = j->next;
		j->next = NULL;
		exec_fail(j->e, name, value);
		run_job_free(j);
	}
	if (queued)
		r->tail = NULL;
	r->phase = RUN_IDLE;
	free(r->helper_code);
	r->helper_code = NULL;
	envd_cancel(r->envd);
	r->envd = NULL;
}

bool run_busy(const struct run *r)
{
	return r->running != NULL;
}

bool run_untouched(const struct run *r)
{
	return r->kernel && r->jobs == 0 && !r->running && !r->head &&
	       !r->helper_code;
}

void run_cleanup(struct run *r)
{
	loop_timer_disarm(r->env->loop, &r->interrupt_timer);
	loop_timer_disarm(r->env->loop, &r->reply_timer);
	envd_cancel(r->envd);
	r->envd = NULL;
	free(r->helper_code);
	r->helper_code = NULL;
	json_decref(r->global_env);
	r->global_env = NULL;
}
