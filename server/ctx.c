/*
 * ctx: the context registry and each context's life (see ctx.h).
 *
 * A context's executions are run.c's business (queue, helper cells, the
 * request, restore, interrupts); this file gives run a kernel once one is
 * ready, and takes it away when the kernel dies, restarts or the context
 * goes.
 *
 * Kernel death: the running execution ends with ContextRestarting and a new
 * kernel starts with the same id and cwd; queued executions wait for it.
 * Three failed starts in a row without ever becoming ready mark the context
 * FAILED, with a one-line reason (kernelspec, exit status, the kernel's last
 * stderr lines) that goes to the log once, to /health for a default
 * context, and to every execution as ContextUnavailable. A FAILED context
 * tries again after --kernel-retry-ms, doubling up to 10 minutes; a restart
 * request tries at once. Old kernels go to the server's graveyard until
 * their process is reaped. Loop thread only.
 */
#include "ctx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <uuid/uuid.h>

#include "errmsg.h"
#include "exec.h"
#include "grave.h"
#include "kernel.h"
#include "kres.h"
#include "kspec.h"
#include "lang.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "run.h"
#include "server.h"

#define CTX_MAX_QUICK_FAILURES 3
/* The wait before a FAILED context tries again doubles up to this (or
 * --kernel-retry-ms when that is longer). */
#define CTX_RETRY_CAP_MS 600000u

static void ctx_on_ready(void *arg, struct kernel *k);
static void ctx_on_msg(void *arg, struct kernel *k, enum kernel_chan ch,
		       struct wire_msg *m);
static void ctx_on_exit(void *arg, struct kernel *k, int status,
			bool was_ready);

static const struct kernel_ops ctx_kernel_ops = {ctx_on_ready, ctx_on_msg,
						 ctx_on_exit};

static void ctx_run_restart(void *arg, const char *why)
{
	ctx_restart(arg, why);
}

static const struct run_ops ctx_run_ops = {ctx_run_restart};

/* Detaches c's kernel and lets it die in the graveyard. */
static void ctx_bury_kernel(struct ctx *c)
{
	struct kernel *k = c->kernel;

	c->kernel = NULL;
	grave_bury(c->srv, k);
}

/* Tells the server's hook that c turned READY or FAILED. */
static void ctx_settled(struct ctx *c)
{
	if (c->srv->ctx_settled)
		c->srv->ctx_settled(c->srv);
}

/* Waiters */

static void ctx_notify(struct ctx *c, enum ctx_err why, const char *reason)
{
	struct ctx_waiter *w = c->waiters, *next;

	c->waiters = NULL;
	for (; w; w = next) {
		next = w->next;
		w->next = NULL;
		w->fn(w->arg, c, why, reason);
	}
}

