/*
 * log.c: formats one line per call and writes it to stderr in a single
 * write(2), so lines from different threads never interleave. The level and
 * the format are process-wide atomics; nothing here takes a lock.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static atomic_int cur_level = LOGL_INFO;
static atomic_int journal;

static const char *const level_names[] = {
	[LOGL_ERR] = "error", [LOGL_WARN] = "warn", [LOGL_NOTICE] = "notice",
	[LOGL_INFO] = "info", [LOGL_DEBUG] = "debug",
};

void log_init(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* JOURNAL_STREAM is "device:inode" of the stream journald gave us. */
	atomic_store(&journal, js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
			       fstat(STDERR_FILENO, &st) == 0 &&
			       (unsigned long long)st.st_dev == dev &&
			       (unsigned long long)st.st_ino == ino);
}

/* syslog's names for the levels: "warning" is journald's name for "warn",
 * and the levels above error that ticketd never uses log errors only. */
static const struct { const char *name; enum log_level level; } level_aliases[] = {
	{ "warning", LOGL_WARN }, { "err", LOGL_ERR }, { "crit", LOGL_ERR },
	{ "alert", LOGL_ERR }, { "emerg", LOGL_ERR },
};

int log_level_parse(const char *name, enum log_level *out)
{
	for (int i = LOGL_ERR; i <= LOGL_DEBUG; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof(level_aliases) / sizeof(level_aliases[0]); i++) {
		if (strcmp(name, level_aliases[i].name) == 0) {
			*out = level_aliases[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	return level >= LOGL_ERR && level <= LOGL_DEBUG ? level_names[level] : "?";
}

void log_set_level(enum log_level level)
{
	atomic_store(&cur_level, (int)level);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&cur_level);
}

int log_to_journal(void)
{
	return atomic_load(&journal);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	size_t n = 0;
	va_list ap;
	int w;

	if ((int)level > atomic_load_explicit(&cur_level, memory_order_relaxed))
		return;
	if (atomic_load_explicit(&journal, memory_order_relaxed)) {
		n = (size_t)snprintf(line, sizeof(line), "<%d>", (int)level);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ ticketd[%ld] %s: ",
				      ts.tv_nsec / 1000000, (long)getpid(),
				      log_level_name(level));
	}
	va_start(ap, fmt);
	w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (w < 0)
		w = 0;
	n += (size_t)w;
	if (n > sizeof(line) - 2) { /* truncated: mark it, keep the newline */
		n = sizeof(line) - 2;
		memcpy(line + n - 3, "...", 3);
	}
	/* One line per event: a message's own newlines must not split it. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	for (size_t off = 0; off < n;) {
		ssize_t r = write(STDERR_FILENO, line + off, n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* stderr is gone; nowhere left to report it */
		off += (size_t)r;
	}
}
