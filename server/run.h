/*
 * run: one context's execution pipeline.
 *
 * Executions of a context run strictly one at a time, in arrival order.
 * For each: fetch the sandbox-wide env vars from envd when due (first
 * execution, and after every restart) and apply them with a helper cell;
 * apply the request's env_vars with a helper cell; send the execute_request
 * and route every kernel message whose parent it is to the exec; when it is
 * complete, put back what the env_vars overrode with a helper cell (the
 * values the env cell saved inside the kernel). A request the kernel ends
 * with idle but never answers (its handler failed) ends the stream with an
 * error after a short grace; the kernel keeps its state. Helper cells are
 * silent, sent one at a time, and sent again when the kernel aborts them
 * (ipykernel aborts whatever reaches it right after a failed cell). A client
 * that goes away drops its queued execution, or interrupts the running one
 * (restarting the kernel when the interrupt does not take). Loop thread only.
 */
#ifndef E2BCI_RUN_H
#define E2BCI_RUN_H

#include <stdbool.h>

#include "kernel.h"

struct ctx;
struct exec;
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

/* Queues e (takes a reference) and starts it when its turn comes. */
void run_submit(struct ctx *c, struct exec *e);
/* e's client went away: drop it from the queue or interrupt it. */
void run_cancel(struct ctx *c, struct exec *e);
/* Starts the next execution if the context is ready and idle. */
void run_pump(struct ctx *c);
/* A verified message from the context's kernel (borrowed). */
void run_on_msg(struct ctx *c, enum kernel_chan ch, struct wire_msg *m);
/* Ends the running execution (and the queued ones when queued) with an
 * error line name/value, and resets the pipeline (the kernel is gone or
 * going). */
void run_fail_all(struct ctx *c, bool queued, const char *name,
		  const char *value);

#endif
