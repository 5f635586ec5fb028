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
 * Connections are accepted here, not by MHD. A new connection waits in the
 * lobby (a loop watch, no MHD state) until its first request head is
 * complete in the socket buffer: peeked, never read, so MHD later reads it
 * all. The head's framing is checked first (Content-Length, Transfer-
 * Encoding, --max-body), because MHD 0.9.75 answers a malformed
 * Content-Length with its header block twice and takes ambiguous framing
 * at its word; a bad head is answered here and closed. A good one is
 * handed to MHD with MHD_add_connection. Later requests on a keep-alive
 * connection get the same framing check in the access handler.
 *
 * Every connection is tracked (struct http_conn) on one of two lists, each
 * in the order its members joined: idle (no complete request head yet: in
 * the lobby, or between two requests) and receiving (head complete, body
 * arriving). Idle connections are closed after header_timeout_ms, however
 * slowly they trickle bytes. At max_connections the longest idle one (else
 * a receiving one older than header_timeout_ms) is closed to make room;
 * with none, the new connection gets 503 and is closed. Connections being
 * answered (streams included) are never cut.
 *
 * Suspended connections are invisible to MHD, so their socket is watched
 * here: readable with a zero-byte peek means the client is gone, which is
 * reported at once (gone/closed callback) before the connection is resumed
 * for MHD to tear down. Loop thread only; no MHD threads exist.
 */
#include "http.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"
#include "loop.h"

#define HTTP_MAX_EXTRA_HEADERS 4
#define HTTP_STREAM_BLOCK      (32 * 1024)
#define HTTP_TRIM_IDLE_MS      2000
#define HTTP_SWEEP_MS	       1000
#define HTTP_HEAD_MAX	       8192 /* a request head, in the lobby */
#define HTTP_ACCEPT_BATCH      64   /* accepts per loop turn */
#define HTTP_ACCEPT_PAUSE_MS   100  /* after EMFILE and the like */
#define HTTP_LIMIT_LOG_MS      10000

enum http_state {
	HTTP_NEW,      /* body still arriving or not yet dispatched */
	HTTP_DEFERRED, /* suspended, waiting for http_req_respond */
	HTTP_READY,    /* answer stored, to queue on the next handler call */
	HTTP_STREAM,   /* streaming */
	HTTP_QUEUED,   /* a response was queued with MHD */
};

struct http_conn;

/* A list of connections in the order they joined it. */
struct http_list {
	struct http_conn *head, *tail;
};

struct http_conn {
	struct http *h;
	int fd;
	struct MHD_Connection *mhd; /* NULL while in the lobby */
	struct http_req *req;	    /* the request whose head is complete */
	struct http_list *list;	    /* idle, receiving or none (answering) */
	uint64_t since;		    /* when it joined that list */
	struct loop_watch *w;	    /* lobby: its socket */
	size_t seen;		    /* lobby: head bytes peeked so far */
	bool evicted;		    /* shut down, MHD still to close it */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct http_conn *prev, *next;
};

struct http {
	struct MHD_Daemon *d;
	struct loop *loop;
	struct loop_watch *w;
	struct loop_watch *lw; /* the listening socket */
	int listen_fd;
	struct loop_timer timer;
	struct loop_timer trim_timer;
	struct loop_timer sweep_timer;
	struct loop_timer accept_timer;
	struct http_list idle, receiving;
	size_t nconn;		    /* connections not yet evicted */
	struct http_conn *adding;   /* being handed to MHD_add_connection */
	size_t nanswer;		    /* answered requests not yet completed */
	unsigned long long evicted; /* since the last limit warning */
	unsigned long long refused;
	uint64_t limit_logged_ms;
	http_handler handler;
	void *arg;
	long max_body;
	long max_connections;
	long header_timeout_ms;
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
	struct http_conn *c;
	const char *method, *path;
	char *body;
	size_t len, cap;
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
	return h->port;
}

size_t http_pending(const struct http *h)
{
	return h ? h->nanswer : 0;
}

/* Connection lists */

static void http_list_del(struct http_conn *c)
{
	struct http_list *l = c->list;

	if (!l)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
	c->list = NULL;
}

/* Takes the first connection off l (NULL if empty). */
static struct http_conn *http_list_pop(struct http_list *l)
{
	struct http_conn *c = l->head;

