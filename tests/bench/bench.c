/*
 * bench: `make bench` (issue 4). Measures e2b-ci and, in the same run, the
 * floor it cannot beat: a client that talks to the same kernelspec directly
 * over ZeroMQ, through the daemon's own kernel_ module (kernel_start,
 * kernel_send, the loop), i.e. the daemon's code path minus HTTP.
 *
 * It starts the daemon itself (loopback, a free port, a private temp dir for
 * runtime files and cwd, --default-languages python): daemon A with the
 * default warm pool for most rows, daemon B with --pool python=0 for the
 * cold POST /contexts and restart rows. The HTTP side is a small poll-based
 * HTTP/1.1 keep-alive client over raw sockets (chunked NDJSON parsed until
 * end_of_execution), so holding 1000 connections is cheap.
 *
 * Floor and e2b-ci samples are interleaved (one each, alternating which goes
 * first) so the noise of a shared machine hits both alike. Nothing here
 * asserts timings: it measures, prints a table and writes JSON (and
 * optionally markdown) with the targets of the issue and whether each is met.
 *
 * Kernels (issue 3): for every language the daemon serves (python,
 * javascript, typescript, r, bash, java; the kernelspec found as the daemon's
 * server_spec finds it), the floor client starts the kernel 3 times, one
 * language and one start at a time (after one uncounted warm-up start), and
 * reports spawn -> ready p50 and the idle RSS of the kernel's process tree
 * (the kernel and all its descendants, sum of VmRSS) 2 s after ready; a
 * language without a kernelspec gets a "not installed" row.
 *
 * --against URL runs the HTTP rows (health, 1+1, contexts, restart,
 * parallel, connections) against another E2B-compatible server as an extra
 * column.
 *
 * Every loop is bounded; daemons and kernels are killed on every exit path
 * (normal end, error exit, SIGINT/SIGTERM/SIGHUP, the overall alarm), and
 * both carry a parent-death signal.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "kernel.h"
#include "kspec.h"
#include "log.h"
#include "loop.h"
#include "wire.h"

#define BENCH_ALARM_S	 900 /* the whole run, whatever happens */
#define MAX_DAEMONS	 4
#define MAX_FLOOR	 8
#define NFLOOR		 4 /* floor kernels: one per parallel context */
#define NPAR		 4 /* parallel contexts */
#define REQ_TIMEOUT_MS	 30000
#define START_TIMEOUT_MS 60000
#define MIB		 (1024.0 * 1024.0)

/* ---------------------------------------------------------------- basics */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double ns_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		die("out of memory");
	return q;
}

/* Samples of one measurement, in ms (or any unit). */
struct samples {
	double *v;
	size_t n, cap;
};

