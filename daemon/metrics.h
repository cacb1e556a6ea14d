/*
 * metrics.h: ticketd's Prometheus metrics (GET /metrics, text exposition
 * format 0.0.4).
 *
 * Counting never takes a lock and never writes a cache line another thread
 * writes: every thread that counts (event loops, workers, the ledger thread)
 * owns a cache-line-aligned block of counters and histograms, allocated on
 * its first count and registered once under the registry lock; only the
 * owner writes it, with a relaxed load and store (no locked instruction).
 * A scrape sums every block and adds gauges read at that moment (seller
 * snapshots, the pool's queue, open connections, the ledger's statistics).
 * A thread that exits leaves its block, counts and all, to the next thread
 * that starts, so sums never go down and memory stays bounded.
 *
 * What crosses the border: the hooks below take plain values and a few
 * read-only pointers (an event, a core); metrics_render writes the whole
 * exposition into a malloc'd buffer the caller sends and frees.
 *
 * Configured off ("metrics": {"enabled": false}) every hook is one
 * predictable branch on a flag fixed before the first thread starts.
 * Compiled out (./configure --disable-metrics, TICKETD_NO_METRICS) every
 * hook is an empty inline, metrics.c is not built, and /metrics answers 404.
 */
#ifndef TICKETD_METRICS_H
#define TICKETD_METRICS_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "request.h"
#include "seller.h"

struct catalog;
struct catalog_event;
struct ledger_stats;
struct pool;

/* Copies the ledger's counters (e.g. ledger_stats); any thread. */
typedef void (*metrics_ledger_fn)(void *arg, struct ledger_stats *out);

/* The routes requests are counted by (a fixed set, never raw paths). */
enum metrics_route {
	METRICS_ROUTE_HEALTHZ = 0,
	METRICS_ROUTE_EVENTS,
	METRICS_ROUTE_EVENT,
	METRICS_ROUTE_PURCHASE,
	METRICS_ROUTE_ORDER,
	METRICS_ROUTE_REFUND,
	METRICS_ROUTE_METRICS,
	METRICS_ROUTE_OTHER,     /* unknown paths, and requests refused before routing */
	METRICS_NROUTES
};

/* How a purchase that reached the daemon's core path ended. */
enum metrics_outcome {
	METRICS_SOLD = 0,        /* 201 */
	METRICS_SOLD_OUT,        /* 409 */
	METRICS_DECLINED,        /* 402 */
	METRICS_OVERLOADED,      /* 503: the worker queue was full */
	METRICS_UNAVAILABLE,     /* 503: the order could not be recorded */
	METRICS_FAILED,          /* 500 */
	METRICS_REPLAYED,        /* an Idempotency-Key's stored reply, sent again */
	METRICS_REJECTED,        /* refused for its Idempotency-Key: 409
				  * in_progress, 422 idempotency_key_reused */
	METRICS_NOUTCOMES
};

/* A job's timestamps (ns, CLOCK_MONOTONIC; 0 = not taken, metrics off). */
struct metrics_times {
	uint64_t arrived;        /* the loop got the request */
	uint64_t queued;         /* handed to the pool */
	uint64_t paying;         /* reserved: the payment starts */
};

/* What a scrape reads besides the counters; the caller's, read-only. */
struct metrics_sources {
	struct catalog *cat;     /* events on sale: availability, per-event counters */
	struct pool *pool;       /* queue depth, workers */
	unsigned queue_capacity; /* queue_depth from the config */
	unsigned connections;    /* open connections right now */
};

#ifndef TICKETD_NO_METRICS

/* Set once by metrics_init, before any other thread starts; read-only after. */
extern int metrics_on;

/* Turns counting on or off for this process's life; call before starting
 * any thread that counts. Returns 0 or -errno. */
int metrics_init(int enabled);
/* Where a scrape reads the ledger's statistics (fn NULL: no ledger
 * families); set it once the ledger is open, clear it before it closes. */
void metrics_set_ledger(metrics_ledger_fn fn, void *arg);
/* Frees every block; call after every counting thread has stopped. */
void metrics_shutdown(void);

/* Monotonic time in ns, or 0 when metrics are off (nothing is measured). */
uint64_t metrics_clock(void);
static inline uint64_t metrics_now(void)
{
	return metrics_on ? metrics_clock() : 0;
}

/* The metrics route of a request_route result. */
enum metrics_route metrics_route_of(enum request_route_kind kind);