void ctx_wait(struct ctx *c, struct ctx_waiter *w)
{
	if (c->state == CTX_READY) {
		w->fn(w->arg, c, CTX_OK, NULL);
	} else if (c->state == CTX_FAILED) {
		w->fn(w->arg, c, CTX_ERR_START, c->fail_reason);
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

static void ctx_count_language(struct metrics_gauges *g, const char *language)
{
	size_t i;

	for (i = 0; i < g->nlanguages; i++)
		if (strcmp(g->contexts[i].language, language) == 0)
			break;
	if (i == METRICS_MAX_LANGUAGES)
		return;
	if (i == g->nlanguages)
		g->contexts[g->nlanguages++].language = language;
	g->contexts[i].n++;
}

void ctx_gauges(const struct server *s, struct metrics_gauges *g)
{
	for (const struct ctx *c = s->contexts; c; c = c->next) {
		ctx_count_language(g, c->language);
		if (c->kernel && c->state == CTX_READY)
			*(run_busy(&c->run) ? &g->busy : &g->idle) += 1;
		else if (c->kernel)
			g->starting++;
		g->in_flight += run_busy(&c->run);
	}
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
	char *code;

	if (strcmp(c->cwd, c->srv->cfg.cwd) != 0) {
		code = lang_cwd_code(c->language, c->cwd);
		if (!code) {
			grave_bury(c->srv, k);
			return -1;
		}
		kernel_execute(k, code, strlen(code), true, NULL);
		free(code);
	}
	c->kernel = k;
	log_info("context %.8s: took warm kernel %.8s from the pool", c->id,
		 kernel_id(k));
	ctx_on_ready(c, k);
	return 0;
}

/* A context's cwd deleted after it was made would fail every start from
 * then on (chdir in the child), leaving a context that can only fail. Its
 * kernel starts in the default cwd instead, which becomes the context's cwd
 * (GET /contexts shows it), and the log says so. */
static void ctx_check_cwd(struct ctx *c)
{
	const char *fallback = c->srv->cfg.cwd, *why;
	struct stat st;
	char *to;

	if (stat(c->cwd, &st) < 0)
		why = strerror(errno);
	else if (!S_ISDIR(st.st_mode))
		why = "not a directory";
	else
		return;
	if (strcmp(c->cwd, fallback) == 0 || !(to = strdup(fallback)))
		return;
	log_warnx("context %.8s: its cwd %s is gone (%s); its kernel starts "
		  "in %s instead",
		  c->id, c->cwd, why, fallback);
	free(c->cwd);
	c->cwd = to;
}

static int ctx_spawn(struct ctx *c)
{
	struct kernel *warm;
	char err[256];

	ctx_check_cwd(c);
	warm = pool_take(c->srv, c->language, &ctx_kernel_ops, c);
	if (warm && ctx_adopt(c, warm) == 0)
		return 0;
	c->kernel = kernel_start(&c->srv->kenv, c->spec, c->cwd,
				 &ctx_kernel_ops, c, err, sizeof(err));
	c->srv->metrics.kernel_starts++;
	if (!c->kernel) {
		snprintf(c->fail_reason, sizeof(c->fail_reason),
			 "Kernel for %s: %s", c->language, err);
		return -1;
	}
	c->state = CTX_STARTING;
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
	loop_timer_disarm(c->srv->loop, &c->retry_timer);
	run_cleanup(&c->run);
	free(c->language);
	free(c->cwd);
	free(c);
}

/* Whether s may make a context of language (spec: its kernelspec, NULL
 * when none) now: CTX_OK, or why not with a reason in err. */
static enum ctx_err ctx_refuse(struct server *s, const struct kspec *spec,
			       const char *language, char *err, size_t errlen)
{
	size_t warm, warming;

	/* Requests still arrive while the shutdown drains the kernels; a
	 * context made then would outlive ctx_shutdown_all() and its open
	 * sockets would hang zmq_ctx_term(). */
	if (s->stopping)
		return errmsg_set(err, errlen, CTX_ERR_STOPPING,
				  "The server is shutting down");
	if (!spec)
		return errmsg_set(err, errlen, CTX_ERR_LANGUAGE,
				  "Unknown language '%.64s': no kernel is "
				  "installed for it",
				  language);
	if ((long)s->ncontexts >= s->cfg.max_contexts)
		return errmsg_set(err, errlen, CTX_ERR_LIMIT,
				  "Too many contexts (limit %ld): delete one "
				  "first",
				  s->cfg.max_contexts);
	/* A warm spare becomes this context's kernel: no new process. */
	pool_count(s, &warm, &warming);
	if ((long)kernel_live() >= s->cfg.max_kernels && warm == 0)
		return errmsg_set(err, errlen, CTX_ERR_LIMIT,
				  "Too many kernels (limit %ld): delete a "
				  "context first",
				  s->cfg.max_kernels);
	return CTX_OK;
}

struct ctx *ctx_new(struct server *s, const char *language, const char *cwd,
		    bool is_default, enum ctx_err *why, char *err,
		    size_t errlen)
{
	const struct kspec *spec = kspec_cache_get(&s->specs, language);
	struct ctx *c;
	uuid_t u;

	*why = ctx_refuse(s, spec, language, err, errlen);
	if (*why != CTX_OK)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->language = strdup(language)) ||
	    !(c->cwd = strdup(cwd))) {
		if (c)
			free(c->language);
		free(c);
		*why = errmsg_set(err, errlen, CTX_ERR_NOMEM, "out of memory");
		return NULL;
	}
	uuid_generate_random(u);
	uuid_unparse_lower(u, c->id);
	run_init(&c->run, &s->run_env, c->id, c->language, &ctx_run_ops, c);
	c->srv = s;
	c->spec = spec;
	c->is_default = is_default;
	if (ctx_spawn(c) < 0) {
		log_errx("context %.8s: %s", c->id, c->fail_reason);
		*why = errmsg_set(err, errlen, CTX_ERR_START, "%s",
				  c->fail_reason);
		ctx_free(c);
		return NULL;
	}
	/* Creation order, newest last: the official SDK tests take the last
	 * listed context as the newest. */
	struct ctx **pp = &s->contexts;
	while (*pp)
		pp = &(*pp)->next;
	*pp = c;
	s->ncontexts++;
	log_info("context %s (%s) created in %s", c->id, language, cwd);
	return c;
}

