/*
 * Unit tests for envd: a real loop and a fake envd server on a loopback
 * ephemeral port, served by the same loop, so every exchange is ordered by
 * events. The server reads one request head, then answers with a scripted
 * response (all at once, a byte per turn, or keeping the connection open),
 * or never answers. Each wait is for an event, bounded by a 5 s guard so a
 * bug fails the test instead of hanging it.
 *
 * getaddrinfo() and freeaddrinfo() are interposed (this executable's
 * definitions win over libc's) so that one made-up name can resolve to two
 * loopback addresses, the first refusing connections: that is the only way
 * to test the fallback to the next address without editing /etc/hosts.
 * Every other name goes to libc.
 */
#include "envd.h"
#include "log.h"
#include "loop.h"
#include "testhelp.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

enum srv_mode {
	SRV_ANSWER,   /* Answer at once, then close. */
	SRV_TRICKLE,  /* Answer one byte per loop turn, then close. */
	SRV_KEEPOPEN, /* Answer at once, then wait for the client to close. */
	SRV_SILENT,   /* Read the request, never answer. */
};

/* The fake envd: one listening socket, one connection at a time. */
struct srv {
	struct loop *l;
	enum srv_mode mode;
	int lfd, cfd;
	struct loop_watch *lw, *cw;
	int port;
	const char *resp;
	size_t resp_len, resp_off;
	char req[8192];
	size_t req_len;
	bool got_request; /* A whole request head arrived. */
	bool peer_closed; /* The client closed its end. */
	int accepted;
};

struct result {
	int calls;
	json_t *vars;
	const char *why;
};

static void on_done(void *arg, json_t *vars, const char *why)
{
	struct result *res = arg;

	res->calls++;
	json_decref(res->vars);
	res->vars = vars;
	res->why = why;
}

#define RUN_UNTIL(l, cond)                                                     \
	do {                                                                   \
		uint64_t th_end = loop_now_ms() + 5000;                        \
		while (!(cond) && loop_now_ms() < th_end)                      \
			CHECK(loop_run_once((l), 100) == 0);                   \
	} while (0)

static void srv_close_conn(struct srv *s)
{
	loop_del(s->l, s->cw);
	s->cw = NULL;
	close(s->cfd);
	s->cfd = -1;
}

static void srv_write(struct srv *s)
{
	size_t len = s->resp_len - s->resp_off;
	ssize_t n;

	if (s->mode == SRV_TRICKLE && len > 1)
		len = 1;
	n = send(s->cfd, s->resp + s->resp_off, len, MSG_NOSIGNAL);
	if (n < 0) {
		/* The client gave up (over the cap, say): that is its right. */
		if (errno != EAGAIN)
			srv_close_conn(s);
		return;
	}
	s->resp_off += (size_t)n;
	if (s->resp_off < s->resp_len)
		return;
	if (s->mode == SRV_KEEPOPEN)
		loop_set_events(s->cw, ZMQ_POLLIN);
	else
		srv_close_conn(s);
}

static void srv_read(struct srv *s)
{
	ssize_t n;

	n = recv(s->cfd, s->req + s->req_len, sizeof(s->req) - 1 - s->req_len,
		 0);
	if (n <= 0) {
		s->peer_closed = n == 0;
		srv_close_conn(s);
		return;
	}
	s->req_len += (size_t)n;
	s->req[s->req_len] = '\0';
	if (!s->got_request && strstr(s->req, "\r\n\r\n")) {
		s->got_request = true;
		if (s->mode != SRV_SILENT)
			loop_set_events(s->cw, ZMQ_POLLOUT);
	}
}

static void srv_on_conn(void *arg, short revents)
{
	struct srv *s = arg;

	if (revents & ZMQ_POLLOUT)
		srv_write(s);
	else
		srv_read(s);
}

static void srv_on_listen(void *arg, short revents)
{
	struct srv *s = arg;
	int fd;

	(void)revents;
	fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	s->accepted++;
	if (s->cfd >= 0) {
		close(fd); /* One connection per test. */
		return;
	}
	s->cfd = fd;
	s->cw = loop_add_fd(s->l, fd, ZMQ_POLLIN, srv_on_conn, s);
}

