/*
 * lobby: the HTTP connections, from accept(2) to libmicrohttpd (see
 * lobby.h).
 *
 * Connections are accepted here, not by MHD (it runs with
 * MHD_USE_NO_LISTEN_SOCKET). A new connection waits in the lobby (a loop
 * watch, no MHD state) until its first request head is complete in the
 * socket buffer: peeked, never read, so MHD later reads it all. The head's
 * framing is checked first (Content-Length, Transfer-Encoding, --max-body),
 * because MHD 0.9.75 answers a malformed Content-Length with its header
 * block twice and takes ambiguous framing at its word; a bad head is
 * answered here and closed. A good one is handed to MHD with
 * MHD_add_connection. Later requests on a keep-alive connection get the
 * same framing check through lobby_check_request, from http.c's access
 * handler.
 *
 * Every connection is tracked (struct lobby_conn) on one of two lists, each
 * in the order its members joined: idle (no complete request head yet: in
 * the lobby, or between two requests) and receiving (head complete, body
 * arriving); one being answered is on neither. Idle connections are closed
 * after header_timeout_ms, however slowly they trickle bytes. At
 * max_connections the longest idle one (else a receiving one older than
 * header_timeout_ms) is closed to make room; with none, the new connection
 * gets 503 and is closed. Connections being answered (streams included) are
 * never cut. MHD's connections are closed by shutdown(2), which MHD sees as
 * the client leaving: this module calls into MHD only to hand a connection
 * over and to read a parsed request's headers, never to run or close
 * anything (http.c does). Loop thread only.
 */
#include "lobby.h"

#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"
#include "loop.h"

#define LOBBY_SWEEP_MS	      1000
#define LOBBY_HEAD_MAX	      8192 /* a request head, in the lobby */
#define LOBBY_ACCEPT_BATCH    64   /* accepts per loop turn */
#define LOBBY_ACCEPT_PAUSE_MS 100  /* after EMFILE and the like */
#define LOBBY_LIMIT_LOG_MS    10000

/* A list of connections in the order they joined it. */
struct lobby_list {
	struct lobby_conn *head, *tail;
};

struct lobby_conn {
	struct lobby *lb;
	int fd;
	struct MHD_Connection *mhd; /* NULL while in the lobby */
	struct lobby_list *list;    /* idle, receiving or none (answering) */
	uint64_t since;		    /* when it joined that list */
	struct loop_watch *w;	    /* lobby: its socket */
	size_t seen;		    /* lobby: head bytes peeked so far */
	bool evicted;		    /* shut down, MHD still to close it */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct lobby_conn *prev, *next;
};

struct lobby {
	struct loop *loop;
	struct MHD_Daemon *d;
	struct loop_watch *lw; /* the listening socket */
	int listen_fd;
	int port;
	struct loop_timer sweep_timer;
	struct loop_timer accept_timer;
	struct lobby_list idle, receiving;
	size_t nconn;		    /* connections not yet evicted */
	struct lobby_conn *adding;  /* being handed to MHD_add_connection */
	unsigned long long evicted; /* since the last limit warning */
	unsigned long long refused;
	uint64_t limit_logged_ms;
	long max_body;
	long max_connections;
	long header_timeout_ms;
	void (*on_answer)(void *arg, const char *tag, unsigned status);
	void *answer_arg;
	void (*want_run)(void *arg);
	void *run_arg;
};

/* Connection lists */

