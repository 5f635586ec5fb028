/*
 * test_child: the child-side reset and the error pipe, checked from inside
 * the child: this binary execs itself with --report, which writes what it
 * finds (signal dispositions and mask, session, group, parent-death
 * signal, open fds) to its stdout, a pipe the test reads.
 */
#include "testhelp.h"

#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static char self[4096];

/* The child's side: one line of facts on fd 1, "err" on fd 2. Of the
 * dispositions only SIG_IGN crosses an exec (a caught signal is reset to
 * the default; and this binary's own runtime, e.g. ASan, catches some). */
static int report(void)
{
	struct sigaction sa;
	sigset_t blocked;
	int ign = 0, nblocked = 0, pdeath = 0;
	char fds[256] = "";

	for (int s = 1; s < NSIG; s++) {
		if (sigaction(s, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
			ign++;
	}
	sigprocmask(SIG_SETMASK, NULL, &blocked);
	for (int s = 1; s < NSIG; s++)
		nblocked += sigismember(&blocked, s) == 1;
	prctl(PR_GET_PDEATHSIG, &pdeath);
	for (int fd = 0; fd < 64; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			snprintf(fds + strlen(fds), sizeof(fds) - strlen(fds),
				 "%d,", fd);
	}
	printf("ignored=%d blocked=%d leader=%d group=%d pdeath=%d fds=%s\n",
	       ign, nblocked, getsid(0) == getpid(), getpgid(0) == getpid(),
	       pdeath, fds);
	fflush(stdout);
	if (write(2, "err", 3) != 3)
		return 1;
	return 0;
}

/* Reads what the pipe has until EOF. */
static void slurp(int fd, char *buf, size_t len)
{
	size_t used = 0;
	ssize_t n;

	while (used + 1 < len && (n = read(fd, buf + used, len - 1 - used)) > 0)
		used += (size_t)n;
	buf[used] = '\0';
	close(fd);
}

/* Starts this binary with --report (or argv0 as given) the way kproc and
 * kh_proc do. fail_parent: the child believes its parent is another
 * process (as if the real one had died before prctl). Returns
 * child_wait's result; *pid the child's. */
static int start(const char *argv0, enum child_group g, bool swap,
		 bool fail_parent, int out, int err, pid_t *pid)
{
	char *argv[] = {(char *)argv0, "--report", NULL};
	struct child s;
	int devnull, rc;

	rc = child_fork(&s);
	if (rc < 0)
		return rc;
	if (s.pid == 0) {
		int src[3];
		if (fail_parent)
			s.parent = 1;
		if (child_reset(&s, g) < 0)
			child_fail(&s);
		devnull = open("/dev/null", O_RDONLY);
		src[0] = devnull;
		src[1] = out;
		src[2] = err;
		if (swap) {
			/* The ends sit where the other must go: without
			 * parking, the second dup2 would undo the first. */
			if (dup2(out, 2) < 0 || dup2(err, 1) < 0)
				child_fail(&s);
			src[1] = 2;
			src[2] = 1;
		}
		if (child_fds(&s, src, 3) < 0)
			child_fail(&s);
		execv(argv[0], argv);
		child_fail(&s);
	}
	rc = child_wait(&s);
	*pid = s.pid;
	return rc;
}

static void run(enum child_group g, bool swap, char *out, size_t outlen,
		char *err, size_t errlen)
{
	int po[2], pe[2], status = -1;
	pid_t pid = 0;

	REQUIRE(pipe2(po, O_CLOEXEC) == 0 && pipe2(pe, O_CLOEXEC) == 0);
	CHECK(start(self, g, swap, false, po[1], pe[1], &pid) == 0);
	close(po[1]);
	close(pe[1]);
	slurp(po[0], out, outlen);
	slurp(pe[0], err, errlen);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_reset_and_fds(void)
{
	char out[512], err[64];
	int stray = open("/dev/null", O_RDONLY); /* not close-on-exec */
	sigset_t block;

	/* What the parent has must not reach the child. */
	signal(SIGUSR1, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, NULL);
	REQUIRE(stray > 2);
	run(CHILD_SESSION, false, out, sizeof(out), err, sizeof(err));
	CHECK_STR(out, "ignored=0 blocked=0 leader=1 group=1 pdeath=9 "
		       "fds=0,1,2,\n");
	CHECK_STR(err, "err");
	signal(SIGUSR1, SIG_DFL);
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	close(stray);
}

static void test_group_in_the_parents_session(void)
{
	char out[512], err[64];

	run(CHILD_PGROUP, false, out, sizeof(out), err, sizeof(err));
	CHECK_STR(out, "ignored=0 blocked=0 leader=0 group=1 pdeath=9 "
		       "fds=0,1,2,\n");
}

static void test_fds_are_parked_before_they_move(void)
{
	char out[512], err[512];

	/* stdout's end is given as fd 2 and stderr's as fd 1: each must
	 * still land where it belongs. */
	run(CHILD_SESSION, true, out, sizeof(out), err, sizeof(err));
	CHECK(strncmp(out, "ignored=0", 9) == 0);
	CHECK_STR(err, "err");
}

static void test_exec_failure_comes_back(void)
{
	int po[2];
	pid_t pid = 0;

	REQUIRE(pipe2(po, O_CLOEXEC) == 0);
	CHECK(start("/nonexistent/e2bci-test", CHILD_SESSION, false, false,
		    po[1], po[1], &pid) == -ENOENT);
	/* Reaped by child_wait: no child is left. */
	CHECK(pid == 0);
	CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
	close(po[0]);
	close(po[1]);
}

static void test_a_parent_gone_before_prctl_is_noticed(void)
{
	int po[2];
	pid_t pid = 0;

	REQUIRE(pipe2(po, O_CLOEXEC) == 0);
	CHECK(start(self, CHILD_SESSION, false, true, po[1], po[1], &pid) ==
	      -ESRCH);
	CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
	close(po[0]);
	close(po[1]);
}

int main(int argc, char **argv)
{
	ssize_t n;

	if (argc > 1 && strcmp(argv[1], "--report") == 0)
		return report();
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = '\0';
	TEST(test_reset_and_fds);
	TEST(test_group_in_the_parents_session);
	TEST(test_fds_are_parked_before_they_move);
	TEST(test_exec_failure_comes_back);
	TEST(test_a_parent_gone_before_prctl_is_noticed);
	return test_report();
}
