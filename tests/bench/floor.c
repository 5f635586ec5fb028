/*
 * floor.c: the floor e2b-ci cannot beat. A client that talks to the same
 * kernelspec directly over ZeroMQ through the daemon's own kernel_ module
 * (kernel_start, kernel_send, the loop): the daemon's code path minus
 * HTTP. It finds the kernelspec as the daemon does (the same search path
 * and kspec_find), correlates replies by msg_id and counts an execution
 * done at execute_reply plus status idle, like the daemon.
 *
 * floor_kernels starts every language's kernel in turn for the "Kernels"
 * table: start p50 and the idle RSS of the kernel's process tree. Every
 * kernel started here is tracked for cleanup_all.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "bench.h"
#include "kernel.h"
#include "kspec.h"
#include "loop.h"
#include "wire.h"

static void *g_zmq;
static struct loop *g_loop;
static struct kernel_env g_kenv;
static char **g_kpath;
static struct kspec *g_spec;
static char g_cwd[200];

static void floor_send(struct fk *f, const char *code)
{
	json_t *c =
	    json_pack("{s:s,s:b,s:b,s:{},s:b,s:b}", "code", code, "silent", 0,
		      "store_history", 1, "user_expressions", "allow_stdin", 0,
		      "stop_on_error", 1);

	f->code = code;
	f->got_reply = f->got_idle = f->ok = f->two = false;
	f->stream_bytes = 0;
	f->busy = true;
	f->t_send = now_ns();
	if (!c || kernel_send(f->k, KERNEL_SHELL, "execute_request", c,
			      f->msg_id) < 0)
		die("floor: cannot send execute_request");
	json_decref(c);
}

static void fk_on_ready(void *arg, struct kernel *k)
{
	struct fk *f = arg;

	(void)k;
	f->ready = true;
	f->t_ready = now_ns();
}

static void fk_on_msg(void *arg, struct kernel *k, enum kernel_chan ch,
		      struct wire_msg *m)
{
	struct fk *f = arg;

	(void)k;
	if (!f->busy || !m->parent_msg_id ||
	    strcmp(m->parent_msg_id, f->msg_id) != 0)
		return;
	if (ch == KERNEL_SHELL && strcmp(m->msg_type, "execute_reply") == 0) {
		const char *st =
		    json_string_value(json_object_get(m->content, "status"));
		f->got_reply = true;
		f->ok = st && strcmp(st, "ok") == 0;
	} else if (ch == KERNEL_IOPUB) {
		/* Output arrives unparsed (wire_decode_lazy): the floor parses
		 * every message, as a plain Jupyter client does. */
		if (wire_msg_parse_content(m) < 0)
			return;
		if (strcmp(m->msg_type, "status") == 0) {
			const char *st = json_string_value(
			    json_object_get(m->content, "execution_state"));
			if (st && strcmp(st, "idle") == 0)
				f->got_idle = true;
		} else if (strcmp(m->msg_type, "stream") == 0) {
			const char *t = json_string_value(
			    json_object_get(m->content, "text"));
			f->stream_bytes += t ? strlen(t) : 0;
		} else if (strcmp(m->msg_type, "execute_result") == 0) {
			const char *t = json_string_value(json_object_get(
			    json_object_get(m->content, "data"), "text/plain"));
			f->two = t && strcmp(t, "2") == 0;
		}
	}
	if (f->got_reply && f->got_idle) {
		f->busy = false;
		f->t_done = now_ns();
		f->ndone++;
		if (f->todo > 0) {
			f->todo--;
			floor_send(f, f->code);
		}
	}
}

static void fk_on_exit(void *arg, struct kernel *k, int status, bool was_ready)
{
	struct fk *f = arg;

	(void)k;
	(void)was_ready;
	f->exited = true;
	say("floor kernel exited (status %d)", status);
}

static const struct kernel_ops fk_ops = {fk_on_ready, fk_on_msg, fk_on_exit};

