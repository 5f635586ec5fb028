/*
 * kproc.c: one kernel process (see kproc.h), and the runtime dir's sweep.
 *
 * Lifecycle: kproc_prepare makes the id, the key and the files (the
 * connection file, in a per-kernel dir for --kernel-user) and the cgroup;
 * kproc_spawn starts the kernelspec argv through the first start method
 * that takes it ("Start methods" below; today fork and exec with child.c's
 * reset: new session, cwd, stdin from /dev/null, stdout/stderr to pipes,
 * signals reset, fds closed, PR_SET_PDEATHSIG so no kernel outlives a
 * crashed daemon, oom_score_adj 800 so kernels go before the daemon),
 * writes a pid file and opens a pidfd. The pidfd turning readable is the one
 * authoritative "kernel died" event: everything the kernel started is killed
 * (its cgroup, or its session: kres_kill) while the zombie still holds its pid,
 * the process is reaped, and on_exit runs exactly once.
 *
 * Startup (kproc_sweep): the runtime dir is locked for the daemon's life,
 * and what a daemon that died without cleaning up left there is removed:
 * connection files (HMAC keys), ipc sockets, per-user dirs, and through its
 * pid files the processes its kernels left (kres_kill_stale).
 *
 * Invariants: the connection file, pid file and ipc socket files exist
 * from kproc_prepare/kproc_spawn until the exit or kproc_cleanup; pid is
 * the kernel's until it is reaped (exited), so a signal never reaches a
 * recycled pid. Loop thread only.
 */
#include "kproc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/file.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <zmq.h>

#include "child.h"
#include "jtext.h"
#include "kspec.h"
#include "log.h"
#include "zyg.h"

extern char **environ;

/* Kernels started by each way, for /metrics. */
static unsigned long long kproc_nforked, kproc_nexecd;

/* Every kproc holding a pid not reaped yet: the stray reaper must leave
 * those to their pidfd handlers. */
static struct kproc *kproc_live;

static void kproc_live_del(struct kproc *p)
{
	for (struct kproc **q = &kproc_live; *q; q = &(*q)->live_next)
		if (*q == p) {
			*q = p->live_next;
			break;
		}
	p->live_next = NULL;
}

void kproc_init(struct kproc *p, const struct kspec *spec, struct loop *loop,
		const char *runtime_dir, const struct kres *kres)
{
	memset(p, 0, sizeof(*p));
	p->spec = spec;
	p->loop = loop;
	p->runtime_dir = runtime_dir;
	p->kres = kres;
	p->pidfd = p->out.fd = p->err.fd = -1;
	/* Not prepared yet: nothing for kres_release to close (0 would be
	 * fd 0, whatever the daemon has there). */
	p->kk.procs_fd = p->kk.pprocs_fd = -1;
	p->out.p = p->err.p = p;
	p->out.name = "stdout";
	p->err.name = "stderr";
	p->err.tail = p->err_tail;
}

/* Kernels known to accept "transport": "ipc" (see kernels-on-debian.md):
 * ipykernel-based ones, IRkernel and our own kernel host. Everything else
 * gets tcp on loopback. */
static bool kproc_supports_ipc(const struct kspec *spec)
{
	static const char *const marks[] = {"ipykernel", "IRkernel",
					    "host/launch.sh", "e2b-kernel"};

	for (size_t i = 0; i < spec->argc; i++)
		for (size_t j = 0; j < sizeof(marks) / sizeof(*marks); j++)
			if (strstr(spec->argv[i], marks[j]))
				return true;
	return false;
}

/* Picks five free loopback ports. Racy by nature (the kernel re-binds them);
 * a kernel that dies at start is retried by the owner. */
