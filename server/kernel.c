/*
 * kernel: one Jupyter kernel process and the client end of its channels.
 *
 * Lifecycle: kernel_start() writes the connection file, forks and execs the
 * kernelspec argv (new session, cwd, stdin from /dev/null, stdout/stderr to
 * pipes, signals reset, fds closed, PR_SET_PDEATHSIG so no kernel outlives a
 * crashed daemon), writes a pid file, opens a pidfd and connects the
 * sockets. The handshake resends kernel_info_request every 500 ms until both
 * a reply and any iopub message arrived (the SUB slow-joiner race), then
 * on_ready runs. The pidfd turning readable is the one authoritative "kernel
 * died" event: everything the kernel started is killed (its cgroup, or its
 * session: kres_kill), the process is reaped, and on_exit runs exactly once.
 *
 * Startup (kernel_sweep): the runtime dir is locked for the daemon's life,
 * and what a daemon that died without cleaning up left there is removed:
 * connection files (HMAC keys), ipc sockets, per-user dirs, and through its
 * pid files the processes its kernels left (kres_kill_stale).
 *
 * Receiving is bounded: no message part over env.max_msg is taken (libzmq
 * drops such a connection; kernel_cut tells the owner what was lost and
 * connects again), iopub queues two messages here and is read at most
 * KERNEL_TURN_BYTES per loop turn on average, so a kernel can make the
 * daemon hold three parts at most.
 *
 * Invariants: every socket belongs to the loop thread; a message is handed to
 * the owner only after its HMAC was verified (or made here, after a cut); the
 * connection file, pid file and ipc socket files exist exactly as long as the
 * struct. Deliberately absent: heartbeats (process exit is the death signal
 * here, and ipykernel answers heartbeats from a thread even while wedged) and
 * the stdin channel (the daemon always sends allow_stdin: false).
 */
#include "kernel.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <zmq.h>

#include "jtext.h"
#include "kres.h"
#include "kspec.h"
#include "log.h"
#include "wire.h"

/* kernel_info_request resends: the first ones are lost while the kernel has
 * not bound its sockets yet (and the SUB slow-joiner misses early iopub), so
 * start fast and back off to the usual 500 ms. */
#define KERNEL_HANDSHAKE_FIRST_MS     20
#define KERNEL_HANDSHAKE_EARLY_MS     100
#define KERNEL_HANDSHAKE_EARLY_FOR_MS 3000
#define KERNEL_HANDSHAKE_MS	      500
/* How long a stop waits for the kernel to act on its shutdown_request
 * before the SIGTERM (a kernel busy in a cell does not; measured here, an
 * idle ipykernel exits in 0.26-0.37 s, IRkernel in 0.06-0.13 s). */
#define KERNEL_SHUTDOWN_WAIT_MS 500
#define KERNEL_BATCH		256
/* iopub bytes taken per loop turn, on average: a turn lets libmicrohttpd
 * write up to 8 x 16 KiB to each stream (http.c), so a client that reads as
 * fast as the kernel writes never sees its backlog grow. A larger message
 * is taken whole and paid off over the following turns. */
#define KERNEL_TURN_BYTES (64 * 1024)
/* iopub messages libzmq may queue in the daemon: the rest waits in the
 * kernel (our kernels queue without limit rather than drop), so what the
 * daemon holds for a kernel is this many messages plus the one being
 * received. The price: each message read wakes libzmq's I/O thread (its
 * low-water mark is 1 here), and a 1+1 cell took ~0.15 ms longer than
 * with no limit, measured interleaved (0.37 ms with a single slot, where
 * every message also waited for that round trip). */
#define KERNEL_IOPUB_HWM 2
/* How long a broken channel stays broken before it is called a cut: a
 * kernel that exits closes its sockets a moment before its pidfd reports
 * the exit, and a dying kernel is not a cut. */
#define KERNEL_CUT_GRACE_MS 250
#define KERNEL_PIPE_LINE    2048
/* What a kernel last wrote to stderr is kept for the reason of a failed
 * start (launch.sh: e2b-kernel not found, a Python traceback's last line). */
#define KERNEL_TAIL_LINES 4
#define KERNEL_TAIL_CHARS 240

extern char **environ;

struct kernel_pipe {
	int fd;
	struct loop_watch *w;
	struct kernel *k;
	const char *name;
	char line[KERNEL_PIPE_LINE];
	size_t len;
	/* The last lines, a ring (stderr only; NULL for stdout). */
	char (*tail)[KERNEL_TAIL_CHARS];
	unsigned ntail; /* lines ever kept */
};

struct kernel {
	char id[37];
	char session[37];
	char key[65];
	enum kernel_state state;
	const struct kspec *spec;
	struct kernel_env env;
	const struct kernel_ops *ops;
	void *arg;

	pid_t pid;
	int pidfd;
	struct loop_watch *pidw;
	struct kernel_pipe out, err;
	char err_tail[KERNEL_TAIL_LINES][KERNEL_TAIL_CHARS];

	char *conn_file;
	char *pid_file;	  /* pid, start time, daemon pid: for kernel_sweep */
	char *ipc_prefix; /* NULL for tcp */
	void *sock[KERNEL_NCHAN];
	struct loop_watch *sockw[KERNEL_NCHAN];
	int port[KERNEL_NCHAN];
	/* Monitors of shell and iopub (kernel_cut): PAIR ends, watches, and
	 * the grace timer of a channel whose connection broke. */
	void *mon[KERNEL_NCHAN];
	struct loop_watch *monw[KERNEL_NCHAN];
	struct loop_timer cut_timer[KERNEL_NCHAN];
	size_t iopub_owed; /* iopub bytes taken ahead of KERNEL_TURN_BYTES */
	/* The last execute_request and what of it came back, so a lost
	 * message can be reported to the owner (kernel_cut). */
	struct {
		char id[37];
		bool replied, idle;
	} req;
	bool rejoin;	  /* iopub connects again after a cut */
	bool rejoin_live; /* ...and delivered something since */
	struct kernel_sockref {
		struct kernel *k;
		enum kernel_chan ch;
	} ref[KERNEL_NCHAN];

