/*
 * envd: one non-blocking HTTP/1.1 GET of <envd_url>/envs, driven by the loop.
 *
 * Owns, per request: the parsed URL, the resolved address list, one socket
 * and its watch, one timer and the response buffer. A request moves through
 * CONNECTING (one address after the other, in getaddrinfo order), WRITING
 * and READING; the timer is the overall deadline, and is re-armed with 0 ms
 * when the request fails before the loop ever ran it, so that done is never
 * called from inside envd_fetch().
 *
 * Invariants: done is called exactly once unless envd_cancel() comes first;
 * everything is freed before done runs, so done may start another fetch;
 * the response is capped at ENVD_MAX_RESPONSE bytes; every failure hands
 * done an empty object (allocated up front, so failing never allocates) and
 * its reason, and is logged here at debug level only (the caller warns). A body
 * that is not a JSON object of string values is a failure as a whole: no
 * partial environment is ever applied.
 *
 * Loop thread only. Deliberately not done: https, redirects, keep-alive,
 * proxies, content codings, obsolete header folding, and asynchronous DNS:
 * the host is resolved with a blocking getaddrinfo(), which is immediate for
 * the IP literals and "localhost" (/etc/hosts) that envd URLs use inside a
 * sandbox; a name that needs DNS would block the loop for the resolver's
 * timeout.
 */
#include "envd.h"

#include "dbuf.h"
#include "log.h"
#include "loop.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

/* Caps on what we send and what we accept. */
#define ENVD_MAX_RESPONSE (1024 * 1024)
#define ENVD_MAX_URL	  2048
#define ENVD_MAX_TOKEN	  4096
#define ENVD_READ_CHUNK	  16384

enum envd_state { ENVD_CONNECTING, ENVD_WRITING, ENVD_READING };

struct envd_req {
	struct loop *loop;
	envd_done_fn done;
	void *arg;
	json_t *empty;		 /* What a failure reports. */
	const char *why;	 /* Failure noted before the loop ran us. */
	char *url;		 /* For log lines. */
	struct addrinfo *ai;	 /* The resolved addresses... */
	struct addrinfo *ai_cur; /* ...and the one being tried. */
	int fd;
	struct loop_watch *watch;
	struct loop_timer timer; /* Deadline, or the deferred failure. */
	enum envd_state state;
	char *out; /* The request bytes. */
	size_t out_len, out_off;
	/* The response so far: one byte past ENVD_MAX_RESPONSE tells it is
	 * too long. */
	struct dbuf in;
};

/* What the response head says. */
struct envd_head {
	int status;
	size_t body_off;  /* Offset of the body in the response. */
	long long length; /* Content-Length, or -1. */
	bool chunked;
};

/* The parts of an http:// URL, pointing into one allocation. */
struct envd_url {
	char *buf;
	const char *authority; /* host[:port] as written, for Host. */
	const char *host;      /* Without brackets. */
	const char *port;
	const char *path; /* Base path without trailing '/', maybe "". */
};

/* True if s has no byte that could end or split a header line or request
 * target (controls, space when !space_ok, DEL). */
static bool clean_bytes(const char *s, bool space_ok)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f || (c == ' ' && !space_ok))
			return false;
	}
	return true;
}

static bool valid_port(const char *p)
{
	long v = 0;

	if (!*p || strlen(p) > 5)
		return false;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	return v >= 1 && v <= 65535;
}

/* Splits "host[:port]" or "[v6]:port" in place (buf is writable). */
static int split_authority(char *a, struct envd_url *u)
{
	char *colon;

	if (*a == '[') {
		char *end = strchr(a, ']');
		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		*end = '\0';
		u->host = a + 1;
		colon = end[1] ? end + 1 : NULL;
	} else {
		u->host = a;
		colon = strchr(a, ':');
	}
	if (colon)
		*colon = '\0';
	u->port = colon ? colon + 1 : "80";
	if (!*u->host || strchr(u->host, '@') || !valid_port(u->port))
		return -EINVAL;
	return 0;
}

