/*
 * errmsg: a reason for the caller (see errmsg.h). Replaces the copies each
 * module had (cfg_seterr, kspec_seterr, req's fail). Any thread.
 */
#include "errmsg.h"

#include <stdarg.h>
#include <stdio.h>

int errmsg_set(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return rc;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}
