/*
 * wire: Jupyter messages as bytes (protocol 5.3), never sockets.
 *
 * Encodes a message into the frames that follow the "<IDS|MSG>" delimiter and
 * decodes received frames back, signing and verifying with HMAC-SHA256 over
 * the exact bytes of header, parent_header, metadata and content. Verification
 * is constant time (sha256_memeq after a length check). Decoding is lenient
 * where kernels are sloppy: invalid UTF-8 is replaced by U+FFFD before JSON
 * parsing, integers too large for json_int_t are retried as reals, trailing
 * buffer frames are ignored. Pure functions: any thread may call them.
 */
#ifndef E2BCI_WIRE_H
#define E2BCI_WIRE_H

#include <jansson.h>
#include <stddef.h>

#define WIRE_DELIM	      "<IDS|MSG>"
#define WIRE_DELIM_LEN	      9
#define WIRE_PROTOCOL_VERSION "5.3"
#define WIRE_SIG_HEX	      64

/* One frame as received or to send: borrowed bytes. */
struct wire_buf {
	const void *data;
	size_t len;
};

/* The four signed parts, serialized (compact JSON, UTF-8) and the signature. */
struct wire_out {
	char *part[4]; /* header, parent_header, metadata, content; owned */
	size_t len[4];
	char sig[WIRE_SIG_HEX +
		 1]; /* lowercase hex, NUL-terminated; "" if no key */
};

/* A decoded message. All json_t fields are owned (new references). */
struct wire_msg {
	json_t *header;
	json_t *parent_header;
	json_t *metadata;
	json_t *content;
	const char *msg_type; /* borrowed from header; "" when absent */
	const char *msg_id;   /* borrowed from header; "" when absent */
	const char
	    *parent_msg_id; /* borrowed from parent_header; NULL when absent */
	/* wire_decode_lazy: an output message's content, not parsed (content
	 * is then NULL); borrowed from the frames. len 0 otherwise. */
	struct wire_buf raw_content;
};

/* HMAC-SHA256 of the concatenation of n parts, as 64 lowercase hex digits
 * plus NUL into out. keylen 0 yields "". */
void wire_sign(const void *key, size_t keylen, const struct wire_buf *parts,
	       size_t n, char out[WIRE_SIG_HEX + 1]);

/* Constant-time check of sig (len bytes, as received) against the parts.
 * Returns 0 when valid; -1 otherwise. With keylen 0 any empty sig is valid. */
int wire_verify(const void *key, size_t keylen, const struct wire_buf *parts,
		size_t n, const void *sig, size_t siglen);

/* Builds a request header: msg_id (fresh UUID4, also copied into msg_id_out
 * when not NULL), session, username "e2b-ci", date (UTC, microseconds, "Z"),
 * msg_type, version "5.3". Returns a new reference or NULL. */
json_t *wire_header_new(const char *msg_type, const char *session,
			char msg_id_out[37]);

/* Serializes and signs. parent_header and metadata may be NULL (sent as {}).
 * Borrowed inputs. Returns 0, -EINVAL when header or content (or a non-NULL
 * parent_header or metadata) is not an object, or -ENOMEM; on success call
 * wire_out_cleanup. */
int wire_encode(const void *key, size_t keylen, json_t *header,
		json_t *parent_header, json_t *metadata, json_t *content,
		struct wire_out *out);
void wire_out_cleanup(struct wire_out *out);

/* Decodes a whole multipart message (identity/topic frames first, then the
 * delimiter, signature and four JSON parts, then optional buffers).
 * Returns 0 on success (call wire_msg_cleanup), -EBADMSG for a malformed
 * message (no delimiter, fewer than 5 frames after it, a part that is not a
 * JSON object), -EPERM for a bad signature. out is zeroed on failure. */
int wire_decode(const void *key, size_t keylen, const struct wire_buf *frames,
		size_t nframes, struct wire_msg *out);
void wire_msg_cleanup(struct wire_msg *m);

/* wire_decode, except that the content of an output message (stream,
 * execute_result, display_data, update_display_data) is checked by the
 * signature only, not parsed: it stays in raw_content, borrowed from frames
 * (so valid as long as they are). Its reader can then weigh it before
 * paying for a parse (a large part costs jansson about three times its
 * size), and a stream's text goes into its line without a parsed copy in
 * between (enc_stream_raw). */
int wire_decode_lazy(const void *key, size_t keylen,
		     const struct wire_buf *frames, size_t nframes,
		     struct wire_msg *out);

/* Parses m->raw_content into m->content (when not done yet). Returns 0,
 * -EBADMSG (not a JSON object) or -ENOMEM. */
int wire_msg_parse_content(struct wire_msg *m);

/* Copies src (len bytes) replacing every invalid UTF-8 sequence by U+FFFD
 * (EF BF BD). Returns a malloc'd buffer (NUL-terminated, length in *outlen)
 * or NULL on allocation failure. */
char *wire_utf8_sanitize(const char *src, size_t len, size_t *outlen);

#endif
