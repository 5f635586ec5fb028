/*
 * kproc: one kernel process, the process side of kernel_.
 *
 * What a kernel is started with: its id, HMAC key and connection file (0600,
 * in the private runtime dir; ipc endpoints for kernels known to take them,
 * else free loopback tcp ports), its environment and cgroup. Starting it
 * (kproc_spawn: the one entry point, see "Start methods" in kproc.c), a pid
 * file for the sweep after a crashed daemon, its stdout and stderr drained
 * into the debug log (stderr's last lines kept for a failed start's
 * reason), and its end: the pidfd turning readable, everything the kernel
 * started killed, the process reaped, its files removed, on_exit called
 * once. kproc_sweep: the runtime dir at startup. kproc_reap_strays: the
 * orphans the daemon adopts as a child subreaper (which it is for the
 * kernels a zygote forks, zyg.h).
 *
 * kernel.c embeds one per kernel and does the rest (sockets, handshake,
 * messages, interrupt and stop protocol). Loop thread only. It knows
 * nothing of sockets or messages.
 */
#ifndef E2BCI_KPROC_H
#define E2BCI_KPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "kres.h"
#include "loop.h"

struct kspec;
struct kproc_launch;

#define KPROC_PIPE_LINE 2048
/* What a kernel last wrote to stderr is kept for the reason of a failed
 * start (launch.sh: e2b-kernel not found, a Python traceback's last line). */
#define KPROC_TAIL_LINES 4
#define KPROC_TAIL_CHARS 240

/* The connection file's ports, in its order. */
enum kproc_port {
	KPROC_SHELL,
	KPROC_IOPUB,
	KPROC_STDIN,
	KPROC_CONTROL,
	KPROC_HB,
	KPROC_NPORTS
};

struct kproc;

/* stdout or stderr of the kernel, read line by line into the log. */
struct kproc_pipe {
	int fd;
	struct loop_watch *w;
	struct kproc *p;
	const char *name;
	char line[KPROC_PIPE_LINE];
	size_t len;
	/* The last lines, a ring (stderr only; NULL for stdout). */
	char (*tail)[KPROC_TAIL_CHARS];
	unsigned ntail; /* lines ever kept */
};

struct kproc {
	char id[37];  /* the kernel's: names its files, cgroup, log lines */
	char key[65]; /* HMAC key (hex), as in the connection file */
	const struct kspec *spec;
	struct loop *loop;
	const char *runtime_dir;
	const struct kres *kres; /* limits and user; may be NULL */

	void (*on_exit)(void *arg, int status);
	void *arg;

	pid_t pid; /* also its session and process group id */
	int pidfd;
	struct loop_watch *pidw;
	struct kproc_pipe out, err;
	char err_tail[KPROC_TAIL_LINES][KPROC_TAIL_CHARS];
	/* Asked of the kernelspec's zygote, its answer not in yet (pid 0):
	 * what exec needs if it declines. */
	struct kproc_launch *launch;
	int held_sig; /* a stop's signal sent meanwhile, for the process */
	bool forked;  /* started (or asked) by the zygote, not exec'd */
	bool exited;  /* reaped */
	bool oom;     /* ... by the OOM killer, or out of its memory limit */

	int port[KPROC_NPORTS]; /* tcp ports, or ipc socket suffixes 1..5 */
	char *conn_file;
	char *pid_file;	  /* pid, start time, daemon pid: for kproc_sweep */
	char *ipc_prefix; /* NULL for tcp */
	char *user_dir;	  /* per-kernel dir owned by --kernel-user */
	struct kres_kernel kk;
	struct kproc *live_next; /* kproc.c's list of unreaped pids */
};

/* An idle kproc for spec (borrowed, must outlive it), started through
 * loop, with files in runtime_dir and kres's limits (both borrowed; kres
 * may be NULL). Allocates nothing: kproc_cleanup is safe from here on. */
void kproc_init(struct kproc *p, const struct kspec *spec, struct loop *loop,
		const char *runtime_dir, const struct kres *kres);

/* Everything the kernel is started with: a random id and 256-bit HMAC key,
 * the dir for its files (the runtime dir; for --kernel-user a private one
 * that user owns), the connection file, the kernel's cgroup. Returns 0, or
 * -1 with a reason in err. */
int kproc_prepare(struct kproc *p, char *err, size_t errlen);

/* Starts the kernel process in cwd: the kernelspec's argv for the
 * connection file, the kernels' environment, a session of its own, stdin
 * /dev/null, stdout and stderr pipes, its cgroup and user. Then the pid
 * file and a pidfd. Returns 0, or -1 with a reason in err (a failed exec
 * included). Nothing is watched yet: see kproc_watch. A kernel asked of a
 * zygote has no pid yet when this returns (p->launch set): it comes from
 * the loop, and a failure then is reported as an exit (status 127, the
 * reason in the stderr tail). */
int kproc_spawn(struct kproc *p, const char *cwd, char *err, size_t errlen);

/* Drains the pipes into the debug log and watches the pidfd: once the
 * process exited, whatever it started is killed, it is reaped, its files
 * are removed, and on_exit(arg, status as from waitpid) runs, once.
 * Returns 0 or -ENOMEM. */
int kproc_watch(struct kproc *p, void (*on_exit)(void *arg, int status),
		void *arg);

/* The ZeroMQ endpoint of port i: tcp://127.0.0.1:N or ipc://<prefix>-N. */
void kproc_endpoint(const struct kproc *p, enum kproc_port i, char *buf,
		    size_t len);

/* Sends sig to the process group (to the process when that fails); nothing
 * once it was reaped. While the zygote's answer is awaited, SIGTERM and
 * SIGKILL are held and sent once the process exists. */
void kproc_signal(struct kproc *p, int sig);

/* Whether the process has exited: reaped, or a zombie not reaped yet. */
bool kproc_gone(const struct kproc *p);

/* The last few lines the kernel wrote to stderr (each cut to
 * KPROC_TAIL_CHARS), oldest first, joined by " | ", into buf (len bytes,
 * NUL-terminated, "" when none). Also after the exit. Returns buf. */
const char *kproc_stderr_tail(const struct kproc *p, char *buf, size_t len);

/* Kills the process and everything it started if it still runs and reaps
 * it, stops watching, reads what is left in its pipes into the log, closes
 * everything and removes its files and cgroup. Blocks for a few ms at
 * most. Accepts a kproc whose prepare or spawn failed, and an idle one. */
void kproc_cleanup(struct kproc *p);

/* Kernel processes started so far by a zygote (forked) and by exec. */
void kproc_counts(unsigned long long *forked, unsigned long long *execd);

/* Starts spec's zygote (zyg.c) with the kernels' environment, when spec is
 * one a zygote serves; its kernels are forks once it is ready. */
void kproc_zygote_warm(const struct kspec *spec, const struct kres *kres);

/* On SIGCHLD (the daemon is a child subreaper: orphans of kernels come to
 * it): reaps every exited child that is neither a kernel whose pidfd
 * handler reaps it nor a zygote. */
void kproc_reap_strays(void);

/* At startup, before any kernel: locks runtime_dir for the daemon's life
 * and removes what a daemon that died there without cleaning up left:
 * stale connection files (HMAC keys), pid files, ipc sockets, kernel user
 * dirs, and the processes its kernels left (their cgroups through kres,
 * which may be NULL, else what their pid files name). Returns 0, or -1
 * when the dir is locked by another live daemon (nothing is touched then)
 * or cannot be opened. */
int kproc_sweep(const char *runtime_dir, const struct kres *kres);

#endif
