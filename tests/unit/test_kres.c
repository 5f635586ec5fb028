/*
 * test_kres: kres.c without touching this machine's cgroups: the cgroup
 * trees are fakes under /tmp (directories holding the files a cgroup would
 * have; kres_init takes their root and a fake /proc/self/cgroup), while
 * rlimits, sessions and killing work on real child processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kres.h"
#include "testhelp.h"

#define ID "0123456789abcdef" /* kernel groups are named k-01234567 */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;

	buf[n] = '\0';
	if (f)
		fclose(f);
}

static void rm_rf(const char *dir)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "  (could not remove %s)\n", dir);
}

/* dir/a/b... made with parents; returns its path in buf. */
static const char *mk(char *buf, size_t len, const char *root, const char *sub)
{
	char cmd[600];

	snprintf(buf, len, "%s/%s", root, sub);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", buf);
	if (system(cmd) != 0)
		buf[0] = '\0';
	return buf;
}

/* A child that sleeps until killed; its pid. */
static pid_t sleeper(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static bool killed_by(pid_t pid, int sig)
{
	int status;

	return waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) &&
	       WTERMSIG(status) == sig;
}

/* Whether pid is gone or a zombie (an orphan init has not reaped yet). */
static bool ends_now(pid_t pid)
{
	char path[64], buf[512] = "", *c;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	read_file(path, buf, sizeof(buf));
	c = strrchr(buf, ')');
	return !c || c[2] == 'Z';
}

/* ends_now within 5 s: a SIGKILLed process must still be scheduled. */
static bool ends(pid_t pid)
{
	for (int i = 0; i < 500; i++) {
		if (ends_now(pid))
			return true;
		usleep(10000);
	}
	return false;
}

/* kres_init on a fake tree (an empty one: no cgroups at all). */
static int init_fake(struct kres *r, const char *root, const char *self,
		     long mem, long tasks)
{
	char path[300], err[128];
	struct kres_opts o = {mem,  50,	 tasks, "", "/run/e2b-ci-test",
			      root, path};

	snprintf(path, sizeof(path), "%s/self-cgroup", root);
	write_file(path, self);
	return kres_init(r, &o, err, sizeof(err));
}

