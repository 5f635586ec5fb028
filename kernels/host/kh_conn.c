/*
 * kh_conn.c: reading the connection file.
 *
 * Owns the parsing and validation of the JSON document a Jupyter client
 * writes before it launches a kernel. Everything is checked up front so
 * that a bad file makes the host exit at once with a message, instead of
 * failing later with a bind error nobody can read.
 *
 * Invariants: a loaded struct kh_conn has a transport of "tcp" or "ipc", a
 * non-empty ip, ports in 1..65535 (tcp) or >= 0 (ipc, where they are only
 * file name suffixes), and a key whose scheme we can check (hmac-sha256).
 *
 * Threads: no state; any thread. It does not bind anything, pick ports for a
 * file that lacks them (clients we serve always write them) or support
 * signature schemes other than hmac-sha256.
 */
#include "kh_conn.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kh_conn_port_keys[KH_NSOCK] = {
    "shell_port", "control_port", "stdin_port", "iopub_port", "hb_port"};

static const char *const kh_conn_names[KH_NSOCK] = {"shell", "control", "stdin",
						    "iopub", "hb"};

const char *kh_conn_sock_name(enum kh_sock s)
{
	return (unsigned)s < KH_NSOCK ? kh_conn_names[s] : "?";
}

/* A string member or dflt when absent; NULL when present but not a
 * string. */
static const char *kh_conn_str(json_t *root, const char *name, const char *dflt)
{
	json_t *v = json_object_get(root, name);

	if (!v)
		return dflt;
	return json_string_value(v);
}

static int kh_conn_ports(json_t *root, struct kh_conn *c, char *err,
			 size_t errlen)
{
	int tcp = strcmp(c->transport, "tcp") == 0;

	for (int s = 0; s < KH_NSOCK; s++) {
		json_t *v = json_object_get(root, kh_conn_port_keys[s]);
		json_int_t p = json_integer_value(v);

		if (!json_is_integer(v) || p < 0 || p > 65535 ||
		    (tcp && p == 0)) {
			snprintf(err, errlen, "%s missing or out of range",
				 kh_conn_port_keys[s]);
			return -EINVAL;
		}
		c->port[s] = (int)p;
	}
	return 0;
}

/* Copies the string fields; NULL ones were already rejected. */
static int kh_conn_copy(struct kh_conn *c, const char *transport,
			const char *ip, const char *key)
{
	c->transport = strdup(transport);
	c->ip = strdup(ip);
	c->key = strdup(key);
	c->keylen = strlen(key);
	return c->transport && c->ip && c->key ? 0 : -ENOMEM;
}

int kh_conn_load(const char *path, struct kh_conn *c, char *err, size_t errlen)
{
	const char *transport, *ip, *key, *scheme;
	json_error_t jerr;
	json_t *root;
	int rc = -EINVAL;

	memset(c, 0, sizeof(*c));
	root = json_load_file(path, 0, &jerr);
	if (!root || !json_is_object(root)) {
		snprintf(err, errlen, "%s: %s", path,
			 root ? "not a JSON object" : jerr.text);
		goto out;
	}
	transport = kh_conn_str(root, "transport", "tcp");
	ip = kh_conn_str(root, "ip", "127.0.0.1");
	key = kh_conn_str(root, "key", "");
	scheme = kh_conn_str(root, "signature_scheme", "hmac-sha256");
	if (!transport ||
	    (strcmp(transport, "tcp") && strcmp(transport, "ipc"))) {
		snprintf(err, errlen, "%s: transport must be tcp or ipc", path);
		goto out;
	}
	if (!ip || !*ip || !key || !scheme) {
		snprintf(err, errlen,
			 "%s: ip, key and signature_scheme must "
			 "be strings",
			 path);
		goto out;
	}
	/* An empty key means "no signing", whatever the scheme says. */
	if (*key && strcmp(scheme, "hmac-sha256") != 0) {
		snprintf(err, errlen, "%s: unsupported signature scheme %s",
			 path, scheme);
		goto out;
	}
	rc = kh_conn_copy(c, transport, ip, key);
	if (rc == 0)
		rc = kh_conn_ports(root, c, err, errlen);
out:
	json_decref(root);
	if (rc < 0)
		kh_conn_cleanup(c);
	return rc;
}

void kh_conn_cleanup(struct kh_conn *c)
{
	if (!c)
		return;
	free(c->transport);
	free(c->ip);
	free(c->key);
	memset(c, 0, sizeof(*c));
}

int kh_conn_endpoint(const struct kh_conn *c, enum kh_sock s, char *buf,
		     size_t len)
{
	int n;

	if (strcmp(c->transport, "ipc") == 0)
		n = snprintf(buf, len, "ipc://%s-%d", c->ip, c->port[s]);
	else if (strchr(c->ip, ':'))
		/* IPv6 literals need brackets in a ZeroMQ endpoint. */
		n = snprintf(buf, len, "tcp://[%s]:%d", c->ip, c->port[s]);
	else
		n = snprintf(buf, len, "tcp://%s:%d", c->ip, c->port[s]);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
