/*
 * main: startup, signals, the loop, shutdown.
 *
 * Order of startup: options, logging, the private runtime directory, the
 * kernelspec search path, the ZeroMQ context, the loop with a signalfd,
 * the HTTP listener, then the default contexts (their kernels start in
 * parallel). /health turns 200 and READY=1 is sent once every default
 * context answered. SIGTERM/SIGINT end the loop; then every execution
 * ends with an error line, every kernel is stopped and reaped (killed if
 * still running after 2 s), the loop runs until every stream has reached
 * its client (--stop-timeout-ms at most), and only then HTTP stops; the
 * runtime files go, and the exit status is 0. Exits with an error only
 * before READY=1.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "api.h"
#include "check.h"
#include "ctx.h"
#include "http.h"
#include "kernel.h"
#include "kproc.h"
#include "kspec.h"
#include "log.h"
#include "pool.h"
#include "req.h"
#include "sdn.h"
#include "server.h"
#include "zyg.h"

/* Set by main_on_signal, a loop callback (signals arrive on a signalfd;
 * there is no signal handler), so a plain flag. */
static bool main_stop;
static uint64_t main_stop_ms; /* when the first stop signal was read */

/* Start-up is over once every default context answered or FAILED: then
 * READY=1 goes to systemd and the pool fills. A FAILED one does not hold
 * the daemon back (the others serve, and it retries by itself); /health
 * stays 503 and names it until it answers. The hook ctx_ calls whenever a
 * context turns READY or FAILED. */
static void main_check_ready(struct server *s)
{
	size_t n = 0, failed = 0;

	for (char **l = s->default_languages; *l; l++) {
		struct ctx *c = ctx_default(s, *l);
		if (c && !c->ever_ready && c->state != CTX_FAILED)
			return;
		n += c && c->ever_ready;
		failed += c && !c->ever_ready;
	}
	if (s->ready)
		return;
	s->ready = true;
	if (failed)
		log_warnx("started with %zu of %zu default context(s) failed; "
			  "/health answers 503 until they answer",
			  failed, n + failed);
	log_info("ready: %zu default context(s) answer on port %d", n,
		 http_port(s->http));
	sdn_status("ready, %zu contexts", s->ncontexts);
	sdn_ready();
	pool_refill(s);
}

static int main_runtime_dir(struct server *s)
{
	const char *d = s->cfg.runtime_dir, *env;
	char buf[sizeof(s->runtime_dir)];

	if (!*d) {
		if ((env = getenv("RUNTIME_DIRECTORY")) && *env)
			snprintf(buf, sizeof(buf), "%s", env);
		else if (geteuid() == 0)
			snprintf(buf, sizeof(buf), "/run/e2b-ci");
		else if ((env = getenv("XDG_RUNTIME_DIR")) && *env)
			snprintf(buf, sizeof(buf), "%s/e2b-ci", env);
		else
			snprintf(buf, sizeof(buf), "/tmp/e2b-ci-%u",
				 (unsigned)geteuid());
		d = buf;
	}
	if (strlen(d) > 90) {
		log_errx("runtime dir '%s' is too long for ipc socket paths",
			 d);
		return -1;
	}
	snprintf(s->runtime_dir, sizeof(s->runtime_dir), "%s", d);
	if (mkdir(d, 0700) < 0 && errno != EEXIST) {
		log_err("cannot create runtime dir %s", d);
		return -1;
	}
	if (chmod(d, 0700) < 0) {
		log_err("cannot make runtime dir %s private", d);
		return -1;
	}
	return 0;
}

static char **main_split_languages(const char *list)
{
	char *copy = strdup(list), *save = NULL, *tok;
	char **v = calloc(strlen(list) / 2 + 2, sizeof(*v));
	size_t n = 0;

	if (!copy || !v) {
		free(copy);
		free(v);
		return NULL;
	}
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *lang = req_normalize_language(tok);
		bool dup = false;
		for (size_t i = 0; lang && i < n; i++)
			dup |= strcmp(v[i], lang) == 0;
		if (lang && !dup && strspn(tok, " \t") != strlen(tok))
			v[n++] = lang;
		else
			free(lang);
	}
	free(copy);
	return v;
}