static void sm_add(struct samples *s, double x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Percentile q in [0,1], linear between closest ranks; NAN when empty. */
static double sm_pct(struct samples *s, double q)
{
	double pos;
	size_t i;

	if (s->n == 0)
		return NAN;
	qsort(s->v, s->n, sizeof(*s->v), cmp_double);
	pos = q * (double)(s->n - 1);
	i = (size_t)pos;
	if (i + 1 >= s->n)
		return s->v[s->n - 1];
	return s->v[i] + (pos - (double)i) * (s->v[i + 1] - s->v[i]);
}

static void sm_free(struct samples *s)
{
	free(s->v);
	*s = (struct samples){0};
}

static json_t *sm_json(struct samples *s)
{
	if (s->n == 0)
		return json_null();
	return json_pack("{s:I,s:f,s:f,s:f,s:f}", "n", (json_int_t)s->n, "min",
			 sm_pct(s, 0), "p50", sm_pct(s, 0.5), "p99",
			 sm_pct(s, 0.99), "max", sm_pct(s, 1));
}

/* ------------------------------------------------- cleanup on every path */

static char g_tmp[128];
static pid_t g_daemon_pid[MAX_DAEMONS];
static pid_t g_kernel_pid[MAX_FLOOR];
static volatile sig_atomic_t g_cleaned;

/* Async-signal-safe: kill, waitpid, nanosleep, fork, execv, _exit only. */
static void cleanup_all(void)
{
	struct timespec ts = {0, 10 * 1000000L};

	if (g_cleaned)
		return;
	g_cleaned = 1;
	for (int i = 0; i < MAX_FLOOR; i++) {
		if (g_kernel_pid[i] > 0) {
			killpg(g_kernel_pid[i], SIGKILL);
			kill(g_kernel_pid[i], SIGKILL);
			waitpid(g_kernel_pid[i], NULL, 0);
			g_kernel_pid[i] = 0;
		}
	}
	for (int i = 0; i < MAX_DAEMONS; i++)
		if (g_daemon_pid[i] > 0)
			kill(g_daemon_pid[i], SIGTERM);
	for (int t = 0; t < 300; t++) { /* 3 s for a clean shutdown */
		bool left = false;
		for (int i = 0; i < MAX_DAEMONS; i++) {
			if (g_daemon_pid[i] <= 0)
				continue;
			if (waitpid(g_daemon_pid[i], NULL, WNOHANG) != 0)
				g_daemon_pid[i] = 0;
			else
				left = true;
		}
		if (!left)
			break;
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < MAX_DAEMONS; i++) {
		if (g_daemon_pid[i] > 0) {
			kill(g_daemon_pid[i], SIGKILL);
			waitpid(g_daemon_pid[i], NULL, 0);
			g_daemon_pid[i] = 0;
		}
	}
	if (g_tmp[0]) {
		pid_t p = fork();
		if (p == 0) {
			execl("/bin/rm", "rm", "-rf", g_tmp, (char *)NULL);
			_exit(127);
		}
		if (p > 0)
			waitpid(p, NULL, 0);
		g_tmp[0] = '\0';
	}
}

static void on_fatal_signal(int sig)
{
	static const char msg[] = "\nbench: interrupted; stopping daemons and "
				  "kernels\n";

	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing to do */
	}
	cleanup_all();
	_exit(128 + sig);
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("bench: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1); /* atexit: cleanup_all */
}

static void track_pid(pid_t *tab, int n, pid_t pid, bool add)
{
	for (int i = 0; i < n; i++) {
		if (add ? tab[i] == 0 : tab[i] == pid) {
			tab[i] = add ? pid : 0;
			return;
		}
	}
	if (add)
		die("too many child processes");
}

/* ------------------------------------------------------- the HTTP client */

struct target {
	const char *name;
	struct sockaddr_storage addr;
	socklen_t alen;
	char host[300]; /* Host header */
};

enum hc_phase { PH_IDLE, PH_SEND, PH_HEAD, PH_BODY, PH_DONE, PH_ERR };

struct hc {
	const struct target *tg;
	int fd;
	bool connecting;
	bool no_reconnect; /* a dead connection is an error, not retried */
	bool must_close;
	enum hc_phase ph;
	char *out;
	size_t outlen, outoff, outcap;
	char *in;
	size_t inlen, incap;
	bool got_bytes, retried;
	bool notify; /* finished: on_done is due (run by hc_run) */
	/* response */
	int status;
	long long clen, got;
	bool chunked, eof_body;
	long long chunk_left; /* >0 data, -1 size line, -2 CRLF, -3 trailers */
	char *body;
	size_t blen, bcap;
	bool stream; /* NDJSON: lines scanned and dropped as they come */
	size_t stdout_bytes;
	bool saw_end, saw_two, saw_error;
	uint64_t t0, t_end, t_done;
	/* completion hook (parallel rows) */
	void (*on_done)(struct hc *h);
	void *user;
	int todo, ndone;
};

static void hc_init(struct hc *h, const struct target *tg)
{
	memset(h, 0, sizeof(*h));
	h->tg = tg;
	h->fd = -1;
}

static void hc_close(struct hc *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	h->connecting = false;
}

static void hc_free(struct hc *h)
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

/* Starts a request; the answer arrives through hc_run. */
static void hc_request(struct hc *h, const char *method, const char *path,
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

/* Parses what is in h->in; consumes it. */
static void hc_parse(struct hc *h)
{
	size_t pos = 0;

	if (h->ph == PH_HEAD) {
		char *e = memmem(h->in, h->inlen, "\r\n\r\n", 4);
		if (!e) {
			if (h->inlen > 65536)
				hc_finish(h, PH_ERR);
			return;
		}
		hc_head(h, h->in, (size_t)(e - h->in));
		pos = (size_t)(e - h->in) + 4;
		if (h->status < 100) {
			hc_finish(h, PH_ERR);
			return;
		}
		h->ph = PH_BODY;
		if (h->status == 204 || h->status == 304 ||
		    (!h->chunked && h->clen == 0)) {
			h->inlen = 0;
			hc_finish(h, PH_DONE);
			return;
		}
		if (!h->chunked && h->clen < 0) {
			h->eof_body = true;
			h->must_close = true;
		}
	}
	while (h->ph == PH_BODY && pos < h->inlen) {
		char *p = h->in + pos, *e;
		size_t avail = h->inlen - pos;

		if (!h->chunked) {
			size_t take = avail;
			if (h->clen >= 0 && (long long)take > h->clen - h->got)
				take = (size_t)(h->clen - h->got);
			hc_body(h, p, take);
			h->got += (long long)take;
			pos += take;
			if (h->clen >= 0 && h->got == h->clen) {
				hc_finish(h, PH_DONE);
				break;
			}
			continue;
		}
		if (h->chunk_left > 0) {
			size_t take = avail < (size_t)h->chunk_left
					  ? avail
					  : (size_t)h->chunk_left;
			hc_body(h, p, take);
			pos += take;
			h->chunk_left -= (long long)take;
			if (h->chunk_left == 0)
				h->chunk_left = -2;
			continue;
		}
		if (h->chunk_left == -2) {
			if (avail < 2)
				break;
			pos += 2;
			h->chunk_left = -1;
			continue;
		}
		e = memmem(p, avail, "\r\n", 2);
		if (!e)
			break;
		pos += (size_t)(e - p) + 2;
		if (h->chunk_left == -1) {
			long long sz = strtoll(p, NULL, 16);
			h->chunk_left = sz > 0 ? sz : -3;
		} else if (e == p) { /* -3: the empty line after trailers */
			hc_finish(h, PH_DONE);
		}
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

/* Runs the given connections until until(arg) or timeout_ms. Returns 0, or
 * -1 on timeout or when nothing is in flight any more. */
static int hc_run(struct hc **hs, size_t n, bool (*until)(void *), void *arg,
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

/* One request, waited for. Returns the status, or -1 (error, timeout). */
static int hc_do(struct hc *h, const char *method, const char *path,
		 const char *body, bool stream, long timeout_ms)
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

static int target_parse(struct target *t, const char *name, const char *url)
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

/* --------------------------------------------------------------- daemons */

struct daemon {
	const char *tag;
	pid_t pid;
	int port;
	struct target tg;
	char log[256];
	off_t log_off;
	int n_starting, n_ready;
	double last_ready_ms; /* the daemon's own "kernel ... ready in N ms" */
	uint64_t t_spawn;
};

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &l) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Counts kernel start and ready lines in the daemon's log so far. */
static void daemon_scan_log(struct daemon *d)
{
	char buf[65536];
	int fd = open(d->log, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	while ((n = pread(fd, buf, sizeof(buf) - 1, d->log_off)) > 0) {
		char *line = buf, *nl;

		buf[n] = '\0';
		while ((nl = memchr(line, '\n', (size_t)(buf + n - line)))) {
			char *r;

			*nl = '\0';
			if (strstr(line, " kernel ") &&
			    strstr(line, " starting in "))
				d->n_starting++;
			if (strstr(line, " kernel ") &&
			    (r = strstr(line, ") ready in "))) {
				d->n_ready++;
				d->last_ready_ms = atof(r + 11);
			}
			line = nl + 1;
		}
		if (line == buf) /* one line longer than buf: skip it */
			line = buf + n;
		d->log_off += line - buf;
	}
	close(fd);
}

static void daemon_log_tail(const struct daemon *d)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "tail -n 15 '%s' >&2", d->log);
	if (system(cmd) < 0)
		say("cannot show %s", d->log);
}

static bool daemon_alive(struct daemon *d)
{
	int st;

	if (d->pid <= 0)
		return false;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		track_pid(g_daemon_pid, MAX_DAEMONS, d->pid, false);
		say("daemon %s (pid %d) exited unexpectedly (status %d)",
		    d->tag, (int)d->pid, st);
		daemon_log_tail(d);
		d->pid = 0;
		return false;
	}
	return true;
}

static void daemon_spawn(struct daemon *d, const char *bin, const char *tag,
			 const char *pool)
{
	char port[16], rt[200], cwd[200], poolopt[64];
	int fd;
	pid_t parent = getpid();

	memset(d, 0, sizeof(*d));
	d->tag = tag;
	d->port = free_port();
	if (d->port <= 0)
		die("no free loopback port");
	snprintf(port, sizeof(port), "%d", d->port);
	snprintf(rt, sizeof(rt), "%s/rt-%s", g_tmp, tag);
	snprintf(cwd, sizeof(cwd), "%s/cwd", g_tmp);
	snprintf(poolopt, sizeof(poolopt), "%s", pool);
	snprintf(d->log, sizeof(d->log), "%s/daemon-%s.log", g_tmp, tag);
	{
		char url[64];
		snprintf(url, sizeof(url), "http://127.0.0.1:%d", d->port);
		if (target_parse(&d->tg, "e2b-ci", url) < 0)
			die("bad daemon address");
	}
	fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		die("cannot create %s: %s", d->log, strerror(errno));
	{
		struct stat st;
		d->log_off = fstat(fd, &st) == 0 ? st.st_size : 0;
	}
	d->t_spawn = now_ns();
	d->pid = fork();
	if (d->pid < 0)
		die("fork: %s", strerror(errno));
	if (d->pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		alarm(0);
		setpgid(0, 0); /* Ctrl-C reaches us; we stop it in order */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(bin, bin, "--listen", "127.0.0.1", "--port", port,
		      "--cwd", cwd, "--runtime-dir", rt, "--default-languages",
		      "python", "--pool", poolopt, "--envd-url",
		      "http://127.0.0.1:1", "--log-level", "info",
		      (char *)NULL);
		_exit(127);
	}
	close(fd);
	track_pid(g_daemon_pid, MAX_DAEMONS, d->pid, true);
}

/* Polls /health until 200; returns spawn -> first 200 in ms. */
static double daemon_wait_healthy(struct daemon *d)
{
	struct hc h;
	uint64_t deadline = d->t_spawn + (uint64_t)START_TIMEOUT_MS * 1000000u;
	double ms = -1;

	hc_init(&h, &d->tg);
	while (now_ns() < deadline) {
		int st = hc_do(&h, "GET", "/health", NULL, false, 1000);
		if (st == 200) {
			ms = ns_ms(h.t_done - d->t_spawn);
			break;
		}
		if (!daemon_alive(d))
			die("daemon %s died during start", d->tag);
		sleep_ms(st < 0 ? 2 : 1);
	}
	hc_free(&h);
	if (ms < 0) {
		daemon_log_tail(d);
		die("daemon %s not healthy within %d ms", d->tag,
		    START_TIMEOUT_MS);
	}
	return ms;
}

/* Waits until every kernel the daemon started has answered (the pool is
 * full again). Returns 0, or -1 after timeout_ms. */
static int daemon_wait_quiet(struct daemon *d, long timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (now_ns() < deadline) {
		daemon_scan_log(d);
		if (d->n_starting > 0 && d->n_ready >= d->n_starting)
			return 0;
		if (!daemon_alive(d))
			die("daemon %s died", d->tag);
		sleep_ms(5);
	}
	say("daemon %s: kernels still starting after %ld ms (%d started, "
	    "%d ready)",
	    d->tag, timeout_ms, d->n_starting, d->n_ready);
	return -1;
}

static void daemon_stop(struct daemon *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGTERM);
	for (int i = 0; i < 1000; i++) { /* 10 s */
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid)
			goto done;
		sleep_ms(10);
	}
	say("daemon %s did not stop within 10 s; killing it", d->tag);
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
done:
	track_pid(g_daemon_pid, MAX_DAEMONS, d->pid, false);
	d->pid = 0;
}

/* Memory of the daemon process only (not its kernels), in MiB. */
struct mem {
	double rss, anon, file, hwm; /* VmRSS, RssAnon, RssFile, VmHWM */
};

static struct mem mem_of(pid_t pid)
{
	struct mem m = {NAN, NAN, NAN, NAN};
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return m;
	while (fgets(line, sizeof(line), f)) {
		double v = atof(line + strcspn(line, ":") + 1) / 1024.0;
		if (strncmp(line, "VmRSS:", 6) == 0)
			m.rss = v;
		else if (strncmp(line, "RssAnon:", 8) == 0)
			m.anon = v;
		else if (strncmp(line, "RssFile:", 8) == 0)
			m.file = v;
		else if (strncmp(line, "VmHWM:", 6) == 0)
			m.hwm = v;
	}
	fclose(f);
	return m;
}

/* RSS of tests/bench/libfloor.c (the daemon's libraries, initialised and
 * idle): started, read once it says "ready", killed. */
static struct mem libfloor_mem(const char *path)
{
	struct mem m = {NAN, NAN, NAN, NAN};
	char line[64] = "";
	int fd[2];
	pid_t pid;
	FILE *f;

	if (!path || pipe(fd) < 0)
		return m;
	pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		return m;
	}
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	f = fdopen(fd[0], "r");
	if (f && fgets(line, sizeof(line), f) &&
	    strncmp(line, "ready", 5) == 0) {
		sleep_ms(300);
		m = mem_of(pid);
	} else {
		say("libfloor %s did not start", path);
	}
	if (f)
		fclose(f);
	else
		close(fd[0]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return m;
}