	bool got_info, got_iopub;
	json_t *info;
	struct loop_timer hs_timer; /* handshake resend */
	uint64_t hs_interval;
	struct loop_timer
	    dead_timer;	    /* start deadline, then the stop's escalation */
	long stop_grace_ms; /* from the SIGTERM to the SIGKILL */
	uint64_t started_ms;
	bool exited;
	bool oom;
	char *user_dir; /* per-kernel dir owned by --kernel-user */
	struct kres_kernel kk;
};

static const char *const chan_name[KERNEL_NCHAN] = {"shell", "control",
						    "iopub"};

void kernel_set_owner(struct kernel *k, const struct kernel_ops *ops, void *arg)
{
	k->ops = ops;
	k->arg = arg;
}

enum kernel_state kernel_state(const struct kernel *k)
{
	return k->state;
}

pid_t kernel_pid(const struct kernel *k)
{
	return k->pid;
}

const char *kernel_id(const struct kernel *k)
{
	return k->id;
}

bool kernel_oom_killed(const struct kernel *k)
{
	return k->oom;
}

json_t *kernel_info(const struct kernel *k)
{
	return k->info;
}

/* Kernels known to accept "transport": "ipc" (see kernels-on-debian.md):
 * ipykernel-based ones, IRkernel and our own kernel host. Everything else
 * gets tcp on loopback. */
