/*
 * kh_proc: the runner child process and its pipes.
 *
 * Starts the runner in a process group of its own in the host's session (so
 * its group holds the runner and everything user code starts, and nothing
 * else), with stdin a pipe the host writes, fd 1 and fd 2 pipes read as
 * stdout and stderr, and in json mode fd 3 a pipe of events. Reports data
 * read from those pipes, pipe by pipe in the order their data arrived, and,
 * exactly once, the runner's exit. Reaps the orphans the host adopts as a
 * subreaper, and at cleanup ends every process user code started. Loop
 * thread only.
 */
#ifndef E2B_KH_PROC_H
#define E2B_KH_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dbuf.h"
#include "loop.h"

/* The pipes the runner writes, by their fd number in the runner. */
enum kh_fd { KH_FD_STDOUT = 1, KH_FD_STDERR = 2, KH_FD_EVENTS = 3 };
#define KH_NFD 4 /* index 0 unused */

struct kh_proc_ops {
	/* len bytes arrived on fd (never 0: end of file is not reported). */
	void (*data)(void *arg, enum kh_fd fd, const char *buf, size_t len);
	/* The runner exited with a waitpid() status; everything it wrote
	 * before has been delivered through data(). Called once. */
	void (*exited)(void *arg, int status);
};

struct kh_proc {
	struct loop *loop;
	const struct kh_proc_ops *ops;
	void *arg;
	pid_t pid; /* also the runner's process group id */
	int pidfd;
	struct loop_watch *pidw;
	bool exited;

	int in; /* our end of the runner's stdin, -1 once closed */
	struct loop_watch *inw;
	struct dbuf obuf; /* bytes for in; the first ooff already written */
	size_t ooff;
	bool close_in; /* close in once obuf is empty */

	int fd[KH_NFD]; /* our ends of fd 1..3, -1 when absent/closed */
	/* Copies of the runner's own ends of fd 0..3 (close-on-exec, -1
	 * when absent): a runner that lost one can open it again as
	 * /proc/<host pid>/fd/<cfd>. Kept, the output pipes never report end
	 * of file; the runner's exit comes through the pidfd anyway. */
	int cfd[KH_NFD];
	/* fd[] in an edge-triggered epoll set, which lists pipes in the
	 * order data arrived in them: output is passed on in that order. */
	int epfd;
	struct loop_watch *epw;
	enum kh_fd ready[KH_NFD]; /* pipes that may hold data, oldest first */
	int nready;
	struct loop_timer more_timer; /* ready[] left over from a turn */

	struct loop_timer kill_timer;
	uint64_t kill_at; /* loop_now_ms() of the SIGKILL, 0: none armed */
};

/* Starts argv[0] (looked up on PATH) with argv, in the host's cwd and
 * environment. events selects the fd 3 pipe. Returns 0, or a negative errno
 * with a message in err (exec failure included: it is reported through a
 * close-on-exec pipe). Call kh_proc_cleanup either way. */
int kh_proc_spawn(struct kh_proc *p, struct loop *loop, char *const argv[],
		  bool events, const struct kh_proc_ops *ops, void *arg,
		  char *err, size_t errlen);

/* What kh_proc_write queues for a runner that does not read its stdin:
 * one request of any size (its size is bounded where it came from), and
 * behind unread bytes only up to this many in all. A runner reads a
 * request whole before it answers it, and the host sends one at a time,
 * so a runner that keeps up always finds the queue empty. */
#define KH_PROC_STDIN_MAX (1024 * 1024)

/* Queues len bytes (one request: all or nothing) for the runner's stdin;
 * never blocks. Returns 0, -EPIPE once stdin is closed, -ENOBUFS when
 * unread bytes are queued and these would pass KH_PROC_STDIN_MAX (the
 * runner is not reading), or -ENOMEM. */
int kh_proc_write(struct kh_proc *p, const char *buf, size_t len);

/* Reads stdout and stderr until they have nothing more right now (or max
 * bytes passed on one), reporting through ops->data, the pipe that received
 * data first read first. Used to keep output ahead of an event that says it
 * is complete, in the order it was written. */
void kh_proc_drain(struct kh_proc *p, size_t max);

/* Sends sig to the runner's process group. Returns 0 or -ESRCH. */
int kh_proc_signal(struct kh_proc *p, int sig);

/* Asks the runner to go: closes its stdin once queued bytes are written,
 * sends sig (0: none) to its group, and SIGKILLs the group after grace_ms.
 * Called again, it only brings the SIGKILL closer. The exit arrives through
 * ops->exited as usual. */
void kh_proc_stop(struct kh_proc *p, int sig, uint64_t grace_ms);

/* Reaps the host's exited children other than the runner: orphans of user
 * code it adopted as a subreaper. Call on SIGCHLD. */
void kh_proc_reap_orphans(struct kh_proc *p);

/* Kills the group if the runner still runs, reaps it, then kills and reaps
 * every other descendant (at most ~0.5 s), closes everything. Accepts a
 * zeroed struct. */
void kh_proc_cleanup(struct kh_proc *p);

#endif
