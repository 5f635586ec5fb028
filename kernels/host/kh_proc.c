/*
 * kh_proc.c: the runner child process.
 *
 * Owns the runner's pid, pidfd, process group and the host's ends of its
 * pipes. The child is made between fork and exec by the daemon's child.c,
 * as the daemon makes its kernels: default signal dispositions and an
 * empty mask (the host blocks and ignores signals the runner must see), a
 * process group of its own (so that an interrupt reaches the runner and
 * what user code starts, and the host alone gets the daemon's signals) but
 * the host's session (so the daemon, which kills a dead kernel's session,
 * also finds the runner's processes after a SIGKILL of the host),
 * PR_SET_PDEATHSIG so it does not outlive a SIGKILLed host, its pipes moved
 * onto fds 0..3, every other fd closed. A failed exec is reported through a
 * close-on-exec pipe, so a bad argv fails the spawn instead of looking like
 * a runner death later.
 *
 * The host is a child subreaper (kh_main.c): processes user code started
 * that lose their parent, setsid ones included, become the host's children.
 * kh_proc_reap_orphans reaps those that exit; kh_proc_cleanup kills them
 * all, generation after generation, before the host exits.
 *
 * Invariants: every host end is non-blocking and close-on-exec; reads are
 * bounded per turn (64 KiB per pipe) so one chatty pipe cannot starve the
 * loop; stdin writes are queued and flushed on POLLOUT, never blocking,
 * and the queue is bounded (KH_PROC_STDIN_MAX): a runner that stops
 * reading, while something ends its requests for it (fake "done" events,
 * fake end markers), makes the next requests fail instead of the host's
 * memory grow.
 *
 * Order across pipes: a cell that writes stderr, then stdout, must not be
 * reported the other way round just because both pipes were readable when
 * the loop woke. The read ends sit in an edge-triggered epoll set, whose
 * ready list is kept in the order the pipes received data (a pipe already
 * listed keeps its place), and are read in that order; a pipe not drained
 * within its turn's budget keeps its place for the next turn. What one pipe
 * received after another's data arrived but before the host read it cannot
 * be told apart: that much order is lost, and no more. The pidfd
 * turning readable is the only exit signal: the remaining pipe contents are
 * read first (bounded, a grandchild may keep writing), then the whole group
 * is SIGKILLed, which reaches background jobs user code left behind while
 * the unreaped zombie still reserves the group id, and only then is the
 * runner reaped and ops->exited called, once.
 *
 * Threads: loop thread only. It does not know what the bytes mean (the modes
 * do), and does not restart anything: the host exits with the runner.
 */
#include "kh_proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "child.h"
#include "log.h"

#define KH_PROC_READ	   65536
#define KH_PROC_EXIT_DRAIN (4u << 20) /* bytes read per pipe at exit */
#define KH_PROC_END_MS	   500	      /* at most, to end all descendants */

/* The child between fork and exec (child.c's reset and fd moves). src[i]
 * is the pipe end that becomes fd i (-1: none). */
static noreturn void kh_proc_child(struct child *c, char *const argv[],
				   const int src[KH_NFD])
{
	if (child_reset(c, CHILD_PGROUP) == 0 && child_fds(c, src, KH_NFD) == 0)
		execvp(argv[0], argv);
	child_fail(c);
}

/* Closing the read end also takes it out of the epoll set. */
static void kh_proc_close_fd(struct kh_proc *p, enum kh_fd fd)
{
	if (p->fd[fd] >= 0)
		close(p->fd[fd]);
	p->fd[fd] = -1;
}

/* Reads at most one buffer from fd; returns the count, 0 at end of file
 * (the fd is then closed) or -1 when nothing is there now. */
