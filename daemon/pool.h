/*
 * pool.h: the worker pool. A fixed set of threads takes tasks from a bounded
 * queue with two lanes; the priority lane is always served first (VIP
 * purchases on an event whose core is "priority"). A full queue refuses the
 * task at once (-EAGAIN), so memory stays bounded and the caller answers 503.
 * Tasks are intrusive: the caller embeds a struct pool_task in its own job
 * and owns its memory; the pool only links it in and hands it to fn.
 */
#ifndef TICKETD_POOL_H
#define TICKETD_POOL_H

struct pool_task {
	struct pool_task *next;   /* private to the pool while queued */
};

/* Runs one task on a worker thread. */
typedef void (*pool_fn)(struct pool_task *t, void *arg);

enum pool_lane {
	POOL_NORMAL = 0,
	POOL_PRIORITY = 1,
};

struct pool;

/* Starts workers threads that call fn(task, arg), over a queue of at most
 * depth tasks. Returns 0 or -errno. */
int pool_create(unsigned workers, unsigned depth, pool_fn fn, void *arg,
		struct pool **out);
/* Queues t; any thread. Returns 0, -EAGAIN when the queue is full, or
 * -ESHUTDOWN once pool_stop has begun. Never blocks on a full queue. */
int pool_submit(struct pool *p, struct pool_task *t, enum pool_lane lane);
/* Lets the workers finish every queued task, then joins them. */
void pool_stop(struct pool *p);
/* Frees a stopped pool. */
void pool_destroy(struct pool *p);
/* Tasks waiting right now (for status and metrics). */
unsigned pool_queued(struct pool *p);

#endif /* TICKETD_POOL_H */
