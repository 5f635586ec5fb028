/*
 * kh_exec: what the kernel does with requests.
 *
 * A table maps each request type to its handler; execute_requests wait in a
 * FIFO and run one at a time through the mode; everything a running cell
 * produces (streams, display data, results, errors) is published with the
 * request's header as parent, then the reply and "idle". Loop thread only.
 */
#ifndef E2B_KH_EXEC_H
#define E2B_KH_EXEC_H

#include <jansson.h>
#include <stddef.h>

#include "kh.h"

/* The kh_chan callback: takes ownership of m. arg is the struct kh. */
void kh_exec_on_msg(void *arg, struct kh_msg *m);

/* Starts waiting requests while the kernel is ready and idle. */
void kh_exec_pump(struct kh *kh);

/* Publishes len bytes of fd 1 (stdout) or 2 (stderr) as a stream message,
 * attributed to the running cell, else to the last one. */
void kh_exec_stream(struct kh *kh, enum kh_fd fd, const char *buf, size_t len);

/* Publishes one stream message whose text is the JSON string text
 * (borrowed; nothing for an empty one): output whose boundaries the runner
 * chose (a "stream" event). */
void kh_exec_stream_text(struct kh *kh, enum kh_fd fd, json_t *text);

/* Publishes the held-back end of both streams (end of a cell or of the
 * runner). */
void kh_exec_flush(struct kh *kh);

/* Publishes display_data or execute_result (data, metadata and transient
 * borrowed; metadata and transient may be NULL) for the running cell. An
 * execute_result of a silent cell is dropped. */
void kh_exec_data(struct kh *kh, const char *msg_type, json_t *data,
		  json_t *metadata, json_t *transient);

/* Publishes an error for the running cell and makes its reply an error.
 * traceback (borrowed) may be NULL: it becomes ["ename: evalue"]. Only the
 * first error of a cell is published. */
void kh_exec_error(struct kh *kh, const char *ename, const char *evalue,
		   json_t *traceback);

/* The running cell finished: flushes its output, sends execute_reply
 * (status error if kh_exec_error was called) and idle, aborts the queue
 * when the cell failed with stop_on_error, then runs the next request. */
void kh_exec_done(struct kh *kh);

/* Interrupts the running cell, if any (SIGINT or interrupt_request). */
void kh_exec_interrupt(struct kh *kh);

/* Frees the queue and the running request without answering them. */
void kh_exec_cleanup(struct kh *kh);

#endif
