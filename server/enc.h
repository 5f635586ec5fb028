/*
 * enc: kernel events -> the NDJSON lines of the HTTP contract.
 *
 * Every function returns one complete line: a JSON object, ASCII only (all
 * non-ASCII escaped as \uXXXX, surrogate pairs for astral characters), strict
 * (no NaN/Infinity: non-finite reals become null), ended by exactly one "\n".
 * The caller owns the returned malloc'd string (free()); NULL means out of
 * memory. Pure functions: no I/O, no global state; any thread.
 */
#ifndef E2BCI_ENC_H
#define E2BCI_ENC_H

#include <jansson.h>
#include <stdbool.h>

/* {"type":"number_of_executions","execution_count":N} */
char *enc_count(long long execution_count);

/* {"type":"stdout"|"stderr","text":...,"timestamp":...}. stream is "stdout"
 * or "stderr"; timestamp is an ISO-8601 string (the kernel message's date),
 * or NULL for the current UTC time. */
char *enc_stream(const char *stream, const char *text, const char *timestamp);
/* Same for text of len bytes (which may hold NUL). */
char *enc_stream_n(const char *stream, const char *text, size_t len,
		   const char *timestamp);

/* The same line straight from a stream message's content as received (len
 * bytes of JSON, e.g. {"name":"stdout","text":"..."}), in one pass over the
 * text and one copy: the result equals enc_stream_n() of the parsed name
 * and text. Returns 1 with the new line in *line, 0 when the content is not
 * a flat object of strings with a "text" this reads exactly (parse it and
 * use enc_stream_n), -ENOMEM. */
int enc_stream_raw(const char *content, size_t len, const char *timestamp,
		   char **line);

/* A result line from a MIME bundle (borrowed): known MIME types map to their
 * fields (text/plain -> text with one pair of surrounding ' or " stripped,
 * text/html -> html, text/markdown -> markdown, image/svg+xml -> svg,
 * image/png -> png, image/jpeg -> jpeg, application/pdf -> pdf, text/latex ->
 * latex, application/json -> json, application/javascript -> javascript,
 * e2b/data -> data, e2b/chart -> chart); every other MIME type goes into
 * "extra" under its own key; "extra" is always present; "is_main_result".
 * A string-valued e2b/data, e2b/chart or application/json holding JSON text
 * is parsed into an object. Non-object bundles yield a result with only
 * extra and is_main_result. */
char *enc_result(json_t *bundle, bool is_main_result);

/* {"type":"error","name":...,"value":...,"traceback":...}; NULL arguments
 * become "". */
char *enc_error(const char *name, const char *value, const char *traceback);

/* Same from an iopub error / execute_reply content (borrowed): ename, evalue,
 * traceback (array of strings joined by "\n"); missing or non-string fields
 * become "". */
char *enc_error_content(json_t *content);

/* {"type":"<type>"} for keepalive and end_of_execution. */
char *enc_simple(const char *type);

/* The text/plain post-processing alone: strips one pair of matching
 * surrounding single or double quotes (length >= 2). Returns a new malloc'd
 * string. */
char *enc_strip_quotes(const char *s);

#endif
