/*
 * wire.c: Jupyter messages as bytes (protocol 5.3).
 *
 * Owns the translation between json_t messages and the frames that follow
 * the "<IDS|MSG>" delimiter: compact serialization and HMAC-SHA256 signing on
 * the way out; delimiter search, constant-time signature check and lenient
 * JSON parsing on the way in; and the UTF-8 repair that lets a sloppy
 * kernel's output through jansson, which rejects invalid UTF-8 outright.
 *
 * Invariants: a signature always covers the exact bytes that travel (the
 * parts we serialized, or the frames as received); a received message is
 * never re-serialized to be checked, because kernels differ in spacing and
 * key order. Signatures are lowercase hex and compared in constant time.
 *
 * Threads: the module has no state, so any thread may call any function.
 *
 * It does not touch sockets, keep a digest history against replays (we only
 * talk to kernels we launched, over private endpoints), interpret message
 * types, or look inside buffer frames.
 */
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uuid/uuid.h>

#include "flatj.h"
#include "jtext.h"
#include "sha256.h"

/* HMAC-SHA256 over the concatenated parts into out as lowercase hex. */
static void hmac_hex(const void *key, size_t keylen,
		     const struct wire_buf *parts, size_t n,
		     char out[WIRE_SIG_HEX + 1])
{
	unsigned char mac[SHA256_LEN];
	struct sha256_hmac h;

	sha256_hmac_init(&h, key, keylen);
	/* Empty frames may carry a NULL pointer; they add nothing. */
	for (size_t i = 0; i < n; i++)
		if (parts[i].len)
			sha256_hmac_update(&h, parts[i].data, parts[i].len);
	sha256_hmac_final(&h, mac);
	jtext_hex(mac, SHA256_LEN, out);
}

void wire_sign(const void *key, size_t keylen, const struct wire_buf *parts,
	       size_t n, char out[WIRE_SIG_HEX + 1])
{
	out[0] = '\0';
	if (keylen == 0)
		return;
	hmac_hex(key, keylen, parts, n, out);
}

/*
 * Without a key only the empty signature matches what we would compute, so a
 * stray signature is rejected rather than silently trusted.
 */
int wire_verify(const void *key, size_t keylen, const struct wire_buf *parts,
		size_t n, const void *sig, size_t siglen)
{
	char want[WIRE_SIG_HEX + 1];

	if (keylen == 0)
		return siglen == 0 ? 0 : -1;
	if (siglen != WIRE_SIG_HEX)
		return -1;
	hmac_hex(key, keylen, parts, n, want);
	/* Lowercase only: an uppercase digit differs from want and fails. */
	return sha256_memeq(want, sig, WIRE_SIG_HEX) ? 0 : -1;
}

/* ISO 8601 UTC with microseconds, as ipykernel writes it. */
static int format_date(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return -errno;
	if (!gmtime_r(&ts.tv_sec, &tm))
		return -EOVERFLOW;
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0)
		return -EOVERFLOW;
	snprintf(buf + n, size - n, ".%06ldZ", (long)(ts.tv_nsec / 1000));
	return 0;
}

json_t *wire_header_new(const char *msg_type, const char *session,
			char msg_id_out[37])
{
	uuid_t uu;
	char id[37], date[64];
	json_t *h;

	if (format_date(date, sizeof(date)) < 0)
		return NULL;
	uuid_generate_random(uu);
	uuid_unparse_lower(uu, id);
	/* json_pack fails (NULL) on a NULL string, which we pass through. */
	h = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "msg_id", id, "session",
		      session, "username", "e2b-ci", "date", date, "msg_type",
		      msg_type, "version", WIRE_PROTOCOL_VERSION);
	if (h && msg_id_out)
		memcpy(msg_id_out, id, sizeof(id));
	return h;
}

/* Compact UTF-8 JSON of j, NUL-terminated, or "{}" for NULL. json_dumpb
 * rather than json_dumps so a string holding U+0000 is not cut short. */
