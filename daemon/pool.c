/*
 * pool.c: worker threads over one mutex-guarded, two-lane task list. The
 * lock covers only list surgery and counters; tasks run outside it. A worker
 * takes a small batch per lock round so a busy queue costs one lock per few
 * tasks, and a submitter signals only when some worker is asleep.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pool.h"

#define POOL_MAX_BATCH 16u

struct pool {
	pthread_mutex_t lock;       /* guards head, tail, count, idle, stopping */
	pthread_cond_t wake;        /* a task arrived, or stopping was set */
	struct pool_task *head[2];  /* per lane, oldest first */
	struct pool_task *tail[2];
	unsigned count;             /* queued tasks, both lanes, <= depth */
	unsigned idle;              /* workers waiting on wake */
	int stopping;
	atomic_uint queued;         /* copy of count for lock-free readers */
	unsigned depth;
	struct pool_ops ops;
	void *arg;
	pthread_t *threads;
	unsigned nthreads;          /* started */
	unsigned workers;           /* asked for */
};

/* Unlinks up to max tasks, priority lane first, into a list; lock held.
 * Returns the list head. */
static struct pool_task *take(struct pool *p, unsigned max)
{
	struct pool_task *first = NULL, **link = &first;
	unsigned n = 0;

	for (int lane = POOL_PRIORITY; lane >= POOL_NORMAL && n < max; lane--) {
		while (p->head[lane] && n < max) {
			struct pool_task *t = p->head[lane];

			p->head[lane] = t->next;
			if (!p->head[lane])
				p->tail[lane] = NULL;
			t->next = NULL;
			*link = t;
			link = &t->next;
			n++;
		}
	}
	p->count -= n;
	atomic_store_explicit(&p->queued, p->count, memory_order_relaxed);
	return first;
}

static void *worker_main(void *arg)
{
	struct pool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct pool_task *batch;
		unsigned share;

		while (p->count == 0 && !p->stopping) {
			p->idle++;
			pthread_cond_wait(&p->wake, &p->lock);
			p->idle--;
		}
		if (p->count == 0)
			break; /* stopping and nothing left */
		/* A fair share of what is queued, so idle workers get some too. */
		share = (p->count + p->workers - 1) / p->workers;
		batch = take(p, share < POOL_MAX_BATCH ? share : POOL_MAX_BATCH);
		pthread_mutex_unlock(&p->lock);
		if (p->ops.batch_begin)
			p->ops.batch_begin(p->arg);
		while (batch) {
			struct pool_task *t = batch;

			batch = t->next;
			p->ops.run(t, p->arg);
		}
		if (p->ops.batch_end)
			p->ops.batch_end(p->arg);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int pool_create(unsigned workers, unsigned depth, const struct pool_ops *ops,
		void *arg, struct pool **out)
{
	struct pool *p;
	int rc;

	if (workers < 1 || depth < 1 || !ops->run)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->threads = calloc(workers, sizeof(*p->threads));
	if (!p->threads) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	p->depth = depth;
	p->ops = *ops;
	p->arg = arg;
	p->workers = workers;
	for (unsigned i = 0; i < workers; i++) {
		rc = pthread_create(&p->threads[i], NULL, worker_main, p);
		if (rc) {
			log_err("pool: cannot start worker %u: %s", i, strerror(rc));
			pool_stop(p);
			pool_destroy(p);
			return -rc;
		}
		p->nthreads++;
	}
	*out = p;
	return 0;
}

int pool_submit(struct pool *p, struct pool_task *t, enum pool_lane lane)
{
	int rc = 0;

	t->next = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		rc = -ESHUTDOWN;
	} else if (p->count >= p->depth) {
		rc = -EAGAIN;
	} else {
		if (p->tail[lane])
			p->tail[lane]->next = t;
		else
			p->head[lane] = t;
		p->tail[lane] = t;
		p->count++;
		atomic_store_explicit(&p->queued, p->count, memory_order_relaxed);
		if (p->idle)
			pthread_cond_signal(&p->wake);
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int pool_submit_list(struct pool *p, struct pool_task **list, enum pool_lane lane)
{
	int n = 0;

	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		pthread_mutex_unlock(&p->lock);
		return -ESHUTDOWN;
	}
	while (*list && p->count < p->depth) {
		struct pool_task *t = *list;

		*list = t->next;
		t->next = NULL;
		if (p->tail[lane])
			p->tail[lane]->next = t;
		else
			p->head[lane] = t;
		p->tail[lane] = t;
		p->count++;
		n++;
	}
	atomic_store_explicit(&p->queued, p->count, memory_order_relaxed);
	/* Wake as many sleepers as there is new work for, no more. */
	if (p->idle && n >= (int)p->idle)
		pthread_cond_broadcast(&p->wake);
	else
		for (int i = 0; i < n && i < (int)p->idle; i++)
			pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	return n;
}

void pool_stop(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	p->nthreads = 0;
}

void pool_destroy(struct pool *p)
{
	if (!p)
		return;
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}

unsigned pool_queued(struct pool *p)
{
	return atomic_load_explicit(&p->queued, memory_order_relaxed);
}
