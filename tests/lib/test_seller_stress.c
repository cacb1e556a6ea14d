/*
 * test_seller_stress.c: threads hammer every safe core with mixed buyers
 * (general and VIP, qty 1..max_quantity) against less supply than demand,
 * round after round (the Go ticket-seller article's
 * -count=100), with random releases,
 * grows and snapshots interleaved (every snapshot must be possible: no pool
 * with negative sold or available, or more available than its capacity). Each round ends in a quiet phase (reserves only, no
 * release or grow), and then checks, per pool, exactly:
 *   - capacity == initial capacity + every grow, and sold + available == capacity;
 *   - sold == initial sold + granted - released (no ticket lost or invented);
 *   - every general buyer's ticket came from the general pool;
 *   - every qty refused in the quiet phase is larger than what the pools it
 *     could use hold at the end: during the quiet phase stock only falls, so a
 *     true SOLD_OUT (fewer than qty at some instant of the call) implies
 *     final available < qty; a false SOLD_OUT can break it.
 * TICKETD_STRESS_ROUNDS sets the rounds per core (default 100, 25 under
 * ThreadSanitizer); TICKETD_STRESS_SEED replays a run; TICKETD_STRESS_CORES
 * (comma-separated names, unsafe ones allowed) picks the cores, e.g.
 * TICKETD_STRESS_CORES=naive shows the checks catching a broken core.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "seller.h"
#include "tap.h"

#ifdef TICKETD_TSAN
#define DEFAULT_ROUNDS 25
#else
#define DEFAULT_ROUNDS 100
#endif
#define MAX_THREADS 72
#ifdef TICKETD_TSAN
#define SNAPRACE_PAIRS 20000
#else
#define SNAPRACE_PAIRS 300000
#endif

struct round {
	struct seller *s;
	pthread_barrier_t go, quiet;
	unsigned maxq;
	unsigned busy_ops;   /* phase 1 calls per thread */
	unsigned quiet_ops;  /* phase 2 reserves per thread */
};

struct worker {
	struct round *r;
	pthread_t tid;
	unsigned id;
	uint64_t rng;
	int64_t granted[SELLER_NPOOLS];  /* tickets received, by pool taken from */
	int64_t released[SELLER_NPOOLS];
	int64_t grown[SELLER_NPOOLS];
	int64_t held[SELLER_NPOOLS];     /* granted - released: ours to give back */
	unsigned min_refused_general;    /* quiet phase: smallest refused general qty */
	unsigned min_refused_vip;        /* quiet phase: smallest refused VIP qty */
	unsigned refusals;
	unsigned errors;                 /* broken answers, each diagnosed */
};

/* xorshift64*: a per-thread generator; returns the next value. */
static uint64_t rnd(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 2685821657736338717ULL;
}

/* One reserve with random buyer and qty; records the outcome. quiet: phase 2. */
static void one_reserve(struct worker *w, int quiet)
{
	enum seller_pool buyer = rnd(&w->rng) % 4 == 0 ? SELLER_VIP : SELLER_GENERAL;
	unsigned qty = 1 + (unsigned)(rnd(&w->rng) % w->r->maxq);
	enum seller_pool from = (enum seller_pool)-1;
	int rc = seller_reserve(w->r->s, buyer, qty, &from);

	if (rc == SELLER_OK) {
		if (from != SELLER_GENERAL && from != SELLER_VIP) {
			w->errors++;
			return;
		}
		if (buyer == SELLER_GENERAL && from != SELLER_GENERAL) {
			diag("general buyer served from %s", seller_pool_name(from));
			w->errors++;
		}
		w->granted[from] += qty;
		w->held[from] += qty;
	} else if (rc == SELLER_SOLD_OUT) {
		w->refusals++;
		if (!quiet)
			return;
		if (buyer == SELLER_VIP && qty < w->min_refused_vip)
			w->min_refused_vip = qty;
		if (buyer == SELLER_GENERAL && qty < w->min_refused_general)
			w->min_refused_general = qty;
	} else {
		diag("reserve returned %d", rc);
		w->errors++;
	}
}

