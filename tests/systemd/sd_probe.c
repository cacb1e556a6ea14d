/*
 * sd_probe.c: a tiny socket-activated daemon built on daemon/sd.c, for the
 * notify-protocol harness (tests/systemd/sdharness.py) to be tested against
 * before and apart from ticketd. It takes the sockets systemd passes, answers
 * every connection with "probe <pid>\n", and follows ticketd's protocol:
 * READY=1 and STATUS once serving, WATCHDOG=1 at half WATCHDOG_USEC,
 * RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 then exit 0 on SIGTERM.
 * SIGUSR1 stalls it (the loop stops making progress, so the pings stop), as a
 * wedged event loop would. Exit 1 with the cause logged when the passed
 * sockets are unusable or missing.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sd.h"

#define MAX_FDS 8

/* Monotonic time in microseconds. */
static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Accepts one connection on fd and answers it; -errno on accept failure. */
static int serve_one(int fd)
{
	char line[64];
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	int n;

	if (c < 0)
		return errno == EAGAIN ? 0 : -errno;
	n = snprintf(line, sizeof(line), "probe %ld\n", (long)getpid());
	if (write(c, line, (size_t)n) != n)
		log_warn("probe: short reply: %s", strerror(errno));
	close(c);
	return 0;
}

int main(void)
{
	struct pollfd pfd[MAX_FDS + 1];
	uint64_t wd, next_ping = 0;
	int n, first, sfd, stalled = 0, reloads = 0, served = 0;
	char err[256];
	sigset_t mask;

	log_init();
	n = sysd_listen_fds(&first, err, sizeof(err));
	if (n < 0) {
		log_err("probe: %s", err);
		return 1;
	}
	if (n == 0 || n > MAX_FDS) {
		log_err("probe: needs 1 to %d sockets from LISTEN_FDS, got %d", MAX_FDS, n);
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		log_err("probe: signalfd: %s", strerror(errno));
		return 1;
	}
	for (int i = 0; i < n; i++)
		pfd[i] = (struct pollfd){ .fd = first + i, .events = POLLIN };
	pfd[n] = (struct pollfd){ .fd = sfd, .events = POLLIN };

	wd = sysd_watchdog_usec() / 2;
	sysd_notify_ready();
	sysd_notify_status("probe serving %d socket(s), %d reloads", n, reloads);
	log_info("probe: ready, %d socket(s), watchdog ping every %llu us", n,
		 (unsigned long long)wd);
	for (;;) {
		int timeout = -1;

		if (wd && !stalled) {
			uint64_t now = now_usec();

			if (now >= next_ping) {
				sysd_notify_watchdog();
				next_ping = now + wd;
			}
			timeout = (int)((next_ping - now + 999) / 1000);
		}
		if (poll(pfd, (nfds_t)n + 1, timeout) < 0 && errno != EINTR) {
			log_err("probe: poll: %s", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n && !stalled; i++) {
			int r;

			if (!(pfd[i].revents & POLLIN))
				continue;
			if ((r = serve_one(pfd[i].fd)) < 0)
				log_warn("probe: accept: %s", strerror(-r));
			served++;
		}
		if (pfd[n].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			switch (si.ssi_signo) {
			case SIGHUP:
				sysd_notify_reloading();
				reloads++;
				sysd_notify_status("probe serving %d socket(s), %d reloads",
						   n, reloads);
				sysd_notify_ready();
				break;
			case SIGUSR1:
				log_notice("probe: stalling, watchdog pings stop");
				stalled = 1;
				break;
			case SIGTERM:
				sysd_notify_stopping();
				log_info("probe: stopping after %d connections", served);
				return 0;
			}
		}
		if (stalled) /* a wedged loop: no pings, no accepts, only signals */
			for (int i = 0; i < n; i++)
				pfd[i].events = 0;
	}
}
