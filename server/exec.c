/*
 * exec: one execution's stream.
 *
 * Owns the pending NDJSON bytes of one POST /execute and the rules of the
 * stream (see exec.h). It never talks to a kernel or a socket: the context
 * feeds it kernel messages and the HTTP layer pulls its bytes. Invariants:
 * end_of_execution is appended exactly once and nothing after it; at most
 * one error line; the keepalive timer is armed only while a reader is
 * attached and the stream has not ended. Loop thread only.
 */
#include "exec.h"

#include <stdlib.h>
#include <string.h>

#include "enc.h"
#include "log.h"
#include "wire.h"

#define EXEC_MAX_RESENDS 3

/* What a queued line of n bytes costs the budget: its text, its struct and
 * their two malloc headers, so that many short lines count for what they
 * take. */
#define EXEC_LINE_COST(n) ((n) + sizeof(struct exec_line) + 32)

static void exec_keepalive_fire(void *arg, short revents);

struct exec *exec_new(struct loop *l, const char *code, size_t code_len,
		      json_t *env_vars, const char *token, long keepalive_ms,
		      struct exec_budget *budget)
{
	struct exec *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->refs = 1;
	e->loop = l;
	e->keepalive_ms = keepalive_ms;
	e->budget = budget;
	e->started_ms = loop_now_ms();
	e->code = malloc(code_len + 1);
	if (!e->code)
		goto fail;
	memcpy(e->code, code, code_len);
	e->code[code_len] = '\0';
	e->code_len = code_len;
	if (env_vars && json_object_size(env_vars) > 0)
		e->env_vars = json_incref(env_vars);
	if (token && !(e->token = strdup(token)))
		goto fail;
	return e;
fail:
	exec_unref(e);
	return NULL;
}

void exec_ref(struct exec *e)
{
	e->refs++;
}

/* Frees every unread line and gives its bytes back to the budget. */
static void exec_drop_lines(struct exec *e)
{
	while (e->head) {
		struct exec_line *l = e->head;
		e->head = l->next;
		free(l->text);
		free(l);
	}
	e->tail = NULL;
	e->budget->used -= e->held;
	e->held = 0;
	e->pending = 0;
}

void exec_unref(struct exec *e)
{
	if (!e || --e->refs > 0)
		return;
	loop_timer_disarm(e->loop, &e->keepalive);
	free(e->code);
	json_decref(e->env_vars);
	free(e->token);
	free(e->reply_error);
	exec_drop_lines(e);
	free(e);
}

static void exec_arm_keepalive(struct exec *e)
{
	if (e->wake && e->state != EXEC_DONE)
		loop_timer_arm(e->loop, &e->keepalive,
			       (uint64_t)e->keepalive_ms, exec_keepalive_fire,
			       e);
	else
		loop_timer_disarm(e->loop, &e->keepalive);
}

void exec_set_sink(struct exec *e, void (*wake)(void *), void *sink)
{
	e->wake = wake;
	e->sink = sink;
	if (!wake) {
		e->client_gone = true;
		exec_drop_lines(e);
	}
	exec_arm_keepalive(e);
}

/* Whether an output line of n bytes may be queued now, while making it
 * takes another `transient` bytes of the daemon's memory for a moment (the
 * received part and the copies made on the way): the total bounds both. */
static bool exec_room(const struct exec *e, size_t n, size_t transient)
{
	const struct exec_budget *b = e->budget;

	return e->held + EXEC_LINE_COST(n) <= b->per_exec &&
	       b->used + EXEC_LINE_COST(n) + transient <= b->total;
}

static bool exec_fits(const struct exec *e, size_t n)
{
	return exec_room(e, n, 0);
}

/* Queues one line (steals it); NULL (out of memory) is logged. */
static void exec_queue(struct exec *e, char *line)
{
	struct exec_line *l;
	size_t n;

	if (!line) {
		log_errx("exec: out of memory encoding a line");
		return;
	}
	if (e->state == EXEC_DONE || e->client_gone) {
		free(line);
		return;
	}
	n = strlen(line);
	l = malloc(sizeof(*l));
	if (!l) {
		free(line);
		return;
	}
	l->next = NULL;
	l->text = line;
	l->len = n;
	l->off = 0;
	if (e->tail)
		e->tail->next = l;
	else
		e->head = l;
	e->tail = l;
	e->pending += n;
	e->held += EXEC_LINE_COST(n);
	e->budget->used += EXEC_LINE_COST(n);
	e->total += n;
	exec_arm_keepalive(e);
	if (e->wake)
		e->wake(e->sink);
}

