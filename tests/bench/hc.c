/*
 * hc.c: the bench's HTTP/1.1 client. Poll-based, keep-alive, over raw
 * non-blocking sockets, so that holding 1000 connections is cheap and one
 * loop (hc_run) drives any number of requests at once. Bodies are read by
 * Content-Length, chunked encoding or EOF; a streamed NDJSON body is
 * scanned line by line and dropped as it comes (the "type" of each line
 * sets saw_end, saw_two, saw_error and counts stdout bytes). A kept-alive
 * connection found dead before any byte of the answer is reconnected and
 * the request sent once more, unless no_reconnect is set.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bench.h"

void hc_init(struct hc *h, const struct target *tg)
{
	memset(h, 0, sizeof(*h));
	h->tg = tg;
	h->fd = -1;
}

void hc_close(struct hc *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	h->connecting = false;
}

void hc_free(struct hc *h)
{
	hc_close(h);
	free(h->out);
	free(h->in);
	free(h->body);
	h->out = h->in = h->body = NULL;
}

static int hc_connect(struct hc *h)
{
	int one = 1;

	h->inlen = 0;
	h->fd = socket(h->tg->addr.ss_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->fd < 0)
		return -errno;
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(h->fd, (const struct sockaddr *)&h->tg->addr, h->tg->alen) <
	    0) {
		if (errno != EINPROGRESS) {
			int e = -errno;
			hc_close(h);
			return e;
		}
		h->connecting = true;
	}
	return 0;
}

static void hc_finish(struct hc *h, enum hc_phase ph)
{
	h->ph = ph;
	h->t_done = now_ns();
	if (ph == PH_ERR || h->must_close)
		hc_close(h);
	h->notify = true;
}

static void hc_flush(struct hc *h);

/* Reconnects and sends the same request again when a kept-alive connection
 * turned out dead before any byte of the answer came. */
static bool hc_retry(struct hc *h)
{
	if (h->retried || h->got_bytes || h->no_reconnect)
		return false;
	h->retried = true;
	hc_close(h);
	if (hc_connect(h) < 0)
		return false;
	h->outoff = 0;
	h->ph = PH_SEND;
	if (!h->connecting)
		hc_flush(h);
	return true;
}

static void hc_fail(struct hc *h)
{
	if (!hc_retry(h))
		hc_finish(h, PH_ERR);
}

static void hc_flush(struct hc *h)
{
	while (h->outoff < h->outlen) {
		ssize_t n = send(h->fd, h->out + h->outoff,
				 h->outlen - h->outoff, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			hc_fail(h);
			return;
		}
		h->outoff += (size_t)n;
	}
	h->ph = PH_HEAD;
}

void hc_request(struct hc *h, const char *method, const char *path,
		const char *body, bool stream)
{
	size_t blen = body ? strlen(body) : 0;
	int n;

	if (h->fd >= 0 && h->must_close)
		hc_close(h);
	h->must_close = false;
	h->got_bytes = h->retried = false;
	h->status = 0;
	h->clen = -1;
	h->got = 0;
	h->chunked = h->eof_body = false;
	h->chunk_left = -1;
	h->blen = 0;
	h->stream = stream;
	h->stdout_bytes = 0;
	h->saw_end = h->saw_two = h->saw_error = false;
	h->t_end = h->t_done = 0;
	h->notify = false;
	h->inlen = 0;
	if (h->outcap < blen + 512) {
		h->outcap = blen + 512;
		h->out = xrealloc(h->out, h->outcap);
	}
	n = snprintf(
	    h->out, h->outcap,
	    "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: e2b-ci-bench\r\n"
	    "Accept: */*\r\n%s",
	    method, path, h->tg->host,
	    body ? "Content-Type: application/json\r\n" : "");
	n += snprintf(h->out + n, h->outcap - (size_t)n,
		      "Content-Length: %zu\r\n\r\n", blen);
	memcpy(h->out + n, body ? body : "", blen);
	h->outlen = (size_t)n + blen;
	h->outoff = 0;
	h->t0 = now_ns();
	h->ph = PH_SEND;
	if (h->fd < 0) {
		if (h->no_reconnect || hc_connect(h) < 0) {
			hc_finish(h, PH_ERR);
			return;
		}
	}
	if (!h->connecting)
		hc_flush(h);
}

static short hc_events(const struct hc *h)
{
	if (h->fd < 0)
		return 0;
	if (h->connecting || h->ph == PH_SEND)
		return POLLOUT;
	if (h->ph == PH_HEAD || h->ph == PH_BODY)
		return POLLIN;
	return 0;
}

/* The "type" of an NDJSON line (first 80 bytes), into out. */
static void line_type(const char *line, size_t len, char *out, size_t outlen)
{
	const char *p = memmem(line, len < 80 ? len : 80, "\"type\"", 6);
	size_t i = 0;

	out[0] = '\0';
	if (!p)
		return;
	p += 6;
	while (p < line + len && (*p == ' ' || *p == ':'))
		p++;
	if (p >= line + len || *p != '"')
		return;
	for (p++; p < line + len && *p != '"' && i + 1 < outlen; p++)
		out[i++] = *p;
	out[i] = '\0';
}