/* Binds to the loopback of family on an ephemeral port. With listen_too
 * false the socket is only bound, so connecting to it is refused. Returns 0,
 * or -1 when the family is not available here. */
static int srv_start(struct srv *s, struct loop *l, int family, bool listen_too)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = family == AF_INET ? sizeof(*in4) : sizeof(*in6);

	memset(s, 0, sizeof(*s));
	s->l = l;
	s->cfd = -1;
	s->lfd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0)
		return -1;
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET)
		in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		in6->sin6_addr = in6addr_loopback;
	if (bind(s->lfd, (struct sockaddr *)&ss, len) < 0 ||
	    getsockname(s->lfd, (struct sockaddr *)&ss, &len) < 0 ||
	    (listen_too && listen(s->lfd, 8) < 0)) {
		close(s->lfd);
		return -1;
	}
	s->port = ntohs(family == AF_INET ? in4->sin_port : in6->sin6_port);
	if (listen_too)
		s->lw = loop_add_fd(l, s->lfd, ZMQ_POLLIN, srv_on_listen, s);
	return 0;
}

static void srv_stop(struct srv *s)
{
	if (s->cfd >= 0)
		srv_close_conn(s);
	loop_del(s->l, s->lw);
	close(s->lfd);
}

/* One test's world: a loop, the fake envd on it and one fetch's result. */
struct fx {
	struct loop *l;
	struct srv s;
	struct result res;
	char url[64]; /* the fake envd's */
	char *resp;   /* freed by fx_end */
};

/* A loop and a fake envd on the loopback of family (see srv_start); its URL
 * in f->url. Returns false, with nothing to end, when that cannot be had
 * (no loop is a failure of the test; no such loopback is not). */
static bool fx_begin(struct fx *f, int family, bool listen_too)
{
	memset(f, 0, sizeof(*f));
	f->l = loop_new();
	CHECK(f->l);
	if (!f->l)
		return false;
	if (srv_start(&f->s, f->l, family, listen_too) < 0) {
		loop_free(f->l);
		return false;
	}
	snprintf(f->url, sizeof(f->url),
		 family == AF_INET ? "http://127.0.0.1:%d" : "http://[::1]:%d",
		 f->s.port);
	return true;
}

/* What the fake envd does with the next request (resp is borrowed). */
static void fx_answer(struct fx *f, enum srv_mode mode, const char *resp)
{
	f->s.mode = mode;
	f->s.resp = resp;
	f->s.resp_len = resp ? strlen(resp) : 0;
}

/* Fetches url (NULL: the fake envd's) and runs the loop until done was
 * called: once, and never from inside envd_fetch. */
static void fx_fetch(struct fx *f, const char *url, const char *token,
		     int timeout_ms)
{
	json_decref(f->res.vars);
	memset(&f->res, 0, sizeof(f->res));
	CHECK(envd_fetch(f->l, url ? url : f->url, token, timeout_ms, on_done,
			 &f->res));
	CHECK(f->res.calls == 0);
	RUN_UNTIL(f->l, f->res.calls > 0);
	CHECK(f->res.calls == 1);
}

static void fx_end(struct fx *f)
{
	srv_stop(&f->s);
	json_decref(f->res.vars);
	free(f->resp);
	loop_free(f->l);
}

static bool is_empty_object(const json_t *v)
{
	return json_is_object(v) && json_object_size(v) == 0;
}

static const char ok_body[] =
    "{\"PLAIN\": \"value\", \"QUOTE\": \"say \\\"hi\\\"\", "
    "\"BACKSLASH\": \"C:\\\\dir\\\\\", \"NL\": \"line1\\nline2\\r\\t\", "
    "\"UTF8\": \"\xc3\xbcn\xc3\xaf"
    "c\xc3\xb8"
    "de \xe2\x82\xac "
    "\xf0\x9f\x99\x82\", \"ESC\": \"\\u00e9\\ud83d\\ude42\", "
    "\"EMPTY\": \"\"}";