static void lobby_list_del(struct lobby_conn *c)
{
	struct lobby_list *l = c->list;

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
static struct lobby_conn *lobby_list_pop(struct lobby_list *l)
{
	struct lobby_conn *c = l->head;

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
static void lobby_conn_move(struct lobby_conn *c, struct lobby_list *l)
{
	lobby_list_del(c);
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

void lobby_conn_receiving(struct lobby_conn *c)
{
	lobby_conn_move(c, &c->lb->receiving);
}

void lobby_conn_answering(struct lobby_conn *c)
{
	lobby_conn_move(c, NULL);
}

void lobby_conn_idle(struct lobby_conn *c)
{
	lobby_conn_move(c, &c->lb->idle);
}

int lobby_conn_fd(const struct lobby_conn *c)
{
	return c->fd;
}

int lobby_port(const struct lobby *lb)
{
	return lb->port;
}

void lobby_raw_answer(struct lobby *lb, int fd, unsigned status,
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
	if (lb->on_answer)
		lb->on_answer(lb->answer_arg, NULL, status);
}

/* Closes a socket that MHD never saw. What the client sent and nobody read
 * would make close() send a reset, which can overtake an answer just
 * written: read what is already there first. */
static void lobby_close_raw(int fd)
{
	char sink[4096];

	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 16; i++)
		if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
			break;
	close(fd);
}

/* Forgets c, which must be on no MHD connection any more. */
static void lobby_conn_free(struct lobby_conn *c)
{
	struct lobby *lb = c->lb;

	lobby_list_del(c);
	loop_del(lb->loop, c->w);
	if (!c->evicted)
		lb->nconn--;
	free(c);
}

/* Ends a connection nobody is answering: timed out, or evicted at the
 * limit. Lobby sockets are closed here (a client that sent part of a head
 * learns why); MHD's are shut down, which makes MHD close them on its
 * next run. */
static void lobby_conn_drop(struct lobby_conn *c, bool timed_out)
{
	struct lobby *lb = c->lb;
	char why[128];

	if (!c->mhd) {
		if (timed_out && c->seen) {
			snprintf(why, sizeof(why),
				 "Request head not complete within %ld ms",
				 lb->header_timeout_ms);
			lobby_raw_answer(lb, c->fd, 408, why);
		}
		lobby_close_raw(c->fd);
		lobby_conn_free(c);
		return;
	}
	shutdown(c->fd, SHUT_RDWR);
	lobby_list_del(c);
	c->evicted = true;
	lb->nconn--;
	lb->want_run(lb->run_arg);
}

enum lobby_peer lobby_peek(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n > 0)
		return LOBBY_PEER_SENT;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return LOBBY_PEER_QUIET;
	return LOBBY_PEER_GONE; /* EOF, reset, or any other error */
}

/* Request framing: the fields that say where a body ends. */

struct lobby_framing {
	unsigned ncl, nte;
	unsigned long long cl;
	bool bad_line, cl_bad, cl_differ, te_other, expect;
};

static bool lobby_name_is(const char *s, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(s, want, n) == 0;
}

/* 1*DIGIT, saturating (anything that large is over any --max-body). */
static bool lobby_parse_length(const char *v, size_t n, unsigned long long *out)
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

static void lobby_framing_add(struct lobby_framing *f, const char *name,
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
	if (lobby_name_is(name, nlen, "Content-Length")) {
		if (!lobby_parse_length(v, vlen, &cl))
			f->cl_bad = true;
		else if (f->ncl && cl != f->cl)
			f->cl_differ = true;
		f->cl = cl;
		f->ncl++;
	} else if (lobby_name_is(name, nlen, "Expect")) {
		f->expect = true;
	} else if (lobby_name_is(name, nlen, "Transfer-Encoding")) {
		f->nte++;
		if (!lobby_name_is(v, vlen, "chunked"))
			f->te_other = true;
	}
}

/* 0 when the body's length is unambiguous and within max_body (or over it
 * by at most LOBBY_DRAIN_MAX, without Expect: see lobby.h), else the
 * status to answer with and why. */
static unsigned lobby_framing_verdict(const struct lobby_framing *f,
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
		 (f->expect ||
		  f->cl - (unsigned long long)max_body > LOBBY_DRAIN_MAX) &&
		 (status = 413))
		snprintf(why, len, "Request body too large (limit %ld bytes)",
			 max_body);
	else
		status = 0;
	return status;
}

static enum MHD_Result lobby_framing_iter(void *cls, enum MHD_ValueKind kind,
					  const char *key, const char *value)
{
	(void)kind;
	lobby_framing_add(cls, key, strlen(key), value ? value : "",
			  value ? strlen(value) : 0);
	return MHD_YES;
}

unsigned lobby_check_request(const struct lobby *lb,
			     struct MHD_Connection *conn, char *why, size_t len)
{
	struct lobby_framing f = {0};

	MHD_get_connection_values(conn, MHD_HEADER_KIND, lobby_framing_iter,
				  &f);
	return lobby_framing_verdict(&f, lb->max_body, why, len);
}

/* Once a second: idle connections past header_timeout_ms are closed (the
 * idle list is in the order they became idle, so only its head can be
 * due). And MHD's epoll mode is edge-triggered and reads once per event:
 * when a client's last bytes and its FIN arrive together before the
 * request is complete, MHD never looks at that socket again and it stays
 * in CLOSE-WAIT. Such sockets are shut down, which raises a fresh epoll
 * event on which MHD sees the end and closes the connection. */
