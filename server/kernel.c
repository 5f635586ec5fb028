/*
 * kernel: one Jupyter kernel, the client end of its channels.
 *
 * The process (connection file, spawn, pipes, pid file, reaping, the
 * runtime dir's sweep) is kproc.c's; this file owns what is spoken with
 * it. Lifecycle: kernel_start has kproc prepare and start the process,
 * then connects the DEALER (shell, control) and SUB (iopub) sockets. The
 * handshake resends kernel_info_request every 500 ms until both a reply
 * and any iopub message arrived (the SUB slow-joiner race), then on_ready
 * runs. When kproc reports the exit, the sockets are closed and on_exit
 * runs exactly once.
 *
 * Receiving is bounded: no message part over env.max_msg is taken (libzmq
 * drops such a connection; kernel_cut tells the owner what was lost and
 * connects again), iopub queues two messages here and is read at most
 * KERNEL_TURN_BYTES per loop turn on average, so a kernel can make the
 * daemon hold three parts at most.
 *
 * Invariants: every socket belongs to the loop thread; a message is handed to
 * the owner only after its HMAC was verified (or made here, after a cut).
 * Deliberately absent: heartbeats (process exit is the death signal here,
 * and ipykernel answers heartbeats from a thread even while wedged) and the
 * stdin channel (the daemon always sends allow_stdin: false).
 */
#include "kernel.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>
#include <zmq.h>

#include "kproc.h"
#include "kspec.h"
#include "log.h"
#include "wire.h"

/* kernel_info_request resends: the first ones are lost while the kernel has
 * not bound its sockets yet (and the SUB slow-joiner misses early iopub), so
 * start fast and back off to the usual 500 ms. */
#define KERNEL_HANDSHAKE_FIRST_MS     20
#define KERNEL_HANDSHAKE_EARLY_MS     100
#define KERNEL_HANDSHAKE_EARLY_FOR_MS 3000
#define KERNEL_HANDSHAKE_MS	      500
/* How long a stop waits for the kernel to act on its shutdown_request
 * before the SIGTERM (a kernel busy in a cell does not; measured here, an
 * idle ipykernel exits in 0.26-0.37 s, IRkernel in 0.06-0.13 s). */
#define KERNEL_SHUTDOWN_WAIT_MS 500
#define KERNEL_BATCH		256
/* iopub bytes taken per loop turn, on average: a turn lets libmicrohttpd
 * write up to 8 x 16 KiB to each stream (http.c), so a client that reads as
 * fast as the kernel writes never sees its backlog grow. A larger message
 * is taken whole and paid off over the following turns. */
#define KERNEL_TURN_BYTES (64 * 1024)
/* iopub messages libzmq may queue in the daemon: the rest waits in the
 * kernel (our kernels queue without limit rather than drop), so what the
 * daemon holds for a kernel is this many messages plus the one being
 * received. The price: each message read wakes libzmq's I/O thread (its
 * low-water mark is 1 here), and a 1+1 cell took ~0.15 ms longer than
 * with no limit, measured interleaved (0.37 ms with a single slot, where
 * every message also waited for that round trip). */
#define KERNEL_IOPUB_HWM 2
/* libzmq's retry interval while a kernel has not bound its sockets yet. */
#define KERNEL_RECONNECT_MS 10
/* How long a broken channel stays broken before it is called a cut: a
 * kernel that exits closes its sockets a moment before its pidfd reports
 * the exit, and a dying kernel is not a cut. */
#define KERNEL_CUT_GRACE_MS 250

struct kernel {
	struct kproc proc; /* the process: id, key, pid, files, pipes */
	char session[37];
	enum kernel_state state;
	const struct kspec *spec;
	struct kernel_env env;
	const struct kernel_ops *ops;
	void *arg;