static bool kernel_supports_ipc(const struct kspec *spec)
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
static int kernel_pick_ports(int ports[5])
{
	int fds[5], rc = 0, n = 0;

	for (n = 0; n < 5; n++) {
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

static int kernel_write_conn_file(struct kernel *k, int ports[5])
{
	json_t *o = json_object();
	char *text = NULL;
	int fd = -1, rc = -ENOMEM;

	if (!o)
		return -ENOMEM;
	json_object_set_new(o, "transport",
			    json_string(k->ipc_prefix ? "ipc" : "tcp"));
	json_object_set_new(
	    o, "ip", json_string(k->ipc_prefix ? k->ipc_prefix : "127.0.0.1"));
	json_object_set_new(o, "shell_port", json_integer(ports[0]));
	json_object_set_new(o, "iopub_port", json_integer(ports[1]));
	json_object_set_new(o, "stdin_port", json_integer(ports[2]));
	json_object_set_new(o, "control_port", json_integer(ports[3]));
	json_object_set_new(o, "hb_port", json_integer(ports[4]));
	json_object_set_new(o, "signature_scheme", json_string("hmac-sha256"));
	json_object_set_new(o, "key", json_string(k->key));
	json_object_set_new(o, "kernel_name", json_string(k->spec->name));
	text = json_dumps(o, JSON_COMPACT);
	if (!text)
		goto out;
	fd = open(k->conn_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
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

static void kernel_endpoint(const struct kernel *k, int port, char *buf,
			    size_t len)
{
	if (k->ipc_prefix)
		snprintf(buf, len, "ipc://%s-%d", k->ipc_prefix, port);
	else
		snprintf(buf, len, "tcp://127.0.0.1:%d", port);
}

static void kernel_unlink_files(struct kernel *k)
{
	char path[512];

	if (k->conn_file)
		unlink(k->conn_file);
	if (k->pid_file)
		unlink(k->pid_file);
	if (k->ipc_prefix) {
		for (int p = 1; p <= 5; p++) {
			snprintf(path, sizeof(path), "%s-%d", k->ipc_prefix, p);
			unlink(path);
		}
	}
	if (k->user_dir)
		rmdir(k->user_dir);
}

/* Builds the child's environment: ours minus systemd's per-service
 * variables, plus the kernelspec's env and a few kernel-friendly settings. */
static char **kernel_build_env(const struct kspec *spec,
			       const struct kres *kres)
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

/* The child between fork and exec: only async-signal-safe calls. Any
 * failure is reported as an errno through errfd. */
static void kernel_child(const struct kernel *k, const char *cwd, char **argv,
			 char **envp, int outfd, int errfd_pipe, int errfd)
{
	sigset_t all;
	int e, devnull;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	setsid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Under memory pressure the kernels go first, never the daemon (whose
	 * unit sets OOMScoreAdjust=-1000; children inherit it otherwise). */
	int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (oom >= 0) {
		if (write(oom, "800", 3) < 0)
			(void)0;
		close(oom);
	}
	devnull = open("/dev/null", O_RDONLY);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(outfd, 1) < 0 ||
	    dup2(errfd_pipe, 2) < 0)
		goto fail;
	/* Own cgroup (or rlimits), then the kernel user; a uid change clears
	 * the parent-death signal, so it is set again. */
	if (k->env.kres) {
		int rc = kres_child(k->env.kres, &k->kk);
		if (rc < 0) {
			errno = -rc;
			goto fail;
		}
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	}
	if (chdir(cwd) < 0)
		goto fail;
	/* errfd is O_CLOEXEC: a successful exec closes it, telling the parent
	 * all went well. Everything else above stderr is closed here. */
	if (errfd > 3)
		close_range(3, errfd - 1, 0);
	close_range(errfd + 1, ~0U, 0);
	execvpe(argv[0], argv, envp);
fail:
	e = errno;
	if (write(errfd, &e, sizeof(e)) < 0)
		_exit(126);
	_exit(127);
}

/* Keeps line in dst, cut to fit at a UTF-8 boundary, control characters
 * as spaces: it ends up in log lines and plain-text HTTP answers. */
static void kernel_tail_keep(char *dst, const char *line, size_t len)
{
	size_t n = len < KERNEL_TAIL_CHARS - 1 ? len : KERNEL_TAIL_CHARS - 1;

	while (n > 0 && n < len && ((unsigned char)line[n] & 0xc0) == 0x80)
		n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];
		dst[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	dst[n] = '\0';
}

static void kernel_pipe_flush_line(struct kernel_pipe *p)
{
	if (p->len == 0)
		return;
	p->line[p->len] = '\0';
	log_debug("kernel %.8s %s: %s", p->k->id, p->name, p->line);
	if (p->tail)
		kernel_tail_keep(p->tail[p->ntail++ % KERNEL_TAIL_LINES],
				 p->line, p->len);
	p->len = 0;
}

/* Reads one batch. Returns false once nothing more is to be read now (the
 * pipe is empty, or at its end, and then closed). */
static bool kernel_pipe_read(struct kernel_pipe *p)
{
	char buf[4096];
	ssize_t n = read(p->fd, buf, sizeof(buf));

	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return false;
		kernel_pipe_flush_line(p);
		loop_del(p->k->env.loop, p->w);
		p->w = NULL;
		close(p->fd);
		p->fd = -1;
		return false;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n' || p->len == KERNEL_PIPE_LINE - 1)
			kernel_pipe_flush_line(p);
		if (buf[i] != '\n')
			p->line[p->len++] = buf[i];
	}
	return true;
}

static void kernel_on_pipe(void *arg, short revents)
{
	(void)revents;
	kernel_pipe_read(arg);
}

const char *kernel_stderr_tail(const struct kernel *k, char *buf, size_t len)
{
	const struct kernel_pipe *p = &k->err;
	unsigned first =
	    p->ntail > KERNEL_TAIL_LINES ? p->ntail - KERNEL_TAIL_LINES : 0;
	size_t used = 0;

	if (len)
		*buf = '\0';
	for (unsigned i = first; i < p->ntail && used < len; i++) {
		int n = snprintf(buf + used, len - used, "%s%s",
				 i > first ? " | " : "",
				 p->tail[i % KERNEL_TAIL_LINES]);
		used += n > 0 ? (size_t)n : 0;
	}
	return buf;
}

static void kernel_close_io(struct kernel *k)
{
	struct kernel_pipe *pipes[] = {&k->out, &k->err};

	for (int c = 0; c < KERNEL_NCHAN; c++) {
		loop_timer_disarm(k->env.loop, &k->cut_timer[c]);
		loop_del(k->env.loop, k->monw[c]);
		k->monw[c] = NULL;
		/* The monitor first: libzmq's I/O thread sends its events
		 * blocking, and would wait forever for a closed reader. */
		if (k->mon[c]) {
			zmq_socket_monitor(k->sock[c], NULL, 0);
			zmq_close(k->mon[c]);
		}
		k->mon[c] = NULL;
		loop_del(k->env.loop, k->sockw[c]);
		k->sockw[c] = NULL;
		if (k->sock[c])
			zmq_close(k->sock[c]);
		k->sock[c] = NULL;
	}
	for (int i = 0; i < 2; i++) {
		/* What the process wrote just before it exited may still be in
		 * the pipe (the pidfd can fire first): read it, a bounded
		 * amount, so that its last words reach the log and the tail. */
		for (int batch = 0; batch < 16 && pipes[i]->fd >= 0; batch++)
			if (!kernel_pipe_read(pipes[i]))
				break;
		loop_del(k->env.loop, pipes[i]->w);
		pipes[i]->w = NULL;
		if (pipes[i]->fd >= 0) {
			kernel_pipe_flush_line(pipes[i]);
			close(pipes[i]->fd);
		}
		pipes[i]->fd = -1;
	}
	loop_timer_disarm(k->env.loop, &k->hs_timer);
	loop_timer_disarm(k->env.loop, &k->dead_timer);
}

/* Reaps the process and reports the exit once. */
static void kernel_reaped(struct kernel *k, int status, const struct rusage *ru)
{
	bool was_ready = k->state == KERNEL_READY;

	k->oom = kres_oom_killed(&k->kk, status, ru);
	kres_release(&k->kk);
	k->exited = true;
	k->state = KERNEL_EXITED;
	loop_del(k->env.loop, k->pidw);
	k->pidw = NULL;
	kernel_close_io(k);
	kernel_unlink_files(k);
	if (WIFSIGNALED(status))
		log_info("kernel %.8s (pid %d) killed by signal %d", k->id,
			 (int)k->pid, WTERMSIG(status));
	else
		log_info("kernel %.8s (pid %d) exited with status %d", k->id,
			 (int)k->pid, WEXITSTATUS(status));
	k->ops->on_exit(k->arg, k, status, was_ready);
}

/* Kills what the kernel left: its process group (a subprocess of a cell),
 * then its cgroup, or without one the rest of its session (the runner of a
 * dead kernel host and what it started). */
static void kernel_kill_rest(struct kernel *k)
{
	unsigned n;

	(void)killpg(k->pid, SIGKILL);
	n = kres_kill(&k->kk, k->pid);
	if (n)
		log_debug("kernel %.8s: %u process(es) it left were killed",
			  k->id, n);
}

static void kernel_on_pidfd(void *arg, short revents)
{
	struct kernel *k = arg;
	struct rusage ru = {0};
	int status = 0;
	pid_t r;

	(void)revents;
	/* Done before the reap, while the zombie keeps the pid (and so the
	 * group id) from being reused. */
	siginfo_t si = {0};
	if (waitid(P_PID, (id_t)k->pid, &si, WEXITED | WNOHANG | WNOWAIT) ==
		0 &&
	    si.si_pid == k->pid)
		kernel_kill_rest(k);
	r = wait4(k->pid, &status, WNOHANG, &ru);
	if (r == 0)
		return;
	if (r < 0 && errno != ECHILD)
		return;
	kernel_reaped(k, status, r > 0 ? &ru : NULL);
}

/* Watches channel ch for a broken connection: libzmq reports it on an
 * inproc PAIR. Control is not watched: nothing waits for its replies. */
static int kernel_monitor(struct kernel *k, enum kernel_chan ch)
{
	char ep[96];
	int zero = 0;

	snprintf(ep, sizeof(ep), "inproc://e2bci-mon-%s-%d", k->id, (int)ch);
	if (zmq_socket_monitor(k->sock[ch], ep, ZMQ_EVENT_DISCONNECTED) < 0)
		return -1;
	k->mon[ch] = zmq_socket(k->env.zmq, ZMQ_PAIR);
	if (!k->mon[ch])
		return -1;
	zmq_setsockopt(k->mon[ch], ZMQ_LINGER, &zero, sizeof(zero));
	return zmq_connect(k->mon[ch], ep);
}

static int kernel_open_sockets(struct kernel *k, int ports[5])
{
	static const int types[KERNEL_NCHAN] = {ZMQ_DEALER, ZMQ_DEALER,
						ZMQ_SUB};
	static const int portidx[KERNEL_NCHAN] = {0, 3, 1};
	char ep[600];
	int zero = 0, hwm = KERNEL_IOPUB_HWM;
	int64_t max = k->env.max_msg ? (int64_t)k->env.max_msg : -1;

	for (int c = 0; c < KERNEL_NCHAN; c++) {
		void *s = zmq_socket(k->env.zmq, types[c]);
		if (!s)
			return -errno;
		k->sock[c] = s;
		zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
		/* libzmq would take a part of any size whole; over the limit it
		 * drops the connection instead (kernel_cut). */
		zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max));
		/* iopub: a short queue here, the rest waits in the kernel.
		 * Replies on shell and control are few: no limit there. */
		zmq_setsockopt(s, ZMQ_RCVHWM, c == KERNEL_IOPUB ? &hwm : &zero,
			       sizeof(int));
		if (types[c] == ZMQ_DEALER)
			zmq_setsockopt(s, ZMQ_ROUTING_ID, k->session,
				       strlen(k->session));
		else
			zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
		if (c != KERNEL_CONTROL && kernel_monitor(k, c) < 0)
			return -errno;
		k->port[c] = ports[portidx[c]];
		kernel_endpoint(k, k->port[c], ep, sizeof(ep));
		if (zmq_connect(s, ep) < 0)
			return -errno;
	}
	return 0;
}