static json_t *mem_json(const struct mem *m)
{
	return json_pack(
	    "{s:o,s:o,s:o,s:o}", "VmRSS_MiB",
	    isnan(m->rss) ? json_null() : json_real(m->rss), "RssAnon_MiB",
	    isnan(m->anon) ? json_null() : json_real(m->anon), "RssFile_MiB",
	    isnan(m->file) ? json_null() : json_real(m->file), "VmHWM_MiB",
	    isnan(m->hwm) ? json_null() : json_real(m->hwm));
}

/* ------------------------------------------------- the direct ZMQ floor */

static void *g_zmq;
static struct loop *g_loop;
static struct kernel_env g_kenv;
static char **g_kpath;
static struct kspec *g_spec;
static char g_cwd[200];

struct fk {
	struct kernel *k;
	bool ready, exited;
	uint64_t t_spawn, t_ready;
	char msg_id[37];
	bool busy, got_reply, got_idle, ok, two;
	uint64_t t_send, t_done;
	size_t stream_bytes;
	const char *code;
	int todo, ndone;
};

static void fk_send(struct fk *f, const char *code)
{
	json_t *c =
	    json_pack("{s:s,s:b,s:b,s:{},s:b,s:b}", "code", code, "silent", 0,
		      "store_history", 1, "user_expressions", "allow_stdin", 0,
		      "stop_on_error", 1);

	f->code = code;
	f->got_reply = f->got_idle = f->ok = f->two = false;
	f->stream_bytes = 0;
	f->busy = true;
	f->t_send = now_ns();
	if (!c || kernel_send(f->k, KERNEL_SHELL, "execute_request", c,
			      f->msg_id) < 0)
		die("floor: cannot send execute_request");
	json_decref(c);
}

static void fk_on_ready(void *arg, struct kernel *k)
{
	struct fk *f = arg;

	(void)k;
	f->ready = true;
	f->t_ready = now_ns();
}

static void fk_on_msg(void *arg, struct kernel *k, enum kernel_chan ch,
		      struct wire_msg *m)
{
	struct fk *f = arg;

	(void)k;
	if (!f->busy || !m->parent_msg_id ||
	    strcmp(m->parent_msg_id, f->msg_id) != 0)
		return;
	if (ch == KERNEL_SHELL && strcmp(m->msg_type, "execute_reply") == 0) {
		const char *st =
		    json_string_value(json_object_get(m->content, "status"));
		f->got_reply = true;
		f->ok = st && strcmp(st, "ok") == 0;
	} else if (ch == KERNEL_IOPUB) {
		/* Output arrives unparsed (wire_decode_lazy): the floor parses
		 * every message, as a plain Jupyter client does. */
		if (wire_msg_parse_content(m) < 0)
			return;
		if (strcmp(m->msg_type, "status") == 0) {
			const char *st = json_string_value(
			    json_object_get(m->content, "execution_state"));
			if (st && strcmp(st, "idle") == 0)
				f->got_idle = true;
		} else if (strcmp(m->msg_type, "stream") == 0) {
			const char *t = json_string_value(
			    json_object_get(m->content, "text"));
			f->stream_bytes += t ? strlen(t) : 0;
		} else if (strcmp(m->msg_type, "execute_result") == 0) {
			const char *t = json_string_value(json_object_get(
			    json_object_get(m->content, "data"), "text/plain"));
			f->two = t && strcmp(t, "2") == 0;
		}
	}
	if (f->got_reply && f->got_idle) {
		f->busy = false;
		f->t_done = now_ns();
		f->ndone++;
		if (f->todo > 0) {
			f->todo--;
			fk_send(f, f->code);
		}
	}
}

static void fk_on_exit(void *arg, struct kernel *k, int status, bool was_ready)
{
	struct fk *f = arg;

	(void)k;
	(void)was_ready;
	f->exited = true;
	say("floor kernel exited (status %d)", status);
}

static const struct kernel_ops fk_ops = {fk_on_ready, fk_on_msg, fk_on_exit};

static int floor_run(bool (*until)(void *), void *arg, long timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (!until(arg)) {
		if (now_ns() >= deadline)
			return -1;
		if (loop_run_once(g_loop, 50) < 0)
			die("floor: event loop failed");
	}
	return 0;
}

static bool fk_is_ready(void *arg)
{
	const struct fk *f = arg;

	if (f->exited)
		die("floor kernel died while starting");
	return f->ready;
}

static bool fk_is_idle(void *arg)
{
	const struct fk *f = arg;

	if (f->exited)
		die("floor kernel died");
	return !f->busy;
}

static void floor_init(void)
{
	char rt[200];

	snprintf(rt, sizeof(rt), "%s/rt-floor", g_tmp);
	snprintf(g_cwd, sizeof(g_cwd), "%s/cwd", g_tmp);
	if (mkdir(rt, 0700) < 0 || mkdir(g_cwd, 0755) < 0)
		die("mkdir in %s: %s", g_tmp, strerror(errno));
	g_zmq = zmq_ctx_new();
	g_loop = loop_new();
	/* The daemon's default --kernel-path is E2BCI_KERNELS_DIR too, and it
	 * finds "python" with the same kspec_find. */
	g_kpath = kspec_search_path(E2BCI_KERNELS_DIR);
	if (!g_zmq || !g_loop || !g_kpath)
		die("floor: out of memory");
	g_spec = kspec_find(g_kpath, "python");
	if (!g_spec)
		die("no python kernelspec found");
	g_kenv = (struct kernel_env){strdup(rt), g_zmq, g_loop,
				     START_TIMEOUT_MS, NULL, 0};
}

/* Starts a floor kernel; returns spawn -> handshake done in ms. */
static double fk_start(struct fk *f)
{
	char err[256];

	memset(f, 0, sizeof(*f));
	f->t_spawn = now_ns();
	f->k =
	    kernel_start(&g_kenv, g_spec, g_cwd, &fk_ops, f, err, sizeof(err));
	if (!f->k)
		die("floor: %s", err);
	track_pid(g_kernel_pid, MAX_FLOOR, kernel_pid(f->k), true);
	if (floor_run(fk_is_ready, f, START_TIMEOUT_MS + 1000) < 0)
		die("floor kernel did not become ready");
	return ns_ms(f->t_ready - f->t_spawn);
}

static void fk_free(struct fk *f)
{
	if (!f->k)
		return;
	track_pid(g_kernel_pid, MAX_FLOOR, kernel_pid(f->k), false);
	kernel_free(f->k);
	f->k = NULL;
}

/* One execution on the floor; returns ms from send to reply+idle. */
static double fk_exec(struct fk *f, const char *code)
{
	f->todo = 0;
	fk_send(f, code);
	if (floor_run(fk_is_idle, f, REQ_TIMEOUT_MS) < 0)
		die("floor: execution timed out");
	if (!f->ok)
		die("floor: execution failed");
	return ns_ms(f->t_done - f->t_send);
}

/* ------------------------------------------------ kernels per language */

/* Every language the daemon serves (README.md, "Languages"). */
static const char *const KLANGS[] = {"python", "javascript", "typescript",
				     "r",      "bash",	     "java"};
#define NKLANG		  (sizeof(KLANGS) / sizeof(*KLANGS))
#define KIDLE_MS	  2000	/* idle RSS is read this long after ready */
#define KSTART_TIMEOUT_MS 30000 /* one start of one language */

struct klang {
	const char *language;
	char spec[64];	  /* kernelspec name; "" when not installed */
	char status[160]; /* "ok", "not installed", "failed: ..." */
	struct samples start;
	double rss_mib; /* kernel pid + descendants, sum of VmRSS */
	int nprocs;
};

/* The daemon's server_spec(): the same search path and kspec_find, and
 * TypeScript on the JavaScript kernel only if no spec of its own. */
static struct kspec *klang_spec(const char *language)
{
	struct kspec *k = kspec_find(g_kpath, language);

	if (!k && strcmp(language, "typescript") == 0)
		k = kspec_find(g_kpath, "javascript");
	return k;
}

