/*
 * http: libmicrohttpd glue for the one loop thread (see http.h).
 *
 * MHD runs in "external epoll" mode: no threads of its own; its epoll fd is
 * watched by the loop and MHD_run() is called when it is readable, when its
 * timer fires, and soon after any connection was resumed (MHD requires that
 * in external mode). Each request gets a struct http_req from the first
 * access-handler call to MHD's completion callback; that is its whole life.
 * A request is answered once: at dispatch (queued at once), deferred
 * (suspended, answered when http_req_respond resumes it and MHD calls the
 * handler again), or as a stream whose reader suspends the connection when
 * the source is empty and is resumed by http_req_wake.
 *
 * Connections are accepted, bounded and checked before MHD sees them by
 * lobby.c, which hands each acceptable one over with MHD_add_connection;
 * this file tells it where each connection stands (receiving a body, being
 * answered, idle between requests) and applies its framing check to later
 * requests on a keep-alive connection.
 *
 * Suspended connections are invisible to MHD, so their socket is watched
 * here: readable with a zero-byte peek means the client is gone, which is
 * reported at once (gone/closed callback) before the connection is resumed
 * for MHD to tear down. Loop thread only; no MHD threads exist.
 */
#include "http.h"

#include <errno.h>
#include <malloc.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "dbuf.h"
#include "lobby.h"
#include "log.h"
#include "loop.h"

#define HTTP_MAX_EXTRA_HEADERS 4
#define HTTP_STREAM_BLOCK      (32 * 1024)
#define HTTP_TRIM_IDLE_MS      2000

enum http_state {
	HTTP_NEW,      /* body still arriving or not yet dispatched */
	HTTP_DEFERRED, /* suspended, waiting for http_req_respond */
	HTTP_READY,    /* answer stored, to queue on the next handler call */
	HTTP_STREAM,   /* streaming */
	HTTP_QUEUED,   /* a response was queued with MHD */
};

struct http {
	struct MHD_Daemon *d;
	struct lobby *lobby; /* the connections (lobby.c) */
	struct loop *loop;
	struct loop_watch *w;
	struct loop_timer timer;
	struct loop_timer trim_timer;
	size_t nanswer; /* answered requests not yet completed */
	http_handler handler;
	void *arg;
	long max_body;
	long max_connections;
	bool need_run;
	bool stopping; /* http_free runs: nothing may suspend any more */
	void (*on_answer)(void *arg, const char *tag, unsigned status);
	void *answer_arg;
	struct http_req *suspended; /* doubly linked */
};

struct http_req {
	struct http *h;
	struct MHD_Connection *conn;
	struct lobby_conn *c; /* NULL: none of the lobby's */
	const char *method, *path;
	struct dbuf body; /* capped at max_body */
	bool drain;	  /* body over max_body: read, dropped, then 413 */
	enum http_state state;
	bool answering; /* counted in h->nanswer */
	unsigned status;
	char *ctype;
	char *resp;
	size_t resp_len;
	char *hdr_name[HTTP_MAX_EXTRA_HEADERS],
	    *hdr_value[HTTP_MAX_EXTRA_HEADERS];
	int nhdr;
	void (*gone)(void *arg);
	void *gone_arg;
	struct http_source src;
	const char *tag;
	bool suspended, client_gone, notified;
	struct loop_watch *sockw;
	struct http_req *prev, *next;
};

static void http_on_timer(void *arg, short revents);

/*
 * MHD writes at most one buffer (the 16 KiB connection pool) per connection
 * per MHD_run and then reports a zero timeout. While it still has work that
 * is ready now, run it again here instead of going round the loop (a poll of
 * every watch) for each 16 KiB of a big stream; bounded, so kernels' sockets
 * are still read between bursts.
 */
#define HTTP_RUN_PASSES 8

static void http_run(struct http *h)
{
	MHD_UNSIGNED_LONG_LONG t;

	h->need_run = false;
	for (int i = 0; i < HTTP_RUN_PASSES; i++) {
		MHD_run(h->d);
		if (MHD_get_timeout(h->d, &t) != MHD_YES || t != 0)
			break;
	}
}

static void http_on_epoll(void *arg, short revents)
{
	(void)revents;
	http_run(arg);
}