	void *sock[KERNEL_NCHAN];
	struct loop_watch *sockw[KERNEL_NCHAN];
	/* Monitors of shell and iopub (kernel_cut): PAIR ends, watches, and
	 * the grace timer of a channel whose connection broke. */
	void *mon[KERNEL_NCHAN];
	struct loop_watch *monw[KERNEL_NCHAN];
	struct loop_timer cut_timer[KERNEL_NCHAN];
	size_t iopub_owed; /* iopub bytes taken ahead of KERNEL_TURN_BYTES */
	/* The last execute_request and what of it came back, so a lost
	 * message can be reported to the owner (kernel_cut). */
	struct {
		char id[37];
		bool replied, idle;
	} req;
	bool rejoin;	  /* iopub connects again after a cut */
	bool rejoin_live; /* ...and delivered something since */
	struct kernel_sockref {
		struct kernel *k;
		enum kernel_chan ch;
	} ref[KERNEL_NCHAN];

	bool got_info, got_iopub;
	json_t *info;
	struct loop_timer hs_timer; /* handshake resend */
	uint64_t hs_interval;
	struct loop_timer
	    dead_timer;	    /* start deadline, then the stop's escalation */
	long stop_grace_ms; /* from the SIGTERM to the SIGKILL */
	uint64_t started_ms;
};

static const char *const chan_name[KERNEL_NCHAN] = {"shell", "control",
						    "iopub"};
/* Each channel's port in the connection file. */
static const enum kproc_port chan_port[KERNEL_NCHAN] = {
    KPROC_SHELL, KPROC_CONTROL, KPROC_IOPUB};

void kernel_set_owner(struct kernel *k, const struct kernel_ops *ops, void *arg)
{
	k->ops = ops;
	k->arg = arg;
}

enum kernel_state kernel_state(const struct kernel *k)
{
	return k->state;
}

pid_t kernel_pid(const struct kernel *k)
{
	return k->proc.pid;
}

bool kernel_forked(const struct kernel *k)
{
	return k->proc.forked;
}

const char *kernel_id(const struct kernel *k)
{
	return k->proc.id;
}

bool kernel_oom_killed(const struct kernel *k)
{
	return k->proc.oom;
}

const char *kernel_stderr_tail(const struct kernel *k, char *buf, size_t len)
{
	return kproc_stderr_tail(&k->proc, buf, len);
}

json_t *kernel_info(const struct kernel *k)
{
	return k->info;
}

/* Closes the sockets and stops the timers. */
static void kernel_close_channels(struct kernel *k)
{
	for (int c = 0; c < KERNEL_NCHAN; c++) {
		loop_timer_disarm(k->env.loop, &k->cut_timer[c]);
		loop_del(k->env.loop, k->monw[c]);
		k->monw[c] = NULL;
		/* The monitor first: libzmq's I/O thread sends its events
		 * blocking, and would wait forever for a closed reader. */
		if (k->mon[c]) {
			zmq_socket_monitor(k->sock[c], NULL, 0);
			zmq_close(k->mon[c]);
		}
		k->mon[c] = NULL;
		loop_del(k->env.loop, k->sockw[c]);
		k->sockw[c] = NULL;
		if (k->sock[c])
			zmq_close(k->sock[c]);
		k->sock[c] = NULL;
	}
	loop_timer_disarm(k->env.loop, &k->hs_timer);
	loop_timer_disarm(k->env.loop, &k->dead_timer);
}

/* kproc reaped the process (everything it started is dead, its files are
 * gone): the channels go, and the owner hears it once. */
static void kernel_exited(void *arg, int status)
{
	struct kernel *k = arg;
	bool was_ready = k->state == KERNEL_READY;

	k->state = KERNEL_EXITED;
	kernel_close_channels(k);
	k->ops->on_exit(k->arg, k, status, was_ready);
}

/* Watches channel ch for a broken connection: libzmq reports it on an
 * inproc PAIR. Control is not watched: nothing waits for its replies. */