/* Parses http://host[:port][/base]; the caller frees u->buf. */
static int url_parse(const char *url, struct envd_url *u)
{
	size_t alen, len = strlen(url);
	const char *rest, *slash;
	char *p;

	memset(u, 0, sizeof(*u));
	if (len > ENVD_MAX_URL || strncasecmp(url, "http://", 7) != 0 ||
	    !clean_bytes(url, false) || strpbrk(url, "?#"))
		return -EINVAL;
	rest = url + 7;
	slash = strchr(rest, '/');
	alen = slash ? (size_t)(slash - rest) : strlen(rest);
	/* Layout of buf: authority NUL host-and-port NUL path NUL. */
	u->buf = p = malloc(2 * len + 3);
	if (!p)
		return -ENOMEM;
	memcpy(p, rest, alen);
	p[alen] = '\0';
	u->authority = p;
	p += alen + 1;
	memcpy(p, rest, alen);
	p[alen] = '\0';
	if (split_authority(p, u) < 0)
		return -EINVAL;
	p += alen + 1;
	len = slash ? strlen(slash) : 0;
	memcpy(p, slash ? slash : "", len + 1);
	while (len > 0 && p[len - 1] == '/')
		p[--len] = '\0';
	u->path = p;
	return 0;
}

int envd_url_check(const char *url)
{
	struct envd_url u;
	int rc = url_parse(url, &u);

	free(u.buf);
	return rc < 0 ? -1 : 0;
}

/* Builds the request text into r->out. */
static int build_request(struct envd_req *r, const struct envd_url *u,
			 const char *token)
{
	int n;

	if (token &&
	    (strlen(token) > ENVD_MAX_TOKEN || !clean_bytes(token, true)))
		return -EINVAL;
	n = asprintf(&r->out,
		     "GET %s/envs HTTP/1.1\r\n"
		     "Host: %s\r\n"
		     "%s%s%s"
		     "Connection: close\r\n"
		     "\r\n",
		     u->path, u->authority, token ? "X-Access-Token: " : "",
		     token ? token : "", token ? "\r\n" : "");
	if (n < 0) {
		r->out = NULL;
		return -ENOMEM;
	}
	r->out_len = (size_t)n;
	return 0;
}

/* Closes the socket and frees everything; does not call done. */
static void req_free(struct envd_req *r)
{
	loop_del(r->loop, r->watch);
	if (r->fd >= 0)
		close(r->fd);
	loop_timer_disarm(r->loop, &r->timer);
	if (r->ai)
		freeaddrinfo(r->ai);
	json_decref(r->empty);
	free(r->url);
	free(r->out);
	dbuf_cleanup(&r->in);
	free(r);
}

/* Ends the request with vars (a new reference, stolen); why as for done. */
static void finish(struct envd_req *r, json_t *vars, const char *why)
{
	envd_done_fn done = r->done;
	void *arg = r->arg;

	req_free(r);
	done(arg, vars, why);
}

static void fail(struct envd_req *r, const char *why)
{
	json_t *empty = r->empty;

	log_debug("envd: GET %.200s/envs: %s; no global env vars", r->url, why);
	r->empty = NULL;
	finish(r, empty, why);
}

static void on_io(void *arg, short revents);

/* Starts connecting to r->ai_cur or the next address that accepts the
 * attempt. Returns 0 once a connection is under way, or the last failure
 * (err if no address was left to try) when every address has been tried. */
static int try_connect(struct envd_req *r, int err)
{
	struct addrinfo *a;

	for (a = r->ai_cur; a; a = a->ai_next) {
		r->ai_cur = a;
		r->fd = socket(a->ai_family,
			       a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			       a->ai_protocol);
		if (r->fd < 0) {
			err = -errno;
			continue;
		}
		if (connect(r->fd, a->ai_addr, a->ai_addrlen) == 0 ||
		    errno == EINPROGRESS) {
			r->watch =
			    loop_add_fd(r->loop, r->fd, ZMQ_POLLOUT, on_io, r);
			if (r->watch)
				return 0;
			err = -ENOMEM;
		} else {
			err = -errno;
		}
		close(r->fd);
		r->fd = -1;
	}
	r->ai_cur = NULL;
	return err;
}

