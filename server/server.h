/*
 * server.h: the one struct server and the map of the daemon.
 *
 * e2b-ci is a single-threaded daemon. One loop (loop.c) waits on everything:
 * libmicrohttpd's epoll fd, every kernel's ZeroMQ sockets, pipes and pidfd,
 * envd sockets, a signalfd and timers. Nothing blocks in a handler; state has
 * one owner and no locks.
 *
 * Modules, in reading order (each a .c/.h pair, names prefixed by module):
 *
 *   main.c    startup, option handling, signals, the loop, shutdown
 *   cfg_      the option table: flags, environment, defaults, --help
 *   check_    --check's kernel checks: each default language's kernelspec,
 *             launcher and the check commands its kernel.json lists
 *   log_      leveled logging to stderr, journald priorities
 *   sdn_      systemd notify: READY, STATUS, STOPPING, WATCHDOG
 *   loop_     poll(2) event loop: fd watches, ZeroMQ sockets through
 *             their ZMQ_FD edges, timers
 *   http_     libmicrohttpd glue: accepting and bounding connections,
 *             request framing, bodies, deferred answers, streams, CORS
 *   api_      the route table and handlers of the HTTP contract
 *   metrics_  counters and the Prometheus text of GET /metrics
 *   req_      validation of request bodies, language names
 *   ctx_      contexts: registry, kernel life (pool, restart, death)
 *   run_      a context's execution pipeline: queue, env helper cells,
 *             the request, restore, interrupts
 *   exec_     one execution: kernel messages -> NDJSON stream, keepalives,
 *             the output budget (per execution and over all of them)
 *   enc_      MIME bundles and events -> the NDJSON lines of the contract
 *   pool_     warm spare kernels per language, handed out once
 *   grave_    kernels on their way out, freed once reaped
 *   lang_     per-language helper cells (env vars, cwd)
 *   kres_     kernel limits and ends: cgroup v2 (or v1 pids) groups or
 *             rlimits, kernel user, OOM verdict, killing all a kernel
 *             started, the sweep after a crashed daemon
 *   kernel_   one kernel's channels: sockets, handshake, receive and
 *             send, interrupt and stop protocol; what it may make the
 *             daemon receive (message size, iopub queue and pace, cuts)
 *   kproc_    one kernel process: connection file, ports, environment,
 *             the one start entry point (start methods: exec today),
 *             pipes into the log, pid file, reaping; the runtime dir sweep
 *   child_    fork with an error pipe and the child-side reset (signals,
 *             session or group, parent-death signal, fds), shared with
 *             the kernel host
 *   wire_     Jupyter messages as bytes: framing, HMAC sign/verify
 *   flatj_    fast parse and dump of flat string-valued JSON objects
 *             (stream content, headers), their members found in place;
 *             declines the rest to jansson
 *   sha256_   SHA-256 and HMAC (SHA-NI or portable): no libcrypto
 *   jtext.h   inline UTF-8 and JSON-string byte helpers (wire, flatj, enc)
 *   dbuf_     the growable byte buffer (a cap, a sticky failure), for the
 *             daemon and the kernel host
 *   kspec_    kernelspec discovery and kernel.json parsing
 *   envd_     asynchronous GET <envd>/envs for sandbox-wide env vars
 *
 * Lifecycles and the threading model are in ARCHITECTURE.md.
 */
#ifndef E2BCI_SERVER_H
#define E2BCI_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"
#include "exec.h"
#include "kernel.h"
#include "kres.h"
#include "loop.h"
#include "metrics.h"

struct http;
struct grave;
struct pool;
struct ctx;
struct kspec;

/* Kernelspecs resolved so far, by normalized language. */
struct spec_entry {
	char *language;
	struct kspec *spec; /* NULL: known to have none */
	struct spec_entry *next;
};

struct server {
	struct cfg cfg;
	struct loop *loop;
	void *zmq;
	struct http *http;
	char **kspec_path;
	char runtime_dir[200];
	struct kernel_env kenv;
	struct kres kres;

	struct ctx *contexts; /* every context, in creation order */
	size_t ncontexts;
	struct spec_entry *specs;
	struct grave *graves; /* kernels on their way out (grave.c) */
	struct pool *pool;
	struct exec_budget backlog; /* unread output of all executions */

	char **default_languages; /* NULL-terminated, normalized */
	bool ready; /* start-up over: every default context answered or
		       FAILED */
	bool stopping;

	struct metrics metrics;
	struct {
		unsigned long long executions, kernel_starts, kernel_deaths,
		    interrupts, restarts;
	} stats;
};

/* Looks up (and caches) the kernelspec for a normalized language, mapping
 * "typescript" to the JavaScript kernel when no typescript spec exists.
 * Borrowed; NULL when none is installed. Defined in main.c. */
const struct kspec *server_spec(struct server *s, const char *language);

/* Kernel processes alive now: contexts', warm spares and exiting ones.
 * Defined in main.c. */
size_t server_kernels(const struct server *s);

/* Called by ctx_ whenever a context becomes ready: ends start-up (READY=1,
 * the pool fills) once every default context answered or FAILED; /health is
 * 200 while none is FAILED. Defined in main.c. */
void server_check_ready(struct server *s);

#endif
