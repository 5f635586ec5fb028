/*
 * metrics: counters and the Prometheus text exposition (see metrics.h).
 *
 * Gauges come from the caller, computed at scrape time from the contexts,
 * the pool and the kernel count, so there is no second copy of state to
 * keep in sync. The text follows the Prometheus exposition format 0.0.4:
 * HELP and TYPE lines, one sample per line, labels quoted. Loop thread
 * only.
 */
#include "metrics.h"

#include <string.h>

#include "dbuf.h"

static const double metrics_bounds_s[METRICS_NBUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60};

void metrics_http(struct metrics *m, const char *route, unsigned status)
{
	if (!route)
		route = "other";
	for (size_t i = 0; i < m->nhttp; i++) {
		if (m->http[i].status == status &&
		    strcmp(m->http[i].route, route) == 0) {
			m->http[i].n++;
			return;
		}
	}
	if (m->nhttp == sizeof(m->http) / sizeof(*m->http))
		return;
	m->http[m->nhttp].route = route;
	m->http[m->nhttp].status = status;
	m->http[m->nhttp].n = 1;
	m->nhttp++;
}

void metrics_exec(struct metrics *m, uint64_t ms)
{
	double s = (double)ms / 1000.0;

	for (size_t i = 0; i < METRICS_NBUCKETS; i++) {
		if (s <= metrics_bounds_s[i]) {
			m->exec_buckets[i]++;
			break;
		}
	}
	m->exec_count++;
	m->exec_sum_s += s;
}

void metrics_bytes(struct metrics *m, size_t n)
{
	m->bytes_streamed += n;
}

/* The exposition's size: a few KiB, as every table it renders is bounded
 * (routes x statuses, languages, buckets); a text past this is a bug,
 * answered 500 instead of growing. */
#define METRICS_TEXT_MAX (1024 * 1024)

static void metrics_head(struct dbuf *b, const char *name, const char *type,
			 const char *help)
{
	dbuf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_contexts(struct dbuf *b, const struct metrics_gauges *g)
{
	metrics_head(b, "e2bci_contexts", "gauge", "Contexts by language.");
	for (size_t i = 0; i < g->nlanguages; i++)
		dbuf_addf(b, "e2bci_contexts{language=\"%s\"} %zu\n",
			  g->contexts[i].language, g->contexts[i].n);
}

static void metrics_kernels(struct dbuf *b, const struct metrics_gauges *g)
{
	static const char *const states[] = {"busy", "idle", "starting", "warm",
					     "stopping"};
	const size_t n[] = {g->busy, g->idle, g->starting, g->warm,
			    g->stopping};

	metrics_head(b, "e2bci_kernels", "gauge", "Kernel processes by state.");
	for (size_t i = 0; i < sizeof(n) / sizeof(*n); i++)
		dbuf_addf(b, "e2bci_kernels{state=\"%s\"} %zu\n", states[i],
			  n[i]);
	metrics_head(b, "e2bci_executions_in_flight", "gauge",
		     "Executions running in a kernel now.");
	dbuf_addf(b, "e2bci_executions_in_flight %zu\n", g->in_flight);
	metrics_head(b, "e2bci_kernels_forked_total", "counter",
		     "Kernel processes forked by a zygote.");
	dbuf_addf(b, "e2bci_kernels_forked_total %llu\n", g->forked);
	metrics_head(b, "e2bci_kernels_execd_total", "counter",
		     "Kernel processes exec'd.");
	dbuf_addf(b, "e2bci_kernels_execd_total %llu\n", g->execd);
	metrics_head(b, "e2bci_zygotes_ready", "gauge",
		     "Zygotes ready to fork kernels.");
	dbuf_addf(b, "e2bci_zygotes_ready %zu\n", g->zygotes_ready);
}

static void metrics_counters(struct dbuf *b, const struct metrics *m)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} rows[] = {
	    {"e2bci_executions_total", "Executions sent to kernels.",
	     offsetof(struct metrics, executions)},
	    {"e2bci_kernel_starts_total", "Kernel processes started.",
	     offsetof(struct metrics, kernel_starts)},
	    {"e2bci_kernel_crashes_total",
	     "Kernels that died while serving a context.",
	     offsetof(struct metrics, kernel_deaths)},
	    {"e2bci_kernel_restarts_total",
	     "Context restarts (requested, or after a stuck interrupt).",
	     offsetof(struct metrics, restarts)},
	    {"e2bci_interrupts_total",
	     "Cells interrupted because their client went away.",
	     offsetof(struct metrics, interrupts)},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
		const unsigned long long *v =
		    (const void *)((const char *)m + rows[i].off);
		metrics_head(b, rows[i].name, "counter", rows[i].help);
		dbuf_addf(b, "%s %llu\n", rows[i].name, *v);
	}
	metrics_head(b, "e2bci_stream_bytes_total", "counter",
		     "NDJSON bytes handed to clients.");
	dbuf_addf(b, "e2bci_stream_bytes_total %llu\n", m->bytes_streamed);
}

static void metrics_histogram(struct dbuf *b, const struct metrics *m)
{
	unsigned long long cum = 0;
	const char *n = "e2bci_execution_duration_seconds";

	metrics_head(b, n, "histogram",
		     "Time from sending the code to the end of its stream.");
	for (size_t i = 0; i < METRICS_NBUCKETS; i++) {
		cum += m->exec_buckets[i];
		dbuf_addf(b, "%s_bucket{le=\"%g\"} %llu\n", n,
			  metrics_bounds_s[i], cum);
	}
	dbuf_addf(b, "%s_bucket{le=\"+Inf\"} %llu\n", n, m->exec_count);
	dbuf_addf(b, "%s_sum %.6f\n%s_count %llu\n", n, m->exec_sum_s, n,
		  m->exec_count);
}

static void metrics_http_rows(struct dbuf *b, const struct metrics *m)
{
	metrics_head(b, "e2bci_http_requests_total", "counter",
		     "HTTP requests answered, by route and status.");
	for (size_t i = 0; i < m->nhttp; i++)
		dbuf_addf(b,
			  "e2bci_http_requests_total{route=\"%s\","
			  "status=\"%u\"} %llu\n",
			  m->http[i].route, m->http[i].status, m->http[i].n);
}

char *metrics_render(const struct metrics *m, const struct metrics_gauges *g)
{
	struct dbuf b = DBUF_INIT(METRICS_TEXT_MAX);

	metrics_contexts(&b, g);
	metrics_kernels(&b, g);
	metrics_counters(&b, m);
	metrics_histogram(&b, m);
	metrics_http_rows(&b, m);
	return dbuf_take(&b, NULL);
}