static int kproc_pick_ports(int ports[KPROC_NPORTS])
{
	int fds[KPROC_NPORTS], rc = 0, n = 0;

	for (n = 0; n < KPROC_NPORTS; n++) {
		struct sockaddr_in a = {.sin_family = AF_INET};
		socklen_t alen = sizeof(a);

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fds[n] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[n] < 0 ||
		    bind(fds[n], (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    getsockname(fds[n], (struct sockaddr *)&a, &alen) < 0) {
			rc = -errno;
			if (fds[n] >= 0)
				close(fds[n]);
			break;
		}
		ports[n] = ntohs(a.sin_port);
	}
	while (n-- > 0)
		close(fds[n]);
	return rc;
}

static int kproc_write_conn_file(struct kproc *p)
{
	json_t *o = json_object();
	char *text = NULL;
	int fd = -1, rc = -ENOMEM;

	if (!o)
		return -ENOMEM;
	json_object_set_new(o, "transport",
			    json_string(p->ipc_prefix ? "ipc" : "tcp"));
	json_object_set_new(
	    o, "ip", json_string(p->ipc_prefix ? p->ipc_prefix : "127.0.0.1"));
	json_object_set_new(o, "shell_port",
			    json_integer(p->port[KPROC_SHELL]));
	json_object_set_new(o, "iopub_port",
			    json_integer(p->port[KPROC_IOPUB]));
	json_object_set_new(o, "stdin_port",
			    json_integer(p->port[KPROC_STDIN]));
	json_object_set_new(o, "control_port",
			    json_integer(p->port[KPROC_CONTROL]));
	json_object_set_new(o, "hb_port", json_integer(p->port[KPROC_HB]));
	json_object_set_new(o, "signature_scheme", json_string("hmac-sha256"));
	json_object_set_new(o, "key", json_string(p->key));
	json_object_set_new(o, "kernel_name", json_string(p->spec->name));
	text = json_dumps(o, JSON_COMPACT);
	if (!text)
		goto out;
	fd = open(p->conn_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	size_t len = strlen(text);
	rc = write(fd, text, len) == (ssize_t)len ? 0 : -EIO;
out:
	if (fd >= 0)
		close(fd);
	free(text);
	json_decref(o);
	return rc;
}

void kproc_endpoint(const struct kproc *p, enum kproc_port i, char *buf,
		    size_t len)
{
	if (p->ipc_prefix)
		snprintf(buf, len, "ipc://%s-%d", p->ipc_prefix, p->port[i]);
	else
		snprintf(buf, len, "tcp://127.0.0.1:%d", p->port[i]);
}

static void kproc_unlink_files(struct kproc *p)
{
	char path[512];

	if (p->conn_file)
		unlink(p->conn_file);
	if (p->pid_file)
		unlink(p->pid_file);
	if (p->ipc_prefix) {
		for (int i = 0; i < KPROC_NPORTS; i++) {
			snprintf(path, sizeof(path), "%s-%d", p->ipc_prefix,
				 p->port[i]);
			unlink(path);
		}
	}
	if (p->user_dir)
		rmdir(p->user_dir);
}

/* Builds the child's environment: ours minus systemd's per-service
 * variables, plus the kernelspec's env and a few kernel-friendly settings. */
static char **kproc_build_env(const struct kspec *spec, const struct kres *kres)
{
	static const char *const drop[] = {
	    "NOTIFY_SOCKET=",  "WATCHDOG_PID=",	 "WATCHDOG_USEC=",
	    "LISTEN_FDS=",     "LISTEN_PID=",	 "LISTEN_FDNAMES=",
	    "JPY_PARENT_PID=", "INVOCATION_ID=", NULL};
	static const char *const user_drop[] = {
	    "HOME=", "USER=", "LOGNAME=", NULL};
	static char home[300], user[80], logname[80];
	bool as_user = kres && kres->as_user;
	size_t n = 0, i, j = 0;
	char **envp;
	static char parent[64];

	while (environ[n])
		n++;
	envp = calloc(n + spec->nenv + 7, sizeof(*envp));
	if (!envp)
		return NULL;
	for (i = 0; i < n; i++) {
		bool skip = false;
		for (const char *const *d = drop; *d; d++)
			skip |= strncmp(environ[i], *d, strlen(*d)) == 0;
		for (const char *const *d = user_drop; as_user && *d; d++)
			skip |= strncmp(environ[i], *d, strlen(*d)) == 0;
		/* The kernelspec's env overrides ours. */
		for (size_t e = 0; e < spec->nenv && !skip; e++) {
			const char *eq = strchr(spec->env[e], '=');
			size_t kl = eq ? (size_t)(eq - spec->env[e]) : 0;
			skip = kl &&
			       strncmp(environ[i], spec->env[e], kl + 1) == 0;
		}
		if (!skip)
			envp[j++] = environ[i];
	}
	for (i = 0; i < spec->nenv; i++)
		envp[j++] = spec->env[i];
	/* ipykernel exits when this parent goes away; debugpy stays quiet. */
	snprintf(parent, sizeof(parent), "JPY_PARENT_PID=%d", (int)getpid());
	envp[j++] = parent;
	if (!getenv("PYDEVD_DISABLE_FILE_VALIDATION"))
		envp[j++] = "PYDEVD_DISABLE_FILE_VALIDATION=1";
	if (as_user) {
		snprintf(home, sizeof(home), "HOME=%s", kres->home);
		snprintf(user, sizeof(user), "USER=%s", kres->user);
		snprintf(logname, sizeof(logname), "LOGNAME=%s", kres->user);
		envp[j++] = home;
		envp[j++] = user;
		envp[j++] = logname;
	}
	envp[j] = NULL;
	return envp;
}

/* Keeps line in dst, cut to fit at a UTF-8 boundary, control characters
 * as spaces: it ends up in log lines and plain-text HTTP answers. */
static void kproc_tail_keep(char *dst, const char *line, size_t len)
{
	size_t n = len < KPROC_TAIL_CHARS - 1 ? len : KPROC_TAIL_CHARS - 1;

	while (n > 0 && n < len && ((unsigned char)line[n] & 0xc0) == 0x80)
		n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];
		dst[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	dst[n] = '\0';
}

static void kproc_pipe_flush_line(struct kproc_pipe *pp)
{
	if (pp->len == 0)
		return;
	pp->line[pp->len] = '\0';
	log_debug("kernel %.8s %s: %s", pp->p->id, pp->name, pp->line);
	if (pp->tail)
		kproc_tail_keep(pp->tail[pp->ntail++ % KPROC_TAIL_LINES],
				pp->line, pp->len);
	pp->len = 0;
}

/* Reads one batch. Returns false once nothing more is to be read now (the
 * pipe is empty, or at its end, and then closed). */
static bool kproc_pipe_read(struct kproc_pipe *pp)
{
	char buf[4096];
	ssize_t n = read(pp->fd, buf, sizeof(buf));

	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return false;
		kproc_pipe_flush_line(pp);
		loop_del(pp->p->loop, pp->w);
		pp->w = NULL;
		close(pp->fd);
		pp->fd = -1;
		return false;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n' || pp->len == KPROC_PIPE_LINE - 1)
			kproc_pipe_flush_line(pp);
		if (buf[i] != '\n')
			pp->line[pp->len++] = buf[i];
	}
	return true;
}

static void kproc_on_pipe(void *arg, short revents)
{
	(void)revents;
	kproc_pipe_read(arg);
}

/* What the process wrote just before it exited may still be in the pipe
 * (the pidfd can fire first): read it, a bounded amount, so that its last
 * words reach the log and the tail; then close. */
static void kproc_pipe_close(struct kproc_pipe *pp)
{
	for (int batch = 0; batch < 16 && pp->fd >= 0; batch++)
		if (!kproc_pipe_read(pp))
			break;
	loop_del(pp->p->loop, pp->w);
	pp->w = NULL;
	if (pp->fd >= 0) {
		kproc_pipe_flush_line(pp);
		close(pp->fd);
	}
	pp->fd = -1;
}

const char *kproc_stderr_tail(const struct kproc *p, char *buf, size_t len)
{
	const struct kproc_pipe *pp = &p->err;
	unsigned first =
	    pp->ntail > KPROC_TAIL_LINES ? pp->ntail - KPROC_TAIL_LINES : 0;
	size_t used = 0;

	if (len)
		*buf = '\0';
	for (unsigned i = first; i < pp->ntail && used < len; i++) {
		int n = snprintf(buf + used, len - used, "%s%s",
				 i > first ? " | " : "",
				 pp->tail[i % KPROC_TAIL_LINES]);
		used += n > 0 ? (size_t)n : 0;
	}
	return buf;
}

/* Kills what the kernel left: its process group (a subprocess of a cell),
 * then its cgroup, or without one the rest of its session (the runner of a
 * dead kernel host and what it started). */
static void kproc_kill_rest(struct kproc *p)
{
	unsigned n;

	(void)killpg(p->pid, SIGKILL);
	n = kres_kill(&p->kk, p->pid);
	if (n)
		log_debug("kernel %.8s: %u process(es) it left were killed",
			  p->id, n);
}

/* The process is gone (reaped): what watched it and what it left go, its
 * groups, pipes, watch and files. */
static void kproc_let_go(struct kproc *p)
{
	kproc_live_del(p);
	loop_del(p->loop, p->pidw);
	p->pidw = NULL;
	kproc_pipe_close(&p->out);
	kproc_pipe_close(&p->err);
	kproc_unlink_files(p);
	kres_release(&p->kk);
}

/* Reaped: the verdict, the files, the log line, then the owner, once. */
static void kproc_reaped(struct kproc *p, int status, const struct rusage *ru)
{
	p->oom = kres_oom_killed(&p->kk, status, ru);
	p->exited = true;
	kproc_let_go(p);
	if (WIFSIGNALED(status))
		log_info("kernel %.8s (pid %d) killed by signal %d", p->id,
			 (int)p->pid, WTERMSIG(status));
	else
		log_info("kernel %.8s (pid %d) exited with status %d", p->id,
			 (int)p->pid, WEXITSTATUS(status));
	p->on_exit(p->arg, status);
}

static void kproc_on_pidfd(void *arg, short revents)
{
	struct kproc *p = arg;
	struct rusage ru = {0};
	int status = 0;
	pid_t r;

	(void)revents;
	/* Done before the reap, while the zombie keeps the pid (and so the
	 * group id) from being reused. */
	siginfo_t si = {0};
	if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) ==
		0 &&
	    si.si_pid == p->pid)
		kproc_kill_rest(p);
	r = wait4(p->pid, &status, WNOHANG, &ru);
	if (r == 0)
		return;
	if (r < 0 && errno != ECHILD)
		return;
	kproc_reaped(p, status, r > 0 ? &ru : NULL);
}

