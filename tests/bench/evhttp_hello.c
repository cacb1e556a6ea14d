/*
 * evhttp_hello.c: the HTTP ceiling of libevent's evhttp itself, for the
 * benchmark's analysis (`make bench-http` runs it next to nginx). One event
 * loop, one evhttp, every request answered 200 with nginx's fixed body
 * {"ok":true}; the request body is read and dropped. It is configured like
 * a ticketd loop (changelist, precise timers, the reply written in the
 * same iteration by the same lib/evreply.c), so the gap
 * between it and ticketd is ticketd's own work (decode, reserve, ledger,
 * reply) and the gap between it and nginx is evhttp's.
 *
 *   evhttp_hello PORT      listen on 127.0.0.1:PORT (0: any free port);
 *                          prints "listening on 127.0.0.1:N", serves until
 *                          SIGTERM or SIGINT.
 */
#include "config.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "evreply.h"

static const char body[] = "{\"ok\":true}";

/* Answers every request with the fixed body, written at once. */
static void on_request(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);

	(void)arg;
	evbuffer_drain(in, evbuffer_get_length(in));
	evbuffer_add(evhttp_request_get_output_buffer(req), body, sizeof(body) - 1);
	evreply_send(req, 200);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base = NULL;
	struct evhttp *http = NULL;
	struct evhttp_bound_socket *bound;
	struct event *sigterm = NULL, *sigint = NULL;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	char *end;
	long port;
	int rc = 1;

	if (argc != 2 || (port = strtol(argv[1], &end, 10)) < 0 || port > 65535 || *end) {
		fprintf(stderr, "usage: %s PORT (0: any free port)\n", argv[0]);
		return 2;
	}
	if (cfg)
		event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK |
				      EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST |
				      EVENT_BASE_FLAG_PRECISE_TIMER);
	base = cfg ? event_base_new_with_config(cfg) : NULL;
	http = base ? evhttp_new(base) : NULL;
	if (!http) {
		fprintf(stderr, "evhttp_hello: cannot create the event loop\n");
		goto fail;
	}
	evhttp_set_default_content_type(http, "application/json");
	evhttp_set_gencb(http, on_request, NULL);
	bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port);
	if (!bound) {
		fprintf(stderr, "evhttp_hello: cannot listen on 127.0.0.1:%ld\n", port);
		goto fail;
	}
	if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &slen) < 0) {
		perror("evhttp_hello: getsockname");
		goto fail;
	}
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	if (!sigterm || !sigint || event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0) {
		fprintf(stderr, "evhttp_hello: cannot watch signals\n");
		goto fail;
	}
	printf("listening on 127.0.0.1:%u\n", (unsigned)ntohs(sin.sin_port));
	fflush(stdout);
	rc = event_base_dispatch(base) < 0;
fail:
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (http)
		evhttp_free(http);
	if (base)
		event_base_free(base);
	if (cfg)
		event_config_free(cfg);
	return rc;
}
