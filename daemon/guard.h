/*
 * guard.h: per-connection deadlines that libevent 2.1's evhttp lacks. evhttp
 * has one inactivity timeout, which a client trickling a byte at a time
 * (slowloris) resets forever, and which doubles as the keep-alive timeout.
 * A guard gives each connection of a loop one timer with a deadline:
 *  - reading: the whole request (line, headers, body) must arrive within
 *    request_ms of its first byte (of the accept, for a new connection);
 *  - held: the loop has the request (a worker or payment may run): none;
 *  - replying: the reply must be written within request_ms;
 *  - idle (keep-alive, between requests): the next request's first byte
 *    must come within idle_ms.
 * A deadline that passes closes the connection (evhttp_connection_free).
 * A guard also keeps the connection's fd in epoll (a second read event,
 * added at the first held request), so evhttp's read disable and enable
 * around each held request cost no epoll_ctl.
 * Everything here belongs to the loop thread that owns the event_base;
 * nothing crosses threads.
 */
#ifndef TICKETD_GUARD_H
#define TICKETD_GUARD_H

#include <event2/event.h>
#include <event2/http.h>

struct guard_set;   /* one per loop */
struct guard;       /* one per open connection */

/* Makes a loop's set on base; 0 or -ENOMEM. */
int guard_set_create(struct event_base *base, struct guard_set **out);
/* Sets the deadlines (ms) for guards armed from now on. */
void guard_set_limits(struct guard_set *gs, unsigned request_ms, unsigned idle_ms);
/* Frees the set and its spare guards; every guard must be closed. */
void guard_set_free(struct guard_set *gs);
/* Connections the set has cut off, ever. */
unsigned long long guard_set_expired(const struct guard_set *gs);

/* Starts guarding a new connection, in the reading state; NULL if out of
 * memory (the caller should close the connection). */
struct guard *guard_open(struct guard_set *gs, struct evhttp_connection *evcon);
/* The loop has the connection's request: no deadline until the reply, and
 * the fd stays registered with epoll meanwhile (the keeper, guard.c). */
void guard_held(struct guard *g);
/* A reply is being written: it must be out within request_ms. */
void guard_replying(struct guard *g);
/* The reply was written: idle until the next request's first byte (or
 * reading at once, if bytes of it already wait). */
void guard_idle(struct guard *g);
/* The connection is gone (evhttp's close callback): stops the timer and
 * recycles g. */
void guard_close(struct guard *g);

#endif /* TICKETD_GUARD_H */