static void kernel_on_sock(void *arg, short revents);
static void kernel_on_monitor(void *arg, short revents);

static int kernel_watch_all(struct kernel *k)
{
	struct loop *l = k->env.loop;

	for (int c = 0; c < KERNEL_NCHAN; c++) {
		k->ref[c].k = k;
		k->ref[c].ch = (enum kernel_chan)c;
		k->sockw[c] = loop_add_zmq(l, k->sock[c], ZMQ_POLLIN,
					   kernel_on_sock, &k->ref[c]);
		if (!k->sockw[c])
			return -ENOMEM;
		if (k->mon[c] &&
		    !(k->monw[c] = loop_add_zmq(l, k->mon[c], ZMQ_POLLIN,
						kernel_on_monitor, &k->ref[c])))
			return -ENOMEM;
	}
	k->out.w =
	    loop_add_fd(l, k->out.fd, ZMQ_POLLIN, kernel_on_pipe, &k->out);
	k->err.w =
	    loop_add_fd(l, k->err.fd, ZMQ_POLLIN, kernel_on_pipe, &k->err);
	k->pidw = loop_add_fd(l, k->pidfd, ZMQ_POLLIN, kernel_on_pidfd, k);
	return k->out.w && k->err.w && k->pidw ? 0 : -ENOMEM;
}

static void kernel_handshake_tick(void *arg, short revents);
static void kernel_deadline(void *arg, short revents);

/* Records the kernel for kernel_sweep after a daemon crash: its pid with
 * its start time (together they name it for good) and the daemon's pid (its
 * JPY_PARENT_PID). Kept in the runtime dir, which kernels cannot write. */
static void kernel_write_pid_file(struct kernel *k)
{
	char path[512], text[96];
	int fd, n;

	snprintf(path, sizeof(path), "%s/kernel-%.8s.pid", k->env.runtime_dir,
		 k->id);
	n = snprintf(text, sizeof(text), "%d %llu %d\n", (int)k->pid,
		     kres_start_time(k->pid), (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, (size_t)n) != n) {
		log_warn("cannot write %s", path);
		if (fd >= 0)
			unlink(path);
	} else {
		k->pid_file = strdup(path);
	}
	if (fd >= 0)
		close(fd);
}