/* Gives back some of what this thread holds; a refusal would be a bug. */
static void one_release(struct worker *w)
{
	int pool = (int)(rnd(&w->rng) % 2);
	int64_t most = w->held[pool] < SELLER_MAX_QUANTITY ? w->held[pool] : SELLER_MAX_QUANTITY;
	unsigned qty;
	int rc;

	if (most <= 0)
		return;
	qty = 1 + (unsigned)(rnd(&w->rng) % (uint64_t)most);
	rc = seller_release(w->r->s, pool, qty);
	if (rc != 0) {
		diag("release of %u held tickets refused: %d", qty, rc);
		w->errors++;
		return;
	}
	w->released[pool] += qty;
	w->held[pool] -= qty;
}

/* A snapshot taken while others reserve, release and grow: each pool's
 * figures must be possible at some instant (sold and available never
 * negative, available never above capacity). */
static void one_snapshot(struct worker *w)
{
	struct seller_snapshot snap;

	seller_snapshot(w->r->s, &snap);
	for (int p = 0; p < SELLER_NPOOLS; p++) {
		if (snap.sold[p] < 0 || snap.available[p] < 0 ||
		    snap.available[p] > snap.capacity[p]) {
			diag("%s snapshot under load: capacity %" PRId64 ", sold %" PRId64
			     ", available %" PRId64, seller_pool_name((enum seller_pool)p),
			     snap.capacity[p], snap.sold[p],
			     snap.available[p]);
			w->errors++;
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct round *r = w->r;

	pthread_barrier_wait(&r->go);
	for (unsigned i = 0; i < r->busy_ops; i++) {
		uint64_t x = rnd(&w->rng) % 16;

		if (x < 3)
			one_release(w);
		else if (x == 3 && w->id == 0 && rnd(&w->rng) % 8 == 0) {
			int pool = (int)(rnd(&w->rng) % 2);
			int64_t add = 1 + (int64_t)(rnd(&w->rng) % 20);

			if (seller_grow(r->s, pool, add) == 0)
				w->grown[pool] += add;
			else
				w->errors++;
		} else if (x == 4 && w->id == 1) {
			one_snapshot(w);
		} else {
			one_reserve(w, 0);
		}
	}
	pthread_barrier_wait(&r->quiet);
	for (unsigned i = 0; i < r->quiet_ops; i++)
		one_reserve(w, 1);
	return NULL;
}

struct tally {
	unsigned rounds_ok, refusals, errors;
};

/* Runs one round against core; returns 1 if every invariant held. */
static int run_round(const struct seller_core *core, uint64_t seed, unsigned round,
		     struct tally *t)
{
	static struct worker ws[MAX_THREADS];
	uint64_t rng = seed ^ (0x9e3779b97f4a7c15ULL * (round + 1));
	struct seller_params p = { 0 };
	struct round r = { 0 };
	struct seller_snapshot snap;
	unsigned nthreads, min_gen = UINT32_MAX, min_vip = UINT32_MAX;
	int64_t granted[2] = { 0 }, released[2] = { 0 }, grown[2] = { 0 }, demand;
	int good = 1;

	if (rng == 0)
		rng = 1;
	/* Every 10th round: many threads (more than the combining slots share,
	 * more than any shard count), fewer calls each. */
	nthreads = round % 10 == 9 ? MAX_THREADS : 2 + (unsigned)(rnd(&rng) % 5);
	r.maxq = 1 + (unsigned)(rnd(&rng) % 8);
	r.busy_ops = nthreads == MAX_THREADS ? 300 : 3000;
	r.quiet_ops = nthreads == MAX_THREADS ? 150 : 1500;
	demand = (int64_t)nthreads * (r.busy_ops + r.quiet_ops) * (r.maxq + 1) / 2;
	p.max_quantity = r.maxq;
	p.capacity[SELLER_GENERAL] = (int64_t)(rnd(&rng) % (uint64_t)(demand / 2 + 1));
	p.capacity[SELLER_VIP] = (int64_t)(rnd(&rng) % (uint64_t)(demand / 8 + 1));
	for (int i = 0; i < SELLER_NPOOLS; i++)
		p.sold[i] = p.capacity[i] ? (int64_t)(rnd(&rng) % (uint64_t)(p.capacity[i] / 4 + 1)) : 0;
	p.shards = (unsigned)(rnd(&rng) % 17); /* 0 = the core's default */
	if (seller_create(core, &p, &r.s) != 0) {
		diag("%s: create failed", core->name);
		return 0;
	}
	pthread_barrier_init(&r.go, NULL, nthreads);
	pthread_barrier_init(&r.quiet, NULL, nthreads);
	for (unsigned i = 0; i < nthreads; i++) {
		memset(&ws[i], 0, sizeof(ws[i]));
		ws[i].r = &r;
		ws[i].id = i;
		ws[i].rng = rnd(&rng) | 1;
		ws[i].min_refused_general = ws[i].min_refused_vip = UINT32_MAX;
		if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
			diag("pthread_create failed");
			abort(); /* the barriers would hang */
		}
	}
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(ws[i].tid, NULL);
		for (int k = 0; k < SELLER_NPOOLS; k++) {
			granted[k] += ws[i].granted[k];
			released[k] += ws[i].released[k];
			grown[k] += ws[i].grown[k];
		}
		if (ws[i].min_refused_general < min_gen)
			min_gen = ws[i].min_refused_general;
		if (ws[i].min_refused_vip < min_vip)
			min_vip = ws[i].min_refused_vip;
		t->refusals += ws[i].refusals;
		if (ws[i].errors) {
			good = 0;
			t->errors += ws[i].errors;
		}
	}
	seller_snapshot(r.s, &snap);
	for (int k = 0; k < SELLER_NPOOLS; k++) {
		const char *pool = seller_pool_name(k);

		if (snap.capacity[k] != p.capacity[k] + grown[k] ||
		    snap.sold[k] + snap.available[k] != snap.capacity[k] ||
		    snap.available[k] < 0 || snap.available[k] > snap.capacity[k]) {
			diag("%s round %u %s: capacity %" PRId64 " (want %" PRId64 "), sold %" PRId64
			     ", available %" PRId64, core->name, round, pool, snap.capacity[k],
			     p.capacity[k] + grown[k], snap.sold[k], snap.available[k]);
			good = 0;
		}
		if (snap.sold[k] != p.sold[k] + granted[k] - released[k]) {
			diag("%s round %u %s: sold %" PRId64 " but granted - released = %" PRId64,
			     core->name, round, pool, snap.sold[k], p.sold[k] + granted[k] - released[k]);
			good = 0;
		}
	}
	if (min_gen != UINT32_MAX && snap.available[SELLER_GENERAL] >= min_gen) {
		diag("%s round %u: general qty %u refused, but %" PRId64 " general left at the end",
		     core->name, round, min_gen, snap.available[SELLER_GENERAL]);
		good = 0;
	}
	if (min_vip != UINT32_MAX && (snap.available[SELLER_VIP] >= min_vip ||
				      snap.available[SELLER_GENERAL] >= min_vip)) {
		diag("%s round %u: VIP qty %u refused, but %" PRId64 " VIP / %" PRId64
		     " general left at the end", core->name, round, min_vip,
		     snap.available[SELLER_VIP], snap.available[SELLER_GENERAL]);
		good = 0;
	}
	if (!good)
		diag("%s: failing round %u of seed %" PRIu64 " (%u threads, shards %u, maxq %u)",
		     core->name, round, seed, nthreads, p.shards, r.maxq);
	pthread_barrier_destroy(&r.go);
	pthread_barrier_destroy(&r.quiet);
	seller_destroy(r.s);
	t->rounds_ok += good;
	return good;
}

