/*
 * fuzz_wire: the Jupyter wire decoder, signature check and encoder.
 *
 * Input framing: frames separated by the byte 0x1E (ASCII record
 * separator); the first frame is the HMAC key (empty: no key), the rest are
 * the multipart message as a socket would deliver it (identities, then
 * "<IDS|MSG>", signature, header, parent_header, metadata, content,
 * buffers). At most FUZZ_FRAMES frames are used. Invariants:
 *   - wire_decode returns 0, -EBADMSG or -EPERM; on failure the message is
 *     all zero; on success the four parts are objects and msg_type/msg_id
 *     are non-NULL and agree with the header;
 *   - the same frames re-signed with wire_sign never give -EPERM, give the
 *     same result as before when the signature already was right, and give
 *     what a keyless decode with an empty signature gives (same JSON);
 *     with a key, a signature one hex digit off (or upper case) is -EPERM;
 *   - a decoded message, encoded again with wire_encode, decodes back to
 *     JSON-equal parts with the same msg_type, msg_id and parent msg_id;
 *     so does a request built with wire_header_new and its content, with
 *     empty parent_header and metadata; non-object parts are -EINVAL;
 *   - wire_utf8_sanitize of every frame is valid UTF-8 (by jansson's own
 *     check), leaves valid input unchanged and is idempotent.
 */
#include "fuzz.h"

#include "wire.h"

#include <errno.h>
#include <string.h>

#define FUZZ_FRAMES 64

static int msg_is_zero(const struct wire_msg *m)
{
	return m->header == NULL && m->parent_header == NULL &&
	       m->metadata == NULL && m->content == NULL &&
	       m->msg_type == NULL && m->msg_id == NULL &&
	       m->parent_msg_id == NULL;
}

static int same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_msg(const struct wire_msg *m)
{
	const char *t =
	    json_string_value(json_object_get(m->header, "msg_type"));

	FUZZ_CHECK(json_is_object(m->header) &&
		   json_is_object(m->parent_header) &&
		   json_is_object(m->metadata) && json_is_object(m->content));
	FUZZ_CHECK(m->msg_type != NULL && m->msg_id != NULL);
	FUZZ_CHECK(strcmp(m->msg_type, t ? t : "") == 0);
	FUZZ_CHECK(same_str(
	    m->parent_msg_id,
	    json_string_value(json_object_get(m->parent_header, "msg_id"))));
}

static int msg_equal(const struct wire_msg *a, const struct wire_msg *b)
{
	return json_equal(a->header, b->header) &&
	       json_equal(a->parent_header, b->parent_header) &&
	       json_equal(a->metadata, b->metadata) &&
	       json_equal(a->content, b->content) &&
	       strcmp(a->msg_type, b->msg_type) == 0 &&
	       strcmp(a->msg_id, b->msg_id) == 0 &&
	       same_str(a->parent_msg_id, b->parent_msg_id);
}

static int decode(const void *key, size_t keylen, const struct wire_buf *f,
		  size_t n, struct wire_msg *m)
{
	int rc = wire_decode(key, keylen, f, n, m);

	FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EPERM);
	if (rc == 0)
		check_msg(m);
	else
		FUZZ_CHECK(msg_is_zero(m));
	return rc;
}

