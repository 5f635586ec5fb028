/*
 * api: the routes of docs/http-contract.md ("Routes") as a table, and
 * their handlers.
 *
 * Routes are data: method, path pattern ("{id}" matches one segment) and a
 * handler. A path that matches no pattern is 404; a path that matches with
 * another method is 405 with an Allow header. Handlers validate with req_,
 * act through ctx_ and answer through http_; requests that wait for a kernel
 * (new context, restart, a default context made on first use) are deferred
 * through a ctx_waiter that lives in a small struct pending. Streams connect
 * an exec to its HTTP request through struct api_stream. Loop thread only.
 */
#include "api.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctx.h"
#include "exec.h"
#include "http.h"
#include "kernel.h"
#include "kproc.h"
#include "log.h"
#include "pool.h"
#include "req.h"
#include "run.h"
#include "server.h"
#include "sha256.h"
#include "zyg.h"

#define API_MAX_ID	    200
#define API_TRIM_AFTER	    (1u << 20)
#define API_DEADLINE_HEADER "X-E2B-CI-Deadline-Ms"

typedef void (*api_fn)(struct server *s, struct http_req *r, const char *id);

struct api_route {
	const char *method;
	const char *pattern;
	api_fn fn;
};

/* An execution's stream: the glue between exec and http_req. */
struct api_stream {
	struct server *srv;
	struct exec *e;
	struct http_req *r;
};

/* A request waiting for a context to become ready. */
enum api_pending_kind { PENDING_CREATE, PENDING_RESTART, PENDING_EXECUTE };

struct api_pending {
	enum api_pending_kind kind;
	struct server *srv;
	struct http_req *r;
	struct ctx *c;
	struct ctx_waiter w;
	struct exec *e; /* PENDING_EXECUTE only */
};

static void api_json(struct http_req *r, unsigned status, json_t *j)
{
	char *text =
	    json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);

	if (!text) {
		http_req_text(r, 500, "out of memory");
		return;
	}
	http_req_respond(r, status, "application/json", text, strlen(text));
	free(text);
}

static void api_null(struct http_req *r)
{
	http_req_respond(r, 200, "application/json", "null", 4);
}

/* Streams */

static ssize_t api_stream_read(void *arg, char *buf, size_t max)
{
	struct api_stream *st = arg;
	ssize_t n = exec_read(st->e, buf, max);

	if (n > 0)
		metrics_bytes(&st->srv->metrics, (size_t)n);
	return n;
}

static void api_stream_closed(void *arg, bool completed)
{
	struct api_stream *st = arg;
	struct exec *e = st->e;

	bool big = e->total >= API_TRIM_AFTER;

	exec_set_sink(e, NULL, NULL);
	if (!completed)
		run_cancel(e);
	exec_unref(e);
	free(st);
	/* glibc keeps freed heap; after a big stream hand it back, so the
	 * daemon's RSS returns to its idle size. */
	if (big)
		malloc_trim(0);
}

static void api_stream_wake(void *sink)
{
	struct api_stream *st = sink;

	http_req_wake(st->r);
}

/* Attaches e (reference stolen) to r as an NDJSON stream and queues it. */
static void api_start_stream(struct http_req *r, struct ctx *c, struct exec *e)
{
	struct api_stream *st = calloc(1, sizeof(*st));
	struct http_source src = {api_stream_read, api_stream_closed, st};

	if (!st) {
		exec_unref(e);
		http_req_text(r, 500, "out of memory");
		return;
	}
	st->srv = c->srv;
	st->e = e;
	st->r = r;
	exec_set_sink(e, api_stream_wake, st);
	http_req_stream(r, "application/x-ndjson", &src);
	ctx_submit(c, e);
}

/* Deferred requests */

/* The status of each reason ctx_ gives for a context it cannot make or
 * make ready ("Status codes" of the HTTP contract). */
static const unsigned api_ctx_status[] = {
    [CTX_OK] = 200,
    [CTX_ERR_LANGUAGE] = 400, /* Bad Request: no such kernel */
    [CTX_ERR_LIMIT] = 429,    /* Too Many Requests: delete one first */
    [CTX_ERR_STOPPING] = 503, /* Service Unavailable */
    [CTX_ERR_START] = 500,    /* its kernel cannot start */
    [CTX_ERR_DELETED] = 404,  /* the context is gone */
    [CTX_ERR_NOMEM] = 500,
};

