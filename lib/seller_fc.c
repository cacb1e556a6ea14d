/*
 * seller_fc.c: flat combining (Hendler, Incze, Shavit, Tzafrir, SPAA 2010),
 * the engine of the "batched" and "priority" cores.
 *
 * A caller that finds the combiner lock free takes it and serves its own
 * request together with every published one. Otherwise it claims its
 * publication slot (seller_thread_index() % SELLER_FC_SLOTS, by CAS), writes
 * its request there, sets the slot's bit in `pending`, and waits: it spins
 * briefly, taking the lock itself if it comes free, then sleeps on a futex
 * in its slot. Whoever holds the lock takes all pending bits at once and
 * answers each request in its slot (its own exact result), then, after
 * unlocking, wakes the sleepers it answered. A caller whose slot is in use by
 * another thread with the same index residue takes the lock the blocking way
 * and combines itself. With vip_first, each pass answers the waiting VIP
 * requests before the waiting general ones.
 *
 * No lost wake-up: a waiter sleeps only after setting `waiting` and then
 * failing a trylock; the thread that held the lock at that moment will, after
 * unlocking, look at `pending` and wake one sleeper whose request is still
 * unserved (fc_kick). That one retries the lock: either it gets it and serves
 * everybody, or someone else holds it, and that holder took the lock after the
 * sleeper published, so it serves the sleeper too and kicks in turn.
 *
 * The inventory is plain integers guarded by the combiner lock, so each
 * answer is exact and the rules of seller.h hold as in the mutex core. No
 * allocation, syscall or logging happens while the lock is held (futex wakes
 * are issued after unlocking).
 */
#include "config.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "seller_fc.h"

#define FC_SPIN 128  /* polls of our slot before sleeping */
#define FC_PASSES 4  /* rounds of `pending` one combiner serves at most */

struct fc_req {
	int buyer;      /* enum seller_pool of the buyer */
	unsigned qty;
	int rc;         /* SELLER_OK or SELLER_SOLD_OUT */
	int from;       /* pool taken from, when rc == SELLER_OK */
};

/* Slots and the lock sit 128 bytes apart: the adjacent-line prefetcher
 * moves 64-byte lines in pairs. */
struct fc_slot {
	_Alignas(128) atomic_uint owner; /* 1 while a call uses this slot */
	atomic_uint done;               /* 0 once published, 1 once answered */
	atomic_uint waiting;            /* 1 while the owner sleeps, or is about to */
	atomic_uint wake;               /* futex word: bumped to wake the owner */
	struct fc_req req;              /* written by the owner before its pending bit,
					 * answered by the combiner before done */
};

struct fc_seller {
	struct seller base;
	bool vip_first;                 /* serve VIP requests first in each pass */
	_Alignas(128) atomic_uint lock; /* combiner lock: 0 free, 1 held, 2 held + sleepers;
					 * guards capacity[] and available[] */
	atomic_uint_fast64_t pending;   /* bit i: slot i holds an unserved request */
	int64_t capacity[SELLER_NPOOLS];
	int64_t available[SELLER_NPOOLS];
	struct fc_slot slots[SELLER_FC_SLOTS];
};