static int kernel_monitor(struct kernel *k, enum kernel_chan ch)
{
	char ep[96];
	int zero = 0;

	snprintf(ep, sizeof(ep), "inproc://e2bci-mon-%s-%d", k->proc.id,
		 (int)ch);
	if (zmq_socket_monitor(k->sock[ch], ep, ZMQ_EVENT_DISCONNECTED) < 0)
		return -1;
	k->mon[ch] = zmq_socket(k->env.zmq, ZMQ_PAIR);
	if (!k->mon[ch])
		return -1;
	zmq_setsockopt(k->mon[ch], ZMQ_LINGER, &zero, sizeof(zero));
	return zmq_connect(k->mon[ch], ep);
}

static int kernel_open_sockets(struct kernel *k)
{
	static const int types[KERNEL_NCHAN] = {ZMQ_DEALER, ZMQ_DEALER,
						ZMQ_SUB};
	char ep[600];
	int zero = 0, hwm = KERNEL_IOPUB_HWM, ivl = KERNEL_RECONNECT_MS;
	int64_t max = k->env.max_msg ? (int64_t)k->env.max_msg : -1;

	for (int c = 0; c < KERNEL_NCHAN; c++) {
		void *s = zmq_socket(k->env.zmq, types[c]);
		if (!s)
			return -errno;
		k->sock[c] = s;
		zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
		/* The daemon connects before the kernel has bound its sockets;
		 * libzmq's default retry every 100 ms alone would add up to
		 * 100 ms to a forked kernel's start. */
		zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
		/* libzmq would take a part of any size whole; over the limit it
		 * drops the connection instead (kernel_cut). */
		zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max));
		/* iopub: a short queue here, the rest waits in the kernel.
		 * Replies on shell and control are few: no limit there. */
		zmq_setsockopt(s, ZMQ_RCVHWM, c == KERNEL_IOPUB ? &hwm : &zero,
			       sizeof(int));
		if (types[c] == ZMQ_DEALER)
			zmq_setsockopt(s, ZMQ_ROUTING_ID, k->session,
				       strlen(k->session));
		else
			zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
		if (c != KERNEL_CONTROL && kernel_monitor(k, c) < 0)
			return -errno;
		kproc_endpoint(&k->proc, chan_port[c], ep, sizeof(ep));
		if (zmq_connect(s, ep) < 0)
			return -errno;
	}
	return 0;
}

static void kernel_on_sock(void *arg, short revents);
static void kernel_on_monitor(void *arg, short revents);

static int kernel_watch_all(struct kernel *k)
{
	struct loop *l = k->env.loop;

	for (int c = 0; c < KERNEL_NCHAN; c++) {
		k->ref[c].k = k;
		k->ref[c].ch = (enum kernel_chan)c;
		k->sockw[c] = loop_add_zmq(l, k->sock[c], ZMQ_POLLIN,
					   kernel_on_sock, &k->ref[c]);
		if (!k->sockw[c])
			return -ENOMEM;
		if (k->mon[c] &&
		    !(k->monw[c] = loop_add_zmq(l, k->mon[c], ZMQ_POLLIN,
						kernel_on_monitor, &k->ref[c])))
			return -ENOMEM;
	}
	return kproc_watch(&k->proc, kernel_exited, k);
}

static void kernel_handshake_tick(void *arg, short revents);
static void kernel_deadline(void *arg, short revents);

/* Kernel objects not yet freed, for the check before zmq_ctx_term(). */
static unsigned kernel_nlive;

unsigned kernel_live(void)
{
	return kernel_nlive;
}

