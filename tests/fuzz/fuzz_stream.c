/*
 * fuzz_stream: the one-copy stream path against the parsing path,
 * differentially.
 *
 * The input is a stream message's content as a kernel might send it.
 * Invariants:
 *   - enc_stream_raw returns 1, 0 or -ENOMEM; a line exactly when 1;
 *   - when it returns 1, the parsing path (wire_msg_parse_content: flatj or
 *     jansson after UTF-8 repair, then enc_stream_n of the name and text)
 *     accepts the content and makes the same line, byte for byte;
 *   - flatj_members accepts exactly what flatj_parse accepts, except
 *     objects with an escaped key (it declines those), and finds as many
 *     members as the text has.
 */
#include "fuzz.h"

#include "enc.h"
#include "flatj.h"
#include "wire.h"

#include <errno.h>
#include <string.h>

#define TS "2026-11-22T05:21:29.956554Z"

static char *reference(const char *p, size_t len)
{
	struct wire_msg m = {0};
	const char *name;
	json_t *text;
	char *line = NULL;

	m.raw_content.data = p;
	m.raw_content.len = len;
	if (wire_msg_parse_content(&m) < 0)
		return NULL;
	name = json_string_value(json_object_get(m.content, "name"));
	text = json_object_get(m.content, "text");
	if (json_is_string(text))
		line = enc_stream_n(
		    name && strcmp(name, "stderr") == 0 ? "stderr" : "stdout",
		    json_string_value(text), json_string_length(text), TS);
	wire_msg_cleanup(&m);
	return line;
}

/* Members are found in exactly the texts flatj_parse reads, except that
 * an escape in a key declines (a backslash anywhere keeps this simple). */
static void check_members(const char *p, size_t len)
{
	static struct flatj_member m[4096];
	json_t *o = NULL;
	int n = flatj_members(p, len, m, 4096);
	int parsed = flatj_parse(p, len, &o);

	if (parsed != -ENOMEM) {
		if (n >= 0)
			FUZZ_CHECK(parsed == 1 &&
				   (size_t)n >= json_object_size(o));
		else if (!memchr(p, '\\', len))
			FUZZ_CHECK(parsed != 1);
	}
	json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	char *line = (char *)1, *want;
	int rc = enc_stream_raw(p, size, TS, &line);

	FUZZ_CHECK(rc == 1 || rc == 0 || rc == -ENOMEM);
	FUZZ_CHECK((rc == 1) == (line != NULL));
	check_members(p, size);
	if (rc != 1)
		return 0;
	want = reference(p, size);
	FUZZ_CHECK(want != NULL);
	FUZZ_CHECK(strcmp(line, want) == 0);
	free(line);
	free(want);
	return 0;
}