static json_t *ok_expected(void)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "PLAIN",
			 "value", "QUOTE", "say \"hi\"", "BACKSLASH",
			 "C:\\dir\\", "NL", "line1\nline2\r\t", "UTF8",
			 "\xc3\xbcn\xc3\xaf"
			 "c\xc3\xb8"
			 "de \xe2\x82\xac "
			 "\xf0\x9f\x99\x82",
			 "ESC", "\xc3\xa9\xf0\x9f\x99\x82", "EMPTY", "");
}

/* "HTTP/1.1 200 OK" with a Content-Length and ok_body. */
static char *ok_response(void)
{
	char *r;

	if (asprintf(&r,
		     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n%s",
		     strlen(ok_body), ok_body) < 0)
		abort();
	return r;
}

/* fx_begin on IPv4 or 6, the fake envd answering ok_response() in mode. */
static bool fx_begin_ok(struct fx *f, int family, enum srv_mode mode)
{
	if (!fx_begin(f, family, true))
		return false;
	f->resp = ok_response();
	fx_answer(f, mode, f->resp);
	return true;
}

static void test_ok_with_token(void)
{
	json_t *want = ok_expected();
	char host[64];
	struct fx f;

	REQUIRE(want && fx_begin_ok(&f, AF_INET, SRV_ANSWER));
	fx_fetch(&f, NULL, "tok-123._~+/= \"x\"", 5000);
	CHECK(json_equal(f.res.vars, want));
	CHECK(f.res.why == NULL);
	/* The request as the server saw it. */
	CHECK(strncmp(f.s.req, "GET /envs HTTP/1.1\r\n", 20) == 0);
	snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", f.s.port);
	CHECK(strstr(f.s.req, host));
	CHECK(strstr(f.s.req, "\r\nX-Access-Token: tok-123._~+/= \"x\"\r\n"));
	CHECK(strstr(f.s.req, "\r\nConnection: close\r\n"));
	fx_end(&f);
	json_decref(want);
}

static void test_ok_without_token(void)
{
	json_t *want = ok_expected();
	struct fx f;

	REQUIRE(want && fx_begin_ok(&f, AF_INET, SRV_ANSWER));
	fx_fetch(&f, NULL, NULL, 5000);
	CHECK(json_equal(f.res.vars, want));
	CHECK(f.s.got_request);
	CHECK(!strcasestr(f.s.req, "x-access-token"));
	fx_end(&f);
	json_decref(want);
}

/* A byte per turn exercises every partial state of the parser. */
static void test_trickle(void)
{
	json_t *want = ok_expected();
	struct fx f;

	REQUIRE(want && fx_begin_ok(&f, AF_INET, SRV_TRICKLE));
	fx_fetch(&f, NULL, NULL, 5000);
	CHECK(json_equal(f.res.vars, want));
	fx_end(&f);
	json_decref(want);
}

/* The body is complete by Content-Length: no need to wait for EOF. */
static void test_keepopen(void)
{
	json_t *want = ok_expected();
	struct fx f;

	REQUIRE(want && fx_begin_ok(&f, AF_INET, SRV_KEEPOPEN));
	fx_fetch(&f, NULL, NULL, 5000);
	CHECK(json_equal(f.res.vars, want));
	/* The client closed its socket when it was done. */
	RUN_UNTIL(f.l, f.s.peer_closed);
	CHECK(f.s.peer_closed);
	fx_end(&f);
	json_decref(want);
}

static void test_base_path(void)
{
	char url[64];
	struct fx f;

	REQUIRE(fx_begin_ok(&f, AF_INET, SRV_ANSWER));
	snprintf(url, sizeof(url), "HTTP://127.0.0.1:%d/base/dir//", f.s.port);
	fx_fetch(&f, url, NULL, 5000);
	CHECK(json_object_size(f.res.vars) == 7);
	CHECK(strncmp(f.s.req, "GET /base/dir/envs HTTP/1.1\r\n", 29) == 0);
	fx_end(&f);
}

/* One scripted response and whether it must yield {"K": "v"} (true) or the
 * empty object (false). */
struct resp_case {
	const char *name;
	const char *resp;
	bool ok;
};

