/*
 * kh_main.c: e2b-kernel's command line, signals and lifecycle.
 *
 *   e2b-kernel --mode bash|json --language NAME -f CONNECTION_FILE
 *              [--log-level LEVEL] -- RUNNER_ARGV...
 *
 * Owns the struct kh and its lifecycle: parse, block signals, read the
 * connection file, bind the sockets, start the runner, publish "starting",
 * run the loop until the runner is gone, clean up, exit.
 *
 * Signals: SIGINT, SIGTERM, SIGHUP and SIGCHLD are blocked before any
 * thread exists (libzmq starts I/O threads, which inherit the mask) and read
 * from a signalfd in the loop; SIGPIPE is ignored. So SIGINT never kills the
 * host: the daemon (or jupyter_client) sends it to the host's process group,
 * the host alone receives it, because the runner has a process group of its
 * own, and the host forwards the interrupt to the runner's process group
 * when a cell is running (kh_exec_interrupt). interrupt_request on the
 * control channel takes the same path, so both interrupt modes work.
 * shutdown_request gives the runner KH_STOP_GRACE_MS to quit; SIGTERM and
 * SIGHUP (the daemon's "now", half a second later) only KH_TERM_GRACE_MS,
 * so the host has the time to end everything before the daemon's SIGKILL.
 *
 * Process ends: the host is a child subreaper, so what user code started
 * and left behind (a daemonized or setsid process included) becomes its
 * child when its parent exits; SIGCHLD reaps those, and before the host
 * exits it kills them all (kh_proc_cleanup). Its parent-death signal is
 * SIGTERM, not the daemon's SIGKILL: a host whose daemon died still ends its
 * runner and everything user code started before it exits.
 *
 * Exit status: 0 after shutdown_request or SIGTERM once the runner is gone;
 * when the runner dies by itself (a cell ran "exit", it crashed) the host
 * exits with the runner's status (128 + signal when it was killed, 1 if it
 * exited 0), so the daemon sees a kernel death and restarts the kernel;
 * 1 when setting up failed, 2 for a bad command line.
 *
 * Loop thread only (the host is single-threaded apart from libzmq's own).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "kh.h"
#include "kh_conn.h"
#include "kh_exec.h"
#include "log.h"

#define KH_STOP_GRACE_MS 2000 /* runner's time to quit before SIGKILL */
#define KH_TERM_GRACE_MS 300  /* the same after SIGTERM (the daemon's 1 s) */
#define KH_STOP_ALARM_S	 5    /* a host still alive then is killed */

struct kh_args {
	const char *mode;
	const char *language;
	const char *conn_file;
	enum log_level level;
	char **runner; /* NULL-terminated, borrowed from argv */
};

static void kh_usage(FILE *f)
{
	fprintf(f,
		"usage: e2b-kernel --mode bash|json --language NAME "
		"-f CONNECTION_FILE\n"
		"                  [--log-level error|warn|info|debug] -- "
		"RUNNER_ARGV...\n"
		"A Jupyter kernel (protocol %s) that runs code through a "
		"runner process;\n"
		"see kernels/RUNNER-PROTOCOL.md and kernels/host/README.md.\n",
		"5.3");
}

