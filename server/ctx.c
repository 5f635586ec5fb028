/*
 * ctx: the context registry and each context's life (see ctx.h).
 *
 * Per context, executions run strictly one at a time: pop the queue head,
 * fetch global env vars from envd if due, send the env helper cell (silent),
 * send the execute_request, route every kernel message whose parent is that
 * request to the execution, and when both execute_reply and idle arrived,
 * end the stream, send the env restore cell if needed and wait for its
 * reply before the next one. Helper cells are silent, do not stop on error
 * and never reach a client.
 *
 * Kernel death: the running execution ends with ContextRestarting and a new
 * kernel starts with the same id and cwd; queued executions wait for it.
 * Three failed starts in a row without ever becoming ready mark the context
 * FAILED. Old kernels go to the server's graveyard until their process is
 * reaped. Loop thread only.
 */
#include "ctx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "envd.h"
#include "grave.h"
#include "exec.h"
#include "kernel.h"
#include "kspec.h"
#include "lang.h"
#include "log.h"
#include "pool.h"
#include "server.h"
#include "wire.h"

#define CTX_MAX_QUICK_FAILURES 3

static void ctx_on_ready(void *arg, struct kernel *k);
static void ctx_on_msg(void *arg, struct kernel *k, enum kernel_chan ch,
		       struct wire_msg *m);
static void ctx_on_exit(void *arg, struct kernel *k, int status,
			bool was_ready);
static void ctx_pump(struct ctx *c);

static const struct kernel_ops ctx_kernel_ops = {ctx_on_ready, ctx_on_msg,
						 ctx_on_exit};

/* Detaches c's kernel and lets it die in the graveyard. */
static void ctx_bury_kernel(struct ctx *c)
{
	struct kernel *k = c->kernel;

	c->kernel = NULL;
	grave_bury(c->srv, k);
}

/* Waiters */

static void ctx_notify(struct ctx *c, int err, const char *reason)
{
	struct ctx_waiter *w = c->waiters, *next;

	c->waiters = NULL;
	for (; w; w = next) {
		next = w->next;
		w->next = NULL;
		w->fn(w->arg, c, err, reason);
	}
}

void ctx_wait(struct ctx *c, struct ctx_waiter *w)
{
	if (c->state == CTX_READY) {
		w->fn(w->arg, c, 0, NULL);
	} else if (c->state == CTX_FAILED) {
		w->fn(w->arg, c, -EIO, c->fail_reason);
	} else {
		w->next = c->waiters;
		c->waiters = w;
	}
}

void ctx_unwait(struct ctx *c, struct ctx_waiter *w)
{
	for (struct ctx_waiter **pp = &c->waiters; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			return;
		}
	}
}

/* Registry */

