/*
 * work.h: a job's work away from its event loop, as the pools run it: an
 * order lookup, a refund, or a purchase (purchase.c). Each ends by handing
 * the job back to its loop (purchase_done); what crosses is the job.
 */
#ifndef TICKETD_WORK_H
#define TICKETD_WORK_H

#include "pool.h"

/* The pool's task function (arg: unused). With "workers": 0 the loops
 * call it themselves; it then hands whatever reads the ledger (GET order,
 * refund, a purchase with an Idempotency-Key) to env->reads. */
void work_run(struct pool_task *t, void *arg);
/* The reads pool's task function: the same work, never handed on. */
void work_read(struct pool_task *t, void *arg);
/* Both pools' cancel: a job the stopping pool never began (nothing read or
 * written yet; tickets its loop reserved go back) ends with a 503
 * shutting_down reply, which its stopped loop may no longer send. */
void work_cancel(struct pool_task *t, void *arg);

#endif /* TICKETD_WORK_H */
