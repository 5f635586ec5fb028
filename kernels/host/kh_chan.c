/*
 * kh_chan.c: the kernel side of the Jupyter channels.
 *
 * Owns the five ZeroMQ sockets, the HMAC key and this process's session id.
 * A request is read whole (identities, delimiter, signature, four JSON parts,
 * buffers), checked with wire_decode() over the exact received bytes and
 * only then parsed and handed on; a bad signature or a malformed message is
 * logged and dropped, never answered. Outgoing messages get a fresh header
 * (new msg_id, our session, "5.3"), the request's header as parent and a
 * signature over the serialized parts.
 *
 * Invariants: nothing unauthenticated reaches the callback; replies go out
 * on the socket their request came in on, prefixed with its identities; the
 * iopub PUB never drops a message at its high-water mark (the daemon drains
 * iopub continuously and bounds output itself, and a lost "idle" would hang
 * an execution). The heartbeat is answered inside the loop: the loop never
 * blocks, so this proves the host is alive, which is all the daemon needs.
 *
 * Threads: the loop thread owns every socket. It does not interpret message
 * types (kh_exec does), send on stdin, or keep a digest history against
 * replays: the peers are the daemon or a test on private endpoints.
 */
#include "kh_chan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>
#include <zmq.h>

#include "log.h"
#include "wire.h"

#define KH_CHAN_MAX_FRAMES 64 /* frames kept per message; more: dropped */
#define KH_CHAN_BATCH	   64 /* messages handled per wake-up and socket */
#define KH_CHAN_LINGER_MS  1000

void kh_msg_free(struct kh_msg *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nids; i++)
		free(m->ids[i].data);
	free(m->ids);
	json_decref(m->header);
	json_decref(m->content);
	free(m);
}

/*
 * Receives one whole multipart message into parts. Frames beyond
 * KH_CHAN_MAX_FRAMES are read and discarded so the socket stays in step.
 * Returns the number of frames kept (> 0), -EAGAIN when nothing is waiting,
 * -EMSGSIZE for a message that was too long (already closed) or another
 * negative errno.
 */
