/*
 * conn.c: accepting and the connection table (see conn.h). The bevcb
 * counts a new connection; later in the same loop iteration, once evhttp
 * has set it up, on_new_conns registers evhttp's close callback on it,
 * which counts it gone. Accepting pauses at max_connections or on an
 * accept() error libevent would retry at once (EMFILE, ENFILE, ENOBUFS),
 * and resumes when a connection closes or from a 100 ms timer.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "conn.h"
#include "guard.h"
#include "log.h"

#define RESUME_MS 100          /* retry accepting after the cap or EMFILE */
#define PAUSE_LOG_S 10         /* at most one pause warning per loop per 10 s */

/* The table of the loop this thread runs, if any. */
static _Thread_local struct conn_table *cur_table;

/* True on t's loop thread, or while no thread runs t (set-up, teardown). */
static int on_loop(const struct conn_table *t)
{
	return !t->entered || cur_table == t;
}

static unsigned max_conns(const struct conn_table *t)
{
	return atomic_load_explicit(t->conf, memory_order_acquire)->limits.max_connections;
}

static void pause_accepting(struct conn_table *t, const char *why)
{
	struct timeval tv = { 0, RESUME_MS * 1000 };

	if (t->paused || t->draining)
		return;
	t->paused = 1;
	for (size_t i = 0; i < t->nbound; i++)
		if (t->bound[i])
			evconnlistener_disable(evhttp_bound_socket_get_listener(t->bound[i]));
	/* At most one warning per loop and PAUSE_LOG_S: a flood must not
	 * turn into a flood of log lines. */
	t->pause_loud = time(NULL) - t->paused_logged >= PAUSE_LOG_S;
	if (t->pause_loud) {
		t->paused_logged = time(NULL);
		log_warn("loop %u: not accepting for now: %s", t->index, why);
	} else {
		log_debug("loop %u: not accepting for now: %s", t->index, why);
	}
	evtimer_add(t->resume_ev, &tv);
}

static void resume_accepting(struct conn_table *t)
{
	if (!t->paused || t->draining)
		return;
	t->paused = 0;
	for (size_t i = 0; i < t->nbound; i++)
		if (t->bound[i])
			evconnlistener_enable(evhttp_bound_socket_get_listener(t->bound[i]));
	if (t->pause_loud)
		log_info("loop %u: accepting again", t->index);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct conn_table *t = arg;
	struct timeval tv = { 0, RESUME_MS * 1000 };

	(void)fd;
	(void)what;
	if (atomic_load(t->nconn) < max_conns(t))
		resume_accepting(t);
	else if (t->paused)
		evtimer_add(t->resume_ev, &tv);
}

/* accept() failed in a way libevent does not retry (EMFILE, ENFILE, ENOBUFS):
 * stop accepting and try again on a timer instead of spinning. */
static void on_accept_error(struct evconnlistener *lst, void *arg)
{
	char why[96];

	(void)lst;
	(void)arg;
	snprintf(why, sizeof(why), "accept: %s", strerror(errno));
	if (cur_table)
		pause_accepting(cur_table, why);
}

/* A connection is gone: uncounts it (slot may be NULL if never registered). */
static void conn_gone(struct conn_table *t, struct conn_slot *s)
{
	unsigned left;

	assert(on_loop(t));
	if (s) {
		if (s->busy)
			t->busy--;
		if (s->guard)
			guard_close(s->guard);
		s->evcon = NULL;
		s->busy = 0;
		s->guard = NULL;
	}
	t->open--;
	left = atomic_fetch_sub(t->nconn, 1) - 1;
	if (t->paused && left < max_conns(t))
		resume_accepting(t);
	t->changed(t->arg);
}

/* The slot of evcon, or NULL if it was never registered. */
static struct conn_slot *slot_of(struct conn_table *t, struct evhttp_connection *evcon)
{
	evutil_socket_t fd;