static const struct resp_case resp_cases[] = {
    {"content-length",
     "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
     "{\"K\":\"v\"}\n",
     true},
    {"close-delimited", "HTTP/1.0 200 OK\r\n\r\n{\"K\":\"v\"}", true},
    {"no reason phrase",
     "HTTP/1.1 200\r\ncontent-length: 9\r\n\r\n"
     "{\"K\":\"v\"}",
     true},
    {"extra bytes after the length",
     "HTTP/1.1 200 OK\r\nContent-Length:"
     " 9\r\n\r\n{\"K\":\"v\"}garbage",
     true},
    {"same length twice",
     "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
     "Content-Length: 9\r\n\r\n{\"K\":\"v\"}",
     true},
    {"chunked",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "3\r\n{\"K\r\n"
     "6;ext=1\r\n\":\"v\"}\r\n"
     "0\r\n\r\n",
     true},
    {"chunked, trailers, case",
     "HTTP/1.1 200 OK\r\ntransfer-encoding: "
     "Chunked\r\n\r\n"
     "9\r\n{\"K\":\"v\"}\r\n"
     "0\r\nX-Trailer: 1\r\n\r\n",
     true},
    {"404",
     "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n"
     "{\"K\":\"v\"}",
     false},
    {"500", "HTTP/1.1 500 Oops\r\n\r\n{\"K\":\"v\"}", false},
    {"204", "HTTP/1.1 204 No Content\r\n\r\n", false},
    {"not HTTP", "ICY 200 OK\r\n\r\n{\"K\":\"v\"}", false},
    {"HTTP/2 status line", "HTTP/2 200\r\n\r\n{\"K\":\"v\"}", false},
    {"bare LF", "HTTP/1.1 200 OK\n\n{\"K\":\"v\"}", false},
    {"nothing", "", false},
    {"invalid JSON", "HTTP/1.1 200 OK\r\n\r\n{\"K\":\"v\"", false},
    {"JSON array", "HTTP/1.1 200 OK\r\n\r\n[\"K\", \"v\"]", false},
    {"JSON string", "HTTP/1.1 200 OK\r\n\r\n\"K=v\"", false},
    {"non-string value", "HTTP/1.1 200 OK\r\n\r\n{\"K\":\"v\",\"N\":1}", false},
    {"null value", "HTTP/1.1 200 OK\r\n\r\n{\"K\":\"v\",\"N\":null}", false},
    {"truncated body",
     "HTTP/1.1 200 OK\r\nContent-Length: 90\r\n\r\n"
     "{\"K\":\"v\"}",
     false},
    {"conflicting lengths",
     "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
     "Content-Length: 10\r\n\r\n{\"K\":\"v\"} ",
     false},
    {"bad length",
     "HTTP/1.1 200 OK\r\nContent-Length: 9x\r\n\r\n"
     "{\"K\":\"v\"}",
     false},
    {"gzip coding",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"
     "{\"K\":\"v\"}",
     false},
    {"bad chunk size",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
     "\r\nzz\r\n{\"K\":\"v\"}\r\n0\r\n\r\n",
     false},
    {"chunk without CRLF",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
     "chunked\r\n\r\n9\r\n{\"K\":\"v\"}XX0\r\n\r\n",
     false},
    {"chunked, no last chunk",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
     "chunked\r\n\r\n9\r\n{\"K\":\"v\"}\r\n",
     false},
    {"header without colon",
     "HTTP/1.1 200 OK\r\nBroken\r\n\r\n"
     "{\"K\":\"v\"}",
     false},
    {"folded header",
     "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n"
     "{\"K\":\"v\"}",
     false},
};

/* Each case twice: all at once, then a byte per turn, which takes the
 * parser through every partial state. */