static int kproc_watch_pidfd(struct kproc *p)
{
	p->pidw = loop_add_fd(p->loop, p->pidfd, ZMQ_POLLIN, kproc_on_pidfd, p);
	return p->pidw ? 0 : -ENOMEM;
}

int kproc_watch(struct kproc *p, void (*on_exit)(void *arg, int status),
		void *arg)
{
	p->on_exit = on_exit;
	p->arg = arg;
	p->out.w =
	    loop_add_fd(p->loop, p->out.fd, ZMQ_POLLIN, kproc_on_pipe, &p->out);
	p->err.w =
	    loop_add_fd(p->loop, p->err.fd, ZMQ_POLLIN, kproc_on_pipe, &p->err);
	if (!p->out.w || !p->err.w)
		return -ENOMEM;
	/* A start the zygote answers later: kproc_zyg_done watches it. */
	return p->launch ? 0 : kproc_watch_pidfd(p);
}

void kproc_signal(struct kproc *p, int sig)
{
	/* No process yet: a stop (SIGTERM, SIGKILL) waits for it; an
	 * interrupt has nothing to interrupt. */
	if (p->launch && sig != SIGINT && p->held_sig != SIGKILL)
		p->held_sig = sig;
	if (p->pid <= 0 || p->exited)
		return;
	if (killpg(p->pid, sig) < 0)
		kill(p->pid, sig);
}