static bool fk_ready_or_exited(void *arg)
{
	const struct fk *f = arg;

	return f->ready || f->exited;
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

/* Starts a kernel for spec; returns spawn -> ready in ms, or -1 with a
 * reason in why (the kernel, if any, is freed then). */
static double fk_try_start(struct fk *f, const struct kspec *spec, char *why,
			   size_t len)
{
	char err[256];

	memset(f, 0, sizeof(*f));
	f->t_spawn = now_ns();
	f->k = kernel_start(&g_kenv, spec, g_cwd, &fk_ops, f, err, sizeof(err));
	if (!f->k) {
		snprintf(why, len, "failed: %.120s", err);
		return -1;
	}
	track_pid(g_kernel_pid, MAX_FLOOR, kernel_pid(f->k), true);
	if (floor_run(fk_ready_or_exited, f, KSTART_TIMEOUT_MS) < 0 ||
	    !f->ready) {
		snprintf(why, len, "failed: %s",
			 f->exited ? "exited while starting"
				   : "not ready within 30 s");
		fk_free(f);
		return -1;
	}
	return ns_ms(f->t_ready - f->t_spawn);
}

/* Sum of VmRSS (MiB) over pid and all its descendants (by ppid, one
 * snapshot of /proc); the number of processes goes to nprocs. */
static double tree_rss(pid_t root, int *nprocs)
{
	struct pp {
		pid_t pid, ppid;
	} *v = NULL;
	size_t n = 0, cap = 0;
	pid_t *tree;
	size_t nt = 0;
	double sum = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;

	*nprocs = 0;
	if (!d)
		return NAN;
	while ((e = readdir(d))) {
		char path[300], buf[512], *rp;
		int fd;
		ssize_t r;
		int ppid;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = '\0';
		rp = strrchr(buf, ')'); /* comm may hold spaces and parens */
		if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = (struct pp){(pid_t)atoi(e->d_name), (pid_t)ppid};
	}
	closedir(d);
	tree = xrealloc(NULL, (n + 1) * sizeof(*tree));
	tree[nt++] = root;
	for (size_t i = 0; i < nt; i++) /* breadth first */
		for (size_t j = 0; j < n; j++)
			if (v[j].ppid == tree[i] && v[j].pid != root)
				tree[nt++] = v[j].pid;
	for (size_t i = 0; i < nt; i++) {
		struct mem m = mem_of(tree[i]);
		if (isnan(m.rss))
			continue; /* gone meanwhile */
		sum += m.rss;
		(*nprocs)++;
	}
	free(tree);
	free(v);
	return *nprocs ? sum : NAN;
}

/* n starts of each language's kernel, one at a time (plus one uncounted
 * start that warms the page cache); the idle RSS of the tree of the last
 * one, KIDLE_MS after it was ready. */
static void bench_kernels(struct klang *kl, int n)
{
	for (size_t i = 0; i < NKLANG; i++) {
		struct klang *L = &kl[i];
		struct kspec *spec = klang_spec(KLANGS[i]);
		struct fk f;

		L->language = KLANGS[i];
		L->rss_mib = NAN;
		if (!spec) {
			snprintf(L->status, sizeof(L->status), "not installed");
			say("kernel %s: not installed", L->language);
			continue;
		}
		snprintf(L->spec, sizeof(L->spec), "%s", spec->name);
		snprintf(L->status, sizeof(L->status), "ok");
		for (int s = -1; s < n; s++) {
			double ms = fk_try_start(&f, spec, L->status,
						 sizeof(L->status));
			if (ms < 0)
				break;
			if (s >= 0)
				sm_add(&L->start, ms);
			if (s + 1 == n) {
				floor_run(never, NULL, KIDLE_MS);
				if (f.exited)
					snprintf(L->status, sizeof(L->status),
						 "failed: exited when idle");
				else
					L->rss_mib = tree_rss(kernel_pid(f.k),
							      &L->nprocs);
			}
			fk_free(&f);
		}
		say("kernel %s (%s): start p50 %.0f ms, idle RSS %.1f MiB in "
		    "%d processes%s%s",
		    L->language, L->spec, sm_pct(&L->start, 0.5), L->rss_mib,
		    L->nprocs, strcmp(L->status, "ok") ? "; " : "",
		    strcmp(L->status, "ok") ? L->status : "");
		kspec_free(spec);
	}
}

/* ------------------------------------------------------ HTTP operations */

static char *exec_body(const char *code, const char *ctx_id)
{
	json_t *o = json_pack("{s:s}", "code", code);
	char *s;

	if (ctx_id)
		json_object_set_new(o, "context_id", json_string(ctx_id));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		die("out of memory");
	return s;
}

/* One /execute; returns ms to end_of_execution, or -1. */
static double http_exec(struct hc *h, const char *body, bool want_two)
{
	int st = hc_do(h, "POST", "/execute", body, true, REQ_TIMEOUT_MS);

	if (st != 200 || !h->saw_end || h->saw_error ||
	    (want_two && !h->saw_two)) {
		say("%s: /execute failed (status %d, end %d, result 2 %d)",
		    h->tg->name, st, h->saw_end, h->saw_two);
		return -1;
	}
	return ns_ms(h->t_end - h->t0);
}

/* POST /contexts; the new id goes to id (64 bytes). Returns ms or -1. */
static double http_ctx_create(struct hc *h, char *id)
{
	int st = hc_do(h, "POST", "/contexts", "{\"language\":\"python\"}",
		       false, START_TIMEOUT_MS);
	json_t *j = NULL;
	const char *s;

	if (st == 200)
		j = json_loadb(h->body, h->blen, 0, NULL);
	s = json_string_value(json_object_get(j, "id"));
	if (!s || strlen(s) >= 64) {
		say("%s: POST /contexts failed (status %d): %.200s",
		    h->tg->name, st, h->body ? h->body : "");
		json_decref(j);
		return -1;
	}
	snprintf(id, 64, "%s", s);
	json_decref(j);
	return ns_ms(h->t_done - h->t0);
}

static void http_ctx_delete(struct hc *h, const char *id)
{
	char path[128];
	int st;

	snprintf(path, sizeof(path), "/contexts/%s", id);
	st = hc_do(h, "DELETE", path, NULL, false, REQ_TIMEOUT_MS);
	if (st != 200 && st != 204)
		say("%s: DELETE %s: status %d", h->tg->name, path, st);
}

static double http_ctx_restart(struct hc *h, const char *id)
{
	char path[128];
	int st;

	snprintf(path, sizeof(path), "/contexts/%s/restart", id);
	st = hc_do(h, "POST", path, NULL, false, START_TIMEOUT_MS);
	if (st != 200) {
		say("%s: POST %s: status %d", h->tg->name, path, st);
		return -1;
	}
	return ns_ms(h->t_done - h->t0);
}

/* --------------------------------------------------------------- results */

struct opts {
	const char *daemon, *out, *copy, *md, *against, *lib_floor;
	int n_exec, n_health, n_ctx, n_restart, n_tput, n_par_rounds,
	    n_par_each, n_conns, n_conn_health, n_starts, n_kstarts;
	bool quick;
};

struct row {
	const char *id, *label, *unit;
	double value, floor, target, ratio, against;
	const char *rule; /* human text of the target */
	int met;	  /* 1, 0, -1: no target */
};

#define MAX_ROWS 28
static struct row g_rows[MAX_ROWS];
static size_t g_nrows;

static struct row *row_add(const char *id, const char *label, const char *unit,
			   double value)
{
	struct row *r;

	if (g_nrows == MAX_ROWS)
		die("too many rows");
	r = &g_rows[g_nrows++];
	*r = (struct row){id, label, unit, value, NAN, NAN, NAN, NAN, "", -1};
	return r;
}

static void fmt_num(char *buf, size_t len, double v)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else if (fabs(v) >= 100)
		snprintf(buf, len, "%.0f", v);
	else if (fabs(v) >= 10)
		snprintf(buf, len, "%.1f", v);
	else if (fabs(v) >= 1)
		snprintf(buf, len, "%.2f", v);
	else
		snprintf(buf, len, "%.3f", v);
}

#define CELL 160
static void row_cells(const struct row *r, char *val, char *flo, char *rat,
		      char *met, char *ag, size_t len)
{
	char f[32];

	fmt_num(f, sizeof(f), r->value);
	snprintf(val, len, "%s%s%s", f, *r->unit ? " " : "", r->unit);
	if (!isnan(r->floor)) {
		fmt_num(f, sizeof(f), r->floor);
		snprintf(flo, len, "floor %s%s%s", f, *r->rule ? "; " : "",
			 r->rule);
	} else {
		snprintf(flo, len, "%s", *r->rule ? r->rule : "-");
	}
	if (isnan(r->ratio))
		snprintf(rat, len, "-");
	else
		snprintf(rat, len, "%.2fx", r->ratio);
	snprintf(met, len, "%s", r->met < 0 ? "-" : r->met ? "yes" : "NO");
	fmt_num(f, sizeof(f), r->against);
	snprintf(ag, len, "%s", f);
}

static void print_table(FILE *f, bool against, bool markdown)
{
	char val[CELL], flo[CELL], rat[CELL], met[CELL], ag[CELL];

	if (markdown) {
		fprintf(f,
			"| row | e2b-ci | floor / target | ratio | met |%s\n",
			against ? " against |" : "");
		fprintf(f, "|---|---|---|---|---|%s\n", against ? "---|" : "");
	} else {
		fprintf(f, "%-34s %14s  %-34s %7s %4s%s\n", "row", "e2b-ci",
			"floor / target", "ratio", "met",
			against ? "      against" : "");
	}
	for (size_t i = 0; i < g_nrows; i++) {
		const struct row *r = &g_rows[i];
		row_cells(r, val, flo, rat, met, ag, CELL);
		if (markdown)
			fprintf(f, "| %s | %s | %s | %s | %s |%s%s%s\n",
				r->label, val, flo, rat, met,
				against ? " " : "", against ? ag : "",
				against ? " |" : "");
		else
			fprintf(f, "%-34s %14s  %-34s %7s %4s%*s\n", r->label,
				val, flo, rat, met, against ? 13 : 0,
				against ? ag : "");
	}
}