/* Kernel callbacks */

static void ctx_on_ready(void *arg, struct kernel *k)
{
	struct ctx *c = arg;

	(void)k;
	if (c->retry_rounds > 0)
		log_info("context %.8s: its %s kernel started after all", c->id,
			 c->language);
	c->state = CTX_READY;
	c->ever_ready = true;
	c->quick_failures = 0;
	c->retry_rounds = 0;
	c->retry_at = 0;
	ctx_notify(c, CTX_OK, NULL);
	ctx_settled(c);
	run_start(&c->run, c->kernel);
}

static void ctx_on_msg(void *arg, struct kernel *k, enum kernel_chan ch,
		       struct wire_msg *m)
{
	struct ctx *c = arg;

	(void)k;
	run_on_msg(&c->run, ch, m);
}

void ctx_submit(struct ctx *c, struct exec *e)
{
	/* Nothing will run here until a restart succeeds. */
	if (c->state == CTX_FAILED)
		exec_fail(e, "ContextUnavailable", c->fail_reason);
	else
		run_submit(&c->run, e);
}

static void ctx_retry(void *arg, short revents);

/* The kernel cannot be started (fail_reason says why): the context is
 * FAILED, its executions and waiters are told, and unless --kernel-retry-ms
 * is 0 it tries again later, the wait doubling with every failed round, so
 * that a transient failure (a package still installing, a full disk) heals
 * by itself. The first failure is an error in the log; later rounds only
 * warn. */
static void ctx_fail(struct ctx *c)
{
	uint64_t wait = (uint64_t)c->srv->cfg.kernel_retry_ms;
	uint64_t cap = wait > CTX_RETRY_CAP_MS ? wait : CTX_RETRY_CAP_MS;

	c->state = CTX_FAILED;
	c->retry_at = 0;
	for (unsigned i = 0; i < c->retry_rounds && wait < cap; i++)
		wait *= 2;
	wait = wait < cap ? wait : cap;
	if (c->retry_rounds++ == 0)
		log_errx("context %.8s: %s", c->id, c->fail_reason);
	else
		log_warnx("context %.8s: try %u failed too: %s", c->id,
			  c->retry_rounds, c->fail_reason);
	if (wait > 0) {
		c->retry_at = loop_now_ms() + wait;
		loop_timer_arm(c->srv->loop, &c->retry_timer, wait, ctx_retry,
			       c);
	}
	ctx_notify(c, CTX_ERR_START, c->fail_reason);
	run_fail_all(&c->run, true, "ContextUnavailable", c->fail_reason);
	ctx_settled(c);
}

/* Starts the kernel again: after a quick back-off, or, for a FAILED
 * context, as a new round of tries. */
static void ctx_retry(void *arg, short revents)
{
	struct ctx *c = arg;

	(void)revents;
	if (c->state == CTX_FAILED) {
		log_info("context %.8s: trying to start its %s kernel again",
			 c->id, c->language);
		c->state = CTX_STARTING;
		c->quick_failures = 0;
		c->retry_at = 0;
	}
	if (ctx_spawn(c) < 0)
		ctx_fail(c);
}

/* Why a kernel that never answered is gone, into fail_reason: the
 * kernelspec, how it ended and the last lines it wrote to stderr. */
static void ctx_describe_exit(struct ctx *c, const struct kernel *k, int status)
{
	char how[96], tail[1024];
	const char *said;

	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "was killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(how, sizeof(how), "exited with status %d",
			 WEXITSTATUS(status));
	kernel_stderr_tail(k, tail, sizeof(tail));
	said = *tail ? "its stderr ended with: " : "it wrote nothing to stderr";
	snprintf(c->fail_reason, sizeof(c->fail_reason),
		 "Kernel for %s (kernelspec %s in %s) %s during startup, %d "
		 "times in a row; %s%s",
		 c->language, c->spec->name, c->spec->dir, how,
		 c->quick_failures, said, tail);
}

