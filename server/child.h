/*
 * child: fork, the child-side reset, and exec failures reported back; the
 * one idiom by which the daemon starts a kernel (kproc.c) and the kernel
 * host starts its runner (kernels/host/kh_proc.c).
 *
 * The parent forks with child_fork, which also makes a close-on-exec error
 * pipe. The child, with async-signal-safe calls only, takes the reset every
 * child of ours gets (child_reset: default signal dispositions, an empty
 * mask, a session or process group of its own, and SIGKILL when its parent
 * dies, checked against a parent that died first), does its own steps,
 * puts its fds in place (child_fds: the given ones on 0..n-1, every other
 * one closed), and execs; any failure goes through child_fail, which writes
 * errno into the error pipe. A successful exec closes the pipe, so the
 * parent's child_wait reads either nothing (started) or the child's errno
 * (reaped, failed): a bad argv fails the start instead of looking like a
 * death later.
 *
 * libc only: the kernel host links it as it is. Whoever calls child_fork
 * must be single-threaded at that moment or only call async-signal-safe
 * functions in the child (libzmq's threads exist in both programs: the
 * child touches nothing of theirs).
 */
#ifndef E2BCI_CHILD_H
#define E2BCI_CHILD_H

#include <stdnoreturn.h>
#include <sys/types.h>

/* What child_reset puts the child in. */
enum child_group {
	CHILD_SESSION, /* setsid: its own session and process group */
	CHILD_PGROUP,  /* setpgid: its own group, in the parent's session */
};

struct child {
	pid_t pid;    /* the child's, in the parent; 0 in the child */
	pid_t parent; /* the forking process */
	int errfd;    /* parent: read end; child: write end (close-on-exec) */
};

/* Forks with an error pipe. Returns 0 in both processes (s->pid tells
 * which one this is) or -errno in the parent, nothing forked. */
int child_fork(struct child *s);

/* Parent: waits until the child exec'd or failed. Returns 0 when it
 * exec'd, or minus the errno it failed with (the child is then reaped and
 * s->pid is 0). Closes the error pipe either way. */
int child_wait(struct child *s);

/* Child: signals as a fresh process has them (every disposition default,
 * nothing blocked), a new session or process group, PR_SET_PDEATHSIG
 * SIGKILL. Returns 0, or -1 with errno set: ESRCH when the parent died
 * before the death signal was armed (it would never come). */
int child_reset(const struct child *s, enum child_group g);

/* Child: the parent-death signal again, e.g. after a uid change cleared
 * it, with the same check. Returns 0 or -1 (errno ESRCH). */
int child_die_with_parent(const struct child *s);

/* Child: src[i] becomes fd i for i < n (src[i] < 0: fd i closed); every
 * other fd is closed except the error pipe, which moves above them. Ends
 * are parked on high fds first, so no dup2 overwrites one still needed.
 * Returns 0 or -1 (errno). */
int child_fds(struct child *s, const int *src, int n);

/* Child: reports errno to the parent and exits (127; 126 when even the
 * report failed). */
noreturn void child_fail(const struct child *s);

#endif