struct ctx *ctx_find(struct server *s, const char *id)
{
	for (struct ctx *c = s->contexts; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

struct ctx *ctx_default(struct server *s, const char *language)
{
	for (struct ctx *c = s->contexts; c; c = c->next)
		if (c->is_default && strcmp(c->language, language) == 0)
			return c;
	return NULL;
}

json_t *ctx_to_json(const struct ctx *c)
{
	return json_pack("{s:s,s:s,s:s}", "id", c->id, "language", c->language,
			 "cwd", c->cwd);
}

/* Adopts a warm kernel from the pool: moves it to the context's cwd with a
 * silent helper cell (queued in the kernel ahead of any execution). Returns
 * 0, or -1 when the language cannot change directory (the kernel is buried
 * and the caller starts a fresh one in the right cwd). */
static int ctx_adopt(struct ctx *c, struct kernel *k)
{
	char *code = NULL;
	json_t *content;

	if (strcmp(c->cwd, c->srv->cfg.cwd) != 0) {
		code = lang_cwd_code(c->language, c->cwd);
		if (!code) {
			grave_bury(c->srv, k);
			return -1;
		}
		content = json_pack("{s:s,s:b,s:b,s:{},s:b,s:b}", "code", code,
				    "silent", 1, "store_history", 0,
				    "user_expressions", "allow_stdin", 0,
				    "stop_on_error", 0);
		if (content)
			kernel_send(k, KERNEL_SHELL, "execute_request", content,
				    NULL);
		json_decref(content);
		free(code);
	}
	c->kernel = k;
	c->need_global_env = true;
	log_info("context %.8s: took warm kernel %.8s from the pool", c->id,
		 kernel_id(k));
	ctx_on_ready(c, k);
	return 0;
}

static int ctx_spawn(struct ctx *c)
{
	struct kernel *warm;
	char err[256];

	warm = pool_take(c->srv, c->language, &ctx_kernel_ops, c);
	if (warm && ctx_adopt(c, warm) == 0)
		return 0;
	c->kernel = kernel_start(&c->srv->kenv, c->spec, c->cwd,
				 &ctx_kernel_ops, c, err, sizeof(err));
	c->srv->stats.kernel_starts++;
	if (!c->kernel) {
		log_warnx("context %.8s: %s", c->id, err);
		snprintf(c->fail_reason, sizeof(c->fail_reason), "%s", err);
		c->state = CTX_FAILED;
		return -1;
	}
	c->state = CTX_STARTING;
	c->need_global_env = true;
	return 0;
}

static void ctx_unlink(struct ctx *c)
{
	for (struct ctx **pp = &c->srv->contexts; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			c->srv->ncontexts--;
			return;
		}
	}
}

static void ctx_free(struct ctx *c)
{
	loop_timer_disarm(c->srv->loop, &c->interrupt_timer);
	loop_timer_disarm(c->srv->loop, &c->retry_timer);
	envd_cancel(c->envd);
	json_decref(c->global_env);
	free(c->language);
	free(c->cwd);
	free(c);
}

struct ctx *ctx_new(struct server *s, const char *language, const char *cwd,
		    bool is_default, int *status, char *err, size_t errlen)
{
	const struct kspec *spec = server_spec(s, language);
	struct ctx *c;
	uuid_t u;

	if (!spec) {
		*status = 400;
		snprintf(err, errlen,
			 "Unknown language '%.64s': no kernel is installed "
			 "for it", language);
		return NULL;
	}
	if ((long)s->ncontexts >= s->cfg.max_contexts) {
		*status = 429;
		snprintf(err, errlen, "Too many contexts (limit %ld): delete "
			 "one first", s->cfg.max_contexts);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->language = strdup(language)) ||
	    !(c->cwd = strdup(cwd))) {
		if (c)
			free(c->language);
		free(c);
		*status = 500;
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	uuid_generate_random(u);
	uuid_unparse_lower(u, c->id);
	c->srv = s;
	c->spec = spec;
	c->is_default = is_default;
	if (ctx_spawn(c) < 0) {
		*status = 500;
		snprintf(err, errlen, "%s", c->fail_reason);
		ctx_free(c);
		return NULL;
	}
	c->next = s->contexts;
	s->contexts = c;
	s->ncontexts++;
	log_info("context %s (%s) created in %s", c->id, language, cwd);
	return c;
}

/* Execution flow */

static void ctx_send_helper(struct ctx *c, json_t *set, json_t *unset,
			    char *msg_id_out)
{
	char *code = lang_env_code(c->language, set, unset);
	json_t *content;

	if (!code) {
		log_warnx("context %.8s: no env helper for language %s; "
			  "env vars not applied", c->id, c->language);
		return;
	}
	content = json_pack("{s:s,s:b,s:b,s:{},s:b,s:b}", "code", code,
			    "silent", 1, "store_history", 0,
			    "user_expressions", "allow_stdin", 0,
			    "stop_on_error", 0);
	if (content && c->kernel)
		kernel_send(c->kernel, KERNEL_SHELL, "execute_request", content,
			    msg_id_out);
	json_decref(content);
	free(code);
}

/* Releases the running execution and moves on. */
static void ctx_done_running(struct ctx *c)
{
	struct exec *e = c->running;

	loop_timer_disarm(c->srv->loop, &c->interrupt_timer);
	c->running = NULL;
	if (e) {
		e->ctx = NULL;
		exec_unref(e);
	}
}

static void ctx_complete(struct ctx *c)
{
	struct exec *e = c->running;

	if (e->state == EXEC_RUNNING)
		metrics_exec(&c->srv->metrics, loop_now_ms() - e->run_ms);
	exec_finish(e);
	if (e->env_vars && c->kernel) {
		json_t *set = json_object(), *unset = json_array();
		const char *key;
		json_t *v;

		json_object_foreach(e->env_vars, key, v) {
			json_t *g = c->global_env ? json_object_get(c->global_env, key)
						  : NULL;
			if (json_is_string(g))
				json_object_set(set, key, g);
			else
				json_array_append_new(unset, json_string(key));
		}
		c->restore_id[0] = '\0';
		ctx_send_helper(c, set, unset, c->restore_id);
		c->restoring = c->restore_id[0] != '\0';
		json_decref(set);
		json_decref(unset);
	}
	ctx_done_running(c);
	ctx_pump(c);
}

static void ctx_send_main(struct ctx *c)
{
	struct exec *e = c->running;
	json_t *content;

	if (e->env_vars && e->resends == 0)
		ctx_send_helper(c, e->env_vars, NULL, NULL);
	if (e->client_gone) {
		/* Nobody waits for it any more: do not run it at all. */
		ctx_complete(c);
		return;
	}
	content = json_pack("{s:s%,s:b,s:b,s:{},s:b,s:b}", "code", e->code,
			    e->code_len, "silent", 0, "store_history", 1,
			    "user_expressions", "allow_stdin", 0,
			    "stop_on_error", 1);
	if (!content || kernel_send(c->kernel, KERNEL_SHELL, "execute_request",
				    content, e->msg_id) < 0) {
		exec_fail(e, "UnexpectedEndOfExecution",
			  "Could not send the code to the kernel");
		json_decref(content);
		ctx_done_running(c);
		ctx_pump(c);
		return;
	}
	json_decref(content);
	if (e->state != EXEC_RUNNING) {
		c->srv->stats.executions++;
		e->run_ms = loop_now_ms();
	}
	e->state = EXEC_RUNNING;
}

static void ctx_on_envd(void *arg, json_t *vars)
{
	struct ctx *c = arg;

	c->envd = NULL;
	json_decref(c->global_env);
	c->global_env = vars;
	c->need_global_env = false;
	if (json_object_size(vars) > 0) {
		log_debug("context %.8s: %zu global env vars from envd", c->id,
			  json_object_size(vars));
		ctx_send_helper(c, vars, NULL, NULL);
	}
	if (c->running && c->kernel && c->state == CTX_READY)
		ctx_send_main(c);
}

static void ctx_pump(struct ctx *c)
{
	struct exec *e;

	if (c->running || c->restoring || c->state != CTX_READY || !c->head ||
	    c->srv->stopping)
		return;
	e = c->head;
	c->head = e->next;
	if (!c->head)
		c->tail = NULL;
	e->next = NULL;
	c->running = e;
	e->state = EXEC_PREPARE;
	if (c->need_global_env) {
		c->envd = envd_fetch(c->srv->loop, c->srv->cfg.envd_url, e->token,
				     c->srv->cfg.envd_timeout_ms, ctx_on_envd, c);
		if (c->envd)
			return;
		c->need_global_env = false;
	}
	ctx_send_main(c);
}

void ctx_submit(struct ctx *c, struct exec *e)
{
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
	ctx_pump(c);
}

#define CTX_INTERRUPT_REPEAT_MS 500

/* Repeats the interrupt every CTX_INTERRUPT_REPEAT_MS while the kernel has
 * said nothing since the last one (a SIGINT can land where a kernel ignores
 * it), but never while it is busy reporting the interruption: a second
 * KeyboardInterrupt inside ipykernel's own error handling does harm. Restarts
 * the kernel once interrupt_timeout_ms passed without the cell ending. */
static void ctx_interrupt_expired(void *arg, short revents)
{
	struct ctx *c = arg;

	(void)revents;
	if (!c->running || !c->kernel)
		return;
	if (loop_now_ms() < c->interrupt_deadline) {
		if (c->running->last_msg_ms < c->interrupt_sent_ms) {
			kernel_interrupt(c->kernel);
			c->interrupt_sent_ms = loop_now_ms();
		}
		loop_timer_arm(c->srv->loop, &c->interrupt_timer,
			       CTX_INTERRUPT_REPEAT_MS, ctx_interrupt_expired, c);
		return;
	}
	log_warnx("context %.8s: cell did not stop within %ld ms of an "
		  "interrupt; restarting the kernel", c->id,
		  c->srv->cfg.interrupt_timeout_ms);
	ctx_restart(c, "interrupt timed out");
}

void ctx_cancel(struct ctx *c, struct exec *e)
{
	struct exec **pp;

	for (pp = &c->head; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			if (c->tail == e) {
				c->tail = NULL;
				for (struct exec *q = c->head; q; q = q->next)
					c->tail = q;
			}
			e->next = NULL;
			e->ctx = NULL;
			exec_unref(e);
			return;
		}
	}
	if (c->running != e || e->state != EXEC_RUNNING || !c->kernel)
		return;
	log_info("context %.8s: client went away; interrupting the cell",
		 c->id);
	c->srv->stats.interrupts++;
	kernel_interrupt(c->kernel);
	c->interrupt_sent_ms = loop_now_ms();
	c->interrupt_deadline = loop_now_ms() +
				(uint64_t)c->srv->cfg.interrupt_timeout_ms;
	loop_timer_arm(c->srv->loop, &c->interrupt_timer,
		       CTX_INTERRUPT_REPEAT_MS, ctx_interrupt_expired, c);
}