static void lobby_sweep(void *arg, short revents)
{
	struct lobby *lb = arg;
	uint64_t now = loop_now_ms();
	struct lobby_list *lists[] = {&lb->idle, &lb->receiving};
	struct lobby_conn *c;

	(void)revents;
	while (lb->idle.head &&
	       now - lb->idle.head->since >= (uint64_t)lb->header_timeout_ms)
		lobby_conn_drop(lobby_list_pop(&lb->idle), true);
	for (size_t i = 0; i < 2; i++)
		for (c = lists[i]->head; c; c = c->next)
			if (c->mhd && lobby_peek(c->fd) == LOBBY_PEER_GONE)
				shutdown(c->fd, SHUT_RDWR);
	/* MHD also closes the sockets of connections it ended only in its next
	 * run, and nothing else may wake it: one run per sweep releases them.
	 */
	lb->want_run(lb->run_arg);
	if (lb->nconn)
		loop_timer_arm(lb->loop, &lb->sweep_timer,
			       lb->header_timeout_ms < LOBBY_SWEEP_MS
				   ? (uint64_t)lb->header_timeout_ms
				   : LOBBY_SWEEP_MS,
			       lobby_sweep, lb);
}

struct lobby_conn *lobby_conn_started(struct lobby *lb,
				      struct MHD_Connection *conn)
{
	/* Only connections handed over by the lobby exist. */
	struct lobby_conn *c = lb->adding;

	lb->adding = NULL;
	if (c)
		c->mhd = conn;
	return c;
}

void lobby_conn_closed(struct lobby_conn *c)
{
	if (c)
		lobby_conn_free(c);
}

/* The lobby */

/* The offset just past the blank line that ends a request head in
 * buf[0..n), or 0; the search resumes near `from` (bytes before it were
 * searched already). Leading empty lines are skipped, as MHD does. */
static size_t lobby_head_end(const char *buf, size_t n, size_t from)
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

/* The framing check of a raw request head (see lobby_framing_verdict). The
 * request line is left to MHD. */
static unsigned lobby_head_check(struct lobby *lb, const char *p,
				 const char *end, char *why, size_t len)
{
	struct lobby_framing f = {0};
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
			lobby_framing_add(&f, line, (size_t)(colon - line),
					  colon + 1,
					  n - (size_t)(colon + 1 - line));
	}
	return lobby_framing_verdict(&f, lb->max_body, why, len);
}

/* The head is complete and acceptable: MHD takes the socket over and reads
 * the request from its start. */
static void lobby_handover(struct lobby_conn *c)
{
	struct lobby *lb = c->lb;
	int one = 1;

	loop_del(lb->loop, c->w);
	c->w = NULL;
	if (c->seen)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
	lobby_conn_move(c, &lb->idle);
	lb->adding = c;
	if (MHD_add_connection(lb->d, c->fd, (struct sockaddr *)&c->addr,
			       c->addrlen) != MHD_YES &&
	    lb->adding == c) {
		/* MHD closed the socket without ever tracking it. */
		log_warn("http: cannot hand a connection to libmicrohttpd");
		lobby_conn_free(c);
	}
	lb->adding = NULL;
	lb->want_run(lb->run_arg);
}

/* A lobby socket turned readable without new bytes: the low-water mark
 * was not reached, so the peer closed its side (or the socket failed). */
static bool lobby_peer_done(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return true;
	return ti.tcpi_state != TCP_ESTABLISHED;
}

static void lobby_read(void *arg, short revents)
{
	struct lobby_conn *c = arg;
	struct lobby *lb = c->lb;
	char buf[LOBBY_HEAD_MAX + 1], why[160];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	size_t end;
	unsigned status;
	int lowat;

	(void)revents;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 || ((size_t)n == c->seen && lobby_peer_done(c->fd))) {
		lobby_close_raw(c->fd);
		lobby_conn_free(c);
		return;
	}
	end = lobby_head_end(buf, (size_t)n, c->seen);
	if (!end && n > LOBBY_HEAD_MAX) {
		snprintf(why, sizeof(why),
			 "Request head too large (limit %d "
			 "bytes)",
			 LOBBY_HEAD_MAX);
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
		status = lobby_head_check(lb, buf, buf + end, why, sizeof(why));
	}
	if (!status) {
		lobby_handover(c);
		return;
	}
	lobby_raw_answer(lb, c->fd, status, why);
	lobby_close_raw(c->fd);
	lobby_conn_free(c);
}

/* Makes room at the limit: the longest idle connection goes, else the
 * oldest that has been receiving its body for longer than a head may take.
 * Returns false when every connection is being answered or is young. */
static bool lobby_evict(struct lobby *lb)
{
	struct lobby_conn *c = lb->receiving.head;

	if (lb->idle.head)
		c = lobby_list_pop(&lb->idle);
	else if (c &&
		 loop_now_ms() - c->since >= (uint64_t)lb->header_timeout_ms)
		c = lobby_list_pop(&lb->receiving);
	else
		return false;
	lb->evicted++;
	lobby_conn_drop(c, false);
	return true;
}

