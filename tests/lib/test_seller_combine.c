/*
 * test_seller_combine.c: the flat-combining cores (batched, priority) under
 * controlled waiting. The test holds the combiner lock (seller_fc_hold), lets
 * buyer threads publish their requests and wait, then serves them all in one
 * pass (seller_fc_unhold), and checks:
 *   - batched: one pass answers every waiting caller with its own exact result;
 *   - priority: VIP requests waiting with general ones get the last tickets,
 *     even when the general ones arrived first;
 *   - priority: general buyers progress while VIP demand goes on, and after it stops;
 *   - waiters sleep instead of spinning (process CPU time while they wait).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "seller.h"
#include "seller_fc.h"
#include "tap.h"

#define MAX_BUYERS 16

struct buyer {
	pthread_t tid;
	struct seller *s;
	enum seller_pool pool;
	unsigned qty;
	int rc;
	enum seller_pool from;
};

static void *buyer_main(void *arg)
{
	struct buyer *b = arg;

	b->rc = seller_reserve(b->s, b->pool, b->qty, &b->from);
	return NULL;
}

static void start(struct buyer *b, struct seller *s, enum seller_pool pool, unsigned qty)
{
	b->s = s;
	b->pool = pool;
	b->qty = qty;
	b->rc = -1;
	if (pthread_create(&b->tid, NULL, buyer_main, b) != 0)
		abort();
}

/* Waits (up to 20 s) until vip and general requests are published; 1 if so. */
static int await_waiting(struct seller *s, unsigned vip, unsigned general)
{
	unsigned v = 0, g = 0;

	for (int i = 0; i < 20000; i++) {
		seller_fc_waiting(s, &v, &g);
		if (v == vip && g == general)
			return 1;
		usleep(1000);
	}
	diag("waiting: %u VIP, %u general (wanted %u, %u)", v, g, vip, general);
	return 0;
}

static struct seller *mk(const char *core, int64_t general, int64_t vip, unsigned maxq)
{
	struct seller_params p = { .capacity = { general, vip }, .max_quantity = maxq };
	struct seller *s = NULL;

	if (seller_create(seller_core_find(core), &p, &s) != 0)
		abort();
	return s;
}

static double cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 6 general buyers wait first, then 4 VIP buyers; 4 tickets, no VIP pool. */
static void test_vip_first(const char *core, int want_vip_first)
{
	struct seller *s = mk(core, 4, 0, 1);
	struct buyer b[10];
	unsigned vip_ok = 0, gen_ok = 0, vip_from_gen = 0;
	struct seller_snapshot snap;

	ok(seller_fc_hold(s) == 0, "%s: combiner held", core);
	for (int i = 0; i < 6; i++)
		start(&b[i], s, SELLER_GENERAL, 1);
	ok(await_waiting(s, 0, 6), "%s: 6 general requests wait", core);
	for (int i = 6; i < 10; i++)
		start(&b[i], s, SELLER_VIP, 1);
	ok(await_waiting(s, 4, 6), "%s: then 4 VIP requests wait with them", core);
	seller_fc_unhold(s);
	for (int i = 0; i < 10; i++) {
		pthread_join(b[i].tid, NULL);
		if (b[i].rc == SELLER_OK && b[i].pool == SELLER_VIP) {
			vip_ok++;
			vip_from_gen += b[i].from == SELLER_GENERAL;
		} else if (b[i].rc == SELLER_OK) {
			gen_ok++;
		}
	}
	seller_snapshot(s, &snap);
	ok(vip_ok + gen_ok == 4 && snap.sold[SELLER_GENERAL] == 4,
	   "%s: one pass answered all 10: exactly 4 served, 4 sold", core);
	if (want_vip_first)
		ok(vip_ok == 4 && vip_from_gen == 4 && gen_ok == 0,
		   "%s: the 4 VIPs got the last 4 tickets (from general), general 0", core);
	else
		ok(gen_ok == 4 && vip_ok == 0,
		   "%s: served in slot order: the 4 first general buyers got them", core);
	seller_destroy(s);
}

/* Mixed quantities waiting together: every caller gets its own exact answer. */
static void test_exact_answers(const char *core)
{
	static const unsigned qty[] = { 3, 5, 2, 4, 1, 3, 2, 6 };
	enum { N = sizeof(qty) / sizeof(qty[0]) };
	struct seller *s = mk(core, 12, 3, 6);
	struct buyer b[N];
	int64_t got[SELLER_NPOOLS] = { 0 };
	unsigned refused_min = UINT32_MAX;
	struct seller_snapshot snap;

	seller_fc_hold(s);
	for (int i = 0; i < N; i++)
		start(&b[i], s, i % 3 == 0 ? SELLER_VIP : SELLER_GENERAL, qty[i]);
	ok(await_waiting(s, 3, N - 3), "%s: %d mixed requests wait", core, N);
	seller_fc_unhold(s);
	for (int i = 0; i < N; i++) {
		pthread_join(b[i].tid, NULL);
		if (b[i].rc == SELLER_OK)
			got[b[i].from] += b[i].qty;
		else if (b[i].rc == SELLER_SOLD_OUT && b[i].qty < refused_min)
			refused_min = b[i].qty;
	}
	seller_snapshot(s, &snap);
	ok(got[0] == snap.sold[0] && got[1] == snap.sold[1] && snap.available[0] >= 0 &&
	   snap.available[1] >= 0, "%s: answers add up to the sold counts (%lld general, %lld VIP)",
	   core, (long long)got[0], (long long)got[1]);
	ok(refused_min == UINT32_MAX || (snap.available[0] < refused_min),
	   "%s: every refused qty exceeded what was left", core);
	seller_destroy(s);
}

