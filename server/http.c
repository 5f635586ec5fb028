/*
 * http: libmicrohttpd glue for the one loop thread (see http.h).
 *
 * MHD runs in "external epoll" mode: no threads of its own; its epoll fd is
 * watched by the loop and MHD_run() is called when it is readable, when its
 * timer fires, and before a loop turn after any connection was resumed (MHD
 * requires that in external mode). Each request gets a struct http_req from
 * the first access-handler call to MHD's completion callback; that is its
 * whole life. A request is answered once: at dispatch (queued at once),
 * deferred (suspended, answered when http_req_respond resumes it and MHD
 * calls the handler again), or as a stream whose reader suspends the
 * connection when the source is empty and is resumed by http_req_wake.
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
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <zmq.h>

#include "log.h"
#include "loop.h"

#define HTTP_MAX_EXTRA_HEADERS 4
#define HTTP_STREAM_BLOCK      (32 * 1024)
#define HTTP_TRIM_IDLE_MS      2000
#define HTTP_SWEEP_MS	       1000

enum http_state {
	HTTP_NEW,      /* body still arriving or not yet dispatched */
	HTTP_DEFERRED, /* suspended, waiting for http_req_respond */
	HTTP_READY,    /* answer stored, to queue on the next handler call */
	HTTP_STREAM,   /* streaming */
	HTTP_QUEUED,   /* a response was queued with MHD */
};

struct http {
	struct MHD_Daemon *d;
	struct loop *loop;
	struct loop_watch *w;
	struct loop_timer timer;
	struct loop_timer trim_timer;
	struct loop_timer sweep_timer;
	int *conn_fds; /* sockets of open connections (MHD's), for the sweep */
	size_t nconn, capconn;
	http_handler handler;
	void *arg;
	long max_body;
	int port;
	bool need_run;
	bool stopping; /* http_free runs: nothing may suspend any more */
	void (*on_answer)(void *arg, const char *tag, unsigned status);
	void *answer_arg;
	struct http_req *suspended; /* doubly linked */
};

struct http_req {
	struct http *h;
	struct MHD_Connection *conn;
	const char *method, *path;
	char *body;
	size_t len, cap;
	bool too_large;
	enum http_state state;
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
	return h->port;
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
	r->h->need_run = true;
}

/* What a peek at a client socket says about the peer. */
enum http_peer { HTTP_PEER_QUIET, HTTP_PEER_SENT, HTTP_PEER_GONE };

static enum http_peer http_peek(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n > 0)
		return HTTP_PEER_SENT;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return HTTP_PEER_QUIET;
	return HTTP_PEER_GONE; /* EOF, reset, or any other error */
}

static void http_on_sock(void *arg, short revents)
{
	struct http_req *r = arg;
	const union MHD_ConnectionInfo *ci;
	enum http_peer p;

	(void)revents;
	ci =
	    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	p = ci ? http_peek(ci->connect_fd) : HTTP_PEER_GONE;
	if (p == HTTP_PEER_QUIET)
		return;
	if (p == HTTP_PEER_SENT) {
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
	const union MHD_ConnectionInfo *ci;

	if (r->suspended)
		return;
	MHD_suspend_connection(r->conn);
	r->suspended = true;
	r->next = r->h->suspended;
	if (r->next)
		r->next->prev = r;
	r->h->suspended = r;
	ci =
	    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci)
		r->sockw = loop_add_fd(r->h->loop, ci->connect_fd, ZMQ_POLLIN,
				       http_on_sock, r);
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
			    "GET, POST, PUT, PATCH, DELETE, OPTIONS");
	http_req_add_header(r, "Access-Control-Allow-Headers",
			    hdrs && *hdrs ? hdrs : "*");
	http_req_add_header(r, "Access-Control-Max-Age", "86400");
	http_req_respond(r, 204, NULL, "", 0);
}