/* The socket became writable while connecting: connected, or on to the next
 * address. Returns 0 or -errno when no address is left. */
static int on_connect(struct envd_req *r)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr == 0) {
		r->state = ENVD_WRITING;
		return 0;
	}
	log_debug("envd: connect to %.200s: %s", r->url, strerror(soerr));
	loop_del(r->loop, r->watch);
	r->watch = NULL;
	close(r->fd);
	r->fd = -1;
	r->ai_cur = r->ai_cur->ai_next;
	return try_connect(r, -soerr);
}

/* Writes what the socket takes; switches to reading when all is sent.
 * Returns 0 or -errno. */
static int do_write(struct envd_req *r)
{
	ssize_t n;

	while (r->out_off < r->out_len) {
		n = send(r->fd, r->out + r->out_off, r->out_len - r->out_off,
			 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -errno;
		}
		r->out_off += (size_t)n;
	}
	r->state = ENVD_READING;
	loop_set_events(r->watch, ZMQ_POLLIN);
	return 0;
}

/* Reads what is there. Returns 1 at EOF, 0 when the socket would block,
 * -EMSGSIZE past the cap, or -errno. */
static int do_read(struct envd_req *r)
{
	size_t want;
	ssize_t n;
	char *w;

	for (;;) {
		want = ENVD_MAX_RESPONSE + 1 - dbuf_len(&r->in);
		if (want > ENVD_READ_CHUNK)
			want = ENVD_READ_CHUNK;
		w = dbuf_room(&r->in, want);
		if (!w)
			return dbuf_err(&r->in);
		n = recv(r->fd, w, want, 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -errno;
		}
		dbuf_commit(&r->in, (size_t)n);
		if (dbuf_len(&r->in) > ENVD_MAX_RESPONSE)
			return -EMSGSIZE;
		if (n == 0)
			return 1;
	}
}

/* Parses the status line. Returns 0 or -EBADMSG. */
static int parse_status(const char *s, size_t len, struct envd_head *h)
{
	/* "HTTP/1.x SSS" then a space or the end of the line. */
	if (len < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' ||
	    s[7] > '9' || s[8] != ' ')
		return -EBADMSG;
	for (int i = 9; i < 12; i++)
		if (s[i] < '0' || s[i] > '9')
			return -EBADMSG;
	if (len > 12 && s[12] != ' ')
		return -EBADMSG;
	h->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	return 0;
}

/* Applies one header line we care about. Returns 0 or -EBADMSG. */
static int parse_header(const char *s, size_t len, struct envd_head *h)
{
	const char *colon = memchr(s, ':', len), *v, *end = s + len;
	long long cl = 0;

	if (!colon || colon == s || s[0] == ' ' || s[0] == '\t' ||
	    colon[-1] == ' ' || colon[-1] == '\t')
		return -EBADMSG;
	for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (colon - s == 17 && strncasecmp(s, "Transfer-Encoding", 17) == 0) {
		if (end - v != 7 || strncasecmp(v, "chunked", 7) != 0)
			return -EBADMSG;
		h->chunked = true;
	} else if (colon - s == 14 &&
		   strncasecmp(s, "Content-Length", 14) == 0) {
		if (v == end)
			return -EBADMSG;
		for (; v < end; v++) {
			if (*v < '0' || *v > '9' || cl > ENVD_MAX_RESPONSE)
				return -EBADMSG;
			cl = cl * 10 + (*v - '0');
		}
		if (h->length >= 0 && h->length != cl)
			return -EBADMSG;
		h->length = cl;
	}
	return 0;
}

/* Parses the response head. Returns 1 when complete, 0 when more is needed,
 * -EBADMSG when malformed. */