/* Returns 0, 1 for --help, or -EINVAL (reported on stderr). */
static int kh_parse_args(int argc, char **argv, struct kh_args *a)
{
	static const struct option opts[] = {
	    {"mode", required_argument, NULL, 'm'},
	    {"language", required_argument, NULL, 'l'},
	    {"connection-file", required_argument, NULL, 'f'},
	    {"log-level", required_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	memset(a, 0, sizeof(*a));
	a->level = LOG_LVL_INFO;
	/* "+": stop at the first non-option; "--" ends ours for sure. */
	while ((c = getopt_long(argc, argv, "+f:h", opts, NULL)) != -1) {
		if (c == 'm')
			a->mode = optarg;
		else if (c == 'l')
			a->language = optarg;
		else if (c == 'f')
			a->conn_file = optarg;
		else if (c == 'v' && log_parse_level(optarg, &a->level) < 0)
			goto bad;
		else if (c == 'h')
			return 1;
		else if (c != 'v')
			goto bad;
	}
	a->runner = argv + optind;
	if (!a->mode || !a->conn_file || optind >= argc ||
	    (strcmp(a->mode, "bash") && strcmp(a->mode, "json")))
		goto bad;
	if (!a->language)
		a->language = a->mode;
	return 0;
bad:
	kh_usage(stderr);
	return -EINVAL;
}

void kh_ready(struct kh *kh, json_t *language_info, const char *banner)
{
	if (kh->state != KH_STARTING)
		return;
	kh->language_info = json_is_object(language_info)
				? json_incref(language_info)
				: json_pack("{s:s}", "name", kh->language);
	kh->banner = strdup(banner ? banner : "");
	kh->state = KH_READY;
	log_info("%s kernel ready (runner pid %d)", kh->language,
		 (int)kh->proc.pid);
	kh_exec_pump(kh);
}

/* Stops the runner within grace_ms; a second call may shorten that. */
static void kh_end(struct kh *kh, uint64_t grace_ms)
{
	int sig = 0;

	if (kh->proc.exited)
		return;
	if (kh->state != KH_STOPPING) {
		kh->state = KH_STOPPING;
		sig = kh->mode->stop(kh);
		/* The last resort should the loop ever wedge while stopping:
		 * SIGALRM's default action ends the host. */
		alarm(KH_STOP_ALARM_S);
	}
	kh_proc_stop(&kh->proc, sig, grace_ms);
}

void kh_stop(struct kh *kh)
{
	kh_end(kh, KH_STOP_GRACE_MS);
}

static void kh_on_data(void *arg, enum kh_fd fd, const char *buf, size_t len)
{
	struct kh *kh = arg;

	kh->mode->data(kh, fd, buf, len);
}

/* The runner is gone: publish what is left and leave the loop. */
static void kh_on_exit(void *arg, int status)
{
	struct kh *kh = arg;

	kh_exec_flush(kh);
	kh->quit = true;
	if (kh->state == KH_STOPPING) {
		kh->exit_code = 0;
		return;
	}
	if (WIFSIGNALED(status))
		kh->exit_code = 128 + WTERMSIG(status);
	else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		kh->exit_code = WEXITSTATUS(status);
	else
		kh->exit_code = 1;
	log_warnx("runner (pid %d) %s %d; the kernel exits", (int)kh->proc.pid,
		  WIFSIGNALED(status) ? "was killed by signal" : "exited with",
		  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

static const struct kh_proc_ops kh_proc_ops = {kh_on_data, kh_on_exit};

static void kh_on_signal(void *arg, short revents)
{
	struct kh *kh = arg;
	struct signalfd_siginfo si;

	(void)revents;
	while (read(kh->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGINT)
			kh_exec_interrupt(kh);
		else if (si.ssi_signo == SIGCHLD)
			kh_proc_reap_orphans(&kh->proc);
		else
			kh_end(kh, KH_TERM_GRACE_MS);
	}
}

void kh_signals_poll(struct kh *kh)
{
	kh_on_signal(kh, 0);
}

/* Blocks the signals the loop handles and opens their signalfd. Must run
 * before any thread is created. */
static int kh_signals(struct kh *kh)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	kh->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return kh->sigfd < 0 ? -errno : 0;
}

/* Adopts the orphans of user code, and turns the parent-death signal the
 * daemon set (SIGKILL) into SIGTERM, which the loop handles like the
 * daemon's own. A parent that died before that (JPY_PARENT_PID, set by the
 * daemon and jupyter_client, is no longer our parent) stops the host. */
static void kh_parent(void)
{
	const char *want = getenv("JPY_PARENT_PID");

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER");
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
		log_warn("PR_SET_PDEATHSIG");
	if (want && atoi(want) > 1 && getppid() != (pid_t)atoi(want))
		kill(getpid(), SIGTERM);
}

/* Everything between the command line and the loop. 0 or -errno. */
static int kh_setup(struct kh *kh, const struct kh_args *a,
		    const struct kh_conn *conn, void *zctx)
{
	char err[512];
	int rc;

	rc = kh_chan_open(&kh->chan, kh->loop, zctx, conn, kh_exec_on_msg, kh,
			  err, sizeof(err));
	if (rc < 0) {
		log_errx("%s", err);
		return rc;
	}
	rc = kh->mode->init(kh);
	if (rc < 0) {
		log_errx("%s mode: %s", kh->mode->name, strerror(-rc));
		return rc;
	}
	rc = kh_proc_spawn(&kh->proc, kh->loop, a->runner, kh->mode->events,
			   &kh_proc_ops, kh, err, sizeof(err));
	if (rc < 0) {
		log_errx("%s", err);
		return rc;
	}
	kh->sigw =
	    loop_add_fd(kh->loop, kh->sigfd, ZMQ_POLLIN, kh_on_signal, kh);
	rc = kh->sigw ? kh->mode->start(kh) : -ENOMEM;
	if (rc < 0) {
		log_errx("cannot start the runner: %s", strerror(-rc));
		return rc;
	}
	log_info("%s kernel (%s mode) started; runner %s (pid %d)",
		 kh->language, kh->mode->name, a->runner[0], (int)kh->proc.pid);
	kh_chan_status(&kh->chan, NULL, "starting");
	return 0;
}

static void kh_cleanup(struct kh *kh)
{
	kh_proc_cleanup(&kh->proc);
	kh_exec_cleanup(kh);
	if (kh->mode)
		kh->mode->cleanup(kh);
	kh_chan_close(&kh->chan);
	if (kh->loop)
		loop_del(kh->loop, kh->sigw);
	if (kh->sigfd >= 0)
		close(kh->sigfd);
	json_decref(kh->language_info);
	free(kh->banner);
}

int main(int argc, char **argv)
{
	struct kh kh;
	struct kh_args a;
	struct kh_conn conn = {0};
	void *zctx = NULL;
	char err[512];
	int rc;

	memset(&kh, 0, sizeof(kh));
	kh.sigfd = -1;
	kh.exit_code = 1;
	rc = kh_parse_args(argc, argv, &a);
	if (rc != 0) {
		if (rc > 0)
			kh_usage(stdout);
		return rc > 0 ? 0 : 2;
	}
	log_init(a.level, getenv("JOURNAL_STREAM") != NULL);
	kh.language = a.language;
	kh.mode = strcmp(a.mode, "bash") == 0 ? &kh_bash_mode : &kh_json_mode;
	if (kh_signals(&kh) < 0) {
		log_err("signals");
		goto out;
	}
	kh_parent();
	if (kh_conn_load(a.conn_file, &conn, err, sizeof(err)) < 0) {
		log_errx("%s", err);
		goto out;
	}
	kh.loop = loop_new();
	zctx = zmq_ctx_new();
	if (!kh.loop || !zctx) {
		log_errx("out of memory");
		goto out;
	}
	if (kh_setup(&kh, &a, &conn, zctx) < 0)
		goto out;
	while (!kh.quit) {
		rc = loop_run_once(kh.loop, -1);
		if (rc < 0) {
			log_errx("event loop: %s", strerror(-rc));
			break;
		}
	}
out:
	kh_cleanup(&kh);
	if (zctx)
		zmq_ctx_term(zctx);
	loop_free(kh.loop);
	kh_conn_cleanup(&conn);
	return kh.exit_code;
}