static void test_responses(void)
{
	json_t *want = json_pack("{s:s}", "K", "v");
	size_t i;

	REQUIRE(want);
	for (i = 0; i < 2 * sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
		const struct resp_case *c = &resp_cases[i / 2];
		int failed = th_cur_failed;
		struct fx f;

		REQUIRE(fx_begin(&f, AF_INET, true));
		fx_answer(&f, i % 2 ? SRV_TRICKLE : SRV_ANSWER, c->resp);
		fx_fetch(&f, NULL, NULL, 5000);
		if (c->ok)
			CHECK(json_equal(f.res.vars, want) &&
			      f.res.why == NULL);
		else
			CHECK(is_empty_object(f.res.vars) && f.res.why != NULL);
		if (th_cur_failed != failed)
			fprintf(stderr, "    in case: %s%s\n", c->name,
				i % 2 ? " (a byte at a time)" : "");
		fx_end(&f);
	}
	json_decref(want);
}

/* A valid object just over the 1 MiB cap is refused. */
static void test_too_large(void)
{
	size_t n = 1024 * 1024 + 16;
	char *resp = malloc(n + 64);
	struct fx f;
	int head;

	REQUIRE(resp);
	head = sprintf(resp, "HTTP/1.1 200 OK\r\n\r\n{\"K\":\"");
	memset(resp + head, 'x', n);
	strcpy(resp + head + n, "\"}");
	REQUIRE(fx_begin(&f, AF_INET, true));
	fx_answer(&f, SRV_ANSWER, resp);
	fx_fetch(&f, NULL, NULL, 5000);
	CHECK(is_empty_object(f.res.vars));
	fx_end(&f);
	/* Just under the cap is fine. */
	strcpy(resp + 1024 * 1024 - 2, "\"}");
	REQUIRE(fx_begin(&f, AF_INET, true));
	f.resp = resp;
	fx_answer(&f, SRV_ANSWER, f.resp);
	fx_fetch(&f, NULL, NULL, 5000);
	CHECK(json_object_size(f.res.vars) == 1);
	CHECK(strlen(json_string_value(json_object_get(f.res.vars, "K"))) ==
	      1024 * 1024 - 2 - (size_t)head);
	fx_end(&f);
}

static void test_refused(void)
{
	struct fx f;

	/* Bound but not listening: connecting is refused, and the port
	 * cannot be taken by anyone else meanwhile. */
	REQUIRE(fx_begin(&f, AF_INET, false));
	fx_fetch(&f, NULL, "t", 5000);
	CHECK(is_empty_object(f.res.vars));
	fx_end(&f);
}

static void test_timeout(void)
{
	uint64_t t0 = loop_now_ms();
	struct fx f;

	REQUIRE(fx_begin(&f, AF_INET, true));
	fx_answer(&f, SRV_SILENT, NULL);
	fx_fetch(&f, NULL, NULL, 200);
	CHECK(is_empty_object(f.res.vars));
	CHECK(f.s.got_request); /* It did get as far as sending. */
	CHECK(loop_now_ms() - t0 >= 200);
	/* The client closed its socket. */
	RUN_UNTIL(f.l, f.s.peer_closed);
	CHECK(f.s.peer_closed);
	fx_end(&f);
}

static void on_flag(void *arg, short revents)
{
	(void)revents;
	*(bool *)arg = true;
}

/* Cancelled mid-request: the socket is closed at once and done never runs,
 * not even after the deadline would have passed. */
static void test_cancel(void)
{
	struct loop_timer t = {0};
	struct envd_req *r;
	bool past = false;
	struct fx f;

	REQUIRE(fx_begin(&f, AF_INET, true));
	fx_answer(&f, SRV_SILENT, NULL);
	r = envd_fetch(f.l, f.url, "tok", 50, on_done, &f.res);
	REQUIRE(r);
	RUN_UNTIL(f.l, f.s.got_request);
	REQUIRE(f.s.got_request);
	envd_cancel(r);
	RUN_UNTIL(f.l, f.s.peer_closed);
	CHECK(f.s.peer_closed);
	loop_timer_arm(f.l, &t, 100, on_flag, &past);
	RUN_UNTIL(f.l, past);
	CHECK(past);
	CHECK(f.res.calls == 0);
	envd_cancel(NULL);
	fx_end(&f);
}

