/*
 * http.c: the front end's life: it makes the loops (one thread, event_base
 * and evhttp each, the base with EVENT_BASE_FLAG_NOLOCK: no other thread
 * calls into it), starts and stops them, and carries main's requests to
 * them. What crosses threads, and how (docs/architecture.md has the why):
 *  - main -> loop: control bits (drain, exit, new config) and the loop's
 *    eventfd; a config is an immutable snapshot behind an atomic pointer
 *    (http_set_conf), which its publisher keeps alive;
 *  - worker/ledger -> loop: finished jobs through the loop's handoff
 *    (handoff.c), on the same eventfd;
 *  - loop -> main: the drained callback, the shared connection count, and
 *    per-loop atomics the loop alone writes: its request count and its
 *    heartbeat (a timer bumps it: a stuck loop's stands still).
 * A loop's requests are routes.c's, its connections conn.c's, and a job's
 * last step loop.c's.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>

#include "http.h"
#include "log.h"
#include "loop.h"
#include "routes.h"

_Static_assert(HTTP_MAX_LOOPS <= HANDOFF_MAX_LOOPS, "a loop's handoff index");

#define CTL_DRAIN 0x1u
#define CTL_EXIT 0x2u
#define CTL_CONF 0x4u          /* a new config was published: apply its limits */
/* With the changelist, a loop applies an epoll_ctl(DEL) for a connection it
 * closed at its next poll; by then another loop may have accepted a new
 * socket with the same fd number, and the kernel answers ENOENT, as libevent
 * expects. Harmless, but ThreadSanitizer reports the fd number as raced, so
 * the TSan build goes without the changelist and keeps real races visible. */
#ifdef TICKETD_TSAN
#define LOOP_CHANGELIST 0
#else
#define LOOP_CHANGELIST EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST
#endif

/* Stops accepting, closes idle connections, and drains what is left. */
static void loop_drain(struct http_loop *lp)
{
	if (lp->conns.draining)
		return;
	conn_drain(&lp->conns);
	log_debug("loop %u draining: %u in flight, %u busy connections", lp->index,
		  lp->inflight, lp->conns.busy);
	loop_maybe_drained(lp);
}

/* Sets this loop's evhttp limits from the current config (they apply to
 * connections accepted from then on). */
static void apply_limits(struct http_loop *lp)
{
	const struct conf *c = loop_conf(lp->http);
	/* The guards keep the deadlines; evhttp's inactivity timeout is only
	 * a backstop (for a connection without a guard): twice the longer
	 * deadline, so that it never fires first. */
	unsigned ms = 2 * (c->limits.request_timeout_ms > c->limits.idle_timeout_ms ?
			   c->limits.request_timeout_ms : c->limits.idle_timeout_ms);
	struct timeval tmo = { .tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000 };

	evhttp_set_max_body_size(lp->evh, (ev_ssize_t)c->limits.max_body_bytes);
	evhttp_set_max_headers_size(lp->evh, (ev_ssize_t)c->limits.max_header_bytes);
	evhttp_set_timeout_tv(lp->evh, &tmo);
	conn_set_limits(&lp->conns, c);
}

/* The loop's heartbeat: runs only if the loop runs its callbacks. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *lp = arg;

	(void)fd;
	(void)what;
	atomic_store_explicit(&lp->beat,
			      atomic_load_explicit(&lp->beat, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/* Test hook (TICKETD_DEBUG_STALL_LOOP): wedges this loop, as a bug would,
 * until main tells it to exit; nothing else of the loop runs meanwhile. */
static void on_stall(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *lp = arg;
	struct timespec ts = { 0, 10 * 1000000L };

	(void)fd;
	(void)what;
	log_warn("loop %u: stalling on purpose (TICKETD_DEBUG_STALL_LOOP, a testing aid)",
		 lp->index);
	while (!(atomic_load(&lp->ctl) & CTL_EXIT))
		nanosleep(&ts, NULL);
}

/* The eventfd fired: finish every job that came back, then obey main. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *lp = arg;
	unsigned ctl;

	(void)fd;
	(void)what;
	loop_finish_returned(lp);
	ctl = atomic_exchange(&lp->ctl, 0);
	if (ctl & CTL_CONF)
		apply_limits(lp);
	if (ctl & CTL_DRAIN)
		loop_drain(lp);
	if (ctl & CTL_EXIT)
		event_base_loopbreak(lp->base);
}

static void *loop_main(void *arg)
{
	struct http_loop *lp = arg;
	struct http *h = lp->http;

	loop_enter(lp);
	pthread_mutex_lock(&h->start_lock);
	h->nstarted++;
	pthread_cond_broadcast(&h->start_cond);
	pthread_mutex_unlock(&h->start_lock);
	if (event_base_loop(lp->base, 0) < 0)
		log_err("loop %u: event loop failed", lp->index);
	loop_run_deferred(lp); /* stopped between a timer and its deferred call */
	log_info("loop %u: served %llu requests on %llu connections (%llu cut off "
		 "at a deadline)", lp->index,
		 (unsigned long long)atomic_load(&lp->requests), lp->conns.accepted,
		 conn_expired(&lp->conns));
	loop_leave(lp);
	return NULL;
}