static void http_on_timer(void *arg, short revents)
{
	(void)revents;
	http_run(arg);
}

/* MHD must run soon: a connection was resumed or added. The timer (rather
 * than only http_prepare) also covers loops run by others, e.g. the
 * shutdown's wait for kernels. */
static void http_want_run(struct http *h)
{
	h->need_run = true;
	loop_timer_arm(h->loop, &h->timer, 0, http_on_timer, h);
}

void http_prepare(struct http *h)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (h->need_run)
		http_run(h);
	if (MHD_get_timeout(h->d, &t) == MHD_YES) {
		loop_timer_arm(h->loop, &h->timer, (uint64_t)t, http_on_timer,
			       h);
	} else
		loop_timer_disarm(h->loop, &h->timer);
}

int http_port(const struct http *h)
{
	return lobby_port(h->lobby);
}

size_t http_pending(const struct http *h)
{
	return h ? h->nanswer : 0;
}

/* Tells the owner, once, that this request is over from its side. */
static void http_notify_end(struct http_req *r, bool completed)
{
	if (r->notified)
		return;
	r->notified = true;
	if (r->state == HTTP_STREAM && r->src.closed)
		r->src.closed(r->src.arg, completed);
	else if (r->state == HTTP_DEFERRED && r->gone)
		r->gone(r->gone_arg);
}

static void http_resume(struct http_req *r)
{
	if (!r->suspended)
		return;
	r->suspended = false;
	loop_del(r->h->loop, r->sockw);
	r->sockw = NULL;
	if (r->prev)
		r->prev->next = r->next;
	else
		r->h->suspended = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	MHD_resume_connection(r->conn);
	http_want_run(r->h);
}

static void http_on_sock(void *arg, short revents)
{
	struct http_req *r = arg;
	enum lobby_peer p;

	(void)revents;
	p = r->c ? lobby_peek(lobby_conn_fd(r->c)) : LOBBY_PEER_GONE;
	if (p == LOBBY_PEER_QUIET)
		return;
	if (p == LOBBY_PEER_SENT) {
		/* Pipelined bytes, not a close: stop watching, MHD reads them
		 * once the answer is done. */
		loop_set_events(r->sockw, 0);
		return;
	}
	r->client_gone = true;
	http_notify_end(r, false);
	http_resume(r);
}

static void http_suspend(struct http_req *r)
{
	if (r->suspended)
		return;
	MHD_suspend_connection(r->conn);
	r->suspended = true;
	r->next = r->h->suspended;
	if (r->next)
		r->next->prev = r;
	r->h->suspended = r;
	if (r->c)
		r->sockw = loop_add_fd(r->h->loop, lobby_conn_fd(r->c),
				       ZMQ_POLLIN, http_on_sock, r);
}

static void http_add_common_headers(struct http_req *r,
				    struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
	if (r->ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					r->ctype);
	for (int i = 0; i < r->nhdr; i++)
		MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]);
}

static enum MHD_Result http_queue_stored(struct http_req *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(r->resp_len, r->resp,
					       MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	http_add_common_headers(r, resp);
	ret = MHD_queue_response(r->conn, r->status, resp);
	if (r->h->on_answer)
		r->h->on_answer(r->h->answer_arg, r->tag, r->status);
	MHD_destroy_response(resp);
	r->state = HTTP_QUEUED;
	return ret;
}

static ssize_t http_stream_reader(void *cls, uint64_t pos, char *buf,
				  size_t max)
{
	struct http_req *r = cls;
	ssize_t n;

	(void)pos;
	if (r->client_gone || r->notified)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	n = r->src.read(r->src.arg, buf, max);
	if (n > 0)
		return n;
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (r->h->stopping)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	http_suspend(r);
	return 0;
}

static enum MHD_Result http_queue_stream(struct http_req *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK, http_stream_reader, r, NULL);
	if (!resp)
		return MHD_NO;
	http_add_common_headers(r, resp);
	ret = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
	if (r->h->on_answer)
		r->h->on_answer(r->h->answer_arg, r->tag, MHD_HTTP_OK);
	MHD_destroy_response(resp);
	return ret;
}