/* Answers r with the status why maps to and the reason ctx_ gave. */
static void api_ctx_refused(struct http_req *r, enum ctx_err why,
			    const char *reason)
{
	http_req_text(r, api_ctx_status[why], "%s", reason);
}

static void api_pending_free(struct api_pending *p)
{
	exec_unref(p->e);
	free(p);
}

static void api_pending_ready(void *arg, struct ctx *c, enum ctx_err why,
			      const char *reason)
{
	struct api_pending *p = arg;
	json_t *j;

	if (why == CTX_ERR_DELETED) {
		http_req_text(p->r, 404, "Context %s not found", c->id);
		api_pending_free(p);
		return;
	}
	if (why != CTX_OK) {
		api_ctx_refused(p->r, why, reason);
		api_pending_free(p);
		return;
	}
	switch (p->kind) {
	case PENDING_CREATE:
		j = ctx_to_json(c);
		api_json(p->r, 200, j);
		json_decref(j);
		break;
	case PENDING_RESTART:
		api_null(p->r);
		break;
	case PENDING_EXECUTE:
		api_start_stream(p->r, c, p->e);
		p->e = NULL;
		break;
	}
	api_pending_free(p);
}

/* The client went away before the answer. A context it was creating is
 * deleted: nobody knows its id, and it would count against --max-contexts
 * for good. */
static void api_pending_gone(void *arg)
{
	struct api_pending *p = arg;
	struct ctx *c = p->c;
	bool drop = p->kind == PENDING_CREATE;

	ctx_unwait(c, &p->w);
	api_pending_free(p);
	if (drop) {
		log_info("context %.8s: its creator went away before the "
			 "answer; deleting it",
			 c->id);
		ctx_delete(c);
	}
}

static void api_defer(struct server *s, struct http_req *r, struct ctx *c,
		      enum api_pending_kind kind, struct exec *e)
{
	struct api_pending *p = calloc(1, sizeof(*p));

	if (!p) {
		exec_unref(e);
		http_req_text(r, 500, "out of memory");
		return;
	}
	p->kind = kind;
	p->srv = s;
	p->r = r;
	p->c = c;
	p->e = e;
	p->w.fn = api_pending_ready;
	p->w.arg = p;
	http_req_defer(r, api_pending_gone, p);
	ctx_wait(c, &p->w);
}

/* Handlers */

/* 200 "OK" once every default context answered; else 503 with a plain-text
 * reason: shutting down, a default context that FAILED (one line each, with
 * its kernel's exit and last stderr lines), or still starting. */
static void api_health(struct server *s, struct http_req *r, const char *id)
{
	char why[4096];

	(void)id;
	if (s->stopping)
		http_req_text(r, 503, "Shutting down");
	else if (ctx_failed_defaults(s, why, sizeof(why)) > 0)
		http_req_respond(r, 503, "text/plain; charset=utf-8", why,
				 strlen(why));
	else if (!s->ready)
		http_req_text(r, 503,
			      "Starting: the default contexts are not ready "
			      "yet");
	else
		http_req_respond(r, 200, "application/json", "\"OK\"", 4);
}

/* Finds or makes the context an execute request names. Answers the request
 * itself (and returns NULL) on failure. */
static struct ctx *api_exec_ctx(struct server *s, struct http_req *r,
				const struct req_execute *q)
{
	const char *lang = q->language ? q->language : "python";
	struct ctx *c;
	char err[256];
	enum ctx_err why;

	if (q->context_id) {
		c = ctx_find(s, q->context_id);
		if (!c)
			http_req_text(r, 404, "Context %.64s not found",
				      q->context_id);
		return c;
	}
	c = ctx_default(s, lang);
	if (c)
		return c;
	c = ctx_new(s, lang, s->cfg.cwd, true, &why, err, sizeof(err));
	if (!c)
		api_ctx_refused(r, why, err);
	return c;
}