static void test_oom_from_memory_events(void)
{
	char dir[] = "/tmp/e2bci-kres-XXXXXX", path[300];
	struct kres_kernel kk = {.procs_fd = -1, .pprocs_fd = -1};

	REQUIRE(mkdtemp(dir));
	snprintf(kk.cg, sizeof(kk.cg), "%s", dir);
	snprintf(path, sizeof(path), "%s/memory.events", dir);
	write_file(path, "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n");
	CHECK(kres_oom_killed(&kk, SIGKILL, NULL));
	write_file(path, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
	CHECK(!kres_oom_killed(&kk, SIGKILL, NULL));
	unlink(path);
	kres_release(&kk); /* removes the (now empty) group dir */
	CHECK(access(dir, F_OK) != 0);
}

static void test_exit_without_group_is_not_oom(void)
{
	struct kres_kernel kk = {.procs_fd = -1, .pprocs_fd = -1};

	/* A normal exit, and a SIGKILL while no OOM kill happened. */
	kk.oom_before = ~0ULL >> 1;
	CHECK(!kres_oom_killed(&kk, 1 << 8, NULL));
	CHECK(!kres_oom_killed(&kk, SIGKILL, NULL));
}

/* Under the rlimit, a kernel that died at a peak RSS near its limit ran
 * out of memory (V8 aborts when its heap cannot grow); one that exited
 * cleanly, or died far below it, did not. */
static void test_oom_from_peak_rss_under_the_rlimit(void)
{
	struct kres_kernel kk = {.procs_fd = -1, .pprocs_fd = -1};
	struct rusage near = {.ru_maxrss = 290 * 1024}; /* KiB */
	struct rusage low = {.ru_maxrss = 60 * 1024};

	kk.oom_before = ~0ULL >> 1;
	kk.mem_rlimit = 300L << 20;
	CHECK(kres_oom_killed(&kk, SIGABRT, &near));	    /* node's abort */
	CHECK(kres_oom_killed(&kk, (128 + 6) << 8, &near)); /* our host */
	CHECK(!kres_oom_killed(&kk, 0, &near));
	CHECK(!kres_oom_killed(&kk, SIGSEGV, &low));
	CHECK(!kres_oom_killed(&kk, SIGABRT, NULL));
	kk.mem_rlimit = 0;
	CHECK(!kres_oom_killed(&kk, SIGABRT, &near));
}

static void test_rlimit_data_fallback_in_child(void)
{
	char root[] = "/tmp/e2bci-kres-XXXXXX";
	struct kres r;
	struct kres_kernel kk;
	int status;
	pid_t pid;

	REQUIRE(mkdtemp(root));
	unsetenv("INVOCATION_ID");
	REQUIRE(init_fake(&r, root, "0::/\n", 256L << 20, 0) == 0);
	CHECK(r.cg_dir[0] == '\0' && r.pids1_dir[0] == '\0');
	kres_prepare(&r, ID, &kk);
	CHECK(kk.mem_rlimit == 256L << 20);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct rlimit rl;
		if (kres_child(&r, &kk) < 0 || getrlimit(RLIMIT_DATA, &rl) < 0)
			_exit(2);
		if (rl.rlim_cur != (rlim_t)256 << 20)
			_exit(3);
		/* What V8 and the JVM do: reserve far more than the limit
		 * without access, which RLIMIT_AS refused. */
		if (mmap(NULL, 4UL << 30, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			 0) == MAP_FAILED)
			_exit(4);
		/* Writable private memory beyond the limit is refused. */
		if (mmap(NULL, 512UL << 20, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED)
			_exit(5);
		_exit(0);
	}
	kres_after_fork(&kk);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	kres_release(&kk);
	rm_rf(root);
}

/* cgroup v1 pids (a hybrid host): a group per kernel under a parent named
 * after the runtime dir, pids.max, the child joins, kill by listing. */
static void test_v1_pids_groups(void)
{
	char root[] = "/tmp/e2bci-kres-XXXXXX", path[600], grp[460], buf[64];
	struct kres r;
	struct kres_kernel kk;
	int status;
	pid_t pid;

	REQUIRE(mkdtemp(root));
	unsetenv("INVOCATION_ID");
	mk(path, sizeof(path), root, "pids/sys/svc");
	snprintf(path, sizeof(path), "%s/pids/cgroup.procs", root);
	write_file(path, "");
	REQUIRE(init_fake(&r, root, "9:pids:/sys/svc\n3:memory:/m\n0::/\n", 0,
			  100) == 0);
	CHECK(r.cg_dir[0] == '\0');
	REQUIRE(r.pids1_dir[0] != '\0');
	CHECK(strstr(r.pids1_dir, "/pids/sys/svc/e2b-ci-") != NULL);
	/* The parent exists only while it holds kernel groups. */
	CHECK(access(r.pids1_dir, F_OK) != 0);
	/* The files a real group would have. */
	snprintf(grp, sizeof(grp), "%s/k-01234567", r.pids1_dir);
	mk(path, sizeof(path), grp, "");
	snprintf(path, sizeof(path), "%s/pids.max", grp);
	write_file(path, "max");
	snprintf(path, sizeof(path), "%s/cgroup.procs", grp);
	write_file(path, "");
	kres_prepare(&r, ID, &kk);
	CHECK_STR(kk.pcg, grp);
	CHECK(kk.cg[0] == '\0' && kk.pprocs_fd >= 0 && kk.mem_rlimit == 0);
	snprintf(path, sizeof(path), "%s/pids.max", grp);
	read_file(path, buf, sizeof(buf));
	CHECK_STR(buf, "100");
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		_exit(kres_child(&r, &kk) == 0 ? 0 : 1);
	kres_after_fork(&kk);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(path, sizeof(path), "%s/cgroup.procs", grp);
	read_file(path, buf, sizeof(buf));
	CHECK_STR(buf, "0"); /* "0" joins the writer */
	/* Killing a group kills what it lists (no cgroup.kill in v1). */
	pid = sleeper();
	snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	write_file(path, buf);
	CHECK(kres_kill(&kk, 0) == 1);
	CHECK(killed_by(pid, SIGKILL));
	rm_rf(root);
}

/* A delegated cgroup v2 subtree: the daemon moves into <group>/daemon, the
 * controllers it was given are enabled one by one, limits are written. */
static void test_v2_groups(void)
{
	char root[] = "/tmp/e2bci-kres-XXXXXX", path[600], grp[460], buf[64];
	static const char *const files[] = {"memory.max", "memory.oom.group",
					    "pids.max", "cgroup.procs",
					    "cgroup.kill"};
	struct kres r;
	struct kres_kernel kk;

	REQUIRE(mkdtemp(root));
	setenv("INVOCATION_ID", "test", 1);
	snprintf(path, sizeof(path), "%s/cgroup.controllers", root);
	write_file(path, "cpu memory pids\n");
	mk(path, sizeof(path), root, "svc/daemon");
	snprintf(path, sizeof(path), "%s/svc/daemon/cgroup.procs", root);
	write_file(path, "");
	snprintf(path, sizeof(path), "%s/svc/cgroup.controllers", root);
	write_file(path, "memory pids\n"); /* cpu not delegated */
	snprintf(path, sizeof(path), "%s/svc/cgroup.subtree_control", root);
	write_file(path, "");
	snprintf(grp, sizeof(grp), "%s/svc/k-01234567", root);
	mk(path, sizeof(path), grp, "");
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		snprintf(path, sizeof(path), "%s/%s", grp, files[i]);
		write_file(path, "");
	}
	REQUIRE(init_fake(&r, root, "0::/svc\n", 300L << 20, 64) == 0);
	unsetenv("INVOCATION_ID");
	snprintf(path, sizeof(path), "%s/svc", root);
	CHECK_STR(r.cg_dir, path);
	CHECK(r.cg_memory && r.cg_pids && !r.cg_cpu);
	CHECK(r.pids1_dir[0] == '\0'); /* v2 has pids: no v1 group */
	snprintf(path, sizeof(path), "%s/svc/daemon/cgroup.procs", root);
	read_file(path, buf, sizeof(buf));
	CHECK_STR(buf, "0");
	kres_prepare(&r, ID, &kk);
	CHECK_STR(kk.cg, grp);
	CHECK(kk.procs_fd >= 0 && kk.mem_rlimit == 0 && kk.pcg[0] == '\0');
	snprintf(path, sizeof(path), "%s/memory.max", grp);
	read_file(path, buf, sizeof(buf));
	CHECK_STR(buf, "314572800");
	snprintf(path, sizeof(path), "%s/pids.max", grp);
	read_file(path, buf, sizeof(buf));
	CHECK_STR(buf, "64");
	/* A populated group is ended by cgroup.kill. */
	snprintf(path, sizeof(path), "%s/cgroup.procs", grp);
	write_file(path, "4242\n");
	CHECK(kres_kill(&kk, 0) == 1);
	snprintf(path, sizeof(path), "%s/cgroup.kill", grp);
	read_file(path, buf, sizeof(buf));
	CHECK_STR(buf, "1");
	kres_after_fork(&kk);
	rm_rf(root);
}

