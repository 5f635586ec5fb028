/*
 * report.c: what a run shows. The rows (value, floor, target, ratio and
 * whether the target is met) built from struct results, the printed table,
 * the results JSON (rows, kernels, raw samples, memory, against) and the
 * same table as markdown for README.md.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

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

void report_rows(struct results *R, bool against, int n_conns)
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

void report_write(const struct opts *o, struct results *R, int argc,
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

void report_print(const struct opts *o, struct results *R, double secs)
{
	printf("\ne2b-ci benchmark (%s; medians of interleaved samples; "
	       "%.0f s)\n\n",
	       o->quick ? "QUICK: too few samples to mean much" : "make bench",
	       secs);
	print_table(stdout, o->against != NULL, false);
	print_kernels(stdout, R->kl, o->n_kstarts, false);
	fflush(stdout);
}
