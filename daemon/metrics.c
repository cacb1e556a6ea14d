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
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "job.h"
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

static const char *const outcome_names[METRICS_NOUTCOMES] = {
	"sold", "sold_out", "declined", "overloaded", "unavailable", "failed",
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
	pthread_mutex_t lock;    /* guards all, free, key_made, ledger */
	struct block *all;       /* every block made */
	struct block *free;      /* blocks of threads that exited */
	pthread_key_t key;       /* its destructor gives a block back */
	int key_made;
	struct ledger *ledger;
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

void metrics_set_ledger(struct ledger *l)
{
	pthread_mutex_lock(&reg.lock);
	reg.ledger = l;
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

void metrics_job_slow(const struct job *j)
{
	enum metrics_outcome o;

	if (j->kind != JOB_PURCHASE)
		return;
	switch (j->result) {
	case JOB_CREATED: o = METRICS_SOLD; break;
	case JOB_SOLD_OUT: o = METRICS_SOLD_OUT; break;
	case JOB_DECLINED: o = METRICS_DECLINED; break;
	case JOB_UNAVAILABLE: o = METRICS_UNAVAILABLE; break;
	default: o = METRICS_FAILED; break;
	}
	metrics_purchase_slow(j->ev, j->in.tier, o, j->from, j->in.quantity);
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

/* Writes s with \ and newline escaped (HELP text), or with " too (label
 * values), as the exposition format asks. */
static void escaped(FILE *f, const char *s, int label)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (*s == '"' && label)
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

/* The # HELP and # TYPE lines of a family. */
static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s ", name);
	escaped(f, help, 0);
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

/* Writes {event="...",tier="..."} (plus ,extra when not NULL, already
 * formatted) for an event's tier. */
static void ev_labels(FILE *f, const struct catalog_event *ev, int pool,
		      const char *extra)
{
	fputs("{event=\"", f);
	escaped(f, ev->id, 1);
	fprintf(f, "\",tier=\"%s\"%s%s}", seller_pool_name((enum seller_pool)pool),
		extra ? "," : "", extra ? extra : "");
}

/* One histogram: cumulative buckets (le as written by le_fmt from bound i),
 * _sum and _count. labels is "" or 'key="value"'. counts has n + 1 entries,
 * the last being +Inf. */
static void hist_out(FILE *f, const char *name, const char *labels, unsigned n,
		     const uint64_t *counts, void (*le_fmt)(FILE *f, unsigned i),
		     double sum)
{
	const char *sep = labels[0] ? "," : "";
	uint64_t cum = 0;

	for (unsigned i = 0; i <= n; i++) {
		cum += counts[i];
		fprintf(f, "%s_bucket{%s%sle=\"", name, labels, sep);
		if (i < n)
			le_fmt(f, i);
		else
			fputs("+Inf", f);
		fprintf(f, "\"} %" PRIu64 "\n", cum);
	}
	fprintf(f, "%s_sum%s%s%s %.9f\n", name, labels[0] ? "{" : "", labels,
		labels[0] ? "}" : "", sum);
	fprintf(f, "%s_count%s%s%s %" PRIu64 "\n", name, labels[0] ? "{" : "", labels,
		labels[0] ? "}" : "", cum);
}

static void le_time(FILE *f, unsigned i)
{
	fprintf(f, "%g", (double)bounds_ns[i] / 1e9);
}

/* Ledger batch sizes: bucket i holds [2^(i-1), 2^i), so at most 2^i - 1. */
static void le_batch(FILE *f, unsigned i)
{
	fprintf(f, "%" PRIu64, ledger_hist_bound(i) - 1);
}

/* Ledger commit times: bucket i holds whole µs below 2^i. */
static void le_commit(FILE *f, unsigned i)
{
	fprintf(f, "%.6f", (double)ledger_hist_bound(i) / 1e6);
}

static void time_hist(FILE *f, const char *name, const char *labels,
		      const struct hist_sum *h)
{
	hist_out(f, name, labels, NBUCKETS, h->bucket, le_time, (double)h->sum_ns / 1e9);
}

static void write_http(FILE *f, const struct totals *t)
{
	char labels[64];

	family(f, "ticketd_http_requests_total", "counter",
	       "HTTP requests answered by ticketd, by route and status (evhttp's own "
	       "400/413/501 replies are not seen).");
	for (unsigned r = 0; r < METRICS_NROUTES; r++) {
		for (unsigned s = 0; s < NSTATUS; s++) {
			if (!t->requests[r][s])
				continue;
			fprintf(f, "ticketd_http_requests_total{route=\"%s\",status=\"",
				route_names[r]);
			if (s < NSTATUS - 1)
				fprintf(f, "%d", statuses[s]);
			else
				fputs("other", f);
			fprintf(f, "\"} %" PRIu64 "\n", t->requests[r][s]);
		}
	}
	family(f, "ticketd_http_request_duration_seconds", "histogram",
	       "Time from a parsed request to its reply handed to evhttp, by route.");
	for (unsigned r = 0; r < METRICS_NROUTES; r++) {
		if (!hist_count(&t->latency[r]))
			continue;
		snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[r]);
		time_hist(f, "ticketd_http_request_duration_seconds", labels, &t->latency[r]);
	}
}

static void write_events(FILE *f, struct catalog_event *const *evs, size_t n,
			 const struct ev_sum *es)
{
	struct seller_snapshot *snap = calloc(n ? n : 1, sizeof(*snap));
	char extra[48];

	family(f, "ticketd_purchases_total", "counter",
	       "Purchases by event, tier asked for and outcome.");
	for (size_t i = 0; i < n; i++)
		for (int p = 0; p < SELLER_NPOOLS; p++)
			for (int o = 0; p <= evs[i]->has_vip && o < METRICS_NOUTCOMES; o++) {
				snprintf(extra, sizeof(extra), "outcome=\"%s\"",
					 outcome_names[o]);
				fputs("ticketd_purchases_total", f);
				ev_labels(f, evs[i], p, extra);
				fprintf(f, " %" PRIu64 "\n", es[i].purchases[p][o]);
			}
	family(f, "ticketd_tickets_sold_total", "counter",
	       "Tickets sold since start, by event and the tier they came from.");
	for (size_t i = 0; i < n; i++)
		for (int p = 0; p <= evs[i]->has_vip; p++) {
			fputs("ticketd_tickets_sold_total", f);
			ev_labels(f, evs[i], p, NULL);
			fprintf(f, " %" PRIu64 "\n", es[i].sold[p]);
		}
	family(f, "ticketd_tickets_refunded_total", "counter",
	       "Tickets refunded since start, by event and tier.");
	for (size_t i = 0; i < n; i++)
		for (int p = 0; p <= evs[i]->has_vip; p++) {
			fputs("ticketd_tickets_refunded_total", f);
			ev_labels(f, evs[i], p, NULL);
			fprintf(f, " %" PRIu64 "\n", es[i].refunded[p]);
		}
	if (!snap)
		return;
	for (size_t i = 0; i < n; i++)
		seller_snapshot(evs[i]->seller, &snap[i]);
	family(f, "ticketd_tickets_available", "gauge",
	       "Tickets left, by event and tier (a purchase waiting for its payment "
	       "holds its tickets).");
	for (size_t i = 0; i < n; i++)
		for (int p = 0; p <= evs[i]->has_vip; p++) {
			fputs("ticketd_tickets_available", f);
			ev_labels(f, evs[i], p, NULL);
			fprintf(f, " %lld\n", (long long)snap[i].available[p]);
		}
	family(f, "ticketd_tickets_capacity", "gauge",
	       "Tickets on sale in all, by event and tier.");
	for (size_t i = 0; i < n; i++)
		for (int p = 0; p <= evs[i]->has_vip; p++) {
			fputs("ticketd_tickets_capacity", f);
			ev_labels(f, evs[i], p, NULL);
			fprintf(f, " %lld\n", (long long)snap[i].capacity[p]);
		}
	free(snap);
}

static void write_work(FILE *f, const struct metrics_sources *src,
		       const struct totals *t, struct catalog_event *const *evs, size_t n)
{
	int used[MAX_CORES] = { 0 };
	char labels[96];

	family(f, "ticketd_queue_depth", "gauge", "Jobs waiting for a worker.");
	fprintf(f, "ticketd_queue_depth %u\n", src->pool ? pool_queued(src->pool) : 0);
	family(f, "ticketd_queue_capacity", "gauge",
	       "Jobs the worker queue holds at most (queue_depth); beyond, 503.");
	fprintf(f, "ticketd_queue_capacity %u\n", src->queue_capacity);
	family(f, "ticketd_workers", "gauge", "Worker threads running.");
	fprintf(f, "ticketd_workers %u\n", src->pool ? pool_workers(src->pool) : 0);
	family(f, "ticketd_workers_busy", "gauge", "Workers running a batch of jobs.");
	fprintf(f, "ticketd_workers_busy %u\n", t->busy);
	family(f, "ticketd_connections_open", "gauge", "Open client connections.");
	fprintf(f, "ticketd_connections_open %u\n", src->connections);
	family(f, "ticketd_queue_wait_seconds", "histogram",
	       "Time a job waited in the worker queue.");
	time_hist(f, "ticketd_queue_wait_seconds", "", &t->queue_wait);
	/* Every core an event on sale uses, and any that has counted. */
	for (size_t i = 0; i < n; i++)
		used[core_index(evs[i]->core)] = 1;
	family(f, "ticketd_reserve_duration_seconds", "histogram",
	       "Time inside the seller core's reserve call (its critical section), "
	       "by core.");
	for (unsigned c = 0; c < MAX_CORES; c++) {
		const struct seller_core *core = c < seller_core_count() ? seller_core_at(c)
									: NULL;

		if (!core || (!used[c] && !hist_count(&t->reserve[c])))
			continue;
		snprintf(labels, sizeof(labels), "seller=\"%s\"", core->name);
		time_hist(f, "ticketd_reserve_duration_seconds", labels, &t->reserve[c]);
	}
	family(f, "ticketd_payment_duration_seconds", "histogram",
	       "Time from a reservation to the payment's answer (the simulated "
	       "latency, waited on a timer or by a worker).");
	time_hist(f, "ticketd_payment_duration_seconds", "", &t->payment);
}

static void write_ledger(FILE *f, struct ledger *l)
{
	struct ledger_stats st;

	ledger_stats(l, &st);
	family(f, "ticketd_ledger_batch_size", "histogram",
	       "Requests committed per ledger transaction (group commit).");
	hist_out(f, "ticketd_ledger_batch_size", "", LEDGER_HIST_BUCKETS - 1,
		 st.batch_hist, le_batch, (double)st.requests);
	family(f, "ticketd_ledger_commit_duration_seconds", "histogram",
	       "Time of one ledger transaction, BEGIN to COMMIT (and its sync).");
	hist_out(f, "ticketd_ledger_commit_duration_seconds", "", LEDGER_HIST_BUCKETS - 1,
		 st.commit_us_hist, le_commit, (double)st.commit_ns_total / 1e9);
	family(f, "ticketd_ledger_failed_batches_total", "counter",
	       "Ledger transactions that failed (each of their requests got an error).");
	fprintf(f, "ticketd_ledger_failed_batches_total %" PRIu64 "\n", st.failed_batches);
	family(f, "ticketd_ledger_queue_depth", "gauge",
	       "Requests waiting for the ledger thread.");
	fprintf(f, "ticketd_ledger_queue_depth %" PRIu64 "\n", st.queued);
}

int metrics_render(const struct metrics_sources *src, char **out, size_t *len)
{
	struct totals *t = NULL;
	struct ev_sum *es = NULL;
	struct ledger *ledger;
	char *buf = NULL;
	size_t n = 0, size = 0;
	struct catalog_event *const *evs = src->cat ? catalog_events(src->cat, &n) : NULL;
	FILE *f = NULL;
	int rc = -ENOMEM;

	if (!metrics_on)
		return -ENOTSUP;
	t = calloc(1, sizeof(*t));
	es = calloc(n ? n : 1, sizeof(*es));
	if (!t || !es)
		goto fail;
	pthread_mutex_lock(&reg.lock);
	sum_blocks(t, evs, n, es);
	ledger = reg.ledger;
	pthread_mutex_unlock(&reg.lock);

	f = open_memstream(&buf, &size);
	if (!f)
		goto fail;
	family(f, "ticketd_build_info", "gauge", "Always 1; the version as a label.");
	fprintf(f, "ticketd_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	write_http(f, t);
	write_events(f, evs, n, es);
	write_work(f, src, t, evs, n);
	if (ledger)
		write_ledger(f, ledger);
	if (ferror(f) || fclose(f) != 0) {
		f = NULL;
		goto fail;
	}
	*out = buf;
	*len = size;
	free(t);
	free(es);
	return 0;
fail:
	if (f)
		fclose(f);
	free(buf);
	free(t);
	free(es);
	return rc;
}
