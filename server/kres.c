/*
 * kres: kernel resource control (see kres.h).
 *
 * cgroup v2 only, and only where the daemon owns a delegated subtree: the
 * unified hierarchy mounted at /sys/fs/cgroup, the daemon's own group from
 * /proc/self/cgroup writable, and the daemon started by systemd
 * (INVOCATION_ID set) so it never rearranges a login session's groups. The
 * "no internal processes" rule means the daemon first moves itself into
 * <group>/daemon; kernels live in <group>/k-<id>. Everything else falls back
 * to rlimits. Loop thread, but kres_child runs between fork and exec.
 */
#include "kres.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

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

static void kres_path(char *buf, size_t len, const char *dir, const char *f)
{
	snprintf(buf, len, "%s/%s", dir, f);
}

/* Finds the daemon's cgroup v2 dir and takes it over for kernels. */
static void kres_cgroup_init(struct kres *r)
{
	char line[512], path[600];
	FILE *f;

	r->cg_dir[0] = '\0';
	if (!getenv("INVOCATION_ID") ||
	    access("/sys/fs/cgroup/cgroup.controllers", R_OK) != 0)
		return;
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "0::", 3) == 0 &&
		    strlen(line + 3) < sizeof(r->cg_dir) - 16) {
			memcpy(r->cg_dir, "/sys/fs/cgroup", 15);
			strcat(r->cg_dir, line + 3);
		}
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
	kres_path(path, sizeof(path), r->cg_dir, "cgroup.subtree_control");
	if (kres_write(path, "+memory +cpu") < 0) {
		log_info("cgroups: cannot enable memory and cpu controllers in "
			 "%s; kernels get rlimits",
			 r->cg_dir);
		r->cg_dir[0] = '\0';
		return;
	}
	log_info("cgroups: kernels get their own groups under %s", r->cg_dir);
}

int kres_init(struct kres *r, long mem_max, long cpu_weight, const char *user,
	      char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->mem_max = mem_max;
	r->cpu_weight = cpu_weight;
	if (user && *user) {
		struct passwd *pw = getpwnam(user);
		if (!pw) {
			snprintf(err, errlen, "--kernel-user: no user '%s'",
				 user);
			return -1;
		}
		r->as_user = true;
		r->uid = pw->pw_uid;
		r->gid = pw->pw_gid;
		snprintf(r->user, sizeof(r->user), "%s", user);
		snprintf(r->home, sizeof(r->home), "%s", pw->pw_dir);
	}
	kres_cgroup_init(r);
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

void kres_prepare(const struct kres *r, const char *id, struct kres_kernel *kk)
{
	char path[400], val[32];

	kk->cg[0] = '\0';
	kk->procs_fd = -1;
	kk->oom_before = kres_sys_oom_kills();
	if (!r->cg_dir[0])
		return;
	snprintf(kk->cg, sizeof(kk->cg), "%s/k-%.8s", r->cg_dir, id);
	if (mkdir(kk->cg, 0755) < 0 && errno != EEXIST) {
		log_warn("cgroups: mkdir %s", kk->cg);
		kk->cg[0] = '\0';
		return;
	}
	kres_path(path, sizeof(path), kk->cg, "memory.oom.group");
	kres_write(path, "1");
	if (r->mem_max > 0) {
		snprintf(val, sizeof(val), "%ld", r->mem_max);
		kres_path(path, sizeof(path), kk->cg, "memory.max");
		if (kres_write(path, val) < 0)
			log_warn("cgroups: %s", path);
	}
	snprintf(val, sizeof(val), "%ld", r->cpu_weight);
	kres_path(path, sizeof(path), kk->cg, "cpu.weight");
	kres_write(path, val);
	kres_path(path, sizeof(path), kk->cg, "cgroup.procs");
	kk->procs_fd = open(path, O_WRONLY | O_CLOEXEC);
}

int kres_child(const struct kres *r, const struct kres_kernel *kk)
{
	if (kk->procs_fd >= 0) {
		if (write(kk->procs_fd, "0", 1) != 1)
			return -errno;
	} else if (r->mem_max > 0) {
		struct rlimit rl = {(rlim_t)r->mem_max, (rlim_t)r->mem_max};
		if (setrlimit(RLIMIT_AS, &rl) < 0)
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
	kk->procs_fd = -1;
}

bool kres_oom_killed(const struct kres_kernel *kk, int status)
{
	char path[400], line[128];
	unsigned long long n = 0;
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
	/* No group of its own: a SIGKILL while the system's OOM killer was
	 * busy is the best evidence there is. */
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
	       kres_sys_oom_kills() > kk->oom_before;
}

void kres_release(struct kres_kernel *kk)
{
	kres_after_fork(kk);
	if (kk->cg[0] && rmdir(kk->cg) < 0 && errno != ENOENT)
		log_warn("cgroups: rmdir %s", kk->cg);
	kk->cg[0] = '\0';
}

void kres_describe_mem(const struct kres *r, char *buf, size_t len)
{
	if (r->mem_max <= 0)
		snprintf(buf, len, "the machine's memory");
	else
		snprintf(buf, len, "%ld MiB", r->mem_max >> 20);
}