static void http_preflight(struct http_req *r)
{
	const char *hdrs = http_req_header(r, "Access-Control-Request-Headers");

	http_req_add_header(r, "Access-Control-Allow-Methods",
			    "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
	http_req_add_header(r, "Access-Control-Allow-Headers",
			    hdrs && *hdrs ? hdrs : "*");
	http_req_add_header(r, "Access-Control-Max-Age", "86400");
	http_req_respond(r, 204, NULL, "", 0);
}

static void http_dispatch(struct http *h, struct http_req *r)
{
	if (strcmp(r->method, "OPTIONS") == 0)
		http_preflight(r);
	else
		h->handler(h->arg, r);
	if (r->state == HTTP_NEW)
		http_req_text(r, 500,
			      "Internal error: the request got no answer");
}

static bool http_collect(struct http_req *r, const char *data, size_t n)
{
	return dbuf_add(&r->body, data, n) == 0;
}

/* A body without Content-Length passed max_body: MHD can queue no answer
 * in the middle of a body, so the 413 goes on the socket directly and the
 * caller makes MHD close the connection (nothing more is read). */
static void http_too_large(struct http_req *r)
{
	char why[96];

	snprintf(why, sizeof(why), "Request body too large (limit %ld bytes)",
		 r->h->max_body);
	if (r->c)
		lobby_raw_answer(r->h->lobby, lobby_conn_fd(r->c), 413, why);
}

static struct lobby_conn *http_conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static struct http_req *http_req_new(struct http *h,
				     struct MHD_Connection *conn,
				     const char *url, const char *method)
{
	struct http_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->h = h;
	r->conn = conn;
	dbuf_init(&r->body, (size_t)h->max_body);
	r->path = url;
	r->method = method;
	r->c = http_conn_of(conn);
	if (r->c)
		lobby_conn_receiving(r->c);
	return r;
}

/* The first handler call: headers complete, no body read yet. A bad
 * framing (or a Content-Length too far over the limit, or over it with
 * Expect: 100-continue) is answered now; MHD then closes without reading
 * the body. A body a little over the limit is drained first (lobby.h,
 * LOBBY_DRAIN_MAX). */
static enum MHD_Result http_begin(struct http *h, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  void **con_cls)
{
	struct http_req *r = http_req_new(h, conn, url, method);
	char why[160];
	unsigned status;

	*con_cls = r;
	if (!r)
		return MHD_NO;
	status = lobby_check_request(h->lobby, conn, why, sizeof(why));
	if (!status) {
		/* The lobby checked the framing: a Content-Length here is one
		 * clean decimal number. */
		const char *cl = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

		r->drain = cl && strtoull(cl, NULL, 10) >
				     (unsigned long long)h->max_body;
		return MHD_YES;
	}
	http_req_text(r, status, "%s", why);
	if (r->c)
		lobby_conn_answering(r->c);
	return http_queue_stored(r);
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn,
				   const char *url, const char *method,
				   const char *version, const char *upload,
				   size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct http_req *r = *con_cls;

	(void)version;
	if (!r)
		return http_begin(h, conn, url, method, con_cls);
	if (*upload_size > 0 && r->drain) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->drain && r->state == HTTP_NEW) {
		http_req_text(r, 413,
			      "Request body too large (limit %ld bytes)",
			      h->max_body);
		if (r->c)
			lobby_conn_answering(r->c);
		return http_queue_stored(r);
	}
	if (*upload_size > 0) {
		if (dbuf_len(&r->body) + *upload_size > (size_t)h->max_body) {
			http_too_large(r);
			return MHD_NO;
		}
		bool ok = http_collect(r, upload, *upload_size);
		*upload_size = 0;
		return ok ? MHD_YES : MHD_NO;
	}
	if (r->client_gone || (h->stopping && r->state == HTTP_DEFERRED))
		return MHD_NO;
	switch (r->state) {
	case HTTP_NEW:
		if (r->c)
			lobby_conn_answering(r->c);
		http_dispatch(h, r);
		break;
	case HTTP_DEFERRED:
		http_suspend(r);
		return MHD_YES;
	default:
		break;
	}
	if (r->state == HTTP_READY)
		return http_queue_stored(r);
	if (r->state == HTTP_STREAM)
		return http_queue_stream(r);
	if (r->state == HTTP_DEFERRED)
		http_suspend(r);
	return MHD_YES;
}