/* An output line of n bytes did not fit (see exec_fits); the first time,
 * one notice says so and why. */
static void exec_drop(struct exec *e, size_t n)
{
	if (e->dropped++ > 0 || e->state == EXEC_DONE || e->client_gone)
		return;
	exec_queue(e,
		   enc_stream("stderr",
			      e->held + EXEC_LINE_COST(n) > e->budget->per_exec
				  ? "[e2b-ci: output truncated: the client "
				    "reads slower than the kernel writes]\n"
				  : "[e2b-ci: output truncated: the unread "
				    "output of all executions reached the "
				    "daemon's limit]\n",
			      NULL));
}

/* Queues one line (steals it). Droppable lines (output) are dropped when
 * they do not fit the budget, with one notice in their place. */
static void exec_append(struct exec *e, char *line, bool droppable)
{
	size_t n = line ? strlen(line) : 0;

	if (line && droppable && !exec_fits(e, n)) {
		free(line);
		exec_drop(e, n);
		return;
	}
	exec_queue(e, line);
}

static void exec_keepalive_fire(void *arg, short revents)
{
	struct exec *e = arg;

	(void)revents;
	if (e->state != EXEC_DONE && e->wake)
		exec_append(e, enc_simple("keepalive"), false);
}

ssize_t exec_read(struct exec *e, char *buf, size_t max)
{
	size_t w = 0;

	if (!e->head)
		return e->state == EXEC_DONE ? -1 : 0;
	while (e->head && w < max) {
		struct exec_line *l = e->head;
		size_t n = l->len - l->off;
		if (n > max - w)
			n = max - w;
		memcpy(buf + w, l->text + l->off, n);
		l->off += n;
		w += n;
		if (l->off == l->len) {
			e->head = l->next;
			if (!e->head)
				e->tail = NULL;
			e->held -= EXEC_LINE_COST(l->len);
			e->budget->used -= EXEC_LINE_COST(l->len);
			free(l->text);
			free(l);
		}
	}
	e->pending -= w;
	return (ssize_t)w;
}

static void exec_count(struct exec *e, json_t *count)
{
	if (e->sent_count || !json_is_integer(count))
		return;
	e->sent_count = true;
	exec_append(e, enc_count(json_integer_value(count)), false);
}

static void exec_on_reply(struct exec *e, struct wire_msg *m)
{
	const char *st =
	    json_string_value(json_object_get(m->content, "status"));

	e->got_reply = true;
	/* quit() in IRkernel (and exit in IPython terminals) does not end the
	 * process: the reply asks the frontend to, with an ask_exit payload. */
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(m->content, "payload"), i, p)
	{
		const char *src =
		    json_string_value(json_object_get(p, "source"));
		if (src && strcmp(src, "ask_exit") == 0 &&
		    !json_is_true(json_object_get(p, "keepkernel")))
			e->ask_exit = true;
	}
	/* ipykernel aborts requests that reach it right after a failed cell
	 * sent with stop_on_error (its abort window closes asynchronously).
	 * Such a request never ran: it is sent again instead of failing. */
	if (st && strcmp(st, "aborted") == 0 && !e->sent_count &&
	    e->state != EXEC_DONE && e->resends < EXEC_MAX_RESENDS) {
		e->aborted_unrun = true;
		return;
	}
	exec_count(e, json_object_get(m->content, "execution_count"));
	if (e->had_error || e->reply_error || !st)
		return;
	if (strcmp(st, "error") == 0)
		e->reply_error = enc_error_content(m->content);
	else if (strcmp(st, "abort") == 0 || strcmp(st, "aborted") == 0)
		e->reply_error = enc_error(
		    "ExecutionAborted", "The kernel aborted the execution", "");
}

/* The held reply error, unless the kernel's iopub error came after all. */
static void exec_flush_reply_error(struct exec *e)
{
	char *line = e->reply_error;

	e->reply_error = NULL;
	if (!line)
		return;
	if (e->had_error) {
		free(line);
		return;
	}
	e->had_error = true;
	exec_append(e, line, false);
}

/* A stream message: its text as a stdout or stderr line, made straight
 * from the received content when it is left unparsed (wire_decode_lazy):
 * one copy, the line, next to the received part. The line is about as long
 * as the part; when that does not fit, nothing is made. */