static int kernel_spawn(struct kernel *k, const char *cwd, char *err,
			size_t errlen)
{
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, ep[2] = {-1, -1};
	char **argv = NULL, **envp = NULL;
	int rc = -1, child_errno = 0;

	argv = kspec_argv(k->spec, k->conn_file);
	envp = kernel_build_env(k->spec, k->env.kres);
	if (!argv || !envp) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    pipe2(ep, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto out;
	}
	k->pid = fork();
	if (k->pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		goto out;
	}
	if (k->pid == 0)
		kernel_child(k, cwd, argv, envp, outp[1], errp[1], ep[1]);
	kres_after_fork(&k->kk);
	close(ep[1]);
	ep[1] = -1;
	if (read(ep[0], &child_errno, sizeof(child_errno)) ==
	    (ssize_t)sizeof(child_errno)) {
		waitpid(k->pid, NULL, 0);
		k->pid = 0;
		snprintf(err, errlen, "cannot start kernel '%s' (%s in %s): %s",
			 k->spec->name, argv[0], cwd, strerror(child_errno));
		goto out;
	}
	kernel_write_pid_file(k);
	k->out.fd = outp[0];
	k->err.fd = errp[0];
	outp[0] = errp[0] = -1;
	fcntl(k->out.fd, F_SETFL, O_NONBLOCK);
	fcntl(k->err.fd, F_SETFL, O_NONBLOCK);
	k->pidfd = pidfd_open(k->pid, 0);
	if (k->pidfd < 0) {
		snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	kspec_strv_free(argv);
	free(envp);
	return rc;
}

/* Where this kernel's files go: the runtime dir, or for --kernel-user a
 * private per-kernel dir owned by that user (the kernel must read its
 * connection file and create its ipc sockets; nobody else may). */
static int kernel_files_dir(struct kernel *k, char *dir, size_t len)
{
	const struct kres *r = k->env.kres;

	if (!r || !r->as_user) {
		snprintf(dir, len, "%s", k->env.runtime_dir);
		return 0;
	}
	snprintf(dir, len, "%s/u%.8s", k->env.runtime_dir, k->id);
	if (mkdir(dir, 0700) < 0 || chown(dir, r->uid, r->gid) < 0)
		return -errno;
	k->user_dir = strdup(dir);
	return k->user_dir ? 0 : -ENOMEM;
}

static int kernel_prepare(struct kernel *k, int ports[5], char *err,
			  size_t errlen)
{
	unsigned char rnd[32];
	uuid_t u;
	char path[512], dir[300];

	uuid_generate_random(u);
	uuid_unparse_lower(u, k->id);
	uuid_generate_random(u);
	uuid_unparse_lower(u, k->session);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		snprintf(err, errlen, "no randomness for the HMAC key");
		return -1;
	}
	jtext_hex(rnd, sizeof(rnd), k->key);
	if (kernel_files_dir(k, dir, sizeof(dir)) < 0) {
		snprintf(err, errlen, "cannot make a kernel dir in %s: %s",
			 k->env.runtime_dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/kernel-%.8s.json", dir, k->id);
	k->conn_file = strdup(path);
	if (kernel_supports_ipc(k->spec)) {
		snprintf(path, sizeof(path), "%s/k%.8s", dir, k->id);
		k->ipc_prefix = strdup(path);
		for (int i = 0; i < 5; i++)
			ports[i] = i + 1;
		if (!k->ipc_prefix)
			return -1;
	} else if (kernel_pick_ports(ports) < 0) {
		snprintf(err, errlen, "no free loopback ports: %s",
			 strerror(errno));
		return -1;
	}
	if (!k->conn_file || kernel_write_conn_file(k, ports) < 0) {
		snprintf(err, errlen, "cannot write connection file in %s: %s",
			 dir, strerror(errno));
		return -1;
	}
	if (k->env.kres) {
		if (k->env.kres->as_user &&
		    chown(k->conn_file, k->env.kres->uid, k->env.kres->gid) <
			0) {
			snprintf(err, errlen,
				 "cannot hand %s to the kernel user: %s",
				 k->conn_file, strerror(errno));
			return -1;
		}
		kres_prepare(k->env.kres, k->id, &k->kk);
	}
	return 0;
}

/* Kernel objects not yet freed, for the check before zmq_ctx_term(). */
static unsigned kernel_nlive;

unsigned kernel_live(void)
{
	return kernel_nlive;
}

struct kernel *kernel_start(const struct kernel_env *env,
			    const struct kspec *spec, const char *cwd,
			    const struct kernel_ops *ops, void *arg, char *err,
			    size_t errlen)
{
	struct kernel *k = calloc(1, sizeof(*k));
	int ports[5] = {0};

	if (!k) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	kernel_nlive++;
	k->env = *env;
	k->spec = spec;
	k->ops = ops;
	k->arg = arg;
	k->pidfd = k->out.fd = k->err.fd = -1;
	k->kk.procs_fd = -1;
	k->out.k = k->err.k = k;
	k->out.name = "stdout";
	k->err.name = "stderr";
	k->err.tail = k->err_tail;
	k->state = KERNEL_STARTING;
	k->started_ms = loop_now_ms();
	if (kernel_prepare(k, ports, err, errlen) < 0 ||
	    kernel_spawn(k, cwd, err, errlen) < 0)
		goto fail;
	if (kernel_open_sockets(k, ports) < 0 || kernel_watch_all(k) < 0) {
		snprintf(err, errlen, "cannot connect to kernel: %s",
			 zmq_strerror(errno));
		goto fail;
	}
	log_info("kernel %.8s (%s, pid %d) starting in %s over %s", k->id,
		 spec->name, (int)k->pid, cwd, k->ipc_prefix ? "ipc" : "tcp");
	kernel_handshake_tick(k, 0);
	loop_timer_arm(env->loop, &k->dead_timer, env->start_timeout_ms,
		       kernel_deadline, k);
	return k;
fail:
	kernel_free(k);
	return NULL;
}

static void kernel_handshake_tick(void *arg, short revents)
{
	struct kernel *k = arg;

	(void)revents;
	if (k->state != KERNEL_STARTING)
		return;
	json_t *c = json_object();
	kernel_send(k, KERNEL_SHELL, "kernel_info_request", c, NULL);
	json_decref(c);
	k->hs_interval =
	    k->hs_interval ? k->hs_interval * 2 : KERNEL_HANDSHAKE_FIRST_MS;
	/* Every 100 ms while a typical kernel is still starting (a ready kernel
	 * answers within a few ms, so readiness is seen at most ~100 ms late),
	 * then every 500 ms. */
	if (k->hs_interval > KERNEL_HANDSHAKE_EARLY_MS &&
	    loop_now_ms() - k->started_ms < KERNEL_HANDSHAKE_EARLY_FOR_MS)
		k->hs_interval = KERNEL_HANDSHAKE_EARLY_MS;
	if (k->hs_interval > KERNEL_HANDSHAKE_MS)
		k->hs_interval = KERNEL_HANDSHAKE_MS;
	loop_timer_arm(k->env.loop, &k->hs_timer, k->hs_interval,
		       kernel_handshake_tick, k);
}

static void kernel_kill_group(struct kernel *k, int sig)
{
	if (k->pid <= 0 || k->exited)
		return;
	if (killpg(k->pid, sig) < 0)
		kill(k->pid, sig);
}

/* The start deadline passed, or a stop's grace ran out: kill for good. The
 * pidfd then reports the exit as usual. */
static void kernel_deadline(void *arg, short revents)
{
	struct kernel *k = arg;

	(void)revents;
	if (k->state == KERNEL_STARTING)
		log_warnx("kernel %.8s (%s) did not answer within %ld ms; "
			  "killing it",
			  k->id, k->spec->name, k->env.start_timeout_ms);
	kernel_kill_group(k, SIGKILL);
}

static void kernel_check_ready(struct kernel *k)
{
	if (k->state != KERNEL_STARTING || !k->got_info || !k->got_iopub)
		return;
	k->state = KERNEL_READY;
	loop_timer_disarm(k->env.loop, &k->hs_timer);
	loop_timer_disarm(k->env.loop, &k->dead_timer);
	log_info("kernel %.8s (%s) ready in %llu ms", k->id, k->spec->name,
		 (unsigned long long)(loop_now_ms() - k->started_ms));
	if (k->ops->on_ready)
		k->ops->on_ready(k->arg, k);
}

static void kernel_rejoin(struct kernel *k, const struct wire_msg *m);

/* Notes the reply and the idle status of the last execute_request. */
static void kernel_track(struct kernel *k, enum kernel_chan ch,
			 const struct wire_msg *m)
{
	const char *st;

	if (ch == KERNEL_SHELL && strcmp(m->msg_type, "execute_reply") == 0)
		k->req.replied = true;
	if (ch != KERNEL_IOPUB || strcmp(m->msg_type, "status") != 0)
		return;
	st = json_string_value(json_object_get(m->content, "execution_state"));
	if (st && strcmp(st, "idle") == 0)
		k->req.idle = true;
}

static void kernel_dispatch(struct kernel *k, enum kernel_chan ch,
			    struct wire_msg *m)
{
	if (k->state == KERNEL_STARTING) {
		if (ch == KERNEL_IOPUB)
			k->got_iopub = true;
		if (ch == KERNEL_SHELL &&
		    strcmp(m->msg_type, "kernel_info_reply") == 0) {
			k->got_info = true;
			json_decref(k->info);
			k->info = json_incref(m->content);
		}
		kernel_check_ready(k);
		return;
	}
	if (k->state != KERNEL_READY)
		return;
	if (m->parent_msg_id && strcmp(m->parent_msg_id, k->req.id) == 0)
		kernel_track(k, ch, m);
	if (k->ops->on_msg)
		k->ops->on_msg(k->arg, k, ch, m);
	if (k->rejoin && ch == KERNEL_IOPUB && k->state == KERNEL_READY)
		kernel_rejoin(k, m);
}

int kernel_recv_frames(void *s, zmq_msg_t *parts)
{
	zmq_msg_t extra;
	int n = 0, more = 1, rc = -1;

	while (more) {
		/* Frames past the last slot are received and closed at once:
		 * the message is read to its end, then dropped. */
		zmq_msg_t *p = n < KERNEL_MAX_FRAMES ? &parts[n] : &extra;
		zmq_msg_init(p);
		if (zmq_msg_recv(p, s, n ? 0 : ZMQ_DONTWAIT) < 0) {
			if (errno == EAGAIN && n == 0)
				rc = 0;
			zmq_msg_close(p);
			goto out;
		}
		more = zmq_msg_more(p);
		if (p == &extra)
			zmq_msg_close(p);
		n++;
	}
	if (n <= KERNEL_MAX_FRAMES)
		return n;
out:
	/* Every frame kept so far, the first one included. */
	for (int i = 0; i < n && i < KERNEL_MAX_FRAMES; i++)
		zmq_msg_close(&parts[i]);
	return rc;
}

static void kernel_close_frames(zmq_msg_t *parts, int *n)
{
	for (int i = 0; i < *n; i++)
		zmq_msg_close(&parts[i]);
	*n = 0;
}

/* Handles one message; returns 1 when one was handled (its size in bytes
 * added to *bytes), 0 when the socket is drained, -1 on error. */
static int kernel_recv_one(struct kernel *k, enum kernel_chan ch, size_t *bytes)
{
	zmq_msg_t parts[KERNEL_MAX_FRAMES];
	struct wire_buf bufs[KERNEL_MAX_FRAMES];
	struct wire_msg m;
	int n = kernel_recv_frames(k->sock[ch], parts), d;

	if (n <= 0) {
		if (n < 0)
			log_warnx("kernel %.8s: %s receive failed or message "
				  "too long",
				  k->id, chan_name[ch]);
		return n < 0 ? 1 : 0;
	}
	for (int i = 0; i < n; i++) {
		bufs[i].data = zmq_msg_data(&parts[i]);
		bufs[i].len = zmq_msg_size(&parts[i]);
		*bytes += bufs[i].len;
	}
	d = wire_decode_lazy(k->key, strlen(k->key), bufs, (size_t)n, &m);
	/* A stream message borrows its content from the frames; any other
	 * is parsed and lets them go before it is handled. */
	if (d < 0 || !m.raw_content.len)
		kernel_close_frames(parts, &n);
	if (d < 0)
		log_warnx("kernel %.8s: dropped a %s message (%s)", k->id,
			  chan_name[ch],
			  d == -EPERM ? "bad signature" : "malformed");
	else
		kernel_dispatch(k, ch, &m);
	wire_msg_cleanup(&m);
	kernel_close_frames(parts, &n);
	return 1;
}

static void kernel_on_sock(void *arg, short revents)
{
	struct kernel_sockref *ref = arg;
	struct kernel *k = ref->k;
	bool iopub = ref->ch == KERNEL_IOPUB;
	size_t got = 0;

	(void)revents;
	/* iopub taken ahead of the HTTP side: this turn is theirs. The loop
	 * checks the socket again next turn, at once. */
	if (iopub && k->iopub_owed >= KERNEL_TURN_BYTES) {
		k->iopub_owed -= KERNEL_TURN_BYTES;
		return;
	}
	if (iopub)
		got = k->iopub_owed;
	/* A callback may stop the kernel and close its sockets: re-check. */
	for (int i = 0; i < KERNEL_BATCH && k->sock[ref->ch]; i++) {
		if (kernel_recv_one(k, ref->ch, &got) <= 0)
			break;
		if (iopub && got >= KERNEL_TURN_BYTES)
			break;
	}
	if (iopub)
		k->iopub_owed =
		    got > KERNEL_TURN_BYTES ? got - KERNEL_TURN_BYTES : 0;
}

/* Hands the owner a message made here (type, content stolen) as if the
 * kernel had sent it on ch for the last execute_request. */
static void kernel_fake(struct kernel *k, enum kernel_chan ch, const char *type,
			json_t *content)
{
	struct wire_msg m = {0};

	m.header = json_pack("{ss}", "msg_type", type);
	m.parent_header = json_pack("{ss}", "msg_id", k->req.id);
	m.content = content;
	m.msg_type = type;
	m.msg_id = "";
	m.parent_msg_id = k->req.id;
	if (m.header && m.parent_header && m.content && k->ops->on_msg)
		k->ops->on_msg(k->arg, k, ch, &m);
	wire_msg_cleanup(&m);
}

/* Tells the owner what a broken channel lost, when it mattered to the last
 * execute_request: on iopub a notice in its stream (its idle status, which
 * may be lost too, is settled by kernel_rejoin); on shell its reply, as an
 * error. */
static void kernel_report_cut(struct kernel *k, enum kernel_chan ch)
{
	char text[256];

	snprintf(text, sizeof(text),
		 "a message from the kernel was larger than the daemon takes "
		 "(--max-kernel-message, %zu bytes)",
		 k->env.max_msg);
	if (ch == KERNEL_IOPUB && !k->req.idle) {
		char line[sizeof(text) + 128];
		snprintf(line, sizeof(line),
			 "[e2b-ci: output cut: %s; it and the output right "
			 "after it are lost]\n",
			 text);
		kernel_fake(
		    k, ch, "stream",
		    json_pack("{ssss}", "name", "stderr", "text", line));
	} else if (ch == KERNEL_SHELL && !k->req.replied) {
		kernel_fake(k, ch, "execute_reply",
			    json_pack("{sssssss[]}", "status", "error", "ename",
				      "KernelMessageTooLarge", "evalue", text,
				      "traceback"));
	}
}

/* Whether the process has exited (a zombie not yet reaped). */
static bool kernel_gone(const struct kernel *k)
{
	siginfo_t si = {0};

	return k->exited || (waitid(P_PID, (id_t)k->pid, &si,
				    WEXITED | WNOHANG | WNOWAIT) == 0 &&
			     si.si_pid == k->pid);
}

/*
 * iopub connects again after a cut, and a SUB socket misses what is
 * published before its subscription arrives; the cell's idle status may
 * have gone that way. kernel_info_request goes out until iopub delivers
 * anything (so it is live again), then the answer to one of them tells that
 * the cell is over: a kernel handles shell requests in order, so the
 * probe's status comes after the cell's idle. When that idle did not come,
 * it is made up for, and the cell ends. Until then the cell cannot end, so
 * the next one cannot start on a channel still deaf.
 */
static void kernel_rejoin_tick(void *arg, short revents)
{
	struct kernel *k = arg;
	json_t *c;

	(void)revents;
	if (!k->rejoin || k->rejoin_live || k->state != KERNEL_READY)
		return;
	c = json_object();
	kernel_send(k, KERNEL_SHELL, "kernel_info_request", c, NULL);
	json_decref(c);
	loop_timer_arm(k->env.loop, &k->hs_timer, KERNEL_HANDSHAKE_EARLY_MS,
		       kernel_rejoin_tick, k);
}

/* An iopub message while rejoining (see kernel_rejoin_tick). */
static void kernel_rejoin(struct kernel *k, const struct wire_msg *m)
{
	const char *type =
	    json_string_value(json_object_get(m->parent_header, "msg_type"));

	k->rejoin_live = true;
	if (!type || strcmp(type, "kernel_info_request") != 0)
		return;
	k->rejoin = false;
	if (!k->req.idle)
		kernel_fake(k, KERNEL_IOPUB, "status",
			    json_pack("{ss}", "execution_state", "idle"));
}

/*
 * Channel ch lost its connection KERNEL_CUT_GRACE_MS ago and the kernel
 * still runs: a message part over max_msg. libzmq refuses to take such a
 * part and drops the connection (and, after this protocol error, never
 * connects again by itself); what was queued behind it in the kernel, and
 * what the kernel sent since, is gone. The messages that arrived before the
 * break are handled first, then the owner hears what was lost, then the
 * channel connects again. Until then nothing can arrive on it, so no idle
 * or reply can end the cell before the owner heard of the cut.
 */
static void kernel_cut(void *arg, short revents)
{
	struct kernel_sockref *ref = arg;
	struct kernel *k = ref->k;
	enum kernel_chan ch = ref->ch;
	size_t ignored = 0;
	char ep[600];

	(void)revents;
	if (k->state != KERNEL_READY || kernel_gone(k))
		return;
	while (k->sock[ch] && kernel_recv_one(k, ch, &ignored) > 0)
		;
	log_warnx("kernel %.8s: %s connection dropped (a message over %zu "
		  "bytes?); connecting again",
		  k->id, chan_name[ch], k->env.max_msg);
	if (k->state == KERNEL_READY)
		kernel_report_cut(k, ch);
	if (!k->sock[ch])
		return;
	kernel_endpoint(k, k->port[ch], ep, sizeof(ep));
	zmq_disconnect(k->sock[ch], ep);
	if (zmq_connect(k->sock[ch], ep) < 0)
		log_warnx("kernel %.8s: cannot connect %s again: %s", k->id,
			  chan_name[ch], zmq_strerror(errno));
	loop_zmq_used(k->sockw[ch]);
	if (ch == KERNEL_IOPUB && !k->req.idle) {
		k->rejoin = true;
		k->rejoin_live = false;
		kernel_rejoin_tick(k, 0);
	}
}

/* Events of a channel's monitor: two frames, the event (u16 id, u32
 * value) and the endpoint. A broken connection of a ready kernel becomes
 * a cut unless the kernel turns out to be exiting. */
static void kernel_on_monitor(void *arg, short revents)
{
	struct kernel_sockref *ref = arg;
	struct kernel *k = ref->k;
	void *mon = k->mon[ref->ch];
	zmq_msg_t ev, ep;
	uint16_t id;

	(void)revents;
	for (;;) {
		zmq_msg_init(&ev);
		zmq_msg_init(&ep);
		if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) < 0 ||
		    zmq_msg_recv(&ep, mon, 0) < 0)
			break;
		id = 0;
		if (zmq_msg_size(&ev) >= sizeof(id))
			memcpy(&id, zmq_msg_data(&ev), sizeof(id));
		if (id == ZMQ_EVENT_DISCONNECTED && k->state == KERNEL_READY)
			loop_timer_arm(k->env.loop, &k->cut_timer[ref->ch],
				       KERNEL_CUT_GRACE_MS, kernel_cut, ref);
		zmq_msg_close(&ev);
		zmq_msg_close(&ep);
	}
	zmq_msg_close(&ev);
	zmq_msg_close(&ep);
}

