/*
 * test_seller_naive.c: the naive core really oversells, so the benchmark's
 * "oversold" column and the Go ticket-seller article's warning are honest.
 * Threads race to buy a small stock one ticket at a time until each is told
 * SOLD_OUT; the tickets handed out are counted by the buyers themselves. The
 * test passes once a round hands out more tickets than exist. It also checks
 * that the registry will not give the naive core to anyone who asks by name.
 * (Not a stress test: naive is deliberately racy, so it has no TSan run.)
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "seller.h"
#include "tap.h"

#define THREADS 8
#define STOCK 2000
#define MAX_ROUNDS 2000

struct race {
	struct seller *s;
	pthread_barrier_t go;
	atomic_long granted;
};

static void *racer(void *arg)
{
	struct race *r = arg;
	long mine = 0;

	pthread_barrier_wait(&r->go);
	while (seller_reserve(r->s, SELLER_GENERAL, 1, NULL) == SELLER_OK)
		mine++;
	atomic_fetch_add(&r->granted, mine);
	return NULL;
}

int main(void)
{
	const struct seller_core *naive = seller_core_find_unsafe("naive");
	struct seller_params p = { .capacity = { STOCK, 0 }, .max_quantity = 1 };
	long worst = 0;
	int rounds = 0;
	time_t deadline = time(NULL) + 60;

	ok(seller_core_find("naive") == NULL, "seller_core_find refuses the naive core");
	if (!ok(naive && (naive->flags & SELLER_CORE_UNSAFE), "naive is reachable only as unsafe"))
		return tap_done();
	while (worst == 0 && rounds < MAX_ROUNDS && time(NULL) < deadline) {
		struct race r = { 0 };
		pthread_t t[THREADS];

		if (seller_create(naive, &p, &r.s) != 0)
			break;
		pthread_barrier_init(&r.go, NULL, THREADS);
		for (int i = 0; i < THREADS; i++)
			pthread_create(&t[i], NULL, racer, &r);
		for (int i = 0; i < THREADS; i++)
			pthread_join(t[i], NULL);
		if (atomic_load(&r.granted) - STOCK > worst)
			worst = atomic_load(&r.granted) - STOCK;
		pthread_barrier_destroy(&r.go);
		seller_destroy(r.s);
		rounds++;
	}
	ok(worst > 0, "naive oversold: %ld tickets beyond %d handed out (round %d, %d threads)",
	   worst, STOCK, rounds, THREADS);
	return tap_done();
}
