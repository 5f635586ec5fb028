/*
 * kh_exec.c: requests and executions.
 *
 * Owns the shell queue, the running execute_request, the execution counter
 * and the running cell's error. Every handled request gets "busy", its
 * reply and "idle" on iopub with the request's header as parent, which is
 * what a client (the daemon, jupyter_client) waits for.
 *
 * Lifecycle of an execute_request: queued on arrival; started when the
 * kernel is ready and no other cell runs (busy, execute_input unless silent,
 * then the mode gets the code); while it runs the mode reports streams,
 * display data, results and at most one error through the kh_exec_*
 * functions; kh_exec_done() then flushes held output, sends execute_reply
 * and idle, and if the cell failed with stop_on_error answers every execute
 * request queued at that moment with status "aborted" (busy, reply, idle,
 * so clients waiting for idle are released too).
 *
 * Other requests: control requests and, once the runner is ready, shell
 * requests other than execute are answered at once (kernel_info does not
 * queue behind a long cell); before ready, shell requests wait in the queue
 * in order, so kernel_info can carry the runner's language_info. Types we
 * do not know that end in "_request" get an error reply rather than
 * silence, so no client waits forever; other messages (comm_*) are dropped.
 *
 * Counting: execution_count rises for each non-silent cell that stores
 * history; silent cells (the daemon's helper cells) have no execute_input,
 * no execute_result and leave the count alone.
 *
 * Loop thread only. It does not know how code runs (the modes do) and has
 * no stdin channel support (allow_stdin is ignored: runners give user code
 * no terminal input).
 */
#include "kh_exec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "wire.h"

static void kh_req_free(struct kh_req *r)
{
	if (!r)
		return;
	kh_msg_free(r->msg);
	free(r);
}