/* kres_prepare removes empty k-* groups left behind, but not one a kernel
 * may be about to join: kernel A's group, made a moment ago and still
 * empty (its child has not written cgroup.procs yet), outlives kernel B's
 * prepare; an empty group an hour old goes. */
static void test_young_empty_group_is_kept(void)
{
	char root[] = "/tmp/e2bci-kres-XXXXXX", path[600], old[600];
	struct timespec ts[2] = {{0, 0}, {0, 0}};
	struct kres r;
	struct kres_kernel a, b;
	struct stat st;

	REQUIRE(mkdtemp(root));
	setenv("INVOCATION_ID", "test", 1);
	snprintf(path, sizeof(path), "%s/cgroup.controllers", root);
	write_file(path, "memory pids\n");
	mk(path, sizeof(path), root, "svc/daemon");
	snprintf(path, sizeof(path), "%s/svc/daemon/cgroup.procs", root);
	write_file(path, "");
	snprintf(path, sizeof(path), "%s/svc/cgroup.controllers", root);
	write_file(path, "memory pids\n");
	snprintf(path, sizeof(path), "%s/svc/cgroup.subtree_control", root);
	write_file(path, "");
	REQUIRE(init_fake(&r, root, "0::/svc\n", 0, 0) == 0);
	unsetenv("INVOCATION_ID");
	snprintf(old, sizeof(old), "%s/svc/k-0ld0ld00", root);
	REQUIRE(mkdir(old, 0755) == 0);
	ts[0].tv_sec = ts[1].tv_sec = time(NULL) - 3600;
	REQUIRE(utimensat(AT_FDCWD, old, ts, 0) == 0);
	kres_prepare(&r, "aaaaaaaa-0000", &a);
	CHECK(a.cg[0] != '\0');
	kres_prepare(&r, "bbbbbbbb-0000", &b);
	CHECK(stat(a.cg, &st) == 0); /* A's group is still there */
	CHECK(stat(b.cg, &st) == 0);
	CHECK(stat(old, &st) < 0 && errno == ENOENT);
	kres_after_fork(&a);
	kres_after_fork(&b);
	rm_rf(root);
}