/* wire_encode the decoded m and decode the frames again. */
static void round_trip(const void *key, size_t keylen, const struct wire_msg *m)
{
	struct wire_out out;
	struct wire_buf f[7];
	struct wire_msg back;
	char sig[WIRE_SIG_HEX + 1];
	int i;

	FUZZ_CHECK(wire_encode(key, keylen, m->header, m->parent_header,
			       m->metadata, m->content, &out) == 0);
	f[0] = (struct wire_buf){"kernel.ident", 12};
	f[1] = (struct wire_buf){WIRE_DELIM, WIRE_DELIM_LEN};
	f[2] = (struct wire_buf){out.sig, strlen(out.sig)};
	for (i = 0; i < 4; i++) {
		json_t *utf8 = json_stringn(out.part[i], out.len[i]);

		/* Parts travel as UTF-8: jansson's own check must pass. */
		FUZZ_CHECK(utf8 != NULL);
		json_decref(utf8);
		f[3 + i] = (struct wire_buf){out.part[i], out.len[i]};
	}
	wire_sign(key, keylen, &f[3], 4, sig);
	FUZZ_CHECK(strcmp(sig, out.sig) == 0);
	FUZZ_CHECK(decode(key, keylen, f, 7, &back) == 0);
	if (!msg_equal(m, &back)) {
		for (i = 0; i < 4; i++)
			fprintf(stderr, "part %d: %.*s\n", i, (int)out.len[i],
				out.part[i]);
	}
	FUZZ_CHECK(msg_equal(m, &back));
	wire_msg_cleanup(&back);
	wire_out_cleanup(&out);
}

static void check_sanitize(const struct wire_buf *b)
{
	size_t n, n2;
	char *s = wire_utf8_sanitize(b->data, b->len, &n), *s2;
	json_t *valid_in = json_stringn(b->data, b->len);
	json_t *valid_out;

	FUZZ_CHECK(s != NULL && s[n] == '\0');
	valid_out = json_stringn(s, n);
	FUZZ_CHECK(valid_out != NULL);
	if (valid_in)
		FUZZ_CHECK(n == b->len && memcmp(s, b->data, n) == 0);
	s2 = wire_utf8_sanitize(s, n, &n2);
	FUZZ_CHECK(s2 != NULL && n2 == n && memcmp(s, s2, n) == 0);
	json_decref(valid_in);
	json_decref(valid_out);
	free(s2);
	free(s);
}

/* A request built the way the daemon builds one: wire_header_new with the
 * decoded msg_type as type and session, no parent or metadata (sent as {}),
 * the decoded content. It must decode back to exactly that. */
static void fresh_request(const void *key, size_t keylen,
			  const struct wire_msg *m)
{
	char id[37];
	json_t *h = wire_header_new(m->msg_type, m->msg_type, id);
	struct wire_msg back;
	struct wire_out out;
	struct wire_buf f[6];
	int i;

	FUZZ_CHECK(h != NULL && strlen(id) == 36);
	FUZZ_CHECK(
	    strcmp(json_string_value(json_object_get(h, "msg_id")), id) == 0);
	FUZZ_CHECK(wire_encode(key, keylen, h, NULL, NULL, m->content, &out) ==
		   0);
	f[0] = (struct wire_buf){WIRE_DELIM, WIRE_DELIM_LEN};
	f[1] = (struct wire_buf){out.sig, strlen(out.sig)};
	for (i = 0; i < 4; i++)
		f[2 + i] = (struct wire_buf){out.part[i], out.len[i]};
	FUZZ_CHECK(decode(key, keylen, f, 6, &back) == 0);
	FUZZ_CHECK(json_equal(back.header, h) &&
		   json_equal(back.content, m->content));
	FUZZ_CHECK(json_object_size(back.parent_header) == 0 &&
		   json_object_size(back.metadata) == 0);
	FUZZ_CHECK(strcmp(back.msg_id, id) == 0 &&
		   strcmp(back.msg_type, m->msg_type) == 0 &&
		   back.parent_msg_id == NULL);
	wire_msg_cleanup(&back);
	wire_out_cleanup(&out);
	/* Only objects are parts: a string one is refused, nothing leaks. */
	FUZZ_CHECK(wire_encode(key, keylen, h, json_object_get(h, "msg_id"),
			       NULL, m->content, &out) == -EINVAL);
	FUZZ_CHECK(wire_encode(key, keylen, h, NULL, NULL,
			       json_object_get(h, "msg_id"), &out) == -EINVAL);
	FUZZ_CHECK(out.part[0] == NULL);
	json_decref(h);
}