static int floor_run(bool (*until)(void *), void *arg, long timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (!until(arg)) {
		if (now_ns() >= deadline)
			return -1;
		if (loop_run_once(g_loop, 50) < 0)
			die("floor: event loop failed");
	}
	return 0;
}

static bool fk_is_ready(void *arg)
{
	const struct fk *f = arg;

	if (f->exited)
		die("floor kernel died while starting");
	return f->ready;
}

static bool fk_is_idle(void *arg)
{
	const struct fk *f = arg;

	if (f->exited)
		die("floor kernel died");
	return !f->busy;
}

void floor_init(void)
{
	char rt[200];

	snprintf(rt, sizeof(rt), "%s/rt-floor", bench_tmp);
	snprintf(g_cwd, sizeof(g_cwd), "%s/cwd", bench_tmp);
	if (mkdir(rt, 0700) < 0 || mkdir(g_cwd, 0755) < 0)
		die("mkdir in %s: %s", bench_tmp, strerror(errno));
	g_zmq = zmq_ctx_new();
	g_loop = loop_new();
	/* The daemon's default --kernel-path is E2BCI_KERNELS_DIR too, and it
	 * finds "python" with the same kspec_find. */
	g_kpath = kspec_search_path(E2BCI_KERNELS_DIR);
	if (!g_zmq || !g_loop || !g_kpath)
		die("floor: out of memory");
	g_spec = kspec_find(g_kpath, "python");
	if (!g_spec)
		die("no python kernelspec found");
	g_kenv = (struct kernel_env){strdup(rt), g_zmq, g_loop,
				     START_TIMEOUT_MS, NULL, 0};
}

void floor_cleanup(void)
{
	kspec_free(g_spec);
	kspec_strv_free(g_kpath);
	loop_free(g_loop);
	zmq_ctx_term(g_zmq);
	free((char *)g_kenv.runtime_dir);
}

double floor_start(struct fk *f)
{
	char err[256];

	memset(f, 0, sizeof(*f));
	f->t_spawn = now_ns();
	f->k =
	    kernel_start(&g_kenv, g_spec, g_cwd, &fk_ops, f, err, sizeof(err));
	if (!f->k)
		die("floor: %s", err);
	child_track(CHILD_KERNEL, kernel_pid(f->k));
	if (floor_run(fk_is_ready, f, START_TIMEOUT_MS + 1000) < 0)
		die("floor kernel did not become ready");
	return ns_ms(f->t_ready - f->t_spawn);
}

void floor_free(struct fk *f)
{
	if (!f->k)
		return;
	child_forget(CHILD_KERNEL, kernel_pid(f->k));
	kernel_free(f->k);
	f->k = NULL;
}

double floor_exec(struct fk *f, const char *code)
{
	f->todo = 0;
	floor_send(f, code);
	if (floor_run(fk_is_idle, f, REQ_TIMEOUT_MS) < 0)
		die("floor: execution timed out");
	if (!f->ok)
		die("floor: execution failed");
	return ns_ms(f->t_done - f->t_send);
}

static bool fk_all_idle(void *arg)
{
	struct fk *f = arg;

	for (int i = 0; i < NPAR; i++) {
		if (f[i].exited)
			die("floor kernel died");
		if (f[i].busy || f[i].todo > 0)
			return false;
	}
	return true;
}

double floor_parallel_round(struct fk *f, int n_each)
{
	uint64_t t0 = now_ns(), t1 = 0;

	for (int i = 0; i < NPAR; i++) {
		f[i].todo = n_each - 1;
		f[i].ndone = 0;
		floor_send(&f[i], "1+1");
	}
	if (floor_run(fk_all_idle, f, 120000) < 0)
		die("floor: parallel round timed out");
	for (int i = 0; i < NPAR; i++) {
		if (!f[i].ok || !f[i].two || f[i].ndone != n_each)
			die("floor: parallel execution failed");
		if (f[i].t_done > t1)
			t1 = f[i].t_done;
	}
	return NPAR * n_each / ((double)(t1 - t0) / 1e9);
}

