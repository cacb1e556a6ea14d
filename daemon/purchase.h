/*
 * purchase.h: what happens to a job away from its event loop. purchase_work
 * runs on a worker: an order lookup, a refund (admin.c), or a purchase:
 * the Idempotency-Key check, the reservation through the event's core (the
 * only critical section), then the payment, then the commit to the ledger;
 * purchase_settle finishes the payment, on the worker or, in async mode, on
 * the loop when its timer fires. Every path ends in purchase_done(), which
 * hands the job back to its loop; a reservation is released on every path
 * that does not confirm.
 */
#ifndef TICKETD_PURCHASE_H
#define TICKETD_PURCHASE_H

#include "job.h"

/* The pool's task function (arg: unused). With "workers": 0 the loops
 * call it themselves; it then hands whatever reads the ledger (GET order,
 * refund, a purchase with an Idempotency-Key) to env->reads. */
void purchase_work(struct pool_task *t, void *arg);
/* The reads pool's task function: the same work, never handed on. */
void purchase_read_work(struct pool_task *t, void *arg);
/* Both pools' cancel: a job the stopping pool never began (nothing read or
 * written yet; tickets its loop reserved go back) ends with a 503
 * shutting_down reply, which its stopped loop may no longer send. */
void purchase_cancel(struct pool_task *t, void *arg);
/* With a worker pool, on the loop that queued j: for a plain purchase (no
 * Idempotency-Key) that its seller's sold-out hint says cannot be served,
 * tries the reserve here. Returns 1 when it was refused (finish j with
 * purchase_done(j, JOB_SOLD_OUT, 0): a 409), 0 when j goes to the pool,
 * holding the tickets if the reserve succeeded after all (j->reserved). */
int purchase_refuse_sold_out(struct job *j);
/* Gives back the tickets purchase_refuse_sold_out kept for a job that will
 * not run after all (the pool refused it); nothing if it kept none. */
void purchase_unreserve(struct job *j);
/* Decides the payment of a reserved job and confirms or releases it. The
 * caller must not touch j afterwards. */
void purchase_settle(struct job *j);
/* Ends a job off the loop (any thread): sets its result, lets go of its
 * Idempotency-Key, and hands it back to its loop. */
void purchase_done(struct job *j, enum job_result result, int error);
/* Reads order j->order_id from the ledger into *o (free() it). Returns 0,
 * or 1 when j was already answered: 404 for no such order, 503 when the
 * ledger cannot be read. */
struct ledger_order;
int purchase_find_order(struct job *j, struct ledger_order **o);

#endif /* TICKETD_PURCHASE_H */
