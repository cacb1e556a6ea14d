/*
 * payment.c: the simulated payment provider: relaxed atomics for the
 * settings, a per-thread xorshift generator for the decline draw, nanosleep
 * for the blocking wait. Takes no lock and shares no cache line on the hot
 * path except the settings, which are read-mostly.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "payment.h"
#include "seller.h"

struct payment {
	atomic_uint latency_ms;
	atomic_int mode;
	_Atomic uint64_t threshold;
	atomic_int always;
};

int payment_create(unsigned latency_ms, double decline_rate,
		   enum conf_payment_mode mode, struct payment **out)
{
	struct payment *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	payment_configure(p, latency_ms, decline_rate, mode);
	*out = p;
	return 0;
}

void payment_destroy(struct payment *p)
{
	free(p);
}

void payment_configure(struct payment *p, unsigned latency_ms, double decline_rate,
		       enum conf_payment_mode mode)
{
	uint64_t threshold;

	if (!(decline_rate > 0.0))
		threshold = 0;
	else if (decline_rate >= 1.0)
		threshold = UINT64_MAX;
	else
		threshold = (uint64_t)ldexp(decline_rate, 64);
	atomic_store_explicit(&p->latency_ms, latency_ms, memory_order_relaxed);
	atomic_store_explicit(&p->mode, (int)mode, memory_order_relaxed);
	atomic_store_explicit(&p->threshold, threshold, memory_order_relaxed);
	atomic_store_explicit(&p->always, decline_rate >= 1.0, memory_order_relaxed);
}

void payment_plan(struct payment *p, struct payment_plan *out)
{
	out->latency_ms = atomic_load_explicit(&p->latency_ms, memory_order_relaxed);
	out->mode = (enum conf_payment_mode)atomic_load_explicit(&p->mode,
								 memory_order_relaxed);
	out->threshold = atomic_load_explicit(&p->threshold, memory_order_relaxed);
	out->always = atomic_load_explicit(&p->always, memory_order_relaxed);
}

void payment_sleep(const struct payment_plan *plan)
{
	struct timespec ts = {
		.tv_sec = plan->latency_ms / 1000,
		.tv_nsec = (long)(plan->latency_ms % 1000) * 1000000L,
	};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* xorshift64*: a fast, decent 64-bit generator; one state per thread. */
static uint64_t draw(void)
{
	static _Thread_local uint64_t state;
	uint64_t x = state;

	if (x == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
		    ((uint64_t)(seller_thread_index() + 1) * 0x9e3779b97f4a7c15ull);
		if (x == 0)
			x = 0x2545f4914f6cdd1dull;
	}
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	state = x;
	return x * 0x2545f4914f6cdd1dull;
}

int payment_declined(const struct payment_plan *plan)
{
	if (plan->always)
		return 1;
	if (plan->threshold == 0)
		return 0;
	return draw() < plan->threshold;
}