/* The optional per-execution deadline: a header the SDKs never send. */
static int api_deadline(struct http_req *r, struct exec *e)
{
	const char *v = http_req_header(r, API_DEADLINE_HEADER);
	char *end = NULL;
	long long ms;

	if (!v)
		return 0;
	ms = strtoll(v, &end, 10);
	if (!*v || *end || ms <= 0 || ms > 86400000LL) {
		http_req_text(r, 400,
			      "%s must be milliseconds from 1 to 86400000",
			      API_DEADLINE_HEADER);
		return -1;
	}
	e->deadline_ms = ms;
	return 0;
}

static void api_execute(struct server *s, struct http_req *r, const char *id)
{
	struct req_execute q = {0};
	struct exec *e;
	struct ctx *c;
	const char *body;
	char err[256];
	size_t len;
	int status;

	(void)id;
	body = http_req_body(r, &len);
	status = req_parse_execute(body, len, &q, err, sizeof(err));
	if (status) {
		http_req_text(r, (unsigned)status, "%s", err);
		return;
	}
	c = api_exec_ctx(s, r, &q);
	if (!c)
		goto out;
	e = exec_new(s->loop, q.code, q.code_len, q.env_vars,
		     http_req_header(r, "X-Access-Token"), s->cfg.keepalive_ms,
		     &s->backlog);
	if (!e) {
		http_req_text(r, 500, "out of memory");
		goto out;
	}
	if (api_deadline(r, e) < 0) {
		exec_unref(e);
		goto out;
	}
	/* A context still making its first kernel answers 500 if that fails,
	 * so hold the answer until it is ready. */
	if (!c->ever_ready)
		api_defer(s, r, c, PENDING_EXECUTE, e);
	else
		api_start_stream(r, c, e);
out:
	req_execute_cleanup(&q);
}

static void api_contexts_create(struct server *s, struct http_req *r,
				const char *id)
{
	struct req_context q = {0};
	const char *body, *cwd;
	struct stat st;
	struct ctx *c;
	char err[256];
	size_t len;
	enum ctx_err why;
	int status;

	(void)id;
	body = http_req_body(r, &len);
	status = req_parse_context(body, len, &q, err, sizeof(err));
	if (status) {
		http_req_text(r, (unsigned)status, "%s", err);
		return;
	}
	cwd = q.cwd ? q.cwd : s->cfg.cwd;
	if (stat(cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		http_req_text(r, 400,
			      "cwd '%.200s' is not an existing directory", cwd);
		goto out;
	}
	c = ctx_new(s, q.language, cwd, false, &why, err, sizeof(err));
	if (!c)
		api_ctx_refused(r, why, err);
	else
		api_defer(s, r, c, PENDING_CREATE, NULL);
out:
	req_context_cleanup(&q);
}

static void api_contexts_list(struct server *s, struct http_req *r,
			      const char *id)
{
	json_t *arr = json_array();

	(void)id;
	for (struct ctx *c = s->contexts; c; c = c->next)
		json_array_append_new(arr, ctx_to_json(c));
	api_json(r, 200, arr);
	json_decref(arr);
}

static void api_contexts_restart(struct server *s, struct http_req *r,
				 const char *id)
{
	struct ctx *c = ctx_find(s, id);

	if (!c) {
		http_req_text(r, 404, "Context %s not found", id);
		return;
	}
	ctx_restart(c, "requested by a client");
	api_defer(s, r, c, PENDING_RESTART, NULL);
}

static void api_contexts_delete(struct server *s, struct http_req *r,
				const char *id)
{
	struct ctx *c = ctx_find(s, id);

	if (!c) {
		http_req_text(r, 404, "Context %s not found", id);
		return;
	}
	ctx_delete(c);
	api_null(r);
}

/* The gauges of GET /metrics, read now: the contexts' kernels, the pool's
 * spares, and the rest of kernel_live()'s count, which is in the
 * graveyard. */
static void api_gauges(const struct server *s, struct metrics_gauges *g)
{
	size_t warm, warming, held, live = kernel_live();

	ctx_gauges(s, g);
	pool_count(s, &warm, &warming);
	g->warm = warm;
	g->starting += warming;
	held = g->busy + g->idle + g->starting + g->warm;
	g->stopping = live > held ? live - held : 0;
	kproc_counts(&g->forked, &g->execd);
	g->zygotes_ready = zyg_ready();
}

static void api_metrics(struct server *s, struct http_req *r, const char *id)
{
	struct metrics_gauges g = {0};
	char *text;

	api_gauges(s, &g);
	text = metrics_render(&s->metrics, &g);

	(void)id;
	if (!text) {
		http_req_text(r, 500, "out of memory");
		return;
	}
	http_req_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8",
			 text, strlen(text));
	free(text);
}

