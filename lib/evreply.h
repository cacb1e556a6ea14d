/*
 * evreply.h: send an evhttp reply and write it to the socket in the same
 * loop iteration (see evreply.c). Used by the daemon's loops and by the
 * benchmark's evhttp ceiling (tests/bench/evhttp_hello.c), so that both
 * measure the same write path.
 */
#ifndef TICKETD_EVREPLY_H
#define TICKETD_EVREPLY_H

struct evhttp_request;

/* evhttp_send_reply(req, code) with the output buffer as the body, then
 * the write itself, now. req (and, after "Connection: close", its
 * connection) may be freed on return: do not touch it again. */
void evreply_send(struct evhttp_request *req, int code);

#endif /* TICKETD_EVREPLY_H */