static int parse_head(const char *buf, size_t len, struct envd_head *h)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *line, *eol;
	int rc;

	if (!end)
		return 0;
	memset(h, 0, sizeof(*h));
	h->length = -1;
	h->body_off = (size_t)(end - buf) + 4;
	eol = memmem(buf, (size_t)(end - buf) + 2, "\r\n", 2);
	rc = parse_status(buf, (size_t)(eol - buf), h);
	for (line = eol + 2; rc == 0 && line < end + 2; line = eol + 2) {
		eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		rc = parse_header(line, (size_t)(eol - line), h);
	}
	return rc < 0 ? rc : 1;
}

/* Finds "\r\n" in [p, end); NULL when not there yet. */
static const char *find_crlf(const char *p, const char *end)
{
	return end - p >= 2 ? memmem(p, (size_t)(end - p), "\r\n", 2) : NULL;
}

/* The value of hex digit c, or -1. */
static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
		return (c | 0x20) - 'a' + 10;
	return -1;
}

/* Decodes a chunked body from [p, end) into out (room for end - p bytes).
 * Returns 1 when the last chunk and trailers are in, 0 when more is needed,
 * -EBADMSG when malformed. Chunk sizes above 8 hex digits are malformed;
 * the response cap keeps real ones far smaller. */
static int dechunk(const char *p, const char *end, char *out, size_t *out_len)
{
	const char *eol;
	size_t size;
	int digits;

	*out_len = 0;
	for (;;) {
		size = 0;
		for (digits = 0; p < end && hexval(*p) >= 0; p++, digits++) {
			if (digits == 8)
				return -EBADMSG;
			size = size * 16 + (size_t)hexval(*p);
		}
		if (p == end)
			return 0;
		if (!digits || !strchr(" \t;\r", *p) || !*p)
			return -EBADMSG;
		/* Chunk extensions, ignored, up to the end of the line. */
		eol = find_crlf(p, end);
		if (!eol)
			return 0;
		p = eol + 2;
		if (size == 0)
			break;
		if ((size_t)(end - p) < size + 2)
			return 0;
		if (p[size] != '\r' || p[size + 1] != '\n')
			return -EBADMSG;
		memcpy(out + *out_len, p, size);
		*out_len += size;
		p += size + 2;
	}
	/* Trailer fields, ignored, up to an empty line. */
	while ((eol = find_crlf(p, end)) && eol != p)
		p = eol + 2;
	return eol ? 1 : 0;
}

/* Turns a complete body into the vars object. Returns a new reference, or
 * NULL with *why set. */
static json_t *body_to_vars(const char *body, size_t len, const char **why)
{
	json_error_t err;
	json_t *vars, *v;
	const char *k;

	vars = json_loadb(body, len, 0, &err);
	if (!vars) {
		*why = "body is not JSON";
		return NULL;
	}
	if (!json_is_object(vars)) {
		*why = "body is not a JSON object";
		goto out;
	}
	json_object_foreach(vars, k, v)
	{
		if (!json_is_string(v)) {
			*why = "a value is not a string";
			goto out;
		}
	}
	return vars;
out:
	json_decref(vars);
	return NULL;
}

/* Looks at what has arrived. Returns the vars when the response is complete
 * and good; NULL with *why set on failure, or with *why NULL when more is
 * needed. eof: the server has closed its side. */
