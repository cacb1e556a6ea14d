/*
 * seller_sharded.c: the "sharded" core. Each pool's tickets are spread over
 * N shards, each alone on a 128-byte pair of cache lines. A thread's home shard is
 * seller_thread_index() % N, so the fast path is one compare-and-swap on a
 * line no other thread touches (with at most N threads): no lock, no global
 * random generator, no shared write.
 *
 * When the home shard cannot cover qty the caller does not give up (the Go
 * ticket-seller article's "tickets in one shard while buyers check an empty
 * shard"):
 *  1. lock-free check: if the shards together are short, answer SOLD_OUT;
 *  2. otherwise take the per-seller rebalance lock, drain every shard of
 *     the pool into one pot, take qty from it if it is large enough, and
 *     spread what is left evenly over all shards again.
 *
 * Why it is correct (every atomic is seq_cst; "instant" = a place in their
 * single total order):
 *  - Outside the rebalance lock a shard only ever decreases: the fast path
 *    CASes v to v - qty only when v >= qty. Every increase (spreading a pot
 *    back, release, grow) and every drain runs under the lock, between two
 *    increments of seq, so seq is odd exactly while tickets sit in a
 *    lock holder's hands or are being added.
 *  - Never past capacity: tickets only move between shards and the pot;
 *    reserve takes qty from a shard or the pot only when it holds qty;
 *    release adds only after checking the exact total (a full drain) plus
 *    qty against capacity, and the total can only fall before it adds.
 *  - SOLD_OUT only when true: (1) reads seq (even), sums the shards and
 *    reads seq again; equal values mean no increase and no pot existed in
 *    between, so at the last read each shard held at most what was read
 *    and the pool held fewer than qty. (2) under the lock nothing can
 *    increase, so a sum below qty is exact at its last read; after draining,
 *    every drained shard stays 0 (only the holder could refill it), so the
 *    pot is the whole pool at the last exchange.
 *  - All or nothing: a reserve is one CAS of the whole qty on one shard, or
 *    is served from the pot of the whole pool.
 *  - VIP: a VIP buyer's fallback runs entirely under the lock: once VIP is
 *    found short there it cannot grow back, so the general take (or the
 *    general shortage) happens while VIP is still short. The lock-free
 *    SOLD_OUT check covers both pools in one validated window.
 * Crossing the border: only the struct seller_core operations below.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seller.h"

#define SHARDED_DEFAULT 8 /* shards when params->shards is 0 (or nproc if more) */
/* Shard stride: two 64-byte lines, because the adjacent-line prefetcher moves
 * lines in 128-byte pairs; with 64-byte shards, two threads whose shards share
 * a pair ran at half speed in bench_cores (3.7 vs 1.9 ns/op at 2 threads). */
#define SHARD_ALIGN 128

struct shard {
	_Alignas(SHARD_ALIGN) atomic_int_fast64_t avail[SELLER_NPOOLS]; /* tickets held here */
};

struct sharded_seller {
	struct seller base;
	unsigned nshards;
	struct shard *shards;        /* nshards lines; read-only pointer */
	_Alignas(SHARD_ALIGN) pthread_mutex_t lock; /* rebalance lock: guards capacity[]; held
					    * for every drain of or addition to a shard */
	atomic_uint seq;             /* odd while the lock holder drains or adds */
	int64_t capacity[SELLER_NPOOLS];
};

/* seller_thread_index() + 1 of this thread, 0 until first needed; a copy
 * local to this file so the fast path reads it without a call. */
static _Thread_local unsigned my_index;

/* Returns the calling thread's home shard. */
static inline unsigned home_of(const struct sharded_seller *s)
{
	unsigned i = my_index;

	if (__builtin_expect(i == 0, 0))
		i = my_index = seller_thread_index() + 1;
	i--;
	return i < s->nshards ? i : i % s->nshards;
}

/* Home shard for the fast path: UINT_MAX until this thread's index is known
 * (the fast path then leaves through its one tail call). */
static inline unsigned home_fast(const struct sharded_seller *s)
{
	unsigned i = my_index - 1;

	if (i < s->nshards)
		return i;
	return i == UINT_MAX ? UINT_MAX : i % s->nshards;
}

