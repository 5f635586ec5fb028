/*
 * kres: kernel resource control and process ends (see kres.h).
 *
 * cgroup v2 where the daemon owns a delegated subtree: the unified hierarchy
 * mounted at /sys/fs/cgroup, the daemon's own group from /proc/self/cgroup
 * writable, and the daemon started by systemd (INVOCATION_ID set) so it
 * never rearranges a login session's groups. The "no internal processes"
 * rule means the daemon first moves itself into <group>/daemon; kernels live
 * in <group>/k-<id>. Each controller (memory, cpu, pids) is used where it
 * was delegated; a group without any still finds and kills everything.
 *
 * cgroup v1 pids, where v2 gives no pids controller: kernels get
 * <pids hierarchy><daemon's group>/e2b-ci-<hash of the runtime dir>/k-<id>.
 * Only groups the daemon made are touched (the daemon itself stays where it
 * is), the parent exists only while it holds kernel groups, and the runtime
 * dir names it, so a daemon sweeps only what an earlier daemon of the same
 * runtime dir left (the caller holds that dir's lock).
 *
 * Processes are found through /proc/<pid>/stat. Killing is SIGKILL, round
 * after round, until a round finds no process it had not signalled yet: a
 * process killed while forking cannot complete the fork, so the last forks
 * in flight are caught by the next round. Loop thread, but kres_child runs
 * between fork and exec.
 */
#include "kres.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dbuf.h"
#include "log.h"

#define KRES_KILL_ROUNDS 64
/* Of a process's start-up environment, this much is read for the sweep. */
#define KRES_ENVIRON_MAX (4u << 20)
/* How long kres_release waits for a killed group to empty (the processes
 * must only be scheduled to exit), and kres_sweep at startup. */
#define KRES_RELEASE_WAIT_MS 50
#define KRES_SWEEP_WAIT_MS   1000
/* Under the rlimit, a kernel that died at this share of its limit or more
 * (peak RSS) ran out of memory: a V8 heap that cannot grow aborts the
 * process at ~97 % of RLIMIT_DATA, bash at ~100 %. */
#define KRES_OOM_RSS_PERCENT 75
/* An empty k-* group younger than this (by its mtime: a cgroup dir keeps
 * the time it was made) may be one a kernel is about to join
 * (made by kres_prepare, joined by the child right after the fork, of this
 * daemon or another one sharing the hierarchy): kres_gc leaves it. */
#define KRES_GC_MIN_AGE_S 30

static int kres_write(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;
	size_t n = strlen(text);

	if (fd < 0)
		return -errno;
	if (write(fd, text, n) != (ssize_t)n)
		rc = -errno;
	close(fd);
	return rc;
}

/* dir/f into buf; "" when it does not fit (every use then fails). */
static void kres_path(char *buf, size_t len, const char *dir, const char *f)
{
	if (snprintf(buf, len, "%s/%s", dir, f) >= (int)len)
		buf[0] = '\0';
}

static void kres_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ processes */

struct kres_stat {
	char state;
	pid_t sid;
	unsigned long long start;
};

static int kres_stat(pid_t pid, struct kres_stat *st)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name may hold anything, ')' included: skip to the
	 * last one. Then: state ppid pgrp session ... starttime (field 22). */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1,
			 " %c %*d %*d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u "
			 "%*d %*d %*d %*d %*d %*d %llu",
			 &st->state, &st->sid, &st->start) != 3)
		return -1;
	return 0;
}

unsigned long long kres_start_time(pid_t pid)
{
	struct kres_stat st;

	return kres_stat(pid, &st) == 0 ? st.start : 0;
}

/* The pids signalled so far by one kill. */
struct kres_seen {
	pid_t *v;
	size_t n, cap;
};

static bool kres_seen_has(const struct kres_seen *s, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == pid)
			return true;
	return false;
}

/* Signals pid unless it was already, is a zombie, or is the daemon.
 * Returns 1 when it was new. */
static int kres_kill_one(struct kres_seen *s, pid_t pid)
{
	struct kres_stat st;

	if (pid <= 1 || pid == getpid() || kres_seen_has(s, pid) ||
	    kres_stat(pid, &st) < 0 || st.state == 'Z')
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		pid_t *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return 0;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = pid;
	kill(pid, SIGKILL);
	return 1;
}

