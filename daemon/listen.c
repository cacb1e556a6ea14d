/*
 * listen.c: the listening sockets (see listen.h). The main thread opens
 * them before any loop runs; the port claims live in this file's table
 * until exit. Nothing here runs on a loop.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "sd.h"

int listen_sockname(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
	} else if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
	} else {
		snprintf(buf, len, "(family %d)", ss.ss_family);
	}
	return 0;
}

/* The TCP ports this process has claimed (port_claim): written by the
 * main thread while it opens the sockets, before any loop runs. */
static struct {
	unsigned port;
	int fd;
} claimed[CONF_MAX_LISTEN];
static size_t nclaimed;

/* The claim of port is held already: by a process of this user (a second
 * ticketd: SO_REUSEPORT would let us join its port), refuse; by another
 * user's, whom the kernel keeps out of our SO_REUSEPORT group anyway, warn
 * and go on (anyone may bind an abstract name). 0, or -EADDRINUSE with err. */
static int port_claimed(const struct sockaddr_un *sun, socklen_t len, unsigned port,
			const char *text, char *err, size_t errlen)
{
	struct ucred peer;
	socklen_t plen = sizeof(peer);
	char who[32] = "";
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), known;

	known = s >= 0 && connect(s, (const struct sockaddr *)sun, len) == 0 &&
		getsockopt(s, SOL_SOCKET, SO_PEERCRED, &peer, &plen) == 0;
	if (s >= 0)
		close(s);
	if (known && peer.uid != geteuid()) {
		log_warn("listen %s: @ticketd-tcp-%u is held by pid %d of uid %u, not of this "
			 "user: going on (its sockets cannot join ours)", text, port,
			 (int)peer.pid, (unsigned)peer.uid);
		return 0;
	}
	if (known)
		snprintf(who, sizeof(who), " (pid %d)", (int)peer.pid);
	snprintf(err, errlen, "listen %s: another ticketd%s is listening on port %u (it "
		 "holds the abstract socket @ticketd-tcp-%u); two would share the port's "
		 "connections", text, who, port, port);
	return -EADDRINUSE;
}

/* Claims TCP port for this process by binding the abstract unix socket
 * "@ticketd-tcp-PORT", held until listen_release_ports or exit. Every socket
 * ticketd binds has SO_REUSEPORT (the loops share a port), and so would a
 * second ticketd's: the kernel would let it join the port and take part of
 * its connections. The claim refuses it instead. 0, or -errno with err. */
static int port_claim(unsigned port, const char *text, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;
	int s, rc;

	for (size_t i = 0; i < nclaimed; i++)
		if (claimed[i].port == port)
			return 0; /* a second address of ours on the same port */
	if (nclaimed == CONF_MAX_LISTEN) {
		snprintf(err, errlen, "listen %s: more than %d ports", text, CONF_MAX_LISTEN);
		return -ENOSPC;
	}
	/* sun_path[0] stays 0: the abstract namespace, nothing on disk. */
	len = (socklen_t)snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1,
				  "ticketd-tcp-%u", port);
	len += (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		rc = -errno;
		snprintf(err, errlen, "listen %s: socket(AF_UNIX) for the port's claim: %s",
			 text, strerror(errno));
		return rc;
	}
	if (bind(s, (struct sockaddr *)&sun, len) < 0 || listen(s, 1) < 0) {
		rc = -errno;
		close(s);
		if (rc == -EADDRINUSE)
			return port_claimed(&sun, len, port, text, err, errlen);
		snprintf(err, errlen, "listen %s: cannot claim the port (bind "
			 "@ticketd-tcp-%u): %s", text, port, strerror(-rc));
		return rc;
	}
	claimed[nclaimed].port = port;
	claimed[nclaimed].fd = s;
	nclaimed++;
	return 0;
}

void listen_release_ports(void)
{
	while (nclaimed > 0)
		close(claimed[--nclaimed].fd);
}

/* The port a bound socket has, or 0. */
static unsigned bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

/* Makes a socket bound to addr (text names it in errors), not yet
 * listening (listen_start): the body of listen_tcp and listen_again. A
 * first socket (claim set) claims its port after the bind, so that a
 * refused second ticketd never listens. 0 with *fd, or -errno. */
