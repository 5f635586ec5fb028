/*
 * sdn: the systemd notify protocol.
 *
 * Datagrams go out through a socket of our own, non-blocking: libsystemd's
 * sd_notify() blocks when the receiver's queue is full, and nothing may block
 * the loop (a message that cannot be queued is dropped; the next watchdog
 * ping comes soon). libsystemd still parses WATCHDOG_USEC/WATCHDOG_PID.
 * Owns that socket and the last STATUS text (identical lines are not
 * repeated). Every call is cheap and harmless without NOTIFY_SOCKET. Loop
 * thread only.
 */
#include "sdn.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

static char sdn_last_status[256];
static int sdn_fd = -1;

static void sdn_send(const char *text)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	socklen_t len;

	if (!path || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(a.sun_path))
		return;
	if (sdn_fd < 0)
		sdn_fd = socket(AF_UNIX,
				SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sdn_fd < 0)
		return;
	memcpy(a.sun_path, path, strlen(path));
	if (path[0] == '@')
		a.sun_path[0] = '\0'; /* abstract namespace */
	len =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	(void)sendto(sdn_fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL,
		     (struct sockaddr *)&a, len);
}

void sdn_ready(void)
{
	sdn_send("READY=1");
}

void sdn_stopping(void)
{
	sdn_send("STOPPING=1");
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
	char msg[sizeof(line) + 8];
	snprintf(msg, sizeof(msg), "STATUS=%s", line);
	sdn_send(msg);
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
	sdn_send("WATCHDOG=1");
}