struct kernel *kernel_start(const struct kernel_env *env,
			    const struct kspec *spec, const char *cwd,
			    const struct kernel_ops *ops, void *arg, char *err,
			    size_t errlen)
{
	struct kernel *k = calloc(1, sizeof(*k));
	uuid_t u;

	if (!k) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	kernel_nlive++;
	k->env = *env;
	k->spec = spec;
	k->ops = ops;
	k->arg = arg;
	k->state = KERNEL_STARTING;
	k->started_ms = loop_now_ms();
	kproc_init(&k->proc, spec, env->loop, env->runtime_dir, env->kres);
	uuid_generate_random(u);
	uuid_unparse_lower(u, k->session);
	if (kproc_prepare(&k->proc, err, errlen) < 0 ||
	    kproc_spawn(&k->proc, cwd, err, errlen) < 0)
		goto fail;
	if (kernel_open_sockets(k) < 0 || kernel_watch_all(k) < 0) {
		snprintf(err, errlen, "cannot connect to kernel: %s",
			 zmq_strerror(errno));
		goto fail;
	}
	/* A kernel asked of a zygote gets its pid from the loop (kproc.h);
	 * the handshake runs meanwhile: the endpoints are known. */
	if (k->proc.pid > 0)
		log_info("kernel %.8s (%s, pid %d) starting in %s over %s",
			 k->proc.id, spec->name, (int)k->proc.pid, cwd,
			 k->proc.ipc_prefix ? "ipc" : "tcp");
	else
		log_info("kernel %.8s (%s, from its zygote) starting in %s "
			 "over %s",
			 k->proc.id, spec->name, cwd,
			 k->proc.ipc_prefix ? "ipc" : "tcp");
	kernel_handshake_tick(k, 0);
	loop_timer_arm(env->loop, &k->dead_timer, env->start_timeout_ms,
		       kernel_deadline, k);
	return k;
fail:
	kernel_free(k);
	return NULL;
}

static void kernel_handshake_tick(void *arg, short revents)
{
	struct kernel *k = arg;

	(void)revents;
	if (k->state != KERNEL_STARTING)
		return;
	json_t *c = json_object();
	kernel_send(k, KERNEL_SHELL, "kernel_info_request", c, NULL);
	json_decref(c);
	k->hs_interval =
	    k->hs_interval ? k->hs_interval * 2 : KERNEL_HANDSHAKE_FIRST_MS;
	/* Every 100 ms while a typical kernel is still starting (a ready kernel
	 * answers within a few ms, so readiness is seen at most ~100 ms late),
	 * then every 500 ms. */
	if (k->hs_interval > KERNEL_HANDSHAKE_EARLY_MS &&
	    loop_now_ms() - k->started_ms < KERNEL_HANDSHAKE_EARLY_FOR_MS)
		k->hs_interval = KERNEL_HANDSHAKE_EARLY_MS;
	if (k->hs_interval > KERNEL_HANDSHAKE_MS)
		k->hs_interval = KERNEL_HANDSHAKE_MS;
	loop_timer_arm(k->env.loop, &k->hs_timer, k->hs_interval,
		       kernel_handshake_tick, k);
}

/* The start deadline passed, or a stop's grace ran out: kill for good. The
 * pidfd then reports the exit as usual. */
static void kernel_deadline(void *arg, short revents)
{
	struct kernel *k = arg;

	(void)revents;
	if (k->state == KERNEL_STARTING)
		log_warnx("kernel %.8s (%s) did not answer within %ld ms; "
			  "killing it",
			  k->proc.id, k->spec->name, k->env.start_timeout_ms);
	kproc_signal(&k->proc, SIGKILL);
}

static void kernel_check_ready(struct kernel *k)
{
	if (k->state != KERNEL_STARTING || !k->got_info || !k->got_iopub)
		return;
	k->state = KERNEL_READY;
	loop_timer_disarm(k->env.loop, &k->hs_timer);
	loop_timer_disarm(k->env.loop, &k->dead_timer);
	log_info("kernel %.8s (%s) ready in %llu ms", k->proc.id, k->spec->name,
		 (unsigned long long)(loop_now_ms() - k->started_ms));
	if (k->ops->on_ready)
		k->ops->on_ready(k->arg, k);
}

static void kernel_rejoin(struct kernel *k, const struct wire_msg *m);

/* Notes the reply and the idle status of the last execute_request. */
static void kernel_track(struct kernel *k, enum kernel_chan ch,
			 const struct wire_msg *m)
{
	const char *st;

	if (ch == KERNEL_SHELL && strcmp(m->msg_type, "execute_reply") == 0)
		k->req.replied = true;
	if (ch != KERNEL_IOPUB || strcmp(m->msg_type, "status") != 0)
		return;
	st = json_string_value(json_object_get(m->content, "execution_state"));
	if (st && strcmp(st, "idle") == 0)
		k->req.idle = true;
}