static void ctx_on_exit(void *arg, struct kernel *k, int status, bool was_ready)
{
	struct ctx *c = arg;
	bool oom = kernel_oom_killed(k);

	if (!was_ready && !c->srv->stopping) {
		c->quick_failures++;
		ctx_describe_exit(c, k, status);
	}
	c->srv->metrics.kernel_deaths++;
	/* The run lets go of the kernel before it is freed. */
	if (oom) {
		char limit[64], value[160];
		kres_describe_mem(&c->srv->kres, limit, sizeof(limit));
		snprintf(value, sizeof(value),
			 "The kernel ran out of memory (limit: %s) and was "
			 "restarted",
			 limit);
		log_warnx("context %.8s: %s", c->id, value);
		run_fail_all(&c->run, false, "OutOfMemoryError", value);
	} else {
		run_fail_all(&c->run, false, "ContextRestarting",
			     "Context was restarted");
	}
	kernel_free(k);
	c->kernel = NULL;
	if (c->srv->stopping)
		return;
	if (!was_ready && c->quick_failures >= CTX_MAX_QUICK_FAILURES) {
		ctx_fail(c);
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
	c->srv->metrics.restarts++;
	loop_timer_disarm(c->srv->loop, &c->retry_timer);
	run_fail_all(&c->run, false, "ContextRestarting",
		     "Context was restarted");
	ctx_bury_kernel(c);
	c->quick_failures = 0;
	c->retry_rounds = 0;
	c->retry_at = 0;
	if (ctx_spawn(c) < 0)
		ctx_fail(c);
}

void ctx_renew(struct server *s, const struct kspec *spec)
{
	if (s->stopping)
		return;
	for (struct ctx *c = s->contexts; c; c = c->next) {
		/* A starting kernel has run nothing either: requests waiting
		 * for it wait for the fork instead. */
		if (c->spec != spec || !c->kernel || kernel_forked(c->kernel) ||
		    (c->state != CTX_STARTING &&
		     !(c->state == CTX_READY && run_untouched(&c->run))))
			continue;
		log_info(
		    "context %.8s: its exec'd kernel, unused, gives way to "
		    "a fork",
		    c->id);
		run_fail_all(&c->run, false, "ContextRestarting",
			     "Context was restarted");
		ctx_bury_kernel(c);
		if (ctx_spawn(c) < 0)
			ctx_fail(c);
	}
}

size_t ctx_failed_defaults(struct server *s, char *buf, size_t len)
{
	uint64_t now = loop_now_ms();
	size_t n = 0, used = 0;

	if (len)
		*buf = '\0';
	for (char **l = s->default_languages; l && *l; l++) {
		const struct ctx *c = ctx_default(s, *l);
		char when[96];
		int w;

		if (!c || c->state != CTX_FAILED || used >= len)
			continue;
		if (c->retry_at) {
			uint64_t left =
			    c->retry_at > now ? c->retry_at - now : 0;
			snprintf(when, sizeof(when), "next try in %llu s",
				 (unsigned long long)(left + 999) / 1000);
		} else {
			snprintf(when, sizeof(when),
				 "no retry (--kernel-retry-ms 0) until a "
				 "restart");
		}
		w = snprintf(buf + used, len - used, "%s%s (context %s; %s)",
			     n ? "\n" : "", c->fail_reason, c->id, when);
		used += w > 0 ? (size_t)w : 0;
		n++;
	}
	return n;
}

void ctx_delete(struct ctx *c)
{
	log_info("context %s (%s) deleted", c->id, c->language);
	run_fail_all(&c->run, true, "ContextDeleted", "Context was deleted");
	ctx_bury_kernel(c);
	ctx_unlink(c);
	c->state = CTX_FAILED;
	snprintf(c->fail_reason, sizeof(c->fail_reason), "Context was deleted");
	ctx_notify(c, CTX_ERR_DELETED, c->fail_reason);
	ctx_free(c);
}

void ctx_shutdown_all(struct server *s, long grace_ms)
{
	uint64_t deadline = loop_now_ms() + (uint64_t)grace_ms;

	s->stopping = true;
	/* ctx_unlink() moves s->contexts on before ctx_free(); clang's
	 * analyzer does not follow that and reports a use after free. */
	// NOLINTBEGIN(clang-analyzer-unix.Malloc)
	while (s->contexts) {
		struct ctx *c = s->contexts;
		run_fail_all(&c->run, true, "ContextRestarting",
			     "The server is shutting down");
		ctx_notify(c, CTX_ERR_STOPPING, "The server is shutting down");
		ctx_bury_kernel(c);
		ctx_unlink(c);
		ctx_free(c);
	}
	// NOLINTEND(clang-analyzer-unix.Malloc)
	pool_shutdown(s);
	grave_drain(s, deadline);
}
