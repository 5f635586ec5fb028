/*
 * kh_json.c: json mode (kernels/RUNNER-PROTOCOL.md, "Mode json").
 *
 * The runner reads one JSON request per line on stdin ({"type":"execute",
 * "id","code","silent"} or {"type":"shutdown"}) and writes one JSON event
 * per line on fd 3 (ready, stream, display, result, error, done); what user
 * code writes to fd 1 and 2 becomes stream output as it arrives, and each
 * "stream" event one stream message (the runner chose its boundaries).
 *
 * Owns the partial event line and the id of the running request. Ordering:
 * before any event is acted on, fd 1 and 2 are drained (non-blocking, until
 * EAGAIN), so output written before a display or before "done" is published
 * before it and never lands behind the execute_reply. Events for another id
 * than the running one (late, or from a confused runner) are dropped, and
 * so are malformed lines: the runner must not be able to crash the host.
 * An event line is bounded (KH_JSON_LINE_MAX); a longer one is discarded up
 * to its newline.
 *
 * Loop thread only. Interrupts are SIGINT to the runner's process group;
 * the runner turns it into an error + done for the running request. A
 * runner whose ready event says "announces_start" gets no SIGINT for a
 * request before its "started" event: an interrupt that comes earlier is
 * held until then, since the runner could otherwise see the signal before
 * it has read the request, take it for a late one and drop it. Held for
 * KH_JSON_HOLD_MS at most: a runner that cannot start the request (busy in
 * a leftover of an earlier cell) needs the signal to get free.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "dbuf.h"
#include "kh.h"
#include "kh_exec.h"
#include "log.h"
#include "wire.h"

#define KH_JSON_LINE_MAX (256u << 20) /* one event (MIME bundles are big) */
#define KH_JSON_DRAIN	 (4u << 20)   /* bytes of fd 1/2 read per event */
#define KH_JSON_HOLD_MS	 500	      /* longest wait for "started" */

struct kh_json {
	struct dbuf line; /* event bytes received without their newline yet */
	bool skipping;	  /* dropping an over-long line up to its newline */
	json_int_t id;	  /* the running request's id; 0: none */
	json_int_t next;  /* last id handed out */
	bool announces;	  /* the runner sends "started" for each request */
	bool started;	  /* it did for the running one */
	bool held;	  /* an interrupt waits for that */
	struct loop_timer hold; /* ... at most this long */
};

static int kh_json_init(struct kh *kh)
{
	kh->json = calloc(1, sizeof(*kh->json));
	if (!kh->json)
		return -ENOMEM;
	dbuf_init(&kh->json->line, KH_JSON_LINE_MAX);
	return 0;
}

/* The runner announces itself with a ready event; nothing to send. */
static int kh_json_start(struct kh *kh)
{
	(void)kh;
	return 0;
}

static int kh_json_dump_add(const char *data, size_t size, void *arg)
{
	return dbuf_add(arg, data, size);
}

/* Sends req as one line, in one write: a request is queued whole or not
 * at all (kh_proc_write). */
static int kh_json_send(struct kh *kh, json_t *req)
{
	struct dbuf line = DBUF_INIT(DBUF_NOMAX);
	int rc = -ENOMEM;

	/* Compact JSON escapes newlines in strings: one request, one line. */
	if (req &&
	    json_dump_callback(req, kh_json_dump_add, &line, JSON_COMPACT) ==
		0 &&
	    dbuf_add(&line, "\n", 1) == 0)
		rc = kh_proc_write(&kh->proc, dbuf_ptr(&line), dbuf_len(&line));
	dbuf_cleanup(&line);
	return rc;
}

/* Forgets a held interrupt (its request is done, or a new one starts). */
static void kh_json_unhold(struct kh *kh)
{
	struct kh_json *j = kh->json;

	j->held = false;
	if (kh->loop)
		loop_timer_disarm(kh->loop, &j->hold);
}

/* Sends the held SIGINT: the request started, or the wait was too long. */
static void kh_json_release(struct kh *kh)
{
	if (!kh->json->held)
		return;
	kh_json_unhold(kh);
	kh_proc_signal(&kh->proc, SIGINT);
}

static void kh_json_hold_expired(void *arg, short revents)
{
	(void)revents;
	kh_json_release(arg);
}

static int kh_json_execute(struct kh *kh, json_t *code, bool silent)
{
	struct kh_json *j = kh->json;
	json_t *req;
	int rc;

	j->id = ++j->next;
	j->started = false;
	kh_json_unhold(kh);
	req = json_pack("{s:s,s:I,s:O,s:b}", "type", "execute", "id", j->id,
			"code", code, "silent", silent);
	rc = kh_json_send(kh, req);
	json_decref(req);
	if (rc < 0)
		j->id = 0;
	return rc;
}

static void kh_json_interrupt(struct kh *kh)
{
	struct kh_json *j = kh->json;

	if (j->announces && j->id != 0 && !j->started) {
		if (!j->held)
			loop_timer_arm(kh->loop, &j->hold, KH_JSON_HOLD_MS,
				       kh_json_hold_expired, kh);
		j->held = true;
		return;
	}
	kh_proc_signal(&kh->proc, SIGINT);
}

