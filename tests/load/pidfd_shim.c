/*
 * pidfd_shim.c: an LD_PRELOAD stand-in for pidfd_open(2), for `make valgrind`
 * only (tests/load/valgrind-e2b-ci loads it into the daemon under valgrind).
 *
 * Why: Debian 12's valgrind (3.19) does not implement the pidfd_open system
 * call (434, "unhandled amd64-linux syscall"): it fails with ENOSYS, so the
 * daemon could not start a single kernel under memcheck. The daemon only
 * uses its pidfds to learn that a child exited (it polls the fd for
 * readability, then reaps with waitpid), so this shim gives it what behaves
 * the same: the read end of a pipe that turns readable once the process
 * exited, and stays readable. A detached thread per fd watches the child
 * with waitid(WEXITED | WNOHANG | WNOWAIT) every 10 ms (the status stays
 * for the daemon's waitpid), then writes one byte, and closes its write end
 * once the daemon closed the read end.
 *
 * When the real system call works (a newer valgrind, or no valgrind) it is
 * used as is. Under valgrind the constructor removes LD_PRELOAD from the
 * environment so the kernels the daemon starts do not load this file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int pidfd_open(pid_t pid, unsigned int flags);

struct watch {
	pid_t pid;
	int wfd;
};

/* LD_PRELOAD also reaches the shell script /usr/bin/valgrind and the
 * valgrind launcher: only the process under valgrind (whose LD_PRELOAD
 * valgrind extended with its vgpreload_*.so) drops it, for its children. */
__attribute__((constructor)) static void shim_init(void)
{
	const char *p = getenv("LD_PRELOAD");

	if (p && strstr(p, "vgpreload_"))
		unsetenv("LD_PRELOAD");
}

static void *shim_watch(void *arg)
{
	struct watch *w = arg;
	struct pollfd p;

	for (;;) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)w->pid, &si,
			   WEXITED | WNOHANG | WNOWAIT) == 0) {
			if (si.si_pid == w->pid)
				break; /* exited, not yet reaped */
		} else if (errno != EINTR) {
			break; /* ECHILD: already reaped */
		}
		usleep(10000);
	}
	if (write(w->wfd, "x", 1) < 0) {
		/* the daemon closed the read end already */
	}
	/* POLLERR on a pipe's write end: no reader left. */
	p.fd = w->wfd;
	p.events = 0;
	while (poll(&p, 1, 1000) >= 0 && !(p.revents & (POLLERR | POLLHUP)))
		;
	close(w->wfd);
	free(w);
	return NULL;
}

int pidfd_open(pid_t pid, unsigned int flags)
{
	static int emulate = -1;
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;
	struct watch *w;
	int fds[2], rc;

	if (emulate != 1) {
		long r = syscall(SYS_pidfd_open, pid, flags);

		if (r >= 0 || errno != ENOSYS) {
			emulate = 0;
			return (int)r;
		}
		emulate = 1;
	}
	if (kill(pid, 0) < 0)
		return -1; /* ESRCH, as the real call */
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	w = malloc(sizeof(*w));
	if (!w) {
		close(fds[0]);
		close(fds[1]);
		errno = ENOMEM;
		return -1;
	}
	w->pid = pid;
	w->wfd = fds[1];
	/* The watcher takes no signal: they are the daemon's (signalfd). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, shim_watch, w);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		close(fds[0]);
		close(fds[1]);
		free(w);
		errno = rc;
		return -1;
	}
	return fds[0];
}