/* ------------------------------------------------ kernels per language */

/* Every language the daemon serves (README.md, "Languages"). */
static const char *const KLANGS[] = {"python", "javascript", "typescript",
				     "r",      "bash",	     "java"};
#define KSTART_TIMEOUT_MS 30000 /* one start of one language */
_Static_assert(sizeof(KLANGS) / sizeof(*KLANGS) == NKLANG, "NKLANG");

/* The daemon's server_spec(): the same search path and kspec_find, and
 * TypeScript on the JavaScript kernel only if no spec of its own. */
static struct kspec *klang_spec(const char *language)
{
	struct kspec *k = kspec_find(g_kpath, language);

	if (!k && strcmp(language, "typescript") == 0)
		k = kspec_find(g_kpath, "javascript");
	return k;
}

static bool fk_ready_or_exited(void *arg)
{
	const struct fk *f = arg;

	return f->ready || f->exited;
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

/* Starts a kernel for spec; returns spawn -> ready in ms, or -1 with a
 * reason in why (the kernel, if any, is freed then). */
static double fk_try_start(struct fk *f, const struct kspec *spec, char *why,
			   size_t len)
{
	char err[256];

	memset(f, 0, sizeof(*f));
	f->t_spawn = now_ns();
	f->k = kernel_start(&g_kenv, spec, g_cwd, &fk_ops, f, err, sizeof(err));
	if (!f->k) {
		snprintf(why, len, "failed: %.120s", err);
		return -1;
	}
	child_track(CHILD_KERNEL, kernel_pid(f->k));
	if (floor_run(fk_ready_or_exited, f, KSTART_TIMEOUT_MS) < 0 ||
	    !f->ready) {
		snprintf(why, len, "failed: %s",
			 f->exited ? "exited while starting"
				   : "not ready within 30 s");
		floor_free(f);
		return -1;
	}
	return ns_ms(f->t_ready - f->t_spawn);
}
/* n counted starts of spec (after one uncounted start that warms the page
 * cache) into L; the idle RSS of the last one's tree, KIDLE_MS after it was
 * ready. A failed start ends the series with the reason in L->status. */
static void klang_measure(struct klang *L, const struct kspec *spec, int n)
{
	struct fk f;

	for (int s = -1; s < n; s++) {
		double ms =
		    fk_try_start(&f, spec, L->status, sizeof(L->status));
		if (ms < 0)
			break;
		if (s >= 0)
			sm_add(&L->start, ms);
		if (s + 1 == n) {
			floor_run(never, NULL, KIDLE_MS);
			if (f.exited)
				snprintf(L->status, sizeof(L->status),
					 "failed: exited when idle");
			else
				L->rss_mib =
				    tree_rss(kernel_pid(f.k), &L->nprocs);
		}
		floor_free(&f);
	}
}

void floor_kernels(struct klang *kl, int n)
{
	for (size_t i = 0; i < NKLANG; i++) {
		struct klang *L = &kl[i];
		struct kspec *spec = klang_spec(KLANGS[i]);

		L->language = KLANGS[i];
		L->rss_mib = NAN;
		if (!spec) {
			snprintf(L->status, sizeof(L->status), "not installed");
			say("kernel %s: not installed", L->language);
			continue;
		}
		snprintf(L->spec, sizeof(L->spec), "%s", spec->name);
		snprintf(L->status, sizeof(L->status), "ok");
		klang_measure(L, spec, n);
		say("kernel %s (%s): start p50 %.0f ms, idle RSS %.1f MiB in "
		    "%d processes%s%s",
		    L->language, L->spec, sm_pct(&L->start, 0.5), L->rss_mib,
		    L->nprocs, strcmp(L->status, "ok") ? "; " : "",
		    strcmp(L->status, "ok") ? L->status : "");
		kspec_free(spec);
	}
}