static void main_on_signal(void *arg, short revents)
{
	int fd = *(int *)arg;
	struct signalfd_siginfo si;

	(void)revents;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			kproc_reap_strays();
			continue;
		}
		log_info("signal %u received; shutting down", si.ssi_signo);
		main_stop = true;
		if (!main_stop_ms)
			main_stop_ms = loop_now_ms();
	}
}

/* STATUS= for systemctl status; sdn_status() drops unchanged lines. A
 * failed default context comes first: it is why /health says 503. */
static void main_status(struct server *s)
{
	size_t warm, warming, failed;
	char why[600], *cut;

	pool_count(s, &warm, &warming);
	failed = ctx_failed_defaults(s, why, sizeof(why));
	/* The first reason, without its countdown, which would change the
	 * line every second. */
	why[strcspn(why, "\n")] = '\0';
	cut = strstr(why, " (context ");
	if (cut)
		*cut = '\0';
	sdn_status("%s: %zu contexts, %u kernels (%zu warm)%s%s",
		   failed ? "degraded" : "ready", s->ncontexts, kernel_live(),
		   warm, failed ? "; " : "", failed ? why : "");
}

static struct loop_timer main_wd_timer;

static void main_watchdog(void *arg, short revents)
{
	struct server *s = arg;

	(void)revents;
	sdn_watchdog_ping();
	loop_timer_arm(s->loop, &main_wd_timer, (uint64_t)sdn_watchdog_ms(),
		       main_watchdog, s);
}

/* Entries in a NULL-terminated vector, the NULL included. */
static size_t strlen_v(char **v)
{
	size_t n = 0;

	while (v[n])
		n++;
	return n + 1;
}

static int main_start_defaults(struct server *s)
{
	char err[256];
	enum ctx_err why;

	char **v = s->default_languages;
	size_t i = 0;

	/* The zygotes first: their imports run while the first kernels
	 * (exec'd meanwhile) start. */
	for (i = 0; v[i]; i++) {
		const struct kspec *spec = kspec_cache_get(&s->specs, v[i]);
		if (spec)
			kproc_zygote_warm(spec, &s->kres);
	}
	i = 0;
	while (v[i]) {
		if (!kspec_cache_get(&s->specs, v[i])) {
			log_warnx("no kernel installed for default language "
				  "%s; skipping it",
				  v[i]);
			/* Drop it from the list so readiness does not wait. */
			free(v[i]);
			memmove(&v[i], &v[i + 1],
				sizeof(*v) * strlen_v(v + i + 1));
			continue;
		}
		if (!ctx_new(s, v[i], s->cfg.cwd, true, &why, err, sizeof(err)))
			log_errx("default context %s: %s", v[i], err);
		i++;
	}
	/* Every default context exists now: from here on each one that
	 * settles may end start-up. */
	s->ctx_settled = main_check_ready;
	main_check_ready(s);
	return 0;
}

static void main_on_answer(void *arg, const char *tag, unsigned status)
{
	metrics_http(arg, tag, status);
}

/* A zygote is ready: the spares exec'd while it loaded give way to forks,
 * and so do the unused kernels of contexts made meanwhile (the default
 * Python context: the one most code runs in). Spares first, so that no
 * context takes an exec'd one. */
static void main_zygote_ready(void *arg, const struct kspec *spec)
{
	pool_renew(arg, spec);
	ctx_renew(arg, spec);
}

/* The kernels' environment: limits (kres), what kernel_ and run_ share,
 * the output budget; then what a daemon that died here left is swept. */