/* Takes qty of pool from one shard if it holds that many; true if taken. */
static inline bool shard_take(struct shard *sh, int pool, unsigned qty)
{
	int_fast64_t v = atomic_load(&sh->avail[pool]);

	while (v >= (int_fast64_t)qty)
		if (atomic_compare_exchange_weak(&sh->avail[pool], &v, v - qty))
			return true;
	return false;
}

/* Adds n tickets of pool over all shards, evenly, extras from shard first. */
static void spread(struct sharded_seller *s, int pool, int64_t n, unsigned first)
{
	int64_t per = n / s->nshards;
	int64_t extra = n % s->nshards;

	for (unsigned k = 0; k < s->nshards; k++) {
		int64_t add = per + ((int64_t)k < extra);

		if (add)
			atomic_fetch_add(&s->shards[(first + k) % s->nshards].avail[pool], add);
	}
}

/* Sum of pool over all shards (each read once). */
static int64_t pool_sum(struct sharded_seller *s, int pool)
{
	int64_t sum = 0;

	for (unsigned i = 0; i < s->nshards; i++)
		sum += atomic_load(&s->shards[i].avail[pool]);
	return sum;
}

/* Moves every ticket of pool into the caller's hands; lock held, seq odd. */
static int64_t drain(struct sharded_seller *s, int pool)
{
	int64_t pot = 0;

	for (unsigned i = 0; i < s->nshards; i++)
		pot += atomic_exchange(&s->shards[i].avail[pool], 0);
	return pot;
}

/* Lock-free: true if at one instant every pool in poolmask held < qty. */
static bool pools_short(struct sharded_seller *s, unsigned poolmask, unsigned qty)
{
	unsigned q = atomic_load(&s->seq);

	if (q & 1)
		return false;
	for (int pool = 0; pool < SELLER_NPOOLS; pool++)
		if ((poolmask & (1u << pool)) && pool_sum(s, pool) >= (int64_t)qty)
			return false;
	return atomic_load(&s->seq) == q;
}

/* With the lock held: takes qty of pool from wherever it sits and rebalances;
 * true if taken, false if the pool is short (and stays so while locked). */
static bool take_locked(struct sharded_seller *s, int pool, unsigned qty, unsigned home)
{
	int64_t pot;
	bool ok;

	if (shard_take(&s->shards[home], pool, qty))
		return true;
	if (pool_sum(s, pool) < (int64_t)qty)
		return false;
	atomic_fetch_add(&s->seq, 1);
	pot = drain(s, pool);
	ok = pot >= (int64_t)qty;
	if (ok)
		pot -= qty;
	spread(s, pool, pot, home);
	atomic_fetch_add(&s->seq, 1);
	return ok;
}

/* The slow path of reserve: the home shard could not cover qty, or home is
 * UINT_MAX (this thread's first call). */
