/*
 * errmsg: the one way a fallible function tells its caller why.
 *
 * A function that can fail for a reason worth showing takes a buffer
 * (char *err, size_t errlen) and writes one plain-text line into it, printf
 * style; the caller decides who sees the reason (the log, --check's output,
 * an HTTP answer with the status the caller maps it to). Any thread.
 */
#ifndef E2BCI_ERRMSG_H
#define E2BCI_ERRMSG_H

#include <stddef.h>

/* Formats the reason into err (errlen bytes, NUL-terminated, cut to fit;
 * nothing when err is NULL or errlen 0). Returns rc, so that a caller can
 * write `return errmsg_set(err, errlen, -1, "...", ...);`. */
int errmsg_set(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
