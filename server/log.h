/*
 * log: leveled, line-oriented logging to stderr.
 *
 * One line per event. When JOURNAL_STREAM is set (systemd connected stderr to
 * the journal) each line starts with a "<N>" syslog priority so journald
 * records the level; otherwise lines start with a short timestamp and level.
 * log_warn()/log_err() append strerror(errno); the *x variants do not
 * (OpenBSD httpd's log.c convention). Loop thread only (not signal-safe).
 */
#ifndef E2BCI_LOG_H
#define E2BCI_LOG_H

enum log_level {
	LOG_LVL_ERR = 3,
	LOG_LVL_WARN = 4,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7
};

/* Sets the threshold; journal != 0 selects "<N>" prefixes. */
void log_init(enum log_level level, int journal);
/* Parses "error", "warn", "info", "debug"; returns 0 or -1. */
int log_parse_level(const char *s, enum log_level *out);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
