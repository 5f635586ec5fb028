/*
 * bench: `make bench` (issue 4). Measures e2b-ci and, in the same run, the
 * floor it cannot beat: a client that talks to the same kernelspec directly
 * over ZeroMQ, through the daemon's own kernel_ module (floor.c), i.e. the
 * daemon's code path minus HTTP. bench.h lists the files and what each
 * does; this one holds main, the options and the run plan.
 *
 * The run is PLAN, a list of phases over one struct run. It starts the
 * daemon itself (loopback, a free port, a private temp dir for runtime
 * files and cwd, --default-languages python): daemon A with a warm pool
 * for most rows, daemon B with --pool python=0 for the cold POST /contexts
 * and restart rows. Floor and e2b-ci samples are interleaved (one each,
 * alternating which goes first) so the noise of a shared machine hits both
 * alike. Kernels (issue 3): every language's kernel started by the floor
 * client, for start p50 and idle RSS. --against URL runs the HTTP rows
 * against another E2B-compatible server as an extra column.
 *
 * Nothing here asserts timings: the measurements go to a JSON file
 * (record.c) and tests/bench/report.py makes the rows, the table and the
 * results of them; report.py's ROWS comment says how to add a row.
 *
 * Every loop is bounded; daemons and kernels are killed on every exit path
 * (normal end, error exit, SIGINT/SIGTERM/SIGHUP, the overall alarm), and
 * both carry a parent-death signal.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "log.h"

/* --------------------------------------------------------------- options */

static void usage(FILE *f, const char *argv0)
{
	fprintf(
	    f,
	    "Usage: %s --daemon PATH [--out FILE] [--against URL]\n"
	    "          [--lib-floor PATH] [--quick]\n"
	    "Starts e2b-ci (loopback, a free port, temp dirs) and measures it\n"
	    "next to a direct-ZeroMQ floor client on the same kernelspec.\n"
	    "  --daemon PATH   the e2b-ci binary\n"
	    "  --out FILE      the measurements, JSON (default\n"
	    "                  bench-measured.json), for "
	    "tests/bench/report.py\n"
	    "  --against URL   also run the HTTP rows against another\n"
	    "                  E2B-compatible server (http://host:port)\n"
	    "  --lib-floor PATH  tests/bench/libfloor.c built: the RSS of\n"
	    "                  the daemon's libraries alone, for comparison\n"
	    "  --quick         few repetitions (a smoke test, not numbers)\n",
	    argv0);
}