static void kernel_dispatch(struct kernel *k, enum kernel_chan ch,
			    struct wire_msg *m)
{
	if (k->state == KERNEL_STARTING) {
		if (ch == KERNEL_IOPUB)
			k->got_iopub = true;
		if (ch == KERNEL_SHELL &&
		    strcmp(m->msg_type, "kernel_info_reply") == 0) {
			k->got_info = true;
			json_decref(k->info);
			k->info = json_incref(m->content);
		}
		kernel_check_ready(k);
		return;
	}
	if (k->state != KERNEL_READY)
		return;
	if (m->parent_msg_id && strcmp(m->parent_msg_id, k->req.id) == 0)
		kernel_track(k, ch, m);
	if (k->ops->on_msg)
		k->ops->on_msg(k->arg, k, ch, m);
	if (k->rejoin && ch == KERNEL_IOPUB && k->state == KERNEL_READY)
		kernel_rejoin(k, m);
}

int kernel_recv_frames(void *s, zmq_msg_t *parts)
{
	zmq_msg_t extra;
	int n = 0, more = 1, rc = -1;

	while (more) {
		/* Frames past the last slot are received and closed at once:
		 * the message is read to its end, then dropped. */
		zmq_msg_t *p = n < KERNEL_MAX_FRAMES ? &parts[n] : &extra;
		zmq_msg_init(p);
		if (zmq_msg_recv(p, s, n ? 0 : ZMQ_DONTWAIT) < 0) {
			if (errno == EAGAIN && n == 0)
				rc = 0;
			zmq_msg_close(p);
			goto out;
		}
		more = zmq_msg_more(p);
		if (p == &extra)
			zmq_msg_close(p);
		n++;
	}
	if (n <= KERNEL_MAX_FRAMES)
		return n;
out:
	/* Every frame kept so far, the first one included. */
	for (int i = 0; i < n && i < KERNEL_MAX_FRAMES; i++)
		zmq_msg_close(&parts[i]);
	return rc;
}

static void kernel_close_frames(zmq_msg_t *parts, int *n)
{
	for (int i = 0; i < *n; i++)
		zmq_msg_close(&parts[i]);
	*n = 0;
}

/* Handles one message; returns 1 when one was handled (its size in bytes
 * added to *bytes), 0 when the socket is drained, -1 on error. */
static int kernel_recv_one(struct kernel *k, enum kernel_chan ch, size_t *bytes)
{
	zmq_msg_t parts[KERNEL_MAX_FRAMES];
	struct wire_buf bufs[KERNEL_MAX_FRAMES];
	struct wire_msg m;
	int n = kernel_recv_frames(k->sock[ch], parts), d;

	if (n <= 0) {
		if (n < 0)
			log_warnx("kernel %.8s: %s receive failed or message "
				  "too long",
				  k->proc.id, chan_name[ch]);
		return n < 0 ? 1 : 0;
	}
	for (int i = 0; i < n; i++) {
		bufs[i].data = zmq_msg_data(&parts[i]);
		bufs[i].len = zmq_msg_size(&parts[i]);
		*bytes += bufs[i].len;
	}
	d = wire_decode_lazy(k->proc.key, strlen(k->proc.key), bufs, (size_t)n,
			     &m);
	/* A stream message borrows its content from the frames; any other
	 * is parsed and lets them go before it is handled. */
	if (d < 0 || !m.raw_content.len)
		kernel_close_frames(parts, &n);
	if (d < 0)
		log_warnx("kernel %.8s: dropped a %s message (%s)", k->proc.id,
			  chan_name[ch],
			  d == -EPERM ? "bad signature" : "malformed");
	else
		kernel_dispatch(k, ch, &m);
	wire_msg_cleanup(&m);
	kernel_close_frames(parts, &n);
	return 1;
}

