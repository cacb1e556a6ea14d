/*
 * test_seller_conform.c: the rules of lib/seller.h, checked single-threaded
 * against every safe core in the registry (the sharded one at several shard
 * counts): exact counts, all-or-nothing, release and its capacity limit,
 * grow, sold-out behaviour and its hint, argument and params validation, the VIP rules,
 * and the registry's refusal to hand out the unsafe core by name.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "seller.h"
#include "tap.h"

static const struct seller_core *core;
static unsigned nshards;

/* Creates a seller of the core under test; NULL (and a failed point) on error. */
static struct seller *mk(int64_t general, int64_t vip, unsigned maxq)
{
	struct seller_params p = {
		.capacity = { general, vip },
		.max_quantity = maxq,
		.shards = nshards,
	};
	struct seller *s = NULL;
	int rc = seller_create(core, &p, &s);

	if (rc < 0) {
		ok(0, "%s: create failed: %d", core->name, rc);
		return NULL;
	}
	return s;
}

/* Available tickets in pool right now. */
static int64_t avail(struct seller *s, enum seller_pool pool)
{
	struct seller_snapshot snap;

	seller_snapshot(s, &snap);
	return snap.available[pool];
}

/* Reserves qty for buyer; returns rc and stores the pool in *from (or -1). */
static int buy(struct seller *s, enum seller_pool buyer, unsigned qty, int *from)
{
	enum seller_pool f = SELLER_GENERAL;
	int rc = seller_reserve(s, buyer, qty, &f);

	if (from)
		*from = rc == SELLER_OK ? (int)f : -1;
	return rc;
}

static void test_counts(void)
{
	const char *n = core->name;
	struct seller_params p = { .capacity = { 1000, 0 }, .sold = { 300, 0 },
				   .max_quantity = 4, .shards = nshards };
	struct seller_snapshot snap;
	struct seller *s = mk(100, 0, 10);
	int count = 0, rc;

	if (!s)
		return;
	while (buy(s, SELLER_GENERAL, 1, NULL) == SELLER_OK && count <= 100)
		count++;
	ok(count == 100, "%s: qty 1 sells exactly the capacity (%d of 100)", n, count);
	seller_snapshot(s, &snap);
	ok(snap.capacity[0] == 100 && snap.available[0] == 0 && snap.sold[0] == 100,
	   "%s: snapshot after sell-out: cap %lld avail %lld sold %lld", n,
	   (long long)snap.capacity[0], (long long)snap.available[0], (long long)snap.sold[0]);
	ok(buy(s, SELLER_GENERAL, 1, NULL) == SELLER_SOLD_OUT, "%s: sold out stays sold out", n);
	ok(seller_release(s, SELLER_GENERAL, 2) == 0 &&
	   buy(s, SELLER_GENERAL, 2, NULL) == SELLER_OK &&
	   buy(s, SELLER_GENERAL, 1, NULL) == SELLER_SOLD_OUT,
	   "%s: released tickets are sold again, exactly", n);
	seller_destroy(s);

	s = NULL;
	rc = seller_create(core, &p, &s);
	ok(rc == 0, "%s: create with sold from the ledger", n);
	if (rc == 0) {
		seller_snapshot(s, &snap);
		ok(snap.available[0] == 700 && snap.sold[0] == 300,
		   "%s: sold 300 of 1000 leaves 700", n);
		count = 0;
		while (buy(s, SELLER_GENERAL, 4, NULL) == SELLER_OK)
			count++;
		ok(count == 175 && avail(s, SELLER_GENERAL) == 0,
		   "%s: qty 4 sells 175 orders out of 700", n);
		seller_destroy(s);
	}

	s = mk(0, 0, 1);
	if (s) {
		ok(buy(s, SELLER_GENERAL, 1, NULL) == SELLER_SOLD_OUT &&
		   buy(s, SELLER_VIP, 1, NULL) == SELLER_SOLD_OUT,
		   "%s: capacity 0 sells nothing", n);
		seller_destroy(s);
	}
}