	if (!c)
		return NULL;
	l->head = c->next;
	if (l->head)
		l->head->prev = NULL;
	else
		l->tail = NULL;
	c->prev = c->next = NULL;
	c->list = NULL;
	return c;
}

/* Moves c to the end of l (NULL: onto no list), stamped now. */
static void http_conn_move(struct http_conn *c, struct http_list *l)
{
	http_list_del(c);
	if (!l || c->evicted)
		return;
	c->since = loop_now_ms();
	c->list = l;
	c->prev = l->tail;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

static struct http_conn *http_conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

/* Answers on a raw socket, outside MHD: the lobby's answers and a body
 * over the limit. Best effort: the socket is new or between messages, so a
 * short answer fits its send buffer. The connection is closed after it. */
static void http_raw_answer(struct http *h, int fd, unsigned status,
			    const char *text)
{
	char buf[768];
	const char *reason = MHD_get_reason_phrase_for(status);
	int n =
	    snprintf(buf, sizeof(buf),
		     "HTTP/1.1 %u %s\r\nConnection: close\r\n"
		     "Access-Control-Allow-Origin: *\r\n"
		     "Content-Type: text/plain; charset=utf-8\r\n"
		     "Content-Length: %zu\r\n\r\n%s",
		     status, *reason ? reason : "Error", strlen(text), text);

	if (n > 0 && (size_t)n < sizeof(buf))
		(void)send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (h->on_answer)
		h->on_answer(h->answer_arg, NULL, status);
}

/* Closes a socket that MHD never saw. What the client sent and nobody read
 * would make close() send a reset, which can overtake an answer just
 * written: read what is already there first. */
static void http_close_raw(int fd)
{
	char sink[4096];

	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 16; i++)
		if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
			break;
	close(fd);
}

/* Forgets c, which must be on no MHD connection any more. */
static void http_conn_free(struct http_conn *c)
{
	struct http *h = c->h;

	http_list_del(c);
	loop_del(h->loop, c->w);
	if (!c->evicted)
		h->nconn--;
	free(c);
}

/* Ends a connection nobody is answering: timed out, or evicted at the
 * limit. Lobby sockets are closed here (a client that sent part of a head
 * learns why); MHD's are shut down, which makes MHD close them on its
 * next run. */
