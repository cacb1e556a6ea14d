/*
 * loop.h: one event loop's state, and the step that ends a job on it. The
 * front end (http.c) makes the loops, routes.c fills jobs from requests,
 * and every job comes back here, to the loop that owns its connection, to
 * arm its payment timer or to be answered. Everything in struct http_loop
 * belongs to its loop thread but the atomics, which say who writes them.
 */
#ifndef TICKETD_LOOP_H
#define TICKETD_LOOP_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#include <event2/util.h>

#include "catalog.h"
#include "conf.h"
#include "conn.h"
#include "handoff.h"
#include "job.h"
#include "metrics.h"
#include "pool.h"

struct event;
struct event_base;
struct evhttp;
struct evhttp_request;

struct http_loop {
	struct http *http;
	unsigned index;
	pthread_t thread;
	int started;                      /* thread created */
	struct event_base *base;
	struct evhttp *evh;
	struct handoff handoff;           /* free jobs, completion stack, eventfd */
	struct conn_table conns;          /* accepting and the connections */
	struct event *wake_ev;            /* reads the eventfd */
	struct event *flush_ev;           /* hands this iteration's jobs to the pool */
	struct event *defer_ev;           /* runs defer_fn (loop_defer) */
	struct event *tick_ev;            /* bumps beat (watchdog), or NULL */
	struct event *stall_ev;           /* the test hook's one-shot, or NULL */
	atomic_uint ctl;                  /* LOOP_CTL_* requests from main */
	atomic_ullong beat;               /* written by the loop only: its ticks */
	atomic_ullong requests;           /* written by the loop only: requests routed */

	/* Everything below belongs to the loop thread alone. */
	unsigned inflight;                /* jobs out of the loop (pool, payment, commit) */
	struct pool_task *pend[2];        /* jobs for the pool, per lane, newest first */
	unsigned npend;
	void (*defer_fn)(void *arg);      /* loop_defer's call, NULL: none waits */
	void *defer_arg;
	uint64_t req_t0;                  /* metrics: the request being answered */
	enum metrics_route req_route;     /*   arrived then, on this route */
	int drained;
};

struct http {
	_Atomic(const struct conf *) conf; /* the current snapshot (loop_conf) */
	int inline_work;                  /* "workers": 0 at start: loops reserve */
	unsigned tick_ms;                 /* loop heartbeat period; 0 = none */
	unsigned stall_ms;                /* test hook: loop 0 stalls then; 0 = never */
	struct catalog *cat;
	struct pool *pool;
	const struct job_env *env;
	const int *fds;                   /* nsets sets of nfds (http_options) */
	size_t nfds;
	size_t nsets;
	void (*on_drained)(void *arg);
	void *arg;
	struct http_loop *loops;
	unsigned nloops;
	atomic_uint nconn;                /* open connections, all loops */
	atomic_uint ndrained;             /* loops that finished draining */
	pthread_mutex_t start_lock;       /* guards nstarted */
	pthread_cond_t start_cond;
	unsigned nstarted;
};

/* The config snapshot in force; any thread. */
static inline const struct conf *loop_conf(const struct http *h)
{
	return atomic_load_explicit(&((struct http *)h)->conf, memory_order_acquire);
}

/* The calling thread runs lp from now on (loop_enter), or no more. */
void loop_enter(struct http_loop *lp);
void loop_leave(struct http_loop *lp);
/* True on lp's own thread, or while lp has no thread (set-up, teardown). */
int loop_owned(const struct http_loop *lp);

/* Owning loop only. Sends what req's output buffer holds with status code. */
void loop_send_reply(struct http_loop *lp, struct evhttp_request *req, int code);
/* Replies status with an error body (reply_error); a 503 gets Retry-After. */
__attribute__((format(printf, 5, 6)))
void loop_send_error(struct http_loop *lp, struct evhttp_request *req, int status,
		     const char *code, const char *fmt, ...);
/* Makes j's request the one being answered (for the reply's metrics). */
void loop_answering(struct http_loop *lp, const struct job *j);
/* Reports lp drained once it drains and nothing is in flight or busy. */
void loop_maybe_drained(struct http_loop *lp);
/* Owning loop only: calls fn(arg) once on this loop, after the callbacks
 * this iteration has made active so far (the timers that fired with the
 * caller's), or when the loop stops if it stops first. Returns 1 if fn is
 * now waiting, 0 if a call waits already (fn is not added). */
int loop_defer(struct http_loop *lp, void (*fn)(void *arg), void *arg);
/* True while a loop_defer call waits. */
int loop_deferred(const struct http_loop *lp);
/* Runs the waiting loop_defer call now, if any (the loop stops). */
void loop_run_deferred(struct http_loop *lp);
/* The event callback (arg: the loop) behind loop_defer. */
void loop_on_defer(evutil_socket_t fd, short what, void *arg);

/* Hands a job back to its loop, from any thread (a worker, the ledger, or
 * the loop itself, which then finishes it at once: arms its payment timer,
 * or replies and recycles it). handoff_hold batches the others. */
void loop_job_done(struct job *j);
/* Any thread: hands j back to its loop, which calls fn(j) there in ms
 * milliseconds (at once if it can have no timer for j). */
void loop_job_after(struct job *j, unsigned ms, void (*fn)(struct job *j));
/* Owning loop only, on a wakeup: finishes every job that came back. */
void loop_finish_returned(struct http_loop *lp);

#endif /* TICKETD_LOOP_H */