static char *dump_part(const json_t *j, size_t *lenp)
{
	size_t n;
	char *buf;

	if (!j) {
		*lenp = 2;
		return strdup("{}");
	}
	/* Stream messages: bulk copies instead of jansson's byte loop. */
	if (flatj_dump(j, &buf, &n) > 0) {
		*lenp = n;
		return buf;
	}
	/* Once, not sized first and then written: the output never holds a
	 * raw NUL (jansson escapes it), so strlen is its length. */
	buf = json_dumps(j, JSON_COMPACT);
	if (!buf)
		return NULL;
	*lenp = strlen(buf);
	return buf;
}

int wire_encode(const void *key, size_t keylen, json_t *header,
		json_t *parent_header, json_t *metadata, json_t *content,
		struct wire_out *out)
{
	json_t *src[4] = {header, parent_header, metadata, content};
	struct wire_buf parts[4];
	int rc = -ENOMEM, i;

	assert(out);
	memset(out, 0, sizeof(*out));
	/* Only objects are valid parts; NULL stands for {} where allowed. */
	for (i = 0; i < 4; i++) {
		if (!json_is_object(src[i]) && (src[i] || i == 0 || i == 3))
			return -EINVAL;
	}
	for (i = 0; i < 4; i++) {
		out->part[i] = dump_part(src[i], &out->len[i]);
		if (!out->part[i])
			goto out;
		parts[i].data = out->part[i];
		parts[i].len = out->len[i];
	}
	if (keylen > 0)
		hmac_hex(key, keylen, parts, 4, out->sig);
	rc = 0;
out:
	if (rc < 0)
		wire_out_cleanup(out);
	return rc;
}

void wire_out_cleanup(struct wire_out *out)
{
	int i;

	if (!out)
		return;
	for (i = 0; i < 4; i++)
		free(out->part[i]);
	memset(out, 0, sizeof(*out));
}

/* Copies s into dst (when not NULL) with each maximal invalid subpart
 * replaced by U+FFFD; returns the output length either way. */
static size_t utf8_repair(const unsigned char *s, size_t len,
			  unsigned char *dst)
{
	static const unsigned char fffd[3] = {0xef, 0xbf, 0xbd};
	size_t i = 0, o = 0;
	int step;

	while (i < len) {
		step = jtext_utf8_step(s + i, len - i);
		if (step > 0) {
			if (dst)
				memcpy(dst + o, s + i, (size_t)step);
			o += (size_t)step;
			i += (size_t)step;
		} else {
			if (dst)
				memcpy(dst + o, fffd, sizeof(fffd));
			o += sizeof(fffd);
			i += (size_t)-step;
		}
	}
	return o;
}

char *wire_utf8_sanitize(const char *src, size_t len, size_t *outlen)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t n = utf8_repair(s, len, NULL);
	unsigned char *dst = malloc(n + 1);

	if (!dst)
		return NULL;
	utf8_repair(s, len, dst);
	dst[n] = '\0';
	if (outlen)
		*outlen = n;
	return (char *)dst;
}

/*
 * Parses one part into a JSON object (new reference in *out). Invalid UTF-8
 * is repaired first because jansson refuses it; an integer beyond json_int_t
 * makes jansson fail with a numeric overflow, and then the part is read again
 * with every integer as a real, which loses precision but keeps the message.
 * Returns 0, -EBADMSG or -ENOMEM.
 */
