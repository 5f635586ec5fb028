/*
 * lobby: the HTTP connections, from accept(2) to libmicrohttpd and beside it.
 *
 * Owns the listening socket and every accepted connection. A new connection
 * waits in the lobby (a loop watch, no MHD state) until its first request
 * head is complete; a head whose framing is bad (ambiguous or malformed
 * Content-Length or Transfer-Encoding, a body over max_body) is answered here
 * and closed, a good one is handed to MHD with MHD_add_connection. Every
 * connection is bounded from then on too: at most max_connections (the
 * longest idle one makes room, else 503), a request head within
 * header_timeout_ms, idle keep-alive connections included.
 *
 * It knows nothing of requests: http.c tells it when a connection's request
 * head is complete (lobby_conn_receiving), when it is being answered
 * (lobby_conn_answering) and when it waits for its next request again
 * (lobby_conn_idle). Loop thread only.
 */
#ifndef E2BCI_LOBBY_H
#define E2BCI_LOBBY_H

#include <stddef.h>

struct loop;
struct lobby;
struct lobby_conn;
struct MHD_Daemon;
struct MHD_Connection;

struct lobby_opts {
	const char
	    *listen; /* numeric address or host name; "::" = dual stack */
	long port;   /* 0: any free port */
	long max_body;
	long max_connections;
	long header_timeout_ms; /* idle or head-receiving connections */
	/* Called for every answer the lobby writes itself (tag NULL). */
	void (*on_answer)(void *arg, const char *tag, unsigned status);
	void *answer_arg;
	/* MHD has work to do soon: a connection was handed over or shut
	 * down. */
	void (*want_run)(void *arg);
	void *run_arg;
};

/* Binds and listens (accepting starts with lobby_open). Returns NULL with a
 * reason in err. */
struct lobby *lobby_new(struct loop *l, const struct lobby_opts *o, char *err,
			size_t errlen);
/* Starts accepting; acceptable connections go to d. Returns 0, or -1 with a
 * reason in err. */
int lobby_open(struct lobby *lb, struct MHD_Daemon *d, char *err,
	       size_t errlen);
/* The port actually bound. */
int lobby_port(const struct lobby *lb);
/* Closes what MHD does not own (lobby connections), stops listening. Call
 * after MHD_stop_daemon. Accepts NULL. */
void lobby_free(struct lobby *lb);

/* From MHD's connection notifications: a connection MHD starts (the one
 * being handed over; borrowed, NULL if it is none of ours), and one MHD
 * closed (forgotten here; c may be NULL). */
struct lobby_conn *lobby_conn_started(struct lobby *lb,
				      struct MHD_Connection *conn);
void lobby_conn_closed(struct lobby_conn *c);

/* Where a handed-over connection stands: its request head is complete and
 * the body arriving; it is being answered (never cut); it waits for the
 * next request (idle, from now). */
void lobby_conn_receiving(struct lobby_conn *c);
void lobby_conn_answering(struct lobby_conn *c);
void lobby_conn_idle(struct lobby_conn *c);
/* The connection's socket. */
int lobby_conn_fd(const struct lobby_conn *c);

/* A Content-Length over max_body by at most this much, without Expect, is
 * let through the framing check: http.c reads the body, drops it and then
 * answers 413. The official SDKs (undici, httpx) write the whole body
 * before they read, so a 413 sent while they still write ends in EPIPE
 * for them ("fetch failed"), not in the answer. Larger bodies, and
 * clients that asked with Expect: 100-continue, get the 413 at once. */
#define LOBBY_DRAIN_MAX (16ULL << 20)

/* The framing check of a request MHD parsed (a keep-alive connection's
 * later requests; the first ones were checked in the lobby already): 0
 * when the body's length is unambiguous and within max_body (or to be
 * drained, above), else the status to answer with and why. */
unsigned lobby_check_request(const struct lobby *lb,
			     struct MHD_Connection *conn, char *why,
			     size_t len);

/* Answers on a raw socket, outside MHD, with Connection: close (the
 * connection is to be closed after it). Best effort: the socket is new or
 * between messages, so a short answer fits its send buffer. */
void lobby_raw_answer(struct lobby *lb, int fd, unsigned status,
		      const char *text);

/* What a peek at a client socket says about the peer. */
enum lobby_peer { LOBBY_PEER_QUIET, LOBBY_PEER_SENT, LOBBY_PEER_GONE };
enum lobby_peer lobby_peek(int fd);

#endif