static void futex_wait(atomic_uint *word, unsigned val)
{
	syscall(SYS_futex, (void *)word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *word, int n)
{
	syscall(SYS_futex, (void *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Takes the combiner lock if it is free; true if taken. */
static inline bool fc_trylock(struct fc_seller *f)
{
	unsigned c = 0;

	return atomic_compare_exchange_strong(&f->lock, &c, 1);
}

/* Takes the combiner lock, sleeping on it if need be (Drepper's mutex). */
static void fc_lock(struct fc_seller *f)
{
	unsigned c;

	for (int i = 0; i < FC_SPIN; i++) {
		if (atomic_load_explicit(&f->lock, memory_order_relaxed) == 0 && fc_trylock(f))
			return;
		cpu_relax();
	}
	c = atomic_exchange(&f->lock, 2);
	while (c != 0) {
		futex_wait(&f->lock, 2);
		c = atomic_exchange(&f->lock, 2);
	}
}

/* Applies one request to the inventory; lock held. */
static void fc_apply(struct fc_seller *f, struct fc_req *r)
{
	if (r->buyer == SELLER_VIP && f->available[SELLER_VIP] >= r->qty) {
		f->available[SELLER_VIP] -= r->qty;
		r->from = SELLER_VIP;
		r->rc = SELLER_OK;
	} else if (f->available[SELLER_GENERAL] >= r->qty) {
		f->available[SELLER_GENERAL] -= r->qty;
		r->from = SELLER_GENERAL;
		r->rc = SELLER_OK;
	} else {
		r->rc = SELLER_SOLD_OUT;
	}
}

/* Answers slot i; returns the bit to wake after unlocking (0 if not asleep). */
static uint64_t fc_answer(struct fc_seller *f, unsigned i)
{
	struct fc_slot *sl = &f->slots[i];

	fc_apply(f, &sl->req);
	atomic_store(&sl->done, 1);
	return atomic_load(&sl->waiting) ? (uint64_t)1 << i : 0;
}

/* Serves own (may be NULL) and every published request, VIP ones first if
 * vip_first; lock held. Returns the slots to wake once the lock is free. */
static uint64_t fc_combine(struct fc_seller *f, struct fc_req *own)
{
	uint64_t wake = 0;

	for (int pass = 0; pass < FC_PASSES; pass++) {
		uint64_t m = 0, rest;

		if (atomic_load_explicit(&f->pending, memory_order_relaxed))
			m = atomic_exchange(&f->pending, 0);
		if (!m && !own)
			break;
		if (f->vip_first) {
			if (own && own->buyer == SELLER_VIP) {
				fc_apply(f, own);
				own = NULL;
			}
			for (rest = m; rest; rest &= rest - 1) {
				unsigned i = (unsigned)__builtin_ctzll(rest);

				if (f->slots[i].req.buyer == SELLER_VIP) {
					wake |= fc_answer(f, i);
					m &= ~((uint64_t)1 << i);
				}
			}
		}
		if (own) {
			fc_apply(f, own);
			own = NULL;
		}
		for (; m; m &= m - 1)
			wake |= fc_answer(f, (unsigned)__builtin_ctzll(m));
	}
	return wake;
}

/* Releases the lock, wakes the answered sleepers in wake, then wakes one
 * sleeper still waiting to be served (see the top comment). */
static void fc_unlock(struct fc_seller *f, uint64_t wake)
{
	uint64_t m;

	if (atomic_exchange(&f->lock, 0) == 2)
		futex_wake(&f->lock, 1);
	for (; wake; wake &= wake - 1) {
		struct fc_slot *sl = &f->slots[__builtin_ctzll(wake)];

		atomic_fetch_add(&sl->wake, 1);
		futex_wake(&sl->wake, 1);
	}
	for (m = atomic_load(&f->pending); m; m &= m - 1) {
		struct fc_slot *sl = &f->slots[__builtin_ctzll(m)];

		if (atomic_load(&sl->waiting)) {
			atomic_fetch_add(&sl->wake, 1);
			futex_wake(&sl->wake, 1);
			return;
		}
	}
}

/* Waits until slot sl is answered, combining whenever the lock is free. */
static void fc_wait(struct fc_seller *f, struct fc_slot *sl)
{
	for (unsigned spin = 0;; spin++) {
		unsigned w;

		if (atomic_load(&sl->done))
			return;
		if (atomic_load_explicit(&f->lock, memory_order_relaxed) == 0 && fc_trylock(f)) {
			fc_unlock(f, fc_combine(f, NULL));
			continue;
		}
		if (spin < FC_SPIN) {
			cpu_relax();
			continue;
		}
		w = atomic_load(&sl->wake);
		atomic_store(&sl->waiting, 1);
		if (atomic_load(&sl->done)) {
			atomic_store(&sl->waiting, 0);
			return;
		}
		if (fc_trylock(f)) {
			atomic_store(&sl->waiting, 0);
			fc_unlock(f, fc_combine(f, NULL));
			continue;
		}
		futex_wait(&sl->wake, w);
		atomic_store(&sl->waiting, 0);
	}
}

int seller_fc_reserve(struct seller *s, enum seller_pool buyer, unsigned qty,
		      enum seller_pool *from)
{
	struct fc_seller *f = (struct fc_seller *)s;
	struct fc_req own = { .buyer = buyer, .qty = qty, .rc = SELLER_SOLD_OUT, .from = buyer };
	struct fc_slot *sl;
	unsigned i, zero = 0;

	if (atomic_load_explicit(&f->lock, memory_order_relaxed) == 0 && fc_trylock(f)) {
		fc_unlock(f, fc_combine(f, &own));
		goto out;
	}
	i = seller_thread_index() % SELLER_FC_SLOTS;
	sl = &f->slots[i];
	if (!atomic_compare_exchange_strong(&sl->owner, &zero, 1)) {
		/* Slot busy (another thread with the same residue): no slot. */
		fc_lock(f);
		fc_unlock(f, fc_combine(f, &own));
		goto out;
	}
	sl->req.buyer = buyer;
	sl->req.qty = qty;
	atomic_store_explicit(&sl->done, 0, memory_order_relaxed);
	atomic_fetch_or(&f->pending, (uint64_t)1 << i);
	fc_wait(f, sl);
	own = sl->req;
	atomic_store_explicit(&sl->owner, 0, memory_order_release);
out:
	if (own.rc == SELLER_OK)
		*from = own.from;
	return own.rc;
}

int seller_fc_release(struct seller *s, enum seller_pool pool, unsigned qty)
{
	struct fc_seller *f = (struct fc_seller *)s;
	int rc = -EINVAL;

	fc_lock(f);
	if (f->available[pool] + qty <= f->capacity[pool]) {
		f->available[pool] += qty;
		rc = 0;
	}
	fc_unlock(f, fc_combine(f, NULL));
	return rc;
}

int seller_fc_grow(struct seller *s, enum seller_pool pool, int64_t add)
{
	struct fc_seller *f = (struct fc_seller *)s;
	int rc = -EINVAL;

	fc_lock(f);
	if (f->capacity[pool] <= INT64_MAX / 4 - add) {
		f->capacity[pool] += add;
		f->available[pool] += add;
		rc = 0;
	}
	fc_unlock(f, fc_combine(f, NULL));
	return rc;
}

void seller_fc_snapshot(struct seller *s, struct seller_snapshot *out)
{
	struct fc_seller *f = (struct fc_seller *)s;

	fc_lock(f);
	for (int i = 0; i < SELLER_NPOOLS; i++) {
		out->capacity[i] = f->capacity[i];
		out->available[i] = f->available[i];
	}
	fc_unlock(f, fc_combine(f, NULL));
	for (int i = 0; i < SELLER_NPOOLS; i++)
		out->sold[i] = out->capacity[i] - out->available[i];
}

int seller_fc_create(const struct seller_params *p, bool vip_first, struct seller **out)
{
	struct fc_seller *f = aligned_alloc(128, sizeof(*f));

	if (!f)
		return -ENOMEM;
	memset(f, 0, sizeof(*f));
	f->vip_first = vip_first;
	atomic_init(&f->lock, 0);
	atomic_init(&f->pending, 0);
	for (int i = 0; i < SELLER_FC_SLOTS; i++) {
		atomic_init(&f->slots[i].owner, 0);
		atomic_init(&f->slots[i].done, 0);
		atomic_init(&f->slots[i].waiting, 0);
		atomic_init(&f->slots[i].wake, 0);
	}
	for (int i = 0; i < SELLER_NPOOLS; i++) {
		f->capacity[i] = p->capacity[i];
		f->available[i] = p->capacity[i] - p->sold[i];
	}
	*out = &f->base;
	return 0;
}

void seller_fc_destroy(struct seller *s)
{
	free(s);
}

int seller_fc_hold(struct seller *s)
{
	if (s->core->reserve != seller_fc_reserve)
		return -EINVAL;
	fc_lock((struct fc_seller *)s);
	return 0;
}

void seller_fc_waiting(struct seller *s, unsigned *vip, unsigned *general)
{
	struct fc_seller *f = (struct fc_seller *)s;
	uint64_t m = atomic_load(&f->pending);

	*vip = *general = 0;
	for (; m; m &= m - 1) {
		if (f->slots[__builtin_ctzll(m)].req.buyer == SELLER_VIP)
			(*vip)++;
		else
			(*general)++;
	}
}

void seller_fc_unhold(struct seller *s)
{
	struct fc_seller *f = (struct fc_seller *)s;

	fc_unlock(f, fc_combine(f, NULL));
}