static ssize_t kh_proc_read_once(struct kh_proc *p, enum kh_fd fd)
{
	char buf[KH_PROC_READ];
	ssize_t n;

	if (p->fd[fd] < 0)
		return 0;
	n = read(p->fd[fd], buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	if (n <= 0) {
		kh_proc_close_fd(p, fd);
		return 0;
	}
	p->ops->data(p->arg, fd, buf, (size_t)n);
	return n;
}

static void kh_proc_queue(struct kh_proc *p, enum kh_fd fd)
{
	for (int i = 0; i < p->nready; i++)
		if (p->ready[i] == fd)
			return;
	if (p->nready < KH_NFD)
		p->ready[p->nready++] = fd;
}

static void kh_proc_unlist(struct kh_proc *p, enum kh_fd fd)
{
	for (int i = 0; i < p->nready; i++) {
		if (p->ready[i] != fd)
			continue;
		memmove(&p->ready[i], &p->ready[i + 1],
			(size_t)(p->nready - i - 1) * sizeof(p->ready[0]));
		p->nready--;
		return;
	}
}

/* Appends the pipes that received data since the last look, in the order
 * they received it (the epoll ready list's order). */
static void kh_proc_collect(struct kh_proc *p)
{
	struct epoll_event ev[KH_NFD];
	int n = epoll_wait(p->epfd, ev, KH_NFD, 0);

	for (int i = 0; i < n; i++)
		kh_proc_queue(p, (enum kh_fd)ev[i].data.u32);
}

static void kh_proc_more(void *arg, short revents);

/* One read per listed pipe, oldest first. A read that filled the buffer
 * may have left more (edge-triggered: no new event will say so): that pipe
 * goes to the back of the list. A shorter read emptied the pipe (pipes
 * return what they hold), so the pipe is listed again only when new data
 * arrives: the list never claims data older than it is. The list is worked
 * from its head, so a drain run from ops->data sees the rest of the turn. */
static void kh_proc_read_ready(struct kh_proc *p)
{
	for (int n = p->nready; n > 0 && p->nready > 0; n--) {
		enum kh_fd fd = p->ready[0];

		kh_proc_unlist(p, fd);
		if (kh_proc_read_once(p, fd) == KH_PROC_READ)
			kh_proc_queue(p, fd);
	}
	if (p->nready > 0)
		loop_timer_arm(p->loop, &p->more_timer, 0, kh_proc_more, p);
}

static void kh_proc_more(void *arg, short revents)
{
	(void)revents;
	kh_proc_read_ready(arg);
}

static void kh_proc_on_ready(void *arg, short revents)
{
	(void)revents;
	kh_proc_collect(arg);
	kh_proc_read_ready(arg);
}

/* Reads fd until it has nothing more right now or max bytes passed;
 * returns whether it is empty. */
static bool kh_proc_drain_fd(struct kh_proc *p, enum kh_fd fd, size_t max)
{
	size_t total = 0;
	ssize_t n;

	while (total < max && (n = kh_proc_read_once(p, fd)) > 0)
		total += (size_t)n;
	return total < max;
}

void kh_proc_drain(struct kh_proc *p, size_t max)
{
	enum kh_fd order[KH_NFD];
	int k = 0;

	kh_proc_collect(p);
	for (int i = 0; i < p->nready; i++)
		if (p->ready[i] != KH_FD_EVENTS)
			order[k++] = p->ready[i];
	for (int i = 0; i < k; i++)
		if (kh_proc_drain_fd(p, order[i], max))
			kh_proc_unlist(p, order[i]);
}

static void kh_proc_close_in(struct kh_proc *p)
{
	loop_del(p->loop, p->inw);
	p->inw = NULL;
	if (p->in >= 0)
		close(p->in);
	p->in = -1;
	dbuf_reset(&p->obuf);
	p->ooff = 0;
}

/* Writes what is queued; waits for POLLOUT when the pipe is full. A write
 * error means the runner is gone; its exit arrives through the pidfd. */
static void kh_proc_flush(struct kh_proc *p)
{
	ssize_t n;

	while (p->in >= 0 && p->ooff < dbuf_len(&p->obuf)) {
		n = write(p->in, dbuf_ptr(&p->obuf) + p->ooff,
			  dbuf_len(&p->obuf) - p->ooff);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			log_warn("runner stdin");
			kh_proc_close_in(p);
			return;
		}
		p->ooff += (size_t)n;
	}
	if (p->in < 0)
		return;
	if (p->ooff == dbuf_len(&p->obuf)) {
		dbuf_reset(&p->obuf);
		p->ooff = 0;
		if (p->close_in)
			kh_proc_close_in(p);
		else
			loop_set_events(p->inw, 0);
		return;
	}
	loop_set_events(p->inw, ZMQ_POLLOUT);
}

static void kh_proc_on_in(void *arg, short revents)
{
	(void)revents;
	kh_proc_flush(arg);
}

int kh_proc_write(struct kh_proc *p, const char *buf, size_t len)
{
	size_t unread = dbuf_len(&p->obuf) - p->ooff;

	if (p->in < 0 || p->close_in)
		return -EPIPE;
	if (unread > 0 &&
	    (unread >= KH_PROC_STDIN_MAX || len > KH_PROC_STDIN_MAX - unread))
		return -ENOBUFS;
	/* What was written goes before more is queued behind it, so the
	 * buffer holds unread bytes only (moved once per request at most). */
	dbuf_shift(&p->obuf, p->ooff);
	p->ooff = 0;
	/* Out of memory, the bytes queued before stay, and the failure until
	 * they are written (kh_proc_flush resets the buffer). */
	if (dbuf_add(&p->obuf, buf, len) < 0)
		return -ENOMEM;
	kh_proc_flush(p);
	return 0;
}