static void test_all_or_nothing(void)
{
	const char *n = core->name;
	struct seller *s = mk(5, 0, 10);
	int count = 0;

	if (!s)
		return;
	ok(buy(s, SELLER_GENERAL, 3, NULL) == SELLER_OK, "%s: 3 of 5", n);
	ok(buy(s, SELLER_GENERAL, 3, NULL) == SELLER_SOLD_OUT && avail(s, SELLER_GENERAL) == 2,
	   "%s: 3 more refused whole, 2 left untouched", n);
	ok(buy(s, SELLER_GENERAL, 2, NULL) == SELLER_OK && avail(s, SELLER_GENERAL) == 0,
	   "%s: the last 2 sell", n);
	seller_destroy(s);

	/* Larger than any one shard holds (16 over 8 shards is 2 each). */
	s = mk(16, 0, 16);
	if (!s)
		return;
	ok(buy(s, SELLER_GENERAL, 10, NULL) == SELLER_OK, "%s: 10 of 16 at once", n);
	ok(buy(s, SELLER_GENERAL, 7, NULL) == SELLER_SOLD_OUT && avail(s, SELLER_GENERAL) == 6,
	   "%s: 7 of 6 refused, nothing taken", n);
	ok(buy(s, SELLER_GENERAL, 6, NULL) == SELLER_OK && avail(s, SELLER_GENERAL) == 0,
	   "%s: the last 6 at once", n);
	seller_destroy(s);

	/* One ticket per shard: one thread still finds every one of them. */
	s = mk(8, 0, 1);
	if (!s)
		return;
	while (buy(s, SELLER_GENERAL, 1, NULL) == SELLER_OK && count <= 8)
		count++;
	ok(count == 8, "%s: all 8 scattered tickets found by one buyer (%d)", n, count);
	seller_destroy(s);
}

static void test_arguments(void)
{
	const char *n = core->name;
	struct seller *s = mk(10, 10, 4);

	if (!s)
		return;
	ok(buy(s, SELLER_GENERAL, 0, NULL) == -EINVAL, "%s: qty 0 refused", n);
	ok(buy(s, SELLER_GENERAL, 5, NULL) == -EINVAL, "%s: qty above max_quantity refused", n);
	ok(buy(s, (enum seller_pool)2, 1, NULL) == -EINVAL, "%s: unknown pool refused", n);
	ok(seller_release(s, (enum seller_pool)7, 1) == -EINVAL &&
	   seller_grow(s, (enum seller_pool)-1, 1) == -EINVAL, "%s: bad pool in release/grow", n);
	ok(avail(s, SELLER_GENERAL) == 10 && avail(s, SELLER_VIP) == 10,
	   "%s: refused calls changed nothing", n);
	seller_destroy(s);
}

static void test_release(void)
{
	const char *n = core->name;
	struct seller *s = mk(10, 3, 10);

	if (!s)
		return;
	ok(buy(s, SELLER_GENERAL, 4, NULL) == SELLER_OK && avail(s, SELLER_GENERAL) == 6,
	   "%s: 4 sold", n);
	ok(seller_release(s, SELLER_GENERAL, 3) == 0 && avail(s, SELLER_GENERAL) == 9,
	   "%s: 3 released", n);
	ok(seller_release(s, SELLER_GENERAL, 2) == -EINVAL && avail(s, SELLER_GENERAL) == 9,
	   "%s: release past capacity refused, nothing changed", n);
	ok(seller_release(s, SELLER_GENERAL, 1) == 0 && avail(s, SELLER_GENERAL) == 10,
	   "%s: release up to capacity", n);
	ok(seller_release(s, SELLER_GENERAL, 1) == -EINVAL, "%s: full pool takes nothing back", n);
	ok(seller_release(s, SELLER_GENERAL, 0) == -EINVAL &&
	   seller_release(s, SELLER_GENERAL, SELLER_MAX_QUANTITY + 1) == -EINVAL,
	   "%s: release qty outside 1..%u refused", n, SELLER_MAX_QUANTITY);
	ok(seller_release(s, SELLER_VIP, 1) == -EINVAL && avail(s, SELLER_VIP) == 3,
	   "%s: VIP release past capacity refused", n);
	ok(buy(s, SELLER_VIP, 3, NULL) == SELLER_OK && seller_release(s, SELLER_VIP, 3) == 0 &&
	   avail(s, SELLER_VIP) == 3, "%s: VIP sold and released", n);
	seller_destroy(s);

	/* A refund may be bigger than today's max_quantity. */
	s = mk(20, 0, 10);
	if (!s)
		return;
	ok(buy(s, SELLER_GENERAL, 10, NULL) == SELLER_OK && buy(s, SELLER_GENERAL, 10, NULL) == SELLER_OK &&
	   seller_release(s, SELLER_GENERAL, 15) == 0 && avail(s, SELLER_GENERAL) == 15,
	   "%s: release above max_quantity (15 > 10) accepted", n);
	seller_destroy(s);
}