static int kh_json_stop(struct kh *kh)
{
	json_t *req = json_pack("{s:s}", "type", "shutdown");

	kh_json_send(kh, req);
	json_decref(req);
	return 0;
}

/* Reports an event of the running request (id already checked). */
static void kh_json_cell_event(struct kh *kh, const char *type, json_t *ev)
{
	struct kh_json *j = kh->json;
	json_t *data = json_object_get(ev, "data");
	const char *s;

	if (strcmp(type, "display") == 0 || strcmp(type, "result") == 0) {
		if (!json_is_object(data))
			return;
		kh_exec_data(kh,
			     type[0] == 'd' ? "display_data" : "execute_result",
			     data, json_object_get(ev, "metadata"),
			     json_object_get(ev, "transient"));
	} else if (strcmp(type, "started") == 0) {
		j->started = true;
		kh_json_release(kh);
	} else if (strcmp(type, "stream") == 0) {
		s = json_string_value(json_object_get(ev, "name"));
		if (s && (strcmp(s, "stdout") == 0 || strcmp(s, "stderr") == 0))
			kh_exec_stream_text(kh,
					    strcmp(s, "stderr") == 0
						? KH_FD_STDERR
						: KH_FD_STDOUT,
					    json_object_get(ev, "text"));
	} else if (strcmp(type, "error") == 0) {
		s = json_string_value(json_object_get(ev, "ename"));
		kh_exec_error(kh, s ? s : "Error",
			      json_string_value(json_object_get(ev, "evalue"))
				  ?: "",
			      json_object_get(ev, "traceback"));
	} else if (strcmp(type, "done") == 0) {
		s = json_string_value(json_object_get(ev, "status"));
		if (s && strcmp(s, "ok") != 0)
			kh_exec_error(kh, "Error", "the cell failed", NULL);
		j->id = 0;
		kh_json_unhold(kh);
		kh_exec_done(kh);
	} else {
		log_debug("runner event %.32s ignored", type);
	}
}

static void kh_json_event(struct kh *kh, const char *line, size_t len)
{
	struct kh_json *j = kh->json;
	size_t clen = 0;
	char *clean = wire_utf8_sanitize(line, len, &clen);
	json_error_t jerr;
	json_t *ev = clean ? json_loadb(clean, clen, 0, &jerr) : NULL;
	const char *type = json_string_value(json_object_get(ev, "type"));

	if (!type) {
		log_warnx("runner sent a malformed event (%.64s)",
			  ev	  ? "no type"
			  : clean ? jerr.text
				  : "no memory");
		goto out;
	}
	/* Output written before this event goes out before it. */
	kh_proc_drain(&kh->proc, KH_JSON_DRAIN);
	if (strcmp(type, "ready") == 0) {
		j->announces =
		    json_is_true(json_object_get(ev, "announces_start"));
		kh_ready(kh, json_object_get(ev, "language_info"),
			 json_string_value(json_object_get(ev, "banner")));
	} else if (kh->running && j->id != 0 &&
		   json_integer_value(json_object_get(ev, "id")) == j->id) {
		kh_json_cell_event(kh, type, ev);
	} else {
		log_debug("runner event %.32s for no running request", type);
	}
out:
	free(clean);
	json_decref(ev);
}

/* Splits fd 3 bytes into lines and handles each complete one. */
static void kh_json_events(struct kh *kh, const char *buf, size_t len)
{
	struct kh_json *j = kh->json;
	const char *nl;
	size_t n;

	while (len > 0) {
		nl = memchr(buf, '\n', len);
		n = nl ? (size_t)(nl - buf) : len;
		if (!j->skipping && dbuf_add(&j->line, buf, n) < 0) {
			log_warnx("runner event longer than %u bytes dropped",
				  KH_JSON_LINE_MAX);
			j->skipping = true;
			dbuf_reset(&j->line);
		}
		if (!nl)
			return;
		if (!j->skipping && dbuf_len(&j->line) > 0)
			kh_json_event(kh, dbuf_ptr(&j->line),
				      dbuf_len(&j->line));
		j->skipping = false;
		dbuf_reset(&j->line);
		buf = nl + 1;
		len -= n + 1;
	}
}

static void kh_json_data(struct kh *kh, enum kh_fd fd, const char *buf,
			 size_t len)
{
	if (fd == KH_FD_EVENTS) {
		kh_json_events(kh, buf, len);
		return;
	}
	if (kh->state == KH_STARTING) {
		log_info("runner %s before ready: %.*s",
			 fd == KH_FD_STDOUT ? "stdout" : "stderr",
			 (int)(len > 500 ? 500 : len), buf);
		return;
	}
	kh_exec_stream(kh, fd, buf, len);
}

static void kh_json_cleanup(struct kh *kh)
{
	if (!kh->json)
		return;
	kh_json_unhold(kh);
	dbuf_cleanup(&kh->json->line);
	free(kh->json);
	kh->json = NULL;
}

const struct kh_mode kh_json_mode = {
    .name = "json",
    .events = true,
    .init = kh_json_init,
    .start = kh_json_start,
    .execute = kh_json_execute,
    .interrupt = kh_json_interrupt,
    .data = kh_json_data,
    .stop = kh_json_stop,
    .cleanup = kh_json_cleanup,
};
