/*
 * server.h: the one struct server and the map of the daemon.
 *
 * e2b-ci is a single-threaded daemon. One loop (loop.c) waits on everything:
 * libmicrohttpd's epoll fd, every kernel's ZeroMQ sockets, pipes and pidfd,
 * envd sockets, a signalfd and timers. Nothing blocks in a handler; state has
 * one owner and no locks.
 *
 * Modules, in reading order (each a .c/.h pair, names prefixed by module).
 * Calls go one way, down the way the includes go: a module calls only what
 * the headers it includes declare, each object exports only what its own
 * header declares, and the includes form no loop (make check runs
 * mk/include-graph.py; ARCHITECTURE.md shows the graph). A lower module
 * that must tell a higher one something does it through a callback the
 * higher one installed (kernel_ops, run_ops, ctx_settled below).
 *
 *   main.c    startup, option handling, signals, the loop, shutdown; ends
 *             start-up when the default contexts settled (ctx_settled)
 *   cfg_      the option table: flags, environment, defaults, --help
 *   check_    --check's kernel checks: each default language's kernelspec,
 *             launcher and the check commands its kernel.json lists
 *   log_      leveled logging to stderr, journald priorities
 *   sdn_      systemd notify: READY, STATUS, STOPPING, WATCHDOG
 *   loop_     poll(2) event loop: fd watches, ZeroMQ sockets through
 *             their ZMQ_FD edges, timers
 *   http_     libmicrohttpd glue: requests, bodies, deferred answers,
 *             streams, CORS; the contract api.c answers through
 *   lobby_    HTTP connections before and beside MHD: listening,
 *             accepting, the lobby (a first request head's framing checked
 *             before MHD sees it), header timeout, eviction at
 *             --max-connections
 *   api_      the route table and handlers of the HTTP contract; maps
 *             ctx_'s reasons to status codes; collects the gauges
 *   metrics_  counters, and the Prometheus text of GET /metrics from them
 *             and the gauges it is given
 *   req_      validation of request bodies, language names
 *   ctx_      contexts: registry, kernel life (pool, restart, death,
 *             FAILED and retries); gives its run the kernel once ready
 *   run_      a context's execution pipeline (struct run, embedded in the
 *             context): queue, env helper cells, the request, restore,
 *             interrupts, deadlines; asks for a new kernel via run_ops
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
 *             the one start entry point (the kernelspec's zygote, asked
 *             asynchronously, else exec), pipes into the log, pid file, reaping
 *             (and of the orphans the daemon adopts as a subreaper); the
 *             runtime dir sweep
 *   zyg_      the zygotes: one fork server per Python or R kernelspec
 *             (kernels/ZYGOTE-PROTOCOL.md), started, watched, restarted
 *             with back-off, asked for kernels by kproc_; the answers
 *             come from the loop
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
 *   kspec_    kernelspec discovery, kernel.json parsing, the daemon's cache
 *             of kernelspecs by language
 *   errmsg_   the reason a fallible function writes for its caller
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
#include "kspec.h"
#include "loop.h"
#include "metrics.h"
#include "run.h"

struct http;
struct grave;
struct pool;
struct ctx;

struct server {
	struct cfg cfg;
	struct loop *loop;
	void *zmq;
	struct http *http;
	struct kspec_cache specs; /* kernelspecs by language (kspec.c) */
	char runtime_dir[200];
	struct kernel_env kenv;
	struct run_env run_env; /* what every context's run shares */
	struct kres kres;

	struct ctx *contexts; /* every context, in creation order */
	size_t ncontexts;
	struct grave *graves; /* kernels on their way out (grave.c) */
	struct pool *pool;
	struct exec_budget backlog; /* unread output of all executions */

	char **default_languages; /* NULL-terminated, normalized */
	bool ready; /* start-up over: every default context answered or
		       FAILED */
	/* Told by ctx_ whenever a context turns READY or FAILED (NULL: nobody
	 * listens). main.c's hook ends start-up once every default context
	 * did. */
	void (*ctx_settled)(struct server *s);
	bool stopping;

	struct metrics metrics; /* counters; the gauges are read at scrape */
};

#endif