static void test_grow(void)
{
	const char *n = core->name;
	struct seller_snapshot snap;
	struct seller *s = mk(5, 0, 5);
	int count = 0;

	if (!s)
		return;
	ok(buy(s, SELLER_GENERAL, 5, NULL) == SELLER_OK, "%s: sold out 5", n);
	ok(seller_grow(s, SELLER_GENERAL, 7) == 0, "%s: grow by 7", n);
	seller_snapshot(s, &snap);
	ok(snap.capacity[0] == 12 && snap.available[0] == 7 && snap.sold[0] == 5,
	   "%s: grown to 12, 7 available, 5 sold", n);
	while (buy(s, SELLER_GENERAL, 1, NULL) == SELLER_OK && count <= 7)
		count++;
	ok(count == 7, "%s: exactly the 7 new tickets sell (%d)", n, count);
	ok(seller_release(s, SELLER_GENERAL, 5) == 0 && seller_release(s, SELLER_GENERAL, 5) == 0 &&
	   seller_release(s, SELLER_GENERAL, 3) == -EINVAL,
	   "%s: release limit follows the new capacity", n);
	ok(seller_grow(s, SELLER_GENERAL, 0) == -EINVAL && seller_grow(s, SELLER_GENERAL, -3) == -EINVAL,
	   "%s: grow by <= 0 refused", n);
	ok(seller_grow(s, SELLER_GENERAL, INT64_MAX / 4) == -EINVAL,
	   "%s: grow past 2^61 refused", n);
	seller_snapshot(s, &snap);
	ok(snap.capacity[0] == 12, "%s: refused grows changed nothing", n);
	ok(seller_grow(s, SELLER_VIP, 2) == 0 && buy(s, SELLER_VIP, 2, NULL) == SELLER_OK &&
	   avail(s, SELLER_VIP) == 0, "%s: VIP pool grown from 0 and sold", n);
	seller_destroy(s);
}

/* The sold-out hint: set by a refused reserve (the smallest refused qty),
 * never by a successful one, cleared by a release or a grow. */
static void test_sold_out_hint(void)
{
	const char *n = core->name;
	struct seller *s = mk(4, 2, 5);

	if (!s)
		return;
	ok(!seller_sold_out_hint(s, SELLER_GENERAL, 1) && !seller_sold_out_hint(s, SELLER_VIP, 5),
	   "%s: no hint on a new seller", n);
	ok(buy(s, SELLER_GENERAL, 3, NULL) == SELLER_OK && !seller_sold_out_hint(s, SELLER_GENERAL, 3),
	   "%s: a successful reserve sets no hint", n);
	ok(buy(s, SELLER_GENERAL, 4, NULL) == SELLER_SOLD_OUT &&
	   seller_sold_out_hint(s, SELLER_GENERAL, 4) && seller_sold_out_hint(s, SELLER_GENERAL, 5) &&
	   !seller_sold_out_hint(s, SELLER_GENERAL, 3) && !seller_sold_out_hint(s, SELLER_VIP, 4),
	   "%s: refused 4: the hint covers 4 and more, of that tier only", n);
	ok(buy(s, SELLER_GENERAL, 2, NULL) == SELLER_SOLD_OUT &&
	   seller_sold_out_hint(s, SELLER_GENERAL, 2) && !seller_sold_out_hint(s, SELLER_GENERAL, 1),
	   "%s: refused 2: the hint drops to 2", n);
	ok(buy(s, SELLER_GENERAL, 5, NULL) == SELLER_SOLD_OUT && seller_sold_out_hint(s, SELLER_GENERAL, 2),
	   "%s: a larger refusal leaves it at 2", n);
	ok(buy(s, SELLER_VIP, 3, NULL) == SELLER_SOLD_OUT && seller_sold_out_hint(s, SELLER_VIP, 3),
	   "%s: a refused VIP buyer sets the VIP tier's hint", n);
	ok(seller_release(s, SELLER_GENERAL, 1) == 0 && !seller_sold_out_hint(s, SELLER_GENERAL, 5) &&
	   !seller_sold_out_hint(s, SELLER_VIP, 5), "%s: a release clears both tiers' hints", n);
	ok(buy(s, SELLER_GENERAL, 3, NULL) == SELLER_SOLD_OUT && seller_sold_out_hint(s, SELLER_GENERAL, 3) &&
	   seller_grow(s, SELLER_VIP, 1) == 0 && !seller_sold_out_hint(s, SELLER_GENERAL, 3),
	   "%s: a grow clears it too", n);
	ok(buy(s, SELLER_GENERAL, 3, NULL) == SELLER_SOLD_OUT &&
	   seller_release(s, SELLER_GENERAL, 3) == -EINVAL && seller_sold_out_hint(s, SELLER_GENERAL, 3),
	   "%s: a refused release (past capacity) leaves the hint", n);
	seller_destroy(s);
}

