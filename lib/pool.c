/*
 * pool.c: worker threads over one mutex-guarded, two-lane task list. The
 * lock covers only list surgery and counters; tasks run outside it. A worker
 * takes a small batch per lock round so a busy queue costs one lock per few
 * tasks, and a submitter signals only when some worker is asleep.
 *
 * Liveness, for the watchdog: every task a worker finishes, and every timed
 * wake-up of an idle worker (pool_set_tick), bumps an atomic heartbeat, so an
 * idle pool shows progress and a wedged one does not. pool_resize changes the
 * number of workers while tasks run: new threads start at once; surplus ones
 * leave when they next look at the queue and are joined later (never waited
 * for by the caller, whose thread may be the main loop).
 *
 * pool_stop ends the pool at shutdown, after the loops have stopped: with
 * ops.cancel set, what is queued, and the rest of a batch a worker already
 * took, is cancelled rather than run (a blocking payment each would hold the
 * exit for its latency, for clients whose connections are already closing).
 *
 * A pool created with 0 workers runs no thread and is never handed a task:
 * the loops reserve inline (config "workers": 0, see http.c). Its heartbeat
 * moves on every read, since nothing in it can be wedged; a resize from 0
 * starts threads, a resize to 0 is refused (queued tasks would strand).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pool.h"
#include "thread.h"

#define POOL_MAX_BATCH 16u

/* One worker thread's slot; slots never move (allocated once, POOL_MAX_WORKERS). */
struct pool_worker {
	struct pool *p;
	pthread_t thread;
	int state;                  /* WORKER_*; guarded by pool.lock */
};

enum {
	WORKER_FREE = 0,            /* no thread */
	WORKER_RUNNING,             /* a thread runs worker_main */
	WORKER_EXITED,              /* its thread returned: join it, then FREE */
};