/* The snapshot race: one thread grows a pool by one ticket and at once
 * sells it, again and again, so sold keeps catching up with a capacity that
 * keeps moving; another takes snapshots meanwhile. */
struct snaprace {
	struct seller *s;
	atomic_int stop;
	unsigned bad;          /* impossible snapshots seen (the reader's) */
	struct seller_snapshot first_bad;
};

static void *snaprace_reader(void *arg)
{
	struct snaprace *sr = arg;

	while (!atomic_load_explicit(&sr->stop, memory_order_relaxed)) {
		struct seller_snapshot snap;

		seller_snapshot(sr->s, &snap);
		if (snap.available[SELLER_GENERAL] < 0 || snap.sold[SELLER_GENERAL] < 0 ||
		    snap.available[SELLER_GENERAL] > snap.capacity[SELLER_GENERAL]) {
			if (!sr->bad++)
				sr->first_bad = snap;
		}
	}
	return NULL;
}

/* Runs the snapshot race on core for pairs grow+reserve pairs; returns the
 * number of impossible snapshots (0 expected). */
static unsigned snapshot_race(const struct seller_core *core, unsigned pairs)
{
	struct seller_params p = { .capacity = { 1, 0 }, .sold = { 1, 0 }, .max_quantity = 1 };
	struct snaprace sr = { 0 };
	enum seller_pool from;
	unsigned failed = 0;   /* the writer's own calls that failed */
	pthread_t reader;

	if (seller_create(core, &p, &sr.s) < 0)
		return 1;
	atomic_init(&sr.stop, 0);
	if (pthread_create(&reader, NULL, snaprace_reader, &sr) != 0) {
		seller_destroy(sr.s);
		return 1;
	}
	for (unsigned i = 0; i < pairs; i++) {
		if (seller_grow(sr.s, SELLER_GENERAL, 1) < 0 ||
		    seller_reserve(sr.s, SELLER_GENERAL, 1, &from) != SELLER_OK)
			failed++; /* the writer's own calls must succeed */
	}
	atomic_store(&sr.stop, 1);
	pthread_join(reader, NULL);
	if (sr.bad)
		diag("%s: impossible snapshot: capacity %" PRId64 ", sold %" PRId64
		     ", available %" PRId64, core->name, sr.first_bad.capacity[SELLER_GENERAL],
		     sr.first_bad.sold[SELLER_GENERAL], sr.first_bad.available[SELLER_GENERAL]);
	if (failed)
		diag("%s: %u grow or reserve calls of the writer failed", core->name, failed);
	seller_destroy(sr.s);
	return sr.bad + failed;
}