/* A connection of the loop (arg) went, or got idle: it may have drained. */
static void conns_changed(void *arg)
{
	loop_maybe_drained(arg);
}

/* Makes lp's base and evhttp (0, or -ENOMEM with err). */
static int loop_base(struct http_loop *lp, char *err, size_t errlen)
{
	struct event_config *ecfg = event_config_new();

	/* Nobody but this loop's thread calls into the base (NOLOCK). The
	 * changelist folds evhttp's per-request read/write toggles into fewer
	 * epoll_ctl calls. Precise timers: the coarse clock would round a 1 ms
	 * payment up to the 4 ms tick. */
	if (ecfg)
		event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK |
				      LOOP_CHANGELIST | EVENT_BASE_FLAG_PRECISE_TIMER);
	lp->base = ecfg ? event_base_new_with_config(ecfg) : NULL;
	event_config_free(ecfg);
	lp->evh = lp->base ? evhttp_new(lp->base) : NULL;
	if (!lp->base || !lp->evh) {
		snprintf(err, errlen, "loop %u: cannot create its event base: %s", lp->index,
			 strerror(errno ? errno : ENOMEM));
		return -ENOMEM;
	}
	evhttp_set_allowed_methods(lp->evh, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
				   EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
				   EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
				   EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(lp->evh, "application/json");
	evhttp_set_flags(lp->evh, EVHTTP_SERVER_LINGERING_CLOSE);
	evhttp_set_gencb(lp->evh, routes_on_request, lp);
	return 0;
}

static int loop_init(struct http *h, struct http_loop *lp, unsigned index,
		     char *err, size_t errlen)
{
	struct timeval tick = { h->tick_ms / 1000, (long)(h->tick_ms % 1000) * 1000 };
	struct timeval stall = { h->stall_ms / 1000, (long)(h->stall_ms % 1000) * 1000 };
	int rc;

	lp->http = h;
	lp->index = index;
	lp->conns.index = index;
	lp->conns.nconn = &h->nconn;
	lp->conns.conf = &h->conf;
	lp->conns.changed = conns_changed;
	lp->conns.arg = lp;
	if ((rc = loop_base(lp, err, errlen)) < 0)
		return rc;
	if (handoff_init(&lp->handoff, index, lp, h->env) < 0) {
		snprintf(err, errlen, "loop %u: eventfd: %s", index, strerror(errno));
		return -ENOMEM;
	}
	lp->conns.evh = lp->evh;
	rc = conn_table_init(&lp->conns, lp->base, h->fds + (index % h->nsets) * h->nfds,
			     h->nfds, err, errlen);
	if (rc < 0)
		return rc;
	lp->wake_ev = event_new(lp->base, lp->handoff.efd, EV_READ | EV_PERSIST, on_wake,
				lp);
	lp->flush_ev = event_new(lp->base, -1, 0, routes_on_flush, lp);
	lp->defer_ev = event_new(lp->base, -1, 0, loop_on_defer, lp);
	if (h->tick_ms)
		lp->tick_ev = event_new(lp->base, -1, EV_PERSIST, on_tick, lp);
	if (h->stall_ms && index == 0)
		lp->stall_ev = evtimer_new(lp->base, on_stall, lp);
	if (!lp->wake_ev || !lp->flush_ev || !lp->defer_ev ||
	    event_add(lp->wake_ev, NULL) < 0 ||
	    (h->tick_ms && (!lp->tick_ev || event_add(lp->tick_ev, &tick) < 0)) ||
	    (h->stall_ms && index == 0 && (!lp->stall_ev ||
					   evtimer_add(lp->stall_ev, &stall) < 0))) {
		snprintf(err, errlen, "loop %u: cannot create its events", index);
		return -ENOMEM;
	}
	apply_limits(lp);
	return 0;
}