/* Reports "tag pid" on fd once set up, then sleeps until killed. */
static void report_and_sleep(int fd, int tag)
{
	int v[2] = {tag, (int)getpid()};

	if (write(fd, v, sizeof(v)) != sizeof(v))
		_exit(1);
	for (;;)
		pause();
}

/* Without a group: the kernel's session (not only its process group), but
 * never what left it with setsid (the documented limit). */
static void test_session_kill_without_group(void)
{
	int p[2], v[2];
	pid_t leader, got[3] = {0, 0, 0};
	struct kres_kernel kk = {.procs_fd = -1, .pprocs_fd = -1};

	REQUIRE(pipe(p) == 0);
	leader = fork();
	REQUIRE(leader >= 0);
	if (leader == 0) {
		setsid();
		if (fork() == 0) /* same group */
			report_and_sleep(p[1], 0);
		if (fork() == 0) { /* a group of its own */
			setpgid(0, 0);
			report_and_sleep(p[1], 1);
		}
		if (fork() == 0) { /* a session of its own */
			setsid();
			report_and_sleep(p[1], 2);
		}
		for (;;)
			pause();
	}
	close(p[1]);
	for (int i = 0; i < 3; i++) {
		REQUIRE(read(p[0], v, sizeof(v)) == sizeof(v));
		got[v[0]] = (pid_t)v[1];
	}
	close(p[0]);
	/* The leader, its same-group and own-group children: 3. */
	CHECK(kres_kill(&kk, leader) == 3);
	CHECK(killed_by(leader, SIGKILL));
	CHECK(ends(got[0]));
	CHECK(ends(got[1]));
	/* The one in a session of its own is still running. */
	CHECK(!ends_now(got[2]));
	kill(got[2], SIGKILL);
}

/* A dead daemon's kernel: only processes of its session, started no
 * earlier, with the daemon's JPY_PARENT_PID, are killed. */
