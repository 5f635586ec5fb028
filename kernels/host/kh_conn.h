/*
 * kh_conn: the Jupyter connection file the kernel host is started with.
 *
 * Reads {transport, ip, *_port, key, signature_scheme} and builds the
 * endpoints to bind: "tcp://IP:PORT", or "ipc://IP-PORT" for the ipc
 * transport (the prefix in "ip" plus "-" plus the port, as ipykernel does).
 * Pure file reading; any thread.
 */
#ifndef E2B_KH_CONN_H
#define E2B_KH_CONN_H

#include <stddef.h>

/* The five channels, in the order of kh_conn.port and kh_chan.sock. */
enum kh_sock { KH_SHELL, KH_CONTROL, KH_STDIN, KH_IOPUB, KH_HB, KH_NSOCK };

struct kh_conn {
	char *transport; /* "tcp" or "ipc" */
	char *ip;	 /* address, or the ipc path prefix */
	int port[KH_NSOCK];
	char *key; /* HMAC-SHA256 key ("" disables signing) */
	size_t keylen;
};

/* Loads path into c. Returns 0, or -EINVAL (message in err: unreadable or
 * malformed file, unknown transport or signature scheme, a port missing or
 * out of range) or -ENOMEM. On success call kh_conn_cleanup. */
int kh_conn_load(const char *path, struct kh_conn *c, char *err, size_t errlen);
void kh_conn_cleanup(struct kh_conn *c);

/* Writes the endpoint of channel s into buf. Returns 0, or -ENAMETOOLONG
 * when it does not fit. */
int kh_conn_endpoint(const struct kh_conn *c, enum kh_sock s, char *buf,
		     size_t len);

/* The channel's name ("shell", "iopub", ...), for logs. */
const char *kh_conn_sock_name(enum kh_sock s);

#endif