static void kernel_on_sock(void *arg, short revents)
{
	struct kernel_sockref *ref = arg;
	struct kernel *k = ref->k;
	bool iopub = ref->ch == KERNEL_IOPUB;
	size_t got = 0;

	(void)revents;
	/* iopub taken ahead of the HTTP side: this turn is theirs. The loop
	 * checks the socket again next turn, at once. */
	if (iopub && k->iopub_owed >= KERNEL_TURN_BYTES) {
		k->iopub_owed -= KERNEL_TURN_BYTES;
		return;
	}
	if (iopub)
		got = k->iopub_owed;
	/* A callback may stop the kernel and close its sockets: re-check. */
	for (int i = 0; i < KERNEL_BATCH && k->sock[ref->ch]; i++) {
		if (kernel_recv_one(k, ref->ch, &got) <= 0)
			break;
		if (iopub && got >= KERNEL_TURN_BYTES)
			break;
	}
	if (iopub)
		k->iopub_owed =
		    got > KERNEL_TURN_BYTES ? got - KERNEL_TURN_BYTES : 0;
}

/* Hands the owner a message made here (type, content stolen) as if the
 * kernel had sent it on ch for the last execute_request. */
static void kernel_fake(struct kernel *k, enum kernel_chan ch, const char *type,
			json_t *content)
{
	struct wire_msg m = {0};

	m.header = json_pack("{ss}", "msg_type", type);
	m.parent_header = json_pack("{ss}", "msg_id", k->req.id);
	m.content = content;
	m.msg_type = type;
	m.msg_id = "";
	m.parent_msg_id = k->req.id;
	if (m.header && m.parent_header && m.content && k->ops->on_msg)
		k->ops->on_msg(k->arg, k, ch, &m);
	wire_msg_cleanup(&m);
}

/* Tells the owner what a broken channel lost, when it mattered to the last
 * execute_request: on iopub a notice in its stream (its idle status, which
 * may be lost too, is settled by kernel_rejoin); on shell its reply, as an
 * error. */
static void kernel_report_cut(struct kernel *k, enum kernel_chan ch)
{
	char text[256];

	snprintf(text, sizeof(text),
		 "a message from the kernel was larger than the daemon takes "
		 "(--max-kernel-message, %zu bytes)",
		 k->env.max_msg);
	if (ch == KERNEL_IOPUB && !k->req.idle) {
		char line[sizeof(text) + 128];
		snprintf(line, sizeof(line),
			 "[e2b-ci: output cut: %s; it and the output right "
			 "after it are lost]\n",
			 text);
		kernel_fake(
		    k, ch, "stream",
		    json_pack("{ssss}", "name", "stderr", "text", line));
	} else if (ch == KERNEL_SHELL && !k->req.replied) {
		kernel_fake(k, ch, "execute_reply",
			    json_pack("{sssssss[]}", "status", "error", "ename",
				      "KernelMessageTooLarge", "evalue", text,
				      "traceback"));
	}
}

/*
 * iopub connects again after a cut, and a SUB socket misses what is
 * published before its subscription arrives; the cell's idle status may
 * have gone that way. kernel_info_request goes out until iopub delivers
 * anything (so it is live again), then the answer to one of them tells that
 * the cell is over: a kernel handles shell requests in order, so the
 * probe's status comes after the cell's idle. When that idle did not come,
 * it is made up for, and the cell ends. Until then the cell cannot end, so
 * the next one cannot start on a channel still deaf.
 */
static void kernel_rejoin_tick(void *arg, short revents)
{
	struct kernel *k = arg;
	json_t *c;

	(void)revents;
	if (!k->rejoin || k->rejoin_live || k->state != KERNEL_READY)
		return;
	c = json_object();
	kernel_send(k, KERNEL_SHELL, "kernel_info_request", c, NULL);
	json_decref(c);
	loop_timer_arm(k->env.loop, &k->hs_timer, KERNEL_HANDSHAKE_EARLY_MS,
		       kernel_rejoin_tick, k);
}

