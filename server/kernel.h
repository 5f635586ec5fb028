/*
 * kernel: one Jupyter kernel, the client end of its channels.
 *
 * Has kproc_ start the process (the kernelspec's argv in its own session,
 * so the process group can be interrupted or killed as a whole, in a given
 * cwd, with the connection file and the pipes drained into the log; its
 * exit comes through a pidfd). Owns the DEALER (shell, control) and SUB
 * (iopub) sockets. Runs the readiness handshake (kernel_info_request every
 * 500 ms until a reply and some iopub traffic) and then hands every
 * verified message to its owner; interrupts and stops by the Jupyter
 * protocol or signals. Loop thread only. It knows nothing of contexts or
 * executions.
 */
#ifndef E2BCI_KERNEL_H
#define E2BCI_KERNEL_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>
#include <zmq.h>

#include "loop.h"

struct kspec;
struct kernel;
struct wire_msg;

enum kernel_chan { KERNEL_SHELL, KERNEL_CONTROL, KERNEL_IOPUB, KERNEL_NCHAN };

enum kernel_state {
	KERNEL_STARTING, /* spawned, handshake running */
	KERNEL_READY,	 /* handshake done: requests may be sent */
	KERNEL_STOPPING, /* kernel_stop() called, waiting for exit */
	KERNEL_EXITED, /* process reaped; the object only awaits kernel_free */
};

/* Callbacks into the owner; each may call kernel_free() on k only from
 * on_exit. on_ready and on_msg may be NULL (an owner that only waits for
 * the exit). */
struct kernel_ops {
	/* The handshake succeeded. */
	void (*on_ready)(void *arg, struct kernel *k);
	/* A verified message that is not part of the handshake (borrowed).
	 * Output messages (stream, execute_result, display_data,
	 * update_display_data) come with their content unparsed (content
	 * NULL, raw_content set: wire_decode_lazy); wire_msg_parse_content
	 * parses it.
	 * After a message part over max_msg was refused, what it cost the
	 * last execute_request comes this way too, made up: a stderr stream
	 * notice and the idle status on iopub, or an error execute_reply
	 * (KernelMessageTooLarge) on shell. */
	void (*on_msg)(void *arg, struct kernel *k, enum kernel_chan ch,
		       struct wire_msg *m);
	/* The process exited (status as from waitpid) or the handshake timed
	 * out (then the process group was killed first and reaped). */
	void (*on_exit)(void *arg, struct kernel *k, int status,
			bool was_ready);
};

struct kernel_env {
	const char *runtime_dir; /* private 0700 dir for connection files */
	void *zmq;		 /* the daemon's ZeroMQ context */
	struct loop *loop;
	long start_timeout_ms;
	const struct kres *kres; /* limits and user for kernels; may be NULL */
	size_t max_msg; /* largest frame taken from a kernel; 0: no limit */
};

/* Spawns a kernel for spec in cwd. Borrowed args; spec must outlive k.
 * Returns the kernel (state STARTING) or NULL with a reason in err (fork,
 * exec, connection file or socket failure). */
struct kernel *kernel_start(const struct kernel_env *env,
			    const struct kspec *spec, const char *cwd,
			    const struct kernel_ops *ops, void *arg, char *err,
			    size_t errlen);

/* Sends a request on shell or control; content is borrowed. The new msg_id
 * goes to msg_id_out (37 bytes) when not NULL. Returns 0 or -errno. */
int kernel_send(struct kernel *k, enum kernel_chan ch, const char *msg_type,
		json_t *content, char *msg_id_out);

/* Sends an execute_request for code (len bytes) on shell, the way the
 * daemon always does: allow_stdin false; a user cell with store_history
 * and stop_on_error, a helper cell (silent) with neither. Returns 0 or
 * -errno; the msg_id goes to msg_id_out when not NULL. */
int kernel_execute(struct kernel *k, const char *code, size_t len, bool silent,
		   char *msg_id_out);

/* Interrupts the running cell: SIGINT to the process group, or an
 * interrupt_request on control for interrupt_mode "message". */
int kernel_interrupt(struct kernel *k);

/* Starts an asynchronous stop: a ready kernel gets a shutdown_request on
 * control and 500 ms to exit; then (or at once when it was not ready)
 * SIGTERM to the process group, and SIGKILL grace_ms later. When the kernel
 * is reaped, whatever it started is killed (its cgroup, else its session),
 * and on_exit runs as usual. */
void kernel_stop(struct kernel *k, long grace_ms);

/* Kills the process group (SIGKILL), reaps it, closes everything and removes
 * the connection file and ipc sockets. Blocking for at most a few ms; used on
 * shutdown and by free. Accepts NULL. */
void kernel_free(struct kernel *k);

/* The most frames of one message kept by kernel_recv_frames (identities,
 * delimiter, signature, four parts, buffers). */
#define KERNEL_MAX_FRAMES 64

/* Receives one multipart message from socket s into parts (at most
 * KERNEL_MAX_FRAMES frames are kept; a longer message is read to its end
 * and dropped). Returns the frame count (the caller closes parts[0..n-1]),
 * 0 when nothing is waiting, or -1 on a failed receive or an overlong
 * message, with every frame received so far closed. Exposed for its unit
 * test; the receive path of kernel_ uses it. */
int kernel_recv_frames(void *s, zmq_msg_t *parts);

/* Kernels started and not yet freed. Each holds open ZeroMQ sockets, which
 * make zmq_ctx_term() wait forever. */
unsigned kernel_live(void);

/* Hands the kernel's callbacks to a new owner (e.g. a graveyard entry that
 * only waits for the exit). */
void kernel_set_owner(struct kernel *k, const struct kernel_ops *ops,
		      void *arg);

enum kernel_state kernel_state(const struct kernel *k);
pid_t kernel_pid(const struct kernel *k);
/* Whether the kernelspec's zygote forked it (else it was exec'd). */
bool kernel_forked(const struct kernel *k);
const char *kernel_id(const struct kernel *k);
/* After the exit: whether the OOM killer ended the kernel. */
bool kernel_oom_killed(const struct kernel *k);
/* The last few lines the kernel wrote to stderr (each cut to a couple of
 * hundred bytes), oldest first, joined by " | ", written into buf (len
 * bytes, NUL-terminated, "" when none). Also after the exit, until
 * kernel_free. Returns buf. */
const char *kernel_stderr_tail(const struct kernel *k, char *buf, size_t len);

/* The kernel_info_reply content (borrowed), NULL before ready. */
json_t *kernel_info(const struct kernel *k);

#endif