int kernel_send(struct kernel *k, enum kernel_chan ch, const char *msg_type,
		json_t *content, char *msg_id_out)
{
	struct wire_out out;
	char id[37];
	json_t *hdr;
	int rc;

	if (!k->sock[ch] || ch == KERNEL_IOPUB)
		return -ENOTCONN;
	hdr = wire_header_new(msg_type, k->session, id);
	if (!hdr)
		return -ENOMEM;
	if (msg_id_out)
		memcpy(msg_id_out, id, sizeof(id));
	if (strcmp(msg_type, "execute_request") == 0) {
		memcpy(k->req.id, id, sizeof(id));
		k->req.replied = k->req.idle = false;
	}
	rc =
	    wire_encode(k->key, strlen(k->key), hdr, NULL, NULL, content, &out);
	json_decref(hdr);
	if (rc < 0)
		return rc;
	if (zmq_send(k->sock[ch], WIRE_DELIM, WIRE_DELIM_LEN, ZMQ_SNDMORE) <
		0 ||
	    zmq_send(k->sock[ch], out.sig, strlen(out.sig), ZMQ_SNDMORE) < 0)
		rc = -errno;
	for (int i = 0; i < 4 && rc == 0; i++) {
		if (zmq_send(k->sock[ch], out.part[i], out.len[i],
			     i < 3 ? ZMQ_SNDMORE : 0) < 0)
			rc = -errno;
	}
	wire_out_cleanup(&out);
	/* A send may consume the socket's ZMQ_FD edge (loop.h). */
	loop_zmq_used(k->sockw[ch]);
	return rc;
}

