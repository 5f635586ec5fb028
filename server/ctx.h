/*
 * ctx: the context registry and each context's life.
 *
 * A context is an id, a language, a cwd, one kernel at a time and a FIFO of
 * executions (run by run.c, one by one in arrival order; contexts run in
 * parallel). This module owns the registry and the kernel's life: a warm
 * kernel from the pool or a fresh one, restart (same id, cwd) on request or
 * when the kernel dies, back-off and FAILED after repeated start failures
 * (with a reason naming the kernelspec, the exit status and the kernel's
 * last stderr lines), a later retry of a FAILED context (--kernel-retry-ms,
 * doubling), delete. Waiters (HTTP requests
 * that wait for a context to become ready: create, restart, a lazily created
 * default context) are told of success or failure, and the server hears of
 * every context that turns READY or FAILED through its ctx_settled hook
 * (main.c decides from that when start-up is over). Loop thread only.
 */
#ifndef E2BCI_CTX_H
#define E2BCI_CTX_H

#include <jansson.h>
#include <stdbool.h>

#include "loop.h"
#include "run.h"

struct server;
struct kernel;
struct kspec;
struct exec;
struct ctx;
struct metrics_gauges;

enum ctx_state {
	CTX_STARTING, /* kernel spawned, handshake running */
	CTX_READY,
	CTX_FAILED, /* the kernel could not be started; see fail_reason */
};

/* Why a context could not be made, or made ready. No HTTP here: api_ maps
 * each to a status. */
enum ctx_err {
	CTX_OK,
	CTX_ERR_LANGUAGE, /* no kernel is installed for the language */
	CTX_ERR_LIMIT,	  /* --max-contexts or --max-kernels reached */
	CTX_ERR_STOPPING, /* the server is shutting down */
	CTX_ERR_START,	  /* its kernel could not be started (FAILED) */
	CTX_ERR_DELETED,  /* deleted while it was waited for */
	CTX_ERR_NOMEM,
};

/* Told once: CTX_OK and reason NULL when the context is ready, else why
 * not and a plain-text reason. */
struct ctx_waiter {
	void (*fn)(void *arg, struct ctx *c, enum ctx_err why,
		   const char *reason);
	void *arg;
	struct ctx_waiter *next;
};

struct ctx {
	char id[37];
	char *language;
	char *cwd;
	bool is_default;
	struct server *srv;
	const struct kspec *spec; /* borrowed from the server's cache */
	struct kernel *kernel;
	enum ctx_state state;
	bool ever_ready;
	int quick_failures;    /* starts in a row that died unready */
	unsigned retry_rounds; /* FAILED rounds since it was last ready */
	uint64_t retry_at;     /* when a FAILED context tries again; 0: never */
	char fail_reason[1280]; /* why it is FAILED: one line */

	struct run run; /* the executions (run.c): has the kernel when READY */
	struct ctx_waiter *waiters;
	struct loop_timer retry_timer; /* the next start: back-off or retry */
	struct ctx *next;
};

/* Creates a context and starts its kernel. Returns it (registered with the
 * server, state STARTING), or NULL with why (CTX_ERR_LANGUAGE, _LIMIT,
 * _STOPPING, _START: the spawn failed, _NOMEM) and a reason in err. */
struct ctx *ctx_new(struct server *s, const char *language, const char *cwd,
		    bool is_default, enum ctx_err *why, char *err,
		    size_t errlen);
/* Queues e (takes a reference) on c's run; on a FAILED context it ends at
 * once with ContextUnavailable and the reason, and is not queued. */
void ctx_submit(struct ctx *c, struct exec *e);

/* Borrowed lookups; NULL when absent. */
struct ctx *ctx_find(struct server *s, const char *id);
struct ctx *ctx_default(struct server *s, const char *language);

/* Adds/removes a waiter (the struct is the caller's and must stay valid
 * until called or removed). A ready context calls it at once. */
void ctx_wait(struct ctx *c, struct ctx_waiter *w);
void ctx_unwait(struct ctx *c, struct ctx_waiter *w);

/* Restarts the kernel: the running execution ends with ContextRestarting,
 * queued ones wait for the new kernel. */
void ctx_restart(struct ctx *c, const char *why);

/* spec's zygote is ready: every context of spec whose kernel was exec'd
 * and has run nothing yet (still starting, or ready and unused: a default
 * context made while the zygote loaded) gets a forked kernel instead,
 * unseen by clients (same id, cwd, empty state; requests that come
 * meanwhile wait for the new kernel). */
void ctx_renew(struct server *s, const struct kspec *spec);
/* Removes the context: every execution ends with an error line, the kernel
 * is stopped, waiters fail. c is freed. */
void ctx_delete(struct ctx *c);

/* Writes one line per context of --default-languages that is FAILED into
 * buf (len bytes, NUL-terminated): its reason and when it tries again.
 * Returns how many there are (0: buf is ""). */
size_t ctx_failed_defaults(struct server *s, char *buf, size_t len);

/* Fills in the contexts' part of g: contexts per language, their kernels
 * by state (busy, idle, starting) and the executions in flight. */
void ctx_gauges(const struct server *s, struct metrics_gauges *g);

/* {"id","language","cwd"}: a new reference. */
json_t *ctx_to_json(const struct ctx *c);

/* Stops every kernel (also those still exiting) and frees all contexts;
 * used at shutdown. Blocks for at most grace_ms. */
void ctx_shutdown_all(struct server *s, long grace_ms);

#endif