/* While requests wait on a held combiner, the process must be nearly idle. */
static void test_no_spinning(const char *core)
{
	struct seller *s = mk(core, 100, 0, 1);
	struct buyer b[8];
	double cpu0, wall0, cpu, wall;

	seller_fc_hold(s);
	for (int i = 0; i < 8; i++)
		start(&b[i], s, SELLER_GENERAL, 1);
	await_waiting(s, 0, 8);
	usleep(50000); /* past the brief spin */
	cpu0 = cpu_seconds();
	wall0 = wall_seconds();
	usleep(300000);
	cpu = cpu_seconds() - cpu0;
	wall = wall_seconds() - wall0;
	ok(cpu < wall * 0.3, "%s: 8 waiters for %.0f ms used %.1f ms of CPU (they sleep)", core,
	   wall * 1e3, cpu * 1e3);
	seller_fc_unhold(s);
	for (int i = 0; i < 8; i++)
		pthread_join(b[i].tid, NULL);
	seller_destroy(s);
}

struct hammer {
	pthread_t tid;
	struct seller *s;
	enum seller_pool pool;
	atomic_int *stop;    /* VIP hammers: run until set */
	unsigned calls;      /* general buyers: calls to make */
	unsigned done, served;
};

/* Reserves one ticket and gives it back, over and over. */
static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	enum seller_pool from;

	while (h->stop ? !atomic_load(h->stop) : h->done < h->calls) {
		if (seller_reserve(h->s, h->pool, 1, &from) == SELLER_OK) {
			h->served++;
			seller_release(h->s, from, 1);
		}
		h->done++;
	}
	return NULL;
}

/* General buyers complete while two VIP threads keep demanding, and after.
 * Four general tickets: the two VIP hammers hold or ask for at most two and
 * the other general buyer holds at most one, so VIP-first ordering can never
 * leave a general request without a ticket: every general call must succeed.
 * (With fewer tickets, VIP first may rightly starve generals while VIPs ask.) */
static void test_general_progress(void)
{
	struct seller *s = mk("priority", 4, 0, 1);
	struct hammer vip[2], gen[2];
	atomic_int stop = 0;
	unsigned served = 0, done = 0;

	for (int i = 0; i < 2; i++) {
		vip[i] = (struct hammer){ .s = s, .pool = SELLER_VIP, .stop = &stop };
		gen[i] = (struct hammer){ .s = s, .pool = SELLER_GENERAL, .calls = 2000 };
		pthread_create(&vip[i].tid, NULL, hammer_main, &vip[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_create(&gen[i].tid, NULL, hammer_main, &gen[i]);
	for (int i = 0; i < 2; i++) {
		pthread_join(gen[i].tid, NULL);
		done += gen[i].done;
		served += gen[i].served;
	}
	ok(done == 4000 && served == 4000,
	   "priority: general buyers finished 4000 calls under VIP demand, every one served (%u)",
	   served);
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++) {
		pthread_join(vip[i].tid, NULL);
		gen[i] = (struct hammer){ .s = s, .pool = SELLER_GENERAL, .calls = 500 };
		pthread_create(&gen[i].tid, NULL, hammer_main, &gen[i]);
	}
	served = 0;
	for (int i = 0; i < 2; i++) {
		pthread_join(gen[i].tid, NULL);
		served += gen[i].served;
	}
	ok(served > 0, "priority: VIP demand stopped, general buyers served %u times", served);
	{
		struct seller_snapshot snap;

		seller_snapshot(s, &snap);
		ok(snap.available[0] == 4, "priority: every ticket given back (available %lld)",
		   (long long)snap.available[0]);
	}
	seller_destroy(s);
}

int main(void)
{
	struct seller *m = mk("mutex", 1, 0, 1);

	alarm(300);
	ok(seller_fc_hold(m) == -EINVAL, "hold refuses a non-combining core");
	seller_destroy(m);
	test_vip_first("priority", 1);
	test_vip_first("batched", 0);
	test_exact_answers("batched");
	test_exact_answers("priority");
	test_no_spinning("batched");
	test_no_spinning("priority");
	test_general_progress();
	return tap_done();
}
