/*
 * purchase.h: what happens to a job away from its event loop. purchase_work
 * runs on a worker: reserve through the event's core (the only critical
 * section), then the payment, then the commit; purchase_settle finishes the
 * payment, on the worker or, in async mode, on the loop when its timer
 * fires. Every path ends in http_job_done(), which hands the job back to
 * its loop; a reservation is released on every path that does not confirm.
 */
#ifndef TICKETD_PURCHASE_H
#define TICKETD_PURCHASE_H

#include "job.h"

/* The pool's task function (arg: unused). */
void purchase_work(struct pool_task *t, void *arg);
/* Decides the payment of a reserved job and confirms or releases it. The
 * caller must not touch j afterwards. */
void purchase_settle(struct job *j);

#endif /* TICKETD_PURCHASE_H */
