/*
 * purchase.h: the purchase path away from its event loop (work.c runs it):
 * the Idempotency-Key check, the reservation through the event's core (the
 * only critical section), then the payment, then the commit to the ledger;
 * purchase_settle finishes the payment, on the worker or, in async mode, on
 * the loop when its timer fires. Every path ends in purchase_done(), which
 * hands the job back to its loop; a reservation is released on every path
 * that does not confirm.
 */
#ifndef TICKETD_PURCHASE_H
#define TICKETD_PURCHASE_H

#include <stdint.h>

#include "job.h"

/* The purchase of j (JOB_PURCHASE) on whatever thread runs it, now the
 * time it left the pool's queue: the Idempotency-Key's checks, the
 * reserve, then the payment. */
void purchase_run(struct job *j, uint64_t now);
/* With a worker pool, on the loop that queued j: for a plain purchase (no
 * Idempotency-Key) that its seller's sold-out hint says cannot be served,
 * tries the reserve here. Returns 1 when it was refused (finish j with
 * purchase_done(j, JOB_SOLD_OUT, 0): a 409), 0 when j goes to the pool,
 * holding the tickets if the reserve succeeded after all (j->reserved). */
int purchase_refuse_sold_out(struct job *j);
/* Gives back the tickets purchase_refuse_sold_out kept for a job that will
 * not run after all (the pool refused it); nothing if it kept none. */
void purchase_unreserve(struct job *j);
/* Ends a job off the loop (any thread): sets its result, lets go of its
 * Idempotency-Key, and hands it back to its loop. */
void purchase_done(struct job *j, enum job_result result, int error);
#endif /* TICKETD_PURCHASE_H */