static bool kh_exec_flag(json_t *content, const char *name, bool dflt)
{
	json_t *v = json_object_get(content, name);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

void kh_exec_stream_text(struct kh *kh, enum kh_fd fd, json_t *text)
{
	json_t *content;

	if (!json_is_string(text) || json_string_length(text) == 0)
		return;
	content =
	    json_pack("{s:s,s:O}", "name",
		      fd == KH_FD_STDERR ? "stderr" : "stdout", "text", text);
	if (content)
		kh_chan_publish(&kh->chan, kh->parent, "stream", content);
	json_decref(content);
}

/* Publishes valid UTF-8 text (n bytes, consumed) as a stream message. */
static void kh_exec_publish_text(struct kh *kh, enum kh_fd fd, char *text,
				 size_t n)
{
	json_t *s = text && n > 0 ? json_stringn_nocheck(text, n) : NULL;

	kh_exec_stream_text(kh, fd, s);
	json_decref(s);
	free(text);
}

void kh_exec_stream(struct kh *kh, enum kh_fd fd, const char *buf, size_t len)
{
	size_t n = 0;
	char *text = kh_out_take(&kh->out[fd], buf, len, false, &n);

	kh_exec_publish_text(kh, fd, text, n);
}

void kh_exec_flush(struct kh *kh)
{
	for (int fd = KH_FD_STDOUT; fd <= KH_FD_STDERR; fd++) {
		size_t n = 0;
		char *text;

		if (kh->out[fd].nhold == 0)
			continue;
		text = kh_out_take(&kh->out[fd], NULL, 0, true, &n);
		kh_exec_publish_text(kh, (enum kh_fd)fd, text, n);
	}
}

void kh_exec_data(struct kh *kh, const char *msg_type, json_t *data,
		  json_t *metadata, json_t *transient)
{
	bool result = strcmp(msg_type, "execute_result") == 0;
	json_t *content;

	if (!kh->running || (result && kh->running->silent))
		return;
	content = json_pack("{s:O,s:o}", "data", data, "metadata",
			    json_is_object(metadata) ? json_incref(metadata)
						     : json_object());
	if (!content)
		return;
	if (json_is_object(transient))
		json_object_set(content, "transient", transient);
	if (result)
		json_object_set_new(content, "execution_count",
				    json_integer(kh->count));
	kh_chan_publish(&kh->chan, kh->parent, msg_type, content);
	json_decref(content);
}

/* A traceback that is an array of strings, else ["ename: evalue"]. */
static json_t *kh_exec_traceback(const char *ename, const char *evalue,
				 json_t *traceback)
{
	size_t i;
	json_t *v;
	char *line = NULL;

	if (json_is_array(traceback)) {
		json_array_foreach(traceback, i, v)
		{
			if (!json_is_string(v))
				break;
		}
		if (i == json_array_size(traceback))
			return json_incref(traceback);
	}
	if (asprintf(&line, "%s: %s", ename, evalue) < 0)
		return json_array();
	v = json_pack("[s]", line);
	free(line);
	return v;
}

void kh_exec_error(struct kh *kh, const char *ename, const char *evalue,
		   json_t *traceback)
{
	if (!kh->running || kh->error)
		return;
	kh->error =
	    json_pack("{s:s,s:s,s:o}", "ename", ename, "evalue", evalue,
		      "traceback", kh_exec_traceback(ename, evalue, traceback));
	if (kh->error)
		kh_chan_publish(&kh->chan, kh->parent, "error", kh->error);
}

/* Answers an execute_request that will not run. */
static void kh_exec_abort_one(struct kh *kh, struct kh_req *r)
{
	json_t *content = json_pack("{s:s,s:I}", "status", "aborted",
				    "execution_count", (json_int_t)kh->count);

	kh_chan_status(&kh->chan, r->msg->header, "busy");
	if (content)
		kh_chan_reply(&kh->chan, r->msg, "execute_reply", content);
	kh_chan_status(&kh->chan, r->msg->header, "idle");
	json_decref(content);
}

/* stop_on_error: every execute_request queued now is aborted; requests
 * of other kinds keep their place. */
static void kh_exec_abort_queue(struct kh *kh)
{
	struct kh_req **pp = &kh->head, *r;

	while ((r = *pp)) {
		if (!r->execute) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		kh_exec_abort_one(kh, r);
		kh_req_free(r);
	}
	kh->tail = NULL;
	for (r = kh->head; r; r = r->next)
		kh->tail = r;
}

static json_t *kh_exec_reply_content(struct kh *kh)
{
	json_t *c;

	if (!kh->error)
		return json_pack("{s:s,s:I,s:{},s:[]}", "status", "ok",
				 "execution_count", (json_int_t)kh->count,
				 "user_expressions", "payload");
	c = json_copy(kh->error);
	if (c) {
		json_object_set_new(c, "status", json_string("error"));
		json_object_set_new(c, "execution_count",
				    json_integer(kh->count));
	}
	return c;
}

/* Ends the running cell without starting the next one. */
static void kh_exec_finish(struct kh *kh)
{
	struct kh_req *r = kh->running;
	bool failed = kh->error != NULL;
	json_t *content;

	if (!r)
		return;
	kh_exec_flush(kh);
	content = kh_exec_reply_content(kh);
	if (content)
		kh_chan_reply(&kh->chan, r->msg, "execute_reply", content);
	json_decref(content);
	kh_chan_status(&kh->chan, r->msg->header, "idle");
	kh->running = NULL;
	json_decref(kh->error);
	kh->error = NULL;
	if (failed && r->stop_on_error)
		kh_exec_abort_queue(kh);
	kh_req_free(r);
}

void kh_exec_done(struct kh *kh)
{
	kh_exec_finish(kh);
	kh_exec_pump(kh);
}

static void kh_exec_start(struct kh *kh, struct kh_req *r)
{
	json_t *code = json_object_get(r->msg->content, "code");
	json_t *input;
	int rc;

	/* A SIGINT sent while we were idle may still sit in the signalfd: it
	 * belongs to no cell and must not interrupt this one. */
	kh_signals_poll(kh);
	kh->running = r;
	json_decref(kh->parent);
	kh->parent = json_incref(r->msg->header);
	kh_chan_status(&kh->chan, kh->parent, "busy");
	if (!r->silent && r->store_history)
		kh->count++;
	if (!r->silent) {
		input = json_pack("{s:o,s:I}", "code",
				  json_is_string(code) ? json_incref(code)
						       : json_string(""),
				  "execution_count", (json_int_t)kh->count);
		if (input)
			kh_chan_publish(&kh->chan, kh->parent, "execute_input",
					input);
		json_decref(input);
	}
	if (!json_is_string(code)) {
		kh_exec_error(kh, "ValueError", "code must be a string", NULL);
		kh_exec_finish(kh);
		return;
	}
	rc = kh->mode->execute(kh, code, r->silent);
	if (rc < 0) {
		kh_exec_error(kh, "RunnerError",
			      rc == -ENOBUFS
				  ? "the runner is not reading its input: "
				    "earlier requests are still queued for it"
				  : strerror(-rc),
			      NULL);
		kh_exec_finish(kh);
	}
}

void kh_exec_interrupt(struct kh *kh)
{
	if (kh->running && kh->state == KH_READY)
		kh->mode->interrupt(kh);
}

/* Request handlers: each returns the reply content (new reference). */

static json_t *kh_exec_kernel_info(struct kh *kh, const struct kh_msg *m)
{
	json_t *li = kh->language_info
			 ? json_incref(kh->language_info)
			 : json_pack("{s:s}", "name", kh->language);

	(void)m;
	return json_pack(
	    "{s:s,s:s,s:s,s:s,s:o,s:s,s:[]}", "status", "ok",
	    "protocol_version", WIRE_PROTOCOL_VERSION, "implementation",
	    "e2b-kernel", "implementation_version", KH_VERSION, "language_info",
	    li, "banner", kh->banner ? kh->banner : "", "help_links");
}

/* Every cell is run as sent; a console's "continue?" is never needed. */
static json_t *kh_exec_is_complete(struct kh *kh, const struct kh_msg *m)
{
	(void)kh;
	(void)m;
	return json_pack("{s:s}", "status", "complete");
}

static json_t *kh_exec_complete(struct kh *kh, const struct kh_msg *m)
{
	json_int_t pos =
	    json_integer_value(json_object_get(m->content, "cursor_pos"));

	(void)kh;
	return json_pack("{s:s,s:[],s:I,s:I,s:{}}", "status", "ok", "matches",
			 "cursor_start", pos, "cursor_end", pos, "metadata");
}

static json_t *kh_exec_inspect(struct kh *kh, const struct kh_msg *m)
{
	(void)kh;
	(void)m;
	return json_pack("{s:s,s:b,s:{},s:{}}", "status", "ok", "found", 0,
			 "data", "metadata");
}

static json_t *kh_exec_history(struct kh *kh, const struct kh_msg *m)
{
	(void)kh;
	(void)m;
	return json_pack("{s:s,s:[]}", "status", "ok", "history");
}

static json_t *kh_exec_comm_info(struct kh *kh, const struct kh_msg *m)
{
	(void)kh;
	(void)m;
	return json_pack("{s:s,s:{}}", "status", "ok", "comms");
}

static json_t *kh_exec_ok(struct kh *kh, const struct kh_msg *m)
{
	(void)kh;
	(void)m;
	return json_pack("{s:s}", "status", "ok");
}

static void kh_exec_after_interrupt(struct kh *kh, const struct kh_msg *m)
{
	(void)m;
	kh_exec_interrupt(kh);
}

static json_t *kh_exec_shutdown(struct kh *kh, const struct kh_msg *m)
{
	(void)kh;
	return json_pack("{s:s,s:b}", "status", "ok", "restart",
			 kh_exec_flag(m->content, "restart", false));
}

static void kh_exec_after_shutdown(struct kh *kh, const struct kh_msg *m)
{
	(void)m;
	kh_stop(kh);
}

static const struct kh_handler {
	const char *type;
	json_t *(*reply)(struct kh *kh, const struct kh_msg *m);
	void (*after)(struct kh *kh, const struct kh_msg *m);
} kh_handlers[] = {
    {"kernel_info_request", kh_exec_kernel_info, NULL},
    {"is_complete_request", kh_exec_is_complete, NULL},
    {"complete_request", kh_exec_complete, NULL},
    {"inspect_request", kh_exec_inspect, NULL},
    {"history_request", kh_exec_history, NULL},
    {"comm_info_request", kh_exec_comm_info, NULL},
    {"interrupt_request", kh_exec_ok, kh_exec_after_interrupt},
    {"shutdown_request", kh_exec_shutdown, kh_exec_after_shutdown},
};

static json_t *kh_exec_unsupported(const struct kh_msg *m)
{
	char evalue[160];

	snprintf(evalue, sizeof(evalue), "%.100s is not supported",
		 m->msg_type);
	return json_pack("{s:s,s:s,s:s,s:[]}", "status", "error", "ename",
			 "UnsupportedRequest", "evalue", evalue, "traceback");
}

/* "x_request" -> "x_reply" into buf; -1 when m is no request. */
static int kh_exec_reply_type(const char *type, char *buf, size_t len)
{
	size_t n = strlen(type), suffix = strlen("_request");

	if (n <= suffix || strcmp(type + n - suffix, "_request") != 0 ||
	    n - suffix + sizeof("_reply") > len)
		return -1;
	snprintf(buf, len, "%.*s_reply", (int)(n - suffix), type);
	return 0;
}

/* Answers a request that is not an execute_request, now. */
static void kh_exec_handle(struct kh *kh, const struct kh_msg *m)
{
	const struct kh_handler *h = NULL;
	char reply_type[128];
	json_t *content;

	if (kh_exec_reply_type(m->msg_type, reply_type, sizeof(reply_type)) <
	    0) {
		log_debug("ignoring %.64s on %s", m->msg_type,
			  kh_conn_sock_name(m->sock));
		return;
	}
	for (size_t i = 0; i < sizeof(kh_handlers) / sizeof(*kh_handlers);
	     i++) {
		if (strcmp(kh_handlers[i].type, m->msg_type) == 0)
			h = &kh_handlers[i];
	}
	kh_chan_status(&kh->chan, m->header, "busy");
	content = h ? h->reply(kh, m) : kh_exec_unsupported(m);
	if (content)
		kh_chan_reply(&kh->chan, m, reply_type, content);
	json_decref(content);
	kh_chan_status(&kh->chan, m->header, "idle");
	if (h && h->after)
		h->after(kh, m);
}

static void kh_exec_enqueue(struct kh *kh, struct kh_msg *m, bool execute)
{
	struct kh_req *r = calloc(1, sizeof(*r));

	if (!r) {
		log_warnx("dropped %s: out of memory", m->msg_type);
		kh_msg_free(m);
		return;
	}
	r->msg = m;
	r->execute = execute;
	if (execute) {
		r->silent = kh_exec_flag(m->content, "silent", false);
		r->store_history =
		    !r->silent &&
		    kh_exec_flag(m->content, "store_history", true);
		r->stop_on_error =
		    kh_exec_flag(m->content, "stop_on_error", true);
	}
	if (kh->tail)
		kh->tail->next = r;
	else
		kh->head = r;
	kh->tail = r;
}

void kh_exec_on_msg(void *arg, struct kh_msg *m)
{
	struct kh *kh = arg;
	bool execute = strcmp(m->msg_type, "execute_request") == 0;

	if (kh->state == KH_STOPPING) {
		log_debug("stopping: dropped %.64s", m->msg_type);
		kh_msg_free(m);
		return;
	}
	if (m->sock == KH_CONTROL || (!execute && kh->state == KH_READY)) {
		kh_exec_handle(kh, m);
		kh_msg_free(m);
		return;
	}
	kh_exec_enqueue(kh, m, execute);
	kh_exec_pump(kh);
}

void kh_exec_pump(struct kh *kh)
{
	struct kh_req *r;

	while (kh->state == KH_READY && !kh->running && (r = kh->head)) {
		kh->head = r->next;
		if (!kh->head)
			kh->tail = NULL;
		r->next = NULL;
		if (r->execute) {
			kh_exec_start(kh, r);
			continue;
		}
		kh_exec_handle(kh, r->msg);
		kh_req_free(r);
	}
}

void kh_exec_cleanup(struct kh *kh)
{
	struct kh_req *r;

	while ((r = kh->head)) {
		kh->head = r->next;
		kh_req_free(r);
	}
	kh->tail = NULL;
	kh_req_free(kh->running);
	kh->running = NULL;
	json_decref(kh->parent);
	kh->parent = NULL;
	json_decref(kh->error);
	kh->error = NULL;
}
