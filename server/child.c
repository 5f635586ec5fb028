/*
 * child.c: fork, the child-side reset and the error pipe (see child.h).
 *
 * Owns nothing past a call: the caller's struct child holds the pid and
 * the error pipe's one end each process keeps. Everything the child calls
 * here is async-signal-safe (signal, sigprocmask, setsid, setpgid, prctl,
 * getppid, fcntl, dup2, close, close_range, write, _exit): the forking
 * process may have other threads (libzmq's), whose locks a child must not
 * touch.
 *
 * Why the getppid() check after PR_SET_PDEATHSIG: the signal is armed for
 * the parent that exists when prctl runs. A parent that died between fork
 * and prctl has already handed the child to a reaper, and the signal
 * would never come: the child would outlive a daemon (or a kernel host)
 * that cannot clean up after it any more.
 */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Where a child parks its fds before moving them onto 0..n-1. */
#define CHILD_HIGH_FD 16
#define CHILD_MAX_FDS 8

int child_fork(struct child *s)
{
	int ep[2], e;

	s->pid = -1;
	s->parent = getpid();
	s->errfd = -1;
	if (pipe2(ep, O_CLOEXEC) < 0)
		return -errno;
	s->pid = fork();
	if (s->pid < 0) {
		e = errno;
		close(ep[0]);
		close(ep[1]);
		return -e;
	}
	close(ep[s->pid == 0 ? 0 : 1]);
	s->errfd = ep[s->pid == 0 ? 1 : 0];
	return 0;
}

int child_wait(struct child *s)
{
	int child_errno = 0;
	ssize_t n;

	do
		n = read(s->errfd, &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	close(s->errfd);
	s->errfd = -1;
	if (n != (ssize_t)sizeof(child_errno))
		return 0;
	waitpid(s->pid, NULL, 0);
	s->pid = 0;
	return child_errno > 0 ? -child_errno : -EIO;
}

int child_die_with_parent(const struct child *s)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return -1;
	if (getppid() != s->parent) {
		errno = ESRCH;
		return -1;
	}
	return 0;
}

int child_reset(const struct child *s, enum child_group g)
{
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		return -1;
	if (g == CHILD_SESSION ? setsid() < 0 : setpgid(0, 0) < 0)
		return -1;
	return child_die_with_parent(s);
}

int child_fds(struct child *s, const int *src, int n)
{
	int hi[CHILD_MAX_FDS], errfd;

	if (n < 0 || n > CHILD_MAX_FDS) {
		errno = EINVAL;
		return -1;
	}
	errfd = fcntl(s->errfd, F_DUPFD_CLOEXEC, CHILD_HIGH_FD);
	if (errfd < 0)
		return -1;
	s->errfd = errfd;
	for (int i = 0; i < n; i++) {
		hi[i] = src[i] < 0
			    ? -1
			    : fcntl(src[i], F_DUPFD_CLOEXEC, CHILD_HIGH_FD);
		if (src[i] >= 0 && hi[i] < 0)
			return -1;
	}
	for (int i = 0; i < n; i++) {
		if (hi[i] >= 0 && dup2(hi[i], i) < 0)
			return -1;
		if (hi[i] < 0)
			close(i);
	}
	/* The parked copies go too: they sit above n, and are not errfd. */
	if (errfd > n)
		close_range((unsigned)n, (unsigned)errfd - 1, 0);
	close_range((unsigned)errfd + 1, ~0U, 0);
	return 0;
}

noreturn void child_fail(const struct child *s)
{
	int e = errno;

	if (write(s->errfd, &e, sizeof(e)) != (ssize_t)sizeof(e))
		_exit(126);
	_exit(127);
}