static void http_dispatch(struct http *h, struct http_req *r)
{
	if (r->too_large)
		http_req_text(r, 413,
			      "Request body too large (limit %ld bytes)",
			      h->max_body);
	else if (strcmp(r->method, "OPTIONS") == 0)
		http_preflight(r);
	else
		h->handler(h->arg, r);
	if (r->state == HTTP_NEW)
		http_req_text(r, 500,
			      "Internal error: the request got no answer");
}

static bool http_collect(struct http *h, struct http_req *r, const char *data,
			 size_t n)
{
	if (r->too_large)
		return true;
	if (r->len + n > (size_t)h->max_body) {
		r->too_large = true;
		free(r->body);
		r->body = NULL;
		r->len = r->cap = 0;
		return true;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 1024;
		while (cap < r->len + n + 1)
			cap *= 2;
		char *nb = realloc(r->body, cap);
		if (!nb)
			return false;
		r->body = nb;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return true;
}

static struct http_req *http_req_new(struct http *h,
				     struct MHD_Connection *conn,
				     const char *url, const char *method)
{
	struct http_req *r = calloc(1, sizeof(*r));
	const char *cl;

	if (!r)
		return NULL;
	r->h = h;
	r->conn = conn;
	r->path = url;
	r->method = method;
	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > (unsigned long long)h->max_body)
		r->too_large = true;
	return r;
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn,
				   const char *url, const char *method,
				   const char *version, const char *upload,
				   size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct http_req *r = *con_cls;

	(void)version;
	if (!r) {
		r = http_req_new(h, conn, url, method);
		*con_cls = r;
		return r ? MHD_YES : MHD_NO;
	}
	if (*upload_size > 0) {
		bool ok = http_collect(h, r, upload, *upload_size);
		*upload_size = 0;
		return ok ? MHD_YES : MHD_NO;
	}
	if (r->client_gone || (h->stopping && r->state == HTTP_DEFERRED))
		return MHD_NO;
	switch (r->state) {
	case HTTP_NEW:
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
	free(r->body);
	free(r->ctype);
	free(r->resp);
	for (int i = 0; i < r->nhdr; i++) {
		free(r->hdr_name[i]);
		free(r->hdr_value[i]);
	}
	free(r);
}

/* MHD's epoll mode is edge-triggered and reads once per event: when a
 * client's last bytes and its FIN arrive together before the request is
 * complete, MHD never looks at that socket again and it stays in CLOSE-WAIT
 * until the connection timeout. The sweep finds sockets whose peer is gone
 * and shuts them down: that raises a fresh epoll event, on which MHD sees
 * the end and closes the connection. */
static void http_sweep(void *arg, short revents)
{
	struct http *h = arg;

	(void)revents;
	/* MHD also closes the sockets of connections it ended only in its next
	 * run, and nothing else may wake it: one run per sweep releases them.
	 */
	h->need_run = true;
	for (size_t i = 0; i < h->nconn; i++)
		if (http_peek(h->conn_fds[i]) == HTTP_PEER_GONE)
			shutdown(h->conn_fds[i], SHUT_RDWR);
	if (h->nconn)
		loop_timer_arm(h->loop, &h->sweep_timer, HTTP_SWEEP_MS,
			       http_sweep, h);
}

static void http_conn_event(void *cls, struct MHD_Connection *conn,
			    void **socket_context,
			    enum MHD_ConnectionNotificationCode toe)
{
	struct http *h = cls;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	int fd = ci ? ci->connect_fd : -1;

	(void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED && fd >= 0) {
		if (h->nconn == h->capconn) {
			size_t cap = h->capconn ? h->capconn * 2 : 64;
			int *nf = realloc(h->conn_fds, cap * sizeof(*nf));
			if (!nf)
				return;
			h->conn_fds = nf;
			h->capconn = cap;
		}
		h->conn_fds[h->nconn++] = fd;
		if (!h->sweep_timer.armed)
			loop_timer_arm(h->loop, &h->sweep_timer, HTTP_SWEEP_MS,
				       http_sweep, h);
		return;
	}
	if (toe != MHD_CONNECTION_NOTIFY_CLOSED)
		return;
	for (size_t i = 0; i < h->nconn; i++) {
		if (h->conn_fds[i] == fd) {
			h->conn_fds[i] = h->conn_fds[--h->nconn];
			break;
		}
	}
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

/* Resolves o->listen into addr; returns the MHD flags it needs or -1. */
static int http_resolve(const struct http_opts *o,
			struct sockaddr_storage *addr, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE},
			*res = NULL;
	char port[16];
	int rc;

	snprintf(port, sizeof(port), "%ld", o->port);
	rc = getaddrinfo(o->listen, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve listen address '%s': %s",
			 o->listen, gai_strerror(rc));
		return -1;
	}
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	rc = res->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0;
	freeaddrinfo(res);
	/* "::" (or the empty address) means every address, IPv4 included. */
	if (rc &&
	    IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)addr)->sin6_addr))
		rc = MHD_USE_DUAL_STACK;
	return rc;
}

