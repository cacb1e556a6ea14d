/*
 * pool.h: the worker pool. A set of threads (resized on reload) takes tasks
 * from a bounded queue with two lanes; the priority lane is served first (VIP
 * purchases on an event whose core is "priority"). A full queue refuses the
 * task at once (-EAGAIN), so memory stays bounded and the caller answers 503.
 * Tasks are intrusive: the caller embeds a struct pool_task in its own job
 * and owns its memory; the pool only links it in and hands it to fn.
 */
#ifndef TICKETD_POOL_H
#define TICKETD_POOL_H

#define POOL_MAX_WORKERS 1024u   /* the config's bound on workers */

struct pool_task {
	struct pool_task *next;   /* private to the pool while queued */
};

/* What a worker does: begin, run every task of the batch it took, end.
 * begin and end may be NULL; they let the caller batch its own hand-offs
 * (the daemon collects replies and wakes each event loop once per batch). */
struct pool_ops {
	void (*batch_begin)(void *arg);
	void (*run)(struct pool_task *t, void *arg);
	void (*batch_end)(void *arg);
	/* Once pool_stop has begun, a task not yet begun goes here instead of
	 * to run (NULL: run it anyway). */
	void (*cancel)(struct pool_task *t, void *arg);
};

enum pool_lane {
	POOL_NORMAL = 0,
	POOL_PRIORITY = 1,
};

struct pool;

/* Starts workers (0..POOL_MAX_WORKERS) threads that run ops over a queue of
 * at most depth tasks (ops is copied); with 0 the caller runs its tasks
 * itself and submits none. Returns 0 or -errno. */
int pool_create(unsigned workers, unsigned depth, const struct pool_ops *ops,
		void *arg, struct pool **out);
/* Queues t; any thread. Returns 0, -EAGAIN when the queue is full, or
 * -ESHUTDOWN once pool_stop has begun. Never blocks on a full queue. */
int pool_submit(struct pool *p, struct pool_task *t, enum pool_lane lane);
/* Queues as many tasks of the list *list (linked by next) as fit, oldest
 * first, under one lock and with at most one wakeup per idle worker; the
 * rest stay in *list. Returns the number queued, or -ESHUTDOWN. */
int pool_submit_list(struct pool *p, struct pool_task **list, enum pool_lane lane);
/* Stops taking tasks: the workers finish the tasks they are running, hand
 * every other queued one (also the rest of a batch already taken) to
 * ops.cancel, or run it if there is none, then are joined. Returns the
 * number cancelled. */
unsigned pool_stop(struct pool *p);
/* Frees a stopped pool. */
void pool_destroy(struct pool *p);
/* Tasks waiting right now (for status and metrics). */
unsigned pool_queued(struct pool *p);

/* Changes the number of workers (1..POOL_MAX_WORKERS) while tasks run; call
 * from the thread that created the pool. New workers start at once; surplus
 * ones finish their batch and leave, and are joined later. Never waits for
 * a busy worker. Returns 0, -EINVAL, or -errno if a thread could not start. */
int pool_resize(struct pool *p, unsigned workers);
/* Workers running now, leavers not counted. */
unsigned pool_workers(struct pool *p);
/* Liveness for the watchdog: pool_heartbeat() moves after every task a
 * worker runs and, once a tick is set, whenever an idle worker has waited
 * tick_ms (0: idle workers wait untimed). A pool whose counter stands still
 * for several ticks has every worker stuck in a task or on a lock. */
void pool_set_tick(struct pool *p, unsigned ms);
unsigned long long pool_heartbeat(struct pool *p);

#endif /* TICKETD_POOL_H */
