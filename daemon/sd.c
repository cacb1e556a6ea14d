/*
 * sd.c: ticketd's only contact with systemd, through libsystemd. It sends
 * state changes over the notify socket (READY, RELOADING, STOPPING, STATUS,
 * WATCHDOG), reads the watchdog interval, and checks the sockets passed by
 * socket activation. What crosses its border: strings to $NOTIFY_SOCKET,
 * and the fds systemd passed (made non-blocking, left open, owned by the
 * caller). Every call is thread-safe and a no-op outside systemd.
 * configure requires libsystemd, so nothing here is conditional.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "sd.h"

/* Set after a failed send was logged, cleared by the next success: a dead
 * notify socket costs one log line, not one per watchdog ping. */
static atomic_bool notify_failing;

/* Sends one notify message; logs the first of a run of failures. */
static void notify(const char *what, const char *msg)
{
	int r = sd_notify(0, msg);

	if (r >= 0) {
		if (r > 0)
			atomic_store(&notify_failing, false);
		return;
	}
	if (!atomic_exchange(&notify_failing, true))
		log_warn("systemd: cannot send %s to $NOTIFY_SOCKET: %s", what,
			 strerror(-r));
}

void sysd_notify_ready(void)
{
	notify("READY=1", "READY=1");
}

void sysd_notify_reloading(void)
{
	struct timespec ts;
	char msg[64];

	/* systemd matches MONOTONIC_USEC against its own reload start time. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
		 (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
	notify("RELOADING=1", msg);
}

void sysd_notify_stopping(void)
{
	notify("STOPPING=1", "STOPPING=1");
}

void sysd_notify_status(const char *fmt, ...)
{
	char msg[512] = "STATUS=";
	size_t pre = strlen(msg);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg + pre, sizeof(msg) - pre, fmt, ap);
	va_end(ap);
	/* A newline would start a new assignment: keep STATUS on one line. */
	for (char *p = msg + pre; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	notify("STATUS=", msg);
}

uint64_t sysd_watchdog_usec(void)
{
	uint64_t usec = 0;
	int r = sd_watchdog_enabled(0, &usec);

	if (r < 0) {
		log_warn("systemd: ignoring malformed WATCHDOG_USEC/WATCHDOG_PID: %s",
			 strerror(-r));
		return 0;
	}
	return r > 0 ? usec : 0;
}

void sysd_notify_watchdog(void)
{
	notify("WATCHDOG=1", "WATCHDOG=1");
}

/* Checks that fd is a listening TCP socket; 0, or -EINVAL with why in err. */
static int check_listen_fd(int fd, const char *name, char *err, size_t errlen)
{
	const char *why;
	int r, fl;

	if ((r = sd_is_socket(fd, AF_UNSPEC, 0, -1)) <= 0)
		why = r < 0 ? strerror(-r) : "is not a socket";
	else if ((r = sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, -1)) <= 0)
		why = r < 0 ? strerror(-r)
			    : "is not a stream socket (a datagram socket? use ListenStream=)";
	else if ((r = sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, -1, 0)) <= 0)
		why = r < 0 ? strerror(-r) : "is not a TCP (IPv4 or IPv6) socket";
	else if ((r = sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1)) <= 0)
		why = r < 0 ? strerror(-r) : "is not listening";
	else if ((fl = fcntl(fd, F_GETFL)) < 0 ||
		 fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		why = strerror(errno); /* several loops accept on it: never block */
	else
		return 0;
	snprintf(err, errlen, "passed socket fd %d (%s) %s", fd, name, why);
	return -EINVAL;
}

int sysd_listen_fds(int *first, char *err, size_t errlen)
{
	char **names = NULL;
	char dummy[1];
	int n, r = -EINVAL;

	if (!err || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	*first = SD_LISTEN_FDS_START;
	/* Leaves LISTEN_* set, so a second call gives the same answer. */
	n = sd_listen_fds_with_names(0, &names);
	if (n < 0) {
		snprintf(err, errlen, "bad socket activation environment "
			 "(LISTEN_PID=%s LISTEN_FDS=%s): %s",
			 getenv("LISTEN_PID") ? getenv("LISTEN_PID") : "unset",
			 getenv("LISTEN_FDS") ? getenv("LISTEN_FDS") : "unset",
			 strerror(-n));
		goto fail;
	}
	for (int i = 0; i < n; i++)
		if (check_listen_fd(SD_LISTEN_FDS_START + i,
				    names && names[i] ? names[i] : "unnamed",
				    err, errlen) < 0)
			goto fail;
	r = n;
fail:
	if (names)
		for (int i = 0; names[i]; i++)
			free(names[i]);
	free(names);
	return r;
}
