/*
 * guard.c: the connection deadlines of guard.h, and the read event that keeps
 * a held connection in epoll. A guard watches its connection's input
 * evbuffer (an evbuffer callback, so the first byte of a keep-alive request
 * is seen as it is read) and keeps one timer. All the timers of a set share
 * two durations, registered as libevent "common timeouts": arming and
 * disarming is a queue append and unlink, not a heap operation, so a guard
 * costs a few list operations per request. Guards are recycled through the
 * set's free list, with their timers and read events.
 *
 * The keeper: evhttp disables reading while the loop holds a request and
 * enables it again once the reply is out. When the reply comes in a later
 * loop iteration (a worker, a payment, the ledger), the fd has no event left
 * in between, so the changelist issues an epoll_ctl DEL, then an ADD: two
 * syscalls and an epitem freed and made again, per purchase. A second
 * EV_READ event on the fd, the keeper, is added when a request is first
 * held and then stays for the connection's life: the fd never loses its
 * read interest, so evhttp's disable and enable change nothing epoll sees
 * and cost no epoll_ctl (the first add is one MOD, in the changelist with
 * evhttp's disable). The price: every readable wake-up also runs on_keep,
 * a few loads. While the keeper is the only reader, input (a pipelined
 * request, EOF, a reset: epoll reports those as readable too) must not make
 * the loop spin, so the keeper removes itself the first time it fires for
 * input the bufferevent did not just read (see on_keep).
 * Only the loop thread owning the base calls in here.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "guard.h"
#include "log.h"

enum guard_state {
	GUARD_READING,      /* waiting for the rest of a request */
	GUARD_HELD,         /* the loop has the request */
	GUARD_REPLYING,     /* a reply is being written */
	GUARD_IDLE,         /* between requests */
	GUARD_CLOSED,       /* on the free list */
};

struct guard {
	struct guard_set *set;
	struct evhttp_connection *evcon;
	struct evbuffer *in;              /* evcon's input buffer */
	struct evbuffer_cb_entry *watch;  /* our callback on it */
	struct event *timer;
	struct event *keep_ev;            /* the keeper: EV_READ on the fd */
	int keeping;                      /* keep_ev is added */
	int fed;                          /* the bufferevent read since on_keep ran */
	enum guard_state state;
	struct guard *next_free;
};

struct guard_set {
	struct event_base *base;
	struct timeval request_tv;        /* common-timeout form, or plain */
	struct timeval idle_tv;
	struct guard *free;
	unsigned long long expired;
};

/* A timeval for ms, registered as a common timeout of base if libevent
 * has room for one more (it keeps up to 256 durations per base). */
static struct timeval common_tv(struct event_base *base, unsigned ms)
{
	struct timeval tv = { ms / 1000, (long)(ms % 1000) * 1000 };
	const struct timeval *c = event_base_init_common_timeout(base, &tv);

	return c ? *c : tv;
}

int guard_set_create(struct event_base *base, struct guard_set **out)
{
	struct guard_set *gs = calloc(1, sizeof(*gs));

	if (!gs)
		return -ENOMEM;
	gs->base = base;
	guard_set_limits(gs, 10000, 5000);
	*out = gs;
	return 0;
}

void guard_set_limits(struct guard_set *gs, unsigned request_ms, unsigned idle_ms)
{
	gs->request_tv = common_tv(gs->base, request_ms);
	gs->idle_tv = common_tv(gs->base, idle_ms);
}

void guard_set_free(struct guard_set *gs)
{
	struct guard *g;

	if (!gs)
		return;
	while ((g = gs->free)) {
		gs->free = g->next_free;
		event_free(g->timer);
		event_free(g->keep_ev);
		free(g);
	}
	free(gs);
}

unsigned long long guard_set_expired(const struct guard_set *gs)
{
	return gs->expired;
}

static void arm(struct guard *g, enum guard_state state, const struct timeval *tv)
{
	g->state = state;
	evtimer_add(g->timer, tv);
}

