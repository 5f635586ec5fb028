/*
 * test_kres: the OOM verdict and the rlimit fallback of kres.c, without
 * needing a delegated cgroup v2 subtree (not available on every machine):
 * a kernel's group is a directory holding memory.events.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kres.h"
#include "testhelp.h"

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void test_oom_from_memory_events(void)
{
	char dir[] = "/tmp/e2bci-kres-XXXXXX", path[300];
	struct kres_kernel kk = {.procs_fd = -1};

	REQUIRE(mkdtemp(dir));
	snprintf(kk.cg, sizeof(kk.cg), "%s", dir);
	snprintf(path, sizeof(path), "%s/memory.events", dir);
	write_file(path, "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n");
	CHECK(kres_oom_killed(&kk, SIGKILL));
	write_file(path, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
	CHECK(!kres_oom_killed(&kk, SIGKILL));
	unlink(path);
	kres_release(&kk); /* removes the (now empty) group dir */
	CHECK(access(dir, F_OK) != 0);
}

static void test_exit_without_group_is_not_oom(void)
{
	struct kres_kernel kk = {.procs_fd = -1};

	/* A normal exit, and a SIGKILL while no OOM kill happened. */
	kk.oom_before = ~0ULL >> 1;
	CHECK(!kres_oom_killed(&kk, 1 << 8));
	CHECK(!kres_oom_killed(&kk, SIGKILL));
}

static void test_rlimit_fallback_in_child(void)
{
	struct kres r;
	struct kres_kernel kk;
	char err[128];
	int status;
	pid_t pid;

	unsetenv("INVOCATION_ID"); /* never touch this machine's cgroups */
	REQUIRE(kres_init(&r, 256L << 20, 50, "", err, sizeof(err)) == 0);
	CHECK(r.cg_dir[0] == '\0');
	kres_prepare(&r, "0123456789abcdef", &kk);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct rlimit rl;
		if (kres_child(&r, &kk) < 0 || getrlimit(RLIMIT_AS, &rl) < 0)
			_exit(2);
		if (rl.rlim_cur != (rlim_t)256 << 20)
			_exit(3);
#if defined(__SANITIZE_ADDRESS__)
		/* ASan's allocator cannot live under the limit at all. */
		_exit(0);
#else
		/* 512 MiB cannot be had under a 256 MiB address space. */
		_exit(malloc(512L << 20) ? 4 : 0);
#endif
	}
	kres_after_fork(&kk);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	kres_release(&kk);
}

static void test_unknown_kernel_user_is_refused(void)
{
	struct kres r;
	char err[128] = "";

	CHECK(kres_init(&r, 0, 50, "no-such-user-e2bci", err, sizeof(err)) < 0);
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
	TEST(test_rlimit_fallback_in_child);
	TEST(test_unknown_kernel_user_is_refused);
	TEST(test_describe);
	return test_report();
}