static int kh_chan_recv_frames(void *s, zmq_msg_t *parts)
{
	int n = 0, more = 1, rc = 0;

	while (more) {
		zmq_msg_t spill,
		    *p = n < KH_CHAN_MAX_FRAMES ? &parts[n] : &spill;

		zmq_msg_init(p);
		if (zmq_msg_recv(p, s, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
			rc = -errno;
			zmq_msg_close(p);
			break;
		}
		more = zmq_msg_more(p);
		if (p == &spill) {
			zmq_msg_close(p);
			rc = -EMSGSIZE;
		}
		n++;
	}
	if (rc == 0)
		return n;
	for (int i = 0; i < n && i < KH_CHAN_MAX_FRAMES; i++)
		zmq_msg_close(&parts[i]);
	return rc;
}

/* Copies the routing frames in front of the delimiter into m. */
static int kh_chan_copy_ids(struct kh_msg *m, zmq_msg_t *parts, int n)
{
	int d = 0;

	while (d < n && !(zmq_msg_size(&parts[d]) == WIRE_DELIM_LEN &&
			  memcmp(zmq_msg_data(&parts[d]), WIRE_DELIM,
				 WIRE_DELIM_LEN) == 0))
		d++;
	if (d == 0)
		return 0;
	m->ids = calloc((size_t)d, sizeof(*m->ids));
	if (!m->ids)
		return -ENOMEM;
	for (int i = 0; i < d; i++) {
		size_t len = zmq_msg_size(&parts[i]);

		m->ids[i].data = malloc(len ? len : 1);
		if (!m->ids[i].data)
			return -ENOMEM;
		memcpy(m->ids[i].data, zmq_msg_data(&parts[i]), len);
		m->ids[i].len = len;
		m->nids++;
	}
	return 0;
}

/* Verifies and decodes a received message. Returns a new kh_msg or NULL
 * (logged). */
static struct kh_msg *kh_chan_decode(struct kh_chan *c, enum kh_sock s,
				     zmq_msg_t *parts, int n)
{
	struct wire_buf bufs[KH_CHAN_MAX_FRAMES];
	struct wire_msg wm;
	struct kh_msg *m;
	int rc;

	for (int i = 0; i < n; i++) {
		bufs[i].data = zmq_msg_data(&parts[i]);
		bufs[i].len = zmq_msg_size(&parts[i]);
	}
	rc = wire_decode(c->key, c->keylen, bufs, (size_t)n, &wm);
	if (rc < 0) {
		log_warnx("dropped a %s message: %s", kh_conn_sock_name(s),
			  rc == -EPERM ? "bad signature" : "malformed");
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m || kh_chan_copy_ids(m, parts, n) < 0) {
		log_warnx("dropped a %s message: out of memory",
			  kh_conn_sock_name(s));
		wire_msg_cleanup(&wm);
		kh_msg_free(m);
		return NULL;
	}
	m->sock = s;
	m->header = json_incref(wm.header);
	m->content = json_incref(wm.content);
	m->msg_type = json_string_value(json_object_get(m->header, "msg_type"));
	m->msg_id = json_string_value(json_object_get(m->header, "msg_id"));
	m->msg_type = m->msg_type ? m->msg_type : "";
	m->msg_id = m->msg_id ? m->msg_id : "";
	wire_msg_cleanup(&wm);
	return m;
}

/* Echoes every frame of one heartbeat back through the REP socket. */
static void kh_chan_echo(void *s, zmq_msg_t *parts, int n)
{
	for (int i = 0; i < n; i++) {
		if (zmq_msg_send(&parts[i], s, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
			zmq_msg_close(&parts[i]);
	}
}

/* Handles one message from s; returns 0 when the socket was drained. */
static int kh_chan_recv_one(struct kh_chan *c, enum kh_sock s)
{
	zmq_msg_t parts[KH_CHAN_MAX_FRAMES];
	struct kh_msg *m = NULL;
	int n = kh_chan_recv_frames(c->sock[s], parts);

	if (n == -EAGAIN)
		return 0;
	if (n < 0) {
		log_warnx("%s: receive failed: %s", kh_conn_sock_name(s),
			  zmq_strerror(-n));
		return n == -EMSGSIZE ? 1 : 0;
	}
	if (s == KH_HB) {
		kh_chan_echo(c->sock[s], parts, n);
		return 1;
	}
	if (s != KH_STDIN)
		m = kh_chan_decode(c, s, parts, n);
	for (int i = 0; i < n; i++)
		zmq_msg_close(&parts[i]);
	if (m)
		c->fn(c->arg, m);
	return 1;
}

static void kh_chan_on_sock(void *arg, short revents)
{
	struct kh_chan_ref *ref = arg;

	(void)revents;
	/* The callback may close the channel (shutdown): re-check the socket.
	 */
	for (int i = 0; i < KH_CHAN_BATCH && ref->chan->sock[ref->s]; i++) {
		if (kh_chan_recv_one(ref->chan, ref->s) == 0)
			break;
	}
}

static int kh_chan_bind(struct kh_chan *c, const struct kh_conn *conn,
			enum kh_sock s, char *err, size_t errlen)
{
	static const int types[KH_NSOCK] = {ZMQ_ROUTER, ZMQ_ROUTER, ZMQ_ROUTER,
					    ZMQ_PUB, ZMQ_REP};
	int linger = KH_CHAN_LINGER_MS, zero = 0, e;
	char ep[512];

	if (kh_conn_endpoint(conn, s, ep, sizeof(ep)) < 0) {
		snprintf(err, errlen, "%s endpoint too long",
			 kh_conn_sock_name(s));
		return -ENAMETOOLONG;
	}
	c->sock[s] = zmq_socket(c->zctx, types[s]);
	if (!c->sock[s])
		goto fail;
	zmq_setsockopt(c->sock[s], ZMQ_LINGER, &linger, sizeof(linger));
	if (s == KH_IOPUB)
		zmq_setsockopt(c->sock[s], ZMQ_SNDHWM, &zero, sizeof(zero));
	if (zmq_bind(c->sock[s], ep) < 0)
		goto fail;
	if (s == KH_IOPUB)
		return 0;
	c->ref[s].chan = c;
	c->ref[s].s = s;
	c->watch[s] = loop_add_zmq(c->loop, c->sock[s], ZMQ_POLLIN,
				   kh_chan_on_sock, &c->ref[s]);
	if (c->watch[s])
		return 0;
	errno = ENOMEM;
fail:
	e = errno;
	snprintf(err, errlen, "cannot bind %s on %s: %s", kh_conn_sock_name(s),
		 ep, zmq_strerror(e));
	return -e;
}

int kh_chan_open(struct kh_chan *c, struct loop *loop, void *zctx,
		 const struct kh_conn *conn, kh_chan_fn fn, void *arg,
		 char *err, size_t errlen)
{
	uuid_t u;
	int rc;

	memset(c, 0, sizeof(*c));
	c->loop = loop;
	c->zctx = zctx;
	c->fn = fn;
	c->arg = arg;
	uuid_generate_random(u);
	uuid_unparse_lower(u, c->session);
	c->key = malloc(conn->keylen + 1);
	if (!c->key) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(c->key, conn->key, conn->keylen + 1);
	c->keylen = conn->keylen;
	for (int s = 0; s < KH_NSOCK; s++) {
		rc = kh_chan_bind(c, conn, (enum kh_sock)s, err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void kh_chan_close(struct kh_chan *c)
{
	for (int s = 0; s < KH_NSOCK; s++) {
		if (c->watch[s])
			loop_del(c->loop, c->watch[s]);
		c->watch[s] = NULL;
		if (c->sock[s])
			zmq_close(c->sock[s]);
		c->sock[s] = NULL;
	}
	free(c->key);
	c->key = NULL;
}

/* Sends the frames in front of the delimiter, then the signed message. */
static int kh_chan_send(struct kh_chan *c, void *sock,
			const struct kh_frame *pre, size_t npre, json_t *parent,
			const char *msg_type, json_t *content)
{
	struct wire_out out;
	json_t *hdr;
	int rc;

	if (!sock)
		return -ENOTCONN;
	hdr = wire_header_new(msg_type, c->session, NULL);
	if (!hdr)
		return -ENOMEM;
	rc = wire_encode(c->key, c->keylen, hdr, parent, NULL, content, &out);
	json_decref(hdr);
	if (rc < 0)
		return rc;
	/* Signals are blocked in every thread, so sends never see EINTR. */
	for (size_t i = 0; i < npre && rc == 0; i++) {
		if (zmq_send(sock, pre[i].data, pre[i].len, ZMQ_SNDMORE) < 0)
			rc = -errno;
	}
	if (rc == 0 &&
	    (zmq_send(sock, WIRE_DELIM, WIRE_DELIM_LEN, ZMQ_SNDMORE) < 0 ||
	     zmq_send(sock, out.sig, strlen(out.sig), ZMQ_SNDMORE) < 0))
		rc = -errno;
	for (int i = 0; i < 4 && rc == 0; i++) {
		if (zmq_send(sock, out.part[i], out.len[i],
			     i < 3 ? ZMQ_SNDMORE : 0) < 0)
			rc = -errno;
	}
	wire_out_cleanup(&out);
	/* A send may consume the socket's ZMQ_FD edge (loop.h). */
	for (int i = 0; i < KH_NSOCK; i++)
		if (c->sock[i] == sock)
			loop_zmq_used(c->watch[i]);
	if (rc < 0)
		log_warnx("cannot send %s: %s", msg_type, zmq_strerror(-rc));
	return rc;
}

int kh_chan_reply(struct kh_chan *c, const struct kh_msg *req,
		  const char *msg_type, json_t *content)
{
	return kh_chan_send(c, c->sock[req->sock], req->ids, req->nids,
			    req->header, msg_type, content);
}

int kh_chan_publish(struct kh_chan *c, json_t *parent, const char *msg_type,
		    json_t *content)
{
	char topic[128];
	struct kh_frame pre;

	/* ipykernel's topic convention; subscribers filter on "" anyway. */
	if (strcmp(msg_type, "stream") == 0)
		snprintf(topic, sizeof(topic), "stream.%s",
			 json_string_value(json_object_get(content, "name"))
			     ?: "stdout");
	else
		snprintf(topic, sizeof(topic), "kernel.%s.%s", c->session,
			 msg_type);
	pre.data = topic;
	pre.len = strlen(topic);
	return kh_chan_send(c, c->sock[KH_IOPUB], &pre, 1, parent, msg_type,
			    content);
}

int kh_chan_status(struct kh_chan *c, json_t *parent, const char *state)
{
	json_t *content = json_pack("{s:s}", "execution_state", state);
	int rc;

	if (!content)
		return -ENOMEM;
	rc = kh_chan_publish(c, parent, "status", content);
	json_decref(content);
	return rc;
}