struct pool {
	pthread_mutex_t lock;       /* guards head, tail, count, idle, stopping,
				     * running, workers, slots[].state */
	pthread_cond_t wake;        /* a task arrived, stopping was set, or the
				     * pool shrank (CLOCK_MONOTONIC) */
	struct pool_task *head[2];  /* per lane, oldest first */
	struct pool_task *tail[2];
	unsigned count;             /* queued tasks, both lanes, <= depth */
	unsigned idle;              /* workers waiting on wake */
	int stopping;
	atomic_int cancelling;      /* pool_stop began and ops.cancel is set */
	atomic_uint cancelled;      /* tasks handed to ops.cancel */
	atomic_uint queued;         /* copy of count for lock-free readers */
	atomic_ullong beat;         /* heartbeat: batches run + idle timed wakes */
	atomic_uint tick_ms;        /* idle wait bound; 0 = wait untimed */
	unsigned depth;
	struct pool_ops ops;
	void *arg;
	struct pool_worker *slots;  /* POOL_MAX_WORKERS of them */
	unsigned running;           /* threads not leaving (<= POOL_MAX_WORKERS) */
	unsigned workers;           /* asked for; surplus threads leave */
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

/* Waits on wake, at most tick_ms if a tick is set; lock held. */
static void idle_wait(struct pool *p)
{
	unsigned ms = atomic_load_explicit(&p->tick_ms, memory_order_relaxed);
	struct timespec ts;

	if (!ms) {
		pthread_cond_wait(&p->wake, &p->lock);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (pthread_cond_timedwait(&p->wake, &p->lock, &ts) == ETIMEDOUT)
		atomic_fetch_add_explicit(&p->beat, 1, memory_order_relaxed);
}

static void *worker_main(void *arg)
{
	struct pool_worker *w = arg;
	struct pool *p = w->p;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct pool_task *batch;
		unsigned share;

		while (p->count == 0 && !p->stopping && p->running <= p->workers) {
			p->idle++;
			idle_wait(p);
			p->idle--;
		}
		if (p->running > p->workers && !p->stopping)
			break; /* the pool shrank: this one leaves */
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
			if (atomic_load_explicit(&p->cancelling, memory_order_acquire)) {
				p->ops.cancel(t, p->arg);
				atomic_fetch_add_explicit(&p->cancelled, 1,
							  memory_order_relaxed);
			} else {
				p->ops.run(t, p->arg);
			}
			/* Per task: a batch of slow (blocking-payment) tasks
			 * must not look like a wedged pool. */
			atomic_fetch_add_explicit(&p->beat, 1, memory_order_relaxed);
		}
		if (p->ops.batch_end)
			p->ops.batch_end(p->arg);
		pthread_mutex_lock(&p->lock);
	}
	if (!p->stopping)
		p->running--;
	w->state = WORKER_EXITED;
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Joins the threads that have returned; lock not held. Only the thread that
 * creates, resizes and stops the pool calls it. */
static void reap(struct pool *p)
{
	for (unsigned i = 0; i < POOL_MAX_WORKERS; i++) {
		int exited;

		pthread_mutex_lock(&p->lock);
		exited = p->slots[i].state == WORKER_EXITED;
		pthread_mutex_unlock(&p->lock);
		if (exited) {
			pthread_join(p->slots[i].thread, NULL);
			p->slots[i].state = WORKER_FREE; /* only this thread makes FREE slots RUNNING */
		}
	}
}

/* Starts w's thread with every signal blocked: signals are the caller's
 * business (the daemon's main thread), also for a worker a reload starts
 * after the main thread unblocked them. Returns 0 or an errno. */
static int create_worker(struct pool_worker *w)
{
	return -thread_start(&w->thread, worker_main, w);
}

/* Starts threads until n are running; lock not held. Returns 0 or -errno
 * (the threads started so far keep running). */
static int spawn(struct pool *p, unsigned n)
{
	for (unsigned i = 0; i < POOL_MAX_WORKERS; i++) {
		struct pool_worker *w = &p->slots[i];
		int rc, more;

		pthread_mutex_lock(&p->lock);
		more = p->running < n;
		if (more && w->state == WORKER_FREE) {
			w->state = WORKER_RUNNING;
			p->running++;
		} else {
			pthread_mutex_unlock(&p->lock);
			if (!more)
				return 0;
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		rc = create_worker(w);
		if (rc) {
			pthread_mutex_lock(&p->lock);
			w->state = WORKER_FREE;
			p->running--;
			pthread_mutex_unlock(&p->lock);
			log_err("pool: cannot start a worker: %s", strerror(rc));
			return -rc;
		}
	}
	return 0;
}

int pool_create(unsigned workers, unsigned depth, const struct pool_ops *ops,
		void *arg, struct pool **out)
{
	pthread_condattr_t ca;
	struct pool *p;
	int rc;

	if (workers > POOL_MAX_WORKERS || depth < 1 || !ops->run)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->slots = calloc(POOL_MAX_WORKERS, sizeof(*p->slots));
	if (!p->slots) {
		free(p);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < POOL_MAX_WORKERS; i++)
		p->slots[i].p = p;
	pthread_mutex_init(&p->lock, NULL);
	/* Timed idle waits must not jump with the wall clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->wake, &ca);
	pthread_condattr_destroy(&ca);
	p->depth = depth;
	p->ops = *ops;
	p->arg = arg;
	p->workers = workers;
	rc = spawn(p, workers);
	if (rc) {
		pool_stop(p);
		pool_destroy(p);
		return rc;
	}
	*out = p;
	return 0;
}

int pool_resize(struct pool *p, unsigned workers)
{
	int rc = 0;

	if (workers < 1 || workers > POOL_MAX_WORKERS)
		return -EINVAL;
	reap(p);
	pthread_mutex_lock(&p->lock);
	p->workers = workers;
	if (p->running > workers)
		pthread_cond_broadcast(&p->wake); /* surplus idle workers leave now */
	pthread_mutex_unlock(&p->lock);
	rc = spawn(p, workers);
	reap(p);
	return rc;
}

unsigned pool_workers(struct pool *p)
{
	unsigned n;

	pthread_mutex_lock(&p->lock);
	n = p->running;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void pool_set_tick(struct pool *p, unsigned ms)
{
	atomic_store_explicit(&p->tick_ms, ms, memory_order_relaxed);
	pthread_mutex_lock(&p->lock);
	pthread_cond_broadcast(&p->wake); /* idle workers pick the new bound up */
	pthread_mutex_unlock(&p->lock);
}

unsigned long long pool_heartbeat(struct pool *p)
{
	unsigned running;

	pthread_mutex_lock(&p->lock);
	running = p->running;
	pthread_mutex_unlock(&p->lock);
	if (!running) /* no thread, no task: nothing that could be wedged */
		return atomic_fetch_add_explicit(&p->beat, 1, memory_order_relaxed) + 1;
	return atomic_load_explicit(&p->beat, memory_order_relaxed);
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

int pool_submit(struct pool *p, struct pool_task *t, enum pool_lane lane)
{
	struct pool_task *list = t;
	int n;

	t->next = NULL;
	n = pool_submit_list(p, &list, lane);
	return n < 0 ? n : n == 1 ? 0 : -EAGAIN;
}

unsigned pool_stop(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->ops.cancel)
		atomic_store_explicit(&p->cancelling, 1, memory_order_release);
	p->stopping = 1;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < POOL_MAX_WORKERS; i++) {
		int started;

		pthread_mutex_lock(&p->lock);
		started = p->slots[i].state != WORKER_FREE;
		pthread_mutex_unlock(&p->lock);
		if (started) {
			pthread_join(p->slots[i].thread, NULL);
			p->slots[i].state = WORKER_FREE;
		}
	}
	p->running = 0;
	return atomic_load_explicit(&p->cancelled, memory_order_relaxed);
}

void pool_destroy(struct pool *p)
{
	if (!p)
		return;
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p->slots);
	free(p);
}

unsigned pool_queued(struct pool *p)
{
	return atomic_load_explicit(&p->queued, memory_order_relaxed);
}
