/*
 * handoff.c: the jobs' way back to their loop (see handoff.h). The stack is
 * pushed with a CAS and taken whole with an exchange; the push that finds
 * it empty writes the eventfd, so one wakeup serves a whole batch. What a
 * thread holds sits in its thread-local table, one chain per loop.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "answer.h"
#include "handoff.h"
#include "log.h"
#include "metrics.h"

/* Jobs a thread holds for each loop during its batch (newest first, so that
 * the loop, which reverses its stack, sees them oldest first). */
struct held_jobs {
	struct handoff *to;
	struct job *head;             /* newest */
	struct job *tail;             /* oldest */
};
static _Thread_local struct held_jobs held[HANDOFF_MAX_LOOPS];
static _Thread_local uint64_t held_mask;  /* loops with held jobs */
static _Thread_local int holding;

/* True on h's own loop thread (and before it runs: set-up, teardown). */
static int on_owner(const struct handoff *h)
{
	return !h->running || pthread_equal(h->thread, pthread_self());
}

int handoff_init(struct handoff *h, unsigned index, struct http_loop *owner,
		 const struct job_env *env)
{
	assert(index < HANDOFF_MAX_LOOPS);
	h->index = index;
	h->owner = owner;
	h->env = env;
	atomic_init(&h->done_head, NULL);
	h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return h->efd < 0 ? -errno : 0;
}

void handoff_enter(struct handoff *h)
{
	h->thread = pthread_self();
	h->running = 1;
}

void handoff_free(struct handoff *h)
{
	struct job *j;

	h->running = 0;
	while ((j = h->all_jobs)) {
		h->all_jobs = j->all_next;
		if (j->timer)
			event_free(j->timer);
		answer_clear(&j->reply);
		free(j);
	}
	h->free_jobs = NULL;
	if (h->efd >= 0)
		close(h->efd);
	h->efd = -1;
}

struct job *handoff_job_get(struct handoff *h)
{
	struct job *j = h->free_jobs;

	assert(on_owner(h));
	if (j) {
		h->free_jobs = j->next;
	} else {
		j = calloc(1, sizeof(*j));
		if (!j)
			return NULL;
		j->loop = h->owner;
		j->env = h->env;
		j->all_next = h->all_jobs;
		h->all_jobs = j;
	}
	j->next = NULL;
	j->after = NULL;
	j->req = NULL;
	j->state = JOB_QUEUED;
	j->error = 0;
	j->reserved = 0;
	return j;
}

void handoff_job_put(struct handoff *h, struct job *j)
{
	assert(on_owner(h));
	j->req = NULL;
	j->next = h->free_jobs;
	h->free_jobs = j;
}

void handoff_wake(struct handoff *h)
{
	uint64_t one = 1;

	if (write(h->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_err("loop %u: eventfd write: %s", h->index, strerror(errno));
}

/* Pushes the chain first..last (newest first) on h's completion stack and
 * wakes h's loop if the stack was empty. */
static void push_chain(struct handoff *h, struct job *first, struct job *last)
{
	struct job *head = atomic_load_explicit(&h->done_head, memory_order_relaxed);

	do {
		last->next = head;
	} while (!atomic_compare_exchange_weak_explicit(&h->done_head, &head, first,
							memory_order_release,
							memory_order_relaxed));
	if (!head)
		handoff_wake(h);
}

void handoff_post(struct handoff *h, struct job *j)
{
	struct held_jobs *hj;

	if (!holding) {
		push_chain(h, j, j);
		return;
	}
	hj = &held[h->index];
	hj->to = h;
	j->next = hj->head;
	hj->head = j;
	if (!hj->tail)
		hj->tail = j;
	held_mask |= 1ull << h->index;
}

struct job *handoff_take(struct handoff *h)
{
	struct job *list, *fifo = NULL;
	uint64_t n;

	assert(on_owner(h));
	if (read(h->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_err("loop %u: eventfd read: %s", h->index, strerror(errno));
	list = atomic_exchange_explicit(&h->done_head, NULL, memory_order_acquire);
	while (list) { /* the stack is newest first: reverse it */
		struct job *j = list;

		list = j->next;
		j->next = fifo;
		fifo = j;
	}
	return fifo;
}

void handoff_hold(void)
{
	holding = 1;
}

void handoff_flush(void)
{
	while (held_mask) {
		unsigned i = (unsigned)__builtin_ctzll(held_mask);
		struct held_jobs *hj = &held[i];

		held_mask &= held_mask - 1;
		push_chain(hj->to, hj->head, hj->tail);
		hj->head = hj->tail = NULL;
	}
}

void handoff_release(void)
{
	handoff_flush();
	holding = 0;
}

void handoff_batch_begin(void *arg)
{
	(void)arg;
	metrics_busy(1);
	handoff_hold();
}

void handoff_batch_end(void *arg)
{
	(void)arg;
	handoff_release();
	metrics_busy(0);
}