static void hc_body(struct hc *h, const char *data, size_t len)
{
	size_t scan = 0;
	char *nl;

	if (h->blen + len + 1 > h->bcap) {
		h->bcap = (h->blen + len + 1) * 2;
		h->body = xrealloc(h->body, h->bcap);
	}
	memcpy(h->body + h->blen, data, len);
	h->blen += len;
	h->body[h->blen] = '\0';
	if (!h->stream)
		return;
	while ((nl = memchr(h->body + scan, '\n', h->blen - scan))) {
		const char *line = h->body + scan;
		size_t ll = (size_t)(nl - line);
		char type[32];

		line_type(line, ll, type, sizeof(type));
		if (strcmp(type, "end_of_execution") == 0) {
			h->saw_end = true;
			h->t_end = now_ns();
		} else if (strcmp(type, "stdout") == 0) {
			h->stdout_bytes += ll;
		} else if (strcmp(type, "result") == 0) {
			if (memmem(line, ll, "\"2\"", 3))
				h->saw_two = true;
		} else if (strcmp(type, "error") == 0) {
			if (!h->saw_error)
				say("execution error: %.300s", line);
			h->saw_error = true;
		}
		scan = (size_t)(nl - h->body) + 1;
	}
	memmove(h->body, h->body + scan, h->blen - scan);
	h->blen -= scan;
}

static void hc_head(struct hc *h, char *head, size_t len)
{
	char *line, *save = NULL;

	head[len] = '\0';
	if (strncmp(head, "HTTP/1.", 7) != 0) {
		h->status = -1;
		return;
	}
	h->status = atoi(head + 9);
	if (head[7] == '0')
		h->must_close = true;
	strtok_r(head, "\r\n", &save);
	while ((line = strtok_r(NULL, "\r\n", &save))) {
		if (strncasecmp(line, "content-length:", 15) == 0)
			h->clen = strtoll(line + 15, NULL, 10);
		else if (strncasecmp(line, "transfer-encoding:", 18) == 0 &&
			 strcasestr(line + 18, "chunked"))
			h->chunked = true;
		else if (strncasecmp(line, "connection:", 11) == 0 &&
			 strcasestr(line + 11, "close"))
			h->must_close = true;
	}
}

/* The head, once complete: returns the bytes it took, or 0 when it is not
 * complete yet or the request is already over. */
static size_t hc_parse_head(struct hc *h)
{
	char *e = memmem(h->in, h->inlen, "\r\n\r\n", 4);

	if (!e) {
		if (h->inlen > 65536)
			hc_finish(h, PH_ERR);
		return 0;
	}
	hc_head(h, h->in, (size_t)(e - h->in));
	if (h->status < 100) {
		hc_finish(h, PH_ERR);
		return 0;
	}
	h->ph = PH_BODY;
	if (h->status == 204 || h->status == 304 ||
	    (!h->chunked && h->clen == 0)) {
		h->inlen = 0;
		hc_finish(h, PH_DONE);
		return 0;
	}
	if (!h->chunked && h->clen < 0) {
		h->eof_body = true;
		h->must_close = true;
	}
	return (size_t)(e - h->in) + 4;
}

/* One step through the body at p (avail bytes, avail > 0): body bytes,
 * or a chunk's size line, CRLF or trailer line. Returns the bytes taken,
 * or 0 when more input is needed. */
static size_t hc_body_step(struct hc *h, const char *p, size_t avail)
{
	size_t take = avail;
	const char *e;

	if (!h->chunked) {
		if (h->clen >= 0 && (long long)take > h->clen - h->got)
			take = (size_t)(h->clen - h->got);
		hc_body(h, p, take);
		h->got += (long long)take;
		if (h->clen >= 0 && h->got == h->clen)
			hc_finish(h, PH_DONE);
		return take;
	}
	if (h->chunk_left > 0) {
		if (take > (size_t)h->chunk_left)
			take = (size_t)h->chunk_left;
		hc_body(h, p, take);
		h->chunk_left -= (long long)take;
		if (h->chunk_left == 0)
			h->chunk_left = -2;
		return take;
	}
	if (h->chunk_left == -2) {
		if (avail < 2)
			return 0;
		h->chunk_left = -1;
		return 2;
	}
	e = memmem(p, avail, "\r\n", 2);
	if (!e)
		return 0;
	if (h->chunk_left == -1) {
		long long sz = strtoll(p, NULL, 16);
		h->chunk_left = sz > 0 ? sz : -3;
	} else if (e == p) { /* -3: the empty line after trailers */
		hc_finish(h, PH_DONE);
	}
	return (size_t)(e - p) + 2;
}