static int parse_part(const struct wire_buf *b, json_t **out)
{
	const char *p = b->data;
	size_t len = b->len;
	char *clean = NULL;
	json_error_t err;
	json_t *j;
	int rc = -EBADMSG;

	*out = NULL;
	/* Stream content and most headers: flat objects of strings. */
	rc = flatj_parse(p, len, out);
	if (rc != 0)
		return rc > 0 ? 0 : rc;
	rc = -EBADMSG;
	if (!jtext_utf8_valid(p, len)) {
		clean = wire_utf8_sanitize(p, len, &len);
		if (!clean)
			return -ENOMEM;
		p = clean;
	}
	j = json_loadb(p, len, JSON_ALLOW_NUL, &err);
	if (!j && json_error_code(&err) == json_error_numeric_overflow)
		j = json_loadb(p, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
			       &err);
	if (!j) {
		if (json_error_code(&err) == json_error_out_of_memory)
			rc = -ENOMEM;
		goto out;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		goto out;
	}
	*out = j;
	rc = 0;
out:
	free(clean);
	return rc;
}

static const char *str_field(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static int find_delim(const struct wire_buf *frames, size_t nframes, size_t *at)
{
	size_t i;

	for (i = 0; i < nframes; i++) {
		if (frames[i].len == WIRE_DELIM_LEN &&
		    memcmp(frames[i].data, WIRE_DELIM, WIRE_DELIM_LEN) == 0) {
			*at = i;
			return 0;
		}
	}
	return -EBADMSG;
}

/* The message types whose content wire_decode_lazy leaves unparsed. */
static bool is_output(const char *type)
{
	static const char *const types[] = {
	    "stream", "execute_result", "display_data", "update_display_data"};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(type, types[i]) == 0)
			return true;
	return false;
}

/* wire_decode; lazy leaves an output message's content unparsed. */
static int decode(const void *key, size_t keylen, const struct wire_buf *frames,
		  size_t nframes, bool lazy, struct wire_msg *out)
{
	json_t **dst[3] = {&out->header, &out->parent_header, &out->metadata};
	const struct wire_buf *sig, *parts;
	size_t d;
	int rc, i;

	memset(out, 0, sizeof(*out));
	rc = find_delim(frames, nframes, &d);
	if (rc < 0)
		goto out;
	rc = -EBADMSG;
	if (nframes - d - 1 < 5)
		goto out;
	sig = &frames[d + 1];
	parts = &frames[d + 2];
	/* Check the raw bytes first: nothing unauthenticated gets parsed. */
	rc = -EPERM;
	if (wire_verify(key, keylen, parts, 4, sig->data, sig->len) < 0)
		goto out;
	for (i = 0; i < 3; i++) {
		rc = parse_part(&parts[i], dst[i]);
		if (rc < 0)
			goto out;
	}
	out->msg_type = str_field(out->header, "msg_type");
	out->msg_id = str_field(out->header, "msg_id");
	out->parent_msg_id = str_field(out->parent_header, "msg_id");
	if (!out->msg_type)
		out->msg_type = "";
	if (!out->msg_id)
		out->msg_id = "";
	out->raw_content = parts[3];
	rc = lazy && is_output(out->msg_type) ? 0 : wire_msg_parse_content(out);
out:
	if (rc < 0)
		wire_msg_cleanup(out);
	return rc;
}

int wire_decode(const void *key, size_t keylen, const struct wire_buf *frames,
		size_t nframes, struct wire_msg *out)
{
	return decode(key, keylen, frames, nframes, false, out);
}

int wire_decode_lazy(const void *key, size_t keylen,
		     const struct wire_buf *frames, size_t nframes,
		     struct wire_msg *out)
{
	return decode(key, keylen, frames, nframes, true, out);
}

int wire_msg_parse_content(struct wire_msg *m)
{
	int rc;

	if (m->content)
		return 0;
	rc = parse_part(&m->raw_content, &m->content);
	if (rc == 0)
		m->raw_content = (struct wire_buf){NULL, 0};
	return rc;
}

void wire_msg_cleanup(struct wire_msg *m)
{
	if (!m)
		return;
	json_decref(m->header);
	json_decref(m->parent_header);
	json_decref(m->metadata);
	json_decref(m->content);
	memset(m, 0, sizeof(*m));
}