/* One round over a cgroup.procs file. Returns new pids signalled. */
static unsigned kres_round_procs(const char *procs, struct kres_seen *s)
{
	FILE *f = fopen(procs, "re");
	unsigned n = 0;
	int pid;

	if (!f)
		return 0;
	while (fscanf(f, "%d", &pid) == 1)
		n += (unsigned)kres_kill_one(s, (pid_t)pid);
	fclose(f);
	return n;
}

typedef bool (*kres_match)(pid_t pid, const struct kres_stat *st,
			   const void *arg);

/* One round over /proc. Returns new pids signalled. */
static unsigned kres_round_scan(kres_match match, const void *arg,
				struct kres_seen *s)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	struct kres_stat st;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 1 || kres_stat((pid_t)pid, &st) < 0 ||
		    st.state == 'Z' || !match((pid_t)pid, &st, arg))
			continue;
		n += (unsigned)kres_kill_one(s, (pid_t)pid);
	}
	closedir(d);
	return n;
}

/* Kills what procs lists (a cgroup.procs) or, if NULL, what match accepts,
 * round after round until a round finds nothing new. Returns the count. */
static unsigned kres_kill_all(const char *procs, kres_match match,
			      const void *arg)
{
	struct kres_seen seen = {0};
	unsigned got;

	for (int round = 0; round < KRES_KILL_ROUNDS; round++) {
		got = procs ? kres_round_procs(procs, &seen)
			    : kres_round_scan(match, arg, &seen);
		if (!got)
			break;
	}
	got = (unsigned)seen.n;
	free(seen.v);
	return got;
}

/* Never the daemon's own session: a kernel always has one of its own. */
static bool kres_in_session(pid_t pid, const struct kres_stat *st,
			    const void *arg)
{
	pid_t sid = *(const pid_t *)arg;

	(void)pid;
	return st->sid == sid && sid > 1 && sid != getsid(0);
}

/* Kills what is in a group: cgroup.kill (v2, atomic against forks), else
 * one process at a time. Returns how many processes it held. */
static unsigned kres_kill_group(const char *dir)
{
	char procs[512], path[512];
	unsigned n = 0;
	FILE *f;
	int pid;

	kres_path(procs, sizeof(procs), dir, "cgroup.procs");
	kres_path(path, sizeof(path), dir, "cgroup.kill");
	if (access(path, F_OK) != 0)
		return kres_kill_all(procs, NULL, NULL);
	f = fopen(procs, "re");
	while (f && fscanf(f, "%d", &pid) == 1)
		n++;
	if (f)
		fclose(f);
	if (n && kres_write(path, "1") < 0)
		return kres_kill_all(procs, NULL, NULL);
	return n;
}

unsigned kres_kill(const struct kres_kernel *kk, pid_t sid)
{
	if (kk->cg[0])
		return kres_kill_group(kk->cg);
	if (kk->pcg[0])
		return kres_kill_group(kk->pcg);
	return kres_kill_all(NULL, kres_in_session, &sid);
}

struct kres_stale {
	pid_t sid;
	unsigned long long start;
	char needle[48]; /* "JPY_PARENT_PID=<daemon>" */
};

/* Whether /proc/<pid>/environ holds the entry needle (read up to 4 MiB:
 * the environment a process was started with). */
static bool kres_environ_has(pid_t pid, const char *needle)
{
	struct dbuf b = DBUF_INIT(KRES_ENVIRON_MAX);
	const char *env;
	char path[64], *w;
	bool found = false;
	size_t want;
	ssize_t n = 1;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	while (n > 0 && dbuf_len(&b) < KRES_ENVIRON_MAX) {
		want = KRES_ENVIRON_MAX - dbuf_len(&b);
		if (want > 65536)
			want = 65536;
		w = dbuf_room(&b, want);
		if (!w)
			break;
		n = read(fd, w, want);
		if (n > 0)
			dbuf_commit(&b, (size_t)n);
	}
	close(fd);
	/* Entries are NUL-terminated (and so is the dbuf, should the cap cut
	 * one): compare each with needle. */
	env = dbuf_ptr(&b);
	for (size_t i = 0; i < dbuf_len(&b) && !found; i += strlen(env + i) + 1)
		found = strcmp(env + i, needle) == 0;
	dbuf_cleanup(&b);
	return found;
}