static void lobby_limit_log(struct lobby *lb)
{
	uint64_t now = loop_now_ms();

	if (now - lb->limit_logged_ms < LOBBY_LIMIT_LOG_MS &&
	    lb->limit_logged_ms)
		return;
	log_warnx("http: %ld connections reached: closed %llu idle or slow "
		  "connection(s) and refused %llu new one(s) with 503",
		  lb->max_connections, lb->evicted, lb->refused);
	lb->limit_logged_ms = now;
	lb->evicted = lb->refused = 0;
}

static void lobby_add(struct lobby *lb, int fd,
		      const struct sockaddr_storage *addr, socklen_t len)
{
	struct lobby_conn *c;
	char why[96];

	if ((size_t)lb->nconn >= (size_t)lb->max_connections) {
		bool room = lobby_evict(lb);
		if (!room) {
			lb->refused++;
			snprintf(why, sizeof(why),
				 "Too many connections (limit %ld); try again "
				 "later",
				 lb->max_connections);
			lobby_raw_answer(lb, fd, 503, why);
		}
		lobby_limit_log(lb);
		if (!room) {
			lobby_close_raw(fd);
			return;
		}
	}
	c = calloc(1, sizeof(*c));
	if (!c ||
	    !(c->w = loop_add_fd(lb->loop, fd, ZMQ_POLLIN, lobby_read, c))) {
		free(c);
		close(fd);
		return;
	}
	c->lb = lb;
	c->fd = fd;
	memcpy(&c->addr, addr, len);
	c->addrlen = len;
	lb->nconn++;
	lobby_conn_move(c, &lb->idle);
	if (!lb->sweep_timer.armed)
		lobby_sweep(lb, 0);
}

static void lobby_accept_again(void *arg, short revents)
{
	struct lobby *lb = arg;

	(void)revents;
	loop_set_events(lb->lw, ZMQ_POLLIN);
}

static void lobby_on_listen(void *arg, short revents)
{
	struct lobby *lb = arg;
	struct sockaddr_storage addr;
	socklen_t len;
	int fd;

	(void)revents;
	for (int i = 0; i < LOBBY_ACCEPT_BATCH; i++) {
		len = sizeof(addr);
		fd = accept4(lb->listen_fd, (struct sockaddr *)&addr, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			lobby_add(lb, fd, &addr, len);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN) {
			/* Out of fds or memory: the pending connection stays
			 * queued and poll would report it at once again. */
			log_warn("http: accept");
			loop_set_events(lb->lw, 0);
			loop_timer_arm(lb->loop, &lb->accept_timer,
				       LOBBY_ACCEPT_PAUSE_MS,
				       lobby_accept_again, lb);
		}
		break;
	}
}

/* Binds and listens on o->listen; returns the socket or -1 with err. "::"
 * (or the empty address) means every address, IPv4 included. */
static int lobby_listen(const struct lobby_opts *o, char *err, size_t errlen)
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

static int lobby_bound_port(int fd)
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

struct lobby *lobby_new(struct loop *l, const struct lobby_opts *o, char *err,
			size_t errlen)
{
	struct lobby *lb = calloc(1, sizeof(*lb));

	if (!lb) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	lb->loop = l;
	lb->max_body = o->max_body;
	lb->max_connections = o->max_connections;
	lb->header_timeout_ms = o->header_timeout_ms;
	lb->on_answer = o->on_answer;
	lb->answer_arg = o->answer_arg;
	lb->want_run = o->want_run;
	lb->run_arg = o->run_arg;
	lb->listen_fd = lobby_listen(o, err, errlen);
	if (lb->listen_fd < 0) {
		free(lb);
		return NULL;
	}
	lb->port = lobby_bound_port(lb->listen_fd);
	return lb;
}

int lobby_open(struct lobby *lb, struct MHD_Daemon *d, char *err, size_t errlen)
{
	lb->d = d;
	lb->lw = loop_add_fd(lb->loop, lb->listen_fd, ZMQ_POLLIN,
			     lobby_on_listen, lb);
	if (!lb->lw) {
		snprintf(err, errlen, "cannot watch the HTTP sockets");
		return -1;
	}
	return 0;
}

void lobby_free(struct lobby *lb)
{
	if (!lb)
		return;
	/* What is left is in the lobby (or was never told closed). */
	while (lb->idle.head) {
		struct lobby_conn *c = lobby_list_pop(&lb->idle);
		if (!c->mhd)
			lobby_close_raw(c->fd);
		lobby_conn_free(c);
	}
	while (lb->receiving.head)
		lobby_conn_free(lobby_list_pop(&lb->receiving));
	loop_del(lb->loop, lb->lw);
	if (lb->listen_fd >= 0)
		close(lb->listen_fd);
	loop_timer_disarm(lb->loop, &lb->sweep_timer);
	loop_timer_disarm(lb->loop, &lb->accept_timer);
	free(lb);
}