/* True if core is to be run: the safe ones, or those named in list. */
static int wanted(const struct seller_core *core, const char *list)
{
	size_t n = strlen(core->name);

	if (!list)
		return !(core->flags & SELLER_CORE_UNSAFE);
	for (const char *p = list; (p = strstr(p, core->name)); p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return 1;
	return 0;
}

int main(void)
{
	const char *list = getenv("TICKETD_STRESS_CORES");
	const char *e = getenv("TICKETD_STRESS_ROUNDS");
	unsigned rounds = e ? (unsigned)strtoul(e, NULL, 10) : DEFAULT_ROUNDS;
	uint64_t seed;

	e = getenv("TICKETD_STRESS_SEED");
	seed = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
	diag("seed %" PRIu64 " (TICKETD_STRESS_SEED replays it), %u rounds per core", seed, rounds);
	alarm(600); /* a deadlock fails the test instead of hanging the suite */
	for (size_t i = 0; i < seller_core_count(); i++) {
		const struct seller_core *core = seller_core_at(i);
		struct tally t = { 0 };

		if (!wanted(core, list))
			continue;
		for (unsigned round = 0; round < rounds; round++)
			run_round(core, seed, round, &t);
		ok(t.rounds_ok == rounds && t.errors == 0,
		   "%s: %u/%u rounds kept every invariant (%u refusals seen, %u bad answers)",
		   core->name, t.rounds_ok, rounds, t.refusals, t.errors);
		ok(t.refusals > 0, "%s: demand exceeded supply (%u refusals)", core->name, t.refusals);
		ok(snapshot_race(core, SNAPRACE_PAIRS) == 0,
		   "%s: %u grow-then-sell pairs against a snapshot reader: every snapshot possible",
		   core->name, SNAPRACE_PAIRS);
	}
	return tap_done();
}
