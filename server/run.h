/*
 * run: one context's execution pipeline.
 *
 * Executions of a context run strictly one at a time, in arrival order.
 * For each: fetch the sandbox-wide env vars from envd when due (first
 * execution, and after every new kernel) and apply them with a helper cell;
 * apply the request's env_vars with a helper cell; send the execute_request
 * and route every kernel message whose parent it is to the exec; when it is
 * complete, put back what the env_vars overrode with a helper cell (the
 * values the env cell saved inside the kernel). A request the kernel ends
 * with idle but never answers (its handler failed) ends the stream with an
 * error after a short grace; the kernel keeps its state. Helper cells are
 * silent, sent one at a time, and sent again when the kernel aborts them
 * (ipykernel aborts whatever reaches it right after a failed cell). A client
 * that goes away drops its queued execution, or interrupts the running one
 * (asking for a new kernel when the interrupt does not take); a request's
 * deadline does the same.
 *
 * struct run is the pipeline's whole state; its owner (a context) embeds
 * it, gives it a kernel once one is ready (run_start) and takes it away
 * (run_fail_all), and hears back only through struct run_ops. run knows
 * nothing of contexts. Loop thread only.
 */
#ifndef E2BCI_RUN_H
#define E2BCI_RUN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernel.h"
#include "loop.h"

struct envd_req;
struct exec;
struct metrics;
struct run_job;
struct wire_msg;

/* The pipeline's position for the running execution. */
enum run_phase {
	RUN_IDLE,    /* nothing running */
	RUN_ENVD,    /* fetching global env vars */
	RUN_GLOBALS, /* global env helper cell in flight */
	RUN_ENV,     /* env_vars helper cell in flight */
	RUN_MAIN,    /* the execute_request runs */
	RUN_RESTORE, /* env restore helper cell in flight (exec released) */
};

/* What every run shares: the daemon's loop, counters and options.
 * Borrowed; outlives every run. */
struct run_env {
	struct loop *loop;
	struct metrics *metrics;   /* executions, interrupts, durations */
	const char *envd_url;	   /* --envd-url */
	long envd_timeout_ms;	   /* --envd-timeout-ms */
	long interrupt_timeout_ms; /* --interrupt-timeout-ms */
};

/* What a run asks of its owner. */
struct run_ops {
	/* The kernel must be replaced (why: for the log): an interrupt did
	 * not stop the cell within interrupt_timeout_ms, or the code asked
	 * the kernel to exit. The owner calls run_fail_all (the running
	 * execution ends) and run_start once a new kernel is ready. */
	void (*restart)(void *arg, const char *why);
};

struct run {
	const struct run_env *env;
	const struct run_ops *ops;
	void *arg;
	const char *id;	       /* the owner's name in logs (borrowed) */
	const char *language;  /* for helper cells (borrowed) */
	struct kernel *kernel; /* ready kernel (run_start), or NULL */

	struct run_job *head, *tail; /* queued, in arrival order */
	struct run_job *running;
	unsigned long jobs; /* executions begun on this kernel */
	enum run_phase phase;
	/* The running execution: its execute_request, whether its env_vars
	 * were set in the kernel, when its code was first sent. */
	char msg_id[37];
	bool env_applied;
	uint64_t run_ms;

	char *helper_code; /* the helper cell in flight, owned */
	char helper_id[37];
	int helper_tries;

	json_t *global_env; /* from envd, owned; NULL until fetched */
	bool need_global_env;
	bool envd_warned; /* an envd failure was logged at warn level */
	struct envd_req *envd;

	struct loop_timer interrupt_timer;
	uint64_t interrupt_deadline, interrupt_sent_ms;
	struct loop_timer reply_timer; /* idle came, the reply has not */
};

/* Sets r up, empty and without a kernel. id and language are borrowed and
 * must outlive r; ops and arg tell the owner. */
void run_init(struct run *r, const struct run_env *env, const char *id,
	      const char *language, const struct run_ops *ops, void *arg);
/* Frees what r holds. Every execution must have been ended first
 * (run_fail_all with queued). */
void run_cleanup(struct run *r);

/* k (borrowed, ready) is the kernel from now on: the global env vars are
 * fetched anew before the next execution, and the queue runs. */
void run_start(struct run *r, struct kernel *k);
/* Ends the running execution (and the queued ones when queued) with an
 * error line name/value, resets the pipeline and lets go of the kernel
 * (it is gone or going): nothing runs until run_start. */
void run_fail_all(struct run *r, bool queued, const char *name,
		  const char *value);

/* Queues e (takes a reference) and starts it when its turn comes; its
 * deadline (e->deadline_ms from e->started_ms) runs from now on. */
void run_submit(struct run *r, struct exec *e);
/* e's client went away (or its deadline passed): drop it from its queue or
 * interrupt it. Nothing when no run holds e. */
void run_cancel(struct exec *e);
/* A verified message from r's kernel (borrowed). */
void run_on_msg(struct run *r, enum kernel_chan ch, struct wire_msg *m);
/* Whether an execution is running (helper cells of its own included). */
bool run_busy(const struct run *r);
/* Whether r has a kernel that no execution has reached yet and nothing is
 * queued: replacing that kernel is invisible to every client. */
bool run_untouched(const struct run *r);

#endif