/* An iopub message while rejoining (see kernel_rejoin_tick). */
static void kernel_rejoin(struct kernel *k, const struct wire_msg *m)
{
	const char *type =
	    json_string_value(json_object_get(m->parent_header, "msg_type"));

	k->rejoin_live = true;
	if (!type || strcmp(type, "kernel_info_request") != 0)
		return;
	k->rejoin = false;
	if (!k->req.idle)
		kernel_fake(k, KERNEL_IOPUB, "status",
			    json_pack("{ss}", "execution_state", "idle"));
}

/*
 * Channel ch lost its connection KERNEL_CUT_GRACE_MS ago and the kernel
 * still runs: a message part over max_msg. libzmq refuses to take such a
 * part and drops the connection (and, after this protocol error, never
 * connects again by itself); what was queued behind it in the kernel, and
 * what the kernel sent since, is gone. The messages that arrived before the
 * break are handled first, then the owner hears what was lost, then the
 * channel connects again. Until then nothing can arrive on it, so no idle
 * or reply can end the cell before the owner heard of the cut.
 */
static void kernel_cut(void *arg, short revents)
{
	struct kernel_sockref *ref = arg;
	struct kernel *k = ref->k;
	enum kernel_chan ch = ref->ch;
	size_t ignored = 0;
	char ep[600];

	(void)revents;
	if (k->state != KERNEL_READY || kproc_gone(&k->proc))
		return;
	while (k->sock[ch] && kernel_recv_one(k, ch, &ignored) > 0)
		;
	log_warnx("kernel %.8s: %s connection dropped (a message over %zu "
		  "bytes?); connecting again",
		  k->proc.id, chan_name[ch], k->env.max_msg);
	if (k->state == KERNEL_READY)
		kernel_report_cut(k, ch);
	if (!k->sock[ch])
		return;
	kproc_endpoint(&k->proc, chan_port[ch], ep, sizeof(ep));
	zmq_disconnect(k->sock[ch], ep);
	if (zmq_connect(k->sock[ch], ep) < 0)
		log_warnx("kernel %.8s: cannot connect %s again: %s",
			  k->proc.id, chan_name[ch], zmq_strerror(errno));
	loop_zmq_used(k->sockw[ch]);
	if (ch == KERNEL_IOPUB && !k->req.idle) {
		k->rejoin = true;
		k->rejoin_live = false;
		kernel_rejoin_tick(k, 0);
	}
}

/* Events of a channel's monitor: two frames, the event (u16 id, u32
 * value) and the endpoint. A broken connection of a ready kernel becomes
 * a cut unless the kernel turns out to be exiting. */
static void kernel_on_monitor(void *arg, short revents)
{
	struct kernel_sockref *ref = arg;
	struct kernel *k = ref->k;
	void *mon = k->mon[ref->ch];
	zmq_msg_t ev, ep;
	uint16_t id;

	(void)revents;
	for (;;) {
		zmq_msg_init(&ev);
		zmq_msg_init(&ep);
		if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) < 0 ||
		    zmq_msg_recv(&ep, mon, 0) < 0)
			break;
		id = 0;
		if (zmq_msg_size(&ev) >= sizeof(id))
			memcpy(&id, zmq_msg_data(&ev), sizeof(id));
		if (id == ZMQ_EVENT_DISCONNECTED && k->state == KERNEL_READY)
			loop_timer_arm(k->env.loop, &k->cut_timer[ref->ch],
				       KERNEL_CUT_GRACE_MS, kernel_cut, ref);
		zmq_msg_close(&ev);
		zmq_msg_close(&ep);
	}
	zmq_msg_close(&ev);
	zmq_msg_close(&ep);
}

