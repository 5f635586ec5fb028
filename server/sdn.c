/*
 * sdn: the systemd notify protocol through libsystemd's sd_notify().
 *
 * Owns nothing but the last STATUS text (to avoid repeating identical lines).
 * Every call is cheap and harmless without NOTIFY_SOCKET. Loop thread only.
 */
#include "sdn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

static char sdn_last_status[256];

void sdn_ready(void)
{
	sd_notify(0, "READY=1");
}

void sdn_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

void sdn_status(const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (strcmp(line, sdn_last_status) == 0)
		return;
	memcpy(sdn_last_status, line, sizeof(line));
	sd_notifyf(0, "STATUS=%s", line);
}

long sdn_watchdog_ms(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return (long)(usec / 2000);
}

void sdn_watchdog_ping(void)
{
	sd_notify(0, "WATCHDOG=1");
}
