/*
 * sdn: the systemd notify protocol (sd_notify): READY=1 once the default
 * contexts answer, STATUS= lines, STOPPING=1, WATCHDOG=1. All calls are
 * no-ops when NOTIFY_SOCKET is unset. Loop thread only.
 */
#ifndef E2BCI_SDN_H
#define E2BCI_SDN_H

void sdn_ready(void);
void sdn_stopping(void);
void sdn_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Returns the watchdog interval in ms (half of WATCHDOG_USEC) or 0. */
long sdn_watchdog_ms(void);
void sdn_watchdog_ping(void);

#endif
