/*
 * kh_chan: the kernel side of the five Jupyter channels.
 *
 * Binds ROUTER sockets for shell, control and stdin, a PUB for iopub and a
 * REP for the heartbeat; verifies the HMAC of every incoming message and
 * hands verified requests to one callback; signs and sends replies (routed
 * back to the requester's identities) and iopub messages. The heartbeat is
 * echoed here and never reaches the callback; stdin traffic is drained and
 * dropped (our kernels never send input_request). Loop thread only: every
 * socket belongs to it.
 */
#ifndef E2B_KH_CHAN_H
#define E2B_KH_CHAN_H

#include <jansson.h>
#include <stddef.h>

#include "kh_conn.h"
#include "loop.h"

/* A routing frame copied out of a received message. */
struct kh_frame {
	void *data;
	size_t len;
};

/* A verified request. header and content are owned (new references);
 * msg_type and msg_id are borrowed from header ("" when absent). */
struct kh_msg {
	enum kh_sock sock;
	struct kh_frame *ids; /* routing identities, owned */
	size_t nids;
	json_t *header;
	json_t *content;
	const char *msg_type;
	const char *msg_id;
};

/* Receives each verified request on shell and control; the callee owns m
 * and releases it with kh_msg_free. */
typedef void (*kh_chan_fn)(void *arg, struct kh_msg *m);

struct kh_chan {
	struct loop *loop;
	void *zctx;
	void *sock[KH_NSOCK];
	struct loop_watch *watch[KH_NSOCK];
	struct kh_chan_ref {
		struct kh_chan *chan;
		enum kh_sock s;
	} ref[KH_NSOCK];
	char *key; /* owned copy of the connection file's key */
	size_t keylen;
	char session[37]; /* this kernel process's session id */
	kh_chan_fn fn;
	void *arg;
};

/* Creates and binds the sockets described by conn and watches them on
 * loop. zctx is borrowed and must outlive the channel. Returns 0, or a
 * negative errno with a message in err; call kh_chan_close either way. */
int kh_chan_open(struct kh_chan *c, struct loop *loop, void *zctx,
		 const struct kh_conn *conn, kh_chan_fn fn, void *arg,
		 char *err, size_t errlen);

/* Closes the sockets. Messages already queued get up to the linger time
 * (one second) to leave when the ZeroMQ context is terminated. Accepts a
 * channel that was never opened (zeroed). */
void kh_chan_close(struct kh_chan *c);

/* Sends msg_type with content (borrowed) to the peer that sent req, on the
 * socket req arrived on, with req's header as parent. Returns 0 or a
 * negative errno. */
int kh_chan_reply(struct kh_chan *c, const struct kh_msg *req,
		  const char *msg_type, json_t *content);

/* Publishes msg_type with content (borrowed) on iopub; parent (borrowed)
 * may be NULL for messages no request caused. Returns 0 or a negative
 * errno. */
int kh_chan_publish(struct kh_chan *c, json_t *parent, const char *msg_type,
		    json_t *content);

/* Publishes a status message (busy, idle, starting). */
int kh_chan_status(struct kh_chan *c, json_t *parent, const char *state);

/* Frees a request from the callback; accepts NULL. */
void kh_msg_free(struct kh_msg *m);

#endif
