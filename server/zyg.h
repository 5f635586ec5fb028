/*
 * zyg: the fork servers ("zygotes", kernels/ZYGOTE-PROTOCOL.md).
 *
 * One zygote per kernelspec that ships one (the daemon has one kernel
 * user, so one per kernelspec): kernels/python3's e2b_ci_zygote.py for
 * ipykernel kernelspecs, kernels/ir's e2b_ci_zygote.R for IRkernel's. A
 * long-lived process that loaded the kernel stack (for Python, also the
 * --python-preload list) and forks a kernel per request. Python's is
 * started with the daemon (its default contexts), R's by the first R
 * kernel asked for (exec'd meanwhile). zyg_ starts
 * it (child.c's fork and reset, the kernels' environment, the default
 * cwd, the kernel user, oom_score_adj 800; it stays in the daemon's
 * cgroup: its pages are shared by every kernel forked from it), drains
 * its stdout and stderr into the log, reads its "ready" or "failed",
 * restarts it after a death with a back-off (1 s doubling to 60 s, reset
 * once a zygote served a kernel), and asks it for kernels (zyg_spawn,
 * asynchronous: the request is sent and the loop goes on; the answer,
 * read by the loop's watch on the channel, comes back through the
 * request's done callback, within a second or the zygote counts as
 * dead). kproc_ asks it first; whatever zyg_ cannot do, exec does. Loop
 * thread only.
 */
#ifndef E2BCI_ZYG_H
#define E2BCI_ZYG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "kres.h"
#include "loop.h"

struct kspec;

struct zyg_opts {
	bool on;		 /* --zygote */
	const char *preload;	 /* --python-preload, "" for none */
	const char *cwd;	 /* the default cwd: the zygote's */
	struct loop *loop;	 /* borrowed, as the rest */
	const struct kres *kres; /* the kernel user; may be NULL */
	/* Called when spec's zygote turns READY the first time (NULL: not
	 * at all): kernels started meanwhile were exec'd. */
	void (*on_ready)(void *arg, const struct kspec *spec);
	void *arg;
};

/* One kernel asked of a zygote: what kproc_spawn would exec. */
struct zyg_request {
	const char *id;	   /* the kernel's id */
	char *const *argv; /* kspec_argv for its connection file */
	char *const *envp; /* kproc_build_env */
	const char *cwd;
	int out, err;	 /* the pipes' write ends */
	int cgroup;	 /* its cgroup.procs, open, or -1 */
	long mem_rlimit; /* RLIMIT_DATA, bytes; 0 = none */
	/* The answer, from the loop, once (unless cancelled): the pid of the
	 * forked kernel (the daemon's child by then, set up as an exec'd
	 * one), or -EAGAIN when the zygote declined, died or did not answer
	 * (exec it; a pid an error named was reaped). */
	void (*done)(void *arg, pid_t pid);
	void *arg;
};

/* Takes the options (copied, strings borrowed) before any other call. */
void zyg_init(const struct zyg_opts *o);

/* Whether spec's kernels may come from a zygote: zygotes on, its dir
 * holds e2b_ci_zygote.py and its argv is [python, -m,
 * ipykernel_launcher, ...], or it holds e2b_ci_zygote.R and its argv is
 * IRkernel's. */
bool zyg_serves(const struct kspec *spec);

/* Starts spec's zygote unless it has one (or gave up on it); envp is the
 * kernels' environment (copied). It is READY some seconds later. */
void zyg_start(const struct kspec *spec, char *const *envp);

/* Asks spec's zygote for a kernel: 0 when the request was sent (rq's
 * done follows, never from within this call; the request's strings and
 * fds may go once this returns: the zygote has its copies), or -EAGAIN
 * when no zygote is READY or the request could not be sent (the caller
 * execs). Starts the zygote first if it has none. Does not block. */
int zyg_spawn(const struct kspec *spec, const struct zyg_request *rq);

/* The owner of request id is gone: its done is not called; a kernel the
 * answer names is killed and reaped. */
void zyg_cancel(const char *id);

/* Whether a request awaits its answer: an answer names a pid that is the
 * daemon's child, which nobody else may reap meanwhile. */
bool zyg_outstanding(void);

/* Calls fn once no request awaits its answer (now, if none does). One fn
 * at a time: kproc's stray reaping, which must wait for the answers. */
void zyg_when_idle(void (*fn)(void));

/* Whether pid is a zygote's (its pidfd handler reaps it). */
bool zyg_is_zygote(pid_t pid);

/* How many zygotes are READY, for /metrics. */
size_t zyg_ready(void);

/* Shutdown: every zygote killed and reaped, its channel closed; no
 * restart after. */
void zyg_shutdown(void);

#endif
