/*
 * bench.h: what the files of `make bench` share. Reading order:
 *
 *   util.c     clocks, messages, samples, /proc memory readers, and the
 *              child processes killed on every exit path
 *   hc.c       a poll-based HTTP/1.1 keep-alive client over raw sockets
 *   daemon.c   the daemon under test: spawn, wait healthy or quiet, stop;
 *              the RSS of libfloor (its libraries alone)
 *   floor.c    the floor: the same kernelspec driven directly over ZeroMQ
 *              through the daemon's own kernel_ module; kernels per language
 *   measure.c  the HTTP measurements, each next to its floor
 *   record.c   the measurements as JSON
 *   bench.c    main: options and the run plan
 *   report.py  rows (a table), the printed table, results JSON, markdown
 *
 * Single-threaded; every wait is bounded.
 */
#ifndef E2BCI_BENCH_H
#define E2BCI_BENCH_H

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct kernel;

#define BENCH_ALARM_S	 900 /* the whole run, whatever happens */
#define MAX_DAEMONS	 4
#define MAX_FLOOR	 8
#define NFLOOR		 4 /* floor kernels: one per parallel context */
#define NPAR		 4 /* parallel contexts */
#define REQ_TIMEOUT_MS	 30000
#define START_TIMEOUT_MS 60000
#define MIB		 (1024.0 * 1024.0)

/* ------------------------------------------------------------- util.c */

uint64_t now_ns(void);
double ns_ms(uint64_t ns);
void sleep_ms(long ms);
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Exits 1; the atexit handler stops every child. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* realloc that dies instead of returning NULL. */
void *xrealloc(void *p, size_t n);

/* Samples of one measurement, in ms (or any unit). */
struct samples {
	double *v;
	size_t n, cap;
};

void sm_add(struct samples *s, double x);
/* Percentile q in [0,1], linear between closest ranks; NAN when empty. */
double sm_pct(struct samples *s, double q);
void sm_free(struct samples *s);
/* New reference: {n, min, p50, p99, max}, or null when empty. */
json_t *sm_json(struct samples *s);

/* Memory of one process, in MiB: VmRSS, RssAnon, RssFile, VmHWM. */
struct mem {
	double rss, anon, file, hwm;
};

/* NAN fields when the process is gone. */
struct mem mem_of(pid_t pid);
/* New reference. */
json_t *mem_json(const struct mem *m);
/* Sum of VmRSS (MiB) over root and all its descendants; the number of
 * processes goes to nprocs. NAN when none was readable. */
double tree_rss(pid_t root, int *nprocs);

/* The private temp dir (runtime files, cwd, logs), removed at exit. */
extern char bench_tmp[128];

/* Children killed on every exit path (normal end, die, fatal signals). */
enum child_kind { CHILD_DAEMON, CHILD_KERNEL };
void child_track(enum child_kind kind, pid_t pid);
void child_forget(enum child_kind kind, pid_t pid);
/* Kills every tracked child and removes bench_tmp; async-signal-safe. */
void cleanup_all(void);
void on_fatal_signal(int sig);

/* --------------------------------------------------------------- hc.c */

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

/* "http://host:port" → address and Host header. Returns 0 or -1. */
int hc_target(struct target *t, const char *name, const char *url);
void hc_init(struct hc *h, const struct target *tg);
void hc_close(struct hc *h);
void hc_free(struct hc *h);
/* Starts a request; the answer arrives through hc_run. With stream, the
 * body is NDJSON, scanned line by line (saw_end, saw_two, stdout_bytes). */
void hc_request(struct hc *h, const char *method, const char *path,
		const char *body, bool stream);
/* Runs the given connections until until(arg) or timeout_ms. Returns 0, or
 * -1 on timeout or when nothing is in flight any more. */
int hc_run(struct hc **hs, size_t n, bool (*until)(void *), void *arg,
	   long timeout_ms);
/* One request, waited for. Returns the status, or -1 (error, timeout). */
int hc_do(struct hc *h, const char *method, const char *path, const char *body,
	  bool stream, long timeout_ms);

/* ----------------------------------------------------------- daemon.c */

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

/* Starts bin on a free loopback port with --pool pool (e.g. "python=1"). */
void daemon_spawn(struct daemon *d, const char *bin, const char *tag,
		  const char *pool);
/* Polls /health until 200; returns spawn -> first 200 in ms. */
double daemon_wait_healthy(struct daemon *d);
/* Waits until every kernel the daemon started has answered and none was
 * started for 150 ms (the pool is full again: it starts a taken spare's
 * successor on the loop's next turn, after the log showed the others
 * ready). Returns 0, or -1 after timeout_ms. */
int daemon_wait_quiet(struct daemon *d, long timeout_ms);
/* Counts kernel start and ready lines in the daemon's log so far. */
void daemon_scan_log(struct daemon *d);
void daemon_stop(struct daemon *d);
/* RSS of tests/bench/libfloor.c (the daemon's libraries, initialised and
 * idle): started, read once it says "ready", killed. */
struct mem libfloor_mem(const char *path);

/* ------------------------------------------------------------ floor.c */

/* One floor kernel and its one execution in flight. */
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