static bool kres_is_stale(pid_t pid, const struct kres_stat *st,
			  const void *arg)
{
	const struct kres_stale *k = arg;

	return kres_in_session(pid, st, &k->sid) && st->start >= k->start &&
	       kres_environ_has(pid, k->needle);
}

unsigned kres_kill_stale(pid_t pid, unsigned long long start, pid_t daemon)
{
	struct kres_stale k = {pid, start, ""};

	if (pid <= 1 || start == 0 || daemon <= 1)
		return 0;
	snprintf(k.needle, sizeof(k.needle), "JPY_PARENT_PID=%d", (int)daemon);
	return kres_kill_all(NULL, kres_is_stale, &k);
}

/* -------------------------------------------------------------- cgroups */

/* Enables for the kernels' groups each controller the daemon's group was
 * given (its cgroup.controllers), one at a time: a write that names one
 * that is missing fails as a whole. */
static void kres_cgroup_controllers(struct kres *r)
{
	static const char *const names[] = {"memory", "cpu", "pids"};
	bool *flags[] = {&r->cg_memory, &r->cg_cpu, &r->cg_pids};
	char path[600], have[256] = "", plus[16], *tok, *save = NULL;
	FILE *f;

	kres_path(path, sizeof(path), r->cg_dir, "cgroup.controllers");
	f = fopen(path, "re");
	if (f) {
		if (!fgets(have, sizeof(have), f))
			have[0] = '\0';
		fclose(f);
	}
	kres_path(path, sizeof(path), r->cg_dir, "cgroup.subtree_control");
	for (tok = strtok_r(have, " \n", &save); tok;
	     tok = strtok_r(NULL, " \n", &save)) {
		for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
			if (strcmp(tok, names[i]) != 0)
				continue;
			snprintf(plus, sizeof(plus), "+%s", names[i]);
			*flags[i] = kres_write(path, plus) == 0;
		}
	}
}

/* Finds the daemon's cgroup v2 dir and takes it over for kernels. */
static void kres_cgroup_init(struct kres *r)
{
	char line[512], path[600];
	FILE *f;

	r->cg_dir[0] = '\0';
	kres_path(path, sizeof(path), r->cgroot, "cgroup.controllers");
	if (!getenv("INVOCATION_ID") || access(path, R_OK) != 0)
		return;
	f = fopen(r->self_cgroup, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		/* Room is left for "/k-<id>" and the file names below. */
		if (strncmp(line, "0::", 3) == 0 &&
		    snprintf(r->cg_dir, sizeof(r->cg_dir) - 16, "%s%s",
			     r->cgroot,
			     line + 3) >= (int)sizeof(r->cg_dir) - 16)
			r->cg_dir[0] = '\0';
	}
	fclose(f);
	if (!r->cg_dir[0])
		return;
	kres_path(path, sizeof(path), r->cg_dir, "daemon");
	if ((mkdir(path, 0755) < 0 && errno != EEXIST) ||
	    (kres_path(path, sizeof(path), r->cg_dir, "daemon/cgroup.procs"),
	     kres_write(path, "0") < 0)) {
		log_info("cgroups: cannot use %s (%s); kernels get rlimits",
			 r->cg_dir, strerror(errno));
		r->cg_dir[0] = '\0';
		return;
	}
	kres_cgroup_controllers(r);
	log_info("cgroups: kernels get their own groups under %s "
		 "(controllers:%s%s%s)",
		 r->cg_dir, r->cg_memory ? " memory" : "",
		 r->cg_cpu ? " cpu" : "", r->cg_pids ? " pids" : "");
}

/* A short, stable name for this daemon's v1 groups: FNV-1a of the runtime
 * dir, which no two live daemons share (it is locked). */
