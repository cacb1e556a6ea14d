/*
 * test_sd.c: daemon/sd.c against the real protocol, without systemd. It binds
 * its own notify socket (SO_PASSCRED, so each datagram carries the sender's
 * pid), points $NOTIFY_SOCKET at it and checks every message byte for byte;
 * it sets WATCHDOG_USEC/WATCHDOG_PID; and it places sockets at fd 3.. with
 * LISTEN_FDS/LISTEN_PID as systemd does: a listening TCP socket must be
 * accepted, anything else refused with a cause naming the fd.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sd.h"
#include "tap.h"

static char tmpdir[] = "/tmp/test_sd.XXXXXX";
static char notify_path[sizeof(tmpdir) + 16];

/* Monotonic clock in microseconds, the clock of MONOTONIC_USEC. */
static uint64_t mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Binds a datagram socket at notify_path with SO_PASSCRED; returns it or -1. */
static int notify_socket_open(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int one = 1, fd;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", notify_path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Receives one message within timeout_ms into buf (NUL-terminated) and the
 * sender's pid from SCM_CREDENTIALS; returns its length, or -1 if none came. */
static int notify_recv(int fd, char *buf, size_t len, pid_t *pid, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len - 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct cmsghdr *c;
	ssize_t n;

	*pid = -1;
	if (poll(&pfd, 1, timeout_ms) != 1)
		return -1;
	n = recvmsg(fd, &mh, MSG_DONTWAIT);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred uc;

			memcpy(&uc, CMSG_DATA(c), sizeof(uc));
			*pid = uc.pid;
		}
	}
	return (int)n;
}

/* Expects exactly one message equal to want, sent by this process. */
static void expect_msg(int fd, const char *want, const char *what)
{
	char buf[1024];
	pid_t pid;
	int n = notify_recv(fd, buf, sizeof(buf), &pid, 2000);

	if (!ok(n >= 0 && strcmp(buf, want) == 0, "%s sends \"%s\"", what, want))
		diag("got %s\"%s\"", n < 0 ? "nothing " : "", n < 0 ? "" : buf);
	ok(pid == getpid(), "%s: SCM_CREDENTIALS pid %ld is ours", what, (long)pid);
}

/* Expects nothing on the notify socket for a short while. */
static void expect_none(int fd, const char *what)
{
	char buf[1024];
	pid_t pid;
	int n = notify_recv(fd, buf, sizeof(buf), &pid, 100);

	if (!ok(n < 0, "%s sends nothing", what))
		diag("got \"%s\"", buf);
}

/* Runs fn with stderr captured; returns the number of lines it logged and
 * copies the first into first. */
static int count_log_lines(void (*fn)(void), char *first, size_t firstlen)
{
	char buf[4096];
	int p[2], saved, lines = 0;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	if (n <= 0)
		n = 0;
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	snprintf(first, firstlen, "%.*s", (int)strcspn(buf, "\n"), buf);
	return lines;
}

static void ready_twice(void)
{
	sysd_notify_ready();
	sysd_notify_watchdog();
}

static void watchdog_once(void)
{
	sysd_notify_watchdog();
}

static void read_watchdog(void)
{
	(void)sysd_watchdog_usec();
}

