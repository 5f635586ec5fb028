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

/* ------------------------------------------------------------------ main */

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
	if (o.against && hc_target(&against, "against", o.against) < 0)
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
	snprintf(bench_tmp, sizeof(bench_tmp), "/tmp/e2bci-bench-XXXXXX");
	if (!mkdtemp(bench_tmp))
		die("mkdtemp: %s", strerror(errno));
	floor_init();

	/* Kernel start (floor) and start -> healthy (daemon), interleaved;
	 * the first floor kernel warms the page cache and is not counted. */
	say("starts: floor kernel vs daemon, %d each", o.n_starts);
	floor_start(&fk[0]);
	for (int i = 0; i < o.n_starts; i++) {
		if (i + 1 < NFLOOR) {
			sm_add(&R.s[S_KERNEL_START], floor_start(&fk[i + 1]));
		} else {
			struct fk tmp;
			sm_add(&R.s[S_KERNEL_START], floor_start(&tmp));
			floor_free(&tmp);
		}
		daemon_spawn(&A, o.daemon, "a", "python=1");
		sm_add(&R.s[S_START_HEALTHY], daemon_wait_healthy(&A));
		daemon_scan_log(&A);
		sm_add(&R.s[S_DAEMON_KREADY], A.last_ready_ms);
		if (i + 1 < o.n_starts)
			daemon_stop(&A);
	}
	for (int i = o.n_starts + 1; i < NFLOOR; i++)
		floor_start(&fk[i]);
	if (daemon_wait_quiet(&A, START_TIMEOUT_MS) < 0)
		die("daemon a: the pool did not fill");
	sleep_ms(300);
	R.m[M_IDLE] = mem_of(A.pid);
	say("daemon a: pid %d on port %d, RSS idle %.2f MiB", (int)A.pid,
	    A.port, R.m[M_IDLE].rss);
	R.m[M_LIBFLOOR] = libfloor_mem(o.lib_floor);

	say("GET /health x %d", o.n_health);
	measure_health(&A.tg, o.n_health, &R.s[S_HEALTH]);
	say("1+1 x %d, floor and e2b-ci interleaved", o.n_exec);
	measure_one_plus_one(&A.tg, &fk[0], o.n_exec, &R.s[S_EXEC],
			     &R.s[S_FLOOR_EXEC]);
	say("stdout throughput: 20 MiB x %d each", o.n_tput);
	measure_throughput(&A.tg, &fk[0], o.n_tput, &R.s[S_STDOUT],
			   &R.s[S_FLOOR_STDOUT]);
	R.m[M_TPUT] = mem_of(A.pid);
	say("parallel: %d contexts x %d 1+1, %d rounds each", NPAR,
	    o.n_par_each, o.n_par_rounds);
	measure_parallel(&A.tg, fk, &o, &R.s[S_PARALLEL],
			 &R.s[S_FLOOR_PARALLEL]);
	for (int i = 0; i < NFLOOR; i++)
		floor_free(&fk[i]);
	say("POST /contexts x %d, warm pool", o.n_ctx);
	measure_contexts(&A.tg, &A, o.n_ctx, &R.s[S_CTX_WARM]);
	say("restart x %d, warm pool", o.n_restart);
	measure_restart(&A.tg, &A, o.n_restart, &R.s[S_RESTART_WARM]);
	daemon_wait_quiet(&A, START_TIMEOUT_MS);
	R.m[M_PRE_CONNS] = mem_of(A.pid);
	say("%d keep-alive connections + GET /health x %d", o.n_conns,
	    o.n_conn_health);
	R.conns_held = measure_conns(&A.tg, A.pid, o.n_conns, o.n_conn_health,
				     &R.s[S_CONNS_HEALTH], &R.m[M_CONNS]);
	/* The daemon hands freed heap back 2 s after traffic pauses. */
	sleep_ms(2600);
	R.m[M_AFTER] = mem_of(A.pid);
	say("daemon a: RSS after %.2f MiB", R.m[M_AFTER].rss);
	daemon_stop(&A);

	say("daemon b (--pool python=0): POST /contexts x %d, restart x %d",
	    o.n_ctx, o.n_restart);
	daemon_spawn(&B, o.daemon, "b", "python=0");
	daemon_wait_healthy(&B);
	measure_contexts(&B.tg, NULL, o.n_ctx, &R.s[S_CTX_COLD]);
	measure_restart(&B.tg, NULL, o.n_restart, &R.s[S_RESTART_COLD]);
	daemon_stop(&B);

	say("kernels: %d languages, %d starts each (+1 warm-up), idle RSS "
	    "%d s after ready",
	    NKLANG, o.n_kstarts, KIDLE_MS / 1000);
	floor_kernels(R.kl, o.n_kstarts);

	if (o.against) {
		say("against %s: the HTTP rows", o.against);
		measure_health(&against, o.n_health, &R.s[S_A_HEALTH]);
		measure_one_plus_one(&against, NULL, o.n_exec, &R.s[S_A_EXEC],
				     NULL);
		measure_parallel(&against, NULL, &o, &R.s[S_A_PARALLEL], NULL);
		measure_contexts(&against, NULL, o.n_ctx, &R.s[S_A_CTX]);
		measure_restart(&against, NULL, o.n_restart, &R.s[S_A_RESTART]);
		R.a_conns_held =
		    measure_conns(&against, 0, o.n_conns, o.n_conn_health,
				  &R.s[S_A_CONNS_HEALTH], NULL);
	}

	record_write(&o, &R, (double)(now_ns() - t_begin) / 1e9, argc, argv);

	/* Orderly teardown (the atexit handler covers the rest). */
	floor_cleanup();
	nftw(bench_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	bench_tmp[0] = '\0';
	record_free(&R);
	return 0;
}