bool kproc_gone(const struct kproc *p)
{
	siginfo_t si = {0};

	return p->exited || (p->pid > 0 &&
			     waitid(P_PID, (id_t)p->pid, &si,
				    WEXITED | WNOHANG | WNOWAIT) == 0 &&
			     si.si_pid == p->pid);
}

static void kproc_launch_free(struct kproc_launch *l);

void kproc_cleanup(struct kproc *p)
{
	if (p->launch) {
		/* Its answer's pid is killed when it comes; a fork that
		 * joined the kernel's group already goes now, so that the
		 * group can be removed below. */
		zyg_cancel(p->id);
		if (p->kk.cg[0] || p->kk.pcg[0])
			kres_kill(&p->kk, 0);
		kproc_launch_free(p->launch);
		p->launch = NULL;
	}
	if (p->pid > 0 && !p->exited) {
		kproc_kill_rest(p);
		waitpid(p->pid, NULL, 0);
		p->exited = true;
	}
	kproc_let_go(p);
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
	free(p->user_dir);
	free(p->conn_file);
	free(p->pid_file);
	free(p->ipc_prefix);
	p->user_dir = p->conn_file = p->pid_file = p->ipc_prefix = NULL;
}

/* Records the kernel for kproc_sweep after a daemon crash: its pid with
 * its start time (together they name it for good) and the daemon's pid (its
 * JPY_PARENT_PID). Kept in the runtime dir, which kernels cannot write. */
static void kproc_write_pid_file(struct kproc *p)
{
	char path[512], text[96];
	int fd, n;

	snprintf(path, sizeof(path), "%s/kernel-%.8s.pid", p->runtime_dir,
		 p->id);
	n = snprintf(text, sizeof(text), "%d %llu %d\n", (int)p->pid,
		     kres_start_time(p->pid), (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, (size_t)n) != n) {
		log_warn("cannot write %s", path);
		if (fd >= 0)
			unlink(path);
	} else {
		p->pid_file = strdup(path);
	}
	if (fd >= 0)
		close(fd);
}