static uint32_t kres_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (s && *s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

/* Finds a writable cgroup v1 pids hierarchy for kernel groups. */
static void kres_pids1_init(struct kres *r, const char *runtime_dir)
{
	char line[512], path[600], *own = NULL;
	FILE *f;

	r->pids1_dir[0] = '\0';
	kres_path(path, sizeof(path), r->cgroot, "pids/cgroup.procs");
	if (access(path, F_OK) != 0)
		return;
	f = fopen(r->self_cgroup, "re");
	if (!f)
		return;
	/* "N:pids:/path", the controller possibly among others. */
	while (!own && fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':'), *p = c ? strchr(c + 1, ':') : NULL;
		line[strcspn(line, "\n")] = '\0';
		if (!p)
			continue;
		*p = '\0';
		for (char *t = strtok(c + 1, ","); t; t = strtok(NULL, ","))
			if (strcmp(t, "pids") == 0)
				own = p + 1;
	}
	if (own && strlen(own) < 200)
		snprintf(r->pids1_dir, sizeof(r->pids1_dir),
			 "%s/pids%s/e2b-ci-%08x", r->cgroot,
			 strcmp(own, "/") ? own : "", kres_hash(runtime_dir));
	fclose(f);
	if (!r->pids1_dir[0])
		return;
	/* The parent exists only while it holds kernel groups (kres_prepare
	 * makes it); this only checks that the daemon may. */
	if (mkdir(r->pids1_dir, 0755) < 0 && errno != EEXIST) {
		log_debug("cgroups: cannot use %s: %s", r->pids1_dir,
			  strerror(errno));
		r->pids1_dir[0] = '\0';
		return;
	}
	rmdir(r->pids1_dir);
	log_info("cgroups: kernels get their own groups under %s (cgroup v1 "
		 "pids)",
		 r->pids1_dir);
}

int kres_init(struct kres *r, const struct kres_opts *o, char *err,
	      size_t errlen)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->cgroot, sizeof(r->cgroot), "%s",
		 o->cgroot ? o->cgroot : "/sys/fs/cgroup");
	snprintf(r->self_cgroup, sizeof(r->self_cgroup), "%s",
		 o->self_cgroup ? o->self_cgroup : "/proc/self/cgroup");
	r->mem_max = o->mem_max;
	r->cpu_weight = o->cpu_weight;
	r->tasks_max = o->tasks_max;
	if (o->user && *o->user) {
		struct passwd *pw = getpwnam(o->user);
		if (!pw) {
			snprintf(err, errlen, "--kernel-user: no user '%s'",
				 o->user);
			return -1;
		}
		r->as_user = true;
		r->uid = pw->pw_uid;
		r->gid = pw->pw_gid;
		snprintf(r->user, sizeof(r->user), "%s", o->user);
		snprintf(r->home, sizeof(r->home), "%s", pw->pw_dir);
	}
	kres_cgroup_init(r);
	/* v1 pids: for pids.max where v2 has no pids controller, and to find
	 * a kernel's processes where there is no v2 group at all. */
	if (!r->cg_dir[0] || (r->tasks_max > 0 && !r->cg_pids))
		kres_pids1_init(r, o->runtime_dir);
	if (r->tasks_max > 0 && !r->cg_pids && !r->pids1_dir[0])
		log_warnx("--kernel-tasks-max: no pids controller here (cgroup "
			  "v2 delegated, or cgroup v1 pids); not enforced");
	if (r->mem_max > 0 && !r->cg_memory)
		log_info("--kernel-memory-max: no memory controller here; "
			 "RLIMIT_DATA per process instead");
	return 0;
}

