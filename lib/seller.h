/*
 * seller.h: the seller-core interface of libticket.
 *
 * A seller holds the inventory of one event: a general pool and an optional
 * VIP pool (capacity 0 when the event has none). A core is one interchangeable
 * way of guarding that inventory (mutex, atomic, sharded, batched, priority,
 * naive); cores are found by name in a registry so the daemon, the tests and
 * the benchmarks can list and pick them.
 *
 * Rules every correct core keeps:
 *  - reserve is all or nothing and never hands out more than capacity;
 *  - it answers SELLER_SOLD_OUT only if, at some instant during the call, the
 *    pools the buyer may use held fewer than qty tickets each;
 *  - a VIP buyer takes from the VIP pool, and falls back to the general pool
 *    when the VIP pool cannot cover qty; a general buyer never takes VIP tickets;
 *  - release gives tickets back and never beyond capacity;
 *  - snapshot is exact whenever no call is in flight;
 *  - nothing slow (I/O, payment, logging, malloc) runs inside a critical section.
 * The thread-safety of every call is the core's job: all calls may come from
 * any thread at any time, except create/destroy.
 */
#ifndef TICKETD_SELLER_H
#define TICKETD_SELLER_H

#include <stddef.h>
#include <stdint.h>

enum seller_pool {
	SELLER_GENERAL = 0,
	SELLER_VIP = 1,
};
#define SELLER_NPOOLS 2

/* Outcome of seller_reserve; errors are negative errno values. */
enum seller_result {
	SELLER_OK = 0,
	SELLER_SOLD_OUT = 1,
};

/* Largest quantity any core accepts in one call, whatever the config says. */
#define SELLER_MAX_QUANTITY 1000u

struct seller_params {
	int64_t capacity[SELLER_NPOOLS]; /* tickets per pool, >= 0 */
	int64_t sold[SELLER_NPOOLS];     /* already sold (from the ledger), 0..capacity */
	unsigned max_quantity;           /* largest qty per reserve, 1..SELLER_MAX_QUANTITY */
	unsigned shards;                 /* sharded core: shard count, 0 = default */
};

struct seller_snapshot {
	int64_t capacity[SELLER_NPOOLS];
	int64_t available[SELLER_NPOOLS];
	int64_t sold[SELLER_NPOOLS]; /* capacity - available */
};

struct seller;

/* Core flag: breaks the guarantees above; only for demonstrations. */
#define SELLER_CORE_UNSAFE 0x1u

/* One core's operations. Arguments are validated by the seller_* wrappers
 * before a core sees them (qty in 1..max_quantity, pool valid). */
struct seller_core {
	const char *name;    /* registry key, e.g. "mutex" */
	const char *summary; /* one line for --help and bench output */
	unsigned flags;      /* SELLER_CORE_* */
	/* Allocates a seller for params (already validated); 0 or -errno. */
	int (*create)(const struct seller_params *p, struct seller **out);
	void (*destroy)(struct seller *s);
	/* SELLER_OK (and *from = pool taken from) or SELLER_SOLD_OUT. */
	int (*reserve)(struct seller *s, enum seller_pool buyer, unsigned qty,
		       enum seller_pool *from);
	/* Gives qty back to pool; -EINVAL (and no change) if it would pass capacity. */
	int (*release)(struct seller *s, enum seller_pool pool, unsigned qty);
	/* Raises pool's capacity (and availability) by add > 0; 0 or -errno. */
	int (*grow)(struct seller *s, enum seller_pool pool, int64_t add);
	void (*snapshot)(struct seller *s, struct seller_snapshot *out);
};

/* Every core's seller struct starts with this header. */
struct seller {
	const struct seller_core *core;
	unsigned max_quantity;
	/* Per buyer tier: the smallest qty a reserve refused (SELLER_SOLD_OUT)
	 * since tickets last came back (release, grow); 0 = none. Written by
	 * the seller_* wrappers, rarely (once per sold-out spell), read by
	 * seller_sold_out_hint. */
	_Atomic unsigned refused[SELLER_NPOOLS];
};

/* Registry. seller_core_find returns NULL for an unknown name and for an
 * unsafe core (SELLER_CORE_UNSAFE): the daemon can never pick one by name.
 * seller_core_find_unsafe also returns unsafe cores; only demonstrations
 * (the naive-core test, the benchmark) call it. seller_core_count and
 * seller_core_at walk every core; check flags before using one. */
const struct seller_core *seller_core_find(const char *name);
const struct seller_core *seller_core_find_unsafe(const char *name);
size_t seller_core_count(void);
const struct seller_core *seller_core_at(size_t i);
/* Writes the safe cores' names, comma-separated, into buf; returns buf. */
char *seller_core_names(char *buf, size_t len);

/* Checks params; returns 0 or -EINVAL with a reason in *why (static text). */
int seller_params_check(const struct seller_params *p, const char **why);

/* Creates a seller with core; 0 or -errno (-EINVAL for bad params). */
int seller_create(const struct seller_core *core, const struct seller_params *p,
		  struct seller **out);
void seller_destroy(struct seller *s);
/* SELLER_OK, SELLER_SOLD_OUT, or -EINVAL for a bad qty or pool. */
int seller_reserve(struct seller *s, enum seller_pool buyer, unsigned qty,
		   enum seller_pool *from);
/* 0, or -EINVAL for a bad pool, qty outside 1..SELLER_MAX_QUANTITY, or a
 * release past capacity. (Not max_quantity: a reload may lower that below
 * the size of an order sold earlier and refunded now.) */
int seller_release(struct seller *s, enum seller_pool pool, unsigned qty);
/* 0, or -EINVAL for add <= 0 or an overflow. */
int seller_grow(struct seller *s, enum seller_pool pool, int64_t add);
void seller_snapshot(struct seller *s, struct seller_snapshot *out);
/* 1 if a reserve by buyer of at most qty tickets was refused since tickets
 * last came back to s, so a reserve of qty would most likely be refused
 * too; else 0. Lock-free (one relaxed load) and possibly stale either way:
 * it picks whom to try first, and only seller_reserve decides. */
int seller_sold_out_hint(struct seller *s, enum seller_pool buyer, unsigned qty);
/* Forgets the refusals behind the hint, as a release does: for a caller
 * whose reserve the hint said would fail succeeded (the hint was stale). */
void seller_forget_hint(struct seller *s);
static inline const char *seller_name(const struct seller *s) { return s->core->name; }

/* A small dense index for the calling thread (0, 1, 2, ...), assigned on its
 * first call and stable for the thread's life. Cores use it for home shards
 * and combining slots; it never touches a shared cache line after the first call. */
unsigned seller_thread_index(void);

/* Pool names for messages and JSON: "general", "vip". */
const char *seller_pool_name(enum seller_pool p);

#endif /* TICKETD_SELLER_H */