/* glibc keeps freed heap (connection pools, bodies, stream buffers) for
 * reuse; once traffic pauses, hand it back so RSS returns to idle size. */
static void http_trim(void *arg, short revents)
{
	(void)arg;
	(void)revents;
	malloc_trim(0);
}

static void http_req_free(struct http_req *r)
{
	dbuf_cleanup(&r->body);
	free(r->ctype);
	free(r->resp);
	for (int i = 0; i < r->nhdr; i++) {
		free(r->hdr_name[i]);
		free(r->hdr_value[i]);
	}
	free(r);
}

static void http_completed(void *cls, struct MHD_Connection *conn,
			   void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct http_req *r = *con_cls;

	(void)conn;
	loop_timer_arm(h->loop, &h->trim_timer, HTTP_TRIM_IDLE_MS, http_trim,
		       h);
	if (!r)
		return;
	*con_cls = NULL;
	http_resume(r);
	http_notify_end(r, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK &&
			       !r->client_gone);
	if (r->answering)
		h->nanswer--;
	/* Between two requests a keep-alive connection is idle again. */
	if (r->c)
		lobby_conn_idle(r->c);
	http_req_free(r);
}

static void http_conn_event(void *cls, struct MHD_Connection *conn,
			    void **socket_context,
			    enum MHD_ConnectionNotificationCode toe)
{
	struct http *h = cls;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		*socket_context = lobby_conn_started(h->lobby, conn);
		return;
	}
	if (toe != MHD_CONNECTION_NOTIFY_CLOSED || !*socket_context)
		return;
	lobby_conn_closed(*socket_context);
	*socket_context = NULL;
	loop_timer_arm(h->loop, &h->trim_timer, HTTP_TRIM_IDLE_MS, http_trim,
		       h);
}