/* ------------------------------------------------- starting */

/*
 * kproc_spawn is the one way a kernel process starts. It prepares what any
 * start needs (struct kproc_launch: the kernelspec argv with the connection
 * file, the kernels' environment, the stdout and stderr pipes, whose read
 * ends p takes at once), then starts the process one of two ways, and
 * either gives a pid that
 *   - is the daemon's child: the pidfd, waitpid, killpg and the OOM
 *     verdict rely on it;
 *   - leads a session of its own, whose id is its pid (interrupts and
 *     kills go to the group, kres_kill to the session);
 *   - has /dev/null, out and err as fds 0, 1, 2 and nothing else open but
 *     what its own start-up opens, runs in cwd with envp, in its cgroup
 *     (kk) and as the kernel user, with PR_SET_PDEATHSIG(SIGKILL) tied to
 *     the daemon and oom_score_adj 800;
 *   - has got as far as the exec (or an equivalent point).
 *
 * The kernelspec's fork server first (zyg.c: Python's or R's, issue 13,
 * kernels/ZYGOTE-PROTOCOL.md), asynchronously: "spawn" goes to the
 * kernelspec's zygote with the launch's argv, envp, cwd, the write ends
 * and kk's cgroup.procs fd, and kproc_spawn returns at once with the
 * launch kept in p->launch (no pid yet: signals are held, see
 * kproc_signal). The answer comes from the loop (kproc_zyg_done): the pid
 * of "spawned" (the daemon is a child subreaper, main.c), or -EAGAIN,
 * when the zygote declined, died or was silent for a second; then exec.
 * exec (kproc_start_exec, through child.c) is the start when the zygote
 * declines at once (not a kernelspec it serves, not READY), and the
 * fallback; its failure is kproc_spawn's error, or after an answer, an
 * exit with status 127 and the reason in the stderr tail. Either way the
 * start ends in kproc_started: pid file, pidfd, the count.
 */
struct kproc_launch {
	char **argv; /* kspec_argv for the connection file */
	char **envp; /* kproc_build_env */
	char *cwd;
	int out, err; /* the pipes' write ends: fds 1 and 2 */
};

static void kproc_launch_free(struct kproc_launch *l)
{
	if (!l)
		return;
	kspec_strv_free(l->argv);
	free(l->envp);
	free(l->cwd);
	if (l->out >= 0)
		close(l->out);
	if (l->err >= 0)
		close(l->err);
	free(l);
}

/* The launch for p in cwd; p takes the pipes' read ends. NULL with a
 * reason in err. */