/* Re-signs the frames after the delimiter at d and checks what follows. */
static void resigned(const void *key, size_t keylen, struct wire_buf *f,
		     size_t n, size_t d, int rc0, const struct wire_msg *m0)
{
	const struct wire_buf orig = f[d + 1];
	char sig[WIRE_SIG_HEX + 1], bad[WIRE_SIG_HEX + 1];
	struct wire_msg m, k0;
	int rc, rck;

	wire_sign(key, keylen, &f[d + 2], 4, sig);
	FUZZ_CHECK(strlen(sig) == (keylen ? WIRE_SIG_HEX : 0));
	f[d + 1] = (struct wire_buf){sig, strlen(sig)};
	rc = decode(key, keylen, f, n, &m);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
	if (orig.len == f[d + 1].len && memcmp(orig.data, sig, orig.len) == 0) {
		FUZZ_CHECK(rc == rc0);
		if (rc == 0)
			FUZZ_CHECK(msg_equal(&m, m0));
	}
	/* Without a key only the empty signature passes. */
	f[d + 1] = (struct wire_buf){"", 0};
	rck = decode(NULL, 0, f, n, &k0);
	FUZZ_CHECK(rck == rc);
	if (rc == 0) {
		FUZZ_CHECK(msg_equal(&m, &k0));
		round_trip(key, keylen, &m);
		fresh_request(key, keylen, &m);
	}
	wire_msg_cleanup(&k0);
	wire_msg_cleanup(&m);
	if (keylen) {
		memcpy(bad, sig, sizeof(bad));
		bad[keylen % WIRE_SIG_HEX] ^= 1; /* '0'<->'1', 'a'<->'`' ... */
		f[d + 1] = (struct wire_buf){bad, WIRE_SIG_HEX};
		FUZZ_CHECK(decode(key, keylen, f, n, &m) == -EPERM);
		memcpy(bad, sig, sizeof(bad));
		for (size_t i = 0; i < WIRE_SIG_HEX; i++)
			if (bad[i] >= 'a' && bad[i] <= 'f')
				bad[i] = (char)(bad[i] - 'a' + 'A');
		if (strcmp(bad, sig) != 0)
			FUZZ_CHECK(decode(key, keylen, f, n, &m) == -EPERM);
		f[d + 1] = (struct wire_buf){"", 0};
		FUZZ_CHECK(decode(key, keylen, f, n, &m) == -EPERM);
		wire_msg_cleanup(&m);
	}
	f[d + 1] = orig;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_buf f[FUZZ_FRAMES + 1];
	const char *p = (const char *)data, *end = p + size, *q;
	const char *key;
	size_t keylen, n = 0, d, i;
	struct wire_msg m;
	int rc;

	q = memchr(p, 0x1e, size);
	key = p;
	keylen = (size_t)((q ? q : end) - p);
	p = q ? q + 1 : NULL;
	while (p != NULL && n < FUZZ_FRAMES) {
		q = memchr(p, 0x1e, (size_t)(end - p));
		f[n].data = p;
		f[n].len = (size_t)((q ? q : end) - p);
		n++;
		p = q ? q + 1 : NULL;
	}
	for (i = 0; i < n; i++)
		check_sanitize(&f[i]);
	rc = decode(key, keylen, f, n, &m);
	for (d = 0; d < n; d++) {
		if (f[d].len == WIRE_DELIM_LEN &&
		    memcmp(f[d].data, WIRE_DELIM, WIRE_DELIM_LEN) == 0)
			break;
	}
	if (d == n || n - d - 1 < 5)
		FUZZ_CHECK(rc == -EBADMSG);
	else
		resigned(key, keylen, f, n, d, rc, &m);
	if (rc == 0)
		round_trip(key, keylen, &m);
	wire_msg_cleanup(&m);
	return 0;
}
