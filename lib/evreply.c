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

#include <stdio.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "evreply.h"
#include "fmt.h"

/* The Date header's value for now (RFC 7231 IMF-fixdate), formatted once a
 * second per thread; NULL if the clock cannot be read. */
static const char *date_now(void)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	static __thread time_t cached = (time_t)-1;
	static __thread char text[40];
	time_t t = time(NULL);
	struct tm tm;

	if (t == cached)
		return text;
	if (t == (time_t)-1 || !gmtime_r(&t, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 ||
	    tm.tm_mon < 0 || tm.tm_mon > 11)
		return NULL;
	snprintf(text, sizeof(text), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
		 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
	cached = t;
	return text;
}

/* Adds the Date and Content-Length headers evhttp would add, cheaper: the
 * date from a per-second cache instead of gmtime and a format per reply,
 * the length without snprintf. Content-Length only where a body may be
 * (not HEAD, 1xx, 204 or 304), as evhttp does. Unlike evhttp, HTTP/1.0
 * replies get both too (evhttp adds neither without keep-alive, and no Date
 * with it); both are valid in HTTP/1.0. */
static void add_fixed_headers(struct evhttp_request *req, int code)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *date = date_now();
	char len[FMT_U64_LEN];

	if (date)
		evhttp_add_header(h, "Date", date);
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD || code / 100 == 1 ||
	    code == 204 || code == 304)
		return;
	fmt_u64(len, evbuffer_get_length(evhttp_request_get_output_buffer(req)));
	evhttp_add_header(h, "Content-Length", len);
}

void evreply_send(struct evhttp_request *req, int code)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	struct evbuffer *out;
	evutil_socket_t fd;

	/* Our reference keeps bev alive if "reply sent" frees the connection. */
	if (bev)
		bufferevent_incref(bev);
	add_fixed_headers(req, code);
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
