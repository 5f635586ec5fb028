/*
 * exec: one execution, from its POST /execute to its end_of_execution line.
 *
 * Holds the request (code, env_vars, access token, deadline) and the NDJSON
 * bytes not yet read by the client. Turns the
 * kernel messages that belong to it (by parent msg_id) into lines through
 * enc_, and applies the stream rules: number_of_executions first, at most one
 * error line, a keepalive after every keepalive_ms of silence (also while
 * queued), end_of_execution always last and exactly once. The backlog is
 * bounded twice (struct exec_budget): an execution's unread bytes by
 * --max-backlog, all executions' together by --max-backlog-total; an output
 * line that does not fit is dropped (never encoded when its size alone
 * rules it out) and one truncation notice says so; error, notice and end
 * lines are always kept. A client that goes away frees its backlog at once.
 *
 * Two owners share it through a reference count: the context's run (while
 * queued or running: run.c keeps what it needs of it in its struct
 * run_job) and the HTTP stream (while the client is connected). Loop
 * thread only.
 */
#ifndef E2BCI_EXEC_H
#define E2BCI_EXEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "loop.h"

struct run_job;
struct wire_msg;

/* What unread output may hold: one per daemon, shared by every exec. */
struct exec_budget {
	size_t per_exec; /* --max-backlog: unread output of one execution */
	size_t total;	 /* --max-backlog-total: of all executions */
	size_t used;	 /* what the unread lines of all of them take now */
};

struct exec_line {
	struct exec_line *next;
	char *text; /* owned */
	size_t len, off;
};

enum exec_state {
	EXEC_QUEUED,  /* waiting for its context */
	EXEC_PREPARE, /* global env fetch / env helper cells in flight */
	EXEC_RUNNING, /* execute_request sent */
	EXEC_DONE,    /* end_of_execution appended */
};

struct exec {
	int refs;
	enum exec_state state;
	struct run_job *job; /* run.c's, while a run holds it; else NULL */
	char *code;
	size_t code_len;
	json_t *env_vars; /* owned object or NULL */
	char *token;	  /* X-Access-Token of the request, or NULL */
	bool got_reply, got_idle, had_error, sent_count;
	bool aborted_unrun; /* aborted reply before any execute_input */
	int resends;
	bool ask_exit;	  /* the reply asked the frontend to end the kernel */
	bool interrupted; /* we interrupted it (client gone, deadline) */
	/* The error line an execute_reply implies, held until the cell ends:
	 * the shell reply can overtake iopub, where the output printed before
	 * the error and the kernel's own error message are still on the way.
	 * Used only when no iopub error came. Owned. */
	char *reply_error;

	/* Pending NDJSON lines, oldest first; each line is the string enc_
	 * made (kept as it is: no copy until the HTTP layer reads it). */
	struct exec_line *head, *tail;
	size_t pending; /* unread bytes */
	size_t held;	/* what the unread lines cost the budget (exec.c) */
	size_t total;	/* bytes ever queued */
	size_t dropped; /* output lines dropped */
	struct exec_budget *budget; /* borrowed; outlives every exec */

	/* The reader: wake() is called when bytes or the end arrive. */
	void (*wake)(void *sink);
	void *sink;
	bool client_gone;

	struct loop *loop;
	struct loop_timer keepalive;
	long keepalive_ms;
	uint64_t started_ms;	 /* the request's arrival (exec_new) */
	uint64_t last_msg_ms;	 /* when the kernel last sent anything for it */
	uint64_t last_report_ms; /* ...an error or its execute_reply */
	long long deadline_ms; /* server-side deadline from arrival, 0: none */
};

/* A new execution with one reference (the caller's). Steals nothing: code is
 * copied, env_vars is incref'd; budget is borrowed and must outlive it.
 * Returns NULL on ENOMEM. */
struct exec *exec_new(struct loop *l, const char *code, size_t code_len,
		      json_t *env_vars, const char *token, long keepalive_ms,
		      struct exec_budget *budget);
void exec_ref(struct exec *e);
/* Drops one reference; frees on the last. Accepts NULL. */
void exec_unref(struct exec *e);

/* Attaches/detaches the reader. Attaching arms the keepalive timer;
 * detaching (wake NULL: the client is gone) drops the unread lines. */
void exec_set_sink(struct exec *e, void (*wake)(void *), void *sink);

/* Copies up to max pending bytes into buf. Returns the count, 0 when nothing
 * is pending yet, -1 when the stream has ended and everything was read. */
ssize_t exec_read(struct exec *e, char *buf, size_t max);

enum exec_step {
	EXEC_GOING,    /* more to come */
	EXEC_COMPLETE, /* execute_reply and idle both seen */
	EXEC_NO_REPLY, /* idle seen, the execute_reply not (yet) */
	EXEC_RESEND,   /* aborted before it ran: send the same code again */
};

/* Feeds a kernel message whose parent is e's execute_request (borrowed). */
enum exec_step exec_on_msg(struct exec *e, bool shell, struct wire_msg *m);

/* Ends the stream early: an error line (name, value, empty traceback) unless
 * one was already sent, then end_of_execution. Idempotent. */
void exec_fail(struct exec *e, const char *name, const char *value);

/* Ends the stream normally (end_of_execution). Idempotent. */
void exec_finish(struct exec *e);

#endif
