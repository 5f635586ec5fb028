/*
 * record.c: the measurements of a run as JSON, for tests/bench/report.py.
 * Every series is summarised (n, min, p50, p99, max) under the key SERIES
 * gives it, the memory snapshots under raw.memory, the kernels per
 * language as an array; "run" holds what report.py needs that is not a
 * result of its own (the duration, the connections held). The document is
 * the results JSON minus its rows, so report.py only adds them. Reals keep
 * their full precision here; report.py rounds what it writes.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* The JSON key of each series, in the order written. */
static const struct {
	const char *key;
	bool against; /* against.<key> rather than raw.<key> */
} SERIES[S_COUNT] = {
    [S_KERNEL_START] = {"kernel_start_ms", false},
    [S_START_HEALTHY] = {"start_healthy_ms", false},
    [S_DAEMON_KREADY] = {"daemon_logged_kernel_ready_ms", false},
    [S_HEALTH] = {"health_ms", false},
    [S_EXEC] = {"exec_ms", false},
    [S_FLOOR_EXEC] = {"floor_exec_ms", false},
    [S_STDOUT] = {"stdout_mibps", false},
    [S_FLOOR_STDOUT] = {"floor_stdout_mibps", false},
    [S_PARALLEL] = {"parallel_eps", false},
    [S_FLOOR_PARALLEL] = {"floor_parallel_eps", false},
    [S_CTX_WARM] = {"ctx_warm_ms", false},
    [S_CTX_COLD] = {"ctx_cold_ms", false},
    [S_RESTART_WARM] = {"restart_warm_ms", false},
    [S_RESTART_COLD] = {"restart_cold_ms", false},
    [S_CONNS_HEALTH] = {"conns_health_ms", false},
    [S_A_HEALTH] = {"health_ms", true},
    [S_A_EXEC] = {"exec_ms", true},
    [S_A_CTX] = {"ctx_ms", true},
    [S_A_RESTART] = {"restart_ms", true},
    [S_A_PARALLEL] = {"parallel_eps", true},
    [S_A_CONNS_HEALTH] = {"conns_health_ms", true},
};

static const char *const SNAPSHOT[M_COUNT] = {
    [M_LIBFLOOR] = "libraries_alone", [M_IDLE] = "idle",
    [M_TPUT] = "after_throughput",    [M_PRE_CONNS] = "before_connections",
    [M_CONNS] = "connections",	      [M_AFTER] = "after",
};

static json_t *num(double v)
{
	return isnan(v) || isinf(v) ? json_null() : json_real(v);
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

/* raw: the series of e2b-ci and the floor, then memory. */
static json_t *raw_json(struct results *R)
{
	json_t *raw = json_object(), *mem = json_object();

	for (int i = 0; i < S_COUNT; i++)
		if (!SERIES[i].against)
			json_object_set_new(raw, SERIES[i].key,
					    sm_json(&R->s[i]));
	for (int i = 0; i < M_COUNT; i++)
		json_object_set_new(mem, SNAPSHOT[i], mem_json(&R->m[i]));
	json_object_set_new(raw, "memory", mem);
	return raw;
}

/* against: its URL, its series, the connections it held; or null. */
static json_t *against_json(const struct opts *o, struct results *R)
{
	json_t *a;

	if (!o->against)
		return json_null();
	a = json_pack("{s:s}", "url", o->against);
	for (int i = 0; i < S_COUNT; i++)
		if (SERIES[i].against)
			json_object_set_new(a, SERIES[i].key,
					    sm_json(&R->s[i]));
	json_object_set_new(a, "conns_held", json_integer(R->a_conns_held));
	return a;
}

static json_t *params_json(const struct opts *o)
{
	return json_pack(
	    "{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:b}", "exec",
	    o->n_exec, "health", o->n_health, "contexts", o->n_ctx, "restarts",
	    o->n_restart, "throughput_rounds", o->n_tput, "parallel_rounds",
	    o->n_par_rounds, "parallel_each", o->n_par_each, "connections",
	    o->n_conns, "connection_health", o->n_conn_health, "starts",
	    o->n_starts, "kernel_starts", o->n_kstarts, "kernel_idle_ms",
	    KIDLE_MS, "quick", o->quick);
}

/* generated, command, argv, machine: where and how the run was made. */
static void set_origin(json_t *root, int argc, char **argv)
{
	char date[64], cmd[1024] = "";
	time_t t = time(NULL);
	struct utsname u;

	for (int i = 0; i < argc; i++) {
		size_t l = strlen(cmd);
		snprintf(cmd + l, sizeof(cmd) - l, "%s%s", i ? " " : "",
			 argv[i]);
	}
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	uname(&u);
	json_object_set_new(root, "generated", json_string(date));
	json_object_set_new(root, "command", json_string("make bench"));
	json_object_set_new(root, "argv", json_string(cmd));
	json_object_set_new(
	    root, "machine",
	    json_pack("{s:s,s:s,s:I}", "sysname", u.sysname, "release",
		      u.release, "cpus",
		      (json_int_t)sysconf(_SC_NPROCESSORS_ONLN)));
}

void record_write(const struct opts *o, struct results *R, double secs,
		  int argc, char **argv)
{
	json_t *root = json_object();

	set_origin(root, argc, argv);
	json_object_set_new(root, "params", params_json(o));
	json_object_set_new(root, "kernels", kernels_json(R->kl));
	json_object_set_new(root, "raw", raw_json(R));
	json_object_set_new(root, "against", against_json(o, R));
	json_object_set_new(root, "run",
			    json_pack("{s:f,s:i}", "seconds", secs,
				      "conns_held", R->conns_held));
	if (json_dump_file(root, o->out, JSON_INDENT(1)) < 0)
		die("cannot write %s", o->out);
	say("wrote %s", o->out);
	json_decref(root);
}

void record_free(struct results *R)
{
	for (int i = 0; i < S_COUNT; i++)
		sm_free(&R->s[i]);
	for (int i = 0; i < NKLANG; i++)
		sm_free(&R->kl[i].start);
}
