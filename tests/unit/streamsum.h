/*
 * streamsum.h: what an execution's NDJSON stream said so far, as the words
 * "type[:name]" joined by spaces, number_of_executions left out (e.g.
 * "stdout error:ZeroDivisionError end_of_execution"). For the unit tests
 * of exec and run, which read the stream through exec_read.
 */
#ifndef E2BCI_STREAMSUM_H
#define E2BCI_STREAMSUM_H

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "exec.h"

/* Reads what e holds; the answer lives until the next call. */
static const char *stream_summary(struct exec *e)
{
	static char out[1024];
	char buf[65536], *line, *save = NULL;
	ssize_t n = exec_read(e, buf, sizeof(buf) - 1);

	out[0] = '\0';
	if (n <= 0)
		return out;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		json_t *j = json_loads(line, 0, NULL);
		const char *t = json_string_value(json_object_get(j, "type"));
		const char *name =
		    json_string_value(json_object_get(j, "name"));

		if (t && strcmp(t, "number_of_executions") != 0)
			snprintf(out + strlen(out), sizeof(out) - strlen(out),
				 "%s%s%s%s", *out ? " " : "", t,
				 name ? ":" : "", name ? name : "");
		json_decref(j);
	}
	return out;
}

#endif