static const struct api_route api_routes[] = {
    {"GET", "/metrics", api_metrics},
    {"GET", "/health", api_health},
    {"POST", "/execute", api_execute},
    {"GET", "/contexts", api_contexts_list},
    {"POST", "/contexts", api_contexts_create},
    {"POST", "/contexts/{id}/restart", api_contexts_restart},
    {"DELETE", "/contexts/{id}", api_contexts_delete},
};

/* HEAD is served by every GET route; MHD sends the headers (Content-Length
 * included) and leaves the body out. */
static bool api_method_is(const char *route_method, const char *method)
{
	return strcmp(route_method, method) == 0 ||
	       (strcmp(method, "HEAD") == 0 &&
		strcmp(route_method, "GET") == 0);
}

/* Matches path against pattern; a "{id}" segment is copied into id. */
static bool api_match(const char *pattern, const char *path, char *id,
		      size_t idlen)
{
	while (*pattern && *path) {
		if (strncmp(pattern, "{id}", 4) == 0) {
			size_t n = strcspn(path, "/");
			if (n == 0 || n >= idlen)
				return false;
			memcpy(id, path, n);
			id[n] = '\0';
			path += n;
			pattern += 4;
			continue;
		}
		if (*pattern++ != *path++)
			return false;
	}
	/* One trailing slash is forgiven. */
	if (*path == '/' && path[1] == '\0')
		path++;
	return *pattern == '\0' && *path == '\0';
}

/* With --access-token set, every request must carry it (the SDKs send
 * E2B-Traffic-Access-Token to every route, X-Access-Token to /execute). */
static bool api_authorized(const struct server *s, const struct http_req *r)
{
	static const char *const hdrs[] = {"X-Access-Token",
					   "E2B-Traffic-Access-Token"};
	const char *want = s->cfg.access_token;
	size_t wl = strlen(want);

	if (wl == 0)
		return true;
	for (size_t i = 0; i < 2; i++) {
		const char *got = http_req_header(r, hdrs[i]);
		if (got && strlen(got) == wl && sha256_memeq(got, want, wl))
			return true;
	}
	return false;
}

void api_handle(void *arg, struct http_req *r)
{
	struct server *s = arg;
	const char *method = http_req_method(r), *path = http_req_path(r);
	char id[API_MAX_ID + 1] = "", allow[64] = "";
	size_t n = sizeof(api_routes) / sizeof(*api_routes);

	if (!api_authorized(s, r)) {
		http_req_add_header(r, "WWW-Authenticate", "Token");
		http_req_text(r, 401,
			      "Missing or wrong access token (send it "
			      "in X-Access-Token or E2B-Traffic-Access-Token)");
		return;
	}

	for (size_t i = 0; i < n; i++) {
		if (!api_match(api_routes[i].pattern, path, id, sizeof(id)))
			continue;
		const char *m = api_routes[i].method;
		if (api_method_is(m, method)) {
			http_req_set_tag(r, api_routes[i].pattern);
			api_routes[i].fn(s, r, id);
			return;
		}
		if (strcmp(m, "GET") == 0)
			m = "GET, HEAD";
		if (!strstr(allow, m))
			snprintf(allow + strlen(allow),
				 sizeof(allow) - strlen(allow), "%s%s",
				 *allow ? ", " : "", m);
	}
	if (*allow) {
		http_req_add_header(r, "Allow", allow);
		http_req_text(r, 405, "Method %.16s not allowed on %.100s",
			      method, path);
		return;
	}
	http_req_text(r, 404, "Not found: %.100s", path);
}