static int main_kernels_env(struct server *s)
{
	struct kres_opts ko = {s->cfg.kernel_memory_max,
			       s->cfg.kernel_cpu_weight,
			       s->cfg.kernel_tasks_max,
			       s->cfg.kernel_user,
			       s->runtime_dir,
			       NULL,
			       NULL};
	char err[256];

	if (kres_init(&s->kres, &ko, err, sizeof(err)) < 0) {
		log_errx("%s", err);
		return -1;
	}
	/* A kernel user must be able to reach its own dir inside. */
	if (s->kres.as_user && chmod(s->runtime_dir, 0711) < 0)
		log_warn("chmod %s", s->runtime_dir);
	s->kenv = (struct kernel_env){
	    s->runtime_dir, s->zmq,
	    s->loop,	    s->cfg.kernel_start_timeout_ms,
	    &s->kres,	    (size_t)s->cfg.max_kernel_message};
	s->run_env = (struct run_env){s->loop, &s->metrics, s->cfg.envd_url,
				      s->cfg.envd_timeout_ms,
				      s->cfg.interrupt_timeout_ms};
	s->backlog = (struct exec_budget){(size_t)s->cfg.max_backlog,
					  (size_t)s->cfg.max_backlog_total, 0};
	/* What a daemon that died here left (files, kernels' processes). */
	kproc_sweep(s->runtime_dir, &s->kres);
	/* A kernel forked by a zygote's intermediate process must become
	 * the daemon's child when that process exits (pidfd, waitpid,
	 * killpg and the OOM verdict rely on it): the daemon is the
	 * subreaper of everything below it. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER");
	zyg_init(&(struct zyg_opts){strcmp(s->cfg.zygote, "on") == 0,
				    s->cfg.python_preload, s->cfg.cwd, s->loop,
				    &s->kres, main_zygote_ready, s});
	return 0;
}

/* SIGTERM, SIGINT and SIGHUP arrive on a signalfd the loop watches, and
 * SIGCHLD for the orphans the daemon reaps as a child subreaper. */
static int main_signals(struct server *s, int *sigfd)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	*sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (*sigfd < 0 ||
	    !loop_add_fd(s->loop, *sigfd, ZMQ_POLLIN, main_on_signal, sigfd)) {
		log_err("signalfd");
		return -1;
	}
	return 0;
}

static int main_setup(struct server *s, int *sigfd)
{
	struct http_opts ho = {s->cfg.listen,		s->cfg.port,
			       s->cfg.max_body,		s->cfg.max_connections,
			       main_on_answer,		&s->metrics,
			       s->cfg.header_timeout_ms};
	char err[256];

	if (mkdir(s->cfg.cwd, 0755) < 0 && errno != EEXIST)
		log_warn("cannot create default cwd %s", s->cfg.cwd);
	if (main_runtime_dir(s) < 0)
		return -1;
	if (pool_init(s, err, sizeof(err)) < 0) {
		log_errx("%s", err);
		return -1;
	}
	s->default_languages = main_split_languages(s->cfg.default_languages);
	s->zmq = zmq_ctx_new();
	s->loop = loop_new();
	if (kspec_cache_init(&s->specs, s->cfg.kernel_path) < 0 ||
	    !s->default_languages || !s->zmq || !s->loop) {
		log_errx("out of memory at startup");
		return -1;
	}
	if (main_kernels_env(s) < 0 || main_signals(s, sigfd) < 0)
		return -1;
	s->http = http_new(s->loop, &ho, api_handle, s, err, sizeof(err));
	if (!s->http) {
		log_errx("%s", err);
		return -1;
	}
	log_info("e2b-ci listening on [%s]:%d (runtime dir %s)", s->cfg.listen,
		 http_port(s->http), s->runtime_dir);
	if (sdn_watchdog_ms() > 0)
		main_watchdog(s, 0);
	return main_start_defaults(s);
}

/* --check: prints the configuration as parsed, then checks that every
 * default language can start its kernel (check.c), starting none. Returns
 * the exit status: 0, or 1 when a default kernel cannot start. */