/* Loop side. One reply of status on route, for a request that arrived at t0
 * (metrics_now(); 0: latency not recorded). */
void metrics_reply_slow(enum metrics_route route, int status, uint64_t t0);
static inline void metrics_reply(enum metrics_route route, int status, uint64_t t0)
{
	if (metrics_on)
		metrics_reply_slow(route, status, t0);
}
/* One purchase of qty tickets asked in tier on ev ended with outcome; for
 * METRICS_SOLD, from is the pool the tickets came from. */
void metrics_purchase_slow(const struct catalog_event *ev, enum seller_pool tier,
			   enum metrics_outcome outcome, enum seller_pool from,
			   unsigned qty);
static inline void metrics_purchase(const struct catalog_event *ev,
				    enum seller_pool tier,
				    enum metrics_outcome outcome,
				    enum seller_pool from, unsigned qty)
{
	if (metrics_on)
		metrics_purchase_slow(ev, tier, outcome, from, qty);
}
/* qty tickets of ev's pool were refunded (any thread). */
void metrics_refund_slow(const struct catalog_event *ev, enum seller_pool pool,
			 unsigned qty);
static inline void metrics_refund(const struct catalog_event *ev,
				  enum seller_pool pool, unsigned qty)
{
	if (metrics_on)
		metrics_refund_slow(ev, pool, qty);
}

/* Worker side. Each records the time since t (a metrics_now() value) and
 * returns now, for the next step; all are no-ops returning 0 when off. */
uint64_t metrics_queue_wait_slow(uint64_t queued);
static inline uint64_t metrics_queue_wait(uint64_t queued)
{
	return metrics_on ? metrics_queue_wait_slow(queued) : 0;
}
/* The reserve call (the core's critical section) of core, from t. */
uint64_t metrics_reserve_slow(const struct seller_core *core, uint64_t t);
static inline uint64_t metrics_reserve(const struct seller_core *core, uint64_t t)
{
	return metrics_on ? metrics_reserve_slow(core, t) : 0;
}
/* The payment, from its start to its answer. */
void metrics_payment_slow(uint64_t t);
static inline void metrics_payment(uint64_t t)
{
	if (metrics_on)
		metrics_payment_slow(t);
}
/* This worker starts (1) or ends (0) a batch of tasks. */
void metrics_busy_slow(int busy);
static inline void metrics_busy(int busy)
{
	if (metrics_on)
		metrics_busy_slow(busy);
}

/* Writes the exposition into a malloc'd buffer (*out, *len; free() it).
 * Returns 0, -ENOTSUP when metrics are off, or -ENOMEM. */
int metrics_render(const struct metrics_sources *src, char **out, size_t *len);

#else /* TICKETD_NO_METRICS: compiled out */

#define metrics_on 0

static inline int metrics_init(int enabled) { (void)enabled; return 0; }
static inline void metrics_set_ledger(metrics_ledger_fn fn, void *arg)
{
	(void)fn; (void)arg;
}
static inline void metrics_shutdown(void) { }
static inline uint64_t metrics_now(void) { return 0; }
static inline enum metrics_route metrics_route_of(enum request_route_kind kind)
{
	(void)kind;
	return METRICS_ROUTE_OTHER;
}
static inline void metrics_reply(enum metrics_route route, int status, uint64_t t0)
{
	(void)route; (void)status; (void)t0;
}
static inline void metrics_purchase(const struct catalog_event *ev,
				    enum seller_pool tier,
				    enum metrics_outcome outcome,
				    enum seller_pool from, unsigned qty)
{
	(void)ev; (void)tier; (void)outcome; (void)from; (void)qty;
}
static inline void metrics_refund(const struct catalog_event *ev,
				  enum seller_pool pool, unsigned qty)
{
	(void)ev; (void)pool; (void)qty;
}
static inline uint64_t metrics_queue_wait(uint64_t queued) { (void)queued; return 0; }
static inline uint64_t metrics_reserve(const struct seller_core *core, uint64_t t)
{
	(void)core; (void)t;
	return 0;
}
static inline void metrics_payment(uint64_t t) { (void)t; }
static inline void metrics_busy(int busy) { (void)busy; }
static inline int metrics_render(const struct metrics_sources *src, char **out,
				 size_t *len)
{
	(void)src; (void)out; (void)len;
	return -ENOTSUP;
}

#endif /* TICKETD_NO_METRICS */

#endif /* TICKETD_METRICS_H */
