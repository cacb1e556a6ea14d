/*
 * seller_atomic.c: the "atomic CAS" core. Each pool is one atomic counter of
 * tickets out (sold = capacity - available) changed only by compare-and-swap,
 * plus a capacity that only ever grows. No lock anywhere.
 *
 * Why it is correct (every atomic here is seq_cst, so "instant" means a
 * place in the single total order of those operations):
 *  - reserve loads sold (instant t1), then capacity, then CASes sold from
 *    the value it read to sold + qty. Capacity never shrinks, so a CAS that
 *    succeeds at t2 had sold(t2) = s and capacity(t2) >= c >= s + qty:
 *    never past capacity. A refusal means c - s < qty with capacity(t1) <= c,
 *    so at t1 the pool held fewer than qty.
 *  - release CASes sold down only while sold >= qty, i.e. only while
 *    available + qty <= capacity: never past capacity.
 *  - a VIP buyer tries VIP (short at some t1), then general. If general is
 *    short too (at t2 > t1), that is a true SOLD_OUT only if VIP did not
 *    gain tickets in between. Every call that raises a pool's availability
 *    (release, grow) bumps inc_started before and inc_finished after its
 *    change; the buyer reads VIP's inc_finished before t1 and inc_started
 *    after t2, and equal values prove no VIP increase was in progress or
 *    happened in [t1, t2], so at t2 both pools held fewer than qty.
 *    Otherwise it tries again. (When the general pool covers the fallback,
 *    the VIP pool was short at t1, an instant during the call.)
 * Crossing the border: only the struct seller_core operations below.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "seller.h"

/* 128: the adjacent-line prefetcher moves 64-byte lines in pairs. */
struct atomic_pool {
	_Alignas(128) atomic_int_fast64_t sold; /* tickets out; the one contended word */
	_Alignas(128) atomic_int_fast64_t capacity; /* only grows; read-mostly line */
	atomic_uint_fast64_t inc_started;  /* releases/grows that began raising availability */
	atomic_uint_fast64_t inc_finished; /* ... and that are done */
};

struct atomic_seller {
	struct seller base;
	struct atomic_pool pool[SELLER_NPOOLS];
};

static int atomic_create(const struct seller_params *p, struct seller **out)
{
	struct atomic_seller *a = aligned_alloc(128, sizeof(*a));

	if (!a)
		return -ENOMEM;
	memset(a, 0, sizeof(*a));
	for (int i = 0; i < SELLER_NPOOLS; i++) {
		atomic_init(&a->pool[i].sold, p->sold[i]);
		atomic_init(&a->pool[i].capacity, p->capacity[i]);
		atomic_init(&a->pool[i].inc_started, 0);
		atomic_init(&a->pool[i].inc_finished, 0);
	}
	*out = &a->base;
	return 0;
}

static void atomic_destroy(struct seller *s)
{
	free(s);
}

/* Takes qty from pool p if it holds that many; returns 1 if taken, 0 if the
 * pool held fewer than qty at the instant sold was (last) read. */
static int pool_take(struct atomic_pool *p, unsigned qty)
{
	int_fast64_t sold = atomic_load(&p->sold);

	for (;;) {
		int_fast64_t cap = atomic_load(&p->capacity);

		if (cap - sold < (int_fast64_t)qty)
			return 0;
		/* On failure the CAS reloads sold: the argument above restarts. */
		if (atomic_compare_exchange_weak(&p->sold, &sold, sold + qty))
			return 1;
	}
}

static int atomic_reserve(struct seller *s, enum seller_pool buyer, unsigned qty,
			  enum seller_pool *from)
{
	struct atomic_seller *a = (struct atomic_seller *)s;
	struct atomic_pool *vip = &a->pool[SELLER_VIP];

	if (buyer != SELLER_VIP) {
		if (!pool_take(&a->pool[SELLER_GENERAL], qty))
			return SELLER_SOLD_OUT;
		*from = SELLER_GENERAL;
		return SELLER_OK;
	}
	for (;;) {
		uint_fast64_t done = atomic_load(&vip->inc_finished);

		if (pool_take(vip, qty)) {
			*from = SELLER_VIP;
			return SELLER_OK;
		}
		if (pool_take(&a->pool[SELLER_GENERAL], qty)) {
			*from = SELLER_GENERAL;
			return SELLER_OK;
		}
		if (atomic_load(&vip->inc_started) == done)
			return SELLER_SOLD_OUT;
	}
}

static int atomic_release(struct seller *s, enum seller_pool pool, unsigned qty)
{
	struct atomic_pool *p = &((struct atomic_seller *)s)->pool[pool];
	int_fast64_t sold;
	int rc = 0;

	atomic_fetch_add(&p->inc_started, 1);
	sold = atomic_load(&p->sold);
	do {
		if (sold < (int_fast64_t)qty) {
			rc = -EINVAL; /* would pass capacity */
			break;
		}
	} while (!atomic_compare_exchange_weak(&p->sold, &sold, sold - qty));
	atomic_fetch_add(&p->inc_finished, 1);
	return rc;
}

static int atomic_grow(struct seller *s, enum seller_pool pool, int64_t add)
{
	struct atomic_pool *p = &((struct atomic_seller *)s)->pool[pool];
	int_fast64_t cap;
	int rc = 0;

	atomic_fetch_add(&p->inc_started, 1);
	cap = atomic_load(&p->capacity);
	do {
		if (cap > INT64_MAX / 4 - add) {
			rc = -EINVAL;
			break;
		}
	} while (!atomic_compare_exchange_weak(&p->capacity, &cap, cap + add));
	atomic_fetch_add(&p->inc_finished, 1);
	return rc;
}

static void atomic_snapshot(struct seller *s, struct seller_snapshot *out)
{
	struct atomic_seller *a = (struct atomic_seller *)s;

	/* sold first: capacity only grows and sold <= capacity at every
	 * instant, so capacity read later is >= sold read earlier and the
	 * available figure is never negative. (Capacity first could pair a
	 * capacity from before a grow with sales made after it.) */
	for (int i = 0; i < SELLER_NPOOLS; i++) {
		out->sold[i] = atomic_load(&a->pool[i].sold);
		out->capacity[i] = atomic_load(&a->pool[i].capacity);
		out->available[i] = out->capacity[i] - out->sold[i];
	}
}

const struct seller_core seller_core_atomic = {
	.name = "atomic",
	.summary = "lock-free compare-and-swap loop on one counter per pool",
	.create = atomic_create,
	.destroy = atomic_destroy,
	.reserve = atomic_reserve,
	.release = atomic_release,
	.grow = atomic_grow,
	.snapshot = atomic_snapshot,
};
