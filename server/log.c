/*
 * log: leveled, line-oriented logging to stderr.
 *
 * Owns the log threshold and the output format. Every event becomes exactly
 * one line, formatted into a bounded stack buffer and handed to the kernel
 * with a single write(2), so lines never interleave with each other even if
 * another thread or a child sharing stderr writes at the same time. Messages
 * longer than the buffer are cut and end in "..."; embedded newlines are
 * turned into spaces so that one event stays one journal record.
 *
 * Two formats: "<N>message" when stderr goes to the journal (journald parses
 * the syslog priority), else "2026-11-21T23:59:59.123Z INFO message" in UTC.
 * log_warn()/log_err() append ": strerror(errno)"; the *x variants do not.
 * Every function preserves errno, so callers may log before they return
 * -errno.
 *
 * Threads: log_init() runs once at startup before any other thread exists;
 * after that the state is read-only. It does not open files, rotate, or
 * talk to syslog(3): stderr is the only sink.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static enum log_level log_threshold = LOG_LVL_INFO;
static int log_journal;

void log_init(enum log_level level, int journal)
{
	log_threshold = level;
	log_journal = journal != 0;
}

int log_parse_level(const char *s, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
	    {"error", LOG_LVL_ERR},
	    {"warn", LOG_LVL_WARN},
	    {"info", LOG_LVL_INFO},
	    {"debug", LOG_LVL_DEBUG},
	};
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			if (out != NULL)
				*out = names[i].level;
			return 0;
		}
	}
	return -1;
}

static const char *log_level_name(int pri)
{
	switch (pri) {
	case LOG_LVL_ERR:
		return "ERROR";
	case LOG_LVL_WARN:
		return "WARN";
	case LOG_LVL_INFO:
		return "INFO";
	default:
		return "DEBUG";
	}
}

/* Writes the line prefix into buf (at least 64 bytes); returns its length. */
static size_t log_prefix(char *buf, size_t len, int pri)
{
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	if (log_journal) {
		r = snprintf(buf, len, "<%d>", pri);
		return r > 0 ? (size_t)r : 0;
	}
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 ||
	    gmtime_r(&ts.tv_sec, &tm) == NULL) {
		memset(&tm, 0, sizeof(tm));
		ts.tv_nsec = 0;
	}
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(buf + n, len - n, ".%03ldZ %s ", ts.tv_nsec / 1000000L,
		     log_level_name(pri));
	return n + (r > 0 ? (size_t)r : 0);
}

/* Appends printf output at *len, never beyond cap; returns 1 if cut. */
static int log_append(char *buf, size_t cap, size_t *len, const char *fmt,
		      va_list ap) __attribute__((format(printf, 4, 0)));

static int log_append(char *buf, size_t cap, size_t *len, const char *fmt,
		      va_list ap)
{
	int r;

	if (*len >= cap)
		return 1;
	r = vsnprintf(buf + *len, cap - *len + 1, fmt, ap);
	if (r < 0)
		return 0;
	if ((size_t)r > cap - *len) {
		*len = cap;
		return 1;
	}
	*len += (size_t)r;
	return 0;
}

static int log_appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int log_appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int cut;

	va_start(ap, fmt);
	cut = log_append(buf, cap, len, fmt, ap);
	va_end(ap);
	return cut;
}

/* Hands the finished line to stderr; retries only on EINTR and short
 * writes, and gives up silently otherwise: there is nowhere to report. */
static void log_write(const char *buf, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(STDERR_FILENO, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		buf += w;
		len -= (size_t)w;
	}
}

static void log_vlog(int pri, int with_errno, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void log_vlog(int pri, int with_errno, const char *fmt, va_list ap)
{
	char buf[LOG_LINE_MAX];
	size_t cap = sizeof(buf) - 1; /* room for the final newline */
	size_t len, start, i;
	int saved = errno, cut;

	if (pri > (int)log_threshold)
		return;
	len = log_prefix(buf, cap, pri);
	start = len;
	cut = log_append(buf, cap, &len, fmt, ap);
	if (with_errno && !cut)
		cut = log_appendf(buf, cap, &len, ": %s", strerror(saved));
	for (i = start; i < len; i++) {
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	}
	if (cut)
		memcpy(buf + cap - 3, "...", 3);
	buf[len++] = '\n';
	log_write(buf, len);
	errno = saved;
}

#define LOG_DEFINE(fn, pri, with_errno)                                        \
	void fn(const char *fmt, ...)                                          \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		log_vlog(pri, with_errno, fmt, ap);                            \
		va_end(ap);                                                    \
	}

LOG_DEFINE(log_debug, LOG_LVL_DEBUG, 0)
LOG_DEFINE(log_info, LOG_LVL_INFO, 0)
LOG_DEFINE(log_warn, LOG_LVL_WARN, 1)
LOG_DEFINE(log_warnx, LOG_LVL_WARN, 0)
LOG_DEFINE(log_err, LOG_LVL_ERR, 1)
LOG_DEFINE(log_errx, LOG_LVL_ERR, 0)
