/*
 * kres: what a kernel may use, and whether it died of it.
 *
 * Each kernel gets its own cgroup v2 group when the daemon runs in a
 * delegated cgroup v2 subtree (systemd Delegate=yes): memory.max from
 * --kernel-memory-max, memory.oom.group, and cpu.weight from
 * --kernel-cpu-weight (the daemon stays at the default 100, so it is
 * scheduled ahead of busy kernels). Otherwise the memory limit falls back to
 * RLIMIT_AS. Kernels may also run as an unprivileged --kernel-user. After a
 * kernel died, kres tells whether the OOM killer took it (the group's
 * memory.events, or the system's oom_kill counter for SIGKILLed kernels
 * without a group). Loop thread, except kres_child (between fork and exec:
 * async-signal-safe calls only).
 */
#ifndef E2BCI_KRES_H
#define E2BCI_KRES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct kres {
	char cg_dir[256]; /* the daemon's delegated cgroup, "" = no cgroups */
	long mem_max;	  /* bytes, 0 = none */
	long cpu_weight;
	bool as_user;
	uid_t uid;
	gid_t gid;
	char user[64];
	char home[256];
};

/* One kernel's handle, filled by kres_prepare. */
struct kres_kernel {
	char cg[300]; /* its cgroup dir, "" when none */
	int procs_fd; /* its cgroup.procs, open for the child, or -1 */
	unsigned long long oom_before; /* system oom_kill count at start */
};

/* Reads the options, resolves --kernel-user, and sets up cgroups if the
 * daemon may: moves itself into <cgroup>/daemon and enables the memory and
 * cpu controllers for its subtree. Returns 0, or -1 with a reason in err
 * (unknown user). Missing cgroup support is not an error. */
int kres_init(struct kres *r, long mem_max, long cpu_weight, const char *user,
	      char *err, size_t errlen);
/* Before fork: the kernel's group (named after id) with its limits. */
void kres_prepare(const struct kres *r, const char *id, struct kres_kernel *kk);
/* In the child: joins the group, sets the rlimit fallback, drops to the
 * kernel user. Returns 0 or -errno. Async-signal-safe. */
int kres_child(const struct kres *r, const struct kres_kernel *kk);
/* In the parent after fork: closes what only the child needed. */
void kres_after_fork(struct kres_kernel *kk);
/* After the kernel was reaped (status from waitpid): true when the OOM
 * killer ended it. */
bool kres_oom_killed(const struct kres_kernel *kk, int status);
/* Removes the kernel's group (it must be empty). */
void kres_release(struct kres_kernel *kk);
/* Describes the limits for logs and error messages, e.g. "512 MiB". */
void kres_describe_mem(const struct kres *r, char *buf, size_t len);

#endif