/* Cancelled while a failure is waiting to be reported from the loop. */
static void test_cancel_pending_failure(void)
{
	struct loop *l = loop_new();
	struct loop_timer t = {0};
	struct result res = {0};
	struct envd_req *r;
	bool past = false;

	REQUIRE(l);
	r = envd_fetch(l, "ftp://127.0.0.1/", NULL, 1000, on_done, &res);
	REQUIRE(r);
	envd_cancel(r);
	loop_timer_arm(l, &t, 20, on_flag, &past);
	RUN_UNTIL(l, past);
	CHECK(past);
	CHECK(res.calls == 0);
	loop_free(l);
}

static void test_bad_input(void)
{
	static const char *urls[] = {
	    "https://127.0.0.1:1",
	    "ftp://127.0.0.1",
	    "http://",
	    "http:///envs",
	    "http://:80",
	    "http://[::1",
	    "http://[::1]x",
	    "http://127.0.0.1:0",
	    "http://127.0.0.1:",
	    "http://127.0.0.1:65536",
	    "http://127.0.0.1:8x",
	    "http://u@127.0.0.1:1",
	    "http://127.0.0.1/a b",
	    "http://127.0.0.1/?q=1",
	    "http://127.0.0.1/\r\nX-Evil: 1",
	    "http://no-such-host.invalid:1",
	    "localhost:49983",
	};
	struct fx f;
	size_t i;

	/* The fake envd must never see a request. */
	REQUIRE(fx_begin(&f, AF_INET, true));
	for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		fx_fetch(&f, urls[i], NULL, 5000);
		CHECK(is_empty_object(f.res.vars));
		CHECK(f.res.why != NULL);
		/* The option parser refuses what envd cannot parse; a name
		 * that does not resolve is well-formed. */
		CHECK((envd_url_check(urls[i]) == 0) ==
		      (strstr(urls[i], ".invalid") != NULL));
	}
	CHECK(envd_url_check("http://127.0.0.1:1") == 0);
	CHECK(envd_url_check("http://[::1]:49983/base/") == 0);
	CHECK(envd_url_check("http://localhost") == 0);
	/* A token that would split the header never reaches the wire. */
	for (i = 0; i < 2; i++) {
		fx_fetch(&f, NULL, i ? "a\nb" : "a\r\nX-Evil: 1", 5000);
		CHECK(is_empty_object(f.res.vars));
	}
	CHECK(f.s.accepted == 0);
	fx_end(&f);
}

/* The name the interposed resolver knows, and the ports it answers. */
#define TWO_ADDRS_HOST "two-addresses.test"
static int two_ports[2];
static struct addrinfo *two_list;

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *,
		      struct addrinfo **);
typedef void (*fai_fn)(struct addrinfo *);

static struct addrinfo *two_node(int port, struct addrinfo *next)
{
	struct {
		struct addrinfo ai;
		struct sockaddr_in sin;
	} *n = calloc(1, sizeof(*n));

	if (!n)
		abort();
	n->sin.sin_family = AF_INET;
	n->sin.sin_port = htons((uint16_t)port);
	n->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	n->ai.ai_family = AF_INET;
	n->ai.ai_socktype = SOCK_STREAM;
	n->ai.ai_protocol = IPPROTO_TCP;
	n->ai.ai_addr = (struct sockaddr *)&n->sin;
	n->ai.ai_addrlen = sizeof(n->sin);
	n->ai.ai_next = next;
	return &n->ai;
}