int http_create(const struct http_options *o, struct http **out,
		char *err, size_t errlen)
{
	struct http *h = calloc(1, sizeof(*h));
	int rc;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	atomic_init(&h->conf, o->conf);
	h->inline_work = o->conf->workers == 0;
	h->tick_ms = o->tick_ms;
	h->stall_ms = o->stall_ms;
	h->cat = o->catalog;
	h->pool = o->pool;
	h->env = o->env;
	h->fds = o->fds;
	h->nfds = o->nfds;
	h->nsets = o->nsets ? o->nsets : 1;
	h->on_drained = o->drained;
	h->arg = o->arg;
	pthread_mutex_init(&h->start_lock, NULL);
	pthread_cond_init(&h->start_cond, NULL);
	h->loops = calloc(o->conf->io_threads, sizeof(*h->loops));
	if (!h->loops) {
		snprintf(err, errlen, "out of memory");
		http_destroy(h);
		return -ENOMEM;
	}
	h->nloops = o->conf->io_threads;
	for (unsigned i = 0; i < h->nloops; i++)
		h->loops[i].handoff.efd = -1; /* loop_free may see loops never set up */
	for (unsigned i = 0; i < h->nloops; i++) {
		rc = loop_init(h, &h->loops[i], i, err, errlen);
		if (rc < 0) {
			http_destroy(h);
			return rc;
		}
	}
	*out = h;
	return 0;
}

int http_start(struct http *h, char *err, size_t errlen)
{
	for (unsigned i = 0; i < h->nloops; i++) {
		int rc = pthread_create(&h->loops[i].thread, NULL, loop_main, &h->loops[i]);

		if (rc) {
			snprintf(err, errlen, "cannot start loop %u: %s", i, strerror(rc));
			http_stop(h);
			return -rc;
		}
		h->loops[i].started = 1;
	}
	pthread_mutex_lock(&h->start_lock);
	while (h->nstarted < h->nloops)
		pthread_cond_wait(&h->start_cond, &h->start_lock);
	pthread_mutex_unlock(&h->start_lock);
	return 0;
}

/* Posts control bits to a loop and wakes it. */
static void post_ctl(struct http_loop *lp, unsigned bits)
{
	atomic_fetch_or(&lp->ctl, bits);
	handoff_wake(&lp->handoff);
}

void http_drain(struct http *h)
{
	for (unsigned i = 0; i < h->nloops; i++)
		post_ctl(&h->loops[i], CTL_DRAIN);
}

void http_stop(struct http *h)
{
	for (unsigned i = 0; i < h->nloops; i++)
		if (h->loops[i].started)
			post_ctl(&h->loops[i], CTL_EXIT);
	for (unsigned i = 0; i < h->nloops; i++) {
		if (h->loops[i].started) {
			pthread_join(h->loops[i].thread, NULL);
			h->loops[i].started = 0;
		}
	}
}

/* Frees one stopped loop. */
static void loop_free(struct http_loop *lp)
{
	/* Jobs that came back after the loop stopped: only a reservation whose
	 * payment never finished still holds tickets. */
	for (struct job *j = lp->handoff.all_jobs; j; j = j->all_next) {
		if (j->req && j->kind == JOB_PURCHASE && j->state == JOB_PAYING) {
			seller_release(j->ev->seller, j->from, j->in.quantity);
			log_warn("loop %u: released %u %s tickets of %s whose payment "
				 "never finished", lp->index, j->in.quantity,
				 seller_pool_name(j->from), j->ev->id);
		}
	}
	/* evhttp_free frees the listeners, then closes every connection
	 * (conn_gone runs for each): keep conn_gone off the listeners. */
	conn_table_detach(&lp->conns);
	lp->drained = 1;
	if (lp->evh)
		evhttp_free(lp->evh);
	handoff_free(&lp->handoff);
	conn_table_free(&lp->conns);
	if (lp->wake_ev)
		event_free(lp->wake_ev);
	if (lp->flush_ev)
		event_free(lp->flush_ev);
	if (lp->defer_ev)
		event_free(lp->defer_ev);
	if (lp->tick_ev)
		event_free(lp->tick_ev);
	if (lp->stall_ev)
		event_free(lp->stall_ev);
	if (lp->base)
		event_base_free(lp->base);
}

void http_destroy(struct http *h)
{
	if (!h)
		return;
	http_stop(h);
	for (unsigned i = 0; h->loops && i < h->nloops; i++)
		loop_free(&h->loops[i]);
	free(h->loops);
	pthread_cond_destroy(&h->start_cond);
	pthread_mutex_destroy(&h->start_lock);
	free(h);
}

unsigned http_connections(struct http *h)
{
	return atomic_load(&h->nconn);
}

void http_set_conf(struct http *h, const struct conf *c)
{
	atomic_store_explicit(&h->conf, c, memory_order_release);
	for (unsigned i = 0; i < h->nloops; i++)
		post_ctl(&h->loops[i], CTL_CONF);
}

unsigned long long http_requests(struct http *h)
{
	unsigned long long n = 0;

	for (unsigned i = 0; i < h->nloops; i++)
		n += atomic_load_explicit(&h->loops[i].requests, memory_order_relaxed);
	return n;
}

unsigned http_loop_count(struct http *h)
{
	return h->nloops;
}

unsigned long long http_heartbeat(struct http *h, unsigned i)
{
	return atomic_load_explicit(&h->loops[i].beat, memory_order_relaxed);
}
