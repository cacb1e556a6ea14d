/*
 * listen.h: the listening sockets, made by the main thread at start: the
 * ones systemd passed, or the config's, with SO_REUSEPORT and one set per
 * loop. A TCP port is claimed for this process (the abstract unix socket
 * "@ticketd-tcp-PORT"), so that a second ticketd cannot join it through
 * SO_REUSEPORT. What crosses: fds out to the loops, which never close them.
 */
#ifndef TICKETD_LISTEN_H
#define TICKETD_LISTEN_H

#include <stddef.h>

#include "conf.h"

/* Opens the listening sockets: systemd's, shared by every loop, or the
 * config's, one set per loop (the first binds, the others join it with
 * SO_REUSEPORT, so the kernel spreads new connections over the loops).
 * The ones made here are bound and their ports claimed, but not yet
 * listening: a start refused later (the ledger) never accepted anyone.
 * Returns the count per set (*nsets sets in *fds, *owned if we made them),
 * or -1 (logged). */
int listen_open(const struct conf *c, int **fds, size_t *nsets, int *owned);
/* Makes the sockets listen_open made listen, and logs each address; 0, or
 * -1 (logged). */
int listen_start(const int *fds, int n, size_t nsets, int owned);

/* Creates a TCP socket (SO_REUSEADDR, SO_REUSEPORT, non-blocking,
 * close-on-exec) bound to l, not yet listening, and claims its port for
 * this process:
 * -EADDRINUSE if another ticketd holds it. Returns 0 with *fd and the
 * address really bound (port 0 resolved) in bound, e.g. "127.0.0.1:43123";
 * or -errno with err. */
int listen_tcp(const struct conf_listen *l, int *fd, char *bound, size_t boundlen,
	       char *err, size_t errlen);
/* Gives up the ports listen_tcp claimed (at exit, after the sockets). */
void listen_release_ports(void);
/* Opens one more listening socket on the address fd is bound to (the same
 * port, SO_REUSEPORT), for another loop. 0 with *out, or -errno with err. */
int listen_again(int fd, int *out, char *err, size_t errlen);
/* Writes the local address of a listening socket as "addr:port" / "[v6]:port";
 * 0 or -errno. */
int listen_sockname(int fd, char *buf, size_t len);

#endif /* TICKETD_LISTEN_H */