/* --quick: few repetitions, a smoke test of every phase. */
static void quick_counts(struct opts *o)
{
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

static void parse_args(struct opts *o, int argc, char **argv)
{
	*o = (struct opts){.out = "bench-measured.json",
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
	if (o->quick)
		quick_counts(o);
}

/* ------------------------------------------------------------------ run */

/* What the phases share. */
struct run {
	struct opts o;
	struct results R;
	struct daemon A;      /* warm pool; up from phase_starts */
	struct fk fk[NFLOOR]; /* floor kernels, one per parallel context */
	struct target against;
};

/* Kernel start (floor) and start -> healthy (daemon A), interleaved; the
 * first floor kernel warms the page cache and is not counted. Leaves A up
 * with its pool full and NFLOOR floor kernels ready. */
static void phase_starts(struct run *r)
{
	struct results *R = &r->R;

	say("starts: floor kernel vs daemon, %d each", r->o.n_starts);
	floor_start(&r->fk[0]);
	for (int i = 0; i < r->o.n_starts; i++) {
		if (i + 1 < NFLOOR) {
			sm_add(&R->s[S_KERNEL_START],
			       floor_start(&r->fk[i + 1]));
		} else {
			struct fk tmp;
			sm_add(&R->s[S_KERNEL_START], floor_start(&tmp));
			floor_free(&tmp);
		}
		daemon_spawn(&r->A, r->o.daemon, "a", "python=1");
		sm_add(&R->s[S_START_HEALTHY], daemon_wait_healthy(&r->A));
		daemon_scan_log(&r->A);
		sm_add(&R->s[S_DAEMON_KREADY], r->A.last_ready_ms);
		if (i + 1 < r->o.n_starts)
			daemon_stop(&r->A);
	}
	for (int i = r->o.n_starts + 1; i < NFLOOR; i++)
		floor_start(&r->fk[i]);
	if (daemon_wait_quiet(&r->A, START_TIMEOUT_MS) < 0)
		die("daemon a: the pool did not fill");
}

/* Daemon A idle, and the daemon's libraries alone. */
static void phase_idle_memory(struct run *r)
{
	sleep_ms(300);
	r->R.m[M_IDLE] = mem_of(r->A.pid);
	say("daemon a: pid %d on port %d, RSS idle %.2f MiB", (int)r->A.pid,
	    r->A.port, r->R.m[M_IDLE].rss);
	r->R.m[M_LIBFLOOR] = libfloor_mem(r->o.lib_floor);
}

/* The rows with a floor: daemon A next to the floor kernels, which are
 * stopped afterwards. */
static void phase_vs_floor(struct run *r)
{
	const struct opts *o = &r->o;
	struct results *R = &r->R;

	say("GET /health x %d", o->n_health);
	measure_health(&r->A.tg, o->n_health, &R->s[S_HEALTH]);
	say("1+1 x %d, floor and e2b-ci interleaved", o->n_exec);
	measure_one_plus_one(&r->A.tg, &r->fk[0], o->n_exec, &R->s[S_EXEC],
			     &R->s[S_FLOOR_EXEC]);
	say("stdout throughput: 20 MiB x %d each", o->n_tput);
	measure_throughput(&r->A.tg, &r->fk[0], o->n_tput, &R->s[S_STDOUT],
			   &R->s[S_FLOOR_STDOUT]);
	R->m[M_TPUT] = mem_of(r->A.pid);
	say("parallel: %d contexts x %d 1+1, %d rounds each", NPAR,
	    o->n_par_each, o->n_par_rounds);
	measure_parallel(&r->A.tg, r->fk, o, &R->s[S_PARALLEL],
			 &R->s[S_FLOOR_PARALLEL]);
	for (int i = 0; i < NFLOOR; i++)
		floor_free(&r->fk[i]);
}

/* POST /contexts and restart on daemon A's warm pool. */
static void phase_warm(struct run *r)
{
	say("POST /contexts x %d, warm pool", r->o.n_ctx);
	measure_contexts(&r->A.tg, &r->A, r->o.n_ctx, &r->R.s[S_CTX_WARM]);
	say("restart x %d, warm pool", r->o.n_restart);
	measure_restart(&r->A.tg, &r->A, r->o.n_restart,
			&r->R.s[S_RESTART_WARM]);
	daemon_wait_quiet(&r->A, START_TIMEOUT_MS);
}

/* 1000 keep-alive connections on daemon A, its memory after the run;
 * then A stops. */
static void phase_conns(struct run *r)
{
	const struct opts *o = &r->o;
	struct results *R = &r->R;

	R->m[M_PRE_CONNS] = mem_of(r->A.pid);
	say("%d keep-alive connections + GET /health x %d", o->n_conns,
	    o->n_conn_health);
	R->conns_held =
	    measure_conns(&r->A.tg, r->A.pid, o->n_conns, o->n_conn_health,
			  &R->s[S_CONNS_HEALTH], &R->m[M_CONNS]);
	/* The daemon hands freed heap back 2 s after traffic pauses. */
	sleep_ms(2600);
	R->m[M_AFTER] = mem_of(r->A.pid);
	say("daemon a: RSS after %.2f MiB", R->m[M_AFTER].rss);
	daemon_stop(&r->A);
}

/* Daemon B without a pool: POST /contexts and restart wait for a kernel
 * start. */
static void phase_cold(struct run *r)
{
	struct daemon B;

	say("daemon b (--pool python=0): POST /contexts x %d, restart x %d",
	    r->o.n_ctx, r->o.n_restart);
	daemon_spawn(&B, r->o.daemon, "b", "python=0");
	daemon_wait_healthy(&B);
	measure_contexts(&B.tg, NULL, r->o.n_ctx, &r->R.s[S_CTX_COLD]);
	measure_restart(&B.tg, NULL, r->o.n_restart, &r->R.s[S_RESTART_COLD]);
	daemon_stop(&B);
}

static void phase_kernels(struct run *r)
{
	say("kernels: %d languages, %d starts each (+1 warm-up), idle RSS "
	    "%d s after ready",
	    NKLANG, r->o.n_kstarts, KIDLE_MS / 1000);
	floor_kernels(r->R.kl, r->o.n_kstarts);
}

/* The HTTP rows against --against, if given. */
static void phase_against(struct run *r)
{
	const struct opts *o = &r->o;
	struct results *R = &r->R;

	if (!o->against)
		return;
	say("against %s: the HTTP rows", o->against);
	measure_health(&r->against, o->n_health, &R->s[S_A_HEALTH]);
	measure_one_plus_one(&r->against, NULL, o->n_exec, &R->s[S_A_EXEC],
			     NULL);
	measure_parallel(&r->against, NULL, o, &R->s[S_A_PARALLEL], NULL);
	measure_contexts(&r->against, NULL, o->n_ctx, &R->s[S_A_CTX]);
	measure_restart(&r->against, NULL, o->n_restart, &R->s[S_A_RESTART]);
	R->a_conns_held =
	    measure_conns(&r->against, 0, o->n_conns, o->n_conn_health,
			  &R->s[S_A_CONNS_HEALTH], NULL);
}

/* The run, in order. A phase may rely on what the ones before it left
 * (daemon A up, the floor kernels ready); a measurement that needs a
 * daemon with other options gets a phase of its own, like phase_cold. */
static void (*const PLAN[])(struct run *r) = {
    phase_starts, phase_idle_memory, phase_vs_floor, phase_warm,
    phase_conns,  phase_cold,	     phase_kernels,  phase_against,
};

/* ------------------------------------------------------------------ main */

/* Cleanup on every exit path; as many open files as 1000 connections
 * need, here and in the daemon (which inherits the limit); the temp dir;
 * the floor. */
static void setup(void)
{
	struct sigaction sa;
	struct rlimit rl;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(cleanup_all);
	alarm(BENCH_ALARM_S);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	log_init(LOG_LVL_WARN, 0);
	snprintf(bench_tmp, sizeof(bench_tmp), "/tmp/e2bci-bench-XXXXXX");
	if (!mkdtemp(bench_tmp))
		die("mkdtemp: %s", strerror(errno));
	floor_init();
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
	static struct run r; /* zeroed; large */
	uint64_t t_begin = now_ns();

	parse_args(&r.o, argc, argv);
	if (access(r.o.daemon, X_OK) < 0)
		die("%s: %s", r.o.daemon, strerror(errno));
	if (r.o.against && hc_target(&r.against, "against", r.o.against) < 0)
		die("--against: cannot resolve %s", r.o.against);
	setup();
	for (size_t i = 0; i < sizeof(PLAN) / sizeof(PLAN[0]); i++)
		PLAN[i](&r);
	record_write(&r.o, &r.R, (double)(now_ns() - t_begin) / 1e9, argc,
		     argv);

	/* Orderly teardown (the atexit handler covers the rest). */
	floor_cleanup();
	nftw(bench_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	bench_tmp[0] = '\0';
	record_free(&r.R);
	return 0;
}