static json_t *num(double v)
{
	return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

/* The "Kernels" table: one row per language. */
static void print_kernels(FILE *f, struct klang *kl, int n, bool markdown)
{
	if (markdown) {
		fprintf(f,
			"\n### Kernels\n\nStart: spawn -> kernel_info "
			"ready through the floor client, p50 of %d (one "
			"more uncounted start warms the page cache). Idle "
			"RSS: the kernel and all its descendants, sum of "
			"VmRSS, %d s after ready.\n\n",
			n, KIDLE_MS / 1000);
		fprintf(f, "| language | kernelspec | start p50 | start min "
			   "/ max | idle RSS | processes |\n"
			   "|---|---|---|---|---|---|\n");
	} else {
		fprintf(f,
			"\nKernels (start: spawn -> ready, p50 of %d; idle "
			"RSS: kernel + descendants, %d s after ready)\n\n",
			n, KIDLE_MS / 1000);
		fprintf(f, "%-11s %-12s %11s %17s %11s %6s  %s\n", "language",
			"kernelspec", "start p50", "start min / max",
			"idle RSS", "procs", "status");
	}
	for (size_t i = 0; i < NKLANG; i++) {
		struct klang *L = &kl[i];
		char p50[48] = "-", mm[80] = "-", rss[48] = "-", np[16] = "-";
		char a[32], b[32];

		if (L->start.n) {
			fmt_num(a, sizeof(a), sm_pct(&L->start, 0.5));
			snprintf(p50, sizeof(p50), "%s ms", a);
			fmt_num(a, sizeof(a), sm_pct(&L->start, 0));
			fmt_num(b, sizeof(b), sm_pct(&L->start, 1));
			snprintf(mm, sizeof(mm), "%s / %s ms", a, b);
		}
		if (!isnan(L->rss_mib)) {
			fmt_num(a, sizeof(a), L->rss_mib);
			snprintf(rss, sizeof(rss), "%s MiB", a);
			snprintf(np, sizeof(np), "%d", L->nprocs);
		}
		if (markdown && strcmp(L->status, "ok") != 0 && !L->start.n)
			fprintf(f, "| %s | %s | %s | - | - | - |\n",
				L->language, *L->spec ? L->spec : "-",
				L->status);
		else if (markdown)
			fprintf(f, "| %s | %s | %s | %s | %s | %s |\n",
				L->language, L->spec, p50, mm, rss, np);
		else
			fprintf(f, "%-11s %-12s %11s %17s %11s %6s  %s\n",
				L->language, *L->spec ? L->spec : "-", p50, mm,
				rss, np, L->status);
	}
}

static json_t *kernels_json(struct klang *kl)
{
	json_t *a = json_array();

	for (size_t i = 0; i < NKLANG; i++) {
		struct klang *L = &kl[i];
		json_array_append_new(
		    a, json_pack("{s:s,s:o,s:s,s:o,s:o,s:o,s:o}", "language",
				 L->language, "kernelspec",
				 *L->spec ? json_string(L->spec) : json_null(),
				 "status", L->status, "start_p50_ms",
				 num(sm_pct(&L->start, 0.5)), "start_ms",
				 sm_json(&L->start), "idle_rss_mib",
				 num(L->rss_mib), "idle_processes",
				 isnan(L->rss_mib) ? json_null()
						   : json_integer(L->nprocs)));
	}
	return a;
}

/* ------------------------------------------------------------ benchmarks */

struct results {
	struct mem lib_floor; /* tests/bench/libfloor.c, idle */
	struct samples k_start, d_start;
	struct samples d_kready; /* the daemon's own "ready in" log lines */
	struct samples health, e1, f1, tput_d, tput_f, par_d, par_f;
	struct samples ctx_warm, ctx_cold, rst_warm, rst_cold;
	struct samples conn_health;
	struct mem rss_idle, rss_after, rss_conns;
	struct mem rss_tput, rss_pre_conns; /* after throughput, before conns */
	int conns_held;
	/* against */
	struct samples a_health, a_e1, a_ctx, a_rst, a_par, a_conn_health;
	int a_conns_held;
	struct klang kl[NKLANG]; /* kernels per language */
};

static const char *const THROUGHPUT_CODE = "import sys\n"
					   "s = 'x' * 65535 + '\\n'\n"
					   "for _ in range(320):\n"
					   "    sys.stdout.write(s)\n"
					   "    sys.stdout.flush()\n";
#define THROUGHPUT_BYTES (320.0 * 65536.0)

static void bench_health(const struct target *tg, int n, struct samples *out)
{
	struct hc h;

	hc_init(&h, tg);
	for (int i = 0; i < n; i++) {
		int st =
		    hc_do(&h, "GET", "/health", NULL, false, REQ_TIMEOUT_MS);
		if (st != 200) {
			say("%s: /health status %d", tg->name, st);
			continue;
		}
		if (i >= 10) /* warm-up */
			sm_add(out, ns_ms(h.t_done - h.t0));
	}
	hc_free(&h);
}

/* 1+1: floor and daemon interleaved (when f is set). */
static void bench_one_plus_one(const struct target *tg, struct fk *f, int n,
			       struct samples *d_out, struct samples *f_out)
{
	char *body = exec_body("1+1", NULL);
	struct hc h;

	hc_init(&h, tg);
	for (int i = -10; i < n; i++) { /* 10 warm-up rounds */
		double d = -1, fl = -1;
		if (f && (i & 1) == 0)
			fl = fk_exec(f, "1+1");
		d = http_exec(&h, body, true);
		if (f && (i & 1) != 0)
			fl = fk_exec(f, "1+1");
		if (f && !f->two)
			die("floor: 1+1 did not give 2");
		if (i < 0)
			continue;
		if (d >= 0)
			sm_add(d_out, d);
		if (f)
			sm_add(f_out, fl);
	}
	hc_free(&h);
	free(body);
}

static void bench_throughput(const struct target *tg, struct fk *f, int n,
			     struct samples *d_out, struct samples *f_out)
{
	char *body = exec_body(THROUGHPUT_CODE, NULL);
	struct hc h;

	hc_init(&h, tg);
	for (int i = 0; i < n; i++) {
		for (int side = 0; side < 2; side++) {
			if ((side ^ (i & 1)) == 0) {
				double ms = fk_exec(f, THROUGHPUT_CODE);
				if (f->stream_bytes != (size_t)THROUGHPUT_BYTES)
					say("floor: got %zu stdout bytes",
					    f->stream_bytes);
				sm_add(f_out,
				       THROUGHPUT_BYTES / MIB / (ms / 1000.0));
			} else {
				double ms = http_exec(&h, body, false);
				if (ms < 0)
					continue;
				if (h.stdout_bytes < (size_t)THROUGHPUT_BYTES)
					say("e2b-ci: got only %zu bytes of "
					    "stdout lines",
					    h.stdout_bytes);
				sm_add(d_out,
				       THROUGHPUT_BYTES / MIB / (ms / 1000.0));
			}
		}
	}
	hc_free(&h);
	free(body);
}

/* Parallel: NPAR connections, each running n_each 1+1 in its context. */
struct par {
	struct hc h[NPAR];
	struct hc *hp[NPAR];
	char *body[NPAR];
	int failed;
};

static void par_next(struct hc *h)
{
	struct par *p = h->user;
	int i = (int)(h - p->h);

	if (h->ph != PH_DONE || h->status != 200 || !h->saw_end ||
	    !h->saw_two) {
		p->failed++;
		h->todo = 0;
		return;
	}
	h->ndone++;
	if (h->todo > 0) {
		h->todo--;
		hc_request(h, "POST", "/execute", p->body[i], true);
	}
}

static bool par_over(void *arg)
{
	struct par *p = arg;

	for (int i = 0; i < NPAR; i++)
		if (p->h[i].todo > 0 ||
		    (p->h[i].ph != PH_DONE && p->h[i].ph != PH_ERR))
			return false;
	return true;
}

static bool fk_all_idle(void *arg)
{
	struct fk *f = arg;

	for (int i = 0; i < NPAR; i++) {
		if (f[i].exited)
			die("floor kernel died");
		if (f[i].busy || f[i].todo > 0)
			return false;
	}
	return true;
}

/* Returns executes/s, or -1. */
static double par_http_round(struct par *p, int n_each)
{
	uint64_t t0 = now_ns(), t1 = 0;
	int total = 0;

	p->failed = 0;
	for (int i = 0; i < NPAR; i++) {
		p->h[i].todo = n_each - 1;
		p->h[i].ndone = 0;
		p->h[i].on_done = par_next;
		p->h[i].user = p;
		p->hp[i] = &p->h[i];
		hc_request(&p->h[i], "POST", "/execute", p->body[i], true);
	}
	if (hc_run(p->hp, NPAR, par_over, p, 120000) < 0 || p->failed) {
		say("%s: parallel round failed (%d failures)", p->h[0].tg->name,
		    p->failed);
		return -1;
	}
	for (int i = 0; i < NPAR; i++) {
		total += p->h[i].ndone;
		if (p->h[i].t_done > t1)
			t1 = p->h[i].t_done;
		p->h[i].on_done = NULL;
	}
	return total / ((double)(t1 - t0) / 1e9);
}

static double par_floor_round(struct fk *f, int n_each)
{
	uint64_t t0 = now_ns(), t1 = 0;

	for (int i = 0; i < NPAR; i++) {
		f[i].todo = n_each - 1;
		f[i].ndone = 0;
		fk_send(&f[i], "1+1");
	}
	if (floor_run(fk_all_idle, f, 120000) < 0)
		die("floor: parallel round timed out");
	for (int i = 0; i < NPAR; i++) {
		if (!f[i].ok || !f[i].two || f[i].ndone != n_each)
			die("floor: parallel execution failed");
		if (f[i].t_done > t1)
			t1 = f[i].t_done;
	}
	return NPAR * n_each / ((double)(t1 - t0) / 1e9);
}

static void bench_parallel(const struct target *tg, struct fk *f,
			   const struct opts *o, struct samples *d_out,
			   struct samples *f_out)
{
	struct par p;
	char ids[NPAR][64];
	struct hc ctl;
	int made = 0;

	memset(&p, 0, sizeof(p));
	hc_init(&ctl, tg);
	for (int i = 0; i < NPAR; i++) {
		hc_init(&p.h[i], tg);
		if (http_ctx_create(&ctl, ids[i]) < 0)
			goto out;
		made++;
		p.body[i] = exec_body("1+1", ids[i]);
	}
	/* Warm-up: the first execution of a context also asks envd. */
	if (par_http_round(&p, 3) < 0)
		goto out;
	if (f)
		par_floor_round(f, 3);
	for (int r = 0; r < o->n_par_rounds; r++) {
		for (int side = 0; side < 2; side++) {
			if ((side ^ (r & 1)) == 0) {
				if (f)
					sm_add(f_out, par_floor_round(
							  f, o->n_par_each));
			} else {
				double eps = par_http_round(&p, o->n_par_each);
				if (eps > 0)
					sm_add(d_out, eps);
			}
		}
	}
out:
	for (int i = 0; i < NPAR; i++) {
		hc_free(&p.h[i]);
		free(p.body[i]);
	}
	for (int i = 0; i < made; i++)
		http_ctx_delete(&ctl, ids[i]);
	hc_free(&ctl);
}

/* POST /contexts n times (each then deleted); with d set, waits for the
 * daemon's kernels (the pool) to be ready before each. */
static void bench_contexts(const struct target *tg, struct daemon *d, int n,
			   struct samples *out)
{
	struct hc h;
	char id[64];

	hc_init(&h, tg);
	for (int i = 0; i < n; i++) {
		double ms;
		if (d && daemon_wait_quiet(d, START_TIMEOUT_MS) < 0)
			say("%s: POST /contexts #%d may not find a warm kernel",
			    tg->name, i);
		ms = http_ctx_create(&h, id);
		if (ms < 0)
			break;
		sm_add(out, ms);
		http_ctx_delete(&h, id);
	}
	hc_free(&h);
}

static void bench_restart(const struct target *tg, struct daemon *d, int n,
			  struct samples *out)
{
	struct hc h;
	char id[64];

	hc_init(&h, tg);
	if (http_ctx_create(&h, id) < 0) {
		hc_free(&h);
		return;
	}
	for (int i = 0; i < n; i++) {
		double ms;
		if (d && daemon_wait_quiet(d, START_TIMEOUT_MS) < 0)
			say("%s: restart #%d may not find a warm kernel",
			    tg->name, i);
		ms = http_ctx_restart(&h, id);
		if (ms < 0)
			break;
		sm_add(out, ms);
	}
	http_ctx_delete(&h, id);
	hc_free(&h);
}

struct hc_set {
	struct hc **hs;
	size_t n;
};

static bool all_over(void *arg)
{
	const struct hc_set *set = arg;

	for (size_t i = 0; i < set->n; i++)
		if (set->hs[i]->ph != PH_DONE && set->hs[i]->ph != PH_ERR)
			return false;
	return true;
}

/* Requests GET /health on every connection at once; returns how many 200. */
static int conns_round(struct hc **hs, size_t n)
{
	size_t batch = 100, ok = 0;

	for (size_t i = 0; i < n; i += batch) {
		size_t m = n - i < batch ? n - i : batch;
		struct hc_set set = {hs + i, m};
		for (size_t j = 0; j < m; j++)
			hc_request(hs[i + j], "GET", "/health", NULL, false);
		if (hc_run(hs + i, m, all_over, &set, REQ_TIMEOUT_MS) < 0)
			say("connections: batch at %zu timed out", i);
	}
	for (size_t i = 0; i < n; i++)
		ok += hs[i]->ph == PH_DONE && hs[i]->status == 200 &&
		      hs[i]->fd >= 0;
	return (int)ok;
}

/* Holds n keep-alive connections (each answered one /health), measures
 * /health on one more, then checks they are all still served. */
static int bench_conns(const struct target *tg, pid_t pid, int n, int nh,
		       struct samples *health, struct mem *rss)
{
	struct hc *pool = calloc((size_t)n, sizeof(*pool));
	struct hc **hs = calloc((size_t)n, sizeof(*hs));
	int held;

	if (!pool || !hs)
		die("out of memory");
	for (int i = 0; i < n; i++) {
		hc_init(&pool[i], tg);
		hs[i] = &pool[i];
	}
	held = conns_round(hs, (size_t)n);
	if (held < n)
		say("%s: only %d of %d connections answered", tg->name, held,
		    n);
	bench_health(tg, nh + 10, health);
	if (pid > 0)
		*rss = mem_of(pid);
	for (int i = 0; i < n; i++)
		pool[i].no_reconnect = true;
	held = conns_round(hs, (size_t)n);
	for (int i = 0; i < n; i++)
		hc_free(&pool[i]);
	free(pool);
	free(hs);
	return held;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f, const char *argv0)
{
	fprintf(
	    f,
	    "Usage: %s --daemon PATH [--out FILE] [--copy FILE] [--md FILE]\n"
	    "          [--against URL] [--lib-floor PATH] [--quick]\n"
	    "Starts e2b-ci (loopback, a free port, temp dirs) and measures it\n"
	    "next to a direct-ZeroMQ floor client on the same kernelspec.\n"
	    "  --daemon PATH   the e2b-ci binary\n"
	    "  --out FILE      JSON results (default bench-results.json)\n"
	    "  --copy FILE     a second copy of the JSON\n"
	    "  --md FILE       the table as markdown\n"
	    "  --against URL   also run the HTTP rows against another\n"
	    "                  E2B-compatible server (http://host:port)\n"
	    "  --lib-floor PATH  tests/bench/libfloor.c built: the RSS of\n"
	    "                  the daemon's libraries alone, for comparison\n"
	    "  --quick         few repetitions (a smoke test, not numbers)\n",
	    argv0);
}

static void parse_args(struct opts *o, int argc, char **argv)
{
	*o = (struct opts){.out = "bench-results.json",
			   .n_exec = 300,
			   .n_health = 1000,
			   .n_ctx = 20,
			   .n_restart = 10,
			   .n_tput = 9,
			   .n_par_rounds = 9,
			   .n_par_each = 50,
			   .n_conns = 1000,
			   .n_conn_health = 500,
			   .n_starts = 5,
			   .n_kstarts = 3};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout, argv[0]);
			exit(0);
		} else if (strcmp(a, "--quick") == 0) {
			o->quick = true;
		} else if (v && strcmp(a, "--daemon") == 0) {
			o->daemon = v, i++;
		} else if (v && strcmp(a, "--out") == 0) {
			o->out = v, i++;
		} else if (v && strcmp(a, "--copy") == 0) {
			o->copy = v, i++;
		} else if (v && strcmp(a, "--md") == 0) {
			o->md = v, i++;
		} else if (v && strcmp(a, "--against") == 0) {
			o->against = v, i++;
		} else if (v && strcmp(a, "--lib-floor") == 0) {
			o->lib_floor = v, i++;
		} else {
			usage(stderr, argv[0]);
			exit(2);
		}
	}
	if (!o->daemon) {
		usage(stderr, argv[0]);
		exit(2);
	}
	if (o->quick) {
		o->n_exec = 30;
		o->n_health = 100;
		o->n_ctx = 3;
		o->n_restart = 2;
		o->n_tput = 1;
		o->n_par_rounds = 1;
		o->n_par_each = 10;
		o->n_conns = 100;
		o->n_conn_health = 50;
		o->n_starts = 1;
		o->n_kstarts = 1;
	}
}