int kernel_execute(struct kernel *k, const char *code, size_t len, bool silent,
		   char *msg_id_out)
{
	json_t *content = json_pack("{s:s%,s:b,s:b,s:{},s:b,s:b}", "code", code,
				    len, "silent", silent, "store_history",
				    !silent, "user_expressions", "allow_stdin",
				    0, "stop_on_error", !silent);
	int rc;

	if (!content)
		return -ENOMEM;
	rc = kernel_send(k, KERNEL_SHELL, "execute_request", content,
			 msg_id_out);
	json_decref(content);
	return rc;
}

int kernel_interrupt(struct kernel *k)
{
	if (k->exited)
		return -ESRCH;
	if (k->spec->interrupt_message) {
		json_t *c = json_object();
		int rc = kernel_send(k, KERNEL_CONTROL, "interrupt_request", c,
				     NULL);
		json_decref(c);
		return rc;
	}
	kernel_kill_group(k, SIGINT);
	return 0;
}

/* The shutdown_request was not acted on in time: SIGTERM, then SIGKILL. */
static void kernel_stop_term(void *arg, short revents)
{
	struct kernel *k = arg;

	(void)revents;
	kernel_kill_group(k, SIGTERM);
	loop_timer_arm(k->env.loop, &k->dead_timer, (uint64_t)k->stop_grace_ms,
		       kernel_deadline, k);
}