int kernel_send(struct kernel *k, enum kernel_chan ch, const char *msg_type,
		json_t *content, char *msg_id_out)
{
	struct wire_out out;
	char id[37];
	json_t *hdr;
	int rc;

	if (!k->sock[ch] || ch == KERNEL_IOPUB)
		return -ENOTCONN;
	hdr = wire_header_new(msg_type, k->session, id);
	if (!hdr)
		return -ENOMEM;
	if (msg_id_out)
		memcpy(msg_id_out, id, sizeof(id));
	if (strcmp(msg_type, "execute_request") == 0) {
		memcpy(k->req.id, id, sizeof(id));
		k->req.replied = k->req.idle = false;
	}
	rc = wire_encode(k->proc.key, strlen(k->proc.key), hdr, NULL, NULL,
			 content, &out);
	json_decref(hdr);
	if (rc < 0)
		return rc;
	if (zmq_send(k->sock[ch], WIRE_DELIM, WIRE_DELIM_LEN, ZMQ_SNDMORE) <
		0 ||
	    zmq_send(k->sock[ch], out.sig, strlen(out.sig), ZMQ_SNDMORE) < 0)
		rc = -errno;
	for (int i = 0; i < 4 && rc == 0; i++) {
		if (zmq_send(k->sock[ch], out.part[i], out.len[i],
			     i < 3 ? ZMQ_SNDMORE : 0) < 0)
			rc = -errno;
	}
	wire_out_cleanup(&out);
	/* A send may consume the socket's ZMQ_FD edge (loop.h). */
	loop_zmq_used(k->sockw[ch]);
	return rc;
}

int kernel_execute(struct kernel *k, const char *code, size_t len, bool silent,
		   char *msg_id_out)
{
	json_t *content = json_pack("{s:s%,s:b,s:b,s:{},s:b,s:b}", "code", code,
				    len, "silent", silent, "store_history",
				    !silent, "user_expressions", "allow_stdin",
				    0, "stop_on_error", !silent);
	int rc;

	if (!content)
		return -ENOMEM;
	rc = kernel_send(k, KERNEL_SHELL, "execute_request", content,
			 msg_id_out);
	json_decref(content);
	return rc;
}

int kernel_interrupt(struct kernel *k)
{
	if (k->proc.exited)
		return -ESRCH;
	if (k->spec->interrupt_message) {
		json_t *c = json_object();
		int rc = kernel_send(k, KERNEL_CONTROL, "interrupt_request", c,
				     NULL);
		json_decref(c);
		return rc;
	}
	kproc_signal(&k->proc, SIGINT);
	return 0;
}

/* The shutdown_request was not acted on in time: SIGTERM, then SIGKILL. */
static void kernel_stop_term(void *arg, short revents)
{
	struct kernel *k = arg;

	(void)revents;
	kproc_signal(&k->proc, SIGTERM);
	loop_timer_arm(k->env.loop, &k->dead_timer, (uint64_t)k->stop_grace_ms,
		       kernel_deadline, k);
}

void kernel_stop(struct kernel *k, long grace_ms)
{
	bool asked = false;

	if (k->proc.exited || k->state == KERNEL_STOPPING)
		return;
	/* A ready kernel is asked first, the way Jupyter clients do: it then
	 * exits cleanly (IRkernel removes its R tempdir, which a SIGTERM
	 * leaves behind in /tmp; ipykernel saves its history). */
	if (k->state == KERNEL_READY) {
		json_t *c = json_pack("{sb}", "restart", 0);
		asked = c && kernel_send(k, KERNEL_CONTROL, "shutdown_request",
					 c, NULL) == 0;
		json_decref(c);
	}
	k->state = KERNEL_STOPPING;
	k->stop_grace_ms = grace_ms;
	loop_timer_disarm(k->env.loop, &k->hs_timer);
	if (asked) {
		loop_timer_arm(k->env.loop, &k->dead_timer,
			       KERNEL_SHUTDOWN_WAIT_MS, kernel_stop_term, k);
		return;
	}
	kernel_stop_term(k, 0);
}

void kernel_free(struct kernel *k)
{
	if (!k)
		return;
	kproc_cleanup(&k->proc);
	kernel_close_channels(k);
	json_decref(k->info);
	free(k);
	kernel_nlive--;
}
