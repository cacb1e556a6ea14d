/*
 * log.h: ticketd's logging. One line per event on stderr, with a level.
 * Under systemd (JOURNAL_STREAM names our stderr) each line starts with a
 * "<N>" syslog priority so journald keeps the level; otherwise it starts with
 * an ISO-8601 timestamp and the level's name. Safe from any thread: each line
 * is one write(2). Never call it while holding a seller core's lock.
 */
#ifndef TICKETD_LOG_H
#define TICKETD_LOG_H

enum log_level {
	LOGL_ERR = 3,
	LOGL_WARN = 4,
	LOGL_NOTICE = 5,
	LOGL_INFO = 6,
	LOGL_DEBUG = 7,
};

/* Reads JOURNAL_STREAM and picks the line format; call once at start-up. */
void log_init(void);
/* Parses "error", "warn", "notice", "info" or "debug"; 0 or -EINVAL. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* True when lines go to journald with <N> prefixes. */
int log_to_journal(void);

__attribute__((format(printf, 2, 3)))
void log_msg(enum log_level level, const char *fmt, ...);

#define log_err(...) log_msg(LOGL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOGL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOGL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)

#endif /* TICKETD_LOG_H */
