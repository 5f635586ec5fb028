/*
 * http: libmicrohttpd glue for the one loop thread.
 *
 * Runs MHD without threads of its own (MHD_USE_EPOLL, external polling): its
 * epoll fd is a loop watch and its timeout a loop timer. Connections are
 * accepted and bounded by lobby.c, set up from http_opts: at most
 * max_connections (the longest idle one makes room, else 503), a request
 * head within header_timeout_ms (idle keep-alive connections included),
 * unambiguous framing (400/501). Collects request bodies up to max_body
 * (else 413, as soon as it is known), adds CORS headers to every response,
 * answers preflight OPTIONS itself, and hands each complete request to one
 * handler. A request is answered exactly once: at once, later (deferred:
 * the connection is suspended meanwhile), or as a stream that pulls bytes
 * from a source and suspends whenever the source has nothing yet. While a
 * connection is suspended its socket is watched, so a client that goes away
 * is noticed at once (not at the next write). Loop thread only.
 */
#ifndef E2BCI_HTTP_H
#define E2BCI_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct loop;
struct http;
struct http_req;

typedef void (*http_handler)(void *arg, struct http_req *r);

/* A stream's data source. read: >0 bytes copied, 0 nothing yet (the
 * connection is suspended until http_req_wake), -1 end of stream. closed:
 * the request is over; completed is false when the client went away or the
 * transfer failed. After closed, the source is never called again. */
struct http_source {
	ssize_t (*read)(void *arg, char *buf, size_t max);
	void (*closed)(void *arg, bool completed);
	void *arg;
};

struct http_opts {
	const char
	    *listen; /* numeric address or host name; "::" = dual stack */
	long port;   /* 0: any free port */
	long max_body;
	long max_connections;
	/* Called for every answer queued (tag: see http_req_set_tag). */
	void (*on_answer)(void *arg, const char *tag, unsigned status);
	void *answer_arg;
	long header_timeout_ms; /* idle or head-receiving connections */
};

/* Starts listening. Returns NULL with a reason in err. */
struct http *http_new(struct loop *l, const struct http_opts *o, http_handler h,
		      void *arg, char *err, size_t errlen);
/* The port actually bound. */
int http_port(const struct http *h);
/* Must run before every loop turn: lets MHD act on resumed connections and
 * re-arms its timer. */
void http_prepare(struct http *h);
/* Requests answered (streams, deferred and queued answers) whose answer
 * has not fully reached the client yet; 0 for NULL. The shutdown runs the
 * loop until this is 0 or its time is up. */
size_t http_pending(const struct http *h);
/* Resumes and closes every connection, stops listening. Accepts NULL. */
void http_free(struct http *h);

/* Request accessors (borrowed, valid until the request is answered). */
const char *http_req_method(const struct http_req *r);
const char *http_req_path(const struct http_req *r);
const char *http_req_header(const struct http_req *r, const char *name);
const char *http_req_body(const struct http_req *r, size_t *len);

/* Labels the request for on_answer (a static string, e.g. the route). */
void http_req_set_tag(struct http_req *r, const char *tag);

/* Answers with a copy of body. status 200..599, ctype e.g.
 * "application/json". Usable at once or after http_req_defer. */
void http_req_respond(struct http_req *r, unsigned status, const char *ctype,
		      const char *body, size_t len);
/* Answers text/plain with a formatted one-line reason. */
void http_req_text(struct http_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds a response header to the answer still to come (e.g. Allow). */
void http_req_add_header(struct http_req *r, const char *name,
			 const char *value);
/* Keeps the request open to be answered later. gone(arg) is called if the
 * client goes away first; the request must not be touched after that. */
void http_req_defer(struct http_req *r, void (*gone)(void *arg), void *arg);
/* Answers 200 with a chunked stream of ctype pulled from src (copied). */
void http_req_stream(struct http_req *r, const char *ctype,
		     const struct http_source *src);
/* The source of a stream has new bytes (or its end). */
void http_req_wake(struct http_req *r);

#endif
