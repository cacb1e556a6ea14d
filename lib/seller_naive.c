/*
 * seller_naive.c: the Go ticket-seller article's broken check-then-act
 * seller, kept only to show overselling. It reads the count, decides, then
 * writes a new count, with nothing tying the read to the write: two buyers
 * that read the same count both sell. Every access is a relaxed atomic, so
 * this is a logic race and not C undefined behaviour. Flagged
 * SELLER_CORE_UNSAFE: seller_core_find never returns it (only
 * seller_core_find_unsafe does), it is outside every guarantee of seller.h,
 * and it is not in the stress tests.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "seller.h"

struct naive_seller {
	struct seller base;
	atomic_int_fast64_t capacity[SELLER_NPOOLS];  /* no lock: that is the bug */
	atomic_int_fast64_t available[SELLER_NPOOLS];
};

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

static int naive_create(const struct seller_params *p, struct seller **out)
{
	struct naive_seller *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	for (int i = 0; i < SELLER_NPOOLS; i++) {
		atomic_init(&n->capacity[i], p->capacity[i]);
		atomic_init(&n->available[i], p->capacity[i] - p->sold[i]);
	}
	*out = &n->base;
	return 0;
}

static void naive_destroy(struct seller *s)
{
	free(s);
}

/* Check, then act: the window between the two is the race. */
static int naive_take(struct naive_seller *n, int pool, unsigned qty)
{
	int_fast64_t avail = LOAD(n->available[pool]);

	if (avail < (int_fast64_t)qty)
		return 0;
	STORE(n->available[pool], avail - qty);
	return 1;
}

static int naive_reserve(struct seller *s, enum seller_pool buyer, unsigned qty,
			 enum seller_pool *from)
{
	struct naive_seller *n = (struct naive_seller *)s;

	if (buyer == SELLER_VIP && naive_take(n, SELLER_VIP, qty)) {
		*from = SELLER_VIP;
		return SELLER_OK;
	}
	if (naive_take(n, SELLER_GENERAL, qty)) {
		*from = SELLER_GENERAL;
		return SELLER_OK;
	}
	return SELLER_SOLD_OUT;
}

static int naive_release(struct seller *s, enum seller_pool pool, unsigned qty)
{
	struct naive_seller *n = (struct naive_seller *)s;
	int_fast64_t avail = LOAD(n->available[pool]);

	if (avail + qty > LOAD(n->capacity[pool]))
		return -EINVAL;
	STORE(n->available[pool], avail + qty);
	return 0;
}

static int naive_grow(struct seller *s, enum seller_pool pool, int64_t add)
{
	struct naive_seller *n = (struct naive_seller *)s;
	int_fast64_t cap = LOAD(n->capacity[pool]);

	if (cap > INT64_MAX / 4 - add)
		return -EINVAL;
	STORE(n->capacity[pool], cap + add);
	STORE(n->available[pool], LOAD(n->available[pool]) + add);
	return 0;
}

static void naive_snapshot(struct seller *s, struct seller_snapshot *out)
{
	struct naive_seller *n = (struct naive_seller *)s;

	for (int i = 0; i < SELLER_NPOOLS; i++) {
		out->capacity[i] = LOAD(n->capacity[i]);
		out->available[i] = LOAD(n->available[i]);
		out->sold[i] = out->capacity[i] - out->available[i];
	}
}

const struct seller_core seller_core_naive = {
	.name = "naive",
	.summary = "UNSAFE: the article's check-then-act; oversells under contention",
	.flags = SELLER_CORE_UNSAFE,
	.create = naive_create,
	.destroy = naive_destroy,
	.reserve = naive_reserve,
	.release = naive_release,
	.grow = naive_grow,
	.snapshot = naive_snapshot,
};