int getaddrinfo(const char *node, const char *service,
		const struct addrinfo *hints, struct addrinfo **res)
{
	gai_fn real;

	if (node && strcmp(node, TWO_ADDRS_HOST) == 0) {
		if (two_list)
			abort(); /* One at a time is all the tests need. */
		two_list = two_node(two_ports[0], two_node(two_ports[1], NULL));
		*res = two_list;
		return 0;
	}
	*(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
	return real(node, service, hints, res);
}

void freeaddrinfo(struct addrinfo *ai)
{
	fai_fn real;

	if (ai && ai == two_list) {
		free(ai->ai_next);
		free(ai);
		two_list = NULL;
		return;
	}
	*(void **)&real = dlsym(RTLD_NEXT, "freeaddrinfo");
	real(ai);
}

/* A name with two addresses: the first refuses, the second answers. */
static void test_next_address(void)
{
	struct srv refusing;
	struct fx f;

	REQUIRE(fx_begin_ok(&f, AF_INET, SRV_ANSWER));
	if (srv_start(&refusing, f.l, AF_INET, false) < 0) {
		CHECK(!"a refusing socket");
		fx_end(&f);
		return;
	}
	two_ports[0] = refusing.port;
	two_ports[1] = f.s.port;
	fx_fetch(&f, "http://" TWO_ADDRS_HOST ":1", NULL, 5000);
	CHECK(json_object_size(f.res.vars) == 7);
	CHECK(strstr(f.s.req, "\r\nHost: " TWO_ADDRS_HOST ":1\r\n"));
	CHECK(two_list == NULL); /* Freed. */
	/* Both refusing: empty, once. */
	two_ports[1] = refusing.port;
	fx_fetch(&f, "http://" TWO_ADDRS_HOST, NULL, 5000);
	CHECK(is_empty_object(f.res.vars));
	CHECK(f.s.accepted == 1);
	srv_stop(&refusing);
	fx_end(&f);
}

/* A host name (resolved through /etc/hosts) works too. */
static void test_localhost(void)
{
	char url[64];
	struct fx f;

	REQUIRE(fx_begin_ok(&f, AF_INET, SRV_ANSWER));
	snprintf(url, sizeof(url), "http://localhost:%d", f.s.port);
	fx_fetch(&f, url, NULL, 5000);
	CHECK(json_object_size(f.res.vars) == 7);
	CHECK(strstr(f.s.req, "\r\nHost: localhost:"));
	fx_end(&f);
}

static void test_ipv6(void)
{
	char url[64], host[64];
	struct fx f;

	if (!fx_begin_ok(&f, AF_INET6, SRV_ANSWER)) {
		printf("     (no IPv6 loopback here: skipped)\n");
		return;
	}
	snprintf(url, sizeof(url), "http://[::1]:%d/", f.s.port);
	fx_fetch(&f, url, "t6", 5000);
	CHECK(json_object_size(f.res.vars) == 7);
	snprintf(host, sizeof(host), "\r\nHost: [::1]:%d\r\n", f.s.port);
	CHECK(strstr(f.s.req, host));
	CHECK(strstr(f.s.req, "\r\nX-Access-Token: t6\r\n"));
	fx_end(&f);
}

static void on_done_refetch(void *arg, json_t *vars, const char *why);

/* done may start another fetch: the first request is gone by then. */
struct chain {
	struct loop *l;
	char url[64];
	int calls;
	json_t *last;
};

static void on_done_refetch(void *arg, json_t *vars, const char *why)
{
	struct chain *c = arg;

	CHECK(why != NULL); /* ftp:// is refused */

	json_decref(c->last);
	c->last = vars;
	if (++c->calls == 1)
		CHECK(envd_fetch(c->l, c->url, NULL, 5000, on_done_refetch, c));
}

static void test_fetch_from_done(void)
{
	struct chain c = {0};

	c.l = loop_new();
	REQUIRE(c.l);
	snprintf(c.url, sizeof(c.url), "ftp://nowhere");
	CHECK(envd_fetch(c.l, c.url, NULL, 5000, on_done_refetch, &c));
	RUN_UNTIL(c.l, c.calls >= 2);
	CHECK(c.calls == 2);
	CHECK(is_empty_object(c.last));
	json_decref(c.last);
	loop_free(c.l);
}

int main(void)
{
	log_init(getenv("TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN, 0);
	TEST(test_ok_with_token);
	TEST(test_ok_without_token);
	TEST(test_trickle);
	TEST(test_keepopen);
	TEST(test_base_path);
	TEST(test_responses);
	TEST(test_too_large);
	TEST(test_refused);
	TEST(test_timeout);
	TEST(test_cancel);
	TEST(test_cancel_pending_failure);
	TEST(test_bad_input);
	TEST(test_next_address);
	TEST(test_localhost);
	TEST(test_ipv6);
	TEST(test_fetch_from_done);
	return test_report();
}