/* Parses what is in h->in; consumes it. */
static void hc_parse(struct hc *h)
{
	size_t pos = 0, took;

	if (h->ph == PH_HEAD && (pos = hc_parse_head(h)) == 0)
		return;
	while (h->ph == PH_BODY && pos < h->inlen) {
		took = hc_body_step(h, h->in + pos, h->inlen - pos);
		if (took == 0)
			break;
		pos += took;
	}
	if (h->in) {
		memmove(h->in, h->in + pos, h->inlen - pos);
		h->inlen -= pos;
	}
}

static void hc_read(struct hc *h)
{
	for (int i = 0; i < 64 && (h->ph == PH_HEAD || h->ph == PH_BODY); i++) {
		ssize_t n;

		if (h->incap - h->inlen < 65536) {
			h->incap = h->inlen + 131072;
			h->in = xrealloc(h->in, h->incap + 1);
		}
		n = recv(h->fd, h->in + h->inlen, h->incap - h->inlen, 0);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				hc_fail(h);
			return;
		}
		if (n == 0) {
			if (h->ph == PH_BODY && h->eof_body)
				hc_finish(h, PH_DONE);
			else
				hc_fail(h);
			return;
		}
		h->got_bytes = true;
		h->inlen += (size_t)n;
		hc_parse(h);
	}
}

static void hc_handle(struct hc *h, short revents)
{
	if (h->connecting) {
		int err = 0;
		socklen_t l = sizeof(err);

		getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			hc_fail(h);
			return;
		}
		h->connecting = false;
	}
	if (h->ph == PH_SEND) {
		hc_flush(h);
		return;
	}
	if (revents & (POLLIN | POLLHUP | POLLERR))
		hc_read(h);
}

int hc_run(struct hc **hs, size_t n, bool (*until)(void *), void *arg,
	   long timeout_ms)
{
	static struct pollfd *pfd;
	static size_t *idx, cap;
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;

	if (cap < n) {
		cap = n;
		pfd = xrealloc(pfd, cap * sizeof(*pfd));
		idx = xrealloc(idx, cap * sizeof(*idx));
	}
	while (!until(arg)) {
		uint64_t t = now_ns();
		size_t m = 0;
		int r;

		if (t >= deadline)
			return -1;
		for (size_t i = 0; i < n; i++) {
			short ev = hc_events(hs[i]);
			if (ev) {
				pfd[m] = (struct pollfd){hs[i]->fd, ev, 0};
				idx[m++] = i;
			}
		}
		if (m == 0)
			return until(arg) ? 0 : -1;
		r = poll(pfd, m, (int)((deadline - t) / 1000000u) + 1);
		if (r < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		for (size_t j = 0; r > 0 && j < m; j++) {
			struct hc *h = hs[idx[j]];
			if (pfd[j].revents)
				hc_handle(h, pfd[j].revents);
		}
		/* Completion hooks run here, outside the parser; each may
		 * start the next request (which may finish at once). */
		for (size_t i = 0; i < n; i++) {
			for (int k = 0; k < 4 && hs[i]->notify; k++) {
				hs[i]->notify = false;
				if (hs[i]->on_done)
					hs[i]->on_done(hs[i]);
			}
		}
	}
	return 0;
}

static bool hc_is_over(void *arg)
{
	const struct hc *h = arg;

	return h->ph == PH_DONE || h->ph == PH_ERR;
}

int hc_do(struct hc *h, const char *method, const char *path, const char *body,
	  bool stream, long timeout_ms)
{
	struct hc *one[1] = {h};

	hc_request(h, method, path, body, stream);
	if (hc_run(one, 1, hc_is_over, h, timeout_ms) < 0) {
		hc_close(h);
		h->ph = PH_ERR;
		return -1;
	}
	return h->ph == PH_DONE ? h->status : -1;
}

int hc_target(struct target *t, const char *name, const char *url)
{
	char host[256], port[16] = "80";
	const char *p = url, *e;
	struct addrinfo hints = {0}, *res = NULL;

	t->name = name;
	if (strncmp(p, "http://", 7) == 0)
		p += 7;
	if (*p == '[') {
		e = strchr(p, ']');
		if (!e || (size_t)(e - p - 1) >= sizeof(host))
			return -1;
		memcpy(host, p + 1, (size_t)(e - p - 1));
		host[e - p - 1] = '\0';
		e++;
	} else {
		e = p + strcspn(p, ":/");
		if ((size_t)(e - p) >= sizeof(host) || e == p)
			return -1;
		memcpy(host, p, (size_t)(e - p));
		host[e - p] = '\0';
	}
	if (*e == ':') {
		size_t l = strcspn(e + 1, "/");
		if (l == 0 || l >= sizeof(port))
			return -1;
		memcpy(port, e + 1, l);
		port[l] = '\0';
	}
	snprintf(t->host, sizeof(t->host), "%.*s", (int)(strcspn(p, "/")), p);
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
		return -1;
	memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
	t->alen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}
