/*
 * metrics: counters and the Prometheus text exposition of GET /metrics.
 *
 * Counts what the other modules report (HTTP answers by route and status,
 * execution durations in a fixed-bucket histogram, bytes streamed) and
 * renders them together with gauges read from the server at scrape time
 * (contexts per language, kernels by state, executions in flight). Loop
 * thread only; no allocation on the counting paths.
 */
#ifndef E2BCI_METRICS_H
#define E2BCI_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct server;

#define METRICS_MAX_ROUTES 16
#define METRICS_NBUCKETS   12

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
};

/* One HTTP answer; route is a static string (NULL: "other"). */
void metrics_http(struct metrics *m, const char *route, unsigned status);
/* One finished execution and its duration. */
void metrics_exec(struct metrics *m, uint64_t ms);
void metrics_bytes(struct metrics *m, size_t n);

/* The whole exposition as a new malloc'd string (NULL on ENOMEM). */
char *metrics_render(const struct server *s);

#endif