static json_t *check_response(struct envd_req *r, bool eof, const char **why)
{
	struct envd_head h;
	const char *body;
	size_t body_len;
	char *dec = NULL;
	json_t *vars = NULL;
	int rc;

	*why = NULL;
	rc = parse_head(dbuf_ptr(&r->in), dbuf_len(&r->in), &h);
	if (rc <= 0) {
		*why = rc < 0 ? "malformed response head"
		       : eof  ? "connection closed before the response head"
			      : NULL;
		return NULL;
	}
	if (h.status != 200) {
		*why = "status is not 200";
		return NULL;
	}
	body = dbuf_ptr(&r->in) + h.body_off;
	body_len = dbuf_len(&r->in) - h.body_off;
	if (h.chunked) {
		dec = malloc(body_len + 1);
		if (!dec) {
			*why = "out of memory";
			return NULL;
		}
		rc = dechunk(body, body + body_len, dec, &body_len);
		body = dec;
	} else if (h.length >= 0) {
		rc = body_len >= (size_t)h.length;
		body_len = rc ? (size_t)h.length : body_len;
	} else {
		rc = eof;
	}
	if (rc < 0)
		*why = "malformed chunked body";
	else if (rc == 0 && eof)
		*why = "connection closed before the end of the body";
	else if (rc == 1)
		vars = body_to_vars(body, body_len, why);
	free(dec);
	return vars;
}

/* Reading: on each batch, see whether the response is complete. */
static void on_readable(struct envd_req *r)
{
	const char *why;
	json_t *vars;
	int rc;

	rc = do_read(r);
	if (rc < 0) {
		fail(r, rc == -EMSGSIZE ? "response larger than 1 MiB"
					: strerror(-rc));
		return;
	}
	vars = check_response(r, rc == 1, &why);
	if (vars)
		finish(r, vars, NULL);
	else if (why)
		fail(r, why);
}

static void on_io(void *arg, short revents)
{
	struct envd_req *r = arg;
	int rc;

	(void)revents;
	if (r->state == ENVD_READING) {
		on_readable(r);
		return;
	}
	rc = r->state == ENVD_CONNECTING ? on_connect(r) : 0;
	/* Connected: the socket is writable, so send right away. */
	if (rc == 0 && r->state == ENVD_WRITING)
		rc = do_write(r);
	if (rc < 0)
		fail(r, strerror(-rc));
}

static void on_timer(void *arg, short revents)
{
	struct envd_req *r = arg;

	(void)revents;
	fail(r, r->why ? r->why : "timed out");
}

/* Parses, resolves and starts connecting. Returns 0, -ENOMEM, or another
 * negative code with r->why set, to be reported from the loop. */
static int start(struct envd_req *r, const char *url, const char *token)
{
	struct addrinfo hints = {0};
	struct envd_url u;
	int rc;

	rc = url_parse(url, &u);
	if (rc < 0) {
		r->why = "unsupported envd URL";
		goto out;
	}
	rc = build_request(r, &u, token);
	if (rc < 0) {
		r->why = "token not usable in a header";
		goto out;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(u.host, u.port, &hints, &r->ai);
	if (rc != 0) {
		r->ai = NULL;
		r->why = gai_strerror(rc);
		rc = rc == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
		goto out;
	}
	r->ai_cur = r->ai;
	rc = try_connect(r, -EHOSTUNREACH);
	if (rc < 0)
		r->why = "could not connect";
out:
	if (rc == -ENOMEM)
		r->why = NULL;
	free(u.buf);
	return rc;
}

struct envd_req *envd_fetch(struct loop *l, const char *url, const char *token,
			    long timeout_ms, envd_done_fn done, void *arg)
{
	struct envd_req *r;
	int rc;

	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->loop = l;
	r->done = done;
	r->arg = arg;
	r->fd = -1;
	dbuf_init(&r->in, ENVD_MAX_RESPONSE + 1);
	r->state = ENVD_CONNECTING;
	r->empty = json_object();
	r->url = strdup(url);
	rc = r->empty && r->url ? start(r, url, token) : -ENOMEM;
	if (rc == -ENOMEM) {
		req_free(r);
		return NULL;
	}
	/* Either the deadline, or a failure reported from the next turn. */
	loop_timer_arm(l, &r->timer,
		       rc < 0 ? 0 : (uint64_t)(timeout_ms > 0 ? timeout_ms : 0),
		       on_timer, r);
	return r;
}

void envd_cancel(struct envd_req *r)
{
	if (r)
		req_free(r);
}