struct http *http_new(struct loop *l, const struct http_opts *o,
		      http_handler handler, void *arg, char *err, size_t errlen)
{
	struct http *h = calloc(1, sizeof(*h));
	struct sockaddr_storage addr = {0};
	const union MHD_DaemonInfo *di;
	int flags;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->loop = l;
	h->handler = handler;
	h->arg = arg;
	h->max_body = o->max_body;
	h->on_answer = o->on_answer;
	h->answer_arg = o->answer_arg;
	flags = http_resolve(o, &addr, err, errlen);
	if (flags < 0)
		goto fail;
	h->d = MHD_start_daemon(
	    (unsigned)flags | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
		MHD_USE_ERROR_LOG,
	    0, NULL, NULL, http_access, h, MHD_OPTION_EXTERNAL_LOGGER,
	    http_logger, h, MHD_OPTION_SOCK_ADDR, &addr,
	    MHD_OPTION_NOTIFY_COMPLETED, http_completed, h,
	    MHD_OPTION_NOTIFY_CONNECTION, http_conn_event, h,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
	    /* Requests here have few small headers and bodies are collected
	     * outside MHD's pool: half the default keeps 1000 idle
	     * connections cheap (15.5 vs 31 MiB). The pool is also a
	     * stream's write buffer; `make bench` saw stdout at 0.88-0.92x
	     * of the floor with 16 KiB, 0.89-0.92x with 32 KiB and 0.93x
	     * with 64 KiB (63 MiB for 1000 connections): not worth it. */
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384, MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, errlen, "cannot listen on [%s]:%ld: %s",
			 o->listen, o->port, strerror(errno));
		goto fail;
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : (int)o->port;
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	h->w = di ? loop_add_fd(l, di->epoll_fd, ZMQ_POLLIN, http_on_epoll, h)
		  : NULL;
	if (!h->w) {
		snprintf(err, errlen, "cannot watch the HTTP epoll fd");
		goto fail;
	}
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
		 * aborts when stopped with any still suspended. */
		MHD_run(h->d);
		MHD_stop_daemon(h->d);
	}
	loop_del(h->loop, h->w);
	loop_timer_disarm(h->loop, &h->timer);
	loop_timer_disarm(h->loop, &h->trim_timer);
	loop_timer_disarm(h->loop, &h->sweep_timer);
	free(h->conn_fds);
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
	*len = r->len;
	return r->body ? r->body : "";
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

void http_req_respond(struct http_req *r, unsigned status, const char *ctype,
		      const char *body, size_t len)
{
	bool deferred = r->state == HTTP_DEFERRED;

	if (r->state != HTTP_NEW && !deferred)
		return;
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
	r->state = HTTP_DEFERRED;
	r->gone = gone;
	r->gone_arg = arg;
}

void http_req_stream(struct http_req *r, const char *ctype,
		     const struct http_source *src)
{
	bool deferred = r->state == HTTP_DEFERRED;

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
