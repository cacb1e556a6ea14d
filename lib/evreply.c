/*
 * evreply.c: evhttp_send_reply, written at once. evhttp only queues a
 * reply and enables the connection's write event, so the socket is written
 * in the next loop iteration, after an epoll_ctl to add the write interest
 * and another to remove it. Writing the output buffer here instead, and
 * telling the bufferevent its output drained (bufferevent_trigger, which
 * runs evhttp's "reply sent" step: the request is freed and the connection
 * reads again), folds the enable/disable pair into nothing in libevent's
 * changelist and saves the iteration. What the socket does not take now (a
 * full send buffer, an error) stays queued, and the write event evhttp
 * enabled finishes it or reports the error as before. The caller is the
 * thread that owns the request's event_base.
 */
#include "config.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "evreply.h"

void evreply_send(struct evhttp_request *req, int code)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	struct evbuffer *out;
	evutil_socket_t fd;

	/* Our reference keeps bev alive if "reply sent" frees the connection. */
	if (bev)
		bufferevent_incref(bev);
	evhttp_send_reply(req, code, NULL, NULL);
	if (!bev)
		return;
	out = bufferevent_get_output(bev);
	fd = bufferevent_getfd(bev);
	while (fd >= 0 && evbuffer_get_length(out) > 0)
		if (evbuffer_write(out, fd) <= 0)
			break;
	if (fd >= 0 && evbuffer_get_length(out) == 0)
		bufferevent_trigger(bev, EV_WRITE, 0);
	bufferevent_decref(bev);
}
