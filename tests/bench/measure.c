/*
 * measure.c: the HTTP measurements. Each runs one scenario against a
 * target (the daemon under test, or --against another E2B-compatible
 * server) and, where the floor has the same scenario, runs it on the floor
 * too, one sample each in turn, alternating which side goes first, so the
 * noise of a shared machine hits both alike. Nothing here asserts a
 * timing: samples go into struct samples, failures are said and skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

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

static const char *const THROUGHPUT_CODE = "import sys\n"
					   "s = 'x' * 65535 + '\\n'\n"
					   "for _ in range(320):\n"
					   "    sys.stdout.write(s)\n"
					   "    sys.stdout.flush()\n";
#define THROUGHPUT_BYTES (320.0 * 65536.0)

void measure_health(const struct target *tg, int n, struct samples *out)
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
void measure_one_plus_one(const struct target *tg, struct fk *f, int n,
			  struct samples *d_out, struct samples *f_out)
{
	char *body = exec_body("1+1", NULL);
	struct hc h;

	hc_init(&h, tg);
	for (int i = -10; i < n; i++) { /* 10 warm-up rounds */
		double d = -1, fl = -1;
		if (f && (i & 1) == 0)
			fl = floor_exec(f, "1+1");
		d = http_exec(&h, body, true);
		if (f && (i & 1) != 0)
			fl = floor_exec(f, "1+1");
		if (f && !f->two)
			die("floor: 1+1 did not give 2");
		if (i < 0)
			continue;
		if (d >= 0)
			sm_add(d_out, d);
		if (f && f_out)
			sm_add(f_out, fl);
	}
	hc_free(&h);
	free(body);
}

void measure_throughput(const struct target *tg, struct fk *f, int n,
			struct samples *d_out, struct samples *f_out)
{
	char *body = exec_body(THROUGHPUT_CODE, NULL);
	struct hc h;

	hc_init(&h, tg);
	for (int i = 0; i < n; i++) {
		for (int side = 0; side < 2; side++) {
			if ((side ^ (i & 1)) == 0) {
				double ms = floor_exec(f, THROUGHPUT_CODE);
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

void measure_parallel(const struct target *tg, struct fk *f,
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
		floor_parallel_round(f, 3);
	for (int r = 0; r < o->n_par_rounds; r++) {
		for (int side = 0; side < 2; side++) {
			if ((side ^ (r & 1)) == 0) {
				if (f && f_out)
					sm_add(f_out, floor_parallel_round(
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
void measure_contexts(const struct target *tg, struct daemon *d, int n,
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

void measure_restart(const struct target *tg, struct daemon *d, int n,
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
int measure_conns(const struct target *tg, pid_t pid, int n, int nh,
		  struct samples *health, struct mem *rss)
{
	struct hc *pool = calloc((size_t)n, sizeof(*pool));
	struct hc **hs = calloc((size_t)n, sizeof(struct hc *));
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
	measure_health(tg, nh + 10, health);
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