static void http_conn_drop(struct http_conn *c, bool timed_out)
{
	struct http *h = c->h;
	char why[128];

	if (!c->mhd) {
		if (timed_out && c->seen) {
			snprintf(why, sizeof(why),
				 "Request head not complete within %ld ms",
				 h->header_timeout_ms);
			http_raw_answer(h, c->fd, 408, why);
		}
		http_close_raw(c->fd);
		http_conn_free(c);
		return;
	}
	shutdown(c->fd, SHUT_RDWR);
	http_list_del(c);
	c->evicted = true;
	h->nconn--;
	http_want_run(h);
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
	enum http_peer p;

	(void)revents;
	p = r->c ? http_peek(r->c->fd) : HTTP_PEER_GONE;
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
	if (r->suspended)
		return;
	MHD_suspend_connection(r->conn);
	r->suspended = true;
	r->next = r->h->suspended;
	if (r->next)
		r->next->prev = r;
	r->h->suspended = r;
	if (r->c)
		r->sockw = loop_add_fd(r->h->loop, r->c->fd, ZMQ_POLLIN,
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

/* Request framing: the fields that say where a body ends. */

struct http_framing {
	unsigned ncl, nte;
	unsigned long long cl;
	bool bad_line, cl_bad, cl_differ, te_other;
};

static bool http_name_is(const char *s, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(s, want, n) == 0;
}

/* 1*DIGIT, saturating (anything that large is over any --max-body). */
static bool http_parse_length(const char *v, size_t n, unsigned long long *out)
{
	unsigned long long x = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(v[i] - '0');
		if (v[i] < '0' || v[i] > '9')
			return false;
		x = x > (ULLONG_MAX - d) / 10 ? ULLONG_MAX : x * 10 + d;
	}
	*out = x;
	return true;
}

static void http_framing_add(struct http_framing *f, const char *name,
			     size_t nlen, const char *v, size_t vlen)
{
	unsigned long long cl = 0;

	/* "Content-Length : 5" is no Content-Length to MHD, but may be one
	 * to a proxy in front: refuse, as RFC 9112 asks. */
	if (nlen == 0 || memchr(name, ' ', nlen) || memchr(name, '\t', nlen)) {
		f->bad_line = true;
		return;
	}
	while (vlen && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	if (http_name_is(name, nlen, "Content-Length")) {
		if (!http_parse_length(v, vlen, &cl))
			f->cl_bad = true;
		else if (f->ncl && cl != f->cl)
			f->cl_differ = true;
		f->cl = cl;
		f->ncl++;
	} else if (http_name_is(name, nlen, "Transfer-Encoding")) {
		f->nte++;
		if (!http_name_is(v, vlen, "chunked"))
			f->te_other = true;
	}
}

/* 0 when the body's length is unambiguous and within max_body, else the
 * status to answer with and why. */
static unsigned http_framing_verdict(const struct http_framing *f,
				     long max_body, char *why, size_t len)
{
	unsigned status = 400;

	if (f->bad_line)
		snprintf(why, len,
			 "Malformed header line (no colon, a space "
			 "in the name, or a folded line)");
	else if (f->cl_bad)
		snprintf(why, len,
			 "Content-Length must be a decimal number of bytes");
	else if (f->cl_differ)
		snprintf(why, len,
			 "Content-Length given twice with different values");
	else if (f->ncl && f->nte)
		snprintf(why, len,
			 "Content-Length and Transfer-Encoding "
			 "together leave the body length ambiguous");
	else if (f->nte > 1)
		snprintf(why, len, "Transfer-Encoding given more than once");
	else if (f->te_other && (status = 501))
		snprintf(
		    why, len,
		    "Transfer-Encoding other than chunked is not supported");
	else if (f->ncl && f->cl > (unsigned long long)max_body &&
		 (status = 413))
		snprintf(why, len, "Request body too large (limit %ld bytes)",
			 max_body);
	else
		status = 0;
	return status;
}

static enum MHD_Result http_framing_iter(void *cls, enum MHD_ValueKind kind,
					 const char *key, const char *value)
{
	(void)kind;
	http_framing_add(cls, key, strlen(key), value ? value : "",
			 value ? strlen(value) : 0);
	return MHD_YES;
}

/* The framing check of a request MHD parsed (a keep-alive connection's
 * later requests; the first ones were checked in the lobby already). */
static unsigned http_check_request(struct http *h, struct MHD_Connection *conn,
				   char *why, size_t len)
{
	struct http_framing f = {0};

	MHD_get_connection_values(conn, MHD_HEADER_KIND, http_framing_iter, &f);
	return http_framing_verdict(&f, h->max_body, why, len);
}

static bool http_collect(struct http_req *r, const char *data, size_t n)
{
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

/* A body without Content-Length passed max_body: MHD can queue no answer
 * in the middle of a body, so the 413 goes on the socket directly and the
 * caller makes MHD close the connection (nothing more is read). */
static void http_too_large(struct http_req *r)
{
	char why[96];

	snprintf(why, sizeof(why), "Request body too large (limit %ld bytes)",
		 r->h->max_body);
	if (r->c)
		http_raw_answer(r->h, r->c->fd, 413, why);
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
	r->path = url;
	r->method = method;
	r->c = http_conn_of(conn);
	if (r->c) {
		r->c->req = r;
		http_conn_move(r->c, &h->receiving);
	}
	return r;
}

/* The first handler call: headers complete, no body read yet. A bad
 * framing (or Content-Length over the limit, Expect: 100-continue or not)
 * is answered now; MHD then closes without reading the body. */
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
	status = http_check_request(h, conn, why, sizeof(why));
	if (!status)
		return MHD_YES;
	http_req_text(r, status, "%s", why);
	if (r->c)
		http_conn_move(r->c, NULL);
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
	if (*upload_size > 0) {
		if (r->len + *upload_size > (size_t)h->max_body) {
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
			http_conn_move(r->c, NULL);
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
	free(r->body);
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
	if (r->c) {
		r->c->req = NULL;
		http_conn_move(r->c, &h->idle);
	}
	http_req_free(r);
}

/* Once a second: idle connections past header_timeout_ms are closed (the
 * idle list is in the order they became idle, so only its head can be
 * due). And MHD's epoll mode is edge-triggered and reads once per event:
 * when a client's last bytes and its FIN arrive together before the
 * request is complete, MHD never looks at that socket again and it stays
 * in CLOSE-WAIT. Such sockets are shut down, which raises a fresh epoll
 * event on which MHD sees the end and closes the connection. */
static void http_sweep(void *arg, short revents)
{
	struct http *h = arg;
	uint64_t now = loop_now_ms();
	struct http_list *lists[] = {&h->idle, &h->receiving};
	struct http_conn *c;

	(void)revents;
	while (h->idle.head &&
	       now - h->idle.head->since >= (uint64_t)h->header_timeout_ms)
		http_conn_drop(http_list_pop(&h->idle), true);
	for (size_t i = 0; i < 2; i++)
		for (c = lists[i]->head; c; c = c->next)
			if (c->mhd && http_peek(c->fd) == HTTP_PEER_GONE)
				shutdown(c->fd, SHUT_RDWR);
	/* MHD also closes the sockets of connections it ended only in its next
	 * run, and nothing else may wake it: one run per sweep releases them.
	 */
	h->need_run = true;
	if (h->nconn)
		loop_timer_arm(h->loop, &h->sweep_timer,
			       h->header_timeout_ms < HTTP_SWEEP_MS
				   ? (uint64_t)h->header_timeout_ms
				   : HTTP_SWEEP_MS,
			       http_sweep, h);
}

static void http_conn_event(void *cls, struct MHD_Connection *conn,
			    void **socket_context,
			    enum MHD_ConnectionNotificationCode toe)
{
	struct http *h = cls;
	struct http_conn *c;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		/* Only connections handed over by the lobby exist. */
		c = h->adding;
		h->adding = NULL;
		if (c)
			c->mhd = conn;
		*socket_context = c;
		return;
	}
	if (toe != MHD_CONNECTION_NOTIFY_CLOSED || !(c = *socket_context))
		return;
	*socket_context = NULL;
	http_conn_free(c);
	loop_timer_arm(h->loop, &h->trim_timer, HTTP_TRIM_IDLE_MS, http_trim,
		       h);
}

/* The lobby */

/* The offset just past the blank line that ends a request head in
 * buf[0..n), or 0; the search resumes near `from` (bytes before it were
 * searched already). Leading empty lines are skipped, as MHD does. */
static size_t http_head_end(const char *buf, size_t n, size_t from)
{
	size_t i = 0;

	while (i < n && (buf[i] == '\r' || buf[i] == '\n'))
		i++;
	if (from > i + 2)
		i = from - 2;
	for (; i < n; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < n && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* The framing check of a raw request head (see http_framing_verdict). The
 * request line is left to MHD. */
static unsigned http_head_check(struct http *h, const char *p, const char *end,
				char *why, size_t len)
{
	struct http_framing f = {0};
	bool first = true;

	while (p < end && (*p == '\r' || *p == '\n'))
		p++;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line = p, *colon;
		size_t n = (size_t)((eol ? eol : end) - p);

		p += n + 1;
		if (n && line[n - 1] == '\r')
			n--;
		if (n == 0)
			break;
		if (first) {
			first = false;
			continue;
		}
		colon = memchr(line, ':', n);
		if (!colon || *line == ' ' || *line == '\t')
			f.bad_line = true;
		else
			http_framing_add(&f, line, (size_t)(colon - line),
					 colon + 1,
					 n - (size_t)(colon + 1 - line));
	}
	return http_framing_verdict(&f, h->max_body, why, len);
}

/* The head is complete and acceptable: MHD takes the socket over and reads
 * the request from its start. */
static void http_lobby_handover(struct http_conn *c)
{
	struct http *h = c->h;
	int one = 1;

	loop_del(h->loop, c->w);
	c->w = NULL;
	if (c->seen)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
	http_conn_move(c, &h->idle);
	h->adding = c;
	if (MHD_add_connection(h->d, c->fd, (struct sockaddr *)&c->addr,
			       c->addrlen) != MHD_YES &&
	    h->adding == c) {
		/* MHD closed the socket without ever tracking it. */
		log_warn("http: cannot hand a connection to libmicrohttpd");
		http_conn_free(c);
	}
	h->adding = NULL;
	http_want_run(h);
}

/* A lobby socket turned readable without new bytes: the low-water mark
 * was not reached, so the peer closed its side (or the socket failed). */
static bool http_peer_done(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return true;
	return ti.tcpi_state != TCP_ESTABLISHED;
}

static void http_lobby_read(void *arg, short revents)
{
	struct http_conn *c = arg;
	struct http *h = c->h;
	char buf[HTTP_HEAD_MAX + 1], why[160];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	size_t end;
	unsigned status;
	int lowat;

	(void)revents;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 || ((size_t)n == c->seen && http_peer_done(c->fd))) {
		http_close_raw(c->fd);
		http_conn_free(c);
		return;
	}
	end = http_head_end(buf, (size_t)n, c->seen);
	if (!end && n > HTTP_HEAD_MAX) {
		snprintf(why, sizeof(why),
			 "Request head too large (limit %d "
			 "bytes)",
			 HTTP_HEAD_MAX);
		status = 431;
	} else if (!end) {
		/* Nothing to do until more arrives: raise the low-water mark so
		 * poll stays quiet until then (the bytes stay unread). */
		c->seen = (size_t)n;
		lowat = (int)n + 1;
		setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat,
			   sizeof(lowat));
		return;
	} else {
		status = http_head_check(h, buf, buf + end, why, sizeof(why));
	}
	if (!status) {
		http_lobby_handover(c);
		return;
	}
	http_raw_answer(h, c->fd, status, why);
	http_close_raw(c->fd);
	http_conn_free(c);
}

/* Makes room at the limit: the longest idle connection goes, else the
 * oldest that has been receiving its body for longer than a head may take.
 * Returns false when every connection is being answered or is young. */
static bool http_evict(struct http *h)
{
	struct http_conn *c = h->receiving.head;

	if (h->idle.head)
		c = http_list_pop(&h->idle);
	else if (c &&
		 loop_now_ms() - c->since >= (uint64_t)h->header_timeout_ms)
		c = http_list_pop(&h->receiving);
	else
		return false;
	h->evicted++;
	http_conn_drop(c, false);
	return true;
}

static void http_limit_log(struct http *h)
{
	uint64_t now = loop_now_ms();

	if (now - h->limit_logged_ms < HTTP_LIMIT_LOG_MS && h->limit_logged_ms)
		return;
	log_warnx("http: %ld connections reached: closed %llu idle or slow "
		  "connection(s) and refused %llu new one(s) with 503",
		  h->max_connections, h->evicted, h->refused);
	h->limit_logged_ms = now;
	h->evicted = h->refused = 0;
}

static void http_lobby_add(struct http *h, int fd,
			   const struct sockaddr_storage *addr, socklen_t len)
{
	struct http_conn *c;
	char why[96];

	if ((size_t)h->nconn >= (size_t)h->max_connections) {
		bool room = http_evict(h);
		if (!room) {
			h->refused++;
			snprintf(why, sizeof(why),
				 "Too many connections (limit %ld); try again "
				 "later",
				 h->max_connections);
			http_raw_answer(h, fd, 503, why);
		}
		http_limit_log(h);
		if (!room) {
			http_close_raw(fd);
			return;
		}
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->w = loop_add_fd(h->loop, fd, ZMQ_POLLIN, http_lobby_read,
				       c))) {
		free(c);
		close(fd);
		return;
	}
	c->h = h;
	c->fd = fd;
	memcpy(&c->addr, addr, len);
	c->addrlen = len;
	h->nconn++;
	http_conn_move(c, &h->idle);
	if (!h->sweep_timer.armed)
		http_sweep(h, 0);
}

static void http_on_listen(void *arg, short revents);

static void http_accept_again(void *arg, short revents)
{
	struct http *h = arg;

	(void)revents;
	loop_set_events(h->lw, ZMQ_POLLIN);
}

static void http_on_listen(void *arg, short revents)
{
	struct http *h = arg;
	struct sockaddr_storage addr;
	socklen_t len;
	int fd;

	(void)revents;
	for (int i = 0; i < HTTP_ACCEPT_BATCH; i++) {
		len = sizeof(addr);
		fd = accept4(h->listen_fd, (struct sockaddr *)&addr, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			http_lobby_add(h, fd, &addr, len);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN) {
			/* Out of fds or memory: the pending connection stays
			 * queued and poll would report it at once again. */
			log_warn("http: accept");
			loop_set_events(h->lw, 0);
			loop_timer_arm(h->loop, &h->accept_timer,
				       HTTP_ACCEPT_PAUSE_MS, http_accept_again,
				       h);
		}
		break;
	}
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

/* Binds and listens on o->listen; returns the socket or -1 with err. "::"
 * (or the empty address) means every address, IPv4 included. */
static int http_listen(const struct http_opts *o, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE},
			*res = NULL;
	char port[16];
	int rc, fd = -1, one = 1, v6only;

	snprintf(port, sizeof(port), "%ld", o->port);
	rc = getaddrinfo(o->listen, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve listen address '%s': %s",
			 o->listen, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (res->ai_family == AF_INET6) {
		v6only = !IN6_IS_ADDR_UNSPECIFIED(
		    &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr);
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
			   sizeof(v6only));
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
	    listen(fd, SOMAXCONN) < 0)
		goto fail;
	freeaddrinfo(res);
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on [%s]:%ld: %s", o->listen,
		 o->port, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -1;
}

static int http_bound_port(int fd)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} a;
	socklen_t len = sizeof(a);

	memset(&a, 0, sizeof(a));
	if (getsockname(fd, &a.sa, &len) < 0)
		return -1;
	return ntohs(a.sa.sa_family == AF_INET6 ? a.in6.sin6_port
						: a.in.sin_port);
}