static __attribute__((noinline)) int reserve_slow(struct sharded_seller *s, enum seller_pool buyer,
						  unsigned qty, enum seller_pool *from, unsigned home)
{
	int rc = SELLER_SOLD_OUT;

	if (home == UINT_MAX) {
		home = home_of(s);
		if (shard_take(&s->shards[home], buyer, qty)) {
			*from = buyer;
			return SELLER_OK;
		}
	}
	if (buyer == SELLER_VIP) {
		if (pools_short(s, 1u << SELLER_VIP | 1u << SELLER_GENERAL, qty))
			return SELLER_SOLD_OUT;
		pthread_mutex_lock(&s->lock);
		if (take_locked(s, SELLER_VIP, qty, home)) {
			*from = SELLER_VIP;
			rc = SELLER_OK;
		} else if (take_locked(s, SELLER_GENERAL, qty, home)) {
			*from = SELLER_GENERAL;
			rc = SELLER_OK;
		}
		pthread_mutex_unlock(&s->lock);
		return rc;
	}
	if (pools_short(s, 1u << SELLER_GENERAL, qty))
		return SELLER_SOLD_OUT;
	pthread_mutex_lock(&s->lock);
	if (take_locked(s, SELLER_GENERAL, qty, home)) {
		*from = SELLER_GENERAL;
		rc = SELLER_OK;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* Fast path: one CAS on the home shard of the buyer's own pool. */
static int sharded_reserve(struct seller *base, enum seller_pool buyer, unsigned qty,
			   enum seller_pool *from)
{
	struct sharded_seller *s = (struct sharded_seller *)base;
	unsigned home = home_fast(s);

	if (__builtin_expect(home != UINT_MAX, 1) && shard_take(&s->shards[home], buyer, qty)) {
		*from = buyer;
		return SELLER_OK;
	}
	return reserve_slow(s, buyer, qty, from, home);
}

static int sharded_release(struct seller *base, enum seller_pool pool, unsigned qty)
{
	struct sharded_seller *s = (struct sharded_seller *)base;
	int64_t pot;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	atomic_fetch_add(&s->seq, 1);
	pot = drain(s, pool); /* the exact total: nothing can add while we hold it */
	if (pot + (int64_t)qty > s->capacity[pool])
		rc = -EINVAL;
	else
		pot += qty;
	spread(s, pool, pot, home_of(s));
	atomic_fetch_add(&s->seq, 1);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int sharded_grow(struct seller *base, enum seller_pool pool, int64_t add)
{
	struct sharded_seller *s = (struct sharded_seller *)base;
	int rc = -EINVAL;

	pthread_mutex_lock(&s->lock);
	if (s->capacity[pool] <= INT64_MAX / 4 - add) {
		s->capacity[pool] += add;
		atomic_fetch_add(&s->seq, 1);
		spread(s, pool, add, home_of(s));
		atomic_fetch_add(&s->seq, 1);
		rc = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void sharded_snapshot(struct seller *base, struct seller_snapshot *out)
{
	struct sharded_seller *s = (struct sharded_seller *)base;

	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < SELLER_NPOOLS; i++) {
		out->capacity[i] = s->capacity[i];
		out->available[i] = pool_sum(s, i);
	}
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < SELLER_NPOOLS; i++)
		out->sold[i] = out->capacity[i] - out->available[i];
}

/* Shard count for params: the asked one, else max(8, online CPUs). */
static unsigned shard_count(const struct seller_params *p)
{
	long n;

	if (p->shards)
		return p->shards;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < SHARDED_DEFAULT)
		return SHARDED_DEFAULT;
	return n > 1024 ? 1024 : (unsigned)n;
}

static int sharded_create(const struct seller_params *p, struct seller **out)
{
	struct sharded_seller *s = aligned_alloc(SHARD_ALIGN, sizeof(*s));
	int rc = -ENOMEM;

	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->nshards = shard_count(p);
	s->shards = aligned_alloc(SHARD_ALIGN, s->nshards * sizeof(struct shard));
	if (!s->shards)
		goto fail;
	rc = -pthread_mutex_init(&s->lock, NULL);
	if (rc)
		goto fail;
	atomic_init(&s->seq, 0);
	for (unsigned i = 0; i < s->nshards; i++)
		for (int pool = 0; pool < SELLER_NPOOLS; pool++)
			atomic_init(&s->shards[i].avail[pool], 0);
	for (int pool = 0; pool < SELLER_NPOOLS; pool++) {
		s->capacity[pool] = p->capacity[pool];
		spread(s, pool, p->capacity[pool] - p->sold[pool], 0);
	}
	*out = &s->base;
	return 0;
fail:
	free(s->shards);
	free(s);
	return rc;
}

static void sharded_destroy(struct seller *base)
{
	struct sharded_seller *s = (struct sharded_seller *)base;

	pthread_mutex_destroy(&s->lock);
	free(s->shards);
	free(s);
}

const struct seller_core seller_core_sharded = {
	.name = "sharded",
	.summary = "cache-line shards, home shard per thread, exact rebalance when one runs dry",
	.create = sharded_create,
	.destroy = sharded_destroy,
	.reserve = sharded_reserve,
	.release = sharded_release,
	.grow = sharded_grow,
	.snapshot = sharded_snapshot,
};