static void build_rows(struct results *R, bool against, int n_conns)
{
	struct row *r;
	double kstart = sm_pct(&R->k_start, 0.5);
	double e50 = sm_pct(&R->e1, 0.5), f50 = sm_pct(&R->f1, 0.5);

	r = row_add("health_p50", "GET /health p50", "ms",
		    sm_pct(&R->health, 0.5));
	r->against = sm_pct(&R->a_health, 0.5);
	r = row_add("health_p99", "GET /health p99", "ms",
		    sm_pct(&R->health, 0.99));
	r->against = sm_pct(&R->a_health, 0.99);

	r = row_add("exec_p50", "1+1 end-to-end p50", "ms", e50);
	r->floor = f50;
	r->ratio = e50 / f50;
	r->rule = "<= 1.15x";
	r->met = r->ratio <= 1.15;
	r->against = sm_pct(&R->a_e1, 0.5);
	r = row_add("exec_overhead_p50", "1+1 overhead p50 (e2b-ci - floor)",
		    "ms", e50 - f50);
	r->target = 0.5;
	r->rule = "< 0.5 ms";
	r->met = e50 - f50 < 0.5;
	r = row_add("exec_p99", "1+1 end-to-end p99", "ms",
		    sm_pct(&R->e1, 0.99));
	r->floor = sm_pct(&R->f1, 0.99);
	r->ratio = r->value / r->floor;
	r->against = sm_pct(&R->a_e1, 0.99);

	r = row_add("ctx_warm_p50", "POST /contexts p50, warm pool", "ms",
		    sm_pct(&R->ctx_warm, 0.5));
	r->target = 10;
	r->rule = "<= 10 ms";
	r->met = r->value <= 10;
	r->against = sm_pct(&R->a_ctx, 0.5);
	r = row_add("ctx_cold_p50", "POST /contexts p50, no pool", "ms",
		    sm_pct(&R->ctx_cold, 0.5));
	r->floor = kstart;
	r->ratio = r->value / kstart;
	r->rule = "kernel start";
	r = row_add("restart_warm_p50", "restart p50, warm pool", "ms",
		    sm_pct(&R->rst_warm, 0.5));
	r->target = 10;
	r->rule = "<= 10 ms";
	r->met = r->value <= 10;
	r->against = sm_pct(&R->a_rst, 0.5);
	r = row_add("restart_cold_p50", "restart p50, no pool", "ms",
		    sm_pct(&R->rst_cold, 0.5));
	r->floor = kstart;
	r->ratio = r->value / kstart;
	r->rule = "kernel start";

	r = row_add("start_healthy", "start -> healthy p50", "ms",
		    sm_pct(&R->d_start, 0.5));
	r->floor = kstart;
	r->target = kstart + 300;
	r->ratio = r->value / kstart;
	r->rule = "<= +300 ms";
	r->met = r->value <= kstart + 300;

	r = row_add("stdout_mibps", "stdout throughput, 20 MiB", "MiB/s",
		    sm_pct(&R->tput_d, 0.5));
	r->floor = sm_pct(&R->tput_f, 0.5);
	r->ratio = r->value / r->floor;
	r->rule = ">= 0.9x";
	r->met = r->ratio >= 0.9;
	r = row_add("parallel_eps", "4 contexts x 50 1+1 parallel", "exec/s",
		    sm_pct(&R->par_d, 0.5));
	r->floor = sm_pct(&R->par_f, 0.5);
	r->ratio = r->value / r->floor;
	r->rule = ">= 0.9x";
	r->met = r->ratio >= 0.9;
	r->against = sm_pct(&R->a_par, 0.5);

	r = row_add("rss_idle", "daemon RSS idle", "MiB", R->rss_idle.rss);
	r->target = 8;
	r->rule = "<= 8 MiB";
	r->met = r->value <= 8;
	if (!isnan(R->lib_floor.rss)) {
		r->floor = R->lib_floor.rss;
		r->ratio = r->value / r->floor;
		r->rule = "<= 8 MiB";
		row_add("rss_lib_floor", "  its libraries alone (libfloor)",
			"MiB", R->lib_floor.rss);
		row_add("rss_own", "  e2b-ci's own (idle - libraries)", "MiB",
			R->rss_idle.rss - R->lib_floor.rss);
	}
	r = row_add("rss_after", "daemon RSS after the run", "MiB",
		    R->rss_after.rss);
	r->target = 16;
	r->rule = "<= 16 MiB";
	r->met = r->value <= 16;
	row_add("rss_idle_anon", "  of it anonymous, idle", "MiB",
		R->rss_idle.anon);
	row_add("rss_after_anon", "  of it anonymous, after", "MiB",
		R->rss_after.anon);
	row_add("rss_peak", "daemon peak RSS (VmHWM)", "MiB", R->rss_after.hwm);

	r = row_add("conns_held", "keep-alive connections held", "",
		    R->conns_held);
	r->target = n_conns;
	r->rule = n_conns == 1000 ? "all 1000" : "all (QUICK: not 1000)";
	r->met = R->conns_held >= n_conns;
	r->against = against ? R->a_conns_held : NAN;
	r = row_add("conns_rss", "daemon RSS with them", "MiB",
		    R->rss_conns.rss);
	row_add("conns_rss_delta", "  growth from the connections", "MiB",
		R->rss_conns.rss - R->rss_pre_conns.rss);
	r = row_add("conns_health_p99", "GET /health p99 meanwhile", "ms",
		    sm_pct(&R->conn_health, 0.99));
	r->target = 5;
	r->rule = "<= 5 ms";
	r->met = r->value <= 5;
	r->against = sm_pct(&R->a_conn_health, 0.99);
}