static unsigned long long kres_sys_oom_kills(void)
{
	char line[128];
	unsigned long long n = 0;
	FILE *f = fopen("/proc/vmstat", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "oom_kill %llu", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* Removes the empty k-* groups under dir that are older than
 * KRES_GC_MIN_AGE_S (EBUSY leaves populated ones): groups whose rmdir
 * failed at release, or that a dead daemon left. A younger empty group may
 * belong to a kernel between kres_prepare and its child's join, which a
 * removal would fail with ENODEV. */
static void kres_gc(const char *dir)
{
	char path[600];
	struct dirent *e;
	struct stat st;
	time_t now = time(NULL);
	DIR *d;

	if (!dir[0] || !(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || strncmp(e->d_name, "k-", 2) != 0)
			continue;
		kres_path(path, sizeof(path), dir, e->d_name);
		if (stat(path, &st) == 0 &&
		    now - st.st_mtime < KRES_GC_MIN_AGE_S)
			continue;
		rmdir(path);
	}
	closedir(d);
}

static void kres_limit(const char *dir, const char *file, long value)
{
	char path[600], val[32];

	snprintf(val, sizeof(val), "%ld", value);
	kres_path(path, sizeof(path), dir, file);
	if (kres_write(path, val) < 0)
		log_warn("cgroups: %s", path);
}

static void kres_prepare_v2(const struct kres *r, const char *id,
			    struct kres_kernel *kk)
{
	char path[600];

	kres_gc(r->cg_dir);
	snprintf(kk->cg, sizeof(kk->cg), "%s/k-%.8s", r->cg_dir, id);
	if (mkdir(kk->cg, 0755) < 0 && errno != EEXIST) {
		log_warn("cgroups: mkdir %s", kk->cg);
		kk->cg[0] = '\0';
		return;
	}
	if (r->cg_memory) {
		kres_path(path, sizeof(path), kk->cg, "memory.oom.group");
		kres_write(path, "1");
		if (r->mem_max > 0)
			kres_limit(kk->cg, "memory.max", r->mem_max);
	}
	if (r->cg_cpu)
		kres_limit(kk->cg, "cpu.weight", r->cpu_weight);
	if (r->cg_pids && r->tasks_max > 0)
		kres_limit(kk->cg, "pids.max", r->tasks_max);
	kres_path(path, sizeof(path), kk->cg, "cgroup.procs");
	kk->procs_fd = open(path, O_WRONLY | O_CLOEXEC);
}

static void kres_prepare_v1(const struct kres *r, const char *id,
			    struct kres_kernel *kk)
{
	char path[600];

	kres_gc(r->pids1_dir);
	snprintf(kk->pcg, sizeof(kk->pcg), "%s/k-%.8s", r->pids1_dir, id);
	/* The parent goes with its last kernel group, so it is made again;
	 * a daemon starting with another runtime dir may remove it while it
	 * is empty, hence the second try. */
	for (int i = 0;; i++) {
		if ((mkdir(r->pids1_dir, 0755) == 0 || errno == EEXIST) &&
		    (mkdir(kk->pcg, 0755) == 0 || errno == EEXIST))
			break;
		if (i == 1) {
			log_warn("cgroups: mkdir %s", kk->pcg);
			kk->pcg[0] = '\0';
			return;
		}
	}
	if (r->tasks_max > 0 && !r->cg_pids)
		kres_limit(kk->pcg, "pids.max", r->tasks_max);
	kres_path(path, sizeof(path), kk->pcg, "cgroup.procs");
	kk->pprocs_fd = open(path, O_WRONLY | O_CLOEXEC);
}

void kres_prepare(const struct kres *r, const char *id, struct kres_kernel *kk)
{
	kk->cg[0] = kk->pcg[0] = '\0';
	kk->procs_fd = kk->pprocs_fd = -1;
	kk->oom_before = kres_sys_oom_kills();
	kk->mem_rlimit = r->mem_max > 0 && !r->cg_memory ? r->mem_max : 0;
	if (r->cg_dir[0])
		kres_prepare_v2(r, id, kk);
	if (r->pids1_dir[0] &&
	    (!kk->cg[0] || (r->tasks_max > 0 && !r->cg_pids)))
		kres_prepare_v1(r, id, kk);
	/* Without a memory controller in the kernel's own group, the
	 * rlimit it is. */
	if (r->mem_max > 0 && !kk->cg[0])
		kk->mem_rlimit = r->mem_max;
}

int kres_child(const struct kres *r, const struct kres_kernel *kk)
{
	if (kk->procs_fd >= 0 && write(kk->procs_fd, "0", 1) != 1)
		return -errno;
	if (kk->pprocs_fd >= 0 && write(kk->pprocs_fd, "0", 1) != 1)
		return -errno;
	if (kk->mem_rlimit > 0) {
		struct rlimit rl = {(rlim_t)kk->mem_rlimit,
				    (rlim_t)kk->mem_rlimit};
		if (setrlimit(RLIMIT_DATA, &rl) < 0)
			return -errno;
	}
	if (r->as_user) {
		if (setgroups(1, &r->gid) < 0 || setgid(r->gid) < 0 ||
		    setuid(r->uid) < 0)
			return -errno;
	}
	return 0;
}

void kres_after_fork(struct kres_kernel *kk)
{
	if (kk->procs_fd >= 0)
		close(kk->procs_fd);
	if (kk->pprocs_fd >= 0)
		close(kk->pprocs_fd);
	kk->procs_fd = kk->pprocs_fd = -1;
}

bool kres_oom_killed(const struct kres_kernel *kk, int status,
		     const struct rusage *ru)
{
	char path[400], line[128];
	unsigned long long n = 0;
	bool died = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	FILE *f;

	if (kk->cg[0]) {
		kres_path(path, sizeof(path), kk->cg, "memory.events");
		f = fopen(path, "re");
		if (f) {
			while (fgets(line, sizeof(line), f))
				if (sscanf(line, "oom_kill %llu", &n) == 1)
					break;
			fclose(f);
			return n > 0;
		}
	}
	/* No memory group of its own: a SIGKILL while the system's OOM killer
	 * was busy is evidence; under the rlimit, so is a death at a peak RSS
	 * near the limit (V8 aborts when its heap cannot grow). */
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
	    kres_sys_oom_kills() > kk->oom_before)
		return true;
	return kk->mem_rlimit > 0 && ru && died &&
	       (long long)ru->ru_maxrss * 1024 >=
		   (long long)kk->mem_rlimit / 100 * KRES_OOM_RSS_PERCENT;
}

/* rmdir, waiting up to wait_ms for killed processes to leave the group. */
static int kres_rmdir(const char *dir, long wait_ms)
{
	for (long waited = 0;; waited++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || waited >= wait_ms)
			return -errno;
		kres_sleep_ms(1);
	}
}

