/*
 * handoff.h: how a job crosses threads back to its loop. Each loop has one
 * struct handoff: the free list its jobs are recycled through (loop only),
 * and its completion stack (lock-free, many producers, the loop consumes)
 * with the eventfd that wakes it. A thread that finishes many jobs in one
 * go (a worker's batch, the ledger's) holds them between handoff_hold and
 * handoff_release, and each loop then gets its share with one push and at
 * most one wakeup. What crosses: job pointers, and eventfd writes.
 */
#ifndef TICKETD_HANDOFF_H
#define TICKETD_HANDOFF_H

#include <pthread.h>

#include "job.h"

#define HANDOFF_MAX_LOOPS 64           /* io_threads' upper bound (conf.c) */

struct handoff {
	unsigned index;                /* the loop's index, < HANDOFF_MAX_LOOPS */
	int efd;                       /* eventfd: completions and control */
	_Atomic(struct job *) done_head; /* completion stack, newest first */
	struct http_loop *owner;       /* set as job->loop */
	const struct job_env *env;     /* set as job->env */
	pthread_t thread;              /* the loop's thread, once it runs */
	int running;                   /* thread is set (the loop runs) */
	struct job *free_jobs;         /* owning loop only */
	struct job *all_jobs;          /* every job made, via all_next (teardown) */
};

/* Sets up h for loop index (owner, env go into its jobs): 0, or -errno. */
int handoff_init(struct handoff *h, unsigned index, struct http_loop *owner,
		 const struct job_env *env);
/* Marks the calling thread as h's owning loop (at the loop's start). */
void handoff_enter(struct handoff *h);
/* Frees every job h made (after each was dealt with) and closes the eventfd. */
void handoff_free(struct handoff *h);

/* Owning loop only: a clean job from the free list (or a new one), state
 * JOB_QUEUED; NULL on ENOMEM. handoff_job_put recycles it. */
struct job *handoff_job_get(struct handoff *h);
void handoff_job_put(struct handoff *h, struct job *j);

/* Any thread but the owning loop: hands j to h's loop (held instead while
 * the thread holds). */
void handoff_post(struct handoff *h, struct job *j);
/* Wakes h's loop (control bits were set): any thread. */
void handoff_wake(struct handoff *h);
/* Owning loop only, on a wakeup: reads the eventfd and returns the jobs
 * that came back, oldest first, linked by next. */
struct job *handoff_take(struct handoff *h);

/* The calling thread holds what it posts until handoff_release; a flush
 * hands over what it holds and goes on holding. */
void handoff_hold(void);
void handoff_flush(void);
void handoff_release(void);
/* The pool's batch hooks (arg unused): hold, and release; the worker
 * counts as busy in between (metrics). */
void handoff_batch_begin(void *arg);
void handoff_batch_end(void *arg);

#endif /* TICKETD_HANDOFF_H */
