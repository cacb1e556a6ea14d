/*
 * metrics.c: per-thread counter blocks and the Prometheus exposition.
 *
 * Each counting thread owns one struct block (cache-line aligned, so no two
 * threads' counters share a line). Only the owner writes it, with a relaxed
 * load and store: a plain add on x86, no lock prefix, and no data race for
 * ThreadSanitizer since the scraper's reads are relaxed atomic loads too.
 * Per-event counters live in chunks of CHUNK_EVENTS events, indexed by the
 * event's catalog sequence number; the owner allocates a chunk the first
 * time it counts one of its events and publishes it with a release store.
 *
 * The registry (reg.lock) links every block ever made; a thread takes a
 * block from the free list or allocates one on its first count, and gives
 * it back when it exits (a pthread key destructor): the counts stay in the
 * block and keep being summed, so a pool that shrinks and grows again
 * neither loses counts nor leaks blocks. A scrape holds reg.lock while it
 * sums (no hot path takes it) and formats outside it.
 *
 * Histograms have fixed buckets: time in 1/2.5/5 steps from 100 ns to 10 s
 * (the reserve critical section is ~100 ns, a blocking payment can take
 * seconds); a histogram's _count is the sum of its buckets as read, so the
 * exposition is consistent even while other threads count.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "fmt.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"

#define NBUCKETS 25                 /* finite time buckets; one more for +Inf */
#define CHUNK_EVENTS 64             /* events per per-event chunk */
#define MAX_CHUNKS 64               /* events counted: the first 4096 ever made */
#define MAX_CORES 16                /* seller cores with their own reserve histogram */
#define CACHE_LINE 64

/* Finite upper bounds (inclusive), ns: 1, 2.5, 5 per decade, 100 ns .. 10 s. */
static const uint64_t bounds_ns[NBUCKETS] = {
	100, 250, 500,
	1000, 2500, 5000,
	10000, 25000, 50000,
	100000, 250000, 500000,
	1000000, 2500000, 5000000,
	10000000, 25000000, 50000000,
	100000000, 250000000, 500000000,
	1000000000, 2500000000, 5000000000,
	10000000000,
};

/* Status codes counted by their own label; anything else is "other". */
static const int statuses[] = {
	200, 201, 204, 400, 401, 402, 403, 404, 405, 408, 409, 410, 413, 414,
	415, 422, 429, 500, 501, 503,
};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]) + 1)

static const char *const route_names[METRICS_NROUTES] = {
	"healthz", "events", "event", "purchase", "order", "refund", "metrics", "other",
};

typedef _Atomic uint64_t counter;

struct hist {
	counter bucket[NBUCKETS + 1];   /* not cumulative; the last is +Inf */
	counter sum_ns;
};

/* One event's counters in one block. */
struct ev_counts {
	counter purchases[SELLER_NPOOLS][METRICS_NOUTCOMES]; /* by tier asked */
	counter sold[SELLER_NPOOLS];      /* tickets, by pool taken from */
	counter refunded[SELLER_NPOOLS];  /* tickets, by pool given back to */
};

struct ev_chunk {
	struct ev_counts ev[CHUNK_EVENTS];
};

/* One thread's counters. Written by its owner only; read by scrapes. */
struct block {
	counter requests[METRICS_NROUTES][NSTATUS];
	struct hist latency[METRICS_NROUTES];
	struct hist queue_wait;
	struct hist reserve[MAX_CORES];   /* by seller core (registry order) */
	struct hist payment;
	atomic_uint busy;                 /* a worker inside a batch: 1 */
	_Atomic(struct ev_chunk *) chunks[MAX_CHUNKS];
	struct block *next;               /* reg.all; guarded by reg.lock */
	struct block *next_free;          /* reg.free; guarded by reg.lock */
};

static struct {
	pthread_mutex_t lock;    /* guards all, free, key_made, ledger, ledger_arg */
	struct block *all;       /* every block made */
	struct block *free;      /* blocks of threads that exited */
	pthread_key_t key;       /* its destructor gives a block back */
	int key_made;
	metrics_ledger_fn ledger;
	void *ledger_arg;
} reg = { .lock = PTHREAD_MUTEX_INITIALIZER };