	if (!evcon)
		return NULL;
	fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	if (fd < 0 || (size_t)fd >= t->nslots || t->slots[fd].evcon != evcon)
		return NULL;
	return &t->slots[fd];
}

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	struct conn_table *t = arg;

	conn_gone(t, slot_of(t, evcon));
}

/* Records evcon (fd) in the slot table; 0 or -ENOMEM. */
static int slot_add(struct conn_table *t, evutil_socket_t fd,
		    struct evhttp_connection *evcon)
{
	if ((size_t)fd >= t->nslots) {
		size_t n = t->nslots ? t->nslots : 256;
		struct conn_slot *s;

		while (n <= (size_t)fd)
			n *= 2;
		s = realloc(t->slots, n * sizeof(*s));
		if (!s)
			return -ENOMEM;
		memset(s + t->nslots, 0, (n - t->nslots) * sizeof(*s));
		t->slots = s;
		t->nslots = n;
	}
	t->slots[fd].evcon = evcon;
	t->slots[fd].busy = 0;
	t->slots[fd].guard = NULL;
	return 0;
}

/* Runs in the same loop iteration as the accepts, after evhttp set the new
 * connections up: registers each one's close callback and sets TCP_NODELAY. */
static void on_new_conns(evutil_socket_t fd, short what, void *arg)
{
	struct conn_table *t = arg;

	(void)fd;
	(void)what;
	assert(on_loop(t));
	for (size_t i = 0; i < t->nfresh; i++) {
		struct bufferevent *bev = t->fresh[i];
		bufferevent_data_cb readcb;
		void *cbarg = NULL;
		evutil_socket_t cfd = bufferevent_getfd(bev);
		int one = 1;

		bufferevent_getcb(bev, &readcb, NULL, NULL, &cbarg);
		if (!readcb || !cbarg || cfd < 0) {
			/* evhttp already dropped it (bufferevent_free clears the
			 * callbacks; our reference kept the memory alive). */
			conn_gone(t, NULL);
		} else if (slot_add(t, cfd, cbarg) < 0 ||
			   !(t->slots[cfd].guard = guard_open(t->guards, cbarg))) {
			log_err("loop %u: out of memory; closing a new connection", t->index);
			if ((size_t)cfd < t->nslots)
				t->slots[cfd].evcon = NULL;
			evhttp_connection_free(cbarg);
			conn_gone(t, NULL);
		} else {
			setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			evhttp_connection_set_closecb(cbarg, on_conn_close, t);
		}
		bufferevent_decref(bev);
	}
	t->nfresh = 0;
}

/* evhttp's bevcb: makes the bufferevent of each new connection, so that the
 * loop sees every connection (counted here, registered in on_new_conns). */
static struct bufferevent *on_new_bev(struct event_base *base, void *arg)
{
	struct conn_table *t = arg;
	struct bufferevent *bev;
	unsigned n;

	assert(on_loop(t));
	if (t->nfresh == t->freshcap) {
		size_t cap = t->freshcap ? t->freshcap * 2 : 64;
		struct bufferevent **f = realloc(t->fresh, cap * sizeof(*f));

		if (!f)
			return NULL; /* evhttp makes its own; it goes uncounted */
		t->fresh = f;
		t->freshcap = cap;
	}
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		return NULL;
	bufferevent_incref(bev);
	t->fresh[t->nfresh++] = bev;
	t->open++;
	t->accepted++;
	n = atomic_fetch_add(t->nconn, 1) + 1;
	event_active(t->newconn_ev, EV_TIMEOUT, 0);
	if (n >= max_conns(t))
		pause_accepting(t, "max_connections reached");
	return bev;
}

/* Marks the connection of req idle again once its reply is written. */
static void on_reply_written(struct evhttp_request *req, void *arg)
{
	struct conn_table *t = arg;
	struct conn_slot *s = slot_of(t, evhttp_request_get_connection(req));

	if (s && s->guard)
		guard_idle(s->guard);
	if (s && s->busy) {
		s->busy = 0;
		t->busy--;
		t->changed(t->arg);
	}
}

