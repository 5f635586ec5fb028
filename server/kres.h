/*
 * kres: what a kernel may use, whether it died of it, and ending everything
 * it started.
 *
 * Each kernel gets its own cgroup v2 group when the daemon runs in a
 * delegated cgroup v2 subtree (systemd Delegate=): memory.max from
 * --kernel-memory-max, pids.max from --kernel-tasks-max, memory.oom.group,
 * and cpu.weight from --kernel-cpu-weight (the daemon stays at the default
 * 100, so it is scheduled ahead of busy kernels), each where the controller
 * is delegated. Where cgroup v2 gives no pids controller but a writable
 * cgroup v1 pids hierarchy exists (hybrid hosts, as root), each kernel gets
 * a v1 pids group instead, for pids.max and to find its processes. The
 * memory limit falls back to RLIMIT_DATA per process (private writable
 * memory: the large PROT_NONE reservations of V8 and the JVM do not count).
 *
 * Ending a kernel's processes: cgroup.kill of its group (v2), or every
 * process listed in its group killed until none is left (v1), or, without
 * a group, every process of its session (a cell's subprocesses that did not
 * call setsid). After a daemon that died without cleaning up, kres_sweep
 * and kres_kill_stale end what it left.
 *
 * After a kernel died, kres tells whether it ran out of memory (the group's
 * memory.events; else a SIGKILL while the system's OOM killer was busy; else,
 * under the rlimit, a death at a peak RSS near the limit). Loop thread,
 * except kres_child (between fork and exec: async-signal-safe calls only).
 */
#ifndef E2BCI_KRES_H
#define E2BCI_KRES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

struct kres_opts {
	long mem_max;		 /* bytes, 0 = none */
	long cpu_weight;	 /* cgroup v2 cpu.weight */
	long tasks_max;		 /* processes and threads, 0 = none */
	const char *user;	 /* NULL or "": the daemon's own */
	const char *runtime_dir; /* names this daemon's cgroup v1 groups */
	const char *cgroot;	 /* NULL: /sys/fs/cgroup (tests: a fake) */
	const char *self_cgroup; /* NULL: /proc/self/cgroup (tests: a fake) */
};

struct kres {
	char cgroot[128];
	char self_cgroup[128];
	char cg_dir[256]; /* the daemon's delegated v2 group, "" = none */
	bool cg_memory, cg_cpu, cg_pids; /* v2 controllers for kernels */
	char pids1_dir[400]; /* v1 pids parent of kernel groups, "" = none */
	long mem_max;	     /* bytes, 0 = none */
	long cpu_weight;
	long tasks_max;
	bool as_user;
	uid_t uid;
	gid_t gid;
	char user[64];
	char home[256];
};

/* One kernel's handle, filled by kres_prepare. */
struct kres_kernel {
	char cg[300];	 /* its cgroup v2 dir, "" when none */
	char pcg[440];	 /* its cgroup v1 pids dir, "" when none */
	int procs_fd;	 /* cg's cgroup.procs, open for the child, or -1 */
	int pprocs_fd;	 /* pcg's cgroup.procs, or -1 */
	long mem_rlimit; /* RLIMIT_DATA given, bytes; 0 = none */
	unsigned long long oom_before; /* system oom_kill count at start */
};

/* Reads the options, resolves the kernel user, and sets up cgroups if the
 * daemon may: moves itself into <cgroup>/daemon and enables the memory, cpu
 * and pids controllers it was given for its subtree; else finds a v1 pids
 * hierarchy. Returns 0, or -1 with a reason in err (unknown user). Missing
 * cgroup support is not an error. */
int kres_init(struct kres *r, const struct kres_opts *o, char *err,
	      size_t errlen);
/* Before fork: the kernel's groups (named after id) with their limits. */
void kres_prepare(const struct kres *r, const char *id, struct kres_kernel *kk);
/* In the child: joins the groups, sets the rlimit fallback, drops to the
 * kernel user. Returns 0 or -errno. Async-signal-safe. */
int kres_child(const struct kres *r, const struct kres_kernel *kk);
/* In the parent after fork: closes what only the child needed. */
void kres_after_fork(struct kres_kernel *kk);
/* SIGKILLs every process of the kernel whose leader has pid sid (also its
 * session id): its group, or without one its session (setsid escapes that).
 * Safe after the leader was reaped: a session id is not reused while a
 * member lives. Returns the number of processes signalled. */
unsigned kres_kill(const struct kres_kernel *kk, pid_t sid);
/* After the kernel was reaped (status and ru from wait4; ru may be NULL):
 * true when it died of its memory limit. */
bool kres_oom_killed(const struct kres_kernel *kk, int status,
		     const struct rusage *ru);
/* Removes the kernel's groups (kres_kill first; a group that does not
 * empty within a few ms is left to a later kres_prepare). */
void kres_release(struct kres_kernel *kk);
/* Describes the limits for logs and error messages, e.g. "512 MiB". */
void kres_describe_mem(const struct kres *r, char *buf, size_t len);

/* Startup, with the runtime dir locked: ends what kernels of a dead daemon
 * with this runtime dir left in their groups and removes the groups (and
 * empty ones of other dead daemons). Blocks up to a second per group.
 * Returns the number of processes killed. */
unsigned kres_sweep(const struct kres *r);
/* Start time of pid (clock ticks since boot, /proc/<pid>/stat), 0 if
 * unknown: with the pid, it names a process for good. */
unsigned long long kres_start_time(pid_t pid);
/* Startup, without groups: kills what is left of the session of a kernel
 * (leader pid, started at start) of a dead daemon (pid daemon): processes
 * of that session started no earlier and whose environment still says
 * JPY_PARENT_PID=daemon. Returns the number killed. */
unsigned kres_kill_stale(pid_t pid, unsigned long long start, pid_t daemon);

#endif