static void write_outputs(const struct opts *o, struct results *R, int argc,
			  char **argv)
{
	json_t *root = json_object(), *rows = json_array(), *raw, *av;
	struct utsname u;
	char date[64], cmd[1024] = "";
	time_t t = time(NULL);
	FILE *f;

	for (int i = 0; i < argc; i++) {
		size_t l = strlen(cmd);
		snprintf(cmd + l, sizeof(cmd) - l, "%s%s", i ? " " : "",
			 argv[i]);
	}
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	uname(&u);
	for (size_t i = 0; i < g_nrows; i++) {
		const struct row *r = &g_rows[i];
		json_array_append_new(
		    rows,
		    json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:s,s:o,s:o}", "id",
			      r->id, "label", r->label, "unit", r->unit,
			      "value", num(r->value), "floor", num(r->floor),
			      "target", num(r->target), "ratio", num(r->ratio),
			      "rule", r->rule, "met",
			      r->met < 0 ? json_null() : json_boolean(r->met),
			      "against", num(r->against)));
	}
	raw = json_pack(
	    "{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,"
	    "s:o}",
	    "kernel_start_ms", sm_json(&R->k_start), "start_healthy_ms",
	    sm_json(&R->d_start), "daemon_logged_kernel_ready_ms",
	    sm_json(&R->d_kready), "health_ms", sm_json(&R->health), "exec_ms",
	    sm_json(&R->e1), "floor_exec_ms", sm_json(&R->f1), "stdout_mibps",
	    sm_json(&R->tput_d), "floor_stdout_mibps", sm_json(&R->tput_f),
	    "parallel_eps", sm_json(&R->par_d), "floor_parallel_eps",
	    sm_json(&R->par_f), "ctx_warm_ms", sm_json(&R->ctx_warm),
	    "ctx_cold_ms", sm_json(&R->ctx_cold), "restart_warm_ms",
	    sm_json(&R->rst_warm), "restart_cold_ms", sm_json(&R->rst_cold),
	    "conns_health_ms", sm_json(&R->conn_health));
	json_object_set_new(root, "generated", json_string(date));
	json_object_set_new(root, "command", json_string("make bench"));
	json_object_set_new(root, "argv", json_string(cmd));
	json_object_set_new(
	    root, "machine",
	    json_pack("{s:s,s:s,s:I}", "sysname", u.sysname, "release",
		      u.release, "cpus",
		      (json_int_t)sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_set_new(
	    root, "params",
	    json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,"
		      "s:b}",
		      "exec", o->n_exec, "health", o->n_health, "contexts",
		      o->n_ctx, "restarts", o->n_restart, "throughput_rounds",
		      o->n_tput, "parallel_rounds", o->n_par_rounds,
		      "parallel_each", o->n_par_each, "connections", o->n_conns,
		      "connection_health", o->n_conn_health, "starts",
		      o->n_starts, "kernel_starts", o->n_kstarts,
		      "kernel_idle_ms", KIDLE_MS, "quick", o->quick));
	json_object_set_new(root, "rows", rows);
	json_object_set_new(root, "kernels", kernels_json(R->kl));
	json_object_set_new(
	    raw, "memory",
	    json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "libraries_alone",
		      mem_json(&R->lib_floor), "idle", mem_json(&R->rss_idle),
		      "after_throughput", mem_json(&R->rss_tput),
		      "before_connections", mem_json(&R->rss_pre_conns),
		      "connections", mem_json(&R->rss_conns), "after",
		      mem_json(&R->rss_after)));
	json_object_set_new(root, "raw", raw);
	if (o->against) {
		av = json_pack(
		    "{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:i}", "url", o->against,
		    "health_ms", sm_json(&R->a_health), "exec_ms",
		    sm_json(&R->a_e1), "ctx_ms", sm_json(&R->a_ctx),
		    "restart_ms", sm_json(&R->a_rst), "parallel_eps",
		    sm_json(&R->a_par), "conns_health_ms",
		    sm_json(&R->a_conn_health), "conns_held", R->a_conns_held);
		json_object_set_new(root, "against", av);
	} else {
		json_object_set_new(root, "against", json_null());
	}
	if (json_dump_file(root, o->out,
			   JSON_INDENT(1) | JSON_REAL_PRECISION(6)) < 0)
		die("cannot write %s", o->out);
	say("wrote %s", o->out);
	if (o->copy) {
		if (json_dump_file(root, o->copy,
				   JSON_INDENT(1) | JSON_REAL_PRECISION(6)) < 0)
			die("cannot write %s", o->copy);
		say("wrote %s", o->copy);
	}
	if (o->md) {
		f = fopen(o->md, "we");
		if (!f)
			die("cannot write %s: %s", o->md, strerror(errno));
		fprintf(f,
			"<!-- generated by `make bench` (tests/bench/bench.c); "
			"do not edit -->\n"
			"Measured %s on %s %s, %ld CPUs, with `make bench%s%s`"
			" (%s).\n\n",
			date, u.sysname, u.release,
			sysconf(_SC_NPROCESSORS_ONLN),
			o->against ? " AGAINST=" : "",
			o->against ? o->against : "", cmd);
		print_table(f, o->against != NULL, true);
		print_kernels(f, R->kl, o->n_kstarts, true);
		fclose(f);
		say("wrote %s", o->md);
	}
	json_decref(root);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct results R;
	struct daemon A, B;
	struct fk fk[NFLOOR];
	struct target against;
	struct sigaction sa;
	struct rlimit rl;
	uint64_t t_begin = now_ns();

	parse_args(&o, argc, argv);
	memset(&R, 0, sizeof(R));
	memset(fk, 0, sizeof(fk));
	if (access(o.daemon, X_OK) < 0)
		die("%s: %s", o.daemon, strerror(errno));
	if (o.against && target_parse(&against, "against", o.against) < 0)
		die("--against: cannot resolve %s", o.against);

	/* Cleanup on every exit path. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(cleanup_all);
	alarm(BENCH_ALARM_S);
	/* 1000 connections here, as many in the daemon (which inherits it). */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	log_init(LOG_LVL_WARN, 0);
	snprintf(g_tmp, sizeof(g_tmp), "/tmp/e2bci-bench-XXXXXX");
	if (!mkdtemp(g_tmp))
		die("mkdtemp: %s", strerror(errno));
	floor_init();

	/* Kernel start (floor) and start -> healthy (daemon), interleaved;
	 * the first floor kernel warms the page cache and is not counted. */
	say("starts: floor kernel vs daemon, %d each", o.n_starts);
	fk_start(&fk[0]);
	for (int i = 0; i < o.n_starts; i++) {
		if (i + 1 < NFLOOR) {
			sm_add(&R.k_start, fk_start(&fk[i + 1]));
		} else {
			struct fk tmp;
			sm_add(&R.k_start, fk_start(&tmp));
			fk_free(&tmp);
		}
		daemon_spawn(&A, o.daemon, "a", "python=1");
		sm_add(&R.d_start, daemon_wait_healthy(&A));
		daemon_scan_log(&A);
		sm_add(&R.d_kready, A.last_ready_ms);
		if (i + 1 < o.n_starts)
			daemon_stop(&A);
	}
	for (int i = o.n_starts + 1; i < NFLOOR; i++)
		fk_start(&fk[i]);
	if (daemon_wait_quiet(&A, START_TIMEOUT_MS) < 0)
		die("daemon a: the pool did not fill");
	sleep_ms(300);
	R.rss_idle = mem_of(A.pid);
	say("daemon a: pid %d on port %d, RSS idle %.2f MiB", (int)A.pid,
	    A.port, R.rss_idle.rss);
	R.lib_floor = libfloor_mem(o.lib_floor);

	say("GET /health x %d", o.n_health);
	bench_health(&A.tg, o.n_health, &R.health);
	say("1+1 x %d, floor and e2b-ci interleaved", o.n_exec);
	bench_one_plus_one(&A.tg, &fk[0], o.n_exec, &R.e1, &R.f1);
	say("stdout throughput: 20 MiB x %d each", o.n_tput);
	bench_throughput(&A.tg, &fk[0], o.n_tput, &R.tput_d, &R.tput_f);
	R.rss_tput = mem_of(A.pid);
	say("parallel: %d contexts x %d 1+1, %d rounds each", NPAR,
	    o.n_par_each, o.n_par_rounds);
	bench_parallel(&A.tg, fk, &o, &R.par_d, &R.par_f);
	for (int i = 0; i < NFLOOR; i++)
		fk_free(&fk[i]);
	say("POST /contexts x %d, warm pool", o.n_ctx);
	bench_contexts(&A.tg, &A, o.n_ctx, &R.ctx_warm);
	say("restart x %d, warm pool", o.n_restart);
	bench_restart(&A.tg, &A, o.n_restart, &R.rst_warm);
	daemon_wait_quiet(&A, START_TIMEOUT_MS);
	R.rss_pre_conns = mem_of(A.pid);
	say("%d keep-alive connections + GET /health x %d", o.n_conns,
	    o.n_conn_health);
	R.conns_held = bench_conns(&A.tg, A.pid, o.n_conns, o.n_conn_health,
				   &R.conn_health, &R.rss_conns);
	/* The daemon hands freed heap back 2 s after traffic pauses. */
	sleep_ms(2600);
	R.rss_after = mem_of(A.pid);
	say("daemon a: RSS after %.2f MiB", R.rss_after.rss);
	daemon_stop(&A);

	say("daemon b (--pool python=0): POST /contexts x %d, restart x %d",
	    o.n_ctx, o.n_restart);
	daemon_spawn(&B, o.daemon, "b", "python=0");
	daemon_wait_healthy(&B);
	bench_contexts(&B.tg, NULL, o.n_ctx, &R.ctx_cold);
	bench_restart(&B.tg, NULL, o.n_restart, &R.rst_cold);
	daemon_stop(&B);

	say("kernels: %zu languages, %d starts each (+1 warm-up), idle RSS "
	    "%d s after ready",
	    NKLANG, o.n_kstarts, KIDLE_MS / 1000);
	bench_kernels(R.kl, o.n_kstarts);

	if (o.against) {
		say("against %s: the HTTP rows", o.against);
		bench_health(&against, o.n_health, &R.a_health);
		bench_one_plus_one(&against, NULL, o.n_exec, &R.a_e1, NULL);
		bench_parallel(&against, NULL, &o, &R.a_par, NULL);
		bench_contexts(&against, NULL, o.n_ctx, &R.a_ctx);
		bench_restart(&against, NULL, o.n_restart, &R.a_rst);
		R.a_conns_held =
		    bench_conns(&against, 0, o.n_conns, o.n_conn_health,
				&R.a_conn_health, NULL);
	}

	build_rows(&R, o.against != NULL, o.n_conns);
	printf("\ne2b-ci benchmark (%s; medians of interleaved samples; "
	       "%.0f s)\n\n",
	       o.quick ? "QUICK: too few samples to mean much" : "make bench",
	       (double)(now_ns() - t_begin) / 1e9);
	print_table(stdout, o.against != NULL, false);
	print_kernels(stdout, R.kl, o.n_kstarts, false);
	fflush(stdout);
	write_outputs(&o, &R, argc, argv);

	/* Orderly teardown (the atexit handler covers the rest). */
	kspec_free(g_spec);
	kspec_strv_free(g_kpath);
	loop_free(g_loop);
	zmq_ctx_term(g_zmq);
	free((char *)g_kenv.runtime_dir);
	nftw(g_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	g_tmp[0] = '\0';
	{
		struct samples *all[] = {
		    &R.k_start,	     &R.d_start,  &R.d_kready,	  &R.health,
		    &R.e1,	     &R.f1,	  &R.tput_d,	  &R.tput_f,
		    &R.par_d,	     &R.par_f,	  &R.ctx_warm,	  &R.ctx_cold,
		    &R.rst_warm,     &R.rst_cold, &R.conn_health, &R.a_health,
		    &R.a_e1,	     &R.a_ctx,	  &R.a_rst,	  &R.a_par,
		    &R.a_conn_health};
		for (size_t i = 0; i < sizeof(all) / sizeof(*all); i++)
			sm_free(all[i]);
		for (size_t i = 0; i < NKLANG; i++)
			sm_free(&R.kl[i].start);
	}
	return 0;
}