static void test_notify(void)
{
	char buf[1024], logline[1024], longtext[1000];
	uint64_t before, after, usec = 0;
	pid_t pid;
	int fd, n;

	fd = notify_socket_open();
	if (!ok(fd >= 0, "notify socket bound at %s", notify_path))
		return;

	unsetenv("NOTIFY_SOCKET");
	sysd_notify_ready();
	sysd_notify_status("nobody listens");
	expect_none(fd, "without NOTIFY_SOCKET, sysd_notify_ready/status");

	setenv("NOTIFY_SOCKET", notify_path, 1);
	sysd_notify_ready();
	expect_msg(fd, "READY=1", "sysd_notify_ready");
	sysd_notify_stopping();
	expect_msg(fd, "STOPPING=1", "sysd_notify_stopping");
	sysd_notify_watchdog();
	expect_msg(fd, "WATCHDOG=1", "sysd_notify_watchdog");
	sysd_notify_status("serving %d events, %s sold", 2, "1,234/11,000");
	expect_msg(fd, "STATUS=serving 2 events, 1,234/11,000 sold", "sysd_notify_status");
	sysd_notify_status("two\nlines\r");
	expect_msg(fd, "STATUS=two lines ", "sysd_notify_status with newlines");

	memset(longtext, 'x', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	sysd_notify_status("%s", longtext);
	n = notify_recv(fd, buf, sizeof(buf), &pid, 2000);
	ok(n > 7 && n < 512 && strncmp(buf, "STATUS=xxx", 10) == 0 &&
	   strspn(buf + 7, "x") == (size_t)n - 7,
	   "an overlong STATUS is truncated to one message of %d bytes", n);

	before = mono_usec();
	sysd_notify_reloading();
	after = mono_usec();
	n = notify_recv(fd, buf, sizeof(buf), &pid, 2000);
	ok(n > 0 && sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%" SCNu64, &usec) == 1,
	   "sysd_notify_reloading sends RELOADING=1 and MONOTONIC_USEC");
	ok(usec >= before && usec <= after,
	   "MONOTONIC_USEC %" PRIu64 " is CLOCK_MONOTONIC at the call [%" PRIu64
	   ", %" PRIu64 "]", usec, before, after);
	ok(n > 0 && strchr(buf, '\n') == strrchr(buf, '\n') && buf[n - 1] != '\n',
	   "RELOADING message is exactly two assignments");
	ok(pid == getpid(), "RELOADING: SCM_CREDENTIALS pid is ours");

	/* A dead notify socket is logged once per run of failures. */
	setenv("NOTIFY_SOCKET", "/nonexistent/ticketd-notify", 1);
	n = count_log_lines(ready_twice, logline, sizeof(logline));
	ok(n == 1 && strstr(logline, "READY=1") && strstr(logline, "NOTIFY_SOCKET"),
	   "a failing notify socket is logged once, naming the message (%d lines: %s)",
	   n, logline);
	n = count_log_lines(watchdog_once, logline, sizeof(logline));
	ok(n == 0, "later failures in the same run are not logged again (%d lines)", n);
	setenv("NOTIFY_SOCKET", notify_path, 1);
	sysd_notify_ready();
	expect_msg(fd, "READY=1", "after the socket works again, sysd_notify_ready");
	setenv("NOTIFY_SOCKET", "/nonexistent/ticketd-notify", 1);
	n = count_log_lines(watchdog_once, logline, sizeof(logline));
	ok(n == 1 && strstr(logline, "WATCHDOG=1"),
	   "a new failure after a success is logged again (%d lines: %s)", n, logline);
	setenv("NOTIFY_SOCKET", notify_path, 1);
	close(fd);
}

static void test_watchdog(void)
{
	char pid[32], logline[1024];
	int n;

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	ok(sysd_watchdog_usec() == 0, "no WATCHDOG_USEC: watchdog off");

	setenv("WATCHDOG_USEC", "5000000", 1);
	ok(sysd_watchdog_usec() == 5000000, "WATCHDOG_USEC=5000000 without WATCHDOG_PID");
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	ok(sysd_watchdog_usec() == 5000000, "WATCHDOG_PID is ours: 5000000");
	snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	ok(sysd_watchdog_usec() == 0, "WATCHDOG_PID names another process: off");
	unsetenv("WATCHDOG_PID");

	setenv("WATCHDOG_USEC", "soon", 1);
	n = count_log_lines(read_watchdog, logline, sizeof(logline));
	ok(sysd_watchdog_usec() == 0 && n == 1 && strstr(logline, "WATCHDOG_USEC"),
	   "malformed WATCHDOG_USEC: off, and logged (%s)", logline);
	unsetenv("WATCHDOG_USEC");
}

/* Moves fd to target (closing what was there); returns target or -1. */
static int place(int fd, int target)
{
	if (fd < 0)
		return -1;
	if (fd != target) {
		if (dup2(fd, target) < 0) {
			close(fd);
			return -1;
		}
		close(fd);
	}
	return target;
}

/* A TCP socket on 127.0.0.1:0, listening if asked; returns the fd or -1. */
static int tcp_socket(int type, int do_listen)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    (do_listen && listen(fd, 16) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A listening unix stream socket in tmpdir; returns the fd or -1. */
static int unix_listener(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/stream", tmpdir);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 4) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sets LISTEN_PID (ours, or another's) and LISTEN_FDS as systemd would. */
static void set_listen_env(const char *nfds, int ours, const char *names)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%ld", (long)getpid() + (ours ? 0 : 1));
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", nfds, 1);
	if (names)
		setenv("LISTEN_FDNAMES", names, 1);
	else
		unsetenv("LISTEN_FDNAMES");
}

/* Expects sysd_listen_fds to refuse, with a cause containing each needle. */
static void expect_refused(const char *what, const char *needle1, const char *needle2)
{
	char err[256];
	int first = -1, n = sysd_listen_fds(&first, err, sizeof(err));

	if (!ok(n == -EINVAL && strstr(err, needle1) && (!needle2 || strstr(err, needle2)),
		"%s: refused with a clear cause", what))
		diag("returned %d, err \"%s\"", n, err);
	else
		diag("cause: %s", err);
}

/* Checks that a client can connect through fd and fd accepts it. */
static int accepts_through(int fd)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int c, a = -1;

	if (getsockname(fd, (struct sockaddr *)&sin, &sl) < 0)
		return 0;
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sin, sl) < 0)
		goto fail;
	if (poll(&pfd, 1, 2000) == 1)
		a = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