int kh_proc_signal(struct kh_proc *p, int sig)
{
	if (p->pid <= 0 || p->exited)
		return -ESRCH;
	if (killpg(p->pid, sig) < 0 && kill(p->pid, sig) < 0)
		return -errno;
	return 0;
}

static void kh_proc_kill_timer(void *arg, short revents)
{
	struct kh_proc *p = arg;

	(void)revents;
	log_warnx("runner (pid %d) did not stop in time; killing it",
		  (int)p->pid);
	kh_proc_signal(p, SIGKILL);
}

void kh_proc_stop(struct kh_proc *p, int sig, uint64_t grace_ms)
{
	uint64_t at = loop_now_ms() + grace_ms;

	if (p->exited)
		return;
	if (!p->close_in) {
		p->close_in = true;
		kh_proc_flush(p);
		if (sig)
			kh_proc_signal(p, sig);
	}
	/* A second stop may only bring the SIGKILL closer. */
	if (p->kill_at && p->kill_at <= at)
		return;
	p->kill_at = at;
	loop_timer_arm(p->loop, &p->kill_timer, grace_ms, kh_proc_kill_timer,
		       p);
}

static void kh_proc_on_pidfd(void *arg, short revents)
{
	struct kh_proc *p = arg;
	siginfo_t si;
	int status = 0;

	(void)revents;
	memset(&si, 0, sizeof(si));
	/* Peek first: the zombie must stay until the group is killed. */
	if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
	    si.si_pid == 0)
		return;
	kh_proc_drain(p, KH_PROC_EXIT_DRAIN);
	kh_proc_drain_fd(p, KH_FD_EVENTS, KH_PROC_EXIT_DRAIN);
	killpg(p->pid, SIGKILL);
	if (waitpid(p->pid, &status, 0) < 0)
		status = 0;
	p->exited = true;
	loop_del(p->loop, p->pidw);
	p->pidw = NULL;
	loop_timer_disarm(p->loop, &p->kill_timer);
	kh_proc_close_in(p);
	p->ops->exited(p->arg, status);
}

/* Makes the pipes: pipes[i] for fd i of the runner (0 = stdin). */
static int kh_proc_pipes(int pipes[KH_NFD][2], bool events)
{
	for (int i = 0; i < KH_NFD; i++) {
		if (i == KH_FD_EVENTS && !events)
			continue;
		if (pipe2(pipes[i], O_CLOEXEC) < 0)
			return -errno;
	}
	return 0;
}

/* Takes over the host ends after a successful exec. */
static int kh_proc_adopt(struct kh_proc *p, int pipes[KH_NFD][2])
{
	p->in = pipes[0][1];
	pipes[0][1] = -1;
	p->cfd[0] = pipes[0][0];
	pipes[0][0] = -1;
	fcntl(p->in, F_SETFL, O_NONBLOCK);
	p->inw = loop_add_fd(p->loop, p->in, 0, kh_proc_on_in, p);
	if (!p->inw)
		return -ENOMEM;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		return -errno;
	p->epw = loop_add_fd(p->loop, p->epfd, ZMQ_POLLIN, kh_proc_on_ready, p);
	if (!p->epw)
		return -ENOMEM;
	for (int i = KH_FD_STDOUT; i < KH_NFD; i++) {
		struct epoll_event ev = {.events = EPOLLIN | EPOLLET,
					 .data.u32 = (uint32_t)i};
		if (pipes[i][0] < 0)
			continue;
		p->fd[i] = pipes[i][0];
		pipes[i][0] = -1;
		fcntl(p->fd[i], F_SETFL, O_NONBLOCK);
		if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->fd[i], &ev) < 0)
			return -errno;
		p->cfd[i] = pipes[i][1];
		pipes[i][1] = -1;
	}
	p->pidfd = pidfd_open(p->pid, 0);
	if (p->pidfd < 0)
		return -errno;
	p->pidw =
	    loop_add_fd(p->loop, p->pidfd, ZMQ_POLLIN, kh_proc_on_pidfd, p);
	return p->pidw ? 0 : -ENOMEM;
}

static void kh_proc_close_pipes(int pipes[KH_NFD][2])
{
	for (int i = 0; i < KH_NFD; i++) {
		for (int j = 0; j < 2; j++) {
			if (pipes[i][j] >= 0)
				close(pipes[i][j]);
		}
	}
}