static void test_vip(void)
{
	const char *n = core->name;
	struct seller *s = mk(10, 5, 10);
	int from;

	if (!s)
		return;
	ok(buy(s, SELLER_VIP, 3, &from) == SELLER_OK && from == SELLER_VIP,
	   "%s: VIP buyer takes from VIP", n);
	ok(buy(s, SELLER_VIP, 3, &from) == SELLER_OK && from == SELLER_GENERAL &&
	   avail(s, SELLER_VIP) == 2 && avail(s, SELLER_GENERAL) == 7,
	   "%s: VIP short of 3 (2 left): all 3 from general, VIP untouched", n);
	ok(buy(s, SELLER_VIP, 2, &from) == SELLER_OK && from == SELLER_VIP,
	   "%s: VIP buyer takes the last 2 VIP", n);
	ok(buy(s, SELLER_VIP, 1, &from) == SELLER_OK && from == SELLER_GENERAL,
	   "%s: VIP empty: falls back to general", n);
	ok(buy(s, SELLER_VIP, 7, NULL) == SELLER_SOLD_OUT && avail(s, SELLER_GENERAL) == 6,
	   "%s: VIP buyer refused when neither pool covers qty", n);
	seller_destroy(s);

	s = mk(0, 10, 10);
	if (!s)
		return;
	ok(buy(s, SELLER_GENERAL, 1, NULL) == SELLER_SOLD_OUT && avail(s, SELLER_VIP) == 10,
	   "%s: general buyer never takes VIP tickets", n);
	ok(buy(s, SELLER_VIP, 10, &from) == SELLER_OK && from == SELLER_VIP,
	   "%s: VIP buyer takes all 10 VIP", n);
	seller_destroy(s);
}

static void test_params(void)
{
	const char *n = core->name;
	struct seller_params good = { .capacity = { 10, 0 }, .max_quantity = 1 };
	struct seller_params bad[] = {
		{ .capacity = { -1, 0 }, .max_quantity = 1 },
		{ .capacity = { 10, -1 }, .max_quantity = 1 },
		{ .capacity = { INT64_MAX / 4 + 1, 0 }, .max_quantity = 1 },
		{ .capacity = { 10, 0 }, .sold = { 11, 0 }, .max_quantity = 1 },
		{ .capacity = { 10, 0 }, .sold = { -1, 0 }, .max_quantity = 1 },
		{ .capacity = { 10, 0 }, .max_quantity = 0 },
		{ .capacity = { 10, 0 }, .max_quantity = SELLER_MAX_QUANTITY + 1 },
		{ .capacity = { 10, 0 }, .max_quantity = 1, .shards = 1025 },
	};
	struct seller *s = NULL;
	int refused = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;

		s = NULL;
		if (seller_params_check(&bad[i], &why) == -EINVAL && why &&
		    seller_create(core, &bad[i], &s) == -EINVAL && !s)
			refused++;
		else
			diag("%s: bad params #%zu accepted", n, i);
	}
	ok(refused == (int)(sizeof(bad) / sizeof(bad[0])),
	   "%s: every bad params set refused with a reason (%d)", n, refused);
	ok(seller_create(core, &good, &s) == 0 && s, "%s: good params accepted", n);
	seller_destroy(s);
}

static void test_registry(void)
{
	char names[256];
	size_t unsafe = 0;

	ok(seller_core_count() >= 6, "registry holds %zu cores", seller_core_count());
	for (size_t i = 0; i < seller_core_count(); i++) {
		const struct seller_core *c = seller_core_at(i);

		ok(c->name && c->summary && c->create && c->destroy && c->reserve &&
		   c->release && c->grow && c->snapshot, "core %s is complete", c->name);
		if (c->flags & SELLER_CORE_UNSAFE) {
			unsafe++;
			ok(seller_core_find(c->name) == NULL && seller_core_find_unsafe(c->name) == c,
			   "unsafe core %s: find refuses it, find_unsafe returns it", c->name);
		} else {
			ok(seller_core_find(c->name) == c, "safe core %s found by name", c->name);
		}
	}
	ok(seller_core_at(seller_core_count()) == NULL, "seller_core_at past the end is NULL");
	ok(unsafe == 1 && seller_core_find_unsafe("naive"), "naive is the one unsafe core");
	ok(seller_core_find("no-such-core") == NULL && seller_core_find_unsafe("no-such-core") == NULL,
	   "unknown names are NULL");
	seller_core_names(names, sizeof(names));
	ok(strstr(names, "mutex") && strstr(names, "sharded") && strstr(names, "priority") &&
	   !strstr(names, "naive"), "safe names: %s", names);
}

int main(void)
{
	static const unsigned shard_counts[] = { 0, 1, 3, 8, 64 };

	test_registry();
	for (size_t i = 0; i < seller_core_count(); i++) {
		core = seller_core_at(i);
		if (core->flags & SELLER_CORE_UNSAFE)
			continue;
		for (size_t k = 0; k < sizeof(shard_counts) / sizeof(shard_counts[0]); k++) {
			nshards = shard_counts[k];
			if (nshards && strcmp(core->name, "sharded") != 0)
				break;
			if (nshards)
				diag("sharded with %u shards", nshards);
			test_counts();
			test_all_or_nothing();
			test_arguments();
			test_release();
			test_grow();
			test_sold_out_hint();
			test_vip();
			test_params();
		}
	}
	return tap_done();
}