static struct MHD_Daemon *http_start_mhd(struct http *h)
{
	/* Our own count decides (see http_lobby_add); MHD's limit only has to
	 * leave room for evicted connections it has not closed yet. */
	unsigned limit = (unsigned)h->max_connections * 2;

	return MHD_start_daemon(
	    MHD_USE_NO_LISTEN_SOCKET | MHD_USE_EPOLL |
		MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
	    0, NULL, NULL, http_access, h, MHD_OPTION_EXTERNAL_LOGGER,
	    http_logger, h, MHD_OPTION_NOTIFY_COMPLETED, http_completed, h,
	    MHD_OPTION_NOTIFY_CONNECTION, http_conn_event, h,
	    MHD_OPTION_CONNECTION_LIMIT, limit,
	    /* An inactivity timeout, for bodies that stop arriving; idle
	     * connections are closed by the sweep long before. */
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
	    /* Requests here have few small headers and bodies are collected
	     * outside MHD's pool: half the default keeps 1000 idle
	     * connections cheap (15.5 vs 31 MiB). The pool is also a
	     * stream's write buffer; `make bench` saw stdout at 0.88-0.92x
	     * of the floor with 16 KiB, 0.89-0.92x with 32 KiB and 0.93x
	     * with 64 KiB (63 MiB for 1000 connections): not worth it. */
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384, MHD_OPTION_END);
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
	h->listen_fd = -1;
	h->loop = l;
	h->handler = handler;
	h->arg = arg;
	h->max_body = o->max_body;
	h->max_connections = o->max_connections;
	h->header_timeout_ms = o->header_timeout_ms;
	h->on_answer = o->on_answer;
	h->answer_arg = o->answer_arg;
	h->listen_fd = http_listen(o, err, errlen);
	if (h->listen_fd < 0)
		goto fail;
	h->port = http_bound_port(h->listen_fd);
	h->d = http_start_mhd(h);
	if (!h->d) {
		snprintf(err, errlen, "cannot start libmicrohttpd: %s",
			 strerror(errno));
		goto fail;
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	h->w = di ? loop_add_fd(l, di->epoll_fd, ZMQ_POLLIN, http_on_epoll, h)
		  : NULL;
	h->lw = loop_add_fd(l, h->listen_fd, ZMQ_POLLIN, http_on_listen, h);
	if (!h->w || !h->lw) {
		snprintf(err, errlen, "cannot watch the HTTP sockets");
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
		 * aborts when stopped with any still suspended. It closes its
		 * connections, and http_conn_event forgets them. */
		MHD_run(h->d);
		MHD_stop_daemon(h->d);
	}
	/* What is left is in the lobby (or was never told closed). */
	while (h->idle.head) {
		struct http_conn *c = http_list_pop(&h->idle);
		if (!c->mhd)
			http_close_raw(c->fd);
		http_conn_free(c);
	}
	while (h->receiving.head)
		http_conn_free(http_list_pop(&h->receiving));
	loop_del(h->loop, h->w);
	loop_del(h->loop, h->lw);
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	loop_timer_disarm(h->loop, &h->timer);
	loop_timer_disarm(h->loop, &h->trim_timer);
	loop_timer_disarm(h->loop, &h->sweep_timer);
	loop_timer_disarm(h->loop, &h->accept_timer);
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