static struct kproc_launch *kproc_launch_new(struct kproc *p, const char *cwd,
					     char *err, size_t errlen)
{
	struct kproc_launch *l = calloc(1, sizeof(*l));
	int outp[2], errp[2];

	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->out = l->err = -1;
	l->argv = kspec_argv(p->spec, p->conn_file);
	l->envp = kproc_build_env(p->spec, p->kres);
	l->cwd = strdup(cwd);
	if (!l->argv || !l->envp || !l->cwd) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (pipe2(outp, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	if (pipe2(errp, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		close(outp[0]);
		close(outp[1]);
		goto fail;
	}
	p->out.fd = outp[0];
	p->err.fd = errp[0];
	l->out = outp[1];
	l->err = errp[1];
	fcntl(p->out.fd, F_SETFL, O_NONBLOCK);
	fcntl(p->err.fd, F_SETFL, O_NONBLOCK);
	return l;
fail:
	kproc_launch_free(l);
	return NULL;
}

/* The exec'd kernel between fork and exec: async-signal-safe calls only.
 * Any failure goes back through the error pipe. */
static noreturn void kproc_child(struct child *c, const struct kproc *p,
				 const struct kproc_launch *l)
{
	int src[3], rc;

	if (child_reset(c, CHILD_SESSION) < 0)
		child_fail(c);
	/* Under memory pressure the kernels go first, never the daemon (whose
	 * unit sets OOMScoreAdjust=-1000; children inherit it otherwise). */
	int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (oom >= 0) {
		if (write(oom, "800", 3) < 0)
			(void)0;
		close(oom);
	}
	/* Own cgroup (or rlimits), then the kernel user; a uid change clears
	 * the parent-death signal, so it is set (and checked) again. */
	if (p->kres) {
		rc = kres_child(p->kres, &p->kk);
		if (rc < 0) {
			errno = -rc;
			child_fail(c);
		}
		if (child_die_with_parent(c) < 0)
			child_fail(c);
	}
	if (chdir(l->cwd) < 0)
		child_fail(c);
	/* Last: kres_child needed the cgroup fds, which this closes. */
	src[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	src[1] = l->out;
	src[2] = l->err;
	if (src[0] < 0 || child_fds(c, src, 3) < 0)
		child_fail(c);
	execvpe(l->argv[0], l->argv, l->envp);
	child_fail(c);
}

/* The kernel's pid, or -errno with a reason in err. */
static pid_t kproc_start_exec(const struct kproc *p,
			      const struct kproc_launch *l, char *err,
			      size_t errlen)
{
	struct child c;
	int rc = child_fork(&c);

	if (rc < 0) {
		snprintf(err, errlen, "fork: %s", strerror(-rc));
		return rc;
	}
	if (c.pid == 0)
		kproc_child(&c, p, l);
	rc = child_wait(&c);
	if (rc < 0) {
		snprintf(err, errlen, "cannot start kernel '%s' (%s in %s): %s",
			 p->spec->name, l->argv[0], l->cwd, strerror(-rc));
		return rc;
	}
	return c.pid;
}

static void kproc_zyg_done(void *arg, pid_t pid);

/* Asks the kernelspec's zygote (zyg.c), which sets the kernel up as
 * kproc_child does: 0 when asked (kproc_zyg_done follows), -EAGAIN when
 * it declines at once. */
static int kproc_ask_zygote(struct kproc *p, const struct kproc_launch *l)
{
	struct zyg_request rq = {
	    p->id,
	    l->argv,
	    l->envp,
	    l->cwd,
	    l->out,
	    l->err,
	    p->kk.procs_fd >= 0 ? p->kk.procs_fd : p->kk.pprocs_fd,
	    p->kk.mem_rlimit,
	    kproc_zyg_done,
	    p,
	};

	/* One cgroup fd travels: a kernel with a v2 group and a v1 pids
	 * group too is exec's. */
	if (!zyg_serves(p->spec) ||
	    (p->kk.procs_fd >= 0 && p->kk.pprocs_fd >= 0))
		return -EAGAIN;
	return zyg_spawn(p->spec, &rq);
}

/* The start ended with pid (or -errno): the child has its cgroup fds and
 * pipe ends (or never will), so ours go with the launch; a started
 * process becomes p's, with a pid file and a pidfd. Returns 0 or -1 with
 * a reason in err. */
static int kproc_started(struct kproc *p, struct kproc_launch *l, pid_t pid,
			 bool forked, char *err, size_t errlen)
{
	kres_after_fork(&p->kk);
	kproc_launch_free(l);
	if (pid < 0)
		return -1;
	p->pid = pid;
	p->forked = forked;
	p->live_next = kproc_live;
	kproc_live = p;
	kproc_write_pid_file(p);
	*(forked ? &kproc_nforked : &kproc_nexecd) += 1;
	log_debug("kernel %.8s (pid %d) started by %s", p->id, (int)pid,
		  forked ? "its zygote" : "exec");
	p->pidfd = pidfd_open(p->pid, 0);
	if (p->pidfd < 0) {
		snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int kproc_spawn(struct kproc *p, const char *cwd, char *err, size_t errlen)
{
	struct kproc_launch *l = kproc_launch_new(p, cwd, err, errlen);

	if (!l)
		return -1;
	if (kproc_ask_zygote(p, l) == 0) {
		p->launch = l;
		p->forked = true;
		return 0;
	}
	return kproc_started(p, l, kproc_start_exec(p, l, err, errlen), false,
			     err, errlen);
}

static int kproc_watch_pidfd(struct kproc *p);

/* A start that ended after kproc_spawn returned without a process to
 * watch: the owner hears an exit with status. */
static void kproc_end_early(struct kproc *p, int status)
{
	if (p->pid > 0 && !p->exited) {
		kproc_kill_rest(p);
		waitpid(p->pid, NULL, 0);
	}
	p->exited = true;
	kproc_let_go(p);
	p->on_exit(p->arg, status);
}

/* The zygote's answer (zyg.c): the forked kernel's pid, or -EAGAIN: exec
 * it now, unless a stop came meanwhile (then it never runs, and ends as
 * killed by the stop's signal). Then as after a synchronous start, and a
 * signal held meanwhile is sent. A failure is told as an exit with status
 * 127 (what a shell gives for a command it cannot run), the reason the
 * stderr tail's last line. */
static void kproc_zyg_done(void *arg, pid_t pid)
{
	struct kproc *p = arg;
	struct kproc_launch *l = p->launch;
	char err[KPROC_TAIL_CHARS] = "";
	bool forked = pid > 0, stopped = !forked && p->held_sig;

	p->launch = NULL;
	if (!forked)
		pid = stopped ? -ECANCELED
			      : kproc_start_exec(p, l, err, sizeof(err));
	if (kproc_started(p, l, pid, forked, err, sizeof(err)) == 0 &&
	    kproc_watch_pidfd(p) == 0) {
		if (p->held_sig)
			kproc_signal(p, p->held_sig);
		return;
	}
	if (stopped) {
		log_info("kernel %.8s stopped before its start", p->id);
		kproc_end_early(p, p->held_sig);
		return;
	}
	log_warnx("kernel %.8s: %s", p->id, err[0] ? err : "out of memory");
	kproc_tail_keep(p->err.tail[p->err.ntail++ % KPROC_TAIL_LINES], err,
			strlen(err));
	kproc_end_early(p, W_EXITCODE(127, 0));
}

void kproc_counts(unsigned long long *forked, unsigned long long *execd)
{
	*forked = kproc_nforked;
	*execd = kproc_nexecd;
}

void kproc_zygote_warm(const struct kspec *spec, const struct kres *kres)
{
	char **envp;

	if (!zyg_serves(spec))
		return;
	envp = kproc_build_env(spec, kres);
	if (envp)
		zyg_start(spec, envp);
	free(envp);
}

static bool kproc_is_live(pid_t pid)
{
	for (const struct kproc *p = kproc_live; p; p = p->live_next)
		if (p->pid == pid)
			return true;
	return false;
}

/* Reaps the exited children of /proc/self/task/<tid>/children that are
 * neither kernels nor zygotes. Returns how many. */
static unsigned kproc_reap_task(const char *tid)
{
	char path[80], buf[4096];
	unsigned n = 0;
	int fd;
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/self/task/%.20s/children", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[len > 0 ? len : 0] = '\0';
	for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n")) {
		pid_t pid = (pid_t)atoi(t);
		siginfo_t si = {0};
		if (pid <= 0 || kproc_is_live(pid) || zyg_is_zygote(pid))
			continue;
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG) == 0 &&
		    si.si_pid == pid)
			n++;
	}
	return n;
}

void kproc_reap_strays(void)
{
	unsigned n = 0;
	struct dirent *e;
	DIR *d;

	/* An answer on its way names a pid that is already the daemon's
	 * child: it is the answer's. The round runs once none is. */
	if (zyg_outstanding()) {
		zyg_when_idle(kproc_reap_strays);
		return;
	}
	d = opendir("/proc/self/task");
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n += kproc_reap_task(e->d_name);
	if (d)
		closedir(d);
	if (n)
		log_debug("reaped %u orphaned process(es)", n);
}

/* Where this kernel's files go: the runtime dir, or for --kernel-user a
 * private per-kernel dir owned by that user (the kernel must read its
 * connection file and create its ipc sockets; nobody else may). */
static int kproc_files_dir(struct kproc *p, char *dir, size_t len)
{
	const struct kres *r = p->kres;

	if (!r || !r->as_user) {
		snprintf(dir, len, "%s", p->runtime_dir);
		return 0;
	}
	snprintf(dir, len, "%s/u%.8s", p->runtime_dir, p->id);
	if (mkdir(dir, 0700) < 0 || chown(dir, r->uid, r->gid) < 0)
		return -errno;
	p->user_dir = strdup(dir);
	return p->user_dir ? 0 : -ENOMEM;
}

int kproc_prepare(struct kproc *p, char *err, size_t errlen)
{
	unsigned char rnd[32];
	uuid_t u;
	char path[512], dir[300];

	uuid_generate_random(u);
	uuid_unparse_lower(u, p->id);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		snprintf(err, errlen, "no randomness for the HMAC key");
		return -1;
	}
	jtext_hex(rnd, sizeof(rnd), p->key);
	if (kproc_files_dir(p, dir, sizeof(dir)) < 0) {
		snprintf(err, errlen, "cannot make a kernel dir in %s: %s",
			 p->runtime_dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/kernel-%.8s.json", dir, p->id);
	p->conn_file = strdup(path);
	if (kproc_supports_ipc(p->spec)) {
		snprintf(path, sizeof(path), "%s/k%.8s", dir, p->id);
		p->ipc_prefix = strdup(path);
		for (int i = 0; i < KPROC_NPORTS; i++)
			p->port[i] = i + 1;
		if (!p->ipc_prefix)
			return -1;
	} else if (kproc_pick_ports(p->port) < 0) {
		snprintf(err, errlen, "no free loopback ports: %s",
			 strerror(errno));
		return -1;
	}
	if (!p->conn_file || kproc_write_conn_file(p) < 0) {
		snprintf(err, errlen, "cannot write connection file in %s: %s",
			 dir, strerror(errno));
		return -1;
	}
	if (p->kres) {
		if (p->kres->as_user &&
		    chown(p->conn_file, p->kres->uid, p->kres->gid) < 0) {
			snprintf(err, errlen,
				 "cannot hand %s to the kernel user: %s",
				 p->conn_file, strerror(errno));
			return -1;
		}
		kres_prepare(p->kres, p->id, &p->kk);
	}
	return 0;
}

/* ------------------------------------------------- startup: the sweep */

/* The runtime dir's lock, held (open) for the daemon's life. */
static int kproc_lock_fd = -1;

/* "<prefix><8 hex><suffix>" exactly. */
static bool kproc_file_is(const char *name, const char *prefix,
			  const char *suffix)
{
	size_t p = strlen(prefix), s = strlen(suffix);

	if (strncmp(name, prefix, p) != 0 || strlen(name) != p + 8 + s ||
	    strspn(name + p, "0123456789abcdef") != 8)
		return false;
	return strcmp(name + p + 8, suffix) == 0;
}

/* A kernel file: connection file, pid file or ipc socket "k<id8>-<1..5>". */
static bool kproc_file_stale(const char *name)
{
	static const char *const ipc[] = {"-1", "-2", "-3", "-4", "-5"};

	if (kproc_file_is(name, "kernel-", ".json") ||
	    kproc_file_is(name, "kernel-", ".pid"))
		return true;
	for (size_t i = 0; i < sizeof(ipc) / sizeof(*ipc); i++)
		if (kproc_file_is(name, "k", ipc[i]))
			return true;
	return false;
}

/* Kills what the kernel of a dead daemon named in a pid file left. */
static unsigned kproc_sweep_pid_file(int dirfd, const char *name)
{
	char text[96] = "";
	unsigned long long start = 0;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC), pid = 0, daemon = 0;
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	if (sscanf(text, "%d %llu %d", &pid, &start, &daemon) != 3)
		return 0;
	return kres_kill_stale(pid, start, daemon);
}

/* Removes the stale kernel files in dir (the runtime dir, or a kernel
 * user's dir in it); counts them in *files and killed processes in *procs. */
static void kproc_sweep_dir(const char *dir, unsigned *files, unsigned *procs)
{
	char sub[600];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_type == DT_DIR && kproc_file_is(e->d_name, "u", "")) {
			snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
			kproc_sweep_dir(sub, files, procs);
			*files += rmdir(sub) == 0;
			continue;
		}
		if (!kproc_file_stale(e->d_name))
			continue;
		if (kproc_file_is(e->d_name, "kernel-", ".pid"))
			*procs += kproc_sweep_pid_file(dirfd(d), e->d_name);
		*files += unlinkat(dirfd(d), e->d_name, 0) == 0;
	}
	closedir(d);
}

int kproc_sweep(const char *runtime_dir, const struct kres *kres)
{
	unsigned files = 0, procs = 0;
	int fd = open(runtime_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (fd >= 0 && errno == EWOULDBLOCK)
			log_warnx("another e2b-ci uses the runtime dir %s; "
				  "leaving its files and kernels alone",
				  runtime_dir);
		else
			log_warn("cannot lock %s", runtime_dir);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	kproc_lock_fd = fd;
	kproc_sweep_dir(runtime_dir, &files, &procs);
	if (kres)
		procs += kres_sweep(kres);
	if (files || procs)
		log_warnx("swept what an earlier daemon left: %u file(s) in %s "
			  "(connection files, sockets), %u process(es)",
			  files, runtime_dir, procs);
	return 0;
}
