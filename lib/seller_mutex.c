/*
 * seller_mutex.c: the "mutex (short critical section)" core. One pthread
 * mutex guards both pools' counters; the critical section is a compare and
 * a subtraction, nothing else.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "seller.h"

struct mutex_seller {
	struct seller base;
	pthread_mutex_t lock;              /* guards capacity[] and available[] */
	int64_t capacity[SELLER_NPOOLS];
	int64_t available[SELLER_NPOOLS];
};

/* Initialises lock as an adaptive mutex where glibc has one: a contended
 * lock() spins briefly before sleeping, which suits a critical section of a
 * few instructions. Returns 0 or an errno value. */
static int mutex_init(pthread_mutex_t *lock)
{
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
	pthread_mutexattr_t attr;
	int rc = pthread_mutexattr_init(&attr);

	if (rc)
		return rc;
	rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
	if (!rc)
		rc = pthread_mutex_init(lock, &attr);
	pthread_mutexattr_destroy(&attr);
	return rc;
#else
	return pthread_mutex_init(lock, NULL);
#endif
}

static int mutex_create(const struct seller_params *p, struct seller **out)
{
	struct mutex_seller *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return -ENOMEM;
	rc = mutex_init(&m->lock);
	if (rc) {
		free(m);
		return -rc;
	}
	for (int i = 0; i < SELLER_NPOOLS; i++) {
		m->capacity[i] = p->capacity[i];
		m->available[i] = p->capacity[i] - p->sold[i];
	}
	*out = &m->base;
	return 0;
}

static void mutex_destroy(struct seller *s)
{
	struct mutex_seller *m = (struct mutex_seller *)s;

	pthread_mutex_destroy(&m->lock);
	free(m);
}

static int mutex_reserve(struct seller *s, enum seller_pool buyer, unsigned qty,
			 enum seller_pool *from)
{
	struct mutex_seller *m = (struct mutex_seller *)s;
	int rc = SELLER_SOLD_OUT;

	pthread_mutex_lock(&m->lock);
	if (buyer == SELLER_VIP && m->available[SELLER_VIP] >= qty) {
		m->available[SELLER_VIP] -= qty;
		*from = SELLER_VIP;
		rc = SELLER_OK;
	} else if (m->available[SELLER_GENERAL] >= qty) {
		m->available[SELLER_GENERAL] -= qty;
		*from = SELLER_GENERAL;
		rc = SELLER_OK;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int mutex_release(struct seller *s, enum seller_pool pool, unsigned qty)
{
	struct mutex_seller *m = (struct mutex_seller *)s;
	int rc = -EINVAL;

	pthread_mutex_lock(&m->lock);
	if (m->available[pool] + qty <= m->capacity[pool]) {
		m->available[pool] += qty;
		rc = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int mutex_grow(struct seller *s, enum seller_pool pool, int64_t add)
{
	struct mutex_seller *m = (struct mutex_seller *)s;
	int rc = -EINVAL;

	pthread_mutex_lock(&m->lock);
	if (m->capacity[pool] <= INT64_MAX / 4 - add) {
		m->capacity[pool] += add;
		m->available[pool] += add;
		rc = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static void mutex_snapshot(struct seller *s, struct seller_snapshot *out)
{
	struct mutex_seller *m = (struct mutex_seller *)s;

	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < SELLER_NPOOLS; i++) {
		out->capacity[i] = m->capacity[i];
		out->available[i] = m->available[i];
	}
	pthread_mutex_unlock(&m->lock);
	for (int i = 0; i < SELLER_NPOOLS; i++)
		out->sold[i] = out->capacity[i] - out->available[i];
}

const struct seller_core seller_core_mutex = {
	.name = "mutex",
	.summary = "one pthread mutex around a short critical section",
	.create = mutex_create,
	.destroy = mutex_destroy,
	.reserve = mutex_reserve,
	.release = mutex_release,
	.grow = mutex_grow,
	.snapshot = mutex_snapshot,
};
