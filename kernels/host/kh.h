/*
 * e2b-kernel: one Jupyter kernel in C for the languages we run ourselves.
 *
 * The host speaks the Jupyter protocol (reusing the daemon's wire, flatj,
 * sha256, loop, log, dbuf and child modules) and drives one runner child
 * process per kernel: a long-lived
 * interactive bash ("bash" mode) or a language runner that speaks NDJSON on
 * its stdin and fd 3 ("json" mode), as kernels/RUNNER-PROTOCOL.md describes.
 * kernels/host/README.md has the command line, the signal design and the
 * launcher.
 *
 * Module map, in reading order:
 *   kh_main  command line, signals, the lifecycle (start, ready, stop, exit)
 *   kh_conn  the connection file and endpoints
 *   kh_chan  the five ZeroMQ sockets: bind, verify, reply, publish, heartbeat
 *   kh_exec  requests: the handler table, the execute queue, stop_on_error,
 *            busy/idle, streams, results, errors, replies
 *   kh_proc  the runner child: spawn (child.c), the bounded stdin queue,
 *            output pipes, signals, exit
 *   kh_out   UTF-8 boundaries of streamed bytes
 *   kh_bash  bash mode: the init line, cell wrapping, markers, interrupts
 *   kh_scan  the marker scanner bash mode runs over stdout and stderr
 *   kh_json  json mode: execute/shutdown requests and runner events
 *
 * One struct kh holds all mutable state; there is one thread, the loop's.
 */
#ifndef E2B_KH_H
#define E2B_KH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "kh_chan.h"
#include "kh_out.h"
#include "kh_proc.h"
#include "loop.h"

#define KH_VERSION "1.0"

enum kh_state {
	KH_STARTING, /* runner started, not ready: requests wait */
	KH_READY,    /* requests are served */
	KH_STOPPING, /* shutdown requested: waiting for the runner to exit */
};

struct kh;

/* What differs between bash and json mode. */
struct kh_mode {
	const char *name;
	bool events; /* the runner gets the fd 3 event pipe */
	/* Allocates the mode's state before the runner starts. 0 or -errno. */
	int (*init)(struct kh *kh);
	/* The runner was started. 0 or -errno (the host exits). */
	int (*start)(struct kh *kh);
	/* Runs code (a borrowed JSON string) for kh->running. 0 or -errno;
	 * on success the mode calls kh_exec_done() exactly once later. */
	int (*execute)(struct kh *kh, json_t *code, bool silent);
	/* Interrupts kh->running (called only while one runs). */
	void (*interrupt)(struct kh *kh);
	/* Bytes the runner wrote on fd 1, 2 or 3. */
	void (*data)(struct kh *kh, enum kh_fd fd, const char *buf, size_t len);
	/* Asks the runner to quit; returns the signal to send its process
	 * group as well (0: none). */
	int (*stop)(struct kh *kh);
	/* Frees the state; called once, also after a failed init. */
	void (*cleanup)(struct kh *kh);
};

extern const struct kh_mode kh_bash_mode;
extern const struct kh_mode kh_json_mode;

/* A request waiting in the shell queue, or the running execute_request. */
struct kh_req {
	struct kh_req *next;
	struct kh_msg *msg; /* owned */
	bool execute;	    /* an execute_request (the rest waits for ready) */
	bool silent, store_history, stop_on_error;
};

struct kh {
	struct loop *loop;
	const char *language; /* --language, borrowed from argv */
	const struct kh_mode *mode;
	struct kh_bash *bash; /* bash mode state, else NULL */
	struct kh_json *json; /* json mode state, else NULL */
	struct kh_chan chan;
	struct kh_proc proc;
	enum kh_state state;
	json_t *language_info; /* owned; set when ready */
	char *banner;	       /* owned; set when ready */

	/* kh_exec */
	struct kh_req *head, *tail; /* shell requests waiting their turn */
	struct kh_req *running;	    /* the execute_request being run */
	long count;		    /* execution_count */
	json_t *parent; /* owned: header of the running or last execution */
	json_t *error;	/* owned: the running cell's error, NULL while ok */
	struct kh_out out[KH_NFD]; /* held UTF-8 tails of fd 1 and 2 */

	int sigfd; /* signalfd for SIGINT, SIGTERM, SIGHUP */
	struct loop_watch *sigw;
	bool quit; /* leave the loop */
	int exit_code;
};

/* kh_main.c: the lifecycle. */

/* The runner is ready: stores language_info (borrowed; NULL gives a
 * minimal one) and banner (may be NULL), then serves waiting requests. */
void kh_ready(struct kh *kh, json_t *language_info, const char *banner);
/* Starts an orderly stop (shutdown_request, SIGTERM): the host exits 0
 * once the runner is gone. Idempotent. */
void kh_stop(struct kh *kh);
/* Handles signals already queued on the signalfd, now. */
void kh_signals_poll(struct kh *kh);

#endif