fail:
	if (c >= 0)
		close(c);
	if (a >= 0)
		close(a);
	return a >= 0;
}

static void test_listen_fds(void)
{
	char err[256];
	int n, first = -1, fd;

	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	n = sysd_listen_fds(&first, err, sizeof(err));
	ok(n == 0 && err[0] == '\0', "no LISTEN_FDS: 0 sockets, listen on the config's addresses");

	fd = place(tcp_socket(SOCK_STREAM, 1), 3);
	ok(fd == 3, "a listening TCP socket placed at fd 3");
	set_listen_env("1", 0, NULL);
	n = sysd_listen_fds(&first, err, sizeof(err));
	ok(n == 0, "LISTEN_PID of another process: 0 sockets (%d)", n);

	set_listen_env("1", 1, "ticketd.socket");
	n = sysd_listen_fds(&first, err, sizeof(err));
	if (!ok(n == 1 && first == 3, "a listening TCP socket is taken: %d from fd %d", n, first))
		diag("err: %s", err);
	ok(fcntl(3, F_GETFL) & O_NONBLOCK, "the passed socket is made non-blocking");
	ok(fcntl(3, F_GETFD) & FD_CLOEXEC, "the passed socket is close-on-exec");
	ok(accepts_through(3), "a client connects and is accepted through fd 3");
	n = sysd_listen_fds(&first, NULL, 0);
	ok(n == 1, "a second call gives the same answer, err may be NULL (%d)", n);

	fd = place(tcp_socket(SOCK_STREAM, 1), 4);
	set_listen_env("2", 1, "ticketd.socket:ticketd.socket");
	n = sysd_listen_fds(&first, err, sizeof(err));
	ok(fd == 4 && n == 2 && first == 3, "two listening sockets at fd 3 and 4: %d", n);

	place(tcp_socket(SOCK_DGRAM, 0), 4);
	expect_refused("fd 4 is UDP, fd 3 fine", "fd 4", "not a stream socket");
	close(4);

	place(tcp_socket(SOCK_STREAM, 0), 3);
	set_listen_env("1", 1, "ticketd.socket");
	expect_refused("a bound TCP socket that does not listen", "fd 3 (ticketd.socket)",
		       "not listening");

	place(tcp_socket(SOCK_DGRAM, 0), 3);
	expect_refused("a UDP socket", "fd 3", "not a stream socket");

	place(unix_listener(), 3);
	expect_refused("a listening unix stream socket", "fd 3", "not a TCP");

	place(open("/dev/null", O_RDONLY | O_CLOEXEC), 3);
	set_listen_env("1", 1, NULL);
	expect_refused("a file that is not a socket", "fd 3", "not a socket");

	close(3);
	expect_refused("LISTEN_FDS=1 with fd 3 closed", "LISTEN_FDS=1", "Bad file descriptor");

	set_listen_env("many", 1, NULL);
	expect_refused("LISTEN_FDS=many", "LISTEN_FDS=many", NULL);
	set_listen_env("0", 1, NULL);
	n = sysd_listen_fds(&first, err, sizeof(err));
	ok(n == 0 || n == -EINVAL, "LISTEN_FDS=0 is no socket or an error, never a fd (%d)", n);

	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

int main(void)
{
	log_init();
	if (!mkdtemp(tmpdir)) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return tap_done();
	}
	snprintf(notify_path, sizeof(notify_path), "%s/notify", tmpdir);

	/* First, while fd 3 and 4 hold nothing of ours. */
	test_listen_fds();
	test_notify();
	test_watchdog();

	unlink(notify_path);
	snprintf(notify_path, sizeof(notify_path), "%s/stream", tmpdir);
	unlink(notify_path);
	rmdir(tmpdir);
	return tap_done();
}