void conn_request_held(struct conn_table *t, struct evhttp_request *req)
{
	struct conn_slot *s = slot_of(t, evhttp_request_get_connection(req));

	assert(on_loop(t));
	if (s && !s->busy) {
		s->busy = 1;
		t->busy++;
	}
	if (s && s->guard)
		guard_held(s->guard);
	evhttp_request_set_on_complete_cb(req, on_reply_written, t);
}

void conn_replying(struct conn_table *t, struct evhttp_request *req)
{
	struct conn_slot *s = slot_of(t, evhttp_request_get_connection(req));

	assert(on_loop(t));
	if (s && s->guard)
		guard_replying(s->guard);
}

void conn_drain(struct conn_table *t)
{
	assert(on_loop(t));
	t->draining = 1;
	evtimer_del(t->resume_ev);
	for (size_t i = 0; i < t->nbound; i++) {
		if (t->bound[i]) {
			evhttp_del_accept_socket(t->evh, t->bound[i]);
			t->bound[i] = NULL;
		}
	}
	for (size_t fd = 0; fd < t->nslots; fd++)
		if (t->slots[fd].evcon && !t->slots[fd].busy)
			evhttp_connection_free(t->slots[fd].evcon); /* -> conn_gone */
}

void conn_set_limits(struct conn_table *t, const struct conf *c)
{
	guard_set_limits(t->guards, c->limits.request_timeout_ms,
			 c->limits.idle_timeout_ms);
}

unsigned long long conn_expired(const struct conn_table *t)
{
	return guard_set_expired(t->guards);
}

int conn_table_init(struct conn_table *t, struct event_base *base, const int *fds,
		    size_t nfds, char *err, size_t errlen)
{
	t->bound = calloc(nfds ? nfds : 1, sizeof(*t->bound));
	t->newconn_ev = event_new(base, -1, 0, on_new_conns, t);
	t->resume_ev = evtimer_new(base, on_resume, t);
	if (guard_set_create(base, &t->guards) < 0)
		t->guards = NULL;
	if (!t->bound || !t->newconn_ev || !t->resume_ev || !t->guards) {
		snprintf(err, errlen, "loop %u: cannot create its events", t->index);
		return -ENOMEM;
	}
	evhttp_set_bevcb(t->evh, on_new_bev, t);
	for (size_t i = 0; i < nfds; i++) {
		/* No LEV_OPT_CLOSE_ON_FREE: main owns the fd (and may share it). */
		struct evconnlistener *lst = evconnlistener_new(base, NULL, NULL,
								LEV_OPT_CLOSE_ON_EXEC,
								0, fds[i]);

		if (lst)
			t->bound[i] = evhttp_bind_listener(t->evh, lst);
		if (!lst || !t->bound[i]) {
			if (lst)
				evconnlistener_free(lst);
			snprintf(err, errlen, "loop %u: cannot listen on fd %d", t->index,
				 fds[i]);
			return -ENOMEM;
		}
		t->nbound = i + 1;
		evconnlistener_set_error_cb(lst, on_accept_error);
	}
	return 0;
}

void conn_enter(struct conn_table *t)
{
	cur_table = t;
	t->entered = 1;
}

void conn_table_detach(struct conn_table *t)
{
	if (cur_table == t)
		cur_table = NULL;
	t->entered = 0;
	t->draining = 1;
	for (size_t i = 0; t->bound && i < t->nbound; i++)
		t->bound[i] = NULL;
}

void conn_table_free(struct conn_table *t)
{
	/* Connections evhttp_free closed called conn_gone; fresh ones too. */
	for (size_t i = 0; i < t->nfresh; i++)
		bufferevent_decref(t->fresh[i]);
	free(t->fresh);
	free(t->slots);
	free(t->bound);
	if (t->newconn_ev)
		event_free(t->newconn_ev);
	if (t->resume_ev)
		event_free(t->resume_ev);
	guard_set_free(t->guards); /* evhttp_free closed every guarded connection */
}