void kernel_stop(struct kernel *k, long grace_ms)
{
	bool asked = false;

	if (k->exited || k->state == KERNEL_STOPPING)
		return;
	/* A ready kernel is asked first, the way Jupyter clients do: it then
	 * exits cleanly (IRkernel removes its R tempdir, which a SIGTERM
	 * leaves behind in /tmp; ipykernel saves its history). */
	if (k->state == KERNEL_READY) {
		json_t *c = json_pack("{sb}", "restart", 0);
		asked = c && kernel_send(k, KERNEL_CONTROL, "shutdown_request",
					 c, NULL) == 0;
		json_decref(c);
	}
	k->state = KERNEL_STOPPING;
	k->stop_grace_ms = grace_ms;
	loop_timer_disarm(k->env.loop, &k->hs_timer);
	if (asked) {
		loop_timer_arm(k->env.loop, &k->dead_timer,
			       KERNEL_SHUTDOWN_WAIT_MS, kernel_stop_term, k);
		return;
	}
	kernel_stop_term(k, 0);
}

void kernel_free(struct kernel *k)
{
	if (!k)
		return;
	if (k->pid > 0 && !k->exited) {
		kernel_kill_rest(k);
		waitpid(k->pid, NULL, 0);
	}
	loop_del(k->env.loop, k->pidw);
	kernel_close_io(k);
	if (k->pidfd >= 0)
		close(k->pidfd);
	kernel_unlink_files(k);
	kres_release(&k->kk);
	json_decref(k->info);
	free(k->user_dir);
	free(k->conn_file);
	free(k->pid_file);
	free(k->ipc_prefix);
	free(k);
	kernel_nlive--;
}

/* ------------------------------------------------- startup: the sweep */

/* The runtime dir's lock, held (open) for the daemon's life. */
static int kernel_lock_fd = -1;

/* "<prefix><8 hex><suffix>" exactly. */
static bool kernel_file_is(const char *name, const char *prefix,
			   const char *suffix)
{
	size_t p = strlen(prefix), s = strlen(suffix);

	if (strncmp(name, prefix, p) != 0 || strlen(name) != p + 8 + s ||
	    strspn(name + p, "0123456789abcdef") != 8)
		return false;
	return strcmp(name + p + 8, suffix) == 0;
}

/* A kernel file: connection file, pid file or ipc socket "k<id8>-<1..5>". */
static bool kernel_file_stale(const char *name)
{
	static const char *const ipc[] = {"-1", "-2", "-3", "-4", "-5"};

	if (kernel_file_is(name, "kernel-", ".json") ||
	    kernel_file_is(name, "kernel-", ".pid"))
		return true;
	for (size_t i = 0; i < sizeof(ipc) / sizeof(*ipc); i++)
		if (kernel_file_is(name, "k", ipc[i]))
			return true;
	return false;
}

/* Kills what the kernel of a dead daemon named in a pid file left. */
static unsigned kernel_sweep_pid_file(int dirfd, const char *name)
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
static void kernel_sweep_dir(const char *dir, unsigned *files, unsigned *procs)
{
	char sub[600];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_type == DT_DIR && kernel_file_is(e->d_name, "u", "")) {
			snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
			kernel_sweep_dir(sub, files, procs);
			*files += rmdir(sub) == 0;
			continue;
		}
		if (!kernel_file_stale(e->d_name))
			continue;
		if (kernel_file_is(e->d_name, "kernel-", ".pid"))
			*procs += kernel_sweep_pid_file(dirfd(d), e->d_name);
		*files += unlinkat(dirfd(d), e->d_name, 0) == 0;
	}
	closedir(d);
}

int kernel_sweep(const struct kernel_env *env)
{
	unsigned files = 0, procs = 0;
	int fd = open(env->runtime_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (fd >= 0 && errno == EWOULDBLOCK)
			log_warnx("another e2b-ci uses the runtime dir %s; "
				  "leaving its files and kernels alone",
				  env->runtime_dir);
		else
			log_warn("cannot lock %s", env->runtime_dir);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	kernel_lock_fd = fd;
	kernel_sweep_dir(env->runtime_dir, &files, &procs);
	if (env->kres)
		procs += kres_sweep(env->kres);
	if (files || procs)
		log_warnx("swept what an earlier daemon left: %u file(s) in %s "
			  "(connection files, sockets), %u process(es)",
			  files, env->runtime_dir, procs);
	return 0;
}
