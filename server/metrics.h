/*
 * metrics: counters and the Prometheus text exposition of GET /metrics.
 *
 * Counts what the other modules report (HTTP answers by route and status,
 * execution durations in a fixed-bucket histogram, bytes streamed, kernel
 * starts, deaths, restarts, interrupts) and renders them together with the
 * gauges its caller collected at scrape time (contexts per language,
 * kernels by state, executions in flight). It reads no other module's
 * state: what it shows is what it was told. Loop thread only; no
 * allocation on the counting paths.
 */
#ifndef E2BCI_METRICS_H
#define E2BCI_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_ROUTES    16
#define METRICS_NBUCKETS      12
#define METRICS_MAX_LANGUAGES 64

struct metrics {
	struct {
		const char *route; /* static string: the route pattern */
		unsigned status;
		unsigned long long n;
	} http[METRICS_MAX_ROUTES * 6];
	size_t nhttp;
	unsigned long long
	    exec_buckets[METRICS_NBUCKETS]; /* cumulative on render */
	unsigned long long exec_count;
	double exec_sum_s;
	unsigned long long bytes_streamed;
	/* Bumped by their owners: executions sent to kernels (run_),
	 * interrupts of cells whose client left or deadline passed (run_),
	 * kernel processes started (ctx_, pool_), kernels of contexts that
	 * died (ctx_), context restarts (ctx_). */
	unsigned long long executions, interrupts, kernel_starts, kernel_deaths,
	    restarts;
};

/* The daemon's state at scrape time, as the caller (api_) collected it. */
struct metrics_gauges {
	struct {
		const char *language; /* borrowed for the render */
		size_t n;
	} contexts[METRICS_MAX_LANGUAGES]; /* in order of first appearance */
	size_t nlanguages;
	/* Kernels by state: a context's that runs a cell, that is idle, that
	 * is starting (spares that start included), a warm spare, one on its
	 * way out. */
	size_t busy, idle, starting, warm, stopping;
	size_t in_flight; /* executions running in a kernel now */
	/* Kernel processes started so far, by a zygote and by exec (kproc_),
	 * and the zygotes ready to fork now (zyg_). */
	unsigned long long forked, execd;
	size_t zygotes_ready;
};

/* One HTTP answer; route is a static string (NULL: "other"). */
void metrics_http(struct metrics *m, const char *route, unsigned status);
/* One finished execution and its duration. */
void metrics_exec(struct metrics *m, uint64_t ms);
void metrics_bytes(struct metrics *m, size_t n);

/* The whole exposition of m and g as a new malloc'd string (NULL on
 * ENOMEM). */
char *metrics_render(const struct metrics *m, const struct metrics_gauges *g);

#endif