/* A deadline passed: closes the connection (evhttp then calls its close
 * callback, which ends in guard_close). */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct guard *g = arg;
	static const char *const names[] = { "reading a request", "held",
					     "writing a reply", "idle", "closed" };

	(void)fd;
	(void)what;
	if (g->state == GUARD_HELD || g->state == GUARD_CLOSED)
		return;
	g->set->expired++;
	log_debug("closing a connection past its deadline (%s)", names[g->state]);
	evhttp_connection_free(g->evcon);
}

/* The input buffer changed: the first byte after an idle spell starts the
 * request deadline. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info,
		     void *arg)
{
	struct guard *g = arg;

	(void)buf;
	if (info->n_added) {
		g->fed = 1;
		if (g->state == GUARD_IDLE)
			arm(g, GUARD_READING, &g->set->request_tv);
	}
}

/* The fd is readable. While the bufferevent reads, that is its business.
 * Otherwise the keeper is the fd's only reader: if the bufferevent read in
 * this iteration (both were woken by the request it then held), that
 * explains it once; else the input is new (pipelined, EOF, reset) and
 * would wake the loop on every poll, so the keeper goes until the next held
 * request, and the bufferevent picks the input up after the reply. */
static void on_keep(evutil_socket_t fd, short what, void *arg)
{
	struct guard *g = arg;

	(void)fd;
	(void)what;
	/* Enabled means reading: nothing in ticketd suspends an evhttp
	 * bufferevent's reads (no read watermark, no rate limit), which would
	 * leave EV_READ enabled with nobody reading, and this would spin. */
	if (bufferevent_get_enabled(evhttp_connection_get_bufferevent(g->evcon)) & EV_READ)
		return;
	if (g->fed) {
		g->fed = 0;
		return;
	}
	event_del(g->keep_ev);
	g->keeping = 0;
}

struct guard *guard_open(struct guard_set *gs, struct evhttp_connection *evcon)
{
	struct guard *g = gs->free;
	struct bufferevent *bev;

	if (g) {
		gs->free = g->next_free;
	} else {
		g = calloc(1, sizeof(*g));
		if (!g)
			return NULL;
		g->set = gs;
		g->timer = evtimer_new(gs->base, on_deadline, g);
		g->keep_ev = event_new(gs->base, -1, 0, on_keep, g);
		if (!g->timer || !g->keep_ev) {
			if (g->timer)
				event_free(g->timer);
			if (g->keep_ev)
				event_free(g->keep_ev);
			free(g);
			return NULL;
		}
	}
	g->evcon = evcon;
	bev = evhttp_connection_get_bufferevent(evcon);
	/* Not pending (guard_close deleted it), so it may be assigned anew. */
	event_assign(g->keep_ev, gs->base, bufferevent_getfd(bev), EV_READ | EV_PERSIST,
		     on_keep, g);
	g->keeping = 0;
	g->fed = 0;
	g->in = bufferevent_get_input(bev);
	g->watch = evbuffer_add_cb(g->in, on_input, g);
	if (!g->watch) {
		g->next_free = gs->free;
		gs->free = g;
		return NULL;
	}
	arm(g, GUARD_READING, &gs->request_tv);
	return g;
}

void guard_held(struct guard *g)
{
	g->state = GUARD_HELD;
	evtimer_del(g->timer);
	if (!g->keeping && event_add(g->keep_ev, NULL) == 0)
		g->keeping = 1; /* if not, evhttp's DEL and ADD just happen */
}

void guard_replying(struct guard *g)
{
	arm(g, GUARD_REPLYING, &g->set->request_tv);
}

void guard_idle(struct guard *g)
{
	if (evbuffer_get_length(g->in))
		arm(g, GUARD_READING, &g->set->request_tv);
	else
		arm(g, GUARD_IDLE, &g->set->idle_tv);
}

void guard_close(struct guard *g)
{
	struct guard_set *gs = g->set;

	evtimer_del(g->timer);
	event_del(g->keep_ev); /* before evhttp closes the fd */
	g->keeping = 0;
	evbuffer_remove_cb_entry(g->in, g->watch);
	g->state = GUARD_CLOSED;
	g->evcon = NULL;
	g->in = NULL;
	g->watch = NULL;
	g->next_free = gs->free;
	gs->free = g;
}