void kres_release(struct kres_kernel *kk)
{
	kres_after_fork(kk);
	if (kk->cg[0] && kres_rmdir(kk->cg, KRES_RELEASE_WAIT_MS) < 0)
		log_debug("cgroups: %s stays for now: %s", kk->cg,
			  strerror(errno));
	if (kk->pcg[0] && kres_rmdir(kk->pcg, KRES_RELEASE_WAIT_MS) == 0) {
		/* The v1 parent goes with its last kernel group. */
		char *slash = strrchr(kk->pcg, '/');
		*slash = '\0';
		rmdir(kk->pcg);
	}
	kk->cg[0] = kk->pcg[0] = '\0';
}

void kres_describe_mem(const struct kres *r, char *buf, size_t len)
{
	if (r->mem_max <= 0)
		snprintf(buf, len, "the machine's memory");
	else
		snprintf(buf, len, "%ld MiB", r->mem_max >> 20);
}

/* Kills and removes every k-* group under dir; returns processes killed. */
static unsigned kres_sweep_dir(const char *dir)
{
	char path[600];
	struct dirent *e;
	unsigned n = 0;
	DIR *d;

	if (!dir[0] || !(d = opendir(dir)))
		return 0;
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || strncmp(e->d_name, "k-", 2) != 0)
			continue;
		kres_path(path, sizeof(path), dir, e->d_name);
		n += kres_kill_group(path);
		if (kres_rmdir(path, KRES_SWEEP_WAIT_MS) < 0)
			log_warn("cgroups: cannot remove %s", path);
	}
	closedir(d);
	return n;
}

/* Removes the empty groups of other dead daemons next to ours. */
static void kres_sweep_v1_others(const struct kres *r)
{
	char parent[400], path[600];
	struct dirent *e;
	DIR *d;

	snprintf(parent, sizeof(parent), "%s", r->pids1_dir);
	*strrchr(parent, '/') = '\0';
	if (!(d = opendir(parent)))
		return;
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR ||
		    strncmp(e->d_name, "e2b-ci-", 7) != 0)
			continue;
		kres_path(path, sizeof(path), parent, e->d_name);
		if (strcmp(path, r->pids1_dir) == 0)
			continue;
		kres_gc(path);
		rmdir(path);
	}
	closedir(d);
}

unsigned kres_sweep(const struct kres *r)
{
	unsigned n = kres_sweep_dir(r->cg_dir);

	if (r->pids1_dir[0]) {
		n += kres_sweep_dir(r->pids1_dir);
		rmdir(r->pids1_dir);
		kres_sweep_v1_others(r);
	}
	return n;
}