static void http_logger(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void http_logger(void *cls, const char *fmt, va_list ap)
{
	char line[512];

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	/* MHD reports client-side trouble (resets, aborted streams) here;
	 * the daemon's own failures are logged where they happen. */
	log_debug("http: %s", line);
}

static struct MHD_Daemon *http_start_mhd(struct http *h)
{
	/* Our own count decides (see lobby.c, lobby_add); MHD's limit only has
	 * to leave room for evicted connections it has not closed yet. */
	unsigned limit = (unsigned)h->max_connections * 2;

	return MHD_start_daemon(
	    MHD_USE_NO_LISTEN_SOCKET | MHD_USE_EPOLL |
		MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
	    0, NULL, NULL, http_access, h, MHD_OPTION_EXTERNAL_LOGGER,
	    http_logger, h, MHD_OPTION_NOTIFY_COMPLETED, http_completed, h,
	    MHD_OPTION_NOTIFY_CONNECTION, http_conn_event, h,
	    MHD_OPTION_CONNECTION_LIMIT, limit,
	    /* An inactivity timeout, for bodies that stop arriving; idle
	     * connections are closed by lobby.c's sweep long before. */
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
	    /* Requests here have few small headers and bodies are collected
	     * outside MHD's pool: half the default keeps 1000 idle
	     * connections cheap (15.5 vs 31 MiB). The pool is also a
	     * stream's write buffer; `make bench` saw stdout at 0.88-0.92x
	     * of the floor with 16 KiB, 0.89-0.92x with 32 KiB and 0.93x
	     * with 64 KiB (63 MiB for 1000 connections): not worth it. */
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384, MHD_OPTION_END);
}

static void http_on_want_run(void *arg)
{
	http_want_run(arg);
}

/* The connections' side: listening, the lobby and the bounds. */
static struct lobby *http_new_lobby(struct http *h, const struct http_opts *o,
				    char *err, size_t errlen)
{
	struct lobby_opts lo = {
	    .listen = o->listen,
	    .port = o->port,
	    .max_body = o->max_body,
	    .max_connections = o->max_connections,
	    .header_timeout_ms = o->header_timeout_ms,
	    .on_answer = o->on_answer,
	    .answer_arg = o->answer_arg,
	    .want_run = http_on_want_run,
	    .run_arg = h,
	};

	return lobby_new(h->loop, &lo, err, errlen);
}

struct http *http_new(struct loop *l, const struct http_opts *o,
		      http_handler handler, void *arg, char *err, size_t errlen)
{
	struct http *h = calloc(1, sizeof(*h));
	const union MHD_DaemonInfo *di;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->loop = l;
	h->handler = handler;
	h->arg = arg;
	h->max_body = o->max_body;
	h->max_connections = o->max_connections;
	h->on_answer = o->on_answer;
	h->answer_arg = o->answer_arg;
	h->lobby = http_new_lobby(h, o, err, errlen);
	if (!h->lobby)
		goto fail;
	h->d = http_start_mhd(h);
	if (!h->d) {
		snprintf(err, errlen, "cannot start libmicrohttpd: %s",
			 strerror(errno));
		goto fail;
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	h->w = di ? loop_add_fd(l, di->epoll_fd, ZMQ_POLLIN, http_on_epoll, h)
		  : NULL;
	if (!h->w) {
		snprintf(err, errlen, "cannot watch the HTTP sockets");
		goto fail;
	}
	if (lobby_open(h->lobby, h->d, err, errlen) < 0)
		goto fail;
	return h;
fail:
	http_free(h);
	return NULL;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	h->stopping = true;
	while (h->suspended)
		http_resume(h->suspended);
	if (h->d) {
		/* MHD moves resumed connections back only inside MHD_run; it
		 * aborts when stopped with any still suspended. It closes its
		 * connections, and http_conn_event forgets them. */
		MHD_run(h->d);
		MHD_stop_daemon(h->d);
	}
	/* What is left is in the lobby (or was never told closed). */
	lobby_free(h->lobby);
	loop_del(h->loop, h->w);
	loop_timer_disarm(h->loop, &h->timer);
	loop_timer_disarm(h->loop, &h->trim_timer);
	free(h);
}

const char *http_req_method(const struct http_req *r)
{
	return r->method;
}

const char *http_req_path(const struct http_req *r)
{
	return r->path;
}

const char *http_req_header(const struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_req_body(const struct http_req *r, size_t *len)
{
	*len = dbuf_len(&r->body);
	return dbuf_ptr(&r->body);
}

void http_req_set_tag(struct http_req *r, const char *tag)
{
	r->tag = tag;
}

void http_req_add_header(struct http_req *r, const char *name,
			 const char *value)
{
	if (r->nhdr >= HTTP_MAX_EXTRA_HEADERS)
		return;
	r->hdr_name[r->nhdr] = strdup(name);
	r->hdr_value[r->nhdr] = strdup(value);
	if (r->hdr_name[r->nhdr] && r->hdr_value[r->nhdr])
		r->nhdr++;
}

/* The request has an answer (or will have one): the shutdown waits for it
 * to reach the client. */
static void http_req_answering(struct http_req *r)
{
	if (r->answering)
		return;
	r->answering = true;
	r->h->nanswer++;
}

void http_req_respond(struct http_req *r, unsigned status, const char *ctype,
		      const char *body, size_t len)
{
	bool deferred = r->state == HTTP_DEFERRED;

	if (r->state != HTTP_NEW && !deferred)
		return;
	http_req_answering(r);
	r->status = status;
	r->ctype = ctype ? strdup(ctype) : NULL;
	r->resp = malloc(len ? len : 1);
	if (r->resp)
		memcpy(r->resp, body, len);
	r->resp_len = r->resp ? len : 0;
	r->state = HTTP_READY;
	if (deferred)
		http_resume(r);
}

void http_req_text(struct http_req *r, unsigned status, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	http_req_respond(r, status, "text/plain; charset=utf-8", line,
			 (size_t)n);
}

void http_req_defer(struct http_req *r, void (*gone)(void *arg), void *arg)
{
	http_req_answering(r);
	r->state = HTTP_DEFERRED;
	r->gone = gone;
	r->gone_arg = arg;
}

void http_req_stream(struct http_req *r, const char *ctype,
		     const struct http_source *src)
{
	bool deferred = r->state == HTTP_DEFERRED;

	http_req_answering(r);
	r->src = *src;
	free(r->ctype);
	r->ctype = strdup(ctype);
	r->state = HTTP_STREAM;
	if (deferred)
		http_resume(r);
}

void http_req_wake(struct http_req *r)
{
	if (r->state == HTTP_STREAM)
		http_resume(r);
}