/* Every language the daemon serves (README.md, "Languages"). */
#define NKLANG	 6
#define KIDLE_MS 2000 /* idle RSS is read this long after ready */

struct klang {
	const char *language;
	char spec[64];	  /* kernelspec name; "" when not installed */
	char status[160]; /* "ok", "not installed", "failed: ..." */
	struct samples start;
	double rss_mib; /* kernel pid + descendants, sum of VmRSS */
	int nprocs;
};

/* The python kernelspec the daemon would use, a ZeroMQ context, a loop. */
void floor_init(void);
void floor_cleanup(void);
/* Starts a floor kernel; returns spawn -> handshake done in ms. */
double floor_start(struct fk *f);
void floor_free(struct fk *f);
/* One execution on the floor; returns ms from send to reply+idle. */
double floor_exec(struct fk *f, const char *code);
/* NPAR kernels each running n_each 1+1 at once; returns executes/s. */
double floor_parallel_round(struct fk *f, int n_each);
/* n starts of each language's kernel, one at a time (plus one uncounted
 * start that warms the page cache); the idle RSS of the tree of the last
 * one, KIDLE_MS after it was ready. */
void floor_kernels(struct klang *kl, int n);

/* ---------------------------------------------------------- measure.c */

struct opts {
	const char *daemon, *out, *against, *lib_floor;
	int n_exec, n_health, n_ctx, n_restart, n_tput, n_par_rounds,
	    n_par_each, n_conns, n_conn_health, n_starts, n_kstarts;
	bool quick;
};

/* Each measures tg, next to the floor f when given (samples interleaved,
 * alternating which side goes first). */
void measure_health(const struct target *tg, int n, struct samples *out);
void measure_one_plus_one(const struct target *tg, struct fk *f, int n,
			  struct samples *d_out, struct samples *f_out);
void measure_throughput(const struct target *tg, struct fk *f, int n,
			struct samples *d_out, struct samples *f_out);
void measure_parallel(const struct target *tg, struct fk *f,
		      const struct opts *o, struct samples *d_out,
		      struct samples *f_out);
/* With d set, waits for the daemon's kernels (the pool) before each. */
void measure_contexts(const struct target *tg, struct daemon *d, int n,
		      struct samples *out);
void measure_restart(const struct target *tg, struct daemon *d, int n,
		     struct samples *out);
/* Holds n keep-alive connections, measures nh /health on one more (and the
 * daemon's memory when pid > 0); returns how many are still served. */
int measure_conns(const struct target *tg, pid_t pid, int n, int nh,
		  struct samples *health, struct mem *rss);

/* ----------------------------------------------------------- record.c */

/* Every measured series, one sample list each. record.c's SERIES table
 * names it in the JSON: raw.<key>, or against.<key> for the A_ ones (the
 * same scenarios run against --against). A new row of the report starts
 * as a pair of series here: the new measurement and its baseline. */
enum series {
	S_KERNEL_START,	  /* floor: kernel spawn -> ready */
	S_START_HEALTHY,  /* daemon spawn -> first 200 from /health */
	S_DAEMON_KREADY,  /* the daemon's own "kernel ... ready in" lines */
	S_HEALTH,	  /* GET /health */
	S_EXEC,		  /* 1+1 to end_of_execution */
	S_FLOOR_EXEC,	  /* 1+1 on the floor, to reply + idle */
	S_STDOUT,	  /* 20 MiB of stdout, MiB/s */
	S_FLOOR_STDOUT,	  /* the same on the floor */
	S_PARALLEL,	  /* NPAR contexts at once, executes/s */
	S_FLOOR_PARALLEL, /* NPAR floor kernels at once */
	S_CTX_WARM,	  /* POST /contexts, warm pool */
	S_CTX_COLD,	  /* POST /contexts, no pool (daemon B) */
	S_RESTART_WARM,	  /* POST /contexts/{id}/restart, warm pool */
	S_RESTART_COLD,	  /* restart, no pool (daemon B) */
	S_CONNS_HEALTH,	  /* GET /health while 1000 connections are held */
	S_A_HEALTH,
	S_A_EXEC,
	S_A_CTX,
	S_A_RESTART,
	S_A_PARALLEL,
	S_A_CONNS_HEALTH,
	S_COUNT
};

/* The daemon's memory at points of the run: raw.memory.<key>. */
enum snapshot {
	M_LIBFLOOR,  /* tests/bench/libfloor.c, idle: the libraries alone */
	M_IDLE,	     /* daemon A, pool full, before any request */
	M_TPUT,	     /* after the stdout throughput rows */
	M_PRE_CONNS, /* before the 1000 connections */
	M_CONNS,     /* while they are held */
	M_AFTER,     /* 2.6 s after the last request */
	M_COUNT
};

struct results {
	struct samples s[S_COUNT];
	struct mem m[M_COUNT];
	int conns_held, a_conns_held;
	struct klang kl[NKLANG]; /* kernels per language */
};

/* Writes the measurements (JSON) that tests/bench/report.py turns into
 * the rows, the table and the results; secs: the run's duration. */
void record_write(const struct opts *o, struct results *R, double secs,
		  int argc, char **argv);
void record_free(struct results *R);

#endif