static void test_kill_stale(void)
{
	char *env_ok[] = {"JPY_PARENT_PID=424242", NULL};
	char *env_other[] = {"JPY_PARENT_PID=1234", NULL};
	int p[2];
	pid_t leader, other;
	unsigned long long start;

	REQUIRE(pipe(p) == 0);
	leader = fork();
	REQUIRE(leader >= 0);
	if (leader == 0) {
		setsid();
		if ((other = fork()) == 0) {
			execle("/bin/sleep", "sleep", "60", (char *)NULL,
			       env_other);
			_exit(1);
		}
		if (write(p[1], &other, sizeof(other)) != sizeof(other))
			_exit(1);
		close(p[1]);
		execle("/bin/sleep", "sleep", "60", (char *)NULL, env_ok);
		_exit(1);
	}
	close(p[1]);
	REQUIRE(read(p[0], &other, sizeof(other)) == sizeof(other));
	close(p[0]);
	/* Wait for the exec (the environment is the new one after it). */
	for (int i = 0; i < 500; i++) {
		char path[64], cmd[64] = "";
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)leader);
		read_file(path, cmd, sizeof(cmd));
		if (strcmp(cmd, "sleep") == 0)
			break;
		usleep(10000);
	}
	start = kres_start_time(leader);
	REQUIRE(start > 0);
	CHECK(kres_kill_stale(leader, start, 999999) == 0); /* other daemon */
	CHECK(kres_kill_stale(leader, start + 1000000, 424242) ==
	      0); /* later */
	CHECK(kres_kill_stale(leader, start, 424242) == 1);
	CHECK(killed_by(leader, SIGKILL));
	/* The process without the daemon's mark survives. */
	CHECK(kill(other, 0) == 0);
	kill(other, SIGKILL);
}

/* At startup: kernel groups left under this daemon's v1 parent are killed
 * (here: a live child listed in one). */
static void test_sweep_kills_stale_groups(void)
{
	char root[] = "/tmp/e2bci-kres-XXXXXX", path[600], grp[460], buf[32];
	struct kres r;
	pid_t pid;

	REQUIRE(mkdtemp(root));
	unsetenv("INVOCATION_ID");
	mk(path, sizeof(path), root, "pids");
	snprintf(path, sizeof(path), "%s/pids/cgroup.procs", root);
	write_file(path, "");
	REQUIRE(init_fake(&r, root, "9:pids:/\n", 0, 0) == 0);
	REQUIRE(r.pids1_dir[0] != '\0');
	snprintf(grp, sizeof(grp), "%s/k-deadbeef", r.pids1_dir);
	mk(path, sizeof(path), grp, "");
	pid = sleeper();
	snprintf(path, sizeof(path), "%s/cgroup.procs", grp);
	snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	write_file(path, buf);
	CHECK(kres_sweep(&r) == 1);
	CHECK(killed_by(pid, SIGKILL));
	rm_rf(root);
}

static void test_unknown_kernel_user_is_refused(void)
{
	struct kres r;
	struct kres_opts o = {0,
			      50,
			      0,
			      "no-such-user-e2bci",
			      "/x",
			      "/nonexistent",
			      "/nonexistent"};
	char err[128] = "";

	CHECK(kres_init(&r, &o, err, sizeof(err)) < 0);
	CHECK(strstr(err, "no-such-user-e2bci") != NULL);
}

static void test_describe(void)
{
	struct kres r = {.mem_max = 512L << 20};
	char buf[64];

	kres_describe_mem(&r, buf, sizeof(buf));
	CHECK_STR(buf, "512 MiB");
}

int main(void)
{
	TEST(test_oom_from_memory_events);
	TEST(test_exit_without_group_is_not_oom);
	TEST(test_oom_from_peak_rss_under_the_rlimit);
	TEST(test_rlimit_data_fallback_in_child);
	TEST(test_v1_pids_groups);
	TEST(test_v2_groups);
	TEST(test_young_empty_group_is_kept);
	TEST(test_session_kill_without_group);
	TEST(test_kill_stale);
	TEST(test_sweep_kills_stale_groups);
	TEST(test_unknown_kernel_user_is_refused);
	TEST(test_describe);
	return test_report();
}