static void exec_on_stream(struct exec *e, struct wire_msg *m)
{
	const char *date =
	    json_string_value(json_object_get(m->header, "date"));
	size_t c = m->raw_content.len;
	const char *name;
	json_t *text;
	char *line;

	if (!m->content) {
		if (!exec_room(e, c, c)) {
			exec_drop(e, c);
			return;
		}
		if (enc_stream_raw(m->raw_content.data, c, date, &line) != 0) {
			exec_append(e, line, true);
			return;
		}
		if (wire_msg_parse_content(m) < 0)
			return;
	}
	name = json_string_value(json_object_get(m->content, "name"));
	text = json_object_get(m->content, "text");
	if (!json_is_string(text))
		return;
	/* Escaping never shortens parsed text: its length is a lower bound. */
	if (!exec_fits(e, json_string_length(text))) {
		exec_drop(e, json_string_length(text));
		return;
	}
	exec_append(e,
		    enc_stream_n(name && strcmp(name, "stderr") == 0 ? "stderr"
								     : "stdout",
				 json_string_value(text),
				 json_string_length(text), date),
		    true);
}

/* A result line. Parsing a received part takes jansson about three times
 * its size and the line copies it again: a result is parsed only when its
 * line (about as long as the part) and those copies fit. */
static void exec_on_result(struct exec *e, struct wire_msg *m, bool main)
{
	size_t c = m->raw_content.len;

	if (!m->content) {
		if (!exec_room(e, c, 3 * c)) {
			exec_drop(e, c);
			return;
		}
		if (wire_msg_parse_content(m) < 0)
			return;
	}
	exec_append(e, enc_result(json_object_get(m->content, "data"), main),
		    true);
}

static void exec_on_iopub(struct exec *e, struct wire_msg *m)
{
	const char *t = m->msg_type;
	json_t *c = m->content;

	if (strcmp(t, "status") == 0) {
		const char *st =
		    json_string_value(json_object_get(c, "execution_state"));
		if (st && strcmp(st, "idle") == 0)
			e->got_idle = true;
	} else if (strcmp(t, "execute_input") == 0) {
		exec_count(e, json_object_get(c, "execution_count"));
	} else if (strcmp(t, "stream") == 0) {
		exec_on_stream(e, m);
	} else if (strcmp(t, "execute_result") == 0 ||
		   strcmp(t, "display_data") == 0 ||
		   strcmp(t, "update_display_data") == 0) {
		exec_on_result(e, m, strcmp(t, "execute_result") == 0);
	} else if (strcmp(t, "error") == 0 && !e->had_error) {
		e->had_error = true;
		exec_append(e, enc_error_content(c), false);
	}
}

enum exec_step exec_on_msg(struct exec *e, bool shell, struct wire_msg *m)
{
	/* A stream that already ended (deadline) still follows the kernel
	 * until the cell is over, so the context knows when it is free. */
	e->last_msg_ms = loop_now_ms();
	if (shell || strcmp(m->msg_type, "error") == 0)
		e->last_report_ms = e->last_msg_ms;
	if (shell) {
		if (strcmp(m->msg_type, "execute_reply") == 0)
			exec_on_reply(e, m);
	} else {
		exec_on_iopub(e, m);
	}
	if (e->aborted_unrun) {
		e->aborted_unrun = false;
		e->got_reply = e->got_idle = false;
		e->resends++;
		return EXEC_RESEND;
	}
	/* A SIGINT landing inside ipykernel's own dispatch code (before the
	 * cell runs) ends the request with "KeyboardInterrupt caught in
	 * kernel": idle comes, the execute_reply never does. */
	if (e->got_idle && (e->got_reply || e->interrupted))
		return EXEC_COMPLETE;
	/* Idle without a reply: the reply may still be on its way (shell and
	 * iopub are separate sockets), or the kernel's handler failed before
	 * replying and it never comes. The caller decides how long to wait. */
	if (e->got_idle)
		return EXEC_NO_REPLY;
	return EXEC_GOING;
}

void exec_finish(struct exec *e)
{
	if (e->state == EXEC_DONE)
		return;
	exec_flush_reply_error(e);
	exec_append(e, enc_simple("end_of_execution"), false);
	e->state = EXEC_DONE;
	loop_timer_disarm(e->loop, &e->keepalive);
	if (e->wake)
		e->wake(e->sink);
}

void exec_fail(struct exec *e, const char *name, const char *value)
{
	if (e->state == EXEC_DONE)
		return;
	exec_flush_reply_error(e);
	if (!e->had_error) {
		e->had_error = true;
		exec_append(e, enc_error(name, value, ""), false);
	}
	exec_finish(e);
}
