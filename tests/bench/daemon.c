/*
 * daemon.c: the daemon under test. daemon_spawn starts the e2b-ci binary
 * on loopback and a free port, with its runtime dir, cwd and log in the
 * bench's temp dir, python as the only default language and the pool size
 * given (daemon A keeps the default warm pool, daemon B runs without one);
 * the child gets a parent-death signal and its own process group, and is
 * tracked for cleanup_all. The daemon's log is read for its own "kernel
 * ... starting in" and "ready in N ms" lines, which tell when the pool is
 * full again. libfloor_mem measures tests/bench/libfloor.c, the daemon's
 * libraries alone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &l) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

void daemon_scan_log(struct daemon *d)
{
	char buf[65536];
	int fd = open(d->log, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	while ((n = pread(fd, buf, sizeof(buf) - 1, d->log_off)) > 0) {
		char *line = buf, *nl;

		buf[n] = '\0';
		while ((nl = memchr(line, '\n', (size_t)(buf + n - line)))) {
			char *r;

			*nl = '\0';
			if (strstr(line, " kernel ") &&
			    strstr(line, " starting in "))
				d->n_starting++;
			if (strstr(line, " kernel ") &&
			    (r = strstr(line, ") ready in "))) {
				d->n_ready++;
				d->last_ready_ms = atof(r + 11);
			}
			line = nl + 1;
		}
		if (line == buf) /* one line longer than buf: skip it */
			line = buf + n;
		d->log_off += line - buf;
	}
	close(fd);
}

static void daemon_log_tail(const struct daemon *d)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "tail -n 15 '%s' >&2", d->log);
	if (system(cmd) < 0)
		say("cannot show %s", d->log);
}

static bool daemon_alive(struct daemon *d)
{
	int st;

	if (d->pid <= 0)
		return false;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		child_forget(CHILD_DAEMON, d->pid);
		say("daemon %s (pid %d) exited unexpectedly (status %d)",
		    d->tag, (int)d->pid, st);
		daemon_log_tail(d);
		d->pid = 0;
		return false;
	}
	return true;
}

/* In the child: the signal state of a fresh process, its own process
 * group (Ctrl-C reaches the bench, which stops the daemon in order), a
 * parent-death signal, the log as stdout and stderr; then the daemon. */
static void daemon_exec(const char *bin, char *const argv[], int log_fd,
			pid_t parent)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	alarm(0);
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
	dup2(log_fd, 1);
	dup2(log_fd, 2);
	execv(bin, argv);
	_exit(127);
}

void daemon_spawn(struct daemon *d, const char *bin, const char *tag,
		  const char *pool)
{
	char port[16], rt[200], cwd[200], poolopt[64], url[64];
	char *argv[] = {(char *)bin,
			"--listen",
			"127.0.0.1",
			"--port",
			port,
			"--cwd",
			cwd,
			"--runtime-dir",
			rt,
			"--default-languages",
			"python",
			"--pool",
			poolopt,
			"--envd-url",
			"http://127.0.0.1:1",
			"--log-level",
			"info",
			NULL};
	pid_t parent = getpid();
	struct stat st;
	int fd;

	memset(d, 0, sizeof(*d));
	d->tag = tag;
	d->port = free_port();
	if (d->port <= 0)
		die("no free loopback port");
	snprintf(port, sizeof(port), "%d", d->port);
	snprintf(rt, sizeof(rt), "%s/rt-%s", bench_tmp, tag);
	snprintf(cwd, sizeof(cwd), "%s/cwd", bench_tmp);
	snprintf(poolopt, sizeof(poolopt), "%s", pool);
	snprintf(d->log, sizeof(d->log), "%s/daemon-%s.log", bench_tmp, tag);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", d->port);
	if (hc_target(&d->tg, "e2b-ci", url) < 0)
		die("bad daemon address");
	fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		die("cannot create %s: %s", d->log, strerror(errno));
	d->log_off = fstat(fd, &st) == 0 ? st.st_size : 0;
	d->t_spawn = now_ns();
	d->pid = fork();
	if (d->pid < 0)
		die("fork: %s", strerror(errno));
	if (d->pid == 0)
		daemon_exec(bin, argv, fd, parent);
	close(fd);
	child_track(CHILD_DAEMON, d->pid);
}

double daemon_wait_healthy(struct daemon *d)
{
	struct hc h;
	uint64_t deadline = d->t_spawn + (uint64_t)START_TIMEOUT_MS * 1000000u;
	double ms = -1;

	hc_init(&h, &d->tg);
	while (now_ns() < deadline) {
		int st = hc_do(&h, "GET", "/health", NULL, false, 1000);
		if (st == 200) {
			ms = ns_ms(h.t_done - d->t_spawn);
			break;
		}
		if (!daemon_alive(d))
			die("daemon %s died during start", d->tag);
		sleep_ms(st < 0 ? 2 : 1);
	}
	hc_free(&h);
	if (ms < 0) {
		daemon_log_tail(d);
		die("daemon %s not healthy within %d ms", d->tag,
		    START_TIMEOUT_MS);
	}
	return ms;
}

#define QUIET_MS 150

int daemon_wait_quiet(struct daemon *d, long timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;

	uint64_t changed = now_ns();
	int seen = -1;

	/* Quiet: every kernel started is ready, and no new one started for
	 * QUIET_MS (the pool starts a taken spare's successor on the loop's
	 * next turn: its start line may come after the others' ready). */
	while (now_ns() < deadline) {
		daemon_scan_log(d);
		if (d->n_starting != seen) {
			seen = d->n_starting;
			changed = now_ns();
		}
		if (d->n_starting > 0 && d->n_ready >= d->n_starting &&
		    now_ns() - changed >= QUIET_MS * 1000000u)
			return 0;
		if (!daemon_alive(d))
			die("daemon %s died", d->tag);
		sleep_ms(5);
	}
	say("daemon %s: kernels still starting after %ld ms (%d started, "
	    "%d ready)",
	    d->tag, timeout_ms, d->n_starting, d->n_ready);
	return -1;
}

void daemon_stop(struct daemon *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGTERM);
	for (int i = 0; i < 1000; i++) { /* 10 s */
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid)
			goto done;
		sleep_ms(10);
	}
	say("daemon %s did not stop within 10 s; killing it", d->tag);
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
done:
	child_forget(CHILD_DAEMON, d->pid);
	d->pid = 0;
}

struct mem libfloor_mem(const char *path)
{
	struct mem m = {NAN, NAN, NAN, NAN};
	char line[64] = "";
	int fd[2];
	pid_t pid;
	FILE *f;

	if (!path || pipe(fd) < 0)
		return m;
	pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		return m;
	}
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	f = fdopen(fd[0], "r");
	if (f && fgets(line, sizeof(line), f) &&
	    strncmp(line, "ready", 5) == 0) {
		sleep_ms(300);
		m = mem_of(pid);
	} else {
		say("libfloor %s did not start", path);
	}
	if (f)
		fclose(f);
	else
		close(fd[0]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return m;
}