int metrics_on;
static _Thread_local struct block *mine;
static atomic_int warned_events;  /* logged once: an event beyond MAX_CHUNKS */

static inline void bump(counter *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline uint64_t get(counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

uint64_t metrics_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Thread exit: the block goes back to the free list with its counts. */
static void block_release(void *p)
{
	struct block *b = p;

	pthread_mutex_lock(&reg.lock);
	b->next_free = reg.free;
	reg.free = b;
	pthread_mutex_unlock(&reg.lock);
}

/* The calling thread's block, registering one on its first call; NULL if
 * out of memory (the count is dropped). */
static struct block *block(void)
{
	struct block *b = mine;
	size_t size = (sizeof(*b) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;

	if (b)
		return b;
	pthread_mutex_lock(&reg.lock);
	if (reg.free) {
		b = reg.free;
		reg.free = b->next_free;
		b->next_free = NULL;
	} else if ((b = aligned_alloc(CACHE_LINE, size))) {
		memset(b, 0, size);
		b->next = reg.all;
		reg.all = b;
	}
	if (b && reg.key_made)
		pthread_setspecific(reg.key, b);
	pthread_mutex_unlock(&reg.lock);
	mine = b;
	return b;
}

int metrics_init(int enabled)
{
	int rc = 0;

	pthread_mutex_lock(&reg.lock);
	if (!reg.key_made) {
		rc = -pthread_key_create(&reg.key, block_release);
		reg.key_made = rc == 0;
	}
	pthread_mutex_unlock(&reg.lock);
	metrics_on = enabled && rc == 0;
	return rc;
}

void metrics_set_ledger(metrics_ledger_fn fn, void *arg)
{
	pthread_mutex_lock(&reg.lock);
	reg.ledger = fn;
	reg.ledger_arg = arg;
	pthread_mutex_unlock(&reg.lock);
}

void metrics_shutdown(void)
{
	struct block *b;

	pthread_mutex_lock(&reg.lock);
	if (reg.key_made) {
		pthread_key_delete(reg.key);
		reg.key_made = 0;
	}
	while ((b = reg.all)) {
		reg.all = b->next;
		for (unsigned i = 0; i < MAX_CHUNKS; i++)
			free(atomic_load_explicit(&b->chunks[i], memory_order_relaxed));
		free(b);
	}
	reg.free = NULL;
	reg.ledger = NULL;
	pthread_mutex_unlock(&reg.lock);
	mine = NULL;
	metrics_on = 0;
}

enum metrics_route metrics_route_of(enum request_route_kind kind)
{
	switch (kind) {
	case ROUTE_HEALTHZ: return METRICS_ROUTE_HEALTHZ;
	case ROUTE_EVENTS: return METRICS_ROUTE_EVENTS;
	case ROUTE_EVENT: return METRICS_ROUTE_EVENT;
	case ROUTE_PURCHASE: return METRICS_ROUTE_PURCHASE;
	case ROUTE_ORDER: return METRICS_ROUTE_ORDER;
	case ROUTE_METRICS: return METRICS_ROUTE_METRICS;
	case ROUTE_REFUND: return METRICS_ROUTE_REFUND;
	default: return METRICS_ROUTE_OTHER;
	}
}

/* The counter slot of an HTTP status; the last slot is "other". */
static unsigned status_slot(int status)
{
	for (unsigned i = 0; i < NSTATUS - 1; i++)
		if (statuses[i] == status)
			return i;
	return NSTATUS - 1;
}

static void observe(struct hist *h, uint64_t ns)
{
	unsigned i = 0;

	while (i < NBUCKETS && ns > bounds_ns[i])
		i++;
	bump(&h->bucket[i], 1);
	bump(&h->sum_ns, ns);
}

void metrics_reply_slow(enum metrics_route route, int status, uint64_t t0)
{
	struct block *b = block();
	uint64_t now;

	if (!b || (unsigned)route >= METRICS_NROUTES)
		return;
	bump(&b->requests[route][status_slot(status)], 1);
	if (t0) {
		now = metrics_clock();
		observe(&b->latency[route], now > t0 ? now - t0 : 0);
	}
}

/* This thread's counters of ev, allocating their chunk; NULL if ev is
 * beyond what is counted, or out of memory. */
static struct ev_counts *ev_counts(struct block *b, const struct catalog_event *ev)
{
	unsigned c = ev->seq / CHUNK_EVENTS;
	struct ev_chunk *ch;

	if (c >= MAX_CHUNKS) {
		if (!atomic_exchange(&warned_events, 1))
			log_warn("metrics: events made after the first %u are not counted "
				 "(event %s)", MAX_CHUNKS * CHUNK_EVENTS, ev->id);
		return NULL;
	}
	ch = atomic_load_explicit(&b->chunks[c], memory_order_relaxed);
	if (!ch) {
		ch = calloc(1, sizeof(*ch));
		if (!ch)
			return NULL;
		atomic_store_explicit(&b->chunks[c], ch, memory_order_release);
	}
	return &ch->ev[ev->seq % CHUNK_EVENTS];
}

void metrics_purchase_slow(const struct catalog_event *ev, enum seller_pool tier,
			   enum metrics_outcome outcome, enum seller_pool from,
			   unsigned qty)
{
	struct block *b = block();
	struct ev_counts *e = b ? ev_counts(b, ev) : NULL;

	if (!e || (unsigned)tier >= SELLER_NPOOLS || (unsigned)outcome >= METRICS_NOUTCOMES)
		return;
	bump(&e->purchases[tier][outcome], 1);
	if (outcome == METRICS_SOLD && (unsigned)from < SELLER_NPOOLS)
		bump(&e->sold[from], qty);
}

void metrics_refund_slow(const struct catalog_event *ev, enum seller_pool pool,
			 unsigned qty)
{
	struct block *b = block();
	struct ev_counts *e = b ? ev_counts(b, ev) : NULL;

	if (e && (unsigned)pool < SELLER_NPOOLS)
		bump(&e->refunded[pool], qty);
}

uint64_t metrics_queue_wait_slow(uint64_t queued)
{
	struct block *b = block();
	uint64_t now = metrics_clock();

	if (b && queued)
		observe(&b->queue_wait, now > queued ? now - queued : 0);
	return now;
}

/* The registry index of core, or MAX_CORES - 1 for any beyond. */
static unsigned core_index(const struct seller_core *core)
{
	size_t n = seller_core_count();

	for (size_t i = 0; i < n && i < MAX_CORES; i++)
		if (seller_core_at(i) == core)
			return (unsigned)i;
	return MAX_CORES - 1;
}

uint64_t metrics_reserve_slow(const struct seller_core *core, uint64_t t)
{
	uint64_t now = metrics_clock();
	struct block *b = block();

	if (b && t)
		observe(&b->reserve[core_index(core)], now > t ? now - t : 0);
	return now;
}

void metrics_payment_slow(uint64_t t)
{
	struct block *b = block();

	if (b && t) {
		uint64_t now = metrics_clock();

		observe(&b->payment, now > t ? now - t : 0);
	}
}

void metrics_busy_slow(int busy)
{
	struct block *b = block();

	if (b)
		atomic_store_explicit(&b->busy, busy ? 1u : 0u, memory_order_relaxed);
}

/* ---- the scrape ------------------------------------------------------------ */

struct hist_sum {
	uint64_t bucket[NBUCKETS + 1];
	uint64_t sum_ns;
};

/* Every block summed. */
struct totals {
	uint64_t requests[METRICS_NROUTES][NSTATUS];
	struct hist_sum latency[METRICS_NROUTES];
	struct hist_sum queue_wait;
	struct hist_sum reserve[MAX_CORES];
	struct hist_sum payment;
	unsigned busy;
};

/* One event's counters summed. */
struct ev_sum {
	uint64_t purchases[SELLER_NPOOLS][METRICS_NOUTCOMES];
	uint64_t sold[SELLER_NPOOLS];
	uint64_t refunded[SELLER_NPOOLS];
};

static void hist_add(struct hist_sum *s, struct hist *h)
{
	for (unsigned i = 0; i <= NBUCKETS; i++)
		s->bucket[i] += get(&h->bucket[i]);
	s->sum_ns += get(&h->sum_ns);
}

static uint64_t hist_count(const struct hist_sum *s)
{
	uint64_t n = 0;

	for (unsigned i = 0; i <= NBUCKETS; i++)
		n += s->bucket[i];
	return n;
}

/* Sums every block into t and the per-event counters of evs[0..n) into es;
 * reg.lock held. */
static void sum_blocks(struct totals *t, struct catalog_event *const *evs, size_t n,
		       struct ev_sum *es)
{
	for (struct block *b = reg.all; b; b = b->next) {
		for (unsigned r = 0; r < METRICS_NROUTES; r++) {
			for (unsigned s = 0; s < NSTATUS; s++)
				t->requests[r][s] += get(&b->requests[r][s]);
			hist_add(&t->latency[r], &b->latency[r]);
		}
		hist_add(&t->queue_wait, &b->queue_wait);
		for (unsigned c = 0; c < MAX_CORES; c++)
			hist_add(&t->reserve[c], &b->reserve[c]);
		hist_add(&t->payment, &b->payment);
		t->busy += atomic_load_explicit(&b->busy, memory_order_relaxed);
		for (size_t i = 0; i < n; i++) {
			unsigned seq = evs[i]->seq;
			struct ev_chunk *ch;
			struct ev_counts *e;

			if (seq / CHUNK_EVENTS >= MAX_CHUNKS)
				continue;
			ch = atomic_load_explicit(&b->chunks[seq / CHUNK_EVENTS],
						  memory_order_acquire);
			if (!ch)
				continue;
			e = &ch->ev[seq % CHUNK_EVENTS];
			for (int p = 0; p < SELLER_NPOOLS; p++) {
				for (int o = 0; o < METRICS_NOUTCOMES; o++)
					es[i].purchases[p][o] += get(&e->purchases[p][o]);
				es[i].sold[p] += get(&e->sold[p]);
				es[i].refunded[p] += get(&e->refunded[p]);
			}
		}
	}
}

/* ---- formatting -------------------------------------------------------------- */

/* The exposition under construction: a growing buffer, written without
 * stdio (a scrape of a few events is ~15 KB; printf made it 6x slower). */
struct out {
	char *buf;
	size_t len, cap;
	int oom;                 /* an allocation failed: the scrape fails */
};

static void out_mem(struct out *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 16384;
		char *b;

		while (cap < o->len + n + 1)
			cap *= 2;
		b = realloc(o->buf, cap);
		if (!b) {
			o->oom = 1;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
	out_mem(o, s, strlen(s));
}

static void out_u64(struct out *o, uint64_t v)
{
	char tmp[FMT_U64_LEN];

	out_mem(o, tmp, fmt_u64(tmp, v));
}

static void out_i64(struct out *o, int64_t v)
{
	if (v < 0) {
		out_mem(o, "-", 1);
		out_u64(o, 0 - (uint64_t)v);
	} else {
		out_u64(o, (uint64_t)v);
	}
}

/* ns as seconds with 9 decimals, exactly: "12.000345678". */
static void out_secs(struct out *o, uint64_t ns)
{
	char frac[10];
	uint64_t f = ns % 1000000000u;

	out_u64(o, ns / 1000000000u);
	for (int i = 8; i >= 0; i--, f /= 10)
		frac[1 + i] = (char)('0' + f % 10);
	frac[0] = '.';
	out_mem(o, frac, sizeof(frac));
}

/* s with \ and newline escaped (HELP text), and " too in label values, as
 * the exposition format asks. */
static void out_escaped(struct out *o, const char *s, int label)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" :
				  *s == '"' && label ? "\\\"" : NULL;

		if (!esc)
			continue;
		out_mem(o, run, (size_t)(s - run));
		out_mem(o, esc, 2);
		run = s + 1;
	}
	out_mem(o, run, (size_t)(s - run));
}

/* The # HELP and # TYPE lines of a family. */
static void family(struct out *o, const char *name, const char *type, const char *help)
{
	out_str(o, "# HELP ");
	out_str(o, name);
	out_mem(o, " ", 1);
	out_escaped(o, help, 0);
	out_str(o, "\n# TYPE ");
	out_str(o, name);
	out_mem(o, " ", 1);
	out_str(o, type);
	out_mem(o, "\n", 1);
}

/* name{event="...",tier="..."[,extra]} for an event's tier (no value). */
static void ev_series(struct out *o, const char *name, const struct catalog_event *ev,
		      int pool, const char *extra)
{
	out_str(o, name);
	out_str(o, "{event=\"");
	out_escaped(o, ev->id, 1);
	out_str(o, "\",tier=\"");
	out_str(o, seller_pool_name((enum seller_pool)pool));
	out_mem(o, "\"", 1);
	if (extra) {
		out_mem(o, ",", 1);
		out_str(o, extra);
	}
	out_mem(o, "} ", 2);
}

/* name{labels} or name, then a space. */
static void series(struct out *o, const char *name, const char *suffix,
		   const char *labels)
{
	out_str(o, name);
	out_str(o, suffix);
	if (labels[0]) {
		out_mem(o, "{", 1);
		out_str(o, labels);
		out_mem(o, "}", 1);
	}
	out_mem(o, " ", 1);
}

/* Writes bucket i's le value. */
typedef void (*le_fn)(struct out *o, unsigned i);

/* One histogram: cumulative buckets, _sum (already in its unit, as ns to
 * print as seconds, or as a plain integer) and _count. labels is "" or
 * 'key="value"'; counts has n + 1 entries, the last being +Inf. */
static void hist_out(struct out *o, const char *name, const char *labels, unsigned n,
		     const uint64_t *counts, le_fn le, uint64_t sum, int sum_is_ns)
{
	uint64_t cum = 0;

	for (unsigned i = 0; i <= n; i++) {
		cum += counts[i];
		out_str(o, name);
		out_str(o, "_bucket{");
		if (labels[0]) {
			out_str(o, labels);
			out_mem(o, ",", 1);
		}
		out_str(o, "le=\"");
		if (i < n)
			le(o, i);
		else
			out_str(o, "+Inf");
		out_str(o, "\"} ");
		out_u64(o, cum);
		out_mem(o, "\n", 1);
	}
	series(o, name, "_sum", labels);
	if (sum_is_ns)
		out_secs(o, sum);
	else
		out_u64(o, sum);
	out_mem(o, "\n", 1);
	series(o, name, "_count", labels);
	out_u64(o, cum);
	out_mem(o, "\n", 1);
}

/* bounds_ns as the exposition writes them (seconds). */
static const char *const le_time_text[NBUCKETS] = {
	"1e-07", "2.5e-07", "5e-07", "1e-06", "2.5e-06", "5e-06",
	"1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005",
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
	"0.1", "0.25", "0.5", "1", "2.5", "5", "10",
};

static void le_time(struct out *o, unsigned i)
{
	out_str(o, le_time_text[i]);
}

/* Ledger batch sizes: bucket i holds [2^(i-1), 2^i), so at most 2^i - 1. */
static void le_batch(struct out *o, unsigned i)
{
	out_u64(o, ledger_hist_bound(i) - 1);
}

/* Ledger commit times: bucket i holds whole µs below 2^i. */
static void le_commit(struct out *o, unsigned i)
{
	out_secs(o, ledger_hist_bound(i) * 1000u);
}

static void time_hist(struct out *o, const char *name, const char *labels,
		      const struct hist_sum *h)
{
	hist_out(o, name, labels, NBUCKETS, h->bucket, le_time, h->sum_ns, 1);
}

/* A gauge or counter family with one unlabelled sample. */
static void single(struct out *o, const char *name, const char *type, const char *help,
		   uint64_t v)
{
	family(o, name, type, help);
	out_str(o, name);
	out_mem(o, " ", 1);
	out_u64(o, v);
	out_mem(o, "\n", 1);
}

static void write_http(struct out *o, const struct totals *t)
{
	char labels[64];

	family(o, "ticketd_http_requests_total", "counter",
	       "HTTP requests answered by ticketd, by route and status (evhttp's own "
	       "400/413/501 replies are not seen).");
	for (unsigned r = 0; r < METRICS_NROUTES; r++) {
		for (unsigned s = 0; s < NSTATUS; s++) {
			if (!t->requests[r][s])
				continue;
			out_str(o, "ticketd_http_requests_total{route=\"");
			out_str(o, route_names[r]);
			out_str(o, "\",status=\"");
			if (s < NSTATUS - 1)
				out_u64(o, (uint64_t)statuses[s]);
			else
				out_str(o, "other");
			out_str(o, "\"} ");
			out_u64(o, t->requests[r][s]);
			out_mem(o, "\n", 1);
		}
	}
	family(o, "ticketd_http_request_duration_seconds", "histogram",
	       "Time from a parsed request to its reply handed to evhttp, by route.");
	for (unsigned r = 0; r < METRICS_NROUTES; r++) {
		if (!hist_count(&t->latency[r]))
			continue;
		snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[r]);
		time_hist(o, "ticketd_http_request_duration_seconds", labels, &t->latency[r]);
	}
}

/* One counter or gauge family over every event's tiers. */
static void per_tier(struct out *o, const char *name, const char *type, const char *help,
		     struct catalog_event *const *evs, size_t n,
		     int64_t (*get_v)(const void *arg, size_t i, int pool), const void *arg)
{
	family(o, name, type, help);
	for (size_t i = 0; i < n; i++)
		for (int p = 0; p <= (evs[i]->has_vip ? SELLER_VIP : SELLER_GENERAL); p++) {
			ev_series(o, name, evs[i], p, NULL);
			out_i64(o, get_v(arg, i, p));
			out_mem(o, "\n", 1);
		}
}

static int64_t v_sold(const void *arg, size_t i, int p)
{
	return (int64_t)((const struct ev_sum *)arg)[i].sold[p];
}

static int64_t v_refunded(const void *arg, size_t i, int p)
{
	return (int64_t)((const struct ev_sum *)arg)[i].refunded[p];
}

static int64_t v_available(const void *arg, size_t i, int p)
{
	return ((const struct seller_snapshot *)arg)[i].available[p];
}

static int64_t v_capacity(const void *arg, size_t i, int p)
{
	return ((const struct seller_snapshot *)arg)[i].capacity[p];
}

static void write_events(struct out *o, struct catalog_event *const *evs, size_t n,
			 const struct ev_sum *es, const struct seller_snapshot *snap)
{
	static const char *const outcome_labels[METRICS_NOUTCOMES] = {
		"outcome=\"sold\"", "outcome=\"sold_out\"", "outcome=\"declined\"",
		"outcome=\"overloaded\"", "outcome=\"unavailable\"", "outcome=\"failed\"",
		"outcome=\"replayed\"", "outcome=\"rejected\"",
	};

	family(o, "ticketd_purchases_total", "counter",
	       "Purchases by event, tier asked for and outcome.");
	for (size_t i = 0; i < n; i++)
		for (int p = 0; p <= (evs[i]->has_vip ? SELLER_VIP : SELLER_GENERAL); p++)
			for (int k = 0; k < METRICS_NOUTCOMES; k++) {
				ev_series(o, "ticketd_purchases_total", evs[i], p,
					  outcome_labels[k]);
				out_u64(o, es[i].purchases[p][k]);
				out_mem(o, "\n", 1);
			}
	per_tier(o, "ticketd_tickets_sold_total", "counter",
		 "Tickets sold since start, by event and the tier they came from.",
		 evs, n, v_sold, es);
	per_tier(o, "ticketd_tickets_refunded_total", "counter",
		 "Tickets refunded since start, by event and tier.", evs, n, v_refunded, es);
	per_tier(o, "ticketd_tickets_available", "gauge",
		 "Tickets left, by event and tier (a purchase waiting for its payment "
		 "holds its tickets).", evs, n, v_available, snap);
	per_tier(o, "ticketd_tickets_capacity", "gauge",
		 "Tickets on sale in all, by event and tier.", evs, n, v_capacity, snap);
}

static void write_work(struct out *o, const struct metrics_sources *src,
		       const struct totals *t, struct catalog_event *const *evs, size_t n)
{
	int used[MAX_CORES] = { 0 };
	char labels[96];

	single(o, "ticketd_queue_depth", "gauge", "Jobs waiting for a worker.",
	       src->pool ? pool_queued(src->pool) : 0);
	single(o, "ticketd_queue_capacity", "gauge",
	       "Jobs the worker queue holds at most (queue_depth); beyond, 503.",
	       src->queue_capacity);
	single(o, "ticketd_workers", "gauge", "Worker threads running.",
	       src->pool ? pool_workers(src->pool) : 0);
	single(o, "ticketd_workers_busy", "gauge", "Workers running a batch of jobs.",
	       t->busy);
	single(o, "ticketd_connections_open", "gauge", "Open client connections.",
	       src->connections);
	family(o, "ticketd_queue_wait_seconds", "histogram",
	       "Time a job waited in the worker queue.");
	time_hist(o, "ticketd_queue_wait_seconds", "", &t->queue_wait);
	/* Every core an event on sale uses, and any that has counted. */
	for (size_t i = 0; i < n; i++)
		used[core_index(evs[i]->core)] = 1;
	family(o, "ticketd_reserve_duration_seconds", "histogram",
	       "Time inside the seller core's reserve call (its critical section), "
	       "by core.");
	for (unsigned c = 0; c < MAX_CORES; c++) {
		const struct seller_core *core = c < seller_core_count() ? seller_core_at(c)
									: NULL;

		if (!core || (!used[c] && !hist_count(&t->reserve[c])))
			continue;
		snprintf(labels, sizeof(labels), "seller=\"%s\"", core->name);
		time_hist(o, "ticketd_reserve_duration_seconds", labels, &t->reserve[c]);
	}
	family(o, "ticketd_payment_duration_seconds", "histogram",
	       "Time from a reservation to the payment's answer (the simulated "
	       "latency, waited on a timer or by a worker).");
	time_hist(o, "ticketd_payment_duration_seconds", "", &t->payment);
}

static void write_ledger(struct out *o, metrics_ledger_fn fn, void *arg)
{
	struct ledger_stats st;

	memset(&st, 0, sizeof(st));
	fn(arg, &st);
	family(o, "ticketd_ledger_batch_size", "histogram",
	       "Requests committed per ledger transaction (group commit).");
	hist_out(o, "ticketd_ledger_batch_size", "", LEDGER_HIST_BUCKETS - 1,
		 st.batch_hist, le_batch, st.requests, 0);
	family(o, "ticketd_ledger_commit_duration_seconds", "histogram",
	       "Time of one ledger transaction, BEGIN to COMMIT (and its sync).");
	hist_out(o, "ticketd_ledger_commit_duration_seconds", "", LEDGER_HIST_BUCKETS - 1,
		 st.commit_us_hist, le_commit, st.commit_ns_total, 1);
	single(o, "ticketd_ledger_failed_batches_total", "counter",
	       "Ledger transactions that failed (each of their requests got an error).",
	       st.failed_batches);
	single(o, "ticketd_ledger_queue_depth", "gauge",
	       "Requests waiting for the ledger thread.", st.queued);
}

int metrics_render(const struct metrics_sources *src, char **text, size_t *len)
{
	struct totals *t = NULL;
	struct ev_sum *es = NULL;
	struct seller_snapshot *snap = NULL;
	metrics_ledger_fn ledger;
	void *ledger_arg;
	struct out o = { 0 };
	size_t n = 0;
	struct catalog_event *const *evs = src->cat ? catalog_events(src->cat, &n) : NULL;

	if (!metrics_on)
		return -ENOTSUP;
	t = calloc(1, sizeof(*t));
	es = calloc(n ? n : 1, sizeof(*es));
	snap = calloc(n ? n : 1, sizeof(*snap));
	if (!t || !es || !snap)
		goto fail;
	pthread_mutex_lock(&reg.lock);
	sum_blocks(t, evs, n, es);
	ledger = reg.ledger;
	ledger_arg = reg.ledger_arg;
	pthread_mutex_unlock(&reg.lock);
	for (size_t i = 0; i < n; i++)
		seller_snapshot(evs[i]->seller, &snap[i]);

	family(&o, "ticketd_build_info", "gauge", "Always 1; the version as a label.");
	out_str(&o, "ticketd_build_info{version=\"" PACKAGE_VERSION "\"} 1\n");
	write_http(&o, t);
	write_events(&o, evs, n, es, snap);
	write_work(&o, src, t, evs, n);
	if (ledger)
		write_ledger(&o, ledger, ledger_arg);
	if (o.oom)
		goto fail;
	*text = o.buf;
	*len = o.len;
	free(t);
	free(es);
	free(snap);
	return 0;
fail:
	free(o.buf);
	free(t);
	free(es);
	free(snap);
	return -ENOMEM;
}
