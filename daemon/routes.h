/*
 * routes.h: a loop's requests, from evhttp's callback to a reply or a job
 * queued for the pool. Owning loop only; the loop (http.c) installs these
 * two callbacks with the loop as their arg.
 */
#ifndef TICKETD_ROUTES_H
#define TICKETD_ROUTES_H

#include <event2/util.h>

struct evhttp_request;

/* evhttp's generic callback: every request that parsed lands here. */
void routes_on_request(struct evhttp_request *req, void *arg);
/* The loop's flush event, run after the other callbacks of an iteration
 * that queued jobs: hands them to the pool (503 to what does not fit), or
 * runs them here with no workers. */
void routes_on_flush(evutil_socket_t fd, short what, void *arg);

#endif /* TICKETD_ROUTES_H */