int kh_proc_spawn(struct kh_proc *p, struct loop *loop, char *const argv[],
		  bool events, const struct kh_proc_ops *ops, void *arg,
		  char *err, size_t errlen)
{
	int pipes[KH_NFD][2], src[KH_NFD];
	struct child c;
	int rc;

	memset(p, 0, sizeof(*p));
	memset(pipes, -1, sizeof(pipes));
	dbuf_init(&p->obuf, DBUF_NOMAX);
	p->loop = loop;
	p->ops = ops;
	p->arg = arg;
	p->in = p->pidfd = p->epfd = -1;
	for (int i = 0; i < KH_NFD; i++)
		p->fd[i] = p->cfd[i] = -1;
	rc = kh_proc_pipes(pipes, events);
	if (rc < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(-rc));
		goto out;
	}
	src[0] = pipes[0][0];
	for (int i = KH_FD_STDOUT; i < KH_NFD; i++)
		src[i] = pipes[i][1];
	rc = child_fork(&c);
	if (rc < 0) {
		snprintf(err, errlen, "fork: %s", strerror(-rc));
		goto out;
	}
	if (c.pid == 0)
		kh_proc_child(&c, argv, src);
	p->pid = c.pid;
	rc = child_wait(&c);
	if (rc < 0) {
		p->pid = 0;
		snprintf(err, errlen, "cannot start %s: %s", argv[0],
			 strerror(-rc));
		goto out;
	}
	rc = kh_proc_adopt(p, pipes);
	if (rc < 0)
		snprintf(err, errlen, "runner setup: %s", strerror(-rc));
out:
	kh_proc_close_pipes(pipes);
	return rc;
}

void kh_proc_reap_orphans(struct kh_proc *p)
{
	siginfo_t si;

	/* Peeks at exited children one at a time; the runner is left to its
	 * pidfd (it is reaped only after its group was killed). */
	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
		    si.si_pid == 0 || si.si_pid == p->pid)
			return;
		waitpid(si.si_pid, NULL, WNOHANG);
	}
}

/* SIGKILLs every live child of the host (adopted orphans included);
 * returns how many were signalled. Children are found through /proc's
 * ppid, which needs no CONFIG_PROC_CHILDREN. */
static unsigned kh_proc_kill_children(void)
{
	pid_t self = getpid();
	unsigned n = 0;
	struct dirent *e;
	DIR *d = opendir("/proc");

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[300], buf[512], *c, state;
		int ppid = 0;
		ssize_t len;
		int fd;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		c = strrchr(buf, ')');
		if (c && sscanf(c + 1, " %c %d", &state, &ppid) == 2 &&
		    ppid == self && state != 'Z') {
			kill((pid_t)atoi(e->d_name), SIGKILL);
			n++;
		}
	}
	closedir(d);
	return n;
}

/* Ends every descendant: kills the host's children, reaps them, and goes
 * on with those that were orphaned meanwhile and came to the host (it is a
 * subreaper), until it has no child left or KH_PROC_END_MS passed. */
static void kh_proc_end_all(void)
{
	struct timespec ts = {0, 5 * 1000000L}, t0, now;
	sigset_t chld;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		unsigned killed = kh_proc_kill_children();
		pid_t r;
		while ((r = waitpid(-1, NULL, WNOHANG)) > 0)
			;
		if (!killed && r < 0 && errno == ECHILD)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 +
			(now.tv_nsec - t0.tv_nsec) / 1000000 >
		    KH_PROC_END_MS) {
			log_warnx("processes user code started did not all "
				  "end in time");
			return;
		}
		/* SIGCHLD is blocked (kh_main.c): wait for one, briefly. */
		sigtimedwait(&chld, NULL, &ts);
	}
}

void kh_proc_cleanup(struct kh_proc *p)
{
	if (!p->loop)
		return;
	if (p->pid > 0 && !p->exited) {
		killpg(p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		p->exited = true;
	}
	if (p->pid > 0)
		kh_proc_end_all();
	loop_del(p->loop, p->pidw);
	p->pidw = NULL;
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
	kh_proc_close_in(p);
	for (int i = 0; i < KH_NFD; i++) {
		if (i >= KH_FD_STDOUT)
			kh_proc_close_fd(p, (enum kh_fd)i);
		if (p->cfd[i] >= 0)
			close(p->cfd[i]);
		p->cfd[i] = -1;
	}
	loop_del(p->loop, p->epw);
	p->epw = NULL;
	if (p->epfd >= 0)
		close(p->epfd);
	p->epfd = -1;
	loop_timer_disarm(p->loop, &p->kill_timer);
	loop_timer_disarm(p->loop, &p->more_timer);
	dbuf_cleanup(&p->obuf);
}
