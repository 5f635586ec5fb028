/*
 * util.c: what every part of the bench leans on. Clocks, messages to
 * stderr, samples and their percentiles, memory read from /proc, and the
 * registry of child processes (daemons, floor kernels) with the one cleanup
 * that kills them and removes the temp dir on every exit path: normal end,
 * die() (through atexit), SIGINT/SIGTERM/SIGHUP and the overall alarm.
 * cleanup_all runs inside a signal handler, so it uses async-signal-safe
 * calls only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* ---------------------------------------------------------------- basics */

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double ns_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("bench: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1); /* atexit: cleanup_all */
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		die("out of memory");
	return q;
}

/* --------------------------------------------------------------- samples */

void sm_add(struct samples *s, double x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double sm_pct(struct samples *s, double q)
{
	double pos;
	size_t i;

	if (s->n == 0)
		return NAN;
	qsort(s->v, s->n, sizeof(*s->v), cmp_double);
	pos = q * (double)(s->n - 1);
	i = (size_t)pos;
	if (i + 1 >= s->n)
		return s->v[s->n - 1];
	return s->v[i] + (pos - (double)i) * (s->v[i + 1] - s->v[i]);
}

void sm_free(struct samples *s)
{
	free(s->v);
	*s = (struct samples){0};
}

json_t *sm_json(struct samples *s)
{
	if (s->n == 0)
		return json_null();
	return json_pack("{s:I,s:f,s:f,s:f,s:f}", "n", (json_int_t)s->n, "min",
			 sm_pct(s, 0), "p50", sm_pct(s, 0.5), "p99",
			 sm_pct(s, 0.99), "max", sm_pct(s, 1));
}

/* ---------------------------------------------------------------- memory */

struct mem mem_of(pid_t pid)
{
	struct mem m = {NAN, NAN, NAN, NAN};
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return m;
	while (fgets(line, sizeof(line), f)) {
		double v = atof(line + strcspn(line, ":") + 1) / 1024.0;
		if (strncmp(line, "VmRSS:", 6) == 0)
			m.rss = v;
		else if (strncmp(line, "RssAnon:", 8) == 0)
			m.anon = v;
		else if (strncmp(line, "RssFile:", 8) == 0)
			m.file = v;
		else if (strncmp(line, "VmHWM:", 6) == 0)
			m.hwm = v;
	}
	fclose(f);
	return m;
}

json_t *mem_json(const struct mem *m)
{
	return json_pack(
	    "{s:o,s:o,s:o,s:o}", "VmRSS_MiB",
	    isnan(m->rss) ? json_null() : json_real(m->rss), "RssAnon_MiB",
	    isnan(m->anon) ? json_null() : json_real(m->anon), "RssFile_MiB",
	    isnan(m->file) ? json_null() : json_real(m->file), "VmHWM_MiB",
	    isnan(m->hwm) ? json_null() : json_real(m->hwm));
}

struct pp {
	pid_t pid, ppid;
};

/* Every process's pid and parent, one snapshot of /proc; the count goes
 * to n. New array (free it). */
static struct pp *proc_parents(size_t *n)
{
	struct pp *v = NULL;
	size_t cap = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;

	*n = 0;
	if (!d)
		return NULL;
	while ((e = readdir(d))) {
		char path[300], buf[512], *rp;
		int fd, ppid;
		ssize_t r;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = '\0';
		rp = strrchr(buf, ')'); /* comm may hold spaces and parens */
		if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 256;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[(*n)++] = (struct pp){(pid_t)atoi(e->d_name), (pid_t)ppid};
	}
	closedir(d);
	return v;
}

double tree_rss(pid_t root, int *nprocs)
{
	size_t n, nt = 0;
	struct pp *v = proc_parents(&n);
	pid_t *tree = xrealloc(NULL, (n + 1) * sizeof(*tree));
	double sum = 0;

	*nprocs = 0;
	tree[nt++] = root;
	for (size_t i = 0; i < nt; i++) /* breadth first */
		for (size_t j = 0; j < n; j++)
			if (v[j].ppid == tree[i] && v[j].pid != root)
				tree[nt++] = v[j].pid;
	for (size_t i = 0; i < nt; i++) {
		struct mem m = mem_of(tree[i]);
		if (isnan(m.rss))
			continue; /* gone meanwhile */
		sum += m.rss;
		(*nprocs)++;
	}
	free(tree);
	free(v);
	return *nprocs ? sum : NAN;
}

/* ------------------------------------------------- cleanup on every path */

char bench_tmp[128];
static pid_t g_daemon_pid[MAX_DAEMONS];
static pid_t g_kernel_pid[MAX_FLOOR];
static volatile sig_atomic_t g_cleaned;

static void kill_kernels(void)
{
	for (int i = 0; i < MAX_FLOOR; i++) {
		if (g_kernel_pid[i] > 0) {
			killpg(g_kernel_pid[i], SIGKILL);
			kill(g_kernel_pid[i], SIGKILL);
			waitpid(g_kernel_pid[i], NULL, 0);
			g_kernel_pid[i] = 0;
		}
	}
}

/* SIGTERM, 3 s for a clean shutdown, then SIGKILL. */
static void stop_daemons(void)
{
	struct timespec ts = {0, 10 * 1000000L};

	for (int i = 0; i < MAX_DAEMONS; i++)
		if (g_daemon_pid[i] > 0)
			kill(g_daemon_pid[i], SIGTERM);
	for (int t = 0; t < 300; t++) {
		bool left = false;
		for (int i = 0; i < MAX_DAEMONS; i++) {
			if (g_daemon_pid[i] <= 0)
				continue;
			if (waitpid(g_daemon_pid[i], NULL, WNOHANG) != 0)
				g_daemon_pid[i] = 0;
			else
				left = true;
		}
		if (!left)
			break;
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < MAX_DAEMONS; i++) {
		if (g_daemon_pid[i] > 0) {
			kill(g_daemon_pid[i], SIGKILL);
			waitpid(g_daemon_pid[i], NULL, 0);
			g_daemon_pid[i] = 0;
		}
	}
}

/* Async-signal-safe: kill, waitpid, nanosleep, fork, execv, _exit only. */
void cleanup_all(void)
{
	if (g_cleaned)
		return;
	g_cleaned = 1;
	kill_kernels();
	stop_daemons();
	if (bench_tmp[0]) {
		pid_t p = fork();
		if (p == 0) {
			execl("/bin/rm", "rm", "-rf", bench_tmp, (char *)NULL);
			_exit(127);
		}
		if (p > 0)
			waitpid(p, NULL, 0);
		bench_tmp[0] = '\0';
	}
}

void on_fatal_signal(int sig)
{
	static const char msg[] = "\nbench: interrupted; stopping daemons and "
				  "kernels\n";

	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing to do */
	}
	cleanup_all();
	_exit(128 + sig);
}

static void track_pid(pid_t *tab, int n, pid_t pid, bool add)
{
	for (int i = 0; i < n; i++) {
		if (add ? tab[i] == 0 : tab[i] == pid) {
			tab[i] = add ? pid : 0;
			return;
		}
	}
	if (add)
		die("too many child processes");
}

void child_track(enum child_kind kind, pid_t pid)
{
	if (kind == CHILD_DAEMON)
		track_pid(g_daemon_pid, MAX_DAEMONS, pid, true);
	else
		track_pid(g_kernel_pid, MAX_FLOOR, pid, true);
}

void child_forget(enum child_kind kind, pid_t pid)
{
	if (kind == CHILD_DAEMON)
		track_pid(g_daemon_pid, MAX_DAEMONS, pid, false);
	else
		track_pid(g_kernel_pid, MAX_FLOOR, pid, false);
}