static int main_check(struct cfg *c)
{
	char **path = kspec_search_path(c->kernel_path);
	char **langs = main_split_languages(c->default_languages);
	int failed = 1;

	cfg_print(c, stdout);
	fflush(stdout);
	if (path && langs)
		failed = check_kernels(path, langs, stdout, stderr);
	else
		fprintf(stderr, "e2b-ci: out of memory\n");
	kspec_strv_free(path);
	kspec_strv_free(langs);
	cfg_cleanup(c);
	return failed ? 1 : 0;
}

/* Runs the loop until every answered request (each stream with its error
 * and end lines) has fully reached its client, or the deadline passed. */
static void main_drain_http(struct server *s, uint64_t deadline)
{
	uint64_t now;

	while (http_pending(s->http) && (now = loop_now_ms()) < deadline) {
		http_prepare(s->http);
		if (loop_run_once(s->loop, (int)(deadline - now)) < 0)
			break;
	}
	if (http_pending(s->http))
		log_warnx("%zu answer(s) cut at exit: their clients did not "
			  "read them within --stop-timeout-ms",
			  http_pending(s->http));
}

/* 0, or -1 when kernels were leaked (a bug; see below). */
static int main_cleanup(struct server *s, int sigfd)
{
	/* Counted from the signal: the loop turn it arrived in may have been
	 * a long one. */
	uint64_t deadline = (main_stop_ms ? main_stop_ms : loop_now_ms()) +
			    (uint64_t)s->cfg.stop_timeout_ms;
	int rc = 0;

	sdn_stopping();
	/* Streams first get their error and end lines, which flow to the
	 * clients while the kernels exit (2 s at most); then the loop runs
	 * until every stream has ended on the wire, within the stop timeout;
	 * then HTTP stops. */
	ctx_shutdown_all(
	    s, s->cfg.stop_timeout_ms < 2000 ? s->cfg.stop_timeout_ms : 2000);
	if (s->loop)
		main_drain_http(s, deadline);
	http_free(s->http);
	s->http = NULL;
	/* Before the kernelspecs they point to. */
	zyg_shutdown();
	kspec_cache_cleanup(&s->specs);
	if (s->default_languages)
		kspec_strv_free(s->default_languages);
	loop_free(s->loop);
	/* A kernel still alive here is a bug; its sockets would block
	 * zmq_ctx_term() for good, so say so and exit without it. */
	if (kernel_live()) {
		log_errx("%u kernel(s) not freed at exit; skipping "
			 "zmq_ctx_term",
			 kernel_live());
		rc = -1;
	} else if (s->zmq) {
		zmq_ctx_term(s->zmq);
	}
	if (sigfd >= 0)
		close(sigfd);
	if (*s->runtime_dir && rmdir(s->runtime_dir) < 0 && errno != ENOENT &&
	    errno != ENOTEMPTY)
		log_warn("cannot remove %s", s->runtime_dir);
	cfg_cleanup(&s->cfg);
	return rc;
}

int main(int argc, char **argv)
{
	static struct server srv;
	struct server *s = &srv;
	enum log_level lvl = LOG_LVL_INFO;
	char err[256];
	int sigfd = -1, rc;

	rc = cfg_load(&s->cfg, argc, argv, stdout, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "e2b-ci: %s\n", err);
		return 2;
	}
	if (rc == 1)
		return 0;
	log_parse_level(s->cfg.log_level, &lvl);
	log_init(lvl, getenv("JOURNAL_STREAM") != NULL);
	if (rc == 2)
		return main_check(&s->cfg);
	if (main_setup(s, &sigfd) < 0) {
		main_cleanup(s, sigfd);
		return 1;
	}
	while (!main_stop) {
		if (s->ready)
			main_status(s);
		http_prepare(s->http);
		if (loop_run_once(s->loop, -1) < 0) {
			log_err("event loop");
			break;
		}
	}
	if (main_cleanup(s, sigfd) < 0)
		return 1;
	log_info("stopped");
	return 0;
}