static int listen_on(const struct sockaddr *addr, socklen_t addrlen, const char *text,
		     int claim, int *fd, char *err, size_t errlen)
{
	int one = 1, s, rc;

	s = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0) {
		rc = -errno;
		snprintf(err, errlen, "listen %s: socket: %s", text, strerror(errno));
		return rc;
	}
	if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (addr->sa_family == AF_INET6 &&
	     setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)) {
		rc = -errno;
		snprintf(err, errlen, "listen %s: setsockopt: %s", text, strerror(errno));
		goto fail;
	}
	if (bind(s, addr, addrlen) < 0) {
		rc = -errno;
		snprintf(err, errlen, "listen %s: bind: %s", text, strerror(errno));
		goto fail;
	}
	if (claim && (rc = port_claim(bound_port(s), text, err, errlen)) < 0)
		goto fail;
	*fd = s;
	return 0;
fail:
	close(s);
	return rc;
}

int listen_tcp(const struct conf_listen *l, int *fd, char *bound, size_t boundlen,
	       char *err, size_t errlen)
{
	int rc = listen_on((const struct sockaddr *)&l->addr, l->addrlen, l->text, 1, fd,
			   err, errlen);

	if (rc == 0)
		listen_sockname(*fd, bound, boundlen);
	return rc;
}

int listen_again(int fd, int *out, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char text[96];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		int rc = -errno;

		snprintf(err, errlen, "listen: getsockname: %s", strerror(-rc));
		return rc;
	}
	listen_sockname(fd, text, sizeof(text));
	return listen_on((const struct sockaddr *)&ss, sl, text, 0, out, err, errlen);
}

int listen_open(const struct conf *c, int **fds, size_t *nsets, int *owned)
{
	char err[256], addr[96];
	int first, n, i;
	size_t set = 0;

	n = sysd_listen_fds(&first, err, sizeof(err));
	if (n < 0) {
		log_err("socket activation: %s", err);
		return -1;
	}
	*owned = n == 0;
	*nsets = 1;
	if (n == 0) {
		n = (int)c->nlisten;
		*nsets = c->io_threads;
	} else {
		log_notice("socket activation: serving the %d socket%s systemd passed; "
			   "\"listen\" and -l are ignored; the %u loops share %s", n,
			   n == 1 ? "" : "s", c->io_threads, n == 1 ? "it" : "them");
	}
	*fds = calloc((size_t)n * *nsets, sizeof(**fds));
	if (!*fds) {
		log_err("out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (*owned) {
			if (listen_tcp(&c->listen[i], &(*fds)[i], addr, sizeof(addr),
				       err, sizeof(err)) < 0) {
				log_err("%s", err);
				goto fail;
			}
		} else {
			(*fds)[i] = first + i;
		}
	}
	for (set = 1; set < *nsets; set++) {
		for (i = 0; i < n; i++) {
			if (listen_again((*fds)[i], &(*fds)[set * (size_t)n + (size_t)i],
					 err, sizeof(err)) < 0) {
				log_err("%s (the socket of loop %zu)", err, set);
				goto fail;
			}
		}
	}
	return n;
fail:
	/* Sets before set are whole; set has i. */
	for (size_t k = set * (size_t)n + (size_t)i; *owned && k-- > 0;)
		close((*fds)[k]);
	free(*fds);
	*fds = NULL;
	return -1;
}

int listen_start(const int *fds, int n, size_t nsets, int owned)
{
	char addr[96];

	for (size_t k = 0; owned && k < (size_t)n * nsets; k++) {
		if (listen(fds[k], SOMAXCONN) < 0) {
			listen_sockname(fds[k], addr, sizeof(addr));
			log_err("listen %s: listen: %s", addr, strerror(errno));
			return -1;
		}
	}
	for (int i = 0; i < n; i++) {
		listen_sockname(fds[i], addr, sizeof(addr));
		log_notice("listening on %s%s", addr, owned ? "" : " (socket from systemd)");
	}
	if (nsets > 1)
		log_info("each of the %zu loops accepts on its own socket%s (SO_REUSEPORT)",
			 nsets, n == 1 ? "" : "s");
	return 0;
}