/* Kernel callbacks */

static void ctx_on_ready(void *arg, struct kernel *k)
{
	struct ctx *c = arg;

	(void)k;
	c->state = CTX_READY;
	c->ever_ready = true;
	c->quick_failures = 0;
	ctx_notify(c, 0, NULL);
	server_check_ready(c->srv);
	ctx_pump(c);
}

static void ctx_on_msg(void *arg, struct kernel *k, enum kernel_chan ch,
		       struct wire_msg *m)
{
	struct ctx *c = arg;
	const char *parent = m->parent_msg_id;

	(void)k;
	if (!parent || ch == KERNEL_CONTROL)
		return;
	if (c->running && c->running->state == EXEC_RUNNING &&
	    strcmp(parent, c->running->msg_id) == 0) {
		switch (exec_on_msg(c->running, ch == KERNEL_SHELL, m)) {
		case EXEC_COMPLETE:
			ctx_complete(c);
			break;
		case EXEC_RESEND:
			log_debug("context %.8s: request aborted before it ran; "
				  "sending it again", c->id);
			ctx_send_main(c);
			break;
		case EXEC_GOING:
			break;
		}
		return;
	}
	if (ch != KERNEL_SHELL || strcmp(m->msg_type, "execute_reply") != 0)
		return;
	const char *st = json_string_value(json_object_get(m->content,
							   "status"));
	if (st && strcmp(st, "ok") != 0)
		log_warnx("context %.8s: helper cell ended with status %s (%s)",
			  c->id, st,
			  json_string_value(json_object_get(m->content,
							    "evalue")) ?: "");
	if (c->restoring && strcmp(parent, c->restore_id) == 0) {
		c->restoring = false;
		ctx_pump(c);
	}
}

/* Fails every execution (running and queued) with name/value. */
static void ctx_fail_all(struct ctx *c, bool queued, const char *name,
			 const char *value)
{
	if (c->running) {
		exec_fail(c->running, name, value);
		ctx_done_running(c);
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
	c->restoring = false;
	envd_cancel(c->envd);
	c->envd = NULL;
}

static void ctx_retry(void *arg, short revents)
{
	struct ctx *c = arg;

	(void)revents;
	if (ctx_spawn(c) < 0) {
		ctx_notify(c, -EIO, c->fail_reason);
		ctx_fail_all(c, true, "ContextUnavailable", c->fail_reason);
	}
}

static void ctx_on_exit(void *arg, struct kernel *k, int status, bool was_ready)
{
	struct ctx *c = arg;

	(void)status;
	kernel_free(k);
	c->kernel = NULL;
	c->srv->stats.kernel_deaths++;
	ctx_fail_all(c, false, "ContextRestarting", "Context was restarted");
	if (c->srv->stopping)
		return;
	if (!was_ready && ++c->quick_failures >= CTX_MAX_QUICK_FAILURES) {
		snprintf(c->fail_reason, sizeof(c->fail_reason),
			 "Kernel '%s' for %s exited during startup %d times "
			 "in a row", c->spec->name, c->language,
			 c->quick_failures);
		log_errx("context %.8s: %s", c->id, c->fail_reason);
		c->state = CTX_FAILED;
		ctx_notify(c, -EIO, c->fail_reason);
		ctx_fail_all(c, true, "ContextUnavailable", c->fail_reason);
		return;
	}
	log_warnx("context %.8s: kernel died; starting a new one", c->id);
	c->state = CTX_STARTING;
	/* Back off a little when the kernel dies during startup. */
	loop_timer_arm(c->srv->loop, &c->retry_timer,
		       was_ready ? 0 : 250u << c->quick_failures, ctx_retry, c);
}

void ctx_restart(struct ctx *c, const char *why)
{
	log_info("context %.8s: restarting (%s)", c->id, why);
	c->srv->stats.restarts++;
	loop_timer_disarm(c->srv->loop, &c->retry_timer);
	ctx_fail_all(c, false, "ContextRestarting", "Context was restarted");
	ctx_bury_kernel(c);
	c->quick_failures = 0;
	if (ctx_spawn(c) < 0) {
		ctx_notify(c, -EIO, c->fail_reason);
		ctx_fail_all(c, true, "ContextUnavailable", c->fail_reason);
	}
}

void ctx_delete(struct ctx *c)
{
	log_info("context %s (%s) deleted", c->id, c->language);
	ctx_fail_all(c, true, "ContextDeleted", "Context was deleted");
	ctx_bury_kernel(c);
	ctx_unlink(c);
	c->state = CTX_FAILED;
	snprintf(c->fail_reason, sizeof(c->fail_reason), "Context was deleted");
	ctx_notify(c, -ENOENT, c->fail_reason);
	ctx_free(c);
}

void ctx_shutdown_all(struct server *s, long grace_ms)
{
	uint64_t deadline = loop_now_ms() + (uint64_t)grace_ms;

	s->stopping = true;
	while (s->contexts) {
		struct ctx *c = s->contexts;
		ctx_fail_all(c, true, "ContextRestarting",
			     "The server is shutting down");
		ctx_notify(c, -ESHUTDOWN, "The server is shutting down");
		ctx_bury_kernel(c);
		ctx_unlink(c);
		ctx_free(c);
	}
	pool_shutdown(s);
	grave_drain(s, deadline);
}
